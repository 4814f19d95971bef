//! Operator operations on backend-service clients and the admin bootstrap.

use std::fs;

use serde::Serialize;

use super::{Registry, check_token, parse_scopes};
use crate::clock::unix_now;
use crate::error::BrokerError;
use crate::keys;
use crate::oauth::{hash_secret, new_client_id, new_client_secret};
use crate::store::{Client, NewClient};

/// The identifier (`aud`) of the admin API. Its tokens are JWTs.
pub const ADMIN_API: &str = "urn:certbound:admin";
/// The admin API's scopes: read everything, change everything.
pub const ADMIN_SCOPES: &str = "admin:read admin:write";
/// Where init writes the bootstrap admin client's credentials (mode 0600).
pub const ADMIN_CLIENT_FILE: &str = "admin-client.json";
/// Name of the bootstrap admin client.
const ADMIN_CLIENT_NAME: &str = "admin";
/// Lifetime of admin tokens, seconds.
const ADMIN_TOKEN_TTL: u64 = 900;

/// A newly created client; the secret is shown only here.
#[derive(Debug, Clone, Serialize)]
pub struct CreatedClient {
    /// `client_id`.
    pub client_id: String,
    /// The secret (store it now: only its hash is kept).
    pub client_secret: Option<String>,
    /// Name.
    pub name: String,
    /// Registered TLS subject.
    pub tls_subject: Option<String>,
}

/// Parses `--grant "<api>=<scope> <scope>"`.
pub fn parse_grant(text: &str) -> Result<(String, String), BrokerError> {
    let (api, scopes) = text.split_once('=').ok_or_else(|| {
        BrokerError::Invalid(format!(
            "grant {text:?} must look like \"<api identifier>=<scope> <scope>\""
        ))
    })?;
    // API identifiers are URIs that may contain '=' in a query; split at the
    // last '=' when the first split leaves no scope.
    let (api, scopes) = if scopes.trim().is_empty() {
        text.rsplit_once('=').unwrap_or((api, scopes))
    } else {
        (api, scopes)
    };
    check_token("API identifier", api.trim())?;
    let scopes = parse_scopes(scopes)?;
    if scopes.is_empty() {
        return Err(BrokerError::Invalid(format!(
            "grant {text:?} names no scope after '='"
        )));
    }
    Ok((api.trim().to_string(), scopes.join(" ")))
}

impl Registry {
    /// Registers a backend-service client. With `tls_subject` it
    /// authenticates by certificate (`tls_client_auth`); with `secret` (the
    /// default) a random 256-bit secret is generated and returned once.
    pub async fn create_client(
        &self,
        name: &str,
        grants: &[(String, String)],
        tls_subject: Option<&str>,
        secret: bool,
    ) -> Result<CreatedClient, BrokerError> {
        check_token("client name", name)?;
        if name.contains('#') {
            return Err(BrokerError::Invalid(format!(
                "client name {name:?} may not contain '#'"
            )));
        }
        if tls_subject.is_none() && !secret {
            return Err(BrokerError::Invalid(
                "a client needs a secret or a TLS subject (--tls-subject \"CN=...\")".into(),
            ));
        }
        let subject = tls_subject.map(crate::oauth::normalise_dn);
        if let Some(dn) = &subject
            && !dn.contains('=')
        {
            return Err(BrokerError::Invalid(format!(
                "TLS subject {dn:?} is not a DN: write it as \"CN=reporting\" (RFC 4514)"
            )));
        }
        let client_id = new_client_id();
        let client_secret = secret.then(new_client_secret);
        let hash = client_secret.as_deref().map(hash_secret);
        self.store
            .create_client(
                &NewClient {
                    id: &client_id,
                    name,
                    secret_hash: hash.as_deref(),
                    tls_subject: subject.as_deref(),
                    grants,
                },
                unix_now(),
            )
            .await?;
        let grants_text: Vec<String> = grants.iter().map(|(a, s)| format!("{a}={s}")).collect();
        self.audit(
            "client.created",
            &client_id,
            format!(
                "name={name} auth={} grants={}",
                if subject.is_some() {
                    "tls_client_auth"
                } else {
                    "secret"
                },
                grants_text.join(";")
            ),
        )
        .await?;
        Ok(CreatedClient {
            client_id,
            client_secret,
            name: name.into(),
            tls_subject: subject,
        })
    }

