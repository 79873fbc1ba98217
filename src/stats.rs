//! Per-shard counters.
//!
//! Each shard owns one [`ShardStats`] and is the only writer of it, so an increment is an
//! uncontended relaxed atomic add on a cache line no other core writes. Readers (tests, the
//! metrics endpoint) sum the shards when they ask; nothing is shared per event between cores.
//! The uplink's counters ([`UplinkStats`]) are written by the uplink executor alone.
//!
//! Per-dialect counters are arrays indexed by [`Dialect::index`], so a new dialect adds no
//! field here, in the metrics or in the tests' view of them.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};
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
    /// How many reasons there are.
    pub const COUNT: usize = 5;
    /// All reasons, in label order (`ALL[r as usize] == r`).
    pub const ALL: [DropReason; Self::COUNT] = [
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
    /// How many reasons there are.
    pub const COUNT: usize = 4;
    /// All reasons, in label order (`ALL[r as usize] == r`).
    pub const ALL: [RejectReason; Self::COUNT] = [
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

/// How a TLS handshake ended. Low-cardinality metric label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TlsOutcome {
    /// Completed.
    Ok,
    /// The client's certificate was missing or not signed by our CA (`ssl_verify_peer`).
    BadCertificate,
    /// Any other failure: no common version or suite, not TLS at all, a bad message.
    Error,
    /// The client went away, or the handshake deadline passed, before it completed.
    Abandoned,
}

impl TlsOutcome {
    /// How many outcomes there are.
    pub const COUNT: usize = 4;
    /// All outcomes, in label order (`ALL[r as usize] == r`).
    pub const ALL: [TlsOutcome; Self::COUNT] = [
        TlsOutcome::Ok,
        TlsOutcome::BadCertificate,
        TlsOutcome::Error,
        TlsOutcome::Abandoned,
    ];

    /// The metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            TlsOutcome::Ok => "ok",
            TlsOutcome::BadCertificate => "bad_certificate",
            TlsOutcome::Error => "error",
            TlsOutcome::Abandoned => "abandoned",
        }
    }
}

