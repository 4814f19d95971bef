//! MQTT transport: the broker is an MQTT *client* (of certbound's embedded
//! server or of an external one such as Mosquitto), subscribed through
//! `$share/certbound/cb/v1/+/token/req` so several broker instances split the
//! requests; each answer goes to `cb/v1/{device}/token/res`. Over MQTT 5 a
//! request carrying a response topic (inside the device's own namespace) and
//! correlation data is answered on that topic with the same correlation data.
//!
//! The device in the topic must be the device whose certificate signed the
//! request (the MQTT server's ACL guarantees who may publish on the topic;
//! the token service checks the signature).
//!
//! The client is `certbound_mqtt::client` (reconnects with backoff and
//! subscribes again). Requests are handled concurrently, at most
//! [`MqttClientSettings::max_handlers`] at a time: over that, a token or
//! certificate request is answered at once with "temporarily unavailable:
//! retry later" (no signature check, no database), a claim request (whose
//! reply topic needs the parsed request) is dropped; both are counted in
//! `certbound_requests_shed_total{transport="mqtt"}`.

use std::sync::Arc;
use std::time::Duration;

use certbound_mqtt::client::{
    ClientOptions, Event, Message, MqttClient, MqttEvents, Protocol, QoS,
};
use certbound_proto::schedule::Backoff;
use certbound_proto::topics::{self, TopicKind};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use super::DeviceEndpoints;
use crate::clock::unix_now;
use crate::error::BrokerError;
use crate::refusal::Refusal;

/// Requests handled at once by default ([`MqttClientSettings::max_handlers`]).
pub use certbound_registry::config::DEFAULT_MQTT_MAX_HANDLERS as DEFAULT_MAX_HANDLERS;

/// Where and how to connect.
#[derive(Clone)]
pub struct MqttClientSettings {
    /// Speak MQTT 5 (response topic and correlation data) instead of 3.1.1.
    pub v5: bool,
    /// Server host name (also the TLS server name).
    pub host: String,
    /// Server port.
    pub port: u16,
    /// TLS configuration with the broker's client certificate.
    pub tls: Arc<rustls::ClientConfig>,
    /// MQTT client id.
    pub client_id: String,
    /// Subscribe through `$share/certbound/...`.
    pub shared: bool,
    /// Requests in progress at most ([`DEFAULT_MAX_HANDLERS`]); more are shed.
    pub max_handlers: usize,
}

impl std::fmt::Debug for MqttClientSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttClientSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("client_id", &self.client_id)
            .field("shared", &self.shared)
            .field("v5", &self.v5)
            .field("max_handlers", &self.max_handlers)
            .finish()
    }
}

/// The running MQTT transport.
pub struct MqttTransport {
    client: MqttClient,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for MqttTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttTransport").finish_non_exhaustive()
    }
}

/// Connects and starts answering token requests. Returns once the first
/// connection is up and the subscription acknowledged (or fails after
/// `connect_timeout`), so a caller knows requests are being served.
pub async fn start(
    service: Arc<DeviceEndpoints>,
    settings: MqttClientSettings,
    connect_timeout: Duration,
) -> Result<MqttTransport, BrokerError> {
    let filters = request_filters(settings.shared);
    let filter = filters.join(" ");
    let server = format!("{}:{}", settings.host, settings.port);
    let mut options = ClientOptions::new(
        settings.client_id.clone(),
        settings.host.clone(),
        settings.port,
    )
    .tls(settings.tls.clone())
    .protocol(if settings.v5 {
        Protocol::V5
    } else {
        Protocol::V311
    })
    .keep_alive(Duration::from_secs(30))
    .connect_timeout(connect_timeout)
    .queue(1024)
    .reconnect(Backoff {
        base_ms: 100,
        max_ms: 10_000,
        floor_ms: 100,
    });
    for f in &filters {
        options = options.subscribe(f.clone(), QoS::AtLeastOnce);
    }
    let (client, events) = MqttClient::connect(options).await.map_err(|e| {
        BrokerError::Invalid(format!(
            "MQTT transport to {server} (subscribing to {filter}): {e}"
        ))
    })?;
    tracing::info!(%server, %filter, v5 = settings.v5, "MQTT transport connected");
    let limit = Arc::new(Semaphore::new(settings.max_handlers.max(1)));
    let task = tokio::spawn(run(service, client.clone(), events, limit));
    Ok(MqttTransport { client, task })
}

