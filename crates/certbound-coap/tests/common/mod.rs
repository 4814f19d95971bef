//! Shared fixtures for the integration tests: a test handler and a lossy UDP relay.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use certbound_coap::{Handler, Method, Request, Response, ResponseType, content_format};
use tokio::net::UdpSocket;
use tokio::sync::Barrier;
use tokio::task::JoinHandle;

/// The 5 KB body served by `GET big`.
pub fn big_body() -> Vec<u8> {
    (0..5000u32)
        .map(|i| b"abcdefghijklmnopqrstuvwxyz0123456789"[(i % 36) as usize])
        .collect()
}

/// Link-format served at `/.well-known/core`.
/// Long enough (93 bytes) that its answer exceeds 3x the GET request whatever
/// the client's token length (4-8 bytes), so the Echo round trip is certain.
pub const CORE_LINKS: &str = "</token>;rt=\"ace.token\";ct=19,</.well-known/est/crts>;rt=\"ace.est.crts\",</status>;rt=\"status\"";

/// Test resources: `POST echo`, `GET big`, `GET .well-known/core`, `GET barrier`, `GET panic`.
pub struct TestHandler {
    pub calls: AtomicUsize,
    pub barrier: Barrier,
}

impl TestHandler {
    pub fn new(barrier_size: usize) -> Arc<Self> {
        Arc::new(TestHandler {
            calls: AtomicUsize::new(0),
            barrier: Barrier::new(barrier_size),
        })
    }

    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

impl Handler for TestHandler {
    async fn handle(&self, request: Request) -> Response {
        self.calls.fetch_add(1, Ordering::SeqCst);
        match (request.method, request.path.as_str()) {
            (Method::Post, "echo") => {
                let cf = request.content_format.unwrap_or(content_format::CBOR);
                Response::new(ResponseType::Changed).with_payload(cf, request.payload)
            }
            (Method::Get, "big") => {
                Response::new(ResponseType::Content).with_payload(0, big_body())
            }
            (Method::Get, ".well-known/core") => Response::new(ResponseType::Content)
                .with_payload(content_format::LINK_FORMAT, CORE_LINKS.as_bytes().to_vec()),
            (Method::Get, "barrier") => {
                self.barrier.wait().await;
                Response::new(ResponseType::Content)
                    .with_payload(0, request.query.join("&").into_bytes())
            }
            (Method::Get, "panic") => panic!("handler panics on purpose"),
            _ => Response::new(ResponseType::NotFound),
        }
    }
}

/// Counters of a [`lossy_relay`].
#[derive(Default)]
pub struct RelayCounters {
    pub to_server: AtomicUsize,
    pub to_client: AtomicUsize,
}

/// A UDP relay in front of `server` that drops the first `drop_to_server`
/// datagrams from the client and the first `drop_to_client` from the server.
/// Returns the address clients should use.
pub async fn lossy_relay(
    server: SocketAddr,
    mut drop_to_server: usize,
    mut drop_to_client: usize,
) -> (SocketAddr, Arc<RelayCounters>, JoinHandle<()>) {
    let front = UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind relay front");
    let back = UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind relay back");
    back.connect(server).await.expect("connect relay back");
    let addr = front.local_addr().expect("relay address");
    let counters = Arc::new(RelayCounters::default());
    let c = Arc::clone(&counters);
    let task = tokio::spawn(async move {
        let mut client: Option<SocketAddr> = None;
        let mut a = vec![0u8; 65_535];
        let mut b = vec![0u8; 65_535];
        loop {
            tokio::select! {
                r = front.recv_from(&mut a) => {
                    let Ok((n, from)) = r else { continue };
                    client = Some(from);
                    c.to_server.fetch_add(1, Ordering::SeqCst);
                    if drop_to_server > 0 { drop_to_server -= 1; continue; }
                    let _ = back.send(&a[..n]).await;
                }
                r = back.recv(&mut b) => {
                    let Ok(n) = r else { continue };
                    c.to_client.fetch_add(1, Ordering::SeqCst);
                    if drop_to_client > 0 { drop_to_client -= 1; continue; }
                    if let Some(to) = client { let _ = front.send_to(&b[..n], to).await; }
                }
            }
        }
    });
    (addr, counters, task)
}
