//! `certbound apikey ...`: API keys.

use std::process::ExitCode;

use certbound_registry::registry::{Registry, parse_grant};
use serde_json::json;

use crate::cli::ApiKeyCommand;
use crate::output::{iso, now as unix_now, print_json};

pub async fn run(cmd: ApiKeyCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ApiKeyCommand::Create {
            dir,
            name,
            grants,
            expires,
            json,
        } => {
            let grants = grants
                .iter()
                .map(|g| parse_grant(g))
                .collect::<Result<Vec<_>, _>>()?;
            let expires_at = match expires.as_deref() {
                Some(text) => {
                    Some(unix_now().saturating_add(super::lifecycle::parse_duration(text)?))
                }
                None => None,
            };
            let reg = Registry::open(&dir.dir).await?;
            let created = reg.create_api_key(&name, &grants, expires_at).await;
            reg.close().await;
            let created = created?;
            if json {
                print_json(&created)?;
            } else {
                println!("API key {} created", created.name);
                println!("  api_key:  {}", created.api_key);
                println!("  (shown once: store it now; only its hash is kept)");
                println!("  subject:  {}", created.subject);
                println!(
                    "  expires:  {}",
                    created.expires_at.map_or("never".into(), iso)
                );
                for (api, scopes) in &created.grants {
                    println!("  grant:    {api} = {scopes}");
                }
                println!(
                    "  use:      POST /oauth/token with header X-API-Key and \
                     grant_type=client_credentials&audience=<API>"
                );
            }
        }
        ApiKeyCommand::List { dir, all, json } => {
            let reg = Registry::open(&dir.dir).await?;
            let keys = reg.list_api_keys(all).await;
            reg.close().await;
            let keys = keys?;
            let now = unix_now();
            if json {
                let rows: Vec<_> = keys
                    .iter()
                    .map(|k| {
                        json!({
                            "name": k.name,
                            "state": k.state_at(now),
                            "grants": k.grants,
                            "created_at": k.created_at,
                            "expires_at": k.expires_at,
                            "last_used_at": k.last_used_at,
                            "revoked_at": k.revoked_at,
                        })
                    })
                    .collect();
                print_json(&rows)?;
            } else if keys.is_empty() {
                println!(
                    "No API keys. Create one with `certbound apikey create --name ... --grant ...`"
                );
            } else {
                println!(
                    "{:<24} {:<8} {:<21} {:<21} {:<21} grants",
                    "NAME", "STATE", "CREATED", "EXPIRES", "LAST USED"
                );
                for k in keys {
                    let grants: Vec<String> = k
                        .grants
                        .iter()
                        .map(|g| format!("{}={}", g.api_id, g.scopes.join(" ")))
                        .collect();
                    println!(
                        "{:<24} {:<8} {:<21} {:<21} {:<21} {}",
                        k.name,
                        k.state_at(now),
                        iso(k.created_at),
                        k.expires_at.map_or("never".into(), iso),
                        k.last_used_at.map_or("never".into(), iso),
                        grants.join("; ")
                    );
                }
            }
        }
        ApiKeyCommand::Revoke { dir, name } => {
            let reg = Registry::open(&dir.dir).await?;
            let revoked = reg.revoke_api_key(&name).await;
            reg.close().await;
            let k = revoked?;
            println!(
                "API key {} revoked: its next use is refused, and its tokens are inactive",
                k.name
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
