//! One refusal type for every transport.
//!
//! The broker refuses a device request (token, re-enrollment, claim) in one
//! of three ways, and every transport maps those three to its own wire form
//! in one place:
//!
//! | refusal | CoAP | HTTPS | MQTT / body |
//! |---|---|---|---|
//! | [`Refusal::Denied`] (final) | 4.01 `invalid_client`, 4.03 `unauthorized_client`, 4.00 otherwise | 401 / 403 / 400 | `{30: code, 31: text}` |
//! | [`Refusal::RateLimited`] | 4.29, Max-Age = retry | 429, `Retry-After` | `{30: 1, 31: text, -65538: retry}` |
//! | [`Refusal::Unavailable`] | 5.03, Max-Age = retry | 503, `Retry-After` | `{30: 1, 31: text, -65538: retry}` |
//!
//! Every answer carries the ACE error body (content-format 19), so a client
//! reads the retry hint from the same place on every transport: the
//! `retry_after` parameter ([`crate::ace::label::RETRY_AFTER`]) whose presence
//! says "transient, ask again later" (a final refusal never has it).
//! [`Refusal::from_ace_error`] is the reading side.
//!
//! ```
//! use certbound_proto::ace::{AceErrorCode, AceResponse};
//! use certbound_proto::cbor::Limits;
//! use certbound_proto::refusal::Refusal;
//!
//! let busy = Refusal::rate_limited(12);
//! assert_eq!(busy.coap_code(), (4, 29));
//! assert_eq!(busy.http_status(), 429);
//! let Ok(AceResponse::Error(e)) = AceResponse::from_cbor(&busy.to_cbor(), Limits::default()) else {
//!     panic!("an ACE error")
//! };
//! assert_eq!(Refusal::from_ace_error(e), busy);
//!
//! let denied = Refusal::denied(AceErrorCode::UnauthorizedClient, "device d1 is suspended");
//! assert_eq!((denied.coap_code(), denied.retry_after()), ((4, 3), None));
//! ```

use crate::ace::{AceError, AceErrorCode};

/// Seconds a client waits after [`Refusal::Unavailable`] when nothing more
/// specific is known (store or signing failure).
pub const UNAVAILABLE_RETRY_SECS: u64 = 5;

/// The ACE error code a transient refusal carries on the wire: ACE
/// (RFC 9200) has no "try again" code, so `invalid_request` plus the
/// `retry_after` parameter.
pub const TRANSIENT_CODE: AceErrorCode = AceErrorCode::InvalidRequest;

/// Why a request was not served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Refused for good: the same request will be refused again. The ACE
    /// error says why (and never carries `retry_after`).
    Denied(AceError),
    /// The caller exceeded its request rate.
    RateLimited {
        /// Seconds until a request will be accepted.
        retry_after: u64,
    },
    /// The server could not decide (store or signing failure, a record that
    /// could not be kept): retry.
    Unavailable {
        /// Seconds to wait before retrying.
        retry_after: u64,
    },
}

impl Refusal {
    /// A final refusal with this code and description.
    pub fn denied(code: AceErrorCode, description: impl Into<String>) -> Self {
        Refusal::Denied(AceError::new(code, description))
    }

    /// Over the rate limit: retry after `retry_after` seconds.
    pub fn rate_limited(retry_after: u64) -> Self {
        Refusal::RateLimited { retry_after }
    }

    /// Service unavailable: retry after [`UNAVAILABLE_RETRY_SECS`].
    pub fn unavailable() -> Self {
        Refusal::Unavailable {
            retry_after: UNAVAILABLE_RETRY_SECS,
        }
    }

