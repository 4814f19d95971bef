//! Tests of the public API: every rule must be able to fail.

use certbound_proto::crypto::{P256Signer, Signer};
use certbound_proto::token;

use crate::{Claims, DEFAULT_LEEWAY, KeySet, TokenVerifier, VerifierConfig};

mod binding_tests;
mod inspect_tests;
mod jwt_tests;
mod keyset_tests;
mod telemetry_tests;
mod text_tests;
mod verify_tests;

const ISS: &str = "https://auth.example.com";
const AUD: &str = "https://telemetry.example.com";
/// exp of [`claims`]: 2023-11-14T23:13:20Z.
const EXP: u64 = 1_700_003_600;
const NOW: u64 = 1_700_000_100;

fn broker() -> P256Signer {
    P256Signer::from_scalar(&[7u8; 32]).unwrap()
}

fn device() -> P256Signer {
    P256Signer::from_scalar(&[9u8; 32]).unwrap()
}

fn claims(cnf: &P256Signer) -> Claims {
    Claims {
        iss: Some(ISS.into()),
        sub: Some("sensor-1".into()),
        aud: vec![AUD.into()],
        exp: Some(EXP),
        iat: Some(1_700_000_000),
        cti: Some(vec![1; 16]),
        scope: Some("telemetry:write telemetry:read".into()),
        cnf: Some(cnf.public_key().clone()),
        ..Claims::default()
    }
}

fn keys_of(signers: &[&P256Signer]) -> KeySet {
    let mut keys = KeySet::new();
    for s in signers {
        keys.insert(s.public_key().kid(), s.public_key().clone())
            .unwrap();
    }
    keys
}

/// Mints with `signer` under the signer's own kid.
fn mint(claims: &Claims, signer: &P256Signer) -> Vec<u8> {
    token::mint(claims, &signer.public_key().kid(), signer).unwrap()
}

fn verifier() -> TokenVerifier {
    let mut config = VerifierConfig::new(AUD);
    config.issuer = Some(ISS.into());
    TokenVerifier::new(keys_of(&[&broker()]), config)
}
