//! Policy as code: the APIs, groups (with their grants) and backend-service
//! clients (with their grants) of a data directory as one TOML document.
//!
//! - [`export`] writes the current policy ([`PolicyDoc::to_toml`]);
//! - [`plan`] compares a document with the store and lists the changes;
//! - [`apply`] makes the store match the document in ONE `BEGIN IMMEDIATE`
//!   transaction: everything is validated first, and either every change
//!   happens or none does.
//!
//! Values may use `${ENV_VAR}` ([`substitute`]); `$${` writes a literal `${`.
//! Devices, certificates, claims and secrets are inventory, not policy. The
//! built-in admin API (`urn:certbound:admin`) and the bootstrap `admin`
//! client are never exported, changed or removed. See `docs/policy.md`.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use sqlx::{AnyConnection as SqliteConnection, Row};

use crate::clock::unix_now;
use crate::error::BrokerError;
use crate::oauth::{hash_secret, new_client_id, new_client_secret};
use crate::registry::{ADMIN_API, CreatedClient, parse_scopes};
use crate::store::Store;

/// Name of the bootstrap admin client (made by `init`; not policy).
pub const ADMIN_CLIENT: &str = "admin";
/// Token lifetime of an API that does not give `ttl_secs`.
pub const DEFAULT_TTL_SECS: u64 = 3600;

/// The policy document.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyDoc {
    /// APIs (resource servers).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub api: Vec<ApiSpec>,
    /// Groups (roles given to devices).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub group: Vec<GroupSpec>,
    /// Backend-service clients, matched by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub client: Vec<ClientSpec>,
}

/// `[[api]]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiSpec {
    /// Identifier (the `aud`).
    pub id: String,
    /// Its scopes.
    pub scopes: Vec<String>,
    /// Token lifetime, seconds (default 3600).
    #[serde(default = "default_ttl")]
    pub ttl_secs: u64,
    /// Token format of its clients: `cwt` (default) or `jwt`.
    #[serde(default = "default_format")]
    pub format: String,
}

/// `[[group]]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupSpec {
    /// Group name.
    pub name: String,
    /// `[[group.grant]]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grant: Vec<GrantSpec>,
}

/// `[[client]]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientSpec {
    /// Client name (the match key; the `client_id` is not policy).
    pub name: String,
    /// Subject DN for `tls_client_auth`; without it a new client gets a secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_subject: Option<String>,
    /// `[[client.grant]]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grant: Vec<GrantSpec>,
}

/// A grant: scopes of one API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantSpec {
    /// The API identifier.
    pub api: String,
    /// Granted scopes.
    pub scopes: Vec<String>,
}

fn default_ttl() -> u64 {
    DEFAULT_TTL_SECS
}

fn default_format() -> String {
    "cwt".into()
}

