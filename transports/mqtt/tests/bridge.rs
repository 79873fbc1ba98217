//! End-to-end tests of the MQTT bridge: the real server with the MQTT uplink, a real broker
//! (rumqttd in process; Mosquitto when `VSCP_TEST_MOSQUITTO` names its binary, see
//! `.ci/mqtt-mosquitto`), real websocket clients and an independent MQTT client.
//!
//! The acceptance points of issue 3 each have a test here:
//! 2. `client_event_reaches_an_independent_subscriber_in_every_format_*`
//! 3. `broker_messages_reach_ws1_and_ws2_in_every_subscribe_format`
//! 4. `broker_restart_mid_stream_delivers_every_buffered_event_once`
//! 5. `two_servers_exchange_events_both_ways_once_*`
//!
//! Issue 12: `a_slow_broker_makes_publishers_wait_and_nothing_is_dropped` (and its
//! counterpart with `backpressure: false`, which shows the same load losing events); broker away
//! with a full buffer dropping oldest is `broker_restart_mid_stream_…` above;
//! `with_ack_from_broker_*` (reply after the PUBACK and in order, the timeout reply, a broker
//! restart losing nothing acknowledged); `a_stop_fails_readyz_publishes_what_is_held_…`.
mod common;

use common::*;
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use vscp_mqtt::codec::{Protocol, QoS};
use vscp_mqtt::payload::{PublishFormat, SubscribeFormat};
use vscp_proto::{DateTime, Event, Guid};

const E2_WS1: &str = "E;0x60,10,6,0,2024-03-01T12:34:56Z,123456789,FF:FF:FF:FF:FF:FF:FF:F5:00:00:00:00:00:02:00:00,0x88,0x82,0x09,0xC4";
const E2_GUID: &str = "FF:FF:FF:FF:FF:FF:FF:F5:00:00:00:00:00:02:00:00";

fn proto_version(p: Protocol) -> u32 {
    match p {
        Protocol::V311 => 311,
        Protocol::V5 => 500,
    }
}

/// The bridge's connection settings for `broker`, merged with `rest`.
fn mqtt_block(broker: &Broker, protocol: Protocol, rest: serde_json::Value) -> serde_json::Value {
    let addr = broker.addr(protocol);
    let mut v = json!({
        "host": addr.ip().to_string(),
        "port": addr.port(),
        "clientid": "websocksrv-{{rnd}}",
        "keepalive": 10,
        "bcleansession": false,
        "mqtt-options": {"protocol-version": proto_version(protocol)},
        "reconnect": {"delay": 1, "delay-max": 2, "exponential-backoff": true},
    });
    for (k, val) in rest.as_object().expect("object") {
        v[k] = val.clone();
    }
    v
}

fn e2(obid: u32, timestamp: u32) -> Event {
    Event {
        head: 0x60,
        class: 10,
        vscp_type: 6,
        obid,
        timestamp,
        datetime: DateTime::parse("2024-03-01T12:34:56Z").unwrap(),
        guid: Guid::parse(E2_GUID).unwrap(),
        data: vec![0x88, 0x82, 0x09, 0xC4],
    }
}

fn hex(s: &str) -> Vec<u8> {
    let d: Vec<u8> = s.bytes().filter(u8::is_ascii_hexdigit).collect();
    d.chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
        .collect()
}

// ---- acceptance 2 ----------------------------------------------------------------------------

fn publish_formats(protocol: Protocol, tag: &str) {
    let broker = Broker::start(tag);
    let mut sub = MqttClient::connect(broker.addr(protocol), &format!("{tag}-sub"), protocol, true)
        .expect("subscriber connects");
    sub.subscribe("it/#", QoS::AtLeastOnce).unwrap();
    // In Mosquitto mode, mosquitto_sub checks the same bytes as a fully independent client.
    let tool = ToolSub::start(&broker, protocol, "it/#", "it/probe");
    let node = Node::start(
        tag,
        mqtt_block(
            &broker,
            protocol,
            json!({
                "bjsonmeasurementblock": true,
                "publish": [
                    {"topic": "it/json/{{guid}}/{{class}}/{{type}}/{{nodeid}}", "qos": 1, "retain": false, "format": "json"},
                    {"topic": "it/xml/{{class}}/{{type}}", "qos": 1, "format": "xml"},
                    {"topic": "it/string/{{class}}/{{type}}", "qos": 0, "format": "string"},
                    {"topic": "it/binary/{{class}}/{{type}}", "qos": 1, "format": "binary"}
                ]
            }),
        ),
        json!({}),
    );
    node.wait_connected();
    let mut c = connect_ws(node.addr(), "/ws1");
    c.login_open("admin", "secret");
    assert_eq!(c.cmd(E2_WS1), "+;EVENT");

    let mut got = BTreeMap::new();
    while got.len() < 4 {
        let m = sub
            .recv(Duration::from_secs(10))
            .unwrap()
            .unwrap_or_else(|| panic!("only {} of 4 publishes arrived: {got:?}", got.len()));
        if m.topic != "it/probe" {
            got.insert(m.topic.clone(), m.payload.to_vec());
        }
    }
    if let Some(tool) = &tool {
        let mut seen = BTreeMap::new();
        while seen.len() < 4 {
            let (topic, payload) = tool
                .next(Duration::from_secs(10))
                .expect("mosquitto_sub got every publish");
            seen.insert(topic, payload);
        }
        assert_eq!(seen, got, "mosquitto_sub sees the same topics and bytes");
    }
    // The server set obid to the connection id; everything else is the client's event.
    let json_topic = format!("it/json/{E2_GUID}/10/6/0");
    let json_payload = String::from_utf8(got[&json_topic].clone()).unwrap();
    let v: serde_json::Value = serde_json::from_str(&json_payload).unwrap();
    let obid = v["vscpObId"].as_u64().expect("vscpObId");
    assert_ne!(obid, 0);
    // vectors.md M1 with this obid, byte for byte.
    assert_eq!(
        json_payload,
        format!(
            r#"{{"measurement":{{"sensorindex":0,"subzone":0,"unit":1,"value":25.0,"zone":0}},"vscpClass":10,"vscpData":[136,130,9,196],"vscpDateTime":"2024-03-01T12:34:56Z","vscpGuid":"{E2_GUID}","vscpHead":96,"vscpNote":"","vscpObId":{obid},"vscpTimeStamp":123456789,"vscpType":6}}"#
        )
    );
    assert_eq!(
        String::from_utf8(got["it/xml/10/6"].clone()).unwrap(),
        format!(
            "<event vscpHead=\"96\" vscpObId=\"{obid}\" vscpDateTime=\"2024-03-01T12:34:56Z\" vscpTimeStamp=\"123456789\" vscpClass=\"10\" vscpType=\"6\" vscpGuid=\"{E2_GUID}\" vscpData=\"0x88,0x82,0x09,0xC4\" />"
        )
    );
    assert_eq!(
        String::from_utf8(got["it/string/10/6"].clone()).unwrap(),
        format!("96,10,6,{obid},2024-03-01T12:34:56Z,123456789,{E2_GUID},0x88,0x82,0x09,0xC4")
    );
    // vectors.md B: the 0x00 marker and the 42-byte frame.
    assert_eq!(
        got["it/binary/10/6"],
        hex("00 00 0060 075BCD15 07E803010C2238 000A 0006 FFFFFFFFFFFFFFF50000000000020000 0004 888209C4 66D4")
    );
    let s = node.stats.snapshot();
    assert_eq!((s.events_from_sessions, s.publications), (1, 4));
    drop(c);
    node.srv.shutdown();
}

