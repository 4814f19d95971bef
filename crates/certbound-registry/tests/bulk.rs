//! Bulk provisioning (`Registry::provision_bulk`): consistency of registry,
//! files and manifest; resuming after an interruption and after simulated
//! crashes; refusals before any work.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair as _};
use certbound_pki::{TrustStore, parse_pem_certs, public_key_sec1};
use certbound_registry::registry::bulk::{MANIFEST_CSV, MANIFEST_HEADER, MANIFEST_JSONL};
use certbound_registry::registry::{self, BulkControl, BulkOptions, BulkProgress, Registry};
use certbound_registry::store::CertRecord;

const API: &str = "https://telemetry.example.com";

async fn setup() -> (tempfile::TempDir, Registry) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cb");
    registry::init_with(
        &dir,
        "https://auth.example.com",
        &certbound_registry::registry::InitOptions::on_test_backend().await,
    )
    .await
    .unwrap();
    let reg = Registry::open(&dir).await.unwrap();
    reg.create_api(API, "telemetry:write", 3600).await.unwrap();
    reg.create_group("sensors", &[(API.into(), "telemetry:write".into())])
        .await
        .unwrap();
    (tmp, reg)
}

fn options(prefix: &str, start: u64, count: u64, out: &Path, batch: usize) -> BulkOptions {
    BulkOptions {
        start,
        groups: vec!["sensors".into()],
        batch_size: batch,
        ..BulkOptions::new(prefix, count, out)
    }
}

#[derive(Debug)]
struct Row {
    id: String,
    serial: String,
    thumbprint: String,
    key_file: String,
    cert_file: String,
}

fn manifest(out: &Path) -> Vec<Row> {
    let text = fs::read_to_string(out.join(MANIFEST_CSV)).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some(MANIFEST_HEADER));
    let rows: Vec<Row> = lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            assert_eq!(f.len(), 6, "{l}");
            Row {
                id: f[0].into(),
                serial: f[1].into(),
                thumbprint: f[2].into(),
                key_file: f[4].into(),
                cert_file: f[5].into(),
            }
        })
        .collect();
    let jsonl = fs::read_to_string(out.join(MANIFEST_JSONL)).unwrap();
    let json_rows: Vec<serde_json::Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        json_rows.len(),
        rows.len(),
        "the JSONL twin has as many rows"
    );
    for (j, r) in json_rows.iter().zip(&rows) {
        assert_eq!(j["id"], r.id.as_str());
        assert_eq!(j["thumbprint"], r.thumbprint.as_str());
    }
    rows
}

/// Every key/cert/tmp file under `out`, relative to it.
fn files(out: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for shard in fs::read_dir(out).unwrap() {
        let shard = shard.unwrap();
        if !shard.file_type().unwrap().is_dir() {
            continue;
        }
        for f in fs::read_dir(shard.path()).unwrap() {
            let f = f.unwrap();
            found.push(format!(
                "{}/{}",
                shard.file_name().to_string_lossy(),
                f.file_name().to_string_lossy()
            ));
        }
    }
    found.sort();
    found
}

