//! HTTPS-side rows: JWT sign/verify, status-list build and check, and the
//! OAuth token endpoint over real TLS on loopback.

use std::hint::black_box;
use std::time::{Duration, Instant};

use certbound_broker::server::{ServeOptions, start};
use certbound_proto::cbor::Limits;
use certbound_proto::crypto::{AwsLcVerifier, Signer};
use certbound_proto::jwt::{JwtAudience, JwtClaims, JwtConfirmation, UnverifiedJwt, sign_jwt};
use certbound_proto::status_list::{
    StatusList, StatusListToken, StatusRef, UnverifiedStatusList, mint_status_list,
};
use certbound_registry::config::DataDir;
use certbound_registry::registry::Registry;
use certbound_verify::http::{HttpsFetcher, client_tls_config};

use crate::Bench;
use crate::harness::Run;
use crate::setup::{Fixture, unix_now};

const JWT_API: &str = "https://reports.certbound.bench";

/// JWT and status-list rows (in memory, single thread).
pub fn tokens(bench: &mut Bench, fx: &Fixture) -> anyhow::Result<()> {
    let now = unix_now();
    let kid = fx.signing.kid.clone();
    let signer = &fx.signing.signer;
    let claims = JwtClaims {
        iss: crate::setup::ISSUER.into(),
        sub: "cb_0123456789abcdef".into(),
        aud: JwtAudience(vec![JWT_API.into()]),
        exp: now + 3600,
        iat: now,
        nbf: None,
        jti: "2q8mSx3bIe0iMx0S6G2wWg".into(),
        client_id: "cb_0123456789abcdef".into(),
        scope: Some("reports:read".into()),
        cnf: Some(JwtConfirmation {
            x5t_s256: "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2".into(),
        }),
        status: Some(certbound_proto::jwt::JwtStatus {
            status_list: StatusRef {
                idx: 4711,
                uri: "https://127.0.0.1:8443/status/1".into(),
            },
        }),
    };
    let jwt = sign_jwt(&claims, &kid, signer)?;
    let verifier = AwsLcVerifier::new(signer.public_key())?;
    bench.run_fn(
        "JWT sign (jwt::sign_jwt, RFC 9068)",
        &format!("JSON + base64url + ES256; {} B", jwt.len()),
        || sign_jwt(black_box(&claims), &kid, signer),
    );
    bench.run_fn(
        "JWT verify (UnverifiedJwt::parse + verify + validate)",
        "strict parse (duplicate keys refused) + ES256 + claims",
        || -> anyhow::Result<()> {
            let parsed = UnverifiedJwt::parse(black_box(&jwt), 8192)?;
            let c = parsed.verify(&verifier)?;
            c.validate(crate::setup::ISSUER, JWT_API, now, 60)?;
            Ok(())
        },
    );
    other_algorithms(bench, &claims, now)?;

    // A full default list: 65 536 entries at 2 bits, 1 % revoked.
    let uri = "https://127.0.0.1:8443/status/1";
    let build = || -> anyhow::Result<Vec<u8>> {
        let mut list = StatusList::new(2, 65_536)?;
        for i in (0..65_536).step_by(100) {
            list.set(i, 1)?;
        }
        Ok(mint_status_list(
            &StatusListToken {
                sub: uri.into(),
                iat: now,
                exp: Some(now + 300),
                ttl: Some(60),
                list,
            },
            &kid,
            signer,
        )?)
    };
    let signed = build()?;
    bench.run_fn(
        "status list build: 65 536 entries, 1 % revoked",
        &format!("set + zlib + COSE_Sign1 ES256; {} B signed", signed.len()),
        build,
    );
    bench.run_fn(
        "status list check: parse + verify + inflate + read",
        "what a verifier does once per list per ttl",
        || -> anyhow::Result<u8> {
            let parsed = UnverifiedStatusList::parse(black_box(&signed), Limits::default())?;
            let token = parsed.verify(&verifier, Limits::default(), uri, now, 60, 1 << 20)?;
            Ok(token.list.status(4700)?)
        },
    );
    Ok(())
}

