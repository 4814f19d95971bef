//! The registry of live connections and stored sessions around the
//! [`Router`]: who is connected, client-id takeover, per-client outgoing
//! queues, sessions kept after their connection ended (Session Expiry),
//! delayed will messages, retained messages, and dropping clients.
//! Synchronous, time passed in; the server keeps it behind a
//! `std::sync::Mutex` and never awaits while holding it.

mod parked;
mod retained;
#[cfg(test)]
mod tests;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use rumqttc::QoS;
use tokio::sync::{Notify, mpsc};
use tracing::{info, warn};

use crate::identity::Identity;
use crate::message::{Message, SubOpts};
use crate::router::{ConnId, Router, Target};
use crate::session::Snapshot;

use parked::Parked;
use retained::Retained;
pub(crate) use retained::RetainedLimits;

/// Takeover key: a client id is only unique within one identity, so a
/// device can never push another identity's connection out (§3.1.4 applies
/// per identity).
type ClientKey = (Identity, String);

#[derive(Debug)]
struct Entry {
    identity: Identity,
    /// SHA-256 of the client certificate, for [`Hub::disconnect_certificate`].
    thumbprint: Option<[u8; 32]>,
    /// Past CONNECT (counted against the identity's connection cap).
    admitted: bool,
    /// The session outlives the connection (Session Expiry > 0).
    persistent: bool,
    client_key: Option<ClientKey>,
    /// The live connection's queue; `None` once parked.
    tx: Option<mpsc::Sender<Message>>,
    kill: Arc<Notify>,
    /// Being dropped: no more deliveries, not counted by `disconnect`.
    dead: bool,
    /// Why it is being dropped (its task tells the client: MQTT 5 DISCONNECT).
    killed_because: Option<&'static str>,
    /// The id of the access token the session authenticated with.
    token: Option<Vec<u8>>,
    /// A newer connection took this session over; what this one leaves
    /// unacknowledged goes to it.
    adopted_by: Option<ConnId>,
    /// The stored session, once the connection ended.
    parked: Option<Box<Parked>>,
}

/// What routing one message did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RouteOutcome {
    /// Copies queued.
    pub delivered: u64,
    /// Clients dropped because their queue was full.
    pub dropped: u64,
}

/// Limits of the hub.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HubLimits {
    /// Messages queued for one stored session.
    pub offline_queue: usize,
    /// Stored sessions per identity (the oldest is ended beyond it).
    pub parked_per_identity: usize,
    /// Stored sessions in all.
    pub parked_total: usize,
    /// Retained messages.
    pub retained: RetainedLimits,
}

impl Default for HubLimits {
    fn default() -> Self {
        HubLimits {
            offline_queue: 1024,
            parked_per_identity: 4,
            parked_total: 100_000,
            retained: RetainedLimits::default(),
        }
    }
}

/// Counters the hub keeps (read under its lock).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct HubCounts {
    pub routed: u64,
    pub delivered: u64,
    pub slow_client_drops: u64,
    pub offline_drops: u64,
    pub retained_refused: u64,
    pub parked: usize,
    pub retained: usize,
}

/// Live connections, stored sessions and their subscriptions.
#[derive(Debug, Default)]
pub(crate) struct Hub {
    router: Router,
    conns: HashMap<ConnId, Entry>,
    by_client: HashMap<ClientKey, ConnId>,
    by_identity: HashMap<Identity, HashSet<ConnId>>,
    /// When stored sessions expire or their will is due.
    deadlines: BTreeSet<(Instant, ConnId)>,
    retained: Retained,
    limits: HubLimits,
    counts: HubCounts,
    scratch: Vec<Target>,
}

impl Hub {
    /// An empty hub with default limits.
    #[cfg(test)]
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// An empty hub.
    pub(crate) fn with_limits(limits: HubLimits) -> Self {
        Hub {
            retained: Retained::new(limits.retained),
            limits,
            ..Self::default()
        }
    }

    /// The counters.
    pub(crate) fn counts(&self) -> HubCounts {
        HubCounts {
            retained: self.retained.len(),
            ..self.counts
        }
    }

