use super::*;

#[test]
fn names() {
    for alg in JwsAlg::ALL {
        assert_eq!(JwsAlg::from_jose(alg.as_str()), Some(alg));
        assert_eq!(alg.as_str().to_lowercase().parse::<JwsAlg>().unwrap(), alg);
    }
    for refused in ["none", "HS256", "RS512", "ES384", "rs256", ""] {
        assert_eq!(JwsAlg::from_jose(refused), None, "{refused}");
    }
    assert!("HS256".parse::<JwsAlg>().is_err());
    assert!("none".parse::<JwsAlg>().is_err());
}

fn modulus(bits: usize) -> Vec<u8> {
    let mut n = vec![0xc5u8; bits / 8];
    if let Some(last) = n.last_mut() {
        *last |= 1;
    }
    n
}

#[test]
fn rsa_keys_under_2048_bits_are_refused() {
    for bits in [512, 1024, 2040] {
        let err = JwsKey::rsa(JwsAlg::Rs256, &modulus(bits), &[1, 0, 1]).unwrap_err();
        assert!(err.to_string().contains("2048"), "{bits}: {err}");
    }
    let key = JwsKey::rsa(JwsAlg::Ps256, &modulus(2048), &[1, 0, 1]).unwrap();
    assert_eq!(key.rsa_bits(), Some(2048));
    // Leading zero bytes do not count.
    let mut padded = vec![0, 0];
    padded.extend(modulus(1024));
    assert!(JwsKey::rsa(JwsAlg::Rs256, &padded, &[1, 0, 1]).is_err());
    // An RSA key is never an ES256 or EdDSA key; e = 1 and even values are refused.
    assert!(JwsKey::rsa(JwsAlg::Es256, &modulus(2048), &[1, 0, 1]).is_err());
    assert!(JwsKey::rsa(JwsAlg::EdDsa, &modulus(2048), &[1, 0, 1]).is_err());
    assert!(JwsKey::rsa(JwsAlg::Rs256, &modulus(2048), &[1]).is_err());
    assert!(JwsKey::rsa(JwsAlg::Rs256, &modulus(2048), &[2]).is_err());
}

#[test]
fn stored_form_round_trips() {
    let key = JwsKey::rsa(JwsAlg::Rs256, &modulus(2048), &[1, 0, 1]).unwrap();
    let stored = key.to_stored();
    assert_eq!(JwsKey::from_stored(JwsAlg::Rs256, &stored).unwrap(), key);
    assert!(parse_rsa_public_der(&stored[..stored.len() - 1]).is_err());
    let mut trailing = stored;
    trailing.push(0);
    assert!(parse_rsa_public_der(&trailing).is_err());
    let ed = JwsKey::ed25519([9; 32]);
    assert_eq!(
        JwsKey::from_stored(JwsAlg::EdDsa, &ed.to_stored()).unwrap(),
        ed
    );
    assert!(JwsKey::from_stored(JwsAlg::EdDsa, &[9; 31]).is_err());
}

#[test]
fn thumbprint_of_rfc7638_example() {
    // RFC 7638 §3.1.
    let n = base64::Engine::decode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
    )
    .unwrap();
    let key = JwsKey::rsa(JwsAlg::Rs256, &n, &[1, 0, 1]).unwrap();
    assert_eq!(
        base64url(&key.thumbprint()),
        "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    );
}

#[cfg(feature = "aws-lc")]
mod signing {
    use super::*;
    use crate::jwt::{JwtClaims, UnverifiedJwt, sign_jwt_with};

    fn claims() -> JwtClaims {
        JwtClaims {
            iss: "https://auth.example.com".into(),
            sub: "svc".into(),
            aud: "https://api.example.com".into(),
            exp: 2_000_000_000,
            iat: 1_700_000_000,
            nbf: None,
            jti: "j1".into(),
            client_id: "svc".into(),
            scope: Some("read".into()),
            cnf: None,
            status: None,
        }
    }

