//! In-process tests of the router with `oneshot`, against a real SQLite store in a temp dir;
//! the live tail over a real socket with a real WebSocket client.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::{to_bytes, Body};
use axum::http::{self, Request, StatusCode};
use fjord_wire::{codec, Entry, PushRequest, PushStream};
use tower::ServiceExt;

use super::auth::{hash_token, Role, Token};
use super::*;
use crate::config::ServeConfig;

const INGEST_PAY: &str = "tok-ingest-payments";
const INGEST_SEARCH: &str = "tok-ingest-search";
const READ_PAY: &str = "tok-read-payments";
const ADMIN: &str = "tok-admin";

fn config(dir: &std::path::Path) -> ServeConfig {
    let mut cfg = ServeConfig::with_data_dir(dir);
    cfg.info.region = "eu-north-1".into();
    cfg.info.jurisdiction = "EEA".into();
    cfg.info.version = "test".into();
    cfg.ingest_concurrency = 2;
    cfg.ingest_queue = 0;
    cfg.max_query_lines = 1000;
    cfg
}

fn with_tokens(mut cfg: ServeConfig) -> ServeConfig {
    let tok = |name: &str, secret: &str, team: Option<&str>, role| Token {
        name: name.into(),
        hash: hex::decode(hash_token(secret)).unwrap().try_into().unwrap(),
        team: team.map(Into::into),
        role,
    };
    cfg.tokens = vec![
        tok("pay-in", INGEST_PAY, Some("payments"), Role::Ingest),
        tok("search-in", INGEST_SEARCH, Some("search"), Role::Ingest),
        tok("pay-read", READ_PAY, Some("payments"), Role::Read),
        tok("root", ADMIN, None, Role::Admin),
    ];
    cfg
}

fn state_from(cfg: &ServeConfig) -> Arc<AppState> {
    Arc::new(AppState::new(
        Arc::new(crate::store::testing::open_store(&cfg.data_dir)),
        cfg,
        CancellationToken::new(),
    ))
}

/// The store's per-team totals, read off the async runtime as the server reads them.
async fn stats(st: &Arc<AppState>, team: Option<&str>) -> Vec<crate::store::TeamStats> {
    let (store, team) = (st.store.clone(), team.map(str::to_owned));
    tokio::task::spawn_blocking(move || store.stats(team.as_deref()).unwrap())
        .await
        .unwrap()
}

fn state(dir: &std::path::Path) -> Arc<AppState> {
    state_from(&config(dir))
}

fn sample(now: i64) -> PushRequest<'static> {
    PushRequest {
        streams: vec![PushStream {
            stream: [
                ("team".to_owned(), "payments".to_owned()),
                ("file".to_owned(), "/a.log".to_owned()),
            ]
            .into(),
            values: vec![
                Entry::new(now, "payment declined id=1"),
                Entry::new(now + 1, "payment ok id=2"),
            ],
        }],
    }
}

async fn send(
    app: &Router,
    req: Request<Body>,
) -> (StatusCode, http::HeaderMap, serde_json::Value) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = to_bytes(resp.into_body(), usize::MAX).await.unwrap();
    let json = if bytes.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::String(
            String::from_utf8_lossy(&bytes).into(),
        ))
    };
    (status, headers, json)
}

fn push_req(body: Vec<u8>, encoding: &str, batch: Option<&str>) -> Request<Body> {
    push_as(body, encoding, batch, None)
}

fn push_as(
    body: Vec<u8>,
    encoding: &str,
    batch: Option<&str>,
    token: Option<&str>,
) -> Request<Body> {
    let mut b = Request::post("/loki/api/v1/push")
        .header("content-type", "application/json")
        .header("content-encoding", encoding);
    if let Some(id) = batch {
        b = b.header("fjord-batch-id", id);
    }
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    b.body(Body::from(body)).unwrap()
}

fn json_push(req: &PushRequest) -> Vec<u8> {
    serde_json::to_vec(req).unwrap()
}

fn get(uri: &str, token: Option<&str>) -> Request<Body> {
    let mut b = Request::get(uri);
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    b.body(Body::empty()).unwrap()
}

/// Percent-encodes a query-string value.
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

fn range_uri(q: &str, start: i64, end: i64) -> String {
    format!(
        "/loki/api/v1/query_range?query={}&limit=100&direction=forward&start={start}&end={end}",
        enc(q)
    )
}

