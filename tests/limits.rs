//! Connection limits and deadlines: `max-clients` (exact, across shards), `auth-timeout`,
//! `idle-timeout`, and graceful shutdown (close 1001).
mod common;
use common::*;
use serde_json::json;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Tries a websocket upgrade; `Err(status)` when the server answered with an HTTP error.
fn try_connect(addr: SocketAddr, path: &str) -> Result<Client, u16> {
    let stream = TcpStream::connect(addr).expect("tcp connect");
    Client::handshake(stream, addr, path, READ_TIMEOUT)
}

#[test]
fn max_clients_is_enforced_exactly() {
    let fx = Fixture::new("lim-max");
    // Without the separate share for connections not logged in (tests/abuse.rs), which with
    // 3 slots would keep two of them for logged-in clients.
    let srv = fx.start(json!({
        "max-clients": 3, "max-unauthenticated": 0, "max-unauthenticated-per-address": 0
    }));
    let addr = srv.local_addr();
    let a = try_connect(addr, "/ws1").expect("first");
    let mut b = try_connect(addr, "/ws2").expect("second");
    let c = try_connect(addr, "/ws1").expect("third");
    // The slots are taken at accept, logged in or not, on whichever shard.
    for path in ["/ws1", "/ws2", "/ws1"] {
        assert_eq!(try_connect(addr, path).err(), Some(503), "over the limit");
    }
    assert_eq!(
        srv.stats()
            .rejected(vscp_websocksrv::stats::RejectReason::MaxClients),
        3
    );
    assert_eq!(srv.stats().sessions_active, 3);
    // The sessions that got in work normally.
    b.login_open("user", "secret");
    // After one leaves, exactly one newcomer is admitted again.
    a.close();
    let mut d = None;
    assert!(
        eventually(Duration::from_secs(5), || {
            match try_connect(addr, "/ws2") {
                Ok(cl) => {
                    d = Some(cl);
                    true
                }
                Err(503) => false,
                Err(s) => panic!("status {s}"),
            }
        }),
        "a slot frees up after a client leaves"
    );
    assert_eq!(try_connect(addr, "/ws1").err(), Some(503));
    let mut d = d.unwrap();
    d.login_open("user", "secret");
    // Dropped connections (no close handshake) free their slot too.
    drop(c);
    assert!(eventually(Duration::from_secs(5), || try_connect(
        addr, "/ws1"
    )
    .map(|cl| cl.close())
    .is_ok()));
    assert!(
        eventually(Duration::from_secs(5), || srv.stats().sessions_active == 2),
        "b and d remain: {:?}",
        srv.stats()
    );
    stop(srv, vec![b, d]);
}

#[test]
fn auth_deadline_closes_only_unauthenticated_sessions() {
    let fx = Fixture::new("lim-auth");
    let srv = fx.start(json!({"auth-timeout": 1}));
    let addr = srv.local_addr();
    let t0 = Instant::now();
    let mut idle1 = connect(addr, "/ws1");
    let mut idle2 = connect(addr, "/ws2");
    let mut busy = connect(addr, "/ws1"); // talks but never logs in
    let mut ok1 = connect(addr, "/ws1");
    let mut ok2 = connect(addr, "/ws2");
    ok1.login_open("user", "secret");
    ok2.login_open("user", "secret");
    // Traffic is not a login: NOOPs do not extend the deadline.
    for _ in 0..3 {
        assert_eq!(busy.cmd("C;NOOP"), "+;NOOP");
        std::thread::sleep(Duration::from_millis(200));
    }
    for (c, who) in [
        (&mut idle1, "idle ws1"),
        (&mut idle2, "idle ws2"),
        (&mut busy, "busy"),
    ] {
        match c.wait_for_close(Duration::from_secs(4)) {
            Ending::Close(Some((code, _))) => assert_eq!(code, 1008, "{who}"),
            other => panic!("{who}: {other:?}"),
        }
        let t = t0.elapsed();
        assert!(
            t >= Duration::from_millis(900) && t <= Duration::from_secs(3),
            "{who} closed after {t:?}"
        );
    }
    // Well past the deadline the logged-in sessions still work.
    std::thread::sleep(Duration::from_millis(2500).saturating_sub(t0.elapsed()));
    assert_eq!(ok1.cmd("C;NOOP"), "+;NOOP");
    let v = ok2.cmd2(json!({"type":"CMD","command":"NOOP","args":null}));
    assert_eq!(v["type"], "+");
    assert_eq!(
        srv.stats()
            .rejected(vscp_websocksrv::stats::RejectReason::AuthDeadline),
        3
    );
    assert!(
        eventually(Duration::from_secs(2), || srv.stats().sessions_active == 2),
        "{:?}",
        srv.stats()
    );
    stop(srv, vec![idle1, idle2, busy, ok1, ok2]);
}

