//! `/metrics`, `/healthz` and `/readyz`: the series move by the right amounts while clients log
//! in, send, receive and get dropped.
mod common;
use common::*;
use serde_json::json;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect to the metrics listener");
    s.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read the response");
    let (head, body) = out.split_once("\r\n\r\n").expect("HTTP response");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, body.to_string())
}

/// Series name with labels (as rendered) → value, summed over the `core` label.
fn scrape(addr: SocketAddr) -> HashMap<String, f64> {
    let (status, body) = http_get(addr, "/metrics");
    assert_eq!(status, 200);
    let mut m = HashMap::new();
    for line in body
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (series, value) = line.rsplit_once(' ').expect("series value");
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}"));
        *m.entry(strip_core(series)).or_insert(0.0) += value;
    }
    m
}

/// Removes the `core="N"` label so per-core series add up.
fn strip_core(series: &str) -> String {
    let Some((name, labels)) = series.split_once('{') else {
        return series.to_string();
    };
    let labels: Vec<&str> = labels
        .trim_end_matches('}')
        .split(',')
        .filter(|l| !l.starts_with("core="))
        .collect();
    if labels.is_empty() {
        name.to_string()
    } else {
        format!("{name}{{{}}}", labels.join(","))
    }
}

fn get(m: &HashMap<String, f64>, k: &str) -> f64 {
    *m.get(k).unwrap_or_else(|| panic!("series {k} missing"))
}

#[test]
fn series_follow_sessions_logins_events_and_drops() {
    let fx = Fixture::new("metrics");
    let srv = fx.start(json!({"max-out-queue": 5, "max-message-size": 4096}));
    let maddr = srv.metrics_addr().expect("metrics enabled");
    let m0 = scrape(maddr);
    assert_eq!(get(&m0, "vscp_sessions_active"), 0.0);
    assert_eq!(get(&m0, "vscp_build_info{version=\"0.1.0\"}"), 1.0);
    assert_eq!(get(&m0, "vscp_outbox_capacity_events"), 5.0);

    let addr = srv.local_addr();
    let mut a = connect(addr, "/ws1");
    let mut b = connect(addr, "/ws2");
    let mut stalled = connect(addr, "/ws1");
    let mut bad = connect(addr, "/ws1");
    a.login_open("admin", "secret");
    b.login_open("user", "secret");
    stalled.auth("admin", "secret"); // logged in, channel closed: events queue up
    assert_eq!(bad.auth("admin", "wrong"), "-;AUTH;5;Not authorised.");
    let m1 = scrape(maddr);
    assert_eq!(get(&m1, "vscp_sessions_active"), 4.0);
    assert_eq!(get(&m1, "vscp_sessions_accepted_total"), 4.0);
    assert_eq!(get(&m1, "vscp_logins_total{result=\"ok\"}"), 3.0);
    assert_eq!(get(&m1, "vscp_logins_total{result=\"failed\"}"), 1.0);
    assert_eq!(get(&m1, "vscp_login_duration_seconds_count"), 4.0);

    // 8 events from a: b receives all 8; the closed session queues 5 and drops 3 (queue_full),
    // then b's event pushes out one more.
    for i in 0..8 {
        assert_eq!(a.cmd(&format!("E;0,20,3,0,,0,-,{i}")), "+;EVENT");
    }
    for _ in 0..8 {
        b.recv_event();
    }
    // One event from b (ws2) that a filters out with its session filter.
    assert_eq!(a.cmd("C;SF;0,10,0,-;0,0xFFFF,0,-"), "+;SF");
    let r = b.cmd2(json!({"type":"EVENT","event":{"vscpClass":20,"vscpType":3}}));
    assert_eq!(r["type"], "+");
    // An oversized message closes `bad` with 1009.
    bad.send(&"x".repeat(5000));
    assert_eq!(bad.read_close_code(), Some(1009));

    // Sessions may sit on different shards: an event reaches another shard's sessions through a
    // ring, so wait for every series that such a hop feeds, not only for b's deliveries.
    assert!(eventually(Duration::from_secs(5), || {
        let m = scrape(maddr);
        get(&m, "vscp_events_delivered_total{dialect=\"ws2\"}") == 8.0
            && get(&m, "vscp_sessions_active") == 3.0
            && get(&m, "vscp_events_dropped_total{reason=\"queue_full\"}") >= 4.0
            && get(&m, "vscp_events_dropped_total{reason=\"filter\"}") >= 1.0
            && get(&m, "vscp_outbox_events") >= 5.0
    }));
    let m2 = scrape(maddr);
    assert_eq!(get(&m2, "vscp_events_received_total{dialect=\"ws1\"}"), 8.0);
    assert_eq!(get(&m2, "vscp_events_received_total{dialect=\"ws2\"}"), 1.0);
    assert_eq!(
        get(&m2, "vscp_events_delivered_total{dialect=\"ws1\"}"),
        0.0
    );
    assert_eq!(
        get(&m2, "vscp_events_dropped_total{reason=\"queue_full\"}"),
        4.0
    );
    assert_eq!(
        get(&m2, "vscp_events_dropped_total{reason=\"filter\"}"),
        1.0
    );
    assert_eq!(
        get(&m2, "vscp_events_dropped_total{reason=\"oversized\"}"),
        1.0
    );
    // Only the stalled session has a queue, and it is full.
    assert_eq!(get(&m2, "vscp_outbox_events"), 5.0);
    assert_eq!(get(&m2, "vscp_delivery_latency_seconds_count"), 8.0);
    assert!(get(&m2, "vscp_bytes_received_total") > 0.0);
    assert!(get(&m2, "vscp_bytes_sent_total") > 0.0);
    let rejected: f64 = ["max_clients", "remotes", "auth_deadline", "handshake"]
        .iter()
        .map(|r| {
            get(
                &m2,
                &format!("vscp_sessions_rejected_total{{reason=\"{r}\"}}"),
            )
        })
        .sum();
    assert_eq!(rejected, 0.0);

    // The stalled session opens: its 5 queued events are delivered.
    assert_eq!(stalled.cmd("C;OPEN"), "+;OPEN");
    for _ in 0..5 {
        stalled.recv_event();
    }
    assert!(eventually(Duration::from_secs(5), || {
        get(
            &scrape(maddr),
            "vscp_events_delivered_total{dialect=\"ws1\"}",
        ) == 5.0
    }));
    assert_eq!(get(&scrape(maddr), "vscp_outbox_events"), 0.0);

    assert_eq!(http_get(maddr, "/healthz"), (200, "ok\n".into()));
    assert_eq!(http_get(maddr, "/readyz"), (200, "ready\n".into()));
    assert_eq!(http_get(maddr, "/nope").0, 404);
    drop((a, b, stalled));
    srv.shutdown();
}

