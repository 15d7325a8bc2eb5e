//! The Loki query API as Grafana and logcli use it, in-process: the exact requests of
//! Grafana's data-source health check, Explore, the log-volume histogram, the label browser
//! and query stats; metric answers in Loki's shapes; GET and form POST; and, per endpoint, a
//! read token that sees only its own team.

use super::*;

pub(super) const S: i64 = 1_000_000_000;

/// A minute of JSON lines for payments (levels info/error, statuses) and one for search,
/// starting at `t0`, pushed with the admin token. Only search's stream has the label
/// `search_shard` and only its lines the field `search_hits`, so an answer that names no
/// label, field or line of search's still shows whether search's data went into it.
pub(super) async fn seed(app: &Router, t0: i64) {
    let pay: Vec<Entry> = (0..60)
        .map(|i| {
            let (level, status) = if i % 3 == 0 { ("error", 503) } else { ("info", 200) };
            Entry::new(
                t0 + i * S,
                format!(r#"{{"level":"{level}","status":{status},"latency":"{}ms","msg":"payment {i}"}}"#, 10 * i),
            )
        })
        .collect();
    let search: Vec<Entry> = (0..60)
        .map(|i| {
            Entry::new(
                t0 + i * S,
                format!(r#"{{"level":"error","status":500,"msg":"search {i}","search_hits":{i}}}"#),
            )
        })
        .collect();
    for (team, values) in [("payments", pay), ("search", search)] {
        push_admin(app, vec![team_stream(team, values)]).await;
    }
}

/// `team`'s stream as `seed` makes it, with `values`.
pub(super) fn team_stream(team: &str, values: Vec<Entry<'static>>) -> PushStream<'static> {
    let mut stream: BTreeMap<String, String> = [
        ("team".to_owned(), team.to_owned()),
        ("app".to_owned(), team.to_owned()),
    ]
    .into();
    if team == "search" {
        stream.insert("search_shard".to_owned(), "s1".to_owned());
    }
    PushStream { stream, values }
}

/// Pushes `streams` with the admin token; it must be stored.
pub(super) async fn push_admin(app: &Router, streams: Vec<PushStream<'static>>) {
    let req = PushRequest { streams };
    let (s, _, body) = send(app, push_as(json_push(&req), "identity", None, Some(ADMIN))).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{body}");
}

pub(super) fn setup() -> (tempfile::TempDir, Router, i64) {
    let dir = tempfile::tempdir().unwrap();
    let app = app(state_from(&with_tokens(config(dir.path()))));
    (dir, app, hour_ago())
}

/// Whole seconds, an hour ago: steps land on entries.
pub(super) fn hour_ago() -> i64 {
    (fjord_wire::clock::now_ns() / S - 3600) * S
}

pub(super) fn post_form(uri: &str, form: &str, token: &str) -> Request<Body> {
    Request::post(uri)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(form.to_owned()))
        .unwrap()
}

/// The sample values of a vector answer, by the value of `label`.
fn vector_by(body: &serde_json::Value, label: &str) -> BTreeMap<String, String> {
    assert_eq!(body["data"]["resultType"], "vector", "{body}");
    body["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["metric"][label].as_str().unwrap_or("").to_owned(),
                r["value"][1].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

use std::collections::BTreeMap;

#[tokio::test]
async fn grafana_health_check_explore_volume_and_label_browser() {
    let (_dir, app, t0) = setup();
    seed(&app, t0).await;
    let end = t0 + 60 * S;
    let (st, en) = (t0 / S, end / S);

    // Save & test (Grafana 10.2+): an instant `vector(1)+vector(1)`.
    let uri = format!(
        "/loki/api/v1/query?query={}&time={en}",
        enc("vector(1)+vector(1)")
    );
    let (s, _, body) = send(&app, get(&uri, Some(READ_PAY))).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "success");
    assert_eq!(body["data"]["resultType"], "vector");
    assert_eq!(
        body["data"]["result"],
        serde_json::json!([{"metric": {}, "value": [en, "2"]}])
    );
    assert!(body["data"]["stats"]["summary"].is_object());

    // A scalar answers a scalar.
    let uri = format!("/loki/api/v1/query?query={}&time={en}", enc("1 + 2 * 3"));
    let (_, _, body) = send(&app, get(&uri, Some(READ_PAY))).await;
    assert_eq!(body["data"]["resultType"], "scalar");
    assert_eq!(body["data"]["result"], serde_json::json!([en, "7"]));

    // Explore, logs: query_range with limit, direction and step as Grafana sends them.
    let uri = format!(
        "/loki/api/v1/query_range?direction=backward&end={end}&limit=5&query={}&start={t0}&step=1000ms",
        enc(r#"{app="payments"} |= "payment""#)
    );
    let (s, _, body) = send(&app, get(&uri, Some(READ_PAY))).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["resultType"], "streams");
    let values = body["data"]["result"][0]["values"].as_array().unwrap();
    assert_eq!(values.len(), 5);
    // Backward: newest first.
    assert_eq!(values[0][0], (t0 + 59 * S).to_string());

    // The SRE's query: json and a numeric label filter.
    let uri = format!(
        "/loki/api/v1/query_range?query={}&start={t0}&end={end}&limit=1000",
        enc(r#"{app="payments"} | json | status >= 500"#)
    );
    let (s, _, body) = send(&app, get(&uri, Some(READ_PAY))).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let result = body["data"]["result"].as_array().unwrap();
    let n: usize = result
        .iter()
        .map(|r| r["values"].as_array().unwrap().len())
        .sum();
    assert_eq!(n, 20);
    assert_eq!(result[0]["stream"]["level"], "error");
    assert_eq!(result[0]["stream"]["status"], "503");

    // The log-volume histogram: a range metric query, matrix per level.
    let q = r#"sum by (level) (count_over_time({app="payments"} | json | drop __error__, __error_details__ [10s]))"#;
    let uri = format!(
        "/loki/api/v1/query_range?query={}&start={}&end={}&step=10",
        enc(q),
        st + 10,
        en
    );
    let (s, _, body) = send(&app, get(&uri, Some(READ_PAY))).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["resultType"], "matrix");
    let result = body["data"]["result"].as_array().unwrap();
    assert_eq!(result.len(), 2, "{body}");
    let mut total = 0.0;
    for r in result {
        for v in r["values"].as_array().unwrap() {
            total += v[1].as_str().unwrap().parse::<f64>().unwrap();
        }
    }
    // Windows (t-10s, t] for t = t0+10 … t0+60 tile (t0, t0+60]: 59 entries (the one at t0
    // is outside the first window).
    assert_eq!(total, 59.0);

    // Grafana 11/12's own volume query (supportingQueryType=logsVolume): levels from stream
    // labels, errors dropped, the window of the step.
    let q = r#"sum by (level, detected_level) (count_over_time({app="payments"} | drop __error__[10s]))"#;
    let uri = format!(
        "/loki/api/v1/query_range?query={}&start={}&end={}&step=10000ms&supportingQueryType=logsVolume",
        enc(q),
        st + 10,
        en
    );
    let (s, _, body) = send(&app, get(&uri, Some(READ_PAY))).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["resultType"], "matrix");
    assert_eq!(body["data"]["result"][0]["metric"], serde_json::json!({}));
    assert_eq!(
        body["data"]["result"][0]["values"][0],
        serde_json::json!([st + 10, "10"])
    );

    // The same as an instant query: a vector.
    let q = r#"sum by (level) (count_over_time({app="payments"} | json [1m]))"#;
    let uri = format!("/loki/api/v1/query?query={}&time={}", enc(q), en);
    let (_, _, body) = send(&app, get(&uri, Some(READ_PAY))).await;
    let v = vector_by(&body, "level");
    // (t0, t0+60s]: the error line at t0 is outside.
    assert_eq!(v.get("error").map(String::as_str), Some("19"));
    assert_eq!(v.get("info").map(String::as_str), Some("40"));

    // Label browser: labels, values and series, GET and POST.
    let (s, _, body) = send(
        &app,
        get(
            &format!("/loki/api/v1/labels?start={t0}&end={end}"),
            Some(READ_PAY),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["data"], serde_json::json!(["app", "team"]));
    let (s, _, body) = send(
        &app,
        post_form(
            "/loki/api/v1/labels",
            &format!("start={t0}&end={end}"),
            READ_PAY,
        ),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["data"], serde_json::json!(["app", "team"]));
    let (_, _, body) = send(
        &app,
        get(
            &format!("/loki/api/v1/label/app/values?start={t0}&end={end}"),
            Some(READ_PAY),
        ),
    )
    .await;
    assert_eq!(body["data"], serde_json::json!(["payments"]));
    let form = format!("match[]={}&start={t0}&end={end}", enc(r#"{app=~".+"}"#));
    let (s, _, body) = send(&app, post_form("/loki/api/v1/series", &form, READ_PAY)).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["data"].as_array().unwrap().len(), 1);

    // Query stats (Grafana shows them above the query editor).
    let uri = format!(
        "/loki/api/v1/index/stats?query={}&start={t0}&end={end}",
        enc(r#"{app="payments"}"#)
    );
    let (s, _, body) = send(&app, get(&uri, Some(READ_PAY))).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["streams"], 1);
    assert_eq!(body["entries"], 60);
    assert!(body["bytes"].as_u64().unwrap() > 60 * 40);

    // A metric query by form POST.
    let form = format!(
        "query={}&start={}&end={}&step=30s",
        enc(r#"count_over_time({app="payments"}[30s])"#),
        st + 30,
        en
    );
    let (s, _, body) = send(&app, post_form("/loki/api/v1/query_range", &form, READ_PAY)).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(
        body["data"]["result"][0]["values"],
        serde_json::json!([[st + 30, "30"], [st + 60, "29"]])
    );
}

#[tokio::test]
async fn volume_buildinfo_format_detected_and_ready() {
    let (_dir, app, t0) = setup();
    seed(&app, t0).await;
    let end = t0 + 60 * S;
    let sel = enc(r#"{app="payments"}"#);
    let (s, _, body) = send(
        &app,
        get(
            &format!("/loki/api/v1/index/volume?query={sel}&start={t0}&end={end}"),
            Some(READ_PAY),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["resultType"], "vector");
    assert_eq!(
        body["data"]["result"][0]["metric"],
        serde_json::json!({"app": "payments"})
    );
    let uri = format!("/loki/api/v1/index/volume_range?query={sel}&start={t0}&end={end}&step=60&targetLabels=team");
    let (s, _, body) = send(&app, get(&uri, Some(READ_PAY))).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["resultType"], "matrix");
    assert_eq!(
        body["data"]["result"][0]["metric"],
        serde_json::json!({"team": "payments"})
    );

    let (s, _, body) = send(&app, get("/loki/api/v1/status/buildinfo", None)).await;
    assert_eq!(s, StatusCode::OK);
    assert!(body["version"].is_string());

    let uri = format!(
        "/loki/api/v1/format_query?query={}",
        enc(r#"sum(rate({app="x"}|="a"[1m]))by(level)"#)
    );
    let (s, _, body) = send(&app, get(&uri, Some(READ_PAY))).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(
        body["data"],
        r#"sum by (level) (rate({app="x"} |= "a" [1m]))"#
    );

    let uri = format!("/loki/api/v1/detected_labels?query={sel}&start={t0}&end={end}");
    let (s, _, body) = send(&app, get(&uri, Some(READ_PAY))).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(
        body["detectedLabels"],
        serde_json::json!([{"label": "app", "cardinality": 1}, {"label": "team", "cardinality": 1}])
    );
    let uri = format!("/loki/api/v1/detected_fields?query={sel}&start={t0}&end={end}");
    let (s, _, body) = send(&app, get(&uri, Some(READ_PAY))).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let fields = body["fields"].as_array().unwrap();
    let level = fields.iter().find(|f| f["label"] == "level").unwrap();
    assert_eq!(level["cardinality"], 2);
    assert_eq!(level["parsers"], serde_json::json!(["json"]));
    assert_eq!(
        fields.iter().find(|f| f["label"] == "status").unwrap()["type"],
        "int"
    );
    assert_eq!(
        fields.iter().find(|f| f["label"] == "latency").unwrap()["type"],
        "duration"
    );

    let (s, _, _) = send(&app, get("/ready", None)).await;
    assert_eq!(s, StatusCode::OK);
}

/// Naming another team is refused (403) in every query form, and an ingest token reads
/// nothing.
#[tokio::test]
async fn naming_another_team_is_refused_in_every_query_form() {
    let (_dir, app, t0) = setup();
    seed(&app, t0).await;
    let end = t0 + 60 * S;
    let en = end / S;
    for q in [
        r#"{team="search"}"#,
        r#"count_over_time({team="search"}[1m])"#,
        r#"vector(1) + count_over_time({team="search"}[1m])"#,
    ] {
        let uri = format!("/loki/api/v1/query?query={}&time={en}", enc(q));
        let (s, _, body) = send(&app, get(&uri, Some(READ_PAY))).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{q}: {body}");
    }
    for ep in [
        "index/stats",
        "index/volume",
        "index/volume_range",
        "detected_fields",
    ] {
        let uri = format!(
            "/loki/api/v1/{ep}?query={}&start={t0}&end={end}&step=60",
            enc(r#"{team="search"}"#)
        );
        let (s, _, body) = send(&app, get(&uri, Some(READ_PAY))).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{ep}: {body}");
    }
    let uri = format!(
        "/loki/api/v1/query?query={}&time={en}",
        enc(r#"count_over_time({app=~".+"}[1m])"#)
    );
    let (s, _, _) = send(&app, get(&uri, Some(INGEST_PAY))).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn metric_limits_answer_400_with_a_reason() {
    let (_dir, app, t0) = setup();
    seed(&app, t0).await;
    let q = enc(r#"count_over_time({app="payments"}[1m])"#);
    let cases = [
        (
            format!("/loki/api/v1/query_range?query={q}&start=0&end=100000&step=1"),
            "maximum resolution",
        ),
        (
            format!("/loki/api/v1/query_range?query={q}&start=0&end=10000000&step=3600"),
            "time range exceeds",
        ),
        (
            format!("/loki/api/v1/query_range?query={q}&start=0&end=100&step=abc"),
            "step",
        ),
        (
            format!(
                "/loki/api/v1/query_range?query={}&start=0&end=10000000",
                enc(r#"{app="payments"}"#)
            ),
            "time range exceeds",
        ),
        (
            format!(
                "/loki/api/v1/query?query={}",
                enc(r#"sum(count_over_time({app="payments"}[1m])"#)
            ),
            "parse error at line 1, col",
        ),
        (
            format!(
                "/loki/api/v1/query?query={}",
                enc(&format!("{{app=\"payments\"}}{}", " |~ \"a\"".repeat(20)))
            ),
            "regular expressions",
        ),
        (
            format!(
                "/loki/api/v1/query?query={}",
                enc(r#"sum_over_time({app="payments"} | json | unwrap msg [1h])"#)
            ),
            "pipeline error",
        ),
        (
            format!(
                "/loki/api/v1/query?query={}",
                enc(r#"{app="payments"} | line_format "{{ range . }}x{{ end }}""#)
            ),
            "not supported",
        ),
    ];
    for (uri, reason) in &cases {
        let (s, _, body) = send(&app, get(uri, Some(READ_PAY))).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{uri}: {body}");
        assert!(
            body.to_string().contains(reason),
            "{uri}: want {reason:?}, got {body}"
        );
    }
    // 501 streams: one series too many for a metric query, not for a sum over them.
    let streams = (0..501)
        .map(|i| PushStream {
            stream: [
                ("team".to_owned(), "payments".to_owned()),
                ("pod".to_owned(), format!("pod-{i}")),
            ]
            .into(),
            values: vec![Entry::new(t0 + S, "x")],
        })
        .collect();
    push_admin(&app, streams).await;
    let at = (t0 + 2 * S) / S;
    let uri = format!(
        "/loki/api/v1/query?time={at}&query={}",
        enc(r#"count_over_time({pod=~"pod-.*"}[1m])"#)
    );
    let (s, _, body) = send(&app, get(&uri, Some(READ_PAY))).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body.to_string().contains("maximum of series (500)"),
        "{body}"
    );
    let uri = format!(
        "/loki/api/v1/query?time={at}&query={}",
        enc(r#"sum(count_over_time({pod=~"pod-.*"}[1m]))"#)
    );
    let (s, _, body) = send(&app, get(&uri, Some(READ_PAY))).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["result"][0]["value"][1], "501");
}

/// A query that runs past `query_timeout` is stopped and answered 400 with the reason, log
/// and metric queries alike, and the server goes on answering. The queries are hostile: a
/// template that doubles each line up to the 64 KiB output limit, stage after stage, and a
/// regex run over the result, with a filter that drops every line at the end, so that a log
/// query's limit never ends the scan early. Without the timeout the log query works for about
/// 14 s over these lines (measured in a debug build); the timeout is 200 ms. Nothing here
/// times how fast: the outer timeout only turns a hang into a failure.
#[tokio::test]
async fn queries_past_the_query_timeout_are_stopped_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = with_tokens(config(dir.path()));
    cfg.read_limits.query_timeout = std::time::Duration::from_millis(200);
    let app = app(state_from(&cfg));
    let t0 = hour_ago();
    let values = (0..100_000)
        .map(|i| Entry::new(t0 + i * 1000, format!("payment {i} declined amount=4711")))
        .collect();
    push_admin(&app, vec![team_stream("payments", values)]).await;

    let hostile = format!(
        r#"{{team="payments"}}{} |~ "(a|b|c|d)*(e|f){{8}}x" |= "no-such-needle""#,
        r#" | line_format "{{__line__}}{{__line__}}""#.repeat(32)
    );
    let end = t0 + 60 * S;
    let cases = [
        format!(
            "/loki/api/v1/query_range?query={}&start={t0}&end={end}&limit=10",
            enc(&hostile)
        ),
        format!(
            "/loki/api/v1/query?query={}&time={end}",
            enc(&format!("sum(count_over_time({hostile} [1h]))"))
        ),
    ];
    for uri in &cases {
        let (s, _, body) = tokio::time::timeout(
            std::time::Duration::from_secs(120),
            send(&app, get(uri, Some(READ_PAY))),
        )
        .await
        .expect("the query is stopped, not left running");
        assert_eq!(s, StatusCode::BAD_REQUEST, "{uri}: {body}");
        let reason = body.to_string();
        assert!(
            reason.contains("ran longer than 200ms (query_timeout)"),
            "{uri}: {reason}"
        );
    }
    // The server answers the next query.
    let uri = format!(
        "/loki/api/v1/query?query={}&time={end}",
        enc(r#"count_over_time({team="payments"} |= "payment 9999 " [1h])"#)
    );
    let (s, _, body) = send(&app, get(&uri, Some(READ_PAY))).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["result"][0]["value"][1], "1", "{body}");
}

#[tokio::test]
async fn ready_fails_while_the_store_is_unusable() {
    // The damage below is SQLite's (its file deleted); a PostgreSQL store that goes away is
    // tests/tests/postgres.rs's postgres_restarted_mid_ingest_loses_nothing_acknowledged.
    if std::env::var("FJORD_TEST_BACKEND").as_deref() == Ok("postgres") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let st = state(dir.path());
    let app = app(st.clone());
    // The database file gone under a running server: a new read connection finds no schema.
    for ext in ["db", "db-wal", "db-shm"] {
        let _ = std::fs::remove_file(st.store.path().with_extension(ext));
    }
    let (s, _, body) = send(&app, get("/ready", None)).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{body}");
}
