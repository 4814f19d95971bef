use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::*;
use crate::claims::Claims;
use crate::crypto::{P256Signer, P256Verifier, Signer};
use crate::key::EcPublicKey;
use crate::token::{self, UnverifiedToken};

/// draft-ietf-oauth-status-list `examples/status_list_cwt.md` (ES256, kid "12"
/// unprotected, claims in the order 2, 6, 4, 65534, 65533).
const DRAFT_LIST_TOKEN: &str = concat!(
    "d2845820a2012610781a6170706c69636174696f6e2f7374617475736c6973742b63",
    "7774a1044231325850a502782168747470733a2f2f6578616d706c652e636f6d2f73",
    "74617475736c697374732f31061a648c5bea041a8898dfea19fffe19a8c019fffda2",
    "646269747301636c73744a78dadbb918000217015d584093fa4d01032b18c35e2fe1",
    "101b77fd6cc9440022caa4694450c4e4e9feab4e99d1fa6d9772ce2bf3a12e0323de",
    "d7c982c5e101a5e67f0cbc1e2b6f57ce99c279",
);

/// draft-ietf-oauth-status-list `examples/referenced_token_cwt.md` (no `typ`).
const DRAFT_REFERENCED_TOKEN: &str = concat!(
    "d28443a10126a1044231325866a502653132333435017368747470733a2f2f657861",
    "6d706c652e636f6d061a648c5bea041a8898dfea19ffffa16b7374617475735f6c69",
    "7374a2636964780063757269782168747470733a2f2f6578616d706c652e636f6d2f",
    "7374617475736c697374732f315840340f7efea10f1a36dc4797636a17b4dd4848b6",
    "8997d1d10e8cceb3a38ff33b3dda72964a83989f6cf98560c2fc97a08bc8977cc6b0",
    "f84cfedab93d3e4481e938",
);

const DRAFT_URI: &str = "https://example.com/statuslists/1";
const DRAFT_STATUSES: [u8; 16] = [1, 0, 0, 1, 1, 1, 0, 1, 1, 1, 0, 0, 0, 1, 0, 1];
/// Between the vector's iat (1686920170) and exp (2291720170).
const NOW: u64 = 1_700_000_000;
const MAX: usize = 1 << 20;

fn b64u32(s: &str) -> [u8; 32] {
    URL_SAFE_NO_PAD.decode(s).unwrap().try_into().unwrap()
}

/// The draft's signing key (repository `src/util.py`, JWK).
fn draft_key() -> EcPublicKey {
    EcPublicKey {
        x: b64u32("I3HWm_0Ds1dPMI-IWmf4mBmH-YaeAVbPVu7vB27CxXo"),
        y: b64u32("6N_d5Elj9bs1htgV3okJKIdbHEpkgTmAluYKJemzn1M"),
    }
}

fn draft_signer() -> P256Signer {
    P256Signer::from_scalar(&b64u32("xzUEdsyLosZF0acZGRAjTKImb0lQvAvssDK5XIZELd0")).unwrap()
}

fn check_draft_token(verifier: &dyn Verifier) {
    let bytes = hex::decode(DRAFT_LIST_TOKEN).unwrap();
    let parsed = UnverifiedStatusList::parse(&bytes, Limits::default()).unwrap();
    assert_eq!(parsed.kid(), b"12");
    let t = parsed
        .verify(verifier, Limits::default(), DRAFT_URI, NOW, 60, MAX)
        .unwrap();
    assert_eq!(t.sub, DRAFT_URI);
    assert_eq!(t.iat, 1_686_920_170);
    assert_eq!(t.exp, Some(2_291_720_170));
    assert_eq!(t.ttl, Some(43_200));
    assert_eq!(t.list.bits(), 1);
    assert_eq!(t.list.as_bytes(), [0xb9, 0xa3]);
    assert_eq!(t.list.len(), 16);
    for (i, s) in DRAFT_STATUSES.iter().enumerate() {
        assert_eq!(t.list.get(i as u64), Some(*s), "idx {i}");
    }
    assert_eq!(t.list.get(16), None);
    assert!(t.list.status(16).is_err());
}

#[test]
fn draft_status_list_token_verifies_with_p256() {
    assert_eq!(draft_signer().public_key(), &draft_key());
    check_draft_token(&P256Verifier::new(&draft_key()).unwrap());
}

