//! Partner CAs (`certbound ca trust add`) are kept in the store, so every
//! instance of a service trusts the same ones. Data directories of earlier
//! versions kept them as files under `pki/external/`: opening the registry
//! moves those into the store once, and they keep their just-in-time group.

use certbound_registry::RegistryError;
use certbound_registry::registry::{self, InitOptions, Registry};

async fn data_dir(tmp: &tempfile::TempDir, name: &str) -> std::path::PathBuf {
    let dir = tmp.path().join(name);
    registry::init_with(
        &dir,
        "https://auth.example.com",
        &InitOptions::on_test_backend().await,
    )
    .await
    .unwrap();
    dir
}

async fn partner_ca_files_move_into_the_store_once() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = data_dir(&tmp, "cb").await;
    // A CA of another service stands in for the partner's CA.
    let partner = data_dir(&tmp, "partner").await;
    let partner_pem = std::fs::read_to_string(partner.join("pki/root-ca.pem")).unwrap();
    {
        let reg = Registry::open(&dir).await.unwrap();
        reg.create_group("partners", &[]).await.unwrap();
        reg.close().await;
    }
    // As an earlier version left them.
    let files = dir.join("pki/external");
    std::fs::create_dir_all(&files).unwrap();
    std::fs::write(files.join("partner.pem"), &partner_pem).unwrap();
    std::fs::write(files.join("partner.json"), r#"{"jit_group":"partners"}"#).unwrap();

    let reg = Registry::open(&dir).await.unwrap();
    let cas = reg.trusted_cas().await.unwrap();
    assert_eq!(cas.len(), 1, "{cas:?}");
    assert_eq!(cas[0].name, "partner");
    assert_eq!(cas[0].jit_group.as_deref(), Some("partners"));
    assert!(!files.exists(), "the imported files are moved aside");
    assert!(dir.join("pki/external.imported/partner.pem").exists());
    assert!(dir.join("pki/external.imported/partner.json").exists());
    // The store is what counts now: a second add under the name is refused,
    // the group it names cannot be deleted, and removing it is for good.
    let err = reg
        .trust_external_ca("partner", &partner_pem, None)
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::Conflict { .. }), "{err}");
    let err = reg.delete_group("partners", true).await.unwrap_err();
    assert!(err.to_string().contains("just-in-time group"), "{err}");
    reg.untrust_external_ca("partner").await.unwrap();
    reg.close().await;
    let reg = Registry::open(&dir).await.unwrap();
    assert!(reg.trusted_cas().await.unwrap().is_empty());
    let err = reg.untrust_external_ca("partner").await.unwrap_err();
    assert!(matches!(err, RegistryError::NotFound { .. }), "{err}");
    // Our own root is never a partner CA.
    let own = std::fs::read_to_string(dir.join("pki/root-ca.pem")).unwrap();
    assert!(reg.trust_external_ca("self", &own, None).await.is_err());
    assert!(reg.trusted_cas().await.unwrap().is_empty());
    reg.close().await;
}

certbound_registry::store::on_every_backend!(partner_ca_files_move_into_the_store_once);
