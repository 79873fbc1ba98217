//! A shard's accept loop for one listener: read a trusted proxy's PROXY header (in a task of its
//! own), count the connection against the abuse limits (`crate::admission`) and take a
//! `max-clients` slot, spawn the connection (the handshake runs inside its task, under a
//! deadline, so a slow client never stalls the listener), back off on accept errors.

use crate::admission::Limit;
use crate::conn::ConnStream;
use crate::context::{ClientSlot, ShardCtx, Shared};
use crate::stats::RejectReason;
use glommio::net::{TcpListener, TcpStream};
use glommio::sync::Gate;
use std::cell::Cell;
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
    let this = Rc::new(Listening {
        transport,
        accept,
        ctx,
        shared,
        gate,
        refusing: Rc::new(Cell::new(0)),
    });
    let mut backoff = Duration::from_millis(5);
    loop {
        let stream = match listener.accept().await {
            Ok(s) => {
                backoff = Duration::from_millis(5);
                s
            }
            Err(e) => {
                // Out of file descriptors or memory: retrying at once would spin; back off.
                warn!(shard = this.ctx.shard, error = %e, "accept failed");
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
        if let Err(e) = this.ctx.keepalive.apply(&stream) {
            // The session still works; only a vanished peer is found later (ws pings).
            warn!(shard = this.ctx.shard, %peer, error = %e, "cannot set TCP keepalive");
        }
        if this.shared.admission.policy().trusts_proxy(peer.ip()) {
            // Its first bytes say who the client is: read them in a task of their own, under
            // the handshake deadline, then go on as with any connection. Not through the gate:
            // a stop need not wait for a header.
            glommio::spawn_local(this.clone().proxied(stream, peer)).detach();
            continue;
        }
        if !this.start(stream, peer) {
            // The gate is closing: we are shutting down.
            return;
        }
    }
}

/// What one listener's connections are started with.
struct Listening<T, A> {
    transport: Rc<T>,
    accept: A,
    ctx: Rc<ShardCtx>,
    shared: Arc<Shared>,
    gate: Rc<Gate>,
    /// Refusals being answered now (each at most a second, [`reject_busy`]).
    refusing: Rc<Cell<usize>>,
}

/// Refusals a listener answers at once on one shard; a flood beyond it is closed unanswered
/// (`vscp_refusals_unanswered_total`) rather than growing the set of answering tasks.
const MAX_REFUSING: usize = 256;

/// One refusal being answered; counted out when its task ends, however it ends.
struct Refusing(Rc<Cell<usize>>);

impl Drop for Refusing {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
    }
}

impl<T: Transport, A: Accept> Listening<T, A> {
    /// Counts a connection from `peer` (the client, after any PROXY header) against the abuse
    /// limits and `max-clients` and spawns it, or answers why not. False once the shard's gate
    /// is closing.
    fn start(&self, stream: TcpStream, peer: SocketAddr) -> bool {
        let shared = &self.shared;
        let admitted = match shared.admission.admit(peer.ip()) {
            Ok(a) => a,
            Err(limit) => {
                // Over TLS the answer would cost a handshake, the very work a connection rate
                // is there to bound: a connection over it is closed at once.
                if limit == Limit::ConnectionRate && A::Stream::ENCRYPTED {
                    return true;
                }
                // The limits about one address say so (HTTP 429); the others are the server's
                // (HTTP 503, like max-clients).
                let answer = match limit.is_per_address() {
                    true => self.transport.refused_answer(),
                    false => self.transport.busy_answer(),
                };
                self.refuse(stream, answer);
                return true;
            }
        };
        if !take_client_slot(shared) {
            shared.admission.release(&admitted);
            self.ctx.hub.stats().reject(RejectReason::MaxClients);
            self.refuse(stream, self.transport.busy_answer());
            return true;
        }
        let Ok(pass) = self.gate.enter() else {
            shared.clients.fetch_sub(1, Ordering::AcqRel);
            shared.admission.release(&admitted);
            return false;
        };
        let conn_id = shared.next_conn_id.fetch_add(1, Ordering::Relaxed);
        let held = ClientSlot::new(shared.clone(), admitted, pass);
        let Some(stream) = self.accept.wrap(stream) else {
            return true;
        };
        // Spawned directly rather than with `Gate::spawn`, whose wrapper future would hold the
        // connection's future twice (the captured one and the one being awaited) for the
        // session's whole life; the pass in `held` keeps the gate waiting all the same.
        glommio::spawn_local(crate::conn::serve(
            stream,
            peer,
            self.transport.clone(),
            self.ctx.clone(),
            conn_id,
            held,
        ))
        .detach();
        true
    }

    /// Answers a connection that is not served (over TLS after its handshake), then closes it.
    fn refuse(&self, stream: TcpStream, answer: BusyAnswer) {
        if self.refusing.get() >= MAX_REFUSING {
            self.shared.admission.unanswered();
            return;
        }
        // Over TLS the answer goes inside TLS, after the handshake: a refused client costs
        // a handshake, as an accepted one does, and still sees why.
        let Some(stream) = self.accept.wrap(stream) else {
            return;
        };
        self.refusing.set(self.refusing.get() + 1);
        let held = Refusing(self.refusing.clone());
        // Dropping a glommio `Task` cancels it: detach, or the answer is never written.
        if let Ok(task) = self.gate.spawn(async move {
            reject_busy(stream, answer).await;
            drop(held);
        }) {
            task.detach();
        }
    }

    /// A connection from a trusted proxy (`proxy-protocol-from`): its PROXY header names the
    /// client, which every limit, `remotes` and the logs then see.
    async fn proxied(self: Rc<Self>, mut stream: TcpStream, proxy: SocketAddr) {
        let admission = &self.shared.admission;
        let within = admission.handshake_timeout();
        match crate::admission::accept::read_header(&mut stream, within).await {
            Ok(client) => {
                admission.proxy_header(proxy, Ok(()));
                self.start(stream, client.unwrap_or(proxy));
            }
            // Dropped without an answer: whatever the bytes were, they were not for us.
            Err(e) => admission.proxy_header(proxy, Err(e)),
        }
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

/// Answers a connection that is not served so the client sees why (HTTP 503 or 429 for
/// websockets), all within a second.
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
