//! The VSCP tcp/ip link interface over real sockets (spec tcp.md): the seed's telnet test run
//! line by line, events crossing between tcp/ip and websocket clients both ways, and bad input
//! that must leave the connection working.
mod common;
use common::*;
use serde_json::json;
use std::time::{Duration, Instant};

const SUCCESS: &str = "+OK - Success.";

/// Splits an event line into its fields, with the server-set ones (obid, date, timestamp) cut
/// out so that lines can be compared exactly otherwise.
fn fixed_fields(line: &str) -> Vec<String> {
    let f: Vec<&str> = line.split(',').collect();
    assert!(f.len() >= 7, "not an event line: {line}");
    assert!(f[3].parse::<u32>().is_ok(), "obid: {line}");
    assert!(f[4].ends_with('Z') && f[4].len() == 20, "datetime: {line}");
    assert!(
        f[5].parse::<u32>().is_ok_and(|t| t != 0),
        "timestamp: {line}"
    );
    f.iter()
        .enumerate()
        .filter(|(i, _)| !(3..=5).contains(i))
        .map(|(_, s)| s.to_string())
        .collect()
}

#[test]
fn the_seeds_test_run() {
    let fx = Fixture::new("tcp-seed");
    let srv = fx.start(json!({}));
    let addr = srv.tcpip_addr().expect("tcp/ip listener on");

    // telnet localhost 9598
    let (mut t, greeting) = Link::connect(addr);
    assert_eq!(greeting.len(), 4, "{greeting:?}");
    assert_eq!(
        greeting[0],
        "Welcome to the VSCP websocket server [standalone]."
    );
    assert_eq!(
        greeting[1],
        format!("Version: {}", env!("CARGO_PKG_VERSION"))
    );
    assert!(greeting[2].starts_with("Copyright (C) "));
    assert_eq!(greeting[3], SUCCESS);

    assert_eq!(
        t.cmd("user admin"),
        ["+OK - User name accepted, password please"]
    );
    assert_eq!(t.cmd("pass secret"), [SUCCESS]);
    let help = t.cmd("help");
    assert!(
        help.len() > 10 && help.last().unwrap() == SUCCESS,
        "{help:?}"
    );

    // A websocket client watching what the tcp/ip client sends.
    let mut ws = connect(srv.local_addr(), "/ws1");
    ws.login_open("admin", "secret");

    assert_eq!(
        t.cmd("send 0,20,3,,,,0:1:2:3:4:5:6:7:8:9:10:11:12:13:14:15,0,1,35"),
        [SUCCESS]
    );
    let e1 = ws.recv_event();
    assert_eq!(
        fixed_fields(e1.strip_prefix("E;").unwrap()),
        [
            "0",
            "20",
            "3",
            "00:01:02:03:04:05:06:07:08:09:10:11:12:13:14:15",
            "0x00",
            "0x01",
            "0x23"
        ]
    );
    let chid = t.cmd("chid")[0].clone();
    assert_eq!(
        e1.split(',').nth(3),
        Some(chid.as_str()),
        "obid = channel id"
    );

    // `-`: the interface GUID (getguid).
    let ifguid = t.cmd("getguid");
    assert_eq!(ifguid[1], SUCCESS);
    assert_eq!(t.cmd("send 0,20,3,,,,-,0,1,35"), [SUCCESS]);
    let e2 = ws.recv_event();
    assert_eq!(e2.split(',').nth(6), Some(ifguid[0].as_str()), "{e2}");

    // Events from the websocket client, for chkdata / retr / rcvloop. The sender's own events
    // were not queued for it (receive-sent-events is off).
    assert_eq!(t.cmd("chkdata"), ["0", SUCCESS]);
    for d in 1..=2 {
        assert_eq!(
            ws.cmd(&format!("E;0,20,3,,2026-12-05T08:14:05Z,1234,-,0,1,{d}")),
            "+;EVENT"
        );
    }
    assert!(
        eventually(Duration::from_secs(5), || t.cmd("chkdata")[0] == "2"),
        "two events queued"
    );
    let got = t.cmd("retr 2");
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!(got[2], SUCCESS);
    for (line, d) in got[..2].iter().zip(1..) {
        let f: Vec<&str> = line.split(',').collect();
        assert_eq!(f[..3], ["0", "20", "3"]);
        assert_eq!(f[4..6], ["2026-12-05T08:14:05Z", "1234"]);
        assert_eq!(f[7..], ["0x00", "0x01", format!("0x{d:02X}").as_str()]);
    }
    assert_eq!(t.cmd("retr"), ["-OK - No event(s) available"]);

    // rcvloop: events as they come, `+OK` every 2 s, quitloop.
    assert_eq!(
        t.cmd("rcvloop"),
        ["+OK - Receive loop entered. QUITLOOP to terminate."]
    );
    ws.cmd("E;0,20,3,,,,-,0,1,77");
    let ev = t.line();
    assert!(ev.starts_with("0,20,3,") && ev.ends_with(",0x4D"), "{ev}");
    let t0 = Instant::now();
    assert_eq!(t.line(), "+OK", "keepalive");
    let waited = t0.elapsed();
    assert!(
        waited < Duration::from_secs(4),
        "keepalive after {waited:?}"
    );
    t.send("quitloop");
    let mut l = t.line();
    while l == "+OK" {
        l = t.line();
    }
    assert_eq!(l, "+OK - Quit receive loop.");
    // '+' repeats the last command: its echo, then its reply.
    assert_eq!(t.cmd("+"), ["quitloop", "+OK - Quit receive loop."]);
    // No keepalive after the loop.
    assert_eq!(t.try_line(Duration::from_millis(2500)), None);

    assert_eq!(t.cmd("quit"), ["+OK - Connection closed by client."]);
    t.expect_closed();
    stop(srv, vec![ws]);
}

