//! One shard: a pinned glommio executor with its own listeners (SO_REUSEPORT), its own
//! sessions, hub and credential cache. Shards share nothing mutable except through the bounded
//! rings.

use crate::context::{ShardCtx, Shared};
use crate::credentials::{Authenticator, Users};
use crate::hub::{Hub, RoutedEvent};
use crate::listener::{self, ListenError};
use crate::settings::{ListenerKind, ListenerSpec, Settings};
use crate::shutdown::ShutdownSignal;
use crate::stats::ShardStats;
use crate::tls::TlsStore;
use crate::tls_stream::TlsAccept;
use futures::StreamExt;
use glommio::channels::shared_channel::{ConnectedReceiver, SharedReceiver, SharedSender};
use glommio::sync::Gate;
use std::future::poll_fn;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;
use tracing::{debug, info, warn};
use vscp_transport::Transport;

/// How long sessions get to finish their close handshakes at shutdown.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// What one shard thread is given at start.
#[allow(missing_debug_implementations)] // holds channel ends and keys
pub struct ShardSetup {
    pub shard: usize,
    /// Where to listen; the first shard may be given port 0, the others the addresses it got.
    pub listeners: Vec<ListenerSpec>,
    pub stats: Arc<ShardStats>,
    pub shared: Arc<Shared>,
    pub users: Arc<Users>,
    pub cache_key: Arc<ring::hmac::Key>,
    pub settings: Arc<Settings>,
    /// The TLS configuration, when a listener uses TLS.
    pub tls: Option<Arc<TlsStore>>,
    /// Rings to every other shard.
    pub to_peers: Vec<SharedSender<Arc<RoutedEvent>>>,
    /// Rings from every other shard.
    pub from_peers: Vec<SharedReceiver<Arc<RoutedEvent>>>,
    /// How many entries of `to_peers`/`from_peers` (the first ones) are rings between shards;
    /// the rest connect to the uplink, whose traffic the uplink counts itself.
    pub shard_rings: usize,
    /// The `/metrics` listener (already bound by the starter) — given to shard 0 only.
    pub metrics: Option<(
        std::net::TcpListener,
        Arc<crate::metrics::Exporter>,
        Arc<crate::http::Readiness>,
    )>,
    pub shutdown: ShutdownSignal,
    /// Completes once the uplink has finished its stop (shard 0 with an uplink only): `/metrics`
    /// and the failing `/readyz` stay up until then, while the uplink publishes what it holds.
    pub uplink_done: Option<ShutdownSignal>,
    /// Reports the bound addresses (in the order of `listeners`), or why binding failed, to
    /// the starter.
    pub ready: std::sync::mpsc::Sender<Result<Vec<SocketAddr>, ListenError>>,
    /// The uplink's body, when it runs on this shard's executor (in a task queue of its own)
    /// rather than on a thread pinned to the same core (see `server::uplink_host`).
    pub uplink: Option<UplinkBody>,
}

/// Builds the uplink's future on the executor that runs it.
pub type UplinkBody = Box<dyn FnOnce() -> futures::future::LocalBoxFuture<'static, ()> + Send>;

