//! Aggregator replicas over a real PostgreSQL (Debian's, started by the harness): exactly
//! once across replicas, any replica answers any query and tail, and the faults of a
//! database or a replica going away.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fjord_e2e::postgres::Postgres;
use fjord_e2e::round_robin::RoundRobin;
use fjord_e2e::writer::Writer;
use fjord_e2e::{
    agent_config, bin, free_port, http_request, start_agent, test_dir, wait_for, Aggregator,
};

const EEA: [&str; 4] = ["--region", "eu-north-1", "--jurisdiction", "EEA"];

/// A server with fast commits (no test here crashes the OS; see the harness).
fn postgres() -> Postgres {
    Postgres::builder()
        .fsync(false)
        .start()
        .unwrap_or_else(|e| panic!("{e}"))
}

/// A replica over `dsn`, in its own directory under `dir`.
fn replica(dir: &Path, name: &str, dsn: &str) -> Aggregator {
    replica_on(dir, name, dsn, free_port())
}

fn replica_on(dir: &Path, name: &str, dsn: &str, port: u16) -> Aggregator {
    let home = dir.join(name);
    std::fs::create_dir_all(&home).unwrap();
    let mut args = EEA.to_vec();
    args.extend(["--store", dsn]);
    Aggregator::start_on(&home, port, &args)
}

fn push(addr: SocketAddr, batch: Option<&str>, body: &str) -> (u16, String) {
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(b) = batch {
        headers.push(("Fjord-Batch-Id", b));
    }
    http_request(addr, "POST", "/loki/api/v1/push", &headers, body.as_bytes()).unwrap()
}