#[test]
fn client_event_reaches_an_independent_subscriber_in_every_format_v311() {
    publish_formats(Protocol::V311, "pub311");
}

#[test]
fn client_event_reaches_an_independent_subscriber_in_every_format_v5() {
    publish_formats(Protocol::V5, "pub5");
}

// ---- acceptance 3 ----------------------------------------------------------------------------

#[test]
fn broker_messages_reach_ws1_and_ws2_in_every_subscribe_format() {
    let tag = "sub";
    let broker = Broker::start(tag);
    let node = Node::start(
        tag,
        mqtt_block(
            &broker,
            Protocol::V311,
            json!({
                "subscribe-format": "auto",
                "subscribe": [
                    {"topic": "in/json/#", "qos": 1, "format": "json"},
                    {"topic": "in/xml/#", "qos": 1, "format": "xml"},
                    {"topic": "in/string/#", "qos": 0, "format": "string"},
                    {"topic": "in/binary/#", "qos": 1, "format": "binary"},
                    {"topic": "in/auto/#", "qos": 1}
                ]
            }),
        ),
        json!({}),
    );
    node.wait_connected();
    let mut clients: Vec<Client> = ["/ws1", "/ws2", "/ws1", "/ws2"]
        .iter()
        .map(|p| {
            let mut c = connect_ws(node.addr(), p);
            c.login_open("admin", "secret");
            c
        })
        .collect();

    // In Mosquitto mode the messages come from mosquitto_pub, a fully independent client.
    let mut publisher = MqttClient::connect(
        broker.addr(Protocol::V311),
        "publisher",
        Protocol::V311,
        true,
    )
    .unwrap();
    let mut publish = |topic: &str, payload: &[u8]| {
        if broker.is_mosquitto() {
            tool_publish(&broker, Protocol::V311, topic, payload);
        } else {
            publisher.publish(topic, payload, QoS::AtLeastOnce).unwrap();
        }
    };
    let payload = |f: PublishFormat, ts: u32| {
        let mut p = Vec::new();
        vscp_mqtt::payload::encode(&e2(17, ts), f, true, &mut p);
        p
    };
    let formats = [
        ("json", PublishFormat::Json),
        ("xml", PublishFormat::Xml),
        ("string", PublishFormat::String),
        ("binary", PublishFormat::Binary),
    ];
    let mut ts = 0;
    for (name, f) in formats {
        ts += 1;
        publish(&format!("in/{name}/x"), &payload(f, ts));
    }
    for (_, f) in formats {
        ts += 1;
        publish("in/auto/x", &payload(f, ts));
    }
    // Malformed: undetectable, and JSON on a topic declared `string`. Counted, never delivered.
    publish("in/auto/x", b"hello");
    publish("in/string/x", &payload(PublishFormat::Json, 99));

    for c in clients.iter_mut() {
        let mut seen = Vec::new();
        for _ in 0..8 {
            let e = c.recv_event();
            let ev = if c.dialect == "ws1" {
                vscp_proto::codec::string::parse_event(e.strip_prefix("E;").unwrap()).unwrap()
            } else {
                let v: serde_json::Value = serde_json::from_str(&e).unwrap();
                let mut text = v["event"].to_string().into_bytes();
                vscp_proto::codec::json::parse_event_text(&mut text).unwrap()
            };
            // The binary form carries no obid.
            let obid = if ev.obid == 0 { 0 } else { 17 };
            assert_eq!(ev, e2(obid, ev.timestamp), "{e}");
            seen.push(ev.timestamp);
        }
        seen.sort_unstable();
        assert_eq!(seen, (1..=8).collect::<Vec<_>>(), "{}", c.dialect);
        assert_eq!(c.try_recv_event(Duration::from_millis(300)), None);
    }
    let s = node.stats.snapshot();
    assert_eq!(s.malformed, 2, "{s:?}");
    assert_eq!(s.events_to_sessions, 8, "{s:?}");
    assert_eq!(s.connected, 1, "malformed payloads never hurt the bridge");
    drop(clients);
    node.srv.shutdown();
}