/// Registry, manifest and files agree exactly, for the devices with `prefix`.
async fn assert_consistent(reg: &Registry, out: &Path, prefix: &str, expect: usize) {
    let trust = TrustStore::load(&reg.data.pki()).unwrap();
    let now = certbound_registry::clock::unix_now();
    let rows = manifest(out);
    assert_eq!(rows.len(), expect, "manifest rows");
    let ids: HashSet<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids.len(), rows.len(), "no id twice in the manifest");
    let devices: Vec<String> = reg
        .store
        .list_devices()
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.id)
        .filter(|id| id.starts_with(prefix))
        .collect();
    assert_eq!(devices.len(), expect, "registered devices");
    assert_eq!(
        devices.iter().map(String::as_str).collect::<HashSet<_>>(),
        ids,
        "the manifest lists exactly the registered devices"
    );
    let mut expected_files = Vec::new();
    for r in &rows {
        expected_files.push(r.key_file.clone());
        expected_files.push(r.cert_file.clone());
        let n: u64 = r.id.strip_prefix(prefix).unwrap().parse().unwrap();
        assert_eq!(r.key_file, format!("{:04}/{}.key.pem", n / 1000, r.id));
        assert_eq!(r.cert_file, format!("{:04}/{}.cert.pem", n / 1000, r.id));
        let chain = parse_pem_certs(&fs::read_to_string(out.join(&r.cert_file)).unwrap()).unwrap();
        assert_eq!(chain.len(), 2, "leaf and issuing CA");
        let verified = trust
            .verify_device_cert(&chain[0], &chain[1..], now, 60)
            .unwrap();
        assert_eq!(verified.device_id, r.id);
        assert_eq!(hex::encode(verified.thumbprint), r.thumbprint);
        let certs: Vec<CertRecord> = reg.store.device_certificates(&r.id).await.unwrap();
        assert_eq!(certs.len(), 1);
        assert_eq!(
            certs[0].thumbprint, r.thumbprint,
            "registry = manifest = file"
        );
        assert_eq!(certs[0].serial, r.serial);
        let device = reg.store.get_device(&r.id).await.unwrap().unwrap();
        assert_eq!(device.groups, vec!["sensors".to_string()]);
        // The key is the certificate's key, in PKCS#8 PEM.
        let key_pem = fs::read_to_string(out.join(&r.key_file)).unwrap();
        let key_der = &parse_pem(&key_pem, "PRIVATE KEY");
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, key_der).unwrap();
        assert_eq!(
            key.public_key().as_ref(),
            public_key_sec1(&chain[0]).unwrap().as_slice()
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = fs::metadata(out.join(&r.key_file))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "key files are private");
        }
    }
    expected_files.sort();
    assert_eq!(files(out), expected_files, "no other files in the shards");
}

fn parse_pem(text: &str, label: &str) -> Vec<u8> {
    use base64::Engine as _;
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let body: String = text
        .lines()
        .skip_while(|l| *l != begin)
        .skip(1)
        .take_while(|l| *l != end)
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap()
}

async fn three_hundred_devices_in_two_shards_match_registry_manifest_and_files() {
    let (tmp, reg) = setup().await;
    let out = tmp.path().join("batch");
    // 900..1199: shards 0000 and 0001.
    let report = reg
        .provision_bulk(&options("p-", 900, 300, &out, 64), &BulkControl::default())
        .await
        .unwrap();
    assert_eq!(report.provisioned, 300);
    assert_eq!(report.already_provisioned, 0);
    assert!(!report.interrupted);
    assert_eq!(
        (report.first_id.as_str(), report.last_id.as_str()),
        ("p-900", "p-1199")
    );
    assert!(out.join("0000/p-999.key.pem").exists());
    assert!(out.join("0001/p-1000.cert.pem").exists());
    assert_consistent(&reg, &out, "p-", 300).await;
    let audit = reg.store.recent_audit(Some("p-950"), 10).await.unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].action, "device.provisioned");
    let summary = reg
        .store
        .recent_audit(Some("p-900..p-1199"), 10)
        .await
        .unwrap();
    assert_eq!(summary.len(), 1);
    assert_eq!(summary[0].action, "device.bulk_provisioned");
    assert_eq!(summary[0].outcome, "ok");
    println!("phases: {:?}", report.phases);
    reg.close().await;
}

