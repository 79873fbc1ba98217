//! ws2, the JSON dialect: message objects and reply layouts (ws2.md §2, §4, §8).
//!
//! Input is parsed with simd-json in place (the caller hands us a mutable buffer it owns).
//! Output uses REF's exact byte layouts (ws2.md §8), so byte-for-byte comparisons against the
//! old driver still hold; clients that parse JSON do not care.

use crate::codec;
use crate::event::Event;
use crate::filter::Filter;
use crate::ws1::errors::{self, Code};
use crate::ParseError;
use simd_json::prelude::*;
use simd_json::BorrowedValue;

/// Longest command name we echo in a reply (see [`crate::ws1::MAX_ECHOED_COMMAND`]).
pub const MAX_ECHOED_COMMAND: usize = crate::ws1::MAX_ECHOED_COMMAND;

/// Arguments of a ws2 command that the session needs, already extracted from the JSON.
#[derive(Debug, PartialEq)]
pub enum Args {
    /// `args` was null or an object we do not read for this command.
    None,
    /// AUTH: `iv` and `crypto` (non-string values read as empty, as REF does).
    Auth { iv: String, crypto: String },
    /// SETFILTER/SF: the parsed filter, or why it could not be read.
    Filter(Result<Filter, ParseError>),
}

/// What a ws2 message asks for.
#[derive(Debug, PartialEq)]
pub enum Message {
    /// Valid JSON without a `type`, or a type REF accepts and ignores (`+`, `-`, `VARIABLE`).
    Ignored,
    /// Not JSON, `type` not a string, or an unknown `type`: error 9 with command `EVENT` (REF).
    BadType,
    /// A command object whose `command` member is missing or not a string.
    NoCommandName,
    /// A command without an `args` key, or with `args` that is neither null nor an object.
    BadArgs { name: String },
    /// A command: upper-cased, trimmed name as spelled by the client, and its arguments.
    Command { name: String, args: Args },
    /// An event object, parsed; `None` when the `event` member is missing.
    Event(Option<Result<Event, ParseError>>),
}

/// Parses one ws2 message. `buf` is modified in place by simd-json.
pub fn parse_message(buf: &mut [u8]) -> Message {
    let Ok(doc) = simd_json::to_borrowed_value(buf) else {
        return Message::BadType;
    };
    if !doc.is_object() {
        // REF's catch-all for JSON it cannot use.
        return Message::BadType;
    }
    let Some(ty) = doc.get("type") else {
        return Message::Ignored;
    };
    let Some(ty) = ty.as_str() else {
        return Message::BadType;
    };
    let ty = ty.trim();
    if ty.eq_ignore_ascii_case("COMMAND")
        || ty.eq_ignore_ascii_case("CMD")
        || ty.eq_ignore_ascii_case("C")
    {
        parse_command(&doc)
    } else if ty.eq_ignore_ascii_case("EVENT") || ty.eq_ignore_ascii_case("E") {
        Message::Event(doc.get("event").map(codec::json::parse_event))
    } else if ty == "+" || ty == "-" || ty.eq_ignore_ascii_case("VARIABLE") {
        Message::Ignored
    } else {
        Message::BadType
    }
}

fn parse_command(doc: &BorrowedValue<'_>) -> Message {
    let Some(name) = doc.get("command").and_then(|c| c.as_str()) else {
        return Message::NoCommandName;
    };
    let name = name.trim().to_ascii_uppercase();
    let args = match doc.get("args") {
        None => return Message::BadArgs { name },
        Some(a) if a.is_null() => None,
        Some(a) if a.is_object() => Some(a),
        Some(_) => return Message::BadArgs { name },
    };
    let args = match name.as_str() {
        "AUTH" => {
            let field = |k: &str| {
                args.and_then(|a| a.get(k))
                    .and_then(|v| v.as_str())
                    .unwrap_or("")
                    .to_string()
            };
            Args::Auth {
                iv: field("iv"),
                crypto: field("crypto"),
            }
        }
        "SETFILTER" | "SF" => Args::Filter(match args {
            Some(a) => Filter::from_ws2_args(a),
            None => Ok(Filter::ALL_PASS),
        }),
        _ => Args::None,
    };
    Message::Command { name, args }
}

/// `{    "type" : "+",     "args" : ["AUTH0","<SID>"]}` — no `command` member (ws2.md Q1).
pub fn auth0(sid_hex: &str) -> String {
    format!("{{    \"type\" : \"+\",     \"args\" : [\"AUTH0\",\"{sid_hex}\"]}}")
}

/// Positive reply; `args` is raw JSON (`null` or an object).
pub fn positive(cmd: &str, args: &str) -> String {
    let mut s = String::with_capacity(48 + cmd.len() + args.len());
    s.push_str("{ \"type\" : \"+\",  \"command\" : \"");
    push_json_escaped(&mut s, crate::ws1::truncate(cmd, MAX_ECHOED_COMMAND));
    s.push_str("\",  \"args\" : ");
    s.push_str(args);
    s.push('}');
    s
}

