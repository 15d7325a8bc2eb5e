//! Store tests against real databases: a SQLite file in a temp dir and, for the tests of
//! what both backends do ([`each_backend`]), a PostgreSQL server of the test's own started by
//! the test harness (Debian's binaries; see tests/src/postgres.rs).

use std::time::Duration;

use super::*;
use crate::logql;
use fjord_wire::PushStream;
use rusqlite::Connection;

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

fn push(file: &str, lines: &[(i64, &str)]) -> PushRequest<'static> {
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

use super::testing::{each_backend, Backend};

fn range(q: &str, limit: usize, direction: Direction, team: Option<&str>) -> RangeQuery {
    RangeQuery {
        query: logql::parse(q).unwrap(),
        start_ns: 0,
        end_ns: i64::MAX,
        limit,
        direction,
        team: team.map(str::to_owned),
        max_bytes: usize::MAX,
        deadline: Deadline::NONE,
    }
}

fn lines(res: &[StreamResult]) -> Vec<(i64, String)> {
    let mut v: Vec<(i64, String)> = res
        .iter()
        .flat_map(|s| s.entries.iter().map(|e| (e.ts_ns, e.line().to_owned())))
        .collect();
    v.sort();
    v
}

#[test]
fn ingest_query_duplicate_and_reopen() {
    each_backend(ingest_query_duplicate_and_reopen_on);
}

fn ingest_query_duplicate_and_reopen_on(b: &Backend) {
    let store = (b.open)();
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

    let store = (b.open)();
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
    each_backend(|b| limit_and_direction_on(&(b.open)()));
}

fn limit_and_direction_on(store: &Store) {
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
    each_backend(|b| team_scope_on(&(b.open)()));
}

