//! One client connection, whatever its transport: the handshake, then messages between the
//! socket and the sans-IO [`vscp_proto::Session`]. The transport (`vscp_transport::Transport`,
//! e.g. `vscp_ws::WsTransport`) turns bytes into messages and back; this driver owns the
//! socket, the shard's buffers, the hub slot, logins, publishing and the deadlines, so every
//! transport gets them the same way.
//!
//! Idle sessions are what a server holds most of, so what a session keeps while it waits is
//! kept small (about 1.4 KiB each as `loadtest/idle_rss.py` measures it, most of that being
//! glommio's task and the poll it keeps armed on the socket):
//! - input is read into the shard's receive buffer and handled there; a session keeps bytes of
//!   its own only while a unit (frame, line) is incomplete, or while it waits (a login, a full
//!   ring) with more input already read;
//! - output is put together in the shard's send buffer and written at once; a session keeps
//!   bytes only while its socket is full;
//! - the connection's task is its `Conn` plus the small state of what it waits for; steps that
//!   are rare or slow (a login, a full ring or socket, the close) are boxed so that they do not
//!   make every session's future bigger.
//!
//! One task per connection waits, in this order, for: its socket to take output it could not
//! take at once (nothing else happens meanwhile), shutdown or queued events (the hub's slot),
//! input, the login/idle deadline.

use crate::awaiting::{Awaiting, Due};
use crate::context::{ClientSlot, ShardCtx, WRITE_BATCH};
use crate::cork::{Sent, Ticket};
use crate::credentials::LoginFailure;
use crate::hub::{Origin, ReceiveView, Routed, RoutedEvent, Slot, Wake};
use crate::stats::{DropReason, RejectReason, ShardStats};
use futures::{AsyncRead, AsyncWrite};
use glommio::net::TcpStream;
use glommio::timer::Timer;
use std::future::{poll_fn, Future};
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant, SystemTime};
use tracing::{debug, field, Instrument};
use vscp_proto::session::{
    stamp_event, Action, EventRejection, PublishOutcome, QueueAnswer, QueueRequest, State, Timeout,
};
use vscp_proto::{Dialect, Session};
use vscp_transport::confirm::Confirm;
use vscp_transport::{
    Close, Decoded, Framing, Handshake, HandshakeLimits, Incoming, Transport, WireError,
};

/// How long we wait for the client's half of a closing handshake or a stalled write at close.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
/// A batch stops growing past this many bytes: what a client that reads slowly leaves in its
/// session's `output` stays small.
const WRITE_BATCH_BYTES: usize = 8 * 1024;

/// The byte stream under a connection: the accepted socket itself, or TLS over it
/// (`crate::tls_stream::TlsStream`). The driver is compiled per stream type, so for a plain socket
/// these defaults are constants and cost nothing.
pub trait ConnStream: AsyncRead + AsyncWrite + Unpin + 'static {
    /// The stream has a handshake of its own and an end to send (TLS).
    const ENCRYPTED: bool = false;

    /// Drives the stream's own handshake to its end; `scratch` may be read into.
    fn poll_established(
        &mut self,
        _cx: &mut Context<'_>,
        _scratch: &mut [u8],
    ) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// Output that `poll_write` took but the socket has not (TLS records); `poll_flush`
    /// writes it.
    fn has_pending_output(&self) -> bool {
        false
    }

    /// Queues the stream's own end (TLS close_notify) for the next flush.
    fn queue_close(&mut self) {}

    /// The socket, when bytes written to it go out as they are: such a stream's outbox
    /// batches join the shard's corked sends (`crate::cork`).
    fn plain_fd(&self) -> Option<RawFd> {
        None
    }
}

impl ConnStream for TcpStream {
    fn plain_fd(&self) -> Option<RawFd> {
        Some(self.as_raw_fd())
    }
}

/// Serves one accepted connection with `transport`: its handshake, then the session.
/// `held` (a client slot and the shard gate's pass) is given back when it ends.
///
/// The returned future is the connection plus the state of what it is waiting for, and nothing
/// else: the connection is built here and captured by the `async` block, which borrows it in
/// place. (An `async fn` would keep its arguments for the whole session next to the connection
/// they were moved into, and a wrapper future around this one would hold it twice.) Its
/// tracing span carries the shard, connection id, peer, transport, and once known the dialect
/// and user, so log lines inside it repeat none of them.
pub fn serve<T: Transport, S: ConnStream>(
    stream: S,
    peer: SocketAddr,
    transport: Rc<T>,
    ctx: Rc<ShardCtx>,
    conn_id: u32,
    held: ClientSlot,
) -> impl Future<Output = ()> {
    // A debug span: at the default level it is disabled, costs no allocation and records
    // nothing; with debug logging on, every line of the connection carries its fields.
    let span = tracing::debug_span!(
        "conn",
        shard = ctx.shard,
        conn = conn_id,
        %peer,
        transport = transport.name(),
        dialect = field::Empty,
        user = field::Empty,
    );
    let mut conn = Conn {
        slot: ctx.hub.register(conn_id),
        stream,
        // Replaced once the handshake chose the dialect; no message is handled before that.
        session: Session::new(Dialect::Ws1, [0; 16], Instant::now()),
        framing: T::Framing::default(),
        input: Vec::new(),
        input_at: 0,
        output: Vec::new(),
        awaiting: None,
        corked: None,
        cork_spent: false,
        peer,
        conn_id,
        ctx,
        held,
    };
    async move {
        match conn.handshake(&*transport).await {
            Some(dialect) => {
                conn.open(dialect);
                let end = conn.run().await;
                conn.closed(end);
            }
            None => conn.ctx.hub.stats().reject(RejectReason::Handshake),
        }
        if S::ENCRYPTED {
            // TLS close_notify, so the client reads a clean end rather than a truncation.
            conn.stream.queue_close();
            Box::pin(conn.flush_within(CLOSE_TIMEOUT)).await;
        }
        conn.ctx.hub.unregister(&conn.slot);
        // `conn.held` (the client slot, the admission) is given back as `conn` drops.
    }
    .instrument(span)
}

