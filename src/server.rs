//! Starting and stopping the sharded server.
//!
//! [`start`] builds the rings between shards, starts one pinned glommio executor per shard and
//! returns once every shard listens. The first shard binds the configured address (port 0 picks
//! one); the others bind the address it got, and the kernel spreads connections across them
//! (SO_REUSEPORT, which glommio always sets).

use crate::config::Config;
use crate::credentials::{new_cache_key, Users};
use crate::http::Readiness;
use crate::hub::RoutedEvent;
use crate::metrics::{Exporter, Limits};
use crate::shard::{self, ShardSetup, Shared};
use crate::stats::{ShardStats, Stats};
use crate::uplink::{self, Uplink, UplinkRings, UplinkStats};
use glommio::channels::shared_channel;
use glommio::{LocalExecutorBuilder, Placement, PoolPlacement};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;
use vscp_proto::session::SessionConfig;
use vscp_proto::{Filter, Guid, UserDb};

/// glommio's registered I/O memory per executor. Kept at 1 MiB so the server also starts
/// without CAP_IPC_LOCK under a small memlock limit (the default 8 MiB holds several shards).
const IO_MEMORY: usize = 1 << 20;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Listen(String),
    #[error("address {addr} is already in use (is another server running on it?)")]
    InUse { addr: SocketAddr },
    #[error("cannot start shard {shard}: {reason}")]
    Executor { shard: usize, reason: String },
}

/// The resolved, immutable settings every shard reads.
#[derive(Debug)]
pub struct Settings {
    pub session: SessionConfig,
    pub url_ws1: Option<String>,
    pub url_ws2: Option<String>,
    pub max_out_queue: usize,
    pub max_in_queue: usize,
    pub max_message_bytes: usize,
    pub receive_sent_events: bool,
    pub in_filter: Filter,
    pub out_filter: Filter,
    pub interface_guid: Guid,
}

impl Settings {
    pub fn from_config(cfg: &Config) -> Settings {
        Settings {
            session: SessionConfig {
                key: cfg.key,
                ws2_accept_client_iv: cfg.ws2_accept_client_iv,
                software_version: env!("CARGO_PKG_VERSION").to_string(),
                copyright:
                    "Copyright (C) the vscp-websocksrv authors, MIT licence, https://www.vscp.org"
                        .into(),
                auth_timeout: cfg.auth_timeout,
                idle_timeout: cfg.idle_timeout,
            },
            url_ws1: cfg.enable_ws1.then(|| cfg.url_ws1.clone()),
            url_ws2: cfg.enable_ws2.then(|| cfg.url_ws2.clone()),
            max_out_queue: cfg.max_out_queue,
            max_in_queue: cfg.max_in_queue,
            max_message_bytes: cfg.max_message_bytes,
            receive_sent_events: cfg.receive_sent_events,
            in_filter: cfg.in_filter,
            out_filter: cfg.out_filter,
            // The configured `guid`, or one derived from the listen address (ws1.md Q9).
            interface_guid: Guid(cfg.interface_guid()),
        }
    }
}

/// A running server.
#[derive(Debug)]
pub struct ServerHandle {
    addr: SocketAddr,
    shared: Arc<Shared>,
    users: Arc<Users>,
    stats: Vec<Arc<ShardStats>>,
    uplink_stats: Arc<UplinkStats>,
    metrics_addr: Option<SocketAddr>,
    threads: Vec<glommio::ExecutorJoinHandle<()>>,
}

impl ServerHandle {
    /// The address the shards listen on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
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

    /// Stops accepting, closes every session with 1001, drains, and joins every shard.
    pub fn shutdown(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
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
    let n = cfg.shards.unwrap_or(cpus).max(1);
    if cfg.listen.port() != 0 {
        // glommio sets SO_REUSEPORT, so a second server on the same port would silently take
        // half the connections. A plain bind (no SO_REUSEPORT) fails if anyone listens there.
        if let Err(e) = std::net::TcpListener::bind(cfg.listen) {
            return Err(if e.kind() == std::io::ErrorKind::AddrInUse {
                StartError::InUse { addr: cfg.listen }
            } else {
                StartError::Listen(format!("cannot listen on {}: {e}", cfg.listen))
            });
        }
    }
    let settings = Arc::new(Settings::from_config(cfg));
    let shared = Arc::new(Shared {
        stop: AtomicBool::new(false),
        clients: AtomicUsize::new(0),
        max_clients: cfg.max_clients,
        next_conn_id: AtomicU32::new(1),
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

    let mut handle = ServerHandle {
        addr: cfg.listen,
        shared: shared.clone(),
        users: users.clone(),
        stats: stats.clone(),
        uplink_stats: Arc::new(UplinkStats::default()),
        metrics_addr: None,
        threads: Vec::new(),
    };
    let readiness = Arc::new(Readiness {
        listening: AtomicBool::new(false),
        uplink: uplink.as_ref().map(|_| handle.uplink_stats.clone()),
    });
    let mut metrics = match cfg.metrics_listen {
        None => None,
        Some(at) => {
            // A plain bind (no SO_REUSEPORT) so a second server on the port is an error, not a
            // silent split of the scrapes.
            let listener = std::net::TcpListener::bind(at).map_err(|e| {
                if e.kind() == std::io::ErrorKind::AddrInUse {
                    StartError::InUse { addr: at }
                } else {
                    StartError::Listen(format!("cannot listen on {at} (metrics-interface): {e}"))
                }
            })?;
            handle.metrics_addr = listener.local_addr().ok();
            let exporter = Arc::new(Exporter::new(
                stats.clone(),
                uplink
                    .as_ref()
                    .map(|u| (u.name(), handle.uplink_stats.clone())),
                Limits {
                    max_clients: cfg.max_clients,
                    max_out_queue: settings.max_out_queue,
                    max_in_queue: settings.max_in_queue,
                    shards: n,
                },
            ));
            Some((listener, exporter, readiness.clone()))
        }
    };
    let mut addr = cfg.listen;
    for (shard, (to_peers, from_peers)) in senders.into_iter().zip(receivers).enumerate() {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let setup = ShardSetup {
            shard,
            listen: addr,
            stats: stats[shard].clone(),
            shared: shared.clone(),
            users: users.clone(),
            cache_key: cache_key.clone(),
            settings: settings.clone(),
            to_peers,
            from_peers,
            shard_rings: n - 1,
            metrics: if shard == 0 { metrics.take() } else { None },
            ready: ready_tx,
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
            Ok(Ok(bound)) => addr = bound,
            Ok(Err(reason)) => return Err(StartError::Listen(reason)),
            Err(_) => {
                return Err(StartError::Executor {
                    shard,
                    reason: "the executor stopped during start-up".into(),
                })
            }
        }
    }
    if let (Some(uplink), Some(rings)) = (uplink, uplink_rings) {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let shared = handle.shared.clone();
        let stats = handle.uplink_stats.clone();
        let thread = LocalExecutorBuilder::new(Placement::Fixed(n % cpus))
            .name("vscp-uplink")
            .io_memory(IO_MEMORY)
            .spawn(move || uplink::run(uplink, rings, shared, stats, ready_tx))
            .map_err(|e| StartError::Executor {
                shard: n,
                reason: format!("uplink: {e}"),
            })?;
        handle.threads.push(thread);
        if ready_rx.recv().is_err() {
            return Err(StartError::Executor {
                shard: n,
                reason: "the uplink executor stopped during start-up".into(),
            });
        }
    }
    handle.addr = addr;
    readiness.listening.store(true, Ordering::Release);
    Ok(handle)
}
