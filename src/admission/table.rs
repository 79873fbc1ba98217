//! Per-address state shared by every shard: a fixed number of sections, each a bounded map
//! behind its own short mutex (SO_REUSEPORT spreads one address's connections over every core,
//! so the state cannot be per shard). Sans-IO: every method takes the [`Policy`] and the time.
//!
//! When a section is full, an address not yet known evicts an entry with no live connection
//! and no cool-down running (partly used buckets are forgotten: the eviction forgives, never
//! punishes); when every entry has live connections or a cool-down, the new address is
//! refused ([`Limit::TableFull`]). Entries with live connections are bounded by `max-clients`,
//! so with a table larger than `max-clients` that only happens with `max-clients` 0.

use super::bucket::Bucket;
use super::policy::{canonical, Policy};
use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Sections of the table (fewer for a small table): enough that cores rarely meet on a lock.
const SECTIONS: usize = 64;
/// An episode of a limit ends after this long without a refusal: a flood that keeps a bucket
/// empty (a connection now and then gets a token) is one episode, one log line.
pub const EPISODE_QUIET: Duration = Duration::from_secs(30);

/// Which limit refused something. Low-cardinality metric label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Limit {
    /// The address used its failed-login budget and is in its cool-down.
    LoginFailures,
    /// `connection-rate`/`connection-burst`.
    ConnectionRate,
    /// `max-clients-per-address`.
    PerAddress,
    /// `max-unauthenticated-per-address`.
    UnauthenticatedPerAddress,
    /// `max-unauthenticated` (all addresses together).
    Unauthenticated,
    /// The address table is full of addresses with live connections or cool-downs.
    TableFull,
}

impl Limit {
    pub const COUNT: usize = 6;
    pub const ALL: [Limit; Limit::COUNT] = [
        Limit::LoginFailures,
        Limit::ConnectionRate,
        Limit::PerAddress,
        Limit::UnauthenticatedPerAddress,
        Limit::Unauthenticated,
        Limit::TableFull,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Limit::LoginFailures => "login_failures",
            Limit::ConnectionRate => "connection_rate",
            Limit::PerAddress => "per_address",
            Limit::UnauthenticatedPerAddress => "unauthenticated_per_address",
            Limit::Unauthenticated => "unauthenticated",
            Limit::TableFull => "table_full",
        }
    }

    /// Limits about one address (HTTP 429); the others are about the server (HTTP 503).
    pub fn is_per_address(self) -> bool {
        !matches!(self, Limit::Unauthenticated | Limit::TableFull)
    }

    fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// An address as the limits see it: IPv4 addresses one by one, IPv6 by /64 (one host usually
/// has a whole /64, so per-address limits on single IPv6 addresses would stop nobody).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Key([u64; 2]);

impl Key {
    pub fn of(ip: IpAddr) -> Key {
        match canonical(ip) {
            IpAddr::V4(v4) => Key([0, 0xFFFF_0000_0000 | u64::from(u32::from(v4))]),
            // The /64 prefix; the low word 1 tells it from any IPv4 key.
            IpAddr::V6(v6) => Key([(u128::from(v6) >> 64) as u64, 1]),
        }
    }
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            [_, low] if low != 1 => write!(f, "{}", std::net::Ipv4Addr::from(low as u32)),
            [high, _] => {
                let v6 = Ipv6Addr::from(u128::from(high) << 64);
                write!(f, "{v6}/64")
            }
        }
    }
}

/// What the table knows of one address.
#[derive(Clone, Copy, Debug, Default)]
struct Entry {
    /// Live connections, logged in or not.
    conns: u32,
    /// Live connections not logged in yet.
    pending: u32,
    rate: Bucket,
    /// Failed-login budget.
    logins: Bucket,
    /// End of the login cool-down (`None`: none running).
    cooldown_until: Option<Duration>,
    /// Limits whose episode is on for this address ([`Limit::bit`]), and when it was last
    /// refused (one log line per episode).
    refusing: u8,
    last_refusal: Duration,
}

