//! `fjord-agent audit` against a real state DB: the report's totals, the exit code when data
//! went outside the allowed jurisdictions, the JSON-lines export, and the time range
//! (`--from`, `--to`, `--since`) that decides which ledger rows count.

use std::process::Command;

use fjord_agent::state::{Checkpoint, LedgerRecord, Outcome, PendingBatch, State};

fn audit(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_fjord-agent"))
        .arg("audit")
        .args(args)
        .output()
        .unwrap()
}

/// A batch of `ident` ending at `end`, recorded before its first send.
fn pending(end: u64) -> PendingBatch {
    PendingBatch {
        start: end - 100,
        end,
        first_ts: Some(1_764_151_200_000_000_000),
    }
}

fn commit(s: &mut State, id: &str, end: u64, jurisdiction: &str, outcome: Outcome) {
    s.add_pending(id, "ident", pending(end)).unwrap();
    let row = LedgerRecord {
        batch_id: id.into(),
        sent_ns: 0,
        destination: format!("https://agg.{jurisdiction}.example"),
        region: "eu-north-1".into(),
        jurisdiction: jurisdiction.into(),
        path: "/var/log/payment/app.log".into(),
        start_off: end - 100,
        end_off: end,
        records: 10,
        raw_bytes: 100,
        compressed_bytes: 60,
        payload_sha256: format!("{:064}", end),
        rules_version: "7da2a49f0b50c329".into(),
        redactions: [("card".to_owned(), 2), ("email".to_owned(), 1)].into(),
        outcome,
        reason: String::new(),
    };
    s.commit_batch("ident", id, end, Some(&row)).unwrap();
}

/// The rows of a text-report section (the lines after its title, and after the column header
/// where it has one, up to the blank line), each split into its fields.
fn section(text: &str, title: &str) -> Vec<Vec<String>> {
    text.lines()
        .skip_while(|l| !l.starts_with(title))
        .skip(1)
        .skip_while(|l| l.trim_start().starts_with("URL "))
        .take_while(|l| !l.is_empty())
        .map(|l| l.split_whitespace().map(str::to_owned).collect())
        .collect()
}

fn state_with_checkpoint(dir: &std::path::Path) -> State {
    let s = State::open(dir).unwrap();
    s.put_checkpoint(&Checkpoint {
        identity: "ident".into(),
        dev_ino: "1:2".into(),
        path: "/var/log/payment/app.log".into(),
        fp_len: 256,
        fp_hash: "ab".into(),
        offset: 0,
    })
    .unwrap();
    s
}

#[test]
fn report_export_and_foreign_destination() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = state_with_checkpoint(dir.path());
    commit(&mut s, "b1", 100, "EEA", Outcome::Acked);
    commit(&mut s, "b2", 200, "EEA", Outcome::Duplicate);
    commit(&mut s, "b3", 300, "EEA", Outcome::DeadLetter);
    s.add_pending("b4", "ident", pending(400)).unwrap();
    drop(s);
    let state = dir.path().to_str().unwrap();

    let out = audit(&["--state", state]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Outside the allowed jurisdictions: none"),
        "{text}"
    );
    assert_eq!(
        section(&text, "Destinations"),
        [[
            "https://agg.EEA.example",
            "eu-north-1",
            "EEA",
            "3",
            "30",
            "300",
            "180"
        ]],
        "{text}"
    );
    assert_eq!(
        section(&text, "Redactions by rule"),
        [["card", "6"], ["email", "3"]],
        "{text}"
    );
    assert!(text.contains("Dead-lettered batches: 1"), "{text}");
    assert!(
        text.contains("Unacknowledged batches (sent or about to be, no answer yet): 1"),
        "{text}"
    );

    let out = audit(&["--state", state, "--output", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["destinations"][0]["records"], 30);
    assert_eq!(v["redactions"]["email"], 3);
    assert_eq!(v["outcomes"]["duplicate"], 1);

    let out = audit(&["--state", state, "--export", "-"]);
    let rows: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0]["batch_id"], "b1");
    assert_eq!(rows[0]["redactions"]["card"], 2);

    // Data that went to a non-EEA destination makes the audit fail.
    let mut s = State::open(dir.path()).unwrap();
    commit(&mut s, "b5", 500, "US", Outcome::Acked);
    drop(s);
    let out = audit(&["--state", state]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stdout).contains("DATA WAS SENT TO"));

    // A missing state DB is a usage error that says what to pass.
    let out = audit(&["--state", "/nonexistent"]);
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--state"));
}

