//! Abuse limits (issue 14): the failed-login budget, the share of `max-clients` kept for
//! connections not logged in yet, `handshake-timeout`, limits per source address, the PROXY
//! protocol. Real server, real sockets; a second source address is 127.0.0.2 (any 127/8
//! address works on Linux without setup).
mod common;
use common::*;
use serde_json::json;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::Duration;
use vscp_websocksrv::admission::Limit;
use vscp_websocksrv::stats::RejectReason;

const ATTACKER: &str = "127.0.0.1";
const OTHER: &str = "127.0.0.2";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A websocket upgrade from `local`; `Err(status)` when the server answered with an HTTP error.
fn try_connect_from(addr: SocketAddr, local: &str, path: &str) -> Result<Client, u16> {
    let stream = tcp_from(addr, ip(local)).expect("tcp connect");
    Client::handshake(stream, addr, path, READ_TIMEOUT)
}

/// `/metrics` as series (labels as rendered, `core` summed away) → value.
fn scrape(addr: SocketAddr) -> HashMap<String, f64> {
    let mut s = TcpStream::connect(addr).expect("connect to the metrics listener");
    s.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    write!(s, "GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read the response");
    let (_, body) = out.split_once("\r\n\r\n").expect("HTTP response");
    let mut m = HashMap::new();
    for line in body
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (series, value) = line.rsplit_once(' ').expect("series value");
        let series = match series.split_once('{') {
            None => series.to_string(),
            Some((name, labels)) => {
                let kept: Vec<&str> = labels
                    .trim_end_matches('}')
                    .split(',')
                    .filter(|l| !l.starts_with("core="))
                    .collect();
                match kept.is_empty() {
                    true => name.to_string(),
                    false => format!("{name}{{{}}}", kept.join(",")),
                }
            }
        };
        *m.entry(series).or_insert(0.0) += value.parse::<f64>().expect("a number");
    }
    m
}

fn metric(m: &HashMap<String, f64>, series: &str) -> f64 {
    *m.get(series)
        .unwrap_or_else(|| panic!("series {series} missing"))
}

/// `C;CHALLENGE` for the SID the next AUTH must use (a failed AUTH makes a new one).
fn challenge(c: &mut Client) {
    let r = c.cmd("C;CHALLENGE");
    c.sid = r
        .strip_prefix("+;AUTH0;")
        .unwrap_or_else(|| panic!("CHALLENGE reply {r:?}"))
        .to_string();
}

