//! Event text codecs: the comma-separated string form ([`string`], ws1) and the JSON form
//! ([`json`], ws2). Both write into a caller-owned `String` so a connection can reuse one buffer
//! for every outgoing event.
//!
//! The small writers below exist because the event writers run once per event per receiving
//! connection; going through `core::fmt` for every byte would dominate that path.

pub mod binary;
pub mod json;
pub mod string;
pub mod xml;

/// Appends `v` in decimal.
#[inline]
pub(crate) fn push_u64(out: &mut String, mut v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    for &c in &buf[i..] {
        out.push(char::from(c));
    }
}

/// Appends the header fields in the order the JSON and XML forms both write them (head, obid,
/// date, timestamp, class, type, GUID), each after its lead-in from `leads`: the two forms
/// differ only in the text around the values.
pub(crate) fn write_header_fields(ev: &crate::Event, leads: &[&str; 7], out: &mut String) {
    out.push_str(leads[0]);
    push_u64(out, ev.head.into());
    out.push_str(leads[1]);
    push_u64(out, ev.obid.into());
    out.push_str(leads[2]);
    ev.datetime.write_iso(out);
    out.push_str(leads[3]);
    push_u64(out, ev.timestamp.into());
    out.push_str(leads[4]);
    push_u64(out, ev.class.into());
    out.push_str(leads[5]);
    push_u64(out, ev.vscp_type.into());
    out.push_str(leads[6]);
    ev.guid.write_to(out);
}

/// Appends `v` in decimal, left-padded with zeros to at least `width` digits (`width` ≤ 5).
#[inline]
pub(crate) fn push_padded(out: &mut String, v: u16, width: usize) {
    let mut digits = 1;
    let mut t = v / 10;
    while t > 0 {
        digits += 1;
        t /= 10;
    }
    for _ in digits..width {
        out.push('0');
    }
    push_u64(out, u64::from(v));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_writers() {
        for v in [0u64, 1, 9, 10, 99, 100, 65535, u32::MAX as u64, u64::MAX] {
            let mut s = String::new();
            push_u64(&mut s, v);
            assert_eq!(s, v.to_string());
        }
        let mut s = String::new();
        push_padded(&mut s, 7, 2);
        push_padded(&mut s, 24, 4);
        push_padded(&mut s, 65535, 4);
        push_padded(&mut s, 0, 2);
        assert_eq!(s, "0700246553500");
    }
}
