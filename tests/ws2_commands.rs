//! ws2 JSON protocol, command by command, with the exact replies of ws2.md (REC where REF and
//! REC differ): login and every login failure (strict IV = SID by default, client IVs only with
//! `ws2-accept-client-iv`), every command, and sending events.
mod common;
use common::*;
use serde_json::{json, Value};
use std::time::Duration;

fn pos(cmd: &str, args: Value) -> Value {
    json!({"type":"+","command":cmd,"args":args})
}

fn neg(cmd: &str, code: u16) -> Value {
    let text = match code {
        1 => "Syntax error.",
        2 => "Unknown command.",
        5 => "Not authorised.",
        7 => "Not allowed to do that (check privileges)",
        8 => "Parse error, invalid format.",
        9 => "Unknown type, only know 'COMMAND' and 'EVENT'.",
        _ => unreachable!(),
    };
    json!({"type":"-","command":cmd,"errcode":code,"errstr":text})
}

fn sid_bytes(c: &Client) -> [u8; 16] {
    vscp_proto::auth::hex_decode_16(&c.sid).expect("sid is hex")
}

fn auth_args(c: &mut Client, args: Value) -> Value {
    c.cmd2_args("AUTH", args)
}

/// CHALLENGE → `{"type":"+","command":"CHALLENGE","args":{"sid":..}}`; returns the SID.
fn challenge(c: &mut Client) -> String {
    let v = c.cmd2_args("CHALLENGE", Value::Null);
    let sid = v["args"]["sid"].as_str().expect("sid").to_string();
    assert_eq!(v, pos("CHALLENGE", json!({ "sid": sid })));
    assert_eq!(sid.len(), 32);
    sid
}

fn auth2(c: &mut Client, user: &str, password: &str) -> Value {
    serde_json::from_str(&c.auth(user, password)).unwrap()
}

fn ev(v: Value) -> Value {
    json!({"type":"EVENT","event":v})
}

fn event_json(s: &str) -> Value {
    let v: Value = serde_json::from_str(s).unwrap();
    assert_eq!(v["type"], "EVENT", "{s}");
    v["event"].clone()
}

fn custom_users() -> String {
    let salt = [9u8; 16];
    json!({"users": [
        {"name": "admin",
         "password": vscp_proto::password::mkpasswd("admin", "secret", salt),
         "rights": "admin"},
        {"name": "longpw",
         "password": vscp_proto::password::mkpasswd("longpw", "a:very-long:secret-123", salt),
         "rights": "user"}
    ]})
    .to_string()
}

// ----------------------------------------------------------------------------- login

