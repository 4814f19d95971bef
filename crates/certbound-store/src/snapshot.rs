//! The registry the token paths need, in memory: certificates by
//! thumbprint, devices with their groups, grants and APIs, and the OAuth
//! clients with their grants ([`clients`]).
//!
//! [`Snapshot`] is loaded once ([`Store::load_snapshot`]) and kept current by
//! the change feed (`registry_changes`, filled by triggers on every write,
//! from any instance or the CLI): [`Snapshot::refresh`] reads the changes
//! after the last one it applied and re-reads just those keys. A broker
//! refreshes on a short poll (and, on PostgreSQL, when `NOTIFY
//! certbound_registry` arrives), and at once after a write of its own
//! ([`Snapshot::refresh_if_written`]), so a revocation made through an
//! instance is enforced on that instance's very next request.
//!
//! [`Snapshot::token_view`] is the in-memory twin of [`Store::token_view`]:
//! the same answer, no database.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use sqlx::Row;

use crate::attributes::{Attributes, effective_attributes};
use crate::error::StoreError;
use crate::{DeviceStatus, Store, TokenView, split_scopes};

pub mod clients;
use clients::{ApiEntry, ClientFacts};

/// More changes than this since the last refresh: reload everything (one
/// pass over each table) instead of key by key.
const FULL_RELOAD_AFTER: usize = 20_000;
/// Refreshes caused by lookups that missed are at least this far apart, so
/// that requests naming unknown certificates cannot turn into a stream of
/// queries (at most 200 a second, however many such requests arrive).
const MISS_COOLDOWN: Duration = Duration::from_millis(5);
/// Changes before the last one applied that a refresh reads again.
const OVERLAP: i64 = 32;

#[derive(Debug, Clone)]
struct CertEntry {
    der: Arc<[u8]>,
    serial: String,
    device_id: String,
    active: bool,
}

#[derive(Debug, Clone)]
struct DeviceEntry {
    status: DeviceStatus,
    groups: Vec<String>,
    attributes: Attributes,
}

/// The registry facts, as of change `version`.
#[derive(Debug, Default)]
struct Facts {
    certs: HashMap<String, CertEntry>,
    devices: HashMap<String, DeviceEntry>,
    /// group -> [(api, scopes)]
    grants: HashMap<String, Vec<(String, String)>>,
    /// api -> token lifetime and format
    apis: HashMap<String, ApiEntry>,
    /// group -> attributes (groups with attributes only)
    group_attrs: HashMap<String, Attributes>,
    /// OAuth clients.
    clients: ClientFacts,
    /// The last change applied.
    version: i64,
}

impl Facts {
    fn token_view(&self, thumbprint: &str, audience: &str) -> Option<TokenView> {
        let cert = self.certs.get(thumbprint)?;
        let device = self.devices.get(&cert.device_id)?;
        let mut scopes: Vec<String> = Vec::new();
        let mut any_grant = false;
        for group in &device.groups {
            for (api, granted) in self.grants.get(group).into_iter().flatten() {
                if api == audience {
                    any_grant = true;
                    for s in split_scopes(granted) {
                        if !scopes.contains(&s) {
                            scopes.push(s);
                        }
                    }
                }
            }
        }
        let api = self.apis.get(audience);
        let attributes = self.effective_attributes(device);
        Some(TokenView {
            der: cert.der.to_vec(),
            serial: cert.serial.clone(),
            cert_active: cert.active,
            device_id: cert.device_id.clone(),
            device_status: device.status,
            api_ttl: api.map(|a| a.ttl_secs),
            granted: any_grant.then_some(scopes),
            attributes,
            claims: api.map(|a| a.claims.clone()).unwrap_or_default(),
        })
    }

    /// A device's own attributes, then its groups' (cheap when none of its
    /// groups has any).
    fn effective_attributes(&self, device: &DeviceEntry) -> Attributes {
        let groups: Vec<(&str, &Attributes)> = device
            .groups
            .iter()
            .filter_map(|g| self.group_attrs.get(g).map(|a| (g.as_str(), a)))
            .collect();
        if groups.is_empty() {
            device.attributes.clone()
        } else {
            effective_attributes(&device.attributes, &groups)
        }
    }
}

