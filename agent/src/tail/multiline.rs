//! Joining lines into multiline records (stack traces) before redaction, so a secret split
//! across lines is scrubbed as one record.
//!
//! A line matching the start pattern begins a record; other lines continue the record before
//! them. A record is complete when the next start line arrives, when it reaches its line or
//! byte limit, or when no line arrived for the timeout. Ranges stay contiguous: a record
//! covers `[first line start, last line end)`.

use std::borrow::Cow;
use std::time::{Duration, Instant};

use super::lines::Line;

/// A record: one or more lines joined with `\n` (owned: it outlives the read buffer).
pub type Record = Line<'static>;

/// Joins lines by a start pattern.
#[derive(Debug)]
pub struct Joiner {
    start: regex::Regex,
    timeout: Duration,
    max_lines: usize,
    max_bytes: usize,
    open: Option<(Record, usize, Instant)>,
}

impl Joiner {
    pub fn new(
        start: regex::Regex,
        timeout: Duration,
        max_lines: usize,
        max_bytes: usize,
    ) -> Joiner {
        Joiner {
            start,
            timeout,
            max_lines,
            max_bytes,
            open: None,
        }
    }

    /// Adds a line; completed records are pushed to `out`.
    pub fn push(&mut self, line: Line<'_>, now: Instant, out: &mut Vec<Record>) {
        let starts = self.start.is_match(&line.text);
        if let Some((rec, n, last)) = &mut self.open {
            let fits =
                *n < self.max_lines && rec.text.len() + 1 + line.text.len() <= self.max_bytes;
            if !starts && fits {
                let text = rec.text.to_mut();
                text.push('\n');
                text.push_str(&line.text);
                rec.end = line.end;
                rec.cut |= line.cut;
                rec.invalid_utf8 |= line.invalid_utf8;
                *n += 1;
                *last = now;
                return;
            }
        }
        if let Some((rec, _, _)) = self.open.take() {
            out.push(rec);
        }
        let line = Line {
            text: Cow::Owned(line.text.into_owned()),
            ..line
        };
        self.open = Some((line, 1, now));
    }

    /// Completes the open record if its timeout has passed (or `force`).
    pub fn tick(&mut self, now: Instant, force: bool) -> Option<Record> {
        match &self.open {
            Some((_, _, last)) if force || now.duration_since(*last) >= self.timeout => {
                self.open.take().map(|(r, _, _)| r)
            }
            _ => None,
        }
    }

    /// Whether a record is waiting for more lines.
    pub fn is_open(&self) -> bool {
        self.open.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(text: &str, start: u64) -> Line<'_> {
        Line {
            text: Cow::Borrowed(text),
            start,
            end: start + text.len() as u64 + 1,
            cut: false,
            invalid_utf8: false,
        }
    }

    #[test]
    fn stack_trace_is_one_record() {
        let start = regex::Regex::new(r"^\d{4}-\d{2}-\d{2}").unwrap();
        let mut j = Joiner::new(start, Duration::from_millis(500), 100, 10_000);
        let t0 = Instant::now();
        let mut out = Vec::new();
        let mut off = 0;
        let mut ends = Vec::new();
        for l in [
            "2026-11-26 ERROR boom",
            "java.lang.IllegalStateException: card 4111",
            "\tat com.shop.Pay.charge(Pay.java:42)",
            "2026-11-26 INFO next",
        ] {
            let ln = line(l, off);
            off = ln.end;
            ends.push(off);
            j.push(ln, t0, &mut out);
        }
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].text.lines().count(), 3);
        assert_eq!((out[0].start, out[0].end), (0, ends[2]));
        assert!(j.tick(t0 + Duration::from_millis(100), false).is_none());
        let last = j.tick(t0 + Duration::from_millis(600), false).unwrap();
        assert_eq!(last.start, ends[2]);
        assert_eq!(last.end, off);
        assert!(!j.is_open());
    }

    #[test]
    fn line_limit_splits_a_runaway_record() {
        let start = regex::Regex::new("^START").unwrap();
        let mut j = Joiner::new(start, Duration::from_secs(1), 3, 10_000);
        let t0 = Instant::now();
        let mut out = Vec::new();
        let mut off = 0;
        for _ in 0..7 {
            let ln = line("  continuation", off);
            off = ln.end;
            j.push(ln, t0, &mut out);
        }
        assert_eq!(out.len(), 2);
        assert!(out.iter().all(|r| r.text.lines().count() == 3));
        assert_eq!(out[1].start, out[0].end);
    }
}