    /// The retry hint, seconds: `Some` exactly for a transient refusal.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            Refusal::Denied(_) => None,
            Refusal::RateLimited { retry_after } | Refusal::Unavailable { retry_after } => {
                Some(*retry_after)
            }
        }
    }

    /// The ACE error code on the wire ([`TRANSIENT_CODE`] for a transient
    /// refusal).
    pub fn code(&self) -> AceErrorCode {
        match self {
            Refusal::Denied(e) => e.code,
            _ => TRANSIENT_CODE,
        }
    }

    /// What a caller reads: the denial's description, or what to do.
    pub fn description(&self) -> String {
        match self {
            Refusal::Denied(e) => e.description.clone().unwrap_or_default(),
            Refusal::RateLimited { retry_after } => {
                format!("rate limited: too many requests; retry after {retry_after} s")
            }
            Refusal::Unavailable { retry_after } => {
                format!("temporarily unavailable: retry after {retry_after} s")
            }
        }
    }

    /// The ACE error body every transport sends.
    pub fn to_ace_error(&self) -> AceError {
        match self {
            Refusal::Denied(e) => AceError {
                retry_after: None,
                ..e.clone()
            },
            _ => AceError {
                code: TRANSIENT_CODE,
                description: Some(self.description()),
                retry_after: self.retry_after(),
            },
        }
    }

    /// The ACE error body, CBOR (application/ace+cbor).
    pub fn to_cbor(&self) -> Vec<u8> {
        self.to_ace_error().to_cbor()
    }

    /// The reading side: an ACE error with `retry_after` is transient (rate
    /// limited when its code is [`TRANSIENT_CODE`] and the text says so,
    /// otherwise unavailable); without it, final.
    pub fn from_ace_error(e: AceError) -> Self {
        match e.retry_after {
            None => Refusal::Denied(e),
            Some(retry_after)
                if e.description
                    .as_deref()
                    .is_some_and(|d| d.starts_with("rate limited")) =>
            {
                Refusal::RateLimited { retry_after }
            }
            Some(retry_after) => Refusal::Unavailable { retry_after },
        }
    }

    /// The CoAP response code `(class, detail)`: the ACE code's
    /// (RFC 9200 §5.8.3), 4.29 Too Many Requests (RFC 8516) or 5.03.
    pub fn coap_code(&self) -> (u8, u8) {
        match self {
            Refusal::Denied(e) => e.code.coap_code(),
            Refusal::RateLimited { .. } => (4, 29),
            Refusal::Unavailable { .. } => (5, 3),
        }
    }

    /// The HTTP status: 401 `invalid_client`, 403 `unauthorized_client`,
    /// 400 other denials, 429, 503.
    pub fn http_status(&self) -> u16 {
        match self.coap_code() {
            (4, 1) => 401,
            (4, 3) => 403,
            (4, 29) => 429,
            (5, 3) => 503,
            _ => 400,
        }
    }

    /// The audit log's outcome: the ACE code name, `rate_limited` or
    /// `unavailable`.
    pub fn audit_outcome(&self) -> &'static str {
        match self {
            Refusal::Denied(e) => e.code.name(),
            Refusal::RateLimited { .. } => "rate_limited",
            Refusal::Unavailable { .. } => "unavailable",
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code().name(), self.description())
    }
}

impl std::error::Error for Refusal {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ace::AceResponse;
    use crate::cbor::Limits;

    fn round_trip(r: &Refusal) -> Refusal {
        match AceResponse::from_cbor(&r.to_cbor(), Limits::default()) {
            Ok(AceResponse::Error(e)) => Refusal::from_ace_error(e),
            other => panic!("not an ACE error: {other:?}"),
        }
    }

    #[test]
    fn every_kind_survives_the_wire() {
        for r in [
            Refusal::denied(AceErrorCode::InvalidClient, "who are you"),
            Refusal::denied(AceErrorCode::InvalidScope, "no such scope"),
            Refusal::rate_limited(17),
            Refusal::unavailable(),
            Refusal::Unavailable { retry_after: 0 },
        ] {
            assert_eq!(round_trip(&r), r);
        }
    }

    #[test]
    fn a_denial_never_carries_a_retry_hint() {
        let mut e = AceError::new(AceErrorCode::InvalidRequest, "bad");
        e.retry_after = Some(3);
        let denied = Refusal::Denied(e);
        assert_eq!(denied.retry_after(), None);
        assert_eq!(denied.to_ace_error().retry_after, None);
    }

    #[test]
    fn codes_per_transport() {
        let cases = [
            (
                Refusal::denied(AceErrorCode::InvalidClient, ""),
                (4, 1),
                401,
            ),
            (
                Refusal::denied(AceErrorCode::UnauthorizedClient, ""),
                (4, 3),
                403,
            ),
            (Refusal::denied(AceErrorCode::InvalidGrant, ""), (4, 0), 400),
            (Refusal::rate_limited(1), (4, 29), 429),
            (Refusal::unavailable(), (5, 3), 503),
        ];
        for (r, coap, http) in cases {
            assert_eq!((r.coap_code(), r.http_status()), (coap, http), "{r}");
        }
    }

    #[test]
    fn a_negative_or_text_retry_after_is_refused() {
        // {30: 1, -65538: -1} and {30: 1, -65538: "5"}
        let base = [0xa2, 0x18, 0x1e, 0x01, 0x3a, 0x00, 0x01, 0x00, 0x01];
        for value in [&[0x20][..], &[0x61, 0x35][..]] {
            let bytes = [&base[..], value].concat();
            assert!(
                AceResponse::from_cbor(&bytes, Limits::default()).is_err(),
                "{bytes:02x?}"
            );
        }
        // and a well-formed one reads back
        let bytes = [&base[..], &[0x05][..]].concat();
        assert!(matches!(
            AceResponse::from_cbor(&bytes, Limits::default()),
            Ok(AceResponse::Error(AceError {
                retry_after: Some(5),
                ..
            }))
        ));
    }
}
