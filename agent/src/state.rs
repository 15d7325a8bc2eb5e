//! The agent's state DB (SQLite, WAL) on the shared volume: per-file checkpoints, the
//! outbound ledger, and pending batch boundaries. One module owns the connection.
//!
//! Invariants: a checkpoint is the byte offset just after the last line the aggregator
//! acknowledged, and it advances in the same transaction as the ledger row of that batch.
//! Before a batch is first sent its boundaries are recorded as pending, so a restarted agent
//! re-forms exactly the same batch (same id, same bytes) and the aggregator's idempotency
//! makes the replay harmless.
//!
//! One thread owns the connection ([`StateOwner`]); the tailer and the shipper send it work
//! through a [`StateHandle`] and wait for the answer, blocking (the tailer's thread) or
//! awaiting (the shipper's tasks). No task holds a lock on the DB across an `.await`, and no
//! SQLite call runs on the async runtime.

use std::path::Path;
use std::time::Duration;

use fjord_wire::clock::now_ns;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

/// File name of the state DB inside the state directory.
pub const STATE_DB: &str = "fjord-agent.db";

const MIGRATIONS: &[&str] = &[
    "CREATE TABLE files (
        dev_ino     TEXT PRIMARY KEY,       -- device:inode
        identity    TEXT NOT NULL,          -- stable id used in batch ids
        fp_len      INTEGER NOT NULL,       -- bytes covered by fp_hash
        fp_hash     TEXT NOT NULL,          -- SHA-256 prefix of the first fp_len bytes
        path        TEXT NOT NULL,
        offset      INTEGER NOT NULL,       -- just after the last acknowledged line
        updated_ns  INTEGER NOT NULL
     );
     CREATE TABLE pending (
        batch_id    TEXT PRIMARY KEY,
        identity    TEXT NOT NULL,
        start_off   INTEGER NOT NULL,
        end_off     INTEGER NOT NULL
     );
     CREATE INDEX pending_identity ON pending(identity, start_off);
     CREATE TABLE ledger (
        id             INTEGER PRIMARY KEY,
        batch_id       TEXT NOT NULL,
        sent_ns        INTEGER NOT NULL,
        destination    TEXT NOT NULL,
        region         TEXT NOT NULL,
        jurisdiction   TEXT NOT NULL,
        path           TEXT NOT NULL,
        start_off      INTEGER NOT NULL,
        end_off        INTEGER NOT NULL,
        records        INTEGER NOT NULL,
        raw_bytes      INTEGER NOT NULL,
        compressed_bytes INTEGER NOT NULL,
        payload_sha256 TEXT NOT NULL,
        rules_version  TEXT NOT NULL,
        redactions     TEXT NOT NULL,
        outcome        TEXT NOT NULL        -- acked | duplicate | dead_letter | lost
     );",
    // 2: checkpoints keyed by content identity, so an identity can move to another inode
    // (copytruncate's copy) and a reused inode can carry a new identity; `seen_ns` lets
    // entries of files gone for long be forgotten.
    "CREATE TABLE checkpoints (
        identity    TEXT PRIMARY KEY,       -- stable id used in batch ids
        dev_ino     TEXT NOT NULL,          -- device:inode where it was last seen
        fp_len      INTEGER NOT NULL,       -- bytes covered by fp_hash
        fp_hash     TEXT NOT NULL,          -- SHA-256 prefix of the first fp_len bytes
        path        TEXT NOT NULL,
        offset      INTEGER NOT NULL,       -- just after the last acknowledged line
        updated_ns  INTEGER NOT NULL,
        seen_ns     INTEGER NOT NULL
     );
     INSERT INTO checkpoints SELECT identity, dev_ino, fp_len, fp_hash, path, offset, updated_ns, updated_ns FROM files;
     DROP TABLE files;
     CREATE INDEX checkpoints_dev_ino ON checkpoints(dev_ino);
     CREATE INDEX checkpoints_fp ON checkpoints(fp_hash);
     CREATE INDEX ledger_sent ON ledger(sent_ns);",
    // 3: why bytes were lost (outcome `lost`): `rotated_away` or `truncated`.
    "ALTER TABLE ledger ADD COLUMN reason TEXT NOT NULL DEFAULT '';",
    // 4: the first record's timestamp of a pending batch, so that the batch re-formed after
    // a restart carries the same timestamps, and so the same payload, as the batch sent.
    "ALTER TABLE pending ADD COLUMN first_ts INTEGER;",
    // 5: how far the ledger has been shipped to each aggregator (`POST /v1/ledger`): the
    // newest ledger row id it acknowledged. Rows not yet shipped are not pruned.
    "CREATE TABLE ledger_shipped (
        destination TEXT PRIMARY KEY,
        last_id     INTEGER NOT NULL
     );",
];

