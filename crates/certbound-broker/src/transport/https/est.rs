//! EST over HTTPS (RFC 7030): `GET /.well-known/est/cacerts` and `POST
//! /.well-known/est/simplereenroll` (mTLS with the current device
//! certificate; base64 PKCS#10 in, base64 PKCS#7 certs-only out).

use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use certbound_verify::http::PeerCertificates;

use super::HttpsState;
use crate::clock::unix_now;

const PKCS7_CERTS: &str = "application/pkcs7-mime; smime-type=certs-only";

/// A base64 PKCS#7 certs-only answer.
fn certs_only(certs: &[Vec<u8>]) -> Response {
    let der = certbound_pki::pkcs7_certs_only(certs);
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut r = (StatusCode::OK, body).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(PKCS7_CERTS));
    h.insert(
        "content-transfer-encoding",
        HeaderValue::from_static("base64"),
    );
    r
}

fn text(status: StatusCode, message: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        message,
    )
        .into_response()
}

/// `GET /.well-known/est/cacerts`: the CA certificates.
pub async fn cacerts(State(state): State<HttpsState>) -> Response {
    certs_only(&state.pki.get().chain_der)
}

/// `POST /.well-known/est/simplereenroll`.
pub async fn simplereenroll(
    State(state): State<HttpsState>,
    peer: Option<Extension<PeerCertificates>>,
    body: Bytes,
) -> Response {
    est_enroll(state, peer, body, false).await
}

/// `POST /.well-known/est/simpleenroll`: first enrollment with a claim
/// certificate as the TLS client certificate; the device id is the CSR's CN.
pub async fn simpleenroll(
    State(state): State<HttpsState>,
    peer: Option<Extension<PeerCertificates>>,
    body: Bytes,
) -> Response {
    est_enroll(state, peer, body, true).await
}

async fn est_enroll(
    state: HttpsState,
    peer: Option<Extension<PeerCertificates>>,
    body: Bytes,
    first: bool,
) -> Response {
    let Some(Extension(peer)) = peer else {
        return text(
            StatusCode::UNAUTHORIZED,
            "EST needs a TLS client certificate: the current device certificate (simplereenroll) or a claim certificate (simpleenroll)\n"
                .into(),
        );
    };
    // RFC 7030 §4.2.1: base64 (whitespace allowed); accept raw DER too.
    let compact: Vec<u8> = body
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    let csr = match base64::engine::general_purpose::STANDARD.decode(&compact) {
        Ok(der) => der,
        Err(_) if body.first() == Some(&0x30) => body.to_vec(),
        Err(_) => {
            return text(
                StatusCode::BAD_REQUEST,
                "the body must be a base64 PKCS#10 CSR (application/pkcs10)\n".into(),
            );
        }
    };
    let result = if first {
        state
            .devices
            .claims
            .handle_est(peer.0.as_slice(), &csr, unix_now())
            .await
    } else {
        state
            .devices
            .enroll
            .handle_est(peer.0.as_slice(), &csr, unix_now())
            .await
    };
    match result {
        Ok(cert) => certs_only(&cert.chain),
        // RFC 7030 §4.2.3: an error is text; the status and Retry-After are
        // the same as on every other HTTPS route.
        Err(r) => {
            let text = format!("{}: {}\n", r.code().name(), r.description());
            super::reply::refusal(&r, "text/plain; charset=utf-8", text.into_bytes())
        }
    }
}

/// `GET /crl`: the current issuing CA's CRL, DER (`application/pkix-crl`).
/// The CRLs of the previous issuing CAs (still valid after `ca
/// rotate-issuing`) are at `GET /crl/{serial}`, and all of them at `GET /crls`.
pub async fn crl(State(state): State<HttpsState>) -> Response {
    match state.pki.crls(&state.store, unix_now()).await {
        Ok(set) => match set.current() {
            Some(c) => pkix_crl(c.crl.der.clone()),
            None => crl_unavailable(),
        },
        Err(e) => {
            tracing::error!(error = %e, "CRL could not be built");
            crl_unavailable()
        }
    }
}

/// `GET /crl/{serial}`: the CRL of the issuing CA with that serial (hex, as
/// `certbound ca show` prints it), DER; 404 for a CA that is not one of the
/// issuing CAs still valid.
pub async fn crl_of_ca(
    State(state): State<HttpsState>,
    axum::extract::Path(serial): axum::extract::Path<String>,
) -> Response {
    match state.pki.crls(&state.store, unix_now()).await {
        Ok(set) => match set.by_serial(&serial) {
            Some(c) => pkix_crl(c.crl.der.clone()),
            None => text(
                StatusCode::NOT_FOUND,
                format!(
                    "no issuing CA with serial {:?} is still valid; GET /crls for every CRL\n",
                    serial.chars().take(64).collect::<String>()
                ),
            ),
        },
        Err(e) => {
            tracing::error!(error = %e, "CRL could not be built");
            crl_unavailable()
        }
    }
}

/// `GET /crls`: the CRL of every issuing CA still valid, PEM, concatenated
/// (the current CA's first): `openssl verify -crl_check -CRLfile` reads it
/// as it is.
pub async fn crls(State(state): State<HttpsState>) -> Response {
    match state.pki.crls(&state.store, unix_now()).await {
        Ok(set) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/x-pem-file")],
            set.pem_bundle(),
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "CRL could not be built");
            crl_unavailable()
        }
    }
}

fn pkix_crl(der: Vec<u8>) -> Response {
    let mut r = (StatusCode::OK, der).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/pkix-crl"),
    );
    r
}

fn crl_unavailable() -> Response {
    text(
        StatusCode::SERVICE_UNAVAILABLE,
        "CRL unavailable; retry\n".into(),
    )
}