/// Acceptance 4: 200 wrong passwords for a PBKDF2 user from one address in a few seconds cost
/// at most the failed-login budget in password checks, and a client from another address logs
/// in and exchanges events meanwhile. Afterwards the attacker's new connections are refused
/// (HTTP 429, the tcp/ip refusal line) and the episode is logged and counted once.
#[test]
fn brute_force_costs_at_most_the_budget_in_password_checks() {
    let fx = Fixture::new("abuse-brute");
    // Default limits: budget 20, one back every 3 s, 60 s cool-down.
    let srv = fx.start(json!({}));
    let addr = srv.local_addr();
    let metrics = srv.metrics_addr().expect("metrics on");
    let before = metric(&scrape(metrics), "vscp_login_password_checks_total");
    assert_eq!(before, 0.0);

    let attackers: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(move || {
                let mut c = try_connect_from(addr, ATTACKER, "/ws1").expect("attacker connects");
                for _ in 0..50 {
                    let r = c.auth("admin", "not-the-password");
                    assert!(r.starts_with("-;AUTH"), "a wrong password succeeded: {r}");
                    challenge(&mut c);
                }
                c.close();
            })
        })
        .collect();

    // Meanwhile, from another address: a PBKDF2 login and events both ways.
    let mut sender = try_connect_from(addr, OTHER, "/ws1").expect("other address connects");
    sender.login_open("admin", "secret");
    let mut receiver = try_connect_from(addr, OTHER, "/ws2").expect("other address connects");
    receiver.login_open("user", "secret");
    for i in 0..20 {
        assert_eq!(sender.cmd(&format!("E;0,20,3,0,,0,-,{i}")), "+;EVENT");
        let ev = receiver.recv_event();
        let v: serde_json::Value = serde_json::from_str(&ev).expect("ws2 event is JSON");
        assert_eq!(v["event"]["vscpData"], json!([i]), "{ev}");
    }
    for a in attackers {
        a.join().expect("attacker thread");
    }

    let m = scrape(metrics);
    let checks = metric(&m, "vscp_login_password_checks_total");
    // The budget, plus the one PBKDF2 login of the other address.
    assert!(
        checks <= 21.0,
        "{checks} password checks for 200 wrong passwords"
    );
    assert!(checks >= 1.0, "the other address's login was checked");
    assert_eq!(srv.stats().login_slow_checks as f64, checks);
    let refused = metric(&m, "vscp_login_attempts_refused_total");
    assert!(
        refused >= 179.0,
        "{refused} attempts refused without a check"
    );
    assert_eq!(
        metric(
            &m,
            "vscp_admission_episodes_total{reason=\"login_failures\"}"
        ),
        1.0
    );
    assert_eq!(srv.stats().logins_failed, 200);

    // New connections from the attacker are refused during the cool-down, on both listeners.
    assert_eq!(try_connect_from(addr, ATTACKER, "/ws1").err(), Some(429));
    let tcpip = srv.tcpip_addr().expect("tcp/ip listener on");
    let stream = tcp_from(tcpip, ip(ATTACKER)).expect("tcp connect");
    stream.set_read_timeout(Some(LINK_TIMEOUT)).unwrap();
    let mut link = Link::on(tls::Stream::over(stream, tcpip));
    assert_eq!(
        link.reply(),
        ["-OK - Too many connections or failed logins from this address."]
    );
    link.expect_closed();
    let a = srv.admission_stats();
    assert_eq!(a.refused(Limit::LoginFailures), 2);
    // The other address still gets in.
    let mut late = try_connect_from(addr, OTHER, "/ws1").expect("other address connects");
    late.login_open("user", "secret");
    stop(srv, vec![sender, receiver, late]);
}

/// A burst of correct logins from one address (a NAT after a restart) is never refused by the
/// failed-login budget: only checks that run hold a reservation, and they succeed.
#[test]
fn a_burst_of_correct_logins_from_one_address_all_succeed() {
    let fx = Fixture::new("abuse-burst");
    let srv = fx.start(json!({}));
    let addr = srv.local_addr();
    let logins: Vec<_> = (0..40)
        .map(|i| {
            std::thread::spawn(move || {
                let path = if i % 2 == 0 { "/ws1" } else { "/ws2" };
                let mut c = try_connect_from(addr, "127.0.0.5", path).expect("connects");
                c.login_open("admin", "secret");
                c
            })
        })
        .collect();
    let clients: Vec<Client> = logins.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(srv.stats().logins_ok, 40);
    assert_eq!(srv.admission_stats().logins_refused, 0);
    stop(srv, clients);
}

/// The tcp/ip link interface: a failed `pass` closes the connection, so a guesser reconnects;
/// once the budget is used the attempts are answered like a wrong password without a check,
/// and then new connections get the refusal line.
#[test]
fn tcpip_guessing_is_refused_without_checks() {
    let fx = Fixture::new("abuse-tcp");
    let srv = fx.start(json!({"login-failure-budget": 3}));
    let tcpip = srv.tcpip_addr().expect("tcp/ip listener on");
    let mut refused_lines = 0;
    for _ in 0..6 {
        let (mut l, greeting) = Link::connect(tcpip);
        if greeting.last().map(String::as_str) != Some("+OK - Success.") {
            assert_eq!(
                greeting,
                ["-OK - Too many connections or failed logins from this address."]
            );
            refused_lines += 1;
            continue;
        }
        assert_eq!(
            l.cmd("user admin"),
            ["+OK - User name accepted, password please"]
        );
        assert_eq!(l.cmd("pass wrong"), ["-OK - Invalid username or password."]);
        l.expect_closed();
    }
    assert_eq!(srv.stats().login_slow_checks, 3);
    assert_eq!(refused_lines, 3);
    srv.shutdown();
}

