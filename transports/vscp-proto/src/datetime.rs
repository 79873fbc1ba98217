//! Reading, writing and Unix-time conversion of [`DateTime`] (events.md §5).
//!
//! No clock is read here: "not set" stays all-zero and the server stamps the event later.

use crate::codec::push_padded;
use crate::error::ParseError;
use crate::event::DateTime;

const SECS_PER_DAY: u64 = 86_400;

impl DateTime {
    /// Reads `Y-M-DTh:m:s` (events.md §5.2).
    ///
    /// The six integers may be separated by any single non-digit character, so
    /// `2024-03-01T12:34:56Z`, `2024-03-01 12:34:56` and `2024/03/01-12.34.56` are all read the
    /// same way; anything after the seconds (fractions, `Z`) is ignored. As in REF a value that
    /// stops early leaves the remaining fields 0 (`0` is "not set"). Empty text is "not set".
    ///
    /// Errors: text that does not start with a digit, and a value too large for its field. Only
    /// the field widths are checked, not the calendar, because REF relays such values unchanged;
    /// [`DateTime::to_unix_secs`] is where calendar validity matters.
    pub fn parse(s: &str) -> Result<DateTime, ParseError> {
        let t = s.trim();
        let b = t.as_bytes();
        if b.is_empty() {
            return Ok(DateTime::default());
        }
        let bad = || ParseError::BadDateTime(t.to_owned());
        if !b[0].is_ascii_digit() {
            return Err(bad());
        }
        let mut fields = [0u32; 6];
        let mut pos = 0;
        for (n, field) in fields.iter_mut().enumerate() {
            if n > 0 {
                // Exactly one separator, and it must be followed by a digit; otherwise the
                // value ends here and the rest of the fields stay 0.
                match (b.get(pos), b.get(pos + 1)) {
                    (Some(sep), Some(d)) if !sep.is_ascii_digit() && d.is_ascii_digit() => pos += 1,
                    _ => break,
                }
            }
            let mut v: u32 = 0;
            while let Some(&c) = b.get(pos).filter(|c| c.is_ascii_digit()) {
                v = v
                    .checked_mul(10)
                    .and_then(|v| v.checked_add(u32::from(c - b'0')))
                    .ok_or_else(bad)?;
                pos += 1;
            }
            *field = v;
        }
        let [year, month, day, hour, minute, second] = fields;
        let narrow = |v: u32| u8::try_from(v).map_err(|_| bad());
        Ok(DateTime {
            year: u16::try_from(year).map_err(|_| bad())?,
            month: narrow(month)?,
            day: narrow(day)?,
            hour: narrow(hour)?,
            minute: narrow(minute)?,
            second: narrow(second)?,
        })
    }

    /// True when every field is zero, the protocol's "not set".
    #[inline]
    pub fn is_unset(&self) -> bool {
        *self == DateTime::default()
    }

    /// Appends `YYYY-MM-DDTHH:MM:SSZ`, or nothing at all when unset (REF writes an empty field).
    pub fn write_iso(&self, out: &mut String) {
        if self.is_unset() {
            return;
        }
        out.reserve(20);
        push_padded(out, self.year, 4);
        out.push('-');
        push_padded(out, self.month.into(), 2);
        out.push('-');
        push_padded(out, self.day.into(), 2);
        out.push('T');
        push_padded(out, self.hour.into(), 2);
        out.push(':');
        push_padded(out, self.minute.into(), 2);
        out.push(':');
        push_padded(out, self.second.into(), 2);
        out.push('Z');
    }

    /// The UTC civil time of a Unix timestamp. Times past the end of year 65535 (the largest
    /// year the field holds) saturate to 65535-12-31T23:59:59.
    pub fn from_unix_secs(secs: u64) -> DateTime {
        // Last second of year 65535; beyond it the year would not fit the u16 field.
        const MAX_SECS: u64 = 2_005_949_145_599;
        let secs = secs.min(MAX_SECS);
        let days = secs / SECS_PER_DAY;
        let rem = secs % SECS_PER_DAY;
        let (year, month, day) = civil_from_days(days as i64);
        DateTime {
            year: year as u16,
            month: month as u8,
            day: day as u8,
            hour: (rem / 3600) as u8,
            minute: (rem % 3600 / 60) as u8,
            second: (rem % 60) as u8,
        }
    }

    /// Seconds since the Unix epoch, or `None` when unset, before 1970 or not a valid date/time.
    /// A leap second (`:60`) is accepted and counts as the first second of the next minute.
    pub fn to_unix_secs(&self) -> Option<u64> {
        if self.is_unset()
            || self.year < 1970
            || !(1..=12).contains(&self.month)
            || self.day == 0
            || self.day > days_in_month(self.year, self.month)
            || self.hour > 23
            || self.minute > 59
            || self.second > 60
        {
            return None;
        }
        let days = days_from_civil(self.year.into(), self.month.into(), self.day.into());
        let days = u64::try_from(days).ok()?;
        Some(
            days * SECS_PER_DAY
                + u64::from(self.hour) * 3600
                + u64::from(self.minute) * 60
                + u64::from(self.second),
        )
    }
}

fn is_leap(year: u16) -> bool {
    year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400))
}