/// The ledger's columns as [`ledger_row`] reads them.
const LEDGER_COLUMNS: &str = "id, batch_id, sent_ns, destination, region, jurisdiction, path,
    start_off, end_off, records, raw_bytes, compressed_bytes, payload_sha256, rules_version,
    redactions, outcome, reason";

/// A ledger row of [`LEDGER_COLUMNS`], with its id.
fn ledger_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(i64, LedgerRecord)> {
    let redactions: String = r.get(14)?;
    let outcome: String = r.get(15)?;
    let outcome = Outcome::parse(&outcome).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            15,
            rusqlite::types::Type::Text,
            format!("unknown ledger outcome {outcome:?}").into(),
        )
    })?;
    Ok((
        r.get(0)?,
        LedgerRecord {
            batch_id: r.get(1)?,
            sent_ns: r.get(2)?,
            destination: r.get(3)?,
            region: r.get(4)?,
            jurisdiction: r.get(5)?,
            path: r.get(6)?,
            start_off: r.get::<_, i64>(7)? as u64,
            end_off: r.get::<_, i64>(8)? as u64,
            records: r.get::<_, i64>(9)? as u64,
            raw_bytes: r.get::<_, i64>(10)? as u64,
            compressed_bytes: r.get::<_, i64>(11)? as u64,
            payload_sha256: r.get(12)?,
            rules_version: r.get(13)?,
            redactions: fjord_wire::headers::parse_redactions(&redactions).unwrap_or_default(),
            outcome,
            reason: r.get(16)?,
        },
    ))
}

/// A checkpoint row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub identity: String,
    pub dev_ino: String,
    pub path: String,
    pub fp_len: u64,
    pub fp_hash: String,
    pub offset: u64,
}

pub use fjord_wire::ledger::{LedgerRecord, Outcome};

/// A batch of one identity formed and sent (or about to be), not yet answered: re-formed
/// after a restart with the same boundaries and timestamps, so it is the same payload under
/// the same id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingBatch {
    pub start: u64,
    pub end: u64,
    /// The first record's timestamp (Unix ns); `None` for rows from before schema 4.
    pub first_ts: Option<i64>,
}

/// A batch sent (or about to be) and not yet answered.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PendingEntry {
    pub batch_id: String,
    pub path: Option<String>,
    pub start_off: u64,
    pub end_off: u64,
}

/// Why the state DB could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("state DB schema {found} is newer than this agent ({known}); upgrade fjord-agent")]
    Newer { found: i64, known: i64 },
    #[error("state DB schema {found} does not match this agent ({known}); use the agent version that wrote it")]
    Other { found: i64, known: i64 },
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
}

/// The state DB.
pub struct State {
    conn: Connection,
    fresh: bool,
}

fn age_cutoff(age: Duration) -> i64 {
    now_ns().saturating_sub(i64::try_from(age.as_nanos()).unwrap_or(i64::MAX))
}

fn checkpoint_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Checkpoint> {
    Ok(Checkpoint {
        identity: r.get(0)?,
        dev_ino: r.get(1)?,
        path: r.get(2)?,
        fp_len: r.get::<_, i64>(3)? as u64,
        fp_hash: r.get(4)?,
        offset: r.get::<_, i64>(5)? as u64,
    })
}

