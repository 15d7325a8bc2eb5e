//! Rotation proven with the real `logrotate` binary: a writer appends numbered lines at
//! several thousand lines per second while logrotate rotates the file again and again; at the
//! end the aggregator must hold every line exactly once (compared as sets of sequence
//! numbers, with duplicates counted).
//!
//! copytruncate is the one mode where logrotate itself can lose lines (those written between
//! its copy and its truncate, as its manual says); there every line that exists on disk
//! afterwards must be stored exactly once, and the lines logrotate lost may be stored (once)
//! if the agent read them before the truncation.

use std::collections::BTreeSet;
use std::io::BufRead;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use fjord_e2e::writer::{assert_once_between, seq_of, Writer};
use fjord_e2e::{agent_config, logrotate, logrotate_available, start_agent, Aggregator};

/// Lines per second the writer aims for.
const RATE: u64 = 4000;
/// Rotations per test.
const ROTATIONS: usize = 6;

/// Runs `logrotate -f` with `directives` on `dir/logs/app.log`, `ROTATIONS` times.
fn rotate_repeatedly(dir: &Path, directives: &str) {
    for _ in 0..ROTATIONS {
        std::thread::sleep(Duration::from_millis(400));
        logrotate(dir, directives);
    }
}

/// Every sequence number in the files left in `logs/` (decompressing `.gz`).
fn seqs_on_disk(dir: &Path) -> BTreeSet<u64> {
    let mut set = BTreeSet::new();
    for e in std::fs::read_dir(dir.join("logs")).unwrap().flatten() {
        let p = e.path();
        let f = std::fs::File::open(&p).unwrap();
        let lines: Vec<String> = if p.extension().is_some_and(|x| x == "gz") {
            std::io::BufReader::new(flate2_reader(f))
                .lines()
                .map_while(Result::ok)
                .collect()
        } else {
            std::io::BufReader::new(f)
                .lines()
                .map_while(Result::ok)
                .collect()
        };
        set.extend(lines.iter().filter_map(|l| seq_of(l)));
    }
    set
}

fn flate2_reader(f: std::fs::File) -> Box<dyn std::io::Read> {
    // `gzip -dc` keeps the test free of a decompression dependency.
    let out = Command::new("gzip")
        .arg("-dc")
        .stdin(f)
        .output()
        .expect("gzip -dc");
    Box::new(std::io::Cursor::new(out.stdout))
}

/// Starts the pipeline, writes while logrotate rotates, and returns (aggregator, lines
/// written, temp dir) once the writer has stopped.
fn run(
    directives: &str,
    agent_extra: &str,
) -> Option<(Aggregator, u64, tempfile::TempDir, fjord_e2e::Proc)> {
    if !logrotate_available() {
        // .ci/run installs logrotate; locally, say why the test did nothing.
        eprintln!("logrotate not installed: skipping (CI installs it)");
        return None;
    }
    let dir = fjord_e2e::test_dir();
    let agg = Aggregator::start(dir.path());
    let cfg = agent_config(dir.path(), &agg.url(), agent_extra);
    let log = dir.path().join("logs/app.log");
    let writer = Writer::start(&log, RATE);
    let agent = start_agent(dir.path(), &cfg);
    rotate_repeatedly(dir.path(), directives);
    let written = writer.stop();
    assert!(written > 2 * RATE, "the writer wrote only {written} lines");
    Some((agg, written, dir, agent))
}

/// Waits until `required` lines are stored, then a little longer so that a duplicate would
/// have arrived, and checks each is there exactly once and nothing outside `allowed` is.
fn check_between(agg: &Aggregator, required: &BTreeSet<u64>, allowed: &BTreeSet<u64>) {
    let want = required.len() as u64;
    let start = Instant::now();
    // No panic on timeout: the check below names what is missing.
    while agg.stored_records() < want && start.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!(
        "stored {want} lines {:?} after the writer stopped",
        start.elapsed()
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert_once_between(&agg.stored_seqs(), required, allowed);
}

fn check(agg: &Aggregator, expected: &BTreeSet<u64>) {
    check_between(agg, expected, expected);
}

#[test]
fn logrotate_create_loses_and_duplicates_nothing() {
    let Some((agg, written, _dir, _agent)) = run("rotate 100\n  create", "") else {
        return;
    };
    check(&agg, &(0..written).collect());
}

#[test]
fn logrotate_compress_delaycompress_loses_and_duplicates_nothing() {
    let Some((agg, written, _dir, _agent)) = run(
        "rotate 100\n  create\n  compress\n  delaycompress",
        "paths = [\"LOGS/app.log*\"]\nexclude = [\"**/*.gz\"]",
    ) else {
        return;
    };
    check(&agg, &(0..written).collect());
}

#[test]
fn logrotate_rotate_0_loses_and_duplicates_nothing() {
    let Some((agg, written, _dir, _agent)) = run("rotate 0\n  create", "") else {
        return;
    };
    check(&agg, &(0..written).collect());
}

#[test]
fn logrotate_copytruncate_stores_exactly_what_is_on_disk() {
    let Some((agg, written, dir, _agent)) = run(
        "rotate 100\n  copytruncate",
        "paths = [\"LOGS/app.log*\"]\nexclude = [\"**/*.gz\"]",
    ) else {
        return;
    };
    let on_disk = seqs_on_disk(dir.path());
    eprintln!(
        "copytruncate: {written} written, {} kept by logrotate",
        on_disk.len()
    );
    check_between(&agg, &on_disk, &(0..written).collect());
}