// ---- acceptance 4 ----------------------------------------------------------------------------

fn seq_event(seq: u16) -> String {
    let [hi, lo] = seq.to_be_bytes();
    format!("E;0,20,3,0,,0,-,{hi},{lo}")
}

#[test]
fn broker_restart_mid_stream_delivers_every_buffered_event_once() {
    let tag = "restart";
    let mut broker = Broker::start(tag);
    let collector = Collector::start(broker.observer_addr(), "collector-restart", "rs/#");
    let node = Node::start(
        tag,
        mqtt_block(
            &broker,
            Protocol::V311,
            json!({
                "keepalive": 5,
                "max-offline-events": 10,
                "publish": [{"topic": "rs/{{class}}/{{type}}", "qos": 1, "format": "string"}]
            }),
        ),
        json!({"metrics-interface": "127.0.0.1:0"}),
    );
    node.wait_connected();
    let maddr = node.srv.metrics_addr().expect("metrics enabled");
    // /readyz and the uplink gauge follow the broker connection.
    assert!(eventually(Duration::from_secs(5), || readyz(maddr) == 200));
    assert!(scrape_has(
        maddr,
        "vscp_uplink_connected{uplink=\"mqtt\"} 1"
    ));
    let mut c = connect_ws(node.addr(), "/ws1");
    c.login_open("admin", "secret");

    let send = |c: &mut Client, range: std::ops::RangeInclusive<u16>| {
        for seq in range {
            assert_eq!(c.cmd(&seq_event(seq)), "+;EVENT");
        }
    };
    send(&mut c, 1..=10);
    assert!(
        eventually(Duration::from_secs(10), || collector.count() >= 10),
        "first part of the stream: {}",
        collector.count()
    );
    // Let the last PUBACKs land so nothing is in flight when the broker goes away.
    std::thread::sleep(Duration::from_millis(300));

    broker.stop();
    assert!(
        eventually(Duration::from_secs(15), || node.stats.snapshot().connected
            == 0),
        "the bridge notices the broker is gone"
    );
    assert!(eventually(Duration::from_secs(5), || readyz(maddr) == 503));
    assert!(scrape_has(
        maddr,
        "vscp_uplink_connected{uplink=\"mqtt\"} 0"
    ));
    // 15 events while the broker is away; the buffer holds 10 (oldest dropped, counted).
    send(&mut c, 11..=25);
    assert!(eventually(Duration::from_secs(5), || {
        let s = node.stats.snapshot();
        s.offline_queued == 10 && s.offline_dropped == 5
    }));

    broker.restart();
    assert!(
        eventually(Duration::from_secs(15), || node.stats.snapshot().connected
            == 1),
        "the bridge reconnects with backoff: {:?}",
        node.stats.snapshot()
    );
    assert!(eventually(Duration::from_secs(5), || readyz(maddr) == 200));
    send(&mut c, 26..=30);

    let want: Vec<u16> = (1..=10).chain(16..=30).collect();
    assert!(
        eventually(Duration::from_secs(20), || collector.count() >= want.len()),
        "{} of {} arrived: {:?}",
        collector.count(),
        want.len(),
        node.stats.snapshot()
    );
    // Anything extra (a duplicate) would arrive right behind.
    std::thread::sleep(Duration::from_millis(500));
    let got: Vec<u16> = collector
        .messages
        .lock()
        .unwrap()
        .iter()
        .map(|m| {
            let ev = vscp_mqtt::payload::decode(&m.payload, SubscribeFormat::Auto).unwrap();
            u16::from_be_bytes([ev.data[0], ev.data[1]])
        })
        .collect();
    let mut counts: HashMap<u16, usize> = HashMap::new();
    for s in &got {
        *counts.entry(*s).or_default() += 1;
    }
    assert!(counts.values().all(|&n| n == 1), "duplicates: {got:?}");
    let mut sorted = got.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, want, "every event that fit the buffer, once");
    // After the reconnect the buffer drained in order.
    let tail: Vec<u16> = got.iter().copied().filter(|&s| s > 10).collect();
    assert_eq!(tail, (16..=30).collect::<Vec<_>>(), "in order");
    let s = node.stats.snapshot();
    assert!(s.connects >= 2 && s.disconnects >= 1, "{s:?}");
    drop(c);
    node.srv.shutdown();
}

// ---- acceptance 5 ----------------------------------------------------------------------------

