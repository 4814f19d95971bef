//! Prometheus metrics (text exposition format 0.0.4), served at
//! `GET /metrics` on the HTTPS listener (`[https] metrics = true`, the
//! default). Hand-written: counters keyed by label values, one fixed-bucket
//! histogram per transport, and gauges sampled when scraped.
//!
//! See `docs/operations.md` for the names, labels and meaning.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use certbound_coap::StatsHandle as CoapStats;
use certbound_mqtt::MqttServerHandle;

/// The `Content-Type` of [`Metrics::render`].
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4";

/// Upper bounds of the token request latency histogram, seconds.
pub const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0,
];

#[derive(Debug, Default, Clone)]
struct Histogram {
    /// Per bucket (not cumulative); the last slot is `+Inf`.
    counts: [u64; BUCKETS.len() + 1],
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, secs: f64) {
        let slot = BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(BUCKETS.len());
        self.counts[slot] += 1;
        self.sum += secs;
        self.count += 1;
    }
}

#[derive(Debug, Default)]
struct Inner {
    /// `(metric name, rendered labels)` -> value.
    counters: BTreeMap<(&'static str, String), u64>,
    /// transport -> latency.
    latency: BTreeMap<String, Histogram>,
}

/// The broker's metrics, shared by every service (`Arc<Metrics>`).
#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
    mqtt: OnceLock<MqttServerHandle>,
    coap: OnceLock<CoapStats>,
}

const TOKENS_ISSUED: &str = "certbound_tokens_issued_total";
const TOKENS_REFUSED: &str = "certbound_tokens_refused_total";
const RENEWALS: &str = "certbound_cert_renewals_total";
const RATE_LIMITED: &str = "certbound_rate_limited_total";
const LATENCY: &str = "certbound_token_request_seconds";
const MQTT_SESSIONS: &str = "certbound_mqtt_sessions";
const MQTT_REFUSALS: &str = "certbound_mqtt_refusals_total";
const SIGNING_KEYS: &str = "certbound_signing_keys_published";
const PRUNED: &str = "certbound_pruned_rows_total";
const UNAUTH_REFUSED: &str = "certbound_unauthenticated_refusals_total";
const AUDIT_WRITE_FAILURES: &str = "certbound_audit_write_failures_total";
const AUDIT_DROPPED: &str = "certbound_audit_events_dropped_total";
const SHED: &str = "certbound_requests_shed_total";

/// `kind` of a token holder / rate limit: a device.
pub const DEVICE: &str = "device";
/// `kind` of a token holder / rate limit: an OAuth client.
pub const CLIENT: &str = "client";

/// Escapes a label value (`\`, `"` and newlines).
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn labels(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect::<Vec<_>>()
        .join(",")
}

