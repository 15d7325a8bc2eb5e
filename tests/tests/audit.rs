//! End to end, the compliance audit (issue 7): the real agent ships a log with a known mix of
//! PII to the real aggregator; the agent's audit shows the exact redaction counts; the
//! aggregator's `audit verify` passes against the agent's exported ledger and fails, naming
//! the batch, when one stored chunk is tampered with or a receipt is deleted; an erasure is
//! reported as an erasure, not as tampering; `audit scan` with the same rules finds nothing and
//! with a stricter rule finds exactly the planted lines, masked; `audit access` lists the reads.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use fjord_e2e::{agent_config, bin, http_request, start_agent, test_dir, wait_for, Aggregator};

const TOTAL: usize = 300;
/// Lines with an e-mail address (i % 10 == 3), a card number (i % 10 == 7) and an order id
/// that is not PII for the default rules (i % 5 == 0).
const EMAILS: u64 = 30;
const CARDS: u64 = 30;
const ORDERS: u64 = 60;

fn line(i: usize) -> String {
    match i % 10 {
        3 => format!("seq={i:06} payment declined for user{i}@example.no"),
        7 => format!("seq={i:06} charge card=4111 1111 1111 1111 amount=12.50"),
        0 | 5 => format!("seq={i:06} shipped ORD-{}", 4_000_000 + i),
        _ => format!("seq={i:06} payment ok amount=99.00"),
    }
}

fn agent_audit(state: &Path, extra: &[&str]) -> Output {
    Command::new(bin("fjord-agent"))
        .arg("audit")
        .arg("--state")
        .arg(state)
        .args(extra)
        .output()
        .expect("run fjord-agent audit")
}

