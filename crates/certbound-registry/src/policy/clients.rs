//! Backend-service clients in a policy: reading, validation (the rules of
//! `certbound client create`, shared with it), the plan's client changes and
//! their writes.

use std::collections::{BTreeMap, BTreeSet};

use super::apply::{grant_rows, plan_changes};
use super::plan::{Change, Op, Plan, grant_details};
use super::roles::role_details;
use super::state::{grants_of, store_grants};
use super::validate::{ApiScopes, check_grants};
use super::{ADMIN_CLIENT, ClientSpec};
use crate::credentials::{hash_secret, new_client_id, new_client_secret};
use crate::error::RegistryError;
use crate::registry::{CheckedCredential, ClientCredential, CreatedClient, check_client_name};
use crate::store::policy::{self as db, ClientCredentials, PolicyConn};
use crate::store::{
    CREDENTIAL_COLUMNS, ClientAuthMethod, RoleHolder, credential_holder, credential_taken,
    insert_client, revoke_client_row,
};

/// A client as stored (with its id, which is not policy).
pub(super) struct StoredClient {
    pub(super) id: String,
    pub(super) has_secret: bool,
    pub(super) spec: ClientSpec,
}

pub(super) async fn read_clients(
    conn: &mut PolicyConn,
) -> Result<Vec<StoredClient>, RegistryError> {
    Ok(db::read_clients(conn, ADMIN_CLIENT)
        .await?
        .into_iter()
        .map(|c| StoredClient {
            id: c.id,
            has_secret: c.has_secret,
            spec: ClientSpec {
                name: c.name,
                auth_method: c.auth_method,
                tls_subject: c.tls_subject,
                tls_san: c.tls_san,
                thumbprint: c.thumbprint,
                roles: c.roles,
                jwks: c.jwks,
                jwks_uri: c.jwks_uri,
                grant: grants_of(c.grants),
                ..ClientSpec::default()
            },
        })
        .collect())
}

/// `e` about client `name`.
fn for_client(name: &str, e: RegistryError) -> RegistryError {
    match e {
        RegistryError::Invalid(m) => RegistryError::Invalid(format!("client {name}: {m}")),
        other => other,
    }
}

/// The credential values of `c`, with their columns and names.
fn credentials(c: &ClientSpec) -> impl Iterator<Item = (&'static str, &'static str, &str)> {
    CREDENTIAL_COLUMNS
        .iter()
        .zip([&c.tls_subject, &c.tls_san, &c.thumbprint])
        .filter_map(|(&(column, what), v)| v.as_deref().map(|v| (column, what, v)))
}

