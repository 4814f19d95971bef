//! The profiles of [`super::inspect`]: certbound's own access tokens (the
//! default, strict), or any CWT (RFC 8392) or JWT (RFC 7519) checked, like
//! jwt.io, by its signature and registered claims alone.

use std::str::FromStr;

use certbound_proto::claims::Claims;
use certbound_proto::jwt::{TYP_AT_JWT, UnverifiedJwt, json_to_cbor};
use serde_json::{Map, Value as Json};

use super::jwt::signature_check;
use super::{CheckResult, Inspection, claim_checks, claims_json};
use crate::keyset::KeySet;

/// Largest JWT accepted, characters (as for certbound's own).
const MAX_JWT: usize = 16 * 1024;

/// Which rules a token is held to by [`inspect_as`] / [`inspect_jwt_as`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Profile {
    /// A certbound access token, as certbound's verifiers take it: `typ`
    /// (`application/at+cwt` / `at+jwt`), `exp` and a confirmation (`cnf`)
    /// are required.
    #[default]
    Certbound,
    /// Any signed CWT or JWT: the signature, `exp` / `nbf` / `iat` when
    /// present, `iss` / `aud` when asked for. `typ`, `cnf` and a missing
    /// `exp` are shown but not required.
    Generic,
}

impl FromStr for Profile {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "certbound" => Ok(Self::Certbound),
            "generic" => Ok(Self::Generic),
            other => Err(format!(
                "unknown profile {other:?}: use certbound (certbound access tokens, strict) or \
                 generic (any CWT or JWT, by its signature and claims)"
            )),
        }
    }
}

/// [`super::inspect`] under `profile`.
pub fn inspect_as(
    profile: Profile,
    token: &[u8],
    keys: Option<&KeySet>,
    audience: Option<&str>,
    issuer: Option<&str>,
    now: u64,
    leeway: u64,
) -> Inspection {
    let mut out = super::inspect(token, keys, audience, issuer, now, leeway);
    if profile == Profile::Generic {
        relax(&mut out);
    }
    out
}

/// [`super::inspect_jwt`] under `profile`: the generic profile also takes a
/// JWT of any `typ` (or none) and any claims set.
pub fn inspect_jwt_as(
    profile: Profile,
    text: &str,
    keys: Option<&KeySet>,
    audience: Option<&str>,
    issuer: Option<&str>,
    now: u64,
    leeway: u64,
) -> Inspection {
    if profile == Profile::Certbound {
        return super::inspect_jwt(text, keys, audience, issuer, now, leeway);
    }
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
    let (jwt, typ) = match UnverifiedJwt::parse_any_typ(text.trim(), MAX_JWT) {
        Ok(parsed) => parsed,
        Err(e) => {
            let reason = format!("not a well-formed signed JWT: {e}");
            out.checks
                .push(("structure".into(), CheckResult::Failed(reason.clone())));
            out.error = Some(reason);
            return out;
        }
    };
    out.kid = jwt.kid().map(str::to_string);
    out.checks.push((
        "typ".into(),
        match &typ {
            Some(t) if t.eq_ignore_ascii_case(TYP_AT_JWT) => CheckResult::Ok,
            _ => CheckResult::Failed("not an RFC 9068 access token (typ)".into()),
        },
    ));
    out.typ = typ;
    out.signature = signature_check(&jwt, keys);
    match serde_json::from_slice::<Map<String, Json>>(jwt.unverified_payload()) {
        Ok(payload) => {
            let (claims, problems) = registered_claims(&payload);
            let mut shown = claims_json(&claims);
            for name in ["jti", "client_id", "cnf"] {
                if let Some(v) = payload.get(name) {
                    shown[name] = v.clone();
                }
            }
            out.claims = Some(shown);
            out.checks.extend(problems);
            out.checks
                .extend(claim_checks(&claims, audience, issuer, now, leeway));
            if payload.contains_key("cnf") {
                for (name, result) in &mut out.checks {
                    if name == "cnf" {
                        *result = CheckResult::Ok;
                    }
                }
            }
        }
        Err(e) => out.checks.push((
            "claims".into(),
            CheckResult::Failed(format!("claims set is not a JSON object: {e}")),
        )),
    }
    relax(&mut out);
    out
}

