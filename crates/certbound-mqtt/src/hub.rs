//! The registry of live connections around the [`Router`]: who is
//! connected, client-id takeover, per-client outgoing queues, and dropping
//! clients. Synchronous; the server keeps it behind a `std::sync::Mutex` and
//! never awaits while holding it.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use rumqttc::QoS;
use tokio::sync::{Notify, mpsc};
use tracing::{info, warn};

use crate::identity::Identity;
use crate::router::{ConnId, Router, Target};
use crate::session::Message;

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
    client_key: Option<ClientKey>,
    tx: mpsc::Sender<Message>,
    kill: Arc<Notify>,
    /// Being dropped: no more deliveries, not counted by `disconnect`.
    dead: bool,
}

/// What routing one message did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RouteOutcome {
    /// Copies queued.
    pub delivered: u64,
    /// Clients dropped because their queue was full.
    pub dropped: u64,
}

/// Live connections and their subscriptions.
#[derive(Debug, Default)]
pub(crate) struct Hub {
    router: Router,
    conns: HashMap<ConnId, Entry>,
    by_client: HashMap<ClientKey, ConnId>,
    by_identity: HashMap<Identity, HashSet<ConnId>>,
    scratch: Vec<Target>,
}

impl Hub {
    /// An empty hub.
    pub(crate) fn new() -> Self {
        Self::default()
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
                client_key: None,
                tx,
                kill,
                dead: false,
            },
        );
    }

    /// Admits `conn`'s CONNECT with `client_id`: an older live connection
    /// with the same identity and client id is dropped (takeover, returned);
    /// otherwise the identity may hold at most `cap` admitted connections.
    ///
    /// # Errors
    /// Why the connection was not admitted (cap reached, unknown connection).
    pub(crate) fn admit(
        &mut self,
        conn: ConnId,
        client_id: &str,
        cap: usize,
    ) -> Result<Option<ConnId>, String> {
        let identity = match self.conns.get(&conn) {
            Some(entry) if !entry.dead => entry.identity.clone(),
            _ => return Err("the connection is being dropped".to_owned()),
        };
        let key = (!client_id.is_empty()).then(|| (identity.clone(), client_id.to_owned()));
        let taken_over = key
            .as_ref()
            .and_then(|k| self.by_client.get(k).copied())
            .filter(|&old| old != conn && self.conns.get(&old).is_some_and(|e| !e.dead));
        let others = self.by_identity.get(&identity).map_or(0, |set| {
            set.iter()
                .filter(|&&c| c != conn && Some(c) != taken_over)
                .filter(|c| self.conns.get(c).is_some_and(|e| e.admitted && !e.dead))
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
            entry.client_key.clone_from(&key);
        }
        if let Some(key) = key {
            self.by_client.insert(key, conn);
        }
        let Some(old) = taken_over else {
            return Ok(None);
        };
        info!(
            old_conn = old,
            client_id, "client id taken over; closing the older connection"
        );
        Ok(self
            .kill(old, "taken over by a new connection")
            .then_some(old))
    }

    /// Adds subscriptions of `conn` (filters already validated and authorised).
    pub(crate) fn subscribe(&mut self, conn: ConnId, filters: &[(String, QoS)]) {
        if self.conns.get(&conn).is_some_and(|e| !e.dead) {
            for (filter, qos) in filters {
                if !self.router.subscribe(conn, filter, *qos) {
                    warn!(%filter, "invalid filter reached the router");
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

    /// Queues `message` to every matching subscriber without waiting; a
    /// subscriber whose queue is full is dropped.
    pub(crate) fn route(&mut self, message: &Message) -> RouteOutcome {
        let conns = &self.conns;
        let available = |c: ConnId| {
            conns
                .get(&c)
                .is_some_and(|e| !e.dead && e.tx.capacity() > 0)
        };
        self.router
            .route(&message.topic, &available, &mut self.scratch);
        let mut outcome = RouteOutcome::default();
        let mut overflowed = Vec::new();
        for target in &self.scratch {
            let Some(entry) = self.conns.get(&target.conn).filter(|e| !e.dead) else {
                continue;
            };
            let qos = if message.qos == QoS::AtLeastOnce && target.qos == QoS::AtLeastOnce {
                QoS::AtLeastOnce
            } else {
                QoS::AtMostOnce
            };
            let copy = Message {
                topic: Arc::clone(&message.topic),
                payload: message.payload.clone(),
                qos,
            };
            match entry.tx.try_send(copy) {
                Ok(()) => outcome.delivered += 1,
                Err(mpsc::error::TrySendError::Full(_)) => overflowed.push(target.conn),
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
        for conn in overflowed {
            warn!(conn, "outgoing queue full; dropping the slow client");
            if self.kill(conn, "outgoing queue overflow") {
                outcome.dropped += 1;
            }
        }
        outcome
    }

    /// Drops `conn`: no more deliveries, subscriptions removed, its task
    /// notified. Returns `false` when it was unknown or already dropped.
    pub(crate) fn kill(&mut self, conn: ConnId, why: &'static str) -> bool {
        let Some(entry) = self.conns.get_mut(&conn).filter(|e| !e.dead) else {
            return false;
        };
        entry.dead = true;
        entry.kill.notify_one();
        info!(conn, identity = %entry.identity, why, "dropping connection");
        self.router.remove_conn(conn);
        true
    }

    /// Drops every live connection made with the certificate whose SHA-256
    /// is `thumbprint` (used when a certificate is revoked). Returns how many.
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

    /// Drops every live connection of `who`. Returns how many.
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

    /// Forgets `conn` (its task has ended).
    pub(crate) fn unregister(&mut self, conn: ConnId) {
        self.router.remove_conn(conn);
        let Some(entry) = self.conns.remove(&conn) else {
            return;
        };
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

    /// Number of registered connections.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.conns.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn add(
        hub: &mut Hub,
        conn: ConnId,
        who: &str,
        cap: usize,
    ) -> (mpsc::Receiver<Message>, Arc<Notify>) {
        let (tx, rx) = mpsc::channel(cap);
        let kill = Arc::new(Notify::new());
        hub.register(
            conn,
            Identity::Device(who.into()),
            Some([conn as u8; 32]),
            tx,
            Arc::clone(&kill),
        );
        (rx, kill)
    }

    fn message(topic: &str, qos: QoS) -> Message {
        Message {
            topic: Arc::from(topic),
            payload: Bytes::from_static(b"x"),
            qos,
        }
    }

    #[test]
    fn delivers_at_the_lower_qos() {
        let mut hub = Hub::new();
        let (mut rx1, _) = add(&mut hub, 1, "a", 4);
        let (mut rx2, _) = add(&mut hub, 2, "b", 4);
        hub.subscribe(1, &[("t".into(), QoS::AtLeastOnce)]);
        hub.subscribe(2, &[("t".into(), QoS::AtMostOnce)]);
        let out = hub.route(&message("t", QoS::AtLeastOnce));
        assert_eq!(
            out,
            RouteOutcome {
                delivered: 2,
                dropped: 0
            }
        );
        assert_eq!(rx1.try_recv().map(|m| m.qos), Ok(QoS::AtLeastOnce));
        assert_eq!(rx2.try_recv().map(|m| m.qos), Ok(QoS::AtMostOnce));
        hub.route(&message("t", QoS::AtMostOnce));
        assert_eq!(rx1.try_recv().map(|m| m.qos), Ok(QoS::AtMostOnce));
    }

    #[test]
    fn overflowing_client_is_dropped_without_blocking() {
        let mut hub = Hub::new();
        let (_rx, kill) = add(&mut hub, 1, "slow", 2);
        hub.subscribe(1, &[("t".into(), QoS::AtMostOnce)]);
        assert_eq!(hub.route(&message("t", QoS::AtMostOnce)).delivered, 1);
        assert_eq!(hub.route(&message("t", QoS::AtMostOnce)).delivered, 1);
        assert_eq!(
            hub.route(&message("t", QoS::AtMostOnce)),
            RouteOutcome {
                delivered: 0,
                dropped: 1
            }
        );
        // Its subscriptions are gone and the task was told to stop.
        assert_eq!(
            hub.route(&message("t", QoS::AtMostOnce)),
            RouteOutcome::default()
        );
        let notified = kill.notified();
        tokio::pin!(notified);
        assert!(futures_ready(notified.as_mut()));
    }

    #[test]
    fn takeover_is_per_identity() {
        let mut hub = Hub::new();
        let (_r1, k1) = add(&mut hub, 1, "a", 1);
        let (_r2, _k2) = add(&mut hub, 2, "b", 1);
        let (_r3, _k3) = add(&mut hub, 3, "a", 1);
        assert_eq!(hub.admit(1, "cid", 4), Ok(None));
        assert_eq!(
            hub.admit(2, "cid", 4),
            Ok(None),
            "another identity cannot take over"
        );
        assert_eq!(hub.admit(3, "cid", 4), Ok(Some(1)));
        let notified = k1.notified();
        tokio::pin!(notified);
        assert!(futures_ready(notified.as_mut()));
        hub.unregister(1);
        assert_eq!(hub.len(), 2);
        assert_eq!(hub.disconnect_identity(&Identity::Device("a".into())), 1);
        assert_eq!(
            hub.disconnect_identity(&Identity::Device("a".into())),
            0,
            "already dropped"
        );
        hub.unregister(2);
        hub.unregister(3);
        assert_eq!(hub.len(), 0);
        assert!(hub.by_client.is_empty() && hub.by_identity.is_empty());
    }

    #[test]
    fn connections_per_identity_are_capped_but_takeover_is_not() {
        let mut hub = Hub::new();
        let _a: Vec<_> = (1..=3).map(|c| add(&mut hub, c, "d", 1)).collect();
        assert_eq!(hub.admit(1, "one", 2), Ok(None));
        assert_eq!(hub.admit(2, "two", 2), Ok(None));
        let refused = hub.admit(3, "three", 2).expect_err("over the cap");
        assert!(refused.contains("most allowed is 2"), "{refused}");
        // The same client id takes over even at the cap.
        assert_eq!(hub.admit(3, "one", 2), Ok(Some(1)));
        // Another identity is not affected; empty client ids count too.
        let _b = add(&mut hub, 4, "other", 1);
        assert_eq!(hub.admit(4, "", 2), Ok(None));
        // Dropped connections no longer count.
        hub.unregister(1);
        hub.unregister(2);
        let _c = add(&mut hub, 5, "d", 1);
        assert_eq!(hub.admit(5, "", 2), Ok(None));
    }

    #[test]
    fn disconnect_by_certificate() {
        let mut hub = Hub::new();
        let (_r1, k1) = add(&mut hub, 1, "d", 1);
        let (_r2, _k2) = add(&mut hub, 2, "d", 1);
        assert_eq!(hub.disconnect_certificate(&[1; 32]), 1);
        assert_eq!(hub.disconnect_certificate(&[1; 32]), 0, "already dropped");
        let notified = k1.notified();
        tokio::pin!(notified);
        assert!(futures_ready(notified.as_mut()));
        assert_eq!(hub.disconnect_identity(&Identity::Device("d".into())), 1);
    }

    /// Polls a future once.
    fn futures_ready<F: std::future::Future>(f: std::pin::Pin<&mut F>) -> bool {
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        f.poll(&mut cx).is_ready()
    }
}
