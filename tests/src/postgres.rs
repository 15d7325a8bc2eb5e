//! A real PostgreSQL server for tests, from Debian's `postgresql` package: a cluster made
//! with `initdb` in a temp dir of its own, listening on 127.0.0.1 at a free port (and on a
//! Unix socket in the same dir, which the harness's own `psql` uses), stopped and removed
//! when dropped.
//!
//! Invariants:
//! - Nothing outside the temp dir is read or written: no system cluster, no
//!   `/var/run/postgresql`, no `pg_ctlcluster`; every server setting is on the command line.
//! - `initdb` and `postgres` refuse to run as root. When the tests run as root (CI does),
//!   both run as the `postgres` user that Debian's package creates, through `setpriv`, in a
//!   temp dir under `/tmp` owned by that user (mode 0700). Otherwise they run as the current
//!   user. The superuser is named `postgres` either way (`initdb -U postgres`).
//! - The postmaster is this process's direct child (`setpriv` execs, it does not fork), so
//!   signals reach it as PostgreSQL documents them: SIGINT is a fast shutdown.
//! - Commits are durable by default (`fsync = on`, PostgreSQL's default), so a benchmark
//!   measures what production pays. [`PostgresBuilder::fsync`]`(false)` is for tests that
//!   kill processes but never the machine: `synchronous_commit` stays on, so each commit's
//!   WAL has been written to the kernel before it is acknowledged, and a killed server (or
//!   [`Postgres::kill`]) keeps every committed transaction; only an OS crash could lose it.
//! - Not installed is an error that says how to install it, never a silent skip.

use std::ffi::CString;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::free_port;

/// Where Debian's `postgresql-<version>` packages put the server binaries.
const DEBIAN_ROOT: &str = "/usr/lib/postgresql";
/// The user Debian's package creates, which the server runs as when the tests run as root.
const SERVER_USER: &str = "postgres";
/// The database [`Postgres::dsn`] names.
const DEFAULT_DATABASE: &str = "fjord";
/// How long a start (including crash recovery) may take before it is an error.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a fast shutdown may take before the server is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(60);
/// Starts retried on another port when the chosen one was taken in the meantime.
const PORT_ATTEMPTS: usize = 3;
/// Lines of the server log quoted in an error.
const LOG_TAIL_LINES: usize = 30;
/// How often a wait polls.
const POLL: Duration = Duration::from_millis(50);

/// How a [`Postgres`] is started; [`Postgres::builder`] gives the defaults.
pub struct PostgresBuilder {
    fsync: bool,
    password: Option<String>,
    tls: Option<(String, String)>,
    settings: Vec<(String, String)>,
    bin_dir: Option<PathBuf>,
}

impl PostgresBuilder {
    /// `fsync = off` with `false`: faster commits, safe for every test that does not crash
    /// the OS (see the module doc). Default: on.
    pub fn fsync(mut self, on: bool) -> Self {
        self.fsync = on;
        self
    }

    /// Requires this password over TCP (scram-sha-256) for the `postgres` user, and puts it
    /// in [`Postgres::dsn`] as it is (so use characters that need no URL-encoding). Default:
    /// no password (trust), as the server only listens on 127.0.0.1 and its own socket.
    pub fn password(mut self, password: &str) -> Self {
        self.password = Some(password.to_owned());
        self
    }

    /// Serves TLS with this certificate and key (PEM) alongside plain connections, so a
    /// client can ask for `sslmode=require` or `verify-full`.
    pub fn tls(mut self, cert_pem: &str, key_pem: &str) -> Self {
        self.tls = Some((cert_pem.to_owned(), key_pem.to_owned()));
        self
    }

    /// Any other server setting, passed as `-c name=value`.
    pub fn setting(mut self, name: &str, value: &str) -> Self {
        self.settings.push((name.to_owned(), value.to_owned()));
        self
    }

    /// The directory holding `initdb`, `postgres`, `pg_isready` and `psql`. Default:
    /// `FJORD_E2E_PG_BIN`, else the highest version under `/usr/lib/postgresql`.
    pub fn bin_dir(mut self, dir: &Path) -> Self {
        self.bin_dir = Some(dir.to_owned());
        self
    }

