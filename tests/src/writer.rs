//! An application stand-in: writes numbered lines to a log file at a steady rate from a
//! background thread, appending (`O_APPEND`, so copytruncate works) and reopening the path
//! when rotation has put a new file there, as an app does on its reopen signal.

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

impl Writer {
    /// Starts writing lines `0..` to `path` at about `per_sec` lines per second.
    pub fn start(path: &Path, per_sec: u64) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let written = Arc::new(AtomicU64::new(0));
        let path: PathBuf = path.to_owned();
        let (s, w) = (stop.clone(), written.clone());
        let handle = std::thread::spawn(move || {
            let mut f = open(&path).expect("open log");
            let mut ino = f.metadata().map(|m| m.ino()).unwrap_or(0);
            let start = Instant::now();
            let mut seq = 0u64;
            while !s.load(Ordering::Relaxed) {
                // Reopen when the path holds another file (rotated with `create`).
                if let Ok(m) = std::fs::metadata(&path) {
                    if m.ino() != ino {
                        if let Ok(nf) = open(&path) {
                            ino = nf.metadata().map(|m| m.ino()).unwrap_or(0);
                            f = nf;
                        }
                    }
                }
                writeln!(f, "{}", numbered_line(seq)).expect("write log line");
                seq += 1;
                w.store(seq, Ordering::Relaxed);
                // Pace: sleep until this many lines are due.
                let due = start + Duration::from_secs_f64(seq as f64 / per_sec as f64);
                if let Some(d) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(d);
                }
            }
            seq
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
