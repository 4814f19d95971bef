//! `certbound attr ...` and `certbound api set-claims|claims`.

use std::process::ExitCode;

use certbound_registry::registry::{Registry, describe_claims, parse_claim_decl};
use certbound_registry::store::AttrHolder;
use certbound_registry::store::attributes::{Attributes, parse_assignment};

use crate::cli::{
    ApiClaimsArgs, ApiSetClaimsArgs, AttrCommand, AttrHolderArgs, AttrSetArgs, AttrShowArgs,
    AttrUnsetArgs,
};
use crate::output::print_json;

fn holder(args: &AttrHolderArgs) -> anyhow::Result<(AttrHolder, &str)> {
    match (&args.device, &args.group, &args.client, &args.apikey) {
        (Some(d), None, None, None) => Ok((AttrHolder::Device, d)),
        (None, Some(g), None, None) => Ok((AttrHolder::Group, g)),
        (None, None, Some(c), None) => Ok((AttrHolder::Client, c)),
        (None, None, None, Some(k)) => Ok((AttrHolder::ApiKey, k)),
        _ => anyhow::bail!(
            "name exactly one holder: --device ID, --group NAME, --client NAME or --apikey NAME"
        ),
    }
}

fn shown(a: &Attributes) -> String {
    if a.is_empty() {
        "(none)".into()
    } else {
        a.summary()
    }
}

/// Runs `certbound attr ...`.
pub async fn run(cmd: AttrCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        AttrCommand::Set(AttrSetArgs {
            dir,
            holder: h,
            assignments,
            json,
        }) => {
            let set = assignments
                .iter()
                .map(|a| parse_assignment(a))
                .collect::<Result<Vec<_>, _>>()?;
            change(&dir.dir, &h, &set, &[], json).await
        }
        AttrCommand::Unset(AttrUnsetArgs {
            dir,
            holder: h,
            names,
            json,
        }) => change(&dir.dir, &h, &[], &names, json).await,
        AttrCommand::Show(AttrShowArgs {
            dir,
            holder: h,
            json,
        }) => {
            let (kind, key) = holder(&h)?;
            let reg = Registry::open(&dir.dir).await?;
            let view = reg.show_attributes(kind, key).await;
            reg.close().await;
            let view = view?;
            if json {
                print_json(&view)?;
            } else {
                println!("{} {}: {}", view.kind, view.key, shown(&view.attributes));
                if let Some(e) = &view.effective {
                    println!("effective (own, then groups'): {}", shown(e));
                }
                for (name, values) in &view.conflicts {
                    let list: Vec<String> =
                        values.iter().map(|(g, v)| format!("{g}={v}")).collect();
                    println!(
                        "conflict: groups disagree on {name} ({}); the first by name wins",
                        list.join(", ")
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn change(
    dir: &std::path::Path,
    h: &AttrHolderArgs,
    set: &[(String, certbound_registry::store::attributes::ClaimValue)],
    unset: &[String],
    json: bool,
) -> anyhow::Result<ExitCode> {
    let (kind, key) = holder(h)?;
    let reg = Registry::open(dir).await?;
    let changed = reg.change_attributes(kind, key, set, unset).await;
    reg.close().await;
    let changed = changed?;
    if json {
        print_json(&changed)?;
    } else {
        println!(
            "{} {} attributes: {}",
            changed.kind,
            changed.key,
            shown(&changed.attributes)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `certbound api set-claims`.
pub async fn set_claims(args: ApiSetClaimsArgs) -> anyhow::Result<ExitCode> {
    let decls = args
        .claims
        .iter()
        .map(|c| parse_claim_decl(c))
        .collect::<Result<Vec<_>, _>>()?;
    let reg = Registry::open(&args.dir.dir).await?;
    let changed = reg.set_api_claims(&args.api, &decls).await;
    reg.close().await;
    let changed = changed?;
    if args.json {
        print_json(&changed)?;
    } else if changed.claims.is_empty() {
        println!("API {}: no custom claims", changed.api);
    } else {
        println!(
            "API {} custom claims: {}",
            changed.api,
            describe_claims(&changed.claims)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `certbound api claims`.
pub async fn claims(args: ApiClaimsArgs) -> anyhow::Result<ExitCode> {
    let reg = Registry::open(&args.dir.dir).await?;
    let claims = reg.api_claims(&args.api).await;
    reg.close().await;
    let claims = claims?;
    if args.json {
        print_json(&claims)?;
    } else if claims.is_empty() {
        println!("API {}: no custom claims", args.api);
    } else {
        for c in &claims {
            println!("{}", describe_claims(std::slice::from_ref(c)));
        }
    }
    Ok(ExitCode::SUCCESS)
}
