//! Where telemetry comes from: `stdin` (one message per line), a local UDP
//! port or a Unix datagram socket (one message per datagram).
//!
//! Every message is handed to the [`Intake`](crate::intake::Intake), which
//! spools it durably. Datagram senders get an answer: `ok <seq>` once the
//! message is spooled (acknowledged locally: it survives a restart) or
//! `err <reason>` when it was refused (spool full, too large). On stdin a
//! refusal is logged.

mod lines;

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use tokio::io::AsyncBufReadExt;
use tokio::net::{UdpSocket, UnixDatagram};

pub use self::lines::{Line, LineSplitter};
use crate::error::AgentError;
use crate::intake::Intake;

/// A configured telemetry source (`[telemetry] source`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(try_from = "String")]
pub enum Source {
    /// `stdin`: one message per line (without the line ending); EOF stops the agent.
    Stdin,
    /// `udp:127.0.0.1:9000`: one message per datagram, on a loopback address.
    Udp(SocketAddr),
    /// `unix:/run/certbound/telemetry.sock`: a Unix datagram socket.
    Unix(PathBuf),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Stdin => f.write_str("stdin"),
            Source::Udp(a) => write!(f, "udp:{a}"),
            Source::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

impl TryFrom<String> for Source {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl std::str::FromStr for Source {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if s == "stdin" {
            return Ok(Source::Stdin);
        }
        if let Some(addr) = s.strip_prefix("udp:") {
            let addr: SocketAddr = addr
                .parse()
                .map_err(|_| format!("{s:?}: expected udp:<ip>:<port>, e.g. udp:127.0.0.1:9000"))?;
            if !addr.ip().is_loopback() {
                return Err(format!(
                    "{s:?}: the UDP source must listen on a loopback address \
                     (whatever can reach it can publish as this device)"
                ));
            }
            return Ok(Source::Udp(addr));
        }
        if let Some(path) = s.strip_prefix("unix:") {
            let path = PathBuf::from(path);
            if !path.is_absolute() {
                return Err(format!("{s:?}: the socket path must be absolute"));
            }
            return Ok(Source::Unix(path));
        }
        Err(format!(
            "{s:?}: expected \"stdin\", \"udp:127.0.0.1:<port>\" or \"unix:/absolute/path.sock\""
        ))
    }
}

/// A source, opened (bound) and ready to be run.
#[derive(Debug)]
pub enum OpenSource {
    /// Standard input.
    Stdin,
    /// A bound UDP socket.
    Udp(UdpSocket),
    /// A bound Unix datagram socket (removed again when the source stops).
    Unix(UnixDatagram, PathBuf),
}

impl OpenSource {
    /// Binds the socket of `source` (so that errors surface at start-up).
    pub fn open(source: &Source) -> Result<Self, AgentError> {
        let io = |path: PathBuf| move |source| AgentError::Io { path, source };
        match source {
            Source::Stdin => Ok(OpenSource::Stdin),
            Source::Udp(addr) => {
                let socket = std::net::UdpSocket::bind(addr)
                    .and_then(|s| s.set_nonblocking(true).map(|()| s))
                    .and_then(UdpSocket::from_std)
                    .map_err(io(PathBuf::from(format!("udp:{addr}"))))?;
                Ok(OpenSource::Udp(socket))
            }
            Source::Unix(path) => {
                // A socket file left by an earlier run would make bind fail.
                if std::fs::symlink_metadata(path)
                    .is_ok_and(|m| std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()))
                {
                    std::fs::remove_file(path).map_err(io(path.clone()))?;
                }
                let socket = UnixDatagram::bind(path).map_err(io(path.clone()))?;
                Ok(OpenSource::Unix(socket, path.clone()))
            }
        }
    }

    /// The bound UDP address (for `udp:127.0.0.1:0`).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        match self {
            OpenSource::Udp(s) => s.local_addr().ok(),
            _ => None,
        }
    }

    /// Reads until the source ends (stdin EOF) or the task is cancelled.
    pub async fn run(self, intake: Intake) {
        match self {
            OpenSource::Stdin => read_stdin(intake).await,
            OpenSource::Udp(socket) => read_udp(socket, intake).await,
            OpenSource::Unix(socket, path) => {
                let _cleanup = RemoveOnDrop(path);
                read_unix(socket, intake).await
            }
        }
    }
}

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Biggest datagram read (messages above the configured limit are refused).
const DATAGRAM_BUF: usize = 65_536;

