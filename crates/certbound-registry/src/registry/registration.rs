//! Dynamic client registration (RFC 7591) and its management protocol
//! (RFC 7592): initial access tokens an operator issues (`certbound client
//! registration-token`), the registration of a client within a token's
//! bounds, and reading, updating and deleting it with its registration
//! access token.
//!
//! **Bounds.** A token carries grants (`--grant "<api>=<scopes>"`) and
//! methods (`--methods`). A registered client gets at most those grants
//! (chosen with the `certbound_grants` extension member, `{"<api>": "s1 s2"}`,
//! or with `scope`: each scope is granted for every API of the bounds that
//! has it; neither: all of the bounds) and one of those methods; the bounds
//! are kept with the client, so an update (RFC 7592 §2.2) stays within them.
//! [`allowed_grants`] is the one place that computes what a token allows.
//!
//! **Errors** are RFC 7591 §3.2.2 (`invalid_client_metadata`) and RFC 6750
//! (`invalid_token` for a missing, unknown, revoked, expired or exhausted
//! initial token and for a wrong registration access token).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use super::Registry;
use crate::clock::unix_now;
use crate::credentials::{hash_secret, new_client_id, new_client_secret};
use crate::error::RegistryError;
use crate::store::registration::{NewRegistration, NewRegistrationToken, RegistrationToken};
use crate::store::{ClientAuthMethod, NewClient};

/// Prefix of initial access tokens.
pub const REGISTRATION_TOKEN_PREFIX: &str = "cbr_";
/// Prefix of registration access tokens.
pub const REGISTRATION_ACCESS_PREFIX: &str = "cbra_";

/// The methods a registration token may allow (`client_secret`, Basic or
/// form, is registered as `client_secret_basic`, RFC 7591's default).
pub const REGISTRABLE_METHODS: [ClientAuthMethod; 4] = [
    ClientAuthMethod::PrivateKeyJwt,
    ClientAuthMethod::TlsClientAuth,
    ClientAuthMethod::ClientSecretBasic,
    ClientAuthMethod::ClientSecretPost,
];

/// A refused registration request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistrationError {
    /// RFC 6750 `invalid_token` (401): the bearer token is missing,
    /// unknown, revoked, expired or used up.
    InvalidToken(String),
    /// RFC 7591 §3.2.2 `invalid_client_metadata` (400).
    InvalidMetadata(String),
    /// `invalid_request` (400): the body is not a JSON object.
    InvalidRequest(String),
    /// The store failed.
    Unavailable(String),
}

impl From<RegistryError> for RegistrationError {
    fn from(e: RegistryError) -> Self {
        match e {
            RegistryError::Invalid(m) => RegistrationError::InvalidMetadata(m),
            e @ (RegistryError::Conflict { .. } | RegistryError::NotFound { .. }) => {
                RegistrationError::InvalidMetadata(e.to_string())
            }
            other => RegistrationError::Unavailable(other.to_string()),
        }
    }
}

impl From<crate::store::StoreError> for RegistrationError {
    fn from(e: crate::store::StoreError) -> Self {
        RegistryError::from(e).into()
    }
}

/// A token just issued (the token itself is shown only here).
#[derive(Debug, Clone, serde::Serialize)]
pub struct IssuedRegistrationToken {
    /// Its id (for `list` and `revoke`).
    pub id: String,
    /// The initial access token (`cbr_...`).
    pub token: String,
    /// Its bounds.
    pub grants: BTreeMap<String, String>,
    /// Its methods.
    pub methods: Vec<String>,
    /// Registrations it allows.
    pub uses: u64,
    /// Expiry, Unix seconds.
    pub expires_at: u64,
}

/// What a registration token (or a registered client) is bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bounds {
    /// API -> scopes.
    pub grants: BTreeMap<String, BTreeSet<String>>,
    /// Methods.
    pub methods: BTreeSet<&'static str>,
}

/// The grants a registration token allows: its `--grant`s and the grants
/// its `--role`s had when it was issued (merged at issuance).
pub fn allowed_grants(
    grants_json: &str,
) -> Result<BTreeMap<String, BTreeSet<String>>, RegistryError> {
    let map: BTreeMap<String, String> = serde_json::from_str(grants_json)
        .map_err(|e| RegistryError::Invalid(format!("stored registration grants: {e}")))?;
    Ok(map
        .into_iter()
        .map(|(api, scopes)| (api, scopes.split_whitespace().map(str::to_owned).collect()))
        .collect())
}

impl Bounds {
    /// The bounds stored as `grants` (JSON) and `methods` (space separated).
    pub fn from_stored(grants: &str, methods: &str) -> Result<Self, RegistryError> {
        Ok(Self {
            grants: allowed_grants(grants)?,
            methods: methods
                .split_whitespace()
                .filter_map(|m| ClientAuthMethod::parse(m).map(ClientAuthMethod::as_str))
                .collect(),
        })
    }
}

