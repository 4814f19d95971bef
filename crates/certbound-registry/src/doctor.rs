//! `certbound doctor`: readiness checks on a data directory.
//!
//! [`run`] inspects the CA files, the registry and the key files and returns
//! one [`Finding`] per problem, each with a severity, what is wrong and a
//! concrete fix (a command to run). It changes nothing.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::RegistryError;
use crate::registry::ADMIN_CLIENT_FILE;
use crate::registry::Registry;
use crate::store::DeviceStatus;

mod api_keys;
mod claims;
mod grants;
mod sightings;
mod store_tls;
use claims::check_custom_claims;
use grants::{check_scopes, check_token_ttl};
use sightings::{check_cloned, check_revoked_connected};
use store_tls::check_store_tls;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing; nothing to do now.
    Info,
    /// Will become a problem, or weakens security.
    Warning,
    /// Broken now, or a security hole.
    Error,
}

impl Severity {
    /// `info`, `warning` or `error`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

/// One problem found by a check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The check that found it (e.g. `ca-expiry`).
    pub check: &'static str,
    /// How bad it is.
    pub severity: Severity,
    /// What is wrong.
    pub message: String,
    /// What to do about it (usually a command to run).
    pub fix: String,
}

/// Thresholds of the checks.
#[derive(Debug, Clone)]
pub struct DoctorOptions {
    /// Certificates (CA and device) expiring within this many days are reported.
    pub expiry_days: u64,
    /// API token lifetimes above this many seconds are reported.
    pub max_token_ttl_secs: u64,
    /// A signing key older than this many days is due for rotation.
    pub key_max_age_days: u64,
    /// How many of the most recent audit events the clock-skew,
    /// cloned-credentials and revoked-still-connected checks read.
    pub audit_window: u32,
    /// A device certificate used from address A, then B, then A again within
    /// this many seconds is reported as cloned.
    pub clone_window_secs: u64,
}

impl Default for DoctorOptions {
    fn default() -> Self {
        Self {
            expiry_days: 30,
            max_token_ttl_secs: 3600,
            key_max_age_days: 90,
            audit_window: 1000,
            clone_window_secs: 600,
        }
    }
}

/// Check names, in the order they run.
pub const CHECKS: &[&str] = &[
    CHECK_CA_EXPIRY,
    CHECK_DEVICE_CERTS,
    CHECK_TOKEN_TTL,
    CHECK_SCOPES,
    CHECK_CUSTOM_CLAIMS,
    CHECK_KEY_AGE,
    CHECK_PERMISSIONS,
    CHECK_REVOKED,
    CHECK_CLOCK_SKEW,
    CHECK_CLONED,
    CHECK_REVOKED_CONNECTED,
    CHECK_API_KEYS,
];

/// Root / issuing CA expiry.
pub const CHECK_CA_EXPIRY: &str = "ca-expiry";
/// Device certificate expiry and devices that did not renew.
pub const CHECK_DEVICE_CERTS: &str = "device-certs";
/// API token lifetimes.
pub const CHECK_TOKEN_TTL: &str = "token-ttl";
/// Wildcard / over-broad scopes and groups granting nothing.
pub const CHECK_SCOPES: &str = "scopes";
/// Devices whose groups disagree on an attribute; attributes whose type is
/// not the one an API's custom claim declares.
pub const CHECK_CUSTOM_CLAIMS: &str = "custom-claims";
/// Age of the token signing key.
pub const CHECK_KEY_AGE: &str = "signing-key-age";
/// Permissions of private key and credential files.
pub const CHECK_PERMISSIONS: &str = "file-permissions";
/// The root CA private key is online (in the data directory).
pub const CHECK_ROOT_KEY: &str = "root-key-online";
/// Revoked devices that still hold active certificates.
pub const CHECK_REVOKED: &str = "revoked-devices";
/// Token requests refused for timestamps in the future (device clock skew).
pub const CHECK_CLOCK_SKEW: &str = "clock-skew";
/// One device certificate used from two addresses alternately (a copied key).
pub const CHECK_CLONED: &str = "cloned-credentials";
/// Revoked or suspended devices still sending requests.
pub const CHECK_REVOKED_CONNECTED: &str = "revoked-still-connected";
/// A PostgreSQL store reached over a network without verified TLS.
pub const CHECK_STORE_TLS: &str = "store-tls";
/// API keys without expiry, or expired and not revoked.
pub const CHECK_API_KEYS: &str = "api-keys";

const DAY: u64 = 86_400;
/// How many ids a fleet-wide finding names before "and N more".
const LIST_MAX: usize = 5;