#[test]
fn idle_timeout_closes_silent_sessions() {
    let fx = Fixture::new("lim-idle");
    let srv = fx.start(json!({"idle-timeout": 1}));
    let addr = srv.local_addr();
    let mut silent1 = connect(addr, "/ws1");
    let mut silent2 = connect(addr, "/ws2");
    let mut chatty = connect(addr, "/ws2");
    silent1.login_open("user", "secret");
    silent2.login_open("user", "secret");
    chatty.login_open("user", "secret");
    let t0 = Instant::now();
    // Receiving events is not activity of the client; sending NOOPs is.
    let mut sender = connect(addr, "/ws1");
    sender.login_open("user", "secret");
    let mut closed = [None, None];
    while t0.elapsed() < Duration::from_millis(2600) {
        assert!(chatty.cmd2(json!({"type":"CMD","command":"NOOP","args":null}))["type"] == "+");
        assert_eq!(sender.cmd("E;0,20,3,0,,0,-"), "+;EVENT");
        for (i, c) in [&mut silent1, &mut silent2].into_iter().enumerate() {
            if closed[i].is_none() {
                match c.wait_for_close(Duration::from_millis(100)) {
                    Ending::Open => {}
                    Ending::Close(Some((code, _))) => {
                        assert_eq!(code, 1000, "silent client {i}");
                        closed[i] = Some(t0.elapsed());
                    }
                    other => panic!("silent client {i}: {other:?}"),
                }
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    for (i, t) in closed.iter().enumerate() {
        let t = t.unwrap_or_else(|| panic!("silent client {i} was not closed"));
        assert!(
            t >= Duration::from_millis(800) && t <= Duration::from_millis(2600),
            "silent client {i} closed after {t:?}"
        );
    }
    // The chatty client and the sender survived.
    let v = chatty.cmd2(json!({"type":"CMD","command":"NOOP","args":null}));
    assert_eq!(v["type"], "+");
    assert_eq!(sender.cmd("C;NOOP"), "+;NOOP");
    stop(srv, vec![silent1, silent2, chatty, sender]);
}

#[test]
fn idle_timeout_also_applies_before_login() {
    let fx = Fixture::new("lim-idle-unauth");
    // auth-timeout stays at its default (30 s); the 1 s idle limit is the tighter one.
    let srv = fx.start(json!({"idle-timeout": 1}));
    let addr = srv.local_addr();
    let t0 = Instant::now();
    let mut c = connect(addr, "/ws1");
    match c.wait_for_close(Duration::from_secs(4)) {
        Ending::Close(Some((code, _))) => assert_eq!(code, 1000),
        other => panic!("silent unauthenticated client: {other:?}"),
    }
    let t = t0.elapsed();
    assert!(t <= Duration::from_secs(3), "closed after {t:?}");
    srv.shutdown();
}

#[test]
fn shutdown_closes_every_session_with_1001() {
    let fx = Fixture::new("lim-shutdown");
    let srv = fx.start(json!({}));
    let addr = srv.local_addr();
    let mut clients = Vec::new();
    for i in 0..6usize {
        let path = if i.is_multiple_of(2) { "/ws1" } else { "/ws2" };
        let mut c = connect(addr, path);
        match i {
            0 | 1 => {} // not logged in
            2 | 3 => {
                assert!(!c.auth("user", "secret").is_empty());
            }
            _ => c.login_open("user", "secret"),
        }
        clients.push(c);
    }
    // Something queued for the open sessions while they shut down.
    let mut s = connect(addr, "/ws1");
    s.login_open("user", "secret");
    assert_eq!(s.cmd("E;0,20,3,0,,0,-"), "+;EVENT");
    clients.push(s);
    let t0 = Instant::now();
    let stopper = std::thread::spawn(move || {
        srv.shutdown();
        t0.elapsed()
    });
    for (i, c) in clients.iter_mut().enumerate() {
        match c.wait_for_close(Duration::from_secs(5)) {
            Ending::Close(Some((code, _))) => assert_eq!(code, 1001, "client {i}"),
            other => panic!("client {i}: {other:?}"),
        }
    }
    let took = stopper.join().unwrap();
    assert!(took < Duration::from_secs(3), "shutdown took {took:?}");
    // Nothing listens any more.
    assert!(
        TcpStream::connect(addr).is_err() || try_connect_quietly(addr).is_err(),
        "still accepting after shutdown"
    );
}

/// Any upgrade attempt; an error of whatever kind counts as refused.
fn try_connect_quietly(addr: SocketAddr) -> Result<(), String> {
    let s = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    tungstenite::client::client(format!("ws://{addr}/ws1"), s)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[test]
fn shutdown_is_prompt_even_with_a_client_that_never_reads() {
    let fx = Fixture::new("lim-shutdown-stalled");
    let srv = fx.start(json!({"max-out-queue": 50}));
    let addr = srv.local_addr();
    let mut stalled = connect(addr, "/ws1");
    stalled.login_open("user", "secret");
    let mut s = connect(addr, "/ws1");
    s.login_open("user", "secret");
    // Fill the stalled client's socket buffers (about 2.5 KB per event).
    let data: Vec<String> = (0..500).map(|i| (i % 256).to_string()).collect();
    let line = format!("E;0,20,3,0,,0,-,{}", data.join(","));
    for _ in 0..2000 {
        s.send(&line);
    }
    let mut acks = 0;
    while acks < 2000 {
        if s.recv_text() == "+;EVENT" {
            acks += 1;
        }
    }
    let t0 = Instant::now();
    srv.shutdown();
    let took = t0.elapsed();
    assert!(took < Duration::from_secs(5), "shutdown took {took:?}");
    drop(stalled);
}
