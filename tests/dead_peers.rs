//! Fault test (issue 15): peers that vanish after their login without a FIN.
//!
//! Two layers find them. TCP keepalive, set on every accepted socket, lets the kernel find a
//! silent dead peer (checked here on the server's own accepted sockets with getsockopt: a dead
//! peer cannot be simulated over loopback without firewall rules, since the loopback kernel
//! always answers the probes). Websocket pings, when on, find a peer that stops answering
//! whatever its socket does; that is simulated here by a client that never reads, so it never
//! sees, let alone answers, a ping.

mod common;
use common::*;
use serde_json::json;
use socket2::SockRef;
use std::io::Read;
use std::net::SocketAddr;
use std::os::fd::BorrowedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Generous bound for what must happen within a few seconds (never a timing assertion).
const BOUND: Duration = Duration::from_secs(30);

/// The server's end of the connection whose client end is `client` (local address), found
/// among this process's descriptors: the server runs in the test process, so its accepted
/// sockets are ours to look at.
fn server_end(server: SocketAddr, client: SocketAddr) -> Option<BorrowedFd<'static>> {
    for entry in std::fs::read_dir("/proc/self/fd").ok()? {
        let Ok(fd) = entry.ok()?.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        // SAFETY: only looked at while the server (which owns the descriptor) runs, and only
        // with getsockopt/getsockname; a descriptor that is not a socket fails those calls.
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        let sock = SockRef::from(&fd);
        let addrs = (sock.local_addr(), sock.peer_addr());
        if let (Ok(local), Ok(peer)) = addrs {
            if local.as_socket() == Some(server) && peer.as_socket() == Some(client) {
                return Some(fd);
            }
        }
    }
    None
}

fn assert_keepalive(server: SocketAddr, client: SocketAddr, what: &str) {
    let fd = server_end(server, client).unwrap_or_else(|| panic!("{what}: accepted socket"));
    let s = SockRef::from(&fd);
    assert!(s.keepalive().unwrap(), "{what}: SO_KEEPALIVE");
    assert_eq!(
        s.keepalive_time().unwrap(),
        Duration::from_secs(45),
        "{what}"
    );
    assert_eq!(
        s.keepalive_interval().unwrap(),
        Duration::from_secs(7),
        "{what}"
    );
    assert_eq!(s.keepalive_retries().unwrap(), 4, "{what}");
}

#[test]
fn every_accepted_socket_has_tcp_keepalive_as_configured() {
    let fx = Fixture::new("keepalive");
    let srv = fx.start(json!({
        "tcp-keepalive-idle": 45, "tcp-keepalive-interval": 7, "tcp-keepalive-count": 4
    }));
    let mut ws = connect(srv.local_addr(), "/ws1");
    ws.login_open("user", "secret");
    let ws_local = ws.ws.get_ref().tcp().local_addr().unwrap();
    assert_keepalive(srv.local_addr(), ws_local, "websocket");
    let tcpip = srv.tcpip_addr().expect("tcp/ip listener");
    let raw = std::net::TcpStream::connect(tcpip).unwrap();
    // The accept runs on a shard thread: wait until the server holds the socket.
    let local = raw.local_addr().unwrap();
    assert!(eventually(BOUND, || server_end(tcpip, local).is_some()));
    assert_keepalive(tcpip, local, "tcp/ip");
    stop(srv, vec![ws]);
    drop(raw);

    // Off: the sockets keep the OS default (no keepalive).
    let fx = Fixture::new("keepalive-off");
    let srv = fx.start(json!({"tcp-keepalive-idle": 0}));
    let ws = connect(srv.local_addr(), "/ws2");
    let local = ws.ws.get_ref().tcp().local_addr().unwrap();
    let fd = server_end(srv.local_addr(), local).expect("accepted socket");
    assert!(!SockRef::from(&fd).keepalive().unwrap());
    stop(srv, vec![ws]);
}

