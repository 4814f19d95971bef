//! End-to-end tests of Server and Client over real UDP on 127.0.0.1.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use certbound_coap::{
    Client, ClientConfig, CoapError, Method, ResponseType, Server, ServerConfig, content_format,
};
use common::{TestHandler, big_body, lossy_relay};
use tokio::net::UdpSocket;
use tokio::time::timeout;

const LIMIT: Duration = Duration::from_secs(20);

/// Short retransmission timers so loss recovery is fast.
fn fast_client() -> ClientConfig {
    ClientConfig {
        ack_timeout: Duration::from_millis(100),
        ack_random_factor: 1.0,
        max_retransmit: 4,
        ..ClientConfig::default()
    }
}

async fn start(handler: Arc<TestHandler>, config: ServerConfig) -> Server {
    Server::bind("127.0.0.1:0".parse().expect("addr"), handler, config)
        .await
        .expect("bind server")
}

#[tokio::test]
async fn echo_round_trip() {
    let handler = TestHandler::new(1);
    let server = start(Arc::clone(&handler), ServerConfig::default()).await;
    let client = Client::connect(server.local_addr(), ClientConfig::default())
        .await
        .expect("connect");
    let r = timeout(
        LIMIT,
        client.post("echo", content_format::COSE_SIGN1, b"hello".to_vec()),
    )
    .await
    .expect("in time")
    .expect("response");
    assert_eq!(r.code, ResponseType::Changed);
    assert_eq!(r.content_format, Some(content_format::COSE_SIGN1));
    assert_eq!(r.payload, b"hello");

    let r = client.get("nothing/here").await.expect("response");
    assert_eq!(r.code, ResponseType::NotFound);

    let r = client.get("/.well-known/core").await.expect("response");
    assert_eq!(r.content_format, Some(content_format::LINK_FORMAT));
    assert_eq!(r.payload, common::CORE_LINKS.as_bytes());
    // The link list is more than 3x the request: one Echo round trip first.
    assert_eq!(handler.calls(), 4);
    assert_eq!(server.stats().echo_challenges, 1);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_from_one_client() {
    const N: usize = 8;
    // Every handler call waits until all N are running: a server that handled
    // requests one at a time would never answer.
    let handler = TestHandler::new(N);
    let server = start(Arc::clone(&handler), ServerConfig::default()).await;
    let client = Arc::new(
        Client::connect(server.local_addr(), ClientConfig::default())
            .await
            .expect("connect"),
    );
    let mut tasks = Vec::new();
    for i in 0..N {
        let client = Arc::clone(&client);
        tasks.push(tokio::spawn(async move {
            (i, client.get(&format!("barrier?i={i}")).await)
        }));
    }
    for task in tasks {
        let (i, r) = timeout(LIMIT, task).await.expect("in time").expect("task");
        let r = r.expect("response");
        assert_eq!(r.code, ResponseType::Content);
        assert_eq!(
            r.payload,
            format!("i={i}").into_bytes(),
            "responses matched by token"
        );
    }
    assert_eq!(handler.calls(), N);
    server.shutdown().await;
}

#[tokio::test]
async fn five_kilobytes_each_way_blockwise() {
    let handler = TestHandler::new(1);
    let server = start(Arc::clone(&handler), ServerConfig::default()).await;
    let client = Client::connect(server.local_addr(), ClientConfig::default())
        .await
        .expect("connect");

    let body: Vec<u8> = (0..5 * 1024u32).map(|i| (i * 7 % 256) as u8).collect();
    let r = timeout(
        LIMIT,
        client.post("echo", content_format::PKCS10, body.clone()),
    )
    .await
    .expect("in time")
    .expect("response");
    assert_eq!(r.code, ResponseType::Changed);
    assert_eq!(r.content_format, Some(content_format::PKCS10));
    assert_eq!(r.payload, body, "Block1 up, Block2 down");

    let r = client.get("big").await.expect("response");
    assert_eq!(r.payload, big_body());
    // The 5 KiB echo is within 3x of the 5 KiB upload; the GET of 5000 bytes
    // from a not yet verified address is answered 4.01 + Echo first, and the
    // client repeats it with the Echo (RFC 9175): one more handler call.
    assert_eq!(handler.calls(), 3, "the handler sees whole bodies");
    assert_eq!(server.stats().echo_challenges, 1);
    assert_eq!(server.stats().echo_verified, 1);

    // A client asking for 64-byte blocks gets them (SZX negotiation) and still sees one body.
    let small = ClientConfig {
        block_size: 64,
        ..ClientConfig::default()
    };
    let client = Client::connect(server.local_addr(), small)
        .await
        .expect("connect");
    let r = client.get("big").await.expect("response");
    assert_eq!(r.payload, big_body());
    let r = client
        .post("echo", content_format::CBOR, body.clone())
        .await
        .expect("response");
    assert_eq!(r.payload, body);
    assert_eq!(
        handler.calls(),
        6,
        "the new client address needed its own Echo"
    );
    assert!(
        server.stats().received > 150,
        "~80 blocks each way at 64 bytes"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn server_block_size_and_body_limit() {
    let handler = TestHandler::new(1);
    let config = ServerConfig {
        block_size: 256,
        max_body: 2000,
        ..ServerConfig::default()
    };
    let server = start(Arc::clone(&handler), config).await;
    let client = Client::connect(server.local_addr(), ClientConfig::default())
        .await
        .expect("connect");
    // The server lowers the Block1 size in its 2.31 and uses 256-byte Block2 blocks.
    let body = vec![0x5a; 1900];
    let r = client
        .post("echo", content_format::CBOR, body.clone())
        .await
        .expect("response");
    assert_eq!(r.payload, body);
    // Over max_body: 4.13 with the diagnostic, the handler is not called.
    let r = client
        .post("echo", content_format::CBOR, vec![1; 5000])
        .await
        .expect("response");
    assert_eq!(r.code, ResponseType::RequestEntityTooLarge);
    assert!(String::from_utf8_lossy(&r.payload).contains("2000 bytes"));
    assert_eq!(handler.calls(), 1);
    server.shutdown().await;
}

#[tokio::test]
async fn retransmission_recovers_a_lost_request() {
    let handler = TestHandler::new(1);
    let server = start(Arc::clone(&handler), ServerConfig::default()).await;
    let (relay, counters, relay_task) = lossy_relay(server.local_addr(), 1, 0).await;
    let client = Client::connect(relay, fast_client())
        .await
        .expect("connect");
    let r = timeout(
        LIMIT,
        client.post("echo", content_format::CBOR, vec![1, 2, 3]),
    )
    .await
    .expect("in time")
    .expect("response after retransmission");
    assert_eq!(r.payload, vec![1, 2, 3]);
    assert_eq!(
        counters.to_server.load(Ordering::SeqCst),
        2,
        "original + one retransmission"
    );
    assert_eq!(handler.calls(), 1);
    relay_task.abort();
    server.shutdown().await;
}

#[tokio::test]
async fn lost_response_is_replayed_without_running_the_handler_again() {
    let handler = TestHandler::new(1);
    let server = start(Arc::clone(&handler), ServerConfig::default()).await;
    let (relay, counters, relay_task) = lossy_relay(server.local_addr(), 0, 1).await;
    let client = Client::connect(relay, fast_client())
        .await
        .expect("connect");
    let r = timeout(LIMIT, client.post("echo", content_format::CBOR, vec![9]))
        .await
        .expect("in time")
        .expect("response after retransmission");
    assert_eq!(r.payload, vec![9]);
    assert_eq!(counters.to_server.load(Ordering::SeqCst), 2);
    assert_eq!(counters.to_client.load(Ordering::SeqCst), 2);
    assert_eq!(handler.calls(), 1, "duplicate served from the dedup cache");
    assert_eq!(server.stats().duplicates, 1);
    relay_task.abort();
    server.shutdown().await;
}

async fn exchange(socket: &UdpSocket, datagram: &[u8]) -> Vec<u8> {
    socket.send(datagram).await.expect("send");
    let mut buf = vec![0u8; 2048];
    let n = timeout(LIMIT, socket.recv(&mut buf))
        .await
        .expect("answer in time")
        .expect("recv");
    buf.truncate(n);
    buf
}

#[tokio::test]
async fn garbage_datagrams_do_not_kill_the_server() {
    let handler = TestHandler::new(1);
    let server = start(Arc::clone(&handler), ServerConfig::default()).await;
    let raw = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    raw.connect(server.local_addr()).await.expect("connect");
    let junk: [&[u8]; 6] = [
        &[],
        &[0x40],
        &[0xde, 0xad, 0xbe, 0xef, 0x00, 0x11],
        &[0x50, 0x01, 0x00, 0x01, 0xff], // NON GET, marker without payload
        &[0x40, 0x01, 0x00, 0x02, 0xf0], // option delta 15
        &[0x40, 0x01, 0x00, 0x03, 0xbd], // truncated extended length
    ];
    for j in junk {
        raw.send(j).await.expect("send");
    }
    let mut big = vec![0x50, 0x01, 0x00, 0x09];
    big.extend(std::iter::repeat_n(0xee, 60_000));
    raw.send(&big).await.expect("send");
    // The two malformed CON messages are rejected with RST; the rest is dropped silently.
    let mut buf = [0u8; 64];
    for mid in [2u8, 3] {
        let n = timeout(LIMIT, raw.recv(&mut buf))
            .await
            .expect("RST in time")
            .expect("recv");
        assert_eq!(&buf[..n], &[0x70, 0x00, 0x00, mid]);
    }

    // CON with token length 15: reset.
    let rst = exchange(&raw, &[0x4f, 0x01, 0x12, 0x34]).await;
    assert_eq!(rst, vec![0x70, 0x00, 0x12, 0x34]);
    // CON ping: reset.
    let rst = exchange(&raw, &[0x40, 0x00, 0xbe, 0xef]).await;
    assert_eq!(rst, vec![0x70, 0x00, 0xbe, 0xef]);
    // CON GET with unknown critical option 2049: piggybacked 4.02 (code 0x82).
    let bad_option = [0x42, 0x01, 0x00, 0x07, 0xa1, 0xb2, 0xe1, 0x06, 0xf4, 0x01];
    let resp = exchange(&raw, &bad_option).await;
    assert_eq!(
        &resp[..6],
        &[0x62, 0x82, 0x00, 0x07, 0xa1, 0xb2],
        "ACK 4.02 echoing mid and token"
    );

    let stats = server.stats();
    assert!(stats.malformed >= 6, "{stats:?}");
    assert_eq!(handler.calls(), 0);
    // Still serving.
    let client = Client::connect(server.local_addr(), ClientConfig::default())
        .await
        .expect("connect");
    let r = client
        .post("echo", content_format::CBOR, vec![1])
        .await
        .expect("still alive");
    assert_eq!(r.payload, vec![1]);
    server.shutdown().await;
}

#[tokio::test]
async fn panicking_handler_gives_internal_server_error() {
    let handler = TestHandler::new(1);
    let server = start(Arc::clone(&handler), ServerConfig::default()).await;
    let client = Client::connect(server.local_addr(), ClientConfig::default())
        .await
        .expect("connect");
    let r = timeout(LIMIT, client.get("panic"))
        .await
        .expect("in time")
        .expect("response");
    assert_eq!(r.code, ResponseType::InternalServerError);
    let r = client.get("big").await.expect("still serving");
    assert_eq!(r.code, ResponseType::Content);
    server.shutdown().await;
}

#[tokio::test]
async fn client_times_out_when_nothing_answers() {
    let silent = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let addr: SocketAddr = silent.local_addr().expect("addr");
    let config = ClientConfig {
        ack_timeout: Duration::from_millis(20),
        ack_random_factor: 1.5,
        max_retransmit: 2,
        ..ClientConfig::default()
    };
    let client = Client::connect(addr, config).await.expect("connect");
    let err = timeout(
        LIMIT,
        client.request(Method::Get, "token", None, Vec::new()),
    )
    .await
    .expect("gives up in time")
    .expect_err("no answer");
    match err {
        CoapError::Timeout {
            transmissions,
            waited,
        } => {
            assert_eq!(transmissions, 3);
            assert!(waited >= Duration::from_millis(20 + 40 + 80), "{waited:?}");
        }
        other => panic!("expected a timeout, got {other}"),
    }
    // The silent peer saw the original and both retransmissions, identical.
    let mut seen = Vec::new();
    let mut buf = [0u8; 256];
    while let Ok(Ok((n, _))) = timeout(Duration::from_millis(1), silent.recv_from(&mut buf)).await {
        seen.push(buf[..n].to_vec());
    }
    assert_eq!(seen.len(), 3);
    assert!(seen.windows(2).all(|w| w[0] == w[1]));
    assert!(err_message_is_actionable(&CoapError::Timeout {
        transmissions: 3,
        waited: Duration::ZERO
    }));
}

fn err_message_is_actionable(e: &CoapError) -> bool {
    e.to_string().contains("ack_timeout")
}

#[tokio::test]
async fn unreachable_port_times_out_instead_of_failing_hard() {
    // Bind and drop a socket to get a port that (very likely) nobody listens on:
    // ICMP port-unreachable errors must not break the client.
    let port = UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind")
        .local_addr()
        .expect("addr");
    let config = ClientConfig {
        ack_timeout: Duration::from_millis(10),
        ack_random_factor: 1.0,
        max_retransmit: 2,
        ..ClientConfig::default()
    };
    let client = Client::connect(port, config).await.expect("connect");
    let err = timeout(LIMIT, client.get("x"))
        .await
        .expect("in time")
        .expect_err("no server");
    assert!(matches!(err, CoapError::Timeout { .. }), "{err}");
}
