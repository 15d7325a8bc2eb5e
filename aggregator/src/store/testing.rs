//! What the tests of the store and the audit share: the same test over each backend, SQLite
//! in a temp dir and PostgreSQL on a server of the test's own, started by the e2e harness
//! (Debian's binaries; tests/src/postgres.rs).

use rusqlite::Connection;

use super::evidence::Evidence;
use super::{postgres, Db, Store, DB_FILE};

/// A store to test and how to open it again.
pub struct Backend {
    pub name: &'static str,
    pub open: Box<dyn Fn() -> Store>,
    /// The store read-only, as the audit opens it.
    pub evidence: Box<dyn Fn() -> Evidence>,
    /// Runs one SQL statement and returns the first column of its first row as text.
    pub sql: Box<dyn Fn(&str) -> String>,
    /// The SQLite directory or the PostgreSQL server, kept until the test ends.
    _db: Box<dyn std::any::Any>,
}

/// SQLite in a temp dir, and PostgreSQL on a server of its own.
pub fn backends() -> Vec<Backend> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_owned();
    let pg = fjord_e2e::postgres::Postgres::builder()
        .fsync(false)
        .start()
        .unwrap_or_else(|e| panic!("{e}"));
    let dsn = pg.dsn();
    let pg_dsn = dsn.clone();
    let db_file = path.join(DB_FILE);
    let evidence_dir = path.clone();
    let pg = std::rc::Rc::new(pg);
    let pg_sql = pg.clone();
    vec![
        Backend {
            name: "sqlite",
            open: Box::new(move || Store::open(&path).unwrap()),
            evidence: Box::new(move || Evidence::open(&evidence_dir).unwrap()),
            sql: Box::new(move |q| {
                // Statements without rows (UPDATE, DELETE) answer "", as psql's -At does.
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
            _db: Box::new(dir),
        },
        Backend {
            name: "postgres",
            open: Box::new(move || {
                Store::over(Db::Postgres(postgres::PgDb::connect(&dsn).unwrap())).unwrap()
            }),
            evidence: Box::new(move || Evidence::open_postgres(&pg_dsn).unwrap()),
            sql: Box::new(move |q| pg_sql.psql(q).unwrap()),
            _db: Box::new(pg),
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
