//! What the aggregator's benches store: lines shaped like the e2e generator's
//! (`tests/src/gen.rs`, copied so this crate does not depend on the test harness) from a
//! seeded generator, so every run stores the same bytes; and the process's memory as
//! `/proc/self/status` reports it.

use fjord_aggregator::store::{IngestMeta, Store};
use fjord_wire::{Entry, PushRequest, PushStream};

/// Raw bytes per batch, as `fjord-agent`'s default `max_batch_bytes`.
pub const BATCH_RAW_BYTES: usize = 1024 * 1024;

/// A xorshift generator: the same seed gives the same lines on every host.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
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
pub fn line(r: &mut Rng, seq: u64) -> String {
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

/// A push of about `raw` bytes of lines, one stream; line number `seq` is stamped
/// `t0 + seq × step_ns`.
pub fn batch(
    r: &mut Rng,
    seq: &mut u64,
    t0: i64,
    step_ns: i64,
    raw: usize,
) -> PushRequest<'static> {
    let mut values = Vec::new();
    let mut bytes = 0;
    while bytes < raw {
        let l = line(r, *seq);
        bytes += l.len();
        values.push(Entry::new(t0 + *seq as i64 * step_ns, l));
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

/// Stores at least `raw` bytes of lines from `Rng(seed)` into `store`, one committed batch of
/// [`BATCH_RAW_BYTES`] at a time, line number `seq` stamped `t0 + seq × step_ns`; with
/// `pods > 1` the batches go round the streams of `pods` pods. Returns the raw bytes and lines
/// stored.
pub fn fill(store: &Store, seed: u64, raw: u64, t0: i64, step_ns: i64, pods: usize) -> (u64, u64) {
    let mut r = Rng(seed);
    let (mut seq, mut stored, mut n) = (0, 0u64, 0usize);
    while stored < raw {
        let mut req = batch(&mut r, &mut seq, t0, step_ns, BATCH_RAW_BYTES);
        if pods > 1 {
            req.streams[0]
                .stream
                .insert("pod".to_owned(), format!("payment-{}", n % pods));
        }
        stored += req.raw_bytes() as u64;
        n += 1;
        let meta = IngestMeta {
            batch_id: Some(format!("q-{n}")),
            agent: None,
            team: "payments".into(),
            rules_version: None,
            redactions: None,
            payload_sha256: String::new(),
            received_ns: fjord_wire::clock::now_ns(),
        };
        store.ingest(&meta, &req).expect("ingest");
    }
    (stored, seq)
}

/// A `kB` field of /proc/self/status (0 when unreadable).
pub fn proc_status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Resets the kernel's high-water mark of this process's RSS (`VmHWM`) to its current RSS
/// (`clear_refs` 5); false where the kernel does not allow it.
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}