    /// Makes the cluster, starts the server, waits until it accepts connections and
    /// creates the database `fjord`.
    pub fn start(self) -> Result<Postgres, String> {
        let bin = match self.bin_dir {
            Some(d) => d,
            None => find_bin_dir()?,
        };
        for tool in ["initdb", "postgres", "pg_isready", "psql"] {
            if !bin.join(tool).is_file() {
                return Err(not_installed(&format!(
                    "{} is missing",
                    bin.join(tool).display()
                )));
            }
        }
        // SAFETY: geteuid(2) has no preconditions and cannot fail.
        let owner = if unsafe { libc::geteuid() } == 0 {
            Some(lookup_user(SERVER_USER).ok_or_else(|| {
                format!(
                    "the tests run as root and PostgreSQL refuses to, but there is no user \
                     `{SERVER_USER}` to run it as: install Debian's package \
                     (`apt-get install postgresql`), which creates it"
                )
            })?)
        } else {
            None
        };
        let dir = temp_dir(owner)?;
        let mut settings = vec![
            ("listen_addresses".to_owned(), "127.0.0.1".to_owned()),
            (
                "unix_socket_directories".to_owned(),
                dir.path().join("sock").display().to_string(),
            ),
            (
                "fsync".to_owned(),
                if self.fsync { "on" } else { "off" }.to_owned(),
            ),
        ];
        let mut pg = Postgres {
            bin,
            owner,
            port: 0,
            password: self.password,
            settings: Vec::new(),
            child: None,
            dir,
        };
        pg.make_dir("sock")?;
        pg.initdb()?;
        if let Some((cert, key)) = &self.tls {
            let cert_path = pg.write_private("server.crt", cert)?;
            let key_path = pg.write_private("server.key", key)?;
            settings.push(("ssl".to_owned(), "on".to_owned()));
            settings.push(("ssl_cert_file".to_owned(), cert_path.display().to_string()));
            settings.push(("ssl_key_file".to_owned(), key_path.display().to_string()));
        }
        settings.extend(self.settings);
        pg.settings = settings;
        let mut last = String::new();
        for _ in 0..PORT_ATTEMPTS {
            pg.port = free_port();
            match pg.launch() {
                Ok(()) => {
                    pg.psql_in("postgres", &format!("CREATE DATABASE {DEFAULT_DATABASE}"))?;
                    return Ok(pg);
                }
                Err(Launch::PortTaken(e)) => last = e,
                Err(Launch::Failed(e)) => return Err(e),
            }
        }
        Err(last)
    }
}

/// A running PostgreSQL server of one test; see the module doc.
pub struct Postgres {
    /// `initdb`, `postgres`, `pg_isready`, `psql`.
    bin: PathBuf,
    /// The user the server runs as, when that is not the current one (root).
    owner: Option<Owner>,
    port: u16,
    password: Option<String>,
    /// `-c name=value` pairs of every start.
    settings: Vec<(String, String)>,
    /// The postmaster while it runs; `None` after `stop` or `kill`.
    child: Option<Child>,
    /// `data/` (the cluster), `sock/`, `server.log`; dropped last, after the server stops.
    dir: tempfile::TempDir,
}

/// Why a start failed: a port another process took between [`free_port`] and the bind is
/// worth another try, anything else is not.
enum Launch {
    PortTaken(String),
    Failed(String),
}

#[derive(Clone, Copy)]
struct Owner {
    uid: u32,
    gid: u32,
}

impl Postgres {
    /// The defaults: durable commits, no password, no TLS.
    pub fn builder() -> PostgresBuilder {
        PostgresBuilder {
            fsync: true,
            password: None,
            tls: None,
            settings: Vec::new(),
            bin_dir: None,
        }
    }

    /// A server with the defaults of [`Postgres::builder`].
    pub fn start() -> Result<Postgres, String> {
        Self::builder().start()
    }

    /// `postgres://postgres[:password]@127.0.0.1:PORT/fjord`.
    pub fn dsn(&self) -> String {
        self.dsn_for(DEFAULT_DATABASE)
    }