/// The exit code for `findings`: 0 when nothing is above info, 1 with
/// warnings, 2 with errors.
pub fn exit_code(findings: &[Finding]) -> u8 {
    match findings.iter().map(|f| f.severity).max() {
        Some(Severity::Error) => 2,
        Some(Severity::Warning) => 1,
        _ => 0,
    }
}

/// Runs every check against the data directory of `reg` at time `now` (Unix seconds).
///
/// # Errors
/// [`RegistryError`] when the database or the CA files cannot be read at all.
pub async fn run(
    reg: &Registry,
    opts: &DoctorOptions,
    now: u64,
) -> Result<Vec<Finding>, RegistryError> {
    let mut out = Vec::new();
    check_ca_expiry(reg, opts, now, &mut out)?;
    check_device_certs(reg, opts, now, &mut out).await?;
    check_token_ttl(reg, opts, &mut out).await?;
    check_scopes(reg, &mut out).await?;
    check_custom_claims(reg, &mut out).await?;
    check_key_age(reg, opts, now, &mut out).await?;
    check_permissions(reg, &mut out)?;
    check_root_key(reg, &mut out);
    check_revoked(reg, &mut out).await?;
    check_clock_skew(reg, opts, &mut out).await?;
    check_cloned(reg, opts, &mut out).await?;
    check_revoked_connected(reg, opts, &mut out).await?;
    check_store_tls(reg, &mut out).await?;
    api_keys::check_api_keys(reg, now, &mut out).await?;
    Ok(out)
}

fn dir_arg(reg: &Registry) -> String {
    shell_quote(&reg.data.root.display().to_string())
}

fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@+,".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// "a, b, c" or "a, b, c, d, e and 7 more".
fn name_list(names: &[String]) -> String {
    let shown = names
        .iter()
        .take(LIST_MAX)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > LIST_MAX {
        format!("{shown} and {} more", names.len() - LIST_MAX)
    } else {
        shown
    }
}

fn when(not_after: u64, now: u64) -> String {
    if not_after <= now {
        let days = (now - not_after) / DAY;
        format!("expired {days} day(s) ago")
    } else {
        let days = (not_after - now) / DAY;
        format!("expires in {days} day(s)")
    }
}

// === 1. CA expiry ===

fn check_ca_expiry(
    reg: &Registry,
    opts: &DoctorOptions,
    now: u64,
    out: &mut Vec<Finding>,
) -> Result<(), RegistryError> {
    let horizon = now.saturating_add(opts.expiry_days.saturating_mul(DAY));
    let dir = dir_arg(reg);
    let pki = reg.data.pki();
    let root_file = pki.root_cert();
    let root_pem = std::fs::read_to_string(&root_file).map_err(RegistryError::io(&root_file))?;
    let root_der = certbound_pki::parse_pem_certs(&root_pem)?
        .into_iter()
        .next()
        .ok_or_else(|| {
            RegistryError::Invalid(format!("{} holds no certificate", root_file.display()))
        })?;
    let root = certbound_pki::cert_summary(&root_der)?;
    if root.not_after <= horizon {
        out.push(Finding {
            check: CHECK_CA_EXPIRY,
            severity: if root.not_after <= now {
                Severity::Error
            } else {
                Severity::Warning
            },
            message: format!(
                "root CA {} {} (notAfter {}); every device and issuing CA certificate chains to it",
                root.subject,
                when(root.not_after, now),
                root.not_after
            ),
            fix: format!(
                "there is no in-place root rollover: create a new data directory \
                 (`certbound init --dir NEW --issuer-id ...`) and re-enroll devices before the root \
                 expires; check with `certbound ca show --dir {dir}`"
            ),
        });
    }
    let current = certbound_pki::list_issuing(&pki)?
        .into_iter()
        .find(|ca| ca.current);
    if let Some(ca) = current
        && ca.not_after <= horizon
    {
        out.push(Finding {
            check: CHECK_CA_EXPIRY,
            severity: if ca.not_after <= now {
                Severity::Error
            } else {
                Severity::Warning
            },
            message: format!(
                "issuing CA {} (serial {}) {}; devices cannot get certificates outliving it",
                ca.subject,
                ca.serial_hex,
                when(ca.not_after, now)
            ),
            fix: format!("certbound ca rotate-issuing --dir {dir}"),
        });
    }
    Ok(())
}

// === 2. device certificates ===

