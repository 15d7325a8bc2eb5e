//! The aggregator's storage: streams (label sets), chunks (zstd blocks of one stream's lines
//! with min/max timestamps) and batch receipts, in a database behind one seam
//! ([`backend`]): SQLite in the data directory (the embedded default, [`sqlite`]) or
//! PostgreSQL ([`postgres`]). An ingested batch is committed in one transaction before the
//! caller acknowledges it. The chunk format, entry digests, dedup, limits and query
//! evaluation live here, above the seam, the same for both.
//!
//! All calls block; the server runs them on the blocking pool.
//!
//! Invariants: a chunk holds lines of one stream and one UTC day; its `seq` is the receipt id
//! of the batch that brought it (the maximum of its parts after compaction), so the live tail
//! can follow `(seq, id)` without missing rows; the writer runs with `secure_delete`, so
//! erased and expired lines are overwritten on disk, not merely unlinked.

mod access;
pub mod backend;
pub mod chain;
pub mod chunk;
mod compact;
mod deadline;
pub mod digest;
mod erase;
pub mod evidence;
pub mod postgres;
mod retention;
pub mod sqlite;
// atexit(3) stops the tests' shared PostgreSQL server when the test process ends.
#[cfg(test)]
#[allow(unsafe_code)]
pub(crate) mod testing;
// Two SHA-256 streams interleaved with the SHA-NI instructions (tested against sha2).
#[allow(unsafe_code)]
mod sha256x2;

pub use access::AccessRecord;
pub use compact::CompactReport;
pub use deadline::Deadline;
pub use digest::{EntryDigest, StreamHasher};
pub use erase::{EraseReport, Erasure, ErasureRecord};
pub use retention::{ReclaimReport, RetentionReport};
pub use sqlite::{DB_FILE, SCHEMA_VERSION};

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use fjord_wire::{Entry, PushRequest};
use serde::Serialize;

use backend::{IngestTx, Reader, Span};
use postgres::PgDb;
use sqlite::SqliteDb;
use thiserror::Error;

use crate::logql::LogQuery;
use fjord_wire::clock::now_ns;

/// A stream's label set.
pub type Labels = BTreeMap<String, String>;

/// Nanoseconds per UTC day: chunks never span two.
pub const NS_PER_DAY: i64 = 86_400 * 1_000_000_000;

/// The UTC day number of a timestamp.
pub fn day_of(ts_ns: i64) -> i64 {
    ts_ns.div_euclid(NS_PER_DAY)
}

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A PostgreSQL error: its message and SQLSTATE.
    #[error("postgresql: {0}")]
    Postgres(String),
    /// The database cannot be reached now; the request may be retried.
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    /// The store's configuration (URL, TLS files) is wrong.
    #[error("{0}")]
    Config(String),
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
    #[error("{0}")]
    Refused(String),
    /// A metric evaluation refused to go on (a limit, a pipeline error, the deadline).
    #[error(transparent)]
    Eval(#[from] fjord_logql::EvalError),
    #[error("the answer holds more than {limit} bytes of log lines; narrow the range or the selector, or lower the limit")]
    TooLarge { limit: usize },
    #[error("the query ran longer than {} (query_timeout) and was stopped; narrow the range or the selector, or add a line filter", humantime::format_duration(*.limit))]
    DeadlineExceeded { limit: Duration },
    #[error("team {team:?} has {limit} streams, the most it may have (max_streams_per_team); this push would add another. Fewer distinct label sets, or ask the operator to raise the limit")]
    TooManyStreams { team: String, limit: usize },
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
    /// The team had a receipt with this batch id and the same lines already; nothing was
    /// written.
    Duplicate,
    /// The team had a receipt with this batch id but *other* lines: nothing was written, and
    /// the sender must not take this as an acknowledgement.
    Conflict,
}

/// The store's size, as `/metrics` shows it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreSize {
    /// Bytes of the database file and its WAL.
    pub bytes: u64,
    /// Chunks stored.
    pub chunks: u64,
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
    /// Most bytes of lines the query may hold: the best `limit` entries found so far may
    /// total at most this, else [`StoreError::TooLarge`].
    pub max_bytes: usize,
    /// When the query stops, with [`StoreError::DeadlineExceeded`].
    pub deadline: Deadline,
}

/// What [`Store::scan_part`] reads.
#[derive(Debug, Clone, Copy)]
pub struct Scan<'a> {
    pub query: &'a LogQuery,
    /// Restrict to one team (read tokens); `None` sees all.
    pub team: Option<&'a str>,
    /// Inclusive start, Unix epoch ns.
    pub start_ns: i64,
    /// Inclusive end, Unix epoch ns.
    pub end_ns: i64,
    /// This scan's share of the selected streams: those whose position is `part.0` modulo
    /// `part.1`.
    pub part: (usize, usize),
    /// When the scan stops, with [`StoreError::DeadlineExceeded`].
    pub deadline: Deadline,
}

/// Chunk counts of one stream in a range, for `index/stats` and `index/volume`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IndexCounts {
    pub chunks: u64,
    pub entries: u64,
    pub bytes: u64,
}

/// One stream of a query result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamResult {
    pub labels: BTreeMap<String, String>,
    pub entries: Vec<Entry<'static>>,
}

/// Totals per team, for `stats`: `batches`, `records` and `raw_bytes` from the receipts
/// (what arrived), the `stored_*` fields from the chunks (what is kept now).
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
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

