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

/// The P-256 base point G (SEC 2 §2.4.2): y is odd.
const G_X: &str = "6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296";
const G_Y: &str = "4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5";

fn hex32(s: &str) -> [u8; 32] {
    let v = hex::decode(s).unwrap();
    v.try_into().unwrap()
}

#[test]
fn compressed_cose_key_round_trips_to_the_same_point() {
    let g = EcPublicKey {
        x: hex32(G_X),
        y: hex32(G_Y),
    };
    assert!(g.y_is_odd());
    let compressed = g.to_cose_key_compressed();
    let Value::Map(entries) = &compressed else {
        panic!()
    };
    assert_eq!(map_get(entries, labels::Y), Some(&Value::Bool(true)));
    // 33 bytes shorter than the full form: the 32-byte y (2 + 32 bytes of
    // CBOR) becomes one simple value.
    assert_eq!(
        cbor::encode(&g.to_cose_key()).len() - cbor::encode(&compressed).len(),
        33
    );
    assert_eq!(EcPublicKey::from_cose_key(&compressed), Ok(g.clone()));
    // -G has the same x and the even y = p - y.
    let minus_g = EcPublicKey::from_compressed(&g.x, false).unwrap();
    assert_eq!(minus_g.x, g.x);
    assert!(!minus_g.y_is_odd());
    assert_ne!(minus_g.y, g.y);
    assert_eq!(
        EcPublicKey::from_cose_key(&minus_g.to_cose_key_compressed()),
        Ok(minus_g)
    );
    // The thumbprint and kid are those of the full key, whichever form came in.
    let back = EcPublicKey::from_cose_key(&compressed).unwrap();
    assert_eq!(back.thumbprint(), g.thumbprint());
}

#[test]
fn a_compressed_x_off_the_curve_is_refused() {
    // x = 1: 1 - 3 + b is not a square mod p for P-256, so no point has
    // it; the decompression must refuse it rather than invent a point.
    let mut x = [0u8; 32];
    x[31] = 1;
    let err = EcPublicKey::from_compressed(&x, false).unwrap_err();
    assert!(err.to_string().contains("not the x coordinate"), "{err}");
    // A y that is neither a 32-byte string nor a bool is refused as before.
    let Value::Map(mut m) = EcPublicKey {
        x: hex32(G_X),
        y: hex32(G_Y),
    }
    .to_cose_key() else {
        panic!()
    };
    m[3].1 = Value::Integer(1.into());
    assert!(EcPublicKey::from_cose_key(&Value::Map(m)).is_err());
}
