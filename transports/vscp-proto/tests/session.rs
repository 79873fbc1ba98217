//! The session state machine driven without sockets: the complete sessions W1 and W2 of
//! vectors.md, and no panic on arbitrary input in either dialect.

use proptest::prelude::*;
use std::sync::Arc;
use std::time::{Duration, Instant};
use vscp_proto::auth::{self, Credentials};
use vscp_proto::session::{Action, PublishOutcome, SessionConfig, State, Timeout};
use vscp_proto::{Dialect, Session, UserDb};

const KEY_W1: [u8; 16] = [
    0x2D, 0xBB, 0x07, 0x9A, 0x38, 0x98, 0x5A, 0xF0, 0x0E, 0xBE, 0xEF, 0xE2, 0x2F, 0x9F, 0xFA, 0x0E,
];
const KEY_W2: [u8; 16] = [
    0xA4, 0xA8, 0x6F, 0x7D, 0x7E, 0x11, 0x9B, 0xA3, 0xF0, 0xCD, 0x06, 0x88, 0x1E, 0x37, 0x1B, 0x98,
];

const USERS: &str = r#"{"users":[
  {"name":"admin","password":"2d1e4f91dae49cd08eaba2293e422273","rights":"admin",
   "remotes":["+127.0.0.0/24","+192.168.0.0/16"],"events":"",
   "note":"A normal user. username='admin' password='secret'"},
  {"name":"user","password":"8c3088f1b27432344f14d82033749797","rights":"user"}
]}"#;

fn cfg(key: [u8; 16]) -> SessionConfig {
    SessionConfig {
        key,
        ws2_accept_client_iv: false,
        software_version: "9.8.7".into(),
        copyright: "test copyright".into(),
        auth_timeout: Duration::ZERO,
        idle_timeout: Duration::ZERO,
        ping_interval: Duration::ZERO,
        pong_timeout: Duration::ZERO,
        tcp_host: "standalone",
        check_interface_rights: false,
    }
}

/// The websocket dialects (the tcp/ip link interface has its own tests, tests/tcp_session.rs).
const WS: [Dialect; 2] = [Dialect::Ws1, Dialect::Ws2];

/// What a host does with an Authenticate action: user lookup and password check.
fn verdict(db: &UserDb, c: &Credentials) -> Option<Arc<vscp_proto::User>> {
    let u = db.get(&c.user)?;
    u.verify_password(&c.password).then(|| u.clone())
}

/// Feeds one message and resolves Authenticate/Publish the way the server glue does.
fn step(s: &mut Session, db: &UserDb, cfg: &SessionConfig, msg: &str) -> Option<String> {
    step_at(s, db, cfg, msg, Instant::now())
}

/// [`step`] with the message arriving at `now`.
fn step_at(
    s: &mut Session,
    db: &UserDb,
    cfg: &SessionConfig,
    msg: &str,
    now: Instant,
) -> Option<String> {
    let mut buf = msg.as_bytes().to_vec();
    match s.handle_message(&mut buf, cfg, now) {
        Action::None => None,
        Action::Reply(r) | Action::Opened(r) | Action::ClearQueue(r) => Some(r),
        Action::Authenticate(c) => Some(s.finish_auth(verdict(db, &c), [0x11; 16])),
        Action::Publish(_) => Some(s.event_reply(PublishOutcome::Accepted)),
        other => panic!("not a websocket action: {other:?}"),
    }
}

fn sid(hex: &str) -> [u8; 16] {
    auth::hex_decode_16(hex).unwrap()
}

