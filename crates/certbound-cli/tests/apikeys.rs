//! API keys with the real binaries: `certbound apikey create/list/revoke`
//! against a running `certbound serve` (exchange at /oauth/token,
//! introspection, revocation, refusal), and the proof that the key is never
//! written anywhere but the create command's output: not in the debug/trace
//! JSON logs of serve, not in the database (SQLite file, WAL and shared
//! memory; every PostgreSQL table), not in the audit log (CLI and admin
//! API), not in any `list` output or admin API listing.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use certbound_e2e::https::HttpsClient;
use common::*;
use http::Method;

const REPORTS: &str = "https://reports.example.com";

/// Runs certbound with `args`, requiring success; stdout and stderr, which
/// are kept for the leak check.
fn run(outputs: &mut Vec<(String, String)>, args: &[&str]) -> String {
    let out = certbound(args);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        out.status.success(),
        "certbound {args:?} failed: {stdout}\n{stderr}"
    );
    outputs.push((
        format!("certbound {}", args.join(" ")),
        format!("{stdout}\n{stderr}"),
    ));
    stdout
}

/// `certbound serve` with trace-level JSON logs written to `log`.
struct LoggedServe {
    child: std::process::Child,
    https: String,
}

impl LoggedServe {
    fn start(dir: &Path, log: &Path) -> Self {
        use std::io::{BufRead, BufReader};
        let file = std::fs::File::create(log).unwrap();
        let mut child = Command::new(BIN)
            .args([
                "serve",
                "--dir",
                dir.to_str().unwrap(),
                "--coap-listen",
                "127.0.0.1:0",
                "--mqtt-listen",
                "127.0.0.1:0",
                "--https-listen",
                "127.0.0.1:0",
                "--log-format",
                "json",
                "-vvv",
            ])
            .env("RUST_LOG", "trace")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(file))
            .spawn()
            .expect("spawn certbound serve");
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        let https = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("https="))
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        LoggedServe { child, https }
    }

    fn stop(mut self) {
        let status = terminate(&mut self.child);
        assert!(status.success(), "serve exited with {status}");
    }
}

impl Drop for LoggedServe {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every row of every table of the PostgreSQL schema of `url`, as text.
async fn postgres_rows(url: &str) -> String {
    use sqlx::Connection as _;
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables \
         WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert!(tables.iter().any(|t| t == "api_keys"), "{tables:?}");
    let mut out = String::new();
    for t in tables {
        let rows: Vec<String> = sqlx::query_scalar(&format!("SELECT t::text FROM \"{t}\" t"))
            .fetch_all(&mut conn)
            .await
            .unwrap();
        out.push_str(&format!("== {t}\n{}\n", rows.join("\n")));
    }
    out
}

async fn api_key_never_leaks(store_url: Option<String>) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cb");
    let d = dir.to_str().unwrap();
    let mut outputs = Vec::new();
    let mut init = vec!["init", "--dir", d, "--issuer-id", ISSUER];
    if let Some(url) = &store_url {
        init.extend(["--store", url.as_str()]);
    }
    run(&mut outputs, &init);
    run(
        &mut outputs,
        &[
            "api",
            "create",
            "--dir",
            d,
            "--id",
            REPORTS,
            "--scopes",
            "reports:read reports:write",
            "--format",
            "jwt",
            "--ttl",
            "600",
        ],
    );
    let grant = format!("{REPORTS}=reports:read");
    let backend: serde_json::Value = serde_json::from_str(&run(
        &mut outputs,
        &[
            "client", "create", "--dir", d, "--name", "backend", "--grant", &grant, "--json",
        ],
    ))
    .unwrap();
    let client_id = backend["client_id"].as_str().unwrap().to_string();
    let secret = backend["client_secret"].as_str().unwrap().to_string();

    let log = tmp.path().join("serve.log");
    let serve = LoggedServe::start(&dir, &log);

    // Create: the key is printed once, here.
    let created = run(
        &mut outputs,
        &[
            "apikey",
            "create",
            "--dir",
            d,
            "--name",
            "nightly-export",
            "--grant",
            &grant,
            "--expires",
            "90d",
        ],
    );
    let key = created
        .lines()
        .find_map(|l| l.trim().strip_prefix("api_key:"))
        .map(|k| k.trim().to_string())
        .unwrap_or_else(|| panic!("no key in {created}"));
    let random = key.strip_prefix("cbk_").unwrap().to_string();
    assert_eq!(random.len(), 43, "{key}");
    // The create output is the one place the key is, which proves that the
    // search below finds it where it is.
    let (create_cmd, create_out) = outputs.pop().unwrap();
    assert!(
        create_out.contains(&key) && create_out.contains(&random),
        "{create_cmd}"
    );

