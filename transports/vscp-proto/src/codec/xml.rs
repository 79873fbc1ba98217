//! The XML form of an event (events.md §7; MQTT "xml" payloads, mqtt.md §4).
//!
//! Output is REF's one-line template byte for byte:
//! `<event vscpHead="96" … vscpData="0x88,0x82,0x09,0xC4" />`.
//!
//! Input is a deliberately small reader, not a general XML parser: the payload is one `event`
//! element whose attributes carry the fields, optionally preceded by an XML declaration,
//! comments and whitespace. Attributes are read by name (legacy `vscpXxx` names and the vNext
//! short names, short names first as in the JSON reader); child content and anything after
//! the element are ignored, which is what REF's expat-based reader effectively does.

use crate::codec::string::apply_unix_nanos;
use crate::error::ParseError;
use crate::event::{DateTime, Event, MAX_DATA};
use crate::guid::Guid;
use crate::number::{read_u16, read_u32, read_u64, read_u8};

/// Why an XML payload could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    /// The text is not one `<event …>` element with well-formed attributes.
    #[error("invalid XML event: {0}")]
    Syntax(&'static str),
    /// An attribute value could not be read (number, GUID, date or data).
    #[error("invalid XML event attribute: {0}")]
    Field(#[from] ParseError),
}

/// The text before each header value in [`write_event`].
const LEADS: [&str; 7] = [
    "<event vscpHead=\"",
    "\" vscpObId=\"",
    "\" vscpDateTime=\"",
    "\" vscpTimeStamp=\"",
    "\" vscpClass=\"",
    "\" vscpType=\"",
    "\" vscpGuid=\"",
];

/// Appends the exact REF XML form (events.md §7): decimal numbers, the ISO date or an empty
/// value, the colon GUID and `0x%02X` data bytes joined by commas.
pub fn write_event(ev: &Event, out: &mut String) {
    out.reserve(250 + 5 * ev.data.len());
    crate::codec::write_header_fields(ev, &LEADS, out);
    out.push_str("\" vscpData=\"");
    for (i, &b) in ev.data.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("0x");
        crate::hex::push_byte(out, b);
    }
    out.push_str("\" />");
}

/// Reads an XML event (events.md §7, REC).
///
/// Numbers use the number reader (decimal, `0x`, `0o`, `0b`); a missing date or timestamp is
/// left unset (0) for the caller to stamp, as the other readers do; a plain timestamp above
/// `u32::MAX` is vNext nanoseconds. Unlike REF the month is stored as written (no +1).
pub fn parse_event(text: &str) -> Result<Event, XmlError> {
    let attrs = event_attributes(text)?;
    let get = |short: &str, legacy: &str| -> Option<String> {
        attrs
            .iter()
            .find(|(k, _)| *k == short)
            .or_else(|| attrs.iter().find(|(k, _)| *k == legacy))
            .map(|(_, v)| unescape(v))
    };
    let mut ev = Event::default();
    if let Some(v) = get("head", "vscpHead") {
        ev.head = read_u16("head", &v)?;
    }
    if let Some(v) = get("obid", "vscpObId") {
        ev.obid = read_u32("obid", &v)?;
    }
    if let Some(v) = get("class", "vscpClass") {
        ev.class = read_u16("class", &v)?;
    }
    if let Some(v) = get("type", "vscpType") {
        ev.vscp_type = read_u16("type", &v)?;
    }
    if let Some(v) = get("datetime", "vscpDateTime") {
        ev.datetime = DateTime::parse(&v)?;
    }
    if let Some(v) = get("guid", "vscpGuid") {
        ev.guid = Guid::parse(&v)?;
    }
    if let Some(v) = get("timestamp", "vscpTimeStamp") {
        let ts = read_u64("timestamp", &v)?;
        match u32::try_from(ts) {
            Ok(us) => ev.timestamp = us,
            Err(_) => apply_unix_nanos(&mut ev, ts),
        }
    }
    if let Some(v) = get("data", "vscpData") {
        if !v.trim().is_empty() {
            for (n, field) in v.split(',').enumerate() {
                if n == MAX_DATA {
                    return Err(ParseError::TooMuchData {
                        got: v.split(',').count(),
                        max: MAX_DATA,
                    }
                    .into());
                }
                ev.data.push(read_u8("data", field)?);
            }
        }
    }
    Ok(ev)
}

