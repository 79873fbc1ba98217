//! The uplink interface (what the MQTT bridge and the vscpd host sit behind): client events
//! reach the uplink, uplink events reach clients of both dialects on every shard, and the
//! driver-level in/out filters apply on the way.
mod common;
use common::*;
use serde_json::json;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;
use vscp_proto::{Event, Guid};
use vscp_websocksrv::uplink::{Uplink, UplinkPorts};

/// Records what it receives and injects what the test sends it.
struct TestUplink {
    seen: Arc<Mutex<Vec<Event>>>,
    inject: mpsc::Receiver<Event>,
}

impl Uplink for TestUplink {
    fn name(&self) -> &'static str {
        "test"
    }

    fn run(self: Box<Self>, ports: UplinkPorts) -> Pin<Box<dyn Future<Output = ()>>> {
        Box::pin(async move {
            let ports = Rc::new(ports);
            let tx_ports = ports.clone();
            let inject = self.inject;
            let injector = glommio::spawn_local(async move {
                loop {
                    while let Ok(ev) = inject.try_recv() {
                        tx_ports.send(ev).await;
                    }
                    glommio::timer::sleep(Duration::from_millis(5)).await;
                }
            });
            while let Some(ev) = ports.recv().await {
                self.seen.lock().unwrap().push(ev.event.clone());
            }
            injector.cancel().await;
        })
    }
}

struct Harness {
    srv: vscp_websocksrv::ServerHandle,
    seen: Arc<Mutex<Vec<Event>>>,
    inject: mpsc::Sender<Event>,
    _fx: Fixture,
}

fn start(tag: &str, extra: serde_json::Value) -> Harness {
    let fx = Fixture::new(tag);
    let cfg = fx.config(extra);
    let users = vscp_proto::UserDb::from_json(USERS_JSON).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (inject, rx) = mpsc::channel();
    let uplink = TestUplink {
        seen: seen.clone(),
        inject: rx,
    };
    let srv = vscp_websocksrv::start_with_uplink(&cfg, users, Some(Box::new(uplink)))
        .expect("server starts");
    fx.register_tls(&srv);
    Harness {
        srv,
        seen,
        inject,
        _fx: fx,
    }
}

fn uplink_event(class: u16, vscp_type: u16, data: &[u8]) -> Event {
    Event {
        head: 0x60,
        class,
        vscp_type,
        obid: 0,
        timestamp: 42,
        datetime: vscp_proto::DateTime::parse("2024-03-01T12:34:56Z").unwrap(),
        guid: Guid::parse("FF:FF:FF:FF:FF:FF:FF:F5:00:00:00:00:00:02:00:00").unwrap(),
        data: data.to_vec(),
    }
}

#[test]
fn client_events_reach_the_uplink_with_every_field() {
    let h = start(
        "uplink-in",
        json!({"guid": "FF:FF:FF:FF:FF:FF:FF:F5:02:88:88:00:00:00:00:01"}),
    );
    let mut a = connect(h.srv.local_addr(), "/ws1");
    a.login_open("admin", "secret");
    assert_eq!(
        a.cmd("E;0x60,10,6,0,2024-03-01T12:34:56Z,123456789,-,0x88,0x82,0x09,0xC4"),
        "+;EVENT"
    );
    let mut b = connect(h.srv.local_addr(), "/ws2");
    b.login_open("admin", "secret");
    let r = b.cmd2(json!({"type":"EVENT","event":{"vscpClass":20,"vscpType":3,"vscpGuid":"FF:FF:FF:FF:FF:FF:FF:F5:00:00:00:00:00:05:00:00","vscpData":[1,2,3]}}));
    assert_eq!(r["type"], "+");
    assert!(eventually(Duration::from_secs(5), || h
        .seen
        .lock()
        .unwrap()
        .len()
        == 2));
    let seen = h.seen.lock().unwrap().clone();
    let ws1 = seen
        .iter()
        .find(|e| e.class == 10)
        .expect("ws1 event at the uplink");
    assert_eq!(ws1.head, 0x60);
    assert_eq!(ws1.vscp_type, 6);
    assert_eq!(ws1.timestamp, 123456789);
    assert_eq!(ws1.data, vec![0x88, 0x82, 0x09, 0xC4]);
    // The all-zero GUID was replaced by the interface GUID, and obid is the connection id.
    assert_eq!(
        ws1.guid.to_string(),
        "FF:FF:FF:FF:FF:FF:FF:F5:02:88:88:00:00:00:00:01"
    );
    assert_ne!(ws1.obid, 0);
    let ws2 = seen
        .iter()
        .find(|e| e.class == 20)
        .expect("ws2 event at the uplink");
    assert_eq!(
        ws2.guid.to_string(),
        "FF:FF:FF:FF:FF:FF:FF:F5:00:00:00:00:00:05:00:00"
    );
    assert_eq!(ws2.data, vec![1, 2, 3]);
    assert!(!ws2.datetime.is_unset(), "an unset date is stamped");
    assert_ne!(ws2.obid, ws1.obid);
    drop((a, b));
    h.srv.shutdown();
}