    let https = HttpsClient::new(&serve.https, &dir, None).unwrap();
    let exchange = |k: String| {
        let https = &https;
        async move {
            let body = "grant_type=client_credentials&audience=https%3A%2F%2Freports.example.com";
            https
                .send(
                    Method::POST,
                    "/oauth/token",
                    &[
                        ("content-type", "application/x-www-form-urlencoded"),
                        ("x-api-key", k.as_str()),
                    ],
                    body.as_bytes().to_vec(),
                )
                .await
                .unwrap()
        }
    };
    // Exchange.
    let a = exchange(key.clone()).await;
    assert_eq!(a.status, 200, "{}", a.json);
    assert_eq!(a.json["scope"], "reports:read");
    let jwt = a.json["access_token"].as_str().unwrap().to_string();
    // Use: the backend introspects the key, and the token.
    let i = https
        .form(
            "/oauth/introspect",
            &[("token", &key)],
            Some((&client_id, &secret)),
        )
        .await
        .unwrap();
    assert_eq!(i.json["active"], true, "{}", i.json);
    assert_eq!(i.json["sub"], "cb_apikey:nightly-export");
    let i = https
        .form(
            "/oauth/introspect",
            &[("token", &jwt)],
            Some((&client_id, &secret)),
        )
        .await
        .unwrap();
    assert_eq!(i.json["active"], true, "{}", i.json);
    // Refused: a key that is not one.
    let wrong = format!("cbk_{}", "A".repeat(43));
    assert_eq!(exchange(wrong).await.status, 401);

    // Listings (text and JSON), before and after the revocation.
    let list = run(&mut outputs, &["apikey", "list", "--dir", d]);
    assert!(
        list.contains("nightly-export") && list.contains("active"),
        "{list}"
    );
    let listed: serde_json::Value = serde_json::from_str(&run(
        &mut outputs,
        &["apikey", "list", "--dir", d, "--json"],
    ))
    .unwrap();
    assert_eq!(listed[0]["name"], "nightly-export");
    assert!(listed[0]["last_used_at"].as_u64().is_some(), "{listed}");
    assert!(listed[0]["expires_at"].as_u64().is_some(), "{listed}");
    run(&mut outputs, &["export", "--dir", d]);

    // Revoke: the next use is refused, the token turns inactive.
    run(
        &mut outputs,
        &["apikey", "revoke", "--dir", d, "nightly-export"],
    );
    let refused = exchange(key.clone()).await;
    assert_eq!(refused.status, 401, "{}", refused.json);
    assert_eq!(refused.json["error"], "invalid_client");
    let i = https
        .form(
            "/oauth/introspect",
            &[("token", &key)],
            Some((&client_id, &secret)),
        )
        .await
        .unwrap();
    assert_eq!(i.json, serde_json::json!({ "active": false }));
    let i = https
        .form(
            "/oauth/introspect",
            &[("token", &jwt)],
            Some((&client_id, &secret)),
        )
        .await
        .unwrap();
    assert_eq!(i.json["active"], false);

    let list = run(&mut outputs, &["apikey", "list", "--dir", d, "--all"]);
    assert!(list.contains("revoked"), "{list}");
    run(
        &mut outputs,
        &["apikey", "list", "--dir", d, "--all", "--json"],
    );

    // The audit log: CLI and admin API.
    let audit = run(&mut outputs, &["audit", "tail", "--dir", d, "-n", "10000"]);
    assert!(
        audit.contains("apikey.created") && audit.contains("apikey:nightly-export"),
        "{audit}"
    );
    run(
        &mut outputs,
        &["audit", "tail", "--dir", d, "-n", "10000", "--json"],
    );
    let admin: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("admin-client.json")).unwrap())
            .unwrap();
    let admin_token = https
        .token_with_secret(
            admin["client_id"].as_str().unwrap(),
            admin["client_secret"].as_str().unwrap(),
            "urn:certbound:admin",
            None,
        )
        .await
        .unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    for path in ["/admin/v1/api-keys?all=true", "/admin/v1/audit?limit=1000"] {
        let a = https.get(path, Some(&admin_token)).await.unwrap();
        assert_eq!(a.status, 200, "{path}");
        outputs.push((
            format!("GET {path}"),
            String::from_utf8_lossy(&a.raw.body).to_string(),
        ));
    }
    serve.stop();

    // Where the key must not be.
    let logs = std::fs::read_to_string(&log).unwrap();
    assert!(
        logs.contains("nightly-export") && logs.lines().count() > 50,
        "the trace log was captured: {} lines",
        logs.lines().count()
    );
    let mut places: Vec<(String, Vec<u8>)> = vec![("serve logs".into(), logs.into_bytes())];
    for (what, text) in outputs {
        places.push((what, text.into_bytes()));
    }
    match &store_url {
        None => {
            for name in ["certbound.db", "certbound.db-wal", "certbound.db-shm"] {
                let path = dir.join(name);
                if let Ok(bytes) = std::fs::read(&path) {
                    places.push((name.into(), bytes));
                }
            }
            assert!(places.iter().any(|(n, _)| n == "certbound.db"));
        }
        Some(url) => places.push((
            "every PostgreSQL table".into(),
            postgres_rows(url).await.into_bytes(),
        )),
    }
    let found =
        |hay: &[u8], needle: &str| hay.windows(needle.len()).any(|w| w == needle.as_bytes());
    for (what, bytes) in &places {
        assert!(!found(bytes, &random), "the API key is in {what}");
    }
    // The search works: it finds the name where it must be.
    assert!(places.iter().any(|(_, b)| found(b, "nightly-export")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_key_never_leaks_sqlite() {
    api_key_never_leaks(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_key_never_leaks_postgres() {
    let Some(url) = certbound_broker::store::testing::fresh_postgres().await else {
        return;
    };
    api_key_never_leaks(Some(url)).await;
}
