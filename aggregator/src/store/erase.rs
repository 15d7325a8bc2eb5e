//! Erasure (GDPR right to erasure): removes the entries that match a selector, line filters
//! and label filters (over the stream's labels and each entry's structured metadata) in a
//! time range by rewriting the chunks that hold them, and records the act in the `erasures`
//! table. An erased entry's metadata goes with it; a kept entry keeps its own.
//!
//! Invariants: the rewrite of every affected chunk and the erasure-log row commit in one
//! transaction, so a crash leaves either all or none of it; the old chunk contents are
//! overwritten on disk (`secure_delete`) and the WAL is truncated afterwards, so the erased
//! lines do not survive in free pages or old WAL frames; a chunk's `seq` is kept, and so is
//! each remaining line's batch sequence. The erased lines' count and entry digest are recorded
//! per batch in `removals`, so `audit verify` reports them as erased rather than tampered.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::backend::{EraseTx, Span};
use super::{chain, chunk, parse_labels, EntryDigest, Store, StoreError};
use crate::logql::{LineFilter, LogQuery};

/// What to erase.
#[derive(Debug, Clone)]
pub struct Erasure {
    pub query: LogQuery,
    /// The query as the operator wrote it, for the log.
    pub query_text: String,
    /// Inclusive range, Unix epoch ns.
    pub start_ns: i64,
    pub end_ns: i64,
    /// Confine to one team (`None` = all).
    pub team: Option<String>,
    /// Who asked: token name, or the operator of an offline run.
    pub operator: String,
    /// Count only; change nothing and log nothing.
    pub dry_run: bool,
}

/// What an erasure did (or, for a dry run, would do).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EraseReport {
    /// Lines removed.
    pub lines: u64,
    /// Chunks rewritten or deleted.
    pub chunks: u64,
    /// Row id in the erasure log (`None` for a dry run).
    pub log_id: Option<i64>,
}

/// One row of the erasure log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErasureRecord {
    pub id: i64,
    pub at_ns: i64,
    pub operator: String,
    pub query: String,
    pub start_ns: i64,
    pub end_ns: i64,
    pub lines: u64,
    pub chunks: u64,
}

/// The columns [`erasure_from_row`] reads, in its order.
pub(super) const ERASURE_COLUMNS: &str =
    "id, at_ns, operator, query, start_ns, end_ns, lines, chunks";

/// Reads an erasure log row selected with [`ERASURE_COLUMNS`].
pub(super) fn erasure_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ErasureRecord> {
    Ok(ErasureRecord {
        id: r.get(0)?,
        at_ns: r.get(1)?,
        operator: r.get(2)?,
        query: r.get(3)?,
        start_ns: r.get(4)?,
        end_ns: r.get(5)?,
        lines: r.get::<_, i64>(6)?.max(0) as u64,
        chunks: r.get::<_, i64>(7)?.max(0) as u64,
    })
}

impl Store {
    /// Erases the matching lines; see the module docs.
    pub fn erase(&self, e: &Erasure, now_ns: i64) -> Result<EraseReport, StoreError> {
        // A filter that only excludes (`!= "zzzz"`), or one that any line passes (`|= ""`,
        // `|~ ".*"`), would erase whole streams: at least one filter must select.
        // Parsers and formats are not part of an erasure: what it removes must be exactly
        // the entries the selector and filters name, as stored.
        if !e.query.filters_only() {
            return Err(StoreError::Refused(
                "an erasure takes a stream selector, line filters (|=, !=, |~, !~) and label filters (name=\"value\") only"
                    .into(),
            ));
        }
        if !e.query.filters.iter().any(LineFilter::selects) && !e.query.label_filter_selects() {
            return Err(StoreError::Refused(
                "an erasure needs at least one filter that selects entries (|= \"...\", |~ \"...\" or a label filter such as trace_id=\"...\", not matching every entry); to drop whole streams use retention".into(),
            ));
        }
        let report = match &self.db {
            super::Db::Sqlite(db) => {
                let report = db.erase(|tx| erase_on(tx, e, now_ns))?;
                // Old page images of the rewritten chunks may sit in the WAL until it is
                // truncated.
                self.checkpoint()?;
                report
            }
            super::Db::Postgres(db) => db.erase(|tx| erase_on(tx, e, now_ns))?,
        };
        Ok(report)
    }

