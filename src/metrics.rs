//! Every metric the server exports, in one place, and their rendering for `/metrics`.
//!
//! Nothing here runs per event. Shards count into their own [`ShardStats`] (relaxed adds on
//! cache lines no other core writes); a scrape reads every shard, sets the totals into a
//! per-server `metrics-exporter-prometheus` recorder (counters as absolute values, gauges as
//! values) and renders it. The two latency histograms are per-shard fixed-bucket arrays summed
//! here and written in the text format directly, because the exporter's histograms would have
//! every core write shared atomics per event.
//!
//! Labels are low-cardinality only: `core`, `dialect`, `reason`, `result`, `direction`,
//! `uplink`. Never user names, GUIDs or topics.

use crate::admission::{Admission, AdmissionStats, Limit};
use crate::stats::{
    DropReason, HistogramSnapshot, RejectReason, ShardStats, Stats, TlsOutcome, UplinkStats,
    LATENCY_BUCKETS,
};
use crate::tls::TlsStore;
use metrics::{counter, gauge, Unit};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use std::fmt::Write as _;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use vscp_proto::Dialect;

/// Metric names (Prometheus style: `_total` counters, base units).
pub mod names {
    pub const BUILD_INFO: &str = "vscp_build_info";
    pub const SESSIONS_ACTIVE: &str = "vscp_sessions_active";
    pub const SESSIONS_ACCEPTED: &str = "vscp_sessions_accepted_total";
    pub const SESSIONS_REJECTED: &str = "vscp_sessions_rejected_total";
    pub const SESSIONS_LIMIT: &str = "vscp_sessions_limit";
    pub const LOGINS: &str = "vscp_logins_total";
    pub const LOGIN_SLOW_CHECKS: &str = "vscp_login_password_checks_total";
    pub const LOGIN_CACHE_HITS: &str = "vscp_login_cache_hits_total";
    pub const EVENTS_RECEIVED: &str = "vscp_events_received_total";
    pub const EVENTS_DELIVERED: &str = "vscp_events_delivered_total";
    pub const EVENTS_DROPPED: &str = "vscp_events_dropped_total";
    pub const OUTBOX_EVENTS: &str = "vscp_outbox_events";
    pub const OUTBOX_CAPACITY: &str = "vscp_outbox_capacity_events";
    pub const PUBLISHERS_WAITING: &str = "vscp_publishers_waiting";
    pub const EVENTS_UNCONFIRMED: &str = "vscp_events_unconfirmed_total";
    pub const BYTES_RECEIVED: &str = "vscp_bytes_received_total";
    pub const BYTES_SENT: &str = "vscp_bytes_sent_total";
    pub const SOCKET_WRITES: &str = "vscp_socket_writes_total";
    pub const PINGS_SENT: &str = "vscp_pings_sent_total";
    pub const SESSIONS_DEAD: &str = "vscp_sessions_dead_total";
    pub const RING_EVENTS: &str = "vscp_ring_events_total";
    pub const RING_OCCUPANCY: &str = "vscp_ring_occupancy_events";
    pub const RING_CAPACITY: &str = "vscp_ring_capacity_events";
    pub const UPLINK_EVENTS: &str = "vscp_uplink_events_total";
    pub const UPLINK_CONNECTED: &str = "vscp_uplink_connected";
    pub const UPLINK_RECONNECTS: &str = "vscp_uplink_reconnects_total";
    pub const UPLINK_PUBLISHED: &str = "vscp_uplink_published_total";
    pub const UPLINK_ACKED: &str = "vscp_uplink_acked_total";
    pub const UPLINK_IN_FLIGHT: &str = "vscp_uplink_in_flight";
    pub const UPLINK_BUFFERED: &str = "vscp_uplink_buffered";
    pub const UPLINK_DROPPED: &str = "vscp_uplink_dropped_total";
    pub const UPLINK_MALFORMED: &str = "vscp_uplink_malformed_total";
    pub const UPLINK_RESENT: &str = "vscp_uplink_resent_total";
    pub const UPLINK_RECEIVED: &str = "vscp_uplink_received_total";
    pub const UPLINK_DISCARDED: &str = "vscp_uplink_discarded_total";
    pub const UPLINK_SUBSCRIBE_FAILURES: &str = "vscp_uplink_subscribe_failures_total";
    pub const TLS_HANDSHAKES: &str = "vscp_tls_handshakes_total";
    pub const TLS_CERTIFICATE_EXPIRY: &str = "vscp_tls_certificate_expiry_seconds";
    pub const TLS_RELOADS: &str = "vscp_tls_reloads_total";
    pub const CONFIG_GENERATION: &str = "vscp_config_generation";
    pub const CONFIG_APPLIED_AT: &str = "vscp_config_last_reload_success_timestamp_seconds";
    pub const CONFIG_LAST_VALID: &str = "vscp_config_last_reload_successful";
    pub const DELIVERY_LATENCY: &str = "vscp_delivery_latency_seconds";
    pub const LOGIN_DURATION: &str = "vscp_login_duration_seconds";
    // Abuse limits (crate::admission).
    pub const ADMISSION_REFUSED: &str = "vscp_admission_refused_total";
    pub const ADMISSION_EPISODES: &str = "vscp_admission_episodes_total";
    pub const LOGINS_REFUSED: &str = "vscp_login_attempts_refused_total";
    pub const UNAUTHENTICATED: &str = "vscp_connections_unauthenticated";
    pub const ADMISSION_ADDRESSES: &str = "vscp_admission_addresses";
    pub const ADMISSION_CAPACITY: &str = "vscp_admission_addresses_capacity";
    pub const ADMISSION_EVICTIONS: &str = "vscp_admission_evictions_total";
    pub const PROXY_HEADERS: &str = "vscp_proxy_headers_total";
    pub const REFUSALS_UNANSWERED: &str = "vscp_refusals_unanswered_total";
}

