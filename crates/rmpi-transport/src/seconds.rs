//! Durations given by users as seconds (environment variables, launcher options), checked once.
//!
//! Every deadline in rmpi is `now + duration`; a duration of 1e20 s cannot be represented and
//! one of 2^64-1 s overflows the clock, so both are refused here with a message instead of
//! panicking later.

use std::time::Duration;

/// The longest duration accepted: a year, in seconds. Longer waits are almost certainly typos;
/// "no limit" is spelled by leaving the option unset.
pub const MAX_SECONDS: u64 = 365 * 24 * 3600;

/// Parses a positive number of seconds (fractions allowed) of at most [`MAX_SECONDS`].
///
/// ```
/// use std::time::Duration;
/// assert_eq!(rmpi_transport::seconds::parse("2.5"), Ok(Duration::from_millis(2500)));
/// assert!(rmpi_transport::seconds::parse("1e20").is_err());
/// ```
pub fn parse(s: &str) -> Result<Duration, String> {
    let secs: f64 =
        s.trim().parse().map_err(|_| format!("`{}` is not a number of seconds", shorten(s)))?;
    if !(secs.is_finite() && secs > 0.0) {
        return Err(format!("`{}` is not a positive number of seconds", shorten(s)));
    }
    if secs > MAX_SECONDS as f64 {
        return Err(format!("{secs} seconds is more than the maximum of {MAX_SECONDS} (a year)"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// At most 40 characters of `s`, for echoing user input in messages.
fn shorten(s: &str) -> String {
    match s.char_indices().nth(40) {
        Some((end, _)) => format!("{}...", &s[..end]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_and_garbage() {
        assert_eq!(parse("60"), Ok(Duration::from_secs(60)));
        assert_eq!(parse(" 0.001 "), Ok(Duration::from_millis(1)));
        assert_eq!(parse("31536000"), Ok(Duration::from_secs(MAX_SECONDS)));
        for bad in ["0", "-1", "nan", "inf", "", "abc", "31536001", "1e19", "1e20"] {
            assert!(parse(bad).is_err(), "{bad} accepted");
        }
        let long = "9".repeat(10_000);
        let msg = parse(&long).unwrap_err();
        assert!(msg.len() < 120, "{msg}");
        assert!(parse(&format!("x{long}")).unwrap_err().len() < 120);
    }
}
