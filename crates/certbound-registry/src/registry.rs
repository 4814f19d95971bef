//! Operator operations on a data directory: `init`, APIs, groups, device
//! provisioning, listing and revocation. The CLI is a thin shell over these.

use std::fs;
use std::path::{Path, PathBuf};

use certbound_pki::{
    CaOptions, IssuingCa, KeyEncryptionKey, init_ca, init_ca_root_key_at, validate_device_id,
};
use certbound_proto::EcPublicKey;
use serde::Serialize;

use crate::clock::unix_now;
use crate::config::{Config, DataDir, KEY_ENCRYPTION_KEY_ENV, template};
use crate::error::RegistryError;
use crate::keys;
use crate::store::{Api, AuditEvent, CertRecord, Device, DeviceStatus, Grant, Store};

/// Choices made once, at `init`.
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// Host names and IP addresses the server certificate (HTTPS and the
    /// embedded MQTT server) is valid for. Default: `localhost`, `127.0.0.1`.
    pub server_names: Vec<String>,
    /// Write the root CA private key here (mode 0600) instead of
    /// `pki/root-ca.key.pem`, to keep it offline. Default: in the data directory.
    pub root_key_out: Option<PathBuf>,
    /// Encrypt the private keys at rest with the key in this file (base64 of
    /// 32 bytes), and name it in `[keys] encryption_key_file`. Without it,
    /// the environment variable `CERTBOUND_KEY_ENCRYPTION_KEY` is used when set.
    pub encryption_key_file: Option<PathBuf>,
    /// The registry database: `postgres://...` (written to `[store] url`).
    /// Default: SQLite in the data directory.
    pub store_url: Option<String>,
}

impl InitOptions {
    /// For tests: the defaults, with a store of its own on the backend that
    /// `certbound_store::testing` selects (SQLite: the data directory's
    /// file; PostgreSQL: a fresh schema).
    pub async fn on_test_backend() -> Self {
        Self {
            store_url: crate::store::testing::current().fresh_url().await,
            ..Default::default()
        }
    }
}

impl Default for InitOptions {
    fn default() -> Self {
        Self {
            server_names: vec!["localhost".into(), "127.0.0.1".into()],
            root_key_out: None,
            encryption_key_file: None,
            store_url: None,
        }
    }
}

/// The key encryption key `init` writes keys with, and the config line naming its file.
fn init_key_encryption(
    options: &InitOptions,
) -> Result<(Option<std::sync::Arc<KeyEncryptionKey>>, Option<String>), RegistryError> {
    let env = std::env::var_os(KEY_ENCRYPTION_KEY_ENV).filter(|v| !v.is_empty());
    match (&options.encryption_key_file, env) {
        (Some(_), Some(_)) => Err(RegistryError::Invalid(format!(
            "--encryption-key-file is given and the environment variable \
             {KEY_ENCRYPTION_KEY_ENV} is set; use one of them"
        ))),
        (Some(file), None) => {
            let file = std::path::absolute(file).map_err(RegistryError::io(file))?;
            let kek = KeyEncryptionKey::read_file(&file)?;
            let value = toml::Value::String(file.display().to_string());
            Ok((
                Some(std::sync::Arc::new(kek)),
                Some(format!("encryption_key_file = {value}")),
            ))
        }
        (None, Some(value)) => {
            let kek = value
                .to_str()
                .ok_or_else(|| {
                    RegistryError::Invalid(format!("{KEY_ENCRYPTION_KEY_ENV} is not base64 text"))
                })
                .and_then(|text| {
                    KeyEncryptionKey::from_base64(text).map_err(|e| {
                        RegistryError::Invalid(format!("{KEY_ENCRYPTION_KEY_ENV}: {e}"))
                    })
                })?;
            Ok((Some(std::sync::Arc::new(kek)), None))
        }
        (None, None) => Ok((None, None)),
    }
}

/// Creates a new data directory: CA hierarchy, token signing key, config and database.
pub async fn init(dir: &Path, issuer_id: &str) -> Result<(), RegistryError> {
    init_with(dir, issuer_id, &InitOptions::default()).await
}

