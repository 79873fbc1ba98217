//! Event routing between real clients: fan-out across shards and dialects, field-exact
//! conversion ws1 <-> ws2, stamping, echo to the sender, queueing while the channel is closed,
//! filters (session, user, driver level), rights and the per-user address ACL (`remotes`).
mod common;
use common::*;
use serde_json::{json, Value};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The interface GUID configured for the stamping tests.
const IF_GUID: &str = "FF:EE:DD:CC:BB:AA:99:88:77:66:55:44:33:22:11:00";
/// How long "nothing more arrives" is watched for.
const QUIET: Duration = Duration::from_millis(300);

/// The default test users plus a few for rights and remotes (MD5 of `name:secret`).
fn users_plus() -> String {
    let mut db: Value = serde_json::from_str(USERS_JSON).unwrap();
    let users = db["users"].as_array_mut().unwrap();
    users.extend([
        // May send, may not receive.
        json!({"name":"norecv","password":"e084fa7a3d4ad9a66d58d2d7c15b53d2","rights":"send-events"}),
        // Loopback only (IPv4).
        json!({"name":"lo4","password":"f8a522c891b1d593343d2d7fd2a26bc2","rights":"user",
               "remotes":"+127.0.0.0/8"}),
        // IPv6 loopback only.
        json!({"name":"lo6","password":"74cf758e0f013aa6a6b863a2d3f83875","rights":"user",
               "remotes":"+::1/128"}),
        // One IPv4 host only.
        json!({"name":"host2","password":"d4115f78dfa44dde5f6ee18f63f108db","rights":"user",
               "remotes":"+127.0.0.2"}),
    ]);
    db.to_string()
}

/// A delivered event, whichever dialect it came in.
#[derive(Debug, Clone, PartialEq)]
struct Ev {
    head: u64,
    class: u64,
    vtype: u64,
    obid: u64,
    datetime: String,
    timestamp: u64,
    guid: String,
    data: Vec<u8>,
}

fn parse_ws1(line: &str) -> Ev {
    let body = line
        .strip_prefix("E;")
        .unwrap_or_else(|| panic!("not an event: {line}"));
    let f: Vec<&str> = body.split(',').collect();
    assert!(f.len() >= 7, "short event line: {line}");
    let num = |s: &str| -> u64 {
        s.parse()
            .unwrap_or_else(|_| panic!("number {s:?} in {line}"))
    };
    Ev {
        head: num(f[0]),
        class: num(f[1]),
        vtype: num(f[2]),
        obid: num(f[3]),
        datetime: f[4].to_string(),
        timestamp: num(f[5]),
        guid: f[6].to_string(),
        data: f[7..]
            .iter()
            .map(|d| {
                let h = d
                    .strip_prefix("0x")
                    .unwrap_or_else(|| panic!("data {d:?} not 0x hex: {line}"));
                assert_eq!(h.len(), 2, "data byte {d:?} not 0x%02X: {line}");
                assert_eq!(
                    h,
                    h.to_uppercase(),
                    "data byte {d:?} not upper case: {line}"
                );
                u8::from_str_radix(h, 16).unwrap()
            })
            .collect(),
    }
}

fn parse_ws2(text: &str) -> Ev {
    let v: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{text}: {e}"));
    assert_eq!(v["type"], "EVENT", "{text}");
    let e = &v["event"];
    assert_eq!(e["vscpNote"], "", "{text}");
    Ev {
        head: e["vscpHead"].as_u64().unwrap(),
        class: e["vscpClass"].as_u64().unwrap(),
        vtype: e["vscpType"].as_u64().unwrap(),
        obid: e["vscpObId"].as_u64().unwrap(),
        datetime: e["vscpDateTime"].as_str().unwrap().to_string(),
        timestamp: e["vscpTimeStamp"].as_u64().unwrap(),
        guid: e["vscpGuid"].as_str().unwrap().to_string(),
        data: e["vscpData"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap() as u8)
            .collect(),
    }
}

/// The next event a client receives, parsed per its dialect.
fn next_ev(c: &mut Client) -> Ev {
    let m = c.recv_event();
    if c.dialect == "ws1" {
        parse_ws1(&m)
    } else {
        parse_ws2(&m)
    }
}

/// Asserts that nothing (event or otherwise) arrives for a while.
fn assert_quiet(c: &mut Client, who: &str) {
    assert_all_quiet(&mut [(c, who)]);
}

/// Asserts that none of the clients receives anything for a while (one shared wait).
fn assert_all_quiet(clients: &mut [(&mut Client, &str)]) {
    std::thread::sleep(QUIET);
    for (c, who) in clients.iter_mut() {
        if let Some(m) = c.try_recv_text(Duration::from_millis(10)) {
            panic!("{who} ({}) got an unexpected message: {m}", c.dialect);
        }
    }
}

/// Sends a ws1 event line and asserts `+;EVENT`.
fn send1(c: &mut Client, line: &str) {
    assert_eq!(c.cmd(line), "+;EVENT", "sending {line}");
}

