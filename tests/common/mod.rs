//! Shared helpers for the integration tests: start the real server on 127.0.0.1:0 with two
//! shards and connect real websocket clients to it. The clients themselves (connect, log in,
//! commands, events) are vscp-testkit's, shared with the transports' tests.
//!
//! Every read has a timeout, so a broken server fails a test instead of hanging it.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpStream};
use std::ops::Deref;
pub use vscp_testkit::*;
use vscp_websocksrv::config::Config;
use vscp_websocksrv::ServerHandle;

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

/// A scratch directory with the key and users files.
pub struct Fixture(ScratchDir);

impl Deref for Fixture {
    type Target = ScratchDir;
    fn deref(&self) -> &ScratchDir {
        &self.0
    }
}

impl Fixture {
    pub fn new(tag: &str) -> Fixture {
        Fixture(ScratchDir::with_key_and_users(tag, USERS_JSON))
    }

    /// Writes a config whose extra keys are merged over the test defaults (port 0). With
    /// `VSCP_TEST_TLS=1` the listeners get TLS schemes (`wss://`, `stcp://`) and a test PKI.
    pub fn config(&self, extra: serde_json::Value) -> Config {
        let extra = if tls::tls_mode() {
            self.over_tls(extra)
        } else {
            extra
        };
        let base = serde_json::json!({
            "interface": "127.0.0.1:0",
            "key-file": "vscp.key",
            "path-users": "users.json",
            "max-clients": 1000,
            "metrics-interface": "127.0.0.1:0",
            "logging": {"console-enable-log": false}
        });
        let path = self.join("websocksrv.json");
        write_config(&path, base, extra);
        let (mut cfg, _warnings) = Config::load(&path).expect("test config loads");
        cfg.shards = Some(2);
        cfg
    }

    pub fn start(&self, extra: serde_json::Value) -> ServerHandle {
        self.start_with_users(USERS_JSON, extra)
    }

    /// Like [`Fixture::start`], but with a users.json of the test's own.
    pub fn start_with_users(&self, users_json: &str, extra: serde_json::Value) -> ServerHandle {
        std::fs::write(self.join("users.json"), users_json).unwrap();
        let cfg = self.config(extra);
        let users = vscp_proto::UserDb::from_json(users_json).expect("test users load");
        let srv = vscp_websocksrv::start(&cfg, users).expect("server starts");
        self.register_tls(&srv);
        srv
    }

    /// Makes a test PKI in the fixture's folder (CA, server and client certificates; files
    /// of an earlier one are replaced).
    pub fn pki(&self) -> tls::Pki {
        tls::Pki::new(&self.dir)
    }

    /// `extra` with the listeners on TLS: `interface` (given or the default) as `wss://`, the
    /// tcp/ip listener (given, or on a free port) as `stcp://`, the certificate of a test PKI.
    fn over_tls(&self, mut extra: serde_json::Value) -> serde_json::Value {
        fn secure(addr: &str, scheme: &str) -> String {
            let bare = addr.split_once("://").map_or(addr, |(_, rest)| rest);
            format!("{scheme}://{bare}")
        }
        if !self.join("server.pem").exists() {
            self.pki();
        }
        let map = extra.as_object_mut().expect("extra keys are an object");
        let iface = map
            .get("interface")
            .and_then(|v| v.as_str())
            .unwrap_or("127.0.0.1:0")
            .to_string();
        map.insert("interface".into(), secure(&iface, "wss").into());
        match map.get("tcpip-interface").and_then(|v| v.as_str()) {
            Some("") => {}
            Some(t) => {
                let t = secure(t, "stcp");
                map.insert("tcpip-interface".into(), t.into());
            }
            None => {
                map.insert("tcpip-interface".into(), "stcp://127.0.0.1:0".into());
            }
        }
        map.entry("ssl_certificate")
            .or_insert_with(|| "server.pem".into());
        extra
    }

