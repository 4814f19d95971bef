//! Token signing keys: P-256, stored as PKCS#8 PEM under `DIR/keys/`
//! (mode 0600), the current one named by `DIR/keys/current`.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use certbound_proto::EcPublicKey;
use certbound_proto::crypto::{AwsLcSigner, Signer};

use crate::error::BrokerError;

/// A loaded signing key.
#[derive(Debug)]
pub struct SigningKey {
    /// Key id (see [`EcPublicKey::kid`]).
    pub kid: String,
    /// The signer.
    pub signer: AwsLcSigner,
}

/// Creates a new signing key in `dir` and makes it current. Returns its kid.
pub fn create_signing_key(dir: &Path) -> Result<String, BrokerError> {
    fs::create_dir_all(dir).map_err(BrokerError::io(dir))?;
    let (signer, der) = AwsLcSigner::generate()?;
    let kid = signer.public_key().kid();
    let path = key_path(dir, &kid);
    write_private(&path, pkcs8_pem(&der).as_bytes())?;
    let current = dir.join("current");
    fs::write(&current, format!("{kid}\n")).map_err(BrokerError::io(&current))?;
    Ok(kid)
}

/// Loads the current signing key.
pub fn load_current(dir: &Path) -> Result<SigningKey, BrokerError> {
    let current = dir.join("current");
    let kid = fs::read_to_string(&current).map_err(BrokerError::io(&current))?;
    load(dir, kid.trim())
}

/// Loads one key by kid.
pub fn load(dir: &Path, kid: &str) -> Result<SigningKey, BrokerError> {
    let path = key_path(dir, kid);
    let pem = fs::read_to_string(&path).map_err(BrokerError::io(&path))?;
    let der = pem_body(&pem).ok_or_else(|| {
        BrokerError::Invalid(format!("{}: not a PKCS#8 PEM private key", path.display()))
    })?;
    let signer = AwsLcSigner::from_pkcs8_der(&der)?;
    let actual = signer.public_key().kid();
    if actual != kid {
        return Err(BrokerError::Invalid(format!(
            "{}: holds key {actual}, not {kid}; the keys directory was edited by hand",
            path.display()
        )));
    }
    Ok(SigningKey {
        kid: actual,
        signer,
    })
}

/// The public keys of every signing key in `dir` (for key sets), by kid.
pub fn public_keys(dir: &Path) -> Result<Vec<(String, EcPublicKey)>, BrokerError> {
    let mut out = Vec::new();
    let entries = fs::read_dir(dir).map_err(BrokerError::io(dir))?;
    for entry in entries {
        let entry = entry.map_err(BrokerError::io(dir))?;
        let name = entry.file_name().to_string_lossy().to_string();
        if let Some(kid) = name.strip_suffix(".key.pem") {
            let key = load(dir, kid)?;
            out.push((key.kid, key.signer.public_key().clone()));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

fn key_path(dir: &Path, kid: &str) -> PathBuf {
    dir.join(format!("{kid}.key.pem"))
}

fn pkcs8_pem(der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN PRIVATE KEY-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str("-----END PRIVATE KEY-----\n");
    out
}

fn pem_body(pem: &str) -> Option<Vec<u8>> {
    let start = pem.find("-----BEGIN PRIVATE KEY-----")? + "-----BEGIN PRIVATE KEY-----".len();
    let end = pem.find("-----END PRIVATE KEY-----")?;
    let body: String = pem.get(start..end)?.split_whitespace().collect();
    base64::engine::general_purpose::STANDARD.decode(body).ok()
}

/// Writes a secret file created with mode 0600 (never readable by others, not even briefly).
pub fn write_private(path: &Path, contents: &[u8]) -> Result<(), BrokerError> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(BrokerError::io(path))?;
    file.write_all(contents).map_err(BrokerError::io(path))?;
    file.sync_all().map_err(BrokerError::io(path))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_load_and_list() {
        let dir = tempfile::tempdir().unwrap();
        let kid = create_signing_key(dir.path()).unwrap();
        let key = load_current(dir.path()).unwrap();
        assert_eq!(key.kid, kid);
        let pubs = public_keys(dir.path()).unwrap();
        assert_eq!(pubs.len(), 1);
        assert_eq!(&pubs[0].1, key.signer.public_key());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(key_path(dir.path(), &kid))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
