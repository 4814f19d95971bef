//! `certbound serve`: starts the transports over one token service.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use certbound_coap::{Server as CoapServer, ServerConfig};
use certbound_pki::TrustStore;
use certbound_proto::cbor::Limits;
use tokio::task::JoinHandle;

use crate::audit::AuditLog;
use crate::config::{Config, DataDir};
use crate::error::BrokerError;
use crate::keys;
use crate::store::Store;
use crate::token_service::{TokenService, TokenServiceConfig};
use crate::transport::coap::CoapTransport;

/// Command-line overrides of the configuration.
#[derive(Debug, Clone, Default)]
pub struct ServeOptions {
    /// Overrides `coap.listen`.
    pub coap_listen: Option<SocketAddr>,
}

/// A running broker.
#[derive(Debug)]
pub struct RunningBroker {
    coap: Option<CoapServer>,
    audit_task: JoinHandle<()>,
    service: Arc<TokenService>,
    store: Store,
}

/// Starts the broker on an initialised data directory.
pub async fn start(dir: &Path, options: ServeOptions) -> Result<RunningBroker, BrokerError> {
    let data = DataDir::new(dir);
    let config = Config::load(dir)?;
    let store = Store::open(&data.database()).await?;
    let trust = TrustStore::load(&data.pki())?;
    let key = keys::load_current(&data.keys())?;
    let (audit, audit_task) = AuditLog::spawn(store.clone());
    let service = Arc::new(TokenService::new(
        TokenServiceConfig {
            issuer_id: config.broker.issuer_id.clone(),
            leeway: config.broker.leeway_secs,
            limits: Limits {
                max_size: config.limits.max_request_bytes,
                ..Limits::default()
            },
            replay_capacity: config.limits.replay_cache_entries,
        },
        store.clone(),
        trust,
        key,
        audit,
    ));
    let coap = if config.coap.enabled {
        let addr = options.coap_listen.unwrap_or_else(|| config.coap_listen());
        let handler = Arc::new(CoapTransport::new(service.clone()));
        let server_config = ServerConfig {
            max_body: config.limits.max_request_bytes,
            ..ServerConfig::default()
        };
        Some(CoapServer::bind(addr, handler, server_config).await?)
    } else {
        None
    };
    tracing::info!(
        issuer = %config.broker.issuer_id,
        kid = %service.kid(),
        coap = ?coap.as_ref().map(|s| s.local_addr()),
        "certbound broker started"
    );
    Ok(RunningBroker {
        coap,
        audit_task,
        service,
        store,
    })
}

impl RunningBroker {
    /// The bound CoAP address, when CoAP is enabled.
    pub fn coap_addr(&self) -> Option<SocketAddr> {
        self.coap.as_ref().map(|s| s.local_addr())
    }

    /// The token service (for in-process use, e.g. the demo).
    pub fn service(&self) -> &Arc<TokenService> {
        &self.service
    }

    /// Stops the transports, flushes the audit log and closes the store.
    pub async fn shutdown(self) {
        if let Some(coap) = self.coap {
            coap.shutdown().await;
        }
        // The service holds the last audit sender; dropping it ends the writer
        // after it has flushed.
        drop(self.service);
        let _ = self.audit_task.await;
        self.store.close().await;
    }
}
