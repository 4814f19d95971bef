use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _};
use base64::Engine as _;

use super::*;

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn ec_key() -> (EcdsaKeyPair, String) {
    let key = EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
    let point = key.public_key().as_ref().to_vec();
    let jwk = format!(
        r#"{{"kty":"EC","crv":"P-256","x":"{}","y":"{}","kid":"ec1","use":"sig"}}"#,
        b64(&point[1..33]),
        b64(&point[33..])
    );
    (key, jwk)
}

#[test]
fn keys_of_every_type_verify_their_algorithms_only() {
    let rng = SystemRandom::new();
    let (ec, ec_jwk) = ec_key();
    let ed = Ed25519KeyPair::generate().unwrap();
    let ed_jwk = format!(
        r#"{{"kty":"OKP","crv":"Ed25519","x":"{}","kid":"ed1"}}"#,
        b64(ed.public_key().as_ref())
    );
    let rsa = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    let parts = aws_lc_rs::rsa::PublicKeyComponents::<Vec<u8>>::from(rsa.public_key());
    let rsa_jwk = format!(
        r#"{{"kty":"RSA","n":"{}","e":"{}","kid":"rsa1"}}"#,
        b64(&parts.n),
        b64(&parts.e)
    );
    let set = ClientJwks::parse(&format!(r#"{{"keys":[{ec_jwk},{ed_jwk},{rsa_jwk}]}}"#)).unwrap();
    assert_eq!(set.keys.len(), 3);
    let msg = b"header.payload";
    let sig = ec.sign(&rng, msg).unwrap();
    assert!(
        set.candidates("ES256", Some("ec1"))
            .any(|k| k.verify("ES256", msg, sig.as_ref()))
    );
    assert!(!set.candidates("ES256", Some("ec1")).any(|k| k.verify(
        "ES256",
        b"other",
        sig.as_ref()
    )));
    // The EC key never verifies as another algorithm.
    assert_eq!(set.candidates("RS256", Some("ec1")).count(), 0);
    let sig = ed.sign(msg);
    assert!(
        set.candidates("EdDSA", None)
            .any(|k| k.verify("EdDSA", msg, sig.as_ref()))
    );
    for (alg, pad) in [
        (
            "RS256",
            &signature::RSA_PKCS1_SHA256 as &dyn signature::RsaEncoding,
        ),
        ("PS256", &signature::RSA_PSS_SHA256),
    ] {
        let mut out = vec![0; rsa.public_modulus_len()];
        rsa.sign(pad, &rng, msg, &mut out).unwrap();
        assert!(
            set.candidates(alg, None).any(|k| k.verify(alg, msg, &out)),
            "{alg}"
        );
        let other = if alg == "RS256" { "PS256" } else { "RS256" };
        assert!(
            !set.candidates(other, None)
                .any(|k| k.verify(other, msg, &out))
        );
    }
    assert_eq!(set.candidates("HS256", None).count(), 0);
    assert_eq!(set.candidates("none", None).count(), 0);
}

#[test]
fn private_symmetric_weak_and_odd_keys_are_refused() {
    let (_, ec_jwk) = ec_key();
    let with = |extra: &str| ec_jwk.replacen('{', &format!("{{{extra},"), 1);
    let refused = |doc: String, why: &str| {
        let e = ClientJwks::parse(&doc).unwrap_err().to_string();
        assert!(e.contains(why), "{doc}: {e}");
    };
    refused(
        format!(r#"{{"keys":[{}]}}"#, with(r#""d":"AAAA""#)),
        "private member \"d\"",
    );
    refused(
        r#"{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}"#.into(),
        "private member \"k\"",
    );
    refused(r#"{"keys":[{"kty":"oct"}]}"#.into(), "symmetric");
    refused(
        format!(r#"{{"keys":[{}]}}"#, with(r#""alg":"RS256""#)),
        "does not fit",
    );
    refused(
        format!(r#"{{"keys":[{}]}}"#, ec_jwk.replace("\"sig\"", "\"enc\"")),
        "\"use\"",
    );
    refused(format!(r#"{{"keys":[{ec_jwk},{ec_jwk}]}}"#), "used twice");
    refused(r#"{"keys":[]}"#.into(), "give 1 to");
    refused("[]".into(), "no \"keys\"");
    let small = format!(
        r#"{{"keys":[{{"kty":"RSA","n":"{}","e":"AQAB"}}]}}"#,
        b64(&[0xc1; 128])
    );
    refused(small, "1024 bits");
    let off_curve = format!(
        r#"{{"keys":[{{"kty":"EC","crv":"P-256","x":"{}","y":"{}"}}]}}"#,
        b64(&[1; 32]),
        b64(&[2; 32])
    );
    refused(off_curve, "not on the P-256 curve");
    refused(
        r#"{"keys":[{"kty":"EC","crv":"P-384","x":"AA","y":"AA"}]}"#.into(),
        "P-256",
    );
    refused("x".repeat(MAX_JWKS_BYTES + 1), "larger than");
}

#[test]
fn jwks_uris_must_be_allow_listed() {
    let list = UrlAllowList::new(&["https://keys.example.com/clients/"]).unwrap();
    assert!(check_jwks_uri("https://keys.example.com/clients/a.json", &list).is_ok());
    let e = check_jwks_uri("https://169.254.169.254/latest/meta-data", &list).unwrap_err();
    assert!(e.to_string().contains("not under an allowed prefix"), "{e}");
    let e = check_jwks_uri("https://keys.example.com/a", &UrlAllowList::default()).unwrap_err();
    assert!(e.to_string().contains("jwks_uri_allowed_prefixes"), "{e}");
}
