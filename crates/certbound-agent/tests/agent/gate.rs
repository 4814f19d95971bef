//! A TCP forwarder between the agent and the MQTT server that the test can
//! open, stall or close. The server restarts on its own fixed port; the gate
//! only decides *when* the agent may reach it, so that a test can have the
//! backend subscribed to a restarted server before the agent reconnects
//! (an MQTT server without persistent sessions drops messages nobody is
//! subscribed to yet).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What the gate does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Forward both ways.
    Open,
    /// Keep connections but forward nothing (bytes are held) until opened.
    Stalled,
    /// Forward what the agent sends; hold what the server sends (an answer
    /// that is "lost" once the gate closes).
    HoldReplies,
    /// Cut connections and refuse new ones.
    Closed,
}

pub struct Gate {
    addr: SocketAddr,
    mode: watch::Sender<Mode>,
    /// Forwarding writes in progress.
    writing: watch::Sender<usize>,
    /// Connections accepted from the agent.
    accepted: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Gate {
    pub async fn start(target: SocketAddr) -> Gate {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind gate");
        let addr = listener.local_addr().expect("gate addr");
        let (mode, _) = watch::channel(Mode::Open);
        let (writing, _) = watch::channel(0usize);
        let modes = mode.clone();
        let writes = writing.clone();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&accepted);
        let task = tokio::spawn(async move {
            while let Ok((downstream, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::Relaxed);
                let mut mode = modes.subscribe();
                let writes = writes.clone();
                tokio::spawn(async move {
                    if !matches!(
                        mode.wait_for(|m| *m != Mode::Stalled).await.map(|m| *m),
                        Ok(Mode::Open | Mode::HoldReplies)
                    ) {
                        return;
                    }
                    let Ok(upstream) = TcpStream::connect(target).await else {
                        return;
                    };
                    let _ = downstream.set_nodelay(true);
                    let _ = upstream.set_nodelay(true);
                    let (dr, dw) = downstream.into_split();
                    let (ur, uw) = upstream.into_split();
                    // Either direction ending (or the gate closing) ends both.
                    tokio::select! {
                        () = pipe(dr, uw, Dir::Up, mode.clone(), writes.clone()) => {}
                        () = pipe(ur, dw, Dir::Down, mode, writes) => {}
                    }
                });
            }
        });
        Gate {
            addr,
            mode,
            writing,
            accepted,
            task,
        }
    }

    /// Connections the agent opened through the gate so far.
    pub fn connections(&self) -> usize {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Where the agent connects.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }

    /// Stalls and returns once no byte is being forwarded any more: from
    /// then on nothing crosses the gate until it is opened again.
    pub async fn stall(&self) {
        self.set(Mode::Stalled);
        let mut writing = self.writing.subscribe();
        let _ = writing.wait_for(|n| *n == 0).await;
    }
}

/// Agent to server, or back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dir {
    Up,
    Down,
}

fn passes(mode: Mode, dir: Dir) -> bool {
    match mode {
        Mode::Open => true,
        Mode::HoldReplies => dir == Dir::Up,
        Mode::Stalled | Mode::Closed => false,
    }
}

async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    dir: Dir,
    mut mode: watch::Receiver<Mode>,
    writes: watch::Sender<usize>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = tokio::select! {
            r = from.read(&mut buf) => match r {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            },
            _ = mode.wait_for(|m| *m == Mode::Closed) => return,
        };
        // Hold the bytes while stalled; drop everything when closed. The
        // write is counted before the mode is checked, so that `stall` sees
        // every write that started before it.
        loop {
            writes.send_modify(|n| *n += 1);
            let open = passes(*mode.borrow(), dir);
            if open {
                break;
            }
            writes.send_modify(|n| *n -= 1);
            match mode
                .wait_for(|m| passes(*m, dir) || *m == Mode::Closed)
                .await
                .map(|m| *m)
            {
                Ok(m) if passes(m, dir) => {}
                _ => return,
            }
        }
        let written = to.write_all(&buf[..n]).await;
        writes.send_modify(|n| *n -= 1);
        if written.is_err() {
            return;
        }
    }
}
