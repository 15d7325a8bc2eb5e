//! The aggregator binary end to end: start-up checks, token helpers, and every client
//! subcommand against a real `serve` in a temp dir (this test also makes `cargo test` build
//! the binary that the end-to-end tests run).

use std::io::{Read, Seek, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_fjord-aggregator");
const ADMIN: &str = "admin-secret-1";
const INGEST: &str = "ingest-secret-1";
const READ: &str = "read-secret-1";

#[test]
fn bad_config_exits_64_with_file_line() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("agg.toml");
    std::fs::write(&cfg, "region = \"eu-north-1\"\nport = 3100\n").unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--config", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("agg.toml:2:1") && err.contains("unknown field"),
        "{err}"
    );
}

#[test]
fn open_server_on_a_public_address_is_refused() {
    let out = Command::new(BIN)
        .args(["serve", "--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a loopback address"), "{err}");
}

#[test]
fn query_against_nothing_says_what_to_do() {
    let out = Command::new(BIN)
        .args(["query", "{team=\"x\"}", "--url", "http://127.0.0.1:1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is it running"));
}

/// Runs the binary with `stdin` as its standard input, from a temp file.
fn run_stdin(args: &[&str], stdin: &str) -> Output {
    let mut input = tempfile::tempfile().unwrap();
    input.write_all(stdin.as_bytes()).unwrap();
    input.rewind().unwrap();
    Command::new(BIN)
        .args(args)
        .stdin(Stdio::from(input))
        .output()
        .unwrap()
}

