//! The server over real mutual TLS on 127.0.0.1, with certbound's client.
#![allow(missing_docs)]

mod common;

use std::collections::HashSet;
use std::sync::Arc;

use certbound_mqtt::client::QoS;
use certbound_mqtt::{CertboundAcl, Identity, MqttError, MqttServer, PeerCert};
use common::{GUARD, Pki, client_tls, connect, connect_with, eventually};
use rumqttc::SubscribeReasonCode;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const TELEMETRY: &str = "cb/v1/sensor-1/telemetry";

#[tokio::test]
async fn device_telemetry_reaches_a_service_subscriber_at_qos1() {
    let pki = Pki::new();
    let server = pki.start().await;
    let mut service = connect(&server, &pki, "broker-1", &pki.service("certbound-broker")).await;
    assert_eq!(
        service
            .subscribe("cb/v1/+/telemetry", QoS::AtLeastOnce)
            .await,
        vec![SubscribeReasonCode::Success(QoS::AtLeastOnce)]
    );
    let device = connect(&server, &pki, "sensor-1", &pki.device("sensor-1")).await;
    device
        .publish(TELEMETRY, QoS::AtLeastOnce, b"21.5C".to_vec())
        .await;

    let got = service.next_publish().await;
    assert_eq!(got.topic, TELEMETRY);
    assert_eq!(&got.payload[..], b"21.5C");
    assert_eq!(got.qos, QoS::AtLeastOnce);
    assert!(!got.retain);

    let stats = server.stats();
    assert_eq!(stats.connected_clients, 2);
    assert_eq!(stats.messages_routed, 1);
    assert_eq!(stats.messages_delivered, 1);
    server.shutdown().await;
}

#[tokio::test]
async fn a_service_answers_a_device_on_its_response_topic() {
    let pki = Pki::new();
    let server = pki.start().await;
    let mut device = connect(&server, &pki, "sensor-1", &pki.device("sensor-1")).await;
    device
        .subscribe("cb/v1/sensor-1/token/res", QoS::AtLeastOnce)
        .await;
    let service = connect(&server, &pki, "broker", &pki.service("certbound-broker")).await;
    service
        .publish(
            "cb/v1/sensor-2/token/res",
            QoS::AtLeastOnce,
            b"not yours".to_vec(),
        )
        .await;
    service
        .publish(
            "cb/v1/sensor-1/token/res",
            QoS::AtLeastOnce,
            b"token".to_vec(),
        )
        .await;
    let got = device.next_publish().await;
    assert_eq!(
        (got.topic.as_str(), &got.payload[..]),
        ("cb/v1/sensor-1/token/res", &b"token"[..])
    );
    server.shutdown().await;
}

#[tokio::test]
async fn devices_cannot_reach_other_devices_topics() {
    let pki = Pki::new();
    let server = pki.start().await;
    let mut a = connect(&server, &pki, "a", &pki.device("sensor-a")).await;
    let mut b = connect(&server, &pki, "b", &pki.device("sensor-b")).await;
    assert_eq!(
        b.subscribe("cb/v1/sensor-b/#", QoS::AtLeastOnce).await,
        vec![SubscribeReasonCode::Success(QoS::AtLeastOnce)]
    );

    assert_eq!(
        a.subscribe("cb/v1/sensor-b/#", QoS::AtLeastOnce).await,
        vec![SubscribeReasonCode::Failure]
    );
    assert_eq!(
        a.subscribe("cb/v1/+/telemetry", QoS::AtMostOnce).await,
        vec![SubscribeReasonCode::Failure]
    );
    assert_eq!(server.stats().subscribe_refusals, 2);

    // Publishing into B's namespace closes A's connection...
    a.publish(
        "cb/v1/sensor-b/token/res",
        QoS::AtLeastOnce,
        b"forged".to_vec(),
    )
    .await;
    a.closed().await;
    assert_eq!(server.stats().publish_refusals, 1);

    // ... and B never sees it: B's own later message is the first to arrive.
    b.publish(
        "cb/v1/sensor-b/marker",
        QoS::AtLeastOnce,
        b"marker".to_vec(),
    )
    .await;
    let first = b.next_publish().await;
    assert_eq!(
        (first.topic.as_str(), &first.payload[..]),
        ("cb/v1/sensor-b/marker", &b"marker"[..])
    );
    assert_eq!(server.stats().messages_routed, 1);
    server.shutdown().await;
}

