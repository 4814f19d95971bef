//! `certbound migrate`.

use std::process::ExitCode;

use anyhow::Context as _;
use certbound_broker::store::{Store, redact_url};
use certbound_registry::config::{Config, DataDir};

use crate::cli::MigrateArgs;
use crate::output::print_json;

pub async fn run(args: MigrateArgs) -> anyhow::Result<ExitCode> {
    let dir = &args.dir.dir;
    let config = Config::load(dir)?;
    let url = config.store_url(&DataDir::with_config(dir, &config));
    let shown = redact_url(&url);
    let migrations = if args.dry_run {
        Store::migration_plan(&url).await
    } else {
        Store::connect_and_migrate(&url)
            .await
            .map(|(store, applied)| {
                drop(store);
                applied
            })
    }
    .with_context(|| format!("migrating the store {shown}"))?;
    if args.json {
        print_json(&serde_json::json!({
            "store": shown,
            "dry_run": args.dry_run,
            "migrations": migrations,
        }))?;
    } else if migrations.is_empty() {
        println!("{shown}: the schema is up to date");
    } else {
        let verb = if args.dry_run {
            "would apply"
        } else {
            "applied"
        };
        println!("{shown}: {verb} {} migration(s):", migrations.len());
        for m in &migrations {
            println!("  {m}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
