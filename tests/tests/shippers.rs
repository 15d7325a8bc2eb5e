//! Real third-party shippers against the real aggregator: each ships N numbered lines with its
//! default settings (and winston-loki with JSON too, the OpenTelemetry SDK with gzip too), and
//! every line must be stored exactly once, under the token's team, with the labels the
//! shipper set. The clients are installed from npm and PyPI into a cache directory
//! (`fjord_e2e::clients`); Loki's protobuf push, which Promtail, Alloy and winston-loki send
//! by default, is what most of them speak, and OTLP/HTTP what the OpenTelemetry SDKs speak.

use std::collections::BTreeSet;
use std::time::Duration;

use fjord_aggregator::server::auth::hash_token;
use fjord_e2e::clients::{run_node, run_python};
use fjord_e2e::{http_request, percent_encode, test_dir, wait_for, writer, Aggregator};

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

/// Lines each client ships.
const N: u64 = 2_000;

/// Runs a client that ships `N` lines (`client` gets the aggregator's URL, the ingest token
/// and `N` as its first arguments and returns its exit status and stderr), then checks the
/// stream `selector` holds each number 1..=N once, and that every row carries `labels`.
/// Returns the aggregator, still running, and its directory.
fn ships_exactly_once(
    client: impl FnOnce(&[&str]) -> (Option<i32>, String),
    selector: &str,
    labels: &[(&str, &str)],
) -> (Aggregator, tempfile::TempDir) {
    let dir = test_dir();
    let agg = start(dir.path());
    let url = agg.url();
    let n = N.to_string();
    let (code, stderr) = client(&[url.as_str(), INGEST, n.as_str()]);
    assert_eq!(code, Some(0), "{selector}: {stderr}");
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
    (agg, dir)
}

/// `node <script> <args> <extra>`.
fn node<'a>(
    script: &'a str,
    extra: &'a [&'a str],
) -> impl FnOnce(&[&str]) -> (Option<i32>, String) + 'a {
    move |args| run_node(script, &[args, extra].concat())
}

#[test]
fn winston_loki_protobuf_default() {
    ships_exactly_once(
        node("winston.js", &["protobuf"]),
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
        node("winston.js", &["json"]),
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
        node("pino.js", &[]),
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

/// The labels every record of the OpenTelemetry client carries: the token's team and the
/// resource attributes Loki makes index labels.
const OTEL_LABELS: [(&str, &str); 3] = [
    ("team", "payments"),
    ("service_name", "otel-python"),
    ("service_namespace", "shop"),
];

/// `python otel_logs.py <args> <compression>` (tests/clients/python).
fn otel_python(compression: &'static str) -> impl FnOnce(&[&str]) -> (Option<i32>, String) {
    move |args| run_python("otel_logs.py", &[args, &[compression]].concat())
}

/// The OpenTelemetry Python SDK: `logging` through its LoggingHandler, BatchLogRecordProcessor
/// and OTLPLogExporter (protobuf, the SDK's default of no compression) to `/otlp/v1/logs`.
#[test]
fn otel_python_sdk_otlp_http() {
    ships_exactly_once(
        otel_python("none"),
        r#"{service_name="otel-python"}"#,
        &OTEL_LABELS,
    );
}

/// The same with the exporter's gzip compression.
#[test]
fn otel_python_sdk_otlp_http_gzip() {
    ships_exactly_once(
        otel_python("gzip"),
        r#"{service_name="otel-python"}"#,
        &OTEL_LABELS,
    );
}

/// The OpenTelemetry record's attributes, trace context, severity, scope and the resource
/// attributes that are not index labels come back as structured metadata: in Loki's default
/// response shape (no `X-Loki-Response-Encoding-Flags: categorize-labels`), merged into each
/// result's stream labels.
#[test]
fn otel_python_sdk_metadata_comes_back_in_query_results() {
    let (agg, _dir) = ships_exactly_once(
        otel_python("none"),
        r#"{service_name="otel-python"}"#,
        &OTEL_LABELS,
    );
    let now = fjord_wire::clock::now_ns();
    let path = format!(
        "/loki/api/v1/query_range?query={}&start={}&end={}&limit=10&direction=forward",
        percent_encode(r#"{service_name="otel-python"}"#),
        now - 3_600_000_000_000,
        now + 1_000_000_000
    );
    let auth = format!("Bearer {READ}");
    let (status, body) = http_request(
        agg.addr,
        "GET",
        &path,
        &[("Authorization", auth.as_str())],
        b"",
    )
    .expect("query_range");
    assert_eq!(status, 200, "{body}");
    let body: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    let result = body["data"]["result"].as_array().expect("streams");
    assert!(!result.is_empty(), "{body}");
    for stream in result {
        let labels = &stream["stream"];
        let line = stream["values"][0][1].as_str().unwrap_or_default();
        let seq = writer::seq_of(line).expect("a numbered line");
        for (k, v) in [
            ("service_name", "otel-python"),
            ("order_id", format!("ORD-{seq:06}").as_str()),
            ("trace_id", "5b8efff798038103d269b633813fc60c"),
            ("span_id", "eee19b7ec3c1b174"),
            ("severity_text", "INFO"),
            ("severity_number", "9"),
            ("scope_name", "fjord.e2e"),
            ("host_name", "test-host"),
        ] {
            assert_eq!(labels[k].as_str(), Some(v), "{k} in {stream}");
        }
    }
}
