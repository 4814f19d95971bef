//! Authentication of a signed device request, shared by the token endpoint
//! and certificate re-enrollment: strict parse -> certificate lookup and
//! path validation -> certificate status -> request signature with the
//! certificate key -> `iss` matches the certificate (and the MQTT channel)
//! -> assertion freshness and audience -> replay (cti) -> rate limit.
//! Policy (device status, grants) stays with the callers.

use std::sync::Mutex;

use certbound_pki::thumbprint_sha256;
use certbound_proto::ace::AceErrorCode;
use certbound_proto::cbor::Limits;
use certbound_proto::crypto::{AwsLcVerifier, Verifier as _};
use certbound_proto::error::ClaimError;
use certbound_proto::replay::{Admission, ReplayCache};
use certbound_proto::request::{CertRef, TokenRequest, UnverifiedRequest};
use certbound_proto::{EcPublicKey, ProtoError};

use crate::cert_cache::Validated;
use crate::limits::RateLimits;
use crate::pki_state::PkiState;
use crate::refusal::{AuditedRefusal, Refusal, from_proto, internal, refuse, unauthenticated};
use crate::store::{AuditEvent, CertRecord, Store, TokenView};

/// A parse failure: "malformed" only when the input really is malformed.
fn unparsable(e: &ProtoError) -> AuditedRefusal {
    let context = match e.ace_code() {
        AceErrorCode::InvalidRequest => "malformed request",
        _ => "request refused",
    };
    from_proto(e, context)
}

/// What every device-request endpoint is configured with.
#[derive(Debug)]
pub(crate) struct DeviceAuth {
    pub(crate) issuer_id: String,
    pub(crate) leeway: u64,
    pub(crate) limits: Limits,
    pub(crate) replay: Mutex<ReplayCache>,
    /// Per-device rate limits (shared with every endpoint).
    pub(crate) rate: std::sync::Arc<RateLimits>,
    /// The in-memory registry, when the broker keeps one (`serve` does):
    /// then no token request reads the database.
    pub(crate) snapshot: std::sync::OnceLock<crate::store::snapshot::Snapshot>,
}

/// An authenticated device request.
#[derive(Debug)]
pub(crate) struct Authenticated {
    pub(crate) device_id: String,
    pub(crate) request: TokenRequest,
    /// The public key of the certificate that signed the request.
    pub(crate) cert_key: EcPublicKey,
    /// Hex SHA-256 of that certificate.
    pub(crate) thumbprint: String,
    /// The registry facts for it (and for `audience_hint`).
    pub(crate) view: TokenView,
}

impl DeviceAuth {
    /// First use of a certificate from an external CA: register the device
    /// into the anchor's group when just-in-time registration is configured
    /// for it; refuse otherwise, and refuse ids that already exist.
    #[allow(clippy::too_many_arguments)]
    async fn register_just_in_time(
        &self,
        store: &Store,
        pki: &PkiState,
        x: &certbound_pki::ExternalDeviceCert,
        device_id: &str,
        leaf: &[u8],
        thumbprint: &str,
        audience_hint: &str,
        now: u64,
    ) -> Result<Option<TokenView>, AuditedRefusal> {
        let Some(Some(group)) = pki.external.get(&x.anchor_name) else {
            return Err(refuse(
                AceErrorCode::InvalidClient,
                format!(
                    "certificate from external CA {:?}: just-in-time registration is off for it (certbound ca trust add --jit-group)",
                    x.anchor_name
                ),
            )
            .for_device(device_id));
        };
        if store
            .get_device(device_id)
            .await
            .map_err(|e| internal(&e))?
            .is_some()
        {
            return Err(refuse(
                AceErrorCode::InvalidClient,
                format!("device id {device_id:?} already exists with another certificate"),
            )
            .for_device(device_id));
        }
        let record = CertRecord {
            serial: x.serial_hex.clone(),
            device_id: device_id.to_string(),
            thumbprint: thumbprint.to_string(),
            not_before: now,
            not_after: x.not_after,
            status: "active".into(),
            der: leaf.to_vec(),
        };
        store
            .create_device(device_id, std::slice::from_ref(group), &record, now)
            .await
            .map_err(|e| match e {
                crate::store::StoreError::Conflict { .. } => refuse(
                    AceErrorCode::InvalidClient,
                    format!("device id {device_id:?} already exists"),
                )
                .for_device(device_id),
                other => internal(&other),
            })?;
        store
            .append_audit(&[AuditEvent {
                ts_ms: now.saturating_mul(1000),
                actor: format!("ca:{}", x.anchor_name),
                action: "device.jit_registered".into(),
                subject: device_id.to_string(),
                outcome: "ok".into(),
                detail: format!(
                    "group={group} serial={} anchor={}",
                    x.serial_hex, x.anchor_name
                ),
            }])
            .await
            .map_err(|e| internal(&e))?;
        tracing::info!(device = %device_id, anchor = %x.anchor_name, %group, "device registered just in time");
        self.view(store, thumbprint, audience_hint).await
    }

