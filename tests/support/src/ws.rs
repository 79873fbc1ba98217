//! A blocking websocket client (tungstenite over a std socket) speaking ws1 or ws2.

use crate::fixture::KEY;
use crate::tls::Stream;
use std::io::ErrorKind;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};
use tungstenite::protocol::WebSocket;
use tungstenite::{HandshakeError, Message, Utf8Bytes};

/// How long one read waits by default before the test fails.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// A logged-out (then, after [`Client::login_open`], logged-in) websocket client.
#[derive(Debug)]
pub struct Client {
    /// The socket, for tests that send or read frames of their own.
    /// Over TLS when the address was registered as a TLS one ([`crate::tls::register`]).
    pub ws: WebSocket<Stream>,
    /// The session id from the AUTH0 greeting (32 hex digits): the AES IV of the login.
    pub sid: String,
    /// `"ws1"` or `"ws2"`, from the path the client connected to.
    pub dialect: &'static str,
    /// The socket's read timeout, and the deadline of every wait for a message.
    read_timeout: Duration,
}

/// Connects to `path` on `addr` and reads the AUTH0 greeting.
pub fn connect(addr: SocketAddr, path: &str) -> Client {
    Client::connect_with_timeout(addr, path, READ_TIMEOUT)
}

/// Upgrades an already connected stream to a websocket on `path` and reads the AUTH0 greeting.
pub fn client_on_stream(stream: TcpStream, addr: SocketAddr, path: &str) -> Client {
    Client::handshake(stream, addr, path, READ_TIMEOUT).expect("websocket handshake")
}

/// How a connection ended when we waited for the server to close it.
#[derive(Debug, PartialEq)]
pub enum Ending {
    /// A close frame arrived (code, reason); `None` for a close frame without a code.
    Close(Option<(u16, String)>),
    /// The connection ended without a close frame (reset, EOF).
    Gone(String),
    /// Nothing ended within the wait.
    Open,
}

/// Whether `m`, read in `dialect`, is a delivered event (a ws1 `E;` line or a ws2 `EVENT`
/// object) rather than a reply.
fn is_event_in(dialect: &str, m: &str) -> bool {
    if dialect == "ws1" {
        m.starts_with("E;")
    } else {
        m.contains("\"EVENT\",  \"event\"")
    }
}

/// A read cut short by a signal handler (EINTR): reads on sockets with a timeout are never
/// restarted by the kernel, and a test process may have handlers (child exits). Nothing was
/// consumed, so the read is simply made again.
fn interrupted(e: &tungstenite::Error) -> bool {
    matches!(e, tungstenite::Error::Io(e) if e.kind() == ErrorKind::Interrupted)
}

fn is_timeout(e: &tungstenite::Error) -> bool {
    matches!(e, tungstenite::Error::Io(e)
        if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::TimedOut)
}

impl Client {
    /// Like [`connect`], with another read timeout (a slowed-down server, e.g. under a memory
    /// checker).
    pub fn connect_with_timeout(addr: SocketAddr, path: &str, read_timeout: Duration) -> Client {
        let stream =
            TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("tcp connect");
        Client::handshake(stream, addr, path, read_timeout).expect("websocket handshake")
    }

    /// The websocket upgrade on `stream`, then the AUTH0 greeting. `Err(status)` when the
    /// server refused the upgrade with an HTTP error; any other failure panics.
    pub fn handshake(
        stream: TcpStream,
        addr: SocketAddr,
        path: &str,
        read_timeout: Duration,
    ) -> Result<Client, u16> {
        stream
            .set_read_timeout(Some(read_timeout))
            .expect("set read timeout");
        stream.set_nodelay(true).expect("set nodelay");
        let stream = Stream::over(stream, addr);
        // The URL only names the request; TLS, if any, is already under `stream`.
        let ws = match tungstenite::client::client(format!("ws://{addr}{path}"), stream) {
            Ok((ws, _resp)) => ws,
            Err(HandshakeError::Failure(tungstenite::Error::Http(resp))) => {
                return Err(resp.status().as_u16())
            }
            Err(e) => panic!("websocket handshake failed: {e}"),
        };
        let dialect = if path.ends_with("ws2") { "ws2" } else { "ws1" };
        let mut c = Client {
            ws,
            sid: String::new(),
            dialect,
            read_timeout,
        };
        let greeting = c.recv_text();
        c.sid = if dialect == "ws1" {
            greeting
                .strip_prefix("+;AUTH0;")
                .unwrap_or_else(|| panic!("ws1 greeting: {greeting}"))
                .to_string()
        } else {
            let v: serde_json::Value =
                serde_json::from_str(&greeting).expect("ws2 greeting is JSON");
            assert_eq!(v["args"][0], "AUTH0", "{greeting}");
            v["args"][1].as_str().expect("sid").to_string()
        };
        assert_eq!(c.sid.len(), 32, "{greeting}");
        Ok(c)
    }

