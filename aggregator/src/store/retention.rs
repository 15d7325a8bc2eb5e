//! Retention: deletes chunks whose newest line is older than the team's retention, then hands
//! the freed pages back to the file system.
//!
//! Invariants: a chunk is deleted whole and only when every line in it has expired (chunks are
//! one UTC day, so at most a day's lines outlive their retention); receipts and the erasure log
//! are kept (they hold no log content); deletes run in bounded transactions so the server's
//! ingest is never blocked for long; freed pages are zeroed (`secure_delete`); the expired
//! lines' count and entry digest are recorded per batch in `removals` in the same
//! transaction, so `audit verify` reports them as expired rather than missing.

use std::collections::BTreeMap;

use rusqlite::{params, TransactionBehavior};

use super::{chain, chunk, day_of, EntryDigest, Store, StoreError, StreamHasher, NS_PER_DAY};
use crate::config::RetentionPolicy;

/// Most chunks deleted per transaction.
const DELETE_BATCH: i64 = 2_000;

/// What one retention pass deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// Per team: (team, days kept, chunks deleted, lines deleted).
    pub teams: Vec<(String, u32, u64, u64)>,
    pub reclaim: ReclaimReport,
}

/// Pages before and after handing free pages back, and the file size after.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReclaimReport {
    pub pages_before: i64,
    pub pages_after: i64,
    pub file_bytes: u64,
}

/// Lines and entry digest per batch sequence of expired chunks, as `removals` records them.
#[derive(Default)]
pub(crate) struct Removed {
    pub by_batch: BTreeMap<i64, (i64, EntryDigest)>,
    dec: Option<chunk::Decoder>,
}

impl Removed {
    /// Adds the lines of chunk `id` (row `seq` `chunk_seq`) of the stream with canonical
    /// labels JSON `labels`. A corrupt chunk still expires; its lines go unrecorded, so
    /// `audit verify` keeps flagging its batch, which is the truth.
    pub fn add_chunk(
        &mut self,
        id: i64,
        chunk_seq: i64,
        labels: &str,
        data: &[u8],
    ) -> Result<(), StoreError> {
        let dec = match &mut self.dec {
            Some(d) => d,
            None => self.dec.insert(chunk::Decoder::new()?),
        };
        let hasher = StreamHasher::new(labels);
        let by_batch = &mut self.by_batch;
        let walked = dec.load(data).map(|_| ()).and_then(|()| {
            dec.each(chunk_seq, |r| {
                let slot = by_batch.entry(r.seq).or_default();
                slot.0 += 1;
                slot.1.add(&hasher.entry(r.ts, r.line, &r.meta));
            })
        });
        if let Err(err) = walked {
            tracing::warn!(chunk = id, %err, "expiring a corrupt chunk");
        }
        Ok(())
    }
}

