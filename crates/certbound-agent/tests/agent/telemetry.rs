//! Telemetry from a UDP source (in process) and from stdin (the binary)
//! reaches a backend, verifiable, with strictly increasing seqs.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_telemetry_reaches_the_backend_verified_and_in_order() {
    let world = World::new(3600).await;
    let mut backend = world.subscriber().await;
    let (_, config) = world.agent_config("udp", "udp:127.0.0.1:0", "");
    let agent = world.agent_now(&config).await;
    let to = agent.source_addr().expect("bound UDP source");
    let firmware = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();

    let mut seqs = Vec::new();
    for i in 0..25 {
        let answer = send_udp(&firmware, to, format!("temp={i}").as_bytes()).await;
        seqs.push(accepted(&answer));
    }
    let received = backend.until_all(&world, &seqs).await;
    assert_eq!(
        received.len(),
        seqs.len(),
        "nothing sent twice without a failure"
    );
    let got: Vec<u64> = received.iter().map(|o| o.payload.seq).collect();
    assert_eq!(got, seqs, "every accepted message, in order");
    assert!(got.windows(2).all(|w| w[0] < w[1]), "strictly increasing");
    for (i, o) in received.iter().enumerate() {
        assert_eq!(o.payload.data, format!("temp={i}").into_bytes());
        assert!(o.token.has_scope("telemetry:write"));
    }
    // Everything acknowledged by the server has left the spool.
    until_status(&agent, "the spool drains", |s| {
        s.spooled == 0 && s.acked == 25
    })
    .await;
    assert!(spool_files(&config.spool.dir).is_empty());
    agent.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_reads_stdin_and_flushes_before_exiting_at_eof() {
    let world = World::new(3600).await;
    let mut backend = world.subscriber().await;
    let (path, config) = world.agent_config("stdin", "stdin", "");
    let mut child = Command::new(env!("CARGO_BIN_EXE_certbound-agent"))
        .arg("--config")
        .arg(&path)
        .args(["--log-format", "json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start certbound-agent");
    let mut stdin = child.stdin.take().expect("stdin");
    for i in 0..10 {
        writeln!(stdin, "reading {i}").unwrap();
    }
    writeln!(stdin).unwrap(); // an empty line is not a message
    drop(stdin); // EOF: the agent sends what it has, then exits

    let mut data = Vec::new();
    let mut seqs = Vec::new();
    while data.len() < 10 {
        let o = open(&world, &backend.next().await);
        seqs.push(o.payload.seq);
        data.push(String::from_utf8(o.payload.data).unwrap());
    }
    let expected: Vec<String> = (0..10).map(|i| format!("reading {i}")).collect();
    assert_eq!(data, expected);
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "strictly increasing: {seqs:?}"
    );

    let output = within("the agent exits after stdin EOF", async {
        tokio::task::spawn_blocking(move || child.wait_with_output())
            .await
            .unwrap()
            .unwrap()
    })
    .await;
    let logs = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "exit status {:?}\n{logs}",
        output.status
    );
    // JSON logs, one object per line.
    let first = logs.lines().next().unwrap_or_default();
    assert!(
        first.starts_with('{') && first.contains("\"level\""),
        "{first}"
    );
    assert!(logs.contains("everything was sent"), "{logs}");
    assert!(spool_files(&config.spool.dir).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_reads_a_unix_socket_and_stops_cleanly_on_sigterm() {
    let world = World::new(3600).await;
    let mut backend = world.subscriber().await;
    let socket = world.tmp.path().join("telemetry.sock");
    let (path, config) = world.agent_config("unix", &format!("unix:{}", socket.display()), "");
    let child = Command::new(env!("CARGO_BIN_EXE_certbound-agent"))
        .arg("--config")
        .arg(&path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start certbound-agent");

    // Firmware binds its own socket so that it can read the answers.
    let firmware = tokio::net::UnixDatagram::bind(world.tmp.path().join("fw.sock")).unwrap();
    within("the agent binds its socket", async {
        while !socket.exists() {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
    let mut seqs = Vec::new();
    for i in 0..3 {
        firmware
            .send_to(format!("unix {i}").as_bytes(), &socket)
            .await
            .unwrap();
        let mut buf = [0u8; 256];
        let n = within("the agent answers", firmware.recv(&mut buf))
            .await
            .unwrap();
        seqs.push(accepted(String::from_utf8_lossy(&buf[..n]).trim()));
    }
    let received = backend.until_all(&world, &seqs).await;
    let data: Vec<Vec<u8>> = received.iter().map(|o| o.payload.data.clone()).collect();
    assert_eq!(
        data,
        [b"unix 0".to_vec(), b"unix 1".to_vec(), b"unix 2".to_vec()]
    );

    // SIGTERM: a clean exit that removes the socket.
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let output = within("the agent exits after SIGTERM", async {
        tokio::task::spawn_blocking(move || child.wait_with_output())
            .await
            .unwrap()
            .unwrap()
    })
    .await;
    let logs = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{:?}\n{logs}", output.status);
    assert!(logs.contains("shutdown requested"), "{logs}");
    assert!(!socket.exists(), "the socket file is removed");
    assert!(spool_files(&config.spool.dir).is_empty());
}
