//! Certificate lifecycle operations: devices from CSRs, CA rotation and
//! listing, CRLs.

use serde::Serialize;

use certbound_pki::{
    CaInfo, CaOptions, Crl, IssuingCa, RevokedEntry, list_issuing, rotate_issuing_with_root_key,
    validate_device_id, verify_csr,
};

use super::Registry;
use crate::clock::unix_now;
use crate::error::RegistryError;
use crate::store::{CertRecord, ExternalCa};

/// A device registered from a CSR (its key never left it).
#[derive(Debug, Clone, Serialize)]
pub struct SignedDevice {
    /// Device id.
    pub id: String,
    /// Serial, lowercase hex.
    pub serial: String,
    /// SHA-256 of the certificate DER, hex.
    pub thumbprint: String,
    /// Expiry, Unix seconds.
    pub not_after: u64,
    /// The subject the CSR asked for (ignored for issuance; for the log).
    pub csr_subject: String,
    /// The certificate followed by the issuing CA, PEM.
    #[serde(skip)]
    pub chain_pem: String,
}

/// How long a published CRL is valid (nextUpdate - thisUpdate), seconds.
pub const CRL_VALIDITY_SECS: u64 = 24 * 3600;

impl Registry {
    /// Registers device `id` with a certificate for the key of `csr` (DER or
    /// PEM, made by anything: openssl, a secure element). Subject, SAN, EKU
    /// and lifetime come from certbound's profile, never from the CSR.
    pub async fn sign_csr(
        &self,
        csr: &[u8],
        id: &str,
        groups: &[String],
        lifetime_days: Option<u32>,
    ) -> Result<SignedDevice, RegistryError> {
        self.check_new_device(id, groups).await?;
        let verified = verify_csr(csr)?;
        let ca = IssuingCa::load(&self.data.pki())?;
        let now = unix_now();
        let days = lifetime_days.unwrap_or(self.config.pki.device_cert_days);
        let cert = ca.issue_for_csr(&verified, id, days, now)?;
        let record = CertRecord::issued(id, &cert);
        self.store.create_device(id, groups, &record, now).await?;
        self.audit(
            "device.provisioned",
            id,
            format!(
                "from_csr=true serial={} groups={} not_after={} csr_subject={:?}",
                record.serial,
                groups.join(","),
                record.not_after,
                verified.subject
            ),
        )
        .await?;
        Ok(SignedDevice {
            id: id.into(),
            serial: record.serial,
            thumbprint: record.thumbprint,
            not_after: record.not_after,
            csr_subject: verified.subject.clone(),
            chain_pem: format!("{}{}", cert.pem, ca.cert_pem()),
        })
    }

    /// The issuing CAs (current first) — `certbound ca show`.
    pub fn issuing_cas(&self) -> Result<Vec<CaInfo>, RegistryError> {
        Ok(list_issuing(&self.data.pki())?)
    }

    /// Makes a new issuing CA under the root; the previous one stays trusted
    /// while it is valid, so devices renew onto the new one. A running broker
    /// picks the change up within a second. Signs with `pki/root-ca.key.pem`;
    /// see [`Registry::rotate_issuing_ca_with_root_key`] for an offline root key.
    pub async fn rotate_issuing_ca(&self) -> Result<certbound_pki::RotatedCa, RegistryError> {
        self.rotate_issuing_ca_with_root_key(None).await
    }

    /// [`Registry::rotate_issuing_ca`] with the root key read from `root_key`
    /// (kept offline), or else from `pki/root-ca.key.pem`.
    pub async fn rotate_issuing_ca_with_root_key(
        &self,
        root_key: Option<&std::path::Path>,
    ) -> Result<certbound_pki::RotatedCa, RegistryError> {
        let rotated = rotate_issuing_with_root_key(
            &self.data.pki(),
            &CaOptions::default(),
            unix_now(),
            root_key,
        )?;
        self.audit(
            "ca.rotated",
            &rotated.new_serial,
            format!(
                "old_serial={} new_not_after={}",
                rotated.old_serial, rotated.new_not_after
            ),
        )
        .await?;
        Ok(rotated)
    }

    /// The CRL of the current issuing CA at `now`: every revoked, unexpired
    /// certificate it issued. The CRL number is `now` (monotonic).
    pub async fn current_crl(&self, now: u64) -> Result<Crl, RegistryError> {
        crl_of(&self.store, &IssuingCa::load(&self.data.pki())?, now).await
    }

    /// One CRL per issuing CA that is still valid at `now` (the current one
    /// first), each signed by that CA and listing the revoked, unexpired
    /// certificates it issued — `certbound crl`, `GET /crls`.
    pub async fn crl_set(&self, now: u64) -> Result<Vec<IssuerCrl>, RegistryError> {
        crl_set(&self.store, &self.data.pki(), now, now).await
    }
}