/// Acceptance 5, with the default `max-clients` (100) and shares: one address holding as many
/// connections as it can without logging in (upgraded websockets, silent TCP connections)
/// gets a quarter of the unauthenticated half at most; another address still gets in.
#[test]
fn one_address_cannot_take_every_slot_by_default() {
    let fx = Fixture::new("abuse-slots");
    let srv = fx.start(json!({"max-clients": 100}));
    let addr = srv.local_addr();
    let mut held = Vec::new();
    let mut refusals = Vec::new();
    // Twice the slots there are: whatever is not refused is held.
    for i in 0..200 {
        match try_connect_from(addr, ATTACKER, if i % 2 == 0 { "/ws1" } else { "/ws2" }) {
            Ok(c) => held.push(c),
            Err(status) => refusals.push(status),
        }
    }
    let mut silent = Vec::new();
    for _ in 0..20 {
        silent.push(tcp_from(addr, ip(ATTACKER)).expect("tcp connect"));
    }
    assert_eq!(
        held.len(),
        12,
        "max-unauthenticated-per-address default: 100 / 2 / 4"
    );
    assert!(refusals.iter().all(|&s| s == 429), "{refusals:?}");
    let a = srv.admission_stats();
    assert!(a.refused(Limit::UnauthenticatedPerAddress) >= 188);
    assert_eq!(a.episodes(Limit::UnauthenticatedPerAddress), 1);
    assert_eq!(a.unauthenticated, 12);
    // Another address logs in and works; a second attacking address takes its own quarter,
    // and the logged-in client stays out of the share.
    let mut ok = try_connect_from(addr, OTHER, "/ws1").expect("another address gets in");
    ok.login_open("user", "secret");
    assert_eq!(ok.cmd("C;NOOP"), "+;NOOP");
    let mut second = Vec::new();
    for _ in 0..20 {
        if let Ok(c) = try_connect_from(addr, "127.0.0.3", "/ws1") {
            second.push(c);
        }
    }
    assert_eq!(second.len(), 12);
    assert_eq!(srv.admission_stats().unauthenticated, 24);
    let mut late = try_connect_from(addr, OTHER, "/ws2").expect("another address gets in");
    late.login_open("user", "secret");
    assert_eq!(srv.stats().rejected(RejectReason::MaxClients), 0);
    drop(silent);
    held.extend(second);
    held.push(ok);
    held.push(late);
    stop(srv, held);
}

/// Acceptance 4 of the brief (and an issue-15 fault test): a half-sent upgrade and a silent
/// TCP connection hold their `max-clients` slots no longer than `handshake-timeout`.
#[test]
fn half_sent_upgrades_and_silent_connections_hold_no_slot_past_the_handshake_deadline() {
    let fx = Fixture::new("abuse-handshake");
    let srv = fx.start(json!({
        "max-clients": 2, "handshake-timeout": 1,
        "max-unauthenticated": 0, "max-unauthenticated-per-address": 0
    }));
    let addr = srv.local_addr();
    let silent = TcpStream::connect(addr).expect("tcp connect");
    // Over TLS the half request goes inside TLS (the TLS handshake completes).
    let mut half = tls::Stream::over(TcpStream::connect(addr).expect("tcp connect"), addr);
    half.write_all(b"GET /ws1 HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n")
        .unwrap();
    half.flush().unwrap();
    // Both hold a slot now (accepted: counted as not logged in), so a third is refused.
    assert!(eventually(Duration::from_secs(5), || {
        srv.admission_stats().unauthenticated == 2
    }));
    assert_eq!(try_connect_from(addr, OTHER, "/ws1").err(), Some(503));
    // The deadline closes both (no answer to either) and gives their slots back.
    let closed = |r: std::io::Result<usize>, who: &str| match r {
        Ok(0) => {}
        Ok(n) => panic!("{who}: {n} bytes instead of the end"),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("{who}: not closed: {e}"),
    };
    let mut buf = [0u8; 64];
    let mut silent = silent;
    silent
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let r = silent.read(&mut buf);
    if !tls::tls_mode() {
        closed(r, "silent");
    }
    half.tcp()
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    closed(half.read(&mut buf), "half-sent");
    assert!(
        eventually(Duration::from_secs(5), || srv
            .stats()
            .rejected(RejectReason::Handshake)
            == 2),
        "{:?}",
        srv.stats()
    );
    let mut a = try_connect_from(addr, OTHER, "/ws1").expect("a slot is free again");
    a.login_open("user", "secret");
    let b = try_connect_from(addr, OTHER, "/ws2").expect("and the second one");
    stop(srv, vec![a, b]);
}

