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
        "url = \"http://127.0.0.1:1\"\npaths = [\"/x/*.log\"]\nlinger = 5\n",
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
