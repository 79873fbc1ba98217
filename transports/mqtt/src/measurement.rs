//! Measurement decoding for the JSON `measurement` block and the `measurement-*` topic
//! variables (mqtt.md §5).
//!
//! REF computes a value only for classes 10, 15, 522, 65, 85, 60, 1040 and 1060; the other
//! measurement classes get no block, and so do undecodable payloads. Fixed REF bugs (mqtt.md
//! §5 REC): the doubles of classes 60 and 1060 are big-endian, and classes 65/85 report
//! sensor index, zone and subzone from data bytes 0, 1 and 2.

use vscp_proto::Event;

/// A decoded measurement.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Measurement {
    pub value: f64,
    pub unit: u8,
    pub sensor_index: u8,
    pub zone: u8,
    pub subzone: u8,
}

/// REF `vscp_isMeasurement`: the measurement class families.
pub fn is_measurement_class(class: u16) -> bool {
    matches!(class,
        10..=15 | 60..=64 | 65..=69 | 70..=74 | 85..=89 | 522..=526 | 572..=586 | 597..=601
        | 1040 | 1060)
}

/// The measurement carried by `ev`, when its class is one REF decodes and the data can be read.
pub fn decode(ev: &Event) -> Option<Measurement> {
    let d = ev.data.as_slice();
    match ev.class {
        10 | 15 => level1(d, 0, None),
        // CLASS2.LEVEL1.MEASUREMENT: the 16-byte destination GUID comes first.
        522 => level1(d, 16, None),
        // MEASUREMENTX1/ZONE: index, zone and subzone precede the coding byte.
        65 | 85 => {
            let place = (*d.first()?, *d.get(1)?, *d.get(2)?);
            level1(d, 3, Some(place))
        }
        60 => {
            let value = f64::from_be_bytes(d.get(..8)?.try_into().ok()?);
            Some(Measurement {
                value,
                unit: 0,
                sensor_index: 0,
                zone: 0,
                subzone: 0,
            })
        }
        1040 => {
            let text = std::str::from_utf8(d.get(4..)?).ok()?;
            level2(d, numeric_prefix(text)?)
        }
        1060 => level2(d, f64::from_be_bytes(d.get(4..12)?.try_into().ok()?)),
        _ => None,
    }
}

/// Level II float/string layout: index, zone, subzone, unit, then the value.
fn level2(d: &[u8], value: f64) -> Option<Measurement> {
    Some(Measurement {
        value,
        sensor_index: *d.first()?,
        zone: *d.get(1)?,
        subzone: *d.get(2)?,
        unit: *d.get(3)?,
    })
}

/// Level I data coding starting at `d[at]` (mqtt.md §5 table).
fn level1(d: &[u8], at: usize, place: Option<(u8, u8, u8)>) -> Option<Measurement> {
    let coding = *d.get(at)?;
    let rest = d.get(at + 1..)?;
    let value = match coding >> 5 {
        0 => bit_field(rest)?,
        1 => f64::from(*rest.first()?),
        2 => numeric_prefix(std::str::from_utf8(rest).ok()?)?,
        3 => signed_be(rest)? as f64,
        4 => {
            let (&exp, int) = rest.split_first()?;
            let mantissa = signed_be(int)? as f64;
            let power = 10f64.powi(i32::from(exp & 0x7F));
            if exp & 0x80 != 0 {
                mantissa / power
            } else {
                mantissa * power
            }
        }
        5 => f64::from(f32::from_be_bytes(rest.get(..4)?.try_into().ok()?)),
        _ => return None,
    };
    let (sensor_index, zone, subzone) = place.unwrap_or((coding & 0x07, 0, 0));
    Some(Measurement {
        value,
        unit: (coding >> 3) & 0x03,
        sensor_index,
        zone,
        subzone,
    })
}

