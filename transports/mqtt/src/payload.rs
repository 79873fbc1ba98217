//! Event ↔ MQTT payload (mqtt.md §4 step 1, §6.2 steps 1–4).
//!
//! Encoders write the exact REF bytes: the legacy JSON template (or, with the measurement
//! block, REF's compact re-serialisation with sorted keys, vectors.md M1), the one-line XML
//! form, the event string, and for binary a `0x00` marker byte followed by the frame.
//! REF builds payloads in a fixed 1024-byte buffer; there is no size limit here.

use vscp_proto::codec::{binary, json, string, xml};
use vscp_proto::Event;

use crate::measurement::{self, Measurement};

/// Payload format of a publish entry (`enumMqttMsgFormat` 0..=3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PublishFormat {
    Json,
    Xml,
    String,
    Binary,
}

impl PublishFormat {
    /// The `fmtpublish` topic variable.
    pub fn name(self) -> &'static str {
        match self {
            PublishFormat::Json => "json",
            PublishFormat::Xml => "xml",
            PublishFormat::String => "string",
            PublishFormat::Binary => "binary",
        }
    }
}

/// Payload format of a subscription; `Auto` detects it per message (mqtt.md §6.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubscribeFormat {
    Json,
    Xml,
    String,
    Binary,
    Auto,
}

/// Why a payload was not turned into an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    /// Empty payloads are ignored (mqtt.md §6.2 step 1).
    #[error("empty payload")]
    Empty,
    /// `auto` could not tell the format: not binary, JSON or XML, and fewer than six commas.
    #[error("payload format not recognised")]
    Unrecognised,
    /// A text format that is not UTF-8.
    #[error("payload is not UTF-8")]
    NotUtf8,
    /// A binary payload without the leading `0x00` marker.
    #[error("binary payload without the 0x00 marker byte")]
    NoMarker,
    #[error("JSON: {0}")]
    Json(vscp_proto::ParseError),
    #[error("XML: {0}")]
    Xml(xml::XmlError),
    #[error("string: {0}")]
    String(vscp_proto::ParseError),
    #[error("binary: {0}")]
    Binary(binary::BinaryError),
}

/// Appends the payload of `ev` in `format`. `measurement_block` is `bjsonmeasurementblock`.
pub fn encode(ev: &Event, format: PublishFormat, measurement_block: bool, out: &mut Vec<u8>) {
    match format {
        PublishFormat::Json => {
            let m = if measurement_block {
                measurement::decode(ev)
            } else {
                None
            };
            let mut s = String::with_capacity(256 + 4 * ev.data.len());
            match m {
                Some(m) => write_json_with_measurement(ev, &m, &mut s),
                None => json::write_event(ev, &mut s),
            }
            append(out, s);
        }
        PublishFormat::Xml => {
            let mut s = String::with_capacity(256 + 5 * ev.data.len());
            xml::write_event(ev, &mut s);
            append(out, s);
        }
        PublishFormat::String => {
            let mut s = String::with_capacity(96 + 5 * ev.data.len());
            string::write_event(ev, &mut s);
            append(out, s);
        }
        PublishFormat::Binary => {
            out.push(0x00);
            binary::write_frame(ev, out);
        }
    }
}

/// Appends `s` to `out`; into an empty `out` it moves, so the caller can turn `out` into
/// `Bytes` with no copy at all.
fn append(out: &mut Vec<u8>, s: String) {
    if out.is_empty() {
        *out = s.into_bytes();
    } else {
        out.extend_from_slice(s.as_bytes());
    }
}

