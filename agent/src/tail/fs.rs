//! The tailer's view of the world: a small filesystem-and-clock seam. The agent runs the
//! tailer over [`OsEnv`] (the real files, found by [`Discovery`], and the system clock); the
//! model-based tests run the very same state machine over an in-memory filesystem and a
//! clock they advance by hand.
//!
//! Only what the tailer needs is here: list the matching files, list one directory (for
//! rotated siblings), stat a path or an open handle, and read at an offset.

use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use std::collections::HashSet;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::discover::{Discovery, Watcher};
use crate::metrics::Metrics;

/// What the tailer knows of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    pub dev: u64,
    pub ino: u64,
    pub len: u64,
    /// Modification time, Unix nanoseconds.
    pub mtime_ns: i64,
}

impl Meta {
    /// Device and inode, as `dev:ino` (the form kept in the state DB).
    pub fn dev_ino(&self) -> String {
        format!("{}:{}", self.dev, self.ino)
    }
}

/// The filesystem and clock the tailer runs on.
pub trait Env {
    /// An open file: reads through it keep working after the file is renamed or deleted.
    type File;

    /// Regular files the configured `paths` match now, sorted by path.
    fn scan(&mut self) -> Vec<(PathBuf, Meta)>;
    /// Regular files directly in `dir`, with their metadata (symlinks followed).
    fn list_dir(&self, dir: &Path) -> Vec<(PathBuf, Meta)>;
    fn stat(&self, path: &Path) -> io::Result<Meta>;
    fn open(&self, path: &Path) -> io::Result<Self::File>;
    fn fstat(&self, file: &Self::File) -> io::Result<Meta>;
    fn read_at(&self, file: &Self::File, buf: &mut [u8], offset: u64) -> io::Result<usize>;

    /// A monotonic clock for timers.
    fn now(&self) -> Instant;
    /// Wall time, Unix nanoseconds (record timestamps, new identities).
    fn wall_ns(&self) -> i64;
    /// Waits up to `d` for a file event; returns early when one arrives.
    fn wait(&mut self, d: Duration);
}

/// SHA-256 (16 hex) of the first `len` bytes of `file`; `None` if it has fewer.
pub fn fingerprint<E: Env>(env: &E, file: &E::File, len: u64) -> io::Result<Option<String>> {
    let mut buf = vec![0u8; len as usize];
    let mut got = 0;
    while got < buf.len() {
        match env.read_at(file, &mut buf[got..], got as u64)? {
            0 => return Ok(None),
            n => got += n,
        }
    }
    Ok(Some(hex::encode(&Sha256::digest(&buf)[..8])))
}

/// The offset just after the last newline of the file (where `read_from = "end"` starts).
pub fn end_of_last_line<E: Env>(env: &E, file: &E::File, len: u64) -> io::Result<u64> {
    const WINDOW: u64 = 1 << 20;
    let from = len.saturating_sub(WINDOW);
    let mut buf = vec![0u8; (len - from) as usize];
    let n = env.read_at(file, &mut buf, from)?;
    Ok(memchr::memrchr(b'\n', &buf[..n]).map_or(len, |i| from + i as u64 + 1))
}

pub use fjord_wire::clock::now_ns;

/// Refused paths remembered so that each is logged once.
const MAX_REFUSED_REMEMBERED: usize = 10_000;

fn meta(md: &std::fs::Metadata) -> Meta {
    Meta {
        dev: md.dev(),
        ino: md.ino(),
        len: md.len(),
        mtime_ns: md.mtime().saturating_mul(1_000_000_000) + md.mtime_nsec(),
    }
}

/// The real files and clock. File events from the `notify` watcher arrive on `wake`.
pub struct OsEnv {
    discovery: Discovery,
    /// Re-armed on every scan, so a root created or replaced later is watched too.
    watcher: Watcher,
    wake: std::sync::mpsc::Receiver<()>,
    /// After a wake-up, let writes gather this long since the last wait began, so an app
    /// flushing every line does not cost a read round per line.
    min_read_interval: Duration,
    last_wait: Instant,
    metrics: Arc<Metrics>,
    /// Ends a walk early on shutdown.
    stop: CancellationToken,
    /// Refused paths already reported (each is logged once).
    refused: HashSet<PathBuf>,
}

impl OsEnv {
    pub fn new(
        discovery: Discovery,
        watcher: Watcher,
        wake: std::sync::mpsc::Receiver<()>,
        min_read_interval: Duration,
        metrics: Arc<Metrics>,
        stop: CancellationToken,
    ) -> OsEnv {
        OsEnv {
            discovery,
            watcher,
            wake,
            min_read_interval,
            last_wait: Instant::now(),
            metrics,
            stop,
            refused: HashSet::new(),
        }
    }
}

impl Env for OsEnv {
    type File = File;

    fn scan(&mut self) -> Vec<(PathBuf, Meta)> {
        self.watcher.refresh(self.discovery.roots());
        let stop = self.stop.clone();
        let found = self.discovery.scan(&|| stop.is_cancelled());
        // Bounded: a directory of ever new refused names must not grow this without end.
        if self.refused.len() > MAX_REFUSED_REMEMBERED {
            self.refused.clear();
        }
        for (path, why) in found.refused {
            if self.refused.insert(path.clone()) {
                tracing::warn!(path = %path.display(), reason = why.as_str(), "not following a matching file");
                self.metrics
                    .files_refused
                    .get_or_create(&crate::metrics::ReasonLabel {
                        reason: why.as_str().to_owned(),
                    })
                    .inc();
            }
        }
        found
            .files
            .into_iter()
            .map(|(p, md)| (p, meta(&md)))
            .collect()
    }

    fn list_dir(&self, dir: &Path) -> Vec<(PathBuf, Meta)> {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        rd.flatten()
            .filter_map(|e| {
                let p = e.path();
                let md = std::fs::metadata(&p).ok()?;
                md.is_file().then(|| (p, meta(&md)))
            })
            .collect()
    }

    fn stat(&self, path: &Path) -> io::Result<Meta> {
        std::fs::metadata(path).map(|m| meta(&m))
    }

    fn open(&self, path: &Path) -> io::Result<File> {
        File::open(path)
    }

    fn fstat(&self, file: &File) -> io::Result<Meta> {
        file.metadata().map(|m| meta(&m))
    }

    fn read_at(&self, file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        file.read_at(buf, offset)
    }

    fn now(&self) -> Instant {
        Instant::now()
    }

    fn wall_ns(&self) -> i64 {
        now_ns()
    }

    fn wait(&mut self, d: Duration) {
        use std::sync::mpsc::RecvTimeoutError;
        let began = self.last_wait;
        match self.wake.recv_timeout(d) {
            Ok(()) => {
                let due = began + self.min_read_interval;
                if let Some(d) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(d);
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => std::thread::sleep(d),
        }
        self.last_wait = Instant::now();
    }
}