impl PolicyDoc {
    /// Parses a policy document, substituting `${VAR}` in string values with
    /// `lookup(VAR)`; an undefined variable is an error naming it.
    pub fn parse(text: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<Self, BrokerError> {
        let mut value: toml::Value = toml::from_str(text)
            .map_err(|e| BrokerError::Invalid(format!("policy document: {e}")))?;
        substitute_value(&mut value, &lookup)?;
        value
            .try_into()
            .map_err(|e: toml::de::Error| BrokerError::Invalid(format!("policy document: {e}")))
    }

    /// Parses with the process environment.
    pub fn parse_env(text: &str) -> Result<Self, BrokerError> {
        Self::parse(text, |k| std::env::var(k).ok())
    }

    /// The TOML text (`${` in values written as `$${`, so that it reads back the same).
    pub fn to_toml(&self) -> Result<String, BrokerError> {
        let esc = |s: &str| s.replace("${", "$${");
        let grants = |gs: &[GrantSpec]| {
            gs.iter()
                .map(|g| GrantSpec {
                    api: esc(&g.api),
                    scopes: g.scopes.iter().map(|s| esc(s)).collect(),
                })
                .collect()
        };
        let doc = PolicyDoc {
            api: self
                .api
                .iter()
                .map(|a| ApiSpec {
                    id: esc(&a.id),
                    scopes: a.scopes.iter().map(|s| esc(s)).collect(),
                    ttl_secs: a.ttl_secs,
                    format: esc(&a.format),
                })
                .collect(),
            group: self
                .group
                .iter()
                .map(|g| GroupSpec {
                    name: esc(&g.name),
                    grant: grants(&g.grant),
                })
                .collect(),
            client: self
                .client
                .iter()
                .map(|c| ClientSpec {
                    name: esc(&c.name),
                    tls_subject: c.tls_subject.as_deref().map(esc),
                    grant: grants(&c.grant),
                })
                .collect(),
        };
        let body = toml::to_string(&doc)
            .map_err(|e| BrokerError::Invalid(format!("policy document: {e}")))?;
        Ok(format!(
            "# certbound policy (see docs/policy.md). Devices, certificates and secrets are not policy.\n\n{body}"
        ))
    }
}

/// Replaces `${NAME}` by `lookup(NAME)`; `$${` is a literal `${`.
pub fn substitute(
    text: &str,
    lookup: &impl Fn(&str) -> Option<String>,
) -> Result<String, BrokerError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(after) = tail.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
        } else if let Some(after) = tail.strip_prefix("${") {
            let end = after.find('}').ok_or_else(|| {
                BrokerError::Invalid(format!(
                    "unterminated ${{...}} in {text:?} (write $${{ for a literal ${{)"
                ))
            })?;
            let name = &after[..end];
            let valid = name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err(BrokerError::Invalid(format!(
                    "${{{name}}} is not a valid environment variable name"
                )));
            }
            let v = lookup(name).ok_or_else(|| {
                BrokerError::Invalid(format!(
                    "environment variable {name} is not defined (used as ${{{name}}} in the policy)"
                ))
            })?;
            out.push_str(&v);
            rest = &after[end + 1..];
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn substitute_value(
    v: &mut toml::Value,
    lookup: &impl Fn(&str) -> Option<String>,
) -> Result<(), BrokerError> {
    match v {
        toml::Value::String(s) => *s = substitute(s, lookup)?,
        toml::Value::Array(a) => {
            for x in a {
                substitute_value(x, lookup)?;
            }
        }
        toml::Value::Table(t) => {
            for (_, x) in t.iter_mut() {
                substitute_value(x, lookup)?;
            }
        }
        _ => {}
    }
    Ok(())
}

// === reading the current state ===

fn scopes_of(s: &str) -> Vec<String> {
    s.split(' ')
        .filter(|x| !x.is_empty())
        .map(String::from)
        .collect()
}

fn grants_of(rows: Vec<sqlx::any::AnyRow>) -> Vec<GrantSpec> {
    rows.into_iter()
        .map(|r| GrantSpec {
            api: r.get("api_id"),
            scopes: scopes_of(r.get("scopes")),
        })
        .collect()
}

/// A client as stored (with its id, which is not policy).
struct StoredClient {
    id: String,
    has_secret: bool,
    spec: ClientSpec,
}

async fn read_apis(conn: &mut SqliteConnection) -> Result<Vec<ApiSpec>, BrokerError> {
    let rows =
        sqlx::query("SELECT id, format, ttl_secs, scopes FROM apis WHERE id != $1 ORDER BY id")
            .bind(ADMIN_API)
            .fetch_all(&mut *conn)
            .await?;
    Ok(rows
        .into_iter()
        .map(|r| ApiSpec {
            id: r.get("id"),
            scopes: scopes_of(r.get("scopes")),
            ttl_secs: u64::try_from(r.get::<i64, _>("ttl_secs")).unwrap_or(0),
            format: r.get("format"),
        })
        .collect())
}

async fn read_groups(conn: &mut SqliteConnection) -> Result<Vec<GroupSpec>, BrokerError> {
    let names: Vec<String> = sqlx::query_scalar("SELECT name FROM groups ORDER BY name")
        .fetch_all(&mut *conn)
        .await?;
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let rows =
            sqlx::query("SELECT api_id, scopes FROM grants WHERE group_name = $1 ORDER BY api_id")
                .bind(&name)
                .fetch_all(&mut *conn)
                .await?;
        out.push(GroupSpec {
            name,
            grant: grants_of(rows),
        });
    }
    Ok(out)
}

