//! A shard's accept loop for one listener: take a `max-clients` slot, spawn the connection
//! (the handshake runs inside its task, under a deadline, so a slow client never stalls the
//! listener), back off on accept errors.

use crate::conn::ConnStream;
use crate::context::{ClientSlot, ShardCtx, Shared};
use crate::stats::RejectReason;
use glommio::net::{TcpListener, TcpStream};
use glommio::sync::Gate;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tracing::warn;
use vscp_transport::{BusyAnswer, Transport};

/// A listener that could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr} ({key}): {source}")]
pub struct ListenError {
    pub addr: SocketAddr,
    /// The config key that set the address.
    pub key: &'static str,
    #[source]
    pub source: std::io::Error,
}

/// Binds a shard's listener like glommio's `TcpListener::bind` (SO_REUSEPORT, so every shard
/// listens on the same address and the kernel spreads connections) plus SO_REUSEADDR.
/// Accepted sockets inherit the listener's flags, and at shutdown the server closes first, so
/// every session leaves a TIME_WAIT socket on the listen port for a minute. Without
/// SO_REUSEADDR on those, the plain bind that `start` uses to detect another running server
/// fails with "address in use" during that minute: a restart (or a vscpd driver's
/// VSCPClose + VSCPOpen) right after a shutdown with clients connected would not start.
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
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

/// Turns an accepted socket into the stream its connection runs on: the socket itself
/// ([`Plain`]) or TLS over it (`crate::tls_stream::TlsAccept`).
pub trait Accept: 'static {
    type Stream: ConnStream;

    /// `None`: the connection cannot be served (already counted).
    fn wrap(&self, tcp: TcpStream) -> Option<Self::Stream>;
}

/// A plain listener: connections run on the socket as accepted.
#[derive(Debug)]
pub struct Plain;

impl Accept for Plain {
    type Stream = TcpStream;

    fn wrap(&self, tcp: TcpStream) -> Option<TcpStream> {
        Some(tcp)
    }
}

/// Accepts connections for `transport` until cancelled; `accept` makes their streams.
pub async fn accept_loop<T: Transport, A: Accept>(
    listener: TcpListener,
    transport: Rc<T>,
    accept: A,
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
        if let Err(e) = ctx.keepalive.apply(&stream) {
            // The session still works; only a vanished peer is found later (ws pings).
            warn!(shard = ctx.shard, %peer, error = %e, "cannot set TCP keepalive");
        }
        if !take_client_slot(&shared) {
            ctx.hub.stats().reject(RejectReason::MaxClients);
            // Over TLS the answer goes inside TLS, after the handshake: a refused client costs
            // a handshake, as an accepted one does, and still sees why.
            let Some(stream) = accept.wrap(stream) else {
                continue;
            };
            // Dropping a glommio `Task` cancels it: detach, or the 503 is never written.
            if let Ok(task) = gate.spawn(reject_busy(stream, transport.busy_answer())) {
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
        let held = ClientSlot::new(shared.clone(), pass);
        let Some(stream) = accept.wrap(stream) else {
            continue;
        };
        // Spawned directly rather than with `Gate::spawn`, whose wrapper future would hold the
        // connection's future twice (the captured one and the one being awaited) for the
        // session's whole life; the pass in `held` keeps the gate waiting all the same.
        glommio::spawn_local(crate::conn::serve(
            stream,
            peer,
            transport.clone(),
            ctx.clone(),
            conn_id,
            held,
        ))
        .detach();
    }
}

/// Reserves one of `max-clients` slots (0 = unlimited). Exact across shards.
fn take_client_slot(shared: &Shared) -> bool {
    let max = match shared.max_clients.load(Ordering::Relaxed) {
        0 => usize::MAX,
        n => n,
    };
    shared
        .clients
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < max).then_some(n + 1)
        })
        .is_ok()
}

/// Answers a connection over `max-clients` so the client sees why (HTTP 503 for websockets),
/// all within a second.
async fn reject_busy<S: ConnStream>(mut stream: S, answer: BusyAnswer) {
    use futures::{AsyncReadExt, AsyncWriteExt};
    let _ = glommio::timer::timeout(Duration::from_secs(1), async {
        if S::ENCRYPTED {
            // Refusals are rare and brief: a buffer of their own rather than the shard's.
            let mut scratch = vec![0u8; 4096];
            let done = std::future::poll_fn(|cx| stream.poll_established(cx, &mut scratch));
            if done.await.is_err() {
                return Ok(());
            }
        }
        let mut head = [0u8; 4096];
        let mut len = 0;
        while answer.after_request
            && len < head.len()
            && !head[..len].windows(4).any(|w| w == b"\r\n\r\n")
        {
            match stream.read(&mut head[len..]).await {
                Ok(0) | Err(_) => break,
                Ok(n) => len += n,
            }
        }
        let _ = stream.write_all(answer.text).await;
        let _ = stream.flush().await;
        let _ = stream.close().await;
        Ok(())
    })
    .await;
}
