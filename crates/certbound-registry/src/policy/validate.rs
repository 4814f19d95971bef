//! Validation of a document on its own and against the built-ins (before
//! anything is read for the diff or written).

use std::collections::{BTreeMap, BTreeSet};

use super::{GrantSpec, PolicyDoc};
use crate::error::RegistryError;
use crate::registry::{ADMIN_API, check_token, parse_scopes};

/// The scopes of every API of the target state, by identifier.
pub(super) type ApiScopes<'a> = BTreeMap<&'a str, &'a [String]>;

fn check_scope_list(what: &str, scopes: &[String]) -> Result<(), RegistryError> {
    if scopes.is_empty() {
        return Err(RegistryError::Invalid(format!("{what} names no scopes")));
    }
    let mut seen = BTreeSet::new();
    for s in scopes {
        if parse_scopes(s)?.len() != 1 {
            return Err(RegistryError::Invalid(format!(
                "{what}: scope {s:?} is invalid: one scope per list element, no spaces"
            )));
        }
        if !seen.insert(s) {
            return Err(RegistryError::Invalid(format!(
                "{what}: scope {s:?} is listed twice"
            )));
        }
    }
    Ok(())
}

/// Checks the grants of `owner`: every API is in the target state, scope
/// lists are valid, one grant per API; `strict`: every scope is one the API
/// defines.
pub(super) fn check_grants(
    apis: &ApiScopes<'_>,
    owner: &str,
    grants: &[GrantSpec],
    strict: bool,
) -> Result<(), RegistryError> {
    let mut seen = BTreeSet::new();
    for g in grants {
        let what = format!("{owner}: grant for {}", g.api);
        let defined = apis.get(g.api.as_str()).ok_or_else(|| {
            RegistryError::Invalid(format!(
                "{what}: API {:?} is not defined in the policy",
                g.api
            ))
        })?;
        check_scope_list(&what, &g.scopes)?;
        if strict && let Some(s) = g.scopes.iter().find(|s| !defined.contains(s)) {
            return Err(RegistryError::Invalid(format!(
                "{what}: scope {s:?} is not defined by the API (it defines: {})",
                defined.join(" ")
            )));
        }
        if !seen.insert(&g.api) {
            return Err(RegistryError::Invalid(format!(
                "{owner}: two grants for API {}",
                g.api
            )));
        }
    }
    Ok(())
}

/// Checks a document on its own and against the built-ins; `admin_scopes`
/// are the scopes of the admin API (grants may name it). Normalises client
/// credentials in place.
pub(super) fn validate(doc: &mut PolicyDoc, admin_scopes: &[String]) -> Result<(), RegistryError> {
    // The canonical `alg`: ES256 is none (the default), the others their
    // JOSE names; a non-ES256 alg needs format jwt.
    for a in &mut doc.api {
        if let Some(name) = a.alg.take() {
            let alg = crate::registry::parse_alg(&name)?;
            crate::registry::check_alg_for_format(&a.id, alg, &a.format)?;
            a.alg = (alg != certbound_proto::jose::JwsAlg::Es256).then(|| alg.as_str().to_string());
        }
    }
    let mut apis: ApiScopes<'_> = BTreeMap::new();
    apis.insert(ADMIN_API, admin_scopes);
    for a in &doc.api {
        check_token("API identifier", &a.id)?;
        if a.id == ADMIN_API {
            return Err(RegistryError::Invalid(format!(
                "API {ADMIN_API} is built in and not policy: remove it from the document"
            )));
        }
        if a.format != "cwt" && a.format != "jwt" {
            return Err(RegistryError::Invalid(format!(
                "API {}: token format {:?} is not supported: use \"cwt\" or \"jwt\"",
                a.id, a.format
            )));
        }
        if !(5..=86_400).contains(&a.ttl_secs) {
            return Err(RegistryError::Invalid(format!(
                "API {}: ttl_secs {} is out of range: use 5 to 86400 seconds",
                a.id, a.ttl_secs
            )));
        }
        check_scope_list(&format!("API {}", a.id), &a.scopes)?;
        if apis.insert(&a.id, &a.scopes).is_some() {
            return Err(RegistryError::Invalid(format!(
                "API {} is defined twice",
                a.id
            )));
        }
    }
    let mut names = BTreeSet::new();
    for g in &doc.group {
        check_token("group name", &g.name)?;
        if !names.insert(&g.name) {
            return Err(RegistryError::Invalid(format!(
                "group {} is defined twice",
                g.name
            )));
        }
        // As `certbound group create`: group scopes must be defined by the API.
        check_grants(&apis, &format!("group {}", g.name), &g.grant, true)?;
    }
    super::roles::validate_roles(doc, &apis)?;
    super::clients::validate_clients(&mut doc.client, &apis)?;
    super::api_keys::validate_keys(&doc.apikey, &apis)
}