impl Store {
    /// Applies `policy` as of `now_ns` and reclaims the space.
    pub fn apply_retention(
        &self,
        policy: &RetentionPolicy,
        now_ns: i64,
    ) -> Result<RetentionReport, StoreError> {
        let db = match &self.db {
            super::Db::Sqlite(db) => db,
            super::Db::Postgres(db) => return db.apply_retention(policy, now_ns),
        };
        let teams: Vec<String> = {
            let conn = db.reader()?;
            let t = conn
                .prepare("SELECT DISTINCT team FROM streams ORDER BY team")?
                .query_map([], |r| r.get(0))?
                .collect::<Result<_, _>>();
            db.give_back(conn);
            t?
        };
        let mut report = RetentionReport::default();
        for team in teams {
            let days = policy.days_for(&team);
            if days == 0 {
                report.teams.push((team, 0, 0, 0));
                continue;
            }
            let cutoff = now_ns.saturating_sub(i64::from(days).saturating_mul(NS_PER_DAY));
            let (mut chunks, mut lines) = (0u64, 0u64);
            loop {
                let mut w = db.writer.lock().map_err(|_| StoreError::Poisoned)?;
                let tx = w.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let victims: Vec<(i64, i64, i64, String, Vec<u8>)> = tx
                    .prepare_cached(
                        "SELECT c.id, c.seq, c.lines, s.labels, c.data
                         FROM chunks c JOIN streams s ON s.id = c.stream_id
                         WHERE s.team = ?1 AND c.max_ts < ?2 LIMIT ?3",
                    )?
                    .query_map(params![team, cutoff, DELETE_BATCH], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                    })?
                    .collect::<Result<_, _>>()?;
                let n = victims.len() as i64;
                if n == 0 {
                    break;
                }
                let l: i64 = victims.iter().map(|v| v.2).sum();
                let mut removed = Removed::default();
                {
                    let mut del = tx.prepare_cached("DELETE FROM chunks WHERE id = ?1")?;
                    for (id, chunk_seq, _, labels, data) in &victims {
                        removed.add_chunk(*id, *chunk_seq, labels, data)?;
                        del.execute([id])?;
                    }
                    let mut ins = tx.prepare_cached(
                        "INSERT INTO removals (at_ns, kind, operator, seq, lines, digest)
                         VALUES (?1, 'retention', ?2, ?3, ?4, ?5)",
                    )?;
                    let who = format!("retention ({days} d)");
                    let mut links = Vec::with_capacity(removed.by_batch.len());
                    for (seq, (lines, digest)) in &removed.by_batch {
                        let digest = digest.to_string();
                        ins.execute(params![now_ns, who, seq, lines, digest])?;
                        links.push(chain::removal_link(&chain::RemovalRecord {
                            id: tx.last_insert_rowid(),
                            at_ns: now_ns,
                            kind: "retention",
                            erasure_id: None,
                            operator: &who,
                            seq: *seq,
                            lines: *lines,
                            digest: &digest,
                        }));
                    }
                    super::sqlite::append_chain(&tx, &links)?;
                }
                tx.commit()?;
                chunks += n as u64;
                lines += l as u64;
            }
            if chunks > 0 {
                tracing::info!(%team, days, chunks, lines, "retention deleted expired chunks");
            }
            // The dedup keys of whole expired days: a chunk holds one UTC day, so every chunk
            // of a day before the cutoff's day is gone, and a chunk of the cutoff's own day
            // may still hold lines whose keys must stay.
            {
                let w = db.writer.lock().map_err(|_| StoreError::Poisoned)?;
                w.prepare_cached(
                    "DELETE FROM entry_keys WHERE ts < ?2
                         AND stream_id IN (SELECT id FROM streams WHERE team = ?1)",
                )?
                .execute(params![team, day_of(cutoff).saturating_mul(NS_PER_DAY)])?;
            }
            report.teams.push((team, days, chunks, lines));
        }
        report.reclaim = self.reclaim()?;
        Ok(report)
    }

    /// Hands free pages back to the file system: `incremental_vacuum` when the database was
    /// created with incremental auto-vacuum, else a full `VACUUM`; then truncates the WAL.
    pub fn reclaim(&self) -> Result<ReclaimReport, StoreError> {
        let db = self.sqlite("reclaiming space")?;
        let w = db.writer.lock().map_err(|_| StoreError::Poisoned)?;
        let pages_before: i64 = w.query_row("PRAGMA page_count", [], |r| r.get(0))?;
        let mode: i64 = w.query_row("PRAGMA auto_vacuum", [], |r| r.get(0))?;
        if mode == 2 {
            // Returns a row per freed page; step through them all.
            let mut stmt = w.prepare("PRAGMA incremental_vacuum")?;
            let mut rows = stmt.query([])?;
            while rows.next()?.is_some() {}
        } else {
            w.execute_batch("VACUUM")?;
        }
        let pages_after: i64 = w.query_row("PRAGMA page_count", [], |r| r.get(0))?;
        w.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        let file_bytes = std::fs::metadata(&db.path).map_or(0, |m| m.len());
        Ok(ReclaimReport {
            pages_before,
            pages_after,
            file_bytes,
        })
    }
}