#[cfg(feature = "aws-lc")]
#[test]
fn draft_status_list_token_verifies_with_aws_lc() {
    check_draft_token(&crate::crypto::AwsLcVerifier::new(&draft_key()).unwrap());
}

#[test]
fn draft_referenced_token_carries_the_status_claim() {
    let bytes = hex::decode(DRAFT_REFERENCED_TOKEN).unwrap();
    let sign1 = UnverifiedSign1::parse(&bytes, Limits::default(), true).unwrap();
    let payload = sign1
        .verify(&P256Verifier::new(&draft_key()).unwrap())
        .unwrap();
    let claims = Claims::from_cbor(payload, Limits::default()).unwrap();
    let status = StatusRef {
        idx: 0,
        uri: DRAFT_URI.into(),
    };
    assert_eq!(claims.status, Some(status));
    assert_eq!(claims.sub.as_deref(), Some("12345"));
    assert_eq!(claims.iss.as_deref(), Some("https://example.com"));
    assert!(
        claims.other.is_empty(),
        "65535 is no longer kept in `other`"
    );
    // Our re-encoding (keys ascending) decodes to the same claims.
    assert_eq!(
        Claims::from_cbor(&claims.to_cbor(), Limits::default()).unwrap(),
        claims
    );
    // It has no typ, so it is not a certbound access token.
    assert!(matches!(
        UnverifiedToken::parse(&bytes, Limits::default()),
        Err(ProtoError::WrongType { .. })
    ));
}

/// The draft's 1-bit and 2-bit encoding examples (`status_list_encoding*_cbor.md`).
#[test]
fn draft_encoding_examples_pack_lsb_first() {
    let mut one = StatusList::new(1, 16).unwrap();
    for (i, s) in DRAFT_STATUSES.iter().enumerate() {
        one.set(i as u64, *s).unwrap();
    }
    assert_eq!(one.as_bytes(), [0xb9, 0xa3]);
    let lst = hex::decode("78dadbb918000217015d").unwrap();
    assert_eq!(StatusList::from_compressed(1, &lst, MAX).unwrap(), one);

    let two_statuses = [1, 2, 0, 3, 0, 1, 0, 1, 1, 2, 3, 3];
    let mut two = StatusList::new(2, 12).unwrap();
    for (i, s) in two_statuses.iter().enumerate() {
        two.set(i as u64, *s).unwrap();
    }
    assert_eq!(two.as_bytes(), [0xc9, 0x44, 0xf9]);
    let lst = hex::decode("78da3be9f2130003df0207").unwrap();
    let inflated = StatusList::from_compressed(2, &lst, MAX).unwrap();
    assert_eq!(inflated, two);
    for (i, s) in two_statuses.iter().enumerate() {
        assert_eq!(inflated.get(i as u64), Some(*s));
    }
}

#[test]
fn round_trips_for_every_width() {
    for bits in [1u8, 2, 4, 8] {
        let max = ((1u16 << bits) - 1) as u8;
        let len = 1000;
        let mut list = StatusList::new(bits, len).unwrap();
        assert_eq!(list.len(), len);
        assert_eq!(
            list.as_bytes().len() as u64,
            (len * u64::from(bits)).div_ceil(8)
        );
        for i in (0..len).filter(|i| i % 7 == 0 || i % 11 == 3) {
            list.set(i, (i % (u64::from(max) + 1)) as u8).unwrap();
        }
        // Setting back and forth leaves the neighbours alone.
        list.set(500, max).unwrap();
        list.set(500, STATUS_VALID).unwrap();
        let inflated = StatusList::from_compressed(bits, &list.to_compressed(), MAX).unwrap();
        for i in 0..len {
            assert_eq!(inflated.get(i), list.get(i), "bits {bits} idx {i}");
        }
        // Through a signed token too.
        let token = StatusListToken {
            sub: "https://auth.example.com/status/1".into(),
            iat: NOW - 10,
            exp: Some(NOW + 3600),
            ttl: Some(300),
            list: list.clone(),
        };
        let signer = P256Signer::from_scalar(&[7; 32]).unwrap();
        let bytes = mint_status_list(&token, "k1", &signer).unwrap();
        let parsed = UnverifiedStatusList::parse(&bytes, Limits::default()).unwrap();
        let verifier = P256Verifier::new(signer.public_key()).unwrap();
        let back = parsed
            .verify(&verifier, Limits::default(), &token.sub, NOW, 60, MAX)
            .unwrap();
        assert_eq!(back, token, "bits {bits}");
    }
}