async fn read_stdin(intake: Intake) {
    let mut stdin = tokio::io::BufReader::new(tokio::io::stdin());
    let mut splitter = LineSplitter::new(intake.max_message_bytes());
    loop {
        let chunk = match stdin.fill_buf().await {
            Ok(chunk) => chunk.to_vec(),
            Err(e) => {
                tracing::error!(error = %e, "reading stdin failed; stopping input");
                return;
            }
        };
        stdin.consume(chunk.len());
        let eof = chunk.is_empty();
        let lines = if eof {
            splitter.finish()
        } else {
            splitter.push(&chunk)
        };
        for line in lines {
            match line {
                Line::Data(data) => {
                    if let Err(e) = intake.submit(data).await {
                        tracing::warn!(error = %e, "telemetry line refused");
                    }
                }
                Line::TooLong(len) => tracing::warn!(
                    bytes = len,
                    max = intake.max_message_bytes(),
                    "telemetry line refused: longer than telemetry.max_message_bytes"
                ),
            }
        }
        if eof {
            tracing::info!("stdin closed");
            return;
        }
    }
}

fn reply(outcome: &Result<u64, AgentError>) -> Vec<u8> {
    match outcome {
        Ok(seq) => format!("ok {seq}\n").into_bytes(),
        Err(e) => format!("err {e}\n").into_bytes(),
    }
}

async fn read_udp(socket: UdpSocket, intake: Intake) {
    let mut buf = vec![0u8; DATAGRAM_BUF];
    loop {
        let (n, peer) = match socket.recv_from(&mut buf).await {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(error = %e, "UDP source receive error");
                continue;
            }
        };
        let outcome = intake.submit(buf[..n].to_vec()).await;
        if let Err(e) = &outcome {
            tracing::warn!(error = %e, %peer, "telemetry datagram refused");
        }
        let _ = socket.send_to(&reply(&outcome), peer).await;
    }
}

async fn read_unix(socket: UnixDatagram, intake: Intake) {
    let mut buf = vec![0u8; DATAGRAM_BUF];
    loop {
        let (n, peer) = match socket.recv_from(&mut buf).await {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(error = %e, "Unix source receive error");
                continue;
            }
        };
        let outcome = intake.submit(buf[..n].to_vec()).await;
        if let Err(e) = &outcome {
            tracing::warn!(error = %e, "telemetry datagram refused");
        }
        // Only a sender bound to a path can be answered.
        if let Some(path) = peer.as_pathname() {
            let _ = socket.send_to(&reply(&outcome), path).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_parse_and_print_back() {
        for text in [
            "stdin",
            "udp:127.0.0.1:9000",
            "udp:[::1]:9000",
            "unix:/run/certbound/telemetry.sock",
        ] {
            let source: Source = text.parse().unwrap();
            assert_eq!(source.to_string(), text);
        }
        assert_eq!(
            "udp:127.0.0.1:0".parse(),
            Ok(Source::Udp(([127, 0, 0, 1], 0).into()))
        );
    }

    #[test]
    fn bad_sources_say_what_is_expected() {
        let err = |s: &str| s.parse::<Source>().unwrap_err();
        assert!(err("udp:0.0.0.0:9000").contains("loopback"));
        assert!(err("udp:localhost").contains("udp:<ip>:<port>"));
        assert!(err("unix:relative.sock").contains("absolute"));
        assert!(err("tcp:1.2.3.4:5").contains("expected \"stdin\""));
        assert!(err("").contains("expected"));
    }

    #[test]
    fn replies_name_the_seq_or_the_reason() {
        assert_eq!(reply(&Ok(42)), b"ok 42\n");
        let refused = reply(&Err(AgentError::Mqtt("x".into())));
        assert!(refused.starts_with(b"err "));
    }
}
