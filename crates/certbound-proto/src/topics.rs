//! MQTT topic layout (DESIGN.md "Transports"): every device owns
//! `cb/v1/{device}/#`.
//!
//! ```text
//! cb/v1/{device}/token/req   device -> broker   signed device request
//! cb/v1/{device}/token/res   broker -> device   ACE response (CBOR)
//! cb/v1/{device}/cert/req    device -> broker   signed re-enrollment request
//! cb/v1/{device}/cert/res    broker -> device   re-enrollment response
//! cb/v1/{device}/telemetry   device -> backends telemetry envelope
//! ```

/// Topic prefix of protocol version 1.
pub const PREFIX: &str = "cb/v1/";
/// Shared-subscription group the brokers join, so several instances split the work.
pub const SHARE_GROUP: &str = "certbound";

/// What a device topic is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TopicKind {
    /// `token/req`
    TokenRequest,
    /// `token/res`
    TokenResponse,
    /// `cert/req`
    CertRequest,
    /// `cert/res`
    CertResponse,
    /// `telemetry`
    Telemetry,
}

impl TopicKind {
    /// The topic suffix after `cb/v1/{device}/`.
    pub fn suffix(self) -> &'static str {
        match self {
            TopicKind::TokenRequest => "token/req",
            TopicKind::TokenResponse => "token/res",
            TopicKind::CertRequest => "cert/req",
            TopicKind::CertResponse => "cert/res",
            TopicKind::Telemetry => "telemetry",
        }
    }

    /// The answer topic kind for a request kind.
    pub fn response(self) -> Option<TopicKind> {
        match self {
            TopicKind::TokenRequest => Some(TopicKind::TokenResponse),
            TopicKind::CertRequest => Some(TopicKind::CertResponse),
            _ => None,
        }
    }

    const ALL: [TopicKind; 5] = [
        TopicKind::TokenRequest,
        TopicKind::TokenResponse,
        TopicKind::CertRequest,
        TopicKind::CertResponse,
        TopicKind::Telemetry,
    ];
}

/// The topic of `kind` for `device`.
pub fn topic(device: &str, kind: TopicKind) -> String {
    format!("{PREFIX}{device}/{}", kind.suffix())
}

/// The filter a broker instance subscribes to for `kind` from every device,
/// as an MQTT shared subscription when `shared` is set.
pub fn broker_filter(kind: TopicKind, shared: bool) -> String {
    if shared {
        format!("$share/{SHARE_GROUP}/{PREFIX}+/{}", kind.suffix())
    } else {
        format!("{PREFIX}+/{}", kind.suffix())
    }
}

/// Splits a device topic into `(device, kind)`. Returns `None` for anything
/// else, including wildcards, empty device ids and extra levels.
pub fn parse(topic: &str) -> Option<(&str, TopicKind)> {
    let rest = topic.strip_prefix(PREFIX)?;
    let (device, suffix) = rest.split_once('/')?;
    if device.is_empty() || device.contains(['+', '#']) {
        return None;
    }
    let kind = TopicKind::ALL.into_iter().find(|k| k.suffix() == suffix)?;
    Some((device, kind))
}

/// True when `device` may use `topic` (its own `cb/v1/{device}/...` namespace,
/// by exact level match), as an MQTT server ACL would decide.
pub fn device_may_use(device: &str, topic: &str) -> bool {
    topic
        .strip_prefix(PREFIX)
        .and_then(|rest| rest.strip_prefix(device))
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        && !device.is_empty()
        && !device.contains(['+', '#', '/'])
}

/// Where to answer a request of `device`: the MQTT v5 response topic the
/// client asked for when it lies inside the device's own namespace (and has
/// no wildcard), else the fixed `cb/v1/{device}/<kind response>` topic. A
/// response topic elsewhere is ignored, so a device can never make the broker
/// publish into another device's namespace.
pub fn reply_topic(
    device: &str,
    request_kind: TopicKind,
    requested: Option<&str>,
) -> Option<String> {
    let fixed = request_kind.response().map(|k| topic(device, k))?;
    Some(match requested {
        Some(t) if !t.contains(['+', '#']) && device_may_use(device, t) => t.to_string(),
        _ => fixed,
    })
}

#[cfg(test)]
mod tests;
