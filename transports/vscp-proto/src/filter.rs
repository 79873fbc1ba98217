//! Filter/mask model and matching rule (events.md §8).

use simd_json::prelude::*;
use simd_json::BorrowedValue;

use crate::codec::push_u64;
use crate::error::ParseError;
use crate::event::Event;
use crate::guid::Guid;
use crate::number::{read_u16, read_u64, read_u8};

/// A receive filter. A mask bit 1 means "this bit must equal the filter bit", 0 means
/// "don't care"; the all-zero value (the default) passes everything. Priorities are the 0..7
/// value, not head bits.
///
/// `repr(C)`, fields in this order: the layout is the 15.x ABI's `vscpEventFilter` (42 bytes,
/// align 2), which the vscpd driver declares as this type (its layout test pins it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[repr(C)]
pub struct Filter {
    pub filter_priority: u8,
    pub mask_priority: u8,
    pub filter_class: u16,
    pub mask_class: u16,
    pub filter_type: u16,
    pub mask_type: u16,
    pub filter_guid: Guid,
    pub mask_guid: Guid,
}

impl Filter {
    /// The all-zero filter: every mask bit is "don't care", so every event passes.
    pub const ALL_PASS: Filter = Filter {
        filter_priority: 0,
        mask_priority: 0,
        filter_class: 0,
        mask_class: 0,
        filter_type: 0,
        mask_type: 0,
        filter_guid: Guid::ZERO,
        mask_guid: Guid::ZERO,
    };

    /// True when `ev` passes: `((value ^ filter) & mask) == 0` for class, type, GUID and the
    /// 3-bit priority `(head >> 5) & 7` (REF `vscp_doLevel2Filter`). All eight priority bits
    /// take part as in REF, so a mask bit above bit 2 with a set filter bit never matches.
    #[inline]
    pub fn matches(&self, ev: &Event) -> bool {
        let prio = ((ev.head >> 5) & 7) as u8;
        ((ev.class ^ self.filter_class) & self.mask_class) == 0
            && ((ev.vscp_type ^ self.filter_type) & self.mask_type) == 0
            && ((prio ^ self.filter_priority) & self.mask_priority) == 0
            // One 128-bit operation instead of sixteen byte compares.
            && ((ev.guid.as_u128() ^ self.filter_guid.as_u128()) & self.mask_guid.as_u128()) == 0
    }

    /// Reads one half of a ws1 `SETFILTER`: `priority,class,type,GUID` (events.md §8.3).
    ///
    /// Numbers use the [number reader](crate::number) and are truncated to their width; missing
    /// trailing fields are 0 and `-`/empty is the zero GUID. Fields past the fourth are ignored,
    /// as REF's `rx-filter` reader ignores them.
    pub fn parse_filter_half(s: &str) -> Result<(u8, u16, u16, Guid), ParseError> {
        let mut it = s.splitn(5, ',');
        let mut next = || it.next().unwrap_or("");
        let priority = read_u8("priority", next())?;
        let class = read_u16("class", next())?;
        let vscp_type = read_u16("type", next())?;
        let guid = Guid::parse(next())?;
        Ok((priority, class, vscp_type, guid))
    }

    /// Builds a filter from the two ws1 `SETFILTER` arguments. Both halves start from zero,
    /// so anything not given is "don't care".
    pub fn from_strings(filter: &str, mask: &str) -> Result<Filter, ParseError> {
        let (filter_priority, filter_class, filter_type, filter_guid) =
            Self::parse_filter_half(filter)?;
        let (mask_priority, mask_class, mask_type, mask_guid) = Self::parse_filter_half(mask)?;
        Ok(Filter {
            filter_priority,
            mask_priority,
            filter_class,
            mask_class,
            filter_type,
            mask_type,
            filter_guid,
            mask_guid,
        })
    }

    /// Appends the filter half in the AUTH1 form `priority,class,type,GUID`.
    pub fn write_filter_half(&self, out: &mut String) {
        write_half(
            out,
            self.filter_priority,
            self.filter_class,
            self.filter_type,
            &self.filter_guid,
        );
    }

    /// Appends the mask half in the AUTH1 form `priority,class,type,GUID`.
    pub fn write_mask_half(&self, out: &mut String) {
        write_half(
            out,
            self.mask_priority,
            self.mask_class,
            self.mask_type,
            &self.mask_guid,
        );
    }

