//! Unit tests of the hub, driven directly with channels standing in for
//! connections; the helpers here are shared by the modules below.

use super::*;
use bytes::Bytes;
use std::time::Duration;

use crate::session::{Outgoing, Stage};

mod retained;
mod routing;
mod stored;

pub(super) const NO_ONE: ConnId = 0;

pub(super) fn add(
    hub: &mut Hub,
    conn: ConnId,
    who: &str,
    cap: usize,
) -> (mpsc::Receiver<Message>, Arc<Notify>) {
    let (tx, rx) = mpsc::channel(cap);
    let kill = Arc::new(Notify::new());
    hub.register(
        conn,
        Identity::Device(who.into()),
        Some([conn as u8; 32]),
        tx,
        Arc::clone(&kill),
    );
    (rx, kill)
}

pub(super) fn message(topic: &str, qos: QoS) -> Message {
    Message::new(topic, Bytes::from_static(b"x"), qos)
}

pub(super) fn now() -> Instant {
    Instant::now()
}

pub(super) fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

pub(super) fn drain(rx: &mut mpsc::Receiver<Message>) -> Vec<Message> {
    std::iter::from_fn(|| rx.try_recv().ok()).collect()
}

pub(super) fn killed(kill: &Notify) -> bool {
    let notified = kill.notified();
    tokio::pin!(notified);
    futures_ready(notified.as_mut())
}

pub(super) fn subs(filters: &[(&str, QoS)]) -> Vec<(String, SubOpts, bool)> {
    filters
        .iter()
        .map(|(f, q)| ((*f).to_owned(), SubOpts::qos(*q), false))
        .collect()
}

pub(super) fn with_payload(topic: &str, payload: &'static [u8], qos: QoS) -> Message {
    Message::new(topic, Bytes::from_static(payload), qos)
}

/// Polls a future once.
pub(super) fn futures_ready<F: std::future::Future>(f: std::pin::Pin<&mut F>) -> bool {
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    f.poll(&mut cx).is_ready()
}
