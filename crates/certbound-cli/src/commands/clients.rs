//! `certbound client ...`: backend-service clients.

use std::process::ExitCode;

use anyhow::Context as _;
use certbound_broker::store::ClientAuthMethod;
use certbound_registry::registry::{
    ClientCredential, CreatedClient, Registry, parse_grant, thumbprint_of_pem,
};

use crate::cli::ClientCommand;
use crate::output::{iso, print_json};

pub async fn run(cmd: ClientCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ClientCommand::Create {
            dir,
            name,
            grants,
            tls_subject,
            tls_san,
            self_signed_cert,
            auth_method,
            jwks_file,
            jwks_uri,
            json,
        } => {
            let grants = grants
                .iter()
                .map(|g| parse_grant(g))
                .collect::<Result<Vec<_>, _>>()?;
            let wants_jwt = jwks_file.is_some() || jwks_uri.is_some();
            if let Some(m) = auth_method.as_deref()
                && (m == "private_key_jwt") != wants_jwt
            {
                anyhow::bail!(
                    "--auth-method private_key_jwt goes with --jwks-file FILE or --jwks-uri URL \
                     (and those with private_key_jwt only)"
                );
            }
            let credential = if let Some(path) = jwks_file {
                let text = std::fs::read_to_string(&path)
                    .with_context(|| format!("reading {}", path.display()))?;
                ClientCredential::Jwks(text)
            } else if let Some(uri) = jwks_uri {
                ClientCredential::JwksUri(uri)
            } else if let Some(dn) = tls_subject {
                ClientCredential::TlsSubject(dn)
            } else if let Some(san) = tls_san {
                ClientCredential::TlsSan(san)
            } else if let Some(path) = self_signed_cert {
                let pem = std::fs::read_to_string(&path)
                    .with_context(|| format!("reading {}", path.display()))?;
                ClientCredential::SelfSigned(thumbprint_of_pem(&pem)?)
            } else {
                let method = auth_method.as_deref().unwrap_or("client_secret");
                match ClientAuthMethod::parse(method) {
                    Some(m) if m.uses_secret() => ClientCredential::Secret(m),
                    _ => anyhow::bail!(
                        "--auth-method {method:?}: use client_secret, client_secret_basic or client_secret_post \
                         (certificate methods: --tls-subject, --tls-san, --self-signed-cert)"
                    ),
                }
            };
            let reg = Registry::open(&dir.dir).await?;
            let created = reg.create_client_with(&name, &grants, credential).await;
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
        ClientCommand::RegistrationToken {
            action,
            dir,
            grants,
            roles,
            methods,
            uses,
            expires,
            json,
        } => {
            let bounds = super::registration::Bounds { grants, roles };
            return super::registration::run(action, dir, bounds, methods, uses, expires, json)
                .await;
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
                    let auth = match (&c.tls_subject, &c.tls_san, &c.thumbprint) {
                        (Some(dn), _, _) => format!("tls_client_auth {dn}"),
                        (None, Some(san), _) => format!("tls_client_auth {san}"),
                        (None, None, Some(x5t)) => format!("self_signed_tls_client_auth {x5t}"),
                        _ if c.jwks_uri.is_some() => {
                            format!("private_key_jwt {}", c.jwks_uri.as_deref().unwrap_or(""))
                        }
                        _ => c.auth_method.as_str().to_string(),
                    };
                    let grants: Vec<String> = c
                        .grants
                        .iter()
                        .map(|g| format!("{}={}", g.api_id, g.scopes.join(" ")))
                        .chain(c.roles.iter().map(|r| format!("role {r}")))
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

pub(crate) fn print_created(c: &CreatedClient, what: &str) {
    println!("Client {} {what}", c.name);
    println!("  client_id:     {}", c.client_id);
    if let Some(secret) = &c.client_secret {
        println!("  client_secret: {secret}");
        println!("  (shown once: store it now; only its hash is kept)");
    }
    println!("  auth_method:   {}", c.auth_method.as_str());
    if let Some(dn) = &c.tls_subject {
        println!(
            "  tls_subject:   {dn} (a certificate from the certbound CA or [https] client_ca_file)"
        );
    }
    if let Some(san) = &c.tls_san {
        println!(
            "  tls_san:       {san} (a certificate from the certbound CA or [https] client_ca_file)"
        );
    }
    if let Some(x5t) = &c.thumbprint {
        println!("  thumbprint:    {x5t} (x5t#S256 of the pinned certificate)");
    }
    if let Some(uri) = &c.jwks_uri {
        println!("  jwks_uri:      {uri} (signed assertions, RFC 7523)");
    }
    if c.jwks.is_some() {
        println!("  jwks:          registered (signed assertions with these keys, RFC 7523)");
    }
}