    /// The registry facts for a certificate and an audience: from the
    /// in-memory snapshot when there is one (refreshed first when this
    /// process wrote since, so its own changes count at once), else from the
    /// store.
    pub(crate) async fn view(
        &self,
        store: &Store,
        thumbprint: &str,
        audience: &str,
    ) -> Result<Option<TokenView>, AuditedRefusal> {
        match self.snapshot.get() {
            Some(snapshot) => {
                snapshot
                    .refresh_if_written()
                    .await
                    .map_err(|e| internal(&e))?;
                snapshot
                    .token_view_or_refresh(thumbprint, audience)
                    .await
                    .map_err(|e| internal(&e))
            }
            None => store
                .token_view(thumbprint, audience)
                .await
                .map_err(|e| internal(&e)),
        }
    }

    /// Authenticates `bytes`. `expired_grace`: a certificate that expired at
    /// most this many seconds ago is still accepted (re-enrollment of a device
    /// that was offline); 0 for the token endpoint.
    ///
    /// Unauthenticated work is bounded: a certificate the broker does not know
    /// (no registered thumbprint) is refused before any signature check unless
    /// some external CA has just-in-time registration; the request signature is
    /// checked with the leaf's key (one ECDSA verification) before any path
    /// building, and path building itself is bounded
    /// ([`certbound_pki::MAX_SIGNATURE_CHECKS`]). Every refusal before the
    /// signature verified reads the same ([`NOT_AUTHENTICATED`]), so a caller
    /// cannot tell an unknown certificate from a known one. The per-device
    /// rate limit applies before the nonce enters the replay cache.
    pub(crate) async fn authenticate(
        &self,
        store: &Store,
        pki: &PkiState,
        bytes: &[u8],
        channel_device: Option<&str>,
        now: u64,
        expired_grace: u64,
    ) -> Result<Authenticated, AuditedRefusal> {
        let limits = self.limits;
        let leeway = self.leeway;
        let request = UnverifiedRequest::parse(bytes, limits).map_err(|e| unparsable(&e))?;
        // The audience is read from the not-yet-verified payload only to fetch
        // the registry facts in one query; every decision uses the verified
        // request, whose bytes are the same.
        let audience_hint = TokenRequest::from_cbor(request.unverified_payload(), limits)
            .ok()
            .and_then(|r| r.audience)
            .unwrap_or_default();

        // The certificate: registered (by thumbprint) or sent in full.
        let (thumb, leaf, extra) = match &request.cert {
            CertRef::X5t(hash) => (*hash, None, Vec::new()),
            CertRef::X5Chain(chain) => match chain.split_first() {
                Some((leaf, rest)) => (thumbprint_sha256(leaf), Some(leaf.clone()), rest.to_vec()),
                None => return Err(refuse(AceErrorCode::InvalidRequest, "empty x5chain")),
            },
        };
        let thumbprint = hex::encode(thumb);
        let x5t = thumbprint.clone();
        async {
            let view = self.view(store, &thumbprint, &audience_hint).await?;
            let jit = pki.external.values().any(Option::is_some);
            // A registered certificate validated before against this trust
            // store: only the request signature is left to check.
            let cached = view
                .as_ref()
                .and_then(|_| pki.validated.get(&thumb, now, leeway));
            let (req, device_id, cert_key, external) = match cached {
                Some(c) => {
                    let req = verify_signature(&request, &c.verifier, limits)?;
                    (req, c.device_id.clone(), c.verifier.public_key().clone(), None)
                }
                None => {
                    let leaf = match (leaf, &view) {
                        (Some(leaf), Some(_)) => leaf,
                        (Some(leaf), None) if jit => leaf,
                        (None, Some(v)) => v.der.clone(),
                        (Some(_), None) => {
                            return Err(unauthenticated(
                                "certificate not registered with this broker, and no external CA has \
                                 just-in-time registration (refused before any signature check)",
                            ));
                        }
                        (None, None) => {
                            return Err(unauthenticated(
                                "unknown certificate thumbprint (x5t); a new certificate must be sent in x5chain",
                            ));
                        }
                    };
                    // Proof of possession of the leaf key first: one verification,
                    // before any path building.
                    let leaf_key = certbound_pki::public_key_sec1(&leaf)
                        .map_err(|e| unauthenticated(format!("certificate key: {e}")))?;
                    let cert_key = EcPublicKey::from_sec1(&leaf_key)
                        .map_err(|e| unauthenticated(format!("certificate key: {e}")))?;
                    let verifier = AwsLcVerifier::new(&cert_key)
                        .map_err(|e| unauthenticated(format!("certificate key: {e}")))?;
                    // The signature is checked before the payload is decoded: a
                    // malformed payload (invalid_request) proves the key was held.
                    let req = verify_signature(&request, &verifier, limits)?;

                    // The caller holds the leaf key: from here refusals may say more.
                    let trust = &pki.trust;
                    // Whether the certificate was checked as of now (not inside the
                    // expired grace), which is what may be kept for later requests.
                    let mut as_of_now = true;
                    let own = if view.is_some() {
                        let (mut checked, _) = trust.verify_device_cert_counted(&leaf, &extra, now, leeway);
                        if checked.is_err() && expired_grace > 0 {
                            // An expired certificate inside the grace window: check it as of
                            // its last valid second; everything but the date must still hold.
                            if let Ok(summary) = certbound_pki::cert_summary(&leaf)
                                && now > summary.not_after
                                && now - summary.not_after <= expired_grace
                            {
                                checked = trust
                                    .verify_device_cert_counted(&leaf, &extra, summary.not_after, 0)
                                    .0;
                                as_of_now = false;
                            }
                        }
                        checked
                    } else {
                        Err(certbound_pki::PkiError::UnknownIssuer(
                            "not a registered certificate of this broker's CA".into(),
                        ))
                    };
                    let (device_id, public_key_sec1, external) = match own {
                        Ok(cert) => {
                            if as_of_now && cert.public_key_sec1 == leaf_key {
                                pki.validated.insert(
                                    cert.thumbprint,
                                    Validated {
                                        device_id: cert.device_id.clone(),
                                        verifier,
                                        window: cert.path_valid,
                                    },
                                );
                            }
                            (cert.device_id, cert.public_key_sec1, None)
                        }
                        // Not from our CA: maybe from an external CA (`ca trust add`).
                        Err(e) => match trust.verify_external_device_cert(&leaf, &extra, now, leeway) {
                            Ok(x) => {
                                let id = x
                                    .device_id()
                                    .map_err(|e| {
                                        refuse(
                                            AceErrorCode::InvalidClient,
                                            format!("certificate from external CA {}: {e}", x.anchor_name),
                                        )
                                    })?
                                    .to_string();
                                (id, x.public_key_sec1.clone(), Some((x, leaf.clone())))
                            }
                            Err(external_err) => {
                                // Report the check that applies: certbound's own CA,
                                // unless the certificate is not from it at all.
                                let why = match e {
                                    certbound_pki::PkiError::UnknownIssuer(_) => external_err,
                                    own_err => own_err,
                                };
                                return Err(refuse(
                                    AceErrorCode::InvalidClient,
                                    format!("certificate rejected: {why}"),
                                ));
                            }
                        },
                    };
                    if public_key_sec1 != leaf_key {
                        return Err(unauthenticated("validated key differs from the leaf key"));
                    }
                    (req, device_id, cert_key, external)
                }
            };
            if req.iss != device_id {
                return Err(refuse(
                    AceErrorCode::InvalidClient,
                    format!(
                        "iss {:?} does not match the certificate's device {device_id:?}",
                        req.iss
                    ),
                )
                .for_device(&device_id));
            }
            // Only now, with the signature checked, may a first use register.
            let view = match (view, &external) {
                (Some(v), _) => Some(v),
                (None, Some((x, leaf))) => {
                    self.register_just_in_time(
                        store,
                        pki,
                        x,
                        &device_id,
                        leaf,
                        &thumbprint,
                        &audience_hint,
                        now,
                    )
                    .await?
                }
                (None, None) => None,
            };
            let view = view.ok_or_else(|| {
                refuse(
                    AceErrorCode::InvalidClient,
                    "certificate is not registered with this broker",
                )
                .for_device(&device_id)
            })?;
            if !view.cert_active {
                return Err(refuse(
                    AceErrorCode::InvalidClient,
                    format!("certificate {} is revoked", view.serial),
                )
                .for_device(&device_id));
            }

            if req.iss != device_id || view.device_id != device_id {
                return Err(refuse(
                    AceErrorCode::InvalidClient,
                    format!(
                        "iss {:?} does not match the certificate's device {device_id:?}",
                        req.iss
                    ),
                )
                .for_device(&device_id));
            }
            if let Some(channel) = channel_device
                && channel != device_id
            {
                return Err(refuse(
                    AceErrorCode::InvalidClient,
                    format!(
                        "request from device {device_id:?} arrived on the channel of {channel:?}"
                    ),
                )
                .for_device(&device_id));
            }
            req.validate(&self.issuer_id, now, leeway).map_err(|e| {
                refuse(
                    AceErrorCode::InvalidClient,
                    format!("request assertion: {e}"),
                )
                .for_device(&device_id)
            })?;
            self.admit_nonce(&device_id, &req.iss, &req.cti, req.exp, now)?;
            Ok::<Authenticated, AuditedRefusal>(Authenticated {
                device_id,
                request: req,
                cert_key,
                thumbprint,
                view,
            })
        }
        .await
        .map_err(|r: AuditedRefusal| r.with_x5t(&x5t))
    }

