//! The tailer: follows every discovered file through rotation, truncation, deletion and
//! restarts, turns its bytes into redacted records and forms batches for the shipper.
//!
//! It runs on its own thread. Backpressure is the bounded channel to the shipper: when it is
//! full the tailer stops reading, and the files on disk are the buffer.
//!
//! A followed file is an *identity*: a byte stream with a checkpoint, known by the inode it
//! is read from and a SHA-256 fingerprint of its first [`FINGERPRINT_BYTES`] bytes.
//! - rename + create: the identity keeps its inode (under the new name or none) and is read
//!   to its end; the new file is a new identity.
//! - copytruncate: the inode shrinks or its first bytes change, so the identity leaves the
//!   inode (an *orphan*) and a new identity reads it from 0; when the copy (`app.log.1`, if
//!   `paths` matches it) shows the orphan's fingerprint, the orphan continues in the copy at
//!   the offset it had reached, so the lines written just before the truncation are read once.
//! - a reused inode or a replaced file: the fingerprint differs, so it is a new identity.
//! - deleted while unread: the open handle is read to its end first.
//!
//! Invariants: the records of an identity cover its bytes contiguously from the checkpoint;
//! batches of one identity are sent in order; memory per file is bounded by the line limit,
//! and memory across files by `max_building_bytes`.

pub mod lines;
pub mod multiline;

use std::cell::RefCell;
use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc as std_mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use fjord_rules::{Applied, Redactor};
use fjord_wire::body::StreamBody;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::batch::{self, Building, Formed, Origin};
use crate::config::{Config, ReadFrom};
use crate::discover::{Discovery, Wake, Watcher};
use crate::metrics::{FileLabel, Metrics, ReasonLabel};
use crate::reload::RulesHandle;
use crate::state::{Checkpoint, State};
use lines::{Line, Splitter};
use multiline::Joiner;

/// Bytes at the start of a file that identify it.
pub const FINGERPRINT_BYTES: u64 = 256;

/// "Verify the fingerprint on the next read."
const UNVERIFIED: (u64, i64, i64) = (u64::MAX, 0, 0);

/// Bytes read per `read` call.
const READ_CHUNK: usize = 256 * 1024;

/// The largest scrubbed-line buffer kept between lines.
const MAX_KEPT_SCRUBBED: usize = 64 * 1024;

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

/// Device and inode, as `dev:ino`.
pub fn dev_ino(md: &std::fs::Metadata) -> String {
    format!("{}:{}", md.dev(), md.ino())
}

/// SHA-256 (16 hex) of the first `len` bytes of `file`; `None` if it has fewer.
pub fn fingerprint(file: &File, len: u64) -> io::Result<Option<String>> {
    let mut buf = vec![0u8; len as usize];
    let mut got = 0;
    while got < buf.len() {
        match file.read_at(&mut buf[got..], got as u64)? {
            0 => return Ok(None),
            n => got += n,
        }
    }
    Ok(Some(hex::encode(&Sha256::digest(&buf)[..8])))
}

