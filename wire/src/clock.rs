//! Time as fjord counts and writes it, in both binaries: Unix epoch nanoseconds (the unit of
//! push timestamps, receipts and ledger rows), the time values the Loki API and the CLIs
//! accept (Unix seconds or nanoseconds, RFC 3339), durations (`1h`, `15m30s`, `7d`), and the
//! `--since/--from/--to` range of the report and query commands.

use std::time::{Duration, UNIX_EPOCH};

use thiserror::Error;

/// A time, duration or range argument that could not be used. Messages name the value, which
/// is an argument or a config value, never log content.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ClockError {
    /// Not a number and not RFC 3339.
    #[error("cannot parse time {0:?}: use RFC 3339 (2026-11-26T10:00:00Z), Unix seconds or Unix nanoseconds")]
    Time(String),
    /// A number too large, or negative.
    #[error("time {0:?} is out of range")]
    TimeOutOfRange(String),
    /// An RFC 3339 time before the epoch.
    #[error("time {0:?} is before 1970")]
    BeforeEpoch(String),
    /// Not a duration.
    #[error("cannot parse duration {value:?} ({reason}); use e.g. 30s, 15m, 1h, 7d")]
    Duration { value: String, reason: String },
    /// One flag of a range was wrong.
    #[error("--{flag}: {source}")]
    Flag {
        flag: &'static str,
        #[source]
        source: Box<ClockError>,
    },
    /// A query step that is not a positive duration or number of seconds.
    #[error("step {0:?} must be a positive duration or number of seconds")]
    Step(String),
    /// `--from` (or `--since`) lies after `--to`.
    #[error("--from must not be after --to")]
    Reversed,
}

/// Now, in Unix epoch nanoseconds (0 before 1970; saturating past year 2262).
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// Parses a point in time. Integers of 16 or more digits are nanoseconds, shorter ones
/// seconds; decimals are seconds; anything else must be RFC 3339.
pub fn parse_time(s: &str) -> Result<i64, ClockError> {
    let s = s.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        let v: i64 = s
            .parse()
            .map_err(|_| ClockError::TimeOutOfRange(s.to_owned()))?;
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
        return Err(ClockError::TimeOutOfRange(s.to_owned()));
    }
    // humantime reads `Z` only: an offset (`+02:00`, `-0530`) is taken off and applied here.
    if let Some((base, offset_ns)) = split_offset(s) {
        return parse_time(&format!("{base}Z")).map(|t| t.saturating_sub(offset_ns));
    }
    let t = humantime::parse_rfc3339_weak(s).map_err(|_| ClockError::Time(s.to_owned()))?;
    t.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .map_err(|_| ClockError::BeforeEpoch(s.to_owned()))
}

/// Splits `2026-11-26T10:00:00+02:00` into the part before the offset and the offset in ns.
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
/// Loki accepts both; in nanoseconds.
pub fn parse_step(s: &str) -> Result<i64, ClockError> {
    let s = s.trim();
    let ns = if let Ok(f) = s.parse::<f64>() {
        f * 1e9
    } else {
        parse_duration(s)
            .map_err(|_| ClockError::Step(s.to_owned()))?
            .as_nanos() as f64
    };
    if !(1.0..9.2e18).contains(&ns) {
        return Err(ClockError::Step(s.to_owned()));
    }
    Ok(ns as i64)
}

/// Parses a duration such as `1h`, `30m`, `2h30m`, `7d`, `250ms`.
pub fn parse_duration(s: &str) -> Result<Duration, ClockError> {
    humantime::parse_duration(s.trim()).map_err(|e| ClockError::Duration {
        value: s.to_owned(),
        reason: e.to_string(),
    })
}

/// A duration in nanoseconds, saturating.
pub fn nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// Formats Unix epoch ns as RFC 3339 with nanoseconds, UTC.
pub fn format_ns(ns: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_nanos(u64::try_from(ns).unwrap_or(0));
    humantime::format_rfc3339_nanos(t).to_string()
}

/// The inclusive range `[from_ns, to_ns]` of the `--since/--from/--to` flags: `to` defaults
/// to `now_ns`; `since` counts back from `to` and wins over `from`; with neither, the range
/// starts `default_lookback` before `to`, or at the beginning (0).
pub fn range(
    since: Option<&str>,
    from: Option<&str>,
    to: Option<&str>,
    now_ns: i64,
    default_lookback: Option<Duration>,
) -> Result<(i64, i64), ClockError> {
    let flag = |flag: &'static str| {
        move |e: ClockError| ClockError::Flag {
            flag,
            source: Box::new(e),
        }
    };
    let to_ns = match to {
        Some(t) => parse_time(t).map_err(flag("to"))?,
        None => now_ns,
    };
    let from_ns = match (since, from) {
        (Some(s), _) => {
            let d = parse_duration(s).map_err(flag("since"))?;
            to_ns.saturating_sub(nanos(d))
        }
        (None, Some(f)) => parse_time(f).map_err(flag("from"))?,
        (None, None) => default_lookback.map_or(0, |d| to_ns.saturating_sub(nanos(d))),
    };
    if from_ns > to_ns {
        return Err(ClockError::Reversed);
    }
    Ok((from_ns, to_ns))
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
        assert!(parse_step("soon").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_duration("2h30m").unwrap(), Duration::from_secs(9000));
        assert!(parse_duration("soon")
            .unwrap_err()
            .to_string()
            .contains("30s"));
    }

    #[test]
    fn ranges_from_flags() {
        let now = 10_000_000_000_000;
        assert_eq!(range(None, None, None, now, None), Ok((0, now)));
        let hour = Duration::from_secs(3600);
        assert_eq!(
            range(None, None, None, now, Some(hour)),
            Ok((now - 3_600_000_000_000, now))
        );
        assert_eq!(
            range(Some("1s"), Some("5"), None, now, None),
            Ok((now - 1_000_000_000, now))
        );
        assert_eq!(
            range(None, Some("5"), Some("6"), now, None),
            Ok((5_000_000_000, 6_000_000_000))
        );
        assert_eq!(
            range(None, Some("7"), Some("6"), now, None),
            Err(ClockError::Reversed)
        );
        let e = range(Some("soon"), None, None, now, None)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("--since: cannot parse duration"), "{e}");
        let e = range(None, None, Some("later"), now, None)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("--to: cannot parse time"), "{e}");
    }
}