const CHECKPOINT_COLUMNS: &str = "identity, dev_ino, path, fp_len, fp_hash, offset";

impl State {
    /// Opens (creating) the state DB in `dir` and migrates it.
    pub fn open(dir: &Path) -> Result<State, OpenError> {
        let conn = Connection::open(dir.join(STATE_DB))?;
        conn.busy_timeout(Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        let mut s = State { conn, fresh: false };
        let tx = s
            .conn
            .transaction_with_behavior(TransactionBehavior::Exclusive)?;
        let v: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
        let known = MIGRATIONS.len() as i64;
        if v > known {
            return Err(OpenError::Newer { found: v, known });
        }
        for m in &MIGRATIONS[v as usize..] {
            tx.execute_batch(m)?;
        }
        tx.pragma_update(None, "user_version", known)?;
        tx.commit()?;
        s.fresh = v == 0;
        Ok(s)
    }

    /// Opens an existing state DB for reading only (audits while the agent runs): no
    /// migration, no writes.
    pub fn open_read_only(dir: &Path) -> Result<State, OpenError> {
        let conn = Connection::open_with_flags(
            dir.join(STATE_DB),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(Duration::from_secs(10))?;
        let v: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if v != MIGRATIONS.len() as i64 {
            return Err(OpenError::Other {
                found: v,
                known: MIGRATIONS.len() as i64,
            });
        }
        Ok(State { conn, fresh: false })
    }

    /// Ledger rows committed in `[from_ns, to_ns)`, oldest first.
    pub fn ledger(&self, from_ns: i64, to_ns: i64) -> Result<Vec<LedgerRecord>, rusqlite::Error> {
        let mut st = self.conn.prepare(&format!(
            "SELECT {LEDGER_COLUMNS} FROM ledger WHERE sent_ns >= ?1 AND sent_ns < ?2
             ORDER BY sent_ns, id"
        ))?;
        let rows = st.query_map(params![from_ns, to_ns], |r| ledger_row(r).map(|(_, l)| l))?;
        rows.collect()
    }

    /// At most `limit` ledger rows with an id above `after`, by id, with their ids: what is
    /// still to ship to an aggregator.
    pub fn ledger_after(
        &self,
        after: i64,
        limit: usize,
    ) -> Result<Vec<(i64, LedgerRecord)>, rusqlite::Error> {
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT {LEDGER_COLUMNS} FROM ledger WHERE id > ?1 ORDER BY id LIMIT ?2"
        ))?;
        let rows = st.query_map(params![after, limit as i64], ledger_row)?;
        rows.collect()
    }

    /// The newest ledger row id `destination` acknowledged (0: none).
    pub fn ledger_shipped(&self, destination: &str) -> Result<i64, rusqlite::Error> {
        Ok(self
            .conn
            .query_row(
                "SELECT last_id FROM ledger_shipped WHERE destination = ?1",
                [destination],
                |r| r.get(0),
            )
            .optional()?
            .unwrap_or(0))
    }

    /// Records that `destination` holds the ledger up to row `last_id`.
    pub fn set_ledger_shipped(
        &self,
        destination: &str,
        last_id: i64,
    ) -> Result<(), rusqlite::Error> {
        self.conn.execute(
            "INSERT INTO ledger_shipped (destination, last_id) VALUES (?1, ?2)
             ON CONFLICT (destination) DO UPDATE SET last_id = max(last_id, excluded.last_id)",
            params![destination, last_id],
        )?;
        Ok(())
    }

    /// Every batch recorded as pending (sent or about to be, no final answer yet).
    pub fn pending_all(&self) -> Result<Vec<PendingEntry>, rusqlite::Error> {
        let mut st = self.conn.prepare(
            "SELECT p.batch_id, c.path, p.start_off, p.end_off FROM pending p
             LEFT JOIN checkpoints c ON c.identity = p.identity ORDER BY p.rowid",
        )?;
        let rows = st.query_map([], |r| {
            Ok(PendingEntry {
                batch_id: r.get(0)?,
                path: r.get(1)?,
                start_off: r.get::<_, i64>(2)? as u64,
                end_off: r.get::<_, i64>(3)? as u64,
            })
        })?;
        rows.collect()
    }

