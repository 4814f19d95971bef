//! `private_key_jwt` with a `jwks_uri`: the broker fetches the client's JWK
//! Set from an HTTPS server of the operator's allow-list (here a tiny TLS
//! server on loopback with the broker's own server certificate, counting
//! requests), caches it, and refetches on an unknown `kid` at most once per
//! cooldown, so no token request can make it fetch more often than that.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use certbound_e2e::Fixture;
use certbound_e2e::https::HttpsClient;
use certbound_registry::registry::ClientCredential;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::oauth::JWT_API;
use crate::private_key_jwt::{JWT_BEARER, assertion, ec_key};

/// Serves `body` as JSON over TLS to every request; counts the requests.
async fn serve_jwks(
    listener: tokio::net::TcpListener,
    dir: &std::path::Path,
    body: String,
) -> anyhow::Result<Arc<AtomicU64>> {
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(dir.join("pki/server.cert.pem"))?
            .collect::<Result<_, _>>()?;
    let key = PrivateKeyDer::from_pem_file(dir.join("pki/server.key.pem"))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(certs, key)?;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let count = Arc::new(AtomicU64::new(0));
    let counted = count.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let body = body.clone();
            let counted = counted.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                counted.fetch_add(1, Ordering::SeqCst);
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(answer.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    Ok(count)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jwks_uri_is_fetched_from_the_allow_list_cached_and_never_refetched_per_request()
-> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let allowed = format!("jwks_uri_allowed_prefixes = [\"https://127.0.0.1:{port}/\"]");
    let fx = Fixture::with_config(&[("jwks_uri_allowed_prefixes = []", allowed.as_str())]).await?;
    let (signer, jwks) = ec_key("k1")?;
    let fetches = serve_jwks(listener, fx.path(), jwks.to_string()).await?;
    fx.registry
        .create_api_with_format(JWT_API, "reports:read", 600, "jwt")
        .await?;
    let grants = [(JWT_API.to_string(), "reports:read".to_string())];
    let uri = format!("https://127.0.0.1:{port}/client/jwks.json");
    let created = fx
        .registry
        .create_client_with("remote-keys", &grants, ClientCredential::JwksUri(uri))
        .await?;
    // A URI outside the allow-list is refused at registration.
    assert!(
        fx.registry
            .create_client_with(
                "elsewhere",
                &grants,
                ClientCredential::JwksUri("https://127.0.0.1:1/jwks.json".into()),
            )
            .await
            .is_err(),
        "a jwks_uri outside [oauth] jwks_uri_allowed_prefixes"
    );
    let https = HttpsClient::new(&fx.https_url(), fx.path(), None)?;
    let token_url = format!("{}/oauth/token", fx.https_url());
    let ask = |a: String| {
        let https = &https;
        async move {
            https
                .form(
                    "/oauth/token",
                    &[
                        ("grant_type", "client_credentials"),
                        ("audience", JWT_API),
                        ("client_assertion_type", JWT_BEARER),
                        ("client_assertion", &a),
                    ],
                    None,
                )
                .await
        }
    };
    // Fetched once, then cached: three tokens, one fetch.
    for _ in 0..3 {
        let t = ask(assertion(&signer, "k1", &created.client_id, &token_url)?).await?;
        assert_eq!(t.status, 200, "{}", t.json);
    }
    assert_eq!(
        fetches.load(Ordering::SeqCst),
        1,
        "one fetch for three tokens"
    );
    // Unknown kids: refused; at most one refetch per cooldown however many ask.
    let (other, _) = ec_key("k2")?;
    for _ in 0..5 {
        let t = ask(assertion(&other, "k2", &created.client_id, &token_url)?).await?;
        assert_eq!(t.status, 401, "{}", t.json);
        assert_eq!(t.json["error"], "invalid_client");
    }
    let n = fetches.load(Ordering::SeqCst);
    assert!(
        n <= 2,
        "{n} fetches: unknown kids must not make the broker fetch per request"
    );
    // The known key still works from the cache.
    let t = ask(assertion(&signer, "k1", &created.client_id, &token_url)?).await?;
    assert_eq!(t.status, 200, "{}", t.json);
    assert!(fetches.load(Ordering::SeqCst) <= 2);
    fx.shutdown().await;
    Ok(())
}
