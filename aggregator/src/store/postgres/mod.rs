//! The PostgreSQL backend: N stateless aggregator replicas over one database, for users who
//! outgrow one machine or need high availability (CloudNativePG, Patroni).
//!
//! The client is tokio-postgres (TLS with rustls) behind a deadpool pool, on a small runtime
//! of the backend's own: the store's calls block (the server makes them on its blocking
//! pool), and each blocks on that runtime.
//!
//! Exactly once across replicas: a batch's receipt and chunks commit in one transaction;
//! `(team, batch_id)` is unique, so a second replica inserting the same id waits on the first
//! one's transaction and, once it commits, finds the receipt and answers `duplicate`.
//!
//! The live tail follows chunks by `(xid, id)`, the writing transaction's id: a transaction
//! still running has an xid at least the snapshot's `xmin`, so reading only chunks below
//! `xmin` means nothing can later commit below the cursor (batch sequences, from a sequence,
//! can commit out of order).

pub mod schema;

use std::collections::HashSet;
use std::future::Future;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::config::SslMode;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use super::backend::{
    ChunkSpan, DetailRow, EraseTx, IngestTx, Reader, ReceiptRow, ReceiptTotals, SeenBatch, Span,
    StoredTotals,
};
use super::chain::{self, ChainTx, LedgerRow, Link, SignTx, StoredLink};
use super::chunk::EncodedChunk;
use super::compact::{merge, runs, CompactReport, MAX_GROUPS_PER_PASS, SMALL_CHUNK_RAW_BYTES};
use super::retention::{ReclaimReport, Removed, RetentionReport};
use super::{
    AccessRecord, ErasureRecord, IndexCounts, StoreError, StoreSize, TailCursor, NS_PER_DAY,
};
use crate::config::RetentionPolicy;
use crate::keys::{Root, Signer};

/// Most pooled connections of one replica.
const POOL_SIZE: usize = 16;

/// How long to wait for a connection (new or pooled) before the store answers unavailable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The advisory lock key under which day partitions are created and dropped.
const PARTITION_LOCK: i64 = 0x666a_6f72_6402; // "fjord" 2

/// The advisory lock key of a retention run: one replica at a time.
const RETENTION_LOCK: i64 = 0x666a_6f72_6403; // "fjord" 3

/// The advisory lock key of a compaction pass: one replica at a time.
const COMPACT_LOCK: i64 = 0x666a_6f72_6404; // "fjord" 4

/// Expired chunks read (and deleted) per transaction of a partition that cannot be dropped.
const DELETE_BATCH: i64 = 2_000;

/// A PostgreSQL database.
pub struct PgDb {
    /// `None` only while dropping.
    rt: Option<tokio::runtime::Runtime>,
    pool: Pool,
    /// Days whose chunk partition is known to exist.
    days: Mutex<HashSet<i64>>,
    /// `host:port/dbname`, for messages (never the password).
    target: String,
    /// The URL as given (with its password: never printed), to open the store read-only.
    url: String,
}

impl Drop for PgDb {
    fn drop(&mut self) {
        // Without waiting: the store may be dropped on an async thread, where a runtime may
        // not block. The pool's connections close with their tasks.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// A PostgreSQL error as the store reports it: the SQLSTATE and message, never parameters.
pub(crate) fn pg(e: tokio_postgres::Error) -> StoreError {
    match e.as_db_error() {
        Some(db) => StoreError::Postgres(format!("{} ({})", db.message(), db.code().code())),
        None => StoreError::Unavailable(e.to_string()),
    }
}

/// Splits `sslrootcert=PATH` off a URL: tokio-postgres does not read it, the TLS setup does.
fn take_root_cert(url: &str) -> (String, Option<String>) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_owned(), None);
    };
    let mut root = None;
    let kept: Vec<&str> = query
        .split('&')
        .filter(|kv| match kv.strip_prefix("sslrootcert=") {
            Some(path) => {
                root = Some(path.to_owned());
                false
            }
            None => true,
        })
        .collect();
    let url = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    (url, root)
}

/// TLS to the database with rustls: the web PKI roots, plus the CA of `sslrootcert`.
fn tls(root_cert: Option<&str>) -> Result<tokio_postgres_rustls::MakeRustlsConnect, StoreError> {
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::CertificateDer;
    let mut roots = tokio_rustls::rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = root_cert {
        let pem = std::fs::read(path).map_err(|source| StoreError::Io {
            path: path.into(),
            source,
        })?;
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| {
                StoreError::Refused(format!("sslrootcert {path}: not a PEM certificate: {e}"))
            })?;
            roots.add(cert).map_err(|e| {
                StoreError::Refused(format!("sslrootcert {path}: unusable certificate: {e}"))
            })?;
        }
    }
    let config = tokio_rustls::rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

impl PgDb {
    /// Connects to the database of `url` (`postgres://user@host:port/db?sslmode=…`), checks
    /// that it is writable, and creates or migrates the schema.
    pub fn connect(url: &str) -> Result<PgDb, StoreError> {
        let db = Self::pool_for(url)?;
        db.start()?;
        Ok(db)
    }

    /// Connects for reading only (the audit): nothing is created or migrated, and the schema
    /// must be the one this binary writes.
    pub fn connect_read_only(url: &str) -> Result<PgDb, StoreError> {
        let db = Self::pool_for(url)?;
        let client = db.client()?;
        let found: Option<i64> = db.block(async {
            let exists: bool = client
                .query_one("SELECT to_regclass('fjord_schema') IS NOT NULL", &[])
                .await
                .map_err(pg)?
                .get(0);
            if !exists {
                return Ok(None);
            }
            Ok::<_, StoreError>(
                client
                    .query_opt("SELECT version FROM fjord_schema", &[])
                    .await
                    .map_err(pg)?
                    .map(|r| r.get(0)),
            )
        })?;
        match found {
            Some(v) if v == schema::SCHEMA_VERSION => Ok(db),
            Some(v) if v > schema::SCHEMA_VERSION => Err(StoreError::TooNew {
                found: v,
                known: schema::SCHEMA_VERSION,
            }),
            _ => Err(StoreError::Config(format!(
                "no fjord store of this version in PostgreSQL at {}; start this version's server once to create or migrate it",
                db.target
            ))),
        }
    }