#[test]
fn w1_complete_ws1_session() {
    let db = UserDb::from_json(USERS).unwrap();
    let cfg = cfg(KEY_W1);
    let mut s = Session::new(
        Dialect::Ws1,
        sid("55BCA4DC7C1FD9C3E6967F37C8747698"),
        Instant::now(),
    );
    assert_eq!(s.greeting(&cfg), "+;AUTH0;55BCA4DC7C1FD9C3E6967F37C8747698");
    let mut t = |m: &str| step(&mut s, &db, &cfg, m);
    assert_eq!(t("C;OPEN").as_deref(), Some("-;OPEN;5;Not authorised."));
    assert_eq!(t("C;VERSION").as_deref(), Some("+;VERSION;9.8.7;1.0.0.0"));
    assert_eq!(
        t("C;AUTH;00112233445566778899AABBCCDDEEFF;42273E9F3440DABA5B0CC05242F742B2").as_deref(),
        Some("-;AUTH;1;Syntax error.")
    );
    let auth1 =
        t("C;AUTH;55BCA4DC7C1FD9C3E6967F37C8747698;42273E9F3440DABA5B0CC05242F742B2").unwrap();
    assert_eq!(
        auth1,
        "+;AUTH1;0;admin;********************************;;\
         0,0,0,00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00;\
         0,0,0,00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00;\
         11111111111111111111111111111111;+127.0.0.0/24,+192.168.0.0/16;;\
         QSBub3JtYWwgdXNlci4gdXNlcm5hbWU9J2FkbWluJyBwYXNzd29yZD0nc2VjcmV0Jw=="
    );
    assert_eq!(
        t("C;SF;0,10,6,-;0,0xFFFF,0xFFFF,-").as_deref(),
        Some("+;SF")
    );
    assert_eq!(t("C;OPEN").as_deref(), Some("+;OPEN"));
    assert_eq!(t("E;0,30,5,0,,0,-,1,2,3").as_deref(), Some("+;EVENT"));
    assert_eq!(t("C;noop").as_deref(), Some("+;NOOP"));
    assert_eq!(t("c;NOOP"), None);
    assert_eq!(t("C;FOO").as_deref(), Some("-;FOO;2;Unknown command."));
    assert_eq!(t("C;CLOSE").as_deref(), Some("+;CLOSE"));
    assert_eq!(s.state(), State::Authenticated);
    assert_eq!(s.filter().filter_class, 10);
}