#[test]
fn tcp_events_reach_ws1_and_ws2_in_the_same_string() {
    let fx = Fixture::new("tcp-to-ws");
    let srv = fx.start(json!({}));
    let addr = srv.tcpip_addr().unwrap();
    let mut w1 = connect(srv.local_addr(), "/ws1");
    w1.login_open("admin", "secret");
    let mut w2 = connect(srv.local_addr(), "/ws2");
    w2.login_open("admin", "secret");
    let mut rx = Link::login(addr, "admin", "secret");
    let mut tx = Link::login(addr, "user", "secret");
    assert_eq!(
        tx.cmd("send 224,0x410,1027,0,2024-03-01T12:34:56,4000000000,ff:ff:ff:ff:ff:ff:ff:f5:00:00:11:22:33:44:00:01,17,34,51,68,0,171,15"),
        [SUCCESS]
    );
    let text = "224,1040,1027,OBID,2024-03-01T12:34:56Z,4000000000,FF:FF:FF:FF:FF:FF:FF:F5:00:00:11:22:33:44:00:01,0x11,0x22,0x33,0x44,0x00,0xAB,0x0F";
    let chid = tx.cmd("chid")[0].clone();
    let want = text.replace("OBID", &chid);
    assert_eq!(w1.recv_event(), format!("E;{want}"));
    let j: serde_json::Value = serde_json::from_str(&w2.recv_event()).unwrap();
    assert_eq!(j["event"]["vscpClass"], 1040, "{j}");
    assert_eq!(j["event"]["vscpType"], 1027);
    assert_eq!(j["event"]["vscpData"], json!([17, 34, 51, 68, 0, 171, 15]));
    assert!(eventually(Duration::from_secs(5), || rx.cmd("chkdata")[0] == "1"));
    assert_eq!(rx.cmd("retr"), [want.as_str(), SUCCESS]);
    // The sender was not given its own event.
    assert_eq!(tx.cmd("chkdata"), ["0", SUCCESS]);
    stop(srv, vec![w1, w2]);
}