#[test]
fn greeting_and_reply_byte_layouts() {
    let fx = Fixture::new("ws2-layout");
    let srv = fx.start(json!({}));
    let addr = srv.local_addr();
    // The greeting, read raw: REF layout, no `command` member (ws2.md §8, Q1).
    let stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    let stream = tls::Stream::over(stream, addr);
    let (mut ws, _) = tungstenite::client::client(format!("ws://{addr}/ws2"), stream).unwrap();
    let greeting = ws.read().unwrap().into_text().unwrap().to_string();
    let sid = greeting
        .strip_prefix(r#"{    "type" : "+",     "args" : ["AUTH0",""#)
        .and_then(|s| s.strip_suffix(r#""]}"#))
        .unwrap_or_else(|| panic!("greeting {greeting:?}"));
    assert_eq!(sid.len(), 32);
    drop(ws);

    let mut c = connect(addr, "/ws2");
    let noop = r#"{"type":"CMD","command":"NOOP","args":null}"#;
    assert_eq!(
        c.cmd(noop),
        r#"{ "type" : "+",  "command" : "NOOP",  "args" : null}"#
    );
    assert_eq!(
        c.cmd(r#"{"type":"CMD","command":"OPEN","args":null}"#),
        r#"{ "type" : "-",  "command" : "OPEN",  "errcode" : 5,  "errstr" : "Not authorised." }"#
    );
    assert_eq!(
        c.cmd(r#"{"type":"CMD","command":"CHALLENGE","args":null}"#),
        format!(
            r#"{{ "type" : "+",  "command" : "CHALLENGE",  "args" : {{"sid": "{}"}}}}"#,
            c.sid
        )
    );
    let v = c.cmd(r#"{"type":"CMD","command":"VERSION","args":null}"#);
    assert!(
        v.starts_with(r#"{ "type" : "+",  "command" : "VERSION",  "args" : { "version" : ""#),
        "{v}"
    );
    let auth = c.auth("admin", "secret");
    assert_eq!(
        auth,
        r#"{ "type" : "+",  "command" : "AUTH",  "args" : null}"#
    );
    stop(srv, vec![c]);
}

#[test]
fn login_success_w2_style() {
    let fx = Fixture::new("ws2-login");
    let srv = fx.start(json!({}));
    let addr = srv.local_addr();
    let mut a = connect(addr, "/ws2");
    assert_eq!(auth2(&mut a, "admin", "secret"), pos("AUTH", Value::Null));
    // Lower-case type and command, as in vectors.md W2.
    let mut b = connect(addr, "/ws2");
    let (iv, crypto) = (b.sid.clone(), b.crypto("user", "secret"));
    let r = b.cmd2(json!({"type":"cmd","command":"auth","args":{"iv":iv,"crypto":crypto}}));
    assert_eq!(r, pos("AUTH", Value::Null));
    assert_eq!(b.cmd2_args("OPEN", Value::Null), pos("OPEN", Value::Null));
    // Lower-case hex, space padding (vectors.md A2 style), PKCS#7 (A8 style).
    let mut c = connect(addr, "/ws2");
    let crypto = c.crypto("user", "secret").to_ascii_lowercase();
    let iv = c.sid.to_ascii_lowercase();
    assert_eq!(
        auth_args(&mut c, json!({"iv":iv,"crypto":crypto})),
        pos("AUTH", Value::Null)
    );
    let mut d = connect(addr, "/ws2");
    let crypto = encrypt_raw(&sid_bytes(&d), b"admin:secret    ");
    let iv = d.sid.clone();
    assert_eq!(
        auth_args(&mut d, json!({"iv":iv,"crypto":crypto})),
        pos("AUTH", Value::Null)
    );
    let mut e = connect(addr, "/ws2");
    let crypto = encrypt_raw(&sid_bytes(&e), b"admin:secret\x04\x04\x04\x04");
    let iv = e.sid.clone();
    assert_eq!(
        auth_args(&mut e, json!({"iv":iv,"crypto":crypto, "extra": 1})),
        pos("AUTH", Value::Null)
    );
    stop(srv, vec![a, b, c, d, e]);
}

#[test]
fn login_failures() {
    let fx = Fixture::new("ws2-loginfail");
    let srv = fx.start(json!({}));
    let mut a = connect(srv.local_addr(), "/ws2");
    let mut tries = 0;
    // Credential failures: errcode 5.
    for (user, pw) in [
        ("admin", "wrong"),
        ("nobody", "secret"),
        ("admin", ""),
        ("remote", "secret"),
        ("lan", "secret"),
    ] {
        assert_eq!(auth2(&mut a, user, pw), neg("AUTH", 5), "{user}:{pw}");
        a.sid = challenge(&mut a);
        tries += 1;
    }
    assert!(eventually(Duration::from_secs(2), || srv
        .stats()
        .rejected(vscp_websocksrv::stats::RejectReason::Remotes)
        == 2));
    let sid = a.sid.clone();
    let crypto = a.crypto("admin", "secret");
    // IV problems and missing/non-string values read as "not authorised" (ws2.md §3).
    let cases5 = [
        json!({"iv":"00112233445566778899AABBCCDDEEFF","crypto":crypto}),
        json!({"iv":format!("{}G", &sid[..31]),"crypto":crypto}),
        json!({"iv":&sid[..30],"crypto":crypto}),
        json!({"iv":format!("{sid}00"),"crypto":crypto}),
        json!({"crypto":crypto}),
        json!({"iv":sid}),
        json!({"iv":"","crypto":""}),
        json!({"iv":5,"crypto":crypto}),
        json!({"iv":sid,"crypto":12345}),
        json!({}),
        Value::Null,
    ];
    for args in cases5 {
        assert_eq!(auth_args(&mut a, args.clone()), neg("AUTH", 5), "{args}");
        a.sid = challenge(&mut a);
        tries += 1;
    }
    // Malformed crypto with the right IV: errcode 8 (REF: the hex decoder throws).
    let sid = a.sid.clone();
    let crypto = a.crypto("admin", "secret");
    for bad in [
        format!("{}Z", &crypto[..31]),
        "X".repeat(32),
        crypto[..31].to_string(),
        format!("{crypto}00"),
        crypto[..16].to_string(),
    ] {
        assert_eq!(
            auth_args(&mut a, json!({"iv":sid,"crypto":bad})),
            neg("AUTH", 8),
            "{bad}"
        );
    }
    // A command object without `args`, or with args that are not an object.
    assert_eq!(
        a.cmd2(json!({"type":"CMD","command":"AUTH"})),
        neg("AUTH", 8)
    );
    assert_eq!(
        a.cmd2(json!({"type":"CMD","command":"AUTH","args":[sid, crypto]})),
        neg("AUTH", 8)
    );
    assert_eq!(a.cmd2_args("OPEN", Value::Null), neg("OPEN", 5));
    assert_eq!(srv.stats().logins_failed, tries);
    // Malformed crypto (8) does not rotate the SID: the same SID still logs in.
    assert_eq!(challenge(&mut a), sid);
    assert_eq!(auth2(&mut a, "admin", "secret"), pos("AUTH", Value::Null));
    stop(srv, vec![a]);
}

#[test]
fn failed_auth_rotates_the_sid() {
    let fx = Fixture::new("ws2-rotate");
    let srv = fx.start(json!({}));
    let mut a = connect(srv.local_addr(), "/ws2");
    let old = a.sid.clone();
    assert_eq!(challenge(&mut a), old);
    assert_eq!(auth2(&mut a, "admin", "wrong"), neg("AUTH", 5));
    let new = challenge(&mut a);
    assert_ne!(new, old);
    assert_eq!(auth2(&mut a, "admin", "secret"), neg("AUTH", 5), "old SID");
    a.sid = challenge(&mut a);
    assert_ne!(a.sid, new, "every failure rotates");
    assert_eq!(auth2(&mut a, "admin", "secret"), pos("AUTH", Value::Null));
    let sid = a.sid.clone();
    assert_eq!(challenge(&mut a), sid, "success keeps the SID");
    stop(srv, vec![a]);
}

#[test]
fn client_iv_rejected_by_default_accepted_with_switch() {
    let own_iv = [0x5Au8; 16];
    let own_iv_hex = vscp_proto::auth::hex_upper(&own_iv);
    let crypto = vscp_proto::auth::encrypt_credentials(&KEY, &own_iv, "admin", "secret");

    let fx = Fixture::new("ws2-iv-strict");
    let srv = fx.start(json!({}));
    let mut a = connect(srv.local_addr(), "/ws2");
    assert_eq!(
        auth_args(&mut a, json!({"iv":own_iv_hex,"crypto":crypto})),
        neg("AUTH", 5)
    );
    stop(srv, vec![a]);

    let fx = Fixture::new("ws2-iv-lenient");
    let srv = fx.start(json!({"ws2-accept-client-iv": true}));
    let addr = srv.local_addr();
    let mut a = connect(addr, "/ws2");
    assert_eq!(
        auth_args(&mut a, json!({"iv":own_iv_hex,"crypto":crypto})),
        pos("AUTH", Value::Null)
    );
    assert_eq!(a.cmd2_args("OPEN", Value::Null), pos("OPEN", Value::Null));
    // The SID still works as an IV.
    let mut b = connect(addr, "/ws2");
    assert_eq!(auth2(&mut b, "admin", "secret"), pos("AUTH", Value::Null));
    // Wrong credentials under an own IV, a non-hex IV, an empty IV.
    let mut c = connect(addr, "/ws2");
    let bad = vscp_proto::auth::encrypt_credentials(&KEY, &own_iv, "admin", "wrong");
    assert_eq!(
        auth_args(&mut c, json!({"iv":own_iv_hex,"crypto":bad})),
        neg("AUTH", 5)
    );
    assert_eq!(
        auth_args(&mut c, json!({"iv":"ZZ".repeat(16),"crypto":crypto})),
        neg("AUTH", 8)
    );
    assert_eq!(
        auth_args(&mut c, json!({"iv":"","crypto":crypto})),
        neg("AUTH", 5)
    );
    stop(srv, vec![a, b, c]);
}

#[test]
fn multi_block_credentials() {
    let fx = Fixture::new("ws2-multiblock");
    let srv = fx.start_with_users(&custom_users(), json!({}));
    let addr = srv.local_addr();
    let mut a = connect(addr, "/ws2");
    let crypto = a.crypto("longpw", "a:very-long:secret-123");
    assert_eq!(crypto.len(), 64);
    assert_eq!(
        auth2(&mut a, "longpw", "a:very-long:secret-123"),
        pos("AUTH", Value::Null)
    );
    let mut b = connect(addr, "/ws2");
    let mut plain = b"longpw:a:very-long:secret-123".to_vec();
    plain.extend_from_slice(&[3; 3]);
    let crypto = encrypt_raw(&sid_bytes(&b), &plain);
    let iv = b.sid.clone();
    assert_eq!(
        auth_args(&mut b, json!({"iv":iv,"crypto":crypto})),
        pos("AUTH", Value::Null)
    );
    stop(srv, vec![a, b]);
}

#[test]
fn crypto_from_another_connection_is_rejected() {
    let fx = Fixture::new("ws2-replay");
    let srv = fx.start(json!({}));
    let addr = srv.local_addr();
    let mut a = connect(addr, "/ws2");
    let mut b = connect(addr, "/ws2");
    let args = json!({"iv":a.sid,"crypto":a.crypto("admin","secret")});
    assert_eq!(auth_args(&mut b, args.clone()), neg("AUTH", 5));
    assert_eq!(auth_args(&mut a, args), pos("AUTH", Value::Null));
    stop(srv, vec![a, b]);
}

#[test]
fn failed_reauth_on_open_channel_closes_it_and_forgets_the_user() {
    let fx = Fixture::new("ws2-q18");
    let srv = fx.start(json!({}));
    let addr = srv.local_addr();
    let mut a = connect(addr, "/ws2");
    let mut b = connect(addr, "/ws1");
    let mut c = connect(addr, "/ws2");
    a.login_open("admin", "secret");
    b.login_open("admin", "secret");
    c.login_open("admin", "secret");
    assert_eq!(b.cmd("E;0,20,3,0,,0,-,1"), "+;EVENT");
    assert_eq!(event_json(&a.recv_event())["vscpData"], json!([1]));
    assert_eq!(event_json(&c.recv_event())["vscpData"], json!([1]));
    assert_eq!(auth2(&mut a, "admin", "wrong"), neg("AUTH", 5));
    assert_eq!(a.cmd2_args("SF", Value::Null), neg("SF", 5));
    assert_eq!(a.cmd2_args("CLRQ", Value::Null), neg("CLRQ", 5));
    assert_eq!(
        a.cmd2(ev(json!({"vscpClass":20,"vscpType":3}))),
        neg("EVENT", 5)
    );
    assert_eq!(b.cmd("E;0,20,3,0,,0,-,2"), "+;EVENT");
    assert_eq!(event_json(&c.recv_event())["vscpData"], json!([2]));
    assert_eq!(a.try_recv_text(Duration::from_millis(200)), None);
    assert_eq!(a.cmd2_args("OPEN", Value::Null), neg("OPEN", 5));
    a.sid = challenge(&mut a);
    a.login_open("admin", "secret");
    a.assert_noop_next();
    stop(srv, vec![a, b, c]);
}

// ----------------------------------------------------------------------------- commands

#[test]
fn noop_version_copyright_close_in_any_state() {
    let fx = Fixture::new("ws2-anystate");
    let srv = fx.start(json!({}));
    let mut a = connect(srv.local_addr(), "/ws2");
    let check = |a: &mut Client| {
        assert_eq!(a.cmd2_args("NOOP", Value::Null), pos("NOOP", Value::Null));
        assert_eq!(a.cmd2_args("NOOP", json!({})), pos("NOOP", Value::Null));
        for name in ["VERSION", "VER"] {
            let v = a.cmd2_args(name, Value::Null);
            let version = v["args"]["version"].as_str().expect("version").to_string();
            assert_eq!(v, pos(name, json!({ "version": version })));
            // major.minor.release-build
            let (mmr, build) = version.split_once('-').expect("build part");
            assert!(build.parse::<u32>().is_ok(), "{version}");
            let parts: Vec<&str> = mmr.split('.').collect();
            assert_eq!(parts.len(), 3, "{version}");
            assert!(parts.iter().all(|p| p.parse::<u32>().is_ok()), "{version}");
        }
        let c = a.cmd2_args("COPYRIGHT", Value::Null);
        let text = c["args"]["copyright"].as_str().expect("copyright");
        assert!(!text.trim().is_empty());
        assert_eq!(c, pos("COPYRIGHT", json!({ "copyright": text })));
        assert_eq!(a.cmd2_args("CLOSE", Value::Null), pos("CLOSE", Value::Null));
    };
    check(&mut a);
    assert_eq!(auth2(&mut a, "user", "secret"), pos("AUTH", Value::Null));
    check(&mut a);
    assert_eq!(a.cmd2_args("OPEN", Value::Null), pos("OPEN", Value::Null));
    check(&mut a);
    stop(srv, vec![a]);
}

#[test]
fn challenge_before_and_after_auth() {
    let fx = Fixture::new("ws2-challenge");
    let srv = fx.start(json!({}));
    let mut a = connect(srv.local_addr(), "/ws2");
    let sid = a.sid.clone();
    assert_eq!(challenge(&mut a), sid);
    a.login_open("user", "secret");
    // REF sends nothing here (Q6); REC replies.
    assert_eq!(challenge(&mut a), sid);
    stop(srv, vec![a]);
}

#[test]
fn open_close_and_queue_flush() {
    let fx = Fixture::new("ws2-openclose");
    let srv = fx.start(json!({}));
    let addr = srv.local_addr();
    let mut a = connect(addr, "/ws2");
    let mut b = connect(addr, "/ws1");
    b.login_open("admin", "secret");
    assert_eq!(a.cmd2_args("OPEN", Value::Null), neg("OPEN", 5));
    assert_eq!(a.cmd2_args("CLOSE", Value::Null), pos("CLOSE", Value::Null));
    assert_eq!(auth2(&mut a, "user", "secret"), pos("AUTH", Value::Null));
    assert_eq!(b.cmd("E;0,20,1,0,,0,-,1"), "+;EVENT");
    assert!(eventually(Duration::from_secs(2), || srv
        .stats()
        .outbox_depth
        == 1));
    a.assert_noop_next();
    // REC (ws2.md Q4): OPEN flushes the queue, after its reply.
    a.send(r#"{"type":"CMD","command":"OPEN","args":null}"#);
    let r: Value = serde_json::from_str(&a.recv_text()).unwrap();
    assert_eq!(r, pos("OPEN", Value::Null));
    let e = event_json(&a.recv_text());
    assert_eq!(
        (e["vscpClass"].clone(), e["vscpType"].clone()),
        (json!(20), json!(1))
    );
    assert_eq!(a.cmd2_args("CLOSE", Value::Null), pos("CLOSE", Value::Null));
    assert_eq!(b.cmd("E;0,20,2,0,,0,-,2"), "+;EVENT");
    assert!(eventually(Duration::from_secs(2), || srv
        .stats()
        .outbox_depth
        == 1));
    a.assert_noop_next();
    assert_eq!(a.cmd2_args("OPEN", Value::Null), pos("OPEN", Value::Null));
    assert_eq!(event_json(&a.recv_event())["vscpType"], 2);
    stop(srv, vec![a, b]);
}

#[test]
fn setfilter_rights_syntax_and_forms() {
    let fx = Fixture::new("ws2-sf");
    let srv = fx.start(json!({}));
    let addr = srv.local_addr();
    let f4 = json!({"filter_priority":0,"filter_class":10,"filter_type":6,
        "filter_guid":"00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00",
        "mask_priority":0,"mask_class":65535,"mask_type":65535,
        "mask_guid":"00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00"});
    let mut a = connect(addr, "/ws2");
    assert_eq!(a.cmd2_args("SETFILTER", f4.clone()), neg("SETFILTER", 5));
    assert_eq!(a.cmd2_args("SF", f4.clone()), neg("SF", 5));
    let mut u = connect(addr, "/ws2");
    // Sending needs no OPEN; staying closed keeps other events away from this client.
    assert_eq!(auth2(&mut u, "user", "secret"), pos("AUTH", Value::Null));
    assert_eq!(u.cmd2_args("SETFILTER", f4.clone()), neg("SETFILTER", 7));
    assert_eq!(u.cmd2_args("sf", f4.clone()), neg("SF", 7));
    a.login_open("admin", "secret");
    for bad in [
        json!({"filter_class":"x"}),
        json!({"filter_class":-1}),
        json!({"filter_class":1.5}),
        json!({"filter_class":[10]}),
        json!({"filter_class":true}),
        json!({"filter_guid":5}),
        json!({"filter_guid":"GG:00"}),
        json!({"mask_guid":"zz"}),
    ] {
        assert_eq!(a.cmd2_args("SF", bad.clone()), neg("SF", 1), "{bad}");
    }
    assert_eq!(
        a.cmd2(json!({"type":"CMD","command":"SETFILTER","args":["x"]})),
        neg("SETFILTER", 8)
    );
    assert_eq!(a.cmd2(json!({"type":"CMD","command":"SF"})), neg("SF", 8));
    assert_eq!(
        a.cmd2(json!({"type":"CMD","command":"SF","args":"0,0,0,-"})),
        neg("SF", 8)
    );
    assert_eq!(
        a.cmd2_args("SETFILTER", f4.clone()),
        pos("SETFILTER", Value::Null)
    );
    assert_eq!(a.cmd2_args("SF", f4), pos("SF", Value::Null));
    // Only numeric keys (REF Q3 would refuse this), numeric strings, null, empty object.
    assert_eq!(
        a.cmd2_args("SF", json!({"filter_class":10,"mask_class":65535})),
        pos("SF", Value::Null)
    );
    assert_eq!(
        a.cmd2_args("SF", json!({"filter_class":"10","mask_class":"0xFFFF"})),
        pos("SF", Value::Null)
    );
    assert_eq!(a.cmd2_args("SF", Value::Null), pos("SF", Value::Null));
    assert_eq!(a.cmd2_args("SF", json!({})), pos("SF", Value::Null));
    stop(srv, vec![a, u]);
}

#[test]
fn setfilter_limits_delivery() {
    let fx = Fixture::new("ws2-sf-deliver");
    let srv = fx.start(json!({}));
    let addr = srv.local_addr();
    let mut a = connect(addr, "/ws2");
    let mut b = connect(addr, "/ws1");
    a.login_open("admin", "secret");
    b.login_open("admin", "secret");
    let f4 = json!({"filter_priority":0,"filter_class":10,"filter_type":6,
        "filter_guid":"00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00",
        "mask_priority":0,"mask_class":65535,"mask_type":65535,
        "mask_guid":"00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00"});
    assert_eq!(a.cmd2_args("SETFILTER", f4), pos("SETFILTER", Value::Null));
    assert_eq!(b.cmd("E;0,10,5,0,,0,-,1"), "+;EVENT");
    assert_eq!(b.cmd("E;0,20,3,0,,0,-,2"), "+;EVENT");
    assert_eq!(b.cmd("E;0,10,6,0,,0,-,3"), "+;EVENT");
    let e = event_json(&a.recv_event());
    assert_eq!(
        (&e["vscpClass"], &e["vscpType"], &e["vscpData"]),
        (&json!(10), &json!(6), &json!([3]))
    );
    // Absent keys are reset to 0 (REC): only the class matters now.
    assert_eq!(
        a.cmd2_args("SF", json!({"filter_class":20,"mask_class":65535})),
        pos("SF", Value::Null)
    );
    assert_eq!(b.cmd("E;0,10,6,0,,0,-,4"), "+;EVENT");
    assert_eq!(b.cmd("E;0,20,9,0,,0,-,5"), "+;EVENT");
    assert_eq!(event_json(&a.recv_event())["vscpData"], json!([5]));
    // `args: null` = all pass.
    assert_eq!(a.cmd2_args("SF", Value::Null), pos("SF", Value::Null));
    assert_eq!(b.cmd("E;0,10,6,0,,0,-,6"), "+;EVENT");
    assert_eq!(event_json(&a.recv_event())["vscpData"], json!([6]));
    stop(srv, vec![a, b]);
}

#[test]
fn clrqueue_empties_the_queue() {
    let fx = Fixture::new("ws2-clrq");
    let srv = fx.start(json!({}));
    let addr = srv.local_addr();
    let mut a = connect(addr, "/ws2");
    let mut b = connect(addr, "/ws2");
    assert_eq!(a.cmd2_args("CLRQ", Value::Null), neg("CLRQ", 5));
    assert_eq!(a.cmd2_args("CLRQUEUE", Value::Null), neg("CLRQUEUE", 5));
    a.login_open("admin", "secret");
    b.login_open("admin", "secret");
    for name in ["CLRQ", "CLRQUEUE", "clrq"] {
        assert_eq!(a.cmd2_args("CLOSE", Value::Null), pos("CLOSE", Value::Null));
        for n in 1..=2 {
            let r = b.cmd2(ev(json!({"vscpClass":20,"vscpType":3,"vscpData":[n]})));
            assert_eq!(r, pos("EVENT", Value::Null));
        }
        assert!(eventually(Duration::from_secs(2), || srv
            .stats()
            .outbox_depth
            == 2));
        let upper = name.to_ascii_uppercase();
        assert_eq!(a.cmd2_args(name, Value::Null), pos(&upper, Value::Null));
        assert_eq!(srv.stats().outbox_depth, 0);
        assert_eq!(a.cmd2_args("OPEN", Value::Null), pos("OPEN", Value::Null));
        a.assert_noop_next();
        assert_eq!(a.try_recv_text(Duration::from_millis(150)), None);
    }
    let r = b.cmd2(ev(json!({"vscpClass":20,"vscpType":3,"vscpData":[3]})));
    assert_eq!(r, pos("EVENT", Value::Null));
    assert_eq!(event_json(&a.recv_event())["vscpData"], json!([3]));
    stop(srv, vec![a, b]);
}

#[test]
fn command_names_types_and_unknown_commands() {
    let fx = Fixture::new("ws2-names");
    let srv = fx.start(json!({}));
    let mut a = connect(srv.local_addr(), "/ws2");
    for ty in ["CMD", "COMMAND", "C", "cmd", "command", "c", " Cmd "] {
        assert_eq!(
            a.cmd2(json!({"type":ty,"command":"NOOP","args":null})),
            pos("NOOP", Value::Null),
            "type {ty:?}"
        );
    }
    for (name, echoed) in [("noop", "NOOP"), (" Noop ", "NOOP"), ("NO\u{4f}P", "NOOP")] {
        assert_eq!(
            a.cmd2(json!({"type":"CMD","command":name,"args":null})),
            pos(echoed, Value::Null)
        );
    }
    // The JSON escape is decoded before the name is looked up.
    assert_eq!(
        a.cmd(r#"{"type":"CMD","command":"NO\u004FP","args":null}"#),
        r#"{ "type" : "+",  "command" : "NOOP",  "args" : null}"#
    );
    // Exact names (no prefix match), echoed upper-cased (REF sends nothing: Q6).
    for (name, echoed) in [
        ("BOGUS", "BOGUS"),
        ("bogus", "BOGUS"),
        ("NOOPX", "NOOPX"),
        ("SFX", "SFX"),
        ("CLR", "CLR"),
        ("", ""),
    ] {
        assert_eq!(
            a.cmd2(json!({"type":"CMD","command":name,"args":{}})),
            neg(echoed, 2),
            "{name:?}"
        );
    }
    // Names with characters that need escaping still give valid JSON.
    assert_eq!(
        a.cmd2(json!({"type":"CMD","command":"a\"b\\c\n","args":null})),
        neg("A\"B\\C", 2)
    );
    // `command` missing or not a string.
    assert_eq!(a.cmd2(json!({"type":"CMD","args":null})), neg("", 8));
    assert_eq!(
        a.cmd2(json!({"type":"CMD","command":5,"args":null})),
        neg("", 8)
    );
    assert_eq!(
        a.cmd2(json!({"type":"CMD","command":null,"args":null})),
        neg("", 8)
    );
    stop(srv, vec![a]);
}

// ----------------------------------------------------------------------------- events

#[test]
fn w2_session() {
    let fx = Fixture::new("ws2-w2");
    let srv = fx.start(json!({}));
    let addr = srv.local_addr();
    let mut a = connect(addr, "/ws2");
    let mut r1 = connect(addr, "/ws1");
    let mut r2 = connect(addr, "/ws2");
    r1.login_open("admin", "secret");
    r2.login_open("admin", "secret");
    let (iv, crypto) = (a.sid.clone(), a.crypto("admin", "secret"));
    assert_eq!(
        a.cmd2(json!({"type":"cmd","command":"auth","args":{"iv":iv,"crypto":crypto}})),
        pos("AUTH", Value::Null)
    );
    assert_eq!(a.cmd2_args("OPEN", Value::Null), pos("OPEN", Value::Null));
    assert_eq!(
        a.cmd2(ev(
            json!({"vscpHead":0,"vscpClass":20,"vscpType":3,"vscpGuid":"-","vscpData":[1,2,3]})
        )),
        pos("EVENT", Value::Null)
    );
    let e = r1.recv_event();
    assert!(
        e.starts_with("E;0,20,3,") && e.ends_with(",0x01,0x02,0x03"),
        "{e}"
    );
    let e = event_json(&r2.recv_event());
    assert_eq!(e["vscpData"], json!([1, 2, 3]));
    assert_eq!(e["vscpNote"], "");
    let v = a.cmd2_args("VER", Value::Null);
    assert_eq!(v["command"], "VER");
    assert_eq!(
        a.cmd2(json!({"type":"CMD","command":"BOGUS","args":{}})),
        neg("BOGUS", 2)
    );
    assert_eq!(a.cmd2(json!("not json")), neg("EVENT", 9));
    assert_eq!(
        serde_json::from_str::<Value>(&a.cmd("not json")).unwrap(),
        neg("EVENT", 9)
    );
    stop(srv, vec![a, r1, r2]);
}

#[test]
fn event_input_forms() {
    let fx = Fixture::new("ws2-evforms");
    let srv = fx.start(json!({}));
    let addr = srv.local_addr();
    let mut a = connect(addr, "/ws2");
    let mut r = connect(addr, "/ws2");
    a.login_open("admin", "secret");
    r.login_open("admin", "secret");
    // E4: legacy keys with a date (parsed correctly, no month bug).
    let e4 = json!({"vscpClass":20,"vscpType":3,"vscpDateTime":"2020-01-27T20:47:55Z","vscpData":[1,2,3]});
    assert_eq!(a.cmd2(ev(e4)), pos("EVENT", Value::Null));
    let e = event_json(&r.recv_event());
    assert_eq!(e["vscpDateTime"], "2020-01-27T20:47:55Z");
    assert_eq!(e["vscpData"], json!([1, 2, 3]));
    assert_ne!(e["vscpTimeStamp"], 0);
    // Short keys; `type` "E".
    let short = json!({"class":20,"type":3,"datetime":"2020-01-27T20:47:55Z","data":[4],
        "guid":"FF:FF:FF:FF:FF:FF:FF:F5:00:00:00:00:00:05:00:00"});
    assert_eq!(
        a.cmd2(json!({"type":"E","event":short})),
        pos("EVENT", Value::Null)
    );
    let e = event_json(&r.recv_event());
    assert_eq!(e["vscpClass"], 20);
    assert_eq!(e["vscpData"], json!([4]));
    assert_eq!(
        e["vscpGuid"],
        "FF:FF:FF:FF:FF:FF:FF:F5:00:00:00:00:00:05:00:00"
    );
    // Wrong-typed fields fall back to defaults (events.md §6.2).
    assert_eq!(
        a.cmd2(ev(json!({"vscpClass":"abc","vscpType":-1,"vscpData":[]}))),
        pos("EVENT", Value::Null)
    );
    let e = event_json(&r.recv_event());
    assert_eq!(
        (e["vscpClass"].clone(), e["vscpType"].clone()),
        (json!(0), json!(0))
    );
    // 512 data bytes are fine.
    assert_eq!(
        a.cmd2(ev(
            json!({"vscpClass":20,"vscpType":3,"vscpData":vec![9; 512]})
        )),
        pos("EVENT", Value::Null)
    );
    assert_eq!(
        event_json(&r.recv_event())["vscpData"]
            .as_array()
            .unwrap()
            .len(),
        512
    );
    stop(srv, vec![a, r]);
}

#[test]
fn event_before_auth_and_bad_event_objects() {
    let fx = Fixture::new("ws2-ev-bad");
    let srv = fx.start(json!({}));
    let addr = srv.local_addr();
    let mut a = connect(addr, "/ws2");
    let mut r = connect(addr, "/ws2");
    r.login_open("admin", "secret");
    assert_eq!(
        a.cmd2(ev(json!({"vscpClass":20,"vscpType":3}))),
        neg("EVENT", 5)
    );
    assert_eq!(a.cmd2(json!({"type":"EVENT"})), neg("EVENT", 5));
    a.assert_noop_next();
    a.login_open("admin", "secret");
    let bad = [
        json!({"type":"EVENT"}),
        json!({"type":"EVENT","event":null}),
        json!({"type":"EVENT","event":5}),
        json!({"type":"EVENT","event":"0,20,3,0,,0,-"}),
        json!({"type":"EVENT","event":[20,3]}),
        ev(json!({"vscpClass":20,"vscpGuid":"zz"})),
        ev(json!({"vscpClass":20,"vscpGuid":"GG:00:00"})),
        ev(json!({"vscpClass":20,"vscpData":[1,"x"]})),
        ev(json!({"vscpClass":20,"vscpData":[1,null]})),
        ev(json!({"vscpClass":20,"vscpData":[[1]]})),
        ev(json!({"vscpClass":20,"vscpData":vec![1; 513]})),
    ];
    for m in bad {
        assert_eq!(a.cmd2(m.clone()), neg("EVENT", 8), "{m}");
    }
    assert_eq!(
        a.cmd2(ev(json!({"vscpClass":20,"vscpType":3,"vscpData":[7]}))),
        pos("EVENT", Value::Null)
    );
    assert_eq!(
        event_json(&r.recv_event())["vscpData"],
        json!([7]),
        "a bad event was routed"
    );
    stop(srv, vec![a, r]);
}

#[test]
fn event_rights_and_allow_list() {
    let fx = Fixture::new("ws2-ev-rights");
    let srv = fx.start(json!({}));
    let addr = srv.local_addr();
    let mut r = connect(addr, "/ws2");
    r.login_open("admin", "secret");
    // No send right (`vscp`), HLO class for `user`, allow list of `special1`: errcode 7.
    let mut v = connect(addr, "/ws2");
    assert_eq!(auth2(&mut v, "vscp", "secret"), pos("AUTH", Value::Null));
    assert_eq!(
        v.cmd2(ev(json!({"vscpClass":20,"vscpType":3}))),
        neg("EVENT", 7)
    );
    let mut u = connect(addr, "/ws2");
    assert_eq!(auth2(&mut u, "user", "secret"), pos("AUTH", Value::Null));
    assert_eq!(
        u.cmd2(ev(json!({"vscpClass":1028,"vscpType":1}))),
        neg("EVENT", 7)
    );
    assert_eq!(
        u.cmd2(ev(json!({"vscpClass":20,"vscpType":3,"vscpData":[1]}))),
        pos("EVENT", Value::Null)
    );
    let mut s = connect(addr, "/ws2");
    assert_eq!(
        auth2(&mut s, "special1", "secret"),
        pos("AUTH", Value::Null)
    );
    assert_eq!(
        s.cmd2(ev(json!({"vscpClass":20,"vscpType":3}))),
        neg("EVENT", 7)
    );
    assert_eq!(
        s.cmd2(ev(json!({"vscpClass":10,"vscpType":6,"vscpData":[2]}))),
        pos("EVENT", Value::Null)
    );
    assert_eq!(event_json(&r.recv_event())["vscpData"], json!([1]));
    let e = event_json(&r.recv_event());
    assert_eq!(
        (e["vscpClass"].clone(), e["vscpData"].clone()),
        (json!(10), json!([2]))
    );
    v.assert_noop_next();
    u.assert_noop_next();
    s.assert_noop_next();
    stop(srv, vec![r, v, u, s]);
}