/// Why a session ended (for the debug log line).
#[derive(Debug, thiserror::Error)]
enum End {
    #[error("closed by the client")]
    PeerClosed,
    #[error("server shutting down")]
    Shutdown,
    #[error("no login within auth-timeout")]
    LoginTimeout,
    #[error("idle-timeout")]
    IdleTimeout,
    #[error("no answer to a ping within ws-pong-timeout")]
    NoPong,
    #[error("ended by the session (quit, failed login)")]
    Ended,
    #[error(transparent)]
    Failed(WireError),
    #[error("socket: {0}")]
    Io(#[from] io::Error),
}

struct Conn<F, S> {
    ctx: Rc<ShardCtx>,
    slot: Rc<Slot>,
    stream: S,
    session: Session,
    framing: F,
    /// Input read but not handled yet: an incomplete unit, or units after one whose handling
    /// had to wait. Unallocated otherwise.
    input: Vec<u8>,
    /// Where the unhandled part of `input` starts.
    input_at: usize,
    /// Output the socket has not taken yet. Unallocated otherwise.
    output: Vec<u8>,
    /// Replies waiting for the uplink to confirm an event (`ack-from-broker`), and those
    /// queued behind them; boxed and only made when first needed.
    awaiting: Option<Box<Awaiting>>,
    /// The outbox batch queued in the shard's cork, if any; made with the first one.
    corked: Option<Box<Corked>>,
    /// This wake's first batch went through the cork: the rest of the outbox (a burst, or
    /// more than a batch of large events) is written directly, as fast as the socket takes it,
    /// instead of one batch per turn. Cleared when the outbox is empty.
    cork_spent: bool,
    peer: SocketAddr,
    conn_id: u32,
    /// The client slot, the connection's place in the abuse limits, the gate pass.
    held: ClientSlot,
}

/// What the connection has to do next.
enum Step {
    Wake(Wake),
    Deadline,
    /// An AUTH to check (a password check on the blocking pool, maybe).
    Login(Box<vscp_proto::auth::Credentials>),
    /// An event the ring with this index had no room for: finish routing it (waiting for
    /// room), then reply.
    Publish(Arc<RoutedEvent>, usize),
    /// Events were routed: let the sessions they woke write before more input is read.
    Yield,
    /// Output waits in `output` for the socket (handled inside `poll_step`).
    Blocked,
    /// The shard closes while output waits for a client that does not read: give up at once.
    Abandon,
    /// The client closed; the transport's answer is written or in `output`.
    PeerClosed,
    /// The client broke the transport's protocol or a limit.
    Failed(WireError),
    /// The session ended the connection (tcp/ip `quit`, a failed login); its reply is written
    /// or in `output`.
    Ended,
    /// The socket failed.
    Error(io::Error),
}

/// How input is handled: served, or (after our close) skipped until the client's close.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Serve,
    Drain,
}

/// The outcome of an immediate write.
enum Wrote {
    All,
    /// The rest is in `output`.
    Queued,
    Failed(io::Error),
}

impl Wrote {
    fn step(self) -> Option<Step> {
        match self {
            Wrote::All => None,
            Wrote::Queued => Some(Step::Blocked),
            Wrote::Failed(e) => Some(Step::Error(e)),
        }
    }
}

/// The outcome of writing an outbox batch.
enum Batch {
    Written,
    /// Queued in the shard's cork (`Conn::corked` has the events); the outcome follows in
    /// the same turn.
    Corked,
    /// Part of it waits in `output`: the events (for the delivery statistics) and their bytes.
    Queued(Vec<Arc<RoutedEvent>>, u64),
    Failed(io::Error),
}

impl<F: Framing, S: ConnStream> Conn<F, S> {
    /// The handshake chose `dialect`: the session starts.
    fn open(&mut self, dialect: Dialect) {
        tracing::Span::current().record("dialect", dialect.as_str());
        debug!("session open");
        self.session = Session::new(dialect, self.ctx.random_sid(), Instant::now());
        self.session
            .set_channel(self.conn_id, self.ctx.interface_guid);
        let stats = self.ctx.hub.stats();
        ShardStats::gauge_add(&stats.sessions_active, 1);
        ShardStats::add(&stats.sessions_accepted, 1);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.ctx
            .shared
            .registry
            .add(self.conn_id, dialect, self.peer, now);
    }

    fn closed(&self, end: End) {
        self.ctx.shared.registry.remove(self.conn_id);
        ShardStats::gauge_add(&self.ctx.hub.stats().sessions_active, -1);
        debug!(reason = %end, "session closed");
    }

    /// The transport's handshake: the dialect, or `None` when the connection is to be dropped
    /// (after the refusal is sent, if there is one).
    async fn handshake<T: Transport<Framing = F>>(&mut self, transport: &T) -> Option<Dialect> {
        // `handshake-timeout`: also what a silent or half-open TCP connection holds a slot.
        let mut timer = Timer::new(self.ctx.shared.admission.handshake_timeout());
        let mut limits = HandshakeLimits::default();
        let mut verdict = None;
        let mut established = !S::ENCRYPTED;
        poll_fn(|cx| {
            if Pin::new(&mut timer).poll(cx).is_ready() {
                return Poll::Ready(None);
            }
            if !established {
                // The TLS handshake, under the same deadline as the transport's.
                let ctx = self.ctx.clone();
                let mut rx = ctx.io.rx.borrow_mut();
                if ready!(self.stream.poll_established(cx, &mut rx)).is_err() {
                    return Poll::Ready(None);
                }
                established = true;
            }
            if verdict.is_none() {
                verdict = Some(ready!(self.poll_handshake(cx, transport, &mut limits)));
            }
            // The answer, if the socket did not take it at once.
            match ready!(self.poll_flush(cx)) {
                Ok(()) => Poll::Ready(verdict.flatten()),
                Err(_) => Poll::Ready(None),
            }
        })
        .await
    }

