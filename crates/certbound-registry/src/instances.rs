//! Several instances of one service, each with its own data directory and
//! its own keys: no private key is copied between machines.
//!
//! * The **first instance** is made by `certbound init --store URL`: it
//!   records the service's issuer id and root certificate in the store
//!   ([`check_service`]).
//! * **Another instance** starts with [`join`] (`certbound init --join
//!   --store URL`): it reads the issuer id and root certificate from the
//!   store, makes its own token signing key (published in the store at
//!   once, signing after `key_grace`), and its own issuing CA key with a
//!   request. Where the root key is, [`sign_instance`] (`certbound ca
//!   sign-instance`) signs the request; [`install`] (`certbound ca install`)
//!   puts the certificate in place on the new instance.
//! * Every instance publishes its issuing CA certificates in the store and
//!   trusts every other instance's ([`shared_cas`]), and publishes every
//!   instance's token signing keys (see [`crate::keys::KeyRing`]).

use std::path::{Path, PathBuf};

use certbound_pki::{
    CaOptions, InstanceCa, begin_join, finish_join, list_issuing, parse_pem_certs, sign_instance_ca,
};

use crate::clock::unix_now;
use crate::config::{Config, DataDir};
use crate::error::RegistryError;
use crate::keys;
use crate::registry::{BROKER_SERVICE_NAME, InitOptions, services};
use crate::store::{
    AuditEvent, KeySchedule, PublishedCa, SETTING_ISSUER_ID, SETTING_ROOT_CA, Store, redact_url,
};
use certbound_proto::crypto::Signer as _;

/// Checks that the store serves the service of this data directory (same
/// issuer id, same root; the first instance on a store records both), and
/// publishes this instance's issuing CAs (current and kept, not expired).
///
/// # Errors
/// [`RegistryError::Invalid`] when the store belongs to another service.
pub async fn check_service(
    store: &Store,
    data: &DataDir,
    config: &Config,
    now: u64,
) -> Result<(), RegistryError> {
    let url = redact_url(&config.store_url(data));
    let ours = &config.broker.issuer_id;
    let held = store.claim_setting(SETTING_ISSUER_ID, ours).await?;
    if &held != ours {
        return Err(RegistryError::Invalid(format!(
            "the store {url} serves issuer {held}, this data directory is {ours}: \
             one store holds one service; use another database, or make this \
             instance with `certbound init --join`"
        )));
    }
    let paths = data.pki();
    let root_file = paths.root_cert();
    let root_pem = std::fs::read_to_string(&root_file).map_err(RegistryError::io(&root_file))?;
    let held = store.claim_setting(SETTING_ROOT_CA, &root_pem).await?;
    if parse_pem_certs(&held)? != parse_pem_certs(&root_pem)? {
        return Err(RegistryError::Invalid(format!(
            "the store {url} serves {ours} under another root CA than {}: \
             instances of one service share its root; make this instance with \
             `certbound init --join`",
            root_file.display()
        )));
    }
    crate::external::import_files(store, &paths, now).await?;
    publish_own(store, data, now).await
}

/// Publishes this data directory's issuing CAs (current and kept ones not
/// expired) in the store.
pub async fn publish_own(store: &Store, data: &DataDir, now: u64) -> Result<(), RegistryError> {
    let paths = data.pki();
    for info in list_issuing(&paths)? {
        if info.not_after <= now {
            continue;
        }
        let file = if info.current {
            paths.issuing_cert()
        } else {
            paths.issuing_cert_archived(&info.serial_hex)
        };
        let pem = std::fs::read_to_string(&file).map_err(RegistryError::io(&file))?;
        let Some(der) = parse_pem_certs(&pem)?.into_iter().next() else {
            continue;
        };
        store
            .publish_issuing_ca(
                &PublishedCa {
                    serial: info.serial_hex,
                    cert_der: der,
                    not_after: info.not_after,
                },
                now,
            )
            .await?;
    }
    Ok(())
}

