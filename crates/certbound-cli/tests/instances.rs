//! Two instances of one service on one PostgreSQL store, each with its own
//! data directory and its own keys, with the real `certbound` binary:
//! `init --store`, `init --join`, `ca sign-instance`, `ca install`, then
//! both served. No private key is copied between the directories; each
//! instance's JWKS and COSE key set show both instances' keys; each trusts
//! the devices the other's issuing CA certified; a rotation on one reaches
//! verifiers through the other.
//!
//! Skips loudly without PostgreSQL (a failure under CERTBOUND_REQUIRE_ALL=1).

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use certbound_broker::store::testing::fresh_postgres;
use certbound_verify::KeySet;
use certbound_verify::http::{HttpsFetcher, client_tls_config};
use common::*;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn fails_with(args: &[&str], needle: &str) {
    let out = certbound(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "certbound {args:?} succeeded");
    assert!(err.contains(needle), "certbound {args:?}: {err}");
}

async fn key_sets(fetcher: &HttpsFetcher, base: &str) -> (KeySet, KeySet) {
    let jwks = fetcher
        .get(&format!("{base}/.well-known/jwks.json"), "application/json")
        .await
        .unwrap();
    let cose = fetcher
        .get(&format!("{base}/.well-known/cose-keys"), "*/*")
        .await
        .unwrap();
    (
        KeySet::from_jwks(std::str::from_utf8(&jwks.body).unwrap()).unwrap(),
        KeySet::from_cose_key_set(&cose.body).unwrap(),
    )
}

fn kid_files(dir: &Path) -> Vec<String> {
    let mut kids: Vec<String> = std::fs::read_dir(dir.join("keys"))
        .unwrap()
        .filter_map(|e| {
            e.unwrap()
                .file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".key.pem"))
                .map(str::to_string)
        })
        .collect();
    kids.sort();
    kids
}

fn provision(dir: &Path, id: &str, out: &Path) {
    ok(&[
        "device",
        "provision",
        "--dir",
        s(dir),
        "--id",
        id,
        "--group",
        "sensors",
        "--out",
        s(out),
    ]);
}