    /// Tells the clients which of `srv`'s listeners speak TLS (with `VSCP_TEST_TLS=1`).
    pub fn register_tls(&self, srv: &ServerHandle) {
        if !tls::tls_mode() {
            return;
        }
        let config = tls::Pki::client_config_for(&self.join("ca.pem"), None);
        tls::register(srv.local_addr(), config.clone());
        if let Some(a) = srv.tcpip_addr() {
            tls::register(a, config);
        }
    }
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
    sock.connect_timeout(&addr.into(), std::time::Duration::from_secs(5))?;
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

/// Drops the clients first (so the server need not wait for their closing handshakes), then
/// shuts the server down.
pub fn stop(srv: ServerHandle, clients: Vec<Client>) {
    drop(clients);
    srv.shutdown();
}

/// A client of the VSCP tcp/ip link interface: a plain socket speaking lines (CRLF), every
/// read under a timeout.
pub struct Link {
    /// Reads through the buffer, writes through `get_mut()`: a TLS stream cannot be split.
    reader: std::io::BufReader<tls::Stream>,
}

/// How long a tcp/ip reply may take.
pub const LINK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

impl Link {
    /// Connects and reads the greeting up to its `+OK - Success.`; returns it too.
    pub fn connect(addr: SocketAddr) -> (Link, Vec<String>) {
        let stream = TcpStream::connect_timeout(&addr, LINK_TIMEOUT).expect("tcp/ip connect");
        stream.set_read_timeout(Some(LINK_TIMEOUT)).unwrap();
        let mut link = Link::on(tls::Stream::over(stream, addr));
        let greeting = link.reply();
        (link, greeting)
    }

    /// A client on a connected stream; the greeting is not read.
    pub fn on(stream: tls::Stream) -> Link {
        Link {
            reader: std::io::BufReader::new(stream),
        }
    }

    /// Connects and logs in; panics unless both steps succeed.
    pub fn login(addr: SocketAddr, user: &str, password: &str) -> Link {
        let (mut l, _) = Link::connect(addr);
        assert_eq!(
            l.cmd(&format!("user {user}")),
            ["+OK - User name accepted, password please"]
        );
        assert_eq!(l.cmd(&format!("pass {password}")), ["+OK - Success."]);
        l
    }

    /// Writes `line` and CRLF.
    pub fn send(&mut self, line: &str) {
        self.send_raw(format!("{line}\r\n").as_bytes());
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        use std::io::Write;
        let w = self.reader.get_mut();
        w.write_all(bytes).expect("tcp/ip write");
        w.flush().expect("tcp/ip flush");
    }

    /// The next line, without its CRLF (every server line ends with CRLF); `None` at the end
    /// of the stream. Panics on a timeout.
    pub fn next_line(&mut self) -> Option<String> {
        use std::io::BufRead;
        let mut s = String::new();
        match self.reader.read_line(&mut s) {
            Ok(0) => None,
            Ok(_) => {
                assert!(s.ends_with("\r\n"), "line without CRLF: {s:?}");
                s.truncate(s.len() - 2);
                Some(s)
            }
            Err(e) => panic!("tcp/ip read: {e}"),
        }
    }

    pub fn line(&mut self) -> String {
        self.next_line().expect("a line, not the end of the stream")
    }

    /// The next line within `wait`, if any.
    pub fn try_line(&mut self, wait: std::time::Duration) -> Option<String> {
        self.tcp().set_read_timeout(Some(wait)).unwrap();
        use std::io::BufRead;
        let mut s = String::new();
        let r = match self.reader.read_line(&mut s) {
            Ok(0) => None,
            Ok(_) => Some(s.trim_end_matches("\r\n").to_string()),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                assert!(s.is_empty(), "half a line: {s:?}");
                None
            }
            Err(e) => panic!("tcp/ip read: {e}"),
        };
        self.tcp().set_read_timeout(Some(LINK_TIMEOUT)).unwrap();
        r
    }

    fn tcp(&self) -> &TcpStream {
        self.reader.get_ref().tcp()
    }

    /// Lines up to and including the terminal one (`+OK…`/`-OK…`).
    pub fn reply(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            let l = self.line();
            let done = l.starts_with("+OK") || l.starts_with("-OK");
            lines.push(l);
            if done {
                return lines;
            }
        }
    }

    /// Sends a command line, returns its reply lines.
    pub fn cmd(&mut self, line: &str) -> Vec<String> {
        self.send(line);
        self.reply()
    }

    /// Asserts that the server closes the connection (after whatever it sends, which must be
    /// nothing more).
    pub fn expect_closed(&mut self) {
        assert_eq!(self.next_line(), None, "the server should have closed");
    }
}
