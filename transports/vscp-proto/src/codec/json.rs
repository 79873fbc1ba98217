//! The JSON form of an event (events.md §6, ws2.md §5–6).
//!
//! Output is REF's legacy multi-line template byte for byte, because ws2 clients and byte-level
//! comparison tests expect it. Input accepts both the legacy `vscpXxx` keys and the vNext short
//! keys.

use simd_json::prelude::*;
use simd_json::BorrowedValue;

use crate::codec::push_u64;
use crate::codec::string::apply_unix_nanos;
use crate::error::ParseError;
use crate::event::{DateTime, Event, MAX_DATA};
use crate::guid::Guid;
use crate::number::read_u64;

/// A plain `timestamp` above this is vNext nanoseconds rather than microseconds (events.md §6.3).
const NS_THRESHOLD: u64 = 1_000_000_000_000;

/// Reads an event object (events.md §6.2 and ws2.md §5, REC).
///
/// Keys: short (`head`, `obid`, `datetime`/`dateTime`, `timestamp`, `class`, `type`, `guid`,
/// `data`) are tried first and the legacy `vscp…` keys are the fallback, as vNext readers do; a
/// key whose value has the wrong type is treated as absent so the fallback or default applies.
/// Numbers must be non-negative JSON integers (REF ignores negative and fractional values) and
/// are truncated to the field width. Unknown keys and `note`/`vscpNote` are ignored.
///
/// Time: `timestamp_ns` (number or `"0x…"` string, Unix ns) wins over `timestamp`, and a plain
/// `timestamp` above 10^12 is also nanoseconds; nanoseconds keep `(ns / 1000) mod 2^32` µs and
/// fill an unset date. A date string that cannot be read leaves the date unset (ws2.md §5 REC:
/// "empty/unparsable → now", and the server does the stamping). Nothing reads the clock here.
///
/// Errors: a non-object document, a GUID string that is not a GUID, a data array with a
/// non-number element or more than [`MAX_DATA`] elements.
pub fn parse_event(v: &BorrowedValue<'_>) -> Result<Event, ParseError> {
    if v.as_object().is_none() {
        return Err(ParseError::BadJson("event is not an object".into()));
    }
    let uint = |short: &str, legacy: &str| -> u64 {
        v.get(short)
            .and_then(|x| x.as_u64())
            .or_else(|| v.get(legacy).and_then(|x| x.as_u64()))
            .unwrap_or(0)
    };
    let string = |keys: &[&str]| -> Option<&str> {
        keys.iter().find_map(|k| v.get(*k).and_then(|x| x.as_str()))
    };

    let mut ev = Event {
        head: uint("head", "vscpHead") as u16,
        class: uint("class", "vscpClass") as u16,
        vscp_type: uint("type", "vscpType") as u16,
        obid: uint("obid", "vscpObId") as u32,
        ..Event::default()
    };

    if let Some(s) = string(&["datetime", "dateTime", "vscpDateTime"]) {
        ev.datetime = DateTime::parse(s).unwrap_or_default();
    }

    if let Some(g) = string(&["guid", "vscpGuid"]) {
        ev.guid = Guid::parse(g)?;
    }

    if let Some(data) = ["data", "vscpData"]
        .iter()
        .find_map(|k| v.get(*k).and_then(|x| x.as_array()))
    {
        if data.len() > MAX_DATA {
            return Err(ParseError::TooMuchData {
                got: data.len(),
                max: MAX_DATA,
            });
        }
        ev.data.reserve_exact(data.len());
        for x in data {
            // Any JSON number is truncated to its low byte as REF does (negative integers keep
            // their two's-complement byte, fractions are cut toward zero first).
            let b = match (x.as_u64(), x.as_i64(), x.as_f64()) {
                (Some(n), _, _) => n as u8,
                (None, Some(n), _) => n as u8,
                (None, None, Some(f)) => f as i64 as u8,
                _ => {
                    return Err(ParseError::BadJson(
                        "event data element is not a number".into(),
                    ))
                }
            };
            ev.data.push(b);
        }
    }

    let ns = v.get("timestamp_ns").and_then(|x| {
        x.as_u64()
            .or_else(|| x.as_str().and_then(|s| read_u64("timestamp_ns", s).ok()))
    });
    // 0 is "not set" in every timestamp field, not 1970-01-01.
    match ns.filter(|&ns| ns != 0) {
        Some(ns) => apply_unix_nanos(&mut ev, ns),
        None => {
            let ts = uint("timestamp", "vscpTimeStamp");
            if ts > NS_THRESHOLD {
                apply_unix_nanos(&mut ev, ts);
            } else {
                ev.timestamp = ts as u32;
            }
        }
    }
    Ok(ev)
}

