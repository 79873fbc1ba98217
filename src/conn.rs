//! One websocket connection: upgrade, then shuttle messages between the socket and the
//! sans-IO [`vscp_proto::Session`].
//!
//! The loop is a single task with one biased select over shutdown, the socket, the outbox and
//! the login/idle deadline. Everything raced is cancel-safe: tungstenite keeps partial frames in
//! its own buffer, and the outbox is only drained once its branch has won.

use crate::hub::{ReceiveView, RoutedEvent, Slot, Wake};
use crate::shard::ShardCtx;
use crate::stats::{DropReason, RejectReason, ShardStats};
use async_tungstenite::WebSocketStream;
use futures::{FutureExt, SinkExt, StreamExt};
use glommio::net::TcpStream;
use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tracing::debug;
use tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tungstenite::{Error as WsError, Message};
use vscp_proto::session::{stamp_event, Action, EventRejection, PublishOutcome, State};
use vscp_proto::{Dialect, Session};

/// How long a client has to complete the HTTP upgrade.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long we wait for the client's half of a closing handshake or a stalled write at shutdown.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
/// Events written per batch before flushing and checking the socket again.
const WRITE_BATCH: usize = 64;

type Ws = WebSocketStream<TcpStream>;

/// The websocket limits. Buffers are kept small because most sessions are idle most of the
/// time and tungstenite keeps its read buffer's capacity for the session's life: its 128 KiB
/// default would make 10,000 idle sessions cost over a gigabyte. VSCP messages are a few hundred
/// bytes, so a 512-byte read chunk costs at most a few extra reads for the largest events.
pub fn ws_config(max_message_bytes: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(512)
        .write_buffer_size(0)
        .max_write_buffer_size(usize::MAX)
        .max_message_size(Some(max_message_bytes))
        .max_frame_size(Some(max_message_bytes))
}

/// Serves one accepted TCP connection until it closes.
pub async fn serve(stream: TcpStream, peer: SocketAddr, ctx: Rc<ShardCtx>, conn_id: u32) {
    let stats = ctx.hub.stats();
    // Boxed: the handshake's state is large and needed once; inline it would stay part of
    // every idle session's task for the session's whole life.
    let Some((dialect, ws)) = Box::pin(upgrade(stream, &ctx)).await else {
        stats.reject(RejectReason::Handshake);
        return;
    };
    debug!(shard = ctx.shard, conn = conn_id, %peer, dialect = dialect.as_str(), "session open");
    let slot = ctx.hub.register(conn_id, dialect);
    ShardStats::gauge_add(&stats.sessions_active, 1);
    ShardStats::add(&stats.sessions_accepted, 1);
    let mut conn = Conn {
        ctx: ctx.clone(),
        slot: slot.clone(),
        ws,
        session: Session::new(dialect, ctx.random_sid()),
        peer,
        conn_id,
        last_activity: Instant::now(),
    };
    let end = conn.run().await;
    ctx.hub.unregister(&slot);
    ShardStats::gauge_add(&stats.sessions_active, -1);
    debug!(shard = ctx.shard, conn = conn_id, %peer, reason = ?end, "session closed");
}