#[test]
fn password_cache_skips_pbkdf2_on_relogin() {
    let fx = Fixture::new("metrics-cache");
    let srv = fx.start(json!({}));
    let maddr = srv.metrics_addr().unwrap();
    // Log in repeatedly on one shard (connect_on_shard) so the per-shard cache is used.
    for _ in 0..3 {
        let mut c = connect_on_shard(&srv, "/ws1", 0);
        assert!(c.auth("admin", "secret").starts_with("+;AUTH1;"));
    }
    let m = scrape(maddr);
    assert_eq!(get(&m, "vscp_login_password_checks_total"), 1.0);
    assert_eq!(get(&m, "vscp_login_cache_hits_total"), 2.0);
    // A wrong password is never served from the cache.
    let mut c = connect_on_shard(&srv, "/ws1", 0);
    assert_eq!(c.auth("admin", "nope"), "-;AUTH;5;Not authorised.");
    let m = scrape(maddr);
    assert_eq!(get(&m, "vscp_login_password_checks_total"), 2.0);
    // Replacing the users file empties the cache.
    srv.reload_users(vscp_proto::UserDb::from_json(USERS_JSON).unwrap());
    let mut c = connect_on_shard(&srv, "/ws1", 0);
    assert!(c.auth("admin", "secret").starts_with("+;AUTH1;"));
    assert_eq!(get(&scrape(maddr), "vscp_login_password_checks_total"), 3.0);
    srv.shutdown();
}
