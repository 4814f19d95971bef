use super::*;

#[test]
fn base64url_matches_rfc4648_vectors() {
    assert_eq!(base64url(b""), "");
    assert_eq!(base64url(b"f"), "Zg");
    assert_eq!(base64url(b"fo"), "Zm8");
    assert_eq!(base64url(b"foo"), "Zm9v");
    assert_eq!(base64url(b"foob"), "Zm9vYg");
    assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
}

#[test]
fn cose_key_round_trip_and_rejections() {
    let key = EcPublicKey {
        x: [1; 32],
        y: [2; 32],
    };
    let v = key.to_cose_key_with_kid(&key.kid());
    assert_eq!(EcPublicKey::from_cose_key(&v), Ok(key.clone()));
    assert_eq!(EcPublicKey::from_sec1(&key.to_sec1()), Ok(key.clone()));
    assert_eq!(key.kid().len(), 11);

    let Value::Map(mut m) = key.to_cose_key() else {
        panic!()
    };
    m.push((int(labels::D), Value::Bytes(vec![0; 32])));
    assert!(EcPublicKey::from_cose_key(&Value::Map(m)).is_err());

    let Value::Map(mut m) = key.to_cose_key() else {
        panic!()
    };
    m.push((int(labels::ALG), int(-36))); // ES512 with a P-256 key
    assert_eq!(
        EcPublicKey::from_cose_key(&Value::Map(m)),
        Err(ProtoError::UnsupportedAlgorithm(-36))
    );
    assert!(EcPublicKey::from_sec1(&[4; 64]).is_err());
}

#[test]
fn thumbprint_rfc9679_shape() {
    // The thumbprint input is the deterministic map {1:2, -1:1, -2:x, -3:y}.
    let key = EcPublicKey {
        x: [0; 32],
        y: [0; 32],
    };
    let enc = cbor::encode(&key.to_cose_key());
    assert_eq!(&enc[..7], &hex::decode("a4010220012158").unwrap()[..]);
}
