//! The agent's periodic check of its own resources, run off the async runtime on a
//! blocking thread every [`SELF_CHECK_EVERY`]:
//!
//! - the state directory takes a write (a probe file written, synced and removed), so
//!   checkpoints can be stored;
//! - its filesystem is below `disk_full_percent` (the disk budget);
//! - each log root's filesystem (the literal directory of a `paths` glob): its use is a
//!   gauge, and passing `disk_warn_percent` is logged as a warning at most once per
//!   [`WARN_EVERY`] per directory.
//!
//! The outcome goes to [`Health`] (read by `/readyz` without touching the disk) and to the
//! metrics. A log directory filling up is the app's problem as much as the agent's, so it
//! warns but never fails readiness.

use std::collections::HashMap;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::admin::{unix_now, Health};
use crate::metrics::{DirLabel, Metrics};

/// How often the check runs.
pub const SELF_CHECK_EVERY: Duration = Duration::from_secs(5);
/// The least time between two warnings about the same directory filling up.
pub const WARN_EVERY: Duration = Duration::from_secs(300);
/// The probe file written in the state directory (and removed again).
const PROBE_FILE: &str = ".fjord-write-probe";

/// The used share (0–1) of the filesystem holding `dir`, as `df` computes it: used blocks
/// over used plus those available to unprivileged users (root's reserve does not count).
pub fn used_ratio(dir: &Path) -> io::Result<f64> {
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // SAFETY: an all-zero statvfs is a valid value of this plain C struct.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is NUL-terminated and outlives the call; `st` is a valid out-pointer.
    if unsafe { libc::statvfs(path.as_ptr(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let used = st.f_blocks.saturating_sub(st.f_bfree) as f64;
    let total = used + st.f_bavail as f64;
    Ok(if total > 0.0 { used / total } else { 0.0 })
}

/// Writes, syncs and removes a small file in `dir`.
fn probe_write(dir: &Path) -> io::Result<()> {
    use std::io::Write;
    let p = dir.join(PROBE_FILE);
    let mut f = std::fs::File::create(&p)?;
    f.write_all(&unix_now().to_le_bytes())?;
    f.sync_all()?;
    drop(f);
    std::fs::remove_file(&p)
}

/// What the check looks at, and when it last warned about each directory.
pub struct SelfCheck {
    state_dir: PathBuf,
    log_roots: Vec<PathBuf>,
    full_percent: u8,
    warn_percent: u8,
    metrics: Arc<Metrics>,
    warned: HashMap<PathBuf, Instant>,
}

impl SelfCheck {
    pub fn new(
        state_dir: PathBuf,
        log_roots: Vec<PathBuf>,
        full_percent: u8,
        warn_percent: u8,
        metrics: Arc<Metrics>,
    ) -> SelfCheck {
        SelfCheck {
            state_dir,
            log_roots,
            full_percent,
            warn_percent,
            metrics,
            warned: HashMap::new(),
        }
    }

    /// Measures `dir`'s filesystem, sets its gauge and warns (rate-limited) when it passes
    /// `disk_warn_percent`; `None` when it cannot be measured (e.g. not created yet).
    fn measure(&mut self, dir: &Path, what: &'static str) -> Option<f64> {
        let label = DirLabel {
            dir: dir.display().to_string(),
        };
        let ratio = match used_ratio(dir) {
            Ok(r) => r,
            Err(err) => {
                tracing::debug!(dir = %dir.display(), %err, "cannot measure the filesystem");
                self.metrics.filesystem_used_ratio.remove(&label);
                return None;
            }
        };
        self.metrics
            .filesystem_used_ratio
            .get_or_create(&label)
            .set(ratio);
        let percent = ratio * 100.0;
        if percent >= f64::from(self.warn_percent) {
            let due = self
                .warned
                .get(dir)
                .is_none_or(|t| t.elapsed() >= WARN_EVERY);
            if due {
                tracing::warn!(
                    dir = %dir.display(),
                    what,
                    used_percent = format_args!("{percent:.1}"),
                    disk_warn_percent = self.warn_percent,
                    "filesystem filling up"
                );
                self.warned.insert(dir.to_owned(), Instant::now());
            }
        } else if self.warned.remove(dir).is_some() {
            tracing::info!(dir = %dir.display(), what, used_percent = format_args!("{percent:.1}"), "filesystem below the warning level again");
        }
        Some(ratio)
    }

    /// One round: the probe and every measurement. `Err` says why the agent is not ready.
    pub fn check_once(&mut self) -> Result<(), String> {
        let roots = self.log_roots.clone();
        for root in &roots {
            self.measure(root, "log directory");
        }
        let state_dir = self.state_dir.clone();
        let probe = probe_write(&state_dir);
        self.metrics
            .state_dir_writable
            .set(i64::from(probe.is_ok()));
        if let Err(err) = probe {
            return Err(format!(
                "the state directory {} takes no writes: {err}",
                state_dir.display()
            ));
        }
        if let Some(ratio) = self.measure(&state_dir, "state directory") {
            if ratio * 100.0 >= f64::from(self.full_percent) {
                return Err(format!(
                    "the state directory's filesystem is {:.1} % full (disk_full_percent = {})",
                    ratio * 100.0,
                    self.full_percent
                ));
            }
        }
        Ok(())
    }

    /// Runs [`SelfCheck::check_once`] now and every [`SELF_CHECK_EVERY`] until `stop`,
    /// reporting to `health`. Readiness changes are logged once each.
    pub async fn run(mut self, health: Arc<Health>, stop: CancellationToken) {
        let mut was: Result<(), String> = Ok(());
        loop {
            let round = tokio::task::spawn_blocking(move || {
                let r = self.check_once();
                (self, r)
            });
            let (back, result) = tokio::select! {
                () = stop.cancelled() => return,
                done = round => match done {
                    Ok(d) => d,
                    Err(err) => {
                        tracing::error!(%err, "self-check task failed");
                        return;
                    }
                },
            };
            self = back;
            if result != was {
                match &result {
                    Err(why) => tracing::error!(reason = %why, "not ready"),
                    Ok(()) => tracing::info!("the state directory checks pass again"),
                }
            }
            health.set_self_check(result.clone(), unix_now());
            was = result;
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(SELF_CHECK_EVERY) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_probes_and_applies_the_disk_budget() {
        let dir = tempfile::tempdir().unwrap();
        let logs = dir.path().join("logs");
        std::fs::create_dir(&logs).unwrap();
        let ratio = used_ratio(dir.path()).unwrap();
        assert!((0.0..=1.0).contains(&ratio), "{ratio}");
        let metrics = Arc::new(Metrics::new());
        let mut c = SelfCheck::new(
            dir.path().to_owned(),
            vec![logs.clone(), dir.path().join("not-yet")],
            100,
            1,
            metrics.clone(),
        );
        // A filesystem is never 100 % used by this measure while it holds the temp dir.
        assert_eq!(c.check_once(), Ok(()));
        assert!(
            !dir.path().join(PROBE_FILE).exists(),
            "the probe is removed"
        );
        let text = metrics.encode();
        assert!(text.contains("fjord_agent_state_dir_writable 1"), "{text}");
        let gauge = format!(
            "fjord_agent_filesystem_used_ratio{{dir=\"{}\"}}",
            logs.display()
        );
        assert!(text.contains(&gauge), "{text}");
        assert!(!text.contains("not-yet"), "{text}");
        // Warned once (1 %), not again within WARN_EVERY.
        assert!(c.warned.contains_key(&logs));

        // A budget of 1 % is exhausted on any filesystem in use.
        c.full_percent = 1;
        let err = c.check_once().unwrap_err();
        assert!(err.contains("disk_full_percent = 1"), "{err}");
    }

    #[test]
    fn a_state_directory_that_takes_no_writes_fails() {
        let dir = tempfile::tempdir().unwrap();
        let metrics = Arc::new(Metrics::new());
        let mut c = SelfCheck::new(dir.path().join("gone"), vec![], 95, 80, metrics.clone());
        let err = c.check_once().unwrap_err();
        assert!(err.contains("takes no writes"), "{err}");
        assert!(metrics
            .encode()
            .contains("fjord_agent_state_dir_writable 0"));
    }
}
