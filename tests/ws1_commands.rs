//! ws1 text protocol, command by command, with the exact reply texts of ws1.md (REC where REF
//! and REC differ): login and every login failure, NOOP, CHALLENGE, OPEN/CLOSE, SETFILTER,
//! CLRQUEUE, VERSION, COPYRIGHT, unknown commands, and sending events (rights, allow lists,
//! parse errors).
mod common;
use common::*;
use serde_json::json;
use std::time::Duration;

const ZERO_HALF: &str = "0,0,0,00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00";
const NOT_AUTHORISED: &str = "-;AUTH;5;Not authorised.";
const AUTH_SYNTAX: &str = "-;AUTH;1;Syntax error.";
const PARSE_ERROR: &str = "-;8;Parse error, invalid format.";

fn sid_bytes(c: &Client) -> [u8; 16] {
    vscp_proto::auth::hex_decode_16(&c.sid).expect("sid is hex")
}

/// `C;CHALLENGE` → `+;AUTH0;<sid>`; returns the SID.
fn challenge(c: &mut Client) -> String {
    let r = c.cmd("C;CHALLENGE");
    let sid = r
        .strip_prefix("+;AUTH0;")
        .unwrap_or_else(|| panic!("CHALLENGE reply {r:?}"))
        .to_string();
    assert_eq!(sid.len(), 32, "{r}");
    assert!(
        sid.bytes()
            .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b)),
        "{r}"
    );
    sid
}

/// Users with PBKDF2 hashes computed here: a long password containing `:`, a name with a
/// space, and a user that may send events but has no class-control rights.
fn custom_users() -> String {
    let salt = [7u8; 16];
    json!({"users": [
        {"name": "admin",
         "password": vscp_proto::password::mkpasswd("admin", "secret", salt),
         "rights": "admin"},
        {"name": "longpw",
         "password": vscp_proto::password::mkpasswd("longpw", "a:very-long:secret-123", salt),
         "rights": "user", "full-name": "Long Password", "note": "n",
         "remotes": "+127.0.0.0/8,+192.168.0.0/16", "allow-events": "10:*,30:9"},
        {"name": "john doe",
         "password": vscp_proto::password::mkpasswd("john doe", "secret", salt),
         "rights": "send-events,receive-events", "full-name": "John Doe"},
        {"name": "aligned",
         "password": vscp_proto::password::mkpasswd("aligned", "pw123456", salt),
         "rights": "user"}
    ]})
    .to_string()
}

// ----------------------------------------------------------------------------- login

#[test]
fn greeting_and_auth1_fields_admin() {
    let fx = Fixture::new("ws1-auth1-admin");
    let srv = fx.start(json!({}));
    let mut a = connect(srv.local_addr(), "/ws1");
    assert!(a
        .sid
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b)));
    let r = a.auth("admin", "secret");
    // userid;name;pwmask;fullname;filter;mask;rights;remotes;events;note (10 fields, REF
    // layout), pwmask one star per character of the stored `SALT;HASH` (97), note base64.
    let expected = format!(
        "+;AUTH1;0;admin;{};Admin;{ZERO_HALF};{ZERO_HALF};{};;;dGVzdCBhZG1pbg==",
        "*".repeat(97),
        "1".repeat(32)
    );
    assert_eq!(r, expected);
    assert_eq!(r.split(';').count(), 12);
    stop(srv, vec![a]);
}

#[test]
fn auth1_fields_of_other_users() {
    let fx = Fixture::new("ws1-auth1-users");
    let srv = fx.start(json!({}));
    let addr = srv.local_addr();
    let stars = "*".repeat(32);
    let user_rights = "00000000000101110000000001111111"; // 0x0017007F, MSB first
    let cases = [
        (
            "user",
            format!("+;AUTH1;1;user;{stars};;{ZERO_HALF};{ZERO_HALF};{user_rights};;;"),
        ),
        (
            "vscp",
            format!(
                "+;AUTH1;2;vscp;{stars};;{ZERO_HALF};{ZERO_HALF};00000000000100000000000000000000;;;"
            ),
        ),
        (
            "special1",
            format!("+;AUTH1;3;special1;{stars};;{ZERO_HALF};{ZERO_HALF};{user_rights};;000A:*;"),
        ),
        (
            "class20",
            format!(
                "+;AUTH1;6;class20;{stars};;0,20,0,00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00;\
                 0,65535,0,00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00;{user_rights};;;"
            ),
        ),
    ];
    let mut clients = Vec::new();
    for (user, expected) in cases {
        let mut c = connect(addr, "/ws1");
        assert_eq!(c.auth(user, "secret"), expected, "user {user}");
        clients.push(c);
    }
    stop(srv, clients);
}

