//! Model-based tests of the tailer: random sequences of appends, renames, copytruncates,
//! truncations, deletions, compressions and agent restarts run against an in-memory
//! filesystem, and the lines the tailer emits are checked against what the app wrote.
//!
//! The sink acknowledges each line as it arrives (the checkpoint moves to its end), so a
//! restart resumes exactly where the emitted lines stop. The properties:
//! - no line is emitted twice, and each emitted line is exactly what was written;
//! - each identity's lines are contiguous byte ranges, in the order they were written;
//! - every line of content the agent knew (it had recorded an identity for that inode and
//!   content generation) that still exists at the end under the followed name or a rotated,
//!   uncompressed sibling was emitted;
//! - the bytes reported lost never exceed the bytes written and never emitted.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::*;
use crate::metrics::Metrics;
use crate::state::{Checkpoint, Loss};

const DIR: &str = "/logs";
const APP: &str = "/logs/app.log";
const KEEP: usize = 3;

/// One line as written: its sequence number and the (inode, generation) it went to.
#[derive(Debug, Clone, Copy)]
struct Tag {
    seq: u64,
    ino: u64,
    generation: u32,
}

#[derive(Debug, Default)]
struct Inode {
    data: Vec<u8>,
    /// Per line of `data`, in order.
    tags: Vec<Tag>,
    generation: u32,
    mtime_ns: i64,
}

#[derive(Debug, Default)]
struct Fs {
    next_ino: u64,
    names: BTreeMap<PathBuf, u64>,
    inodes: HashMap<u64, Rc<RefCell<Inode>>>,
    tick: i64,
    /// Nanoseconds since the model's start.
    clock: u64,
}

impl Fs {
    fn create(&mut self, path: &Path) -> u64 {
        self.next_ino += 1;
        let ino = self.next_ino;
        self.inodes.insert(ino, Rc::default());
        self.names.insert(path.to_owned(), ino);
        ino
    }

    fn touch(&mut self, ino: u64) {
        self.tick += 1;
        if let Some(i) = self.inodes.get(&ino) {
            i.borrow_mut().mtime_ns = self.tick;
        }
    }

    fn meta(ino: u64, i: &Inode) -> Meta {
        Meta {
            dev: 1,
            ino,
            len: i.data.len() as u64,
            mtime_ns: i.mtime_ns,
        }
    }

    fn rotated_name(n: usize) -> PathBuf {
        PathBuf::from(format!("{APP}.{n}"))
    }

    /// `app.log.N` → `app.log.N+1`, the oldest beyond [`KEEP`] deleted.
    fn shift(&mut self) {
        self.names.remove(&Self::rotated_name(KEEP));
        for n in (1..KEEP).rev() {
            if let Some(ino) = self.names.remove(&Self::rotated_name(n)) {
                self.names.insert(Self::rotated_name(n + 1), ino);
            }
        }
    }
}

#[derive(Clone)]
struct MemEnv {
    fs: Rc<RefCell<Fs>>,
    base: Instant,
    /// `paths` matches the rotated names too (`app.log*`, compressed ones excluded), as
    /// users who glob rotations configure it.
    glob_rotated: bool,
}

struct MemFile {
    ino: u64,
    inode: Rc<RefCell<Inode>>,
}

impl Env for MemEnv {
    type File = MemFile;

    fn scan(&mut self) -> Vec<(PathBuf, Meta)> {
        let fs = self.fs.borrow();
        fs.names
            .iter()
            .filter(|(p, _)| p.parent() == Some(Path::new(DIR)))
            .filter(|(p, _)| {
                let name = p.to_string_lossy();
                if self.glob_rotated {
                    name.starts_with(APP) && !name.ends_with(".gz")
                } else {
                    p.extension().is_some_and(|e| e == "log")
                }
            })
            .map(|(p, &ino)| (p.clone(), Fs::meta(ino, &fs.inodes[&ino].borrow())))
            .collect()
    }

    fn list_dir(&self, dir: &Path) -> Vec<(PathBuf, Meta)> {
        let fs = self.fs.borrow();
        fs.names
            .iter()
            .filter(|(p, _)| p.parent() == Some(dir))
            .map(|(p, &ino)| (p.clone(), Fs::meta(ino, &fs.inodes[&ino].borrow())))
            .collect()
    }