    fn signers() -> Vec<Box<dyn JwsSigner>> {
        JwsAlg::ALL
            .into_iter()
            .map(|alg| {
                let (s, der) = generate(alg).unwrap();
                // The stored PKCS#8 loads back to the same key.
                let again = from_pkcs8_der(alg, &der).unwrap();
                assert_eq!(again.jws_key(), s.jws_key());
                assert_eq!(s.alg(), alg);
                s
            })
            .collect()
    }

    #[test]
    fn every_algorithm_signs_and_verifies_and_only_with_its_own_key() {
        let signers = signers();
        let kids: std::collections::BTreeSet<String> =
            signers.iter().map(|s| s.jws_key().kid()).collect();
        assert_eq!(kids.len(), 4, "a distinct kid per key");
        let tokens: Vec<String> = signers
            .iter()
            .map(|s| sign_jwt_with(&claims(), &s.jws_key().kid(), s.as_ref()).unwrap())
            .collect();
        for (i, text) in tokens.iter().enumerate() {
            let jwt = UnverifiedJwt::parse(text, 8192).unwrap();
            assert_eq!(jwt.alg(), signers[i].alg());
            for (j, s) in signers.iter().enumerate() {
                let r = jwt.verify_key(&s.jws_key());
                if i == j {
                    assert_eq!(r.unwrap(), claims());
                } else {
                    // Another key's algorithm (or an RS256 key for PS256) is refused
                    // before any signature arithmetic.
                    assert!(
                        matches!(r, Err(ProtoError::AlgorithmMismatch { .. })),
                        "{} token, {} key: {r:?}",
                        signers[i].alg(),
                        s.alg()
                    );
                }
            }
        }
        let rsa = &signers[1];
        assert_eq!(rsa.jws_key().rsa_bits(), Some(2048));
    }

    #[test]
    fn a_relabelled_rsa_signature_is_refused() {
        // The same RSA key material under both RSA algorithms: a PKCS#1 v1.5
        // signature presented as PS256 (and the reverse) does not verify.
        let (rs, der) = RsaSigner::generate(JwsAlg::Rs256).unwrap();
        let ps = RsaSigner::from_pkcs8_der(JwsAlg::Ps256, &der).unwrap();
        let text = sign_jwt_with(&claims(), "k", &rs).unwrap();
        let (head, rest) = text.split_once('.').unwrap();
        let relabelled_header = base64url(br#"{"alg":"PS256","typ":"at+jwt","kid":"k"}"#);
        assert_ne!(head, relabelled_header);
        let forged = format!("{relabelled_header}.{rest}");
        let jwt = UnverifiedJwt::parse(&forged, 8192).unwrap();
        assert!(matches!(
            jwt.verify_key(&ps.jws_key()),
            Err(ProtoError::BadSignature)
        ));
    }

    #[test]
    fn tampered_tokens_are_refused() {
        for s in signers() {
            let text = sign_jwt_with(&claims(), "k", s.as_ref()).unwrap();
            let mut parts: Vec<String> = text.split('.').map(String::from).collect();
            let mut c = claims();
            c.scope = Some("admin".into());
            parts[1] = base64url(&serde_json::to_vec(&c).unwrap());
            let forged = parts.join(".");
            let jwt = UnverifiedJwt::parse(&forged, 8192).unwrap();
            assert!(
                matches!(jwt.verify_key(&s.jws_key()), Err(ProtoError::BadSignature)),
                "{}",
                s.alg()
            );
        }
    }

    #[test]
    fn jwk_members() {
        for s in signers() {
            let key = s.jws_key();
            let jwk = key.to_jwk(&key.kid());
            assert_eq!(jwk["alg"], key.alg().as_str());
            assert_eq!(jwk["use"], "sig");
            let kty = match key.alg() {
                JwsAlg::Es256 => "EC",
                JwsAlg::Rs256 | JwsAlg::Ps256 => "RSA",
                JwsAlg::EdDsa => "OKP",
            };
            assert_eq!(jwk["kty"], kty);
            if kty == "RSA" {
                assert_eq!(jwk["e"], "AQAB");
                assert_eq!(jwk["n"].as_str().unwrap().len(), 342);
            }
            if kty == "OKP" {
                assert_eq!(jwk["crv"], "Ed25519");
            }
            assert!(jwk.get("d").is_none());
        }
    }
}
