//! The tailer: a synchronous state machine that follows every discovered file through
//! rotation, truncation, deletion and restarts, and emits its lines with their byte offsets
//! to a [`Sink`] (the pipeline's batcher: multiline, redaction, batching, sending).
//!
//! It runs over an [`Env`] (filesystem and clock: the real one, or the in-memory one of the
//! model-based tests) and a [`Checkpoints`] store (the state DB, or a map in tests). Batching,
//! sending and checkpoint commits stay in the pipeline.
//!
//! A followed file is an *identity*: a byte stream with a checkpoint, known by the inode it
//! is read from and a SHA-256 fingerprint of its first [`FINGERPRINT_BYTES`] bytes. Each
//! identity is in one [`Phase`]:
//! - `Live`: open at a path `paths` matches, read as it grows;
//! - `Parked`: closed to stay within `max_open_files`, reopened by path when it grows;
//! - `Draining`: renamed away, deleted, or found as a rotated sibling: read to its end, then
//!   finished;
//! - `Orphan`: its inode was truncated (copytruncate); waiting for the rotated copy to
//!   continue in, at the offset it had reached;
//! - `Failed`: a batch of it could not be formed; nothing more is read until restart, so no
//!   later batch can move its checkpoint past lines that were not sent.
//!
//! Rotated siblings: an identity whose inode left the followed path, or that was orphaned,
//! or that has a checkpoint after a restart, is looked for in its directory among files whose
//! names start with its file's name (`app.log.1`, `app.log-20261204`), compressed ones left
//! alone: by inode for a renamed file, by fingerprint for a copy. A sibling only finishes a
//! known identity; it never starts a new one. Bytes a rotation deleted before they were read
//! are reported to the sink as a [`Loss`].
//!
//! Invariants: the lines of an identity cover its bytes contiguously from the checkpoint, in
//! order; memory per file is bounded by the line limit, and across files by
//! `max_building_bytes`.

pub mod fs;
// The newline scan's SIMD path (property-tested against memchr).
#[allow(unsafe_code)]
pub mod lines;
#[cfg(test)]
mod model;
pub mod multiline;

use std::collections::{HashMap, HashSet, VecDeque};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::config::{Config, ReadFrom};
use crate::metrics::{FileLabel, Metrics, ReasonLabel};
use crate::state::{Checkpoint, Loss, StateHandle};
use fs::{end_of_last_line, fingerprint};
pub use fs::{Env, Meta, OsEnv};
use lines::{Line, Splitter};

/// Bytes at the start of a file that identify it.
pub const FINGERPRINT_BYTES: u64 = 256;

/// Bytes read per `read` call.
const READ_CHUNK: usize = 256 * 1024;

/// A file renamed away or deleted is read until it has not grown for this long.
const ROTATED_GRACE: Duration = Duration::from_secs(1);

/// A new file smaller than a fingerprint is opened once it has not grown for this long (or
/// has reached [`FINGERPRINT_BYTES`]): a copy being written (copytruncate's `cp`) must not
/// be mistaken for a new file before its first bytes show whose copy it is.
const SETTLE: Duration = Duration::from_millis(300);

/// How often the lag gauges are refreshed.
const LAG_REFRESH: Duration = Duration::from_secs(5);

/// How often checkpoints are marked seen, stale ones forgotten and the ledger pruned.
const HOUSEKEEPING: Duration = Duration::from_secs(60);

/// Growth samples kept per file for the age of its oldest unacknowledged line; past this,
/// the newest sample absorbs further growth (the oldest stays exact).
const BACKLOG_SAMPLES: usize = 32;

/// File name endings of compressed rotations: never read as siblings.
const COMPRESSED: &[&str] = &[
    ".gz", ".bz2", ".xz", ".zst", ".lz4", ".lzma", ".lzo", ".z", ".Z", ".zip", ".br", ".7z",
];

/// What the tailer needs of the agent's configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub max_open_files: usize,
    pub max_line_bytes: usize,
    pub read_from: ReadFrom,
    pub rescan_interval: Duration,
    pub poll_interval: Duration,
    pub partial_line_flush: Duration,
    pub max_building_bytes: usize,
    /// Bytes read from one file per round before the next file gets its turn.
    pub read_budget: usize,
    pub checkpoint_ttl: Duration,
}

impl Settings {
    pub fn of(cfg: &Config) -> Settings {
        Settings {
            max_open_files: cfg.max_open_files,
            max_line_bytes: cfg.max_line_bytes,
            read_from: cfg.read_from,
            rescan_interval: cfg.rescan_interval,
            poll_interval: cfg.poll_interval,
            partial_line_flush: cfg.partial_line_flush,
            max_building_bytes: cfg.max_building_bytes,
            read_budget: 2 * cfg.max_batch_bytes,
            checkpoint_ttl: cfg.checkpoint_ttl,
        }
    }
}

/// Which file a line or event belongs to.
#[derive(Debug, Clone, Copy)]
pub struct FileRef<'a> {
    pub identity: &'a str,
    /// The path the identity was first seen at: the `file` label of its records.
    pub path: &'a str,
}

/// Why a sink refused a line.
#[derive(Debug)]
pub enum Stop {
    /// The shipper is gone: stop reading.
    Closed,
    /// This file cannot go on (a batch of it could not be formed): stop reading it, so no
    /// later batch moves its checkpoint past the lines that were not sent.
    File(String),
}

