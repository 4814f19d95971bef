//! `certbound token request|inspect`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use certbound_agent::{DeviceIdentity, TokenRequestParams, request_token_coap};
use certbound_proto::EcPublicKey;
use certbound_registry::config::Config;
use certbound_verify::{
    KeySet, Profile, decode_token_text, escape_control, inspect_as, inspect_jwt_as,
};

use crate::cli::TokenCommand;
use crate::output::{now, print_json};

pub async fn run(cmd: TokenCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        TokenCommand::Request {
            dir,
            device_key,
            device_cert,
            aud,
            scope,
            broker,
            issuer_id,
            chain,
            json,
        } => {
            let identity = DeviceIdentity::load(&device_key, &device_cert)?;
            let (broker_addr, issuer) = match (broker, issuer_id) {
                (Some(b), Some(i)) => (b, i),
                (b, i) => {
                    let config = Config::load(&dir.dir).context(
                        "the broker address and issuer id come from the data directory's config; pass --dir, or --broker and --issuer-id",
                    )?;
                    (
                        b.unwrap_or_else(|| config.coap_listen()),
                        i.unwrap_or(config.broker.issuer_id),
                    )
                }
            };
            let client = certbound_coap::Client::connect(broker_addr, Default::default()).await?;
            let mut params = TokenRequestParams::new(issuer, aud);
            params.scope = scope;
            params.send_chain = chain;
            let token = request_token_coap(&client, &identity, &params)
                .await
                .with_context(|| {
                    format!(
                        "requesting a token for {} from coap://{broker_addr}",
                        identity.device_id()
                    )
                })?;
            if json {
                print_json(&serde_json::json!({
                    "access_token": hex::encode(&token.access_token),
                    "size": token.access_token.len(),
                    "expires_in": token.expires_in,
                    "scope": token.scope,
                }))?;
            } else {
                eprintln!(
                    "token for {}: {} bytes, expires in {} s{}",
                    identity.device_id(),
                    token.access_token.len(),
                    token.expires_in,
                    token
                        .scope
                        .map(|s| format!(", granted scope {}", escape_control(&s)))
                        .unwrap_or_default()
                );
                println!("{}", hex::encode(&token.access_token));
            }
            Ok(ExitCode::SUCCESS)
        }
        TokenCommand::Inspect {
            token,
            jwks,
            key,
            aud,
            iss,
            now: at,
            leeway,
            profile,
            json,
        } => {
            let profile = match profile {
                crate::cli::InspectProfile::Certbound => Profile::Certbound,
                crate::cli::InspectProfile::Generic => Profile::Generic,
            };
            let keys = match (jwks, key) {
                (Some(path), _) => Some(load_jwks(&path)?),
                (None, Some(path)) => Some(load_key_file(&path)?),
                (None, None) => None,
            };
            let report = match read_jwt(&token)? {
                Some(text) => inspect_jwt_as(
                    profile,
                    &text,
                    keys.as_ref(),
                    aud.as_deref(),
                    iss.as_deref(),
                    at.unwrap_or_else(now),
                    leeway,
                ),
                None => inspect_as(
                    profile,
                    &read_token(&token)?,
                    keys.as_ref(),
                    aud.as_deref(),
                    iss.as_deref(),
                    at.unwrap_or_else(now),
                    leeway,
                ),
            };
            if json {
                // serde_json escapes C0 controls but not DEL, C1 (a single
                // 0x9b byte is a CSI on many terminals) or bidi overrides.
                println!(
                    "{}",
                    json_ascii_controls(&serde_json::to_string_pretty(&report)?)
                );
            } else {
                // Every field is escaped by the report's Display.
                println!("{report}");
            }
            Ok(if report.valid {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            })
        }
    }
}

/// A JWT (three dot-separated parts), given as text or in a file.
fn read_jwt(arg: &str) -> anyhow::Result<Option<String>> {
    let path = Path::new(arg);
    let text = if path.is_file() {
        match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(_) => return Ok(None),
        }
    } else {
        arg.to_string()
    };
    let text = text.trim();
    Ok((text.matches('.').count() == 2 && text.starts_with("eyJ")).then(|| text.to_string()))
}

/// A token given as hex/base64url text, or as a file holding text or raw CBOR.
fn read_token(arg: &str) -> anyhow::Result<Vec<u8>> {
    let path = Path::new(arg);
    if path.is_file() {
        let raw = std::fs::read(path).with_context(|| format!("reading {arg}"))?;
        if let Ok(text) = std::str::from_utf8(&raw)
            && let Ok(bytes) = decode_token_text(text.trim())
        {
            return Ok(bytes);
        }
        return Ok(raw);
    }
    decode_token_text(arg.trim())
        .with_context(|| format!("{arg:?} is neither a file nor a token in hex or base64url"))
}

fn load_jwks(path: &PathBuf) -> anyhow::Result<KeySet> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    KeySet::from_jwks(&text).with_context(|| format!("{} is not a usable JWKS", path.display()))
}

/// A COSE key set, a JWKS, or one PEM public key.
fn load_key_file(path: &PathBuf) -> anyhow::Result<KeySet> {
    let raw = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    if let Ok(text) = std::str::from_utf8(&raw) {
        let text = text.trim_start();
        if text.starts_with('{') {
            return Ok(KeySet::from_jwks(text)?);
        }
        if text.starts_with("-----BEGIN PUBLIC KEY-----") {
            use p256::elliptic_curve::sec1::ToSec1Point;
            use p256::pkcs8::DecodePublicKey;
            let key = p256::PublicKey::from_public_key_pem(text)
                .map_err(|e| anyhow::anyhow!("{}: not a P-256 public key: {e}", path.display()))?;
            let point = key.to_sec1_point(false);
            let key = EcPublicKey::from_sec1(point.as_bytes())?;
            let mut set = KeySet::new();
            set.insert(key.kid(), key)?;
            return Ok(set);
        }
    }
    KeySet::from_cose_key_set(&raw).with_context(|| {
        format!(
            "{} is not a COSE key set, JWKS or PEM public key",
            path.display()
        )
    })
}

/// Serialized JSON with every control or bidi-override character that
/// serde_json leaves raw written as a `\uXXXX` escape (inside JSON strings,
/// where alone such characters can appear, this keeps the value the same).
fn json_ascii_controls(json: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        let mut buf = [0; 4];
        let text: &str = c.encode_utf8(&mut buf);
        if c != '\n' && matches!(escape_control(text), std::borrow::Cow::Owned(_)) {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                let _ = write!(out, "\\u{unit:04x}");
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn json_output_escapes_c1_del_and_bidi() {
        let raw = serde_json::to_string_pretty(&serde_json::json!({
            "sub": "a\u{9b}31m\u{7f}\u{202e}b\u{1b}",
        }))
        .unwrap();
        assert!(raw.contains('\u{9b}'));
        let safe = super::json_ascii_controls(&raw);
        for bad in ['\u{9b}', '\u{7f}', '\u{202e}', '\u{1b}'] {
            assert!(!safe.contains(bad), "{safe:?}");
        }
        let back: serde_json::Value = serde_json::from_str(&safe).unwrap();
        assert_eq!(back["sub"], "a\u{9b}31m\u{7f}\u{202e}b\u{1b}");
    }
}
