//! End to end: the real aggregator and agent binaries, a log file with numbered lines and
//! planted PII, an agent restart in the middle (graceful, and SIGKILL), and everything read
//! back through the query CLI: every line exactly once, in order, PII masked.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use fjord_e2e::{agent_config, start_agent, wait_for, Aggregator};

const TOTAL: usize = 2000;

fn line(i: usize) -> String {
    match i % 10 {
        3 => format!("seq={i:06} payment declined for user{i}@example.no"),
        7 => format!("seq={i:06} charge card=4111 1111 1111 1111 amount=12.50"),
        _ => format!("seq={i:06} payment ok order={} amount=99.00", 1_000_000 + i),
    }
}

fn append(path: &Path, range: std::ops::Range<usize>) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    for i in range {
        writeln!(f, "{}", line(i)).unwrap();
    }
    f.sync_all().unwrap();
}

/// Line `i` as the default packs leave it.
fn scrubbed(i: usize) -> String {
    match i % 10 {
        3 => format!("seq={i:06} payment declined for [REDACTED:email]"),
        7 => format!("seq={i:06} charge card=[REDACTED:card] amount=12.50"),
        _ => line(i),
    }
}

fn check_all(agg: &Aggregator) {
    let rows = agg.query_jsonl(r#"{team="payments"}"#, 100_000);
    let lines: Vec<&str> = rows.iter().map(|r| r["line"].as_str().unwrap()).collect();
    assert_eq!(lines.len(), TOTAL, "every line exactly once");
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(*l, scrubbed(i), "line {i} in order and scrubbed");
    }
    assert!(rows.iter().all(|r| r["labels"]["team"] == "payments"));
    // The |= filter through the CLI finds exactly the declined lines.
    let declined = agg.query_jsonl(r#"{team="payments"} |= "declined""#, 100_000);
    assert_eq!(declined.len(), TOTAL / 10);
    // And the text output prints them too.
    let out = agg.cli(&[
        "query",
        r#"{team="payments"} |= "seq=000003""#,
        "--since",
        "1h",
    ]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("[REDACTED:email]") && text.contains("team=\"payments\""),
        "{text}"
    );
}

fn run(kill: bool) {
    let dir = tempfile::tempdir().unwrap();
    let agg = Aggregator::start(dir.path());
    let cfg = agent_config(dir.path(), &agg.url(), "max_batch_lines = 100");
    let log = dir.path().join("logs/app.log");

    append(&log, 0..TOTAL / 2);
    let agent = start_agent(dir.path(), &cfg);
    wait_for("some lines stored", Duration::from_secs(60), || {
        agg.stored_records() >= 300
    });
    if kill {
        agent.kill();
    } else {
        assert_eq!(agent.terminate(), Some(0), "agent exits 0 on SIGTERM");
        // A clean shutdown is not an error (it once logged "the shipper stopped
        // unexpectedly" when the shipper saw the closed channel before the tailer's join).
        let said = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("agent-"))
            .map(|e| std::fs::read_to_string(e.path()).unwrap())
            .collect::<String>();
        assert!(!said.contains("ERROR"), "{said}");
    }
    append(&log, TOTAL / 2..TOTAL);
    let _agent = start_agent(dir.path(), &cfg);
    wait_for("all lines stored", Duration::from_secs(60), || {
        agg.stored_records() >= TOTAL as u64
    });
    // Give a wrongly duplicating agent a chance to show itself before checking.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(agg.stored_records(), TOTAL as u64);
    check_all(&agg);
}

#[test]
fn restart_with_sigterm_loses_and_duplicates_nothing() {
    run(false);
}

#[test]
fn restart_after_sigkill_loses_and_duplicates_nothing() {
    run(true);
}

/// Restarts the aggregator on the same port and data, declaring EEA, and waits until every
/// line has arrived.
fn redeclare_eea(agg: Aggregator, dir: &Path, port: u16) -> Aggregator {
    assert_eq!(agg.proc.terminate(), Some(0));
    let agg = Aggregator::start_on(
        dir,
        port,
        &["--region", "eu-north-1", "--jurisdiction", "EEA"],
    );
    wait_for("all lines stored", Duration::from_secs(60), || {
        agg.stored_records() >= TOTAL as u64
    });
    agg
}

#[test]
fn undeclared_jurisdiction_ships_nothing_until_declared() {
    let dir = tempfile::tempdir().unwrap();
    let port = fjord_e2e::free_port();
    let agg = Aggregator::start_on(dir.path(), port, &[]);
    let cfg = agent_config(dir.path(), &agg.url(), "");
    append(&dir.path().join("logs/app.log"), 0..TOTAL);
    let _agent = start_agent(dir.path(), &cfg);
    wait_for(
        "the agent to log the refusal",
        Duration::from_secs(30),
        || {
            std::fs::read_dir(dir.path())
                .unwrap()
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("agent-"))
                .any(|e| {
                    std::fs::read_to_string(e.path())
                        .unwrap_or_default()
                        .contains("--jurisdiction")
                })
        },
    );
    assert_eq!(
        agg.stored_records(),
        0,
        "nothing shipped to an undeclared jurisdiction"
    );
    let agg = redeclare_eea(agg, dir.path(), port);
    check_all(&agg);
}

