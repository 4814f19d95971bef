//! The device token endpoint's decision logic, shared by every transport:
//! signed device request in, ACE token response or ACE error out.
//!
//! Order of checks (cheap and unauthenticated first, crypto once, then
//! policy): authentication of the signed request ([`crate::device_auth`]:
//! parse, certificate, signature, iss, freshness, replay, rate) -> no CSR ->
//! grant type -> device status -> audience registered -> grant -> scope
//! intersection -> mint.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use certbound_proto::ace::{AceErrorCode, TokenResponse};
use certbound_proto::cbor::Limits;
use certbound_proto::claims::{Claims, intersect_scopes};
use certbound_proto::replay::ReplayCache;
use certbound_proto::request::GRANT_CLIENT_CREDENTIALS;
use certbound_proto::token;

use crate::audit::AuditLog;
use crate::device_auth::{Authenticated, DeviceAuth};
use crate::keys::SharedKeys;
use crate::limits::RateLimits;
use crate::pki_state::SharedPki;
use crate::refusal::{AuditedRefusal, Refusal, internal, refuse};
use crate::status::StatusLists;
use crate::store::{AuditEvent, DeviceStatus, IssuedToken, Store, TokenHolder};

/// Settings of the token service.
#[derive(Debug, Clone)]
pub struct TokenServiceConfig {
    /// Issuer id: the `aud` device requests must name (tokens carry no `iss`).
    pub issuer_id: String,
    /// Clock skew allowance, seconds.
    pub leeway: u64,
    /// Input bounds.
    pub limits: Limits,
    /// Replay cache capacity.
    pub replay_capacity: usize,
}

impl TokenServiceConfig {
    /// The settings `certbound.toml` gives.
    pub fn from_config(config: &crate::config::Config) -> Self {
        Self {
            issuer_id: config.broker.issuer_id.clone(),
            leeway: config.broker.leeway_secs,
            limits: Limits {
                max_size: config.limits.max_request_bytes,
                ..Limits::default()
            },
            replay_capacity: config.limits.replay_cache_entries,
        }
    }
}

/// Issues certificate-bound access tokens to devices.
#[derive(Debug)]
pub struct TokenService {
    store: Store,
    pki: SharedPki,
    keys: SharedKeys,
    status: Option<Arc<StatusLists>>,
    auth: Arc<DeviceAuth>,
    audit: AuditLog,
    metrics: Arc<crate::metrics::Metrics>,
}

/// The start of a device token request's audit detail:
/// `transport=T[ peer=IP][ x5t=HEX]` (`peer`: the network address the request
/// came from, when the transport knows it; `x5t`: hex SHA-256 of the device
/// certificate, once the request got that far). `certbound doctor` reads both.
pub fn audit_origin(transport: &str, peer: Option<IpAddr>, x5t: Option<&str>) -> String {
    let mut out = format!("transport={transport}");
    if let Some(ip) = peer {
        // An IPv4-mapped IPv6 peer (dual-stack socket) is logged as IPv4.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        out.push_str(&format!(" peer={ip}"));
    }
    if let Some(x5t) = x5t {
        out.push_str(&format!(" x5t={x5t}"));
    }
    out
}

/// What the service decided.
pub type Outcome = Result<TokenResponse, Refusal>;

impl TokenService {
    /// Builds the service. `status`: give every token a status-list entry
    /// (needs the HTTPS endpoint that serves the lists).
    pub fn new(
        config: TokenServiceConfig,
        store: Store,
        pki: SharedPki,
        keys: SharedKeys,
        audit: AuditLog,
        status: Option<Arc<StatusLists>>,
        limits: Arc<RateLimits>,
    ) -> Self {
        // A nonce lives until the request's exp plus the leeway: at most
        // MAX_REQUEST_LIFETIME + 2 x leeway after it arrives (iat may be
        // `leeway` ahead). A device that respects its rate limit never holds
        // more than that many; with the limit off, no quota below the capacity.
        let window = certbound_proto::request::MAX_REQUEST_LIFETIME
            .saturating_add(config.leeway.saturating_mul(2));
        let quota = limits
            .device_requests_within(window)
            .unwrap_or(config.replay_capacity);
        let auth = Arc::new(DeviceAuth {
            issuer_id: config.issuer_id.clone(),
            leeway: config.leeway,
            limits: config.limits,
            replay: Mutex::new(ReplayCache::new(config.replay_capacity).with_issuer_quota(quota)),
            rate: limits,
            snapshot: std::sync::OnceLock::new(),
        });
        Self {
            store,
            pki,
            keys,
            status,
            auth,
            audit,
            metrics: Arc::default(),
        }
    }