async fn an_interrupted_run_resumes_without_issuing_any_id_twice() {
    let (tmp, reg) = setup().await;
    let out = tmp.path().join("batch");
    let opts = options("r-", 1, 300, &out, 50);

    // First run: stop once 100 devices are registered.
    let stop = AtomicBool::new(false);
    let progress = |p: &BulkProgress| {
        if p.registered >= 100 {
            stop.store(true, Ordering::SeqCst);
        }
    };
    let first = reg
        .provision_bulk(
            &opts,
            &BulkControl {
                stop: Some(&stop),
                progress: Some(&progress),
            },
        )
        .await
        .unwrap();
    assert!(first.interrupted);
    let done = first.provisioned;
    assert!(
        (100..300).contains(&done) && done.is_multiple_of(50),
        "{done}"
    );
    // Files made for batches after the stop were removed.
    assert_consistent(&reg, &out, "r-", usize::try_from(done).unwrap()).await;
    let interrupted = reg
        .store
        .recent_audit(Some("r-1..r-300"), 10)
        .await
        .unwrap();
    assert_eq!(interrupted[0].outcome, "interrupted");

    // Simulated crashes on top: (a) files of a never-registered id (a crash
    // before its batch committed), plus a stale temp file; (b) the last 10
    // committed rows missing from both manifests and a torn line (a crash
    // between a commit and its manifest append).
    let stale_n = done + 7;
    let shard = out.join(format!("{:04}", stale_n / 1000));
    fs::write(shard.join(format!("r-{stale_n}.key.pem")), "stale").unwrap();
    fs::write(shard.join(format!("r-{stale_n}.cert.pem")), "stale").unwrap();
    fs::write(
        shard.join(format!(".r-{}.key.pem.tmp", stale_n + 1)),
        "half",
    )
    .unwrap();
    let cut = |name: &str, keep: usize, torn: &str| {
        let text = fs::read_to_string(out.join(name)).unwrap();
        let mut kept: String = text.lines().take(keep).map(|l| format!("{l}\n")).collect();
        kept.push_str(torn);
        fs::write(out.join(name), kept).unwrap();
    };
    let listed = usize::try_from(done).unwrap() - 10;
    cut(MANIFEST_CSV, 1 + listed, "r-999,0102");
    cut(MANIFEST_JSONL, listed, "{\"id\":\"r-9");

    let second = reg
        .provision_bulk(&opts, &BulkControl::default())
        .await
        .unwrap();
    assert!(!second.interrupted);
    assert_eq!(second.already_provisioned, done);
    assert_eq!(second.provisioned, 300 - done);
    assert_eq!(second.manifest_rows_restored, 10);
    assert_eq!(second.stale_files_replaced, 1);
    assert_consistent(&reg, &out, "r-", 300).await;

    // Every id exactly once in the audit log too.
    let mut provisioned: HashMap<String, usize> = HashMap::new();
    for e in reg.store.recent_audit(None, 10_000).await.unwrap() {
        if e.action == "device.provisioned" {
            *provisioned.entry(e.subject).or_default() += 1;
        }
    }
    assert_eq!(provisioned.len(), 300);
    assert!(provisioned.values().all(|&c| c == 1));

    // Third run: nothing left to do.
    let third = reg
        .provision_bulk(&opts, &BulkControl::default())
        .await
        .unwrap();
    assert_eq!((third.provisioned, third.already_provisioned), (0, 300));
    assert_consistent(&reg, &out, "r-", 300).await;
    reg.close().await;
}

async fn an_id_registered_elsewhere_is_refused_before_any_work() {
    let (tmp, reg) = setup().await;
    let single = tmp.path().join("single");
    reg.provision_device("c-5", &["sensors".into()], &single, None)
        .await
        .unwrap();
    let out = tmp.path().join("batch");
    let err = reg
        .provision_bulk(&options("c-", 1, 10, &out, 4), &BulkControl::default())
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("c-5") && msg.contains("nothing was issued"),
        "{msg}"
    );
    let devices = reg.store.list_devices().await.unwrap();
    assert_eq!(devices.len(), 1, "nothing issued: {devices:?}");
    assert!(files(&out).is_empty());
    assert!(!out.join(MANIFEST_CSV).exists());

    // A folder holding other files is not a bulk folder.
    let err = reg
        .provision_bulk(&options("d-", 1, 10, &single, 4), &BulkControl::default())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("not a bulk provisioning folder"),
        "{err}"
    );

    // A folder provisioned with another data directory (wrong --dir) is refused.
    let (_tmp2, other) = setup().await;
    let theirs = tmp.path().join("theirs");
    other
        .provision_bulk(&options("m-", 1, 5, &theirs, 5), &BulkControl::default())
        .await
        .unwrap();
    let before = files(&theirs);
    let err = reg
        .provision_bulk(&options("m-", 1, 5, &theirs, 5), &BulkControl::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("does not have"), "{err}");
    assert_eq!(files(&theirs), before, "their keys are untouched");
    reg.close().await;
    other.close().await;
}

