//! Certificate lifecycle with the real binary and openssl as the independent
//! implementation: `device sign-csr` on an `openssl req` CSR, `crl` after a
//! revocation, `ca rotate-issuing` with both CAs trusted during the overlap.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

fn openssl(args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("run openssl");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn have_openssl() -> bool {
    Command::new("openssl").arg("version").output().is_ok()
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn openssl_csr_is_signed_with_our_profile_revoked_into_the_crl_and_survives_ca_rotation() {
    if !have_openssl() {
        return skip_or_fail("openssl");
    }
    let dir = tempfile::tempdir().unwrap();
    let d = p(dir.path());
    ok(&["init", "--dir", d, "--issuer-id", ISSUER]);
    ok(&[
        "api",
        "create",
        "--dir",
        d,
        "--id",
        API,
        "--scopes",
        "telemetry:write",
    ]);
    let grant = format!("{API}=telemetry:write");
    ok(&[
        "group", "create", "--dir", d, "--name", "sensors", "--grant", &grant,
    ]);

    // A key that never leaves the "device", a CSR asking for things we ignore.
    let key = dir.path().join("sensor.key.pem");
    let csr = dir.path().join("sensor.csr");
    let (made, log) = openssl(&[
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        p(&key),
        "-out",
        p(&csr),
        "-subj",
        "/CN=admin/O=evil",
        "-addext",
        "subjectAltName=URI:urn:certbound:device:someone-else",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
    ]);
    assert!(made, "{log}");
    let cert = dir.path().join("sensor-7.cert.pem");
    let out = ok(&[
        "device",
        "sign-csr",
        "--dir",
        d,
        "--csr",
        p(&csr),
        "--id",
        "sensor-7",
        "--group",
        "sensors",
        "--out",
        p(&cert),
    ]);
    assert!(out.contains("registered from its CSR"), "{out}");
    let chain = dir.path().join("pki/ca-chain.pem");
    let (verified, log) = openssl(&[
        "verify",
        "-purpose",
        "sslclient",
        "-CAfile",
        p(&chain),
        p(&cert),
    ]);
    assert!(verified && log.contains("OK"), "{log}");
    let (_, text) = openssl(&[
        "x509",
        "-noout",
        "-subject",
        "-ext",
        "subjectAltName,basicConstraints",
        "-in",
        p(&cert),
    ]);
    assert!(
        text.contains("CN=sensor-7") || text.contains("CN = sensor-7"),
        "{text}"
    );
    assert!(text.contains("urn:certbound:device:sensor-7"), "{text}");
    assert!(
        !text.contains("someone-else") && !text.contains("evil") && !text.contains("CA:TRUE"),
        "{text}"
    );
    // The certificate holds the CSR's key.
    let (_, cert_pub) = openssl(&["x509", "-noout", "-pubkey", "-in", p(&cert)]);
    let (_, key_pub) = openssl(&["pkey", "-pubout", "-in", p(&key)]);
    assert_eq!(cert_pub.trim(), key_pub.trim());
    // The same id twice, a tampered CSR, an unknown group: refused.
    let again = certbound(&[
        "device",
        "sign-csr",
        "--dir",
        d,
        "--csr",
        p(&csr),
        "--id",
        "sensor-7",
        "--out",
        p(&dir.path().join("x.pem")),
    ]);
    assert!(!again.status.success());
    let mut bytes = std::fs::read(&csr).unwrap();
    let n = bytes.len();
    bytes[n - 40] ^= 1;
    std::fs::write(dir.path().join("bad.csr"), &bytes).unwrap();
    let bad = certbound(&[
        "device",
        "sign-csr",
        "--dir",
        d,
        "--csr",
        p(&dir.path().join("bad.csr")),
        "--id",
        "sensor-8",
        "--out",
        p(&dir.path().join("y.pem")),
    ]);
    assert!(!bad.status.success(), "a tampered CSR is refused");

    // Revoke: the CRL lists the serial and verifies with openssl.
    let serial = {
        let (_, s) = openssl(&["x509", "-noout", "-serial", "-in", p(&cert)]);
        s.trim().trim_start_matches("serial=").to_uppercase()
    };
    ok(&[
        "device", "revoke", "--dir", d, "sensor-7", "--reason", "test",
    ]);
    let crl = dir.path().join("crl.pem");
    ok(&["crl", "--dir", d, "--out", p(&crl)]);
    let (ok_crl, text) = openssl(&[
        "crl",
        "-in",
        p(&crl),
        "-noout",
        "-text",
        "-CAfile",
        p(&chain),
    ]);
    assert!(ok_crl && text.contains("verify OK"), "{text}");
    let normalised = text.to_uppercase().replace(':', "");
    assert!(
        normalised.contains(serial.trim_start_matches('0')),
        "serial {serial} not in\n{text}"
    );
    let (rejected, log) = openssl(&[
        "verify",
        "-crl_check",
        "-CAfile",
        p(&chain),
        "-CRLfile",
        p(&crl),
        p(&cert),
    ]);
    assert!(
        !rejected && log.contains("revoked"),
        "openssl must refuse the revoked certificate: {log}"
    );

    // Rotate the issuing CA: old and new certificates both verify with the exported chain.
    let shown = ok(&["ca", "show", "--dir", d, "--json"]);
    let before: serde_json::Value = serde_json::from_str(&shown).unwrap();
    ok(&["ca", "rotate-issuing", "--dir", d]);
    let after: serde_json::Value =
        serde_json::from_str(&ok(&["ca", "show", "--dir", d, "--json"])).unwrap();
    assert_eq!(
        after.as_array().unwrap().len(),
        before.as_array().unwrap().len() + 1
    );
    let out = dir.path().join("devices");
    ok(&[
        "device",
        "provision",
        "--dir",
        d,
        "--id",
        "sensor-9",
        "--group",
        "sensors",
        "--out",
        p(&out),
    ]);
    let exported = dir.path().join("exported-chain.pem");
    ok(&["ca", "export", "--dir", d, "--out", p(&exported)]);
    let new_cert = out.join("sensor-9.cert.pem");
    let (v_new, log) = openssl(&["verify", "-CAfile", p(&exported), p(&new_cert)]);
    assert!(v_new, "new issuing CA: {log}");
    let (_, issuer_new) = openssl(&["x509", "-noout", "-issuer", "-serial", "-in", p(&new_cert)]);
    let (_, issuer_old) = openssl(&["x509", "-noout", "-issuer", "-in", p(&cert)]);
    assert!(!issuer_new.is_empty() && !issuer_old.is_empty());
    let (v_old, log) = openssl(&["verify", "-CAfile", p(&exported), p(&cert)]);
    assert!(
        v_old,
        "the old issuing CA stays trusted during the overlap: {log}"
    );
}