fn all_lines(body: &serde_json::Value) -> Vec<String> {
    let mut v: Vec<String> = body["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["values"].as_array().unwrap().iter())
        .map(|e| e[1].as_str().unwrap().to_owned())
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn push_duplicate_and_query_in_loki_shape() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(state(dir.path()));
    let now = fjord_wire::clock::now_ns();
    let enc_body = codec::encode_zstd(&sample(now), 3).unwrap();

    let (s, _, _) = send(&app, push_req(enc_body.body.clone(), "zstd", Some("b-1"))).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _, body) = send(&app, push_req(enc_body.body.clone(), "zstd", Some("b-1"))).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(body, serde_json::json!({"status": "duplicate"}));

    let uri = range_uri(r#"{team="payments"} |= "declined""#, now - 1000, now + 1000);
    let (s, _, body) = send(&app, get(&uri, None)).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    // Loki's documented shape: status, data.resultType, data.result[].stream/values, stats.
    assert_eq!(body["status"], "success");
    assert_eq!(body["data"]["resultType"], "streams");
    assert!(body["data"]["stats"].is_object());
    let result = body["data"]["result"].as_array().unwrap();
    assert_eq!(result.len(), 1);
    assert_eq!(result[0]["stream"]["team"], "payments");
    assert_eq!(
        result[0]["values"],
        serde_json::json!([[now.to_string(), "payment declined id=1"]])
    );
}

#[tokio::test]
async fn time_parameters_accept_loki_formats() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(state(dir.path()));
    let now = fjord_wire::clock::now_ns();
    let (s, _, _) = send(&app, push_req(json_push(&sample(now)), "identity", None)).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let secs = now / 1_000_000_000;
    let rfc = |ns: i64| fjord_wire::clock::format_ns(ns);
    for (start, end) in [
        ((now - 1000).to_string(), (now + 1000).to_string()),
        (format!("{}.5", secs - 1), format!("{}.0", secs + 1)),
        (rfc(now - 1_000_000_000), rfc(now + 1_000_000_000)),
    ] {
        let uri = format!(
            "/loki/api/v1/query_range?query={}&start={}&end={}",
            enc(r#"{team="payments"}"#),
            enc(&start),
            enc(&end)
        );
        let (s, _, body) = send(&app, get(&uri, None)).await;
        assert_eq!(s, StatusCode::OK, "{start}: {body}");
        assert_eq!(all_lines(&body).len(), 2, "{start}..{end}");
    }
    // Backward (Loki's default) with limit 1 picks the newest.
    let uri = format!(
        "/loki/api/v1/query_range?query={}&limit=1&since=1h",
        enc(r#"{team="payments"}"#)
    );
    let (_, _, body) = send(&app, get(&uri, None)).await;
    assert_eq!(all_lines(&body), vec!["payment ok id=2"]);
    // The instant query answers streams too.
    let uri = format!(
        "/loki/api/v1/query?query={}&time={}",
        enc(r#"{file="/a.log"} != "ok""#),
        now + 10
    );
    let (s, _, body) = send(&app, get(&uri, None)).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["resultType"], "streams");
    assert_eq!(all_lines(&body), vec!["payment declined id=1"]);
}

#[tokio::test]
async fn labels_values_and_series_in_loki_shape() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(state(dir.path()));
    let now = fjord_wire::clock::now_ns();
    let mut req = sample(now);
    req.streams.push(PushStream {
        stream: [
            ("team".to_owned(), "payments".to_owned()),
            ("file".to_owned(), "/b.log".to_owned()),
            ("pod".to_owned(), "pay-1".to_owned()),
        ]
        .into(),
        values: vec![Entry::new(now, "x")],
    });
    let (s, _, _) = send(&app, push_req(json_push(&req), "identity", None)).await;
    assert_eq!(s, StatusCode::NO_CONTENT);

    // Grafana's data source test: no parameters at all.
    let (s, _, body) = send(&app, get("/loki/api/v1/labels", None)).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        body,
        serde_json::json!({"status":"success","data":["file","pod","team"]})
    );
    let uri = format!(
        "/loki/api/v1/labels?start={}&end={}",
        now - 1_000_000,
        now + 1_000_000
    );
    let (_, _, body) = send(&app, get(&uri, None)).await;
    assert_eq!(body["data"], serde_json::json!(["file", "pod", "team"]));
    let (_, _, body) = send(&app, get("/loki/api/v1/label/file/values", None)).await;
    assert_eq!(
        body,
        serde_json::json!({"status":"success","data":["/a.log","/b.log"]})
    );
    let uri = format!(
        "/loki/api/v1/label/file/values?query={}",
        enc(r#"{pod="pay-1"}"#)
    );
    let (_, _, body) = send(&app, get(&uri, None)).await;
    assert_eq!(body["data"], serde_json::json!(["/b.log"]));
    // Outside the range there is nothing.
    let (_, _, body) = send(&app, get("/loki/api/v1/labels?start=1&end=2", None)).await;
    assert_eq!(body["data"], serde_json::json!([]));

    let uri = format!(
        "/loki/api/v1/series?match[]={}&match[]={}",
        enc(r#"{file="/a.log"}"#),
        enc(r#"{pod=~"pay.*"}"#)
    );
    let (s, _, body) = send(&app, get(&uri, None)).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        serde_json::json!({"status":"success","data":[
            {"file":"/a.log","team":"payments"},
            {"file":"/b.log","pod":"pay-1","team":"payments"}
        ]})
    );
    let (s, _, body) = send(&app, get("/loki/api/v1/series", None)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    let (s, _, _) = send(&app, get("/loki/api/v1/label/bad-name/values", None)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn bad_input_gets_4xx_with_json_reason() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(state(dir.path()));
    let bomb = zstd::bulk::compress(
        &vec![b' '; fjord_wire::limits::MAX_DECOMPRESSED_BYTES + 10],
        3,
    )
    .unwrap();
    let cases: Vec<(Request<Body>, StatusCode, &str)> = vec![
        (
            push_req(b"{not json".to_vec(), "identity", None),
            StatusCode::BAD_REQUEST,
            "malformed push body at line 1",
        ),
        (
            push_req(b"garbage".to_vec(), "zstd", None),
            StatusCode::BAD_REQUEST,
            "not valid zstd",
        ),
        (
            push_req(b"{}".to_vec(), "br", None),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported content-encoding",
        ),
        (
            push_req(bomb, "zstd", None),
            StatusCode::PAYLOAD_TOO_LARGE,
            "decompressed body exceeds",
        ),
        (
            push_req(
                vec![b' '; fjord_wire::limits::MAX_BODY_BYTES + 1],
                "identity",
                None,
            ),
            StatusCode::PAYLOAD_TOO_LARGE,
            "request body exceeds",
        ),
        (
            push_req(b"{\"streams\":[]}".to_vec(), "identity", Some("has space")),
            StatusCode::BAD_REQUEST,
            "fjord-batch-id",
        ),
        (
            get("/loki/api/v1/query_range?query=%7Bteam%3D%22x%22", None),
            StatusCode::BAD_REQUEST,
            "parse error at line 1, col 10",
        ),
        (
            get("/loki/api/v1/query_range", None),
            StatusCode::BAD_REQUEST,
            "missing parameter",
        ),
        (
            get(
                "/loki/api/v1/query_range?query=%7Bteam%3D%22x%22%7D&limit=5000",
                None,
            ),
            StatusCode::BAD_REQUEST,
            "max entries limit",
        ),
        (
            get(
                "/loki/api/v1/query_range?query=%7Bteam%3D%22x%22%7D&start=tomorrow",
                None,
            ),
            StatusCode::BAD_REQUEST,
            "start: cannot parse time",
        ),
        (
            get(
                "/loki/api/v1/query_range?query=%7Bteam%3D%22x%22%7D&direction=up",
                None,
            ),
            StatusCode::BAD_REQUEST,
            "direction",
        ),
        (
            get("/loki/api/v1/tail?query=%7Bteam%3D%22x%22%7D", None),
            StatusCode::BAD_REQUEST,
            "WebSocket",
        ),
    ];
    for (req, want_status, want_reason) in cases {
        let uri = req.uri().clone();
        let (s, _, body) = send(&app, req).await;
        assert_eq!(s, want_status, "{uri}: {body}");
        assert_eq!(body["status"], "error", "{uri}: {body}");
        let reason = body["error"].as_str().unwrap();
        assert!(reason.contains(want_reason), "{uri}: {reason}");
    }
    // Nothing was stored by any of them.
    assert!(Store::open(dir.path())
        .unwrap()
        .stats(None)
        .unwrap()
        .is_empty());
}

/// Every ingest limit: a 4xx naming the limit, and nothing stored.
#[tokio::test]
async fn each_ingest_limit_refuses_the_whole_push() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.limits.max_body_bytes = 64 * 1024;
    cfg.limits.max_decompressed_bytes = 32 * 1024;
    cfg.limits.max_line_bytes = 100;
    cfg.limits.max_labels_per_stream = 3;
    cfg.limits.max_label_name_bytes = 10;
    cfg.limits.max_label_value_bytes = 20;
    let st = state_from(&cfg);
    let app = app(st.clone());
    let now = fjord_wire::clock::now_ns();
    let with = |labels: &[(&str, &str)], line: &str, ts: i64| PushRequest {
        streams: vec![PushStream {
            stream: labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            values: vec![Entry::new(now, "fine"), Entry::new(ts, line)],
        }],
    };
    let ok_labels = [("team", "payments")];
    let big_json = json_push(&with(&ok_labels, &"y".repeat(90), now)).repeat(1); // under limits
    assert!(big_json.len() < 1000);
    let bomb_json = {
        let mut r = with(&ok_labels, "z", now);
        r.streams[0].values = (0..400)
            .map(|i| Entry::new(now + i, "z".repeat(99)))
            .collect();
        json_push(&r)
    };
    assert!(bomb_json.len() > 32 * 1024);
    let day = 86_400 * 1_000_000_000i64;
    let cases: Vec<(Vec<u8>, &str, StatusCode, &str)> = vec![
        (
            vec![b' '; 64 * 1024 + 1],
            "identity",
            StatusCode::PAYLOAD_TOO_LARGE,
            "request body exceeds the limit of 65536",
        ),
        (
            zstd::bulk::compress(&bomb_json, 3).unwrap(),
            "zstd",
            StatusCode::PAYLOAD_TOO_LARGE,
            "decompressed body exceeds the limit of 32768",
        ),
        (
            json_push(&with(&ok_labels, &"x".repeat(101), now)),
            "identity",
            StatusCode::PAYLOAD_TOO_LARGE,
            "stream 0 entry 1 is 101 bytes; the line limit is 100",
        ),
        (
            json_push(&with(
                &[("team", "p"), ("a", "1"), ("b", "2"), ("c", "3")],
                "x",
                now,
            )),
            "identity",
            StatusCode::BAD_REQUEST,
            "stream 0 has 4 labels; the limit is 3",
        ),
        (
            json_push(&with(&[("team", "p"), ("a_long_label", "1")], "x", now)),
            "identity",
            StatusCode::BAD_REQUEST,
            "label name of 12 bytes; the limit is 10",
        ),
        (
            json_push(&with(&[("team", "p"), ("pod", &"v".repeat(21))], "x", now)),
            "identity",
            StatusCode::BAD_REQUEST,
            "value is 21 bytes; the limit is 20",
        ),
        (
            json_push(&with(&ok_labels, "x", now - 8 * day)),
            "identity",
            StatusCode::BAD_REQUEST,
            "stream 0 entry 1 is older than 7days",
        ),
        (
            json_push(&with(&ok_labels, "x", now + 11 * 60 * 1_000_000_000)),
            "identity",
            StatusCode::BAD_REQUEST,
            "more than 10m in the future",
        ),
        (
            // Invalid UTF-8 in a label value.
            b"{\"streams\":[{\"stream\":{\"team\":\"p\xff\"},\"values\":[]}]}".to_vec(),
            "identity",
            StatusCode::BAD_REQUEST,
            "malformed push body",
        ),
        (
            // A lone surrogate escape is not a Unicode scalar either.
            br#"{"streams":[{"stream":{"team":"p\ud800"},"values":[]}]}"#.to_vec(),
            "identity",
            StatusCode::BAD_REQUEST,
            "malformed push body",
        ),
    ];
    for (body, encoding, want_status, want_reason) in cases {
        let (s, _, resp) = send(&app, push_req(body, encoding, None)).await;
        assert_eq!(s, want_status, "{want_reason}: {resp}");
        let reason = resp["error"].as_str().unwrap();
        assert!(reason.contains(want_reason), "{want_reason}: {reason}");
        assert!(
            !reason.contains("yyyy") && !reason.contains("xxxx"),
            "no content echoed"
        );
    }
    assert!(stats(&st, None).await.is_empty(), "nothing stored");
    // And a push inside every limit is stored.
    let (s, _, _) = send(&app, push_req(big_json, "identity", None)).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn gzip_and_identity_pushes_are_stored() {
    let dir = tempfile::tempdir().unwrap();
    let st = state(dir.path());
    let app = app(st.clone());
    let json = serde_json::to_vec(&sample(fjord_wire::clock::now_ns())).unwrap();
    let (s, _, _) = send(&app, push_req(codec::gzip(&json).unwrap(), "gzip", None)).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _, _) = send(&app, push_req(json, "identity", None)).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(stats(&st, None).await[0].records, 4);
}

#[tokio::test]
async fn full_ingest_queue_sheds_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let st = state(dir.path());
    let _held = st.ingest_slots.clone().acquire_many_owned(2).await.unwrap();
    let app = app(st);
    let (s, h, body) = send(
        &app,
        push_req(b"{\"streams\":[]}".to_vec(), "identity", None),
    )
    .await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(h.get("retry-after").unwrap(), "1");
    assert!(body["error"].as_str().unwrap().contains("queue is full"));
}

/// The value of one series line (`name{labels} value`) in a metrics text, 0 when absent.
fn series(text: &str, name_and_labels: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name_and_labels)?.strip_prefix(' '))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

async fn scrape(st: &Arc<AppState>) -> String {
    let (s, _, body) = send(&metrics_app(st.clone()), get("/metrics", None)).await;
    assert_eq!(s, StatusCode::OK);
    body.as_str().unwrap().to_owned()
}

#[tokio::test]
async fn metrics_count_pushes_queries_and_shed_load() {
    let dir = tempfile::tempdir().unwrap();
    let st = state_from(&with_tokens(config(dir.path())));
    let app = app(st.clone());
    let now = fjord_wire::clock::now_ns();
    let body = codec::encode_zstd(&sample(now), 3).unwrap().body;
    let line_bytes = ("payment declined id=1".len() + "payment ok id=2".len()) as f64;

    let push = |id, tok| push_as(body.clone(), "zstd", Some(id), tok);
    assert_eq!(
        send(&app, push("m-1", Some(INGEST_PAY))).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        send(&app, push("m-1", Some(INGEST_PAY))).await.0,
        StatusCode::OK
    );
    assert_eq!(
        send(&app, push("m-2", None)).await.0,
        StatusCode::UNAUTHORIZED
    );
    {
        // Every queue slot taken: the next push is shed.
        let _held = st.ingest_slots.clone().acquire_many_owned(2).await.unwrap();
        let (s, _, _) = send(&app, push("m-3", Some(INGEST_SEARCH))).await;
        assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
    }
    let uri = range_uri(r#"{team="payments"}"#, now - 1000, now + 1000);
    assert_eq!(
        send(&app, get(&uri, Some(READ_PAY))).await.0,
        StatusCode::OK
    );
    let labels = "/loki/api/v1/label/file/values";
    assert_eq!(
        send(&app, get(labels, Some(READ_PAY))).await.0,
        StatusCode::OK
    );

    let m = scrape(&st).await;
    let v = |s: &str| series(&m, s);
    assert_eq!(
        v("fjord_aggregator_pushes_total{status=\"204\",reason=\"stored\"}"),
        1.0,
        "{m}"
    );
    assert_eq!(
        v("fjord_aggregator_pushes_total{status=\"200\",reason=\"duplicate\"}"),
        1.0
    );
    assert_eq!(
        v("fjord_aggregator_pushes_total{status=\"401\",reason=\"unauthorized\"}"),
        1.0
    );
    assert_eq!(
        v("fjord_aggregator_pushes_total{status=\"429\",reason=\"queue_full\"}"),
        1.0
    );
    assert_eq!(
        v("fjord_aggregator_throttled_requests_total{endpoint=\"push\",reason=\"queue_full\"}"),
        1.0
    );
    assert_eq!(
        v("fjord_aggregator_ingested_entries_total{team=\"payments\"}"),
        2.0
    );
    assert_eq!(
        v("fjord_aggregator_ingested_bytes_total{team=\"payments\"}"),
        line_bytes
    );
    assert_eq!(
        v("fjord_aggregator_duplicate_batches_total{team=\"payments\"}"),
        1.0
    );
    // The stored push and the duplicate; refusals are not ingest latency.
    assert_eq!(v("fjord_aggregator_push_duration_seconds_count"), 2.0);
    assert_eq!(
        v("fjord_aggregator_query_duration_seconds_count{endpoint=\"query_range\"}"),
        1.0
    );
    assert_eq!(
        v("fjord_aggregator_query_duration_seconds_count{endpoint=\"label_values\"}"),
        1.0
    );
    assert!(v("fjord_aggregator_store_chunks") >= 1.0, "{m}");
    assert!(v("fjord_aggregator_store_size_bytes") > 0.0, "{m}");
    assert_eq!(v("fjord_aggregator_active_tails"), 0.0);
    assert_eq!(
        v(&format!(
            "fjord_aggregator_build_info{{version=\"{}\"}}",
            env!("CARGO_PKG_VERSION")
        )),
        1.0
    );
    // No label carries a line, a query or a token.
    for secret in [
        "declined",
        "payment ok",
        INGEST_PAY,
        READ_PAY,
        "query_range?",
    ] {
        assert!(!m.contains(secret), "{secret:?} in /metrics");
    }
}

#[tokio::test]
async fn info_declares_residency() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(state(dir.path()));
    let (s, _, body) = send(&app, get("/v1/info", None)).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        body,
        serde_json::json!({"name":"fjord-aggregator","version":"test","region":"eu-north-1","jurisdiction":"EEA"})
    );
}

