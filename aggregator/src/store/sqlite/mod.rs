//! The SQLite backend, the embedded default: one database file (WAL) in the data directory.
//!
//! One writer connection behind a mutex serialises writes (SQLite allows one writer anyway);
//! reads use a small pool of connections, which WAL lets run concurrently with the writer.
//! Another process (the offline `retention run` and `erase --data`) may open the same file:
//! SQLite's locks and `busy_timeout` serialise it with the server. The writer runs with
//! `secure_delete`, so erased and expired lines are overwritten on disk.

pub(crate) mod schema;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::backend::{
    ChunkSpan, DetailRow, EraseTx, IngestTx, Reader, ReceiptRow, ReceiptTotals, SeenBatch, Span,
    StoredTotals,
};
use super::chain::{self, ChainTx, LedgerRow, Link, SignTx, StoredLink};
use super::chunk::EncodedChunk;
use super::{ErasureRecord, IndexCounts, StoreError, TailCursor};
use crate::keys::{Root, Signer};

pub use schema::SCHEMA_VERSION;

/// File name of the database inside the data directory.
pub const DB_FILE: &str = "fjord.db";

/// How long a connection waits for a lock before giving up.
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Most idle read connections kept open.
const MAX_IDLE_READERS: usize = 8;

/// Largest WAL file kept after a checkpoint; SQLite truncates it back to this.
const JOURNAL_SIZE_LIMIT_BYTES: i64 = 64 * 1024 * 1024;

/// The streams of one team, through the `streams_team` index.
pub(crate) const SELECT_TEAM_STREAMS: &str =
    "SELECT id, labels FROM streams WHERE team = ?1 ORDER BY id";

/// The SQLite database of a data directory.
pub struct SqliteDb {
    pub(crate) path: PathBuf,
    /// The single writer.
    pub(crate) writer: Mutex<Connection>,
    /// Idle read connections, at most `MAX_IDLE_READERS`.
    readers: Mutex<Vec<Connection>>,
}

pub(crate) fn open_conn(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    schema::prepare_new(&conn)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "journal_size_limit", JOURNAL_SIZE_LIMIT_BYTES)?;
    Ok(conn)
}

impl SqliteDb {
    /// Opens (creating if needed) the database in `data_dir` and applies pending migrations.
    pub fn open(data_dir: &Path) -> Result<SqliteDb, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|source| StoreError::Io {
            path: data_dir.to_owned(),
            source,
        })?;
        let path = data_dir.join(DB_FILE);
        let mut conn = open_conn(&path)?;
        schema::migrate(&mut conn)?;
        ensure_genesis(&mut conn)?;
        conn.pragma_update(None, "secure_delete", "ON")?;
        Ok(SqliteDb {
            path,
            writer: Mutex::new(conn),
            readers: Mutex::new(Vec::new()),
        })
    }

    pub(crate) fn reader(&self) -> Result<Connection, StoreError> {
        let pooled = self.readers.lock().map_err(|_| StoreError::Poisoned)?.pop();
        match pooled {
            Some(c) => Ok(c),
            None => open_conn(&self.path),
        }
    }

    pub(crate) fn give_back(&self, conn: Connection) {
        if let Ok(mut pool) = self.readers.lock() {
            if pool.len() < MAX_IDLE_READERS {
                pool.push(conn);
            }
        }
    }

    /// Runs `f` on a read connection, in one read transaction (one snapshot).
    pub fn read<R>(
        &self,
        f: impl FnOnce(&mut dyn Reader) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let mut conn = self.reader()?;
        let result = (|| {
            let tx = conn.transaction()?;
            let r = f(&mut Read(&tx))?;
            tx.commit()?;
            Ok(r)
        })();
        self.give_back(conn);
        result
    }

    /// Runs `f` in an immediate write transaction, committed when `f` returns `Ok`.
    pub fn ingest<R>(
        &self,
        f: impl FnOnce(&mut dyn IngestTx) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let mut w = self.writer.lock().map_err(|_| StoreError::Poisoned)?;
        let tx = w.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let r = f(&mut Write(&tx))?;
        tx.commit()?;
        Ok(r)
    }

    /// Signs the audit chain's head unless it is signed already.
    pub fn sign_chain(&self, signer: &Signer, now_ns: i64) -> Result<Option<Root>, StoreError> {
        let mut w = self.writer.lock().map_err(|_| StoreError::Poisoned)?;
        let tx = w.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let root = chain::sign_head(&mut Write(&tx), signer, now_ns)?;
        tx.commit()?;
        Ok(root)
    }

    /// Runs `f` in an immediate write transaction, committed when `f` returns `Ok`.
    pub fn erase<R>(
        &self,
        f: impl FnOnce(&mut dyn EraseTx) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let mut w = self.writer.lock().map_err(|_| StoreError::Poisoned)?;
        let tx = w.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let r = f(&mut Write(&tx))?;
        tx.commit()?;
        Ok(r)
    }

    /// Streams (id, labels JSON) of `team` (all when `None`), on `conn`.
    pub(crate) fn streams_on(
        conn: &Connection,
        team: Option<&str>,
    ) -> Result<Vec<(i64, String)>, StoreError> {
        // Two statements rather than `?1 IS NULL OR team = ?1`, which SQLite cannot answer
        // from the `streams_team` index: a team's query reads only its own streams.
        let mut stmt = match team {
            Some(_) => conn.prepare_cached(SELECT_TEAM_STREAMS)?,
            None => conn.prepare_cached("SELECT id, labels FROM streams ORDER BY id")?,
        };
        let row = |r: &rusqlite::Row<'_>| Ok((r.get(0)?, r.get(1)?));
        let rows = match team {
            Some(t) => stmt.query_map([t], row)?.collect::<Result<_, _>>(),
            None => stmt.query_map([], row)?.collect::<Result<_, _>>(),
        };
        Ok(rows?)
    }
}

