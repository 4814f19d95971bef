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
