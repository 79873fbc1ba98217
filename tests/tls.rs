//! TLS under the client listeners (issue 14): `wss://` and `stcp://` with certificates made at
//! test time, client certificates (`ssl_verify_peer`), certificate reloads with
//! `ssl_short_trust`, through `ServerHandle::reload_tls` (what SIGHUP calls) and through SIGHUP
//! to the binary, and the TLS metrics. The other suites run over TLS too with
//! `VSCP_TEST_TLS=1` (CI does, .ci/tls-suites); these tests need no such switch.
mod common;
use common::*;
use serde_json::json;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;
use vscp_testkit::tls::{Pki, Stream};
use vscp_websocksrv::stats::TlsOutcome;

const WAIT: Duration = Duration::from_secs(10);

/// A server with both listeners on TLS and the fixture's PKI; the clients are told.
fn start_tls(fx: &Fixture, pki: &Pki, extra: serde_json::Value) -> vscp_websocksrv::ServerHandle {
    let mut keys = json!({
        "interface": "wss://127.0.0.1:0",
        "tcpip-interface": "stcp://127.0.0.1:0",
        "ssl_certificate": "server.pem",
    });
    for (k, v) in extra.as_object().unwrap() {
        keys[k] = v.clone();
    }
    let srv = fx.start(keys);
    let config = pki.client_config(None);
    tls::register(srv.local_addr(), config.clone());
    tls::register(srv.tcpip_addr().unwrap(), config);
    srv
}

/// A TLS connection to `addr` with `config`, handshake done; the certificate it presented.
fn tls_to(addr: SocketAddr, config: Arc<rustls::ClientConfig>) -> (Stream, Vec<u8>) {
    let tcp = TcpStream::connect_timeout(&addr, WAIT).expect("connect");
    tcp.set_read_timeout(Some(WAIT)).unwrap();
    let mut s = Stream::tls(tcp, config);
    s.handshake().expect("TLS handshake");
    let cert = s.peer_certificate().expect("a server certificate");
    (s, cert)
}

#[test]
fn wss_and_stcp_clients_log_in_and_exchange_events() {
    let fx = Fixture::new("tls-both");
    let pki = fx.pki();
    let srv = start_tls(&fx, &pki, json!({}));
    let mut ws = connect(srv.local_addr(), "/ws1");
    ws.login_open("admin", "secret");
    let mut ws2 = connect(srv.local_addr(), "/ws2");
    ws2.login_open("admin", "secret");
    let tcpip = srv.tcpip_addr().unwrap();
    let mut link = Link::login(tcpip, "admin", "secret");
    assert_eq!(
        link.cmd("rcvloop")[0],
        "+OK - Receive loop entered. QUITLOOP to terminate."
    );
    // A long event, so records of more than one write are needed somewhere along the way.
    let data: Vec<String> = (0..400).map(|i| (i % 256).to_string()).collect();
    let r = ws.cmd(&format!("E;0,20,3,,,,-,{}", data.join(",")));
    assert_eq!(r, "+;EVENT");
    let got = ws2.recv_event();
    assert!(got.contains("\"vscpClass\": 20"), "{got}");
    let line = link.try_line(WAIT).expect("the event over stcp");
    assert!(line.contains(",20,3,"), "{line}");
    link.send("quitloop");
    while !link.line().starts_with("+OK - Quit receive loop") {}
    assert_eq!(link.cmd("send 0,30,5,,,,-,1,2"), ["+OK - Success."]);
    assert!(ws.recv_event().starts_with("E;0,30,5,"));
    assert_eq!(link.cmd("quit"), ["+OK - Connection closed by client."]);
    // The server's close_notify: a clean end of the stream, not a truncation.
    link.expect_closed();
    assert!(srv.stats().tls_handshakes(TlsOutcome::Ok) >= 3);
    stop(srv, vec![ws, ws2]);
}