fn two_nodes(protocol: Protocol, tag: &str) {
    let broker = Broker::start(tag);
    let block = |b: &Broker| {
        mqtt_block(
            b,
            protocol,
            json!({
                "publish": [{"topic": "scale/{{ifguid}}/{{class}}/{{type}}", "qos": 1, "format": "json"}],
                "subscribe": [{"topic": "scale/#", "qos": 1, "format": "auto"}]
            }),
        )
    };
    // Node A hands a client's own events back to it; node B does not.
    let a = Node::start(
        &format!("{tag}-a"),
        block(&broker),
        json!({"guid": "FF:FF:FF:FF:FF:FF:FF:F5:02:88:88:00:00:00:00:0A", "receive-sent-events": true}),
    );
    let b = Node::start(
        &format!("{tag}-b"),
        block(&broker),
        json!({"guid": "FF:FF:FF:FF:FF:FF:FF:F5:02:88:88:00:00:00:00:0B", "receive-sent-events": false}),
    );
    a.wait_connected();
    b.wait_connected();
    let mut a1 = connect_ws(a.addr(), "/ws1");
    let mut a2 = connect_ws(a.addr(), "/ws2");
    let mut b1 = connect_ws(b.addr(), "/ws2");
    let mut b2 = connect_ws(b.addr(), "/ws1");
    for c in [&mut a1, &mut a2, &mut b1, &mut b2] {
        c.login_open("admin", "secret");
    }

    let quiet = Duration::from_millis(700);
    // A → B
    assert_eq!(a1.cmd("E;0,20,3,0,,0,-,0x0A"), "+;EVENT");
    for c in [&mut a1, &mut a2, &mut b1, &mut b2] {
        let e = c.recv_event();
        assert!(
            e.contains("20,3,") || e.contains("\"vscpClass\": 20"),
            "{e}"
        );
        assert_eq!(
            c.try_recv_event(quiet),
            None,
            "delivered twice at {}",
            c.dialect
        );
    }
    // B → A
    assert_eq!(b2.cmd("E;0,30,5,0,,0,-,0x0B"), "+;EVENT");
    for c in [&mut a1, &mut a2, &mut b1] {
        let e = c.recv_event();
        assert!(
            e.contains("30,5,") || e.contains("\"vscpClass\": 30"),
            "{e}"
        );
        assert_eq!(
            c.try_recv_event(quiet),
            None,
            "delivered twice at {}",
            c.dialect
        );
    }
    // b2 sent it and its node does not return own events: neither locally nor as an echo.
    assert_eq!(b2.try_recv_event(quiet), None);

    let (sa, sb) = (a.stats.snapshot(), b.stats.snapshot());
    assert_eq!((sa.events_from_sessions, sb.events_from_sessions), (1, 1));
    assert_eq!((sa.events_to_sessions, sb.events_to_sessions), (1, 1));
    if protocol == Protocol::V311 {
        // 3.1.1 has no no-local: the broker echoed each node's own publish, and it was dropped.
        assert_eq!((sa.echo_dropped, sb.echo_dropped), (1, 1), "{sa:?} {sb:?}");
    }
    drop((a1, a2, b1, b2));
    a.srv.shutdown();
    b.srv.shutdown();
}

#[test]
fn two_servers_exchange_events_both_ways_once_v311() {
    two_nodes(Protocol::V311, "two311");
}

#[test]
fn two_servers_exchange_events_both_ways_once_v5() {
    two_nodes(Protocol::V5, "two5");
}

/// Status code of `GET /readyz`.
fn readyz(addr: SocketAddr) -> u16 {
    http_get(addr, "/readyz").0
}

/// True when `/metrics` has this exact series line.
fn scrape_has(addr: SocketAddr, line: &str) -> bool {
    eventually(Duration::from_secs(5), || {
        http_get(addr, "/metrics").1.lines().any(|l| l == line)
    })
}

fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect to /metrics");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    let code = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, body.to_string())
}

// ---- TLS and bind ----------------------------------------------------------------------------

/// TLS to the broker, with `bind`: the bridge connects from the configured local address to a
/// TLS endpoint (a rustls proxy in front of the test broker, certificate from a test CA given as
/// `tls.cafile`, checked against 127.0.0.1), and events flow both ways through it.
#[test]
fn tls_with_bind_carries_events_both_ways() {
    let tag = "tls";
    let broker = Broker::start(tag);
    let pki_dir = ScratchDir::new("tls-pki");
    let pki = tls_proxy::Pki::generate(&pki_dir.dir, "test-ca");
    let proxy = tls_proxy::TlsProxy::start(&pki, broker.addr(Protocol::V311));
    let local_port = free_port();
    let mut sub = MqttClient::connect(broker.addr(Protocol::V311), "tls-sub", Protocol::V311, true)
        .expect("subscriber connects");
    sub.subscribe("tls/out/#", QoS::AtLeastOnce).unwrap();
    let node = Node::start(
        tag,
        mqtt_block(
            &broker,
            Protocol::V311,
            json!({
                "host": format!("mqtts://127.0.0.1:{}", proxy.public.port()),
                "port": proxy.public.port(),
                "bind": format!("127.0.0.1:{local_port}"),
                "tls": {"cafile": pki.ca_file.to_string_lossy(), "version": "tlsv1.2", "cert-reqs": 1},
                "publish": [{"topic": "tls/out/{{class}}/{{type}}", "qos": 1, "format": "json"}],
                "subscribe": [{"topic": "tls/in/#", "qos": 1, "format": "auto"}]
            }),
        ),
        json!({}),
    );
    node.wait_connected();
    assert!(proxy.handshakes.load(std::sync::atomic::Ordering::SeqCst) >= 1);
    let peers = proxy.peers.lock().unwrap().clone();
    assert!(
        peers.iter().any(|p| p.port() == local_port),
        "the bridge connected from 127.0.0.1:{local_port}: {peers:?}"
    );

    // ws1 client → bridge → TLS → broker → plain subscriber.
    let mut c = connect_ws(node.addr(), "/ws1");
    c.login_open("admin", "secret");
    assert_eq!(c.cmd(E2_WS1), "+;EVENT");
    let m = sub
        .recv(Duration::from_secs(10))
        .unwrap()
        .expect("the event crossed the TLS connection");
    assert_eq!(m.topic, "tls/out/10/6");
    let v: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
    assert_eq!(v["vscpGuid"], E2_GUID);

    // Broker → TLS → bridge → ws client.
    let mut payload = Vec::new();
    vscp_mqtt::payload::encode(&e2(17, 4242), PublishFormat::Json, true, &mut payload);
    if broker.is_mosquitto() {
        tool_publish(&broker, Protocol::V311, "tls/in/x", &payload);
    } else {
        let mut publisher =
            MqttClient::connect(broker.addr(Protocol::V311), "tls-pub", Protocol::V311, true)
                .unwrap();
        publisher
            .publish("tls/in/x", &payload, QoS::AtLeastOnce)
            .unwrap();
    }
    let e = c.recv_event();
    let ev = vscp_proto::codec::string::parse_event(e.strip_prefix("E;").unwrap()).unwrap();
    assert_eq!(ev, e2(17, 4242));
    let s = node.stats.snapshot();
    assert_eq!((s.connects, s.events_to_sessions), (1, 1), "{s:?}");
    drop(c);
    node.srv.shutdown();
}