impl Metrics {
    /// Empty metrics.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        match self.inner.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    fn bump(&self, name: &'static str, pairs: &[(&str, &str)]) {
        *self
            .lock()
            .counters
            .entry((name, labels(pairs)))
            .or_default() += 1;
    }

    /// One token request over `transport` by a `kind` ([`DEVICE`] or
    /// [`CLIENT`]) holder: `outcome` is the audit outcome (`ok` or the
    /// refusal reason), `elapsed` the time it took to decide.
    pub fn token_request(&self, transport: &str, kind: &str, outcome: &str, elapsed: Duration) {
        if outcome == "ok" {
            self.bump(TOKENS_ISSUED, &[("transport", transport), ("kind", kind)]);
        } else {
            self.bump(
                TOKENS_REFUSED,
                &[("transport", transport), ("reason", outcome)],
            );
        }
        self.rate_limited_if(kind, outcome);
        self.lock()
            .latency
            .entry(transport.to_string())
            .or_default()
            .observe(elapsed.as_secs_f64());
    }

    /// One certificate renewal (re-enrollment) over `transport` with the
    /// audit `outcome` (`ok` or the refusal reason).
    pub fn cert_renewal(&self, transport: &str, outcome: &str) {
        self.bump(RENEWALS, &[("transport", transport), ("outcome", outcome)]);
        self.rate_limited_if(DEVICE, outcome);
    }

    /// Rows deleted by housekeeping, per table (`issued_tokens`,
    /// `status_lists`, `audit_events`).
    pub fn pruned(&self, report: &crate::store::PruneReport) {
        let mut inner = self.lock();
        for (table, rows) in report.by_table() {
            if rows > 0 {
                *inner
                    .counters
                    .entry((PRUNED, labels(&[("table", table)])))
                    .or_default() += rows;
            }
        }
    }

    /// One refusal of an unauthenticated request (garbage, unknown
    /// certificate, failed client authentication) over `transport`: every
    /// one is counted here, while the audit log aggregates them (see
    /// `crate::audit`).
    pub fn unauthenticated_refusal(&self, transport: &str, reason: &str) {
        self.bump(
            UNAUTH_REFUSED,
            &[("transport", transport), ("reason", reason)],
        );
    }

    /// One failed write of the audit writer (the batch is retried; the token
    /// records in it were refused, their tokens never handed out).
    pub fn audit_write_failed(&self) {
        self.bump(AUDIT_WRITE_FAILURES, &[]);
    }

    /// Audit events dropped because the store stayed unwritable longer than
    /// the pending bound allows (each drop is also logged).
    pub fn audit_events_dropped(&self, n: u64) {
        *self
            .lock()
            .counters
            .entry((AUDIT_DROPPED, String::new()))
            .or_default() += n;
    }

    /// A request turned away because `transport` already had its maximum of
    /// requests in progress (`answered`: the device got "temporarily
    /// unavailable"; otherwise it was dropped).
    pub fn shed(&self, transport: &str, answered: bool) {
        let how = if answered { "unavailable" } else { "dropped" };
        self.bump(SHED, &[("transport", transport), ("action", how)]);
    }

    fn rate_limited_if(&self, kind: &str, outcome: &str) {
        if outcome == "rate_limited" || outcome == "too_many_requests" {
            self.bump(RATE_LIMITED, &[("kind", kind)]);
        }
    }

    /// The embedded MQTT server whose sessions `certbound_mqtt_sessions`
    /// reports (set once, when it starts).
    pub fn set_mqtt(&self, server: MqttServerHandle) {
        let _ = self.mqtt.set(server);
    }

    /// The CoAP server whose counters `certbound_coap_*` report (set once,
    /// when it starts).
    pub fn set_coap(&self, server: CoapStats) {
        let _ = self.coap.set(server);
    }

    /// The text exposition; `signing_keys` is the number of keys published
    /// now (JWKS / COSE key set).
    pub fn render(&self, signing_keys: usize) -> String {
        let inner = self.lock();
        let mut out = String::new();
        let counter = |out: &mut String, name: &str, help: &str| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} counter");
            for ((n, labels), value) in &inner.counters {
                if *n == name && labels.is_empty() {
                    let _ = writeln!(out, "{name} {value}");
                } else if *n == name {
                    let _ = writeln!(out, "{name}{{{labels}}} {value}");
                }
            }
        };
        counter(
            &mut out,
            TOKENS_ISSUED,
            "Access tokens issued, by transport and holder kind (device or client).",
        );
        counter(
            &mut out,
            TOKENS_REFUSED,
            "Token requests refused, by transport and reason (the audit outcome).",
        );
        counter(
            &mut out,
            RENEWALS,
            "Device certificate renewals (re-enrollments), by transport and outcome.",
        );
        counter(
            &mut out,
            RATE_LIMITED,
            "Requests refused by the rate limits, by kind (device or client).",
        );
        counter(
            &mut out,
            PRUNED,
            "Rows deleted by housekeeping, by table (issued_tokens, status_lists, audit_events).",
        );
        counter(
            &mut out,
            UNAUTH_REFUSED,
            "Refusals of unauthenticated requests, by transport and reason (every one; the audit log aggregates them).",
        );
        counter(
            &mut out,
            AUDIT_WRITE_FAILURES,
            "Failed audit/token-record writes (retried; tokens whose record failed were not handed out).",
        );
        counter(
            &mut out,
            AUDIT_DROPPED,
            "Audit events dropped after the store stayed unwritable past the pending bound.",
        );
        counter(
            &mut out,
            SHED,
            "Requests turned away because the transport had its maximum in progress, by transport and action (unavailable: answered, dropped: no answer possible).",
        );
        let _ = writeln!(
            out,
            "# HELP {LATENCY} Time to decide a token request, by transport."
        );
        let _ = writeln!(out, "# TYPE {LATENCY} histogram");
        for (transport, h) in &inner.latency {
            let t = escape(transport);
            let mut cumulative = 0;
            for (i, bound) in BUCKETS.iter().enumerate() {
                cumulative += h.counts[i];
                let _ = writeln!(
                    out,
                    "{LATENCY}_bucket{{transport=\"{t}\",le=\"{bound}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "{LATENCY}_bucket{{transport=\"{t}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(out, "{LATENCY}_sum{{transport=\"{t}\"}} {}", h.sum);
            let _ = writeln!(out, "{LATENCY}_count{{transport=\"{t}\"}} {}", h.count);
        }
        drop(inner);
        if let Some(mqtt) = self.mqtt.get() {
            let _ = writeln!(
                out,
                "# HELP {MQTT_SESSIONS} Clients connected to the embedded MQTT server now (the broker's own client included)."
            );
            let _ = writeln!(out, "# TYPE {MQTT_SESSIONS} gauge");
            let stats = mqtt.stats();
            let _ = writeln!(out, "{MQTT_SESSIONS} {}", stats.connected_clients);
            let _ = writeln!(
                out,
                "# HELP {MQTT_REFUSALS} What the embedded MQTT server refused, by reason."
            );
            let _ = writeln!(out, "# TYPE {MQTT_REFUSALS} counter");
            for (reason, n) in [
                ("tls", stats.tls_failures),
                ("auth", stats.auth_failures),
                ("over_capacity", stats.refused_over_capacity),
                ("identity_cap", stats.refused_over_identity_cap),
                ("publish", stats.publish_refusals),
                ("subscribe", stats.subscribe_refusals),
                ("invalid_topic", stats.invalid_topics),
                ("certificate_expired", stats.expired_certificates),
                ("slow_client", stats.slow_client_drops),
            ] {
                let _ = writeln!(out, "{MQTT_REFUSALS}{{reason=\"{reason}\"}} {n}");
            }
        }
        if let Some(coap) = self.coap.get() {
            crate::metrics_coap::render(&mut out, &coap.stats());
        }
        let _ = writeln!(
            out,
            "# HELP {SIGNING_KEYS} Token signing keys published now (JWKS / COSE key set)."
        );
        let _ = writeln!(out, "# TYPE {SIGNING_KEYS} gauge");
        let _ = writeln!(out, "{SIGNING_KEYS} {signing_keys}");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histogram() {
        let m = Metrics::new();
        m.token_request("coap", DEVICE, "ok", Duration::from_micros(300));
        m.token_request("coap", DEVICE, "rate_limited", Duration::from_millis(2));
        m.token_request("https", CLIENT, "ok", Duration::from_secs(3));
        m.cert_renewal("mqtt", "ok");
        let text = m.render(2);
        assert!(
            text.contains("certbound_tokens_issued_total{transport=\"coap\",kind=\"device\"} 1")
        );
        assert!(text.contains(
            "certbound_tokens_refused_total{transport=\"coap\",reason=\"rate_limited\"} 1"
        ));
        assert!(text.contains("certbound_rate_limited_total{kind=\"device\"} 1"));
        assert!(
            text.contains("certbound_cert_renewals_total{transport=\"mqtt\",outcome=\"ok\"} 1")
        );
        assert!(text.contains(
            "certbound_token_request_seconds_bucket{transport=\"coap\",le=\"0.0005\"} 1"
        ));
        assert!(text.contains(
            "certbound_token_request_seconds_bucket{transport=\"coap\",le=\"0.0025\"} 2"
        ));
        assert!(
            text.contains("certbound_token_request_seconds_bucket{transport=\"https\",le=\"1\"} 0")
        );
        assert!(
            text.contains(
                "certbound_token_request_seconds_bucket{transport=\"https\",le=\"+Inf\"} 1"
            )
        );
        assert!(text.contains("certbound_signing_keys_published 2"));
        assert!(!text.contains("certbound_mqtt_sessions"));
        m.pruned(&crate::store::PruneReport {
            issued_tokens: 7,
            status_lists: 0,
            audit_events: 2,
            client_assertions: 0,
            dry_run: false,
        });
        m.pruned(&crate::store::PruneReport {
            issued_tokens: 3,
            ..Default::default()
        });
        let text = m.render(2);
        assert!(text.contains("certbound_pruned_rows_total{table=\"issued_tokens\"} 10"));
        assert!(text.contains("certbound_pruned_rows_total{table=\"audit_events\"} 2"));
        assert!(!text.contains("certbound_pruned_rows_total{table=\"status_lists\"}"));
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
