//! Timestamps as EC2 writes them (RFC 3339, e.g. `2026-11-21T00:35:53.000Z`).

/// A point in time: seconds since the Unix epoch and nanoseconds. Ordered chronologically.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp {
    /// Whole seconds since 1970-01-01T00:00:00Z.
    pub secs: i64,
    /// Nanoseconds within the second.
    pub nanos: u32,
}

impl Timestamp {
    /// Parses `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`; `None` when malformed.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let (date, rest) = text.split_once(['T', 't', ' '])?;
        let mut ymd = date.splitn(3, '-');
        let year: i64 = ymd.next()?.parse().ok()?;
        let month: u32 = ymd.next()?.parse().ok()?;
        let day: u32 = ymd.next()?.parse().ok()?;
        let (clock, offset_secs) = split_offset(rest)?;
        let (hms, fraction) = match clock.split_once('.') {
            Some((hms, fraction)) => (hms, Some(fraction)),
            None => (clock, None),
        };
        let mut parts = hms.splitn(3, ':');
        let hour: i64 = parts.next()?.parse().ok()?;
        let minute: i64 = parts.next()?.parse().ok()?;
        let second: i64 = parts.next()?.parse().ok()?;
        if !(1..=12).contains(&month)
            || !(1..=31).contains(&day)
            || hour > 23
            || minute > 59
            || second > 60
        {
            return None;
        }
        let nanos = match fraction {
            Some(f) if !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()) => {
                let digits: String = f.chars().chain(std::iter::repeat('0')).take(9).collect();
                digits.parse().ok()?
            }
            Some(_) => return None,
            None => 0,
        };
        let days = days_from_civil(year, month, day);
        let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_secs;
        Some(Self { secs, nanos })
    }
}

/// Splits `HH:MM:SS.fff+01:00` into the clock part and the offset in seconds east of UTC.
fn split_offset(rest: &str) -> Option<(&str, i64)> {
    if let Some(clock) = rest.strip_suffix(['Z', 'z']) {
        return Some((clock, 0));
    }
    let at = rest.rfind(['+', '-'])?;
    let (clock, offset) = rest.split_at(at);
    let sign = if offset.starts_with('-') { -1 } else { 1 };
    let (h, m) = offset[1..].split_once(':')?;
    let (h, m): (i64, i64) = (h.parse().ok()?, m.parse().ok()?);
    Some((clock, sign * (h * 3600 + m * 60)))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ec2_launch_times() {
        let t = Timestamp::parse("2026-11-21T00:35:53.000Z").unwrap();
        assert_eq!(t, Timestamp { secs: 1_795_221_353, nanos: 0 });
        assert_eq!(Timestamp::parse("1970-01-01T00:00:00Z").unwrap().secs, 0);
        assert_eq!(
            Timestamp::parse("2000-03-01T00:00:00.5Z").unwrap(),
            Timestamp { secs: 951_868_800, nanos: 500_000_000 }
        );
        assert_eq!(
            Timestamp::parse("2026-11-21T01:35:53+01:00"),
            Timestamp::parse("2026-11-21T00:35:53Z")
        );
    }

    #[test]
    fn orders_chronologically_across_formats() {
        let a = Timestamp::parse("2026-11-21T00:35:53.9Z").unwrap();
        let b = Timestamp::parse("2026-11-21T00:35:54Z").unwrap();
        assert!(a < b);
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "2026-11-21",
            "2026-13-01T00:00:00Z",
            "2026-11-21T00:00Z",
            "2026-11-21T00:00:00.xZ",
        ] {
            assert_eq!(Timestamp::parse(bad), None, "{bad}");
        }
    }
}
