//! The comma-separated string form of an event (events.md §5), used by ws1:
//! `head,class,type,obid,datetime,timestamp,GUID[,d0,d1,…]`.

use crate::codec::push_u64;
use crate::error::ParseError;
use crate::event::{DateTime, Event, MAX_DATA};
use crate::guid::Guid;
use crate::hex;
use crate::number::{read_u16, read_u32, read_u64, read_u8};

/// Number of mandatory fields, head through GUID.
const MIN_FIELDS: usize = 7;

/// Reads the string form (events.md §5.2, REC).
///
/// Numbers use the [number reader](crate::number) and are truncated to their field width as in
/// REF; GUID per [`Guid::parse`]; date per [`DateTime::parse`]; every field after the GUID is one
/// data byte. Parsing never reads the clock: an empty date stays "not set" and a zero timestamp
/// stays 0, and the server stamps both when it accepts the event.
///
/// vNext writers put a 64-bit Unix-nanosecond timestamp in the timestamp field (events.md §10).
/// A timestamp above `u32::MAX` cannot be a microsecond value, so it is taken as nanoseconds:
/// the event keeps `(ns / 1000) mod 2^32` µs, and an unset date is filled from the same instant
/// so the absolute time the sender meant is not lost.
pub fn parse_event(s: &str) -> Result<Event, ParseError> {
    let mut fields = s.split(',');
    let mut head_fields = [""; MIN_FIELDS];
    for (n, slot) in head_fields.iter_mut().enumerate() {
        *slot = fields.next().ok_or(ParseError::TooFewFields {
            min: MIN_FIELDS,
            got: n,
        })?;
    }
    let [head, class, vscp_type, obid, datetime, timestamp, guid] = head_fields;

    let mut ev = Event {
        head: read_u16("head", head)?,
        class: read_u16("class", class)?,
        vscp_type: read_u16("type", vscp_type)?,
        obid: read_u32("obid", obid)?,
        datetime: DateTime::parse(datetime)?,
        timestamp: 0,
        guid: Guid::parse(guid)?,
        data: Vec::new(),
    };
    let ts = read_u64("timestamp", timestamp)?;
    match u32::try_from(ts) {
        Ok(us) => ev.timestamp = us,
        Err(_) => apply_unix_nanos(&mut ev, ts),
    }

    for (n, field) in fields.enumerate() {
        if n == MAX_DATA {
            // Count the rest only to make the error message useful.
            let got = MAX_DATA + 1 + s.split(',').skip(MIN_FIELDS + MAX_DATA + 1).count();
            return Err(ParseError::TooMuchData { got, max: MAX_DATA });
        }
        ev.data.push(read_u8("data", field)?);
    }
    Ok(ev)
}

/// Takes a vNext Unix-nanosecond timestamp: keeps its microseconds modulo 2^32 in the
/// relative timestamp and, when the event carries no date, its UTC date and time.
pub(crate) fn apply_unix_nanos(ev: &mut Event, ns: u64) {
    ev.timestamp = (ns / 1_000) as u32;
    if ev.datetime.is_unset() {
        ev.datetime = DateTime::from_unix_secs(ns / 1_000_000_000);
    }
}