    /// Reads the `args` object of a ws2 `SETFILTER` (ws2.md §4, REC).
    ///
    /// Every key is optional and an absent (or `null`) key is 0, so ws1 and ws2 both replace the
    /// whole filter; REF ws2 kept the previous value instead. Numeric keys take a JSON integer
    /// or a numeric string (number reader), truncated to the field width; GUID keys take a GUID
    /// string. `args: null` is the all-pass filter.
    ///
    /// Errors (ws2 "Syntax error."): `args` that is neither an object nor null, a numeric key
    /// holding a bool, array, object, negative or fractional number, or a GUID key that is not
    /// a string; plus the usual number and GUID text errors.
    pub fn from_ws2_args(args: &BorrowedValue<'_>) -> Result<Filter, ParseError> {
        if args.is_null() {
            return Ok(Filter::ALL_PASS);
        }
        if args.as_object().is_none() {
            return Err(ParseError::BadJson(
                "SETFILTER args is not an object".into(),
            ));
        }
        let num = |key: &'static str| -> Result<u64, ParseError> {
            match args.get(key) {
                None => Ok(0),
                Some(v) if v.is_null() => Ok(0),
                Some(v) => match (v.as_u64(), v.as_str()) {
                    (Some(n), _) => Ok(n),
                    (None, Some(s)) => read_u64(key, s),
                    _ => Err(ParseError::BadJson(format!(
                        "SETFILTER {key} is not a non-negative integer"
                    ))),
                },
            }
        };
        let guid = |key: &'static str| -> Result<Guid, ParseError> {
            match args.get(key) {
                None => Ok(Guid::ZERO),
                Some(v) if v.is_null() => Ok(Guid::ZERO),
                Some(v) => match v.as_str() {
                    Some(s) => Guid::parse(s),
                    None => Err(ParseError::BadJson(format!(
                        "SETFILTER {key} is not a string"
                    ))),
                },
            }
        };
        Ok(Filter {
            filter_priority: num("filter_priority")? as u8,
            mask_priority: num("mask_priority")? as u8,
            filter_class: num("filter_class")? as u16,
            mask_class: num("mask_class")? as u16,
            filter_type: num("filter_type")? as u16,
            mask_type: num("mask_type")? as u16,
            filter_guid: guid("filter_guid")?,
            mask_guid: guid("mask_guid")?,
        })
    }
}