/// Stored lines and bytes of one stream.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct StreamStats {
    pub team: String,
    pub stream: Labels,
    pub lines: u64,
    pub raw_bytes: u64,
    pub stored_bytes: u64,
    pub chunks: u64,
}

/// Stored lines and bytes of one team on one UTC day.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct DayStats {
    pub team: String,
    /// `YYYY-MM-DD`, UTC.
    pub day: String,
    pub lines: u64,
    pub raw_bytes: u64,
    pub stored_bytes: u64,
}

/// Stored totals per stream and per team-day.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub struct DetailStats {
    pub streams: Vec<StreamStats>,
    pub days: Vec<DayStats>,
}

/// Where a live tail stands: the last `(seq, id)` it has sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TailCursor {
    pub seq: i64,
    pub id: i64,
}

/// Per-tail cache of stream id → labels if the stream matches the tail's selector.
pub type TailStreams = HashMap<i64, Option<Labels>>;

/// Most entries a tail's stream cache holds before it is cleared.
const MAX_TAIL_STREAM_CACHE: usize = 100_000;

/// Most entries of the writer's stream-id cache before it is cleared: hot streams come back
/// after one lookup each, and a flood of new streams cannot grow it without bound.
const MAX_STREAM_ID_CACHE: usize = 100_000;

/// The store's caches for ingest, behind one lock that also serialises this process's
/// ingests (SQLite has one writer anyway; PostgreSQL replicas each ingest in parallel).
struct Writer {
    /// Reused zstd context and buffer for the chunks of every batch.
    encoder: chunk::Encoder,
    /// Canonical labels JSON → stream id, so hot streams skip a lookup. At most
    /// [`MAX_STREAM_ID_CACHE`] entries. Stream ids never change once committed.
    stream_ids: HashMap<String, i64>,
    /// Streams per team, counted on first use, against `max_streams_per_team`. With several
    /// PostgreSQL replicas each counts its own creations on top of what it read, so the
    /// limit holds per replica to within the streams the others created since.
    team_streams: HashMap<String, usize>,
}

/// A receipt row to insert.
pub struct ReceiptRow<'a> {
    pub batch_id: Option<&'a str>,
    pub agent: Option<&'a str>,
    pub team: &'a str,
    pub received_ns: i64,
    pub records: i64,
    pub raw_bytes: i64,
    pub payload_sha256: &'a str,
    pub rules_version: Option<&'a str>,
    pub redactions: Option<&'a str>,
    pub entries_digest: &'a str,
}

/// The database behind the store.
pub enum Db {
    Sqlite(SqliteDb),
    Postgres(PgDb),
}

impl Db {
    /// Runs `f` over one read snapshot.
    fn read<R>(
        &self,
        f: impl FnOnce(&mut dyn Reader) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        match self {
            Db::Sqlite(d) => d.read(f),
            Db::Postgres(d) => d.read(f),
        }
    }

    /// Runs `f` in one write transaction, committed when it returns `Ok`.
    fn ingest<R>(
        &self,
        f: impl FnOnce(&mut dyn IngestTx) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        match self {
            Db::Sqlite(d) => d.ingest(f),
            Db::Postgres(d) => d.ingest(f),
        }
    }
}

/// The store. Cheap to share behind an `Arc`.
pub struct Store {
    db: Db,
    writer: Mutex<Writer>,
    /// Most streams one team may have; a batch that would add more is refused whole.
    max_streams_per_team: AtomicUsize,
}

/// Formats a day number as `YYYY-MM-DD`.
pub fn format_day(day: i64) -> String {
    let secs = u64::try_from(day.saturating_mul(86_400)).unwrap_or(0);
    let t = std::time::UNIX_EPOCH + Duration::from_secs(secs);
    humantime::format_rfc3339_seconds(t).to_string()[..10].to_owned()
}

impl Store {
    /// Opens (creating if needed) the SQLite store in `data_dir` and applies pending
    /// migrations.
    pub fn open(data_dir: &Path) -> Result<Store, StoreError> {
        Store::over(Db::Sqlite(SqliteDb::open(data_dir)?))
    }

    /// The store over `db`.
    pub fn over(db: Db) -> Result<Store, StoreError> {
        Ok(Store {
            db,
            writer: Mutex::new(Writer {
                encoder: chunk::Encoder::stored()?,
                stream_ids: HashMap::new(),
                team_streams: HashMap::new(),
            }),
            max_streams_per_team: AtomicUsize::new(usize::MAX),
        })
    }

    /// The SQLite database, for what only the SQLite backend does yet; on PostgreSQL,
    /// a refusal naming `what`.
    pub(crate) fn sqlite(&self, what: &str) -> Result<&SqliteDb, StoreError> {
        match &self.db {
            Db::Sqlite(d) => Ok(d),
            Db::Postgres(_) => Err(StoreError::Refused(format!(
                "{what} is not available on the PostgreSQL store yet"
            ))),
        }
    }

    /// The store read-only, as the audit reads it.
    pub fn evidence(&self) -> Result<evidence::Evidence, evidence::EvidenceError> {
        match &self.db {
            Db::Sqlite(d) => {
                let dir = d.path.parent().unwrap_or(Path::new("."));
                evidence::Evidence::open(dir)
            }
            Db::Postgres(d) => evidence::Evidence::open_postgres(d.url()),
        }
    }