/// REF parses its JSON text, adds `measurement` and dumps the document compactly; nlohmann's
/// default object keeps keys sorted, so the output is the fixed order below (vectors.md M1).
/// Written directly rather than through `serde_json::Map`, whose key order depends on a
/// crate feature that any other crate in the build can switch on.
fn write_json_with_measurement(ev: &Event, m: &Measurement, out: &mut String) {
    use std::fmt::Write as _;
    // serde_json formats doubles like nlohmann (shortest round trip, `25.0`) and writes
    // non-finite values as null, as nlohmann does.
    let value = serde_json::Value::from(m.value).to_string();
    let _ = write!(
        out,
        "{{\"measurement\":{{\"sensorindex\":{},\"subzone\":{},\"unit\":{},\"value\":{},\"zone\":{}}},\"vscpClass\":{},\"vscpData\":[",
        m.sensor_index, m.subzone, m.unit, value, m.zone, ev.class
    );
    for (i, b) in ev.data.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{b}");
    }
    out.push_str("],\"vscpDateTime\":\"");
    ev.datetime.write_iso(out);
    out.push_str("\",\"vscpGuid\":\"");
    ev.guid.write_to(out);
    let _ = write!(
        out,
        "\",\"vscpHead\":{},\"vscpNote\":\"\",\"vscpObId\":{},\"vscpTimeStamp\":{},\"vscpType\":{}}}",
        ev.head, ev.obid, ev.timestamp, ev.vscp_type
    );
}

/// The format `auto` picks for `payload` (mqtt.md §6.2 step 3, REC: leading whitespace is
/// skipped for the `{` and `<` tests). `None`: the message is to be ignored.
pub fn detect(payload: &[u8]) -> Option<PublishFormat> {
    if *payload.first()? == 0x00 {
        return Some(PublishFormat::Binary);
    }
    match payload.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => Some(PublishFormat::Json),
        Some(b'<') => Some(PublishFormat::Xml),
        _ if payload.iter().filter(|&&b| b == b',').count() >= 6 => Some(PublishFormat::String),
        _ => None,
    }
}

