//! `certbound role ...`

use std::process::ExitCode;

use certbound_registry::registry::{Registry, RoleTarget, parse_grant};

use crate::cli::{RoleCommand, RoleHolderArgs};
use crate::output::{iso, print_json};

fn target(holder: RoleHolderArgs) -> anyhow::Result<RoleTarget> {
    match (holder.client, holder.group, holder.apikey) {
        (Some(c), None, None) => Ok(RoleTarget::Client(c)),
        (None, Some(g), None) => Ok(RoleTarget::Group(g)),
        (None, None, Some(k)) => Ok(RoleTarget::ApiKey(k)),
        _ => anyhow::bail!("name exactly one holder: --client, --group or --apikey"),
    }
}

pub async fn run(cmd: RoleCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        RoleCommand::Create {
            dir,
            name,
            description,
            grants,
            json,
        } => {
            let parsed = grants
                .iter()
                .map(|g| parse_grant(g))
                .collect::<Result<Vec<_>, _>>()?;
            let reg = Registry::open(&dir.dir).await?;
            let role = reg.create_role(&name, &description, &parsed).await;
            reg.close().await;
            let role = role?;
            if json {
                print_json(&role)?;
            } else {
                println!("Role {} created", role.name);
                for g in &role.grants {
                    println!("  {} = {}", g.api_id, g.scopes.join(" "));
                }
                println!(
                    "Give it to a client or group: certbound role assign --name {} --client <client> | --group <group>",
                    role.name
                );
            }
        }
        RoleCommand::List { dir, json } => {
            let reg = Registry::open(&dir.dir).await?;
            let roles = reg.list_roles().await;
            reg.close().await;
            let roles = roles?;
            if json {
                print_json(&roles)?;
            } else if roles.is_empty() {
                println!("No roles (create one with `certbound role create`)");
            } else {
                for r in roles {
                    let about = if r.description.is_empty() {
                        String::new()
                    } else {
                        format!(" — {}", r.description)
                    };
                    println!("{}{about} (created {})", r.name, iso(r.created_at));
                    if r.grants.is_empty() {
                        println!("  grants nothing");
                    }
                    for g in &r.grants {
                        println!("  {} = {}", g.api_id, g.scopes.join(" "));
                    }
                    let holders: Vec<String> = r
                        .clients
                        .iter()
                        .map(|c| format!("client {c}"))
                        .chain(r.groups.iter().map(|g| format!("group {g}")))
                        .chain(r.api_keys.iter().map(|k| format!("API key {k}")))
                        .collect();
                    if holders.is_empty() {
                        println!("  held by nobody");
                    } else {
                        println!("  held by {}", holders.join(", "));
                    }
                }
            }
        }
        RoleCommand::Grant {
            dir,
            name,
            api,
            scopes,
            json,
        } => {
            let reg = Registry::open(&dir.dir).await?;
            let change = reg.set_role_grant(&name, &api, &scopes).await;
            reg.close().await;
            let change = change?;
            if json {
                print_json(&change)?;
            } else {
                let before = change
                    .previous
                    .as_ref()
                    .map_or_else(|| "no grant".to_string(), |p| p.join(" "));
                println!(
                    "Role {}: {} -> {} (was: {before}); its holders get it from their next token on",
                    change.role,
                    change.api,
                    change.scopes.join(" ")
                );
            }
        }
        RoleCommand::RevokeGrant {
            dir,
            name,
            api,
            json,
        } => {
            let reg = Registry::open(&dir.dir).await?;
            let change = reg.remove_role_grant(&name, &api).await;
            reg.close().await;
            let change = change?;
            if json {
                print_json(&change)?;
            } else {
                println!(
                    "Role {}: grant for {} removed (was: {}); tokens already issued stay valid until they expire",
                    change.role,
                    change.api,
                    change.previous.unwrap_or_default().join(" ")
                );
            }
        }
        RoleCommand::Assign {
            dir,
            name,
            holder,
            json,
        } => assign(dir, name.to_string(), holder, json, true).await?,
        RoleCommand::Unassign {
            dir,
            name,
            holder,
            json,
        } => assign(dir, name.to_string(), holder, json, false).await?,
        RoleCommand::Delete {
            dir,
            name,
            force,
            json,
        } => {
            let reg = Registry::open(&dir.dir).await?;
            let role = reg.delete_role(&name, force).await;
            reg.close().await;
            let role = role?;
            if json {
                print_json(&role)?;
            } else {
                println!("Role {} deleted", role.name);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn assign(
    dir: crate::cli::DirArg,
    name: String,
    holder: RoleHolderArgs,
    json: bool,
    give: bool,
) -> anyhow::Result<()> {
    let target = target(holder)?;
    let reg = Registry::open(&dir.dir).await?;
    let done = if give {
        reg.assign_role(&name, &target).await
    } else {
        reg.unassign_role(&name, &target).await
    };
    reg.close().await;
    let done = done?;
    if json {
        print_json(&done)?;
    } else {
        let what = match (give, done.changed) {
            (true, true) => "now holds",
            (true, false) => "already held",
            (false, true) => "no longer holds",
            (false, false) => "did not hold",
        };
        println!(
            "{} {} {what} role {}",
            done.holder_kind, done.holder, done.role
        );
    }
    Ok(())
}
