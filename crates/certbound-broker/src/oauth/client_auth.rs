//! Client authentication: `client_secret_basic`, `client_secret_post`
//! (RFC 6749 §2.3.1) and `tls_client_auth` (RFC 8705 §2.1.2, PKI method:
//! the certificate chains to the certbound CA — rustls checked that during
//! the handshake — and its subject DN is the one registered).

use aws_lc_rs::digest;
use base64::Engine as _;
use rand::RngCore;

use super::{OAuthError, OAuthService, store_failure};
use crate::store::Client;

/// The credentials a request presented.
#[derive(Debug, Clone, Default)]
pub struct Presented {
    /// From `Authorization: Basic` (already percent-decoded).
    pub basic: Option<(String, String)>,
    /// `client_id` form field.
    pub form_client_id: Option<String>,
    /// `client_secret` form field.
    pub form_client_secret: Option<String>,
    /// The TLS client certificate (DER), when the client showed one.
    pub peer_cert: Option<Vec<u8>>,
}

/// How the client authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// HTTP Basic.
    SecretBasic,
    /// Form fields.
    SecretPost,
    /// mTLS, PKI method.
    TlsClientAuth,
}

impl AuthMethod {
    /// The RFC 8414 / RFC 8705 name.
    pub fn name(self) -> &'static str {
        match self {
            AuthMethod::SecretBasic => "client_secret_basic",
            AuthMethod::SecretPost => "client_secret_post",
            AuthMethod::TlsClientAuth => "tls_client_auth",
        }
    }
}

/// A new random `client_id`.
pub fn new_client_id() -> String {
    let mut b = [0u8; 12];
    rand::rng().fill_bytes(&mut b);
    format!(
        "cb_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
    )
}

/// A new random client secret (256 bits). It is shown once; only its hash
/// is stored.
pub fn new_client_secret() -> String {
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    format!(
        "cbs_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
    )
}

/// The stored form of a secret: hex SHA-256. Secrets are 256-bit random
/// values, so a fast hash is enough (no dictionary to attack).
pub fn hash_secret(secret: &str) -> String {
    hex::encode(digest::digest(&digest::SHA256, secret.as_bytes()))
}

/// Compares two equal-length hex hashes without an early exit.
fn same_hash(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Normalises an RFC 4514 DN for comparison: no spaces around separators,
/// attribute types upper-cased.
pub(crate) fn normalise_dn(dn: &str) -> String {
    dn.split(',')
        .map(|rdn| {
            let rdn = rdn.trim();
            match rdn.split_once('=') {
                Some((k, v)) => format!("{}={}", k.trim().to_ascii_uppercase(), v.trim()),
                None => rdn.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

impl OAuthService {
    /// Authenticates the client of a request.
    pub async fn authenticate(&self, p: &Presented) -> Result<(Client, AuthMethod), OAuthError> {
        let basic_challenge = |mut e: OAuthError| {
            e.basic_challenge = p.basic.is_some();
            e
        };
        if p.basic.is_some() && p.form_client_secret.is_some() {
            return Err(OAuthError::invalid_request(
                "use one client authentication method: either HTTP Basic or client_secret in the form, not both",
            ));
        }
        let secret_attempt = match (&p.basic, &p.form_client_id, &p.form_client_secret) {
            (Some((id, secret)), form_id, _) => {
                if form_id.as_deref().is_some_and(|f| f != id) {
                    return Err(OAuthError::invalid_request(
                        "client_id in the form differs from the one in the Authorization header",
                    ));
                }
                Some((id.clone(), secret.clone(), AuthMethod::SecretBasic))
            }
            (None, Some(id), Some(secret)) => {
                Some((id.clone(), secret.clone(), AuthMethod::SecretPost))
            }
            _ => None,
        };
        if let Some((id, secret, method)) = secret_attempt {
            let client = self
                .store
                .get_client(&id)
                .await
                .map_err(|e| store_failure(&e))?;
            let Some(client) = client else {
                return Err(basic_challenge(OAuthError::invalid_client(format!(
                    "unknown client_id {id:?}"
                ))));
            };
            let ok = client
                .secret_hash
                .as_deref()
                .is_some_and(|h| same_hash(h, &hash_secret(&secret)));
            if !ok {
                return Err(basic_challenge(OAuthError::invalid_client(format!(
                    "wrong client secret for {id:?} (rotate it with `certbound client rotate-secret` if it was lost)"
                ))));
            }
            if !client.is_active() {
                return Err(basic_challenge(OAuthError::invalid_client(format!(
                    "client {id:?} was deleted"
                ))));
            }
            return Ok((client, method));
        }
        if let Some(cert) = &p.peer_cert {
            let summary = certbound_pki::cert_summary(cert).map_err(|e| {
                OAuthError::invalid_client(format!("client certificate unreadable: {e}"))
            })?;
            let dn = normalise_dn(&summary.subject);
            let client = self
                .store
                .get_client_by_subject(&dn)
                .await
                .map_err(|e| store_failure(&e))?;
            let Some(client) = client else {
                return Err(OAuthError::invalid_client(format!(
                    "no client is registered for the TLS subject {dn:?} (certbound client create --tls-subject {dn:?})"
                )));
            };
            if let Some(id) = &p.form_client_id
                && id != &client.id
            {
                return Err(OAuthError::invalid_client(format!(
                    "the TLS certificate (subject {dn:?}) belongs to client {:?}, not {id:?}",
                    client.id
                )));
            }
            if !client.is_active() {
                return Err(OAuthError::invalid_client(format!(
                    "client {:?} was deleted",
                    client.id
                )));
            }
            return Ok((client, AuthMethod::TlsClientAuth));
        }
        Err(match &p.form_client_id {
            Some(id) => OAuthError::invalid_client(format!(
                "client {id:?} presented no credentials: send client_secret (Basic or form) or a TLS client certificate"
            )),
            None => OAuthError::invalid_client(
                "no client authentication: use HTTP Basic, client_id + client_secret in the form, or a TLS client certificate",
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dn_normalisation() {
        assert_eq!(
            normalise_dn("cn = reporting, O=Acme"),
            "CN=reporting,O=Acme"
        );
        assert_eq!(normalise_dn("CN=reporting"), "CN=reporting");
    }

    #[test]
    fn secrets_are_random_and_hash_compare() {
        let a = new_client_secret();
        let b = new_client_secret();
        assert_ne!(a, b);
        assert!(a.len() >= 40);
        assert!(same_hash(&hash_secret(&a), &hash_secret(&a)));
        assert!(!same_hash(&hash_secret(&a), &hash_secret(&b)));
        assert!(!same_hash("ab", "abc"));
    }
}
