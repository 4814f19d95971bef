//! The live view: one [`Frame`] per second while the fleet runs. On a
//! terminal it redraws a small block in place; otherwise it prints one line
//! every few seconds (CI logs stay readable).

use std::io::Write;
use std::time::Duration;

use crate::stats::Snapshot;

/// What the live view shows at one moment.
#[derive(Debug, Clone)]
pub struct Frame {
    /// Phase: `provisioning`, `running`, `draining`.
    pub phase: &'static str,
    /// Since the fleet started.
    pub elapsed: Duration,
    /// Planned run time.
    pub duration: Duration,
    /// Devices in the fleet.
    pub devices: usize,
    /// Provisioning progress (done, total) during `provisioning`.
    pub provisioned: (u64, u64),
    /// Counters.
    pub stats: Snapshot,
}

impl Frame {
    /// A one-line summary.
    pub fn one_line(&self) -> String {
        if self.phase == "provisioning" {
            return format!(
                "provisioning {}/{} devices",
                self.provisioned.0, self.provisioned.1
            );
        }
        let s = &self.stats;
        let p99 = s.latency.get("telemetry").map_or(0.0, |l| l.p99_ms);
        format!(
            "t={:>4.0}s/{:.0}s connected {}/{} | tokens {}+{} renewed | certs renewed {} | telemetry sent {} accepted {} | rejected expected {} UNEXPECTED {} | retries {} | p99 {:.0} ms",
            self.elapsed.as_secs_f64(),
            self.duration.as_secs_f64(),
            s.connected,
            self.devices,
            s.tokens_issued,
            s.tokens_renewed,
            s.certs_renewed,
            s.telemetry_sent,
            s.telemetry_accepted,
            s.expected_total(),
            s.unexpected_total(),
            s.retries,
            p99,
        )
    }

    /// A multi-line block for terminals.
    pub fn block(&self) -> Vec<String> {
        if self.phase == "provisioning" {
            let (done, total) = self.provisioned;
            return vec![format!("  provisioning {}", bar(done, total.max(1), 30))];
        }
        let s = &self.stats;
        let lat = |op: &str| {
            s.latency.get(op).map_or("-".to_string(), |l| {
                format!("p50 {:.1} / p99 {:.1} ms", l.p50_ms, l.p99_ms)
            })
        };
        vec![
            format!(
                "  {} {} {:.0}/{:.0} s",
                self.phase,
                bar(
                    self.elapsed.as_millis() as u64,
                    self.duration.as_millis().max(1) as u64,
                    30
                ),
                self.elapsed.as_secs_f64().min(self.duration.as_secs_f64()),
                self.duration.as_secs_f64()
            ),
            format!(
                "  devices connected {:>6}/{:<6}  tokens issued {:>7}  renewed {:>7}  certificates renewed {:>6}",
                s.connected, self.devices, s.tokens_issued, s.tokens_renewed, s.certs_renewed
            ),
            format!(
                "  telemetry sent {:>9}  accepted {:>9}  rejected: expected {:>5}  UNEXPECTED {:>5}  retries {:>5}",
                s.telemetry_sent,
                s.telemetry_accepted,
                s.expected_total(),
                s.unexpected_total(),
                s.retries
            ),
            format!(
                "  latency  token {}   telemetry {}   renewal {}",
                lat("token"),
                lat("telemetry"),
                lat("renewal")
            ),
            format!("  rejected by reason: {}", by_reason(s)),
            format!(
                "  last event: {}",
                s.events.last().map_or("-", String::as_str)
            ),
        ]
    }
}

/// `reason=count` pairs, unexpected ones first and marked, at most six.
fn by_reason(s: &Snapshot) -> String {
    let mut parts: Vec<String> = s
        .rejected_unexpected
        .iter()
        .map(|(k, v)| format!("{k}={v} UNEXPECTED"))
        .collect();
    parts.extend(s.rejected_expected.iter().map(|(k, v)| format!("{k}={v}")));
    if parts.is_empty() {
        return "-".into();
    }
    let more = parts.len().saturating_sub(6);
    parts.truncate(6);
    if more > 0 {
        parts.push(format!("(+{more} more)"));
    }
    parts.join(", ")
}

fn bar(done: u64, total: u64, width: usize) -> String {
    let filled = ((done.min(total) as f64 / total as f64) * width as f64) as usize;
    format!("[{}{}]", "#".repeat(filled), ".".repeat(width - filled))
}

/// Draws frames on stderr: in place on a terminal, a line every `every` otherwise.
#[derive(Debug)]
pub struct Printer {
    tty: bool,
    every: Duration,
    last_line: std::sync::Mutex<Option<std::time::Instant>>,
    lines_drawn: std::sync::atomic::AtomicUsize,
}

impl Printer {
    /// A printer for stderr: in place on a terminal, else a line every `every`.
    pub fn stderr(every: Duration) -> Self {
        use std::io::IsTerminal;
        Self {
            tty: std::io::stderr().is_terminal(),
            every,
            last_line: std::sync::Mutex::new(None),
            lines_drawn: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// Shows one frame.
    pub fn show(&self, frame: &Frame) {
        let mut err = std::io::stderr().lock();
        if self.tty {
            let up = self.lines_drawn.load(std::sync::atomic::Ordering::Relaxed);
            if up > 0 {
                let _ = write!(err, "\x1b[{up}A");
            }
            let lines = frame.block();
            for l in &lines {
                let _ = writeln!(err, "\x1b[2K{l}");
            }
            self.lines_drawn
                .store(lines.len(), std::sync::atomic::Ordering::Relaxed);
        } else {
            let mut last = self
                .last_line
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if last.is_none_or(|t| t.elapsed() >= self.every) || frame.phase == "done" {
                *last = Some(std::time::Instant::now());
                let _ = writeln!(err, "{}", frame.one_line());
            }
        }
    }

    /// Forgets the drawn block (the next frame starts below what was printed since).
    pub fn detach(&self) {
        self.lines_drawn
            .store(0, std::sync::atomic::Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_show_the_counters() {
        let mut stats = Snapshot {
            connected: 7,
            tokens_issued: 9,
            tokens_renewed: 3,
            certs_renewed: 2,
            telemetry_sent: 100,
            telemetry_accepted: 98,
            ..Snapshot::default()
        };
        stats
            .rejected_expected
            .insert("telemetry:revoked".into(), 2);
        stats.events.push("t= 3.0s revoked sim-9 (coap)".into());
        let frame = Frame {
            phase: "running",
            elapsed: Duration::from_secs(15),
            duration: Duration::from_secs(60),
            devices: 10,
            provisioned: (0, 0),
            stats,
        };
        let line = frame.one_line();
        for part in [
            "t=  15s/60s",
            "connected 7/10",
            "tokens 9+3",
            "sent 100 accepted 98",
            "expected 2 UNEXPECTED 0",
        ] {
            assert!(line.contains(part), "{part}: {line}");
        }
        let block = frame.block().join("\n");
        assert!(
            block.contains("[#######.......................]"),
            "{block}"
        );
        assert!(block.contains("revoked sim-9"), "{block}");
        assert!(
            block.contains("rejected by reason: telemetry:revoked=2"),
            "{block}"
        );
        let provisioning = Frame {
            phase: "provisioning",
            provisioned: (5, 10),
            ..frame
        };
        assert_eq!(provisioning.one_line(), "provisioning 5/10 devices");
        assert!(provisioning.block()[0].contains("[###############...............]"));
    }
}
