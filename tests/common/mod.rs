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

    /// Writes a config whose extra keys are merged over the test defaults (port 0).
    pub fn config(&self, extra: serde_json::Value) -> Config {
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
        vscp_websocksrv::start(&cfg, users).expect("server starts")
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
