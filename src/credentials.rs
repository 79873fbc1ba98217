//! Password checks off the session hot path, with a cache of verified credentials.
//!
//! A PBKDF2 check (70,000 rounds of HMAC-SHA256) costs about 15 ms of CPU. Done inline it would
//! stall every session on the shard for that long and cap logins at ~70/s per core; done for
//! every login it hands an attacker a cheap way to burn CPU. So:
//! - the check runs on the shard's blocking thread pool, and at most [`MAX_SLOW_CHECKS`] run at
//!   once per shard (further logins wait their turn, which also rate-limits guessing);
//! - a successful check is remembered per shard under a keyed hash (HMAC-SHA256 with a random
//!   per-process key) of user, password and user-database generation, in the spirit of
//!   RabbitMQ's auth-backend cache: a known device's re-login costs microseconds. The cache
//!   never holds a password, is bounded, and is emptied when the user database changes.
//!
//! MD5 (legacy) passwords are cheap and checked inline. The user's `remotes` are checked before
//! the password, and every check asks the address's failed-login budget ([`CheckBudget`],
//! `crate::admission`) first, so neither a denied address nor a guessing one costs a hash. The
//! budget is asked only when a check is about to run (after the wait for a check slot and the
//! second cache look), so at most [`MAX_SLOW_CHECKS`] per shard hold a reservation at once: a
//! storm of correct logins from one address (a NAT after a restart) never finds it used up by
//! logins still waiting.

use ring::hmac;
use std::cell::RefCell;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};
use vscp_proto::auth::Credentials;
use vscp_proto::{User, UserDb};

/// Concurrent PBKDF2 checks per shard.
pub const MAX_SLOW_CHECKS: u64 = 2;
/// Entries per shard cache; when full it is emptied (cheap, and a re-login refills it).
pub const MAX_CACHE_ENTRIES: usize = 16_384;

/// The user database shared by all shards, replaceable at runtime (SIGHUP reload).
#[derive(Debug)]
pub struct Users {
    current: RwLock<(u64, Arc<UserDb>)>,
}

impl Users {
    pub fn new(db: UserDb) -> Users {
        Users {
            current: RwLock::new((1, Arc::new(db))),
        }
    }

    /// The current database and its generation (bumped by every replace).
    pub fn current(&self) -> (u64, Arc<UserDb>) {
        let g = self.current.read().unwrap_or_else(|e| e.into_inner());
        (g.0, g.1.clone())
    }

    /// Installs a new database; every shard's credential cache is invalidated.
    pub fn replace(&self, db: UserDb) {
        let mut g = self.current.write().unwrap_or_else(|e| e.into_inner());
        g.0 += 1;
        g.1 = Arc::new(db);
    }
}

/// Why a login failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoginFailure {
    /// Unknown user or wrong password.
    Credentials,
    /// The peer address is not in the user's `remotes`.
    Remote,
    /// The address's failed-login budget is used up: refused without a check.
    Throttled,
}

/// The failed-login budget of the address a login comes from: asked right before a check runs,
/// told its outcome. A verified-credential cache hit needs neither.
pub trait CheckBudget {
    /// Reserves one failed login for the check about to run; false: refuse without a check.
    fn begin(&self) -> bool;
    /// The check reserved by `begin` came out `ok` (a success gives the reservation back).
    fn end(&self, ok: bool);
}

/// No budget: every check runs (tests, tools).
#[derive(Debug)]
pub struct Unmetered;

impl CheckBudget for Unmetered {
    fn begin(&self) -> bool {
        true
    }
    fn end(&self, _ok: bool) {}
}

/// Runs `check` under `budget`: refused (no check) or reserved, checked and reported.
fn metered(budget: &dyn CheckBudget, check: impl FnOnce() -> bool) -> Result<bool, LoginFailure> {
    if !budget.begin() {
        return Err(LoginFailure::Throttled);
    }
    let ok = check();
    budget.end(ok);
    Ok(ok)
}

/// Per-shard login checker.
pub struct Authenticator {
    users: Arc<Users>,
    stats: Arc<crate::stats::ShardStats>,
    key: Arc<hmac::Key>,
    cache: RefCell<(u64, HashMap<[u8; 32], ()>)>,
    slow: glommio::sync::Semaphore,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("cached", &self.cache.borrow().1.len())
            .finish()
    }
}

/// A random key for the cache's keyed hash, shared by the shards of one process.
pub fn new_cache_key() -> Arc<hmac::Key> {
    let rng = ring::rand::SystemRandom::new();
    // Generating a key only fails if the OS has no randomness, in which case nothing else
    // (session ids included) could work either.
    let key = hmac::Key::generate(hmac::HMAC_SHA256, &rng).expect("OS random number generator");
    Arc::new(key)
}

