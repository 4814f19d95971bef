//! [`inspect`]: decode a token without trusting it and report every check, for
//! `certbound token inspect` and for debugging.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use certbound_proto::cbor::Limits;
use certbound_proto::claims::Claims;
use certbound_proto::cose::UnverifiedSign1;
use certbound_proto::token::TYP_ACCESS_TOKEN;
use ciborium::Value;
use serde::Serialize;
use serde_json::{Map, Value as Json, json};

use crate::keyset::KeySet;
use crate::verifier::kid_text;

/// The outcome of one check of [`inspect`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum CheckResult {
    /// The check passed.
    Ok,
    /// The check failed; the text says why, in plain words.
    Failed(String),
    /// The check was not run; the text says why.
    Skipped(String),
}

/// Everything [`inspect`] found out about a token.
#[derive(Debug, Clone, Serialize)]
pub struct Inspection {
    /// Size of the token in bytes.
    pub size: usize,
    /// The `kid` header (a lookup hint).
    pub kid: Option<String>,
    /// The `typ` header.
    pub typ: Option<String>,
    /// The decoded (UNVERIFIED unless `valid`) claims: `iss`, `sub`, `aud`,
    /// `exp`/`nbf`/`iat` (Unix seconds, each also as `<name>_iso`, ISO 8601
    /// UTC), `cti` (hex), `scope`, `cnf` (`kty`, `crv`, `x`, `y` base64url and
    /// `kid`), and any other claim under its numeric label.
    pub claims: Option<Json>,
    /// The signature check.
    pub signature: CheckResult,
    /// The other checks in order, by name (`typ`, `claims`, `exp`, `nbf`,
    /// `iat`, `iss`, `aud`, `cnf`).
    pub checks: Vec<(String, CheckResult)>,
    /// Whether the signature verified and no check failed.
    pub valid: bool,
    /// The first reason the token is not valid.
    pub error: Option<String>,
}

