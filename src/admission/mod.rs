//! Abuse limits: who may connect and who may try a password, per source address, shared by
//! every shard (docs/config.md "Abuse limits", docs/metrics.md "Abuse limits").
//!
//! - [`table`]: the per-address state (connections, buckets, cool-downs), bounded, sans-IO;
//! - [`bucket`]: the token bucket the rates and the failed-login budget use;
//! - [`policy`]: the limits as numbers, replaced on SIGHUP;
//! - [`proxy`]: the PROXY protocol header parser, sans-IO; [`accept`] reads one off a socket.
//!
//! [`Admission`] is the thin layer the listener and the connection driver call: it reads the
//! clock, counts, and logs one line when an episode of a limit starts (not per refusal).

pub mod accept;
pub mod bucket;
pub mod policy;
pub mod proxy;
pub mod table;

pub use policy::Policy;
pub use table::Limit;

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use table::{Key, LoginEnd, LoginGate, Table};
use tracing::warn;

/// The limits, the per-address table and their counters; one per server.
#[derive(Debug)]
pub struct Admission {
    policy: RwLock<Arc<Policy>>,
    table: Table,
    /// Time zero of the table's clock.
    epoch: Instant,
    refused: [AtomicU64; Limit::COUNT],
    episodes: [AtomicU64; Limit::COUNT],
    /// AUTH/`pass` answered as failed without a password check (budget used, cool-down).
    logins_refused: AtomicU64,
    proxy_ok: AtomicU64,
    proxy_failed: AtomicU64,
    /// Refused connections closed without their answer (too many refusals at once).
    unanswered: AtomicU64,
}

/// The failed-login budget of one connection's address, as the authenticator asks it.
#[derive(Debug)]
pub struct LoginBudget<'a> {
    admission: &'a Admission,
    admitted: &'a Admitted,
}

impl crate::credentials::CheckBudget for LoginBudget<'_> {
    fn begin(&self) -> bool {
        self.admission.login_begin(self.admitted)
    }

    fn end(&self, ok: bool) {
        self.admission.login_end(self.admitted, ok)
    }
}

/// A connection counted by [`Admission::admit`]; give it back with [`Admission::release`].
#[derive(Debug)]
pub struct Admitted {
    key: Key,
    /// Not logged in yet.
    pending: bool,
}

/// The counters and gauges of [`Admission`], for `/metrics` and tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AdmissionStats {
    /// Connections refused, by [`Limit`].
    pub refused: [u64; Limit::COUNT],
    /// Episodes started, by [`Limit`].
    pub episodes: [u64; Limit::COUNT],
    pub logins_refused: u64,
    pub proxy_ok: u64,
    pub proxy_failed: u64,
    pub unanswered: u64,
    pub unauthenticated: u64,
    pub addresses: u64,
    pub capacity: u64,
    pub evictions: u64,
}

impl AdmissionStats {
    pub fn refused(&self, l: Limit) -> u64 {
        self.refused[l as usize]
    }

    pub fn episodes(&self, l: Limit) -> u64 {
        self.episodes[l as usize]
    }
}

impl Admission {
    /// `table_size`: addresses the table holds (`address-table-size`).
    pub fn new(policy: Policy, table_size: usize) -> Admission {
        Admission {
            policy: RwLock::new(Arc::new(policy)),
            table: Table::new(table_size),
            epoch: Instant::now(),
            refused: Default::default(),
            episodes: Default::default(),
            logins_refused: AtomicU64::new(0),
            proxy_ok: AtomicU64::new(0),
            proxy_failed: AtomicU64::new(0),
            unanswered: AtomicU64::new(0),
        }
    }

