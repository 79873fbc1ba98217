//! The tcp/ip link interface's commands (tcp.md §2–5) as a part of [`Session`]: login with
//! `user`/`pass`, `send`, the queue commands (answered by the driver, which owns the queue:
//! [`Action::Queue`]), the receive loop, filters, the interface GUID and the command history.
//!
//! Every command answers with exactly one terminal line (`+OK…`/`-OK…`), after zero or more
//! data lines, and every error leaves the connection usable, except the two that end it by the
//! spec: `quit` and a failed `pass` (tcp.md §2.2).

use super::{Action, EventRejection, QueueAnswer, QueueRequest, Session, State};
use crate::auth::Credentials;
use crate::codec;
use crate::filter::Filter;
use crate::guid::Guid;
use crate::rights;
use crate::tcp::{self, replies, CRLF};
use crate::users::User;
use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the receive loop writes its `+OK` keepalive line (REF: "more than 2 s").
pub(super) const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(2);

/// What a tcp/ip session keeps beyond the shared [`Session`] fields.
#[derive(Debug)]
pub(super) struct TcpState {
    /// Channel id: the connection id, also every sent event's `obid` (tcp.md §2.3).
    pub(super) chid: u32,
    /// The interface GUID: put into sent events whose GUID is `-`, empty or zero.
    pub(super) guid: Guid,
    /// The name from `user`, until `pass` uses it.
    pending_user: Option<String>,
    /// Executed lines, newest last; `pass` lines are never kept (tcp.md Q18).
    history: VecDeque<String>,
    history_bytes: usize,
    /// When the receive loop started or last wrote a keepalive.
    pub(super) last_keepalive: Instant,
    /// `quit` or a failed login: the driver closes after the reply.
    pub(super) ended: bool,
    /// For `stat`: events (and their data bytes) given to and sent by this client.
    delivered: (u64, u64),
    sent: (u64, u64),
}

impl TcpState {
    pub(super) fn new(now: Instant) -> TcpState {
        TcpState {
            chid: 0,
            guid: Guid::ZERO,
            pending_user: None,
            history: VecDeque::new(),
            history_bytes: 0,
            last_keepalive: now,
            ended: false,
            delivered: (0, 0),
            sent: (0, 0),
        }
    }

    fn remember(&mut self, line: &str) {
        self.history_bytes += line.len();
        self.history.push_back(line.to_owned());
        while self.history.len() > tcp::HISTORY_ENTRIES
            || (self.history_bytes > tcp::HISTORY_BYTES && self.history.len() > 1)
        {
            if let Some(old) = self.history.pop_front() {
                self.history_bytes -= old.len();
            }
        }
    }
}

fn reply(text: &str) -> Action {
    Action::Reply(text.to_owned())
}

/// A data line and the success line.
fn data(line: impl std::fmt::Display) -> Action {
    Action::Reply(format!("{line}{CRLF}{}", replies::SUCCESS))
}

impl Session {
    fn tcp(&mut self) -> &mut TcpState {
        self.tcp
            .as_deref_mut()
            .expect("tcp/ip handlers run only on tcp/ip sessions, which always have the state")
    }

    /// One command line (the transport has removed its line end and telnet bytes). Lines are
    /// bytes: a line that is not UTF-8 can only be an unknown command or a bad argument.
    pub(super) fn handle_tcp(
        &mut self,
        msg: &[u8],
        cfg: &super::SessionConfig,
        now: Instant,
    ) -> Action {
        let text = String::from_utf8_lossy(msg);
        let utf8 = matches!(text, Cow::Borrowed(_));
        let line = tcp::trim(&text);
        if line.is_empty() {
            // tcp.md §1: an empty line (Enter pressed) gets no reply.
            return Action::None;
        }
        if let Some(rest) = line.strip_prefix('+') {
            return self.tcp_history(rest, cfg, now);
        }
        let action = self.tcp_command(line, utf8, cfg, now);
        if tcp::split_command(line).0 != "pass" {
            self.tcp().remember(line);
        }
        action
    }

    /// `+`, `+n` and `++` (tcp.md §5.6): these lines are not kept; a repeated one is.
    fn tcp_history(&mut self, rest: &str, cfg: &super::SessionConfig, now: Instant) -> Action {
        let rest = tcp::trim(rest);
        let history = &self.tcp().history;
        if rest == "+" {
            let mut s = String::new();
            for (i, line) in history.iter().rev().enumerate() {
                s.push_str(&format!("{i} - {line}{CRLF}"));
            }
            s.push_str(replies::SUCCESS);
            return Action::Reply(s);
        }
        let n = if rest.is_empty() {
            0
        } else if rest.bytes().all(|b| b.is_ascii_digit()) {
            rest.parse::<usize>().unwrap_or(usize::MAX)
        } else {
            return reply(replies::BAD_PARAMETER);
        };
        // `n` is the client's number, up to usize::MAX: `n + 1` must not wrap (it did, to 0,
        // and `+18446744073709551615` indexed one past the history: a panic, found by fuzzing).
        let index = n.checked_add(1).and_then(|k| history.len().checked_sub(k));
        let Some(line) = index.map(|i| history[i].clone()) else {
            return reply(replies::BAD_PARAMETER);
        };
        let action = self.tcp_command(&line, true, cfg, now);
        self.tcp().remember(&line);
        Action::Echo(line, Box::new(action))
    }

