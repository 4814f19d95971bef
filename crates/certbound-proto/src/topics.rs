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

/// Prefix of the claim-enrollment topics: `cb/claims/claim-<id>/req` (the
/// claim holder publishes its request) and `cb/claims/claim-<id>/res/<device>`
/// (the broker answers for the device id the request asked for). The level
/// is the claim certificate's CN, so an MQTT server that names clients by CN
/// (Mosquitto `use_identity_as_username`) can grant `cb/claims/%u/...`.
pub const CLAIM_PREFIX: &str = "cb/claims/";

/// Where the holder of claim `claim_cn` (`claim-<id>`) publishes requests.
pub fn claim_request_topic(claim_cn: &str) -> String {
    format!("{CLAIM_PREFIX}{claim_cn}/req")
}

/// Where the broker answers the request of `device` made with `claim_cn`.
pub fn claim_response_topic(claim_cn: &str, device: &str) -> String {
    format!("{CLAIM_PREFIX}{claim_cn}/res/{device}")
}

/// The filter a broker instance subscribes to for claim requests.
pub fn broker_claim_filter(shared: bool) -> String {
    if shared {
        format!("$share/{SHARE_GROUP}/{CLAIM_PREFIX}+/req")
    } else {
        format!("{CLAIM_PREFIX}+/req")
    }
}

/// The claim CN of a claim request topic, if it is one.
pub fn parse_claim_request(topic: &str) -> Option<&str> {
    let cn = topic.strip_prefix(CLAIM_PREFIX)?.strip_suffix("/req")?;
    (!cn.is_empty() && !cn.contains(['/', '+', '#'])).then_some(cn)
}

/// Whether the holder of claim `claim_cn` may use `topic_or_filter`:
/// publish on its request topic, subscribe to its responses (one device or
/// `+`), nothing else.
pub fn claim_may_use(claim_cn: &str, topic_or_filter: &str, publish: bool) -> bool {
    let own = format!("{CLAIM_PREFIX}{claim_cn}/");
    let Some(rest) = topic_or_filter.strip_prefix(&own) else {
        return false;
    };
    if publish {
        return rest == "req";
    }
    match rest.strip_prefix("res/") {
        Some(device) => {
            !device.is_empty()
                && !device.contains(['/', '#'])
                && (device == "+" || !device.contains('+'))
        }
        None => false,
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
