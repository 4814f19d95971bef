//! Device certificate issuance.

use std::fmt;
use std::path::{Path, PathBuf};

use rcgen::string::Ia5String;
use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, PublicKeyData, SanType, SerialNumber,
};
use x509_parser::prelude::FromDer as _;

use crate::ca::CLOCK_SKEW_SECS;
use crate::cert::{add_days, p256_point, random_serial, serial_hex, to_datetime};
use crate::device_id::device_uri;
use crate::files::{Secrecy, create_dir, ensure_absent, write_new_file};
use crate::{IssuingCa, PkiError, thumbprint_sha256, validate_device_id};

/// A certificate fresh from the issuing CA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedCert {
    /// The certificate, DER.
    pub der: Vec<u8>,
    /// The certificate, PEM (one `CERTIFICATE` block).
    pub pem: String,
    /// The serial number as 32 lowercase hex digits (16 bytes, no separators).
    /// `openssl x509 -serial` prints the same digits in uppercase.
    pub serial_hex: String,
    /// notBefore, unix seconds (`now - 60`).
    pub not_before: u64,
    /// notAfter, unix seconds (`now + lifetime`, capped at the issuing CA's notAfter).
    pub not_after: u64,
    /// SHA-256 of `der`.
    pub thumbprint: [u8; 32],
}

/// A device certificate together with its freshly generated private key.
///
/// `Debug` never prints the key.
pub struct DeviceBundle {
    /// The device certificate.
    pub cert: IssuedCert,
    /// The device private key, PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`).
    pub key_pkcs8_pem: String,
    /// The device certificate followed by the issuing CA certificate, PEM.
    pub chain_pem: String,
}

impl fmt::Debug for DeviceBundle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceBundle")
            .field("cert", &self.cert)
            .field("key_pkcs8_pem", &"[redacted]")
            .field("chain_pem", &self.chain_pem)
            .finish()
    }
}

impl DeviceBundle {
    /// Writes `<out_dir>/<device_id>.key.pem` (the key, created with mode 0600
    /// so it is never readable by others, not even briefly) and
    /// `<out_dir>/<device_id>.cert.pem` (the device certificate followed by the
    /// issuing CA). Creates `out_dir` when missing. `device_id` only names the
    /// files and must be a valid device id.
    ///
    /// Returns `(key_path, cert_path)`.
    ///
    /// # Errors
    /// [`PkiError::AlreadyExists`] if either file exists (nothing is written
    /// then), [`PkiError::InvalidDeviceId`], [`PkiError::Io`].
    pub fn write_to(
        &self,
        out_dir: &Path,
        device_id: &str,
    ) -> Result<(PathBuf, PathBuf), PkiError> {
        validate_device_id(device_id)?;
        let key_path = out_dir.join(format!("{device_id}.key.pem"));
        let cert_path = out_dir.join(format!("{device_id}.cert.pem"));
        ensure_absent(&[&key_path, &cert_path])?;
        create_dir(out_dir, false)?;
        write_new_file(&key_path, self.key_pkcs8_pem.as_bytes(), Secrecy::Secret)?;
        if let Err(e) = write_new_file(&cert_path, self.chain_pem.as_bytes(), Secrecy::Public) {
            let _ = std::fs::remove_file(&key_path);
            return Err(e);
        }
        Ok((key_path, cert_path))
    }
}

impl IssuingCa {
    /// Issues a device certificate for an existing P-256 public key, given as
    /// SubjectPublicKeyInfo DER (e.g. `openssl pkey -pubout -outform DER`).
    ///
    /// Profile: subject CN = `device_id`, SAN URI `urn:certbound:device:<id>`,
    /// EKU clientAuth only, keyUsage digitalSignature (critical),
    /// basicConstraints CA:FALSE, subject and authority key identifiers, a
    /// random 16-byte positive serial, notBefore = `now - 60`, notAfter =
    /// `now + lifetime_days` (capped at the issuing CA's notAfter).
    ///
    /// # Errors
    /// [`PkiError::InvalidDeviceId`], [`PkiError::UnsupportedKey`] for keys
    /// other than P-256, [`PkiError::Malformed`] for unparsable SPKI or a point
    /// not on the curve, [`PkiError::InvalidArgument`] for a zero lifetime,
    /// [`PkiError::Expired`] when the issuing CA itself has expired at `now`.
    pub fn issue_device_cert(
        &self,
        device_id: &str,
        spki_der: &[u8],
        lifetime_days: u32,
        now: u64,
    ) -> Result<IssuedCert, PkiError> {
        validate_device_id(device_id)?;
        let (rest, spki) =
            x509_parser::x509::SubjectPublicKeyInfo::from_der(spki_der).map_err(|e| {
                PkiError::Malformed(format!("public key is not SubjectPublicKeyInfo DER: {e}"))
            })?;
        if !rest.is_empty() {
            return Err(PkiError::Malformed(
                "public key has trailing bytes after the SubjectPublicKeyInfo".into(),
            ));
        }
        p256_point(&spki, "the public key")?;
        let key = rcgen::SubjectPublicKeyInfo::from_der(spki_der)?;
        self.issue_for_key(device_id, &key, lifetime_days, now)
    }

