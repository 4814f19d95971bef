//! `certbound-claim-size`: what custom claims cost in a device CWT (and in
//! the client JWT with the same claims), bytes, for 0, 1, 2 and 4 claims,
//! with private-use integer labels against short text labels. Tokens are
//! minted and signed for real (ES256, aws-lc); sizes do not depend on the
//! key or the time (fixed-width fields), so the figures are exact.
//!
//! ```text
//! cargo run --release -p certbound-bench --bin certbound-claim-size
//! ```
//!
//! The base token is the quick-start device CWT: `sub` `sensor-1`, `aud`
//! `https://telemetry.example.com`, `scope` `telemetry:write`, 16-byte `cti`,
//! compressed `cnf` key, status reference `https://127.0.0.1:8443/status/1`
//! index 4711. Claims, in order: `site` = "berlin", `floor` = 3, `sealed` =
//! true, `model` = "x200".

use certbound_proto::claims::Claims;
use certbound_proto::crypto::{AwsLcSigner, Signer as _};
use certbound_proto::custom_claims::{ClaimValue, CwtLabel};
use certbound_proto::jwt::{JwtAudience, JwtClaims, JwtStatus, sign_jwt_with_custom};
use certbound_proto::status_list::StatusRef;
use certbound_proto::token;

const NOW: u64 = 1_800_000_000;

fn custom() -> Vec<(&'static str, &'static str, i64, ClaimValue)> {
    vec![
        ("site", "site", -65537, ClaimValue::Text("berlin".into())),
        ("floor", "floor", -65538, ClaimValue::Int(3)),
        ("sealed", "sealed", -65539, ClaimValue::Bool(true)),
        ("model", "model", -65540, ClaimValue::Text("x200".into())),
    ]
}

fn base(signer: &AwsLcSigner) -> Claims {
    Claims {
        iss: None,
        sub: Some("sensor-1".into()),
        aud: vec!["https://telemetry.example.com".into()],
        exp: Some(NOW + 3600),
        iat: Some(NOW),
        cti: Some(vec![0xc7; 16]),
        scope: Some("telemetry:write".into()),
        cnf: Some(signer.public_key().clone()),
        status: Some(StatusRef {
            idx: 4711,
            uri: "https://127.0.0.1:8443/status/1".into(),
        }),
        ..Claims::default()
    }
}

fn cwt_size(signer: &AwsLcSigner, kid: &str, n: usize, text_labels: bool) -> anyhow::Result<usize> {
    let mut claims = base(signer);
    for (_, text, int, value) in custom().into_iter().take(n) {
        let label = if text_labels {
            CwtLabel::Text(text.into())
        } else {
            CwtLabel::Int(int)
        };
        claims.set_custom(label.to_cbor(), value.to_cbor())?;
    }
    Ok(token::mint(&claims, kid, signer)?.len())
}

fn jwt_size(signer: &AwsLcSigner, kid: &str, n: usize) -> anyhow::Result<usize> {
    let claims = JwtClaims {
        iss: "https://auth.example.com".into(),
        sub: "billing-service".into(),
        aud: JwtAudience::from("https://telemetry.example.com"),
        exp: NOW + 3600,
        iat: NOW,
        nbf: None,
        jti: "x".repeat(22),
        client_id: "billing-service".into(),
        scope: Some("telemetry:write".into()),
        cnf: None,
        status: Some(JwtStatus {
            status_list: StatusRef {
                idx: 4711,
                uri: "https://127.0.0.1:8443/status/1".into(),
            },
        }),
    };
    let extra: Vec<(String, ClaimValue)> = custom()
        .into_iter()
        .take(n)
        .map(|(name, _, _, v)| (name.to_string(), v))
        .collect();
    Ok(sign_jwt_with_custom(&claims, &extra, kid, signer)?.len())
}

fn main() -> anyhow::Result<()> {
    let (signer, _) = AwsLcSigner::generate()?;
    let kid = signer.public_key().kid();
    println!(
        "| custom claims | device CWT, integer labels (-65537...) | device CWT, text labels | client JWT (same claims, bearer) |"
    );
    println!("|---:|---:|---:|---:|");
    let (c0, t0, j0) = (
        cwt_size(&signer, &kid, 0, false)?,
        cwt_size(&signer, &kid, 0, true)?,
        jwt_size(&signer, &kid, 0)?,
    );
    for n in [0, 1, 2, 4] {
        let (c, t, j) = (
            cwt_size(&signer, &kid, n, false)?,
            cwt_size(&signer, &kid, n, true)?,
            jwt_size(&signer, &kid, n)?,
        );
        println!(
            "| {n} | {c} (+{}) | {t} (+{}) | {j} (+{}) |",
            c - c0,
            t - t0,
            j - j0
        );
    }
    Ok(())
}
