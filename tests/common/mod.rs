//! Shared helpers for the integration tests: start the real server on 127.0.0.1:0 with two
//! shards, connect real websocket clients (tungstenite over std sockets), log in.
//!
//! Every read has a timeout, so a broken server fails a test instead of hanging it.
#![allow(dead_code)]

use std::io::ErrorKind;
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tungstenite::protocol::WebSocket;
use tungstenite::{Message, Utf8Bytes};
use vscp_websocksrv::config::Config;
use vscp_websocksrv::ServerHandle;

/// The sample key in deploy/vscp.key (first 16 bytes).
pub const KEY: [u8; 16] = [
    0x2D, 0xBB, 0x07, 0x9A, 0x38, 0x98, 0x5A, 0xF0, 0x0E, 0xBE, 0xEF, 0xE2, 0x2F, 0x9F, 0xFA, 0x0E,
];

pub const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// A users.json for tests: admin (PBKDF2), user (MD5, no set-filter), a receiver-only user,
/// a user limited to class 10 events, a user with remotes that deny loopback, and one whose
/// user filter only lets class 20 through.
pub const USERS_JSON: &str = r#"{"users":[
 {"name":"admin","password":"487636FDE3637C7C853AAC9EAF6FA062;357C71CA59F760C08C4125C444A22A91FD1FE1FB0E5628771A572BAF6F61B71F",
  "rights":"admin","full-name":"Admin","note":"test admin"},
 {"name":"user","password":"8c3088f1b27432344f14d82033749797","rights":"user"},
 {"name":"vscp","password":"8c92432a556d8dc0b97e9c34fc79725e","rights":"receive-events"},
 {"name":"special1","password":"a0ba1374b1844b64f56c5a95fb64c602","rights":"user","allow-events":"10:*"},
 {"name":"remote","password":"09a09d769a187ae093fa35a2d87f50d8",
  "rights":"admin","remotes":"-127.0.0.0/8,+10.0.0.0/8"},
 {"name":"lan","password":"56f3876a78f3f04817c027f9f91aa5dd","rights":"user","remotes":"+192.168.0.0/16"},
 {"name":"class20","password":"4554f6437cc2b2d6e3504a9f8910a2ce","rights":"user","filter":"0,20,0,-","mask":"0,0xFFFF,0,-"}
]}"#;

/// A temporary directory with the key and users files.
pub struct Fixture {
    pub dir: PathBuf,
}

