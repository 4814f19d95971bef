//! Reading back tokens this broker signed (introspection, revocation, the
//! admin API): JWT or CWT text, signature checked against the key ring.

use base64::Engine as _;
use certbound_proto::cbor::Limits;
use certbound_proto::crypto::AwsLcVerifier;
use certbound_proto::jwt::UnverifiedJwt;
use certbound_proto::token::UnverifiedToken;
use serde::Serialize;

use crate::keys::KeyRing;
use crate::store::{IssuedToken, TokenHolder};

/// A token signed by this broker, signature verified (expiry not checked).
#[derive(Debug, Clone, Serialize)]
pub struct KnownToken {
    /// `jwt` or `cwt`.
    pub format: &'static str,
    /// jti (JWT) or hex cti (CWT).
    pub jti: String,
    /// iss; `None` for a CWT, which names its issuer by its signing key.
    pub iss: Option<String>,
    /// sub: device id or client id.
    pub sub: String,
    /// aud
    pub aud: Vec<String>,
    /// scope
    pub scope: String,
    /// exp
    pub exp: u64,
    /// iat
    pub iat: u64,
    /// client_id (JWT).
    pub client_id: Option<String>,
    /// Signing key.
    pub kid: String,
    /// JWT `cnf.x5t#S256`.
    pub x5t_s256: Option<String>,
    /// CWT `cnf` key thumbprint (RFC 9679, base64url), when bound to a key.
    pub cnf_jkt: Option<String>,
    /// Status-list entry `(list id, idx)`.
    pub status_entry: Option<(u64, u64)>,
}

impl KnownToken {
    /// Whether it was issued to a client (JWT, or a CWT whose sub is a client id).
    pub fn likely_holder(&self) -> TokenHolder {
        if self.client_id.is_some() || self.sub.starts_with("cb_") {
            TokenHolder::Client
        } else {
            TokenHolder::Device
        }
    }

    /// The record form (for revocation of a not-yet-recorded token).
    pub fn record(&self, holder: TokenHolder) -> IssuedToken {
        IssuedToken {
            jti: self.jti.clone(),
            holder,
            subject: self.sub.clone(),
            api_id: self.aud.first().cloned().unwrap_or_default(),
            scope: self.scope.clone(),
            format: self.format.into(),
            kid: self.kid.clone(),
            cnf: self.x5t_s256.clone().or_else(|| self.cnf_jkt.clone()),
            status_entry: self.status_entry,
            iat: self.iat,
            exp: self.exp,
        }
    }
}

/// The list id in a status URI `.../status/{id}` (or `.../status-lists/{id}`,
/// the path of tokens issued before it was shortened).
pub(crate) fn list_id_of(uri: &str) -> Option<u64> {
    let (_, id) = uri
        .rsplit_once("/status/")
        .or_else(|| uri.rsplit_once("/status-lists/"))?;
    id.parse().ok()
}

/// Verifies `text` (a JWT, or a CWT as base64url/hex) against the ring's
/// published keys at `now`. `None` when it is not a token this broker signed
/// with a key it still publishes.
pub fn read_own_token(
    text: &str,
    ring: &KeyRing,
    now: u64,
    max_bytes: usize,
) -> Option<KnownToken> {
    let text = text.trim();
    if text.len() > max_bytes.saturating_mul(2) {
        return None;
    }
    if text.matches('.').count() == 2 {
        let jwt = UnverifiedJwt::parse(text, max_bytes.saturating_mul(2)).ok()?;
        let kid = jwt.kid()?.to_string();
        // The key decides the algorithm: an RS256 key checks only RS256.
        let key = ring.jws_public_key(&kid, now)?;
        let c = jwt.verify_key(&key).ok()?;
        return Some(KnownToken {
            format: "jwt",
            jti: c.jti.clone(),
            iss: Some(c.iss.clone()),
            sub: c.sub.clone(),
            aud: c.aud.0.clone(),
            scope: c.scope.clone().unwrap_or_default(),
            exp: c.exp,
            iat: c.iat,
            client_id: Some(c.client_id.clone()),
            kid,
            x5t_s256: c.cnf.as_ref().map(|x| x.x5t_s256.clone()),
            cnf_jkt: None,
            status_entry: c
                .status
                .as_ref()
                .and_then(|s| list_id_of(&s.status_list.uri).map(|l| (l, s.status_list.idx))),
        });
    }
    let bytes = certbound_verify::decode_token_text(text).ok()?;
    let limits = Limits {
        max_size: max_bytes,
        ..Limits::default()
    };
    let token = UnverifiedToken::parse(&bytes, limits).ok()?;
    let kid = String::from_utf8(token.kid().to_vec()).ok()?;
    let key = ring.public_key(&kid, now)?;
    let verifier = AwsLcVerifier::new(&key).ok()?;
    let c = token.verify(&verifier, limits).ok()?;
    Some(KnownToken {
        format: "cwt",
        jti: hex::encode(c.cti.as_deref()?),
        iss: c.iss.clone(),
        sub: c.sub.clone()?,
        aud: c.aud.clone(),
        scope: c.scope.clone().unwrap_or_default(),
        exp: c.exp?,
        iat: c.iat.unwrap_or(0),
        client_id: None,
        kid,
        x5t_s256: None,
        cnf_jkt: c
            .cnf
            .as_ref()
            .map(|k| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(k.thumbprint())),
        status_entry: c
            .status
            .as_ref()
            .and_then(|s| list_id_of(&s.uri).map(|l| (l, s.idx))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_ids() {
        assert_eq!(list_id_of("https://a:1/status/7"), Some(7));
        assert_eq!(list_id_of("https://a:1/status/x"), None);
        assert_eq!(list_id_of("https://a:1/status-lists/8"), Some(8));
        assert_eq!(list_id_of("https://a:1/other/7"), None);
    }
}
