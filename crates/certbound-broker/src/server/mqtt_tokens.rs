//! Access tokens inside MQTT sessions (RFC 9431, the MQTT-TLS profile of
//! ACE): the embedded MQTT server is a resource server whose API identifier
//! is `[mqtt] audience`. A client CONNECTs with Authentication Method `ace`
//! and a certbound token for that audience (or re-authenticates with AUTH);
//! this module checks the token offline and turns its scope into topic
//! rights.
//!
//! * Signature by one of the broker's published signing keys, issuer,
//!   audience, expiry (`certbound_verify`), CWT or JWT.
//! * The token must be bound to the TLS client certificate of the
//!   connection (CWT `cnf` = the certificate's key, JWT `x5t#S256` = its
//!   thumbprint) and its subject must be the certificate's identity.
//! * Revocation: the token's status-list entry must not be revoked or
//!   suspended. The watch task re-reads the entries of every list that a
//!   live session's token uses every [`STATUS_POLL`] and ends the sessions
//!   whose token was revoked since (well within the status list's TTL); a
//!   token of a list not read yet is accepted and checked at the next read.
//! * Scope: `pub:<filter>` grants publishing to topics the filter matches,
//!   `sub:<filter>` subscribing to filters it covers (RFC 9431's AIF
//!   `[[filter, ["pub"|"sub"]]]` in the text form certbound's scopes use);
//!   other scopes grant nothing here. The certificate's own namespace
//!   (`cb/v1/{device}/#`) stays the floor.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use certbound_mqtt::{Identity, MqttServerHandle, TokenGrant};
use certbound_registry::keys::SharedKeys;
use certbound_verify::{KeySet, TokenVerifier, VerifiedToken, VerifierConfig};

use crate::clock::unix_now;
use crate::status::StatusLists;
use crate::store::Store;

/// How often the status entries of live sessions' tokens are re-read.
const STATUS_POLL: Duration = Duration::from_millis(500);

/// A status-list entry: (list id, index).
type Entry = (u64, u64);

/// The token check of the embedded MQTT server and the revocation watch.
pub(crate) struct MqttTokens {
    audience: String,
    issuer: String,
    keys: SharedKeys,
    /// This broker's status lists, when it has them.
    status: Option<Arc<StatusLists>>,
    live: Mutex<Live>,
    /// The verifier for the key ring it was built from, rebuilt when the
    /// ring is replaced (`keys rotate`) or a minute has passed (keys are
    /// published on a schedule).
    verifier: Mutex<Option<CachedVerifier>>,
}

struct CachedVerifier {
    ring: Arc<certbound_registry::keys::KeyRing>,
    built: u64,
    verifier: Arc<TokenVerifier>,
}

impl std::fmt::Debug for MqttTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttTokens")
            .field("audience", &self.audience)
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

/// Tokens of live sessions by status entry, and the entries of each list
/// last read as revoked or suspended (a suspended device's tokens are
/// valid again once it is resumed).
#[derive(Debug, Default)]
struct Live {
    by_entry: HashMap<Entry, (Vec<u8>, u64)>,
    refused: HashMap<u64, HashSet<u64>>,
}

impl MqttTokens {
    /// Checks tokens for `audience`, issued by `issuer` with `keys`, with
    /// entries in `status` (`None`: no status lists).
    pub(crate) fn new(
        audience: String,
        issuer: String,
        keys: SharedKeys,
        status: Option<Arc<StatusLists>>,
    ) -> Arc<Self> {
        Arc::new(MqttTokens {
            audience,
            issuer,
            keys,
            status,
            live: Mutex::new(Live::default()),
            verifier: Mutex::new(None),
        })
    }

    fn live(&self) -> std::sync::MutexGuard<'_, Live> {
        self.live.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The check the MQTT server calls for CONNECT and AUTH.
    pub(crate) fn check(
        &self,
        who: &Identity,
        cert_der: &[u8],
        token: &[u8],
    ) -> Result<TokenGrant, String> {
        let now = unix_now();
        let verified = self.verify(token, now)?;
        verified
            .check_certificate_binding(cert_der)
            .map_err(|e| format!("the token is not bound to this client certificate: {e}"))?;
        let subject = verified.claims.sub.as_deref().unwrap_or_default();
        let expected = match who {
            Identity::Device(id) | Identity::Service(id) => id.as_str(),
            Identity::Claim(_) => return Err("claim certificates cannot use access tokens".into()),
        };
        if subject != expected {
            return Err(format!(
                "the token was issued to {subject:?}, not to this certificate's {who}"
            ));
        }
        let exp = verified.claims.exp.unwrap_or(now);
        if exp <= now {
            return Err("the token has expired".into());
        }
        if let Some(entry) = self.status_entry(&verified)? {
            let mut live = self.live();
            if live
                .refused
                .get(&entry.0)
                .is_some_and(|set| set.contains(&entry.1))
            {
                return Err("the token is revoked or its holder suspended".into());
            }
            let id = verified.claims.cti.clone().unwrap_or_default();
            live.by_entry.insert(entry, (id, exp));
        }
        let (publish, subscribe) = topic_rights(verified.claims.scope.as_deref().unwrap_or(""));
        Ok(TokenGrant::new(
            verified.claims.cti.clone().unwrap_or_default(),
            Duration::from_secs(exp.saturating_sub(now)),
            publish,
            subscribe,
        ))
    }

