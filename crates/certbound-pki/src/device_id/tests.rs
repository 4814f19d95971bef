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