async fn upgrade(stream: TcpStream, ctx: &ShardCtx) -> Option<(Dialect, Ws)> {
    let chosen: Cell<Option<Dialect>> = Cell::new(None);
    // The error type is fixed by tungstenite's `Callback` trait.
    #[allow(clippy::result_large_err)]
    let callback = |req: &Request, mut resp: Response| -> Result<Response, ErrorResponse> {
        let path = req.uri().path();
        let dialect = if ctx.url_ws1.as_deref() == Some(path) {
            Dialect::Ws1
        } else if ctx.url_ws2.as_deref() == Some(path) {
            Dialect::Ws2
        } else {
            let mut r = ErrorResponse::new(Some(format!("no websocket endpoint at {path}\n")));
            *r.status_mut() = tungstenite::http::StatusCode::NOT_FOUND;
            return Err(r);
        };
        // Browsers abort the handshake if they offered a subprotocol and get none back; echo
        // the VSCP names, select nothing otherwise (ws1.md §1).
        let wanted = match dialect {
            Dialect::Ws1 => "vscp-std",
            Dialect::Ws2 => "vscp-json",
        };
        let offered = req
            .headers()
            .get_all("sec-websocket-protocol")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|p| p.trim() == wanted);
        if offered {
            resp.headers_mut().insert(
                "sec-websocket-protocol",
                tungstenite::http::HeaderValue::from_static(wanted),
            );
        }
        chosen.set(Some(dialect));
        Ok(resp)
    };
    let cfg = ws_config(ctx.max_message_bytes);
    let accept = async_tungstenite::accept_hdr_async_with_config(stream, callback, Some(cfg));
    let ws = glommio::timer::timeout(HANDSHAKE_TIMEOUT, async {
        accept
            .await
            .map_err(|e| glommio::GlommioError::IoError(std::io::Error::other(e)))
    })
    .await
    .ok()?;
    Some((chosen.get()?, ws))
}

/// Why a session ended (for the debug log line).
#[derive(Debug)]
#[allow(dead_code)] // fields are read through `Debug` in the log line
enum End {
    ClientClosed,
    Shutdown,
    AuthDeadline,
    Idle,
    TooBig,
    BadUtf8,
    Error(String),
}

struct Conn {
    ctx: Rc<ShardCtx>,
    slot: Rc<Slot>,
    ws: Ws,
    session: Session,
    peer: SocketAddr,
    conn_id: u32,
    last_activity: Instant,
}

enum Step {
    Message(Option<Result<Message, WsError>>),
    Wake(Wake),
    Deadline,
}

impl Conn {
    async fn run(&mut self) -> End {
        let greeting = self.session.greeting();
        if let Err(e) = self.send_text(greeting.into()).await {
            return e;
        }
        let started = Instant::now();
        let mut batch = Vec::with_capacity(WRITE_BATCH);
        loop {
            let deadline = self.deadline(started);
            let step = {
                let wake = self.slot.wait().fuse();
                let msg = self.ws.next().fuse();
                let timer = async {
                    match deadline {
                        Some(at) => {
                            glommio::timer::sleep(at.saturating_duration_since(Instant::now()))
                                .await
                        }
                        None => futures::future::pending::<()>().await,
                    }
                }
                .fuse();
                futures::pin_mut!(wake, msg, timer);
                futures::select_biased! {
                    w = wake => Step::Wake(w),
                    m = msg => Step::Message(m),
                    _ = timer => Step::Deadline,
                }
            };
            match step {
                Step::Wake(Wake::Closing) => {
                    self.close(CloseCode::Away, "server shutting down").await;
                    return End::Shutdown;
                }
                Step::Wake(Wake::Outbox) => {
                    if let Err(e) = self.write_outbox(&mut batch).await {
                        return e;
                    }
                }
                Step::Deadline => {
                    if self
                        .login_deadline(started)
                        .is_some_and(|at| Instant::now() >= at)
                    {
                        self.ctx.hub.stats().reject(RejectReason::AuthDeadline);
                        self.close(CloseCode::Policy, "login timeout").await;
                        return End::AuthDeadline;
                    }
                    self.close(CloseCode::Normal, "idle timeout").await;
                    return End::Idle;
                }
                Step::Message(None) => return End::ClientClosed,
                Step::Message(Some(Ok(msg))) => {
                    self.last_activity = Instant::now();
                    if let Err(e) = self.on_message(msg).await {
                        return e;
                    }
                }
                Step::Message(Some(Err(e))) => return self.on_ws_error(e).await,
            }
        }
    }