#[test]
fn a_plain_client_on_a_tls_listener_is_refused_and_counted() {
    let fx = Fixture::new("tls-plain");
    let pki = fx.pki();
    let srv = start_tls(&fx, &pki, json!({}));
    let mut s = TcpStream::connect(srv.local_addr()).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(b"GET /ws1 HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut reply = Vec::new();
    let _ = s.read_to_end(&mut reply);
    // At most a TLS alert record (content type 21), never an HTTP answer.
    assert!(reply.is_empty() || reply[0] == 21, "{reply:?}");
    assert!(eventually(WAIT, || srv
        .stats()
        .tls_handshakes(TlsOutcome::Error)
        == 1));
    stop(srv, vec![]);
}

#[test]
fn client_certificates_are_checked_against_our_ca_only() {
    let fx = Fixture::new("tls-peer");
    let pki = fx.pki();
    let srv = start_tls(
        &fx,
        &pki,
        json!({"ssl_verify_peer": true, "ssl_ca_file": "ca.pem",
               "ssl_default_verify_paths": false}),
    );
    let addr = srv.local_addr();
    // Without a certificate, and with one from another CA: refused at the handshake (with
    // TLS 1.3 the client learns it at its first read).
    for (n, who) in [None, Some("stranger")].into_iter().enumerate() {
        let config = pki.client_config(who);
        let tcp = TcpStream::connect(addr).unwrap();
        tcp.set_read_timeout(Some(WAIT)).unwrap();
        let mut s = Stream::tls(tcp, config);
        let mut buf = [0u8; 64];
        let refused = s.handshake().is_err() || s.read(&mut buf).is_err();
        assert!(refused, "{who:?} was let in");
        assert!(
            eventually(WAIT, || srv
                .stats()
                .tls_handshakes(TlsOutcome::BadCertificate)
                == n as u64 + 1),
            "{who:?}: {:?}",
            srv.stats().tls_handshakes
        );
    }
    assert_eq!(srv.stats().sessions_accepted, 0);
    // With one our CA signed: logs in as usual, on both listeners.
    let config = pki.client_config(Some("client"));
    tls::register(addr, config.clone());
    tls::register(srv.tcpip_addr().unwrap(), config);
    let mut c = connect(addr, "/ws2");
    c.login_open("admin", "secret");
    c.assert_noop_next();
    let mut link = Link::login(srv.tcpip_addr().unwrap(), "admin", "secret");
    assert_eq!(link.cmd("noop"), ["+OK - Success."]);
    stop(srv, vec![c]);
}

#[test]
fn short_trust_serves_a_replaced_certificate_to_new_connections_only() {
    let fx = Fixture::new("tls-short");
    let pki = fx.pki();
    let srv = start_tls(&fx, &pki, json!({"ssl_short_trust": true}));
    let addr = srv.local_addr();
    let (_, first) = tls_to(addr, pki.client_config(None));
    let mut open = connect(addr, "/ws1");
    open.login_open("admin", "secret");
    let replaced = pki.reissue_server();
    assert_ne!(first, replaced);
    // Picked up by the watcher within seconds, without a signal.
    let served = eventually(WAIT, || tls_to(addr, pki.client_config(None)).1 == replaced);
    assert!(served, "the replaced certificate was not served");
    // The session opened before goes on.
    open.assert_noop_next();
    assert_eq!(open.cmd("E;0,20,3,,,,-,1"), "+;EVENT");
    stop(srv, vec![open]);
}

#[test]
fn without_short_trust_a_reload_serves_the_new_certificate() {
    let fx = Fixture::new("tls-reload");
    let pki = fx.pki();
    let srv = start_tls(&fx, &pki, json!({}));
    let addr = srv.local_addr();
    let (_, first) = tls_to(addr, pki.client_config(None));
    let mut open = Link::login(srv.tcpip_addr().unwrap(), "admin", "secret");
    let replaced = pki.reissue_server();
    // Nothing watches the files: the next connection still gets the old certificate...
    assert_eq!(tls_to(addr, pki.client_config(None)).1, first);
    // ...until the reload SIGHUP does.
    assert!(srv.reload_tls().expect("reload"));
    assert_eq!(tls_to(addr, pki.client_config(None)).1, replaced);
    assert_eq!(open.cmd("noop"), ["+OK - Success."]);
    // A file that does not load keeps what is served, and says which key.
    std::fs::write(pki.path("server.pem"), "not PEM").unwrap();
    let e = srv.reload_tls().unwrap_err().to_string();
    assert!(e.contains("ssl_certificate"), "{e}");
    assert_eq!(tls_to(addr, pki.client_config(None)).1, replaced);
    stop(srv, vec![]);
}

#[test]
fn sighup_reloads_the_certificate_of_the_running_binary() {
    let fx = Fixture::new("tls-sighup");
    let pki = fx.pki();
    let port = free_port();
    write_config(
        &fx.join("websocksrv.json"),
        json!({
            "interface": format!("wss://127.0.0.1:{port}"),
            "tcpip-interface": "",
            "metrics-interface": "",
            "key-file": "vscp.key",
            "path-users": "users.json",
            "ssl_certificate": "server.pem",
            "logging": {"console-enable-log": false}
        }),
        json!({}),
    );
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_vscp-websocksrv"))
        .arg("--config")
        .arg(fx.join("websocksrv.json"))
        .args(["--shards", "1"])
        .spawn()
        .expect("server starts");
    // Stopped however the test ends.
    let child = Child(child);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    wait_listening(addr);
    let (_, first) = tls_to(addr, pki.client_config(None));
    tls::register(addr, pki.client_config(None));
    let mut open = connect(addr, "/ws1");
    open.login_open("admin", "secret");
    let replaced = pki.reissue_server();
    assert_ne!(first, replaced);
    // SAFETY: kill(2) on the child this test started and has not reaped.
    assert_eq!(unsafe { libc::kill(child.0.id() as i32, libc::SIGHUP) }, 0);
    let served = eventually(WAIT, || tls_to(addr, pki.client_config(None)).1 == replaced);
    assert!(served, "SIGHUP did not reload the certificate");
    open.assert_noop_next();
    drop(open);
    drop(child);
}

/// A server process of a test, terminated when dropped.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        terminate(&mut self.0, WAIT);
    }
}

#[test]
fn tls_metrics_count_handshakes_and_show_the_expiry() {
    let fx = Fixture::new("tls-metrics");
    let pki = fx.pki();
    let srv = start_tls(&fx, &pki, json!({}));
    let (_, _) = tls_to(srv.local_addr(), pki.client_config(None));
    assert!(eventually(WAIT, || srv
        .stats()
        .tls_handshakes(TlsOutcome::Ok)
        == 1));
    let mut s = TcpStream::connect(srv.metrics_addr().unwrap()).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    write!(s, "GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    assert!(
        text.contains("vscp_tls_handshakes_total{core=\"0\",result=\"ok\"}")
            || text.contains("vscp_tls_handshakes_total{core=\"1\",result=\"ok\"}"),
        "{text}"
    );
    // rcgen's certificates are valid until 4096: far more than a year left.
    let expiry = text
        .lines()
        .find_map(|l| l.strip_prefix("vscp_tls_certificate_expiry_seconds "))
        .expect("the expiry gauge");
    let left: f64 = expiry.trim().parse().unwrap();
    assert!(left > 365.0 * 86_400.0, "{left}");
    assert_eq!(srv.tls_expiry_seconds().map(|s| s > 0), Some(true));
    assert!(
        text.contains("vscp_tls_reloads_total{result=\"ok\"} 0"),
        "{text}"
    );
    stop(srv, vec![]);
}
