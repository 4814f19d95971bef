//! The policy document: its TOML form, parsing with `${ENV_VAR}`
//! substitution, and the export text.

use serde::{Deserialize, Serialize};

use super::DEFAULT_TTL_SECS;
use crate::error::RegistryError;
use crate::store::ClientAuthMethod;
use crate::store::attributes::{Attributes, ClaimDecl, ClaimValue, CwtLabel};

/// The policy document.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyDoc {
    /// APIs (resource servers).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub api: Vec<ApiSpec>,
    /// Roles: named sets of grants given to groups and clients.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub role: Vec<RoleSpec>,
    /// Groups (sets of grants given to devices).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub group: Vec<GroupSpec>,
    /// Backend-service clients, matched by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub client: Vec<ClientSpec>,
    /// API keys, matched by name (the key itself is never in a document).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub apikey: Vec<ApiKeySpec>,
}

/// `[[apikey]]`: an API key as `certbound apikey create` makes it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeySpec {
    /// Key name (the match key).
    pub name: String,
    /// Expiry, RFC 3339 (`2027-03-01T00:00:00Z`); absent: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    /// Roles the key holds (defined by `[[role]]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// Attributes (custom claims and `{attr.NAME}` scopes of its tokens).
    #[serde(default, skip_serializing_if = "Attributes::is_empty")]
    pub attributes: Attributes,
    /// `[[apikey.grant]]`: at least one; never the admin API.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grant: Vec<GrantSpec>,
}

/// `[[api]]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiSpec {
    /// Identifier (the `aud`).
    pub id: String,
    /// Its scopes.
    pub scopes: Vec<String>,
    /// Token lifetime, seconds (default 3600).
    #[serde(default = "default_ttl")]
    pub ttl_secs: u64,
    /// Token format of its clients: `cwt` (default) or `jwt`.
    #[serde(default = "default_format")]
    pub format: String,
    /// JWS algorithm of its JWTs: `ES256` when absent (and always for
    /// `cwt`), or `RS256`, `PS256`, `EdDSA` for a `jwt` API. Exported only
    /// when not ES256.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    /// `[[api.claim]]`: the custom claims of its tokens.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub claim: Vec<ClaimDecl>,
}

/// `[[role]]`: a named set of grants across APIs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleSpec {
    /// Role name.
    pub name: String,
    /// What it is for.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// `[[role.grant]]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grant: Vec<GrantSpec>,
}

/// `[[group]]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupSpec {
    /// Group name.
    pub name: String,
    /// Roles the group holds (defined by `[[role]]`); its devices get their grants too.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// Attributes its devices inherit (`attributes = { site = "berlin" }`).
    #[serde(default, skip_serializing_if = "Attributes::is_empty")]
    pub attributes: Attributes,
    /// `[[group.grant]]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grant: Vec<GrantSpec>,
}

/// `[[client]]`: exactly one authentication method, as `certbound client
/// create` registers it (see `docs/policy.md`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientSpec {
    /// Client name (the match key; the `client_id` is not policy).
    pub name: String,
    /// The one authentication method (RFC 8414 name). When absent it
    /// follows from the other fields: `thumbprint` ->
    /// `self_signed_tls_client_auth`, `jwks` or `jwks_uri` ->
    /// `private_key_jwt`, `tls_subject` or `tls_san` ->
    /// `tls_client_auth`, none of them -> a secret (`client_secret` for a
    /// new client; an existing secret client keeps its secret method).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_method: Option<ClientAuthMethod>,
    /// `tls_client_auth`: the certificate's subject DN (RFC 4514).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_subject: Option<String>,
    /// `tls_client_auth`: one SAN of the certificate, `dns:<name>`,
    /// `uri:<uri>`, `ip:<address>` or `email:<address>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_san: Option<String>,
    /// `self_signed_tls_client_auth`: the pinned certificate's thumbprint,
    /// base64url SHA-256 of its DER (`x5t#S256`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumbprint: Option<String>,
    /// Roles the client holds (defined by `[[role]]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// `private_key_jwt`: the client's JWK Set (public keys only), as JSON
    /// text, e.g. `jwks = '{"keys":[...]}'`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<String>,
    /// `private_key_jwt`: the `https://` URL of the client's JWK Set (under
    /// `[oauth] jwks_uri_allowed_prefixes`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    /// Attributes (`attributes = { department = "billing" }`).
    #[serde(default, skip_serializing_if = "Attributes::is_empty")]
    pub attributes: Attributes,
    /// `[[client.grant]]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grant: Vec<GrantSpec>,
}

/// A grant: scopes of one API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantSpec {
    /// The API identifier.
    pub api: String,
    /// Granted scopes.
    pub scopes: Vec<String>,
}

fn default_ttl() -> u64 {
    DEFAULT_TTL_SECS
}

fn default_format() -> String {
    "cwt".into()
}

