//! The storage seam: what a database backend does for the store. A backend only moves rows
//! and bytes; the chunk format, entry digests, dedup, stream limits, query evaluation and the
//! shapes of answers stay above it, in the store, the same for every backend.
//!
//! Two traits, each used inside one database transaction or snapshot that the backend opens
//! and closes around a closure ([`super::Db::read`], [`super::Db::ingest`]): [`Reader`] for
//! queries, [`IngestTx`] for storing one batch. Every call blocks; the server runs them on
//! the blocking pool.

use super::chain::{ChainTx, LedgerRow};
use super::chunk::EncodedChunk;
use super::{ErasureRecord, IndexCounts, StoreError, TailCursor};

/// A chunk's place: id, first and last timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkSpan {
    pub id: i64,
    pub min_ts: i64,
    pub max_ts: i64,
}

/// The time range of a read, with the UTC days it touches (for the day index or partitions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub start_ns: i64,
    pub end_ns: i64,
    pub first_day: i64,
    pub last_day: i64,
}

impl Span {
    pub fn new(start_ns: i64, end_ns: i64) -> Span {
        let (first_day, last_day) = super::day_bounds(start_ns, end_ns);
        Span {
            start_ns,
            end_ns,
            first_day,
            last_day,
        }
    }
}

/// Receipt totals of one team: batches, records, raw bytes.
pub type ReceiptTotals = (String, u64, u64, u64);

/// Stored totals of one team: streams, lines, raw bytes, compressed bytes.
pub type StoredTotals = (String, u64, u64, u64, u64);

/// Stored totals of one stream on one day: team, labels JSON, day, chunks, lines, raw bytes,
/// compressed bytes.
pub type DetailRow = (String, String, i64, u64, u64, u64, u64);

/// Reads, all within one snapshot of the database.
pub trait Reader {
    /// Streams `(id, canonical labels JSON)` of `team` (all when `None`), by id.
    fn streams(&mut self, team: Option<&str>) -> Result<Vec<(i64, String)>, StoreError>;
    /// The team and labels JSON of stream `id`.
    fn stream(&mut self, id: i64) -> Result<Option<(String, String)>, StoreError>;
    /// Chunks of stream `sid` that overlap `span`, by `(min_ts, id)`.
    fn chunks(&mut self, sid: i64, span: Span) -> Result<Vec<ChunkSpan>, StoreError>;
    /// The stored bytes of chunk `id`, if it is still there.
    fn chunk_data(&mut self, id: i64) -> Result<Option<Vec<u8>>, StoreError>;
    /// Chunks, lines and raw bytes of stream `sid`'s chunks that overlap `span`.
    fn chunk_counts(&mut self, sid: i64, span: Span) -> Result<IndexCounts, StoreError>;
    /// Labels JSON of the streams of `team` (all when `None`) with chunks overlapping `span`.
    fn streams_with_chunks(
        &mut self,
        team: Option<&str>,
        span: Span,
    ) -> Result<Vec<String>, StoreError>;
    /// Receipt totals per team.
    fn receipt_totals(&mut self) -> Result<Vec<ReceiptTotals>, StoreError>;
    /// Stored totals per team.
    fn stored_totals(&mut self) -> Result<Vec<StoredTotals>, StoreError>;
    /// Stored totals per stream and day of `team` (all when `None`), by team, stream, day.
    fn detail(&mut self, team: Option<&str>) -> Result<Vec<DetailRow>, StoreError>;
    /// A trivial read: whether the database answers.
    fn ping(&mut self) -> Result<(), StoreError>;
    /// The newest position a live tail may start after.
    fn tail_position(&mut self) -> Result<TailCursor, StoreError>;
    /// From now on [`Reader::chunks`] lists only chunks a live tail started at
    /// [`Reader::tail_position`] will not send again (on PostgreSQL, those of transactions
    /// that ended before every one still running began; the others follow on the tail's
    /// first polls). SQLite's single writer needs nothing.
    fn settled_only(&mut self) {}
    /// `(cursor, stream id)` of at most `limit` chunks after `after`, in the order the live
    /// tail follows: no chunk can later appear before the last one returned.
    fn chunks_after(
        &mut self,
        after: TailCursor,
        limit: usize,
    ) -> Result<Vec<(TailCursor, i64)>, StoreError>;
}