/// The body of a shard's executor.
pub async fn run(setup: ShardSetup) {
    let ShardSetup {
        shard,
        listeners,
        stats,
        shared,
        users,
        cache_key,
        settings,
        tls,
        to_peers,
        from_peers,
        shard_rings,
        metrics,
        shutdown,
        uplink_done,
        ready,
        uplink,
    } = setup;
    let mut bound = Vec::new();
    for spec in &listeners {
        let listening = listener::bind(spec.addr).and_then(|l| Ok((l.local_addr()?, l)));
        match listening {
            Ok(pair) => {
                // Logged before the starter hears from us, so it precedes the "ready" line.
                info!(shard, transport = spec.kind.transport_name(), addr = %pair.0, tls = spec.tls, "listening");
                bound.push(pair)
            }
            Err(source) => {
                let _ = ready.send(Err(ListenError {
                    addr: spec.addr,
                    key: spec.kind.config_key(),
                    source,
                }));
                return;
            }
        }
    }
    let hub = Hub::new(
        stats.clone(),
        settings.max_out_queue,
        settings.receive_sent_events,
        shared.filters.clone(),
    );
    let auth = Authenticator::new(users, cache_key, stats.clone());
    let ctx = Rc::new(ShardCtx::new(shard, hub, auth, &settings, shared.clone()));
    // Sends what the sessions cork each turn, until every session has ended.
    let flusher = ctx
        .cork
        .clone()
        .map(|cork| glommio::spawn_local(cork.run()));
    let mut ring_tasks = Vec::new();
    for (i, rx) in from_peers.into_iter().enumerate() {
        let ctx = ctx.clone();
        let counted = i < shard_rings;
        ring_tasks.push(glommio::spawn_local(async move {
            let mut rx = rx.connect().await;
            while let Some(n) = drain_ring(&mut rx, &ctx.hub, ctx.batch_events).await {
                if counted {
                    ShardStats::add(&ctx.hub.stats().ring_received, n);
                }
                // Let the sessions just woken write the batch before the next one.
                glommio::executor().yield_now().await;
            }
        }));
    }
    // Report the addresses before connecting the rings: a sender's connect waits for its
    // receiver, and the other shards only start once this one has bound.
    let _ = ready.send(Ok(bound.iter().map(|(addr, _)| *addr).collect()));
    // Before our senders connect: one of them waits for the uplink's receiver.
    let uplink_task = uplink.map(|body| {
        let queue = glommio::executor().create_task_queue(
            glommio::Shares::default(),
            glommio::Latency::NotImportant,
            "uplink",
        );
        glommio::spawn_local_into(body(), queue).expect("the queue was just created")
    });
    for (i, tx) in to_peers.into_iter().enumerate() {
        ctx.hub.add_peer(tx.connect().await, i < shard_rings);
    }

    let metrics_task = metrics.map(|(listener, exporter, readiness)| {
        use std::os::fd::{FromRawFd, IntoRawFd};
        // SAFETY: the descriptor comes from a listening std socket we own and give up here.
        let listener = unsafe { glommio::net::TcpListener::from_raw_fd(listener.into_raw_fd()) };
        glommio::spawn_local(crate::http::serve(listener, exporter, readiness))
    });
    let gate = Rc::new(Gate::new());
    let mut acceptors = Vec::new();
    for ((addr, tcp), spec) in bound.into_iter().zip(listeners) {
        let (ctx, shared, gate) = (ctx.clone(), shared.clone(), gate.clone());
        // TLS or not is decided here, once: a plain listener's connections run on the socket
        // itself (`Plain`), a TLS listener's on `TlsStream`.
        let tls_accept = match (spec.tls, &tls) {
            (false, _) => None,
            (true, Some(store)) => Some(TlsAccept::new(store.clone(), stats.clone())),
            (true, None) => unreachable!("start() builds the TLS store when a listener uses TLS"),
        };
        let secure = tls_accept.is_some();
        // One arm per transport: each accept loop (and its connections) is compiled for its
        // transport, so the per-message path has no dynamic dispatch.
        let (name, task) = match spec.kind {
            ListenerKind::Ws(ws) => {
                let name = ws.name();
                (
                    name,
                    start_accepting(tcp, ws, tls_accept, ctx, shared, gate),
                )
            }
            ListenerKind::Tcp(link) => {
                let name = link.name();
                (
                    name,
                    start_accepting(tcp, link, tls_accept, ctx, shared, gate),
                )
            }
        };
        debug!(shard, transport = name, %addr, tls = secure, "accepting");
        acceptors.push(task);
    }
    // `ssl_short_trust`: one shard looks at the certificate files, every shard's new
    // connections get what it loads.
    let watcher = tls
        .filter(|t| shard == 0 && t.short_trust())
        .map(|store| glommio::spawn_local(watch_certificates(store)));

    shutdown.recv().await;
    for task in acceptors {
        task.cancel().await;
    }
    if let Some(w) = watcher {
        w.cancel().await;
    }
    // `/metrics` and `/readyz` (failing now) keep answering while the sessions drain.
    ctx.hub.close_all();
    if glommio::timer::timeout(DRAIN_TIMEOUT, async {
        let _ = gate.close().await;
        Ok(())
    })
    .await
    .is_err()
    {
        warn!(
            shard,
            sessions = ctx.hub.session_count(),
            "sessions still open after the drain timeout"
        );
    }
    for t in ring_tasks {
        t.cancel().await;
    }
    if let Some(t) = flusher {
        t.cancel().await;
    }
    // Every session has ended: nothing more goes into the rings.
    ctx.hub.close_peers();
    if let Some(task) = uplink_task {
        // The uplink publishes what it holds within its own limit; this one only keeps a
        // broken uplink from holding the shard.
        let _ = glommio::timer::timeout(crate::uplink::STOP_LIMIT, async {
            task.await;
            Ok(())
        })
        .await;
    }
    if let (true, Some(done)) = (metrics_task.is_some(), uplink_done) {
        // The uplink has its own limit; this one only keeps a broken uplink from holding us.
        let _ = glommio::timer::timeout(crate::uplink::STOP_LIMIT, async {
            done.recv().await;
            Ok(())
        })
        .await;
    }
    if let Some(t) = metrics_task {
        t.cancel().await;
    }
    info!(shard, "stopped");
}

