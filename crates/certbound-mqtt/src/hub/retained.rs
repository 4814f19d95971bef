//! Retained messages: the last retained message of each topic, bounded in
//! count and bytes, handed to new subscriptions whose filter matches.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use crate::message::{Message, SubOpts};
use crate::topic::matches;

/// Bounds of the retained message store.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RetainedLimits {
    /// Topics with a retained message.
    pub count: usize,
    /// Payload bytes in all.
    pub bytes: usize,
}

impl Default for RetainedLimits {
    fn default() -> Self {
        RetainedLimits {
            count: 10_000,
            bytes: 16 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Default)]
pub(super) struct Retained {
    by_topic: HashMap<Arc<str>, Message>,
    bytes: usize,
    limits: RetainedLimits,
}

impl Retained {
    pub(super) fn new(limits: RetainedLimits) -> Self {
        Retained {
            limits,
            ..Self::default()
        }
    }

    pub(super) fn len(&self) -> usize {
        self.by_topic.len()
    }

    /// Stores (or, with an empty payload, deletes) the retained message of
    /// its topic. `false` when the store is full.
    pub(super) fn store(&mut self, message: &Message) -> bool {
        let old = self
            .by_topic
            .get(&message.topic)
            .map_or(0, |m| m.payload.len());
        if message.payload.is_empty() {
            if self.by_topic.remove(&message.topic).is_some() {
                self.bytes -= old;
            }
            return true;
        }
        let is_new = !self.by_topic.contains_key(&message.topic);
        let new_count = self.by_topic.len() + usize::from(is_new);
        let new_bytes = self.bytes - old + message.payload.len();
        if new_count > self.limits.count || new_bytes > self.limits.bytes {
            return false;
        }
        let stored = Message {
            retain: true,
            sub_ids: Vec::new(),
            ..message.clone()
        };
        self.by_topic.insert(Arc::clone(&message.topic), stored);
        self.bytes = new_bytes;
        true
    }

    /// Copies of the retained messages `filter` matches, for a subscription
    /// with `opts` (QoS lowered to the granted one, retain flag set).
    /// Expired ones are dropped.
    pub(super) fn matching(&mut self, filter: &str, opts: &SubOpts, now: Instant) -> Vec<Message> {
        let expired: Vec<Arc<str>> = self
            .by_topic
            .iter()
            .filter(|(_, m)| m.expired(now))
            .map(|(t, _)| Arc::clone(t))
            .collect();
        for topic in expired {
            if let Some(m) = self.by_topic.remove(&topic) {
                self.bytes -= m.payload.len();
            }
        }
        self.by_topic
            .values()
            .filter(|m| matches(&m.topic, filter))
            .map(|m| Message {
                qos: if (m.qos as u8) <= (opts.qos as u8) {
                    m.qos
                } else {
                    opts.qos
                },
                retain: true,
                sub_ids: opts.sub_id.into_iter().collect(),
                ..m.clone()
            })
            .collect()
    }
}
