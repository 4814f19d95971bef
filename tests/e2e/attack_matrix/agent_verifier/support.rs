//! Hand-tampering of real broker tokens (ciborium) and fake answerers for the
//! agent cases: a real UDP socket playing the attacker on the path.

use std::net::SocketAddr;

use anyhow::Context as _;
use certbound_e2e::{API, Fixture, GRANTED_SCOPE, ISSUER, unix_now};
use certbound_proto::crypto::Signer as _;
use certbound_registry::config::DataDir;
use certbound_verify::http::{Authenticator, HttpsFetcher, StatusCheck, VerifyConfig};
use certbound_verify::status::StatusCacheConfig;
use certbound_verify::{KeySet, VerifierConfig};
use ciborium::Value;
use coap_lite::{CoapOption, MessageClass, MessageType, Packet, ResponseType};
use tokio::net::UdpSocket;

pub fn encode(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(v, &mut out).expect("encoding to a Vec");
    out
}

pub fn decode(b: &[u8]) -> Value {
    ciborium::from_reader(b).expect("a token from our broker decodes")
}

pub fn int(i: i64) -> Value {
    Value::Integer(i.into())
}

/// A COSE_Sign1 taken apart: tag, protected bytes, unprotected map, payload, signature.
#[derive(Debug, Clone)]
pub struct Parts {
    pub tag: u64,
    pub protected: Vec<u8>,
    pub unprotected: Value,
    pub payload: Vec<u8>,
    pub signature: Vec<u8>,
}

impl Parts {
    pub fn of(token: &[u8]) -> Self {
        let Value::Tag(tag, inner) = decode(token) else {
            panic!("tagged COSE_Sign1 expected");
        };
        let Value::Array(items) = *inner else {
            panic!("array expected");
        };
        let bytes = |v: &Value| v.as_bytes().cloned().expect("bstr");
        Self {
            tag,
            protected: bytes(&items[0]),
            unprotected: items[1].clone(),
            payload: bytes(&items[2]),
            signature: bytes(&items[3]),
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        encode(&Value::Tag(
            self.tag,
            Box::new(Value::Array(vec![
                Value::Bytes(self.protected.clone()),
                self.unprotected.clone(),
                Value::Bytes(self.payload.clone()),
                Value::Bytes(self.signature.clone()),
            ])),
        ))
    }

    /// The protected header as a map of (label, value).
    pub fn protected_map(&self) -> Vec<(Value, Value)> {
        match decode(&self.protected) {
            Value::Map(m) => m,
            _ => panic!("protected header map"),
        }
    }

    /// The claims as a map of (label, value).
    pub fn claims(&self) -> Vec<(Value, Value)> {
        match decode(&self.payload) {
            Value::Map(m) => m,
            _ => panic!("claims map"),
        }
    }

    /// Signs again with the broker's real signing key (so that only the
    /// tampering, not the signature, can be refused).
    pub fn resign(mut self, fx: &Fixture) -> Self {
        let key = certbound_registry::keys::load_current(&DataDir::new(fx.path()).key_dir())
            .expect("the broker's signing key");
        let to_sign = encode(&Value::Array(vec![
            Value::Text("Signature1".into()),
            Value::Bytes(self.protected.clone()),
            Value::Bytes(Vec::new()),
            Value::Bytes(self.payload.clone()),
        ]));
        self.signature = key.signer.sign(&to_sign).expect("signing").to_vec();
        self
    }
}

/// `claims` with `label` replaced by `value` (removed when `None`).
pub fn set_claim(mut claims: Vec<(Value, Value)>, label: i64, value: Option<Value>) -> Vec<u8> {
    claims.retain(|(k, _)| k != &int(label));
    if let Some(v) = value {
        claims.push((int(label), v));
    }
    encode(&Value::Map(claims))
}

/// A fresh token of `device` for [`API`].
pub async fn broker_token(fx: &Fixture, device: &certbound_e2e::TestDevice) -> Vec<u8> {
    fx.obtain(device, &fx.params(Some(GRANTED_SCOPE)))
        .await
        .expect("the broker issues a token")
        .access_token
}

/// The broker's signing keys.
pub fn keys(fx: &Fixture) -> KeySet {
    certbound_e2e::key_set(fx.path()).expect("broker keys")
}

/// The verifier configuration of a telemetry backend for [`API`].
pub fn backend_config() -> VerifierConfig {
    VerifierConfig::new(API).with_issuer(ISSUER)
}

/// A telemetry backend's status checker: the broker's status lists over HTTPS.
pub fn status_checker(fx: &Fixture) -> anyhow::Result<Authenticator> {
    let ca = std::fs::read_to_string(DataDir::new(fx.path()).pki().chain())?;
    let tls = certbound_verify::http::client_tls_config(&ca, None)?;
    Ok(Authenticator::new(VerifyConfig::new(
        backend_config(),
        keys(fx),
        StatusCheck::Fetch {
            cache: StatusCacheConfig::new(format!("{}/status/", fx.https_url())),
            fetcher: HttpsFetcher::new(tls, std::time::Duration::from_secs(10), 1 << 20),
        },
    ))?)
}

/// What the fake answerer says to every (final) request.
#[derive(Debug, Clone)]
pub enum Forged {
    /// This code with a Max-Age option.
    RetryAfter(ResponseType, u32),
    /// 2.01 Created, content-format 19, this ACE body.
    Token(Vec<u8>),
}

/// A UDP socket on 127.0.0.1 answering every CoAP request with `forged`
/// (block-wise request parts get 2.31 Continue). Runs until dropped.
pub struct FakeAnswerer {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeAnswerer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeAnswerer {
    pub async fn start(forged: Forged) -> anyhow::Result<Self> {
        let socket = UdpSocket::bind("127.0.0.1:0").await?;
        let addr = socket.local_addr()?;
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            loop {
                let Ok((n, peer)) = socket.recv_from(&mut buf).await else {
                    return;
                };
                let Ok(request) = Packet::from_bytes(&buf[..n]) else {
                    continue;
                };
                let mut answer = Packet::new();
                answer.header.set_type(MessageType::Acknowledgement);
                answer.header.message_id = request.header.message_id;
                answer.set_token(request.get_token().to_vec());
                let more = request
                    .get_option(CoapOption::Block1)
                    .and_then(|l| l.front())
                    .and_then(|v| v.last())
                    .is_some_and(|last| last & 0x08 != 0);
                if more {
                    answer.header.code = MessageClass::Response(ResponseType::Continue);
                    if let Some(block) = request
                        .get_option(CoapOption::Block1)
                        .and_then(|l| l.front())
                    {
                        answer.add_option(CoapOption::Block1, block.clone());
                    }
                } else {
                    match &forged {
                        Forged::RetryAfter(code, max_age) => {
                            answer.header.code = MessageClass::Response(*code);
                            answer.add_option(CoapOption::MaxAge, max_age.to_be_bytes().to_vec());
                        }
                        Forged::Token(body) => {
                            answer.header.code = MessageClass::Response(ResponseType::Created);
                            answer.add_option(CoapOption::ContentFormat, vec![19]);
                            answer.payload = body.clone();
                        }
                    }
                }
                if let Ok(bytes) = answer.to_bytes() {
                    let _ = socket.send_to(&bytes, peer).await;
                }
            }
        });
        Ok(Self { addr, task })
    }
}

/// Waits (polling, bounded) until `f` holds.
pub async fn eventually<F, Fut>(what: &str, mut f: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = unix_now() + 30;
    while unix_now() < deadline {
        if f().await {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    Err(anyhow::anyhow!("timed out waiting for {what}")).context("eventually")
}
