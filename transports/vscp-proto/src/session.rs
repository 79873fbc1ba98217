//! The per-connection state machine shared by ws1, ws2 (ws1.md §3–7, ws2.md §3–6) and the
//! tcp/ip link interface (tcp.md; its commands are in the `tcp_commands` submodule).
//!
//! A [`Session`] takes one client message at a time and returns one [`Action`]. Work that is
//! slow or needs the rest of the server (checking a password, routing an event, emptying the
//! outbound queue) is returned as an action; the caller does it and, for AUTH and events,
//! hands the outcome back (`finish_auth`, `event_reply`) to get the reply text. Nothing here
//! blocks, reads the clock or touches a socket.
//!
//! Time is an input, as in quinn-proto: every input carries `now`, [`Session::poll_timeout`]
//! says when the driver must call back, and [`Session::handle_timeout`] says which deadline
//! (login, idle, or no answer to a websocket ping) has passed, or that something is due that
//! keeps the session going (a websocket ping, the tcp/ip receive loop's keepalive line). Tests
//! move a fake clock instead of sleeping.

use crate::auth::{self, AuthError, Credentials};
use crate::event::{DateTime, Event};
use crate::filter::Filter;
use crate::guid::Guid;
use crate::rights;
use crate::tcp;
use crate::users::{SendDenied, User};
use crate::ws1::{self, errors, Line};
use crate::ws2::{self, Args, Message};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod tcp_commands;

/// Protocol version reported by VERSION (last field), as REF does.
pub const PROTOCOL_VERSION: &str = "1.0.0.0";

/// Which protocol a connection speaks (chosen by the URL path at upgrade).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// Text lines (`/ws1`).
    Ws1,
    /// JSON objects (`/ws2`).
    Ws2,
    /// The VSCP tcp/ip link interface: telnet-style command lines (tcp.md).
    Tcp,
}

impl Dialect {
    /// Every dialect, in [`Dialect::index`] order.
    pub const ALL: [Dialect; 3] = [Dialect::Ws1, Dialect::Ws2, Dialect::Tcp];

    /// Number of dialects.
    pub const COUNT: usize = Dialect::ALL.len();

    /// The dialect's position in [`Dialect::ALL`] (`ALL[d.index()] == d`). Per-dialect arrays
    /// (encode caches, counters, metric labels) are indexed by this, so a new dialect adds no
    /// field anywhere: only a variant, its entry in `ALL` and its arms here.
    pub const fn index(self) -> usize {
        match self {
            Dialect::Ws1 => 0,
            Dialect::Ws2 => 1,
            Dialect::Tcp => 2,
        }
    }

    /// Label for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Dialect::Ws1 => "ws1",
            Dialect::Ws2 => "ws2",
            Dialect::Tcp => "tcp",
        }
    }

    /// Appends the wire form of a delivered event in this dialect.
    pub fn encode_event(self, ev: &Event, out: &mut String) {
        match self {
            Dialect::Ws1 => ws1::encode_event(ev, out),
            Dialect::Ws2 => ws2::encode_event(ev, out),
            Dialect::Tcp => tcp::encode_event(ev, out),
        }
    }
}

// `ALL` and `index` must agree; checked when the crate is built.
const _: () = {
    let mut i = 0;
    while i < Dialect::COUNT {
        assert!(Dialect::ALL[i].index() == i);
        i += 1;
    }
};

/// Where a session is in its life (ws1.md §3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Connected, not logged in.
    Connected,
    /// Logged in, channel closed: events are queued.
    Authenticated,
    /// Logged in, channel open: events are delivered (tcp/ip: in the receive loop).
    Open,
}