/// A broker certificate from a CA the bridge does not trust: the bridge refuses the
/// connection (counted as a failed attempt, logged) and keeps retrying instead of proceeding.
#[test]
fn tls_with_a_wrong_ca_refuses_the_broker() {
    let tag = "tlsbad";
    let broker = Broker::start(tag);
    let pki_dir = ScratchDir::new("tlsbad-pki");
    let pki = tls_proxy::Pki::generate(&pki_dir.dir, "broker-ca");
    let wrong_ca = tls_proxy::Pki::unrelated_ca(&pki_dir.dir);
    let proxy = tls_proxy::TlsProxy::start(&pki, broker.addr(Protocol::V311));
    let node = Node::start(
        tag,
        mqtt_block(
            &broker,
            Protocol::V311,
            json!({
                "host": "mqtts://127.0.0.1",
                "port": proxy.public.port(),
                "tls": {"cafile": wrong_ca.to_string_lossy()},
                "publish": [{"topic": "tls/out", "qos": 1, "format": "json"}]
            }),
        ),
        json!({}),
    );
    assert!(
        eventually(Duration::from_secs(10), || {
            node.stats.snapshot().disconnects >= 2
                && proxy
                    .handshake_failures
                    .load(std::sync::atomic::Ordering::SeqCst)
                    >= 1
        }),
        "the bridge refused the certificate and retried: {:?}",
        node.stats.snapshot()
    );
    let s = node.stats.snapshot();
    assert_eq!((s.connects, s.connected), (0, 0), "{s:?}");
    assert_eq!(
        proxy.handshakes.load(std::sync::atomic::Ordering::SeqCst),
        0
    );
    node.srv.shutdown();
}

// ---- QoS 2 -----------------------------------------------------------------------------------

/// A QoS 2 publish entry completes the PUBREC/PUBREL/PUBCOMP exchange with the broker, and a
/// QoS 2 message on a QoS 2 subscription reaches the ws clients exactly once.
#[test]
fn qos2_publish_and_subscribe_deliver_once() {
    let tag = "qos2";
    let broker = Broker::start(tag);
    let mut sub = MqttClient::connect(broker.addr(Protocol::V311), "q2-sub", Protocol::V311, true)
        .expect("subscriber connects");
    sub.subscribe("q2/out/#", QoS::AtLeastOnce).unwrap();
    let node = Node::start(
        tag,
        mqtt_block(
            &broker,
            Protocol::V311,
            json!({
                "publish": [{"topic": "q2/out/{{class}}/{{type}}", "qos": 2, "format": "json"}],
                "subscribe": [{"topic": "q2/in/#", "qos": 2, "format": "auto"}]
            }),
        ),
        json!({}),
    );
    node.wait_connected();
    let mut c = connect_ws(node.addr(), "/ws1");
    c.login_open("admin", "secret");
    assert_eq!(c.cmd(E2_WS1), "+;EVENT");
    let m = sub
        .recv(Duration::from_secs(10))
        .unwrap()
        .expect("the QoS 2 publish arrived");
    assert_eq!(m.topic, "q2/out/10/6");
    assert!(
        eventually(Duration::from_secs(5), || {
            let s = node.stats.snapshot();
            s.acked == 1 && s.inflight == 0
        }),
        "PUBCOMP completed the publish: {:?}",
        node.stats.snapshot()
    );

    let mut payload = Vec::new();
    vscp_mqtt::payload::encode(&e2(17, 777), PublishFormat::Json, true, &mut payload);
    if broker.is_mosquitto() {
        tool_publish(&broker, Protocol::V311, "q2/in/x", &payload);
    } else {
        let mut publisher =
            MqttClient::connect(broker.addr(Protocol::V311), "q2-pub", Protocol::V311, true)
                .unwrap();
        publisher
            .publish("q2/in/x", &payload, QoS::ExactlyOnce)
            .unwrap();
    }
    let e = c.recv_event();
    let ev = vscp_proto::codec::string::parse_event(e.strip_prefix("E;").unwrap()).unwrap();
    assert_eq!(ev, e2(17, 777));
    assert_eq!(
        c.try_recv_event(Duration::from_millis(500)),
        None,
        "exactly once"
    );
    assert!(
        sub.recv(Duration::from_millis(200)).unwrap().is_none(),
        "the QoS 2 publish went out once"
    );
    let s = node.stats.snapshot();
    assert_eq!((s.events_to_sessions, s.messages_received), (1, 1), "{s:?}");
    drop(c);
    node.srv.shutdown();
}

