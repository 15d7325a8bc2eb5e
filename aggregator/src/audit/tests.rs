//! Unit tests of the audit reports over a real store in a temp dir: verify survives
//! compaction, erasure and retention, and catches altered, deleted and unreceipted data; scan
//! masks every match, keeps to its time range and reports the chunks it could not read.

use std::collections::BTreeMap;
use std::time::Duration;

use fjord_wire::{Entry, PushRequest, PushStream};

use super::*;
use crate::config::RetentionPolicy;
use crate::store::{chunk, Erasure, IngestMeta, Labels, Store, DB_FILE, NS_PER_DAY};
use fjord_rules::{Explanation, Redactor};
use fjord_wire::clock::format_ns;

const ALL: Range = Range {
    from_ns: i64::MIN,
    to_ns: i64::MAX,
};

pub(super) fn meta(batch: &str, received_ns: i64) -> IngestMeta {
    IngestMeta {
        batch_id: Some(batch.to_owned()),
        agent: Some("pod-1".into()),
        team: "payments".into(),
        rules_version: Some("v1".into()),
        redactions: Some(r#"{"email":2}"#.into()),
        payload_sha256: format!("sha-{batch}"),
        received_ns,
    }
}

pub(super) fn push(file: &str, lines: &[(i64, &str)]) -> PushRequest<'static> {
    PushRequest {
        streams: vec![PushStream {
            stream: [("file".to_owned(), file.to_owned())].into(),
            values: lines.iter().map(|(t, l)| Entry::new(*t, *l)).collect(),
        }],
    }
}

fn ledger(batch: &str, records: u64) -> LedgerEntry {
    LedgerEntry {
        batch_id: batch.to_owned(),
        sent_ns: 10,
        destination: "http://agg".into(),
        records,
        payload_sha256: format!("sha-{batch}"),
        outcome: Outcome::Acked,
        region: String::new(),
        jurisdiction: String::new(),
        path: String::new(),
        start_off: 0,
        end_off: 0,
        raw_bytes: 0,
        compressed_bytes: 0,
        rules_version: String::new(),
        redactions: Default::default(),
        reason: String::new(),
    }
}

/// Three small batches of one stream, and a store ready to audit.
fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = crate::store::testing::open_store(dir.path());
    let day = 20_000 * NS_PER_DAY;
    for (i, b) in ["b1", "b2", "b3"].iter().enumerate() {
        let t = day + i as i64 * 10;
        let l1 = format!("{b} first mail x{i}@example.no");
        let l2 = format!("{b} second ORD-{i}");
        store
            .ingest(
                &meta(b, 1 + i as i64),
                &push("/a.log", &[(t + 1, &l1), (t, &l2)]),
            )
            .unwrap();
    }
    (dir, store)
}