/// Resolves the method of `c` from its fields when the document gives none,
/// refuses inconsistent combinations (saying what to write instead), and
/// checks and normalises the credential like `certbound client create`
/// ([`ClientCredential::check`]). A client with neither a method nor a
/// certificate field is left without a method: it has a secret, and which
/// secret method is resolved against the store ([`diff_clients`]).
fn check_credential(c: &mut ClientSpec) -> Result<(), RegistryError> {
    use ClientAuthMethod as M;
    let name = c.name.clone();
    let invalid = |m: String| Err(RegistryError::Invalid(format!("client {name}: {m}")));
    let cert_field = match (&c.tls_subject, &c.tls_san) {
        (Some(_), _) => Some("tls_subject"),
        (None, Some(_)) => Some("tls_san"),
        (None, None) => None,
    };
    let jwks_field = match (&c.jwks, &c.jwks_uri) {
        (Some(_), _) => Some("jwks"),
        (None, Some(_)) => Some("jwks_uri"),
        (None, None) => None,
    };
    if c.auth_method != Some(M::PrivateKeyJwt)
        && let Some(field) = jwks_field
    {
        if c.auth_method.is_none() && c.thumbprint.is_none() && cert_field.is_none() {
            c.auth_method = Some(M::PrivateKeyJwt);
        } else {
            return invalid(format!(
                "{field} is set, but the client authenticates with {}: remove {field}, or write \
                 auth_method = \"private_key_jwt\" without certificate fields",
                c.auth_method
                    .map_or("a certificate", ClientAuthMethod::as_str)
            ));
        }
    }
    let method = match (c.auth_method, &c.thumbprint, cert_field) {
        (Some(m), _, _) => m,
        (None, Some(_), Some(field)) => {
            return invalid(format!(
                "thumbprint and {field} are both set: write auth_method = \
                 \"self_signed_tls_client_auth\" with thumbprint only, or auth_method = \
                 \"tls_client_auth\" with tls_subject or tls_san only"
            ));
        }
        (None, Some(_), None) => M::SelfSignedTlsClientAuth,
        (None, None, Some(_)) => M::TlsClientAuth,
        (None, None, None) => return Ok(()),
    };
    let credential = match method {
        M::PrivateKeyJwt => {
            if let Some(field) = cert_field.or(c.thumbprint.as_ref().map(|_| "thumbprint")) {
                return invalid(format!(
                    "{field} is set, but auth_method \"private_key_jwt\" authenticates with a \
                     signed assertion: remove {field}"
                ));
            }
            match (&c.jwks, &c.jwks_uri) {
                (Some(jwks), None) => ClientCredential::Jwks(jwks.clone()),
                (None, Some(uri)) => ClientCredential::JwksUri(uri.clone()),
                (Some(_), Some(_)) => {
                    return invalid(
                        "jwks and jwks_uri are both set: keep one (RFC 7591 §2)".into(),
                    );
                }
                (None, None) => {
                    return invalid(
                        "auth_method \"private_key_jwt\" needs the client's public keys: add \
                         jwks = '{\"keys\":[...]}' or jwks_uri = \"https://...\""
                            .into(),
                    );
                }
            }
        }
        M::ClientSecret | M::ClientSecretBasic | M::ClientSecretPost => {
            let field = cert_field
                .or(c.thumbprint.as_ref().map(|_| "thumbprint"))
                .or(jwks_field);
            if let Some(field) = field {
                let instead = if field == "thumbprint" {
                    "self_signed_tls_client_auth"
                } else {
                    "tls_client_auth"
                };
                return invalid(format!(
                    "{field} is set, but auth_method \"{}\" authenticates with a secret: \
                     remove {field}, or write auth_method = \"{instead}\" to authenticate \
                     by certificate",
                    method.as_str()
                ));
            }
            ClientCredential::Secret(method)
        }
        M::TlsClientAuth => {
            if c.thumbprint.is_some() {
                return invalid(
                    "thumbprint pins a self-signed certificate, but auth_method is \
                     \"tls_client_auth\": remove thumbprint, or write auth_method = \
                     \"self_signed_tls_client_auth\" without tls_subject and tls_san"
                        .into(),
                );
            }
            match (&c.tls_subject, &c.tls_san) {
                (Some(dn), None) => ClientCredential::TlsSubject(dn.clone()),
                (None, Some(san)) => ClientCredential::TlsSan(san.clone()),
                (Some(_), Some(_)) => {
                    return invalid(
                        "tls_subject and tls_san are both set: keep one (a tls_client_auth \
                         client is registered by its subject DN or by one SAN, like \
                         `client create --tls-subject` or `--tls-san`)"
                            .into(),
                    );
                }
                (None, None) => {
                    return invalid(
                        "auth_method \"tls_client_auth\" needs the certificate's identity: \
                         add tls_subject = \"CN=...\" or tls_san = \"dns:...\" (or uri:, ip:, \
                         email:)"
                            .into(),
                    );
                }
            }
        }
        M::SelfSignedTlsClientAuth => {
            if let Some(field) = cert_field {
                return invalid(format!(
                    "{field} is set, but auth_method \"self_signed_tls_client_auth\" pins one \
                     certificate by its thumbprint: remove {field}, or write auth_method = \
                     \"tls_client_auth\" without thumbprint"
                ));
            }
            let Some(x5t) = &c.thumbprint else {
                return invalid(
                    "auth_method \"self_signed_tls_client_auth\" needs thumbprint = \
                     \"<base64url SHA-256 of the certificate's DER>\" (`certbound client list` \
                     shows the thumbprints of registered clients)"
                        .into(),
                );
            };
            ClientCredential::SelfSigned(x5t.clone())
        }
    };
    let checked = credential.check().map_err(|e| for_client(&name, e))?;
    c.auth_method = Some(checked.auth_method);
    c.tls_subject = checked.tls_subject;
    c.tls_san = checked.tls_san;
    c.thumbprint = checked.thumbprint;
    c.jwks = checked.jwks;
    c.jwks_uri = checked.jwks_uri;
    Ok(())
}

