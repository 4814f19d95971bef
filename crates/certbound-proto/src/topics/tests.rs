use super::*;

#[test]
fn build_and_parse() {
    assert_eq!(
        topic("sensor-1", TopicKind::TokenRequest),
        "cb/v1/sensor-1/token/req"
    );
    assert_eq!(
        parse("cb/v1/sensor-1/token/req"),
        Some(("sensor-1", TopicKind::TokenRequest))
    );
    assert_eq!(
        parse("cb/v1/sensor-1/telemetry"),
        Some(("sensor-1", TopicKind::Telemetry))
    );
    for bad in [
        "cb/v1//token/req",
        "cb/v1/+/token/req",
        "cb/v1/#",
        "cb/v1/sensor-1/token/req/extra",
        "cb/v2/sensor-1/token/req",
        "cb/v1/sensor-1",
        "",
    ] {
        assert_eq!(parse(bad), None, "{bad}");
    }
}

#[test]
fn filters() {
    assert_eq!(
        broker_filter(TopicKind::TokenRequest, true),
        "$share/certbound/cb/v1/+/token/req"
    );
    assert_eq!(
        broker_filter(TopicKind::Telemetry, false),
        "cb/v1/+/telemetry"
    );
    assert_eq!(
        TopicKind::TokenRequest.response(),
        Some(TopicKind::TokenResponse)
    );
    assert_eq!(TopicKind::Telemetry.response(), None);
}

#[test]
fn acl_is_exact_on_levels() {
    assert!(device_may_use("sensor-1", "cb/v1/sensor-1/telemetry"));
    assert!(device_may_use("sensor-1", "cb/v1/sensor-1/#"));
    assert!(!device_may_use("sensor-1", "cb/v1/sensor-10/telemetry"));
    assert!(!device_may_use("sensor-1", "cb/v1/sensor-2/telemetry"));
    assert!(!device_may_use("sensor-1", "cb/v1/+/telemetry"));
    assert!(!device_may_use("sensor-1", "cb/v1/#"));
    assert!(!device_may_use("+", "cb/v1/+/telemetry"));
}

#[test]
fn reply_topics_stay_in_the_device_namespace() {
    let fixed = Some("cb/v1/d1/token/res".to_string());
    assert_eq!(reply_topic("d1", TopicKind::TokenRequest, None), fixed);
    assert_eq!(
        reply_topic("d1", TopicKind::TokenRequest, Some("cb/v1/d1/token/res/42")),
        Some("cb/v1/d1/token/res/42".to_string())
    );
    for hostile in [
        "cb/v1/d2/token/res",
        "cb/v1/+/token/res",
        "cb/v1/d1/#",
        "other/topic",
        "cb/v1/d10/x",
    ] {
        assert_eq!(
            reply_topic("d1", TopicKind::TokenRequest, Some(hostile)),
            fixed,
            "{hostile}"
        );
    }
    assert_eq!(reply_topic("d1", TopicKind::Telemetry, None), None);
}

#[test]
fn claim_topics() {
    assert_eq!(claim_request_topic("claim-c1"), "cb/claims/claim-c1/req");
    assert_eq!(
        claim_response_topic("claim-c1", "dev-1"),
        "cb/claims/claim-c1/res/dev-1"
    );
    assert_eq!(
        parse_claim_request("cb/claims/claim-c1/req"),
        Some("claim-c1")
    );
    assert_eq!(parse_claim_request("cb/claims/+/req"), None);
    assert_eq!(parse_claim_request("cb/claims/a/b/req"), None);
    assert_eq!(parse_claim_request("cb/v1/dev/token/req"), None);
    assert_eq!(
        broker_claim_filter(true),
        "$share/certbound/cb/claims/+/req"
    );
    // publish: own request topic only
    assert!(claim_may_use("claim-c1", "cb/claims/claim-c1/req", true));
    assert!(!claim_may_use("claim-c1", "cb/claims/claim-c2/req", true));
    assert!(!claim_may_use(
        "claim-c1",
        "cb/claims/claim-c1/res/dev",
        true
    ));
    assert!(!claim_may_use("claim-c1", "cb/v1/dev/telemetry", true));
    // subscribe: own responses only
    assert!(claim_may_use(
        "claim-c1",
        "cb/claims/claim-c1/res/dev-1",
        false
    ));
    assert!(claim_may_use("claim-c1", "cb/claims/claim-c1/res/+", false));
    assert!(!claim_may_use(
        "claim-c1",
        "cb/claims/claim-c1/res/#",
        false
    ));
    assert!(!claim_may_use("claim-c1", "cb/claims/+/res/dev", false));
    assert!(!claim_may_use("claim-c1", "cb/claims/claim-c1/req", false));
    assert!(!claim_may_use(
        "claim-c1",
        "cb/claims/claim-c1/res/a+b",
        false
    ));
    assert!(!claim_may_use("claim-c1", "cb/claims/claim-c1/res/", false));
}