    /// Generates a fresh P-256 key pair and issues a device certificate for it
    /// (same profile as [`IssuingCa::issue_device_cert`]).
    ///
    /// # Errors
    /// As for [`IssuingCa::issue_device_cert`].
    pub fn issue_device(
        &self,
        device_id: &str,
        lifetime_days: u32,
        now: u64,
    ) -> Result<DeviceBundle, PkiError> {
        validate_device_id(device_id)?;
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let cert = self.issue_for_key(device_id, &key, lifetime_days, now)?;
        let chain_pem = format!("{}{}", cert.pem, self.cert_pem());
        Ok(DeviceBundle {
            cert,
            key_pkcs8_pem: key.serialize_pem(),
            chain_pem,
        })
    }

    fn issue_for_key(
        &self,
        device_id: &str,
        key: &impl PublicKeyData,
        lifetime_days: u32,
        now: u64,
    ) -> Result<IssuedCert, PkiError> {
        if lifetime_days == 0 {
            return Err(PkiError::InvalidArgument(
                "device certificate lifetime must be at least one day".into(),
            ));
        }
        if now >= self.not_after {
            return Err(PkiError::Expired {
                not_after: self.not_after,
                now,
            });
        }
        let not_before = now.saturating_sub(CLOCK_SKEW_SECS);
        let not_after = add_days(now, lifetime_days)?.min(self.not_after);
        let serial = random_serial()?;

        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, device_id);
        params.distinguished_name = dn;
        let uri = Ia5String::try_from(device_uri(device_id))?;
        params.subject_alt_names = vec![SanType::URI(uri)];
        params.not_before = to_datetime(not_before)?;
        params.not_after = to_datetime(not_after)?;
        params.serial_number = Some(SerialNumber::from_slice(&serial));
        // ExplicitNoCa writes basicConstraints CA:FALSE and the subject key identifier.
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;

        let cert = params.signed_by(key, &self.issuer)?;
        let der = cert.der().to_vec();
        Ok(IssuedCert {
            pem: cert.pem(),
            serial_hex: serial_hex(&serial),
            not_before,
            not_after,
            thumbprint: thumbprint_sha256(&der),
            der,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CaOptions, PkiPaths, TrustStore, cert_summary, init_ca, parse_pem_certs};

    const NOW: u64 = 1_750_000_000;

    fn setup() -> (tempfile::TempDir, PkiPaths, IssuingCa) {
        let dir = tempfile::tempdir().unwrap();
        let paths = PkiPaths::new(dir.path());
        init_ca(&paths, &CaOptions::default(), NOW).unwrap();
        let ca = IssuingCa::load(&paths).unwrap();
        (dir, paths, ca)
    }

    #[test]
    fn device_cert_profile() {
        let (_dir, paths, ca) = setup();
        let bundle = ca.issue_device("sensor-1", 30, NOW).unwrap();
        let c = &bundle.cert;
        assert_eq!(c.not_before, NOW - 60);
        assert_eq!(c.not_after, NOW + 30 * 86_400);
        assert_eq!(c.serial_hex.len(), 32);
        assert_eq!(c.serial_hex, c.serial_hex.to_lowercase());
        assert_eq!(c.thumbprint, thumbprint_sha256(&c.der));
        assert_eq!(parse_pem_certs(&c.pem).unwrap(), vec![c.der.clone()]);
        let chain = parse_pem_certs(&bundle.chain_pem).unwrap();
        assert_eq!(chain, vec![c.der.clone(), ca.cert_der().to_vec()]);
        assert!(
            bundle
                .key_pkcs8_pem
                .starts_with("-----BEGIN PRIVATE KEY-----")
        );

        let s = cert_summary(&c.der).unwrap();
        assert_eq!(s.subject, "CN=sensor-1");
        assert_eq!(s.device_id.as_deref(), Some("sensor-1"));
        assert_eq!(s.serial_hex, c.serial_hex);
        assert!(!s.is_ca);

        let x509 = crate::cert::parse_der(&c.der, "t").unwrap();
        let eku = x509.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.client_auth && !eku.server_auth && !eku.any && eku.other.is_empty());
        let ku = x509.key_usage().unwrap().unwrap().value;
        assert!(ku.digital_signature() && !ku.key_cert_sign());
        assert!(!x509.basic_constraints().unwrap().unwrap().value.ca);
        let has = |oid| x509.get_extension_unique(&oid).unwrap().is_some();
        use x509_parser::oid_registry::{
            OID_X509_EXT_AUTHORITY_KEY_IDENTIFIER, OID_X509_EXT_SUBJECT_KEY_IDENTIFIER,
        };
        assert!(has(OID_X509_EXT_AUTHORITY_KEY_IDENTIFIER));
        assert!(has(OID_X509_EXT_SUBJECT_KEY_IDENTIFIER));

        let store = TrustStore::load(&paths).unwrap();
        let v = store.verify_device_cert(&c.der, &[], NOW, 0).unwrap();
        assert_eq!(v.device_id, "sensor-1");
        assert_eq!(v.serial_hex, c.serial_hex);
        assert_eq!((v.not_before, v.not_after), (c.not_before, c.not_after));
    }

