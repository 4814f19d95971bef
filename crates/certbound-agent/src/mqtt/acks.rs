//! PUBACK correlation (pure).
//!
//! rumqttc assigns packet ids inside its event loop, so a caller does not
//! learn the id of its publish directly. It does report
//! `Event::Outgoing(Outgoing::Publish(pkid))` for every publish, in the order
//! the publishes were handed to the client, and later
//! `Event::Incoming(Packet::PubAck(ack))` with `ack.pkid`. The tracker keeps
//! one entry per handed-over publish (with or without a waiter) in that
//! order, moves it to "in flight" when its packet id is reported, and
//! resolves it when the PUBACK with that id arrives.

use std::collections::{HashMap, VecDeque};

/// Waiters of publishes, correlated by order and packet id.
#[derive(Debug)]
pub struct AckTracker<W> {
    unassigned: VecDeque<Option<W>>,
    in_flight: HashMap<u16, W>,
}

impl<W> Default for AckTracker<W> {
    fn default() -> Self {
        Self {
            unassigned: VecDeque::new(),
            in_flight: HashMap::new(),
        }
    }
}

impl<W> AckTracker<W> {
    /// An empty tracker.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a publish handed to the client (in order), with the waiter to
    /// resolve on its PUBACK (`None` for a publish nobody waits for).
    pub fn handed_over(&mut self, waiter: Option<W>) {
        self.unassigned.push_back(waiter);
    }

    /// Takes back the most recent hand-over (the client refused it).
    pub fn take_back(&mut self) -> Option<W> {
        self.unassigned.pop_back().flatten()
    }

    /// The event loop reported the packet id of the oldest handed-over
    /// publish. Packet id 0 (QoS 0) never gets a PUBACK: its waiter is
    /// returned to be resolved at once.
    pub fn assigned(&mut self, pkid: u16) -> Option<W> {
        let waiter = self.unassigned.pop_front().flatten()?;
        if pkid == 0 {
            return Some(waiter);
        }
        // A reused id whose PUBACK never came: the old waiter is failed by
        // being dropped (its receiver sees the sender go away).
        self.in_flight.insert(pkid, waiter);
        None
    }

    /// A PUBACK arrived: the waiter to resolve, if any.
    pub fn acked(&mut self, pkid: u16) -> Option<W> {
        self.in_flight.remove(&pkid)
    }

    /// The connection is gone: every waiter, in flight or not yet sent, to be
    /// failed (their publishes are dropped with the session).
    pub fn fail_all(&mut self) -> Vec<W> {
        let mut all: Vec<W> = self.in_flight.drain().map(|(_, w)| w).collect();
        all.extend(self.unassigned.drain(..).flatten());
        all
    }

    /// Publishes handed over or in flight.
    pub fn pending(&self) -> usize {
        self.unassigned.len() + self.in_flight.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiters_follow_the_order_of_publishes_then_their_packet_ids() {
        let mut t = AckTracker::new();
        t.handed_over(Some("a"));
        t.handed_over(None); // e.g. a token request nobody tracks
        t.handed_over(Some("c"));
        assert_eq!(t.pending(), 3);
        assert_eq!(t.assigned(1), None);
        assert_eq!(t.assigned(2), None);
        assert_eq!(t.assigned(3), None);
        // PUBACKs may come in any order.
        assert_eq!(t.acked(3), Some("c"));
        assert_eq!(t.acked(2), None, "untracked publish");
        assert_eq!(t.acked(1), Some("a"));
        assert_eq!(t.acked(1), None, "a duplicate PUBACK resolves nothing");
        assert_eq!(t.pending(), 0);
    }

    #[test]
    fn a_disconnect_fails_everything_pending() {
        let mut t = AckTracker::new();
        t.handed_over(Some(1));
        t.handed_over(Some(2));
        t.handed_over(Some(3));
        t.assigned(10);
        let mut failed = t.fail_all();
        failed.sort();
        assert_eq!(failed, [1, 2, 3]);
        assert_eq!(t.pending(), 0);
        // Ids of the old connection mean nothing now.
        assert_eq!(t.acked(10), None);
        assert_eq!(t.assigned(11), None);
    }

    #[test]
    fn refused_hand_overs_are_taken_back_and_qos0_resolves_at_once() {
        let mut t = AckTracker::new();
        t.handed_over(Some("x"));
        assert_eq!(t.take_back(), Some("x"));
        assert_eq!(t.pending(), 0);
        t.handed_over(Some("q0"));
        assert_eq!(t.assigned(0), Some("q0"));
        assert_eq!(t.assigned(5), None, "nothing handed over");
    }
}
