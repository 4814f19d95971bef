//! HTTPS plumbing shared by the auth broker and backend APIs (cargo feature
//! `http`, off by default; it brings in tokio, hyper, axum and rustls).
//!
//! * [`tls`]: rustls server and client configurations from PEM, aws-lc-rs
//!   provider, optional TLS 1.3 only, mutual TLS against our CA
//!   ([`server_tls_config`], [`client_tls_config`], [`ClientAuth`]).
//! * [`serve`]: [`serve_tls`] / [`TlsServer`] run an axum `Router` over TLS and
//!   hand each request the client's verified certificate chain
//!   ([`PeerCertificates`]) and address ([`RemoteAddr`]), so a handler can check
//!   the certificate binding of a token
//!   ([`VerifiedToken::check_certificate_binding`](crate::VerifiedToken::check_certificate_binding)).
//! * [`fetch`]: [`HttpsFetcher`], a bounded HTTPS client (deadline, body cap,
//!   no redirects) for key sets, status lists and OAuth form posts.
//! * [`keys`]: [`RemoteKeys`], the broker's JWKS fetched from its URL,
//!   cached per `Cache-Control` and refetched on an unknown `kid` at most
//!   once per interval.
//! * [`layer`](mod@layer): [`VerifyLayer`], the axum/tower middleware that admits only
//!   requests with a valid, unrevoked, certificate-bound `Bearer` token and
//!   hands handlers the [`VerifiedToken`](crate::VerifiedToken).
//!
//! ```no_run
//! # async fn run(chain: &str, key: &str, ca: &str) -> Result<(), certbound_verify::VerifyError> {
//! use std::time::Duration;
//! use axum::{Router, routing::get};
//! use certbound_verify::http::{
//!     ClientAuth, HttpsFetcher, PeerCertificates, TlsServer, client_tls_config, server_tls_config,
//! };
//!
//! async fn whoami(certs: Option<PeerCertificates>) -> String {
//!     match certs.as_ref().and_then(PeerCertificates::leaf) {
//!         Some(der) => format!("client certificate of {} bytes", der.len()),
//!         None => "anonymous".into(),
//!     }
//! }
//!
//! let tls = server_tls_config(chain, key, Some(ca), ClientAuth::Optional, true)?;
//! let app = Router::new().route("/whoami", get(whoami));
//! let server = TlsServer::start(std::net::SocketAddr::from(([127, 0, 0, 1], 0)), tls, app)?;
//!
//! let fetcher = HttpsFetcher::new(client_tls_config(ca, None)?, Duration::from_secs(5), 64 * 1024);
//! let fetched = fetcher.get(&format!("{}/whoami", server.base_url()), "text/plain").await?;
//! assert_eq!(fetched.body, b"anonymous");
//! server.shutdown().await;
//! # Ok(())
//! # }
//! ```

pub mod fetch;
pub mod keys;
pub mod layer;
pub mod serve;
pub mod tls;

pub use fetch::{Fetched, HttpsFetcher, RawResponse};
pub use keys::{RemoteKeys, RemoteKeysConfig};
pub use layer::{
    API_KEY_HEADER, ApiKeyIntrospection, AuthError, AuthStats, Authenticator, KeySource,
    StatusCheck, VerifyConfig, VerifyLayer, VerifyService, layer,
};
pub use serve::{
    BodyTimeout, PeerCertificates, RemoteAddr, ServeLimits, TlsServer, serve_tls, serve_tls_with,
};
pub use tls::{ClientAuth, client_tls_config, server_tls_config};

#[cfg(test)]
mod unit_tests;
