//! Counters of the bridge. Written only by the uplink core (relaxed atomics, no contention);
//! read from anywhere (tests, a metrics endpoint) through [`BridgeStats::snapshot`].

use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! counters {
    ($(#[$doc:meta] $name:ident),* $(,)?) => {
        /// Live counters, shared through an `Arc`.
        #[derive(Debug, Default)]
        pub struct BridgeStats {
            $(#[$doc] pub $name: AtomicU64,)*
        }

        /// A copy of the counters at one moment.
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct Snapshot {
            $(#[$doc] pub $name: u64,)*
        }

        impl BridgeStats {
            pub fn snapshot(&self) -> Snapshot {
                Snapshot {
                    $($name: self.$name.load(Ordering::Relaxed),)*
                }
            }
        }
    };
}

counters! {
    /// Events received from the sessions.
    events_from_sessions,
    /// Publications queued (one per event and publish entry).
    publications,
    /// PUBLISH packets written to the broker (including QoS 1 re-sends).
    published,
    /// QoS 1/2 publishes (or QoS 2 PUBRELs) re-sent after a reconnect.
    resent,
    /// PUBACKs (QoS 1) and PUBCOMPs (QoS 2) received for our publishes.
    acked,
    /// Publications dropped because the offline buffer was full (oldest first).
    offline_dropped,
    /// Publications buffered or unacknowledged when the bridge stopped (after its drain).
    shutdown_dropped,
    /// Publications dropped because the rendered topic was not a valid MQTT topic.
    topic_errors,
    /// Application messages received from the broker.
    messages_received,
    /// Events handed to the sessions.
    events_to_sessions,
    /// Payloads that could not be decoded (counted, logged once per burst, dropped).
    malformed,
    /// Events dropped by the `mqtt.filter`.
    filtered,
    /// Broker echoes of our own publishes, dropped.
    echo_dropped,
    /// Events already delivered (other format, overlapping subscription, re-send), dropped.
    duplicate_dropped,
    /// Packets above the size limit, skipped.
    oversized,
    /// Successful connections (CONNACK accepted).
    connects,
    /// Connections or attempts that ended.
    disconnects,
    /// Subscription filters the broker refused.
    subscribe_failures,
    /// 1 while connected, else 0.
    connected,
    /// Publications waiting in the offline buffer (gauge).
    offline_queued,
    /// Unacknowledged QoS 1 and 2 publishes (gauge).
    inflight,
}

impl BridgeStats {
    pub(crate) fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn set(c: &AtomicU64, v: u64) {
        c.store(v, Ordering::Relaxed);
    }
}