/// [`init`] with explicit [`InitOptions`].
pub async fn init_with(
    dir: &Path,
    issuer_id: &str,
    options: &InitOptions,
) -> Result<(), RegistryError> {
    check_server_names(&options.server_names)?;
    let (data, config_text) = init_config(dir, issuer_id, options)?;
    // Validate the issuer id through the same rules as the config file.
    let config = Config::parse(&config_text, &data.config())?;
    fs::create_dir_all(dir).map_err(RegistryError::io(dir))?;
    // A store that serves a service already takes new instances by join.
    let (store, _) = Store::connect_and_migrate(&config.store_url(&data)).await?;
    let taken = store.setting(crate::store::SETTING_ISSUER_ID).await;
    store.close().await;
    if let Some(issuer) = taken? {
        return Err(RegistryError::Invalid(format!(
            "the store {} already serves {issuer}: add this instance to it with \
             `certbound init --join --store URL`, or use an empty database for a new service",
            crate::store::redact_url(&config.store_url(&data))
        )));
    }
    let now = unix_now();
    match &options.root_key_out {
        Some(out) => init_ca_root_key_at(&data.pki(), &CaOptions::default(), now, out)?,
        None => init_ca(&data.pki(), &CaOptions::default(), now)?,
    }
    let client = issue_tls_identities(&data, &options.server_names, now)?;
    let kid = keys::create_signing_key(&data.key_dir())?;
    let (store, _) = Store::connect_and_migrate(&config.store_url(&data)).await?;
    if let Err(e) = crate::instances::check_service(&store, &data, &config, now).await {
        store.close().await;
        return Err(e);
    }
    keys::KeyRing::load(&store, &data.key_dir()).await?;
    services::record(&store, BROKER_SERVICE_NAME, &client, now).await?;
    store
        .append_audit(&[AuditEvent {
            ts_ms: now.saturating_mul(1000),
            actor: "cli".into(),
            action: "broker.initialised".into(),
            subject: issuer_id.into(),
            outcome: "ok".into(),
            detail: format!("signing key {kid}"),
        }])
        .await?;
    store.close().await;
    // The config file is written last: its presence marks a complete init.
    fs::write(data.config(), config_text).map_err(RegistryError::io(data.config()))?;
    // The admin API and its bootstrap client (credentials in DIR/admin-client.json).
    let registry = Registry::open(dir).await?;
    let admin = registry.ensure_admin().await;
    registry.close().await;
    admin?;
    Ok(())
}

/// Checks `--server-name` values: DNS names or IP addresses, at least one.
pub(crate) fn check_server_names(names: &[String]) -> Result<(), RegistryError> {
    if names.is_empty() {
        return Err(RegistryError::Invalid(
            "at least one server name is needed (e.g. --server-name localhost)".into(),
        ));
    }
    for name in names {
        let ok = !name.is_empty()
            && name.len() <= 253
            && (name.parse::<std::net::IpAddr>().is_ok()
                || name.split('.').all(|l| {
                    !l.is_empty()
                        && l.len() <= 63
                        && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                }));
        if !ok {
            return Err(RegistryError::Invalid(format!(
                "server name {name:?} is neither a DNS name nor an IP address"
            )));
        }
    }
    Ok(())
}

/// The config file text of a new data directory, and the data directory
/// with the key encryption key new keys are written with. Refuses a
/// directory that holds a data directory already.
pub(crate) fn init_config(
    dir: &Path,
    issuer_id: &str,
    options: &InitOptions,
) -> Result<(DataDir, String), RegistryError> {
    let (kek, keys_line) = init_key_encryption(options)?;
    let data = DataDir::new(dir).with_key_encryption(kek);
    if data.config().exists() || data.database().exists() || data.pki().dir.exists() {
        return Err(RegistryError::AlreadyInitialised(dir.to_path_buf()));
    }
    let mut config_text = template(issuer_id);
    if let Some(line) = keys_line {
        config_text = config_text.replace(
            "# encryption_key_file = \"/run/secrets/certbound-kek\"",
            &line,
        );
    }
    if let Some(url) = &options.store_url {
        crate::store::Backend::of_url(url)?;
        config_text = config_text.replace(
            "# url = \"postgres://certbound@db.example.com:5432/certbound\"",
            &format!("url = {}", toml::Value::String(url.clone())),
        );
    }
    Ok((data, config_text))
}

