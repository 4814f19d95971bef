//! Interoperability: the libcoap `coap-client` (Debian package libcoap3-bin)
//! against our Server. Skipped loudly when the binary is missing, unless
//! CERTBOUND_REQUIRE_ALL=1 is set.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use certbound_coap::{Server, ServerConfig};
use common::{CORE_LINKS, TestHandler, big_body};

/// Names the libcoap client is installed under, depending on the TLS flavour.
const NAMES: [&str; 4] = [
    "coap-client",
    "coap-client-notls",
    "coap-client-openssl",
    "coap-client-gnutls",
];
/// Hard limit for one coap-client run; it also gets `-B 5`.
const KILL_AFTER: Duration = Duration::from_secs(30);

fn find_coap_client() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| NAMES.iter().map(move |name| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

/// The binary, or `None` after printing a loud skip notice (panics when
/// CERTBOUND_REQUIRE_ALL=1).
fn coap_client_or_skip() -> Option<PathBuf> {
    let found = find_coap_client();
    if found.is_none() {
        if std::env::var("CERTBOUND_REQUIRE_ALL").as_deref() == Ok("1") {
            panic!("coap-client (libcoap3-bin) not installed and CERTBOUND_REQUIRE_ALL=1");
        }
        // Written to the real stderr (not eprintln!, which the test harness captures).
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            b"\n*** SKIPPED: coap-client (libcoap3-bin) not installed ***\n",
        );
    }
    found
}

/// Runs coap-client with `-B 5`, killing it if it hangs.
async fn run(binary: PathBuf, args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        let mut child = Command::new(&binary)
            .arg("-B")
            .arg("5")
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn coap-client");
        let started = Instant::now();
        loop {
            match child.try_wait().expect("poll coap-client") {
                Some(_) => break,
                None if started.elapsed() > KILL_AFTER => {
                    let _ = child.kill();
                    break;
                }
                None => std::thread::sleep(Duration::from_millis(20)),
            }
        }
        let output = child
            .wait_with_output()
            .expect("collect coap-client output");
        assert!(
            started.elapsed() <= KILL_AFTER + Duration::from_secs(1),
            "coap-client hung and was killed"
        );
        output
    })
    .await
    .expect("coap-client runner")
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "coap-client failed: {:?}\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .trim_end()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn libcoap_client_against_our_server() {
    let Some(binary) = coap_client_or_skip() else {
        return;
    };
    let handler = TestHandler::new(1);
    let server = Server::bind(
        "127.0.0.1:0".parse().expect("addr"),
        Arc::clone(&handler),
        ServerConfig::default(),
    )
    .await
    .expect("bind");
    let base = format!("coap://127.0.0.1:{}", server.local_addr().port());

    // Discovery.
    let out = run(
        binary.clone(),
        vec![
            "-m".into(),
            "get".into(),
            format!("{base}/.well-known/core"),
        ],
    )
    .await;
    assert_eq!(stdout(&out), CORE_LINKS);

    // POST with a text payload and Content-Format 60; the echo handler returns it.
    let args = vec![
        "-m".into(),
        "post".into(),
        "-e".into(),
        "certbound-says-hi".into(),
        "-t".into(),
        "60".into(),
        format!("{base}/echo"),
    ];
    let out = run(binary.clone(), args).await;
    assert_eq!(stdout(&out), "certbound-says-hi");

    // A 5000-byte response fetched with 64-byte Block2 blocks.
    let out = run(
        binary.clone(),
        vec![
            "-m".into(),
            "get".into(),
            "-b".into(),
            "64".into(),
            format!("{base}/big"),
        ],
    )
    .await;
    assert_eq!(stdout(&out).as_bytes(), big_body().as_slice());
    let stats = server.stats();
    assert!(
        stats.received >= 3 + 5000 / 64,
        "fetched block by block: {stats:?}"
    );
    // Every coap-client run is a new source port, so an unverified address:
    // the discovery and the 5000-byte body (more than 3x the request) were
    // answered with 4.01 + Echo first, and libcoap repeated them with the Echo
    // (RFC 9175). Later blocks come from the Block2 cache: 2 + 1 + 2 calls.
    assert_eq!(
        handler.calls(),
        5,
        "one repeat per Echo challenge, later blocks from the Block2 cache"
    );
    assert_eq!(stats.echo_challenges, 2, "{stats:?}");
    assert_eq!(
        stats.echo_verified, 2,
        "libcoap repeats with the Echo: {stats:?}"
    );

    // A 3000-byte request body sent by libcoap with 256-byte Block1 blocks.
    let body: String = "0123456789".repeat(300);
    let args = vec![
        "-m".into(),
        "post".into(),
        "-b".into(),
        "256".into(),
        "-e".into(),
        body.clone(),
        "-t".into(),
        "0".into(),
        format!("{base}/echo"),
    ];
    let out = run(binary, args).await;
    assert_eq!(stdout(&out), body);
    assert_eq!(
        handler.calls(),
        6,
        "an echo of 3000 bytes is within 3x the upload"
    );
    let received = server.stats().received - stats.received;
    assert!(
        received >= 3000 / 256,
        "sent block by block: {received} datagrams"
    );
    server.shutdown().await;
}
