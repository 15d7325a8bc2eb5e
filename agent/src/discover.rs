//! Finding the files to follow: glob patterns with excludes, walked from their literal
//! directory prefixes (following symlinked files and directories, as in the Kubernetes
//! `/var/log/pods` and `/var/log/containers` layout), plus a `notify` watcher that wakes the
//! reader early. The periodic walk stays the source of truth, because inotify events can be
//! dropped, coalesced, or never arrive on some volumes.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use notify::{EventKind, RecursiveMode, Watcher as _};

/// Deepest directory level walked below a root (guards against symlink loops).
const MAX_DEPTH: usize = 16;

/// Glob patterns compiled once, with the literal directories to walk.
pub struct Discovery {
    include: GlobSet,
    exclude: GlobSet,
    roots: Vec<PathBuf>,
}

fn glob_set(patterns: &[String]) -> Result<GlobSet, globset::Error> {
    let mut b = GlobSetBuilder::new();
    for p in patterns {
        // `*` stops at `/`, as in a shell; `**` crosses directories.
        b.add(GlobBuilder::new(p).literal_separator(true).build()?);
    }
    b.build()
}

/// The literal directory before the first glob character of a pattern.
fn root_of(pattern: &str) -> PathBuf {
    let lit: String = pattern
        .chars()
        .take_while(|c| !"*?[{".contains(*c))
        .collect();
    let root = if lit.ends_with('/') {
        PathBuf::from(&lit)
    } else {
        Path::new(&lit)
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

impl Discovery {
    pub fn new(include: &[String], exclude: &[String]) -> Result<Discovery, globset::Error> {
        let mut roots: Vec<PathBuf> = include.iter().map(|p| root_of(p)).collect();
        roots.sort();
        roots.dedup();
        // A root inside another root is walked by the outer one.
        let outer: Vec<PathBuf> = roots
            .iter()
            .filter(|r| !roots.iter().any(|o| o != *r && r.starts_with(o)))
            .cloned()
            .collect();
        Ok(Discovery {
            include: glob_set(include)?,
            exclude: glob_set(exclude)?,
            roots: outer,
        })
    }

    /// The directories walked (and watched).
    pub fn roots(&self) -> &[PathBuf] {
        &self.roots
    }

    /// Whether a path is one to follow.
    pub fn wants(&self, path: &Path) -> bool {
        self.include.is_match(path) && !self.exclude.is_match(path)
    }

    /// Regular files matching now, with their metadata (symlinks followed). Missing or
    /// unreadable directories are simply empty.
    pub fn scan(&self) -> Vec<(PathBuf, std::fs::Metadata)> {
        let mut out = Vec::new();
        for root in &self.roots {
            self.walk(root, 0, &mut out);
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out.dedup_by(|a, b| a.0 == b.0);
        out
    }

    fn walk(&self, dir: &Path, depth: usize, out: &mut Vec<(PathBuf, std::fs::Metadata)>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            let Ok(md) = std::fs::metadata(&p) else {
                continue;
            };
            if md.is_dir() {
                if depth < MAX_DEPTH && !self.exclude.is_match(&p) {
                    self.walk(&p, depth + 1, out);
                }
            } else if md.is_file() && self.wants(&p) {
                out.push((p, md));
            }
        }
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
        use std::os::unix::fs::MetadataExt;
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
        )
        .unwrap();
        let got: Vec<PathBuf> = disc.scan().into_iter().map(|(p, _)| p).collect();
        assert_eq!(
            got,
            vec![
                d.join("containers/pay-1_shop_app.log"),
                d.join("linked/shop_pay-1_uid/app/0.log"),
            ]
        );
        let none = Discovery::new(&[format!("{base}/missing/*.log")], &[]).unwrap();
        assert!(none.scan().is_empty());
    }
}
