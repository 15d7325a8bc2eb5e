//! Store benchmarks on realistic payment-service lines (the shape of `tests/src/gen.rs`,
//! copied so this crate does not depend on the test harness):
//!
//! - `ingest/push_1MiB`: the server's whole blocking ingest path for one agent batch of 1 MiB
//!   of raw lines — zstd decompress, JSON parse, limit checks, payload SHA-256, chunk encode
//!   and compress, one SQLite transaction with `synchronous=FULL` — in raw MB/s.
//! - `ingest/push_protobuf_1MiB` and `ingest/otlp_protobuf_1MiB`: the same lines as Promtail
//!   sends them (Loki's protobuf, snappy) and as an OpenTelemetry SDK sends them (OTLP
//!   protobuf, uncompressed; each record with severity, trace and span ids, the resource
//!   with `service.name`, two Kubernetes index attributes and `host.name`), without batch
//!   ids as those clients send them, so every entry also gets its Loki dedup key. Each run
//!   sends timestamps after the last run's, as a client does, so nothing is a duplicate.
//! - `ingest_parts/*`: the pieces of that path alone, to see where the CPU goes (the entry
//!   digest over the batch's lines, chunk encoding with a reused encoder as the store does).
//! - `query/scan_filter`: a `|=` query whose needle never matches, so every stored line of
//!   the range is decompressed and scanned, in raw MB/s.
//!
//! - `metric count_over_time |=` and `metric sum by level json` (printed per CPU-second
//!   only): metric queries scanning every stored line through `Store::scan_part` into the
//!   LogQL evaluator (decompression, line filter, pipeline, accumulation), in raw MB/s of one
//!   core, and the peak RSS each query adds above the process's RSS before it.
//!
//! The queries run over `FJORD_BENCH_SCAN_MIB` MiB of raw lines (default 256, the size the
//! query targets are stated for), with the `query_timeout` check on as in the server.
//!
//! Run: `cargo bench -p fjord-aggregator --bench store`.

mod corpus;

use std::hint::black_box;

use axum::body::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use fjord_aggregator::config::IngestLimits;
use fjord_aggregator::logql;
use fjord_aggregator::server::push::{ingest_body, BodyFormat, PushBatch};
use fjord_aggregator::store::{
    chunk, Deadline, Direction, EntryDigest, IngestOutcome, RangeQuery, Scan, Store, StreamHasher,
};
use fjord_wire::codec::{self, ContentEncoding};
use fjord_wire::otlp::proto::common::{any_value::Value, AnyValue, KeyValue};
use fjord_wire::otlp::proto::logs::{ExportLogsServiceRequest, LogRecord, ResourceLogs, ScopeLogs};
use fjord_wire::otlp::proto::resource::Resource;
use fjord_wire::{logproto, otlp, PushRequest};

use corpus::{batch, proc_status_kib, reset_peak_rss, Rng, BATCH_RAW_BYTES};

/// Raw MiB stored for the query benchmarks unless `FJORD_BENCH_SCAN_MIB` says otherwise.
const DEFAULT_SCAN_MIB: u64 = 256;
/// Nanoseconds between two generated lines.
const LINE_STEP_NS: i64 = 1000;
/// A deadline no bench query reaches: the check runs as in the server, never stops a query.
const NO_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(86_400);

/// `req` as Loki's protobuf push, each timestamp `shift` ns later.
fn loki_protobuf(req: &PushRequest, shift: i64) -> Bytes {
    let mut req = req.clone();
    for e in req.streams.iter_mut().flat_map(|s| &mut s.values) {
        e.ts_ns += shift;
    }
    Bytes::from(logproto::encode(&req))
}