/// Server-wide settings a session needs.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    /// AES-128 key for AUTH (first 16 bytes of the vscp key file).
    pub key: [u8; 16],
    /// ws2 only: accept an IV that differs from the SID (REF leniency; re-opens replay).
    pub ws2_accept_client_iv: bool,
    /// Our software version, reported by VERSION.
    pub software_version: String,
    /// COPYRIGHT text (no `;`).
    pub copyright: String,
    /// How long a client has from the start of its session to log in (`auth-timeout`); zero
    /// means no limit. Connections that never log in must not hold client slots for ever.
    pub auth_timeout: Duration,
    /// How long a session may go without any input (any websocket frame) before it is closed
    /// (`idle-timeout`); zero means no limit. Not applied to a tcp/ip session in its receive
    /// loop (tcp.md §1: a looping client only listens).
    pub idle_timeout: Duration,
    /// Websocket sessions only: after this long without any input the driver sends a ping
    /// (`ws-ping-interval`); zero means no pings. Finds a peer that vanished without a FIN
    /// sooner than TCP keepalive can while events are unacknowledged on its socket.
    pub ping_interval: Duration,
    /// How long after a ping, still without any input (a pong, or anything else), the session
    /// is closed as dead (`ws-pong-timeout`). Used only with `ping_interval`.
    pub pong_timeout: Duration,
    /// tcp/ip greeting: what runs the server, `l2drv` (under vscpd) or `standalone` (tcp.md §2.1).
    pub tcp_host: &'static str,
    /// A login also needs the user's right for the transport: `tcpip` (0x1) for the tcp/ip
    /// link interface, `ws` (0x2) for websockets (`check-interface-rights`; off by default, as
    /// REF never checked them: users.md §4, tcp.md §2.2).
    pub check_interface_rights: bool,
}

impl SessionConfig {
    /// Whether `user` may log in over `dialect` (always, unless `check_interface_rights`).
    pub fn may_use(&self, dialect: Dialect, user: &User) -> bool {
        let needed = match dialect {
            Dialect::Tcp => rights::TCPIP,
            Dialect::Ws1 | Dialect::Ws2 => rights::WS,
        };
        !self.check_interface_rights || user.rights & needed != 0
    }
}

/// Which deadline of a session has passed (see [`Session::handle_timeout`]). On `Login`, `Idle`
/// and `NoPong` the driver closes the connection (the variant decides the close code and the
/// counter); on `Keepalive` it writes [`Session::keepalive`], on `Ping` a websocket ping, and
/// goes on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timeout {
    /// Not logged in within `auth_timeout` of the session's start.
    Login,
    /// No input for `idle_timeout`.
    Idle,
    /// tcp/ip receive loop: time for a keepalive line ([`Session::keepalive`]); the session
    /// goes on.
    Keepalive,
    /// Websocket: nothing arrived for `ping_interval`; send a ping, the session goes on.
    Ping,
    /// Websocket: nothing arrived within `pong_timeout` of the ping (the peer is gone, or too
    /// stuck to answer).
    NoPong,
}

/// What the caller must do after a message.
#[derive(Debug)]
pub enum Action {
    /// Nothing to send.
    None,
    /// Send this text to the client.
    Reply(String),
    /// Look the user up, check the password and the peer address, then call
    /// [`Session::finish_auth`] and send its reply.
    Authenticate(Credentials),
    /// The client sent an event it is allowed to send (rights checked, priority capped). Stamp
    /// it, route it, then call [`Session::event_reply`] and send the reply.
    Publish(Event),
    /// Send the reply; the channel is now open, so deliver queued events after it.
    Opened(String),
    /// Empty the session's outbound queue, then send the reply.
    ClearQueue(String),
    /// tcp/ip: look at the session's outbound queue as asked, then send the reply
    /// [`Session::finish_queue`] builds.
    Queue(QueueRequest),
    /// tcp/ip `challenge`: send the reply [`Session::finish_challenge`] builds from 16 fresh
    /// random bytes.
    Challenge,
    /// tcp/ip `+`: send the echo line first, then handle the action of the repeated command.
    Echo(String, Box<Action>),
    /// tcp/ip `interface list` (also `interface`, `interface close`, `client list`): send one
    /// [`crate::tcp::client_line`] per live client connection of the server, then
    /// `+OK - Success.` (tcp.md §5.15).
    ListClients,
}

