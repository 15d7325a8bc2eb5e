//! Throughput of the default packs (baseline + eu-pii) over realistic payment-service logs,
//! in bytes of input per second on one core:
//!
//! * `mixed`: the e2e generator's line shapes (plain, access-log and JSON lines), about
//!   2 % of lines carrying each PII kind (tests/src/gen.rs, re-implemented here so the rules
//!   crate needs no dependency on the e2e crate); access-log lines start with the client's
//!   IPv4 address, as the generator's do, so a third of the lines have a redaction;
//! * `clean`: the same shapes without PII (access-log lines log `-` for the client), the
//!   prefilter-only path;
//! * `json`: JSON lines only, half with PII;
//! * `json-payments`: the same lines under the seed deployment's team file
//!   (`deploy/rules/payments.toml`, with JSON field rules).
//!
//! Time is the benchmark thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`), not wall time:
//! the target is stated per core, and on a shared machine wall time also counts the time
//! the thread waited for a core. On an idle machine the two agree.
//!
//! Run: `cargo bench -p fjord-rules --bench redact`. docs/benchmarks.md records the figures.

use criterion::measurement::{Measurement, ValueFormatter};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use fjord_rules::{resolve, Applied, Counts, Redactor};

#[path = "../tests/support/mod.rs"]
mod support;
use support::{luhn_digit, Rng};

/// Bytes of log per benchmark input.
const INPUT_BYTES: usize = 4 * 1024 * 1024;

fn card(r: &mut Rng) -> String {
    let mut d: Vec<u32> = std::iter::once(4)
        .chain((0..14).map(|_| r.below(10) as u32))
        .collect();
    d.push(luhn_digit(&d));
    d.iter().map(|x| char::from(b'0' + *x as u8)).collect()
}

fn pii(r: &mut Rng, rate: u64) -> String {
    match r.below(rate) {
        0 => format!(
            " customer_email={}@example.no",
            r.pick(&["kari.nordmann", "ola", "anna.berg"])
        ),
        1 => format!(" card={}", card(r)),
        2 => " iban=NO9386011117947".to_owned(),
        3 => format!(" phone=+47 {} {} {}", r.digits(3), r.digits(2), r.digits(3)),
        4 => " national_id=15076500565".to_owned(),
        5 => format!(
            " client_ip=10.{}.{}.{}",
            r.below(256),
            r.below(256),
            r.below(256)
        ),
        6 => format!(
            " auth=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ{}.{}",
            r.alnum(24),
            r.alnum(43)
        ),
        7 => format!(" api_key=sk_live_{}", r.alnum(24)),
        _ => String::new(),
    }
}

/// One line in the e2e generator's shapes; `rate` = 1 in `rate` lines per PII kind
/// (0 = never).
fn line(r: &mut Rng, seq: u64, rate: u64, shape: Option<u64>) -> String {
    let ts = format!(
        "2026-11-26T10:{:02}:{:02}.{:03}Z",
        (seq / 60_000) % 60,
        (seq / 1000) % 60,
        seq % 1000
    );
    let order = r.digits(10);
    let trace = r.hex(32);
    let amount = format!("{}.{:02}", r.below(5000), r.below(100));
    let pii = if rate == 0 {
        String::new()
    } else {
        pii(r, rate)
    };
    match shape.unwrap_or_else(|| r.below(3)) {
        0 => format!(
            "{ts} {} payment-service [{}] order={order} amount={amount} currency=NOK trace={trace} status={}{pii}",
            r.pick(&["INFO", "INFO", "DEBUG", "WARN", "ERROR"]),
            r.pick(&["worker-1", "worker-2", "http-nio-8080-exec-3"]),
            r.pick(&["authorized", "captured", "declined", "pending"]),
        ),
        1 => format!(
            "{} - - [{ts}] \"{} {} HTTP/1.1\" {} {} {}ms trace={trace}{pii}",
            if rate == 0 {
                "-".to_owned()
            } else {
                format!("10.0.{}.{}", r.below(256), r.below(256))
            },
            r.pick(&["GET", "POST", "PUT"]),
            r.pick(&["/v1/payments", "/v1/refunds", "/health", "/v1/customers/me"]),
            r.pick(&["200", "200", "201", "400", "402", "500"]),
            r.below(20_000),
            r.below(900),
        ),
        _ => format!(
            "{{\"ts\":\"{ts}\",\"level\":\"info\",\"msg\":\"payment event\",\"order_id\":\"{order}\",\"amount\":{amount},\"trace_id\":\"{trace}\",\"seq\":{seq},\"detail\":\"{}\"}}",
            pii.trim(),
        ),
    }
}

