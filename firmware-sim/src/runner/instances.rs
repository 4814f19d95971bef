//! The broker side of a run, over one instance or several: each instance's
//! signing keys and announced status-list base (the backend trusts them
//! all), the shared MQTT server, and the device-side CoAP sockets towards
//! each instance (through a lossy relay when loss is injected).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use certbound_verify::KeySet;
use certbound_verify::http::{HttpsFetcher, client_tls_config};

use crate::SimError;
use crate::device::{CoapInstance, CoapPool, HttpsInstance};
use crate::fleet::Endpoints;
use crate::lossy::LossyRelay;

/// What the fleet and the backend need to know about the instances.
pub(super) struct BrokerSide {
    /// The instances that serve HTTPS, in order.
    pub https: Vec<HttpsInstance>,
    /// A TLS client trusting the broker's CA.
    pub fetcher: HttpsFetcher,
    /// Every instance's published signing keys.
    pub keys: KeySet,
    /// The status-list base URLs the instances announce.
    pub status_bases: Vec<String>,
    /// The one MQTT server of every instance, when any has one.
    pub mqtt: Option<(String, u16)>,
}

/// Asks every instance that serves HTTPS for its keys and its status-list
/// base (discovery). Instances that do not answer are left out with a
/// warning; at least one must answer.
///
/// # Errors
/// [`SimError::Setup`] when no instance serves HTTPS or none answers, or
/// when the instances name different MQTT servers and MQTT is used.
pub(super) async fn discover(
    instances: &[Endpoints],
    ca_pem: &str,
    uses_mqtt: bool,
) -> Result<BrokerSide, SimError> {
    let https: Vec<HttpsInstance> = instances
        .iter()
        .enumerate()
        .filter_map(|(i, e)| {
            e.https.clone().map(|base| HttpsInstance {
                instance: i + 1,
                base: base.trim_end_matches('/').to_string(),
            })
        })
        .collect();
    if https.is_empty() {
        return Err(SimError::Setup(
            "the broker serves no HTTPS: the backend needs its keys and status lists".into(),
        ));
    }
    let mut mqtt: Vec<(String, u16)> = Vec::new();
    for m in instances.iter().filter_map(|e| e.mqtt.clone()) {
        if !mqtt.contains(&m) {
            mqtt.push(m);
        }
    }
    if uses_mqtt && mqtt.len() > 1 {
        let list: Vec<_> = mqtt.iter().map(|(h, p)| format!("{h}:{p}")).collect();
        return Err(SimError::Setup(format!(
            "MQTT devices need one MQTT server that every instance serves (an external one, \
             [mqtt] mode = \"external\"); the instances name {}",
            list.join(", ")
        )));
    }
    let tls = client_tls_config(ca_pem, None)
        .map_err(|e| SimError::Setup(format!("TLS client for the broker: {e}")))?;
    let fetcher = HttpsFetcher::new(tls, Duration::from_secs(15), 1 << 20);
    let mut keys = KeySet::new();
    let mut status_bases = Vec::new();
    let mut failures = Vec::new();
    for i in &https {
        match instance_keys(&fetcher, &i.base).await {
            Ok((set, status_base)) => {
                for kid in set.kids() {
                    if let (None, Some(key)) = (keys.get(&kid), set.get(&kid)) {
                        keys.insert(kid, key.clone())
                            .map_err(|e| SimError::Setup(format!("the broker's key set: {e}")))?;
                    }
                }
                if !status_bases.contains(&status_base) {
                    status_bases.push(status_base);
                }
            }
            Err(e) => {
                tracing::warn!(instance = i.instance, error = %e, "instance left out of discovery");
                failures.push(e);
            }
        }
    }
    if keys.is_empty() {
        return Err(SimError::Setup(failures.join("; ")));
    }
    Ok(BrokerSide {
        https,
        fetcher,
        keys,
        status_bases,
        mqtt: mqtt.into_iter().next(),
    })
}

/// One instance's keys (`/.well-known/cose-keys`) and status-list base
/// (from its metadata; `{base}/status/` when it has none).
async fn instance_keys(fetcher: &HttpsFetcher, base: &str) -> Result<(KeySet, String), String> {
    let doc = fetcher
        .get(
            &format!("{base}/.well-known/cose-keys"),
            "application/cose-key-set",
        )
        .await
        .map_err(|e| format!("fetching the broker's keys from {base}: {e}"))?;
    let keys =
        KeySet::from_cose_key_set(&doc.body).map_err(|e| format!("the key set of {base}: {e}"))?;
    let status_base = match fetcher
        .get(
            &format!("{base}/.well-known/oauth-authorization-server"),
            "application/json",
        )
        .await
    {
        Ok(meta) => serde_json::from_slice::<serde_json::Value>(&meta.body)
            .ok()
            .and_then(|v| v["status_list_base_uri"].as_str().map(str::to_string)),
        Err(_) => None,
    };
    Ok((
        keys,
        status_base.unwrap_or_else(|| format!("{base}/status/")),
    ))
}

/// `size` CoAP sockets towards `addr` (through a lossy relay when `loss` > 0).
///
/// # Errors
/// [`SimError::Setup`] when a socket cannot be made.
pub(super) async fn coap_pool(
    addr: SocketAddr,
    size: usize,
    loss: f64,
    what: &str,
) -> Result<(CoapPool, Option<LossyRelay>), SimError> {
    let mut target = addr;
    let mut relay = None;
    if loss > 0.0 {
        let r = LossyRelay::start(addr, loss).await?;
        target = r.addr();
        relay = Some(r);
    }
    let mut clients = Vec::with_capacity(size);
    for _ in 0..size {
        clients.push(Arc::new(
            certbound_coap::Client::connect(target, Default::default())
                .await
                .map_err(|e| SimError::Setup(format!("CoAP client to the {what}: {e}")))?,
        ));
    }
    Ok((CoapPool(clients), relay))
}

/// The CoAP sockets towards every instance that serves CoAP.
///
/// # Errors
/// As [`coap_pool`].
pub(super) async fn broker_coap(
    instances: &[Endpoints],
    size: usize,
    loss: f64,
) -> Result<(Vec<CoapInstance>, Vec<LossyRelay>), SimError> {
    let mut out = Vec::new();
    let mut relays = Vec::new();
    for (i, e) in instances.iter().enumerate() {
        if let Some(addr) = e.coap {
            let (pool, relay) = coap_pool(addr, size, loss, "broker").await?;
            relays.extend(relay);
            out.push(CoapInstance {
                instance: i + 1,
                addr,
                pool,
            });
        }
    }
    Ok((out, relays))
}