/// The CAs an instance trusts besides its own files, as the store holds
/// them for the whole service.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SharedCas {
    /// The issuing CA certificates (DER) every instance published, not
    /// expired: trusted as intermediates under the root.
    pub issuing: Vec<Vec<u8>>,
    /// The partner CAs (`certbound ca trust add`).
    pub external: Vec<crate::store::ExternalCa>,
}

/// What the store holds for [`SharedCas`] at `now`.
pub async fn shared_cas(store: &Store, now: u64) -> Result<SharedCas, RegistryError> {
    Ok(SharedCas {
        issuing: store
            .issuing_cas(now)
            .await?
            .into_iter()
            .map(|c| c.cert_der)
            .collect(),
        external: store.external_cas().await?,
    })
}

/// What [`join`] needs beyond [`InitOptions`] (whose `store_url` is required).
#[derive(Debug, Clone)]
pub struct JoinOptions {
    /// Common name of this instance's issuing CA:
    /// `certbound Issuing CA (<name>)`.
    pub name: String,
    /// Seconds before this instance's signing key signs (published at
    /// once): verifiers that cache key sets (60 s by default) learn it
    /// first. 0 relies on verifiers refetching a key set on an unknown kid.
    pub key_grace: u64,
}

/// What [`join`] did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct JoinStarted {
    /// The service's issuer id, from the store.
    pub issuer_id: String,
    /// The request to sign where the root key is.
    pub csr_file: PathBuf,
    /// This instance's signing key.
    pub kid: String,
    /// When it starts signing (Unix seconds).
    pub active_from: u64,
}

/// Starts a new instance of the service whose store `options.store_url`
/// names (see the module docs).
///
/// # Errors
/// [`RegistryError::Invalid`] without a store URL or for a store that serves
/// no service yet; [`RegistryError::AlreadyInitialised`] for a used directory.
pub async fn join(
    dir: &Path,
    options: &InitOptions,
    join: &JoinOptions,
) -> Result<JoinStarted, RegistryError> {
    let url = options.store_url.as_deref().ok_or_else(|| {
        RegistryError::Invalid(
            "--join needs --store: the URL of the service's PostgreSQL store".into(),
        )
    })?;
    let store = Store::connect(url).await?;
    let settings = async {
        Ok::<_, RegistryError>((
            store.setting(SETTING_ISSUER_ID).await?,
            store.setting(SETTING_ROOT_CA).await?,
        ))
    }
    .await;
    let (issuer, root) = match settings {
        Ok((Some(issuer), Some(root))) => (issuer, root),
        Ok(_) => {
            store.close().await;
            return Err(RegistryError::Invalid(format!(
                "the store {} serves no service yet: make the first instance with \
                 `certbound init --store URL` (without --join)",
                redact_url(url)
            )));
        }
        Err(e) => {
            store.close().await;
            return Err(e);
        }
    };
    let result = join_with(dir, options, join, &store, &issuer, &root).await;
    store.close().await;
    result
}

async fn join_with(
    dir: &Path,
    options: &InitOptions,
    join: &JoinOptions,
    store: &Store,
    issuer: &str,
    root: &str,
) -> Result<JoinStarted, RegistryError> {
    let (data, config_text) = crate::registry::init_config(dir, issuer, options)?;
    Config::parse(&config_text, &data.config())?;
    std::fs::create_dir_all(dir).map_err(RegistryError::io(dir))?;
    let now = unix_now();
    let paths = data.pki();
    begin_join(
        &paths,
        root,
        &format!("certbound Issuing CA ({})", join.name),
    )?;
    let kid = keys::create_signing_key(&data.key_dir())?;
    let key = keys::load(&data.key_dir(), &kid)?;
    let active_from = now.saturating_add(join.key_grace);
    store
        .add_signing_key(
            &KeySchedule {
                kid: kid.clone(),
                created_at: now,
                active_from,
                retire_after: None,
                public_key: Some(key.signer.public_key().to_sec1()),
                alg: crate::store::DEFAULT_SIGNING_ALG.into(),
            },
            &[],
            0,
        )
        .await?;
    audit(
        store,
        now,
        "instance.joined",
        issuer,
        &format!("signing key {kid}"),
    )
    .await?;
    std::fs::write(data.config(), config_text).map_err(RegistryError::io(data.config()))?;
    Ok(JoinStarted {
        issuer_id: issuer.to_owned(),
        csr_file: paths.issuing_csr(),
        kid,
        active_from,
    })
}

