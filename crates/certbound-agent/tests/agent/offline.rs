//! Offline behaviour: a token that expired while offline is replaced before
//! anything is sent; a full spool refuses input with an answer.

use std::sync::Arc;
use std::time::Duration;

use certbound_agent::{Clock, OffsetClock};

use crate::common::*;
use crate::gate::Mode;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_that_expired_offline_is_renewed_before_sending() {
    // 30 s tokens (the shortest the registry allows); the agent's clock is
    // moved forward instead of waiting for them to expire.
    let mut world = World::new(30).await;
    let mut backend = world.subscriber().await;
    let clock = Arc::new(OffsetClock::new());
    let (_, config) = world.agent_config("expiry", "udp:127.0.0.1:0", "");
    let agent = world.agent(&config, clock.clone()).await;
    let firmware = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let to = agent.source_addr().unwrap();

    let first = accepted(&send_udp(&firmware, to, b"online").await);
    let before = open(&world, &backend.next().await);
    assert_eq!(before.payload.seq, first);
    let old_cti = before.payload.token_cti.clone();
    let old_exp = before.token.claims.exp.unwrap();
    until_status(&agent, "the first message acknowledged", |s| {
        s.spooled == 0 && s.acked == 1
    })
    .await;

    // Offline: the server goes away, and 40 s pass on the agent's clock.
    world.stop_broker().await;
    world.gate.set(Mode::Closed);
    until_status(&agent, "the agent notices", |s| !s.connected).await;
    clock.advance(Duration::from_secs(40));
    let second = accepted(&send_udp(&firmware, to, b"queued while offline").await);
    assert!(second > first);
    // Nothing can be sent, and the expired token is not used.
    until_status(&agent, "the message is spooled", |s| s.spooled == 1).await;

    world.start_broker().await;
    backend.wait_subscribed(2).await;
    world.gate.set(Mode::Open);

    let after = open(&world, &backend.next().await);
    assert_eq!(after.payload.seq, second);
    assert_eq!(after.payload.data, b"queued while offline");
    assert_ne!(
        after.payload.token_cti, old_cti,
        "a fresh token was attached"
    );
    assert_eq!(
        after.token.claims.cti.as_ref(),
        Some(&after.payload.token_cti)
    );
    // Unexpired for the backend now, and valid past the agent's (moved) clock
    // at which the old one had expired.
    assert!(after.token.claims.exp.unwrap() > now());
    assert!(old_exp < clock.now_secs());
    let status = until_status(&agent, "spool drains", |s| s.spooled == 0).await;
    assert_eq!(
        status.telemetry_cti.as_ref(),
        Some(&after.payload.token_cti)
    );
    assert!(status.token_requests >= 2);
    agent.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_spool_refuses_input_with_an_error_and_drops_nothing() {
    let world = World::new(3600).await;
    let mut backend = world.subscriber().await;
    world.gate.set(Mode::Closed);
    let (_, config) = world.agent_config(
        "full",
        "udp:127.0.0.1:0",
        "max_message_bytes = 64\n[spool]\ndir = \"spool-full\"\nmax_messages = 3\n",
    );
    let agent = world.agent_now(&config).await;
    let firmware = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let to = agent.source_addr().unwrap();

    let mut seqs = Vec::new();
    for i in 0..3 {
        seqs.push(accepted(
            &send_udp(&firmware, to, format!("m{i}").as_bytes()).await,
        ));
    }
    for i in 3..5 {
        let answer = send_udp(&firmware, to, format!("m{i}").as_bytes()).await;
        assert!(
            answer.starts_with("err ") && answer.contains("spool is full (3 messages"),
            "{answer}"
        );
    }
    let answer = send_udp(&firmware, to, &[b'x'; 65]).await;
    assert!(answer.contains("max_message_bytes"), "{answer}");
    // The in-process intake refuses the same way.
    assert!(agent.intake().submit(b"m5".to_vec()).await.is_err());
    let status = until_status(&agent, "refusals counted", |s| s.refused == 4).await;
    assert_eq!(status.spooled, 3);
    assert_eq!(spool_files(&config.spool.dir), seqs);

    // Back online: the three accepted messages go out, and there is room again.
    world.gate.set(Mode::Open);
    let received = backend.until_all(&world, &seqs).await;
    let data: Vec<Vec<u8>> = received.iter().map(|o| o.payload.data.clone()).collect();
    assert_eq!(data, [b"m0".to_vec(), b"m1".to_vec(), b"m2".to_vec()]);
    until_status(&agent, "spool drains", |s| s.spooled == 0).await;
    let more = accepted(&send_udp(&firmware, to, b"m6").await);
    assert!(more > seqs[2]);
    assert_eq!(open(&world, &backend.next().await).payload.seq, more);
    agent.shutdown().await.unwrap();
}