#[test]
fn websocket_events_reach_tcp_clients_by_filter_and_right() {
    let fx = Fixture::new("ws-to-tcp");
    let srv = fx.start(json!({}));
    let addr = srv.tcpip_addr().unwrap();
    let mut all = Link::login(addr, "admin", "secret");
    let mut temp = Link::login(addr, "admin", "secret");
    assert_eq!(temp.cmd("setfilter 0,0x000A,0x0006,-"), [SUCCESS]);
    assert_eq!(temp.cmd("setmask 0,0xFFFF,0xFFFF,-"), [SUCCESS]);
    // Not logged in: never given events (tcp.md Q10).
    let (mut anon, _) = Link::connect(addr);
    let mut w2 = connect(srv.local_addr(), "/ws2");
    w2.login_open("admin", "secret");
    let ev = |class: u16, typ: u16| {
        json!({"type":"EVENT","event":{"head":0,"vscpClass":class,"vscpType":typ,
               "vscpGuid":"-","vscpData":[1,2]}})
    };
    assert_eq!(w2.cmd2(ev(10, 6))["type"], "+");
    assert_eq!(w2.cmd2(ev(20, 3))["type"], "+");
    assert!(eventually(Duration::from_secs(5), || all.cmd("chkdata")[0] == "2"));
    assert_eq!(temp.cmd("chkdata"), ["1", SUCCESS]);
    let line = temp.cmd("retr 1");
    assert!(line[0].starts_with("0,10,6,") && line[0].ends_with(",0x01,0x02"));
    assert_eq!(
        anon.cmd("chkdata"),
        ["-OK - Need to log in to perform this command."]
    );
    // Logging in later does not bring back what came before (tcp.md Q10).
    anon.cmd("user admin");
    anon.cmd("pass secret");
    assert_eq!(anon.cmd("chkdata"), ["0", SUCCESS]);
    assert_eq!(all.cmd("clrall"), ["+OK - All events cleared."]);
    assert_eq!(all.cmd("chkdata"), ["0", SUCCESS]);
    stop(srv, vec![w2]);
}

#[test]
fn interface_list_shows_every_live_client_of_every_transport() {
    let fx = Fixture::new("tcp-iflist");
    let srv = fx.start(json!({}));
    let addr = srv.tcpip_addr().unwrap();
    let mut w1 = connect(srv.local_addr(), "/ws1");
    w1.login_open("admin", "secret");
    let mut admin = Link::login(addr, "admin", "secret");
    let chid = admin.cmd("chid")[0].clone();
    let guid = admin.cmd("getguid")[0].clone();
    let list = admin.cmd("interface list");
    assert_eq!(list.last().map(String::as_str), Some(SUCCESS), "{list:?}");
    let lines = &list[..list.len() - 1];
    // This session and the websocket one (sessions may sit on either shard: one registry).
    assert_eq!(lines.len(), 2, "{list:?}");
    let mine = lines
        .iter()
        .find(|l| l.starts_with(&format!("{chid},5,")))
        .unwrap_or_else(|| panic!("no line for chid {chid}: {list:?}"));
    assert!(
        mine.starts_with(&format!("{chid},5,{guid},tcp/ip client 127.0.0.1:")),
        "{mine}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains(",8,") && l.contains(",ws1 websocket client 127.0.0.1:")),
        "{list:?}"
    );
    for l in lines {
        // What node-vscp-tcp parses: four fields, the start time after '|'.
        assert_eq!(l.split(',').count(), 4, "{l}");
        let started = l.split('|').nth(1).unwrap();
        assert!(
            started.starts_with(" Started at 20") && started.ends_with('Z'),
            "{l}"
        );
    }
    // Closed sessions leave the list.
    drop(w1);
    assert!(eventually(Duration::from_secs(5), || admin
        .cmd("interface")
        .len()
        == 2));
    assert_eq!(
        admin.cmd("interface unique FF:FF"),
        ["-OK - Command is not supported here."]
    );
    stop(srv, vec![]);
}

