//! The thin async loop that drives a [`Bridge`] over a glommio `TcpStream` (plain, or wrapped
//! in TLS by futures-rustls: [`Conn`]; with `ws://`/`wss://` the MQTT bytes travel in
//! websocket frames: [`Link`]) on the uplink core.
//!
//! One task, one biased select per step over: bytes from the broker, the next event from the
//! sessions, a TCP connect in progress, and the bridge's next deadline. Everything the select
//! races is cancel-safe: glommio keeps a pending read inside the stream, the session channel
//! hands an item out only when the receive completes, and a connect in progress is kept in a
//! box across iterations. Writes happen between selects, under [`WRITE_TIMEOUT`], so a broker
//! that stops reading cannot stall the loop (and with it the rings from the shards) for
//! longer than that; the connection is then dropped and re-established. A TLS stream may keep
//! written bytes in its record buffer, so every batch of writes ends with a flush.

use std::future::Future;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::ops::Deref;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, FutureExt};
use glommio::net::TcpStream;
use vscp_proto::Event;
use vscp_transport::confirm::Confirm;

use crate::bridge::{Bridge, Identity};
use crate::config::MqttConfig;
use crate::error::{ConfigError, ConnectionError};
use crate::stats::BridgeStats;
use crate::tls::TlsSetup;
use crate::websocket::WsLink;

/// Longest a write to the broker may take before the connection is considered dead.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Events taken from the sessions in one go before the publishes are written, so a burst
/// costs one write instead of one per event.
const BATCH: usize = 64;
/// Read buffer size.
const READ_BYTES: usize = 16 * 1024;

/// Where the bridge gets events from and hands events to. The server's uplink ports implement
/// this (an adapter in the root crate); tests can use channels.
pub trait EventPorts {
    /// A shared event from the sessions (borrowed, never copied per receiver).
    type Incoming: Deref<Target = Event>;

    /// The next event accepted from a websocket client; `None` once the server stops.
    fn recv(&self) -> impl Future<Output = Option<Self::Incoming>>;

    /// Delivers an event from the broker to the sessions.
    fn send(&self, event: Event) -> impl Future<Output = ()>;

    /// The confirmation a session waits on for this event, if it waits (ack-from-broker).
    fn confirmation(_event: &Self::Incoming) -> Option<&Confirm> {
        None
    }
}

/// A configured MQTT bridge, ready to be moved to the uplink core and run there.
#[derive(Debug)]
pub struct MqttBridge {
    cfg: MqttConfig,
    identity: Identity,
    stats: Arc<BridgeStats>,
    tls: Option<TlsSetup>,
}

impl MqttBridge {
    /// Validates everything that can be checked before running (rendered subscribe and will
    /// topics, the TLS files), so a bad configuration stops start-up instead of the bridge.
    pub fn new(cfg: MqttConfig, identity: Identity) -> Result<MqttBridge, ConfigError> {
        let stats = Arc::new(BridgeStats::default());
        Bridge::new(cfg.clone(), identity, 0, Instant::now(), stats.clone())?;
        let tls = match &cfg.tls {
            None => None,
            Some(t) => Some(crate::tls::setup(t, &cfg.host, &cfg.origin.key("host"))?),
        };
        Ok(MqttBridge {
            cfg,
            identity,
            stats,
            tls,
        })
    }

    /// With `ack-from-broker`, how long a session waits for the broker to confirm an event.
    pub fn ack_timeout(&self) -> Option<Duration> {
        self.cfg.ack_from_broker.then_some(self.cfg.ack_timeout)
    }

    /// The bridge's counters (shared; they keep updating while it runs).
    pub fn stats(&self) -> Arc<BridgeStats> {
        self.stats.clone()
    }