#[tokio::test]
async fn a_client_without_certificate_fails_the_handshake() {
    let pki = Pki::new();
    let server = pki.start().await;
    let result = connect_with(&server, "anon", client_tls(&pki.chain_pem, None)).await;
    assert!(result.is_err(), "connected without a client certificate");
    eventually("the TLS failure to be counted", || {
        server.stats().tls_failures == 1
    })
    .await;
    assert_eq!(server.stats().connected_clients, 0);
    server.shutdown().await;
}

#[tokio::test]
async fn a_certificate_from_a_foreign_ca_is_refused() {
    let pki = Pki::new();
    let foreign = Pki::new();
    let server = pki.start().await;
    // Trusts our server, but authenticates with a device certificate of another CA.
    let tls = client_tls(&pki.chain_pem, Some(&foreign.device("sensor-1")));
    let result = connect_with(&server, "intruder", tls).await;
    assert!(result.is_err(), "foreign certificate accepted");
    eventually("the TLS failure to be counted", || {
        server.stats().tls_failures == 1
    })
    .await;
    assert_eq!(server.stats().connected_clients, 0);
    server.shutdown().await;
}

#[tokio::test]
async fn revoked_identities_get_connack_not_authorized() {
    let pki = Pki::new();
    let acl = CertboundAcl::new()
        .with_broker("certbound-broker")
        .with_revocation_check(Arc::new(|who: &Identity, _: &PeerCert| {
            *who == Identity::Device("stolen".into())
        }));
    let server = pki.start_with(acl).await;
    let tls = client_tls(&pki.chain_pem, Some(&pki.device("stolen")));
    match connect_with(&server, "stolen", tls).await {
        Err(MqttError::ConnectionRefused(code)) => {
            assert!(code.contains("NotAuthorized (0x05)"), "{code}");
        }
        Err(other) => panic!("expected CONNACK 0x05, got {other:?}"),
        Ok(_) => panic!("revoked device connected"),
    }
    assert_eq!(server.stats().auth_failures, 1);
    // Other devices are fine.
    connect(&server, &pki, "fine", &pki.device("fine")).await;
    server.shutdown().await;
}

