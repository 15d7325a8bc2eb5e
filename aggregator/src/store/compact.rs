//! The compactor: merges a stream's small chunks of one UTC day into chunks of about
//! [`chunk::TARGET_CHUNK_RAW_BYTES`], sorted by time, so that small batches do not leave many
//! tiny zstd blocks (poor compression, slow scans).
//!
//! Invariants: lines are neither lost nor duplicated (each merge replaces its inputs in one
//! transaction); a merged chunk takes the largest `seq` of its inputs; only chunks of batches
//! received at least `min_age` ago are merged, so a live tail, which is at most a poll
//! interval behind, has already passed them; memory is bounded by one merged chunk; every
//! line keeps its own batch sequence (chunk format 2), so the audit can still attribute it.

use std::time::Duration;

use rusqlite::{params, TransactionBehavior};

use super::sqlite::insert_chunk;
use super::{chunk, Store, StoreError};

/// Chunks under this many raw bytes are candidates for merging.
pub(crate) const SMALL_CHUNK_RAW_BYTES: usize = chunk::TARGET_CHUNK_RAW_BYTES / 2;

/// Most (stream, day) groups merged per pass, so one pass holds the writer briefly.
pub(crate) const MAX_GROUPS_PER_PASS: usize = 64;

/// What one compaction pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CompactReport {
    /// (stream, day) groups merged.
    pub groups: usize,
    /// Chunks replaced.
    pub chunks_in: usize,
    /// Chunks written.
    pub chunks_out: usize,
}

impl Store {
    /// Runs one compaction pass over chunks of batches received before `now_ns - min_age`.
    pub fn compact(&self, min_age: Duration, now_ns: i64) -> Result<CompactReport, StoreError> {
        let cutoff = now_ns.saturating_sub(i64::try_from(min_age.as_nanos()).unwrap_or(i64::MAX));
        let mut report = CompactReport::default();
        let db = match &self.db {
            super::Db::Sqlite(db) => db,
            super::Db::Postgres(db) => return db.compact(cutoff),
        };
        let mut w = db.writer.lock().map_err(|_| StoreError::Poisoned)?;
        let tx = w.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let max_seq: i64 = tx.query_row(
            "SELECT COALESCE(MAX(id), 0) FROM receipts WHERE received_ns <= ?1",
            [cutoff],
            |r| r.get(0),
        )?;
        let groups: Vec<(i64, i64)> = tx
            .prepare(
                "SELECT stream_id, day FROM chunks WHERE raw_bytes < ?1 AND seq <= ?2
                 GROUP BY stream_id, day HAVING COUNT(*) > 1 LIMIT ?3",
            )?
            .query_map(
                params![
                    SMALL_CHUNK_RAW_BYTES as i64,
                    max_seq,
                    MAX_GROUPS_PER_PASS as i64
                ],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?
            .collect::<Result<_, _>>()?;
        for (sid, day) in groups {
            // Small chunks of the group in time order, cut into runs of at most the target.
            let small: Vec<(i64, usize)> = tx
                .prepare_cached(
                    "SELECT id, raw_bytes FROM chunks
                     WHERE stream_id = ?1 AND day = ?2 AND raw_bytes < ?3 AND seq <= ?4
                     ORDER BY min_ts, id",
                )?
                .query_map(
                    params![sid, day, SMALL_CHUNK_RAW_BYTES as i64, max_seq],
                    |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as usize)),
                )?
                .collect::<Result<_, _>>()?;
            let mut merged_any = false;
            for run in runs(small) {
                merge_run(&tx, sid, day, &run)?;
                report.chunks_in += run.len();
                report.chunks_out += 1;
                merged_any = true;
            }
            if merged_any {
                report.groups += 1;
            }
        }
        tx.commit()?;
        Ok(report)
    }
}

/// Consecutive runs (in time order) of small chunks `(id, raw bytes)` that together stay
/// within a chunk's target size; only runs of two or more are worth merging.
pub(crate) fn runs(small: Vec<(i64, usize)>) -> Vec<Vec<i64>> {
    let mut runs: Vec<Vec<i64>> = vec![Vec::new()];
    let mut run_bytes = 0usize;
    for (id, raw) in small {
        if run_bytes + raw > chunk::TARGET_CHUNK_RAW_BYTES && !runs[runs.len() - 1].is_empty() {
            runs.push(Vec::new());
            run_bytes = 0;
        }
        run_bytes += raw;
        let last = runs.len() - 1;
        runs[last].push(id);
    }
    runs.retain(|r| r.len() > 1);
    runs
}

/// Replaces the chunks `ids` of stream `sid` and `day` with one chunk of their lines.
fn merge_run(
    tx: &rusqlite::Transaction<'_>,
    sid: i64,
    day: i64,
    ids: &[i64],
) -> Result<(), StoreError> {
    let mut parts = Vec::with_capacity(ids.len());
    {
        let mut get = tx.prepare_cached("SELECT data, seq FROM chunks WHERE id = ?1")?;
        for id in ids {
            parts.push(get.query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))?);
        }
    }
    let (c, seq) = merge(&parts)?;
    // The merged chunk takes the live tail's position of its newest part, (seq, id): a tail
    // that has passed every part has passed it too.
    let keep_id = ids
        .iter()
        .zip(&parts)
        .map(|(id, (_, s))| (*s, *id))
        .max()
        .map_or(0, |(_, id)| id);
    let mut del = tx.prepare_cached("DELETE FROM chunks WHERE id = ?1")?;
    for id in ids {
        del.execute([id])?;
    }
    insert_chunk(tx, Some(keep_id), sid, seq, day, &c)
}

/// One chunk of the lines of `parts` (stored bytes and row `seq` each), sorted by time
/// (equal timestamps keep their order), every line keeping its batch sequence and metadata;
/// and the newest `seq` of the parts, which the merged chunk carries.
pub(crate) fn merge(parts: &[(Vec<u8>, i64)]) -> Result<(chunk::EncodedChunk, i64), StoreError> {
    // (ts, batch seq, line, stored metadata)
    let mut entries: Vec<(i64, i64, String, Vec<u8>)> = Vec::new();
    let mut seq = 0i64;
    let mut dec = chunk::Decoder::new()?;
    for (data, s) in parts {
        seq = seq.max(*s);
        dec.decode_each(data, *s, |r| {
            entries.push((r.ts, r.seq, r.line.to_owned(), r.meta.bytes().to_vec()))
        })?;
    }
    // Stable: equal timestamps keep their arrival order.
    entries.sort_by_key(|e| e.0);
    let c = chunk::Encoder::stored()?.encode_tagged(
        entries
            .iter()
            .map(|(t, s, l, m)| (*s, *t, l.as_str(), chunk::Meta::stored(m))),
    )?;
    Ok((c, seq))
}