impl MqttTransport {
    /// Disconnects and stops.
    pub async fn shutdown(self) {
        let _ = tokio::time::timeout(Duration::from_secs(2), self.client.disconnect()).await;
        self.task.abort();
        let _ = self.task.await;
    }
}

/// The request topics every broker instance serves (token and certificate).
pub(super) fn request_filters(shared: bool) -> Vec<String> {
    let mut filters: Vec<String> = [TopicKind::TokenRequest, TopicKind::CertRequest]
        .into_iter()
        .map(|k| topics::broker_filter(k, shared))
        .collect();
    filters.push(topics::broker_claim_filter(shared));
    filters
}

async fn run(
    service: Arc<DeviceEndpoints>,
    client: MqttClient,
    mut events: MqttEvents,
    limit: Arc<Semaphore>,
) {
    while let Some(event) = events.recv().await {
        match event {
            Event::Message(request) => {
                let Ok(permit) = Arc::clone(&limit).try_acquire_owned() else {
                    shed(&service, &client, &request);
                    continue;
                };
                let service = service.clone();
                let client = client.clone();
                tokio::spawn(async move {
                    answer(&service, &client, request).await;
                    drop(permit);
                });
            }
            Event::Connected { session } if session > 1 => {
                tracing::info!(session, "MQTT transport reconnected and subscribed");
            }
            Event::Connected { .. } => {}
            Event::Disconnected { reason } => {
                tracing::warn!(%reason, "MQTT transport disconnected; reconnecting");
            }
        }
    }
}

/// The reply to a device request on `topic`: its topic (the MQTT 5
/// response topic when it is inside the device's namespace) and properties.
fn reply_to(request: &Message) -> Option<(String, TopicKind, Message)> {
    let (device, kind) = topics::parse(&request.topic)?;
    let reply = topics::reply_topic(device, kind, request.response_topic.as_deref())?;
    let mut template = Message::new(reply, Vec::new(), QoS::AtLeastOnce);
    template.correlation_data = request.correlation_data.clone();
    Some((device.to_string(), kind, template))
}

/// Over the handler cap: "temporarily unavailable" for token and
/// certificate requests (cheap: no parsing of the request), nothing for
/// claims. Never waits: with the publish queue full the answer is dropped.
fn shed(service: &DeviceEndpoints, client: &MqttClient, request: &Message) {
    let metrics = service.tokens.metrics();
    let Some((device, _, mut reply)) = reply_to(request) else {
        metrics.shed("mqtt", false);
        tracing::warn!(topic = %request.topic, "MQTT request dropped: too many in progress");
        return;
    };
    reply.payload = super::mqtt_body(&Refusal::unavailable()).into();
    let answered = client.try_publish(reply).is_ok();
    metrics.shed("mqtt", answered);
    tracing::warn!(%device, answered, "MQTT request shed: too many in progress");
}

async fn answer(service: &DeviceEndpoints, client: &MqttClient, request: Message) {
    if let Some(claim) = topics::parse_claim_request(&request.topic) {
        if let Some((reply, body)) = service
            .answer_claim(claim, &request.payload, unix_now())
            .await
            && let Err(e) = client
                .publish(Message::new(reply, body, QoS::AtLeastOnce))
                .await
        {
            tracing::warn!(error = %e, %claim, "could not queue the MQTT claim response");
        }
        return;
    }
    let Some((device, kind, mut reply)) = reply_to(&request) else {
        tracing::debug!(topic = %request.topic, "ignoring a message on an unexpected topic");
        return;
    };
    let Some(body) = service
        .answer(kind, &device, &request.payload, unix_now())
        .await
    else {
        tracing::debug!(topic = %request.topic, "ignoring a message on an unexpected topic");
        return;
    };
    reply.payload = body.into();
    if let Err(e) = client.publish(reply).await {
        tracing::warn!(error = %e, %device, "could not queue the MQTT response");
    }
}
