//! SIGHUP against the real binary: a changed driver filter and `max-clients` apply to what
//! comes next without dropping sessions; an invalid config is refused with its key and file
//! named, and the running one keeps serving. `/metrics` shows the config generation.

mod common;
use common::*;
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_vscp-websocksrv");

struct Server {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    fn start(config: &std::path::Path) -> Server {
        let mut child = Command::new(BIN)
            .args(["--config", config.to_str().unwrap(), "--shards", "2"])
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("server starts");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (sink, err) = (log.clone(), child.stderr.take().unwrap());
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Server { child, log }
    }

    fn hup(&self) {
        let ok = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    }

    fn logged(&self, what: &str) -> bool {
        self.log.lock().unwrap().iter().any(|l| l.contains(what))
    }

    fn wait_log(&self, what: &str) {
        let seen = eventually(Duration::from_secs(10), || self.logged(what));
        assert!(
            seen,
            "no log line with {what:?}: {:#?}",
            self.log.lock().unwrap()
        );
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// The value of the unlabelled series `name` on the metrics listener at `addr`.
fn metric(addr: std::net::SocketAddr, name: &str) -> f64 {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect to the metrics listener");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read the response");
    let line = out
        .lines()
        .find(|l| l.split(' ').next() == Some(name))
        .unwrap_or_else(|| panic!("{name} not in /metrics: {out}"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

fn write(path: &std::path::Path, cfg: &serde_json::Value) {
    std::fs::write(path, serde_json::to_vec_pretty(cfg).unwrap()).unwrap();
}

#[test]
fn sighup_applies_filters_and_max_clients_and_refuses_a_broken_config() {
    let fx = Fixture::new("reload");
    let port = free_port();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let metrics: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let path = fx.join("websocksrv.json");
    let mut cfg = json!({
        "interface": format!("127.0.0.1:{port}"),
        "tcpip-interface": "",
        "metrics-interface": metrics.to_string(),
        "key-file": "vscp.key",
        "path-users": "users.json",
        "max-clients": 100,
        "logging": {"console-log-level": "info"}
    });
    write(&path, &cfg);
    let srv = Server::start(&path);
    srv.wait_log(" ready ");
    assert_eq!(metric(metrics, "vscp_config_generation"), 1.0);
    let started = metric(metrics, "vscp_config_last_reload_success_timestamp_seconds");
    assert!(started > 1.7e9, "a Unix time: {started}");

    let mut rx = connect(addr, "/ws1");
    rx.login_open("admin", "secret");
    let mut tx = connect(addr, "/ws1");
    tx.login_open("admin", "secret");
    assert_eq!(tx.cmd("E;0,20,3,0,,0,-,1"), "+;EVENT");
    assert!(rx.recv_event().starts_with("E;0,20,3,"));

    // Only class 10 may leave the clients now; at most 3 sessions.
    cfg["filter"] = json!({"out-filter": "0,10,0,-", "out-mask": "0,0xFFFF,0,-"});
    cfg["max-clients"] = json!(3);
    write(&path, &cfg);
    srv.hup();
    srv.wait_log("SIGHUP: in-filter/out-filter");
    srv.wait_log("SIGHUP: max-clients 100 -> 3");
    assert!(!srv.logged("after a restart"), "nothing else changed");
    let generation_is = |n: f64| {
        eventually(Duration::from_secs(5), || {
            metric(metrics, "vscp_config_generation") == n
        })
    };
    assert!(generation_is(2.0), "a valid reload is generation 2");
    assert_eq!(metric(metrics, "vscp_config_last_reload_successful"), 1.0);
    assert_eq!(tx.cmd("E;0,20,3,0,,0,-,2"), "+;EVENT");
    assert_eq!(tx.cmd("E;0,10,6,0,,0,-,3"), "+;EVENT");
    // In order: had the class 20 event passed, it would come first.
    assert!(rx.recv_event().starts_with("E;0,10,6,"));
    // The two sessions stayed; a third fits, a fourth does not.
    let mut third = connect(addr, "/ws1");
    third.login_open("admin", "secret");
    let refused = std::net::TcpStream::connect(addr).and_then(|mut s| {
        use std::io::{Read, Write};
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        s.write_all(b"GET /ws1 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")?;
        let mut answer = String::new();
        s.read_to_string(&mut answer)?;
        Ok(answer)
    });
    let answer = refused.expect("the server answers");
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");

    // A broken config: refused, key and file named, the running one keeps serving.
    cfg["max-clients"] = json!("many");
    write(&path, &cfg);
    srv.hup();
    srv.wait_log("config not reloaded");
    let line = srv
        .log
        .lock()
        .unwrap()
        .iter()
        .find(|l| l.contains("config not reloaded"))
        .cloned()
        .unwrap();
    assert!(
        line.contains("max-clients") && line.contains("websocksrv.json"),
        "{line}"
    );
    let refused = eventually(Duration::from_secs(5), || {
        metric(metrics, "vscp_config_last_reload_successful") == 0.0
    });
    assert!(refused, "the refused reload shows");
    assert_eq!(metric(metrics, "vscp_config_generation"), 2.0);
    assert_eq!(tx.cmd("E;0,20,3,0,,0,-,4"), "+;EVENT");
    assert_eq!(tx.cmd("E;0,10,6,0,,0,-,5"), "+;EVENT");
    assert!(rx.recv_event().starts_with("E;0,10,6,"));
    // A key that needs a restart is named as such, and the rest still applies.
    cfg["max-clients"] = json!(100);
    cfg["max-out-queue"] = json!(10);
    write(&path, &cfg);
    srv.hup();
    srv.wait_log("SIGHUP: max-clients 3 -> 100");
    srv.wait_log("take effect after a restart");
    assert!(
        generation_is(3.0),
        "applied, with a restart still owed for one key"
    );
    assert_eq!(metric(metrics, "vscp_config_last_reload_successful"), 1.0);
    drop((rx, tx, third));
}
