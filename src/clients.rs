//! The command-line clients of the `vscp-websocksrv` binary, this project's mosquitto_pub and
//! mosquitto_sub: `sub` prints the events a user receives, `pub` sends events and reports each
//! reply, `auth-line` prints the ws1 login line for people typing into wscat.
//!
//! They speak ws1 over a plain blocking websocket (tungstenite's client on a std socket): a
//! client for people and scripts needs no executor, and ws1 is the dialect a person can read.

use anyhow::{anyhow, bail, Context, Result};
use std::io::Write;
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;
use tungstenite::{Message, WebSocket};
use vscp_proto::auth;

/// How long the server has to answer the greeting, a login or an event.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// Where and as whom to log in.
#[derive(Debug)]
pub struct Login {
    /// `ws://HOST:PORT/ws1`.
    pub url: String,
    pub user: String,
    pub password: String,
    pub key: [u8; 16],
}

/// The ws1 line that logs `user` in on a session whose greeting gave `sid` (32 hex digits):
/// `C;AUTH;SID;CRYPTO`.
pub fn auth_line(sid: &str, user: &str, password: &str, key: &[u8; 16]) -> Result<String> {
    let iv = auth::hex_decode_16(sid.trim())
        .ok_or_else(|| anyhow!("--sid must be the 32 hex digits after `+;AUTH0;`"))?;
    let crypto = auth::encrypt_credentials(key, &iv, user, password);
    Ok(format!("C;AUTH;{};{crypto}", auth::hex_upper(&iv)))
}

/// A logged-in ws1 session.
pub struct Session {
    ws: WebSocket<TcpStream>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").finish_non_exhaustive()
    }
}

impl Session {
    /// Connects to `login.url`, reads the greeting and logs in; an error says which step failed.
    pub fn login(login: &Login) -> Result<Session> {
        let (host, port, path) = parse_url(&login.url)?;
        let addr = (host.as_str(), port)
            .to_socket_addrs()
            .with_context(|| format!("{}: cannot resolve {host}", login.url))?
            .next()
            .ok_or_else(|| anyhow!("{}: no address for {host}", login.url))?;
        let stream = TcpStream::connect_timeout(&addr, REPLY_TIMEOUT)
            .with_context(|| format!("cannot connect to {addr}"))?;
        stream.set_read_timeout(Some(REPLY_TIMEOUT))?;
        let _ = stream.set_nodelay(true);
        let url = format!("ws://{host}:{port}{path}");
        let (ws, _) = tungstenite::client(url.as_str(), stream)
            .map_err(|e| anyhow!("{url}: websocket upgrade failed: {e}"))?;
        let mut s = Session { ws };
        let greeting = s.recv_text()?;
        let sid = greeting.strip_prefix("+;AUTH0;").ok_or_else(|| {
            anyhow!("{url}: expected the ws1 greeting `+;AUTH0;SID`, got {greeting:?} (is the path /ws1?)")
        })?;
        let line = auth_line(sid, &login.user, &login.password, &login.key)?;
        let reply = s.command(&line)?;
        if !reply.starts_with("+;AUTH1") {
            bail!(
                "login as {:?} refused: {reply} (user, password and --key must match the server's users.json and key file)",
                login.user
            );
        }
        Ok(s)
    }

    /// Sends a command or event line and returns the next reply (events that arrive first are
    /// skipped: only a channel that is open gets them).
    pub fn command(&mut self, line: &str) -> Result<String> {
        self.ws
            .send(Message::text(line))
            .context("cannot send to the server")?;
        loop {
            let text = self.recv_text()?;
            if !text.starts_with("E;") {
                return Ok(text);
            }
        }
    }

