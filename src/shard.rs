//! One shard: a pinned glommio executor with its own listener (SO_REUSEPORT), its own sessions,
//! hub and credential cache. Shards share nothing mutable except through the bounded rings.

use crate::credentials::Authenticator;
use crate::hub::{Hub, RoutedEvent};
use crate::stats::{RejectReason, ShardStats};
use glommio::channels::shared_channel::{SharedReceiver, SharedSender};
use glommio::net::TcpListener;
use glommio::sync::Gate;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tracing::{info, warn};
use vscp_proto::session::SessionConfig;
use vscp_proto::Guid;

/// How often a shard looks at the process-wide stop flag.
const STOP_POLL: Duration = Duration::from_millis(25);
/// How long sessions get to finish their close handshakes at shutdown.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Everything a connection task needs from its shard.
pub struct ShardCtx {
    pub shard: usize,
    pub hub: Hub,
    pub auth: Authenticator,
    pub session_cfg: SessionConfig,
    pub url_ws1: Option<String>,
    pub url_ws2: Option<String>,
    pub max_message_bytes: usize,
    pub interface_guid: Guid,
    /// The shard's receive and send buffers, shared by all its connections.
    pub io: crate::conn::IoBuffers,
    rng: ring::rand::SystemRandom,
}

impl std::fmt::Debug for ShardCtx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardCtx")
            .field("shard", &self.shard)
            .finish()
    }
}

impl ShardCtx {
    /// 16 bytes from the OS CSPRNG for a session challenge.
    pub fn random_sid(&self) -> [u8; 16] {
        use ring::rand::SecureRandom;
        let mut sid = [0u8; 16];
        // Without OS randomness no challenge would be safe; refuse rather than fall back.
        self.rng.fill(&mut sid).expect("OS random number generator");
        sid
    }
}

/// Process-wide state the shards share (all of it touched per connection, never per event).
#[derive(Debug)]
pub struct Shared {
    pub stop: AtomicBool,
    pub clients: AtomicUsize,
    pub max_clients: usize,
    pub next_conn_id: AtomicU32,
}

/// What one shard thread is given at start.
#[allow(missing_debug_implementations)] // holds channel ends and keys
pub struct ShardSetup {
    pub shard: usize,
    pub listen: SocketAddr,
    pub stats: Arc<ShardStats>,
    pub shared: Arc<Shared>,
    pub users: Arc<crate::credentials::Users>,
    pub cache_key: Arc<ring::hmac::Key>,
    pub settings: Arc<crate::server::Settings>,
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
    /// Reports the bound address (or why binding failed) to the starter.
    pub ready: std::sync::mpsc::Sender<Result<SocketAddr, String>>,
}

/// The body of a shard's executor.
pub async fn run(setup: ShardSetup) {
    let ShardSetup {
        shard,
        listen,
        stats,
        shared,
        users,
        cache_key,
        settings,
        to_peers,
        from_peers,
        shard_rings,
        metrics,
        ready,
    } = setup;
    let listener = match bind_listener(listen) {
        Ok(l) => l,
        Err(e) => {
            let _ = ready.send(Err(format!("cannot listen on {listen}: {e}")));
            return;
        }
    };
    let local = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => {
            let _ = ready.send(Err(format!("cannot read the bound address: {e}")));
            return;
        }
    };
    let hub = Hub::new(
        stats.clone(),
        settings.max_out_queue,
        settings.receive_sent_events,
        settings.in_filter,
        settings.out_filter,
    );
    let ctx = Rc::new(ShardCtx {
        shard,
        hub,
        auth: Authenticator::new(users, cache_key, stats.clone()),
        session_cfg: settings.session.clone(),
        url_ws1: settings.url_ws1.clone(),
        url_ws2: settings.url_ws2.clone(),
        max_message_bytes: settings.max_message_bytes,
        interface_guid: settings.interface_guid,
        io: crate::conn::IoBuffers::new(),
        rng: ring::rand::SystemRandom::new(),
    });
    let mut ring_tasks = Vec::new();
    for (i, rx) in from_peers.into_iter().enumerate() {
        let ctx = ctx.clone();
        let counted = i < shard_rings;
        ring_tasks.push(glommio::spawn_local(async move {
            let rx = rx.connect().await;
            while let Some(ev) = rx.recv().await {
                if counted {
                    ShardStats::add(&ctx.hub.stats().ring_received, 1);
                }
                ctx.hub.deliver(&ev);
                // Let the sessions just woken write before the next event (a full ring would
                // otherwise be fanned out in one go and overflow their outboxes).
                glommio::executor().yield_now().await;
            }
        }));
    }
    // Report the address before connecting the rings: a sender's connect waits for its
    // receiver, and the other shards only start once this one has bound.
    let _ = ready.send(Ok(local));
    for (i, tx) in to_peers.into_iter().enumerate() {
        ctx.hub.add_peer(tx.connect().await, i < shard_rings);
    }
    info!(shard, addr = %local, "listening");

    let metrics_task = metrics.map(|(listener, exporter, readiness)| {
        use std::os::fd::{FromRawFd, IntoRawFd};
        // SAFETY: the descriptor comes from a listening std socket we own and give up here.
        let listener = unsafe { TcpListener::from_raw_fd(listener.into_raw_fd()) };
        glommio::spawn_local(crate::http::serve(listener, exporter, readiness))
    });
    let gate = Rc::new(Gate::new());
    let acceptor = glommio::spawn_local(accept_loop(
        listener,
        ctx.clone(),
        shared.clone(),
        gate.clone(),
    ));
    while !shared.stop.load(Ordering::Acquire) {
        glommio::timer::sleep(STOP_POLL).await;
    }
    acceptor.cancel().await;
    if let Some(t) = metrics_task {
        t.cancel().await;
    }
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
    info!(shard, "stopped");
}

