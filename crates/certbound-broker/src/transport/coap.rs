//! CoAP transport: `POST /token` (request content-format 18, response 19,
//! 2.01 Created; ACE errors on 4.00/4.01/4.03), `POST /.well-known/est/sren`
//! (also `/sren`: certificate re-enrollment with the signed request carrying
//! a CSR; 2.04 Changed with a CBOR certificate response, content-format 60),
//! `GET /.well-known/est/crts` (the CA certificates, PKCS#7 certs-only,
//! content-format 281), `GET /crl` and `GET /crl/{serial}` (the CRL of the
//! current or a previous issuing CA, DER, content-format 42) and `GET
//! /.well-known/core`.

use std::sync::Arc;

use certbound_coap::{Handler, Method, Request, Response, ResponseType, content_format};

use super::DeviceEndpoints;
use crate::clock::unix_now;
use crate::pki_state::SharedPki;
use crate::refusal::Refusal;

/// Resource links served at `/.well-known/core` (RFC 6690).
pub const WELL_KNOWN_CORE: &str = concat!(
    r#"</token>;rt="ace.ai";ct=19;title="ACE token endpoint (POST a signed device request, ct=18)","#,
    r#"</.well-known/est/sren>;rt="ace.est.sren";ct=60;title="re-enrollment (POST a signed request with a CSR, ct=18)","#,
    r#"</.well-known/est/sen>;rt="ace.est.sen";ct=60;title="first enrollment by claim (POST a request signed with the claim key, with a CSR)","#,
    r#"</.well-known/est/crts>;rt="ace.est.crts";ct=281,"#,
    r#"</crl>;ct=42;title="CRL of the issuing CA (DER)","#,
    r#"</status>;ct=61;title="token status lists: GET /status/<id> (statuslist+cwt)""#
);

/// The CoAP request handler of the broker.
#[derive(Debug, Clone)]
pub struct CoapTransport {
    service: Arc<DeviceEndpoints>,
    pki: SharedPki,
}

impl CoapTransport {
    /// Wraps the device endpoints.
    pub fn new(service: Arc<DeviceEndpoints>, pki: SharedPki) -> Self {
        Self { service, pki }
    }
}

/// The one mapping of a refusal to CoAP: 4.01 / 4.03 / 4.00 for a denial
/// (RFC 9200 §5.8.3), 4.29 (RFC 8516) or 5.03 for a transient one, always
/// with the ACE error body (content-format 19), and Max-Age = the retry hint
/// when there is one.
fn refused(r: Refusal) -> Response {
    let code = match r.coap_code() {
        (4, 1) => ResponseType::Unauthorized,
        (4, 3) => ResponseType::Forbidden,
        (4, 29) => ResponseType::TooManyRequests,
        (5, 3) => ResponseType::ServiceUnavailable,
        _ => ResponseType::BadRequest,
    };
    let response = Response::new(code).with_payload(content_format::ACE_CBOR, r.to_cbor());
    match r.retry_after() {
        Some(secs) => response.with_max_age(u32::try_from(secs).unwrap_or(u32::MAX)),
        None => response,
    }
}

fn needs_cose(request: &Request) -> Option<Response> {
    match request.content_format {
        Some(cf) if cf != content_format::COSE_SIGN1 && cf != content_format::ACE_CBOR => Some(
            Response::new(ResponseType::UnsupportedContentFormat).with_payload(
                0,
                b"send a COSE_Sign1 device request with content-format 18".to_vec(),
            ),
        ),
        _ => None,
    }
}

