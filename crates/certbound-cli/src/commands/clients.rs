//! `certbound client ...`: backend-service clients.

use std::process::ExitCode;

use certbound_broker::registry::{CreatedClient, Registry, parse_grant};

use crate::cli::ClientCommand;
use crate::output::{iso, print_json};

pub async fn run(cmd: ClientCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ClientCommand::Create {
            dir,
            name,
            grants,
            tls_subject,
            json,
        } => {
            let grants = grants
                .iter()
                .map(|g| parse_grant(g))
                .collect::<Result<Vec<_>, _>>()?;
            let reg = Registry::open(&dir.dir).await?;
            let secret = tls_subject.is_none();
            let created = reg
                .create_client(&name, &grants, tls_subject.as_deref(), secret)
                .await;
            reg.close().await;
            let created = created?;
            if json {
                print_json(&created)?;
            } else {
                print_created(&created, "created");
                for (api, scopes) in &grants {
                    println!("  grant:         {api} = {scopes}");
                }
            }
        }
        ClientCommand::List { dir, json } => {
            let reg = Registry::open(&dir.dir).await?;
            let clients = reg.list_clients().await;
            reg.close().await;
            let clients = clients?;
            if json {
                print_json(&clients)?;
            } else if clients.is_empty() {
                println!(
                    "No clients. Create one with `certbound client create --name ... --grant ...`"
                );
            } else {
                for c in clients {
                    let auth = match (&c.tls_subject, c.has_secret) {
                        (Some(dn), true) => format!("secret + tls_client_auth {dn}"),
                        (Some(dn), false) => format!("tls_client_auth {dn}"),
                        (None, _) => "secret".to_string(),
                    };
                    let grants: Vec<String> = c
                        .grants
                        .iter()
                        .map(|g| format!("{}={}", g.api_id, g.scopes.join(" ")))
                        .collect();
                    println!(
                        "{:<20} {:<24} {:<28} created {}  {}",
                        c.name,
                        c.id,
                        auth,
                        iso(c.created_at),
                        grants.join("; ")
                    );
                }
            }
        }
        ClientCommand::RotateSecret { dir, client, json } => {
            let reg = Registry::open(&dir.dir).await?;
            let created = reg.rotate_client_secret(&client).await;
            reg.close().await;
            let created = created?;
            if json {
                print_json(&created)?;
            } else {
                print_created(&created, "has a new secret (the old one no longer works)");
            }
        }
        ClientCommand::Delete { dir, client } => {
            let reg = Registry::open(&dir.dir).await?;
            let deleted = reg.delete_client(&client).await;
            reg.close().await;
            let c = deleted?;
            println!(
                "Client {} ({}) deleted: it gets no new tokens and its tokens are inactive",
                c.name, c.id
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_created(c: &CreatedClient, what: &str) {
    println!("Client {} {what}", c.name);
    println!("  client_id:     {}", c.client_id);
    if let Some(secret) = &c.client_secret {
        println!("  client_secret: {secret}");
        println!("  (shown once: store it now; only its hash is kept)");
    }
    if let Some(dn) = &c.tls_subject {
        println!("  tls_subject:   {dn} (authenticate with a certificate from the certbound CA)");
    }
}
