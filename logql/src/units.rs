//! Durations and byte sizes as LogQL writes them: `1h30m`, `250ms`, `1.5s`, `7d`; `20MB`,
//! `1KiB`, `5B`. Parsing returns `None` instead of an error so that the lexer can try one
//! reading after the other; every value is checked for overflow.

/// Nanoseconds per duration unit, longest names first so that `ms` is not read as `m`.
const DURATION_UNITS: &[(&str, f64)] = &[
    ("ns", 1.0),
    ("us", 1e3),
    ("µs", 1e3),
    ("ms", 1e6),
    ("s", 1e9),
    ("m", 60e9),
    ("h", 3600e9),
    ("d", 86400e9),
    ("w", 7.0 * 86400e9),
    ("y", 365.0 * 86400e9),
];

/// Parses a duration such as `5m`, `1h30m`, `1.5s` into nanoseconds.
pub fn parse_duration(s: &str) -> Option<i64> {
    let mut rest = s;
    let mut total = 0f64;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_end == 0 {
            return None;
        }
        let n: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_end];
        let (_, mult) = DURATION_UNITS.iter().find(|(u, _)| *u == unit)?;
        total += n * mult;
        rest = &rest[unit_end..];
    }
    if !total.is_finite() || total > i64::MAX as f64 {
        return None;
    }
    Some(total.round() as i64)
}

/// Parses a byte size such as `20MB`, `1KiB`, `5B`, `1.5 GB` or a bare `512` (bytes), with
/// case-insensitive units, as Loki's humanize reading does.
pub fn parse_bytes(s: &str) -> Option<u64> {
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    if split == 0 {
        return None;
    }
    let n: f64 = s[..split].parse().ok()?;
    let unit = s[split..].trim_start().to_ascii_lowercase();
    let mult: f64 = match unit.as_str() {
        "" | "b" => 1.0,
        "kb" | "k" => 1e3,
        "mb" | "m" => 1e6,
        "gb" | "g" => 1e9,
        "tb" | "t" => 1e12,
        "pb" | "p" => 1e15,
        "eb" | "e" => 1e18,
        "kib" | "ki" => 1024.0,
        "mib" | "mi" => 1024f64.powi(2),
        "gib" | "gi" => 1024f64.powi(3),
        "tib" | "ti" => 1024f64.powi(4),
        "pib" | "pi" => 1024f64.powi(5),
        "eib" | "ei" => 1024f64.powi(6),
        _ => return None,
    };
    let v = n * mult;
    (v.is_finite() && v < u64::MAX as f64).then(|| v.round() as u64)
}

/// Formats nanoseconds as the shortest exact duration text (`1h30m`, `250ms`), which
/// [`parse_duration`] reads back to the same value.
pub fn format_duration(ns: i64) -> String {
    if ns == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    let mut rest = ns.unsigned_abs();
    for (unit, n) in [
        ("h", 3_600_000_000_000u64),
        ("m", 60_000_000_000),
        ("s", 1_000_000_000),
        ("ms", 1_000_000),
        ("us", 1_000),
        ("ns", 1),
    ] {
        if rest >= n {
            out.push_str(&format!("{}{unit}", rest / n));
            rest %= n;
        }
    }
    out
}

/// Reads a label value as a Go duration (`1.5s`, `250ms`, `-3m`, a bare `0`) into seconds,
/// as `duration()` conversions and duration label filters do.
pub fn duration_seconds(s: &str) -> Option<f64> {
    let s = s.trim();
    let (neg, body) = match s.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if body == "0" {
        return Some(0.0);
    }
    let ns = parse_duration(body)? as f64;
    Some(if neg { -ns } else { ns } / 1e9)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5m"), Some(300_000_000_000));
        assert_eq!(parse_duration("1.5s"), Some(1_500_000_000));
        assert_eq!(parse_duration("1h30m"), Some(5_400_000_000_000));
        assert_eq!(parse_duration("5"), None);
        assert_eq!(parse_duration("5x"), None);
        assert_eq!(parse_duration("9999999999y"), None);
        for ns in [1, 999, 1_000_000, 61_000_000_000, 5_400_000_000_123] {
            assert_eq!(parse_duration(&format_duration(ns)), Some(ns));
        }
        assert_eq!(duration_seconds("-250ms"), Some(-0.25));
    }

    #[test]
    fn bytes() {
        assert_eq!(parse_bytes("20MB"), Some(20_000_000));
        assert_eq!(parse_bytes("1KiB"), Some(1024));
        assert_eq!(parse_bytes("5b"), Some(5));
        assert_eq!(parse_bytes("5"), Some(5));
        assert_eq!(parse_bytes("2 KB"), Some(2000));
        assert_eq!(parse_bytes("KB"), None);
        assert_eq!(parse_bytes("5q"), None);
    }
}
