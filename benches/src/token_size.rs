//! The size of a device CWT against an RFC 9068 JWT carrying the same claims
//! and the same confirmation key (RFC 7800 `cnf.jwk`), both signed for real.

use certbound_proto::claims::Claims;
use certbound_proto::crypto::Signer;
use certbound_proto::key::base64url;

/// The compact JWS an RFC 9068 issuer would hand out for `claims`: header
/// `{"alg":"ES256","typ":"at+jwt","kid"}`; `iss` (RFC 9068 requires it),
/// `sub`, `aud`, `exp`, `iat`, `jti`, `client_id`, `scope`, `cnf.jwk` with
/// both coordinates (JWK has no compressed form) and the same status
/// reference.
pub fn rfc9068_equivalent(
    claims: &Claims,
    issuer: &str,
    kid: &str,
    signer: &dyn Signer,
) -> anyhow::Result<String> {
    let text = |s: &Option<String>| s.clone().unwrap_or_default();
    let cnf = claims
        .cnf
        .as_ref()
        .map(|k| {
            format!(
                r#","cnf":{{"jwk":{{"kty":"EC","crv":"P-256","x":"{}","y":"{}"}}}}"#,
                base64url(&k.x),
                base64url(&k.y)
            )
        })
        .unwrap_or_default();
    let status = claims
        .status
        .as_ref()
        .map(|s| {
            format!(
                r#","status":{{"status_list":{{"idx":{},"uri":"{}"}}}}"#,
                s.idx, s.uri
            )
        })
        .unwrap_or_default();
    let sub = text(&claims.sub);
    let payload = format!(
        r#"{{"iss":"{issuer}","sub":"{sub}","aud":"{}","exp":{},"iat":{},"jti":"{}","client_id":"{sub}","scope":"{}"{cnf}{status}}}"#,
        claims.aud.first().cloned().unwrap_or_default(),
        claims.exp.unwrap_or_default(),
        claims.iat.unwrap_or_default(),
        base64url(claims.cti.as_deref().unwrap_or_default()),
        text(&claims.scope),
    );
    let header = format!(r#"{{"alg":"ES256","typ":"at+jwt","kid":"{kid}"}}"#);
    let mut out = base64url(header.as_bytes());
    out.push('.');
    out.push_str(&base64url(payload.as_bytes()));
    let signature = signer.sign(out.as_bytes())?;
    out.push('.');
    out.push_str(&base64url(&signature));
    Ok(out)
}