fn write_half(out: &mut String, priority: u8, class: u16, vscp_type: u16, guid: &Guid) {
    push_u64(out, priority.into());
    out.push(',');
    push_u64(out, class.into());
    out.push(',');
    push_u64(out, vscp_type.into());
    out.push(',');
    guid.write_to(out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ev(head: u16, class: u16, vscp_type: u16, guid: &str) -> Event {
        Event {
            head,
            class,
            vscp_type,
            guid: Guid::parse(guid).unwrap(),
            ..Event::default()
        }
    }

    fn f(filter: &str, mask: &str) -> Filter {
        Filter::from_strings(filter, mask).unwrap()
    }

    const G1: &str = "00:00:00:00:00:00:00:00:00:00:00:00:00:02:00:01";
    const G2: &str = "00:00:00:00:00:00:00:00:00:00:00:00:00:02:00:02";

    #[test]
    fn f1_all_pass() {
        let flt = f("0,0,0,-", "0,0,0,-");
        assert_eq!(flt, Filter::ALL_PASS);
        assert_eq!(Filter::default(), Filter::ALL_PASS);
        assert!(flt.matches(&ev(0xE0, 1024, 65535, G1)));
        assert!(flt.matches(&Event::default()));
    }

    #[test]
    fn f2_f3_class() {
        let flt = f("0,10,0,-", "0,0xFFFF,0,-");
        assert!(flt.matches(&ev(0, 10, 6, "-")));
        assert!(!flt.matches(&ev(0, 20, 3, "-")));
    }

    #[test]
    fn f4_f5_class_and_type() {
        let flt = f("0,10,6,-", "0,0xFFFF,0xFFFF,-");
        assert!(flt.matches(&ev(0, 10, 6, "-")));
        assert!(!flt.matches(&ev(0, 10, 5, "-")));
    }

    #[test]
    fn f6_f7_guid() {
        let flt = f(
            "0,0,0,00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:01",
            "0,0,0,00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:FF",
        );
        assert!(flt.matches(&ev(0, 10, 6, G1)));
        assert!(!flt.matches(&ev(0, 10, 6, G2)));
    }

    #[test]
    fn f8_f9_priority() {
        let flt = f("3,0,0,-", "7,0,0,-");
        assert!(flt.matches(&ev(0x60, 10, 6, "-")));
        assert!(!flt.matches(&ev(0xE0, 10, 6, "-")));
    }

    #[test]
    fn f10_f11_class_bits() {
        let flt = f("0,0x200,0,-", "0,0xFE00,0,-");
        assert!(flt.matches(&ev(0, 522, 0, "-")));
        assert!(!flt.matches(&ev(0, 10, 0, "-")));
    }

    #[test]
    fn f12_zero_mask_is_dont_care() {
        let flt = f("0,0xFFFF,0xFFFF,-", "0,0,0,-");
        assert!(flt.matches(&ev(0, 1, 1, "-")));
    }

    #[test]
    fn f4_ws2_form() {
        let mut msg = br#"{"type":"CMD","command":"SETFILTER","args":{"filter_priority":0,"filter_class":10,"filter_type":6,"filter_guid":"00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00","mask_priority":0,"mask_class":65535,"mask_type":65535,"mask_guid":"00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00"}}"#.to_vec();
        let v = simd_json::to_borrowed_value(&mut msg).unwrap();
        let flt = Filter::from_ws2_args(v.get("args").unwrap()).unwrap();
        assert_eq!(flt, f("0,10,6,-", "0,0xFFFF,0xFFFF,-"));
        assert!(flt.matches(&ev(0, 10, 6, "-")));
        assert!(!flt.matches(&ev(0, 10, 5, "-")));
    }

    fn ws2(s: &str) -> Result<Filter, ParseError> {
        let mut buf = s.as_bytes().to_vec();
        let v = simd_json::to_borrowed_value(&mut buf).unwrap();
        Filter::from_ws2_args(&v)
    }

    #[test]
    fn ws2_defaults_and_strings() {
        assert_eq!(ws2("null"), Ok(Filter::ALL_PASS));
        assert_eq!(ws2("{}"), Ok(Filter::ALL_PASS));
        assert_eq!(
            ws2(r#"{"filter_class":null,"mask_guid":null}"#),
            Ok(Filter::ALL_PASS)
        );
        let flt = ws2(
            r#"{"filter_class":"10","mask_class":"0xFFFF","mask_priority":" 7 ","filter_priority":3,
                "filter_guid":"-","mask_guid":"FF:FF"}"#,
        )
        .unwrap();
        assert_eq!(flt.filter_class, 10);
        assert_eq!(flt.mask_class, 0xFFFF);
        assert_eq!((flt.filter_priority, flt.mask_priority), (3, 7));
        assert_eq!(flt.mask_guid.0[..3], [0xFF, 0xFF, 0]);
        assert_eq!(flt.filter_type, 0, "absent key resets to 0");
    }

    #[test]
    fn ws2_truncates() {
        let flt = ws2(r#"{"filter_priority":259,"mask_class":65546}"#).unwrap();
        assert_eq!(flt.filter_priority, 3);
        assert_eq!(flt.mask_class, 10);
    }

    #[test]
    fn ws2_errors() {
        for s in [
            "[]",
            "1",
            r#""x""#,
            r#"{"filter_class":true}"#,
            r#"{"filter_class":[10]}"#,
            r#"{"mask_type":{}}"#,
            r#"{"mask_type":-1}"#,
            r#"{"mask_type":1.5}"#,
            r#"{"filter_guid":0}"#,
            r#"{"mask_guid":["00"]}"#,
        ] {
            assert!(matches!(ws2(s), Err(ParseError::BadJson(_))), "{s}");
        }
        assert!(matches!(
            ws2(r#"{"filter_class":"ten"}"#),
            Err(ParseError::BadNumber { .. })
        ));
        assert!(matches!(
            ws2(r#"{"filter_guid":"zz"}"#),
            Err(ParseError::BadGuid(_))
        ));
    }

    #[test]
    fn filter_half_forms() {
        assert_eq!(Filter::parse_filter_half(""), Ok((0, 0, 0, Guid::ZERO)));
        assert_eq!(Filter::parse_filter_half("3"), Ok((3, 0, 0, Guid::ZERO)));
        assert_eq!(
            Filter::parse_filter_half(" 3 , 0x0A ,0b110"),
            Ok((3, 10, 6, Guid::ZERO))
        );
        assert_eq!(
            Filter::parse_filter_half("1,2,3,FF:01,9,9"),
            Ok((1, 2, 3, Guid::parse("FF:01").unwrap()))
        );
        assert_eq!(
            Filter::parse_filter_half("256,65537,0,"),
            Ok((0, 1, 0, Guid::ZERO))
        );
        assert!(matches!(
            Filter::parse_filter_half("x,0,0,-"),
            Err(ParseError::BadNumber {
                field: "priority",
                ..
            })
        ));
        assert!(matches!(
            Filter::parse_filter_half("0,0,0,nope"),
            Err(ParseError::BadGuid(_))
        ));
        assert!(Filter::from_strings("0,0,0,-", "0,zz").is_err());
    }

    #[test]
    fn auth1_form() {
        let mut s = String::new();
        Filter::ALL_PASS.write_filter_half(&mut s);
        s.push(';');
        Filter::ALL_PASS.write_mask_half(&mut s);
        assert_eq!(
            s,
            "0,0,0,00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00;0,0,0,00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00"
        );
        let flt = f("3,10,6,FF:FE", "7,0xFFFF,65535,-");
        let mut s = String::new();
        flt.write_filter_half(&mut s);
        assert_eq!(s, "3,10,6,FF:FE:00:00:00:00:00:00:00:00:00:00:00:00:00:00");
        s.clear();
        flt.write_mask_half(&mut s);
        assert_eq!(
            s,
            "7,65535,65535,00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00"
        );
    }

    /// The matching rule exactly as REF writes it (events.md §8.2).
    fn ref_match(f: &Filter, e: &Event) -> bool {
        if !(f.filter_class ^ e.class) | !f.mask_class != 0xFFFF {
            return false;
        }
        if !(f.filter_type ^ e.vscp_type) | !f.mask_type != 0xFFFF {
            return false;
        }
        for i in 0..16 {
            if !(f.filter_guid.0[i] ^ e.guid.0[i]) | !f.mask_guid.0[i] != 0xFF {
                return false;
            }
        }
        let prio = ((e.head >> 5) & 7) as u8;
        !(f.filter_priority ^ prio) | !f.mask_priority == 0xFF
    }

    fn arb_filter() -> impl Strategy<Value = Filter> {
        (
            any::<(u8, u8, u16, u16, u16, u16)>(),
            any::<[u8; 16]>(),
            any::<[u8; 16]>(),
        )
            .prop_map(|((fp, mp, fc, mc, ft, mt), fg, mg)| Filter {
                filter_priority: fp,
                mask_priority: mp,
                filter_class: fc,
                mask_class: mc,
                filter_type: ft,
                mask_type: mt,
                filter_guid: Guid(fg),
                mask_guid: Guid(mg),
            })
    }

    proptest! {
        #[test]
        fn matches_like_ref(flt in arb_filter(), head in any::<u16>(), class in any::<u16>(),
                            vscp_type in any::<u16>(), guid in any::<[u8; 16]>()) {
            let e = Event { head, class, vscp_type, guid: Guid(guid), ..Event::default() };
            prop_assert_eq!(flt.matches(&e), ref_match(&flt, &e));
            // An event built from the filter itself passes whenever the priority fits 3 bits.
            let own = Event {
                head: u16::from(flt.filter_priority & 7) << 5,
                class: flt.filter_class,
                vscp_type: flt.filter_type,
                guid: flt.filter_guid,
                ..Event::default()
            };
            prop_assert_eq!(flt.matches(&own), (flt.filter_priority & !7) & flt.mask_priority == 0);
        }

        #[test]
        fn string_round_trip(flt in arb_filter()) {
            let (mut a, mut b) = (String::new(), String::new());
            flt.write_filter_half(&mut a);
            flt.write_mask_half(&mut b);
            prop_assert_eq!(Filter::from_strings(&a, &b), Ok(flt));
        }

        #[test]
        fn parse_half_never_panics(s in ".*") {
            let _ = Filter::parse_filter_half(&s);
        }
    }
}
