//! `certbound serve`.

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;

use certbound_broker::server::{ServeOptions, start};

pub async fn serve(dir: &Path, coap_listen: Option<SocketAddr>) -> anyhow::Result<ExitCode> {
    let broker = start(dir, ServeOptions { coap_listen }).await?;
    if let Some(addr) = broker.coap_addr() {
        // Machine-readable first line: scripts and tests wait for it.
        println!("certbound serving: coap=udp://{addr}");
    }
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
