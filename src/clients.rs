//! The command-line clients of the `vscp-websocksrv` binary, this project's mosquitto_pub and
//! mosquitto_sub: `sub` prints the events a user receives, `pub` sends events and reports each
//! reply, `auth-line` prints the ws1 login line for people typing into wscat.
//!
//! They are blocking std-socket clients (a client for people and scripts needs no executor)
//! that speak ws1 over `ws://`/`wss://` (tungstenite's client) or the tcp/ip link protocol over
//! `tcp://`/`stcp://`: the two dialects a person can read. TLS is rustls with ring, as in the
//! server.

use anyhow::{anyhow, bail, Context, Result};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tungstenite::{Message, WebSocket};
use vscp_proto::auth;

/// How long the server has to answer the greeting, a login or an event.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// Where Debian and Ubuntu keep the system's CA bundle: the default trust for `wss://`/`stcp://`
/// without `--cafile`.
const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Where and as whom to log in.
#[derive(Debug)]
pub struct Login {
    /// `ws://HOST:PORT/ws1`, `wss://…`, `tcp://HOST:PORT` or `stcp://HOST:PORT`.
    pub url: String,
    pub user: String,
    pub password: String,
    pub key: [u8; 16],
    /// TLS settings for `wss://` and `stcp://`.
    pub tls: TlsArgs,
}

/// What a TLS client trusts and shows.
#[derive(Debug, Default, Clone)]
pub struct TlsArgs {
    /// PEM file of the CA(s) that sign the server's certificate; default: the system bundle.
    pub cafile: Option<PathBuf>,
    /// PEM file with this client's certificate (chain) and private key, for a server with
    /// `ssl_verify_peer`.
    pub client_cert: Option<PathBuf>,
}

/// The ws1 line that logs `user` in on a session whose greeting gave `sid` (32 hex digits):
/// `C;AUTH;SID;CRYPTO`.
pub fn auth_line(sid: &str, user: &str, password: &str, key: &[u8; 16]) -> Result<String> {
    let iv = auth::hex_decode_16(sid.trim())
        .ok_or_else(|| anyhow!("--sid must be the 32 hex digits after `+;AUTH0;`"))?;
    let crypto = auth::encrypt_credentials(key, &iv, user, password);
    Ok(format!("C;AUTH;{};{crypto}", auth::hex_upper(&iv)))
}

/// The four kinds of address the clients take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scheme {
    Ws,
    Wss,
    Tcp,
    Stcp,
}

impl Scheme {
    fn tls(self) -> bool {
        matches!(self, Scheme::Wss | Scheme::Stcp)
    }

    fn websocket(self) -> bool {
        matches!(self, Scheme::Ws | Scheme::Wss)
    }
}

/// A parsed `--url`.
#[derive(Debug, PartialEq, Eq)]
struct Target {
    scheme: Scheme,
    host: String,
    port: u16,
    /// The websocket path (`/ws1`); empty for tcp/ip.
    path: String,
}

/// The socket under either dialect: plain, or TLS.
enum Link {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Link {
    fn tcp(&self) -> &TcpStream {
        match self {
            Link::Plain(s) => s,
            Link::Tls(s) => &s.sock,
        }
    }
}

impl Read for Link {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Link::Plain(s) => s.read(buf),
            Link::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Link {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Link::Plain(s) => s.write(buf),
            Link::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Link::Plain(s) => s.flush(),
            Link::Tls(s) => s.flush(),
        }
    }
}

/// A logged-in session in one of the two dialects.
pub struct Session {
    dialect: Dialect,
}

enum Dialect {
    Ws1(Box<WebSocket<Link>>),
    /// The tcp/ip link protocol: lines, each reply ending in a `+OK`/`-OK` line.
    Tcp(BufReader<Link>),
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").finish_non_exhaustive()
    }
}

/// One reply: its lines, the last of which says whether the command succeeded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// What the server said, one line each (ws1: one line).
    pub text: String,
    /// `+;…` (ws1) or a final `+OK` line (tcp/ip).
    pub ok: bool,
}