/// `req`'s lines as an OpenTelemetry SDK exports them (one resource, one scope), each
/// timestamp `shift` ns later.
fn otlp_protobuf(req: &PushRequest, shift: i64) -> Bytes {
    let string = |s: &str| {
        Some(AnyValue {
            value: Some(Value::StringValue(s.to_owned())),
        })
    };
    let attr = |k: &str, v: &str| KeyValue {
        key: k.to_owned(),
        value: string(v),
        ..Default::default()
    };
    let mut r = Rng(shift as u64 | 1);
    let records = req
        .streams
        .iter()
        .flat_map(|s| &s.values)
        .map(|e| LogRecord {
            time_unix_nano: (e.ts_ns + shift) as u64,
            observed_time_unix_nano: (e.ts_ns + shift + 1000) as u64,
            severity_number: 9,
            severity_text: "INFO".to_owned(),
            body: string(e.line()),
            trace_id: (0..16).map(|_| r.next() as u8).collect(),
            span_id: (0..8).map(|_| r.next() as u8).collect(),
            flags: 1,
            ..Default::default()
        })
        .collect();
    let msg = ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![
                    attr("service.name", "payment-service"),
                    attr("k8s.namespace.name", "shop"),
                    attr("k8s.pod.name", "payment-7f9c"),
                    attr("host.name", "node-4"),
                ],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                log_records: records,
                ..Default::default()
            }],
            schema_url: String::new(),
        }],
    };
    Bytes::from(otlp::encode(&msg))
}

/// CPU time of the calling thread in ns (`/proc/thread-self/schedstat`), so the figures are
/// per CPU-second as the targets are stated, not per wall second (commits wait on fsync).
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Runs `f` `n` times and prints raw MiB per CPU-second and per wall second.
fn per_cpu_second(what: &str, raw_per_run: u64, n: u32, mut f: impl FnMut(u32)) {
    let (cpu0, wall0) = (thread_cpu_ns(), std::time::Instant::now());
    for i in 0..n {
        f(i);
    }
    let cpu = (thread_cpu_ns() - cpu0) as f64 / 1e9;
    let wall = wall0.elapsed().as_secs_f64();
    let mib = (raw_per_run * u64::from(n)) as f64 / (1024.0 * 1024.0);
    eprintln!(
        "{what}: {:.1} MiB raw per CPU-second, {:.1} MiB/s wall ({n} runs, {cpu:.2} CPU-s)",
        mib / cpu,
        mib / wall
    );
}

fn now_ns() -> i64 {
    fjord_wire::clock::now_ns()
}