// ---- issue 12: backpressure from a slow broker ------------------------------------------------

/// One ws1 client sends `n` events without waiting, then reads its `n` replies, through a
/// server whose bridge publishes QoS 1 to a broker that acknowledges one PUBACK per 1 ms
/// (window 5, buffer 20, rings of 16). Returns the bridge's counters and what the broker got.
fn ingest_through_a_slow_broker(tag: &str, backpressure: bool, n: u16) -> (Ingested, usize) {
    let broker = Broker::start(tag);
    let slow = Proxy::slow(broker.addr(Protocol::V311), Duration::from_millis(1));
    let collector = Collector::start(broker.observer_addr(), &format!("collector-{tag}"), "bp/#");
    let mut block = mqtt_block(
        &broker,
        Protocol::V311,
        json!({
            "max-offline-events": 20,
            "backpressure": backpressure,
            "mqtt-options": {"send-maximum": 5},
            "publish": [{"topic": "bp/{{class}}/{{type}}", "qos": 1, "format": "string"}]
        }),
    );
    block["port"] = json!(slow.public.port());
    let node = Node::start(tag, block, json!({"max-in-queue": 16}));
    node.wait_connected();
    let mut c = connect_ws(node.addr(), "/ws1");
    assert!(c.auth("admin", "secret").starts_with("+;AUTH1;"));
    for seq in 1..=n {
        c.send(&seq_event(seq));
    }
    for i in 0..n {
        assert_eq!(c.recv_text(), "+;EVENT", "reply {i}");
    }
    let settled = eventually(Duration::from_secs(30), || {
        let s = node.stats.snapshot();
        s.inflight == 0 && s.offline_queued == 0 && collector.count() as u64 >= s.acked
    });
    assert!(settled, "{:?}", node.stats.snapshot());
    let s = node.stats.snapshot();
    drop(c);
    node.srv.shutdown();
    (
        Ingested {
            dropped: s.offline_dropped,
            acked: s.acked,
        },
        collector.count(),
    )
}

#[derive(Debug)]
struct Ingested {
    dropped: u64,
    acked: u64,
}

#[test]
fn a_slow_broker_makes_publishers_wait_and_nothing_is_dropped() {
    let n = 1000;
    let (s, got) = ingest_through_a_slow_broker("bp-on", true, n);
    assert_eq!(s.dropped, 0, "{s:?}");
    assert_eq!(s.acked, u64::from(n), "{s:?}");
    assert!(got >= usize::from(n), "{got} of {n} reached the broker");
}

/// The same load with backpressure off loses events: the test above can fail.
#[test]
fn without_backpressure_a_slow_broker_drops_oldest_and_counts() {
    let n = 1000;
    let (s, got) = ingest_through_a_slow_broker("bp-off", false, n);
    assert!(s.dropped > 0, "{s:?}");
    assert_eq!(s.acked + s.dropped, u64::from(n), "{s:?}");
    assert_eq!(got as u64, s.acked, "what was not dropped arrived");
}

// ---- issue 12: acknowledgements from the broker ---------------------------------------------

/// A server whose bridge publishes QoS 1 through a proxy that holds the broker's replies while
/// the returned flag is set, with `ack-from-broker` on; a ws1 client logged in (channel closed).
fn acked_by_broker(tag: &str, ack_timeout_ms: u64) -> (Node, Client, Arc<AtomicBool>, Broker) {
    let broker = Broker::start(tag);
    let hold = Arc::new(AtomicBool::new(false));
    let gate = Proxy::gated(broker.addr(Protocol::V311), hold.clone());
    let mut block = mqtt_block(
        &broker,
        Protocol::V311,
        json!({
            "ack-from-broker": true,
            "ack-timeout": ack_timeout_ms,
            "publish": [{"topic": "ack/{{class}}", "qos": 1, "format": "string"}]
        }),
    );
    block["port"] = json!(gate.public.port());
    let node = Node::start(tag, block, json!({}));
    node.wait_connected();
    let mut c = connect_ws(node.addr(), "/ws1");
    assert!(c.auth("admin", "secret").starts_with("+;AUTH1;"));
    // Dropping the proxy's handle leaves its threads forwarding until the test process ends.
    drop(gate);
    (node, c, hold, broker)
}

#[test]
fn with_ack_from_broker_the_reply_comes_after_the_puback_and_in_order() {
    let (node, mut c, hold, _broker) = acked_by_broker("ack-order", 30_000);
    hold.store(true, Ordering::SeqCst);
    c.send(&seq_event(1));
    c.send("C;NOOP");
    c.send(&seq_event(2));
    assert!(
        eventually(Duration::from_secs(10), || node.stats.snapshot().published
            >= 2),
        "{:?}",
        node.stats.snapshot()
    );
    // Published, not acknowledged: no reply yet, not even to the NOOP behind the event.
    assert_eq!(c.try_recv_text(Duration::from_millis(500)), None);
    assert_eq!(node.stats.snapshot().acked, 0);
    hold.store(false, Ordering::SeqCst);
    assert_eq!(c.recv_text(), "+;EVENT");
    assert_eq!(c.recv_text(), "+;NOOP");
    assert_eq!(c.recv_text(), "+;EVENT");
    // The bridge copies its client's counters after the step that released the replies.
    assert!(eventually(Duration::from_secs(5), || node
        .stats
        .snapshot()
        .acked
        == 2));
    drop(c);
    node.srv.shutdown();
}