    /// Reads until the transport has decided, then writes its answer (or queues it in
    /// `output`). A transport without a handshake decides on no input at all.
    fn poll_handshake<T: Transport<Framing = F>>(
        &mut self,
        cx: &mut Context<'_>,
        transport: &T,
        limits: &mut HandshakeLimits,
    ) -> Poll<Option<Dialect>> {
        let ctx = self.ctx.clone();
        let mut tx = ctx.io.tx.borrow_mut();
        tx.clear();
        let mut verdict = transport.handshake(&self.input, &mut tx);
        while let Handshake::Incomplete = verdict {
            let mut rx = ctx.io.rx.borrow_mut();
            let n = match Pin::new(&mut self.stream).poll_read(cx, &mut rx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => return Poll::Ready(None),
                Poll::Ready(Ok(n)) => n,
            };
            if !limits.allow(n) {
                return Poll::Ready(None);
            }
            tx.clear();
            // Nearly always the whole request comes in one read and is looked at where it is.
            verdict = if self.input.is_empty() {
                transport.handshake(&rx[..n], &mut tx)
            } else {
                self.input.extend_from_slice(&rx[..n]);
                transport.handshake(&self.input, &mut tx)
            };
            if let Handshake::Incomplete = verdict {
                if self.input.is_empty() {
                    self.input.extend_from_slice(&rx[..n]);
                }
            }
        }
        self.input = Vec::new();
        if !tx.is_empty() {
            if let Wrote::Failed(_) =
                write_now(&mut self.stream, &mut self.output, cx, &tx, ctx.hub.stats())
            {
                return Poll::Ready(None);
            }
        }
        Poll::Ready(match verdict {
            Handshake::Accept { dialect, framing } => {
                self.framing = framing;
                Some(dialect)
            }
            Handshake::Incomplete | Handshake::Refuse => None,
        })
    }

    async fn run(&mut self) -> End {
        let greeting = self.session.greeting(&self.ctx.session_cfg);
        if let Wrote::Failed(e) = poll_fn(|cx| Poll::Ready(self.write_text(cx, &greeting))).await {
            return End::Io(e);
        }
        drop(greeting);
        let mut timer: Option<(Instant, Timer)> = None;
        loop {
            // Steps that are frequent complete without allocating; what they keep across an
            // await is part of every session's future, so it is kept small. Rare or slow ones
            // are boxed.
            let step = poll_fn(|cx| self.poll_step(cx, &mut timer)).await;
            let reply = match step {
                Step::Wake(Wake::Closing) => {
                    self.close(Close::Shutdown).await;
                    return End::Shutdown;
                }
                Step::Abandon => return End::Shutdown,
                Step::Wake(Wake::Outbox) => {
                    match poll_fn(|cx| Poll::Ready(self.write_batch(cx))).await {
                        Batch::Written => {}
                        Batch::Corked => {
                            if let Err(end) = self.finish_corked().await {
                                return end;
                            }
                        }
                        // Only for a client that reads slower than its events come.
                        Batch::Queued(events, bytes) => {
                            if let Err(end) = Box::pin(self.finish_batch(events, bytes)).await {
                                return end;
                            }
                        }
                        Batch::Failed(e) => {
                            Box::pin(self.publish_what_was_read()).await;
                            return End::Io(e);
                        }
                    }
                    continue;
                }
                Step::Deadline => {
                    match self
                        .session
                        .handle_timeout(Instant::now(), &self.ctx.session_cfg)
                    {
                        Some(Timeout::Login) => {
                            self.ctx.hub.stats().reject(RejectReason::AuthDeadline);
                            self.close(Close::LoginTimeout).await;
                            return End::LoginTimeout;
                        }
                        Some(Timeout::Idle) => {
                            self.close(Close::IdleTimeout).await;
                            return End::IdleTimeout;
                        }
                        Some(Timeout::NoPong) => {
                            ShardStats::add(&self.ctx.hub.stats().dead_peers, 1);
                            self.close(Close::PongTimeout).await;
                            return End::NoPong;
                        }
                        Some(Timeout::Ping) => {
                            timer = None;
                            if let Wrote::Failed(e) =
                                poll_fn(|cx| Poll::Ready(self.write_ping(cx))).await
                            {
                                return End::Io(e);
                            }
                            continue;
                        }
                        // tcp/ip receive loop: a keepalive line, and the session goes on.
                        Some(Timeout::Keepalive) => {
                            timer = None;
                            self.session.keepalive()
                        }
                        // Nothing due after all (activity moved the deadline): set it again.
                        None => {
                            timer = None;
                            continue;
                        }
                    }
                }
                Step::Login(creds) => {
                    let reply = Box::pin(self.login(*creds)).await;
                    self.sync_view();
                    reply
                }
                Step::Publish(ev, ring) => {
                    let ctx = self.ctx.clone();
                    let confirm = ev.confirm.clone();
                    Box::pin(ctx.hub.publish_blocked(ev, ring)).await;
                    if let Some(c) = confirm {
                        self.await_confirm(c, Instant::now());
                        continue;
                    }
                    self.session.event_reply(PublishOutcome::Accepted)
                }
                Step::Yield => {
                    glommio::executor().yield_now().await;
                    continue;
                }
                Step::PeerClosed => {
                    // Send the answer to the client's close, or it sees an abnormal closure
                    // (1006) instead of a completed close handshake.
                    if !self.output.is_empty() {
                        Box::pin(self.flush_within(CLOSE_TIMEOUT)).await;
                    }
                    return End::PeerClosed;
                }
                Step::Failed(e) => {
                    if e == WireError::TooBig {
                        self.ctx.hub.stats().drop_event(DropReason::Oversized, 1);
                    }
                    self.close(Close::Failed(e)).await;
                    return End::Failed(e);
                }
                Step::Ended => {
                    // The last reply (tcp/ip `+OK - Connection closed by client.`) is written,
                    // in `output`, or behind events that wait for the uplink; the session says
                    // nothing more.
                    Box::pin(self.finish_awaiting()).await;
                    Box::pin(self.flush_within(CLOSE_TIMEOUT)).await;
                    return End::Ended;
                }
                Step::Blocked => continue,
                Step::Error(e) => {
                    Box::pin(self.publish_what_was_read()).await;
                    return End::Io(e);
                }
            };
            if let Some(a) = self.awaiting.as_mut().filter(|a| !a.is_empty()) {
                // Behind an event that waits for the uplink.
                a.push_reply(reply);
                continue;
            }
            // Written now, or left in `output` for the next step to finish.
            if let Wrote::Failed(e) = poll_fn(|cx| Poll::Ready(self.write_text(cx, &reply))).await {
                Box::pin(self.publish_what_was_read()).await;
                return End::Io(e);
            }
            if self.session.is_ended() {
                // A failed tcp/ip login: the reply, then the connection ends (tcp.md §2.2).
                Box::pin(self.flush_within(CLOSE_TIMEOUT)).await;
                return End::Ended;
            }
        }
    }

