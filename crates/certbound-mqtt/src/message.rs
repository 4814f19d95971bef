//! A message on its way through the server, and subscription options.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rumqttc::QoS;

use crate::wire::Properties;

/// The MQTT 5 properties a PUBLISH carries from publisher to subscriber
/// unchanged (§3.3.2.3): shared by every copy of a message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct AppProps {
    pub payload_format: Option<u8>,
    pub content_type: Option<String>,
    pub response_topic: Option<String>,
    pub correlation_data: Option<Bytes>,
    pub user: Vec<(String, String)>,
}

impl AppProps {
    /// The forwarded properties of a PUBLISH or will, `None` when there are none.
    pub(crate) fn from_props(p: &Properties) -> Option<Arc<AppProps>> {
        let app = AppProps {
            payload_format: p.payload_format,
            content_type: p.content_type.clone(),
            response_topic: p.response_topic.clone(),
            correlation_data: p.correlation_data.clone(),
            user: p.user.clone(),
        };
        (app != AppProps::default()).then(|| Arc::new(app))
    }
}

/// A message on its way through the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Message {
    /// Topic name.
    pub topic: Arc<str>,
    /// Payload.
    pub payload: Bytes,
    /// QoS (the lower of published and granted once addressed to a subscriber).
    pub qos: QoS,
    /// The retain flag as it goes out (as published only for retained
    /// messages sent on subscribe or with Retain As Published).
    pub retain: bool,
    /// MQTT 5 properties forwarded unchanged.
    pub props: Option<Arc<AppProps>>,
    /// When the message expires (MQTT 5 Message Expiry Interval).
    pub expires: Option<Instant>,
    /// Subscription identifiers of the matching subscriptions (per copy).
    pub sub_ids: Vec<u32>,
}

impl Message {
    /// A message without properties.
    pub(crate) fn new(topic: &str, payload: Bytes, qos: QoS) -> Message {
        Message {
            topic: Arc::from(topic),
            payload,
            qos,
            retain: false,
            props: None,
            expires: None,
            sub_ids: Vec::new(),
        }
    }

    /// True when the message expired before `now`.
    pub(crate) fn expired(&self, now: Instant) -> bool {
        self.expires.is_some_and(|t| now >= t)
    }

    /// Seconds left until expiry (for the forwarded Message Expiry Interval).
    pub(crate) fn expiry_left(&self, now: Instant) -> Option<u32> {
        self.expires.map(|t| {
            let left = t.saturating_duration_since(now);
            u32::try_from(left.as_secs() + u64::from(left.subsec_nanos() > 0)).unwrap_or(u32::MAX)
        })
    }

    /// Sets the expiry from a Message Expiry Interval received at `now`.
    pub(crate) fn with_expiry_interval(mut self, secs: Option<u32>, now: Instant) -> Message {
        self.expires = secs.map(|s| now + Duration::from_secs(u64::from(s)));
        self
    }
}

/// How a subscription was made (MQTT 5 subscription options; 3.1.1 uses
/// only the QoS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SubOpts {
    /// Granted QoS.
    pub qos: QoS,
    /// Do not deliver the subscriber's own publications.
    pub no_local: bool,
    /// Keep the retain flag of forwarded messages.
    pub retain_as_published: bool,
    /// The subscription identifier, if one was given.
    pub sub_id: Option<u32>,
}

impl SubOpts {
    /// Options with only a QoS.
    #[cfg(test)]
    pub(crate) fn qos(qos: QoS) -> SubOpts {
        SubOpts {
            qos,
            no_local: false,
            retain_as_published: false,
            sub_id: None,
        }
    }
}