/// Where the tailer's lines go. `Stream` is the sink's per-identity state (an open multiline
/// record, a batch being built), kept beside the identity so a line costs no lookup.
pub trait Sink {
    type Stream;
    /// An identity starts, or resumes after a restart, at `offset`.
    fn open(&mut self, f: FileRef<'_>, offset: u64) -> Self::Stream;
    /// One line, `[line.start, line.end)` of the identity's bytes.
    fn line(
        &mut self,
        s: &mut Self::Stream,
        f: FileRef<'_>,
        line: Line<'_>,
        now: Instant,
        read_ns: i64,
    ) -> Result<(), Stop>;
    /// Time-driven work (multiline timeout, linger). With `end`, the identity is finished:
    /// everything it holds is handed on.
    fn tick(
        &mut self,
        s: &mut Self::Stream,
        f: FileRef<'_>,
        now: Instant,
        read_ns: i64,
        end: bool,
    ) -> Result<(), Stop>;
    /// Hands on the complete records built so far (memory budget, shutdown).
    fn flush(&mut self, s: &mut Self::Stream, f: FileRef<'_>) -> Result<(), Stop>;
    /// Bytes of records held for this identity.
    fn held_bytes(&self, s: &Self::Stream) -> usize;
    /// Whether anything is held (records, or an open multiline record).
    fn holds(&self, s: &Self::Stream) -> bool;
    /// Bytes of an identity that a rotation deleted, or a truncation cut, before they were
    /// read.
    fn lost(&mut self, f: FileRef<'_>, loss: &Loss);
}

/// The checkpoints the tailer resumes from.
pub trait Checkpoints {
    /// Checkpoints recorded for a device:inode, newest first.
    fn of_inode(&mut self, dev_ino: &str) -> io::Result<Vec<Checkpoint>>;
    /// Checkpoints with this full-length fingerprint, newest first.
    fn by_fingerprint(&mut self, fp_len: u64, fp_hash: &str) -> io::Result<Vec<Checkpoint>>;
    /// Checkpoints seen within `ttl` (after a restart: identities that may have rotated).
    fn recent(&mut self, ttl: Duration) -> io::Result<Vec<Checkpoint>>;
    /// Checkpoints seen within `ttl` whose path `path` extends (`app.log` for
    /// `app.log.1`): the identities `path` may be a rotated copy of.
    fn rotated_from(&mut self, path: &str, ttl: Duration) -> io::Result<Vec<Checkpoint>>;
    /// Records (or updates) a checkpoint; its offset never moves backwards.
    fn put(&mut self, c: &Checkpoint) -> io::Result<()>;
    /// The end of the last batch of `identity` formed before a restart and not answered:
    /// bytes that were read, and are lost if the file is gone.
    fn pending_end(&mut self, identity: &str) -> io::Result<Option<u64>>;
    /// Whether this is the agent's first start on this volume.
    fn is_fresh(&self) -> bool;
    /// Periodic upkeep: these identities are present; forget long-gone ones.
    fn housekeeping(&mut self, present: Vec<String>);
}

fn db(e: crate::state::StateGone) -> io::Error {
    io::Error::other(e)
}

fn sql(e: rusqlite::Error) -> io::Error {
    io::Error::other(e)
}

/// The state DB as the tailer's checkpoint store (through the thread that owns it).
pub struct StateCheckpoints {
    pub state: StateHandle,
    pub checkpoint_ttl: Duration,
    pub ledger_retention: Duration,
}

impl Checkpoints for StateCheckpoints {
    fn of_inode(&mut self, dev_ino: &str) -> io::Result<Vec<Checkpoint>> {
        let di = dev_ino.to_owned();
        self.state
            .run_blocking(move |s| s.checkpoints_of(&di))
            .map_err(db)?
            .map_err(sql)
    }

    fn by_fingerprint(&mut self, fp_len: u64, fp_hash: &str) -> io::Result<Vec<Checkpoint>> {
        let fp = fp_hash.to_owned();
        self.state
            .run_blocking(move |s| s.checkpoints_by_fingerprint(fp_len, &fp))
            .map_err(db)?
            .map_err(sql)
    }

    fn recent(&mut self, ttl: Duration) -> io::Result<Vec<Checkpoint>> {
        self.state
            .run_blocking(move |s| s.recent_checkpoints(ttl))
            .map_err(db)?
            .map_err(sql)
    }

    fn rotated_from(&mut self, path: &str, ttl: Duration) -> io::Result<Vec<Checkpoint>> {
        let path = path.to_owned();
        self.state
            .run_blocking(move |s| s.checkpoints_extended_by(&path, ttl))
            .map_err(db)?
            .map_err(sql)
    }

    fn put(&mut self, c: &Checkpoint) -> io::Result<()> {
        let c = c.clone();
        self.state
            .run_blocking(move |s| s.put_checkpoint(&c))
            .map_err(db)?
            .map_err(sql)
    }

    fn pending_end(&mut self, identity: &str) -> io::Result<Option<u64>> {
        let id = identity.to_owned();
        let p = self
            .state
            .run_blocking(move |s| s.pending(&id))
            .map_err(db)?
            .map_err(sql)?;
        Ok(p.iter().map(|b| b.end).max())
    }

    fn is_fresh(&self) -> bool {
        self.state.is_fresh()
    }

    fn housekeeping(&mut self, present: Vec<String>) {
        let (checkpoint_ttl, retention) = (self.checkpoint_ttl, self.ledger_retention);
        let done = self.state.run_blocking(move |st| {
            let ids: Vec<&str> = present.iter().map(String::as_str).collect();
            match st.touch_and_forget(&ids, checkpoint_ttl) {
                Ok(0) => {}
                Ok(n) => tracing::info!(
                    forgotten = n,
                    "forgot checkpoints of files gone for longer than checkpoint_ttl"
                ),
                Err(err) => tracing::warn!(%err, "checkpoint housekeeping failed"),
            }
            if let Err(err) = st.prune_ledger(retention) {
                tracing::warn!(%err, "ledger pruning failed");
            }
        });
        if done.is_err() {
            tracing::warn!("checkpoint housekeeping skipped: the state DB has stopped");
        }
    }
}

/// Where an identity's bytes come from now.
enum Phase<F> {
    /// Open at a path `paths` matches; read as it grows.
    Live(F),
    /// Closed to stay within `max_open_files`; reopened by path when discovery sees its
    /// inode (`seen`: size and mtime) other than it was when last read.
    Parked { seen: Option<(u64, i64)> },
    /// Renamed away, deleted, or found as a rotated sibling: read to its end, then finished.
    Draining(F),
    /// Its inode was truncated or replaced: waiting for the rotated copy.
    Orphan { since: Instant },
    /// A batch could not be formed: not read again until restart.
    Failed,
}

impl<F> Phase<F> {
    /// Live → Draining: its inode left the followed path. Other phases stay.
    fn draining(self) -> Self {
        match self {
            Phase::Live(f) => Phase::Draining(f),
            p => p,
        }
    }

    fn file(&self) -> Option<&F> {
        match self {
            Phase::Live(f) | Phase::Draining(f) => Some(f),
            _ => None,
        }
    }
}

/// One followed identity.
struct Tailed<F, S> {
    identity: String,
    /// The path the identity was first seen at: the `file` label of its records.
    label_path: String,
    /// Where its inode was last seen.
    seen_path: PathBuf,
    dev_ino: String,
    fp_len: u64,
    fp_hash: String,
    phase: Phase<F>,
    /// File size at the last look.
    size: u64,
    /// Size and modification time at which the fingerprint was last verified (`None`:
    /// verify on the next read). A file truncated and rewritten to the same size still has
    /// a new mtime.
    verified: Option<(u64, i64)>,
    splitter: Splitter,
    stream: S,
    last_growth: Instant,
    /// (size, wall ns when first seen) samples, oldest first: the age of the oldest
    /// unacknowledged line.
    backlog: VecDeque<(u64, i64)>,
}

impl<F, S> Tailed<F, S> {
    /// Moves to the phase `to` makes of the current one.
    fn shift(&mut self, to: impl FnOnce(Phase<F>) -> Phase<F>) {
        let from = std::mem::replace(&mut self.phase, Phase::Failed);
        self.phase = to(from);
    }

    fn at_eof(&self) -> bool {
        self.phase.file().is_none() || self.size <= self.splitter.fed_to()
    }

    fn fref(&self) -> FileRef<'_> {
        FileRef {
            identity: &self.identity,
            path: &self.label_path,
        }
    }

    /// The sink's state for this identity, and which identity it is.
    fn split(&mut self) -> (&mut S, FileRef<'_>) {
        (
            &mut self.stream,
            FileRef {
                identity: &self.identity,
                path: &self.label_path,
            },
        )
    }

    fn file_name(&self) -> Option<&std::ffi::OsStr> {
        Path::new(&self.label_path).file_name()
    }
}

/// What the tailer shares with the rest of the agent.
pub struct Shared {
    pub metrics: Arc<Metrics>,
    /// Acknowledged offset per identity, kept by the shipper (for the backlog gauges).
    pub acked: Arc<Mutex<HashMap<String, u64>>>,
    /// Unix seconds of the tailer's last loop, for `/healthz`.
    pub heartbeat: Arc<AtomicU64>,
}

/// The shipper is gone; stop reading.
#[derive(Debug)]
pub struct Closed;

/// The tailer. Build with [`Tailer::new`], then call [`Tailer::run`] on a blocking thread (or
/// drive [`Tailer::round`] by hand, as the model tests do).
pub struct Tailer<E: Env, K: Checkpoints, S: Sink> {
    set: Settings,
    env: E,
    store: K,
    sink: S,
    sh: Shared,
    files: HashMap<String, Tailed<E::File, S::Stream>>,
    /// Inode → identity reading it.
    by_inode: HashMap<String, String>,
    /// Paths that could not be opened, and when that was last logged.
    open_failures: HashMap<PathBuf, Instant>,
    /// New small files waiting to settle: inode → (path, size, since when at that size).
    settling: HashMap<String, (PathBuf, u64, Instant)>,
    first_scan: bool,
    next_rescan: Option<Instant>,
    next_housekeeping: Option<Instant>,
    next_lag: Option<Instant>,
    buf: Vec<u8>,
}

/// Whether `path` is a rotated name of the file at `of` (`app.log.1`, `app.log-20261204`
/// for `app.log`), in the same directory.
fn is_sibling(path: &Path, of: &str) -> bool {
    let of = Path::new(of);
    path.parent() == of.parent()
        && match (path.file_name(), of.file_name()) {
            (Some(n), Some(o)) => {
                let (n, o) = (n.to_string_lossy(), o.to_string_lossy());
                n.len() > o.len() && n.starts_with(o.as_ref())
            }
            _ => false,
        }
}

/// What a file's first bytes say it is.
enum Found {
    Checkpoint(Checkpoint),
    Orphan(String),
    CopyOfActive,
}

impl<E: Env, K: Checkpoints, S: Sink> Tailer<E, K, S> {
    pub fn new(set: Settings, env: E, store: K, sink: S, sh: Shared) -> Self {
        Tailer {
            buf: vec![0; set.read_budget.clamp(1, READ_CHUNK)],
            set,
            env,
            store,
            sink,
            sh,
            files: HashMap::new(),
            by_inode: HashMap::new(),
            open_failures: HashMap::new(),
            settling: HashMap::new(),
            first_scan: true,
            next_rescan: None,
            next_housekeeping: None,
            next_lag: None,
        }
    }

    /// The sink (the model tests read what it received).
    #[cfg(test)]
    pub fn sink(&self) -> &S {
        &self.sink
    }

    /// The environment (the model tests change its files between rounds).
    #[cfg(test)]
    pub fn env_mut(&mut self) -> &mut E {
        &mut self.env
    }

    /// Follows files until `shutdown`, then hands over the complete records built so far
    /// (partial lines and open multiline records are read again after restart).
    pub fn run(mut self, shutdown: CancellationToken, rescan: impl Fn() -> bool) {
        while !shutdown.is_cancelled() {
            match self.round(rescan()) {
                Ok(true) => {}
                Ok(false) => self.env.wait(self.set.poll_interval),
                Err(Closed) => return,
            }
        }
        let _ = self.shutdown();
    }

    /// Hands over what was built (complete records only).
    pub fn shutdown(&mut self) -> Result<(), Closed> {
        let ids: Vec<String> = self.files.keys().cloned().collect();
        for id in ids {
            if let Some(t) = self.files.get_mut(&id) {
                let (st, f) = t.split();
                let r = self.sink.flush(st, f);
                self.settle(&id, r)?;
            }
        }
        Ok(())
    }

    /// One turn of the loop: discovery when due (or asked for), then a bounded read of every
    /// open file and the timers. Returns whether more is waiting to be read.
    pub fn round(&mut self, rescan_asked: bool) -> Result<bool, Closed> {
        self.beat();
        let now = self.env.now();
        if rescan_asked || self.next_rescan.is_none_or(|t| now >= t) {
            self.discover(now)?;
            self.next_rescan = Some(now + self.set.rescan_interval);
        }
        if !self.settling.is_empty() {
            self.check_settling(now);
        }
        let busy = self.read_all(now)?;
        self.timers(self.env.now())?;
        if self.next_housekeeping.is_none_or(|t| now >= t) {
            let present: Vec<String> = self.files.keys().cloned().collect();
            self.store.housekeeping(present);
            self.next_housekeeping = Some(now + HOUSEKEEPING);
        }
        if self.next_lag.is_none_or(|t| now >= t) {
            self.refresh_lag();
            self.next_lag = Some(now + LAG_REFRESH);
        }
        Ok(busy)
    }

    fn beat(&self) {
        let secs = u64::try_from(self.env.wall_ns() / 1_000_000_000).unwrap_or(0);
        self.sh.heartbeat.store(secs, Ordering::Relaxed);
    }

    /// Takes a sink's answer: a stopped file moves to `Failed`; a closed shipper ends the
    /// tailer.
    fn settle(&mut self, id: &str, r: Result<(), Stop>) -> Result<(), Closed> {
        match r {
            Ok(()) => Ok(()),
            Err(Stop::Closed) => Err(Closed),
            Err(Stop::File(why)) => {
                if let Some(t) = self.files.get_mut(id) {
                    tracing::error!(path = %t.label_path, offset = t.splitter.fed_to(), reason = %why, "stopped reading this file; it is read again from its checkpoint after a restart");
                    self.sh.metrics.files_failed.inc();
                    t.phase = Phase::Failed;
                }
                Ok(())
            }
        }
    }

    /// Walks the directories: new files are opened, known inodes refreshed, and identities
    /// whose inode left the followed paths are looked for among their rotated siblings.
    fn discover(&mut self, now: Instant) -> Result<(), Closed> {
        let found = self.env.scan();
        let mut seen: HashSet<String> = HashSet::with_capacity(found.len());
        for (path, md) in found {
            let di = md.dev_ino();
            if !seen.insert(di.clone()) {
                continue; // the same file under a second path (symlink)
            }
            if let Some(id) = self.by_inode.get(&di) {
                if let Some(t) = self.files.get_mut(id) {
                    if t.seen_path != path {
                        self.sh.metrics.rotations.inc();
                        t.seen_path = path;
                    }
                    t.shift(|p| match p {
                        // Back at a followed path (renamed to a name `paths` matches).
                        Phase::Draining(f) | Phase::Live(f) => Phase::Live(f),
                        // Not its size: what it holds now may be new content.
                        Phase::Parked { .. } => Phase::Parked {
                            seen: Some((md.len, md.mtime_ns)),
                        },
                        other => other,
                    });
                }
                continue;
            }
            // A small file settles before it is opened, unless its inode has a checkpoint
            // (a file the agent followed before a restart is resumed at once).
            if !self.settled(&di, &path, md.len, now)
                && self.store.of_inode(&di).map_or(true, |c| c.is_empty())
            {
                continue;
            }
            self.settling.remove(&di);
            self.open_new(&path, &md, di, now, true);
        }
        // Live files whose inode is at no followed path any more are read to their end;
        // parked ones are looked for among their siblings.
        let mut gone = Vec::new();
        for t in self.files.values_mut() {
            if seen.contains(&t.dev_ino) {
                continue;
            }
            match t.phase {
                Phase::Live(_) => {
                    self.sh.metrics.rotations.inc();
                    t.shift(Phase::draining);
                }
                Phase::Parked { .. } => gone.push(t.identity.clone()),
                _ => {}
            }
        }
        for id in gone {
            self.find_parked(&id, now);
        }
        self.find_orphans_copies(now);
        if self.first_scan {
            self.resume_rotated(now);
        }
        // Reopen parked files that changed, within the open-file limit.
        let grown: Vec<String> = self
            .files
            .values()
            .filter(|t| match t.phase {
                // Grown, or cut and rewritten (even to the same size: the mtime differs).
                Phase::Parked { seen: Some(seen) } => {
                    seen.0 != t.splitter.fed_to() || Some(seen) != t.verified
                }
                _ => false,
            })
            .map(|t| t.identity.clone())
            .collect();
        for id in grown {
            if !self.make_room() {
                break;
            }
            self.reopen(&id);
        }
        self.first_scan = false;
        self.sh.metrics.files_watched.set(self.files.len() as i64);
        Ok(())
    }

    /// Candidate rotated siblings of a file: regular files in its directory whose names start
    /// with its name, not compressed, not the file itself and not followed by another
    /// identity than `owner`.
    fn siblings(&self, path: &Path, name: &std::ffi::OsStr, owner: &str) -> Vec<(PathBuf, Meta)> {
        let Some(dir) = path.parent() else {
            return Vec::new();
        };
        let name = name.to_string_lossy();
        self.env
            .list_dir(dir)
            .into_iter()
            .filter(|(p, md)| {
                let Some(n) = p.file_name().map(|n| n.to_string_lossy()) else {
                    return false;
                };
                n.len() > name.len()
                    && n.starts_with(name.as_ref())
                    && !COMPRESSED.iter().any(|c| n.ends_with(c))
                    && self
                        .by_inode
                        .get(&md.dev_ino())
                        .is_none_or(|id| id == owner)
            })
            .collect()
    }

    /// The sibling holding this identity: the same inode with the same first bytes (a
    /// rename), or else the same first bytes (a copy) holding at least `min_len` bytes.
    #[allow(clippy::too_many_arguments)]
    fn find_sibling(
        &self,
        owner: &str,
        path: &Path,
        name: &std::ffi::OsStr,
        dev_ino: &str,
        fp: (u64, &str),
        min_len: u64,
        by_copy: bool,
    ) -> Option<(PathBuf, Meta, E::File)> {
        let mut cands = self.siblings(path, name, owner);
        // The same inode first, then the nearest names (app.log.1 before app.log.2).
        cands.sort_by_key(|(p, md)| (md.dev_ino() != dev_ino, p.as_os_str().len(), p.clone()));
        for (p, md) in cands {
            let same_inode = md.dev_ino() == dev_ino;
            if !(same_inode || by_copy) || md.len < min_len || md.len < fp.0 {
                continue;
            }
            let Ok(f) = self.env.open(&p) else { continue };
            if !self
                .env
                .fstat(&f)
                .is_ok_and(|m| m.dev_ino() == md.dev_ino())
            {
                continue;
            }
            if fingerprint(&self.env, &f, fp.0).ok().flatten().as_deref() == Some(fp.1) {
                return Some((p, md, f));
            }
        }
        None
    }

    /// A parked identity's inode is at no followed path: finish it in its renamed file or
    /// its copy, or count what it had not read as lost.
    fn find_parked(&mut self, id: &str, now: Instant) {
        let Some(t) = self.files.get(id) else { return };
        let Some(name) = t.file_name().map(ToOwned::to_owned) else {
            return;
        };
        // Renamed (its inode), or truncated while parked and copied (its first bytes).
        let found = self.find_sibling(
            id,
            &t.seen_path,
            &name,
            &t.dev_ino,
            (t.fp_len, &t.fp_hash),
            t.splitter.fed_to(),
            t.fp_len > 0,
        );
        match found {
            Some((p, md, f)) => {
                let Some(t) = self.files.get_mut(id) else {
                    return;
                };
                tracing::info!(path = %p.display(), from = %t.label_path, offset = t.splitter.fed_to(), "finishing a rotated file");
                if self.by_inode.get(&t.dev_ino) == Some(&t.identity) {
                    self.by_inode.remove(&t.dev_ino);
                }
                t.dev_ino = md.dev_ino();
                self.by_inode.insert(t.dev_ino.clone(), t.identity.clone());
                t.seen_path = p;
                t.size = md.len;
                t.verified = None;
                t.phase = Phase::Draining(f);
                t.last_growth = now;
            }
            None => {
                let Some(t) = self.files.get(id) else { return };
                let end = t.size;
                self.finish_gone(id, end, "rotated_away");
            }
        }
    }

    /// Orphans (truncated in place) continue in logrotate's copy when it is among their
    /// siblings.
    fn find_orphans_copies(&mut self, now: Instant) {
        let orphans: Vec<String> = self
            .files
            .values()
            .filter(|t| matches!(t.phase, Phase::Orphan { .. }) && t.fp_len > 0)
            .map(|t| t.identity.clone())
            .collect();
        for id in orphans {
            let Some(t) = self.files.get(&id) else {
                continue;
            };
            let Some(name) = t.file_name().map(ToOwned::to_owned) else {
                continue;
            };
            let found = self.find_sibling(
                &id,
                &t.seen_path,
                &name,
                "",
                (t.fp_len, &t.fp_hash),
                t.splitter.fed_to(),
                true,
            );
            if let Some((p, md, f)) = found {
                self.adopt(&id, p, md, f, now, false);
            }
        }
    }

    /// An orphan continues in its copy, at the offset it had reached.
    fn adopt(&mut self, id: &str, path: PathBuf, md: Meta, f: E::File, now: Instant, live: bool) {
        let Some(t) = self.files.get_mut(id) else {
            return;
        };
        tracing::info!(path = %path.display(), from = %t.label_path, offset = t.splitter.fed_to(), "continuing a truncated file in its copy");
        let di = md.dev_ino();
        t.dev_ino = di.clone();
        t.seen_path = path;
        t.size = md.len;
        t.verified = None;
        t.last_growth = now;
        t.phase = if live {
            Phase::Live(f)
        } else {
            Phase::Draining(f)
        };
        self.by_inode.insert(di, id.to_owned());
    }

    /// After a restart: identities with a checkpoint that no followed path holds any more
    /// are finished in their rotated sibling (renamed: same inode; copied: same first
    /// bytes), or what they had read and not delivered is counted as lost.
    fn resume_rotated(&mut self, now: Instant) {
        let known = match self.store.recent(self.set.checkpoint_ttl) {
            Ok(k) => k,
            Err(err) => {
                tracing::warn!(%err, "cannot list checkpoints; rotated files of the last run are not looked for");
                return;
            }
        };
        for c in known {
            if self.files.contains_key(&c.identity) {
                continue;
            }
            let path = PathBuf::from(&c.path);
            let Some(name) = path.file_name().map(ToOwned::to_owned) else {
                continue;
            };
            let found = self.find_sibling(
                &c.identity,
                &path,
                &name,
                &c.dev_ino,
                (c.fp_len, &c.fp_hash),
                // Only a sibling holding more than was acknowledged has anything to read.
                c.offset + 1,
                c.fp_len > 0,
            );
            match found {
                Some((p, md, f)) => {
                    tracing::info!(path = %p.display(), from = %c.path, offset = c.offset, "finishing a file rotated while the agent was down");
                    let di = md.dev_ino();
                    self.attach(c, f, &p, &di, md.len, now);
                    if let Some(t) = self.by_inode.get(&di).and_then(|id| self.files.get_mut(id)) {
                        t.shift(Phase::draining);
                    }
                }
                None => {
                    // Gone, or read to its end. Bytes of batches formed before the restart and never answered
                    // were read; they cannot be sent again.
                    let end = self.store.pending_end(&c.identity).ok().flatten();
                    if let Some(end) = end.filter(|&e| e > c.offset) {
                        let f = FileRef {
                            identity: &c.identity,
                            path: &c.path,
                        };
                        self.note_loss(f, c.offset, end, "rotated_away");
                    }
                }
            }
        }
    }

    /// Counts and reports `[start, end)` of an identity as lost.
    fn note_loss(&mut self, f: FileRef<'_>, start: u64, end: u64, reason: &'static str) {
        let loss = Loss {
            path: f.path.to_owned(),
            start_off: start,
            end_off: end,
            reason,
        };
        tracing::warn!(path = %f.path, bytes = end - start, reason, "bytes deleted before they were read");
        self.sink.lost(f, &loss);
    }

    /// An identity's bytes are gone: what it held is handed on, and what it had not read
    /// up to `end` (the size it was last seen at), if anything, is counted as lost with the
    /// partial line before it. Then it is forgotten.
    fn finish_gone(&mut self, id: &str, end: u64, reason: &'static str) {
        let Some(mut t) = self.files.remove(id) else {
            return;
        };
        let wall = self.env.wall_ns();
        let now = self.env.now();
        let fed = t.splitter.fed_to();
        // With bytes missing after it, a partial line is a cut line: it is part of the loss.
        // Without, it is the file's last line.
        let start = if end > fed {
            fed - t.splitter.pending_bytes()
        } else {
            fed
        };
        let last = if end > fed { None } else { t.splitter.flush() };
        let (st, f) = t.split();
        let r = match last {
            Some(line) => self.sink.line(st, f, line, now, wall),
            None => Ok(()),
        };
        if let Err(Stop::File(why)) = r.and_then(|()| self.sink.tick(st, f, now, wall, true)) {
            tracing::error!(path = %t.label_path, reason = %why, "cannot hand on the last records of a rotated file");
        }
        if end > start {
            self.note_loss(t.fref(), start, end, reason);
        }
        self.forget(&t);
    }

    fn forget(&mut self, t: &Tailed<E::File, S::Stream>) {
        if self.by_inode.get(&t.dev_ino) == Some(&t.identity) {
            self.by_inode.remove(&t.dev_ino);
        }
        let label = FileLabel {
            path: t.label_path.clone(),
        };
        self.sh.metrics.lag_bytes.remove(&label);
        self.sh.metrics.forget_backlog(&t.label_path);
    }

    /// Whether a new file may be opened now (see [`SETTLE`]).
    fn settled(&mut self, di: &str, path: &Path, len: u64, now: Instant) -> bool {
        if len >= FINGERPRINT_BYTES {
            self.settling.remove(di);
            return true;
        }
        let e = self
            .settling
            .entry(di.to_owned())
            .or_insert_with(|| (path.to_owned(), len, now));
        if e.1 != len {
            *e = (path.to_owned(), len, now);
        }
        if now.duration_since(e.2) >= SETTLE {
            self.settling.remove(di);
            return true;
        }
        false
    }

    /// Opens the small new files that settled or grew since they were found.
    fn check_settling(&mut self, now: Instant) {
        let waiting: Vec<(String, PathBuf)> = self
            .settling
            .iter()
            .map(|(di, (p, _, _))| (di.clone(), p.clone()))
            .collect();
        for (di, path) in waiting {
            let md = match self.env.stat(&path) {
                Ok(md) if md.dev_ino() == di && !self.by_inode.contains_key(&di) => md,
                _ => {
                    self.settling.remove(&di);
                    continue;
                }
            };
            if self.settled(&di, &path, md.len, now) {
                self.open_new(&path, &md, di, now, true);
            }
        }
    }

    fn open_count(&self) -> usize {
        self.files
            .values()
            .filter(|t| t.phase.file().is_some())
            .count()
    }

    /// Closes idle files until one more may be opened. Returns whether there is room.
    fn make_room(&mut self) -> bool {
        let max = self.set.max_open_files;
        let mut open = self.open_count();
        if open < max {
            return true;
        }
        let sink = &self.sink;
        let mut idle: Vec<(Instant, String)> = self
            .files
            .values()
            .filter(|t| {
                // Not read since it was (re)opened: it was opened because it has data.
                matches!(t.phase, Phase::Live(_))
                    && t.verified.is_some()
                    && t.at_eof()
                    && t.splitter.pending_bytes() == 0
                    && !sink.holds(&t.stream)
            })
            .map(|t| (t.last_growth, t.identity.clone()))
            .collect();
        idle.sort();
        for (_, id) in idle {
            if open < max {
                break;
            }
            if let Some(t) = self.files.get_mut(&id) {
                t.phase = Phase::Parked { seen: None };
                open -= 1;
            }
        }
        open < max
    }

    fn reopen(&mut self, id: &str) {
        let Some(t) = self.files.get_mut(id) else {
            return;
        };
        let Ok(file) = self.env.open(&t.seen_path) else {
            return;
        };
        if self
            .env
            .fstat(&file)
            .is_ok_and(|m| m.dev_ino() == t.dev_ino)
        {
            t.phase = Phase::Live(file);
            // Verify the content on the next read: the inode may have been reused.
            t.verified = None;
        }
    }

    fn note_open_failure(&mut self, path: &Path, err: &io::Error, now: Instant) {
        let reason = match err.kind() {
            io::ErrorKind::PermissionDenied => "permission_denied",
            io::ErrorKind::NotFound => "not_found",
            _ => "other",
        };
        let again = self
            .open_failures
            .get(path)
            .is_none_or(|t| now.duration_since(*t) > Duration::from_secs(300));
        if again {
            tracing::warn!(path = %path.display(), %err, "cannot open a matching file; will retry");
            self.sh
                .metrics
                .open_errors
                .get_or_create(&ReasonLabel {
                    reason: reason.to_owned(),
                })
                .inc();
            self.open_failures.insert(path.to_owned(), now);
        }
    }

    /// Opens a file whose inode is not followed: resume a known identity, adopt an orphan
    /// (copytruncate), or start a new identity.
    fn open_new(&mut self, path: &Path, md: &Meta, di: String, now: Instant, live: bool) {
        if !self.make_room() {
            return;
        }
        let file = match self.env.open(path) {
            Ok(f) => f,
            Err(err) => {
                self.note_open_failure(path, &err, now);
                return;
            }
        };
        self.open_failures.remove(path);
        let len = md.len;
        match self.identify(&file, len, &di, path) {
            Ok(Found::Checkpoint(c)) => self.attach(c, file, path, &di, len, now),
            Ok(Found::Orphan(id)) => self.adopt(&id, path.to_owned(), *md, file, now, live),
            Ok(Found::CopyOfActive) => {}
            Err(err) => self.note_open_failure(path, &err, now),
        }
    }

    fn identify(&mut self, file: &E::File, len: u64, di: &str, path: &Path) -> io::Result<Found> {
        for c in self.store.of_inode(di)? {
            if self.files.contains_key(&c.identity) || c.fp_len > len {
                continue;
            }
            if fingerprint(&self.env, file, c.fp_len)?.as_deref() == Some(c.fp_hash.as_str()) {
                return Ok(Found::Checkpoint(c));
            }
        }
        // The first bytes of an identity in memory: an orphan continues in its copy; a copy
        // of a file still being read (copytruncate has copied and not yet truncated) waits
        // until the truncation is seen. A full-length fingerprint identifies a copy under
        // any name; a shorter one only under a rotated name of the identity's file.
        let mut fps: HashMap<u64, Option<String>> = HashMap::new();
        let mut copy_of_active = false;
        let mut orphan = None;
        for t in self.files.values() {
            let full = t.fp_len == FINGERPRINT_BYTES;
            if t.fp_len == 0 || t.fp_len > len || !(full || is_sibling(path, &t.label_path)) {
                continue;
            }
            let fp = match fps.get(&t.fp_len) {
                Some(fp) => fp.clone(),
                None => {
                    let fp = fingerprint(&self.env, file, t.fp_len)?;
                    fps.insert(t.fp_len, fp.clone());
                    fp
                }
            };
            if fp.as_deref() != Some(t.fp_hash.as_str()) {
                continue;
            }
            match t.phase {
                // The copy holds at least what was read from the original before it was
                // truncated; until then it is still being written.
                Phase::Orphan { .. } if len >= t.splitter.fed_to() => {
                    orphan = Some(t.identity.clone())
                }
                _ => copy_of_active = true,
            }
        }
        if let Some(id) = orphan {
            return Ok(Found::Orphan(id));
        }
        if copy_of_active {
            return Ok(Found::CopyOfActive);
        }
        // A stored checkpoint (after a restart) whose content this file holds: a copy.
        let mut stored = Vec::new();
        if len >= FINGERPRINT_BYTES {
            if let Some(fp) = fingerprint(&self.env, file, FINGERPRINT_BYTES)? {
                stored = self.store.by_fingerprint(FINGERPRINT_BYTES, &fp)?;
            }
        }
        let short = self
            .store
            .recent(self.set.checkpoint_ttl)?
            .into_iter()
            .filter(|c| {
                c.fp_len > 0
                    && c.fp_len < FINGERPRINT_BYTES
                    && c.fp_len <= len
                    && is_sibling(path, &c.path)
            });
        for mut c in stored.into_iter().chain(short) {
            if self.files.contains_key(&c.identity) {
                continue;
            }
            if c.fp_len < FINGERPRINT_BYTES
                && fingerprint(&self.env, file, c.fp_len)?.as_deref() != Some(c.fp_hash.as_str())
            {
                continue;
            }
            c.dev_ino = di.to_owned();
            self.store.put(&c)?;
            return Ok(Found::Checkpoint(c));
        }
        let offset =
            if self.store.is_fresh() && self.first_scan && self.set.read_from == ReadFrom::End {
                end_of_last_line(&self.env, file, len)?
            } else {
                0
            };
        let c = self.new_checkpoint(file, len, di, path, offset)?;
        Ok(Found::Checkpoint(c))
    }

    /// Records a new identity for the inode `di` at `path`, starting at `offset`.
    fn new_checkpoint(
        &mut self,
        file: &E::File,
        len: u64,
        di: &str,
        path: &Path,
        offset: u64,
    ) -> io::Result<Checkpoint> {
        let fp_len = len.min(FINGERPRINT_BYTES);
        // Unique even when the clock has not moved since the inode's last identity.
        let taken: HashSet<String> = self
            .store
            .of_inode(di)?
            .into_iter()
            .map(|c| c.identity)
            .collect();
        let mut ns = self.env.wall_ns();
        let mut identity = format!("{di}:{ns}");
        while taken.contains(&identity) || self.files.contains_key(&identity) {
            ns += 1;
            identity = format!("{di}:{ns}");
        }
        let c = Checkpoint {
            identity,
            dev_ino: di.to_owned(),
            path: path.display().to_string(),
            fp_len,
            fp_hash: fingerprint(&self.env, file, fp_len)?.unwrap_or_default(),
            offset,
        };
        self.store.put(&c)?;
        Ok(c)
    }

    fn attach(
        &mut self,
        c: Checkpoint,
        file: E::File,
        path: &Path,
        di: &str,
        len: u64,
        now: Instant,
    ) {
        tracing::info!(path = %path.display(), offset = c.offset, "following file");
        if let Ok(mut a) = self.sh.acked.lock() {
            a.insert(c.identity.clone(), c.offset);
        }
        let f = FileRef {
            identity: &c.identity,
            path: &c.path,
        };
        let stream = self.sink.open(f, c.offset);
        let t = Tailed {
            identity: c.identity.clone(),
            label_path: c.path,
            seen_path: path.to_owned(),
            dev_ino: di.to_owned(),
            fp_len: c.fp_len,
            fp_hash: c.fp_hash,
            size: len,
            verified: None,
            phase: Phase::Live(file),
            splitter: Splitter::new(c.offset, self.set.max_line_bytes),
            stream,
            last_growth: now,
            backlog: VecDeque::new(),
        };
        self.by_inode.insert(di.to_owned(), c.identity.clone());
        self.files.insert(c.identity, t);
    }

    /// Reads every open file once (a bounded amount each). Returns whether more is waiting.
    fn read_all(&mut self, now: Instant) -> Result<bool, Closed> {
        let ids: Vec<String> = self
            .files
            .values()
            .filter(|t| t.phase.file().is_some())
            .map(|t| t.identity.clone())
            .collect();
        let mut busy = false;
        for id in ids {
            match self.read_one(&id, now) {
                Ok(more) => busy |= more,
                Err(ReadError::Sink(r)) => self.settle(&id, Err(r))?,
                Err(ReadError::Io(err)) => {
                    if let Some(t) = self.files.get(&id) {
                        tracing::warn!(path = %t.seen_path.display(), %err, "read failed; will retry");
                    }
                }
            }
        }
        self.sh.metrics.files_open.set(self.open_count() as i64);
        Ok(busy)
    }

    fn read_one(&mut self, id: &str, now: Instant) -> Result<bool, ReadError> {
        let Some(t) = self.files.get_mut(id) else {
            return Ok(false);
        };
        let Some(file) = t.phase.file() else {
            return Ok(false);
        };
        let md = self.env.fstat(file)?;
        let size = md.len;
        let seen = (size, md.mtime_ns);
        // A file only gets shorter when it is cut. Cut below what was read, or with other
        // first bytes (or too short to tell), it holds new content; cut but not below what
        // was read, with the same first bytes, it is the same content, read on.
        let shrank = size < t.splitter.fed_to();
        let cut = size < t.size;
        let same_start = |env: &E| -> io::Result<bool> {
            Ok(t.fp_len <= size
                && fingerprint(env, file, t.fp_len)?.as_deref() == Some(t.fp_hash.as_str()))
        };
        let replaced = if shrank {
            true
        } else if cut {
            !same_start(&self.env)?
        } else {
            Some(seen) != t.verified && t.fp_len <= size && !same_start(&self.env)?
        };
        if replaced {
            // The orphan keeps the size its content was last seen at: what it had not read
            // of that is lost if no copy turns up.
            self.truncated(id, now).map_err(ReadError::Sink)?;
            return Ok(true);
        }
        t.size = size;
        t.verified = Some(seen);
        // Grow a short fingerprint as the file grows, so identity gets stronger.
        if t.fp_len < FINGERPRINT_BYTES && size > t.fp_len {
            let fp_len = size.min(FINGERPRINT_BYTES);
            if let Some(fp) = fingerprint(&self.env, file, fp_len)? {
                t.fp_len = fp_len;
                t.fp_hash = fp;
                let c = Checkpoint {
                    identity: t.identity.clone(),
                    dev_ino: t.dev_ino.clone(),
                    path: t.label_path.clone(),
                    fp_len,
                    fp_hash: t.fp_hash.clone(),
                    offset: 0,
                };
                if let Err(err) = self.store.put(&c) {
                    tracing::warn!(%err, "cannot store the fingerprint");
                }
            }
        }
        if t.backlog.back().is_none_or(|&(s, _)| size > s) {
            let wall = self.env.wall_ns();
            if t.backlog.len() >= BACKLOG_SAMPLES {
                if let Some(last) = t.backlog.back_mut() {
                    last.0 = size;
                }
            } else {
                t.backlog.push_back((size, wall));
            }
        }
        let mut read = 0usize;
        while read < self.set.read_budget && t.splitter.fed_to() < size {
            let Some(file) = t.phase.file() else { break };
            let n = self.env.read_at(file, &mut self.buf, t.splitter.fed_to())?;
            if n == 0 {
                break;
            }
            read += n;
            self.sh.metrics.bytes_read.inc_by(n as u64);
            // One clock reading per read: the lines of one read arrived together.
            let read_ns = self.env.wall_ns();
            // Each line goes on as it is found, borrowed from the read buffer while it is
            // still in cache, and no list of the read's lines is built.
            let mut rest = &self.buf[..n];
            let mut lines = 0;
            let f = FileRef {
                identity: &t.identity,
                path: &t.label_path,
            };
            let pushed = loop {
                let Some(line) = t.splitter.next_line(&mut rest) else {
                    break Ok(());
                };
                lines += 1;
                if let Err(e) = self.sink.line(&mut t.stream, f, line, now, read_ns) {
                    break Err(e);
                }
            };
            self.sh.metrics.lines_read.inc_by(lines);
            pushed.map_err(ReadError::Sink)?;
        }
        if read > 0 {
            t.last_growth = now;
        }
        Ok(t.splitter.fed_to() < t.size)
    }

    /// The identity's inode was truncated or replaced: the identity becomes an orphan
    /// waiting for its copy, and a new identity reads the inode from the start.
    fn truncated(&mut self, id: &str, now: Instant) -> Result<(), Stop> {
        let Some(mut old) = self.files.remove(id) else {
            return Ok(());
        };
        self.sh.metrics.truncations.inc();
        let file = match std::mem::replace(&mut old.phase, Phase::Orphan { since: now }) {
            Phase::Live(f) | Phase::Draining(f) => f,
            other => {
                old.phase = other;
                self.files.insert(old.identity.clone(), old);
                return Ok(());
            }
        };
        self.by_inode.remove(&old.dev_ino);
        let path = old.seen_path.clone();
        let di = old.dev_ino.clone();
        let len = self.env.fstat(&file).map_or(0, |m| m.len);
        // Cut back, but its first bytes are unchanged: the part that is left was read
        // already; only what is appended after the cut is new.
        let same_start = old.fp_len > 0
            && len >= old.fp_len
            && fingerprint(&self.env, &file, old.fp_len)
                .ok()
                .flatten()
                .as_deref()
                == Some(old.fp_hash.as_str());
        let offset = if same_start {
            tracing::info!(path = %path.display(), offset = old.splitter.fed_to(), size = len, "file shrank; reading what is appended after the cut");
            // What was built is shipped; a partial line or open record lay in the cut part.
            let (st, f) = old.split();
            let r = self.sink.flush(st, f);
            self.forget(&old);
            r?;
            len
        } else {
            tracing::info!(path = %path.display(), offset = old.splitter.fed_to(), "file truncated or replaced; reading it again from the start");
            // The old identity waits for logrotate's copy (copytruncate) to continue in.
            self.files.insert(old.identity.clone(), old);
            0
        };
        match self.new_checkpoint(&file, len, &di, &path, offset) {
            Ok(c) => self.attach(c, file, &path, &di, len, now),
            Err(err) => tracing::error!(%err, "cannot store a checkpoint"),
        }
        self.find_orphans_copies(now);
        Ok(())
    }

    /// Time-driven work: partial lines, the sink's timers, rotated and orphaned files, and
    /// the memory budget of records held.
    fn timers(&mut self, now: Instant) -> Result<(), Closed> {
        let set = self.set.clone();
        let wall = self.env.wall_ns();
        let mut done = Vec::new();
        let mut expired = Vec::new();
        let mut stopped = Vec::new();
        let mut held = 0usize;
        for t in self.files.values_mut() {
            if matches!(t.phase, Phase::Failed) {
                continue;
            }
            let quiet = now.duration_since(t.last_growth);
            // Renamed away or deleted while open: noticed at the end of the data.
            if t.at_eof() {
                if let Phase::Live(_) = t.phase {
                    let here = self.env.stat(&t.seen_path).map(|m| m.dev_ino());
                    if here.ok().as_deref() != Some(t.dev_ino.as_str()) {
                        t.shift(Phase::draining);
                        self.sh.metrics.rotations.inc();
                    }
                }
            }
            let drained =
                matches!(t.phase, Phase::Draining(_)) && t.at_eof() && quiet >= ROTATED_GRACE;
            let orphan_expired = match t.phase {
                Phase::Orphan { since } => {
                    now.duration_since(since) >= 2 * set.rescan_interval + ROTATED_GRACE
                }
                _ => false,
            };
            if orphan_expired {
                expired.push(t.identity.clone());
                continue;
            }
            let mut r = Ok(());
            if t.splitter.pending_bytes() > 0
                && t.at_eof()
                && (drained || quiet >= set.partial_line_flush)
            {
                if let Some(line) = t.splitter.flush() {
                    self.sh.metrics.lines_read.inc();
                    self.sh.metrics.partial_lines_flushed.inc();
                    let f = FileRef {
                        identity: &t.identity,
                        path: &t.label_path,
                    };
                    r = self.sink.line(&mut t.stream, f, line, now, wall);
                }
            }
            let f = FileRef {
                identity: &t.identity,
                path: &t.label_path,
            };
            let r = r.and_then(|()| self.sink.tick(&mut t.stream, f, now, wall, drained));
            match r {
                Ok(()) => {}
                Err(Stop::Closed) => return Err(Closed),
                Err(e) => {
                    stopped.push((t.identity.clone(), e));
                    continue;
                }
            }
            if drained {
                done.push(t.identity.clone());
            }
            held += self.sink.held_bytes(&t.stream);
        }
        for (id, e) in stopped {
            self.settle(&id, Err(e))?;
        }
        for id in expired {
            // The copy never showed up (compressed at once, or deleted): what the orphan
            // had not read is gone.
            let Some(t) = self.files.get(&id) else {
                continue;
            };
            let end = t.size;
            self.finish_gone(&id, end, "truncated");
        }
        for id in done {
            if let Some(t) = self.files.remove(&id) {
                tracing::info!(path = %t.seen_path.display(), "finished reading a rotated, truncated or deleted file");
                self.forget(&t);
            }
        }
        // Over the memory budget: hand on the largest partly built batches early.
        while held > set.max_building_bytes {
            let sink = &self.sink;
            let Some(t) = self
                .files
                .values_mut()
                .max_by_key(|t| sink.held_bytes(&t.stream))
            else {
                break;
            };
            let bytes = self.sink.held_bytes(&t.stream);
            if bytes == 0 {
                break;
            }
            let id = t.identity.clone();
            let (st, f) = t.split();
            let r = self.sink.flush(st, f);
            self.settle(&id, r)?;
            held -= bytes;
        }
        Ok(())
    }

    /// Refreshes the per-file backlog gauges: unacknowledged bytes, and when the oldest
    /// unacknowledged byte was first seen.
    fn refresh_lag(&mut self) {
        let acked = self.sh.acked.lock().map(|a| a.clone()).unwrap_or_default();
        for t in self.files.values_mut() {
            if matches!(t.phase, Phase::Orphan { .. }) {
                continue;
            }
            let done = acked.get(&t.identity).copied().unwrap_or(0);
            while t.backlog.front().is_some_and(|&(s, _)| s <= done) {
                t.backlog.pop_front();
            }
            let label = FileLabel {
                path: t.label_path.clone(),
            };
            self.sh
                .metrics
                .lag_bytes
                .get_or_create(&label)
                .set(t.size.saturating_sub(done) as i64);
            let oldest = t.backlog.front().map(|&(_, ns)| ns);
            self.sh.metrics.set_backlog(&t.label_path, oldest);
        }
    }
}

enum ReadError {
    Sink(Stop),
    Io(io::Error),
}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> Self {
        ReadError::Io(e)
    }
}
