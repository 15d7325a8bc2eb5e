//! An application stand-in: writes numbered lines to a log file at a steady rate, appending
//! (`O_APPEND`, so copytruncate works) and reopening the path when rotation has put a new
//! file there, as an app does on its reopen signal. [`Writer`] runs it on a background
//! thread; the `fjord-writer` binary runs it as a process of its own (the pod test's app).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The line with sequence number `seq` (padded so files reach rotation sizes).
pub fn numbered_line(seq: u64) -> String {
    format!(
        "2026-11-26T10:00:00.000Z INFO payment-service seq={seq:08} msg=\"payment authorised\" order=ORD-2026-{seq:06} amount=42.50 currency=EUR"
    )
}

/// Extracts the sequence number from a stored line.
pub fn seq_of(line: &str) -> Option<u64> {
    let i = line.find("seq=")?;
    line.get(i + 4..i + 12)?.parse().ok()
}

/// Appends the numbered lines `range` to `path` (creating it and its directory).
pub fn append_numbered(path: &Path, range: std::ops::Range<u64>) {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).expect("log dir");
    }
    let mut f = open(path).expect("open log");
    for i in range {
        writeln!(f, "{}", numbered_line(i)).expect("write log line");
    }
}

/// A running writer.
pub struct Writer {
    stop: Arc<AtomicBool>,
    written: Arc<AtomicU64>,
    handle: Option<JoinHandle<u64>>,
}

fn open(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// Writes lines `0..` to `path` at about `per_sec` lines per second, one `write` per line as
/// an app does, until `stop` is set or `limit` lines are written; reopens the path when
/// rotation has put another file there. Calls `on_line(n)` after each line with the count so
/// far and returns the count (sequence numbers `0..n`).
pub fn write_paced(
    path: &Path,
    per_sec: u64,
    limit: Option<u64>,
    stop: &AtomicBool,
    mut on_line: impl FnMut(u64),
) -> std::io::Result<u64> {
    let mut f = open(path)?;
    let mut ino = f.metadata().map(|m| m.ino()).unwrap_or(0);
    let start = Instant::now();
    let mut seq = 0u64;
    while !stop.load(Ordering::Relaxed) && limit.is_none_or(|l| seq < l) {
        // Reopen when the path holds another file (rotated with `create`).
        if let Ok(m) = std::fs::metadata(path) {
            if m.ino() != ino {
                if let Ok(nf) = open(path) {
                    ino = nf.metadata().map(|m| m.ino()).unwrap_or(0);
                    f = nf;
                }
            }
        }
        // One write per line: `writeln!` on a `File` would split it into several.
        f.write_all(format!("{}\n", numbered_line(seq)).as_bytes())?;
        seq += 1;
        on_line(seq);
        // Pace: sleep until this many lines are due.
        let due = start + Duration::from_secs_f64(seq as f64 / per_sec as f64);
        if let Some(d) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(d);
        }
    }
    Ok(seq)
}

impl Writer {
    /// Starts writing lines `0..` to `path` at about `per_sec` lines per second.
    pub fn start(path: &Path, per_sec: u64) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let written = Arc::new(AtomicU64::new(0));
        let path: PathBuf = path.to_owned();
        let (s, w) = (stop.clone(), written.clone());
        let handle = std::thread::spawn(move || {
            write_paced(&path, per_sec, None, &s, |n| w.store(n, Ordering::Relaxed))
                .expect("write log line")
        });
        Writer {
            stop,
            written,
            handle: Some(handle),
        }
    }

    /// Lines written so far.
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    /// Stops and returns the number of lines written (sequence numbers `0..n`).
    pub fn stop(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.take().and_then(|h| h.join().ok()).unwrap_or(0)
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Checks that `stored` holds each of `expected` exactly once and nothing else; the panic
/// message names the first few missing, duplicated and unexpected sequence numbers.
pub fn assert_exactly_once(stored: &[u64], expected: &std::collections::BTreeSet<u64>) {
    assert_once_between(stored, expected, expected);
}

/// Checks that `stored` has no duplicates, holds every number of `required`, and nothing
/// outside `allowed`.
pub fn assert_once_between(
    stored: &[u64],
    required: &std::collections::BTreeSet<u64>,
    allowed: &std::collections::BTreeSet<u64>,
) {
    let expected = required;
    let mut counts = std::collections::BTreeMap::new();
    for s in stored {
        *counts.entry(*s).or_insert(0u32) += 1;
    }
    let dup: Vec<u64> = counts
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(s, _)| *s)
        .take(10)
        .collect();
    let missing: Vec<u64> = expected
        .iter()
        .filter(|s| !counts.contains_key(s))
        .copied()
        .take(10)
        .collect();
    let extra: Vec<u64> = counts
        .keys()
        .filter(|s| !allowed.contains(s))
        .copied()
        .take(10)
        .collect();
    assert!(
        dup.is_empty() && missing.is_empty() && extra.is_empty(),
        "expected at least {} lines exactly once, stored {}: duplicated {dup:?}, missing {missing:?}, unexpected {extra:?}",
        expected.len(),
        stored.len()
    );
}