/// Issues, with the data directory's issuing CA, the TLS server identity of
/// the embedded MQTT and HTTPS servers (for `server_names`) and the broker's
/// own client identity towards an MQTT server, and writes both. Returns the
/// client certificate (to record).
pub(crate) fn issue_tls_identities(
    data: &DataDir,
    server_names: &[String],
    now: u64,
) -> Result<certbound_pki::IssuedCert, RegistryError> {
    let ca = IssuingCa::load(&data.pki())?;
    let server = ca.issue_server(server_names, SERVER_CERT_DAYS, now)?;
    write_key_and_chain(
        &data.server_key(),
        &data.server_cert(),
        &server.key_pkcs8_pem,
        &server.chain_pem,
    )?;
    let client = ca.issue_service(BROKER_SERVICE_NAME, SERVER_CERT_DAYS, now)?;
    write_key_and_chain(
        &data.broker_key(),
        &data.broker_cert(),
        &client.key_pkcs8_pem,
        &client.chain_pem,
    )?;
    Ok(client.cert)
}

/// Service name (certificate CN and `urn:certbound:service:` SAN) of the
/// broker's MQTT client identity; reserved (no device may take it).
pub const BROKER_SERVICE_NAME: &str = certbound_pki::BROKER_SERVICE_NAME;
/// Lifetime of the server and broker certificates made at init, days.
pub const SERVER_CERT_DAYS: u32 = 397;

fn write_key_and_chain(
    key_path: &Path,
    cert_path: &Path,
    key_pem: &str,
    chain_pem: &str,
) -> Result<(), RegistryError> {
    keys::write_private(key_path, key_pem.as_bytes())?;
    fs::write(cert_path, chain_pem).map_err(RegistryError::io(cert_path))
}

/// The result of provisioning one device.
#[derive(Debug, Clone, Serialize)]
pub struct ProvisionedDevice {
    /// Device id.
    pub id: String,
    /// Certificate serial (lowercase hex).
    pub serial: String,
    /// SHA-256 thumbprint (lowercase hex).
    pub thumbprint: String,
    /// Certificate expiry, Unix seconds.
    pub not_after: u64,
    /// Private key file (mode 0600).
    pub key_file: PathBuf,
    /// Certificate chain file (leaf, issuing CA).
    pub cert_file: PathBuf,
}

/// An opened data directory.
#[derive(Debug)]
pub struct Registry {
    /// Paths.
    pub data: DataDir,
    /// Configuration.
    pub config: Config,
    /// Database.
    pub store: Store,
    /// Who acts, for the audit log: "cli", or "admin:<client_id>" through the admin API.
    pub actor: String,
}

pub(crate) fn check_token(kind: &str, value: &str) -> Result<(), RegistryError> {
    if value.is_empty()
        || value.len() > 256
        || !value
            .chars()
            .all(|c| c.is_ascii_graphic() && c != '"' && c != '\\')
    {
        return Err(RegistryError::Invalid(format!(
            "{kind} {value:?} is invalid: use 1-256 printable ASCII characters without spaces, quotes or backslashes"
        )));
    }
    Ok(())
}

/// Parses a space-separated scope list, validating each scope.
pub fn parse_scopes(text: &str) -> Result<Vec<String>, RegistryError> {
    let mut out: Vec<String> = Vec::new();
    for s in text.split_whitespace() {
        check_token("scope", s)?;
        if !out.iter().any(|o| o == s) {
            out.push(s.to_string());
        }
    }
    Ok(out)
}

impl Registry {
    /// Opens an initialised data directory.
    pub async fn open(dir: &Path) -> Result<Self, RegistryError> {
        let config = Config::load(dir)?;
        let data = DataDir::with_config(dir, &config);
        let store = Store::connect(&config.store_url(&data)).await?;
        crate::external::import_files(&store, &data.pki(), unix_now()).await?;
        Ok(Self {
            data,
            config,
            store,
            actor: "cli".into(),
        })
    }

    /// A registry over an already open store (the admin API), acting as `actor`.
    pub fn with_store(dir: &Path, config: Config, store: Store, actor: String) -> Self {
        Self {
            data: DataDir::with_config(dir, &config),
            config,
            store,
            actor,
        }
    }

    /// Closes the database cleanly.
    pub async fn close(self) {
        self.store.close().await;
    }

