//! Rule hot reload through a Kubernetes-style ConfigMap volume: the visible file is a
//! symlink through `..data`, and an update swaps `..data` atomically. An invalid version is
//! refused (metric, error with file:line:col) and the previous rules stay in force; a valid
//! one is in force for the lines read after it.

use std::path::Path;
use std::time::Duration;

use fjord_e2e::{agent_config, agent_metric, start_agent, test_dir, wait_for, Aggregator};

const V1: &str = r#"
name = "payments"
[[rule]]
name = "order"
pattern = 'ORD-[0-9]+'
"#;

/// Invalid: the rule has no name (line 3).
const V2_BROKEN: &str = r#"
name = "payments"
[[rule]]
pattern = 'cust-[0-9]+'
"#;

const V3: &str = r#"
name = "payments"
[[rule]]
name = "order"
pattern = 'ORD-[0-9]+'
[[rule]]
name = "customer"
pattern = 'cust-[0-9]+'
"#;

/// Publishes `text` as the ConfigMap's new version, the way the kubelet does: a new
/// timestamped directory, a new `..data` symlink renamed over the old one.
fn publish(rules: &Path, version: &str, text: &str) {
    let dir = rules.join(format!("..{version}"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("team.toml"), text).unwrap();
    let tmp = rules.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(format!("..{version}"), &tmp).unwrap();
    std::fs::rename(&tmp, rules.join("..data")).unwrap();
    let visible = rules.join("team.toml");
    if std::fs::symlink_metadata(&visible).is_err() {
        std::os::unix::fs::symlink("..data/team.toml", &visible).unwrap();
    }
}

fn line_of(agg: &Aggregator, needle: &str) -> Option<String> {
    agg.query_jsonl(&format!(r#"{{team="payments"}} |= "{needle}""#), 10)
        .first()
        .and_then(|r| r["line"].as_str().map(str::to_owned))
}

fn write(log: &Path, line: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    writeln!(f, "{line}").unwrap();
}

#[test]
fn configmap_swap_reloads_and_a_broken_version_is_refused() {
    let dir = test_dir();
    let agg = Aggregator::start(dir.path());
    let rules = dir.path().join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    publish(&rules, "2026_11_26_v1", V1);
    let cfg = agent_config(
        dir.path(),
        &agg.url(),
        &format!("rules_dir = \"{}\"", rules.display()),
    );
    let log = dir.path().join("logs/app.log");
    write(&log, "step=1 order ORD-1001 for cust-77");
    let _agent = start_agent(dir.path(), &cfg);
    wait_for("step 1", Duration::from_secs(30), || {
        line_of(&agg, "step=1").is_some()
    });
    assert_eq!(
        line_of(&agg, "step=1").unwrap(),
        "step=1 order [REDACTED:order] for cust-77"
    );

    publish(&rules, "2026_11_26_v2", V2_BROKEN);
    wait_for(
        "the broken version to be refused",
        Duration::from_secs(30),
        || agent_metric(&cfg, "fjord_agent_rules_reload_failures_total") == Some(1.0),
    );
    let log_text: String = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("agent-"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect();
    assert!(
        log_text.contains("team.toml:3:1"),
        "the refusal names the file, line and column"
    );
    write(&log, "step=2 order ORD-1002 for cust-78");
    wait_for("step 2", Duration::from_secs(30), || {
        line_of(&agg, "step=2").is_some()
    });
    assert_eq!(
        line_of(&agg, "step=2").unwrap(),
        "step=2 order [REDACTED:order] for cust-78",
        "the previous rules stay in force"
    );

    publish(&rules, "2026_11_26_v3", V3);
    wait_for("the new version", Duration::from_secs(30), || {
        agent_metric(&cfg, "fjord_agent_rules_reloads_total") == Some(1.0)
    });
    write(&log, "step=3 order ORD-1003 for cust-79");
    wait_for("step 3", Duration::from_secs(30), || {
        line_of(&agg, "step=3").is_some()
    });
    assert_eq!(
        line_of(&agg, "step=3").unwrap(),
        "step=3 order [REDACTED:order] for [REDACTED:customer]"
    );
    assert_eq!(
        agent_metric(&cfg, "fjord_agent_redactions_total{rule=\"customer\"}"),
        Some(1.0)
    );
}