#[test]
fn w2_complete_ws2_session() {
    let db = UserDb::from_json(USERS).unwrap();
    let cfg = cfg(KEY_W2);
    let mut s = Session::new(
        Dialect::Ws2,
        sid("5A475C082C80DCDF7F2DFBD976253B24"),
        Instant::now(),
    );
    assert_eq!(
        s.greeting(&cfg),
        r#"{    "type" : "+",     "args" : ["AUTH0","5A475C082C80DCDF7F2DFBD976253B24"]}"#
    );
    let mut t = |m: &str| {
        step(&mut s, &db, &cfg, m).map(|r| serde_json::from_str::<serde_json::Value>(&r).unwrap())
    };
    let r = t(r#"{"type":"cmd","command":"auth","args":{"iv":"5A475C082C80DCDF7F2DFBD976253B24","crypto":"69B1180D2F4809D39BE34E19C750107F"}}"#).unwrap();
    assert_eq!(
        r,
        serde_json::json!({"type":"+","command":"AUTH","args":null})
    );
    let r = t(r#"{"type":"CMD","command":"OPEN","args":null}"#).unwrap();
    assert_eq!(
        r,
        serde_json::json!({"type":"+","command":"OPEN","args":null})
    );
    let r = t(r#"{"type":"EVENT","event":{"vscpHead":0,"vscpClass":20,"vscpType":3,"vscpGuid":"-","vscpData":[1,2,3]}}"#).unwrap();
    assert_eq!(
        r,
        serde_json::json!({"type":"+","command":"EVENT","args":null})
    );
    let r = t(r#"{"type":"CMD","command":"VER","args":null}"#).unwrap();
    assert_eq!(
        r,
        serde_json::json!({"type":"+","command":"VER","args":{"version":"9.8.7-0"}})
    );
    let r = t(r#"{"type":"CMD","command":"BOGUS","args":{}}"#).unwrap();
    assert_eq!(
        r,
        serde_json::json!({"type":"-","command":"BOGUS","errcode":2,"errstr":"Unknown command."})
    );
    let r = t("not json").unwrap();
    assert_eq!(
        r,
        serde_json::json!({"type":"-","command":"EVENT","errcode":9,"errstr":"Unknown type, only know 'COMMAND' and 'EVENT'."})
    );
}

#[test]
fn failed_auth_rotates_sid_and_closes_channel() {
    let db = UserDb::from_json(USERS).unwrap();
    let cfg = cfg(KEY_W1);
    let first = sid("55BCA4DC7C1FD9C3E6967F37C8747698");
    let mut s = Session::new(Dialect::Ws1, first, Instant::now());
    let good = auth::encrypt_credentials(&KEY_W1, &first, "admin", "secret");
    assert!(step(
        &mut s,
        &db,
        &cfg,
        &format!("C;AUTH;55BCA4DC7C1FD9C3E6967F37C8747698;{good}")
    )
    .unwrap()
    .starts_with("+;AUTH1;"));
    assert_eq!(step(&mut s, &db, &cfg, "C;OPEN").as_deref(), Some("+;OPEN"));
    let bad = auth::encrypt_credentials(&KEY_W1, &first, "admin", "wrong");
    assert_eq!(
        step(
            &mut s,
            &db,
            &cfg,
            &format!("C;AUTH;55BCA4DC7C1FD9C3E6967F37C8747698;{bad}")
        )
        .as_deref(),
        Some("-;AUTH;5;Not authorised.")
    );
    assert_eq!(s.state(), State::Connected);
    assert!(s.user().is_none());
    assert_eq!(
        step(&mut s, &db, &cfg, "C;CHALLENGE").as_deref(),
        Some("+;AUTH0;11111111111111111111111111111111")
    );
    assert_eq!(
        step(&mut s, &db, &cfg, "E;0,20,3,,,,-").as_deref(),
        Some("-;5;Not authorised.")
    );
}

#[test]
fn user_rights_decide_what_may_be_sent() {
    let db = UserDb::from_json(USERS).unwrap();
    let cfg = cfg(KEY_W1);
    let id = [7u8; 16];
    let mut s = Session::new(Dialect::Ws1, id, Instant::now());
    let c = auth::encrypt_credentials(&KEY_W1, &id, "user", "secret");
    let hex = auth::hex_upper(&id);
    assert!(step(&mut s, &db, &cfg, &format!("C;AUTH;{hex};{c}"))
        .unwrap()
        .starts_with("+;AUTH1;1;user;"));
    // `user` has no set-filter right and no hlo-events right.
    assert_eq!(
        step(&mut s, &db, &cfg, "C;SF;0,10,6,-;0,0xFFFF,0xFFFF,-").as_deref(),
        Some("-;SF;7;Not allowed to do that (check privileges)")
    );
    assert_eq!(
        step(&mut s, &db, &cfg, "E;0,1028,1,0,,0,-").as_deref(),
        Some("-;6;Not allowed to send event.")
    );
    assert_eq!(
        step(&mut s, &db, &cfg, "E;0,1024,1,0,,0,-").as_deref(),
        Some("+;EVENT")
    );
    assert_eq!(
        step(&mut s, &db, &cfg, "E;0,20,3,0,,0").as_deref(),
        Some("-;8;Parse error, invalid format.")
    );
}

fn any_session(dialect: Dialect, logged_in: bool) -> (Session, UserDb, SessionConfig) {
    let db = UserDb::from_json(USERS).unwrap();
    let cfg = cfg(KEY_W1);
    let id = [3u8; 16];
    let mut s = Session::new(dialect, id, Instant::now());
    if logged_in {
        let c = auth::encrypt_credentials(&KEY_W1, &id, "admin", "secret");
        let hex = auth::hex_upper(&id);
        let msg = match dialect {
            Dialect::Ws1 => format!("C;AUTH;{hex};{c}"),
            Dialect::Ws2 => format!(
                r#"{{"type":"CMD","command":"AUTH","args":{{"iv":"{hex}","crypto":"{c}"}}}}"#
            ),
            Dialect::Tcp => unreachable!("websocket dialects only"),
        };
        step(&mut s, &db, &cfg, &msg);
        assert_ne!(s.state(), State::Connected);
    }
    (s, db, cfg)
}

// Deadlines with a fake clock: `t(s)` is `s` seconds after the session started; nothing sleeps.

fn timed_cfg(auth_secs: u64, idle_secs: u64) -> SessionConfig {
    SessionConfig {
        auth_timeout: Duration::from_secs(auth_secs),
        idle_timeout: Duration::from_secs(idle_secs),
        ..cfg(KEY_W1)
    }
}

/// An AUTH message for `user`/`password` against the challenge `id`.
fn auth_msg(dialect: Dialect, id: &[u8; 16], user: &str, password: &str) -> String {
    let c = auth::encrypt_credentials(&KEY_W1, id, user, password);
    let hex = auth::hex_upper(id);
    match dialect {
        Dialect::Ws1 => format!("C;AUTH;{hex};{c}"),
        Dialect::Ws2 => {
            format!(r#"{{"type":"CMD","command":"AUTH","args":{{"iv":"{hex}","crypto":"{c}"}}}}"#)
        }
        Dialect::Tcp => unreachable!("websocket dialects only"),
    }
}

const ID: [u8; 16] = [9u8; 16];

/// A fresh session started at `t0`, the user database and a clock relative to `t0`.
fn timed_session(dialect: Dialect) -> (Session, UserDb, impl Fn(f64) -> Instant) {
    let t0 = Instant::now();
    let db = UserDb::from_json(USERS).unwrap();
    (Session::new(dialect, ID, t0), db, move |secs| {
        t0 + Duration::from_secs_f64(secs)
    })
}

#[test]
fn login_deadline_fires_only_while_not_logged_in() {
    for dialect in WS {
        let cfg = timed_cfg(5, 0);
        let (mut s, db, t) = timed_session(dialect);
        assert_eq!(s.poll_timeout(&cfg), Some(t(5.0)));
        // Input does not move the login deadline: only logging in ends it.
        step_at(&mut s, &db, &cfg, "C;NOOP", t(3.0));
        assert_eq!(s.poll_timeout(&cfg), Some(t(5.0)));
        assert_eq!(s.handle_timeout(t(4.999), &cfg), None);
        assert_eq!(s.handle_timeout(t(5.0), &cfg), Some(Timeout::Login));
        assert_eq!(s.handle_timeout(t(60.0), &cfg), Some(Timeout::Login));
    }
}

#[test]
fn successful_auth_cancels_the_login_deadline() {
    for dialect in WS {
        let cfg = timed_cfg(5, 0);
        let (mut s, db, t) = timed_session(dialect);
        step_at(
            &mut s,
            &db,
            &cfg,
            &auth_msg(dialect, &ID, "admin", "secret"),
            t(1.0),
        );
        assert_eq!(s.state(), State::Authenticated, "{dialect:?}");
        // No idle timeout either: a logged-in session needs no timer at all.
        assert_eq!(s.poll_timeout(&cfg), None);
        assert_eq!(s.handle_timeout(t(5.0), &cfg), None);
        assert_eq!(s.handle_timeout(t(3600.0), &cfg), None);
    }
}

#[test]
fn failed_auth_keeps_the_login_deadline() {
    let cfg = timed_cfg(5, 0);
    let (mut s, db, t) = timed_session(Dialect::Ws1);
    let reply = step_at(
        &mut s,
        &db,
        &cfg,
        &auth_msg(Dialect::Ws1, &ID, "admin", "wrong"),
        t(1.0),
    );
    assert_eq!(reply.as_deref(), Some("-;AUTH;5;Not authorised."));
    assert_eq!(s.poll_timeout(&cfg), Some(t(5.0)));
    assert_eq!(s.handle_timeout(t(5.0), &cfg), Some(Timeout::Login));
}

/// A failed re-AUTH drops a logged-in session back to `Connected`. The login deadline still
/// counts from the session's start, so no new grace period begins: before that moment the
/// session gets what is left of it, after it the session is closed at the next check.
#[test]
fn failed_reauth_brings_back_the_deadline_from_the_start() {
    for dialect in WS {
        let cfg = timed_cfg(5, 0);
        let (mut s, db, t) = timed_session(dialect);
        step_at(
            &mut s,
            &db,
            &cfg,
            &auth_msg(dialect, &ID, "admin", "secret"),
            t(1.0),
        );
        assert_eq!(s.poll_timeout(&cfg), None);
        // Before the original deadline: it applies again, unchanged.
        step_at(
            &mut s,
            &db,
            &cfg,
            &auth_msg(dialect, &ID, "admin", "wrong"),
            t(2.0),
        );
        assert_eq!(s.state(), State::Connected);
        assert_eq!(s.poll_timeout(&cfg), Some(t(5.0)));
        assert_eq!(s.handle_timeout(t(4.0), &cfg), None);
        assert_eq!(s.handle_timeout(t(5.0), &cfg), Some(Timeout::Login));

        // After the original deadline: due at once.
        let (mut s, db, t) = timed_session(dialect);
        step_at(
            &mut s,
            &db,
            &cfg,
            &auth_msg(dialect, &ID, "admin", "secret"),
            t(1.0),
        );
        step_at(
            &mut s,
            &db,
            &cfg,
            &auth_msg(dialect, &ID, "admin", "wrong"),
            t(30.0),
        );
        assert_eq!(s.state(), State::Connected);
        assert_eq!(s.poll_timeout(&cfg), Some(t(5.0)));
        assert_eq!(s.handle_timeout(t(30.0), &cfg), Some(Timeout::Login));
    }
}

#[test]
fn idle_deadline_moves_with_activity() {
    let cfg = timed_cfg(0, 10);
    let (mut s, db, t) = timed_session(Dialect::Ws1);
    assert_eq!(s.poll_timeout(&cfg), Some(t(10.0)));
    step_at(&mut s, &db, &cfg, "C;NOOP", t(4.0));
    assert_eq!(s.poll_timeout(&cfg), Some(t(14.0)));
    // A timer set for the old deadline fires: nothing is due yet.
    assert_eq!(s.handle_timeout(t(10.0), &cfg), None);
    // Frames without a message (ping, pong, binary) count as activity too.
    s.handle_activity(t(12.0));
    assert_eq!(s.poll_timeout(&cfg), Some(t(22.0)));
    assert_eq!(s.handle_timeout(t(21.9), &cfg), None);
    assert_eq!(s.handle_timeout(t(22.0), &cfg), Some(Timeout::Idle));
    // Messages the session ignores or refuses are activity as well.
    step_at(&mut s, &db, &cfg, "garbage", t(25.0));
    assert_eq!(s.poll_timeout(&cfg), Some(t(35.0)));
}

#[test]
fn idle_deadline_applies_after_login() {
    let cfg = timed_cfg(5, 10);
    let (mut s, db, t) = timed_session(Dialect::Ws2);
    step_at(
        &mut s,
        &db,
        &cfg,
        &auth_msg(Dialect::Ws2, &ID, "admin", "secret"),
        t(1.0),
    );
    assert_eq!(s.poll_timeout(&cfg), Some(t(11.0)));
    assert_eq!(s.handle_timeout(t(5.0), &cfg), None);
    assert_eq!(s.handle_timeout(t(11.0), &cfg), Some(Timeout::Idle));
}

#[test]
fn zero_timeouts_are_off() {
    for dialect in WS {
        let cfg = timed_cfg(0, 0);
        let (mut s, db, t) = timed_session(dialect);
        assert_eq!(s.poll_timeout(&cfg), None);
        assert_eq!(s.handle_timeout(t(365.0 * 86400.0), &cfg), None);
        step_at(
            &mut s,
            &db,
            &cfg,
            &auth_msg(dialect, &ID, "admin", "secret"),
            t(1.0),
        );
        assert_eq!(s.poll_timeout(&cfg), None);
        assert_eq!(s.handle_timeout(t(365.0 * 86400.0), &cfg), None);
    }
}

#[test]
fn the_earlier_deadline_wins() {
    // Login first.
    let cfg = timed_cfg(5, 10);
    let (mut s, _db, t) = timed_session(Dialect::Ws1);
    assert_eq!(s.poll_timeout(&cfg), Some(t(5.0)));
    assert_eq!(s.handle_timeout(t(5.0), &cfg), Some(Timeout::Login));

    // Idle first, until activity pushes it past the login deadline.
    let cfg = timed_cfg(10, 3);
    let (mut s, _db, t) = timed_session(Dialect::Ws1);
    assert_eq!(s.poll_timeout(&cfg), Some(t(3.0)));
    assert_eq!(s.handle_timeout(t(3.0), &cfg), Some(Timeout::Idle));
    let (mut s, _db, t) = timed_session(Dialect::Ws1);
    s.handle_activity(t(2.0));
    assert_eq!(s.poll_timeout(&cfg), Some(t(5.0)));
    s.handle_activity(t(4.0));
    assert_eq!(s.poll_timeout(&cfg), Some(t(7.0)));
    s.handle_activity(t(8.0));
    assert_eq!(s.poll_timeout(&cfg), Some(t(10.0)));
    assert_eq!(s.handle_timeout(t(10.0), &cfg), Some(Timeout::Login));

    // Both due: the login deadline is reported (it decides the close code and the counter).
    let cfg = timed_cfg(5, 5);
    let (mut s, _db, t) = timed_session(Dialect::Ws2);
    assert_eq!(s.poll_timeout(&cfg), Some(t(5.0)));
    assert_eq!(s.handle_timeout(t(6.0), &cfg), Some(Timeout::Login));
}

/// Fragments that make random input more likely to reach deep code paths.
fn ws_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[CE];[A-Za-z]{0,10}(;[0-9A-Fa-fx:,.-]{0,40}){0,12}",
        r#"\{"type":"(CMD|EVENT|E|C|\+|x)","(command|event)":("[A-Za-z]{0,9}"|\{"vscpData":\[[0-9,]{0,30}\]\}|[0-9]+),"args":(null|\{"iv":"[0-9A-F]{0,40}","crypto":"[0-9A-F]{0,70}"\}|\[\]|\{"filter_class":"?[0-9a-z]{0,6}"?\})\}"#,
    ]
}

proptest! {
    #[test]
    fn ws1_never_panics(msgs in proptest::collection::vec(ws_text(), 1..8), logged_in in any::<bool>()) {
        let (mut s, db, cfg) = any_session(Dialect::Ws1, logged_in);
        for m in msgs {
            let _ = step(&mut s, &db, &cfg, &m);
        }
    }

    #[test]
    fn ws2_never_panics(msgs in proptest::collection::vec(ws_text(), 1..8), logged_in in any::<bool>()) {
        let (mut s, db, cfg) = any_session(Dialect::Ws2, logged_in);
        for m in msgs {
            // Every ws2 reply must be valid JSON, whatever the input.
            if let Some(r) = step(&mut s, &db, &cfg, &m) {
                prop_assert!(serde_json::from_str::<serde_json::Value>(&r).is_ok(), "reply not JSON: {}", r);
            }
        }
    }

    #[test]
    fn ws2_arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let (mut s, _db, cfg) = any_session(Dialect::Ws2, true);
        let mut b = bytes;
        let _ = s.handle_message(&mut b, &cfg, Instant::now());
    }
}

// Websocket pings (`ws-ping-interval`, `ws-pong-timeout`) on the same fake clock.

fn ping_cfg(interval_secs: u64, pong_secs: u64, idle_secs: u64) -> SessionConfig {
    SessionConfig {
        ping_interval: Duration::from_secs(interval_secs),
        pong_timeout: Duration::from_secs(pong_secs),
        ..timed_cfg(0, idle_secs)
    }
}

#[test]
fn a_silent_peer_is_pinged_then_closed_after_the_pong_timeout() {
    for dialect in WS {
        let cfg = ping_cfg(10, 5, 0);
        let (mut s, db, t) = timed_session(dialect);
        step_at(
            &mut s,
            &db,
            &cfg,
            &auth_msg(dialect, &ID, "admin", "secret"),
            t(1.0),
        );
        // Pinged 10 s after the last input.
        assert_eq!(s.poll_timeout(&cfg), Some(t(11.0)));
        assert_eq!(s.handle_timeout(t(10.9), &cfg), None);
        assert_eq!(s.handle_timeout(t(11.0), &cfg), Some(Timeout::Ping));
        // One ping only; the next deadline is the answer's. Both run while the client does not
        // read its socket too: that is when a dead peer is most likely.
        assert_eq!(s.poll_timeout(&cfg), Some(t(16.0)));
        assert_eq!(s.poll_timeout_blocked(&cfg), Some(t(16.0)));
        assert_eq!(s.handle_timeout(t(15.9), &cfg), None);
        assert_eq!(s.handle_timeout(t(16.0), &cfg), Some(Timeout::NoPong));
        assert_eq!(s.handle_timeout(t(99.0), &cfg), Some(Timeout::NoPong));
    }
}

#[test]
fn a_pong_or_any_input_keeps_the_session_and_restarts_the_interval() {
    let cfg = ping_cfg(10, 5, 0);
    let (mut s, db, t) = timed_session(Dialect::Ws1);
    step_at(
        &mut s,
        &db,
        &cfg,
        &auth_msg(Dialect::Ws1, &ID, "admin", "secret"),
        t(0.0),
    );
    assert_eq!(s.handle_timeout(t(10.0), &cfg), Some(Timeout::Ping));
    s.handle_pong(t(12.0));
    assert_eq!(s.poll_timeout(&cfg), Some(t(22.0)));
    assert_eq!(s.handle_timeout(t(15.0), &cfg), None, "answered: not dead");
    assert_eq!(s.handle_timeout(t(22.0), &cfg), Some(Timeout::Ping));
    // A message instead of a pong counts as well, and so does any other frame.
    step_at(&mut s, &db, &cfg, "C;NOOP", t(23.0));
    assert_eq!(s.poll_timeout(&cfg), Some(t(33.0)));
    assert_eq!(s.handle_timeout(t(33.0), &cfg), Some(Timeout::Ping));
    s.handle_activity(t(37.9));
    assert_eq!(s.handle_timeout(t(38.0), &cfg), None);
    assert_eq!(s.poll_timeout(&cfg), Some(t(47.9)));
    // A timer that fires late shortens the wait for the pong (counted from when the ping was
    // due), it never lengthens it.
    assert_eq!(s.handle_timeout(t(50.0), &cfg), Some(Timeout::Ping));
    assert_eq!(s.poll_timeout(&cfg), Some(t(52.9)));
}

#[test]
fn pongs_do_not_count_as_activity_for_the_idle_timeout() {
    let cfg = ping_cfg(10, 5, 30);
    let (mut s, db, t) = timed_session(Dialect::Ws2);
    step_at(
        &mut s,
        &db,
        &cfg,
        &auth_msg(Dialect::Ws2, &ID, "admin", "secret"),
        t(0.0),
    );
    for at in [10.0, 20.0] {
        assert_eq!(s.handle_timeout(t(at), &cfg), Some(Timeout::Ping));
        s.handle_pong(t(at));
    }
    // A browser answers pings by itself: its user may still be gone.
    assert_eq!(s.poll_timeout(&cfg), Some(t(30.0)));
    assert_eq!(s.handle_timeout(t(30.0), &cfg), Some(Timeout::Idle));
}

#[test]
fn no_pings_without_an_interval_nor_before_the_login_deadline_is_due() {
    let (mut s, db, t) = timed_session(Dialect::Ws1);
    let off = ping_cfg(0, 5, 0);
    step_at(
        &mut s,
        &db,
        &off,
        &auth_msg(Dialect::Ws1, &ID, "admin", "secret"),
        t(0.0),
    );
    assert_eq!(s.poll_timeout(&off), None);
    assert_eq!(s.handle_timeout(t(1e6), &off), None);
    // Before a login both run; the login deadline wins when both have passed.
    let cfg = SessionConfig {
        auth_timeout: Duration::from_secs(12),
        ..ping_cfg(10, 5, 0)
    };
    let (mut s, _, t) = timed_session(Dialect::Ws1);
    assert_eq!(s.poll_timeout(&cfg), Some(t(10.0)));
    assert_eq!(s.handle_timeout(t(10.0), &cfg), Some(Timeout::Ping));
    assert_eq!(s.poll_timeout(&cfg), Some(t(12.0)));
    assert_eq!(s.handle_timeout(t(15.0), &cfg), Some(Timeout::Login));
}
