//! The uplink: whatever the websocket sessions exchange events with beyond themselves — the
//! MQTT bridge, or the vscpd host when running as a Level II driver.
//!
//! An uplink runs on its own glommio executor (the "uplink core") and talks to the session
//! shards only through bounded rings, one pair per shard:
//! - every event a shard accepts from a client (after rights and the driver out-filter) is pushed
//!   into that shard's ring to the uplink, exactly like the rings to the other shards;
//! - events the uplink sends go into each shard's inbound ring and are delivered there with
//!   origin [`Origin::Uplink`](crate::hub::Origin) (the driver in-filter applies).
//!
//! Implementations decide what happens when their own far side is slow: the MQTT bridge stops
//! receiving while a connected broker is slower than the clients (backpressure: the rings fill
//! and the publishing sessions wait) and keeps receiving, dropping oldest, while it is away; the
//! vscpd host drops oldest when the host does not read.
//!
//! Stopping: the shards end their sessions, then close their rings, so [`UplinkPorts::recv`]
//! returns `None`; the uplink finishes what it holds and returns from [`Uplink::run`].

use crate::hub::{Origin, RoutedEvent};
use crate::shutdown::ShutdownSignal;
use crate::stats::UplinkStats;
use futures::StreamExt;
use glommio::channels::shared_channel::{
    ConnectedReceiver, ConnectedSender, SharedReceiver, SharedSender,
};
use std::cell::{Cell, RefCell};
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;
use vscp_proto::Event;

/// Longest an uplink may take to finish after the server was told to stop: the shards' own
/// drain, plus the largest MQTT `drain-timeout`.
pub(crate) const STOP_LIMIT: std::time::Duration = std::time::Duration::from_secs(310);

/// Something the sessions exchange events with. Moved to the uplink executor at start.
pub trait Uplink: Send + 'static {
    /// Short name for logs and metric labels (`mqtt`, `vscpd`, …).
    fn name(&self) -> &'static str;

    /// Runs on the uplink executor until [`UplinkPorts::recv`] returns `None` (every shard has
    /// stopped) and what it holds is finished; it is cancelled if it takes longer than a
    /// generous limit.
    fn run(self: Box<Self>, ports: UplinkPorts) -> Pin<Box<dyn Future<Output = ()>>>;

    /// `Some(timeout)` when client sessions should reply to an event only once this uplink
    /// confirms it (through [`RoutedEvent::confirm`]), waiting at most `timeout`.
    fn confirm_timeout(&self) -> Option<std::time::Duration> {
        None
    }
}

/// The uplink's ends of the rings.
pub struct UplinkPorts {
    /// The rings from the shards, read in turn by [`UplinkPorts::recv`] itself: no task and
    /// no queue in between, so an event costs one ring hop to the uplink, and an uplink that
    /// stops receiving leaves its backpressure in the rings, where the shards see it.
    from_shards: RefCell<Vec<ConnectedReceiver<Arc<RoutedEvent>>>>,
    /// The ring to look at first next time, so that one busy shard cannot starve the others.
    next: Cell<usize>,
    to_shards: Vec<ConnectedSender<Arc<RoutedEvent>>>,
    stats: Arc<UplinkStats>,
}

impl std::fmt::Debug for UplinkPorts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UplinkPorts")
            .field("shards", &self.to_shards.len())
            .finish()
    }
}

impl UplinkPorts {
    /// The next event accepted from a websocket client on any shard; `None` once the server
    /// is stopping.
    /// Cancel-safe: an event is taken out of its ring only when this returns it.
    pub async fn recv(&self) -> Option<Arc<RoutedEvent>> {
        let ev = poll_fn(|cx| self.poll_recv(cx)).await?;
        self.stats.from_sessions.fetch_add(1, Ordering::Relaxed);
        Some(ev)
    }

    fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Option<Arc<RoutedEvent>>> {
        let mut rings = self.from_shards.borrow_mut();
        let n = rings.len();
        let start = self.next.get();
        let mut closed = 0;
        for k in 0..n {
            let i = (start + k) % n;
            match rings[i].poll_next_unpin(cx) {
                Poll::Ready(Some(ev)) => {
                    self.next.set((i + 1) % n);
                    return Poll::Ready(Some(ev));
                }
                Poll::Ready(None) => closed += 1,
                Poll::Pending => {}
            }
        }
        if closed == n {
            Poll::Ready(None)
        } else {
            Poll::Pending
        }
    }

    /// Delivers an event to the sessions of every shard. Waits while a shard's ring is full
    /// (the shards never wait on anything, so this always makes progress).
    pub async fn send(&self, event: Event) {
        let ev = Arc::new(RoutedEvent::new(event, Origin::Uplink, Instant::now()));
        for tx in &self.to_shards {
            let _ = tx.send(ev.clone()).await;
        }
        self.stats.to_sessions.fetch_add(1, Ordering::Relaxed);
    }

    /// The uplink's counters (see [`UplinkStats`] for who writes what).
    pub fn stats(&self) -> &Arc<UplinkStats> {
        &self.stats
    }
}

/// The uplink's side of the rings before its executor has connected them.
pub(crate) struct UplinkRings {
    pub from_shards: Vec<SharedReceiver<Arc<RoutedEvent>>>,
    pub to_shards: Vec<SharedSender<Arc<RoutedEvent>>>,
}

/// The body of the uplink executor.
pub(crate) async fn run(
    uplink: Box<dyn Uplink>,
    rings: UplinkRings,
    shutdown: ShutdownSignal,
    stats: Arc<UplinkStats>,
    ready: std::sync::mpsc::Sender<()>,
) {
    // Every receiver connects concurrently: a connect waits for its sender, and the shards
    // connect their senders only after start-up has heard from this executor.
    let from_shards = glommio::spawn_local(futures::future::join_all(
        rings.from_shards.into_iter().map(|rx| rx.connect()),
    ))
    .detach();
    let _ = ready.send(());
    let mut to_shards = Vec::new();
    for tx in rings.to_shards {
        to_shards.push(tx.connect().await);
    }
    let Some(from_shards) = from_shards.await else {
        return;
    };
    let ports = UplinkPorts {
        from_shards: RefCell::new(from_shards),
        next: Cell::new(0),
        to_shards,
        stats,
    };
    let name = uplink.name();
    let task = glommio::spawn_local(uplink.run(ports));
    shutdown.recv().await;
    // The shards close their sessions and then their rings to us; the uplink sees the end of
    // its input, finishes what it holds within its own limit (the MQTT bridge's
    // `drain-timeout`) and returns. The limit here only guards against an uplink that does not.
    let finished = glommio::timer::timeout(STOP_LIMIT, async move {
        task.await;
        Ok(())
    })
    .await;
    if finished.is_err() {
        tracing::warn!(uplink = name, "uplink did not stop in time; cancelled");
    }
    tracing::info!(uplink = name, "uplink stopped");
}
