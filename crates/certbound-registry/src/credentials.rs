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