/// Parses `buf` as JSON in place (simd-json rewrites escapes inside the buffer) and reads the
/// event object from it.
pub fn parse_event_text(buf: &mut [u8]) -> Result<Event, ParseError> {
    let v = simd_json::to_borrowed_value(buf).map_err(|e| ParseError::BadJson(e.to_string()))?;
    parse_event(&v)
}

/// The text before each header value in [`write_event`].
const LEADS: [&str; 7] = [
    "{\n\"vscpHead\": ",
    ",\n\"vscpObId\":  ",
    ",\n\"vscpDateTime\": \"",
    "\",\n\"vscpTimeStamp\": ",
    ",\n\"vscpClass\": ",
    ",\n\"vscpType\": ",
    ",\n\"vscpGuid\": \"",
];

/// Appends the exact REF legacy template (events.md §6.1): one key per line, two spaces after
/// the `vscpObId` colon, decimal data bytes and an always-empty `vscpNote`.
pub fn write_event(ev: &Event, out: &mut String) {
    out.reserve(230 + 4 * ev.data.len());
    crate::codec::write_header_fields(ev, &LEADS, out);
    out.push_str("\",\n\"vscpData\": [");
    if let Some((first, rest)) = ev.data.split_first() {
        push_u64(out, (*first).into());
        for &b in rest {
            out.push(',');
            push_u64(out, b.into());
        }
    }
    out.push_str("],\n\"vscpNote\": \"\"\n}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::string::tests::arb_event;
    use crate::testing::{e2, e3};
    use proptest::prelude::*;

    const E2J: &str = "{\n\"vscpHead\": 96,\n\"vscpObId\":  17,\n\"vscpDateTime\": \"2024-03-01T12:34:56Z\",\n\"vscpTimeStamp\": 123456789,\n\"vscpClass\": 10,\n\"vscpType\": 6,\n\"vscpGuid\": \"FF:FF:FF:FF:FF:FF:FF:F5:00:00:00:00:00:02:00:00\",\n\"vscpData\": [136,130,9,196],\n\"vscpNote\": \"\"\n}";
    const E3J: &str = "{\n\"vscpHead\": 0,\n\"vscpObId\":  0,\n\"vscpDateTime\": \"\",\n\"vscpTimeStamp\": 5000,\n\"vscpClass\": 20,\n\"vscpType\": 3,\n\"vscpGuid\": \"00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00\",\n\"vscpData\": [],\n\"vscpNote\": \"\"\n}";

    fn write(ev: &Event) -> String {
        let mut s = String::new();
        write_event(ev, &mut s);
        s
    }

    fn parse(s: &str) -> Result<Event, ParseError> {
        let mut buf = s.as_bytes().to_vec();
        parse_event_text(&mut buf)
    }

    fn e4() -> Event {
        Event {
            class: 20,
            vscp_type: 3,
            datetime: DateTime {
                year: 2020,
                month: 1,
                day: 27,
                hour: 20,
                minute: 47,
                second: 55,
            },
            data: vec![1, 2, 3],
            ..Event::default()
        }
    }

    #[test]
    fn e2j_e3j_exact() {
        for (ev, text) in [(e2(), E2J), (e3(), E3J)] {
            assert_eq!(write(&ev), text);
            assert_eq!(parse(text), Ok(ev));
        }
    }

    #[test]
    fn e2w2_envelope() {
        let mut s = String::from("{ \"type\" : \"EVENT\",  \"event\" :  ");
        write_event(&e2(), &mut s);
        s.push_str(" }");
        let mut buf = s.into_bytes();
        let v = simd_json::to_borrowed_value(&mut buf).unwrap();
        assert_eq!(parse_event(v.get("event").unwrap()), Ok(e2()));
    }

    #[test]
    fn e4_legacy_keys_month_correct() {
        let ev = parse(r#"{"vscpClass":20,"vscpType":3,"vscpDateTime":"2020-01-27T20:47:55Z","vscpData":[1,2,3]}"#).unwrap();
        assert_eq!(ev, e4());
        assert_eq!(ev.timestamp, 0, "parsing leaves stamping to the server");
    }

    #[test]
    fn e4_short_keys() {
        let ev = parse(r#"{"class":20,"type":3,"datetime":"2020-01-27T20:47:55Z","data":[1,2,3]}"#)
            .unwrap();
        assert_eq!(ev, e4());
        let ev = parse(r#"{"class":20,"type":3,"dateTime":"2020-01-27T20:47:55Z","data":[1,2,3]}"#)
            .unwrap();
        assert_eq!(ev, e4());
    }

    #[test]
    fn all_short_keys() {
        let ev = parse(
            r#"{"head":96,"obid":17,"datetime":"2024-03-01T12:34:56Z","timestamp":123456789,
                "class":10,"type":6,"guid":"FF:FF:FF:FF:FF:FF:FF:F5:00:00:00:00:00:02:00:00",
                "data":[136,130,9,196],"note":"hello"}"#,
        )
        .unwrap();
        assert_eq!(ev, e2());
    }

    #[test]
    fn short_key_wins() {
        let ev = parse(
            r#"{"vscpClass":1,"class":20,"type":3,"vscpType":9,"vscpData":[9],"data":[1,2,3],
                "vscpDateTime":"1999-01-01T00:00:00","datetime":"2020-01-27T20:47:55Z"}"#,
        )
        .unwrap();
        assert_eq!(ev, e4());
    }

    #[test]
    fn driver_test_client_mix() {
        // The driver's own ws2 test pages mix short keys with vscpClass/vscpType.
        let ev = parse(
            r#"{"head":0,"obid":0,"dateTime":"2020-01-27T20:47:55Z","timestamp":0,"vscpClass":20,
                "vscpType":3,"guid":"-","data":[1,2,3],"note":"x"}"#,
        )
        .unwrap();
        assert_eq!(ev, e4());
    }

    #[test]
    fn wrong_types_default() {
        let ev = parse(
            r#"{"vscpHead":-1,"vscpClass":20.5,"vscpType":"3","vscpObId":true,
                "vscpTimeStamp":-5,"vscpDateTime":17,"vscpGuid":5,"vscpData":"1,2"}"#,
        )
        .unwrap();
        assert_eq!(ev, Event::default());
        // A wrong-typed short key falls back to the legacy key.
        let ev = parse(r#"{"class":"x","vscpClass":20}"#).unwrap();
        assert_eq!(ev.class, 20);
    }

    #[test]
    fn truncation() {
        let ev =
            parse(r#"{"vscpHead":65632,"vscpObId":4294967313,"vscpData":[256,511,-1]}"#).unwrap();
        assert_eq!(ev.head, 96);
        assert_eq!(ev.obid, 17);
        assert_eq!(ev.data, [0, 255, 255]);
        let ev = parse(r#"{"vscpData":[2.5,-1.5,300.9,1e3]}"#).unwrap();
        assert_eq!(ev.data, [2, 255, 44, 232]);
    }

    #[test]
    fn unparsable_date_is_unset() {
        let ev = parse(r#"{"vscpDateTime":"now"}"#).unwrap();
        assert!(ev.datetime.is_unset());
        let ev = parse(r#"{"vscpDateTime":""}"#).unwrap();
        assert!(ev.datetime.is_unset());
    }

    #[test]
    fn guid_forms() {
        let ev = parse(r#"{"vscpGuid":"-"}"#).unwrap();
        assert!(ev.guid.is_zero());
        let ev = parse(r#"{"vscpGuid":"ff:fe"}"#).unwrap();
        assert_eq!(ev.guid.0[..2], [0xFF, 0xFE]);
        assert!(matches!(
            parse(r#"{"vscpGuid":"not a guid"}"#),
            Err(ParseError::BadGuid(_))
        ));
    }

    #[test]
    fn bad_documents() {
        for s in ["[]", "1", "\"x\"", "null", "not json", "{", ""] {
            assert!(matches!(parse(s), Err(ParseError::BadJson(_))), "{s:?}");
        }
        for s in [
            r#"{"vscpData":[1,"2"]}"#,
            r#"{"vscpData":[[1]]}"#,
            r#"{"data":[null]}"#,
        ] {
            assert!(matches!(parse(s), Err(ParseError::BadJson(_))), "{s:?}");
        }
    }

    #[test]
    fn data_limit() {
        let ok = format!("{{\"vscpData\":[{}]}}", vec!["255"; MAX_DATA].join(","));
        assert_eq!(parse(&ok).unwrap().data, vec![255; MAX_DATA]);
        let bad = format!("{{\"data\":[{}]}}", vec!["1"; MAX_DATA + 1].join(","));
        assert_eq!(
            parse(&bad),
            Err(ParseError::TooMuchData { got: 513, max: 512 })
        );
    }

    #[test]
    fn nanosecond_timestamps() {
        let ns: u64 = 1_709_296_496_789_012_345;
        let want_ts = ((ns / 1000) % (1 << 32)) as u32;
        let want_dt = e2().datetime;
        for s in [
            format!(r#"{{"timestamp_ns":"0x{ns:016x}"}}"#),
            format!(r#"{{"timestamp_ns":{ns}}}"#),
            format!(r#"{{"timestamp":{ns}}}"#),
            format!(r#"{{"timestamp_ns":{ns},"timestamp":5,"vscpTimeStamp":6}}"#),
        ] {
            let ev = parse(&s).unwrap();
            assert_eq!(ev.timestamp, want_ts, "{s}");
            assert_eq!(ev.datetime, want_dt, "{s}");
        }
        // A zero timestamp_ns is "not set", like every other timestamp.
        let ev = parse(r#"{"timestamp_ns":"0x0000000000000000","timestamp":7}"#).unwrap();
        assert_eq!(ev.timestamp, 7);
        assert!(ev.datetime.is_unset());
        // Below 10^12 a plain timestamp is microseconds.
        let ev = parse(r#"{"timestamp":999999999999}"#).unwrap();
        assert_eq!(ev.timestamp, (999_999_999_999u64 % (1 << 32)) as u32);
        assert!(ev.datetime.is_unset());
        // An explicit date is not overwritten by timestamp_ns.
        let ev = parse(&format!(
            r#"{{"timestamp_ns":{ns},"datetime":"2000-01-01T00:00:00Z"}}"#
        ))
        .unwrap();
        assert_eq!(ev.datetime.year, 2000);
    }

    proptest! {
        #[test]
        fn write_parse_round_trip(ev in arb_event()) {
            let s = write(&ev);
            prop_assert_eq!(parse(&s), Ok(ev));
        }

        #[test]
        fn parse_never_panics_on_bytes(mut bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse_event_text(&mut bytes);
        }

        #[test]
        fn parse_never_panics_on_strings(s in ".*") {
            let _ = parse(&s);
        }

        #[test]
        fn parse_never_panics_on_jsonish(
            s in r#"\{("(vscp)?(Head|Class|Type|Guid|Data|DateTime|TimeStamp|head|class|type|guid|data|datetime|timestamp|timestamp_ns)":(-?[0-9]{1,22}|"[0-9a-fA-Fx:T -]{0,50}"|\[[0-9,-]{0,40}\]|null|true|1\.5),?){0,6}\}"#
        ) {
            let _ = parse(&s);
        }
    }
}
