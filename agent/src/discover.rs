//! Finding the files to follow: glob patterns with excludes, walked from their literal
//! directory prefixes (following symlinked files and directories, as in the Kubernetes
//! `/var/log/pods` and `/var/log/containers` layout), plus a `notify` watcher that wakes the
//! reader early. The periodic walk stays the source of truth, because inotify events can be
//! dropped, coalesced, or never arrive on some volumes.
//!
//! The walk is bounded whatever the directories hold: it descends only as deep as some
//! pattern can match (`logs/*.log` reads `logs/` alone; `**` allows [`MAX_DEPTH`]), visits
//! each directory once (a symlink loop is walked once), looks at most at
//! [`MAX_ENTRIES_PER_SCAN`] entries, and stops when asked to. A file reached through a
//! symlink that resolves outside the roots of `paths` is refused unless
//! `follow_symlinks_outside` is set, and the agent's own secret files (token, hash key, CA
//! bundle, state DB) are never followed, whatever the config says: an app container must not
//! be able to make the agent ship what only the agent can read.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use notify::{EventKind, RecursiveMode, Watcher as _};

/// Deepest directory level walked below a root for a `**` pattern.
pub const MAX_DEPTH: usize = 16;

/// Directory entries looked at in one walk; past this the walk stops with a warning (a
/// log volume with more entries than this is a misconfiguration or an attack).
pub const MAX_ENTRIES_PER_SCAN: usize = 200_000;

/// Why a matching file is not followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Refusal {
    /// A symlink resolving outside the roots of `paths`.
    SymlinkOutside,
    /// One of the agent's own secret files.
    Secret,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::SymlinkOutside => "symlink_outside",
            Refusal::Secret => "secret",
        }
    }
}

/// What one walk found.
#[derive(Debug, Default)]
pub struct Found {
    /// Regular files to follow, with their metadata (symlinks followed), sorted by path.
    pub files: Vec<(PathBuf, std::fs::Metadata)>,
    /// Matching files refused, and why.
    pub refused: Vec<(PathBuf, Refusal)>,
}

/// Glob patterns compiled once, with the literal directories to walk.
pub struct Discovery {
    include: GlobSet,
    exclude: GlobSet,
    /// Walk roots with how deep below each a pattern can match.
    roots: Vec<(PathBuf, usize)>,
    root_paths: Vec<PathBuf>,
    follow_outside: bool,
    /// Files never followed: the agent's own secrets.
    secrets: Vec<PathBuf>,
}

fn glob_set(patterns: &[String]) -> Result<GlobSet, globset::Error> {
    let mut b = GlobSetBuilder::new();
    for p in patterns {
        // `*` stops at `/`, as in a shell; `**` crosses directories.
        b.add(GlobBuilder::new(p).literal_separator(true).build()?);
    }
    b.build()
}

/// The literal part of a pattern before its first glob character.
fn literal(pattern: &str) -> &str {
    let end = pattern.find(['*', '?', '[', '{']).unwrap_or(pattern.len());
    &pattern[..end]
}

/// The literal directory before the first glob character of a pattern.
fn root_of(pattern: &str) -> PathBuf {
    let lit = literal(pattern);
    let root = if lit.ends_with('/') {
        PathBuf::from(lit)
    } else {
        Path::new(lit)
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default()
    };
    if root.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        root
    }
}

/// How many directory levels below its root a pattern can match.
fn depth_of(pattern: &str) -> usize {
    let root = root_of(pattern);
    let rest = pattern
        .strip_prefix(root.to_string_lossy().as_ref())
        .unwrap_or(pattern)
        .trim_start_matches('/');
    if rest.contains("**") {
        MAX_DEPTH
    } else {
        rest.matches('/').count()
    }
}