impl PolicyDoc {
    /// Parses a policy document, substituting `${VAR}` in string values with
    /// `lookup(VAR)`; an undefined variable is an error naming it.
    pub fn parse(
        text: &str,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, RegistryError> {
        let mut value: toml::Value = toml::from_str(text)
            .map_err(|e| RegistryError::Invalid(format!("policy document: {e}")))?;
        substitute_value(&mut value, &lookup)?;
        value
            .try_into()
            .map_err(|e: toml::de::Error| RegistryError::Invalid(format!("policy document: {e}")))
    }

    /// Parses with the process environment.
    pub fn parse_env(text: &str) -> Result<Self, RegistryError> {
        Self::parse(text, |k| std::env::var(k).ok())
    }

    /// The TOML text (`${` in values written as `$${`, so that it reads back the same).
    pub fn to_toml(&self) -> Result<String, RegistryError> {
        let esc = |s: &str| s.replace("${", "$${");
        let grants = |gs: &[GrantSpec]| {
            gs.iter()
                .map(|g| GrantSpec {
                    api: esc(&g.api),
                    scopes: g.scopes.iter().map(|s| esc(s)).collect(),
                })
                .collect()
        };
        let doc = PolicyDoc {
            api: self
                .api
                .iter()
                .map(|a| ApiSpec {
                    id: esc(&a.id),
                    scopes: a.scopes.iter().map(|s| esc(s)).collect(),
                    ttl_secs: a.ttl_secs,
                    format: esc(&a.format),
                    alg: a.alg.as_deref().map(esc),
                    claim: a
                        .claim
                        .iter()
                        .map(|c| ClaimDecl {
                            attribute: c.attribute.clone(),
                            jwt: c.jwt.as_deref().map(esc),
                            cwt: c.cwt.clone().map(|l| match l {
                                CwtLabel::Text(t) => CwtLabel::Text(esc(&t)),
                                int => int,
                            }),
                            ty: c.ty,
                        })
                        .collect(),
                })
                .collect(),
            role: self
                .role
                .iter()
                .map(|r| RoleSpec {
                    name: esc(&r.name),
                    description: esc(&r.description),
                    grant: grants(&r.grant),
                })
                .collect(),
            group: self
                .group
                .iter()
                .map(|g| GroupSpec {
                    name: esc(&g.name),
                    roles: g.roles.iter().map(|r| esc(r)).collect(),
                    attributes: esc_attrs(&g.attributes),
                    grant: grants(&g.grant),
                })
                .collect(),
            client: self
                .client
                .iter()
                .map(|c| ClientSpec {
                    name: esc(&c.name),
                    auth_method: c.auth_method,
                    tls_subject: c.tls_subject.as_deref().map(esc),
                    tls_san: c.tls_san.as_deref().map(esc),
                    thumbprint: c.thumbprint.as_deref().map(esc),
                    roles: c.roles.iter().map(|r| esc(r)).collect(),
                    jwks: c.jwks.as_deref().map(esc),
                    jwks_uri: c.jwks_uri.as_deref().map(esc),
                    attributes: esc_attrs(&c.attributes),
                    grant: grants(&c.grant),
                })
                .collect(),
            apikey: self
                .apikey
                .iter()
                .map(|k| ApiKeySpec {
                    name: esc(&k.name),
                    expires: k.expires.as_deref().map(esc),
                    roles: k.roles.iter().map(|r| esc(r)).collect(),
                    attributes: esc_attrs(&k.attributes),
                    grant: grants(&k.grant),
                })
                .collect(),
        };
        let body = toml::to_string(&doc)
            .map_err(|e| RegistryError::Invalid(format!("policy document: {e}")))?;
        Ok(format!(
            "# certbound policy (see docs/policy.md). Devices, certificates and secrets are not policy.\n\n{body}"
        ))
    }
}

/// Attributes with `${` in text values written as `$${`.
fn esc_attrs(attrs: &Attributes) -> Attributes {
    Attributes(
        attrs
            .0
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    ClaimValue::Text(t) => ClaimValue::Text(t.replace("${", "$${")),
                    other => other.clone(),
                };
                (k.clone(), v)
            })
            .collect(),
    )
}

/// Replaces `${NAME}` by `lookup(NAME)`; `$${` is a literal `${`.
pub fn substitute(
    text: &str,
    lookup: &impl Fn(&str) -> Option<String>,
) -> Result<String, RegistryError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(after) = tail.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
        } else if let Some(after) = tail.strip_prefix("${") {
            let end = after.find('}').ok_or_else(|| {
                RegistryError::Invalid(format!(
                    "unterminated ${{...}} in {text:?} (write $${{ for a literal ${{)"
                ))
            })?;
            let name = &after[..end];
            let valid = name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err(RegistryError::Invalid(format!(
                    "${{{name}}} is not a valid environment variable name"
                )));
            }
            let v = lookup(name).ok_or_else(|| {
                RegistryError::Invalid(format!(
                    "environment variable {name} is not defined (used as ${{{name}}} in the policy)"
                ))
            })?;
            out.push_str(&v);
            rest = &after[end + 1..];
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn substitute_value(
    v: &mut toml::Value,
    lookup: &impl Fn(&str) -> Option<String>,
) -> Result<(), RegistryError> {
    match v {
        toml::Value::String(s) => *s = substitute(s, lookup)?,
        toml::Value::Array(a) => {
            for x in a {
                substitute_value(x, lookup)?;
            }
        }
        toml::Value::Table(t) => {
            for (_, x) in t.iter_mut() {
                substitute_value(x, lookup)?;
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(k: &str) -> Option<String> {
        (k == "HOST").then(|| "example.com".to_string())
    }

    #[test]
    fn substitution() {
        assert_eq!(
            substitute("https://${HOST}/x", &env).unwrap(),
            "https://example.com/x"
        );
        assert_eq!(substitute("a $${HOST} $b", &env).unwrap(), "a ${HOST} $b");
        let e = substitute("${NOPE}", &env).unwrap_err().to_string();
        assert!(e.contains("NOPE"), "{e}");
        assert!(substitute("${HOST", &env).is_err());
        assert!(substitute("${1X}", &env).is_err());
    }

    #[test]
    fn escape_round_trip() {
        let doc = PolicyDoc {
            api: vec![ApiSpec {
                id: "urn:x:${y}".into(),
                scopes: vec!["a$${b".into()],
                ttl_secs: 60,
                format: "cwt".into(),
                alg: None,
                claim: vec![],
            }],
            ..Default::default()
        };
        let text = doc.to_toml().unwrap();
        assert_eq!(PolicyDoc::parse(&text, |_| None).unwrap(), doc);
    }
}