fn audit(data: &Path, args: &[&str]) -> Output {
    Command::new(bin("fjord-aggregator"))
        .arg("audit")
        .args(args)
        .arg("--data")
        .arg(data)
        .output()
        .expect("run fjord-aggregator audit")
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Writes `n` lines of the PII mix to `dir/logs/app.log`.
fn write_log(dir: &Path, n: usize) {
    let mut f = std::fs::File::create(dir.join("logs/app.log")).unwrap();
    for i in 0..n {
        writeln!(f, "{}", line(i)).unwrap();
    }
    f.sync_all().unwrap();
}

/// `fjord-aggregator audit keygen --key FILE`: the key's path (its public key is `FILE.pub`).
fn keygen(file: &Path) -> std::path::PathBuf {
    let out = Command::new(bin("fjord-aggregator"))
        .args(["audit", "keygen", "--key"])
        .arg(file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    file.to_owned()
}

/// An aggregator that signs its audit chain every second with a new key in `dir`.
fn signing_aggregator(dir: &Path) -> (Aggregator, std::path::PathBuf) {
    let key = keygen(&dir.join("audit.key"));
    let config = format!(
        "[audit]\nsigning_key_file = \"{}\"\nsign_interval = \"1s\"\n",
        key.display()
    );
    (Aggregator::start_with_config(dir, &config), key)
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn audit_end_to_end() {
    let dir = test_dir();
    let agg = Aggregator::start(dir.path());
    let cfg = agent_config(dir.path(), &agg.url(), "max_batch_lines = 40");
    let state = dir.path().join("state");
    write_log(dir.path(), TOTAL);
    let agent = start_agent(dir.path(), &cfg);
    wait_for("every line stored", Duration::from_secs(60), || {
        agg.stored_records() == TOTAL as u64
    });
    // The ledger row is committed with the checkpoint, just after the ack: wait for all.
    wait_for("every batch in the ledger", Duration::from_secs(30), || {
        let out = agent_audit(&state, &["--output", "json"]);
        let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        r["destinations"]
            .as_array()
            .map(|d| d.iter().filter_map(|x| x["records"].as_u64()).sum::<u64>())
            == Some(TOTAL as u64)
    });
    assert_eq!(agent.terminate(), Some(0));

    // The agent's audit: exact redaction counts, everything to the EEA.
    let out = agent_audit(&state, &["--output", "json"]);
    assert!(out.status.success(), "{}", text(&out));
    let report = json(&out);
    assert_eq!(
        report["redactions"],
        serde_json::json!({ "card": CARDS, "email": EMAILS }),
        "{report:#}"
    );
    assert_eq!(report["destinations"][0]["jurisdiction"], "EEA");
    let ledger = dir.path().join("ledger.jsonl");
    let out = agent_audit(&state, &["--export", ledger.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let rows: Vec<serde_json::Value> = std::fs::read_to_string(&ledger)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(rows.len() >= (TOTAL / 40), "{} ledger rows", rows.len());

    // A read, for the access log.
    assert_eq!(
        agg.query_jsonl(r#"{team="payments"} |= "declined""#, 1000)
            .len(),
        EMAILS as usize
    );
    let data = agg.data.clone();
    assert_eq!(agg.proc.terminate(), Some(0));
    let ledger_arg = ledger.to_str().unwrap();

    // Receipts: every batch, the declared redactions.
    let out = audit(&data, &["receipts", "--output", "json"]);
    assert!(out.status.success(), "{}", text(&out));
    let receipts = json(&out);
    assert_eq!(receipts["records"], TOTAL as u64);
    assert_eq!(receipts["batches"], rows.len() as u64);
    assert_eq!(
        receipts["redactions"],
        serde_json::json!({ "card": CARDS, "email": EMAILS })
    );

    // Verify: clean.
    let out = audit(
        &data,
        &["verify", "--ledger", ledger_arg, "--output", "json"],
    );
    let v = json(&out);
    assert_eq!(out.status.code(), Some(0), "{v:#}");
    assert_eq!(v["ok"], true);
    assert_eq!(v["ledger_acked"], rows.len() as u64);
    assert_eq!(v["receipts_checked"], rows.len() as u64);
    assert_eq!(v["stored_lines_checked"], TOTAL as u64);
    let out = audit(&data, &["verify", "--ledger", ledger_arg]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("OK:"), "{}", text(&out));

    // Scan with the rules the agent used: nothing stored matches.
    let out = audit(&data, &["scan", "--output", "json"]);
    let s = json(&out);
    assert_eq!(out.status.code(), Some(0), "{s:#}");
    assert_eq!(s["lines_scanned"], TOTAL as u64);
    assert_eq!(s["lines_matching"], 0);
    // A stricter rule set (order ids are customer data here) finds exactly the planted lines,
    // and never prints a matched value.
    let rules = dir.path().join("strict-rules");
    std::fs::create_dir_all(&rules).unwrap();
    std::fs::write(
        rules.join("payments.toml"),
        "name = \"payments\"\n\n[[rule]]\nname = \"order-id\"\npattern = 'ORD-[0-9]+'\naction = \"mask\"\n",
    )
    .unwrap();
    let rules_arg = rules.to_str().unwrap();
    let out = audit(&data, &["scan", "--rules", rules_arg, "--output", "json"]);
    let s = json(&out);
    assert_eq!(out.status.code(), Some(1), "{s:#}");
    assert_eq!(s["lines_matching"], ORDERS, "{s:#}");
    assert_eq!(
        s["rules"],
        serde_json::json!([{ "rule": "order-id", "lines": ORDERS, "matches": ORDERS }])
    );
    let out = audit(
        &data,
        &[
            "scan",
            r#"{team="payments"}"#,
            "--rules",
            rules_arg,
            "--examples",
            "5",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let t = text(&out);
    assert!(t.contains("[MATCH:order-id]"), "{t}");
    assert!(!t.contains("ORD-4"), "a matched value was printed:\n{t}");
    // A line filter narrows the scan.
    let out = audit(
        &data,
        &[
            "scan",
            r#"{team="payments"} |= "seq=000005""#,
            "--rules",
            rules_arg,
            "--output",
            "json",
        ],
    );
    assert_eq!(json(&out)["lines_matching"], 1);

    // Access log: the query above, by the loopback caller, with the lines it returned.
    let out = audit(&data, &["access", "--output", "json"]);
    assert!(out.status.success(), "{}", text(&out));
    let a = json(&out);
    let q = a["requests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["endpoint"] == "query_range")
        .unwrap_or_else(|| panic!("no query_range in {a:#}"));
    assert_eq!(q["token"], "anonymous-loopback");
    assert_eq!(q["lines"], EMAILS);
    assert_eq!(q["query"], r#"{team="payments"} |= "declined""#);

    // Tamper with one stored chunk: verify fails and names the batch.
    let db = rusqlite::Connection::open(data.join("fjord.db")).unwrap();
    let (chunk_id, seq, original): (i64, i64, Vec<u8>) = db
        .query_row(
            "SELECT id, seq, data FROM chunks ORDER BY id LIMIT 1 OFFSET 2",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    let batch: String = db
        .query_row("SELECT batch_id FROM receipts WHERE id = ?1", [seq], |r| {
            r.get(0)
        })
        .unwrap();
    let mut tampered = original.clone();
    let at = tampered.len() - 6;
    tampered[at] ^= 0x20;
    db.execute(
        "UPDATE chunks SET data = ?2 WHERE id = ?1",
        rusqlite::params![chunk_id, tampered],
    )
    .unwrap();
    let out = audit(&data, &["verify", "--ledger", ledger_arg]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains(&format!("ALTERED   batch {batch}")), "{t}");
    let out = audit(
        &data,
        &["verify", "--ledger", ledger_arg, "--output", "json"],
    );
    assert_eq!(json(&out)["ok"], false);

    // Restored: clean again.
    db.execute(
        "UPDATE chunks SET data = ?2 WHERE id = ?1",
        rusqlite::params![chunk_id, original],
    )
    .unwrap();
    let out = audit(&data, &["verify", "--ledger", ledger_arg]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    // An erasure changes stored data legitimately: reported with who and when, not a finding.
    let out = Command::new(bin("fjord-aggregator"))
        .args(["erase", r#"{team="payments"}"#, "--filter", "seq=000013 "])
        .args(["--operator", "dpo", "--data"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let out = audit(&data, &["verify", "--ledger", ledger_arg]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(t.contains("erased 1 lines by offline (dpo)"), "{t}");
    let out = audit(&data, &["access", "--output", "json"]);
    assert_eq!(json(&out)["erasures"][0]["lines"], 1);

    // Delete a receipt: that batch is missing, and its stored lines have no receipt.
    let (gone_seq, gone_batch): (i64, String) = db
        .query_row(
            "SELECT id, batch_id FROM receipts ORDER BY id DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    db.execute("DELETE FROM receipts WHERE id = ?1", [gone_seq])
        .unwrap();
    drop(db);
    let out = audit(
        &data,
        &["verify", "--ledger", ledger_arg, "--output", "json"],
    );
    let v = json(&out);
    assert_eq!(out.status.code(), Some(1), "{v:#}");
    assert_eq!(v["missing"][0]["batch_id"], gone_batch.as_str(), "{v:#}");
    assert_eq!(v["missing"].as_array().unwrap().len(), 1);
    assert_eq!(v["unreceipted"][0]["seq"], gone_seq);
    let out = audit(&data, &["verify", "--ledger", ledger_arg]);
    assert!(text(&out).contains(&format!("MISSING   batch {gone_batch}")));

    // Usage errors are 64, and name the problem.
    let out = audit(&data, &["verify", "--ledger", "/nonexistent/ledger.jsonl"]);
    assert_eq!(out.status.code(), Some(64));
    assert!(text(&out).contains("/nonexistent/ledger.jsonl"));
    let out = audit(&data, &["scan", "--from", "yesterday"]);
    assert_eq!(out.status.code(), Some(64));
    let out = audit(&data, &["verify", "--bogus"]);
    assert_eq!(out.status.code(), Some(64));
}

/// The audit chain signed by a running aggregator, checked offline with only the public key
/// it publishes: `audit keygen` makes the key, `[audit] signing_key_file` signs with it,
/// `/v1/info` publishes it, `audit verify --public-key` passes on the untouched store and
/// names a receipt changed behind the server's back, and a root checked with another key is
/// reported as signed by an unknown key. A private key others can read is refused at start.
#[test]
fn signed_chain_verifies_offline_with_the_published_key() {
    let dir = test_dir();
    let (agg, key) = signing_aggregator(dir.path());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let (status, body) = agg.get("/v1/info").unwrap();
    assert_eq!(status, 200, "{body}");
    let info: serde_json::Value = serde_json::from_str(&body).unwrap();
    let published = &info["audit_keys"][0];
    assert_eq!(published["current"], true, "{info:#}");
    assert_eq!(published["algorithm"], "ed25519");
    // The auditor's copy of the public key, taken from /v1/info.
    let public = dir.path().join("from-info.pub");
    std::fs::write(&public, published["public_key"].as_str().unwrap()).unwrap();
    let public_arg = public.to_str().unwrap();

    let now_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    for i in 0..3 {
        let body = format!(
            r#"{{"streams":[{{"stream":{{"app":"pay"}},"values":[["{}","line {i}"]]}}]}}"#,
            now_ns + i
        );
        let batch = format!("batch-{i}");
        let (status, text) = http_request(
            agg.addr,
            "POST",
            "/loki/api/v1/push",
            &[
                ("Content-Type", "application/json"),
                ("Fjord-Batch-Id", &batch),
            ],
            body.as_bytes(),
        )
        .unwrap();
        assert_eq!(status, 204, "{text}");
    }
    let data = agg.data.clone();
    // Signed within a second or two of the last push.
    wait_for("the chain's head signed", Duration::from_secs(20), || {
        let v: serde_json::Value = serde_json::from_slice(
            &audit(
                &data,
                &["verify", "--public-key", public_arg, "--output", "json"],
            )
            .stdout,
        )
        .unwrap_or_default();
        v["chain"]["signed_through"].as_i64().is_some()
            && v["chain"]["signed_through"] == v["chain"]["links"]
    });
    assert_eq!(agg.proc.terminate(), Some(0));

    let out = audit(
        &data,
        &["verify", "--public-key", public_arg, "--output", "json"],
    );
    let v = json(&out);
    assert_eq!(out.status.code(), Some(0), "{v:#}");
    // genesis and three receipts
    assert_eq!(v["chain"]["links"], 4, "{v:#}");
    assert!(v["chain"]["roots_verified"].as_u64() >= Some(1), "{v:#}");

    // Another key: the roots are not signed by any key the auditor holds.
    let other = keygen(&dir.path().join("other.key"));
    let other_pub = format!("{}.pub", other.display());
    let out = audit(&data, &["verify", "--public-key", &other_pub]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("UNKNOWN KEY"), "{}", text(&out));

    // A receipt changed directly in the database is named.
    let conn = rusqlite::Connection::open(data.join("fjord.db")).unwrap();
    conn.execute(
        "UPDATE receipts SET team = 'someone-else' WHERE batch_id = 'batch-1'",
        [],
    )
    .unwrap();
    drop(conn);
    let out = audit(&data, &["verify", "--public-key", public_arg]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let t = text(&out);
    assert!(t.contains("ROW ALTERED"), "{t}");
    assert!(t.contains("columns differ from the link: team"), "{t}");
    assert!(
        !t.contains("someone-else"),
        "a changed value was printed:\n{t}"
    );

    // A private key others can read is refused before the server starts, at its config key.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let cfg = dir.path().join("aggregator.toml");
        let out = Command::new(bin("fjord-aggregator"))
            .arg("check-config")
            .arg("--config")
            .arg(&cfg)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(64), "{}", text(&out));
        let t = text(&out);
        assert!(t.contains("aggregator.toml:2:"), "{t}");
        assert!(t.contains("chmod 600"), "{t}");
    }
}

/// The agent ships its ledger to the aggregator, so what a pod sent outlives it: after the
/// pod is killed and its state volume deleted, `audit agents` still shows its batches and
/// destination, and `audit verify` reconciles the shipped ledger against the receipts
/// without any file from the pod, and names a receipt deleted afterwards as missing.
#[test]
fn a_pods_ledger_outlives_the_pod() {
    const LINES: usize = 200;
    let dir = test_dir();
    let agg = Aggregator::start(dir.path());
    let cfg = agent_config(dir.path(), &agg.url(), "max_batch_lines = 40");
    write_log(dir.path(), LINES);
    let agent = start_agent(dir.path(), &cfg);
    wait_for("every line stored", Duration::from_secs(60), || {
        agg.stored_records() == LINES as u64
    });
    let (data, url) = (agg.data.clone(), agg.url());
    let agents = |data: &Path| json(&audit(data, &["agents", "--output", "json"]));
    wait_for("the ledger shipped", Duration::from_secs(30), || {
        agents(&data)["agents"][0]["delivered_records"] == LINES as u64
    });
    // The pod is deleted: the agent killed, its state volume gone.
    agent.kill();
    std::fs::remove_dir_all(dir.path().join("state")).unwrap();
    assert_eq!(agg.proc.terminate(), Some(0));

    let a = agents(&data);
    let pod = &a["agents"][0];
    assert_eq!(pod["team"], "payments", "{a:#}");
    assert_eq!(pod["delivered_batches"], (LINES / 40) as u64, "{a:#}");
    assert_eq!(pod["dead_letter_batches"], 0);
    assert_eq!(pod["losses"], 0);
    assert_eq!(pod["destinations"][url.as_str()], "EEA", "{a:#}");
    let out = audit(&data, &["agents"]);
    assert!(
        text(&out).contains("delivered    5 batches, 200 records"),
        "{}",
        text(&out)
    );

    let out = audit(&data, &["verify", "--output", "json"]);
    let v = json(&out);
    assert_eq!(out.status.code(), Some(0), "{v:#}");
    assert_eq!(v["ledger"], "the agents' ledgers shipped to the aggregator");
    assert_eq!(v["ledger_acked"], (LINES / 40) as u64, "{v:#}");

    // A receipt deleted behind the aggregator's back: the shipped ledger names it missing.
    let conn = rusqlite::Connection::open(data.join("fjord.db")).unwrap();
    let batch: String = conn
        .query_row(
            "SELECT batch_id FROM receipts ORDER BY id LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    conn.execute("DELETE FROM receipts WHERE batch_id = ?1", [&batch])
        .unwrap();
    drop(conn);
    let out = audit(&data, &["verify"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let t = text(&out);
    assert!(t.contains(&format!("MISSING   batch {batch}")), "{t}");
    assert!(t.contains("ROW DELETED"), "{t}");
}

/// Runs headless Chromium with `args` on `page` (a file), within 60 s; whether it exited 0.
fn chromium(dir: &Path, page: &Path, args: &[String]) -> bool {
    let mut child = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!(
            "--user-data-dir={}",
            dir.join("chromium-profile").display()
        ))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("run chromium");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.success();
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `audit report` over what a real agent shipped to a signing aggregator: the JSON form has
/// the figures, the HTML parses into every section with its table and the two charts, and
/// Debian's Chromium, headless, renders it to a screenshot and prints it to PDF (skipped,
/// saying so, where Chromium is not installed; CI installs it).
#[test]
fn compliance_report_renders_and_prints_in_a_real_browser() {
    let dir = test_dir();
    let (agg, key) = signing_aggregator(dir.path());
    let cfg = agent_config(dir.path(), &agg.url(), "max_batch_lines = 40");
    write_log(dir.path(), TOTAL);
    let agent = start_agent(dir.path(), &cfg);
    wait_for("every line stored", Duration::from_secs(60), || {
        agg.stored_records() == TOTAL as u64
    });
    wait_for("the ledger shipped", Duration::from_secs(30), || {
        agg.audit_agents()["agents"][0]["delivered_records"] == TOTAL as u64
    });
    assert_eq!(
        agg.query_jsonl(r#"{team="payments"} |= "declined""#, 1000)
            .len(),
        EMAILS as usize
    );
    assert_eq!(agent.terminate(), Some(0));
    let data = agg.data.clone();
    assert_eq!(agg.proc.terminate(), Some(0));
    let public = format!("{}.pub", key.display());
    let report = |format: &str, out: &Path| {
        let o = audit(
            &data,
            &[
                "report",
                "--format",
                format,
                "--team",
                "payments",
                "--public-key",
                &public,
                "--out",
                out.to_str().unwrap(),
            ],
        );
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        std::fs::read_to_string(out).unwrap()
    };

    let json: serde_json::Value =
        serde_json::from_str(&report("json", &dir.path().join("report.json"))).unwrap();
    assert_eq!(
        json["shipped"]["data"][0]["records"], TOTAL as u64,
        "{json:#}"
    );
    assert_eq!(json["shipped"]["data"][0]["jurisdiction"], "EEA");
    let redactions: u64 = json["redactions"]["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["count"].as_u64())
        .sum();
    assert_eq!(redactions, EMAILS + CARDS, "{json:#}");
    assert_eq!(json["integrity"]["data"]["ok"], true, "{json:#}");
    assert!(json["integrity"]["data"]["roots_verified"].as_u64() >= Some(1));
    assert_eq!(json["pii_scan"]["data"]["lines_matching"], 0);
    assert_eq!(json["access"]["data"][0]["endpoint"], "query_range");

    let md = report("md", &dir.path().join("report.md"));
    assert!(
        md.contains("## What left each pod, and where it went"),
        "{md}"
    );

    let page = dir.path().join("report.html");
    let html = report("html", &page);
    let doc = scraper::Html::parse_document(&html);
    let sel = |s: &str| scraper::Selector::parse(s).unwrap();
    for id in [
        "shipped",
        "received",
        "redactions",
        "integrity",
        "pii-scan",
        "access",
        "erasures",
        "losses",
    ] {
        let section = doc
            .select(&sel(&format!("section#{id}")))
            .next()
            .unwrap_or_else(|| panic!("no section {id}"));
        assert!(
            section.select(&sel("p.query code")).next().is_some(),
            "{id}: no query"
        );
    }
    for chart in ["#chart-shipped svg", "#chart-redactions svg"] {
        let svg = doc.select(&sel(chart)).next().expect(chart);
        assert!(svg.select(&sel("rect")).count() >= 2, "{chart}: no bars");
    }
    let rows = |s: &str| doc.select(&sel(&format!("section#{s} tbody tr"))).count();
    assert!(rows("shipped") >= 1 && rows("redactions") >= 2 && rows("access") >= 1);
    let integrity = doc.select(&sel("section#integrity")).next().unwrap();
    assert!(integrity.text().any(|t| t.contains("verified")));
    assert!(doc.select(&sel("script")).next().is_none());

    if Command::new("chromium").arg("--version").output().is_err() {
        eprintln!(
            "chromium not installed: the report's browser rendering is not tested (CI installs it)"
        );
        return;
    }
    let png = dir.path().join("report.png");
    assert!(chromium(
        dir.path(),
        &page,
        &[
            format!("--screenshot={}", png.display()),
            "--window-size=1200,2600".to_owned()
        ]
    ));
    let shot = std::fs::read(&png).expect("a screenshot");
    assert_eq!(&shot[..8], b"\x89PNG\r\n\x1a\n");
    // A blank page of that size compresses to a few KiB; text, tables and charts do not.
    assert!(shot.len() > 40_000, "screenshot of {} bytes", shot.len());
    let pdf = dir.path().join("report.pdf");
    assert!(chromium(
        dir.path(),
        &page,
        &[
            format!("--print-to-pdf={}", pdf.display()),
            "--no-pdf-header-footer".to_owned()
        ]
    ));
    let printed = std::fs::read(&pdf).expect("a PDF");
    assert!(printed.starts_with(b"%PDF-"), "not a PDF");
    assert!(printed.len() > 10_000, "PDF of {} bytes", printed.len());
}