/// What a tcp/ip command wants to know about, or take from, the session's outbound queue (the
/// hub's outbox, which the driver owns).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueRequest {
    /// `chkdata`: how many events wait.
    Count,
    /// `retr n`: take up to this many (at least 1) and write each as a line.
    Take(usize),
    /// `stat`: the statistics line (needs the queue's drop count).
    Stat,
}

/// The driver's answer to an [`Action::Queue`].
#[derive(Clone, Debug, Default)]
pub struct QueueAnswer {
    /// Events waiting (after a `Take`: still waiting).
    pub queued: usize,
    /// `Take`: the event lines taken, each followed by CRLF, in order.
    pub lines: String,
    /// `Take`: how many events `lines` holds, and their data bytes.
    pub taken: usize,
    pub taken_data_bytes: u64,
    /// Events dropped from this session's queue because it was full.
    pub dropped: u64,
}

/// What happened to an event handed over with [`Action::Publish`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PublishOutcome {
    /// Accepted for routing (possibly dropped later by a filter, which the sender is not told).
    Accepted,
    /// A bounded queue on the way was full.
    BufferFull,
    /// The uplink's far side (the MQTT broker, with `ack-from-broker`) did not confirm it in
    /// time, or it was dropped on the way there.
    NotConfirmed,
}

/// Why the last event a client sent was refused (for the server's drop counters).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventRejection {
    /// Not logged in, or the user may not send it (send right, class rights, allow-list).
    Rights,
    /// The event could not be parsed.
    Malformed,
}

/// One client connection's protocol state.
#[derive(Debug)]
pub struct Session {
    dialect: Dialect,
    state: State,
    /// The current challenge. Its hex form is built when sent (greeting, CHALLENGE) rather
    /// than kept: a session lives for days and is sent its SID once or twice, and servers hold
    /// tens of thousands of idle sessions.
    sid: [u8; 16],
    user: Option<Arc<User>>,
    filter: Filter,
    rejection: Option<EventRejection>,
    /// When the session started: the login deadline counts from here.
    started: Instant,
    /// When the last input arrived: the idle deadline counts from here.
    last_activity: Instant,
    /// When the last input of any kind arrived, a pong included (which does not count as
    /// activity for the idle deadline: a client that only answers pings is still idle). The
    /// ping and pong deadlines count from here.
    last_heard: Instant,
    /// A ping went out at `last_heard + ping_interval` and nothing has arrived since.
    pinged: bool,
    /// tcp/ip only (boxed: websocket sessions, most of a server's, do not carry it).
    tcp: Option<Box<tcp_commands::TcpState>>,
}

impl Session {
    /// A new session with the challenge `sid` (16 random bytes from a CSPRNG), starting at
    /// `now`: the login and idle deadlines count from here.
    pub fn new(dialect: Dialect, sid: [u8; 16], now: Instant) -> Session {
        Session {
            dialect,
            state: State::Connected,
            sid,
            user: None,
            filter: Filter::ALL_PASS,
            rejection: None,
            started: now,
            last_activity: now,
            last_heard: now,
            pinged: false,
            tcp: (dialect == Dialect::Tcp).then(|| Box::new(tcp_commands::TcpState::new(now))),
        }
    }

    /// Tells the session its channel id (the server-wide connection id, which the driver also
    /// puts in every event's `obid`) and the server GUID. tcp/ip derives its interface GUID
    /// from them (tcp.md §2.3); websocket sessions do not need them.
    pub fn set_channel(&mut self, chid: u32, server_guid: Guid) {
        if let Some(t) = self.tcp.as_mut() {
            t.chid = chid;
            t.guid = tcp::interface_guid(&server_guid, chid);
        }
    }

    /// True once the session has ended its connection (tcp/ip `quit`, a failed login): the
    /// driver sends the reply it has, then closes without more.
    pub fn is_ended(&self) -> bool {
        self.tcp.as_ref().is_some_and(|t| t.ended)
    }

    /// The tcp/ip receive loop's keepalive line (after [`Timeout::Keepalive`]).
    pub fn keepalive(&self) -> String {
        tcp::replies::KEEPALIVE.to_string()
    }

