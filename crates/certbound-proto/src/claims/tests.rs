use super::*;

/// The P-256 base point G (SEC 2 §2.4.2; y odd): a key on the curve, so
/// that the compressed `cnf` decodes back to it.
fn g() -> EcPublicKey {
    let hex32 = |s: &str| -> [u8; 32] { hex::decode(s).unwrap().try_into().unwrap() };
    EcPublicKey {
        x: hex32("6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296"),
        y: hex32("4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5"),
    }
}

/// The claims of a quick-start token (no `iss`: the signing key names it).
fn quickstart_claims() -> Claims {
    Claims {
        sub: Some("sensor-1".into()),
        aud: vec!["https://telemetry.example.com".into()],
        exp: Some(1_700_003_600),
        iat: Some(1_700_000_000),
        cti: Some(vec![1; 16]),
        scope: Some("telemetry:write".into()),
        cnf: Some(g()),
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
                "a7",                                                               // map(7)
                "026873656e736f722d31",                                             // 2: sub
                "03781d68747470733a2f2f74656c656d657472792e6578616d706c652e636f6d", // 3: aud
                "041a6553ff10",                                                     // 4: exp
                "061a6553f100",                                                     // 6: iat
                "075001010101010101010101010101010101",                             // 7: cti
                "08a101a4010220012158206b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296",
                "22f5", // 8: cnf, the point compressed (y odd: true)
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
    // issuer: none (certbound's CWTs: the signing key names it), the
    // expected one, or refused.
    assert_eq!(c.iss, None);
    let mut i = c.clone();
    i.iss = expect(0).issuer.map(str::to_string);
    assert_eq!(i.validate(&expect(1_700_000_100)), Ok(()));
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

// === status (65535, draft-ietf-oauth-status-list) ===

#[test]
fn status_claim_in_access_token_claims() {
    let status = StatusRef {
        idx: 70_000,
        uri: "https://auth.example.com/status/7".into(),
    };
    let claims = Claims {
        iss: Some("a".into()),
        exp: Some(10),
        status: Some(status.clone()),
        other: vec![
            (Value::Text("note".into()), Value::Bool(true)),
            (int(65_000), uint(1)),
            (int(-3), uint(2)),
        ],
        ..Claims::default()
    };
    let bytes = claims.to_cbor();
    let value = cbor::decode_strict(&bytes, Limits::default()).unwrap();
    let keys: Vec<Value> = cbor::map(&value, "c")
        .unwrap()
        .iter()
        .map(|(k, _)| k.clone())
        .collect();
    // 65535 sorts after 65000 and before negative and text keys.
    assert_eq!(
        keys,
        [
            int(1),
            int(4),
            int(65_000),
            int(65_535),
            // Bytewise by encoding (RFC 8949 §4.2.1): -3 (0x22) < "note" (0x64).
            int(-3),
            Value::Text("note".into())
        ]
    );
    let back = Claims::from_cbor(&bytes, Limits::default()).unwrap();
    assert_eq!(back.status, Some(status));
    assert_eq!(back.other.len(), 3);
    assert_eq!(
        hex::encode(
            Claims {
                status: Some(StatusRef {
                    idx: 0,
                    uri: "u".into()
                }),
                ..Claims::default()
            }
            .to_cbor()
        ),
        "a119ffffa16b7374617475735f6c697374a26369647800637572696175"
    );
}

#[test]
fn malformed_status_claims_are_refused() {
    let t = |k: &str| Value::Text(k.into());
    let wrap = |inner: Value| Value::Map(vec![(t("status_list"), inner)]);
    let sl = |idx: Value, uri: Value| wrap(Value::Map(vec![(t("idx"), idx), (t("uri"), uri)]));
    let bad: Vec<(&str, Value)> = vec![
        ("not a map", uint(0)),
        ("no status_list", Value::Map(vec![(t("other"), uint(0))])),
        ("status_list not a map", wrap(uint(0))),
        ("idx missing", wrap(Value::Map(vec![(t("uri"), t("u"))]))),
        ("uri missing", wrap(Value::Map(vec![(t("idx"), uint(0))]))),
        ("idx negative", sl(int(-1), t("u"))),
        ("idx text", sl(t("0"), t("u"))),
        ("uri not text", sl(uint(0), Value::Bytes(b"u".to_vec()))),
    ];
    for (why, v) in bad {
        let bytes = cbor::encode(&Value::Map(vec![(int(CLAIM_STATUS), v)]));
        assert!(
            Claims::from_cbor(&bytes, Limits::default()).is_err(),
            "{why}"
        );
    }
    // Other mechanisms beside status_list are tolerated.
    let mut ok = StatusRef {
        idx: 1,
        uri: "u".into(),
    }
    .to_claim_value();
    if let Value::Map(m) = &mut ok {
        m.push((t("other_mechanism"), uint(0)));
    }
    assert!(StatusRef::from_claim_value(&ok).is_ok());
}
