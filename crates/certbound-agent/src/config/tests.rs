use super::*;

const MINIMAL: &str = r#"
[device]
key = "k.pem"
cert = "c.pem"
ca = "/etc/ca.pem"

[broker]
issuer_id = "https://auth.example.com"

[[token]]
audience = "https://telemetry.example.com"
"#;

fn parse(text: &str) -> Result<AgentConfig, ConfigError> {
    AgentConfig::parse(text, Path::new("/etc/certbound/agent.toml"))
}

fn problems(text: &str) -> Vec<String> {
    match parse(text) {
        Err(ConfigError::Invalid { problems, .. }) => problems,
        other => panic!("expected validation problems, got {other:?}"),
    }
}

fn parse_error(text: &str) -> String {
    match parse(text) {
        Err(e @ ConfigError::Parse { .. }) => e.to_string(),
        other => panic!("expected a parse error, got {other:?}"),
    }
}

#[test]
fn the_printed_example_is_valid_and_shows_the_defaults() {
    let example = parse(EXAMPLE).unwrap();
    let minimal = parse(MINIMAL).unwrap();
    // Every commented-out key in the example is the default.
    assert_eq!(example.mqtt.url.to_string(), "mqtts://127.0.0.1:8883");
    assert_eq!(minimal.mqtt.url, example.mqtt.url);
    assert_eq!(example.mqtt.timeout_secs, minimal.mqtt.timeout_secs);
    assert_eq!(example.mqtt.keep_alive_secs, minimal.mqtt.keep_alive_secs);
    assert_eq!(example.mqtt.max_inflight, minimal.mqtt.max_inflight);
    assert_eq!(example.telemetry.source, Source::Stdin);
    assert_eq!(example.telemetry.max_message_bytes, 4096);
    assert_eq!(example.spool.dir, minimal.spool.dir);
    assert_eq!(example.spool.max_messages, 10_000);
    assert_eq!(example.spool.flush_on_exit_secs, 5);
    assert_eq!(example.backoff(), minimal.backoff());
    assert_eq!(example.retry.renew_margin_secs, 30);
    for r in [&example.renewal, &minimal.renewal] {
        assert!(r.enabled);
        assert_eq!(r.transport, RenewalTransport::Mqtt);
        assert_eq!(r.coap_url, None);
        assert_eq!((r.retry_base_secs, r.retry_max_secs), (30, 3600));
        assert_eq!(r.expired_grace_days, 7);
    }
    assert_eq!(example.renewal_policy(), minimal.renewal_policy());
    assert_eq!(
        example.telemetry_audience(),
        "https://telemetry.example.com"
    );
    // Every key the parser knows appears in the example (commented or not).
    for key in [
        "key =",
        "cert =",
        "ca =",
        "issuer_id =",
        "url =",
        "timeout_secs",
        "keep_alive_secs",
        "max_inflight",
        "audience =",
        "scope =",
        "source =",
        "max_message_bytes",
        "dir =",
        "max_messages",
        "flush_on_exit_secs",
        "base_ms",
        "max_ms",
        "renew_margin_secs",
        "[renewal]",
        "enabled =",
        "transport =",
        "coap_url =",
        "retry_base_secs",
        "retry_max_secs",
        "expired_grace_days",
    ] {
        assert!(EXAMPLE.contains(key), "the example does not mention {key}");
    }
}

#[test]
fn relative_paths_are_relative_to_the_config_file() {
    let c = parse(MINIMAL).unwrap();
    assert_eq!(c.device.key, Path::new("/etc/certbound/k.pem"));
    assert_eq!(c.device.cert, Path::new("/etc/certbound/c.pem"));
    assert_eq!(c.device.ca, Path::new("/etc/ca.pem"));
    assert_eq!(c.spool.dir, Path::new("/var/lib/certbound-agent/spool"));
    assert_eq!(c.telemetry_audience(), "https://telemetry.example.com");
    assert_eq!(c.token_specs().len(), 1);
    assert_eq!(c.token_specs()[0].scope, None);
}

