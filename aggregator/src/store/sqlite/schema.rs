//! Schema migrations: an append-only list keyed on `PRAGMA user_version`, applied inside one
//! exclusive transaction. Never edit a shipped migration; append a new one.
//!
//! A brand-new database is created with `auto_vacuum = INCREMENTAL` (it can only be chosen
//! before the first table exists), so retention and erasure can hand pages back to the file
//! system without a full `VACUUM`, and with 16 KiB pages (likewise fixed at creation in WAL
//! mode).

use rusqlite::{Connection, TransactionBehavior};

use crate::store::StoreError;

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
    // 2: ingest sequence and UTC day on chunks (live tail, compaction, retention, stats per
    // day); the erasure log.
    "ALTER TABLE chunks ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;  -- receipts.id of the batch
     ALTER TABLE chunks ADD COLUMN day INTEGER NOT NULL DEFAULT 0;  -- min_ts / 86400e9
     UPDATE chunks SET day = min_ts / 86400000000000;
     CREATE INDEX chunks_seq ON chunks(seq, id);
     CREATE INDEX chunks_stream_day ON chunks(stream_id, day);
     CREATE TABLE erasures (
        id          INTEGER PRIMARY KEY,
        at_ns       INTEGER NOT NULL,
        operator    TEXT NOT NULL,         -- token name, or the operator of an offline run
        query       TEXT NOT NULL,         -- LogQL selector and filters
        start_ns    INTEGER NOT NULL,
        end_ns      INTEGER NOT NULL,
        lines       INTEGER NOT NULL,      -- lines erased
        chunks      INTEGER NOT NULL       -- chunks rewritten or deleted
     );",
    // 3: audit. The entry digest of each batch's stored lines (store/digest.rs; NULL for
    // batches received before this version); lines legitimately removed from a batch by
    // erasure or retention, with their digest, so `audit verify` can tell them from
    // tampering; the access log of every read and erasure.
    "ALTER TABLE receipts ADD COLUMN entries_digest TEXT;
     CREATE TABLE removals (
        id          INTEGER PRIMARY KEY,
        at_ns       INTEGER NOT NULL,
        kind        TEXT NOT NULL,         -- 'erasure' or 'retention'
        erasure_id  INTEGER REFERENCES erasures(id),
        operator    TEXT NOT NULL,
        seq         INTEGER NOT NULL,      -- receipts.id of the batch the lines came from
        lines       INTEGER NOT NULL,
        digest      TEXT NOT NULL          -- entry digest of the removed lines
     );
     CREATE INDEX removals_seq ON removals(seq);
     CREATE TABLE access_log (
        id          INTEGER PRIMARY KEY,
        at_ns       INTEGER NOT NULL,
        token       TEXT NOT NULL,         -- token name, or anonymous-loopback
        team        TEXT,                  -- the token's team; NULL for a team-less admin
        role        TEXT NOT NULL,
        endpoint    TEXT NOT NULL,         -- query_range, query, tail, labels, series, erase
        query       TEXT,                  -- LogQL as sent (a selector; never log content)
        start_ns    INTEGER,
        end_ns      INTEGER,
        lines       INTEGER NOT NULL,      -- lines (or streams, for labels/series) returned
        status      INTEGER NOT NULL       -- HTTP status answered
     );
     CREATE INDEX access_log_time ON access_log(at_ns);",
    // 4: batch ids are scoped by team. Version 1 made `batch_id` unique across teams, so one
    // team's push could be answered `duplicate` (and dropped) because another team had used
    // the id. SQLite cannot drop a column constraint: the table is rebuilt with every row and
    // id kept (the ids are the `seq` of chunks and removals).
    "CREATE TABLE receipts_v4 (
        id             INTEGER PRIMARY KEY,
        batch_id       TEXT,               -- NULL for clients that send no Fjord-Batch-Id
        agent          TEXT,
        team           TEXT NOT NULL,
        received_ns    INTEGER NOT NULL,
        records        INTEGER NOT NULL,
        raw_bytes      INTEGER NOT NULL,
        payload_sha256 TEXT NOT NULL,
        rules_version  TEXT,
        redactions     TEXT,               -- compact JSON of per-rule counts
        entries_digest TEXT,
        UNIQUE (team, batch_id)
     );
     INSERT INTO receipts_v4 (id, batch_id, agent, team, received_ns, records, raw_bytes,
                              payload_sha256, rules_version, redactions, entries_digest)
        SELECT id, batch_id, agent, team, received_ns, records, raw_bytes,
               payload_sha256, rules_version, redactions, entries_digest FROM receipts;
     DROP TABLE receipts;
     ALTER TABLE receipts_v4 RENAME TO receipts;
     CREATE INDEX receipts_time ON receipts(received_ns);",
    // 5: Loki's dedup for clients that send no batch id: one key per stored entry of such a
    // push (stream, timestamp and the first 64 bits of the entry's hash, store/digest.rs), so
    // an entry whose key is there is not stored again. Retention drops the keys of whole
    // expired days; erasure drops the keys of the lines it erases.
    "CREATE TABLE entry_keys (
        stream_id INTEGER NOT NULL,
        ts        INTEGER NOT NULL,
        h         INTEGER NOT NULL,
        PRIMARY KEY (stream_id, ts, h)
     ) WITHOUT ROWID;",
    // 6: the audit chain (store/chain.rs): one link per receipt, removal, erasure record and
    // agent ledger row, each hashing the one before; the roots signed with the aggregator's
    // key; and the agents' ledgers.
    "CREATE TABLE chain (
        pos    INTEGER PRIMARY KEY,        -- 1, 2, 3, … in commit order
        kind   TEXT NOT NULL,              -- genesis, receipt, removal, erasure
        ref_id INTEGER NOT NULL,           -- the row's id in its table
        at_ns  INTEGER NOT NULL,
        body   TEXT NOT NULL,              -- the row's columns as written, a JSON array
        prev   TEXT NOT NULL,              -- hex hash of link pos - 1
        hash   TEXT NOT NULL               -- hex SHA-256 over prev, kind, ref_id, at_ns, body
     );
     CREATE TABLE chain_roots (
        pos       INTEGER PRIMARY KEY,     -- the chain position signed
        hash      TEXT NOT NULL,
        signed_ns INTEGER NOT NULL,
        key_id    TEXT NOT NULL,
        signature TEXT NOT NULL            -- hex Ed25519 over pos, hash and signed_ns
     );
     -- Agents' ledgers (POST /v1/ledger), so what a pod sent, had refused and lost outlives it.
     CREATE TABLE agent_ledger (
        id          INTEGER PRIMARY KEY,
        team        TEXT NOT NULL,
        agent       TEXT NOT NULL,
        seq         INTEGER NOT NULL,      -- the row's id in the agent's ledger
        received_ns INTEGER NOT NULL,
        batch_id    TEXT NOT NULL,
        sent_ns     INTEGER NOT NULL,
        outcome     TEXT NOT NULL,         -- acked | duplicate | dead_letter | lost
        record      TEXT NOT NULL,         -- the agent's row as JSON (fjord_wire::ledger)
        UNIQUE (team, agent, seq)
     );
     CREATE INDEX agent_ledger_sent ON agent_ledger(sent_ns);",
];

/// The schema version this binary writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Page size of a new database, over SQLite's 4 KiB: a stored chunk is a ~250 KB blob, i.e.
/// ~16 overflow pages instead of ~62, each a WAL frame written, checksummed and later copied
/// by the checkpoint (docs/benchmarks.md, "Stored bytes per raw byte"). An existing database
/// keeps the page size it was created with.
pub const NEW_DB_PAGE_SIZE_BYTES: u32 = 16 * 1024;

/// Chooses the page size and incremental auto-vacuum for a database without tables. Must
/// run before the connection switches to WAL and outside a transaction, or SQLite ignores
/// both.
pub(crate) fn prepare_new(conn: &Connection) -> Result<(), StoreError> {
    let tables: i64 = conn.query_row("SELECT COUNT(*) FROM sqlite_master", [], |r| r.get(0))?;
    if tables == 0 {
        conn.pragma_update(None, "page_size", NEW_DB_PAGE_SIZE_BYTES)?;
        conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
    }
    Ok(())
}

/// Applies every migration newer than the database's `user_version`.
pub(crate) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
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