/// The CRL of `ca` at `now` (shared by the CLI and the running broker).
pub async fn crl_of(
    store: &crate::store::Store,
    ca: &IssuingCa,
    now: u64,
) -> Result<Crl, RegistryError> {
    let revoked: Vec<RevokedEntry> = store
        .revoked_certificates(now)
        .await?
        .into_iter()
        .filter(|c| ca.has_issued(&c.der))
        .map(|c| RevokedEntry::new(c.serial, c.revoked_at))
        .collect();
    Ok(ca.crl(&revoked, now, now, now + CRL_VALIDITY_SECS)?)
}

/// The CRL of one issuing CA.
#[derive(Debug, Clone)]
pub struct IssuerCrl {
    /// Serial of the issuing CA that signed it (lowercase hex, as `certbound
    /// ca show` prints it; `GET /crl/{serial}`).
    pub ca_serial: String,
    /// Whether that CA is the current one (the one `GET /crl` serves).
    pub current: bool,
    /// The CRL.
    pub crl: Crl,
    /// Serials it lists.
    pub revoked: usize,
}

/// One CRL per issuing CA under `paths` still valid at `now` (the current one
/// first, then the previous ones by expiry, latest first), each signed by
/// its own CA with CRL number `number`. After `ca rotate-issuing`, the
/// certificates of the previous CA stay valid; a revoked one is listed in the
/// CRL its own issuer signed, which is what a relying party checks.
/// Revoked certificates of external CAs (`ca trust add`) are in none: their
/// CA publishes their revocation.
pub async fn crl_set(
    store: &crate::store::Store,
    paths: &certbound_pki::PkiPaths,
    now: u64,
    number: u64,
) -> Result<Vec<IssuerCrl>, RegistryError> {
    let revoked = store.revoked_certificates(now).await?;
    let mut out = Vec::new();
    for info in list_issuing(paths)? {
        if !info.current && info.not_after < now {
            continue;
        }
        let ca = if info.current {
            IssuingCa::load(paths)?
        } else {
            IssuingCa::load_archived(paths, &info.serial_hex)?
        };
        let entries: Vec<RevokedEntry> = revoked
            .iter()
            .filter(|c| ca.has_issued(&c.der))
            .map(|c| RevokedEntry::new(c.serial.clone(), c.revoked_at))
            .collect();
        let crl = ca.crl(&entries, number, now, now + CRL_VALIDITY_SECS)?;
        out.push(IssuerCrl {
            ca_serial: info.serial_hex,
            current: info.current,
            crl,
            revoked: entries.len(),
        });
    }
    Ok(out)
}

/// An external CA trusted for device certificates.
#[derive(Debug, Clone, Serialize)]
pub struct TrustedCa {
    /// Name.
    pub name: String,
    /// Subject DN.
    pub subject: String,
    /// Expiry.
    pub not_after: u64,
    /// Group its devices join on first use; `None`: just-in-time registration off.
    pub jit_group: Option<String>,
}

impl Registry {
    /// Trusts `ca_pem` (a CA certificate) for device certificates. With
    /// `jit_group`, a device presenting a certificate from it (id = its CN)
    /// is registered into that group on first use; without, such devices
    /// are refused. A running broker picks the change up within a second.
    pub async fn trust_external_ca(
        &self,
        name: &str,
        ca_pem: &str,
        jit_group: Option<&str>,
    ) -> Result<TrustedCa, RegistryError> {
        validate_device_id(name).map_err(|_| {
            RegistryError::Invalid(format!(
                "CA name {name:?}: use letters, digits, '.', '_', ':' or '-'"
            ))
        })?;
        if let Some(g) = jit_group
            && !self.store.group_exists(g).await?
        {
            return Err(RegistryError::NotFound {
                kind: "group",
                name: g.into(),
                hint: "; create it first with `certbound group create`".into(),
            });
        }
        let der = certbound_pki::parse_pem_certs(ca_pem)?
            .into_iter()
            .next()
            .ok_or_else(|| RegistryError::Invalid("no CERTIFICATE in the file".into()))?;
        // Validate as the broker will (a CA, a P-256 key, not one of ours),
        // beside the partner CAs trusted already.
        let paths = self.data.pki();
        let mut cas = self.store.external_cas().await?;
        if cas.iter().any(|c| c.name == name) {
            return Err(RegistryError::Conflict {
                kind: "trusted CA",
                name: name.into(),
            });
        }
        let ca = ExternalCa {
            name: name.into(),
            cert_der: der.clone(),
            jit_group: jit_group.map(str::to_string),
        };
        cas.push(ca.clone());
        certbound_pki::TrustStore::load(&paths)?.with_external(crate::external::anchors(&cas).0)?;
        self.store.add_external_ca(&ca, unix_now()).await?;
        let summary = certbound_pki::cert_summary(&der)?;
        self.audit(
            "ca.trusted",
            name,
            format!(
                "subject={:?} jit_group={}",
                summary.subject,
                jit_group.unwrap_or("(off)")
            ),
        )
        .await?;
        Ok(TrustedCa {
            name: name.into(),
            subject: summary.subject,
            not_after: summary.not_after,
            jit_group: jit_group.map(str::to_string),
        })
    }

