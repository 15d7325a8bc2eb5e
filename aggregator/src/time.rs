//! Time values as the Loki API and the CLI accept them: Unix epoch nanoseconds, Unix seconds
//! (with a fraction), or RFC 3339; durations like `1h` or `15m30s`.

use std::time::{Duration, UNIX_EPOCH};

pub use fjord_wire::clock::now_ns;

/// Parses a point in time. Integers of 16 or more digits are nanoseconds, shorter ones
/// seconds; decimals are seconds; anything else must be RFC 3339.
pub fn parse_time(s: &str) -> Result<i64, String> {
    let s = s.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        let v: i64 = s
            .parse()
            .map_err(|_| format!("time {s:?} is out of range"))?;
        return Ok(if s.len() >= 16 {
            v
        } else {
            v.saturating_mul(1_000_000_000)
        });
    }
    if let Ok(f) = s.parse::<f64>() {
        if (0.0..9.2e9).contains(&f) {
            return Ok((f * 1e9) as i64);
        }
        return Err(format!("time {s:?} is out of range"));
    }
    // humantime reads `Z` only: an offset (`+02:00`, `-0530`) is taken off and applied here.
    if let Some((base, offset_ns)) = split_offset(s) {
        return parse_time(&format!("{base}Z")).map(|t| t.saturating_sub(offset_ns));
    }
    let t = humantime::parse_rfc3339_weak(s)
        .map_err(|_| format!("cannot parse time {s:?}: use RFC 3339 (2026-11-26T10:00:00Z), Unix seconds or Unix nanoseconds"))?;
    t.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .map_err(|_| format!("time {s:?} is before 1970"))
}

/// Splits `2026-11-26T10:00:00+02:00` into the UTC-less part and the offset in ns.
fn split_offset(s: &str) -> Option<(&str, i64)> {
    let t = s.find(['T', 't', ' '])?;
    let rel = s[t..].rfind(['+', '-'])?;
    let at = t + rel;
    let off = &s[at + 1..];
    let digits: String = off.chars().filter(|c| *c != ':').collect();
    if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let h: i64 = digits[..2].parse().ok()?;
    let m: i64 = digits[2..].parse().ok()?;
    let sign = if s.as_bytes()[at] == b'-' { -1 } else { 1 };
    Some((&s[..at], sign * (h * 3600 + m * 60) * 1_000_000_000))
}

/// Parses a query step: a duration (`15s`, `1m`) or seconds as a number (`15`, `0.5`), as
/// Loki accepts both.
pub fn parse_step(s: &str) -> Result<i64, String> {
    let s = s.trim();
    let ns = if let Ok(f) = s.parse::<f64>() {
        f * 1e9
    } else {
        parse_duration(s)?.as_nanos() as f64
    };
    if !(1.0..9.2e18).contains(&ns) {
        return Err(format!(
            "step {s:?} must be a positive duration or number of seconds"
        ));
    }
    Ok(ns as i64)
}

/// Parses a duration such as `1h`, `30m`, `2h30m`, `7d`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("cannot parse duration {s:?} ({e}); use e.g. 30s, 15m, 1h, 7d"))
}

/// Formats Unix epoch ns as RFC 3339 with nanoseconds, UTC.
pub fn format_ns(ns: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_nanos(u64::try_from(ns).unwrap_or(0));
    humantime::format_rfc3339_nanos(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_and_steps() {
        assert_eq!(
            parse_time("2026-11-26T12:00:00+02:00").unwrap(),
            parse_time("2026-11-26T10:00:00Z").unwrap()
        );
        assert_eq!(
            parse_time("2026-11-26T04:30:00.5-05:30").unwrap(),
            parse_time("2026-11-26T10:00:00.5Z").unwrap()
        );
        assert_eq!(parse_step("15s").unwrap(), 15_000_000_000);
        assert_eq!(parse_step("0.5").unwrap(), 500_000_000);
        assert!(parse_step("0").is_err());
        assert!(parse_step("-1").is_err());
    }

    #[test]
    fn time_formats() {
        assert_eq!(parse_time("1764151200").unwrap(), 1_764_151_200_000_000_000);
        assert_eq!(
            parse_time("1764151200123456789").unwrap(),
            1_764_151_200_123_456_789
        );
        assert_eq!(
            parse_time("1764151200.5").unwrap(),
            1_764_151_200_500_000_000
        );
        assert_eq!(
            parse_time("2025-11-26T10:00:00Z").unwrap(),
            1_764_151_200_000_000_000
        );
        assert!(parse_time("yesterday").is_err());
        assert!(parse_time("-5").is_err());
        assert_eq!(
            format_ns(1_764_151_200_123_456_789),
            "2025-11-26T10:00:00.123456789Z"
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_duration("2h30m").unwrap(), Duration::from_secs(9000));
        assert!(parse_duration("soon").unwrap_err().contains("30s"));
    }
}
