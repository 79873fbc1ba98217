//! Event fan-out on one shard.
//!
//! An event enters the server once (a client's `E;…`/`EVENT`, or the uplink), becomes an
//! `Arc<RoutedEvent>` and is then only ever shared: the hub of the shard it entered on hands it
//! to its local sessions and pushes the same `Arc` into the bounded ring of every other shard,
//! whose hub does the same for its sessions. Each dialect's wire text is encoded the first time
//! a receiver needs it and the same `Bytes` is written to every socket after that.
//!
//! Queue policies (docs/config.md):
//! - a session's outbox holds at most `max-out-queue` events; when full the oldest is dropped
//!   and counted (`queue_full`), so a stalled client never holds back anyone else;
//! - rings between shards hold `max-in-queue` events; a full ring makes the *sending session*
//!   wait (its socket is not read meanwhile), so a publisher faster than the bus is slowed down
//!   instead of losing events. Ring receivers never wait (they only fill outboxes), so waiting
//!   cannot form a cycle.

use crate::stats::{DropReason, ShardStats};
use bytes::Bytes;
use glommio::channels::shared_channel::ConnectedSender;
use glommio::GlommioError;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::atomic::AtomicI64;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::Instant;
use vscp_proto::{Dialect, Event, Filter};
use vscp_transport::confirm::Confirm;

/// Where an event entered the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A client, by connection id.
    Client(u32),
    /// The uplink (MQTT bridge or vscpd host).
    Uplink,
}

/// An event on its way through the server, shared by every receiver.
#[derive(Debug)]
pub struct RoutedEvent {
    pub event: Event,
    pub origin: Origin,
    /// When the server accepted it (for delivery latency).
    pub accepted_at: Instant,
    /// The wire text in each dialect, indexed by [`Dialect::index`].
    encoded: [OnceLock<Bytes>; Dialect::COUNT],
    /// Set when the sending session waits for the uplink to confirm it (`ack-from-broker`).
    pub confirm: Option<Confirm>,
}

impl RoutedEvent {
    /// `accepted_at`: when the server took it (the time of the read it came in, for a client's).
    pub fn new(event: Event, origin: Origin, accepted_at: Instant) -> RoutedEvent {
        RoutedEvent {
            event,
            origin,
            accepted_at,
            encoded: Default::default(),
            confirm: None,
        }
    }

    /// The event's wire text in `dialect`, encoded at most once for the whole server.
    pub fn encoded(&self, dialect: Dialect) -> Bytes {
        self.encoded[dialect.index()]
            .get_or_init(|| {
                let mut s = String::with_capacity(96 + self.event.data.len() * 5);
                dialect.encode_event(&self.event, &mut s);
                Bytes::from(s)
            })
            .clone()
    }
}

/// What the hub needs to know to decide whether a session receives an event. Kept as a copy
/// in the slot so the fan-out loop reads one `Cell` per session.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReceiveView {
    /// Logged in with the `receive-events` right.
    pub wants: bool,
    /// Channel open: events are written, not just queued.
    pub open: bool,
    pub filter: Filter,
}

/// The hub's side of one session.
#[derive(Debug)]
pub struct Slot {
    pub conn_id: u32,
    index: Cell<usize>,
    view: Cell<ReceiveView>,
    outbox: RefCell<VecDeque<Arc<RoutedEvent>>>,
    /// Events dropped from this outbox because it was full (tcp/ip `stat` reports it).
    dropped: Cell<u64>,
    waker: RefCell<Option<Waker>>,
    closing: Cell<bool>,
}

/// What [`Hub::publish`] did with an event.
#[derive(Debug, PartialEq, Eq)]
pub enum Routed {
    /// The driver's out-filter dropped it.
    Filtered,
    /// Delivered locally and put into every ring.
    Done,
    /// Delivered locally; this ring (and maybe later ones) was full.
    Blocked(usize),
}

/// Why a session's wait ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Wake {
    /// Events are waiting and the channel is open.
    Outbox,
    /// The server is shutting down.
    Closing,
}

impl Slot {
    pub fn view(&self) -> ReceiveView {
        self.view.get()
    }

    /// What the session should do before reading more input: close (the shard is stopping)
    /// or write its outbox (events queued and the channel open).
    pub fn ready(&self) -> Option<Wake> {
        if self.closing.get() {
            Some(Wake::Closing)
        } else if self.view.get().open && !self.outbox.borrow().is_empty() {
            Some(Wake::Outbox)
        } else {
            None
        }
    }