fn hash(token: &str) -> String {
    let out = run_stdin(&["token", "hash"], &format!("{token}\n"));
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[test]
fn token_helpers() {
    // sha256("test")
    assert_eq!(
        hash("test"),
        "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
    );
    let out = run_stdin(&["token", "hash"], "");
    assert!(!out.status.success());
    let out = Command::new(BIN)
        .args([
            "token", "new", "--name", "pay", "--team", "payments", "--role", "read",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let token = text
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("fjd_"))
        .unwrap();
    assert_eq!(token.len(), 4 + 64);
    assert!(
        text.contains(&format!("sha256 = \"{}\"", hash(token))),
        "{text}"
    );
    assert!(text.contains("role = \"read\""));
}

struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn http(addr: SocketAddr, req: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(req.as_bytes()).unwrap();
    let mut buf = String::new();
    let _ = s.read_to_string(&mut buf);
    let status = buf
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = buf
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn start(dir: &Path) -> Server {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let cfg = dir.join("agg.toml");
    std::fs::write(
        &cfg,
        format!(
            "listen = \"{addr}\"\ndata_dir = \"{data}\"\njurisdiction = \"EEA\"\nregion = \"eu-north-1\"\n\
             [[token]]\nname = \"root\"\nsha256 = \"{a}\"\nrole = \"admin\"\n\
             [[token]]\nname = \"pay-in\"\nsha256 = \"{i}\"\nteam = \"payments\"\nrole = \"ingest\"\n\
             [[token]]\nname = \"pay-read\"\nsha256 = \"{r}\"\nteam = \"payments\"\nrole = \"read\"\n",
            data = dir.join("data").display(),
            a = hash(ADMIN),
            i = hash(INGEST),
            r = hash(READ),
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.join("server.log")).unwrap();
    let child = Command::new(BIN)
        .args(["serve", "--config", cfg.to_str().unwrap()])
        .stderr(log)
        .spawn()
        .unwrap();
    let server = Server { child, addr };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if TcpStream::connect(addr).is_ok()
            && http(
                addr,
                "GET /v1/info HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            )
            .0 == 200
        {
            return server;
        }
        assert!(Instant::now() < deadline, "server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn push(addr: SocketAddr, token: &str, lines: &[(i64, &str)], file: &str) {
    let values: Vec<[String; 2]> = lines
        .iter()
        .map(|(t, l)| [t.to_string(), (*l).to_owned()])
        .collect();
    let body =
        serde_json::json!({"streams":[{"stream":{"file":file,"pod":"pay-1"},"values":values}]})
            .to_string();
    let (status, resp) = http(
        addr,
        &format!(
            "POST /loki/api/v1/push HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    );
    assert_eq!(status, 204, "{resp}");
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

fn cli(server: &Server, token: Option<&str>, args: &[&str]) -> Output {
    let mut c = Command::new(BIN);
    c.args(args)
        .arg("--url")
        .arg(format!("http://{}", server.addr))
        .env_remove("FJORD_TOKEN")
        .env_remove("FJORD_URL");
    if let Some(t) = token {
        c.env("FJORD_TOKEN", t);
    }
    c.output().unwrap()
}

fn stdout(o: &Output) -> String {
    assert!(
        o.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn client_commands_against_a_real_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let t = now_ns();
    push(
        server.addr,
        INGEST,
        &[
            (t, "payment declined customer=4711"),
            (t + 1, "payment ok customer=12"),
            (t + 2, "refund customer=4711"),
        ],
        "/var/log/app.log",
    );
    push(
        server.addr,
        INGEST,
        &[(t + 3, "gc pause")],
        "/var/log/gc.log",
    );

    // Without a token the CLI says what to do.
    let out = cli(&server, None, &["query", "{team=\"payments\"}"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("the server needs a token: pass --token-file or set FJORD_TOKEN"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The ingest token may not read: 403 explained.
    let out = cli(&server, Some(INGEST), &["labels"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("not allowed"));

    // Text output is aligned: the line column starts at the same offset on every row.
    let text = stdout(&cli(
        &server,
        Some(READ),
        &["query", "{team=\"payments\"}", "--since", "1h", "--forward"],
    ));
    let rows: Vec<&str> = text.lines().collect();
    assert_eq!(rows.len(), 4, "{text}");
    let col = |r: &str, needle: &str| r.find(needle).unwrap();
    assert_eq!(
        col(rows[0], "payment declined"),
        col(rows[3], "gc pause"),
        "{text}"
    );

    // --token-file works as well as FJORD_TOKEN.
    let tf = dir.path().join("read.token");
    std::fs::write(&tf, format!("{READ}\n")).unwrap();
    let names = stdout(&cli(
        &server,
        None,
        &["labels", "--token-file", tf.to_str().unwrap()],
    ));
    assert_eq!(names, "file\npod\nteam\n");
    let files = stdout(&cli(&server, Some(READ), &["labels", "file"]));
    assert_eq!(files, "/var/log/app.log\n/var/log/gc.log\n");

    let stats = stdout(&cli(
        &server,
        Some(READ),
        &["stats", "--by", "team", "--by", "stream", "--by", "day"],
    ));
    assert!(
        stats.contains("TEAM") && stats.contains("payments"),
        "{stats}"
    );
    assert!(stats.contains("{file=\"/var/log/gc.log\""), "{stats}");
    assert!(stats.contains("DAY"), "{stats}");

    // Erasure through the admin endpoint; the read token may not.
    let args = [
        "erase",
        "{team=\"payments\"}",
        "--filter",
        "customer=4711",
        "--operator",
        "dpo",
    ];
    let out = cli(&server, Some(READ), &args);
    assert!(!out.status.success());
    let out = stdout(&cli(&server, Some(ADMIN), &args));
    assert!(out.contains("erased 2 lines"), "{out}");
    let after = stdout(&cli(
        &server,
        Some(READ),
        &[
            "query",
            "{team=\"payments\"} |= \"4711\"",
            "--since",
            "1h",
            "--output",
            "raw",
        ],
    ));
    assert_eq!(after, "");
    let all = stdout(&cli(
        &server,
        Some(READ),
        &[
            "query",
            "{team=\"payments\"}",
            "--since",
            "1h",
            "--output",
            "raw",
        ],
    ));
    // Newest first, as logcli prints by default.
    assert_eq!(all, "gc pause\npayment ok customer=12\n");

    // tail: prints the backfill and then new lines, stops after --max-lines.
    let mut tail = Command::new(BIN)
        .args([
            "tail",
            "{team=\"payments\"} |= \"tail\"",
            "--since",
            "1h",
            "--output",
            "raw",
            "--max-lines",
            "3",
            "--url",
            &format!("http://{}", server.addr),
        ])
        .env("FJORD_TOKEN", READ)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    push(
        server.addr,
        INGEST,
        &[(now_ns(), "tail 1")],
        "/var/log/app.log",
    );
    std::thread::sleep(Duration::from_millis(300));
    push(
        server.addr,
        INGEST,
        &[(now_ns(), "not shown")],
        "/var/log/app.log",
    );
    push(
        server.addr,
        INGEST,
        &[(now_ns(), "tail 2"), (now_ns() + 1, "tail 3")],
        "/var/log/app.log",
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while tail.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "tail did not finish");
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = tail.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "tail 1\ntail 2\ntail 3\n"
    );
}

#[test]
fn offline_retention_and_erase_on_the_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let t = now_ns();
    push(
        server.addr,
        INGEST,
        &[(t, "keep me"), (t + 1, "secret customer=1")],
        "/a.log",
    );
    let data = dir.path().join("data");
    // While the server runs: SQLite's locks coordinate the two processes.
    let out = Command::new(BIN)
        .args(["retention", "run", "--data", data.to_str().unwrap()])
        .output()
        .unwrap();
    let text = stdout(&out);
    assert!(
        text.contains("payments") && text.contains("30 d") && text.contains("pages"),
        "{text}"
    );
    let out = Command::new(BIN)
        .args([
            "erase",
            "{team=\"payments\"}",
            "--filter",
            "secret",
            "--data",
            data.to_str().unwrap(),
            "--operator",
            "alice",
        ])
        .output()
        .unwrap();
    assert!(stdout(&out).contains("erased 1 lines"));
    let all = stdout(&cli(
        &server,
        Some(ADMIN),
        &[
            "query",
            "{team=\"payments\"}",
            "--since",
            "1h",
            "--output",
            "raw",
        ],
    ));
    assert_eq!(all, "keep me\n");
    let (_, log) = http(
        server.addr,
        &format!("GET /fjord/v1/erasures HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {ADMIN}\r\n\r\n"),
    );
    assert!(log.contains("offline (alice)"), "{log}");
    // Bad retention config is a usage error.
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[retention]\ndefault_days = \"x\"\n").unwrap();
    let out = Command::new(BIN)
        .args(["retention", "run", "--config", bad.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
}

/// `audit scan` over a real store with one damaged chunk: the chunk is named, the readable
/// chunks are still scanned, and the exit code is 2 (unreadable outranks findings).
#[test]
fn audit_scan_exits_2_on_an_unreadable_chunk() {
    use fjord_aggregator::store::{IngestMeta, Store};
    use fjord_wire::{Entry, PushRequest, PushStream};

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let store = Store::open(&data).unwrap();
    let t = now_ns();
    for (i, batch) in ["b1", "b2"].iter().enumerate() {
        let line = format!("{batch} payment declined for user{i}@example.no");
        let req = PushRequest {
            streams: vec![PushStream {
                stream: [("file".to_owned(), "/a.log".to_owned())].into(),
                values: vec![Entry::new(t + i as i64, &line)],
            }],
        };
        let meta = IngestMeta {
            batch_id: Some((*batch).to_owned()),
            agent: Some("pod-1".into()),
            team: "payments".into(),
            rules_version: None,
            redactions: None,
            payload_sha256: format!("sha-{batch}"),
            received_ns: t,
        };
        store.ingest(&meta, &req).unwrap();
    }
    drop(store);
    let scan = |extra: &[&str]| {
        Command::new(BIN)
            .args(["audit", "scan", "--data", data.to_str().unwrap()])
            .args(extra)
            .output()
            .unwrap()
    };
    // Intact: both mail addresses are findings.
    let out = scan(&[]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout_lossy(&out));

    let db = rusqlite::Connection::open(data.join("fjord.db")).unwrap();
    let bad: i64 = db
        .query_row("SELECT MAX(id) FROM chunks", [], |r| r.get(0))
        .unwrap();
    db.execute("UPDATE chunks SET data = x'0102' WHERE id = ?1", [bad])
        .unwrap();
    drop(db);
    let out = scan(&[]);
    let text = stdout_lossy(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains(&format!(
            "INCOMPLETE: 1 chunks did not decode and were not scanned (see `audit verify`): chunk ids {bad}"
        )),
        "{text}"
    );
    assert!(text.contains("1 lines match"), "{text}");
    let out = scan(&["--output", "json"]);
    assert_eq!(out.status.code(), Some(2));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["corrupt_chunks"], serde_json::json!([bad]));
    assert_eq!(r["corrupt_chunk_count"], 1);
    assert_eq!(
        (&r["lines_scanned"], &r["lines_matching"]),
        (&1.into(), &1.into())
    );
}

fn stdout_lossy(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn check_config_validates_and_starts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let data = dir.path().join("data");
    let cfg = dir.path().join("agg.toml");
    let body = format!(
        "listen = \"127.0.0.1:{port}\"\ndata_dir = \"{}\"\njurisdiction = \"EEA\"\nregion = \"eu-north-1\"\n",
        data.display()
    );
    std::fs::write(&cfg, &body).unwrap();
    let cfg_s = cfg.to_str().unwrap();
    let check = |extra: &[&str]| {
        Command::new(BIN)
            .args(["check-config", "--config", cfg_s])
            .args(extra)
            .output()
            .unwrap()
    };

    // `output()` returns only once the process has exited: check-config never serves.
    let out = check(&[]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("config ok: {cfg_s}")
    );
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
    assert!(!data.exists(), "check-config opened the store");

    // The serve flags are validated too.
    let out = check(&["--listen", "0.0.0.0:0"]);
    assert_eq!(out.status.code(), Some(64));

    std::fs::write(&cfg, format!("{body}max_query_lines = \"lots\"\n")).unwrap();
    let out = check(&[]);
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("agg.toml:5:19"), "{err}");
    assert!(out.stdout.is_empty());
    assert!(!data.exists());

    // A bad value after parsing is reported at its line too.
    std::fs::write(
        &cfg,
        format!("{body}\n[listener]\n  idle_timeout = \"50ms\"\n"),
    )
    .unwrap();
    let out = check(&[]);
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("agg.toml:7:3: invalid listener.idle_timeout: 50ms is out of range"),
        "{err}"
    );

    // Integer durations still load, each with a deprecation warning naming its line.
    std::fs::write(
        &cfg,
        format!("{body}[listener]\nidle_timeout_ms = 30000\n[retention]\ndefault_days = 7\nteams = {{ payments = 90, audit = \"1d\" }}\n"),
    )
    .unwrap();
    let out = check(&[]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    for want in [
        "agg.toml:6:1: `listener.idle_timeout_ms` (an integer) is deprecated; write `idle_timeout = \"30s\"`",
        "agg.toml:8:1: `retention.default_days` (an integer) is deprecated; write `default_period = \"7d\"`",
        "`retention.teams.payments` (an integer) is deprecated; write `payments = \"90d\"`",
    ] {
        assert!(stdout.contains(want), "{want}\n{stdout}");
    }
    assert!(!stdout.contains("audit"), "{stdout}");

    // Retention drops whole days.
    std::fs::write(
        &cfg,
        format!("{body}[retention]\ndefault_period = \"36h\"\n"),
    )
    .unwrap();
    let out = check(&[]);
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("agg.toml:6:1") && err.contains("whole days"),
        "{err}"
    );
}

#[test]
fn usage_errors_exit_64_and_help_exits_0() {
    let code = |args: &[&str]| Command::new(BIN).args(args).output().unwrap().status.code();
    assert_eq!(code(&["serve", "--no-such-flag"]), Some(64));
    assert_eq!(code(&["no-such-command"]), Some(64));
    assert_eq!(code(&["--log-format", "yaml", "serve"]), Some(64));
    assert_eq!(code(&["--help"]), Some(0));
    assert_eq!(code(&["--version"]), Some(0));
}

#[test]
fn query_shows_structured_metadata_and_filters_on_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let t = now_ns();
    let body = serde_json::json!({"streams":[{"stream":{"file":"/m.log"},"values":[
        [t.to_string(), "charge ok", {"trace_id": "abc", "order": "o-1"}],
        [(t + 1).to_string(), "charge failed", {"trace_id": "def"}],
        [(t + 2).to_string(), "no metadata"],
    ]}]})
    .to_string();
    let (status, resp) = http(
        server.addr,
        &format!(
            "POST /loki/api/v1/push HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {INGEST}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    );
    assert_eq!(status, 204, "{resp}");
    let text = stdout(&cli(
        &server,
        Some(READ),
        &[
            "query",
            "{file=\"/m.log\"} | trace_id=\"abc\"",
            "--since",
            "1h",
        ],
    ));
    let rows: Vec<&str> = text.lines().collect();
    assert_eq!(rows.len(), 1, "{text}");
    assert!(rows[0].contains("order=\"o-1\""), "{text}");
    assert!(rows[0].contains("trace_id=\"abc\""), "{text}");
    assert!(rows[0].ends_with("charge ok"), "{text}");
    let all = |output: &str| {
        stdout(&cli(
            &server,
            Some(READ),
            &[
                "query",
                "{file=\"/m.log\"}",
                "--since",
                "1h",
                "--output",
                output,
            ],
        ))
    };
    let jsonl = all("jsonl");
    let traces: Vec<Option<String>> = jsonl
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["labels"]["trace_id"].as_str().map(str::to_owned)
        })
        .collect();
    assert_eq!(
        traces,
        [None, Some("def".into()), Some("abc".into())],
        "{jsonl}"
    );

    // Erasure by metadata: the entries it names, nothing else.
    let out = stdout(&cli(
        &server,
        Some(ADMIN),
        &[
            "erase",
            "{file=\"/m.log\"}",
            "--metadata",
            "trace_id=def",
            "--operator",
            "dpo",
        ],
    ));
    assert!(out.contains("1 line"), "{out}");
    let left = all("raw");
    assert_eq!(left, "no metadata\ncharge ok\n");
    let out = cli(
        &server,
        Some(ADMIN),
        &["erase", "{file=\"/m.log\"}", "--metadata", "trace id"],
    );
    assert!(!out.status.success());
}
