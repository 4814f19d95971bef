//! Replays the seed corpora of the certbound-pki fuzz targets
//! (`fuzz/corpus/{path_validation,csr,pkcs7}/`) through the same checks as
//! `fuzz/fuzz_targets/`, so every input that ever crashed stays a
//! regression test on stable.
//!
//! The seeds are the committed openssl fixtures of `certs/requests/` plus
//! certbound-made certificates; rewrite them with
//! `CERTBOUND_WRITE_FUZZ_CORPUS=1 cargo test -p certbound-pki --test fuzz_corpus write_seed_corpus`.

use std::path::{Path, PathBuf};

use certbound_pki::{
    CaOptions, ExternalAnchor, IssuingCa, MAX_PATH_STEPS, MAX_SIGNATURE_CHECKS, PkiPaths,
    TrustStore, init_ca, parse_pem_certs, pkcs7_certificates, pkcs7_certs_only, verify_csr,
};

/// As `fuzz/src/lib.rs` (`pki::NOW`).
const NOW: u64 = 4_000_000_000;
const TARGETS: &[&str] = &["path_validation", "csr", "pkcs7"];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn fixture(name: &str) -> Vec<u8> {
    let p = root().join("certs/requests").join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn pem_certs(name: &str) -> Vec<Vec<u8>> {
    parse_pem_certs(&String::from_utf8(fixture(name)).unwrap()).unwrap()
}

/// The fuzz targets' fixed trust store (see `fuzz/src/lib.rs`).
fn trust() -> TrustStore {
    TrustStore::from_pem(&String::from_utf8(fixture("foreign-ca.cert.pem")).unwrap())
        .unwrap()
        .with_external(vec![ExternalAnchor {
            name: "partner".into(),
            cert_der: pem_certs("expired-ca.cert.pem").remove(0),
        }])
        .unwrap()
}

/// As `fuzz/src/lib.rs` (`pki::split_ders`).
fn split_ders(mut data: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while out.len() < 10 && data.len() >= 2 {
        let first = usize::from(data[1]);
        let (len, header) = if first < 0x80 {
            (first, 2)
        } else {
            let n = first & 0x7f;
            if n == 0 || n > 3 || data.len() < 2 + n {
                break;
            }
            let len = data[2..2 + n]
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
            (len, 2 + n)
        };
        let Some(end) = header.checked_add(len).filter(|&e| e <= data.len()) else {
            break;
        };
        out.push(data[..end].to_vec());
        data = &data[end..];
    }
    out
}

fn path_validation(trust: &TrustStore, data: &[u8]) -> bool {
    let ders = split_ders(data);
    let Some((leaf, chain)) = ders.split_first() else {
        return false;
    };
    let (own, work) = trust.verify_device_cert_counted(leaf, chain, NOW, 60);
    assert!(work.signature_checks <= MAX_SIGNATURE_CHECKS && work.candidates <= MAX_PATH_STEPS);
    let (ext, work) = trust.verify_external_device_cert_counted(leaf, chain, NOW, 60);
    assert!(work.signature_checks <= MAX_SIGNATURE_CHECKS && work.candidates <= MAX_PATH_STEPS);
    let _ = trust.verify_claim_cert(leaf, chain, NOW, 60);
    own.is_ok() || ext.is_ok()
}

fn csr(data: &[u8]) -> bool {
    match verify_csr(data) {
        Ok(v) => {
            assert_eq!(v.public_key_sec1.len(), 65);
            assert!(v.spki_der.ends_with(&v.public_key_sec1));
            let _ = v.check_identity("sensor-csr");
            true
        }
        Err(_) => false,
    }
}

fn pkcs7(data: &[u8]) -> bool {
    match pkcs7_certificates(data) {
        Ok(mut certs) => {
            let mut back = pkcs7_certificates(&pkcs7_certs_only(&certs)).unwrap();
            certs.sort();
            certs.dedup();
            back.sort();
            assert_eq!(back, certs);
            true
        }
        Err(_) => false,
    }
}

fn certbound_device_chain() -> Vec<Vec<u8>> {
    let dir = tempfile::tempdir().unwrap();
    let paths = PkiPaths::new(dir.path());
    init_ca(&paths, &CaOptions::default(), NOW - 86_400).unwrap();
    let bundle = IssuingCa::load(&paths)
        .unwrap()
        .issue_device("sensor-1", 30, NOW - 3600)
        .unwrap();
    parse_pem_certs(&bundle.chain_pem).unwrap()
}

/// The seed inputs, by target: `(file name, bytes)`.
fn seeds() -> Vec<(&'static str, String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut chain = |name: &str, ders: Vec<Vec<u8>>| {
        out.push(("path_validation", format!("seed-{name}"), ders.concat()));
    };
    chain(
        "foreign-device",
        [
            pem_certs("foreign-device.cert.pem"),
            pem_certs("foreign-ca.cert.pem"),
        ]
        .concat(),
    );
    chain(
        "hydra",
        [
            pem_certs("hydra-leaf.cert.pem"),
            pem_certs("hydra-chain.pem"),
        ]
        .concat(),
    );
    chain("expired-partner", pem_certs("expired-ca-device.cert.pem"));
    for leaf in [
        "cn-san-mismatch",
        "two-device-uris",
        "ca-true",
        "critical-unknown",
    ] {
        chain(
            &format!("leaf-{leaf}"),
            pem_certs(&format!("leaf-{leaf}.cert.pem")),
        );
    }
    chain("certbound-device", certbound_device_chain());
    for name in [
        "good",
        "ca-true",
        "extra-san",
        "other-device",
        "other-cn",
        "rsa1024",
        "p384",
    ] {
        out.push((
            "csr",
            format!("seed-{name}"),
            fixture(&format!("csr-{name}.csr.der")),
        ));
    }
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::default();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "sensor-csr");
    out.push((
        "csr",
        "seed-certbound-rcgen".into(),
        params.serialize_request(&key).unwrap().der().to_vec(),
    ));
    out.push((
        "pkcs7",
        "seed-openssl-chain".into(),
        fixture("foreign-chain.p7b.der"),
    ));
    out.push((
        "pkcs7",
        "seed-certbound-chain".into(),
        pkcs7_certs_only(&certbound_device_chain()),
    ));
    out.push(("pkcs7", "seed-empty".into(), pkcs7_certs_only(&[])));
    out
}