    /// A provisioning claim's nonce: a claim is shared by a batch of devices
    /// booting together, so it is not rate limited like one device, but it
    /// may hold at most a quarter of the replay cache (a leaked claim key
    /// cannot lock devices out).
    pub(crate) fn admit_claim_nonce(
        &self,
        issuer: &str,
        cti: &[u8],
        exp: u64,
        now: u64,
    ) -> Result<(), AuditedRefusal> {
        let mut replay = self.replay.lock().map_err(|_| AuditedRefusal {
            answer: Refusal::unavailable(),
            device: None,
            x5t: None,
            reason: Some("replay cache lock poisoned".into()),
        })?;
        let quota = (replay.capacity() / 4).max(1);
        match replay.admit_within(issuer, cti, exp.saturating_add(self.leeway), now, quota) {
            Admission::Fresh => Ok(()),
            Admission::Replayed => Err(refuse(
                AceErrorCode::InvalidClient,
                format!("request {}", ClaimError::Replayed(hex_short(cti))),
            )),
            Admission::IssuerOverQuota { retry_after } | Admission::Full { retry_after } => {
                Err(AuditedRefusal {
                    answer: Refusal::RateLimited { retry_after },
                    device: None,
                    x5t: None,
                    reason: Some(format!(
                        "retry_after={retry_after} replay cache share of {issuer} used up"
                    )),
                })
            }
        }
    }

