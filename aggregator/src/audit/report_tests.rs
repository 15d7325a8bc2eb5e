//! `audit report` through its JSON form, over a store that has seen every kind of evidence:
//! receipts with redactions, a pod's shipped ledger with a dead letter and a loss, a read,
//! an erasure and a signed chain; and its HTML and Markdown forms for their sections and
//! charts.

use fjord_rules::Redactor;
use fjord_wire::ledger::{LedgerPushRow, LedgerRecord, Outcome as Out};

use super::tests::{erase_as_dpo, grafana_read, meta, push};
use super::*;
use crate::keys::Signer;
use crate::store::{Store, NS_PER_DAY};

const DAY: i64 = 20_000 * NS_PER_DAY;

fn shipped(seq: i64, batch: &str, outcome: Out, records: u64) -> LedgerPushRow {
    LedgerPushRow {
        seq,
        record: LedgerRecord {
            batch_id: batch.into(),
            sent_ns: DAY + seq,
            destination: "https://agg.eu".into(),
            region: "eu-north-1".into(),
            jurisdiction: "EEA".into(),
            path: "/a.log".into(),
            start_off: 0,
            end_off: 0,
            records,
            raw_bytes: 100,
            compressed_bytes: 0,
            payload_sha256: format!("sha-{batch}"),
            rules_version: "v1".into(),
            redactions: Default::default(),
            outcome,
            reason: String::new(),
        },
    }
}

fn redactor() -> Redactor {
    let set = fjord_rules::load_rule_set(None).unwrap();
    Redactor::new(&set, Some(b"0123456789abcdef0123")).unwrap()
}

/// Three batches of two lines (one with an e-mail address each), their ledger, a dead
/// letter, a loss, a read, an erasure of one line; signed with `key`.
fn evidence(key: &Signer) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = crate::store::testing::open_store(dir.path());
    for (i, b) in ["b1", "b2", "b3"].iter().enumerate() {
        let t = DAY + i as i64 * 10;
        let l1 = format!("{b} first mail x{i}@example.no");
        let l2 = format!("{b} second ORD-{i}");
        store
            .ingest(
                &meta(b, DAY + i as i64),
                &push("/a.log", &[(t + 1, &l1), (t, &l2)]),
            )
            .unwrap();
    }
    let rows = vec![
        shipped(1, "b1", Out::Acked, 2),
        shipped(2, "b2", Out::Acked, 2),
        shipped(3, "b3", Out::Acked, 2),
        shipped(4, "b4", Out::DeadLetter, 7),
        shipped(5, "lost:x:0", Out::Lost, 0),
    ];
    store
        .ingest_ledger("payments", "pod-1", DAY + 9, &rows)
        .unwrap();
    store.record_access(&[grafana_read(DAY + 20)]).unwrap();
    erase_as_dpo(&store, r#"{file="/a.log"} |= "b2 second""#).unwrap();
    store.sign_chain(key, DAY + 30).unwrap().unwrap();
    (dir, store)
}

fn build(store: &Store, team: Option<&str>, key: &Signer) -> ComplianceReport {
    compliance_report(
        &store.evidence().unwrap(),
        &ReportInput {
            range: Range::ALL,
            team,
            keys: &[key.public()],
            redactor: &redactor(),
            flags: " --data DIR".into(),
            now_ns: DAY + 40,
        },
    )
    .unwrap()
}