    fn stat(&self, path: &Path) -> io::Result<Meta> {
        let fs = self.fs.borrow();
        let ino = *fs.names.get(path).ok_or(io::ErrorKind::NotFound)?;
        let m = Fs::meta(ino, &fs.inodes[&ino].borrow());
        Ok(m)
    }

    fn open(&self, path: &Path) -> io::Result<MemFile> {
        let fs = self.fs.borrow();
        let ino = *fs.names.get(path).ok_or(io::ErrorKind::NotFound)?;
        Ok(MemFile {
            ino,
            inode: fs.inodes[&ino].clone(),
        })
    }

    fn fstat(&self, f: &MemFile) -> io::Result<Meta> {
        Ok(Fs::meta(f.ino, &f.inode.borrow()))
    }

    fn read_at(&self, f: &MemFile, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let i = f.inode.borrow();
        let from = (offset as usize).min(i.data.len());
        let n = buf.len().min(i.data.len() - from);
        buf[..n].copy_from_slice(&i.data[from..from + n]);
        Ok(n)
    }

    fn now(&self) -> Instant {
        self.base + Duration::from_nanos(self.fs.borrow().clock)
    }

    fn wall_ns(&self) -> i64 {
        1_800_000_000_000_000_000 + self.fs.borrow().clock as i64
    }

    fn wait(&mut self, d: Duration) {
        self.fs.borrow_mut().clock += d.as_nanos() as u64;
    }
}

/// Checkpoints in memory; it also notes which content generations the agent knew.
#[derive(Default)]
struct Store {
    cps: HashMap<String, Checkpoint>,
    known: HashSet<(u64, u32)>,
    /// Generations truncated while the agent's fingerprint of them was too short to tell
    /// them from what was written after the cut: the cut is invisible (docs/tailing.md).
    blind: HashSet<(u64, u32)>,
    /// The fingerprint length of the identity last recorded for each inode.
    fp_len: HashMap<String, u64>,
}

#[derive(Clone)]
struct MemStore {
    st: Rc<RefCell<Store>>,
    fs: Rc<RefCell<Fs>>,
}

impl Checkpoints for MemStore {
    fn of_inode(&mut self, dev_ino: &str) -> io::Result<Vec<Checkpoint>> {
        let st = self.st.borrow();
        Ok(st
            .cps
            .values()
            .filter(|c| c.dev_ino == dev_ino)
            .cloned()
            .collect())
    }

    fn by_fingerprint(&mut self, fp_len: u64, fp_hash: &str) -> io::Result<Vec<Checkpoint>> {
        let st = self.st.borrow();
        Ok(st
            .cps
            .values()
            .filter(|c| c.fp_len == fp_len && c.fp_hash == fp_hash)
            .cloned()
            .collect())
    }

    fn recent(&mut self, _ttl: Duration) -> io::Result<Vec<Checkpoint>> {
        Ok(self.st.borrow().cps.values().cloned().collect())
    }

    fn rotated_from(&mut self, path: &str, _ttl: Duration) -> io::Result<Vec<Checkpoint>> {
        let st = self.st.borrow();
        Ok(st
            .cps
            .values()
            .filter(|c| path.len() > c.path.len() && path.starts_with(&c.path))
            .cloned()
            .collect())
    }

    fn put(&mut self, c: &Checkpoint) -> io::Result<()> {
        let mut st = self.st.borrow_mut();
        if let Some(ino) = c.dev_ino.strip_prefix("1:").and_then(|i| i.parse().ok()) {
            if let Some(i) = self.fs.borrow().inodes.get(&ino) {
                st.known.insert((ino, i.borrow().generation));
            }
        }
        st.fp_len.insert(c.dev_ino.clone(), c.fp_len);
        let offset = st.cps.get(&c.identity).map_or(0, |o| o.offset);
        let mut c = c.clone();
        c.offset = c.offset.max(offset);
        st.cps.insert(c.identity.clone(), c);
        Ok(())
    }

    fn pending_end(&mut self, _identity: &str) -> io::Result<Option<u64>> {
        Ok(None)
    }

    fn is_fresh(&self) -> bool {
        false
    }

    fn housekeeping(&mut self, _present: Vec<String>) {}
}

/// Emitted lines and losses; each line is acknowledged at once.
#[derive(Default)]
struct Got {
    lines: Vec<(String, u64, u64, String)>,
    lost: u64,
}

struct Recorder {
    got: Rc<RefCell<Got>>,
    st: Rc<RefCell<Store>>,
    /// Refuse this line once, as a batch that cannot be formed.
    fail_seq: Option<u64>,
}