    async fn audit(
        &self,
        action: &str,
        subject: &str,
        detail: String,
    ) -> Result<(), RegistryError> {
        self.store
            .append_audit(&[AuditEvent {
                ts_ms: unix_now().saturating_mul(1000),
                actor: self.actor.clone(),
                action: action.into(),
                subject: subject.into(),
                outcome: "ok".into(),
                detail,
            }])
            .await
            .map_err(crate::error::RegistryError::from)
    }

    /// Registers an API whose tokens are CWTs.
    pub async fn create_api(
        &self,
        id: &str,
        scopes: &str,
        ttl_secs: u64,
    ) -> Result<Api, RegistryError> {
        self.create_api_with_format(id, scopes, ttl_secs, "cwt")
            .await
    }

    /// Registers an API; `format` is the token format its clients get:
    /// `cwt` (compact CBOR) or `jwt` (RFC 9068). Devices always get CWTs.
    pub async fn create_api_with_format(
        &self,
        id: &str,
        scopes: &str,
        ttl_secs: u64,
        format: &str,
    ) -> Result<Api, RegistryError> {
        if format != "cwt" && format != "jwt" {
            return Err(RegistryError::Invalid(format!(
                "token format {format:?} is not supported: use \"cwt\" or \"jwt\""
            )));
        }
        check_token("API identifier", id)?;
        groups::check_ttl(ttl_secs)?;
        let scopes = parse_scopes(scopes)?;
        if scopes.is_empty() {
            return Err(RegistryError::Invalid(
                "an API needs at least one scope (--scopes \"read write\")".into(),
            ));
        }
        let api = Api {
            id: id.into(),
            format: format.into(),
            ttl_secs,
            scopes,
        };
        self.store.create_api(&api, unix_now()).await?;
        self.audit(
            "api.created",
            id,
            format!(
                "scopes={} ttl={ttl_secs} format={format}",
                api.scopes.join(" ")
            ),
        )
        .await?;
        Ok(api)
    }

    /// Creates a group; each grant is `(api id, scopes)` and must name a
    /// registered API and only scopes that API defines.
    pub async fn create_group(
        &self,
        name: &str,
        grants: &[(String, String)],
    ) -> Result<Vec<Grant>, RegistryError> {
        check_token("group name", name)?;
        let mut out = Vec::new();
        for (api_id, scopes) in grants {
            out.push(self.check_grant(api_id, scopes).await?);
        }
        self.store.create_group(name, &out, unix_now()).await?;
        let detail = out
            .iter()
            .map(|g| format!("{}={}", g.api_id, g.scopes.join(" ")))
            .collect::<Vec<_>>()
            .join("; ");
        self.audit("group.created", name, detail).await?;
        Ok(out)
    }

    /// Issues a key and certificate for a new device, writes
    /// `<out>/<id>.key.pem` (0600) and `<out>/<id>.cert.pem`, and registers it.
    /// Either everything happens or nothing does.
    pub async fn provision_device(
        &self,
        id: &str,
        groups: &[String],
        out_dir: &Path,
        lifetime_days: Option<u32>,
    ) -> Result<ProvisionedDevice, RegistryError> {
        self.check_new_device(id, groups).await?;
        let ca = IssuingCa::load(&self.data.pki())?;
        let days = lifetime_days.unwrap_or(self.config.pki.device_cert_days);
        let now = unix_now();
        let bundle = ca.issue_device(id, days, now)?;
        let (key_file, cert_file) = bundle.write_to(out_dir, id)?;
        let record = CertRecord {
            serial: bundle.cert.serial_hex.clone(),
            device_id: id.into(),
            thumbprint: hex::encode(bundle.cert.thumbprint),
            not_before: bundle.cert.not_before,
            not_after: bundle.cert.not_after,
            status: "active".into(),
            der: bundle.cert.der.clone(),
        };
        if let Err(e) = self.store.create_device(id, groups, &record, now).await {
            // Do not leave credentials for a device that is not registered.
            let _ = fs::remove_file(&key_file);
            let _ = fs::remove_file(&cert_file);
            return Err(e.into());
        }
        self.audit(
            "device.provisioned",
            id,
            format!(
                "serial={} groups={} not_after={}",
                record.serial,
                groups.join(","),
                record.not_after
            ),
        )
        .await?;
        Ok(ProvisionedDevice {
            id: id.into(),
            serial: record.serial,
            thumbprint: record.thumbprint,
            not_after: record.not_after,
            key_file,
            cert_file,
        })
    }

