use super::*;

fn quickstart_claims() -> Claims {
    Claims {
        iss: Some("https://auth.example.com".into()),
        sub: Some("sensor-1".into()),
        aud: vec!["https://telemetry.example.com".into()],
        exp: Some(1_700_003_600),
        iat: Some(1_700_000_000),
        cti: Some(vec![1; 16]),
        scope: Some("telemetry:write".into()),
        cnf: Some(EcPublicKey {
            x: [1; 32],
            y: [2; 32],
        }),
        ..Claims::default()
    }
}

/// Golden encodings, checked both ways (produced independently with python cbor2).
#[test]
fn golden_hex_both_ways() {
    let table: Vec<(Claims, &str)> = vec![
        (
            quickstart_claims(),
            concat!(
                "a8",                                                               // map(8)
                "01781868747470733a2f2f617574682e6578616d706c652e636f6d",           // 1: iss
                "026873656e736f722d31",                                             // 2: sub
                "03781d68747470733a2f2f74656c656d657472792e6578616d706c652e636f6d", // 3: aud
                "041a6553ff10",                                                     // 4: exp
                "061a6553f100",                                                     // 6: iat
                "075001010101010101010101010101010101",                             // 7: cti
                "08a101a4010220012158200101010101010101010101010101010101010101010101010101010101010101",
                "2258200202020202020202020202020202020202020202020202020202020202020202", // 8: cnf
                "096f74656c656d657472793a7772697465", // 9: scope
            ),
        ),
        (
            Claims {
                iss: Some("a".into()),
                aud: vec!["x".into(), "y".into()],
                exp: Some(10),
                nbf: Some(5),
                iat: Some(1),
                ..Claims::default()
            },
            "a5016161038261786179040a05050601",
        ),
    ];
    for (claims, hex_str) in table {
        assert_eq!(hex::encode(claims.to_cbor()), hex_str);
        let decoded = Claims::from_cbor(&hex::decode(hex_str).unwrap(), Limits::default()).unwrap();
        assert_eq!(decoded, claims);
    }
}

#[test]
fn decode_rejects_bad_claims() {
    let bad = [
        ("a10301", "aud not text"),
        ("a10380", "aud empty array"),
        ("a1044161", "exp not a number"),
        ("a10820", "cnf not a map"),
        ("a108a0", "cnf with no method"),
        ("a108a10342aabb", "cnf kid method unsupported"),
        ("a2016161016162", "duplicate iss"),
    ];
    for (h, why) in bad {
        assert!(
            Claims::from_cbor(&hex::decode(h).unwrap(), Limits::default()).is_err(),
            "{why}"
        );
    }
}

fn expect(now: u64) -> Expectations<'static> {
    Expectations {
        issuer: Some("https://auth.example.com"),
        audience: "https://telemetry.example.com",
        required_scopes: &["telemetry:write"],
        now,
        leeway: 60,
    }
}

#[test]
fn validation_rules() {
    let c = quickstart_claims();
    assert_eq!(c.validate(&expect(1_700_000_100)), Ok(()));
    // Expiry with leeway.
    assert_eq!(c.validate(&expect(1_700_003_659)), Ok(()));
    assert!(matches!(
        c.validate(&expect(1_700_003_660)),
        Err(ClaimError::Expired { .. })
    ));
    // iat in the future beyond leeway.
    assert!(matches!(
        c.validate(&expect(1_699_999_000)),
        Err(ClaimError::NotYetValid { .. })
    ));
    // nbf.
    let mut n = c.clone();
    n.nbf = Some(1_700_001_000);
    assert!(matches!(
        n.validate(&expect(1_700_000_100)),
        Err(ClaimError::NotYetValid { .. })
    ));
    // exp required.
    let mut e = c.clone();
    e.exp = None;
    assert_eq!(
        e.validate(&expect(1_700_000_100)),
        Err(ClaimError::Missing("exp"))
    );
    // audience.
    let mut a = c.clone();
    a.aud = vec!["https://other.example.com".into()];
    assert!(matches!(
        a.validate(&expect(1_700_000_100)),
        Err(ClaimError::AudienceMismatch { .. })
    ));
    a.aud.push("https://telemetry.example.com".into());
    assert_eq!(a.validate(&expect(1_700_000_100)), Ok(()));
    // issuer.
    let mut i = c.clone();
    i.iss = Some("https://evil.example.com".into());
    assert!(matches!(
        i.validate(&expect(1_700_000_100)),
        Err(ClaimError::IssuerMismatch { .. })
    ));
    // scope: "telemetry:writeX" must not satisfy "telemetry:write".
    let mut s = c;
    s.scope = Some("telemetry:writeX firmware:read".into());
    assert!(matches!(
        s.validate(&expect(1_700_000_100)),
        Err(ClaimError::ScopeMissing { .. })
    ));
}

#[test]
fn scope_intersection_is_least_privilege() {
    let granted = vec!["a".to_string(), "b".to_string()];
    assert_eq!(intersect_scopes(Some("b c a b"), &granted), vec!["b", "a"]);
    assert_eq!(intersect_scopes(Some("c"), &granted), Vec::<String>::new());
    assert_eq!(intersect_scopes(None, &granted), granted);
    assert_eq!(intersect_scopes(Some("  "), &granted), granted);
}
