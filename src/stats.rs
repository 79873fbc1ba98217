//! Per-shard counters.
//!
//! Each shard owns one [`ShardStats`] and is the only writer of it, so an increment is an
//! uncontended relaxed atomic add on a cache line no other core writes. Readers (tests, the
//! metrics endpoint) sum the shards when they ask; nothing is shared per event between cores.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use vscp_proto::Dialect;

/// Why an event did not reach a session or the bus. Low-cardinality metric label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// A session's outbound queue was full; its oldest event was dropped.
    QueueFull,
    /// A session, user or driver-level filter did not match.
    Filter,
    /// The user lacks the right to send or receive it.
    Rights,
    /// The event could not be parsed.
    Malformed,
    /// The message was larger than `max-message-size`.
    Oversized,
}

impl DropReason {
    /// All reasons, in label order.
    pub const ALL: [DropReason; 5] = [
        DropReason::QueueFull,
        DropReason::Filter,
        DropReason::Rights,
        DropReason::Malformed,
        DropReason::Oversized,
    ];

    /// The metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::QueueFull => "queue_full",
            DropReason::Filter => "filter",
            DropReason::Rights => "rights",
            DropReason::Malformed => "malformed",
            DropReason::Oversized => "oversized",
        }
    }
}

/// Why a connection was turned away before or during login. Low-cardinality metric label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RejectReason {
    /// `max-clients` sessions were already connected.
    MaxClients,
    /// The peer address is not in the user's `remotes`.
    Remotes,
    /// No successful AUTH within `auth-timeout`.
    AuthDeadline,
    /// The HTTP upgrade failed or timed out (wrong path, not a websocket request).
    Handshake,
}

impl RejectReason {
    /// All reasons, in label order.
    pub const ALL: [RejectReason; 4] = [
        RejectReason::MaxClients,
        RejectReason::Remotes,
        RejectReason::AuthDeadline,
        RejectReason::Handshake,
    ];

    /// The metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::MaxClients => "max_clients",
            RejectReason::Remotes => "remotes",
            RejectReason::AuthDeadline => "auth_deadline",
            RejectReason::Handshake => "handshake",
        }
    }
}

/// Counters of one shard. Written only by the owning shard.
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct ShardStats {
    pub sessions_active: AtomicI64,
    pub sessions_accepted: AtomicU64,
    rejected: [AtomicU64; 4],
    pub logins_ok: AtomicU64,
    pub logins_failed: AtomicU64,
    /// Events accepted from clients, per dialect (indexed by `Dialect::index`).
    received: [AtomicU64; Dialect::COUNT],
    /// Events written to client sockets, per dialect (indexed by `Dialect::index`).
    delivered: [AtomicU64; Dialect::COUNT],
    dropped: [AtomicU64; 5],
    /// Events currently waiting in this shard's session outboxes.
    pub outbox_depth: AtomicI64,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    /// Events forwarded to other shards.
    pub ring_sent: AtomicU64,
    /// Events received from other shards.
    pub ring_received: AtomicU64,
    /// PBKDF2 checks run (cache misses), and logins answered from the credential cache.
    pub login_slow_checks: AtomicU64,
    pub login_cache_hits: AtomicU64,
    /// Event accepted → written to the receiving socket.
    pub delivery_latency: Histogram,
    /// AUTH received → verdict.
    pub login_time: Histogram,
}

/// Upper bounds (seconds) of the latency histogram buckets: 50 µs to 2.5 s.
pub const LATENCY_BUCKETS: [f64; 15] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5,
];

/// A fixed-bucket histogram written by one shard only (relaxed adds on its own cache lines)
/// and summed with the other shards' at scrape time.
#[derive(Debug, Default)]
pub struct Histogram {
    /// Non-cumulative counts per bucket; the last slot is +Inf.
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, d: std::time::Duration) {
        let secs = d.as_secs_f64();
        let i = LATENCY_BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.buckets[i].fetch_add(1, Relaxed);
        self.sum_nanos
            .fetch_add(d.as_nanos().min(u64::MAX as u128) as u64, Relaxed);
    }

    /// Adds this histogram into `acc` (non-cumulative counts, sum in seconds).
    pub fn add_to(&self, acc: &mut HistogramSnapshot) {
        for (a, b) in acc.counts.iter_mut().zip(self.buckets.iter()) {
            *a += b.load(Relaxed);
        }
        acc.sum_seconds += self.sum_nanos.load(Relaxed) as f64 / 1e9;
    }
}