#[test]
fn auth1_full_name_remotes_events_and_sanitised_name() {
    let fx = Fixture::new("ws1-auth1-custom");
    let srv = fx.start_with_users(&custom_users(), json!({}));
    let addr = srv.local_addr();
    let mut a = connect(addr, "/ws1");
    let r = a.auth("longpw", "a:very-long:secret-123");
    assert_eq!(
        r,
        format!(
            "+;AUTH1;1;longpw;{};Long Password;{ZERO_HALF};{ZERO_HALF};00000000000101110000000001111111;\
             +127.0.0.0/8,+192.168.0.0/16;000A:*/001E:0009;bg==",
            "*".repeat(97)
        )
    );
    // A name with a space logs in by its real name; AUTH1 shows it sanitised.
    let mut b = connect(addr, "/ws1");
    let r = b.auth("john doe", "secret");
    assert!(r.starts_with("+;AUTH1;2;john_doe;"), "{r}");
    assert_eq!(r.split(';').nth(5), Some("John Doe"), "{r}");
    stop(srv, vec![a, b]);
}

#[test]
fn wrong_password_and_unknown_user_are_not_authorised() {
    let fx = Fixture::new("ws1-badcreds");
    let srv = fx.start(json!({}));
    let mut a = connect(srv.local_addr(), "/ws1");
    assert_eq!(a.auth("admin", "wrong"), NOT_AUTHORISED);
    a.sid = challenge(&mut a);
    assert_eq!(a.auth("nobody", "secret"), NOT_AUTHORISED);
    a.sid = challenge(&mut a);
    assert_eq!(
        a.auth("Admin", "secret"),
        NOT_AUTHORISED,
        "names are case-sensitive"
    );
    a.sid = challenge(&mut a);
    assert_eq!(a.auth("admin", ""), NOT_AUTHORISED);
    a.sid = challenge(&mut a);
    assert_eq!(a.auth("", "secret"), NOT_AUTHORISED);
    // Plaintext without a `:` separator.
    a.sid = challenge(&mut a);
    let crypto = encrypt_raw(&sid_bytes(&a), b"adminsecret\0\0\0\0\0");
    assert_eq!(a.cmd(&format!("C;AUTH;{};{crypto}", a.sid)), NOT_AUTHORISED);
    // Encrypted with another key: garbage plaintext.
    a.sid = challenge(&mut a);
    let other_key = [0x11u8; 16];
    let crypto =
        vscp_proto::auth::encrypt_credentials(&other_key, &sid_bytes(&a), "admin", "secret");
    assert_eq!(a.cmd(&format!("C;AUTH;{};{crypto}", a.sid)), NOT_AUTHORISED);
    // Still not logged in.
    assert_eq!(a.cmd("C;OPEN"), "-;OPEN;5;Not authorised.");
    let s = srv.stats();
    assert_eq!(s.logins_failed, 7);
    assert_eq!(s.logins_ok, 0);
    stop(srv, vec![a]);
}

#[test]
fn auth_syntax_errors_keep_the_sid() {
    let fx = Fixture::new("ws1-authsyntax");
    let srv = fx.start(json!({}));
    let mut a = connect(srv.local_addr(), "/ws1");
    let sid = a.sid.clone();
    let crypto = a.crypto("admin", "secret");
    let mut other_sid = sid.clone().into_bytes();
    other_sid[0] = if other_sid[0] == b'0' { b'1' } else { b'0' };
    let other_sid = String::from_utf8(other_sid).unwrap();
    let bad = [
        "C;AUTH".to_string(),
        "C;AUTH;".to_string(),
        format!("C;AUTH;{sid}"),
        format!("C;AUTH;{sid};"),
        // Wrong SID (the W1 session's IV that is not the SID), other SID.
        format!("C;AUTH;00112233445566778899AABBCCDDEEFF;{crypto}"),
        format!("C;AUTH;{other_sid};{crypto}"),
        // Wrong lengths.
        format!("C;AUTH;{};{crypto}", &sid[..31]),
        format!("C;AUTH;{sid}0;{crypto}"),
        format!("C;AUTH;{sid};{}", &crypto[..31]),
        format!("C;AUTH;{sid};{crypto}0"),
        format!("C;AUTH;{sid};{}", &crypto[..16]),
        format!("C;AUTH;{sid};{crypto}{}", &crypto[..16]),
        // Non-hex.
        format!("C;AUTH;{}G;{crypto}", &sid[..31]),
        format!("C;AUTH;{sid};{}Z", &crypto[..31]),
        format!("C;AUTH;{sid};{}", "X".repeat(32)),
        // Arguments in the wrong order.
        format!("C;AUTH;{crypto};{sid}"),
    ];
    for line in &bad {
        assert_eq!(a.cmd(line), AUTH_SYNTAX, "{line}");
    }
    // Syntax errors are rejected before any credential check: the SID stays (ws1.md §4.3).
    assert_eq!(challenge(&mut a), sid);
    assert_eq!(srv.stats().logins_failed, 0);
    assert!(a.auth("admin", "secret").starts_with("+;AUTH1;0;admin;"));
    stop(srv, vec![a]);
}

