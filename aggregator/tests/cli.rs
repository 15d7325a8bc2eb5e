//! The aggregator binary's start-up checks (this test also makes `cargo test` build the
//! binary that the end-to-end tests run).

use std::process::Command;

#[test]
fn bad_config_exits_64_with_file_line() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("agg.toml");
    std::fs::write(&cfg, "region = \"eu-north-1\"\nport = 3100\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_fjord-aggregator"))
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
fn query_against_nothing_says_what_to_do() {
    let out = Command::new(env!("CARGO_BIN_EXE_fjord-aggregator"))
        .args(["query", "{team=\"x\"}", "--url", "http://127.0.0.1:1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is it running"));
}
