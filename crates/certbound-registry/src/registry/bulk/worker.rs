//! The worker threads of a bulk run: make a key (aws-lc) and a certificate,
//! write both files durably, hand the device to the registering task.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair as _};
use certbound_pki::IssuingCa;
use tokio::sync::mpsc;

use super::files::{self, Mode, remove_if_exists, write_durable};
use super::{ManifestRow, shard_name};
use crate::clock::unix_now;
use crate::error::RegistryError;
use crate::store::CertRecord;

/// One device made by a worker, not yet registered.
pub(super) struct Made {
    pub(super) idx: usize,
    pub(super) record: CertRecord,
    pub(super) row: ManifestRow,
    pub(super) shard: String,
}

/// What the workers share.
pub(super) struct Shared {
    pub(super) ca: IssuingCa,
    pub(super) ca_pem: String,
    pub(super) out_dir: PathBuf,
    pub(super) todo: Vec<(u64, String)>,
    pub(super) days: u32,
    pub(super) lifetime_secs: Option<u64>,
    pub(super) next: AtomicUsize,
    pub(super) limit: AtomicUsize,
}

#[derive(Default)]
pub(super) struct WorkerStats {
    pub(super) keygen: Duration,
    pub(super) sign: Duration,
    pub(super) files: Duration,
}

pub(super) type WorkerMsg = Result<Made, (usize, RegistryError)>;

pub(super) fn remove_made(out_dir: &Path, made: &Made) {
    let _ = remove_if_exists(&out_dir.join(&made.row.key_file));
    let _ = remove_if_exists(&out_dir.join(&made.row.cert_file));
}

fn make_one(
    s: &Shared,
    n: u64,
    id: &str,
    idx: usize,
    stats: &mut WorkerStats,
) -> Result<Made, RegistryError> {
    let crypto = |what: &str| RegistryError::Invalid(format!("{what} failed for device {id}"));
    let t0 = Instant::now();
    let key = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING)
        .map_err(|_| crypto("key generation"))?;
    let pkcs8 = key.to_pkcs8v1().map_err(|_| crypto("key serialisation"))?;
    let spki = key
        .public_key()
        .as_der()
        .map_err(|_| crypto("public key serialisation"))?;
    let t1 = Instant::now();
    stats.keygen += t1 - t0;
    let cert = match s.lifetime_secs {
        Some(secs) => {
            s.ca.issue_device_cert_secs(id, spki.as_ref(), secs, unix_now())?
        }
        None => {
            s.ca.issue_device_cert(id, spki.as_ref(), s.days, unix_now())?
        }
    };
    let key_pem = files::pem("PRIVATE KEY", pkcs8.as_ref());
    let chain_pem = format!("{}{}", cert.pem, s.ca_pem);
    let t2 = Instant::now();
    stats.sign += t2 - t1;
    let shard = shard_name(n);
    let dir = s.out_dir.join(&shard);
    std::fs::create_dir_all(&dir).map_err(RegistryError::io(&dir))?;
    let key_name = format!("{id}.key.pem");
    let cert_name = format!("{id}.cert.pem");
    write_durable(&dir, &key_name, key_pem.as_bytes(), Mode::Secret)?;
    if let Err(e) = write_durable(&dir, &cert_name, chain_pem.as_bytes(), Mode::Public) {
        let _ = remove_if_exists(&dir.join(&key_name));
        return Err(e);
    }
    stats.files += t2.elapsed();
    let thumbprint = hex::encode(cert.thumbprint);
    Ok(Made {
        idx,
        row: ManifestRow {
            id: id.into(),
            serial: cert.serial_hex.clone(),
            thumbprint: thumbprint.clone(),
            not_after: cert.not_after,
            key_file: format!("{shard}/{key_name}"),
            cert_file: format!("{shard}/{cert_name}"),
        },
        record: CertRecord {
            serial: cert.serial_hex,
            device_id: id.into(),
            thumbprint,
            not_before: cert.not_before,
            not_after: cert.not_after,
            status: "active".into(),
            der: cert.der,
        },
        shard,
    })
}

pub(super) fn worker(s: &Shared, tx: &mpsc::Sender<WorkerMsg>) -> WorkerStats {
    let mut stats = WorkerStats::default();
    loop {
        let idx = s.next.fetch_add(1, Ordering::SeqCst);
        if idx >= s.limit.load(Ordering::SeqCst) {
            break;
        }
        let Some((n, id)) = s.todo.get(idx) else {
            break;
        };
        let msg = make_one(s, *n, id, idx, &mut stats).map_err(|e| (idx, e));
        if let Err(mpsc::error::SendError(msg)) = tx.blocking_send(msg) {
            // The run is over (stopped or failed): this device will not be registered.
            if let Ok(made) = msg {
                remove_made(&s.out_dir, &made);
            }
            break;
        }
    }
    stats
}