fn token(dir: &Path, serve: &Serve, devices: &Path, id: &str) -> String {
    let out = certbound(&[
        "token",
        "request",
        "--dir",
        s(dir),
        "--broker",
        &serve.addr,
        "--device-key",
        s(&devices.join(format!("{id}.key.pem"))),
        "--device-cert",
        s(&devices.join(format!("{id}.cert.pem"))),
        "--aud",
        API,
    ]);
    assert!(
        out.status.success(),
        "token for {id}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn inspect(jwks_file: &Path, token: &str) -> String {
    ok(&[
        "token",
        "inspect",
        "--jwks",
        s(jwks_file),
        "--aud",
        API,
        "--iss",
        ISSUER,
        "--json",
        token,
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joined_instance_has_keys_of_its_own_and_both_act_as_one_service() {
    let Some(url) = fresh_postgres().await else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    let b = tmp.path().join("b");
    let devices = tmp.path().join("devices");

    ok(&[
        "init",
        "--dir",
        s(&a),
        "--issuer-id",
        ISSUER,
        "--store",
        &url,
    ]);
    // One store, one service: a second first instance is refused.
    fails_with(
        &[
            "init",
            "--dir",
            s(&tmp.path().join("c")),
            "--issuer-id",
            ISSUER,
            "--store",
            &url,
        ],
        "--join",
    );
    let joined = ok(&[
        "init",
        "--dir",
        s(&b),
        "--join",
        "--store",
        &url,
        "--name",
        "b",
        "--key-grace",
        "0",
    ]);
    assert!(joined.contains(ISSUER), "{joined}");
    // Not servable before its issuing CA is installed.
    fails_with(
        &[
            "serve",
            "--dir",
            s(&b),
            "--coap-listen",
            "127.0.0.1:0",
            "--mqtt-listen",
            "127.0.0.1:0",
            "--https-listen",
            "127.0.0.1:0",
        ],
        "has not finished joining",
    );
    let csr = b.join("pki/issuing-ca.csr.pem");
    let cert = tmp.path().join("b-issuing-ca.pem");
    ok(&[
        "ca",
        "sign-instance",
        "--dir",
        s(&a),
        s(&csr),
        "--out",
        s(&cert),
    ]);
    ok(&["ca", "install", "--dir", s(&b), s(&cert)]);

    // No private key crossed: B holds no root key and only its own signing key.
    assert!(!b.join("pki/root-ca.key.pem").exists());
    let (a_kids, b_kids) = (kid_files(&a), kid_files(&b));
    assert_eq!((a_kids.len(), b_kids.len()), (1, 1));
    assert_ne!(a_kids, b_kids);
    assert_ne!(
        std::fs::read(a.join("pki/issuing-ca.pem")).unwrap(),
        std::fs::read(b.join("pki/issuing-ca.pem")).unwrap()
    );

    // The registry is shared: API and group made through A, devices certified
    // by A's issuing CA and by B's.
    ok(&[
        "api",
        "create",
        "--dir",
        s(&a),
        "--id",
        API,
        "--scopes",
        "telemetry:write",
        "--ttl",
        "600",
    ]);
    ok(&[
        "group",
        "create",
        "--dir",
        s(&a),
        "--name",
        "sensors",
        "--grant",
        &format!("{API}=telemetry:write"),
    ]);
    provision(&a, "dev-a", &devices);
    provision(&b, "dev-b", &devices);

    let sa = Serve::start(&a);
    let sb = Serve::start(&b);
    let root = std::fs::read_to_string(a.join("pki/root-ca.pem")).unwrap();
    let fetcher = HttpsFetcher::new(
        client_tls_config(&root, None).unwrap(),
        Duration::from_secs(10),
        1 << 20,
    );

    // Every instance publishes both instances' keys, in both formats.
    for base in [&sa.https, &sb.https] {
        let (jwks, cose) = key_sets(&fetcher, base).await;
        for kid in a_kids.iter().chain(&b_kids) {
            assert!(jwks.get(kid).is_some(), "{base}: JWKS lacks {kid}");
            assert!(cose.get(kid).is_some(), "{base}: COSE key set lacks {kid}");
        }
    }

    // Each instance serves the other's devices, signing with its own key; the
    // other instance's key set verifies the token.
    let jwks_a = tmp.path().join("jwks-a.json");
    let body = fetcher
        .get(
            &format!("{}/.well-known/jwks.json", sa.https),
            "application/json",
        )
        .await
        .unwrap()
        .body;
    std::fs::write(&jwks_a, body).unwrap();
    let from_b = token(&b, &sb, &devices, "dev-a");
    let report: serde_json::Value = serde_json::from_str(&inspect(&jwks_a, &from_b)).unwrap();
    assert_eq!(report["valid"], true, "{report}");
    assert_eq!(report["kid"], b_kids[0].as_str(), "{report}");
    let from_a = token(&a, &sa, &devices, "dev-b");
    let report: serde_json::Value = serde_json::from_str(&inspect(&jwks_a, &from_a)).unwrap();
    assert_eq!(report["valid"], true, "{report}");
    assert_eq!(report["kid"], a_kids[0].as_str(), "{report}");

    // A rotation on B reaches verifiers through A; A's own key is untouched.
    let rotated: serde_json::Value = serde_json::from_str(&ok(&[
        "keys",
        "rotate",
        "--dir",
        s(&b),
        "--grace",
        "0",
        "--json",
    ]))
    .unwrap();
    let new_kid = rotated["new_kid"].as_str().unwrap().to_string();
    let since = Instant::now();
    loop {
        let (jwks, cose) = key_sets(&fetcher, &sa.https).await;
        if jwks.get(&new_kid).is_some() && cose.get(&new_kid).is_some() {
            eprintln!("B's rotation published by A after {:?}", since.elapsed());
            break;
        }
        assert!(
            since.elapsed() < Duration::from_secs(10),
            "A does not publish B's new key {new_kid}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let list: serde_json::Value =
        serde_json::from_str(&ok(&["keys", "list", "--dir", s(&a), "--json"])).unwrap();
    let a_row = list
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kid"] == a_kids[0].as_str())
        .unwrap();
    assert_eq!(a_row["retire_after"], serde_json::Value::Null, "{list}");
    assert_eq!(a_row["held_here"], true, "{list}");
    let b_old = list
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kid"] == b_kids[0].as_str())
        .unwrap();
    assert_eq!(b_old["held_here"], false, "{list}");
    assert!(
        b_old["retire_after"].is_u64(),
        "B's old key retires: {list}"
    );
    drop((sa, sb));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joining_needs_a_service_and_a_request_signed_by_its_root() {
    let Some(url) = fresh_postgres().await else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let b = tmp.path().join("b");
    // A database without certbound's schema: migrate it first.
    fails_with(
        &["init", "--dir", s(&b), "--join", "--store", &url],
        "certbound migrate",
    );
    // An up-to-date store with no service yet: make the first instance first.
    let (store, _) = certbound_broker::store::Store::connect_and_migrate(&url)
        .await
        .unwrap();
    store.close().await;
    fails_with(
        &["init", "--dir", s(&b), "--join", "--store", &url],
        "serves no service yet",
    );
    assert!(!b.join("certbound.toml").exists());
    // --join without --store is a usage error.
    fails_with(&["init", "--dir", s(&b), "--join"], "--store");

    let a = tmp.path().join("a");
    ok(&[
        "init",
        "--dir",
        s(&a),
        "--issuer-id",
        ISSUER,
        "--store",
        &url,
    ]);
    ok(&["init", "--dir", s(&b), "--join", "--store", &url]);
    // A certificate from another service's root is refused by `ca install`.
    let other = tmp.path().join("other");
    ok(&["init", "--dir", s(&other), "--issuer-id", ISSUER]);
    let csr = b.join("pki/issuing-ca.csr.pem");
    let wrong = tmp.path().join("wrong.pem");
    ok(&[
        "ca",
        "sign-instance",
        "--dir",
        s(&other),
        s(&csr),
        "--out",
        s(&wrong),
    ]);
    fails_with(
        &["ca", "install", "--dir", s(&b), s(&wrong)],
        "does not verify",
    );
    // A tampered request is refused by `ca sign-instance`.
    let text = std::fs::read_to_string(&csr).unwrap();
    let tampered = tmp.path().join("tampered.pem");
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let mid = lines.len() / 2;
    let flipped: String = lines[mid]
        .chars()
        .enumerate()
        .map(|(i, c)| {
            if i == 10 {
                if c == 'A' { 'B' } else { 'A' }
            } else {
                c
            }
        })
        .collect();
    lines[mid] = flipped;
    std::fs::write(&tampered, lines.join("\n") + "\n").unwrap();
    let out = certbound(&["ca", "sign-instance", "--dir", s(&a), s(&tampered)]);
    assert!(!out.status.success());
    // The right signature installs.
    let cert = tmp.path().join("b.pem");
    ok(&[
        "ca",
        "sign-instance",
        "--dir",
        s(&a),
        s(&csr),
        "--out",
        s(&cert),
    ]);
    ok(&["ca", "install", "--dir", s(&b), s(&cert)]);
    // Installing twice is refused (nothing pending any more).
    fails_with(
        &["ca", "install", "--dir", s(&b), s(&cert)],
        "nothing to finish",
    );
}