    /// Runs until `ports.recv()` returns `None` (server stopping), then says DISCONNECT.
    /// Must run inside a glommio executor.
    pub async fn run<P: EventPorts>(self, ports: P) {
        let random = random_u64();
        let connect_timeout = self.cfg.connection_timeout;
        let drain_timeout = self.cfg.drain_timeout;
        let nodelay = self.cfg.tcp_nodelay;
        let bind = self.cfg.bind;
        let websocket = self.cfg.websocket.clone();
        let tls = self.tls;
        let mut bridge =
            match Bridge::new(self.cfg, self.identity, random, Instant::now(), self.stats) {
                Ok(b) => b,
                Err(e) => {
                    // new() already ran this validation; only a {{rnd}} render could differ.
                    tracing::error!(error = %e, "MQTT bridge not started");
                    return;
                }
            };
        let mut conn: Option<Link> = None;
        let mut connecting: Option<Connecting> = None;
        // Set once the sessions are gone (the server is stopping): until then, or until
        // everything held is published and acknowledged, the loop goes on without taking events.
        let mut draining: Option<Instant> = None;
        let mut buf = vec![0u8; READ_BYTES];
        let (host, port) = {
            let (h, p) = bridge.broker();
            (h.to_owned(), p)
        };

        loop {
            let now = Instant::now();
            if let Some(deadline) = draining {
                if bridge.is_drained() || now >= deadline {
                    finish(&mut bridge, conn.take()).await;
                    return;
                }
            }
            if conn.is_none() && connecting.is_none() && bridge.poll_connect(now) {
                bridge.handle_connecting(now);
                connecting = Some(Box::pin(connect(
                    host.clone(),
                    port,
                    bind,
                    tls.clone(),
                    websocket.clone(),
                    connect_timeout,
                    nodelay,
                )));
            }

            let step = {
                let deadline = match (bridge.poll_timeout(), draining) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                let read = async {
                    match conn.as_mut() {
                        Some(s) => s.io.read(&mut buf).await,
                        None => futures::future::pending().await,
                    }
                }
                .fuse();
                // Backpressure: while the bridge cannot take an event, none is taken, so the
                // rings fill and the publishing sessions wait (their sockets are not read).
                let taking = draining.is_none() && bridge.can_take_event();
                let recv = async {
                    if taking {
                        ports.recv().await
                    } else {
                        futures::future::pending().await
                    }
                }
                .fuse();
                let conn_fut = async {
                    match connecting.as_mut() {
                        Some(f) => f.await,
                        None => futures::future::pending().await,
                    }
                }
                .fuse();
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
                futures::pin_mut!(read, recv, conn_fut, timer);
                futures::select_biased! {
                    r = read => Step::Read(r),
                    e = recv => Step::Event(e),
                    c = conn_fut => Step::Connected(c),
                    _ = timer => Step::Timer,
                }
            };

            let now = Instant::now();
            let wall = unix_us();
            match step {
                Step::Read(Ok(0)) => {
                    conn = None;
                    bridge.handle_closed(
                        ConnectionError::Io("the broker closed the connection".into()),
                        now,
                        wall,
                    );
                }
                Step::Read(Ok(n)) => match conn.as_mut().map(|s| s.unwrap(&buf[..n])) {
                    Some(Ok(Some(mqtt))) => bridge.handle_read(&mqtt, now, wall),
                    Some(Err(e)) => {
                        conn = None;
                        bridge.handle_closed(ConnectionError::Io(e.to_string()), now, wall);
                    }
                    _ => bridge.handle_read(&buf[..n], now, wall),
                },
                Step::Read(Err(e)) => {
                    conn = None;
                    bridge.handle_closed(ConnectionError::Io(e.to_string()), now, wall);
                }
                Step::Event(Some(ev)) => {
                    bridge.handle_session_event(&ev, P::confirmation(&ev), now, wall);
                    drop(ev);
                    // Take what is already waiting, then write once.
                    for _ in 1..BATCH {
                        if !bridge.can_take_event() {
                            break;
                        }
                        match ports.recv().now_or_never() {
                            Some(Some(ev)) => {
                                bridge.handle_session_event(&ev, P::confirmation(&ev), now, wall)
                            }
                            _ => break,
                        }
                    }
                }
                Step::Event(None) => {
                    // Every session has stopped: publish what is held, then say goodbye.
                    draining = Some(now + drain_timeout);
                    if !bridge.is_drained() {
                        tracing::info!(
                            timeout_ms = drain_timeout.as_millis() as u64,
                            "server stopping: publishing what the MQTT bridge holds"
                        );
                    }
                }
                Step::Connected(r) => {
                    connecting = None;
                    match r {
                        Ok(s) => {
                            conn = Some(s);
                            bridge.handle_connected(now, wall);
                        }
                        Err(e) => bridge.handle_closed(ConnectionError::Io(e), now, wall),
                    }
                }
                Step::Timer => bridge.handle_timeout(now, wall),
            }

            // Write whatever the step produced.
            if let Some(s) = conn.as_mut() {
                // Pongs may be waiting even when the bridge has nothing to say.
                let mut wrote = !s.out.is_empty();
                let mut failed = None;
                while let Some(bytes) = bridge.poll_transmit() {
                    match with_deadline(WRITE_TIMEOUT, s.write_packets(&bytes)).await {
                        Some(Ok(())) => wrote = true,
                        Some(Err(e)) => {
                            failed = Some(e.to_string());
                            break;
                        }
                        None => {
                            failed = Some(format!("write blocked for {WRITE_TIMEOUT:?}"));
                            break;
                        }
                    }
                }
                if wrote && failed.is_none() {
                    // The frames of a websocket link go out here; TLS may hold records.
                    match with_deadline(WRITE_TIMEOUT, s.flush()).await {
                        Some(Ok(())) => {}
                        Some(Err(e)) => failed = Some(e.to_string()),
                        None => failed = Some(format!("write blocked for {WRITE_TIMEOUT:?}")),
                    }
                }
                if let Some(err) = failed {
                    bridge.handle_closed(ConnectionError::Io(err), Instant::now(), unix_us());
                }
            } else {
                // Nothing to write to (bytes queued before a failure are stale).
                while bridge.poll_transmit().is_some() {}
            }
            if !bridge.wants_socket() {
                conn = None;
                connecting = None;
            }

            // Hand decoded events to the sessions.
            while let Some(ev) = bridge.poll_event() {
                ports.send(ev).await;
            }
        }
    }
}