async fn read_clients(conn: &mut SqliteConnection) -> Result<Vec<StoredClient>, BrokerError> {
    let rows = sqlx::query(
        "SELECT id, name, secret_hash, tls_subject FROM clients \
         WHERE status = 'active' AND name != $1 ORDER BY name",
    )
    .bind(ADMIN_CLIENT)
    .fetch_all(&mut *conn)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let id: String = r.get("id");
        let secret: Option<String> = r.get("secret_hash");
        let grants = sqlx::query(
            "SELECT api_id, scopes FROM client_grants WHERE client_id = $1 ORDER BY api_id",
        )
        .bind(&id)
        .fetch_all(&mut *conn)
        .await?;
        out.push(StoredClient {
            id,
            has_secret: secret.is_some_and(|h| h != "revoked"),
            spec: ClientSpec {
                name: r.get("name"),
                tls_subject: r.get("tls_subject"),
                grant: grants_of(grants),
            },
        });
    }
    Ok(out)
}

async fn read_state(conn: &mut SqliteConnection) -> Result<PolicyDoc, BrokerError> {
    Ok(PolicyDoc {
        api: read_apis(conn).await?,
        group: read_groups(conn).await?,
        client: read_clients(conn)
            .await?
            .into_iter()
            .map(|c| c.spec)
            .collect(),
    })
}

/// The current policy of the store (sorted; admin API and client left out).
pub async fn export(store: &Store) -> Result<PolicyDoc, BrokerError> {
    let mut tx = store.policy_read().await?;
    let doc = read_state(&mut tx).await?;
    tx.rollback().await?;
    Ok(doc)
}

// === validation ===

fn check_name(kind: &str, value: &str) -> Result<(), BrokerError> {
    if value.is_empty()
        || value.len() > 256
        || !value
            .chars()
            .all(|c| c.is_ascii_graphic() && c != '"' && c != '\\')
    {
        return Err(BrokerError::Invalid(format!(
            "{kind} {value:?} is invalid: use 1-256 printable ASCII characters without spaces, quotes or backslashes"
        )));
    }
    Ok(())
}

fn check_scope_list(what: &str, scopes: &[String]) -> Result<(), BrokerError> {
    if scopes.is_empty() {
        return Err(BrokerError::Invalid(format!("{what} names no scopes")));
    }
    let mut seen = BTreeSet::new();
    for s in scopes {
        if parse_scopes(s)?.len() != 1 {
            return Err(BrokerError::Invalid(format!(
                "{what}: scope {s:?} is invalid: one scope per list element, no spaces"
            )));
        }
        if !seen.insert(s) {
            return Err(BrokerError::Invalid(format!(
                "{what}: scope {s:?} is listed twice"
            )));
        }
    }
    Ok(())
}

