//! Hex digits: either case on input, upper case and no separators on output (users.json, the
//! key file, AUTH, GUIDs and event data).
//!
//! A module of its own because [`crate::auth`], [`crate::password`], [`crate::guid`] and the
//! event codecs all need it: living in one of them made auth and password import each other,
//! and guid and codec likewise.

/// Exactly `2 * N` hex digits, either case.
pub(crate) fn decode<const N: usize>(text: &str) -> Option<[u8; N]> {
    let bytes = text.as_bytes();
    if bytes.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (o, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        *o = (digit(pair[0])? << 4) | digit(pair[1])?;
    }
    Some(out)
}

/// The value of one hex digit, either case.
pub(crate) fn digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Upper-case hex without separators.
pub(crate) fn upper(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        push_byte(&mut out, b);
    }
    out
}

/// Two upper-case hex digits for every byte value, `"000102…FEFF"`.
const HEX_PAIRS: &str = {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    const BYTES: [u8; 512] = {
        let mut out = [0u8; 512];
        let mut i = 0;
        while i < 256 {
            out[2 * i] = DIGITS[i >> 4];
            out[2 * i + 1] = DIGITS[i & 0xF];
            i += 1;
        }
        out
    };
    match std::str::from_utf8(&BYTES) {
        Ok(s) => s,
        Err(_) => panic!("hex table is ASCII"),
    }
};

/// Appends `b` as two upper-case hex digits.
#[inline]
pub(crate) fn push_byte(out: &mut String, b: u8) {
    let i = usize::from(b) * 2;
    out.push_str(&HEX_PAIRS[i..i + 2]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_table_covers_all_bytes() {
        for b in 0..=255u8 {
            let mut s = String::new();
            push_byte(&mut s, b);
            assert_eq!(s, format!("{b:02X}"));
        }
    }

    #[test]
    fn round_trip_and_either_case() {
        assert_eq!(upper(&[0x00, 0xAB, 0x5f]), "00AB5F");
        assert_eq!(decode::<3>("00ab5F"), Some([0x00, 0xAB, 0x5F]));
        let all: Vec<u8> = (0..=255).collect();
        let text = upper(&all);
        let back = decode::<256>(&text).unwrap();
        assert_eq!(back.as_slice(), all.as_slice());
    }

    #[test]
    fn wrong_length_or_digit_is_refused() {
        assert_eq!(decode::<2>("ABC"), None);
        assert_eq!(decode::<2>("ABCDE"), None);
        assert_eq!(decode::<2>("ABCG"), None);
        assert_eq!(decode::<1>("+1"), None);
        assert_eq!(digit(b'g'), None);
    }
}
