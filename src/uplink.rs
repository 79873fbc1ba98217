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
//! Implementations decide what happens when their own far side is slow (a broker away, a host
//! that does not read); they must keep receiving from [`UplinkPorts::recv`] so the shards are
//! never held up by a stuck uplink for longer than the rings absorb.

use crate::hub::{Origin, RoutedEvent};
use crate::shutdown::ShutdownSignal;
use crate::stats::UplinkStats;
use glommio::channels::local_channel::{self, LocalReceiver};
use glommio::channels::shared_channel::{ConnectedSender, SharedReceiver, SharedSender};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;
use vscp_proto::Event;

/// How many events may wait between the per-shard readers and the uplink's own loop. Small on
/// purpose: the rings (`max-in-queue` each) are the buffer, and with an uplink that applies
/// backpressure every event parked here is one more a client saw acknowledged while the
/// uplink could not take it. One bridge batch is enough to keep the loop fed.
const MERGE_CAPACITY: usize = 64;

/// Something the sessions exchange events with. Moved to the uplink executor at start.
pub trait Uplink: Send + 'static {
    /// Short name for logs and metric labels (`mqtt`, `vscpd`, …).
    fn name(&self) -> &'static str;

    /// Runs on the uplink executor until the server stops: the future is then dropped, so
    /// anything it holds is released.
    fn run(self: Box<Self>, ports: UplinkPorts) -> Pin<Box<dyn Future<Output = ()>>>;

    /// `Some(timeout)` when client sessions should reply to an event only once this uplink
    /// confirms it (through [`RoutedEvent::confirm`]), waiting at most `timeout`.
    fn confirm_timeout(&self) -> Option<std::time::Duration> {
        None
    }
}

/// The uplink's ends of the rings.
pub struct UplinkPorts {
    merged: LocalReceiver<Arc<RoutedEvent>>,
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
    pub async fn recv(&self) -> Option<Arc<RoutedEvent>> {
        let ev = self.merged.recv().await?;
        self.stats.from_sessions.fetch_add(1, Ordering::Relaxed);
        Some(ev)
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
    let (merge_tx, merge_rx) = local_channel::new_bounded(MERGE_CAPACITY);
    let merge_tx = std::rc::Rc::new(merge_tx);
    // One reader per shard merges the rings into one local queue, so the uplink awaits one
    // thing instead of selecting over every shard.
    let mut readers = Vec::new();
    for rx in rings.from_shards {
        let tx = merge_tx.clone();
        readers.push(glommio::spawn_local(async move {
            let rx = rx.connect().await;
            while let Some(ev) = rx.recv().await {
                if tx.send(ev).await.is_err() {
                    break;
                }
            }
        }));
    }
    drop(merge_tx);
    let _ = ready.send(());
    let mut to_shards = Vec::new();
    for tx in rings.to_shards {
        to_shards.push(tx.connect().await);
    }
    let ports = UplinkPorts {
        merged: merge_rx,
        to_shards,
        stats,
    };
    let name = uplink.name();
    let task = glommio::spawn_local(uplink.run(ports));
    shutdown.recv().await;
    task.cancel().await;
    for r in readers {
        r.cancel().await;
    }
    tracing::info!(uplink = name, "uplink stopped");
}
