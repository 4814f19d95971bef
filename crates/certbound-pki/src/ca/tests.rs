use super::*;
use crate::TrustStore;

const NOW: u64 = 1_750_000_000;

#[test]
fn init_writes_five_files_and_refuses_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let paths = PkiPaths::new(dir.path());
    init_ca(&paths, &CaOptions::default(), NOW).unwrap();
    for f in paths.all() {
        assert!(f.is_file(), "{}", f.display());
    }
    let chain = parse_pem_certs(&std::fs::read_to_string(paths.chain()).unwrap()).unwrap();
    assert_eq!(chain.len(), 2);
    let issuing = crate::cert_summary(&chain[0]).unwrap();
    let root = crate::cert_summary(&chain[1]).unwrap();
    assert_eq!(issuing.subject, "CN=certbound Issuing CA");
    assert_eq!(issuing.issuer, "CN=certbound Root CA");
    assert_eq!(root.subject, root.issuer);
    assert!(issuing.is_ca && root.is_ca);
    assert_eq!(root.not_before, NOW - 60);
    assert_eq!(root.not_after, NOW + 3650 * 86_400);
    assert_eq!(issuing.not_after, NOW + 1825 * 86_400);

    let before: Vec<Vec<u8>> = paths
        .all()
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    let err = init_ca(&paths, &CaOptions::default(), NOW).unwrap_err();
    assert!(matches!(err, PkiError::AlreadyExists(p) if p == paths.root_cert()));
    let after: Vec<Vec<u8>> = paths
        .all()
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    assert_eq!(before, after, "refused init must not modify anything");
}

#[test]
fn init_refuses_when_only_one_file_exists() {
    let dir = tempfile::tempdir().unwrap();
    let paths = PkiPaths::new(dir.path());
    std::fs::create_dir_all(&paths.dir).unwrap();
    std::fs::write(paths.chain(), b"keep me").unwrap();
    let err = init_ca(&paths, &CaOptions::default(), NOW).unwrap_err();
    assert!(matches!(err, PkiError::AlreadyExists(p) if p == paths.chain()));
    assert!(!paths.root_key().exists());
    assert_eq!(std::fs::read(paths.chain()).unwrap(), b"keep me");
}

#[cfg(unix)]
#[test]
fn key_files_are_0600_and_dir_0700() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let paths = PkiPaths::new(dir.path());
    init_ca(&paths, &CaOptions::default(), NOW).unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&paths.root_key()), 0o600);
    assert_eq!(mode(&paths.issuing_key()), 0o600);
    assert_eq!(mode(&paths.dir), 0o700);
}

#[test]
fn issuing_ca_never_outlives_root() {
    let dir = tempfile::tempdir().unwrap();
    let paths = PkiPaths::new(dir.path());
    let opts = CaOptions {
        root_lifetime_days: 10,
        issuing_lifetime_days: 20,
        ..CaOptions::default()
    };
    init_ca(&paths, &opts, NOW).unwrap();
    let ca = IssuingCa::load(&paths).unwrap();
    assert_eq!(ca.not_after(), NOW + 10 * 86_400);
}

#[test]
fn bad_options_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let paths = PkiPaths::new(dir.path());
    let opts = CaOptions {
        root_lifetime_days: 0,
        ..CaOptions::default()
    };
    assert!(matches!(
        init_ca(&paths, &opts, NOW),
        Err(PkiError::InvalidArgument(_))
    ));
    let opts = CaOptions {
        issuing_common_name: " ".into(),
        ..CaOptions::default()
    };
    assert!(matches!(
        init_ca(&paths, &opts, NOW),
        Err(PkiError::InvalidArgument(_))
    ));
    assert!(!paths.dir.exists());
}

#[test]
fn load_rejects_mismatched_key_and_non_ca() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let (pa, pb) = (PkiPaths::new(a.path()), PkiPaths::new(b.path()));
    init_ca(&pa, &CaOptions::default(), NOW).unwrap();
    init_ca(&pb, &CaOptions::default(), NOW).unwrap();
    let cert = std::fs::read_to_string(pa.issuing_cert()).unwrap();
    let foreign_key = std::fs::read_to_string(pb.issuing_key()).unwrap();
    assert!(matches!(
        IssuingCa::from_pem(&cert, &foreign_key),
        Err(PkiError::Malformed(_))
    ));
    let ca = IssuingCa::load(&pa).unwrap();
    let bundle = ca.issue_device("d1", 1, NOW).unwrap();
    assert!(matches!(
        IssuingCa::from_pem(&bundle.cert.pem, &bundle.key_pkcs8_pem),
        Err(PkiError::InvalidChain(_))
    ));
    // The loaded CA chains to the root of its own store.
    let store = TrustStore::load(&pa).unwrap();
    assert!(
        store
            .verify_device_cert(&bundle.cert.der, &[], NOW, 0)
            .is_ok()
    );
    let debug = format!("{ca:?}");
    assert!(debug.contains("redacted") && !debug.contains("PRIVATE"));
}

#[test]
fn issuing_ca_is_send_sync() {
    fn check<T: Send + Sync>() {}
    check::<IssuingCa>();
    check::<TrustStore>();
}