    /// The DSN of another database of this server (see [`Postgres::create_database`]).
    pub fn dsn_for(&self, database: &str) -> String {
        let auth = match &self.password {
            Some(p) => format!("{SERVER_USER}:{p}"),
            None => SERVER_USER.to_owned(),
        };
        format!("postgres://{auth}@127.0.0.1:{}/{database}", self.port)
    }

    /// The TCP port on 127.0.0.1; the same across [`Postgres::restart`].
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The temp dir: `data/`, `sock/` and `server.log`.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Creates another database (lowercase letters, digits and `_`), so that tests can share
    /// one server without sharing tables; returns its DSN.
    pub fn create_database(&self, name: &str) -> Result<String, String> {
        let plain = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !plain {
            return Err(format!(
                "database name {name:?}: use lowercase letters, digits and _"
            ));
        }
        self.psql_in("postgres", &format!("CREATE DATABASE {name}"))?;
        Ok(self.dsn_for(name))
    }

    /// Runs `sql` in the database `fjord` as the superuser, over the server's Unix socket
    /// (so it works with a password set), and returns psql's unaligned, tuples-only output
    /// without the final newline: `SELECT 1` gives `1`, rows are lines, columns split by `|`.
    pub fn psql(&self, sql: &str) -> Result<String, String> {
        self.psql_in(DEFAULT_DATABASE, sql)
    }

    /// [`Postgres::psql`] in another database.
    pub fn psql_in(&self, database: &str, sql: &str) -> Result<String, String> {
        let socket = self.dir.path().join("sock");
        let mut cmd = self.tool("psql");
        cmd.arg("-h")
            .arg(&socket)
            .arg("-p")
            .arg(self.port.to_string())
            .args(["-U", SERVER_USER, "-d", database]);
        run_psql(cmd, sql)
    }

    /// Runs `sql` through psql connected to `url` (a libpq URI, e.g. [`Postgres::dsn`] with
    /// `?sslmode=verify-full&sslrootcert=…`) over TCP, as a client of the server would.
    pub fn psql_url(&self, url: &str, sql: &str) -> Result<String, String> {
        let mut cmd = self.tool("psql");
        cmd.arg("-d").arg(url).arg("-w");
        run_psql(cmd, sql)
    }

    /// The postmaster's pid while it runs.
    pub fn pid(&self) -> Option<i32> {
        self.child.as_ref().map(|c| c.id() as i32)
    }

    /// CPU seconds (user + system) the server has used since it was last started: the
    /// postmaster, its live children (backends, walwriter, checkpointer …) and the children
    /// it has reaped (backends of closed connections). `None` when it is not running. A
    /// child exiting between the two reads of `/proc` may be missed; the difference of two
    /// samples around a run of seconds is what a benchmark reads.
    pub fn cpu_seconds(&self) -> Option<f64> {
        let pid = self.pid()?;
        let postmaster = crate::proc_cpu_seconds(pid)?;
        let children: f64 = children_of(pid)
            .into_iter()
            .filter_map(crate::proc_cpu_seconds)
            .map(|c| c.own + c.reaped_children)
            .sum();
        Some(postmaster.own + postmaster.reaped_children + children)
    }

