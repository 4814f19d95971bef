//! The `http` feature end to end: real TLS on loopback (ports picked by the
//! OS), certificates from our own CA (certbound-pki), an axum router behind
//! `TlsServer`, and `HttpsFetcher` as the client.
#![cfg(feature = "http")]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::Form;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use base64::Engine as _;
use certbound_pki::DeviceBundle;
use certbound_verify::VerifyError;
use certbound_verify::http::tls::parse_certificates;
use certbound_verify::http::{
    ClientAuth, HttpsFetcher, PeerCertificates, RemoteAddr, TlsServer, client_tls_config,
    serve_tls, server_tls_config,
};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{Notify, oneshot};

#[path = "http_plumbing/support.rs"]
mod support;
use support::{Pki, make_pki, pkcs8_to_sec1_pem};

const TIMEOUT: Duration = Duration::from_secs(10);
const MAX_BODY: usize = 64 * 1024;

/// Answers the hex SHA-256 of the client's leaf certificate, or `none`.
async fn whoami(certs: Option<PeerCertificates>, RemoteAddr(peer): RemoteAddr) -> String {
    assert!(peer.ip().is_loopback());
    match certs.as_ref().and_then(PeerCertificates::leaf) {
        Some(der) => hex::encode(Sha256::digest(der)),
        None => "none".into(),
    }
}

/// Echoes the form fields and the Authorization header as JSON.
async fn token(headers: HeaderMap, Form(form): Form<HashMap<String, String>>) -> impl IntoResponse {
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = serde_json::json!({ "form": form, "authorization": auth });
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body.to_string(),
    )
}

fn app() -> Router {
    Router::new()
        .route("/whoami", get(whoami))
        .route("/token", post(token))
        .route("/big", get(|| async { vec![b'x'; 10_000] }))
        .route(
            "/keys",
            get(|| async {
                (
                    [
                        (header::CONTENT_TYPE, "application/json"),
                        (header::CACHE_CONTROL, "public, max-age=300"),
                    ],
                    r#"{"keys":[]}"#,
                )
            }),
        )
        .route(
            "/teapot",
            get(|| async { (StatusCode::IM_A_TEAPOT, "short and stout\n") }),
        )
}

fn start(pki: &Pki, auth: ClientAuth, min_tls13: bool) -> TlsServer {
    let tls = server_tls_config(
        &pki.server.chain_pem,
        &pki.server.key_pkcs8_pem,
        Some(&pki.ca_chain_pem),
        auth,
        min_tls13,
    )
    .unwrap();
    TlsServer::start("127.0.0.1:0".parse().unwrap(), tls, app()).unwrap()
}

fn fetcher(ca_pem: &str, identity: Option<&DeviceBundle>) -> HttpsFetcher {
    let identity = identity.map(|b| (b.chain_pem.as_str(), b.key_pkcs8_pem.as_str()));
    HttpsFetcher::new(
        client_tls_config(ca_pem, identity).unwrap(),
        TIMEOUT,
        MAX_BODY,
    )
}

#[tokio::test]
async fn client_certificate_reaches_the_handler() {
    let pki = make_pki("a");
    let server = start(&pki, ClientAuth::Optional, false);
    let url = format!("{}/whoami", server.base_url());

    // (a) with a client certificate: the handler saw exactly its DER.
    let with_cert = fetcher(&pki.ca_chain_pem, Some(&pki.device));
    let fetched = with_cert.get(&url, "text/plain").await.unwrap();
    assert_eq!(fetched.status, 200);
    assert_eq!(
        String::from_utf8(fetched.body).unwrap(),
        hex::encode(Sha256::digest(&pki.device.cert.der))
    );
    assert_eq!(
        fetched.content_type.as_deref(),
        Some("text/plain; charset=utf-8")
    );

    // (b) without one: no PeerCertificates extension.
    let anonymous = fetcher(&pki.ca_chain_pem, None);
    let fetched = anonymous.get(&url, "text/plain").await.unwrap();
    assert_eq!(fetched.body, b"none");
    server.shutdown().await;
}