#[test]
fn auth_is_lenient_about_case_padding_and_extra_arguments() {
    let fx = Fixture::new("ws1-authlenient");
    let srv = fx.start(json!({}));
    let addr = srv.local_addr();
    // Lower-case SID and crypto (compared case-insensitively).
    let mut a = connect(addr, "/ws1");
    let crypto = a.crypto("user", "secret").to_ascii_lowercase();
    let r = a.cmd(&format!("C;AUTH;{};{crypto}", a.sid.to_ascii_lowercase()));
    assert!(r.starts_with("+;AUTH1;1;user;"), "{r}");
    // Extra arguments are ignored; surrounding spaces on the arguments too.
    let mut b = connect(addr, "/ws1");
    let crypto = b.crypto("user", "secret");
    let r = b.cmd(&format!("C;AUTH; {} ; {crypto} ;extra;more", b.sid));
    assert!(r.starts_with("+;AUTH1;1;user;"), "{r}");
    // PKCS#7 padding (vectors.md A8 style).
    let mut c = connect(addr, "/ws1");
    let crypto = encrypt_raw(&sid_bytes(&c), b"admin:secret\x04\x04\x04\x04");
    let r = c.cmd(&format!("C;AUTH;{};{crypto}", c.sid));
    assert!(r.starts_with("+;AUTH1;0;admin;"), "{r}");
    // Space padding (vectors.md A2 style).
    let mut d = connect(addr, "/ws1");
    let crypto = encrypt_raw(&sid_bytes(&d), b"admin:secret    ");
    let r = d.cmd(&format!("C;AUTH;{};{crypto}", d.sid));
    assert!(r.starts_with("+;AUTH1;0;admin;"), "{r}");
    stop(srv, vec![a, b, c, d]);
}

#[test]
fn multi_block_credentials_and_colon_in_password() {
    let fx = Fixture::new("ws1-multiblock");
    let srv = fx.start_with_users(&custom_users(), json!({}));
    let addr = srv.local_addr();
    // `longpw:a:very-long:secret-123` is 29 bytes: two AES blocks, password with `:`.
    let mut a = connect(addr, "/ws1");
    let crypto = a.crypto("longpw", "a:very-long:secret-123");
    assert_eq!(crypto.len(), 64);
    let r = a.cmd(&format!("C;AUTH;{};{crypto}", a.sid));
    assert!(r.starts_with("+;AUTH1;1;longpw;"), "{r}");
    assert_eq!(a.cmd("C;OPEN"), "+;OPEN");
    // Only the first block: `longpw:a:very-lo` is not the password.
    let mut b = connect(addr, "/ws1");
    let crypto = b.crypto("longpw", "a:very-long:secret-123");
    assert_eq!(
        b.cmd(&format!("C;AUTH;{};{}", b.sid, &crypto[..32])),
        NOT_AUTHORISED
    );
    // Three blocks with PKCS#7: 29 bytes + 3 × 0x03 = 32; 48 bytes with a full pad block.
    b.sid = challenge(&mut b);
    let mut plain = b"longpw:a:very-long:secret-123".to_vec();
    plain.extend_from_slice(&[3; 3]);
    let crypto = encrypt_raw(&sid_bytes(&b), &plain);
    let r = b.cmd(&format!("C;AUTH;{};{crypto}", b.sid));
    assert!(r.starts_with("+;AUTH1;1;longpw;"), "{r}");
    let mut c = connect(addr, "/ws1");
    let mut plain = b"admin:secret".to_vec();
    plain.resize(48, 0);
    let crypto = encrypt_raw(&sid_bytes(&c), &plain);
    let r = c.cmd(&format!("C;AUTH;{};{crypto}", c.sid));
    assert!(r.starts_with("+;AUTH1;0;admin;"), "{r}");
    // `aligned:pw123456` is exactly one block: zero padding adds nothing, PKCS#7 adds a
    // whole block of 0x10.
    let mut d = connect(addr, "/ws1");
    let crypto = d.crypto("aligned", "pw123456");
    assert_eq!(crypto.len(), 32);
    let r = d.cmd(&format!("C;AUTH;{};{crypto}", d.sid));
    assert!(r.starts_with("+;AUTH1;3;aligned;"), "{r}");
    let mut e = connect(addr, "/ws1");
    let mut plain = b"aligned:pw123456".to_vec();
    plain.extend_from_slice(&[16; 16]);
    let crypto = encrypt_raw(&sid_bytes(&e), &plain);
    let r = e.cmd(&format!("C;AUTH;{};{crypto}", e.sid));
    assert!(r.starts_with("+;AUTH1;3;aligned;"), "{r}");
    stop(srv, vec![a, b, c, d, e]);
}

#[test]
fn remotes_deny_loopback() {
    let fx = Fixture::new("ws1-remotes");
    let srv = fx.start(json!({}));
    let addr = srv.local_addr();
    let mut a = connect(addr, "/ws1");
    // `remote`: -127.0.0.0/8 denies loopback; `lan`: only 192.168.0.0/16 allowed.
    assert_eq!(a.auth("remote", "secret"), NOT_AUTHORISED);
    assert_eq!(a.cmd("C;OPEN"), "-;OPEN;5;Not authorised.");
    a.sid = challenge(&mut a);
    assert_eq!(a.auth("lan", "secret"), NOT_AUTHORISED);
    assert_eq!(a.cmd("C;OPEN"), "-;OPEN;5;Not authorised.");
    assert_eq!(a.cmd("E;0,20,3,0,,0,-"), "-;5;Not authorised.");
    assert!(eventually(Duration::from_secs(2), || srv
        .stats()
        .rejected(vscp_websocksrv::stats::RejectReason::Remotes)
        == 2));
    // The same session can then log in as someone allowed.
    a.sid = challenge(&mut a);
    a.login_open("user", "secret");
    stop(srv, vec![a]);
}