/// Checks a document on its own and against the built-ins; `admin_scopes`
/// are the scopes of the admin API (grants may name it). Normalises TLS
/// subjects in place.
fn validate(doc: &mut PolicyDoc, admin_scopes: &[String]) -> Result<(), BrokerError> {
    let mut apis: BTreeMap<&str, &[String]> = BTreeMap::new();
    apis.insert(ADMIN_API, admin_scopes);
    for a in &doc.api {
        check_name("API identifier", &a.id)?;
        if a.id == ADMIN_API {
            return Err(BrokerError::Invalid(format!(
                "API {ADMIN_API} is built in and not policy: remove it from the document"
            )));
        }
        if a.format != "cwt" && a.format != "jwt" {
            return Err(BrokerError::Invalid(format!(
                "API {}: token format {:?} is not supported: use \"cwt\" or \"jwt\"",
                a.id, a.format
            )));
        }
        if !(5..=86_400).contains(&a.ttl_secs) {
            return Err(BrokerError::Invalid(format!(
                "API {}: ttl_secs {} is out of range: use 5 to 86400 seconds",
                a.id, a.ttl_secs
            )));
        }
        check_scope_list(&format!("API {}", a.id), &a.scopes)?;
        if apis.insert(&a.id, &a.scopes).is_some() {
            return Err(BrokerError::Invalid(format!(
                "API {} is defined twice",
                a.id
            )));
        }
    }
    let check_grants = |owner: &str, grants: &[GrantSpec], strict: bool| {
        let mut seen = BTreeSet::new();
        for g in grants {
            let what = format!("{owner}: grant for {}", g.api);
            let defined = apis.get(g.api.as_str()).ok_or_else(|| {
                BrokerError::Invalid(format!(
                    "{what}: API {:?} is not defined in the policy",
                    g.api
                ))
            })?;
            check_scope_list(&what, &g.scopes)?;
            if strict && let Some(s) = g.scopes.iter().find(|s| !defined.contains(s)) {
                return Err(BrokerError::Invalid(format!(
                    "{what}: scope {s:?} is not defined by the API (it defines: {})",
                    defined.join(" ")
                )));
            }
            if !seen.insert(&g.api) {
                return Err(BrokerError::Invalid(format!(
                    "{owner}: two grants for API {}",
                    g.api
                )));
            }
        }
        Ok::<(), BrokerError>(())
    };
    let mut names = BTreeSet::new();
    for g in &doc.group {
        check_name("group name", &g.name)?;
        if !names.insert(&g.name) {
            return Err(BrokerError::Invalid(format!(
                "group {} is defined twice",
                g.name
            )));
        }
        // As `certbound group create`: group scopes must be defined by the API.
        check_grants(&format!("group {}", g.name), &g.grant, true)?;
    }
    let mut names = BTreeSet::new();
    let mut subjects = BTreeMap::new();
    for c in &mut doc.client {
        check_name("client name", &c.name)?;
        if c.name.contains('#') {
            return Err(BrokerError::Invalid(format!(
                "client name {:?} may not contain '#'",
                c.name
            )));
        }
        if c.name == ADMIN_CLIENT {
            return Err(BrokerError::Invalid(format!(
                "client {ADMIN_CLIENT:?} is the built-in bootstrap client and not policy: remove it from the document"
            )));
        }
        if !names.insert(c.name.clone()) {
            return Err(BrokerError::Invalid(format!(
                "client {} is defined twice",
                c.name
            )));
        }
        // As `certbound client create`: the API must exist, scopes are free.
        check_grants(&format!("client {}", c.name), &c.grant, false)?;
        if let Some(dn) = &mut c.tls_subject {
            *dn = crate::oauth::normalise_dn(dn);
            if !dn.contains('=') {
                return Err(BrokerError::Invalid(format!(
                    "client {}: TLS subject {dn:?} is not a DN: write it as \"CN=reporting\" (RFC 4514)",
                    c.name
                )));
            }
            if let Some(other) = subjects.insert(dn.clone(), c.name.clone()) {
                return Err(BrokerError::Invalid(format!(
                    "clients {other} and {} have the same TLS subject {dn:?}",
                    c.name
                )));
            }
        }
    }
    Ok(())
}

// === the plan ===

/// What a change does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    /// Created.
    Add,
    /// Changed.
    Change,
    /// Removed.
    Remove,
}

/// One change of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// Add, change or remove.
    pub op: Op,
    /// `api`, `group` or `client`.
    pub kind: &'static str,
    /// API identifier, group or client name.
    pub name: String,
    /// What changes, e.g. `grant https://x scopes a b -> a c`.
    pub details: Vec<String>,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sign = match self.op {
            Op::Add => '+',
            Op::Change => '~',
            Op::Remove => '-',
        };
        write!(f, "{sign} {} {}", self.kind, self.name)?;
        if !self.details.is_empty() {
            write!(f, ": {}", self.details.join("; "))?;
        }
        Ok(())
    }
}

/// The difference between the store and a document.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// Changes: APIs, then groups, then clients; each sorted by name.
    pub changes: Vec<Change>,
    /// Removals that `--prune` is needed for (they touch inventory).
    pub needs_prune: Vec<String>,
}