impl Session {
    /// Connects to `login.url`, reads the greeting and logs in; an error says which step failed.
    pub fn login(login: &Login) -> Result<Session> {
        let target = parse_url(&login.url)?;
        let url = &login.url;
        let addr = (target.host.as_str(), target.port)
            .to_socket_addrs()
            .with_context(|| format!("{url}: cannot resolve {}", target.host))?
            .next()
            .ok_or_else(|| anyhow!("{url}: no address for {}", target.host))?;
        let stream = TcpStream::connect_timeout(&addr, REPLY_TIMEOUT)
            .with_context(|| format!("cannot connect to {addr}"))?;
        stream.set_read_timeout(Some(REPLY_TIMEOUT))?;
        let _ = stream.set_nodelay(true);
        let link = match target.scheme.tls() {
            false => Link::Plain(stream),
            true => {
                let config = tls_config(&login.tls)?;
                let name = rustls::pki_types::ServerName::try_from(target.host.clone())
                    .map_err(|e| anyhow!("{url}: {:?} is no TLS server name: {e}", target.host))?;
                let conn = rustls::ClientConnection::new(config, name)
                    .map_err(|e| anyhow!("{url}: TLS setup failed: {e}"))?;
                let mut tls = rustls::StreamOwned::new(conn, stream);
                // Complete the handshake here, so a refused certificate is named as such.
                while tls.conn.is_handshaking() {
                    tls.conn
                        .complete_io(&mut tls.sock)
                        .map_err(|e| anyhow!("{url}: TLS handshake failed: {e}"))?;
                }
                Link::Tls(Box::new(tls))
            }
        };
        match target.scheme.websocket() {
            true => Session::login_ws1(link, &target, login),
            false => Session::login_tcp(link, login),
        }
    }

    fn login_ws1(link: Link, target: &Target, login: &Login) -> Result<Session> {
        let scheme = if target.scheme.tls() { "wss" } else { "ws" };
        let (host, port, path) = (&target.host, target.port, &target.path);
        let url = match host.contains(':') {
            true => format!("{scheme}://[{host}]:{port}{path}"),
            false => format!("{scheme}://{host}:{port}{path}"),
        };
        let (ws, _) = tungstenite::client(url.as_str(), link)
            .map_err(|e| anyhow!("{url}: websocket upgrade failed: {e}"))?;
        let mut s = Session {
            dialect: Dialect::Ws1(Box::new(ws)),
        };
        let greeting = s.recv_ws1()?;
        let sid = greeting.strip_prefix("+;AUTH0;").ok_or_else(|| {
            anyhow!("{url}: expected the ws1 greeting `+;AUTH0;SID`, got {greeting:?} (is the path /ws1?)")
        })?;
        let line = auth_line(sid, &login.user, &login.password, &login.key)?;
        let reply = s.command(&line)?;
        if !reply.text.starts_with("+;AUTH1") {
            bail!(
                "login as {:?} refused: {} (user, password and --key must match the server's users.json and key file)",
                login.user,
                reply.text
            );
        }
        Ok(s)
    }

    fn login_tcp(link: Link, login: &Login) -> Result<Session> {
        let mut s = Session {
            dialect: Dialect::Tcp(BufReader::new(link)),
        };
        let greeting = s.tcp_reply().context("reading the tcp/ip greeting")?;
        if !greeting.ok {
            bail!(
                "{}: the server refused the connection: {}",
                login.url,
                greeting.text
            );
        }
        for line in [
            format!("user {}", login.user),
            format!("pass {}", login.password),
        ] {
            let reply = s.command(&line)?;
            if !reply.ok {
                bail!("login as {:?} refused: {}", login.user, reply.text);
            }
        }
        Ok(s)
    }

    /// Sends a command or event line and returns the reply (ws1: events that arrive first are
    /// skipped, as only a channel that is open gets them).
    pub fn command(&mut self, line: &str) -> Result<Reply> {
        match &mut self.dialect {
            Dialect::Ws1(ws) => {
                ws.send(Message::text(line))
                    .context("cannot send to the server")?;
                loop {
                    let text = self.recv_ws1()?;
                    if !text.starts_with("E;") {
                        let ok = text.starts_with("+;");
                        return Ok(Reply { text, ok });
                    }
                }
            }
            Dialect::Tcp(r) => {
                let w = r.get_mut();
                w.write_all(format!("{line}\r\n").as_bytes())
                    .and_then(|_| w.flush())
                    .context("cannot send to the server")?;
                self.tcp_reply()
            }
        }
    }