/// What an ingest found for a batch id already stored: its entry digest (receipts from before
/// schema 3 have none) and payload SHA-256.
pub type SeenBatch = (Option<String>, String);

pub use super::ReceiptRow;

/// The writes of one ingest, in one transaction that commits when the closure returns `Ok`.
/// Its links are appended to the audit chain last ([`super::chain::append`]).
pub trait IngestTx: ChainTx {
    /// The receipt of `team`'s batch `batch_id`, if stored.
    fn seen(&mut self, team: &str, batch_id: &str) -> Result<Option<SeenBatch>, StoreError>;
    /// Inserts the receipt and returns its id (the batch's ingest sequence), or `None` when
    /// the batch id was stored meanwhile by a transaction that committed first.
    fn insert_receipt(&mut self, r: &ReceiptRow<'_>) -> Result<Option<i64>, StoreError>;
    /// How many streams `team` has.
    fn team_streams(&mut self, team: &str) -> Result<usize, StoreError>;
    /// The id of the stream with canonical labels `key`.
    fn find_stream(&mut self, key: &str) -> Result<Option<i64>, StoreError>;
    /// Creates the stream (or finds the one created meanwhile) and returns its id.
    fn insert_stream(&mut self, team: &str, key: &str, now_ns: i64) -> Result<i64, StoreError>;
    /// Records an entry's dedup key; false if it was there.
    fn add_entry_key(&mut self, sid: i64, ts: i64, key: i64) -> Result<bool, StoreError>;
    /// Stores one encoded chunk of stream `sid` for ingest sequence `seq`.
    fn insert_chunk(
        &mut self,
        sid: i64,
        seq: i64,
        day: i64,
        c: &EncodedChunk,
    ) -> Result<(), StoreError>;
    /// The newest `seq` stored of `agent`'s ledger in `team`.
    fn last_ledger_seq(&mut self, team: &str, agent: &str) -> Result<Option<i64>, StoreError>;
    /// Inserts a row of an agent's ledger (its `id` is ignored) and returns its id, or `None`
    /// when the row (team, agent, seq) was stored meanwhile.
    fn insert_ledger_row(&mut self, r: &LedgerRow<'_>) -> Result<Option<i64>, StoreError>;
    /// Records entries not stored again because they were stored already; returns the
    /// removal's id.
    fn insert_duplicates(
        &mut self,
        at_ns: i64,
        seq: i64,
        lines: u64,
        digest: &str,
    ) -> Result<i64, StoreError>;
}

/// The writes of one erasure, in one transaction that commits when the closure returns `Ok`.
/// No compaction or retention runs meanwhile. Its links are appended to the audit chain last.
pub trait EraseTx: ChainTx {
    /// Streams `(id, canonical labels JSON)` of `team` (all when `None`), by id.
    fn streams(&mut self, team: Option<&str>) -> Result<Vec<(i64, String)>, StoreError>;
    /// Chunks of stream `sid` that overlap `span`.
    fn chunks(&mut self, sid: i64, span: Span) -> Result<Vec<ChunkSpan>, StoreError>;
    /// The stored bytes, row `seq` and day of chunk `id`, if it is still there.
    fn chunk(&mut self, id: i64) -> Result<Option<(Vec<u8>, i64, i64)>, StoreError>;
    /// Drops an erased entry's dedup key.
    fn forget_key(&mut self, sid: i64, ts: i64, key: i64) -> Result<(), StoreError>;
    /// Deletes chunk `id` of `day`, all of whose lines were erased.
    fn delete_chunk(&mut self, id: i64, day: i64) -> Result<(), StoreError>;
    /// Replaces chunk `id` of `day` with the lines it keeps (its `seq` stays).
    fn update_chunk(&mut self, id: i64, day: i64, c: &EncodedChunk) -> Result<(), StoreError>;
    /// Writes the erasure log row (its `id` is ignored) and returns its id.
    fn insert_erasure(&mut self, r: &ErasureRecord) -> Result<i64, StoreError>;
    /// Records lines of batch `seq` removed by erasure `erasure_id`; returns the removal's id.
    fn insert_erasure_removal(
        &mut self,
        at_ns: i64,
        erasure_id: i64,
        operator: &str,
        seq: i64,
        lines: u64,
        digest: &str,
    ) -> Result<i64, StoreError>;
}
