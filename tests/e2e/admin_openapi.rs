//! The admin API's OpenAPI document checked by tools we did not write,
//! against a running broker: `openapi-spec-validator` validates the served
//! document, and `schemathesis` generates requests for every operation and
//! fails on any 5xx, undocumented status, wrong content type or answer that
//! does not fit its schema (`tests/interop/admin_openapi.py`).

use std::path::PathBuf;

use anyhow::Context as _;

use certbound_e2e::Fixture;
use certbound_e2e::https::HttpsClient;

use crate::admin_api::admin_token;

/// The Python interpreter with openapi-spec-validator and schemathesis, if any.
fn python_with_schemathesis() -> Option<PathBuf> {
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    [
        std::env::var_os("CERTBOUND_PYTHON").map(PathBuf::from),
        Some(workspace.join(".venv/bin/python")),
        Some("python3".into()),
    ]
    .into_iter()
    .flatten()
    .find(|p| {
        std::process::Command::new(p)
            .args([
                "-c",
                "import openapi_spec_validator, schemathesis, requests",
            ])
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("interop/admin_openapi.py")
}

fn ca_file(fx: &Fixture) -> PathBuf {
    certbound_registry::config::DataDir::new(fx.path())
        .pki()
        .chain()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn served_openapi_document_is_valid_openapi_3_1() -> anyhow::Result<()> {
    let Some(python) = python_with_schemathesis() else {
        certbound_e2e::mosquitto::skip_or_fail(
            "python with openapi-spec-validator (tests/interop/requirements.txt)",
        );
        return Ok(());
    };
    let fx = Fixture::new().await?;
    let (base, ca) = (fx.https_url(), ca_file(&fx));
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python)
            .arg(script())
            .args(["validate", &base])
            .arg(ca)
            .output()
    })
    .await??;
    fx.shutdown().await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "openapi-spec-validator refused the document:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("\"valid\": true"), "{stdout}");
    Ok(())
}

/// Generated cases per operation (`CERTBOUND_SCHEMATHESIS_EXAMPLES`,
/// default 25: under two minutes on a busy 2-core machine).
fn max_examples() -> u32 {
    std::env::var("CERTBOUND_SCHEMATHESIS_EXAMPLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(25)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_and_no_schema_violation() -> anyhow::Result<()> {
    let Some(python) = python_with_schemathesis() else {
        certbound_e2e::mosquitto::skip_or_fail(
            "python with schemathesis (tests/interop/requirements.txt)",
        );
        return Ok(());
    };
    let fx = Fixture::new().await?;
    let https = HttpsClient::new(&fx.https_url(), fx.path(), None)?;
    let token = admin_token(&fx, &https, Some("admin:read admin:write")).await?;
    let (base, ca) = (fx.https_url(), ca_file(&fx));
    let work = tempfile::tempdir()?;
    let workdir = work.path().to_path_buf();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python)
            .arg(script())
            .args(["fuzz", &base])
            .arg(ca)
            .arg(token)
            .arg(max_examples().to_string())
            .arg(workdir)
            .output()
    })
    .await??;
    fx.shutdown().await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found failures:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // It ran: the summary names the checks it made.
    let summary: Vec<&str> = stdout.lines().filter(|l| l.contains("passed")).collect();
    println!("schemathesis:\n{}", summary.join("\n"));
    assert!(stdout.contains("response_schema_conformance"), "{stdout}");
    Ok(())
}

/// Every operation says what it answers: a schema for its success answer,
/// 401 and 403 when it needs a token, and the body errors (400, 413, 415,
/// 422) when it takes JSON. Each `Error` is the JSON error shape.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_documents_its_answers_and_errors() -> anyhow::Result<()> {
    let fx = Fixture::new().await?;
    let https = HttpsClient::new(&fx.https_url(), fx.path(), None)?;
    let doc = https.get("/admin/v1/openapi.json", None).await?;
    fx.shutdown().await;
    let paths = doc.json["paths"].as_object().context("paths")?;
    let mut problems = Vec::new();
    for (path, ops) in paths {
        for (method, op) in ops.as_object().context("ops")? {
            if matches!(method.as_str(), "parameters" | "summary" | "description") {
                continue;
            }
            let responses = op["responses"].as_object().context("responses")?;
            let success = responses
                .iter()
                .find(|(code, _)| code.starts_with('2'))
                .map(|(_, r)| r);
            let has_schema = success
                .and_then(|r| r["content"].as_object())
                .is_some_and(|c| {
                    c.values()
                        .all(|m| m["schema"].as_object().is_some_and(|s| !s.is_empty()))
                });
            if !has_schema {
                problems.push(format!("{method} {path}: no schema for its success answer"));
            }
            let secured = op["security"].as_array().is_none_or(|s| !s.is_empty());
            let mut needed: Vec<&str> = Vec::new();
            if secured {
                needed.extend(["401", "403"]);
            }
            if op["requestBody"]["content"]["application/json"].is_object() {
                needed.extend(["400", "413", "415", "422"]);
            }
            for code in needed {
                if !responses.contains_key(code) {
                    problems.push(format!("{method} {path}: {code} not documented"));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    Ok(())
}

/// The other direction of `every_documented_route_exists`: every route the
/// admin router's sources declare with a literal path is in the document
/// (axum cannot list a router's routes, so the sources are read).
#[test]
fn every_admin_route_in_the_sources_is_documented() -> anyhow::Result<()> {
    let https = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../crates/certbound-broker/src/transport/https");
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(https.join("openapi.json"))?)?;
    let paths = doc["paths"].as_object().context("paths")?;
    let mut files = vec![https.join("admin.rs")];
    for entry in std::fs::read_dir(https.join("admin"))?.chain(std::fs::read_dir(&https)?) {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if path.extension().is_some_and(|e| e == "rs")
            && (path.parent() == Some(&https.join("admin")) || name.starts_with("admin_"))
        {
            files.push(path);
        }
    }
    let mut seen = 0;
    for file in &files {
        let text = std::fs::read_to_string(file)?;
        for (i, _) in text.match_indices(".route(") {
            let rest = text[i + ".route(".len()..].trim_start();
            let Some(literal) = rest.strip_prefix('"') else {
                continue;
            };
            let route = &literal[..literal.find('"').context("unterminated route")?];
            seen += 1;
            assert!(
                paths.contains_key(route),
                "{} serves {route}, which openapi.json does not document",
                file.display()
            );
        }
    }
    assert!(seen >= 40, "only {seen} routes found: the scan is broken");
    Ok(())
}
