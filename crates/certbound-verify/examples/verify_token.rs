//! Inspects a certbound access token against a broker's JWKS.
//!
//! ```text
//! cargo run -p certbound-verify --example verify_token -- jwks.json <token hex|base64> [audience] [issuer]
//! ```
//!
//! Prints every check and exits with status 1 when the token is not valid.

use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use certbound_verify::{DEFAULT_LEEWAY, KeySet, decode_token_text, inspect};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [jwks_path, token_text, rest @ ..] = args.as_slice() else {
        eprintln!("usage: verify_token <jwks.json> <token hex|base64> [audience] [issuer]");
        return ExitCode::from(2);
    };
    let keys = match std::fs::read_to_string(jwks_path)
        .map_err(|e| format!("cannot read {jwks_path}: {e}"))
        .and_then(|json| KeySet::from_jwks(&json).map_err(|e| e.to_string()))
    {
        Ok(keys) => keys,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let token = match decode_token_text(token_text) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    // The library never reads the clock; the caller passes the time in.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let audience = rest.first().map(String::as_str);
    let issuer = rest.get(1).map(String::as_str);
    let report = inspect(&token, Some(&keys), audience, issuer, now, DEFAULT_LEEWAY);
    println!("{report}");
    if report.valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