/// Grafana's token reading payments' `/a.log`, 5 lines, at `at_ns`.
pub(super) fn grafana_read(at_ns: i64) -> crate::store::AccessRecord {
    crate::store::AccessRecord {
        at_ns,
        token: "grafana".into(),
        team: Some("payments".into()),
        role: "read".into(),
        endpoint: "query_range".into(),
        query: Some(r#"{file="/a.log"}"#.into()),
        start_ns: Some(0),
        end_ns: Some(9),
        lines: 5,
        status: 200,
    }
}

/// Erases what `q` names over all time, as operator `dpo` at time 99.
pub(super) fn erase_as_dpo(
    store: &Store,
    q: &str,
) -> Result<crate::store::EraseReport, crate::store::StoreError> {
    store.erase(
        &Erasure {
            query: crate::logql::parse(q).unwrap(),
            query_text: q.into(),
            start_ns: 0,
            end_ns: i64::MAX,
            team: None,
            operator: "dpo".into(),
            dry_run: false,
        },
        99,
    )
}

/// The store read-only, as the audit opens it (either backend).
fn ro(store: &Store) -> Evidence {
    store.evidence().unwrap()
}

/// Whether the tests run on PostgreSQL (`FJORD_TEST_BACKEND`): the ones that damage the
/// SQLite file directly say so and stop; `the_audit_reads_both_backends_alike` damages both.
fn on_postgres() -> bool {
    std::env::var("FJORD_TEST_BACKEND").as_deref() == Ok("postgres")
}

#[test]
fn verify_is_clean_across_compaction_and_erasure() {
    let (_dir, store) = store();
    let rows = [ledger("b1", 2), ledger("b2", 2), ledger("b3", 2)];
    let r = verify(&ro(&store), ALL, Some((Path::new("l"), &rows)), &[]).unwrap();
    assert!(r.ok, "{r:#?}");
    assert_eq!((r.receipts_checked, r.stored_lines_checked), (3, 6));

    // The compactor merges the three chunks into one; every line keeps its batch.
    let c = store.compact(Duration::ZERO, i64::MAX).unwrap();
    assert_eq!((c.chunks_in, c.chunks_out), (3, 1));
    let r = verify(&ro(&store), ALL, Some((Path::new("l"), &rows)), &[]).unwrap();
    assert!(r.ok, "{r:#?}");

    // An erasure is reported with who and when, not as tampering.
    let e = erase_as_dpo(&store, r#"{file="/a.log"} |= "b2 second""#).unwrap();
    assert_eq!(e.lines, 1);
    let r = verify(&ro(&store), ALL, Some((Path::new("l"), &rows)), &[]).unwrap();
    assert!(r.ok, "{r:#?}");
    assert_eq!(r.removals.len(), 1);
    assert_eq!(
        (r.removals[0].batch.as_str(), r.removals[0].lines),
        ("b2", 1)
    );
    assert_eq!(r.removals[0].operator, "dpo");
    assert!(render_verify(&r).contains("batch b2: erased 1 lines by dpo"));
}

#[test]
fn retention_is_recorded_not_missing() {
    let (_dir, store) = store();
    let policy = RetentionPolicy {
        default_days: 1,
        teams: BTreeMap::new(),
    };
    let rep = store.apply_retention(&policy, 20_010 * NS_PER_DAY).unwrap();
    assert_eq!(rep.teams[0].3, 6);
    let r = verify(&ro(&store), ALL, None, &[]).unwrap();
    assert!(r.ok, "{r:#?}");
    assert_eq!(r.removals.len(), 3);
    assert!(r
        .removals
        .iter()
        .all(|m| m.kind == "retention" && m.lines == 2));
}

#[test]
fn verify_finds_altered_missing_extra_and_unreceipted() {
    if on_postgres() {
        return; // the damage is done to the SQLite file; see the_audit_reads_both_backends_alike
    }
    let (dir, store) = store();
    let rw = rusqlite::Connection::open(dir.path().join(DB_FILE)).unwrap();
    // Rewrite b2's chunk with a changed line (a valid chunk: only the digest can tell).
    let data: Vec<u8> = rw
        .query_row("SELECT data FROM chunks WHERE seq = 2", [], |r| r.get(0))
        .unwrap();
    let mut entries = Vec::new();
    chunk::decode_each(&data, 2, |r| {
        entries.push((r.seq, r.ts, r.line.replace("ORD-1", "ORD-9")))
    })
    .unwrap();
    let c = chunk::Encoder::new(1)
        .unwrap()
        .encode_tagged(
            entries
                .iter()
                .map(|(s, t, l)| (*s, *t, l.as_str(), chunk::Meta::NONE)),
        )
        .unwrap();
    rw.execute(
        "UPDATE chunks SET data = ?1 WHERE seq = 2",
        rusqlite::params![c.data],
    )
    .unwrap();
    // Corrupt b3's chunk outright.
    rw.execute("UPDATE chunks SET data = x'00' WHERE seq = 3", [])
        .unwrap();
    // Delete b1's receipt.
    rw.execute("DELETE FROM receipts WHERE id = 1", []).unwrap();
    drop(rw);
    let rows = [
        ledger("b1", 2),
        ledger("b2", 2),
        LedgerEntry {
            payload_sha256: "other".into(),
            ..ledger("b3", 3)
        },
    ];
    // b1 is gone; b3 is not in this ledger, and must come out as extra.
    let r = verify(&ro(&store), ALL, Some((Path::new("l"), &rows[..2])), &[]).unwrap();
    assert!(!r.ok);
    assert_eq!(r.missing.len(), 1);
    assert_eq!(r.missing[0].batch_id, "b1");
    assert_eq!(r.unreceipted, vec![Unreceipted { seq: 1, lines: 2 }]);
    assert_eq!(r.corrupt_chunks.len(), 1);
    assert_eq!(r.extra.len(), 1);
    assert_eq!(r.extra[0].batch_id.as_deref(), Some("b3"));
    let altered: Vec<(&str, &str)> = r
        .altered
        .iter()
        .map(|a| (a.batch.as_str(), a.what.as_str()))
        .collect();
    assert_eq!(altered, [("b2", "stored lines"), ("b3", "stored lines")]);
    assert!(r.altered[0].found.contains("different content"));
    // Ledger disagreements with the receipt.
    let r = verify(&ro(&store), ALL, Some((Path::new("l"), &rows[2..])), &[]).unwrap();
    let what: Vec<&str> = r.altered.iter().map(|a| a.what.as_str()).collect();
    assert!(
        what.contains(&"records") && what.contains(&"payload_sha256"),
        "{what:?}"
    );
}

#[test]
fn scan_counts_per_rule_and_masks() {
    let (_dir, store) = store();
    let set = fjord_rules::load_rule_set(None).unwrap();
    let red = Redactor::new(&set, Some(b"0123456789abcdef0123")).unwrap();
    let r = scan(&ro(&store), &red, None, ALL, 10).unwrap();
    assert_eq!((r.lines_scanned, r.lines_matching), (6, 3));
    assert_eq!(
        r.rules,
        vec![RuleMatches {
            rule: "email".into(),
            lines: 3,
            matches: 3
        }]
    );
    for e in &r.examples {
        assert!(e.masked.contains("[MATCH:email]"), "{}", e.masked);
        assert!(!e.masked.contains("@example.no"), "{}", e.masked);
    }
    let text = render_scan(&r);
    assert!(!text.contains("@example"), "{text}");
    // A line filter narrows it.
    let q = crate::logql::parse(r#"{file="/a.log"} |= "b1""#).unwrap();
    let r = scan(&ro(&store), &red, Some(("q", &q)), ALL, 0).unwrap();
    assert_eq!((r.lines_scanned, r.lines_matching), (2, 1));
    assert!(r.examples.is_empty());
}

fn default_redactor() -> Redactor {
    let set = fjord_rules::load_rule_set(None).unwrap();
    Redactor::new(&set, Some(b"0123456789abcdef0123")).unwrap()
}

#[test]
fn scan_covers_only_the_time_range() {
    let (_dir, store) = store();
    let red = default_redactor();
    let day = 20_000 * NS_PER_DAY;
    // Stored: b1 at day+0 (second) and +1 (mail), b2 at +10 and +11, b3 at +20 and +21. The
    // range takes b2's mail line and b3's first line only, cutting into both chunks.
    let range = Range {
        from_ns: day + 11,
        to_ns: day + 20,
    };
    let check = |r: &ScanReport| {
        assert_eq!((r.lines_scanned, r.lines_matching), (2, 1), "{r:#?}");
        assert_eq!(r.rules[0].lines, 1);
        assert_eq!(r.examples.len(), 1);
        let e = &r.examples[0];
        assert_eq!(e.rules, ["email"]);
        assert_eq!(e.ts_ns, day + 11);
        assert_eq!(e.time, format_ns(day + 11));
        assert_eq!(e.stream.get("file").map(String::as_str), Some("/a.log"));
        assert_eq!(e.stream.get("team").map(String::as_str), Some("payments"));
        assert_eq!(e.masked, "b2 first mail [MATCH:email]");
        let text = render_scan(r);
        assert!(
            text.contains(&format!("{} ", format_ns(day + 11)))
                && text.contains(r#""file":"/a.log""#)
                && text.contains("[email] b2 first mail [MATCH:email]"),
            "{text}"
        );
        assert!(!text.contains("example.no"), "{text}");
    };
    check(&scan(&ro(&store), &red, None, range, 10).unwrap());
    // The same once the compactor has merged every line into one chunk.
    store.compact(Duration::ZERO, i64::MAX).unwrap();
    check(&scan(&ro(&store), &red, None, range, 10).unwrap());
    // A range with nothing in it scans nothing.
    let before = Range {
        from_ns: 0,
        to_ns: day - 1,
    };
    let r = scan(&ro(&store), &red, None, before, 10).unwrap();
    assert_eq!((r.lines_scanned, r.lines_matching), (0, 0));
}

#[test]
fn scan_reports_chunks_it_could_not_read() {
    if on_postgres() {
        return; // the damage is done to the SQLite file; see the_audit_reads_both_backends_alike
    }
    let (dir, store) = store();
    let rw = rusqlite::Connection::open(dir.path().join(DB_FILE)).unwrap();
    let bad: i64 = rw
        .query_row("SELECT id FROM chunks WHERE seq = 3", [], |r| r.get(0))
        .unwrap();
    rw.execute("UPDATE chunks SET data = x'00' WHERE id = ?1", [bad])
        .unwrap();
    drop(rw);
    let r = scan(&ro(&store), &default_redactor(), None, ALL, 10).unwrap();
    assert!(!r.complete());
    assert_eq!(r.corrupt_chunks, [bad]);
    assert_eq!(r.corrupt_chunk_count, 1);
    // The readable chunks are still scanned, and their matches reported.
    assert_eq!((r.lines_scanned, r.lines_matching), (4, 2));
    let text = render_scan(&r);
    assert!(
        text.contains(&format!(
            "INCOMPLETE: 1 chunks did not decode and were not scanned (see `audit verify`): chunk ids {bad}\n"
        )),
        "{text}"
    );
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["corrupt_chunks"], serde_json::json!([bad]));
    assert_eq!(json["corrupt_chunk_count"], 1);
}

#[test]
fn mask_never_returns_matched_text() {
    use fjord_rules::ExplainHit;
    let hit = |rule: &str, range: std::ops::Range<usize>, field: Option<&str>| ExplainHit {
        rule: rule.into(),
        action: "mask".into(),
        field: field.map(Into::into),
        range,
    };
    let line = "a secret1 b secret2 ü";
    let e = Explanation {
        hits: vec![hit("y", 12..19, None), hit("x", 2..9, None)],
        output: None,
    };
    assert_eq!(mask(line, &e), "a [MATCH:x] b [MATCH:y] ü");
    // Overlapping spans mask their union.
    let e = Explanation {
        hits: vec![hit("x", 2..9, None), hit("z", 4..11, None)],
        output: None,
    };
    assert_eq!(mask(line, &e), "a [MATCH:x][MATCH:z] secret2 ü");
    // Not on a character boundary: the whole line is withheld.
    let e = Explanation {
        hits: vec![hit("x", 21..22, None)],
        output: None,
    };
    assert!(mask(line, &e).starts_with("[line withheld"));
    // JSON: only the paths.
    let e = Explanation {
        hits: vec![hit("email", 0..5, Some("user.mail"))],
        output: None,
    };
    assert_eq!(
        mask(r#"{"user":{"mail":"a@b.no"}}"#, &e),
        "[JSON line withheld; matches at: user.mail (email)]"
    );
}

#[test]
fn open_refuses_a_missing_store() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        open(dir.path()),
        Err(AuditError::Store(EvidenceError::NoStore(_)))
    ));
}

#[test]
fn ledger_errors_name_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("l.jsonl");
    std::fs::write(
        &p,
        "{\"batch_id\":\"a\",\"sent_ns\":1,\"records\":1,\"payload_sha256\":\"x\",\"outcome\":\"acked\",\"new_field\":1}\n\n{\"batch_id\":\"b\"}\n",
    )
    .unwrap();
    let e = read_ledger(&p).unwrap_err().to_string();
    assert!(e.contains("l.jsonl line 3"), "{e}");
    std::fs::write(
        &p,
        "{\"batch_id\":\"a\",\"sent_ns\":1,\"records\":1,\"payload_sha256\":\"x\",\"outcome\":\"sent\"}\n",
    )
    .unwrap();
    let e = read_ledger(&p).unwrap_err().to_string();
    assert!(e.contains("l.jsonl line 1") && e.contains("sent"), "{e}");
    // Bytes the agent lost before reading them: a row the verify counts, expecting no receipt.
    std::fs::write(
        &p,
        "{\"batch_id\":\"lost:1:2:3:0\",\"sent_ns\":1,\"records\":0,\"payload_sha256\":\"\",\"outcome\":\"lost\",\"reason\":\"truncated\"}\n",
    )
    .unwrap();
    assert_eq!(read_ledger(&p).unwrap()[0].outcome, Outcome::Lost);
}