    /// Waits for the next thing to do: output the socket has not taken yet first (nothing else
    /// happens meanwhile, as a blocked write always made the session wait), then shutdown or
    /// queued events, input, the deadline.
    fn poll_step(
        &mut self,
        cx: &mut Context<'_>,
        timer: &mut Option<(Instant, Timer)>,
    ) -> Poll<Step> {
        loop {
            if !self.output.is_empty() || self.stream.has_pending_output() {
                if self.slot.poll_closed(cx).is_ready() {
                    return Poll::Ready(Step::Abandon);
                }
                match self.poll_flush(cx) {
                    Poll::Ready(Ok(())) => {}
                    Poll::Ready(Err(e)) => return Poll::Ready(Step::Error(e)),
                    // The session's deadlines still run: a peer that vanished while its
                    // socket was full is found by the pong deadline, not only after the
                    // kernel's retransmissions give up (some 15 minutes).
                    Poll::Pending => {
                        let due = self.session.poll_timeout_blocked(&self.ctx.session_cfg);
                        return poll_deadline(cx, timer, due);
                    }
                }
            }
            match self.slot.poll_wait(cx) {
                Poll::Ready(w) => return Poll::Ready(Step::Wake(w)),
                Poll::Pending => self.cork_spent = false,
            }
            match self.poll_awaiting(cx) {
                Some(Step::Blocked) => continue,
                Some(step) => return Poll::Ready(step),
                None => {}
            }
            if self.awaiting.as_ref().is_some_and(|a| a.is_full()) {
                // The client has as many events unconfirmed as it may: it is not read.
                break;
            }
            match self.poll_input(cx, Mode::Serve) {
                Poll::Ready(Step::Blocked) => continue,
                Poll::Ready(step) => return Poll::Ready(step),
                Poll::Pending => break,
            }
        }
        let confirm_due = self.awaiting.as_ref().and_then(|a| a.deadline());
        let session_due = self.session.poll_timeout(&self.ctx.session_cfg);
        let due = match (session_due, confirm_due) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        poll_deadline(cx, timer, due)
    }

    /// The peer is gone (a reply could not be written), but events it sent before it went
    /// are already in our buffer: a device that sends and drops the connection without reading
    /// the acks (its kernel then resets) must not lose them. Whole messages left in the input
    /// are handled for their events only; replies and everything else are dropped with the
    /// peer (refused events are counted as usual).
    async fn publish_what_was_read(&mut self) {
        let max = self.ctx.max_message_bytes;
        let mut input = std::mem::take(&mut self.input);
        let mut at = self.input_at;
        // Whatever the transport would answer (pongs) goes nowhere.
        let mut discarded = Vec::new();
        while at < input.len() {
            let Ok(Decoded::Unit { used, msg }) =
                self.framing.decode(&mut input[at..], max, &mut discarded)
            else {
                break;
            };
            at += used;
            discarded.clear();
            let Some(Incoming::Message(mut text)) = msg else {
                continue;
            };
            let now = Clock::now();
            let action = self
                .session
                .handle_message(&mut text, &self.ctx.session_cfg, now.instant);
            self.count_rejection();
            if let Action::Publish(ev) = action {
                // Nobody is left to tell whether the broker has it.
                let ev = self.route(ev, &now, None);
                self.ctx.hub.stats().received(self.session.dialect(), 1);
                let hub = &self.ctx.hub;
                if let Routed::Blocked(ring) = hub.publish(&ev) {
                    hub.publish_blocked(ev, ring).await;
                }
            }
        }
    }