    /// Looks a client up by id or name.
    pub async fn find_client(&self, id_or_name: &str) -> Result<Client, BrokerError> {
        if let Some(c) = self.store.get_client(id_or_name).await? {
            return Ok(c);
        }
        self.store
            .get_client_by_name(id_or_name)
            .await?
            .ok_or_else(|| BrokerError::NotFound {
                kind: "client",
                name: id_or_name.into(),
                hint: "; see `certbound client list`".into(),
            })
    }

    /// All active clients.
    pub async fn list_clients(&self) -> Result<Vec<Client>, BrokerError> {
        Ok(self
            .store
            .list_clients()
            .await?
            .into_iter()
            .filter(Client::is_active)
            .collect())
    }

    /// Replaces a client's secret; the old one stops working at once.
    pub async fn rotate_client_secret(
        &self,
        id_or_name: &str,
    ) -> Result<CreatedClient, BrokerError> {
        let client = self.find_client(id_or_name).await?;
        if !client.is_active() {
            return Err(BrokerError::Invalid(format!(
                "client {} was deleted",
                client.id
            )));
        }
        let secret = new_client_secret();
        self.store
            .set_client_secret(&client.id, &hash_secret(&secret), unix_now())
            .await?;
        self.audit(
            "client.secret_rotated",
            &client.id,
            format!("name={}", client.name),
        )
        .await?;
        Ok(CreatedClient {
            client_id: client.id,
            client_secret: Some(secret),
            name: client.name,
            tls_subject: client.tls_subject,
        })
    }

    /// Deletes a client: no new tokens, and its tokens turn inactive
    /// (introspection at once, status lists within their TTL).
    pub async fn delete_client(&self, id_or_name: &str) -> Result<Client, BrokerError> {
        let client = self.find_client(id_or_name).await?;
        self.store.revoke_client(&client.id, unix_now()).await?;
        self.audit(
            "client.deleted",
            &client.id,
            format!("name={}", client.name),
        )
        .await?;
        Ok(client)
    }

    /// Makes sure the admin API and the bootstrap admin client exist. When
    /// the client is created here its credentials are written to
    /// `DIR/admin-client.json` (mode 0600) and returned.
    pub async fn ensure_admin(&self) -> Result<Option<CreatedClient>, BrokerError> {
        if self.store.get_api(ADMIN_API).await?.is_none() {
            self.create_api_with_format(ADMIN_API, ADMIN_SCOPES, ADMIN_TOKEN_TTL, "jwt")
                .await?;
        }
        if self
            .store
            .get_client_by_name(ADMIN_CLIENT_NAME)
            .await?
            .is_some()
        {
            return Ok(None);
        }
        let created = self
            .create_client(
                ADMIN_CLIENT_NAME,
                &[(ADMIN_API.into(), ADMIN_SCOPES.into())],
                None,
                true,
            )
            .await?;
        let path = self.data.root.join(ADMIN_CLIENT_FILE);
        let json = serde_json::to_string_pretty(&serde_json::json!({
            "client_id": created.client_id,
            "client_secret": created.client_secret,
            "audience": ADMIN_API,
            "scope": ADMIN_SCOPES,
        }))
        .map_err(|e| BrokerError::Invalid(format!("admin credentials: {e}")))?;
        if path.exists() {
            fs::remove_file(&path).map_err(BrokerError::io(&path))?;
        }
        keys::write_private(&path, format!("{json}\n").as_bytes())?;
        Ok(Some(created))
    }

    /// Adds a signing key (see [`keys::rotate`]): published now, signing
    /// after `grace` seconds; the old keys are retired once no token they
    /// signed can still be valid.
    pub async fn rotate_keys(&self, grace: u64) -> Result<keys::Rotation, BrokerError> {
        let rotation = keys::rotate(
            &self.store,
            &self.data.key_dir(),
            unix_now(),
            grace,
            self.config.broker.leeway_secs,
            self.config.status.ttl_secs,
        )
        .await?;
        self.audit(
            "keys.rotated",
            &rotation.new_kid,
            format!(
                "active_from={} retire_old_after={}",
                rotation.active_from, rotation.retire_old_after
            ),
        )
        .await?;
        Ok(rotation)
    }
}