fn body(lines: &[(i64, String)]) -> String {
    let values: Vec<[String; 2]> = lines
        .iter()
        .map(|(t, l)| [t.to_string(), l.clone()])
        .collect();
    serde_json::json!({"streams":[{"stream":{"app":"pay","team":"payments"},"values":values}]})
        .to_string()
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

/// Lines of `{app="pay"}` through `agg`'s query API, sorted.
fn stored_lines(agg: &Aggregator) -> Vec<String> {
    let mut v: Vec<String> = agg
        .query_jsonl(r#"{app="pay"}"#, 100_000)
        .iter()
        .filter_map(|r| r["line"].as_str().map(str::to_owned))
        .collect();
    v.sort();
    v
}

#[test]
fn two_replicas_sixteen_pushes_of_one_batch_store_it_once() {
    let pg = postgres();
    let dir = test_dir();
    // Both start at once on an empty database: the schema is created once, under the
    // migration lock, and both serve.
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| replica(dir.path(), "a", &pg.dsn()));
        let b = s.spawn(|| replica(dir.path(), "b", &pg.dsn()));
        (a.join().unwrap(), b.join().unwrap())
    });
    assert_eq!(
        pg.psql("SELECT version FROM fjord_schema").unwrap(),
        fjord_aggregator::store::postgres::schema::SCHEMA_VERSION.to_string(),
        "one row, the version this binary writes"
    );
    // The audit chain began once, though both replicas found it empty at start.
    assert_eq!(
        pg.psql("SELECT count(*) FROM chain WHERE kind = 'genesis'")
            .unwrap(),
        "1"
    );
    let t = now_ns();
    let batch: Vec<(i64, String)> = (0..200).map(|i| (t + i, format!("line {i}"))).collect();
    let payload = Arc::new(body(&batch));
    let start = Arc::new(std::sync::Barrier::new(16));
    let handles: Vec<_> = (0..16)
        .map(|i| {
            let addr = if i % 2 == 0 { a.addr } else { b.addr };
            let (payload, start) = (payload.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                push(addr, Some("batch-1"), &payload)
            })
        })
        .collect();
    let answers: Vec<(u16, String)> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let stored = answers.iter().filter(|(s, _)| *s == 204).count();
    let duplicate = answers
        .iter()
        .filter(|(s, b)| *s == 200 && b.contains(r#""status":"duplicate""#))
        .count();
    assert_eq!((stored, duplicate), (1, 15), "{answers:?}");
    assert_eq!(
        pg.psql("SELECT count(*), sum(records) FROM receipts")
            .unwrap(),
        "1|200"
    );
    assert_eq!(pg.psql("SELECT sum(lines) FROM chunks").unwrap(), "200");
    // Either replica answers the same query with the same lines.
    let from_a = stored_lines(&a);
    assert_eq!(from_a.len(), 200);
    assert_eq!(from_a, stored_lines(&b));
}

#[test]
fn the_same_query_through_either_replica_returns_the_same_lines() {
    let pg = postgres();
    let dir = test_dir();
    let a = replica(dir.path(), "a", &pg.dsn());
    let b = replica(dir.path(), "b", &pg.dsn());
    let t = now_ns();
    for i in 0..20i64 {
        let target = if i % 2 == 0 { a.addr } else { b.addr };
        let batch: Vec<(i64, String)> = (0..10)
            .map(|j| (t + i * 10 + j, format!("b{i} l{j}")))
            .collect();
        let (status, resp) = push(target, Some(&format!("b{i}")), &body(&batch));
        assert_eq!(status, 204, "{resp}");
    }
    let (la, lb) = (stored_lines(&a), stored_lines(&b));
    assert_eq!(la.len(), 200);
    assert_eq!(la, lb);
    // A metric query and the label API agree too (the series and value of each row: the
    // time column is the query's own).
    let metric = |agg: &Aggregator| {
        let q = r#"sum by (app) (count_over_time({app="pay"}[1h]))"#;
        let out = agg.cli(&["query", q]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .skip(1)
            .map(|row| row.split_whitespace().skip(1).collect::<Vec<_>>().join(" "))
            .collect::<Vec<_>>()
    };
    assert_eq!(metric(&a), [r#"{app="pay"} 200"#]);
    assert_eq!(metric(&a), metric(&b));
    assert_eq!(
        a.get("/loki/api/v1/labels").unwrap(),
        b.get("/loki/api/v1/labels").unwrap()
    );
    // The audit reads the same database, read-only, and finds every batch intact.
    let out = Command::new(bin("fjord-aggregator"))
        .args(["audit", "verify", "--store", &pg.dsn(), "--output", "json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["receipts_checked"], 20, "{report}");
    assert_eq!(report["stored_lines_checked"], 200, "{report}");
    // Both replicas appended to one audit chain: its genesis and a link per receipt.
    assert_eq!(report["chain"]["links"], 21, "{report}");
    assert_eq!(report["ok"], true, "{report}");
}

#[test]
fn a_tail_on_one_replica_shows_lines_pushed_to_the_other_within_2s() {
    let pg = postgres();
    let dir = test_dir();
    let a = replica(dir.path(), "a", &pg.dsn());
    let b = replica(dir.path(), "b", &pg.dsn());
    let mut tail = Command::new(bin("fjord-aggregator"))
        .args([
            "tail",
            r#"{app="pay"}"#,
            "--output",
            "raw",
            "--url",
            &b.url(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = BufReader::new(tail.stdout.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in out.lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // The tail is live once a line pushed to B itself shows: push until one does.
    let started = Instant::now();
    let mut warm = 0;
    loop {
        let (status, _) = push(
            b.addr,
            Some(&format!("warm{warm}")),
            &body(&[(now_ns(), format!("warm {warm}"))]),
        );
        assert_eq!(status, 204);
        warm += 1;
        if rx.recv_timeout(Duration::from_millis(500)).is_ok() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the tail never started"
        );
    }
    for i in 0..5 {
        let text = format!("pushed to A {i}");
        let sent = Instant::now();
        let (status, _) = push(
            a.addr,
            Some(&format!("a{i}")),
            &body(&[(now_ns(), text.clone())]),
        );
        assert_eq!(status, 204);
        // Later warm-up lines may come first; A's line must follow within 2 s.
        loop {
            let left = Duration::from_secs(2).saturating_sub(sent.elapsed());
            match rx.recv_timeout(left) {
                Ok(line) if line == text => break,
                Ok(line) if line.starts_with("warm ") => continue,
                Ok(other) => panic!("unexpected line {other:?}"),
                Err(_) => panic!("{text:?} did not show on B's tail within 2 s"),
            }
        }
    }
    let _ = tail.kill();
    let _ = tail.wait();
}

#[test]
fn an_agent_through_a_round_robin_front_loses_nothing_when_a_replica_is_killed() {
    let pg = postgres();
    let dir = test_dir();
    let a = replica(dir.path(), "a", &pg.dsn());
    let b = replica(dir.path(), "b", &pg.dsn());
    let front = RoundRobin::start(vec![a.addr, b.addr]).unwrap();
    let cfg = agent_config(dir.path(), &front.url(), "max_batch_lines = 200");
    let writer = Writer::start(&dir.path().join("logs/app.log"), 2000);
    let _agent = start_agent(dir.path(), &cfg);
    wait_for("some lines stored", Duration::from_secs(30), || {
        a.stored_records() > 1000
    });
    b.proc.kill();
    std::thread::sleep(Duration::from_secs(3));
    let written = writer.stop();
    a.expect_exactly_once(&(0..written).collect(), Duration::from_secs(90));
    // The agent's ledger reached the surviving replica, and the audit chain both replicas
    // appended to (one of them killed mid-stream) is sound and matches it.
    let audit = |args: &[&str]| {
        let out = Command::new(bin("fjord-aggregator"))
            .arg("audit")
            .args(args)
            .args(["--store", &pg.dsn(), "--output", "json"])
            .output()
            .unwrap();
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap_or_default()
    };
    wait_for(
        "the agent's ledger shipped",
        Duration::from_secs(60),
        || audit(&["agents"])["agents"][0]["delivered_records"] == written,
    );
    let report = audit(&["verify"]);
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(
        report["ledger"], "the agents' ledgers shipped to the aggregator",
        "{report}"
    );
}

#[test]
fn a_replica_killed_mid_transaction_leaves_no_partial_batch() {
    let pg = postgres();
    let dir = test_dir();
    let a = replica(dir.path(), "a", &pg.dsn());
    // Big batches of many streams, so that a kill lands inside transactions.
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(std::sync::Mutex::new(Vec::new()));
    let pushers: Vec<_> = (0..4)
        .map(|p| {
            let (stop, acked, addr) = (stop.clone(), acked.clone(), a.addr);
            std::thread::spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    let t = now_ns();
                    let streams: Vec<serde_json::Value> = (0..50)
                        .map(|s| {
                            let values: Vec<[String; 2]> = (0..40)
                                .map(|i| [(t + i).to_string(), format!("p{p} n{n} s{s} i{i}")])
                                .collect();
                            serde_json::json!({"stream":{"app":"pay","s":s.to_string()},"values":values})
                        })
                        .collect();
                    let id = format!("p{p}-{n}");
                    let payload = serde_json::json!({ "streams": streams }).to_string();
                    if let Ok((204, _)) = http_request(
                        addr,
                        "POST",
                        "/loki/api/v1/push",
                        &[("Content-Type", "application/json"), ("Fjord-Batch-Id", &id)],
                        payload.as_bytes(),
                    ) {
                        acked.lock().unwrap().push(id);
                    }
                    n += 1;
                }
            })
        })
        .collect();
    wait_for("some batches acknowledged", Duration::from_secs(30), || {
        acked.lock().unwrap().len() >= 8
    });
    a.proc.kill();
    stop.store(true, Ordering::Relaxed);
    for p in pushers {
        p.join().unwrap();
    }
    // Every receipt has all its lines, every chunk a receipt; every acknowledged batch is
    // there.
    let partial = pg
        .psql(
            "SELECT count(*) FROM receipts r
             WHERE r.records <> COALESCE((SELECT sum(lines) FROM chunks c WHERE c.seq = r.id), 0)",
        )
        .unwrap();
    assert_eq!(partial, "0");
    let orphans = pg
        .psql("SELECT count(*) FROM chunks c WHERE NOT EXISTS (SELECT 1 FROM receipts r WHERE r.id = c.seq)")
        .unwrap();
    assert_eq!(orphans, "0");
    let stored: BTreeSet<String> = pg
        .psql("SELECT batch_id FROM receipts")
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    for id in acked.lock().unwrap().iter() {
        assert!(stored.contains(id), "acknowledged batch {id} is not stored");
    }
}

#[test]
fn postgres_restarted_mid_ingest_loses_nothing_acknowledged() {
    let mut pg = postgres();
    let dir = test_dir();
    let a = replica(dir.path(), "a", &pg.dsn());
    let cfg = agent_config(dir.path(), &a.url(), "max_batch_lines = 200");
    let writer = Writer::start(&dir.path().join("logs/app.log"), 2000);
    let _agent = start_agent(dir.path(), &cfg);
    wait_for("some lines stored", Duration::from_secs(30), || {
        a.stored_records() > 1000
    });
    pg.kill();
    // While the database is away the replica answers 503 with Retry-After, and is not ready.
    let (status, _) = a.get("/ready").unwrap();
    assert_eq!(status, 503);
    let (status, resp) = push(a.addr, Some("while-down"), &body(&[(now_ns(), "x".into())]));
    assert_eq!(status, 503, "{resp}");
    std::thread::sleep(Duration::from_secs(3));
    pg.restart().unwrap();
    let written = writer.stop();
    a.expect_exactly_once(&(0..written).collect(), Duration::from_secs(120));
    assert_eq!(a.get("/ready").unwrap().0, 200);
}

fn serve_exit(dsn: &str) -> (Option<i32>, String) {
    let dir = test_dir();
    let out = Command::new(bin("fjord-aggregator"))
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{}", free_port()),
            "--store",
            dsn,
        ])
        .current_dir(dir.path())
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_wrong_unreachable_too_new_or_standby_database_exits_64_saying_what_to_do() {
    // Not a URL the store takes.
    let (code, err) = serve_exit("mysql://x@127.0.0.1/db");
    assert_eq!(code, Some(64), "{err}");
    assert!(err.contains("sqlite://DIR or postgres://"), "{err}");
    // Nothing listens there.
    let (code, err) = serve_exit(&format!(
        "postgres://postgres@127.0.0.1:{}/fjord",
        free_port()
    ));
    assert_eq!(code, Some(64), "{err}");
    assert!(err.contains("cannot connect to PostgreSQL"), "{err}");
    assert!(err.contains("Check the host, port"), "{err}");
    // The password is never printed.
    let (_, err) = serve_exit(&format!(
        "postgres://postgres:hunter2@127.0.0.1:{}/fjord",
        free_port()
    ));
    assert!(!err.contains("hunter2"), "{err}");

    let pg = postgres();
    // A schema newer than this binary.
    let newer = pg.create_database("newer").unwrap();
    pg.psql_in(
        "newer",
        "CREATE TABLE fjord_schema (version BIGINT NOT NULL); INSERT INTO fjord_schema VALUES (999)",
    )
    .unwrap();
    let (code, err) = serve_exit(&newer);
    assert_eq!(code, Some(64), "{err}");
    assert!(err.contains("newer than this binary"), "{err}");

    // A read-only standby: a base backup of this server, started in recovery.
    let standby = pg.standby().unwrap();
    let (code, err) = serve_exit(&standby.dsn());
    assert_eq!(code, Some(64), "{err}");
    assert!(err.contains("read-only standby"), "{err}");
}
