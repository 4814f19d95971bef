//! Sessions that outlive their connection (MQTT 5 Session Expiry, 3.1.1
//! Clean Session 0): their subscriptions stay in the router, QoS 1 and 2
//! messages queue up (bounded), and a delayed will waits for its time.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rumqttc::QoS;
use tracing::{debug, info, warn};

use super::{ConnId, Hub};
use crate::message::Message;
use crate::session::Snapshot;

/// Payload bytes queued for one stored session at most, whatever the
/// message count: without it a device could make the server hold its
/// stored sessions' queues full of 64 KiB messages (4 sessions x 1 024
/// messages x 64 KiB = 256 MiB per identity).
pub(crate) const OFFLINE_QUEUE_BYTES: usize = 1024 * 1024;

/// A stored session.
#[derive(Debug)]
pub(super) struct Parked {
    snapshot: Snapshot,
    queue: VecDeque<Message>,
    /// Payload bytes in `queue`.
    queued_bytes: usize,
    expires_at: Instant,
    /// The will and when it is due.
    will: Option<(Message, Instant)>,
}

impl Parked {
    /// Queues a message for the absent client; `false` when it was not
    /// queued (QoS 0, or the queue is full).
    pub(super) fn enqueue(&mut self, message: Message, limit: usize) -> bool {
        if message.qos == QoS::AtMostOnce {
            return false;
        }
        if self.queue.len() >= limit
            || self.queued_bytes + message.payload.len() > OFFLINE_QUEUE_BYTES
        {
            return false;
        }
        self.queued_bytes += message.payload.len();
        self.queue.push_back(message);
        true
    }
}

impl Hub {
    /// The connection `conn` ended. With `expiry_secs` > 0 its session is
    /// stored (`snapshot`, and the messages `queued` for the connection
    /// that it never sent) for that long; its will (with its delay) is then
    /// due at the earlier of the delay and the expiry. A taken-over
    /// session's unacknowledged and queued messages go to the connection
    /// that took it over. Returns the messages to route now (a will due at
    /// once).
    pub(crate) fn park(
        &mut self,
        conn: ConnId,
        expiry_secs: u32,
        snapshot: Snapshot,
        queued: Vec<Message>,
        will: Option<(Message, u32)>,
        now: Instant,
    ) -> Vec<Message> {
        let Some(entry) = self.conns.get(&conn) else {
            return will.map(|(m, _)| m).into_iter().collect();
        };
        if let Some(new) = entry.adopted_by {
            let unacked = snapshot.outgoing.into_iter().map(|(_, out)| out.message);
            let lost = unacked
                .chain(queued)
                .filter(|m| !self.queue_gently(new, m.clone()))
                .count();
            if lost > 0 {
                warn!(
                    conn,
                    lost,
                    "the connection that took the session over cannot queue every message left"
                );
                self.counts.offline_drops += lost as u64;
            }
            return Vec::new();
        }
        let identity = entry.identity.clone();
        let storable = expiry_secs > 0 && !entry.dead && entry.client_key.is_some();
        if !storable {
            return will.map(|(m, _)| m).into_iter().collect();
        }
        if self.counts.parked >= self.limits.parked_total {
            warn!(
                conn,
                "too many stored sessions; this one ends with its connection"
            );
            return will.map(|(m, _)| m).into_iter().collect();
        }
        self.evict_oldest_of(&identity, now);
        let expires_at = now + Duration::from_secs(u64::from(expiry_secs));
        let mut due_now = Vec::new();
        let will = will.and_then(|(message, delay)| {
            let due = now + Duration::from_secs(u64::from(delay.min(expiry_secs)));
            if delay == 0 {
                due_now.push(message);
                None
            } else {
                self.deadlines.insert((due, conn));
                Some((message, due))
            }
        });
        self.deadlines.insert((expires_at, conn));
        if let Some(entry) = self.conns.get_mut(&conn) {
            entry.tx = None;
            entry.token = None;
            let limit = self.limits.offline_queue;
            let mut parked = Parked {
                snapshot,
                queue: VecDeque::new(),
                queued_bytes: 0,
                expires_at,
                will,
            };
            for message in queued {
                parked.enqueue(message, limit);
            }
            entry.parked = Some(Box::new(parked));
        }
        self.counts.parked += 1;
        debug!(conn, expiry_secs, "session stored");
        due_now
    }

    /// Ends the stored session of `identity` that expires first, when the
    /// identity already holds the most allowed.
    fn evict_oldest_of(&mut self, identity: &crate::identity::Identity, now: Instant) {
        let Some(set) = self.by_identity.get(identity) else {
            return;
        };
        let parked: Vec<(Instant, ConnId)> = set
            .iter()
            .filter_map(|c| {
                let p = self.conns.get(c)?.parked.as_ref()?;
                Some((p.expires_at, *c))
            })
            .collect();
        if parked.len() < self.limits.parked_per_identity {
            return;
        }
        if let Some(&(_, oldest)) = parked.iter().min() {
            info!(conn = oldest, %identity, "the identity stores the most sessions allowed; ending its oldest");
            self.end_parked(oldest, now);
        }
    }

    /// Resumes (or, with `clean_start`, ends) the stored session `old` for
    /// the connection `conn`.
    pub(super) fn take_parked(
        &mut self,
        old: ConnId,
        conn: ConnId,
        clean_start: bool,
        now: Instant,
    ) -> Option<Snapshot> {
        if clean_start {
            self.end_parked(old, now);
            return None;
        }
        let parked = self.conns.get_mut(&old)?.parked.take()?;
        self.counts.parked = self.counts.parked.saturating_sub(1);
        self.router.rekey(old, conn);
        if let Some(entry) = self.conns.get_mut(&old) {
            entry.adopted_by = Some(conn);
            entry.client_key = None;
        }
        self.forget(old);
        let Parked {
            snapshot, queue, ..
        } = *parked;
        let queued = queue.len();
        let lost = queue
            .into_iter()
            .filter(|m| !self.queue_gently(conn, m.clone()))
            .count();
        if lost > 0 {
            warn!(
                conn,
                lost, "the resumed connection's queue cannot hold every stored message"
            );
            self.counts.offline_drops += lost as u64;
        }
        info!(conn, queued, "stored session resumed");
        Some(snapshot)
    }

    /// Ends a stored session: its pending will is published.
    fn end_parked(&mut self, conn: ConnId, now: Instant) {
        let will = self
            .conns
            .get_mut(&conn)
            .and_then(|e| e.parked.as_mut())
            .and_then(|p| p.will.take());
        self.forget(conn);
        if let Some((message, _)) = will {
            self.route(&message, conn, now);
        }
    }

    /// Publishes the wills that are due and ends the sessions that expired
    /// by `now`.
    pub(crate) fn tick(&mut self, now: Instant) {
        while let Some(&(at, conn)) = self.deadlines.first() {
            if at > now {
                break;
            }
            self.deadlines.pop_first();
            let Some(parked) = self.conns.get_mut(&conn).and_then(|e| e.parked.as_mut()) else {
                continue;
            };
            if parked.expires_at <= now {
                debug!(conn, "stored session expired");
                self.end_parked(conn, now);
            } else if parked.will.as_ref().is_some_and(|(_, due)| *due <= now)
                && let Some((message, _)) = parked.will.take()
            {
                self.route(&message, conn, now);
            }
        }
    }

    /// When [`Hub::tick`] has work next.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.first().map(|(at, _)| *at)
    }
}
