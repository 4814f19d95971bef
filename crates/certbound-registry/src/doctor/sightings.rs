//! Doctor checks 9 and 10, read from the device token audit trail
//! (`token.issued` / `token.refused`, whose detail starts
//! `transport=T[ peer=IP][ x5t=HEX]`, as the broker's
//! `token_service::audit_origin` writes it): one device certificate used
//! from two addresses alternately (a cloned identity), and revoked or
//! suspended devices that keep sending requests.

use std::collections::BTreeMap;

use super::{
    CHECK_CLONED, CHECK_REVOKED_CONNECTED, DoctorOptions, Finding, Severity, dir_arg, name_list,
    shell_quote,
};
use crate::error::RegistryError;
use crate::registry::Registry;
use crate::store::{AuditEvent, DeviceStatus};

/// The value of `key=` in the origin prefix of an audit detail
/// (`transport=T peer=IP x5t=HEX`; the words after it, which may echo what
/// the device sent, are not read).
fn field<'a>(detail: &'a str, key: &str) -> Option<&'a str> {
    let origin = |w: &&str| {
        ["transport=", "peer=", "x5t="]
            .iter()
            .any(|p| w.starts_with(p))
    };
    detail.split(' ').take_while(origin).find_map(|word| {
        word.strip_prefix(key)
            .and_then(|rest| rest.strip_prefix('='))
            .filter(|v| !v.is_empty())
    })
}

/// `YYYY-MM-DD HH:MM:SS UTC` of Unix milliseconds.
fn utc(ts_ms: u64) -> String {
    let secs = ts_ms / 1000;
    let days = i64::try_from(secs / 86_400).unwrap_or(i64::MAX);
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

fn is_token_event(e: &AuditEvent) -> bool {
    (e.action == "token.issued" || e.action == "token.refused") && e.subject != "(unauthenticated)"
}

// === 9. cloned credentials ===

/// A use of a device certificate from an address.
struct Use<'a> {
    ts_ms: u64,
    peer: &'a str,
    x5t: Option<&'a str>,
}

/// The first A, B, A alternation of addresses within `window_ms`: the
/// three uses. A device that moved (A, A, B, B) has none.
fn alternation<'u, 'a>(uses: &'u [Use<'a>], window_ms: u64) -> Option<[&'u Use<'a>; 3]> {
    for (k, last) in uses.iter().enumerate() {
        let mut other: Option<&Use<'a>> = None;
        for earlier in uses[..k].iter().rev() {
            if last.ts_ms.saturating_sub(earlier.ts_ms) > window_ms {
                break;
            }
            match other {
                None if earlier.peer != last.peer => other = Some(earlier),
                Some(b) if earlier.peer == last.peer => return Some([earlier, b, last]),
                _ => {}
            }
        }
    }
    None
}

pub(super) async fn check_cloned(
    reg: &Registry,
    opts: &DoctorOptions,
    out: &mut Vec<Finding>,
) -> Result<(), RegistryError> {
    let events = reg.store.recent_audit(None, opts.audit_window).await?;
    // Only requests that proved possession of the device key count: issued,
    // or refused on policy (not a bad signature, replay or revoked
    // certificate, all `invalid_client`: anyone can send those).
    let mut by_device: BTreeMap<&str, Vec<Use<'_>>> = BTreeMap::new();
    for e in &events {
        if !is_token_event(e) || e.outcome == "invalid_client" {
            continue;
        }
        if let Some(peer) = field(&e.detail, "peer") {
            by_device.entry(&e.subject).or_default().push(Use {
                ts_ms: e.ts_ms,
                peer,
                x5t: field(&e.detail, "x5t"),
            });
        }
    }
    let dir = dir_arg(reg);
    let window_ms = opts.clone_window_secs.saturating_mul(1000);
    for (device, uses) in &by_device {
        let Some([a, b, a2]) = alternation(uses, window_ms) else {
            continue;
        };
        let mut peers: Vec<String> = Vec::new();
        for u in uses {
            if !peers.iter().any(|p| p == u.peer) {
                peers.push(u.peer.to_string());
            }
        }
        let cert = a2
            .x5t
            .map(|t| {
                format!(
                    "certificate x5t {}...",
                    t.chars().take(16).collect::<String>()
                )
            })
            .unwrap_or_else(|| "certificate".into());
        out.push(Finding {
            check: CHECK_CLONED,
            severity: Severity::Error,
            message: format!(
                "device {device}'s {cert} is in use from {} addresses at once ({}): requests came \
                 from {} at {}, {} at {}, then {} again at {} (within {} s); a copy of its key \
                 defeats the certificate binding",
                peers.len(),
                name_list(&peers),
                a.peer,
                utc(a.ts_ms),
                b.peer,
                utc(b.ts_ms),
                a2.peer,
                utc(a2.ts_ms),
                opts.clone_window_secs
            ),
            fix: format!(
                "certbound device revoke --dir {dir} {}, then provision a new identity for the \
                 genuine device (`certbound device provision --dir {dir} --id NEW-ID --group ...`) \
                 and find the copy (addresses above)",
                shell_quote(device)
            ),
        });
    }
    Ok(())
}

