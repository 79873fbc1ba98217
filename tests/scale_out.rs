//! Scale-out as deployed: two server *processes* (the real binary, each with its own config)
//! share one MQTT broker; a client on node A and a client on node B exchange events both ways,
//! each delivered once. The broker is rumqttd in this test process, so nothing needs installing.
mod common;
use common::*;
use serde_json::json;
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn start_broker() -> SocketAddr {
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    start_rumqttd(addr, None);
    addr
}

/// A server process, stopped with SIGTERM (and reaped) when dropped.
struct Node {
    child: Child,
    ws: SocketAddr,
    metrics: SocketAddr,
}

impl Node {
    fn start(fx: &Fixture, name: &str, broker: SocketAddr, guid: &str) -> Node {
        let ws = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let metrics = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let cfg = json!({
            "interface": ws.to_string(),
            "metrics-interface": metrics.to_string(),
            // Two servers at once: not both on the tcp/ip default port.
            "tcpip-interface": "",
            "key-file": fx.dir.join("vscp.key"),
            "path-users": fx.dir.join("users.json"),
            "guid": guid,
            "shards": 2,
            "logging": {"console-enable-log": false},
            "mqtt": {
                "host": broker.ip().to_string(), "port": broker.port(),
                "clientid": format!("node-{name}-{{{{rnd}}}}"),
                "keepalive": 5,
                "reconnect": {"delay": 1, "delay-max": 2, "exponential-backoff": false},
                "publish": [{"topic": "scale/{{guid}}/{{class}}/{{type}}", "qos": 1, "format": "json"}],
                "subscribe": [{"topic": "scale/#", "qos": 1, "format": "auto"}]
            }
        });
        let path = fx.dir.join(format!("node-{name}.json"));
        std::fs::write(&path, serde_json::to_string_pretty(&cfg).unwrap()).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_vscp-websocksrv"))
            .arg("--config")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the server binary");
        let node = Node { child, ws, metrics };
        // Ready = listening and connected to the broker.
        let ready = eventually(Duration::from_secs(20), || node.readyz() == Some(200));
        assert!(ready, "node {name} never became ready");
        node
    }

    fn readyz(&self) -> Option<u16> {
        use std::io::{Read, Write};
        let mut s = TcpStream::connect(self.metrics).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        write!(s, "GET /readyz HTTP/1.1\r\nHost: t\r\n\r\n").ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        out.split(' ').nth(1)?.parse().ok()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        terminate(&mut self.child, Duration::from_secs(10));
    }
}

#[test]
fn two_server_processes_on_one_broker_exchange_events_once() {
    let fx = Fixture::new("scale-out");
    let broker = start_broker();
    let a = Node::start(
        &fx,
        "a",
        broker,
        "FF:FF:FF:FF:FF:FF:FF:F5:02:88:88:00:00:00:00:0A",
    );
    let b = Node::start(
        &fx,
        "b",
        broker,
        "FF:FF:FF:FF:FF:FF:FF:F5:02:88:88:00:00:00:00:0B",
    );
    // Subscriptions go out right after CONNACK; give them a moment to settle at the broker.
    std::thread::sleep(Duration::from_millis(300));
    let mut a1 = connect(a.ws, "/ws1");
    let mut b1 = connect(b.ws, "/ws2");
    let mut b2 = connect(b.ws, "/ws1");
    for c in [&mut a1, &mut b1, &mut b2] {
        c.login_open("admin", "secret");
    }
    let quiet = Duration::from_millis(700);

    // A → B: both clients on B get it once; A's sender does not get it back.
    assert_eq!(a1.cmd("E;0,20,3,0,,0,-,0x0A"), "+;EVENT");
    let e = b1.recv_event();
    assert!(e.contains("\"vscpClass\": 20"), "{e}");
    let e = b2.recv_event();
    assert!(e.starts_with("E;0,20,3,"), "{e}");
    assert!(
        e.contains("FF:FF:FF:FF:FF:FF:FF:F5:02:88:88:00:00:00:00:0A"),
        "A's interface GUID: {e}"
    );
    for c in [&mut b1, &mut b2, &mut a1] {
        let extra = c.try_recv_event(quiet);
        assert_eq!(extra, None, "delivered twice");
    }

    // B → A: the client on A gets it once; b1 (same node) once, from the local bus.
    assert_eq!(b2.cmd("E;0,30,5,0,,0,-,0x0B"), "+;EVENT");
    let e = a1.recv_event();
    assert!(e.starts_with("E;0,30,5,"), "{e}");
    let e = b1.recv_event();
    assert!(e.contains("\"vscpClass\": 30"), "{e}");
    for c in [&mut a1, &mut b1, &mut b2] {
        let extra = c.try_recv_event(quiet);
        assert_eq!(extra, None, "delivered twice");
    }
    drop((a1, b1, b2));
    drop((a, b));
}
