//! Evaluator throughput, in bytes of log lines per second on one core: the queries of
//! docs/benchmarks.md over 16 MiB of generated JSON lines held in memory (no store, no
//! decompression: this is the LogQL part of a query alone).
//!
//! Run: `cargo bench -p fjord-logql --bench eval`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use fjord_logql::{plan, EntryState, EvalError, EvalLimits, Grid, Labels, Query};

const S: i64 = 1_000_000_000;
const BYTES: usize = 16 << 20;

/// JSON lines like a service's access log, ~200 bytes each, one per 10 ms, in 4 streams.
fn data() -> (Vec<Labels>, Vec<(usize, i64, String)>) {
    let streams: Vec<Labels> = (0..4)
        .map(|i| {
            [("app", "payment"), ("pod", ["p-0", "p-1", "p-2", "p-3"][i])]
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        })
        .collect();
    let mut out = Vec::new();
    let (mut total, mut i) = (0usize, 0i64);
    while total < BYTES {
        let level = ["info", "info", "warn", "error"][(i % 4) as usize];
        let status = [200, 200, 404, 503][(i % 4) as usize];
        let line = format!(
            r#"{{"ts":"2026-12-05T03:00:00.{:06}Z","level":"{level}","status":{status},"method":"GET","path":"/api/v1/pay/{}","latency":"{}ms","user":"u{}","msg":"request served"}}"#,
            i % 1_000_000,
            i % 977,
            i % 250,
            i % 10_000
        );
        total += line.len();
        out.push(((i % 4) as usize, i * 10_000_000, line));
        i += 1;
    }
    (streams, out)
}

fn metric(c: &mut Criterion, name: &str, q: &str) {
    let (streams, entries) = data();
    let bytes: usize = entries.iter().map(|e| e.2.len()).sum();
    let end = entries.last().map_or(0, |e| e.1);
    let Ok(Query::Metric(p)) = plan(q) else {
        panic!("{q} is not a metric query")
    };
    let mut g = c.benchmark_group("eval");
    g.throughput(Throughput::Bytes(bytes as u64));
    g.sample_size(10);
    g.bench_function(name, |b| {
        b.iter(|| {
            let grid = Grid {
                start: 60 * S,
                end,
                step: 60 * S,
            };
            let v = p.evaluate(grid, EvalLimits::default(), |lq, from, to, sink| {
                for (s, ts, line) in &entries {
                    if *ts >= from && *ts <= to && lq.keep_line(line) {
                        sink(&streams[*s], &[], *ts, line)?;
                    }
                }
                Ok::<(), EvalError>(())
            });
            black_box(v.map(|_| ()))
        })
    });
    g.finish();
}

fn log_pipeline(c: &mut Criterion, name: &str, q: &str) {
    let (streams, entries) = data();
    let bytes: usize = entries.iter().map(|e| e.2.len()).sum();
    let Ok(Query::Log(lq)) = plan(q) else {
        panic!("{q} is not a log query")
    };
    let mut g = c.benchmark_group("eval");
    g.throughput(Throughput::Bytes(bytes as u64));
    g.sample_size(10);
    g.bench_function(name, |b| {
        let mut st = EntryState::default();
        b.iter(|| {
            let mut kept = 0usize;
            for (s, ts, line) in &entries {
                if lq.keep_line(line) && lq.process(&mut st, &streams[*s], *ts, line) {
                    kept += st.line(line).len();
                }
            }
            black_box(kept)
        })
    });
    g.finish();
}

fn benches(c: &mut Criterion) {
    metric(
        c,
        "count_over_time_line_filter",
        r#"count_over_time({app="payment"} |= "error" [1m])"#,
    );
    metric(
        c,
        "sum_by_level_count_over_time_json",
        r#"sum by (level) (count_over_time({app="payment"} | json [1m]))"#,
    );
    metric(
        c,
        "quantile_over_time_unwrap_duration",
        r#"quantile_over_time(0.99, {app="payment"} | json | unwrap duration(latency) [1m]) by (level)"#,
    );
    log_pipeline(
        c,
        "log_json_status_filter",
        r#"{app="payment"} | json | status >= 500"#,
    );
}

criterion_group!(eval, benches);
criterion_main!(eval);
