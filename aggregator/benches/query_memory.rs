//! Memory of metric queries over a large store, through the server's whole query path: the
//! router, the handler, the two scan threads, the evaluator and the JSON answer.
//!
//! A child process (this binary again, with `FJORD_QUERY_MEMORY_FILL` set to the data
//! directory) stores `FJORD_BENCH_MEMORY_MIB` MiB of raw generator-shaped lines (default
//! 1024) in the streams of eight pods, 4 ms apart (1 GiB spans about 7.7 hours), so that the
//! measuring process never held the ingest's buffers: its baseline is a server with an open
//! store that has read nothing. Then, for each query: the RSS before it (`VmRSS`), the
//! kernel's high-water mark reset (`clear_refs` 5), one `query_range` request over the whole
//! range through the router in-process, and the high-water mark after it (`VmHWM`) less the
//! RSS before it.
//!
//! Run: `cargo bench -p fjord-aggregator --bench query_memory`.

mod corpus;

use std::sync::Arc;
use std::time::Instant;

use axum::body::{to_bytes, Body};
use axum::http::{Request, StatusCode};
use fjord_aggregator::config::ServeConfig;
use fjord_aggregator::server::{app, AppState};
use fjord_aggregator::store::Store;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use corpus::{proc_status_kib, reset_peak_rss};

/// Set in the child that fills the store: the data directory.
const FILL_ENV: &str = "FJORD_QUERY_MEMORY_FILL";
/// Raw MiB to store.
const MIB_ENV: &str = "FJORD_BENCH_MEMORY_MIB";
const DEFAULT_MIB: u64 = 1024;
/// The first line's timestamp: 2026-11-26T00:00:00Z.
const T0_NS: i64 = 1_795_651_200 * 1_000_000_000;
/// Nanoseconds between two lines: the 6.9 million lines of 1 GiB span 7.7 hours.
const LINE_STEP_NS: i64 = 4_000_000;
/// Streams the batches go round, so that both scan threads have streams to read.
const PODS: usize = 8;
/// Step of the range queries, and their window.
const STEP_S: i64 = 60;

/// The queries measured: Grafana's volume histogram over parsed JSON lines, and a line filter.
const QUERIES: &[&str] = &[
    r#"sum by (level) (count_over_time({team="payments"} | json | __error__="" [1m]))"#,
    r#"count_over_time({team="payments"} |= "declined" [1m])"#,
];

fn main() {
    let mib = std::env::var(MIB_ENV)
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(DEFAULT_MIB);
    if let Ok(dir) = std::env::var(FILL_ENV) {
        let store = Store::open(std::path::Path::new(&dir)).expect("store");
        let (raw, lines) = corpus::fill(&store, 11, mib << 20, T0_NS, LINE_STEP_NS, PODS);
        store.checkpoint().expect("checkpoint");
        println!("{raw} {lines}");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let filled = std::time::Instant::now();
    let out = std::process::Command::new(std::env::current_exe().expect("this binary"))
        .env(FILL_ENV, dir.path())
        .env(MIB_ENV, mib.to_string())
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("the fill process");
    assert!(out.status.success(), "the fill process failed");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut counts = text
        .split_whitespace()
        .map(|v| v.parse::<u64>().expect("a count"));
    let (raw, lines) = (counts.next().expect("raw"), counts.next().expect("lines"));
    eprintln!(
        "stored {:.1} MiB raw, {lines} lines, in {:.1} s",
        raw as f64 / (1 << 20) as f64,
        filled.elapsed().as_secs_f64()
    );
    let end_s = (T0_NS + lines as i64 * LINE_STEP_NS) / 1_000_000_000 + STEP_S;
    let start_s = T0_NS / 1_000_000_000 + STEP_S;

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let cfg = ServeConfig::with_data_dir(dir.path());
        let store = Arc::new(Store::open(dir.path()).expect("store"));
        let router = app(Arc::new(AppState::new(
            store,
            &cfg,
            CancellationToken::new(),
        )));
        for q in QUERIES {
            let params = [
                ("query", q.to_string()),
                ("start", start_s.to_string()),
                ("end", end_s.to_string()),
                ("step", STEP_S.to_string()),
            ];
            let url = reqwest::Url::parse_with_params("http://in-process/loki/api/v1/query_range", &params)
                .expect("url");
            let uri = format!("{}?{}", url.path(), url.query().unwrap_or(""));
            let before = proc_status_kib("VmRSS");
            assert!(reset_peak_rss(), "the kernel does not allow clear_refs 5");
            let (cpu0, wall0) = (process_cpu_s(), Instant::now());
            let resp = router
                .clone()
                .oneshot(Request::get(&uri).body(Body::empty()).expect("request"))
                .await
                .expect("response");
            let status = resp.status();
            let body = to_bytes(resp.into_body(), usize::MAX).await.expect("body");
            let (cpu, wall) = (process_cpu_s() - cpu0, wall0.elapsed().as_secs_f64());
            let peak = proc_status_kib("VmHWM");
            assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
            let v: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
            let summary = &v["data"]["stats"]["summary"];
            let mib = raw as f64 / (1 << 20) as f64;
            eprintln!(
                "{q}\n  peak RSS {:.1} MiB above the {:.1} MiB before the query; {} series, {} of {lines} lines read; {wall:.2} s wall, {cpu:.2} CPU-s ({:.0} raw MiB/s wall, {:.0} per CPU-second)",
                peak.saturating_sub(before) as f64 / 1024.0,
                before as f64 / 1024.0,
                v["data"]["result"].as_array().map_or(0, Vec::len),
                summary["totalLinesProcessed"],
                mib / wall,
                mib / cpu,
            );
        }
    });
}

/// User and system CPU seconds of this process so far (`/proc/self/stat`, in clock ticks
/// of 1/100 s, Linux's `USER_HZ`).
fn process_cpu_s() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    (ticks(11) + ticks(12)) as f64 / 100.0
}
