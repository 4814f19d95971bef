//! Unit tests of the pure helpers: URL targets, form encoding, Cache-Control.

use ::http::HeaderMap;
use ::http::header::{CACHE_CONTROL, HeaderValue};

use super::fetch::{Target, cache_max_age, encode_form, form_encode};
use crate::VerifyError;

#[test]
fn https_targets() {
    let t = Target::parse("https://auth.example.com/.well-known/jwks.json?x=1", false).unwrap();
    assert!(t.tls);
    assert_eq!((t.host.as_str(), t.port), ("auth.example.com", 443));
    assert_eq!(t.authority, "auth.example.com");
    assert_eq!(t.path_and_query, "/.well-known/jwks.json?x=1");

    let t = Target::parse("https://127.0.0.1:8443", false).unwrap();
    assert_eq!(
        (t.host.as_str(), t.port, t.path_and_query.as_str()),
        ("127.0.0.1", 8443, "/")
    );

    let t = Target::parse("HTTPS://[::1]:9000/token", false).unwrap();
    assert_eq!((t.host.as_str(), t.port), ("::1", 9000));
    assert_eq!(t.authority, "[::1]:9000");
}

#[test]
fn refused_targets() {
    for (url, needle) in [
        ("http://auth.example.com/", "plain http:// is refused"),
        ("ftp://auth.example.com/", "only https://"),
        ("/relative/path", "only https://"),
        (
            "https://user:pw@auth.example.com/",
            "credentials in the URL",
        ),
        ("not a url", "not a valid absolute URL"),
    ] {
        let err = Target::parse(url, false).unwrap_err();
        assert!(
            matches!(err, VerifyError::InvalidUrl { .. }),
            "{url}: {err:?}"
        );
        assert_eq!(err.reason_code(), "invalid_url");
        assert!(err.to_string().contains(needle), "{url}: {err}");
    }
    let t = Target::parse("http://127.0.0.1:8080/x", true).unwrap();
    assert!(!t.tls);
    assert_eq!(t.port, 8080);
    assert_eq!(Target::parse("http://localhost/x", true).unwrap().port, 80);
}

#[test]
fn form_encoding() {
    assert_eq!(form_encode("AZaz09*-._"), "AZaz09*-._");
    assert_eq!(form_encode("a b&c=d+e/é~"), "a+b%26c%3Dd%2Be%2F%C3%A9%7E");
    assert_eq!(
        encode_form(&[
            ("grant_type", "client_credentials"),
            ("scope", "a:read b:write")
        ]),
        "grant_type=client_credentials&scope=a%3Aread+b%3Awrite"
    );
    assert_eq!(encode_form(&[]), "");
}

fn headers(values: &[&str]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for v in values {
        h.append(CACHE_CONTROL, HeaderValue::from_str(v).unwrap());
    }
    h
}

#[test]
fn cache_control_max_age() {
    assert_eq!(cache_max_age(&headers(&[])), None);
    assert_eq!(cache_max_age(&headers(&["public, max-age=300"])), Some(300));
    assert_eq!(cache_max_age(&headers(&["Max-Age=\"60\""])), Some(60));
    assert_eq!(
        cache_max_age(&headers(&["max-age=300", "max-age=30"])),
        Some(30)
    );
    assert_eq!(cache_max_age(&headers(&["max-age=300, no-cache"])), Some(0));
    assert_eq!(cache_max_age(&headers(&["no-store"])), Some(0));
    assert_eq!(cache_max_age(&headers(&["max-age=-5, public"])), None);
    assert_eq!(cache_max_age(&headers(&["s-maxage=10"])), None);
}
