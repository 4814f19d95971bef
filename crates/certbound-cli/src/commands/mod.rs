//! Command implementations.

mod admin;
mod algs;
mod apikeys;
mod attrs;
mod bulk;
mod clients;
mod demo;
mod doctor;
mod grants;
mod ingest;
mod lifecycle;
mod migrate;
mod policy;
mod prune;
mod registration;
mod roles;
mod serve;
mod token;
pub(crate) mod ui_login;

use std::process::ExitCode;

use crate::cli::{Cli, Command};

/// Runs one command.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Init {
            dir,
            issuer_id,
            server_names,
            root_key_out,
            encryption_key_file,
            store_url,
            join,
            name,
            key_grace,
        } => {
            let mut options = certbound_registry::registry::InitOptions::default();
            if !server_names.is_empty() {
                options.server_names = server_names;
            }
            options.root_key_out = root_key_out;
            options.encryption_key_file = encryption_key_file;
            options.store_url = store_url;
            match issuer_id {
                Some(issuer_id) if !join => admin::init(&dir.dir, &issuer_id, options).await,
                _ => lifecycle::join(&dir.dir, options, name, key_grace).await,
            }
        }
        Command::Serve {
            dir,
            coap_listen,
            mqtt_listen,
            https_listen,
        } => serve::serve(&dir.dir, coap_listen, mqtt_listen, https_listen).await,
        Command::Client(cmd) => clients::run(cmd).await,
        Command::Apikey(cmd) => apikeys::run(cmd).await,
        Command::Api(cmd) => admin::api(cmd).await,
        Command::Attr(cmd) => attrs::run(cmd).await,
        Command::Group(cmd) => admin::group(cmd).await,
        Command::Role(cmd) => roles::run(cmd).await,
        Command::Device(cmd) => admin::device(cmd).await,
        Command::Keys(cmd) => admin::keys(cmd).await,
        Command::Audit(cmd) => admin::audit(cmd).await,
        Command::Ca(cmd) => lifecycle::ca(cmd).await,
        Command::Claim(cmd) => lifecycle::claim(cmd).await,
        Command::Crl { dir, out, der, ca } => {
            lifecycle::crl(&dir.dir, out.as_deref(), der, ca.as_deref()).await
        }
        Command::Token(cmd) => token::run(cmd).await,
        Command::Service(cmd) => admin::service(cmd).await,
        Command::Ingest(args) => ingest::run(args).await,
        Command::Demo {
            devices,
            duration,
            keep,
        } => demo::run(devices, duration, keep).await,
        Command::Export { dir } => policy::export(&dir.dir).await,
        Command::Plan { dir, file, json } => policy::plan(&dir.dir, &file, json).await,
        Command::Apply {
            dir,
            file,
            yes,
            prune,
            json,
        } => policy::apply(&dir.dir, &file, yes, prune, json).await,
        Command::Prune(args) => prune::run(args).await,
        Command::Migrate(args) => migrate::run(args).await,
        Command::Doctor {
            dir,
            json,
            expiry_days,
        } => doctor::run(&dir.dir, json, expiry_days).await,
        Command::UiLogin(args) => ui_login::run(args).await,
    }
}