// === 10. revoked devices still connected ===

/// What a revoked or suspended device did after that.
#[derive(Default)]
struct Afterlife {
    /// `device.revoked` or `device.suspended`, and when.
    status: String,
    since_ms: u64,
    requests: usize,
    last_ms: u64,
    transports: Vec<String>,
    peers: Vec<String>,
}

fn push_new(list: &mut Vec<String>, value: Option<&str>) {
    if let Some(v) = value
        && !list.iter().any(|x| x == v)
    {
        list.push(v.to_string());
    }
}

pub(super) async fn check_revoked_connected(
    reg: &Registry,
    opts: &DoctorOptions,
    out: &mut Vec<Finding>,
) -> Result<(), RegistryError> {
    let events = reg.store.recent_audit(None, opts.audit_window).await?;
    // In log order: a request counts when it follows the status change.
    let mut state: BTreeMap<String, Afterlife> = BTreeMap::new();
    for e in &events {
        match e.action.as_str() {
            "device.revoked" | "device.suspended" => {
                state.insert(
                    e.subject.clone(),
                    Afterlife {
                        status: e.action.clone(),
                        since_ms: e.ts_ms,
                        ..Afterlife::default()
                    },
                );
            }
            "device.resumed" => {
                state.remove(&e.subject);
            }
            "token.refused" | "cert.renewal_refused" => {
                if let Some(after) = state.get_mut(&e.subject) {
                    after.requests += 1;
                    after.last_ms = e.ts_ms;
                    push_new(&mut after.transports, field(&e.detail, "transport"));
                    push_new(&mut after.peers, field(&e.detail, "peer"));
                }
            }
            _ => {}
        }
    }
    let dir = dir_arg(reg);
    for (device, after) in state {
        if after.requests == 0 {
            continue;
        }
        // Still revoked or suspended now (not resumed out of the window's sight).
        let still = reg
            .store
            .get_device(&device)
            .await?
            .is_some_and(|d| d.status != DeviceStatus::Active);
        if !still {
            continue;
        }
        let verb = after.status.trim_start_matches("device.");
        let peers = if after.peers.is_empty() {
            String::new()
        } else {
            format!(" from {}", name_list(&after.peers))
        };
        let crl = format!(
            "publish the CRL (`certbound crl --dir {dir} --out crl.pem`; Mosquitto: `crlfile \
             crl.pem` in the TLS listener, then restart it: it reads the CRL at start only)"
        );
        let fix = if after.transports.iter().any(|t| t == "mqtt") {
            format!(
                "disconnect {} at the MQTT server (it does not check revocation of a live \
                 session) and {crl}",
                shell_quote(&device)
            )
        } else {
            format!(
                "its requests are refused, but the device is still out there and running: find \
                 and switch it off, or wipe it; for an MQTT server, {crl}"
            )
        };
        out.push(Finding {
            check: CHECK_REVOKED_CONNECTED,
            severity: Severity::Warning,
            message: format!(
                "device {device} was {verb} at {} but sent {} request(s) since (refused) over {}{peers}; \
                 last seen {}",
                utc(after.since_ms),
                after.requests,
                name_list(&after.transports),
                utc(after.last_ms)
            ),
            fix,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uses(seq: &[(u64, &'static str)]) -> Vec<Use<'static>> {
        seq.iter()
            .map(|&(t, p)| Use {
                ts_ms: t * 1000,
                peer: p,
                x5t: None,
            })
            .collect()
    }

    #[test]
    fn alternation_needs_a_return_within_the_window() {
        let w = 600_000;
        assert!(alternation(&uses(&[(0, "a"), (10, "b"), (20, "a")]), w).is_some());
        assert!(alternation(&uses(&[(0, "a"), (1, "a"), (10, "b"), (20, "b")]), w).is_none());
        // Back to A, but an hour later: a move and a move back.
        assert!(alternation(&uses(&[(0, "a"), (10, "b"), (3600, "a")]), w).is_none());
        assert!(alternation(&uses(&[(0, "a"), (10, "b"), (20, "c"), (30, "b")]), w).is_some());
    }

    #[test]
    fn fields_and_dates() {
        let d = "transport=coap peer=127.0.0.2 x5t=ab12 expires_in=3600 scope=x";
        assert_eq!(field(d, "peer"), Some("127.0.0.2"));
        assert_eq!(field(d, "transport"), Some("coap"));
        assert_eq!(field("transport=mqtt device x is revoked", "peer"), None);
        assert_eq!(
            field("transport=mqtt scopes (a peer=10.0.0.1)", "peer"),
            None
        );
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(1_700_000_000_000), "2023-11-14 22:13:20 UTC");
    }
}