    /// Which backend: `sqlite` or `postgres`.
    pub fn backend_name(&self) -> &'static str {
        match &self.db {
            Db::Sqlite(_) => "sqlite",
            Db::Postgres(_) => "postgres",
        }
    }

    /// Sets the most streams one team may have (no limit until called).
    pub fn set_max_streams_per_team(&self, limit: usize) {
        self.max_streams_per_team.store(limit, Ordering::Relaxed);
    }

    /// Path of the database file (SQLite); an empty path on PostgreSQL.
    pub fn path(&self) -> &Path {
        match &self.db {
            Db::Sqlite(d) => &d.path,
            Db::Postgres(_) => Path::new(""),
        }
    }

    /// Stores a batch in one transaction, or reports it as a duplicate of a stored batch id.
    /// `meta.team` overrides any `team` label the client sent. The receipt (with the batch's
    /// entry digest) is written before the chunks so that its id is the ingest sequence
    /// (`seq`) of every chunk of the batch.
    pub fn ingest(
        &self,
        meta: &IngestMeta,
        req: &PushRequest,
    ) -> Result<IngestOutcome, StoreError> {
        let digest = entry_digest(req, &meta.team, None)?;
        self.ingest_digested(meta, req, &digest)
    }

    /// [`Store::ingest`] with the batch's entry digest computed by the caller, with
    /// [`hash_batch`] (outside the writer lock, alongside the payload hash).
    pub fn ingest_digested(
        &self,
        meta: &IngestMeta,
        req: &PushRequest,
        digest: &EntryDigest,
    ) -> Result<IngestOutcome, StoreError> {
        let mut w = self.writer.lock().map_err(|_| StoreError::Poisoned)?;
        let Writer {
            encoder,
            stream_ids,
            team_streams,
        } = &mut *w;
        let keys = req
            .streams
            .iter()
            .map(|s| {
                if s.values.is_empty() {
                    Ok(None)
                } else {
                    labels_key(&s.stream, &meta.team).map(Some)
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        let records = req.records();
        let digest_text = digest.to_string();
        // The entry digest says "the same lines" whatever the body looked like; receipts
        // from before schema 3 have none and compare the payload instead.
        let verdict = |(entries, payload): backend::SeenBatch| {
            let same = match entries {
                Some(stored) => stored == digest_text,
                None => payload == meta.payload_sha256,
            };
            if same {
                IngestOutcome::Duplicate
            } else {
                IngestOutcome::Conflict
            }
        };
        let mut new_ids = Vec::new();
        let mut team_count = None;
        if let Db::Postgres(db) = &self.db {
            let mut days: Vec<i64> = req
                .streams
                .iter()
                .flat_map(|s| s.values.iter().map(|e| day_of(e.ts_ns)))
                .collect();
            days.sort_unstable();
            days.dedup();
            db.prepare_days(&days)?;
        }
        let outcome = self.db.ingest(|tx| {
            new_ids.clear();
            if let Some(id) = &meta.batch_id {
                if let Some(seen) = tx.seen(&meta.team, id)? {
                    return Ok(verdict(seen));
                }
            }
            let receipt = ReceiptRow {
                batch_id: meta.batch_id.as_deref(),
                agent: meta.agent.as_deref(),
                team: &meta.team,
                received_ns: meta.received_ns,
                records: records as i64,
                raw_bytes: req.raw_bytes() as i64,
                payload_sha256: &meta.payload_sha256,
                rules_version: meta.rules_version.as_deref(),
                redactions: meta.redactions.as_deref(),
                entries_digest: &digest_text,
            };
            let Some(seq) = tx.insert_receipt(&receipt)? else {
                // Another replica stored this batch id and committed first.
                let id = meta.batch_id.as_deref().unwrap_or_default();
                return Ok(match tx.seen(&meta.team, id)? {
                    Some(seen) => verdict(seen),
                    None => IngestOutcome::Conflict,
                });
            };
            // Streams this batch creates, against the team's limit; counted once per team.
            let mut created = 0usize;
            let have = match team_streams.get(&meta.team) {
                Some(n) => *n,
                None => tx.team_streams(&meta.team)?,
            };
            let limit = self.max_streams_per_team.load(Ordering::Relaxed);
            // Entries not stored because they were stored before: count and digest.
            let mut duplicates = (0u64, EntryDigest::default());
            for (s, key) in req.streams.iter().zip(&keys) {
                let Some(key) = key else { continue };
                let sid = match stream_ids.get(key) {
                    Some(id) => *id,
                    None => {
                        let id = match tx.find_stream(key)? {
                            Some(id) => id,
                            None => {
                                if have + created >= limit {
                                    return Err(StoreError::TooManyStreams {
                                        team: meta.team.clone(),
                                        limit,
                                    });
                                }
                                created += 1;
                                tx.insert_stream(&meta.team, key, meta.received_ns)?
                            }
                        };
                        new_ids.push((key.clone(), id));
                        id
                    }
                };
                // Loki's dedup for clients without batch ids: an entry whose stream,
                // timestamp and line are stored already is not stored again. It is recorded
                // as a removal of kind `duplicate` below, so the receipt (what arrived) and
                // the stored lines still reconcile in `audit verify`.
                let kept: Cow<'_, [Entry<'_>]> = if meta.batch_id.is_none() {
                    let hasher = StreamHasher::new(key);
                    let mut kept = Vec::with_capacity(s.values.len());
                    for e in &s.values {
                        let d = hasher.entry(e.ts_ns, e.line(), &e.metadata.as_slice());
                        if tx.add_entry_key(sid, e.ts_ns, d.dedup_key())? {
                            kept.push(e.clone());
                        } else {
                            duplicates.0 += 1;
                            duplicates.1.add(&d);
                        }
                    }
                    Cow::Owned(kept)
                } else {
                    Cow::Borrowed(&s.values)
                };
                if kept.is_empty() {
                    continue;
                }
                for (day, entries) in by_day(&kept) {
                    for part in split_by_bytes(&entries, chunk::TARGET_CHUNK_RAW_BYTES) {
                        let c = encoder.encode_tagged(
                            part.iter()
                                .map(|e| (seq, e.ts_ns, e.line(), e.metadata.as_slice())),
                        )?;
                        tx.insert_chunk(sid, seq, day, &c)?;
                    }
                }
            }
            let mut links = vec![chain::receipt_link(seq, &receipt)];
            if duplicates.0 > 0 {
                let digest = duplicates.1.to_string();
                let id = tx.insert_duplicates(meta.received_ns, seq, duplicates.0, &digest)?;
                links.push(chain::removal_link(&chain::RemovalRecord {
                    id,
                    at_ns: meta.received_ns,
                    kind: "duplicate",
                    erasure_id: None,
                    operator: chain::DEDUP_OPERATOR,
                    seq,
                    lines: duplicates.0 as i64,
                    digest: &digest,
                }));
            }
            chain::append(tx, &links)?;
            team_count = Some(have + created);
            Ok(IngestOutcome::Stored {
                records: records.saturating_sub(duplicates.0 as usize),
            })
        })?;
        // Only cache ids and counts of committed rows.
        if let Some(n) = team_count {
            if stream_ids.len() + new_ids.len() > MAX_STREAM_ID_CACHE {
                stream_ids.clear();
            }
            stream_ids.extend(new_ids);
            team_streams.insert(meta.team.clone(), n);
        }
        Ok(outcome)
    }

    /// Stores rows of `agent`'s ledger for `team`, in one transaction with their chain links.
    /// Rows at or below the newest `seq` stored for the agent are skipped (a retry stores
    /// nothing twice); the rest must come in increasing `seq` order.
    pub fn ingest_ledger(
        &self,
        team: &str,
        agent: &str,
        received_ns: i64,
        rows: &[fjord_wire::ledger::LedgerPushRow],
    ) -> Result<fjord_wire::ledger::LedgerAck, StoreError> {
        if let Some(w) = rows.windows(2).find(|w| w[1].seq <= w[0].seq) {
            return Err(StoreError::Refused(format!(
                "ledger rows must come in increasing seq order; {} follows {}",
                w[1].seq, w[0].seq
            )));
        }
        self.db.ingest(|tx| {
            let last = tx.last_ledger_seq(team, agent)?;
            let mut links = Vec::new();
            let mut newest = last.unwrap_or(0);
            for r in rows.iter().filter(|r| last.is_none_or(|l| r.seq > l)) {
                let record = serde_json::to_string(&r.record)
                    .map_err(|e| StoreError::Refused(format!("ledger row {}: {e}", r.seq)))?;
                let mut row = chain::LedgerRow {
                    id: 0,
                    team,
                    agent,
                    seq: r.seq,
                    received_ns,
                    batch_id: &r.record.batch_id,
                    sent_ns: r.record.sent_ns,
                    outcome: r.record.outcome.as_str(),
                    record: &record,
                };
                if let Some(id) = tx.insert_ledger_row(&row)? {
                    row.id = id;
                    links.push(chain::ledger_link(&row));
                }
                newest = newest.max(r.seq);
            }
            chain::append(tx, &links)?;
            Ok(fjord_wire::ledger::LedgerAck {
                stored: links.len() as u64,
                last_seq: newest,
            })
        })
    }

    /// Signs the audit chain's head with `signer`, unless it is signed already; returns the
    /// new root. On PostgreSQL any replica may sign; a position is signed once.
    pub fn sign_chain(
        &self,
        signer: &crate::keys::Signer,
        now_ns: i64,
    ) -> Result<Option<crate::keys::Root>, StoreError> {
        match &self.db {
            Db::Sqlite(d) => d.sign_chain(signer, now_ns),
            Db::Postgres(d) => d.sign_chain(signer, now_ns),
        }
    }

    /// Checkpoints the WAL into the database and truncates it, so the WAL file stays bounded
    /// however long the server runs. Returns whether readers kept it from completing.
    /// On PostgreSQL there is no WAL file of ours to bound: nothing to do.
    pub fn checkpoint(&self) -> Result<bool, StoreError> {
        let Db::Sqlite(db) = &self.db else {
            return Ok(false);
        };
        let w = db.writer.lock().map_err(|_| StoreError::Poisoned)?;
        let busy: i64 = w.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))?;
        Ok(busy != 0)
    }

    /// `PRAGMA integrity_check`: `ok` or the first problems found.
    pub fn integrity_check(&self) -> Result<String, StoreError> {
        let db = self.sqlite("an integrity check")?;
        let conn = db.reader()?;
        let res = conn.query_row("PRAGMA integrity_check", [], |r| r.get::<_, String>(0));
        db.give_back(conn);
        Ok(res?)
    }

    /// The store's size on disk (database file plus WAL) and its number of chunks, for
    /// `/metrics`. Counting chunks scans an index, so callers cache the answer (the metrics
    /// endpoint refreshes it at most every few seconds) rather than calling it per scrape.
    pub fn size(&self) -> Result<StoreSize, StoreError> {
        let db = match &self.db {
            Db::Sqlite(db) => db,
            Db::Postgres(db) => return db.size(),
        };
        let file_len = |path: &Path| match std::fs::metadata(path) {
            Ok(m) => Ok(m.len()),
            // No WAL between a checkpoint and the next write is normal.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
            Err(source) => Err(StoreError::Io {
                path: path.to_owned(),
                source,
            }),
        };
        let mut wal = db.path.clone().into_os_string();
        wal.push("-wal");
        let bytes = file_len(&db.path)? + file_len(Path::new(&wal))?;
        let conn = db.reader()?;
        let chunks = conn.query_row("SELECT count(*) FROM chunks", [], |r| r.get::<_, i64>(0));
        db.give_back(conn);
        Ok(StoreSize {
            bytes,
            chunks: u64::try_from(chunks?).unwrap_or(0),
        })
    }

    /// Streams (id, labels) visible to `team` (all when `None`) that match the selector.
    fn select_streams(
        r: &mut dyn Reader,
        query: &LogQuery,
        team: Option<&str>,
    ) -> Result<Vec<(i64, Labels)>, StoreError> {
        let mut out = Vec::new();
        for (id, json) in r.streams(team)? {
            let labels = parse_labels(&json)?;
            if query.matches_stream(&labels) {
                out.push((id, labels));
            }
        }
        Ok(out)
    }

    /// Runs a range query: at most `limit` entries, the earliest (forward) or latest
    /// (backward) in the range, grouped by stream. Memory stays bounded by about twice the
    /// limit whatever the amount of data scanned.
    pub fn query_range(&self, q: &RangeQuery) -> Result<Vec<StreamResult>, StoreError> {
        self.db.read(|r| Self::query_range_on(r, q))
    }

    fn query_range_on(r: &mut dyn Reader, q: &RangeQuery) -> Result<Vec<StreamResult>, StoreError> {
        let streams = Self::select_streams(r, &q.query, q.team.as_deref())?;
        if streams.is_empty() || q.limit == 0 {
            return Ok(Vec::new());
        }
        // Chunk metadata of every selected stream that overlaps the range.
        let mut metas: Vec<(i64, usize, i64, i64)> = Vec::new(); // (chunk id, stream idx, min, max)
        let span = Span::new(q.start_ns, q.end_ns);
        for (idx, (sid, _)) in streams.iter().enumerate() {
            for c in r.chunks(*sid, span)? {
                metas.push((c.id, idx, c.min_ts, c.max_ts));
            }
        }
        let forward = q.direction == Direction::Forward;
        if forward {
            metas.sort_by_key(|m| (m.2, m.0));
        } else {
            metas.sort_by_key(|m| (std::cmp::Reverse(m.3), std::cmp::Reverse(m.0)));
        }
        // (ts, chunk id, position, label set idx, line); sorted in result order. Without a
        // pipeline the label set is the stream's; with one, entries are grouped by the label
        // set the pipeline left them with, interned in `outs`.
        let pipeline = q.query.has_pipeline();
        let mut outs: Vec<Labels> = if pipeline {
            Vec::new()
        } else {
            streams.iter().map(|s| s.1.clone()).collect()
        };
        let mut interned: HashMap<String, usize> = HashMap::new();
        let mut state = fjord_logql::EntryState::default();
        let mut key = String::new();
        let mut hits: Vec<Hit> = Vec::new();
        // Bytes of the lines in `hits`: kept under twice `max_bytes` while scanning, and the
        // best `limit` of them under `max_bytes`.
        let mut hit_bytes = 0usize;
        let mut decoder = chunk::Decoder::new()?;
        let order = |a: &Hit, b: &Hit| {
            let k = (a.0, a.1, a.2).cmp(&(b.0, b.1, b.2));
            if forward {
                k
            } else {
                k.reverse()
            }
        };
        for (cid, sidx, min_ts, max_ts) in metas {
            q.deadline.check()?;
            if hits.len() >= q.limit {
                // The limit is reached: a chunk entirely beyond the cutoff cannot contribute,
                // and since chunks are sorted neither can any later one.
                let cutoff = hits[q.limit - 1].0;
                if (forward && min_ts > cutoff) || (!forward && max_ts < cutoff) {
                    break;
                }
            }
            let Some(data) = r.chunk_data(cid)? else {
                continue; // compacted or erased since the chunks were listed
            };
            // A needle of a `|=` filter absent from the whole chunk rules out every line.
            if !q.query.may_match(decoder.load(&data)?) {
                continue;
            }
            let mut pos = 0u32;
            let stream_labels = &streams[sidx].1;
            let mut watch = q.deadline.watch();
            decoder.each(0, |r| {
                if watch.passed() {
                    return;
                }
                let (ts, line) = (r.ts, r.line);
                if ts >= q.start_ns && ts <= q.end_ns && q.query.keep_line(line) {
                    if !pipeline {
                        // The entry keeps its metadata; the response shows it as Loki does.
                        hit_bytes += line.len() + r.meta.bytes().len();
                        hits.push((ts, cid, pos, sidx, line.to_owned(), r.meta.to_pairs()));
                    } else if q.query.process_meta(
                        &mut state,
                        stream_labels,
                        &r.meta.iter().collect::<Vec<_>>(),
                        ts,
                        line,
                    ) {
                        state.labels.key_into(&mut key, None);
                        let idx = match interned.get(key.as_str()) {
                            Some(&i) => i,
                            None => {
                                outs.push(state.labels.to_labels());
                                interned.insert(key.clone(), outs.len() - 1);
                                outs.len() - 1
                            }
                        };
                        let out = state.line(line);
                        hit_bytes += out.len();
                        // Metadata is in the labels now, where the pipeline left it.
                        hits.push((ts, cid, pos, idx, out.to_owned(), Vec::new()));
                    }
                }
                pos += 1;
            })?;
            watch.result()?;
            // Distinct label sets (one per JSON request id, say) are bounded like the hits.
            let too_many_sets = outs.len() > q.limit.saturating_mul(2) + 64;
            if hits.len() > q.limit
                || hit_bytes > q.max_bytes.saturating_mul(2)
                || (pipeline && too_many_sets)
            {
                hits.sort_by(order);
                hits.truncate(q.limit);
                hit_bytes = hits.iter().map(hit_len).sum();
                if hit_bytes > q.max_bytes {
                    return Err(StoreError::TooLarge { limit: q.max_bytes });
                }
                if pipeline && too_many_sets {
                    let mut remap: HashMap<usize, usize> = HashMap::new();
                    let mut kept: Vec<Labels> = Vec::new();
                    for h in hits.iter_mut() {
                        h.3 = *remap.entry(h.3).or_insert_with(|| {
                            kept.push(std::mem::take(&mut outs[h.3]));
                            kept.len() - 1
                        });
                    }
                    outs = kept;
                    interned = outs
                        .iter()
                        .enumerate()
                        .map(|(i, l)| (labels_key_of(l), i))
                        .collect();
                }
            }
        }
        hits.sort_by(order);
        hits.truncate(q.limit);
        if hits.iter().map(hit_len).sum::<usize>() > q.max_bytes {
            return Err(StoreError::TooLarge { limit: q.max_bytes });
        }
        let mut by_stream: BTreeMap<usize, Vec<Entry>> = BTreeMap::new();
        for (ts, _, _, idx, line, meta) in hits {
            by_stream
                .entry(idx)
                .or_default()
                .push(Entry::new(ts, line).with_metadata(meta));
        }
        Ok(by_stream
            .into_iter()
            .map(|(idx, entries)| StreamResult {
                labels: std::mem::take(&mut outs[idx]),
                entries,
            })
            .collect())
    }

    /// Streams of `query` visible to `team` with chunks overlapping `[start_ns, end_ns]`, and
    /// for each the chunks, lines and raw bytes of those chunks: what `index/stats` and
    /// `index/volume` report. Whole chunks are counted (as Loki's index statistics do), so
    /// the figures are an upper bound for a range that cuts a chunk.
    pub fn index_stats(
        &self,
        query: &LogQuery,
        team: Option<&str>,
        start_ns: i64,
        end_ns: i64,
    ) -> Result<Vec<(Labels, IndexCounts)>, StoreError> {
        self.db.read(|r| {
            let streams = Self::select_streams(r, query, team)?;
            let span = Span::new(start_ns, end_ns);
            let mut out = Vec::new();
            for (sid, labels) in streams {
                let c = r.chunk_counts(sid, span)?;
                if c.chunks > 0 {
                    out.push((labels, c));
                }
            }
            Ok(out)
        })
    }

    /// Whether the store answers a trivial read: what `/ready` reports.
    pub fn ping(&self) -> Result<(), StoreError> {
        self.db.read(|r| r.ping())
    }

    /// Calls `sink(stream labels, ts, line)` for every entry of `query`'s streams visible to
    /// `team` with `start_ns <= ts <= end_ns` that passes the query's pushed-down line
    /// filters (not its pipeline: the evaluator runs that). Reads one chunk at a time, so
    /// memory stays bounded whatever the range; the order is by chunk, not by time.
    pub fn scan(
        &self,
        query: &LogQuery,
        team: Option<&str>,
        start_ns: i64,
        end_ns: i64,
        sink: &mut fjord_logql::EntrySink<'_>,
    ) -> Result<(), StoreError> {
        let scan = Scan {
            query,
            team,
            start_ns,
            end_ns,
            part: (0, 1),
            deadline: Deadline::NONE,
        };
        self.scan_part(&scan, sink)
    }

    /// [`Store::scan`] over one share of the streams (`scan.part`), so that `part.1` threads,
    /// each with its own connection, scan disjoint streams; stopped at `scan.deadline`.
    pub fn scan_part(
        &self,
        scan: &Scan<'_>,
        sink: &mut fjord_logql::EntrySink<'_>,
    ) -> Result<(), StoreError> {
        let Scan {
            query,
            team,
            start_ns,
            end_ns,
            part,
            deadline,
        } = *scan;
        self.db.read(|r| {
            let parts = part.1.max(1);
            let streams: Vec<(i64, Labels)> = Self::select_streams(r, query, team)?
                .into_iter()
                .enumerate()
                .filter(|(i, _)| i % parts == part.0)
                .map(|(_, s)| s)
                .collect();
            let mut decoder = chunk::Decoder::new()?;
            let span = Span::new(start_ns, end_ns);
            for (sid, labels) in &streams {
                for c in r.chunks(*sid, span)? {
                    deadline.check()?;
                    let Some(data) = r.chunk_data(c.id)? else {
                        continue;
                    };
                    if !query.may_match(decoder.load(&data)?) {
                        continue;
                    }
                    let mut failed = None;
                    let mut watch = deadline.watch();
                    decoder.each(0, |r| {
                        let (ts, line) = (r.ts, r.line);
                        if failed.is_none()
                            && !watch.passed()
                            && ts >= start_ns
                            && ts <= end_ns
                            && query.keep_line(line)
                        {
                            let meta: Vec<(&str, &str)> = r.meta.iter().collect();
                            if let Err(e) = sink(labels, &meta, ts, line) {
                                failed = Some(e);
                            }
                        }
                    })?;
                    if let Some(e) = failed {
                        return Err(StoreError::Eval(e));
                    }
                    watch.result()?;
                }
            }
            Ok(())
        })
    }

    /// Totals per team from receipts and chunks.
    pub fn stats(&self, team: Option<&str>) -> Result<Vec<TeamStats>, StoreError> {
        let (receipts, stored) = self
            .db
            .read(|r| Ok((r.receipt_totals()?, r.stored_totals()?)))?;
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
        for (t, batches, records, raw_bytes) in receipts {
            let e = out.entry(t.clone()).or_insert_with(|| blank(&t));
            (e.batches, e.records, e.raw_bytes) = (batches, records, raw_bytes);
        }
        for (t, streams, lines, raw, compressed) in stored {
            let e = out.entry(t.clone()).or_insert_with(|| blank(&t));
            e.streams = streams;
            e.stored_lines = lines;
            e.stored_raw_bytes = raw;
            e.stored_compressed_bytes = compressed;
        }
        Ok(out
            .into_values()
            .filter(|s| team.is_none_or(|t| t == s.team))
            .collect())
    }

    /// Streams visible to `team` (all when `None`) that match `selector` (all when `None`)
    /// and have lines in `[start_ns, end_ns]`: what `/labels`, `/label/<n>/values` and
    /// `/series` report.
    pub fn streams_in_range(
        &self,
        selector: Option<&LogQuery>,
        team: Option<&str>,
        start_ns: i64,
        end_ns: i64,
    ) -> Result<Vec<Labels>, StoreError> {
        let found = self
            .db
            .read(|r| r.streams_with_chunks(team, Span::new(start_ns, end_ns)))?;
        let mut out = Vec::new();
        for json in found {
            let labels = parse_labels(&json)?;
            if selector.is_none_or(|q| q.matches_stream(&labels)) {
                out.push(labels);
            }
        }
        Ok(out)
    }

    /// Stored lines and bytes per stream and per team-day, for teams visible to `team`.
    pub fn stats_detail(&self, team: Option<&str>) -> Result<DetailStats, StoreError> {
        let rows = self.db.read(|r| r.detail(team))?;
        let mut streams: BTreeMap<String, StreamStats> = BTreeMap::new();
        let mut days: BTreeMap<(String, i64), DayStats> = BTreeMap::new();
        for (t, key, day, chunks, lines, raw, stored) in rows {
            if !streams.contains_key(&key) {
                let stream = parse_labels(&key)?;
                streams.insert(
                    key.clone(),
                    StreamStats {
                        team: t.clone(),
                        stream,
                        lines: 0,
                        raw_bytes: 0,
                        stored_bytes: 0,
                        chunks: 0,
                    },
                );
            }
            if let Some(s) = streams.get_mut(&key) {
                s.lines += lines;
                s.raw_bytes += raw;
                s.stored_bytes += stored;
                s.chunks += chunks;
            }
            let d = days.entry((t.clone(), day)).or_insert_with(|| DayStats {
                team: t,
                day: format_day(day),
                lines: 0,
                raw_bytes: 0,
                stored_bytes: 0,
            });
            d.lines += lines;
            d.raw_bytes += raw;
            d.stored_bytes += stored;
        }
        let mut streams: Vec<StreamStats> = streams.into_values().collect();
        streams.sort_by(|a, b| (&a.team, &a.stream).cmp(&(&b.team, &b.stream)));
        Ok(DetailStats {
            streams,
            days: days.into_values().collect(),
        })
    }

    /// Starts a live tail: the last `q.limit` entries of `q` and the cursor to follow from,
    /// read in one snapshot so that nothing falls between them.
    pub fn tail_begin(
        &self,
        q: &RangeQuery,
    ) -> Result<(Vec<StreamResult>, TailCursor), StoreError> {
        self.db.read(|r| {
            let cursor = r.tail_position()?;
            r.settled_only();
            let backfill = Self::query_range_on(r, q)?;
            Ok((backfill, cursor))
        })
    }

    /// Entries committed after `cursor` that match `query` (and `team`), from at most
    /// `max_chunks` chunks; advances the cursor past every chunk looked at.
    pub fn tail_next(
        &self,
        cursor: &mut TailCursor,
        query: &LogQuery,
        team: Option<&str>,
        max_chunks: usize,
        cache: &mut TailStreams,
    ) -> Result<Vec<StreamResult>, StoreError> {
        self.db.read(|r| {
            let found = r.chunks_after(*cursor, max_chunks)?;
            if cache.len() > MAX_TAIL_STREAM_CACHE {
                cache.clear();
            }
            let mut by_stream: BTreeMap<i64, Vec<Entry>> = BTreeMap::new();
            for (at, sid) in found {
                *cursor = at;
                let wanted = match cache.entry(sid) {
                    std::collections::hash_map::Entry::Occupied(e) => e.get().is_some(),
                    std::collections::hash_map::Entry::Vacant(e) => {
                        let Some((t, json)) = r.stream(sid)? else {
                            continue;
                        };
                        let labels = parse_labels(&json)?;
                        let visible = team.is_none_or(|want| want == t);
                        e.insert((visible && query.matches_stream(&labels)).then_some(labels))
                            .is_some()
                    }
                };
                if !wanted {
                    continue;
                }
                let Some(data) = r.chunk_data(at.id)? else {
                    continue; // compacted or erased meanwhile
                };
                let out = by_stream.entry(sid).or_default();
                chunk::decode_each(&data, 0, |r| {
                    if query.keep_line(r.line) {
                        out.push(Entry::new(r.ts, r.line).with_metadata(r.meta.iter()));
                    }
                })?;
            }
            Ok(by_stream
                .into_iter()
                .filter(|(_, e)| !e.is_empty())
                .filter_map(|(sid, mut entries)| {
                    entries.sort_by_key(|e| e.ts_ns);
                    let labels = cache.get(&sid)?.clone()?;
                    Some(StreamResult { labels, entries })
                })
                .collect())
        })
    }

    /// Current time in Unix epoch ns (the receipt clock).
    pub fn now_ns() -> i64 {
        now_ns()
    }
}