#[test]
fn check_interface_rights_needs_the_transports_right_to_log_in() {
    // `vscp` has receive-events only: neither the tcpip nor the ws right.
    let fx = Fixture::new("tcp-ifrights");
    let off = fx.start(json!({}));
    let mut v = Link::login(off.tcpip_addr().unwrap(), "vscp", "secret");
    assert_eq!(
        v.cmd("noop"),
        [SUCCESS],
        "off by default: REF never checked it"
    );
    stop(off, vec![]);

    let fx = Fixture::new("tcp-ifrights-on");
    let srv = fx.start(json!({"check-interface-rights": true}));
    let addr = srv.tcpip_addr().unwrap();
    let (mut v, _) = Link::connect(addr);
    assert_eq!(
        v.cmd("user vscp"),
        ["+OK - User name accepted, password please"]
    );
    assert_eq!(
        v.cmd("pass secret"),
        ["-OK - User does not have rights to use tcp/ip interface."]
    );
    v.expect_closed();
    // `user` has both rights.
    let mut u = Link::login(addr, "user", "secret");
    assert_eq!(u.cmd("noop"), [SUCCESS]);
    let mut w = connect(srv.local_addr(), "/ws1");
    assert_eq!(w.auth("vscp", "secret"), "-;AUTH;5;Not authorised.");
    let mut ok = connect(srv.local_addr(), "/ws1");
    ok.login_open("user", "secret");
    assert!(eventually(Duration::from_secs(5), || srv
        .stats()
        .logins_failed
        == 2));
    stop(srv, vec![w, ok]);
}

#[test]
fn bad_input_gets_one_clear_line_and_the_connection_goes_on() {
    let fx = Fixture::new("tcp-bad");
    let srv = fx.start(json!({}));
    let addr = srv.tcpip_addr().unwrap();
    let mut t = Link::login(addr, "admin", "secret");
    // T12: telnet negotiation and commands are ignored, never answered.
    t.send_raw(b"\xFF\xFB\x18\xFF\xFD\x03noop\r\n");
    assert_eq!(t.reply(), [SUCCESS]);
    t.send_raw(b"\xFF\xF4\xFF\xFD\x06no\xFF\xFA\x18\x00xterm\xFF\xF0op\r\n");
    assert_eq!(t.reply(), [SUCCESS]);
    t.send_raw(b"noop\xFF\xFF\r\n");
    assert_eq!(t.reply(), ["-OK - Unknown command"]);
    // A line over 8 KiB, with the next command in the same write.
    let mut long = vec![b'x'; 9000];
    long.extend_from_slice(b"\r\nnoop\r\n");
    t.send_raw(&long);
    assert_eq!(t.reply(), ["-OK - Command line too long."]);
    assert_eq!(t.reply(), [SUCCESS]);
    // 1 MiB without a line end, in pieces, then the end: one answer.
    for _ in 0..16 {
        t.send_raw(&[b'y'; 65536]);
    }
    t.send_raw(b"\n");
    assert_eq!(t.reply(), ["-OK - Command line too long."]);
    // Pipelined lines: all of them, in order (tcp.md Q2).
    t.send_raw(b"noop\r\nchkdata\r\nversion\r\n");
    assert_eq!(t.reply(), [SUCCESS]);
    assert_eq!(t.reply(), ["0", SUCCESS]);
    assert_eq!(t.reply().len(), 2);
    // Binary junk, NUL inside a word, bare LF, empty lines (no reply), bad arguments.
    t.send_raw(b"\x00\x01\x02\x80\x90garbage\r\n");
    assert_eq!(t.reply(), ["-OK - Unknown command"]);
    t.send_raw(b"no\x00op\n\r\n\n   \n");
    assert_eq!(t.reply(), ["-OK - Unknown command"]);
    for (cmd, want) in [
        ("send 0,abc,3,,,,-,1", "-OK - Invalid parameter or format"),
        ("send 0,20,3", "-OK - Invalid parameter or format"),
        (
            "setfilter 0,10,6,ZZ:QQ",
            "-OK - Invalid parameter or format",
        ),
        ("retr abc", "-OK - Invalid parameter or format"),
        ("+999", "-OK - Invalid parameter or format"),
        ("noopx", "-OK - Unknown command"),
        ("binary", "-OK - Binary mode not supported"),
        ("shutdown", "-OK - Command is not supported here."),
    ] {
        assert_eq!(t.cmd(cmd), [want], "{cmd}");
    }
    assert_eq!(t.cmd("noop"), [SUCCESS]);
    assert_eq!(t.cmd("wcyd"), ["00-00-00-00-00-00-84-68", SUCCESS]);
    let ch = t.cmd("challenge");
    assert_eq!(ch.len(), 1);
    let sid = ch[0].strip_prefix("+OK - ").unwrap();
    assert!(
        sid.len() == 32
            && sid
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );
    assert_ne!(t.cmd("challenge")[0], ch[0], "new each time");

    // T2: a wrong password closes the connection after its line; so does a refused remote,
    // with the same line (tcp.md Q23).
    for user in ["admin", "remote"] {
        let (mut bad, _) = Link::connect(addr);
        bad.cmd(&format!("user {user}"));
        let pass = if user == "admin" { "wrong" } else { "secret" };
        assert_eq!(
            bad.cmd(&format!("pass {pass}")),
            ["-OK - Invalid username or password."]
        );
        bad.expect_closed();
    }
    // Half a line, then the client goes.
    let (mut half, _) = Link::connect(addr);
    half.send_raw(b"noo");
    drop(half);
    assert_eq!(t.cmd("noop"), [SUCCESS], "the server is fine");
    stop(srv, vec![]);
}