    /// Adds an authenticated connection: `tx` is its outgoing queue, `kill`
    /// is notified to drop it.
    pub(crate) fn register(
        &mut self,
        conn: ConnId,
        identity: Identity,
        thumbprint: Option<[u8; 32]>,
        tx: mpsc::Sender<Message>,
        kill: Arc<Notify>,
    ) {
        self.by_identity
            .entry(identity.clone())
            .or_default()
            .insert(conn);
        self.conns.insert(
            conn,
            Entry {
                identity,
                thumbprint,
                admitted: false,
                persistent: false,
                client_key: None,
                tx: Some(tx),
                kill,
                dead: false,
                killed_because: None,
                token: None,
                adopted_by: None,
                parked: None,
            },
        );
    }

    /// Admits `conn`'s CONNECT with `client_id`. An older live connection
    /// with the same identity and client id is dropped (takeover); a stored
    /// or taken-over session is resumed unless `clean_start` (returned:
    /// the session is present); otherwise the identity may hold at most
    /// `cap` live connections.
    ///
    /// # Errors
    /// Why the connection was not admitted (cap reached, unknown connection).
    pub(crate) fn admit(
        &mut self,
        conn: ConnId,
        client_id: &str,
        clean_start: bool,
        persistent: bool,
        cap: usize,
        now: Instant,
    ) -> Result<Option<Snapshot>, String> {
        let identity = match self.conns.get(&conn) {
            Some(entry) if !entry.dead => entry.identity.clone(),
            _ => return Err("the connection is being dropped".to_owned()),
        };
        // An empty client id (3.1.1 clean sessions) takes nothing over.
        let key = (!client_id.is_empty()).then(|| (identity.clone(), client_id.to_owned()));
        let old = key
            .as_ref()
            .and_then(|k| self.by_client.get(k).copied())
            .filter(|&old| old != conn);
        let old_live = old.filter(|o| {
            self.conns
                .get(o)
                .is_some_and(|e| !e.dead && e.parked.is_none())
        });
        let others = self.by_identity.get(&identity).map_or(0, |set| {
            set.iter()
                .filter(|&&c| c != conn && Some(c) != old_live)
                .filter(|c| {
                    self.conns
                        .get(c)
                        .is_some_and(|e| e.admitted && !e.dead && e.parked.is_none())
                })
                .count()
        });
        if others >= cap {
            return Err(format!(
                "{identity} already holds {others} connections (the most allowed is {cap}); \
                 close one or reuse its client id"
            ));
        }
        if let Some(entry) = self.conns.get_mut(&conn) {
            entry.admitted = true;
            entry.persistent = persistent;
            entry.client_key.clone_from(&key);
        }
        if let Some(key) = key {
            self.by_client.insert(key, conn);
        }
        let Some(old) = old else {
            return Ok(None);
        };
        let resumed = if self.conns.get(&old).is_some_and(|e| e.parked.is_some()) {
            self.take_parked(old, conn, clean_start, now)
        } else if old_live.is_some() {
            info!(
                old_conn = old,
                client_id, "client id taken over; closing the older connection"
            );
            let adopt = !clean_start && self.conns.get(&old).is_some_and(|e| e.persistent);
            let snapshot = adopt.then(|| {
                self.router.rekey(old, conn);
                if let Some(entry) = self.conns.get_mut(&old) {
                    entry.adopted_by = Some(conn);
                }
                Snapshot {
                    subscriptions: self.router.subscriptions(conn).into_iter().collect(),
                    ..Snapshot::default()
                }
            });
            self.kill(old, "taken over by a new connection");
            snapshot
        } else {
            None
        };
        Ok(resumed)
    }

    /// Records the access token `conn` authenticated with.
    pub(crate) fn set_token(&mut self, conn: ConnId, id: Vec<u8>) {
        if let Some(entry) = self.conns.get_mut(&conn) {
            entry.token = Some(id);
        }
    }