    /// A pooled connection for a long read (the audit's snapshot), set read-only.
    pub fn read_only_client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        let client = self.client()?;
        self.block(client.batch_execute("SET default_transaction_read_only = on"))
            .map_err(pg)?;
        Ok(client)
    }

    /// Runs a future on the backend's runtime.
    pub fn run<F: Future>(&self, f: F) -> F::Output {
        self.block(f)
    }

    /// The URL the store was opened with (it may hold a password: never print it).
    pub fn url(&self) -> &str {
        &self.url
    }

    fn pool_for(given: &str) -> Result<PgDb, StoreError> {
        let (url, root_cert) = take_root_cert(given);
        let mut config = tokio_postgres::Config::from_str(&url).map_err(|e| {
            StoreError::Config(format!(
                "the store URL is not a PostgreSQL connection URL ({e}); expected postgres://user@host:port/dbname?sslmode=require"
            ))
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("fjord-aggregator");
        }
        let host = config
            .get_hosts()
            .first()
            .map(|h| match h {
                tokio_postgres::config::Host::Tcp(h) => h.clone(),
                tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
            })
            .unwrap_or_default();
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let target = format!("{host}:{port}/{}", config.get_dbname().unwrap_or_default());
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("fjord-pg")
            .enable_all()
            .build()
            .map_err(|source| StoreError::Io {
                path: "tokio runtime".into(),
                source,
            })?;
        let manager_config = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = if config.get_ssl_mode() == SslMode::Disable {
            Manager::from_config(config, tokio_postgres::NoTls, manager_config)
        } else {
            Manager::from_config(config, tls(root_cert.as_deref())?, manager_config)
        };
        let pool = {
            let _in_rt = rt.enter();
            Pool::builder(manager)
                .max_size(POOL_SIZE)
                .runtime(deadpool_postgres::Runtime::Tokio1)
                .wait_timeout(Some(CONNECT_TIMEOUT))
                .create_timeout(Some(CONNECT_TIMEOUT))
                .build()
                .map_err(|e| StoreError::Config(format!("the PostgreSQL pool: {e}")))?
        };
        Ok(PgDb {
            rt: Some(rt),
            pool,
            days: Mutex::new(HashSet::new()),
            target,
            url: given.to_owned(),
        })
    }

    /// `host:port/dbname`.
    pub fn target(&self) -> &str {
        &self.target
    }

    fn block<F: Future>(&self, f: F) -> F::Output {
        match &self.rt {
            Some(rt) => rt.block_on(f),
            None => unreachable!("the runtime lives until the store is dropped"),
        }
    }

    fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.block(self.pool.get()).map_err(|e| match e {
            deadpool_postgres::PoolError::Backend(e) => StoreError::Unavailable(format!(
                "cannot connect to PostgreSQL at {}: {}",
                self.target,
                e.as_db_error()
                    .map(|d| d.message().to_owned())
                    .unwrap_or_else(|| e.to_string())
            )),
            other => StoreError::Unavailable(format!(
                "no PostgreSQL connection to {}: {other}",
                self.target
            )),
        })
    }

    /// Refuses a standby, then migrates under the advisory lock.
    fn start(&self) -> Result<(), StoreError> {
        let client = self.client()?;
        self.block(async {
            let standby: bool = client
                .query_one("SELECT pg_is_in_recovery()", &[])
                .await
                .map_err(pg)?
                .get(0);
            if standby {
                return Err(StoreError::Config(format!(
                    "PostgreSQL at {} is a read-only standby; point the store at the primary (with CloudNativePG, the <cluster>-rw service)",
                    self.target
                )));
            }
            client
                .query_one("SELECT pg_advisory_lock($1)", &[&schema::MIGRATION_LOCK])
                .await
                .map_err(pg)?;
            let migrated = match migrate(&client).await {
                Ok(()) => genesis(&client).await,
                Err(e) => Err(e),
            };
            let unlocked = client
                .query_one("SELECT pg_advisory_unlock($1)", &[&schema::MIGRATION_LOCK])
                .await
                .map_err(pg);
            migrated.and(unlocked.map(drop))
        })
    }

    /// Makes sure the chunk partitions of `days` exist. Runs before an ingest's transaction,
    /// in one of its own: creating a partition locks the parent table, which a transaction
    /// that already wrote a chunk must not wait for.
    pub fn prepare_days(&self, days: &[i64]) -> Result<(), StoreError> {
        let missing: Vec<i64> = {
            let known = self.days.lock().map_err(|_| StoreError::Poisoned)?;
            days.iter()
                .copied()
                .filter(|d| !known.contains(d))
                .collect()
        };
        if missing.is_empty() {
            return Ok(());
        }
        let mut client = self.client()?;
        self.block(async {
            let tx = client.transaction().await.map_err(pg)?;
            tx.query_one("SELECT pg_advisory_xact_lock($1)", &[&PARTITION_LOCK])
                .await
                .map_err(pg)?;
            for day in &missing {
                let name = schema::partition(*day);
                tx.batch_execute(&format!(
                    "CREATE TABLE IF NOT EXISTS {name} PARTITION OF chunks
                        FOR VALUES FROM ({day}) TO ({});
                     ALTER TABLE {name} ALTER COLUMN data SET STORAGE EXTERNAL;",
                    day + 1
                ))
                .await
                .map_err(pg)?;
            }
            tx.commit().await.map_err(pg)
        })?;
        self.days
            .lock()
            .map_err(|_| StoreError::Poisoned)?
            .extend(missing);
        Ok(())
    }

    /// Runs `f` in a read-only repeatable-read transaction: one snapshot.
    pub fn read<R>(
        &self,
        f: impl FnOnce(&mut dyn Reader) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let client = self.client()?;
        self.in_tx(
            &client,
            "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY",
            |c| {
                f(&mut Conn {
                    db: self,
                    client: c,
                    settled: false,
                })
            },
        )
    }

    /// Runs `f` in a read-committed transaction, committed when it returns `Ok`.
    pub fn ingest<R>(
        &self,
        f: impl FnOnce(&mut dyn IngestTx) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let client = self.client()?;
        self.in_tx(&client, "BEGIN", |c| {
            f(&mut Conn {
                db: self,
                client: c,
                settled: false,
            })
        })
    }

    /// Signs the audit chain's head unless it is signed already (by this replica or another).
    pub fn sign_chain(&self, signer: &Signer, now_ns: i64) -> Result<Option<Root>, StoreError> {
        let client = self.client()?;
        self.in_tx(&client, "BEGIN", |c| {
            chain::sign_head(
                &mut Conn {
                    db: self,
                    client: c,
                    settled: false,
                },
                signer,
                now_ns,
            )
        })
    }

    /// Runs `f` in a read-committed transaction that first waits for any compaction pass
    /// or retention run to end and keeps new ones out until it commits (a merge of chunks
    /// read before the erasure would bring erased lines back; a retention run would record
    /// them removed twice). Afterwards the touched tables are vacuumed, so the old row
    /// versions go from the tables; see docs/aggregator.md for what PostgreSQL keeps.
    pub fn erase<R>(
        &self,
        f: impl FnOnce(&mut dyn EraseTx) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let client = self.client()?;
        let r = self.in_tx(&client, "BEGIN", |c| {
            self.block(c.batch_execute(&format!(
                "SELECT pg_advisory_xact_lock({COMPACT_LOCK}); SELECT pg_advisory_xact_lock({RETENTION_LOCK});"
            )))
            .map_err(pg)?;
            f(&mut Conn {
                    db: self,
                    client: c,
                    settled: false,
                })
        })?;
        self.block(client.batch_execute("VACUUM chunks, entry_keys"))
            .map_err(pg)?;
        Ok(r)
    }

    fn in_tx<R>(
        &self,
        client: &deadpool_postgres::Object,
        begin: &str,
        f: impl FnOnce(&deadpool_postgres::Object) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        self.block(client.batch_execute(begin)).map_err(pg)?;
        match f(client) {
            Ok(r) => {
                self.block(client.batch_execute("COMMIT")).map_err(pg)?;
                Ok(r)
            }
            Err(e) => {
                // A connection that cannot roll back is closed by the pool's recycling check.
                let _ = self.block(client.batch_execute("ROLLBACK"));
                Err(e)
            }
        }
    }

    /// Applies `policy` as of `now_ns`, on one replica at a time (others skip the run while
    /// one holds the retention lock). A day partition whose every chunk has expired for its
    /// team is dropped whole, after its lines are recorded per batch in `removals`; in a day
    /// that still holds lines a team keeps, only the expired teams' chunks are deleted. The
    /// dedup keys of whole expired days go too.
    pub fn apply_retention(
        &self,
        policy: &RetentionPolicy,
        now_ns: i64,
    ) -> Result<RetentionReport, StoreError> {
        let mut lock = self.client()?;
        let got: bool = self
            .block(lock.query_one("SELECT pg_try_advisory_lock($1)", &[&RETENTION_LOCK]))
            .map_err(pg)?
            .get(0);
        if !got {
            tracing::debug!("retention runs on another replica");
            return Ok(RetentionReport::default());
        }
        let result = self.retention_locked(&mut lock, policy, now_ns);
        let _ = self.block(lock.query_one("SELECT pg_advisory_unlock($1)", &[&RETENTION_LOCK]));
        result
    }

    fn retention_locked(
        &self,
        client: &mut deadpool_postgres::Object,
        policy: &RetentionPolicy,
        now_ns: i64,
    ) -> Result<RetentionReport, StoreError> {
        let teams: Vec<String> = self
            .block(client.query("SELECT DISTINCT team FROM streams ORDER BY team", &[]))
            .map_err(pg)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        // team → cutoff (lines with max_ts below it have expired); None: kept for ever.
        let cutoffs: std::collections::BTreeMap<String, Option<i64>> = teams
            .iter()
            .map(|t| {
                let days = policy.days_for(t);
                let cutoff = (days > 0)
                    .then(|| now_ns.saturating_sub(i64::from(days).saturating_mul(NS_PER_DAY)));
                (t.clone(), cutoff)
            })
            .collect();
        let mut per_team: std::collections::BTreeMap<String, (u64, u64)> = Default::default();
        let oldest_cutoff = cutoffs.values().flatten().max().copied();
        let Some(oldest_cutoff) = oldest_cutoff else {
            return Ok(report(policy, &cutoffs, per_team));
        };
        for day in self.detached_days(client)? {
            self.finish_detached(client, day, now_ns, policy, &mut per_team)?;
        }
        let days: Vec<i64> = self
            .block(client.query(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                 WHERE i.inhparent = 'chunks'::regclass",
                &[],
            ))
            .map_err(pg)?
            .iter()
            .filter_map(|r| schema::day_of_partition(r.get(0)))
            .filter(|d| d.saturating_mul(NS_PER_DAY) < oldest_cutoff)
            .collect();
        for day in days {
            let name = schema::partition(day);
            let rows = self
                .block(client.query(
                    &format!(
                        "SELECT s.team, max(c.max_ts) FROM {name} c
                         JOIN streams s ON s.id = c.stream_id GROUP BY s.team"
                    ),
                    &[],
                ))
                .map_err(pg)?;
            let expired = |team: &str, max_ts: i64| {
                cutoffs
                    .get(team)
                    .copied()
                    .flatten()
                    .is_some_and(|c| max_ts < c)
            };
            let whole = rows.iter().all(|r| expired(r.get(0), r.get(1)));
            if whole {
                self.drop_day(client, day, now_ns, policy, &mut per_team)?;
                continue;
            }
            for r in &rows {
                let team: String = r.get(0);
                if let Some(cutoff) = cutoffs.get(&team).copied().flatten() {
                    self.delete_expired(client, day, &team, cutoff, now_ns, policy, &mut per_team)?;
                }
            }
        }
        for (team, cutoff) in &cutoffs {
            let Some(cutoff) = cutoff else { continue };
            let before = super::day_of(*cutoff).saturating_mul(NS_PER_DAY);
            self.block(client.execute(
                "DELETE FROM entry_keys WHERE ts < $2
                 AND stream_id IN (SELECT id FROM streams WHERE team = $1)",
                &[team, &before],
            ))
            .map_err(pg)?;
        }
        Ok(report(policy, &cutoffs, per_team))
    }

    /// Records the lines of every chunk of `day` as removed, then drops its partition, in
    /// one transaction.
    fn drop_day(
        &self,
        client: &mut deadpool_postgres::Object,
        day: i64,
        now_ns: i64,
        policy: &RetentionPolicy,
        per_team: &mut std::collections::BTreeMap<String, (u64, u64)>,
    ) -> Result<(), StoreError> {
        let name = schema::partition(day);
        // Detached first, without a lock that would hold up ingest or wait behind a long
        // query (DETACH … CONCURRENTLY takes only a share-update lock on `chunks`); its
        // lines then leave the queries. A run that stops between the detach and the drop is
        // finished by the next one ([`PgDb::detached_days`]).
        self.block(client.batch_execute(&format!(
            "ALTER TABLE chunks DETACH PARTITION {name} CONCURRENTLY"
        )))
        .map_err(pg)?;
        self.finish_detached(client, day, now_ns, policy, per_team)
    }

    /// Days whose partition was detached by a retention run that stopped before dropping it.
    fn detached_days(&self, client: &deadpool_postgres::Object) -> Result<Vec<i64>, StoreError> {
        Ok(self
            .block(client.query(
                "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE n.nspname = current_schema() AND c.relkind = 'r'
                   AND c.relname LIKE 'chunks\\_d%'
                   AND NOT EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhrelid = c.oid)",
                &[],
            ))
            .map_err(pg)?
            .iter()
            .filter_map(|r| schema::day_of_partition(r.get(0)))
            .collect())
    }

    /// Records the lines of the detached partition of `day` as removed, then drops it, in
    /// one transaction.
    fn finish_detached(
        &self,
        client: &mut deadpool_postgres::Object,
        day: i64,
        now_ns: i64,
        policy: &RetentionPolicy,
        per_team: &mut std::collections::BTreeMap<String, (u64, u64)>,
    ) -> Result<(), StoreError> {
        let name = schema::partition(day);
        self.block(async {
            let tx = client.transaction().await.map_err(pg)?;
            tx.query_one("SELECT pg_advisory_xact_lock($1)", &[&PARTITION_LOCK])
                .await
                .map_err(pg)?;
            let rows = tx
                .query(
                    &format!(
                        "SELECT c.id, c.seq, c.lines, s.labels, s.team, c.data FROM {name} c
                         JOIN streams s ON s.id = c.stream_id"
                    ),
                    &[],
                )
                .await
                .map_err(pg)?;
            let mut removed: std::collections::BTreeMap<String, Removed> = Default::default();
            for r in &rows {
                let team: String = r.get(4);
                let slot = per_team.entry(team.clone()).or_default();
                slot.0 += 1;
                slot.1 += count(r.get(2));
                removed.entry(team).or_default().add_chunk(
                    r.get(0),
                    r.get(1),
                    r.get(3),
                    r.get(5),
                )?;
            }
            for (team, r) in &removed {
                record_removals(&tx, now_ns, &who(policy, team), r).await?;
            }
            tx.batch_execute(&format!("DROP TABLE {name}"))
                .await
                .map_err(pg)?;
            tx.commit().await.map_err(pg)
        })?;
        self.days
            .lock()
            .map_err(|_| StoreError::Poisoned)?
            .remove(&day);
        tracing::info!(day, "retention dropped an expired day");
        Ok(())
    }

    /// Deletes `team`'s chunks of `day` that expired before `cutoff`, in bounded
    /// transactions, recording their lines as removed.
    #[allow(clippy::too_many_arguments)]
    fn delete_expired(
        &self,
        client: &mut deadpool_postgres::Object,
        day: i64,
        team: &str,
        cutoff: i64,
        now_ns: i64,
        policy: &RetentionPolicy,
        per_team: &mut std::collections::BTreeMap<String, (u64, u64)>,
    ) -> Result<(), StoreError> {
        let name = schema::partition(day);
        loop {
            let n = self.block(async {
                let tx = client.transaction().await.map_err(pg)?;
                let rows = tx
                    .query(
                        &format!(
                            "SELECT c.id, c.seq, c.lines, s.labels, c.data FROM {name} c
                             JOIN streams s ON s.id = c.stream_id
                             WHERE s.team = $1 AND c.max_ts < $2 LIMIT $3"
                        ),
                        &[&team, &cutoff, &DELETE_BATCH],
                    )
                    .await
                    .map_err(pg)?;
                let mut removed = Removed::default();
                let mut ids = Vec::with_capacity(rows.len());
                let mut lines = 0u64;
                for r in &rows {
                    ids.push(r.get::<_, i64>(0));
                    lines += count(r.get(2));
                    removed.add_chunk(r.get(0), r.get(1), r.get(3), r.get(4))?;
                }
                tx.execute(&format!("DELETE FROM {name} WHERE id = ANY($1)"), &[&ids])
                    .await
                    .map_err(pg)?;
                record_removals(&tx, now_ns, &who(policy, team), &removed).await?;
                tx.commit().await.map_err(pg)?;
                Ok::<_, StoreError>((ids.len(), lines))
            })?;
            let slot = per_team.entry(team.to_owned()).or_default();
            slot.0 += n.0 as u64;
            slot.1 += n.1;
            if n.0 == 0 {
                return Ok(());
            }
        }
    }

    /// One compaction pass over chunks of batches received up to `cutoff_ns`, on one replica
    /// at a time (the others skip it). Each run of small chunks is merged in a transaction
    /// of its own, so ingest (which only inserts) is never held up. The merged chunk keeps
    /// the newest batch sequence and writing transaction of its parts, so a live tail past
    /// them does not see their lines again.
    pub fn compact(&self, cutoff_ns: i64) -> Result<CompactReport, StoreError> {
        let mut client = self.client()?;
        let got: bool = self
            .block(client.query_one("SELECT pg_try_advisory_lock($1)", &[&COMPACT_LOCK]))
            .map_err(pg)?
            .get(0);
        if !got {
            return Ok(CompactReport::default());
        }
        let result = self.compact_locked(&mut client, cutoff_ns);
        let _ = self.block(client.query_one("SELECT pg_advisory_unlock($1)", &[&COMPACT_LOCK]));
        result
    }

    fn compact_locked(
        &self,
        client: &mut deadpool_postgres::Object,
        cutoff_ns: i64,
    ) -> Result<CompactReport, StoreError> {
        let small = SMALL_CHUNK_RAW_BYTES as i64;
        let mut report = CompactReport::default();
        self.block(async {
            let max_seq: i64 = client
                .query_one(
                    "SELECT COALESCE(MAX(id), 0)::BIGINT FROM receipts WHERE received_ns <= $1",
                    &[&cutoff_ns],
                )
                .await
                .map_err(pg)?
                .get(0);
            let groups = client
                .query(
                    "SELECT stream_id, day FROM chunks WHERE raw_bytes < $1 AND seq <= $2
                     GROUP BY stream_id, day HAVING COUNT(*) > 1 LIMIT $3",
                    &[&small, &max_seq, &(MAX_GROUPS_PER_PASS as i64)],
                )
                .await
                .map_err(pg)?;
            for g in &groups {
                let (sid, day): (i64, i64) = (g.get(0), g.get(1));
                let tx = client.transaction().await.map_err(pg)?;
                let rows = tx
                    .query(
                        "SELECT id, raw_bytes FROM chunks
                         WHERE stream_id = $1 AND day = $2 AND raw_bytes < $3 AND seq <= $4
                         ORDER BY min_ts, id",
                        &[&sid, &day, &small, &max_seq],
                    )
                    .await
                    .map_err(pg)?;
                let small: Vec<(i64, usize)> = rows
                    .iter()
                    .map(|r| (r.get(0), usize::try_from(r.get::<_, i64>(1)).unwrap_or(0)))
                    .collect();
                let mut merged_any = false;
                for run in runs(small) {
                    let parts = tx
                        .query(
                            "SELECT data, seq, xid::TEXT::BIGINT, id FROM chunks
                             WHERE day = $1 AND id = ANY($2) ORDER BY min_ts, id",
                            &[&day, &run],
                        )
                        .await
                        .map_err(pg)?;
                    // The merged chunk takes the live tail's position of its newest part,
                    // (xid, id): a tail that has passed every part has passed it too.
                    let (xid, keep_id) = parts
                        .iter()
                        .map(|r| (r.get::<_, i64>(2), r.get::<_, i64>(3)))
                        .max()
                        .unwrap_or((0, 0));
                    let parts: Vec<(Vec<u8>, i64)> =
                        parts.iter().map(|r| (r.get(0), r.get(1))).collect();
                    let (c, seq) = merge(&parts)?;
                    tx.execute(
                        "DELETE FROM chunks WHERE day = $1 AND id = ANY($2)",
                        &[&day, &run],
                    )
                    .await
                    .map_err(pg)?;
                    let (lines, raw) = (c.lines as i64, c.raw_bytes as i64);
                    tx.execute(
                        "INSERT INTO chunks (id, stream_id, day, min_ts, max_ts, lines, raw_bytes,
                                             seq, xid, data)
                         VALUES ($10, $1, $2, $3, $4, $5, $6, $7, $8::BIGINT::TEXT::xid8, $9)",
                        &[
                            &sid, &day, &c.min_ts, &c.max_ts, &lines, &raw, &seq, &xid, &c.data,
                            &keep_id,
                        ],
                    )
                    .await
                    .map_err(pg)?;
                    report.chunks_in += run.len();
                    report.chunks_out += 1;
                    merged_any = true;
                }
                tx.commit().await.map_err(pg)?;
                if merged_any {
                    report.groups += 1;
                }
            }
            Ok::<_, StoreError>(())
        })?;
        Ok(report)
    }

    /// Database size and chunk count, for `/metrics`.
    pub fn size(&self) -> Result<StoreSize, StoreError> {
        let client = self.client()?;
        let row = self
            .block(client.query_one(
                "SELECT pg_database_size(current_database()), (SELECT count(*) FROM chunks)",
                &[],
            ))
            .map_err(pg)?;
        Ok(StoreSize {
            bytes: u64::try_from(row.get::<_, i64>(0)).unwrap_or(0),
            chunks: u64::try_from(row.get::<_, i64>(1)).unwrap_or(0),
        })
    }

    /// Appends `records` to the access log in one transaction.
    pub fn record_access(&self, records: &[AccessRecord]) -> Result<(), StoreError> {
        let mut client = self.client()?;
        self.block(async {
            let tx = client.transaction().await.map_err(pg)?;
            let ins = tx
                .prepare_cached(
                    "INSERT INTO access_log (at_ns, token, team, role, endpoint, query, start_ns,
                                             end_ns, lines, status)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                )
                .await
                .map_err(pg)?;
            for r in records {
                let lines = i64::try_from(r.lines).unwrap_or(i64::MAX);
                let status = i32::from(r.status);
                tx.execute(
                    &ins,
                    &[
                        &r.at_ns,
                        &r.token,
                        &r.team,
                        &r.role,
                        &r.endpoint,
                        &r.query,
                        &r.start_ns,
                        &r.end_ns,
                        &lines,
                        &status,
                    ],
                )
                .await
                .map_err(pg)?;
            }
            tx.commit().await.map_err(pg)
        })
    }
}

