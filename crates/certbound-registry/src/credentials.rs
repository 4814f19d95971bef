//! Client credentials as the registry stores them: random client ids and
//! secrets (shown once), the stored hash of a secret, and the normal form of
//! a certificate subject DN registered for `tls_client_auth`.

use aws_lc_rs::digest;
use base64::Engine as _;
use rand::RngCore;

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
pub fn same_hash(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Normalises an RFC 4514 DN for comparison: no spaces around separators,
/// attribute types upper-cased.
pub fn normalise_dn(dn: &str) -> String {
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

/// The prefix of every API key: `cbk_` (a secret scanner can recognise it).
pub const API_KEY_PREFIX: &str = "cbk_";

/// Characters of the random part of an API key: base64url of 32 bytes.
pub const API_KEY_RANDOM_LEN: usize = 43;

/// A new API key: [`API_KEY_PREFIX`] + base64url of 32 random bytes (256
/// bits). It is shown once; only its hash ([`hash_secret`]) is stored.
pub fn new_api_key() -> String {
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    format!(
        "{API_KEY_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
    )
}

/// Whether `text` has the shape of an API key ([`new_api_key`]): checked
/// before any hashing or database read.
pub fn looks_like_api_key(text: &str) -> bool {
    text.strip_prefix(API_KEY_PREFIX).is_some_and(|r| {
        r.len() == API_KEY_RANDOM_LEN
            && r.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

/// A new random row id of an API key (not secret, not the key).
pub fn new_api_key_id() -> String {
    let mut b = [0u8; 9];
    rand::rng().fill_bytes(&mut b);
    format!(
        "ak_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
    )
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

    #[test]
    fn api_keys_have_their_shape() {
        let k = new_api_key();
        assert!(
            k.starts_with(API_KEY_PREFIX) && k.len() == 4 + API_KEY_RANDOM_LEN,
            "{k}"
        );
        assert!(looks_like_api_key(&k));
        assert_ne!(k, new_api_key());
        for bad in [
            "",
            "cbk_",
            "cbs_x",
            &k[..k.len() - 1],
            &format!("{k}A"),
            &k.replace('_', "="),
        ] {
            assert!(!looks_like_api_key(bad), "{bad}");
        }
    }
}
