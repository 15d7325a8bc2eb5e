//! In-process tests of the router with `oneshot`, against a real SQLite store in a temp dir.

use std::sync::Arc;

use axum::body::{to_bytes, Body};
use axum::http::{Request, StatusCode};
use fjord_wire::{codec, Entry, Info, PushRequest, PushStream};
use tokio::sync::Semaphore;
use tower::ServiceExt;

use super::*;

fn state(dir: &std::path::Path) -> Arc<AppState> {
    Arc::new(AppState {
        store: Arc::new(Store::open(dir).unwrap()),
        info: Info {
            name: "fjord-aggregator".into(),
            version: "test".into(),
            region: "eu-north-1".into(),
            jurisdiction: "EEA".into(),
        },
        ingest_permits: Arc::new(Semaphore::new(2)),
        max_query_lines: 1000,
    })
}

fn sample(now: i64) -> PushRequest {
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

use axum::http;

fn push_req(body: Vec<u8>, encoding: &str, batch: Option<&str>) -> Request<Body> {
    let mut b = Request::post("/loki/api/v1/push")
        .header("content-type", "application/json")
        .header("content-encoding", encoding);
    if let Some(id) = batch {
        b = b.header("fjord-batch-id", id);
    }
    b.body(Body::from(body)).unwrap()
}

#[tokio::test]
async fn push_duplicate_and_query_in_loki_shape() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(state(dir.path()));
    let now = crate::time::now_ns();
    let enc = codec::encode_zstd(&sample(now), 3).unwrap();

    let (s, _, _) = send(&app, push_req(enc.body.clone(), "zstd", Some("b-1"))).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _, body) = send(&app, push_req(enc.body.clone(), "zstd", Some("b-1"))).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(body, serde_json::json!({"status": "duplicate"}));

    let uri = format!(
        "/loki/api/v1/query_range?query={}&limit=10&direction=forward&start={}&end={}",
        "%7Bteam%3D%22payments%22%7D%20%7C%3D%20%22declined%22",
        now - 1000,
        now + 1000
    );
    let (s, _, body) = send(&app, Request::get(uri).body(Body::empty()).unwrap()).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "success");
    assert_eq!(body["data"]["resultType"], "streams");
    let result = body["data"]["result"].as_array().unwrap();
    assert_eq!(result.len(), 1);
    assert_eq!(result[0]["stream"]["team"], "payments");
    assert_eq!(
        result[0]["values"],
        serde_json::json!([[now.to_string(), "payment declined id=1"]])
    );
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
            Request::get("/loki/api/v1/query_range?query=%7Bteam%3D%22x%22")
                .body(Body::empty())
                .unwrap(),
            StatusCode::BAD_REQUEST,
            "parse error at line 1, col 10",
        ),
        (
            Request::get("/loki/api/v1/query_range")
                .body(Body::empty())
                .unwrap(),
            StatusCode::BAD_REQUEST,
            "missing parameter",
        ),
        (
            Request::get("/loki/api/v1/query_range?query=%7Bteam%3D%22x%22%7D&limit=5000")
                .body(Body::empty())
                .unwrap(),
            StatusCode::BAD_REQUEST,
            "max entries limit",
        ),
        (
            Request::get("/loki/api/v1/query_range?query=%7Bteam%3D%22x%22%7D&start=tomorrow")
                .body(Body::empty())
                .unwrap(),
            StatusCode::BAD_REQUEST,
            "start: cannot parse time",
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

#[tokio::test]
async fn gzip_and_identity_pushes_are_stored() {
    let dir = tempfile::tempdir().unwrap();
    let st = state(dir.path());
    let app = app(st.clone());
    let json = serde_json::to_vec(&sample(crate::time::now_ns())).unwrap();
    let (s, _, _) = send(&app, push_req(codec::gzip(&json).unwrap(), "gzip", None)).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _, _) = send(&app, push_req(json, "identity", None)).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(st.store.stats(None).unwrap()[0].records, 4);
}

#[tokio::test]
async fn full_ingest_queue_sheds_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let st = state(dir.path());
    let _held = st
        .ingest_permits
        .clone()
        .acquire_many_owned(2)
        .await
        .unwrap();
    let app = app(st);
    let (s, h, body) = send(
        &app,
        push_req(b"{\"streams\":[]}".to_vec(), "identity", None),
    )
    .await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(h.get("retry-after").unwrap(), "1");
}

#[tokio::test]
async fn info_declares_residency() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(state(dir.path()));
    let (s, _, body) = send(&app, Request::get("/v1/info").body(Body::empty()).unwrap()).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        body,
        serde_json::json!({"name":"fjord-aggregator","version":"test","region":"eu-north-1","jurisdiction":"EEA"})
    );
}