fn days_in_month(year: u16, month: u8) -> u8 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant, "chrono-Compatible
/// Low-Level Date Algorithms").
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Inverse of [`days_from_civil`]: (year, month 1..=12, day 1..=31).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn dt(year: u16, month: u8, day: u8, hour: u8, minute: u8, second: u8) -> DateTime {
        DateTime {
            year,
            month,
            day,
            hour,
            minute,
            second,
        }
    }

    fn iso(d: &DateTime) -> String {
        let mut s = String::new();
        d.write_iso(&mut s);
        s
    }

    #[test]
    fn parse_forms() {
        let want = dt(2024, 3, 1, 12, 34, 56);
        for s in [
            "2024-03-01T12:34:56Z",
            "2024-03-01T12:34:56",
            "2024-03-01 12:34:56",
            " 2024-03-01T12:34:56.789Z ",
            "2024/3/1-12.34.56",
            "2024-03-01T12:34:56+01:00",
        ] {
            assert_eq!(DateTime::parse(s), Ok(want), "{s:?}");
        }
    }

    #[test]
    fn e1_gains_z() {
        let d = DateTime::parse("2000-01-01T12:33:14").unwrap();
        assert_eq!(iso(&d), "2000-01-01T12:33:14Z");
    }

    #[test]
    fn unset() {
        assert_eq!(DateTime::parse(""), Ok(DateTime::default()));
        assert_eq!(DateTime::parse("   "), Ok(DateTime::default()));
        assert!(DateTime::default().is_unset());
        assert_eq!(iso(&DateTime::default()), "");
        assert_eq!(DateTime::default().to_unix_secs(), None);
    }

    #[test]
    fn p5_zero_is_unset() {
        let d = DateTime::parse("0").unwrap();
        assert!(d.is_unset());
    }

    #[test]
    fn partial_values_leave_fields_zero() {
        assert_eq!(DateTime::parse("2024"), Ok(dt(2024, 0, 0, 0, 0, 0)));
        assert_eq!(DateTime::parse("2024-03"), Ok(dt(2024, 3, 0, 0, 0, 0)));
        assert_eq!(DateTime::parse("2024-03-"), Ok(dt(2024, 3, 0, 0, 0, 0)));
        assert_eq!(DateTime::parse("2024--03"), Ok(dt(2024, 0, 0, 0, 0, 0)));
        assert_eq!(DateTime::parse("2024-03-01T"), Ok(dt(2024, 3, 1, 0, 0, 0)));
    }

    #[test]
    fn errors() {
        for s in [
            "now",
            "-2024-03-01",
            "T12:00:00",
            "65536-01-01",
            "2024-256-01",
            "99999999999",
        ] {
            assert!(
                matches!(DateTime::parse(s), Err(ParseError::BadDateTime(_))),
                "{s:?}"
            );
        }
    }

    #[test]
    fn write_pads() {
        assert_eq!(iso(&dt(24, 1, 2, 3, 4, 5)), "0024-01-02T03:04:05Z");
        assert_eq!(iso(&dt(0, 0, 0, 0, 0, 1)), "0000-00-00T00:00:01Z");
        assert_eq!(iso(&dt(65535, 12, 31, 23, 59, 59)), "65535-12-31T23:59:59Z");
    }

    #[test]
    fn unix_known_values() {
        assert_eq!(DateTime::from_unix_secs(0), dt(1970, 1, 1, 0, 0, 0));
        assert_eq!(
            DateTime::from_unix_secs(1_709_296_496),
            dt(2024, 3, 1, 12, 34, 56)
        );
        assert_eq!(
            DateTime::from_unix_secs(951_782_400),
            dt(2000, 2, 29, 0, 0, 0)
        );
        assert_eq!(
            dt(2024, 3, 1, 12, 34, 56).to_unix_secs(),
            Some(1_709_296_496)
        );
        assert_eq!(
            dt(2020, 1, 27, 20, 47, 55).to_unix_secs(),
            Some(1_580_158_075)
        );
        assert_eq!(
            DateTime::from_unix_secs(u64::MAX),
            dt(65535, 12, 31, 23, 59, 59)
        );
        assert_eq!(
            dt(65535, 12, 31, 23, 59, 59).to_unix_secs(),
            Some(2_005_949_145_599)
        );
    }

    #[test]
    fn unix_rejects_invalid() {
        for d in [
            dt(1969, 12, 31, 23, 59, 59),
            dt(2024, 0, 1, 0, 0, 0),
            dt(2024, 13, 1, 0, 0, 0),
            dt(2023, 2, 29, 0, 0, 0),
            dt(2024, 4, 31, 0, 0, 0),
            dt(2024, 4, 0, 0, 0, 0),
            dt(2024, 4, 1, 24, 0, 0),
            dt(2024, 4, 1, 0, 60, 0),
            dt(2024, 4, 1, 0, 0, 61),
        ] {
            assert_eq!(d.to_unix_secs(), None, "{d:?}");
        }
        assert_eq!(dt(2024, 2, 29, 0, 0, 0).to_unix_secs(), Some(1_709_164_800));
        assert_eq!(
            dt(2016, 12, 31, 23, 59, 60).to_unix_secs(),
            dt(2017, 1, 1, 0, 0, 0).to_unix_secs()
        );
    }

    proptest! {
        #[test]
        fn unix_round_trip(secs in 0u64..=2_005_949_145_599) {
            let d = DateTime::from_unix_secs(secs);
            prop_assert_eq!(d.to_unix_secs(), Some(secs));
        }

        #[test]
        fn iso_round_trip(
            year in any::<u16>(), month in any::<u8>(), day in any::<u8>(),
            hour in any::<u8>(), minute in any::<u8>(), second in any::<u8>(),
        ) {
            let d = dt(year, month, day, hour, minute, second);
            prop_assert_eq!(DateTime::parse(&iso(&d)), Ok(d));
        }

        #[test]
        fn parse_never_panics(s in ".*") {
            let _ = DateTime::parse(&s);
        }
    }
}