impl Discovery {
    pub fn new(
        include: &[String],
        exclude: &[String],
        follow_outside: bool,
        secrets: Vec<PathBuf>,
    ) -> Result<Discovery, globset::Error> {
        let mut all: Vec<PathBuf> = include.iter().map(|p| root_of(p)).collect();
        all.sort();
        all.dedup();
        // A root inside another root is walked by the outer one.
        let outer: Vec<PathBuf> = all
            .iter()
            .filter(|r| !all.iter().any(|o| o != *r && r.starts_with(o)))
            .cloned()
            .collect();
        let roots = outer
            .iter()
            .map(|r| {
                let depth = include
                    .iter()
                    .filter(|p| root_of(p).starts_with(r))
                    .map(|p| {
                        let below = root_of(p).components().count() - r.components().count();
                        (below + depth_of(p)).min(MAX_DEPTH)
                    })
                    .max()
                    .unwrap_or(0);
                (r.clone(), depth)
            })
            .collect();
        Ok(Discovery {
            include: glob_set(include)?,
            exclude: glob_set(exclude)?,
            roots,
            root_paths: outer,
            follow_outside,
            secrets,
        })
    }

    /// The directories walked (and watched).
    pub fn roots(&self) -> &[PathBuf] {
        &self.root_paths
    }

    /// Whether a path is one to follow.
    pub fn wants(&self, path: &Path) -> bool {
        self.include.is_match(path) && !self.exclude.is_match(path)
    }

    /// Regular files matching now, with their metadata (symlinks followed), and those
    /// refused. Missing or unreadable directories are simply empty. `stop` is asked between
    /// directories; when it answers true the walk ends early.
    pub fn scan(&self, stop: &dyn Fn() -> bool) -> Found {
        let mut w = Walk {
            d: self,
            stop,
            visited: HashSet::new(),
            entries: 0,
            // The roots as they resolve now (a root may be a symlink, or appear later).
            real_roots: self
                .root_paths
                .iter()
                .filter_map(|r| std::fs::canonicalize(r).ok())
                .collect(),
            // The secrets by inode: a Kubernetes Secret is a symlink swapped on update.
            secrets: self
                .secrets
                .iter()
                .filter_map(|p| std::fs::metadata(p).ok())
                .map(|m| (m.dev(), m.ino()))
                .collect(),
            out: Found::default(),
        };
        for (root, depth) in &self.roots {
            w.walk(root, *depth, false);
        }
        if w.entries >= MAX_ENTRIES_PER_SCAN {
            tracing::warn!(
                limit = MAX_ENTRIES_PER_SCAN,
                "the log directories hold more entries than one walk looks at; some files may not be found"
            );
        }
        let mut out = w.out;
        out.files.sort_by(|a, b| a.0.cmp(&b.0));
        out.files.dedup_by(|a, b| a.0 == b.0);
        out
    }
}

/// One walk's state.
struct Walk<'a> {
    d: &'a Discovery,
    stop: &'a dyn Fn() -> bool,
    /// Directories entered, by device and inode: a symlink loop is walked once.
    visited: HashSet<(u64, u64)>,
    entries: usize,
    real_roots: Vec<PathBuf>,
    secrets: HashSet<(u64, u64)>,
    out: Found,
}

impl Walk<'_> {
    /// Walks `dir`, `depth` more levels down; `via_link`: reached through a symlink.
    fn walk(&mut self, dir: &Path, depth: usize, via_link: bool) {
        if (self.stop)() || self.entries >= MAX_ENTRIES_PER_SCAN {
            return;
        }
        let Ok(md) = std::fs::metadata(dir) else {
            return;
        };
        if !self.visited.insert((md.dev(), md.ino())) {
            return;
        }
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            self.entries += 1;
            if self.entries >= MAX_ENTRIES_PER_SCAN {
                return;
            }
            let p = e.path();
            let is_link = e.file_type().is_ok_and(|t| t.is_symlink());
            let Ok(md) = std::fs::metadata(&p) else {
                continue;
            };
            if md.is_dir() {
                if depth > 0 && !self.d.exclude.is_match(&p) {
                    self.walk(&p, depth - 1, via_link || is_link);
                }
            } else if md.is_file() && self.d.wants(&p) {
                if self.secrets.contains(&(md.dev(), md.ino())) {
                    self.out.refused.push((p, Refusal::Secret));
                } else if (via_link || is_link) && !self.d.follow_outside && !self.inside(&p) {
                    self.out.refused.push((p, Refusal::SymlinkOutside));
                } else {
                    self.out.files.push((p, md));
                }
            }
        }
    }

    /// Whether `p` resolves inside one of the roots.
    fn inside(&self, p: &Path) -> bool {
        std::fs::canonicalize(p)
            .is_ok_and(|real| self.real_roots.iter().any(|r| real.starts_with(r)))
    }
}