    /// Whether this DB was created by this process: the agent's first start on the volume.
    pub fn is_fresh(&self) -> bool {
        self.fresh
    }

    /// The checkpoints recorded for a device:inode, newest first.
    pub fn checkpoints_of(&self, dev_ino: &str) -> Result<Vec<Checkpoint>, rusqlite::Error> {
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT {CHECKPOINT_COLUMNS} FROM checkpoints WHERE dev_ino = ?1 ORDER BY updated_ns DESC"
        ))?;
        let rows = st.query_map([dev_ino], checkpoint_row)?;
        rows.collect()
    }

    /// Checkpoints whose full-length fingerprint is `fp_hash`, newest first: a copy of a
    /// file we were reading (copytruncate) carries the same first bytes.
    pub fn checkpoints_by_fingerprint(
        &self,
        fp_len: u64,
        fp_hash: &str,
    ) -> Result<Vec<Checkpoint>, rusqlite::Error> {
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT {CHECKPOINT_COLUMNS} FROM checkpoints WHERE fp_hash = ?1 AND fp_len = ?2 ORDER BY updated_ns DESC"
        ))?;
        let rows = st.query_map(params![fp_hash, fp_len as i64], checkpoint_row)?;
        rows.collect()
    }

    /// Records (or replaces) a checkpoint.
    pub fn put_checkpoint(&self, c: &Checkpoint) -> Result<(), rusqlite::Error> {
        let now = now_ns();
        self.conn.execute(
            "INSERT INTO checkpoints (identity, dev_ino, path, fp_len, fp_hash, offset, updated_ns, seen_ns)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)
             ON CONFLICT(identity) DO UPDATE SET dev_ino = ?2, path = ?3, fp_len = ?4,
               fp_hash = ?5, offset = MAX(offset, ?6), updated_ns = ?7, seen_ns = ?7",
            params![
                c.identity,
                c.dev_ino,
                c.path,
                c.fp_len as i64,
                c.fp_hash,
                c.offset as i64,
                now
            ],
        )?;
        Ok(())
    }

    /// Marks these identities as present now, and forgets checkpoints (with their pending
    /// batches) of files not seen for `ttl`. Returns how many were forgotten.
    pub fn touch_and_forget(
        &mut self,
        present: &[&str],
        ttl: Duration,
    ) -> Result<usize, rusqlite::Error> {
        let tx = self.conn.transaction()?;
        let now = now_ns();
        {
            let mut st =
                tx.prepare_cached("UPDATE checkpoints SET seen_ns = ?2 WHERE identity = ?1")?;
            for id in present {
                st.execute(params![id, now])?;
            }
        }
        let cutoff = age_cutoff(ttl);
        tx.execute(
            "DELETE FROM pending WHERE identity IN (SELECT identity FROM checkpoints WHERE seen_ns < ?1)",
            [cutoff],
        )?;
        let n = tx.execute("DELETE FROM checkpoints WHERE seen_ns < ?1", [cutoff])?;
        tx.commit()?;
        Ok(n)
    }

    /// Removes ledger rows older than `retention`, except rows not yet shipped to every
    /// aggregator that took the ledger before, and the newest row (so that row ids, which
    /// aggregators follow, never start again from 1).
    pub fn prune_ledger(&self, retention: Duration) -> Result<usize, rusqlite::Error> {
        self.conn.execute(
            "DELETE FROM ledger WHERE sent_ns < ?1
               AND id < (SELECT max(id) FROM ledger)
               AND id <= coalesce((SELECT min(last_id) FROM ledger_shipped), id)",
            [age_cutoff(retention)],
        )
    }

    /// The acknowledged offset of an identity.
    pub fn offset(&self, identity: &str) -> Result<Option<u64>, rusqlite::Error> {
        self.conn
            .query_row(
                "SELECT offset FROM checkpoints WHERE identity = ?1",
                [identity],
                |r| r.get::<_, i64>(0),
            )
            .optional()
            .map(|o| o.map(|v| v as u64))
    }

    /// Pending batches of a file identity, by start offset.
    pub fn pending(&self, identity: &str) -> Result<Vec<PendingBatch>, rusqlite::Error> {
        let mut st = self.conn.prepare_cached(
            "SELECT start_off, end_off, first_ts FROM pending WHERE identity = ?1 ORDER BY start_off",
        )?;
        let rows = st.query_map([identity], |r| {
            Ok(PendingBatch {
                start: r.get::<_, i64>(0)? as u64,
                end: r.get::<_, i64>(1)? as u64,
                first_ts: r.get(2)?,
            })
        })?;
        rows.collect()
    }

    /// Records a batch's boundaries and first timestamp before its first send.
    pub fn add_pending(
        &self,
        batch_id: &str,
        identity: &str,
        b: PendingBatch,
    ) -> Result<(), rusqlite::Error> {
        self.conn.execute(
            "INSERT OR IGNORE INTO pending (batch_id, identity, start_off, end_off, first_ts)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![batch_id, identity, b.start as i64, b.end as i64, b.first_ts],
        )?;
        Ok(())
    }

    /// After an ack (or dead-letter): ledger row, checkpoint advance and pending removal in
    /// one transaction. `row` is `None` for a range whose lines were all dropped by rules:
    /// nothing left the pod, only the checkpoint moves.
    pub fn commit_batch(
        &mut self,
        identity: &str,
        batch_id: &str,
        end_off: u64,
        row: Option<&LedgerRecord>,
    ) -> Result<(), rusqlite::Error> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let now = now_ns();
        if let Some(row) = row {
            tx.execute(
                "INSERT INTO ledger (batch_id, sent_ns, destination, region, jurisdiction, path, start_off,
                   end_off, records, raw_bytes, compressed_bytes, payload_sha256, rules_version, redactions, outcome)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
                params![
                    row.batch_id,
                    now,
                    row.destination,
                    row.region,
                    row.jurisdiction,
                    row.path,
                    row.start_off as i64,
                    row.end_off as i64,
                    row.records as i64,
                    row.raw_bytes as i64,
                    row.compressed_bytes as i64,
                    row.payload_sha256,
                    row.rules_version,
                    fjord_wire::headers::format_redactions(&row.redactions),
                    row.outcome.as_str()
                ],
            )?;
        }
        tx.execute(
            "UPDATE checkpoints SET offset = MAX(offset, ?2), updated_ns = ?3, seen_ns = ?3 WHERE identity = ?1",
            params![identity, end_off as i64, now],
        )?;
        tx.execute("DELETE FROM pending WHERE batch_id = ?1", [batch_id])?;
        tx.commit()
    }
}

