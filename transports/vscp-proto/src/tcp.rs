//! The VSCP tcp/ip link interface (spec tcp.md): reply texts, the command line grammar, the
//! fixed texts (`help`, `wcyd`, the greeting) and the event line. The session's handling of the
//! commands is in `session`; this module is the dialect's vocabulary, like `ws1`/`ws2`.
//!
//! A reply is zero or more data lines and exactly one terminal line starting with `+OK` or
//! `-OK` (tcp.md §3). Replies are built here as one text with the lines joined by CRLF and no
//! line end after the last: the transport ends every message with CRLF.

use crate::codec;
use crate::event::DateTime;
use crate::event::Event;
use crate::guid::Guid;

/// Line end between the lines of one reply (the transport adds the last one).
pub const CRLF: &str = "\r\n";

/// The reply texts of tcp.md §3, exactly.
pub mod replies {
    pub const SUCCESS: &str = "+OK - Success.";
    pub const USER_OK: &str = "+OK - User name accepted, password please";
    pub const GOODBYE: &str = "+OK - Connection closed by client.";
    pub const CLEARED: &str = "+OK - All events cleared.";
    pub const LOOP_ENTERED: &str = "+OK - Receive loop entered. QUITLOOP to terminate.";
    pub const LOOP_LEFT: &str = "+OK - Quit receive loop.";
    /// The keepalive line inside the receive loop (tcp.md §5.5).
    pub const KEEPALIVE: &str = "+OK";
    pub const UNKNOWN_COMMAND: &str = "-OK - Unknown command";
    pub const BAD_PARAMETER: &str = "-OK - Invalid parameter or format";
    pub const NO_EVENTS: &str = "-OK - No event(s) available";
    pub const NEED_LOGIN: &str = "-OK - Need to log in to perform this command.";
    pub const NEED_USER: &str = "-OK - Need a Username before a password can be entered.";
    pub const BAD_LOGIN: &str = "-OK - Invalid username or password.";
    /// The right password, but no `tcpip` right while `check-interface-rights` is on (tcp.md
    /// §2.2); the connection then closes.
    pub const NO_INTERFACE_RIGHT: &str = "-OK - User does not have rights to use tcp/ip interface.";
    pub const NO_RIGHTS: &str = "-OK - User does not have rights to perform this operation.";
    pub const NOT_ALLOWED_TO_SEND: &str = "-OK - Not allowed to send this event (contact admin).";
    pub const BUFFER_FULL: &str = "-OK - Buffer Full";
    /// With `ack-from-broker`: the broker did not confirm the event in time (our extension,
    /// ws1's code 11; tcp/ip clients only test the `-OK`).
    pub const NOT_CONFIRMED: &str = "-OK - Not confirmed by the broker in time.";
    pub const NOT_SUPPORTED: &str = "-OK - Command is not supported here.";
    pub const NO_BINARY: &str = "-OK - Binary mode not supported";
    pub const LINE_TOO_LONG: &str = "-OK - Command line too long.";
    pub const TOO_MANY_CLIENTS: &str = "-OK - Max number of clients connected.";
}

/// Capabilities reported by `wcyd` (tcp.md §5.12, REC): TCPIP (0x8000) | WEBSOCKET (0x400) |
/// IP6 (0x40) | IP4 (0x20) | TWO_CONNECTIONS (0x8). No SSL bit (no TLS listener yet) and never
/// the AES bits (Q22).
pub const CAPABILITIES: u64 = 0x8000 | 0x400 | 0x40 | 0x20 | 0x8;

/// History entries kept per connection for `+`/`+n`/`++` (REF's 200).
pub const HISTORY_ENTRIES: usize = 200;
/// Bytes of history kept per connection: the oldest entries go first past this. Lines may be
/// 8 KiB; 200 of them per connection would let each idle client hold 1.6 MB.
pub const HISTORY_BYTES: usize = 8 * 1024;

/// Splits a line into its lower-cased command word and its trimmed argument (tcp.md §4): the
/// word ends at the first space or TAB.
pub fn split_command(line: &str) -> (String, &str) {
    let line = trim(line);
    match line.find([' ', '\t']) {
        Some(i) => (line[..i].to_ascii_lowercase(), trim(&line[i..])),
        None => (line.to_ascii_lowercase(), ""),
    }
}

