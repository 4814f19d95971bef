//! `GET /admin/v1/audit/stream`: an open stream receives a matching audit
//! event written after it opened (and not the others), `Last-Event-ID`
//! resumes, and a session holds at most `[ui] max_streams_per_session`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use certbound_e2e::Fixture;
use certbound_e2e::https::HttpsClient;
use certbound_registry::config::DataDir;
use certbound_registry::store::AuditEvent;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{admin_credentials, login};

/// A raw HTTP/1.1 stream over TLS (the test client reads whole bodies).
struct EventStream {
    tls: tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    /// Everything read so far.
    text: String,
}

impl EventStream {
    async fn open(fx: &Fixture, path: &str, headers: &[(&str, &str)]) -> anyhow::Result<Self> {
        let base = fx.https_url();
        let authority = base.trim_start_matches("https://").to_string();
        let ca = std::fs::read_to_string(DataDir::new(fx.path()).pki().chain())?;
        let config: Arc<rustls::ClientConfig> =
            certbound_verify::http::client_tls_config(&ca, None)?;
        let tcp = tokio::net::TcpStream::connect(&authority).await?;
        let name = rustls_pki_types::ServerName::try_from("127.0.0.1")?.to_owned();
        let mut tls = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await?;
        let mut request = format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\n");
        for (k, v) in headers {
            request.push_str(&format!("{k}: {v}\r\n"));
        }
        request.push_str("\r\n");
        tls.write_all(request.as_bytes()).await?;
        Ok(Self {
            tls,
            text: String::new(),
        })
    }

    /// Reads until `needle` has arrived (or fails after 60 s).
    async fn until(&mut self, needle: &str) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let mut buf = vec![0u8; 8192];
        while !self.text.contains(needle) {
            let n = tokio::time::timeout_at(deadline, self.tls.read(&mut buf))
                .await
                .with_context(|| format!("{needle:?} never arrived; got {}", self.text))??;
            anyhow::ensure!(n > 0, "the stream ended before {needle:?}: {}", self.text);
            self.text.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        Ok(())
    }

    fn status(&self) -> Option<u16> {
        self.text.get(9..12)?.parse().ok()
    }
}

fn event(subject: &str) -> AuditEvent {
    AuditEvent {
        ts_ms: certbound_e2e::unix_now() * 1000,
        actor: "test".into(),
        action: "test.event".into(),
        subject: subject.into(),
        outcome: "ok".into(),
        detail: String::new(),
    }
}

/// The audit id of the `data:` frame naming `subject`.
fn id_of(text: &str, subject: &str) -> Option<i64> {
    let at = text.find(&format!("\"subject\":\"{subject}\""))?;
    let before = &text[..at];
    let line = before.rfind("id: ")?;
    before[line + 4..].split('\n').next()?.trim().parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_audit_stream_delivers_new_matching_events() -> anyhow::Result<()> {
    let fx =
        Fixture::with_config(&[("max_streams_per_session = 4", "max_streams_per_session = 2")])
            .await?;
    let https = HttpsClient::new(&fx.https_url(), fx.path(), None)?;
    let (id, secret) = admin_credentials(&fx)?;
    let session = login(&https, &id, &secret).await?;
    let cookie = ("cookie", session.cookie.as_str());
    let store = fx.registry.store.clone();
    store.append_audit(&[event("stream-target")]).await?; // before: not sent
    let path = "/admin/v1/audit/stream?subject=stream-target";
    let mut s = EventStream::open(&fx, path, &[cookie]).await?;
    s.until(": certbound audit stream").await?;
    assert_eq!(s.status(), Some(200), "{}", s.text);
    assert!(
        s.text
            .to_ascii_lowercase()
            .contains("content-type: text/event-stream")
    );
    store
        .append_audit(&[event("someone-else"), event("stream-target")])
        .await?;
    s.until("\"subject\":\"stream-target\"").await?;
    assert!(
        !s.text.contains("someone-else"),
        "the filter applies: {}",
        s.text
    );
    assert_eq!(
        s.text.matches("stream-target").count(),
        1,
        "only events after the stream opened: {}",
        s.text
    );
    let first = id_of(&s.text, "stream-target").context("the frame has an id")?;
    assert!(
        s.text.contains(&format!("id: {first}\ndata: {{")),
        "{}",
        s.text
    );

    // The session's second stream resumes from Last-Event-ID.
    let resume = (first - 1).to_string();
    let mut r = EventStream::open(&fx, path, &[cookie, ("last-event-id", &resume)]).await?;
    r.until("\"subject\":\"stream-target\"").await?;
    assert_eq!(id_of(&r.text, "stream-target"), Some(first));
    // A third is one too many for this session...
    let mut third = EventStream::open(&fx, path, &[cookie]).await?;
    third.until("\r\n\r\n").await?;
    assert_eq!(third.status(), Some(429), "{}", third.text);
    // ...until one closes.
    drop(r);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let mut again = EventStream::open(&fx, path, &[cookie]).await?;
        again.until("\r\n\r\n").await?;
        if again.status() == Some(200) {
            break;
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "the closed stream's slot was never freed: {}",
            again.text
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A bad filter: 400 JSON, no stream.
    let mut bad = EventStream::open(&fx, "/admin/v1/audit/stream?after_id=x", &[cookie]).await?;
    bad.until("}").await?;
    assert_eq!(bad.status(), Some(400), "{}", bad.text);
    assert!(bad.text.contains("\"invalid_request\""), "{}", bad.text);
    // Without credentials: 401, no stream.
    let mut anon = EventStream::open(&fx, path, &[]).await?;
    anon.until("\r\n\r\n").await?;
    assert_eq!(anon.status(), Some(401), "{}", anon.text);
    drop(s);
    fx.shutdown().await;
    Ok(())
}