/// A loss: bytes of a file that a rotation deleted (or a truncation cut) before they were
/// read. Recorded in the ledger, so an audit shows it instead of not knowing about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loss {
    pub path: String,
    /// The first byte not read.
    pub start_off: u64,
    /// The end of what the file was last seen to hold.
    pub end_off: u64,
    /// Why: `rotated_away` or `truncated`.
    pub reason: &'static str,
}

impl State {
    /// Every checkpoint seen within `ttl`, newest first: after a restart, the identities
    /// whose file may have been rotated while the agent was down.
    pub fn recent_checkpoints(&self, ttl: Duration) -> Result<Vec<Checkpoint>, rusqlite::Error> {
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT {CHECKPOINT_COLUMNS} FROM checkpoints WHERE seen_ns >= ?1 ORDER BY updated_ns DESC"
        ))?;
        let rows = st.query_map([age_cutoff(ttl)], checkpoint_row)?;
        rows.collect()
    }

    /// Checkpoints seen within `ttl` whose path is a proper prefix of `path`: the
    /// identities a file at `path` may be a rotated copy of.
    pub fn checkpoints_extended_by(
        &self,
        path: &str,
        ttl: Duration,
    ) -> Result<Vec<Checkpoint>, rusqlite::Error> {
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT {CHECKPOINT_COLUMNS} FROM checkpoints
             WHERE seen_ns >= ?2 AND length(path) < length(?1)
               AND substr(?1, 1, length(path)) = path
             ORDER BY updated_ns DESC"
        ))?;
        let rows = st.query_map(params![path, age_cutoff(ttl)], checkpoint_row)?;
        rows.collect()
    }

    /// Records a loss as a ledger row with outcome `lost`, and forgets the identity's
    /// pending batches (their bytes are gone).
    pub fn record_loss(&mut self, identity: &str, loss: &Loss) -> Result<(), rusqlite::Error> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute(
            "INSERT INTO ledger (batch_id, sent_ns, destination, region, jurisdiction, path, start_off,
               end_off, records, raw_bytes, compressed_bytes, payload_sha256, rules_version, redactions, outcome,
               reason)
             VALUES (?1, ?2, '', '', '', ?3, ?4, ?5, 0, ?6, 0, '', '', '{}', ?7, ?8)",
            params![
                format!("lost:{identity}:{}", loss.start_off),
                now_ns(),
                loss.path,
                loss.start_off as i64,
                loss.end_off as i64,
                loss.end_off.saturating_sub(loss.start_off) as i64,
                Outcome::Lost.as_str(),
                loss.reason,
            ],
        )?;
        tx.execute("DELETE FROM pending WHERE identity = ?1", [identity])?;
        tx.commit()
    }
}

