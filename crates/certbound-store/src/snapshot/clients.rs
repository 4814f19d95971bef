//! The OAuth side of the in-memory registry: clients (with their grants) by
//! id and by the credentials a certificate presents (subject DN, SAN,
//! pinned thumbprint), and every API's token format and lifetime, so that
//! `/oauth/token` decides without the database too.

use std::collections::HashMap;
use std::sync::Arc;

use sqlx::Row;

use super::Snapshot;
use crate::error::StoreError;
use crate::{Client, to_u64};

/// An API as the token paths need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiEntry {
    /// Token lifetime, seconds.
    pub ttl_secs: u64,
    /// Token format (`cwt` or `jwt`).
    pub format: String,
    /// The JWS algorithm of its JWTs when not ES256 (`RS256`, `PS256`,
    /// `EdDSA`; store version 0014).
    pub signing_alg: Option<String>,
    /// The custom claims the API declares.
    pub claims: Vec<crate::attributes::ClaimDecl>,
}

/// Clients by id, with indexes by credential.
#[derive(Debug, Default)]
pub(super) struct ClientFacts {
    by_id: HashMap<String, Arc<Client>>,
    by_subject: HashMap<String, String>,
    by_san: HashMap<String, String>,
    by_thumbprint: HashMap<String, String>,
}

impl ClientFacts {
    pub(super) fn insert(&mut self, client: Client) {
        self.remove(&client.id);
        let id = client.id.clone();
        for (index, value) in [
            (&mut self.by_subject, &client.tls_subject),
            (&mut self.by_san, &client.tls_san),
            (&mut self.by_thumbprint, &client.thumbprint),
        ] {
            if let Some(v) = value {
                index.insert(v.clone(), id.clone());
            }
        }
        self.by_id.insert(id, Arc::new(client));
    }

    pub(super) fn remove(&mut self, id: &str) {
        let Some(old) = self.by_id.remove(id) else {
            return;
        };
        for (index, value) in [
            (&mut self.by_subject, &old.tls_subject),
            (&mut self.by_san, &old.tls_san),
            (&mut self.by_thumbprint, &old.thumbprint),
        ] {
            if let Some(v) = value
                && index.get(v).is_some_and(|holder| holder == id)
            {
                index.remove(v);
            }
        }
    }

    fn get(&self, id: Option<&String>) -> Option<Client> {
        id.and_then(|id| self.by_id.get(id)).map(|c| (**c).clone())
    }

    pub(super) fn len(&self) -> usize {
        self.by_id.len()
    }
}

/// Which credential a lookup uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientKey<'a> {
    /// `client_id`.
    Id(&'a str),
    /// Registered TLS subject DN.
    Subject(&'a str),
    /// Registered TLS SAN (`dns:...`, `uri:...`).
    San(&'a str),
    /// Pinned certificate thumbprint (base64url).
    Thumbprint(&'a str),
}

impl Snapshot {
    /// The client a credential names, from memory (as
    /// [`crate::Store::get_client`] and friends).
    pub fn client(&self, key: ClientKey<'_>) -> Option<Client> {
        let f = self.read_facts();
        let c = &f.clients;
        match key {
            ClientKey::Id(id) => c.by_id.get(id).map(|c| (**c).clone()),
            ClientKey::Subject(v) => c.get(c.by_subject.get(v)),
            ClientKey::San(v) => c.get(c.by_san.get(v)),
            ClientKey::Thumbprint(v) => c.get(c.by_thumbprint.get(v)),
        }
    }

    /// [`Snapshot::client`]; when nothing matches, the change feed is read
    /// first (as [`Snapshot::token_view_or_refresh`], sharing its cooldown).
    ///
    /// # Errors
    /// As [`Snapshot::refresh`].
    pub async fn client_or_refresh(
        &self,
        key: ClientKey<'_>,
    ) -> Result<Option<Client>, StoreError> {
        if let Some(c) = self.client(key) {
            return Ok(Some(c));
        }
        self.refresh_after_miss().await?;
        Ok(self.client(key))
    }

    /// An API's token format and lifetime, from memory.
    pub fn api(&self, id: &str) -> Option<ApiEntry> {
        self.read_facts().apis.get(id).cloned()
    }

    /// [`Snapshot::api`]; when unknown, the change feed is read first.
    ///
    /// # Errors
    /// As [`Snapshot::refresh`].
    pub async fn api_or_refresh(&self, id: &str) -> Result<Option<ApiEntry>, StoreError> {
        if let Some(a) = self.api(id) {
            return Ok(Some(a));
        }
        self.refresh_after_miss().await?;
        Ok(self.api(id))
    }

    pub(super) async fn load_clients(&self) -> Result<ClientFacts, StoreError> {
        let mut facts = ClientFacts::default();
        for client in self.store.list_clients().await? {
            facts.insert(client);
        }
        Ok(facts)
    }

    pub(super) async fn read_client(&self, id: &str) -> Result<Option<Client>, StoreError> {
        self.store.get_client(id).await
    }

    pub(super) async fn load_apis(&self) -> Result<HashMap<String, ApiEntry>, StoreError> {
        Ok(
            sqlx::query("SELECT id, ttl_secs, format, signing_alg, claims FROM apis")
                .fetch_all(&self.store.pool)
                .await?
                .into_iter()
                .map(|r| (r.get("id"), api_entry(&r)))
                .collect(),
        )
    }

    pub(super) async fn read_api(&self, id: &str) -> Result<Option<ApiEntry>, StoreError> {
        let row =
            sqlx::query("SELECT id, ttl_secs, format, signing_alg, claims FROM apis WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.store.pool)
                .await?;
        Ok(row.map(|r| api_entry(&r)))
    }
}

fn api_entry(r: &sqlx::any::AnyRow) -> ApiEntry {
    ApiEntry {
        ttl_secs: to_u64(r.get("ttl_secs")),
        format: r.get("format"),
        signing_alg: r.get("signing_alg"),
        // Declarations are checked when written; one that no longer parses
        // adds no claims (and is logged) rather than stopping every token.
        claims: crate::attributes::claims_from_json(&r.get::<String, _>("claims"))
            .unwrap_or_else(|e| {
                tracing::warn!(api = %r.get::<String, _>("id"), error = %e, "custom claims ignored");
                Vec::new()
            }),
    }
}