/// Sends a ws2 event object and asserts the positive reply.
fn send2(c: &mut Client, event: Value) {
    let r = c.cmd2(json!({"type":"EVENT","event":event}));
    assert_eq!(
        r,
        json!({"type":"+","command":"EVENT","args":null}),
        "sending {event}"
    );
}

/// Sends a simple event (class, type, data) in the client's own dialect.
fn send_simple(c: &mut Client, class: u16, vtype: u16, data: &[u8]) {
    if c.dialect == "ws1" {
        let mut line = format!("E;0,{class},{vtype},0,,0,-");
        for d in data {
            line.push_str(&format!(",{d}"));
        }
        send1(c, &line);
    } else {
        send2(
            c,
            json!({"vscpClass":class,"vscpType":vtype,"vscpData":data}),
        );
    }
}

fn login(c: &mut Client, user: &str) -> bool {
    let r = c.auth(user, "secret");
    if c.dialect == "ws1" {
        r.starts_with("+;AUTH1;")
    } else {
        let v: Value = serde_json::from_str(&r).unwrap();
        v["type"] == "+"
    }
}

fn open(c: &mut Client) {
    if c.dialect == "ws1" {
        assert_eq!(c.cmd("C;OPEN"), "+;OPEN");
    } else {
        let v = c.cmd2(json!({"type":"CMD","command":"OPEN","args":null}));
        assert_eq!(v["type"], "+", "{v}");
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// `YYYY-MM-DDTHH:MM:SSZ` (the form both dialects write) as Unix seconds.
fn unix_of(datetime: &str) -> i64 {
    let b = datetime.as_bytes();
    assert!(
        b.len() == 20 && b[4] == b'-' && b[7] == b'-' && b[10] == b'T' && b[19] == b'Z',
        "datetime {datetime:?} is not YYYY-MM-DDTHH:MM:SSZ"
    );
    let n = |r: std::ops::Range<usize>| -> i64 { datetime[r].parse().unwrap() };
    days_from_civil(n(0..4), n(5..7), n(8..10)) * 86400
        + n(11..13) * 3600
        + n(14..16) * 60
        + n(17..19)
}

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[test]
fn datetime_helper_is_right() {
    assert_eq!(unix_of("1970-01-01T00:00:00Z"), 0);
    assert_eq!(unix_of("2024-03-01T12:34:56Z"), 1_709_296_496);
}

#[test]
fn fanout_across_shards_reaches_every_other_client_exactly_once() {
    let fx = Fixture::new("rt-fanout");
    let srv = fx.start(json!({}));
    // Connect until each shard has a ws1 and a ws2 client (and at least 8 in all).
    let mut clients: Vec<(Client, usize)> = Vec::new();
    let have = |cl: &[(Client, usize)], shard: usize, d: &str| {
        cl.iter().any(|(c, s)| *s == shard && c.dialect == d)
    };
    while clients.len() < 8
        || !(have(&clients, 0, "ws1")
            && have(&clients, 0, "ws2")
            && have(&clients, 1, "ws1")
            && have(&clients, 1, "ws2"))
    {
        assert!(clients.len() < 64, "shards never both got both dialects");
        let path = if clients.len().is_multiple_of(2) {
            "/ws1"
        } else {
            "/ws2"
        };
        clients.push(connect_tracked(&srv, path));
    }
    let per_shard: Vec<usize> = (0..2)
        .map(|s| clients.iter().filter(|(_, cs)| *cs == s).count())
        .collect();
    eprintln!("{} clients, per shard {per_shard:?}", clients.len());
    for (c, _) in clients.iter_mut() {
        assert!(login(c, "user"));
        open(c);
    }
    let n = clients.len();
    // Two senders: a ws1 client on shard 0 and a ws2 client on shard 1.
    let s1 = clients
        .iter()
        .position(|(c, s)| *s == 0 && c.dialect == "ws1")
        .unwrap();
    let s2 = clients
        .iter()
        .position(|(c, s)| *s == 1 && c.dialect == "ws2")
        .unwrap();
    for (round, &sender) in [s1, s2].iter().enumerate() {
        let before = srv.stats();
        let r = round as u8;
        send_simple(&mut clients[sender].0, 20, 3, &[r, 1]);
        send_simple(&mut clients[sender].0, 20, 3, &[r, 2]);
        for (i, (c, shard)) in clients.iter_mut().enumerate() {
            if i == sender {
                continue;
            }
            for k in 1..=2u8 {
                let e = next_ev(c);
                assert_eq!(
                    (e.class, e.vtype, e.data.clone()),
                    (20, 3, vec![r, k]),
                    "client {i} on shard {shard} ({})",
                    c.dialect
                );
            }
        }
        let names: Vec<String> = (0..n)
            .map(|i| format!("client {i} after round {round}"))
            .collect();
        let mut all: Vec<(&mut Client, &str)> = clients
            .iter_mut()
            .zip(&names)
            .map(|((c, _), name)| (c, name.as_str()))
            .collect();
        assert_all_quiet(&mut all);
        let after = srv.stats();
        let delivered = (after.delivered(vscp_proto::Dialect::Ws1)
            + after.delivered(vscp_proto::Dialect::Ws2))
            - (before.delivered(vscp_proto::Dialect::Ws1)
                + before.delivered(vscp_proto::Dialect::Ws2));
        assert_eq!(delivered, 2 * (n as u64 - 1), "delivered count");
        assert!(after.ring_sent >= before.ring_sent + 2, "{after:?}");
        assert!(after.ring_received >= before.ring_received + 2, "{after:?}");
    }
    let st = srv.stats();
    assert_eq!(st.received(vscp_proto::Dialect::Ws1), 2);
    assert_eq!(st.received(vscp_proto::Dialect::Ws2), 2);
    assert_eq!(st.dropped(vscp_websocksrv::stats::DropReason::QueueFull), 0);
    stop(srv, clients.into_iter().map(|(c, _)| c).collect());
}

#[test]
fn ws1_to_ws2_is_field_exact() {
    let fx = Fixture::new("rt-1to2");
    let srv = fx.start(json!({"guid": IF_GUID}));
    let addr = srv.local_addr();
    // Connection ids are handed out in accept order from 1: the sender is connection 1.
    let mut a = connect(addr, "/ws1");
    let mut b = connect(addr, "/ws2");
    let mut c = connect(addr, "/ws1");
    a.login_open("admin", "secret");
    b.login_open("admin", "secret");
    c.login_open("admin", "secret");
    send1(
        &mut a,
        "E;96,10,6,77,2024-03-01T12:34:56Z,123456789,FF:FF:FF:FF:FF:FF:FF:F5:00:00:00:00:00:02:00:00,0x88,0x82,0x09,0xC4",
    );
    let want = Ev {
        head: 96,
        class: 10,
        vtype: 6,
        obid: 1,
        datetime: "2024-03-01T12:34:56Z".into(),
        timestamp: 123456789,
        guid: "FF:FF:FF:FF:FF:FF:FF:F5:00:00:00:00:00:02:00:00".into(),
        data: vec![0x88, 0x82, 0x09, 0xC4],
    };
    let raw = b.recv_event();
    assert_eq!(parse_ws2(&raw), want, "{raw}");
    // The exact REF layout (ws2.md §6).
    assert_eq!(
        raw,
        "{ \"type\" : \"EVENT\",  \"event\" :  {\n\"vscpHead\": 96,\n\"vscpObId\":  1,\n\"vscpDateTime\": \"2024-03-01T12:34:56Z\",\n\"vscpTimeStamp\": 123456789,\n\"vscpClass\": 10,\n\"vscpType\": 6,\n\"vscpGuid\": \"FF:FF:FF:FF:FF:FF:FF:F5:00:00:00:00:00:02:00:00\",\n\"vscpData\": [136,130,9,196],\n\"vscpNote\": \"\"\n} }"
    );
    assert_eq!(
        c.recv_event(),
        "E;96,10,6,1,2024-03-01T12:34:56Z,123456789,FF:FF:FF:FF:FF:FF:FF:F5:00:00:00:00:00:02:00:00,0x88,0x82,0x09,0xC4"
    );
    // No data: no trailing comma; ws2 gets an empty array.
    send1(
        &mut a,
        "E;0,20,3,0,2024-03-01T12:34:56Z,5,FF:FF:FF:FF:FF:FF:FF:F5:00:00:00:00:00:02:00:00",
    );
    assert_eq!(
        c.recv_event(),
        "E;0,20,3,1,2024-03-01T12:34:56Z,5,FF:FF:FF:FF:FF:FF:FF:F5:00:00:00:00:00:02:00:00"
    );
    let e = parse_ws2(&b.recv_event());
    assert_eq!((e.class, e.vtype, e.obid, e.data), (20, 3, 1, vec![]));
    assert_quiet(&mut a, "sender");
    stop(srv, vec![a, b, c]);
}

#[test]
fn ws2_to_ws1_is_field_exact() {
    let fx = Fixture::new("rt-2to1");
    let srv = fx.start(json!({"guid": IF_GUID}));
    let addr = srv.local_addr();
    let mut r1 = connect(addr, "/ws1");
    let mut s2 = connect(addr, "/ws2"); // connection 2
    let mut r2 = connect(addr, "/ws2");
    r1.login_open("admin", "secret");
    s2.login_open("admin", "secret");
    r2.login_open("admin", "secret");
    send2(
        &mut s2,
        json!({"vscpHead":64,"vscpObId":999,"vscpDateTime":"2020-01-27T20:47:55Z",
               "vscpTimeStamp":42,"vscpClass":10,"vscpType":6,
               "vscpGuid":"FF:FF:FF:FF:FF:FF:FF:F5:00:00:00:00:00:05:00:01",
               "vscpData":[0,1,255,16],"vscpNote":"ignored"}),
    );
    // ws2.md Q5: the date is parsed correctly (no month shift).
    assert_eq!(
        r1.recv_event(),
        "E;64,10,6,2,2020-01-27T20:47:55Z,42,FF:FF:FF:FF:FF:FF:FF:F5:00:00:00:00:00:05:00:01,0x00,0x01,0xFF,0x10"
    );
    let e = parse_ws2(&r2.recv_event());
    assert_eq!(
        e,
        Ev {
            head: 64,
            class: 10,
            vtype: 6,
            obid: 2,
            datetime: "2020-01-27T20:47:55Z".into(),
            timestamp: 42,
            guid: "FF:FF:FF:FF:FF:FF:FF:F5:00:00:00:00:00:05:00:01".into(),
            data: vec![0, 1, 255, 16],
        }
    );
    // The short (vNext) input keys are accepted too.
    send2(
        &mut s2,
        json!({"vscpClass":20,"vscpType":9,"head":32,"timestamp":7,
               "guid":"00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF","data":[5],
               "dateTime":"2021-12-31T23:59:59Z"}),
    );
    let e = parse_ws1(&r1.recv_event());
    assert_eq!(
        (
            e.head,
            e.class,
            e.vtype,
            e.obid,
            e.timestamp,
            e.guid.as_str(),
            e.data
        ),
        (
            32,
            20,
            9,
            2,
            7,
            "00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF",
            vec![5]
        )
    );
    assert_eq!(parse_ws2(&r2.recv_event()).class, 20);
    assert_quiet(&mut s2, "sender");
    stop(srv, vec![r1, s2, r2]);
}

#[test]
fn zero_guid_and_unset_time_are_stamped() {
    let fx = Fixture::new("rt-stamp");
    let srv = fx.start(json!({"guid": IF_GUID}));
    let addr = srv.local_addr();
    let mut s1 = connect(addr, "/ws1"); // connection 1
    let mut s2 = connect(addr, "/ws2"); // connection 2
    let mut r1 = connect(addr, "/ws1");
    let mut r2 = connect(addr, "/ws2");
    for c in [&mut s1, &mut s2, &mut r1, &mut r2] {
        c.login_open("user", "secret");
    }
    let check = |e: &Ev, obid: u64| {
        assert_eq!(e.guid, IF_GUID, "{e:?}");
        assert_eq!(e.obid, obid, "{e:?}");
        assert_ne!(e.timestamp, 0, "{e:?}");
        let skew = (unix_of(&e.datetime) - now_unix()).abs();
        assert!(skew <= 5, "datetime {} is {skew} s off now", e.datetime);
    };
    // ws1: empty datetime, timestamp 0, GUID "-" (zero) and an explicit all-zero GUID.
    send1(&mut s1, "E;0,20,3,0,,0,-,1,2,3");
    send1(
        &mut s1,
        "E;0,20,4,0,,0,00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00",
    );
    // ws2: no GUID, no datetime, no timestamp; then explicit zero values.
    send2(&mut s2, json!({"vscpClass":20,"vscpType":5,"vscpData":[9]}));
    send2(
        &mut s2,
        json!({"vscpClass":20,"vscpType":6,"vscpTimeStamp":0,"vscpDateTime":"",
               "vscpGuid":"00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00"}),
    );
    for r in [&mut r1, &mut r2] {
        let mut got = Vec::new();
        for _ in 0..4 {
            got.push(next_ev(r));
        }
        // Per sender the order is kept; between senders it may interleave.
        let from1: Vec<&Ev> = got.iter().filter(|e| e.vtype <= 4).collect();
        let from2: Vec<&Ev> = got.iter().filter(|e| e.vtype >= 5).collect();
        assert_eq!(from1.len(), 2, "{got:?}");
        assert_eq!(from2.len(), 2, "{got:?}");
        assert_eq!((from1[0].vtype, &from1[0].data), (3, &vec![1, 2, 3]));
        assert_eq!(from1[1].vtype, 4);
        assert_eq!((from2[0].vtype, &from2[0].data), (5, &vec![9]));
        assert_eq!(from2[1].vtype, 6);
        for e in from1 {
            check(e, 1);
        }
        for e in from2 {
            check(e, 2);
        }
    }
    stop(srv, vec![s1, s2, r1, r2]);
}

/// The wire text of a simple event in the client's dialect (no `C;`/reply handling).
fn simple_text(dialect: &str, class: u16, vtype: u16, data: &[u8]) -> String {
    if dialect == "ws1" {
        let mut line = format!("E;0,{class},{vtype},0,,0,-");
        for d in data {
            line.push_str(&format!(",{d}"));
        }
        line
    } else {
        json!({"type":"EVENT","event":{"vscpClass":class,"vscpType":vtype,"vscpData":data}})
            .to_string()
    }
}

fn is_ack(c: &Client, m: &str) -> bool {
    if c.dialect == "ws1" {
        m == "+;EVENT"
    } else {
        serde_json::from_str::<Value>(m).ok()
            == Some(json!({"type":"+","command":"EVENT","args":null}))
    }
}

/// Reads `n` messages and splits them into the number of EVENT acks and the events (by type).
fn read_mixed(c: &mut Client, n: usize) -> (usize, Vec<u64>) {
    let mut acks = 0;
    let mut types = Vec::new();
    for _ in 0..n {
        let m = c.recv_text();
        if is_ack(c, &m) {
            acks += 1;
        } else if c.dialect == "ws1" {
            types.push(parse_ws1(&m).vtype);
        } else {
            types.push(parse_ws2(&m).vtype);
        }
    }
    types.sort();
    (acks, types)
}

/// Two senders of different dialects and a bystander; returns what each saw.
fn echo_case(extra: Value) -> [(usize, Vec<u64>); 3] {
    let fx = Fixture::new("rt-echo");
    let srv = fx.start(extra.clone());
    let echo = extra["receive-sent-events"] == json!(true);
    let addr = srv.local_addr();
    let mut a1 = connect(addr, "/ws1");
    let mut a2 = connect(addr, "/ws2");
    let mut b = connect(addr, "/ws1");
    for c in [&mut a1, &mut a2, &mut b] {
        c.login_open("user", "secret");
    }
    a1.send(&simple_text("ws1", 20, 1, &[1]));
    a2.send(&simple_text("ws2", 20, 2, &[2]));
    let own = usize::from(echo);
    let r = [
        read_mixed(&mut a1, 2 + own),
        read_mixed(&mut a2, 2 + own),
        read_mixed(&mut b, 2),
    ];
    assert_all_quiet(&mut [(&mut a1, "a1"), (&mut a2, "a2"), (&mut b, "b")]);
    stop(srv, vec![a1, a2, b]);
    r
}

#[test]
fn sender_does_not_get_its_own_event_by_default() {
    let [a1, a2, b] = echo_case(json!({}));
    assert_eq!(a1, (1, vec![2]), "a1 gets only a2's event");
    assert_eq!(a2, (1, vec![1]), "a2 gets only a1's event");
    assert_eq!(b, (0, vec![1, 2]));
}

#[test]
fn receive_sent_events_echoes_to_the_sender() {
    let [a1, a2, b] = echo_case(json!({"receive-sent-events": true}));
    assert_eq!(a1, (1, vec![1, 2]), "a1 gets its own event too");
    assert_eq!(a2, (1, vec![1, 2]), "a2 gets its own event too");
    assert_eq!(b, (0, vec![1, 2]));
}

#[test]
fn events_queue_while_closed_and_flush_in_order_on_open() {
    let fx = Fixture::new("rt-queue");
    let srv = fx.start(json!({}));
    let addr = srv.local_addr();
    let mut s = connect(addr, "/ws1");
    s.login_open("user", "secret");
    let mut q1 = connect(addr, "/ws1");
    let mut q2 = connect(addr, "/ws2");
    assert!(login(&mut q1, "user"));
    assert!(login(&mut q2, "user"));
    for t in 1..=5 {
        send_simple(&mut s, 20, t, &[t as u8]);
    }
    // Logged in but not open: nothing is written, commands still answer.
    assert_all_quiet(&mut [(&mut q1, "q1 before OPEN"), (&mut q2, "q2 before OPEN")]);
    assert_eq!(q1.cmd("C;NOOP"), "+;NOOP");
    let v = q2.cmd2(json!({"type":"CMD","command":"NOOP","args":null}));
    assert_eq!(v["type"], "+");
    // OPEN: the reply first, then the queue in FIFO order.
    q1.send("C;OPEN");
    assert_eq!(q1.recv_text(), "+;OPEN");
    q2.send(&json!({"type":"CMD","command":"OPEN","args":null}).to_string());
    let v: Value = serde_json::from_str(&q2.recv_text()).unwrap();
    assert_eq!(
        (v["type"].as_str(), v["command"].as_str()),
        (Some("+"), Some("OPEN"))
    );
    for c in [&mut q1, &mut q2] {
        let got: Vec<(u64, Vec<u8>)> = (0..5)
            .map(|_| {
                let e = next_ev(c);
                (e.vtype, e.data)
            })
            .collect();
        let want: Vec<(u64, Vec<u8>)> = (1..=5).map(|t| (t, vec![t as u8])).collect();
        assert_eq!(got, want, "{}", c.dialect);
    }
    // CLOSE queues again; a second OPEN flushes what came meanwhile.
    assert_eq!(q1.cmd("C;CLOSE"), "+;CLOSE");
    let v = q2.cmd2(json!({"type":"CMD","command":"CLOSE","args":null}));
    assert_eq!(v["type"], "+");
    send_simple(&mut s, 20, 6, &[6]);
    send_simple(&mut s, 20, 7, &[7]);
    assert_all_quiet(&mut [(&mut q1, "q1 after CLOSE"), (&mut q2, "q2 after CLOSE")]);
    open(&mut q1);
    open(&mut q2);
    for c in [&mut q1, &mut q2] {
        let got: Vec<u64> = (0..2).map(|_| next_ev(c).vtype).collect();
        assert_eq!(got, vec![6, 7], "{}", c.dialect);
    }
    assert_all_quiet(&mut [(&mut q1, "q1 at the end"), (&mut q2, "q2 at the end")]);
    stop(srv, vec![s, q1, q2]);
}

#[test]
fn nothing_is_delivered_to_clients_that_are_not_logged_in() {
    let fx = Fixture::new("rt-unauth");
    let srv = fx.start(json!({}));
    let addr = srv.local_addr();
    let mut s = connect(addr, "/ws2");
    s.login_open("user", "secret");
    let mut u1 = connect(addr, "/ws1");
    let mut u2 = connect(addr, "/ws2");
    let mut failed = connect(addr, "/ws1");
    let r = failed.auth("user", "wrong");
    assert!(r.starts_with("-;AUTH;"), "{r}");
    // OPEN without login is refused.
    assert!(
        u1.cmd("C;OPEN").starts_with("-;OPEN;5;"),
        "OPEN before AUTH"
    );
    for t in 1..=3 {
        send_simple(&mut s, 20, t, &[]);
    }
    assert_all_quiet(&mut [
        (&mut u1, "u1"),
        (&mut u2, "u2"),
        (&mut failed, "failed login"),
    ]);
    // Logging in later does not release anything sent before.
    u1.login_open("user", "secret");
    u2.login_open("user", "secret");
    assert_all_quiet(&mut [(&mut u1, "u1 after login"), (&mut u2, "u2 after login")]);
    // From now on they receive.
    send_simple(&mut s, 20, 9, &[]);
    assert_eq!(next_ev(&mut u1).vtype, 9);
    assert_eq!(next_ev(&mut u2).vtype, 9);
    stop(srv, vec![s, u1, u2, failed]);
}

#[test]
fn session_filter_ws1_and_ws2() {
    let fx = Fixture::new("rt-sf");
    let srv = fx.start(json!({}));
    let addr = srv.local_addr();
    let mut s = connect(addr, "/ws1");
    s.login_open("admin", "secret");
    let mut f1 = connect(addr, "/ws1");
    let mut f2 = connect(addr, "/ws2");
    let mut all = connect(addr, "/ws1");
    let mut nofilter = connect(addr, "/ws1");
    f1.login_open("admin", "secret");
    f2.login_open("admin", "secret");
    all.login_open("admin", "secret");
    nofilter.login_open("user", "secret");
    assert_eq!(f1.cmd("C;SF;0,10,6,-;0,0xFFFF,0xFFFF,-"), "+;SF");
    let v = f2.cmd2(json!({"type":"CMD","command":"SETFILTER","args":{
        "filter_priority":0,"filter_class":10,"filter_type":6,
        "filter_guid":"00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00",
        "mask_priority":0,"mask_class":65535,"mask_type":65535,
        "mask_guid":"00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00"}}));
    assert_eq!(v, json!({"type":"+","command":"SETFILTER","args":null}));
    // `user` lacks the set-filter right: refused, and its filter stays all-pass.
    assert_eq!(
        nofilter.cmd("C;SF;0,10,6,-;0,0xFFFF,0xFFFF,-"),
        "-;SF;7;Not allowed to do that (check privileges)"
    );
    let dropped_before = srv
        .stats()
        .dropped(vscp_websocksrv::stats::DropReason::Filter);
    let sent = [(10, 5), (20, 6), (10, 6), (10, 7), (11, 6), (10, 6)];
    for (i, (class, t)) in sent.iter().enumerate() {
        send_simple(&mut s, *class, *t, &[i as u8]);
    }
    for c in [&mut f1, &mut f2] {
        let got: Vec<(u64, u64, Vec<u8>)> = (0..2)
            .map(|_| {
                let e = next_ev(c);
                (e.class, e.vtype, e.data)
            })
            .collect();
        assert_eq!(
            got,
            vec![(10, 6, vec![2]), (10, 6, vec![5])],
            "{}",
            c.dialect
        );
    }
    assert_all_quiet(&mut [(&mut f1, "f1 filtered"), (&mut f2, "f2 filtered")]);
    for c in [&mut all, &mut nofilter] {
        let got: Vec<(u64, u64)> = (0..6)
            .map(|_| {
                let e = next_ev(c);
                (e.class, e.vtype)
            })
            .collect();
        assert_eq!(got, sent.map(|(c, t)| (c as u64, t as u64)).to_vec());
    }
    // Four events were filtered out for each of the two filtered sessions.
    assert_eq!(
        srv.stats()
            .dropped(vscp_websocksrv::stats::DropReason::Filter)
            - dropped_before,
        8
    );
    // An all-zero filter lets everything through again.
    assert_eq!(f1.cmd("C;SF;0,0,0,-;0,0,0,-"), "+;SF");
    send_simple(&mut s, 20, 6, &[]);
    assert_eq!(next_ev(&mut f1).class, 20);
    assert_quiet(&mut f2, "f2 still filtered");
    stop(srv, vec![s, f1, f2, all, nofilter]);
}

#[test]
fn user_filter_from_users_json() {
    let fx = Fixture::new("rt-uf");
    let srv = fx.start(json!({}));
    let addr = srv.local_addr();
    let mut s = connect(addr, "/ws2");
    s.login_open("admin", "secret");
    let mut c1 = connect(addr, "/ws1");
    let mut c2 = connect(addr, "/ws2");
    c1.login_open("class20", "secret");
    c2.login_open("class20", "secret");
    for (i, (class, t)) in [(10, 1), (20, 1), (30, 1), (20, 2), (21, 2)]
        .iter()
        .enumerate()
    {
        send_simple(&mut s, *class, *t, &[i as u8]);
    }
    for c in [&mut c1, &mut c2] {
        let got: Vec<(u64, u64)> = (0..2)
            .map(|_| {
                let e = next_ev(c);
                (e.class, e.vtype)
            })
            .collect();
        assert_eq!(got, vec![(20, 1), (20, 2)], "{}", c.dialect);
    }
    assert_all_quiet(&mut [(&mut c1, "class20 ws1"), (&mut c2, "class20 ws2")]);
    stop(srv, vec![s, c1, c2]);
}

#[test]
fn driver_out_filter_drops_client_events_after_the_ack() {
    let fx = Fixture::new("rt-outf");
    let srv = fx.start(json!({"filter": {
        "out-filter": "0,20,0,-", "out-mask": "0,0xFFFF,0,-",
        // The in-filter only concerns events from the uplink; client events ignore it.
        "in-filter": "0,30,0,-", "in-mask": "0,0xFFFF,0,-"
    }}));
    let addr = srv.local_addr();
    let mut s1 = connect(addr, "/ws1");
    let mut s2 = connect(addr, "/ws2");
    let mut r1 = connect(addr, "/ws1");
    let mut r2 = connect(addr, "/ws2");
    for c in [&mut s1, &mut s2, &mut r1, &mut r2] {
        c.login_open("user", "secret");
    }
    let before = srv
        .stats()
        .dropped(vscp_websocksrv::stats::DropReason::Filter);
    // Acked (the sender is not told about filters), but nobody gets them.
    send_simple(&mut s1, 10, 6, &[1]);
    send_simple(&mut s2, 10, 6, &[2]);
    send_simple(&mut s1, 21, 0, &[3]);
    assert_all_quiet(&mut [
        (&mut r1, "r1"),
        (&mut r2, "r2"),
        (&mut s1, "s1"),
        (&mut s2, "s2"),
    ]);
    assert_eq!(
        srv.stats()
            .dropped(vscp_websocksrv::stats::DropReason::Filter)
            - before,
        3
    );
    // Class 20 passes to everyone but the sender.
    send_simple(&mut s1, 20, 6, &[4]);
    assert_eq!(next_ev(&mut r1).data, vec![4]);
    assert_eq!(next_ev(&mut r2).data, vec![4]);
    assert_eq!(next_ev(&mut s2).data, vec![4]);
    assert_quiet(&mut s1, "s1 sender");
    assert_eq!(
        srv.stats()
            .dropped(vscp_websocksrv::stats::DropReason::Filter)
            - before,
        3
    );
    let st = srv.stats();
    assert_eq!(
        st.received(vscp_proto::Dialect::Ws1) + st.received(vscp_proto::Dialect::Ws2),
        4
    );
    stop(srv, vec![s1, s2, r1, r2]);
}

#[test]
fn rights_to_send_and_receive() {
    let fx = Fixture::new("rt-rights");
    let srv = fx.start_with_users(&users_plus(), json!({}));
    let addr = srv.local_addr();
    let mut s = connect(addr, "/ws1");
    s.login_open("user", "secret");
    // vscp: receive-events only.
    let mut v1 = connect(addr, "/ws1");
    let mut v2 = connect(addr, "/ws2");
    v1.login_open("vscp", "secret");
    v2.login_open("vscp", "secret");
    // norecv: send-events only.
    let mut n1 = connect(addr, "/ws1");
    let mut n2 = connect(addr, "/ws2");
    n1.login_open("norecv", "secret");
    n2.login_open("norecv", "secret");
    // special1: may send class 10 only.
    let mut sp1 = connect(addr, "/ws1");
    let mut sp2 = connect(addr, "/ws2");
    sp1.login_open("special1", "secret");
    sp2.login_open("special1", "secret");

    // vscp receives...
    send_simple(&mut s, 20, 1, &[1]);
    assert_eq!(next_ev(&mut v1).data, vec![1]);
    assert_eq!(next_ev(&mut v2).data, vec![1]);
    // ...but cannot send.
    assert_eq!(
        v1.cmd("E;0,20,3,0,,0,-,1"),
        "-;7;Not allowed to do that (check privileges)"
    );
    let r = v2.cmd2(json!({"type":"EVENT","event":{"vscpClass":20,"vscpType":3}}));
    assert_eq!(
        (r["type"].as_str(), r["errcode"].as_u64()),
        (Some("-"), Some(7)),
        "{r}"
    );
    // norecv got nothing of the above, but can send.
    assert_all_quiet(&mut [(&mut n1, "norecv ws1"), (&mut n2, "norecv ws2")]);
    send_simple(&mut n1, 20, 2, &[2]);
    send_simple(&mut n2, 20, 3, &[3]);
    // special1 may send class 10, not class 20 (ws1 code 6, ws2 code 7).
    assert_eq!(sp1.cmd("E;0,20,3,0,,0,-"), "-;6;Not allowed to send event.");
    let r = sp2.cmd2(json!({"type":"EVENT","event":{"vscpClass":20,"vscpType":3}}));
    assert_eq!(
        (r["type"].as_str(), r["errcode"].as_u64()),
        (Some("-"), Some(7)),
        "{r}"
    );
    send_simple(&mut sp1, 10, 1, &[10]);
    send_simple(&mut sp2, 10, 2, &[11]);
    // Events of different senders may interleave across shards: compare as sets.
    for c in [&mut s, &mut v1, &mut v2] {
        let mut got: Vec<(u64, u64)> = (0..4)
            .map(|_| {
                let e = next_ev(c);
                (e.class, e.vtype)
            })
            .collect();
        got.sort();
        assert_eq!(
            got,
            vec![(10, 1), (10, 2), (20, 2), (20, 3)],
            "{}",
            c.dialect
        );
    }
    assert_all_quiet(&mut [
        (&mut n1, "norecv ws1 at the end"),
        (&mut n2, "norecv ws2 at the end"),
    ]);
    stop(srv, vec![s, v1, v2, n1, n2, sp1, sp2]);
}

/// Logs in from a given local address and reports whether AUTH succeeded.
fn login_from(addr: SocketAddr, local: IpAddr, path: &str, user: &str) -> bool {
    let mut c = connect_bound(addr, local, path);
    let ok = login(&mut c, user);
    if ok {
        open(&mut c);
    }
    c.close();
    ok
}

#[test]
fn remotes_allow_and_deny_ipv4() {
    let fx = Fixture::new("rt-remotes");
    let srv = fx.start_with_users(&users_plus(), json!({}));
    let addr = srv.local_addr();
    let ip = |d: u8| IpAddr::V4(Ipv4Addr::new(127, 0, 0, d));
    // Probe: binding 127.0.0.2 must work on Linux loopback.
    tcp_from(addr, ip(2)).expect("connect from 127.0.0.2");
    let cases: &[(&str, u8, bool)] = &[
        ("admin", 1, true), // no remotes: everyone
        ("admin", 2, true),
        ("lo4", 1, true), // +127.0.0.0/8
        ("lo4", 3, true),
        ("host2", 2, true), // +127.0.0.2 only
        ("host2", 3, false),
        ("host2", 1, false),
        ("remote", 1, false), // -127.0.0.0/8,+10.0.0.0/8
        ("remote", 4, false),
        ("lan", 1, false), // +192.168.0.0/16 only
        ("lan", 5, false),
        ("lo6", 1, false), // IPv6 loopback only
    ];
    let mut denied = 0;
    for path in ["/ws1", "/ws2"] {
        for &(user, d, want) in cases {
            let got = login_from(addr, ip(d), path, user);
            assert_eq!(got, want, "{user} from 127.0.0.{d} on {path}");
            if !want {
                denied += 1;
            }
        }
    }
    let st = srv.stats();
    assert_eq!(
        st.rejected(vscp_websocksrv::stats::RejectReason::Remotes),
        denied,
        "{st:?}"
    );
    assert_eq!(st.logins_failed, denied, "{st:?}");
    srv.shutdown();
}

#[test]
fn remotes_over_ipv6() {
    if let Err(e) = std::net::TcpListener::bind((Ipv6Addr::LOCALHOST, 0)) {
        eprintln!("SKIPPED remotes_over_ipv6: cannot bind [::1]: {e}");
        return;
    }
    let fx = Fixture::new("rt-remotes6");
    let srv = fx.start_with_users(&users_plus(), json!({"interface": "[::1]:0"}));
    let addr = srv.local_addr();
    assert!(addr.is_ipv6(), "{addr}");
    let lo6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
    for path in ["/ws1", "/ws2"] {
        assert!(login_from(addr, lo6, path, "lo6"), "lo6 over ::1");
        assert!(login_from(addr, lo6, path, "admin"), "admin over ::1");
        assert!(!login_from(addr, lo6, path, "lo4"), "lo4 (+127/8) over ::1");
        assert!(!login_from(addr, lo6, path, "remote"), "remote over ::1");
        assert!(!login_from(addr, lo6, path, "lan"), "lan over ::1");
    }
    // Events flow over IPv6 as well.
    let mut a = connect(addr, "/ws1");
    let mut b = connect(addr, "/ws2");
    a.login_open("lo6", "secret");
    b.login_open("lo6", "secret");
    send_simple(&mut a, 20, 1, &[6]);
    assert_eq!(next_ev(&mut b).data, vec![6]);
    assert_eq!(
        srv.stats()
            .rejected(vscp_websocksrv::stats::RejectReason::Remotes),
        6
    );
    stop(srv, vec![a, b]);
}