    /// The next text message; reads without a time limit when `wait` is false.
    fn recv_text(&mut self) -> Result<String> {
        loop {
            match self.ws.read() {
                Ok(Message::Text(t)) => return Ok(t.to_string()),
                Ok(Message::Close(c)) => bail!(
                    "the server closed the session{}",
                    c.map(|f| format!(": {} {}", u16::from(f.code), f.reason))
                        .unwrap_or_default()
                ),
                Ok(_) => {}
                Err(tungstenite::Error::Io(e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    bail!("no answer from the server within {REPLY_TIMEOUT:?}")
                }
                Err(e) => bail!("connection to the server failed: {e}"),
            }
        }
    }

    /// Opens the channel (after setting the filter, if any) and prints each event until
    /// `count` of them arrived (forever without).
    pub fn subscribe(
        &mut self,
        filter: Option<&str>,
        json: bool,
        count: Option<u64>,
        out: &mut impl Write,
    ) -> Result<()> {
        if let Some(f) = filter {
            let reply = self.command(&format!("C;SF;{f}"))?;
            if reply != "+;SF" {
                bail!("filter {f:?} refused: {reply} (expected FILTER;MASK, e.g. 0,10,6,-;0,0xFFFF,0xFF,-)");
            }
        }
        let reply = self.command("C;OPEN")?;
        if reply != "+;OPEN" {
            bail!("C;OPEN refused: {reply}");
        }
        // Events may be far apart: no read deadline from here on.
        self.ws.get_ref().set_read_timeout(None)?;
        let mut seen = 0u64;
        while count.is_none_or(|n| seen < n) {
            let text = self.recv_text()?;
            let Some(ev) = text.strip_prefix("E;") else {
                continue;
            };
            if json {
                let parsed = vscp_proto::codec::string::parse_event(ev)
                    .map_err(|e| anyhow!("the server sent an event we cannot read ({e}): {ev}"))?;
                let mut s = String::new();
                vscp_proto::codec::json::write_event(&parsed, &mut s);
                writeln!(out, "{s}")?;
            } else {
                writeln!(out, "{ev}")?;
            }
            out.flush()?;
            seen += 1;
        }
        Ok(())
    }

    /// Sends one event (a ws1 event string without `E;`) and returns the server's reply.
    pub fn publish(&mut self, event: &str) -> Result<String> {
        let event = event.trim();
        let event = event.strip_prefix("E;").unwrap_or(event);
        self.command(&format!("E;{event}"))
    }

    /// Says goodbye with a websocket close.
    pub fn close(mut self) {
        let _ = self.ws.close(None);
        let _ = self.ws.flush();
    }
}

/// `ws://HOST:PORT/PATH` into its parts (`PATH` default `/ws1`, `PORT` default 8884).
fn parse_url(url: &str) -> Result<(String, u16, String)> {
    let rest = match url.split_once("://") {
        Some(("ws", rest)) => rest,
        Some((scheme, _)) => bail!(
            "{url}: only ws:// is supported by these clients ({scheme}:// is not); for a wss:// listener use a websocket client with TLS (websocat, wscat), for tcp/ip a line tool"
        ),
        None => url,
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/ws1"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => {
            let port = p
                .parse::<u16>()
                .map_err(|_| anyhow!("{url}: port {p:?} is not a number 1..65535"))?;
            (h.trim_start_matches('[').trim_end_matches(']'), port)
        }
        _ => (authority, 8884),
    };
    if host.is_empty() {
        bail!("{url}: missing host (e.g. ws://127.0.0.1:8884/ws1)");
    }
    Ok((host.to_string(), port, path.to_string()))
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
        let p = |u: &str| parse_url(u).unwrap();
        assert_eq!(
            p("ws://127.0.0.1:9000/ws1"),
            ("127.0.0.1".into(), 9000, "/ws1".into())
        );
        assert_eq!(
            p("ws://localhost"),
            ("localhost".into(), 8884, "/ws1".into())
        );
        assert_eq!(
            p("127.0.0.1:8884"),
            ("127.0.0.1".into(), 8884, "/ws1".into())
        );
        assert_eq!(p("ws://[::1]:8884/x"), ("::1".into(), 8884, "/x".into()));
        assert!(parse_url("wss://h:1/ws1")
            .unwrap_err()
            .to_string()
            .contains("only ws://"));
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