#[test]
fn write_seed_corpus() {
    if std::env::var("CERTBOUND_WRITE_FUZZ_CORPUS").as_deref() != Ok("1") {
        return;
    }
    for (target, name, bytes) in seeds() {
        let dir = root().join("fuzz/corpus").join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

#[test]
fn seeds_reach_acceptance() {
    // The seeds exercise the accepting paths too (not only refusals).
    let trust = trust();
    let seeds = seeds();
    let accepted = |target: &str, name: &str| {
        let (_, _, data) = seeds
            .iter()
            .find(|(t, n, _)| *t == target && n == name)
            .unwrap();
        match target {
            "path_validation" => path_validation(&trust, data),
            "csr" => csr(data),
            _ => pkcs7(data),
        }
    };
    assert!(accepted("path_validation", "seed-foreign-device"));
    assert!(!accepted("path_validation", "seed-hydra"));
    assert!(accepted("csr", "seed-good"));
    assert!(!accepted("csr", "seed-rsa1024"));
    assert!(accepted("pkcs7", "seed-openssl-chain"));
    let (_, _, p7) = seeds
        .iter()
        .find(|(_, n, _)| n == "seed-openssl-chain")
        .unwrap();
    assert_eq!(pkcs7_certificates(p7).unwrap().len(), 2);
}

#[test]
fn replay_fuzz_corpus() {
    let trust = trust();
    let mut replayed = 0;
    for target in TARGETS {
        let dir = root().join("fuzz/corpus").join(target);
        let files = std::fs::read_dir(&dir).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (write the seeds, see the module doc)",
                dir.display()
            )
        });
        for file in files {
            let path = file.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            match *target {
                "path_validation" => {
                    path_validation(&trust, &data);
                }
                "csr" => {
                    csr(&data);
                }
                _ => {
                    pkcs7(&data);
                }
            }
            replayed += 1;
        }
    }
    assert!(replayed >= 10, "only {replayed} corpus files");
}