    /// Whether the postmaster is still running (it may have been killed from outside).
    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Fast shutdown (SIGINT: clients disconnected, open transactions rolled back, a
    /// checkpoint) and waits until the postmaster has exited and the port is free. Kills it
    /// when it takes longer than a minute, and says so.
    pub fn stop(&mut self) -> Result<(), String> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        signal(&child, libc::SIGINT);
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            match child.try_wait() {
                Ok(Some(status)) if status.success() => return Ok(()),
                Ok(Some(status)) => {
                    return Err(format!(
                        "PostgreSQL exited with {status} on fast shutdown\n{}",
                        self.log_tail()
                    ))
                }
                Ok(None) if Instant::now() < deadline => std::thread::sleep(POLL),
                Ok(None) | Err(_) => {
                    self.child = Some(child);
                    self.kill();
                    return Err(format!(
                        "PostgreSQL did not stop within {STOP_TIMEOUT:?} of SIGINT and was \
                         killed\n{}",
                        self.log_tail()
                    ));
                }
            }
        }
    }

    /// Kills the server as a power cut would: every process of it at once with SIGKILL, no
    /// shutdown checkpoint. [`Postgres::restart`] then runs crash recovery from the WAL.
    pub fn kill(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = child.id() as i32;
        // Stopped, the postmaster can start no backend while its children are listed.
        signal(&child, libc::SIGSTOP);
        let children = children_of(pid);
        for &c in &children {
            // SAFETY: kill(2) on a process of this server; at worst it has already exited.
            unsafe { libc::kill(c, libc::SIGKILL) };
        }
        let _ = child.kill();
        let _ = child.wait();
        // The next postmaster refuses to start while any of them still holds the old shared
        // memory; a zombie holds none.
        let deadline = Instant::now() + STOP_TIMEOUT;
        while children.iter().any(|&c| alive(c)) && Instant::now() < deadline {
            std::thread::sleep(POLL);
        }
    }

    /// Starts the server again on the same port and data directory, after a fast shutdown
    /// when it is running. After [`Postgres::kill`] this is a crash recovery.
    pub fn restart(&mut self) -> Result<(), String> {
        self.stop()?;
        match self.launch() {
            Ok(()) => Ok(()),
            Err(Launch::PortTaken(e) | Launch::Failed(e)) => Err(e),
        }
    }

    /// A read-only standby of this server: a base backup (`pg_basebackup -R`, which writes
    /// `standby.signal` and the connection to this primary) in a temp dir of its own,
    /// started in recovery on a free port. What a client pointed at a replica instead of the
    /// primary finds.
    pub fn standby(&self) -> Result<Postgres, String> {
        let dir = temp_dir(self.owner)?;
        let mut standby = Postgres {
            bin: self.bin.clone(),
            owner: self.owner,
            port: free_port(),
            password: self.password.clone(),
            settings: Vec::new(),
            child: None,
            dir,
        };
        standby.make_dir("sock")?;
        let mut backup = standby.as_server_user("pg_basebackup");
        backup
            .arg("-D")
            .arg(standby.dir.path().join("data"))
            .arg("-h")
            .arg(self.dir.path().join("sock"))
            .arg("-p")
            .arg(self.port.to_string())
            // A fast checkpoint: the default spreads it over minutes.
            .args([
                "-U",
                SERVER_USER,
                "-R",
                "--no-sync",
                "--checkpoint=fast",
                "-w",
            ]);
        let out = backup
            .output()
            .map_err(|e| format!("run pg_basebackup: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "pg_basebackup failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        standby.settings = self
            .settings
            .iter()
            .map(|(k, v)| {
                let v = if k == "unix_socket_directories" {
                    standby.dir.path().join("sock").display().to_string()
                } else {
                    v.clone()
                };
                (k.clone(), v)
            })
            .collect();
        match standby.launch() {
            Ok(()) => Ok(standby),
            Err(Launch::PortTaken(e) | Launch::Failed(e)) => Err(e),
        }
    }

    /// The last lines of the server's log, for an assertion message.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let from = lines.len().saturating_sub(LOG_TAIL_LINES);
        format!(
            "--- server.log (last lines) ---\n{}",
            lines[from..].join("\n")
        )
    }

    /// `initdb` into `data/`: UTF-8, C locale, superuser `postgres`; trust over the socket,
    /// and over TCP too unless a password is set.
    fn initdb(&self) -> Result<(), String> {
        let mut cmd = self.as_server_user("initdb");
        cmd.arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-U", SERVER_USER, "-E", "UTF8", "--locale=C", "--no-sync"])
            .arg("--auth-local=trust");
        match &self.password {
            Some(p) => {
                let file = self.write_private("pwfile", p)?;
                cmd.arg("--auth-host=scram-sha-256")
                    .arg(format!("--pwfile={}", file.display()));
            }
            None => {
                cmd.arg("--auth-host=trust");
            }
        }
        let out = cmd
            .output()
            .map_err(|e| format!("run {}: {e}", self.bin.join("initdb").display()))?;
        if !out.status.success() {
            return Err(format!(
                "initdb failed ({}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(())
    }

    /// Starts the postmaster on `self.port` and waits until it accepts connections.
    fn launch(&mut self) -> Result<(), Launch> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("server.log"))
            .map_err(|e| Launch::Failed(format!("open server.log: {e}")))?;
        let mut cmd = self.as_server_user("postgres");
        cmd.arg("-D")
            .arg(self.dir.path().join("data"))
            .arg("-p")
            .arg(self.port.to_string());
        for (name, value) in &self.settings {
            cmd.arg("-c").arg(format!("{name}={value}"));
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| Launch::Failed(format!("start postgres: {e}")))?;
        self.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                self.child = None;
                let tail = self.log_tail();
                let msg = format!("PostgreSQL exited at start with {status}\n{tail}");
                return Err(if tail.contains("could not bind") {
                    Launch::PortTaken(msg)
                } else {
                    Launch::Failed(msg)
                });
            }
            if self.accepts_connections() {
                return Ok(());
            }
            if Instant::now() > deadline {
                self.kill();
                return Err(Launch::Failed(format!(
                    "PostgreSQL did not accept connections on 127.0.0.1:{} within \
                     {START_TIMEOUT:?}\n{}",
                    self.port,
                    self.log_tail()
                )));
            }
            std::thread::sleep(POLL);
        }
    }

    /// `pg_isready` over TCP: 0 only once the server accepts connections (not while it
    /// starts or recovers).
    fn accepts_connections(&self) -> bool {
        self.tool("pg_isready")
            .args(["-q", "-h", "127.0.0.1", "-t", "1", "-p"])
            .arg(self.port.to_string())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// A tool of the bin dir, run as the current user in the temp dir, with no `PG*`
    /// variable of the environment changing where or how it connects.
    fn tool(&self, name: &str) -> Command {
        let mut cmd = Command::new(self.bin.join(name));
        self.prepare(&mut cmd);
        cmd
    }

    /// `initdb` or `postgres`, run as the server's user.
    fn as_server_user(&self, name: &str) -> Command {
        let mut cmd = match self.owner {
            None => Command::new(self.bin.join(name)),
            Some(o) => {
                let mut c = Command::new("setpriv");
                c.arg(format!("--reuid={}", o.uid))
                    .arg(format!("--regid={}", o.gid))
                    .args(["--clear-groups", "--"])
                    .arg(self.bin.join(name));
                c
            }
        };
        self.prepare(&mut cmd);
        cmd
    }

    fn prepare(&self, cmd: &mut Command) {
        cmd.current_dir(self.dir.path());
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("PG") {
                cmd.env_remove(k);
            }
        }
    }

    /// Creates `dir/<name>` for the server's user.
    fn make_dir(&self, name: &str) -> Result<PathBuf, String> {
        let p = self.dir.path().join(name);
        std::fs::create_dir(&p).map_err(|e| format!("create {}: {e}", p.display()))?;
        self.give(&p, 0o700)?;
        Ok(p)
    }

    /// Writes `dir/<name>` readable by the server's user only (a key file must be).
    fn write_private(&self, name: &str, text: &str) -> Result<PathBuf, String> {
        let p = self.dir.path().join(name);
        File::create(&p)
            .and_then(|mut f| f.write_all(text.as_bytes()))
            .map_err(|e| format!("write {}: {e}", p.display()))?;
        self.give(&p, 0o600)?;
        Ok(p)
    }

    /// Sets `mode` on `path` and hands it to the server's user when that is another one.
    fn give(&self, path: &Path, mode: u32) -> Result<(), String> {
        give(path, mode, self.owner)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if self.stop().is_err() {
            self.kill();
        }
    }
}