#[test]
fn limits_apply_to_tcp_clients_too() {
    let fx = Fixture::new("tcp-limits");
    // Without the share for connections not logged in (tests/abuse.rs), which would refuse
    // the second one first, as over the per-address share.
    let srv = fx.start(json!({
        "max-clients": 1, "auth-timeout": 1,
        "max-unauthenticated": 0, "max-unauthenticated-per-address": 0
    }));
    let addr = srv.tcpip_addr().unwrap();
    let (mut first, _) = Link::connect(addr);
    // Over max-clients: one line instead of the greeting, then the end.
    let stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(LINK_TIMEOUT)).unwrap();
    let mut stream = tls::Stream::over(stream, addr);
    let mut text = String::new();
    std::io::Read::read_to_string(&mut stream, &mut text).unwrap();
    assert_eq!(text, "-OK - Max number of clients connected.\r\n");
    // No login within auth-timeout: closed without a line (REF).
    let t0 = Instant::now();
    first.expect_closed();
    assert!(t0.elapsed() < Duration::from_secs(5));
    stop(srv, vec![]);
}

#[test]
fn the_tcpip_listener_can_be_turned_off() {
    let fx = Fixture::new("tcp-off");
    let srv = fx.start(json!({"tcpip-interface": ""}));
    assert_eq!(srv.tcpip_addr(), None);
    assert_eq!(srv.listen_addrs().len(), 1);
    stop(srv, vec![]);
}

#[test]
fn two_listeners_on_one_address_do_not_start() {
    let fx = Fixture::new("tcp-clash");
    let port = free_port();
    let cfg = fx.config(json!({
        "interface": format!("127.0.0.1:{port}"),
        "tcpip-interface": format!("tcp://127.0.0.1:{port}"),
    }));
    let users = vscp_proto::UserDb::from_json(USERS_JSON).unwrap();
    let err = vscp_websocksrv::start(&cfg, users).expect_err("refused");
    let text = err.to_string();
    assert!(
        text.contains("interface") && text.contains("tcpip-interface"),
        "{text}"
    );
}
