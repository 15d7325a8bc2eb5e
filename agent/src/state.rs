//! The agent's state DB (SQLite, WAL) on the shared volume: per-file checkpoints, the
//! outbound ledger, and pending batch boundaries. One module owns the connection.
//!
//! Invariants: a checkpoint is the byte offset just after the last line the aggregator
//! acknowledged, and it advances in the same transaction as the ledger row of that batch.
//! Before a batch is first sent its boundaries are recorded as pending, so a restarted agent
//! re-forms exactly the same batch (same id, same bytes) and the aggregator's idempotency
//! makes the replay harmless.

use std::path::Path;
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

/// File name of the state DB inside the state directory.
pub const STATE_DB: &str = "fjord-agent.db";

const MIGRATIONS: &[&str] = &["CREATE TABLE files (
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
        outcome        TEXT NOT NULL        -- acked | duplicate | dead_letter
     );"];

/// A checkpoint row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub identity: String,
    pub fp_len: u64,
    pub fp_hash: String,
    pub offset: u64,
}

/// One ledger row.
#[derive(Debug, Clone)]
pub struct LedgerRow {
    pub batch_id: String,
    pub destination: String,
    pub region: String,
    pub jurisdiction: String,
    pub path: String,
    pub start_off: u64,
    pub end_off: u64,
    pub records: u64,
    pub raw_bytes: u64,
    pub compressed_bytes: u64,
    pub payload_sha256: String,
    pub rules_version: String,
    pub redactions: String,
    pub outcome: &'static str,
}

/// The state DB.
pub struct State {
    conn: Connection,
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

impl State {
    /// Opens (creating) the state DB in `dir` and migrates it.
    pub fn open(dir: &Path) -> Result<State, rusqlite::Error> {
        let conn = Connection::open(dir.join(STATE_DB))?;
        conn.busy_timeout(Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        let mut s = State { conn };
        let tx = s
            .conn
            .transaction_with_behavior(TransactionBehavior::Exclusive)?;
        let v: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
        let known = MIGRATIONS.len() as i64;
        if v > known {
            return Err(rusqlite::Error::InvalidParameterName(format!(
                "state DB schema {v} is newer than this agent ({known}); upgrade fjord-agent"
            )));
        }
        for m in &MIGRATIONS[v as usize..] {
            tx.execute_batch(m)?;
        }
        tx.pragma_update(None, "user_version", known)?;
        tx.commit()?;
        Ok(s)
    }

    /// The checkpoint of a device:inode, if any.
    pub fn checkpoint(&self, dev_ino: &str) -> Result<Option<Checkpoint>, rusqlite::Error> {
        self.conn
            .query_row(
                "SELECT identity, fp_len, fp_hash, offset FROM files WHERE dev_ino = ?1",
                [dev_ino],
                |r| {
                    Ok(Checkpoint {
                        identity: r.get(0)?,
                        fp_len: r.get::<_, i64>(1)? as u64,
                        fp_hash: r.get(2)?,
                        offset: r.get::<_, i64>(3)? as u64,
                    })
                },
            )
            .optional()
    }

    /// Records (or replaces) the checkpoint of a device:inode.
    pub fn put_checkpoint(
        &self,
        dev_ino: &str,
        path: &str,
        c: &Checkpoint,
    ) -> Result<(), rusqlite::Error> {
        self.conn.execute(
            "INSERT INTO files (dev_ino, identity, fp_len, fp_hash, path, offset, updated_ns)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT(dev_ino) DO UPDATE SET identity = ?2, fp_len = ?3, fp_hash = ?4,
               path = ?5, offset = ?6, updated_ns = ?7",
            params![
                dev_ino,
                c.identity,
                c.fp_len as i64,
                c.fp_hash,
                path,
                c.offset as i64,
                now_ns()
            ],
        )?;
        Ok(())
    }

    /// Pending batch boundaries of a file identity, by start offset.
    pub fn pending(&self, identity: &str) -> Result<Vec<(u64, u64)>, rusqlite::Error> {
        let mut st = self.conn.prepare_cached(
            "SELECT start_off, end_off FROM pending WHERE identity = ?1 ORDER BY start_off",
        )?;
        let rows = st.query_map([identity], |r| {
            Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64))
        })?;
        rows.collect()
    }

    /// Records a batch's boundaries before its first send.
    pub fn add_pending(
        &self,
        batch_id: &str,
        identity: &str,
        start: u64,
        end: u64,
    ) -> Result<(), rusqlite::Error> {
        self.conn.execute(
            "INSERT OR IGNORE INTO pending (batch_id, identity, start_off, end_off) VALUES (?1, ?2, ?3, ?4)",
            params![batch_id, identity, start as i64, end as i64],
        )?;
        Ok(())
    }

    /// After an ack (or dead-letter): ledger row, checkpoint advance and pending removal in
    /// one transaction.
    pub fn commit_batch(&mut self, identity: &str, row: &LedgerRow) -> Result<(), rusqlite::Error> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute(
            "INSERT INTO ledger (batch_id, sent_ns, destination, region, jurisdiction, path, start_off,
               end_off, records, raw_bytes, compressed_bytes, payload_sha256, rules_version, redactions, outcome)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
            params![
                row.batch_id,
                now_ns(),
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
                row.redactions,
                row.outcome
            ],
        )?;
        tx.execute(
            "UPDATE files SET offset = MAX(offset, ?2), updated_ns = ?3 WHERE identity = ?1",
            params![identity, row.end_off as i64, now_ns()],
        )?;
        tx.execute("DELETE FROM pending WHERE batch_id = ?1", [&row.batch_id])?;
        tx.commit()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_advances_with_ledger_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = State::open(dir.path()).unwrap();
        let c = Checkpoint {
            identity: "1:2:3".into(),
            fp_len: 10,
            fp_hash: "ab".into(),
            offset: 0,
        };
        s.put_checkpoint("1:2", "/a.log", &c).unwrap();
        s.add_pending("b1", "1:2:3", 0, 100).unwrap();
        assert_eq!(s.pending("1:2:3").unwrap(), vec![(0, 100)]);
        let row = LedgerRow {
            batch_id: "b1".into(),
            destination: "http://x".into(),
            region: "r".into(),
            jurisdiction: "EEA".into(),
            path: "/a.log".into(),
            start_off: 0,
            end_off: 100,
            records: 3,
            raw_bytes: 97,
            compressed_bytes: 50,
            payload_sha256: "00".into(),
            rules_version: "v".into(),
            redactions: "{}".into(),
            outcome: "acked",
        };
        s.commit_batch("1:2:3", &row).unwrap();
        drop(s);
        let s = State::open(dir.path()).unwrap();
        assert_eq!(s.checkpoint("1:2").unwrap().unwrap().offset, 100);
        assert!(s.pending("1:2:3").unwrap().is_empty());
    }
}