async fn audit(
    store: &Store,
    now: u64,
    action: &str,
    subject: &str,
    detail: &str,
) -> Result<(), RegistryError> {
    store
        .append_audit(&[AuditEvent {
            ts_ms: now.saturating_mul(1000),
            actor: "cli".into(),
            action: action.into(),
            subject: subject.into(),
            outcome: "ok".into(),
            detail: detail.into(),
        }])
        .await?;
    Ok(())
}

/// Signs a joining instance's issuing CA request (`csr_pem`) with the root
/// of the data directory at `dir` (its key at `root_key`, or in `pki/`),
/// and publishes the certificate in the store so that every instance
/// trusts it at once.
///
/// # Errors
/// As [`certbound_pki::sign_instance_ca`].
pub async fn sign_instance(
    dir: &Path,
    csr_pem: &str,
    root_key: Option<&Path>,
) -> Result<InstanceCa, RegistryError> {
    let config = Config::load(dir)?;
    let data = DataDir::with_config(dir, &config);
    let now = unix_now();
    let signed = sign_instance_ca(&data.pki(), csr_pem, &CaOptions::default(), now, root_key)?;
    let store = Store::connect(&config.store_url(&data)).await?;
    let published = async {
        store
            .publish_issuing_ca(
                &PublishedCa {
                    serial: signed.serial_hex.clone(),
                    cert_der: signed.cert_der.clone(),
                    not_after: signed.not_after,
                },
                now,
            )
            .await?;
        audit(
            &store,
            now,
            "instance.ca_signed",
            &config.broker.issuer_id,
            &format!("issuing CA {}", signed.serial_hex),
        )
        .await
    }
    .await;
    store.close().await;
    published?;
    Ok(signed)
}

/// Finishes a join: installs this instance's issuing CA certificate
/// (`chain_pem`, from [`sign_instance`]), issues its TLS identities for
/// `server_names`, and publishes its issuing CA. Returns the CA's serial.
///
/// # Errors
/// As [`certbound_pki::finish_join`]; [`RegistryError::Invalid`] for bad
/// server names.
pub async fn install(
    dir: &Path,
    chain_pem: &str,
    server_names: &[String],
) -> Result<String, RegistryError> {
    crate::registry::check_server_names(server_names)?;
    let config = Config::load(dir)?;
    let data = DataDir::with_config(dir, &config);
    let now = unix_now();
    let serial = finish_join(&data.pki(), chain_pem, now)?;
    let client = crate::registry::issue_tls_identities(&data, server_names, now)?;
    let store = Store::connect(&config.store_url(&data)).await?;
    let done = async {
        check_service(&store, &data, &config, now).await?;
        services::record(&store, BROKER_SERVICE_NAME, &client, now).await?;
        audit(
            &store,
            now,
            "instance.ca_installed",
            &config.broker.issuer_id,
            &format!("issuing CA {serial}"),
        )
        .await
    }
    .await;
    store.close().await;
    done?;
    Ok(serial)
}

/// Refuses to serve a data directory whose join is not finished.
pub fn check_joined(data: &DataDir) -> Result<(), RegistryError> {
    let paths = data.pki();
    if !paths.issuing_cert().exists() && paths.issuing_pending_key().exists() {
        return Err(RegistryError::Invalid(format!(
            "this instance has not finished joining: sign {} where the root key is \
             (`certbound ca sign-instance`), then `certbound ca install --dir {} <certificate>`",
            paths.issuing_csr().display(),
            data.root.display()
        )));
    }
    Ok(())
}