    /// The verifier of the current key ring.
    fn verifier(&self, now: u64) -> Arc<TokenVerifier> {
        let ring = self.keys.ring();
        let mut cached = self.verifier.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(c) = cached.as_ref()
            && Arc::ptr_eq(&c.ring, &ring)
            && now < c.built + 60
        {
            return Arc::clone(&c.verifier);
        }
        let mut keys = KeySet::new();
        for (kid, key) in ring.published(now) {
            let _ = keys.insert(kid, key);
        }
        let mut config =
            VerifierConfig::new(self.audience.clone()).with_issuer(self.issuer.clone());
        // The broker's own clock issued the token: no skew to allow for, and
        // the session must not outlive `exp`.
        config.leeway = 0;
        let verifier = Arc::new(TokenVerifier::new(keys, config));
        *cached = Some(CachedVerifier {
            ring,
            built: now,
            verifier: Arc::clone(&verifier),
        });
        verifier
    }

    fn verify(&self, token: &[u8], now: u64) -> Result<VerifiedToken, String> {
        let verifier = self.verifier(now);
        let result = match std::str::from_utf8(token) {
            Ok(text) if text.starts_with("eyJ") => verifier.verify_jwt(text, &[], now),
            _ => verifier.verify(token, &[], now),
        };
        result.map_err(|e| format!("{e} ({})", e.reason_code()))
    }

    /// The token's entry in one of this broker's status lists.
    fn status_entry(&self, verified: &VerifiedToken) -> Result<Option<Entry>, String> {
        let (Some(status), Some(lists)) = (&verified.claims.status, &self.status) else {
            return Ok(None);
        };
        let list = lists.list_id(&status.uri).ok_or_else(|| {
            format!(
                "the token's status list {:?} is not this broker's",
                status.uri
            )
        })?;
        Ok(Some((list, status.idx)))
    }

    /// Re-reads the status entries of live sessions' tokens and ends the
    /// sessions whose token was revoked (or whose holder was suspended).
    /// Runs until aborted.
    pub(crate) async fn watch(self: Arc<Self>, store: Store, server: MqttServerHandle) {
        let mut ticker = tokio::time::interval(STATUS_POLL);
        loop {
            ticker.tick().await;
            let now = unix_now();
            let lists: HashSet<u64> = {
                let mut live = self.live();
                live.by_entry.retain(|_, (_, exp)| *exp >= now);
                live.by_entry.keys().map(|(list, _)| *list).collect()
            };
            for list in lists {
                let entries = match store.status_entries(list, now).await {
                    Ok(entries) => entries,
                    Err(e) => {
                        tracing::warn!(list, error = %e, "MQTT tokens: cannot read a status list");
                        continue;
                    }
                };
                let ended: Vec<Vec<u8>> = {
                    let mut live = self.live();
                    let refused: HashSet<u64> = entries.into_iter().map(|(idx, _)| idx).collect();
                    let ended = refused
                        .iter()
                        .filter_map(|&idx| live.by_entry.remove(&(list, idx)).map(|(id, _)| id))
                        .collect();
                    live.refused.insert(list, refused);
                    ended
                };
                for id in ended {
                    let closed = server.disconnect_token(&id);
                    tracing::info!(
                        token = %hex::encode(&id),
                        sessions = closed,
                        "access token revoked: MQTT sessions closed"
                    );
                }
            }
        }
    }
}

/// Topic rights from a scope: `pub:<filter>` and `sub:<filter>`.
fn topic_rights(scope: &str) -> (Vec<String>, Vec<String>) {
    let mut publish = Vec::new();
    let mut subscribe = Vec::new();
    for s in certbound_proto::claims::scopes(scope) {
        if let Some(filter) = s.strip_prefix("pub:") {
            publish.push(filter.to_owned());
        } else if let Some(filter) = s.strip_prefix("sub:") {
            subscribe.push(filter.to_owned());
        }
    }
    (publish, subscribe)
}

#[cfg(test)]
mod tests {
    use super::topic_rights;

    #[test]
    fn scopes_become_topic_rights() {
        let (publish, subscribe) = topic_rights("pub:plant/+/alerts sub:plant/# telemetry:write");
        assert_eq!(publish, vec!["plant/+/alerts"]);
        assert_eq!(subscribe, vec!["plant/#"]);
        assert_eq!(topic_rights(""), (vec![], vec![]));
    }
}
