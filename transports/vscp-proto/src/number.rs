//! The VSCP number reader (events.md §5.2, REC variant of `vscp_readStringValue`).
//!
//! Accepted: optional surrounding whitespace, then either decimal digits or a `0x` (hex), `0o`
//! (octal) or `0b` (binary) prefix followed by digits of that radix; prefixes and hex digits are
//! case-insensitive. The empty string reads as 0, as it does in REF, because empty fields are
//! normal in the string forms (`0,20,3,,,,-`).
//!
//! REF silently stops at the first bad character (`12abc` → 12) and reads garbage as 0; the REC
//! behaviour implemented here rejects both, so a typo in a client's event is reported instead of
//! turning into a different event.

use crate::error::ParseError;

/// Reads a number in any accepted notation. Values that do not fit in a `u64` are an error.
pub fn read_u64(field: &'static str, s: &str) -> Result<u64, ParseError> {
    let t = s.trim();
    let b = t.as_bytes();
    if b.is_empty() {
        return Ok(0);
    }
    let (radix, digits) = if b.len() >= 2 && b[0] == b'0' {
        match b[1] | 0x20 {
            b'x' => (16, &b[2..]),
            b'o' => (8, &b[2..]),
            b'b' => (2, &b[2..]),
            _ => (10, b),
        }
    } else {
        (10, b)
    };
    let bad = || ParseError::BadNumber {
        field,
        text: t.to_owned(),
    };
    // A bare prefix (`0x`) has nothing to read: that is garbage, not zero.
    if digits.is_empty() {
        return Err(bad());
    }
    let mut v: u64 = 0;
    for &c in digits {
        let d = match c {
            b'0'..=b'9' => u64::from(c - b'0'),
            b'a'..=b'f' => u64::from(c - b'a' + 10),
            b'A'..=b'F' => u64::from(c - b'A' + 10),
            _ => return Err(bad()),
        };
        if d >= radix {
            return Err(bad());
        }
        v = v
            .checked_mul(radix)
            .and_then(|v| v.checked_add(d))
            .ok_or_else(bad)?;
    }
    Ok(v)
}

/// Reads a number and keeps its low 32 bits (REF truncates instead of range-checking).
pub fn read_u32(field: &'static str, s: &str) -> Result<u32, ParseError> {
    read_u64(field, s).map(|v| v as u32)
}

/// Reads a number and keeps its low 16 bits (REF truncates instead of range-checking).
pub fn read_u16(field: &'static str, s: &str) -> Result<u16, ParseError> {
    read_u64(field, s).map(|v| v as u16)
}

/// Reads a number and keeps its low 8 bits (REF truncates instead of range-checking).
pub fn read_u8(field: &'static str, s: &str) -> Result<u8, ParseError> {
    read_u64(field, s).map(|v| v as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> u64 {
        read_u64("f", s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }

    fn bad(s: &str) {
        assert_eq!(
            read_u64("f", s),
            Err(ParseError::BadNumber {
                field: "f",
                text: s.trim().to_owned()
            }),
            "{s:?}"
        );
    }

    #[test]
    fn decimal() {
        assert_eq!(ok("0"), 0);
        assert_eq!(ok("96"), 96);
        assert_eq!(ok("  123456789 \t"), 123_456_789);
        assert_eq!(ok("007"), 7);
        assert_eq!(ok("18446744073709551615"), u64::MAX);
    }

    #[test]
    fn empty_is_zero() {
        assert_eq!(ok(""), 0);
        assert_eq!(ok("   "), 0);
    }

    #[test]
    fn prefixes() {
        assert_eq!(ok("0x60"), 0x60);
        assert_eq!(ok("0X60"), 0x60);
        assert_eq!(ok("0xffFF"), 0xFFFF);
        assert_eq!(ok(" 0xC4 "), 0xC4);
        assert_eq!(ok("0o17"), 0o17);
        assert_eq!(ok("0O17"), 0o17);
        assert_eq!(ok("0b101"), 5);
        assert_eq!(ok("0B101"), 5);
        assert_eq!(ok("0xFFFFFFFFFFFFFFFF"), u64::MAX);
    }

    #[test]
    fn garbage_is_an_error() {
        for s in [
            "12abc", "-1", "+1", "0xZZ", "0x", "0b", "0o", "0b102", "0o8", "abc", "1 2", "1.5",
            "x12", "0x-1", "١",
        ] {
            bad(s);
        }
    }

    #[test]
    fn overflow_is_an_error() {
        bad("18446744073709551616");
        bad("0x10000000000000000");
        bad("0b11111111111111111111111111111111111111111111111111111111111111111");
    }

    #[test]
    fn narrow_readers_truncate() {
        assert_eq!(read_u8("f", "256"), Ok(0));
        assert_eq!(read_u8("f", "0x1C4"), Ok(0xC4));
        assert_eq!(read_u16("f", "65537"), Ok(1));
        assert_eq!(read_u32("f", "0x100000005"), Ok(5));
        assert!(read_u8("f", "zz").is_err());
    }

    #[test]
    fn error_names_the_field() {
        match read_u16("class", " 1x ") {
            Err(ParseError::BadNumber { field, text }) => {
                assert_eq!(field, "class");
                assert_eq!(text, "1x");
            }
            other => panic!("{other:?}"),
        }
    }
}
