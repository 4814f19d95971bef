//! `certbound api set-alg`.

use std::process::ExitCode;

use certbound_registry::Registry;

use crate::cli::ApiSetAlgArgs;
use crate::output::print_json;

pub async fn set_alg(args: ApiSetAlgArgs) -> anyhow::Result<ExitCode> {
    let reg = Registry::open(&args.dir.dir).await?;
    let changed = reg.set_api_alg(&args.api, args.alg.jws()).await;
    reg.close().await;
    let changed = changed?;
    if args.json {
        print_json(&changed)?;
    } else {
        println!(
            "API {}: JWTs are now signed with {} (key in /.well-known/jwks.json); tokens already \
             issued keep verifying",
            changed.api.id, changed.alg
        );
    }
    Ok(ExitCode::SUCCESS)
}