/// The end of a stop: DISCONNECT (so the broker does not publish the will) and close. What
/// could not be published is counted (`shutdown_dropped`) and logged.
async fn finish(bridge: &mut Bridge, conn: Option<Link>) {
    let lost = bridge.pending_total();
    bridge.shutdown(Instant::now(), unix_us());
    if let Some(mut s) = conn {
        if let Some(bytes) = bridge.poll_transmit() {
            let _ = with_deadline(WRITE_TIMEOUT, s.write_packets(&bytes)).await;
            let _ = with_deadline(WRITE_TIMEOUT, s.flush()).await;
        }
        // close() flushes (and for TLS sends close_notify) first. A websocket link sends no
        // close frame: after DISCONNECT the broker closes the connection itself (MQTT §3.14).
        let _ = with_deadline(WRITE_TIMEOUT, s.io.close()).await;
    }
    if lost > 0 {
        tracing::warn!(
            not_published = lost,
            "MQTT bridge stopped with publishes not sent or not acknowledged"
        );
    } else {
        tracing::info!("MQTT bridge stopped");
    }
}

/// A connect (and TLS handshake) in progress, kept across loop iterations so racing it is
/// cancel-safe.
type Connecting = Pin<Box<dyn Future<Output = Result<Link, String>>>>;

enum Step<E> {
    Read(std::io::Result<usize>),
    Event(Option<E>),
    Connected(Result<Link, String>),
    Timer,
}

/// The connection to the broker and, for `ws://`/`wss://`, its websocket framing.
struct Link {
    io: Conn,
    // Boxed, like the TLS state: a plain link should not carry the websocket one's size.
    ws: Option<Box<WsLink>>,
    /// Websocket frames not written yet: the publishes of this step, pongs.
    out: Vec<u8>,
}

impl Link {
    /// MQTT bytes read from the broker: `None` means they are the bytes as read (no websocket),
    /// else what the frames carried. Pongs to send go to `out`.
    fn unwrap(&mut self, read: &[u8]) -> Result<Option<Vec<u8>>, crate::websocket::LinkError> {
        let Some(ws) = self.ws.as_mut() else {
            return Ok(None);
        };
        let got = ws.unwrap(read)?;
        self.out.extend_from_slice(&got.reply);
        Ok(Some(got.mqtt))
    }

    /// MQTT packets to the broker: written at once, or (websocket) framed into `out`, so a
    /// step's publishes leave in one write at [`Link::flush`].
    async fn write_packets(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self.ws.as_mut() {
            None => self.io.write_all(bytes).await,
            Some(ws) => {
                ws.wrap(bytes, &mut self.out);
                Ok(())
            }
        }
    }

    /// Writes the frames in `out` and flushes the stream (TLS may hold the last records).
    async fn flush(&mut self) -> std::io::Result<()> {
        if !self.out.is_empty() {
            self.io.write_all(&self.out).await?;
            self.out.clear();
        }
        self.io.flush().await
    }
}

/// The connection to the broker: one type for the loop, whether TLS is on or not.
enum Conn {
    Plain(TcpStream),
    // Boxed: the rustls connection state is large and the plain variant should not pay for it.
    Tls(Box<futures_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_close(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_close(cx),
        }
    }
}

