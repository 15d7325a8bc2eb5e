//! A restart right after a rotation must not lose the rotated file's unread tail, with
//! `paths = ["<logs>/*.log"]`, a glob that does not match the rotated names (`app.log.1`,
//! `app.log-<date>`, `.gz`), as deploy/k8s ships it.
//!
//! Each cycle makes the unread tail deterministic: the agent has shipped everything so far,
//! is stopped (SIGSTOP), the app writes a burst the agent cannot have read, the file is
//! rotated (real `logrotate`, or the app renaming its own file), the agent is killed
//! (SIGKILL, as the OOM killer does) while still stopped, the app writes on into the new
//! file, and a new agent starts from the state DB. The burst exists only in the rotated
//! file; the agent must finish its identity there. At the end every line is stored exactly
//! once.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use fjord_e2e::writer::{append_numbered, numbered_line};
use fjord_e2e::{
    agent_config, agent_metric, agent_metric_sum, bin, free_port, logrotate, logrotate_available,
    start_agent, test_dir, wait_for, Aggregator, Proc,
};

/// Lines shipped before each stop.
const SHIPPED: u64 = 1000;
/// Lines written while the agent is stopped, just before the rotation.
const BURST: u64 = 5000;
/// Lines written into the new file after the rotation, before the agent is back.
const AFTER: u64 = 1000;
/// Stop → burst → rotate → SIGKILL → restart cycles per test.
const CYCLES: u64 = 2;
/// The least time between two rotations: `dateformat` names copies to the second, and
/// logrotate refuses to rotate onto a name that exists.
const ROTATION_GAP: Duration = Duration::from_millis(1100);

/// How one test rotates `logs/app.log`.
enum Rotation {
    /// `logrotate -f` with these directives.
    Logrotate(&'static str),
    /// The app renames its own file to `app.log.1` (the previous `.1` to `.2`, …) and
    /// reopens `app.log`.
    Rename,
}

fn rotate(dir: &Path, how: &Rotation) {
    match how {
        Rotation::Logrotate(directives) => logrotate(dir, directives),
        Rotation::Rename => {
            let rotated = |n: u32| dir.join(format!("logs/app.log.{n}"));
            let mut n = 1;
            while rotated(n).exists() {
                n += 1;
            }
            for k in (1..n).rev() {
                std::fs::rename(rotated(k), rotated(k + 1)).unwrap();
            }
            std::fs::rename(dir.join("logs/app.log"), rotated(1)).unwrap();
        }
    }
}

/// Waits until line `last` is stored (panics after 30 s), then up to 10 s more until all of
/// `0..=last` are. The second wait does not panic: on an agent that lost lines it ends
/// with lines missing, and the final check names them.
fn wait_stored(agg: &Aggregator, last: u64, what: &str) {
    wait_for(what, Duration::from_secs(30), || {
        agg.stored_seqs().contains(&last)
    });
    let start = Instant::now();
    while agg.stored_records() <= last && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Sends `sig` to the agent.
fn signal(agent: &Proc, sig: libc::c_int) {
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(agent.pid(), sig) }, 0, "kill {sig}");
}

/// Runs the cycles with `how` and checks that every line written is stored exactly once.
fn run(how: Rotation) {
    if !logrotate_available() && !matches!(how, Rotation::Rename) {
        // CI installs logrotate; locally, say why the test did nothing.
        eprintln!("logrotate not installed: skipping (CI installs it)");
        return;
    }
    let dir = test_dir();
    let agg = Aggregator::start(dir.path());
    let cfg = agent_config(dir.path(), &agg.url(), "");
    let log = dir.path().join("logs/app.log");
    let mut agent = start_agent(dir.path(), &cfg);
    let mut next = 0u64;
    let mut rotated_at: Option<Instant> = None;
    for cycle in 0..CYCLES {
        append_numbered(&log, next..next + SHIPPED);
        next += SHIPPED;
        wait_stored(&agg, next - 1, "the lines before the burst stored");
        signal(&agent, libc::SIGSTOP);
        append_numbered(&log, next..next + BURST);
        next += BURST;
        if let Some(t) = rotated_at {
            std::thread::sleep(ROTATION_GAP.saturating_sub(t.elapsed()));
        }
        rotate(dir.path(), &how);
        rotated_at = Some(Instant::now());
        agent.kill();
        append_numbered(&log, next..next + AFTER);
        next += AFTER;
        agent = start_agent(dir.path(), &cfg);
        // The lines after the rotation are in a file the glob matches: once they are
        // stored, the restarted agent has had its chance at the rotated file too.
        wait_stored(
            &agg,
            next - 1,
            &format!("cycle {cycle}: the new file's last line stored"),
        );
    }
    let expected: BTreeSet<u64> = (0..next).collect();
    let stored: BTreeSet<u64> = agg.stored_seqs().into_iter().collect();
    eprintln!(
        "{next} lines written, {} never stored",
        expected.difference(&stored).count()
    );
    agg.expect_exactly_once(&expected, Duration::from_secs(5));
}

