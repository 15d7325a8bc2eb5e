//! The store as evidence: a read-only view for the audit commands (`audit receipts`,
//! `verify`, `scan`, `access`).
//!
//! It opens the database **read-only** (`SQLITE_OPEN_READ_ONLY`; on PostgreSQL a connection
//! with `default_transaction_read_only` that migrates nothing), so an audit can run next to
//! live aggregators, or on a copy of the data directory, and can never change what it
//! reports on. [`Evidence::snapshot`] runs a whole report in one read transaction
//! (repeatable read on PostgreSQL), so receipts, removals and chunks come from the same
//! moment. The audit module builds its reports from these rows and never sees the schema.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags, OptionalExtension};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::backend::ReceiptRow;
use super::chain::{self, StoredLink};
use super::erase::{erasure_from_row, ERASURE_COLUMNS};
use super::postgres::PgDb;
use super::sqlite::BUSY_TIMEOUT;
use super::{AccessRecord, ErasureRecord, DB_FILE, SCHEMA_VERSION};
use crate::keys::Root;
use fjord_wire::clock::format_ns;

/// Why the store could not be read as evidence.
#[derive(Debug, Error)]
pub enum EvidenceError {
    #[error("no aggregator store at {0}; pass --data DIR (the server's data_dir)")]
    NoStore(PathBuf),
    #[error("{path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("the store at {path} has schema version {found}, this binary reads {want}; {hint}")]
    Schema {
        path: PathBuf,
        found: i64,
        want: i64,
        hint: &'static str,
    },
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error(transparent)]
    Store(#[from] super::StoreError),
}

/// One receipt: what arrived in one batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// Ingest sequence (`receipts.id`).
    pub seq: i64,
    pub batch_id: Option<String>,
    pub agent: Option<String>,
    pub team: String,
    pub received_ns: i64,
    pub received: String,
    pub records: u64,
    pub raw_bytes: u64,
    pub payload_sha256: String,
    pub rules_version: Option<String>,
    pub redactions: std::collections::BTreeMap<String, u64>,
    /// Entry digest of the stored lines at ingest; `None` for batches received before the
    /// audit schema.
    pub entries_digest: Option<String>,
}

/// Lines removed from a batch by erasure or retention, as recorded when they were removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemovalRow {
    /// The batch sequence (receipt id) the lines belonged to.
    pub seq: i64,
    /// `erasure` or `retention`.
    pub kind: String,
    pub operator: String,
    pub at_ns: i64,
    pub lines: u64,
    /// Entry digest of the removed lines, as text.
    pub digest: String,
    pub erasure_id: Option<i64>,
}

/// A row of an agent's ledger as the aggregator stores it (`POST /v1/ledger`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentLedgerRow {
    pub id: i64,
    pub team: String,
    pub agent: String,
    /// The row's id in the agent's ledger.
    pub seq: i64,
    pub received_ns: i64,
    pub batch_id: String,
    pub sent_ns: i64,
    pub outcome: String,
    /// The agent's row as JSON (`fjord_wire::ledger::LedgerRecord`).
    pub record: String,
}

impl AgentLedgerRow {
    /// The row as the audit chain covers it.
    pub fn as_chained(&self) -> chain::LedgerRow<'_> {
        chain::LedgerRow {
            id: self.id,
            team: &self.team,
            agent: &self.agent,
            seq: self.seq,
            received_ns: self.received_ns,
            batch_id: &self.batch_id,
            sent_ns: self.sent_ns,
            outcome: &self.outcome,
            record: &self.record,
        }
    }
}

/// A stream: its id and its label key, the canonical JSON the entry digests are keyed on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamRow {
    pub id: i64,
    pub key: String,
}

/// One stored chunk, borrowed for the duration of a callback.
#[derive(Debug, Clone, Copy)]
pub struct ChunkRow<'a> {
    pub id: i64,
    pub stream_id: i64,
    /// Newest batch sequence among its lines.
    pub seq: i64,
    pub data: &'a [u8],
}

/// A read-only connection to the store in a data directory, or to a PostgreSQL store.
pub struct Evidence {
    src: Source,
}

enum Source {
    Sqlite(Connection),
    Postgres {
        db: Box<PgDb>,
        client: deadpool_postgres::Object,
    },
}