#[test]
fn list_rules_are_enforced() {
    for bits in [0u8, 3, 5, 7, 16, 255] {
        assert!(StatusList::new(bits, 8).is_err(), "bits {bits}");
        assert!(
            StatusList::from_bytes(bits, vec![0]).is_err(),
            "bits {bits}"
        );
        assert!(
            StatusList::from_compressed(bits, &[], MAX).is_err(),
            "bits {bits}"
        );
    }
    assert!(StatusList::new(8, u64::MAX).is_err(), "too large to exist");
    let mut l = StatusList::new(2, 5).unwrap();
    assert!(l.set(5, 1).is_err(), "index out of bounds");
    assert!(l.set(0, 4).is_err(), "value does not fit in 2 bits");
    assert!(l.set(4, 3).is_ok());
    assert_eq!(l.get(4), Some(3));
    assert_eq!(l.get(5), None);
    assert!(StatusList::new(1, 1).unwrap().set(0, 2).is_err());
    assert!(StatusList::new(4, 1).unwrap().set(0, 16).is_err());
    assert!(StatusList::new(8, 1).unwrap().set(0, 255).is_ok());
    let empty = StatusList::new(1, 0).unwrap();
    assert!(empty.is_empty());
    assert_eq!(empty.get(0), None);
}

#[test]
fn inflation_is_bounded_and_strict() {
    // Zip bomb: 1 MiB of zeros compresses to about a kilobyte.
    let big = StatusList::new(8, 1 << 20).unwrap();
    let lst = big.to_compressed();
    assert!(lst.len() < 2048);
    assert_eq!(
        StatusList::from_compressed(8, &lst, 1000),
        Err(ProtoError::StatusListTooLarge { limit: 1000 })
    );
    assert!(StatusList::from_compressed(8, &lst, (1 << 20) - 1).is_err());
    assert_eq!(
        StatusList::from_compressed(8, &lst, 1 << 20).unwrap().len(),
        1 << 20
    );

    let good = hex::decode("78dadbb918000217015d").unwrap();
    let mut bad_checksum = good.clone();
    *bad_checksum.last_mut().unwrap() ^= 1;
    let mut trailing = good.clone();
    trailing.push(0);
    let cases: [(&str, &[u8]); 6] = [
        ("garbage", b"not zlib at all"),
        ("empty", b""),
        (
            "raw deflate without the zlib header",
            &good[2..good.len() - 4],
        ),
        ("truncated", &good[..good.len() - 3]),
        ("bad adler32", &bad_checksum),
        ("trailing bytes", &trailing),
    ];
    for (why, lst) in cases {
        assert!(
            matches!(
                StatusList::from_compressed(1, lst, MAX),
                Err(ProtoError::InvalidStatusList(_))
            ),
            "{why}"
        );
    }
}

fn signer() -> P256Signer {
    P256Signer::from_scalar(&[7; 32]).unwrap()
}

fn verifier() -> P256Verifier {
    P256Verifier::new(signer().public_key()).unwrap()
}

fn sample_token() -> StatusListToken {
    let mut list = StatusList::new(1, 64).unwrap();
    list.set(3, STATUS_INVALID).unwrap();
    StatusListToken {
        sub: DRAFT_URI.into(),
        iat: NOW,
        exp: Some(NOW + 600),
        ttl: Some(60),
        list,
    }
}

fn verify_bytes(bytes: &[u8], now: u64, max: usize) -> Result<StatusListToken, ProtoError> {
    UnverifiedStatusList::parse(bytes, Limits::default())?.verify(
        &verifier(),
        Limits::default(),
        DRAFT_URI,
        now,
        60,
        max,
    )
}

/// Signs arbitrary claims as a status list token.
fn sign_claims(claims: Value) -> Vec<u8> {
    let params = ProtectedParams {
        kid: Some(b"k".to_vec()),
        typ: Some(TYP_STATUS_LIST),
        extra: Vec::new(),
    };
    cose::sign1(params, cbor::encode(&claims), &signer()).unwrap()
}

