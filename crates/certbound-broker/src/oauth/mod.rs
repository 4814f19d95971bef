//! OAuth 2.0 for backend services: the client-credentials token endpoint
//! (RFC 6749 §4.4, RFC 9068 JWTs, RFC 8705 certificate-bound tokens),
//! introspection (RFC 7662) and revocation (RFC 7009).
//!
//! Transport-free: the HTTPS shell (`transport::https`) turns requests into
//! [`Presented`] credentials and form fields, and [`OAuthError`]s into
//! RFC 6749 §5.2 JSON answers.

mod api_keys;
mod assertion;
mod client_auth;
mod introspect;
mod issue;
mod jwks_fetch;
mod own_token;
mod trust;

use std::sync::Arc;

pub use api_keys::LAST_USED_EVERY;
pub use assertion::{ASSERTION_TYPE_JWT_BEARER, MAX_ASSERTION_BYTES};
pub use client_auth::{AUTH_FAILED, AuthMethod, Presented};
pub use introspect::ADMIN_WRITE_SCOPE;
pub use issue::{TokenForm, TokenGrant};
pub use jwks_fetch::{JwksFetcher, JwksFetcherConfig};
pub use own_token::KnownToken;
pub use trust::{ClientTrust, REFRESH_EVERY};

use crate::audit::AuditLog;
use crate::keys::SharedKeys;
use crate::limits::RateLimits;
use crate::refusal::Refusal;
use crate::status::StatusLists;
use crate::store::Store;

/// An RFC 6749 §5.2 error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    /// HTTP status.
    pub status: u16,
    /// The `error` code.
    pub error: &'static str,
    /// `error_description`: what was wrong and what to do.
    pub description: String,
    /// `Retry-After` seconds (429, 503).
    pub retry_after: Option<u64>,
    /// Answer with `WWW-Authenticate: Basic` (the client used Basic auth).
    pub basic_challenge: bool,
    /// What exactly was wrong, for the audit log and the server log only
    /// (never answered): e.g. why a client assertion was refused, when the
    /// answer is the one [`AUTH_FAILED`].
    pub detail: Option<String>,
}

impl OAuthError {
    fn new(status: u16, error: &'static str, description: impl Into<String>) -> Self {
        Self {
            status,
            error,
            description: description.into(),
            retry_after: None,
            basic_challenge: false,
            detail: None,
        }
    }
    /// 400 invalid_request.
    pub fn invalid_request(description: impl Into<String>) -> Self {
        Self::new(400, "invalid_request", description)
    }
    /// 401 invalid_client.
    pub fn invalid_client(description: impl Into<String>) -> Self {
        Self::new(401, "invalid_client", description)
    }
    /// 503 temporarily_unavailable (store failure; retry), with the same
    /// Retry-After as every transport ([`Refusal::unavailable`]).
    pub fn unavailable() -> Self {
        let mut e = Self::from_refusal(&Refusal::unavailable());
        e.description = "the authorization server could not reach its store; retry shortly".into();
        e
    }
    /// The OAuth (JSON) form of the one refusal type: the same status and
    /// Retry-After as on every transport; `too_many_requests` and
    /// `temporarily_unavailable` name the transient ones.
    pub fn from_refusal(r: &Refusal) -> Self {
        let error = match r {
            Refusal::Denied(e) => e.code.name(),
            Refusal::RateLimited { .. } => "too_many_requests",
            Refusal::Unavailable { .. } => "temporarily_unavailable",
        };
        let mut e = Self::new(r.http_status(), error, r.description());
        e.retry_after = r.retry_after();
        e
    }
    /// 500 server_error: an internal failure (logged where it happened; the
    /// answer carries no internal text).
    pub fn server_error() -> Self {
        Self::new(
            500,
            "server_error",
            "the authorization server failed to complete the request; retry later",
        )
    }
    /// 429 with Retry-After.
    pub fn rate_limited(who: &str, retry_after: u64) -> Self {
        let mut e = Self::from_refusal(&Refusal::rate_limited(retry_after));
        e.description =
            format!("{who} exceeded its token request rate; retry after {retry_after} s");
        e
    }
}

/// Settings of the OAuth service.
#[derive(Debug, Clone)]
pub struct OAuthConfig {
    /// `iss` of every token.
    pub issuer_id: String,
    /// Clock skew allowance, seconds.
    pub leeway: u64,
    /// Largest token accepted by introspection/revocation, bytes.
    pub max_token_bytes: usize,
}

/// What a `private_key_jwt` client assertion is checked against
/// ([`OAuthService::with_assertions`]).
#[derive(Debug, Clone)]
pub struct AssertionConfig {
    /// The token endpoint URL (`https://host:port/oauth/token`): an
    /// assertion's `aud` must hold it or the issuer identifier.
    pub token_endpoint: String,
    /// Longest `exp - now`, seconds (`[oauth] max_assertion_lifetime_secs`).
    pub max_lifetime: u64,
    /// Fetches the JWK Sets of clients registered with a `jwks_uri`
    /// (allow-listed, cached); `None`: such clients cannot authenticate.
    pub fetcher: Option<Arc<JwksFetcher>>,
}