    /// Sends one text message.
    pub fn send(&mut self, text: &str) {
        self.ws
            .send(Message::Text(Utf8Bytes::from(text)))
            .expect("send");
    }

    /// Writes raw bytes straight to the socket (bypassing tungstenite's framing).
    pub fn send_raw(&mut self, bytes: &[u8]) {
        use std::io::Write;
        let s = self.ws.get_mut();
        s.write_all(bytes).expect("raw write");
        s.flush().expect("raw flush");
    }

    /// Next text message; panics on timeout or close.
    pub fn recv_text(&mut self) -> String {
        loop {
            match self.ws.read() {
                Ok(Message::Text(t)) => return t.to_string(),
                Ok(Message::Ping(_)) | Ok(Message::Pong(_)) => continue,
                Ok(other) => panic!("expected text, got {other:?}"),
                Err(e) if interrupted(&e) => continue,
                Err(e) => panic!("read failed: {e}"),
            }
        }
    }

    /// Next text message, or None if nothing arrives within `wait`.
    pub fn try_recv_text(&mut self, wait: Duration) -> Option<String> {
        self.ws
            .get_ref()
            .tcp()
            .set_read_timeout(Some(wait))
            .expect("set read timeout");
        let r = loop {
            match self.ws.read() {
                Ok(Message::Text(t)) => break Some(t.to_string()),
                Ok(Message::Ping(_)) | Ok(Message::Pong(_)) => continue,
                Ok(other) => panic!("expected text, got {other:?}"),
                Err(e) if interrupted(&e) => continue,
                Err(e) if is_timeout(&e) => break None,
                Err(e) => panic!("read failed: {e}"),
            }
        };
        self.ws
            .get_ref()
            .tcp()
            .set_read_timeout(Some(self.read_timeout))
            .expect("set read timeout");
        r
    }

    /// Reads messages until one satisfies `pred` (events may interleave with replies).
    pub fn recv_until(&mut self, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + self.read_timeout;
        while Instant::now() < deadline {
            let m = self.recv_text();
            if pred(&m) {
                return m;
            }
        }
        panic!("no matching message within {:?}", self.read_timeout);
    }

    /// Whether `m` is a delivered event (a ws1 `E;` line or a ws2 `EVENT` object) rather than
    /// a reply.
    pub fn is_event(&self, m: &str) -> bool {
        is_event_in(self.dialect, m)
    }

    /// Sends a command (ws1 line or ws2 JSON text) and returns the next reply that is not an
    /// event.
    pub fn cmd(&mut self, line: &str) -> String {
        self.send(line);
        let dialect = self.dialect;
        self.recv_until(|m| !is_event_in(dialect, m))
    }

    /// Sends a ws2 object and returns the parsed reply that is not an event.
    pub fn cmd2(&mut self, json: serde_json::Value) -> serde_json::Value {
        let r = self.cmd(&json.to_string());
        serde_json::from_str(&r).unwrap_or_else(|e| panic!("reply {r:?} is not JSON: {e}"))
    }

    /// Sends a ws2 command object `{"type":"CMD","command":..,"args":..}`, returns the reply.
    pub fn cmd2_args(&mut self, command: &str, args: serde_json::Value) -> serde_json::Value {
        self.cmd2(serde_json::json!({"type":"CMD","command":command,"args":args}))
    }

    /// Waits for the next delivered event (ws1 line, or ws2 `event` object as JSON text).
    pub fn recv_event(&mut self) -> String {
        let dialect = self.dialect;
        self.recv_until(|m| is_event_in(dialect, m))
    }