/// The attributes of the first element, which must be `event`.
fn event_attributes(text: &str) -> Result<Vec<(&str, &str)>, XmlError> {
    let mut rest = skip_prolog(text)?;
    rest = rest
        .strip_prefix('<')
        .ok_or(XmlError::Syntax("expected '<'"))?;
    let name_end = rest
        .find(|c: char| c.is_whitespace() || c == '/' || c == '>')
        .ok_or(XmlError::Syntax("unterminated element"))?;
    if &rest[..name_end] != "event" {
        return Err(XmlError::Syntax("the element is not <event>"));
    }
    rest = &rest[name_end..];
    let mut attrs = Vec::with_capacity(8);
    loop {
        rest = rest.trim_start();
        if rest.starts_with("/>") || rest.starts_with('>') {
            return Ok(attrs);
        }
        let eq = rest
            .find('=')
            .ok_or(XmlError::Syntax("attribute without a value"))?;
        let name = rest[..eq].trim_end();
        if name.is_empty() || name.contains(|c: char| c.is_whitespace() || c == '<' || c == '>') {
            return Err(XmlError::Syntax("bad attribute name"));
        }
        rest = rest[eq + 1..].trim_start();
        let quote = match rest.chars().next() {
            Some(q @ ('"' | '\'')) => q,
            _ => return Err(XmlError::Syntax("attribute value is not quoted")),
        };
        rest = &rest[1..];
        let end = rest
            .find(quote)
            .ok_or(XmlError::Syntax("unterminated attribute value"))?;
        if rest[..end].contains('<') {
            return Err(XmlError::Syntax("'<' in an attribute value"));
        }
        attrs.push((name, &rest[..end]));
        rest = &rest[end + 1..];
    }
}

/// Skips whitespace, an XML declaration and comments before the root element.
fn skip_prolog(mut s: &str) -> Result<&str, XmlError> {
    loop {
        s = s.trim_start_matches(|c: char| c.is_whitespace() || c == '\u{feff}');
        if let Some(r) = s.strip_prefix("<?") {
            let end = r
                .find("?>")
                .ok_or(XmlError::Syntax("unterminated declaration"))?;
            s = &r[end + 2..];
        } else if let Some(r) = s.strip_prefix("<!--") {
            let end = r
                .find("-->")
                .ok_or(XmlError::Syntax("unterminated comment"))?;
            s = &r[end + 3..];
        } else {
            return Ok(s);
        }
    }
}

