//! The rules for every URL certbound fetches on someone else's say (status
//! lists named in tokens, a `private_key_jwt` client's `jwks_uri`): an
//! `https://` URL without user info, query, fragment, dot segments,
//! percent-encoding, whitespace or non-ASCII characters, under one of the
//! operator's allowed prefixes at a path boundary (so
//! `https://auth.example.com` does not allow
//! `https://auth.example.com.evil.example/...`). Fetches themselves go
//! through [`crate::http::HttpsFetcher`] (feature `http`): a deadline for the
//! whole exchange, a body cap, no redirects.

/// Allowed `https://` URL prefixes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UrlAllowList {
    /// Normalised: lower-case authority, trailing `/`.
    prefixes: Vec<String>,
}

impl UrlAllowList {
    /// An allow-list of `prefixes` (may be empty: then nothing is allowed).
    ///
    /// # Errors
    /// Why a prefix is not an `https://host[:port][/path]` URL.
    pub fn new<S: AsRef<str>>(prefixes: &[S]) -> Result<Self, String> {
        let mut out = Vec::new();
        for prefix in prefixes {
            let prefix = prefix.as_ref();
            let (authority, path) =
                split_https(prefix).map_err(|reason| format!("{prefix:?}: {reason}"))?;
            let path = path.trim_end_matches('/');
            out.push(format!("https://{}{path}/", authority.to_ascii_lowercase()));
        }
        Ok(Self { prefixes: out })
    }

    /// The normalised prefixes.
    pub fn prefixes(&self) -> &[String] {
        &self.prefixes
    }

    /// Whether `uri` may be fetched.
    ///
    /// # Errors
    /// Why not.
    pub fn check(&self, uri: &str) -> Result<(), String> {
        let (authority, path) = split_https(uri)?;
        let normalised = format!("https://{}{path}", authority.to_ascii_lowercase());
        if self
            .prefixes
            .iter()
            .any(|p| normalised.starts_with(p.as_str()))
        {
            Ok(())
        } else if self.prefixes.is_empty() {
            Err("no URL prefix is allowed".into())
        } else {
            Err(format!(
                "it is not under an allowed prefix ({})",
                self.prefixes.join(", ")
            ))
        }
    }
}

/// Splits an `https://` URL into authority and path after checking the
/// rules of the module docs.
///
/// # Errors
/// Which rule it breaks.
pub fn split_https(url: &str) -> Result<(&str, &str), String> {
    let rest = url
        .strip_prefix("https://")
        .ok_or_else(|| "only https:// URLs are fetched".to_string())?;
    if url.len() > 2048 {
        return Err("it is longer than 2048 characters".into());
    }
    if url
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '\\' || !c.is_ascii())
    {
        return Err("it contains whitespace, control, non-ASCII characters or backslashes".into());
    }
    if url.contains(['?', '#']) {
        return Err("it has a query or fragment".into());
    }
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    if authority.is_empty() {
        return Err("it has no host".into());
    }
    if authority.contains('@') {
        return Err("it has user info (user@host)".into());
    }
    if path
        .split('/')
        .any(|segment| segment == "." || segment == ".." || segment.contains('%'))
    {
        return Err("its path has dot segments or percent-encoding".into());
    }
    Ok((authority, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_match_at_path_boundaries_only() {
        let list = UrlAllowList::new(&["https://Keys.Example.com/clients"]).unwrap();
        assert!(
            list.check("https://keys.example.com/clients/a.json")
                .is_ok()
        );
        assert!(
            list.check("https://keys.example.com/clientsX/a.json")
                .is_err()
        );
        assert!(
            list.check("https://keys.example.com.evil.example/clients/a")
                .is_err()
        );
        assert!(list.check("https://u@keys.example.com/clients/a").is_err());
        assert!(list.check("https://keys.example.com/clients/../x").is_err());
        assert!(list.check("http://keys.example.com/clients/a").is_err());
        assert!(
            UrlAllowList::default()
                .check("https://a.example/x")
                .is_err()
        );
        assert!(UrlAllowList::new(&["http://a.example"]).is_err());
    }
}
