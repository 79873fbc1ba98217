//! Topic templates: the subset of mustache REF uses (mqtt.md §4.1, §6.1, §7).
//!
//! `{{name}}` is replaced by the variable's value, HTML-escaped (`& < > " '`) as kainjow's
//! mustache does; `{{{name}}}` and `{{& name}}` are not escaped. Unknown names render empty.
//! Sections, partials, comments and delimiter changes are not used by VSCP topics, so those
//! tags render nothing. An unterminated `{{` is kept as literal text.
//!
//! Names containing a `.` (`guid.msb`, …) render empty, as in REF, whose template engine treats
//! the dot as a path separator and so never resolves them.
//!
//! Templates are parsed once at start-up; rendering looks variables up through [`Vars`]
//! instead of a per-event map, so publishing an event does not build dozens of strings it
//! will not use.

use std::borrow::Cow;
use std::fmt::Write as _;

use vscp_proto::{Event, Guid};

use crate::measurement::{self, Measurement};
use crate::payload::PublishFormat;

/// A parsed template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    source: String,
    parts: Vec<Part>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Literal(String),
    Var { name: String, escape: bool },
}

impl Template {
    /// Parses `source`; never fails (see module docs for the edge cases).
    pub fn parse(source: &str) -> Template {
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut rest = source;
        while let Some(open) = rest.find("{{") {
            lit.push_str(&rest[..open]);
            let after = &rest[open..];
            let (triple, inner_start) = if after.starts_with("{{{") {
                (true, 3)
            } else {
                (false, 2)
            };
            let close = if triple { "}}}" } else { "}}" };
            let Some(end) = after[inner_start..].find(close) else {
                // Unterminated tag: the rest is text.
                lit.push_str(after);
                rest = "";
                break;
            };
            let inner = after[inner_start..inner_start + end].trim();
            rest = &after[inner_start + end + close.len()..];
            let (name, escape) = if triple {
                (inner, false)
            } else if let Some(n) = inner.strip_prefix('&') {
                (n.trim(), false)
            } else if inner.starts_with(['#', '^', '/', '>', '!', '=']) {
                // Section, partial, comment or delimiter tag: not used in topics.
                continue;
            } else {
                (inner, true)
            };
            if !lit.is_empty() {
                parts.push(Part::Literal(std::mem::take(&mut lit)));
            }
            parts.push(Part::Var {
                name: name.to_owned(),
                escape,
            });
        }
        lit.push_str(rest);
        if !lit.is_empty() {
            parts.push(Part::Literal(lit));
        }
        Template {
            source: source.to_owned(),
            parts,
        }
    }

    /// The text the template was parsed from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// True when rendering needs no variables.
    pub fn is_literal(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Literal(_)))
    }

    /// Appends the rendered text to `out`.
    pub fn render(&self, vars: &dyn Vars, out: &mut String) {
        let mut value = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(s) => out.push_str(s),
                Part::Var { name, escape } => {
                    value.clear();
                    if name.contains('.') || !vars.lookup(name, &mut value) {
                        continue;
                    }
                    if *escape {
                        html_escape(&value, out);
                    } else {
                        out.push_str(&value);
                    }
                }
            }
        }
    }

    /// Renders into a new string.
    pub fn render_to_string(&self, vars: &dyn Vars) -> String {
        let mut s = String::with_capacity(self.source.len() + 64);
        self.render(vars, &mut s);
        s
    }
}

fn html_escape(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
}

/// A source of template variables.
pub trait Vars {
    /// Appends the value of `name` to `out` and returns true, or returns false for an unknown
    /// name (which renders empty).
    fn lookup(&self, name: &str, out: &mut String) -> bool;
}

/// Splits `name[i]` into (`name`, i).
fn indexed(name: &str) -> Option<(&str, usize)> {
    let (base, rest) = name.split_once('[')?;
    let idx = rest.strip_suffix(']')?.parse().ok()?;
    Some((base, idx))
}