/// Appends the exact REF string form (events.md §5.1): decimal numbers, `YYYY-MM-DDTHH:MM:SSZ`
/// or an empty date field, the 47-character GUID and each data byte as `,0xHH`.
pub fn write_event(ev: &Event, out: &mut String) {
    out.reserve(96 + 5 * ev.data.len());
    push_u64(out, ev.head.into());
    out.push(',');
    push_u64(out, ev.class.into());
    out.push(',');
    push_u64(out, ev.vscp_type.into());
    out.push(',');
    push_u64(out, ev.obid.into());
    out.push(',');
    ev.datetime.write_iso(out);
    out.push(',');
    push_u64(out, ev.timestamp.into());
    out.push(',');
    ev.guid.write_to(out);
    for &b in &ev.data {
        out.push_str(",0x");
        hex::push_byte(out, b);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::testing::{e2, e3};
    use proptest::prelude::*;

    const E2S: &str = "96,10,6,17,2024-03-01T12:34:56Z,123456789,FF:FF:FF:FF:FF:FF:FF:F5:00:00:00:00:00:02:00:00,0x88,0x82,0x09,0xC4";
    const E3S: &str = "0,20,3,0,,5000,00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00";

    fn write(ev: &Event) -> String {
        let mut s = String::new();
        write_event(ev, &mut s);
        s
    }

    #[test]
    fn e1_round_trip_adds_z() {
        let ev = parse_event(
            "0,30,5,0,2000-01-01T12:33:14,0,FF:FF:FF:FF:FF:FF:FF:FE:00:26:55:CA:00:06:00:00,0x01,0x01",
        )
        .unwrap();
        assert_eq!(
            write(&ev),
            "0,30,5,0,2000-01-01T12:33:14Z,0,FF:FF:FF:FF:FF:FF:FF:FE:00:26:55:CA:00:06:00:00,0x01,0x01"
        );
    }

    #[test]
    fn e2s_e3s_exact() {
        for (ev, text) in [(e2(), E2S), (e3(), E3S)] {
            assert_eq!(write(&ev), text);
            assert_eq!(parse_event(text), Ok(ev));
        }
    }

    #[test]
    fn write_appends() {
        let mut s = String::from("E;");
        write_event(&e2(), &mut s);
        assert_eq!(s, format!("E;{E2S}"));
    }

    #[test]
    fn p1_mixed_notation() {
        let ev = parse_event("0x60,10,6,17,2024-03-01T12:34:56Z,123456789,FF:FF:FF:FF:FF:FF:FF:F5:00:00:00:00:00:02:00:00,136,0x82,9,0xC4").unwrap();
        assert_eq!(ev, e2());
    }

    #[test]
    fn p2_unset_fields_stay_zero() {
        let ev = parse_event("0,20,3,0,,0,,1,2,3").unwrap();
        assert_eq!(ev.class, 20);
        assert_eq!(ev.vscp_type, 3);
        assert!(ev.datetime.is_unset());
        assert_eq!(ev.timestamp, 0);
        assert!(ev.guid.is_zero());
        assert_eq!(ev.data, [1, 2, 3]);
    }

    #[test]
    fn p3_seven_fields() {
        let ev = parse_event("0,20,3,,,,-").unwrap();
        assert_eq!(
            ev,
            Event {
                class: 20,
                vscp_type: 3,
                ..Event::default()
            }
        );
    }

    #[test]
    fn p4_six_fields_fail() {
        assert_eq!(
            parse_event("0,20,3,0,,0"),
            Err(ParseError::TooFewFields { min: 7, got: 6 })
        );
        assert_eq!(
            parse_event(""),
            Err(ParseError::TooFewFields { min: 7, got: 1 })
        );
    }

    #[test]
    fn p5_datetime_zero() {
        let ev = parse_event("0,10,6,0,0,0,-").unwrap();
        assert!(ev.datetime.is_unset());
        assert_eq!((ev.class, ev.vscp_type), (10, 6));
    }

    #[test]
    fn fewer_guid_tokens() {
        let ev = parse_event("0,20,3,0,,0,FF:0x01:a").unwrap();
        assert_eq!(
            ev.guid.to_string(),
            "FF:01:0A:00:00:00:00:00:00:00:00:00:00:00:00:00"
        );
    }

    #[test]
    fn whitespace_and_prefixes() {
        let ev = parse_event(" 0x60 , 0XA ,0b110, 0o21 , 2024-03-01 12:34:56 ,0x75BCD15, FF:FF:FF:FF:FF:FF:FF:F5:00:00:00:00:00:02:00:00 , 0x88,0X82 , 0b1001,196").unwrap();
        assert_eq!(ev, e2());
    }

    #[test]
    fn truncation() {
        let ev = parse_event("65632,65546,6,4294967313,,0,-,0x188").unwrap();
        assert_eq!(ev.head, 0x60);
        assert_eq!(ev.class, 10);
        assert_eq!(ev.obid, 17);
        assert_eq!(ev.data, [0x88]);
    }

    #[test]
    fn garbage_numbers_are_errors() {
        for (s, field) in [
            ("x,20,3,0,,0,-", "head"),
            ("0,12abc,3,0,,0,-", "class"),
            ("0,20,-1,0,,0,-", "type"),
            ("0,20,3,0x,,0,-", "obid"),
            ("0,20,3,0,,0xZZ,-", "timestamp"),
            ("0,20,3,0,,0,-,1,zz", "data"),
            ("0,20,3,0,,0,-,1,2.5", "data"),
        ] {
            match parse_event(s) {
                Err(ParseError::BadNumber { field: f, .. }) => assert_eq!(f, field, "{s}"),
                other => panic!("{s}: {other:?}"),
            }
        }
    }

    #[test]
    fn bad_guid_and_date() {
        assert!(matches!(
            parse_event("0,20,3,0,,0,GG"),
            Err(ParseError::BadGuid(_))
        ));
        assert!(matches!(
            parse_event("0,20,3,0,now,0,-"),
            Err(ParseError::BadDateTime(_))
        ));
    }

    #[test]
    fn empty_data_field_is_a_zero_byte() {
        assert_eq!(parse_event("0,20,3,0,,0,-,").unwrap().data, [0]);
    }

    #[test]
    fn data_limit() {
        let base = "0,20,3,0,,0,-";
        let ok = format!("{base}{}", ",0xFF".repeat(MAX_DATA));
        assert_eq!(parse_event(&ok).unwrap().data, vec![0xFF; MAX_DATA]);
        let too_many = format!("{base}{}", ",1".repeat(MAX_DATA + 1));
        assert_eq!(
            parse_event(&too_many),
            Err(ParseError::TooMuchData { got: 513, max: 512 })
        );
        let way_too_many = format!("{base}{}", ",1".repeat(600));
        assert_eq!(
            parse_event(&way_too_many),
            Err(ParseError::TooMuchData { got: 600, max: 512 })
        );
    }

    #[test]
    fn vnext_nanosecond_timestamp() {
        // 2024-03-01T12:34:56.789012345Z in ns, as the vNext writer emits it with an empty date.
        let ns: u64 = 1_709_296_496_789_012_345;
        let ev = parse_event(&format!("256,20,3,0,,{ns},-")).unwrap();
        assert_eq!(ev.timestamp, ((ns / 1000) % (1 << 32)) as u32);
        assert_eq!(ev.datetime, e2().datetime);
        // An explicit date is kept.
        let ev = parse_event(&format!("256,20,3,0,2000-01-01T00:00:00,{ns},-")).unwrap();
        assert_eq!(ev.datetime.year, 2000);
        // u32::MAX itself is still microseconds.
        let ev = parse_event("0,20,3,0,,4294967295,-").unwrap();
        assert_eq!(ev.timestamp, u32::MAX);
        assert!(ev.datetime.is_unset());
    }

    pub(crate) fn arb_event() -> impl Strategy<Value = Event> {
        (
            (any::<u16>(), any::<u16>(), any::<u16>(), any::<u32>()),
            1u32..,
            (any::<u16>(), any::<[u8; 5]>()).prop_filter("date must be set", |(y, r)| {
                *y != 0 || r.iter().any(|&b| b != 0)
            }),
            any::<[u8; 16]>(),
            proptest::collection::vec(any::<u8>(), 0..=MAX_DATA),
        )
            .prop_map(
                |((head, class, vscp_type, obid), timestamp, (year, r), guid, data)| Event {
                    head,
                    class,
                    vscp_type,
                    obid,
                    timestamp,
                    datetime: DateTime {
                        year,
                        month: r[0],
                        day: r[1],
                        hour: r[2],
                        minute: r[3],
                        second: r[4],
                    },
                    guid: Guid(guid),
                    data,
                },
            )
    }

    proptest! {
        #[test]
        fn write_parse_round_trip(ev in arb_event()) {
            let s = write(&ev);
            prop_assert_eq!(parse_event(&s), Ok(ev));
        }

        #[test]
        fn parse_never_panics(s in ".*") {
            let _ = parse_event(&s);
        }

        #[test]
        fn parse_never_panics_on_comma_soup(s in "[0-9xXa-fA-F:, -]{0,200}") {
            let _ = parse_event(&s);
        }
    }
}