impl Entry {
    fn cooling(&self, now: Duration) -> bool {
        self.cooldown_until.is_some_and(|t| now < t)
    }

    /// Holds nothing a later decision needs.
    fn at_rest(&self, now: Duration) -> bool {
        self.conns == 0 && !self.cooling(now) && self.rate.is_full(now) && self.logins.is_full(now)
    }

    /// May be dropped to make room: no live connection, no cool-down.
    fn evictable(&self, now: Duration) -> bool {
        self.conns == 0 && !self.cooling(now)
    }

    /// A refusal by `limit`: true when it starts an episode (none on, or the last refusal
    /// was [`EPISODE_QUIET`] ago).
    fn refused(&mut self, limit: Limit, now: Duration) -> bool {
        if now.saturating_sub(self.last_refusal) >= EPISODE_QUIET {
            self.refusing = 0;
        }
        let new = self.refusing & limit.bit() == 0;
        self.refusing |= limit.bit();
        self.last_refusal = now;
        new
    }
}

/// A refusal, and whether it starts an episode of its limit (log it) or continues one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refused {
    pub limit: Limit,
    pub new_episode: bool,
}

/// A login attempt may go ahead (a failed-login token is reserved for it) or is refused
/// without a password check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoginGate {
    Go,
    Refuse,
}

/// The outcome of a login recorded with [`Table::login_end`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoginEnd {
    Counted,
    /// The failure used the last of the budget: the cool-down starts (log it once).
    CooldownStarted,
}

struct Section {
    map: HashMap<Key, Entry>,
    capacity: usize,
}

/// The per-address table and the count of connections not logged in yet.
pub struct Table {
    sections: Box<[Mutex<Section>]>,
    hasher: RandomState,
    capacity: usize,
    /// Connections not logged in yet, all addresses.
    pending: AtomicUsize,
    /// The last refusal by [`Limit::Unauthenticated`] and [`Limit::TableFull`] (milliseconds of
    /// the table's clock plus one; 0 = never), for their episodes.
    unauthenticated_refused: AtomicU64,
    table_refused: AtomicU64,
    /// Entries dropped to make room.
    pub evictions: AtomicUsize,
}

impl std::fmt::Debug for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Table")
            .field("capacity", &self.capacity)
            .field("pending", &self.pending)
            .finish()
    }
}