    #[test]
    fn issue_for_existing_key_binds_that_key() {
        let (_dir, paths, ca) = setup();
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let spki = key.subject_public_key_info();
        let cert = ca.issue_device_cert("gw:7", &spki, 1, NOW).unwrap();
        let store = TrustStore::load(&paths).unwrap();
        let v = store.verify_device_cert(&cert.der, &[], NOW, 0).unwrap();
        assert_eq!(v.public_key_sec1, key.der_bytes());
        assert_eq!(v.public_key_sec1.len(), 65);
    }

    #[test]
    fn issue_rejects_bad_input() {
        let (_dir, _paths, ca) = setup();
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let spki = key.subject_public_key_info();
        assert!(matches!(
            ca.issue_device_cert("../x", &spki, 1, NOW),
            Err(PkiError::InvalidDeviceId { .. })
        ));
        assert!(matches!(
            ca.issue_device_cert("d", &spki, 0, NOW),
            Err(PkiError::InvalidArgument(_))
        ));
        assert!(matches!(
            ca.issue_device_cert("d", b"junk", 1, NOW),
            Err(PkiError::Malformed(_))
        ));
        let ed = KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        assert!(matches!(
            ca.issue_device_cert("d", &ed.subject_public_key_info(), 1, NOW),
            Err(PkiError::UnsupportedKey(_))
        ));
        let p384 = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        assert!(matches!(
            ca.issue_device_cert("d", &p384.subject_public_key_info(), 1, NOW),
            Err(PkiError::UnsupportedKey(_))
        ));
        // A point that is not on the curve.
        let mut off_curve = spki.clone();
        let last = off_curve.len() - 1;
        off_curve[last] ^= 0x01;
        assert!(matches!(
            ca.issue_device_cert("d", &off_curve, 1, NOW),
            Err(PkiError::Malformed(_))
        ));
        // Issuing CA expired.
        let late = ca.not_after() + 1;
        assert!(matches!(
            ca.issue_device("d", 1, late),
            Err(PkiError::Expired { .. })
        ));
        // Lifetime is capped at the issuing CA.
        let c = ca.issue_device_cert("d", &spki, 100_000, NOW).unwrap();
        assert_eq!(c.not_after, ca.not_after());
    }

    #[test]
    fn ten_certs_have_distinct_serials() {
        let (_dir, _paths, ca) = setup();
        let mut serials = std::collections::HashSet::new();
        for i in 0..10 {
            let b = ca.issue_device(&format!("dev-{i}"), 1, NOW).unwrap();
            assert_eq!(b.cert.serial_hex.len(), 32);
            assert!(
                serials.insert(b.cert.serial_hex.clone()),
                "duplicate serial"
            );
        }
        assert_eq!(serials.len(), 10);
    }

    #[test]
    fn debug_redacts_key() {
        let (_dir, _paths, ca) = setup();
        let b = ca.issue_device("d", 1, NOW).unwrap();
        let debug = format!("{b:?}");
        assert!(debug.contains("[redacted]"));
        assert!(!debug.contains("PRIVATE KEY"));
        let body: String = b.key_pkcs8_pem.lines().nth(1).unwrap().into();
        assert!(!debug.contains(&body));
    }

    #[test]
    fn write_to_creates_files_with_modes_and_refuses_overwrite() {
        let (dir, _paths, ca) = setup();
        let out = dir.path().join("out/nested");
        let b = ca.issue_device("dev-1", 1, NOW).unwrap();
        let (key_path, cert_path) = b.write_to(&out, "dev-1").unwrap();
        assert_eq!(key_path, out.join("dev-1.key.pem"));
        assert_eq!(cert_path, out.join("dev-1.cert.pem"));
        assert_eq!(std::fs::read_to_string(&key_path).unwrap(), b.key_pkcs8_pem);
        assert_eq!(std::fs::read_to_string(&cert_path).unwrap(), b.chain_pem);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&key_path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let other = ca.issue_device("dev-1", 1, NOW).unwrap();
        assert!(matches!(
            other.write_to(&out, "dev-1"),
            Err(PkiError::AlreadyExists(_))
        ));
        assert_eq!(std::fs::read_to_string(&key_path).unwrap(), b.key_pkcs8_pem);
        // Only the cert exists: still refused, and no key file is left behind.
        std::fs::remove_file(&key_path).unwrap();
        assert!(matches!(
            other.write_to(&out, "dev-1"),
            Err(PkiError::AlreadyExists(p)) if p == cert_path
        ));
        assert!(!key_path.exists());
        assert!(matches!(
            b.write_to(&out, "../evil"),
            Err(PkiError::InvalidDeviceId { .. })
        ));
    }
}
