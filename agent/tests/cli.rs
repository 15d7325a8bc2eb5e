//! The agent binary's start-up checks (this test also makes `cargo test` build the binary
//! that the end-to-end tests run).

use std::process::Command;

fn agent(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_fjord-agent"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn bad_config_exits_64_with_file_line() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("agent.toml");
    std::fs::write(
        &cfg,
        "url = \"http://127.0.0.1:1\"\npaths = [\"/x/*.log\"]\nlinger_seconds = 5\n",
    )
    .unwrap();
    let out = agent(&["run", "--config", cfg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("agent.toml:3:1") && err.contains("unknown field"),
        "{err}"
    );
}

#[test]
fn plain_http_to_a_remote_host_is_refused() {
    let out = agent(&[
        "run",
        "--path",
        "/x/*.log",
        "--url",
        "http://logs.example.com",
    ]);
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("only allowed to a loopback"));
}

#[test]
fn bad_rule_file_exits_64_with_location() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("team.toml"),
        "[[rule]]\nname = \"x\"\ndetector = \"nope\"\n",
    )
    .unwrap();
    let out = agent(&[
        "run",
        "--path",
        "/x/*.log",
        "--url",
        "http://127.0.0.1:1",
        "--rules",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("team.toml:3:12") && err.contains("unknown detector"),
        "{err}"
    );
}

/// A port that was free a moment ago, for checking that nothing binds it.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn check_config_validates_and_starts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let state = dir.path().join("state");
    let cfg = dir.path().join("agent.toml");
    let body = format!(
        "url = \"http://127.0.0.1:1\"\npaths = [\"{}/*.log\"]\nstate_dir = \"{}\"\nadmin_listen = \"127.0.0.1:{port}\"\n",
        dir.path().display(),
        state.display()
    );
    std::fs::write(&cfg, &body).unwrap();
    let cfg_s = cfg.to_str().unwrap();

    // `output()` returns only once the process has exited: check-config never serves.
    let out = agent(&["check-config", "--config", cfg_s]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("config ok: {cfg_s}")
    );
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
    assert!(!state.exists(), "check-config created the state directory");

    std::fs::write(&cfg, format!("{body}max_in_flight = \"many\"\n")).unwrap();
    let out = agent(&["check-config", "--config", cfg_s]);
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("agent.toml:5:17"), "{err}");
    assert!(out.stdout.is_empty());

    // Flags are checked as `run` checks them, rules included.
    std::fs::write(&cfg, &body).unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    std::fs::write(
        rules.join("team.toml"),
        "[[rule]]\nname = \"x\"\ndetector = \"nope\"\n",
    )
    .unwrap();
    let rules_s = rules.to_str().unwrap();
    let out = agent(&["check-config", "--config", cfg_s, "--rules", rules_s]);
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("team.toml:3:12"));
    assert!(!state.exists());
}

#[test]
fn usage_errors_exit_64_and_help_exits_0() {
    assert_eq!(agent(&["run", "--no-such-flag"]).status.code(), Some(64));
    assert_eq!(agent(&["no-such-command"]).status.code(), Some(64));
    assert_eq!(
        agent(&["--log-format", "yaml", "run"]).status.code(),
        Some(64)
    );
    assert_eq!(agent(&["--help"]).status.code(), Some(0));
    assert_eq!(agent(&["--version"]).status.code(), Some(0));
}

/// Starts `run` against an address where nothing listens and returns what it wrote to stderr
/// by the time it logged its start-up line.
fn startup_stderr(extra: &[&str]) -> Vec<String> {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let glob = format!("{}/*.log", dir.path().display());
    let state = dir.path().join("state");
    let mut child = Command::new(env!("CARGO_BIN_EXE_fjord-agent"))
        .args(["run", "--path", &glob, "--url", "http://127.0.0.1:1"])
        .args(["--state", state.to_str().unwrap()])
        .args(["--admin-listen", "127.0.0.1:0"])
        .args(extra)
        .env_remove("NO_COLOR")
        .env_remove("FJORD_LOG")
        .env_remove("FJORD_LOG_FORMAT")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut lines = Vec::new();
    while !lines.iter().any(|l: &String| l.contains("starting")) {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) => lines.push(l),
            Err(_) => break,
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    reader.join().unwrap();
    lines.extend(rx.try_iter());
    assert!(
        lines.iter().any(|l| l.contains("starting")),
        "no start-up line: {lines:?}"
    );
    lines
}

#[test]
fn json_logs_are_one_object_per_line() {
    let lines = startup_stderr(&["--log-format", "json"]);
    for line in &lines {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}"));
        for field in ["timestamp", "level", "target", "fields"] {
            assert!(v.get(field).is_some(), "no {field} in {line}");
        }
    }
}

#[test]
fn text_logs_have_no_colour_without_a_terminal() {
    let lines = startup_stderr(&[]);
    for line in &lines {
        assert!(!line.contains('\x1b'), "escape code in {line:?}");
    }
}

/// Durations are humantime strings; the integer keys they replace still load, each named in
/// a deprecation warning with its line and what to write instead; both forms at once are
/// refused at the line of the deprecated one.
#[test]
fn durations_are_humantime_and_integer_keys_are_deprecated() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("agent.toml");
    let body = "url = \"http://127.0.0.1:1\"\npaths = [\"/x/*.log\"]\n";
    let cfg_s = cfg.to_str().unwrap();

    std::fs::write(
        &cfg,
        format!("{body}linger = \"1s 500ms\"\ncheckpoint_ttl = \"2d\"\n"),
    )
    .unwrap();
    let out = agent(&["check-config", "--config", cfg_s]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("warning"), "{stdout}");

    std::fs::write(
        &cfg,
        format!("{body}linger_ms = 50\nledger_retention_days = 30\n"),
    )
    .unwrap();
    let out = agent(&["check-config", "--config", cfg_s]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(
            "agent.toml:3:1: `linger_ms` (an integer) is deprecated; write `linger = \"50ms\"`"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("agent.toml:4:1: `ledger_retention_days` (an integer) is deprecated; write `ledger_retention = \"30d\"`"),
        "{stdout}"
    );

    std::fs::write(&cfg, format!("{body}linger = \"1s\"\nlinger_ms = 50\n")).unwrap();
    let out = agent(&["check-config", "--config", cfg_s]);
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("agent.toml:4:1") && err.contains("not both"),
        "{err}"
    );

    std::fs::write(&cfg, format!("{body}poll_interval = \"2m\"\n")).unwrap();
    let out = agent(&["check-config", "--config", cfg_s]);
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("agent.toml:3:1: invalid poll_interval: 2m is out of range: must be between 10ms and 1m"),
        "{err}"
    );
}