/// A flood of connections over `max-clients` that never send their request: each refusal's
/// answer waits up to a second for the request, so at most 256 per listener and core are being
/// answered at once; the rest are closed unanswered and counted, and the server stays usable.
#[test]
fn refusals_being_answered_are_bounded() {
    let fx = Fixture::new("abuse-refusals");
    let srv = fx.start(json!({
        "max-clients": 1, "max-unauthenticated": 0, "max-unauthenticated-per-address": 0
    }));
    let addr = srv.local_addr();
    let mut held = try_connect_from(addr, OTHER, "/ws1").expect("the one slot");
    held.login_open("user", "secret");
    // 1,200 silent connections over two cores: more than 2 x 256 at once.
    let flood: Vec<TcpStream> = (0..1200)
        .map(|_| tcp_from(addr, ip(ATTACKER)).expect("tcp connect"))
        .collect();
    assert!(
        eventually(Duration::from_secs(10), || {
            let refused = srv.stats().rejected(RejectReason::MaxClients);
            refused == 1200
        }),
        "{:?}",
        srv.stats()
    );
    let unanswered = srv.admission_stats().unanswered;
    assert!(
        unanswered > 0 && unanswered < 1200,
        "{unanswered} unanswered"
    );
    drop(flood);
    // Still serving: the logged-in client works, and a newcomer is told why it cannot come in.
    assert_eq!(held.cmd("C;NOOP"), "+;NOOP");
    assert!(eventually(Duration::from_secs(5), || try_connect_from(
        addr, OTHER, "/ws2"
    )
    .err()
        == Some(503)));
    stop(srv, vec![held]);
}

/// `max-clients-per-address` and `connection-rate`, and SIGHUP's way of changing them
/// (`ServerHandle::reconfigure`).
#[test]
fn per_address_limits_apply_and_reload() {
    let fx = Fixture::new("abuse-reload");
    let srv = fx.start(json!({}));
    let addr = srv.local_addr();
    let mut a = try_connect_from(addr, ATTACKER, "/ws1").expect("first");
    a.login_open("user", "secret");
    let b = try_connect_from(addr, ATTACKER, "/ws1").expect("second");
    let cfg = fx.config(json!({"max-clients-per-address": 2, "connection-rate": 0}));
    let changed = srv.reconfigure(&cfg);
    assert!(
        changed.iter().any(|c| c.contains("abuse limits")),
        "{changed:?}"
    );
    // Logged in or not, two is the most from one address; another address is not affected.
    assert_eq!(try_connect_from(addr, ATTACKER, "/ws2").err(), Some(429));
    let c = try_connect_from(addr, OTHER, "/ws2").expect("another address");
    assert_eq!(srv.admission_stats().refused(Limit::PerAddress), 1);
    drop(b);
    assert!(eventually(Duration::from_secs(5), || {
        try_connect_from(addr, ATTACKER, "/ws1")
            .map(|c| c.close())
            .is_ok()
    }));
    // A connection rate of 1 a second with a burst of 2: of 6 connections in a row only the
    // burst (and one more per second the loop takes) get in.
    // Over TLS a connection over the rate is closed before the TLS handshake (no answer).
    let cfg = fx.config(json!({"connection-rate": 1, "connection-burst": 2}));
    srv.reconfigure(&cfg);
    let mut clients = vec![a, c];
    let mut refused = Vec::new();
    for _ in 0..6 {
        let attempt = std::panic::catch_unwind(|| try_connect_from(addr, "127.0.0.4", "/ws1"));
        match attempt {
            Ok(Ok(cl)) => clients.push(cl),
            Ok(Err(status)) => refused.push(Some(status)),
            // The client helper panics when the connection ends without an HTTP answer.
            Err(_) => refused.push(None),
        }
    }
    let answer = if tls::tls_mode() { None } else { Some(429) };
    assert!(
        !refused.is_empty() && refused.iter().all(|&s| s == answer),
        "{refused:?}"
    );
    assert!(clients.len() >= 4, "the burst of 2 got in");
    assert!(srv.admission_stats().episodes(Limit::ConnectionRate) >= 1);
    stop(srv, clients);
}

