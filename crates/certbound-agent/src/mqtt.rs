//! Obtaining tokens (and later publishing telemetry) over MQTT with mTLS:
//! the device publishes its signed request on `cb/v1/{device}/token/req` and
//! waits for the answer on `cb/v1/{device}/token/res`.
//!
//! MQTT 3.1.1 carries no correlation data, so requests from one connection
//! are made one at a time.

use std::time::Duration;

use certbound_coap::{ResponseType, content_format};
use certbound_proto::topics::{self, TopicKind};
use rand::RngCore;
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, NetworkOptions, Packet, QoS, Transport};
use tokio::sync::{Mutex, mpsc};
use tokio::task::JoinHandle;

use crate::error::AgentError;
use crate::identity::DeviceIdentity;
use crate::token::{
    ObtainedToken, TokenRequestParams, build_token_request, decode_token_response, unix_now,
};

/// Where the MQTT server is and how to authenticate.
#[derive(Clone)]
pub struct MqttConnectSettings {
    /// Server host (IP or name; also the TLS server name).
    pub host: String,
    /// Server port.
    pub port: u16,
    /// CA bundle (PEM) that signed the server certificate.
    pub ca_pem: String,
    /// Device certificate chain (PEM, leaf first).
    pub cert_pem: String,
    /// Device key (PKCS#8 PEM).
    pub key_pem: String,
    /// How long to wait for the connection, the subscription and each answer.
    pub timeout: Duration,
}

impl std::fmt::Debug for MqttConnectSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttConnectSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// A device connected to an MQTT server.
pub struct MqttDevice {
    device_id: String,
    client: AsyncClient,
    responses: Mutex<mpsc::Receiver<Vec<u8>>>,
    timeout: Duration,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for MqttDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttDevice")
            .field("device_id", &self.device_id)
            .finish_non_exhaustive()
    }
}

impl MqttDevice {
    /// Connects with the device certificate and subscribes to its response
    /// topic; returns once the subscription is acknowledged.
    pub async fn connect(
        identity: &DeviceIdentity,
        settings: &MqttConnectSettings,
    ) -> Result<Self, AgentError> {
        let tls = certbound_mqtt::client_tls::client_tls_config(
            &settings.ca_pem,
            &settings.cert_pem,
            &settings.key_pem,
        )
        .map_err(|e| AgentError::Credentials(e.to_string()))?;
        let device_id = identity.device_id().to_string();
        let mut options = MqttOptions::new(device_id.clone(), settings.host.clone(), settings.port);
        options.set_keep_alive(Duration::from_secs(30));
        options.set_clean_session(true);
        options.set_max_packet_size(64 * 1024, 64 * 1024);
        options.set_transport(Transport::tls_with_config(
            rumqttc::TlsConfiguration::Rustls(tls),
        ));
        let (client, mut eventloop) = AsyncClient::new(options, 64);
        let mut network = NetworkOptions::new();
        network.set_tcp_nodelay(true);
        eventloop.set_network_options(network);

        let response_topic = topics::topic(&device_id, TopicKind::TokenResponse);
        tokio::time::timeout(settings.timeout, async {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        client
                            .subscribe(response_topic.clone(), QoS::AtLeastOnce)
                            .await
                            .map_err(|e| AgentError::Mqtt(e.to_string()))?;
                    }
                    Ok(Event::Incoming(Packet::SubAck(ack))) => {
                        if ack
                            .return_codes
                            .iter()
                            .any(|c| matches!(c, rumqttc::SubscribeReasonCode::Failure))
                        {
                            return Err(AgentError::Mqtt(format!(
                                "the MQTT server refused the subscription to {response_topic}"
                            )));
                        }
                        return Ok(());
                    }
                    Ok(_) => {}
                    Err(e) => {
                        return Err(AgentError::Mqtt(format!(
                            "connecting to {}:{}: {e}",
                            settings.host, settings.port
                        )));
                    }
                }
            }
        })
        .await
        .map_err(|_| {
            AgentError::Mqtt(format!(
                "no answer from {}:{} within {:?}",
                settings.host, settings.port, settings.timeout
            ))
        })??;

        let (tx, rx) = mpsc::channel(16);
        let task = tokio::spawn(pump(eventloop, client.clone(), response_topic, tx));
        Ok(Self {
            device_id,
            client,
            responses: Mutex::new(rx),
            timeout: settings.timeout,
            task,
        })
    }

    /// Requests a token and waits for the answer.
    pub async fn request_token(
        &self,
        identity: &DeviceIdentity,
        params: &TokenRequestParams,
    ) -> Result<ObtainedToken, AgentError> {
        let mut responses = self.responses.lock().await;
        // Drop answers to earlier, timed-out requests.
        while responses.try_recv().is_ok() {}
        let mut nonce = [0u8; 16];
        rand::rng().fill_bytes(&mut nonce);
        let body = build_token_request(identity, params, unix_now(), nonce)?;
        self.client
            .publish(
                topics::topic(&self.device_id, TopicKind::TokenRequest),
                QoS::AtLeastOnce,
                false,
                body,
            )
            .await
            .map_err(|e| AgentError::Mqtt(e.to_string()))?;
        let payload = tokio::time::timeout(self.timeout, responses.recv())
            .await
            .map_err(|_| AgentError::Mqtt(format!("no token response within {:?}", self.timeout)))?
            .ok_or_else(|| AgentError::Mqtt("the MQTT connection closed".into()))?;
        // MQTT has no status code: the ACE body itself says token or error.
        decode_token_response(
            ResponseType::Created,
            Some(content_format::ACE_CBOR),
            &payload,
        )
    }

    /// Publishes raw bytes on one of this device's topics (QoS 1).
    pub async fn publish(&self, kind: TopicKind, payload: Vec<u8>) -> Result<(), AgentError> {
        self.client
            .publish(
                topics::topic(&self.device_id, kind),
                QoS::AtLeastOnce,
                false,
                payload,
            )
            .await
            .map_err(|e| AgentError::Mqtt(e.to_string()))
    }

    /// Publishes raw bytes on any topic (tests use this to show the server's ACL).
    pub async fn publish_raw(&self, topic: &str, payload: Vec<u8>) -> Result<(), AgentError> {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await
            .map_err(|e| AgentError::Mqtt(e.to_string()))
    }

    /// Disconnects.
    pub async fn disconnect(self) {
        let _ = self.client.try_disconnect();
        self.task.abort();
    }
}

async fn pump(
    mut eventloop: EventLoop,
    client: AsyncClient,
    response_topic: String,
    tx: mpsc::Sender<Vec<u8>>,
) {
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::Publish(p))) if p.topic == response_topic => {
                if tx.send(p.payload.to_vec()).await.is_err() {
                    return;
                }
            }
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                let _ = client
                    .subscribe(response_topic.clone(), QoS::AtLeastOnce)
                    .await;
            }
            Ok(_) => {}
            Err(e) => {
                tracing::debug!(error = %e, "MQTT connection error; reconnecting");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}
