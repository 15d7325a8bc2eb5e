//! The rule set in force, and its hot reload.
//!
//! The reader takes an `Arc<Redactor>` per cycle from [`RulesHandle::current`]; a reload
//! swaps the `Arc`, so a batch is always redacted by one version. The rules directory is
//! polled by content (names and bytes of the visible `*.toml` files, symlinks followed):
//! that catches the Kubernetes ConfigMap `..data` symlink swap, which inotify reports
//! unreliably. An invalid new version is refused with its file:line:col and a metric, and
//! the old version stays in force.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use fjord_rules::Redactor;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// How often the rules directory is checked for a new version.
pub const RELOAD_POLL: Duration = Duration::from_secs(1);

/// Why a rule set could not be put in force; each names the file, line and column or the
/// rule at fault.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Rules(#[from] fjord_rules::RulesError),
    #[error(transparent)]
    Redactor(#[from] fjord_rules::RedactorError),
}

/// Builds the redactor from a rules directory (or the default packs without one).
pub fn build(dir: Option<&Path>, hash_key: Option<&[u8]>) -> Result<Redactor, BuildError> {
    let rules = fjord_rules::load_rule_set(dir)?;
    if let Some(at) = &rules.baseline_disabled_at {
        tracing::warn!(at = %at, "the locked compliance baseline is DISABLED by unsafe_disable_baseline = true: secrets and card numbers are not scrubbed");
    }
    Ok(Redactor::new(&rules, hash_key)?)
}

/// A digest of the visible rule files, to notice a change without parsing.
fn digest(dir: &Path) -> Option<String> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| !n.starts_with('.') && n.ends_with(".toml"))
        })
        .collect();
    names.sort();
    let mut h = Sha256::new();
    for p in names {
        h.update(p.as_os_str().as_encoded_bytes());
        h.update([0]);
        h.update(std::fs::read(&p).unwrap_or_default());
        h.update([0]);
    }
    Some(hex::encode(&h.finalize()[..16]))
}

/// The redactor in force, shared by the reader and the reloader.
pub struct RulesHandle {
    current: RwLock<Arc<Redactor>>,
    /// Bumped after every swap (release), so a reader learns of a new version with one
    /// atomic load per record instead of taking the lock.
    generation: AtomicU64,
    dir: Option<PathBuf>,
    hash_key: Option<Vec<u8>>,
}

impl RulesHandle {
    pub fn new(initial: Redactor, dir: Option<PathBuf>, hash_key: Option<Vec<u8>>) -> RulesHandle {
        RulesHandle {
            current: RwLock::new(Arc::new(initial)),
            generation: AtomicU64::new(0),
            dir,
            hash_key,
        }
    }

    /// The redactor in force now.
    pub fn current(&self) -> Arc<Redactor> {
        match self.current.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// How many times the rule set was swapped. A reader that saw it change takes
    /// [`RulesHandle::current`] again; it then has the new version, or a newer one.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn swap(&self, r: Redactor) {
        let r = Arc::new(r);
        match self.current.write() {
            Ok(mut g) => *g = r,
            Err(poisoned) => *poisoned.into_inner() = r,
        }
        // After the swap and before the reload is counted: a line read after the counter
        // moved sees the new generation.
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// Checks the directory until `stop`, swapping in each valid new version.
    pub async fn watch(self: Arc<Self>, metrics: Arc<Metrics>, stop: CancellationToken) {
        let Some(dir) = self.dir.clone() else {
            return;
        };
        let mut last = digest(&dir);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(RELOAD_POLL) => {}
            }
            let now = digest(&dir);
            if now == last || now.is_none() {
                continue;
            }
            last = now;
            let me = self.clone();
            let built = tokio::task::spawn_blocking(move || {
                build(me.dir.as_deref(), me.hash_key.as_deref())
            })
            .await;
            match built {
                Ok(Ok(r)) => {
                    let old = self.current().version().to_owned();
                    if r.version() != old {
                        tracing::info!(old = %old, new = %r.version(), rules = ?r.rule_names(), "rule set reloaded");
                        self.swap(r);
                        metrics.rules_reloads.inc();
                    }
                }
                Ok(Err(err)) => {
                    metrics.rules_reload_failures.inc();
                    tracing::error!(error = %err, in_force = %self.current().version(), "new rule set refused; the previous version stays in force");
                }
                Err(err) => tracing::error!(%err, "rule reload task failed"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_swap_moves_the_generation_after_the_new_set_is_in_force() {
        let dir = tempfile::tempdir().unwrap();
        let h = RulesHandle::new(build(None, None).unwrap(), None, None);
        let (g0, v0) = (h.generation(), h.current().version().to_owned());
        std::fs::write(
            dir.path().join("team.toml"),
            "name = \"team\"\n\n[[rule]]\nname = \"customer\"\npattern = 'cust-[0-9]+'\naction = \"mask\"\n",
        )
        .unwrap();
        h.swap(build(Some(dir.path()), None).unwrap());
        assert_eq!(h.generation(), g0 + 1);
        assert_ne!(h.current().version(), v0);
    }
}