impl Authenticator {
    pub fn new(
        users: Arc<Users>,
        key: Arc<hmac::Key>,
        stats: Arc<crate::stats::ShardStats>,
    ) -> Authenticator {
        Authenticator {
            users,
            stats,
            key,
            cache: RefCell::new((0, HashMap::new())),
            slow: glommio::sync::Semaphore::new(MAX_SLOW_CHECKS),
        }
    }

    /// Checks a login from `peer` under its address's failed-login `budget`. Never blocks the
    /// shard: slow hashes run on the blocking pool.
    pub async fn login(
        &self,
        creds: Credentials,
        peer: IpAddr,
        budget: &dyn CheckBudget,
    ) -> Result<Arc<User>, LoginFailure> {
        let (generation, db) = self.users.current();
        // An unknown user or a denied address costs no hash, but counts as a failed login
        // (guessing names is guessing too); the answer is the one of a wrong password.
        let Some(user) = db.get(&creds.user).cloned() else {
            metered(budget, || false)?;
            return Err(LoginFailure::Credentials);
        };
        if !user.remotes.allows(peer) {
            metered(budget, || false)?;
            return Err(LoginFailure::Remote);
        }
        let ok = if user.password_is_slow() {
            let tag = self.tag(generation, &creds);
            if self.cached(generation, &tag) {
                crate::stats::ShardStats::add(&self.stats.login_cache_hits, 1);
                true
            } else {
                self.slow_check(&user, creds.password, generation, tag, budget)
                    .await?
            }
        } else {
            metered(budget, || user.verify_password(&creds.password))?
        };
        if !ok {
            return Err(LoginFailure::Credentials);
        }
        Ok(user)
    }

    /// The PBKDF2 check, one of at most [`MAX_SLOW_CHECKS`] per shard at a time. The cache is
    /// consulted again once a permit is granted: in a connect storm after a restart, thousands
    /// of devices with the same credentials queue here at once, and only the first needs the
    /// hash; without the second look each would pay 15 ms in turn (seconds of login latency).
    async fn slow_check(
        &self,
        user: &Arc<User>,
        password: String,
        generation: u64,
        tag: [u8; 32],
        budget: &dyn CheckBudget,
    ) -> Result<bool, LoginFailure> {
        // The semaphore is never closed, so acquire only fails if it was; treat that as "no".
        let Ok(_permit) = self.slow.acquire_permit(1).await else {
            return Ok(false);
        };
        if self.cached(generation, &tag) {
            crate::stats::ShardStats::add(&self.stats.login_cache_hits, 1);
            return Ok(true);
        }
        // Asked here, not before the wait: only checks that run hold a reservation.
        if !budget.begin() {
            return Err(LoginFailure::Throttled);
        }
        crate::stats::ShardStats::add(&self.stats.login_slow_checks, 1);
        let user = user.clone();
        let ok = glommio::executor()
            .spawn_blocking(move || user.verify_password(&password))
            .await;
        budget.end(ok);
        if ok {
            self.remember(generation, tag);
        }
        Ok(ok)
    }

    fn tag(&self, generation: u64, creds: &Credentials) -> [u8; 32] {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(&generation.to_le_bytes());
        ctx.update(&(creds.user.len() as u64).to_le_bytes());
        ctx.update(creds.user.as_bytes());
        ctx.update(creds.password.as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.sign().as_ref());
        out
    }

    fn cached(&self, generation: u64, tag: &[u8; 32]) -> bool {
        let mut c = self.cache.borrow_mut();
        if c.0 != generation {
            c.0 = generation;
            c.1.clear();
            return false;
        }
        c.1.contains_key(tag)
    }