/// Negative reply.
pub fn negative(cmd: &str, (code, text): Code) -> String {
    let mut s = String::with_capacity(80 + cmd.len() + text.len());
    s.push_str("{ \"type\" : \"-\",  \"command\" : \"");
    push_json_escaped(&mut s, crate::ws1::truncate(cmd, MAX_ECHOED_COMMAND));
    s.push_str("\",  \"errcode\" : ");
    s.push_str(&code.to_string());
    s.push_str(",  \"errstr\" : \"");
    push_json_escaped(&mut s, text);
    s.push_str("\" }");
    s
}

/// The reply to input that is not a usable message (REF: error 9 under command `EVENT`).
pub fn bad_type() -> String {
    negative("EVENT", errors::UNKNOWN_TYPE)
}

/// `{"sid": "<SID>"}`, the CHALLENGE args.
pub fn challenge_args(sid_hex: &str) -> String {
    format!("{{\"sid\": \"{sid_hex}\"}}")
}

/// `{ "version" : "<v>" }`.
pub fn version_args(version: &str) -> String {
    let mut s = String::from("{ \"version\" : \"");
    push_json_escaped(&mut s, version);
    s.push_str("\" }");
    s
}

/// `{ "copyright" : "<text>" }`.
pub fn copyright_args(text: &str) -> String {
    let mut s = String::from("{ \"copyright\" : \"");
    push_json_escaped(&mut s, text);
    s.push_str("\" }");
    s
}

/// Appends `{ "type" : "EVENT",  "event" :  <event JSON> }` for a delivered event.
pub fn encode_event(ev: &Event, out: &mut String) {
    out.push_str("{ \"type\" : \"EVENT\",  \"event\" :  ");
    codec::json::write_event(ev, out);
    out.push_str(" }");
}

/// Escapes a client-controlled string for a JSON string literal.
pub fn push_json_escaped(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Message {
        let mut b = s.as_bytes().to_vec();
        parse_message(&mut b)
    }

    #[test]
    fn message_kinds() {
        assert_eq!(parse("not json"), Message::BadType);
        assert_eq!(parse("[1,2]"), Message::BadType);
        assert_eq!(parse("{}"), Message::Ignored);
        assert_eq!(parse(r#"{"type":5}"#), Message::BadType);
        assert_eq!(parse(r#"{"type":"bogus"}"#), Message::BadType);
        assert_eq!(parse(r#"{"type":"+"}"#), Message::Ignored);
        assert_eq!(parse(r#"{"type":"VARIABLE"}"#), Message::Ignored);
        assert_eq!(parse(r#"{"type":"CMD"}"#), Message::NoCommandName);
        assert_eq!(
            parse(r#"{"type":"cmd","command":" noop "}"#),
            Message::BadArgs {
                name: "NOOP".into()
            }
        );
        assert_eq!(
            parse(r#"{"type":"CMD","command":"SF","args":["x"]}"#),
            Message::BadArgs { name: "SF".into() }
        );
        assert_eq!(
            parse(r#"{"type":"COMMAND","command":"ver","args":null}"#),
            Message::Command {
                name: "VER".into(),
                args: Args::None
            }
        );
        assert_eq!(
            parse(r#"{"type":"C","command":"auth","args":{"iv":"AB","crypto":7}}"#),
            Message::Command {
                name: "AUTH".into(),
                args: Args::Auth {
                    iv: "AB".into(),
                    crypto: String::new()
                }
            }
        );
        assert_eq!(parse(r#"{"type":"EVENT"}"#), Message::Event(None));
        assert!(matches!(
            parse(r#"{"type":"e","event":{"vscpClass":20,"vscpType":3}}"#),
            Message::Event(Some(Ok(_)))
        ));
    }

    #[test]
    fn reply_layouts_match_ref() {
        assert_eq!(
            auth0("5A475C082C80DCDF7F2DFBD976253B24"),
            r#"{    "type" : "+",     "args" : ["AUTH0","5A475C082C80DCDF7F2DFBD976253B24"]}"#
        );
        assert_eq!(
            positive("OPEN", "null"),
            r#"{ "type" : "+",  "command" : "OPEN",  "args" : null}"#
        );
        assert_eq!(
            negative("AUTH", errors::NOT_AUTHORISED),
            r#"{ "type" : "-",  "command" : "AUTH",  "errcode" : 5,  "errstr" : "Not authorised." }"#
        );
        assert_eq!(
            bad_type(),
            r#"{ "type" : "-",  "command" : "EVENT",  "errcode" : 9,  "errstr" : "Unknown type, only know 'COMMAND' and 'EVENT'." }"#
        );
        assert_eq!(version_args("1.0.0-0"), r#"{ "version" : "1.0.0-0" }"#);
        assert_eq!(challenge_args("AB"), r#"{"sid": "AB"}"#);
    }

    #[test]
    fn echoed_names_are_escaped_json() {
        let r = negative("A\"B\\\u{1}", errors::UNKNOWN_COMMAND);
        let v: serde_json::Value = serde_json::from_str(&r).expect("valid JSON");
        assert_eq!(v["command"], "A\"B\\\u{1}");
    }
}