    /// Replay check, then the device's rate limit, then the nonce enters the
    /// replay cache (within the device's quota): a device over its rate never
    /// takes replay-cache space, so it cannot lock other devices out.
    pub(crate) fn admit_nonce(
        &self,
        device_id: &str,
        issuer: &str,
        cti: &[u8],
        exp: u64,
        now: u64,
    ) -> Result<(), AuditedRefusal> {
        let mut replay = self.replay.lock().map_err(|_| AuditedRefusal {
            answer: Refusal::unavailable(),
            device: None,
            x5t: None,
            reason: Some("replay cache lock poisoned".into()),
        })?;
        let replayed = || {
            refuse(
                AceErrorCode::InvalidClient,
                format!("request {}", ClaimError::Replayed(hex_short(cti))),
            )
            .for_device(device_id)
        };
        if replay.seen(issuer, cti, now) {
            return Err(replayed());
        }
        if let Err(retry_after) = self.rate.check_device(device_id, now) {
            return Err(AuditedRefusal {
                answer: Refusal::RateLimited { retry_after },
                device: Some(device_id.to_string()),
                x5t: None,
                reason: None,
            });
        }
        match replay.admit(issuer, cti, exp.saturating_add(self.leeway), now) {
            Admission::Fresh => Ok(()),
            Admission::Replayed => Err(replayed()),
            Admission::IssuerOverQuota { retry_after } => {
                tracing::warn!(device = %device_id, retry_after, "replay cache: this device holds its whole share of live nonces");
                Err(AuditedRefusal {
                    answer: Refusal::RateLimited { retry_after },
                    device: Some(device_id.to_string()),
                    x5t: None,
                    reason: Some(format!(
                        "retry_after={retry_after} the device holds its whole share of the replay cache"
                    )),
                })
            }
            Admission::Full { retry_after } => {
                tracing::warn!(
                    retry_after,
                    "replay cache full: raise [limits] replay_cache_entries"
                );
                Err(AuditedRefusal {
                    answer: Refusal::RateLimited { retry_after },
                    device: Some(device_id.to_string()),
                    x5t: None,
                    reason: Some(format!("retry_after={retry_after} replay cache full")),
                })
            }
        }
    }
}

fn hex_short(bytes: &[u8]) -> String {
    bytes.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// Checks the request signature with the certificate's key (the one check
/// a cached certificate does not skip). A bad signature is "not
/// authenticated"; a malformed payload under a good signature says what is
/// wrong, since the key was held.
fn verify_signature(
    request: &UnverifiedRequest,
    verifier: &AwsLcVerifier,
    limits: Limits,
) -> Result<TokenRequest, AuditedRefusal> {
    request.verify(verifier, limits).map_err(|e| {
        if e.ace_code() == AceErrorCode::InvalidClient {
            unauthenticated(format!("request signature: {e}"))
        } else {
            from_proto(&e, "malformed request")
        }
    })
}
