//! The access log's storage: one row per read or erasure request, written in batches by the
//! server's access-log writer (server/access.rs). Rows hold who, what selector, which range
//! and how many lines came back, never line content.

use rusqlite::{params, TransactionBehavior};
use serde::{Deserialize, Serialize};

use super::{Store, StoreError};

/// One request to record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessRecord {
    pub at_ns: i64,
    /// Token name, or `anonymous-loopback` in open mode.
    pub token: String,
    pub team: Option<String>,
    pub role: String,
    /// `query_range`, `query`, `tail`, `labels`, `label_values`, `series`, `erase`.
    pub endpoint: String,
    /// The LogQL as sent (selector and filters).
    pub query: Option<String>,
    pub start_ns: Option<i64>,
    pub end_ns: Option<i64>,
    /// Lines returned (streams or values for label and series lookups; lines erased).
    pub lines: u64,
    /// HTTP status answered.
    pub status: u16,
}

impl Store {
    /// Appends `records` to the access log in one transaction.
    pub fn record_access(&self, records: &[AccessRecord]) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let db = match &self.db {
            super::Db::Sqlite(db) => db,
            super::Db::Postgres(db) => return db.record_access(records),
        };
        let mut w = db.writer.lock().map_err(|_| StoreError::Poisoned)?;
        let tx = w.transaction_with_behavior(TransactionBehavior::Immediate)?;
        {
            let mut ins = tx.prepare_cached(
                "INSERT INTO access_log (at_ns, token, team, role, endpoint, query, start_ns,
                                         end_ns, lines, status)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )?;
            for r in records {
                ins.execute(params![
                    r.at_ns,
                    r.token,
                    r.team,
                    r.role,
                    r.endpoint,
                    r.query,
                    r.start_ns,
                    r.end_ns,
                    i64::try_from(r.lines).unwrap_or(i64::MAX),
                    i64::from(r.status)
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }
}