fn ingest(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("store");
    let limits = IngestLimits::default();
    let mut r = Rng(42);
    let mut seq = 0;
    let req = batch(&mut r, &mut seq, now_ns(), LINE_STEP_NS, BATCH_RAW_BYTES);
    let raw = req.raw_bytes() as u64;
    let enc = codec::encode_zstd(&req, codec::DEFAULT_ZSTD_LEVEL).expect("encode");
    let body = Bytes::from(enc.body.clone());

    let mut g = c.benchmark_group("ingest");
    g.throughput(Throughput::Bytes(raw));
    g.sample_size(30);
    let mut n = 0u64;
    g.bench_function("push_1MiB", |b| {
        b.iter_batched(
            || {
                n += 1;
                PushBatch {
                    batch_id: Some(format!("bench-{n}")),
                    agent: Some("bench".into()),
                    ..PushBatch::default()
                }
            },
            |batch| {
                ingest_body(
                    &store,
                    body.clone(),
                    BodyFormat::Json(ContentEncoding::Zstd),
                    &limits,
                    batch,
                )
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
    per_cpu_second("ingest push_1MiB", raw, 64, |i| {
        let batch = PushBatch {
            batch_id: Some(format!("cpu-{i}")),
            ..PushBatch::default()
        };
        ingest_body(
            &store,
            body.clone(),
            BodyFormat::Json(ContentEncoding::Zstd),
            &limits,
            batch,
        )
        .expect("ingest");
    });

    // Promtail's and the OpenTelemetry SDKs' bodies: no batch ids, and each run's timestamps
    // after the last run's, as a client's are (the dedup keys are ordered by timestamp, so
    // interleaved runs would rewrite the whole key index each time).
    let span =
        req.streams[0].values.last().map_or(0, |e| e.ts_ns) - req.streams[0].values[0].ts_ns + 1;
    let mut run = 0;
    let otlp_format = BodyFormat::Otlp {
        encoding: otlp::Encoding::Protobuf,
        compression: ContentEncoding::Identity,
    };
    for (name, format, encode) in [
        (
            "push_protobuf_1MiB",
            BodyFormat::ProtobufSnappy,
            loki_protobuf as fn(&PushRequest, i64) -> Bytes,
        ),
        ("otlp_protobuf_1MiB", otlp_format, otlp_protobuf),
    ] {
        let mut g = c.benchmark_group("ingest");
        g.throughput(Throughput::Bytes(raw));
        g.sample_size(30);
        g.bench_function(name, |b| {
            b.iter_batched(
                || {
                    run += 1;
                    encode(&req, run * span)
                },
                |body| ingest_body(&store, body, format, &limits, PushBatch::default()),
                BatchSize::SmallInput,
            )
        });
        g.finish();
        let bodies: Vec<Bytes> = (1..=64).map(|i| encode(&req, (run + i) * span)).collect();
        run += 64;
        eprintln!("ingest {name}: {} body bytes per batch", bodies[0].len());
        per_cpu_second(&format!("ingest {name}"), raw, 64, |i| {
            let outcome = ingest_body(
                &store,
                bodies[i as usize].clone(),
                format,
                &limits,
                PushBatch::default(),
            )
            .expect("ingest");
            assert!(matches!(outcome, IngestOutcome::Stored { .. }));
        });
    }

    let json = serde_json::to_vec(&req).expect("json");
    let mut g = c.benchmark_group("ingest_parts");
    g.throughput(Throughput::Bytes(raw));
    g.bench_function("zstd_decompress_streamed", |b| {
        b.iter(|| codec::decompress(black_box(&enc.body), ContentEncoding::Zstd, 64 << 20))
    });
    g.bench_function("zstd_decompress_sized", |b| {
        b.iter(|| {
            fjord_aggregator::server::push::decompress(
                black_box(&enc.body),
                ContentEncoding::Zstd,
                64 << 20,
            )
        })
    });
    g.bench_function("json_parse", |b| {
        b.iter(|| codec::parse_push(black_box(&json)))
    });
    // As the server parses: escaped lines into one buffer, the body's UTF-8 checked once.
    let mut unescaped = String::new();
    g.bench_function("json_parse_in", |b| {
        b.iter(|| codec::parse_push_in(black_box(&json), &mut unescaped).map(|r| r.records()))
    });

    g.bench_function("payload_sha256", |b| {
        b.iter(|| codec::payload_sha256(black_box(&json)))
    });
    let entries = &req.streams[0].values;
    let pairs = || entries.iter().map(|e| (e.ts_ns, e.line()));
    for level in [-1, 1, 2, 3, 5] {
        g.bench_function(format!("chunk_encode_zstd_{level}"), |b| {
            b.iter(|| chunk::encode_iter_at(black_box(pairs()), level))
        });
        let c = chunk::encode_iter_at(pairs(), level).expect("encode");
        eprintln!(
            "chunk zstd level {level}: {:.3} stored/raw",
            c.data.len() as f64 / raw as f64
        );
    }
    // The store's encoders keep one context across chunks: level 1 as before, and the tuned
    // parameters the store writes with.
    for (name, enc) in [
        ("chunk_encode_reused_level_1", chunk::Encoder::new(1)),
        ("chunk_encode_stored", chunk::Encoder::stored()),
    ] {
        let mut enc = enc.expect("encoder");
        g.bench_function(name, |b| b.iter(|| enc.encode(black_box(pairs()))));
        let c = enc.encode(pairs()).expect("encode");
        eprintln!("{name}: {:.3} stored/raw", c.data.len() as f64 / raw as f64);
    }
    let labels = serde_json::to_string(&req.streams[0].stream).expect("labels");
    // As the store computes it (two entries at a time), and one entry at a time.
    g.bench_function("entry_digest", |b| {
        b.iter(|| {
            StreamHasher::new(black_box(&labels))
                .sum(pairs().map(|(t, l)| (t, l, chunk::Meta::NONE)))
        })
    });
    // The server's: the payload SHA-256 and the entry digest in one paired stream.
    g.bench_function("hash_batch", |b| {
        b.iter(|| fjord_aggregator::store::hash_batch(black_box(&json), &req, "payments"))
    });
    g.bench_function("entry_digest_one_at_a_time", |b| {
        b.iter(|| {
            let h = StreamHasher::new(black_box(&labels));
            let mut d = EntryDigest::default();
            for e in entries {
                d.add(&h.entry(e.ts_ns, e.line(), &chunk::Meta::NONE));
            }
            d
        })
    });
    g.finish();
}

fn query(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("store");
    let mib = std::env::var("FJORD_BENCH_SCAN_MIB")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(DEFAULT_SCAN_MIB);
    let t0 = now_ns() - 3_600_000_000_000;
    let (raw, lines) = corpus::fill(&store, 7, mib << 20, t0, LINE_STEP_NS, 1);
    // Everything in the database file: with the WAL checkpointed into it and truncated.
    store.checkpoint().expect("checkpoint");
    let size = |p: &std::path::Path| std::fs::metadata(p).map_or(0, |m| m.len());
    let file = size(store.path());
    let wal = size(&store.path().with_extension("db-wal"));
    eprintln!(
        "scan store: {raw} raw bytes in {file} file bytes + {wal} WAL bytes ({:.3} stored/raw)",
        (file + wal) as f64 / raw as f64
    );
    let q = RangeQuery {
        query: logql::parse(r#"{team="payments"} |= "no-such-needle""#).expect("logql"),
        start_ns: 0,
        end_ns: i64::MAX,
        limit: 100,
        direction: Direction::Backward,
        team: None,
        max_bytes: usize::MAX,
        deadline: Deadline::after(NO_TIMEOUT),
    };
    let mut g = c.benchmark_group("query");
    g.throughput(Throughput::Bytes(raw));
    g.sample_size(10);
    g.bench_function("scan_filter", |b| {
        b.iter(|| {
            let res = store.query_range(&q).expect("query");
            assert!(res.is_empty());
        })
    });
    g.finish();
    per_cpu_second("query scan_filter", raw, 5, |_| {
        assert!(store.query_range(&q).expect("query").is_empty());
    });
    // One instant point whose window, whole seconds after t0, holds every stored line.
    let window_s = (lines as i64 * LINE_STEP_NS) / 1_000_000_000 + 1;
    let grid = fjord_logql::Grid::instant(t0 + window_s * 1_000_000_000);
    for (what, text) in [
        (
            "metric count_over_time |=",
            format!(r#"count_over_time({{team="payments"}} |= "declined" [{window_s}s])"#),
        ),
        (
            "metric sum by level json",
            format!(
                r#"sum by (level) (count_over_time({{team="payments"}} | json | __error__="" [{window_s}s]))"#
            ),
        ),
    ] {
        let Ok(fjord_logql::Query::Metric(plan)) = fjord_logql::plan(&text) else {
            panic!("{text} is not a metric query")
        };
        // Peak memory of the query above what the process held before it: the kernel's
        // high-water mark is reset first.
        let reset_peak = reset_peak_rss();
        let before = proc_status_kib("VmRSS");
        per_cpu_second(what, raw, 3, |_| {
            let v = plan
                .evaluate(
                    grid,
                    fjord_logql::EvalLimits::default(),
                    |query, start_ns, end_ns, sink| {
                        let scan = Scan {
                            query,
                            team: None,
                            start_ns,
                            end_ns,
                            part: (0, 1),
                            deadline: Deadline::after(NO_TIMEOUT),
                        };
                        store.scan_part(&scan, sink)
                    },
                )
                .expect("metric query");
            black_box(v);
        });
        if reset_peak {
            let peak = proc_status_kib("VmHWM");
            eprintln!(
                "{what}: peak RSS {:.1} MiB above the {:.1} MiB before the query",
                peak.saturating_sub(before) as f64 / 1024.0,
                before as f64 / 1024.0
            );
        }
    }
}

criterion_group!(benches, ingest, query);
criterion_main!(benches);