#[tokio::test]
async fn tokens_decide_team_and_access() {
    let dir = tempfile::tempdir().unwrap();
    let st = state_from(&with_tokens(config(dir.path())));
    let app = app(st.clone());
    let now = fjord_wire::clock::now_ns();
    let body = json_push(&sample(now)); // labelled team=payments

    // 401 without or with a wrong token; the body never echoes the token.
    let (s, _, b) = send(&app, push_req(body.clone(), "identity", None)).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(b["error"].as_str().unwrap().contains("missing token"));
    let (s, _, b) = send(
        &app,
        push_as(body.clone(), "identity", None, Some("guess-123")),
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(!b.to_string().contains("guess-123"));
    // A read token may not push.
    let (s, _, _) = send(
        &app,
        push_as(body.clone(), "identity", None, Some(READ_PAY)),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // The search ingest token's push is stamped team=search whatever the labels say.
    let (s, _, _) = send(
        &app,
        push_as(body.clone(), "identity", None, Some(INGEST_SEARCH)),
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _, _) = send(
        &app,
        push_as(body.clone(), "identity", None, Some(INGEST_PAY)),
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT);

    let q = |sel: &str| range_uri(sel, now - 1000, now + 1000);
    // Queries need a token, and an ingest token may not read.
    let (s, _, _) = send(&app, get(&q(r#"{file="/a.log"}"#), None)).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _, _) = send(&app, get(&q(r#"{file="/a.log"}"#), Some(INGEST_PAY))).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // The read token sees only payments, even with a selector that would match both.
    let (s, _, b) = send(&app, get(&q(r#"{file="/a.log"}"#), Some(READ_PAY))).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let result = b["data"]["result"].as_array().unwrap();
    assert_eq!(result.len(), 1);
    assert_eq!(result[0]["stream"]["team"], "payments");
    let (s, _, b) = send(&app, get(&q(r#"{team="search"}"#), Some(READ_PAY))).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    let (_, _, b) = send(&app, get("/loki/api/v1/label/team/values", Some(READ_PAY))).await;
    assert_eq!(b["data"], serde_json::json!(["payments"]));
    let (_, _, b) = send(&app, get("/fjord/v1/stats", Some(READ_PAY))).await;
    assert_eq!(b["data"].as_array().unwrap().len(), 1);
    // The admin sees both teams.
    let (_, _, b) = send(&app, get(&q(r#"{file="/a.log"}"#), Some(ADMIN))).await;
    assert_eq!(b["data"]["result"].as_array().unwrap().len(), 2);
    let (_, _, b) = send(&app, get("/loki/api/v1/label/team/values", Some(ADMIN))).await;
    assert_eq!(b["data"], serde_json::json!(["payments", "search"]));
    // /v1/info stays open: agents check residency before they hold a token.
    let (s, _, _) = send(&app, get("/v1/info", None)).await;
    assert_eq!(s, StatusCode::OK);
}

fn erase_req(body: serde_json::Value, token: Option<&str>) -> Request<Body> {
    let mut b = Request::post("/fjord/v1/erase").header("content-type", "application/json");
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    b.body(Body::from(body.to_string())).unwrap()
}

#[tokio::test]
async fn erase_is_admin_only_logged_and_final() {
    let dir = tempfile::tempdir().unwrap();
    let st = state_from(&with_tokens(config(dir.path())));
    let app = app(st.clone());
    let now = fjord_wire::clock::now_ns();
    let mut req = sample(now);
    req.streams[0]
        .values
        .push(Entry::new(now + 2, "refund customer=4711 ok"));
    req.streams[0]
        .values
        .push(Entry::new(now + 3, "refund customer=4712 ok"));
    let (s, _, _) = send(
        &app,
        push_as(json_push(&req), "identity", None, Some(INGEST_PAY)),
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT);

    let body = serde_json::json!({"query": "{team=\"payments\"} |= \"customer=4711\"", "operator": "dpo@example.no"});
    let (s, _, _) = send(&app, erase_req(body.clone(), Some(READ_PAY))).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _, b) = send(
        &app,
        erase_req(
            serde_json::json!({"query": "{team=\"payments\"}"}),
            Some(ADMIN),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert!(b["error"]
        .as_str()
        .unwrap()
        .contains("filter that selects entries"));
    let (s, _, b) = send(
        &app,
        erase_req(serde_json::json!({"query": "{team="}), Some(ADMIN)),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    let (s, _, b) = send(&app, erase_req(serde_json::json!({"nope": 1}), Some(ADMIN))).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");

    let mut dry = body.clone();
    dry["dry_run"] = true.into();
    let (s, _, b) = send(&app, erase_req(dry, Some(ADMIN))).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["data"]["lines"], 1);
    assert!(b["data"]["log_id"].is_null());

    let (s, _, b) = send(&app, erase_req(body, Some(ADMIN))).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["data"]["lines"], 1);
    let (_, _, b) = send(
        &app,
        get(
            &range_uri(r#"{team="payments"}"#, now - 10, now + 10),
            Some(ADMIN),
        ),
    )
    .await;
    assert_eq!(
        all_lines(&b),
        vec![
            "payment declined id=1",
            "payment ok id=2",
            "refund customer=4712 ok"
        ]
    );
    let (s, _, b) = send(&app, get("/fjord/v1/erasures", Some(ADMIN))).await;
    assert_eq!(s, StatusCode::OK);
    let log = &b["data"][0];
    assert_eq!(log["operator"], "root (dpo@example.no)");
    assert_eq!(log["lines"], 1);
    assert_eq!(log["query"], "{team=\"payments\"} |= \"customer=4711\"");
    let (s, _, _) = send(&app, get("/fjord/v1/erasures", Some(READ_PAY))).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn stats_break_down_by_stream_and_day() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(state(dir.path()));
    let now = fjord_wire::clock::now_ns();
    let (s, _, _) = send(&app, push_req(json_push(&sample(now)), "identity", None)).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _, b) = send(&app, get("/fjord/v1/stats", None)).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["data"][0]["team"], "payments");
    assert_eq!(b["data"][0]["records"], 2);
    assert_eq!(b["streams"][0]["stream"]["file"], "/a.log");
    assert_eq!(b["streams"][0]["lines"], 2);
    assert_eq!(
        b["days"][0]["day"],
        crate::store::format_day(crate::store::day_of(now))
    );
    assert_eq!(b["days"][0]["raw_bytes"], 36);
}

/// `run` with the test tokens on a real socket on 127.0.0.1:0.
async fn serve(
    dir: &std::path::Path,
) -> (
    Arc<AppState>,
    SocketAddr,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let cfg = with_tokens(config(dir));
    let st = state_from(&cfg);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    (st.clone(), addr, tokio::spawn(run(listener, st, cfg)))
}

/// Waits for a server whose shutdown was cancelled to return.
async fn stopped(server: tokio::task::JoinHandle<std::io::Result<()>>) {
    tokio::time::timeout(std::time::Duration::from_secs(10), server)
        .await
        .expect("server stops")
        .unwrap()
        .unwrap();
}

/// The access log's records of one endpoint, as `audit access` reads them from the data dir.
/// (Read on a thread of its own: the audit's reads block, which an async test may not.)
fn access_log(st: &Arc<AppState>, endpoint: &str) -> Vec<crate::store::AccessRecord> {
    std::thread::scope(|s| {
        s.spawn(|| {
            let store = st.store.evidence().unwrap();
            let all = crate::audit::Range {
                from_ns: 0,
                to_ns: i64::MAX,
            };
            let log = crate::audit::access(&store, all, None).unwrap().requests;
            log.into_iter()
                .map(|e| e.record)
                .filter(|r| r.endpoint == endpoint)
                .collect()
        })
        .join()
        .unwrap()
    })
}

/// A live tail's WebSocket to `url` (`ws://…/loki/api/v1/tail?…`) with `token`.
async fn ws_connect(url: &str, token: &str) -> TailSocket {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = url.into_client_request().unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    tokio_tungstenite::connect_async(req).await.unwrap().0
}

type TailSocket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The next tail message, as JSON; fails the test after 30 s without one (generous: on
/// PostgreSQL a live line waits for every transaction older than it, on a server the whole
/// test binary shares, with two cores busy).
async fn ws_next(ws: &mut TailSocket) -> serde_json::Value {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message as WsMessage;
    let m = tokio::time::timeout(std::time::Duration::from_secs(30), ws.next())
        .await
        .expect("a tail message")
        .unwrap()
        .unwrap();
    match m {
        WsMessage::Text(t) => serde_json::from_str(t.as_str()).unwrap(),
        other => panic!("unexpected {other:?}"),
    }
}

/// The live tail over a real socket: backfill, then pushes as they commit, in Loki's shape;
/// a read token sees only its team; shutdown closes it, and the tail it closed is in the
/// access log once the server has stopped.
#[tokio::test]
async fn tail_streams_backfill_then_new_lines() {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message as WsMessage;

    let dir = tempfile::tempdir().unwrap();
    let (st, addr, server) = serve(dir.path()).await;
    let http = reqwest::Client::new();
    let push = |body: Vec<u8>, token: &'static str| {
        let http = http.clone();
        async move {
            let r = http
                .post(format!("http://{addr}/loki/api/v1/push"))
                .bearer_auth(token)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 204);
        }
    };
    let now = fjord_wire::clock::now_ns();
    push(json_push(&sample(now)), INGEST_PAY).await;

    let selector = r#"{file="/a.log"} |= "id=""#;
    let url = format!(
        "ws://{addr}/loki/api/v1/tail?query={}&start={}",
        enc(selector),
        now - 1_000_000_000
    );
    // Without a token the upgrade is refused with 401.
    let err = tokio_tungstenite::connect_async(url.as_str())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("401"), "{err}");
    let mut ws = ws_connect(&url, READ_PAY).await;
    let first = ws_next(&mut ws).await;
    assert_eq!(first["dropped_entries"], serde_json::json!([]));
    assert_eq!(
        first["streams"][0]["values"],
        serde_json::json!([
            [now.to_string(), "payment declined id=1"],
            [(now + 1).to_string(), "payment ok id=2"]
        ])
    );
    // Another team's push is not shown to the payments read token; a payments push is.
    push(json_push(&sample(now + 100)), INGEST_SEARCH).await;
    let mut later = sample(now + 200);
    later.streams[0].values.truncate(1);
    push(json_push(&later), INGEST_PAY).await;
    let m = ws_next(&mut ws).await;
    assert_eq!(m["streams"].as_array().unwrap().len(), 1);
    assert_eq!(m["streams"][0]["stream"]["team"], "payments");
    assert_eq!(
        m["streams"][0]["values"],
        serde_json::json!([[(now + 200).to_string(), "payment declined id=1"]])
    );
    // Shutdown closes the tail and the server returns.
    st.shutdown.cancel();
    let closing = tokio::time::timeout(std::time::Duration::from_secs(10), ws.next())
        .await
        .unwrap();
    assert!(matches!(
        closing,
        Some(Ok(WsMessage::Close(_))) | None | Some(Err(_))
    ));
    drop(ws);
    stopped(server).await;

    // The tail ended by the shutdown is recorded: who, which team, what, how many lines. The
    // refused upgrade without a token is not (no caller to record).
    let tails = access_log(&st, "tail");
    assert_eq!(tails.len(), 1, "{tails:#?}");
    let t = &tails[0];
    assert_eq!(
        (t.token.as_str(), t.team.as_deref(), t.role.as_str()),
        ("pay-read", Some("payments"), "read")
    );
    assert_eq!(t.query.as_deref(), Some(selector));
    assert_eq!((t.lines, t.status), (3, 101));
    assert_eq!(t.start_ns, Some(now - 1_000_000_000));
}

/// A team-scoped read token's query is recorded with its team; and every record made by a
/// tracked task as the shutdown ends it (stand-ins for live tails, many at once) is written
/// before `run` returns, none dropped.
#[tokio::test]
async fn shutdown_writes_the_whole_access_log() {
    let dir = tempfile::tempdir().unwrap();
    let (st, addr, server) = serve(dir.path()).await;
    let now = fjord_wire::clock::now_ns();
    let r = reqwest::Client::new()
        .get(format!(
            "http://{addr}{}",
            range_uri(r#"{file="/a.log"}"#, now - 1000, now + 1000)
        ))
        .bearer_auth(READ_PAY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Stand-ins for tails that the shutdown ends: tracked tasks that record after it.
    const ENDED_BY_SHUTDOWN: u64 = 50;
    for i in 0..ENDED_BY_SHUTDOWN {
        let st2 = st.clone();
        st.tasks.spawn(async move {
            st2.shutdown.cancelled().await;
            tokio::task::yield_now().await;
            let caller = auth::Caller {
                name: "pay-read".into(),
                role: Role::Read,
                team: Some("payments".into()),
            };
            st2.access.record(
                &caller,
                access::Access {
                    endpoint: "tail",
                    query: Some(r#"{team="payments"}"#),
                    range: None,
                    lines: i,
                    status: 101,
                },
            );
        });
    }
    st.shutdown.cancel();
    stopped(server).await;
    assert_eq!(st.access.dropped(), 0);
    let q = access_log(&st, "query_range");
    assert_eq!(q.len(), 1, "{q:#?}");
    assert_eq!(
        (q[0].token.as_str(), q[0].team.as_deref(), q[0].status),
        ("pay-read", Some("payments"), 200)
    );
    assert_eq!(access_log(&st, "tail").len() as u64, ENDED_BY_SHUTDOWN);
}

fn protobuf_push(
    body: Vec<u8>,
    content_encoding: Option<&str>,
    batch: Option<&str>,
) -> Request<Body> {
    let mut b = Request::post("/loki/api/v1/push").header("content-type", "application/x-protobuf");
    if let Some(e) = content_encoding {
        b = b.header("content-encoding", e);
    }
    if let Some(id) = batch {
        b = b.header("fjord-batch-id", id);
    }
    b.body(Body::from(body)).unwrap()
}

/// Loki's protobuf push, snappy-compressed as Promtail sends it: stored like the same push in
/// JSON, batch ids still idempotent; a bad body is a 4xx whose reason names the problem.
#[tokio::test]
async fn protobuf_snappy_pushes_are_stored_and_bad_ones_refused() {
    use fjord_wire::logproto::{self, proto};
    use prost::Message;

    let dir = tempfile::tempdir().unwrap();
    let st = state(dir.path());
    let app = app(st.clone());
    let now = fjord_wire::clock::now_ns();
    let req = sample(now);
    let body = logproto::encode(&req);
    let (s, _, j) = send(&app, protobuf_push(body.clone(), None, Some("pb-1"))).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{j}");
    let (s, _, j) = send(
        &app,
        protobuf_push(body.clone(), Some("snappy"), Some("pb-1")),
    )
    .await;
    assert_eq!(
        (s, j["status"].as_str()),
        (StatusCode::OK, Some("duplicate"))
    );
    let (s, _, j) = send(
        &app,
        get(&range_uri("{team=\"payments\"}", now - 10, now + 10), None),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let mut lines = all_lines(&j);
    lines.sort();
    assert_eq!(lines, ["payment declined id=1", "payment ok id=2"]);

    // An empty push is what the same push in JSON is.
    let empty = logproto::encode(&PushRequest::default());
    let (pb, _, _) = send(&app, protobuf_push(empty, None, None)).await;
    let (js, _, _) = send(
        &app,
        push_req(b"{\"streams\":[]}".to_vec(), "identity", None),
    )
    .await;
    assert_eq!(pb, js);

    let msg = |line: &[u8], labels: &str| {
        proto::PushRequest {
            streams: vec![proto::StreamAdapter {
                labels: labels.into(),
                entries: vec![proto::EntryAdapter {
                    timestamp: Some(proto::Timestamp {
                        seconds: now / 1_000_000_000,
                        nanos: 0,
                    }),
                    line: line.to_vec(),
                    structured_metadata: vec![],
                }],
                hash: 0,
            }],
        }
        .encode_to_vec()
    };
    let team = r#"{team="payments"}"#;
    let bomb = [0xff, 0xff, 0xff, 0x7f];
    let cases: Vec<(Request<Body>, StatusCode, &str)> = vec![
        (
            protobuf_push(Vec::new(), None, None),
            StatusCode::BAD_REQUEST,
            "not valid snappy",
        ),
        (
            protobuf_push(b"\x05nope!".to_vec(), None, None),
            StatusCode::BAD_REQUEST,
            "not valid snappy",
        ),
        (
            protobuf_push(logproto::compress_snappy(b"\x0a\x05\x0a"), None, None),
            StatusCode::BAD_REQUEST,
            "malformed protobuf push body",
        ),
        (
            protobuf_push(logproto::compress_snappy(&msg(b"a\xffb", team)), None, None),
            StatusCode::BAD_REQUEST,
            "stream 0 entry 0: line is not valid UTF-8",
        ),
        (
            protobuf_push(
                logproto::compress_snappy(&msg(b"ok", "team=payments")),
                None,
                None,
            ),
            StatusCode::BAD_REQUEST,
            "stream 0 labels: expected `{`",
        ),
        (
            protobuf_push(
                logproto::compress_snappy(&msg(
                    &vec![b'x'; fjord_wire::limits::MAX_LINE_BYTES + 1],
                    team,
                )),
                None,
                None,
            ),
            StatusCode::PAYLOAD_TOO_LARGE,
            "the line limit is",
        ),
        (
            protobuf_push(bomb.to_vec(), None, None),
            StatusCode::PAYLOAD_TOO_LARGE,
            "decompressed body exceeds",
        ),
        (
            protobuf_push(body.clone(), Some("gzip"), None),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "snappy-compressed",
        ),
        (
            Request::post("/loki/api/v1/push")
                .header("content-type", "text/plain")
                .body(Body::from(body))
                .unwrap(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "application/x-protobuf",
        ),
    ];
    for (req, want, reason) in cases {
        let (s, _, j) = send(&app, req).await;
        let got = j["message"]
            .as_str()
            .or(j["error"].as_str())
            .unwrap_or_default()
            .to_owned();
        assert_eq!(s, want, "{reason}: {j}");
        assert!(j.to_string().contains(reason), "{reason}: {j} ({got})");
    }
    // Nothing of the refused pushes was stored.
    let stats = stats(&st, Some("payments")).await;
    assert_eq!(stats.iter().map(|t| t.records).sum::<u64>(), 2);
}

/// Agents' ledgers, `POST /v1/ledger`.
mod ledger;
/// The Loki query API as Grafana uses it.
mod loki;
mod scoping;

/// Structured metadata pushed in JSON (a value's third element) or protobuf is stored per
/// entry and answered as Loki answers it: merged into the stream's labels, each distinct
/// set a stream of its own. Label filters and `by` see it.
#[tokio::test]
async fn structured_metadata_is_stored_and_answered_as_loki_does() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(state(dir.path()));
    let now = fjord_wire::clock::now_ns();
    let stream: BTreeMap<String, String> = [("team".to_owned(), "payments".to_owned())].into();
    let json = PushRequest {
        streams: vec![PushStream {
            stream: stream.clone(),
            values: vec![
                Entry::new(now, "a").with_metadata([("trace_id", "t1")]),
                Entry::new(now + 1, "b").with_metadata([("trace_id", "t2")]),
                Entry::new(now + 2, "c"),
            ],
        }],
    };
    let body = serde_json::to_vec(&json).unwrap();
    assert!(String::from_utf8_lossy(&body).contains(r#""a",{"trace_id":"t1"}"#));
    let (s, _, j) = send(&app, push_req(body, "identity", None)).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{j}");
    let pb = PushRequest {
        streams: vec![PushStream {
            stream,
            values: vec![Entry::new(now + 3, "d").with_metadata([("trace_id", "t1")])],
        }],
    };
    let (s, _, j) = send(
        &app,
        protobuf_push(fjord_wire::logproto::encode(&pb), None, None),
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{j}");

    let (s, _, j) = send(
        &app,
        get(&range_uri(r#"{team="payments"}"#, now - 10, now + 10), None),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{j}");
    let mut got: Vec<(String, Vec<String>)> = j["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let trace = r["stream"]["trace_id"].as_str().unwrap_or("-").to_owned();
            let lines = r["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| {
                    // Two elements: the metadata is in the labels.
                    assert_eq!(v.as_array().unwrap().len(), 2, "{v}");
                    v[1].as_str().unwrap().to_owned()
                })
                .collect();
            (trace, lines)
        })
        .collect();
    got.sort();
    let want = [("-", vec!["c"]), ("t1", vec!["a", "d"]), ("t2", vec!["b"])]
        .map(|(t, l)| (t.to_owned(), l.iter().map(|s| s.to_string()).collect()));
    assert_eq!(got, want);

    let (s, _, j) = send(
        &app,
        get(
            &range_uri(r#"{team="payments"} | trace_id="t1""#, now - 10, now + 10),
            None,
        ),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{j}");
    assert_eq!(all_lines(&j), ["a", "d"]);

    let q = r#"sum by (trace_id) (count_over_time({team="payments"}[1m]))"#;
    let uri = format!(
        "/loki/api/v1/query?query={}&time={}",
        enc(q),
        now + 1_000_000_000
    );
    let (s, _, j) = send(&app, get(&uri, None)).await;
    assert_eq!(s, StatusCode::OK, "{j}");
    let mut counts: Vec<(String, String)> = j["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["metric"]["trace_id"].as_str().unwrap_or("-").to_owned(),
                r["value"][1].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    counts.sort();
    assert_eq!(
        counts,
        [("-", "1"), ("t1", "2"), ("t2", "1")].map(|(a, b)| (a.to_owned(), b.to_owned()))
    );
}

/// Every test of this module again, over PostgreSQL: this test binary re-run on them with
/// `FJORD_TEST_BACKEND=postgres`, which gives each `state()` a database of its own on the
/// test process's server (store::testing). So `cargo test` runs the server's tests on both
/// backends without a copy of them.
#[test]
fn every_server_test_passes_on_postgres_too() {
    let me = "every_server_test_passes_on_postgres_too";
    let stdout = fjord_e2e::postgres::rerun_tests_on_postgres(&[
        "server::tests::",
        "--skip",
        me,
        "--test-threads",
        "2",
    ]);
    // The run did run them.
    assert!(
        stdout.contains("test server::tests::tail_streams_backfill_then_new_lines ... ok"),
        "{stdout}"
    );
}

/// OTLP/HTTP logs.
mod otlp;