/// A big-endian two's complement integer of 1..=8 bytes.
fn signed_be(bytes: &[u8]) -> Option<i64> {
    if bytes.is_empty() || bytes.len() > 8 {
        return None;
    }
    let negative = bytes[0] & 0x80 != 0;
    let mut v: i64 = if negative { -1 } else { 0 };
    for &b in bytes {
        v = (v << 8) | i64::from(b);
    }
    Some(v)
}

/// REF renders a bit field as its bits ("10110000…") and then reads the numeric prefix of
/// that text, so the "value" is the bit string read as a decimal number. Kept for
/// compatibility; it is not a useful measurement.
fn bit_field(bytes: &[u8]) -> Option<f64> {
    if bytes.is_empty() {
        return None;
    }
    let bits: String = bytes.iter().map(|b| format!("{b:08b}")).collect();
    bits.parse().ok()
}

/// The longest prefix of `text` (after leading whitespace) that reads as a decimal number, as
/// C's `strtod`/`std::stod` do; `None` when nothing does.
fn numeric_prefix(text: &str) -> Option<f64> {
    let t = text.trim_start().trim_end_matches('\0');
    let b = t.as_bytes();
    let mut end = 0;
    if matches!(b.first(), Some(b'+' | b'-')) {
        end = 1;
    }
    let digits_start = end;
    while b.get(end).is_some_and(u8::is_ascii_digit) {
        end += 1;
    }
    if b.get(end) == Some(&b'.') {
        end += 1;
        while b.get(end).is_some_and(u8::is_ascii_digit) {
            end += 1;
        }
    }
    if end == digits_start || (end == digits_start + 1 && b[digits_start] == b'.') {
        return None;
    }
    // An exponent only counts when digits follow it.
    if matches!(b.get(end), Some(b'e' | b'E')) {
        let mut e = end + 1;
        if matches!(b.get(e), Some(b'+' | b'-')) {
            e += 1;
        }
        if b.get(e).is_some_and(u8::is_ascii_digit) {
            while b.get(e).is_some_and(u8::is_ascii_digit) {
                e += 1;
            }
            end = e;
        }
    }
    t[..end].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(class: u16, data: &[u8]) -> Event {
        Event {
            class,
            vscp_type: 6,
            data: data.to_vec(),
            ..Event::default()
        }
    }

    fn m(value: f64, unit: u8, sensor_index: u8, zone: u8, subzone: u8) -> Measurement {
        Measurement {
            value,
            unit,
            sensor_index,
            zone,
            subzone,
        }
    }

    /// vectors.md M2.
    #[test]
    fn m2_level1_codings() {
        for (data, value, unit, index) in [
            (&[0x88, 0x82, 0x09, 0xC4][..], 25.0, 1, 0),
            (&[0x68, 0x00, 0xFF][..], 255.0, 1, 0),
            (&[0x60, 0xFF, 0x38][..], -200.0, 0, 0),
            (&[0xA8, 0x41, 0xAC, 0x00, 0x00][..], 21.5, 1, 0),
            (&[0x48, 0x32, 0x31, 0x2E, 0x35][..], 21.5, 1, 0),
        ] {
            assert_eq!(
                decode(&ev(10, data)),
                Some(m(value, unit, index, 0, 0)),
                "{data:02X?}"
            );
        }
    }

    /// vectors.md M3 (REC: big-endian double, zone from byte 1).
    #[test]
    fn m3_class_1060() {
        let data = [0x01, 0x02, 0x03, 0x01, 0x40, 0x35, 0x80, 0, 0, 0, 0, 0];
        assert_eq!(decode(&ev(1060, &data)), Some(m(21.5, 1, 1, 2, 3)));
        assert_eq!(decode(&ev(1060, &data[..11])), None);
    }

    #[test]
    fn class_1040_string() {
        let mut data = vec![4, 5, 6, 2];
        data.extend_from_slice(b"-12.25");
        assert_eq!(decode(&ev(1040, &data)), Some(m(-12.25, 2, 4, 5, 6)));
        assert_eq!(decode(&ev(1040, &[4, 5, 6, 2])), None);
        assert_eq!(decode(&ev(1040, &[4, 5, 6, 2, b'x'])), None);
    }

    #[test]
    fn class_60_big_endian_double() {
        let data = 21.5f64.to_be_bytes();
        assert_eq!(decode(&ev(60, &data)), Some(m(21.5, 0, 0, 0, 0)));
        assert_eq!(decode(&ev(60, &data[..7])), None);
    }

    #[test]
    fn zone_classes_and_level1_over_level2() {
        // 65: index 3, zone 4, subzone 5, then integer coding, unit 2, value 1000.
        let data = [3, 4, 5, 0x70, 0x03, 0xE8];
        assert_eq!(decode(&ev(65, &data)), Some(m(1000.0, 2, 3, 4, 5)));
        assert_eq!(decode(&ev(85, &data)), Some(m(1000.0, 2, 3, 4, 5)));
        assert_eq!(decode(&ev(65, &data[..3])), None);
        let mut data = vec![0xEE; 16];
        data.extend_from_slice(&[0x88, 0x82, 0x09, 0xC4]);
        assert_eq!(decode(&ev(522, &data)), Some(m(25.0, 1, 0, 0, 0)));
        assert_eq!(decode(&ev(522, &data[..16])), None);
    }

    #[test]
    fn normalized_multiplies_without_bit7() {
        assert_eq!(
            decode(&ev(10, &[0x80, 0x02, 0x07])).map(|m| m.value),
            Some(700.0)
        );
        assert_eq!(decode(&ev(10, &[0x80, 0x02])), None);
    }

    #[test]
    fn reserved_and_undecodable() {
        assert_eq!(decode(&ev(10, &[0xC0, 1, 2])), None);
        assert_eq!(decode(&ev(10, &[0xE0, 1, 2])), None);
        assert_eq!(decode(&ev(10, &[])), None);
        assert_eq!(decode(&ev(10, &[0x60])), None);
        assert_eq!(decode(&ev(10, &[0xA0, 1, 2])), None);
        assert_eq!(decode(&ev(10, &[0x40, b'a'])), None);
        // Measurement classes REF does not decode, and non-measurement classes.
        assert_eq!(decode(&ev(11, &[0x88, 0x82, 0x09, 0xC4])), None);
        assert_eq!(decode(&ev(20, &[0x88, 0x82, 0x09, 0xC4])), None);
    }

    #[test]
    fn byte_series_and_bit_field() {
        assert_eq!(decode(&ev(10, &[0x20, 7, 8])).map(|m| m.value), Some(7.0));
        assert_eq!(
            decode(&ev(10, &[0x00, 0b101])).map(|m| m.value),
            Some(101.0)
        );
    }

    #[test]
    fn numeric_prefix_like_strtod() {
        assert_eq!(numeric_prefix("21.5"), Some(21.5));
        assert_eq!(numeric_prefix(" -3x"), Some(-3.0));
        assert_eq!(numeric_prefix("1e3"), Some(1000.0));
        assert_eq!(numeric_prefix("1e"), Some(1.0));
        assert_eq!(numeric_prefix(".5"), Some(0.5));
        assert_eq!(numeric_prefix("7\0\0"), Some(7.0));
        assert_eq!(numeric_prefix("."), None);
        assert_eq!(numeric_prefix("-"), None);
        assert_eq!(numeric_prefix(""), None);
    }

    #[test]
    fn measurement_classes() {
        for c in [
            10, 15, 60, 64, 65, 69, 70, 74, 85, 89, 522, 526, 572, 586, 597, 601, 1040, 1060,
        ] {
            assert!(is_measurement_class(c), "{c}");
        }
        for c in [
            0, 9, 16, 20, 59, 75, 84, 90, 521, 527, 571, 587, 596, 602, 1039, 1061,
        ] {
            assert!(!is_measurement_class(c), "{c}");
        }
    }
}