use names::*;

/// The limits an operator compares the gauges against.
#[derive(Clone, Debug)]
pub struct Limits {
    /// `max-clients` as it is now (SIGHUP may change it).
    pub max_clients: Arc<std::sync::atomic::AtomicUsize>,
    pub max_out_queue: usize,
    pub max_in_queue: usize,
    pub shards: usize,
    /// Which config runs, and how the last SIGHUP went.
    pub config: Arc<crate::stats::ConfigGeneration>,
}

/// Renders `/metrics` for one server.
pub struct Exporter {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    shards: Vec<Arc<ShardStats>>,
    uplink: Option<(&'static str, Arc<UplinkStats>)>,
    limits: Limits,
    /// With a TLS listener: the certificate's expiry and reloads; the handshake counters.
    tls: Option<Arc<TlsStore>>,
    /// The abuse limits' counters.
    admission: Option<Arc<Admission>>,
}

impl std::fmt::Debug for Exporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exporter")
            .field("shards", &self.shards.len())
            .finish()
    }
}

impl Exporter {
    pub fn new(
        shards: Vec<Arc<ShardStats>>,
        uplink: Option<(&'static str, Arc<UplinkStats>)>,
        limits: Limits,
    ) -> Exporter {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, describe_all);
        Exporter {
            recorder,
            handle,
            shards,
            uplink,
            limits,
            tls: None,
            admission: None,
        }
    }

    /// Adds the abuse limits' metrics.
    pub fn with_admission(mut self, admission: Arc<Admission>) -> Exporter {
        self.admission = Some(admission);
        self
    }

    /// Adds the TLS metrics of a server with TLS listeners.
    pub fn with_tls(mut self, tls: Option<Arc<TlsStore>>) -> Exporter {
        self.tls = tls;
        self
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let per_core: Vec<Stats> = self
            .shards
            .iter()
            .map(|s| Stats::sum(std::iter::once(s.as_ref())))
            .collect();
        metrics::with_local_recorder(&self.recorder, || {
            self.set_values(&per_core);
        });
        let mut text = self.handle.render();
        let total = Stats::sum(self.shards.iter().map(|s| s.as_ref()));
        write_histogram(
            &mut text,
            DELIVERY_LATENCY,
            "Time from an event's acceptance to its write to a receiving socket.",
            &total.delivery_latency,
        );
        write_histogram(
            &mut text,
            LOGIN_DURATION,
            "Time to verify an AUTH (password check and address rules).",
            &total.login_time,
        );
        text
    }

