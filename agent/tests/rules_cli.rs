//! `fjord-agent rules test|check|explain` through the real binary, against rule
//! directories in per-test temp dirs.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn agent(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_fjord-agent"))
        .args(args)
        .env_remove("FJORD_HASH_KEY_FILE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn rules_dir(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    dir
}

fn p(dir: &Path) -> &str {
    dir.to_str().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

const GOOD: &str = r#"
name = "team"
[[rule]]
name = "order-ref"
pattern = 'ref=(?P<value>R[0-9]{6})'
[[rule.example]]
input = "paid ref=R123456"
expect = "paid ref=[REDACTED:order-ref]"
[[rule.example]]
input = "paid ref=X123456"
expect = "paid ref=X123456"
"#;

#[test]
fn passing_examples_exit_0() {
    let dir = rules_dir(&[("team.toml", GOOD)]);
    let out = agent(&["rules", "test", "--rules", p(dir.path())], "");
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains(" failed") && stdout.contains(", 0 failed"),
        "{stdout}"
    );
}

#[test]
fn shipped_team_example_passes() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/rules");
    let out = agent(&["rules", "test", "--rules", p(&dir)], "");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
}

#[test]
fn failing_example_exits_1_with_a_diff() {
    let bad = GOOD.replace(
        "expect = \"paid ref=X123456\"",
        "expect = \"paid ref=[REDACTED:order-ref]\"",
    );
    let dir = rules_dir(&[("team.toml", &bad)]);
    let out = agent(&["rules", "test", "--rules", p(dir.path())], "");
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("FAIL rule \"order-ref\" (") && stdout.contains("team.toml:4:8) example 2"),
        "{stdout}"
    );
    assert!(
        stdout.contains("  expected: paid ref=[REDACTED:order-ref]"),
        "{stdout}"
    );
    assert!(stdout.contains("  got:      paid ref=X123456"), "{stdout}");
    assert!(
        stdout.contains("^ first difference at character 10"),
        "{stdout}"
    );
    assert!(stdout.contains(", 1 failed"), "{stdout}");
}

#[test]
fn disabling_a_locked_rule_is_reported_with_file_line_col() {
    let team = "name = \"team\"\nextends = [\"eu-pii\"]\ndisable = [\"email\", \"card\"]\n";
    let dir = rules_dir(&[("payments.toml", team)]);
    for cmd in ["check", "test"] {
        let out = agent(&["rules", cmd, "--rules", p(dir.path())], "");
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{cmd}: {stderr}");
        assert!(
            stderr.contains("payments.toml:3:21: rule \"card\" is locked by pack:baseline"),
            "{cmd}: {stderr}"
        );
    }
}

#[test]
fn empty_extends_keeps_the_baseline() {
    let dir = rules_dir(&[("t.toml", "extends = []\n")]);
    let out = agent(
        &["rules", "explain", "--rules", p(dir.path())],
        "card 4111111111111111 a@b.co\n",
    );
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("=> card [REDACTED:card] a@b.co"),
        "{stdout}"
    );
}

#[test]
fn unsafe_opt_out_warns() {
    let dir = rules_dir(&[("t.toml", "extends = []\nunsafe_disable_baseline = true\n")]);
    let out = agent(&["rules", "check", "--rules", p(dir.path())], "");
    assert_eq!(out.status.code(), Some(0));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("WARNING") && stderr.contains("t.toml:2:27"),
        "{stderr}"
    );
}

#[test]
fn check_accepts_good_rules_and_reports_bad_ones() {
    let dir = rules_dir(&[("team.toml", GOOD)]);
    let out = agent(&["rules", "check", "--rules", p(dir.path())], "");
    assert_eq!(out.status.code(), Some(0));
    assert!(
        text(&out.stdout).starts_with("ok: "),
        "{}",
        text(&out.stdout)
    );

    let hostile = "[[rule]]\nname = \"big\"\npattern = '\\w{1000}\\w{1000}\\w{1000}'\n";
    let dir = rules_dir(&[("team.toml", hostile)]);
    let out = agent(&["rules", "check", "--rules", p(dir.path())], "");
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("team.toml:3:11: rule \"big\": pattern compiles to more than"),
        "{stderr}"
    );
}

#[test]
fn explain_shows_rule_range_action_and_output() {
    let dir = rules_dir(&[("team.toml", GOOD)]);
    let out = agent(
        &["rules", "explain", "--rules", p(dir.path())],
        "mail kari@example.no ref=R123456\nnothing here\n",
    );
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("line 1: mail kari@example.no ref=R123456\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("             ^^^^^^^^^^^^^^^ email (mask) bytes 5..20\n"),
        "{stdout}"
    );
    assert!(stdout.contains("order-ref (mask) bytes 25..32"), "{stdout}");
    assert!(
        stdout.contains("  => mail [REDACTED:email] ref=[REDACTED:order-ref]\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("line 2: nothing here\n  no rule fired\n"),
        "{stdout}"
    );
    assert!(text(&out.stderr).is_empty(), "{}", text(&out.stderr));
}

#[test]
fn explain_and_check_show_allow_entries() {
    let team = r#"
[[allow]]
rules = ["no-fnr"]
value = "15076500565"
reason = "the e2e tests' person"
"#;
    let dir = rules_dir(&[("team.toml", team)]);
    let out = agent(
        &["rules", "explain", "--rules", p(dir.path())],
        "fnr 15076500565 and 30108299939\n",
    );
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let entry = "team.toml:3:9: value \"15076500565\" for no-fnr: the e2e tests' person\n";
    assert!(stdout.starts_with("allow "), "{stdout}");
    assert!(stdout.contains(entry), "{stdout}");
    assert!(
        stdout.contains("----------- no-fnr: kept by an allow entry, bytes 4..15\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("  => fnr 15076500565 and [REDACTED:no-fnr]\n"),
        "{stdout}"
    );
    let out = agent(&["rules", "check", "--rules", p(dir.path())], "");
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("1 allow entries"), "{stdout}");
    assert!(stdout.contains(entry), "{stdout}");
}

#[test]
fn hash_rules_need_no_key_for_self_tests_but_the_key_file_must_exist() {
    let team = "[[rule]]\nname = \"c\"\npattern = 'c-[0-9]+'\naction = \"hash\"\n[[rule.example]]\ninput = \"c-1\"\nexpect = \"[HASH:c:*]\"\n";
    let dir = rules_dir(&[("team.toml", team)]);
    let out = agent(&["rules", "test", "--rules", p(dir.path())], "");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    let out = agent(
        &[
            "rules",
            "test",
            "--rules",
            p(dir.path()),
            "--hash-key-file",
            "/nonexistent/key",
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(64));
}