fn team_scope_on(store: &Store) {
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

/// A read past its deadline stops with `DeadlineExceeded`: a range query, and a scan whose
/// line filter drops every line (so no line reaches the sink that could notice the time).
#[test]
fn reads_past_their_deadline_stop() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let req = push("/a.log", &[(10, "payment declined"), (20, "payment ok")]);
    store.ingest(&meta(None, "payments"), &req).unwrap();
    let passed = Deadline::after(Duration::ZERO);
    for (q, found) in [
        (r#"{team="payments"}"#, 2),
        (r#"{team="payments"} |~ "no.such""#, 0),
    ] {
        let mut rq = range(q, 100, Direction::Forward, None);
        assert_eq!(lines(&store.query_range(&rq).unwrap()).len(), found);
        rq.deadline = passed;
        let err = store.query_range(&rq).unwrap_err();
        assert!(
            matches!(err, StoreError::DeadlineExceeded { .. }),
            "{q}: {err}"
        );
        assert!(err.to_string().contains("query_timeout"), "{err}");

        let mut sunk = 0;
        let scan = Scan {
            query: &rq.query,
            team: None,
            start_ns: 0,
            end_ns: i64::MAX,
            part: (0, 1),
            deadline: passed,
        };
        let err = store
            .scan_part(&scan, &mut |_, _, _, _| {
                sunk += 1;
                Ok(())
            })
            .unwrap_err();
        assert!(
            matches!(err, StoreError::DeadlineExceeded { .. }),
            "{q}: {err}"
        );
        assert_eq!(sunk, 0);
    }
}

#[test]
fn split_by_bytes_keeps_every_entry() {
    let entries: Vec<Entry> = (0..10).map(|i| Entry::new(i, "x".repeat(40))).collect();
    let parts: Vec<usize> = split_by_bytes(&entries, 100).map(<[Entry]>::len).collect();
    assert_eq!(parts, vec![2, 2, 2, 2, 2]);
    let big = vec![Entry::new(0, "x".repeat(500))];
    assert_eq!(split_by_bytes(&big, 100).count(), 1);
}

fn now() -> i64 {
    fjord_wire::clock::now_ns()
}

fn all_lines(store: &Store, q: &str) -> Vec<(i64, String)> {
    lines(
        &store
            .query_range(&range(q, 100_000, Direction::Forward, None))
            .unwrap(),
    )
}

fn chunk_count(store: &Store) -> i64 {
    let conn = Connection::open(store.path()).unwrap();
    conn.query_row("SELECT COUNT(*) FROM chunks", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn new_database_uses_incremental_auto_vacuum() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let conn = Connection::open(store.path()).unwrap();
    let mode: i64 = conn
        .query_row("PRAGMA auto_vacuum", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, 2);
    assert_eq!(store.integrity_check().unwrap(), "ok");
}

#[test]
fn new_databases_get_large_pages_and_old_ones_keep_theirs() {
    let page_size = |path: &std::path::Path| -> i64 {
        let conn = Connection::open(path).unwrap();
        conn.query_row("PRAGMA page_size", [], |r| r.get(0))
            .unwrap()
    };
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(
        page_size(store.path()),
        i64::from(sqlite::schema::NEW_DB_PAGE_SIZE_BYTES)
    );
    store
        .ingest(&meta(Some("b"), "payments"), &push("/a.log", &[(1, "x")]))
        .unwrap();
    assert_eq!(store.integrity_check().unwrap(), "ok");

    // A database created with 4 KiB pages (by an older binary) keeps them.
    let old = tempfile::tempdir().unwrap();
    {
        let mut conn = Connection::open(old.path().join(DB_FILE)).unwrap();
        conn.pragma_update(None, "page_size", 4096).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        sqlite::schema::migrate(&mut conn).unwrap();
    }
    let store = Store::open(old.path()).unwrap();
    assert_eq!(page_size(store.path()), 4096);
    store
        .ingest(&meta(Some("b"), "payments"), &push("/a.log", &[(1, "x")]))
        .unwrap();
    assert_eq!(store.integrity_check().unwrap(), "ok");
}

#[test]
fn chunks_never_span_two_days() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let midnight = 20_000 * NS_PER_DAY;
    store
        .ingest(
            &meta(Some("b"), "payments"),
            &push(
                "/a.log",
                &[
                    (midnight - 1, "before"),
                    (midnight, "after"),
                    (midnight - 2, "before too"),
                ],
            ),
        )
        .unwrap();
    let conn = Connection::open(store.path()).unwrap();
    let days: Vec<(i64, i64, i64)> = conn
        .prepare("SELECT day, min_ts, max_ts FROM chunks ORDER BY day")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        days,
        vec![
            (19_999, midnight - 2, midnight - 1),
            (20_000, midnight, midnight)
        ]
    );
    let d = store.stats_detail(None).unwrap();
    assert_eq!(d.days.len(), 2);
    assert_eq!(d.days[1].day, format_day(20_000));
    assert_eq!(d.streams.len(), 1);
    assert_eq!(d.streams[0].lines, 3);
}

#[test]
fn compactor_merges_small_chunks_without_losing_a_line() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let t0 = now() - 3_600_000_000_000;
    let mut want = Vec::new();
    for b in 0..50i64 {
        // Out of order across batches, to check that merged chunks are sorted.
        let ts = t0 + (49 - b) * 1000;
        let l = format!("batch {b} line");
        want.push((ts, l.clone()));
        let mut m = meta(Some(&format!("b{b}")), "payments");
        m.received_ns = t0;
        store.ingest(&m, &push("/a.log", &[(ts, &l)])).unwrap();
    }
    // One fresh batch stays out of compaction (a live tail may be just behind it).
    let mut m = meta(Some("fresh"), "payments");
    m.received_ns = now();
    store.ingest(&m, &push("/a.log", &[(t0, "fresh")])).unwrap();
    want.push((t0, "fresh".into()));
    want.sort();
    assert_eq!(chunk_count(&store), 51);
    let before_max_seq: i64 = Connection::open(store.path())
        .unwrap()
        .query_row(
            "SELECT MAX(seq) FROM chunks WHERE lines = 1 AND seq < (SELECT MAX(seq) FROM chunks)",
            [],
            |r| r.get(0),
        )
        .unwrap();

    let r = store.compact(Duration::from_secs(60), now()).unwrap();
    assert_eq!(
        r,
        CompactReport {
            groups: 1,
            chunks_in: 50,
            chunks_out: 1
        }
    );
    assert_eq!(chunk_count(&store), 2);
    assert_eq!(all_lines(&store, r#"{team="payments"}"#), want);
    // The merged chunk carries the newest seq of its parts and is sorted by time.
    let conn = Connection::open(store.path()).unwrap();
    let (seq, data): (i64, Vec<u8>) = conn
        .query_row("SELECT seq, data FROM chunks WHERE lines = 50", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!(seq, before_max_seq);
    let entries = chunk::decode(&data).unwrap();
    assert!(entries.windows(2).all(|w| w[0].ts_ns <= w[1].ts_ns));
    // Nothing left to do.
    assert_eq!(
        store.compact(Duration::from_secs(60), now()).unwrap(),
        CompactReport::default()
    );
    assert_eq!(store.integrity_check().unwrap(), "ok");
}

#[test]
fn retention_deletes_expired_and_reclaims_pages() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let t = now();
    let old = t - 40 * NS_PER_DAY;
    // Incompressible lines so that the chunks take real pages.
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut noise = || {
        (0..2000)
            .map(|_| {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                char::from(b'a' + (rng % 26) as u8)
            })
            .collect::<String>()
    };
    for team in ["payments", "search", "audit"] {
        for b in 0..20 {
            let lines: Vec<String> = (0..50).map(|_| noise()).collect();
            let refs: Vec<(i64, &str)> = lines.iter().map(|l| (old + b, l.as_str())).collect();
            store
                .ingest(
                    &meta(Some(&format!("{team}-{b}")), team),
                    &push("/a.log", &refs),
                )
                .unwrap();
        }
        store
            .ingest(
                &meta(Some(&format!("{team}-new")), team),
                &push("/a.log", &[(t, "recent")]),
            )
            .unwrap();
    }
    store.checkpoint().unwrap();
    let size_before = std::fs::metadata(store.path()).unwrap().len();
    let policy = crate::config::RetentionPolicy {
        default_days: 30,
        teams: [("search".to_owned(), 60), ("audit".to_owned(), 0)].into(),
    };
    let r = store.apply_retention(&policy, t).unwrap();
    assert_eq!(
        r.teams,
        vec![
            ("audit".to_owned(), 0, 0, 0),
            ("payments".to_owned(), 30, 20, 1000),
            ("search".to_owned(), 60, 0, 0),
        ]
    );
    assert!(
        r.reclaim.pages_after < r.reclaim.pages_before * 3 / 4,
        "{:?}",
        r.reclaim
    );
    let size_after = std::fs::metadata(store.path()).unwrap().len();
    assert!(
        size_after < size_before * 3 / 4,
        "{size_before} -> {size_after}"
    );
    assert_eq!(
        all_lines(&store, r#"{team="payments"}"#),
        vec![(t, "recent".into())]
    );
    assert_eq!(all_lines(&store, r#"{team="search"}"#).len(), 1001);
    assert_eq!(all_lines(&store, r#"{team="audit"}"#).len(), 1001);
    // Receipts are kept: they are the audit trail of what arrived.
    assert_eq!(store.stats(Some("payments")).unwrap()[0].batches, 21);
    assert_eq!(store.integrity_check().unwrap(), "ok");
}

#[test]
fn erase_rewrites_chunks_and_logs_the_act() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let t = now();
    store
        .ingest(
            &meta(Some("a"), "payments"),
            &push(
                "/a.log",
                &[
                    (t, "refund customer=4711"),
                    (t + 1, "ok customer=1"),
                    (t + 2, "customer=4711 again"),
                ],
            ),
        )
        .unwrap();
    store
        .ingest(
            &meta(Some("b"), "payments"),
            &push("/b.log", &[(t, "only customer=4711")]),
        )
        .unwrap();
    store
        .ingest(
            &meta(Some("c"), "search"),
            &push("/a.log", &[(t, "customer=4711 searched")]),
        )
        .unwrap();
    let q = r#"{team="payments"} |= "customer=4711""#;
    let e = Erasure {
        query: logql::parse(q).unwrap(),
        query_text: q.into(),
        start_ns: 0,
        end_ns: t + 10,
        team: None,
        operator: "dpo".into(),
        dry_run: false,
    };
    let r = store.erase(&e, t).unwrap();
    assert_eq!((r.lines, r.chunks), (3, 2));
    assert!(all_lines(&store, q).is_empty());
    assert_eq!(
        all_lines(&store, r#"{team="payments"}"#),
        vec![(t + 1, "ok customer=1".into())]
    );
    assert_eq!(all_lines(&store, r#"{team="search"}"#).len(), 1);
    let log = store.erasures().unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(
        (log[0].operator.as_str(), log[0].lines, log[0].chunks),
        ("dpo", 3, 2)
    );
    // The erased text is gone from the file, not just unlinked.
    drop(store);
    let bytes = std::fs::read(dir.path().join(DB_FILE)).unwrap();
    let wal = std::fs::read(dir.path().join(format!("{DB_FILE}-wal"))).unwrap_or_default();
    // zstd stores short inputs as raw literals, so the old chunks held these bytes verbatim;
    // secure_delete and the WAL truncation must have overwritten them. (The filter itself is
    // in the erasure log by design: it records what was erased.)
    for needle in [
        &b"refund customer=4711"[..],
        b"4711 again",
        b"only customer",
    ] {
        for hay in [&bytes, &wal] {
            assert!(
                !hay.windows(needle.len()).any(|w| w == needle),
                "erased text found on disk"
            );
        }
    }
    assert!(
        bytes.windows(12).any(|w| w == b"ok customer="),
        "the kept line is there"
    );
    let store = Store::open(dir.path()).unwrap();
    // An erasure without a line filter is refused.
    let mut e2 = e.clone();
    e2.query = logql::parse(r#"{team="payments"}"#).unwrap();
    assert!(matches!(store.erase(&e2, t), Err(StoreError::Refused(_))));
}

#[test]
fn tail_cursor_sees_every_later_chunk_once() {
    each_backend(|b| tail_cursor_on(&(b.open)()));
}

fn tail_cursor_on(store: &Store) {
    let t = now();
    store
        .ingest(
            &meta(Some("a"), "payments"),
            &push("/a.log", &[(t, "before")]),
        )
        .unwrap();
    let (backfill, mut cursor) = store
        .tail_begin(&range(
            r#"{team="payments"}"#,
            10,
            Direction::Backward,
            None,
        ))
        .unwrap();
    assert_eq!(lines(&backfill), vec![(t, "before".into())]);
    let q = logql::parse(r#"{team="payments"} != "skip""#).unwrap();
    let mut cache = TailStreams::new();
    assert!(store
        .tail_next(&mut cursor, &q, None, 2, &mut cache)
        .unwrap()
        .is_empty());
    for i in 0..5 {
        store
            .ingest(
                &meta(Some(&format!("n{i}")), "payments"),
                &push("/a.log", &[(t + i, &format!("new {i}")), (t + i, "skip")]),
            )
            .unwrap();
    }
    store
        .ingest(
            &meta(Some("other"), "search"),
            &push("/a.log", &[(t, "other team")]),
        )
        .unwrap();
    let mut got = Vec::new();
    loop {
        let before = cursor;
        let res = store
            .tail_next(&mut cursor, &q, Some("payments"), 2, &mut cache)
            .unwrap();
        got.extend(lines(&res));
        if cursor == before {
            break;
        }
    }
    let want: Vec<(i64, String)> = (0..5).map(|i| (t + i, format!("new {i}"))).collect();
    assert_eq!(got, want);
}

proptest::proptest! {
    /// The paired batch hash gives the payload's plain SHA-256 (the receipt's contract) and
    /// the entry digest `ingest` computes, whatever the streams and the payload length.
    #[test]
    fn hash_batch_matches_the_plain_hashes(
        streams in proptest::collection::vec(
            (
                proptest::collection::btree_map("[a-z]{1,3}", "[a-z/]{0,40}", 0..3),
                proptest::collection::vec((proptest::prelude::any::<i64>(), "[ -~ü]{0,200}"), 0..20),
            ),
            0..4,
        ),
        payload in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..6000),
    ) {
        let req = PushRequest {
            streams: streams
                .into_iter()
                .map(|(stream, values)| PushStream {
                    stream,
                    values: values.into_iter().map(|(ts, l)| Entry::new(ts, l)).collect(),
                })
                .collect(),
        };
        let (sha, digest) = hash_batch(&payload, &req, "payments").unwrap();
        proptest::prop_assert_eq!(sha, fjord_wire::codec::payload_sha256(&payload));
        let mut want = EntryDigest::default();
        for s in &req.streams {
            let key = labels_key(&s.stream, "payments").unwrap();
            for e in &s.values {
                want.add_entry(&key, e.ts_ns, e.line(), &e.metadata.as_slice());
            }
        }
        proptest::prop_assert_eq!(digest, want);
        proptest::prop_assert_eq!(entry_digest(&req, "payments", None).unwrap(), want);
    }
}

/// A team's queries read its own streams through the team index, not the whole table (with
/// 200,000 other streams `series` took 12 s).
#[test]
fn team_scoped_stream_lookups_use_the_team_index() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let conn = store.sqlite("a test").unwrap().reader().unwrap();
    let plan: Vec<String> = conn
        .prepare(&format!(
            "EXPLAIN QUERY PLAN {}",
            super::sqlite::SELECT_TEAM_STREAMS
        ))
        .unwrap()
        .query_map(["payments"], |r| r.get::<_, String>(3))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(
        plan.iter().any(|p| p.contains("INDEX streams_team")),
        "{plan:?}"
    );
}

#[test]
fn streams_beyond_the_team_limit_refuse_the_whole_batch() {
    each_backend(|b| team_limit_on(&(b.open)()));
}

fn team_limit_on(store: &Store) {
    store.set_max_streams_per_team(1);
    let a = push("/a.log", &[(10, "a")]);
    let b = push("/b.log", &[(20, "b")]);
    assert!(store.ingest(&meta(Some("1"), "payments"), &a).is_ok());
    assert!(store.ingest(&meta(Some("2"), "payments"), &a).is_ok());
    let err = store.ingest(&meta(Some("3"), "payments"), &b).unwrap_err();
    assert!(
        matches!(err, StoreError::TooManyStreams { limit: 1, .. }),
        "{err}"
    );
    assert!(store.ingest(&meta(Some("3"), "search"), &b).is_ok());
    assert_eq!(store.stats(Some("payments")).unwrap()[0].batches, 2);
}

fn entry_keys(store: &Store) -> i64 {
    let conn = Connection::open(store.path()).unwrap();
    conn.query_row("SELECT COUNT(*) FROM entry_keys", [], |r| r.get(0))
        .unwrap()
}

/// Loki's dedup for clients without batch ids: the same stream, timestamp and line are
/// stored once, within a push and across pushes; a different line at the same time, or the
/// same line in another stream, is another entry. Batch-id pushes keep batch-id idempotency.
/// What was not stored is a `duplicate` removal, so the audit still reconciles.
#[test]
fn pushes_without_batch_ids_are_deduplicated() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let t = now();
    let first = push(
        "/a.log",
        &[(t, "one"), (t, "one"), (t, "two"), (t + 1, "one")],
    );
    assert_eq!(
        store.ingest(&meta(None, "payments"), &first).unwrap(),
        IngestOutcome::Stored { records: 3 }
    );
    // A shipper's retry of the whole push stores nothing new.
    assert_eq!(
        store.ingest(&meta(None, "payments"), &first).unwrap(),
        IngestOutcome::Stored { records: 0 }
    );
    // Another stream, or a new entry beside old ones.
    assert_eq!(
        store
            .ingest(&meta(None, "payments"), &push("/b.log", &[(t, "one")]))
            .unwrap(),
        IngestOutcome::Stored { records: 1 }
    );
    assert_eq!(
        store
            .ingest(
                &meta(None, "payments"),
                &push("/a.log", &[(t, "one"), (t + 2, "three")])
            )
            .unwrap(),
        IngestOutcome::Stored { records: 1 }
    );
    assert_eq!(
        all_lines(&store, r#"{file="/a.log"}"#),
        [(t, "one"), (t, "two"), (t + 1, "one"), (t + 2, "three")].map(|(t, l)| (t, l.to_owned()))
    );
    // Batch ids: two batches with the same lines are two batches (the agent's own lines can
    // repeat legitimately, e.g. two identical lines in one millisecond).
    for id in ["b1", "b2"] {
        assert_eq!(
            store
                .ingest(&meta(Some(id), "payments"), &push("/c.log", &[(t, "same")]))
                .unwrap(),
            IngestOutcome::Stored { records: 1 }
        );
    }
    assert_eq!(all_lines(&store, r#"{file="/c.log"}"#).len(), 2);
    drop(store);

    // The receipts say what arrived, the removals what was not stored again: verify is clean.
    let evidence = crate::audit::open(dir.path()).unwrap();
    let all = crate::audit::Range {
        from_ns: i64::MIN,
        to_ns: i64::MAX,
    };
    let report = crate::audit::verify(&evidence, all, None, &[]).unwrap();
    assert!(report.ok, "{report:#?}");
    let dups: u64 = report
        .removals
        .iter()
        .filter(|r| r.kind == "duplicate")
        .map(|r| r.lines)
        .sum();
    assert_eq!(dups, 1 + 4 + 1);
    assert!(
        crate::audit::render_verify(&report).contains("not stored again, already stored (dedup)")
    );
}

/// Erasure forgets the dedup keys of the lines it erases (nothing of an erased line stays,
/// its hash included); retention forgets the keys of whole expired days.
#[test]
fn erasure_and_retention_drop_dedup_keys() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let t = now();
    let old = t - 40 * NS_PER_DAY;
    let req = push(
        "/a.log",
        &[(t, "customer=4711"), (t + 1, "ok"), (old, "old line")],
    );
    store.ingest(&meta(None, "payments"), &req).unwrap();
    assert_eq!(entry_keys(&store), 3);
    let e = Erasure {
        query: logql::parse(r#"{file="/a.log"} |= "4711""#).unwrap(),
        query_text: "q".into(),
        start_ns: 0,
        end_ns: i64::MAX,
        team: None,
        operator: "dpo".into(),
        dry_run: false,
    };
    assert_eq!(store.erase(&e, t).unwrap().lines, 1);
    assert_eq!(entry_keys(&store), 2);
    // The erased line, pushed again, is stored again; the others are still duplicates.
    assert_eq!(
        store.ingest(&meta(None, "payments"), &req).unwrap(),
        IngestOutcome::Stored { records: 1 }
    );
    let policy = crate::config::RetentionPolicy {
        default_days: 30,
        teams: Default::default(),
    };
    store.apply_retention(&policy, t).unwrap();
    assert_eq!(entry_keys(&store), 2);
    assert_eq!(all_lines(&store, r#"{file="/a.log"}"#).len(), 2);
}

/// Retention removes exactly the expired lines of each team and records them per batch. On
/// PostgreSQL a day whose every line expired goes as a whole partition; a day that still
/// holds lines another team keeps loses only the expired team's chunks.
#[test]
fn retention_removes_each_teams_expired_lines_and_records_them() {
    each_backend(|b| {
        let store = (b.open)();
        let day = 20_000i64;
        let at = |d: i64| (day + d) * NS_PER_DAY + 3_600_000_000_000;
        let now = at(0);
        for (i, (team, d)) in [
            ("payments", -5),
            ("payments", -4),
            ("payments", 0),
            ("search", -5),
        ]
        .into_iter()
        .enumerate()
        {
            store
                .ingest(
                    &meta(Some(&format!("b{i}")), team),
                    &push("/a.log", &[(at(d), &format!("{team} {d}"))]),
                )
                .unwrap();
        }
        let payments_2d = crate::config::RetentionPolicy {
            default_days: 0,
            teams: [("payments".to_owned(), 2)].into(),
        };
        let r = store.apply_retention(&payments_2d, now).unwrap();
        let payments = r.teams.iter().find(|t| t.0 == "payments").unwrap();
        assert_eq!((payments.1, payments.2, payments.3), (2, 2, 2), "{r:?}");
        assert_eq!(
            all_lines(&store, r#"{file="/a.log"}"#),
            [(at(-5), "search -5"), (at(0), "payments 0")].map(|(t, l)| (t, l.to_owned()))
        );
        assert_eq!(
            (b.sql)("SELECT count(*) FROM removals WHERE kind = 'retention'"),
            "2"
        );
        if b.name == "postgres" {
            // Day -4 held only expired lines: its partition is gone. Day -5 still holds
            // search's line.
            let parts = |d: i64| {
                (b.sql)(&format!(
                    "SELECT count(*) FROM pg_class WHERE relname = '{}'",
                    postgres::schema::partition(day + d)
                ))
            };
            assert_eq!(
                (parts(-4), parts(-5), parts(0)),
                ("0".into(), "1".into(), "1".into())
            );
        }
        if b.name == "postgres" {
            // Chunk bytes are zstd already: stored out of line, not compressed again.
            let storage = (b.sql)(&format!(
                "SELECT attstorage FROM pg_attribute WHERE attname = 'data'
                 AND attrelid = '{}'::regclass",
                postgres::schema::partition(day)
            ));
            assert_eq!(storage, "e");
            // A run that stopped after detaching day -5 (search's line still in it) is
            // finished by the next: below, the day's line is recorded and the table dropped.
            (b.sql)(&format!(
                "ALTER TABLE chunks DETACH PARTITION {}",
                postgres::schema::partition(day - 5)
            ));
        }
        // Now search expires after 3 days too: day -5 goes whole.
        let all_3d = crate::config::RetentionPolicy {
            default_days: 3,
            teams: [("payments".to_owned(), 2)].into(),
        };
        store.apply_retention(&all_3d, now).unwrap();
        assert_eq!(
            (b.sql)("SELECT count(*) FROM removals WHERE kind = 'retention'"),
            "3"
        );
        assert_eq!(
            all_lines(&store, r#"{file="/a.log"}"#),
            [(at(0), "payments 0".to_owned())]
        );
        if b.name == "postgres" {
            assert_eq!(
                (b.sql)(&format!(
                    "SELECT count(*) FROM pg_class WHERE relname = '{}'",
                    postgres::schema::partition(day - 5)
                )),
                "0"
            );
        }
        // A later push for a dropped day recreates its partition.
        store
            .ingest(
                &meta(Some("late"), "search"),
                &push("/a.log", &[(at(-4), "late")]),
            )
            .unwrap();
        assert_eq!(all_lines(&store, r#"{file="/a.log"}"#).len(), 2);
    });
}

/// Compaction merges a stream's small chunks of a day into one without losing or repeating
/// a line, and a live tail already past them does not see their lines again.
#[test]
fn compaction_merges_small_chunks_and_a_tail_past_them_stays_quiet() {
    each_backend(|b| {
        let store = (b.open)();
        let t0 = now() - 3_600_000_000_000;
        let mut want = Vec::new();
        for i in 0..30i64 {
            let line = format!("line {i}");
            let mut m = meta(Some(&format!("c{i}")), "payments");
            m.received_ns = t0;
            // Out of time order, so the merge must sort.
            let ts = t0 + (i * 7) % 30;
            store.ingest(&m, &push("/a.log", &[(ts, &line)])).unwrap();
            want.push((ts, line));
        }
        want.sort();
        // A tail that has sent every line (in as many polls as it takes to see them all).
        let (backfill, mut cursor) = store
            .tail_begin(&range(
                r#"{team="payments"}"#,
                100,
                Direction::Backward,
                None,
            ))
            .unwrap();
        let q = logql::parse(r#"{team="payments"}"#).unwrap();
        let mut cache = TailStreams::new();
        let mut sent: usize = backfill.iter().map(|s| s.entries.len()).sum();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while sent < 30 {
            assert!(
                std::time::Instant::now() < deadline,
                "the tail saw {sent} lines"
            );
            let got = store
                .tail_next(&mut cursor, &q, None, 100, &mut cache)
                .unwrap();
            sent += got.iter().map(|s| s.entries.len()).sum::<usize>();
        }
        assert_eq!(sent, 30);
        assert_eq!((b.sql)("SELECT count(*) FROM chunks"), "30");
        let r = store.compact(Duration::from_secs(60), now()).unwrap();
        assert_eq!((r.chunks_in, r.chunks_out), (30, 1), "{r:?}");
        assert_eq!((b.sql)("SELECT count(*) FROM chunks"), "1");
        assert_eq!(all_lines(&store, r#"{team="payments"}"#), want);
        let again = store
            .tail_next(&mut cursor, &q, None, 100, &mut cache)
            .unwrap();
        assert!(again.is_empty(), "{again:?}");
    });
}

/// Erasure removes exactly the entries its filters name (by line or by metadata), keeps the
/// others with their metadata, logs the act and records the removed lines per batch.
#[test]
fn erasure_removes_exactly_the_named_entries_and_logs_the_act() {
    each_backend(|b| {
        let store = (b.open)();
        let t = now();
        let req = PushRequest {
            streams: vec![PushStream {
                stream: [("file".to_owned(), "/e.log".to_owned())].into(),
                values: vec![
                    Entry::new(t, "card secret-1"),
                    Entry::new(t + 1, "plain").with_metadata([("user", "u-42")]),
                    Entry::new(t + 2, "kept").with_metadata([("user", "u-7")]),
                ],
            }],
        };
        store.ingest(&meta(Some("e1"), "payments"), &req).unwrap();
        let erase = |q: &str, dry_run: bool| {
            store.erase(
                &Erasure {
                    query: logql::parse(q).unwrap(),
                    query_text: q.into(),
                    start_ns: 0,
                    end_ns: i64::MAX,
                    team: Some("payments".into()),
                    operator: "dpo".into(),
                    dry_run,
                },
                t,
            )
        };
        let dry = erase(r#"{file="/e.log"} |= "secret""#, true).unwrap();
        assert_eq!((dry.lines, dry.log_id), (1, None));
        assert_eq!(all_lines(&store, r#"{file="/e.log"}"#).len(), 3);
        assert_eq!(
            erase(r#"{file="/e.log"} |= "secret""#, false)
                .unwrap()
                .lines,
            1
        );
        assert_eq!(
            erase(r#"{file="/e.log"} | user="u-42""#, false)
                .unwrap()
                .lines,
            1
        );
        let left = store
            .query_range(&range(r#"{file="/e.log"}"#, 10, Direction::Forward, None))
            .unwrap();
        assert_eq!(lines(&left), [(t + 2, "kept".to_owned())]);
        assert_eq!(
            left[0].entries[0].metadata,
            [("user".to_owned(), "u-7".to_owned())]
        );
        assert_eq!((b.sql)("SELECT count(*) FROM erasures"), "2");
        assert_eq!(
            (b.sql)("SELECT sum(lines) FROM removals WHERE kind = 'erasure'"),
            "2"
        );
    });
}