/// Who removed lines by retention, as `removals.operator` says it.
fn who(policy: &RetentionPolicy, team: &str) -> String {
    format!("retention ({} d)", policy.days_for(team))
}

/// Writes one `removals` row per batch of `removed`.
async fn record_removals(
    tx: &deadpool_postgres::Transaction<'_>,
    now_ns: i64,
    who: &str,
    removed: &Removed,
) -> Result<(), StoreError> {
    let mut links = Vec::with_capacity(removed.by_batch.len());
    for (seq, (lines, digest)) in &removed.by_batch {
        let digest = digest.to_string();
        let id: i64 = tx
            .query_one(
                "INSERT INTO removals (at_ns, kind, operator, seq, lines, digest)
                 VALUES ($1, 'retention', $2, $3, $4, $5) RETURNING id",
                &[&now_ns, &who, seq, lines, &digest],
            )
            .await
            .map_err(pg)?
            .get(0);
        links.push(chain::removal_link(&chain::RemovalRecord {
            id,
            at_ns: now_ns,
            kind: "retention",
            erasure_id: None,
            operator: who,
            seq: *seq,
            lines: *lines,
            digest: &digest,
        }));
    }
    append_chain(tx, &links).await
}

/// The report of a retention run: per team, days kept, chunks and lines removed.
fn report(
    policy: &RetentionPolicy,
    cutoffs: &std::collections::BTreeMap<String, Option<i64>>,
    per_team: std::collections::BTreeMap<String, (u64, u64)>,
) -> RetentionReport {
    RetentionReport {
        teams: cutoffs
            .keys()
            .map(|t| {
                let (chunks, lines) = per_team.get(t).copied().unwrap_or_default();
                (t.clone(), policy.days_for(t), chunks, lines)
            })
            .collect(),
        reclaim: ReclaimReport::default(),
    }
}