/// Binds a shard's listener like glommio's `TcpListener::bind` (SO_REUSEPORT, so every shard
/// listens on the same address and the kernel spreads connections) plus SO_REUSEADDR.
/// Accepted sockets inherit the listener's flags, and at shutdown the server closes first, so
/// every session leaves a TIME_WAIT socket on the listen port for a minute. Without
/// SO_REUSEADDR on those, the plain bind that `start` uses to detect another running server
/// fails with "address in use" during that minute: a restart (or a vscpd driver's
/// VSCPClose + VSCPOpen) right after a shutdown with clients connected would not start.
fn bind_listener(addr: SocketAddr) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    use std::os::fd::{FromRawFd, IntoRawFd};
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    sock.set_reuse_address(true)?;
    sock.set_reuse_port(true)?;
    sock.bind(&addr.into())?;
    // glommio's own backlog.
    sock.listen(1024)?;
    // SAFETY: `into_raw_fd` hands over sole ownership of a bound, listening socket.
    Ok(unsafe { TcpListener::from_raw_fd(sock.into_raw_fd()) })
}

async fn accept_loop(
    listener: TcpListener,
    ctx: Rc<ShardCtx>,
    shared: Arc<Shared>,
    gate: Rc<Gate>,
) {
    let mut backoff = Duration::from_millis(5);
    loop {
        let stream = match listener.accept().await {
            Ok(s) => {
                backoff = Duration::from_millis(5);
                s
            }
            Err(e) => {
                // Out of file descriptors or memory: retrying at once would spin; back off.
                warn!(shard = ctx.shard, error = %e, "accept failed");
                glommio::timer::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        let peer = match stream.peer_addr() {
            Ok(p) => p,
            Err(_) => continue,
        };
        let _ = stream.set_nodelay(true);
        if !take_client_slot(&shared) {
            ctx.hub.stats().reject(RejectReason::MaxClients);
            // Dropping a glommio `Task` cancels it: detach, or the 503 is never written.
            if let Ok(task) = gate.spawn(reject_busy(stream)) {
                task.detach();
            }
            continue;
        }
        let Ok(pass) = gate.enter() else {
            // The gate is closing: we are shutting down.
            shared.clients.fetch_sub(1, Ordering::AcqRel);
            return;
        };
        let conn_id = shared.next_conn_id.fetch_add(1, Ordering::Relaxed);
        let held = ClientSlot {
            shared: shared.clone(),
            _pass: pass,
        };
        // Spawned directly rather than with `Gate::spawn`, whose wrapper future would hold the
        // connection's future twice (the captured one and the one being awaited) for the
        // session's whole life; the pass in `held` keeps the gate waiting all the same.
        glommio::spawn_local(crate::conn::serve(stream, peer, ctx.clone(), conn_id, held)).detach();
    }
}

/// What a connection holds while it lives: one of the `max-clients` slots and a pass through
/// the shard's gate (shutdown waits for every pass). Both are given back when it is dropped,
/// however the connection ends.
#[derive(Debug)]
pub struct ClientSlot {
    shared: Arc<Shared>,
    _pass: glommio::sync::Pass,
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        self.shared.clients.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Reserves one of `max-clients` slots (0 = unlimited). Exact across shards.
fn take_client_slot(shared: &Shared) -> bool {
    let max = if shared.max_clients == 0 {
        usize::MAX
    } else {
        shared.max_clients
    };
    shared
        .clients
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < max).then_some(n + 1)
        })
        .is_ok()
}

/// Answers a connection over `max-clients` with a plain HTTP 503 so the client sees why.
async fn reject_busy(mut stream: glommio::net::TcpStream) {
    use futures::{AsyncReadExt, AsyncWriteExt};
    let _ = glommio::timer::timeout(Duration::from_secs(1), async {
        // Read the request head first: closing a socket with unread input makes the kernel send
        // a reset, and the client would see "connection reset" instead of this answer.
        let mut head = [0u8; 4096];
        let mut len = 0;
        while len < head.len() && !head[..len].windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut head[len..]).await {
                Ok(0) | Err(_) => break,
                Ok(n) => len += n,
            }
        }
        let _ = stream
            .write_all(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 23\r\nConnection: close\r\n\r\ntoo many connections.\r\n")
            .await;
        let _ = stream.close().await;
        Ok(())
    })
    .await;
}