/// Wake-ups from the watcher. Data changes only wake the reader; files that appear, move or
/// vanish also raise a flag that asks for a directory walk. The flag is separate from the
/// (bounded, lossy) wake channel, so a rescan request is never lost behind data wake-ups.
#[derive(Clone, Default)]
pub struct Wake {
    rescan: Arc<AtomicBool>,
}

impl Wake {
    /// Whether a rescan was asked for since the last call (and clears the request).
    pub fn take_rescan(&self) -> bool {
        self.rescan.swap(false, Ordering::AcqRel)
    }
}

/// A `notify` watcher over the discovery roots. Events only wake the reader early; losing
/// them costs latency, never data.
pub struct Watcher {
    inner: Option<notify::RecommendedWatcher>,
    watched: Vec<(PathBuf, Option<(u64, u64)>)>,
}

impl Watcher {
    /// Starts a watcher that raises `wake`'s rescan flag and sends wake-ups to `tx` (a
    /// bounded channel: when it is full the reader is awake anyway).
    pub fn new(wake: Wake, tx: mpsc::SyncSender<()>) -> Watcher {
        let inner = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            let rescan = match res {
                Ok(ev) => match ev.kind {
                    EventKind::Create(_) | EventKind::Remove(_) => true,
                    EventKind::Modify(notify::event::ModifyKind::Name(_)) => true,
                    EventKind::Access(_) => return,
                    _ => false,
                },
                // Overflowed queues and other errors: look at everything.
                Err(_) => true,
            };
            if rescan {
                wake.rescan.store(true, Ordering::Release);
            }
            let _ = tx.try_send(());
        });
        match inner {
            Ok(w) => Watcher {
                inner: Some(w),
                watched: Vec::new(),
            },
            Err(err) => {
                tracing::warn!(%err, "file watcher unavailable; relying on polling");
                Watcher {
                    inner: None,
                    watched: Vec::new(),
                }
            }
        }
    }

    /// (Re)watches each root that exists now and was not watched, or was replaced since.
    pub fn refresh(&mut self, roots: &[PathBuf]) {
        let Some(w) = self.inner.as_mut() else {
            return;
        };
        for root in roots {
            let id = std::fs::metadata(root).ok().map(|m| (m.dev(), m.ino()));
            let known = self.watched.iter().position(|(p, _)| p == root);
            let prev = known.and_then(|i| self.watched[i].1);
            if id.is_none() || id == prev {
                continue;
            }
            match w.watch(root, RecursiveMode::Recursive) {
                Ok(()) => {
                    tracing::debug!(dir = %root.display(), "watching");
                    match known {
                        Some(i) => self.watched[i].1 = id,
                        None => self.watched.push((root.clone(), id)),
                    }
                }
                Err(err) => {
                    tracing::debug!(dir = %root.display(), %err, "cannot watch; polling it")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_excludes_and_symlinked_dirs() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("pods/shop_pay-1_uid/app")).unwrap();
        std::fs::write(d.join("pods/shop_pay-1_uid/app/0.log"), "x\n").unwrap();
        std::fs::write(d.join("pods/shop_pay-1_uid/app/0.log.gz"), "x").unwrap();
        std::fs::create_dir(d.join("containers")).unwrap();
        std::os::unix::fs::symlink(
            d.join("pods/shop_pay-1_uid/app/0.log"),
            d.join("containers/pay-1_shop_app.log"),
        )
        .unwrap();
        std::os::unix::fs::symlink(d.join("pods"), d.join("linked")).unwrap();
        let base = d.display();
        let disc = Discovery::new(
            &[
                format!("{base}/containers/*.log"),
                format!("{base}/linked/**/*.log*"),
            ],
            &["**/*.gz".to_owned()],
            false,
            Vec::new(),
        )
        .unwrap();
        let got: Vec<PathBuf> = disc
            .scan(&|| false)
            .files
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        assert_eq!(
            got,
            vec![
                d.join("containers/pay-1_shop_app.log"),
                d.join("linked/shop_pay-1_uid/app/0.log"),
            ]
        );
        let none =
            Discovery::new(&[format!("{base}/missing/*.log")], &[], false, Vec::new()).unwrap();
        assert!(none.scan(&|| false).files.is_empty());
    }

    fn paths(found: &[(PathBuf, std::fs::Metadata)]) -> Vec<PathBuf> {
        found.iter().map(|(p, _)| p.clone()).collect()
    }

    /// `ln -s . logs/lN` loops: `logs/*.log` never descends, and `logs/**` walks each
    /// directory once.
    #[test]
    fn symlink_loops_are_walked_once_and_only_as_deep_as_a_pattern_reaches() {
        let dir = tempfile::tempdir().unwrap();
        let logs = dir.path().join("logs");
        std::fs::create_dir(&logs).unwrap();
        std::fs::write(logs.join("app.log"), "x\n").unwrap();
        for n in 0..3 {
            std::os::unix::fs::symlink(".", logs.join(format!("l{n}"))).unwrap();
        }
        let base = logs.display();
        let flat = Discovery::new(&[format!("{base}/*.log")], &[], false, Vec::new()).unwrap();
        assert_eq!(flat.roots, vec![(logs.clone(), 0)]);
        assert_eq!(
            paths(&flat.scan(&|| false).files),
            vec![logs.join("app.log")]
        );
        let deep = Discovery::new(&[format!("{base}/**/*.log")], &[], false, Vec::new()).unwrap();
        let walks = std::cell::Cell::new(0);
        let found = deep.scan(&|| {
            walks.set(walks.get() + 1);
            false
        });
        assert_eq!(paths(&found.files), vec![logs.join("app.log")]);
        // `logs` once, and each link once, found to be `logs` again.
        assert_eq!(walks.get(), 4);
        // Asked to stop: nothing more is walked.
        assert!(deep.scan(&|| true).files.is_empty());
        assert_eq!(depth_of(&format!("{base}/a/*/x.log")), 1);
    }

    /// A link out of the log volume is refused unless allowed; the agent's secret files are
    /// refused even through a link inside it.
    #[test]
    fn links_out_of_the_roots_and_secret_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let logs = dir.path().join("logs");
        let secrets = dir.path().join("secrets");
        std::fs::create_dir(&logs).unwrap();
        std::fs::create_dir(&secrets).unwrap();
        std::fs::write(secrets.join("token"), "fjd_secret\n").unwrap();
        std::fs::write(dir.path().join("elsewhere.txt"), "x\n").unwrap();
        std::fs::write(logs.join("app.log"), "x\n").unwrap();
        std::os::unix::fs::symlink(dir.path().join("elsewhere.txt"), logs.join("out.log")).unwrap();
        std::os::unix::fs::symlink(secrets.join("token"), logs.join("evil.log")).unwrap();
        let pats = [format!("{}/*.log", logs.display())];
        let d = Discovery::new(&pats, &[], false, vec![secrets.join("token")]).unwrap();
        let found = d.scan(&|| false);
        assert_eq!(paths(&found.files), vec![logs.join("app.log")]);
        let mut refused = found.refused.clone();
        refused.sort();
        assert_eq!(
            refused,
            vec![
                (logs.join("evil.log"), Refusal::Secret),
                (logs.join("out.log"), Refusal::SymlinkOutside),
            ]
        );
        let open = Discovery::new(&pats, &[], true, vec![secrets.join("token")]).unwrap();
        let found = open.scan(&|| false);
        assert_eq!(
            paths(&found.files),
            vec![logs.join("app.log"), logs.join("out.log")]
        );
        assert_eq!(
            found.refused,
            vec![(logs.join("evil.log"), Refusal::Secret)]
        );
    }
}
