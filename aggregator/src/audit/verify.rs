//! `audit verify`: does every stored line still match the digest its receipt recorded at
//! ingest (less the removals recorded by erasure and retention), and, given an agent's
//! exported ledger, did everything the agent saw acknowledged arrive, unaltered?
//!
//! How the evidence is built (entry digests, removals) is in docs/compliance.md.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::io::BufRead;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::chain::ChainReport;
use super::{AuditError, Range};
use crate::keys::PublicKey;
use crate::store::evidence::{Evidence, Receipt};
use crate::store::{chunk, EntryDigest, Labels, StreamHasher};
use fjord_wire::clock::format_ns;

/// One row of `fjord-agent audit --export` (JSON lines): the ledger record both binaries
/// share. Unknown fields are ignored, so a newer agent's export still reads.
pub use fjord_wire::ledger::{LedgerRecord as LedgerEntry, Outcome};

/// Reads an exported ledger; errors name the line.
pub fn read_ledger(path: &Path) -> Result<Vec<LedgerEntry>, AuditError> {
    let f = std::fs::File::open(path).map_err(|source| AuditError::LedgerIo {
        path: path.to_owned(),
        source,
    })?;
    let mut out = Vec::new();
    for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
        let line = line.map_err(|source| AuditError::LedgerIo {
            path: path.to_owned(),
            source,
        })?;
        if line.trim().is_empty() {
            continue;
        }
        let e: LedgerEntry = serde_json::from_str(&line).map_err(|e| AuditError::Ledger {
            path: path.to_owned(),
            line: i + 1,
            reason: e.to_string(),
        })?;
        out.push(e);
    }
    Ok(out)
}

/// An acknowledged batch of the ledger with no receipt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MissingBatch {
    pub batch_id: String,
    pub sent_ns: i64,
    pub sent: String,
    pub destination: String,
    pub records: u64,
}

/// A receipt that the ledger does not account for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtraBatch {
    pub seq: i64,
    pub batch_id: Option<String>,
    pub agent: Option<String>,
    pub received: String,
    pub records: u64,
}

/// A batch whose ledger row and receipt disagree, or whose stored lines are not what arrived.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlteredBatch {
    /// The batch id, or `seq:<n>` for a sender without batch ids.
    pub batch: String,
    pub seq: Option<i64>,
    /// What differs: `records`, `payload_sha256` (ledger vs receipt) or `stored lines`.
    pub what: String,
    pub expected: String,
    pub found: String,
}

/// Stored lines that belong to no receipt (a receipt was deleted, or lines were inserted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unreceipted {
    pub seq: i64,
    pub lines: u64,
}

/// A chunk that does not decode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CorruptChunk {
    pub chunk_id: i64,
    pub stream: Labels,
    /// The newest batch sequence it holds lines of.
    pub seq: i64,
    pub error: String,
}

/// Lines legitimately removed from a batch (erasure or retention).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Removal {
    pub batch: String,
    pub kind: String,
    pub operator: String,
    pub at: String,
    pub at_ns: i64,
    pub lines: u64,
    pub erasure_id: Option<i64>,
}

/// `audit verify`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VerifyReport {
    pub range: Range,
    pub ledger: Option<String>,
    /// Receipts in range whose stored lines were checked.
    pub receipts_checked: u64,
    /// Receipts received before the audit schema: no digest to check against.
    pub receipts_without_digest: u64,
    pub stored_lines_checked: u64,
    pub ledger_rows: u64,
    pub ledger_acked: u64,
    pub ledger_dead_letter: u64,
    /// Rows for bytes lost on the agent's side before they were read (nothing was sent).
    #[serde(default)]
    pub ledger_lost: u64,
    pub missing: Vec<MissingBatch>,
    pub extra: Vec<ExtraBatch>,
    pub altered: Vec<AlteredBatch>,
    pub unreceipted: Vec<Unreceipted>,
    pub corrupt_chunks: Vec<CorruptChunk>,
    /// Not findings: what erasure and retention removed, with who and when.
    pub removals: Vec<Removal>,
    /// The audit chain over receipts, removals and erasures, and its signed roots.
    #[serde(default)]
    pub chain: Option<ChainReport>,
    /// Whether nothing is missing, extra, altered, unreceipted or corrupt, and the chain has
    /// no finding.
    pub ok: bool,
}

fn batch_name(batch_id: Option<&str>, seq: i64) -> String {
    batch_id.map_or_else(|| format!("seq:{seq}"), str::to_owned)
}

