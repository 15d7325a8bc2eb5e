//! The aggregator's storage: one SQLite database (WAL) in the data directory, owned by this
//! module. Streams (label sets), chunks (zstd blocks of one stream's lines with min/max
//! timestamps) and batch receipts. An ingested batch is committed in one transaction, with
//! `synchronous=FULL`, before the caller acknowledges it.
//!
//! All calls block; the server runs them on the blocking pool. One writer connection behind a
//! mutex serialises writes (SQLite allows one writer anyway); queries use a small pool of
//! read connections, which WAL lets run concurrently with the writer.

pub mod chunk;
mod schema;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use fjord_wire::{Entry, PushRequest};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde::Serialize;
use thiserror::Error;

use crate::logql::LogQuery;

/// A stream's label set.
pub type Labels = BTreeMap<String, String>;

/// File name of the database inside the data directory.
pub const DB_FILE: &str = "fjord.db";

/// How long a connection waits for a lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Most idle read connections kept open.
const MAX_IDLE_READERS: usize = 8;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Chunk(#[from] chunk::ChunkError),
    #[error("database schema version {found} is newer than this binary knows ({known}); upgrade fjord-aggregator")]
    TooNew { found: i64, known: i64 },
    #[error("stored labels are not valid JSON: {0}")]
    Labels(String),
    #[error("store lock poisoned")]
    Poisoned,
}

/// Metadata of an ingested batch, recorded in its receipt.
#[derive(Debug, Clone)]
pub struct IngestMeta {
    pub batch_id: Option<String>,
    pub agent: Option<String>,
    pub team: String,
    pub rules_version: Option<String>,
    /// Compact JSON of per-rule counts, as sent in `Fjord-Redactions`.
    pub redactions: Option<String>,
    pub payload_sha256: String,
    pub received_ns: i64,
}

/// What an ingest did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IngestOutcome {
    Stored {
        records: usize,
    },
    /// The batch id had a receipt already; nothing was written.
    Duplicate,
}

/// Query direction, as Loki's `direction` parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Forward,
    Backward,
}

/// A range query over stored lines.
#[derive(Debug, Clone)]
pub struct RangeQuery {
    pub query: LogQuery,
    /// Inclusive start, Unix epoch ns.
    pub start_ns: i64,
    /// Inclusive end, Unix epoch ns.
    pub end_ns: i64,
    pub limit: usize,
    pub direction: Direction,
    /// Restrict to one team (read tokens); `None` sees all.
    pub team: Option<String>,
}

/// One stream of a query result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamResult {
    pub labels: BTreeMap<String, String>,
    pub entries: Vec<Entry>,
}

/// Totals per team, for `stats`.
#[derive(Debug, Clone, Serialize)]
pub struct TeamStats {
    pub team: String,
    pub batches: u64,
    pub records: u64,
    pub raw_bytes: u64,
    pub streams: u64,
    pub stored_lines: u64,
    pub stored_raw_bytes: u64,
    pub stored_compressed_bytes: u64,
}

struct Writer {
    conn: Connection,
    /// Canonical labels JSON → stream id, so hot streams skip a lookup.
    stream_ids: HashMap<String, i64>,
}

/// The store. Cheap to share behind an `Arc`.
pub struct Store {
    path: PathBuf,
    /// The single writer; SQLite serialises writers, and holding our own lock keeps the
    /// stream-id cache consistent with the database.
    writer: Mutex<Writer>,
    /// Idle read connections, at most `MAX_IDLE_READERS`.
    readers: Mutex<Vec<Connection>>,
}