#[test]
fn sources_and_urls_are_parsed() {
    let with = |extra: &str| parse(&format!("{MINIMAL}\n{extra}"));
    let c = with("[telemetry]\nsource = \"udp:127.0.0.1:9000\"").unwrap();
    assert_eq!(
        c.telemetry.source,
        Source::Udp(([127, 0, 0, 1], 9000).into())
    );
    let c = with("[telemetry]\nsource = \"unix:/run/cb.sock\"").unwrap();
    assert_eq!(c.telemetry.source, Source::Unix("/run/cb.sock".into()));
    for (url, host, port) in [
        ("mqtts://mqtt.example.com", "mqtt.example.com", 8883),
        ("mqtts://10.0.0.1:1883/", "10.0.0.1", 1883),
        ("mqtts://[::1]:9999", "::1", 9999),
        ("mqtts://[2001:db8:1:2]", "2001:db8:1:2", 8883),
    ] {
        let c = with(&format!("[mqtt]\nurl = \"{url}\"")).unwrap();
        assert_eq!(
            (c.mqtt.url.host.as_str(), c.mqtt.url.port),
            (host, port),
            "{url}"
        );
    }
}

#[test]
fn each_bad_value_gets_its_own_error_naming_the_key() {
    let e = parse_error(&format!("{MINIMAL}\n[mqtt]\nurl = \"mqtt://x:1883\""));
    assert!(e.contains("mqtts://") && e.contains("url"), "{e}");
    let e = parse_error(&format!("{MINIMAL}\n[mqtt]\nurl = \"mqtts://x:0\""));
    assert!(e.contains("invalid port"), "{e}");
    let e = parse_error(&format!(
        "{MINIMAL}\n[telemetry]\nsource = \"udp:0.0.0.0:9\""
    ));
    assert!(e.contains("loopback") && e.contains("source"), "{e}");
    let e = parse_error(&format!("{MINIMAL}\n[spool]\nmax_mesages = 5"));
    assert!(e.contains("unknown field `max_mesages`"), "{e}");
    assert!(e.contains("line"), "the position is shown: {e}");
    let e = parse_error(&format!("{MINIMAL}\n[spool]\nmax_messages = \"many\""));
    assert!(e.contains("max_messages"), "{e}");
    let e = parse_error(
        "[device]\nkey = \"k\"\ncert = \"c\"\nca = \"a\"\n[broker]\nissuer_id = \"x\"\n",
    );
    assert!(e.contains("missing field `token`"), "{e}");
    let e = parse_error(&format!("{MINIMAL}\nsurprise = 1"));
    assert!(e.contains("surprise"), "{e}");
}

#[test]
fn values_that_do_not_fit_together_are_all_listed() {
    let text = r#"
[device]
key = ""
cert = "c"
ca = "a"
[broker]
issuer_id = " "
[mqtt]
timeout_secs = 0
max_inflight = 500
[[token]]
audience = "https://a"
scope = ""
[[token]]
audience = "https://a"
[telemetry]
audience = "https://b"
max_message_bytes = 100000
[spool]
max_messages = 0
[retry]
base_ms = 1000
max_ms = 10
"#;
    let p = problems(text);
    for needle in [
        "device.key",
        "broker.issuer_id",
        "mqtt.timeout_secs",
        "mqtt.max_inflight",
        "[[token]] #1: scope",
        "[[token]] #2: audience \"https://a\" is listed twice",
        "telemetry.audience = \"https://b\"",
        "telemetry.max_message_bytes",
        "spool.max_messages",
        "retry.max_ms",
    ] {
        assert!(
            p.iter().any(|l| l.contains(needle)),
            "{needle} not in {p:#?}"
        );
    }
    assert_eq!(p.len(), 10, "{p:#?}");
    let shown = parse(text).unwrap_err().to_string();
    assert!(
        shown.starts_with("/etc/certbound/agent.toml:\n  "),
        "{shown}"
    );
}