    /// Handles input until something needs an await (a login, an event to route, a full
    /// socket, queued events, the end); pending when the socket has nothing more.
    fn poll_input(&mut self, cx: &mut Context<'_>, mode: Mode) -> Poll<Step> {
        loop {
            if self.input_at < self.input.len() {
                let mut input = std::mem::take(&mut self.input);
                let (used, step) = self.handle_units(cx, &mut input[self.input_at..], mode);
                self.input = input;
                self.input_at += used;
                if self.input_at == self.input.len() {
                    // All handled: give the memory back.
                    self.input = Vec::new();
                    self.input_at = 0;
                }
                if let Some(step) = step {
                    return Poll::Ready(step);
                }
            }
            let ctx = self.ctx.clone();
            let mut rx = ctx.io.rx.borrow_mut();
            let n = match Pin::new(&mut self.stream).poll_read(cx, &mut rx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Step::Failed(WireError::Protocol(
                        "connection closed without a close frame",
                    )))
                }
                Poll::Ready(Ok(n)) => n,
                Poll::Ready(Err(e)) => return Poll::Ready(Step::Error(e)),
            };
            if self.input.is_empty() {
                // The usual case: handled where it was read; only what is left is kept.
                let (used, step) = self.handle_units(cx, &mut rx[..n], mode);
                if used < n {
                    self.input.extend_from_slice(&rx[used..n]);
                    self.input_at = 0;
                }
                if let Some(step) = step {
                    return Poll::Ready(step);
                }
            } else {
                // The rest of a unit begun earlier: gather it with its start.
                self.input.drain(..self.input_at);
                self.input_at = 0;
                self.input.extend_from_slice(&rx[..n]);
            }
        }
    }

    /// Handles the whole units at the front of `buf` as one batch; returns how many bytes it
    /// used and what made it stop, if anything but the end of the units did.
    ///
    /// Batching is what makes this server cheap per event (docs/architecture.md): every reply
    /// of the batch, and whatever the transport answers by itself, goes out in one write at
    /// the end; events are routed as they come without waiting, so the sessions they wake find
    /// the whole batch queued when they run and write it with one write each. After a batch
    /// that routed events the task yields ([`Step::Yield`]) before it reads again: a flooding
    /// client gets one read per turn, and its receivers write in between. No other task runs
    /// while a batch is handled, so shutdown and queued events are looked at once, before it.
    fn handle_units(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
        mode: Mode,
    ) -> (usize, Option<Step>) {
        if mode == Mode::Serve {
            if let Some(w) = self.slot.ready() {
                return (0, Some(Step::Wake(w)));
            }
        }
        let ctx = self.ctx.clone();
        let mut out = ctx.io.tx.borrow_mut();
        out.clear();
        let mut tally = Tally::default();
        // One clock read for the batch: its units came in the same read.
        let now = Clock::now();
        let mut used = 0;
        let mut step = None;
        while used < buf.len()
            && step.is_none()
            && tally.events < ctx.batch_events as u64
            && !self.awaiting.as_ref().is_some_and(|a| a.is_full())
        {
            let msg = match self
                .framing
                .decode(&mut buf[used..], ctx.max_message_bytes, &mut out)
            {
                Err(e) => {
                    step = Some(Step::Failed(e));
                    break;
                }
                Ok(Decoded::Incomplete) => break,
                Ok(Decoded::Unit { used: n, msg }) => {
                    used += n;
                    msg
                }
            };
            step = match (mode, msg) {
                (_, Some(Incoming::Close)) => Some(Step::PeerClosed),
                (Mode::Drain, _) => None,
                (Mode::Serve, Some(Incoming::Message(mut text))) => {
                    self.on_message(&mut out, &mut text, &now, &mut tally)
                }
                (Mode::Serve, Some(Incoming::Pong)) => {
                    // Alive, but not active: a browser answers pings by itself.
                    self.session.handle_pong(now.instant);
                    None
                }
                (Mode::Serve, None) => {
                    // Pings and the like count as activity for the idle deadline too.
                    self.session.handle_activity(now.instant);
                    None
                }
            };
        }
        if mode == Mode::Drain {
            // After our close only the client's close matters; nothing is answered.
            out.clear();
        }
        tally.count(ctx.hub.stats(), self.session.dialect());
        let wrote = match out.is_empty() {
            true => Wrote::All,
            false => write_now(
                &mut self.stream,
                &mut self.output,
                cx,
                &out,
                ctx.hub.stats(),
            ),
        };
        let step = match wrote {
            Wrote::Failed(e) => Some(Step::Error(e)),
            wrote => step
                .or(wrote.step())
                .or((tally.events > 0).then_some(Step::Yield)),
        };
        (used, step)
    }

    /// One message through the session: its reply is appended to `out`, an event is routed at
    /// once. Returns the step to take when the message needs an await (a login, a full ring)
    /// or ended the session (tcp/ip `quit`, a failed `pass`).
    fn on_message(
        &mut self,
        out: &mut Vec<u8>,
        text: &mut [u8],
        now: &Clock,
        tally: &mut Tally,
    ) -> Option<Step> {
        tally.bytes_in += text.len() as u64;
        // ws2 is parsed in place: the message is in a buffer of ours, unmasked, so no copy.
        let action = self
            .session
            .handle_message(text, &self.ctx.session_cfg, now.instant);
        self.count_rejection();
        let step = self.on_action(action, out, now, tally);
        if step.is_none() && self.session.is_ended() {
            return Some(Step::Ended);
        }
        step
    }

    /// What the session asked for after a message: its reply goes to `out` (or waits behind
    /// an unconfirmed event), an event is routed.
    fn on_action(
        &mut self,
        action: Action,
        out: &mut Vec<u8>,
        now: &Clock,
        tally: &mut Tally,
    ) -> Option<Step> {
        let reply = match action {
            Action::None => return None,
            Action::Reply(r) | Action::Opened(r) => r,
            Action::ClearQueue(r) => {
                self.ctx.hub.clear_queue(&self.slot);
                r
            }
            Action::Queue(req) => self.answer_queue(req),
            Action::Challenge => self.session.finish_challenge(self.ctx.random_sid()),
            Action::ListClients => {
                let mut list = self.ctx.shared.registry.lines(&self.ctx.interface_guid);
                list.push_str(vscp_proto::tcp::replies::SUCCESS);
                list
            }
            Action::Echo(echo, then) => {
                // tcp/ip `+`: the repeated command's line, then whatever it does.
                self.push_reply(out, tally, echo);
                return self.on_action(*then, out, now, tally);
            }
            Action::Authenticate(creds) => return Some(Step::Login(Box::new(creds))),
            Action::Publish(ev) => {
                let confirm = self.ctx.confirm_timeout.map(|_| Confirm::new());
                let ev = self.route(ev, now, confirm.clone());
                tally.events += 1;
                match (self.ctx.hub.publish(&ev), confirm) {
                    (Routed::Blocked(ring), _) => return Some(Step::Publish(ev, ring)),
                    (Routed::Done, Some(c)) => {
                        self.await_confirm(c, now.instant);
                        return None;
                    }
                    // Filtered before the uplink, or nothing to wait for.
                    (Routed::Done | Routed::Filtered, _) => {
                        self.session.event_reply(PublishOutcome::Accepted)
                    }
                }
            }
        };
        self.sync_view();
        self.push_reply(out, tally, reply);
        None
    }

    /// Appends a reply to the batch's output, or queues it behind an event that waits for the
    /// uplink, so replies keep their order.
    fn push_reply(&mut self, out: &mut Vec<u8>, tally: &mut Tally, reply: String) {
        match self.awaiting.as_mut().filter(|a| !a.is_empty()) {
            Some(a) => a.push_reply(reply),
            None => tally.reply(&self.framing, out, &reply),
        }
    }

    /// A tcp/ip queue command: the session's outbox (kept by the hub) is its queue. `retr`
    /// takes events out of it the way the receive loop would write them.
    fn answer_queue(&mut self, req: QueueRequest) -> String {
        // A parked session's events wait in the shard's backlog until it asks.
        self.ctx.hub.catch_up(&self.slot);
        let mut answer = QueueAnswer {
            dropped: self.slot.dropped(),
            ..Default::default()
        };
        if let QueueRequest::Take(n) = req {
            let dialect = self.session.dialect();
            let mut taken = Vec::new();
            while taken.len() < n {
                let Some(ev) = self.slot.pop() else { break };
                // The same text the receive loop writes, encoded once for the whole server.
                answer
                    .lines
                    .push_str(&String::from_utf8_lossy(&ev.encoded(dialect)));
                answer.lines.push_str(vscp_proto::tcp::CRLF);
                answer.taken_data_bytes += ev.event.data.len() as u64;
                taken.push(ev);
            }
            answer.taken = taken.len();
            self.ctx.hub.taken(taken.len());
            // The reply's bytes are counted as a reply; here only the deliveries.
            delivered(self.ctx.hub.stats(), dialect, &taken, 0);
        }
        answer.queued = self.slot.queued();
        self.session.finish_queue(req, answer)
    }

    /// The reply to an event waits until the uplink confirms it, at most `confirm_timeout`.
    fn await_confirm(&mut self, confirm: Confirm, now: Instant) {
        let timeout = self.ctx.confirm_timeout.unwrap_or_default();
        self.awaiting
            .get_or_insert_with(Default::default)
            .push_event(confirm, now + timeout);
    }

    /// Writes the waiting replies that are due, in order; registers for the oldest one still
    /// waiting. `None` when there was nothing to write or it went out at once.
    fn poll_awaiting(&mut self, cx: &mut Context<'_>) -> Option<Step> {
        let awaiting = self.awaiting.as_deref_mut().filter(|a| !a.is_empty())?;
        let now = Instant::now();
        let ctx = self.ctx.clone();
        let stats = ctx.hub.stats();
        let mut tx = ctx.io.tx.borrow_mut();
        tx.clear();
        let mut bytes = 0;
        loop {
            while let Some(due) = awaiting.next_due(now) {
                let text = match due {
                    Due::Reply(text) => text,
                    Due::Event(true) => self.session.event_reply(PublishOutcome::Accepted),
                    Due::Event(false) => {
                        ShardStats::add(&stats.unconfirmed, 1);
                        self.session.event_reply(PublishOutcome::NotConfirmed)
                    }
                };
                bytes += text.len() as u64;
                self.framing.encode(&mut tx, text.as_bytes());
            }
            if awaiting.is_empty() || awaiting.poll_front(cx).is_pending() {
                break;
            }
        }
        if tx.is_empty() {
            return None;
        }
        ShardStats::add(&stats.bytes_out, bytes);
        write_now(&mut self.stream, &mut self.output, cx, &tx, stats).step()
    }

    /// Writes every reply still waiting for the uplink, each when its event is confirmed or
    /// its deadline passes: a session that ends (tcp/ip `send` then `quit`) still answers
    /// every command it took, in order.
    async fn finish_awaiting(&mut self) {
        while let Some(deadline) = self
            .awaiting
            .as_ref()
            .filter(|a| !a.is_empty())
            .and_then(|a| a.deadline())
        {
            let mut timer = Timer::new(deadline.saturating_duration_since(Instant::now()));
            let go_on = poll_fn(|cx| {
                if let Some(Step::Error(_)) = self.poll_awaiting(cx) {
                    return Poll::Ready(false);
                }
                let empty = self.awaiting.as_ref().is_none_or(|a| a.is_empty());
                // At the deadline the next turn writes the front as not confirmed.
                if empty || Pin::new(&mut timer).poll(cx).is_ready() {
                    return Poll::Ready(!empty);
                }
                Poll::Pending
            })
            .await;
            if !go_on {
                return;
            }
        }
    }

    /// Counts the event the session refused last, if it did.
    fn count_rejection(&mut self) {
        if let Some(why) = self.session.take_rejection() {
            let reason = match why {
                EventRejection::Rights => DropReason::Rights,
                EventRejection::Malformed => DropReason::Malformed,
            };
            self.ctx.hub.stats().drop_event(reason, 1);
        }
    }

    async fn login(&mut self, creds: vscp_proto::auth::Credentials) -> String {
        let stats = self.ctx.hub.stats();
        let admission = &self.ctx.shared.admission;
        let started = Instant::now();
        let verdict = if creds.user.is_empty() {
            Err(LoginFailure::Credentials)
        } else {
            // The address's failed-login budget comes before any password work; refused
            // (`Throttled`), the client gets the answer of a wrong password (tcp.md §2.2 REC).
            let budget = admission.budget(&self.held.admitted);
            self.ctx.auth.login(creds, self.peer.ip(), &budget).await
        };
        stats.login_time.observe(started.elapsed());
        match verdict {
            Ok(user) if !self.ctx.session_cfg.may_use(self.session.dialect(), &user) => {
                ShardStats::add(&stats.logins_failed, 1);
                debug!(user = %user.name, "login refused: no right for this interface");
                self.session.refuse_interface(self.ctx.random_sid())
            }
            Ok(user) => {
                ShardStats::add(&stats.logins_ok, 1);
                // It leaves the share of `max-clients` kept for connections not logged in.
                admission.logged_in(&mut self.held.admitted);
                tracing::Span::current().record("user", user.name.as_str());
                self.session.finish_auth(Some(user), self.ctx.random_sid())
            }
            Err(why) => {
                ShardStats::add(&stats.logins_failed, 1);
                if why == LoginFailure::Remote {
                    stats.reject(RejectReason::Remotes);
                }
                self.session.finish_auth(None, self.ctx.random_sid())
            }
        }
    }

    /// Stamps an event the client sent and wraps it for routing.
    fn route(
        &self,
        mut ev: vscp_proto::Event,
        now: &Clock,
        confirm: Option<Confirm>,
    ) -> Arc<RoutedEvent> {
        stamp_event(&mut ev, self.conn_id, now.unix_us, &self.ctx.interface_guid);
        let mut routed = RoutedEvent::new(ev, Origin::Client(self.conn_id), now.instant);
        routed.confirm = confirm;
        Arc::new(routed)
    }

    fn sync_view(&self) {
        let view = ReceiveView {
            wants: self.session.wants_events(),
            open: self.session.state() == State::Open,
            filter: *self.session.filter(),
        };
        let old = self.slot.view();
        if old.wants != view.wants || old.open != view.open || old.filter != view.filter {
            self.ctx.hub.set_view(&self.slot, view);
        }
    }

    /// The rest of an outbox batch the socket did not take at once. When one of the session's
    /// deadlines passes first (the pong deadline of a peer that vanished with its socket full,
    /// most likely), the rest stays in `output` for [`Conn::poll_step`], which then handles the
    /// deadline; the batch's events are not counted as delivered, since the session may well
    /// end before its socket takes them.
    async fn finish_batch(&mut self, events: Vec<Arc<RoutedEvent>>, bytes: u64) -> Result<(), End> {
        if self.flush_output().await? {
            delivered(self.ctx.hub.stats(), self.session.dialect(), &events, bytes);
        }
        Ok(())
    }

    /// Waits for the outcome of the outbox batch queued in the shard's cork: its statistics
    /// when the socket took it all, the slow path of [`Conn::finish_batch`] when it took part.
    async fn finish_corked(&mut self) -> Result<(), End> {
        let corked = self.corked.as_mut().expect("a batch was just corked");
        let sent = poll_fn(|cx| corked.ticket.poll_sent(cx)).await;
        let (events, bytes) = (&mut corked.events, corked.bytes);
        match sent {
            Sent::All => {
                delivered(self.ctx.hub.stats(), self.session.dialect(), events, bytes);
                events.clear();
                Ok(())
            }
            Sent::Rest(rest) => {
                self.output = rest;
                let events = std::mem::take(events);
                Box::pin(self.finish_batch(events, bytes)).await
            }
            Sent::Failed(e) => {
                events.clear();
                Box::pin(self.publish_what_was_read()).await;
                Err(End::Io(e))
            }
        }
    }

    /// Writes queued events (up to [`WRITE_BATCH`] of them, [`WRITE_BATCH_BYTES`]) with one
    /// write: the first batch of a wake on a plain socket is queued in the shard's cork (sent
    /// with the turn's other sends), the rest of the outbox at once (see `cork_spent`).
    fn write_batch(&mut self, cx: &mut Context<'_>) -> Batch {
        let ctx = &*self.ctx;
        let mut batch = ctx.io.batch.borrow_mut();
        batch.clear();
        let dialect = self.session.dialect();
        let mut tx = ctx.io.tx.borrow_mut();
        tx.clear();
        let mut bytes = 0u64;
        while batch.len() < WRITE_BATCH && tx.len() < WRITE_BATCH_BYTES {
            let Some(ev) = self.slot.pop() else { break };
            // Encoded once for the whole server; only the transport's framing is ours.
            let text = ev.encoded(dialect);
            bytes += text.len() as u64;
            self.framing.encode(&mut tx, &text);
            batch.push(ev);
        }
        ctx.hub.taken(batch.len());
        if dialect == Dialect::Tcp {
            // For tcp/ip `stat`: the receive loop's deliveries.
            let data: usize = batch.iter().map(|ev| ev.event.data.len()).sum();
            self.session
                .count_delivered(batch.len() as u64, data as u64);
        }
        let corkable = self.output.is_empty() && !self.cork_spent;
        if let (Some(cork), Some(fd), true) = (&ctx.cork, self.stream.plain_fd(), corkable) {
            self.cork_spent = true;
            ShardStats::add(&ctx.hub.stats().socket_writes, 1);
            let corked = self.corked.get_or_insert_with(Default::default);
            // The events wait with the session (the shard's batch buffer is the next one's).
            std::mem::swap(&mut *batch, &mut corked.events);
            corked.bytes = bytes;
            cork.push(fd, &tx, &corked.ticket);
            return Batch::Corked;
        }
        let wrote = write_now(&mut self.stream, &mut self.output, cx, &tx, ctx.hub.stats());
        match wrote {
            Wrote::All => {
                delivered(ctx.hub.stats(), dialect, &batch, bytes);
                batch.clear();
                Batch::Written
            }
            // The slow path (a client reading slower than its events come): the events are
            // kept until the socket took them, for the delivery latency.
            Wrote::Queued => Batch::Queued(batch.drain(..).collect(), bytes),
            Wrote::Failed(e) => {
                batch.clear();
                Batch::Failed(e)
            }
        }
    }

    /// Writes one reply (or the greeting) through the transport.
    fn write_text(&mut self, cx: &mut Context<'_>, text: &str) -> Wrote {
        ShardStats::add(&self.ctx.hub.stats().bytes_out, text.len() as u64);
        let ctx = self.ctx.clone();
        let mut tx = ctx.io.tx.borrow_mut();
        tx.clear();
        self.framing.encode(&mut tx, text.as_bytes());
        write_now(&mut self.stream, &mut self.output, cx, &tx, ctx.hub.stats())
    }

    /// Writes a liveness ping (the session found the peer silent for `ws-ping-interval`).
    fn write_ping(&mut self, cx: &mut Context<'_>) -> Wrote {
        let ctx = self.ctx.clone();
        let mut tx = ctx.io.tx.borrow_mut();
        tx.clear();
        if !self.framing.encode_ping(&mut tx) {
            return Wrote::All;
        }
        ShardStats::add(&ctx.hub.stats().pings_sent, 1);
        write_now(&mut self.stream, &mut self.output, cx, &tx, ctx.hub.stats())
    }

    /// Waits until `output` is written (`true`) or a deadline of the session that applies
    /// while it waits has passed (`false`); gives up when the shard closes.
    async fn flush_output(&mut self) -> Result<bool, End> {
        let mut timer = None;
        poll_fn(|cx| {
            if self.slot.poll_closed(cx).is_ready() {
                return Poll::Ready(Err(End::Shutdown));
            }
            if let Poll::Ready(done) = self.poll_flush(cx) {
                return Poll::Ready(done.map(|()| true).map_err(End::Io));
            }
            let due = self.session.poll_timeout_blocked(&self.ctx.session_cfg);
            poll_deadline(cx, &mut timer, due).map(|_| Ok(false))
        })
        .await
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.output.is_empty() {
            ShardStats::add(&self.ctx.hub.stats().socket_writes, 1);
            match Pin::new(&mut self.stream).poll_write(cx, &self.output) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                Poll::Ready(Ok(n)) => {
                    self.output.drain(..n);
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        // Give the memory back: the next write most likely goes out at once.
        self.output = Vec::new();
        if self.stream.has_pending_output() {
            return Pin::new(&mut self.stream).poll_flush(cx);
        }
        Poll::Ready(Ok(()))
    }

    /// Writes what is in `output`, for at most `limit` (a client that does not read cannot
    /// hold us).
    async fn flush_within(&mut self, limit: Duration) {
        let _ = glommio::timer::timeout(limit, async {
            let _ = poll_fn(|cx| self.poll_flush(cx)).await;
            Ok(())
        })
        .await;
    }

    /// Tells the client we close and why and, when the transport says so, gives it a moment to
    /// answer; a client that does not read cannot hold us here.
    async fn close(&mut self, why: Close) {
        // Boxed: happens once per session, and its timeout future would otherwise be part of
        // every session's task.
        Box::pin(self.close_inner(why)).await
    }

    async fn close_inner(&mut self, why: Close) {
        let _ = glommio::timer::timeout(CLOSE_TIMEOUT, async {
            let (wrote, await_reply) = poll_fn(|cx| {
                let ctx = self.ctx.clone();
                let mut tx = ctx.io.tx.borrow_mut();
                tx.clear();
                let await_reply = self.framing.encode_close(&mut tx, why);
                let wrote = if tx.is_empty() {
                    Wrote::All
                } else {
                    write_now(&mut self.stream, &mut self.output, cx, &tx, ctx.hub.stats())
                };
                Poll::Ready((wrote, await_reply))
            })
            .await;
            let sent = match wrote {
                Wrote::All => true,
                Wrote::Queued => poll_fn(|cx| self.poll_flush(cx)).await.is_ok(),
                Wrote::Failed(_) => false,
            };
            if sent && await_reply {
                // Until the client's close (or the end of its input, or garbage).
                let _ = poll_fn(|cx| self.poll_input(cx, Mode::Drain)).await;
            }
            Ok(())
        })
        .await;
    }
}

/// Keeps `timer` set for `due` (a new timer only when the deadline moved); ready when it has
/// passed. Logged-in sessions without idle timeout or pings have no timer at all.
fn poll_deadline(
    cx: &mut Context<'_>,
    timer: &mut Option<(Instant, Timer)>,
    due: Option<Instant>,
) -> Poll<Step> {
    let Some(at) = due else {
        *timer = None;
        return Poll::Pending;
    };
    if timer.as_ref().map(|(when, _)| *when) != Some(at) {
        let t = Timer::new(at.saturating_duration_since(Instant::now()));
        *timer = Some((at, t));
    }
    if let Some((_, t)) = timer {
        if Pin::new(t).poll(cx).is_ready() {
            return Poll::Ready(Step::Deadline);
        }
    }
    Poll::Pending
}

/// Writes `bytes` as far as the socket takes them now; the rest is queued in `output`.
fn write_now<S: ConnStream>(
    stream: &mut S,
    output: &mut Vec<u8>,
    cx: &mut Context<'_>,
    bytes: &[u8],
    stats: &ShardStats,
) -> Wrote {
    if !output.is_empty() {
        // Keeps the order; callers wait for `output` before writing more, so this is rare.
        output.extend_from_slice(bytes);
        return Wrote::Queued;
    }
    // glommio tries every write as a send(2) first (`yolo_send`).
    ShardStats::add(&stats.socket_writes, 1);
    match Pin::new(stream).poll_write(cx, bytes) {
        Poll::Ready(Ok(n)) if n == bytes.len() => Wrote::All,
        Poll::Ready(Ok(n)) => {
            output.extend_from_slice(&bytes[n..]);
            Wrote::Queued
        }
        Poll::Pending => {
            output.extend_from_slice(bytes);
            Wrote::Queued
        }
        Poll::Ready(Err(e)) => Wrote::Failed(e),
    }
}

/// A session's place in the shard's cork, with the events of the batch queued there.
#[derive(Default)]
struct Corked {
    ticket: Rc<Ticket>,
    events: Vec<Arc<RoutedEvent>>,
    bytes: u64,
}

impl Drop for Corked {
    /// A session dropped with its send still queued (its task cancelled) must not have it
    /// sent: its socket is closed with it.
    fn drop(&mut self) {
        self.ticket.cancel();
    }
}

/// Delivery statistics for events the socket has taken.
fn delivered(stats: &ShardStats, dialect: Dialect, events: &[Arc<RoutedEvent>], bytes: u64) {
    let now = Instant::now();
    for ev in events {
        stats
            .delivery_latency
            .observe(now.saturating_duration_since(ev.accepted_at));
    }
    stats.delivered(dialect, events.len() as u64);
    ShardStats::add(&stats.bytes_out, bytes);
}

/// The time a batch of input came in, read once for all its units.
struct Clock {
    instant: Instant,
    /// Microseconds since the Unix epoch, for the events' timestamps.
    unix_us: u64,
}

impl Clock {
    fn now() -> Clock {
        let unix_us = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(0);
        Clock {
            instant: Instant::now(),
            unix_us,
        }
    }
}

/// What one batch of input adds to the statistics, added once at its end.
#[derive(Default)]
struct Tally {
    /// Events accepted (routed).
    events: u64,
    bytes_in: u64,
    bytes_out: u64,
}

impl Tally {
    /// Appends a reply to the batch's output.
    fn reply<F: Framing>(&mut self, framing: &F, out: &mut Vec<u8>, text: &str) {
        self.bytes_out += text.len() as u64;
        framing.encode(out, text.as_bytes());
    }

    fn count(&self, stats: &ShardStats, dialect: Dialect) {
        if self.events > 0 {
            stats.received(dialect, self.events);
        }
        ShardStats::add(&stats.bytes_in, self.bytes_in);
        ShardStats::add(&stats.bytes_out, self.bytes_out);
    }
}