/// The RFC 3339 form (with nanoseconds) of a ledger time.
fn rfc3339(ns: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(ns as u64);
    humantime::format_rfc3339_nanos(t).to_string()
}

fn exported(state: &str, range: &[&str]) -> Vec<serde_json::Value> {
    let mut args = vec!["--state", state, "--export", "-"];
    args.extend_from_slice(range);
    let out = audit(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn batch_ids(rows: &[serde_json::Value]) -> Vec<&str> {
    rows.iter()
        .map(|r| r["batch_id"].as_str().unwrap())
        .collect()
}

/// Ledger rows are stamped with the time their batch was committed; rows outside the asked
/// range count nowhere in the report, the JSON or the export.
#[test]
fn rows_outside_the_time_range_are_not_counted() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().to_str().unwrap();
    let mut s = state_with_checkpoint(dir.path());
    commit(&mut s, "b1", 100, "EEA", Outcome::Acked);
    commit(&mut s, "b2", 200, "EEA", Outcome::Duplicate);
    // The third row went to a non-EEA destination: only a range that holds it fails.
    commit(&mut s, "b3", 300, "US", Outcome::Acked);
    drop(s);
    let times: Vec<i64> = exported(state, &[])
        .iter()
        .map(|r| r["sent_ns"].as_i64().unwrap())
        .collect();
    assert_eq!(times.len(), 3);
    let [t1, t2, t3] = [times[0], times[1], times[2]];
    assert!(t1 < t2 && t2 < t3, "commit times {times:?}");

    // --from is inclusive, --to exclusive: exactly b2.
    let (from, to) = (rfc3339(t2), rfc3339(t3));
    let range = ["--from", from.as_str(), "--to", to.as_str()];
    assert_eq!(batch_ids(&exported(state, &range)), ["b2"]);
    let mut args = vec!["--state", state];
    args.extend_from_slice(&range);
    let out = audit(&args);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert_eq!(
        section(&text, "Destinations"),
        [[
            "https://agg.EEA.example",
            "eu-north-1",
            "EEA",
            "1",
            "10",
            "100",
            "60"
        ]],
        "{text}"
    );
    assert_eq!(
        section(&text, "Redactions by rule"),
        [["card", "2"], ["email", "1"]],
        "{text}"
    );
    assert!(text.contains("Outcomes    duplicate 1\n"), "{text}");
    args.extend_from_slice(&["--output", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&audit(&args).stdout).unwrap();
    assert_eq!(v["destinations"].as_array().unwrap().len(), 1);
    assert_eq!(v["destinations"][0]["records"], 10);
    assert_eq!(v["outcomes"], serde_json::json!({ "duplicate": 1 }));
    assert_eq!(v["from_ns"], t2);
    assert_eq!(v["to_ns"], t3);

    // --since looks back from --to: a window that starts just after b2 holds only b3.
    let to = rfc3339(t3 + 1);
    let since = format!("{}ns", t3 - t2);
    let out = audit(&["--state", state, "--to", &to, "--since", &since]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert_eq!(
        section(&text, "Destinations"),
        [[
            "https://agg.US.example",
            "eu-north-1",
            "US",
            "1",
            "10",
            "100",
            "60"
        ]],
        "{text}"
    );
    let rows = exported(state, &["--to", &to, "--since", &since]);
    assert_eq!(batch_ids(&rows), ["b3"]);

    // Before any row: nothing left the pod in that period, and it is clean.
    let before = rfc3339(t1);
    let out = audit(&["--state", state, "--to", &before]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("(nothing left this pod in the period)"),
        "{text}"
    );
    assert_eq!(section(&text, "Redactions by rule"), [["(none)"]], "{text}");

    // A time that is not RFC 3339 is a usage error naming it.
    let out = audit(&["--state", state, "--from", "yesterday"]);
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("\"yesterday\""));
}
