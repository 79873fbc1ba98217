//! Suppression of broker echoes and duplicate deliveries.
//!
//! The bridge publishes every event the sessions accept, and the sessions of this server
//! already got that event from the in-process bus (under `receive-sent-events`). When a
//! subscription also matches our publish topics, the broker sends the event back; delivering
//! it again would give every session a second copy (and the sender one it may not want). So
//! an incoming event that equals one we published recently is an *echo* and is dropped.
//! Likewise an event that equals one we delivered recently is a *duplicate* (the same event
//! published by another node in two formats, overlapping subscriptions, a QoS 1 re-send) and
//! is dropped, so each event reaches the sessions once.
//!
//! "Equal" means the same [`event_key`]: head, class, type, timestamp, date, GUID and data.
//! `obid` is left out because the binary form does not carry it and every server overwrites
//! it. Events are stamped (timestamp, date) before they are published or keyed, so two
//! distinct events with the same key need the same microsecond timestamp — a sender repeating
//! an event verbatim, which is a duplicate by any reasonable reading.
//!
//! The memory is a window: an entry lives [`DEFAULT_WINDOW`] after the last time it was
//! published or delivered, and at most `capacity` entries are kept (oldest evicted first,
//! counted). MQTT 5 connections additionally subscribe with no-local, so the broker does not
//! echo at all; the window is what makes MQTT 3.1.1 and cross-format duplicates safe.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::time::{Duration, Instant};

use vscp_proto::Event;

/// How long an event is remembered. Echoes come back within a broker round trip; buffered
/// publishes are keyed again when they are actually sent, so a long broker outage does not
/// need a long window.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(30);
/// Default number of events remembered (bounded memory: ~40 bytes each).
pub const DEFAULT_CAPACITY: usize = 100_000;

/// The identity of an event for duplicate detection (see module docs).
pub fn event_key(ev: &Event) -> u64 {
    // SipHash with fixed keys: deterministic, and the inputs are not attacker-chosen in a way
    // that matters (a collision only drops one event, counted).
    let mut h = DefaultHasher::new();
    ev.head.hash(&mut h);
    ev.class.hash(&mut h);
    ev.vscp_type.hash(&mut h);
    ev.timestamp.hash(&mut h);
    ev.datetime.hash(&mut h);
    ev.guid.0.hash(&mut h);
    ev.data.hash(&mut h);
    h.finish()
}

/// Why an incoming event was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seen {
    /// We published it.
    Echo,
    /// We already delivered it.
    Duplicate,
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    expires: Instant,
    own: bool,
}

/// The window of recently published and delivered events.
#[derive(Debug)]
pub struct Dedup {
    window: Duration,
    capacity: usize,
    /// Keyed by [`event_key`], which is a hash already: hashing it again would cost a SipHash
    /// per lookup on the publish path.
    entries: HashMap<u64, Entry, BuildHasherDefault<KeyHasher>>,
    /// Insertion order with the expiry each insertion set; stale ones are skipped.
    order: VecDeque<(u64, Instant)>,
    evicted: u64,
}

impl Dedup {
    pub fn new(window: Duration, capacity: usize) -> Dedup {
        Dedup {
            window,
            capacity: capacity.max(1),
            entries: HashMap::default(),
            order: VecDeque::new(),
            evicted: 0,
        }
    }

    /// Entries dropped early because the window was full.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// We just published an event with this key.
    pub fn published(&mut self, key: u64, now: Instant) {
        self.insert(key, true, now);
    }

    /// Checks an incoming event: `Some` means drop it. Otherwise it is remembered as
    /// delivered.
    pub fn check_incoming(&mut self, key: u64, now: Instant) -> Option<Seen> {
        self.expire(now);
        if let Some(e) = self.entries.get(&key) {
            return Some(if e.own { Seen::Echo } else { Seen::Duplicate });
        }
        self.insert(key, false, now);
        None
    }