    fn tcp_command(
        &mut self,
        line: &str,
        utf8: bool,
        cfg: &super::SessionConfig,
        now: Instant,
    ) -> Action {
        let (word, arg) = tcp::split_command(line);
        let name = tcp::canonical(&word).unwrap_or(&word);
        match name {
            "noop" => reply(replies::SUCCESS),
            "help" => Action::Reply(tcp::help(arg)),
            "quit" => {
                self.tcp().ended = true;
                reply(replies::GOODBYE)
            }
            "user" => {
                if self.state != State::Connected {
                    return reply(replies::SUCCESS);
                }
                if arg.is_empty() {
                    return reply(replies::BAD_PARAMETER);
                }
                // A name that is not UTF-8 cannot be in users.json: kept as "no user", so the
                // login fails like any unknown name (never reveal which names exist).
                self.tcp().pending_user = Some(if utf8 { arg.to_owned() } else { String::new() });
                reply(replies::USER_OK)
            }
            "pass" => {
                if self.state != State::Connected {
                    return reply(replies::SUCCESS);
                }
                let Some(user) = self.tcp().pending_user.clone() else {
                    return reply(replies::NEED_USER);
                };
                if arg.is_empty() {
                    self.tcp().ended = true;
                    return reply(replies::BAD_PARAMETER);
                }
                // The driver checks it the way it checks a websocket AUTH (cache, PBKDF2 off the
                // executor, remotes); an empty user name always fails there.
                Action::Authenticate(Credentials {
                    user: if utf8 { user } else { String::new() },
                    password: arg.to_owned(),
                })
            }
            "challenge" => Action::Challenge,
            "quitloop" => {
                if self.state == State::Open {
                    self.state = State::Authenticated;
                }
                reply(replies::LOOP_LEFT)
            }
            "version" => data(tcp::version_line(&cfg.software_version)),
            "wcyd" => data(tcp::wcyd_line(tcp::CAPABILITIES)),
            "binary" => reply(replies::NO_BINARY),
            "send" | "retr" | "rcvloop" | "chkdata" | "clrall" | "stat" | "info" | "chid"
            | "getguid" | "setguid" | "setfilter" | "setmask" | "interface" | "test"
            | "shutdown" | "restart" | "measurement" => {
                let Some(user) = self.logged_in() else {
                    if name == "send" {
                        self.rejection = Some(EventRejection::Rights);
                    }
                    return reply(replies::NEED_LOGIN);
                };
                self.tcp_logged_in(name, arg, &user, now)
            }
            _ => reply(replies::UNKNOWN_COMMAND),
        }
    }

    /// The commands that need a login; the right each needs is checked first (REF
    /// `checkPrivilege` order: login, right, then the argument).
    fn tcp_logged_in(&mut self, name: &str, arg: &str, user: &Arc<User>, now: Instant) -> Action {
        let right = match name {
            "send" | "measurement" => rights::SEND_EVENTS,
            "retr" | "rcvloop" => rights::RECEIVE_EVENTS,
            "setguid" => rights::SET_GUID,
            "setfilter" | "setmask" => rights::SET_FILTER,
            "interface" => rights::INTERFACE,
            "test" => rights::TEST,
            "shutdown" => rights::SHUTDOWN,
            "restart" => rights::RESTART,
            _ => 0,
        };
        if user.rights & right != right {
            if name == "send" {
                self.rejection = Some(EventRejection::Rights);
            }
            return reply(replies::NO_RIGHTS);
        }
        match name {
            "send" => self.tcp_send(arg, user),
            "retr" => match tcp::parse_count(arg) {
                Some(n) => Action::Queue(QueueRequest::Take(n)),
                None => reply(replies::BAD_PARAMETER),
            },
            "rcvloop" => {
                if self.state != State::Open {
                    self.state = State::Open;
                    self.tcp().last_keepalive = now;
                }
                Action::Opened(replies::LOOP_ENTERED.to_owned())
            }
            "chkdata" => Action::Queue(QueueRequest::Count),
            "clrall" => Action::ClearQueue(replies::CLEARED.to_owned()),
            "stat" => Action::Queue(QueueRequest::Stat),
            // channel-status,lasterrorcode,lasterrorsubcode,"lasterrorstr": nothing to report.
            "info" => data("0,0,0,\"\""),
            "chid" => data(self.tcp().chid),
            "getguid" => data(self.tcp().guid),
            "setguid" => match tcp::parse_full_guid(arg) {
                Some(g) => {
                    self.tcp().guid = g;
                    reply(replies::SUCCESS)
                }
                None => reply(replies::BAD_PARAMETER),
            },
            "setfilter" | "setmask" => self.tcp_filter_half(name == "setmask", arg),
            // `list` and `close` are deprecated arguments to be ignored (SPEC); `unique` and
            // `normal` change nothing here (tcp.md §5.15).
            "interface" => match tcp::split_command(arg).0.as_str() {
                "" | "list" | "close" => Action::ListClients,
                _ => reply(replies::NOT_SUPPORTED),
            },
            "test" => reply(replies::SUCCESS),
            // tcp.md Q21 and Q6: rights checked above, then refused.
            _ => reply(replies::NOT_SUPPORTED),
        }
    }

