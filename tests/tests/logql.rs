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

/// Grafana's own LogQL grammar (`@grafana/lezer-logql`, pinned by tests/logql-oracle's lock
/// file and installed into the cache by `fjord_e2e::clients`) as an independent judge: every query it refuses, fjord refuses; every
/// query it takes, fjord takes, except those fjord refuses on grounds a grammar cannot see
/// (marked `semantic`: a selector matching everything, a missing unwrap, …).
#[test]
fn grafana_lezer_grammar_agrees_on_what_parses() {
    let dir = fjord_e2e::clients::npm_dir("logql-oracle");
    // (query, semantic): `semantic` = lezer parses it, fjord refuses it by design.
    let cases: &[(&str, bool)] = &[
        (r#"{app="payment"}"#, false),
        (r#"{app="a", env!="dev", pod=~"p.*", c!~"x"}"#, false),
        (r#"{app="a"} |= "err" != "warn" |~ "x\\d" !~ "y""#, false),
        (r#"{app="a"} |= "a" or "b""#, false),
        (r#"{app="a"} |> "<_> error <_>" !> "<_> debug""#, false),
        (r#"{app="a"} | json"#, false),
        (r#"{app="a"} | json first="a.b", second="c[0]""#, false),
        (r#"{app="a"} | logfmt --strict --keep-empty"#, false),
        (r#"{app="a"} | regexp "(?P<method>\\w+)""#, false),
        (r#"{app="a"} | pattern "<ip> - <_>""#, false),
        (r#"{app="a"} | unpack"#, false),
        (r#"{app="payment"} | json | status >= 500"#, false),
        (
            r#"{a="b"} | logfmt | duration >= 20ms or method="GET" and size <= 20KB"#,
            false,
        ),
        (
            r#"{a="b"} | logfmt | (duration >= 20ms or method="GET") and size <= 20KB"#,
            false,
        ),
        (r#"{a="b"} | logfmt | level="error", status != 200"#, false),
        (r#"{a="b"} | json | __error__="""#, false),
        (
            r#"{a="b"} | line_format "{{.status}} {{ .msg | ToUpper }}""#,
            false,
        ),
        (
            r#"{a="b"} | label_format dst=src, lvl="{{ .level | ToLower }}""#,
            false,
        ),
        (
            r#"{a="b"} | drop level, method="GET" | keep app | decolorize"#,
            false,
        ),
        (r#"count_over_time({a="b"}[5m])"#, false),
        (r#"rate({a="b"} |= "x" [1m] offset 1h)"#, false),
        (r#"bytes_over_time({a="b"}[1h30m])"#, false),
        (r#"absent_over_time({a="b"}[5m])"#, false),
        (
            r#"sum_over_time({a="b"} | logfmt | unwrap bytes(size) | __error__="" [5m]) by (host)"#,
            false,
        ),
        (
            r#"quantile_over_time(0.99, {a="b"} | json | unwrap duration(latency) [5m]) by (path)"#,
            false,
        ),
        (r#"sum by (level) (count_over_time({a="b"}[1m]))"#, false),
        (r#"sum(count_over_time({a="b"}[1m])) without (pod)"#, false),
        (r#"topk(3, rate({a="b"}[1m]))"#, false),
        (r#"sort_desc(rate({a="b"}[1m]))"#, false),
        ("vector(1)+vector(1)", false),
        ("1 + 2 * 3", false),
        ("1 == bool 1", false),
        (
            r#"rate({a="b"}[1m]) > 10 and rate({a="c"}[1m]) or vector(0)"#,
            false,
        ),
        (
            r#"sum by (a) (rate({a="b"}[1m])) / on (a) group_left (c) sum by (a, c) (rate({a="b"}[1m]))"#,
            false,
        ),
        (
            r#"label_replace(rate({a="b"}[1m]), "dst", "$1", "src", "(.*)")"#,
            false,
        ),
        (
            r#"avg(rate(({job="nginx"} |= "GET")[10s])) by (region)"#,
            false,
        ),
        (
            r#"quantile_over_time(0.99, {cluster="ops-tools1",container="ingress-nginx"} | json | __error__ = "" | unwrap request_time [1m]) by (path)"#,
            false,
        ),
        (
            r#"{cluster="ops-tools1", job="q"} |= "metrics.go" !="out of order" | logfmt | duration > 30s or status_code!="200""#,
            false,
        ),
        (
            r#"{job="loki"} | logfmt | line_format "{{.ts}} {{ .level | ToUpper }}" | label_format foo=bar"#,
            false,
        ),
        (
            r#"max_over_time({job="varlogs"} | logfmt | unwrap duration_seconds(took) [1m]) by (host)"#,
            false,
        ),
        (r#"sum(count_over_time({foo="bar"}[1m])) > bool 10"#, false),
        (r#"count_over_time({a="b"}[5m] offset 1h)"#, false),
        (r#"{a="b"} | json | keep a, b="c""#, false),
        (r#"{}"#, false),
        (r#"{app=~".*"}"#, true),
        (r#"sum_over_time({app="x"}[5m])"#, true),
        ("1 > 2", true),
        // Refused by both.
        (r#"app="x""#, false),
        (r#"{app="x""#, false),
        (r#"{app=="x"}"#, false),
        (r#"{app="x"} |= error"#, false),
        (r#"{app="x"} | json | status >= "#, false),
        ("count_over_time({app=\"x\"})", false),
        ("vector(1) +", false),
        ("sum(count_over_time({a=\"b\"}[5m])", false),
    ];
    let queries: Vec<&str> = cases.iter().map(|c| c.0).collect();
    let mut child = std::process::Command::new("node")
        .arg(dir.join("check.cjs"))
        .current_dir(&dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run node");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin
            .write_all(serde_json::to_string(&queries).unwrap().as_bytes())
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "node failed");
    let lezer: Vec<bool> = serde_json::from_slice(&out.stdout).unwrap();
    for ((q, semantic), lezer_ok) in cases.iter().zip(lezer) {
        let fjord_ok = fjord_aggregator::logql::plan(q).is_ok();
        if *semantic {
            assert!(
                lezer_ok && !fjord_ok,
                "{q}: lezer {lezer_ok}, fjord {fjord_ok}"
            );
        } else {
            assert_eq!(
                fjord_ok, lezer_ok,
                "{q}: lezer {lezer_ok}, fjord {fjord_ok}"
            );
        }
    }
}

/// `query` prints the newest lines first, as logcli does; `--forward` the oldest first.
#[test]
fn cli_query_prints_newest_first_unless_forward() {
    let dir = test_dir();
    let agg = Aggregator::start(dir.path());
    let t0 = (fjord_wire::clock::now_ns() / S - 60) * S;
    let values: Vec<serde_json::Value> = (0..5)
        .map(|i| serde_json::json!([(t0 + i * S).to_string(), format!("line {i}")]))
        .collect();
    let body = serde_json::json!({"streams": [{"stream": {"team": "payments"}, "values": values}]});
    let (status, _) = http_request(
        agg.addr,
        "POST",
        "/loki/api/v1/push",
        &[("Content-Type", "application/json")],
        body.to_string().as_bytes(),
    )
    .unwrap();
    assert_eq!(status, 204);
    let lines = |extra: &[&str]| -> Vec<String> {
        let mut args = vec![
            "query",
            r#"{team="payments"}"#,
            "--since",
            "1h",
            "--limit",
            "3",
            "--output",
            "raw",
        ];
        args.extend_from_slice(extra);
        let out = agg.cli(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(lines(&[]), ["line 4", "line 3", "line 2"]);
    assert_eq!(lines(&["--forward"]), ["line 0", "line 1", "line 2"]);
}