    /// A device id that is valid and free, in groups that exist.
    pub(crate) async fn check_new_device(
        &self,
        id: &str,
        groups: &[String],
    ) -> Result<(), RegistryError> {
        validate_device_id(id)?;
        for g in groups {
            if !self.store.group_exists(g).await? {
                return Err(RegistryError::NotFound {
                    kind: "group",
                    name: g.clone(),
                    hint: "; create it first with `certbound group create`".into(),
                });
            }
        }
        if self.store.get_device(id).await?.is_some() {
            return Err(RegistryError::Conflict {
                kind: "device",
                name: id.into(),
            });
        }
        Ok(())
    }

    /// A device and its certificates.
    pub async fn show_device(&self, id: &str) -> Result<(Device, Vec<CertRecord>), RegistryError> {
        let device = self
            .store
            .get_device(id)
            .await?
            .ok_or_else(|| RegistryError::NotFound {
                kind: "device",
                name: id.into(),
                hint: "; see `certbound device list`".into(),
            })?;
        let certs = self.store.device_certificates(id).await?;
        Ok((device, certs))
    }

    /// Changes a device's status (revoking also revokes its certificates).
    pub async fn set_device_status(
        &self,
        id: &str,
        status: DeviceStatus,
        reason: &str,
    ) -> Result<(), RegistryError> {
        self.store.set_device_status(id, status, unix_now()).await?;
        let action = match status {
            DeviceStatus::Active => "device.resumed",
            DeviceStatus::Suspended => "device.suspended",
            DeviceStatus::Revoked => "device.revoked",
        };
        self.audit(action, id, format!("reason={reason}")).await
    }

    /// Encrypts every plaintext private key of the CA (`pki/`) and every
    /// token signing key (`keys/`) in place with the configured key
    /// encryption key. Returns the files it encrypted.
    pub async fn encrypt_keys(&self) -> Result<Vec<PathBuf>, RegistryError> {
        if self.data.key_encryption().is_none() {
            return Err(RegistryError::Invalid(
                "no key encryption key is configured: set the environment variable \
                 CERTBOUND_KEY_ENCRYPTION_KEY or [keys] encryption_key_file in certbound.toml"
                    .into(),
            ));
        }
        let mut files = self.data.pki().seal_ca_keys()?;
        files.extend(keys::seal_signing_keys(&self.data.key_dir())?);
        self.audit("keys.encrypted", "keys", format!("files={}", files.len()))
            .await?;
        Ok(files)
    }

    /// The published token-signing keys (see [`keys::KeyRing::published`]), by kid.
    pub async fn public_keys(&self) -> Result<Vec<(String, EcPublicKey)>, RegistryError> {
        let ring = keys::KeyRing::load(&self.store, &self.data.key_dir()).await?;
        Ok(ring.published(unix_now()))
    }
}

mod api_keys;
mod attributes;
pub mod bulk;
mod clients;
mod groups;
mod lifecycle;
pub mod registration;
mod roles;
pub(crate) mod services;
pub mod signing_alg;
pub use api_keys::{CreatedApiKey, check_api_key_grants, check_api_key_name};
pub use attributes::{
    AttributesChange, AttributesView, ClaimsChange, describe_claims, parse_claim_decl, parse_holder,
};
pub use bulk::{BulkControl, BulkOptions, BulkProgress, BulkReport};
pub(crate) use clients::check_client_name;
pub use clients::{
    ADMIN_API, ADMIN_CLIENT_FILE, ADMIN_SCOPES, CheckedCredential, ClientCredential, CreatedClient,
    parse_grant, parse_tls_san, thumbprint_of_pem,
};
pub use groups::{DeletedGroup, GrantChange, TTL_RANGE, TtlChange};
pub use lifecycle::{
    CRL_VALIDITY_SECS, CreatedClaim, IssuerCrl, SignedDevice, TrustedCa, crl_of, crl_set,
};
pub use roles::{MAX_DESCRIPTION, RoleAssignment, RoleGrantChange, RoleTarget};
pub use signing_alg::{ApiWithAlg, check_alg_for_format, parse_alg};