/// The OAuth endpoints' decision logic.
#[derive(Debug, Clone)]
pub struct OAuthService {
    config: OAuthConfig,
    store: Store,
    keys: SharedKeys,
    status: Option<Arc<StatusLists>>,
    audit: AuditLog,
    limits: Arc<RateLimits>,
    metrics: Arc<crate::metrics::Metrics>,
    trust: Arc<ClientTrust>,
    /// The in-memory registry (clients, APIs), when the broker keeps one
    /// (`serve` does): then `/oauth/token` reads no database to decide.
    snapshot: Option<crate::store::snapshot::Snapshot>,
    /// When this process last recorded each API key's use.
    api_key_uses: Arc<api_keys::KeyUses>,
    /// `private_key_jwt`: `None` refuses every client assertion.
    assertions: Option<Arc<AssertionConfig>>,
}

impl OAuthService {
    /// Builds the service.
    pub fn new(
        config: OAuthConfig,
        store: Store,
        keys: SharedKeys,
        status: Option<Arc<StatusLists>>,
        audit: AuditLog,
        limits: Arc<RateLimits>,
    ) -> Self {
        Self {
            config,
            store,
            keys,
            status,
            audit,
            limits,
            metrics: Arc::default(),
            trust: Arc::default(),
            snapshot: None,
            api_key_uses: Arc::default(),
            assertions: None,
        }
    }

    /// Accepts `private_key_jwt` client assertions checked against `config`.
    pub fn with_assertions(mut self, config: AssertionConfig) -> Self {
        self.assertions = Some(Arc::new(config));
        self
    }

    /// Decides clients and APIs from `snapshot` instead of reading the
    /// store per request.
    pub fn with_snapshot(mut self, snapshot: crate::store::snapshot::Snapshot) -> Self {
        self.snapshot = Some(snapshot);
        self
    }

    /// The client a credential names: from the snapshot when there is one
    /// (refreshed first when this process wrote since), else the store.
    pub(crate) async fn find_client(
        &self,
        key: crate::store::snapshot::clients::ClientKey<'_>,
    ) -> Result<Option<crate::store::Client>, crate::store::StoreError> {
        use crate::store::snapshot::clients::ClientKey;
        if let Some(snapshot) = &self.snapshot {
            snapshot.refresh_if_written().await?;
            return snapshot.client_or_refresh(key).await;
        }
        match key {
            ClientKey::Id(id) => self.store.get_client(id).await,
            ClientKey::Subject(dn) => self.store.get_client_by_subject(dn).await,
            ClientKey::San(san) => self.store.get_client_by_san(san).await,
            ClientKey::Thumbprint(x5t) => self.store.get_client_by_thumbprint(x5t).await,
        }
    }

    /// An API's token lifetime and format, as [`OAuthService::find_client`].
    pub(crate) async fn find_api(
        &self,
        id: &str,
    ) -> Result<Option<crate::store::snapshot::clients::ApiEntry>, crate::store::StoreError> {
        if let Some(snapshot) = &self.snapshot {
            snapshot.refresh_if_written().await?;
            return snapshot.api_or_refresh(id).await;
        }
        let Some(api) = self.store.get_api(id).await? else {
            return Ok(None);
        };
        Ok(Some(crate::store::snapshot::clients::ApiEntry {
            ttl_secs: api.ttl_secs,
            format: api.format,
            signing_alg: self.store.api_signing_alg(id).await?,
            claims: self.store.api_claims(id).await?,
        }))
    }

    /// Decides client certificates with `trust` (default: no CA is trusted,
    /// no certificate is pinned, so only secrets authenticate).
    pub fn with_client_trust(mut self, trust: Arc<ClientTrust>) -> Self {
        self.trust = trust;
        self
    }

    /// The client-certificate trust this service decides with.
    pub fn client_trust(&self) -> &Arc<ClientTrust> {
        &self.trust
    }

    /// Counts token requests in `metrics` (default: a private, unserved set).
    pub fn with_metrics(mut self, metrics: Arc<crate::metrics::Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// The metrics this service counts in.
    pub fn metrics(&self) -> &Arc<crate::metrics::Metrics> {
        &self.metrics
    }

    /// The audit log this service writes to.
    pub fn audit_log(&self) -> &AuditLog {
        &self.audit
    }

    /// The issuer id.
    pub fn issuer(&self) -> &str {
        &self.config.issuer_id
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }
}

fn store_failure(e: &dyn std::fmt::Display) -> OAuthError {
    tracing::error!(error = %e, "store failure in an OAuth endpoint");
    OAuthError::unavailable()
}

/// `(list id, idx)` of a status reference made by this broker.
pub fn status_entry_of(s: &certbound_proto::status_list::StatusRef) -> Option<(u64, u64)> {
    own_token::list_id_of(&s.uri).map(|l| (l, s.idx))
}

/// A new token id (`cti` / `jti` bytes), ordered by issuance time
/// ([`certbound_proto::token::time_ordered_id`]).
pub fn new_token_id() -> [u8; certbound_proto::token::TOKEN_ID_LEN] {
    use rand::RngCore as _;
    let mut random = [0u8; 10];
    rand::rng().fill_bytes(&mut random);
    certbound_proto::token::time_ordered_id(crate::clock::unix_now_ms(), random)
}