#[test]
fn the_report_holds_every_figure_with_its_query() {
    let key = Signer::generate().unwrap();
    let (_dir, store) = evidence(&key);
    let r = build(&store, None, &key);
    let json = serde_json::to_value(&r).unwrap();

    // What left the pod, by day and destination jurisdiction.
    assert_eq!(
        json["shipped"]["data"],
        serde_json::json!([{
            "team": "payments", "day": "2024-10-04", "agent": "pod-1",
            "destination": "https://agg.eu", "jurisdiction": "EEA",
            "batches": 3, "records": 6, "bytes": 300
        }]),
        "{json:#}"
    );
    assert_eq!(json["received"]["data"][0]["batches"], 3);
    assert_eq!(json["received"]["data"][0]["records"], 6);
    // meta() declares {"email":2} per batch.
    assert_eq!(
        json["redactions"]["data"],
        serde_json::json!([{"team": "payments", "day": "2024-10-04", "rule": "email", "count": 6}])
    );
    let i = &json["integrity"]["data"];
    assert_eq!(i["ok"], true, "{json:#}");
    assert_eq!(
        (i["roots"].clone(), i["roots_verified"].clone()),
        (1.into(), 1.into())
    );
    assert_eq!(i["chain_findings"], serde_json::json!([]));
    // Five lines left after the erasure; the three with an e-mail address still match.
    assert_eq!(json["pii_scan"]["data"]["lines_scanned"], 5);
    assert_eq!(json["pii_scan"]["data"]["lines_matching"], 3);
    assert_eq!(json["pii_scan"]["data"]["rules"]["email"], 3);
    // Per day too: every line is of one day here.
    assert_eq!(
        json["pii_scan"]["data"]["days"],
        serde_json::json!([{"day": "2024-10-04", "lines_scanned": 5, "lines_matching": 3, "rules": {"email": 3}}])
    );
    assert_eq!(
        i["days"],
        serde_json::json!([{"day": "2024-10-04", "receipts_checked": 3, "missing": 0, "extra": 0, "altered": 0}])
    );
    assert_eq!(
        json["access"]["data"],
        serde_json::json!([{
            "day": "2024-10-04", "token": "grafana", "role": "read", "team": "payments",
            "endpoint": "query_range",
            "requests": 1, "refused": 0, "lines": 5
        }])
    );
    assert_eq!(json["erasures"]["data"][0]["operator"], "dpo");
    assert_eq!(
        json["losses"]["data"],
        serde_json::json!([{
            "team": "payments", "day": "2024-10-04", "agent": "pod-1", "dead_letter_batches": 1,
            "dead_letter_records": 7, "lost_ranges": 1, "lost_bytes": 100
        }])
    );
    // Every figure says how to reproduce it.
    for f in [
        "shipped",
        "received",
        "redactions",
        "integrity",
        "pii_scan",
        "access",
        "erasures",
        "losses",
    ] {
        let cmd = json[f]["command"].as_str().unwrap();
        assert!(cmd.starts_with("fjord-aggregator audit "), "{f}: {cmd}");
        assert!(cmd.contains("--data DIR"), "{f}: {cmd}");
        assert!(!json[f]["basis"].as_str().unwrap().is_empty(), "{f}");
    }
    // No stored line content anywhere in it.
    let text = json.to_string();
    assert!(
        !text.contains("example.no") && !text.contains("ORD-"),
        "{text}"
    );

    // Another team's report holds none of this team's figures.
    let other = serde_json::to_value(build(&store, Some("search"), &key)).unwrap();
    for f in ["shipped", "received", "redactions", "access", "losses"] {
        assert_eq!(other[f]["data"], serde_json::json!([]), "{f}");
    }
    assert_eq!(other["pii_scan"]["data"]["lines_scanned"], 0);
    assert!(other["pii_scan"]["command"]
        .as_str()
        .unwrap()
        .contains(r#"{team="search"}"#));
}

#[test]
fn html_and_markdown_hold_every_section_and_the_charts() {
    let key = Signer::generate().unwrap();
    let (_dir, store) = evidence(&key);
    let r = build(&store, None, &key);
    let html = render_html(&r);
    for id in [
        "summary",
        "shipped",
        "received",
        "redactions",
        "integrity",
        "pii-scan",
        "access",
        "erasures",
        "losses",
    ] {
        assert!(html.contains(&format!("<section id=\"{id}\">")), "{id}");
    }
    assert_eq!(html.matches("<svg").count(), 2, "two charts");
    assert!(html.contains("id=\"chart-shipped\"") && html.contains("id=\"chart-redactions\""));
    assert_eq!(html.matches("<table>").count(), 8);
    assert!(html.contains("@media print"));
    // Self-contained: no script, nothing fetched.
    assert!(
        !html.contains("<script") && !html.contains("src=\"http") && !html.contains("href=\"http")
    );
    // The erasure's query is escaped, not markup.
    assert!(
        html.contains("{file=&quot;/a.log&quot;} |= &quot;b2 second&quot;"),
        "{html}"
    );
    let md = render_md(&r);
    assert!(md.starts_with("# fjord compliance report"));
    assert_eq!(md.matches("\n## ").count(), 8);
    assert!(
        md.contains("| payments | 2024-10-04 | pod-1 | https://agg.eu | EEA | 3 | 6 | 300 |"),
        "{md}"
    );
}