#[test]
fn failed_auth_rotates_the_sid() {
    let fx = Fixture::new("ws1-rotate");
    let srv = fx.start(json!({}));
    let mut a = connect(srv.local_addr(), "/ws1");
    let old = a.sid.clone();
    assert_eq!(
        challenge(&mut a),
        old,
        "CHALLENGE before a failure repeats the SID"
    );
    assert_eq!(a.auth("admin", "wrong"), NOT_AUTHORISED);
    let new = challenge(&mut a);
    assert_ne!(new, old);
    // The old SID no longer works, even with correct credentials.
    assert_eq!(a.auth("admin", "secret"), AUTH_SYNTAX);
    a.sid = new.clone();
    let r = a.auth("admin", "secret");
    assert!(r.starts_with("+;AUTH1;0;admin;"), "{r}");
    // A successful login keeps the SID.
    assert_eq!(challenge(&mut a), new);
    stop(srv, vec![a]);
}

#[test]
fn crypto_from_another_connection_is_rejected() {
    let fx = Fixture::new("ws1-replay");
    let srv = fx.start(json!({}));
    let addr = srv.local_addr();
    let mut a = connect(addr, "/ws1");
    let mut b = connect(addr, "/ws1");
    assert_ne!(a.sid, b.sid);
    let line = format!("C;AUTH;{};{}", a.sid, a.crypto("admin", "secret"));
    // Replayed verbatim on b: the IV is not b's SID.
    assert_eq!(b.cmd(&line), AUTH_SYNTAX);
    // With b's SID in front, the crypto decrypts to garbage.
    let crypto = a.crypto("admin", "secret");
    assert_eq!(b.cmd(&format!("C;AUTH;{};{crypto}", b.sid)), NOT_AUTHORISED);
    // The original still works on a.
    assert!(a.cmd(&line).starts_with("+;AUTH1;"));
    stop(srv, vec![a, b]);
}

#[test]
fn failed_reauth_on_open_channel_closes_it_and_forgets_the_user() {
    let fx = Fixture::new("ws1-q18");
    let srv = fx.start(json!({}));
    let addr = srv.local_addr();
    let mut a = connect(addr, "/ws1");
    let mut b = connect(addr, "/ws1");
    let mut c = connect(addr, "/ws1");
    a.login_open("admin", "secret");
    b.login_open("admin", "secret");
    c.login_open("admin", "secret");
    assert_eq!(b.cmd("E;0,20,3,0,,0,-,1"), "+;EVENT");
    assert!(a.recv_event().starts_with("E;0,20,3,"));
    assert!(c.recv_event().starts_with("E;0,20,3,"));

    // Failed re-AUTH (credentials, not syntax).
    assert_eq!(a.auth("admin", "wrong"), NOT_AUTHORISED);
    assert_eq!(a.cmd("C;SF;0,0,0,-;0,0,0,-"), "-;SF;5;Not authorised.");
    assert_eq!(a.cmd("C;CLRQ"), "-;CLRQ;5;Not authorised.");
    assert_eq!(a.cmd("E;0,20,3,0,,0,-"), "-;5;Not authorised.");
    // No more events, neither delivered nor queued.
    assert_eq!(b.cmd("E;0,20,4,0,,0,-,2"), "+;EVENT");
    assert!(c.recv_event().starts_with("E;0,20,4,"));
    assert_eq!(a.try_recv_text(Duration::from_millis(200)), None);
    assert_eq!(a.cmd("C;OPEN"), "-;OPEN;5;Not authorised.");
    // Log in again with the new SID: nothing was queued in between.
    a.sid = challenge(&mut a);
    a.login_open("admin", "secret");
    a.assert_noop_next();
    assert_eq!(a.try_recv_text(Duration::from_millis(100)), None);
    stop(srv, vec![a, b, c]);
}

#[test]
fn reauth_as_another_user_replaces_the_user() {
    let fx = Fixture::new("ws1-reauth");
    let srv = fx.start(json!({}));
    let mut a = connect(srv.local_addr(), "/ws1");
    a.login_open("admin", "secret");
    assert_eq!(a.cmd("C;SF;0,0,0,-;0,0,0,-"), "+;SF");
    let r = a.auth("user", "secret");
    assert!(r.starts_with("+;AUTH1;1;user;"), "{r}");
    assert_eq!(
        a.cmd("C;SF;0,0,0,-;0,0,0,-"),
        "-;SF;7;Not allowed to do that (check privileges)"
    );
    assert_eq!(a.cmd("E;0,1028,1,0,,0,-"), "-;6;Not allowed to send event.");
    // A syntax error in a re-AUTH leaves the login alone.
    assert_eq!(a.cmd("C;AUTH;00;11"), AUTH_SYNTAX);
    assert_eq!(a.cmd("C;OPEN"), "+;OPEN");
    assert_eq!(a.cmd("E;0,20,3,0,,0,-"), "+;EVENT");
    stop(srv, vec![a]);
}