#[test]
fn several_tokens_need_an_explicit_telemetry_audience() {
    let two = format!("{MINIMAL}\n[[token]]\naudience = \"https://firmware.example.com\"\n");
    let p = problems(&two);
    assert_eq!(p.len(), 1);
    assert!(p[0].starts_with("telemetry.audience: required"), "{p:?}");
    let c = parse(&format!(
        "{two}\n[telemetry]\naudience = \"https://firmware.example.com\""
    ))
    .unwrap();
    assert_eq!(c.telemetry_audience(), "https://firmware.example.com");
}

#[test]
fn backoff_follows_the_retry_section() {
    let c = parse(&format!("{MINIMAL}\n[retry]\nbase_ms = 100\nmax_ms = 2000")).unwrap();
    assert_eq!(
        c.backoff(),
        Backoff {
            base_ms: 100,
            max_ms: 2000,
            floor_ms: 20
        }
    );
}

#[test]
fn the_renewal_section() {
    let with = |extra: &str| parse(&format!("{MINIMAL}\n[renewal]\n{extra}"));
    let c = with("transport = \"coap\"\ncoap_url = \"coap://broker.example.com\"").unwrap();
    assert_eq!(c.renewal.transport, RenewalTransport::Coap);
    let url = c.renewal.coap_url.unwrap();
    assert_eq!((url.host.as_str(), url.port), ("broker.example.com", 5683));
    assert_eq!(url.to_string(), "coap://broker.example.com:5683");
    for (text, host, port) in [
        ("coap://10.0.0.1:5684/", "10.0.0.1", 5684),
        ("coap://[::1]:7000", "::1", 7000),
        ("coap://[::1]", "::1", 5683),
    ] {
        let c = with(&format!("coap_url = \"{text}\"")).unwrap();
        let u = c.renewal.coap_url.unwrap();
        assert_eq!((u.host.as_str(), u.port), (host, port), "{text}");
    }
    let c =
        with("enabled = false\nretry_base_secs = 2\nretry_max_secs = 10\nexpired_grace_days = 0")
            .unwrap();
    assert!(!c.renewal.enabled);
    let policy = c.renewal_policy();
    assert_eq!(
        policy.backoff,
        Backoff {
            base_ms: 2000,
            max_ms: 10_000,
            floor_ms: 400
        }
    );
    assert_eq!(policy.expired_grace_secs, 0);
    assert_eq!(c.renewal_policy().backoff.delay_ms(0, 1.0), 2000);

    // Wrong values, unknown keys, missing URL.
    for (extra, needle) in [
        ("transport = \"https\"", "unknown variant `https`"),
        ("coap_url = \"coaps://x\"", "coap://"),
        ("coap_url = \"coap://x:0\"", "coap://<host>"),
        ("renew_at = 0.5", "unknown field `renew_at`"),
    ] {
        let e = match with(extra) {
            Err(e @ ConfigError::Parse { .. }) => e.to_string(),
            other => panic!("{extra}: expected a parse error, got {other:?}"),
        };
        assert!(e.contains(needle), "{extra}: {e}");
    }
    let p = problems(&format!(
        "{MINIMAL}\n[renewal]\ntransport = \"coap\"\nretry_base_secs = 0\nretry_max_secs = 99999999\nexpired_grace_days = 9999"
    ));
    for needle in [
        "renewal.coap_url: required",
        "renewal.retry_base_secs = 0",
        "renewal.retry_max_secs = 99999999",
        "renewal.expired_grace_days = 9999",
    ] {
        assert!(
            p.iter().any(|l| l.contains(needle)),
            "{needle} not in {p:#?}"
        );
    }
    assert_eq!(p.len(), 4, "{p:#?}");
}