/// Trims what REF trims around a line or argument: whitespace (space, TAB, CR, LF, VT, FF) and
/// NUL (tcp.md §1.1).
pub fn trim(s: &str) -> &str {
    s.trim_matches(|c| matches!(c, ' ' | '\t' | '\r' | '\n' | '\u{0b}' | '\u{0c}' | '\0'))
}

/// The greeting (tcp.md §2.1, REC Q1): `host` is `l2drv` under vscpd, `standalone` otherwise.
pub fn greeting(host: &str, version: &str, copyright: &str) -> String {
    format!(
        "Welcome to the VSCP websocket server [{host}].{CRLF}Version: {version}{CRLF}{copyright}{CRLF}{}",
        replies::SUCCESS
    )
}

/// `version`'s data line: the server version as four comma-separated numbers
/// (`major,minor,release,build`); what is missing or not numeric reads as 0.
pub fn version_line(version: &str) -> String {
    let mut parts = [0u32; 4];
    // `0.4.0` or `15.2.0-0`: numbers separated by `.` or `-`; a pre-release word stops it.
    for (slot, p) in parts.iter_mut().zip(version.split(['.', '-'])) {
        match p.parse() {
            Ok(n) => *slot = n,
            Err(_) => break,
        }
    }
    let [a, b, c, d] = parts;
    format!("{a},{b},{c},{d}")
}

/// `wcyd`'s data line: the capability word as 8 upper-case hex bytes, MSB first, `-` between.
pub fn wcyd_line(caps: u64) -> String {
    let b = caps.to_be_bytes();
    b.iter()
        .map(|x| format!("{x:02X}"))
        .collect::<Vec<_>>()
        .join("-")
}

/// Interface type numbers of the client list (REF `clientlist.h`; tcp.md §5.15).
pub const CLIENT_TYPE_TCP: u8 = 5;
/// See [`CLIENT_TYPE_TCP`].
pub const CLIENT_TYPE_WEBSOCKET: u8 = 8;

/// One line of `interface list`: `<chid>,<type>,<interface GUID>,<name> | Started at <UTC>`.
/// node-vscp-tcp splits it on `,` and the name on `|`, so the name has neither (they are
/// replaced by spaces).
pub fn client_line(chid: u32, kind: u8, guid: &Guid, name: &str, started_unix_secs: u64) -> String {
    use std::fmt::Write;
    let name: String = name
        .chars()
        .map(|c| {
            if c == ',' || c == '|' || c.is_control() {
                ' '
            } else {
                c
            }
        })
        .collect();
    let mut s = String::with_capacity(96 + name.len());
    let _ = write!(s, "{chid},{kind},{guid},{name} | Started at ");
    DateTime::from_unix_secs(started_unix_secs).write_iso(&mut s);
    s
}

/// The interface GUID of a connection (tcp.md §2.3): the server GUID with bytes 12–13 the low
/// 16 bits of the channel id (big-endian) and bytes 14–15 zero.
pub fn interface_guid(server: &Guid, chid: u32) -> Guid {
    let mut g = server.0;
    g[12..14].copy_from_slice(&(chid as u16).to_be_bytes());
    g[14] = 0;
    g[15] = 0;
    Guid(g)
}

/// Reads a GUID argument that must be exactly 16 colon-separated hex bytes (`setguid`,
/// tcp.md §5.11): stricter than [`Guid::parse`], which fills missing bytes with 0.
pub fn parse_full_guid(s: &str) -> Option<Guid> {
    let s = trim(s);
    if s.split(':').count() != 16 {
        return None;
    }
    Guid::parse(s).ok()
}

/// A GUID field of `send` or `setfilter`: `-`, empty or colon hex with at most 16 bytes
/// (tcp.md §5.1: more than 16 tokens is a parameter error, not silently cut).
pub fn guid_field_ok(s: &str) -> bool {
    let s = trim(s);
    s.is_empty() || s == "-" || s.split(':').count() <= 16
}

