use super::*;

fn attrs(pairs: &[(&str, ClaimValue)]) -> Attributes {
    Attributes(
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), v.clone()))
            .collect(),
    )
}

fn text(t: &str) -> ClaimValue {
    ClaimValue::Text(t.into())
}

#[test]
fn assignments_infer_the_type_and_colon_equals_forces_text() {
    assert_eq!(
        parse_assignment("site=berlin").unwrap(),
        ("site".into(), text("berlin"))
    );
    assert_eq!(
        parse_assignment("floor=3").unwrap(),
        ("floor".into(), ClaimValue::Int(3))
    );
    assert_eq!(
        parse_assignment("delta=-12").unwrap().1,
        ClaimValue::Int(-12)
    );
    assert_eq!(
        parse_assignment("sealed=true").unwrap().1,
        ClaimValue::Bool(true)
    );
    assert_eq!(parse_assignment("zip=01234").unwrap().1, text("01234"));
    assert_eq!(parse_assignment("id:=3").unwrap(), ("id".into(), text("3")));
    assert_eq!(parse_assignment("flag:=true").unwrap().1, text("true"));
    assert_eq!(
        parse_assignment("big=99999999999999999999").unwrap().1,
        text("99999999999999999999")
    );
    assert_eq!(parse_assignment("empty=").unwrap().1, text(""));
    for bad in ["noequals", "Site=x", "1st=x", "=x", "a-b=x", "x=a\u{7}b"] {
        assert!(parse_assignment(bad).is_err(), "{bad} accepted");
    }
    let long = format!("name={}", "x".repeat(MAX_TEXT_BYTES + 1));
    assert!(parse_assignment(&long).is_err());
}