    fn insert(&mut self, key: u64, own: bool, now: Instant) {
        self.expire(now);
        let expires = now + self.window;
        let e = self.entries.entry(key).or_insert(Entry { expires, own });
        e.expires = expires;
        // Once ours, always ours: an echo must never count as a foreign duplicate.
        e.own |= own;
        self.order.push_back((key, expires));
        while self.order.len() > self.capacity {
            if let Some((k, at)) = self.order.pop_front() {
                if self.entries.get(&k).is_some_and(|e| e.expires == at) {
                    self.entries.remove(&k);
                    self.evicted += 1;
                }
            }
        }
    }

    fn expire(&mut self, now: Instant) {
        while let Some(&(k, at)) = self.order.front() {
            if at > now {
                break;
            }
            self.order.pop_front();
            if self.entries.get(&k).is_some_and(|e| e.expires == at) {
                self.entries.remove(&k);
            }
        }
    }
}

/// Passes an [`event_key`] through as its own hash.
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only u64 keys are hashed here; fold anything else in rather than lose it.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vscp_proto::Guid;

    fn ev(ts: u32) -> Event {
        Event {
            class: 10,
            vscp_type: 6,
            timestamp: ts,
            guid: Guid([1; 16]),
            data: vec![1, 2],
            ..Event::default()
        }
    }

    #[test]
    fn key_ignores_obid_only() {
        let a = ev(1);
        let mut b = ev(1);
        b.obid = 99;
        assert_eq!(event_key(&a), event_key(&b));
        for change in [
            |e: &mut Event| e.head = 1,
            |e: &mut Event| e.class = 11,
            |e: &mut Event| e.vscp_type = 7,
            |e: &mut Event| e.timestamp = 2,
            |e: &mut Event| e.datetime.second = 1,
            |e: &mut Event| e.guid.0[15] = 9,
            |e: &mut Event| e.data.push(0),
        ] {
            let mut c = ev(1);
            change(&mut c);
            assert_ne!(event_key(&a), event_key(&c));
        }
    }

    #[test]
    fn echo_then_duplicate_then_expiry() {
        let t = Instant::now();
        let mut d = Dedup::new(Duration::from_secs(10), 100);
        let own = event_key(&ev(1));
        let foreign = event_key(&ev(2));
        d.published(own, t);
        assert_eq!(d.check_incoming(own, t), Some(Seen::Echo));
        assert_eq!(d.check_incoming(own, t), Some(Seen::Echo));
        assert_eq!(d.check_incoming(foreign, t), None);
        assert_eq!(d.check_incoming(foreign, t), Some(Seen::Duplicate));
        let later = t + Duration::from_secs(10);
        assert_eq!(d.check_incoming(own, later), None, "expired");
        assert_eq!(d.check_incoming(foreign, later), None);
    }

    #[test]
    fn republishing_refreshes_the_window() {
        let t = Instant::now();
        let mut d = Dedup::new(Duration::from_secs(10), 100);
        d.published(7, t);
        d.published(7, t + Duration::from_secs(8));
        assert_eq!(
            d.check_incoming(7, t + Duration::from_secs(15)),
            Some(Seen::Echo)
        );
        assert_eq!(d.check_incoming(7, t + Duration::from_secs(18)), None);
    }

    #[test]
    fn own_wins_over_delivered() {
        let t = Instant::now();
        let mut d = Dedup::new(Duration::from_secs(10), 100);
        assert_eq!(d.check_incoming(5, t), None);
        d.published(5, t);
        assert_eq!(d.check_incoming(5, t), Some(Seen::Echo));
    }

    #[test]
    fn capacity_evicts_oldest() {
        let t = Instant::now();
        let mut d = Dedup::new(Duration::from_secs(10), 3);
        for k in 0..5 {
            d.published(k, t);
        }
        assert_eq!(d.len(), 3);
        assert_eq!(d.evicted(), 2);
        assert_eq!(d.check_incoming(0, t), None);
        assert_eq!(d.check_incoming(4, t), Some(Seen::Echo));
        assert!(!d.is_empty());
    }
}
