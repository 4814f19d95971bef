//! MQTT transport: the broker is an MQTT *client* (of certbound's embedded
//! server or of an external one such as Mosquitto), subscribed through
//! `$share/certbound/cb/v1/+/token/req` so several broker instances split the
//! requests; each answer goes to `cb/v1/{device}/token/res`.
//!
//! The device in the topic must be the device whose certificate signed the
//! request (the MQTT server's ACL guarantees who may publish on the topic;
//! the token service checks the signature).

use std::sync::Arc;
use std::time::Duration;

use certbound_proto::topics::{self, TopicKind};
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, NetworkOptions, Packet, QoS, Transport};
use tokio::task::JoinHandle;

use super::DeviceEndpoints;
use crate::clock::unix_now;
use crate::error::BrokerError;

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
}

impl std::fmt::Debug for MqttClientSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttClientSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("client_id", &self.client_id)
            .field("shared", &self.shared)
            .field("v5", &self.v5)
            .finish()
    }
}

/// The running MQTT transport.
pub struct MqttTransport {
    disconnect: Box<dyn FnOnce() + Send>,
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
    if settings.v5 {
        return super::mqtt_v5::start(service, settings, connect_timeout).await;
    }
    let mut options = MqttOptions::new(
        settings.client_id.clone(),
        settings.host.clone(),
        settings.port,
    );
    options.set_keep_alive(Duration::from_secs(30));
    options.set_clean_session(true);
    options.set_max_packet_size(64 * 1024, 64 * 1024);
    options.set_transport(Transport::tls_with_config(
        rumqttc::TlsConfiguration::Rustls(settings.tls.clone()),
    ));
    let (client, mut eventloop) = AsyncClient::new(options, 1024);
    let mut network = NetworkOptions::new();
    network.set_tcp_nodelay(true);
    network.set_connection_timeout(10);
    eventloop.set_network_options(network);

    let filters = request_filters(settings.shared);
    let filter = filters.join(" ");
    // Wait for the first CONNACK + SUBACK so that the caller knows we serve.
    let ready = tokio::time::timeout(connect_timeout, async {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    client.subscribe_many(subscriptions(&filters)).await.map_err(mqtt_err)?;
                }
                Ok(Event::Incoming(Packet::SubAck(ack))) => {
                    if ack.return_codes.iter().any(|c| matches!(c, rumqttc::SubscribeReasonCode::Failure)) {
                        return Err(BrokerError::Invalid(format!(
                            "the MQTT server refused the subscription to {filter}: check its ACL for the certbound broker identity"
                        )));
                    }
                    return Ok(());
                }
                Ok(_) => {}
                Err(e) => return Err(BrokerError::Invalid(format!(
                    "cannot connect to the MQTT server {}:{}: {e}", settings.host, settings.port
                ))),
            }
        }
    })
    .await
    .map_err(|_| BrokerError::Invalid(format!(
        "no answer from the MQTT server {}:{} within {connect_timeout:?}", settings.host, settings.port
    )))?;
    ready?;
    tracing::info!(host = %settings.host, port = settings.port, %filter, "MQTT transport connected");
    let task = tokio::spawn(run(service, client.clone(), eventloop, filters));
    Ok(MqttTransport::new(
        Box::new(move || {
            let _ = client.try_disconnect();
        }),
        task,
    ))
}

impl MqttTransport {
    pub(super) fn new(disconnect: Box<dyn FnOnce() + Send>, task: JoinHandle<()>) -> Self {
        Self { disconnect, task }
    }

    /// Disconnects and stops.
    pub async fn shutdown(self) {
        (self.disconnect)();
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

fn subscriptions(filters: &[String]) -> Vec<rumqttc::SubscribeFilter> {
    filters
        .iter()
        .map(|f| rumqttc::SubscribeFilter::new(f.clone(), QoS::AtLeastOnce))
        .collect()
}

fn mqtt_err(e: rumqttc::ClientError) -> BrokerError {
    BrokerError::Invalid(format!("MQTT client: {e}"))
}

async fn run(
    service: Arc<DeviceEndpoints>,
    client: AsyncClient,
    mut eventloop: EventLoop,
    filters: Vec<String>,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::Publish(publish))) => {
                backoff = Duration::from_millis(100);
                let service = service.clone();
                let client = client.clone();
                tokio::spawn(async move {
                    answer(&service, &client, &publish.topic, &publish.payload).await;
                });
            }
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                // Clean session: subscribe again after every reconnect.
                if let Err(e) = client.subscribe_many(subscriptions(&filters)).await {
                    tracing::warn!(error = %e, "MQTT resubscribe failed");
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?backoff, "MQTT connection lost; reconnecting");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }
    }
}

async fn answer(service: &DeviceEndpoints, client: &AsyncClient, topic: &str, payload: &[u8]) {
    if let Some(claim) = topics::parse_claim_request(topic) {
        if let Some((reply, body)) = service.answer_claim(claim, payload, unix_now()).await
            && let Err(e) = client.publish(reply, QoS::AtLeastOnce, false, body).await
        {
            tracing::warn!(error = %e, %claim, "could not queue the MQTT claim response");
        }
        return;
    }
    let Some((device, kind)) = topics::parse(topic) else {
        tracing::debug!(%topic, "ignoring a message on an unexpected topic");
        return;
    };
    let Some(body) = service.answer(kind, device, payload, unix_now()).await else {
        tracing::debug!(%topic, "ignoring a message on an unexpected topic");
        return;
    };
    let Some(response_topic) = kind.response().map(|k| topics::topic(device, k)) else {
        return;
    };
    if let Err(e) = client
        .publish(response_topic, QoS::AtLeastOnce, false, body)
        .await
    {
        tracing::warn!(error = %e, %device, "could not queue the MQTT response");
    }
}
