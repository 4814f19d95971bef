//! Opening one connection: TCP (with `TCP_NODELAY`), TLS, CONNECT/CONNACK
//! and the subscriptions, all within the connect timeout.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;

use super::state::{ClientState, StateEvent};
use super::{ClientOptions, Message, QoS};
use crate::MqttError;

pub(super) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// An established connection: CONNACK and SUBACK seen.
pub(super) struct Conn {
    pub(super) stream: Box<dyn Io>,
    pub(super) state: ClientState,
    /// Messages that came before the SUBACK.
    pub(super) early: VecDeque<Message>,
}

pub(super) async fn establish(
    options: &ClientOptions,
    subscriptions: &[(String, QoS)],
) -> Result<Conn, MqttError> {
    let server = format!("{}:{}", options.host, options.port);
    tokio::time::timeout(
        options.connect_timeout,
        establish_inner(options, subscriptions),
    )
    .await
    .map_err(|_| {
        MqttError::Timeout(format!(
            "no connection to the MQTT server {server} within {:?}",
            options.connect_timeout
        ))
    })?
}

async fn establish_inner(
    options: &ClientOptions,
    subscriptions: &[(String, QoS)],
) -> Result<Conn, MqttError> {
    let server = format!("{}:{}", options.host, options.port);
    let tcp = TcpStream::connect((options.host.as_str(), options.port))
        .await
        .map_err(|e| MqttError::Connect(format!("TCP connection to {server}: {e}")))?;
    // Nagle would stall every handshake and small publish (DESIGN.md).
    tcp.set_nodelay(true)
        .map_err(|e| MqttError::Connect(format!("TCP_NODELAY on {server}: {e}")))?;
    let stream: Box<dyn Io> = match &options.tls {
        None => Box::new(tcp),
        Some(config) => {
            let name = options.server_name.as_deref().unwrap_or(&options.host);
            let name = ServerName::try_from(name.to_string()).map_err(|e| {
                MqttError::Connect(format!("{name:?} is not a TLS server name: {e}"))
            })?;
            let tls = tokio_rustls::TlsConnector::from(Arc::clone(config))
                .connect(name, tcp)
                .await
                .map_err(|e| MqttError::Connect(format!("TLS handshake with {server}: {e}")))?;
            Box::new(tls)
        }
    };
    let state = ClientState::new(options.state_config(), Instant::now())?;
    let mut conn = Conn {
        stream,
        state,
        early: VecDeque::new(),
    };
    let mut buf = BytesMut::with_capacity(8 * 1024);
    conn.flush().await?;
    let mut connected = false;
    while !connected {
        conn.read_some(&mut buf).await?;
        while let Some(event) = conn.state.poll_event() {
            match event {
                StateEvent::Connected => connected = true,
                StateEvent::Message(m) => conn.early.push_back(m),
                _ => {}
            }
        }
    }
    if subscriptions.is_empty() {
        return Ok(conn);
    }
    conn.state.subscribe(subscriptions, 0, Instant::now())?;
    conn.flush().await?;
    loop {
        conn.read_some(&mut buf).await?;
        while let Some(event) = conn.state.poll_event() {
            match event {
                StateEvent::Message(m) => conn.early.push_back(m),
                StateEvent::Subscribed(_, codes) => {
                    let refused: Vec<String> = subscriptions
                        .iter()
                        .zip(codes.iter())
                        .filter_map(|((f, _), c)| {
                            c.as_ref().err().map(|why| format!("{f} ({why})"))
                        })
                        .collect();
                    if !refused.is_empty() || codes.len() != subscriptions.len() {
                        return Err(MqttError::SubscribeRefused(refused.join(", ")));
                    }
                    conn.flush().await?;
                    return Ok(conn);
                }
                _ => {}
            }
        }
    }
}

impl Conn {
    pub(super) async fn flush(&mut self) -> Result<(), MqttError> {
        while let Some(bytes) = self.state.take_transmit() {
            self.stream.write_all(&bytes).await.map_err(lost)?;
        }
        self.stream.flush().await.map_err(lost)
    }

    /// Reads once and feeds the state machine (also timers are the caller's).
    async fn read_some(&mut self, buf: &mut BytesMut) -> Result<(), MqttError> {
        buf.clear();
        let n = self.stream.read_buf(buf).await.map_err(lost)?;
        if n == 0 {
            return Err(MqttError::ConnectionLost(
                "the server closed the connection".into(),
            ));
        }
        self.state.handle_input(buf, Instant::now())?;
        // Acknowledgements the input produced.
        self.flush().await
    }
}

pub(super) fn lost(e: std::io::Error) -> MqttError {
    MqttError::ConnectionLost(e.to_string())
}
