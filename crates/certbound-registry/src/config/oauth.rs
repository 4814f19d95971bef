//! The `[oauth]` section: `private_key_jwt` client assertions and the JWK
//! Set URLs the broker may fetch (docs/oauth.md).

use serde::Deserialize;

/// `[oauth]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthSection {
    /// `https://` URL prefixes under which a `private_key_jwt` client's
    /// `jwks_uri` may be (at a path boundary). Default empty: no client may
    /// register a `jwks_uri` (register the JWK Set itself instead), so the
    /// broker never fetches a URL the operator did not allow.
    #[serde(default)]
    pub jwks_uri_allowed_prefixes: Vec<String>,
    /// Longest lifetime of a client assertion (`exp - now`), seconds.
    /// Default 300 (RFC 7523 asks for short-lived assertions; the jti of
    /// every accepted one is kept until it expires).
    #[serde(default = "default_assertion_lifetime")]
    pub max_assertion_lifetime_secs: u64,
    /// PEM file (relative to the data directory) of the CAs whose server
    /// certificates a `jwks_uri` server may present, besides the certbound
    /// CA. Default none: only servers with a certbound certificate.
    #[serde(default)]
    pub jwks_ca_file: Option<String>,
}

impl Default for OAuthSection {
    fn default() -> Self {
        Self {
            jwks_uri_allowed_prefixes: Vec::new(),
            max_assertion_lifetime_secs: default_assertion_lifetime(),
            jwks_ca_file: None,
        }
    }
}

fn default_assertion_lifetime() -> u64 {
    300
}

impl OAuthSection {
    /// The allow-list of `jwks_uri_allowed_prefixes`.
    ///
    /// # Errors
    /// Why a prefix is not an `https://` URL prefix.
    pub fn jwks_uri_allow_list(&self) -> Result<certbound_verify::url_allow::UrlAllowList, String> {
        certbound_verify::url_allow::UrlAllowList::new(&self.jwks_uri_allowed_prefixes)
    }
}
