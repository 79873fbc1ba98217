//! The 16-byte VSCP GUID (events.md §4).

use std::fmt;

use crate::error::ParseError;
use crate::hex;

/// A VSCP GUID, byte 0 most significant. Output form is 16 upper-case hex pairs joined by `:`.
///
/// `repr(transparent)`: laid out as the 16 bytes, so it can stand in C structs (see [`Filter`]).
///
/// [`Filter`]: crate::Filter
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
#[repr(transparent)]
pub struct Guid(pub [u8; 16]);

impl Guid {
    /// The all-zero GUID: "not set" on input (the server substitutes its interface GUID).
    pub const ZERO: Guid = Guid([0; 16]);

    /// Length of the output form: 16 pairs and 15 colons.
    pub const TEXT_LEN: usize = 47;

    /// Reads the colon form (events.md §4, REC).
    ///
    /// Empty or `-` is the zero GUID. Each `:`-separated token is 1–2 hex digits with an optional
    /// `0x` prefix. Tokens past the 16th are ignored and missing trailing tokens read as 0, as in
    /// REF. Unlike REF's event parsers (which read a bad token as 0) an invalid token is an error,
    /// so a mistyped address is reported rather than silently becoming a different node. The SPEC
    /// shorthands (`::1`, `*`, `{UUID}`) are deliberately not accepted: REF never implemented them
    /// and SPEC contradicts itself about their meaning.
    pub fn parse(s: &str) -> Result<Guid, ParseError> {
        let t = s.trim();
        if t.is_empty() || t == "-" {
            return Ok(Guid::ZERO);
        }
        let mut out = [0u8; 16];
        for (slot, token) in out.iter_mut().zip(t.split(':')) {
            *slot = parse_hex_token(token).ok_or_else(|| ParseError::BadGuid(t.to_owned()))?;
        }
        Ok(Guid(out))
    }

    /// True for the all-zero GUID.
    #[inline]
    pub fn is_zero(&self) -> bool {
        u128::from_ne_bytes(self.0) == 0
    }

    /// The 16-bit nickname used in MQTT topics: `GUID[14]*256 + GUID[15]`.
    #[inline]
    pub fn nickname(&self) -> u16 {
        u16::from_be_bytes([self.0[14], self.0[15]])
    }

    /// The GUID as a big-endian integer; handy for whole-GUID masking.
    #[inline]
    pub fn as_u128(&self) -> u128 {
        u128::from_be_bytes(self.0)
    }

    /// Appends the 47-character upper-case colon form.
    pub fn write_to(&self, out: &mut String) {
        out.reserve(Self::TEXT_LEN);
        hex::push_byte(out, self.0[0]);
        for &b in &self.0[1..] {
            out.push(':');
            hex::push_byte(out, b);
        }
    }
}

/// One GUID token: optional `0x`, then 1–2 hex digits, nothing else.
fn parse_hex_token(token: &str) -> Option<u8> {
    let t = token.trim().as_bytes();
    let digits = match t {
        [b'0', x, rest @ ..] if (x | 0x20) == b'x' => rest,
        _ => t,
    };
    if digits.is_empty() || digits.len() > 2 {
        return None;
    }
    let mut v = 0u8;
    for &c in digits {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => c - b'A' + 10,
            _ => return None,
        };
        v = (v << 4) | d;
    }
    Some(v)
}

impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::with_capacity(Self::TEXT_LEN);
        self.write_to(&mut s);
        f.write_str(&s)
    }
}

impl fmt::Debug for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Guid({self})")
    }
}

impl From<[u8; 16]> for Guid {
    fn from(b: [u8; 16]) -> Self {
        Guid(b)
    }
}

impl std::str::FromStr for Guid {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Guid::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const E2: &str = "FF:FF:FF:FF:FF:FF:FF:F5:00:00:00:00:00:02:00:00";

    fn text(g: &Guid) -> String {
        let mut s = String::new();
        g.write_to(&mut s);
        s
    }

    #[test]
    fn parse_and_write_e2() {
        let g = Guid::parse(E2).unwrap();
        assert_eq!(
            g.0,
            [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xF5, 0, 0, 0, 0, 0, 2, 0, 0]
        );
        assert_eq!(text(&g), E2);
        assert_eq!(g.to_string(), E2);
        assert_eq!(format!("{g:?}"), format!("Guid({E2})"));
        assert_eq!(g.nickname(), 0);
    }

    #[test]
    fn zero_forms() {
        for s in ["", "  ", "-", " - "] {
            assert_eq!(Guid::parse(s), Ok(Guid::ZERO), "{s:?}");
        }
        assert!(Guid::ZERO.is_zero());
        assert!(!Guid::parse("00:01").unwrap().is_zero());
        assert_eq!(
            text(&Guid::ZERO),
            "00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00"
        );
        assert_eq!(text(&Guid::ZERO).len(), Guid::TEXT_LEN);
    }

    #[test]
    fn lenient_tokens() {
        let g = Guid::parse(" ff:0xA:0X0b:1: 2 :c").unwrap();
        assert_eq!(&g.0[..6], &[0xFF, 0x0A, 0x0B, 0x01, 0x02, 0x0C]);
        assert_eq!(&g.0[6..], &[0; 10]);
    }

    #[test]
    fn fewer_tokens_pad_with_zero() {
        let g = Guid::parse("FF:FE").unwrap();
        assert_eq!(text(&g), "FF:FE:00:00:00:00:00:00:00:00:00:00:00:00:00:00");
    }

    #[test]
    fn extra_tokens_ignored() {
        let g = Guid::parse(&format!("{E2}:12:zz")).unwrap();
        assert_eq!(text(&g), E2);
    }

    #[test]
    fn invalid_tokens() {
        for s in [
            "G0", "FF::01", "123", "0x", "0x123", "FF:-1", ":", "FF;FE", "::1", "*:1", "0xZZ",
        ] {
            assert!(
                matches!(Guid::parse(s), Err(ParseError::BadGuid(_))),
                "{s:?}"
            );
        }
    }

    #[test]
    fn nickname() {
        let g = Guid::parse("00:00:00:00:00:00:00:00:00:00:00:00:00:00:12:34").unwrap();
        assert_eq!(g.nickname(), 0x1234);
    }

    proptest! {
        #[test]
        fn write_parse_round_trip(bytes in any::<[u8; 16]>()) {
            let g = Guid(bytes);
            let s = text(&g);
            prop_assert_eq!(s.len(), Guid::TEXT_LEN);
            prop_assert_eq!(Guid::parse(&s), Ok(g));
            prop_assert_eq!(Guid::parse(&s.to_lowercase()), Ok(g));
        }

        #[test]
        fn parse_never_panics(s in ".*") {
            let _ = Guid::parse(&s);
        }
    }
}
