//! The binary frame of an event (events.md §9; MQTT "binary" payloads, UDP/multicast).
//!
//! Only unencrypted frames (packet type byte `0x00`) are written and read: the AES variants
//! need a shared key the MQTT configuration has no place for, so an encrypted frame is
//! reported as such instead of being decoded into garbage.

use crate::event::{DateTime, Event, MAX_DATA};
use crate::guid::Guid;

/// Length of everything but the data: type byte, 33-byte header, 2-byte size, 2-byte CRC.
pub const OVERHEAD: usize = 38;

/// Offset of the data-size field.
const SIZE_AT: usize = 34;
/// Offset of the first data byte.
const DATA_AT: usize = 36;

/// Why a binary frame could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BinaryError {
    /// Fewer bytes than the header (or the header's data size) needs.
    #[error("frame too short: {got} bytes, need {need}")]
    TooShort { got: usize, need: usize },
    /// A packet type or encryption nibble other than 0.
    #[error("unsupported packet type/encryption byte 0x{0:02X}")]
    Unsupported(u8),
    /// The data size field is above [`MAX_DATA`].
    #[error("{got} data bytes, at most {max} allowed")]
    TooMuchData { got: usize, max: usize },
    /// The CRC does not match (and the head does not waive the check).
    #[error("CRC mismatch: frame says 0x{got:04X}, computed 0x{want:04X}")]
    Crc { got: u16, want: u16 },
}

/// CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, no reflection, no final xor.
pub fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0xFFFF;
    for &b in bytes {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// Appends the unencrypted frame (packet type 0) of `ev`: `38 + data` bytes. Data beyond
/// [`MAX_DATA`] is not representable in an [`Event`] built by our readers, and the size field
/// is written from the actual length either way.
pub fn write_frame(ev: &Event, out: &mut Vec<u8>) {
    let start = out.len();
    out.reserve(OVERHEAD + ev.data.len());
    out.push(0x00);
    out.extend_from_slice(&ev.head.to_be_bytes());
    out.extend_from_slice(&ev.timestamp.to_be_bytes());
    let d = &ev.datetime;
    out.extend_from_slice(&d.year.to_be_bytes());
    out.extend_from_slice(&[d.month, d.day, d.hour, d.minute, d.second]);
    out.extend_from_slice(&ev.class.to_be_bytes());
    out.extend_from_slice(&ev.vscp_type.to_be_bytes());
    out.extend_from_slice(&ev.guid.0);
    // Events carry at most MAX_DATA (512) bytes, so the length always fits the u16 field.
    out.extend_from_slice(&(ev.data.len() as u16).to_be_bytes());
    out.extend_from_slice(&ev.data);
    let crc = crc16(&out[start + 1..]);
    out.extend_from_slice(&crc.to_be_bytes());
}

/// Reads an unencrypted frame. Bytes after the CRC are ignored (an encrypted frame's IV would
/// sit there, and REF ignores trailing bytes too). `obid` is 0; an all-zero date and a zero
/// timestamp stay unset for the caller to stamp. The GUID is exactly bytes 18..34 (REF copies
/// `n` bytes, a bug).
pub fn parse_frame(frame: &[u8]) -> Result<Event, BinaryError> {
    if frame.len() < OVERHEAD {
        return Err(BinaryError::TooShort {
            got: frame.len(),
            need: OVERHEAD,
        });
    }
    if frame[0] != 0 {
        return Err(BinaryError::Unsupported(frame[0]));
    }
    let be16 = |at: usize| u16::from_be_bytes([frame[at], frame[at + 1]]);
    let n = usize::from(be16(SIZE_AT));
    if n > MAX_DATA {
        return Err(BinaryError::TooMuchData {
            got: n,
            max: MAX_DATA,
        });
    }
    let need = OVERHEAD + n;
    if frame.len() < need {
        return Err(BinaryError::TooShort {
            got: frame.len(),
            need,
        });
    }
    let head = be16(1);
    let got = be16(DATA_AT + n);
    // Head bit 3 plus the magic 0xAA55 in the CRC field waives the check (events.md §9).
    if !(head & 0x08 != 0 && got == 0xAA55) {
        let want = crc16(&frame[1..DATA_AT + n]);
        if want != got {
            return Err(BinaryError::Crc { got, want });
        }
    }
    let mut guid = [0u8; 16];
    guid.copy_from_slice(&frame[18..34]);
    Ok(Event {
        head,
        class: be16(14),
        vscp_type: be16(16),
        obid: 0,
        timestamp: u32::from_be_bytes([frame[3], frame[4], frame[5], frame[6]]),
        datetime: DateTime {
            year: be16(7),
            month: frame[9],
            day: frame[10],
            hour: frame[11],
            minute: frame[12],
            second: frame[13],
        },
        guid: Guid(guid),
        data: frame[DATA_AT..DATA_AT + n].to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::string::tests::arb_event;
    use crate::testing::e2;
    use proptest::prelude::*;

    fn hex(s: &str) -> Vec<u8> {
        let digits: Vec<u8> = s.bytes().filter(|b| b.is_ascii_hexdigit()).collect();
        digits
            .chunks(2)
            .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
            .collect()
    }

    /// vectors.md B: E2 as a binary frame (42 bytes).
    fn e2_frame() -> Vec<u8> {
        hex(
            "00 | 00 60 | 07 5B CD 15 | 07 E8 03 01 0C 22 38 | 00 0A | 00 06 |
             FF FF FF FF FF FF FF F5 00 00 00 00 00 02 00 00 | 00 04 | 88 82 09 C4 | 66 D4",
        )
    }

    #[test]
    fn crc_check_value() {
        assert_eq!(crc16(b"123456789"), 0x29B1);
    }

    #[test]
    fn vector_b_e2() {
        let mut out = Vec::new();
        write_frame(&e2(), &mut out);
        assert_eq!(out, e2_frame());
        assert_eq!(out.len(), 42);
        assert_eq!(crc16(&out[1..]), 0, "CRC over the CRC is zero");
        let mut want = e2();
        want.obid = 0;
        assert_eq!(parse_frame(&out), Ok(want));
    }

    #[test]
    fn vector_b_minimal() {
        let ev = Event {
            class: 20,
            vscp_type: 3,
            ..Event::default()
        };
        let mut out = Vec::new();
        write_frame(&ev, &mut out);
        let mut want = vec![0u8; 15];
        want.extend_from_slice(&[0x14, 0x00, 0x03]);
        want.extend_from_slice(&[0u8; 16]);
        want.extend_from_slice(&[0x00, 0x00, 0x07, 0xB5]);
        assert_eq!(out, want);
        assert_eq!(parse_frame(&out), Ok(ev));
    }

    #[test]
    fn trailing_bytes_ignored() {
        let mut f = e2_frame();
        f.extend_from_slice(&[0xDE, 0xAD, 0xBE, 0xEF]);
        assert_eq!(parse_frame(&f).unwrap().data, [0x88, 0x82, 0x09, 0xC4]);
    }

    #[test]
    fn short_frames() {
        let f = e2_frame();
        for cut in [0, 1, 37] {
            assert_eq!(
                parse_frame(&f[..cut]),
                Err(BinaryError::TooShort { got: cut, need: 38 })
            );
        }
        assert_eq!(
            parse_frame(&f[..41]),
            Err(BinaryError::TooShort { got: 41, need: 42 })
        );
    }

    #[test]
    fn bad_crc_and_waiver() {
        let mut f = e2_frame();
        f[40] ^= 1;
        assert!(matches!(parse_frame(&f), Err(BinaryError::Crc { .. })));
        // Head bit 3 with 0xAA55 skips the check.
        f[2] |= 0x08;
        f[40] = 0xAA;
        f[41] = 0x55;
        assert_eq!(parse_frame(&f).unwrap().head, 0x68);
        // 0xAA55 without the head bit is just a wrong CRC.
        f[2] &= !0x08;
        assert!(matches!(parse_frame(&f), Err(BinaryError::Crc { .. })));
    }

    #[test]
    fn encrypted_and_oversized() {
        let mut f = e2_frame();
        f[0] = 0x01;
        assert_eq!(parse_frame(&f), Err(BinaryError::Unsupported(1)));
        let mut f = e2_frame();
        f[34] = 0x02;
        f[35] = 0x01;
        assert_eq!(
            parse_frame(&f),
            Err(BinaryError::TooMuchData { got: 513, max: 512 })
        );
    }

    proptest! {
        #[test]
        fn write_parse_round_trip(ev in arb_event()) {
            let mut out = Vec::new();
            write_frame(&ev, &mut out);
            prop_assert_eq!(out.len(), OVERHEAD + ev.data.len());
            let mut want = ev;
            want.obid = 0;
            prop_assert_eq!(parse_frame(&out), Ok(want));
        }

        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = parse_frame(&bytes);
        }
    }
}