/// Writes the audit chain's genesis link unless the chain has begun: the last id of each
/// covered table, so rows from before the chain are told from rows added behind its back.
async fn genesis(client: &deadpool_postgres::Object) -> Result<(), StoreError> {
    client.batch_execute("BEGIN").await.map_err(pg)?;
    let result = async {
        if chain_head(client).await?.is_none() {
            let row = client
                .query_one(
                    "SELECT (SELECT coalesce(max(id), 0) FROM receipts),
                            (SELECT coalesce(max(id), 0) FROM removals),
                            (SELECT coalesce(max(id), 0) FROM erasures)",
                    &[],
                )
                .await
                .map_err(pg)?;
            let g = chain::Genesis {
                receipts_before: row.get(0),
                removals_before: row.get(1),
                erasures_before: row.get(2),
            };
            append_chain(client, &[chain::genesis_link(&g, super::Store::now_ns())]).await?;
        }
        Ok(())
    }
    .await;
    let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
    client.batch_execute(end).await.map_err(pg)?;
    result
}

/// Applies the migrations the database lacks; the caller holds the migration lock.
async fn migrate(client: &deadpool_postgres::Object) -> Result<(), StoreError> {
    let exists: bool = client
        .query_one("SELECT to_regclass('fjord_schema') IS NOT NULL", &[])
        .await
        .map_err(pg)?
        .get(0);
    if !exists {
        client
            .batch_execute("CREATE TABLE fjord_schema (version BIGINT NOT NULL)")
            .await
            .map_err(pg)?;
    }
    let current: i64 = client
        .query_opt("SELECT version FROM fjord_schema", &[])
        .await
        .map_err(pg)?
        .map_or(0, |r| r.get(0));
    let known = schema::SCHEMA_VERSION;
    if current > known {
        return Err(StoreError::TooNew {
            found: current,
            known,
        });
    }
    for (i, sql) in schema::MIGRATIONS.iter().enumerate().skip(current as usize) {
        let version = i as i64 + 1;
        client
            .batch_execute(&format!(
                "BEGIN; {sql};
                 DELETE FROM fjord_schema; INSERT INTO fjord_schema VALUES ({version});
                 COMMIT;"
            ))
            .await
            .map_err(pg)?;
    }
    Ok(())
}