// ----------------------------------------------------------------------------- commands

#[test]
fn noop_version_copyright_close_work_in_any_state() {
    let fx = Fixture::new("ws1-anystate");
    let srv = fx.start(json!({}));
    let mut a = connect(srv.local_addr(), "/ws1");
    let check = |a: &mut Client| {
        assert_eq!(a.cmd("C;NOOP"), "+;NOOP");
        let v = a.cmd("C;VERSION");
        let f: Vec<&str> = v.split(';').collect();
        assert_eq!(f.len(), 4, "{v}");
        assert_eq!(f[0], "+");
        assert_eq!(f[1], "VERSION");
        assert!(!f[2].is_empty(), "{v}");
        assert_eq!(f[3], "1.0.0.0");
        let c = a.cmd("C;COPYRIGHT");
        let text = c.strip_prefix("+;COPYRIGHT;").expect("COPYRIGHT reply");
        assert!(!text.trim().is_empty());
        assert!(!text.contains(';'), "{c}");
        assert_eq!(a.cmd("C;CLOSE"), "+;CLOSE");
    };
    check(&mut a);
    a.auth("user", "secret");
    check(&mut a);
    assert_eq!(a.cmd("C;OPEN"), "+;OPEN");
    check(&mut a);
    stop(srv, vec![a]);
}

#[test]
fn challenge_before_and_after_auth() {
    let fx = Fixture::new("ws1-challenge");
    let srv = fx.start(json!({}));
    let mut a = connect(srv.local_addr(), "/ws1");
    let sid = a.sid.clone();
    assert_eq!(a.cmd("C;CHALLENGE"), format!("+;AUTH0;{sid}"));
    a.login_open("user", "secret");
    assert_eq!(a.cmd("C;CHALLENGE"), format!("+;AUTH0;{sid}"));
    stop(srv, vec![a]);
}

#[test]
fn open_and_close() {
    let fx = Fixture::new("ws1-openclose");
    let srv = fx.start(json!({}));
    let addr = srv.local_addr();
    let mut a = connect(addr, "/ws1");
    let mut b = connect(addr, "/ws1");
    b.login_open("admin", "secret");
    assert_eq!(a.cmd("C;OPEN"), "-;OPEN;5;Not authorised.");
    assert_eq!(a.cmd("C;CLOSE"), "+;CLOSE");
    a.auth("user", "secret");
    // Authenticated, channel closed: events are queued, not delivered.
    assert_eq!(b.cmd("E;0,20,1,0,,0,-"), "+;EVENT");
    assert!(eventually(Duration::from_secs(2), || srv
        .stats()
        .outbox_depth
        == 1));
    a.assert_noop_next();
    // OPEN replies first, then flushes the queue.
    a.send("C;OPEN");
    assert_eq!(a.recv_text(), "+;OPEN");
    assert!(a.recv_text().starts_with("E;0,20,1,"));
    assert_eq!(a.cmd("C;OPEN"), "+;OPEN", "OPEN twice is harmless");
    assert_eq!(b.cmd("E;0,20,2,0,,0,-"), "+;EVENT");
    assert!(a.recv_event().starts_with("E;0,20,2,"));
    assert_eq!(a.cmd("C;CLOSE"), "+;CLOSE");
    assert_eq!(a.cmd("C;CLOSE"), "+;CLOSE");
    assert_eq!(b.cmd("E;0,20,3,0,,0,-"), "+;EVENT");
    assert!(eventually(Duration::from_secs(2), || srv
        .stats()
        .outbox_depth
        == 1));
    a.assert_noop_next();
    a.send("C;OPEN");
    assert_eq!(a.recv_text(), "+;OPEN");
    assert!(a.recv_text().starts_with("E;0,20,3,"));
    stop(srv, vec![a, b]);
}

#[test]
fn setfilter_rights_and_syntax() {
    let fx = Fixture::new("ws1-sf");
    let srv = fx.start(json!({}));
    let addr = srv.local_addr();
    let mut a = connect(addr, "/ws1");
    assert_eq!(a.cmd("C;SF;0,0,0,-;0,0,0,-"), "-;SF;5;Not authorised.");
    assert_eq!(
        a.cmd("C;SETFILTER;0,0,0,-;0,0,0,-"),
        "-;SF;5;Not authorised."
    );
    let mut u = connect(addr, "/ws1");
    u.login_open("user", "secret");
    assert_eq!(
        u.cmd("C;SF;0,10,6,-;0,0xFFFF,0xFFFF,-"),
        "-;SF;7;Not allowed to do that (check privileges)"
    );
    assert_eq!(
        u.cmd("C;SETFILTER;0,10,6,-;0,0xFFFF,0xFFFF,-"),
        "-;SF;7;Not allowed to do that (check privileges)"
    );
    a.auth("admin", "secret");
    for bad in [
        "C;SF",
        "C;SF;0,10,6,-",
        "C;SETFILTER;0,10,6,-",
        "C;SF;x,10,6,-;0,0,0,-",
        "C;SF;0,10,6,-;0,zz,0,-",
        "C;SF;0,10,6,GG:00;0,0,0,-",
    ] {
        assert_eq!(a.cmd(bad), "-;SF;1;Syntax error.", "{bad}");
    }
    assert_eq!(a.cmd("C;SF;0,10,6,-;0,0xFFFF,0xFFFF,-"), "+;SF");
    assert_eq!(a.cmd("C;SETFILTER;0,10,6,-;0,0xFFFF,0xFFFF,-"), "+;SF");
    assert_eq!(
        a.cmd(
            "C;SF;0,0,0,00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:01;\
             0,0,0,00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:FF"
        ),
        "+;SF"
    );
    // Missing trailing parts default to 0.
    assert_eq!(a.cmd("C;SF;;"), "+;SF");
    assert_eq!(a.cmd("C;SF;0,10;0,0xFFFF"), "+;SF");
    stop(srv, vec![a, u]);
}