/// The hex SHA-256 of a push's `payload` (its uncompressed JSON body, the receipt's
/// `payload_sha256`) and the entry digest of `req` stored for `team`. The payload is one long
/// message whose blocks form one dependent chain; they are compressed in the same paired
/// instruction stream as the entries' (`sha256x2.rs`), which costs little more than the
/// entries alone. The results are those of `sha2::Sha256` and [`Store::ingest`].
pub fn hash_batch(
    payload: &[u8],
    req: &PushRequest,
    team: &str,
) -> Result<(String, EntryDigest), StoreError> {
    let mut long = sha256x2::Long::new(payload);
    let digest = entry_digest(req, team, Some(&mut long))?;
    Ok((hex::encode(long.finish()), digest))
}

/// The entry digest of `req` stored for `team`, with `long`'s blocks hashed alongside.
fn entry_digest(
    req: &PushRequest,
    team: &str,
    mut long: Option<&mut sha256x2::Long<'_>>,
) -> Result<EntryDigest, StoreError> {
    let mut digest = EntryDigest::default();
    for s in req.streams.iter().filter(|s| !s.values.is_empty()) {
        let hasher = StreamHasher::new(&labels_key(&s.stream, team)?);
        let entries = s
            .values
            .iter()
            .map(|e| (e.ts_ns, e.line(), e.metadata.as_slice()));
        digest.add(&hasher.sum_with(entries, long.as_deref_mut()));
    }
    Ok(digest)
}

