//! CoAP transport: `POST /token` (request content-format 18, response 19,
//! 2.01 Created; ACE errors on 4.00/4.01/4.03) and `GET /.well-known/core`.

use std::sync::Arc;

use certbound_coap::{Handler, Method, Request, Response, ResponseType, content_format};

use crate::clock::unix_now;
use crate::token_service::{Refused, TokenService};

/// Resource links served at `/.well-known/core` (RFC 6690).
pub const WELL_KNOWN_CORE: &str = r#"</token>;rt="ace.ai";ct=19;title="ACE token endpoint (POST a signed device request, ct=18)""#;

/// The CoAP request handler of the broker.
#[derive(Debug, Clone)]
pub struct CoapTransport {
    service: Arc<TokenService>,
}

impl CoapTransport {
    /// Wraps the token service.
    pub fn new(service: Arc<TokenService>) -> Self {
        Self { service }
    }
}

fn ace_code(class: u8, detail: u8) -> ResponseType {
    match (class, detail) {
        (4, 1) => ResponseType::Unauthorized,
        (4, 3) => ResponseType::Forbidden,
        _ => ResponseType::BadRequest,
    }
}

impl Handler for CoapTransport {
    async fn handle(&self, request: Request) -> Response {
        match (request.method, request.path.as_str()) {
            (Method::Post, "token") => {
                if let Some(cf) = request.content_format
                    && cf != content_format::COSE_SIGN1
                    && cf != content_format::ACE_CBOR
                {
                    return Response::new(ResponseType::UnsupportedContentFormat).with_payload(
                        0,
                        b"send a COSE_Sign1 device request with content-format 18".to_vec(),
                    );
                }
                match self
                    .service
                    .handle(&request.payload, "coap", None, unix_now())
                    .await
                {
                    Ok(token) => Response::new(ResponseType::Created)
                        .with_payload(content_format::ACE_CBOR, token.to_cbor()),
                    Err(Refused::Ace(error)) => {
                        let (class, detail) = error.code.coap_code();
                        Response::new(ace_code(class, detail))
                            .with_payload(content_format::ACE_CBOR, error.to_cbor())
                    }
                    Err(Refused::Unavailable) => {
                        Response::new(ResponseType::ServiceUnavailable).with_max_age(5)
                    }
                    // RFC 8516: 4.29 Too Many Requests, Max-Age = seconds to wait.
                    Err(Refused::RateLimited { retry_after }) => {
                        Response::new(ResponseType::TooManyRequests)
                            .with_max_age(u32::try_from(retry_after).unwrap_or(u32::MAX))
                    }
                }
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