/// Decodes `token` without trusting it, then reports every check.
///
/// The signature is checked only when `keys` is given; `aud` and `iss` only
/// when `audience` / `issuer` are given. Time checks use `now` (Unix seconds)
/// and `leeway` exactly like [`crate::TokenVerifier::verify`]. A token is
/// `valid` only when its signature verified and no check failed. Scopes are
/// not checked (they depend on the request).
pub fn inspect(
    token: &[u8],
    keys: Option<&KeySet>,
    audience: Option<&str>,
    issuer: Option<&str>,
    now: u64,
    leeway: u64,
) -> Inspection {
    let limits = Limits::default();
    let mut out = Inspection {
        size: token.len(),
        kid: None,
        typ: None,
        claims: None,
        signature: CheckResult::Skipped("token could not be parsed".into()),
        checks: Vec::new(),
        valid: false,
        error: None,
    };
    let sign1 = match UnverifiedSign1::parse(token, limits, true) {
        Ok(s) => s,
        Err(e) => {
            let reason = format!("not a well-formed signed token: {e}");
            out.checks
                .push(("structure".into(), CheckResult::Failed(reason.clone())));
            out.error = Some(reason);
            return out;
        }
    };
    out.kid = (!sign1.kid().is_empty()).then(|| kid_text(sign1.kid()));
    out.typ = sign1.typ.clone();
    let typ_check = match &sign1.typ {
        Some(t) if t == TYP_ACCESS_TOKEN => CheckResult::Ok,
        Some(t) => CheckResult::Failed(format!(
            "typ is {t}, expected {TYP_ACCESS_TOKEN}: this is another kind of signed object"
        )),
        None => CheckResult::Failed(format!("typ is missing, expected {TYP_ACCESS_TOKEN}")),
    };
    out.checks.push(("typ".into(), typ_check));
    out.signature = signature_check(&sign1, out.kid.as_deref(), keys);

    match Claims::from_cbor(sign1.unverified_payload(), limits) {
        Ok(claims) => {
            out.claims = Some(claims_json(&claims));
            out.checks
                .extend(claim_checks(&claims, audience, issuer, now, leeway));
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
    let typ_failure = out.checks.first().and_then(|(_, r)| failed(r));
    let signature_failure = match &out.signature {
        CheckResult::Ok => None,
        CheckResult::Failed(why) | CheckResult::Skipped(why) => Some(why.clone()),
    };
    let other_failure = out.checks.iter().skip(1).find_map(|(_, r)| failed(r));
    out.error = typ_failure.or(signature_failure).or(other_failure);
    out.valid = out.error.is_none();
    out
}

fn signature_check(
    sign1: &UnverifiedSign1,
    kid: Option<&str>,
    keys: Option<&KeySet>,
) -> CheckResult {
    let Some(keys) = keys else {
        return CheckResult::Skipped("no verification key given: signature not checked".into());
    };
    let Some(kid) = kid else {
        return CheckResult::Failed("token has no kid, so no key can be chosen".into());
    };
    let Some(verifier) = std::str::from_utf8(sign1.kid())
        .ok()
        .and_then(|k| keys.verifier(k))
    else {
        return CheckResult::Failed(format!("signed by kid {kid} which is not in the key set"));
    };
    match sign1.verify(verifier) {
        Ok(_) => CheckResult::Ok,
        Err(_) => CheckResult::Failed(format!(
            "signature does not verify with the key of kid {kid}: the token was altered or forged"
        )),
    }
}

pub(crate) fn claim_checks(
    c: &Claims,
    audience: Option<&str>,
    issuer: Option<&str>,
    now: u64,
    leeway: u64,
) -> Vec<(String, CheckResult)> {
    let mut checks = Vec::new();
    let exp = match c.exp {
        None => CheckResult::Failed("no exp claim: every token must expire".into()),
        Some(exp) if now >= exp.saturating_add(leeway) => CheckResult::Failed(format!(
            "expired {} ago (exp {})",
            duration(now - exp),
            iso(exp)
        )),
        Some(_) => CheckResult::Ok,
    };
    checks.push(("exp".into(), exp));
    for (name, value) in [("nbf", c.nbf), ("iat", c.iat)] {
        let Some(t) = value else { continue };
        let r = if t > now.saturating_add(leeway) {
            let when = duration(t - now);
            CheckResult::Failed(if name == "nbf" {
                format!("not valid for another {when} (nbf {})", iso(t))
            } else {
                format!(
                    "issued {when} in the future (iat {}): check the clocks",
                    iso(t)
                )
            })
        } else {
            CheckResult::Ok
        };
        checks.push((name.into(), r));
    }
    let iss = match (issuer, c.iss.as_deref()) {
        (None, _) => CheckResult::Skipped("no issuer given: issuer not checked".into()),
        (Some(want), Some(got)) if want == got => CheckResult::Ok,
        (Some(want), Some(got)) => CheckResult::Failed(format!("issuer is {got}, expected {want}")),
        // A CWT names its issuer by its signing key (the key set is the
        // issuer's); a JWT always carries `iss` (RFC 9068).
        (Some(_), None) => CheckResult::Skipped(
            "no iss claim (a certbound CWT): the issuer is the owner of the signing key".into(),
        ),
    };
    checks.push(("iss".into(), iss));
    let aud = match audience {
        None => CheckResult::Skipped("no audience given: audience not checked".into()),
        Some(want) if c.aud.iter().any(|a| a == want) => CheckResult::Ok,
        Some(want) => match c.aud.as_slice() {
            [] => CheckResult::Failed(format!("token has no audience, expected {want}")),
            [one] => CheckResult::Failed(format!("audience is {one}, expected {want}")),
            many => CheckResult::Failed(format!(
                "audience is [{}], expected {want}",
                many.join(", ")
            )),
        },
    };
    checks.push(("aud".into(), aud));
    let cnf = if c.cnf.is_some() {
        CheckResult::Ok
    } else {
        CheckResult::Failed(
            "no cnf: a bearer token, not bound to a device key; verifiers refuse it unless bearer tokens are allowed"
                .into(),
        )
    };
    checks.push(("cnf".into(), cnf));
    checks
}

/// The claims as JSON (see [`Inspection::claims`]).
pub(crate) fn claims_json(c: &Claims) -> Json {
    let mut m = Map::new();
    if let Some(v) = &c.iss {
        m.insert("iss".into(), json!(v));
    }
    if let Some(v) = &c.sub {
        m.insert("sub".into(), json!(v));
    }
    match c.aud.as_slice() {
        [] => {}
        [one] => {
            m.insert("aud".into(), json!(one));
        }
        many => {
            m.insert("aud".into(), json!(many));
        }
    }
    for (name, value) in [("exp", c.exp), ("nbf", c.nbf), ("iat", c.iat)] {
        if let Some(t) = value {
            m.insert(name.into(), json!(t));
            m.insert(format!("{name}_iso"), json!(iso(t)));
        }
    }
    if let Some(v) = &c.cti {
        m.insert("cti".into(), json!(to_hex(v)));
    }
    if let Some(v) = &c.scope {
        m.insert("scope".into(), json!(v));
    }
    if let Some(k) = &c.cnf {
        m.insert(
            "cnf".into(),
            json!({
                "kty": "EC",
                "crv": "P-256",
                "x": URL_SAFE_NO_PAD.encode(k.x),
                "y": URL_SAFE_NO_PAD.encode(k.y),
                "kid": k.kid(),
            }),
        );
    }
    if let Some(st) = &c.status {
        m.insert(
            "status".into(),
            json!({"status_list": {"idx": st.idx, "uri": st.uri}}),
        );
    }
    for (k, v) in &c.other {
        m.insert(cbor_key(k), cbor_to_json(v));
    }
    Json::Object(m)
}

fn cbor_key(k: &Value) -> String {
    match k {
        Value::Integer(i) => i128::from(*i).to_string(),
        Value::Text(t) => t.clone(),
        other => cbor_to_json(other).to_string(),
    }
}

/// CBOR to JSON for display: byte strings become hex, tags `{"tag", "value"}`.
fn cbor_to_json(v: &Value) -> Json {
    match v {
        Value::Integer(i) => {
            let n = i128::from(*i);
            if let Ok(x) = i64::try_from(n) {
                json!(x)
            } else if let Ok(x) = u64::try_from(n) {
                json!(x)
            } else {
                json!(n.to_string())
            }
        }
        Value::Bytes(b) => json!(to_hex(b)),
        Value::Float(f) => json!(f),
        Value::Text(t) => json!(t),
        Value::Bool(b) => json!(b),
        Value::Null => Json::Null,
        Value::Tag(tag, inner) => json!({"tag": tag, "value": cbor_to_json(inner)}),
        Value::Array(items) => Json::Array(items.iter().map(cbor_to_json).collect()),
        Value::Map(entries) => Json::Object(
            entries
                .iter()
                .map(|(k, v)| (cbor_key(k), cbor_to_json(v)))
                .collect(),
        ),
        _ => json!("(unsupported CBOR value)"),
    }
}

/// Lower-case hex.
pub(crate) fn to_hex(bytes: &[u8]) -> String {
    use fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Unix seconds as ISO 8601 UTC, e.g. `2023-11-14T23:13:20Z`.
pub(crate) fn iso(t: u64) -> String {
    i64::try_from(t)
        .ok()
        .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
        .and_then(|d| {
            d.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| format!("{t} (out of range)"))
}

/// A duration in plain words: "42 seconds", "3 minutes", "5 hours", "2 days".
pub(crate) fn duration(secs: u64) -> String {
    let (n, unit) = match secs {
        0..60 => (secs, "second"),
        60..3600 => (secs / 60, "minute"),
        3600..86_400 => (secs / 3600, "hour"),
        _ => (secs / 86_400, "day"),
    };
    if n == 1 {
        format!("1 {unit}")
    } else {
        format!("{n} {unit}s")
    }
}

impl fmt::Display for CheckResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckResult::Ok => f.write_str("ok"),
            CheckResult::Failed(why) => f.write_str(why),
            CheckResult::Skipped(why) => write!(f, "skipped ({why})"),
        }
    }
}

const KNOWN: [&str; 8] = ["iss", "sub", "aud", "exp", "nbf", "iat", "cti", "scope"];

impl fmt::Display for Inspection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "token: {} bytes", self.size)?;
        if let Some(kid) = &self.kid {
            write!(f, ", kid {}", escape_control(kid))?;
        }
        if let Some(typ) = &self.typ {
            write!(f, ", typ {}", escape_control(typ))?;
        }
        writeln!(f)?;
        if let Some(Json::Object(m)) = &self.claims {
            writeln!(f, "claims (as sent; trusted only if VALID):")?;
            for name in KNOWN {
                let Some(v) = m.get(name) else { continue };
                match m.get(&format!("{name}_iso")).and_then(Json::as_str) {
                    Some(iso) => writeln!(
                        f,
                        "  {name:<6} {} ({})",
                        escape_control(&v.to_string()),
                        escape_control(iso)
                    )?,
                    None => writeln!(f, "  {name:<6} {}", escape_control(&plain(v)))?,
                }
            }
            if let Some(x5t) = m
                .get("cnf")
                .and_then(|c| c.get("x5t#S256"))
                .and_then(Json::as_str)
            {
                writeln!(f, "  cnf    certificate x5t#S256 {}", escape_control(x5t))?;
            } else if let Some(cnf) = m.get("cnf") {
                let field =
                    |k: &str| escape_control(cnf.get(k).and_then(Json::as_str).unwrap_or("?"));
                writeln!(
                    f,
                    "  cnf    EC P-256 key, kid {} (x {}, y {})",
                    field("kid"),
                    field("x"),
                    field("y")
                )?;
            }
            for (k, v) in m {
                let is_iso = k.ends_with("_iso") && KNOWN.contains(&k.trim_end_matches("_iso"));
                if !KNOWN.contains(&k.as_str()) && k != "cnf" && !is_iso {
                    writeln!(
                        f,
                        "  {:<6} {}",
                        escape_control(k),
                        escape_control(&v.to_string())
                    )?;
                }
            }
        }
        writeln!(f, "checks:")?;
        let sig = std::iter::once(("signature", &self.signature));
        let rest = self.checks.iter().map(|(n, r)| (n.as_str(), r));
        for (name, result) in sig.chain(rest) {
            let mark = match result {
                CheckResult::Ok => '✓',
                CheckResult::Failed(_) => '✗',
                CheckResult::Skipped(_) => '-',
            };
            match result {
                CheckResult::Ok => writeln!(f, "  {mark} {}", escape_control(name))?,
                _ => writeln!(
                    f,
                    "  {mark} {}: {}",
                    escape_control(name),
                    escape_control(&result.to_string())
                )?,
            }
        }
        match &self.error {
            None if self.valid => write!(f, "VALID"),
            Some(why) => write!(f, "INVALID: {}", escape_control(why)),
            None => write!(f, "INVALID"),
        }
    }
}

/// `text` with every control character (C0, DEL, C1: terminal escape
/// sequences, carriage returns, newlines) and every bidirectional-override
/// character shown as a `\u{..}` escape, so that a token's fields cannot
/// drive the terminal it is printed on or disguise what it says. Every field
/// of an [`Inspection`]'s text output goes through it.
pub fn escape_control(text: &str) -> std::borrow::Cow<'_, str> {
    use std::fmt::Write as _;
    let unsafe_char = |c: char| {
        c.is_control()
            || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if !text.chars().any(unsafe_char) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if unsafe_char(c) {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

fn plain(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        Json::Array(items) => items.iter().map(plain).collect::<Vec<_>>().join(", "),
        other => other.to_string(),
    }
}

mod generic;
mod jwt;
pub use generic::{Profile, inspect_as, inspect_jwt_as};
pub use jwt::inspect_jwt;
