//! Harness for end-to-end tests and the benchmark: start the real `fjord-aggregator` and
//! `fjord-agent` binaries in per-test temp dirs on 127.0.0.1, wait for conditions (never fixed
//! sleeps), and read results back through the real CLI. [`postgres`] starts a real
//! PostgreSQL server the same way, for the tests of the PostgreSQL store.

pub mod certs;
pub mod clients;
pub mod gen;
pub mod postgres;
pub mod proxy;
pub mod round_robin;
pub mod tls;
pub mod writer;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Path of a workspace binary, next to the test executable's `deps/` directory.
/// `cargo test --workspace` builds them (the agent and aggregator packages have integration
/// tests, which makes cargo build their binaries first). `FJORD_E2E_BIN_DIR` points
/// elsewhere, e.g. at `target/release` to measure release binaries from a debug test.
pub fn bin(name: &str) -> PathBuf {
    let dir = match std::env::var_os("FJORD_E2E_BIN_DIR") {
        Some(d) => PathBuf::from(d),
        None => {
            let exe = std::env::current_exe().expect("current_exe");
            let mut dir = exe.parent().expect("exe dir").to_path_buf();
            if dir.ends_with("deps") {
                dir.pop();
            }
            dir
        }
    };
    let p = dir.join(name);
    assert!(
        p.exists(),
        "{} not found; run `cargo test --workspace` (or `cargo build --workspace`) first",
        p.display()
    );
    p
}

/// A temp dir for one test; with `FJORD_E2E_KEEP=1` it is kept (and named on stderr) so the
/// processes' logs can be read after a failure.
pub fn test_dir() -> tempfile::TempDir {
    let keep = std::env::var_os("FJORD_E2E_KEEP").is_some();
    let dir = tempfile::Builder::new()
        .prefix("fjord-e2e-")
        .disable_cleanup(keep)
        .tempdir()
        .expect("temp dir");
    if keep {
        eprintln!("test dir kept: {}", dir.path().display());
    }
    dir
}

/// A free TCP port on 127.0.0.1 (bound, read, released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Polls `cond` every 50 ms until it holds or `timeout` passes; panics with `what` then.
pub fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out after {timeout:?} waiting for {what}");
}

/// Percent-encodes a query-string value.
pub fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Minimal HTTP GET on loopback; returns (status, body).
pub fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    http_request(addr, "GET", path, &[], b"")
}

/// One HTTP/1.1 request on a connection of its own (`Connection: close`, `Content-Length`
/// set when there is a body), with extra `headers`; returns (status, body).
pub fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(&request_head(addr, method, path, headers, body.len()))?;
    s.write_all(body)?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    Ok(parse_response(&buf))
}

/// The head of an HTTP/1.1 request with `Connection: close` (and `Content-Length` when there
/// is a body).
pub fn request_head(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body_len: usize,
) -> Vec<u8> {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if body_len > 0 {
        head.push_str(&format!("Content-Length: {body_len}\r\n"));
    }
    head.push_str("\r\n");
    head.into_bytes()
}