#[test]
fn minted_token_has_the_draft_form() {
    let bytes = mint_status_list(&sample_token(), "k1", &signer()).unwrap();
    assert_eq!(bytes[0], 0xd2, "tag 18, not wrapped in tag 61");
    let sign1 = UnverifiedSign1::parse(&bytes, Limits::default(), false).unwrap();
    assert_eq!(sign1.typ.as_deref(), Some(TYP_STATUS_LIST));
    assert_eq!(
        sign1.protected_value(4),
        None,
        "kid is a coset field, not `rest`"
    );
    assert_eq!(sign1.kid(), b"k1");
    let payload = cbor::decode_strict(sign1.unverified_payload(), Limits::default()).unwrap();
    let keys: Vec<i64> = cbor::map(&payload, "t")
        .unwrap()
        .iter()
        .map(|(k, _)| cbor::as_i64(k).unwrap())
        .collect();
    assert_eq!(keys, [2, 4, 6, CLAIM_STATUS_LIST, CLAIM_TTL]);
    let back = verify_bytes(&bytes, NOW, MAX).unwrap();
    assert_eq!(back, sample_token());
    assert_eq!(back.list.status(3).unwrap(), STATUS_INVALID);
    assert_eq!(back.list.status(4).unwrap(), STATUS_VALID);
    // Optional claims may be absent.
    let minimal = StatusListToken {
        exp: None,
        ttl: None,
        ..sample_token()
    };
    let bytes = mint_status_list(&minimal, "k1", &signer()).unwrap();
    assert_eq!(verify_bytes(&bytes, NOW, MAX).unwrap(), minimal);
}

#[test]
fn token_kinds_cannot_be_swapped() {
    // An access token presented as a status list.
    let claims = Claims {
        sub: Some(DRAFT_URI.into()),
        exp: Some(NOW + 60),
        iat: Some(NOW),
        ..Claims::default()
    };
    let at = token::mint(&claims, "k1", &signer()).unwrap();
    assert!(matches!(
        UnverifiedStatusList::parse(&at, Limits::default()),
        Err(ProtoError::WrongType {
            expected: TYP_STATUS_LIST,
            ..
        })
    ));
    // A status list presented as an access token.
    let list = mint_status_list(&sample_token(), "k1", &signer()).unwrap();
    assert!(matches!(
        UnverifiedToken::parse(&list, Limits::default()),
        Err(ProtoError::WrongType {
            expected: token::TYP_ACCESS_TOKEN,
            ..
        })
    ));
    // No typ at all (the draft's referenced token).
    let untyped = hex::decode(DRAFT_REFERENCED_TOKEN).unwrap();
    assert!(matches!(
        UnverifiedStatusList::parse(&untyped, Limits::default()),
        Err(ProtoError::WrongType { .. })
    ));
    // A CWT tag 61 around a status list is refused (the draft forbids it).
    let mut tagged = vec![0xd8, 0x3d];
    tagged.extend_from_slice(&list);
    assert!(UnverifiedStatusList::parse(&tagged, Limits::default()).is_err());
}

#[test]
fn claim_checks_refuse_stale_foreign_and_forged_lists() {
    let bytes = mint_status_list(&sample_token(), "k1", &signer()).unwrap();
    // Wrong sub.
    let r = UnverifiedStatusList::parse(&bytes, Limits::default())
        .unwrap()
        .verify(
            &verifier(),
            Limits::default(),
            "https://other/1",
            NOW,
            60,
            MAX,
        );
    assert!(matches!(
        r,
        Err(ProtoError::Claim(ClaimError::SubjectMismatch { .. }))
    ));
    // Expired (exp + leeway reached), and still fine just before.
    assert!(verify_bytes(&bytes, NOW + 600 + 59, MAX).is_ok());
    assert!(matches!(
        verify_bytes(&bytes, NOW + 600 + 60, MAX),
        Err(ProtoError::Claim(ClaimError::Expired { .. }))
    ));
    // iat in the future beyond the leeway.
    assert!(verify_bytes(&bytes, NOW - 60, MAX).is_ok());
    assert!(matches!(
        verify_bytes(&bytes, NOW - 61, MAX),
        Err(ProtoError::Claim(ClaimError::NotYetValid { .. }))
    ));
    // Signed by another key.
    let other = P256Signer::from_scalar(&[8; 32]).unwrap();
    let forged = mint_status_list(&sample_token(), "k1", &other).unwrap();
    assert_eq!(
        verify_bytes(&forged, NOW, MAX),
        Err(ProtoError::BadSignature)
    );
    // Tampered payload (ttl 60 -> 61).
    let mut tampered = bytes;
    let pos = tampered
        .windows(4)
        .position(|w| w == [0x19, 0xff, 0xfe, 0x18])
        .unwrap();
    tampered[pos + 4] ^= 1;
    assert_eq!(
        verify_bytes(&tampered, NOW, MAX),
        Err(ProtoError::BadSignature)
    );
    // Oversized inflate.
    let big = StatusListToken {
        list: StatusList::new(8, 100_000).unwrap(),
        ..sample_token()
    };
    let bytes = mint_status_list(&big, "k1", &signer()).unwrap();
    assert_eq!(
        verify_bytes(&bytes, NOW, 50_000),
        Err(ProtoError::StatusListTooLarge { limit: 50_000 })
    );
    assert!(verify_bytes(&bytes, NOW, 100_000).is_ok());
}