    fn remember(&self, generation: u64, tag: [u8; 32]) {
        let mut c = self.cache.borrow_mut();
        if c.0 != generation {
            c.0 = generation;
            c.1.clear();
        }
        if c.1.len() >= MAX_CACHE_ENTRIES {
            c.1.clear();
        }
        c.1.insert(tag, ());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;

    const ADMIN: &str = r#"{"users":[{"name":"admin","rights":"admin",
        "password":"487636FDE3637C7C853AAC9EAF6FA062;357C71CA59F760C08C4125C444A22A91FD1FE1FB0E5628771A572BAF6F61B71F"}]}"#;

    /// `remotes` is checked first: a denied address costs no PBKDF2 check, right password or
    /// not.
    #[test]
    fn denied_address_costs_no_password_check() {
        const DENIED: &str = r#"{"users":[{"name":"admin","rights":"admin","remotes":"-127.0.0.0/8",
            "password":"487636FDE3637C7C853AAC9EAF6FA062;357C71CA59F760C08C4125C444A22A91FD1FE1FB0E5628771A572BAF6F61B71F"}]}"#;
        let (verdicts, slow) = glommio::LocalExecutorBuilder::default()
            .io_memory(1 << 20)
            .spawn(|| async {
                let stats = Arc::new(crate::stats::ShardStats::default());
                let users = Arc::new(Users::new(UserDb::from_json(DENIED).unwrap()));
                let auth = Authenticator::new(users, new_cache_key(), stats.clone());
                let mut verdicts = Vec::new();
                for (password, peer) in [("secret", "127.0.0.1"), ("wrong", "127.0.0.2")] {
                    let creds = Credentials {
                        user: "admin".into(),
                        password: password.into(),
                    };
                    verdicts.push(
                        auth.login(creds, peer.parse().unwrap(), &Unmetered)
                            .await
                            .err(),
                    );
                }
                let slow = stats
                    .login_slow_checks
                    .load(std::sync::atomic::Ordering::Relaxed);
                (verdicts, slow)
            })
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(verdicts, [Some(LoginFailure::Remote); 2]);
        assert_eq!(slow, 0);
    }

    /// A budget that refuses: no check runs and the login fails as `Throttled`; a cache hit
    /// needs no budget at all; every check that runs is reported.
    #[test]
    fn the_budget_is_asked_only_for_checks_that_run() {
        use std::cell::Cell;
        struct Budget {
            left: Cell<u32>,
            ended: Cell<u32>,
        }
        impl CheckBudget for Budget {
            fn begin(&self) -> bool {
                let left = self.left.get();
                self.left.set(left.saturating_sub(1));
                left > 0
            }
            fn end(&self, _ok: bool) {
                self.ended.set(self.ended.get() + 1);
            }
        }
        let (verdicts, slow, ended) = glommio::LocalExecutorBuilder::default()
            .io_memory(1 << 20)
            .spawn(|| async {
                let stats = Arc::new(crate::stats::ShardStats::default());
                let users = Arc::new(Users::new(UserDb::from_json(ADMIN).unwrap()));
                let auth = Authenticator::new(users, new_cache_key(), stats.clone());
                let budget = Budget {
                    left: Cell::new(2),
                    ended: Cell::new(0),
                };
                let mut verdicts = Vec::new();
                for (user, password) in [
                    ("admin", "secret"), // a check (1 of 2), then cached
                    ("admin", "secret"), // cache hit: no budget
                    ("nobody", "x"),     // unknown user: counted (2 of 2)
                    ("admin", "wrong"),  // budget used: refused without a check
                    ("admin", "secret"), // still a cache hit
                ] {
                    let creds = Credentials {
                        user: user.into(),
                        password: password.into(),
                    };
                    let peer = "127.0.0.1".parse().unwrap();
                    verdicts.push(auth.login(creds, peer, &budget).await.err());
                }
                let slow = stats
                    .login_slow_checks
                    .load(std::sync::atomic::Ordering::Relaxed);
                (verdicts, slow, budget.ended.get())
            })
            .unwrap()
            .join()
            .unwrap();
        let failed = |f| Some(f);
        assert_eq!(
            verdicts,
            [
                None,
                None,
                failed(LoginFailure::Credentials),
                failed(LoginFailure::Throttled),
                None
            ]
        );
        assert_eq!(slow, 1);
        assert_eq!(ended, 2);
    }

    /// A storm of logins with the same credentials on a cold cache hashes at most once per
    /// permit; everyone else is let in by the cache entry the first check left behind.
    #[test]
    fn concurrent_cold_logins_hash_once_per_permit() {
        let (slow, hits, ok) = glommio::LocalExecutorBuilder::default()
            .io_memory(1 << 20)
            .spawn(|| async {
                let stats = Arc::new(crate::stats::ShardStats::default());
                let users = Arc::new(Users::new(UserDb::from_json(ADMIN).unwrap()));
                let auth = Rc::new(Authenticator::new(users, new_cache_key(), stats.clone()));
                let logins: Vec<_> = (0..20)
                    .map(|_| {
                        let auth = auth.clone();
                        glommio::spawn_local(async move {
                            let creds = Credentials {
                                user: "admin".into(),
                                password: "secret".into(),
                            };
                            auth.login(creds, "127.0.0.1".parse().unwrap(), &Unmetered)
                                .await
                                .is_ok()
                        })
                    })
                    .collect();
                let mut ok = 0;
                for l in logins {
                    ok += l.await as u32;
                }
                let get =
                    |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
                (
                    get(&stats.login_slow_checks),
                    get(&stats.login_cache_hits),
                    ok,
                )
            })
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(ok, 20);
        assert!(
            slow <= MAX_SLOW_CHECKS,
            "{slow} PBKDF2 checks for one password"
        );
        assert_eq!(slow + hits, 20);
    }
}
