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