/// Reads the `retr` count (tcp.md §5.2, REC): absent or 0 → 1, decimal up to 65535 (larger is
/// 65535), anything else `None`.
pub fn parse_count(arg: &str) -> Option<usize> {
    let arg = trim(arg);
    if arg.is_empty() {
        return Some(1);
    }
    if !arg.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // All digits: only too many of them can fail, which is "larger than 65535".
    let n = arg.parse::<u64>().unwrap_or(u64::MAX).min(65535) as usize;
    Some(n.max(1))
}

/// The help text (tcp.md §5.13): what this server implements, one command a line. No line
/// starts with `+OK`/`-OK`.
const HELP: &[(&str, &str)] = &[
    ("noop", "Do nothing."),
    ("help", "This text; 'help <command>' for one command."),
    ("quit", "Close the connection (also 'exit')."),
    ("user", "'user <name>': the user name to log in with."),
    (
        "pass",
        "'pass <password>': the password; a wrong one closes the connection.",
    ),
    ("challenge", "A new random session id."),
    (
        "send",
        "'send head,class,type,obid,datetime,timestamp,GUID,data...': send an event.",
    ),
    (
        "retr",
        "'retr [n]': take up to n (default 1) received events (also 'retrieve').",
    ),
    (
        "rcvloop",
        "Write every received event as it comes, '+OK' every 2 s (also 'receiveloop').",
    ),
    ("quitloop", "Leave the receive loop."),
    (
        "chkdata",
        "Number of received events waiting (also 'cdta', 'checkdata').",
    ),
    (
        "clrall",
        "Drop every waiting event (also 'clra', 'clearall').",
    ),
    (
        "stat",
        "Statistics: 0,0,dropped,bytes in,events in,bytes out,events out.",
    ),
    ("info", "Channel status."),
    ("chid", "This connection's channel id (also 'getchid')."),
    ("getguid", "This connection's interface GUID (also 'ggid')."),
    (
        "setguid",
        "'setguid <GUID>': set this connection's interface GUID (also 'sgid').",
    ),
    (
        "version",
        "Server version, major,minor,release,build (also 'vers').",
    ),
    (
        "setfilter",
        "'setfilter priority,class,type,GUID': the filter half (also 'sflt').",
    ),
    (
        "setmask",
        "'setmask priority,class,type,GUID': the mask half (also 'smsk').",
    ),
    ("wcyd", "Capabilities, 8 hex bytes (also 'whatcanyoudo')."),
    ("test", "Do nothing (needs the test right)."),
    (
        "+",
        "'+' repeats the last command, '+n' the n-th last (0 = last), '++' lists them.",
    ),
];

/// The `help` reply: the list, or the lines for one command, then `+OK - Success.`.
pub fn help(arg: &str) -> String {
    let mut s = String::new();
    let arg = trim(arg).to_ascii_lowercase();
    if arg.is_empty() {
        s.push_str("Commands (case does not matter):");
        for (name, text) in HELP {
            s.push_str(CRLF);
            s.push_str(&format!("  {name:<10} {text}"));
        }
    } else {
        let name = canonical(&arg).unwrap_or(&arg);
        match HELP.iter().find(|(n, _)| *n == name) {
            Some((n, text)) => s.push_str(&format!("{n}: {text}")),
            None => s.push_str("The command is not available."),
        }
    }
    s.push_str(CRLF);
    s.push_str(replies::SUCCESS);
    s
}

/// Maps an alias to its command name (tcp.md §4); `None` for a word that is no alias.
pub fn canonical(word: &str) -> Option<&'static str> {
    Some(match word {
        "exit" => "quit",
        "retrieve" => "retr",
        "receiveloop" => "rcvloop",
        "cdta" | "checkdata" => "chkdata",
        "clra" | "clearall" => "clrall",
        "getchid" => "chid",
        "ggid" => "getguid",
        "sgid" => "setguid",
        "vers" => "version",
        "sflt" => "setfilter",
        "smsk" => "setmask",
        "whatcanyoudo" => "wcyd",
        "client" => "interface",
        _ => return None,
    })
}