impl Plan {
    /// Nothing to do.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// The human-readable diff, one change a line.
    pub fn render(&self) -> String {
        if self.changes.is_empty() {
            return "No changes: the store matches the policy.\n".into();
        }
        let mut out = String::new();
        for c in &self.changes {
            out.push_str(&c.to_string());
            out.push('\n');
        }
        let count = |op| self.changes.iter().filter(|c| c.op == op).count();
        out.push_str(&format!(
            "Plan: {} to add, {} to change, {} to remove.\n",
            count(Op::Add),
            count(Op::Change),
            count(Op::Remove)
        ));
        for n in &self.needs_prune {
            out.push_str(&format!("! {n} (apply needs --prune)\n"));
        }
        out
    }
}

fn words(s: &[String]) -> String {
    if s.is_empty() {
        "(none)".into()
    } else {
        s.join(" ")
    }
}

fn grant_details(old: &[GrantSpec], new: &[GrantSpec]) -> Vec<String> {
    let old: BTreeMap<&str, &[String]> = old
        .iter()
        .map(|g| (g.api.as_str(), g.scopes.as_slice()))
        .collect();
    let new: BTreeMap<&str, &[String]> = new
        .iter()
        .map(|g| (g.api.as_str(), g.scopes.as_slice()))
        .collect();
    let mut out = Vec::new();
    for (api, s) in &new {
        match old.get(api) {
            None => out.push(format!("+ grant {api} scopes {}", words(s))),
            Some(o) if o != s => {
                out.push(format!("grant {api} scopes {} -> {}", words(o), words(s)))
            }
            Some(_) => {}
        }
    }
    for (api, s) in &old {
        if !new.contains_key(api) {
            out.push(format!("- grant {api} scopes {}", words(s)));
        }
    }
    out
}