impl Table {
    /// A table for about `capacity` addresses (split evenly over its sections).
    pub fn new(capacity: usize) -> Table {
        let capacity = capacity.max(1);
        // Sections of at least 64 entries: an unlucky hash spread cannot fill a tiny one early.
        let n = SECTIONS.min(capacity / 64).max(1);
        let per = capacity.div_ceil(n);
        let sections = (0..n)
            .map(|_| {
                Mutex::new(Section {
                    map: HashMap::new(),
                    capacity: per,
                })
            })
            .collect();
        Table {
            sections,
            hasher: RandomState::new(),
            capacity: per * n,
            pending: AtomicUsize::new(0),
            unauthenticated_refused: AtomicU64::new(0),
            table_refused: AtomicU64::new(0),
            evictions: AtomicUsize::new(0),
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Addresses known right now.
    pub fn len(&self) -> usize {
        self.sections.iter().map(|s| lock(s).map.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Connections not logged in yet, all addresses.
    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::Relaxed)
    }

    fn section(&self, key: &Key) -> &Mutex<Section> {
        let i = self.hasher.hash_one(key) as usize % self.sections.len();
        &self.sections[i]
    }

    /// A new connection from `ip`: counted as live and not logged in, or refused.
    pub fn admit(&self, ip: IpAddr, p: &Policy, now: Duration) -> Result<Key, Refused> {
        let key = Key::of(ip);
        let mut s = lock(self.section(&key));
        let s = &mut *s;
        if !s.map.contains_key(&key) && s.map.len() >= s.capacity {
            let victim = s
                .map
                .iter()
                .find(|(_, e)| e.evictable(now))
                .map(|(k, _)| *k);
            match victim {
                Some(k) => {
                    s.map.remove(&k);
                    self.evictions.fetch_add(1, Ordering::Relaxed);
                }
                None => {
                    let new_episode = server_refused(&self.table_refused, now);
                    let limit = Limit::TableFull;
                    return Err(Refused { limit, new_episode });
                }
            }
        }
        let e = s.map.entry(key).or_default();
        let refused = if e.cooling(now) {
            Some(Limit::LoginFailures)
        } else if p.connection_rate.is_some_and(|r| !e.rate.try_take(now, r)) {
            Some(Limit::ConnectionRate)
        } else if p.max_per_address > 0 && e.conns as usize >= p.max_per_address {
            Some(Limit::PerAddress)
        } else if p.max_unauthenticated_per_address > 0
            && e.pending as usize >= p.max_unauthenticated_per_address
        {
            Some(Limit::UnauthenticatedPerAddress)
        } else if !take_below(&self.pending, p.max_unauthenticated) {
            let new_episode = server_refused(&self.unauthenticated_refused, now);
            let limit = Limit::Unauthenticated;
            return Err(Refused { limit, new_episode });
        } else {
            None
        };
        if let Some(limit) = refused {
            let new_episode = match limit {
                // Its episode is the cool-down, announced when it started.
                Limit::LoginFailures => false,
                _ => e.refused(limit, now),
            };
            return Err(Refused { limit, new_episode });
        }
        e.conns += 1;
        e.pending += 1;
        Ok(key)
    }

    /// The connection of `key` logged in: it no longer counts as unauthenticated.
    pub fn logged_in(&self, key: Key) {
        let mut s = lock(self.section(&key));
        if let Some(e) = s.map.get_mut(&key) {
            e.pending = e.pending.saturating_sub(1);
        }
        self.pending.fetch_sub(1, Ordering::Relaxed);
    }

    /// The connection of `key` ended (`pending`: without having logged in).
    pub fn release(&self, key: Key, pending: bool, now: Duration) {
        let mut s = lock(self.section(&key));
        if let Some(e) = s.map.get_mut(&key) {
            e.conns = e.conns.saturating_sub(1);
            if pending {
                e.pending = e.pending.saturating_sub(1);
            }
            if e.at_rest(now) {
                s.map.remove(&key);
            }
        }
        if pending {
            self.pending.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Before a password is checked for a connection of `key`: reserves one failed login of
    /// the budget, or refuses (cool-down running, budget used up).
    pub fn login_begin(&self, key: Key, p: &Policy, now: Duration) -> LoginGate {
        let Some(rate) = p.login_failures else {
            return LoginGate::Go;
        };
        let mut s = lock(self.section(&key));
        let Some(e) = s.map.get_mut(&key) else {
            // Never without a live connection; refuse rather than check unmetered.
            return LoginGate::Refuse;
        };
        if e.cooling(now) || !e.logins.try_take(now, rate) {
            return LoginGate::Refuse;
        }
        LoginGate::Go
    }

    /// After the check [`Table::login_begin`] let through: a success gives its token back; a
    /// failure keeps it, and the one that empties the budget starts the cool-down.
    pub fn login_end(&self, key: Key, ok: bool, p: &Policy, now: Duration) -> LoginEnd {
        let Some(rate) = p.login_failures else {
            return LoginEnd::Counted;
        };
        let mut s = lock(self.section(&key));
        let Some(e) = s.map.get_mut(&key) else {
            return LoginEnd::Counted;
        };
        if ok {
            e.logins.give_back(now, rate);
            return LoginEnd::Counted;
        }
        if e.logins.is_empty(now, rate) && !e.cooling(now) {
            e.cooldown_until = Some(now + p.login_cooldown);
            return LoginEnd::CooldownStarted;
        }
        LoginEnd::Counted
    }
}

/// A refusal by a server-wide limit whose last refusal is in `last`: true when it starts an
/// episode. Races between cores may log one episode twice, never one per refusal.
fn server_refused(last: &AtomicU64, now: Duration) -> bool {
    let ms = now.as_millis() as u64 + 1;
    let before = last.swap(ms, Ordering::Relaxed);
    before == 0 || ms.saturating_sub(before) >= EPISODE_QUIET.as_millis() as u64
}

/// Adds one to `n` unless it is at `max` (0: no maximum).
fn take_below(n: &AtomicUsize, max: usize) -> bool {
    let max = if max == 0 { usize::MAX } else { max };
    n.fetch_update(Ordering::AcqRel, Ordering::Acquire, |c| {
        (c < max).then_some(c + 1)
    })
    .is_ok()
}

/// A section's lock; a panic while one was held leaves counters that are still usable.
fn lock(m: &Mutex<Section>) -> std::sync::MutexGuard<'_, Section> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::super::bucket::Rate;
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn logins(budget: u32, refill: Duration, cooldown: Duration) -> Policy {
        Policy {
            login_failures: Rate::every(budget, refill),
            login_cooldown: cooldown,
            ..Policy::default()
        }
    }

    #[test]
    fn keys() {
        assert_eq!(Key::of(ip("10.0.0.1")), Key::of(ip("::ffff:10.0.0.1")));
        assert_ne!(Key::of(ip("10.0.0.1")), Key::of(ip("10.0.0.2")));
        assert_eq!(Key::of(ip("2001:db8::1")), Key::of(ip("2001:db8::ffff:1")));
        assert_ne!(Key::of(ip("2001:db8::1")), Key::of(ip("2001:db8:0:1::1")));
        assert_ne!(Key::of(ip("::1")), Key::of(ip("0.0.0.1")));
        assert_eq!(Key::of(ip("::ffff:10.0.0.1")).to_string(), "10.0.0.1");
        assert_eq!(Key::of(ip("0.0.0.1")).to_string(), "0.0.0.1");
        assert_eq!(Key::of(ip("2001:db8::7")).to_string(), "2001:db8::/64");
    }

    /// 20 failures, then every attempt is refused without a check for the cool-down; other
    /// addresses are not affected; after it the address may try again.
    #[test]
    fn failed_login_budget_and_cooldown() {
        let p = logins(20, 3 * S, 60 * S);
        let t = Table::new(1024);
        let now = 1000 * S;
        let a = t.admit(ip("192.0.2.1"), &p, now).unwrap();
        let mut checks = 0;
        let mut started = 0;
        for i in 0..200u32 {
            // 200 attempts within two seconds.
            let at = now + Duration::from_millis(10 * u64::from(i));
            if t.login_begin(a, &p, at) == LoginGate::Go {
                checks += 1;
                if t.login_end(a, false, &p, at) == LoginEnd::CooldownStarted {
                    started += 1;
                }
            }
        }
        assert_eq!(checks, 20);
        assert_eq!(started, 1);
        // New connections from it are refused during the cool-down, others are not.
        let r = t.admit(ip("192.0.2.1"), &p, now + 30 * S).unwrap_err();
        assert_eq!(r.limit, Limit::LoginFailures);
        let b = t.admit(ip("192.0.2.2"), &p, now + 30 * S).unwrap();
        assert_eq!(t.login_begin(b, &p, now + 30 * S), LoginGate::Go);
        t.login_end(b, true, &p, now + 30 * S);
        assert_eq!(t.login_begin(a, &p, now + 59 * S), LoginGate::Refuse);
        // After the cool-down (which refilled the budget) it may log in.
        let later = now + 62 * S;
        assert_eq!(t.login_begin(a, &p, later), LoginGate::Go);
        assert_eq!(t.login_end(a, true, &p, later), LoginEnd::Counted);
        assert!(t.admit(ip("192.0.2.1"), &p, later).is_ok());
    }

    /// The conformance promise: a client may fail a few dozen times over a minute and still
    /// log in afterwards, without ever being refused.
    #[test]
    fn a_few_dozen_failures_a_minute_are_fine() {
        let p = logins(20, 3 * S, 60 * S);
        let t = Table::new(64);
        let a = t.admit(ip("192.0.2.9"), &p, S).unwrap();
        for i in 0..30u32 {
            let at = S + 2 * S * i; // one failure every 2 s
            assert_eq!(t.login_begin(a, &p, at), LoginGate::Go, "attempt {i}");
            assert_eq!(t.login_end(a, false, &p, at), LoginEnd::Counted);
        }
        assert_eq!(t.login_begin(a, &p, 61 * S), LoginGate::Go);
    }

    #[test]
    fn successes_do_not_use_the_budget() {
        let p = logins(2, 3 * S, 60 * S);
        let t = Table::new(64);
        let a = t.admit(ip("192.0.2.3"), &p, S).unwrap();
        for _ in 0..100 {
            assert_eq!(t.login_begin(a, &p, S), LoginGate::Go);
            t.login_end(a, true, &p, S);
        }
    }

    #[test]
    fn login_budget_off() {
        let p = Policy::default();
        let t = Table::new(64);
        let a = t.admit(ip("192.0.2.3"), &p, S).unwrap();
        for _ in 0..100 {
            assert_eq!(t.login_begin(a, &p, S), LoginGate::Go);
            assert_eq!(t.login_end(a, false, &p, S), LoginEnd::Counted);
        }
    }

    #[test]
    fn connection_rate_per_address_with_one_episode() {
        let p = Policy {
            connection_rate: Rate::per_second(10, 5),
            ..Policy::default()
        };
        let t = Table::new(64);
        let mut keys = Vec::new();
        for _ in 0..5 {
            keys.push(t.admit(ip("198.51.100.1"), &p, S).unwrap());
        }
        let first = t.admit(ip("198.51.100.1"), &p, S).unwrap_err();
        assert_eq!(
            first,
            Refused {
                limit: Limit::ConnectionRate,
                new_episode: true
            }
        );
        let again = t.admit(ip("198.51.100.1"), &p, S).unwrap_err();
        assert!(!again.new_episode);
        assert!(t.admit(ip("198.51.100.2"), &p, S).is_ok());
        // 100 ms later one more token is back; the flood goes on: the same episode.
        keys.push(t.admit(ip("198.51.100.1"), &p, S + S / 10).unwrap());
        let next = t.admit(ip("198.51.100.1"), &p, S + S / 10).unwrap_err();
        assert!(!next.new_episode);
        // After a quiet spell the next refusal starts a new one.
        let later = S + S / 10 + EPISODE_QUIET;
        for _ in 0..5 {
            keys.push(t.admit(ip("198.51.100.1"), &p, later).unwrap());
        }
        assert!(
            t.admit(ip("198.51.100.1"), &p, later)
                .unwrap_err()
                .new_episode
        );
    }

    #[test]
    fn unauthenticated_shares_and_sessions_per_address() {
        let p = Policy {
            max_per_address: 3,
            max_unauthenticated: 4,
            max_unauthenticated_per_address: 2,
            ..Policy::default()
        };
        let t = Table::new(64);
        let a1 = t.admit(ip("10.0.0.1"), &p, S).unwrap();
        let _a2 = t.admit(ip("10.0.0.1"), &p, S).unwrap();
        let r = t.admit(ip("10.0.0.1"), &p, S).unwrap_err();
        assert_eq!(r.limit, Limit::UnauthenticatedPerAddress);
        assert!(r.limit.is_per_address());
        // One logs in: a third connection may come, a fourth not (per address).
        t.logged_in(a1);
        let _a3 = t.admit(ip("10.0.0.1"), &p, S).unwrap();
        let r = t.admit(ip("10.0.0.1"), &p, S).unwrap_err();
        assert_eq!(r.limit, Limit::PerAddress);
        // The overall share: 2 pending from 10.0.0.1 + 2 from 10.0.0.2.
        let b1 = t.admit(ip("10.0.0.2"), &p, S).unwrap();
        let _b2 = t.admit(ip("10.0.0.2"), &p, S).unwrap();
        assert_eq!(t.pending(), 4);
        let r = t.admit(ip("10.0.0.3"), &p, S).unwrap_err();
        assert_eq!(r.limit, Limit::Unauthenticated);
        assert!(r.new_episode);
        assert!(!r.limit.is_per_address());
        assert!(!t.admit(ip("10.0.0.3"), &p, S).unwrap_err().new_episode);
        assert!(!t.admit(ip("10.0.0.4"), &p, 20 * S).unwrap_err().new_episode);
        assert!(t.admit(ip("10.0.0.4"), &p, 51 * S).unwrap_err().new_episode);
        // One leaves without logging in: room for another address.
        t.release(b1, true, S);
        assert_eq!(t.pending(), 3);
        let c = t.admit(ip("10.0.0.3"), &p, S).unwrap();
        t.release(c, true, S);
        t.release(a1, false, S);
        assert_eq!(t.pending(), 3);
    }

    #[test]
    fn entries_at_rest_are_dropped() {
        let p = Policy::default();
        let t = Table::new(64);
        let a = t.admit(ip("10.0.0.1"), &p, S).unwrap();
        assert_eq!(t.len(), 1);
        t.logged_in(a);
        t.release(a, false, S);
        assert!(t.is_empty());
        assert_eq!(t.pending(), 0);
    }

    #[test]
    fn full_table_evicts_idle_entries_and_refuses_when_none() {
        let p = Policy {
            connection_rate: Rate::per_second(1, 1),
            ..Policy::default()
        };
        // One section of 4 entries.
        let t = Table::new(4);
        assert_eq!(t.capacity(), 4);
        let held: Vec<Key> = (1..=4)
            .map(|i| t.admit(ip(&format!("10.0.0.{i}")), &p, S).unwrap())
            .collect();
        let r = t.admit(ip("10.0.0.5"), &p, S).unwrap_err();
        assert_eq!(r.limit, Limit::TableFull);
        assert!(r.new_episode);
        assert!(!t.admit(ip("10.0.0.6"), &p, S).unwrap_err().new_episode);
        // One leaves; its bucket is not full yet, so it stays until room is needed.
        t.release(held[0], true, S);
        assert_eq!(t.len(), 4);
        assert!(t.admit(ip("10.0.0.5"), &p, S).is_ok());
        assert_eq!(t.evictions.load(Ordering::Relaxed), 1);
        assert_eq!(t.len(), 4);
    }

    #[test]
    fn cooldowns_are_not_evicted() {
        let p = logins(1, 3 * S, 60 * S);
        let t = Table::new(1);
        let a = t.admit(ip("10.0.0.1"), &p, S).unwrap();
        assert_eq!(t.login_begin(a, &p, S), LoginGate::Go);
        assert_eq!(t.login_end(a, false, &p, S), LoginEnd::CooldownStarted);
        t.release(a, true, S);
        assert_eq!(
            t.admit(ip("10.0.0.2"), &p, 2 * S).unwrap_err().limit,
            Limit::TableFull
        );
        // After the cool-down it may go.
        assert!(t.admit(ip("10.0.0.2"), &p, 70 * S).is_ok());
    }

    /// Shards hit the table at once; counts stay exact.
    #[test]
    fn concurrent_admissions_keep_exact_counts() {
        let p = Policy {
            max_unauthenticated: 1000,
            ..Policy::default()
        };
        let t = std::sync::Arc::new(Table::new(1024));
        let threads: Vec<_> = (0..4)
            .map(|n| {
                let t = t.clone();
                let p = p.clone();
                std::thread::spawn(move || {
                    for i in 0..2000u32 {
                        let a = ip(&format!("10.{n}.{}.{}", i / 250, i % 250));
                        let k = t.admit(a, &p, S).unwrap();
                        if i % 2 == 0 {
                            t.logged_in(k);
                            t.release(k, false, S);
                        } else {
                            t.release(k, true, S);
                        }
                    }
                })
            })
            .collect();
        for th in threads {
            th.join().unwrap();
        }
        assert_eq!(t.pending(), 0);
        assert!(t.is_empty());
    }
}
