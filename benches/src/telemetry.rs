//! Backend telemetry verification against the raw ES256 verification rate,
//! one thread, same run: a token verified once and cached, then one
//! proof-of-possession signature per message (`TelemetryVerifier::verify`:
//! envelope parse, token cache hit with its claims re-checked, the body
//! signature with the token's `cnf` key, the `cti` binding, the replay
//! window).

use std::hint::black_box;
use std::time::{Duration, Instant};

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED, ParsedPublicKey};
use certbound_proto::crypto::Signer as _;
use certbound_proto::telemetry::{TelemetryPayload, seal};
use certbound_proto::token;
use certbound_verify::{TelemetryConfig, TelemetryVerifier};

use crate::setup::{Fixture, unix_now};

/// Messages per round (each signed beforehand, with increasing `seq`).
const MESSAGES: usize = 20_000;
const ROUNDS: usize = 5;

/// The figures of one run.
pub struct TelemetryRow {
    /// Median per message over the rounds.
    pub per_message: Duration,
    /// Median raw aws-lc-rs verification of the same signed bodies.
    pub raw_verify: Duration,
    pub envelope_bytes: usize,
}

impl TelemetryRow {
    pub fn print(&self) {
        let rate = |d: Duration| 1.0 / d.as_secs_f64();
        println!("\n### Backend telemetry verification (one thread, token cached)\n");
        println!("| figure, same run | µs per message | messages/s per core |");
        println!("|---|---:|---:|");
        println!(
            "| raw ES256 verify of the signed body, aws-lc-rs `ParsedPublicKey` (baseline) | {:.1} | {:.0} |",
            self.raw_verify.as_secs_f64() * 1e6,
            rate(self.raw_verify)
        );
        println!(
            "| `TelemetryVerifier::verify`, {} B envelopes | {:.1} | {:.0} |",
            self.envelope_bytes,
            self.per_message.as_secs_f64() * 1e6,
            rate(self.per_message)
        );
        println!(
            "\nTelemetry messages per second / raw ES256 verifications per second: **{:.2}** (target >= 0.85).",
            self.raw_verify.as_secs_f64() / self.per_message.as_secs_f64()
        );
    }
}

pub fn compare(fx: &Fixture) -> anyhow::Result<TelemetryRow> {
    let now = unix_now();
    let claims = fx.claims(0, now);
    let cwt = token::mint(&claims, &fx.signing.kid, &fx.signing.signer)?;
    let device = &fx.devices[0];
    let cti = claims.cti.unwrap_or_default();
    eprintln!("  running: telemetry verification ({MESSAGES} signed messages x {ROUNDS})");
    let envelopes = (1..=MESSAGES as u64)
        .map(|seq| {
            let payload = TelemetryPayload {
                seq,
                timestamp_ms: now * 1000 + seq,
                data: br#"{"t":21.5,"h":40}"#.to_vec(),
                token_cti: cti.clone(),
            };
            seal(&cwt, &payload, device.signer())
        })
        .collect::<Result<Vec<_>, _>>()?;
    // The baseline: the device key parsed once, 2 000 distinct messages of
    // a body's size, each with its own signature by the device key.
    let sec1 = device.signer().public_key().to_sec1();
    let parsed = ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &sec1)
        .map_err(|e| anyhow::anyhow!("aws-lc public key: {e}"))?;
    let signed: Vec<(Vec<u8>, [u8; 64])> = (0..2_000u32)
        .map(|i| {
            let mut message = vec![0x5a; 100];
            message[..4].copy_from_slice(&i.to_be_bytes());
            let sig = device.signer().sign(&message)?;
            Ok((message, sig))
        })
        .collect::<Result<_, certbound_proto::ProtoError>>()?;

    let mut raw = Vec::new();
    let mut per_message = Vec::new();
    for _ in 0..ROUNDS {
        let started = Instant::now();
        for _ in 0..(MESSAGES / signed.len()) {
            for (tbs, sig) in &signed {
                parsed
                    .verify_sig(black_box(tbs), black_box(sig))
                    .map_err(|e| anyhow::anyhow!("aws-lc verify: {e}"))?;
            }
        }
        raw.push(started.elapsed() / MESSAGES as u32);

        let verifier = TelemetryVerifier::new(fx.token_verifier(), TelemetryConfig::default());
        // The token is verified in full once (the first message), then cached.
        verifier.verify(&envelopes[0], Some(device.device_id()), now)?;
        let started = Instant::now();
        for envelope in &envelopes[1..] {
            black_box(verifier.verify(black_box(envelope), Some(device.device_id()), now)?);
        }
        per_message.push(started.elapsed() / (MESSAGES as u32 - 1));
    }
    raw.sort();
    per_message.sort();
    Ok(TelemetryRow {
        per_message: per_message[ROUNDS / 2],
        raw_verify: raw[ROUNDS / 2],
        envelope_bytes: envelopes[0].len(),
    })
}