/// Parses `--methods`.
pub fn parse_methods(list: &[String]) -> Result<Vec<ClientAuthMethod>, RegistryError> {
    let mut out = Vec::new();
    for m in list.iter().map(|m| m.trim()).filter(|m| !m.is_empty()) {
        let parsed = ClientAuthMethod::parse(m)
            .filter(|p| REGISTRABLE_METHODS.contains(p))
            .ok_or_else(|| {
                RegistryError::Invalid(format!(
                    "method {m:?} cannot be registered: use private_key_jwt, tls_client_auth, \
                     client_secret_basic or client_secret_post"
                ))
            })?;
        if !out.contains(&parsed) {
            out.push(parsed);
        }
    }
    if out.is_empty() {
        return Err(RegistryError::Invalid("give at least one method".into()));
    }
    Ok(out)
}

/// Parses a lifetime: seconds, or a number with `s`, `m`, `h` or `d`.
pub fn parse_lifetime(text: &str) -> Result<u64, RegistryError> {
    let t = text.trim();
    let (num, unit) = match t.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => t.split_at(i),
        None => (t, "s"),
    };
    let n: u64 = num.parse().map_err(|_| {
        RegistryError::Invalid(format!(
            "lifetime {text:?}: write e.g. 3600, 90m, 12h or 7d"
        ))
    })?;
    let factor = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => {
            return Err(RegistryError::Invalid(format!(
                "lifetime {text:?}: the unit must be s, m, h or d"
            )));
        }
    };
    let secs = n.saturating_mul(factor);
    if secs == 0 || secs > 366 * 86_400 {
        return Err(RegistryError::Invalid(format!(
            "lifetime {text:?}: between 1 second and 366 days"
        )));
    }
    Ok(secs)
}

fn random_token(prefix: &str) -> String {
    // The same 256 random bits as a client secret, another prefix.
    new_client_secret().replacen("cbs_", prefix, 1)
}

/// A registration's answer (RFC 7591 §3.2.1 / RFC 7592 §3).
#[derive(Debug, Clone)]
pub struct RegistrationAnswer {
    /// The client.
    pub client_id: String,
    /// The JSON body (without `registration_client_uri`, which the HTTP
    /// layer adds).
    pub body: Map<String, Value>,
}

impl Registry {
    /// Issues an initial access token (see the module docs).
    pub async fn create_registration_token(
        &self,
        grants: &[(String, String)],
        methods: &[ClientAuthMethod],
        uses: u64,
        lifetime_secs: u64,
    ) -> Result<IssuedRegistrationToken, RegistryError> {
        self.create_registration_token_with_roles(grants, &[], methods, uses, lifetime_secs)
            .await
    }

    /// [`Registry::create_registration_token`] whose bounds also take the
    /// grants of `roles` (`--role`), as those roles grant at this moment: a
    /// later change to a role does not widen or narrow a token already
    /// issued (issue a new one).
    pub async fn create_registration_token_with_roles(
        &self,
        grants: &[(String, String)],
        roles: &[String],
        methods: &[ClientAuthMethod],
        uses: u64,
        lifetime_secs: u64,
    ) -> Result<IssuedRegistrationToken, RegistryError> {
        let mut grants = grants.to_vec();
        for name in roles {
            let role = self.role(name).await?;
            if role.grants.is_empty() {
                return Err(RegistryError::Invalid(format!(
                    "role {name} grants nothing: a registration token bounded by it could register \
                     clients with no permission (`certbound role grant` first)"
                )));
            }
            grants.extend(
                role.grants
                    .into_iter()
                    .map(|g| (g.api_id, g.scopes.join(" "))),
            );
        }
        // One entry per API: the union of every --grant and role for it.
        let mut merged: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (api, scopes) in &grants {
            let entry = merged.entry(api.clone()).or_default();
            for s in scopes.split_whitespace() {
                if !entry.iter().any(|e| e == s) {
                    entry.push(s.to_string());
                }
            }
        }
        let grants: Vec<(String, String)> = merged
            .into_iter()
            .map(|(api, scopes)| (api, scopes.join(" ")))
            .collect();
        let grants = grants.as_slice();
        if grants.is_empty() {
            return Err(RegistryError::Invalid(
                "give at least one --grant \"<api>=<scopes>\" or --role: registered clients get at most these".into(),
            ));
        }
        if !(1..=10_000).contains(&uses) {
            return Err(RegistryError::Invalid(
                "--uses must be between 1 and 10000".into(),
            ));
        }
        let mut map = BTreeMap::new();
        for (api, scopes) in grants {
            if self.store.get_api(api).await?.is_none() {
                return Err(RegistryError::NotFound {
                    kind: "API",
                    name: api.clone(),
                    hint: "; create it first with `certbound api create`".into(),
                });
            }
            map.insert(api.clone(), scopes.clone());
        }
        let grants_json = serde_json::to_string(&map)
            .map_err(|e| RegistryError::Invalid(format!("grants: {e}")))?;
        let methods: Vec<String> = methods.iter().map(|m| m.as_str().to_string()).collect();
        let token = random_token(REGISTRATION_TOKEN_PREFIX);
        let id = new_client_id().replacen("cb_", "rt_", 1);
        let now = unix_now();
        let expires_at = now.saturating_add(lifetime_secs);
        self.store
            .create_registration_token(
                &NewRegistrationToken {
                    id: &id,
                    token_hash: &hash_secret(&token),
                    grants: &grants_json,
                    methods: &methods.join(" "),
                    uses,
                    expires_at,
                },
                now,
            )
            .await?;
        self.audit(
            "registration_token.created",
            &id,
            format!(
                "grants={grants_json} methods={} uses={uses} expires_at={expires_at}",
                methods.join(",")
            ),
        )
        .await?;
        Ok(IssuedRegistrationToken {
            id,
            token,
            grants: map,
            methods,
            uses,
            expires_at,
        })
    }