/// Appends the line a tcp/ip client receives for an event (tcp.md §6, events.md §5.1): the
/// same string a ws1 client gets after `E;`.
pub fn encode_event(ev: &Event, out: &mut String) {
    codec::string::write_event(ev, out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_words() {
        assert_eq!(split_command("  NOOP \r"), ("noop".into(), ""));
        assert_eq!(
            split_command("user  Ann Lee \t"),
            ("user".into(), "Ann Lee")
        );
        assert_eq!(split_command("retr\t5"), ("retr".into(), "5"));
        assert_eq!(split_command(""), ("".into(), ""));
        assert_eq!(split_command("\0noop\0"), ("noop".into(), ""));
    }

    #[test]
    fn fixed_lines() {
        assert_eq!(wcyd_line(CAPABILITIES), "00-00-00-00-00-00-84-68");
        assert_eq!(version_line("0.4.0"), "0,4,0,0");
        assert_eq!(version_line("15.2.0-0"), "15,2,0,0");
        assert_eq!(version_line("1.2.3-rc1"), "1,2,3,0");
        let g = Guid::parse("FF:FF:FF:FF:FF:FF:FF:F5:02:88:88:00:00:00:00:01").unwrap();
        assert_eq!(
            interface_guid(&g, 7).to_string(),
            "FF:FF:FF:FF:FF:FF:FF:F5:02:88:88:00:00:07:00:00"
        );
        assert_eq!(
            interface_guid(&g, 0x1_0203).to_string(),
            "FF:FF:FF:FF:FF:FF:FF:F5:02:88:88:00:02:03:00:00"
        );
    }

    #[test]
    fn client_lines_are_what_node_vscp_tcp_parses() {
        let g = Guid::parse("FF:FF:FF:FF:FF:FF:FF:F5:02:88:88:00:00:07:00:00").unwrap();
        let line = client_line(
            7,
            CLIENT_TYPE_TCP,
            &g,
            "tcp/ip client 127.0.0.1:40112",
            1_796_199_245,
        );
        assert_eq!(
            line,
            "7,5,FF:FF:FF:FF:FF:FF:FF:F5:02:88:88:00:00:07:00:00,tcp/ip client 127.0.0.1:40112 | Started at 2026-12-02T08:14:05Z"
        );
        // node-vscp-tcp: four fields on ',', the name before '|', the time at the end.
        let fields: Vec<&str> = line.split(',').collect();
        assert_eq!(fields.len(), 4);
        assert_eq!(fields[3].split('|').count(), 2);
        assert!(line.ends_with("2026-12-02T08:14:05Z"));
        let odd = client_line(1, CLIENT_TYPE_WEBSOCKET, &g, "a,b|c\nd", 0);
        assert!(
            odd.ends_with(",a b c d | Started at 1970-01-01T00:00:00Z"),
            "{odd}"
        );
    }

    #[test]
    fn counts() {
        assert_eq!(parse_count(""), Some(1));
        assert_eq!(parse_count("0"), Some(1));
        assert_eq!(parse_count("5"), Some(5));
        assert_eq!(parse_count("99999999999999999999999"), Some(65535));
        for bad in ["abc", "-1", "1.5", "0x5", "+2"] {
            assert_eq!(parse_count(bad), None, "{bad}");
        }
    }

    #[test]
    fn guids() {
        assert!(parse_full_guid("00:01:02:03:04:05:06:07:08:09:0A:0B:0C:0D:0E:0F").is_some());
        assert!(parse_full_guid("00:01").is_none());
        assert!(parse_full_guid("ZZ:01:02:03:04:05:06:07:08:09:0A:0B:0C:0D:0E:0F").is_none());
        assert!(guid_field_ok("-") && guid_field_ok("") && guid_field_ok("0:1:2"));
        assert!(!guid_field_ok(&["1"; 17].join(":")));
    }

    #[test]
    fn help_lines_never_look_like_a_terminal_line() {
        for text in [help(""), help("retr"), help("retrieve"), help("nope")] {
            let lines: Vec<&str> = text.split(CRLF).collect();
            assert_eq!(*lines.last().unwrap(), replies::SUCCESS);
            for l in &lines[..lines.len() - 1] {
                assert!(!l.starts_with("+OK") && !l.starts_with("-OK"), "{l}");
            }
        }
        assert!(help("retrieve").starts_with("retr: "));
        // Only what is implemented (tcp.md §5.13): `interface` is refused for now.
        assert!(!help("").contains("  interface "));
    }
}
