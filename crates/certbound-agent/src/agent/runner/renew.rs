//! Certificate renewal inside the run loop.
//!
//! ```text
//! due? ── hold new publishes until those in flight settle
//!   └─> request (MQTT cert/req or CoAP sren, new key) ──> stage <key>.next / <cert>.next
//!         └─> disconnect, connect with the NEW certificate ──> request every token with the NEW key
//!               └─> promote the files, switch identity, tokens and connection
//! any failure: discard the staged pair, reconnect with the old one, back off
//! ```

use super::{Link, Runner, Via, hex, obtain_token};
use crate::agent::cert_status;
use crate::answers::{cert_renewal_deadline_ms, retry_wait_ms};
use crate::config::RenewalTransport;
use crate::error::AgentError;
use crate::mqtt::MqttDevice;
use crate::reenroll::{RenewedIdentity, renew_over_coap, renew_over_mqtt};
use crate::renewal::{Action, Due, Event, Phase};
use crate::tokens::TokenManager;

/// Conditions that are logged once (not on every loop).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::agent) enum Warned {
    /// Expired, and no CoAP URL to renew it over.
    ExpiredWithoutCoap,
    /// Expired beyond the grace window.
    Reprovision,
}

/// Runs blocking file work off the async threads.
async fn blocking(
    f: impl FnOnce() -> Result<(), AgentError> + Send + 'static,
) -> Result<(), AgentError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| AgentError::Credentials(format!("credential file task: {e}")))?
}

impl Runner {
    /// How a renewal would be carried now, if one is due and possible.
    fn due_via(&self, link: &Link) -> Option<Via> {
        let r = self.renewal.as_ref()?;
        let connected = link.device.as_ref().is_some_and(MqttDevice::is_connected);
        match r.schedule.due(self.clock.now_ms()) {
            Due::Wait { .. } | Due::Reprovision => None,
            Due::Renew => match r.transport {
                RenewalTransport::Mqtt => connected.then_some(Via::Mqtt),
                RenewalTransport::Coap => Some(Via::Coap),
            },
            Due::RenewExpired => r.coap_url.is_some().then_some(Via::Coap),
        }
    }

    /// True when a renewal (or the trial of a staged pair) only waits for
    /// the publishes in flight: no new ones are handed out meanwhile.
    pub(super) fn renewal_waiting(&self, link: &Link) -> bool {
        self.staged.is_some() || self.due_via(link).is_some()
    }

    /// The next agent time (ms) at which a renewal becomes due, when waiting.
    pub(super) fn renewal_wake_ms(&self) -> Option<u64> {
        match self.renewal.as_ref()?.schedule.due(self.clock.now_ms()) {
            Due::Wait { until_ms } => Some(until_ms),
            _ => None,
        }
    }

    /// Renews the certificate when due (and `settled`: nothing in flight),
    /// or tries a pair found staged at start.
    pub(super) async fn renew_certificate(&mut self, link: &mut Link, settled: bool) {
        if !settled {
            return;
        }
        if let Some(staged) = self.staged.take() {
            tracing::info!(
                thumbprint = %hex(&staged.identity.thumbprint()),
                "trying the renewed certificate found staged at start"
            );
            self.trial(link, staged, "staged").await;
            return;
        }
        self.warn_once();
        let Some(via) = self.due_via(link) else {
            return;
        };
        let old = self.identity.validity();
        tracing::info!(
            transport = via.name(),
            not_after = old.not_after,
            attempt = self.renewal.as_ref().map_or(0, |r| r.schedule.failures()) + 1,
            "renewing the device certificate with a new key"
        );
        let phase = self.advance(Phase::Current, Event::Requested);
        let result = match via {
            Via::Mqtt => match link.device.as_ref() {
                Some(device) => renew_over_mqtt(device, &self.identity, &self.broker_id).await,
                None => Err(AgentError::Mqtt("not connected".into())),
            },
            Via::Coap => self.renew_coap().await,
        };
        let renewed = match result {
            Ok(r) => r,
            Err(e) => return self.renewal_failed(phase, &e).await,
        };
        let files = self.files.clone();
        let (key, chain) = (renewed.key_pem.clone(), renewed.chain_pem.clone());
        if let Err(e) = blocking(move || files.stage(&key, &chain)).await {
            // Whatever was written is removed.
            return self.renewal_failed(Phase::Staged, &e).await;
        }
        tracing::info!(
            thumbprint = %hex(&renewed.identity.thumbprint()),
            not_after = renewed.identity.validity().not_after,
            key = %self.files.key_next().display(),
            "new certificate issued and staged; switching to it"
        );
        self.trial(link, renewed, via.name()).await;
    }