/// One pooled connection inside a transaction.
struct Conn<'a> {
    db: &'a PgDb,
    client: &'a deadpool_postgres::Object,
    /// [`Reader::settled_only`].
    settled: bool,
}

impl Conn<'_> {
    fn rows(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>, StoreError> {
        self.db.block(async {
            let st = self.client.prepare_cached(sql).await.map_err(pg)?;
            self.client.query(&st, params).await.map_err(pg)
        })
    }

    fn row(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Option<Row>, StoreError> {
        Ok(self.rows(sql, params)?.into_iter().next())
    }

    fn execute(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64, StoreError> {
        self.db.block(async {
            let st = self.client.prepare_cached(sql).await.map_err(pg)?;
            self.client.execute(&st, params).await.map_err(pg)
        })
    }
}

fn count(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

impl Reader for Conn<'_> {
    fn streams(&mut self, team: Option<&str>) -> Result<Vec<(i64, String)>, StoreError> {
        let rows = match team {
            Some(t) => self.rows(
                "SELECT id, labels FROM streams WHERE team = $1 ORDER BY id",
                &[&t],
            )?,
            None => self.rows("SELECT id, labels FROM streams ORDER BY id", &[])?,
        };
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    fn stream(&mut self, id: i64) -> Result<Option<(String, String)>, StoreError> {
        Ok(self
            .row("SELECT team, labels FROM streams WHERE id = $1", &[&id])?
            .map(|r| (r.get(0), r.get(1))))
    }

    fn chunks(&mut self, sid: i64, span: Span) -> Result<Vec<ChunkSpan>, StoreError> {
        let sql = if self.settled {
            "SELECT id, min_ts, max_ts FROM chunks
             WHERE stream_id = $1 AND day BETWEEN $4 AND $5 AND max_ts >= $2 AND min_ts <= $3
               AND xid < pg_snapshot_xmin(pg_current_snapshot())
             ORDER BY min_ts, id"
        } else {
            "SELECT id, min_ts, max_ts FROM chunks
             WHERE stream_id = $1 AND day BETWEEN $4 AND $5 AND max_ts >= $2 AND min_ts <= $3
             ORDER BY min_ts, id"
        };
        let rows = self.rows(
            sql,
            &[
                &sid,
                &span.start_ns,
                &span.end_ns,
                &span.first_day,
                &span.last_day,
            ],
        )?;
        Ok(rows
            .iter()
            .map(|r| ChunkSpan {
                id: r.get(0),
                min_ts: r.get(1),
                max_ts: r.get(2),
            })
            .collect())
    }

    fn chunk_data(&mut self, id: i64) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .row("SELECT data FROM chunks WHERE id = $1", &[&id])?
            .map(|r| r.get(0)))
    }

    fn chunk_counts(&mut self, sid: i64, span: Span) -> Result<IndexCounts, StoreError> {
        let r = self
            .row(
                "SELECT COUNT(*), COALESCE(SUM(lines), 0)::BIGINT, COALESCE(SUM(raw_bytes), 0)::BIGINT
                 FROM chunks
                 WHERE stream_id = $1 AND day BETWEEN $4 AND $5 AND max_ts >= $2 AND min_ts <= $3",
                &[
                    &sid,
                    &span.start_ns,
                    &span.end_ns,
                    &span.first_day,
                    &span.last_day,
                ],
            )?
            .ok_or_else(|| StoreError::Postgres("an aggregate returned no row".into()))?;
        Ok(IndexCounts {
            chunks: count(r.get(0)),
            entries: count(r.get(1)),
            bytes: count(r.get(2)),
        })
    }

    fn streams_with_chunks(
        &mut self,
        team: Option<&str>,
        span: Span,
    ) -> Result<Vec<String>, StoreError> {
        let rows = self.rows(
            "SELECT s.labels FROM streams s
             WHERE ($1::TEXT IS NULL OR s.team = $1)
               AND EXISTS (SELECT 1 FROM chunks c WHERE c.stream_id = s.id
                           AND c.day BETWEEN $4 AND $5
                           AND c.max_ts >= $2 AND c.min_ts <= $3)
             ORDER BY s.id",
            &[
                &team,
                &span.start_ns,
                &span.end_ns,
                &span.first_day,
                &span.last_day,
            ],
        )?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    fn receipt_totals(&mut self) -> Result<Vec<ReceiptTotals>, StoreError> {
        let rows = self.rows(
            "SELECT team, COUNT(*), COALESCE(SUM(records), 0)::BIGINT,
                    COALESCE(SUM(raw_bytes), 0)::BIGINT
             FROM receipts GROUP BY team",
            &[],
        )?;
        Ok(rows
            .iter()
            .map(|r| (r.get(0), count(r.get(1)), count(r.get(2)), count(r.get(3))))
            .collect())
    }

    fn stored_totals(&mut self) -> Result<Vec<StoredTotals>, StoreError> {
        let rows = self.rows(
            "SELECT s.team, COUNT(DISTINCT s.id), COALESCE(SUM(c.lines), 0)::BIGINT,
                    COALESCE(SUM(c.raw_bytes), 0)::BIGINT,
                    COALESCE(SUM(octet_length(c.data)), 0)::BIGINT
             FROM streams s LEFT JOIN chunks c ON c.stream_id = s.id GROUP BY s.team",
            &[],
        )?;
        Ok(rows
            .iter()
            .map(|r| {
                (
                    r.get(0),
                    count(r.get(1)),
                    count(r.get(2)),
                    count(r.get(3)),
                    count(r.get(4)),
                )
            })
            .collect())
    }

    fn detail(&mut self, team: Option<&str>) -> Result<Vec<DetailRow>, StoreError> {
        let rows = self.rows(
            "SELECT s.team, s.labels, c.day, COUNT(*), SUM(c.lines)::BIGINT,
                    SUM(c.raw_bytes)::BIGINT, SUM(octet_length(c.data))::BIGINT
             FROM chunks c JOIN streams s ON s.id = c.stream_id
             WHERE $1::TEXT IS NULL OR s.team = $1
             GROUP BY s.team, s.labels, c.stream_id, c.day
             ORDER BY s.team, c.stream_id, c.day",
            &[&team],
        )?;
        Ok(rows
            .iter()
            .map(|r| {
                (
                    r.get(0),
                    r.get(1),
                    r.get(2),
                    count(r.get(3)),
                    count(r.get(4)),
                    count(r.get(5)),
                    count(r.get(6)),
                )
            })
            .collect())
    }

    fn ping(&mut self) -> Result<(), StoreError> {
        self.row("SELECT 1::BIGINT", &[])?;
        Ok(())
    }

    fn settled_only(&mut self) {
        self.settled = true;
    }

    fn tail_position(&mut self) -> Result<TailCursor, StoreError> {
        // Everything below the snapshot's xmin is settled: the backfill reads only that
        // (settled_only), and the tail follows from there.
        let r = self
            .row(
                "SELECT pg_snapshot_xmin(pg_current_snapshot())::TEXT::BIGINT",
                &[],
            )?
            .ok_or_else(|| StoreError::Postgres("no snapshot".into()))?;
        let xmin: i64 = r.get(0);
        Ok(TailCursor {
            seq: xmin - 1,
            id: i64::MAX,
        })
    }

    fn chunks_after(
        &mut self,
        after: TailCursor,
        limit: usize,
    ) -> Result<Vec<(TailCursor, i64)>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self.rows(
            "SELECT xid::TEXT::BIGINT, id, stream_id FROM chunks
             WHERE (xid, id) > ($1::BIGINT::TEXT::xid8, $2)
               AND xid < pg_snapshot_xmin(pg_current_snapshot())
             ORDER BY xid, id LIMIT $3",
            &[&after.seq, &after.id, &limit],
        )?;
        Ok(rows
            .iter()
            .map(|r| {
                (
                    TailCursor {
                        seq: r.get(0),
                        id: r.get(1),
                    },
                    r.get(2),
                )
            })
            .collect())
    }
}

impl IngestTx for Conn<'_> {
    fn seen(&mut self, team: &str, batch_id: &str) -> Result<Option<SeenBatch>, StoreError> {
        Ok(self
            .row(
                "SELECT entries_digest, payload_sha256 FROM receipts
                 WHERE team = $1 AND batch_id = $2",
                &[&team, &batch_id],
            )?
            .map(|r| (r.get(0), r.get(1))))
    }

    fn insert_receipt(&mut self, r: &ReceiptRow<'_>) -> Result<Option<i64>, StoreError> {
        // A concurrent transaction inserting the same (team, batch_id) makes this wait until
        // it ends; if it committed, nothing is inserted and no row comes back.
        let row = self.row(
            "INSERT INTO receipts (batch_id, agent, team, received_ns, records, raw_bytes,
                                   payload_sha256, rules_version, redactions, entries_digest)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
             ON CONFLICT (team, batch_id) DO NOTHING RETURNING id",
            &[
                &r.batch_id,
                &r.agent,
                &r.team,
                &r.received_ns,
                &r.records,
                &r.raw_bytes,
                &r.payload_sha256,
                &r.rules_version,
                &r.redactions,
                &r.entries_digest,
            ],
        )?;
        Ok(row.map(|r| r.get(0)))
    }

    fn team_streams(&mut self, team: &str) -> Result<usize, StoreError> {
        let r = self
            .row("SELECT COUNT(*) FROM streams WHERE team = $1", &[&team])?
            .ok_or_else(|| StoreError::Postgres("an aggregate returned no row".into()))?;
        Ok(usize::try_from(r.get::<_, i64>(0)).unwrap_or(0))
    }

    fn find_stream(&mut self, key: &str) -> Result<Option<i64>, StoreError> {
        Ok(self
            .row("SELECT id FROM streams WHERE labels = $1", &[&key])?
            .map(|r| r.get(0)))
    }

    fn insert_stream(&mut self, team: &str, key: &str, now_ns: i64) -> Result<i64, StoreError> {
        // Another replica may create the same stream at the same moment: the conflict waits
        // for it and then returns its id.
        let r = self
            .row(
                "INSERT INTO streams (team, labels, created_ns) VALUES ($1, $2, $3)
                 ON CONFLICT (labels) DO UPDATE SET labels = EXCLUDED.labels RETURNING id",
                &[&team, &key, &now_ns],
            )?
            .ok_or_else(|| StoreError::Postgres("an insert returned no id".into()))?;
        Ok(r.get(0))
    }

    fn add_entry_key(&mut self, sid: i64, ts: i64, key: i64) -> Result<bool, StoreError> {
        Ok(self.execute(
            "INSERT INTO entry_keys (stream_id, ts, h) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            &[&sid, &ts, &key],
        )? == 1)
    }

    fn insert_chunk(
        &mut self,
        sid: i64,
        seq: i64,
        day: i64,
        c: &EncodedChunk,
    ) -> Result<(), StoreError> {
        let (lines, raw) = (c.lines as i64, c.raw_bytes as i64);
        let inserted = self.db.block(async {
            let st = self
                .client
                .prepare_cached(
                    "INSERT INTO chunks (stream_id, day, min_ts, max_ts, lines, raw_bytes, seq, data)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .await?;
            self.client
                .execute(
                    &st,
                    &[&sid, &day, &c.min_ts, &c.max_ts, &lines, &raw, &seq, &c.data],
                )
                .await
        });
        match inserted {
            Ok(_) => Ok(()),
            // The day's partition was dropped by retention on another replica since this one
            // made sure of it: forget what it knew, and let the sender retry.
            Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::CHECK_VIOLATION) => {
                if let Ok(mut days) = self.db.days.lock() {
                    days.clear();
                }
                Err(StoreError::Unavailable(
                    "a day partition was dropped meanwhile; retry".into(),
                ))
            }
            Err(e) => Err(pg(e)),
        }
    }

    fn last_ledger_seq(&mut self, team: &str, agent: &str) -> Result<Option<i64>, StoreError> {
        Ok(self
            .row(
                "SELECT max(seq) FROM agent_ledger WHERE team = $1 AND agent = $2",
                &[&team, &agent],
            )?
            .and_then(|r| r.get(0)))
    }

    fn insert_ledger_row(&mut self, r: &LedgerRow<'_>) -> Result<Option<i64>, StoreError> {
        // A retry on another replica may be storing the same rows: the unique key decides,
        // waiting for that transaction, and the loser skips the row.
        Ok(self
            .row(
                "INSERT INTO agent_ledger (team, agent, seq, received_ns, batch_id, sent_ns,
                                           outcome, record)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                 ON CONFLICT (team, agent, seq) DO NOTHING RETURNING id",
                &[
                    &r.team,
                    &r.agent,
                    &r.seq,
                    &r.received_ns,
                    &r.batch_id,
                    &r.sent_ns,
                    &r.outcome,
                    &r.record,
                ],
            )?
            .map(|row| row.get(0)))
    }

    fn insert_duplicates(
        &mut self,
        at_ns: i64,
        seq: i64,
        lines: u64,
        digest: &str,
    ) -> Result<i64, StoreError> {
        let lines = i64::try_from(lines).unwrap_or(i64::MAX);
        let row = self
            .row(
                "INSERT INTO removals (at_ns, kind, operator, seq, lines, digest)
                 VALUES ($1, 'duplicate', $2, $3, $4, $5) RETURNING id",
                &[&at_ns, &chain::DEDUP_OPERATOR, &seq, &lines, &digest],
            )?
            .ok_or_else(|| StoreError::Postgres("an insert returned no id".into()))?;
        Ok(row.get(0))
    }
}

