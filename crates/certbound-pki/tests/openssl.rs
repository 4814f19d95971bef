//! Interoperability with the system `openssl` command.
//!
//! When `openssl` is not on PATH the tests print "SKIPPED: openssl not found"
//! and pass, unless `CERTBOUND_REQUIRE_ALL=1`, in which case they fail.

use std::path::Path;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use certbound_pki::{CaOptions, IssuingCa, PkiPaths, TrustStore, init_ca};

fn openssl_available() -> bool {
    let found = Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        if std::env::var("CERTBOUND_REQUIRE_ALL").as_deref() == Ok("1") {
            panic!("openssl not found on PATH and CERTBOUND_REQUIRE_ALL=1");
        }
        eprintln!(
            "\n*** SKIPPED: openssl not found (set CERTBOUND_REQUIRE_ALL=1 to fail instead) ***\n"
        );
    }
    found
}

/// Runs openssl with `args`, asserts success, returns stdout.
fn openssl(args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?} failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn openssl_text(args: &[&str]) -> String {
    String::from_utf8(openssl(args)).unwrap()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn setup() -> (tempfile::TempDir, PkiPaths, IssuingCa) {
    let dir = tempfile::tempdir().unwrap();
    let paths = PkiPaths::new(dir.path());
    init_ca(&paths, &CaOptions::default(), now()).unwrap();
    let ca = IssuingCa::load(&paths).unwrap();
    (dir, paths, ca)
}

#[test]
fn openssl_accepts_our_ca_and_device_cert() {
    if !openssl_available() {
        return;
    }
    let (dir, paths, ca) = setup();
    let bundle = ca.issue_device("sensor-1", 30, now()).unwrap();
    let out = dir.path().join("devices");
    let (key_path, cert_path) = bundle.write_to(&out, "sensor-1").unwrap();
    let leaf_path = dir.path().join("leaf.pem");
    std::fs::write(&leaf_path, &bundle.cert.pem).unwrap();

    // Leaf only, full chain as CA file, client purpose (EKU clientAuth).
    let v = openssl_text(&[
        "verify",
        "-purpose",
        "sslclient",
        "-CAfile",
        p(&paths.chain()),
        p(&leaf_path),
    ]);
    assert!(v.trim_end().ends_with(": OK"), "{v}");
    // Root as the only trust anchor, the .cert.pem (leaf + issuing CA) as untrusted chain.
    let v = openssl_text(&[
        "verify",
        "-x509_strict",
        "-CAfile",
        p(&paths.root_cert()),
        "-untrusted",
        p(&cert_path),
        p(&cert_path),
    ]);
    assert!(v.trim_end().ends_with(": OK"), "{v}");

    let ext = openssl_text(&[
        "x509",
        "-noout",
        "-ext",
        "extendedKeyUsage,subjectAltName,keyUsage,basicConstraints",
        "-in",
        p(&leaf_path),
    ]);
    assert!(ext.contains("TLS Web Client Authentication"), "{ext}");
    assert!(!ext.contains("Server Authentication"), "{ext}");
    assert!(ext.contains("URI:urn:certbound:device:sensor-1"), "{ext}");
    assert!(ext.contains("Digital Signature"), "{ext}");
    assert!(ext.contains("CA:FALSE"), "{ext}");

    // serial_hex is the openssl serial in lowercase.
    let serial = openssl_text(&["x509", "-noout", "-serial", "-in", p(&leaf_path)]);
    assert_eq!(
        serial.trim(),
        format!("serial={}", bundle.cert.serial_hex.to_uppercase())
    );
    // Thumbprint matches openssl's SHA-256 fingerprint.
    let fp = openssl_text(&[
        "x509",
        "-noout",
        "-fingerprint",
        "-sha256",
        "-in",
        p(&leaf_path),
    ]);
    let fp_hex: String = fp
        .trim()
        .rsplit('=')
        .next()
        .unwrap()
        .replace(':', "")
        .to_lowercase();
    assert_eq!(fp_hex, hex::encode(bundle.cert.thumbprint));

    // The key parses and is the key of the certificate.
    openssl(&["pkey", "-in", p(&key_path), "-noout"]);
    let key_pub = openssl(&["pkey", "-in", p(&key_path), "-pubout"]);
    let cert_pub = openssl(&["x509", "-in", p(&leaf_path), "-noout", "-pubkey"]);
    assert_eq!(key_pub, cert_pub);

    // CA profile as openssl sees it.
    let root_ext = openssl_text(&[
        "x509",
        "-noout",
        "-ext",
        "basicConstraints,keyUsage",
        "-in",
        p(&paths.root_cert()),
    ]);
    assert!(root_ext.contains("CA:TRUE, pathlen:1"), "{root_ext}");
    assert!(
        root_ext.contains("Certificate Sign, CRL Sign"),
        "{root_ext}"
    );
    let issuing_ext = openssl_text(&[
        "x509",
        "-noout",
        "-ext",
        "basicConstraints",
        "-in",
        p(&paths.issuing_cert()),
    ]);
    assert!(issuing_ext.contains("CA:TRUE, pathlen:0"), "{issuing_ext}");
    openssl(&["pkey", "-in", p(&paths.issuing_key()), "-noout"]);
}

#[test]
fn openssl_made_key_gets_a_verifiable_cert() {
    if !openssl_available() {
        return;
    }
    let (dir, paths, ca) = setup();
    let key = dir.path().join("dev.key.pem");
    let pub_der = dir.path().join("dev.pub.der");
    openssl(&[
        "ecparam",
        "-genkey",
        "-name",
        "prime256v1",
        "-noout",
        "-out",
        p(&key),
    ]);
    openssl(&[
        "pkey",
        "-in",
        p(&key),
        "-pubout",
        "-outform",
        "DER",
        "-out",
        p(&pub_der),
    ]);
    let spki = std::fs::read(&pub_der).unwrap();

    let cert = ca.issue_device_cert("gw-7", &spki, 30, now()).unwrap();
    let cert_path = dir.path().join("gw-7.pem");
    std::fs::write(&cert_path, &cert.pem).unwrap();
    let v = openssl_text(&[
        "verify",
        "-purpose",
        "sslclient",
        "-CAfile",
        p(&paths.chain()),
        p(&cert_path),
    ]);
    assert!(v.trim_end().ends_with(": OK"), "{v}");
    // The certificate carries exactly the openssl key.
    let cert_pub = openssl(&["x509", "-in", p(&cert_path), "-noout", "-pubkey"]);
    let key_pub = openssl(&["pkey", "-in", p(&key), "-pubout"]);
    assert_eq!(cert_pub, key_pub);

    let store = TrustStore::load(&paths).unwrap();
    let verified = store.verify_device_cert(&cert.der, &[], now(), 60).unwrap();
    assert_eq!(verified.device_id, "gw-7");
    assert!(spki.ends_with(&verified.public_key_sec1));
}

#[test]
fn openssl_rejects_cert_from_foreign_ca() {
    if !openssl_available() {
        return;
    }
    let (dir, paths, _ca) = setup();
    let (_other_dir, _other_paths, other_ca) = setup();
    let foreign = other_ca.issue_device("sensor-1", 1, now()).unwrap();
    let leaf = dir.path().join("foreign.pem");
    std::fs::write(&leaf, &foreign.cert.pem).unwrap();
    let out = Command::new("openssl")
        .args(["verify", "-CAfile", p(&paths.chain()), p(&leaf)])
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "openssl accepted a foreign certificate"
    );
}
