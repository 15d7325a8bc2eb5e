//! The PostgreSQL schema: an append-only list of migrations, numbered in `fjord_schema`, each
//! applied in its own transaction while the migrating replica holds a session advisory lock,
//! so replicas that start together migrate once and the others wait, then find it done.
//! Never edit a shipped migration; append a new one.
//!
//! Chunks are a table partitioned by UTC day (`chunks_d<day>`, created on demand), so
//! retention drops whole partitions instead of deleting rows. Chunk bytes are zstd already:
//! the column is stored `EXTERNAL` (out of line, not compressed again).

/// The advisory lock key of migrations (and of nothing else).
pub const MIGRATION_LOCK: i64 = 0x666a_6f72_6401; // "fjord" 1

/// The advisory lock key of the audit chain's head, taken per transaction by every writer of
/// a covered row just before it appends their links, and by the signer.
pub const CHAIN_LOCK: i64 = 0x666a_6f72_6406; // "fjord" 6

pub const MIGRATIONS: &[&str] = &[
    // 1: everything the SQLite store has at its version 5, in PostgreSQL's types.
    "CREATE TABLE streams (
        id          BIGSERIAL PRIMARY KEY,
        team        TEXT NOT NULL,
        labels      TEXT NOT NULL UNIQUE,  -- canonical JSON object, keys sorted, includes team
        created_ns  BIGINT NOT NULL
     );
     CREATE INDEX streams_team ON streams(team);
     CREATE TABLE receipts (
        id             BIGSERIAL PRIMARY KEY,  -- the batch's ingest sequence (chunks.seq)
        batch_id       TEXT,                   -- NULL for clients that send no Fjord-Batch-Id
        agent          TEXT,
        team           TEXT NOT NULL,
        received_ns    BIGINT NOT NULL,
        records        BIGINT NOT NULL,
        raw_bytes      BIGINT NOT NULL,
        payload_sha256 TEXT NOT NULL,
        rules_version  TEXT,
        redactions     TEXT,                   -- compact JSON of per-rule counts
        entries_digest TEXT,
        UNIQUE (team, batch_id)
     );
     CREATE INDEX receipts_time ON receipts(received_ns);
     CREATE TABLE chunks (
        id         BIGSERIAL,
        stream_id  BIGINT NOT NULL,
        day        BIGINT NOT NULL,            -- min_ts / 86400e9: the partition key
        min_ts     BIGINT NOT NULL,
        max_ts     BIGINT NOT NULL,
        lines      BIGINT NOT NULL,
        raw_bytes  BIGINT NOT NULL,
        seq        BIGINT NOT NULL,            -- receipts.id of the batch
        -- The writing transaction: the live tail follows (xid, id), which no transaction
        -- still running can add below (store/postgres/mod.rs).
        xid        xid8 NOT NULL DEFAULT pg_current_xact_id(),
        data       BYTEA NOT NULL,             -- see store/chunk.rs
        PRIMARY KEY (day, id)
     ) PARTITION BY RANGE (day);
     ALTER TABLE chunks ALTER COLUMN data SET STORAGE EXTERNAL;
     CREATE INDEX chunks_stream_time ON chunks(stream_id, day, min_ts);
     CREATE INDEX chunks_id ON chunks(id);
     CREATE INDEX chunks_tail ON chunks(xid, id);
     CREATE INDEX chunks_seq ON chunks(seq);
     CREATE TABLE erasures (
        id          BIGSERIAL PRIMARY KEY,
        at_ns       BIGINT NOT NULL,
        operator    TEXT NOT NULL,
        query       TEXT NOT NULL,
        start_ns    BIGINT NOT NULL,
        end_ns      BIGINT NOT NULL,
        lines       BIGINT NOT NULL,
        chunks      BIGINT NOT NULL
     );
     CREATE TABLE removals (
        id          BIGSERIAL PRIMARY KEY,
        at_ns       BIGINT NOT NULL,
        kind        TEXT NOT NULL,             -- 'erasure', 'retention' or 'duplicate'
        erasure_id  BIGINT REFERENCES erasures(id),
        operator    TEXT NOT NULL,
        seq         BIGINT NOT NULL,
        lines       BIGINT NOT NULL,
        digest      TEXT NOT NULL
     );
     CREATE INDEX removals_seq ON removals(seq);
     CREATE TABLE access_log (
        id          BIGSERIAL PRIMARY KEY,
        at_ns       BIGINT NOT NULL,
        token       TEXT NOT NULL,
        team        TEXT,
        role        TEXT NOT NULL,
        endpoint    TEXT NOT NULL,
        query       TEXT,
        start_ns    BIGINT,
        end_ns      BIGINT,
        lines       BIGINT NOT NULL,
        status      INTEGER NOT NULL
     );
     CREATE INDEX access_log_time ON access_log(at_ns);
     CREATE TABLE entry_keys (
        stream_id BIGINT NOT NULL,
        ts        BIGINT NOT NULL,
        h         BIGINT NOT NULL,
        PRIMARY KEY (stream_id, ts, h)
     );",
    // 2: the audit chain (store/chain.rs) and the agents' ledgers, as SQLite's version 6.
    "CREATE TABLE chain (
        pos    BIGINT PRIMARY KEY,         -- 1, 2, 3, … in commit order
        kind   TEXT NOT NULL,              -- genesis, receipt, removal, erasure
        ref_id BIGINT NOT NULL,
        at_ns  BIGINT NOT NULL,
        body   TEXT NOT NULL,
        prev   TEXT NOT NULL,
        hash   TEXT NOT NULL
     );
     CREATE TABLE chain_roots (
        pos       BIGINT PRIMARY KEY,
        hash      TEXT NOT NULL,
        signed_ns BIGINT NOT NULL,
        key_id    TEXT NOT NULL,
        signature TEXT NOT NULL
     );
     CREATE TABLE agent_ledger (
        id          BIGSERIAL PRIMARY KEY,
        team        TEXT NOT NULL,
        agent       TEXT NOT NULL,
        seq         BIGINT NOT NULL,
        received_ns BIGINT NOT NULL,
        batch_id    TEXT NOT NULL,
        sent_ns     BIGINT NOT NULL,
        outcome     TEXT NOT NULL,
        record      TEXT NOT NULL,
        UNIQUE (team, agent, seq)
     );
     CREATE INDEX agent_ledger_sent ON agent_ledger(sent_ns);",
];

/// The schema version this binary writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// The day of a partition named by [`partition`].
pub fn day_of_partition(name: &str) -> Option<i64> {
    let rest = name.strip_prefix("chunks_d")?;
    match rest.strip_prefix('m') {
        Some(neg) => neg.parse::<i64>().ok().map(|d| -d),
        None => rest.parse().ok(),
    }
}

/// The name of the partition of `day`.
pub fn partition(day: i64) -> String {
    // Days before 1970 are negative; a name cannot hold '-'.
    if day < 0 {
        format!("chunks_dm{}", day.unsigned_abs())
    } else {
        format!("chunks_d{day}")
    }
}
