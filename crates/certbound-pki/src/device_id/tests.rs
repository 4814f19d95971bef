use super::*;

#[test]
fn device_id_table() {
    let long_ok = "a".repeat(128);
    let too_long = "a".repeat(129);
    let cases: &[(&str, bool)] = &[
        ("a", true),
        ("sensor-0001", true),
        ("Gateway_7.eu-west:1", true),
        ("0", true),
        ("_x", true),
        (":x", true),
        ("a.b-c_d:e", true),
        (&long_ok, true),
        ("", false),
        (&too_long, false),
        (".hidden", false),
        ("..", false),
        ("-flag", false),
        ("a/b", false),
        ("../x", false),
        ("a b", false),
        ("a\0b", false),
        ("a\nb", false),
        ("é", false),
        ("a+b", false),
        ("a#b", false),
        ("a%2F", false),
    ];
    for (id, ok) in cases {
        assert_eq!(validate_device_id(id).is_ok(), *ok, "id {id:?}");
    }
}

#[test]
fn error_names_the_rule() {
    let err = validate_device_id("a/b").unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("a/b") && msg.contains("character"), "{msg}");
    assert!(matches!(err, PkiError::InvalidDeviceId { .. }));
}

#[test]
fn uri() {
    assert_eq!(device_uri("d1"), "urn:certbound:device:d1");
}

#[test]
fn device_ids_may_not_look_like_clients_or_the_broker() {
    for id in [
        "cb_x",
        "CB_abc",
        "cb_",
        "certbound-broker",
        "Certbound-Broker",
        "admin",
    ] {
        let err = validate_device_id(id).unwrap_err().to_string();
        assert!(
            err.contains("reserved") || err.contains("cb_"),
            "{id}: {err}"
        );
        // ... but they are valid names (for services and claims).
        assert!(validate_name(id).is_ok(), "{id}");
    }
    for id in ["cbx", "cb-x", "xcb_", "certbound-broker2", "broker"] {
        assert!(validate_device_id(id).is_ok(), "{id}");
    }
}
