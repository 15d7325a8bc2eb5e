//! An application stand-in as a process of its own: appends the numbered lines of
//! [`fjord_e2e::writer`] to a log file at a steady rate, one write per line, reopening the path
//! after rotation, until SIGTERM or SIGINT (or `--lines N`). It prints the number of lines
//! written (sequence numbers `0..N`) on stdout at exit; with `--progress FILE` it also keeps
//! that count in FILE while it runs (replaced atomically, at most `PROGRESS_EVERY` stale), so
//! a test can read it mid-run without a pipe.
//!
//! The pod test (`tests/tests/pod.rs`) runs it as the app container.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use fjord_e2e::writer::write_paced;

/// How often the progress file is replaced while lines are written.
const PROGRESS_EVERY: Duration = Duration::from_millis(100);

/// Set by the SIGTERM/SIGINT handler; the write loop checks it before each line.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    STOP.store(true, Ordering::Relaxed);
}

#[derive(Parser)]
#[command(about = "append numbered log lines at a steady rate, as an app does")]
struct Args {
    /// The log file to append to (created with its directory if missing).
    #[arg(value_name = "PATH")]
    path: PathBuf,
    /// Lines per second.
    #[arg(long, default_value_t = 1000, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    rate: u64,
    /// Stop after this many lines instead of waiting for SIGTERM/SIGINT.
    #[arg(long, value_name = "N")]
    lines: Option<u64>,
    /// Keep the number of lines written so far in this file while running.
    #[arg(long, value_name = "FILE")]
    progress: Option<PathBuf>,
}

/// Replaces `path` with `n` (write to a temp file, then rename, so a reader never sees a
/// partial number).
fn write_progress(path: &Path, n: u64) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, format!("{n}\n"))?;
    std::fs::rename(&tmp, path)
}

fn main() -> anyhow::Result<ExitCode> {
    let args = Args::parse();
    for sig in [libc::SIGTERM, libc::SIGINT] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe { libc::signal(sig, on_signal as *const () as libc::sighandler_t) };
    }
    if let Some(dir) = args.path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut last = Instant::now();
    let mut progress_err = None;
    let n = write_paced(&args.path, args.rate, args.lines, &STOP, |n| {
        if let Some(p) = &args.progress {
            if last.elapsed() >= PROGRESS_EVERY && progress_err.is_none() {
                last = Instant::now();
                progress_err = write_progress(p, n).err();
            }
        }
    })
    .with_context(|| format!("writing {}", args.path.display()))?;
    if let Some(e) = progress_err {
        return Err(e).context("writing the progress file");
    }
    if let Some(p) = &args.progress {
        write_progress(p, n).context("writing the progress file")?;
    }
    println!("{n}");
    Ok(ExitCode::SUCCESS)
}