impl Sink for Recorder {
    type Stream = ();

    fn open(&mut self, _f: FileRef<'_>, _offset: u64) {}

    fn line(
        &mut self,
        _s: &mut (),
        f: FileRef<'_>,
        line: Line<'_>,
        _now: Instant,
        _read_ns: i64,
    ) -> Result<(), Stop> {
        if self.fail_seq.is_some() && self.fail_seq == seq_of(&line.text) {
            self.fail_seq = None;
            return Err(Stop::File("test: this batch cannot be formed".into()));
        }
        self.got.borrow_mut().lines.push((
            f.identity.to_owned(),
            line.start,
            line.end,
            line.text.into_owned(),
        ));
        if let Some(c) = self.st.borrow_mut().cps.get_mut(f.identity) {
            c.offset = c.offset.max(line.end);
        }
        Ok(())
    }

    fn tick(
        &mut self,
        _: &mut (),
        _: FileRef<'_>,
        _: Instant,
        _: i64,
        _: bool,
    ) -> Result<(), Stop> {
        Ok(())
    }

    fn flush(&mut self, _: &mut (), _: FileRef<'_>) -> Result<(), Stop> {
        Ok(())
    }

    fn held_bytes(&self, _: &()) -> usize {
        0
    }

    fn holds(&self, _: &()) -> bool {
        false
    }

    fn lost(&mut self, _f: FileRef<'_>, loss: &Loss) {
        self.got.borrow_mut().lost += loss.end_off - loss.start_off;
    }
}

#[derive(Debug, Clone)]
enum Op {
    /// The app appends lines through its open file.
    Write { lines: u8, pad: u8 },
    /// logrotate `create`: rename to `app.log.1`, create a new `app.log`, the app reopens.
    RotateCreate,
    /// An app rotating itself: rename, a few last lines through the old handle, reopen.
    /// (An app that keeps writing to a renamed file for longer than the agent's grace after
    /// the file stops growing is not followed there.)
    Rename { last_lines: u8 },
    /// The app (re)opens `app.log`, creating it if missing.
    Reopen,
    /// logrotate `copytruncate`: copy to `app.log.1`, truncate the original.
    CopyTruncate,
    /// Truncated in place, nothing kept.
    Truncate,
    /// `app.log` deleted (the app keeps its handle until it reopens).
    Delete,
    /// `app.log.1` compressed (renamed to `.gz`, which is never read).
    Compress,
    /// Time passes and the agent runs a round.
    Poll { ms: u16, rescan: bool },
    /// SIGKILL and restart: everything in memory is gone; checkpoints stay.
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (1u8..12, 0u8..60).prop_map(|(lines, pad)| Op::Write { lines, pad }),
        2 => Just(Op::RotateCreate),
        1 => (0u8..4).prop_map(|last_lines| Op::Rename { last_lines }),
        2 => Just(Op::Reopen),
        2 => Just(Op::CopyTruncate),
        1 => Just(Op::Truncate),
        1 => Just(Op::Delete),
        1 => Just(Op::Compress),
        10 => (0u16..1500, any::<bool>()).prop_map(|(ms, rescan)| Op::Poll { ms, rescan }),
        2 => Just(Op::Restart),
    ]
}

struct World {
    fs: Rc<RefCell<Fs>>,
    st: Rc<RefCell<Store>>,
    got: Rc<RefCell<Got>>,
    /// The inode the app writes to.
    app: Option<u64>,
    seq: u64,
    written: HashMap<u64, String>,
    max_open_files: usize,
    read_budget: usize,
    glob_rotated: bool,
}

type ModelTailer = Tailer<MemEnv, MemStore, Recorder>;

impl World {
    fn new(max_open_files: usize, read_budget: usize, glob_rotated: bool) -> World {
        let fs = Rc::new(RefCell::new(Fs::default()));
        let app = fs.borrow_mut().create(Path::new(APP));
        World {
            fs,
            st: Rc::default(),
            got: Rc::default(),
            app: Some(app),
            seq: 0,
            written: HashMap::new(),
            max_open_files,
            read_budget,
            glob_rotated,
        }
    }

    fn tailer(&self, base: Instant) -> ModelTailer {
        self.tailer_failing(base, None)
    }

