//! The MQTT transport over MQTT 5 (external servers): like the 3.1.1
//! transport, and in addition a request carrying a response topic (inside the
//! device's own namespace) and correlation data is answered on that topic
//! with the same correlation data.

use std::sync::Arc;
use std::time::Duration;

use certbound_proto::topics;
use rumqttc::Transport;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{Packet, PublishProperties, SubscribeReasonCode};
use rumqttc::v5::{AsyncClient, Event, EventLoop, MqttOptions};
use tokio::task::JoinHandle;

use super::DeviceEndpoints;
use super::mqtt::{MqttClientSettings, MqttTransport, request_filters};
use crate::error::BrokerError;

pub(super) async fn start(
    service: Arc<DeviceEndpoints>,
    settings: MqttClientSettings,
    connect_timeout: Duration,
) -> Result<MqttTransport, BrokerError> {
    let mut options = MqttOptions::new(
        settings.client_id.clone(),
        settings.host.clone(),
        settings.port,
    );
    options.set_keep_alive(Duration::from_secs(30));
    options.set_clean_start(true);
    options.set_max_packet_size(Some(64 * 1024));
    options.set_transport(Transport::tls_with_config(
        rumqttc::TlsConfiguration::Rustls(settings.tls.clone()),
    ));
    let mut network = rumqttc::NetworkOptions::new();
    network.set_tcp_nodelay(true);
    network.set_connection_timeout(10);
    options.set_network_options(network);
    let (client, mut eventloop) = AsyncClient::new(options, 1024);
    let filters = request_filters(settings.shared);
    let filter = filters.join(" ");
    let server = format!("{}:{}", settings.host, settings.port);
    tokio::time::timeout(connect_timeout, async {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    client
                        .subscribe_many(subscriptions(&filters))
                        .await
                        .map_err(|e| BrokerError::Invalid(format!("MQTT client: {e}")))?;
                }
                Ok(Event::Incoming(Packet::SubAck(ack))) => {
                    if ack.return_codes.iter().any(|c| !matches!(c, SubscribeReasonCode::Success(_))) {
                        return Err(BrokerError::Invalid(format!(
                            "the MQTT server refused the subscription to {filter}: check its ACL for the certbound broker identity"
                        )));
                    }
                    return Ok(());
                }
                Ok(_) => {}
                Err(e) => return Err(BrokerError::Invalid(format!("cannot connect to the MQTT server {server}: {e}"))),
            }
        }
    })
    .await
    .map_err(|_| BrokerError::Invalid(format!("no answer from the MQTT server {server} within {connect_timeout:?}")))??;
    tracing::info!(%server, %filter, "MQTT 5 transport connected");
    let task: JoinHandle<()> = tokio::spawn(run(service, client.clone(), eventloop, filters));
    Ok(MqttTransport::new(
        Box::new(move || {
            let _ = client.try_disconnect();
        }),
        task,
    ))
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
                    let topic = String::from_utf8_lossy(&publish.topic).to_string();
                    if let Some(claim) = topics::parse_claim_request(&topic) {
                        if let Some((reply, body)) = service
                            .answer_claim(claim, &publish.payload, crate::clock::unix_now())
                            .await
                            && let Err(e) =
                                client.publish(reply, QoS::AtLeastOnce, false, body).await
                        {
                            tracing::warn!(error = %e, %claim, "could not queue the MQTT claim response");
                        }
                        return;
                    }
                    let Some((device, kind)) = topics::parse(&topic) else {
                        return;
                    };
                    let props = publish.properties.unwrap_or_default();
                    let Some(reply) =
                        topics::reply_topic(device, kind, props.response_topic.as_deref())
                    else {
                        return;
                    };
                    let Some(body) = service
                        .answer(kind, device, &publish.payload, crate::clock::unix_now())
                        .await
                    else {
                        return;
                    };
                    let properties = PublishProperties {
                        correlation_data: props.correlation_data,
                        ..PublishProperties::default()
                    };
                    if let Err(e) = client
                        .publish_with_properties(reply, QoS::AtLeastOnce, false, body, properties)
                        .await
                    {
                        tracing::warn!(error = %e, %device, "could not queue the MQTT response");
                    }
                });
            }
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
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

fn subscriptions(filters: &[String]) -> Vec<rumqttc::v5::mqttbytes::v5::Filter> {
    filters
        .iter()
        .map(|f| rumqttc::v5::mqttbytes::v5::Filter::new(f.clone(), QoS::AtLeastOnce))
        .collect()
}
