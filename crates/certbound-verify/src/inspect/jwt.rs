//! [`inspect_jwt`]: the JWT (RFC 9068) twin of [`super::inspect`].

use certbound_proto::claims::Claims;
use certbound_proto::jwt::{TYP_AT_JWT, UnverifiedJwt};
use serde_json::json;

use super::{CheckResult, Inspection, claim_checks, claims_json};
use crate::keyset::KeySet;

/// Largest JWT accepted, characters.
const MAX_JWT: usize = 16 * 1024;

/// Decodes a JWT access token without trusting it, then reports every check
/// as [`super::inspect`] does for CWTs. `cnf` is the `x5t#S256` certificate
/// thumbprint (shown under `cnf`), `client_id` is shown with the claims.
pub fn inspect_jwt(
    text: &str,
    keys: Option<&KeySet>,
    audience: Option<&str>,
    issuer: Option<&str>,
    now: u64,
    leeway: u64,
) -> Inspection {
    let mut out = Inspection {
        size: text.len(),
        kid: None,
        typ: None,
        claims: None,
        signature: CheckResult::Skipped("token could not be parsed".into()),
        checks: Vec::new(),
        valid: false,
        error: None,
    };
    let jwt = match UnverifiedJwt::parse(text.trim(), MAX_JWT) {
        Ok(j) => j,
        Err(e) => {
            let reason = format!("not a well-formed JWT access token: {e}");
            out.checks
                .push(("structure".into(), CheckResult::Failed(reason.clone())));
            out.error = Some(reason);
            return out;
        }
    };
    out.kid = jwt.kid().map(str::to_string);
    // UnverifiedJwt::parse already requires typ at+jwt and a supported alg.
    out.typ = Some(TYP_AT_JWT.into());
    out.checks.push(("typ".into(), CheckResult::Ok));
    out.signature = signature_check(&jwt, keys);
    match jwt.unverified_claims() {
        Ok(c) => {
            let claims = Claims {
                iss: Some(c.iss.clone()),
                sub: Some(c.sub.clone()),
                aud: c.aud.0.clone(),
                exp: Some(c.exp),
                nbf: c.nbf,
                iat: Some(c.iat),
                cti: None,
                scope: c.scope.clone(),
                cnf: None,
                status: c.status.as_ref().map(|s| s.status_list.clone()),
                // Custom claims (`site`, ...), shown under their names.
                other: jwt
                    .custom_claims()
                    .unwrap_or_default()
                    .iter()
                    .map(|(k, v)| {
                        (
                            ciborium::Value::Text(k.clone()),
                            certbound_proto::jwt::json_to_cbor(v),
                        )
                    })
                    .collect(),
            };
            let mut j = claims_json(&claims);
            j["jti"] = json!(c.jti);
            j["client_id"] = json!(c.client_id);
            if let Some(cnf) = &c.cnf {
                j["cnf"] = json!({ "x5t#S256": cnf.x5t_s256 });
            }
            out.claims = Some(j);
            for (name, result) in claim_checks(&claims, audience, issuer, now, leeway) {
                // JWT binding is x5t#S256, which claim_checks does not see.
                let result = if name == "cnf" && c.cnf.is_some() {
                    CheckResult::Ok
                } else {
                    result
                };
                out.checks.push((name, result));
            }
        }
        Err(e) => out.checks.push((
            "claims".into(),
            CheckResult::Failed(format!("claims cannot be decoded: {e}")),
        )),
    }
    let failed = |r: &CheckResult| match r {
        CheckResult::Failed(why) => Some(why.clone()),
        _ => None,
    };
    let signature_failure = match &out.signature {
        CheckResult::Ok => None,
        CheckResult::Failed(why) | CheckResult::Skipped(why) => Some(why.clone()),
    };
    out.error = signature_failure.or_else(|| out.checks.iter().find_map(|(_, r)| failed(r)));
    out.valid = out.error.is_none();
    out
}