/// The offset just after the last newline of the file (where `read_from = "end"` starts).
fn end_of_last_line(file: &File, len: u64) -> io::Result<u64> {
    const WINDOW: u64 = 1 << 20;
    let from = len.saturating_sub(WINDOW);
    let mut buf = vec![0u8; (len - from) as usize];
    let n = file.read_at(&mut buf, from)?;
    Ok(memchr::memrchr(b'\n', &buf[..n]).map_or(len, |i| from + i as u64 + 1))
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// The shipper is gone; stop reading.
#[derive(Debug)]
pub struct Closed;

/// One followed identity.
struct Tailed {
    identity: String,
    /// The path the identity was first seen at: the `file` label of its records.
    label_path: String,
    /// Where discovery last saw its inode.
    seen_path: PathBuf,
    dev_ino: String,
    fp_len: u64,
    fp_hash: String,
    /// `None` when closed (idle, over the open-file limit) or orphaned.
    file: Option<File>,
    size: u64,
    /// File size at which the fingerprint was last verified.
    /// File size and modification time at which the fingerprint was last verified: a file
    /// truncated and rewritten to the same size still has a new mtime.
    verified: (u64, i64, i64),
    splitter: Splitter,
    joiner: Option<Joiner>,
    batch: Option<Building>,
    /// Boundaries of batches sent before a restart and not yet acknowledged: re-formed
    /// exactly, so they carry the same ids.
    forced: VecDeque<(u64, u64)>,
    last_ts: i64,
    last_growth: Instant,
    /// Discovery saw the inode in its last walk.
    present: bool,
    /// The inode is no longer at any matched path (renamed away or deleted).
    rotated: bool,
    /// Left its inode after a truncation; waiting for the copy.
    orphan_since: Option<Instant>,
}

impl Tailed {
    fn at_eof(&self) -> bool {
        self.file.is_none() || self.size <= self.splitter.fed_to()
    }

    fn idle(&self) -> bool {
        self.at_eof()
            && self.splitter.pending_bytes() == 0
            && self.batch.is_none()
            && !self.joiner.as_ref().is_some_and(Joiner::is_open)
    }
}

/// What the tailer shares with the rest of the agent.
pub struct Shared {
    pub state: Arc<Mutex<State>>,
    pub metrics: Arc<Metrics>,
    pub rules: Arc<RulesHandle>,
    /// Acknowledged offset per identity, kept by the shipper (for the lag metric).
    pub acked: Arc<Mutex<HashMap<String, u64>>>,
    /// Unix seconds of the tailer's last loop, for `/healthz`.
    pub heartbeat: Arc<AtomicU64>,
}

/// Everything but the file table, so a file can be borrowed while batches are sent.
struct Ctx {
    cfg: Arc<Config>,
    sh: Shared,
    tx: mpsc::Sender<Formed>,
    stop_sending: CancellationToken,
    /// The batch encoder and spare body buffers (this thread only).
    enc: RefCell<batch::Encoding>,
    /// Where the rule engine writes a rewritten line, reused from line to line.
    scrubbed: RefCell<String>,
}

/// The tailer. Build with [`Tailer::new`], then call [`Tailer::run`] on a blocking thread.
pub struct Tailer {
    ctx: Ctx,
    discovery: Discovery,
    files: HashMap<String, Tailed>,
    /// Inode → identity reading it.
    by_inode: HashMap<String, String>,
    /// Paths that could not be opened, and when that was last logged.
    open_failures: HashMap<PathBuf, Instant>,
    /// New small files waiting to settle: inode → (path, size, since when at that size).
    settling: HashMap<String, (PathBuf, u64, Instant)>,
    first_scan: bool,
    buf: Vec<u8>,
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    match state.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

impl Tailer {
    pub fn new(
        cfg: Arc<Config>,
        discovery: Discovery,
        sh: Shared,
        tx: mpsc::Sender<Formed>,
        stop_sending: CancellationToken,
    ) -> Tailer {
        let zstd_level = cfg.zstd_level;
        Tailer {
            ctx: Ctx {
                cfg,
                sh,
                tx,
                stop_sending,
                enc: RefCell::new(batch::Encoding::new(zstd_level)),
                scrubbed: RefCell::new(String::new()),
            },
            discovery,
            files: HashMap::new(),
            by_inode: HashMap::new(),
            open_failures: HashMap::new(),
            settling: HashMap::new(),
            first_scan: true,
            buf: vec![0; READ_CHUNK],
        }
    }

    /// Follows files until `shutdown`, then sends the batches built so far (complete records
    /// only; partial lines and open multiline records are read again after restart).
    pub fn run(
        mut self,
        wake: Wake,
        wake_rx: std_mpsc::Receiver<()>,
        mut watcher: Watcher,
        shutdown: CancellationToken,
    ) {
        let mut next_rescan = Instant::now();
        let mut next_housekeeping = Instant::now();
        let mut next_lag = Instant::now();
        let mut round_start;
        let cfg = self.ctx.cfg.clone();
        while !shutdown.is_cancelled() {
            self.ctx.beat();
            let now = Instant::now();
            round_start = now;
            if wake.take_rescan() || now >= next_rescan {
                watcher.refresh(self.discovery.roots());
                if self.discover(now).is_err() {
                    return;
                }
                next_rescan = now + cfg.rescan_interval;
            }
            if !self.settling.is_empty() {
                self.check_settling(now);
            }
            let busy = match self.read_all(now) {
                Ok(b) => b,
                Err(Closed) => return,
            };
            if self.timers(Instant::now()).is_err() {
                return;
            }
            if now >= next_housekeeping {
                self.housekeeping();
                next_housekeeping = now + HOUSEKEEPING;
            }
            if now >= next_lag {
                self.refresh_lag();
                next_lag = now + LAG_REFRESH;
            }
            if !busy {
                match wake_rx.recv_timeout(cfg.poll_interval) {
                    // Woken by a file event: let writes gather until `min_read_interval`
                    // after the last round began, so an app flushing every line does not
                    // cost a read round per line.
                    Ok(()) => {
                        let due = round_start + cfg.min_read_interval;
                        if let Some(d) = due.checked_duration_since(Instant::now()) {
                            std::thread::sleep(d);
                        }
                    }
                    Err(std_mpsc::RecvTimeoutError::Timeout) => {}
                    Err(std_mpsc::RecvTimeoutError::Disconnected) => {
                        std::thread::sleep(cfg.poll_interval)
                    }
                }
            }
        }
        let ids: Vec<String> = self.files.keys().cloned().collect();
        for id in ids {
            if let Some(t) = self.files.get_mut(&id) {
                if self.ctx.finish(t).is_err() {
                    return;
                }
            }
        }
    }

    /// Walks the directories: new files are opened, known inodes refreshed.
    fn discover(&mut self, now: Instant) -> Result<(), Closed> {
        let found = self.discovery.scan();
        let mut seen: HashSet<String> = HashSet::with_capacity(found.len());
        for (path, md) in found {
            let di = dev_ino(&md);
            if !seen.insert(di.clone()) {
                continue; // the same file under a second path (symlink)
            }
            if let Some(id) = self.by_inode.get(&di) {
                if let Some(t) = self.files.get_mut(id) {
                    if t.seen_path != path {
                        self.ctx.sh.metrics.rotations.inc();
                        t.seen_path = path;
                    }
                    t.present = true;
                    t.rotated = false;
                    if t.file.is_none() && md.len() != t.splitter.fed_to() {
                        t.size = md.len();
                    }
                }
                continue;
            }
            if !self.settled(&di, &path, md.len(), now) {
                continue;
            }
            self.open_new(&path, &md, di, now);
        }
        for t in self.files.values_mut() {
            if t.orphan_since.is_none() {
                t.present = seen.contains(&t.dev_ino);
            }
        }
        // Reopen closed files that grew, within the open-file limit.
        let grown: Vec<String> = self
            .files
            .values()
            .filter(|t| t.file.is_none() && t.orphan_since.is_none() && t.present)
            .filter(|t| t.size != t.splitter.fed_to())
            .map(|t| t.identity.clone())
            .collect();
        for id in grown {
            if !self.make_room() {
                break;
            }
            self.reopen(&id);
        }
        self.first_scan = false;
        self.ctx
            .sh
            .metrics
            .files_watched
            .set(self.files.len() as i64);
        Ok(())
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
            let md = match std::fs::metadata(&path) {
                Ok(md) if dev_ino(&md) == di && !self.by_inode.contains_key(&di) => md,
                _ => {
                    self.settling.remove(&di);
                    continue;
                }
            };
            if self.settled(&di, &path, md.len(), now) {
                self.open_new(&path, &md, di, now);
            }
        }
    }

    fn open_count(&self) -> usize {
        self.files.values().filter(|t| t.file.is_some()).count()
    }

    /// Closes idle files until one more may be opened. Returns whether there is room.
    fn make_room(&mut self) -> bool {
        let max = self.ctx.cfg.max_open_files;
        let mut open = self.open_count();
        if open < max {
            return true;
        }
        let mut idle: Vec<(Instant, String)> = self
            .files
            .values()
            .filter(|t| t.file.is_some() && t.idle() && !t.rotated)
            .map(|t| (t.last_growth, t.identity.clone()))
            .collect();
        idle.sort();
        for (_, id) in idle {
            if open < max {
                break;
            }
            if let Some(t) = self.files.get_mut(&id) {
                t.file = None;
                open -= 1;
            }
        }
        open < max
    }

    fn reopen(&mut self, id: &str) {
        let Some(t) = self.files.get_mut(id) else {
            return;
        };
        let Ok(file) = File::open(&t.seen_path) else {
            return;
        };
        if file.metadata().is_ok_and(|m| dev_ino(&m) == t.dev_ino) {
            t.file = Some(file);
            // Verify the content on the next read: the inode may have been reused.
            t.verified = UNVERIFIED;
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
            self.ctx
                .sh
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
    fn open_new(&mut self, path: &Path, md: &std::fs::Metadata, di: String, now: Instant) {
        if !self.make_room() {
            return;
        }
        let file = match File::open(path) {
            Ok(f) => f,
            Err(err) => {
                self.note_open_failure(path, &err, now);
                return;
            }
        };
        self.open_failures.remove(path);
        let len = md.len();
        match self.identify(&file, len, &di, path) {
            Ok(Some(Found::Checkpoint(c))) => self.attach(c, file, path, &di, now),
            Ok(Some(Found::Orphan(id))) => {
                if let Some(t) = self.files.get_mut(&id) {
                    tracing::info!(path = %path.display(), from = %t.label_path, offset = t.splitter.fed_to(), "continuing a truncated file in its copy");
                    t.file = Some(file);
                    t.dev_ino = di.clone();
                    t.seen_path = path.to_owned();
                    t.orphan_since = None;
                    t.present = true;
                    t.verified = UNVERIFIED;
                    self.by_inode.insert(di, id);
                }
            }
            Ok(Some(Found::CopyOfActive)) | Ok(None) => {}
            Err(err) => self.note_open_failure(path, &err, now),
        }
    }

    fn identify(&self, file: &File, len: u64, di: &str, path: &Path) -> io::Result<Option<Found>> {
        let st = lock(&self.ctx.sh.state);
        let db = |e: rusqlite::Error| io::Error::other(e.to_string());
        for c in st.checkpoints_of(di).map_err(db)? {
            if self.files.contains_key(&c.identity) || c.fp_len > len {
                continue;
            }
            if fingerprint(file, c.fp_len)?.as_deref() == Some(c.fp_hash.as_str()) {
                return Ok(Some(Found::Checkpoint(c)));
            }
        }
        if len >= FINGERPRINT_BYTES {
            if let Some(fp) = fingerprint(file, FINGERPRINT_BYTES)? {
                let same = |t: &&Tailed| t.fp_len == FINGERPRINT_BYTES && t.fp_hash == fp;
                if let Some(o) = self
                    .files
                    .values()
                    .filter(same)
                    .find(|t| t.orphan_since.is_some())
                {
                    // The copy holds at least what was read from the original before it
                    // was truncated; until then it is still being written.
                    if len < o.splitter.fed_to() {
                        return Ok(Some(Found::CopyOfActive));
                    }
                    return Ok(Some(Found::Orphan(o.identity.clone())));
                }
                if self.files.values().any(|t| same(&t)) {
                    // A copy of a file being read (copytruncate has copied and not yet
                    // truncated): look again once the truncation is seen.
                    return Ok(Some(Found::CopyOfActive));
                }
                for mut c in st
                    .checkpoints_by_fingerprint(FINGERPRINT_BYTES, &fp)
                    .map_err(db)?
                {
                    if !self.files.contains_key(&c.identity) {
                        c.dev_ino = di.to_owned();
                        st.put_checkpoint(&c).map_err(db)?;
                        return Ok(Some(Found::Checkpoint(c)));
                    }
                }
            }
        }
        let offset = if st.is_fresh() && self.first_scan && self.ctx.cfg.read_from == ReadFrom::End
        {
            end_of_last_line(file, len)?
        } else {
            0
        };
        let fp_len = len.min(FINGERPRINT_BYTES);
        let c = Checkpoint {
            identity: format!("{di}:{}", now_ns()),
            dev_ino: di.to_owned(),
            path: path.display().to_string(),
            fp_len,
            fp_hash: fingerprint(file, fp_len)?.unwrap_or_default(),
            offset,
        };
        st.put_checkpoint(&c).map_err(db)?;
        Ok(Some(Found::Checkpoint(c)))
    }

    fn attach(&mut self, c: Checkpoint, file: File, path: &Path, di: &str, now: Instant) {
        let forced: VecDeque<(u64, u64)> = lock(&self.ctx.sh.state)
            .pending(&c.identity)
            .unwrap_or_default()
            .into_iter()
            .filter(|(s, _)| *s >= c.offset)
            .collect();
        let cfg = &self.ctx.cfg;
        let joiner = cfg
            .multiline_for(Path::new(&c.path))
            .map(|m| Joiner::new(m.start.clone(), m.timeout, m.max_lines, cfg.max_line_bytes));
        tracing::info!(path = %path.display(), offset = c.offset, pending = forced.len(), "following file");
        self.ctx
            .sh
            .acked
            .lock()
            .map(|mut a| a.insert(c.identity.clone(), c.offset))
            .ok();
        let t = Tailed {
            identity: c.identity.clone(),
            label_path: c.path,
            seen_path: path.to_owned(),
            dev_ino: di.to_owned(),
            fp_len: c.fp_len,
            fp_hash: c.fp_hash,
            size: file.metadata().map_or(0, |m| m.len()),
            verified: UNVERIFIED,
            file: Some(file),
            splitter: Splitter::new(c.offset, cfg.max_line_bytes),
            joiner,
            batch: None,
            forced,
            last_ts: 0,
            last_growth: now,
            present: true,
            rotated: false,
            orphan_since: None,
        };
        self.by_inode.insert(di.to_owned(), c.identity.clone());
        self.files.insert(c.identity, t);
    }

    /// Reads every open file once (a bounded amount each). Returns whether more is waiting.
    fn read_all(&mut self, now: Instant) -> Result<bool, Closed> {
        let redactor = self.ctx.sh.rules.current();
        let ids: Vec<String> = self
            .files
            .values()
            .filter(|t| t.file.is_some())
            .map(|t| t.identity.clone())
            .collect();
        let mut busy = false;
        for id in ids {
            match self.read_one(&id, now, &redactor) {
                Ok(more) => busy |= more,
                Err(ReadError::Closed) => return Err(Closed),
                Err(ReadError::Io(err)) => {
                    if let Some(t) = self.files.get(&id) {
                        tracing::warn!(path = %t.seen_path.display(), %err, "read failed; will retry");
                    }
                }
            }
        }
        self.ctx.sh.metrics.files_open.set(self.open_count() as i64);
        Ok(busy)
    }

    fn read_one(
        &mut self,
        id: &str,
        now: Instant,
        redactor: &Arc<Redactor>,
    ) -> Result<bool, ReadError> {
        let Some(t) = self.files.get_mut(id) else {
            return Ok(false);
        };
        let Some(file) = t.file.as_ref() else {
            return Ok(false);
        };
        let md = file.metadata()?;
        let size = md.len();
        let seen = (size, md.mtime(), md.mtime_nsec());
        t.size = size;
        let shrank = size < t.splitter.fed_to();
        let replaced = !shrank
            && seen != t.verified
            && t.fp_len <= size
            && fingerprint(file, t.fp_len)?.as_deref() != Some(t.fp_hash.as_str());
        if shrank || replaced {
            match self.truncated(id, now) {
                Ok(()) => return Ok(true),
                Err(e) => return Err(e.into()),
            }
        }
        t.verified = seen;
        // Grow a short fingerprint as the file grows, so identity gets stronger.
        if t.fp_len < FINGERPRINT_BYTES && size > t.fp_len {
            let fp_len = size.min(FINGERPRINT_BYTES);
            if let Some(fp) = fingerprint(file, fp_len)? {
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
                if let Err(err) = lock(&self.ctx.sh.state).put_checkpoint(&c) {
                    tracing::warn!(%err, "cannot store the fingerprint");
                }
            }
        }
        let budget = 2 * self.ctx.cfg.max_batch_bytes;
        let mut read = 0usize;
        while read < budget && t.splitter.fed_to() < size {
            let Some(file) = t.file.as_ref() else { break };
            let n = file.read_at(&mut self.buf, t.splitter.fed_to())?;
            if n == 0 {
                break;
            }
            read += n;
            self.ctx.sh.metrics.bytes_read.inc_by(n as u64);
            // One clock reading per read: the lines of one read arrived together.
            let read_ns = now_ns();
            // Each line goes on as it is found, borrowed from the read buffer while it is
            // still in cache, and no list of the read's lines is built.
            let mut rest = &self.buf[..n];
            let mut lines = 0;
            let pushed = loop {
                let Some(line) = t.splitter.next_line(&mut rest) else {
                    break Ok(());
                };
                lines += 1;
                if let Err(e) = self.ctx.push_line(t, line, now, read_ns, redactor) {
                    break Err(e);
                }
            };
            self.ctx.sh.metrics.lines_read.inc_by(lines);
            pushed?;
        }
        if read > 0 {
            t.last_growth = now;
        }
        Ok(t.splitter.fed_to() < t.size)
    }

    /// The identity's inode was truncated or replaced: the identity becomes an orphan
    /// waiting for its copy, and a new identity reads the inode from the start.
    fn truncated(&mut self, id: &str, now: Instant) -> Result<(), Closed> {
        let Some(mut old) = self.files.remove(id) else {
            return Ok(());
        };
        self.ctx.sh.metrics.truncations.inc();
        let Some(file) = old.file.take() else {
            return Ok(());
        };
        self.by_inode.remove(&old.dev_ino);
        let path = old.seen_path.clone();
        let di = old.dev_ino.clone();
        let len = file.metadata().map_or(0, |m| m.len());
        // Cut back, but its first bytes are unchanged: the part that is left was read
        // already; only what is appended after the cut is new.
        let same_start = old.fp_len > 0
            && len >= old.fp_len
            && fingerprint(&file, old.fp_len).ok().flatten().as_deref()
                == Some(old.fp_hash.as_str());
        let offset = if same_start {
            tracing::info!(path = %path.display(), offset = old.splitter.fed_to(), size = len, "file shrank; reading what is appended after the cut");
            // What was built is shipped; a partial line or open record lay in the cut part.
            self.ctx.finish(&mut old)?;
            len
        } else {
            tracing::info!(path = %path.display(), offset = old.splitter.fed_to(), "file truncated or replaced; reading it again from the start");
            // The old identity waits for logrotate's copy (copytruncate) to continue in.
            old.orphan_since = Some(now);
            self.files.insert(old.identity.clone(), old);
            0
        };
        let fp_len = len.min(FINGERPRINT_BYTES);
        let c = Checkpoint {
            identity: format!("{di}:{}", now_ns()),
            dev_ino: di.clone(),
            path: path.display().to_string(),
            fp_len,
            fp_hash: fingerprint(&file, fp_len)
                .ok()
                .flatten()
                .unwrap_or_default(),
            offset,
        };
        if let Err(err) = lock(&self.ctx.sh.state).put_checkpoint(&c) {
            tracing::error!(%err, "cannot store a checkpoint");
        }
        self.attach(c, file, &path, &di, now);
        Ok(())
    }

    /// Time-driven work: partial lines, multiline timeouts, linger, rotated and orphaned
    /// files, and the memory budget of partly built batches.
    fn timers(&mut self, now: Instant) -> Result<(), Closed> {
        let cfg = self.ctx.cfg.clone();
        let redactor = self.ctx.sh.rules.current();
        let mut drop_ids = Vec::new();
        let mut building = 0usize;
        for t in self.files.values_mut() {
            let quiet = now.duration_since(t.last_growth);
            // Renamed away or deleted while open: noticed at the end of the data.
            if t.file.is_some() && t.at_eof() && !t.rotated && t.orphan_since.is_none() {
                let here = std::fs::metadata(&t.seen_path).map(|m| dev_ino(&m));
                if here.ok().as_deref() != Some(t.dev_ino.as_str()) {
                    t.rotated = true;
                    self.ctx.sh.metrics.rotations.inc();
                }
            }
            let finished_source = (t.rotated || t.orphan_since.is_some() || !t.present)
                && t.at_eof()
                && quiet >= ROTATED_GRACE;
            let orphan_expired = t
                .orphan_since
                .is_some_and(|s| now.duration_since(s) >= 2 * cfg.rescan_interval + ROTATED_GRACE);
            let flush_all = (finished_source && t.orphan_since.is_none()) || orphan_expired;
            if t.splitter.pending_bytes() > 0
                && t.at_eof()
                && (flush_all || quiet >= cfg.partial_line_flush)
            {
                if let Some(line) = t.splitter.flush() {
                    self.ctx.sh.metrics.lines_read.inc();
                    self.ctx.sh.metrics.partial_lines_flushed.inc();
                    self.ctx.push_line(t, line, now, now_ns(), &redactor)?;
                }
            }
            let rec = t.joiner.as_mut().and_then(|j| j.tick(now, flush_all));
            if let Some(rec) = rec {
                self.ctx.add_record(t, rec, now_ns(), &redactor)?;
            }
            let linger_done = t
                .batch
                .as_ref()
                .is_some_and(|b| b.since.elapsed() >= cfg.linger);
            if linger_done || flush_all {
                self.ctx.finish(t)?;
            }
            let vanished = t.file.is_none() && !t.present && t.orphan_since.is_none() && t.idle();
            if flush_all || vanished {
                drop_ids.push(t.identity.clone());
            }
            building += t.batch.as_ref().map_or(0, |b| b.body.raw_bytes());
        }
        for id in drop_ids {
            if let Some(t) = self.files.remove(&id) {
                tracing::info!(path = %t.seen_path.display(), "finished reading a rotated, truncated or deleted file");
                if self.by_inode.get(&t.dev_ino) == Some(&t.identity) {
                    self.by_inode.remove(&t.dev_ino);
                }
                self.ctx.sh.metrics.lag_bytes.remove(&FileLabel {
                    path: t.label_path.clone(),
                });
            }
        }
        // Over the memory budget: ship the largest partly built batches early.
        while building > cfg.max_building_bytes {
            let Some(t) = self
                .files
                .values_mut()
                .max_by_key(|t| t.batch.as_ref().map_or(0, |b| b.body.raw_bytes()))
            else {
                break;
            };
            let bytes = t.batch.as_ref().map_or(0, |b| b.body.raw_bytes());
            if bytes == 0 {
                break;
            }
            self.ctx.finish(t)?;
            building -= bytes;
        }
        Ok(())
    }

    fn housekeeping(&mut self) {
        let cfg = &self.ctx.cfg;
        let present: Vec<&str> = self.files.keys().map(String::as_str).collect();
        let mut st = lock(&self.ctx.sh.state);
        match st.touch_and_forget(&present, cfg.checkpoint_ttl) {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                forgotten = n,
                "forgot checkpoints of files gone for longer than checkpoint_ttl_hours"
            ),
            Err(err) => tracing::warn!(%err, "checkpoint housekeeping failed"),
        }
        if let Err(err) = st.prune_ledger(cfg.ledger_retention) {
            tracing::warn!(%err, "ledger pruning failed");
        }
    }

    /// Refreshes the per-file lag gauges (file size minus acknowledged offset).
    fn refresh_lag(&self) {
        let acked = self
            .ctx
            .sh
            .acked
            .lock()
            .map(|a| a.clone())
            .unwrap_or_default();
        for t in self.files.values() {
            if t.orphan_since.is_some() {
                continue;
            }
            let done = acked.get(&t.identity).copied().unwrap_or(0);
            self.ctx
                .sh
                .metrics
                .lag_bytes
                .get_or_create(&FileLabel {
                    path: t.label_path.clone(),
                })
                .set(t.size.saturating_sub(done) as i64);
        }
    }
}

enum Found {
    Checkpoint(Checkpoint),
    Orphan(String),
    CopyOfActive,
}

enum ReadError {
    Closed,
    Io(io::Error),
}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> Self {
        ReadError::Io(e)
    }
}

impl From<Closed> for ReadError {
    fn from(_: Closed) -> Self {
        ReadError::Closed
    }
}

impl Ctx {
    fn origin<'a>(&'a self, identity: &'a str, path: &'a str) -> Origin<'a> {
        Origin {
            agent_id: &self.cfg.agent_id,
            identity,
            path,
            labels: &self.cfg.labels,
        }
    }

    /// The body of a new batch of the file `identity` at `path`.
    fn body(&self, identity: &str, path: &str) -> StreamBody {
        self.enc.borrow_mut().body(&self.origin(identity, path))
    }

    fn beat(&self) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.sh.heartbeat.store(now, Ordering::Relaxed);
    }

    fn push_line(
        &self,
        t: &mut Tailed,
        line: Line<'_>,
        now: Instant,
        read_ns: i64,
        redactor: &Arc<Redactor>,
    ) -> Result<(), Closed> {
        let m = &self.sh.metrics;
        if line.cut {
            m.lines_cut.inc();
        }
        if line.invalid_utf8 {
            m.lines_invalid_utf8.inc();
        }
        match t.joiner.as_mut() {
            Some(j) => {
                let mut recs = Vec::new();
                j.push(line, now, &mut recs);
                for r in recs {
                    self.add_record(t, r, read_ns, redactor)?;
                }
                Ok(())
            }
            None => self.add_record(t, line, read_ns, redactor),
        }
    }

    fn add_record(
        &self,
        t: &mut Tailed,
        rec: Line<'_>,
        read_ns: i64,
        redactor: &Arc<Redactor>,
    ) -> Result<(), Closed> {
        // One rule-set version per batch.
        if t.batch.as_ref().is_some_and(|b| {
            !Arc::ptr_eq(&b.redactor, redactor) && b.redactor.version() != redactor.version()
        }) {
            self.finish(t)?;
        }
        let start = t.batch.as_ref().map_or(rec.start, |b| b.start);
        while t.forced.front().is_some_and(|&(_, e)| e <= start) {
            t.forced.pop_front();
        }
        if let Some(&(s, e)) = t.forced.front() {
            if s == start && rec.end > e && t.batch.is_some() {
                // The record crosses a boundary formed before a restart (the multiline
                // settings changed): end the batch before it.
                tracing::warn!(path = %t.label_path, "a record crosses a pre-restart batch boundary; some lines may be stored twice");
                t.forced.pop_front();
                self.finish(t)?;
            }
        }
        let (identity, path) = (&t.identity, &t.label_path);
        let b = t.batch.get_or_insert_with(|| {
            Building::new(rec.start, redactor.clone(), self.body(identity, path))
        });
        {
            let mut scrubbed = self.scrubbed.borrow_mut();
            let text = match b
                .redactor
                .apply_into(&rec.text, &mut b.counts, &mut scrubbed)
            {
                Applied::Unchanged => Some(&*rec.text),
                Applied::Rewritten => Some(scrubbed.as_str()),
                Applied::Dropped => None,
            };
            match text {
                Some(text) => {
                    // Strictly increasing per file, so the lines of one read keep their order.
                    t.last_ts = read_ns.max(t.last_ts + 1);
                    b.body.push(t.last_ts, text);
                }
                None => {
                    self.sh.metrics.lines_dropped_by_rule.inc();
                }
            }
            if scrubbed.capacity() > MAX_KEPT_SCRUBBED {
                *scrubbed = String::new(); // one huge line's buffer is not kept
            }
        }
        b.end = rec.end;
        let forced_end = t
            .forced
            .front()
            .filter(|&&(s, _)| s == b.start)
            .map(|&(_, e)| e);
        let full = match forced_end {
            Some(e) => b.end >= e,
            None => {
                b.body.raw_bytes() >= self.cfg.max_batch_bytes
                    || b.body.records() >= self.cfg.max_batch_lines
            }
        };
        if full {
            if forced_end.is_some() {
                t.forced.pop_front();
            }
            self.finish(t)?;
        }
        Ok(())
    }

    /// Encodes the identity's batch and hands it to the shipper, waiting while the queue is
    /// full (backpressure).
    fn finish(&self, t: &mut Tailed) -> Result<(), Closed> {
        let Some(b) = t.batch.take() else {
            return Ok(());
        };
        let origin = self.origin(&t.identity, &t.label_path);
        let formed = match batch::form(&origin, b, &mut self.enc.borrow_mut()) {
            Ok(f) => f,
            Err(err) => {
                tracing::error!(path = %t.label_path, %err, "encoding a batch failed");
                return Ok(());
            }
        };
        self.sh.metrics.add_redactions(&formed.redactions);
        self.send(formed)
    }

    fn send(&self, mut formed: Formed) -> Result<(), Closed> {
        loop {
            match self.tx.try_send(formed) {
                Ok(()) => return Ok(()),
                Err(mpsc::error::TrySendError::Closed(_)) => return Err(Closed),
                Err(mpsc::error::TrySendError::Full(f)) => {
                    if self.stop_sending.is_cancelled() {
                        return Err(Closed);
                    }
                    formed = f;
                    self.beat();
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
    }
}
