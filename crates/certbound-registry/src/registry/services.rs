//! Service identities: certificates for backend services (SAN
//! `urn:certbound:service:<name>`), recorded when issued, listed and revoked.
//! A revoked service certificate is refused at the HTTPS TLS layer and at
//! `/oauth/*` (within a second on a running broker).

use std::path::Path;

use certbound_pki::{IssuedCert, IssuingCa};

use super::{ProvisionedDevice, Registry};
use crate::clock::unix_now;
use crate::error::RegistryError;
use crate::store::{ServiceCert, Store};

/// Records a service certificate certbound issued.
pub(crate) async fn record(
    store: &Store,
    name: &str,
    cert: &IssuedCert,
    now: u64,
) -> Result<(), RegistryError> {
    store
        .record_service_cert(&ServiceCert {
            serial: cert.serial_hex.clone(),
            name: name.into(),
            thumbprint: hex::encode(cert.thumbprint),
            not_after: cert.not_after,
            created_at: now,
            revoked_at: None,
        })
        .await
        .map_err(crate::error::RegistryError::from)
}

impl Registry {
    /// Issues a key and a *service* client certificate (SAN
    /// `urn:certbound:service:<name>`) for a backend such as a telemetry
    /// ingester, records it, and writes `<out>/<name>.key.pem` (0600) and
    /// `<out>/<name>.cert.pem`. Services may subscribe to every device's
    /// telemetry on the embedded MQTT server and may authenticate OAuth
    /// clients registered for their subject or SAN; they can never act as a device.
    pub async fn provision_service(
        &self,
        name: &str,
        out_dir: &Path,
        lifetime_days: u32,
    ) -> Result<ProvisionedDevice, RegistryError> {
        if self.store.get_device(name).await?.is_some() {
            return Err(RegistryError::Invalid(format!(
                "{name:?} is a device id: a service named like a device would get that device's \
                 topics on an MQTT server that decides by CN (Mosquitto); choose another name"
            )));
        }
        let ca = IssuingCa::load(&self.data.pki())?;
        let now = unix_now();
        let bundle = ca.issue_service(name, lifetime_days, now)?;
        let (key_file, cert_file) = bundle.write_to(out_dir, name)?;
        record(&self.store, name, &bundle.cert, now).await?;
        self.audit(
            "service.provisioned",
            name,
            format!(
                "serial={} not_after={}",
                bundle.cert.serial_hex, bundle.cert.not_after
            ),
        )
        .await?;
        Ok(ProvisionedDevice {
            id: name.into(),
            serial: bundle.cert.serial_hex.clone(),
            thumbprint: hex::encode(bundle.cert.thumbprint),
            not_after: bundle.cert.not_after,
            key_file,
            cert_file,
        })
    }

    /// Every recorded service certificate (revoked ones included).
    pub async fn list_service_certs(&self) -> Result<Vec<ServiceCert>, RegistryError> {
        self.store
            .list_service_certs()
            .await
            .map_err(crate::error::RegistryError::from)
    }

    /// Revokes every unrevoked certificate of the service `name_or_serial`,
    /// or the one certificate with that serial.
    pub async fn revoke_service(
        &self,
        name_or_serial: &str,
    ) -> Result<Vec<ServiceCert>, RegistryError> {
        let revoked = self
            .store
            .revoke_service_certs(name_or_serial, unix_now())
            .await?;
        if revoked.is_empty() {
            return Err(RegistryError::NotFound {
                kind: "unrevoked service certificate",
                name: name_or_serial.into(),
                hint: "; see `certbound service list`".into(),
            });
        }
        for cert in &revoked {
            self.audit(
                "service.revoked",
                &cert.name,
                format!("serial={}", cert.serial),
            )
            .await?;
        }
        Ok(revoked)
    }
}
