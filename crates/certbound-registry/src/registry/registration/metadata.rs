//! Client metadata (RFC 7591 §2) checked against a registration's bounds.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use super::{Bounds, REGISTRABLE_METHODS, RegistrationError};
use crate::registry::{ClientCredential, parse_scopes};
use crate::store::ClientAuthMethod;

/// A client's metadata checked against its bounds.
#[derive(Debug, Clone)]
pub struct CheckedMetadata {
    /// The credential.
    pub credential: crate::registry::CheckedCredential,
    /// The grants.
    pub grants: Vec<(String, String)>,
    /// `client_name`.
    pub client_name: Option<String>,
    /// The metadata to store and answer (without secrets and tokens).
    pub metadata: Map<String, Value>,
}

pub(super) fn meta_err(m: impl Into<String>) -> RegistrationError {
    RegistrationError::InvalidMetadata(m.into())
}

/// Checks RFC 7591 client metadata against `bounds` (see the module docs).
pub fn check_metadata(
    body: &Value,
    bounds: &Bounds,
    allow: &certbound_verify::url_allow::UrlAllowList,
) -> Result<CheckedMetadata, RegistrationError> {
    let m = body.as_object().ok_or_else(|| {
        RegistrationError::InvalidRequest("the body must be a JSON object".into())
    })?;
    let text = |k: &str| -> Result<Option<&str>, RegistrationError> {
        match m.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(meta_err(format!("{k} must be a string"))),
        }
    };
    if let Some(g) = m.get("grant_types") {
        let ok = g
            .as_array()
            .is_some_and(|a| a.iter().all(|t| t.as_str() == Some("client_credentials")));
        if !ok {
            return Err(meta_err(
                "grant_types: only [\"client_credentials\"] is supported",
            ));
        }
    }
    if m.get("response_types")
        .is_some_and(|r| r.as_array().is_none_or(|a| !a.is_empty()))
    {
        return Err(meta_err(
            "response_types: none is supported (client credentials only)",
        ));
    }
    let method_name = text("token_endpoint_auth_method")?.unwrap_or("client_secret_basic");
    let method = ClientAuthMethod::parse(method_name)
        .filter(|p| REGISTRABLE_METHODS.contains(p))
        .ok_or_else(|| {
            meta_err(format!(
                "token_endpoint_auth_method {method_name:?} is not supported"
            ))
        })?;
    if !bounds.methods.contains(method.as_str()) {
        return Err(meta_err(format!(
            "token_endpoint_auth_method {method_name:?} is not allowed by the initial access token \
             (allowed: {})",
            bounds
                .methods
                .iter()
                .copied()
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let tls_fields = [
        ("tls_client_auth_subject_dn", ""),
        ("tls_client_auth_san_dns", "dns:"),
        ("tls_client_auth_san_uri", "uri:"),
        ("tls_client_auth_san_ip", "ip:"),
        ("tls_client_auth_san_email", "email:"),
    ];
    let mut tls = Vec::new();
    for (field, prefix) in tls_fields {
        if let Some(v) = text(field)? {
            tls.push((field, format!("{prefix}{v}")));
        }
    }
    let jwks = m.get("jwks").filter(|v| !v.is_null());
    let jwks_uri = text("jwks_uri")?;
    let mut out = Map::new();
    let credential = match method {
        ClientAuthMethod::PrivateKeyJwt => {
            if !tls.is_empty() {
                return Err(meta_err(
                    "tls_client_auth_* members are for tls_client_auth",
                ));
            }
            match (jwks, jwks_uri) {
                (Some(j), None) => {
                    out.insert("jwks".into(), j.clone());
                    ClientCredential::Jwks(j.to_string())
                }
                (None, Some(u)) => {
                    crate::client_jwks::check_jwks_uri(u, allow)
                        .map_err(RegistrationError::from)?;
                    out.insert("jwks_uri".into(), u.into());
                    ClientCredential::JwksUri(u.into())
                }
                (Some(_), Some(_)) => {
                    return Err(meta_err("send jwks or jwks_uri, not both (RFC 7591 §2)"));
                }
                (None, None) => return Err(meta_err("private_key_jwt needs jwks or jwks_uri")),
            }
        }
        ClientAuthMethod::TlsClientAuth => {
            if jwks.is_some() || jwks_uri.is_some() {
                return Err(meta_err("jwks and jwks_uri are for private_key_jwt"));
            }
            let [(field, value)] = tls.as_slice() else {
                return Err(meta_err(
                    "tls_client_auth needs exactly one of tls_client_auth_subject_dn, \
                     tls_client_auth_san_dns, _san_uri, _san_ip, _san_email (RFC 8705 §2.1.2)",
                ));
            };
            out.insert((*field).into(), m[*field].clone());
            if *field == "tls_client_auth_subject_dn" {
                ClientCredential::TlsSubject(value.clone())
            } else {
                ClientCredential::TlsSan(value.clone())
            }
        }
        secret => {
            if jwks.is_some() || jwks_uri.is_some() || !tls.is_empty() {
                return Err(meta_err(format!(
                    "{} takes no keys or certificate fields",
                    secret.as_str()
                )));
            }
            ClientCredential::Secret(secret)
        }
    };
    let credential = credential.check().map_err(RegistrationError::from)?;
    out.insert("token_endpoint_auth_method".into(), method.as_str().into());
    out.insert("grant_types".into(), json!(["client_credentials"]));
    let grants = choose_grants(m, bounds)?;
    let scope: BTreeSet<&str> = grants
        .iter()
        .flat_map(|(_, s)| s.split_whitespace())
        .collect();
    out.insert(
        "scope".into(),
        scope.into_iter().collect::<Vec<_>>().join(" ").into(),
    );
    out.insert(
        "certbound_grants".into(),
        Value::Object(
            grants
                .iter()
                .map(|(a, s)| (a.clone(), Value::from(s.clone())))
                .collect(),
        ),
    );
    let client_name = text("client_name")?.map(str::to_owned);
    if let Some(n) = &client_name {
        if n.is_empty() || n.chars().count() > 128 || n.chars().any(char::is_control) {
            return Err(meta_err(
                "client_name must be 1 to 128 printable characters",
            ));
        }
        out.insert("client_name".into(), n.clone().into());
    }
    Ok(CheckedMetadata {
        credential,
        grants,
        client_name,
        metadata: out,
    })
}

/// The grants asked for (`certbound_grants`, or `scope`, or everything),
/// each within the bounds.
fn choose_grants(
    m: &Map<String, Value>,
    bounds: &Bounds,
) -> Result<Vec<(String, String)>, RegistrationError> {
    let asked = m.get("certbound_grants").filter(|v| !v.is_null());
    let scope = m.get("scope").filter(|v| !v.is_null());
    let mut out = Vec::new();
    match (asked, scope) {
        (Some(_), Some(_)) => return Err(meta_err("send scope or certbound_grants, not both")),
        (Some(asked), None) => {
            let asked = asked.as_object().ok_or_else(|| {
                meta_err("certbound_grants must be an object {\"<api>\": \"<scopes>\"}")
            })?;
            for (api, scopes) in asked {
                let allowed = bounds.grants.get(api).ok_or_else(|| {
                    meta_err(format!(
                        "the initial access token grants nothing for API {api:?}"
                    ))
                })?;
                let scopes = scopes.as_str().ok_or_else(|| {
                    meta_err(format!("certbound_grants[{api:?}] must be a string"))
                })?;
                let scopes = parse_scopes(scopes).map_err(RegistrationError::from)?;
                if let Some(s) = scopes.iter().find(|s| !allowed.contains(*s)) {
                    return Err(meta_err(format!(
                        "scope {s:?} of {api} is not granted by the initial access token"
                    )));
                }
                if !scopes.is_empty() {
                    out.push((api.clone(), scopes.join(" ")));
                }
            }
        }
        (None, Some(scope)) => {
            let scope = scope
                .as_str()
                .ok_or_else(|| meta_err("scope must be a string"))?;
            let scopes = parse_scopes(scope).map_err(RegistrationError::from)?;
            if let Some(s) = scopes
                .iter()
                .find(|s| !bounds.grants.values().any(|g| g.contains(*s)))
            {
                return Err(meta_err(format!(
                    "scope {s:?} is not granted by the initial access token"
                )));
            }
            for (api, allowed) in &bounds.grants {
                let mine: Vec<&str> = scopes
                    .iter()
                    .filter(|s| allowed.contains(*s))
                    .map(String::as_str)
                    .collect();
                if !mine.is_empty() {
                    out.push((api.clone(), mine.join(" ")));
                }
            }
        }
        (None, None) => {
            for (api, allowed) in &bounds.grants {
                let all: Vec<&str> = allowed.iter().map(String::as_str).collect();
                out.push((api.clone(), all.join(" ")));
            }
        }
    }
    if out.is_empty() {
        return Err(meta_err("the client would be granted nothing"));
    }
    Ok(out)
}