#[tokio::test]
async fn shared_subscribers_split_the_messages_each_delivered_once() {
    const N: usize = 20;
    let pki = Pki::new();
    let server = pki.start().await;
    let mut subscribers = Vec::new();
    for i in 0..2 {
        let mut s = connect(
            &server,
            &pki,
            &format!("broker-{i}"),
            &pki.service("certbound-broker"),
        )
        .await;
        let codes = s
            .subscribe("$share/certbound/cb/v1/+/token/req", QoS::AtLeastOnce)
            .await;
        assert_eq!(codes, vec![SubscribeReasonCode::Success(QoS::AtLeastOnce)]);
        // A plain subscription for the end-of-test marker.
        s.subscribe("cb/v1/+/telemetry", QoS::AtLeastOnce).await;
        subscribers.push(s);
    }
    let device = connect(&server, &pki, "sensor-1", &pki.device("sensor-1")).await;
    for i in 0..N {
        device
            .publish(
                "cb/v1/sensor-1/token/req",
                QoS::AtLeastOnce,
                format!("req-{i}"),
            )
            .await;
    }
    device
        .publish(TELEMETRY, QoS::AtLeastOnce, b"end".to_vec())
        .await;

    let mut seen = Vec::new();
    for s in &mut subscribers {
        let mut mine = 0;
        loop {
            let p = s.next_publish().await;
            if p.topic == TELEMETRY {
                break;
            }
            assert_eq!(p.topic, "cb/v1/sensor-1/token/req");
            seen.push(String::from_utf8(p.payload.to_vec()).expect("utf-8"));
            mine += 1;
        }
        assert_eq!(mine, N / 2, "round-robin splits evenly");
    }
    let distinct: HashSet<&String> = seen.iter().collect();
    assert_eq!(
        (seen.len(), distinct.len()),
        (N, N),
        "each request exactly once"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn disconnect_closes_the_identitys_connections() {
    let pki = Pki::new();
    let server = pki.start().await;
    let mut device = connect(&server, &pki, "sensor-1", &pki.device("sensor-1")).await;
    let mut other = connect(&server, &pki, "sensor-2", &pki.device("sensor-2")).await;
    assert_eq!(server.disconnect(&Identity::Device("sensor-1".into())), 1);
    device.closed().await;
    eventually("the connection to be gone", || {
        server.stats().connected_clients == 1
    })
    .await;
    assert_eq!(server.disconnect(&Identity::Device("sensor-1".into())), 0);
    // The other device is unaffected.
    other.subscribe("cb/v1/sensor-2/#", QoS::AtMostOnce).await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_second_connect_with_the_same_client_id_takes_over() {
    let pki = Pki::new();
    let server = pki.start().await;
    let bundle = pki.device("sensor-1");
    let mut first = connect(&server, &pki, "sensor-1", &bundle).await;
    let mut second = connect(&server, &pki, "sensor-1", &bundle).await;
    first.closed().await;
    assert_eq!(
        second.subscribe("cb/v1/sensor-1/#", QoS::AtMostOnce).await,
        vec![SubscribeReasonCode::Success(QoS::AtMostOnce)]
    );
    second
        .publish(TELEMETRY, QoS::AtLeastOnce, b"after takeover".to_vec())
        .await;
    assert_eq!(&second.next_publish().await.payload[..], b"after takeover");

    // The same client id again after the connection vanished without DISCONNECT.
    second.abort();
    let mut third = connect(&server, &pki, "sensor-1", &bundle).await;
    third.subscribe("cb/v1/sensor-1/#", QoS::AtLeastOnce).await;
    third
        .publish(TELEMETRY, QoS::AtLeastOnce, b"third".to_vec())
        .await;
    assert_eq!(&third.next_publish().await.payload[..], b"third");
    server.shutdown().await;
}

#[tokio::test]
async fn garbage_after_the_handshake_does_not_hurt_the_server() {
    let pki = Pki::new();
    let server = pki.start().await;
    let connector =
        tokio_rustls::TlsConnector::from(client_tls(&pki.chain_pem, Some(&pki.device("sensor-1"))));
    for garbage in [
        &b"\xff\xff\xff\xff\xff\xff"[..],
        b"GET / HTTP/1.1\r\n\r\n",
        b"\x10\x05\x00\x04MQ",
        b"\x30",
    ] {
        let tcp = tokio::net::TcpStream::connect(server.local_addr())
            .await
            .expect("tcp");
        let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
        let mut tls = connector.connect(name, tcp).await.expect("handshake");
        tls.write_all(garbage).await.expect("write");
        // Incomplete packets make the server wait for the rest: end the stream.
        let _ = tls.shutdown().await;
        let mut rest = Vec::new();
        let read = tokio::time::timeout(GUARD, tls.read_to_end(&mut rest)).await;
        assert!(read.is_ok(), "server closes the connection");
        assert!(rest.is_empty(), "no answer to garbage: {rest:?}");
    }
    // Plain TCP garbage instead of a TLS ClientHello.
    let mut tcp = tokio::net::TcpStream::connect(server.local_addr())
        .await
        .expect("tcp");
    tcp.write_all(b"MQTT please\r\n").await.expect("write");
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(GUARD, tcp.read_to_end(&mut rest))
        .await
        .expect("closed");

    // Still serving.
    let mut device = connect(&server, &pki, "sensor-1", &pki.device("sensor-1")).await;
    device.subscribe("cb/v1/sensor-1/#", QoS::AtLeastOnce).await;
    device
        .publish(TELEMETRY, QoS::AtLeastOnce, b"ok".to_vec())
        .await;
    assert_eq!(&device.next_publish().await.payload[..], b"ok");
    server.shutdown().await;
}

#[tokio::test]
async fn a_silent_client_is_closed_after_the_connect_timeout() {
    let pki = Pki::new();
    let mut config = pki.config();
    config.connect_timeout = std::time::Duration::from_millis(300);
    let server = MqttServer::bind(
        config,
        Arc::new(CertboundAcl::new().with_broker("certbound-broker")),
    )
    .await
    .expect("server");
    let connector =
        tokio_rustls::TlsConnector::from(client_tls(&pki.chain_pem, Some(&pki.device("sensor-1"))));
    let tcp = tokio::net::TcpStream::connect(server.local_addr())
        .await
        .expect("tcp");
    let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
    let mut tls = connector.connect(name, tcp).await.expect("handshake");
    let started = std::time::Instant::now();
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(GUARD, tls.read_to_end(&mut rest))
        .await
        .expect("server closes");
    assert!(rest.is_empty());
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    server.shutdown().await;
}

#[tokio::test]
async fn a_subscriber_that_stops_reading_is_dropped_and_others_keep_getting_messages() {
    use bytes::BytesMut;
    use rumqttc::mqttbytes::v4::Packet;

    let pki = Pki::new();
    let mut config = pki.config();
    config.outgoing_queue = 16;
    let server = MqttServer::bind(
        config,
        Arc::new(CertboundAcl::new().with_broker("certbound-broker")),
    )
    .await
    .expect("server");

    // A raw client that subscribes at QoS 1 and then never acknowledges or reads.
    let connector =
        tokio_rustls::TlsConnector::from(client_tls(&pki.chain_pem, Some(&pki.service("stuck"))));
    let tcp = tokio::net::TcpStream::connect(server.local_addr())
        .await
        .expect("tcp");
    let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
    let mut stuck = connector.connect(name, tcp).await.expect("handshake");
    let mut out = BytesMut::new();
    Packet::Connect(rumqttc::Connect::new("stuck"))
        .write(&mut out, usize::MAX)
        .expect("encode");
    // Packet ids are never 0 (§2.3.1); rumqttc's constructor leaves it 0.
    let mut subscribe = rumqttc::Subscribe::new("cb/v1/+/telemetry", QoS::AtLeastOnce);
    subscribe.pkid = 1;
    Packet::Subscribe(subscribe)
        .write(&mut out, usize::MAX)
        .expect("encode");
    stuck.write_all(&out).await.expect("write");
    let mut input = BytesMut::new();
    let mut acks = 0;
    while acks < 2 {
        match Packet::read(&mut input, 1 << 16) {
            Ok(Packet::ConnAck(_) | Packet::SubAck(_)) => acks += 1,
            Ok(other) => panic!("unexpected {other:?}"),
            Err(_) => {
                let n = tokio::time::timeout(GUARD, stuck.read_buf(&mut input))
                    .await
                    .expect("ack")
                    .expect("read");
                assert!(n > 0, "closed early");
            }
        }
    }

    let mut healthy = connect(&server, &pki, "broker", &pki.service("certbound-broker")).await;
    healthy
        .subscribe("cb/v1/+/telemetry", QoS::AtLeastOnce)
        .await;
    let device = connect(&server, &pki, "sensor-1", &pki.device("sensor-1")).await;
    // More than the 256 messages in flight plus the 16 queued, in steps the
    // healthy subscriber keeps up with.
    const N: usize = 320;
    for step in 0..N / 8 {
        let batch = step * 8..(step + 1) * 8;
        for i in batch.clone() {
            device
                .publish(TELEMETRY, QoS::AtLeastOnce, format!("{i}"))
                .await;
        }
        for i in batch {
            let got = healthy.next_publish().await;
            assert_eq!(got.payload, format!("{i}").into_bytes());
        }
    }
    assert_eq!(server.stats().slow_client_drops, 1);
    drop(stuck);
    server.shutdown().await;
}

#[tokio::test]
async fn bad_configuration_says_what_to_fix() {
    let pki = Pki::new();
    let mut config = pki.config();
    config.server_key_pem = "not a key".into();
    let err = MqttServer::bind(
        config,
        Arc::new(CertboundAcl::new().with_broker("certbound-broker")),
    )
    .await
    .expect_err("bad key");
    assert!(matches!(err, MqttError::ServerKey(_)), "{err}");
    assert!(err.to_string().contains("PKCS#8"), "{err}");

    let mut config = pki.config();
    config.client_ca_pem = String::new();
    let err = MqttServer::bind(
        config,
        Arc::new(CertboundAcl::new().with_broker("certbound-broker")),
    )
    .await
    .expect_err("no CA");
    assert!(matches!(err, MqttError::ClientCa(_)), "{err}");

    let taken = pki.start().await;
    let mut config = pki.config();
    config.listen = taken.local_addr();
    let err = MqttServer::bind(
        config,
        Arc::new(CertboundAcl::new().with_broker("certbound-broker")),
    )
    .await
    .expect_err("port in use");
    assert!(matches!(err, MqttError::Bind { .. }), "{err}");
    taken.shutdown().await;
}