/// The in-memory registry of one instance (cheap to clone: shared).
#[derive(Debug, Clone)]
pub struct Snapshot {
    facts: Arc<RwLock<Facts>>,
    store: Store,
    /// The store's write counter when the facts were last refreshed.
    refreshed_at_write: Arc<AtomicU64>,
    /// One refresh at a time.
    refreshing: Arc<tokio::sync::Mutex<()>>,
    /// When the newest refresh started (a lookup that missed before then
    /// needs no refresh of its own).
    last_started: Arc<std::sync::Mutex<Option<Instant>>>,
    /// When the newest refresh caused by a miss started.
    last_miss: Arc<tokio::sync::Mutex<Option<Instant>>>,
}

/// What one refresh did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Refreshed {
    /// Changes read from the feed.
    pub changes: usize,
    /// The whole registry was reloaded (too many changes to apply one by one).
    pub full_reload: bool,
}

impl Store {
    /// Loads the registry the token path needs into memory.
    ///
    /// # Errors
    /// [`StoreError::Db`] when the store cannot be read.
    pub async fn load_snapshot(&self) -> Result<Snapshot, StoreError> {
        let snapshot = Snapshot {
            facts: Arc::default(),
            store: self.clone(),
            refreshed_at_write: Arc::new(AtomicU64::new(self.writes())),
            refreshing: Arc::default(),
            last_started: Arc::default(),
            last_miss: Arc::default(),
        };
        let facts = snapshot.load_all().await?;
        *snapshot.write_facts() = facts;
        Ok(snapshot)
    }

    /// Deletes the change-feed rows older than the newest `keep` (running
    /// instances read the feed every fraction of a second; one that starts
    /// loads the whole registry, not the feed). Returns the rows deleted.
    ///
    /// # Errors
    /// [`StoreError::Db`].
    pub async fn prune_registry_changes(&self, keep: i64) -> Result<u64, StoreError> {
        let newest = self.last_change().await?;
        let done = sqlx::query("DELETE FROM registry_changes WHERE id <= $1")
            .bind(newest.saturating_sub(keep))
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// The newest change in the feed (0: none).
    pub async fn last_change(&self) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM registry_changes")
                .fetch_one(&self.pool)
                .await?,
        )
    }
}

impl Snapshot {
    /// The registry facts behind one token decision, from memory (see
    /// [`Store::token_view`]).
    pub fn token_view(&self, thumbprint: &str, audience: &str) -> Option<TokenView> {
        self.read_facts().token_view(thumbprint, audience)
    }