fn count(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// [`Reader`] over a read transaction.
struct Read<'c>(&'c Connection);

impl Reader for Read<'_> {
    fn streams(&mut self, team: Option<&str>) -> Result<Vec<(i64, String)>, StoreError> {
        SqliteDb::streams_on(self.0, team)
    }

    fn stream(&mut self, id: i64) -> Result<Option<(String, String)>, StoreError> {
        Ok(self
            .0
            .prepare_cached("SELECT team, labels FROM streams WHERE id = ?1")?
            .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?)
    }

    fn chunks(&mut self, sid: i64, span: Span) -> Result<Vec<ChunkSpan>, StoreError> {
        let mut stmt = self.0.prepare_cached(
            "SELECT id, min_ts, max_ts FROM chunks
             WHERE stream_id = ?1 AND day BETWEEN ?4 AND ?5 AND max_ts >= ?2 AND min_ts <= ?3
             ORDER BY min_ts, id",
        )?;
        let rows = stmt.query_map(
            params![
                sid,
                span.start_ns,
                span.end_ns,
                span.first_day,
                span.last_day
            ],
            |r| {
                Ok(ChunkSpan {
                    id: r.get(0)?,
                    min_ts: r.get(1)?,
                    max_ts: r.get(2)?,
                })
            },
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn chunk_data(&mut self, id: i64) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .0
            .prepare_cached("SELECT data FROM chunks WHERE id = ?1")?
            .query_row([id], |r| r.get(0))
            .optional()?)
    }

    fn chunk_counts(&mut self, sid: i64, span: Span) -> Result<IndexCounts, StoreError> {
        Ok(self
            .0
            .prepare_cached(
                "SELECT COUNT(*), COALESCE(SUM(lines), 0), COALESCE(SUM(raw_bytes), 0) FROM chunks
                 WHERE stream_id = ?1 AND day BETWEEN ?4 AND ?5 AND max_ts >= ?2 AND min_ts <= ?3",
            )?
            .query_row(
                params![
                    sid,
                    span.start_ns,
                    span.end_ns,
                    span.first_day,
                    span.last_day
                ],
                |r| {
                    Ok(IndexCounts {
                        chunks: count(r.get(0)?),
                        entries: count(r.get(1)?),
                        bytes: count(r.get(2)?),
                    })
                },
            )?)
    }

    fn streams_with_chunks(
        &mut self,
        team: Option<&str>,
        span: Span,
    ) -> Result<Vec<String>, StoreError> {
        // As in `streams`: `team = ?1` alone, so the team index is used.
        let mut stmt = self.0.prepare_cached(if team.is_some() {
            "SELECT s.labels FROM streams s
             WHERE s.team = ?1
               AND EXISTS (SELECT 1 FROM chunks c WHERE c.stream_id = s.id
                           AND c.day BETWEEN ?4 AND ?5
                           AND c.max_ts >= ?2 AND c.min_ts <= ?3)
             ORDER BY s.id"
        } else {
            "SELECT s.labels FROM streams s
             WHERE ?1 IS NULL
               AND EXISTS (SELECT 1 FROM chunks c WHERE c.stream_id = s.id
                           AND c.day BETWEEN ?4 AND ?5
                           AND c.max_ts >= ?2 AND c.min_ts <= ?3)
             ORDER BY s.id"
        })?;
        let rows = stmt.query_map(
            params![
                team,
                span.start_ns,
                span.end_ns,
                span.first_day,
                span.last_day
            ],
            |r| r.get(0),
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn receipt_totals(&mut self) -> Result<Vec<ReceiptTotals>, StoreError> {
        let mut stmt = self.0.prepare_cached(
            "SELECT team, COUNT(*), COALESCE(SUM(records),0), COALESCE(SUM(raw_bytes),0)
             FROM receipts GROUP BY team",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get(0)?,
                count(r.get(1)?),
                count(r.get(2)?),
                count(r.get(3)?),
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn stored_totals(&mut self) -> Result<Vec<StoredTotals>, StoreError> {
        let mut stmt = self.0.prepare_cached(
            "SELECT s.team, COUNT(DISTINCT s.id), COALESCE(SUM(c.lines),0),
                    COALESCE(SUM(c.raw_bytes),0), COALESCE(SUM(length(c.data)),0)
             FROM streams s LEFT JOIN chunks c ON c.stream_id = s.id GROUP BY s.team",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get(0)?,
                count(r.get(1)?),
                count(r.get(2)?),
                count(r.get(3)?),
                count(r.get(4)?),
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn detail(&mut self, team: Option<&str>) -> Result<Vec<DetailRow>, StoreError> {
        let mut stmt = self.0.prepare_cached(
            "SELECT s.team, s.labels, c.day, COUNT(*), SUM(c.lines), SUM(c.raw_bytes),
                    SUM(length(c.data))
             FROM chunks c JOIN streams s ON s.id = c.stream_id
             WHERE ?1 IS NULL OR s.team = ?1
             GROUP BY c.stream_id, c.day ORDER BY s.team, c.stream_id, c.day",
        )?;
        let rows = stmt.query_map([team], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                count(r.get(3)?),
                count(r.get(4)?),
                count(r.get(5)?),
                count(r.get(6)?),
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn ping(&mut self) -> Result<(), StoreError> {
        self.0
            .query_row("SELECT COUNT(*) FROM streams WHERE id < 0", [], |r| {
                r.get::<_, i64>(0)
            })?;
        Ok(())
    }

    fn tail_position(&mut self) -> Result<TailCursor, StoreError> {
        Ok(self
            .0
            .query_row(
                "SELECT seq, id FROM chunks ORDER BY seq DESC, id DESC LIMIT 1",
                [],
                |r| {
                    Ok(TailCursor {
                        seq: r.get(0)?,
                        id: r.get(1)?,
                    })
                },
            )
            .optional()?
            .unwrap_or_default())
    }

    fn chunks_after(
        &mut self,
        after: TailCursor,
        limit: usize,
    ) -> Result<Vec<(TailCursor, i64)>, StoreError> {
        // One writer commits batches in `seq` order, so a chunk with a smaller `(seq, id)`
        // never commits after this read.
        let mut stmt = self.0.prepare_cached(
            "SELECT seq, id, stream_id FROM chunks WHERE (seq, id) > (?1, ?2)
             ORDER BY seq, id LIMIT ?3",
        )?;
        let rows = stmt.query_map(params![after.seq, after.id, limit as i64], |r| {
            Ok((
                TailCursor {
                    seq: r.get(0)?,
                    id: r.get(1)?,
                },
                r.get(2)?,
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// [`IngestTx`] over the writer's immediate transaction.
struct Write<'c>(&'c Connection);

impl IngestTx for Write<'_> {
    fn seen(&mut self, team: &str, batch_id: &str) -> Result<Option<SeenBatch>, StoreError> {
        // Ids are scoped by team: another team's id is no concern of this push.
        Ok(self
            .0
            .prepare_cached(
                "SELECT entries_digest, payload_sha256 FROM receipts
                 WHERE team = ?1 AND batch_id = ?2",
            )?
            .query_row([team, batch_id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?)
    }

    fn insert_receipt(&mut self, r: &ReceiptRow<'_>) -> Result<Option<i64>, StoreError> {
        // The writer lock serialises ingests, so `seen` above had the last word.
        self.0
            .prepare_cached(
                "INSERT INTO receipts (batch_id, agent, team, received_ns, records, raw_bytes,
                                       payload_sha256, rules_version, redactions, entries_digest)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )?
            .execute(params![
                r.batch_id,
                r.agent,
                r.team,
                r.received_ns,
                r.records,
                r.raw_bytes,
                r.payload_sha256,
                r.rules_version,
                r.redactions,
                r.entries_digest
            ])?;
        Ok(Some(self.0.last_insert_rowid()))
    }

    fn team_streams(&mut self, team: &str) -> Result<usize, StoreError> {
        let n: i64 = self
            .0
            .prepare_cached("SELECT COUNT(*) FROM streams WHERE team = ?1")?
            .query_row([team], |r| r.get(0))?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    fn find_stream(&mut self, key: &str) -> Result<Option<i64>, StoreError> {
        Ok(self
            .0
            .prepare_cached("SELECT id FROM streams WHERE labels = ?1")?
            .query_row([key], |r| r.get(0))
            .optional()?)
    }

    fn insert_stream(&mut self, team: &str, key: &str, now_ns: i64) -> Result<i64, StoreError> {
        Ok(self
            .0
            .prepare_cached(
                "INSERT INTO streams (team, labels, created_ns) VALUES (?1, ?2, ?3) RETURNING id",
            )?
            .query_row(params![team, key, now_ns], |r| r.get(0))?)
    }

    fn add_entry_key(&mut self, sid: i64, ts: i64, key: i64) -> Result<bool, StoreError> {
        Ok(self
            .0
            .prepare_cached(
                "INSERT OR IGNORE INTO entry_keys (stream_id, ts, h) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![sid, ts, key])?
            == 1)
    }

    fn insert_chunk(
        &mut self,
        sid: i64,
        seq: i64,
        day: i64,
        c: &EncodedChunk,
    ) -> Result<(), StoreError> {
        insert_chunk(self.0, None, sid, seq, day, c)
    }

    fn last_ledger_seq(&mut self, team: &str, agent: &str) -> Result<Option<i64>, StoreError> {
        Ok(self
            .0
            .prepare_cached("SELECT max(seq) FROM agent_ledger WHERE team = ?1 AND agent = ?2")?
            .query_row([team, agent], |r| r.get(0))?)
    }

    fn insert_ledger_row(&mut self, r: &LedgerRow<'_>) -> Result<Option<i64>, StoreError> {
        // The writer lock serialises ingests: `last_ledger_seq` had the last word.
        self.0
            .prepare_cached(
                "INSERT INTO agent_ledger (team, agent, seq, received_ns, batch_id, sent_ns,
                                           outcome, record)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                r.team,
                r.agent,
                r.seq,
                r.received_ns,
                r.batch_id,
                r.sent_ns,
                r.outcome,
                r.record
            ])?;
        Ok(Some(self.0.last_insert_rowid()))
    }

    fn insert_duplicates(
        &mut self,
        at_ns: i64,
        seq: i64,
        lines: u64,
        digest: &str,
    ) -> Result<i64, StoreError> {
        self.0
            .prepare_cached(
                "INSERT INTO removals (at_ns, kind, operator, seq, lines, digest)
                 VALUES (?1, 'duplicate', ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                at_ns,
                chain::DEDUP_OPERATOR,
                seq,
                lines as i64,
                digest
            ])?;
        Ok(self.0.last_insert_rowid())
    }
}

impl ChainTx for Write<'_> {
    fn chain_head(&mut self) -> Result<Option<(i64, [u8; 32])>, StoreError> {
        // The writer's immediate transaction is the chain's lock.
        let row = self
            .0
            .prepare_cached("SELECT pos, hash FROM chain ORDER BY pos DESC LIMIT 1")?
            .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        chain::head_of(row)
    }

    fn insert_link(&mut self, l: &StoredLink) -> Result<(), StoreError> {
        self.0
            .prepare_cached(
                "INSERT INTO chain (pos, kind, ref_id, at_ns, body, prev, hash)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                l.pos, l.kind, l.ref_id, l.at_ns, l.body, l.prev, l.hash
            ])?;
        Ok(())
    }
}

impl SignTx for Write<'_> {
    fn last_root(&mut self) -> Result<Option<i64>, StoreError> {
        Ok(self
            .0
            .prepare_cached("SELECT max(pos) FROM chain_roots")?
            .query_row([], |r| r.get(0))?)
    }

    fn insert_root(&mut self, r: &Root) -> Result<(), StoreError> {
        self.0
            .prepare_cached(
                "INSERT INTO chain_roots (pos, hash, signed_ns, key_id, signature)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![r.pos, r.hash, r.signed_ns, r.key_id, r.signature])?;
        Ok(())
    }
}

/// Appends `links` to the audit chain in the writer's open transaction `conn`.
pub(crate) fn append_chain(conn: &Connection, links: &[Link]) -> Result<(), StoreError> {
    chain::append(&mut Write(conn), links)
}

/// The genesis link, unless the chain has begun: the last id of each covered table.
fn ensure_genesis(conn: &mut Connection) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut w = Write(&tx);
    if w.chain_head()?.is_none() {
        let max = |table: &str| -> Result<i64, StoreError> {
            Ok(tx.query_row(
                &format!("SELECT coalesce(max(id), 0) FROM {table}"),
                [],
                |r| r.get(0),
            )?)
        };
        let g = chain::Genesis {
            receipts_before: max("receipts")?,
            removals_before: max("removals")?,
            erasures_before: max("erasures")?,
        };
        chain::append(&mut w, &[chain::genesis_link(&g, super::Store::now_ns())])?;
    }
    tx.commit()?;
    Ok(())
}

/// Inserts one encoded chunk of stream `sid`.
pub(crate) fn insert_chunk(
    conn: &Connection,
    id: Option<i64>,
    sid: i64,
    seq: i64,
    day: i64,
    c: &EncodedChunk,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO chunks (id, stream_id, min_ts, max_ts, lines, raw_bytes, data, seq, day)
         VALUES (?9, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        sid,
        c.min_ts,
        c.max_ts,
        c.lines as i64,
        c.raw_bytes as i64,
        c.data,
        seq,
        day,
        id
    ])?;
    Ok(())
}

impl EraseTx for Write<'_> {
    fn streams(&mut self, team: Option<&str>) -> Result<Vec<(i64, String)>, StoreError> {
        SqliteDb::streams_on(self.0, team)
    }

    fn chunks(&mut self, sid: i64, span: Span) -> Result<Vec<ChunkSpan>, StoreError> {
        Read(self.0).chunks(sid, span)
    }

    fn chunk(&mut self, id: i64) -> Result<Option<(Vec<u8>, i64, i64)>, StoreError> {
        Ok(self
            .0
            .prepare_cached("SELECT data, seq, day FROM chunks WHERE id = ?1")?
            .query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?)
    }

    fn forget_key(&mut self, sid: i64, ts: i64, key: i64) -> Result<(), StoreError> {
        self.0
            .prepare_cached("DELETE FROM entry_keys WHERE stream_id = ?1 AND ts = ?2 AND h = ?3")?
            .execute(params![sid, ts, key])?;
        Ok(())
    }

    fn delete_chunk(&mut self, id: i64, _day: i64) -> Result<(), StoreError> {
        self.0.execute("DELETE FROM chunks WHERE id = ?1", [id])?;
        Ok(())
    }

    fn update_chunk(&mut self, id: i64, _day: i64, c: &EncodedChunk) -> Result<(), StoreError> {
        self.0.execute(
            "UPDATE chunks SET min_ts = ?2, max_ts = ?3, lines = ?4, raw_bytes = ?5, data = ?6
             WHERE id = ?1",
            params![
                id,
                c.min_ts,
                c.max_ts,
                c.lines as i64,
                c.raw_bytes as i64,
                c.data
            ],
        )?;
        Ok(())
    }

    fn insert_erasure(&mut self, r: &ErasureRecord) -> Result<i64, StoreError> {
        self.0.execute(
            "INSERT INTO erasures (at_ns, operator, query, start_ns, end_ns, lines, chunks)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                r.at_ns,
                r.operator,
                r.query,
                r.start_ns,
                r.end_ns,
                r.lines as i64,
                r.chunks as i64
            ],
        )?;
        Ok(self.0.last_insert_rowid())
    }

    fn insert_erasure_removal(
        &mut self,
        at_ns: i64,
        erasure_id: i64,
        operator: &str,
        seq: i64,
        lines: u64,
        digest: &str,
    ) -> Result<i64, StoreError> {
        self.0
            .prepare_cached(
                "INSERT INTO removals (at_ns, kind, erasure_id, operator, seq, lines, digest)
                 VALUES (?1, 'erasure', ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                at_ns,
                erasure_id,
                operator,
                seq,
                lines as i64,
                digest
            ])?;
        Ok(self.0.last_insert_rowid())
    }
}