/// The PROXY protocol from a trusted proxy: the address it carries is the client's for
/// `remotes` (user `remote` is denied on 127/8 and allowed on 10/8) and for the limits. From
/// an untrusted peer the header is just a bad request; a trusted peer without one is dropped.
#[test]
fn proxy_protocol_from_trusted_proxies_only() {
    let fx = Fixture::new("abuse-proxy");
    let srv =
        fx.start(json!({"proxy-protocol-from": "127.0.0.1/32", "max-clients-per-address": 1}));
    let addr = srv.local_addr();
    let via_proxy = |header: &[u8]| {
        let mut s = tcp_from(addr, ip(ATTACKER)).expect("tcp connect");
        s.write_all(header).unwrap();
        Client::handshake(s, addr, "/ws1", READ_TIMEOUT)
    };
    // v1: the client is 10.1.2.3, whom `remotes` allows.
    let mut c = via_proxy(b"PROXY TCP4 10.1.2.3 127.0.0.1 40000 8884\r\n").expect("v1");
    c.login_open("remote", "secret");
    // v2, another client address, also allowed.
    let mut v2 = b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c".to_vec();
    v2.extend_from_slice(&[10, 9, 9, 9, 127, 0, 0, 1, 0x9c, 0x40, 0x22, 0xb4]);
    let mut d = via_proxy(&v2).expect("v2");
    d.login_open("remote", "secret");
    // The per-address limit counts 10.1.2.3, not the proxy: its second connection is refused.
    assert_eq!(
        via_proxy(b"PROXY TCP4 10.1.2.3 127.0.0.1 40001 8884\r\n").err(),
        Some(429)
    );
    let upgrade = b"GET /ws1 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
        Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    let closed_without_upgrade = |from: &str, first: &[u8]| {
        let mut s = tcp_from(addr, ip(from)).expect("tcp connect");
        s.write_all(first).unwrap();
        s.write_all(upgrade).unwrap();
        s.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        let mut got = Vec::new();
        let _ = s.read_to_end(&mut got);
        assert!(
            !got.starts_with(b"HTTP/1.1 101"),
            "{}",
            String::from_utf8_lossy(&got)
        );
    };
    if !tls::tls_mode() {
        // From 127.0.0.2 (not trusted) a PROXY line is not HTTP: a bad request, closed.
        closed_without_upgrade(OTHER, b"PROXY TCP4 10.1.2.3 127.0.0.1 40000 8884\r\n");
        // A trusted proxy that sends no header: dropped.
        closed_without_upgrade(ATTACKER, b"");
        let a = srv.admission_stats();
        assert_eq!((a.proxy_ok, a.proxy_failed), (3, 1));
    }
    stop(srv, vec![c, d]);
}