    /// Keeps the snapshot current until the task is dropped: reads the
    /// change feed every `poll`, and on PostgreSQL also as soon as `NOTIFY
    /// certbound_registry` arrives (sent by the feed's triggers; PostgreSQL
    /// delivers one per transaction). A listener that fails falls back to
    /// polling alone (logged once).
    pub async fn follow(self, poll: Duration) {
        let mut listener = match self.store.backend {
            crate::Backend::Postgres => self.listen().await,
            crate::Backend::Sqlite => None,
        };
        let mut ticker = tokio::time::interval(poll);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            match listener.as_mut() {
                Some(l) => {
                    tokio::select! {
                        _ = ticker.tick() => {}
                        r = l.recv() => if let Err(e) = r {
                            tracing::warn!(error = %e, "registry change notifications stopped; polling every {poll:?}");
                            listener = None;
                        }
                    }
                }
                None => {
                    ticker.tick().await;
                }
            }
            match self.refresh().await {
                Ok(r) => {
                    if failing {
                        tracing::info!("the registry change feed is readable again");
                        failing = false;
                    }
                    if r.changes > 0 {
                        tracing::debug!(
                            changes = r.changes,
                            full = r.full_reload,
                            "registry snapshot refreshed"
                        );
                    }
                }
                Err(e) if !failing => {
                    tracing::warn!(error = %e, "the registry change feed cannot be read; tokens are decided on the last snapshot until it can");
                    failing = true;
                }
                Err(_) => {}
            }
        }
    }

    async fn listen(&self) -> Option<sqlx::postgres::PgListener> {
        let url = &self.store.url.0;
        let listener = async {
            let mut l = sqlx::postgres::PgListener::connect(url).await?;
            l.listen("certbound_registry").await?;
            Ok::<_, sqlx::Error>(l)
        };
        match listener.await {
            Ok(l) => Some(l),
            Err(e) => {
                tracing::warn!(error = %e, "cannot LISTEN for registry changes; polling only");
                None
            }
        }
    }

    /// [`Snapshot::token_view`]; when the certificate is unknown, the change
    /// feed is read first (a device provisioned a moment ago through another
    /// instance or the CLI is found at once). Lookups that miss together
    /// share one read, and such reads are at least [`MISS_COOLDOWN`] apart.
    ///
    /// # Errors
    /// As [`Snapshot::refresh`].
    pub async fn token_view_or_refresh(
        &self,
        thumbprint: &str,
        audience: &str,
    ) -> Result<Option<TokenView>, StoreError> {
        if let Some(view) = self.token_view(thumbprint, audience) {
            return Ok(Some(view));
        }
        self.refresh_after_miss().await?;
        Ok(self.token_view(thumbprint, audience))
    }

    /// Reads the change feed after a lookup missed, unless a refresh started
    /// since the miss; such reads are shared by concurrent misses and at
    /// least [`MISS_COOLDOWN`] apart.
    async fn refresh_after_miss(&self) -> Result<(), StoreError> {
        let arrived = Instant::now();
        let mut last_miss = self.last_miss.lock().await;
        let covered = self
            .last_started
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_some_and(|started| started >= arrived);
        if !covered {
            if let Some(wait) = last_miss.and_then(|t| MISS_COOLDOWN.checked_sub(t.elapsed())) {
                tokio::time::sleep(wait).await;
            }
            *last_miss = Some(Instant::now());
            self.refresh().await?;
        }
        Ok(())
    }

    /// The last change applied.
    pub fn version(&self) -> i64 {
        self.read_facts().version
    }

    /// Devices and certificates held, for metrics and sizing.
    pub fn counts(&self) -> (usize, usize) {
        let f = self.read_facts();
        (f.devices.len(), f.certs.len())
    }

    /// OAuth clients held.
    pub fn client_count(&self) -> usize {
        self.read_facts().clients.len()
    }

    /// Refreshes when this process wrote to the store since the last refresh
    /// (so its own changes count from its very next request); a no-op
    /// otherwise.
    ///
    /// # Errors
    /// As [`Snapshot::refresh`].
    pub async fn refresh_if_written(&self) -> Result<(), StoreError> {
        if self.store.writes() != self.refreshed_at_write.load(Ordering::Acquire) {
            self.refresh().await?;
        }
        Ok(())
    }

    /// Applies the changes made since the last refresh (by anyone).
    ///
    /// # Errors
    /// [`StoreError::Db`] when the store cannot be read; the snapshot then
    /// stays as it was.
    pub async fn refresh(&self) -> Result<Refreshed, StoreError> {
        let _one = self.refreshing.lock().await;
        *self
            .last_started
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Instant::now());
        let writes = self.store.writes();
        let since = self.version();
        if self.store.last_change().await? <= since {
            self.refreshed_at_write.store(writes, Ordering::Release);
            return Ok(Refreshed::default());
        }
        // Writers are serialised, so changes commit in id order; the few
        // before `since` are read again anyway (re-reading a key is
        // idempotent), should a write ever have committed out of order.
        let rows = sqlx::query(
            "SELECT id, kind, key FROM registry_changes WHERE id > $1 ORDER BY id LIMIT $2",
        )
        .bind(since.saturating_sub(OVERLAP))
        .bind(i64::try_from(FULL_RELOAD_AFTER + 1).unwrap_or(i64::MAX))
        .fetch_all(&self.store.pool)
        .await?;
        if rows.len() > FULL_RELOAD_AFTER {
            let facts = self.load_all().await?;
            *self.write_facts() = facts;
            self.refreshed_at_write.store(writes, Ordering::Release);
            return Ok(Refreshed {
                changes: rows.len(),
                full_reload: true,
            });
        }
        let mut last = since;
        let mut keys: BTreeSet<(String, String)> = BTreeSet::new();
        for r in &rows {
            last = last.max(r.get::<i64, _>("id"));
            keys.insert((r.get("kind"), r.get("key")));
        }
        // Read every changed key first, then swap them in under one short
        // write lock.
        let mut certs = Vec::new();
        let mut devices = Vec::new();
        let mut groups = Vec::new();
        let mut apis = Vec::new();
        let mut clients = Vec::new();
        // Certificates and devices change by the thousand (enrollments,
        // renewals, bulk provisioning) and are read in one query each: one
        // query per key cost a renewal 25 queries (the overlap of every
        // refresh read again, row by row).
        let from = since.saturating_sub(OVERLAP);
        let mut changed_certs = self.read_changed_certs(from, last).await?;
        let mut changed_devices = self.read_changed_devices(from, last).await?;
        for (kind, key) in &keys {
            match kind.as_str() {
                "cert" => certs.push((key.clone(), changed_certs.remove(key))),
                "device" => devices.push((key.clone(), changed_devices.remove(key))),
                "group" => groups.push((
                    key.clone(),
                    self.read_group(key).await?,
                    self.read_group_attributes(key).await?,
                )),
                "api" => apis.push((key.clone(), self.read_api(key).await?)),
                "client" => clients.push((key.clone(), self.read_client(key).await?)),
                _ => {}
            }
        }
        let mut f = self.write_facts();
        for (k, v) in certs {
            match v {
                Some(c) => f.certs.insert(k, c),
                None => f.certs.remove(&k),
            };
        }
        for (k, v) in devices {
            match v {
                Some(d) => f.devices.insert(k, d),
                None => f.devices.remove(&k),
            };
        }
        for (k, v, attrs) in groups {
            match attrs {
                Some(a) if !a.is_empty() => f.group_attrs.insert(k.clone(), a),
                _ => f.group_attrs.remove(&k),
            };
            if v.is_empty() {
                f.grants.remove(&k);
            } else {
                f.grants.insert(k, v);
            }
        }
        for (k, v) in apis {
            match v {
                Some(api) => f.apis.insert(k, api),
                None => f.apis.remove(&k),
            };
        }
        for (k, v) in clients {
            match v {
                Some(c) => f.clients.insert(c),
                None => f.clients.remove(&k),
            }
        }
        f.version = last;
        drop(f);
        self.refreshed_at_write.store(writes, Ordering::Release);
        Ok(Refreshed {
            changes: rows.len(),
            full_reload: false,
        })
    }

    fn read_facts(&self) -> std::sync::RwLockReadGuard<'_, Facts> {
        self.facts
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write_facts(&self) -> std::sync::RwLockWriteGuard<'_, Facts> {
        self.facts
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Everything, as of the change it reports (read first, so that changes
    /// made during the load are applied again by the next refresh).
    async fn load_all(&self) -> Result<Facts, StoreError> {
        let pool = &self.store.pool;
        let version = self.store.last_change().await?;
        let mut facts = Facts {
            version,
            ..Facts::default()
        };
        for r in sqlx::query("SELECT thumbprint, der, serial, device_id, status FROM certificates")
            .fetch_all(pool)
            .await?
        {
            facts.certs.insert(r.get("thumbprint"), cert_entry(&r));
        }
        for r in sqlx::query("SELECT id, status, attributes FROM devices")
            .fetch_all(pool)
            .await?
        {
            facts.devices.insert(r.get("id"), device_entry(&r)?);
        }
        for r in sqlx::query("SELECT name, attributes FROM groups WHERE attributes <> '{}'")
            .fetch_all(pool)
            .await?
        {
            facts.group_attrs.insert(
                r.get("name"),
                Attributes::from_json(&r.get::<String, _>("attributes"))?,
            );
        }
        for r in sqlx::query(
            "SELECT device_id, group_name FROM device_groups ORDER BY device_id, group_name",
        )
        .fetch_all(pool)
        .await?
        {
            if let Some(d) = facts.devices.get_mut(&r.get::<String, _>("device_id")) {
                d.groups.push(r.get("group_name"));
            }
        }
        for r in sqlx::query(GROUP_GRANTS_ALL).fetch_all(pool).await? {
            facts
                .grants
                .entry(r.get("group_name"))
                .or_default()
                .push((r.get("api_id"), r.get("scopes")));
        }
        facts.apis = self.load_apis().await?;
        facts.clients = self.load_clients().await?;
        Ok(facts)
    }

    /// The certificates named by the `cert` changes with ids in
    /// `(after, upto]`, by thumbprint (a certificate deleted since is absent).
    async fn read_changed_certs(
        &self,
        after: i64,
        upto: i64,
    ) -> Result<HashMap<String, CertEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT thumbprint, der, serial, device_id, status FROM certificates WHERE thumbprint IN \
             (SELECT key FROM registry_changes WHERE kind = 'cert' AND id > $1 AND id <= $2)",
        )
        .bind(after)
        .bind(upto)
        .fetch_all(&self.store.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| (r.get("thumbprint"), cert_entry(r)))
            .collect())
    }

    /// The devices named by the `device` changes with ids in `(after,
    /// upto]`, with their groups, by id (a device deleted since is absent).
    async fn read_changed_devices(
        &self,
        after: i64,
        upto: i64,
    ) -> Result<HashMap<String, DeviceEntry>, StoreError> {
        const CHANGED: &str =
            "(SELECT key FROM registry_changes WHERE kind = 'device' AND id > $1 AND id <= $2)";
        let mut out = HashMap::new();
        for r in sqlx::query(&format!(
            "SELECT id, status, attributes FROM devices WHERE id IN {CHANGED}"
        ))
        .bind(after)
        .bind(upto)
        .fetch_all(&self.store.pool)
        .await?
        {
            out.insert(r.get::<String, _>("id"), device_entry(&r)?);
        }
        for r in sqlx::query(&format!(
            "SELECT device_id, group_name FROM device_groups WHERE device_id IN {CHANGED} \
             ORDER BY device_id, group_name"
        ))
        .bind(after)
        .bind(upto)
        .fetch_all(&self.store.pool)
        .await?
        {
            if let Some(d) = out.get_mut(&r.get::<String, _>("device_id")) {
                d.groups.push(r.get("group_name"));
            }
        }
        Ok(out)
    }

    async fn read_group_attributes(&self, group: &str) -> Result<Option<Attributes>, StoreError> {
        let text: Option<String> =
            sqlx::query_scalar("SELECT attributes FROM groups WHERE name = $1")
                .bind(group)
                .fetch_optional(&self.store.pool)
                .await?;
        text.map(|t| Attributes::from_json(&t)).transpose()
    }

    async fn read_group(&self, group: &str) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query(GROUP_GRANTS_ONE)
            .bind(group)
            .fetch_all(&self.store.pool)
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| (r.get("api_id"), r.get("scopes")))
            .collect())
    }
}

