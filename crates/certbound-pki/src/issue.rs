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

/// SAN URI prefix of service identities (`urn:certbound:service:<name>`).
pub const SERVICE_URI_PREFIX: &str = "urn:certbound:service:";

/// Which certificate profile to issue.
#[derive(Debug, Clone, Copy)]
enum Profile<'a> {
    Device(&'a str),
    Service(&'a str),
    Claim(&'a str),
    Server(&'a [String]),
}

/// Parses a device public key (SubjectPublicKeyInfo DER, P-256 only).
fn device_spki(spki_der: &[u8]) -> Result<rcgen::SubjectPublicKeyInfo, PkiError> {
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
    Ok(rcgen::SubjectPublicKeyInfo::from_der(spki_der)?)
}

/// SAN URI prefix of claim certificates ([`IssuingCa::issue_claim`]).
pub const CLAIM_URI_PREFIX: &str = "urn:certbound:claim:";

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
    /// files and must be a valid name ([`crate::validate_name`]).
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
        crate::validate_name(device_id)?;
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
        device_spki(spki_der)?;
        self.issue_device_cert_checked(device_id, spki_der, lifetime_days, now)
    }

    /// [`IssuingCa::issue_device_cert`] for a key already checked to be a
    /// P-256 point on the curve (a [`crate::VerifiedCsr`]'s), which is not
    /// parsed again (about 3 µs per certificate, measured on the library
    /// path of BENCHMARKS.md).
    pub(crate) fn issue_device_cert_checked(
        &self,
        device_id: &str,
        spki_der: &[u8],
        lifetime_days: u32,
        now: u64,
    ) -> Result<IssuedCert, PkiError> {
        validate_device_id(device_id)?;
        let key = rcgen::SubjectPublicKeyInfo::from_der(spki_der)?;
        self.issue_for_key(Profile::Device(device_id), &key, lifetime_days, now)
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
        let cert = self.issue_for_key(Profile::Device(device_id), &key, lifetime_days, now)?;
        let chain_pem = format!("{}{}", cert.pem, self.cert_pem());
        Ok(DeviceBundle {
            cert,
            key_pkcs8_pem: key.serialize_pem(),
            chain_pem,
        })
    }

    /// Generates a key and a *service* client certificate: CN = `name`, SAN URI
    /// `urn:certbound:service:<name>`, EKU clientAuth. Services (the broker
    /// connecting to an external MQTT server, backends) use these; they are
    /// never accepted as device certificates (no device SAN).
    ///
    /// # Errors
    /// As for [`IssuingCa::issue_device_cert`]; `name` follows the name
    /// rules ([`crate::validate_name`]; reserved names are allowed: the
    /// broker's own identity is a service).
    pub fn issue_service(
        &self,
        name: &str,
        lifetime_days: u32,
        now: u64,
    ) -> Result<DeviceBundle, PkiError> {
        crate::validate_name(name)?;
        self.issue_generated(Profile::Service(name), lifetime_days, now)
    }

    /// Generates a key and a TLS *server* certificate for `names` (DNS names or
    /// IP addresses; the first is the CN), EKU serverAuth.
    ///
    /// # Errors
    /// [`PkiError::InvalidArgument`] for no names or an invalid DNS name; as
    /// for [`IssuingCa::issue_device_cert`] otherwise.
    pub fn issue_server(
        &self,
        names: &[String],
        lifetime_days: u32,
        now: u64,
    ) -> Result<DeviceBundle, PkiError> {
        if names.is_empty() {
            return Err(PkiError::InvalidArgument(
                "a server certificate needs at least one host name".into(),
            ));
        }
        self.issue_generated(Profile::Server(names), lifetime_days, now)
    }

    /// Generates a key and a *claim* certificate (SAN URI
    /// `urn:certbound:claim:<id>`, CN `claim-<id>`, EKU clientAuth) that
    /// lives `lifetime_secs`: a production line's batch credential that a
    /// device presents, with its own CSR, to get its own certificate. It is
    /// not a device or service identity (the MQTT server refuses it).
    ///
    /// # Errors
    /// [`PkiError::InvalidArgument`] for a bad id or a lifetime under 60 s.
    pub fn issue_claim(
        &self,
        claim_id: &str,
        lifetime_secs: u64,
        now: u64,
    ) -> Result<DeviceBundle, PkiError> {
        crate::validate_name(claim_id)?;
        if lifetime_secs < 60 {
            return Err(PkiError::InvalidArgument(
                "a claim must live at least 60 seconds".into(),
            ));
        }
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let cert = self.issue_until(
            Profile::Claim(claim_id),
            &key,
            now.saturating_add(lifetime_secs),
            now,
        )?;
        let chain_pem = format!("{}{}", cert.pem, self.cert_pem());
        Ok(DeviceBundle {
            cert,
            key_pkcs8_pem: key.serialize_pem(),
            chain_pem,
        })
    }

    fn issue_generated(
        &self,
        profile: Profile<'_>,
        lifetime_days: u32,
        now: u64,
    ) -> Result<DeviceBundle, PkiError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let cert = self.issue_for_key(profile, &key, lifetime_days, now)?;
        let chain_pem = format!("{}{}", cert.pem, self.cert_pem());
        Ok(DeviceBundle {
            cert,
            key_pkcs8_pem: key.serialize_pem(),
            chain_pem,
        })
    }

    fn issue_for_key(
        &self,
        profile: Profile<'_>,
        key: &impl PublicKeyData,
        lifetime_days: u32,
        now: u64,
    ) -> Result<IssuedCert, PkiError> {
        if lifetime_days == 0 {
            return Err(PkiError::InvalidArgument(
                "certificate lifetime must be at least one day".into(),
            ));
        }
        let not_after = add_days(now, lifetime_days)?;
        self.issue_until(profile, key, not_after, now)
    }

    /// Issues a device certificate for `spki_der` that lives `lifetime_secs`
    /// seconds (at least 60): short-lived fleets and renewal tests.
    ///
    /// # Errors
    /// As [`IssuingCa::issue_device_cert`]; [`PkiError::InvalidArgument`]
    /// for a lifetime under 60 s.
    pub fn issue_device_cert_secs(
        &self,
        device_id: &str,
        spki_der: &[u8],
        lifetime_secs: u64,
        now: u64,
    ) -> Result<IssuedCert, PkiError> {
        if lifetime_secs < 60 {
            return Err(PkiError::InvalidArgument(
                "certificate lifetime must be at least 60 seconds".into(),
            ));
        }
        validate_device_id(device_id)?;
        let key = device_spki(spki_der)?;
        self.issue_until(
            Profile::Device(device_id),
            &key,
            now.saturating_add(lifetime_secs),
            now,
        )
    }

    fn issue_until(
        &self,
        profile: Profile<'_>,
        key: &impl PublicKeyData,
        not_after: u64,
        now: u64,
    ) -> Result<IssuedCert, PkiError> {
        if now >= self.not_after {
            return Err(PkiError::Expired {
                not_after: self.not_after,
                now,
            });
        }
        let not_before = now.saturating_sub(CLOCK_SKEW_SECS);
        let not_after = not_after.min(self.not_after);
        let serial = random_serial()?;

        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        let (common_name, sans, eku) = match profile {
            Profile::Device(id) => (
                id.to_string(),
                vec![SanType::URI(Ia5String::try_from(device_uri(id))?)],
                ExtendedKeyUsagePurpose::ClientAuth,
            ),
            Profile::Claim(id) => (
                format!("claim-{id}"),
                vec![SanType::URI(Ia5String::try_from(format!(
                    "{CLAIM_URI_PREFIX}{id}"
                ))?)],
                ExtendedKeyUsagePurpose::ClientAuth,
            ),
            Profile::Service(name) => (
                name.to_string(),
                vec![SanType::URI(Ia5String::try_from(format!(
                    "{SERVICE_URI_PREFIX}{name}"
                ))?)],
                ExtendedKeyUsagePurpose::ClientAuth,
            ),
            Profile::Server(names) => {
                let mut sans = Vec::new();
                for n in names {
                    let bad = || {
                        PkiError::InvalidArgument(format!(
                            "{n:?} is not a valid DNS name or IP address"
                        ))
                    };
                    sans.push(match n.parse::<std::net::IpAddr>() {
                        Ok(ip) => SanType::IpAddress(ip),
                        Err(_) if is_dns_name(n) => {
                            SanType::DnsName(Ia5String::try_from(n.as_str()).map_err(|_| bad())?)
                        }
                        Err(_) => return Err(bad()),
                    });
                }
                let cn = names.first().cloned().unwrap_or_default();
                (cn, sans, ExtendedKeyUsagePurpose::ServerAuth)
            }
        };
        dn.push(DnType::CommonName, common_name);
        params.distinguished_name = dn;
        params.subject_alt_names = sans;
        params.not_before = to_datetime(not_before)?;
        params.not_after = to_datetime(not_after)?;
        params.serial_number = Some(SerialNumber::from_slice(&serial));
        // ExplicitNoCa writes basicConstraints CA:FALSE and the subject key identifier.
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![eku];
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

/// A host name of 1-253 characters in labels of letters, digits and hyphens
/// (a leading `*.` wildcard allowed), no label longer than 63 or starting/ending with `-`.
fn is_dns_name(name: &str) -> bool {
    let name = name.strip_prefix("*.").unwrap_or(name);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

#[cfg(test)]
mod tests;
