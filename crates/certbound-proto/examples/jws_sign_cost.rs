//! Signing cost per JWT for each algorithm an API may ask for (ES256,
//! RS256, PS256 with 2048-bit keys, EdDSA), and the verification cost, on
//! this machine. A quick figure, not a benchmark harness (see benches/ and
//! BENCHMARKS.md for those):
//!
//! ```text
//! cargo run --release -p certbound-proto --features aws-lc --example jws_sign_cost
//! ```

use std::hint::black_box;
use std::time::Instant;

use certbound_proto::jose::{self, JwsAlg};
use certbound_proto::jwt::{JwtAudience, JwtClaims, UnverifiedJwt, sign_jwt_with};

fn main() -> Result<(), certbound_proto::ProtoError> {
    let claims = JwtClaims {
        iss: "https://auth.example.com".into(),
        sub: "cb_0123456789abcdef".into(),
        aud: JwtAudience(vec!["https://reports.example.com".into()]),
        exp: 2_000_003_600,
        iat: 2_000_000_000,
        nbf: None,
        jti: "2q8mSx3bIe0iMx0S6G2wWg".into(),
        client_id: "cb_0123456789abcdef".into(),
        scope: Some("reports:read".into()),
        cnf: None,
        status: None,
    };
    println!("| alg | token bytes | sign µs/token | verify µs/token |");
    println!("|---|---:|---:|---:|");
    for alg in JwsAlg::ALL {
        let (signer, _) = jose::generate(alg)?;
        let key = signer.jws_key();
        let kid = key.kid();
        let token = sign_jwt_with(&claims, &kid, signer.as_ref())?;
        let per = |n: u32, f: &mut dyn FnMut()| {
            for _ in 0..n / 10 {
                f();
            }
            let start = Instant::now();
            for _ in 0..n {
                f();
            }
            start.elapsed().as_secs_f64() * 1e6 / f64::from(n)
        };
        let n = if alg.is_rsa() { 2_000 } else { 20_000 };
        let sign = per(n, &mut || {
            black_box(sign_jwt_with(black_box(&claims), &kid, signer.as_ref()).ok());
        });
        let verify = per(n, &mut || {
            let parsed = UnverifiedJwt::parse(black_box(&token), 8192).ok();
            black_box(parsed.map(|p| p.verify_key(&key).is_ok()));
        });
        println!("| {alg} | {} | {sign:.1} | {verify:.1} |", token.len());
    }
    Ok(())
}