/// Every group's grants: its own and its roles' (one row each; the token
/// view unions them per API).
const GROUP_GRANTS_ALL: &str = "SELECT group_name, api_id, scopes FROM grants \
     UNION ALL SELECT gr.group_name, rg.api_id, rg.scopes FROM group_roles gr \
     JOIN role_grants rg ON rg.role_name = gr.role_name ORDER BY 1, 2";
/// One group's grants, as [`GROUP_GRANTS_ALL`].
const GROUP_GRANTS_ONE: &str = "SELECT api_id, scopes FROM grants WHERE group_name = $1 \
     UNION ALL SELECT rg.api_id, rg.scopes FROM group_roles gr \
     JOIN role_grants rg ON rg.role_name = gr.role_name WHERE gr.group_name = $1 ORDER BY 1";
fn device_entry(r: &sqlx::any::AnyRow) -> Result<DeviceEntry, StoreError> {
    Ok(DeviceEntry {
        status: r.get::<String, _>("status").parse()?,
        groups: Vec::new(),
        attributes: Attributes::from_json(&r.get::<String, _>("attributes"))?,
    })
}

fn cert_entry(r: &sqlx::any::AnyRow) -> CertEntry {
    CertEntry {
        der: r.get::<Vec<u8>, _>("der").into(),
        serial: r.get("serial"),
        device_id: r.get("device_id"),
        active: r.get::<String, _>("status") == "active",
    }
}