#[test]
fn sigkill_after_logrotate_create_loses_no_unread_line() {
    run(Rotation::Logrotate("rotate 10\n  create"));
}

#[test]
fn sigkill_after_logrotate_copytruncate_loses_no_unread_line() {
    run(Rotation::Logrotate("rotate 10\n  copytruncate"));
}

/// Date-named copies, compressed one rotation late: the second cycle compresses the first
/// cycle's copy (`.gz`), which the agent must have finished by then, and leaves the second
/// cycle's copy plain for the restarted agent to finish.
#[test]
fn sigkill_after_logrotate_dateext_delaycompress_loses_no_unread_line() {
    run(Rotation::Logrotate(
        "rotate 10\n  create\n  dateext\n  dateformat -%Y%m%d-%H%M%S\n  compress\n  delaycompress",
    ));
}

#[test]
fn sigkill_after_the_app_renames_and_reopens_its_log_loses_no_unread_line() {
    run(Rotation::Rename);
}

/// Bytes a rotation destroys before the agent reads them are counted, not hidden. The agent
/// has seen the whole file but, with the aggregator down and a one-batch queue, read only
/// its start; logrotate then copies and truncates it and compresses the copy at once (no
/// `delaycompress`), so the unread rest exists nowhere the agent may read. Once the
/// aggregator is up: what was read is stored exactly once, the rest is counted in
/// `fjord_agent_lost_bytes_total` and written to the ledger, and the two add up to the file.
#[test]
fn bytes_a_rotation_destroyed_unread_are_counted_and_in_the_ledger() {
    if !logrotate_available() {
        eprintln!("logrotate not installed: skipping (CI installs it)");
        return;
    }
    const LINES: u64 = 20_000;
    let dir = test_dir();
    let port = free_port();
    let cfg = agent_config(
        dir.path(),
        &format!("http://127.0.0.1:{port}"),
        "queue_batches = 1\nmax_in_flight = 1\nmax_batch_bytes = 4096",
    );
    let log = dir.path().join("logs/app.log");
    append_numbered(&log, 0..LINES);
    let size = std::fs::metadata(&log).unwrap().len();
    let _agent = start_agent(dir.path(), &cfg);
    wait_for(
        "the agent to start reading",
        Duration::from_secs(30),
        || agent_metric(&cfg, "fjord_agent_read_bytes_total").is_some_and(|b| b > 0.0),
    );
    logrotate(dir.path(), "rotate 1\n  copytruncate\n  compress");
    assert!(dir.path().join("logs/app.log.1.gz").exists());
    let agg = Aggregator::start_on(
        dir.path(),
        port,
        &["--region", "eu-north-1", "--jurisdiction", "EEA"],
    );
    let mut lost = 0.0;
    wait_for("the loss to be counted", Duration::from_secs(90), || {
        lost = agent_metric_sum(&cfg, "fjord_agent_lost_bytes_total").unwrap_or(0.0);
        lost > 0.0
    });
    let lost = lost as u64;
    // The lines before the loss, by their lengths: the loss starts at a line boundary.
    let mut kept = 0u64;
    let mut lines = 0u64;
    while kept < size - lost {
        kept += numbered_line(lines).len() as u64 + 1;
        lines += 1;
    }
    assert_eq!(kept, size - lost, "the loss starts at a line boundary");
    assert!(
        lines < LINES / 2,
        "most of the file was unread: {lines} lines read"
    );
    let expected: BTreeSet<u64> = (0..lines).collect();
    agg.expect_exactly_once(&expected, Duration::from_secs(60));
    let out = std::process::Command::new(bin("fjord-agent"))
        .args(["audit", "--output", "json", "--state"])
        .arg(dir.path().join("state"))
        .output()
        .expect("run fjord-agent audit");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ranges = report["lost"].as_array().expect("lost ranges");
    assert_eq!(ranges.len(), 1, "{report}");
    assert_eq!(ranges[0]["bytes"], lost, "{report}");
    assert_eq!(ranges[0]["end_off"], size, "{report}");
    assert_eq!(ranges[0]["reason"], "truncated", "{report}");
    assert_eq!(report["outcomes"]["lost"], 1, "{report}");
    // The loss reaches the aggregator in the agent's shipped ledger, bytes and all.
    wait_for(
        "the loss in the shipped ledger",
        Duration::from_secs(30),
        || {
            let a = agg.audit_agents();
            a["agents"][0]["losses"] == 1 && a["agents"][0]["lost_bytes"] == lost
        },
    );
}
