//! Who may use the embedded MQTT server: the broker's policy for
//! [`CertboundAcl`] (which service is the broker, which devices and
//! certificates are refused), kept current from the store.
//!
//! The connect path only reads two in-memory sets (inactive device ids,
//! thumbprints of revoked certificates); a background task refreshes them
//! from the store every [`STATUS_POLL`] (changes made by the CLI, another
//! process, or another instance) and drops the live sessions of devices that
//! became inactive and of certificates that were revoked.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use certbound_mqtt::{CertboundAcl, Identity, MqttServerHandle, PeerCert};

use crate::clock::unix_now;
use crate::error::BrokerError;
use crate::registry::BROKER_SERVICE_NAME;
use crate::store::Store;

/// How often the registry is polled for suspensions and revocations made by
/// the CLI (another process): their MQTT sessions are dropped within this time.
const STATUS_POLL: Duration = Duration::from_millis(500);

/// The sets the embedded MQTT server's revocation check reads.
#[derive(Debug, Default)]
pub(crate) struct MqttAccess {
    /// Devices that may not connect (suspended or revoked).
    inactive: RwLock<HashSet<String>>,
    /// SHA-256 thumbprints of revoked, unexpired certificates.
    revoked: RwLock<HashSet<[u8; 32]>>,
}

impl MqttAccess {
    /// Loads both sets from the store.
    pub(crate) async fn load(store: &Store) -> Result<Arc<Self>, BrokerError> {
        let access = Arc::new(MqttAccess::default());
        let (inactive, revoked) = read_sets(store).await?;
        if let Ok(mut set) = access.inactive.write() {
            *set = inactive;
        }
        if let Ok(mut set) = access.revoked.write() {
            *set = revoked;
        }
        Ok(access)
    }

    /// The ACL for the embedded server: the broker's own service identity
    /// ([`BROKER_SERVICE_NAME`]) is the only one that answers devices;
    /// inactive devices and revoked certificates are refused at connect.
    /// A poisoned lock refuses (fail closed).
    pub(crate) fn acl(self: &Arc<Self>) -> CertboundAcl {
        let access = Arc::clone(self);
        CertboundAcl::new()
            .with_broker(BROKER_SERVICE_NAME)
            .with_revocation_check(Arc::new(move |who: &Identity, cert: &PeerCert| {
                access.refuses(who, cert)
            }))
    }

    /// Whether `who`, connecting with `cert`, must be refused.
    fn refuses(&self, who: &Identity, cert: &PeerCert) -> bool {
        let cert_revoked = self
            .revoked
            .read()
            .map(|set| set.contains(&cert.thumbprint))
            .unwrap_or(true);
        cert_revoked
            || match who {
                Identity::Device(id) => self
                    .inactive
                    .read()
                    .map(|set| set.contains(id))
                    .unwrap_or(true),
                // Claim holders are checked per use; services by certificate.
                Identity::Service(_) | Identity::Claim(_) => false,
            }
    }

    /// Keeps the sets in step with the store and drops the live MQTT
    /// sessions of devices that became inactive and of certificates that
    /// were revoked. Runs until aborted.
    pub(crate) async fn watch(self: Arc<Self>, store: Store, server: MqttServerHandle) {
        let mut ticker = tokio::time::interval(STATUS_POLL);
        loop {
            ticker.tick().await;
            let (inactive, revoked) = match read_sets(&store).await {
                Ok(sets) => sets,
                Err(e) => {
                    tracing::warn!(error = %e, "MQTT access: cannot read revocations from the store");
                    continue;
                }
            };
            let newly_inactive: Vec<String> = match self.inactive.read() {
                Ok(old) => inactive.difference(&old).cloned().collect(),
                Err(_) => Vec::new(),
            };
            let newly_revoked: Vec<[u8; 32]> = match self.revoked.read() {
                Ok(old) => revoked.difference(&old).copied().collect(),
                Err(_) => Vec::new(),
            };
            if let Ok(mut set) = self.inactive.write() {
                *set = inactive;
            }
            if let Ok(mut set) = self.revoked.write() {
                *set = revoked;
            }
            for id in newly_inactive {
                let closed = server.disconnect(&Identity::Device(id.clone()));
                tracing::info!(device = %id, sessions = closed, "device inactive: MQTT sessions closed");
            }
            for thumbprint in newly_revoked {
                let closed = server.disconnect_certificate(&thumbprint);
                if closed > 0 {
                    tracing::info!(
                        thumbprint = %hex::encode(thumbprint),
                        sessions = closed,
                        "certificate revoked: MQTT sessions closed"
                    );
                }
            }
        }
    }
}

/// Inactive device ids and thumbprints of revoked, unexpired certificates:
/// device certificates and recorded service certificates (`service revoke`).
async fn read_sets(store: &Store) -> Result<(HashSet<String>, HashSet<[u8; 32]>), BrokerError> {
    let now = unix_now();
    let inactive = store.inactive_devices().await?.into_iter().collect();
    let mut revoked: HashSet<[u8; 32]> = store
        .revoked_certificates(now)
        .await?
        .iter()
        .map(|cert| certbound_pki::thumbprint_sha256(&cert.der))
        .collect();
    for hex_thumbprint in store.revoked_service_thumbprints(now).await? {
        let mut thumbprint = [0u8; 32];
        if hex::decode_to_slice(&hex_thumbprint, &mut thumbprint).is_ok() {
            revoked.insert(thumbprint);
        }
    }
    Ok((inactive, revoked))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn placeholder() -> PeerCert {
        // PeerCert is non-exhaustive: build one from a real certificate.
        let dir = tempfile::tempdir().expect("tempdir");
        let paths = certbound_pki::PkiPaths::new(dir.path());
        certbound_pki::init_ca(&paths, &certbound_pki::CaOptions::default(), 1_750_000_000)
            .expect("ca");
        let ca = certbound_pki::IssuingCa::load(&paths).expect("load");
        let dev = ca.issue_device("d", 1, 1_750_000_000).expect("device");
        PeerCert::from_der(&dev.cert.der).expect("parses")
    }

    #[test]
    fn refuses_revoked_certificates_of_active_devices_and_inactive_devices() {
        let access = MqttAccess::default();
        if let Ok(mut set) = access.revoked.write() {
            set.insert([7; 32]);
        }
        if let Ok(mut set) = access.inactive.write() {
            set.insert("suspended".into());
        }
        let base = placeholder();
        let cert = |thumbprint: u8| {
            let mut c = base.clone();
            c.thumbprint = [thumbprint; 32];
            c
        };
        let device = |id: &str| Identity::Device(id.into());
        let service = Identity::Service("reporting".into());
        assert!(access.refuses(&device("active"), &cert(7)));
        assert!(access.refuses(&service, &cert(7)));
        assert!(!access.refuses(&device("active"), &cert(8)));
        assert!(access.refuses(&device("suspended"), &cert(8)));
        assert!(!access.refuses(&service, &cert(8)));
    }
}