impl Fixture {
    pub fn new(tag: &str) -> Fixture {
        let dir = std::env::temp_dir().join(format!(
            "vscp-it-{tag}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("vscp.key"), "2DBB079A38985AF00EBEEFE22F9FFA0E\n").unwrap();
        std::fs::write(dir.join("users.json"), USERS_JSON).unwrap();
        Fixture { dir }
    }

    /// Writes a config whose extra keys are merged over the test defaults (port 0).
    pub fn config(&self, extra: serde_json::Value) -> Config {
        let mut cfg = serde_json::json!({
            "interface": "127.0.0.1:0",
            "key-file": "vscp.key",
            "path-users": "users.json",
            "max-clients": 1000,
            "metrics-interface": "127.0.0.1:0",
            "logging": {"console-enable-log": false}
        });
        if let (Some(base), Some(extra)) = (cfg.as_object_mut(), extra.as_object()) {
            for (k, v) in extra {
                base.insert(k.clone(), v.clone());
            }
        }
        let path = self.dir.join("websocksrv.json");
        std::fs::write(&path, serde_json::to_string_pretty(&cfg).unwrap()).unwrap();
        let (mut cfg, _warnings) = Config::load(&path).expect("test config loads");
        cfg.shards = Some(2);
        cfg
    }

    pub fn start(&self, extra: serde_json::Value) -> ServerHandle {
        let cfg = self.config(extra);
        let users = vscp_proto::UserDb::from_json(USERS_JSON).expect("test users load");
        vscp_websocksrv::start(&cfg, users).expect("server starts")
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A blocking websocket client with read timeouts.
pub struct Client {
    pub ws: WebSocket<TcpStream>,
    pub sid: String,
    pub dialect: &'static str,
}

pub fn connect(addr: SocketAddr, path: &str) -> Client {
    connect_from(addr, path)
}

fn connect_from(addr: SocketAddr, path: &str) -> Client {
    let stream = TcpStream::connect(addr).expect("tcp connect");
    stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    stream.set_nodelay(true).unwrap();
    let url = format!("ws://{addr}{path}");
    let (ws, _resp) = tungstenite::client::client(url, stream).expect("websocket handshake");
    let dialect = if path.ends_with("ws2") { "ws2" } else { "ws1" };
    let mut c = Client {
        ws,
        sid: String::new(),
        dialect,
    };
    let greeting = c.recv_text();
    c.sid = if dialect == "ws1" {
        greeting
            .strip_prefix("+;AUTH0;")
            .expect("ws1 greeting")
            .to_string()
    } else {
        let v: serde_json::Value = serde_json::from_str(&greeting).expect("ws2 greeting is JSON");
        assert_eq!(v["args"][0], "AUTH0");
        v["args"][1].as_str().unwrap().to_string()
    };
    assert_eq!(c.sid.len(), 32);
    c
}

impl Client {
    pub fn send(&mut self, text: &str) {
        self.ws
            .send(Message::Text(Utf8Bytes::from(text)))
            .expect("send");
    }

    /// Next text message; panics on timeout or close.
    pub fn recv_text(&mut self) -> String {
        loop {
            match self.ws.read() {
                Ok(Message::Text(t)) => return t.to_string(),
                Ok(Message::Ping(_)) | Ok(Message::Pong(_)) => continue,
                Ok(other) => panic!("expected text, got {other:?}"),
                Err(e) => panic!("read failed: {e}"),
            }
        }
    }

    /// Next text message, or None if nothing arrives within `wait`.
    pub fn try_recv_text(&mut self, wait: Duration) -> Option<String> {
        self.ws.get_ref().set_read_timeout(Some(wait)).unwrap();
        let r = loop {
            match self.ws.read() {
                Ok(Message::Text(t)) => break Some(t.to_string()),
                Ok(Message::Ping(_)) | Ok(Message::Pong(_)) => continue,
                Ok(other) => panic!("expected text, got {other:?}"),
                Err(tungstenite::Error::Io(e))
                    if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::TimedOut =>
                {
                    break None
                }
                Err(e) => panic!("read failed: {e}"),
            }
        };
        self.ws
            .get_ref()
            .set_read_timeout(Some(READ_TIMEOUT))
            .unwrap();
        r
    }

    /// Reads messages until one satisfies `pred` (events may interleave with replies).
    pub fn recv_until(&mut self, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + READ_TIMEOUT;
        while Instant::now() < deadline {
            let m = self.recv_text();
            if pred(&m) {
                return m;
            }
        }
        panic!("no matching message within {READ_TIMEOUT:?}");
    }

    /// Sends a ws1 line and returns the next reply that is not an event.
    pub fn cmd(&mut self, line: &str) -> String {
        self.send(line);
        let ws1 = self.dialect == "ws1";
        self.recv_until(|m| {
            if ws1 {
                !m.starts_with("E;")
            } else {
                !m.contains("\"EVENT\",  \"event\"")
            }
        })
    }

    /// Sends a ws2 object and returns the parsed reply that is not an event.
    pub fn cmd2(&mut self, json: serde_json::Value) -> serde_json::Value {
        let r = self.cmd(&json.to_string());
        serde_json::from_str(&r).unwrap_or_else(|e| panic!("reply {r:?} is not JSON: {e}"))
    }

    pub fn crypto(&self, user: &str, password: &str) -> String {
        let iv = vscp_proto::auth::hex_decode_16(&self.sid).expect("sid is hex");
        vscp_proto::auth::encrypt_credentials(&KEY, &iv, user, password)
    }

    /// Logs in and returns the AUTH reply.
    pub fn auth(&mut self, user: &str, password: &str) -> String {
        let crypto = self.crypto(user, password);
        if self.dialect == "ws1" {
            let sid = self.sid.clone();
            self.cmd(&format!("C;AUTH;{sid};{crypto}"))
        } else {
            let iv = self.sid.clone();
            self.cmd(&serde_json::json!({"type":"CMD","command":"AUTH","args":{"iv":iv,"crypto":crypto}}).to_string())
        }
    }

    /// Logs in and opens the channel; panics if either fails.
    pub fn login_open(&mut self, user: &str, password: &str) {
        let r = self.auth(user, password);
        if self.dialect == "ws1" {
            assert!(r.starts_with("+;AUTH1;"), "login failed: {r}");
            assert_eq!(self.cmd("C;OPEN"), "+;OPEN");
        } else {
            let v: serde_json::Value = serde_json::from_str(&r).unwrap();
            assert_eq!(v["type"], "+", "login failed: {r}");
            let v = self.cmd2(serde_json::json!({"type":"CMD","command":"OPEN","args":null}));
            assert_eq!(v["type"], "+");
        }
    }

    /// Waits for the next delivered event line/object and returns it.
    pub fn recv_event(&mut self) -> String {
        if self.dialect == "ws1" {
            self.recv_until(|m| m.starts_with("E;"))
        } else {
            self.recv_until(|m| m.contains("\"EVENT\",  \"event\""))
        }
    }

    pub fn close(mut self) {
        let _ = self.ws.close(None);
        let _ = self.ws.flush();
    }
}

/// Polls `f` until it returns true or `timeout` passes.
pub fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    f()
}

// ---- Helpers for tests/routing.rs, tests/limits.rs, tests/flood.rs ----

// (`Fixture::start_with_users` is defined further down.)

/// Upgrades an already connected stream to a websocket on `path` and reads the AUTH0 greeting.
pub fn client_on_stream(stream: TcpStream, addr: SocketAddr, path: &str) -> Client {
    stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    stream.set_nodelay(true).unwrap();
    let url = format!("ws://{addr}{path}");
    let (ws, _resp) = tungstenite::client::client(url, stream).expect("websocket handshake");
    let dialect = if path.ends_with("ws2") { "ws2" } else { "ws1" };
    let mut c = Client {
        ws,
        sid: String::new(),
        dialect,
    };
    let greeting = c.recv_text();
    c.sid = if dialect == "ws1" {
        greeting
            .strip_prefix("+;AUTH0;")
            .expect("ws1 greeting")
            .to_string()
    } else {
        let v: serde_json::Value = serde_json::from_str(&greeting).expect("ws2 greeting is JSON");
        assert_eq!(v["args"][0], "AUTH0");
        v["args"][1].as_str().unwrap().to_string()
    };
    assert_eq!(c.sid.len(), 32);
    c
}

/// A TCP connection to `addr` whose local end is bound to `local` first (e.g. 127.0.0.2, so
/// the server sees that peer address).
pub fn tcp_from(addr: SocketAddr, local: std::net::IpAddr) -> std::io::Result<TcpStream> {
    let domain = if addr.is_ipv4() {
        socket2::Domain::IPV4
    } else {
        socket2::Domain::IPV6
    };
    let sock = socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP))?;
    sock.bind(&SocketAddr::new(local, 0).into())?;
    sock.connect_timeout(&addr.into(), Duration::from_secs(5))?;
    Ok(sock.into())
}

/// Connects from the local address `local` (see [`tcp_from`]).
pub fn connect_bound(addr: SocketAddr, local: std::net::IpAddr, path: &str) -> Client {
    let stream = tcp_from(addr, local).expect("bound tcp connect");
    client_on_stream(stream, addr, path)
}

/// Connects and tells which shard accepted the connection (the one whose `sessions_accepted`
/// grew). Only meaningful while no other connection to `srv` is being set up at the same time.
pub fn connect_tracked(srv: &ServerHandle, path: &str) -> (Client, usize) {
    let before: Vec<u64> = srv
        .shard_stats()
        .iter()
        .map(|s| s.sessions_accepted)
        .collect();
    let c = connect(srv.local_addr(), path);
    // The counter is bumped before the greeting is written, so it is visible by now.
    let after: Vec<u64> = srv
        .shard_stats()
        .iter()
        .map(|s| s.sessions_accepted)
        .collect();
    let grew: Vec<usize> = (0..after.len()).filter(|&i| after[i] > before[i]).collect();
    assert_eq!(
        grew.len(),
        1,
        "exactly one shard accepted: {before:?} -> {after:?}"
    );
    (c, grew[0])
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

impl Client {
    /// Reads (and discards) messages until the server closes the connection or `wait` passes.
    /// Answers the close so the server's closing handshake completes.
    pub fn wait_for_close(&mut self, wait: Duration) -> Ending {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ending::Open;
            }
            self.ws.get_ref().set_read_timeout(Some(left)).unwrap();
            match self.ws.read() {
                Ok(Message::Close(frame)) => {
                    let _ = self.ws.flush();
                    return Ending::Close(frame.map(|f| (u16::from(f.code), f.reason.to_string())));
                }
                Ok(_) => continue,
                Err(tungstenite::Error::Io(e))
                    if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::TimedOut =>
                {
                    return Ending::Open
                }
                Err(e) => return Ending::Gone(e.to_string()),
            }
        }
    }
}

