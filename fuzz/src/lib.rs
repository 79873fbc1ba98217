//! What the fuzz targets share: a session driver that does with each `Action` what the
//! server's connection driver (src/conn.rs) does, with a fake clock and an in-memory queue, so
//! a target runs whole sessions (login included) without sockets.
//!
//! The login is the one step a fuzzer cannot find by itself (the AUTH credential is AES under
//! the server key and the session's SID), so a target may ask the driver to log in first with
//! a correct credential; everything after it comes from the fuzzer's bytes.

use std::collections::VecDeque;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use vscp_proto::session::{
    stamp_event, Action, PublishOutcome, QueueAnswer, QueueRequest, SessionConfig, Timeout,
};
use vscp_proto::{auth, Dialect, Event, Guid, Session, UserDb};

/// The server key of every fuzzed session.
pub const KEY: [u8; 16] = [
    0x2D, 0xBB, 0x07, 0x9A, 0x38, 0x98, 0x5A, 0xF0, 0x0E, 0xBE, 0xEF, 0xE2, 0x2F, 0x9F, 0xFA, 0x0E,
];

/// Users with MD5 passwords (`secret`), so a login costs no PBKDF2 rounds: an administrator,
/// a plain user, one that may only receive, and one with an allow-list and a filter, so every
/// rights check has a user that fails it.
pub const USERS: &str = r#"{"users":[
  {"name":"admin","password":"2d1e4f91dae49cd08eaba2293e422273","rights":"admin",
   "remotes":["+127.0.0.0/24"],"note":"fuzz"},
  {"name":"user","password":"8c3088f1b27432344f14d82033749797","rights":"user"},
  {"name":"vscp","password":"8c92432a556d8dc0b97e9c34fc79725e","rights":"receive-events"},
  {"name":"limited","password":"8c3088f1b27432344f14d82033749797","rights":"send-events,receive-events,set-filter,tcpip",
   "allow-events":["20:3","10:*"],"filter":"0,20,0,-","mask":"0,0xFFFF,0,-"}
]}"#;

/// The spec's server GUID (tcp.md §10).
const SERVER_GUID: &str = "FF:FF:FF:FF:FF:FF:FF:F5:02:88:88:00:00:00:00:01";

/// Most events the in-memory queue keeps (the hub's outbox is bounded the same way).
const QUEUE_MAX: usize = 64;

/// Session settings: both deadlines on, so the fake clock reaches them.
pub fn config() -> SessionConfig {
    SessionConfig {
        key: KEY,
        ws2_accept_client_iv: false,
        software_version: "0.1.0".into(),
        copyright: "fuzz".into(),
        auth_timeout: Duration::from_secs(30),
        idle_timeout: Duration::from_secs(60),
        ping_interval: Duration::from_secs(20),
        pong_timeout: Duration::from_secs(10),
        tcp_host: "standalone",
        check_interface_rights: false,
    }
}

/// The user database, read once per fuzzing process (as the server reads it once).
fn users() -> Arc<UserDb> {
    static DB: OnceLock<Arc<UserDb>> = OnceLock::new();
    DB.get_or_init(|| Arc::new(UserDb::from_json(USERS).expect("the fuzz users parse")))
        .clone()
}

/// One fuzzed client connection and the server-side state around it.
pub struct Driver {
    pub session: Session,
    cfg: SessionConfig,
    db: Arc<UserDb>,
    now: Instant,
    queue: VecDeque<Event>,
    dropped: u64,
    /// Everything the session would have written (replies, delivered events).
    pub written: usize,
    /// True once a deadline closed the session or the session ended its connection.
    pub closed: bool,
}

impl Driver {
    /// A new session of `dialect`; `ws2_client_iv` turns on ws2's REF leniency.
    pub fn new(dialect: Dialect, ws2_client_iv: bool) -> Driver {
        let now = Instant::now();
        let mut cfg = config();
        cfg.ws2_accept_client_iv = ws2_client_iv;
        let mut session = Session::new(dialect, [0x55; 16], now);
        session.set_channel(7, Guid::parse(SERVER_GUID).expect("the spec's GUID"));
        let greeting = session.greeting(&cfg);
        Driver {
            session,
            cfg,
            db: users(),
            now,
            queue: VecDeque::new(),
            dropped: 0,
            written: greeting.len(),
            closed: false,
        }
    }

    /// Logs in as `user` (password `secret`) with the message a real client would send.
    pub fn login(&mut self, user: &str) {
        let line = match self.session.dialect() {
            Dialect::Ws1 | Dialect::Ws2 => {
                let sid = [0x55; 16];
                let crypto = auth::encrypt_credentials(&KEY, &sid, user, "secret");
                let iv = auth::hex_upper(&sid);
                if self.session.dialect() == Dialect::Ws1 {
                    format!("C;AUTH;{iv};{crypto}")
                } else {
                    format!(
                        r#"{{"type":"CMD","command":"AUTH","args":{{"iv":"{iv}","crypto":"{crypto}"}}}}"#
                    )
                }
            }
            Dialect::Tcp => {
                self.message(format!("user {user}").as_bytes(), 0);
                "pass secret".to_string()
            }
        };
        self.message(line.as_bytes(), 0);
    }