#[test]
fn attributes_are_bounded_and_round_trip_as_json() {
    let a = attrs(&[
        ("site", text("berlin")),
        ("floor", ClaimValue::Int(3)),
        ("sealed", ClaimValue::Bool(true)),
    ]);
    assert_eq!(a.to_json(), r#"{"floor":3,"sealed":true,"site":"berlin"}"#);
    assert_eq!(Attributes::from_json(&a.to_json()).unwrap(), a);
    assert!(Attributes::from_json(r#"{"x":1.5}"#).is_err());
    assert!(Attributes::from_json(r#"{"x":[1]}"#).is_err());
    assert!(Attributes::from_json(r#"{"X":1}"#).is_err());
    assert!(Attributes::from_json("[]").is_err());
    let many: BTreeMap<String, ClaimValue> = (0..=MAX_ATTRIBUTES)
        .map(|i| (format!("a{i}"), ClaimValue::Int(1)))
        .collect();
    assert!(Attributes(many).validate().is_err());
}

#[test]
fn device_attributes_win_over_groups_and_the_first_group_by_name_wins() {
    let own = attrs(&[("site", text("berlin"))]);
    let zeta = attrs(&[("site", text("paris")), ("model", text("z"))]);
    let alpha = attrs(&[("model", text("a")), ("floor", ClaimValue::Int(2))]);
    let eff = effective_attributes(&own, &[("zeta", &zeta), ("alpha", &alpha)]);
    assert_eq!(eff.get("site"), Some(&text("berlin")));
    assert_eq!(eff.get("model"), Some(&text("a")));
    assert_eq!(eff.get("floor"), Some(&ClaimValue::Int(2)));
    let conflicts = group_conflicts(&[("zeta", &zeta), ("alpha", &alpha)]);
    assert_eq!(conflicts.len(), 1);
    assert_eq!(conflicts[0].0, "model");
    assert_eq!(conflicts[0].1[0], ("alpha".to_string(), text("a")));
    let same = attrs(&[("model", text("a"))]);
    assert!(group_conflicts(&[("x", &same), ("y", &alpha)]).is_empty());
}

#[test]
fn placeholders_expand_and_a_missing_attribute_drops_the_scope() {
    let a = attrs(&[("site", text("berlin")), ("floor", ClaimValue::Int(3))]);
    assert_eq!(
        expand_scope("read:{attr.site}", None, &a).as_deref(),
        Some("read:berlin")
    );
    assert_eq!(
        expand_scope("t/{device}/{attr.site}/{attr.floor}", Some("dev-1"), &a).as_deref(),
        Some("t/dev-1/berlin/3")
    );
    assert_eq!(expand_scope("plain", None, &a).as_deref(), Some("plain"));
    assert_eq!(expand_scope("read:{attr.model}", None, &a), None);
    assert_eq!(expand_scope("read:{device}", None, &a), None);
    assert_eq!(expand_scope("read:{attr.site", None, &a), None);
    assert_eq!(expand_scope("read:{other}", None, &a), None);
    assert_eq!(expand_scope("read:{attr.site}}", None, &a), None);
    // Without a placeholder a scope is taken as the API defines it.
    assert_eq!(
        expand_scope("read:}x", None, &a).as_deref(),
        Some("read:}x")
    );
    let granted = vec![
        "read:{attr.site}".to_string(),
        "read:{attr.model}".to_string(),
        "x".to_string(),
    ];
    assert_eq!(expand_scopes(&granted, None, &a), vec!["read:berlin", "x"]);
}

#[test]
fn an_attribute_value_can_never_smuggle_in_another_scope() {
    for evil in [
        "berlin admin:all",
        "berlin\tx",
        "a\"b",
        "a\\b",
        "{attr.site}",
        "",
        "ü",
    ] {
        let a = attrs(&[("site", text(evil))]);
        assert_eq!(
            expand_scope("read:{attr.site}", None, &a),
            None,
            "{evil:?} expanded"
        );
    }
}

#[test]
fn claim_declarations_refuse_collisions_with_registered_claims() {
    let ok = ClaimDecl {
        attribute: "site".into(),
        jwt: Some("site".into()),
        cwt: Some(CwtLabel::Int(-65537)),
        ty: ClaimType::Text,
    };
    validate_claims(std::slice::from_ref(&ok)).unwrap();
    let with = |f: &dyn Fn(&mut ClaimDecl)| {
        let mut d = ok.clone();
        f(&mut d);
        validate_claims(&[d])
    };
    assert!(with(&|d| d.cwt = Some(CwtLabel::Int(9))).is_err());
    assert!(with(&|d| d.cwt = Some(CwtLabel::Int(65535))).is_err());
    assert!(with(&|d| d.cwt = Some(CwtLabel::Int(-1))).is_err());
    assert!(with(&|d| d.cwt = Some(CwtLabel::Text("scope".into()))).is_err());
    assert!(with(&|d| d.jwt = Some("client_id".into())).is_err());
    assert!(with(&|d| d.jwt = Some("iss".into())).is_err());
    assert!(
        with(&|d| {
            d.jwt = None;
            d.cwt = None;
        })
        .is_err()
    );
    let mut twice = ok.clone();
    twice.attribute = "model".into();
    assert!(validate_claims(&[ok.clone(), twice.clone()]).is_err());
    twice.jwt = Some("model".into());
    assert!(
        validate_claims(&[ok.clone(), twice.clone()]).is_err(),
        "same CWT label"
    );
    twice.cwt = Some(CwtLabel::Text("model".into()));
    validate_claims(&[ok.clone(), twice]).unwrap();
    let parsed =
        claims_from_json(r#"[{"attribute":"site","jwt":"site","cwt":-65537,"type":"text"}]"#)
            .unwrap();
    assert_eq!(parsed, vec![ok]);
    assert!(
        claims_from_json(r#"[{"attribute":"site","jwt":"site","type":"text","extra":1}]"#).is_err()
    );
}

#[test]
fn claim_values_leave_out_missing_and_mistyped_attributes() {
    let decls = vec![
        ClaimDecl {
            attribute: "site".into(),
            jwt: Some("site".into()),
            cwt: None,
            ty: ClaimType::Text,
        },
        ClaimDecl {
            attribute: "floor".into(),
            jwt: Some("floor".into()),
            cwt: None,
            ty: ClaimType::Text,
        },
        ClaimDecl {
            attribute: "model".into(),
            jwt: Some("model".into()),
            cwt: None,
            ty: ClaimType::Text,
        },
    ];
    let a = attrs(&[("site", text("berlin")), ("floor", ClaimValue::Int(3))]);
    let out = claim_values(&decls, &a);
    assert_eq!(out.len(), 2);
    assert_eq!(out[0], ClaimOutcome::Value(&decls[0], text("berlin")));
    assert_eq!(out[1], ClaimOutcome::WrongType(&decls[1], ClaimType::Int));
}