/// One batch whose entries carry structured metadata (an email in one value), and its store.
fn metadata_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = crate::store::testing::open_store(dir.path());
    let t = 20_000 * NS_PER_DAY;
    let req = PushRequest {
        streams: vec![PushStream {
            stream: [("file".to_owned(), "/m.log".to_owned())].into(),
            values: vec![
                Entry::new(t, "charge ok")
                    .with_metadata([("trace_id", "t1"), ("user", "alice@example.no")]),
                Entry::new(t + 1, "charge failed").with_metadata([("trace_id", "t2")]),
                Entry::new(t + 2, "plain line"),
            ],
        }],
    };
    store.ingest(&meta("m1", 1), &req).unwrap();
    (dir, store)
}

/// Structured metadata pairs.
type Pairs = Vec<(String, String)>;

/// The entries of `q` as (line, metadata, labels), in time order.
fn entries_of(store: &Store, q: &str) -> Vec<(String, Pairs, Labels)> {
    let res = store
        .query_range(&crate::store::RangeQuery {
            query: crate::logql::parse(q).unwrap(),
            start_ns: 0,
            end_ns: i64::MAX,
            limit: 100,
            direction: crate::store::Direction::Forward,
            team: None,
            max_bytes: usize::MAX,
            deadline: crate::store::Deadline::NONE,
        })
        .unwrap();
    let mut out: Vec<(i64, String, Pairs, Labels)> = res
        .iter()
        .flat_map(|s| {
            s.entries.iter().map(|e| {
                (
                    e.ts_ns,
                    e.line().to_owned(),
                    e.metadata.clone(),
                    s.labels.clone(),
                )
            })
        })
        .collect();
    out.sort_by_key(|e| e.0);
    out.into_iter().map(|(_, l, m, s)| (l, m, s)).collect()
}

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn structured_metadata_is_stored_filtered_compacted_erased_and_verified() {
    let (dir, store) = metadata_store();
    // Stored per entry, in the order it came.
    let got = entries_of(&store, r#"{file="/m.log"}"#);
    let want_meta = [
        pairs(&[("trace_id", "t1"), ("user", "alice@example.no")]),
        pairs(&[("trace_id", "t2")]),
        vec![],
    ];
    assert_eq!(
        got.iter().map(|e| e.1.clone()).collect::<Vec<_>>(),
        want_meta
    );
    // A label filter sees it; the entry's labels then hold it.
    let got = entries_of(&store, r#"{file="/m.log"} | trace_id="t2""#);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0, "charge failed");
    assert_eq!(got[0].2.get("trace_id").map(String::as_str), Some("t2"));
    assert!(entries_of(&store, r#"{file="/m.log"} | trace_id="t9""#).is_empty());
    // The metric path's scan hands the evaluator the same labels.
    let mut seen = Vec::new();
    store
        .scan(
            &crate::logql::parse(r#"{file="/m.log"}"#).unwrap(),
            None,
            0,
            i64::MAX,
            &mut |_, meta, _, _| {
                seen.push(
                    meta.iter()
                        .find(|m| m.0 == "trace_id")
                        .map(|m| m.1.to_owned()),
                );
                Ok(())
            },
        )
        .unwrap();
    seen.sort();
    assert_eq!(seen, [None, Some("t1".into()), Some("t2".into())]);
    // The receipt's digest covers metadata: verify is clean, and stays clean across
    // compaction.
    let r = verify(&ro(&store), ALL, None, &[]).unwrap();
    assert!(r.ok, "{r:#?}");
    let t = 20_000 * NS_PER_DAY;
    store
        .ingest(&meta("m2", 2), &push("/m.log", &[(t + 10, "late")]))
        .unwrap();
    let c = store.compact(Duration::ZERO, i64::MAX).unwrap();
    assert_eq!((c.chunks_in, c.chunks_out), (2, 1), "{c:?}");
    assert_eq!(
        entries_of(&store, r#"{file="/m.log"} | trace_id="t1""#).len(),
        1
    );
    let r = verify(&ro(&store), ALL, None, &[]).unwrap();
    assert!(r.ok, "{r:#?}");

    // The PII re-scan reads metadata values too, and masks them.
    let r = scan(&ro(&store), &default_redactor(), None, ALL, 10).unwrap();
    assert_eq!((r.lines_scanned, r.lines_matching), (4, 1));
    let ex = &r.examples[0];
    assert_eq!(ex.masked, "charge ok");
    assert_eq!(
        ex.masked_metadata.get("user").map(String::as_str),
        Some("[MATCH:email]")
    );
    assert!(!render_scan(&r).contains("alice"));

    // Erasure by metadata: exactly the entries the label filter names, metadata and all;
    // the others keep theirs. Verify reports it as an erasure, not tampering.
    let erase = |q: &str| erase_as_dpo(&store, q);
    for refused in [
        r#"{file="/m.log"} | trace_id!="t1""#,
        r#"{file="/m.log"} | json | trace_id="t1""#,
    ] {
        assert!(erase(refused).is_err(), "{refused}");
    }
    assert_eq!(
        erase(r#"{file="/m.log"} | user=~".+@example.no""#)
            .unwrap()
            .lines,
        1
    );
    let got = entries_of(&store, r#"{file="/m.log"}"#);
    assert_eq!(
        got.iter().map(|e| e.0.as_str()).collect::<Vec<_>>(),
        ["charge failed", "plain line", "late"]
    );
    assert_eq!(got[0].1, pairs(&[("trace_id", "t2")]));
    let r = verify(&ro(&store), ALL, None, &[]).unwrap();
    assert!(r.ok, "{r:#?}");
    assert_eq!((r.removals.len(), r.removals[0].lines), (1, 1));
    if on_postgres() {
        return; // the damage below is done to the SQLite file
    }

    // Changing only an entry's metadata in its chunk is caught.
    let rw = rusqlite::Connection::open(dir.path().join(DB_FILE)).unwrap();
    let (id, data): (i64, Vec<u8>) = rw
        .query_row("SELECT id, data FROM chunks", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    let mut entries = Vec::new();
    chunk::decode_each(&data, 0, |r| {
        let mut m = r.meta.to_pairs();
        for (_, v) in m.iter_mut() {
            *v = v.replace("t2", "t3");
        }
        entries.push((r.seq, r.ts, r.line.to_owned(), m));
    })
    .unwrap();
    let c = chunk::Encoder::stored()
        .unwrap()
        .encode_tagged(
            entries
                .iter()
                .map(|(s, t, l, m)| (*s, *t, l.as_str(), m.as_slice())),
        )
        .unwrap();
    rw.execute(
        "UPDATE chunks SET data = ?1 WHERE id = ?2",
        rusqlite::params![c.data, id],
    )
    .unwrap();
    drop(rw);
    let r = verify(&ro(&store), ALL, None, &[]).unwrap();
    assert!(!r.ok);
    assert_eq!(r.altered.len(), 1, "{r:#?}");
    assert_eq!(r.altered[0].batch, "m1");
}

/// The audit reads either backend alike: verify stays clean across compaction and erasure,
/// the PII scan and the access log read the same rows, and a corrupt chunk and a deleted
/// receipt are caught.
#[test]
fn the_audit_reads_both_backends_alike() {
    crate::store::testing::each_backend(|b| {
        let store = (b.open)();
        let day = 20_000 * NS_PER_DAY;
        for (i, id) in ["b1", "b2", "b3"].iter().enumerate() {
            let t = day + i as i64 * 10;
            let l1 = format!("{id} first mail x{i}@example.no");
            let l2 = format!("{id} second ORD-{i}");
            store
                .ingest(
                    &meta(id, 1 + i as i64),
                    &push("/a.log", &[(t + 1, &l1), (t, &l2)]),
                )
                .unwrap();
        }
        let c = store.compact(Duration::ZERO, i64::MAX).unwrap();
        assert_eq!((c.chunks_in, c.chunks_out), (3, 1), "{}", b.name);
        assert_eq!(
            erase_as_dpo(&store, r#"{file="/a.log"} |= "b2 second""#)
                .unwrap()
                .lines,
            1
        );
        store.record_access(&[grafana_read(5)]).unwrap();
        let ev = (b.evidence)();
        let r = verify(&ev, ALL, None, &[]).unwrap();
        assert!(r.ok, "{}: {r:#?}", b.name);
        assert_eq!((r.receipts_checked, r.stored_lines_checked), (3, 5));
        assert_eq!(r.removals.len(), 1);
        let s = scan(&ev, &default_redactor(), None, ALL, 10).unwrap();
        assert_eq!((s.lines_scanned, s.lines_matching), (5, 3));
        let a = access(&ev, ALL, None).unwrap();
        assert_eq!(a.requests.len(), 1);
        assert_eq!(a.erasures.len(), 1);
        assert_eq!(receipts(&ev, ALL).unwrap().receipts.len(), 3);
        drop(ev);
        // Damage: the merged chunk made unreadable, one receipt deleted.
        let corrupt = if b.name == "postgres" {
            r"UPDATE chunks SET data = '\x00'::BYTEA"
        } else {
            "UPDATE chunks SET data = x'00'"
        };
        (b.sql)(corrupt);
        (b.sql)("DELETE FROM receipts WHERE batch_id = 'b1'");
        let r = verify(&(b.evidence)(), ALL, None, &[]).unwrap();
        assert!(!r.ok);
        assert_eq!(r.corrupt_chunks.len(), 1, "{}: {r:#?}", b.name);
    });
}

/// Every test of this module again with the store on PostgreSQL (the test binary re-run
/// with `FJORD_TEST_BACKEND=postgres`); those that damage the SQLite file directly stop
/// early there.
#[test]
fn every_audit_test_passes_on_postgres_too() {
    let stdout = fjord_e2e::postgres::rerun_tests_on_postgres(&[
        "audit::tests::",
        "--skip",
        "every_audit_test_passes_on_postgres_too",
    ]);
    assert!(
        stdout.contains("test audit::tests::verify_is_clean_across_compaction_and_erasure ... ok"),
        "{stdout}"
    );
}