/// Values that do not depend on an event: the bridge's identity and session. Used alone for
/// the client id, will and subscribe topics (where `guid` is the interface GUID, mqtt.md §6.1
/// REC), and as the fallback of [`EventVars`].
#[derive(Clone, Debug, Default)]
pub struct StaticVars {
    /// The driver's `guid` (interface GUID): `ifguid`, and `guid` outside an event.
    pub ifguid: Guid,
    /// The server GUID (`srvguid`); vscpd's GUID in REF, the interface GUID standalone.
    pub srvguid: Guid,
    pub clientid: String,
    pub user: String,
    pub host: String,
    /// `user-escapes`, plus `driver-level`.
    pub user_escapes: Vec<(String, String)>,
}

impl StaticVars {
    fn guid_vars(name: &str, which: &str, g: &Guid, out: &mut String) -> bool {
        if name == which {
            g.write_to(out);
            return true;
        }
        let Some((base, i)) = indexed(name) else {
            return false;
        };
        let Some(&b) = g.0.get(i) else {
            return false;
        };
        if base == which {
            let _ = write!(out, "{b}");
            true
        } else if base.strip_prefix('x') == Some(which) {
            let _ = write!(out, "{b:02X}");
            true
        } else {
            false
        }
    }
}

impl Vars for StaticVars {
    fn lookup(&self, name: &str, out: &mut String) -> bool {
        match name {
            "clientid" => out.push_str(&self.clientid),
            "user" => out.push_str(&self.user),
            "host" => out.push_str(&self.host),
            _ => {
                return Self::guid_vars(name, "srvguid", &self.srvguid, out)
                    || Self::guid_vars(name, "ifguid", &self.ifguid, out)
                    || Self::guid_vars(name, "guid", &self.ifguid, out)
                    || self.user_escape(name, out);
            }
        }
        true
    }
}

impl StaticVars {
    fn user_escape(&self, name: &str, out: &mut String) -> bool {
        match self.user_escapes.iter().find(|(k, _)| k == name) {
            Some((_, v)) => {
                out.push_str(v);
                true
            }
            None => false,
        }
    }
}

/// The variables of one event being published to one entry (mqtt.md §4.1).
#[derive(Debug)]
pub struct EventVars<'a> {
    pub event: &'a Event,
    pub format: PublishFormat,
    /// The decoded measurement, when the event is one (computed for every format, not only
    /// JSON as in REF, so a topic means the same whatever the entry's payload format).
    pub measurement: Option<Measurement>,
    pub base: &'a StaticVars,
}

impl<'a> EventVars<'a> {
    pub fn new(event: &'a Event, format: PublishFormat, base: &'a StaticVars) -> EventVars<'a> {
        EventVars {
            event,
            format,
            measurement: measurement::decode(event),
            base,
        }
    }
}