    fn tailer_failing(&self, base: Instant, fail_seq: Option<u64>) -> ModelTailer {
        let set = Settings {
            max_open_files: self.max_open_files,
            max_line_bytes: 4096,
            read_from: ReadFrom::Beginning,
            rescan_interval: Duration::from_secs(1),
            poll_interval: Duration::from_millis(250),
            partial_line_flush: Duration::from_secs(5),
            max_building_bytes: usize::MAX,
            read_budget: self.read_budget,
            checkpoint_ttl: Duration::from_secs(86_400),
        };
        let env = MemEnv {
            fs: self.fs.clone(),
            base,
            glob_rotated: self.glob_rotated,
        };
        let store = MemStore {
            st: self.st.clone(),
            fs: self.fs.clone(),
        };
        let sink = Recorder {
            got: self.got.clone(),
            st: self.st.clone(),
            fail_seq,
        };
        let sh = Shared {
            metrics: Arc::new(Metrics::new()),
            acked: Arc::new(Mutex::new(HashMap::new())),
            heartbeat: Arc::new(AtomicU64::new(0)),
        };
        Tailer::new(set, env, store, sink, sh)
    }

    fn apply(&mut self, op: &Op) {
        let mut fs = self.fs.borrow_mut();
        match *op {
            Op::Write { lines, pad } => {
                let Some(ino) = self.app else { return };
                let inode = fs.inodes[&ino].clone();
                let mut i = inode.borrow_mut();
                let generation = i.generation;
                for _ in 0..lines {
                    self.seq += 1;
                    let text = format!("L{:06} {}", self.seq, "x".repeat(pad as usize));
                    i.data.extend_from_slice(text.as_bytes());
                    i.data.push(b'\n');
                    i.tags.push(Tag {
                        seq: self.seq,
                        ino,
                        generation,
                    });
                    self.written.insert(self.seq, text);
                }
                drop(i);
                fs.touch(ino);
            }
            Op::RotateCreate => {
                if let Some(ino) = fs.names.remove(Path::new(APP)) {
                    fs.shift();
                    fs.names.insert(Fs::rotated_name(1), ino);
                }
                self.app = Some(fs.create(Path::new(APP)));
            }
            Op::Rename { last_lines } => {
                if let Some(ino) = fs.names.remove(Path::new(APP)) {
                    fs.shift();
                    fs.names.insert(Fs::rotated_name(1), ino);
                }
                drop(fs);
                self.apply(&Op::Write {
                    lines: last_lines,
                    pad: 3,
                });
                self.apply(&Op::Reopen);
            }
            Op::Reopen => {
                let ino = match fs.names.get(Path::new(APP)) {
                    Some(&ino) => ino,
                    None => fs.create(Path::new(APP)),
                };
                self.app = Some(ino);
            }
            Op::CopyTruncate => {
                let Some(&ino) = fs.names.get(Path::new(APP)) else {
                    return;
                };
                let src = fs.inodes[&ino].clone();
                fs.shift();
                let copy = fs.create(&Fs::rotated_name(1));
                {
                    let s = src.borrow();
                    let mut c = fs.inodes[&copy].borrow_mut();
                    c.data = s.data.clone();
                    c.tags = s.tags.clone();
                }
                fs.touch(copy);
                Self::truncate(&mut fs, &mut self.st.borrow_mut(), ino);
            }
            Op::Truncate => {
                if let Some(&ino) = fs.names.get(Path::new(APP)) {
                    Self::truncate(&mut fs, &mut self.st.borrow_mut(), ino);
                }
            }
            Op::Delete => {
                fs.names.remove(Path::new(APP));
            }
            Op::Compress => {
                if let Some(ino) = fs.names.remove(&Fs::rotated_name(1)) {
                    fs.names.insert(PathBuf::from(format!("{APP}.1.gz")), ino);
                }
            }
            Op::Poll { .. } | Op::Restart => {}
        }
    }

    fn truncate(fs: &mut Fs, st: &mut Store, ino: u64) {
        let fp_len = st.fp_len.get(&format!("1:{ino}")).copied();
        // Every line starts with `L` and a 6-digit number: 8 bytes tell two apart.
        if fp_len.is_some_and(|l| l < 8) {
            st.blind.insert((ino, fs.inodes[&ino].borrow().generation));
        }
        {
            let mut i = fs.inodes[&ino].borrow_mut();
            i.data.clear();
            i.tags.clear();
            i.generation += 1;
        }
        fs.touch(ino);
    }