    /// The next moment the session must be closed if nothing happens: the earlier of the login
    /// deadline (while not logged in) and the idle deadline (both optional).
    fn deadline(&self, started: Instant) -> Option<Instant> {
        let idle =
            (!self.ctx.idle_timeout.is_zero()).then(|| self.last_activity + self.ctx.idle_timeout);
        match (self.login_deadline(started), idle) {
            (Some(login), Some(idle)) => Some(login.min(idle)),
            (login, idle) => login.or(idle),
        }
    }

    /// When a session that has not logged in yet is closed (`auth-timeout`).
    fn login_deadline(&self, started: Instant) -> Option<Instant> {
        (self.session.state() == State::Connected && !self.ctx.auth_timeout.is_zero())
            .then(|| started + self.ctx.auth_timeout)
    }

    async fn on_ws_error(&mut self, e: WsError) -> End {
        match e {
            WsError::Capacity(_) => {
                self.ctx.hub.stats().drop_event(DropReason::Oversized, 1);
                self.close(CloseCode::Size, "message too big").await;
                End::TooBig
            }
            WsError::Utf8(_) => {
                self.close(CloseCode::Invalid, "invalid UTF-8").await;
                End::BadUtf8
            }
            WsError::ConnectionClosed | WsError::AlreadyClosed => End::ClientClosed,
            WsError::Protocol(p) => {
                self.close(CloseCode::Protocol, "protocol error").await;
                End::Error(p.to_string())
            }
            e => End::Error(e.to_string()),
        }
    }

    async fn on_message(&mut self, msg: Message) -> Result<(), End> {
        let text = match msg {
            Message::Text(t) => t,
            // ws1.md §1: binary frames carry nothing in either dialect.
            Message::Binary(_) | Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {
                return Ok(())
            }
            Message::Close(_) => {
                // tungstenite has queued the close reply; send it, or the client sees an
                // abnormal closure (1006) instead of a completed close handshake.
                let _ = glommio::timer::timeout(CLOSE_TIMEOUT, async {
                    let _ = self.ws.flush().await;
                    Ok(())
                })
                .await;
                return Err(End::ClientClosed);
            }
        };
        ShardStats::add(&self.ctx.hub.stats().bytes_in, text.len() as u64);
        let action = {
            // simd-json parses in place, so the message is copied into the shard's scratch
            // buffer (tungstenite hands out shared, immutable bytes).
            let mut scratch = self.ctx.scratch.borrow_mut();
            scratch.clear();
            scratch.extend_from_slice(text.as_bytes());
            self.session
                .handle_message(&mut scratch, &self.ctx.session_cfg)
        };
        if let Some(why) = self.session.take_rejection() {
            self.ctx.hub.stats().drop_event(
                match why {
                    EventRejection::Rights => DropReason::Rights,
                    EventRejection::Malformed => DropReason::Malformed,
                },
                1,
            );
        }
        let reply = match action {
            Action::None => None,
            Action::Reply(r) => Some(r),
            Action::Opened(r) => Some(r),
            Action::ClearQueue(r) => {
                self.ctx.hub.clear_outbox(&self.slot);
                Some(r)
            }
            // Boxed for the same reason as the handshake: logins are rare, the future is big.
            Action::Authenticate(creds) => Some(Box::pin(self.login(creds)).await),
            Action::Publish(ev) => Some(self.publish(ev).await),
        };
        self.sync_view();
        if let Some(r) = reply {
            self.send_text(r.into()).await?;
        }
        Ok(())
    }

    async fn login(&mut self, creds: vscp_proto::auth::Credentials) -> String {
        let stats = self.ctx.hub.stats();
        let started = Instant::now();
        let verdict = if creds.user.is_empty() {
            Err(crate::credentials::LoginFailure::Credentials)
        } else {
            self.ctx.auth.login(creds, self.peer.ip()).await
        };
        stats.login_time.observe(started.elapsed());
        match verdict {
            Ok(user) => {
                ShardStats::add(&stats.logins_ok, 1);
                self.session.finish_auth(Some(user), self.ctx.random_sid())
            }
            Err(why) => {
                ShardStats::add(&stats.logins_failed, 1);
                if why == crate::credentials::LoginFailure::Remote {
                    stats.reject(RejectReason::Remotes);
                }
                self.session.finish_auth(None, self.ctx.random_sid())
            }
        }
    }

