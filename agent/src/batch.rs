//! Building batches: one contiguous byte range of one file identity, its redacted records,
//! and everything the shipper and the ledger need once it is encoded.
//!
//! Invariants: a batch covers `[start, end)` of one identity with no gap to the batch before
//! it; its id depends only on (agent, identity, start), so a batch re-formed after a restart
//! is the same batch; every record in it was redacted by one rule-set version.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use fjord_rules::{Counts, Redactor};
use fjord_wire::body::StreamBody;
use fjord_wire::codec::BatchEncoder;
use fjord_wire::headers as fh;

/// A batch being filled.
pub struct Building {
    pub start: u64,
    pub end: u64,
    /// The records so far, already JSON-escaped into the push body's `values` array (a
    /// line is copied once, into the body, and never held as a `String` of its own).
    pub body: StreamBody,
    pub counts: Counts,
    /// The rule set that redacted every record of this batch (counts index its rules).
    pub redactor: Arc<Redactor>,
    pub since: Instant,
    /// The first record's timestamp (Unix ns); record `i` carries `first_ts + i`, so a batch
    /// re-formed after a restart from its recorded `first_ts` is the same payload.
    pub first_ts: i64,
}

impl Building {
    pub fn new(start: u64, first_ts: i64, redactor: Arc<Redactor>, body: StreamBody) -> Building {
        Building {
            start,
            end: start,
            body,
            counts: Counts::default(),
            redactor,
            since: Instant::now(),
            first_ts,
        }
    }

    /// The timestamp of the next record.
    pub fn next_ts(&self) -> i64 {
        self.first_ts
            .saturating_add(i64::try_from(self.body.records()).unwrap_or(i64::MAX))
    }
}

/// An encoded request body with its headers.
pub struct OutBatch {
    pub batch_id: String,
    pub body: Vec<u8>,
    pub rules_version: String,
    /// The `Fjord-Redactions` header value.
    pub redactions: String,
}

/// A formed batch, ready for the shipper.
pub struct Formed {
    pub identity: String,
    pub batch_id: String,
    pub path: String,
    pub start: u64,
    pub end: u64,
    /// `None` when every line of the range was dropped by a rule: nothing is sent, only the
    /// checkpoint moves (in order with the batches before it).
    pub out: Option<Arc<OutBatch>>,
    pub records: u64,
    pub raw_bytes: u64,
    pub payload_sha256: String,
    pub redactions: BTreeMap<String, u64>,
    /// The first record's timestamp, recorded with the batch's boundaries before it is sent.
    pub first_ts: i64,
}

/// What identifies the stream a batch belongs to.
pub struct Origin<'a> {
    pub agent_id: &'a str,
    pub identity: &'a str,
    pub path: &'a str,
    pub labels: &'a BTreeMap<String, String>,
}

/// How many finished JSON buffers are kept for new batches.
const SPARE_BUFFERS: usize = 2;

/// The tailer's batch encoder (one zstd context) and the JSON buffers of formed batches,
/// reused for new ones: forming a batch allocates nothing large, so glibc has no large
/// blocks to churn through and keep (the agent's RSS grew to ~100 MiB draining a backlog
/// before, docs/benchmarks.md).
pub struct Encoding {
    zstd_level: i32,
    /// Made at the first batch.
    encoder: Option<BatchEncoder>,
    spare: Vec<Vec<u8>>,
}

impl Encoding {
    pub fn new(zstd_level: i32) -> Encoding {
        Encoding {
            zstd_level,
            encoder: None,
            spare: Vec::new(),
        }
    }

    /// The body of a new batch of `o`'s stream, on a reused buffer when there is one.
    pub fn body(&mut self, o: &Origin<'_>) -> StreamBody {
        StreamBody::new(&stream_labels(o), self.spare.pop().unwrap_or_default())
    }
}

/// The labels of `o`'s stream: the configured ones and the file.
fn stream_labels(o: &Origin<'_>) -> BTreeMap<String, String> {
    let mut labels = o.labels.clone();
    labels.insert("file".to_owned(), o.path.to_owned());
    labels
}

/// Encodes a finished batch.
pub fn form(
    o: &Origin<'_>,
    b: Building,
    enc: &mut Encoding,
) -> Result<Formed, fjord_wire::CodecError> {
    let by_rule = b.counts.by_name(&b.redactor);
    let batch_id = fh::batch_id(o.agent_id, o.identity, b.start);
    let raw_bytes = b.body.raw_bytes() as u64;
    let records = b.body.records() as u64;
    if records == 0 {
        return Ok(Formed {
            identity: o.identity.to_owned(),
            batch_id,
            path: o.path.to_owned(),
            start: b.start,
            end: b.end,
            out: None,
            records: 0,
            raw_bytes: 0,
            payload_sha256: String::new(),
            redactions: by_rule,
            first_ts: b.first_ts,
        });
    }
    let json = b.body.finish();
    let encoder = match enc.encoder.as_mut() {
        Some(e) => e,
        None => enc.encoder.insert(BatchEncoder::new(enc.zstd_level)?),
    };
    let encoded = encoder.encode(&json);
    if enc.spare.len() < SPARE_BUFFERS {
        enc.spare.push(json);
    }
    let enc = encoded?;
    Ok(Formed {
        identity: o.identity.to_owned(),
        batch_id: batch_id.clone(),
        path: o.path.to_owned(),
        start: b.start,
        end: b.end,
        out: Some(Arc::new(OutBatch {
            batch_id,
            body: enc.body,
            rules_version: b.redactor.version().to_owned(),
            redactions: fh::format_redactions(&by_rule),
        })),
        records,
        raw_bytes,
        payload_sha256: enc.payload_sha256,
        redactions: by_rule,
        first_ts: b.first_ts,
    })
}