    /// The next tcp/ip line, without its line end.
    fn tcp_line(&mut self) -> Result<String> {
        let Dialect::Tcp(r) = &mut self.dialect else {
            unreachable!("tcp/ip lines are read on tcp/ip sessions only");
        };
        let mut line = String::new();
        match r.read_line(&mut line) {
            Ok(0) => bail!("the server closed the connection"),
            Ok(_) => Ok(line.trim_end_matches(['\r', '\n']).to_string()),
            Err(e) if timed_out(&e) => bail!("no answer from the server within {REPLY_TIMEOUT:?}"),
            Err(e) => bail!("connection to the server failed: {e}"),
        }
    }

    /// Lines up to and including the terminal `+OK…`/`-OK…` line.
    fn tcp_reply(&mut self) -> Result<Reply> {
        let mut lines = Vec::new();
        loop {
            let line = self.tcp_line()?;
            let end = match line.get(..3) {
                Some("+OK") => Some(true),
                Some("-OK") => Some(false),
                _ => None,
            };
            lines.push(line);
            if let Some(ok) = end {
                return Ok(Reply {
                    text: lines.join("\n"),
                    ok,
                });
            }
        }
    }

    /// The next ws1 text message.
    fn recv_ws1(&mut self) -> Result<String> {
        let Dialect::Ws1(ws) = &mut self.dialect else {
            unreachable!("ws1 messages are read on ws1 sessions only");
        };
        loop {
            match ws.read() {
                Ok(Message::Text(t)) => return Ok(t.to_string()),
                Ok(Message::Close(c)) => bail!(
                    "the server closed the session{}",
                    c.map(|f| format!(": {} {}", u16::from(f.code), f.reason))
                        .unwrap_or_default()
                ),
                Ok(_) => {}
                // A signal handler ran (SO_RCVTIMEO reads are not restarted): read again.
                Err(tungstenite::Error::Io(e)) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(tungstenite::Error::Io(e)) if timed_out(&e) => {
                    bail!("no answer from the server within {REPLY_TIMEOUT:?}")
                }
                Err(e) => bail!("connection to the server failed: {e}"),
            }
        }
    }

    /// The next event the server sends (its event string), skipping anything else.
    fn next_event(&mut self) -> Result<String> {
        loop {
            match self.dialect {
                Dialect::Ws1(_) => {
                    if let Some(ev) = self.recv_ws1()?.strip_prefix("E;") {
                        return Ok(ev.to_string());
                    }
                }
                Dialect::Tcp(_) => {
                    // rcvloop's lines are events, or `+OK` every 2 s to say it is alive.
                    let line = self.tcp_line()?;
                    if line.starts_with(|c: char| c.is_ascii_digit()) {
                        return Ok(line);
                    }
                    if line.starts_with("-OK") {
                        bail!("the server ended the receive loop: {line}");
                    }
                }
            }
        }
    }

    fn link(&self) -> &Link {
        match &self.dialect {
            Dialect::Ws1(ws) => ws.get_ref(),
            Dialect::Tcp(r) => r.get_ref(),
        }
    }