fn open_conn(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(conn)
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

impl Store {
    /// Opens (creating if needed) the store in `data_dir` and applies pending migrations.
    pub fn open(data_dir: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|source| StoreError::Io {
            path: data_dir.to_owned(),
            source,
        })?;
        let path = data_dir.join(DB_FILE);
        let mut conn = open_conn(&path)?;
        schema::migrate(&mut conn)?;
        Ok(Store {
            path,
            writer: Mutex::new(Writer {
                conn,
                stream_ids: HashMap::new(),
            }),
            readers: Mutex::new(Vec::new()),
        })
    }

    /// Path of the database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stores a batch in one transaction, or reports it as a duplicate of a stored batch id.
    /// `team` overrides any `team` label the client sent.
    pub fn ingest(
        &self,
        meta: &IngestMeta,
        req: &PushRequest,
    ) -> Result<IngestOutcome, StoreError> {
        let mut w = self.writer.lock().map_err(|_| StoreError::Poisoned)?;
        let Writer { conn, stream_ids } = &mut *w;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        if let Some(id) = &meta.batch_id {
            let seen: Option<i64> = tx
                .query_row("SELECT id FROM receipts WHERE batch_id = ?1", [id], |r| {
                    r.get(0)
                })
                .optional()?;
            if seen.is_some() {
                return Ok(IngestOutcome::Duplicate);
            }
        }
        let mut new_ids = Vec::new();
        let mut records = 0usize;
        let mut raw_bytes = 0usize;
        {
            let mut insert_stream = tx.prepare_cached(
                "INSERT INTO streams (team, labels, created_ns) VALUES (?1, ?2, ?3)
                 ON CONFLICT(labels) DO UPDATE SET team = team RETURNING id",
            )?;
            let mut insert_chunk = tx.prepare_cached(
                "INSERT INTO chunks (stream_id, min_ts, max_ts, lines, raw_bytes, data)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for s in &req.streams {
                if s.values.is_empty() {
                    continue;
                }
                let mut labels = s.stream.clone();
                labels.insert("team".to_owned(), meta.team.clone());
                let key = serde_json::to_string(&labels)
                    .map_err(|e| StoreError::Labels(e.to_string()))?;
                let sid = match stream_ids.get(&key) {
                    Some(id) => *id,
                    None => {
                        let id: i64 = insert_stream
                            .query_row(params![meta.team, key, meta.received_ns], |r| r.get(0))?;
                        new_ids.push((key, id));
                        id
                    }
                };
                for part in split_by_bytes(&s.values, chunk::TARGET_CHUNK_RAW_BYTES) {
                    let c = chunk::encode(part)?;
                    insert_chunk.execute(params![
                        sid,
                        c.min_ts,
                        c.max_ts,
                        c.lines as i64,
                        c.raw_bytes as i64,
                        c.data
                    ])?;
                    records += c.lines;
                    raw_bytes += c.raw_bytes;
                }
            }
        }
        tx.execute(
            "INSERT INTO receipts (batch_id, agent, team, received_ns, records, raw_bytes,
                                   payload_sha256, rules_version, redactions)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                meta.batch_id,
                meta.agent,
                meta.team,
                meta.received_ns,
                records as i64,
                raw_bytes as i64,
                meta.payload_sha256,
                meta.rules_version,
                meta.redactions
            ],
        )?;
        tx.commit()?;
        // Only cache ids whose rows are committed.
        stream_ids.extend(new_ids);
        Ok(IngestOutcome::Stored { records })
    }

    fn reader(&self) -> Result<Connection, StoreError> {
        let pooled = self.readers.lock().map_err(|_| StoreError::Poisoned)?.pop();
        match pooled {
            Some(c) => Ok(c),
            None => open_conn(&self.path),
        }
    }

    fn give_back(&self, conn: Connection) {
        if let Ok(mut pool) = self.readers.lock() {
            if pool.len() < MAX_IDLE_READERS {
                pool.push(conn);
            }
        }
    }

    /// Streams (id, labels) visible to `team` (all when `None`) that match the selector.
    fn select_streams(
        conn: &Connection,
        query: &LogQuery,
        team: Option<&str>,
    ) -> Result<Vec<(i64, Labels)>, StoreError> {
        let mut stmt = conn.prepare_cached("SELECT id, team, labels FROM streams ORDER BY id")?;
        let mut rows = stmt.query([])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let stream_team: String = row.get(1)?;
            if team.is_some_and(|t| t != stream_team) {
                continue;
            }
            let json: String = row.get(2)?;
            let labels: BTreeMap<String, String> =
                serde_json::from_str(&json).map_err(|e| StoreError::Labels(e.to_string()))?;
            if query.matches_stream(&labels) {
                out.push((row.get(0)?, labels));
            }
        }
        Ok(out)
    }

    /// Runs a range query: at most `limit` entries, the earliest (forward) or latest
    /// (backward) in the range, grouped by stream. Memory stays bounded by about twice the
    /// limit whatever the amount of data scanned.
    pub fn query_range(&self, q: &RangeQuery) -> Result<Vec<StreamResult>, StoreError> {
        let conn = self.reader()?;
        let result = Self::query_range_on(&conn, q);
        self.give_back(conn);
        result
    }

    fn query_range_on(conn: &Connection, q: &RangeQuery) -> Result<Vec<StreamResult>, StoreError> {
        let streams = Self::select_streams(conn, &q.query, q.team.as_deref())?;
        if streams.is_empty() || q.limit == 0 {
            return Ok(Vec::new());
        }
        // Chunk metadata of every selected stream that overlaps the range.
        let mut metas: Vec<(i64, usize, i64, i64)> = Vec::new(); // (chunk id, stream idx, min, max)
        {
            let mut stmt = conn.prepare_cached(
                "SELECT id, min_ts, max_ts FROM chunks
                 WHERE stream_id = ?1 AND max_ts >= ?2 AND min_ts <= ?3",
            )?;
            for (idx, (sid, _)) in streams.iter().enumerate() {
                let rows = stmt.query_map(params![sid, q.start_ns, q.end_ns], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        idx,
                        r.get::<_, i64>(1)?,
                        r.get::<_, i64>(2)?,
                    ))
                })?;
                for row in rows {
                    metas.push(row?);
                }
            }
        }
        let forward = q.direction == Direction::Forward;
        if forward {
            metas.sort_by_key(|m| (m.2, m.0));
        } else {
            metas.sort_by_key(|m| (std::cmp::Reverse(m.3), std::cmp::Reverse(m.0)));
        }
        // (ts, chunk id, position, stream idx, line); sorted in result order.
        let mut hits: Vec<(i64, i64, u32, usize, String)> = Vec::new();
        let mut get_data = conn.prepare_cached("SELECT data FROM chunks WHERE id = ?1")?;
        let order = |a: &(i64, i64, u32, usize, String), b: &(i64, i64, u32, usize, String)| {
            let k = (a.0, a.1, a.2).cmp(&(b.0, b.1, b.2));
            if forward {
                k
            } else {
                k.reverse()
            }
        };
        for (cid, sidx, min_ts, max_ts) in metas {
            if hits.len() >= q.limit {
                // The limit is reached: a chunk entirely beyond the cutoff cannot contribute,
                // and since chunks are sorted neither can any later one.
                let cutoff = hits[q.limit - 1].0;
                if (forward && min_ts > cutoff) || (!forward && max_ts < cutoff) {
                    break;
                }
            }
            let data: Vec<u8> = get_data.query_row([cid], |r| r.get(0))?;
            let mut pos = 0u32;
            chunk::decode_each(&data, |ts, line| {
                if ts >= q.start_ns && ts <= q.end_ns && q.query.keep_line(line) {
                    hits.push((ts, cid, pos, sidx, line.to_owned()));
                }
                pos += 1;
            })?;
            if hits.len() > q.limit {
                hits.sort_by(order);
                hits.truncate(q.limit);
            }
        }
        hits.sort_by(order);
        hits.truncate(q.limit);
        let mut by_stream: BTreeMap<usize, Vec<Entry>> = BTreeMap::new();
        for (ts, _, _, sidx, line) in hits {
            by_stream
                .entry(sidx)
                .or_default()
                .push(Entry { ts_ns: ts, line });
        }
        Ok(by_stream
            .into_iter()
            .map(|(sidx, entries)| StreamResult {
                labels: streams[sidx].1.clone(),
                entries,
            })
            .collect())
    }

    /// Totals per team from receipts and chunks.
    pub fn stats(&self, team: Option<&str>) -> Result<Vec<TeamStats>, StoreError> {
        let conn = self.reader()?;
        let result = (|| {
            let mut out: BTreeMap<String, TeamStats> = BTreeMap::new();
            let blank = |team: &str| TeamStats {
                team: team.to_owned(),
                batches: 0,
                records: 0,
                raw_bytes: 0,
                streams: 0,
                stored_lines: 0,
                stored_raw_bytes: 0,
                stored_compressed_bytes: 0,
            };
            let mut stmt = conn.prepare(
                "SELECT team, COUNT(*), COALESCE(SUM(records),0), COALESCE(SUM(raw_bytes),0)
                 FROM receipts GROUP BY team",
            )?;
            let mut rows = stmt.query([])?;
            while let Some(r) = rows.next()? {
                let t: String = r.get(0)?;
                let e = out.entry(t.clone()).or_insert_with(|| blank(&t));
                e.batches = r.get::<_, i64>(1)? as u64;
                e.records = r.get::<_, i64>(2)? as u64;
                e.raw_bytes = r.get::<_, i64>(3)? as u64;
            }
            let mut stmt = conn.prepare(
                "SELECT s.team, COUNT(DISTINCT s.id), COALESCE(SUM(c.lines),0),
                        COALESCE(SUM(c.raw_bytes),0), COALESCE(SUM(length(c.data)),0)
                 FROM streams s LEFT JOIN chunks c ON c.stream_id = s.id GROUP BY s.team",
            )?;
            let mut rows = stmt.query([])?;
            while let Some(r) = rows.next()? {
                let t: String = r.get(0)?;
                let e = out.entry(t.clone()).or_insert_with(|| blank(&t));
                e.streams = r.get::<_, i64>(1)? as u64;
                e.stored_lines = r.get::<_, i64>(2)? as u64;
                e.stored_raw_bytes = r.get::<_, i64>(3)? as u64;
                e.stored_compressed_bytes = r.get::<_, i64>(4)? as u64;
            }
            Ok(out
                .into_values()
                .filter(|s| team.is_none_or(|t| t == s.team))
                .collect())
        })();
        self.give_back(conn);
        result
    }

    /// Current time in Unix epoch ns (the receipt clock).
    pub fn now_ns() -> i64 {
        now_ns()
    }
}

/// Splits entries into runs of about `target` raw bytes (at least one entry each).
fn split_by_bytes(entries: &[Entry], target: usize) -> impl Iterator<Item = &[Entry]> {
    let mut rest = entries;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut bytes = 0;
        let mut n = 0;
        while n < rest.len() && (n == 0 || bytes + rest[n].line.len() <= target) {
            bytes += rest[n].line.len();
            n += 1;
        }
        let (head, tail) = rest.split_at(n);
        rest = tail;
        Some(head)
    })
}

#[cfg(test)]
mod tests;