async fn a_conflict_inside_the_transaction_registers_nothing_of_the_batch() {
    let (tmp, reg) = setup().await;
    let single = tmp.path().join("single");
    let taken = reg
        .provision_device("t-1", &[], &single, None)
        .await
        .unwrap();
    let record = |id: &str, serial: &str| CertRecord {
        serial: serial.into(),
        device_id: id.into(),
        thumbprint: format!("{serial}{serial}"),
        not_before: 1,
        not_after: 2,
        status: "active".into(),
        der: vec![1, 2, 3],
    };
    let err = reg
        .store
        .create_devices_bulk(&[record("t-0", "aa"), record("t-1", "bb")], &[], "test", 1)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, certbound_registry::store::StoreError::Conflict { name, .. } if name == "t-1"),
        "{err}"
    );
    assert!(reg.store.get_device("t-0").await.unwrap().is_none());
    assert_eq!(
        reg.store.device_certificates("t-1").await.unwrap()[0].serial,
        taken.serial
    );
    reg.store
        .create_devices_bulk(&[record("t-0", "aa")], &["sensors".into()], "test", 1)
        .await
        .unwrap();
    let (device, certs) = reg.show_device("t-0").await.unwrap();
    assert_eq!(device.groups, vec!["sensors".to_string()]);
    assert_eq!(certs[0].der, vec![1, 2, 3]);
    reg.close().await;
}

async fn bad_input_is_refused_before_any_work() {
    let (tmp, reg) = setup().await;
    let out: PathBuf = tmp.path().join("batch");
    let long = "x".repeat(126);
    for (prefix, groups, why) in [
        ("-x", vec!["sensors"], "starts with"),
        ("a b", vec!["sensors"], "character"),
        (long.as_str(), vec!["sensors"], "longer than 128"),
        ("ok-", vec!["nope"], "does not exist"),
    ] {
        let mut opts = options(prefix, 1, 200, &out, 50);
        opts.groups = groups.into_iter().map(String::from).collect();
        let err = reg
            .provision_bulk(&opts, &BulkControl::default())
            .await
            .unwrap_err();
        assert!(err.to_string().contains(why), "{prefix}: {err}");
        assert!(!out.exists(), "nothing written for {prefix:?}");
    }
    assert!(reg.store.list_devices().await.unwrap().is_empty());

    // A folder being written by another run is refused.
    fs::create_dir_all(&out).unwrap();
    let lock = fs::File::create(out.join(".certbound-bulk.lock")).unwrap();
    lock.try_lock().unwrap();
    let err = reg
        .provision_bulk(&options("ok-", 1, 5, &out, 5), &BulkControl::default())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("another bulk provisioning run"),
        "{err}"
    );
    drop(lock);
    reg.provision_bulk(&options("ok-", 1, 5, &out, 5), &BulkControl::default())
        .await
        .unwrap();
    reg.close().await;
}

certbound_registry::store::on_every_backend!(
    three_hundred_devices_in_two_shards_match_registry_manifest_and_files,
    an_interrupted_run_resumes_without_issuing_any_id_twice,
    an_id_registered_elsewhere_is_refused_before_any_work,
    a_conflict_inside_the_transaction_registers_nothing_of_the_batch,
    bad_input_is_refused_before_any_work
);