    /// [`Self::ready`], or registers the task to be woken when it will be.
    pub fn poll_wait(&self, cx: &mut Context<'_>) -> Poll<Wake> {
        if let Some(w) = self.ready() {
            return Poll::Ready(w);
        }
        self.register(cx);
        Poll::Pending
    }

    /// Ready once the shard closes.
    pub fn poll_closed(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.closing.get() {
            return Poll::Ready(());
        }
        self.register(cx);
        Poll::Pending
    }

    fn register(&self, cx: &mut Context<'_>) {
        let mut w = self.waker.borrow_mut();
        match w.as_ref() {
            Some(old) if old.will_wake(cx.waker()) => {}
            _ => *w = Some(cx.waker().clone()),
        }
    }

    fn wake(&self) {
        if let Some(w) = self.waker.borrow().as_ref() {
            w.wake_by_ref();
        }
    }

    /// Takes the oldest queued event.
    pub fn pop(&self) -> Option<Arc<RoutedEvent>> {
        self.outbox.borrow_mut().pop_front()
    }

    /// Events waiting in the outbox.
    pub fn queued(&self) -> usize {
        self.outbox.borrow().len()
    }

    /// Events this session lost because its outbox was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.get()
    }
}

/// The sending end of a bounded ring to another core.
type Ring = Rc<ConnectedSender<Arc<RoutedEvent>>>;

/// Per-shard fan-out state.
pub struct Hub {
    slots: RefCell<Vec<Rc<Slot>>>,
    /// Rings to the other shards (`true`: counted as ring traffic) and to the uplink.
    peers: RefCell<Vec<(Ring, bool)>>,
    stats: Arc<ShardStats>,
    max_out_queue: usize,
    receive_sent_events: bool,
    /// Driver-level filter for events from the uplink on their way to clients.
    in_filter: Filter,
    /// Driver-level filter for events from clients before they are routed anywhere.
    out_filter: Filter,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("sessions", &self.slots.borrow().len())
            .field("peers", &self.peers.borrow().len())
            .finish()
    }
}

impl Hub {
    pub fn new(
        stats: Arc<ShardStats>,
        max_out_queue: usize,
        receive_sent_events: bool,
        in_filter: Filter,
        out_filter: Filter,
    ) -> Hub {
        Hub {
            slots: RefCell::new(Vec::new()),
            peers: RefCell::new(Vec::new()),
            stats,
            max_out_queue,
            receive_sent_events,
            in_filter,
            out_filter,
        }
    }

    pub fn stats(&self) -> &ShardStats {
        &self.stats
    }

    /// Adds a ring to another shard (`is_shard`) or to the uplink.
    pub fn add_peer(&self, peer: ConnectedSender<Arc<RoutedEvent>>, is_shard: bool) {
        self.peers.borrow_mut().push((Rc::new(peer), is_shard));
    }

    /// Closes this shard's ends of the rings to the other shards and the uplink: once every
    /// shard did, the uplink knows no more events will come and can finish what it holds.
    pub fn close_peers(&self) {
        self.peers.borrow_mut().clear();
    }

    pub fn register(&self, conn_id: u32) -> Rc<Slot> {
        let mut slots = self.slots.borrow_mut();
        let slot = Rc::new(Slot {
            conn_id,
            index: Cell::new(slots.len()),
            view: Cell::new(ReceiveView::default()),
            outbox: RefCell::new(VecDeque::new()),
            dropped: Cell::new(0),
            waker: RefCell::new(None),
            closing: Cell::new(false),
        });
        slots.push(slot.clone());
        slot
    }

    pub fn unregister(&self, slot: &Slot) {
        self.clear_outbox(slot);
        let mut slots = self.slots.borrow_mut();
        let i = slot.index.get();
        if i < slots.len() && std::ptr::eq(Rc::as_ptr(&slots[i]), slot) {
            slots.swap_remove(i);
            if let Some(moved) = slots.get(i) {
                moved.index.set(i);
            }
        }
    }

    /// Updates what the fan-out knows about a session. A session that is no longer logged in
    /// loses its queue: events are never delivered to an unauthenticated session.
    pub fn set_view(&self, slot: &Slot, view: ReceiveView) {
        slot.view.set(view);
        if !view.wants {
            self.clear_outbox(slot);
        } else if view.open {
            slot.wake();
        }
    }

