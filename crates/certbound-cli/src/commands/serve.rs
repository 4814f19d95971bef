//! `certbound serve`.

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;

use certbound_broker::server::{ServeOptions, start};

pub async fn serve(
    dir: &Path,
    coap_listen: Option<SocketAddr>,
    mqtt_listen: Option<SocketAddr>,
    https_listen: Option<SocketAddr>,
) -> anyhow::Result<ExitCode> {
    let broker = start(
        dir,
        ServeOptions {
            coap_listen,
            mqtt_listen,
            https_listen,
        },
    )
    .await?;
    // Machine-readable first line: scripts and tests wait for it.
    let coap = broker
        .coap_addr()
        .map(|a| format!("udp://{a}"))
        .unwrap_or_else(|| "off".into());
    let mqtt = broker
        .mqtt_addr()
        .map(|a| format!("mqtts://{a}"))
        .unwrap_or_else(|| "external-or-off".into());
    let https = broker.https_url().unwrap_or("off").to_string();
    println!("certbound serving: coap={coap} mqtt={mqtt} https={https}");
    tokio::select! {
        r = tokio::signal::ctrl_c() => { r?; }
        _ = terminate() => {}
    }
    eprintln!("shutting down");
    broker.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

#[cfg(unix)]
async fn terminate() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut s) => {
            s.recv().await;
        }
        Err(_) => std::future::pending::<()>().await,
    }
}

#[cfg(not(unix))]
async fn terminate() {
    std::future::pending::<()>().await
}