/// Work for the thread that owns the state DB.
type Job = Box<dyn FnOnce(&mut State) + Send>;

/// The state DB is gone: its thread stopped (the agent is shutting down).
#[derive(Debug, thiserror::Error)]
#[error("the state DB thread has stopped")]
pub struct StateGone;

/// A handle to the thread that owns the state DB. Cheap to clone.
#[derive(Clone)]
pub struct StateHandle {
    /// Why bounded: a caller that outruns the DB waits here (the tailer blocks, the shipper
    /// awaits) instead of queueing work without limit.
    jobs: tokio::sync::mpsc::Sender<Job>,
    fresh: bool,
}

/// Owns the state DB and runs the jobs sent through its [`StateHandle`]s until every handle
/// is dropped.
pub struct StateOwner {
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Jobs waiting for the state DB's thread.
const STATE_QUEUE: usize = 64;

impl StateOwner {
    /// Starts the thread that owns `state`.
    pub fn start(state: State) -> std::io::Result<(StateOwner, StateHandle)> {
        let fresh = state.is_fresh();
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Job>(STATE_QUEUE);
        let thread = std::thread::Builder::new()
            .name("fjord-state".into())
            .spawn(move || {
                let mut state = state;
                while let Some(job) = rx.blocking_recv() {
                    job(&mut state);
                }
            })?;
        Ok((
            StateOwner {
                thread: Some(thread),
            },
            StateHandle { jobs: tx, fresh },
        ))
    }

    /// Waits until every handle is dropped and the last job has run.
    pub fn join(mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl StateHandle {
    /// Whether the DB was created by this process (the agent's first start on the volume).
    pub fn is_fresh(&self) -> bool {
        self.fresh
    }

    fn job<T: Send + 'static>(
        f: impl FnOnce(&mut State) -> T + Send + 'static,
    ) -> (Job, tokio::sync::oneshot::Receiver<T>) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |s| {
            let _ = tx.send(f(s));
        });
        (job, rx)
    }