    /// Connects with the staged pair and requests every token with it; on
    /// success promotes the files and switches to it.
    async fn trial(&mut self, link: &mut Link, renewed: RenewedIdentity, origin: &'static str) {
        let phase = Phase::Staged;
        // One connection per client id: the old one goes first.
        if let Some(old) = link.device.take() {
            old.disconnect().await;
        }
        link.watch = None;
        link.next_attempt = None;
        let mut settings = self.settings.clone();
        settings.cert_pem = renewed.chain_pem.clone();
        settings.key_pem = renewed.key_pem.to_string();
        let attempt = MqttDevice::connect_with(&renewed.identity, &settings, self.connect);
        let device = match tokio::time::timeout(self.settings.timeout, attempt).await {
            Ok(Ok(device)) => device,
            Ok(Err(e)) => return self.renewal_failed(phase, &e).await,
            Err(_) => {
                let e = AgentError::Mqtt(format!(
                    "no connection with the new certificate within {:?}",
                    self.settings.timeout
                ));
                return self.renewal_failed(phase, &e).await;
            }
        };
        let phase = self.advance(phase, Event::Connected);
        // The old tokens are bound to the old key: every one is requested again.
        let mut tokens =
            TokenManager::new(self.token_specs.clone(), self.backoff, self.renew_margin);
        for i in 0..self.token_specs.len() {
            obtain_token(
                &self.broker_id,
                &*self.clock,
                &self.status,
                &device,
                &renewed.identity,
                &mut tokens,
                i,
            )
            .await;
        }
        if tokens.held(&self.telemetry_audience).is_none() {
            device.disconnect().await;
            let e = AgentError::Credentials(format!(
                "no token for {} with the new certificate",
                self.telemetry_audience
            ));
            return self.renewal_failed(phase, &e).await;
        }
        let (_, action) = phase
            .on(Event::TokenObtained)
            .unwrap_or((Phase::Current, Action::Promote));
        debug_assert_eq!(action, Action::Promote);
        let files = self.files.clone();
        if let Err(e) = blocking(move || files.promote()).await {
            // The new pair works and stays in use; the files are repaired
            // (the staged pair tried again) at the next start.
            tracing::error!(error = %e, "the new certificate works but could not replace the old files");
        }
        let old_thumbprint = hex(&self.identity.thumbprint());
        self.identity = renewed.identity;
        self.settings = settings;
        self.tokens = tokens;
        link.watch = Some(device.link());
        link.device = Some(device);
        link.failures = 0;
        let validity = self.identity.validity();
        let renew_at = self.renewal.as_mut().map(|r| {
            r.schedule.on_renewed(validity, rand::random());
            r.warned = None;
            r.schedule.renew_at()
        });
        let identity = &self.identity;
        self.status.send_modify(|s| {
            cert_status(s, identity);
            s.cert_renew_at = renew_at;
            s.cert_renewals += 1;
            s.reprovision_needed = false;
        });
        tracing::info!(
            transport = origin,
            old = %old_thumbprint,
            new = %hex(&self.identity.thumbprint()),
            not_after = validity.not_after,
            renew_at,
            "certificate renewed: connected and tokens obtained with the new key; the old pair is retired"
        );
    }

    async fn renew_coap(&self) -> Result<RenewedIdentity, AgentError> {
        let url = self
            .renewal
            .as_ref()
            .and_then(|r| r.coap_url.clone())
            .ok_or_else(|| AgentError::Credentials("renewal.coap_url is not set".into()))?;
        let addr = tokio::net::lookup_host((url.host.as_str(), url.port))
            .await
            .ok()
            .and_then(|mut a| a.next())
            .ok_or_else(|| AgentError::Credentials(format!("cannot resolve {url}")))?;
        let client = certbound_coap::Client::connect(addr, Default::default()).await?;
        renew_over_coap(&client, &self.identity, &self.broker_id).await
    }

    fn advance(&self, phase: Phase, event: Event) -> Phase {
        match phase.on(event) {
            Ok((next, _)) => next,
            Err(e) => {
                tracing::error!(error = %e, "renewal state machine");
                phase
            }
        }
    }

    /// Discards what was staged, keeps the current pair, backs off.
    async fn renewal_failed(&mut self, phase: Phase, error: &AgentError) {
        let action = phase.on(Event::Failed).map_or(Action::None, |(_, a)| a);
        if action == Action::Discard {
            let files = self.files.clone();
            if let Err(e) = blocking(move || files.discard_staged()).await {
                tracing::warn!(error = %e, "cannot remove the staged certificate (removed at the next start)");
            }
        }
        let now = self.clock.now_ms();
        let delay = self.renewal.as_mut().map_or(0, |r| {
            let mut delay = r.schedule.on_failure(now, rand::random());
            if let AgentError::RetryLater {
                retry_after_secs, ..
            } = error
            {
                // Unauthenticated: capped, and never past the point where
                // the certificate could no longer be renewed in time.
                let cert = r.schedule.cert();
                let deadline = cert_renewal_deadline_ms(cert.not_before, cert.not_after);
                let wait = retry_wait_ms(*retry_after_secs, now, deadline);
                r.schedule.postpone_to(now.saturating_add(wait));
                delay = delay.max(wait);
            }
            delay
        });
        self.status.send_modify(|s| s.cert_renewal_failures += 1);
        tracing::warn!(
            %error,
            retry_in_ms = delay,
            staged_discarded = action == Action::Discard,
            "certificate renewal failed; the current certificate stays in use"
        );
    }

    /// Logs conditions that no retry fixes, once each.
    fn warn_once(&mut self) {
        let now = self.clock.now_ms();
        let Some(r) = self.renewal.as_mut() else {
            return;
        };
        let condition = match r.schedule.due(now) {
            Due::Reprovision => Some(Warned::Reprovision),
            Due::RenewExpired if r.coap_url.is_none() => Some(Warned::ExpiredWithoutCoap),
            _ => None,
        };
        if condition == r.warned {
            return;
        }
        r.warned = condition;
        let not_after = r.schedule.cert().not_after;
        match condition {
            Some(Warned::Reprovision) => {
                self.status.send_modify(|s| s.reprovision_needed = true);
                tracing::error!(
                    not_after,
                    "the device certificate expired more than renewal.expired_grace_days ago \
                     and cannot be renewed: the device must be re-provisioned"
                );
            }
            Some(Warned::ExpiredWithoutCoap) => tracing::warn!(
                not_after,
                "the device certificate has expired; TLS refuses it, so it can only be renewed \
                 over CoAP: set renewal.coap_url"
            ),
            None => {}
        }
    }
}
