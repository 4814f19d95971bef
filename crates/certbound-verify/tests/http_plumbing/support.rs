//! Fixtures of the `http` tests: a CA hierarchy from certbound-pki and a
//! PKCS#8 → SEC1 key conversion.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use certbound_pki::{CaOptions, DeviceBundle, IssuingCa, PkiPaths, init_ca};

/// A CA hierarchy with a server certificate for 127.0.0.1 and two device
/// certificates.
pub struct Pki {
    _dir: tempfile::TempDir,
    pub ca_chain_pem: String,
    pub server: DeviceBundle,
    pub device: DeviceBundle,
    #[allow(dead_code, reason = "used by some of the test binaries only")]
    pub other_device: DeviceBundle,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

pub fn make_pki(name: &str) -> Pki {
    let dir = tempfile::tempdir().unwrap();
    let paths = PkiPaths::new(&dir.path().join("ca"));
    let opts = CaOptions {
        root_common_name: format!("{name} Root CA"),
        issuing_common_name: format!("{name} Issuing CA"),
        ..CaOptions::default()
    };
    init_ca(&paths, &opts, now()).unwrap();
    let ca = IssuingCa::load(&paths).unwrap();
    let server = ca
        .issue_server(&["127.0.0.1".into(), "localhost".into()], 30, now())
        .unwrap();
    let device = ca.issue_device("sensor-1", 30, now()).unwrap();
    let other_device = ca.issue_device("sensor-2", 30, now()).unwrap();
    Pki {
        ca_chain_pem: std::fs::read_to_string(paths.chain()).unwrap(),
        server,
        device,
        other_device,
        _dir: dir,
    }
}

/// Unwraps the SEC1 `ECPrivateKey` from a PKCS#8 `PrivateKeyInfo` (the OCTET
/// STRING after the version and the algorithm identifier).
pub fn pkcs8_to_sec1_pem(pkcs8_pem: &str) -> String {
    use rustls_pki_types::PrivatePkcs8KeyDer;
    use rustls_pki_types::pem::PemObject as _;
    let der = PrivatePkcs8KeyDer::from_pem_slice(pkcs8_pem.as_bytes()).unwrap();
    let der = der.secret_pkcs8_der();
    // Returns (content start, content length) of the TLV at `at`.
    let tlv = |at: usize| -> (usize, usize) {
        let len = der[at + 1];
        if len < 0x80 {
            (at + 2, usize::from(len))
        } else {
            let n = usize::from(len & 0x7f);
            let value = der[at + 2..at + 2 + n]
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
            (at + 2 + n, value)
        }
    };
    let (body, _) = tlv(0); // PrivateKeyInfo SEQUENCE
    let (v, vlen) = tlv(body); // version INTEGER
    let (a, alen) = tlv(v + vlen); // AlgorithmIdentifier SEQUENCE
    assert_eq!(der[a + alen], 0x04, "expected the privateKey OCTET STRING");
    let (k, klen) = tlv(a + alen);
    let sec1 = &der[k..k + klen];
    let b64 = base64::engine::general_purpose::STANDARD.encode(sec1);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN EC PRIVATE KEY-----\n{}\n-----END EC PRIVATE KEY-----\n",
        lines.join("\n")
    )
}
