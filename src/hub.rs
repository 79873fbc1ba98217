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
//! - sessions logged in with their channel closed ("parked": an ingest device that only
//!   publishes, a tcp/ip client between `chkdata`s) share one backlog per shard holding the last
//!   `max-out-queue` events; each remembers where it was parked and takes its events (through
//!   its filter) when it opens its channel or asks for its queue. So an event costs O(open
//!   sessions + 1), not O(sessions), and 10,000 parked devices hold no events each. An event
//!   that falls out of the backlog before every parked session has taken it is dropped and
//!   counted once (`queue_full`);
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

/// The driver's `in-filter` and `out-filter`, replaceable at run time (SIGHUP). Every hub
/// keeps a copy and compares one version number per event to pick up a new pair.
#[derive(Debug, Default)]
pub struct DriverFilters {
    pair: std::sync::Mutex<(Filter, Filter)>,
    version: std::sync::atomic::AtomicU64,
}

impl DriverFilters {
    pub fn new(in_filter: Filter, out_filter: Filter) -> DriverFilters {
        DriverFilters {
            pair: std::sync::Mutex::new((in_filter, out_filter)),
            version: Default::default(),
        }
    }

    /// Replaces both; hubs use them from their next event on.
    pub fn set(&self, in_filter: Filter, out_filter: Filter) {
        *self.pair.lock().unwrap_or_else(|e| e.into_inner()) = (in_filter, out_filter);
        self.version
            .fetch_add(1, std::sync::atomic::Ordering::Release);
    }