/// Checks the clients of a document (names, grants, credentials) and
/// normalises their credentials in place.
pub(super) fn validate_clients(
    clients: &mut [ClientSpec],
    apis: &ApiScopes<'_>,
) -> Result<(), RegistryError> {
    let mut names = BTreeSet::new();
    let mut held: BTreeMap<(&str, String), String> = BTreeMap::new();
    for c in clients.iter_mut() {
        check_client_name(&c.name)?;
        if c.name == ADMIN_CLIENT {
            return Err(RegistryError::Invalid(format!(
                "client {ADMIN_CLIENT:?} is the built-in bootstrap client and not policy: remove it from the document"
            )));
        }
        if !names.insert(c.name.clone()) {
            return Err(RegistryError::Invalid(format!(
                "client {} is defined twice",
                c.name
            )));
        }
        // As `certbound client create`: the API must exist, scopes are free.
        check_grants(apis, &format!("client {}", c.name), &c.grant, false)?;
        check_credential(c)?;
        for (_, what, value) in credentials(c) {
            if let Some(other) = held.insert((what, value.to_string()), c.name.clone()) {
                return Err(RegistryError::Invalid(format!(
                    "clients {other} and {} have the same {what} {value:?}: a certificate identifies one client",
                    c.name
                )));
            }
        }
    }
    Ok(())
}

/// The method of a validated and resolved client.
fn method_of(c: &ClientSpec) -> ClientAuthMethod {
    c.auth_method.unwrap_or(ClientAuthMethod::ClientSecret)
}

/// How a new client will authenticate, for the plan (the method only when
/// the fields do not imply it).
fn new_client_details(c: &ClientSpec) -> Vec<String> {
    let method = method_of(c);
    let mut d = Vec::new();
    if method.uses_secret() {
        if method != ClientAuthMethod::ClientSecret {
            d.push(format!("auth_method {}", method.as_str()));
        }
        d.push("secret (printed once by apply)".to_string());
    }
    for (column, _, value) in credentials(c) {
        d.push(format!("{column} {value:?}"));
    }
    if method == ClientAuthMethod::PrivateKeyJwt {
        d.push("auth_method private_key_jwt".to_string());
        if let Some(uri) = &c.jwks_uri {
            d.push(format!("jwks_uri {uri:?}"));
        }
        if c.jwks.is_some() {
            d.push("jwks (registered public keys)".to_string());
        }
    }
    d
}

/// The credential changes of a kept client, `old -> new`.
fn credential_changes(old: &ClientSpec, new: &ClientSpec) -> Vec<String> {
    let show = |s: &Option<String>| {
        s.as_ref()
            .map_or("(none)".to_string(), |v| format!("{v:?}"))
    };
    let mut d = Vec::new();
    if old.auth_method != new.auth_method {
        let name = |m: Option<ClientAuthMethod>| m.map_or("(unknown)", ClientAuthMethod::as_str);
        d.push(format!(
            "auth_method {} -> {}",
            name(old.auth_method),
            name(new.auth_method)
        ));
    }
    for (column, o, n) in [
        ("tls_subject", &old.tls_subject, &new.tls_subject),
        ("tls_san", &old.tls_san, &new.tls_san),
        ("thumbprint", &old.thumbprint, &new.thumbprint),
        ("jwks_uri", &old.jwks_uri, &new.jwks_uri),
    ] {
        if o != n {
            d.push(format!("{column} {} -> {}", show(o), show(n)));
        }
    }
    if old.jwks != new.jwks {
        d.push("jwks (registered public keys) changed".to_string());
    }
    d
}