#[test]
fn setfilter_limits_delivery() {
    let fx = Fixture::new("ws1-sf-deliver");
    let srv = fx.start(json!({}));
    let addr = srv.local_addr();
    let mut a = connect(addr, "/ws1");
    let mut b = connect(addr, "/ws1");
    a.login_open("admin", "secret");
    b.login_open("admin", "secret");
    // vectors.md F4: only class 10 type 6.
    assert_eq!(a.cmd("C;SF;0,10,6,-;0,0xFFFF,0xFFFF,-"), "+;SF");
    assert_eq!(b.cmd("E;0,10,5,0,,0,-,1"), "+;EVENT");
    assert_eq!(b.cmd("E;0,20,3,0,,0,-,2"), "+;EVENT");
    assert_eq!(b.cmd("E;0,10,6,0,,0,-,3"), "+;EVENT");
    let e = a.recv_event();
    assert!(e.starts_with("E;0,10,6,") && e.ends_with(",0x03"), "{e}");
    // F8/F9: priority 3 passes, priority 7 does not.
    assert_eq!(a.cmd("C;SF;3,0,0,-;7,0,0,-"), "+;SF");
    assert_eq!(b.cmd("E;0xE0,20,3,0,,0,-,4"), "+;EVENT");
    assert_eq!(b.cmd("E;0x60,20,3,0,,0,-,5"), "+;EVENT");
    let e = a.recv_event();
    assert!(e.starts_with("E;96,20,3,") && e.ends_with(",0x05"), "{e}");
    // All pass again.
    assert_eq!(a.cmd("C;SF;0,0,0,-;0,0,0,-"), "+;SF");
    assert_eq!(b.cmd("E;0,30,5,0,,0,-,6"), "+;EVENT");
    let e = a.recv_event();
    assert!(e.starts_with("E;0,30,5,") && e.ends_with(",0x06"), "{e}");
    stop(srv, vec![a, b]);
}

#[test]
fn clrqueue_empties_the_queue() {
    let fx = Fixture::new("ws1-clrq");
    let srv = fx.start(json!({}));
    let addr = srv.local_addr();
    let mut a = connect(addr, "/ws1");
    let mut b = connect(addr, "/ws1");
    assert_eq!(a.cmd("C;CLRQ"), "-;CLRQ;5;Not authorised.");
    assert_eq!(a.cmd("C;CLRQUEUE"), "-;CLRQ;5;Not authorised.");
    a.login_open("admin", "secret");
    b.login_open("admin", "secret");
    for spelling in ["C;CLRQ", "C;CLRQUEUE", "C;clrq"] {
        assert_eq!(a.cmd("C;CLOSE"), "+;CLOSE");
        assert_eq!(b.cmd("E;0,20,3,0,,0,-,1"), "+;EVENT");
        assert_eq!(b.cmd("E;0,20,3,0,,0,-,2"), "+;EVENT");
        assert!(eventually(Duration::from_secs(2), || srv
            .stats()
            .outbox_depth
            == 2));
        assert_eq!(a.cmd(spelling), "+;CLRQ");
        assert_eq!(srv.stats().outbox_depth, 0);
        assert_eq!(a.cmd("C;OPEN"), "+;OPEN");
        a.assert_noop_next();
        assert_eq!(a.try_recv_text(Duration::from_millis(150)), None);
    }
    // Live events still flow after the clear.
    assert_eq!(b.cmd("E;0,20,3,0,,0,-,3"), "+;EVENT");
    assert!(a.recv_event().ends_with(",0x03"));
    // CLRQ on an open channel with an empty queue is fine too.
    assert_eq!(a.cmd("C;CLRQ"), "+;CLRQ");
    stop(srv, vec![a, b]);
}