/// Resolves the five predefined entities and numeric character references; anything else is
/// kept as written (the values we read are numbers, GUIDs and dates, so this only matters for
/// robustness).
fn unescape(v: &str) -> String {
    if !v.contains('&') {
        return v.to_owned();
    }
    let mut out = String::with_capacity(v.len());
    let mut rest = v;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let Some(semi) = rest.find(';') else {
            break;
        };
        let entity = &rest[1..semi];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::string::tests::arb_event;
    use crate::testing::e2;
    use proptest::prelude::*;

    /// vectors.md E2x.
    const E2X: &str = "<event vscpHead=\"96\" vscpObId=\"17\" vscpDateTime=\"2024-03-01T12:34:56Z\" vscpTimeStamp=\"123456789\" vscpClass=\"10\" vscpType=\"6\" vscpGuid=\"FF:FF:FF:FF:FF:FF:FF:F5:00:00:00:00:00:02:00:00\" vscpData=\"0x88,0x82,0x09,0xC4\" />";

    fn write(ev: &Event) -> String {
        let mut s = String::new();
        write_event(ev, &mut s);
        s
    }

    #[test]
    fn e2x_exact() {
        assert_eq!(write(&e2()), E2X);
        assert_eq!(parse_event(E2X), Ok(e2()));
    }

    #[test]
    fn empty_date_and_data() {
        let ev = Event {
            class: 20,
            vscp_type: 3,
            timestamp: 5000,
            ..Event::default()
        };
        let s = write(&ev);
        assert_eq!(
            s,
            "<event vscpHead=\"0\" vscpObId=\"0\" vscpDateTime=\"\" vscpTimeStamp=\"5000\" vscpClass=\"20\" vscpType=\"3\" vscpGuid=\"00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00\" vscpData=\"\" />"
        );
        assert_eq!(parse_event(&s), Ok(ev));
    }

    #[test]
    fn declaration_comments_whitespace_and_short_names() {
        let s = "\n <?xml version=\"1.0\"?><!-- x --> <event head='96' obid='17' \
                 datetime='2024-03-01T12:34:56Z' timestamp='123456789' class='10' type='6'\n\
                 guid='FF:FF:FF:FF:FF:FF:FF:F5:00:00:00:00:00:02:00:00' data='136,0x82,9,0xC4'></event>";
        assert_eq!(parse_event(s), Ok(e2()));
    }

    #[test]
    fn missing_attributes_stay_unset() {
        let ev = parse_event("<event vscpClass=\"20\" vscpType=\"3\"/>").unwrap();
        assert_eq!((ev.class, ev.vscp_type), (20, 3));
        assert!(ev.datetime.is_unset());
        assert_eq!(ev.timestamp, 0);
        assert!(ev.guid.is_zero());
        assert!(ev.data.is_empty());
    }

    #[test]
    fn month_is_not_shifted() {
        let ev = parse_event("<event vscpDateTime=\"2020-01-27T20:47:55Z\" />").unwrap();
        assert_eq!(ev.datetime.month, 1);
    }

    #[test]
    fn entities() {
        let ev = parse_event("<event vscpClass=\"&#49;0\" vscpType=\"&#x36;\" />").unwrap();
        assert_eq!((ev.class, ev.vscp_type), (10, 6));
        assert_eq!(
            unescape("a&amp;b&lt;&gt;&quot;&apos;&bogus;&"),
            "a&b<>\"'&bogus;&"
        );
    }

    #[test]
    fn errors() {
        for s in [
            "",
            "event",
            "<evnt vscpClass=\"1\"/>",
            "<event vscpClass=1/>",
            "<event vscpClass=\"1/>",
            "<event vscpClass/>",
            "<?xml ",
            "<!-- ",
            "<event",
        ] {
            assert!(matches!(parse_event(s), Err(XmlError::Syntax(_))), "{s:?}");
        }
        assert!(matches!(
            parse_event("<event vscpClass=\"x\"/>"),
            Err(XmlError::Field(ParseError::BadNumber { .. }))
        ));
        assert!(matches!(
            parse_event("<event vscpGuid=\"zz\"/>"),
            Err(XmlError::Field(ParseError::BadGuid(_)))
        ));
        let many = format!(
            "<event vscpData=\"{}\"/>",
            vec!["1"; MAX_DATA + 1].join(",")
        );
        assert!(matches!(
            parse_event(&many),
            Err(XmlError::Field(ParseError::TooMuchData { got: 513, .. }))
        ));
    }

    proptest! {
        #[test]
        fn write_parse_round_trip(ev in arb_event()) {
            prop_assert_eq!(parse_event(&write(&ev)), Ok(ev));
        }

        #[test]
        fn parse_never_panics(s in ".*") {
            let _ = parse_event(&s);
        }

        #[test]
        fn parse_never_panics_on_xmlish(s in "[<>?!=/\"' a-zA-Z0-9&#;:,-]{0,120}") {
            let _ = parse_event(&s);
        }
    }
}
