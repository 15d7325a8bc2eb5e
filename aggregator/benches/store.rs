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
//!   only): metric queries scanning every stored line through `Store::scan` into the LogQL
//!   evaluator (decompression, line filter, pipeline, accumulation), in raw MB/s of one core,
//!   and the peak RSS each query adds above the process's RSS before it.
//!
//! Run: `cargo bench -p fjord-aggregator --bench store`.

use std::hint::black_box;

use axum::body::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use fjord_aggregator::config::IngestLimits;
use fjord_aggregator::logql;
use fjord_aggregator::server::push::{ingest_body, BodyFormat, PushBatch};
use fjord_aggregator::store::{
    chunk, Direction, EntryDigest, IngestOutcome, RangeQuery, Store, StreamHasher,
};
use fjord_wire::codec::{self, ContentEncoding};
use fjord_wire::otlp::proto::common::{any_value::Value, AnyValue, KeyValue};
use fjord_wire::otlp::proto::logs::{ExportLogsServiceRequest, LogRecord, ResourceLogs, ScopeLogs};
use fjord_wire::otlp::proto::resource::Resource;
use fjord_wire::{logproto, otlp, Entry, PushRequest, PushStream};

/// Raw bytes per batch, as `fjord-agent`'s default `max_batch_bytes`.
const BATCH_RAW_BYTES: usize = 1024 * 1024;
/// Raw bytes stored for the scan benchmark.
const SCAN_RAW_BYTES: usize = 64 * 1024 * 1024;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
    fn digits(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b'0' + self.below(10) as u8))
            .collect()
    }
    fn hex(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b"0123456789abcdef"[self.below(16) as usize]))
            .collect()
    }
}

/// One line shaped like the generator's: app, access-log and JSON lines with random ids.
fn line(r: &mut Rng, seq: u64) -> String {
    let ts = format!(
        "2026-11-26T10:{:02}:{:02}.{:03}Z",
        (seq / 60_000) % 60,
        (seq / 1000) % 60,
        seq % 1000
    );
    let order = r.digits(10);
    let trace = r.hex(32);
    let amount = format!("{}.{:02}", r.below(5000), r.below(100));
    let levels = ["INFO", "INFO", "INFO", "DEBUG", "WARN", "ERROR"];
    match r.below(3) {
        0 => format!(
            "{ts} {} payment-service [{}] order={order} amount={amount} currency=NOK trace={trace} status={}",
            r.pick(&levels),
            r.pick(&["worker-1", "worker-2", "http-nio-8080-exec-3"]),
            r.pick(&["authorized", "captured", "declined", "pending"]),
        ),
        1 => format!(
            "10.0.{}.{} - - [{ts}] \"{} {} HTTP/1.1\" {} {} {}ms trace={trace}",
            r.below(256),
            r.below(256),
            r.pick(&["GET", "POST", "PUT"]),
            r.pick(&["/v1/payments", "/v1/refunds", "/v1/customers/me", "/health"]),
            r.pick(&["200", "200", "201", "400", "402", "500"]),
            r.below(20_000),
            r.below(900),
        ),
        _ => format!(
            "{{\"ts\":\"{ts}\",\"level\":\"{}\",\"msg\":\"payment event\",\"order_id\":\"{order}\",\"amount\":{amount},\"trace_id\":\"{trace}\",\"seq\":{seq},\"detail\":\"\"}}",
            r.pick(&levels).to_ascii_lowercase(),
        ),
    }
}

/// A push of about `raw` bytes of lines with timestamps from `t0`, one stream.
fn batch(r: &mut Rng, seq: &mut u64, t0: i64, raw: usize) -> PushRequest<'static> {
    let mut values = Vec::new();
    let mut bytes = 0;
    while bytes < raw {
        let l = line(r, *seq);
        bytes += l.len();
        values.push(Entry::new(t0 + *seq as i64 * 1000, l));
        *seq += 1;
    }
    PushRequest {
        streams: vec![PushStream {
            stream: [
                ("team".to_owned(), "payments".to_owned()),
                ("namespace".to_owned(), "shop".to_owned()),
                ("pod".to_owned(), "payment-7f9c".to_owned()),
                ("file".to_owned(), "/var/log/payment/app.log".to_owned()),
            ]
            .into(),
            values,
        }],
    }
}

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
    let req = batch(&mut r, &mut seq, now_ns(), BATCH_RAW_BYTES);
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
    let mut r = Rng(7);
    let mut seq = 0;
    let t0 = now_ns() - 3_600_000_000_000;
    let mut raw = 0u64;
    let mut n = 0;
    while raw < SCAN_RAW_BYTES as u64 {
        let req = batch(&mut r, &mut seq, t0, BATCH_RAW_BYTES);
        raw += req.raw_bytes() as u64;
        n += 1;
        let meta = fjord_aggregator::store::IngestMeta {
            batch_id: Some(format!("q-{n}")),
            agent: None,
            team: "payments".into(),
            rules_version: None,
            redactions: None,
            payload_sha256: String::new(),
            received_ns: now_ns(),
        };
        store.ingest(&meta, &req).expect("ingest");
    }
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
    // The stored lines span well under a second from t0: one instant point covers them all.
    let grid = fjord_logql::Grid::instant(t0 + 2_000_000_000);
    for (what, text) in [
        (
            "metric count_over_time |=",
            r#"count_over_time({team="payments"} |= "declined" [2s])"#,
        ),
        (
            "metric sum by level json",
            r#"sum by (level) (count_over_time({team="payments"} | json | __error__="" [2s]))"#,
        ),
    ] {
        let Ok(fjord_logql::Query::Metric(plan)) = fjord_logql::plan(text) else {
            panic!("{text} is not a metric query")
        };
        // Peak memory of the query above what the process held before it: the kernel's
        // high-water mark is reset first (`clear_refs` 5).
        let reset_peak = std::fs::write("/proc/self/clear_refs", "5").is_ok();
        let before = proc_status_kib("VmRSS");
        per_cpu_second(what, raw, 3, |_| {
            let v = plan
                .evaluate(
                    grid,
                    fjord_logql::EvalLimits::default(),
                    |lq, from, to, sink| store.scan(lq, None, from, to, sink),
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

/// A `kB` field of /proc/self/status (0 when unreadable).
fn proc_status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

criterion_group!(benches, ingest, query);
criterion_main!(benches);