impl Handler for CoapTransport {
    async fn handle(&self, request: Request) -> Response {
        match (request.method, request.path.as_str()) {
            (Method::Post, "token") => {
                if let Some(r) = needs_cose(&request) {
                    return r;
                }
                match self
                    .service
                    .tokens
                    .handle(
                        &request.payload,
                        "coap",
                        None,
                        Some(request.peer.ip()),
                        unix_now(),
                    )
                    .await
                {
                    Ok(token) => Response::new(ResponseType::Created)
                        .with_payload(content_format::ACE_CBOR, token.to_cbor()),
                    Err(r) => refused(r),
                }
            }
            (Method::Post, "sren" | ".well-known/est/sren") => {
                if let Some(r) = needs_cose(&request) {
                    return r;
                }
                match self
                    .service
                    .enroll
                    .handle(&request.payload, "coap", None, unix_now())
                    .await
                {
                    Ok(cert) => Response::new(ResponseType::Changed)
                        .with_payload(content_format::CBOR, cert.to_cbor()),
                    Err(r) => refused(r),
                }
            }
            (Method::Post, "sen" | ".well-known/est/sen") => {
                if let Some(r) = needs_cose(&request) {
                    return r;
                }
                match self
                    .service
                    .claims
                    .handle(&request.payload, "coap", unix_now())
                    .await
                {
                    Ok(cert) => Response::new(ResponseType::Changed)
                        .with_payload(content_format::CBOR, cert.to_cbor()),
                    Err(r) => refused(r),
                }
            }
            (Method::Get, path) if path.starts_with("status/") => {
                let Some(lists) = self.service.tokens.status_lists() else {
                    return Response::new(ResponseType::NotFound);
                };
                let Ok(id) = path["status/".len()..].parse::<u64>() else {
                    return Response::new(ResponseType::NotFound);
                };
                match lists.signed(id, unix_now()).await {
                    // application/cwt: the status list token is a CWT
                    // (typ application/statuslist+cwt; its own CoAP
                    // content-format is not assigned yet).
                    Ok(Some(bytes)) => Response::new(ResponseType::Content)
                        .with_payload(content_format::CWT, bytes.as_ref().clone())
                        .with_max_age(u32::try_from(lists.ttl()).unwrap_or(u32::MAX)),
                    Ok(None) => Response::new(ResponseType::NotFound),
                    Err(e) => {
                        tracing::error!(error = %e, "status list could not be built");
                        Response::new(ResponseType::ServiceUnavailable).with_max_age(5)
                    }
                }
            }
            (Method::Get, "crl") => match self.service.enroll.crl(unix_now()).await {
                // application/octet-stream: no CoAP content-format exists for pkix-crl.
                Ok(der) => Response::new(ResponseType::Content).with_payload(42, der),
                Err(e) => {
                    tracing::error!(error = %e, "CRL could not be built");
                    Response::new(ResponseType::ServiceUnavailable).with_max_age(5)
                }
            },
            // The CRL of a previous issuing CA (after `ca rotate-issuing`),
            // by its serial, as HTTPS `GET /crl/{serial}`.
            (Method::Get, path) if path.starts_with("crl/") => {
                let serial = &path["crl/".len()..];
                if serial.is_empty()
                    || serial.len() > 40
                    || !serial.bytes().all(|b| b.is_ascii_hexdigit())
                {
                    return Response::new(ResponseType::NotFound);
                }
                match self.service.enroll.crl_of(serial, unix_now()).await {
                    Ok(Some(der)) => Response::new(ResponseType::Content).with_payload(42, der),
                    Ok(None) => Response::new(ResponseType::NotFound),
                    Err(e) => {
                        tracing::error!(error = %e, "CRL could not be built");
                        Response::new(ResponseType::ServiceUnavailable).with_max_age(5)
                    }
                }
            }
            (Method::Get, "crts" | ".well-known/est/crts") => {
                let pki = self.pki.get();
                Response::new(ResponseType::Content).with_payload(
                    content_format::PKCS7_CERTS,
                    certbound_pki::pkcs7_certs_only(&pki.chain_der),
                )
            }
            (_, "sren" | ".well-known/est/sren" | "crts" | ".well-known/est/crts") => {
                Response::new(ResponseType::MethodNotAllowed)
            }
            (_, "token") => Response::new(ResponseType::MethodNotAllowed),
            (Method::Get, ".well-known/core") => Response::new(ResponseType::Content).with_payload(
                content_format::LINK_FORMAT,
                WELL_KNOWN_CORE.as_bytes().to_vec(),
            ),
            _ => Response::new(ResponseType::NotFound),
        }
    }
}
