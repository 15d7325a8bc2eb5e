//! Store tests against a real SQLite file in a temp dir.

use super::*;
use crate::logql;
use fjord_wire::PushStream;

fn meta(batch: Option<&str>, team: &str) -> IngestMeta {
    IngestMeta {
        batch_id: batch.map(str::to_owned),
        agent: Some("pod-1".into()),
        team: team.into(),
        rules_version: Some("abc".into()),
        redactions: Some(r#"{"email":1}"#.into()),
        payload_sha256: "00".into(),
        received_ns: 1,
    }
}

fn push(file: &str, lines: &[(i64, &str)]) -> PushRequest {
    PushRequest {
        streams: vec![PushStream {
            stream: [
                ("file".to_owned(), file.to_owned()),
                ("team".to_owned(), "spoofed".to_owned()),
            ]
            .into(),
            values: lines.iter().map(|(t, l)| Entry::new(*t, *l)).collect(),
        }],
    }
}

fn range(q: &str, limit: usize, direction: Direction, team: Option<&str>) -> RangeQuery {
    RangeQuery {
        query: logql::parse(q).unwrap(),
        start_ns: 0,
        end_ns: i64::MAX,
        limit,
        direction,
        team: team.map(str::to_owned),
    }
}

fn lines(res: &[StreamResult]) -> Vec<(i64, String)> {
    let mut v: Vec<(i64, String)> = res
        .iter()
        .flat_map(|s| s.entries.iter().map(|e| (e.ts_ns, e.line.clone())))
        .collect();
    v.sort();
    v
}

#[test]
fn ingest_query_duplicate_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let req = push(
        "/a.log",
        &[
            (10, "payment declined"),
            (20, "payment ok"),
            (30, "declined again"),
        ],
    );
    assert_eq!(
        store.ingest(&meta(Some("b1"), "payments"), &req).unwrap(),
        IngestOutcome::Stored { records: 3 }
    );
    assert_eq!(
        store.ingest(&meta(Some("b1"), "payments"), &req).unwrap(),
        IngestOutcome::Duplicate
    );

    let res = store
        .query_range(&range(
            r#"{team="payments"} |= "declined""#,
            100,
            Direction::Forward,
            None,
        ))
        .unwrap();
    assert_eq!(res.len(), 1);
    // team is stamped by the server, never the client's label.
    assert_eq!(
        res[0].labels.get("team").map(String::as_str),
        Some("payments")
    );
    assert_eq!(
        lines(&res),
        vec![
            (10, "payment declined".into()),
            (30, "declined again".into())
        ]
    );
    assert!(store
        .query_range(&range(r#"{team="spoofed"}"#, 100, Direction::Forward, None))
        .unwrap()
        .is_empty());
    drop(store);

    let store = Store::open(dir.path()).unwrap();
    let stats = store.stats(None).unwrap();
    assert_eq!(stats.len(), 1);
    assert_eq!(stats[0].records, 3);
    assert_eq!(stats[0].batches, 1);
    assert_eq!(
        store.ingest(&meta(Some("b1"), "payments"), &req).unwrap(),
        IngestOutcome::Duplicate
    );
}

#[test]
fn limit_and_direction_pick_the_right_end() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    for b in 0..10i64 {
        let entries: Vec<(i64, String)> = (0..10)
            .map(|i| (b * 10 + i, format!("line {}", b * 10 + i)))
            .collect();
        let refs: Vec<(i64, &str)> = entries.iter().map(|(t, l)| (*t, l.as_str())).collect();
        let file = if b % 2 == 0 { "/even.log" } else { "/odd.log" };
        store
            .ingest(
                &meta(Some(&format!("b{b}")), "payments"),
                &push(file, &refs),
            )
            .unwrap();
    }
    let fwd = store
        .query_range(&range(r#"{team="payments"}"#, 15, Direction::Forward, None))
        .unwrap();
    let got: Vec<i64> = lines(&fwd).iter().map(|l| l.0).collect();
    assert_eq!(got, (0..15).collect::<Vec<_>>());
    let back = store
        .query_range(&range(
            r#"{team="payments"}"#,
            15,
            Direction::Backward,
            None,
        ))
        .unwrap();
    let got: Vec<i64> = lines(&back).iter().map(|l| l.0).collect();
    assert_eq!(got, (85..100).collect::<Vec<_>>());
    // Within a stream, backward results are newest first.
    for s in &back {
        assert!(s.entries.windows(2).all(|w| w[0].ts_ns >= w[1].ts_ns));
    }
    let mut q = range(
        r#"{team="payments", file="/odd.log"}"#,
        1000,
        Direction::Forward,
        None,
    );
    q.start_ns = 15;
    q.end_ns = 35;
    let got: Vec<i64> = lines(&store.query_range(&q).unwrap())
        .iter()
        .map(|l| l.0)
        .collect();
    assert_eq!(
        got,
        (15..20)
            .chain(30..36)
            .filter(|t| *t <= 35)
            .collect::<Vec<_>>()
    );
}

#[test]
fn team_scope_hides_other_teams() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store
        .ingest(&meta(None, "payments"), &push("/a.log", &[(1, "p")]))
        .unwrap();
    store
        .ingest(&meta(None, "search"), &push("/a.log", &[(2, "s")]))
        .unwrap();
    let q = range(r#"{file="/a.log"}"#, 10, Direction::Forward, Some("search"));
    assert_eq!(
        lines(&store.query_range(&q).unwrap()),
        vec![(2, "s".into())]
    );
    let q = range(r#"{file="/a.log"}"#, 10, Direction::Forward, None);
    assert_eq!(lines(&store.query_range(&q).unwrap()).len(), 2);
    // Batches without an id are all stored.
    store
        .ingest(&meta(None, "payments"), &push("/a.log", &[(1, "p")]))
        .unwrap();
    assert_eq!(store.stats(Some("payments")).unwrap()[0].batches, 2);
}

#[test]
fn newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(Store::open(dir.path()).unwrap());
    let conn = Connection::open(dir.path().join(DB_FILE)).unwrap();
    conn.pragma_update(None, "user_version", 999).unwrap();
    drop(conn);
    let err = Store::open(dir.path()).err().unwrap().to_string();
    assert!(err.contains("newer than this binary"), "{err}");
}

#[test]
fn split_by_bytes_keeps_every_entry() {
    let entries: Vec<Entry> = (0..10).map(|i| Entry::new(i, "x".repeat(40))).collect();
    let parts: Vec<usize> = split_by_bytes(&entries, 100).map(<[Entry]>::len).collect();
    assert_eq!(parts, vec![2, 2, 2, 2, 2]);
    let big = vec![Entry::new(0, "x".repeat(500))];
    assert_eq!(split_by_bytes(&big, 100).count(), 1);
}