/// A histogram summed over shards.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HistogramSnapshot {
    /// Non-cumulative counts per bucket of [`LATENCY_BUCKETS`], then +Inf.
    pub counts: [u64; LATENCY_BUCKETS.len() + 1],
    pub sum_seconds: f64,
}

impl HistogramSnapshot {
    /// Number of observations.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }
}

impl ShardStats {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    pub(crate) fn reject(&self, r: RejectReason) {
        Self::add(&self.rejected[r as usize], 1);
    }

    pub(crate) fn drop_event(&self, r: DropReason, n: u64) {
        Self::add(&self.dropped[r as usize], n);
    }

    pub(crate) fn received(&self, d: Dialect) {
        Self::add(&self.received[d.index()], 1);
    }

    pub(crate) fn delivered(&self, d: Dialect, n: u64) {
        Self::add(&self.delivered[d.index()], n);
    }

    pub(crate) fn gauge_add(g: &AtomicI64, n: i64) {
        g.fetch_add(n, Relaxed);
    }
}

/// A point-in-time sum over all shards.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stats {
    pub sessions_active: i64,
    pub sessions_accepted: u64,
    pub rejected_max_clients: u64,
    pub rejected_remotes: u64,
    pub rejected_auth_deadline: u64,
    pub rejected_handshake: u64,
    pub logins_ok: u64,
    pub logins_failed: u64,
    pub received_ws1: u64,
    pub received_ws2: u64,
    pub delivered_ws1: u64,
    pub delivered_ws2: u64,
    pub dropped_queue_full: u64,
    pub dropped_filter: u64,
    pub dropped_rights: u64,
    pub dropped_malformed: u64,
    pub dropped_oversized: u64,
    pub outbox_depth: i64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub ring_sent: u64,
    pub ring_received: u64,
    pub login_slow_checks: u64,
    pub login_cache_hits: u64,
    pub delivery_latency: HistogramSnapshot,
    pub login_time: HistogramSnapshot,
}

impl Stats {
    /// Sums the shards' counters.
    pub fn sum<'a>(shards: impl IntoIterator<Item = &'a ShardStats>) -> Stats {
        let mut s = Stats::default();
        for sh in shards {
            s.sessions_active += sh.sessions_active.load(Relaxed);
            s.sessions_accepted += sh.sessions_accepted.load(Relaxed);
            s.rejected_max_clients += sh.rejected[RejectReason::MaxClients as usize].load(Relaxed);
            s.rejected_remotes += sh.rejected[RejectReason::Remotes as usize].load(Relaxed);
            s.rejected_auth_deadline +=
                sh.rejected[RejectReason::AuthDeadline as usize].load(Relaxed);
            s.rejected_handshake += sh.rejected[RejectReason::Handshake as usize].load(Relaxed);
            s.logins_ok += sh.logins_ok.load(Relaxed);
            s.logins_failed += sh.logins_failed.load(Relaxed);
            let (ws1, ws2) = (Dialect::Ws1.index(), Dialect::Ws2.index());
            s.received_ws1 += sh.received[ws1].load(Relaxed);
            s.received_ws2 += sh.received[ws2].load(Relaxed);
            s.delivered_ws1 += sh.delivered[ws1].load(Relaxed);
            s.delivered_ws2 += sh.delivered[ws2].load(Relaxed);
            s.dropped_queue_full += sh.dropped[DropReason::QueueFull as usize].load(Relaxed);
            s.dropped_filter += sh.dropped[DropReason::Filter as usize].load(Relaxed);
            s.dropped_rights += sh.dropped[DropReason::Rights as usize].load(Relaxed);
            s.dropped_malformed += sh.dropped[DropReason::Malformed as usize].load(Relaxed);
            s.dropped_oversized += sh.dropped[DropReason::Oversized as usize].load(Relaxed);
            s.outbox_depth += sh.outbox_depth.load(Relaxed);
            s.bytes_in += sh.bytes_in.load(Relaxed);
            s.bytes_out += sh.bytes_out.load(Relaxed);
            s.ring_sent += sh.ring_sent.load(Relaxed);
            s.ring_received += sh.ring_received.load(Relaxed);
            s.login_slow_checks += sh.login_slow_checks.load(Relaxed);
            s.login_cache_hits += sh.login_cache_hits.load(Relaxed);
            sh.delivery_latency.add_to(&mut s.delivery_latency);
            sh.login_time.add_to(&mut s.login_time);
        }
        s
    }
}
