//! Quick start acceptance: log in as admin on /ws1 and /ws2, OPEN, send, another client receives.
mod common;
use common::*;
use serde_json::json;

#[test]
fn ws1_event_reaches_ws1_and_ws2_clients() {
    let fx = Fixture::new("smoke");
    let srv = fx.start(json!({}));
    let addr = srv.local_addr();
    let mut a = connect(addr, "/ws1");
    let mut b = connect(addr, "/ws1");
    let mut c = connect(addr, "/ws2");
    a.login_open("admin", "secret");
    b.login_open("admin", "secret");
    c.login_open("admin", "secret");
    assert_eq!(a.cmd("E;0,20,3,0,,0,-,1,2,3"), "+;EVENT");
    let e = b.recv_event();
    assert!(e.starts_with("E;0,20,3,"), "{e}");
    assert!(e.ends_with(",0x01,0x02,0x03"), "{e}");
    let j = c.recv_event();
    let v: serde_json::Value = serde_json::from_str(&j).unwrap();
    assert_eq!(v["type"], "EVENT");
    assert_eq!(v["event"]["vscpClass"], 20);
    assert_eq!(v["event"]["vscpData"], json!([1, 2, 3]));
    srv.shutdown();
}

/// RFC 6455 §5.5.1: a close from the client gets a close back (k6 reported 1006 before).
#[test]
fn client_close_gets_a_close_reply() {
    let fx = Fixture::new("smoke-close");
    let srv = fx.start(json!({}));
    let mut c = connect(srv.local_addr(), "/ws1");
    c.login_open("admin", "secret");
    c.ws.close(None).expect("send close");
    loop {
        match c.ws.read() {
            Ok(_) => continue,
            // tungstenite reports this only once the peer's close frame has arrived.
            Err(tungstenite::Error::ConnectionClosed) => break,
            Err(e) => panic!("no close handshake from the server: {e}"),
        }
    }
    srv.shutdown();
}