    /// Counts requests in `metrics` (default: a private, unserved set).
    pub fn with_metrics(mut self, metrics: Arc<crate::metrics::Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// Answers token and re-enrollment requests from `snapshot` instead of
    /// reading the store per request (the snapshot is shared with the
    /// enrollment service).
    pub fn with_snapshot(self, snapshot: crate::store::snapshot::Snapshot) -> Self {
        let _ = self.auth.snapshot.set(snapshot);
        self
    }

    /// The metrics this service counts in.
    pub fn metrics(&self) -> &Arc<crate::metrics::Metrics> {
        &self.metrics
    }

    /// The status lists tokens point at, when enabled.
    pub fn status_lists(&self) -> Option<&Arc<StatusLists>> {
        self.status.as_ref()
    }

    /// The device-request authentication (shared with re-enrollment).
    pub(crate) fn device_auth(&self) -> Arc<DeviceAuth> {
        self.auth.clone()
    }

    /// The key id tokens are signed with now.
    pub fn kid(&self) -> String {
        self.keys
            .ring()
            .signing_key(crate::clock::unix_now())
            .map(|k| k.kid.clone())
            .unwrap_or_default()
    }

    /// Handles one signed device request received over `transport` at `now`.
    ///
    /// `channel_device` is the device the transport already knows the request
    /// came from (the MQTT topic `cb/v1/{device}/...`); the request must then be
    /// signed by that device's certificate. `peer` is the network address the
    /// request came from, when the transport knows it (CoAP, HTTPS; not MQTT,
    /// where the broker only sees the MQTT server): it goes into the audit
    /// detail (see [`audit_origin`]).
    pub async fn handle(
        &self,
        request: &[u8],
        transport: &str,
        channel_device: Option<&str>,
        peer: Option<IpAddr>,
        now: u64,
    ) -> Outcome {
        let started = std::time::Instant::now();
        let result = self.decide(request, channel_device, now).await;
        let (device, outcome, detail) = match &result {
            Ok((device, x5t, response)) => (
                device.clone(),
                "ok".to_string(),
                format!(
                    "{} expires_in={} scope={}",
                    audit_origin(transport, peer, Some(x5t)),
                    response.expires_in,
                    response.scope.as_deref().unwrap_or("(as asked)")
                ),
            ),
            Err(r) => (
                r.device
                    .clone()
                    .unwrap_or_else(|| "(unauthenticated)".into()),
                r.answer.audit_outcome().to_string(),
                format!(
                    "{} {}",
                    audit_origin(transport, peer, r.x5t.as_deref()),
                    r.audit_reason()
                ),
            ),
        };
        let action = if result.is_ok() {
            "token.issued"
        } else {
            "token.refused"
        };
        tracing::debug!(%device, %outcome, %detail, "{action}");
        self.metrics.token_request(
            transport,
            crate::metrics::DEVICE,
            &outcome,
            started.elapsed(),
        );
        self.audit
            .record(AuditEvent {
                ts_ms: now.saturating_mul(1000),
                actor: format!("device:{device}"),
                action: action.into(),
                subject: device,
                outcome,
                detail,
            })
            .await;
        result.map(|(_, _, r)| r).map_err(|r| r.answer)
    }

    async fn decide(
        &self,
        bytes: &[u8],
        channel_device: Option<&str>,
        now: u64,
    ) -> Result<(String, String, TokenResponse), AuditedRefusal> {
        let Authenticated {
            device_id,
            request: req,
            cert_key,
            thumbprint,
            view,
            ..
        } = self
            .auth
            .authenticate(&self.store, &self.pki.get(), bytes, channel_device, now, 0)
            .await?;
        let with_device = |r: AuditedRefusal| r.for_device(&device_id).with_x5t(&thumbprint);
        if req.csr.is_some() {
            return Err(with_device(refuse(
                AceErrorCode::InvalidRequest,
                "this request carries a CSR: it is a re-enrollment request; send it to cert/req (MQTT), /sren (CoAP) or EST over HTTPS",
            )));
        }
        let grant_type = req.grant_type.unwrap_or(GRANT_CLIENT_CREDENTIALS);
        if grant_type != GRANT_CLIENT_CREDENTIALS {
            return Err(with_device(refuse(
                AceErrorCode::UnsupportedGrantType,
                format!(
                    "grant_type {grant_type} is not supported; devices use client_credentials (2)"
                ),
            )));
        }

        // Policy.
        if view.device_status != DeviceStatus::Active {
            return Err(with_device(refuse(
                AceErrorCode::UnauthorizedClient,
                format!("device {device_id} is {}", view.device_status.as_str()),
            )));
        }
        let audience = req.audience.as_deref().ok_or_else(|| {
            with_device(refuse(
                AceErrorCode::InvalidRequest,
                "audience (5) is required: name the API the token is for",
            ))
        })?;
        let ttl = view.api_ttl.ok_or_else(|| {
            with_device(refuse(
                AceErrorCode::InvalidRequest,
                format!("unknown audience {audience:?}: no such API is registered"),
            ))
        })?;
        let granted: Vec<String> = view.granted.ok_or_else(|| {
            with_device(refuse(
                AceErrorCode::UnauthorizedClient,
                format!("device {device_id} has no grant for {audience}"),
            ))
        })?;
        // `{device}` and `{attr.NAME}` placeholders; a scope whose attribute
        // the device lacks is not granted.
        let granted =
            crate::store::attributes::expand_scopes(&granted, Some(&device_id), &view.attributes);
        let scopes = intersect_scopes(req.scope.as_deref(), &granted);
        if scopes.is_empty() {
            return Err(with_device(refuse(
                AceErrorCode::InvalidScope,
                format!(
                    "none of the requested scopes ({}) is granted for {audience}",
                    req.scope.as_deref().unwrap_or("")
                ),
            )));
        }
        let scope = scopes.join(" ");

        let ring = self.keys.ring();
        let key = ring.signing_key(now).ok_or_else(|| {
            tracing::error!("no signing key is active; check `certbound keys list`");
            AuditedRefusal {
                answer: Refusal::unavailable(),
                device: Some(device_id.clone()),
                x5t: None,
                reason: None,
            }
        })?;
        let status = match &self.status {
            Some(lists) => Some(lists.allocate(now).await.map_err(|e| internal(&e))?),
            None => None,
        };
        let cti = crate::oauth::new_token_id().to_vec();
        let mut claims = Claims {
            // No `iss`: the signing key names the issuer (docs/protocol.md).
            iss: None,
            sub: Some(device_id.clone()),
            aud: vec![audience.to_string()],
            exp: Some(now.saturating_add(ttl)),
            iat: Some(now),
            cti: Some(cti.clone()),
            scope: Some(scope.clone()),
            cnf: Some(cert_key),
            status: status.clone(),
            ..Claims::default()
        };
        crate::custom_claims::add_to_cwt(
            &mut claims,
            &view.claims,
            &view.attributes,
            &device_id,
            audience,
        );
        // A signing failure is the broker's fault, not the client's: 5.03,
        // retry, never a final `invalid_request`.
        let access_token = token::mint(&claims, &key.kid, &key.signer).map_err(|e| {
            tracing::error!(error = %e, kid = %key.kid, "signing a token failed");
            let mut r = with_device(AuditedRefusal::unavailable());
            r.reason = Some(format!("signing failed: {e}"));
            r
        })?;
        // The record is durable before the token leaves: a token nobody
        // could revoke is never handed out (see `crate::audit`).
        self.audit
            .record_issued(IssuedToken {
                jti: hex::encode(&cti),
                holder: TokenHolder::Device,
                subject: device_id.clone(),
                api_id: audience.to_string(),
                scope: scope.clone(),
                format: "cwt".into(),
                kid: key.kid.clone(),
                cnf: Some(thumbprint.clone()),
                status_entry: status.as_ref().and_then(crate::oauth::status_entry_of),
                iat: now,
                exp: now.saturating_add(ttl),
            })
            .await
            .map_err(|e| {
                tracing::error!(error = %e, device = %device_id, "token not issued: its record was not kept");
                AuditedRefusal {
                    answer: Refusal::unavailable(),
                    device: Some(device_id.clone()),
                    x5t: Some(thumbprint.clone()),
                    reason: Some("the issued-token record could not be stored".into()),
                }
            })?;
        let asked = req.scope.as_deref().map(|s| {
            s.split(' ')
                .filter(|x| !x.is_empty())
                .collect::<Vec<_>>()
                .join(" ")
        });
        Ok((
            device_id,
            thumbprint,
            TokenResponse {
                access_token,
                expires_in: ttl,
                scope: (asked.as_deref() != Some(scope.as_str())).then_some(scope),
            },
        ))
    }
}