    fn set_values(&self, per_core: &[Stats]) {
        gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
        gauge!(SESSIONS_LIMIT).set(self.limits.max_clients.load(Relaxed) as f64);
        let (generation, applied_at, last_valid) = self.limits.config.get();
        gauge!(CONFIG_GENERATION).set(generation as f64);
        gauge!(CONFIG_APPLIED_AT).set(applied_at as f64);
        gauge!(CONFIG_LAST_VALID).set(f64::from(u8::from(last_valid)));
        gauge!(OUTBOX_CAPACITY).set(self.limits.max_out_queue as f64);
        gauge!(RING_CAPACITY).set(self.limits.max_in_queue as f64);
        let mut ring_sent = 0u64;
        let mut ring_received = 0u64;
        for (i, s) in per_core.iter().enumerate() {
            let core = i.to_string();
            gauge!(SESSIONS_ACTIVE, "core" => core.clone()).set(s.sessions_active as f64);
            counter!(SESSIONS_ACCEPTED, "core" => core.clone()).absolute(s.sessions_accepted);
            for reason in RejectReason::ALL {
                counter!(SESSIONS_REJECTED, "core" => core.clone(), "reason" => reason.as_str())
                    .absolute(s.rejected(reason));
            }
            counter!(LOGINS, "core" => core.clone(), "result" => "ok").absolute(s.logins_ok);
            counter!(LOGINS, "core" => core.clone(), "result" => "failed")
                .absolute(s.logins_failed);
            counter!(LOGIN_SLOW_CHECKS, "core" => core.clone()).absolute(s.login_slow_checks);
            counter!(LOGIN_CACHE_HITS, "core" => core.clone()).absolute(s.login_cache_hits);
            for dialect in Dialect::ALL {
                let label = dialect.as_str();
                counter!(EVENTS_RECEIVED, "core" => core.clone(), "dialect" => label)
                    .absolute(s.received(dialect));
                counter!(EVENTS_DELIVERED, "core" => core.clone(), "dialect" => label)
                    .absolute(s.delivered(dialect));
            }
            for reason in DropReason::ALL {
                counter!(EVENTS_DROPPED, "core" => core.clone(), "reason" => reason.as_str())
                    .absolute(s.dropped(reason));
            }
            gauge!(OUTBOX_EVENTS, "core" => core.clone()).set(s.outbox_depth as f64);
            gauge!(PUBLISHERS_WAITING, "core" => core.clone()).set(s.publishers_waiting as f64);
            counter!(EVENTS_UNCONFIRMED, "core" => core.clone()).absolute(s.unconfirmed);
            counter!(BYTES_RECEIVED, "core" => core.clone()).absolute(s.bytes_in);
            counter!(BYTES_SENT, "core" => core.clone()).absolute(s.bytes_out);
            counter!(SOCKET_WRITES, "core" => core.clone()).absolute(s.socket_writes);
            counter!(PINGS_SENT, "core" => core.clone()).absolute(s.pings_sent);
            counter!(SESSIONS_DEAD, "core" => core.clone()).absolute(s.dead_peers);
            counter!(RING_EVENTS, "core" => core.clone(), "direction" => "sent")
                .absolute(s.ring_sent);
            counter!(RING_EVENTS, "core" => core.clone(), "direction" => "received")
                .absolute(s.ring_received);
            if self.tls.is_some() {
                for outcome in TlsOutcome::ALL {
                    counter!(TLS_HANDSHAKES, "core" => core.clone(), "result" => outcome.as_str())
                        .absolute(s.tls_handshakes(outcome));
                }
            }
            ring_sent += s.ring_sent;
            ring_received += s.ring_received;
        }
        // Every event pushed into a ring between shards is counted once by its sender and once
        // by its receiver; the difference is what sits in the rings right now.
        gauge!(RING_OCCUPANCY).set(ring_sent.saturating_sub(ring_received) as f64);
        if let Some(tls) = &self.tls {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64);
            if let Some(left) = tls.expiry_seconds(now) {
                gauge!(TLS_CERTIFICATE_EXPIRY).set(left as f64);
            }
            let (ok, failed) = tls.reloads();
            counter!(TLS_RELOADS, "result" => "ok").absolute(ok);
            counter!(TLS_RELOADS, "result" => "failed").absolute(failed);
        }
        if let Some(a) = &self.admission {
            set_admission(&a.stats());
        }
        if let Some((name, u)) = &self.uplink {
            let name = *name;
            counter!(UPLINK_EVENTS, "uplink" => name, "direction" => "from_sessions")
                .absolute(u.from_sessions.load(Relaxed));
            counter!(UPLINK_EVENTS, "uplink" => name, "direction" => "to_sessions")
                .absolute(u.to_sessions.load(Relaxed));
            gauge!(UPLINK_CONNECTED, "uplink" => name).set(if u.connected.load(Relaxed) {
                1.0
            } else {
                0.0
            });
            counter!(UPLINK_RECONNECTS, "uplink" => name).absolute(u.reconnects.load(Relaxed));
            counter!(UPLINK_PUBLISHED, "uplink" => name).absolute(u.published.load(Relaxed));
            counter!(UPLINK_ACKED, "uplink" => name).absolute(u.acked.load(Relaxed));
            gauge!(UPLINK_IN_FLIGHT, "uplink" => name).set(u.in_flight.load(Relaxed) as f64);
            gauge!(UPLINK_BUFFERED, "uplink" => name).set(u.buffered.load(Relaxed) as f64);
            for (reason, c) in [
                ("buffer_full", &u.dropped_buffer_full),
                ("shutdown", &u.dropped_shutdown),
                ("invalid_topic", &u.dropped_invalid),
            ] {
                counter!(UPLINK_DROPPED, "uplink" => name, "reason" => reason)
                    .absolute(c.load(Relaxed));
            }
            for (reason, c) in [
                ("filter", &u.discarded_filter),
                ("echo", &u.discarded_echo),
                ("duplicate", &u.discarded_duplicate),
                ("oversized", &u.discarded_oversized),
            ] {
                counter!(UPLINK_DISCARDED, "uplink" => name, "reason" => reason)
                    .absolute(c.load(Relaxed));
            }
            counter!(UPLINK_MALFORMED, "uplink" => name).absolute(u.malformed.load(Relaxed));
            counter!(UPLINK_RESENT, "uplink" => name).absolute(u.resent.load(Relaxed));
            counter!(UPLINK_RECEIVED, "uplink" => name).absolute(u.received.load(Relaxed));
            counter!(UPLINK_SUBSCRIBE_FAILURES, "uplink" => name)
                .absolute(u.subscribe_failures.load(Relaxed));
        }
    }
}