    /// The next event within `wait`, if any; replies on the way are dropped.
    pub fn try_recv_event(&mut self, wait: Duration) -> Option<String> {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            let m = self.try_recv_text(left)?;
            if self.is_event(&m) {
                return Some(m);
            }
        }
    }

    /// The AES credential of `user`/`password` for this session (ws1.md §4).
    pub fn crypto(&self, user: &str, password: &str) -> String {
        let iv = vscp_proto::auth::hex_decode_16(&self.sid).expect("sid is hex");
        vscp_proto::auth::encrypt_credentials(&KEY, &iv, user, password)
    }

    /// Logs in and returns the AUTH reply.
    pub fn auth(&mut self, user: &str, password: &str) -> String {
        let crypto = self.crypto(user, password);
        let sid = self.sid.clone();
        if self.dialect == "ws1" {
            self.cmd(&format!("C;AUTH;{sid};{crypto}"))
        } else {
            self.cmd(
                &serde_json::json!({"type":"CMD","command":"AUTH","args":{"iv":sid,"crypto":crypto}})
                    .to_string(),
            )
        }
    }

    /// Logs in and opens the channel; panics if either fails.
    pub fn login_open(&mut self, user: &str, password: &str) {
        let r = self.auth(user, password);
        if self.dialect == "ws1" {
            assert!(r.starts_with("+;AUTH1;"), "login failed: {r}");
            assert_eq!(self.cmd("C;OPEN"), "+;OPEN");
        } else {
            let v: serde_json::Value = serde_json::from_str(&r).expect("AUTH reply is JSON");
            assert_eq!(v["type"], "+", "login failed: {r}");
            let v = self.cmd2(serde_json::json!({"type":"CMD","command":"OPEN","args":null}));
            assert_eq!(v["type"], "+", "open failed: {v}");
        }
    }

    /// Sends NOOP and asserts that the very next message is its reply: proves that nothing was
    /// sent for whatever the client sent before, and that the session still works.
    pub fn assert_noop_next(&mut self) {
        if self.dialect == "ws1" {
            self.send("C;NOOP");
            assert_eq!(self.recv_text(), "+;NOOP");
        } else {
            self.send(r#"{"type":"CMD","command":"NOOP","args":null}"#);
            let r = self.recv_text();
            let v: serde_json::Value = serde_json::from_str(&r).expect("NOOP reply is JSON");
            assert_eq!(
                v,
                serde_json::json!({"type":"+","command":"NOOP","args":null}),
                "{r}"
            );
        }
    }

    /// Reads (and discards) messages until the server closes the connection or `wait` passes.
    /// Answers the close so the server's closing handshake completes.
    pub fn wait_for_close(&mut self, wait: Duration) -> Ending {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ending::Open;
            }
            self.ws
                .get_ref()
                .tcp()
                .set_read_timeout(Some(left))
                .expect("set read timeout");
            match self.ws.read() {
                Ok(Message::Close(frame)) => {
                    let _ = self.ws.flush();
                    return Ending::Close(frame.map(|f| (u16::from(f.code), f.reason.to_string())));
                }
                Ok(_) => continue,
                Err(e) if interrupted(&e) => continue,
                Err(e) if is_timeout(&e) => return Ending::Open,
                Err(e) => return Ending::Gone(e.to_string()),
            }
        }
    }

    /// Waits up to `wait` for the server to end the connection and returns the close code
    /// (`None` if it ended without one); panics if it is still open.
    pub fn close_code_within(&mut self, wait: Duration) -> Option<u16> {
        match self.wait_for_close(wait) {
            Ending::Close(frame) => frame.map(|(code, _)| code),
            Ending::Gone(_) => None,
            Ending::Open => panic!("the server did not close the connection within {wait:?}"),
        }
    }

    /// [`Client::close_code_within`] the read timeout.
    pub fn read_close_code(&mut self) -> Option<u16> {
        self.close_code_within(self.read_timeout)
    }

    /// Starts the closing handshake and goes away without waiting for the answer.
    pub fn close(mut self) {
        let _ = self.ws.close(None);
        let _ = self.ws.flush();
    }
}

/// One masked client frame with the given first byte (FIN/RSV bits + opcode), as RFC 6455
/// lays it out; lets tests send what tungstenite's client refuses to (bad UTF-8, reserved
/// opcodes, fragments).
pub fn raw_frame(first_byte: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![first_byte];
    let len = payload.len();
    if len < 126 {
        f.push(0x80 | len as u8);
    } else if len <= 0xFFFF {
        f.push(0x80 | 126);
        f.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        f.push(0x80 | 127);
        f.extend_from_slice(&(len as u64).to_be_bytes());
    }
    let mask = [0x37u8, 0xFA, 0x21, 0x3D];
    f.extend_from_slice(&mask);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    f
}

/// AES-128-CBC of `plain` (a non-empty multiple of 16 bytes, no padding added) with [`KEY`] and
/// `iv`, as upper-case hex: for padding schemes other than the login's zero padding.
pub fn encrypt_raw(iv: &[u8; 16], plain: &[u8]) -> String {
    use cbc::cipher::{Array, BlockModeEncrypt, KeyIvInit};
    assert!(!plain.is_empty() && plain.len().is_multiple_of(16));
    let mut enc = cbc::Encryptor::<aes::Aes128>::new(&Array::from(KEY), &Array::from(*iv));
    let mut out = String::with_capacity(plain.len() * 2);
    for chunk in plain.chunks_exact(16) {
        let mut block = Array::<u8, _>::default();
        block.copy_from_slice(chunk);
        enc.encrypt_block(&mut block);
        for b in block {
            out.push_str(&format!("{b:02X}"));
        }
    }
    out
}