/// Counters of one shard. Written only by the owning shard.
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct ShardStats {
    pub sessions_active: AtomicI64,
    pub sessions_accepted: AtomicU64,
    rejected: [AtomicU64; RejectReason::COUNT],
    pub logins_ok: AtomicU64,
    pub logins_failed: AtomicU64,
    /// Events accepted from clients, per dialect.
    received: [AtomicU64; Dialect::COUNT],
    /// Events written to client sockets, per dialect.
    delivered: [AtomicU64; Dialect::COUNT],
    dropped: [AtomicU64; DropReason::COUNT],
    /// Events currently waiting in this shard's session outboxes.
    pub outbox_depth: AtomicI64,
    /// Sessions waiting for room in a full ring (to another shard or to the uplink): their
    /// sockets are not read meanwhile. This is backpressure at work, not a loss.
    pub publishers_waiting: AtomicI64,
    /// Events answered with an error because the uplink did not confirm them in time or
    /// dropped them (`ack-from-broker`); they may still arrive, the client was told to resend.
    pub unconfirmed: AtomicU64,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    /// Writes issued to client sockets: one per send(2) call, whatever it carried, so that
    /// writes per delivery shows how well output is batched.
    pub socket_writes: AtomicU64,
    /// Websocket pings sent to sessions that had been silent for `ws-ping-interval`.
    pub pings_sent: AtomicU64,
    /// Sessions closed because nothing (no pong, no other input) arrived within
    /// `ws-pong-timeout` of a ping: the peer is gone.
    pub dead_peers: AtomicU64,
    /// Events forwarded to other shards.
    pub ring_sent: AtomicU64,
    /// Events received from other shards.
    pub ring_received: AtomicU64,
    /// PBKDF2 checks run (cache misses), and logins answered from the credential cache.
    pub login_slow_checks: AtomicU64,
    pub login_cache_hits: AtomicU64,
    /// TLS handshakes, by [`TlsOutcome`].
    tls_handshakes: [AtomicU64; TlsOutcome::COUNT],
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

    pub(crate) fn tls_handshake(&self, o: TlsOutcome) {
        Self::add(&self.tls_handshakes[o as usize], 1);
    }

    pub(crate) fn drop_event(&self, r: DropReason, n: u64) {
        Self::add(&self.dropped[r as usize], n);
    }

    pub(crate) fn received(&self, d: Dialect, n: u64) {
        Self::add(&self.received[d.index()], n);
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
    /// Connections turned away, by [`RejectReason`] (see [`Stats::rejected`]).
    pub rejected: [u64; RejectReason::COUNT],
    pub logins_ok: u64,
    pub logins_failed: u64,
    /// Events accepted from clients, by dialect (see [`Stats::received`]).
    pub received: [u64; Dialect::COUNT],
    /// Events written to client sockets, by dialect (see [`Stats::delivered`]).
    pub delivered: [u64; Dialect::COUNT],
    /// Events not delivered, by [`DropReason`] (see [`Stats::dropped`]).
    pub dropped: [u64; DropReason::COUNT],
    pub outbox_depth: i64,
    pub publishers_waiting: i64,
    pub unconfirmed: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub socket_writes: u64,
    pub pings_sent: u64,
    pub dead_peers: u64,
    pub ring_sent: u64,
    pub ring_received: u64,
    pub login_slow_checks: u64,
    pub login_cache_hits: u64,
    /// TLS handshakes, by [`TlsOutcome`] (see [`Stats::tls_handshakes`]).
    pub tls_handshakes: [u64; TlsOutcome::COUNT],
    pub delivery_latency: HistogramSnapshot,
    pub login_time: HistogramSnapshot,
}

impl Stats {
    /// Sums the shards' counters.
    pub fn sum<'a>(shards: impl IntoIterator<Item = &'a ShardStats>) -> Stats {
        fn add_all<const N: usize>(acc: &mut [u64; N], from: &[AtomicU64; N]) {
            for (a, c) in acc.iter_mut().zip(from) {
                *a += c.load(Relaxed);
            }
        }
        let mut s = Stats::default();
        for sh in shards {
            s.sessions_active += sh.sessions_active.load(Relaxed);
            s.sessions_accepted += sh.sessions_accepted.load(Relaxed);
            add_all(&mut s.rejected, &sh.rejected);
            s.logins_ok += sh.logins_ok.load(Relaxed);
            s.logins_failed += sh.logins_failed.load(Relaxed);
            add_all(&mut s.received, &sh.received);
            add_all(&mut s.delivered, &sh.delivered);
            add_all(&mut s.dropped, &sh.dropped);
            s.outbox_depth += sh.outbox_depth.load(Relaxed);
            s.publishers_waiting += sh.publishers_waiting.load(Relaxed);
            s.unconfirmed += sh.unconfirmed.load(Relaxed);
            s.bytes_in += sh.bytes_in.load(Relaxed);
            s.bytes_out += sh.bytes_out.load(Relaxed);
            s.socket_writes += sh.socket_writes.load(Relaxed);
            s.pings_sent += sh.pings_sent.load(Relaxed);
            s.dead_peers += sh.dead_peers.load(Relaxed);
            s.ring_sent += sh.ring_sent.load(Relaxed);
            s.ring_received += sh.ring_received.load(Relaxed);
            s.login_slow_checks += sh.login_slow_checks.load(Relaxed);
            s.login_cache_hits += sh.login_cache_hits.load(Relaxed);
            add_all(&mut s.tls_handshakes, &sh.tls_handshakes);
            sh.delivery_latency.add_to(&mut s.delivery_latency);
            sh.login_time.add_to(&mut s.login_time);
        }
        s
    }

    /// Connections turned away for `r`.
    pub fn rejected(&self, r: RejectReason) -> u64 {
        self.rejected[r as usize]
    }

    /// TLS handshakes that ended with `o`.
    pub fn tls_handshakes(&self, o: TlsOutcome) -> u64 {
        self.tls_handshakes[o as usize]
    }

    /// Events not delivered for `r`.
    pub fn dropped(&self, r: DropReason) -> u64 {
        self.dropped[r as usize]
    }

    /// Events accepted from clients speaking `d`.
    pub fn received(&self, d: Dialect) -> u64 {
        self.received[d.index()]
    }

    /// Events written to clients speaking `d`.
    pub fn delivered(&self, d: Dialect) -> u64 {
        self.delivered[d.index()]
    }
}