    /// Lines that must have been emitted: content the agent knew, still on disk under the
    /// followed name or an uncompressed sibling.
    fn required(&self) -> Vec<u64> {
        let fs = self.fs.borrow();
        let st = self.st.borrow();
        let mut out = Vec::new();
        for (p, ino) in &fs.names {
            let name = p.to_string_lossy();
            if !name.starts_with(APP) || name.ends_with(".gz") {
                continue;
            }
            for tag in &fs.inodes[ino].borrow().tags {
                let g = (tag.ino, tag.generation);
                if st.known.contains(&g) && !st.blind.contains(&g) {
                    out.push(tag.seq);
                }
            }
        }
        out
    }
}

/// Rounds until nothing is left to read and long enough after for every rotated file to be
/// drained and every orphan to expire.
fn quiesce(t: &mut ModelTailer) {
    let mut idle = 0;
    for _ in 0..100_000 {
        t.env_mut().wait(Duration::from_millis(300));
        match t.round(true) {
            Ok(true) => idle = 0,
            Ok(false) => idle += 1,
            Err(Closed) => panic!("the recorder never closes"),
        }
        if idle > 20 {
            return;
        }
    }
    panic!("the tailer never settled");
}

fn seq_of(text: &str) -> Option<u64> {
    text.get(1..7)?.parse().ok()
}

fn run_model(
    ops: &[Op],
    max_open_files: usize,
    read_budget: usize,
    glob_rotated: bool,
) -> Result<(), TestCaseError> {
    let base = Instant::now();
    let mut w = World::new(max_open_files, read_budget, glob_rotated);
    let mut t = w.tailer(base);
    for op in ops {
        w.apply(op);
        match *op {
            Op::Poll { ms, rescan } => {
                t.env_mut().wait(Duration::from_millis(u64::from(ms)));
                prop_assert!(t.round(rescan).is_ok());
            }
            Op::Restart => {
                drop(t);
                w.fs.borrow_mut().clock += 2_000_000_000;
                t = w.tailer(base);
            }
            _ => {}
        }
    }
    quiesce(&mut t);
    drop(t);

    let got = w.got.borrow();
    let mut emitted: HashSet<u64> = HashSet::new();
    let mut emitted_bytes = 0u64;
    let mut last: HashMap<&str, (u64, u64)> = HashMap::new();
    for (id, start, end, text) in &got.lines {
        let seq = seq_of(text);
        prop_assert!(seq.is_some(), "not a written line: {text:?}");
        let seq = seq.unwrap_or_default();
        prop_assert_eq!(w.written.get(&seq), Some(text), "line {} altered", seq);
        prop_assert!(emitted.insert(seq), "line {} emitted twice", seq);
        emitted_bytes += end - start;
        if let Some(&(prev_end, prev_seq)) = last.get(id.as_str()) {
            prop_assert_eq!(*start, prev_end, "gap or overlap in identity {}", id);
            prop_assert!(seq > prev_seq, "identity {} out of order", id);
        }
        last.insert(id, (*end, seq));
    }
    for seq in w.required() {
        prop_assert!(
            emitted.contains(&seq),
            "line {} on disk and known, never emitted",
            seq
        );
    }
    let written_bytes: u64 = w.written.values().map(|t| t.len() as u64 + 1).sum();
    prop_assert!(
        got.lost <= written_bytes - emitted_bytes,
        "reported {} bytes lost, only {} were never emitted",
        got.lost,
        written_bytes - emitted_bytes
    );
    Ok(())
}

proptest! {
    // 4,000 cases in about 2 s; PROPTEST_CASES asks for more (a longer hunt).
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(4000),
        ..ProptestConfig::default()
    })]

    /// Every byte is emitted exactly once (or was deleted unread), through any sequence of
    /// writes, rotations, truncations, deletions and restarts.
    #[test]
    fn every_line_once_through_rotations_and_restarts(
        ops in proptest::collection::vec(op(), 1..60),
        max_open_files in prop_oneof![Just(1usize), Just(64)],
        read_budget in prop_oneof![Just(64usize), Just(1 << 20)],
        glob_rotated in any::<bool>(),
    ) {
        run_model(&ops, max_open_files, read_budget, glob_rotated)?;
    }
}