/// The token endpoint over HTTPS, one new TLS connection per request (the
/// fetcher does not keep connections alive), sequential.
pub fn endpoint(
    bench: &mut Bench,
    fx: &Fixture,
    rt: &tokio::runtime::Runtime,
) -> anyhow::Result<()> {
    let name = "POST /oauth/token over HTTPS (new TLS 1.3 connection each)";
    if !bench.wants(name) {
        return Ok(());
    }
    let (client_id, secret) = rt.block_on(async {
        let reg = Registry::open(&fx.dir).await?;
        reg.create_api_with_format(JWT_API, "reports:read", 3600, "jwt")
            .await?;
        let c = reg
            .create_client(
                "bench",
                &[(JWT_API.into(), "reports:read".into())],
                None,
                true,
            )
            .await;
        reg.close().await;
        let c = c?;
        anyhow::Ok((c.client_id, c.client_secret.unwrap_or_default()))
    })?;
    let broker = rt.block_on(start(
        &fx.dir,
        ServeOptions {
            coap_listen: Some("127.0.0.1:0".parse()?),
            mqtt_listen: Some("127.0.0.1:0".parse()?),
            https_listen: Some("127.0.0.1:0".parse()?),
        },
    ))?;
    let url = format!("{}/oauth/token", broker.https_url().unwrap_or_default());
    let ca = std::fs::read_to_string(DataDir::new(&fx.dir).pki().chain())?;
    let fetcher = HttpsFetcher::new(
        client_tls_config(&ca, None)?,
        Duration::from_secs(10),
        1 << 16,
    );
    let form = [("grant_type", "client_credentials"), ("audience", JWT_API)];
    let first = rt.block_on(fetcher.post_form(&url, &form, Some((&client_id, &secret))))?;
    anyhow::ensure!(
        first.status == 200,
        "token endpoint answered {}",
        first.status
    );
    bench.run(
        name,
        "client_secret_basic, JWT; TLS handshake + SQLite + sign, sequential",
        |n| {
            let t = Instant::now();
            rt.block_on(async {
                for _ in 0..n {
                    match fetcher
                        .post_form(&url, &form, Some((&client_id, &secret)))
                        .await
                    {
                        Ok(r) if r.status == 200 => drop(black_box(r)),
                        Ok(r) => panic!("token endpoint answered {}", r.status),
                        Err(e) => panic!("token endpoint failed: {e}"),
                    }
                }
            });
            Run {
                elapsed: t.elapsed(),
                ops: n,
            }
        },
    );
    rt.block_on(broker.shutdown());
    Ok(())
}

/// JWT sign and verify with the other algorithms an API may ask for
/// (RS256 and PS256 with 2048-bit keys, EdDSA), same claims as ES256.
fn other_algorithms(bench: &mut Bench, claims: &JwtClaims, now: u64) -> anyhow::Result<()> {
    use certbound_proto::jose::{self, JwsAlg};
    use certbound_proto::jwt::sign_jwt_with;
    for alg in [JwsAlg::Rs256, JwsAlg::Ps256, JwsAlg::EdDsa] {
        let (signer, _) = jose::generate(alg)?;
        let key = signer.jws_key();
        let kid = key.kid();
        let jwt = sign_jwt_with(claims, &kid, signer.as_ref())?;
        bench.run_fn(
            &format!("JWT sign {alg} (jwt::sign_jwt_with)"),
            &format!("JSON + base64url + {alg}; {} B", jwt.len()),
            || sign_jwt_with(black_box(claims), &kid, signer.as_ref()),
        );
        bench.run_fn(
            &format!("JWT verify {alg} (parse + verify_key + validate)"),
            "strict parse + signature (key decides the alg) + claims",
            || -> anyhow::Result<()> {
                let parsed = UnverifiedJwt::parse(black_box(&jwt), 8192)?;
                let c = parsed.verify_key(&key)?;
                c.validate(crate::setup::ISSUER, JWT_API, now, 60)?;
                Ok(())
            },
        );
    }
    Ok(())
}