    /// Input that carries no message arrived at `now` (a websocket ping, pong or binary frame):
    /// it moves the idle deadline like a message does.
    pub fn handle_activity(&mut self, now: Instant) {
        self.last_activity = now;
        self.heard(now);
    }

    /// A websocket pong arrived at `now`: the peer is alive. It does not move the idle
    /// deadline (a browser answers pings by itself, so pongs say nothing about the client
    /// using its session).
    pub fn handle_pong(&mut self, now: Instant) {
        self.heard(now);
    }

    fn heard(&mut self, now: Instant) {
        self.last_heard = now;
        self.pinged = false;
    }

    /// When the driver must call [`Session::handle_timeout`] if no input comes first: the
    /// earlier of the login deadline and the idle deadline, `None` when neither applies (a
    /// logged-in session without an idle timeout needs no timer at all).
    ///
    /// The login deadline is `start + auth_timeout` while the session is not logged in
    /// ([`State::Connected`]). It always counts from the start, so a session that logged in
    /// and later drops back to `Connected` (a failed re-AUTH) after that moment is closed at
    /// the next check: a failed re-AUTH gives no new grace period.
    pub fn poll_timeout(&self, cfg: &SessionConfig) -> Option<Instant> {
        [
            self.login_deadline(cfg),
            self.idle_deadline(cfg),
            self.keepalive_deadline(),
            self.ping_deadline(cfg),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// [`Session::poll_timeout`] without the tcp/ip receive loop's keepalive: the deadlines
    /// the driver still watches while the peer does not take its output, those that end the
    /// session and the websocket ping (one, then the pong deadline). Keepalive lines would only
    /// pile up behind the output the peer does not read.
    pub fn poll_timeout_blocked(&self, cfg: &SessionConfig) -> Option<Instant> {
        [
            self.login_deadline(cfg),
            self.idle_deadline(cfg),
            self.ping_deadline(cfg),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The clock reached `now` (the driver's timer for [`Session::poll_timeout`] fired): which
    /// deadline has passed, the login one first when both have, or `None` when none is due yet
    /// (input moved the idle deadline, or a login cancelled the login deadline, since the timer
    /// was set). The session is over once this returns `Some`: the driver closes the
    /// connection.
    pub fn handle_timeout(&mut self, now: Instant, cfg: &SessionConfig) -> Option<Timeout> {
        if self.login_deadline(cfg).is_some_and(|at| now >= at) {
            Some(Timeout::Login)
        } else if self.idle_deadline(cfg).is_some_and(|at| now >= at) {
            Some(Timeout::Idle)
        } else if self.pong_deadline(cfg).is_some_and(|at| now >= at) {
            Some(Timeout::NoPong)
        } else if self.keepalive_deadline().is_some_and(|at| now >= at) {
            if let Some(t) = self.tcp.as_mut() {
                t.last_keepalive = now;
            }
            Some(Timeout::Keepalive)
        } else if self.ping_deadline(cfg).is_some_and(|at| now >= at) {
            self.pinged = true;
            Some(Timeout::Ping)
        } else {
            None
        }
    }

    /// In the tcp/ip receive loop: 2 s after the loop started or the last keepalive.
    fn keepalive_deadline(&self) -> Option<Instant> {
        let t = self.tcp.as_ref()?;
        (self.state == State::Open).then(|| t.last_keepalive + tcp_commands::KEEPALIVE_INTERVAL)
    }

    /// Websocket sessions with pings on: when the next ping is due, or (one is out) when the
    /// session is dead without an answer.
    fn ping_deadline(&self, cfg: &SessionConfig) -> Option<Instant> {
        if self.tcp.is_some() || cfg.ping_interval.is_zero() {
            return None;
        }
        let ping_at = self.last_heard + cfg.ping_interval;
        Some(match self.pinged {
            // Counted from when the ping was due rather than from the send: a timer that fired
            // late shortens the wait for the answer by as much, never lengthens it.
            true => ping_at + cfg.pong_timeout,
            false => ping_at,
        })
    }

    fn pong_deadline(&self, cfg: &SessionConfig) -> Option<Instant> {
        self.ping_deadline(cfg).filter(|_| self.pinged)
    }

    fn login_deadline(&self, cfg: &SessionConfig) -> Option<Instant> {
        (self.state == State::Connected && !cfg.auth_timeout.is_zero())
            .then(|| self.started + cfg.auth_timeout)
    }

    fn idle_deadline(&self, cfg: &SessionConfig) -> Option<Instant> {
        if self.tcp.is_some() && self.state == State::Open {
            // tcp.md §1: a client in the receive loop only listens; its keepalives keep it.
            return None;
        }
        (!cfg.idle_timeout.is_zero()).then(|| self.last_activity + cfg.idle_timeout)
    }

    /// Why the last event was refused, if it was; cleared by the call.
    pub fn take_rejection(&mut self) -> Option<EventRejection> {
        self.rejection.take()
    }

    /// The dialect this session speaks.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The logged-in user, if any.
    pub fn user(&self) -> Option<&Arc<User>> {
        self.user.as_ref()
    }

    /// The session's receive filter.
    pub fn filter(&self) -> &Filter {
        &self.filter
    }

    /// True when events should be queued for this session (logged in and allowed to receive).
    pub fn wants_events(&self) -> bool {
        self.state != State::Connected && self.user.as_ref().is_some_and(|u| u.can_receive())
    }

    fn sid_hex(&self) -> String {
        auth::hex_upper(&self.sid)
    }

    /// The first message: the challenge (websockets, right after the upgrade) or the welcome
    /// text (tcp/ip, right after the accept).
    pub fn greeting(&self, cfg: &SessionConfig) -> String {
        match self.dialect {
            Dialect::Ws1 => ws1::auth0(&self.sid_hex()),
            Dialect::Ws2 => ws2::auth0(&self.sid_hex()),
            Dialect::Tcp => tcp::greeting(cfg.tcp_host, &cfg.software_version, &cfg.copyright),
        }
    }

    /// Handles one text message that arrived at `now` (which moves the idle deadline). `msg`
    /// is the message bytes (valid UTF-8, as the websocket layer guarantees for text frames);
    /// ws2 parses it in place, so its content is undefined afterwards.
    pub fn handle_message(&mut self, msg: &mut [u8], cfg: &SessionConfig, now: Instant) -> Action {
        self.handle_activity(now);
        match self.dialect {
            Dialect::Ws1 => match std::str::from_utf8(msg) {
                Ok(text) => self.handle_ws1(text, cfg),
                // Text frames are UTF-8 by RFC 6455; bytes that are not cannot be a command.
                Err(_) => Action::None,
            },
            Dialect::Ws2 => self.handle_ws2(msg, cfg),
            Dialect::Tcp => self.handle_tcp(msg, cfg, now),
        }
    }

    fn handle_ws1(&mut self, text: &str, cfg: &SessionConfig) -> Action {
        let (name, args) = match ws1::parse_line(text) {
            Line::Ignored => return Action::None,
            Line::EmptyCommand => return Action::Reply(ws1::empty_command()),
            Line::Event(body) => return self.ws1_event(body),
            Line::Command { name, args } => (name, args),
        };
        let reply = |fields: &[&str]| Action::Reply(ws1::positive(&name, fields));
        let fail = |code| Action::Reply(ws1::negative(&name, code));
        match name.as_str() {
            "NOOP" => reply(&[]),
            "CHALLENGE" => Action::Reply(ws1::auth0(&self.sid_hex())),
            "AUTH" => {
                // ws1.md §4.3 steps 1–5: shape errors are syntax errors and do not rotate the SID.
                let (Some(iv), Some(crypto)) = (args.first(), args.get(1)) else {
                    return fail(errors::SYNTAX);
                };
                let iv = iv.trim();
                if auth::hex_decode_16(iv) != Some(self.sid) {
                    return fail(errors::SYNTAX);
                }
                match auth::decrypt_credentials(&cfg.key, &self.sid, crypto.trim()) {
                    Ok(c) => Action::Authenticate(c),
                    Err(AuthError::Syntax) => fail(errors::SYNTAX),
                    Err(AuthError::NotAuthorised) => Action::Authenticate(Credentials {
                        user: String::new(),
                        password: String::new(),
                    }),
                }
            }
            "OPEN" => {
                if self.state == State::Connected {
                    return fail(errors::NOT_AUTHORISED);
                }
                self.state = State::Open;
                Action::Opened(ws1::positive("OPEN", &[]))
            }
            "CLOSE" => {
                if self.state == State::Open {
                    self.state = State::Authenticated;
                }
                reply(&[])
            }
            "SETFILTER" | "SF" => {
                let fail = |code| Action::Reply(ws1::negative("SF", code));
                let Some(user) = self.logged_in() else {
                    return fail(errors::NOT_AUTHORISED);
                };
                if !user.can_set_filter() {
                    return fail(errors::NOT_ALLOWED);
                }
                let (Some(f), Some(m)) = (args.first(), args.get(1)) else {
                    return fail(errors::SYNTAX);
                };
                match Filter::from_strings(f, m) {
                    Ok(filter) => {
                        self.filter = filter;
                        Action::Reply(ws1::positive("SF", &[]))
                    }
                    Err(_) => fail(errors::SYNTAX),
                }
            }
            "CLRQUEUE" | "CLRQ" => {
                if self.state == State::Connected {
                    return Action::Reply(ws1::negative("CLRQ", errors::NOT_AUTHORISED));
                }
                Action::ClearQueue(ws1::positive("CLRQ", &[]))
            }
            "VERSION" => reply(&[&cfg.software_version, PROTOCOL_VERSION]),
            "COPYRIGHT" => reply(&[&cfg.copyright]),
            _ => fail(errors::UNKNOWN_COMMAND),
        }
    }

    fn ws1_event(&mut self, body: &str) -> Action {
        let Some(user) = self.logged_in() else {
            return self.refuse(
                EventRejection::Rights,
                ws1::negative_event(errors::NOT_AUTHORISED),
            );
        };
        if user.rights & crate::rights::SEND_EVENTS == 0 {
            return self.refuse(
                EventRejection::Rights,
                ws1::negative_event(errors::NOT_ALLOWED),
            );
        }
        let mut ev = match crate::codec::string::parse_event(body) {
            Ok(ev) => ev,
            Err(_) => {
                return self.refuse(
                    EventRejection::Malformed,
                    ws1::negative_event(errors::PARSE),
                )
            }
        };
        match user.check_send(ev.class, ev.vscp_type) {
            Ok(()) => {}
            Err(SendDenied::NoSendRight) => {
                return self.refuse(
                    EventRejection::Rights,
                    ws1::negative_event(errors::NOT_ALLOWED),
                )
            }
            Err(_) => {
                return self.refuse(
                    EventRejection::Rights,
                    ws1::negative_event(errors::NOT_ALLOWED_TO_SEND),
                )
            }
        }
        ev.head = user.cap_priority(ev.head);
        Action::Publish(ev)
    }

    fn refuse(&mut self, why: EventRejection, reply: String) -> Action {
        self.rejection = Some(why);
        Action::Reply(reply)
    }

    fn handle_ws2(&mut self, msg: &mut [u8], cfg: &SessionConfig) -> Action {
        let (name, args) = match ws2::parse_message(msg) {
            Message::Ignored => return Action::None,
            Message::BadType => return Action::Reply(ws2::bad_type()),
            Message::NoCommandName => return Action::Reply(ws2::negative("", errors::PARSE)),
            Message::BadArgs { name } => return Action::Reply(ws2::negative(&name, errors::PARSE)),
            Message::Event(ev) => return self.ws2_event(ev),
            Message::Command { name, args } => (name, args),
        };
        let ok = |args: &str| Action::Reply(ws2::positive(&name, args));
        let fail = |code| Action::Reply(ws2::negative(&name, code));
        match name.as_str() {
            "NOOP" => ok("null"),
            "CHALLENGE" => ok(&ws2::challenge_args(&self.sid_hex())),
            "AUTH" => {
                let Args::Auth { iv, crypto } = args else {
                    return fail(errors::PARSE);
                };
                let iv_bytes = if cfg.ws2_accept_client_iv {
                    match auth::hex_decode_16(iv.trim()) {
                        Some(iv) => iv,
                        None if iv.trim().is_empty() => return self.ws2_auth_rejected(&name),
                        None => return fail(errors::PARSE),
                    }
                } else {
                    // ws2.md §3 REC: the IV must be this session's SID (replay protection).
                    if iv.trim().is_empty() || auth::hex_decode_16(iv.trim()) != Some(self.sid) {
                        return self.ws2_auth_rejected(&name);
                    }
                    self.sid
                };
                if crypto.trim().is_empty() {
                    return self.ws2_auth_rejected(&name);
                }
                match auth::decrypt_credentials(&cfg.key, &iv_bytes, crypto.trim()) {
                    Ok(c) => Action::Authenticate(c),
                    Err(AuthError::Syntax) => fail(errors::PARSE),
                    Err(AuthError::NotAuthorised) => self.ws2_auth_rejected(&name),
                }
            }
            "OPEN" => {
                if self.state == State::Connected {
                    return fail(errors::NOT_AUTHORISED);
                }
                self.state = State::Open;
                Action::Opened(ws2::positive(&name, "null"))
            }
            "CLOSE" => {
                if self.state == State::Open {
                    self.state = State::Authenticated;
                }
                ok("null")
            }
            "SETFILTER" | "SF" => {
                let Some(user) = self.logged_in() else {
                    return fail(errors::NOT_AUTHORISED);
                };
                if !user.can_set_filter() {
                    return fail(errors::NOT_ALLOWED);
                }
                match args {
                    Args::Filter(Ok(filter)) => {
                        self.filter = filter;
                        ok("null")
                    }
                    _ => fail(errors::SYNTAX),
                }
            }
            "CLRQUEUE" | "CLRQ" => {
                if self.state == State::Connected {
                    return fail(errors::NOT_AUTHORISED);
                }
                Action::ClearQueue(ws2::positive(&name, "null"))
            }
            "VERSION" | "VER" => ok(&ws2::version_args(&format!("{}-0", cfg.software_version))),
            "COPYRIGHT" => ok(&ws2::copyright_args(&cfg.copyright)),
            _ => fail(errors::UNKNOWN_COMMAND),
        }
    }

    /// A ws2 AUTH that fails before any user lookup: same effect as a wrong password.
    fn ws2_auth_rejected(&mut self, _name: &str) -> Action {
        Action::Authenticate(Credentials {
            user: String::new(),
            password: String::new(),
        })
    }

    fn ws2_event(&mut self, ev: Option<Result<Event, crate::ParseError>>) -> Action {
        let Some(user) = self.logged_in() else {
            return self.refuse(
                EventRejection::Rights,
                ws2::negative("EVENT", errors::NOT_AUTHORISED),
            );
        };
        let mut ev = match ev {
            Some(Ok(ev)) => ev,
            _ => {
                return self.refuse(
                    EventRejection::Malformed,
                    ws2::negative("EVENT", errors::PARSE),
                )
            }
        };
        // ws2 reports every send refusal as 7 where ws1 uses 6 (ws2.md Q7).
        if user.check_send(ev.class, ev.vscp_type).is_err() {
            return self.refuse(
                EventRejection::Rights,
                ws2::negative("EVENT", errors::NOT_ALLOWED),
            );
        }
        ev.head = user.cap_priority(ev.head);
        Action::Publish(ev)
    }

    fn logged_in(&self) -> Option<Arc<User>> {
        if self.state == State::Connected {
            return None;
        }
        self.user.clone()
    }

    /// Completes an AUTH with the caller's verdict (`Some(user)` when the password and the peer
    /// address were accepted). `new_sid` replaces the challenge after a failure, so a client
    /// must ask CHALLENGE before retrying, as REF does.
    /// The reply to a login with the right password by a user without the right for this
    /// transport ([`SessionConfig::may_use`]): over tcp/ip the spec's line, and the connection
    /// ends like after a failed login; over websockets the failed-AUTH reply.
    pub fn refuse_interface(&mut self, new_sid: [u8; 16]) -> String {
        if self.dialect == Dialect::Tcp {
            // The same end as a failed login, with the spec's own line.
            let _ = self.finish_tcp_login(None);
            return tcp::replies::NO_INTERFACE_RIGHT.to_owned();
        }
        self.finish_auth(None, new_sid)
    }

    pub fn finish_auth(&mut self, verdict: Option<Arc<User>>, new_sid: [u8; 16]) -> String {
        if self.dialect == Dialect::Tcp {
            return self.finish_tcp_login(verdict);
        }
        match verdict {
            Some(user) => {
                self.filter = user.filter;
                let reply = match self.dialect {
                    Dialect::Ws1 => {
                        let mut s = String::from("+;AUTH1;");
                        user.write_auth1_fields(&mut s);
                        s
                    }
                    Dialect::Ws2 => ws2::positive("AUTH", "null"),
                    Dialect::Tcp => unreachable!("tcp/ip logins finish above"),
                };
                self.user = Some(user);
                if self.state == State::Connected {
                    self.state = State::Authenticated;
                }
                reply
            }
            None => {
                // ws1.md Q18: a failed re-AUTH also closes the channel and forgets the user.
                self.state = State::Connected;
                self.user = None;
                self.filter = Filter::ALL_PASS;
                self.sid = new_sid;
                match self.dialect {
                    Dialect::Ws1 => ws1::negative("AUTH", errors::NOT_AUTHORISED),
                    Dialect::Ws2 => ws2::negative("AUTH", errors::NOT_AUTHORISED),
                    Dialect::Tcp => unreachable!("tcp/ip logins finish above"),
                }
            }
        }
    }

    /// The reply to an event after the caller routed it.
    pub fn event_reply(&self, outcome: PublishOutcome) -> String {
        match (self.dialect, outcome) {
            (Dialect::Tcp, PublishOutcome::Accepted) => tcp::replies::SUCCESS.into(),
            (Dialect::Tcp, PublishOutcome::BufferFull) => tcp::replies::BUFFER_FULL.into(),
            (Dialect::Tcp, PublishOutcome::NotConfirmed) => tcp::replies::NOT_CONFIRMED.into(),
            (Dialect::Ws1, PublishOutcome::Accepted) => ws1::positive("EVENT", &[]),
            (Dialect::Ws1, PublishOutcome::BufferFull) => {
                ws1::negative_event(errors::TX_BUFFER_FULL)
            }
            (Dialect::Ws2, PublishOutcome::Accepted) => ws2::positive("EVENT", "null"),
            (Dialect::Ws2, PublishOutcome::BufferFull) => {
                ws2::negative("EVENT", errors::TX_BUFFER_FULL)
            }
            (Dialect::Ws1, PublishOutcome::NotConfirmed) => {
                ws1::negative_event(errors::NOT_CONFIRMED)
            }
            (Dialect::Ws2, PublishOutcome::NotConfirmed) => {
                ws2::negative("EVENT", errors::NOT_CONFIRMED)
            }
        }
    }
}

/// Fills in what the first server that sees a client event must set (ws1.md §6 step 4 and 6):
/// the connection id as `obid`, the current time when the date is unset, a microsecond
/// timestamp when it is 0, and the interface GUID when the GUID is all zero.
pub fn stamp_event(ev: &mut Event, conn_id: u32, now_unix_us: u64, interface_guid: &Guid) {
    ev.obid = conn_id;
    if ev.datetime == DateTime::default() {
        ev.datetime = DateTime::from_unix_secs(now_unix_us / 1_000_000);
    }
    if ev.timestamp == 0 {
        // The field is a wrapping 32-bit microsecond counter; only differences are meaningful.
        ev.timestamp = (now_unix_us as u32).max(1);
    }
    if ev.guid.is_zero() {
        ev.guid = *interface_guid;
    }
}