#[test]
fn unknown_and_malformed_commands() {
    let fx = Fixture::new("ws1-unknown");
    let srv = fx.start(json!({}));
    let mut a = connect(srv.local_addr(), "/ws1");
    let cases = [
        ("C;FOO;x", "-;FOO;2;Unknown command."),
        ("C;foo", "-;FOO;2;Unknown command."),
        ("C;", "-;1;Syntax error."),
        ("C", "-;C;2;Unknown command."),
        ("C;;NOOP", "-;;2;Unknown command."),
        // Exact names only (REC, not REF's prefix match).
        ("C;NOOPX", "-;NOOPX;2;Unknown command."),
        ("C;SFX", "-;SFX;2;Unknown command."),
        ("C;OPENX", "-;OPENX;2;Unknown command."),
        ("C;INTERFACES", "-;INTERFACES;2;Unknown command."),
        ("C;WCYD", "-;WCYD;2;Unknown command."),
        ("C;VER", "-;VER;2;Unknown command."),
        // The token is trimmed; the line too.
        ("C; noop ", "+;NOOP"),
        ("  C;NOOP\r\n", "+;NOOP"),
        ("C;NOOP;extra;args", "+;NOOP"),
    ];
    for (line, reply) in cases {
        assert_eq!(a.cmd(line), reply, "{line:?}");
    }
    stop(srv, vec![a]);
}

#[test]
fn lowercase_command_names_work() {
    let fx = Fixture::new("ws1-lower");
    let srv = fx.start(json!({}));
    let addr = srv.local_addr();
    let mut a = connect(addr, "/ws1");
    assert_eq!(a.cmd("C;noop"), "+;NOOP");
    assert!(a.cmd("C;version").starts_with("+;VERSION;"));
    assert!(a.cmd("C;copyright").starts_with("+;COPYRIGHT;"));
    assert_eq!(a.cmd("C;Challenge"), format!("+;AUTH0;{}", a.sid));
    let crypto = a.crypto("admin", "secret");
    assert!(a
        .cmd(&format!("C;auth;{};{crypto}", a.sid))
        .starts_with("+;AUTH1;"));
    assert_eq!(a.cmd("C;open"), "+;OPEN");
    assert_eq!(a.cmd("C;sf;0,0,0,-;0,0,0,-"), "+;SF");
    assert_eq!(a.cmd("C;setfilter;0,0,0,-;0,0,0,-"), "+;SF");
    assert_eq!(a.cmd("C;clrqueue"), "+;CLRQ");
    assert_eq!(a.cmd("C;Close"), "+;CLOSE");
    stop(srv, vec![a]);
}

#[test]
fn lowercase_kind_character_is_ignored() {
    let fx = Fixture::new("ws1-lowerkind");
    let srv = fx.start(json!({}));
    let addr = srv.local_addr();
    let mut a = connect(addr, "/ws1");
    let mut b = connect(addr, "/ws1");
    a.login_open("admin", "secret");
    b.login_open("admin", "secret");
    a.send("c;NOOP");
    assert_eq!(a.try_recv_text(Duration::from_millis(150)), None);
    a.assert_noop_next();
    // `e;` is not an event either: nothing is sent, nothing reaches b.
    a.send("e;0,20,3,0,,0,-,9");
    a.send("c;OPEN");
    a.assert_noop_next();
    assert_eq!(a.cmd("E;0,20,3,0,,0,-,1"), "+;EVENT");
    assert!(b.recv_event().ends_with(",0x01"), "the e; line was routed");
    stop(srv, vec![a, b]);
}

// ----------------------------------------------------------------------------- events

#[test]
fn event_before_auth_is_not_authorised() {
    let fx = Fixture::new("ws1-ev-unauth");
    let srv = fx.start(json!({}));
    let addr = srv.local_addr();
    let mut a = connect(addr, "/ws1");
    let mut b = connect(addr, "/ws1");
    b.login_open("admin", "secret");
    assert_eq!(a.cmd("E;0,20,3,0,,0,-,1"), "-;5;Not authorised.");
    // Authorisation is checked before parsing.
    assert_eq!(a.cmd("E;garbage"), "-;5;Not authorised.");
    a.assert_noop_next();
    a.login_open("user", "secret");
    assert_eq!(a.cmd("E;0,20,3,0,,0,-,2"), "+;EVENT");
    let e = b.recv_event();
    assert!(
        e.ends_with(",0x02"),
        "the unauthorised event was routed: {e}"
    );
    stop(srv, vec![a, b]);
}

#[test]
fn event_without_send_right() {
    let fx = Fixture::new("ws1-ev-noright");
    let srv = fx.start(json!({}));
    let mut a = connect(srv.local_addr(), "/ws1");
    a.login_open("vscp", "secret");
    let denied = "-;7;Not allowed to do that (check privileges)";
    assert_eq!(a.cmd("E;0,20,3,0,,0,-,1"), denied);
    assert_eq!(a.cmd("E;0,20,3,0,,0"), denied, "rights before parsing");
    a.assert_noop_next();
    stop(srv, vec![a]);
}