    /// Runs `f` on the DB and waits for its answer, blocking this thread. Not for the async
    /// runtime: use [`StateHandle::run`] there.
    pub fn run_blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut State) -> T + Send + 'static,
    ) -> Result<T, StateGone> {
        let (job, rx) = Self::job(f);
        self.jobs.blocking_send(job).map_err(|_| StateGone)?;
        rx.blocking_recv().map_err(|_| StateGone)
    }

    /// Runs `f` on the DB and awaits its answer.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut State) -> T + Send + 'static,
    ) -> Result<T, StateGone> {
        let (job, rx) = Self::job(f);
        self.jobs.send(job).await.map_err(|_| StateGone)?;
        rx.await.map_err(|_| StateGone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(batch_id: &str, end: u64) -> LedgerRecord {
        LedgerRecord {
            sent_ns: 0,
            batch_id: batch_id.into(),
            destination: "http://x".into(),
            region: "r".into(),
            jurisdiction: "EEA".into(),
            path: "/a.log".into(),
            start_off: 0,
            end_off: end,
            records: 3,
            raw_bytes: 97,
            compressed_bytes: 50,
            payload_sha256: "00".into(),
            rules_version: "v".into(),
            redactions: Default::default(),
            outcome: Outcome::Acked,
            reason: String::new(),
        }
    }

    #[test]
    fn ledger_rows_ship_in_order_and_unshipped_ones_are_not_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = State::open(dir.path()).unwrap();
        for (i, id) in ["a", "b", "c", "d"].iter().enumerate() {
            let end = 10 * (i as u64 + 1);
            s.commit_batch("id-1", id, end, Some(&row(id, end)))
                .unwrap();
        }
        let all = s.ledger_after(0, 10).unwrap();
        let ids: Vec<i64> = all.iter().map(|(id, _)| *id).collect();
        assert_eq!(ids.len(), 4);
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(s.ledger_after(ids[1], 1).unwrap()[0].1.batch_id, "c");
        // Never shipped anywhere: pruned as before, but for the newest row.
        assert_eq!(s.ledger_shipped("http://agg").unwrap(), 0);
        s.set_ledger_shipped("http://agg", ids[1]).unwrap();
        // The cursor never moves back.
        s.set_ledger_shipped("http://agg", ids[0]).unwrap();
        assert_eq!(s.ledger_shipped("http://agg").unwrap(), ids[1]);
        // Rows up to the cursor go; the unshipped ones stay.
        assert_eq!(s.prune_ledger(Duration::ZERO).unwrap(), 2);
        assert_eq!(s.ledger_after(0, 10).unwrap().len(), 2);
        s.set_ledger_shipped("http://agg", ids[3]).unwrap();
        assert_eq!(s.prune_ledger(Duration::ZERO).unwrap(), 1);
        // A new row after pruning still gets a higher id.
        s.commit_batch("id-1", "e", 50, Some(&row("e", 50)))
            .unwrap();
        assert!(s.ledger_after(ids[3], 10).unwrap()[0].0 > ids[3]);
    }

    #[test]
    fn checkpoint_advances_with_ledger_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = State::open(dir.path()).unwrap();
        assert!(s.is_fresh());
        let c = Checkpoint {
            identity: "id-1".into(),
            dev_ino: "1:2".into(),
            path: "/a.log".into(),
            fp_len: 256,
            fp_hash: "ab".into(),
            offset: 0,
        };
        s.put_checkpoint(&c).unwrap();
        let b = PendingBatch {
            start: 0,
            end: 100,
            first_ts: Some(1_764_151_200_000_000_000),
        };
        s.add_pending("b1", "id-1", b).unwrap();
        assert_eq!(s.pending("id-1").unwrap(), vec![b]);
        s.commit_batch("id-1", "b1", 100, Some(&row("b1", 100)))
            .unwrap();
        drop(s);
        let mut s = State::open(dir.path()).unwrap();
        assert!(!s.is_fresh());
        assert_eq!(s.checkpoints_of("1:2").unwrap()[0].offset, 100);
        assert_eq!(s.checkpoints_by_fingerprint(256, "ab").unwrap().len(), 1);
        assert!(s.pending("id-1").unwrap().is_empty());
        // A checkpoint never moves backwards.
        s.commit_batch("id-1", "b0", 50, None).unwrap();
        assert_eq!(s.offset("id-1").unwrap(), Some(100));
        // Gone for longer than the TTL: forgotten.
        assert_eq!(
            s.touch_and_forget(&["id-1"], Duration::from_secs(60))
                .unwrap(),
            0
        );
        assert_eq!(s.touch_and_forget(&[], Duration::ZERO).unwrap(), 1);
        assert_eq!(s.offset("id-1").unwrap(), None);
        // The only ledger row is the newest: it stays, so row ids never restart.
        assert_eq!(s.prune_ledger(Duration::ZERO).unwrap(), 0);
    }

    #[test]
    fn rotated_names_find_their_checkpoint_and_losses_reach_the_ledger() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = State::open(dir.path()).unwrap();
        let c = |id: &str, path: &str| Checkpoint {
            identity: id.into(),
            dev_ino: "1:2".into(),
            path: path.into(),
            fp_len: 9,
            fp_hash: "ab".into(),
            offset: 0,
        };
        s.put_checkpoint(&c("a", "/l/app.log")).unwrap();
        s.put_checkpoint(&c("b", "/l/app.log.1")).unwrap();
        s.put_checkpoint(&c("c", "/l/other.log")).unwrap();
        let ids = |v: Vec<Checkpoint>| -> Vec<String> {
            let mut v: Vec<String> = v.into_iter().map(|c| c.identity).collect();
            v.sort();
            v
        };
        let day = Duration::from_secs(86_400);
        assert_eq!(
            ids(s.checkpoints_extended_by("/l/app.log.1", day).unwrap()),
            ["a"]
        );
        assert_eq!(
            ids(s.checkpoints_extended_by("/l/app.log.1.2", day).unwrap()),
            ["a", "b"]
        );
        assert!(s
            .checkpoints_extended_by("/l/app.log", day)
            .unwrap()
            .is_empty());
        assert_eq!(s.recent_checkpoints(day).unwrap().len(), 3);
        s.add_pending(
            "p1",
            "a",
            PendingBatch {
                start: 0,
                end: 100,
                first_ts: None,
            },
        )
        .unwrap();
        let loss = Loss {
            path: "/l/app.log".into(),
            start_off: 40,
            end_off: 100,
            reason: "rotated_away",
        };
        s.record_loss("a", &loss).unwrap();
        assert!(
            s.pending("a").unwrap().is_empty(),
            "the lost batch is no longer pending"
        );
        let rows = s.ledger(0, i64::MAX).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].outcome, Outcome::Lost);
        assert_eq!(rows[0].raw_bytes, 60);
        assert_eq!(rows[0].reason, "rotated_away");
    }

    #[tokio::test]
    async fn one_thread_owns_the_db_and_answers_both_kinds_of_caller() {
        let dir = tempfile::tempdir().unwrap();
        let (owner, h) = StateOwner::start(State::open(dir.path()).unwrap()).unwrap();
        assert!(h.is_fresh());
        let h2 = h.clone();
        std::thread::spawn(move || {
            let b = PendingBatch {
                start: 0,
                end: 10,
                first_ts: Some(7),
            };
            h2.run_blocking(move |s| s.add_pending("b", "id", b))
                .unwrap()
                .unwrap()
        })
        .join()
        .unwrap();
        let p = h.run(|s| s.pending("id")).await.unwrap().unwrap();
        assert_eq!((p[0].start, p[0].end, p[0].first_ts), (0, 10, Some(7)));
        drop(h);
        tokio::task::spawn_blocking(move || owner.join())
            .await
            .unwrap();
    }

    #[test]
    fn a_newer_schema_is_refused_with_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        drop(State::open(dir.path()).unwrap());
        let c = Connection::open(dir.path().join(STATE_DB)).unwrap();
        c.pragma_update(None, "user_version", 99).unwrap();
        drop(c);
        let e = State::open(dir.path()).err().unwrap();
        assert!(matches!(e, OpenError::Newer { found: 99, .. }), "{e}");
        assert!(e.to_string().contains("upgrade fjord-agent"), "{e}");
        let e = State::open_read_only(dir.path()).err().unwrap();
        assert!(e.to_string().contains("does not match"), "{e}");
    }
}