impl Vars for EventVars<'_> {
    fn lookup(&self, name: &str, out: &mut String) -> bool {
        let ev = self.event;
        let dt = &ev.datetime;
        let m = self.measurement;
        let v: Cow<'_, str> = match name {
            "guid" => {
                ev.guid.write_to(out);
                return true;
            }
            // GUID[14]*256 + GUID[15].
            "nickname" => ev.guid.nickname().to_string().into(),
            // Not in REF although its docs and sample topics use it (mqtt.md §4.1 REC).
            "nodeid" => ev.guid.0[15].to_string().into(),
            "class" => ev.class.to_string().into(),
            "type" => ev.vscp_type.to_string().into(),
            "xclass" => format!("{:02x}", ev.class).into(),
            "xtype" => format!("{:02x}", ev.vscp_type).into(),
            // REF looks these up in vscpd's class database; standalone there is none.
            "class-token" | "type-token" => "".into(),
            "head" => ev.head.to_string().into(),
            "xhead" => format!("{:04X}", ev.head).into(),
            // REF writes `%ul` (a trailing `l`); plain decimal here (mqtt.md §4.1 REC).
            "obid" => ev.obid.to_string().into(),
            "timestamp" => ev.timestamp.to_string().into(),
            "xobid" => format!("{:08X}", ev.obid).into(),
            "xtimestamp" => format!("{:08X}", ev.timestamp).into(),
            "sizedata" => ev.data.len().to_string().into(),
            "xsizedata" => format!("{:04X}", ev.data.len()).into(),
            "datetime" | "local-datetime" => {
                dt.write_iso(out);
                return true;
            }
            "year" | "local-year" => dt.year.to_string().into(),
            "month" | "local-month" => dt.month.to_string().into(),
            "day" | "local-day" => dt.day.to_string().into(),
            "hour" | "local-hour" => dt.hour.to_string().into(),
            "minute" | "local-minute" => dt.minute.to_string().into(),
            "second" | "local-second" => dt.second.to_string().into(),
            "is-measurement" => if m.is_some() { "true" } else { "false" }.into(),
            // std::to_string(double) is "%f": six decimals.
            "measurement-value" => format!("{:.6}", m.map_or(0.0, |m| m.value)).into(),
            "measurement-unit" => m.map_or(0, |m| m.unit).to_string().into(),
            "measurement-sensorindex" => m.map_or(0, |m| m.sensor_index).to_string().into(),
            "measurement-zone" => m.map_or(0, |m| m.zone).to_string().into(),
            "measurement-subzone" => m.map_or(0, |m| m.subzone).to_string().into(),
            "fmtpublish" => self.format.name().into(),
            _ => {
                if let Some((base, i)) = indexed(name) {
                    match base {
                        "guid" | "xguid" => {
                            return StaticVars::guid_vars(name, "guid", &ev.guid, out);
                        }
                        "data" | "xdata" => {
                            let Some(&b) = ev.data.get(i) else {
                                return false;
                            };
                            if base == "data" {
                                let _ = write!(out, "{b}");
                            } else {
                                let _ = write!(out, "{b:02X}");
                            }
                            return true;
                        }
                        _ => {}
                    }
                }
                return self.base.lookup(name, out);
            }
        };
        out.push_str(&v);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The spec's E2 with the last GUID bytes set, so the nickname and GUID variables have
    /// something to show.
    fn e2() -> Event {
        Event {
            guid: Guid::parse("FF:FF:FF:FF:FF:FF:FF:F5:00:00:00:00:00:02:01:0A").unwrap(),
            ..vscp_proto::testing::e2()
        }
    }

    fn base() -> StaticVars {
        StaticVars {
            ifguid: Guid::parse("FF:FF:FF:FF:FF:FF:FF:F5:02:88:88:00:00:00:00:01").unwrap(),
            srvguid: Guid::parse("FF:FF:FF:FF:FF:FF:FF:FE:00:00:00:00:00:00:00:07").unwrap(),
            clientid: "cid".into(),
            user: "vscp".into(),
            host: "broker".into(),
            user_escapes: vec![("site".into(), "a&b".into())],
        }
    }

    fn render(t: &str, vars: &dyn Vars) -> String {
        Template::parse(t).render_to_string(vars)
    }

    #[test]
    fn sample_publish_topic_with_nodeid() {
        let b = base();
        let ev = e2();
        let v = EventVars::new(&ev, PublishFormat::Json, &b);
        assert_eq!(
            render("vscp/{{guid}}/{{class}}/{{type}}/{{nodeid}}", &v),
            "vscp/FF:FF:FF:FF:FF:FF:FF:F5:00:00:00:00:00:02:01:0A/10/6/10"
        );
    }

    #[test]
    fn event_variables() {
        let b = base();
        let ev = e2();
        let v = EventVars::new(&ev, PublishFormat::Xml, &b);
        for (t, want) in [
            ("{{nickname}}", "266"),
            ("{{xclass}}/{{xtype}}", "0a/06"),
            ("{{head}} {{xhead}}", "96 0060"),
            ("{{obid}} {{xobid}}", "17 00000011"),
            ("{{timestamp}} {{xtimestamp}}", "123456789 075BCD15"),
            ("{{sizedata}} {{xsizedata}}", "4 0004"),
            ("{{data[0]}} {{xdata[0]}} {{data[3]}} [{{data[4]}}]", "136 88 196 []"),
            ("{{guid[0]}} {{xguid[7]}} {{guid[15]}} {{xguid[15]}}", "255 F5 10 0A"),
            ("{{datetime}}", "2024-03-01T12:34:56Z"),
            ("{{local-datetime}}", "2024-03-01T12:34:56Z"),
            ("{{year}}-{{month}}-{{day}} {{hour}}:{{minute}}:{{second}}", "2024-3-1 12:34:56"),
            ("{{is-measurement}}", "true"),
            ("{{measurement-value}}", "25.000000"),
            ("{{measurement-unit}}/{{measurement-sensorindex}}/{{measurement-zone}}/{{measurement-subzone}}", "1/0/0/0"),
            ("{{fmtpublish}}", "xml"),
            ("{{class-token}}|{{type-token}}", "|"),
            ("{{guid.msb}}|{{xguid.lsb}}|{{srvguid.msb}}", "||"),
            ("{{ifguid}}", "FF:FF:FF:FF:FF:FF:FF:F5:02:88:88:00:00:00:00:01"),
            ("{{srvguid[15]}} {{xsrvguid[7]}} {{xifguid[15]}}", "7 FE 01"),
            ("{{clientid}}/{{user}}/{{host}}", "cid/vscp/broker"),
            ("{{site}} {{{site}}} {{& site}}", "a&amp;b a&b a&b"),
            ("{{nosuch}}x{{guid[16]}}", "x"),
        ] {
            assert_eq!(render(t, &v), want, "{t}");
        }
    }

    #[test]
    fn non_measurement_defaults() {
        let b = base();
        let ev = Event {
            class: 20,
            vscp_type: 3,
            ..Event::default()
        };
        let v = EventVars::new(&ev, PublishFormat::String, &b);
        assert_eq!(
            render(
                "{{is-measurement}} {{measurement-value}} {{measurement-unit}} {{datetime}}|",
                &v
            ),
            "false 0.000000 0 |"
        );
    }

    #[test]
    fn static_vars_for_subscribe_and_will() {
        let b = base();
        assert_eq!(
            render("vscp/websocksrv/{{guid}}/#", &b),
            "vscp/websocksrv/FF:FF:FF:FF:FF:FF:FF:F5:02:88:88:00:00:00:00:01/#"
        );
        assert_eq!(
            render("vscp-daemon/{{srvguid}}/will", &b),
            "vscp-daemon/FF:FF:FF:FF:FF:FF:FF:FE:00:00:00:00:00:00:00:07/will"
        );
        assert_eq!(render("{{xifguid[15]}}-{{ifguid[8]}}", &b), "01-2");
        assert_eq!(render("{{class}}", &b), "");
    }

    #[test]
    fn parsing_edge_cases() {
        let b = base();
        assert_eq!(render("a{{user", &b), "a{{user");
        assert_eq!(render("a{{{user}}", &b), "a{{{user}}");
        assert_eq!(
            render("{{ user }}-{{! note }}-{{#s}}x{{/s}}", &b),
            "vscp--x"
        );
        assert_eq!(render("", &b), "");
        assert!(Template::parse("plain/topic").is_literal());
        assert!(!Template::parse("a/{{guid}}").is_literal());
        assert_eq!(Template::parse("a/{{guid}}").source(), "a/{{guid}}");
    }

    #[test]
    fn escaping() {
        let mut b = base();
        b.user = "<\"x'&>".into();
        assert_eq!(render("{{user}}", &b), "&lt;&quot;x&apos;&amp;&gt;");
        assert_eq!(render("{{{user}}}", &b), "<\"x'&>");
    }
}