    /// Adds subscriptions of `conn` (filters already validated and
    /// authorised) and queues the retained messages that match those marked
    /// to get them.
    pub(crate) fn subscribe(
        &mut self,
        conn: ConnId,
        filters: &[(String, SubOpts, bool)],
        now: Instant,
    ) {
        if self.conns.get(&conn).is_none_or(|e| e.dead) {
            return;
        }
        for (filter, opts, send_retained) in filters {
            if !self.router.subscribe(conn, filter, *opts) {
                warn!(%filter, "invalid filter reached the router");
                continue;
            }
            if *send_retained {
                let messages = self.retained.matching(filter, opts, now);
                let total = messages.len();
                let sent = messages
                    .into_iter()
                    .take_while(|m| self.queue_gently(conn, m.clone()))
                    .count();
                if sent < total {
                    warn!(%filter, sent, total, "more retained messages than the client's queue holds; the rest are not sent");
                    self.counts.offline_drops += (total - sent) as u64;
                }
            }
        }
    }

    /// Removes subscriptions of `conn`.
    pub(crate) fn unsubscribe(&mut self, conn: ConnId, filters: &[String]) {
        for filter in filters {
            self.router.unsubscribe(conn, filter);
        }
    }

    /// Routes a message `publisher` sent: stores it when retained, queues a
    /// copy to every matching subscriber without waiting (a live subscriber
    /// whose queue is full is dropped; a stored session queues QoS 1 and 2
    /// messages up to its limit).
    pub(crate) fn route(
        &mut self,
        message: &Message,
        publisher: ConnId,
        now: Instant,
    ) -> RouteOutcome {
        if message.expired(now) {
            return RouteOutcome::default();
        }
        if message.retain && !self.retained.store(message) {
            self.counts.retained_refused += 1;
            warn!(topic = %message.topic, "retained message store full; the message is routed but not retained");
        }
        let conns = &self.conns;
        let available = |c: ConnId| {
            conns
                .get(&c)
                .is_some_and(|e| !e.dead && e.tx.as_ref().is_some_and(|tx| tx.capacity() > 0))
        };
        self.router
            .route(&message.topic, publisher, &available, &mut self.scratch);
        let mut outcome = RouteOutcome::default();
        let targets = std::mem::take(&mut self.scratch);
        for target in &targets {
            let qos = lower(message.qos, target.qos);
            let copy = Message {
                qos,
                retain: message.retain && target.retain_as_published,
                sub_ids: target.sub_ids.clone(),
                ..message.clone()
            };
            match self.queue(target.conn, copy) {
                Queued::Yes => outcome.delivered += 1,
                Queued::Overflow => outcome.dropped += 1,
                Queued::No => {}
            }
        }
        self.scratch = targets;
        self.counts.routed += 1;
        self.counts.delivered += outcome.delivered;
        self.counts.slow_client_drops += outcome.dropped;
        outcome
    }

