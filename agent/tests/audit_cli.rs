//! `fjord-agent audit` against a real state DB: the report's totals, the exit code when data
//! went outside the allowed jurisdictions, and the JSON-lines export.

use std::process::Command;

use fjord_agent::state::{Checkpoint, LedgerRow, State};

fn audit(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_fjord-agent"))
        .arg("audit")
        .args(args)
        .output()
        .unwrap()
}

fn commit(s: &mut State, id: &str, end: u64, jurisdiction: &str, outcome: &'static str) {
    s.add_pending(id, "ident", end - 100, end).unwrap();
    let row = LedgerRow {
        batch_id: id.into(),
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
        redactions: r#"{"card":2,"email":1}"#.into(),
        outcome,
    };
    s.commit_batch("ident", id, end, Some(&row)).unwrap();
}

#[test]
fn report_export_and_foreign_destination() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = State::open(dir.path()).unwrap();
    s.put_checkpoint(&Checkpoint {
        identity: "ident".into(),
        dev_ino: "1:2".into(),
        path: "/var/log/payment/app.log".into(),
        fp_len: 256,
        fp_hash: "ab".into(),
        offset: 0,
    })
    .unwrap();
    commit(&mut s, "b1", 100, "EEA", "acked");
    commit(&mut s, "b2", 200, "EEA", "duplicate");
    commit(&mut s, "b3", 300, "EEA", "dead_letter");
    s.add_pending("b4", "ident", 300, 400).unwrap();
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
    assert!(text.contains("card") && text.contains("6"), "{text}");
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
    commit(&mut s, "b5", 500, "US", "acked");
    drop(s);
    let out = audit(&["--state", state]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stdout).contains("DATA WAS SENT TO"));

    // A missing state DB is a usage error that says what to pass.
    let out = audit(&["--state", "/nonexistent"]);
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--state"));
}
