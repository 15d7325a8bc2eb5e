//! What the tests of the store, the server and the audit share: the same test over each
//! backend. SQLite lives in a temp dir; PostgreSQL is one server per test process, started by
//! the e2e harness on first use (Debian's binaries; tests/src/postgres.rs) and stopped when
//! the process exits, with a database of its own for every store a test opens.
//!
//! [`open_store`] is how a test that is not written per backend gets its store: SQLite,
//! unless `FJORD_TEST_BACKEND=postgres`, under which CI runs the server tests a second time.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use rusqlite::Connection;

use fjord_e2e::postgres::Postgres;

use super::evidence::Evidence;
use super::{postgres, Db, Store, DB_FILE};

/// The test process's PostgreSQL server, taken and stopped at exit.
static SERVER: OnceLock<Mutex<Option<Postgres>>> = OnceLock::new();

/// Databases created so far, for unique names.
static DATABASES: AtomicUsize = AtomicUsize::new(0);

extern "C" fn stop_server() {
    if let Some(m) = SERVER.get() {
        if let Ok(mut s) = m.lock() {
            drop(s.take());
        }
    }
}

/// A new database on the shared server; its DSN.
pub fn new_database() -> String {
    let server = SERVER.get_or_init(|| {
        let pg = Postgres::builder()
            .fsync(false)
            .start()
            .unwrap_or_else(|e| panic!("{e}"));
        // SAFETY: atexit(3) with a function that takes no arguments and does not unwind
        // (dropping the server stops it, ignoring errors).
        unsafe { libc::atexit(stop_server) };
        Mutex::new(Some(pg))
    });
    let n = DATABASES.fetch_add(1, Ordering::Relaxed);
    let guard = server.lock().unwrap_or_else(|e| e.into_inner());
    let pg = guard.as_ref().expect("the test server is running");
    pg.create_database(&format!("t{n}")).unwrap()
}

/// Runs `sql` on the database of `dsn` with psql; the first column of the first row.
fn psql(dsn: &str, sql: &str) -> String {
    let server = SERVER.get().expect("the test server was started");
    let guard = server.lock().unwrap_or_else(|e| e.into_inner());
    guard
        .as_ref()
        .expect("the test server is running")
        .psql_url(dsn, sql)
        .unwrap()
        .lines()
        .next()
        .unwrap_or_default()
        .split('|')
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// A store for a test that is not written per backend: SQLite in `dir`, or a new PostgreSQL
/// database when `FJORD_TEST_BACKEND=postgres`.
pub fn open_store(dir: &Path) -> Store {
    match std::env::var("FJORD_TEST_BACKEND").as_deref() {
        // Connected on a thread of its own: the store's calls block, and an async test may
        // not block its runtime's thread.
        Ok("postgres") => std::thread::spawn(|| {
            Store::over(Db::Postgres(
                postgres::PgDb::connect(&new_database()).unwrap(),
            ))
            .unwrap()
        })
        .join()
        .unwrap(),
        _ => Store::open(dir).unwrap(),
    }
}

/// A store to test and how to open it again.
pub struct Backend {
    pub name: &'static str,
    pub open: Box<dyn Fn() -> Store>,
    /// The store read-only, as the audit opens it.
    pub evidence: Box<dyn Fn() -> Evidence>,
    /// Runs one SQL statement and returns the first column of its first row as text ("" for
    /// a statement without rows).
    pub sql: Box<dyn Fn(&str) -> String>,
    /// The SQLite directory, kept until the test ends.
    _dir: Option<tempfile::TempDir>,
}

/// SQLite in a temp dir, and a new PostgreSQL database.
pub fn backends() -> Vec<Backend> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_owned();
    let db_file = path.join(DB_FILE);
    let evidence_dir = path.clone();
    let dsn = new_database();
    let (open_dsn, evidence_dsn) = (dsn.clone(), dsn.clone());
    vec![
        Backend {
            name: "sqlite",
            open: Box::new(move || Store::open(&path).unwrap()),
            evidence: Box::new(move || Evidence::open(&evidence_dir).unwrap()),
            sql: Box::new(move |q| {
                let conn = Connection::open(&db_file).unwrap();
                let mut stmt = conn.prepare(q).unwrap();
                let mut rows = stmt.query([]).unwrap();
                match rows.next().unwrap() {
                    None => String::new(),
                    Some(r) => match r.get::<_, rusqlite::types::Value>(0).unwrap() {
                        rusqlite::types::Value::Integer(i) => i.to_string(),
                        rusqlite::types::Value::Text(t) => t,
                        other => format!("{other:?}"),
                    },
                }
            }),
            _dir: Some(dir),
        },
        Backend {
            name: "postgres",
            open: Box::new(move || {
                Store::over(Db::Postgres(postgres::PgDb::connect(&open_dsn).unwrap())).unwrap()
            }),
            evidence: Box::new(move || Evidence::open_postgres(&evidence_dsn).unwrap()),
            sql: Box::new(move |q| psql(&dsn, q)),
            _dir: None,
        },
    ]
}

/// Runs `test` against each backend; a failure names the backend.
pub fn each_backend(test: impl Fn(&Backend)) {
    for b in backends() {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| test(&b)));
        if let Err(e) = r {
            eprintln!("failed on the {} backend", b.name);
            std::panic::resume_unwind(e);
        }
    }
}
