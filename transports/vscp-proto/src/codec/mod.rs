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
    /// A header field's value and how it is written.
    enum Value<'e> {
        Decimal(u64),
        Date(&'e crate::DateTime),
        Guid(&'e crate::Guid),
    }
    let values = [
        Value::Decimal(ev.head.into()),
        Value::Decimal(ev.obid.into()),
        Value::Date(&ev.datetime),
        Value::Decimal(ev.timestamp.into()),
        Value::Decimal(ev.class.into()),
        Value::Decimal(ev.vscp_type.into()),
        Value::Guid(&ev.guid),
    ];
    for (lead, value) in leads.iter().zip(values) {
        out.push_str(lead);
        match value {
            Value::Decimal(v) => push_u64(out, v),
            Value::Date(d) => d.write_iso(out),
            Value::Guid(g) => g.write_to(out),
        }
    }
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
