//! The Eclipse Paho MQTT 5 interoperability tests (`client_test5.py` of
//! github.com/eclipse/paho.mqtt.testing, a conformance suite we did not
//! write) against the embedded server, through mutual TLS.
//!
//! The suite is not vendored: `.ci/run` places a checkout at
//! `$CERTBOUND_PAHO_TESTING` (default `~/.cache/certbound/paho.mqtt.testing`).
//! The suite's client connects with the certificate of the service
//! `paho-interop`, whose policy (the authorizer below) allows every topic
//! the suite uses except its `test/nosubscribe` filter, which it expects to
//! be refused. docs/mqtt.md lists the results and why the cases that do
//! not pass are left out.
#![allow(missing_docs)]

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;

use certbound_mqtt::{Authorizer, CertboundAcl, Identity, MqttServer};
use common::Pki;

/// The suite's identity: everything but the topics it expects refused.
struct SuitePolicy;

impl Authorizer for SuitePolicy {
    async fn authenticate(&self, der: &[u8]) -> Result<Identity, String> {
        match CertboundAcl::identity_of(der)? {
            Identity::Service(name) if name == "paho-interop" => Ok(Identity::Service(name)),
            other => Err(format!("{other} is not the interop suite")),
        }
    }
    fn may_publish(&self, _: &Identity, topic: &str) -> bool {
        !topic.starts_with('$')
    }
    fn may_subscribe(&self, _: &Identity, filter: &str) -> bool {
        !filter.starts_with("test/nosubscribe")
    }
}

/// Cases that do not pass, and why (docs/mqtt.md, "Eclipse Paho
/// interoperability tests", says the same).
const LEFT_OUT: &[(&str, &str)] = &[(
    "test_subscribe_failure",
    "expects SUBACK 0x80 (unspecified error) for a refused filter; MQTT 5 \
     servers should say why, and certbound answers 0x87 (not authorized)",
)];

/// Cases whose client does not wait for what it depends on, so that they
/// fail now and then on a busy machine whatever the server: each gets one
/// rerun on its own.
const RACY: &[(&str, &str)] = &[
    (
        "test_subscribe_options",
        "waits for the first client's SUBACK twice, never for the second's, then \
         publishes: the second subscription may not be in place yet",
    ),
    (
        "test_request_response",
        "the same: the responder's subscription may not be in place when the \
         request is published",
    ),
];

fn suite_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("CERTBOUND_PAHO_TESTING")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .map(|h| PathBuf::from(h).join(".cache/certbound/paho.mqtt.testing"))
        })?;
    dir.join("interoperability/client_test5.py")
        .is_file()
        .then_some(dir)
}

fn python() -> Option<PathBuf> {
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    [
        std::env::var_os("CERTBOUND_PYTHON").map(PathBuf::from),
        Some(workspace.join(".venv/bin/python")),
        Some("python3".into()),
    ]
    .into_iter()
    .flatten()
    .find(|p| {
        Command::new(p)
            .args(["-c", "import ssl, asyncio"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

fn require(what: &str) {
    if std::env::var("CERTBOUND_REQUIRE_ALL").as_deref() == Ok("1") {
        panic!("{what} not available and CERTBOUND_REQUIRE_ALL=1");
    }
    eprintln!("*** SKIPPED: {what} not available ***");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_paho_mqtt5_interoperability_suite_passes_through_mutual_tls() {
    let Some(suite) = suite_dir() else {
        return require(
            "the Paho MQTT interoperability suite (set CERTBOUND_PAHO_TESTING to a checkout of \
             github.com/eclipse/paho.mqtt.testing; .ci/run fetches it)",
        );
    };
    let Some(python) = python() else {
        return require("python3");
    };
    let pki = Pki::new();
    let mut config = pki.config();
    // The suite expects Server Keep Alive 60 for a client asking for 120.
    config.max_keep_alive = 60;
    let server = MqttServer::bind(config, Arc::new(SuitePolicy))
        .await
        .expect("server");
    let bundle = pki.service("paho-interop");
    let dir = pki.tmp.path().to_path_buf();
    for (name, text) in [
        ("ca.pem", pki.chain_pem.as_str()),
        ("suite.pem", bundle.chain_pem.as_str()),
        ("suite.key", bundle.key_pkcs8_pem.as_str()),
    ] {
        std::fs::write(dir.join(name), text).expect("write");
    }
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/interop/paho_suite_tls.py");
    let port = server.local_addr().port().to_string();
    let run = move |cases: Vec<String>| {
        let (python, script, suite, port, dir) = (
            python.clone(),
            script.clone(),
            suite.clone(),
            port.clone(),
            dir.clone(),
        );
        async move {
            let output = tokio::task::spawn_blocking(move || {
                Command::new(python)
                    .env("PYTHONWARNINGS", "ignore")
                    .arg(script)
                    .arg(&suite)
                    .args(["localhost", &port])
                    .args([
                        dir.join("ca.pem"),
                        dir.join("suite.pem"),
                        dir.join("suite.key"),
                    ])
                    .args(cases)
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .output()
                    .expect("run the suite")
            });
            let output = tokio::time::timeout(std::time::Duration::from_secs(600), output)
                .await
                .expect("the suite finishes within 10 minutes")
                .expect("join");
            let mut results = BTreeMap::new();
            for line in String::from_utf8_lossy(&output.stdout).lines() {
                if let Some(rest) = line.strip_prefix("CERTBOUND-RESULT ")
                    && let Some((name, outcome)) = rest.split_once(' ')
                {
                    results.insert(name.to_owned(), outcome.to_owned());
                }
            }
            (
                results,
                String::from_utf8_lossy(&output.stderr).into_owned(),
            )
        }
    };
    let (mut results, mut report) = run(Vec::new()).await;
    assert!(
        results.len() >= 25,
        "the suite ran {} cases; its report:\n{report}",
        results.len()
    );
    // Some cases race with themselves (see RACY): one rerun each.
    for (name, _) in RACY {
        if results.get(*name).is_some_and(|o| o != "ok") {
            let (rerun, rerun_report) = run(vec![format!("Test.{name}")]).await;
            eprintln!("{name} failed once; rerun: {:?}", rerun.get(*name));
            report.push_str(&rerun_report);
            results.extend(rerun);
        }
    }
    let mut unexpected = Vec::new();
    for (name, outcome) in &results {
        let left_out = LEFT_OUT.iter().any(|(n, _)| n == name);
        match (outcome.as_str(), left_out) {
            ("ok", false) => {}
            ("ok", true) => unexpected.push(format!(
                "{name} passes now: update LEFT_OUT and docs/mqtt.md"
            )),
            (_, true) => {}
            (other, false) => unexpected.push(format!("{name}: {other}")),
        }
    }
    assert!(
        unexpected.is_empty(),
        "unexpected results: {unexpected:#?}\nsuite report:\n{report}"
    );
    eprintln!("Paho MQTT 5 interoperability suite: {results:#?}");
    server.shutdown().await;
}
