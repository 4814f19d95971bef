//! `device sign-csr`, `ca show|rotate-issuing|export`, `crl`.

use certbound_registry::instances;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use certbound_registry::registry::Registry;

use crate::cli::{CaCommand, ClaimCommand, TrustCommand};
use crate::output::{iso, now, print_json};

pub async fn sign_csr(
    dir: &Path,
    csr: &Path,
    id: &str,
    groups: &[String],
    out: &Path,
    days: Option<u32>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let bytes = std::fs::read(csr).with_context(|| format!("reading the CSR {}", csr.display()))?;
    if out.exists() {
        anyhow::bail!(
            "{} exists; choose another --out (nothing was registered)",
            out.display()
        );
    }
    let reg = Registry::open(dir).await?;
    let signed = reg.sign_csr(&bytes, id, groups, days).await;
    reg.close().await;
    let signed = signed?;
    std::fs::write(out, &signed.chain_pem)
        .with_context(|| format!("writing {} (device {id} IS registered; re-run `certbound device show {id} --json` to get the certificate)", out.display()))?;
    if json {
        print_json(&signed)?;
    } else {
        println!(
            "Device {} registered from its CSR (the key never left it)",
            signed.id
        );
        println!(
            "  certificate: {} (device certificate, then the issuing CA)",
            out.display()
        );
        println!("  serial:      {}", signed.serial);
        println!("  expires:     {}", iso(signed.not_after));
        println!(
            "  CSR subject: {} (ignored: certbound's profile decides)",
            signed.csr_subject
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn ca(cmd: CaCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        CaCommand::Show { dir, json } => {
            let reg = Registry::open(&dir.dir).await?;
            let cas = reg.issuing_cas();
            reg.close().await;
            let cas = cas?;
            if json {
                print_json(&cas.iter().map(|c| serde_json::json!({
                    "serial": c.serial_hex, "subject": c.subject, "not_before": c.not_before,
                    "not_after": c.not_after, "current": c.current,
                })).collect::<Vec<_>>())?;
            } else {
                for c in cas {
                    println!(
                        "{} issuing CA {}  {}  valid {} .. {}",
                        if c.current { "*" } else { " " },
                        c.serial_hex,
                        c.subject,
                        iso(c.not_before),
                        iso(c.not_after)
                    );
                }
                println!("(* = current: signs new device certificates)");
            }
        }
        CaCommand::RotateIssuing {
            dir,
            root_key,
            json,
        } => {
            let reg = Registry::open(&dir.dir).await?;
            let rotated = reg
                .rotate_issuing_ca_with_root_key(root_key.as_deref())
                .await;
            reg.close().await;
            let r = rotated?;
            if json {
                print_json(&serde_json::json!({
                    "old_serial": r.old_serial, "new_serial": r.new_serial, "new_not_after": r.new_not_after,
                }))?;
            } else {
                println!(
                    "New issuing CA {} (valid until {})",
                    r.new_serial,
                    iso(r.new_not_after)
                );
                println!(
                    "  the previous one ({}) stays trusted while valid; devices renew onto the new one",
                    r.old_serial
                );
            }
        }
        CaCommand::SignInstance {
            dir,
            csr,
            out,
            root_key,
        } => {
            let text = std::fs::read_to_string(&csr)
                .with_context(|| format!("reading the request {}", csr.display()))?;
            let signed = instances::sign_instance(&dir.dir, &text, root_key.as_deref()).await?;
            write_out(out.as_deref(), signed.chain_pem.as_bytes())?;
            eprintln!(
                "Signed issuing CA {} (valid until {}) and published it: every instance trusts \
                 the certificates it issues.\nNext, on the joining instance: certbound ca install \
                 --dir <its DIR> <this certificate>",
                signed.serial_hex,
                iso(signed.not_after)
            );
        }
        CaCommand::Install {
            dir,
            cert,
            server_names,
        } => {
            let text = std::fs::read_to_string(&cert)
                .with_context(|| format!("reading the certificate {}", cert.display()))?;
            let names = if server_names.is_empty() {
                certbound_registry::registry::InitOptions::default().server_names
            } else {
                server_names
            };
            let serial = instances::install(&dir.dir, &text, &names).await?;
            println!(
                "Installed issuing CA {serial}; this instance is ready: certbound serve --dir {}",
                dir.dir.display()
            );
        }
        CaCommand::Trust(cmd) => return trust(cmd).await,
        CaCommand::Export { dir, out } => {
            let path = certbound_registry::config::DataDir::new(&dir.dir)
                .pki()
                .chain();
            let pem = std::fs::read_to_string(&path).with_context(|| {
                format!(
                    "reading {} (is {} initialised?)",
                    path.display(),
                    dir.dir.display()
                )
            })?;
            write_out(out.as_deref(), pem.as_bytes())?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `certbound init --join`.
pub async fn join(
    dir: &Path,
    options: certbound_registry::registry::InitOptions,
    name: Option<String>,
    key_grace: u64,
) -> anyhow::Result<ExitCode> {
    let name = match name {
        Some(n) => n,
        None => std::path::absolute(dir)
            .ok()
            .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "instance".into()),
    };
    let started =
        instances::join(dir, &options, &instances::JoinOptions { name, key_grace }).await?;
    println!(
        "Joined {} as a new instance in {}",
        started.issuer_id,
        dir.display()
    );
    println!(
        "  signing key:   {} (published now, signs from {})",
        started.kid,
        iso(started.active_from)
    );
    println!("  CA request:    {}", started.csr_file.display());
    println!(
        "Next, where the root key is: certbound ca sign-instance --dir <DIR> {} --out issuing-ca.pem",
        started.csr_file.display()
    );
    println!(
        "then here: certbound ca install --dir {} issuing-ca.pem",
        dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn crl(
    dir: &Path,
    out: Option<&Path>,
    der: bool,
    ca: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let reg = Registry::open(dir).await?;
    let set = reg.crl_set(now()).await;
    reg.close().await;
    let set = set?;
    let wanted = ca.map(|s| s.trim_start_matches('0').to_ascii_lowercase());
    let picked: Vec<_> = set
        .iter()
        .filter(|c| match &wanted {
            Some(w) => c.ca_serial.trim_start_matches('0') == w,
            None => !der || c.current,
        })
        .collect();
    if picked.is_empty() {
        let known: Vec<&str> = set.iter().map(|c| c.ca_serial.as_str()).collect();
        anyhow::bail!(
            "no issuing CA with serial {:?} is still valid; the valid ones are: {} (see `certbound ca show`)",
            ca.unwrap_or_default(),
            known.join(", ")
        );
    }
    if der {
        write_out(out, &picked[0].crl.der)?;
    } else {
        let pem: String = picked.iter().map(|c| c.crl.pem.as_str()).collect();
        write_out(out, pem.as_bytes())?;
    }
    Ok(ExitCode::SUCCESS)
}

fn write_out(out: Option<&Path>, bytes: &[u8]) -> anyhow::Result<()> {
    match out {
        Some(path) => {
            std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
        }
        None => Ok(std::io::stdout().write_all(bytes)?),
    }
}

async fn trust(cmd: TrustCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        TrustCommand::Add {
            dir,
            ca,
            name,
            jit_group,
        } => {
            let pem = std::fs::read_to_string(&ca)
                .with_context(|| format!("reading {}", ca.display()))?;
            let name = name.unwrap_or_else(|| {
                ca.file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "partner".into())
            });
            let reg = Registry::open(&dir.dir).await?;
            let added = reg
                .trust_external_ca(&name, &pem, jit_group.as_deref())
                .await;
            reg.close().await;
            let t = added?;
            println!(
                "Trusting external CA {} ({}, valid until {})",
                t.name,
                t.subject,
                iso(t.not_after)
            );
            match &t.jit_group {
                Some(g) => println!("  its devices are registered into group {g} on first use"),
                None => println!(
                    "  just-in-time registration is off: its devices are refused (add --jit-group)"
                ),
            }
        }
        TrustCommand::List { dir, json } => {
            let reg = Registry::open(&dir.dir).await?;
            let list = reg.trusted_cas().await;
            reg.close().await;
            let list = list?;
            if json {
                print_json(&list)?;
            } else if list.is_empty() {
                println!(
                    "No external CAs. Add one with `certbound ca trust add partner-ca.pem --jit-group <group>`"
                );
            } else {
                for t in list {
                    println!(
                        "{:<20} {}  until {}  jit_group {}",
                        t.name,
                        t.subject,
                        iso(t.not_after),
                        t.jit_group.as_deref().unwrap_or("(off)")
                    );
                }
            }
        }
        TrustCommand::Remove { dir, name } => {
            let reg = Registry::open(&dir.dir).await?;
            let r = reg.untrust_external_ca(&name).await;
            reg.close().await;
            r?;
            println!("External CA {name} is no longer trusted");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `90`, `90s`, `30m`, `12h`, `7d` as seconds.
pub(crate) fn parse_duration(text: &str) -> anyhow::Result<u64> {
    let t = text.trim();
    let (num, unit) = match t.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => t.split_at(i),
        None => (t, "s"),
    };
    let n: u64 = num
        .parse()
        .with_context(|| format!("{text:?} is not a duration like 90s, 30m, 12h or 7d"))?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        other => anyhow::bail!("unknown duration unit {other:?}: use s, m, h or d"),
    };
    n.checked_mul(mult).context("duration too large")
}

pub async fn claim(cmd: ClaimCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ClaimCommand::Create {
            dir,
            group,
            uses,
            ttl,
            id_pattern,
            allowlist,
            out,
            json,
        } => {
            let ttl = parse_duration(&ttl)?;
            let allowlist = match allowlist {
                Some(path) => Some(
                    std::fs::read_to_string(&path)
                        .with_context(|| format!("reading {}", path.display()))?
                        .lines()
                        .map(str::trim)
                        .filter(|l| !l.is_empty() && !l.starts_with('#'))
                        .map(str::to_string)
                        .collect(),
                ),
                None => None,
            };
            let reg = Registry::open(&dir.dir).await?;
            let created = reg
                .create_claim(&group, uses, ttl, id_pattern.as_deref(), allowlist, &out)
                .await;
            reg.close().await;
            let c = created?;
            if json {
                print_json(&c)?;
            } else {
                println!(
                    "Claim {} for group {}: {} uses until {}",
                    c.claim.id,
                    c.claim.group,
                    c.claim.uses_total,
                    iso(c.claim.expires_at)
                );
                println!(
                    "  key:         {} (the production line's secret, mode 0600)",
                    c.key_file.display()
                );
                println!("  certificate: {}", c.cert_file.display());
                if let Some(p) = &c.claim.id_pattern {
                    println!("  device ids:  must match {p}");
                }
            }
        }
        ClaimCommand::List { dir, json } => {
            let reg = Registry::open(&dir.dir).await?;
            let list = reg.store.list_claims().await;
            reg.close().await;
            let list = list?;
            if json {
                print_json(&list)?;
            } else if list.is_empty() {
                println!(
                    "No claims. Create one with `certbound claim create --group <g> --uses <n>`"
                );
            } else {
                for c in list {
                    let state = if c.revoked {
                        "revoked".to_string()
                    } else if now() >= c.expires_at {
                        "expired".to_string()
                    } else {
                        format!("{} of {} uses left", c.uses_left, c.uses_total)
                    };
                    println!(
                        "{}  group {}  until {}  {state}",
                        c.id,
                        c.group,
                        iso(c.expires_at)
                    );
                }
            }
        }
        ClaimCommand::Revoke { dir, id } => {
            let reg = Registry::open(&dir.dir).await?;
            let r = reg.revoke_claim(&id).await;
            reg.close().await;
            r?;
            println!("Claim {id} revoked");
        }
    }
    Ok(ExitCode::SUCCESS)
}