fn not_installed(what: &str) -> String {
    format!(
        "PostgreSQL is not installed ({what}): the PostgreSQL tests need Debian's server \
         binaries. Install them with `apt-get install postgresql` (.ci/run does), or set \
         FJORD_E2E_PG_BIN to a directory holding initdb, postgres, pg_isready and psql"
    )
}

/// `FJORD_E2E_PG_BIN`, else `/usr/lib/postgresql/<highest version>/bin` (not
/// `/usr/local/bin`, where a wrapper may stand in for `initdb`).
fn find_bin_dir() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("FJORD_E2E_PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let entries = std::fs::read_dir(DEBIAN_ROOT)
        .map_err(|e| not_installed(&format!("{DEBIAN_ROOT}: {e}")))?;
    let mut versions: Vec<(Vec<u32>, PathBuf)> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let version: Vec<u32> = name
                .split('.')
                .map(|p| p.parse().ok())
                .collect::<Option<_>>()?;
            let bin = e.path().join("bin");
            bin.join("postgres").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, bin)| bin)
        .ok_or_else(|| not_installed(&format!("no {DEBIAN_ROOT}/<version>/bin/postgres")))
}

/// The temp dir of one server; under `/tmp` and owned by the server's user when that is
/// another one, so it can reach it whatever TMPDIR says. `FJORD_E2E_KEEP=1` keeps it.
fn temp_dir(owner: Option<Owner>) -> Result<tempfile::TempDir, String> {
    let keep = std::env::var_os("FJORD_E2E_KEEP").is_some();
    let parent = match owner {
        Some(_) => PathBuf::from("/tmp"),
        None => std::env::temp_dir(),
    };
    let dir = tempfile::Builder::new()
        .prefix("fjord-pg-")
        .disable_cleanup(keep)
        .tempdir_in(&parent)
        .map_err(|e| format!("temp dir in {}: {e}", parent.display()))?;
    if keep {
        eprintln!("PostgreSQL dir kept: {}", dir.path().display());
    }
    give(dir.path(), 0o700, owner)?;
    Ok(dir)
}