    pub fn policy(&self) -> Arc<Policy> {
        self.policy
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Installs new limits (SIGHUP); connections already counted stay counted. True when
    /// anything changed.
    pub fn set_policy(&self, p: Policy) -> bool {
        let mut cur = self.policy.write().unwrap_or_else(|e| e.into_inner());
        if **cur == p {
            return false;
        }
        *cur = Arc::new(p);
        true
    }

    pub fn handshake_timeout(&self) -> Duration {
        self.policy().handshake_timeout
    }

    fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    /// A new connection from `peer` (after any PROXY header): counted, or refused by `Limit`
    /// (already counted and, for a new episode, logged).
    pub fn admit(&self, peer: IpAddr) -> Result<Admitted, Limit> {
        let p = self.policy();
        match self.table.admit(peer, &p, self.now()) {
            Ok(key) => Ok(Admitted { key, pending: true }),
            Err(r) => {
                self.refused[r.limit as usize].fetch_add(1, Relaxed);
                if r.new_episode {
                    self.episodes[r.limit as usize].fetch_add(1, Relaxed);
                    let key = Key::of(peer);
                    let what = match r.limit {
                        Limit::ConnectionRate => "connection-rate reached",
                        Limit::PerAddress => "max-clients-per-address reached",
                        Limit::UnauthenticatedPerAddress => {
                            "max-unauthenticated-per-address reached"
                        }
                        Limit::Unauthenticated => "max-unauthenticated reached (all addresses)",
                        Limit::TableFull => "address-table-size reached",
                        Limit::LoginFailures => "in its failed-login cool-down",
                    };
                    warn!(address = %key, limit = r.limit.as_str(),
                        "{what}: refusing new connections (logged once per episode: until 30 s pass \
                         without a refusal)");
                }
                Err(r.limit)
            }
        }
    }

    /// The connection logged in: it leaves the unauthenticated share.
    pub fn logged_in(&self, a: &mut Admitted) {
        if a.pending {
            a.pending = false;
            self.table.logged_in(a.key);
        }
    }

    /// The connection ended.
    pub fn release(&self, a: &Admitted) {
        self.table.release(a.key, a.pending, self.now());
    }

    /// The failed-login budget of the connection `a`, for the password checks of one login.
    pub fn budget<'a>(&'a self, a: &'a Admitted) -> LoginBudget<'a> {
        LoginBudget {
            admission: self,
            admitted: a,
        }
    }

    /// Before a password check: false when the address may not try now (the attempt is to be
    /// answered as a failed login, without a check).
    pub fn login_begin(&self, a: &Admitted) -> bool {
        let p = self.policy();
        match self.table.login_begin(a.key, &p, self.now()) {
            LoginGate::Go => true,
            LoginGate::Refuse => {
                self.logins_refused.fetch_add(1, Relaxed);
                false
            }
        }
    }

    /// After a check [`Admission::login_begin`] allowed.
    pub fn login_end(&self, a: &Admitted, ok: bool) {
        let p = self.policy();
        if self.table.login_end(a.key, ok, &p, self.now()) == LoginEnd::CooldownStarted {
            self.episodes[Limit::LoginFailures as usize].fetch_add(1, Relaxed);
            let budget = p.login_failures.map_or(0, |r| r.burst);
            warn!(address = %a.key, limit = Limit::LoginFailures.as_str(),
                "{budget} failed logins: its logins and new connections are refused for {:?} \
                 (login-failure-cooldown; logged once)", p.login_cooldown);
        }
    }

    /// A trusted proxy's header was read (`Ok`) or was missing or bad.
    pub fn proxy_header(&self, proxy: SocketAddr, r: Result<(), proxy::ProxyError>) {
        match r {
            Ok(()) => self.proxy_ok.fetch_add(1, Relaxed),
            Err(e) => {
                tracing::debug!(%proxy, error = %e, "connection from a trusted proxy dropped");
                self.proxy_failed.fetch_add(1, Relaxed)
            }
        };
    }

    /// A refused connection (any limit, `max-clients` too) was closed without its answer
    /// because the listener was already answering as many refusals as it may.
    pub fn unanswered(&self) {
        self.unanswered.fetch_add(1, Relaxed);
    }

    pub fn stats(&self) -> AdmissionStats {
        let load = |a: &[AtomicU64; Limit::COUNT]| a.each_ref().map(|c| c.load(Relaxed));
        AdmissionStats {
            refused: load(&self.refused),
            episodes: load(&self.episodes),
            logins_refused: self.logins_refused.load(Relaxed),
            proxy_ok: self.proxy_ok.load(Relaxed),
            proxy_failed: self.proxy_failed.load(Relaxed),
            unanswered: self.unanswered.load(Relaxed),
            unauthenticated: self.table.pending() as u64,
            addresses: self.table.len() as u64,
            capacity: self.table.capacity() as u64,
            evictions: self.table.evictions.load(Relaxed) as u64,
        }
    }
}