/// Resolves (off the executor when it takes DNS), connects under `timeout` (from `bind` when
/// set) and, with `tls`, runs the TLS handshake under the same timeout.
async fn connect(
    host: String,
    port: u16,
    bind: Option<SocketAddr>,
    tls: Option<TlsSetup>,
    websocket: Option<String>,
    timeout: Duration,
    nodelay: bool,
) -> Result<Link, String> {
    let addr: SocketAddr = match host.parse::<IpAddr>() {
        Ok(ip) => SocketAddr::new(ip, port),
        Err(_) => {
            let h = host.clone();
            // getaddrinfo blocks; the uplink core must keep serving the rings meanwhile.
            let resolved = glommio::executor()
                .spawn_blocking(move || {
                    (h.as_str(), port)
                        .to_socket_addrs()
                        .map(|mut a| a.next())
                        .map_err(|e| e.to_string())
                })
                .await;
            match resolved {
                Ok(Some(a)) => a,
                Ok(None) => return Err(format!("{host}: no address")),
                Err(e) => return Err(format!("{host}: {e}")),
            }
        }
    };
    let s = match bind {
        None => TcpStream::connect_timeout(addr, timeout)
            .await
            .map_err(|e| format!("{addr}: {e}"))?,
        Some(local) => connect_from(local, addr, timeout).await?,
    };
    if nodelay {
        // Small publishes should leave at once; a failure only costs latency.
        let _ = s.set_nodelay(true);
    }
    let is_tls = tls.is_some();
    let io = match tls {
        None => Conn::Plain(s),
        Some(tls) => {
            let connector = futures_rustls::TlsConnector::from(tls.config);
            match with_deadline(timeout, connector.connect(tls.server_name, s)).await {
                Some(Ok(s)) => Conn::Tls(Box::new(s)),
                Some(Err(e)) => return Err(format!("{addr}: TLS handshake failed: {e}")),
                None => return Err(format!("{addr}: TLS handshake timed out")),
            }
        }
    };
    let mut link = Link {
        io,
        ws: None,
        out: Vec::new(),
    };
    if let Some(path) = websocket {
        match with_deadline(timeout, upgrade(&mut link.io, &host, port, is_tls, &path)).await {
            Some(Ok(ws)) => link.ws = Some(Box::new(ws)),
            Some(Err(e)) => return Err(format!("{addr}: {e}")),
            None => return Err(format!("{addr}: websocket upgrade timed out")),
        }
    }
    Ok(link)
}

/// The websocket upgrade on `path` (MQTT over websockets): request, then the broker's answer.
async fn upgrade(
    io: &mut Conn,
    host: &str,
    port: u16,
    tls: bool,
    path: &str,
) -> Result<WsLink, String> {
    let (mut ws, request) = WsLink::start(host, port, tls, path, random_u64())?;
    let io_err = |e: std::io::Error| format!("websocket upgrade: {e}");
    io.write_all(&request).await.map_err(io_err)?;
    io.flush().await.map_err(io_err)?;
    let mut buf = [0u8; 4096];
    while ws.upgrading() {
        let n = io.read(&mut buf).await.map_err(io_err)?;
        if n == 0 {
            return Err("the broker closed the connection during the websocket upgrade".into());
        }
        let got = ws.unwrap(&buf[..n]).map_err(|e| e.to_string())?;
        // Nothing may come before our CONNECT: bytes here would be lost to the codec.
        if !got.mqtt.is_empty() || !got.reply.is_empty() {
            return Err("the broker sent frames before CONNECT".into());
        }
    }
    Ok(ws)
}

/// `bind`: glommio's TcpStream cannot bind before connecting, so the socket is made, bound and
/// connected with socket2 in the blocking pool (a connect may take up to `timeout`, and the
/// uplink core must keep serving the rings meanwhile) and then handed to glommio, which
/// takes any connected socket2 socket (same socket2 0.4 as glommio's).
async fn connect_from(
    local: SocketAddr,
    addr: SocketAddr,
    timeout: Duration,
) -> Result<TcpStream, String> {
    let sock = glommio::executor()
        .spawn_blocking(move || -> Result<socket2::Socket, String> {
            use socket2::{Domain, Protocol, Socket, Type};
            let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
                .map_err(|e| format!("socket: {e}"))?;
            if local.port() != 0 {
                // A fixed local port is still in TIME_WAIT from the previous connection when
                // the bridge reconnects; without this every reconnect would fail for minutes.
                sock.set_reuse_address(true)
                    .map_err(|e| format!("SO_REUSEADDR: {e}"))?;
            }
            sock.bind(&local.into())
                .map_err(|e| format!("bind {local}: {e}"))?;
            sock.connect_timeout(&addr.into(), timeout)
                .map_err(|e| format!("{addr} from {local}: {e}"))?;
            Ok(sock)
        })
        .await?;
    Ok(TcpStream::from(sock))
}

/// Runs `f` for at most `dur`; `None` on timeout.
async fn with_deadline<T>(dur: Duration, f: impl Future<Output = T>) -> Option<T> {
    let f = f.fuse();
    let t = glommio::timer::sleep(dur).fuse();
    futures::pin_mut!(f, t);
    futures::select_biased! {
        v = f => Some(v),
        _ = t => None,
    }
}

fn unix_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// 64 random bits for `{{rnd}}`: the OS generator through vscp-proto, or (should that fail)
/// a per-process hash of the time, which is still unique enough for a client id.
fn random_u64() -> u64 {
    match vscp_proto::password::random_salt() {
        Ok(b) => u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]),
        Err(_) => {
            use std::hash::{BuildHasher, Hasher};
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u64(unix_us());
            h.write_u32(std::process::id());
            h.finish()
        }
    }
}