fn give(path: &Path, mode: u32, owner: Option<Owner>) -> Result<(), String> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| format!("chmod {}: {e}", path.display()))?;
    if let Some(o) = owner {
        std::os::unix::fs::chown(path, Some(o.uid), Some(o.gid))
            .map_err(|e| format!("chown {} to {SERVER_USER}: {e}", path.display()))?;
    }
    Ok(())
}

/// The uid and gid of a user, from the system's user database.
fn lookup_user(name: &str) -> Option<Owner> {
    let cname = CString::new(name).ok()?;
    // SAFETY: an all-zero passwd is a valid value (null pointers, zero ids); getpwnam_r only
    // writes through the pointers given, into `pwd` and `buf`, which outlive the call.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: see above; `found` is null or points at `pwd`.
    let rc = unsafe {
        libc::getpwnam_r(
            cname.as_ptr(),
            &mut pwd,
            buf.as_mut_ptr(),
            buf.len(),
            &mut found,
        )
    };
    (rc == 0 && !found.is_null()).then_some(Owner {
        uid: pwd.pw_uid,
        gid: pwd.pw_gid,
    })
}

fn run_psql(mut cmd: Command, sql: &str) -> Result<String, String> {
    let out = cmd
        .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .map_err(|e| format!("run psql: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "psql {sql:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text.strip_suffix('\n').unwrap_or(&text).to_owned())
}

fn signal(child: &Child, sig: i32) {
    // SAFETY: kill(2) on our own child's pid, which we have not reaped yet.
    unsafe { libc::kill(child.id() as i32, sig) };
}

/// The pids whose parent is `pid`, from `/proc`.
fn children_of(pid: i32) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&p| proc_stat(p).is_some_and(|(_, ppid)| ppid == pid))
        .collect()
}

/// Whether `pid` exists and is not a zombie.
fn alive(pid: i32) -> bool {
    proc_stat(pid).is_some_and(|(state, _)| state != 'Z')
}

/// (state, parent pid) of a process, from `/proc/<pid>/stat`.
fn proc_stat(pid: i32) -> Option<(char, i32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

/// Runs this test binary again on the tests `args` select (libtest's arguments), with
/// `FJORD_TEST_BACKEND=postgres`, which the aggregator's tests read to put their store on
/// PostgreSQL; fails with the run's output unless it passed. Returns its stdout, for the
/// caller to check that the tests it meant did run.
pub fn rerun_tests_on_postgres(args: &[&str]) -> String {
    let exe = std::env::current_exe().expect("the test binary's path");
    let out = Command::new(exe)
        .args(args)
        .env("FJORD_TEST_BACKEND", "postgres")
        .output()
        .expect("run the test binary again");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "on PostgreSQL:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}
