//! The aggregator's durability promise, through the real binary: a batch answered 204 is
//! committed. Many pushers post batches concurrently; the aggregator is SIGKILLed in the
//! middle; then the database is opened directly and every acknowledged batch id must have a
//! receipt with exactly its lines stored, and `PRAGMA integrity_check` must say `ok`. A
//! restart on the same data directory serves every acknowledged line.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fjord_e2e::{wait_for, Aggregator};

/// Concurrent pushers.
const PUSHERS: usize = 6;
/// Lines per batch.
const LINES_PER_BATCH: usize = 400;
/// Acknowledged batches to wait for before the kill.
const ACKED_BEFORE_KILL: usize = 150;

/// Posts one JSON push; returns the HTTP status (0 when the connection failed).
fn post(addr: SocketAddr, batch_id: &str, body: &str) -> u16 {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
        return 0;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
    let req = format!(
        "POST /loki/api/v1/push HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nFjord-Batch-Id: {batch_id}\r\nFjord-Agent: e2e\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    if s.write_all(req.as_bytes()).is_err() {
        return 0;
    }
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    String::from_utf8_lossy(&buf)
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

fn batch_body(pusher: usize, n: usize) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos() as i64;
    let values: Vec<serde_json::Value> = (0..LINES_PER_BATCH)
        .map(|i| {
            serde_json::json!([
                (now + i as i64).to_string(),
                format!("pusher={pusher} batch={n} line={i} order=1234567890 amount=99.50 status=captured trace=4bf92f3577b34da6a3ce929d0e0e4736")
            ])
        })
        .collect();
    serde_json::json!({"streams":[{"stream":{"team":"payments","pod":format!("pod-{pusher}")},"values":values}]})
        .to_string()
}

#[test]
fn sigkill_during_heavy_ingest_loses_no_acknowledged_batch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = fjord_e2e::free_port();
    let agg = Aggregator::start_on(
        dir.path(),
        port,
        &["--region", "eu-north-1", "--jurisdiction", "EEA"],
    );
    let addr = agg.addr;
    let data = agg.data.clone();

    let acked: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let pushers: Vec<_> = (0..PUSHERS)
        .map(|p| {
            let acked = acked.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    let id = format!("e2e-{p}-{n}");
                    let status = post(addr, &id, &batch_body(p, n));
                    *statuses.entry(status).or_default() += 1;
                    if status == 204 {
                        acked.lock().expect("lock").push(id);
                    } else if status == 0 {
                        // The server is gone (killed): stop.
                        break;
                    }
                    n += 1;
                }
                statuses
            })
        })
        .collect();

    wait_for("batches acknowledged", Duration::from_secs(60), || {
        acked.lock().expect("lock").len() >= ACKED_BEFORE_KILL
    });
    // SIGKILL while every pusher is mid-flight.
    agg.proc.kill();
    stop.store(true, Ordering::Relaxed);
    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
    for h in pushers {
        for (k, v) in h.join().expect("pusher") {
            *statuses.entry(k).or_default() += v;
        }
    }
    let acked: Vec<String> = acked.lock().expect("lock").clone();
    // Only 204 (stored), 429 (shed, to be retried) or a broken connection are allowed.
    assert!(
        statuses.keys().all(|s| [0, 204, 429].contains(s)),
        "unexpected statuses {statuses:?}"
    );

    // Open the database directly, as an auditor would.
    let conn = rusqlite::Connection::open(data.join("fjord.db")).expect("open db");
    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity_check");
    assert_eq!(integrity, "ok");
    let receipts: BTreeMap<String, i64> = conn
        .prepare("SELECT batch_id, records FROM receipts")
        .expect("prepare")
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("query")
        .map(|r| r.expect("row"))
        .collect();
    for id in &acked {
        assert_eq!(
            receipts.get(id),
            Some(&(LINES_PER_BATCH as i64)),
            "acknowledged batch {id} has no complete receipt"
        );
    }
    // No partial batch: the lines stored are exactly the receipts' records.
    let (stored_lines, receipt_lines): (i64, i64) = conn
        .query_row(
            "SELECT (SELECT COALESCE(SUM(lines),0) FROM chunks), (SELECT COALESCE(SUM(records),0) FROM receipts)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("sums");
    assert_eq!(stored_lines, receipt_lines);
    drop(conn);

    // A restart recovers and serves every acknowledged line.
    let agg = Aggregator::start_on(
        dir.path(),
        port,
        &["--region", "eu-north-1", "--jurisdiction", "EEA"],
    );
    assert!(agg.stored_records() >= (acked.len() * LINES_PER_BATCH) as u64);
    let out = agg.cli(&[
        "query",
        r#"{team="payments", pod="pod-0"} |= "batch=0 line=7 ""#,
        "--since",
        "1h",
        "--output",
        "raw",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    if acked.iter().any(|a| a == "e2e-0-0") {
        assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1);
    }
    let distinct: BTreeSet<&String> = acked.iter().collect();
    assert_eq!(distinct.len(), acked.len());
    assert_eq!(agg.proc.terminate(), Some(0), "clean exit on SIGTERM");
}
