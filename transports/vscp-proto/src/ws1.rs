//! ws1, the text dialect: line grammar, reply texts and the event line (ws1.md §2, §5–8).
//!
//! One websocket text message is one line. The first character (after trimming) selects the
//! kind: `C` command, `E` event, anything else is ignored without a reply.

use crate::codec;
use crate::event::Event;

/// Error codes and their exact REF texts (ws1.md §8). ws2 uses the same numbers and texts.
pub mod errors {
    /// `(code, text)`.
    pub type Code = (u16, &'static str);
    pub const SYNTAX: Code = (1, "Syntax error.");
    pub const UNKNOWN_COMMAND: Code = (2, "Unknown command.");
    pub const TX_BUFFER_FULL: Code = (3, "Transmit buffer full.");
    pub const NOT_AUTHORISED: Code = (5, "Not authorised.");
    pub const NOT_ALLOWED_TO_SEND: Code = (6, "Not allowed to send event.");
    pub const NOT_ALLOWED: Code = (7, "Not allowed to do that (check privileges)");
    pub const PARSE: Code = (8, "Parse error, invalid format.");
    pub const UNKNOWN_TYPE: Code = (9, "Unknown type, only know 'COMMAND' and 'EVENT'.");
    /// Our extension (10 is REF's general error): with `ack-from-broker`, the broker did not
    /// confirm the event in time. It may still arrive; the client should send it again.
    pub const NOT_CONFIRMED: Code = (11, "Not confirmed by the broker in time.");
}

/// Longest command token we echo back in `-;<CMD>;2;Unknown command.`. The line itself may be
/// as long as the message limit; echoing all of it would let a client make us send back as
/// much as it sends.
pub const MAX_ECHOED_COMMAND: usize = 32;

/// What a ws1 line asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Line<'a> {
    /// Not a command or an event: REF ignores it without a reply.
    Ignored,
    /// `C;` with nothing after it.
    EmptyCommand,
    /// A command: upper-cased, trimmed name and the raw `;`-separated arguments (untrimmed,
    /// empty fields kept, as REF splits them).
    Command { name: String, args: Vec<&'a str> },
    /// An event line; the payload is the event string after `E;`.
    Event(&'a str),
}

/// Splits one ws1 message into its kind (ws1.md §2.1).
pub fn parse_line(text: &str) -> Line<'_> {
    let line = text.trim_matches(is_c_space);
    let mut chars = line.chars();
    let kind = chars.next();
    // REF drops the first two characters assuming `C;`/`E;`. We only drop the separator when
    // it is there, so `CNOOP` is the unknown command `CNOOP` rather than `OOP`.
    let rest = match line.get(1..) {
        Some(r) => r.strip_prefix(';').unwrap_or(r),
        None => "",
    };
    match kind {
        Some('C') => {
            if line.len() == 1 {
                // REF treats a lone `C` as the command `C`.
                return Line::Command {
                    name: "C".into(),
                    args: Vec::new(),
                };
            }
            // Without the `;` separator (`CNOOP`) the whole line is the command token.
            let rest = if line.as_bytes()[1] == b';' {
                rest
            } else {
                line
            };
            if rest.is_empty() {
                return Line::EmptyCommand;
            }
            let mut parts = rest.split(';');
            let name = parts.next().unwrap_or("").trim().to_ascii_uppercase();
            Line::Command {
                name,
                args: parts.collect(),
            }
        }
        Some('E') => Line::Event(rest),
        _ => Line::Ignored,
    }
}

/// C `isspace`: what REF's `vscp_trim` strips.
fn is_c_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\u{0b}' | '\u{0c}' | '\r')
}

/// `+;<CMD>` followed by `;field` for each field.
pub fn positive(cmd: &str, fields: &[&str]) -> String {
    let mut s =
        String::with_capacity(3 + cmd.len() + fields.iter().map(|f| f.len() + 1).sum::<usize>());
    s.push_str("+;");
    s.push_str(cmd);
    for f in fields {
        s.push(';');
        s.push_str(f);
    }
    s
}

/// `-;<CMD>;<code>;<text>`.
pub fn negative(cmd: &str, (code, text): errors::Code) -> String {
    let cmd = truncate(cmd, MAX_ECHOED_COMMAND);
    format!("-;{cmd};{code};{text}")
}

/// Negative reply to an event line. REF shape without a command token (ws1.md Q1).
pub fn negative_event((code, text): errors::Code) -> String {
    format!("-;{code};{text}")
}

/// `-;1;Syntax error.` for `C;` without a command.
pub fn empty_command() -> String {
    negative_event(errors::SYNTAX)
}

/// The challenge line sent right after the upgrade and on CHALLENGE.
pub fn auth0(sid_hex: &str) -> String {
    positive("AUTH0", &[sid_hex])
}

/// Appends the `E;<event string>` line for a delivered event.
pub fn encode_event(ev: &Event, out: &mut String) {
    out.push_str("E;");
    codec::string::write_event(ev, out);
}

/// `s` cut to at most `max` bytes, on a character boundary.
pub(crate) fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_kinds() {
        assert_eq!(parse_line(""), Line::Ignored);
        assert_eq!(parse_line("   \r\n"), Line::Ignored);
        assert_eq!(parse_line("+;NOOP"), Line::Ignored);
        assert_eq!(parse_line("c;NOOP"), Line::Ignored);
        assert_eq!(parse_line("C;"), Line::EmptyCommand);
        assert_eq!(
            parse_line("C"),
            Line::Command {
                name: "C".into(),
                args: vec![]
            }
        );
        assert_eq!(
            parse_line("  C;noop \n"),
            Line::Command {
                name: "NOOP".into(),
                args: vec![]
            }
        );
        assert_eq!(
            parse_line("C;SF;0,10,6,-;0,0xFFFF,0xFFFF,-"),
            Line::Command {
                name: "SF".into(),
                args: vec!["0,10,6,-", "0,0xFFFF,0xFFFF,-"]
            }
        );
        assert_eq!(
            parse_line("C;AUTH;a;;b;"),
            Line::Command {
                name: "AUTH".into(),
                args: vec!["a", "", "b", ""]
            }
        );
        assert_eq!(
            parse_line("CNOOP;x"),
            Line::Command {
                name: "CNOOP".into(),
                args: vec!["x"]
            }
        );
        assert_eq!(parse_line("E;0,20,3,,,,-"), Line::Event("0,20,3,,,,-"));
        assert_eq!(parse_line("E"), Line::Event(""));
    }

    #[test]
    fn reply_shapes() {
        assert_eq!(positive("NOOP", &[]), "+;NOOP");
        assert_eq!(
            positive("VERSION", &["1.2.3", "1.0.0.0"]),
            "+;VERSION;1.2.3;1.0.0.0"
        );
        assert_eq!(
            negative("FOO", errors::UNKNOWN_COMMAND),
            "-;FOO;2;Unknown command."
        );
        assert_eq!(
            negative_event(errors::NOT_AUTHORISED),
            "-;5;Not authorised."
        );
        assert_eq!(empty_command(), "-;1;Syntax error.");
        assert_eq!(
            auth0("55BCA4DC7C1FD9C3E6967F37C8747698"),
            "+;AUTH0;55BCA4DC7C1FD9C3E6967F37C8747698"
        );
        let long = "X".repeat(1000);
        assert_eq!(negative(&long, errors::UNKNOWN_COMMAND).len(), 2 + 32 + 19);
    }
}