/// Reads an event from a payload in `format` (`Auto` detects it). Dates and timestamps the
/// payload leaves unset stay unset; the bridge stamps them.
pub fn decode(payload: &[u8], format: SubscribeFormat) -> Result<Event, PayloadError> {
    if payload.is_empty() {
        return Err(PayloadError::Empty);
    }
    let format = match format {
        SubscribeFormat::Json => PublishFormat::Json,
        SubscribeFormat::Xml => PublishFormat::Xml,
        SubscribeFormat::String => PublishFormat::String,
        SubscribeFormat::Binary => PublishFormat::Binary,
        SubscribeFormat::Auto => detect(payload).ok_or(PayloadError::Unrecognised)?,
    };
    let text = || std::str::from_utf8(payload).map_err(|_| PayloadError::NotUtf8);
    match format {
        PublishFormat::Json => {
            // simd-json parses in place, so it needs its own copy.
            let mut buf = payload.to_vec();
            json::parse_event_text(&mut buf).map_err(PayloadError::Json)
        }
        PublishFormat::Xml => xml::parse_event(text()?).map_err(PayloadError::Xml),
        PublishFormat::String => {
            string::parse_event(text()?.trim_end()).map_err(PayloadError::String)
        }
        PublishFormat::Binary => match payload.split_first() {
            Some((0x00, frame)) => binary::parse_frame(frame).map_err(PayloadError::Binary),
            _ => Err(PayloadError::NoMarker),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use vscp_proto::testing::e2;

    fn enc(ev: &Event, f: PublishFormat, block: bool) -> Vec<u8> {
        let mut v = Vec::new();
        encode(ev, f, block, &mut v);
        v
    }

    /// vectors.md M1, byte for byte.
    const M1: &str = r#"{"measurement":{"sensorindex":0,"subzone":0,"unit":1,"value":25.0,"zone":0},"vscpClass":10,"vscpData":[136,130,9,196],"vscpDateTime":"2024-03-01T12:34:56Z","vscpGuid":"FF:FF:FF:FF:FF:FF:FF:F5:00:00:00:00:00:02:00:00","vscpHead":96,"vscpNote":"","vscpObId":17,"vscpTimeStamp":123456789,"vscpType":6}"#;
    /// vectors.md E2j.
    const E2J: &str = "{\n\"vscpHead\": 96,\n\"vscpObId\":  17,\n\"vscpDateTime\": \"2024-03-01T12:34:56Z\",\n\"vscpTimeStamp\": 123456789,\n\"vscpClass\": 10,\n\"vscpType\": 6,\n\"vscpGuid\": \"FF:FF:FF:FF:FF:FF:FF:F5:00:00:00:00:00:02:00:00\",\n\"vscpData\": [136,130,9,196],\n\"vscpNote\": \"\"\n}";

    #[test]
    fn m1_exact() {
        assert_eq!(
            String::from_utf8(enc(&e2(), PublishFormat::Json, true)).unwrap(),
            M1
        );
        // Same document as serde_json's sorted re-serialisation of the plain JSON plus block.
        let mut v: serde_json::Value = serde_json::from_str(E2J).unwrap();
        v["measurement"] =
            serde_json::json!({"value":25.0,"unit":1,"sensorindex":0,"zone":0,"subzone":0});
        let reparsed: serde_json::Value = serde_json::from_str(M1).unwrap();
        assert_eq!(v, reparsed);
    }

    #[test]
    fn json_without_block() {
        assert_eq!(enc(&e2(), PublishFormat::Json, false), E2J.as_bytes());
        // Not a measurement (class 20) or not decodable: the plain template.
        let mut ev = e2();
        ev.class = 20;
        assert!(enc(&ev, PublishFormat::Json, true).starts_with(b"{\n\"vscpHead\""));
        let mut ev = e2();
        ev.data = vec![0xE0];
        assert!(enc(&ev, PublishFormat::Json, true).starts_with(b"{\n\"vscpHead\""));
    }

    #[test]
    fn m3_block_and_negative_values() {
        let ev = Event {
            class: 1060,
            data: vec![0x01, 0x02, 0x03, 0x01, 0x40, 0x35, 0x80, 0, 0, 0, 0, 0],
            ..Event::default()
        };
        let s = String::from_utf8(enc(&ev, PublishFormat::Json, true)).unwrap();
        assert!(
            s.starts_with(r#"{"measurement":{"sensorindex":1,"subzone":3,"unit":1,"value":21.5,"zone":2},"vscpClass":1060,"#),
            "{s}"
        );
        assert!(s.contains(r#""vscpDateTime":"""#), "{s}");
        let ev = Event {
            class: 10,
            data: vec![0x60, 0xFF, 0x38],
            ..Event::default()
        };
        let s = String::from_utf8(enc(&ev, PublishFormat::Json, true)).unwrap();
        assert!(s.contains(r#""value":-200.0"#), "{s}");
        serde_json::from_str::<serde_json::Value>(&s).unwrap();
    }

    #[test]
    fn xml_string_binary_exact() {
        assert_eq!(
            String::from_utf8(enc(&e2(), PublishFormat::Xml, true)).unwrap(),
            "<event vscpHead=\"96\" vscpObId=\"17\" vscpDateTime=\"2024-03-01T12:34:56Z\" vscpTimeStamp=\"123456789\" vscpClass=\"10\" vscpType=\"6\" vscpGuid=\"FF:FF:FF:FF:FF:FF:FF:F5:00:00:00:00:00:02:00:00\" vscpData=\"0x88,0x82,0x09,0xC4\" />"
        );
        assert_eq!(
            String::from_utf8(enc(&e2(), PublishFormat::String, true)).unwrap(),
            "96,10,6,17,2024-03-01T12:34:56Z,123456789,FF:FF:FF:FF:FF:FF:FF:F5:00:00:00:00:00:02:00:00,0x88,0x82,0x09,0xC4"
        );
        // vectors.md B: marker + 42-byte frame.
        let b = enc(&e2(), PublishFormat::Binary, true);
        let want: Vec<u8> = [
            "00",
            "0060",
            "075BCD15",
            "07E803010C2238",
            "000A",
            "0006",
            "FFFFFFFFFFFFFFF50000000000020000",
            "0004",
            "888209C4",
            "66D4",
        ]
        .concat()
        .as_bytes()
        .chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
        .collect();
        let mut with_marker = vec![0u8];
        with_marker.extend_from_slice(&want);
        assert_eq!(b, with_marker);
        assert_eq!(b.len(), 43);
    }

    #[test]
    fn decode_every_format_explicit_and_auto() {
        let ev = e2();
        for f in [
            PublishFormat::Json,
            PublishFormat::Xml,
            PublishFormat::String,
            PublishFormat::Binary,
        ] {
            let want = if f == PublishFormat::Binary {
                Event {
                    obid: 0,
                    ..ev.clone()
                }
            } else {
                ev.clone()
            };
            for block in [false, true] {
                let p = enc(&ev, f, block);
                assert_eq!(detect(&p), Some(f));
                let explicit = match f {
                    PublishFormat::Json => SubscribeFormat::Json,
                    PublishFormat::Xml => SubscribeFormat::Xml,
                    PublishFormat::String => SubscribeFormat::String,
                    PublishFormat::Binary => SubscribeFormat::Binary,
                };
                assert_eq!(decode(&p, explicit), Ok(want.clone()), "{f:?}");
                assert_eq!(decode(&p, SubscribeFormat::Auto), Ok(want.clone()), "{f:?}");
            }
        }
    }

    #[test]
    fn auto_detection_rules() {
        assert_eq!(detect(b""), None);
        assert_eq!(detect(b"\x00anything"), Some(PublishFormat::Binary));
        assert_eq!(detect(b"  \n{\"a\":1}"), Some(PublishFormat::Json));
        assert_eq!(detect(b"\t<event/>"), Some(PublishFormat::Xml));
        assert_eq!(detect(b"0,20,3,0,,0,-"), Some(PublishFormat::String));
        assert_eq!(detect(b"0,20,3,0,,0"), None, "five commas");
        assert_eq!(detect(b"hello"), None);
        assert_eq!(decode(b"", SubscribeFormat::Auto), Err(PayloadError::Empty));
        assert_eq!(
            decode(b"hello", SubscribeFormat::Auto),
            Err(PayloadError::Unrecognised)
        );
    }

    #[test]
    fn decode_errors() {
        assert!(matches!(
            decode(b"{", SubscribeFormat::Auto),
            Err(PayloadError::Json(_))
        ));
        assert!(matches!(
            decode(b"<x/>", SubscribeFormat::Auto),
            Err(PayloadError::Xml(_))
        ));
        assert!(matches!(
            decode(b"a,b,c,d,e,f,g", SubscribeFormat::Auto),
            Err(PayloadError::String(_))
        ));
        assert!(matches!(
            decode(b"\x00\x01", SubscribeFormat::Auto),
            Err(PayloadError::Binary(_))
        ));
        assert_eq!(
            decode(b"\x01abc", SubscribeFormat::Binary),
            Err(PayloadError::NoMarker)
        );
        assert_eq!(
            decode(b"\xff,,,,,,", SubscribeFormat::String),
            Err(PayloadError::NotUtf8)
        );
        // A string payload with a trailing newline (mosquitto_pub -l style) is fine.
        assert_eq!(
            decode(b"0,20,3,0,,0,-\n", SubscribeFormat::Auto)
                .unwrap()
                .class,
            20
        );
    }

    #[test]
    fn json_input_variants() {
        // vectors.md E4 (legacy keys) and the short-key variant; the month is not shifted.
        for p in [
            r#"{"vscpClass":20,"vscpType":3,"vscpDateTime":"2020-01-27T20:47:55Z","vscpData":[1,2,3]}"#,
            r#"{"class":20,"type":3,"datetime":"2020-01-27T20:47:55Z","data":[1,2,3]}"#,
        ] {
            let ev = decode(p.as_bytes(), SubscribeFormat::Auto).unwrap();
            assert_eq!((ev.class, ev.vscp_type, ev.datetime.month), (20, 3, 1));
            assert_eq!(ev.data, [1, 2, 3]);
        }
        // A bad date is left unset (the bridge then stamps "now").
        let ev = decode(
            br#"{"vscpClass":1,"vscpDateTime":"x"}"#,
            SubscribeFormat::Json,
        )
        .unwrap();
        assert!(ev.datetime.is_unset());
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            for f in [SubscribeFormat::Auto, SubscribeFormat::Json, SubscribeFormat::Xml,
                      SubscribeFormat::String, SubscribeFormat::Binary] {
                let _ = decode(&bytes, f);
            }
        }
    }
}
