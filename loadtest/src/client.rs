//! A VSCP websocket client: TCP from a chosen source address, the upgrade, the greeting, AUTH
//! and OPEN in either dialect, and events that carry their send time.

use anyhow::{anyhow, bail, Context, Result};
use async_tungstenite::WebSocketStream;
use futures::StreamExt;
use futures::{AsyncRead, AsyncWrite};
use glommio::net::TcpStream;
use socket2::{Domain, Socket, Type};
use std::cell::Cell;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context as TaskContext, Poll};
use std::time::Instant;
use tungstenite::protocol::WebSocketConfig;
use tungstenite::Message;

pub type Ws = WebSocketStream<Io>;

/// `--tls-ca`: the VSCP clients speak TLS (a `wss://` listener) and trust that CA. Set once at
/// start, before any client runs.
static TLS: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();

/// Makes every VSCP client of this run speak TLS, trusting the CA certificates in `ca_pem`.
pub fn use_tls(ca_pem: &Path) -> Result<()> {
    let pem = std::fs::read(ca_pem).with_context(|| format!("{}", ca_pem.display()))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut &pem[..]) {
        roots.add(cert?)?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    TLS.set(Arc::new(config))
        .map_err(|_| anyhow!("TLS set up twice"))
}

/// A VSCP client's stream: the socket, or TLS over it (`--tls-ca`).
pub enum Io {
    Plain(TcpStream),
    Tls(Box<futures_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_close(cx),
            Io::Tls(s) => Pin::new(s).poll_close(cx),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    Ws1,
    Ws2,
}

impl Dialect {
    pub fn parse(s: &str) -> Result<Dialect> {
        match s {
            "ws1" => Ok(Dialect::Ws1),
            "ws2" => Ok(Dialect::Ws2),
            _ => bail!("dialect must be ws1 or ws2, not {s:?}"),
        }
    }
    pub fn path(self) -> &'static str {
        match self {
            Dialect::Ws1 => "/ws1",
            Dialect::Ws2 => "/ws2",
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Dialect::Ws1 => "ws1",
            Dialect::Ws2 => "ws2",
        }
    }
}

/// The credentials every client logs in with.
#[derive(Clone)]
pub struct Login {
    pub key: [u8; 16],
    pub user: String,
    pub password: String,
}

/// Source addresses handed out round-robin: one loopback address has about 28,000 ephemeral
/// ports, so tens of thousands of clients (and their TIME_WAITs) need several.
pub struct Sources {
    ips: Vec<IpAddr>,
    next: Cell<usize>,
}

impl Sources {
    /// `count` addresses 127.0.0.1, 127.0.0.2, ... for a loopback target; none (the kernel
    /// chooses) for any other target, or when `count` is 0.
    pub fn new(target: &SocketAddr, count: usize) -> Sources {
        let ips = match target.ip() {
            IpAddr::V4(v4) if v4.is_loopback() => (1..=count.min(254))
                .map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, 0, i as u8)))
                .collect(),
            _ => Vec::new(),
        };
        Sources {
            ips,
            next: Cell::new(0),
        }
    }
    pub fn pick(&self) -> Option<IpAddr> {
        if self.ips.is_empty() {
            return None;
        }
        let i = self.next.get();
        self.next.set((i + 1) % self.ips.len());
        Some(self.ips[i])
    }
}

/// Connects without blocking the executor: the socket is bound (when `from` is set) and
/// connected non-blocking, then handed to glommio, whose first send waits for the connection
/// to complete (a refused connection fails there).
pub async fn tcp_connect(from: Option<IpAddr>, to: SocketAddr) -> Result<TcpStream> {
    let sock = Socket::new(Domain::for_address(to), Type::STREAM, None)?;
    sock.set_nonblocking(true)?;
    sock.set_nodelay(true)?;
    if let Some(ip) = from {
        sock.bind(&SocketAddr::new(ip, 0).into())
            .with_context(|| format!("bind {ip}"))?;
    }
    match sock.connect(&to.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e).with_context(|| format!("connect {to}")),
    }
    Ok(TcpStream::from(sock))
}