    /// Queues `message` to `conn`: its live queue, or its stored session.
    fn queue(&mut self, conn: ConnId, message: Message) -> Queued {
        let limit = self.limits.offline_queue;
        let Some(entry) = self.conns.get_mut(&conn).filter(|e| !e.dead) else {
            return Queued::No;
        };
        if let Some(parked) = entry.parked.as_mut() {
            return if parked.enqueue(message, limit) {
                Queued::Yes
            } else {
                self.counts.offline_drops += 1;
                Queued::No
            };
        }
        let Some(tx) = &entry.tx else {
            return Queued::No;
        };
        match tx.try_send(message) {
            Ok(()) => Queued::Yes,
            Err(mpsc::error::TrySendError::Full(_)) => {
                warn!(conn, "outgoing queue full; dropping the slow client");
                if self.kill(conn, "outgoing queue overflow") {
                    Queued::Overflow
                } else {
                    Queued::No
                }
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Queued::No,
        }
    }

    /// Queues `message` to `conn` without ever dropping the client: `false`
    /// when its queue is full (the message is not queued). For what the
    /// server itself hands a connection at once (retained messages on
    /// subscribe, a resumed session's queue).
    pub(super) fn queue_gently(&mut self, conn: ConnId, message: Message) -> bool {
        let limit = self.limits.offline_queue;
        match self.conns.get_mut(&conn).filter(|e| !e.dead) {
            Some(Entry {
                parked: Some(parked),
                ..
            }) => parked.enqueue(message, limit),
            Some(Entry { tx: Some(tx), .. }) => tx.try_send(message).is_ok(),
            _ => false,
        }
    }

    /// Drops `conn`: no more deliveries, subscriptions removed, its task
    /// notified; a stored session is ended (without its will). Returns
    /// `false` when it was unknown or already dropped.
    pub(crate) fn kill(&mut self, conn: ConnId, why: &'static str) -> bool {
        let Some(entry) = self.conns.get_mut(&conn).filter(|e| !e.dead) else {
            return false;
        };
        entry.dead = true;
        entry.killed_because = Some(why);
        entry.kill.notify_one();
        info!(conn, identity = %entry.identity, why, "dropping connection");
        let parked = entry.parked.is_some();
        if entry.adopted_by.is_none() {
            self.router.remove_conn(conn);
        }
        if parked {
            self.forget(conn);
        }
        true
    }

    /// Why `conn` was dropped, once [`Hub::kill`] ran.
    pub(crate) fn kill_reason(&self, conn: ConnId) -> Option<&'static str> {
        self.conns.get(&conn).and_then(|e| e.killed_because)
    }

    /// Drops every live connection (and stored session) made with the
    /// certificate whose SHA-256 is `thumbprint`. Returns how many.
    pub(crate) fn disconnect_certificate(&mut self, thumbprint: &[u8; 32]) -> usize {
        let conns: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, e)| !e.dead && e.thumbprint.as_ref() == Some(thumbprint))
            .map(|(&c, _)| c)
            .collect();
        conns
            .into_iter()
            .filter(|&conn| self.kill(conn, "its certificate was revoked"))
            .count()
    }

    /// Drops every live connection (and stored session) of `who`. Returns how many.
    pub(crate) fn disconnect_identity(&mut self, who: &Identity) -> usize {
        let conns: Vec<ConnId> = self
            .by_identity
            .get(who)
            .map(|set| set.iter().copied().collect())
            .unwrap_or_default();
        conns
            .into_iter()
            .filter(|&conn| self.kill(conn, "disconnected by the server"))
            .count()
    }

    /// Drops every live connection that authenticated with the access token
    /// `id`. Returns how many.
    pub(crate) fn disconnect_token(&mut self, id: &[u8]) -> usize {
        let conns: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, e)| !e.dead && e.token.as_deref() == Some(id))
            .map(|(&c, _)| c)
            .collect();
        conns
            .into_iter()
            .filter(|&conn| self.kill(conn, "its access token was revoked"))
            .count()
    }

    /// Forgets `conn` (its task has ended) unless its session is stored.
    pub(crate) fn unregister(&mut self, conn: ConnId) {
        if self
            .conns
            .get(&conn)
            .is_some_and(|e| e.parked.is_some() && !e.dead)
        {
            return;
        }
        self.forget(conn);
    }

    /// Removes every trace of `conn`.
    fn forget(&mut self, conn: ConnId) {
        let adopted = self.conns.get(&conn).and_then(|e| e.adopted_by);
        if adopted.is_none() {
            self.router.remove_conn(conn);
        }
        let Some(entry) = self.conns.remove(&conn) else {
            return;
        };
        if entry.parked.is_some() {
            self.counts.parked = self.counts.parked.saturating_sub(1);
        }
        if let Some(key) = entry.client_key
            && self.by_client.get(&key) == Some(&conn)
        {
            self.by_client.remove(&key);
        }
        if let Some(set) = self.by_identity.get_mut(&entry.identity) {
            set.remove(&conn);
            if set.is_empty() {
                self.by_identity.remove(&entry.identity);
            }
        }
    }

    /// Number of registered connections and stored sessions.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.conns.len()
    }
}

enum Queued {
    Yes,
    No,
    Overflow,
}

fn lower(a: QoS, b: QoS) -> QoS {
    if (a as u8) <= (b as u8) { a } else { b }
}