/// The abuse limits' counters and gauges.
fn set_admission(a: &AdmissionStats) {
    for limit in Limit::ALL {
        counter!(ADMISSION_REFUSED, "reason" => limit.as_str()).absolute(a.refused(limit));
        counter!(ADMISSION_EPISODES, "reason" => limit.as_str()).absolute(a.episodes(limit));
    }
    counter!(LOGINS_REFUSED).absolute(a.logins_refused);
    gauge!(UNAUTHENTICATED).set(a.unauthenticated as f64);
    gauge!(ADMISSION_ADDRESSES).set(a.addresses as f64);
    gauge!(ADMISSION_CAPACITY).set(a.capacity as f64);
    counter!(ADMISSION_EVICTIONS).absolute(a.evictions);
    counter!(PROXY_HEADERS, "result" => "ok").absolute(a.proxy_ok);
    counter!(PROXY_HEADERS, "result" => "failed").absolute(a.proxy_failed);
    counter!(REFUSALS_UNANSWERED).absolute(a.unanswered);
}

/// How `/metrics` types a metric.
#[derive(Clone, Copy)]
enum Kind {
    Counter,
    Gauge,
}

use Kind::{Counter, Gauge};

/// Type, unit and `# HELP` text of every metric the recorder renders (the histograms are
/// written by [`write_histogram`] with their own).
const DESCRIPTIONS: &[(&str, Kind, Option<Unit>, &str)] = &[
    (BUILD_INFO, Gauge, None, "Build information; the value is always 1."),
    (SESSIONS_ACTIVE, Gauge, None, "Websocket sessions currently connected."),
    (SESSIONS_ACCEPTED, Counter, None, "Websocket sessions accepted (upgrade completed)."),
    (SESSIONS_REJECTED, Counter, None, "Connections turned away: max_clients (limit reached), remotes (address not allowed for the user), auth_deadline (no login in time), handshake (failed upgrade)."),
    (SESSIONS_LIMIT, Gauge, None, "The max-clients setting (0 = unlimited)."),
    (CONFIG_GENERATION, Gauge, None, "The running configuration: 1 at start-up, one more for each SIGHUP that applied a valid config."),
    (CONFIG_APPLIED_AT, Gauge, None, "When the running configuration was applied (start-up or the last valid SIGHUP), Unix seconds."),
    (CONFIG_LAST_VALID, Gauge, None, "1 when the last SIGHUP's configuration was valid (or there was none), 0 when it was refused and the previous one kept running."),
    (LOGINS, Counter, None, "AUTH attempts by result."),
    (LOGIN_SLOW_CHECKS, Counter, None, "PBKDF2 password checks run (credential cache misses)."),
    (LOGIN_CACHE_HITS, Counter, None, "Logins answered from the verified-credential cache."),
    (EVENTS_RECEIVED, Counter, None, "Events accepted from websocket clients."),
    (EVENTS_DELIVERED, Counter, None, "Events written to websocket clients."),
    (EVENTS_DROPPED, Counter, None, "Events not delivered: queue_full (a session's outbox overflowed, oldest dropped), filter, rights, malformed, oversized (message over max-message-size)."),
    (OUTBOX_EVENTS, Gauge, None, "Events waiting in session outboxes."),
    (OUTBOX_CAPACITY, Gauge, None, "The max-out-queue setting (per session)."),
    (EVENTS_UNCONFIRMED, Counter, None, "Events answered with an error because the broker did not confirm them in time (ack-from-broker); they may still arrive."),
    (PUBLISHERS_WAITING, Gauge, None, "Sessions waiting for room in a full ring to another core or to the uplink (backpressure; their sockets are not read meanwhile)."),
    (BYTES_RECEIVED, Counter, Some(Unit::Bytes), "Websocket text bytes received from clients."),
    (BYTES_SENT, Counter, Some(Unit::Bytes), "Websocket text bytes written to clients."),
    (SOCKET_WRITES, Counter, None, "Writes issued to client sockets (one per send call, whatever it carried)."),
    (PINGS_SENT, Counter, None, "Websocket pings sent to sessions silent for ws-ping-interval."),
    (SESSIONS_DEAD, Counter, None, "Sessions closed because nothing arrived within ws-pong-timeout of a ping."),
    (RING_EVENTS, Counter, None, "Events moved through the rings between cores."),
    (RING_OCCUPANCY, Gauge, None, "Events currently inside the rings between cores."),
    (RING_CAPACITY, Gauge, None, "The max-in-queue setting (per ring)."),
    (TLS_HANDSHAKES, Counter, None, "TLS handshakes on the client listeners by result: ok, bad_certificate (client certificate missing or not signed by ssl_ca_file/ssl_ca_path), error (no common version or suite, not TLS, a bad message), abandoned (the client left or the handshake deadline passed)."),
    (TLS_CERTIFICATE_EXPIRY, Gauge, Some(Unit::Seconds), "Seconds until the served certificate (ssl_certificate) expires; negative once it has."),
    (TLS_RELOADS, Counter, None, "Certificate reloads (SIGHUP, ssl_short_trust) by result; a failed one keeps the previous certificate."),
    (UPLINK_EVENTS, Counter, None, "Events between the sessions and the uplink."),
    (UPLINK_CONNECTED, Gauge, None, "1 while the uplink's far side (broker, host) is connected."),
    (UPLINK_RECONNECTS, Counter, None, "Uplink reconnections."),
    (UPLINK_PUBLISHED, Counter, None, "Messages the uplink sent to its far side."),
    (UPLINK_ACKED, Counter, None, "Acknowledgements the uplink received."),
    (UPLINK_IN_FLIGHT, Gauge, None, "Uplink messages sent and not yet acknowledged."),
    (UPLINK_BUFFERED, Gauge, None, "Uplink messages held while the far side is away or slow."),
    (UPLINK_DROPPED, Counter, None, "Uplink messages not sent: buffer_full (its buffer was full while the far side was away), shutdown (still held after the stop's drain), invalid_topic (a rendered MQTT topic was invalid)."),
    (UPLINK_DISCARDED, Counter, None, "Messages from the far side not delivered: filter (mqtt.filter), echo (our own publish coming back), duplicate (already delivered), oversized (over 256 KiB)."),
    (UPLINK_RESENT, Counter, None, "Messages sent again after a reconnection (QoS 1/2)."),
    (UPLINK_RECEIVED, Counter, None, "Messages received from the far side."),
    (UPLINK_SUBSCRIBE_FAILURES, Counter, None, "Subscription filters the far side refused."),
    (UPLINK_MALFORMED, Counter, None, "Messages from the uplink's far side that could not be decoded."),
    (ADMISSION_REFUSED, Counter, None, "Connections refused by an abuse limit: login_failures (address in its failed-login cool-down), connection_rate, per_address (max-clients-per-address), unauthenticated_per_address, unauthenticated (max-unauthenticated, all addresses), table_full (address-table-size)."),
    (ADMISSION_EPISODES, Counter, None, "Episodes of an abuse limit (the first refusal after a time without; each is logged once), by the same reasons."),
    (LOGINS_REFUSED, Counter, None, "Login attempts answered as failed without a password check (failed-login budget used up or cool-down)."),
    (UNAUTHENTICATED, Gauge, None, "Connections not logged in yet (their share of max-clients is max-unauthenticated)."),
    (ADMISSION_ADDRESSES, Gauge, None, "Source addresses the abuse limits keep state for."),
    (ADMISSION_CAPACITY, Gauge, None, "The address-table-size setting (addresses the table holds)."),
    (ADMISSION_EVICTIONS, Counter, None, "Addresses dropped from the full address table to make room (their partly used budgets are forgotten)."),
    (REFUSALS_UNANSWERED, Counter, None, "Refused connections (max-clients or an abuse limit) closed without their HTTP 503/429 or tcp/ip line, because a listener was already answering 256 refusals on that core."),
    (PROXY_HEADERS, Counter, None, "PROXY protocol headers from trusted proxies (proxy-protocol-from) by result; a failed one drops the connection."),
];

fn describe_all() {
    metrics::with_recorder(|r| {
        for &(name, kind, unit, help) in DESCRIPTIONS {
            match kind {
                Counter => r.describe_counter(name.into(), unit, help.into()),
                Gauge => r.describe_gauge(name.into(), unit, help.into()),
            }
        }
    });
}

/// Writes one histogram in the Prometheus text format (cumulative buckets).
fn write_histogram(out: &mut String, name: &str, help: &str, h: &HistogramSnapshot) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} histogram");
    let mut cumulative = 0u64;
    for (bound, n) in LATENCY_BUCKETS.iter().zip(h.counts.iter()) {
        cumulative += n;
        let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
    }
    cumulative += h.counts[LATENCY_BUCKETS.len()];
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
    let _ = writeln!(out, "{name}_sum {}", h.sum_seconds);
    let _ = writeln!(out, "{name}_count {cumulative}");
}