    /// The partner CAs, by name.
    pub async fn trusted_cas(&self) -> Result<Vec<TrustedCa>, RegistryError> {
        self.store
            .external_cas()
            .await?
            .into_iter()
            .map(|c| {
                let s = certbound_pki::cert_summary(&c.cert_der)?;
                Ok(TrustedCa {
                    jit_group: c.jit_group,
                    name: c.name,
                    subject: s.subject,
                    not_after: s.not_after,
                })
            })
            .collect()
    }

    /// Stops trusting a partner CA, on every instance (its devices are
    /// refused from then on; already registered ones keep their registry
    /// rows).
    pub async fn untrust_external_ca(&self, name: &str) -> Result<(), RegistryError> {
        self.store.remove_external_ca(name).await?;
        self.audit("ca.untrusted", name, String::new()).await
    }
}

/// A new claim and where its credential was written.
#[derive(Debug, Clone, Serialize)]
pub struct CreatedClaim {
    /// The claim record.
    pub claim: crate::store::Claim,
    /// The claim's private key (mode 0600).
    pub key_file: std::path::PathBuf,
    /// The claim certificate chain.
    pub cert_file: std::path::PathBuf,
}

impl Registry {
    /// Makes a provisioning claim for a production line: `uses` devices may
    /// enroll with it into `group` until `ttl_secs` from now, each with a
    /// device id matching `id_pattern` (glob, `*`) and/or on `allowlist`.
    /// Writes `<out>/<claim id>.key.pem` and `.cert.pem`.
    pub async fn create_claim(
        &self,
        group: &str,
        uses: u64,
        ttl_secs: u64,
        id_pattern: Option<&str>,
        allowlist: Option<Vec<String>>,
        out: &std::path::Path,
    ) -> Result<CreatedClaim, RegistryError> {
        if !self.store.group_exists(group).await? {
            return Err(RegistryError::NotFound {
                kind: "group",
                name: group.into(),
                hint: "; create it first with `certbound group create`".into(),
            });
        }
        if uses == 0 || uses > 10_000_000 {
            return Err(RegistryError::Invalid(
                "--uses must be between 1 and 10000000".into(),
            ));
        }
        if let Some(list) = &allowlist {
            for id in list {
                validate_device_id(id)?;
            }
        }
        let now = unix_now();
        let mut raw = [0u8; 6];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut raw);
        let id = format!("c{}", hex::encode(raw));
        let ca = IssuingCa::load(&self.data.pki())?;
        let bundle = ca.issue_claim(&id, ttl_secs, now)?;
        let public_key = certbound_pki::public_key_sec1(&bundle.cert.der)?;
        let (key_file, cert_file) = bundle.write_to(out, &format!("claim-{id}"))?;
        let claim = crate::store::Claim {
            id: id.clone(),
            group: group.into(),
            uses_total: uses,
            uses_left: uses,
            expires_at: bundle.cert.not_after,
            id_pattern: id_pattern.map(str::to_string),
            allowlist,
            revoked: false,
        };
        if let Err(e) = self.store.create_claim(&claim, &public_key, now).await {
            let _ = std::fs::remove_file(&key_file);
            let _ = std::fs::remove_file(&cert_file);
            return Err(e.into());
        }
        self.audit(
            "claim.created",
            &id,
            format!(
                "group={group} uses={uses} expires_at={} pattern={}",
                claim.expires_at,
                id_pattern.unwrap_or("*")
            ),
        )
        .await?;
        Ok(CreatedClaim {
            claim,
            key_file,
            cert_file,
        })
    }

    /// Revokes a claim: no further enrollments with it.
    pub async fn revoke_claim(&self, id: &str) -> Result<(), RegistryError> {
        if !self.store.revoke_claim(id, unix_now()).await? {
            return Err(RegistryError::NotFound {
                kind: "claim",
                name: id.into(),
                hint: "; see `certbound claim list`".into(),
            });
        }
        self.audit("claim.revoked", id, String::new()).await
    }
}
