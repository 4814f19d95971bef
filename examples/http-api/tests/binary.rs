//! The `http-api` binary: its flags, and the first line it prints.

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use certbound_e2e::https::HttpsClient;
use certbound_e2e::{API, Fixture, ISSUER};
use certbound_registry::config::DataDir;

#[tokio::test]
async fn the_binary_prints_its_address_and_serves() -> anyhow::Result<()> {
    let fx = Fixture::new().await?;
    let data = DataDir::new(fx.path());
    let broker = fx.https_url();
    let mut child = Command::new(env!("CARGO_BIN_EXE_http-api"))
        .args(["--listen", "127.0.0.1:0", "--cert"])
        .arg(data.server_cert())
        .arg("--key")
        .arg(data.server_key())
        .arg("--ca")
        .arg(data.pki().chain())
        .args(["--issuer", ISSUER, "--audience", API])
        .args(["--jwks-url", &format!("{broker}/.well-known/jwks.json")])
        .args(["--status-base", &format!("{broker}/status/")])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(Duration::from_secs(30));
    let result = async {
        let line = line?;
        let url = line
            .trim_end()
            .strip_prefix("http-api listening on ")
            .ok_or_else(|| anyhow::anyhow!("unexpected first line {line:?}"))?
            .to_string();
        anyhow::ensure!(url.starts_with("https://127.0.0.1:"), "{url}");
        let client = HttpsClient::new(&url, fx.path(), None)?;
        let health = client.get("/healthz", None).await?;
        anyhow::ensure!(health.status == 200, "{}", health.status);
        let refused = client.get("/telemetry", None).await?;
        anyhow::ensure!(refused.status == 401, "{}", refused.status);
        Ok(())
    }
    .await;
    child.kill()?;
    child.wait()?;
    fx.shutdown().await;
    result
}
