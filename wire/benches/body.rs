//! The wire crate's byte scans on realistic lines (`tests/src/gen.rs`, 4 MiB, seed 7): both
//! classify JSON's special bytes a block at a time (`src/scan.rs`).
//!
//! - `body/escape`: every line pushed into bodies of 1 MiB raw ([`StreamBody::push`]: the
//!   agent's JSON escaping and timestamps);
//! - `body/parse_in`: those bodies parsed as the aggregator parses them
//!   ([`codec::parse_push_in`]).
//!
//! Instruction counts (docs/benchmarks.md): `valgrind --tool=callgrind
//! --toggle-collect='body::escape_pass' <bench> --bench 'body/escape' --test`, and
//! `body::parse_all` with `body/parse_in`.

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use fjord_wire::body::StreamBody;
use fjord_wire::codec;

// The end-to-end tests' generator: the same lines the agent benchmark ships (its unit
// tests are not run here).
#[allow(dead_code, unused_imports)]
#[path = "../../tests/src/gen.rs"]
mod gen;

/// Log bytes generated.
const CORPUS_BYTES: u64 = 4 << 20;

/// Raw bytes per body, as the agent's default `max_batch_bytes`.
const BODY_RAW_BYTES: usize = 1 << 20;

fn lines() -> Vec<String> {
    let mut log = Vec::new();
    gen::write_log(&mut log, 7, CORPUS_BYTES).expect("writing to a Vec");
    String::from_utf8_lossy(&log)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Every line pushed into bodies of [`BODY_RAW_BYTES`], timestamps 1 ns apart.
fn escape_all(lines: &[String]) -> Vec<Vec<u8>> {
    let labels: BTreeMap<String, String> = [("team".to_owned(), "payments".to_owned())].into();
    let mut bodies = Vec::new();
    let mut body = StreamBody::new(&labels, Vec::new());
    for (i, line) in lines.iter().enumerate() {
        body.push(1_764_151_200_000_000_000 + i as i64, line);
        if body.raw_bytes() >= BODY_RAW_BYTES {
            let full = std::mem::replace(&mut body, StreamBody::new(&labels, Vec::new()));
            bodies.push(full.finish());
        }
    }
    bodies.push(body.finish());
    bodies
}

/// [`escape_all`] as measured: a function of its own, so that the instruction count
/// (`--toggle-collect`) is of the measured call and not of the parse bench's setup.
#[inline(never)]
fn escape_pass(lines: &[String]) -> Vec<Vec<u8>> {
    escape_all(lines)
}

/// Every body parsed; the records found.
#[inline(never)]
fn parse_all(bodies: &[Vec<u8>], text: &mut String) -> usize {
    bodies
        .iter()
        .map(|b| codec::parse_push_in(b, text).map_or(0, |r| r.records()))
        .sum()
}

fn bench(c: &mut Criterion) {
    let lines = lines();
    let raw: usize = lines.iter().map(String::len).sum();
    let mut g = c.benchmark_group("body");
    g.throughput(Throughput::Bytes(raw as u64));
    g.bench_function("escape", |b| b.iter(|| escape_pass(black_box(&lines))));
    let bodies = escape_all(&lines);
    let mut text = String::new();
    g.bench_function("parse_in", |b| {
        b.iter(|| parse_all(black_box(&bodies), &mut text))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
