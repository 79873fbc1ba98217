//! Starting and stopping the sharded server.
//!
//! [`start`] builds the rings between shards, starts one pinned glommio executor per shard and
//! returns once every shard listens. The first shard binds the configured addresses (port 0
//! picks one); the others bind the addresses it got, and the kernel spreads connections across
//! them (SO_REUSEPORT). [`ServerHandle::shutdown`] (or dropping the handle) tells every
//! executor to stop through a [`ShutdownTrigger`] and joins them.

use crate::config::Config;
use crate::context::Shared;
use crate::credentials::{new_cache_key, Users};
use crate::http::Readiness;
use crate::hub::RoutedEvent;
use crate::listener::ListenError;
use crate::metrics::{Exporter, Limits};
use crate::settings::{ListenerKind, ListenerSpec, Settings};
use crate::shard::{self, ShardSetup};
use crate::shutdown::ShutdownTrigger;
use crate::stats::{ShardStats, Stats, UplinkStats};
use crate::tls::TlsStore;
use crate::uplink::{self, Uplink, UplinkRings};
use glommio::channels::shared_channel;
use glommio::{LocalExecutorBuilder, Placement, PoolPlacement};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;
use vscp_proto::UserDb;

/// glommio's registered I/O memory per executor. Kept at 1 MiB so the server also starts
/// without CAP_IPC_LOCK under a small memlock limit (the default 8 MiB holds several shards).
const IO_MEMORY: usize = 1 << 20;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Listen(#[from] ListenError),
    #[error("address {addr} is already in use (is another server running on it?)")]
    InUse { addr: SocketAddr },
    #[error("{first} and {second} both listen on {addr}; give them different ports")]
    SameAddress {
        addr: SocketAddr,
        first: &'static str,
        second: &'static str,
    },
    #[error("cannot start shard {shard}: {reason}")]
    Executor { shard: usize, reason: String },
    #[error("cannot create the shutdown signal: {0}")]
    Signal(#[source] std::io::Error),
    #[error(transparent)]
    Tls(#[from] crate::config::ConfigError),
}

/// A running server.
#[derive(Debug)]
pub struct ServerHandle {
    /// Bound listener addresses, in the order of `Settings::listeners` (websockets first).
    addrs: Vec<SocketAddr>,
    /// Which of `addrs` is the tcp/ip link interface's, when it is on.
    tcpip: Option<usize>,
    shutdown: ShutdownTrigger,
    users: Arc<Users>,
    /// What the shards share, among it what SIGHUP may change (`max-clients`, the filters).
    shared: Arc<Shared>,
    stats: Vec<Arc<ShardStats>>,
    uplink_stats: Arc<UplinkStats>,
    metrics_addr: Option<SocketAddr>,
    /// `/readyz` reads it; a stop fails it first, so a load balancer stops sending clients.
    readiness: Arc<Readiness>,
    /// The TLS configuration new connections get, with a TLS listener.
    tls: Option<Arc<TlsStore>>,
    /// Which config runs (`/metrics`).
    config: Arc<crate::stats::ConfigGeneration>,
    threads: Vec<glommio::ExecutorJoinHandle<()>>,
}

impl ServerHandle {
    /// The address the websocket listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    /// Every listener's bound address, websockets first.
    pub fn listen_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// The address the tcp/ip link interface listens on (`tcpip-interface`), if it is on.
    pub fn tcpip_addr(&self) -> Option<SocketAddr> {
        self.tcpip.map(|i| self.addrs[i])
    }

    /// Where `/metrics`, `/healthz` and `/readyz` are served, if enabled.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// Counters summed over all shards.
    pub fn stats(&self) -> Stats {
        Stats::sum(self.stats.iter().map(|s| s.as_ref()))
    }

    /// Counters of each shard on its own (index = shard number).
    pub fn shard_stats(&self) -> Vec<Stats> {
        self.stats
            .iter()
            .map(|s| Stats::sum(std::iter::once(s.as_ref())))
            .collect()
    }

    /// Counters of the uplink rings (zero without an uplink).
    pub fn uplink_stats(&self) -> &UplinkStats {
        &self.uplink_stats
    }

    /// Number of shards.
    pub fn shards(&self) -> usize {
        self.stats.len()
    }

    /// Replaces the user database (logins from now on use it; verified-credential caches are
    /// emptied). Sessions already logged in keep their user.
    pub fn reload_users(&self, db: UserDb) {
        self.users.replace(db);
    }

    /// Records a SIGHUP's outcome: a valid config applied (a new generation), or refused.
    pub fn config_reloaded(&self, valid: bool) {
        self.config.reloaded(valid, unix_now());
    }

    /// Applies what of a re-read config takes effect at once: `max-clients` (sessions beyond a
    /// lowered limit stay; new ones wait for room), the driver's `in-filter`/`out-filter`
    /// (from the next event on) and the abuse limits but `address-table-size` (from the next
    /// connection or login on). Returns what changed, for the log.
    pub fn reconfigure(&self, cfg: &crate::config::Config) -> Vec<String> {
        let mut changed = Vec::new();
        let old = self
            .shared
            .max_clients
            .swap(cfg.max_clients, Ordering::Relaxed);
        if old != cfg.max_clients {
            changed.push(format!("max-clients {old} -> {}", cfg.max_clients));
        }
        let (old_in, old_out) = self.shared.filters.get();
        if (old_in, old_out) != (cfg.in_filter, cfg.out_filter) {
            self.shared.filters.set(cfg.in_filter, cfg.out_filter);
            changed.push("in-filter/out-filter".to_string());
        }
        let policy = crate::settings::admission_policy(cfg);
        if self.shared.admission.set_policy(policy) {
            changed.push("abuse limits (docs/config.md \"Abuse limits\")".to_string());
        }
        changed
    }

    /// The abuse limits' counters (refusals, episodes, connections not logged in yet).
    pub fn admission_stats(&self) -> crate::admission::AdmissionStats {
        self.shared.admission.stats()
    }

    /// Reads the TLS certificate files again (SIGHUP): new connections get the new certificate,
    /// open sessions keep theirs. On an error the previous configuration stays. `Ok(false)`
    /// without a TLS listener.
    pub fn reload_tls(&self) -> Result<bool, crate::config::ConfigError> {
        match &self.tls {
            None => Ok(false),
            Some(store) => store.reload().map(|()| true),
        }
    }

    /// Seconds until the served certificate expires (`None`: no TLS listener, or unreadable).
    pub fn tls_expiry_seconds(&self) -> Option<i64> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        self.tls.as_ref()?.expiry_seconds(now)
    }

    /// Stops accepting, closes every session with 1001, drains, and joins every shard.
    pub fn shutdown(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        self.readiness.stopping.store(true, Ordering::Release);
        self.shutdown.trigger();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

/// Starts the standalone server (in-process bus only) with `shards` executors (default: one
/// per CPU).
pub fn start(cfg: &Config, users: UserDb) -> Result<ServerHandle, StartError> {
    start_with_uplink(cfg, users, None)
}

/// Starts the server; with an uplink (MQTT bridge, vscpd host) it runs on one more executor and
/// exchanges events with every shard through a pair of bounded rings (see [`crate::uplink`]).
pub fn start_with_uplink(
    cfg: &Config,
    users: UserDb,
    uplink: Option<Box<dyn Uplink>>,
) -> Result<ServerHandle, StartError> {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let n = cfg
        .shards
        .unwrap_or(default_shards(cpus, uplink.is_some()))
        .max(1);
    let mut settings = Settings {
        confirm_timeout: uplink.as_ref().and_then(|u| u.confirm_timeout()),
        ..Settings::from_config(cfg)
    };
    if uplink.as_ref().is_some_and(|u| u.name() == "vscpd") {
        // The tcp/ip greeting says what runs the server (tcp.md §2.1).
        settings.session.tcp_host = "l2drv";
    }
    let settings = Arc::new(settings);
    check_distinct(&settings.listeners)?;
    for spec in &settings.listeners {
        if spec.addr.port() != 0 {
            // Listeners set SO_REUSEPORT, so a second server on the same port would silently
            // take half the connections. A plain bind (no SO_REUSEPORT) fails if anyone
            // listens there.
            plain_bind(spec.addr, spec.kind.config_key())?;
        }
    }
    // Built again from the files (they were checked when the config was read): a certificate
    // replaced since then is what the listeners serve.
    let tls =
        match (&cfg.tls, settings.listeners.iter().find(|l| l.tls)) {
            (_, None) => None,
            (Some(t), Some(_)) => Some(TlsStore::new(t.clone())?),
            (None, Some(l)) => return Err(StartError::Tls(crate::config::ConfigError::Key {
                file: cfg.origin.clone(),
                key: l.kind.config_key().into(),
                reason:
                    "a TLS listener without TLS settings (the config was not read by Config::load)"
                        .into(),
            })),
        };
    let shared = Arc::new(Shared {
        clients: AtomicUsize::new(0),
        registry: Default::default(),
        max_clients: Arc::new(AtomicUsize::new(cfg.max_clients)),
        filters: Arc::new(crate::hub::DriverFilters::new(
            cfg.in_filter,
            cfg.out_filter,
        )),
        next_conn_id: AtomicU32::new(1),
        admission: Arc::new(crate::admission::Admission::new(
            crate::settings::admission_policy(cfg),
            cfg.address_table_size,
        )),
    });
    let users = Arc::new(Users::new(users));
    let cache_key = new_cache_key();
    let stats: Vec<Arc<ShardStats>> = (0..n).map(|_| Arc::new(ShardStats::default())).collect();

    // rings[i][j]: shard i -> shard j.
    let mut senders: Vec<Vec<_>> = (0..n).map(|_| Vec::new()).collect();
    let mut receivers: Vec<Vec<_>> = (0..n).map(|_| Vec::new()).collect();
    for (i, tx_list) in senders.iter_mut().enumerate() {
        for (j, rx_list) in receivers.iter_mut().enumerate() {
            if i != j {
                let (tx, rx) =
                    shared_channel::new_bounded::<Arc<RoutedEvent>>(settings.max_in_queue);
                tx_list.push(tx);
                rx_list.push(rx);
            }
        }
    }

    let uplink_rings = uplink.as_ref().map(|_| {
        let mut rings = UplinkRings {
            from_shards: Vec::new(),
            to_shards: Vec::new(),
        };
        for i in 0..n {
            let (tx, rx) = shared_channel::new_bounded::<Arc<RoutedEvent>>(settings.max_in_queue);
            senders[i].push(tx);
            rings.from_shards.push(rx);
            let (tx, rx) = shared_channel::new_bounded::<Arc<RoutedEvent>>(settings.max_in_queue);
            rings.to_shards.push(tx);
            receivers[i].push(rx);
        }
        rings
    });

    let uplink_stats = Arc::new(UplinkStats::default());
    let readiness = Arc::new(Readiness {
        listening: AtomicBool::new(false),
        stopping: AtomicBool::new(false),
        uplink: uplink.as_ref().map(|_| uplink_stats.clone()),
    });
    let mut handle = ServerHandle {
        addrs: settings.listeners.iter().map(|l| l.addr).collect(),
        tcpip: settings
            .listeners
            .iter()
            .position(|l| matches!(l.kind, ListenerKind::Tcp(_))),
        shutdown: ShutdownTrigger::default(),
        users: users.clone(),
        shared: shared.clone(),
        stats: stats.clone(),
        uplink_stats,
        metrics_addr: None,
        readiness: readiness.clone(),
        tls: tls.clone(),
        config: Arc::new(crate::stats::ConfigGeneration::new(unix_now())),
        threads: Vec::new(),
    };
    let mut metrics = match cfg.metrics_listen {
        None => None,
        Some(at) => {
            // A plain bind (no SO_REUSEPORT) so a second server on the port is an error, not a
            // silent split of the scrapes.
            let listener = plain_bind(at, "metrics-interface")?;
            handle.metrics_addr = listener.local_addr().ok();
            let exporter = Arc::new(
                Exporter::new(
                    stats.clone(),
                    uplink
                        .as_ref()
                        .map(|u| (u.name(), handle.uplink_stats.clone())),
                    Limits {
                        max_clients: shared.max_clients.clone(),
                        max_out_queue: settings.max_out_queue,
                        max_in_queue: settings.max_in_queue,
                        shards: n,
                        config: handle.config.clone(),
                    },
                )
                .with_tls(tls.clone())
                .with_admission(shared.admission.clone()),
            );
            Some((listener, exporter, readiness.clone()))
        }
    };
    // Dropped by the uplink executor when it has finished: shard 0 keeps `/metrics` and
    // `/readyz` answering until then.
    let mut uplink_done = ShutdownTrigger::default();
    let mut uplink_done_signal = match uplink {
        Some(_) => Some(uplink_done.signal().map_err(StartError::Signal)?),
        None => None,
    };
    // The uplink's body: on a shard's executor when it would share that shard's core, else on a
    // thread of its own (below).
    let has_uplink = uplink.is_some();
    let host = uplink.as_ref().and_then(|_| uplink_host(n, cpus));
    let (uplink_ready_tx, uplink_ready_rx) = std::sync::mpsc::channel();
    let uplink_body = match (uplink, uplink_rings) {
        (Some(uplink), Some(rings)) => {
            let shutdown = handle.shutdown.signal().map_err(StartError::Signal)?;
            let stats = handle.uplink_stats.clone();
            let body: crate::shard::UplinkBody = Box::new(move || {
                Box::pin(async move {
                    uplink::run(uplink, rings, shutdown, stats, uplink_ready_tx).await;
                    drop(uplink_done);
                })
            });
            Some(body)
        }
        _ => None,
    };
    let mut uplink_body = uplink_body;
    let mut listeners = settings.listeners.clone();
    for (shard, (to_peers, from_peers)) in senders.into_iter().zip(receivers).enumerate() {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let setup = ShardSetup {
            shard,
            listeners: listeners.clone(),
            stats: stats[shard].clone(),
            shared: shared.clone(),
            users: users.clone(),
            cache_key: cache_key.clone(),
            settings: settings.clone(),
            tls: tls.clone(),
            to_peers,
            from_peers,
            shard_rings: n - 1,
            metrics: if shard == 0 { metrics.take() } else { None },
            shutdown: handle.shutdown.signal().map_err(StartError::Signal)?,
            uplink_done: if shard == 0 {
                uplink_done_signal.take()
            } else {
                None
            },
            ready: ready_tx,
            uplink: if host == Some(shard) {
                uplink_body.take()
            } else {
                None
            },
        };
        let builder = LocalExecutorBuilder::new(Placement::Fixed(shard % cpus))
            .name(&format!("vscp-shard-{shard}"))
            .io_memory(IO_MEMORY)
            .blocking_thread_pool_placement(PoolPlacement::Unbound(2));
        let thread =
            builder
                .spawn(move || shard::run(setup))
                .map_err(|e| StartError::Executor {
                    shard,
                    reason: e.to_string(),
                })?;
        handle.threads.push(thread);
        match ready_rx.recv() {
            Ok(Ok(bound)) => {
                // The other shards bind what the first one got (port 0 picked a port).
                for (spec, addr) in listeners.iter_mut().zip(bound) {
                    spec.addr = addr;
                }
            }
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => {
                return Err(StartError::Executor {
                    shard,
                    reason: "the executor stopped during start-up".into(),
                })
            }
        }
    }
    if let Some(body) = uplink_body.take() {
        let thread = LocalExecutorBuilder::new(Placement::Fixed(n % cpus))
            .name("vscp-uplink")
            .io_memory(IO_MEMORY)
            .spawn(body)
            .map_err(|e| StartError::Executor {
                shard: n,
                reason: format!("uplink: {e}"),
            })?;
        handle.threads.push(thread);
    }
    if has_uplink && uplink_ready_rx.recv().is_err() {
        return Err(StartError::Executor {
            shard: n,
            reason: "the uplink executor stopped during start-up".into(),
        });
    }
    handle.addrs = listeners.iter().map(|l| l.addr).collect();
    readiness.listening.store(true, Ordering::Release);
    Ok(handle)
}

/// Shards when the config does not say: one per core, except that from 3 cores up an uplink
/// gets a core of its own (the uplink executor is placed on core `shards % cpus`, i.e. the last
/// one). With 2 cores a dedicated uplink core would halve the cores for sessions; there the
/// uplink runs on shard 0's executor (`uplink_host`; docs/BENCHMARKS.md measures the
/// placements).
fn default_shards(cpus: usize, with_uplink: bool) -> usize {
    if with_uplink && cpus >= 3 {
        cpus - 1
    } else {
        cpus
    }
}

/// The shard whose executor runs the uplink, when the uplink's core (`shards % cpus`) is a
/// shard's core anyway: two threads pinned to one core only take turns, and every event that
/// crosses between them costs a wake-up and a context switch.
fn uplink_host(shards: usize, cpus: usize) -> Option<usize> {
    (shards >= cpus).then_some(shards % cpus)
}

/// Binds `addr` without SO_REUSEPORT: fails when anyone listens there.
/// Two listeners on one port (the same address, or one of them on every address) would share
/// its connections through SO_REUSEPORT, half of each client kind landing on the wrong
/// protocol: refused at start-up, naming both keys. Port 0 picks a free port for each.
fn check_distinct(listeners: &[ListenerSpec]) -> Result<(), StartError> {
    for (i, a) in listeners.iter().enumerate() {
        for b in &listeners[i + 1..] {
            let overlap = a.addr.ip() == b.addr.ip()
                || a.addr.ip().is_unspecified()
                || b.addr.ip().is_unspecified();
            if a.addr.port() != 0 && a.addr.port() == b.addr.port() && overlap {
                return Err(StartError::SameAddress {
                    addr: b.addr,
                    first: a.kind.config_key(),
                    second: b.kind.config_key(),
                });
            }
        }
    }
    Ok(())
}

fn plain_bind(addr: SocketAddr, key: &'static str) -> Result<std::net::TcpListener, StartError> {
    std::net::TcpListener::bind(addr).map_err(|source| {
        if source.kind() == std::io::ErrorKind::AddrInUse {
            StartError::InUse { addr }
        } else {
            StartError::Listen(ListenError { addr, key, source })
        }
    })
}

/// Seconds since the Unix epoch (0 on a clock before it).
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::{check_distinct, default_shards, uplink_host, StartError};
    use crate::settings::{ListenerKind, ListenerSpec};

    #[test]
    fn two_listeners_on_one_port_are_refused_naming_both_keys() {
        let spec = |ws: bool, addr: &str| ListenerSpec {
            kind: if ws {
                ListenerKind::Ws(Default::default())
            } else {
                ListenerKind::Tcp(Default::default())
            },
            addr: addr.parse().unwrap(),
            tls: false,
        };
        let clash = |a: &str, b: &str| check_distinct(&[spec(true, a), spec(false, b)]);
        match clash("127.0.0.1:9598", "127.0.0.1:9598") {
            Err(e @ StartError::SameAddress { .. }) => {
                let text = e.to_string();
                assert!(text.contains("interface and tcpip-interface"), "{text}");
            }
            other => panic!("{other:?}"),
        }
        assert!(clash("0.0.0.0:9598", "127.0.0.1:9598").is_err());
        assert!(clash("127.0.0.1:9598", "[::]:9598").is_err());
        assert!(clash("127.0.0.1:8884", "127.0.0.1:9598").is_ok());
        assert!(clash("127.0.0.1:9598", "127.0.0.2:9598").is_ok());
        assert!(clash("127.0.0.1:0", "127.0.0.1:0").is_ok());
    }

    #[test]
    fn an_uplink_gets_its_own_core_from_three_cores_up() {
        assert_eq!(default_shards(1, true), 1);
        assert_eq!(default_shards(2, true), 2);
        assert_eq!(default_shards(3, true), 2);
        assert_eq!(default_shards(16, true), 15);
        assert_eq!(default_shards(16, false), 16);
    }

    #[test]
    fn the_uplink_runs_on_a_shard_only_where_it_would_share_that_shards_core() {
        // 2 cores, 2 shards: the uplink's core 0 is shard 0's.
        assert_eq!(uplink_host(2, 2), Some(0));
        assert_eq!(uplink_host(1, 1), Some(0));
        assert_eq!(uplink_host(3, 2), Some(1));
        // A core of its own: a thread of its own.
        assert_eq!(uplink_host(1, 2), None);
        assert_eq!(uplink_host(15, 16), None);
    }
}