#[test]
fn a_peer_that_stops_answering_pings_is_closed_after_the_pong_deadline() {
    let fx = Fixture::new("pings");
    let srv = fx.start(json!({"ws-ping-interval": 1, "ws-pong-timeout": 2}));
    // The dead one: logs in, then never reads (so never answers a ping) and never writes.
    let mut dead = connect(srv.local_addr(), "/ws1");
    dead.login_open("user", "secret");
    // One that reads (tungstenite answers pings while reading) but never writes.
    let mut reader = connect(srv.local_addr(), "/ws2");
    reader.login_open("user", "secret");
    // One that never reads, but sends commands: any traffic proves it alive.
    let mut talker = connect(srv.local_addr(), "/ws1");
    talker.login_open("user", "secret");
    // A tcp/ip client, silent all along: tcp/ip has no pings, its session is left alone.
    let mut link = Link::login(
        srv.tcpip_addr().expect("tcp/ip listener"),
        "admin",
        "secret",
    );
    assert!(eventually(BOUND, || srv.stats().sessions_active == 4));

    let done = AtomicBool::new(false);
    let polls = std::thread::scope(|sc| {
        let r = sc.spawn(|| {
            let mut polls = 0;
            while !done.load(Ordering::Relaxed) {
                // Pings are answered inside read; no text message comes to this client.
                if let Some(m) = reader.try_recv_text(Duration::from_millis(100)) {
                    panic!("reader got {m}");
                }
                polls += 1;
            }
            polls
        });
        sc.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                talker.send("C;NOOP");
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        let closed = eventually(BOUND, || srv.stats().dead_peers >= 1);
        done.store(true, Ordering::Relaxed);
        assert!(closed, "no dead peer found: {:?}", srv.stats());
        r.join().unwrap()
    });
    let st = srv.stats();
    eprintln!("after the close: {st:?} (the reader polled {polls} times)");
    assert_eq!(st.dead_peers, 1, "only the silent client is dead: {st:?}");
    assert!(
        st.pings_sent >= 2,
        "the silent one and the reader were pinged"
    );
    // When the dead client finally reads (raw, so that nothing answers now): the pings, then
    // the close and why, then the end of the connection.
    let mut wire = Vec::new();
    let tcp = dead.ws.get_ref().tcp();
    tcp.set_read_timeout(Some(BOUND)).unwrap();
    (&mut &*tcp)
        .read_to_end(&mut wire)
        .expect("the server ends the connection");
    let pings = wire.chunks(2).take_while(|f| f == &[0x89, 0x00]).count();
    assert_eq!(
        pings, 1,
        "one ping, none more without an answer: {wire:02x?}"
    );
    assert_eq!(
        &wire[2 * pings..],
        b"\x88\x0e\x03\xe9pong timeout",
        "then the close: 1001 pong timeout"
    );
    assert!(eventually(BOUND, || srv.stats().sessions_active == 3));
    // The others still work: the reader, the talker (behind its NOOP replies), tcp/ip.
    reader.assert_noop_next();
    talker.send("C;VERSION");
    talker.recv_until(|m| m.starts_with("+;VERSION"));
    assert_eq!(link.cmd("noop"), ["+OK - Success."]);
    assert_eq!(srv.stats().dead_peers, 1);
    stop(srv, vec![reader, talker]);
}

#[test]
fn a_dead_peer_is_found_while_its_socket_is_full() {
    use vscp_websocksrv::stats::DropReason;
    let fx = Fixture::new("pings-blocked");
    let srv = fx.start(json!({
        "ws-ping-interval": 1, "ws-pong-timeout": 2, "max-out-queue": 20
    }));
    // A subscriber with a receive buffer of a few KiB that never reads: the server's writes
    // to it stop at once, and its queue overflows.
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    sock.connect_timeout(&srv.local_addr().into(), Duration::from_secs(5))
        .unwrap();
    let mut dead = client_on_stream(sock.into(), srv.local_addr(), "/ws1");
    dead.login_open("user", "secret");
    let mut publisher = connect(srv.local_addr(), "/ws1");
    publisher.login_open("admin", "secret");
    let data = vec!["255"; 500].join(",");
    let mut sent = 0;
    // Until its queue has overflowed many times over: a queue that a writer merely behind
    // drains drops a few; one that keeps dropping is stuck behind a full socket (the kernel
    // takes up to a few MiB first: the send buffer grows to tcp_wmem's maximum).
    while srv.stats().dropped(DropReason::QueueFull) < 500 {
        assert!(sent < 20_000, "the subscriber's socket never filled");
        assert_eq!(publisher.cmd(&format!("E;0,20,3,0,,0,-,{data}")), "+;EVENT");
        sent += 1;
    }
    // The publisher reads from now on (answering pings), so only the subscriber can be dead.
    let done = AtomicBool::new(false);
    std::thread::scope(|sc| {
        sc.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                if let Some(m) = publisher.try_recv_text(Duration::from_millis(100)) {
                    panic!("publisher got {m}");
                }
            }
        });
        let found = eventually(BOUND, || srv.stats().sessions_active == 1);
        done.store(true, Ordering::Relaxed);
        assert!(found, "the subscriber is still there: {:?}", srv.stats());
    });
    let st = srv.stats();
    eprintln!("the socket was full after {sent} events; {st:?}");
    assert_eq!(
        st.dead_peers, 1,
        "the pong deadline ran while the session waited for its socket"
    );
    publisher.assert_noop_next();
    stop(srv, vec![publisher]);
    drop(dead);
}

#[test]
fn pings_are_off_by_default() {
    let fx = Fixture::new("pings-off");
    let srv = fx.start(json!({}));
    let mut c = connect(srv.local_addr(), "/ws1");
    c.login_open("user", "secret");
    // Longer than the shortest interval and timeout together (1 s + 1 s).
    std::thread::sleep(Duration::from_millis(2500));
    c.assert_noop_next();
    let st = srv.stats();
    assert_eq!((st.pings_sent, st.dead_peers), (0, 0), "{st:?}");
    stop(srv, vec![c]);
}