async fn check_device_certs(
    reg: &Registry,
    opts: &DoctorOptions,
    now: u64,
    out: &mut Vec<Finding>,
) -> Result<(), RegistryError> {
    let horizon = now.saturating_add(opts.expiry_days.saturating_mul(DAY));
    let mut expiring = Vec::new();
    let mut expired = Vec::new();
    for device in reg.store.list_devices().await? {
        if device.status != DeviceStatus::Active {
            continue;
        }
        let certs = reg.store.device_certificates(&device.id).await?;
        let Some(latest) = certs
            .iter()
            .filter(|c| c.status == "active")
            .map(|c| c.not_after)
            .max()
        else {
            continue;
        };
        if latest <= now {
            expired.push(device.id);
        } else if latest <= horizon {
            expiring.push(device.id);
        }
    }
    let dir = dir_arg(reg);
    if !expired.is_empty() {
        out.push(Finding {
            check: CHECK_DEVICE_CERTS,
            severity: Severity::Error,
            message: format!(
                "{} active device(s) hold only expired certificates (they did not renew and \
                 cannot get tokens): {}",
                expired.len(),
                name_list(&expired)
            ),
            fix: format!(
                "check the device agent is running and can reach the broker: \
                 `certbound audit tail --dir {dir} --device {}`; if it is gone for good, \
                 `certbound device revoke --dir {dir} {}`",
                shell_quote(&expired[0]),
                shell_quote(&expired[0])
            ),
        });
    }
    if !expiring.is_empty() {
        out.push(Finding {
            check: CHECK_DEVICE_CERTS,
            severity: Severity::Warning,
            message: format!(
                "{} active device(s) have certificates expiring within {} day(s) and no newer one: {}",
                expiring.len(),
                opts.expiry_days,
                name_list(&expiring)
            ),
            fix: format!(
                "make sure their agents renew (renewal starts pki.renewal_grace_days = {} day(s) \
                 before expiry): `certbound device show --dir {dir} {}`",
                reg.config.pki.renewal_grace_days,
                shell_quote(&expiring[0])
            ),
        });
    }
    Ok(())
}

// === 5. signing key age ===

fn file_age(path: &Path, now: u64) -> Option<u64> {
    let modified = std::fs::metadata(path).ok()?.modified().ok()?;
    let secs = modified
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_secs();
    Some(now.saturating_sub(secs))
}

async fn check_key_age(
    reg: &Registry,
    opts: &DoctorOptions,
    now: u64,
    out: &mut Vec<Finding>,
) -> Result<(), RegistryError> {
    let dir = dir_arg(reg);
    // The schedule rows of this instance's own keys (those it holds the
    // files of; other instances on the store rotate theirs), read-only
    // (KeyRing::load would write the legacy row).
    let keys_dir = reg.data.keys();
    let schedules: Vec<_> = reg
        .store
        .key_schedules()
        .await?
        .into_iter()
        .filter(|s| keys_dir.join(format!("{}.key.pem", s.kid)).exists())
        .collect();
    let signing = schedules
        .iter()
        .filter(|s| s.active_from <= now && s.retire_after.is_none_or(|r| now < r))
        .max_by_key(|s| (s.active_from, s.created_at));
    let (kid, created_at) = match signing {
        Some(s) => (s.kid.clone(), s.created_at),
        None if schedules.is_empty() => match crate::keys::load_current(&reg.data.key_dir()) {
            Ok(key) => (key.kid, 0),
            Err(_) => {
                out.push(Finding {
                    check: CHECK_KEY_AGE,
                    severity: Severity::Error,
                    message: "no token signing key: no key schedule and no current key file".into(),
                    fix: format!("certbound keys rotate --dir {dir}"),
                });
                return Ok(());
            }
        },
        None => {
            out.push(Finding {
                check: CHECK_KEY_AGE,
                severity: Severity::Error,
                message: "no signing key is active now (all retired or not yet active)".into(),
                fix: format!("certbound keys rotate --dir {dir} --grace 0"),
            });
            return Ok(());
        }
    };
    // A rotation in progress (a newer key published, not signing yet) is the fix already.
    if schedules
        .iter()
        .any(|s| s.kid != kid && s.active_from > now && s.retire_after.is_none())
    {
        return Ok(());
    }
    let key_file: PathBuf = reg.data.keys().join(format!("{kid}.key.pem"));
    let (age, source) = if created_at > 0 {
        (Some(now.saturating_sub(created_at)), "created")
    } else {
        // Imported from a data directory older than key rotation: the
        // schedule does not know when the key was made; its file does.
        (file_age(&key_file, now), "key file last modified")
    };
    let max = opts.key_max_age_days.saturating_mul(DAY);
    match age {
        Some(age) if age > max => out.push(Finding {
            check: CHECK_KEY_AGE,
            severity: Severity::Warning,
            message: format!(
                "signing key {kid} is {} day(s) old ({source}), overdue for rotation (every {} days)",
                age / DAY,
                opts.key_max_age_days
            ),
            fix: format!("certbound keys rotate --dir {dir}"),
        }),
        Some(_) => {}
        None => out.push(Finding {
            check: CHECK_KEY_AGE,
            severity: Severity::Info,
            message: format!("the age of signing key {kid} is unknown"),
            fix: format!(
                "rotate it to start a known schedule: certbound keys rotate --dir {dir}"
            ),
        }),
    }
    Ok(())
}

