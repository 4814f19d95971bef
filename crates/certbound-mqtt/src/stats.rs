//! Server counters.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::hub::HubCounts;

/// A snapshot of the server's counters ([`MqttServer::stats`](crate::MqttServer::stats)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MqttStats {
    /// Clients connected now (CONNACK 0x00 sent, connection still open).
    pub connected_clients: usize,
    /// Authorised PUBLISH packets accepted and routed (including will messages).
    pub messages_routed: u64,
    /// Copies of those messages queued to subscribers.
    pub messages_delivered: u64,
    /// PUBLISH packets (and will topics) the ACL refused; each closed its connection.
    pub publish_refusals: u64,
    /// SUBSCRIBE filters the ACL refused (answered with 0x80).
    pub subscribe_refusals: u64,
    /// Clients whose verified certificate the authorizer refused (CONNACK 0x05).
    pub auth_failures: u64,
    /// TLS handshakes that failed or timed out (no, untrusted or expired
    /// client certificate, not TLS at all, ...).
    pub tls_failures: u64,
    /// Clients dropped because their outgoing queue overflowed.
    pub slow_client_drops: u64,
    /// Connections refused because `max_clients` were open.
    pub refused_over_capacity: u64,
    /// CONNECTs refused because the identity held its most connections
    /// (CONNACK 0x05).
    pub refused_over_identity_cap: u64,
    /// Sessions ended because the client certificate expired.
    pub expired_certificates: u64,
    /// Connections closed for an invalid topic name or filter (not UTF-8,
    /// NUL or control characters, wildcards in a topic name).
    pub invalid_topics: u64,
    /// Sessions kept now for clients that are not connected (Session Expiry).
    pub stored_sessions: usize,
    /// Messages not queued for a stored session because its queue was full.
    pub offline_drops: u64,
    /// Topics with a retained message now.
    pub retained_messages: usize,
    /// Retained messages routed but not kept (the store was full).
    pub retained_refused: u64,
    /// Sessions ended because their access token expired without
    /// re-authentication (DISCONNECT 0x87).
    pub expired_tokens: u64,
    /// Access tokens accepted in CONNECT or AUTH (each re-authentication
    /// keeps a session that would otherwise have to reconnect).
    pub tokens_accepted: u64,
}

/// The live counters behind [`MqttStats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Open connections, including those still in the handshake.
    pub live: AtomicUsize,
    pub connected: AtomicUsize,
    pub publish_refusals: AtomicU64,
    pub subscribe_refusals: AtomicU64,
    pub auth_failures: AtomicU64,
    pub tls_failures: AtomicU64,
    pub refused_over_capacity: AtomicU64,
    pub refused_over_identity_cap: AtomicU64,
    pub expired_certificates: AtomicU64,
    pub invalid_topics: AtomicU64,
    pub expired_tokens: AtomicU64,
    pub tokens_accepted: AtomicU64,
}

/// Adds one to a counter.
pub(crate) fn bump(counter: &AtomicU64, by: u64) {
    counter.fetch_add(by, Ordering::Relaxed);
}

impl Counters {
    pub(crate) fn snapshot(&self, hub: &HubCounts) -> MqttStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        MqttStats {
            connected_clients: self.connected.load(Ordering::Relaxed),
            messages_routed: hub.routed,
            messages_delivered: hub.delivered,
            publish_refusals: get(&self.publish_refusals),
            subscribe_refusals: get(&self.subscribe_refusals),
            auth_failures: get(&self.auth_failures),
            tls_failures: get(&self.tls_failures),
            slow_client_drops: hub.slow_client_drops,
            refused_over_capacity: get(&self.refused_over_capacity),
            refused_over_identity_cap: get(&self.refused_over_identity_cap),
            expired_certificates: get(&self.expired_certificates),
            invalid_topics: get(&self.invalid_topics),
            stored_sessions: hub.parked,
            offline_drops: hub.offline_drops,
            retained_messages: hub.retained,
            retained_refused: hub.retained_refused,
            expired_tokens: get(&self.expired_tokens),
            tokens_accepted: get(&self.tokens_accepted),
        }
    }
}
