//! `certbound export | plan | apply`: policy as code (see docs/policy.md).

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use certbound_registry::policy::{self, ApplyOptions, PolicyDoc};
use certbound_registry::registry::Registry;

use crate::output::print_json;

/// Exit status of `plan` when changes are pending.
const CHANGES_PENDING: u8 = 2;

fn read_doc(file: &Path) -> anyhow::Result<PolicyDoc> {
    let text = std::fs::read_to_string(file).with_context(|| format!("{}", file.display()))?;
    PolicyDoc::parse_env(&text).with_context(|| format!("{}", file.display()))
}

pub async fn export(dir: &Path) -> anyhow::Result<ExitCode> {
    let reg = Registry::open(dir).await?;
    let doc = policy::export(&reg.store).await;
    reg.close().await;
    print!("{}", doc?.to_toml()?);
    Ok(ExitCode::SUCCESS)
}

pub async fn plan(dir: &Path, file: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let doc = read_doc(file)?;
    let reg = Registry::open(dir).await?;
    let plan = policy::plan(&reg.store, &doc).await;
    reg.close().await;
    let plan = plan?;
    if json {
        print_json(&plan)?;
    } else {
        print!("{}", plan.render());
    }
    Ok(if plan.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(CHANGES_PENDING)
    })
}

fn confirm() -> anyhow::Result<bool> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        anyhow::bail!("not applied: confirm with --yes (stdin is not a terminal)");
    }
    eprint!("Apply these changes? [y/N] ");
    std::io::stderr().flush()?;
    let mut line = String::new();
    stdin.lock().read_line(&mut line)?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes"))
}

pub async fn apply(
    dir: &Path,
    file: &Path,
    yes: bool,
    prune: bool,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let doc = read_doc(file)?;
    let reg = Registry::open(dir).await?;
    let result = async {
        if !yes {
            // Show the plan (and refuse what needs --prune) before asking.
            let preview = policy::apply(
                &reg.store,
                &doc,
                &reg.actor,
                ApplyOptions {
                    prune,
                    dry_run: true,
                },
            )
            .await?;
            if preview.plan.is_empty() {
                return Ok(Some(preview));
            }
            print!("{}", preview.plan.render());
            if !confirm()? {
                return Ok(None);
            }
        }
        let applied = policy::apply(
            &reg.store,
            &doc,
            &reg.actor,
            ApplyOptions {
                prune,
                dry_run: false,
            },
        )
        .await?;
        // The signing keys of the algorithms the APIs now ask for (a running
        // broker would make them within a second, but not before a token).
        reg.ensure_api_signing_keys().await?;
        Ok::<_, anyhow::Error>(Some(applied))
    }
    .await;
    reg.close().await;
    let Some(applied) = result? else {
        println!("Not applied.");
        return Ok(ExitCode::from(1));
    };
    if json {
        print_json(&applied)?;
        return Ok(ExitCode::SUCCESS);
    }
    // With confirmation the plan was shown already.
    if yes || applied.plan.is_empty() {
        print!("{}", applied.plan.render());
    }
    if !applied.plan.is_empty() {
        println!("Applied.");
    }
    for c in &applied.created_clients {
        super::clients::print_created(c, "created");
    }
    for k in &applied.created_api_keys {
        println!("API key {} created", k.name);
        println!("  api_key:  {}", k.api_key);
        println!("  (shown once: store it now; only its hash is kept)");
    }
    Ok(ExitCode::SUCCESS)
}