    pub fn clear_outbox(&self, slot: &Slot) {
        let n = {
            let mut q = slot.outbox.borrow_mut();
            let n = q.len();
            q.clear();
            // A burst can leave a large ring buffer behind; idle sessions should stay small.
            if q.capacity() > 64 {
                q.shrink_to(16);
            }
            n
        };
        ShardStats::gauge_add(&self.stats.outbox_depth, -(n as i64));
    }

    /// Account for events a session took out of its outbox.
    pub fn taken(&self, n: usize) {
        ShardStats::gauge_add(&self.stats.outbox_depth, -(n as i64));
    }

    /// Routes an event accepted from a local client: driver out-filter, local sessions, then
    /// every other shard, without waiting. A full ring is left to [`Hub::publish_blocked`]
    /// (see the module docs); the caller waits there so that the common case allocates and
    /// keeps nothing.
    pub fn publish(&self, ev: &Arc<RoutedEvent>) -> Routed {
        if !self.out_filter.matches(&ev.event) {
            self.stats.drop_event(DropReason::Filter, 1);
            return Routed::Filtered;
        }
        self.deliver(ev);
        // The list is fixed once the shard has started; no borrow is held past a send.
        let count = self.peers.borrow().len();
        for i in 0..count {
            let (peer, is_shard) = self.peers.borrow()[i].clone();
            match peer.try_send(ev.clone()) {
                Ok(()) if is_shard => ShardStats::add(&self.stats.ring_sent, 1),
                Ok(()) => {}
                Err(GlommioError::WouldBlock(_)) => return Routed::Blocked(i),
                // The receiving side is gone (shutting down): nothing to wait for.
                Err(_) => {}
            }
        }
        Routed::Done
    }

    /// Finishes [`Hub::publish`] from the full ring `from` on, waiting for room in each.
    pub async fn publish_blocked(&self, ev: Arc<RoutedEvent>, from: usize) {
        let _waiting = Waiting::new(&self.stats.publishers_waiting);
        let count = self.peers.borrow().len();
        for i in from..count {
            let (peer, is_shard) = self.peers.borrow()[i].clone();
            if peer.send(ev.clone()).await.is_ok() && is_shard {
                ShardStats::add(&self.stats.ring_sent, 1);
            }
        }
    }

    /// Hands an event to every local session that should get it.
    pub fn deliver(&self, ev: &Arc<RoutedEvent>) {
        if ev.origin == Origin::Uplink && !self.in_filter.matches(&ev.event) {
            self.stats.drop_event(DropReason::Filter, 1);
            return;
        }
        let skip = match ev.origin {
            Origin::Client(id) if !self.receive_sent_events => Some(id),
            _ => None,
        };
        let mut filtered = 0u64;
        let mut overflow = 0u64;
        let mut queued = 0i64;
        for slot in self.slots.borrow().iter() {
            if Some(slot.conn_id) == skip {
                continue;
            }
            let view = slot.view.get();
            if !view.wants {
                continue;
            }
            if !view.filter.matches(&ev.event) {
                filtered += 1;
                continue;
            }
            {
                let mut q = slot.outbox.borrow_mut();
                if q.len() >= self.max_out_queue {
                    q.pop_front();
                    overflow += 1;
                    slot.dropped.set(slot.dropped.get() + 1);
                } else {
                    queued += 1;
                }
                q.push_back(ev.clone());
            }
            if view.open {
                slot.wake();
            }
        }
        if filtered > 0 {
            self.stats.drop_event(DropReason::Filter, filtered);
        }
        if overflow > 0 {
            self.stats.drop_event(DropReason::QueueFull, overflow);
        }
        ShardStats::gauge_add(&self.stats.outbox_depth, queued);
    }

    /// Tells every session on this shard to close.
    pub fn close_all(&self) {
        for slot in self.slots.borrow().iter() {
            slot.closing.set(true);
            slot.wake();
        }
    }

    pub fn session_count(&self) -> usize {
        self.slots.borrow().len()
    }
}

/// Counts a session in `publishers_waiting` while it waits for room in a ring; the count drops
/// however the wait ends, also when the session's future is dropped mid-wait.
struct Waiting<'a>(&'a AtomicI64);

impl<'a> Waiting<'a> {
    fn new(gauge: &'a AtomicI64) -> Waiting<'a> {
        ShardStats::gauge_add(gauge, 1);
        Waiting(gauge)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        ShardStats::gauge_add(self.0, -1);
    }
}
