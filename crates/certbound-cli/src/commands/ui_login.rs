//! `certbound ui-login`: a one-time sign-in link to the operator console
//! (docs/console.md). Only the link's hash is stored; the link works once,
//! within its lifetime.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use base64::Engine as _;
use certbound_registry::config::{Config, DataDir};
use certbound_registry::credentials::hash_secret;
use certbound_registry::store::{AuditEvent, Store};
use clap::Args;
use rand::RngCore;

use crate::cli::DirArg;
use crate::output::{iso, now, print_json};

/// `certbound ui-login`
#[derive(Debug, Args)]
pub struct UiLoginArgs {
    #[command(flatten)]
    pub dir: DirArg,
    /// How long the link works (e.g. 90s, 5m, 1h). Default: `[ui] login_link_secs` (5m).
    #[arg(long, value_parser = firmware_sim::options::parse_duration)]
    pub ttl: Option<Duration>,
    /// Who the link is for: the console's audit actor is `ui-login:<label>`.
    #[arg(long, default_value = "operator")]
    pub label: String,
    /// The console's base URL. Default: `[https] public_url`, else https://<[https] listen>.
    #[arg(long, value_name = "URL")]
    pub base_url: Option<String>,
    /// Print JSON: {"url", "expires_at"}.
    #[arg(long)]
    pub json: bool,
}

/// Creates the link and prints it.
pub async fn run(args: UiLoginArgs) -> anyhow::Result<ExitCode> {
    let dir: &Path = &args.dir.dir;
    let config = Config::load(dir)
        .with_context(|| format!("cannot read the configuration of {}", dir.display()))?;
    if !config.ui.enabled {
        anyhow::bail!("the console is off ([ui] enabled = false in certbound.toml)");
    }
    let label = args.label.trim();
    if label.is_empty()
        || label.len() > 64
        || !label
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c))
    {
        anyhow::bail!(
            "--label {:?}: use 1 to 64 letters, digits or - _ . @",
            args.label
        );
    }
    let ttl = args.ttl.map_or(config.ui.login_link_secs, |d| d.as_secs());
    if !(1..=86_400).contains(&ttl) {
        anyhow::bail!("--ttl must be between 1 s and 24 h");
    }
    let data = DataDir::with_config(dir, &config);
    let store = Store::connect(&config.store_url(&data))
        .await
        .with_context(|| format!("cannot open the store of {}", dir.display()))?;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let now = now();
    let expires_at = now + ttl;
    store
        .create_ui_login_token(&hash_secret(&token), label, now, expires_at)
        .await?;
    store
        .append_audit(&[AuditEvent {
            ts_ms: now.saturating_mul(1000),
            actor: "cli".into(),
            action: "ui.login_link".into(),
            subject: label.to_string(),
            outcome: "ok".into(),
            detail: format!("expires_at={expires_at}"),
        }])
        .await?;
    store.close().await;
    let base = args.base_url.unwrap_or_else(|| {
        config
            .https
            .public_url
            .clone()
            .unwrap_or_else(|| format!("https://{}", config.https_listen()))
    });
    let url = format!("{}/ui/login/link?token={token}", base.trim_end_matches('/'));
    if args.json {
        print_json(&serde_json::json!({ "url": url, "expires_at": expires_at }))?;
    } else {
        println!("{url}");
        eprintln!(
            "Open it in a browser within {ttl} s (until {}); it works once.",
            iso(expires_at)
        );
    }
    Ok(ExitCode::SUCCESS)
}