/// Connects to `path` until a connection lands on shard `shard` (the kernel picks the shard
/// by 4-tuple hash); connections that land elsewhere are closed.
pub fn connect_on_shard(srv: &ServerHandle, path: &str, shard: usize) -> Client {
    for _ in 0..64 {
        let (c, got) = connect_tracked(srv, path);
        if got == shard {
            return c;
        }
        c.close();
    }
    panic!("64 connections in a row missed shard {shard}");
}

// ---------------------------------------------------------------------------------------------
// Helpers for ws1_commands.rs, ws2_commands.rs and bad_input.rs.

impl Fixture {
    /// Like [`Fixture::start`], but with a users.json of the test's own.
    pub fn start_with_users(&self, users_json: &str, extra: serde_json::Value) -> ServerHandle {
        std::fs::write(self.dir.join("users.json"), users_json).unwrap();
        let cfg = self.config(extra);
        let users = vscp_proto::UserDb::from_json(users_json).expect("test users load");
        vscp_websocksrv::start(&cfg, users).expect("server starts")
    }
}

/// Drops the clients first (so the server need not wait for their closing handshakes), then
/// shuts the server down.
pub fn stop(srv: ServerHandle, clients: Vec<Client>) {
    drop(clients);
    srv.shutdown();
}

/// AES-128-CBC of `plain` (a non-empty multiple of 16 bytes, no padding added) with [`KEY`] and
/// `iv`, as upper-case hex: for padding schemes other than the harness's zero padding.
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

impl Client {
    /// Writes raw bytes straight to the socket (bypassing tungstenite's framing).
    pub fn send_raw(&mut self, bytes: &[u8]) {
        use std::io::Write;
        let s = self.ws.get_mut();
        s.write_all(bytes).expect("raw write");
        s.flush().unwrap();
    }

    /// Sends a ws2 command object `{"type":"CMD","command":..,"args":..}`, returns the reply.
    pub fn cmd2_args(&mut self, command: &str, args: serde_json::Value) -> serde_json::Value {
        self.cmd2(serde_json::json!({"type":"CMD","command":command,"args":args}))
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

    /// Reads until the server's close frame and returns its code (`None` if the connection
    /// ended without one).
    pub fn read_close_code(&mut self) -> Option<u16> {
        let deadline = Instant::now() + READ_TIMEOUT;
        while Instant::now() < deadline {
            match self.ws.read() {
                Ok(Message::Close(Some(f))) => return Some(f.code.into()),
                Ok(Message::Close(None)) => return None,
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
        panic!("no close within {READ_TIMEOUT:?}");
    }
}