/// One hit of a log query: (ts, chunk id, position in the chunk, label set index, line,
/// structured metadata).
type Hit = (i64, i64, u32, usize, String, Vec<(String, String)>);

/// The bytes a hit holds, for the answer's byte limit.
fn hit_len(h: &Hit) -> usize {
    h.4.len() + h.5.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>()
}

/// Splits entries into runs of about `target` raw bytes (at least one entry each).
fn split_by_bytes<'a, E: std::borrow::Borrow<Entry<'a>>>(
    entries: &[E],
    target: usize,
) -> impl Iterator<Item = &[E]> {
    let mut rest = entries;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut bytes = 0;
        let mut n = 0;
        while n < rest.len() && (n == 0 || bytes + rest[n].borrow().line.len() <= target) {
            bytes += rest[n].borrow().line.len();
            n += 1;
        }
        let (head, tail) = rest.split_at(n);
        rest = tail;
        Some(head)
    })
}

/// Groups entries by UTC day, keeping their order within a day. Nearly every batch falls
/// within one day, which costs one pass and one vector of references.
fn by_day<'e, 'a>(entries: &'e [Entry<'a>]) -> Vec<(i64, Vec<&'e Entry<'a>>)> {
    let first = day_of(entries.first().map_or(0, |e| e.ts_ns));
    if entries.iter().all(|e| day_of(e.ts_ns) == first) {
        return vec![(first, entries.iter().collect())];
    }
    let mut days: BTreeMap<i64, Vec<&Entry<'a>>> = BTreeMap::new();
    for e in entries {
        days.entry(day_of(e.ts_ns)).or_default().push(e);
    }
    days.into_iter().collect()
}

/// The canonical key of a stream: its labels with `team` set to the stamped team, as JSON
/// with sorted keys.
fn labels_key(labels: &Labels, team: &str) -> Result<String, StoreError> {
    let mut labels = labels.clone();
    labels.insert("team".to_owned(), team.to_owned());
    serde_json::to_string(&labels).map_err(|e| StoreError::Labels(e.to_string()))
}

/// The interning key of a label set (as `LabelBuf::key_into` writes it).
fn labels_key_of(l: &Labels) -> String {
    let mut out = String::new();
    for (k, v) in l {
        out.push_str(k);
        out.push('\u{0}');
        out.push_str(v);
        out.push('\u{1}');
    }
    out
}

fn parse_labels(json: &str) -> Result<Labels, StoreError> {
    serde_json::from_str(json).map_err(|e| StoreError::Labels(e.to_string()))
}

/// Day numbers to scan for `[start, end]`. One day earlier than the start covers chunks
/// written before chunks were split by day (schema 1), which could cross midnight.
fn day_bounds(start_ns: i64, end_ns: i64) -> (i64, i64) {
    (day_of(start_ns) - 1, day_of(end_ns))
}

#[cfg(test)]
mod tests;