async fn diff(
    conn: &mut SqliteConnection,
    desired: &PolicyDoc,
) -> Result<(Plan, Vec<StoredClient>), BrokerError> {
    let apis = read_apis(conn).await?;
    let groups = read_groups(conn).await?;
    let clients = read_clients(conn).await?;
    let mut plan = Plan::default();

    let old: BTreeMap<&str, &ApiSpec> = apis.iter().map(|a| (a.id.as_str(), a)).collect();
    let new: BTreeMap<&str, &ApiSpec> = desired.api.iter().map(|a| (a.id.as_str(), a)).collect();
    for (id, a) in &new {
        match old.get(id) {
            None => plan.changes.push(Change {
                op: Op::Add,
                kind: "api",
                name: id.to_string(),
                details: vec![format!(
                    "scopes {} ttl_secs {} format {}",
                    words(&a.scopes),
                    a.ttl_secs,
                    a.format
                )],
            }),
            Some(o) => {
                let mut d = Vec::new();
                if o.scopes != a.scopes {
                    d.push(format!(
                        "scopes {} -> {}",
                        words(&o.scopes),
                        words(&a.scopes)
                    ));
                }
                if o.ttl_secs != a.ttl_secs {
                    d.push(format!("ttl_secs {} -> {}", o.ttl_secs, a.ttl_secs));
                }
                if o.format != a.format {
                    d.push(format!("format {} -> {}", o.format, a.format));
                }
                if !d.is_empty() {
                    plan.changes.push(Change {
                        op: Op::Change,
                        kind: "api",
                        name: id.to_string(),
                        details: d,
                    });
                }
            }
        }
    }
    let now = i64::try_from(unix_now()).unwrap_or(i64::MAX);
    for id in old.keys().filter(|id| !new.contains_key(*id)) {
        plan.changes.push(Change {
            op: Op::Remove,
            kind: "api",
            name: id.to_string(),
            details: vec![],
        });
        let live: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM issued_tokens WHERE api_id = $1 AND exp > $2 AND revoked_at IS NULL",
        )
        .bind(*id)
        .bind(now)
        .fetch_one(&mut *conn)
        .await?;
        if live > 0 {
            plan.needs_prune.push(format!(
                "API {id} has {live} unexpired issued token(s); they stay valid until they expire"
            ));
        }
    }

    let old: BTreeMap<&str, &GroupSpec> = groups.iter().map(|g| (g.name.as_str(), g)).collect();
    let new: BTreeMap<&str, &GroupSpec> =
        desired.group.iter().map(|g| (g.name.as_str(), g)).collect();
    for (name, g) in &new {
        match old.get(name) {
            None => plan.changes.push(Change {
                op: Op::Add,
                kind: "group",
                name: name.to_string(),
                details: grant_details(&[], &g.grant),
            }),
            Some(o) => {
                let d = grant_details(&o.grant, &g.grant);
                if !d.is_empty() {
                    plan.changes.push(Change {
                        op: Op::Change,
                        kind: "group",
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
            kind: "group",
            name: name.to_string(),
            details: vec![],
        });
        let members: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM device_groups WHERE group_name = $1")
                .bind(*name)
                .fetch_one(&mut *conn)
                .await?;
        if members > 0 {
            plan.needs_prune.push(format!(
                "group {name} has {members} member device(s); they would lose its grants"
            ));
        }
    }

    let old: BTreeMap<&str, &StoredClient> =
        clients.iter().map(|c| (c.spec.name.as_str(), c)).collect();
    let new: BTreeMap<&str, &ClientSpec> = desired
        .client
        .iter()
        .map(|c| (c.name.as_str(), c))
        .collect();
    for (name, c) in &new {
        match old.get(name) {
            None => {
                let mut d = vec![match &c.tls_subject {
                    Some(dn) => format!("tls_subject {dn:?}"),
                    None => "secret (printed once by apply)".to_string(),
                }];
                d.extend(grant_details(&[], &c.grant));
                plan.changes.push(Change {
                    op: Op::Add,
                    kind: "client",
                    name: name.to_string(),
                    details: d,
                });
            }
            Some(o) => {
                let mut d = Vec::new();
                if o.spec.tls_subject != c.tls_subject {
                    if c.tls_subject.is_none() && !o.has_secret {
                        return Err(BrokerError::Invalid(format!(
                            "client {name} has no secret: removing its tls_subject would leave it without credentials (rotate a secret first: `certbound client rotate-secret`)"
                        )));
                    }
                    let show = |s: &Option<String>| {
                        s.as_ref()
                            .map_or("(none)".to_string(), |dn| format!("{dn:?}"))
                    };
                    d.push(format!(
                        "tls_subject {} -> {}",
                        show(&o.spec.tls_subject),
                        show(&c.tls_subject)
                    ));
                }
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
    // A TLS subject held by the admin client (outside the document) cannot be reused.
    for c in &desired.client {
        if let Some(dn) = &c.tls_subject {
            let admin: Option<String> = sqlx::query_scalar(
                "SELECT name FROM clients WHERE tls_subject = $1 AND status = 'active' AND name = $2",
            )
            .bind(dn)
            .bind(ADMIN_CLIENT)
            .fetch_optional(&mut *conn)
            .await?;
            if admin.is_some() {
                return Err(BrokerError::Invalid(format!(
                    "client {}: TLS subject {dn:?} belongs to the built-in {ADMIN_CLIENT:?} client",
                    c.name
                )));
            }
        }
    }
    Ok((plan, clients))
}

async fn admin_scopes(conn: &mut SqliteConnection) -> Result<Vec<String>, BrokerError> {
    let s: Option<String> = sqlx::query_scalar("SELECT scopes FROM apis WHERE id = $1")
        .bind(ADMIN_API)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(s.as_deref().map(scopes_of).unwrap_or_default())
}

/// Validates `desired` and compares it with the store.
pub async fn plan(store: &Store, desired: &PolicyDoc) -> Result<Plan, BrokerError> {
    let mut desired = desired.clone();
    let mut tx = store.policy_read().await?;
    let result = async {
        let admin = admin_scopes(&mut tx).await?;
        validate(&mut desired, &admin)?;
        Ok::<_, BrokerError>(diff(&mut tx, &desired).await?.0)
    }
    .await;
    tx.rollback().await?;
    result
}

// === apply ===

/// Options of [`apply`].
#[derive(Debug, Clone, Copy, Default)]
pub struct ApplyOptions {
    /// Also remove groups that devices belong to and APIs with unexpired tokens.
    pub prune: bool,
    /// Validate and compute the plan only; write nothing.
    pub dry_run: bool,
}

/// The outcome of [`apply`].
#[derive(Debug, Clone, Serialize)]
pub struct Applied {
    /// What was (or, on a dry run, would be) done.
    pub plan: Plan,
    /// Clients created, with their secrets (shown only here).
    pub created_clients: Vec<CreatedClient>,
}

fn grant_rows(grants: &[GrantSpec]) -> impl Iterator<Item = (&str, String)> {
    grants.iter().map(|g| (g.api.as_str(), g.scopes.join(" ")))
}

/// Makes the store match `desired` in one `BEGIN IMMEDIATE` transaction
/// (validation, diff and writes under the same lock). `actor` is recorded
/// in the audit log. On any error nothing is changed.
pub async fn apply(
    store: &Store,
    desired: &PolicyDoc,
    actor: &str,
    options: ApplyOptions,
) -> Result<Applied, BrokerError> {
    let mut desired = desired.clone();
    let mut tx = store.policy_write().await?;
    let admin = admin_scopes(&mut tx).await?;
    validate(&mut desired, &admin)?;
    let (plan, stored) = diff(&mut tx, &desired).await?;
    if !options.prune && !plan.needs_prune.is_empty() {
        return Err(BrokerError::Invalid(format!(
            "refusing to remove without --prune: {}",
            plan.needs_prune.join("; ")
        )));
    }
    if options.dry_run || plan.is_empty() {
        tx.rollback().await?;
        return Ok(Applied {
            plan,
            created_clients: vec![],
        });
    }
    let now = unix_now();
    let now_i = i64::try_from(now).unwrap_or(i64::MAX);
    let conn: &mut SqliteConnection = &mut tx;

    // APIs first (grants below refer to them), removals last.
    for a in &desired.api {
        sqlx::query(
            "INSERT INTO apis (id, format, ttl_secs, scopes, created_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT(id) DO UPDATE SET format = $2, ttl_secs = $3, scopes = $4",
        )
        .bind(&a.id)
        .bind(&a.format)
        .bind(i64::try_from(a.ttl_secs).unwrap_or(i64::MAX))
        .bind(a.scopes.join(" "))
        .bind(now_i)
        .execute(&mut *conn)
        .await?;
    }
    let changed = |kind: &str, name: &str| {
        plan.changes
            .iter()
            .any(|c| c.kind == kind && c.name == name && c.op != Op::Remove)
    };
    for g in &desired.group {
        if !changed("group", &g.name) {
            continue;
        }
        sqlx::query(
            "INSERT INTO groups (name, created_at) VALUES ($1, $2) ON CONFLICT(name) DO NOTHING",
        )
        .bind(&g.name)
        .bind(now_i)
        .execute(&mut *conn)
        .await?;
        sqlx::query("DELETE FROM grants WHERE group_name = $1")
            .bind(&g.name)
            .execute(&mut *conn)
            .await?;
        for (api, scopes) in grant_rows(&g.grant) {
            sqlx::query("INSERT INTO grants (group_name, api_id, scopes) VALUES ($1, $2, $3)")
                .bind(&g.name)
                .bind(api)
                .bind(scopes)
                .execute(&mut *conn)
                .await?;
        }
    }
    let stored: BTreeMap<&str, &StoredClient> =
        stored.iter().map(|c| (c.spec.name.as_str(), c)).collect();
    // Removed clients first: a kept client may take over a removed one's TLS subject.
    for (name, c) in &stored {
        if desired.client.iter().any(|d| d.name == *name) {
            continue;
        }
        sqlx::query(
            "UPDATE clients SET status = 'revoked', secret_hash = 'revoked', tls_subject = NULL, \
             name = name || '#deleted-' || $1, updated_at = $2 WHERE id = $1 AND status = 'active'",
        )
        .bind(&c.id)
        .bind(now_i)
        .execute(&mut *conn)
        .await?;
    }
    let mut created = Vec::new();
    for c in &desired.client {
        if !changed("client", &c.name) {
            continue;
        }
        let id = match stored.get(c.name.as_str()) {
            Some(s) => {
                sqlx::query(
                    "UPDATE clients SET tls_subject = $1, auth_method = CASE WHEN $1 IS NULL \
                     THEN 'client_secret' ELSE 'tls_client_auth' END, updated_at = $2 WHERE id = $3",
                )
                .bind(&c.tls_subject)
                    .bind(now_i)
                    .bind(&s.id)
                    .execute(&mut *conn)
                    .await?;
                s.id.clone()
            }
            None => {
                let id = new_client_id();
                let secret = c.tls_subject.is_none().then(new_client_secret);
                sqlx::query(
                    "INSERT INTO clients (id, name, secret_hash, tls_subject, auth_method, status, \
                     created_at, updated_at) VALUES ($1, $2, $3, $4, CASE WHEN $4 IS NULL \
                     THEN 'client_secret' ELSE 'tls_client_auth' END, 'active', $5, $6)",
                )
                .bind(&id)
                .bind(&c.name)
                .bind(secret.as_deref().map(hash_secret))
                .bind(&c.tls_subject)
                .bind(now_i)
                .bind(now_i)
                .execute(&mut *conn)
                .await?;
                created.push(CreatedClient {
                    client_id: id.clone(),
                    client_secret: secret,
                    name: c.name.clone(),
                    tls_subject: c.tls_subject.clone(),
                    tls_san: None,
                    thumbprint: None,
                    auth_method: if c.tls_subject.is_some() {
                        crate::store::ClientAuthMethod::TlsClientAuth
                    } else {
                        crate::store::ClientAuthMethod::ClientSecret
                    },
                });
                id
            }
        };
        sqlx::query("DELETE FROM client_grants WHERE client_id = $1")
            .bind(&id)
            .execute(&mut *conn)
            .await?;
        for (api, scopes) in grant_rows(&c.grant) {
            sqlx::query(
                "INSERT INTO client_grants (client_id, api_id, scopes) VALUES ($1, $2, $3)",
            )
            .bind(&id)
            .bind(api)
            .bind(scopes)
            .execute(&mut *conn)
            .await?;
        }
    }
    for ch in plan
        .changes
        .iter()
        .filter(|c| c.op == Op::Remove && c.kind == "group")
    {
        sqlx::query("DELETE FROM groups WHERE name = $1")
            .bind(&ch.name)
            .execute(&mut *conn)
            .await?;
    }
    // APIs last: by now no grant in the target state names them.
    for ch in plan
        .changes
        .iter()
        .filter(|c| c.op == Op::Remove && c.kind == "api")
    {
        sqlx::query("DELETE FROM apis WHERE id = $1")
            .bind(&ch.name)
            .execute(&mut *conn)
            .await?;
    }
    for ch in &plan.changes {
        let op = match ch.op {
            Op::Add => "created",
            Op::Change => "changed",
            Op::Remove => "removed",
        };
        sqlx::query(
            "INSERT INTO audit_events (ts, actor, action, subject, outcome, detail) \
             VALUES ($1, $2, $3, $4, 'ok', $5)",
        )
        .bind(i64::try_from(now.saturating_mul(1000)).unwrap_or(i64::MAX))
        .bind(actor)
        .bind(format!("policy.{}.{op}", ch.kind))
        .bind(&ch.name)
        .bind(ch.details.join("; "))
        .execute(&mut *conn)
        .await?;
    }
    tx.commit().await?;
    Ok(Applied {
        plan,
        created_clients: created,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(k: &str) -> Option<String> {
        (k == "HOST").then(|| "example.com".to_string())
    }

    #[test]
    fn substitution() {
        assert_eq!(
            substitute("https://${HOST}/x", &env).unwrap(),
            "https://example.com/x"
        );
        assert_eq!(substitute("a $${HOST} $b", &env).unwrap(), "a ${HOST} $b");
        let e = substitute("${NOPE}", &env).unwrap_err().to_string();
        assert!(e.contains("NOPE"), "{e}");
        assert!(substitute("${HOST", &env).is_err());
        assert!(substitute("${1X}", &env).is_err());
    }

    #[test]
    fn escape_round_trip() {
        let doc = PolicyDoc {
            api: vec![ApiSpec {
                id: "urn:x:${y}".into(),
                scopes: vec!["a$${b".into()],
                ttl_secs: 60,
                format: "cwt".into(),
            }],
            ..Default::default()
        };
        let text = doc.to_toml().unwrap();
        assert_eq!(PolicyDoc::parse(&text, |_| None).unwrap(), doc);
    }
}