#[test]
fn with_ack_from_broker_an_unconfirmed_event_gets_an_error_the_client_can_retry_on() {
    let (node, mut c, hold, _broker) = acked_by_broker("ack-timeout", 300);
    hold.store(true, Ordering::SeqCst);
    assert_eq!(
        c.cmd(&seq_event(1)),
        "-;11;Not confirmed by the broker in time."
    );
    hold.store(false, Ordering::SeqCst);
    // The retry goes through once the broker answers again (a loaded machine may need more
    // than one 300 ms attempt, as a real client would).
    let confirmed = (0..20).any(|_| c.cmd(&seq_event(1)) == "+;EVENT");
    assert!(confirmed, "{:?}", node.stats.snapshot());
    drop(c);
    node.srv.shutdown();
}

// ---- issue 12: a stop that keeps promises ----------------------------------------------------

#[test]
fn a_stop_fails_readyz_publishes_what_is_held_and_says_disconnect() {
    let tag = "clean-stop";
    let broker = Broker::start(tag);
    let collector = Collector::start(broker.observer_addr(), "collector-stop", "stop/#");
    let hold = Arc::new(AtomicBool::new(false));
    let gate = Proxy::gated(broker.addr(Protocol::V311), hold.clone());
    let mut block = mqtt_block(
        &broker,
        Protocol::V311,
        json!({
            "drain-timeout": 20_000,
            "will": {"topic": "stop/will", "payload": "gone", "qos": 1, "retain": false},
            "publish": [{"topic": "stop/{{class}}", "qos": 1, "format": "string"}]
        }),
    );
    block["port"] = json!(gate.public.port());
    let node = Node::start(tag, block, json!({"metrics-interface": "127.0.0.1:0"}));
    node.wait_connected();
    let maddr = node.srv.metrics_addr().expect("metrics enabled");
    assert!(eventually(Duration::from_secs(5), || readyz(maddr) == 200));
    let mut c = connect_ws(node.addr(), "/ws1");
    assert!(c.auth("admin", "secret").starts_with("+;AUTH1;"));
    // The broker takes the publishes but its PUBACKs are held: all 50 are in flight.
    hold.store(true, Ordering::SeqCst);
    for seq in 1..=50 {
        assert_eq!(c.cmd(&seq_event(seq)), "+;EVENT");
    }
    assert!(eventually(Duration::from_secs(10), || node
        .stats
        .snapshot()
        .published
        >= 50));
    let stats = node.stats.clone();
    let Node { srv, .. } = node;
    let stopping = std::thread::spawn(move || srv.shutdown());
    // Not ready from the first moment of the stop, while the bridge still holds publishes.
    assert!(eventually(Duration::from_secs(5), || readyz(maddr) == 503));
    assert_eq!(stats.snapshot().acked, 0);
    hold.store(false, Ordering::SeqCst);
    stopping.join().expect("stopped");
    let s = stats.snapshot();
    assert_eq!((s.acked, s.shutdown_dropped), (50, 0), "{s:?}");
    assert!(
        eventually(Duration::from_secs(10), || collector.count() >= 50),
        "{} of 50",
        collector.count()
    );
    std::thread::sleep(Duration::from_millis(500));
    let will = collector
        .messages
        .lock()
        .unwrap()
        .iter()
        .filter(|m| m.topic == "stop/will")
        .count();
    assert_eq!(will, 0, "DISCONNECT was sent, so the broker kept the will");
    drop(c);
}

/// Target 3 of issue 12: with `ack-from-broker`, a broker stopped and restarted mid-stream
/// loses nothing a client saw acknowledged (the collector's session is persistent).
#[test]
fn with_ack_from_broker_a_broker_restart_loses_nothing_that_was_acknowledged() {
    let tag = "ack-restart";
    let mut broker = Broker::start(tag);
    let collector = Collector::start(broker.observer_addr(), "collector-ack-restart", "ar/#");
    let node = Node::start(
        tag,
        mqtt_block(
            &broker,
            Protocol::V311,
            json!({
                "keepalive": 5,
                "ack-from-broker": true,
                "ack-timeout": 500,
                "publish": [{"topic": "ar/{{class}}", "qos": 1, "format": "string"}]
            }),
        ),
        json!({}),
    );
    node.wait_connected();
    let mut c = connect_ws(node.addr(), "/ws1");
    assert!(c.auth("admin", "secret").starts_with("+;AUTH1;"));
    let mut acked = Vec::new();
    let mut refused = 0;
    let mut send = |c: &mut Client, seq: u16| match c.cmd(&seq_event(seq)).as_str() {
        "+;EVENT" => acked.push(seq),
        "-;11;Not confirmed by the broker in time." => refused += 1,
        other => panic!("unexpected reply {other:?}"),
    };
    for seq in 1..=20 {
        send(&mut c, seq);
    }
    broker.stop();
    // While it is away: every event is either confirmed later or refused, never lost silently.
    for seq in 21..=30 {
        send(&mut c, seq);
    }
    broker.restart();
    assert!(
        eventually(Duration::from_secs(15), || node.stats.snapshot().connected
            == 1),
        "{:?}",
        node.stats.snapshot()
    );
    for seq in 31..=50 {
        send(&mut c, seq);
    }
    assert!(refused > 0, "the outage was noticed by the client");
    let arrived = || -> std::collections::HashSet<u16> {
        collector
            .messages
            .lock()
            .unwrap()
            .iter()
            .map(|m| {
                let ev = vscp_mqtt::payload::decode(&m.payload, SubscribeFormat::Auto).unwrap();
                u16::from_be_bytes([ev.data[0], ev.data[1]])
            })
            .collect()
    };
    assert!(
        eventually(Duration::from_secs(15), || acked
            .iter()
            .all(|s| arrived().contains(s))),
        "acknowledged but not at the broker: {:?}",
        acked
            .iter()
            .filter(|s| !arrived().contains(s))
            .collect::<Vec<_>>()
    );
    drop(c);
    node.srv.shutdown();
}