/// The signature check of a parsed JWS against `keys` (the key decides the
/// algorithm).
pub(super) fn signature_check(jwt: &UnverifiedJwt, keys: Option<&KeySet>) -> CheckResult {
    match (keys, jwt.kid()) {
        (None, _) => {
            CheckResult::Skipped("no verification key given: signature not checked".into())
        }
        (Some(_), None) => CheckResult::Failed("token has no kid, so no key can be chosen".into()),
        (Some(keys), Some(kid)) => match keys.get_jws(kid) {
            None => CheckResult::Failed(format!("signed by kid {kid} which is not in the key set")),
            // The key decides the algorithm (ES256, RS256, PS256 or EdDSA).
            Some(key) => match jwt.verify_signature(&key) {
                Ok(_) => CheckResult::Ok,
                Err(e @ certbound_proto::ProtoError::AlgorithmMismatch { .. }) => {
                    CheckResult::Failed(e.to_string())
                }
                Err(_) => CheckResult::Failed(format!(
                    "signature does not verify with the key of kid {kid}: the token was altered or forged"
                )),
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use certbound_proto::crypto::{P256Signer, Signer};
    use certbound_proto::jwt::{JwtAudience, JwtClaims, sign_jwt};

    fn token(exp: u64) -> (String, KeySet) {
        let signer = P256Signer::from_scalar(&[9u8; 32]).unwrap_or_else(|e| panic!("{e}"));
        let mut keys = KeySet::new();
        let kid = signer.public_key().kid();
        keys.insert(kid.clone(), signer.public_key().clone())
            .unwrap_or_else(|e| panic!("{e}"));
        let claims = JwtClaims {
            iss: "https://auth.example.com".into(),
            sub: "cb_x".into(),
            aud: JwtAudience(vec!["https://api.example.com".into()]),
            exp,
            iat: 1_000,
            nbf: None,
            jti: "j1".into(),
            client_id: "cb_x".into(),
            scope: Some("read".into()),
            cnf: None,
            status: None,
        };
        (
            sign_jwt(&claims, &kid, &signer).unwrap_or_else(|e| panic!("{e}")),
            keys,
        )
    }

    #[test]
    fn custom_claims_are_shown_under_their_names() {
        use certbound_proto::custom_claims::ClaimValue;
        let signer = P256Signer::from_scalar(&[9u8; 32]).unwrap_or_else(|e| panic!("{e}"));
        let (t, keys) = token(5_000);
        let claims = UnverifiedJwt::parse(&t, 8192)
            .and_then(|j| j.unverified_claims())
            .unwrap_or_else(|e| panic!("{e}"));
        let custom = vec![
            ("site".to_string(), ClaimValue::Text("berlin".into())),
            ("floor".to_string(), ClaimValue::Int(3)),
        ];
        let kid = signer.public_key().kid();
        let t = certbound_proto::jwt::sign_jwt_with_custom(&claims, &custom, &kid, &signer)
            .unwrap_or_else(|e| panic!("{e}"));
        let report = inspect_jwt(&t, Some(&keys), None, None, 2_000, 0);
        let c = report.claims.clone().unwrap_or_default();
        assert_eq!(c["site"], json!("berlin"));
        assert_eq!(c["floor"], json!(3));
        let text = report.to_string();
        assert!(text.contains("site   \"berlin\""), "{text}");
    }

    #[test]
    fn valid_expired_tampered_and_wrong_audience() {
        let (t, keys) = token(5_000);
        let ok = inspect_jwt(
            &t,
            Some(&keys),
            Some("https://api.example.com"),
            None,
            2_000,
            0,
        );
        // A bearer JWT: the cnf check fails, as for CWTs.
        assert_eq!(
            ok.error.as_deref().map(|e| e.starts_with("no cnf")),
            Some(true),
            "{ok:?}"
        );
        assert_eq!(ok.signature, CheckResult::Ok);
        assert_eq!(
            ok.claims.as_ref().map(|c| c["client_id"].clone()),
            Some(json!("cb_x"))
        );
        let late = inspect_jwt(&t, Some(&keys), None, None, 9_000, 0);
        assert!(
            late.error
                .as_deref()
                .is_some_and(|e| e.starts_with("expired"))
        );
        let aud = inspect_jwt(&t, Some(&keys), Some("https://other"), None, 2_000, 0);
        assert!(!aud.valid);
        let mut bad = t.clone();
        bad.pop();
        bad.push(if t.ends_with('A') { 'B' } else { 'A' });
        let forged = inspect_jwt(&bad, Some(&keys), None, None, 2_000, 0);
        assert!(matches!(forged.signature, CheckResult::Failed(_)) || !forged.valid);
        let garbage = inspect_jwt("a.b.c", Some(&keys), None, None, 2_000, 0);
        assert!(!garbage.valid);
    }
}