    /// `send` (tcp.md §5.1), after the login and the `send-events` right.
    fn tcp_send(&mut self, arg: &str, user: &Arc<User>) -> Action {
        // More than 16 GUID bytes is an error here, not silently cut (tcp.md §5.1).
        if arg
            .split(',')
            .nth(6)
            .is_some_and(|g| !tcp::guid_field_ok(g))
        {
            return self.refuse(EventRejection::Malformed, replies::BAD_PARAMETER.into());
        }
        let mut ev = match codec::string::parse_event(arg) {
            Ok(ev) => ev,
            Err(_) => return self.refuse(EventRejection::Malformed, replies::BAD_PARAMETER.into()),
        };
        if user.check_send(ev.class, ev.vscp_type).is_err() {
            return self.refuse(EventRejection::Rights, replies::NOT_ALLOWED_TO_SEND.into());
        }
        let t = self.tcp();
        if ev.guid.is_zero() {
            ev.guid = t.guid;
        }
        t.sent.0 += 1;
        t.sent.1 += ev.data.len() as u64;
        ev.head = user.cap_priority(ev.head);
        Action::Publish(ev)
    }

    /// `setfilter`/`setmask` (tcp.md §5.7): `priority,class,type,GUID[,filter number]`, parsed
    /// completely before that half is replaced (Q11).
    fn tcp_filter_half(&mut self, mask: bool, arg: &str) -> Action {
        let fields: Vec<&str> = arg.split(',').collect();
        let shape_ok = matches!(fields.len(), 4 | 5)
            && tcp::guid_field_ok(fields[3])
            && fields
                .get(4)
                .is_none_or(|n| crate::number::read_u64("filter", n).is_ok());
        let Some((priority, class, vscp_type, guid)) = shape_ok
            .then(|| Filter::parse_filter_half(arg).ok())
            .flatten()
        else {
            return reply(replies::BAD_PARAMETER);
        };
        // Only the 3-bit priority takes part, so a mask of 0xff works as 7.
        let priority = priority & 7;
        let f = &mut self.filter;
        if mask {
            (f.mask_priority, f.mask_class, f.mask_type, f.mask_guid) =
                (priority, class, vscp_type, guid);
        } else {
            (
                f.filter_priority,
                f.filter_class,
                f.filter_type,
                f.filter_guid,
            ) = (priority, class, vscp_type, guid);
        }
        reply(replies::SUCCESS)
    }

    /// Completes a `pass` with the driver's verdict: `+OK - Success.`, or the one failure line
    /// for every reason (tcp.md Q23), after which the connection ends.
    pub(super) fn finish_tcp_login(&mut self, verdict: Option<Arc<User>>) -> String {
        self.tcp().pending_user = None;
        match verdict {
            Some(user) => {
                self.filter = user.filter;
                self.user = Some(user);
                self.state = State::Authenticated;
                replies::SUCCESS.to_owned()
            }
            None => {
                self.tcp().ended = true;
                replies::BAD_LOGIN.to_owned()
            }
        }
    }

    /// The reply to an [`Action::Queue`], from what the driver found or took.
    pub fn finish_queue(&mut self, req: QueueRequest, answer: QueueAnswer) -> String {
        let t = self.tcp();
        match req {
            QueueRequest::Count => format!("{}{CRLF}{}", answer.queued, replies::SUCCESS),
            QueueRequest::Take(n) => {
                t.delivered.0 += answer.taken as u64;
                t.delivered.1 += answer.taken_data_bytes;
                let mut s = answer.lines;
                // Fewer than asked: REF's (and SPEC's) "no more events" after what there was.
                s.push_str(if answer.taken >= n {
                    replies::SUCCESS
                } else {
                    replies::NO_EVENTS
                });
                s
            }
            QueueRequest::Stat => format!(
                "0,0,{},{},{},{},{}{CRLF}{}",
                answer.dropped,
                t.delivered.1,
                t.delivered.0,
                t.sent.1,
                t.sent.0,
                replies::SUCCESS
            ),
        }
    }

    /// The reply to [`Action::Challenge`]: `+OK - ` and 32 lower-case hex digits of `random`
    /// (16 bytes from the OS CSPRNG). Nothing uses the value (tcp.md §5.14).
    pub fn finish_challenge(&mut self, random: [u8; 16]) -> String {
        let hex = crate::auth::hex_upper(&random).to_ascii_lowercase();
        format!("+OK - {hex}")
    }

    /// The driver wrote `events` queued events (with `data_bytes` data bytes) in the receive
    /// loop: counted for `stat`.
    pub fn count_delivered(&mut self, events: u64, data_bytes: u64) {
        if let Some(t) = self.tcp.as_deref_mut() {
            t.delivered.0 += events;
            t.delivered.1 += data_bytes;
        }
    }
}
