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
    // The handlers are in place before anyone can know the broker is up: a
    // SIGTERM right after the "serving" line still shuts down cleanly
    // (records flushed), never kills the process.
    let terminate = terminate()?;
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
        _ = terminate => {}
    }
    tracing::info!("shutting down: flushing token records and audit events");
    broker.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

/// Resolves on SIGTERM; the handler is installed when this is called.
#[cfg(unix)]
fn terminate() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    let mut s = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    Ok(async move {
        s.recv().await;
    })
}

#[cfg(not(unix))]
fn terminate() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    Ok(std::future::pending::<()>())
}