/// Starts the accept loop of one listener, plain or over TLS; both loops (and their
/// connections) are compiled for `T` and their stream type.
fn start_accepting<T: Transport + 'static>(
    tcp: glommio::net::TcpListener,
    transport: T,
    tls: Option<TlsAccept>,
    ctx: Rc<ShardCtx>,
    shared: Arc<Shared>,
    gate: Rc<Gate>,
) -> glommio::Task<()> {
    let transport = Rc::new(transport);
    match tls {
        None => glommio::spawn_local(listener::accept_loop(
            tcp,
            transport,
            listener::Plain,
            ctx,
            shared,
            gate,
        )),
        Some(tls) => glommio::spawn_local(listener::accept_loop(
            tcp, transport, tls, ctx, shared, gate,
        )),
    }
}

/// `ssl_short_trust`: reloads the certificate when its files change, checked every
/// [`crate::tls::store::WATCH_INTERVAL`]. A stat(2) of a few small files blocks this core for
/// microseconds; the rare reload (reading and parsing them) for about a millisecond.
async fn watch_certificates(store: Arc<TlsStore>) {
    loop {
        glommio::timer::sleep(crate::tls::store::WATCH_INTERVAL).await;
        match store.reload_if_changed() {
            None => {}
            Some(Ok(())) => info!("TLS certificate files changed: reloaded for new connections"),
            Some(Err(e)) => {
                tracing::error!(error = %e, "TLS certificate files changed but do not load; keeping the previous certificate")
            }
        }
    }
}

/// Waits for events in `rx` and delivers what is there, up to `batch` of them; how many, or
/// `None` once the ring is closed and empty.
async fn drain_ring(
    rx: &mut ConnectedReceiver<Arc<RoutedEvent>>,
    hub: &Hub,
    batch: usize,
) -> Option<u64> {
    let mut n = 0;
    poll_fn(|cx| loop {
        match rx.poll_next_unpin(cx) {
            Poll::Ready(Some(ev)) => {
                hub.deliver(&ev);
                n += 1;
                if n == batch as u64 {
                    return Poll::Ready(Some(n));
                }
            }
            Poll::Ready(None) => return Poll::Ready((n > 0).then_some(n)),
            Poll::Pending if n > 0 => return Poll::Ready(Some(n)),
            Poll::Pending => return Poll::Pending,
        }
    })
    .await
}
