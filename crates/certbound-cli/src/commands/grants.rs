//! `certbound api set-ttl`, `group delete`, `group grant`, `group revoke-grant`:
//! changes to existing APIs and groups, applied by a running broker from its
//! next token request on.

use std::process::ExitCode;

use certbound_registry::registry::Registry;

use crate::cli::{ApiSetTtlArgs, GroupDeleteArgs, GroupGrantArgs, GroupRevokeGrantArgs};
use crate::output::print_json;

pub async fn set_ttl(args: ApiSetTtlArgs) -> anyhow::Result<ExitCode> {
    let reg = Registry::open(&args.dir.dir).await?;
    let change = reg.set_api_ttl(&args.api, args.ttl).await;
    reg.close().await;
    let change = change?;
    if args.json {
        print_json(&change)?;
    } else {
        println!(
            "API {}: token lifetime {} s (was {} s); tokens already issued keep their expiry",
            change.api, change.ttl_secs, change.previous_ttl_secs
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn delete(args: GroupDeleteArgs) -> anyhow::Result<ExitCode> {
    let reg = Registry::open(&args.dir.dir).await?;
    let deleted = reg.delete_group(&args.name, args.force).await;
    reg.close().await;
    let deleted = deleted?;
    if args.json {
        print_json(&deleted)?;
    } else if deleted.removed_members.is_empty() {
        println!("Group {} deleted", deleted.name);
    } else {
        println!(
            "Group {} deleted; removed from it: {}",
            deleted.name,
            deleted.removed_members.join(", ")
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn grant(args: GroupGrantArgs) -> anyhow::Result<ExitCode> {
    let reg = Registry::open(&args.dir.dir).await?;
    let change = reg.set_grant(&args.name, &args.api, &args.scopes).await;
    reg.close().await;
    let change = change?;
    if args.json {
        print_json(&change)?;
    } else {
        let before = change
            .previous
            .as_ref()
            .map_or_else(|| "no grant".to_string(), |p| p.join(" "));
        println!(
            "Group {}: {} -> {} (was: {before})",
            change.group,
            change.api,
            change.scopes.join(" ")
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn revoke_grant(args: GroupRevokeGrantArgs) -> anyhow::Result<ExitCode> {
    let reg = Registry::open(&args.dir.dir).await?;
    let change = reg.remove_grant(&args.name, &args.api).await;
    reg.close().await;
    let change = change?;
    if args.json {
        print_json(&change)?;
    } else {
        println!(
            "Group {}: grant for {} removed (was: {}); tokens already issued stay valid until they expire",
            change.group,
            change.api,
            change.previous.unwrap_or_default().join(" ")
        );
    }
    Ok(ExitCode::SUCCESS)
}