#[test]
fn event_class_rights() {
    let fx = Fixture::new("ws1-ev-class");
    let srv = fx.start_with_users(&custom_users(), json!({}));
    let addr = srv.local_addr();
    let denied = "-;6;Not allowed to send event.";
    // `john doe` may send events but has no l1ctrl/l2ctrl/hlo rights.
    let mut j = connect(addr, "/ws1");
    j.login_open("john doe", "secret");
    for class in [0, 512, 1024, 1028] {
        assert_eq!(
            j.cmd(&format!("E;0,{class},1,0,,0,-")),
            denied,
            "class {class}"
        );
    }
    assert_eq!(j.cmd("E;0,20,3,0,,0,-"), "+;EVENT");
    assert_eq!(j.cmd("E;0,1029,1,0,,0,-"), "+;EVENT");
    stop(srv, vec![j]);

    let fx = Fixture::new("ws1-ev-class2");
    let srv = fx.start(json!({}));
    let mut u = connect(srv.local_addr(), "/ws1");
    u.login_open("user", "secret");
    // `user` rights have l1ctrl and l2ctrl but not hlo.
    assert_eq!(u.cmd("E;0,1028,1,0,,0,-"), denied);
    assert_eq!(u.cmd("E;0,0,1,0,,0,-"), "+;EVENT");
    assert_eq!(u.cmd("E;0,512,1,0,,0,-"), "+;EVENT");
    assert_eq!(u.cmd("E;0,1024,1,0,,0,-"), "+;EVENT");
    // Parse errors come before class rights.
    assert_eq!(u.cmd("E;0,1028,1,0,,0"), PARSE_ERROR);
    let mut a = connect(srv.local_addr(), "/ws1");
    a.login_open("admin", "secret");
    assert_eq!(a.cmd("E;0,1028,1,0,,0,-"), "+;EVENT");
    stop(srv, vec![u, a]);
}

#[test]
fn event_allow_list() {
    let fx = Fixture::new("ws1-ev-allow");
    let srv = fx.start(json!({}));
    let addr = srv.local_addr();
    let mut s = connect(addr, "/ws1");
    let mut b = connect(addr, "/ws1");
    s.login_open("special1", "secret");
    b.login_open("admin", "secret");
    assert_eq!(s.cmd("E;0,20,3,0,,0,-,1"), "-;6;Not allowed to send event.");
    assert_eq!(s.cmd("E;0,10,6,0,,0,-,2"), "+;EVENT");
    assert_eq!(s.cmd("E;0,10,99,0,,0,-,3"), "+;EVENT");
    let e = b.recv_event();
    assert!(e.starts_with("E;0,10,6,") && e.ends_with(",0x02"), "{e}");
    assert!(b.recv_event().starts_with("E;0,10,99,"));
    stop(srv, vec![s, b]);
}

#[test]
fn event_parse_errors() {
    let fx = Fixture::new("ws1-ev-parse");
    let srv = fx.start(json!({}));
    let addr = srv.local_addr();
    let mut a = connect(addr, "/ws1");
    let mut b = connect(addr, "/ws1");
    a.login_open("admin", "secret");
    b.login_open("admin", "secret");
    let too_much = format!("E;0,20,3,0,,0,-{}", ",1".repeat(513));
    let bad = [
        "E;0,20,3,0,,0", // P4: six fields
        "E;",
        "E",
        "E;0,20,3",
        too_much.as_str(),
        "E;abc,20,3,0,,0,-",
        "E;0,xyz,3,0,,0,-",
        "E;0,20,3,0,,zz,-",
        "E;0,20,3,0,,0,-,0xZZ",
        "E;0,20,3,0,,0,-,-1",
        "E;0,20,3,0,,0,-,99999999999999999999999999",
        "E;0,20,3,0,,0,GG:00:00",
        "E;0,20,3,0,garbage,0,-",
    ];
    for line in bad {
        assert_eq!(a.cmd(line), PARSE_ERROR, "{}", &line[..line.len().min(40)]);
    }
    // The connection and the routing still work; none of the bad lines was routed.
    let max = format!("E;0,20,3,0,,0,-{}", ",7".repeat(512));
    assert_eq!(a.cmd(&max), "+;EVENT", "512 data bytes are allowed");
    let e = b.recv_event();
    assert!(e.starts_with("E;0,20,3,"), "{}", &e[..40]);
    assert_eq!(e.matches(",0x07").count(), 512);
    // P3: seven fields, everything else defaulted. P2: empty GUID field.
    assert_eq!(a.cmd("E;0,20,3,,,,-"), "+;EVENT");
    assert_eq!(a.cmd("E;0,20,3,0,,0,,1,2,3"), "+;EVENT");
    assert_eq!(
        a.cmd("E;0,30,5,0,2000-01-01T12:33:14,0,FF:FF:FF:FF:FF:FF:FF:FE:00:26:55:CA:00:06:00:00,0x01,0x01"),
        "+;EVENT"
    );
    assert!(b.recv_event().starts_with("E;0,20,3,"));
    assert!(b.recv_event().ends_with(",0x01,0x02,0x03"));
    // E1: the server sets obid and the timestamp, and writes the date with a `Z`.
    let e = b.recv_event();
    let f: Vec<&str> = e.split(',').collect();
    assert_eq!(f.len(), 9, "{e}");
    assert_eq!(&f[..3], ["E;0", "30", "5"], "{e}");
    assert_eq!(f[4], "2000-01-01T12:33:14Z", "{e}");
    assert!(f[5].parse::<u32>().unwrap() > 0, "{e}");
    assert_eq!(
        &f[6..],
        [
            "FF:FF:FF:FF:FF:FF:FF:FE:00:26:55:CA:00:06:00:00",
            "0x01",
            "0x01"
        ]
    );
    stop(srv, vec![a, b]);
}
