//! The harness's PostgreSQL server (`fjord_e2e::postgres`), which the PostgreSQL store's
//! tests stand on: it starts from Debian's package, answers SQL, keeps committed rows across
//! a restart and a kill, speaks TLS and passwords when asked, and frees its port when it
//! stops. Without PostgreSQL installed these tests fail and say how to install it.

use std::net::TcpListener;

use fjord_e2e::certs::Ca;
use fjord_e2e::postgres::Postgres;

fn start(builder: fjord_e2e::postgres::PostgresBuilder) -> Postgres {
    builder.start().unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn starts_answers_sql_and_stops_freeing_its_port() {
    let mut pg = start(Postgres::builder().fsync(false));
    assert_eq!(pg.psql("SELECT 1").unwrap(), "1");
    assert_eq!(pg.psql("SHOW fsync").unwrap(), "off");
    assert_eq!(pg.psql("SHOW listen_addresses").unwrap(), "127.0.0.1");
    assert_eq!(pg.psql("SELECT current_database()").unwrap(), "fjord");
    assert_eq!(
        pg.dsn(),
        format!("postgres://postgres@127.0.0.1:{}/fjord", pg.port())
    );
    // A client over TCP, with the DSN a store is given.
    assert_eq!(
        pg.psql_url(&pg.dsn(), "SELECT current_user").unwrap(),
        "postgres"
    );
    // A database of its own per test, on one server.
    let other = pg.create_database("tenant_2").unwrap();
    assert!(other.ends_with("/tenant_2"), "{other}");
    assert_eq!(
        pg.psql_in("tenant_2", "SELECT current_database()").unwrap(),
        "tenant_2"
    );
    assert!(pg.create_database("x; DROP DATABASE fjord").is_err());
    // An SQL error is an error, with PostgreSQL's message.
    let err = pg.psql("SELECT * FROM no_such_table").unwrap_err();
    assert!(err.contains("no_such_table"), "{err}");

    let port = pg.port();
    assert!(pg.is_running());
    pg.stop().unwrap();
    assert!(!pg.is_running());
    TcpListener::bind(("127.0.0.1", port))
        .unwrap_or_else(|e| panic!("port {port} still taken after stop: {e}"));
    assert!(
        pg.psql("SELECT 1").is_err(),
        "a stopped server answers nothing"
    );
}

#[test]
fn committed_rows_survive_a_restart_and_a_kill() {
    let mut pg = start(Postgres::builder());
    assert_eq!(pg.psql("SHOW fsync").unwrap(), "on", "durable by default");
    let (port, dsn) = (pg.port(), pg.dsn());
    pg.psql("CREATE TABLE t (n int PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 100)")
        .unwrap();

    pg.restart().unwrap();
    assert_eq!((pg.port(), pg.dsn()), (port, dsn.clone()), "same address");
    assert_eq!(pg.psql("SELECT count(*) FROM t").unwrap(), "100");

    // A power cut: every server process SIGKILLed, no shutdown checkpoint. The next start
    // recovers from the WAL and keeps every committed row.
    pg.psql("INSERT INTO t SELECT generate_series(101, 200)")
        .unwrap();
    pg.kill();
    assert!(!pg.is_running());
    assert!(
        pg.psql("SELECT 1").is_err(),
        "a killed server answers nothing"
    );
    pg.restart().unwrap();
    assert_eq!(pg.psql("SELECT count(*) FROM t").unwrap(), "200");
    assert!(
        std::fs::read_to_string(pg.dir().join("server.log"))
            .unwrap()
            .contains("not properly shut down"),
        "the start after a kill is a crash recovery\n{}",
        pg.log_tail()
    );
    assert_eq!(pg.psql_url(&dsn, "SELECT count(*) FROM t").unwrap(), "200");
}

#[test]
fn tls_and_a_password_when_asked() {
    let dir = fjord_e2e::test_dir();
    let ca = Ca::new("fjord test CA");
    let leaf = ca.server();
    let ca_file = ca.write(&dir.path().join("ca.pem"));
    let pg = start(
        Postgres::builder()
            .fsync(false)
            .password("s3cret")
            .tls(&leaf.cert_pem, &leaf.key_pem),
    );
    assert_eq!(
        pg.dsn(),
        format!("postgres://postgres:s3cret@127.0.0.1:{}/fjord", pg.port())
    );
    let verified = format!(
        "{}?sslmode=verify-full&sslrootcert={}",
        pg.dsn(),
        ca_file.display()
    );
    assert_eq!(
        pg.psql_url(
            &verified,
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
        )
        .unwrap(),
        "t"
    );
    // Plain connections are still served, for clients that do not ask for TLS.
    let plain = format!("{}?sslmode=disable", pg.dsn());
    assert_eq!(pg.psql_url(&plain, "SELECT 1").unwrap(), "1");
    let wrong = pg.dsn().replace("s3cret", "wrong");
    let err = pg.psql_url(&wrong, "SELECT 1").unwrap_err();
    assert!(err.contains("password authentication failed"), "{err}");
    // The harness's own psql goes through the socket, without the password.
    assert_eq!(pg.psql("SELECT 1").unwrap(), "1");
}

#[test]
fn not_installed_is_an_error_that_says_how_to_install_it() {
    let dir = fjord_e2e::test_dir();
    let err = match Postgres::builder().bin_dir(dir.path()).start() {
        Ok(_) => panic!("started without binaries"),
        Err(e) => e,
    };
    assert!(err.contains("apt-get install postgresql"), "{err}");
}