impl ChainTx for Conn<'_> {
    fn chain_head(&mut self) -> Result<Option<(i64, [u8; 32])>, StoreError> {
        self.db.block(chain_head(self.client))
    }

    fn insert_link(&mut self, l: &StoredLink) -> Result<(), StoreError> {
        self.db.block(insert_link(self.client, l))
    }
}

impl SignTx for Conn<'_> {
    fn last_root(&mut self) -> Result<Option<i64>, StoreError> {
        Ok(self
            .row("SELECT max(pos) FROM chain_roots", &[])?
            .and_then(|r| r.get(0)))
    }

    fn insert_root(&mut self, r: &Root) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO chain_roots (pos, hash, signed_ns, key_id, signature)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (pos) DO NOTHING",
            &[&r.pos, &r.hash, &r.signed_ns, &r.key_id, &r.signature],
        )?;
        Ok(())
    }
}

/// Takes the chain's lock for the rest of the transaction, then reads its head. Every
/// writer of a covered row takes it last, just before appending its links, so it is held
/// only for the appends and the commit.
async fn chain_head(
    c: &impl deadpool_postgres::GenericClient,
) -> Result<Option<(i64, [u8; 32])>, StoreError> {
    c.query_one("SELECT pg_advisory_xact_lock($1)", &[&schema::CHAIN_LOCK])
        .await
        .map_err(pg)?;
    let row = c
        .query_opt("SELECT pos, hash FROM chain ORDER BY pos DESC LIMIT 1", &[])
        .await
        .map_err(pg)?;
    chain::head_of(row.map(|r| (r.get(0), r.get(1))))
}