/// Resolves the secret method of the clients that give none (an existing
/// secret client keeps its method, any other gets `client_secret`) and adds
/// the client changes to `plan`: `clients` is the store's, `desired` the
/// document's (validated).
pub(super) async fn diff_clients(
    conn: &mut PolicyConn,
    clients: &[StoredClient],
    desired: &mut [ClientSpec],
    plan: &mut Plan,
) -> Result<(), RegistryError> {
    let old: BTreeMap<&str, &StoredClient> =
        clients.iter().map(|c| (c.spec.name.as_str(), c)).collect();
    for c in desired.iter_mut().filter(|c| c.auth_method.is_none()) {
        let kept = old
            .get(c.name.as_str())
            .and_then(|o| o.spec.auth_method)
            .filter(|m| m.uses_secret());
        c.auth_method = Some(kept.unwrap_or(ClientAuthMethod::ClientSecret));
    }
    let new: BTreeMap<&str, &ClientSpec> = desired.iter().map(|c| (c.name.as_str(), c)).collect();
    for (name, c) in &new {
        match old.get(name) {
            None => {
                let mut d = new_client_details(c);
                d.extend(role_details(&[], &c.roles));
                d.extend(grant_details(&[], &c.grant));
                plan.changes.push(Change {
                    op: Op::Add,
                    kind: "client",
                    name: name.to_string(),
                    details: d,
                });
            }
            Some(o) => {
                let mut d = credential_changes(&o.spec, c);
                let method = method_of(c);
                if method.uses_secret() && !o.has_secret {
                    return Err(RegistryError::Invalid(format!(
                        "client {name} has no secret (it authenticates with {}): auth_method \
                         {} would leave it without a credential, and secrets are never in the \
                         document. Keep its certificate method, or give the secret client a new \
                         name (apply creates it with a new secret and removes {name})",
                        o.spec
                            .auth_method
                            .map_or("a certificate", ClientAuthMethod::as_str),
                        method.as_str()
                    )));
                }
                d.extend(role_details(&o.spec.roles, &c.roles));
                d.extend(grant_details(&o.spec.grant, &c.grant));
                if !d.is_empty() {
                    plan.changes.push(Change {
                        op: Op::Change,
                        kind: "client",
                        name: name.to_string(),
                        details: d,
                    });
                }
            }
        }
    }
    for name in old.keys().filter(|n| !new.contains_key(*n)) {
        plan.changes.push(Change {
            op: Op::Remove,
            kind: "client",
            name: name.to_string(),
            details: vec![
                "deleted like `certbound client delete`: its tokens turn inactive".into(),
            ],
        });
    }
    // A credential held outside the document (the built-in admin client)
    // cannot be reused; the document's own clients were checked against each
    // other, and removed ones give theirs up before anything is written.
    for c in new.values() {
        for (column, what, value) in credentials(c) {
            if let Some((id, holder)) = credential_holder(conn, column, value).await?
                && !clients.iter().any(|s| s.id == id)
            {
                return Err(for_client(
                    &c.name,
                    credential_taken(&holder, what, value).into(),
                ));
            }
        }
    }
    Ok(())
}

/// Writes the client changes of `plan`: removals first (they free names and
/// credentials), then the changed clients, then the new ones (made like
/// `certbound client create` makes them). Returns the created clients.
pub(super) async fn apply_clients(
    conn: &mut PolicyConn,
    plan: &Plan,
    stored: &[StoredClient],
    desired: &[ClientSpec],
    now: u64,
) -> Result<Vec<CreatedClient>, RegistryError> {
    let stored: BTreeMap<&str, &StoredClient> =
        stored.iter().map(|c| (c.spec.name.as_str(), c)).collect();
    for (name, c) in &stored {
        if !desired.iter().any(|d| d.name == *name) {
            revoke_client_row(conn, &c.id, now).await?;
        }
    }
    let changed = desired
        .iter()
        .filter(|c| plan_changes(plan, "client", &c.name));
    for c in changed.clone() {
        let Some(s) = stored.get(c.name.as_str()) else {
            continue;
        };
        // The method's credential is checked (validation, diff): the
        // secret of a secret method exists, a certificate method has its value.
        let credentials = ClientCredentials {
            auth_method: method_of(c),
            tls_subject: c.tls_subject.as_deref(),
            tls_san: c.tls_san.as_deref(),
            thumbprint: c.thumbprint.as_deref(),
            jwks: c.jwks.as_deref(),
            jwks_uri: c.jwks_uri.as_deref(),
        };
        db::replace_client(conn, &s.id, &credentials, &store_grants(&c.grant), now).await?;
        db::replace_roles_of(conn, RoleHolder::Client(&s.id), &c.roles).await?;
    }
    let mut created = Vec::new();
    for c in changed.filter(|c| !stored.contains_key(c.name.as_str())) {
        let credential = CheckedCredential {
            auth_method: method_of(c),
            tls_subject: c.tls_subject.clone(),
            tls_san: c.tls_san.clone(),
            thumbprint: c.thumbprint.clone(),
            jwks: c.jwks.clone(),
            jwks_uri: c.jwks_uri.clone(),
        };
        let id = new_client_id();
        let secret = credential.auth_method.uses_secret().then(new_client_secret);
        let hash = secret.as_deref().map(hash_secret);
        let grants: Vec<(String, String)> = grant_rows(&c.grant)
            .map(|(api, scopes)| (api.to_string(), scopes))
            .collect();
        insert_client(
            conn,
            &credential.new_client(&id, &c.name, hash.as_deref(), &grants),
            now,
        )
        .await
        .map_err(|e| for_client(&c.name, e.into()))?;
        db::replace_roles_of(conn, RoleHolder::Client(&id), &c.roles).await?;
        created.push(credential.created(id, secret, &c.name));
    }
    Ok(created)
}