/// Websocket limits for generated clients. The read chunk is what each client keeps allocated
/// for its life, so idle-hold runs use a small one.
pub fn ws_config(read_chunk: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(read_chunk)
        .write_buffer_size(0)
        .max_message_size(Some(1 << 20))
}

/// Upgrades, reads the greeting, logs in and, with `open`, OPENs the channel (a client that
/// only publishes leaves it closed, so the server sends it nothing but its acks). Each step is
/// checked; a negative reply is an error carrying the server's text.
pub async fn open_session(
    stream: TcpStream,
    host: &str,
    dialect: Dialect,
    login: &Login,
    read_chunk: usize,
    open: bool,
) -> Result<Ws> {
    open_session_with(stream, host, dialect, login, ws_config(read_chunk), open).await
}

/// `open_session` with websocket settings of the caller's (e.g. a write buffer, so a client
/// that sends several events before it flushes writes them at once).
pub async fn open_session_with(
    stream: TcpStream,
    host: &str,
    dialect: Dialect,
    login: &Login,
    config: WebSocketConfig,
    open: bool,
) -> Result<Ws> {
    let url = format!("ws://{host}{}", dialect.path());
    let stream = match TLS.get() {
        None => Io::Plain(stream),
        Some(tls) => {
            // The server's certificate must name 127.0.0.1 (the generator's targets are local).
            let name = rustls::pki_types::ServerName::IpAddress(Ipv4Addr::LOCALHOST.into());
            let connector = futures_rustls::TlsConnector::from(tls.clone());
            let s = connector
                .connect(name, stream)
                .await
                .context("TLS handshake")?;
            Io::Tls(Box::new(s))
        }
    };
    let (mut ws, _) = async_tungstenite::client_async_with_config(url, stream, Some(config))
        .await
        .context("websocket upgrade")?;
    let greeting = read_text(&mut ws).await.context("greeting")?;
    let sid = match dialect {
        Dialect::Ws1 => greeting
            .strip_prefix("+;AUTH0;")
            .map(str::to_string)
            .ok_or_else(|| anyhow!("unexpected greeting {greeting:?}"))?,
        Dialect::Ws2 => {
            let v: serde_json::Value = serde_json::from_str(&greeting)?;
            v["args"][1]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| anyhow!("unexpected greeting {greeting:?}"))?
        }
    };
    let iv = vscp_proto::auth::hex_decode_16(&sid).context("greeting carries no SID")?;
    let crypto =
        vscp_proto::auth::encrypt_credentials(&login.key, &iv, &login.user, &login.password);
    let (auth, open_cmd) = match dialect {
        Dialect::Ws1 => (format!("C;AUTH;{sid};{crypto}"), "C;OPEN".to_string()),
        Dialect::Ws2 => (
            format!(
                r#"{{"type":"CMD","command":"AUTH","args":{{"iv":"{sid}","crypto":"{crypto}"}}}}"#
            ),
            r#"{"type":"CMD","command":"OPEN","args":null}"#.to_string(),
        ),
    };
    let steps = [("AUTH", auth), ("OPEN", open_cmd)];
    for (what, cmd) in steps.into_iter().take(1 + open as usize) {
        ws.send(Message::text(cmd)).await?;
        let r = read_text(&mut ws).await.with_context(|| what.to_string())?;
        if !is_positive(dialect, &r) {
            bail!("{what} refused: {r}");
        }
    }
    Ok(ws)
}

fn is_positive(dialect: Dialect, reply: &str) -> bool {
    match dialect {
        Dialect::Ws1 => reply.starts_with("+;"),
        Dialect::Ws2 => ws2_type(reply) == Some("+"),
    }
}

/// The `type` member of a ws2 message, found without parsing the whole object (the server
/// writes REF's spacing, `{ "type" : "EVENT", ...`, so this allows any whitespace).
pub fn ws2_type(msg: &str) -> Option<&str> {
    let at = msg.find("\"type\"")?;
    let rest = msg[at + 6..].trim_start().strip_prefix(':')?.trim_start();
    let rest = rest.strip_prefix('"')?;
    Some(&rest[..rest.find('"')?])
}

/// The next text message; pings are answered by tungstenite, other frames skipped.
pub async fn read_text(ws: &mut Ws) -> Result<String> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => return Ok(t.to_string()),
            Some(Ok(Message::Close(c))) => bail!("closed by the server: {c:?}"),
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(e.into()),
            None => bail!("connection closed"),
        }
    }
}