    /// Sets the filter (if any), opens the channel (ws1 `C;OPEN`, tcp/ip `rcvloop`) and prints
    /// each event until `count` of them arrived (forever without).
    pub fn subscribe(
        &mut self,
        filter: Option<&str>,
        json: bool,
        count: Option<u64>,
        out: &mut impl Write,
    ) -> Result<()> {
        let usage = "expected FILTER;MASK, e.g. 0,10,6,-;0,0xFFFF,0xFF,-";
        let tcp = matches!(self.dialect, Dialect::Tcp(_));
        if let Some(f) = filter {
            let commands = match tcp {
                false => vec![format!("C;SF;{f}")],
                true => {
                    let (filter, mask) = f
                        .split_once(';')
                        .ok_or_else(|| anyhow!("filter {f:?}: {usage}"))?;
                    vec![format!("setfilter {filter}"), format!("setmask {mask}")]
                }
            };
            for c in commands {
                let reply = self.command(&c)?;
                if !reply.ok {
                    bail!("filter {f:?} refused: {} ({usage})", reply.text);
                }
            }
        }
        let reply = self.command(if tcp { "rcvloop" } else { "C;OPEN" })?;
        if !reply.ok {
            bail!("opening the channel was refused: {}", reply.text);
        }
        // Events may be far apart: no read deadline from here on.
        self.link().tcp().set_read_timeout(None)?;
        let mut seen = 0u64;
        while count.is_none_or(|n| seen < n) {
            let ev = self.next_event()?;
            if json {
                let parsed = vscp_proto::codec::string::parse_event(&ev)
                    .map_err(|e| anyhow!("the server sent an event we cannot read ({e}): {ev}"))?;
                let mut s = String::new();
                vscp_proto::codec::json::write_event(&parsed, &mut s);
                // One line per event: the codec's line breaks are only whitespace between
                // members (a raw line break cannot be inside a JSON string).
                s.retain(|c| c != '\n');
                writeln!(out, "{s}")?;
            } else {
                writeln!(out, "{ev}")?;
            }
            out.flush()?;
            seen += 1;
        }
        Ok(())
    }

    /// Sends one event (an event string, with or without ws1's `E;`) and returns the reply.
    pub fn publish(&mut self, event: &str) -> Result<Reply> {
        let event = event.trim();
        let event = event.strip_prefix("E;").unwrap_or(event);
        match self.dialect {
            Dialect::Ws1(_) => {
                let reply = self.command(&format!("E;{event}"))?;
                let ok = reply.text == "+;EVENT";
                Ok(Reply { ok, ..reply })
            }
            Dialect::Tcp(_) => self.command(&format!("send {event}")),
        }
    }

    /// Says goodbye: a websocket close, or `quit`.
    pub fn close(mut self) {
        match &mut self.dialect {
            Dialect::Ws1(ws) => {
                let _ = ws.close(None);
                let _ = ws.flush();
            }
            Dialect::Tcp(_) => {
                let _ = self.command("quit");
            }
        }
    }
}

fn timed_out(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

/// The rustls client configuration: trust `cafile` (or the system bundle), show
/// `client_cert` if given.
fn tls_config(args: &TlsArgs) -> Result<Arc<rustls::ClientConfig>> {
    let cafile = args
        .cafile
        .clone()
        .unwrap_or_else(|| PathBuf::from(SYSTEM_CA_BUNDLE));
    let shown = cafile.display();
    let cas = vscp_config::pem::certificates(&cafile).map_err(|e| match args.cafile {
        Some(_) => anyhow!("--cafile: {e}"),
        None => anyhow!("{e} (the system CA bundle; give the server's CA with --cafile)"),
    })?;
    let mut roots = rustls::RootCertStore::empty();
    for ca in cas {
        roots
            .add(ca)
            .map_err(|e| anyhow!("{shown}: a CA certificate rustls cannot use: {e}"))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| anyhow!("TLS setup failed: {e}"))?
        .with_root_certificates(roots);
    let config = match &args.client_cert {
        None => builder.with_no_client_auth(),
        Some(pem) => {
            let chain =
                vscp_config::pem::certificates(pem).map_err(|e| anyhow!("--client-cert: {e}"))?;
            let key =
                vscp_config::pem::private_key(pem).map_err(|e| anyhow!("--client-cert: {e}"))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| anyhow!("--client-cert {}: {e}", pem.display()))?
        }
    };
    Ok(Arc::new(config))
}