#[tokio::test]
async fn required_client_auth_refuses_a_client_without_certificate() {
    let pki = make_pki("a");
    let server = start(&pki, ClientAuth::Required, false);
    let url = format!("{}/whoami", server.base_url());

    // (c) the refusal surfaces as an error, and the server goes on serving.
    let err = fetcher(&pki.ca_chain_pem, None)
        .get(&url, "text/plain")
        .await
        .unwrap_err();
    assert_eq!(err.reason_code(), "tls_handshake", "{err}");
    assert!(err.to_string().contains(&url), "{err}");

    let fetched = fetcher(&pki.ca_chain_pem, Some(&pki.device))
        .get(&url, "text/plain")
        .await
        .unwrap();
    assert_eq!(
        fetched.body,
        hex::encode(Sha256::digest(&pki.device.cert.der)).as_bytes()
    );
    server.shutdown().await;
}

#[tokio::test]
async fn client_certificate_of_another_ca_is_refused() {
    let pki = make_pki("a");
    let other = make_pki("b");
    // (d) even where client certificates are optional, a presented one must verify.
    for auth in [ClientAuth::Optional, ClientAuth::Required] {
        let server = start(&pki, auth, false);
        let url = format!("{}/whoami", server.base_url());
        let foreign = fetcher(&pki.ca_chain_pem, Some(&other.device));
        let err = foreign.get(&url, "text/plain").await.unwrap_err();
        assert_eq!(err.reason_code(), "tls_handshake", "{auth:?}: {err}");
        server.shutdown().await;
    }
    // And a server of another CA is not trusted by the client.
    let server = start(&other, ClientAuth::None, false);
    let err = fetcher(&pki.ca_chain_pem, None)
        .get(&format!("{}/whoami", server.base_url()), "text/plain")
        .await
        .unwrap_err();
    assert!(matches!(err, VerifyError::TlsHandshake { .. }), "{err}");
    server.shutdown().await;
}

#[tokio::test]
async fn tls13_only_server_refuses_a_tls12_client() {
    let pki = make_pki("a");
    let server = start(&pki, ClientAuth::Optional, true);
    let url = format!("{}/whoami", server.base_url());

    // (e) a TLS 1.2-only client cannot connect ...
    let mut roots = rustls::RootCertStore::empty();
    for cert in parse_certificates(&pki.ca_chain_pem, "CA").unwrap() {
        roots.add(cert).unwrap();
    }
    let tls12 = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS12])
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let err = HttpsFetcher::new(Arc::new(tls12), TIMEOUT, MAX_BODY)
        .get(&url, "text/plain")
        .await
        .unwrap_err();
    assert_eq!(err.reason_code(), "tls_handshake", "{err}");

    // ... while the ordinary client (TLS 1.2 + 1.3) negotiates TLS 1.3.
    let fetched = fetcher(&pki.ca_chain_pem, None)
        .get(&url, "text/plain")
        .await
        .unwrap();
    assert_eq!(fetched.body, b"none");
    server.shutdown().await;
}

#[tokio::test]
async fn oversized_bodies_are_refused() {
    let pki = make_pki("a");
    let server = start(&pki, ClientAuth::None, false);
    let url = format!("{}/big", server.base_url());

    // (f) with Content-Length: refused before reading.
    let small = HttpsFetcher::new(
        client_tls_config(&pki.ca_chain_pem, None).unwrap(),
        TIMEOUT,
        1000,
    );
    let err = small.get(&url, "*/*").await.unwrap_err();
    assert_eq!(
        err,
        VerifyError::BodyTooLarge {
            url: url.clone(),
            limit: 1000
        }
    );
    // Exactly at the limit is fine.
    let exact = HttpsFetcher::new(
        client_tls_config(&pki.ca_chain_pem, None).unwrap(),
        TIMEOUT,
        10_000,
    );
    assert_eq!(exact.get(&url, "*/*").await.unwrap().body.len(), 10_000);
    server.shutdown().await;
}

/// A plain-HTTP server that streams an endless chunked body.
#[tokio::test]
async fn streamed_body_is_cut_at_the_limit() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/stream", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut request = [0u8; 1024];
        let _ = socket.read(&mut request).await.unwrap();
        socket
            .write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            .await
            .unwrap();
        let chunk = format!("{:x}\r\n{}\r\n", 500, "y".repeat(500));
        // Until the client hangs up; bounded so that a broken client cannot spin forever.
        for _ in 0..10_000 {
            if socket.write_all(chunk.as_bytes()).await.is_err() {
                return;
            }
        }
    });
    let ca = make_pki("a").ca_chain_pem;
    let plain = HttpsFetcher::new(client_tls_config(&ca, None).unwrap(), TIMEOUT, 2_000)
        .allow_plain_http(true);
    let err = plain.get(&url, "*/*").await.unwrap_err();
    assert_eq!(err.reason_code(), "body_too_large", "{err}");
    server.await.unwrap();

    // Without allow_plain_http, http:// is refused outright.
    let err = fetcher(&ca, None).get(&url, "*/*").await.unwrap_err();
    assert_eq!(err.reason_code(), "invalid_url", "{err}");
}

