//! `certbound demo`: the whole system in one process on embedded defaults,
//! built on the fleet simulator (`firmware-sim`): a broker (CoAP, embedded
//! MQTT with mTLS, HTTPS), a few hundred devices over MQTT and CoAP sending
//! signed telemetry to a backend that verifies every message offline, one
//! certificate renewal wave (60-second certificates), one revocation whose
//! telemetry is then refused, and a backend service getting a JWT by client
//! credentials.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use firmware_sim::fleet::SIM_API;
use firmware_sim::live::Printer;
use firmware_sim::{BrokerTarget, RevokePlan, SimOptions, Transport, TransportMix};

use crate::output::now;

/// Shortest demo: the renewal wave of 60-second certificates comes 14-26 s in.
const MIN_DURATION: Duration = Duration::from_secs(30);

pub async fn run(
    devices: usize,
    duration: Duration,
    keep: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        (2..=20_000).contains(&devices),
        "--devices must be between 2 and 20000"
    );
    anyhow::ensure!(
        duration >= MIN_DURATION,
        "--duration must be at least 30s: the certificate renewal wave comes 14-26 s into the run"
    );
    let mut options = SimOptions::new(devices);
    options.transports = TransportMix::parse("mqtt,coap").map_err(anyhow::Error::msg)?;
    options.duration = duration;
    options.telemetry_every = Duration::from_secs(2);
    options.cert_lifetime = Some(Duration::from_secs(60));
    options.token_lifetime = Duration::from_secs(60);
    options.revoke = Some(RevokePlan {
        count: 1,
        at: duration.mul_f64(0.4),
    });
    options.service_jwt_at = Some(duration.mul_f64(0.2));
    // A kept directory gets a new set of devices on every run (the previous
    // ones' 60-second certificates have expired): sensor-1.., sensor2-1.., ...
    options.prefix = "sensor-".into();
    if let Some(dir) = &keep {
        let mut n = 1;
        while dir
            .join("sim-devices")
            .join(options.prefix.trim_end_matches('-'))
            .exists()
        {
            n += 1;
            options.prefix = format!("sensor{n}-");
        }
    }
    options.broker = BrokerTarget::Embedded { keep };

    println!("certbound demo: everything in one process, on embedded defaults\n");
    println!(
        "  1. a CA hierarchy, token-signing key and database in a fresh data directory;\n     \
         {devices} devices, each with its own P-256 key and a 60-second certificate"
    );
    println!(
        "  2. the broker on free loopback ports: CoAP (UDP), MQTT (mTLS, per-device topic ACL), HTTPS"
    );
    println!(
        "  3. devices (half MQTT, half CoAP) get certificate-bound CWTs and send signed telemetry\n     \
         every 2 s; a backend verifies every message offline (signature, aud, scope, exp,\n     \
         proof of possession, sequence, revocation via status lists)"
    );
    println!(
        "  4. while it runs: certificates renewed at ~2/3 of their life with new keys (the wave),\n     \
         tokens renewed, a backend service gets a JWT over HTTPS with its certificate at {:.0} s,\n     \
         and one device is revoked at {:.0} s — its telemetry must then be refused\n",
        duration.mul_f64(0.2).as_secs_f64(),
        duration.mul_f64(0.4).as_secs_f64()
    );
    let printer = Printer::stderr(Duration::from_secs(5));
    let outcome = firmware_sim::run(&options, &|f| printer.show(f)).await?;
    let report = &outcome.report;
    let t = &report.totals;
    println!("\nSummary\n\n{}", report.summary());

    if let Some(token) = &outcome.sample_token {
        println!("One device token, decoded (`certbound token inspect`):\n");
        println!(
            "{}",
            certbound_verify::inspect(
                token,
                Some(&outcome.keys),
                Some(SIM_API),
                Some(&outcome.issuer),
                now(),
                60
            )
        );
    }
    let revoked_refused = t
        .rejected_expected
        .get("telemetry:revoked")
        .copied()
        .unwrap_or(0);
    let jwt_ok = t.events.iter().any(|e| e.contains("got a JWT"));
    let mqtt = report
        .transports
        .get(Transport::Mqtt.as_str())
        .copied()
        .unwrap_or(0);
    let coap = report
        .transports
        .get(Transport::Coap.as_str())
        .copied()
        .unwrap_or(0);
    let checks = [
        (report.ok, "no unexpected rejection".to_string()),
        (
            t.telemetry_accepted > 0,
            format!(
                "{} telemetry messages verified and accepted",
                t.telemetry_accepted
            ),
        ),
        (
            t.certs_renewed > 0,
            format!("{} certificates renewed with new keys", t.certs_renewed),
        ),
        (
            revoked_refused > 0,
            format!(
                "revoked device {}: {revoked_refused} message(s) refused by the backend",
                outcome.revoked.join(", ")
            ),
        ),
        (
            jwt_ok,
            "backend service JWT by client credentials".to_string(),
        ),
        (
            mqtt > 0 && coap > 0,
            format!("{mqtt} devices over MQTT, {coap} over CoAP"),
        ),
    ];
    println!("Checks:");
    let mut all = true;
    for (ok, text) in &checks {
        all &= ok;
        println!("  {} {text}", if *ok { "✓" } else { "✗" });
    }
    if let BrokerTarget::Embedded { keep: Some(dir) } = &options.broker {
        println!("\nData directory kept in {}", dir.display());
    }
    println!("\n{}", if all { "Demo OK." } else { "Demo FAILED." });
    Ok(if all {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