/// `--url` into its parts. Websockets: `ws://` or `wss://HOST[:PORT][/PATH]` (port 8884,
/// path `/ws1`); no scheme means `ws://`. tcp/ip: `tcp://` or `stcp://HOST[:PORT]` (port 9598).
fn parse_url(url: &str) -> Result<Target> {
    let (scheme, rest) = match url.split_once("://") {
        None => (Scheme::Ws, url),
        Some((s, rest)) => match s.to_ascii_lowercase().as_str() {
            "ws" => (Scheme::Ws, rest),
            "wss" => (Scheme::Wss, rest),
            "tcp" => (Scheme::Tcp, rest),
            "stcp" => (Scheme::Stcp, rest),
            other => bail!("{url}: {other}:// is not one of ws://, wss://, tcp:// or stcp://"),
        },
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let default_port = if scheme.websocket() { 8884 } else { 9598 };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => {
            let port = p
                .parse::<u16>()
                .map_err(|_| anyhow!("{url}: port {p:?} is not a number 1..65535"))?;
            (h.trim_start_matches('[').trim_end_matches(']'), port)
        }
        _ => (authority, default_port),
    };
    if host.is_empty() {
        bail!("{url}: missing host (e.g. ws://127.0.0.1:8884/ws1 or tcp://127.0.0.1:9598)");
    }
    let path = match (scheme.websocket(), path) {
        (true, "") => "/ws1".to_string(),
        (true, p) => p.to_string(),
        (false, "" | "/") => String::new(),
        (false, p) => bail!("{url}: the tcp/ip link interface has no path ({p})"),
    };
    Ok(Target {
        scheme,
        host: host.to_string(),
        port,
        path,
    })
}

/// The AES key from `--key HEX` or the key file.
pub fn read_key(hex: Option<&str>, file: &std::path::Path) -> Result<[u8; 16]> {
    match hex {
        Some(h) => {
            auth::hex_decode_16(h.trim()).ok_or_else(|| anyhow!("--key must be 32 hex digits"))
        }
        None => {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("{}: cannot read the key file", file.display()))?;
            auth::parse_key_file(&text).map_err(|e| anyhow!("{}: {e}", file.display()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let p = |u: &str| {
            let t = parse_url(u).unwrap();
            (t.scheme, t.host, t.port, t.path)
        };
        let s = String::from;
        assert_eq!(
            p("ws://127.0.0.1:9000/ws1"),
            (Scheme::Ws, s("127.0.0.1"), 9000, s("/ws1"))
        );
        assert_eq!(
            p("ws://localhost"),
            (Scheme::Ws, s("localhost"), 8884, s("/ws1"))
        );
        assert_eq!(
            p("127.0.0.1:8884"),
            (Scheme::Ws, s("127.0.0.1"), 8884, s("/ws1"))
        );
        assert_eq!(
            p("ws://[::1]:8884/x"),
            (Scheme::Ws, s("::1"), 8884, s("/x"))
        );
        assert_eq!(p("WSS://h/ws1"), (Scheme::Wss, s("h"), 8884, s("/ws1")));
        assert_eq!(p("tcp://h"), (Scheme::Tcp, s("h"), 9598, s("")));
        assert_eq!(p("stcp://[::1]:7/"), (Scheme::Stcp, s("::1"), 7, s("")));
        let err = |u: &str| parse_url(u).unwrap_err().to_string();
        assert!(err("http://h:1/ws1").contains("not one of ws://"));
        assert!(err("tcp://h:1/ws1").contains("no path"));
        assert!(parse_url("ws://h:x/ws1").is_err());
        assert!(parse_url("ws://:8884").is_err());
    }

    #[test]
    fn auth_line_decrypts_to_the_credentials() {
        let key = [7u8; 16];
        let sid = "00112233445566778899AABBCCDDEEFF";
        let line = auth_line(sid, "admin", "secret", &key).unwrap();
        let crypto = line.rsplit(';').next().unwrap();
        assert!(line.starts_with(&format!("C;AUTH;{sid};")));
        let iv = auth::hex_decode_16(sid).unwrap();
        let creds = auth::decrypt_credentials(&key, &iv, crypto).unwrap();
        assert_eq!(
            (creds.user.as_str(), creds.password.as_str()),
            ("admin", "secret")
        );
        assert!(auth_line("xyz", "a", "b", &key).is_err());
    }
}