fn corpus(rate: u64, shape: Option<u64>) -> Vec<String> {
    let mut r = Rng(42);
    let mut v = Vec::new();
    let mut bytes = 0;
    let mut seq = 0;
    while bytes < INPUT_BYTES {
        let l = line(&mut r, seq, rate, shape);
        bytes += l.len() + 1;
        v.push(l);
        seq += 1;
    }
    v
}

/// CPU time of the calling thread, in nanoseconds (`CLOCK_THREAD_CPUTIME_ID`, which is exact;
/// `/proc/thread-self/schedstat` only advances at scheduler ticks, ±4 ms per reading).
fn thread_cpu_ns() -> u64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid, writable timespec; the call only writes it.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// Criterion measurement: the benchmark thread's CPU time in nanoseconds.
struct ThreadCpu;

impl Measurement for ThreadCpu {
    type Intermediate = u64;
    type Value = u64;

    fn start(&self) -> u64 {
        thread_cpu_ns()
    }
    fn end(&self, start: u64) -> u64 {
        thread_cpu_ns().saturating_sub(start)
    }
    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }
    fn zero(&self) -> u64 {
        0
    }
    fn to_f64(&self, v: &u64) -> f64 {
        *v as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        &CpuFormatter
    }
}

/// Formats CPU nanoseconds as milliseconds, and byte throughputs as MiB per CPU-second.
struct CpuFormatter;

impl ValueFormatter for CpuFormatter {
    fn scale_values(&self, _typical: f64, values: &mut [f64]) -> &'static str {
        values.iter_mut().for_each(|v| *v /= 1e6);
        "ms (cpu)"
    }
    fn scale_throughputs(&self, _typical: f64, t: &Throughput, values: &mut [f64]) -> &'static str {
        let (amount, unit) = match t {
            Throughput::Bytes(n) | Throughput::BytesDecimal(n) => {
                (*n as f64 / (1024.0 * 1024.0), "MiB/s")
            }
            Throughput::Elements(n) => (*n as f64, "elem/s"),
        };
        values.iter_mut().for_each(|v| *v = amount / (*v / 1e9));
        unit
    }
    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "ns"
    }
}

/// One pass of `redactor` over `lines`: the measured routine. Not inlined, so a profiler can
/// select exactly it, e.g. `valgrind --tool=callgrind --toggle-collect='redact::pass'
/// <bench binary> --bench 'redact/mixed$' --test`.
#[inline(never)]
fn pass(redactor: &Redactor, lines: &[String], counts: &mut Counts) -> usize {
    // As the agent calls it: one output buffer for every line.
    let mut scrubbed = String::new();
    let mut out = 0usize;
    for l in lines {
        out += match redactor.apply_into(l, counts, &mut scrubbed) {
            Applied::Unchanged => l.len(),
            Applied::Rewritten => scrubbed.len(),
            Applied::Dropped => 0,
        };
    }
    out
}

fn bench(c: &mut Criterion<ThreadCpu>) {
    let redactor = match resolve(&[]).map(|s| Redactor::new(&s, None)) {
        Ok(Ok(r)) => r,
        _ => panic!("default packs do not compile"),
    };
    // The seed deployment's team file, whose JSON field rules apply to some JSON lines.
    let team = include_str!("../../deploy/rules/payments.toml");
    let payments = match resolve(&[("payments.toml", team)])
        .map(|s| Redactor::new(&s, Some(b"bench-hash-key-0123456789")))
    {
        Ok(Ok(r)) => r,
        _ => panic!("the payments team file does not compile"),
    };
    let mut g = c.benchmark_group("redact");
    for (name, redactor, lines) in [
        ("mixed", &redactor, corpus(50, None)),
        ("clean", &redactor, corpus(0, None)),
        ("json", &redactor, corpus(16, Some(2))),
        ("json-payments", &payments, corpus(16, Some(2))),
    ] {
        let bytes: usize = lines.iter().map(|l| l.len() + 1).sum();
        g.throughput(Throughput::Bytes(bytes as u64));
        g.sample_size(20);
        // Once outside the measured routine, so that a single profiled run of `pass`
        // (`--test`) sees the steady state: the regexes built on first use and the lazy DFA
        // states are in place, as they are after criterion's own warm-up.
        let mut warm = Counts::default();
        for l in &lines {
            std::hint::black_box(redactor.apply(l, &mut warm));
        }
        g.bench_function(name, |b| {
            b.iter_batched_ref(
                Counts::default,
                |counts| pass(redactor, &lines, counts),
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(ThreadCpu);
    targets = bench
}
criterion_main!(benches);