/// A restart right after a `create` rotation: the unread tail of the renamed file is read.
#[test]
fn restart_after_create_rotation_finishes_the_renamed_file() {
    let ops = [
        Op::Write { lines: 5, pad: 60 },
        Op::Poll {
            ms: 0,
            rescan: true,
        },
        Op::Write { lines: 10, pad: 10 },
        Op::Restart,
        Op::RotateCreate,
        Op::Write { lines: 3, pad: 5 },
    ];
    let base = Instant::now();
    let mut w = World::new(64, 1 << 20, false);
    let mut t = w.tailer(base);
    for op in &ops {
        w.apply(op);
        match op {
            Op::Poll { .. } => {
                t.round(true).unwrap();
            }
            Op::Restart => t = w.tailer(base),
            _ => {}
        }
    }
    quiesce(&mut t);
    let got = w.got.borrow();
    let seqs: Vec<u64> = got.lines.iter().filter_map(|l| seq_of(&l.3)).collect();
    let mut sorted = seqs.clone();
    sorted.sort();
    assert_eq!(sorted, (1..=18).collect::<Vec<_>>(), "{seqs:?}");
}

/// A copytruncate whose copy is compressed before it is read: the unread bytes are counted
/// as lost, exactly.
#[test]
fn a_copy_compressed_before_it_is_read_is_counted_lost() {
    let base = Instant::now();
    // 64 bytes read per round: the first round sees 8 lines of 50 bytes and reads one.
    let mut w = World::new(64, 64, false);
    let mut t = w.tailer(base);
    w.apply(&Op::Write { lines: 8, pad: 41 });
    t.round(true).unwrap();
    w.apply(&Op::CopyTruncate);
    w.apply(&Op::Compress);
    quiesce(&mut t);
    let got = w.got.borrow();
    assert_eq!(got.lines.len(), 1);
    assert_eq!(got.lost, 7 * 50);
}

/// A batch that cannot be formed stops its file: nothing after it is emitted (so no later
/// checkpoint passes it), and after a restart the file is read again from the checkpoint.
#[test]
fn a_refused_line_stops_its_file_until_restart() {
    let base = Instant::now();
    let mut w = World::new(64, 1 << 20, false);
    let mut t = w.tailer_failing(base, Some(5));
    w.apply(&Op::Write { lines: 10, pad: 30 });
    quiesce(&mut t);
    w.apply(&Op::Write { lines: 10, pad: 30 });
    quiesce(&mut t);
    let seqs = |w: &World| -> Vec<u64> {
        w.got
            .borrow()
            .lines
            .iter()
            .filter_map(|l| seq_of(&l.3))
            .collect()
    };
    assert_eq!(seqs(&w), vec![1, 2, 3, 4], "nothing after the refused line");
    let ckpt = w.st.borrow().cps.values().map(|c| c.offset).max();
    assert_eq!(
        ckpt,
        Some(4 * 39),
        "the checkpoint stops before the refused line"
    );
    drop(t);
    let mut t = w.tailer(base);
    quiesce(&mut t);
    assert_eq!(seqs(&w), (1..=20).collect::<Vec<_>>());
}

/// The backlog gauges: unacknowledged bytes, and how old the oldest unacknowledged line is.
#[test]
fn backlog_gauges_follow_the_acknowledged_offset() {
    let base = Instant::now();
    let mut w = World::new(64, 1 << 20, false);
    let mut t = w.tailer(base);
    w.apply(&Op::Write { lines: 10, pad: 30 }); // 390 bytes
    t.round(true).unwrap();
    let label = FileLabel { path: APP.into() };
    let sh = &t.sh;
    assert_eq!(sh.metrics.lag_bytes.get_or_create(&label).get(), 390);
    let first_seen = sh.metrics.oldest_unacked.get_or_create(&label).get();
    assert!(first_seen > 1.7e9, "a Unix time: {first_seen}");
    let text = sh.metrics.encode();
    assert!(
        text.contains("fjord_agent_oldest_unacked_age_seconds{path=\"/logs/app.log\"}"),
        "{text}"
    );
    // Acknowledged up to the end: nothing is waiting.
    let id = t.files.keys().next().cloned().unwrap();
    t.sh.acked.lock().unwrap().insert(id, 390);
    t.env_mut().wait(LAG_REFRESH);
    t.round(true).unwrap();
    assert_eq!(t.sh.metrics.lag_bytes.get_or_create(&label).get(), 0);
    assert_eq!(t.sh.metrics.oldest_unacked.get_or_create(&label).get(), 0.0);
}
