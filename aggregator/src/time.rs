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
    let t = humantime::parse_rfc3339_weak(s)
        .map_err(|_| format!("cannot parse time {s:?}: use RFC 3339 (2026-11-26T10:00:00Z), Unix seconds or Unix nanoseconds"))?;
    t.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .map_err(|_| format!("time {s:?} is before 1970"))
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