    async fn publish(&mut self, mut ev: vscp_proto::Event) -> String {
        let now_us = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(0);
        stamp_event(&mut ev, self.conn_id, now_us, &self.ctx.interface_guid);
        self.ctx.hub.stats().received(self.session.dialect());
        let routed = Arc::new(RoutedEvent::new(
            ev,
            crate::hub::Origin::Client(self.conn_id),
        ));
        self.ctx.hub.publish(routed).await;
        self.session.event_reply(PublishOutcome::Accepted)
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

    async fn write_outbox(&mut self, batch: &mut Vec<Arc<RoutedEvent>>) -> Result<(), End> {
        batch.clear();
        self.slot.take_batch(WRITE_BATCH, batch);
        self.ctx.hub.taken(batch.len());
        let dialect = self.session.dialect();
        let mut bytes = 0u64;
        for ev in batch.iter() {
            let text = ev.encoded(dialect);
            bytes += text.len() as u64;
            let slot = self.slot.clone();
            let fed = self.ws.feed(Message::Text(text));
            futures::pin_mut!(fed);
            let closed = slot.closed().fuse();
            futures::pin_mut!(closed);
            futures::select_biased! {
                _ = closed => return Err(End::Shutdown),
                r = fed.fuse() => r.map_err(|e| End::Error(e.to_string()))?,
            }
        }
        self.flush().await?;
        let stats = self.ctx.hub.stats();
        let now = Instant::now();
        for ev in batch.iter() {
            stats
                .delivery_latency
                .observe(now.saturating_duration_since(ev.accepted_at));
        }
        stats.delivered(dialect, batch.len() as u64);
        ShardStats::add(&stats.bytes_out, bytes);
        batch.clear();
        Ok(())
    }

    async fn send_text(&mut self, text: tungstenite::Utf8Bytes) -> Result<(), End> {
        ShardStats::add(&self.ctx.hub.stats().bytes_out, text.len() as u64);
        let slot = self.slot.clone();
        let fed = self.ws.feed(Message::Text(text));
        futures::pin_mut!(fed);
        let closed = slot.closed().fuse();
        futures::pin_mut!(closed);
        futures::select_biased! {
            _ = closed => return Err(End::Shutdown),
            r = fed.fuse() => r.map_err(|e| End::Error(e.to_string()))?,
        }
        self.flush().await
    }

    async fn flush(&mut self) -> Result<(), End> {
        let slot = self.slot.clone();
        let flush = self.ws.flush();
        futures::pin_mut!(flush);
        let closed = slot.closed().fuse();
        futures::pin_mut!(closed);
        futures::select_biased! {
            _ = closed => Err(End::Shutdown),
            r = flush.fuse() => r.map_err(|e| End::Error(e.to_string())),
        }
    }

    /// Sends a close frame and gives the client a moment to answer; a client that does not
    /// read cannot hold us here.
    async fn close(&mut self, code: CloseCode, reason: &'static str) {
        // Boxed: happens once per session, and its timeout future would otherwise be part of
        // every session's task.
        Box::pin(self.close_inner(code, reason)).await
    }

    async fn close_inner(&mut self, code: CloseCode, reason: &'static str) {
        let frame = CloseFrame {
            code,
            reason: reason.into(),
        };
        let ws = &mut self.ws;
        let _ = glommio::timer::timeout(CLOSE_TIMEOUT, async {
            let _ = ws.close(Some(frame)).await;
            // Drain until the client's close arrives (tungstenite then ends the stream).
            while let Some(Ok(_)) = ws.next().await {}
            Ok(())
        })
        .await;
    }
}
