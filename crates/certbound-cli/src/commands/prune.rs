//! `certbound prune`: one housekeeping run on a data directory (see
//! `certbound_broker::store::PrunePolicy`).

use std::process::ExitCode;

use anyhow::Context as _;
use certbound_broker::store::{PrunePolicy, Store};
use certbound_registry::clock::unix_now;
use certbound_registry::config::{Config, DataDir};

use crate::cli::PruneArgs;
use crate::output::print_json;

pub async fn run(args: PruneArgs) -> anyhow::Result<ExitCode> {
    let dir = &args.dir.dir;
    let config = Config::load(dir)?;
    let data = DataDir::with_config(dir, &config);
    let store = Store::connect(&config.store_url(&data))
        .await
        .with_context(|| format!("opening the store of {}", dir.display()))?;
    let policy = PrunePolicy {
        dry_run: args.dry_run,
        ..config.prune_policy()
    };
    let report = store.prune(unix_now(), &policy).await;
    store.close().await;
    let report = report?;
    if args.json {
        print_json(&report)?;
        return Ok(ExitCode::SUCCESS);
    }
    let verb = if report.dry_run {
        "would delete"
    } else {
        "deleted"
    };
    for (table, rows) in report.by_table() {
        println!("{table}: {verb} {rows} rows");
    }
    let retention = match policy.audit_retention_secs {
        Some(secs) => format!("audit events older than {} days", secs / 86_400),
        None => "audit events kept forever ([audit] retention_days = 0)".into(),
    };
    println!(
        "(token records expired more than {} s ago; {retention})",
        policy.token_margin_secs
    );
    Ok(ExitCode::SUCCESS)
}