#[test]
fn malformed_list_claims_are_refused() {
    let t = |k: &str| Value::Text(k.into());
    let list = |bits: Value, lst: Value| Value::Map(vec![(t("bits"), bits), (t("lst"), lst)]);
    let good_lst = Value::Bytes(hex::decode("78dadbb918000217015d").unwrap());
    let claims = |entries: Vec<(i64, Value)>| {
        Value::Map(entries.into_iter().map(|(k, v)| (int(k), v)).collect())
    };
    let sub = || (2, t(DRAFT_URI));
    let iat = || (6, uint(NOW));
    let good = || (CLAIM_STATUS_LIST, list(uint(1), good_lst.clone()));
    assert!(verify_bytes(&sign_claims(claims(vec![sub(), iat(), good()])), NOW, MAX).is_ok());
    let bad: Vec<(&str, Value)> = vec![
        ("claims not a map", Value::Array(vec![])),
        ("sub missing", claims(vec![iat(), good()])),
        ("sub not text", claims(vec![(2, uint(1)), iat(), good()])),
        ("iat missing", claims(vec![sub(), good()])),
        ("iat not a date", claims(vec![sub(), (6, t("now")), good()])),
        (
            "exp not a date",
            claims(vec![sub(), iat(), (4, t("x")), good()]),
        ),
        (
            "ttl negative",
            claims(vec![sub(), iat(), good(), (CLAIM_TTL, int(-1))]),
        ),
        (
            "ttl not int",
            claims(vec![sub(), iat(), good(), (CLAIM_TTL, t("1"))]),
        ),
        ("status_list missing", claims(vec![sub(), iat()])),
        (
            "status_list not a map",
            claims(vec![sub(), iat(), (CLAIM_STATUS_LIST, uint(1))]),
        ),
        (
            "bits missing",
            claims(vec![
                sub(),
                iat(),
                (
                    CLAIM_STATUS_LIST,
                    Value::Map(vec![(t("lst"), good_lst.clone())]),
                ),
            ]),
        ),
        (
            "bits 3",
            claims(vec![
                sub(),
                iat(),
                (CLAIM_STATUS_LIST, list(uint(3), good_lst.clone())),
            ]),
        ),
        (
            "bits 256",
            claims(vec![
                sub(),
                iat(),
                (CLAIM_STATUS_LIST, list(uint(256), good_lst.clone())),
            ]),
        ),
        (
            "bits text",
            claims(vec![
                sub(),
                iat(),
                (CLAIM_STATUS_LIST, list(t("1"), good_lst.clone())),
            ]),
        ),
        (
            "lst missing",
            claims(vec![
                sub(),
                iat(),
                (CLAIM_STATUS_LIST, Value::Map(vec![(t("bits"), uint(1))])),
            ]),
        ),
        (
            "lst text",
            claims(vec![
                sub(),
                iat(),
                (CLAIM_STATUS_LIST, list(uint(1), t("eJw"))),
            ]),
        ),
        (
            "lst not zlib",
            claims(vec![
                sub(),
                iat(),
                (CLAIM_STATUS_LIST, list(uint(1), Value::Bytes(vec![1, 2]))),
            ]),
        ),
    ];
    for (why, c) in bad {
        assert!(verify_bytes(&sign_claims(c), NOW, MAX).is_err(), "{why}");
    }
}