/// A refused jurisdiction stops shipping and shows in the metrics and the agent's log, but
/// not in `/readyz` (the pod keeps serving; `ready_requires_shipping` would change that).
#[test]
fn foreign_jurisdiction_blocks_shipping_not_readiness() {
    let dir = tempfile::tempdir().unwrap();
    let port = fjord_e2e::free_port();
    let agg = Aggregator::start_on(
        dir.path(),
        port,
        &["--region", "us-east-1", "--jurisdiction", "US"],
    );
    let cfg = agent_config(dir.path(), &agg.url(), "");
    append(&dir.path().join("logs/app.log"), 0..TOTAL);
    let _agent = start_agent(dir.path(), &cfg);
    wait_for("the residency block", Duration::from_secs(30), || {
        fjord_e2e::agent_metric(&cfg, "fjord_agent_residency_blocked") == Some(1.0)
    });
    let (status, body) = fjord_e2e::http_get(fjord_e2e::admin_addr(&cfg), "/readyz").unwrap();
    assert_eq!(status, 200, "{body}");
    let logged = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("agent-"))
        .any(|e| {
            let log = std::fs::read_to_string(e.path()).unwrap_or_default();
            log.contains("residency guard") && log.contains("\"US\"")
        });
    assert!(logged, "the agent's log says why it ships nothing");
    assert_eq!(agg.stored_records(), 0, "nothing shipped outside the EEA");
    let agg = redeclare_eea(agg, dir.path(), port);
    check_all(&agg);
    assert_eq!(
        fjord_e2e::agent_metric(&cfg, "fjord_agent_residency_blocked"),
        Some(0.0)
    );
}

/// https to an aggregator whose certificate a private CA signed: without the CA in
/// `ca_file` the agent refuses the handshake and ships nothing (it stays ready: the
/// aggregator shows as down in `fjord_agent_aggregator_up`, and its log says the server's
/// certificate is not trusted); with it, every line arrives once, over TLS.
#[test]
fn https_with_a_private_ca_needs_its_ca_file() {
    let dir = tempfile::tempdir().unwrap();
    let ca = fjord_e2e::certs::Ca::new("fjord test CA");
    let ca_file = ca.write(&dir.path().join("ca.pem"));
    let (cert, key) = ca.server().write(dir.path(), "server");
    let agg = Aggregator::start_tls(
        dir.path(),
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
        fjord_e2e::tls::ClientTls::ca(ca_file.clone()),
    );
    let url = agg.url();
    let cfg = agent_config(dir.path(), &url, "");
    append(&dir.path().join("logs/app.log"), 0..TOTAL);
    let agent = start_agent(dir.path(), &cfg);
    wait_for("refused handshakes", Duration::from_secs(30), || {
        handshake_errors(&agg) >= 2
    });
    assert_eq!(
        fjord_e2e::agent_metric(&cfg, "fjord_agent_aggregator_up"),
        Some(0.0),
        "an untrusted aggregator counts as down"
    );
    assert_eq!(
        agg.stored_records(),
        0,
        "nothing shipped to an untrusted server"
    );
    assert_eq!(agent.terminate(), Some(0));
    let log = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("agent-"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect::<String>();
    assert!(
        log.contains("TLS certificate is not trusted"),
        "the agent says why: {log}"
    );

    let cfg = agent_config(
        dir.path(),
        &url,
        &format!("ca_file = \"{}\"", ca_file.display()),
    );
    let _agent = start_agent(dir.path(), &cfg);
    wait_for("every line", Duration::from_secs(60), || {
        agg.stored_records() == TOTAL as u64
    });
    check_all(&agg);
}

/// The aggregator's count of failed TLS handshakes (`/fjord/v1/stats`, open mode = admin).
fn handshake_errors(agg: &Aggregator) -> u64 {
    let Ok((200, body)) = agg.get("/fjord/v1/stats") else {
        return 0;
    };
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    v["counters"]["tls_handshake_errors"].as_u64().unwrap_or(0)
}

/// A file read at once is cut into batches at `max_batch_bytes` of raw lines: the agent's
/// ledger shows every batch within the limit (a batch ends with the line that reaches it),
/// the batches together cover every line, and every line is stored once.
#[test]
fn batches_are_cut_at_max_batch_bytes() {
    const LIMIT: u64 = 4096;
    let dir = tempfile::tempdir().unwrap();
    let agg = Aggregator::start(dir.path());
    let cfg = agent_config(
        dir.path(),
        &agg.url(),
        &format!("max_batch_bytes = {LIMIT}\nmax_batch_lines = 1000000"),
    );
    append(&dir.path().join("logs/app.log"), 0..TOTAL);
    let agent = start_agent(dir.path(), &cfg);
    wait_for("every line", Duration::from_secs(60), || {
        agg.stored_records() == TOTAL as u64
    });
    check_all(&agg);
    assert_eq!(agent.terminate(), Some(0));

    let ledger = dir.path().join("ledger.jsonl");
    let out = std::process::Command::new(fjord_e2e::bin("fjord-agent"))
        .args(["audit", "--state"])
        .arg(dir.path().join("state"))
        .arg("--export")
        .arg(&ledger)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<serde_json::Value> = std::fs::read_to_string(&ledger)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // Raw bytes are the lines as shipped, after redaction.
    let longest = (0..TOTAL).map(|i| scrubbed(i).len() as u64).max().unwrap();
    let raw: Vec<u64> = rows
        .iter()
        .map(|r| r["raw_bytes"].as_u64().unwrap())
        .collect();
    let records: u64 = rows.iter().map(|r| r["records"].as_u64().unwrap()).sum();
    let total: u64 = (0..TOTAL).map(|i| scrubbed(i).len() as u64).sum();
    assert_eq!(records, TOTAL as u64, "the batches cover every line once");
    assert_eq!(raw.iter().sum::<u64>(), total);
    assert!(raw.iter().all(|&b| b < LIMIT + longest), "{raw:?}");
    assert!(raw.len() as u64 >= total / (LIMIT + longest), "{raw:?}");
    // Cut by bytes, not by linger: all but the last batch reach the limit.
    assert!(raw[..raw.len() - 1].iter().all(|&b| b >= LIMIT), "{raw:?}");
}
