//! Restarts: the MQTT server restarts mid-stream, and the agent process is
//! killed with messages spooled. Nothing the agent accepted is lost.

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::*;
use crate::gate::Mode;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_server_restart_mid_stream_loses_nothing_acknowledged() {
    let mut world = World::new(3600).await;
    let mut backend = world.subscriber().await;
    let (_, config) = world.agent_config("restart", "udp:127.0.0.1:0", "");
    let agent = world.agent_now(&config).await;

    // From here on, the server delivers nothing but telemetry to subscribers.
    until_status(&agent, "token obtained", |s| s.telemetry_cti.is_some()).await;
    let delivered_before = world.delivered();

    // Firmware keeps producing throughout: one reading every 10 ms.
    const TOTAL: usize = 150;
    let accepted: Arc<Mutex<Vec<u64>>> = Arc::default();
    let (count_tx, mut count) = tokio::sync::watch::channel(0usize);
    let producer = {
        let intake = agent.intake().clone();
        let accepted = accepted.clone();
        tokio::spawn(async move {
            for i in 0..TOTAL {
                let seq = intake
                    .submit(format!("reading {i}").into_bytes())
                    .await
                    .expect("spool has room");
                let n = {
                    let mut a = accepted.lock().unwrap();
                    a.push(seq);
                    a.len()
                };
                count_tx.send_replace(n);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };

    // Mid-stream: some messages acknowledged, more in flight.
    until_status(&agent, "first messages acknowledged", |s| s.acked >= 30).await;
    // A server without persistent sessions loses what is queued to
    // subscribers when it shuts down: that is the server's durability, not
    // the agent's. So hold the agent's traffic both ways (PUBACKs held here
    // make the agent send those messages again: duplicates, never loss) and
    // let the backend receive everything the server has routed so far,
    // which includes every message whose PUBACK reached the agent.
    world.gate.stall().await;
    let routed = world.delivered() - delivered_before;
    backend.wait_received(routed).await;

    // The server goes down under the agent's open connection.
    world.stop_broker().await;
    world.gate.set(Mode::Closed);
    until_status(&agent, "the agent notices", |s| !s.connected).await;
    // Input keeps being accepted while offline.
    let offline_from = *count.borrow();
    within(
        "messages accepted while offline",
        count.wait_for(|n| *n >= offline_from + 20),
    )
    .await
    .unwrap();

    // Same data directory, same port; the backend resubscribes first.
    world.start_broker().await;
    backend.wait_subscribed(2).await;
    world.gate.set(Mode::Open);

    within("the producer finishes", producer).await.unwrap();
    let all = accepted.lock().unwrap().clone();
    assert_eq!(all.len(), TOTAL);
    let received = backend.until_all(&world, &all).await;
    let status = until_status(&agent, "the spool drains", |s| s.spooled == 0).await;
    assert!(status.connected);
    assert!(spool_files(&config.spool.dir).is_empty());
    // Resent messages keep their seq: within one connection seqs never go back.
    let seqs: Vec<u64> = received.iter().map(|o| o.payload.seq).collect();
    assert!(
        seqs.iter().all(|s| all.contains(s)),
        "only accepted messages arrive"
    );
    agent.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_agent_leaves_its_spool_to_the_next_one_with_the_same_seqs() {
    let world = World::new(3600).await;
    let mut backend = world.subscriber().await;
    let (path, config) = world.agent_config("killed", "stdin", "");
    // The agent cannot reach the server: everything stays spooled.
    world.gate.set(Mode::Closed);
    let mut child = Command::new(env!("CARGO_BIN_EXE_certbound-agent"))
        .arg("--config")
        .arg(&path)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start certbound-agent");
    let mut stdin = child.stdin.take().expect("stdin");
    for i in 0..5 {
        writeln!(stdin, "before crash {i}").unwrap();
    }
    stdin.flush().unwrap();
    let spooled = within("five messages spooled", async {
        loop {
            let files = spool_files(&config.spool.dir);
            if files.len() == 5 {
                return files;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    // No goodbye: SIGKILL.
    child.kill().unwrap();
    let _ = child.wait();
    drop(stdin);

    // The next agent on the same spool sends them first, with their seqs,
    // and continues above them.
    world.gate.set(Mode::Open);
    let (_, config2) = world.agent_config(
        "next",
        "udp:127.0.0.1:0",
        &format!(
            "[spool]\ndir = \"{}\"\nflush_on_exit_secs = 2\n",
            config.spool.dir.display()
        ),
    );
    let agent = world.agent_now(&config2).await;
    let firmware = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let to = agent.source_addr().unwrap();
    let new_seq = accepted(&send_udp(&firmware, to, b"after restart").await);
    assert!(
        new_seq > *spooled.last().unwrap(),
        "a restart never reuses a seq"
    );

    let mut expected = spooled.clone();
    expected.push(new_seq);
    let received = backend.until_all(&world, &expected).await;
    let seqs: Vec<u64> = received.iter().map(|o| o.payload.seq).collect();
    assert_eq!(
        seqs, expected,
        "old messages first, in order, then the new one"
    );
    for (i, o) in received.iter().take(5).enumerate() {
        assert_eq!(o.payload.data, format!("before crash {i}").into_bytes());
    }
    until_status(&agent, "the spool drains", |s| s.spooled == 0).await;
    agent.shutdown().await.unwrap();
}
