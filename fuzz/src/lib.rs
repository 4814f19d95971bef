//! Shared fixtures for the certbound fuzz targets in `fuzz_targets/`.
//!
//! The keys are the fixed test keys the seed corpus is made with (see
//! `crates/certbound-proto/tests/robustness.rs`, `write_seed_corpus`): the
//! broker signs tokens with scalar `[7; 32]`, the device signs requests and
//! telemetry with scalar `[9; 32]`. Keeping them equal lets the fuzzer start
//! from inputs that reach the signature and claim checks.

use std::sync::LazyLock;

pub use certbound_proto::cbor::{self, Limits};
use certbound_proto::crypto::{P256Signer, P256Verifier, Signer};
use certbound_verify::{KeySet, TokenVerifier, VerifierConfig};

/// Issuer of the seed tokens.
pub const ISS: &str = "https://auth.example.com";
/// Audience of the seed tokens.
pub const AUD: &str = "https://telemetry.example.com";
/// A time inside the validity of the seed tokens.
pub const NOW: u64 = 1_700_000_100;

/// Keys and verifiers built once per fuzzing process.
pub struct Fixtures {
    /// Verifies the broker's tokens.
    pub broker: P256Verifier,
    /// Verifies the device's requests and telemetry.
    pub device: P256Verifier,
    /// The broker key under its kid.
    pub keys: KeySet,
    /// A verifier expecting [`ISS`] and [`AUD`].
    pub verifier: TokenVerifier,
}

fn signer(scalar: u8) -> P256Signer {
    P256Signer::from_scalar(&[scalar; 32]).expect("fixed scalar is valid")
}

/// The fixtures.
pub static FIX: LazyLock<Fixtures> = LazyLock::new(|| {
    let broker = signer(7);
    let device = signer(9);
    let mut keys = KeySet::new();
    keys.insert(broker.public_key().kid(), broker.public_key().clone())
        .expect("valid key");
    let mut config = VerifierConfig::new(AUD);
    config.issuer = Some(ISS.into());
    Fixtures {
        broker: P256Verifier::new(broker.public_key()).expect("on curve"),
        device: P256Verifier::new(device.public_key()).expect("on curve"),
        verifier: TokenVerifier::new(keys.clone(), config),
        keys,
    }
});

/// The default limits (8 KiB, depth 16), as every network-facing caller uses.
pub fn limits() -> Limits {
    Limits::default()
}

/// Limits loose enough to re-decode our own re-encoding of an accepted input
/// (re-encoding may grow an item by a few bytes, e.g. a float date as an int).
pub fn loose() -> Limits {
    Limits {
        max_size: 64 * 1024,
        max_depth: 16,
    }
}

/// Certificate-path fixtures: a fixed trust store and a fixed time.
pub mod pki {
    use std::sync::LazyLock;

    use certbound_pki::{ExternalAnchor, TrustStore, parse_pem_certs};

    /// The validation time (2096-10-02): inside every committed fixture's
    /// validity (they are made for 100 years), long after the expired CA's.
    pub const NOW: u64 = 4_000_000_000;

    /// certs/requests/foreign-ca.cert.pem as certbound's own root, and
    /// certs/requests/expired-ca.cert.pem as an external (partner) anchor.
    pub static TRUST: LazyLock<TrustStore> = LazyLock::new(|| {
        let own = include_str!("../../certs/requests/foreign-ca.cert.pem");
        let partner = include_str!("../../certs/requests/expired-ca.cert.pem");
        let partner = parse_pem_certs(partner).expect("committed fixture parses");
        TrustStore::from_pem(own)
            .expect("committed fixture is a CA")
            .with_external(vec![ExternalAnchor {
                name: "partner".into(),
                cert_der: partner[0].clone(),
            }])
            .expect("committed fixture is a CA")
    });

    /// Splits `data` into DER elements (one byte tag, definite length); the
    /// first is the leaf, the rest the peer's chain. Stops at the first
    /// element that does not frame; at most 10 elements.
    pub fn split_ders(mut data: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while out.len() < 10 && data.len() >= 2 {
            let first = usize::from(data[1]);
            let (len, header) = if first < 0x80 {
                (first, 2)
            } else {
                let n = first & 0x7f;
                if n == 0 || n > 3 || data.len() < 2 + n {
                    break;
                }
                let len = data[2..2 + n]
                    .iter()
                    .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
                (len, 2 + n)
            };
            let Some(end) = header.checked_add(len).filter(|&e| e <= data.len()) else {
                break;
            };
            out.push(data[..end].to_vec());
            data = &data[end..];
        }
        out
    }
}
