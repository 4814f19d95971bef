//! A lossy UDP relay: the `loss=` fault. Devices talk to the relay, which
//! forwards each datagram to the real server — or drops it, with the given
//! probability, in each direction. Each device-side address gets its own
//! upstream socket, so answers find their way back. CoAP's confirmable
//! retransmission is what makes requests survive it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rand::Rng;
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

use crate::SimError;

/// Datagram counters of a relay.
#[derive(Debug, Default)]
pub struct RelayCounters {
    /// Datagrams forwarded (both directions).
    pub forwarded: AtomicU64,
    /// Datagrams dropped on purpose (both directions).
    pub dropped: AtomicU64,
}

/// A running relay.
#[derive(Debug)]
pub struct LossyRelay {
    addr: SocketAddr,
    counters: Arc<RelayCounters>,
    task: JoinHandle<()>,
}

impl Drop for LossyRelay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl LossyRelay {
    /// Binds 127.0.0.1:0 and relays to `target`, dropping `loss` (0..1) of the datagrams.
    ///
    /// # Errors
    /// [`SimError::Setup`] when the socket cannot be bound.
    pub async fn start(target: SocketAddr, loss: f64) -> Result<Self, SimError> {
        let front = Arc::new(
            UdpSocket::bind("127.0.0.1:0")
                .await
                .map_err(|e| SimError::Setup(format!("lossy relay socket: {e}")))?,
        );
        let addr = front
            .local_addr()
            .map_err(|e| SimError::Setup(format!("lossy relay address: {e}")))?;
        let counters = Arc::new(RelayCounters::default());
        let task = tokio::spawn(relay(front, target, loss, counters.clone()));
        Ok(Self {
            addr,
            counters,
            task,
        })
    }

    /// Where devices send.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// (forwarded, dropped) so far.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.counters.forwarded.load(Ordering::Relaxed),
            self.counters.dropped.load(Ordering::Relaxed),
        )
    }
}

fn keep(loss: f64, counters: &RelayCounters) -> bool {
    if rand::rng().random::<f64>() < loss {
        counters.dropped.fetch_add(1, Ordering::Relaxed);
        false
    } else {
        counters.forwarded.fetch_add(1, Ordering::Relaxed);
        true
    }
}

async fn relay(front: Arc<UdpSocket>, target: SocketAddr, loss: f64, counters: Arc<RelayCounters>) {
    let mut upstreams: HashMap<SocketAddr, (Arc<UdpSocket>, JoinHandle<()>)> = HashMap::new();
    let mut buf = vec![0u8; 65_536];
    loop {
        let Ok((n, from)) = front.recv_from(&mut buf).await else {
            continue;
        };
        if !keep(loss, &counters) {
            continue;
        }
        let upstream = match upstreams.get(&from) {
            Some((s, _)) => s.clone(),
            None => {
                let Ok(sock) = UdpSocket::bind("127.0.0.1:0").await else {
                    continue;
                };
                if sock.connect(target).await.is_err() {
                    continue;
                }
                let sock = Arc::new(sock);
                let back = tokio::spawn(answers(
                    sock.clone(),
                    front.clone(),
                    from,
                    loss,
                    counters.clone(),
                ));
                upstreams.insert(from, (sock.clone(), back));
                sock
            }
        };
        let _ = upstream.send(&buf[..n]).await;
    }
}

async fn answers(
    upstream: Arc<UdpSocket>,
    front: Arc<UdpSocket>,
    client: SocketAddr,
    loss: f64,
    counters: Arc<RelayCounters>,
) {
    let mut buf = vec![0u8; 65_536];
    loop {
        match upstream.recv(&mut buf).await {
            Ok(n) => {
                if keep(loss, &counters) {
                    let _ = front.send_to(&buf[..n], client).await;
                }
            }
            // ICMP port unreachable while the server restarts: keep going.
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn relays_and_drops() {
        let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let target = server.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buf = [0u8; 64];
            while let Ok((n, from)) = server.recv_from(&mut buf).await {
                let _ = server.send_to(&buf[..n], from).await;
            }
        });
        // No loss: every echo comes back.
        let relay = LossyRelay::start(target, 0.0).await.unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        client.connect(relay.addr()).await.unwrap();
        for i in 0..20u8 {
            client.send(&[i]).await.unwrap();
            let mut buf = [0u8; 8];
            let n = tokio::time::timeout(std::time::Duration::from_secs(2), client.recv(&mut buf))
                .await
                .expect("echo through the relay")
                .unwrap();
            assert_eq!(&buf[..n], &[i]);
        }
        assert_eq!(relay.counts(), (40, 0));
        // Heavy loss: some datagrams are dropped and counted.
        let lossy = LossyRelay::start(target, 0.5).await.unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        client.connect(lossy.addr()).await.unwrap();
        for i in 0..200u8 {
            client.send(&[i]).await.unwrap();
        }
        // Wait until the relay has seen all 200 (each is forwarded or dropped once
        // on the way in; echoes add more).
        let seen = async {
            loop {
                let (f, d) = lossy.counts();
                if f + d >= 200 {
                    break;
                }
                tokio::task::yield_now().await;
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(5), seen)
            .await
            .expect("the relay saw every datagram");
        let (forwarded, dropped) = lossy.counts();
        assert!(dropped > 40, "dropped {dropped}");
        assert!(forwarded > 40, "forwarded {forwarded}");
    }
}
