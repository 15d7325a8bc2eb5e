//! Schema migrations: an append-only list keyed on `PRAGMA user_version`, applied inside one
//! exclusive transaction. Never edit a shipped migration; append a new one.

use rusqlite::{Connection, TransactionBehavior};

use super::StoreError;

const MIGRATIONS: &[&str] = &[
    // 1: streams, chunks, receipts.
    "CREATE TABLE streams (
        id         INTEGER PRIMARY KEY,
        team       TEXT NOT NULL,
        labels     TEXT NOT NULL UNIQUE,   -- canonical JSON object, keys sorted, includes team
        created_ns INTEGER NOT NULL
     );
     CREATE INDEX streams_team ON streams(team);
     CREATE TABLE chunks (
        id         INTEGER PRIMARY KEY,
        stream_id  INTEGER NOT NULL REFERENCES streams(id),
        min_ts     INTEGER NOT NULL,
        max_ts     INTEGER NOT NULL,
        lines      INTEGER NOT NULL,
        raw_bytes  INTEGER NOT NULL,
        data       BLOB NOT NULL           -- see store/chunk.rs
     );
     CREATE INDEX chunks_stream_time ON chunks(stream_id, min_ts);
     CREATE TABLE receipts (
        id             INTEGER PRIMARY KEY,
        batch_id       TEXT UNIQUE,        -- NULL for clients that send no Fjord-Batch-Id
        agent          TEXT,
        team           TEXT NOT NULL,
        received_ns    INTEGER NOT NULL,
        records        INTEGER NOT NULL,
        raw_bytes      INTEGER NOT NULL,
        payload_sha256 TEXT NOT NULL,
        rules_version  TEXT,
        redactions     TEXT                -- compact JSON of per-rule counts
     );
     CREATE INDEX receipts_time ON receipts(received_ns);",
];

/// Applies every migration newer than the database's `user_version`.
pub(super) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Exclusive)?;
    let current: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let known = MIGRATIONS.len() as i64;
    if current > known {
        return Err(StoreError::TooNew {
            found: current,
            known,
        });
    }
    for sql in &MIGRATIONS[current as usize..] {
        tx.execute_batch(sql)?;
    }
    tx.pragma_update(None, "user_version", known)?;
    tx.commit()?;
    Ok(())
}