    /// The current pair (`in`, `out`).
    pub fn get(&self) -> (Filter, Filter) {
        *self.pair.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn version(&self) -> u64 {
        self.version.load(std::sync::atomic::Ordering::Acquire)
    }
}

/// The hub's side of one session.
#[derive(Debug)]
pub struct Slot {
    pub conn_id: u32,
    /// Position in the hub's list of all sessions.
    index: Cell<usize>,
    /// Position in the hub's list of open receivers, or [`NOT_OPEN`].
    open_index: Cell<usize>,
    /// While parked: the backlog sequence number of the first event it has not taken.
    parked_at: Cell<u64>,
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

const NOT_OPEN: usize = usize::MAX;

impl ReceiveView {
    /// Logged in to receive, channel closed: events wait in the shard's backlog.
    fn parked(&self) -> bool {
        self.wants && !self.open
    }
    /// Logged in to receive, channel open: events go straight to the outbox.
    fn receiving(&self) -> bool {
        self.wants && self.open
    }
}

/// The last `max-out-queue` events of a shard, kept for its parked sessions.
#[derive(Debug, Default)]
struct Backlog {
    events: VecDeque<Arc<RoutedEvent>>,
    /// Sequence number of `events[0]`.
    first: u64,
    /// How many parked sessions have their `parked_at` at each sequence number, so the oldest
    /// one still needed is known when an event falls out (a handful of entries: sessions
    /// parked at the same moment share one).
    marks: std::collections::BTreeMap<u64, usize>,
}

impl Backlog {
    fn next(&self) -> u64 {
        self.first + self.events.len() as u64
    }
    fn mark(&mut self, at: u64) {
        *self.marks.entry(at).or_insert(0) += 1;
    }
    fn unmark(&mut self, at: u64) {
        if let std::collections::btree_map::Entry::Occupied(mut e) = self.marks.entry(at) {
            *e.get_mut() -= 1;
            if *e.get() == 0 {
                e.remove();
            }
        }
    }
    /// The oldest position a parked session still has to take from.
    fn oldest_needed(&self) -> Option<u64> {
        self.marks.keys().next().copied()
    }
}

/// Per-shard fan-out state.
pub struct Hub {
    slots: RefCell<Vec<Rc<Slot>>>,
    /// The sessions with their channel open (`ReceiveView::receiving`): who an event is
    /// written to.
    open: RefCell<Vec<Rc<Slot>>>,
    backlog: RefCell<Backlog>,
    /// Rings to the other shards (`true`: counted as ring traffic) and to the uplink.
    peers: RefCell<Vec<(Ring, bool)>>,
    stats: Arc<ShardStats>,
    max_out_queue: usize,
    receive_sent_events: bool,
    /// Driver-level filter for events from the uplink on their way to clients.
    in_filter: Cell<Filter>,
    /// Driver-level filter for events from clients before they are routed anywhere.
    out_filter: Cell<Filter>,
    /// Where both come from, and the version the copies above are of.
    filters: Arc<DriverFilters>,
    filters_seen: Cell<u64>,
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
        filters: Arc<DriverFilters>,
    ) -> Hub {
        let version = filters.version();
        let (in_filter, out_filter) = filters.get();
        Hub {
            slots: RefCell::new(Vec::new()),
            open: RefCell::new(Vec::new()),
            backlog: RefCell::new(Backlog::default()),
            peers: RefCell::new(Vec::new()),
            stats,
            max_out_queue,
            receive_sent_events,
            in_filter: Cell::new(in_filter),
            out_filter: Cell::new(out_filter),
            filters,
            filters_seen: Cell::new(version),
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
            open_index: Cell::new(NOT_OPEN),
            parked_at: Cell::new(0),
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
        self.set_view(slot, ReceiveView::default());
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
        let old = slot.view.get();
        if old.parked() {
            // What it was parked for, through the filter it had meanwhile.
            if view.wants {
                self.catch_up(slot);
            }
            self.backlog.borrow_mut().unmark(slot.parked_at.get());
        }
        if old.receiving() && !view.receiving() {
            self.leave_open(slot);
        }
        slot.view.set(view);
        if view.parked() {
            let mut b = self.backlog.borrow_mut();
            let at = b.next();
            slot.parked_at.set(at);
            b.mark(at);
        }
        if view.receiving() && !old.receiving() {
            let mut open = self.open.borrow_mut();
            slot.open_index.set(open.len());
            open.push(self.slots.borrow()[slot.index.get()].clone());
        }
        if !view.wants {
            self.clear_outbox(slot);
        } else if view.open {
            slot.wake();
        }
        if old.parked() && !view.parked() {
            self.trim_backlog();
        }
    }

    fn leave_open(&self, slot: &Slot) {
        let mut open = self.open.borrow_mut();
        let i = slot.open_index.replace(NOT_OPEN);
        if i < open.len() && std::ptr::eq(Rc::as_ptr(&open[i]), slot) {
            open.swap_remove(i);
            if let Some(moved) = open.get(i) {
                moved.open_index.set(i);
            }
        }
    }

    /// Moves what a parked session has not taken yet from the backlog into its outbox
    /// (filtered, bounded by `max-out-queue`, oldest dropped). Call before its queue is read
    /// (tcp/ip `chkdata`, `retr`, `stat`); opening the channel does it by itself.
    pub fn catch_up(&self, slot: &Slot) {
        let view = slot.view.get();
        if !view.parked() {
            return;
        }
        let skip = (!self.receive_sent_events).then_some(slot.conn_id);
        let (mut filtered, mut overflow, mut queued, mut lost) = (0u64, 0u64, 0i64, 0u64);
        {
            let mut b = self.backlog.borrow_mut();
            let at = slot.parked_at.get();
            // Events that fell out before this session took them (counted as `queue_full` when
            // they fell out; here only the session's own count, for tcp/ip `stat`).
            lost = lost.max(b.first.saturating_sub(at));
            let start = at.max(b.first);
            let mut q = slot.outbox.borrow_mut();
            for ev in b.events.range((start - b.first) as usize..) {
                if matches!(ev.origin, Origin::Client(id) if Some(id) == skip) {
                    continue;
                }
                if !view.filter.matches(&ev.event) {
                    filtered += 1;
                    continue;
                }
                if q.len() >= self.max_out_queue {
                    q.pop_front();
                    overflow += 1;
                } else {
                    queued += 1;
                }
                q.push_back(ev.clone());
            }
            let next = b.next();
            b.unmark(at);
            b.mark(next);
            slot.parked_at.set(next);
        }
        slot.dropped.set(slot.dropped.get() + lost + overflow);
        if filtered > 0 {
            self.stats.drop_event(DropReason::Filter, filtered);
        }
        if overflow > 0 {
            self.stats.drop_event(DropReason::QueueFull, overflow);
        }
        ShardStats::gauge_add(&self.stats.outbox_depth, queued);
        self.trim_backlog();
    }

    /// Lets go of backlog events no parked session needs any more (all of them once nobody is
    /// parked), so the backlog holds memory only while it serves someone.
    fn trim_backlog(&self) {
        let mut b = self.backlog.borrow_mut();
        let keep_from = b.oldest_needed().unwrap_or(b.next());
        let n = keep_from.saturating_sub(b.first).min(b.events.len() as u64) as usize;
        if n > 0 {
            b.events.drain(..n);
            b.first += n as u64;
            ShardStats::gauge_add(&self.stats.outbox_depth, -(n as i64));
            if b.events.is_empty() && b.events.capacity() > 64 {
                b.events.shrink_to(16);
            }
        }
    }

    /// Keeps an event for the parked sessions; the oldest falls out past `max-out-queue`
    /// (counted as `queue_full` when a parked session had not taken it yet).
    fn park(&self, ev: &Arc<RoutedEvent>) {
        let mut b = self.backlog.borrow_mut();
        if b.marks.is_empty() {
            return;
        }
        let mut gauge = 1i64;
        if b.events.len() >= self.max_out_queue {
            b.events.pop_front();
            let fell = b.first;
            b.first += 1;
            gauge -= 1;
            if b.oldest_needed().is_some_and(|at| at <= fell) {
                self.stats.drop_event(DropReason::QueueFull, 1);
            }
        }
        b.events.push_back(ev.clone());
        ShardStats::gauge_add(&self.stats.outbox_depth, gauge);
    }

    /// Empties a session's queue (ws1 `CLRQ`, tcp/ip `clrall`): its outbox, and for a parked
    /// session what the backlog still holds for it.
    pub fn clear_queue(&self, slot: &Slot) {
        if slot.view.get().parked() {
            let mut b = self.backlog.borrow_mut();
            let next = b.next();
            b.unmark(slot.parked_at.replace(next));
            b.mark(next);
        }
        self.clear_outbox(slot);
        self.trim_backlog();
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
        self.refresh_filters();
        if !self.out_filter.get().matches(&ev.event) {
            self.stats.drop_event(DropReason::Filter, 1);
            return Routed::Filtered;
        }
        self.deliver_with_current_filters(ev);
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

    /// Hands an event to every local session that should get it: the open ones now, the
    /// parked ones through the backlog.
    pub fn deliver(&self, ev: &Arc<RoutedEvent>) {
        self.refresh_filters();
        self.deliver_with_current_filters(ev);
    }

    /// [`Hub::deliver`] once the filters are known to be current (publish just looked).
    fn deliver_with_current_filters(&self, ev: &Arc<RoutedEvent>) {
        if ev.origin == Origin::Uplink && !self.in_filter.get().matches(&ev.event) {
            self.stats.drop_event(DropReason::Filter, 1);
            return;
        }
        let skip = match ev.origin {
            Origin::Client(id) if !self.receive_sent_events => Some(id),
            _ => None,
        };
        self.park(ev);
        let mut filtered = 0u64;
        let mut overflow = 0u64;
        let mut queued = 0i64;
        for slot in self.open.borrow().iter() {
            if Some(slot.conn_id) == skip {
                continue;
            }
            let view = slot.view.get();
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
            slot.wake();
        }
        if filtered > 0 {
            self.stats.drop_event(DropReason::Filter, filtered);
        }
        if overflow > 0 {
            self.stats.drop_event(DropReason::QueueFull, overflow);
        }
        ShardStats::gauge_add(&self.stats.outbox_depth, queued);
    }

    /// Takes a new pair of driver filters if there is one (one atomic load per event).
    fn refresh_filters(&self) {
        let v = self.filters.version();
        if v != self.filters_seen.get() {
            let (i, o) = self.filters.get();
            self.in_filter.set(i);
            self.out_filter.set(o);
            self.filters_seen.set(v);
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Stats;

    fn hub(max_out_queue: usize) -> Hub {
        Hub::new(
            Arc::new(ShardStats::default()),
            max_out_queue,
            false,
            Arc::new(DriverFilters::default()),
        )
    }

    fn event(class: u16, from: u32) -> Arc<RoutedEvent> {
        let ev = Event {
            class,
            vscp_type: 3,
            ..Default::default()
        };
        Arc::new(RoutedEvent::new(ev, Origin::Client(from), Instant::now()))
    }

    fn view(open: bool, filter: Filter) -> ReceiveView {
        ReceiveView {
            wants: true,
            open,
            filter,
        }
    }

    fn classes(slot: &Slot) -> Vec<u16> {
        slot.outbox.borrow().iter().map(|e| e.event.class).collect()
    }

    fn stats(h: &Hub) -> Stats {
        Stats::sum([&*h.stats])
    }

    /// Class 20 only.
    fn class_20() -> Filter {
        Filter::from_strings("0,20,0,-", "0,0xFFFF,0,-").unwrap()
    }

    #[test]
    fn parked_sessions_cost_one_backlog_entry_per_event_and_get_their_events_on_open() {
        let h = hub(100);
        let parked: Vec<_> = (1..=50).map(|id| h.register(id)).collect();
        for s in &parked {
            h.set_view(s, view(false, Filter::default()));
        }
        for _ in 0..10 {
            h.deliver(&event(20, 99));
        }
        // One entry per event, whatever the number of parked sessions; no outbox holds any.
        assert_eq!(h.backlog.borrow().events.len(), 10);
        assert!(parked.iter().all(|s| s.queued() == 0));
        assert_eq!(stats(&h).outbox_depth, 10);
        // Opening the channel hands over what came while parked, in order.
        h.set_view(&parked[0], view(true, Filter::default()));
        assert_eq!(parked[0].queued(), 10);
        assert_eq!(parked[0].ready(), Some(Wake::Outbox));
        assert_eq!(stats(&h).outbox_depth, 20);
        // Once no one is parked, the backlog lets go of everything.
        for s in &parked[1..] {
            h.unregister(s);
        }
        assert!(h.backlog.borrow().events.is_empty());
        assert_eq!(stats(&h).outbox_depth, 10);
    }

    #[test]
    fn a_parked_session_sees_only_events_after_it_parked_through_its_filter_not_its_own() {
        let h = hub(100);
        let early = h.register(1);
        h.set_view(&early, view(false, Filter::default()));
        h.deliver(&event(10, 99));
        let late = h.register(2);
        h.set_view(&late, view(false, class_20()));
        h.deliver(&event(20, 99));
        h.deliver(&event(10, 99)); // filtered out for `late`
        h.deliver(&event(20, 2)); // `late`'s own event
        h.catch_up(&late);
        assert_eq!(classes(&late), vec![20]);
        assert_eq!(stats(&h).dropped(DropReason::Filter), 1);
        h.catch_up(&early);
        assert_eq!(classes(&early), vec![10, 20, 10, 20]);
        // Caught up: nothing is kept for anyone.
        assert!(h.backlog.borrow().events.is_empty());
        // Later events queue behind what it took.
        h.deliver(&event(30, 99));
        h.catch_up(&early);
        assert_eq!(classes(&early), vec![10, 20, 10, 20, 30]);
    }

    #[test]
    fn the_backlog_is_bounded_and_what_falls_out_unread_is_counted_once() {
        let h = hub(5);
        let a = h.register(1);
        let b = h.register(2);
        h.set_view(&a, view(false, Filter::default()));
        h.set_view(&b, view(false, Filter::default()));
        for c in 0..8 {
            h.deliver(&event(c, 99));
        }
        assert_eq!(h.backlog.borrow().events.len(), 5);
        // Three events fell out; counted once each, not once per parked session.
        assert_eq!(stats(&h).dropped(DropReason::QueueFull), 3);
        assert_eq!(stats(&h).outbox_depth, 5);
        h.catch_up(&a);
        assert_eq!(classes(&a), vec![3, 4, 5, 6, 7]);
        // The session's own count (tcp/ip `stat`) includes what it missed.
        assert_eq!(a.dropped(), 3);
        // `b` still needs the backlog: it stays; an event falling out now is b's loss only.
        h.deliver(&event(8, 99));
        assert_eq!(stats(&h).dropped(DropReason::QueueFull), 4);
        // Events only `a` has taken fall out without being counted.
        h.catch_up(&b);
        h.deliver(&event(9, 99));
        assert_eq!(stats(&h).dropped(DropReason::QueueFull), 4);
    }

    #[test]
    fn open_sessions_get_events_at_once_and_closing_parks_behind_what_is_queued() {
        let h = hub(100);
        let s = h.register(1);
        h.set_view(&s, view(true, Filter::default()));
        h.deliver(&event(1, 99));
        assert_eq!(classes(&s), vec![1]);
        assert!(h.backlog.borrow().events.is_empty());
        // CLOSE with one event still queued: it stays, later ones wait in the backlog.
        h.set_view(&s, view(false, Filter::default()));
        h.deliver(&event(2, 99));
        assert_eq!(classes(&s), vec![1]);
        h.set_view(&s, view(true, Filter::default()));
        assert_eq!(classes(&s), vec![1, 2]);
        while s.pop().is_some() {
            h.taken(1);
        }
        // Clearing the queue of a parked session forgets its backlog share too.
        h.set_view(&s, view(false, Filter::default()));
        h.deliver(&event(4, 99));
        h.clear_queue(&s);
        h.set_view(&s, view(true, Filter::default()));
        assert_eq!(s.queued(), 0);
        assert_eq!(stats(&h).outbox_depth, 0);
        h.deliver(&event(5, 99));
        assert_eq!(classes(&s), vec![5]);
        // Logging out drops the queue: nothing is delivered to an unauthenticated session.
        h.set_view(&s, ReceiveView::default());
        assert_eq!(s.queued(), 0);
        h.deliver(&event(3, 99));
        assert_eq!(s.queued(), 0);
        assert_eq!(stats(&h).outbox_depth, 0);
    }
}