/// Recomputes, from every chunk, the line count and entry digest per batch sequence.
#[allow(clippy::type_complexity)]
fn stored_by_batch(
    store: &Evidence,
) -> Result<(HashMap<i64, (u64, EntryDigest)>, Vec<CorruptChunk>, u64), AuditError> {
    let keys: HashMap<i64, String> = store
        .streams()?
        .into_iter()
        .map(|s| (s.id, s.key))
        .collect();
    let mut per: HashMap<i64, (u64, EntryDigest)> = HashMap::new();
    let mut corrupt = Vec::new();
    let mut total = 0u64;
    let mut dec = chunk::Decoder::new().map_err(|e| AuditError::Labels {
        stream: 0,
        reason: e.to_string(),
    })?;
    let mut entries: Vec<(i64, EntryDigest)> = Vec::new();
    store.each_chunk(|c| {
        let key = keys.get(&c.stream_id).map_or("", String::as_str);
        let hasher = StreamHasher::new(key);
        // Decode fully before counting, so a chunk corrupt halfway contributes nothing.
        entries.clear();
        let res = dec.load(c.data).map(|_| ()).and_then(|()| {
            dec.each(c.seq, |r| {
                entries.push((r.seq, hasher.entry(r.ts, r.line, &r.meta)));
            })
        });
        match res {
            Ok(()) => {
                total += entries.len() as u64;
                for (s, d) in &entries {
                    let slot = per.entry(*s).or_default();
                    slot.0 += 1;
                    slot.1.add(d);
                }
            }
            Err(e) => corrupt.push(CorruptChunk {
                chunk_id: c.id,
                stream: serde_json::from_str(key).unwrap_or_default(),
                seq: c.seq,
                error: e.to_string(),
            }),
        }
        Ok::<_, AuditError>(())
    })?;
    Ok((per, corrupt, total))
}

/// Builds the `audit verify` report: the stored lines of every receipt in `range` against its
/// digest (less recorded removals); the audit chain and its signed roots, checked with `keys`
/// (signatures unchecked when none are given); and, with a ledger, the ledger against the
/// receipts.
pub fn verify(
    store: &Evidence,
    range: Range,
    ledger: Option<(&Path, &[LedgerEntry])>,
    keys: &[PublicKey],
) -> Result<VerifyReport, AuditError> {
    // One read transaction: receipts, removals, chunks and the chain from the same snapshot.
    store.snapshot(|store| {
        let mut report = verify_in_snapshot(store, range, ledger)?;
        let chain = super::chain::check(store, keys)?;
        report.ok = report.ok && chain.ok();
        report.chain = Some(chain);
        Ok(report)
    })
}