    /// The erasure log, newest first.
    pub fn erasures(&self) -> Result<Vec<ErasureRecord>, StoreError> {
        let mut log = self
            .evidence()
            .and_then(|e| e.erasures(i64::MIN, i64::MAX))
            .map_err(|e| StoreError::Refused(format!("the erasure log: {e}")))?;
        log.reverse();
        Ok(log)
    }
}

/// The erasure, over one write transaction of either backend.
fn erase_on(tx: &mut dyn EraseTx, e: &Erasure, now_ns: i64) -> Result<EraseReport, StoreError> {
    let filtered = e.query.has_pipeline();
    let mut state = fjord_logql::EntryState::default();
    let mut report = EraseReport::default();
    let mut streams = Vec::new();
    for (id, json) in tx.streams(e.team.as_deref())? {
        let labels = parse_labels(&json)?;
        if e.query.matches_stream(&labels) {
            streams.push((id, json, labels));
        }
    }
    let span = Span::new(e.start_ns, e.end_ns);
    // Per batch sequence: lines erased and their digest.
    let mut removed: BTreeMap<i64, (u64, EntryDigest)> = BTreeMap::new();
    for (sid, labels, parsed) in &streams {
        for c in tx.chunks(*sid, span)? {
            let Some((data, chunk_seq, day)) = tx.chunk(c.id)? else {
                continue;
            };
            // (batch seq, ts, line, stored metadata)
            let mut keep: Vec<(i64, i64, String, Vec<u8>)> = Vec::new();
            let mut gone: Vec<(i64, i64, EntryDigest)> = Vec::new();
            chunk::decode_each(&data, chunk_seq, |r| {
                let hit = r.ts >= e.start_ns
                    && r.ts <= e.end_ns
                    && e.query.keep_line(r.line)
                    && (!filtered
                        || e.query.process_meta(
                            &mut state,
                            parsed,
                            &r.meta.iter().collect::<Vec<_>>(),
                            r.ts,
                            r.line,
                        ));
                if hit {
                    let d = EntryDigest::of_entry(labels, r.ts, r.line, &r.meta);
                    gone.push((r.seq, r.ts, d));
                } else {
                    keep.push((r.seq, r.ts, r.line.to_owned(), r.meta.bytes().to_vec()));
                }
            })?;
            if gone.is_empty() {
                continue;
            }
            for (seq, _, d) in &gone {
                let slot = removed.entry(*seq).or_default();
                slot.0 += 1;
                slot.1.add(d);
            }
            report.lines += gone.len() as u64;
            report.chunks += 1;
            if e.dry_run {
                continue;
            }
            // An erased line leaves no trace, its dedup key (a hash of it) included; the
            // same line pushed again is stored again.
            for (_, ts, d) in &gone {
                tx.forget_key(*sid, *ts, d.dedup_key())?;
            }
            if keep.is_empty() {
                tx.delete_chunk(c.id, day)?;
            } else {
                let rewritten = chunk::Encoder::stored()?.encode_tagged(
                    keep.iter()
                        .map(|(s, t, l, m)| (*s, *t, l.as_str(), chunk::Meta::stored(m))),
                )?;
                tx.update_chunk(c.id, day, &rewritten)?;
            }
        }
    }
    if e.dry_run {
        return Ok(report);
    }
    let mut record = ErasureRecord {
        id: 0,
        at_ns: now_ns,
        operator: e.operator.clone(),
        query: e.query_text.clone(),
        start_ns: e.start_ns,
        end_ns: e.end_ns,
        lines: report.lines,
        chunks: report.chunks,
    };
    let log_id = tx.insert_erasure(&record)?;
    record.id = log_id;
    report.log_id = Some(log_id);
    let mut links = vec![chain::erasure_link(&record)];
    for (seq, (lines, digest)) in &removed {
        let digest = digest.to_string();
        let id = tx.insert_erasure_removal(now_ns, log_id, &e.operator, *seq, *lines, &digest)?;
        links.push(chain::removal_link(&chain::RemovalRecord {
            id,
            at_ns: now_ns,
            kind: "erasure",
            erasure_id: Some(log_id),
            operator: &e.operator,
            seq: *seq,
            lines: *lines as i64,
            digest: &digest,
        }));
    }
    chain::append(tx, &links)?;
    Ok(report)
}