// === 6. file permissions ===

fn secret_files(reg: &Registry) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in [reg.data.pki().dir, reg.data.keys()] {
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for entry in entries.flatten() {
                let path = entry.path();
                if path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.ends_with(".key.pem"))
                {
                    files.push(path);
                }
            }
        }
    }
    let admin = reg.data.root.join(ADMIN_CLIENT_FILE);
    if admin.exists() {
        files.push(admin);
    }
    files.sort();
    files
}

#[cfg(unix)]
fn check_permissions(reg: &Registry, out: &mut Vec<Finding>) -> Result<(), RegistryError> {
    use std::os::unix::fs::PermissionsExt;
    for file in secret_files(reg) {
        let meta = std::fs::metadata(&file).map_err(RegistryError::io(&file))?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            out.push(Finding {
                check: CHECK_PERMISSIONS,
                severity: Severity::Error,
                message: format!(
                    "{} holds a secret but has mode {mode:03o}: readable by group or others",
                    file.display()
                ),
                fix: format!("chmod 600 {}", shell_quote(&file.display().to_string())),
            });
        }
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_permissions(_reg: &Registry, _out: &mut Vec<Finding>) -> Result<(), RegistryError> {
    Ok(())
}

/// The root CA key belongs offline: only `ca rotate-issuing` needs it.
fn check_root_key(reg: &Registry, out: &mut Vec<Finding>) {
    let key = reg.data.pki().root_key();
    if key.exists() {
        let path = shell_quote(&key.display().to_string());
        out.push(Finding {
            check: CHECK_ROOT_KEY,
            severity: Severity::Warning,
            message: format!(
                "the root CA key is online ({}): whoever reads this directory can mint a new \
                 issuing CA; serving and provisioning never need it",
                key.display()
            ),
            fix: format!(
                "move {path} to offline storage; rotate with `certbound ca rotate-issuing \
                 --dir {} --root-key PATH`",
                dir_arg(reg)
            ),
        });
    }
}

// === 7. revoked devices with active certificates ===

async fn check_revoked(reg: &Registry, out: &mut Vec<Finding>) -> Result<(), RegistryError> {
    let dir = dir_arg(reg);
    for device in reg.store.list_devices().await? {
        if device.status != DeviceStatus::Revoked {
            continue;
        }
        let active: Vec<String> = reg
            .store
            .device_certificates(&device.id)
            .await?
            .into_iter()
            .filter(|c| c.status == "active")
            .map(|c| c.serial)
            .collect();
        if !active.is_empty() {
            out.push(Finding {
                check: CHECK_REVOKED,
                severity: Severity::Error,
                message: format!(
                    "device {} is revoked but {} certificate(s) of it are still active ({}): \
                     they are missing from the CRL",
                    device.id,
                    active.len(),
                    name_list(&active)
                ),
                fix: format!(
                    "certbound device revoke --dir {dir} {} (revokes its certificates again)",
                    shell_quote(&device.id)
                ),
            });
        }
    }
    Ok(())
}

// === 8. clock skew ===

fn mentions_future(detail: &str) -> bool {
    let lower = detail.to_ascii_lowercase();
    // `ClaimError::NotYetValid` reads "not valid before <nbf> (now <now>, <n> s early)".
    lower.contains("notyetvalid")
        || lower.contains("in the future")
        || lower.contains("not valid before")
}

async fn check_clock_skew(
    reg: &Registry,
    opts: &DoctorOptions,
    out: &mut Vec<Finding>,
) -> Result<(), RegistryError> {
    let mut subjects: Vec<String> = Vec::new();
    let mut count = 0usize;
    for event in reg.store.recent_audit(None, opts.audit_window).await? {
        if event.action == "token.refused" && mentions_future(&event.detail) {
            count += 1;
            if !subjects.contains(&event.subject) {
                subjects.push(event.subject);
            }
        }
    }
    if count > 0 {
        out.push(Finding {
            check: CHECK_CLOCK_SKEW,
            severity: Severity::Warning,
            message: format!(
                "{count} of the last {} audit events are token requests refused as dated in the \
                 future (clock skew beyond broker.leeway_secs = {} s), from: {}",
                opts.audit_window,
                reg.config.broker.leeway_secs,
                name_list(&subjects)
            ),
            fix: "synchronise the clocks of those devices and of the broker host with NTP \
                  (e.g. `timedatectl set-ntp true`)"
                .into(),
        });
    }
    Ok(())
}