    /// Hands one message to the session `advance_ms` after the previous one, and does what the
    /// server would with the outcome. Nothing happens once the session is closed.
    pub fn message(&mut self, msg: &[u8], advance_ms: u64) {
        if self.closed {
            return;
        }
        self.advance(advance_ms);
        if self.closed {
            return;
        }
        let mut buf = msg.to_vec();
        let action = self.session.handle_message(&mut buf, &self.cfg, self.now);
        if let Some(reply) = self.resolve(action) {
            self.written += reply.len();
        }
        self.session.take_rejection();
        if self.session.is_ended() {
            self.closed = true;
        }
        self.deliver();
    }

    /// Moves the clock and fires the deadline the session asked for, as the driver's timer.
    fn advance(&mut self, ms: u64) {
        let until = self.now + Duration::from_millis(ms);
        while let Some(at) = self.session.poll_timeout(&self.cfg) {
            if at > until {
                break;
            }
            self.now = at.max(self.now);
            match self.session.handle_timeout(self.now, &self.cfg) {
                Some(Timeout::Login | Timeout::Idle | Timeout::NoPong) => {
                    self.closed = true;
                    return;
                }
                Some(Timeout::Keepalive) => self.written += self.session.keepalive().len(),
                // The websocket ping frame (no payload) the driver writes.
                Some(Timeout::Ping) => self.written += 2,
                // A deadline the session moved: the driver asks again.
                None => self.now += Duration::from_millis(1),
            }
        }
        self.now = until;
    }

    /// src/conn.rs's handling of each action.
    fn resolve(&mut self, action: Action) -> Option<String> {
        Some(match action {
            Action::None => return None,
            Action::Reply(r) | Action::Opened(r) => r,
            Action::ClearQueue(r) => {
                self.queue.clear();
                r
            }
            Action::Authenticate(c) => {
                let verdict = self
                    .db
                    .get(&c.user)
                    .filter(|u| u.verify_password(&c.password))
                    .cloned();
                self.session.finish_auth(verdict, [0x66; 16])
            }
            Action::Publish(mut ev) => {
                stamp_event(&mut ev, 7, 1_733_386_445_000_000, &Guid::ZERO);
                // Routed back to this session as if another client had sent it, so delivery
                // (filter, encoding, the queue commands) sees fuzzed events too.
                if self.session.wants_events() && self.session.filter().matches(&ev) {
                    if self.queue.len() == QUEUE_MAX {
                        self.queue.pop_front();
                        self.dropped += 1;
                    }
                    self.queue.push_back(ev);
                }
                self.session.event_reply(PublishOutcome::Accepted)
            }
            Action::Queue(req) => {
                let mut answer = QueueAnswer {
                    dropped: self.dropped,
                    ..Default::default()
                };
                if let QueueRequest::Take(n) = req {
                    while answer.taken < n {
                        let Some(ev) = self.queue.pop_front() else {
                            break;
                        };
                        Dialect::Tcp.encode_event(&ev, &mut answer.lines);
                        answer.lines.push_str("\r\n");
                        answer.taken += 1;
                        answer.taken_data_bytes += ev.data.len() as u64;
                    }
                }
                answer.queued = self.queue.len();
                self.session.finish_queue(req, answer)
            }
            Action::Challenge => self.session.finish_challenge([0xAB; 16]),
            Action::ListClients => format!("1,5,<clients>\r\n{}", vscp_proto::tcp::replies::SUCCESS),
            Action::Echo(echo, inner) => match self.resolve(*inner) {
                Some(r) => format!("{echo}\r\n{r}"),
                None => echo,
            },
        })
    }

    /// An open channel gets its queued events, as the driver's outbox writer does.
    fn deliver(&mut self) {
        if self.session.state() != vscp_proto::session::State::Open {
            return;
        }
        let dialect = self.session.dialect();
        let (mut events, mut bytes) = (0, 0);
        let mut out = String::new();
        while let Some(ev) = self.queue.pop_front() {
            dialect.encode_event(&ev, &mut out);
            events += 1;
            bytes += ev.data.len() as u64;
        }
        self.written += out.len();
        self.session.count_delivered(events, bytes);
    }
}

/// A session of `dialect` set up as the control byte `ctl` says: bits 0–2 pick the user it
/// logs in as (1 admin, 2 user, 3 vscp, 4 limited, others none), bit 4 turns on ws2's client-IV
/// leniency.
pub fn start(dialect: Dialect, ctl: u8) -> Driver {
    let mut d = Driver::new(dialect, ctl & 0x10 != 0);
    match ctl & 0x7 {
        1 => d.login("admin"),
        2 => d.login("user"),
        3 => d.login("vscp"),
        4 => d.login("limited"),
        _ => {}
    }
    d
}

/// Splits fuzz input into a session: the first byte is [`start`]'s control byte, the rest is
/// messages separated by `sep`, each arriving 1–4 s after the one before (the message's length
/// picks which), so the idle and login deadlines are reached.
pub fn run_session(dialect: Dialect, data: &[u8], sep: u8) -> Driver {
    let Some((&ctl, rest)) = data.split_first() else {
        return Driver::new(dialect, false);
    };
    let mut d = start(dialect, ctl);
    for msg in rest.split(|&b| b == sep) {
        d.message(msg, 1000 * (1 + msg.len() as u64 % 4));
    }
    d
}