// ---- MQTT over websockets --------------------------------------------------------------------

/// `ws://` in `host` (`wss://` with `tls`: through a TLS proxy in front of the listener), MQTT
/// `protocol` on both ends: the bridge reaches Mosquitto's websocket listener, 200 client events arrive at an MQTT subscriber
/// on the plain listener in order, a broker message reaches the client, and a clean stop says
/// DISCONNECT (no will). rumqttd runs without a websocket listener, so this needs Mosquitto:
/// `.ci/mqtt-mosquitto` runs it.
fn websocket_round_trip(tag: &str, tls: bool, protocol: Protocol) {
    let broker = Broker::start(tag);
    let ws = broker
        .ws_addr()
        .expect("VSCP_TEST_MOSQUITTO names Mosquitto");
    let pki_dir = ScratchDir::new(&format!("{tag}-pki"));
    let pki = tls_proxy::Pki::generate(&pki_dir.dir, "test-ca");
    let proxy = tls.then(|| tls_proxy::TlsProxy::start(&pki, ws));
    let (host, tls_block) = match &proxy {
        None => (format!("ws://{ws}/mqtt"), json!(null)),
        Some(p) => (
            format!("wss://{}/mqtt", p.public),
            json!({"cafile": pki.ca_file.to_string_lossy()}),
        ),
    };
    let mut sub =
        MqttClient::connect(broker.addr(protocol), &format!("{tag}-sub"), protocol, true).unwrap();
    sub.subscribe("it/#", QoS::AtLeastOnce).unwrap();
    let node = Node::start(
        tag,
        mqtt_block(
            &broker,
            protocol,
            json!({
                "host": host,
                "port": null,
                "tls": tls_block,
                "will": {"topic": "it/will", "payload": "gone", "qos": 1, "retain": false},
                "publish": [{"topic": "it/{{class}}/{{type}}", "qos": 1, "format": "binary"}],
                "subscribe": [{"topic": "in/#", "qos": 1, "format": "binary"}]
            }),
        ),
        json!({}),
    );
    node.wait_connected();
    if let Some(p) = &proxy {
        assert!(p.handshakes.load(Ordering::SeqCst) >= 1, "TLS was used");
    }
    let mut c = connect_ws(node.addr(), "/ws1");
    c.login_open("admin", "secret");
    for seq in 0..200u16 {
        assert_eq!(c.cmd(&seq_event(seq)), "+;EVENT");
    }
    for seq in 0..200u16 {
        let m = sub
            .recv(Duration::from_secs(10))
            .unwrap()
            .expect("a publish");
        let ev = vscp_mqtt::payload::decode(&m.payload, SubscribeFormat::Binary).unwrap();
        assert_eq!(
            u16::from_be_bytes([ev.data[0], ev.data[1]]),
            seq,
            "in order"
        );
    }
    let mut payload = Vec::new();
    vscp_mqtt::payload::encode(&e2(0, 77), PublishFormat::Binary, true, &mut payload);
    sub.publish("in/x", &payload, QoS::AtLeastOnce).unwrap();
    let e = c.recv_event();
    let ev = vscp_proto::codec::string::parse_event(e.strip_prefix("E;").unwrap()).unwrap();
    assert_eq!((ev.class, ev.vscp_type, ev.timestamp), (10, 6, 77), "{e}");
    let s = node.stats.snapshot();
    assert_eq!((s.acked, s.connects, s.connected), (200, 1, 1), "{s:?}");
    drop(c);
    node.srv.shutdown();
    // DISCONNECT went through the websocket: the broker does not publish the will.
    let late = sub.recv(Duration::from_millis(1500)).unwrap();
    assert!(late.is_none(), "nothing after a clean stop, got {late:?}");
}

#[test]
#[ignore = "needs Mosquitto (VSCP_TEST_MOSQUITTO): .ci/mqtt-mosquitto runs it"]
fn over_websockets_events_go_both_ways() {
    websocket_round_trip("ws", false, Protocol::V311);
}

#[test]
#[ignore = "needs Mosquitto (VSCP_TEST_MOSQUITTO): .ci/mqtt-mosquitto runs it"]
fn over_websockets_with_tls_and_mqtt5_events_go_both_ways() {
    websocket_round_trip("wss", true, Protocol::V5);
}

/// A `ws://` host that is not a websocket endpoint (the broker's plain MQTT port) never counts
/// as connected, and the bridge keeps trying.
#[test]
#[ignore = "needs Mosquitto (VSCP_TEST_MOSQUITTO): .ci/mqtt-mosquitto runs it"]
fn over_websockets_a_plain_mqtt_port_is_refused() {
    let tag = "ws-refused";
    let broker = Broker::start(tag);
    let plain = broker.addr(Protocol::V311);
    let node = Node::start(
        tag,
        mqtt_block(
            &broker,
            Protocol::V311,
            json!({"host": format!("ws://{plain}"), "port": null}),
        ),
        json!({}),
    );
    assert!(
        eventually(Duration::from_secs(6), || node.stats.snapshot().disconnects
            >= 2),
        "{:?}",
        node.stats.snapshot()
    );
    let s = node.stats.snapshot();
    assert_eq!((s.connects, s.connected), (0, 0), "{s:?}");
    node.srv.shutdown();
}