/// The configuration's generation, for `/metrics`: 1 for the one the server started with, one
/// more for each SIGHUP that applied a valid config; when that last happened (Unix seconds);
/// and whether the last SIGHUP's config was valid (an invalid one changes nothing).
#[derive(Debug)]
pub struct ConfigGeneration {
    generation: AtomicU64,
    applied_at: AtomicU64,
    last_valid: AtomicBool,
}

impl ConfigGeneration {
    /// The start-up config, applied at `now` (Unix seconds).
    pub fn new(now: u64) -> ConfigGeneration {
        ConfigGeneration {
            generation: AtomicU64::new(1),
            applied_at: AtomicU64::new(now),
            last_valid: AtomicBool::new(true),
        }
    }

    /// A reload at `now` (Unix seconds) applied a valid config (`true`) or refused it.
    pub fn reloaded(&self, valid: bool, now: u64) {
        if valid {
            self.generation.fetch_add(1, Relaxed);
            self.applied_at.store(now, Relaxed);
        }
        self.last_valid.store(valid, Relaxed);
    }

    /// The generation, when it was applied and whether the last reload was valid.
    pub fn get(&self) -> (u64, u64, bool) {
        (
            self.generation.load(Relaxed),
            self.applied_at.load(Relaxed),
            self.last_valid.load(Relaxed),
        )
    }
}

/// Counters of the uplink, written only by the uplink executor (and, for the fields an
/// implementation owns, by that implementation on the same executor). They are exported as
/// `vscp_uplink_*` metrics; an uplink leaves the ones it has no use for at zero.
#[derive(Debug, Default)]
pub struct UplinkStats {
    /// Events the uplink received from the shards.
    pub from_sessions: AtomicU64,
    /// Events the uplink handed to the shards.
    pub to_sessions: AtomicU64,
    /// The far side (broker, host) is connected; `/readyz` waits for it.
    pub connected: AtomicBool,
    /// Successful reconnections after the first connection.
    pub reconnects: AtomicU64,
    /// Messages handed to the far side (MQTT PUBLISH packets sent, host queue pushes).
    pub published: AtomicU64,
    /// Acknowledgements received (MQTT PUBACK).
    pub acked: AtomicU64,
    /// Messages sent and not yet acknowledged.
    pub in_flight: AtomicI64,
    /// Messages held while the far side is away or slow.
    pub buffered: AtomicI64,
    /// Messages dropped because that buffer was full.
    pub dropped_buffer_full: AtomicU64,
    /// Messages still held when the uplink stopped (after its drain).
    pub dropped_shutdown: AtomicU64,
    /// Messages not made because the far side would not take their address (an MQTT topic
    /// that a template rendered invalid).
    pub dropped_invalid: AtomicU64,
    /// Messages sent again after a reconnection (MQTT QoS 1/2 re-sends).
    pub resent: AtomicU64,
    /// Messages received from the far side.
    pub received: AtomicU64,
    /// Received messages not delivered, by reason: the uplink's filter, an echo of our own, a
    /// duplicate, over the size limit.
    pub discarded_filter: AtomicU64,
    pub discarded_echo: AtomicU64,
    pub discarded_duplicate: AtomicU64,
    pub discarded_oversized: AtomicU64,
    /// Subscriptions the far side refused.
    pub subscribe_failures: AtomicU64,
    /// Messages from the far side that could not be decoded.
    pub malformed: AtomicU64,
}

#[cfg(test)]
mod config_generation_tests {
    use super::ConfigGeneration;

    #[test]
    fn only_a_valid_reload_makes_a_generation() {
        let g = ConfigGeneration::new(100);
        assert_eq!(g.get(), (1, 100, true));
        g.reloaded(false, 200);
        assert_eq!(g.get(), (1, 100, false));
        g.reloaded(true, 300);
        assert_eq!(g.get(), (2, 300, true));
    }
}