/// The run's clock: every timestamp in an event is nanoseconds since this instant, shared by
/// all executors of the process.
#[derive(Clone, Copy)]
pub struct Clock(pub Instant);

impl Clock {
    pub fn now_nanos(&self) -> u64 {
        self.0.elapsed().as_nanos() as u64
    }
}

/// A ws1 `E;` command whose first 8 data bytes are the send time (big-endian nanoseconds),
/// padded with zero bytes to `data_len` data bytes (at least 8).
pub fn ws1_event(nanos: u64, data_len: usize) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(32 + 5 * data_len);
    s.push_str("E;0,20,3,0,,0,-");
    for b in nanos.to_be_bytes() {
        // Into the string directly: this runs for every event a publisher sends.
        let _ = write!(s, ",0x{b:02X}");
    }
    for _ in 8..data_len {
        s.push_str(",0x00");
    }
    s
}

/// The send time carried by an event the server delivered, in any dialect: ws1 (`E;` and the
/// event string), tcp/ip (the event string alone) or ws2 (JSON).
pub fn sent_nanos(msg: &str) -> Option<u64> {
    let mut data = [0u8; 8];
    let csv = match msg.strip_prefix("E;") {
        Some(rest) => Some(rest),
        None if msg.starts_with(|c: char| c.is_ascii_digit()) => Some(msg),
        None => None,
    };
    if let Some(rest) = csv {
        // head,class,type,obid,datetime,timestamp,GUID,data...
        let mut fields = rest.split(',').skip(7);
        for b in data.iter_mut() {
            let f = fields.next()?.trim();
            *b = match f.strip_prefix("0x").or_else(|| f.strip_prefix("0X")) {
                Some(h) => u8::from_str_radix(h, 16).ok()?,
                None => f.parse().ok()?,
            };
        }
    } else {
        // ws2: {"type":"E","event":{..."vscpData":[n,n,...]...}}; the bridge's JSON has the
        // same key.
        let at = msg.find("\"vscpData\"")?;
        let rest = &msg[at + 10..];
        let open = rest.find('[')?;
        let mut items = rest[open + 1..].split(',');
        for b in data.iter_mut() {
            let f = items.next()?.trim().trim_end_matches(']');
            *b = f.parse().ok()?;
        }
    }
    Some(u64::from_be_bytes(data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ws1_event_round_trips_its_timestamp() {
        let e = ws1_event(0x0102_0304_0506_0708, 8);
        let delivered = format!(
            "E;0,20,3,0,2026-11-26T05:00:00Z,0,FF:FF:FF:FF:FF:FF:FF:FE:00:00:00:00:00:00:00:01,{}",
            e.splitn(8, ',').nth(7).unwrap()
        );
        assert_eq!(sent_nanos(&delivered), Some(0x0102_0304_0506_0708));
        assert_eq!(ws1_event(5, 12).matches(",0x00").count(), 7 + 4);
    }

    #[test]
    fn ws2_type_allows_refs_spacing() {
        assert_eq!(
            ws2_type(r#"{ "type" : "+",  "command" : "NOOP"}"#),
            Some("+")
        );
        assert_eq!(ws2_type(r#"{"type":"EVENT","event":{}}"#), Some("EVENT"));
        assert_eq!(ws2_type(r#"{"kind":"+"}"#), None);
        assert!(is_positive(
            Dialect::Ws2,
            r#"{    "type" : "+",     "args" : ["AUTH0","AB"]}"#
        ));
        assert!(!is_positive(
            Dialect::Ws2,
            r#"{ "type" : "-",  "command" : "AUTH"}"#
        ));
    }

    #[test]
    fn ws2_timestamp_is_read_from_vscp_data() {
        let m = r#"{"type":"E","event":{"vscpHead":0,"vscpData":[0,0,0,0,0,0,1,2,9]}}"#;
        assert_eq!(sent_nanos(m), Some(0x0102));
        assert_eq!(sent_nanos(r#"{"vscpData":[1,2]}"#), None);
        assert_eq!(sent_nanos("+;NOOP"), None);
    }
}
