use serde_json::json;

use super::*;

fn bounds() -> Bounds {
    Bounds::from_stored(
        r#"{"https://a.example":"read write","https://b.example":"read"}"#,
        "private_key_jwt tls_client_auth",
    )
    .unwrap()
}

fn jwks() -> Value {
    // A P-256 public key (the generator point).
    json!({"keys":[{"kty":"EC","crv":"P-256",
        "x":"axfR8uEsQkf4vOblY6RA8ncDfYEt6zOg9KE5RdiYwpY",
        "y":"T-NC4v4af5uO5-tKfA-eFivOM1drMV7Oy7ZAaDe_UfU"}]})
}

fn check(body: Value) -> Result<CheckedMetadata, RegistrationError> {
    check_metadata(
        &body,
        &bounds(),
        &certbound_verify::url_allow::UrlAllowList::default(),
    )
}

#[test]
fn scope_is_granted_for_every_api_of_the_bounds_that_has_it() {
    let c =
        check(json!({"token_endpoint_auth_method":"private_key_jwt","jwks":jwks(),"scope":"read"}))
            .unwrap();
    assert_eq!(
        c.grants,
        vec![
            ("https://a.example".to_string(), "read".to_string()),
            ("https://b.example".to_string(), "read".to_string())
        ]
    );
    let c = check(
        json!({"token_endpoint_auth_method":"private_key_jwt","jwks":jwks(),
        "certbound_grants":{"https://a.example":"write"}}),
    )
    .unwrap();
    assert_eq!(
        c.grants,
        vec![("https://a.example".to_string(), "write".to_string())]
    );
    // Neither: the whole bounds.
    let c = check(json!({"token_endpoint_auth_method":"private_key_jwt","jwks":jwks()})).unwrap();
    assert_eq!(c.grants.len(), 2);
}

#[test]
fn anything_beyond_the_bounds_is_invalid_client_metadata() {
    let refused = |body: Value, why: &str| match check(body.clone()) {
        Err(RegistrationError::InvalidMetadata(m)) => assert!(m.contains(why), "{body}: {m}"),
        other => panic!("{body}: {other:?}"),
    };
    let pk = |extra: Value| {
        let mut b = json!({"token_endpoint_auth_method":"private_key_jwt","jwks":jwks()});
        b.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        b
    };
    refused(pk(json!({"scope":"admin"})), "not granted");
    refused(
        pk(json!({"certbound_grants":{"https://b.example":"write"}})),
        "not granted",
    );
    refused(
        pk(json!({"certbound_grants":{"https://c.example":"read"}})),
        "grants nothing",
    );
    refused(
        pk(json!({"grant_types":["authorization_code"]})),
        "client_credentials",
    );
    refused(json!({}), "client_secret_basic");
    refused(
        json!({"token_endpoint_auth_method":"private_key_jwt"}),
        "needs jwks",
    );
    refused(
        json!({"token_endpoint_auth_method":"private_key_jwt","jwks_uri":"https://k.example/j"}),
        "jwks_uri_allowed_prefixes",
    );
    refused(
        json!({"token_endpoint_auth_method":"tls_client_auth",
               "tls_client_auth_subject_dn":"CN=a","tls_client_auth_san_dns":"a.example"}),
        "exactly one",
    );
    let tls = check(json!({"token_endpoint_auth_method":"tls_client_auth",
        "tls_client_auth_san_dns":"Partner.Example"}))
    .unwrap();
    assert_eq!(
        tls.credential.tls_san.as_deref(),
        Some("dns:partner.example")
    );
}

#[test]
fn lifetimes_and_methods_parse() {
    assert_eq!(parse_lifetime("7d").unwrap(), 7 * 86_400);
    assert_eq!(parse_lifetime("90").unwrap(), 90);
    assert!(parse_lifetime("0s").is_err());
    assert!(parse_lifetime("5y").is_err());
    assert!(parse_methods(&["self_signed_tls_client_auth".into()]).is_err());
    assert!(parse_methods(&["client_secret_post".into()]).is_ok());
}