    /// Every initial access token (never the tokens).
    pub async fn list_registration_tokens(&self) -> Result<Vec<RegistrationToken>, RegistryError> {
        Ok(self.store.list_registration_tokens().await?)
    }

    /// Revokes an initial access token.
    pub async fn revoke_registration_token(&self, id: &str) -> Result<(), RegistryError> {
        self.store.revoke_registration_token(id, unix_now()).await?;
        self.audit("registration_token.revoked", id, String::new())
            .await
    }

    /// The usable initial access token `bearer` (RFC 6750 `invalid_token`
    /// when it is unknown, revoked, expired or used up).
    pub async fn initial_token(
        &self,
        bearer: &str,
        now: u64,
    ) -> Result<RegistrationToken, RegistrationError> {
        let token = self
            .store
            .registration_token_by_hash(&hash_secret(bearer))
            .await?
            .ok_or_else(|| {
                RegistrationError::InvalidToken("unknown initial access token".into())
            })?;
        let why = if token.revoked_at.is_some() {
            Some("revoked")
        } else if token.expires_at <= now {
            Some("expired")
        } else if token.uses_left == 0 {
            Some("used up")
        } else {
            None
        };
        match why {
            Some(w) => Err(RegistrationError::InvalidToken(format!(
                "the initial access token {} is {w}",
                token.id
            ))),
            None => Ok(token),
        }
    }

    /// Registers a client with initial access token `token` (checked with
    /// [`Registry::initial_token`]) from metadata `body`.
    pub async fn register(
        &self,
        token: &RegistrationToken,
        body: &Value,
        now: u64,
    ) -> Result<RegistrationAnswer, RegistrationError> {
        let bounds = Bounds::from_stored(&token.grants, &token.methods)?;
        let allow = self
            .config
            .oauth
            .jwks_uri_allow_list()
            .map_err(RegistrationError::Unavailable)?;
        let checked = check_metadata(body, &bounds, &allow)?;
        let client_id = new_client_id();
        let name = registered_name(checked.client_name.as_deref(), &client_id);
        let secret = checked
            .credential
            .auth_method
            .uses_secret()
            .then(new_client_secret);
        let secret_hash = secret.as_deref().map(hash_secret);
        let access_token = random_token(REGISTRATION_ACCESS_PREFIX);
        let metadata = Value::Object(checked.metadata.clone()).to_string();
        let client = checked.credential.new_client(
            &client_id,
            &name,
            secret_hash.as_deref(),
            &checked.grants,
        );
        let taken = self
            .store
            .register_client(
                &token.id,
                &client,
                &NewRegistration {
                    access_token_hash: &hash_secret(&access_token),
                    metadata: &metadata,
                },
                (&token.grants, &token.methods),
                now,
            )
            .await?;
        if !taken {
            return Err(RegistrationError::InvalidToken(format!(
                "the initial access token {} has no use left",
                token.id
            )));
        }
        self.audit(
            "client.registered",
            &client_id,
            format!(
                "token={} name={name} auth={} metadata={metadata}",
                token.id,
                checked.credential.auth_method.as_str()
            ),
        )
        .await?;
        let mut body = answer(&client_id, now, checked.metadata);
        body.insert("registration_access_token".into(), access_token.into());
        if let Some(s) = secret {
            body.insert("client_secret".into(), s.into());
            body.insert("client_secret_expires_at".into(), 0.into());
        }
        Ok(RegistrationAnswer { client_id, body })
    }