/// (status, body) of a whole HTTP/1.1 response; status 0 when there is none.
pub fn parse_response(buf: &[u8]) -> (u16, String) {
    let text = String::from_utf8_lossy(buf).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// A running child process, killed when dropped.
pub struct Proc {
    pub child: Child,
    pub name: &'static str,
}

impl Proc {
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Sends SIGTERM and waits for exit; returns the exit status code.
    pub fn terminate(mut self) -> Option<i32> {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.pid(), libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                return st.code();
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL and reap.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running aggregator.
pub struct Aggregator {
    pub proc: Proc,
    pub addr: SocketAddr,
    pub data: PathBuf,
    /// Set when it serves https: how the harness's requests and CLI runs trust it.
    pub tls: Option<tls::ClientTls>,
}

impl Aggregator {
    /// Starts `fjord-aggregator serve` on a free port with data in `dir/data`, declaring EEA.
    pub fn start(dir: &Path) -> Aggregator {
        Self::start_on(
            dir,
            free_port(),
            &["--region", "eu-north-1", "--jurisdiction", "EEA"],
        )
    }

    pub fn start_on(dir: &Path, port: u16, extra: &[&str]) -> Aggregator {
        Self::start_inner(dir, port, extra, None)
    }

    /// Starts `fjord-aggregator serve` over TLS on a free port, declaring EEA; `extra` holds
    /// the `--tls-*` flags, and `client` how the harness trusts the server. Ready when the
    /// port answers `/v1/info` over TLS.
    pub fn start_tls(dir: &Path, extra: &[&str], client: tls::ClientTls) -> Aggregator {
        let mut args = vec!["--region", "eu-north-1", "--jurisdiction", "EEA"];
        args.extend_from_slice(extra);
        Self::start_inner(dir, free_port(), &args, Some(client))
    }

    fn start_inner(
        dir: &Path,
        port: u16,
        extra: &[&str],
        tls: Option<tls::ClientTls>,
    ) -> Aggregator {
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        let data = dir.join("data");
        let log = std::fs::File::create(dir.join("aggregator.log")).expect("log file");
        let child = Command::new(bin("fjord-aggregator"))
            .arg("serve")
            .arg("--listen")
            .arg(addr.to_string())
            .arg("--data")
            .arg(&data)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn fjord-aggregator");
        let agg = Aggregator {
            proc: Proc {
                child,
                name: "fjord-aggregator",
            },
            addr,
            data,
            tls,
        };
        wait_for("aggregator /v1/info", Duration::from_secs(30), || {
            matches!(agg.get("/v1/info"), Ok((200, _)))
        });
        agg
    }

    /// `GET path` over http, or over https when the server speaks TLS.
    pub fn get(&self, path: &str) -> std::io::Result<(u16, String)> {
        match &self.tls {
            None => http_get(self.addr, path),
            Some(t) => tls::https_get(self.addr, t.config(&[]), path).map(|a| (a.status, a.body)),
        }
    }

    /// Starts `fjord-aggregator serve --config` with `config` (TOML) written to
    /// `dir/aggregator.toml`, on a free port, declaring EEA.
    pub fn start_with_config(dir: &Path, config: &str) -> Aggregator {
        let path = dir.join("aggregator.toml");
        std::fs::write(&path, config).expect("write aggregator config");
        let path = path.display().to_string();
        Self::start_on(
            dir,
            free_port(),
            &[
                "--config",
                &path,
                "--region",
                "eu-north-1",
                "--jurisdiction",
                "EEA",
            ],
        )
    }

    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// Runs `fjord-aggregator query … --forward --output jsonl` and returns the parsed rows:
    /// the oldest `limit` lines, oldest first.
    pub fn query_jsonl(&self, logql: &str, limit: usize) -> Vec<serde_json::Value> {
        let out = self.cli(&[
            "query",
            logql,
            "--since",
            "24h",
            "--limit",
            &limit.to_string(),
            "--forward",
            "--output",
            "jsonl",
        ]);
        assert!(
            out.status.success(),
            "query failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).expect("jsonl row"))
            .collect()
    }

    /// The sequence numbers (see [`writer::seq_of`]) of every stored line of the team.
    pub fn stored_seqs(&self) -> Vec<u64> {
        self.query_jsonl(r#"{team="payments"}"#, 100_000)
            .iter()
            .filter_map(|r| r["line"].as_str().and_then(writer::seq_of))
            .collect()
    }

    /// Waits (up to `within`) until `expected.len()` records are stored, a little longer so
    /// that a late duplicate would have arrived, then checks that the stored sequence
    /// numbers are exactly `expected`, each once.
    pub fn expect_exactly_once(
        &self,
        expected: &std::collections::BTreeSet<u64>,
        within: Duration,
    ) {
        let start = Instant::now();
        while self.stored_records() < expected.len() as u64 && start.elapsed() < within {
            std::thread::sleep(Duration::from_millis(100));
        }
        std::thread::sleep(Duration::from_millis(800));
        writer::assert_exactly_once(&self.stored_seqs(), expected);
    }

    /// Runs a CLI subcommand against this server.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(bin("fjord-aggregator"))
            .args(args)
            .arg("--url")
            .arg(self.url())
            .args(self.tls.iter().flat_map(|t| t.cli_args()))
            .output()
            .expect("run fjord-aggregator cli")
    }

    /// `fjord-aggregator audit agents` over this server's data directory (read-only, next to
    /// the running server): the agents' ledgers it holds, as JSON (null if it fails).
    pub fn audit_agents(&self) -> serde_json::Value {
        let out = Command::new(bin("fjord-aggregator"))
            .args(["audit", "agents", "--output", "json", "--data"])
            .arg(&self.data)
            .output()
            .expect("run fjord-aggregator audit agents");
        serde_json::from_slice(&out.stdout).unwrap_or_default()
    }

    /// Total records stored, from `/fjord/v1/stats`.
    pub fn stored_records(&self) -> u64 {
        let Ok((200, body)) = self.get("/fjord/v1/stats") else {
            return 0;
        };
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        v["data"]
            .as_array()
            .map(|a| a.iter().filter_map(|t| t["records"].as_u64()).sum())
            .unwrap_or(0)
    }
}

/// Starts `fjord-agent run --config <config>`, logging to `dir/agent-<n>.log`.
pub fn start_agent(dir: &Path, config: &Path) -> Proc {
    let n = std::fs::read_dir(dir).map(|r| r.count()).unwrap_or(0);
    let log = std::fs::File::create(dir.join(format!("agent-{n}.log"))).expect("log file");
    let child = Command::new(bin("fjord-agent"))
        .arg("run")
        .arg("--config")
        .arg(config)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn fjord-agent");
    Proc {
        child,
        name: "fjord-agent",
    }
}

/// Writes an agent config following `logs/*.log` under `dir`, shipping to `url`, with its
/// admin endpoint on a free port (see [`admin_addr`]). Keys in `extra` override the
/// defaults written here (`paths`, `linger`, `poll_interval`, `admin_listen`); the
/// word `LOGS` in `extra` stands for the `dir/logs` directory.
pub fn agent_config(dir: &Path, url: &str, extra: &str) -> PathBuf {
    let logs = dir.join("logs").display().to_string();
    let extra = &extra.replace("LOGS", &logs);
    let p = dir.join("agent.toml");
    let mut text = String::new();
    let defaults = [
        (
            "paths",
            format!("[\"{}/*.log\"]", dir.join("logs").display()),
        ),
        ("linger", "\"200ms\"".to_owned()),
        ("poll_interval", "\"50ms\"".to_owned()),
        ("admin_listen", format!("\"127.0.0.1:{}\"", free_port())),
    ];
    for (k, v) in defaults {
        if !extra
            .lines()
            .any(|l| l.trim_start().starts_with(&format!("{k} ")))
        {
            text.push_str(&format!("{k} = {v}\n"));
        }
    }
    text.push_str(&format!(
        "url = \"{url}\"\nstate_dir = \"{state}\"\nagent_id = \"test-agent\"\n{extra}\n[labels]\nteam = \"payments\"\n",
        state = dir.join("state").display(),
    ));
    std::fs::create_dir_all(dir.join("logs")).expect("logs dir");
    std::fs::write(&p, text).expect("write agent config");
    p
}

/// The admin address (`/metrics`, `/healthz`, `/readyz`) written into an agent config.
pub fn admin_addr(config: &Path) -> SocketAddr {
    let text = std::fs::read_to_string(config).expect("read agent config");
    text.lines()
        .find_map(|l| l.trim().strip_prefix("admin_listen = "))
        .and_then(|v| v.trim_matches('"').parse().ok())
        .expect("admin_listen in agent config")
}

/// Reads the agent's `/metrics` and returns the value of one sample (exact name and labels).
pub fn agent_metric(config: &Path, sample: &str) -> Option<f64> {
    let (_, body) = http_get(admin_addr(config), "/metrics").ok()?;
    body.lines().find_map(|l| {
        l.strip_prefix(sample)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// Reads the agent's `/metrics` and returns the sum of every sample of the family `name`
/// (all label sets), or `None` when it has no sample.
pub fn agent_metric_sum(config: &Path, name: &str) -> Option<f64> {
    let (_, body) = http_get(admin_addr(config), "/metrics").ok()?;
    let values: Vec<f64> = body
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(name)?;
            let value = match rest.strip_prefix('{') {
                Some(labelled) => labelled.rsplit_once("} ")?.1,
                None => rest.strip_prefix(' ')?,
            };
            value.trim().parse().ok()
        })
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

/// Whether a `logrotate` binary is on `PATH` (CI installs it; the rotation tests say so and
/// do nothing without it).
pub fn logrotate_available() -> bool {
    Command::new("logrotate").arg("--version").output().is_ok()
}

/// Runs `logrotate -f` once on `dir/logs/app.log` with `directives` (one per line), its
/// config and state files in `dir`; panics with logrotate's stderr when it fails.
pub fn logrotate(dir: &Path, directives: &str) {
    let conf = dir.join("logrotate.conf");
    let text = format!(
        "{}/logs/app.log {{\n  missingok\n  {directives}\n}}\n",
        dir.display()
    );
    std::fs::write(&conf, text).expect("write logrotate.conf");
    let out = Command::new("logrotate")
        .arg("-f")
        .arg("-s")
        .arg(dir.join("logrotate.state"))
        .arg(&conf)
        .output()
        .expect("run logrotate");
    assert!(
        out.status.success(),
        "logrotate failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Reads `/proc/<pid>/stat` utime+stime in seconds.
pub fn cpu_seconds(pid: i32) -> Option<f64> {
    proc_cpu_seconds(pid).map(|t| t.own)
}

/// CPU seconds (user + system) of one process, from `/proc/<pid>/stat`.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcCpu {
    /// The process's own (utime + stime).
    pub own: f64,
    /// Its children that have exited and been waited for (cutime + cstime).
    pub reaped_children: f64,
}

/// The CPU seconds of `pid` and of its reaped children.
pub fn proc_cpu_seconds(pid: i32) -> Option<ProcCpu> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| f.get(i)?.parse::<f64>().ok();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some(ProcCpu {
        own: (field(11)? + field(12)?) / hz,
        reaped_children: (field(13)? + field(14)?) / hz,
    })
}

/// Peak RSS (VmHWM) of a process in KiB.
pub fn peak_rss_kib(pid: i32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}