/// A receipt's columns in table order (store/chain.rs, `receipt_body`).
type ReceiptColumns = (
    i64,
    Option<String>,
    Option<String>,
    String,
    i64,
    i64,
    i64,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// A removal's columns in table order (store/chain.rs, `removal_body`).
type RemovalColumns = (i64, i64, String, Option<i64>, String, i64, i64, String);

/// Chunks read per round trip from PostgreSQL.
const PG_CHUNK_PAGE: i64 = 64;

/// A count column as an unsigned number; a negative value (never written) reads as 0.
fn count(v: i64) -> u64 {
    v.max(0) as u64
}

impl Evidence {
    /// Opens the store in `data_dir` read-only and checks that its schema is the one this
    /// binary writes (an older store has no digests yet: start the server once to migrate it).
    pub fn open(data_dir: &Path) -> Result<Evidence, EvidenceError> {
        let path = data_dir.join(DB_FILE);
        if !path.exists() {
            return Err(EvidenceError::NoStore(data_dir.to_owned()));
        }
        let conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|source| EvidenceError::Open {
            path: path.clone(),
            source,
        })?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        let found: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if found != SCHEMA_VERSION {
            return Err(EvidenceError::Schema {
                path,
                found,
                want: SCHEMA_VERSION,
                hint: if found < SCHEMA_VERSION {
                    "start this version's server (or run `retention run`) once to migrate it"
                } else {
                    "upgrade fjord-aggregator"
                },
            });
        }
        Ok(Evidence {
            src: Source::Sqlite(conn),
        })
    }

    /// Opens the PostgreSQL store of `url` read-only; its schema must be this binary's.
    pub fn open_postgres(url: &str) -> Result<Evidence, EvidenceError> {
        let db = Box::new(PgDb::connect_read_only(url)?);
        let client = db.read_only_client()?;
        Ok(Evidence {
            src: Source::Postgres { db, client },
        })
    }

    /// Rows of a PostgreSQL query.
    fn pg_rows(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>, EvidenceError> {
        match &self.src {
            Source::Postgres { db, client } => Ok(db
                .run(client.query(sql, params))
                .map_err(super::postgres::pg)?),
            Source::Sqlite(_) => Err(EvidenceError::Store(super::StoreError::Refused(
                "not a PostgreSQL store".into(),
            ))),
        }
    }

    /// The SQLite connection, or `None` on PostgreSQL.
    fn sqlite(&self) -> Option<&Connection> {
        match &self.src {
            Source::Sqlite(c) => Some(c),
            Source::Postgres { .. } => None,
        }
    }

    /// Runs `f` in one read transaction, so everything it reads is from one snapshot.
    pub fn snapshot<T, E: From<EvidenceError>>(
        &self,
        f: impl FnOnce(&Evidence) -> Result<T, E>,
    ) -> Result<T, E> {
        let (begin, end): (&str, &str) = match &self.src {
            Source::Sqlite(_) => ("BEGIN", "COMMIT"),
            Source::Postgres { .. } => {
                ("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY", "COMMIT")
            }
        };
        self.batch(begin).map_err(E::from)?;
        let res = f(self);
        // A read transaction has nothing to commit; ending it only releases the snapshot.
        let _ = self.batch(end);
        res
    }

    fn batch(&self, sql: &str) -> Result<(), EvidenceError> {
        match &self.src {
            Source::Sqlite(c) => Ok(c.execute_batch(sql)?),
            Source::Postgres { db, client } => Ok(db
                .run(client.batch_execute(sql))
                .map_err(super::postgres::pg)?),
        }
    }

    /// The receipts received in `[from_ns, to_ns]`, in ingest order.
    pub fn receipts(&self, from_ns: i64, to_ns: i64) -> Result<Vec<Receipt>, EvidenceError> {
        let Some(conn) = self.sqlite() else {
            let rows = self.pg_rows(
                "SELECT id, batch_id, agent, team, received_ns, records, raw_bytes,
                        payload_sha256, rules_version, redactions, entries_digest
                 FROM receipts WHERE received_ns BETWEEN $1 AND $2 ORDER BY id",
                &[&from_ns, &to_ns],
            )?;
            return Ok(rows
                .iter()
                .map(|r| {
                    let received_ns: i64 = r.get(4);
                    let redactions: Option<String> = r.get(9);
                    Receipt {
                        seq: r.get(0),
                        batch_id: r.get(1),
                        agent: r.get(2),
                        team: r.get(3),
                        received_ns,
                        received: format_ns(received_ns),
                        records: count(r.get(5)),
                        raw_bytes: count(r.get(6)),
                        payload_sha256: r.get(7),
                        rules_version: r.get(8),
                        redactions: redactions
                            .and_then(|j| serde_json::from_str(&j).ok())
                            .unwrap_or_default(),
                        entries_digest: r.get(10),
                    }
                })
                .collect());
        };
        let mut stmt = conn.prepare(
            "SELECT id, batch_id, agent, team, received_ns, records, raw_bytes, payload_sha256,
                    rules_version, redactions, entries_digest
             FROM receipts WHERE received_ns BETWEEN ?1 AND ?2 ORDER BY id",
        )?;
        let rows = stmt.query_map([from_ns, to_ns], |r| {
            let redactions: Option<String> = r.get(9)?;
            let received_ns: i64 = r.get(4)?;
            Ok(Receipt {
                seq: r.get(0)?,
                batch_id: r.get(1)?,
                agent: r.get(2)?,
                team: r.get(3)?,
                received_ns,
                received: format_ns(received_ns),
                records: count(r.get(5)?),
                raw_bytes: count(r.get(6)?),
                payload_sha256: r.get(7)?,
                rules_version: r.get(8)?,
                // A sender's malformed header is kept as sent; it just counts nothing here.
                redactions: redactions
                    .and_then(|j| serde_json::from_str(&j).ok())
                    .unwrap_or_default(),
                entries_digest: r.get(10)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Whether the store has any receipt at all (a hint for an empty report).
    pub fn has_receipts(&self) -> Result<bool, EvidenceError> {
        let Some(conn) = self.sqlite() else {
            return Ok(!self
                .pg_rows("SELECT 1 FROM receipts LIMIT 1", &[])?
                .is_empty());
        };
        Ok(conn
            .query_row("SELECT 1 FROM receipts LIMIT 1", [], |_| Ok(()))
            .optional()?
            .is_some())
    }

    /// Every recorded removal, oldest first.
    pub fn removals(&self) -> Result<Vec<RemovalRow>, EvidenceError> {
        let Some(conn) = self.sqlite() else {
            let rows = self.pg_rows(
                "SELECT seq, kind, operator, at_ns, lines, digest, erasure_id FROM removals
                 ORDER BY id",
                &[],
            )?;
            return Ok(rows
                .iter()
                .map(|r| RemovalRow {
                    seq: r.get(0),
                    kind: r.get(1),
                    operator: r.get(2),
                    at_ns: r.get(3),
                    lines: count(r.get(4)),
                    digest: r.get(5),
                    erasure_id: r.get(6),
                })
                .collect());
        };
        let mut stmt = conn.prepare(
            "SELECT seq, kind, operator, at_ns, lines, digest, erasure_id FROM removals ORDER BY id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(RemovalRow {
                seq: r.get(0)?,
                kind: r.get(1)?,
                operator: r.get(2)?,
                at_ns: r.get(3)?,
                lines: count(r.get(4)?),
                digest: r.get(5)?,
                erasure_id: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Every stream, by id.
    pub fn streams(&self) -> Result<Vec<StreamRow>, EvidenceError> {
        let Some(conn) = self.sqlite() else {
            let rows = self.pg_rows("SELECT id, labels FROM streams ORDER BY id", &[])?;
            return Ok(rows
                .iter()
                .map(|r| StreamRow {
                    id: r.get(0),
                    key: r.get(1),
                })
                .collect());
        };
        let mut stmt = conn.prepare("SELECT id, labels FROM streams ORDER BY id")?;
        let rows = stmt.query_map([], |r| {
            Ok(StreamRow {
                id: r.get(0)?,
                key: r.get(1)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Calls `f` with every chunk, in id order; stops at `f`'s first error.
    pub fn each_chunk<E: From<EvidenceError>>(
        &self,
        f: impl FnMut(ChunkRow<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        if self.sqlite().is_none() {
            return self.pg_chunks("TRUE", &[], f);
        }
        self.chunks(
            "SELECT id, stream_id, seq, data FROM chunks ORDER BY id",
            [],
            f,
        )
    }

    /// Calls `f` with every chunk of stream `stream_id` that may hold lines in
    /// `[from_ns, to_ns]`, oldest first; stops at `f`'s first error.
    pub fn each_chunk_of_stream<E: From<EvidenceError>>(
        &self,
        stream_id: i64,
        from_ns: i64,
        to_ns: i64,
        f: impl FnMut(ChunkRow<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        if self.sqlite().is_none() {
            return self.pg_chunks(
                "stream_id = $2 AND max_ts >= $3 AND min_ts <= $4",
                &[&stream_id, &from_ns, &to_ns],
                f,
            );
        }
        self.chunks(
            "SELECT id, stream_id, seq, data FROM chunks WHERE stream_id = ?1 AND max_ts >= ?2
             AND min_ts <= ?3 ORDER BY min_ts, id",
            [stream_id, from_ns, to_ns],
            f,
        )
    }

    /// The chunks of PostgreSQL matching `filter` (its parameters from `$2`), in id order,
    /// a page at a time (one snapshot: the caller's transaction).
    fn pg_chunks<E: From<EvidenceError>>(
        &self,
        filter: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
        mut f: impl FnMut(ChunkRow<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        let sql = format!(
            "SELECT id, stream_id, seq, data FROM chunks WHERE id > $1 AND {filter}
             ORDER BY id LIMIT {PG_CHUNK_PAGE}"
        );
        let mut after = i64::MIN;
        loop {
            let mut all: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = vec![&after];
            all.extend_from_slice(params);
            let rows = self.pg_rows(&sql, &all).map_err(E::from)?;
            let Some(last) = rows.last() else {
                return Ok(());
            };
            let next: i64 = last.get(0);
            for r in &rows {
                let data: &[u8] = r.get(3);
                f(ChunkRow {
                    id: r.get(0),
                    stream_id: r.get(1),
                    seq: r.get(2),
                    data,
                })?;
            }
            after = next;
        }
    }

    /// Runs a chunk query selecting `id, stream_id, seq, data` and hands each row to `f`
    /// without copying its bytes.
    fn chunks<E: From<EvidenceError>>(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
        mut f: impl FnMut(ChunkRow<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        let row = |r: &rusqlite::Row<'_>| -> Result<(i64, i64, i64), EvidenceError> {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        };
        let conn = self.sqlite().ok_or_else(|| {
            E::from(EvidenceError::Store(super::StoreError::Refused(
                "not a SQLite store".into(),
            )))
        })?;
        let mut stmt = conn.prepare_cached(sql).map_err(EvidenceError::from)?;
        let mut rows = stmt.query(params).map_err(EvidenceError::from)?;
        while let Some(r) = rows.next().map_err(EvidenceError::from)? {
            let (id, stream_id, seq) = row(r)?;
            let data = r
                .get_ref(3)
                .and_then(|v| v.as_blob().map_err(rusqlite::Error::from))
                .map_err(EvidenceError::from)?;
            f(ChunkRow {
                id,
                stream_id,
                seq,
                data,
            })?;
        }
        Ok(())
    }

    /// The requests recorded in `[from_ns, to_ns]`, oldest first; `token` narrows them to
    /// one token name.
    pub fn access_log(
        &self,
        from_ns: i64,
        to_ns: i64,
        token: Option<&str>,
    ) -> Result<Vec<AccessRecord>, EvidenceError> {
        let Some(conn) = self.sqlite() else {
            let rows = self.pg_rows(
                "SELECT at_ns, token, team, role, endpoint, query, start_ns, end_ns, lines, status
                 FROM access_log WHERE at_ns BETWEEN $1 AND $2
                   AND ($3::TEXT IS NULL OR token = $3)
                 ORDER BY id",
                &[&from_ns, &to_ns, &token],
            )?;
            return Ok(rows
                .iter()
                .map(|r| AccessRecord {
                    at_ns: r.get(0),
                    token: r.get(1),
                    team: r.get(2),
                    role: r.get(3),
                    endpoint: r.get(4),
                    query: r.get(5),
                    start_ns: r.get(6),
                    end_ns: r.get(7),
                    lines: count(r.get(8)),
                    status: u16::try_from(r.get::<_, i32>(9)).unwrap_or(0),
                })
                .collect());
        };
        let mut stmt = conn.prepare(
            "SELECT at_ns, token, team, role, endpoint, query, start_ns, end_ns, lines, status
             FROM access_log WHERE at_ns BETWEEN ?1 AND ?2 AND (?3 IS NULL OR token = ?3)
             ORDER BY id",
        )?;
        let rows = stmt.query_map(rusqlite::params![from_ns, to_ns, token], |r| {
            Ok(AccessRecord {
                at_ns: r.get(0)?,
                token: r.get(1)?,
                team: r.get(2)?,
                role: r.get(3)?,
                endpoint: r.get(4)?,
                query: r.get(5)?,
                start_ns: r.get(6)?,
                end_ns: r.get(7)?,
                lines: count(r.get(8)?),
                status: u16::try_from(r.get::<_, i64>(9)?).unwrap_or(0),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Every link of the audit chain, by position.
    pub fn chain_links(&self) -> Result<Vec<StoredLink>, EvidenceError> {
        const SQL: &str =
            "SELECT pos, kind, ref_id, at_ns, body, prev, hash FROM chain ORDER BY pos";
        let Some(conn) = self.sqlite() else {
            return Ok(self
                .pg_rows(SQL, &[])?
                .iter()
                .map(|r| StoredLink {
                    pos: r.get(0),
                    kind: r.get(1),
                    ref_id: r.get(2),
                    at_ns: r.get(3),
                    body: r.get(4),
                    prev: r.get(5),
                    hash: r.get(6),
                })
                .collect());
        };
        let mut stmt = conn.prepare(SQL)?;
        let rows = stmt.query_map([], |r| {
            Ok(StoredLink {
                pos: r.get(0)?,
                kind: r.get(1)?,
                ref_id: r.get(2)?,
                at_ns: r.get(3)?,
                body: r.get(4)?,
                prev: r.get(5)?,
                hash: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Every signed root of the audit chain, by position.
    pub fn chain_roots(&self) -> Result<Vec<Root>, EvidenceError> {
        const SQL: &str =
            "SELECT pos, hash, signed_ns, key_id, signature FROM chain_roots ORDER BY pos";
        let Some(conn) = self.sqlite() else {
            return Ok(self
                .pg_rows(SQL, &[])?
                .iter()
                .map(|r| Root {
                    pos: r.get(0),
                    hash: r.get(1),
                    signed_ns: r.get(2),
                    key_id: r.get(3),
                    signature: r.get(4),
                })
                .collect());
        };
        let mut stmt = conn.prepare(SQL)?;
        let rows = stmt.query_map([], |r| {
            Ok(Root {
                pos: r.get(0)?,
                hash: r.get(1)?,
                signed_ns: r.get(2)?,
                key_id: r.get(3)?,
                signature: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Every row the audit chain covers, as `(kind, id, body)` with the body its link would
    /// hold for the row as it is now (store/chain.rs).
    pub fn covered_rows(&self) -> Result<Vec<(&'static str, i64, String)>, EvidenceError> {
        let mut out = Vec::new();
        let receipt = |out: &mut Vec<_>, v: ReceiptColumns| {
            let r = ReceiptRow {
                batch_id: v.1.as_deref(),
                agent: v.2.as_deref(),
                team: &v.3,
                received_ns: v.4,
                records: v.5,
                raw_bytes: v.6,
                payload_sha256: &v.7,
                rules_version: v.8.as_deref(),
                redactions: v.9.as_deref(),
                entries_digest: v.10.as_deref().unwrap_or_default(),
            };
            let body = if v.10.is_some() {
                chain::receipt_body(v.0, &r)
            } else {
                // Never written by a version that keeps the chain: no body can match.
                String::new()
            };
            out.push((chain::kind::RECEIPT, v.0, body));
        };
        let removal = |out: &mut Vec<_>, v: RemovalColumns| {
            let body = chain::removal_body(&chain::RemovalRecord {
                id: v.0,
                at_ns: v.1,
                kind: &v.2,
                erasure_id: v.3,
                operator: &v.4,
                seq: v.5,
                lines: v.6,
                digest: &v.7,
            });
            out.push((chain::kind::REMOVAL, v.0, body));
        };
        const RECEIPTS: &str = "SELECT id, batch_id, agent, team, received_ns, records, raw_bytes,
                payload_sha256, rules_version, redactions, entries_digest FROM receipts ORDER BY id";
        const REMOVALS: &str =
            "SELECT id, at_ns, kind, erasure_id, operator, seq, lines, digest FROM removals ORDER BY id";
        let Some(conn) = self.sqlite() else {
            for r in self.pg_rows(RECEIPTS, &[])? {
                receipt(
                    &mut out,
                    (
                        r.get(0),
                        r.get(1),
                        r.get(2),
                        r.get(3),
                        r.get(4),
                        r.get(5),
                        r.get(6),
                        r.get(7),
                        r.get(8),
                        r.get(9),
                        r.get(10),
                    ),
                );
            }
            for r in self.pg_rows(REMOVALS, &[])? {
                removal(
                    &mut out,
                    (
                        r.get(0),
                        r.get(1),
                        r.get(2),
                        r.get(3),
                        r.get(4),
                        r.get(5),
                        r.get(6),
                        r.get(7),
                    ),
                );
            }
            return self.covered_rows_of_every_backend(out);
        };
        let mut stmt = conn.prepare(RECEIPTS)?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
                r.get(7)?,
                r.get(8)?,
                r.get(9)?,
                r.get(10)?,
            ))
        })?;
        for v in rows {
            receipt(&mut out, v?);
        }
        let mut stmt = conn.prepare(REMOVALS)?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
                r.get(7)?,
            ))
        })?;
        for v in rows {
            removal(&mut out, v?);
        }
        self.covered_rows_of_every_backend(out)
    }

    /// The covered rows read the same way on every backend: erasures and agents' ledgers.
    fn covered_rows_of_every_backend(
        &self,
        mut out: Vec<(&'static str, i64, String)>,
    ) -> Result<Vec<(&'static str, i64, String)>, EvidenceError> {
        for e in self.erasures(i64::MIN, i64::MAX)? {
            out.push((chain::kind::ERASURE, e.id, chain::erasure_body(&e)));
        }
        for r in self.agent_ledger(i64::MIN, i64::MAX)? {
            out.push((
                chain::kind::LEDGER,
                r.id,
                chain::ledger_body(&r.as_chained()),
            ));
        }
        Ok(out)
    }

    /// Rows of agents' ledgers sent in `[from_ns, to_ns]`, per team and agent in the agent's
    /// order.
    pub fn agent_ledger(
        &self,
        from_ns: i64,
        to_ns: i64,
    ) -> Result<Vec<AgentLedgerRow>, EvidenceError> {
        const SQL: &str = "SELECT id, team, agent, seq, received_ns, batch_id, sent_ns, outcome,
                record FROM agent_ledger WHERE sent_ns BETWEEN $1 AND $2 ORDER BY team, agent, seq";
        let Some(conn) = self.sqlite() else {
            return Ok(self
                .pg_rows(SQL, &[&from_ns, &to_ns])?
                .iter()
                .map(|r| AgentLedgerRow {
                    id: r.get(0),
                    team: r.get(1),
                    agent: r.get(2),
                    seq: r.get(3),
                    received_ns: r.get(4),
                    batch_id: r.get(5),
                    sent_ns: r.get(6),
                    outcome: r.get(7),
                    record: r.get(8),
                })
                .collect());
        };
        let mut stmt = conn.prepare(&SQL.replace('$', "?"))?;
        let rows = stmt.query_map([from_ns, to_ns], |r| {
            Ok(AgentLedgerRow {
                id: r.get(0)?,
                team: r.get(1)?,
                agent: r.get(2)?,
                seq: r.get(3)?,
                received_ns: r.get(4)?,
                batch_id: r.get(5)?,
                sent_ns: r.get(6)?,
                outcome: r.get(7)?,
                record: r.get(8)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The erasures made in `[from_ns, to_ns]`, oldest first.
    pub fn erasures(&self, from_ns: i64, to_ns: i64) -> Result<Vec<ErasureRecord>, EvidenceError> {
        let Some(conn) = self.sqlite() else {
            let rows = self.pg_rows(
                &format!(
                    "SELECT {ERASURE_COLUMNS} FROM erasures WHERE at_ns BETWEEN $1 AND $2
                     ORDER BY id"
                ),
                &[&from_ns, &to_ns],
            )?;
            return Ok(rows
                .iter()
                .map(|r| ErasureRecord {
                    id: r.get(0),
                    at_ns: r.get(1),
                    operator: r.get(2),
                    query: r.get(3),
                    start_ns: r.get(4),
                    end_ns: r.get(5),
                    lines: count(r.get(6)),
                    chunks: count(r.get(7)),
                })
                .collect());
        };
        let mut stmt = conn.prepare(&format!(
            "SELECT {ERASURE_COLUMNS} FROM erasures WHERE at_ns BETWEEN ?1 AND ?2 ORDER BY id"
        ))?;
        let rows = stmt.query_map([from_ns, to_ns], erasure_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