#[tokio::test]
async fn a_server_that_never_answers_times_out() {
    // (g) accepts, then holds the connection without a word.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}/keys", listener.local_addr().unwrap());
    let (release, released) = oneshot::channel::<()>();
    let silent = tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        let _ = released.await;
        drop(socket);
    });
    let timeout = Duration::from_millis(300);
    let ca = make_pki("a").ca_chain_pem;
    let fetcher = HttpsFetcher::new(client_tls_config(&ca, None).unwrap(), timeout, MAX_BODY);
    let started = Instant::now();
    let err = fetcher.get(&url, "application/json").await.unwrap_err();
    let elapsed = started.elapsed();
    assert_eq!(
        err,
        VerifyError::HttpTimeout {
            url,
            timeout_ms: 300
        }
    );
    assert!(elapsed >= timeout, "{elapsed:?}");
    assert!(elapsed < timeout + Duration::from_secs(2), "{elapsed:?}");
    let _ = release.send(());
    silent.await.unwrap();
}

#[tokio::test]
async fn post_form_round_trip_and_cache_headers() {
    let pki = make_pki("a");
    let server = start(&pki, ClientAuth::Optional, true);
    let client = fetcher(&pki.ca_chain_pem, Some(&pki.device));

    // (h) form fields and RFC 6749 Basic credentials arrive intact.
    let fetched = client
        .post_form(
            &format!("{}/token", server.base_url()),
            &[
                ("grant_type", "client_credentials"),
                ("scope", "telemetry:read admin&more=1"),
            ],
            Some(("svc-reporting", "s3cr:t/+ é")),
        )
        .await
        .unwrap();
    assert_eq!(fetched.status, 200);
    assert_eq!(fetched.content_type.as_deref(), Some("application/json"));
    assert_eq!(fetched.max_age, Some(0));
    let echoed: serde_json::Value = serde_json::from_slice(&fetched.body).unwrap();
    assert_eq!(echoed["form"]["grant_type"], "client_credentials");
    assert_eq!(echoed["form"]["scope"], "telemetry:read admin&more=1");
    let expected =
        base64::engine::general_purpose::STANDARD.encode("svc-reporting:s3cr%3At%2F%2B+%C3%A9");
    assert_eq!(echoed["authorization"], format!("Basic {expected}"));

    let keys = client
        .get(&format!("{}/keys", server.base_url()), "application/json")
        .await
        .unwrap();
    assert_eq!(
        (keys.max_age, keys.body.as_slice()),
        (Some(300), &br#"{"keys":[]}"#[..])
    );
    server.shutdown().await;
}

#[tokio::test]
async fn error_statuses_carry_the_status() {
    let pki = make_pki("a");
    let server = start(&pki, ClientAuth::None, false);
    let client = fetcher(&pki.ca_chain_pem, None);

    // (i) a 404 is an error carrying 404.
    let url = format!("{}/nowhere", server.base_url());
    let err = client.get(&url, "*/*").await.unwrap_err();
    assert_eq!(err.http_status(), Some(404), "{err}");
    assert_eq!(err.reason_code(), "http_status");
    assert!(err.to_string().contains("check the URL's path"), "{err}");

    let err = client
        .get(&format!("{}/teapot", server.base_url()), "*/*")
        .await
        .unwrap_err();
    match err {
        VerifyError::HttpStatus { status, body, .. } => {
            assert_eq!((status, body.as_str()), (418, "short and stout"));
        }
        other => panic!("expected HttpStatus, got {other:?}"),
    }
    server.shutdown().await;
}

#[tokio::test]
async fn garbage_and_stalled_clients_do_not_stop_the_server() {
    let pki = make_pki("a");
    let server = start(&pki, ClientAuth::Optional, false);
    let url = format!("{}/whoami", server.base_url());

    // A client that connects and says nothing (its handshake is pending).
    let stalled = tokio::net::TcpStream::connect(server.local_addr())
        .await
        .unwrap();

    // (j) a client that speaks plain HTTP to the TLS port is dropped ...
    let mut garbage = tokio::net::TcpStream::connect(server.local_addr())
        .await
        .unwrap();
    garbage
        .write_all(b"GET /whoami HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    // The server closes the connection (maybe after a TLS alert); no HTTP answer.
    let _ = garbage.read_to_end(&mut answer).await;
    assert!(!answer.starts_with(b"HTTP/"), "{answer:?}");
    drop(garbage);

    // ... and the next good client is served, as are many after it.
    let client = fetcher(&pki.ca_chain_pem, None);
    for _ in 0..5 {
        assert_eq!(client.get(&url, "text/plain").await.unwrap().body, b"none");
    }
    drop(stalled);
    server.shutdown().await;
}

#[tokio::test]
async fn shutdown_lets_in_flight_requests_finish() {
    let pki = make_pki("a");
    let entered = Arc::new(Notify::new());
    let release = Arc::new(Notify::new());
    let app = {
        let (entered, release) = (entered.clone(), release.clone());
        Router::new().route(
            "/slow",
            get(move || {
                let (entered, release) = (entered.clone(), release.clone());
                async move {
                    entered.notify_one();
                    release.notified().await;
                    "done"
                }
            }),
        )
    };
    let tls = server_tls_config(
        &pki.server.chain_pem,
        &pki.server.key_pkcs8_pem,
        None,
        ClientAuth::None,
        false,
    )
    .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stop_rx) = oneshot::channel::<()>();
    let (stopping, stopping_rx) = oneshot::channel::<()>();
    let server = tokio::spawn(serve_tls(listener, tls, app, async move {
        let _ = stop_rx.await;
        let _ = stopping.send(());
    }));

    let client = fetcher(&pki.ca_chain_pem, None);
    let request =
        tokio::spawn(async move { client.get(&format!("https://{addr}/slow"), "*/*").await });
    entered.notified().await;
    stop.send(()).unwrap();
    stopping_rx.await.unwrap();
    // The accept loop has stopped; the in-flight request still completes.
    release.notify_one();
    assert_eq!(request.await.unwrap().unwrap().body, b"done");
    server.await.unwrap().unwrap();
    // Nothing listens any more.
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn bad_tls_configuration_is_explained() {
    let pki = make_pki("a");
    let err = server_tls_config(
        "no pem here",
        &pki.server.key_pkcs8_pem,
        None,
        ClientAuth::None,
        false,
    )
    .unwrap_err();
    assert_eq!(err.reason_code(), "tls_config");
    assert!(
        err.to_string().contains("server certificate chain"),
        "{err}"
    );

    // The device key does not belong to the server certificate.
    let err = server_tls_config(
        &pki.server.chain_pem,
        &pki.device.key_pkcs8_pem,
        None,
        ClientAuth::None,
        false,
    )
    .unwrap_err();
    assert!(err.to_string().contains("does the key belong"), "{err}");

    let err = server_tls_config(
        &pki.server.chain_pem,
        &pki.server.key_pkcs8_pem,
        None,
        ClientAuth::Required,
        false,
    )
    .unwrap_err();
    assert!(err.to_string().contains("no client CA was given"), "{err}");

    let err =
        client_tls_config(&pki.ca_chain_pem, Some((&pki.device.chain_pem, "garbage"))).unwrap_err();
    assert!(err.to_string().contains("client key"), "{err}");

    // The port is taken.
    let taken = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let tls = server_tls_config(
        &pki.server.chain_pem,
        &pki.server.key_pkcs8_pem,
        None,
        ClientAuth::None,
        false,
    )
    .unwrap();
    let err = TlsServer::start(taken.local_addr().unwrap(), tls, app()).unwrap_err();
    assert_eq!(err.reason_code(), "listen", "{err}");
}

#[tokio::test]
async fn sec1_server_keys_are_accepted() {
    let pki = make_pki("a");
    let sec1_pem = pkcs8_to_sec1_pem(&pki.server.key_pkcs8_pem);
    assert!(sec1_pem.starts_with("-----BEGIN EC PRIVATE KEY-----"));
    let tls = server_tls_config(
        &pki.server.chain_pem,
        &sec1_pem,
        None,
        ClientAuth::None,
        true,
    )
    .unwrap();
    let server = TlsServer::start("127.0.0.1:0".parse().unwrap(), tls, app()).unwrap();
    let fetched = fetcher(&pki.ca_chain_pem, None)
        .get(&format!("{}/whoami", server.base_url()), "text/plain")
        .await
        .unwrap();
    assert_eq!(fetched.body, b"none");
    server.shutdown().await;
}
