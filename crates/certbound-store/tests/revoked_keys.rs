//! The keys of revoked certificates (enrollment and renewal refuse a CSR
//! for one): found through the indexed key column of migration 0013, in
//! rows written by every insert path, and by parsing rows that predate the
//! column.

use certbound_pki::{CaOptions, IssuingCa, PkiPaths, init_ca};
use certbound_store::testing::current;
use certbound_store::{CertRecord, DeviceStatus};

const NOW: u64 = 1_750_000_000;

/// A device certificate and its public key (SEC1).
fn issued(ca: &IssuingCa, device: &str) -> (CertRecord, Vec<u8>) {
    let bundle = ca.issue_device(device, 30, NOW).unwrap();
    let record = CertRecord::issued(device, &bundle.cert);
    let key = certbound_pki::public_key_sec1(&record.der).unwrap();
    (record, key)
}

async fn revoked_keys_are_found_whichever_way_their_row_was_written() {
    let pki = tempfile::tempdir().unwrap();
    let paths = PkiPaths::new(pki.path());
    init_ca(&paths, &CaOptions::default(), NOW).unwrap();
    let ca = IssuingCa::load(&paths).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = current().open(dir.path()).await;

    // One certificate per insert path: a device's first, a renewal, bulk.
    let (first, first_key) = issued(&ca, "d-first");
    store
        .create_device("d-first", &[], &first, NOW)
        .await
        .unwrap();
    let (renewed, renewed_key) = issued(&ca, "d-first");
    store.add_certificate(&renewed, NOW).await.unwrap();
    let (bulk, bulk_key) = issued(&ca, "d-bulk");
    store
        .create_devices_bulk(std::slice::from_ref(&bulk), &[], "test", NOW)
        .await
        .unwrap();
    let (legacy, legacy_key) = issued(&ca, "d-legacy");
    store
        .create_device("d-legacy", &[], &legacy, NOW)
        .await
        .unwrap();
    let (_, never_key) = issued(&ca, "d-other");

    // Nothing is revoked yet: no key is refused.
    for key in [&first_key, &renewed_key, &bulk_key, &legacy_key] {
        assert_eq!(store.revoked_serial_with_key(key).await.unwrap(), None);
    }

    // A row written before migration 0013 has no key recorded.
    let changed = store
        .execute_sql(&format!(
            "UPDATE certificates SET public_key = NULL WHERE serial = '{}'",
            legacy.serial
        ))
        .await
        .unwrap();
    assert_eq!(changed, 1);
    // Every insert path recorded the key (the index finds them): only the
    // row made to look old has none.
    let keyless = store
        .setting_sql("SELECT CAST(COUNT(*) AS TEXT) FROM certificates WHERE public_key IS NULL")
        .await
        .unwrap();
    assert_eq!(keyless, "1");
    for device in ["d-first", "d-bulk", "d-legacy"] {
        store
            .set_device_status(device, DeviceStatus::Revoked, NOW + 1)
            .await
            .unwrap();
    }
    for (key, cert) in [
        (&first_key, &first),
        (&renewed_key, &renewed),
        (&bulk_key, &bulk),
        (&legacy_key, &legacy),
    ] {
        assert_eq!(
            store.revoked_serial_with_key(key).await.unwrap().as_deref(),
            Some(cert.serial.as_str()),
            "the key of revoked certificate {} must be refused",
            cert.serial
        );
    }
    assert_eq!(
        store.revoked_serial_with_key(&never_key).await.unwrap(),
        None,
        "a key no revoked certificate holds is not refused"
    );
}

certbound_store::on_every_backend!(revoked_keys_are_found_whichever_way_their_row_was_written);