async fn insert_link(
    c: &impl deadpool_postgres::GenericClient,
    l: &StoredLink,
) -> Result<(), StoreError> {
    c.execute(
        "INSERT INTO chain (pos, kind, ref_id, at_ns, body, prev, hash)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        &[
            &l.pos, &l.kind, &l.ref_id, &l.at_ns, &l.body, &l.prev, &l.hash,
        ],
    )
    .await
    .map_err(pg)?;
    Ok(())
}

/// [`chain::append`] inside an async transaction.
async fn append_chain(
    c: &impl deadpool_postgres::GenericClient,
    links: &[Link],
) -> Result<(), StoreError> {
    if links.is_empty() {
        return Ok(());
    }
    let head = chain_head(c).await?;
    for l in chain::seal(head, links) {
        insert_link(c, &l).await?;
    }
    Ok(())
}

impl EraseTx for Conn<'_> {
    fn streams(&mut self, team: Option<&str>) -> Result<Vec<(i64, String)>, StoreError> {
        Reader::streams(self, team)
    }

    fn chunks(&mut self, sid: i64, span: Span) -> Result<Vec<ChunkSpan>, StoreError> {
        Reader::chunks(self, sid, span)
    }

    fn chunk(&mut self, id: i64) -> Result<Option<(Vec<u8>, i64, i64)>, StoreError> {
        // FOR UPDATE: the row is rewritten below; nothing else changes it meanwhile.
        Ok(self
            .row(
                "SELECT data, seq, day FROM chunks WHERE id = $1 FOR UPDATE",
                &[&id],
            )?
            .map(|r| (r.get(0), r.get(1), r.get(2))))
    }

    fn forget_key(&mut self, sid: i64, ts: i64, key: i64) -> Result<(), StoreError> {
        self.execute(
            "DELETE FROM entry_keys WHERE stream_id = $1 AND ts = $2 AND h = $3",
            &[&sid, &ts, &key],
        )?;
        Ok(())
    }

    fn delete_chunk(&mut self, id: i64, day: i64) -> Result<(), StoreError> {
        self.execute(
            "DELETE FROM chunks WHERE day = $1 AND id = $2",
            &[&day, &id],
        )?;
        Ok(())
    }

    fn update_chunk(&mut self, id: i64, day: i64, c: &EncodedChunk) -> Result<(), StoreError> {
        let (lines, raw) = (c.lines as i64, c.raw_bytes as i64);
        self.execute(
            "UPDATE chunks SET min_ts = $3, max_ts = $4, lines = $5, raw_bytes = $6, data = $7
             WHERE day = $1 AND id = $2",
            &[&day, &id, &c.min_ts, &c.max_ts, &lines, &raw, &c.data],
        )?;
        Ok(())
    }

    fn insert_erasure(&mut self, r: &ErasureRecord) -> Result<i64, StoreError> {
        let lines = i64::try_from(r.lines).unwrap_or(i64::MAX);
        let chunks = i64::try_from(r.chunks).unwrap_or(i64::MAX);
        let row = self
            .row(
                "INSERT INTO erasures (at_ns, operator, query, start_ns, end_ns, lines, chunks)
                 VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
                &[
                    &r.at_ns,
                    &r.operator,
                    &r.query,
                    &r.start_ns,
                    &r.end_ns,
                    &lines,
                    &chunks,
                ],
            )?
            .ok_or_else(|| StoreError::Postgres("an insert returned no id".into()))?;
        Ok(row.get(0))
    }

    fn insert_erasure_removal(
        &mut self,
        at_ns: i64,
        erasure_id: i64,
        operator: &str,
        seq: i64,
        lines: u64,
        digest: &str,
    ) -> Result<i64, StoreError> {
        let lines = i64::try_from(lines).unwrap_or(i64::MAX);
        let row = self
            .row(
                "INSERT INTO removals (at_ns, kind, erasure_id, operator, seq, lines, digest)
                 VALUES ($1, 'erasure', $2, $3, $4, $5, $6) RETURNING id",
                &[&at_ns, &erasure_id, &operator, &seq, &lines, &digest],
            )?
            .ok_or_else(|| StoreError::Postgres("an insert returned no id".into()))?;
        Ok(row.get(0))
    }
}