#[test]
fn uplink_events_reach_clients_of_both_dialects_on_every_shard() {
    let h = start("uplink-out", json!({}));
    let addr = h.srv.local_addr();
    let mut clients: Vec<Client> = (0..6)
        .map(|i| {
            let mut c = connect(addr, if i % 2 == 0 { "/ws1" } else { "/ws2" });
            c.login_open("admin", "secret");
            c
        })
        .collect();
    h.inject
        .send(uplink_event(10, 6, &[0x88, 0x82, 0x09, 0xC4]))
        .unwrap();
    for c in clients.iter_mut() {
        let e = c.recv_event();
        if c.dialect == "ws1" {
            assert_eq!(
                e,
                "E;96,10,6,0,2024-03-01T12:34:56Z,42,FF:FF:FF:FF:FF:FF:FF:F5:00:00:00:00:00:02:00:00,0x88,0x82,0x09,0xC4"
            );
        } else {
            let v: serde_json::Value = serde_json::from_str(&e).unwrap();
            assert_eq!(v["event"]["vscpData"], json!([136, 130, 9, 196]));
            assert_eq!(
                v["event"]["vscpGuid"],
                "FF:FF:FF:FF:FF:FF:FF:F5:00:00:00:00:00:02:00:00"
            );
        }
    }
    // Events from the uplink are not sent back to it.
    std::thread::sleep(Duration::from_millis(100));
    assert!(h.seen.lock().unwrap().is_empty());
    drop(clients);
    h.srv.shutdown();
}

#[test]
fn driver_filters_apply_between_clients_and_the_uplink() {
    let h = start(
        "uplink-filter",
        json!({"filter": {"in-filter": "0,10,0,-", "in-mask": "0,0xFFFF,0,-",
                          "out-filter": "0,30,0,-", "out-mask": "0,0xFFFF,0,-"}}),
    );
    let mut c = connect(h.srv.local_addr(), "/ws1");
    c.login_open("admin", "secret");
    // in-filter: only class 10 from the uplink reaches clients.
    h.inject.send(uplink_event(20, 3, &[1])).unwrap();
    h.inject.send(uplink_event(10, 6, &[2])).unwrap();
    let e = c.recv_event();
    assert!(e.starts_with("E;96,10,6,"), "{e}");
    assert_eq!(c.try_recv_text(Duration::from_millis(200)), None);
    // out-filter: only class 30 from clients reaches the uplink; others are acked but dropped.
    assert_eq!(c.cmd("E;0,20,3,0,,0,-,1"), "+;EVENT");
    assert_eq!(c.cmd("E;0,30,5,0,,0,-,1"), "+;EVENT");
    assert!(eventually(Duration::from_secs(5), || !h
        .seen
        .lock()
        .unwrap()
        .is_empty()));
    std::thread::sleep(Duration::from_millis(100));
    let seen = h.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].class, 30);
    assert!(
        h.srv
            .stats()
            .dropped(vscp_websocksrv::stats::DropReason::Filter)
            >= 2
    );
    drop(c);
    h.srv.shutdown();
}

/// tcp/ip clients are on the same bus: what they send reaches the uplink with the tcp/ip
/// interface GUID rule (tcp.md §2.3), and what the uplink sends reaches them.
#[test]
fn tcp_clients_send_to_and_receive_from_the_uplink() {
    let h = start(
        "uplink-tcp",
        json!({"guid": "FF:FF:FF:FF:FF:FF:FF:F5:02:88:88:00:00:00:00:01"}),
    );
    let addr = h.srv.tcpip_addr().expect("tcp/ip listener");
    let mut rx = Link::login(addr, "admin", "secret");
    assert_eq!(
        rx.cmd("rcvloop")[0],
        "+OK - Receive loop entered. QUITLOOP to terminate."
    );
    let mut tx = Link::login(addr, "admin", "secret");
    assert_eq!(tx.cmd("send 0,20,3,,,,-,0,1,35"), ["+OK - Success."]);
    let chid: u32 = tx.cmd("chid")[0].parse().unwrap();
    assert!(eventually(Duration::from_secs(5), || h
        .seen
        .lock()
        .unwrap()
        .len()
        == 1));
    let ev = h.seen.lock().unwrap()[0].clone();
    assert_eq!(
        (ev.class, ev.vscp_type, ev.data.clone()),
        (20, 3, vec![0, 1, 35])
    );
    assert_eq!(ev.obid, chid);
    // The server GUID with the channel id in bytes 12-13.
    let [hi, lo] = (chid as u16).to_be_bytes();
    assert_eq!(
        ev.guid.to_string(),
        format!("FF:FF:FF:FF:FF:FF:FF:F5:02:88:88:00:{hi:02X}:{lo:02X}:00:00")
    );
    // The looping tcp/ip client saw it too, then gets the uplink's event.
    let own = rx.line();
    assert!(
        own.starts_with("0,20,3,") && own.ends_with(",0x00,0x01,0x23"),
        "{own}"
    );
    h.inject.send(uplink_event(10, 6, &[7, 8])).unwrap();
    let line = loop {
        let l = rx.line();
        if l != "+OK" {
            break l;
        }
    };
    assert_eq!(
        line,
        "96,10,6,0,2024-03-01T12:34:56Z,42,FF:FF:FF:FF:FF:FF:FF:F5:00:00:00:00:00:02:00:00,0x07,0x08"
    );
    h.srv.shutdown();
}