/// The registered claims of a JWT claims set (RFC 7519 §4.1) as [`Claims`],
/// every other claim under `other`, and a failed `claims` check for each
/// registered claim of the wrong type.
fn registered_claims(payload: &Map<String, Json>) -> (Claims, Vec<(String, CheckResult)>) {
    let mut c = Claims::default();
    let mut problems = Vec::new();
    let mut wrong = |name: &str, what: &str| {
        problems.push((
            "claims".to_string(),
            CheckResult::Failed(format!("{name} is not {what}")),
        ));
    };
    for (name, value) in payload {
        match (name.as_str(), value) {
            ("iss", Json::String(s)) => c.iss = Some(s.clone()),
            ("sub", Json::String(s)) => c.sub = Some(s.clone()),
            ("scope", Json::String(s)) => c.scope = Some(s.clone()),
            ("aud", Json::String(s)) => c.aud = vec![s.clone()],
            ("aud", Json::Array(items)) => {
                c.aud = items
                    .iter()
                    .filter_map(|a| a.as_str().map(str::to_string))
                    .collect();
                if c.aud.len() != items.len() {
                    wrong("aud", "a string or an array of strings");
                }
            }
            ("exp" | "nbf" | "iat", v) => match numeric_date(v) {
                Some(t) if name == "exp" => c.exp = Some(t),
                Some(t) if name == "nbf" => c.nbf = Some(t),
                Some(t) => c.iat = Some(t),
                None => wrong(name, "a NumericDate (non-negative seconds)"),
            },
            ("iss" | "sub" | "scope", _) => wrong(name, "a string"),
            ("aud", _) => wrong("aud", "a string or an array of strings"),
            ("jti" | "client_id" | "cnf", _) => {}
            _ => c
                .other
                .push((ciborium::Value::Text(name.clone()), json_to_cbor(value))),
        }
    }
    (c, problems)
}

/// A NumericDate: non-negative seconds, a fraction dropped.
fn numeric_date(v: &Json) -> Option<u64> {
    v.as_u64().or_else(|| {
        v.as_f64()
            .filter(|f| f.is_finite() && *f >= 0.0 && *f < 1e15)
            // In range: the cast drops only the fraction.
            .map(|f| f.trunc() as u64)
    })
}

/// The generic profile's view of a strict report: `typ`, `cnf` and a missing
/// `exp` become notes, then `valid` and `error` are decided again.
fn relax(out: &mut Inspection) {
    let has_exp = out.claims.as_ref().is_some_and(|c| c.get("exp").is_some());
    for (name, result) in &mut out.checks {
        let CheckResult::Failed(why) = result else {
            continue;
        };
        let note = match name.as_str() {
            "typ" => format!("{why}; not required by the generic profile"),
            "cnf" => "no cnf: a bearer token (not required by the generic profile)".into(),
            "exp" if !has_exp => {
                "no exp claim: the token never expires (not required by the generic profile)".into()
            }
            _ => continue,
        };
        *result = CheckResult::Skipped(note);
    }
    let failed = |r: &CheckResult| match r {
        CheckResult::Failed(why) => Some(why.clone()),
        _ => None,
    };
    let signature = match &out.signature {
        CheckResult::Ok => None,
        CheckResult::Failed(why) | CheckResult::Skipped(why) => Some(why.clone()),
    };
    let structure = out
        .checks
        .iter()
        .find(|(n, _)| n == "structure")
        .and_then(|(_, r)| failed(r));
    out.error = structure
        .or(signature)
        .or_else(|| out.checks.iter().find_map(|(_, r)| failed(r)));
    out.valid = out.error.is_none();
}
