//! The `certbound_coap_*` metrics: counters and gauges of the CoAP server,
//! read from its [`ServerStats`] when `/metrics` is scraped.

use std::fmt::Write as _;

use certbound_coap::ServerStats;

/// Appends the CoAP metrics to `out` (text exposition format 0.0.4).
pub(crate) fn render(out: &mut String, s: &ServerStats) {
    let _ = writeln!(
        out,
        "# HELP certbound_coap_datagrams_total CoAP datagrams received, and what became of those not handled normally."
    );
    let _ = writeln!(out, "# TYPE certbound_coap_datagrams_total counter");
    for (outcome, value) in [
        ("received", s.received),
        ("malformed", s.malformed),
        ("duplicate", s.duplicates),
        ("rejected", s.rejected),
        ("dispatched", s.dispatched),
        ("overloaded", s.overloaded),
        ("amplification_dropped", s.amplification_drops),
    ] {
        let _ = writeln!(
            out,
            "certbound_coap_datagrams_total{{outcome=\"{outcome}\"}} {value}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP certbound_coap_echo_total Echo option (RFC 9175) round trips: answers replaced by a 4.01 challenge, addresses verified, Echo values refused (stale, forged, other address)."
    );
    let _ = writeln!(out, "# TYPE certbound_coap_echo_total counter");
    for (event, value) in [
        ("challenge", s.echo_challenges),
        ("verified", s.echo_verified),
        ("refused", s.echo_refused),
    ] {
        let _ = writeln!(
            out,
            "certbound_coap_echo_total{{event=\"{event}\"}} {value}"
        );
    }
    for (name, help, value) in [
        (
            "certbound_coap_in_flight",
            "CoAP requests being processed now (bounded by [coap] max_in_flight).",
            s.in_flight,
        ),
        (
            "certbound_coap_dedup_entries",
            "CoAP requests remembered for deduplication now.",
            s.dedup_entries,
        ),
        (
            "certbound_coap_dedup_bytes",
            "Bytes of the CoAP deduplication cache now (bounded by [coap] dedup_bytes).",
            s.dedup_bytes,
        ),
        (
            "certbound_coap_verified_addresses",
            "Source addresses verified by an Echo round trip, remembered now.",
            s.verified_addresses,
        ),
    ] {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} gauge");
        let _ = writeln!(out, "{name} {value}");
    }
}
