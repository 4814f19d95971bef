//! Operator commands on a data directory.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use certbound_broker::store::DeviceStatus;
use certbound_registry::registry::{self, Registry};
use certbound_verify::KeySet;

use crate::cli::{
    ApiCommand, AuditCommand, DeviceCommand, GroupCommand, KeyFormat, KeysCommand, ServiceCommand,
};

/// The bootstrap admin credentials file, mentioned after init.
const ADMIN_FILE: &str = certbound_registry::registry::ADMIN_CLIENT_FILE;
use crate::output::{iso, print_json};

pub async fn init(
    dir: &Path,
    issuer_id: &str,
    options: registry::InitOptions,
) -> anyhow::Result<ExitCode> {
    registry::init_with(dir, issuer_id, &options).await?;
    println!("Initialised {} for issuer {issuer_id}", dir.display());
    println!(
        "  CA chain:      {}",
        dir.join("pki/ca-chain.pem").display()
    );
    match &options.root_key_out {
        Some(out) => println!(
            "  root CA key:   {} (mode 0600): move it offline; only `certbound ca \
             rotate-issuing --root-key` needs it",
            out.display()
        ),
        None => println!(
            "  root CA key:   {} (online; see `certbound init --root-key-out`)",
            dir.join("pki/root-ca.key.pem").display()
        ),
    }
    println!("  configuration: {}", dir.join("certbound.toml").display());
    println!(
        "  server cert:   {} (for {})",
        dir.join("pki/server.cert.pem").display(),
        options.server_names.join(", ")
    );
    println!(
        "  admin client:  {} (client_id and secret for the admin API; mode 0600)",
        dir.join(ADMIN_FILE).display()
    );
    println!(
        "Next: certbound api create --dir {} --id <API URI> --scopes \"...\"",
        dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn api(cmd: ApiCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ApiCommand::Create {
            dir,
            id,
            scopes,
            ttl,
            format,
            alg,
            json,
        } => {
            let reg = Registry::open(&dir.dir).await?;
            let api = reg
                .create_api_with_alg(&id, &scopes, ttl, format.as_str(), alg.map(|a| a.jws()))
                .await;
            reg.close().await;
            let created = api?;
            if json {
                print_json(&created)?;
            } else {
                let api = &created.api;
                println!(
                    "API {} created: scopes [{}], token lifetime {} s, client tokens {} ({})",
                    api.id,
                    api.scopes.join(" "),
                    api.ttl_secs,
                    api.format,
                    created.alg
                );
            }
        }
        ApiCommand::List { dir, json } => {
            let reg = Registry::open(&dir.dir).await?;
            let apis = reg.apis_with_algs().await;
            reg.close().await;
            let apis = apis?;
            if json {
                print_json(&apis)?;
            } else if apis.is_empty() {
                println!("No APIs yet: certbound api create --id <URI> --scopes \"...\"");
            } else {
                for a in apis {
                    println!(
                        "{}  ttl={}s  format={} alg={}  scopes=[{}]",
                        a.api.id,
                        a.api.ttl_secs,
                        a.api.format,
                        a.alg,
                        a.api.scopes.join(" ")
                    );
                }
            }
        }
        ApiCommand::SetTtl(args) => return super::grants::set_ttl(args).await,
        ApiCommand::SetAlg(args) => return super::algs::set_alg(args).await,
        ApiCommand::SetClaims(args) => return super::attrs::set_claims(args).await,
        ApiCommand::Claims(args) => return super::attrs::claims(args).await,
    }
    Ok(ExitCode::SUCCESS)
}

/// Parses "API=scope1 scope2".
fn parse_grant(text: &str) -> anyhow::Result<(String, String)> {
    let (api, scopes) = text.split_once('=').with_context(|| {
        format!("grant {text:?} must look like \"https://api.example.com=scope1 scope2\"")
    })?;
    Ok((api.trim().to_string(), scopes.trim().to_string()))
}

pub async fn group(cmd: GroupCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        GroupCommand::Create {
            dir,
            name,
            grants,
            json,
        } => {
            let grants = grants
                .iter()
                .map(|g| parse_grant(g))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let reg = Registry::open(&dir.dir).await?;
            let created = reg.create_group(&name, &grants).await?;
            reg.close().await;
            if json {
                print_json(&serde_json::json!({ "name": name, "grants": created }))?;
            } else {
                println!("Group {name} created:");
                for g in created {
                    println!("  {} -> {}", g.api_id, g.scopes.join(" "));
                }
            }
        }
        GroupCommand::List { dir, json } => {
            let reg = Registry::open(&dir.dir).await?;
            let groups = reg.store.list_groups().await?;
            let mut roles = Vec::with_capacity(groups.len());
            for (name, _) in &groups {
                roles.push(reg.group_roles(name).await?);
            }
            reg.close().await;
            if json {
                let v: Vec<_> = groups
                    .iter()
                    .zip(&roles)
                    .map(|((n, g), r)| serde_json::json!({"name": n, "grants": g, "roles": r}))
                    .collect();
                print_json(&v)?;
            } else {
                for ((name, grants), roles) in groups.into_iter().zip(roles) {
                    println!("{name}");
                    for g in grants {
                        println!("  {} -> {}", g.api_id, g.scopes.join(" "));
                    }
                    if !roles.is_empty() {
                        println!("  roles: {}", roles.join(", "));
                    }
                }
            }
        }
        GroupCommand::Grant(args) => return super::grants::grant(args).await,
        GroupCommand::RevokeGrant(args) => return super::grants::revoke_grant(args).await,
        GroupCommand::Delete(args) => return super::grants::delete(args).await,
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn device(cmd: DeviceCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        DeviceCommand::Provision {
            dir,
            id,
            bulk,
            groups,
            out,
            days,
            json,
        } => {
            let Some(id) = id else {
                return super::bulk::run(&dir.dir, bulk, groups, out, days, json).await;
            };
            let reg = Registry::open(&dir.dir).await?;
            let result = reg.provision_device(&id, &groups, &out, days).await;
            reg.close().await;
            let d = result?;
            if json {
                print_json(&d)?;
            } else {
                println!("Device {} provisioned", d.id);
                println!(
                    "  key:         {} (keep it secret, mode 0600)",
                    d.key_file.display()
                );
                println!("  certificate: {}", d.cert_file.display());
                println!("  serial:      {}", d.serial);
                println!("  expires:     {}", iso(d.not_after));
            }
        }
        DeviceCommand::List { dir, json } => {
            let reg = Registry::open(&dir.dir).await?;
            let devices = reg.store.list_devices().await?;
            reg.close().await;
            if json {
                print_json(&devices)?;
            } else if devices.is_empty() {
                println!("No devices yet: certbound device provision --id <ID> --group <GROUP>");
            } else {
                println!("{:<32} {:<10} groups", "device", "status");
                for d in devices {
                    println!(
                        "{:<32} {:<10} {}",
                        d.id,
                        d.status.as_str(),
                        d.groups.join(",")
                    );
                }
            }
        }
        DeviceCommand::SignCsr {
            dir,
            csr,
            id,
            groups,
            out,
            days,
            json,
        } => {
            return super::lifecycle::sign_csr(&dir.dir, &csr, &id, &groups, &out, days, json)
                .await;
        }
        DeviceCommand::Show { dir, id, json } => {
            let reg = Registry::open(&dir.dir).await?;
            let result = reg.show_device(&id).await;
            reg.close().await;
            let (device, certs) = result?;
            if json {
                print_json(&serde_json::json!({ "device": device, "certificates": certs }))?;
            } else {
                println!("device   {}", device.id);
                println!("status   {}", device.status.as_str());
                println!("groups   {}", device.groups.join(", "));
                println!("created  {}", iso(device.created_at));
                for c in certs {
                    println!(
                        "cert     serial {}  {}  valid {} .. {}\n         sha256 {}",
                        c.serial,
                        c.status,
                        iso(c.not_before),
                        iso(c.not_after),
                        c.thumbprint
                    );
                }
            }
        }
        DeviceCommand::Revoke { dir, id, reason } => {
            set_status(&dir.dir, &id, DeviceStatus::Revoked, &reason).await?;
            println!("Device {id} revoked: new token requests are refused.");
        }
        DeviceCommand::Suspend { dir, id, reason } => {
            set_status(&dir.dir, &id, DeviceStatus::Suspended, &reason).await?;
            println!(
                "Device {id} suspended: token requests are refused until `certbound device resume {id}`."
            );
        }
        DeviceCommand::Resume { dir, id } => {
            // The store refuses a revoked device (revocation is final).
            set_status(&dir.dir, &id, DeviceStatus::Active, "resumed").await?;
            println!("Device {id} resumed.");
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn set_status(
    dir: &Path,
    id: &str,
    status: DeviceStatus,
    reason: &str,
) -> anyhow::Result<()> {
    let reg = Registry::open(dir).await?;
    let r = reg.set_device_status(id, status, reason).await;
    reg.close().await;
    Ok(r?)
}

/// The broker's published keys as a key set.
pub async fn key_set(dir: &Path) -> anyhow::Result<KeySet> {
    let mut set = KeySet::new();
    let reg = Registry::open(dir).await?;
    let keys = reg.public_jws_keys().await;
    reg.close().await;
    let keys = keys.with_context(|| {
        format!(
            "reading the signing keys of {} (is it initialised?)",
            dir.display()
        )
    })?;
    for (kid, key) in keys {
        set.insert_jws(kid, key)?;
    }
    Ok(set)
}

pub async fn keys(cmd: KeysCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        KeysCommand::Rotate { dir, grace, json } => {
            let reg = Registry::open(&dir.dir).await?;
            let rotation = reg.rotate_keys(grace).await;
            reg.close().await;
            let r = rotation?;
            if json {
                print_json(&r)?;
            } else {
                println!("New signing key {} published now", r.new_kid);
                for other in &r.others {
                    println!(
                        "New {} signing key {} published now",
                        other.alg, other.new_kid
                    );
                }
                println!("  signs from:        {}", iso(r.active_from));
                println!(
                    "  old keys retire:   {} (or later, once the last token they signed expires)",
                    iso(r.retire_old_after)
                );
            }
        }
        KeysCommand::Retire { dir, kid, json } => {
            let reg = Registry::open(&dir.dir).await?;
            let retired = reg.retire_other_key(&kid).await;
            reg.close().await;
            let at = retired?;
            if json {
                print_json(&serde_json::json!({ "kid": kid, "retire_after": at }))?;
            } else {
                println!(
                    "Signing key {kid} retires {} (unpublished then, once no token it signed is valid)",
                    iso(at)
                );
            }
        }
        KeysCommand::List { dir, json } => {
            let reg = Registry::open(&dir.dir).await?;
            let ring =
                certbound_registry::keys::KeyRing::load(&reg.store, &reg.data.key_dir()).await;
            reg.close().await;
            let ring = ring?;
            let own = ring.own_kids();
            let schedules = ring.schedules();
            if json {
                let rows: Vec<_> = schedules
                    .iter()
                    .map(|k| {
                        let mut row = serde_json::to_value(k).unwrap_or_default();
                        row["held_here"] = own.contains(&k.kid).into();
                        row
                    })
                    .collect();
                print_json(&rows)?;
            } else {
                for k in schedules {
                    println!(
                        "{}  {:<5}  published {}  signs from {}  retires {}  {}",
                        k.kid,
                        k.alg,
                        iso(k.created_at),
                        iso(k.active_from),
                        k.retire_after.map(iso).unwrap_or_else(|| "-".into()),
                        if own.contains(&k.kid) {
                            "(this instance)"
                        } else {
                            "(another instance)"
                        }
                    );
                }
            }
        }
        KeysCommand::Encrypt { dir, json } => {
            let reg = Registry::open(&dir.dir).await?;
            let files = reg.encrypt_keys().await;
            reg.close().await;
            let files = files?;
            if json {
                print_json(&serde_json::json!({ "encrypted": files }))?;
            } else if files.is_empty() {
                println!("Every private key is encrypted already.");
            } else {
                for f in &files {
                    println!("encrypted {}", f.display());
                }
                println!(
                    "{} key file(s) encrypted; keep the key encryption key: without it the \
                     broker cannot start",
                    files.len()
                );
            }
        }
        KeysCommand::Export { dir, format, out } => {
            let set = key_set(&dir.dir).await?;
            let bytes = match format {
                KeyFormat::Jwks => {
                    let mut s = set.to_jwks();
                    s.push('\n');
                    s.into_bytes()
                }
                KeyFormat::Cose => set.to_cose_key_set(),
            };
            match out {
                Some(path) => std::fs::write(&path, bytes)
                    .with_context(|| format!("writing {}", path.display()))?,
                None => std::io::stdout().write_all(&bytes)?,
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn audit(cmd: AuditCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        AuditCommand::Tail {
            dir,
            device,
            lines,
            json,
            follow,
        } => {
            let reg = Registry::open(&dir.dir).await?;
            if follow {
                let result = follow_audit(&reg, device.as_deref(), lines, json).await;
                reg.close().await;
                result?;
                return Ok(ExitCode::SUCCESS);
            }
            let events = reg.store.recent_audit(device.as_deref(), lines).await;
            reg.close().await;
            for e in events? {
                print_audit_event(&e, json)?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// How often `audit tail --follow` polls the store.
const FOLLOW_POLL: std::time::Duration = std::time::Duration::from_millis(500);

/// `audit tail --follow`: the latest `lines` events, then every new one
/// (polling for ids above the last printed) until Ctrl-C.
async fn follow_audit(
    reg: &Registry,
    device: Option<&str>,
    lines: u32,
    json: bool,
) -> anyhow::Result<()> {
    let mut last = reg.store.last_audit_id().await?;
    for (id, e) in reg.store.recent_audit_with_ids(device, lines).await? {
        last = last.max(id);
        print_audit_event(&e, json)?;
    }
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let mut ticker = tokio::time::interval(FOLLOW_POLL);
    loop {
        tokio::select! {
            _ = &mut ctrl_c => return Ok(()),
            _ = ticker.tick() => {}
        }
        loop {
            let batch = reg.store.audit_after(last, device, 500).await?;
            let full = batch.len() == 500;
            for (id, e) in batch {
                last = id;
                print_audit_event(&e, json)?;
            }
            if !full {
                break;
            }
        }
    }
}

/// Prints one event. Fields are escaped again here (they are escaped when
/// written, but a row may predate that or have been written by other
/// means): no control character or bidi control from a field reaches the
/// terminal, in text or JSON.
fn print_audit_event(e: &certbound_broker::store::AuditEvent, json: bool) -> anyhow::Result<()> {
    use certbound_broker::audit::escape_field as esc;
    let e = certbound_broker::store::AuditEvent {
        ts_ms: e.ts_ms,
        actor: esc(&e.actor),
        action: esc(&e.action),
        subject: esc(&e.subject),
        outcome: esc(&e.outcome),
        detail: esc(&e.detail),
    };
    if json {
        println!("{}", serde_json::to_string(&e)?);
    } else {
        println!(
            "{}  {:<18} {:<22} {:<20} {}  {}",
            iso(e.ts_ms / 1000),
            e.actor,
            e.action,
            e.subject,
            e.outcome,
            e.detail
        );
    }
    Ok(())
}

pub async fn service(cmd: ServiceCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ServiceCommand::Provision {
            dir,
            name,
            out,
            days,
            json,
        } => {
            let reg = Registry::open(&dir.dir).await?;
            let result = reg.provision_service(&name, &out, days).await;
            reg.close().await;
            let s = result?;
            if json {
                print_json(&s)?;
            } else {
                println!("Service {} provisioned", s.id);
                println!(
                    "  key:         {} (keep it secret, mode 0600)",
                    s.key_file.display()
                );
                println!("  certificate: {}", s.cert_file.display());
                println!("  serial:      {}", s.serial);
                println!("  expires:     {}", iso(s.not_after));
            }
        }
        ServiceCommand::List { dir, json } => {
            let reg = Registry::open(&dir.dir).await?;
            let result = reg.list_service_certs().await;
            reg.close().await;
            let certs = result?;
            if json {
                print_json(&certs)?;
            } else if certs.is_empty() {
                println!(
                    "No service certificates. Make one with `certbound service provision --name ...`"
                );
            } else {
                for c in certs {
                    let state = match c.revoked_at {
                        Some(at) => format!("revoked {}", iso(at)),
                        None => "active".to_string(),
                    };
                    println!(
                        "{:<24} {}  expires {}  {}",
                        c.name,
                        c.serial,
                        iso(c.not_after),
                        state
                    );
                }
            }
        }
        ServiceCommand::Revoke { dir, service, json } => {
            let reg = Registry::open(&dir.dir).await?;
            let result = reg.revoke_service(&service).await;
            reg.close().await;
            let revoked = result?;
            if json {
                print_json(&revoked)?;
            } else {
                for c in &revoked {
                    println!(
                        "Service certificate {} of {} revoked: refused at HTTPS (TLS and /oauth) within a second",
                        c.serial, c.name
                    );
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