    /// The registration managed with `access_token` (RFC 7592): it must be
    /// `client_id`'s.
    async fn managed(
        &self,
        client_id: &str,
        access_token: &str,
    ) -> Result<crate::store::registration::ClientRegistration, RegistrationError> {
        let invalid = || RegistrationError::InvalidToken("wrong registration access token".into());
        let reg = self
            .store
            .registration_by_access_token(&hash_secret(access_token))
            .await?
            .ok_or_else(invalid)?;
        if reg.client_id != client_id {
            return Err(invalid());
        }
        Ok(reg)
    }

    /// RFC 7592 §2.1: the client's metadata.
    pub async fn read_registration(
        &self,
        client_id: &str,
        access_token: &str,
    ) -> Result<RegistrationAnswer, RegistrationError> {
        let reg = self.managed(client_id, access_token).await?;
        let meta: Map<String, Value> = serde_json::from_str(&reg.metadata).unwrap_or_default();
        Ok(RegistrationAnswer {
            client_id: reg.client_id.clone(),
            body: answer(&reg.client_id, reg.created_at, meta),
        })
    }

    /// RFC 7592 §2.2: replaces the client's metadata, within the bounds it
    /// was registered with.
    pub async fn update_registration(
        &self,
        client_id: &str,
        access_token: &str,
        body: &Value,
        now: u64,
    ) -> Result<RegistrationAnswer, RegistrationError> {
        let reg = self.managed(client_id, access_token).await?;
        if body
            .get("client_id")
            .and_then(Value::as_str)
            .is_some_and(|id| id != client_id)
        {
            return Err(RegistrationError::InvalidRequest(
                "client_id differs from the client being updated".into(),
            ));
        }
        let bounds = Bounds::from_stored(&reg.grants, &reg.methods)?;
        let allow = self
            .config
            .oauth
            .jwks_uri_allow_list()
            .map_err(RegistrationError::Unavailable)?;
        let checked = check_metadata(body, &bounds, &allow)?;
        let current = self
            .store
            .get_client(client_id)
            .await?
            .filter(crate::store::Client::is_active)
            .ok_or_else(|| RegistrationError::InvalidToken("the client was deleted".into()))?;
        if checked.credential.auth_method != current.auth_method {
            return Err(meta_err(format!(
                "token_endpoint_auth_method is pinned to {}: register a new client for another method",
                current.auth_method.as_str()
            )));
        }
        let name = registered_name(checked.client_name.as_deref(), client_id);
        let metadata = Value::Object(checked.metadata.clone()).to_string();
        let client: NewClient<'_> =
            checked
                .credential
                .new_client(client_id, &name, None, &checked.grants);
        self.store
            .update_registered_client(&client, &metadata, now)
            .await?;
        self.audit(
            "client.registration_updated",
            client_id,
            format!("metadata={metadata}"),
        )
        .await?;
        Ok(RegistrationAnswer {
            client_id: client_id.into(),
            body: answer(client_id, reg.created_at, checked.metadata),
        })
    }

    /// RFC 7592 §2.3: deletes the client (as `certbound client delete`).
    pub async fn delete_registration(
        &self,
        client_id: &str,
        access_token: &str,
        now: u64,
    ) -> Result<(), RegistrationError> {
        self.managed(client_id, access_token).await?;
        self.store.delete_registered_client(client_id, now).await?;
        self.audit("client.registration_deleted", client_id, String::new())
            .await?;
        Ok(())
    }
}

/// The name of a registered client: its `client_name` (made a valid,
/// unique client name) with the end of its id, or the id.
fn registered_name(client_name: Option<&str>, client_id: &str) -> String {
    let tail: String = client_id
        .chars()
        .rev()
        .take(8)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    match client_name {
        Some(n) => {
            let clean: String = n
                .chars()
                .map(|c| {
                    if c.is_ascii_graphic() && !matches!(c, '"' | '\\' | '#') {
                        c
                    } else {
                        '-'
                    }
                })
                .take(64)
                .collect();
            format!("{clean}.{tail}")
        }
        None => format!("registered.{tail}"),
    }
}

fn answer(client_id: &str, issued_at: u64, metadata: Map<String, Value>) -> Map<String, Value> {
    let mut body = Map::new();
    body.insert("client_id".into(), client_id.into());
    body.insert("client_id_issued_at".into(), issued_at.into());
    body.extend(metadata);
    body
}

mod metadata;
use metadata::meta_err;
pub use metadata::{CheckedMetadata, check_metadata};

#[cfg(test)]
mod tests;
