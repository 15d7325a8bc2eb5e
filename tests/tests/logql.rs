//! LogQL end to end: the real aggregator binary answers a metric query over HTTP (the
//! request Grafana's data-source health check sends) and through its own CLI, which prints a
//! metric query as a table (text) or as rows (jsonl).

use fjord_e2e::{http_get, http_request, test_dir, Aggregator};

const S: i64 = 1_000_000_000;

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[test]
fn metric_queries_over_http_and_the_cli() {
    let dir = test_dir();
    let agg = Aggregator::start(dir.path());
    let now = fjord_wire::clock::now_ns();
    let t0 = (now / S - 600) * S;
    let values: Vec<serde_json::Value> = (0..30)
        .map(|i| {
            let level = if i % 3 == 0 { "error" } else { "info" };
            serde_json::json!([
                (t0 + i * S).to_string(),
                format!(r#"{{"level":"{level}","i":{i}}}"#)
            ])
        })
        .collect();
    let body = serde_json::json!({"streams": [{"stream": {"team": "payments", "app": "pay"}, "values": values}]});
    let (status, text) = http_request(
        agg.addr,
        "POST",
        "/loki/api/v1/push",
        &[("Content-Type", "application/json")],
        body.to_string().as_bytes(),
    )
    .unwrap();
    assert_eq!(status, 204, "{text}");

    // Grafana's Save & test.
    let (status, text) = http_get(
        agg.addr,
        &format!("/loki/api/v1/query?query={}", enc("vector(1)+vector(1)")),
    )
    .unwrap();
    assert_eq!(status, 200, "{text}");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["data"]["resultType"], "vector");
    assert_eq!(v["data"]["result"][0]["value"][1], "2");

    let q = r#"sum by (level) (count_over_time({team="payments"} | json [1h]))"#;
    let out = agg.cli(&[
        "query", q, "--since", "30m", "--step", "30m", "--output", "jsonl",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let value = |level: &str| {
        rows.iter()
            .filter(|r| r["labels"]["level"] == level)
            .map(|r| r["value"].as_str().unwrap().parse::<f64>().unwrap())
            .fold(0.0, f64::max)
    };
    assert_eq!(value("error"), 10.0, "{rows:?}");
    assert_eq!(value("info"), 20.0, "{rows:?}");

    let out = agg.cli(&["query", q, "--since", "30m", "--step", "30m"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("TIME"), "{text}");
    assert!(text.contains(r#"{level="error"}"#), "{text}");

    // A malformed query is a usage error naming the position, not a crash.
    let out = agg.cli(&[
        "query",
        "sum(count_over_time({team=\"payments\"}[5m])",
        "--since",
        "30m",
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("line 1, col"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