fn verify_in_snapshot(
    store: &Evidence,
    range: Range,
    ledger: Option<(&Path, &[LedgerEntry])>,
) -> Result<VerifyReport, AuditError> {
    let all = store.receipts(i64::MIN, i64::MAX)?;
    let (stored, corrupt_chunks, stored_lines_checked) = stored_by_batch(store)?;
    // Removals per batch sequence.
    let mut removed: HashMap<i64, (u64, EntryDigest)> = HashMap::new();
    let mut removal_rows: Vec<(i64, Removal)> = Vec::new();
    for r in store.removals()? {
        let d = EntryDigest::parse(&r.digest).map_err(|source| AuditError::Digest {
            receipt: r.seq,
            source,
        })?;
        let slot = removed.entry(r.seq).or_default();
        slot.0 += r.lines;
        slot.1.add(&d);
        removal_rows.push((
            r.seq,
            Removal {
                batch: String::new(),
                kind: r.kind,
                operator: r.operator,
                at: format_ns(r.at_ns),
                at_ns: r.at_ns,
                lines: r.lines,
                erasure_id: r.erasure_id,
            },
        ));
    }
    let by_seq: HashMap<i64, &Receipt> = all.iter().map(|r| (r.seq, r)).collect();
    let mut report = VerifyReport {
        range,
        ledger: ledger.map(|(p, _)| p.display().to_string()),
        receipts_checked: 0,
        receipts_without_digest: 0,
        stored_lines_checked,
        ledger_rows: 0,
        ledger_acked: 0,
        ledger_dead_letter: 0,
        ledger_lost: 0,
        missing: Vec::new(),
        extra: Vec::new(),
        altered: Vec::new(),
        unreceipted: Vec::new(),
        corrupt_chunks,
        removals: Vec::new(),
        chain: None,
        ok: false,
    };
    for (seq, mut rm) in removal_rows {
        if let Some(r) = by_seq.get(&seq) {
            if range.contains(r.received_ns) {
                rm.batch = batch_name(r.batch_id.as_deref(), seq);
                report.removals.push(rm);
            }
        }
    }
    // Stored lines against each receipt.
    for r in all.iter().filter(|r| range.contains(r.received_ns)) {
        let Some(want) = &r.entries_digest else {
            report.receipts_without_digest += 1;
            continue;
        };
        report.receipts_checked += 1;
        let mut want = EntryDigest::parse(want).map_err(|source| AuditError::Digest {
            receipt: r.seq,
            source,
        })?;
        let mut want_lines = r.records;
        if let Some((n, d)) = removed.get(&r.seq) {
            want_lines = want_lines.saturating_sub(*n);
            want.sub(d);
        }
        let (got_lines, got) = stored.get(&r.seq).copied().unwrap_or_default();
        if got_lines != want_lines || got != want {
            report.altered.push(AlteredBatch {
                batch: batch_name(r.batch_id.as_deref(), r.seq),
                seq: Some(r.seq),
                what: "stored lines".to_owned(),
                expected: format!("{want_lines} lines, digest {want}"),
                found: if got_lines == want_lines {
                    format!("{got_lines} lines with different content (digest {got})")
                } else {
                    format!("{got_lines} lines (digest {got})")
                },
            });
        }
    }
    let mut orphans: Vec<Unreceipted> = stored
        .iter()
        .filter(|(seq, _)| !by_seq.contains_key(seq))
        .map(|(seq, (lines, _))| Unreceipted {
            seq: *seq,
            lines: *lines,
        })
        .collect();
    orphans.sort_by_key(|o| o.seq);
    report.unreceipted = orphans;

    if let Some((_, rows)) = ledger {
        let by_batch: HashMap<&str, &Receipt> = all
            .iter()
            .filter_map(|r| r.batch_id.as_deref().map(|b| (b, r)))
            .collect();
        let mut agents = BTreeSet::new();
        let mut matched = HashSet::new();
        let mut max_sent = i64::MIN;
        let mut min_received = i64::MAX;
        for e in rows.iter().filter(|e| range.contains(e.sent_ns)) {
            report.ledger_rows += 1;
            if e.outcome == Outcome::DeadLetter {
                report.ledger_dead_letter += 1;
                continue;
            }
            if e.outcome == Outcome::Lost {
                report.ledger_lost += 1;
                continue;
            }
            report.ledger_acked += 1;
            max_sent = max_sent.max(e.sent_ns);
            let Some(r) = by_batch.get(e.batch_id.as_str()) else {
                report.missing.push(MissingBatch {
                    batch_id: e.batch_id.clone(),
                    sent_ns: e.sent_ns,
                    sent: format_ns(e.sent_ns),
                    destination: e.destination.clone(),
                    records: e.records,
                });
                continue;
            };
            matched.insert(r.seq);
            min_received = min_received.min(r.received_ns);
            if let Some(a) = &r.agent {
                agents.insert(a.clone());
            }
            if r.records != e.records {
                report.altered.push(AlteredBatch {
                    batch: e.batch_id.clone(),
                    seq: Some(r.seq),
                    what: "records".to_owned(),
                    expected: e.records.to_string(),
                    found: r.records.to_string(),
                });
            }
            if !r.payload_sha256.eq_ignore_ascii_case(&e.payload_sha256) {
                report.altered.push(AlteredBatch {
                    batch: e.batch_id.clone(),
                    seq: Some(r.seq),
                    what: "payload_sha256".to_owned(),
                    expected: e.payload_sha256.clone(),
                    found: r.payload_sha256.clone(),
                });
            }
        }
        // Extra: receipts of the same agent(s) within the ledger's span that the ledger does
        // not list. Other agents' receipts, and ones after the export, are not this ledger's.
        for r in &all {
            let same_agent = r.agent.as_ref().is_some_and(|a| agents.contains(a));
            if same_agent
                && !matched.contains(&r.seq)
                && r.received_ns >= min_received
                && r.received_ns <= max_sent
                && range.contains(r.received_ns)
            {
                report.extra.push(ExtraBatch {
                    seq: r.seq,
                    batch_id: r.batch_id.clone(),
                    agent: r.agent.clone(),
                    received: r.received.clone(),
                    records: r.records,
                });
            }
        }
    }
    report
        .altered
        .sort_by(|a, b| (a.seq, &a.what).cmp(&(b.seq, &b.what)));
    report.ok = report.missing.is_empty()
        && report.extra.is_empty()
        && report.altered.is_empty()
        && report.unreceipted.is_empty()
        && report.corrupt_chunks.is_empty();
    Ok(report)
}
