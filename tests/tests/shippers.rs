//! Real third-party shippers against the real aggregator: each ships N numbered lines with its
//! default settings (and winston-loki with JSON too), and every line must be stored exactly
//! once, under the token's team, with the labels the shipper set. The clients are installed
//! from npm into a cache directory (`fjord_e2e::clients`); Loki's protobuf push, which
//! Promtail, Alloy and winston-loki send by default, is what most of them speak.

use std::collections::BTreeSet;
use std::time::Duration;

use fjord_aggregator::server::auth::hash_token;
use fjord_e2e::clients::run_node;
use fjord_e2e::{test_dir, wait_for, writer, Aggregator};

const INGEST: &str = "tok-shippers-ingest";
const READ: &str = "tok-shippers-read";

fn start(dir: &std::path::Path) -> Aggregator {
    let config = format!(
        "[[token]]\nname = \"ingest\"\nsha256 = \"{}\"\nteam = \"payments\"\nrole = \"ingest\"\n\
         [[token]]\nname = \"read\"\nsha256 = \"{}\"\nteam = \"payments\"\nrole = \"read\"\n",
        hash_token(INGEST),
        hash_token(READ)
    );
    Aggregator::start_with_config(dir, &config)
}

/// The stored rows of `selector`, read back with the CLI and a read token.
fn stored(agg: &Aggregator, dir: &std::path::Path, selector: &str) -> Vec<serde_json::Value> {
    let token = dir.join("read.token");
    std::fs::write(&token, READ).unwrap();
    let out = agg.cli(&[
        "query",
        selector,
        "--since",
        "1h",
        "--limit",
        "100000",
        "--output",
        "jsonl",
        "--token-file",
        &token.display().to_string(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("jsonl row"))
        .collect()
}

/// Runs a client that ships `n` lines, then checks the stream `selector` holds each number
/// 1..=n once, and that every row carries `labels`.
fn ships_exactly_once(script: &str, extra: &[&str], selector: &str, labels: &[(&str, &str)]) {
    const N: u64 = 2_000;
    let dir = test_dir();
    let agg = start(dir.path());
    let url = agg.url();
    let n = N.to_string();
    let mut args = vec![url.as_str(), INGEST, n.as_str()];
    args.extend_from_slice(extra);
    let (code, stderr) = run_node(script, &args);
    assert_eq!(code, Some(0), "{script} {extra:?}: {stderr}");
    // The client has had every batch answered; the lines are committed.
    wait_for("all lines stored", Duration::from_secs(10), || {
        stored(&agg, dir.path(), selector).len() as u64 >= N
    });
    let rows = stored(&agg, dir.path(), selector);
    let seqs: Vec<u64> = rows
        .iter()
        .filter_map(|r| r["line"].as_str().and_then(writer::seq_of))
        .collect();
    writer::assert_exactly_once(&seqs, &(1..=N).collect::<BTreeSet<u64>>());
    for r in &rows {
        for (k, v) in labels {
            assert_eq!(r["labels"][k].as_str(), Some(*v), "{k} in {r}");
        }
    }
}

#[test]
fn winston_loki_protobuf_default() {
    ships_exactly_once(
        "winston.js",
        &["protobuf"],
        r#"{app="winston-protobuf"}"#,
        &[
            ("team", "payments"),
            ("app", "winston-protobuf"),
            ("level", "info"),
        ],
    );
}

#[test]
fn winston_loki_json() {
    ships_exactly_once(
        "winston.js",
        &["json"],
        r#"{app="winston-json"}"#,
        &[
            ("team", "payments"),
            ("app", "winston-json"),
            ("level", "info"),
        ],
    );
}

#[test]
fn pino_loki() {
    ships_exactly_once(
        "pino.js",
        &[],
        r#"{app="pino"}"#,
        &[("team", "payments"), ("app", "pino"), ("level", "info")],
    );
}

/// A shipper that retries a push it got no answer for (Promtail, Alloy) sends the same body
/// again without a batch id: the lines are stored once, as Loki stores them.
#[test]
fn a_retried_push_without_batch_id_is_stored_once() {
    use fjord_wire::{logproto, Entry, PushRequest, PushStream};
    let dir = test_dir();
    let agg = start(dir.path());
    let now = fjord_wire::clock::now_ns();
    let req = PushRequest {
        streams: vec![PushStream {
            stream: [("app".to_owned(), "promtail".to_owned())].into(),
            values: (1..=100u64)
                .map(|i| Entry::new(now + i as i64, format!("retried line seq={i:08}")))
                .collect(),
        }],
    };
    let body = logproto::encode(&req);
    let auth = format!("Bearer {INGEST}");
    let headers = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/x-protobuf"),
    ];
    for _ in 0..3 {
        let (status, text) =
            fjord_e2e::http_request(agg.addr, "POST", "/loki/api/v1/push", &headers, &body)
                .expect("push");
        assert_eq!(status, 204, "{text}");
    }
    let seqs: Vec<u64> = stored(&agg, dir.path(), r#"{app="promtail"}"#)
        .iter()
        .filter_map(|r| r["line"].as_str().and_then(writer::seq_of))
        .collect();
    writer::assert_exactly_once(&seqs, &(1..=100).collect::<BTreeSet<u64>>());
}
