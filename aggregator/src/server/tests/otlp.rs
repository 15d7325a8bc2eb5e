//! `POST /otlp/v1/logs` in-process: both encodings and every compression stored as the Loki
//! push stores them, OTLP's answers (200 with an `ExportLogsServiceResponse`, errors as a
//! `Status` in the request's encoding), and hand-built edge cases: empty, huge, bombs, bad
//! gzip, malformed protobuf and JSON, wrong content type, invalid UTF-8, non-string bodies.

use fjord_wire::otlp::proto::common::{any_value::Value, AnyValue, KeyValue, KeyValueList};
use fjord_wire::otlp::proto::logs::{
    ExportLogsServiceRequest, ExportLogsServiceResponse, LogRecord, ResourceLogs, ScopeLogs,
};
use fjord_wire::otlp::proto::resource::Resource;
use fjord_wire::otlp::Status;
use prost::Message;

use super::*;

fn string(s: &str) -> Option<AnyValue> {
    Some(AnyValue {
        value: Some(Value::StringValue(s.into())),
    })
}

/// One resource (`service.name` = `service`) with one scope holding `bodies`, at `ts`, `ts
/// + 1`, …
fn request(service: &str, ts: i64, bodies: Vec<Option<AnyValue>>) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![KeyValue {
                    key: "service.name".into(),
                    value: string(service),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                log_records: bodies
                    .into_iter()
                    .enumerate()
                    .map(|(i, body)| LogRecord {
                        time_unix_nano: (ts + i as i64) as u64,
                        body,
                        trace_id: vec![0xab; 16],
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            schema_url: String::new(),
        }],
    }
}

fn lines(service: &str, ts: i64, n: usize) -> ExportLogsServiceRequest {
    let bodies = (0..n)
        .map(|i| string(&format!("{service} line {i}")))
        .collect();
    request(service, ts, bodies)
}

fn otlp(body: Vec<u8>, content_type: &str, encoding: Option<&str>) -> Request<Body> {
    let mut b = Request::post("/otlp/v1/logs").header("content-type", content_type);
    if let Some(e) = encoding {
        b = b.header("content-encoding", e);
    }
    b.body(Body::from(body)).unwrap()
}

fn pb(req: &ExportLogsServiceRequest) -> Request<Body> {
    otlp(req.encode_to_vec(), "application/x-protobuf", None)
}

/// Status, headers and the raw body.
async fn send_raw(app: &Router, req: Request<Body>) -> (StatusCode, http::HeaderMap, Vec<u8>) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = to_bytes(resp.into_body(), usize::MAX).await.unwrap();
    (status, headers, bytes.to_vec())
}

/// The lines of `service` stored in the last minute, sorted.
async fn stored(app: &Router, service: &str, now: i64) -> Vec<String> {
    let q = format!("{{service_name=\"{service}\"}}");
    let (s, _, j) = send(
        app,
        get(&range_uri(&q, now - 60_000_000_000, now + 10), None),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{j}");
    all_lines(&j)
}

#[tokio::test]
async fn protobuf_and_json_requests_are_stored_and_answered_in_their_encoding() {
    let dir = tempfile::tempdir().unwrap();
    let st = state(dir.path());
    let app = app(st.clone());
    let now = fjord_wire::clock::now_ns() - 1_000_000_000;

    let (s, h, body) = send_raw(&app, pb(&lines("pb", now, 3))).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h["content-type"], "application/x-protobuf");
    assert_eq!(
        ExportLogsServiceResponse::decode(&body[..]).unwrap(),
        ExportLogsServiceResponse::default()
    );
    assert_eq!(
        stored(&app, "pb", now).await,
        ["pb line 0", "pb line 1", "pb line 2"]
    );

    // OTLP/JSON as the Collector and the JS SDK write it, in every compression.
    let json = |service: &str| {
        format!(
            r#"{{"resourceLogs":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"{service}"}}}}]}},
              "scopeLogs":[{{"scope":{{"name":"s"}},"logRecords":[{{"timeUnixNano":"{now}","severityNumber":9,
              "body":{{"stringValue":"{service} line"}},"traceId":"5B8EFFF798038103D269B633813FC60C","spanId":"eee19b7ec3c1b174"}}]}}]}}]}}"#
        )
        .into_bytes()
    };
    for (encoding, body) in [
        (None, json("json-identity")),
        (Some("gzip"), codec::gzip(&json("json-gzip")).unwrap()),
        (
            Some("zstd"),
            zstd::bulk::compress(&json("json-zstd"), 1).unwrap(),
        ),
    ] {
        let (s, h, body) = send_raw(&app, otlp(body, "application/json", encoding)).await;
        assert_eq!(
            s,
            StatusCode::OK,
            "{encoding:?}: {}",
            String::from_utf8_lossy(&body)
        );
        assert_eq!(h["content-type"], "application/json");
        assert_eq!(body, b"{}");
    }
    for service in ["json-identity", "json-gzip", "json-zstd"] {
        assert_eq!(
            stored(&app, service, now).await,
            [format!("{service} line")]
        );
    }
    // Stored under the default team (no tokens), with `service_name` as a label.
    let (_, _, j) = send(
        &app,
        get(
            &range_uri("{service_name=\"json-gzip\"}", now - 10, now + 10),
            None,
        ),
    )
    .await;
    let labels = &j["data"]["result"][0]["stream"];
    assert_eq!(labels["service_name"], "json-gzip", "{j}");
    assert_eq!(labels["team"], "default", "{j}");
    // The record's fields as structured metadata, merged into the labels as Loki answers.
    assert_eq!(
        labels["trace_id"], "5b8efff798038103d269b633813fc60c",
        "{j}"
    );
    assert_eq!(labels["span_id"], "eee19b7ec3c1b174", "{j}");
    assert_eq!(labels["severity_number"], "9", "{j}");
    assert_eq!(labels["scope_name"], "s", "{j}");

    // Counted as pushes: 200, stored.
    let text = scrape(&st).await;
    assert_eq!(
        series(
            &text,
            "fjord_aggregator_pushes_total{status=\"200\",reason=\"stored\"}"
        ),
        4.0,
        "{text}"
    );
}

/// No batch ids: an SDK's retry of the same request is stored once (Loki's dedup).
#[tokio::test]
async fn a_retried_request_is_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(state(dir.path()));
    let now = fjord_wire::clock::now_ns();
    let req = lines("retry", now, 5);
    for _ in 0..3 {
        let (s, _, _) = send_raw(&app, pb(&req)).await;
        assert_eq!(s, StatusCode::OK);
    }
    assert_eq!(stored(&app, "retry", now).await.len(), 5);
}

#[tokio::test]
async fn non_string_bodies_are_stored_as_text() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(state(dir.path()));
    let now = fjord_wire::clock::now_ns();
    let v = |value| Some(AnyValue { value: Some(value) });
    let bodies = vec![
        v(Value::IntValue(42)),
        v(Value::BoolValue(true)),
        v(Value::DoubleValue(2.5)),
        v(Value::KvlistValue(KeyValueList {
            values: vec![
                KeyValue {
                    key: "msg".into(),
                    value: string("paid"),
                    ..Default::default()
                },
                KeyValue {
                    key: "amount".into(),
                    value: v(Value::IntValue(7)),
                    ..Default::default()
                },
            ],
        })),
        None,
    ];
    let (s, _, _) = send_raw(&app, pb(&request("kinds", now, bodies))).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        stored(&app, "kinds", now).await,
        ["", "2.5", "42", "true", r#"{"amount":7,"msg":"paid"}"#]
    );
}

/// Empty requests succeed, as OTLP says they should, and store nothing.
#[tokio::test]
async fn empty_requests_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let st = state(dir.path());
    let app = app(st.clone());
    for req in [
        otlp(Vec::new(), "application/x-protobuf", None),
        pb(&ExportLogsServiceRequest::default()),
        pb(&lines("empty", 0, 0)),
        otlp(b"{}".to_vec(), "application/json", None),
        otlp(
            codec::gzip(b"{}").unwrap(),
            "application/json",
            Some("gzip"),
        ),
    ] {
        let (s, _, body) = send_raw(&app, req).await;
        assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    }
    assert!(stats(&st, None).await.iter().all(|t| t.records == 0));
}

/// Every refusal has the status a Loki push would get and a `Status` body in the request's
/// encoding whose message says why without quoting content; nothing of a refused request is
/// stored.
#[tokio::test]
async fn bad_requests_are_refused_with_a_status_naming_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.limits.max_body_bytes = 1 << 20;
    cfg.limits.max_decompressed_bytes = 4 << 20;
    let st = state_from(&cfg);
    let app = app(st.clone());
    let now = fjord_wire::clock::now_ns();

    let mut not_utf8 = request("utf8", now, vec![string("marker-secret")]).encode_to_vec();
    let at = not_utf8
        .windows(13)
        .position(|w| w == b"marker-secret")
        .unwrap();
    not_utf8[at + 1] = 0xff;
    let huge = vec![b' '; (1 << 20) + 1];
    let bomb = codec::gzip(&vec![b' '; 5 << 20]).unwrap();
    let long_line = request(
        "long",
        now,
        vec![string(&"x".repeat(fjord_wire::limits::MAX_LINE_BYTES + 1))],
    );
    let old = lines("old", now - 30 * 24 * 3600 * 1_000_000_000, 1);
    let cases: Vec<(Request<Body>, StatusCode, &str)> = vec![
        (
            otlp(b"\x0a\x05\x0a".to_vec(), "application/x-protobuf", None),
            StatusCode::BAD_REQUEST,
            "malformed OTLP protobuf body",
        ),
        (
            otlp(not_utf8, "application/x-protobuf", None),
            StatusCode::BAD_REQUEST,
            "UTF-8",
        ),
        (
            otlp(b"{\"resourceLogs\":[".to_vec(), "application/json", None),
            StatusCode::BAD_REQUEST,
            "malformed push body at line 1 column 17",
        ),
        (
            otlp(b"not gzip".to_vec(), "application/x-protobuf", Some("gzip")),
            StatusCode::BAD_REQUEST,
            "not valid gzip",
        ),
        (
            otlp(huge, "application/json", None),
            StatusCode::PAYLOAD_TOO_LARGE,
            "request body exceeds the limit",
        ),
        (
            otlp(bomb, "application/json", Some("gzip")),
            StatusCode::PAYLOAD_TOO_LARGE,
            "decompressed body exceeds the limit",
        ),
        (
            pb(&long_line),
            StatusCode::PAYLOAD_TOO_LARGE,
            "stream 0 entry 0 is 262145 bytes; the line limit is",
        ),
        (
            pb(&old),
            StatusCode::BAD_REQUEST,
            "stream 0 entry 0 is older than",
        ),
        (
            otlp(b"{}".to_vec(), "application/json", Some("br")),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported content-encoding",
        ),
    ];
    for (req, want, reason) in cases {
        let json = req.headers()["content-type"] == "application/json";
        let (s, h, body) = send_raw(&app, req).await;
        assert_eq!(s, want, "{reason}: {}", String::from_utf8_lossy(&body));
        let message = if json {
            assert_eq!(h["content-type"], "application/json");
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert!(v["code"].as_i64().is_some(), "{v}");
            v["message"].as_str().unwrap().to_owned()
        } else {
            assert_eq!(h["content-type"], "application/x-protobuf");
            Status::decode(&body[..]).unwrap().message
        };
        assert!(message.contains(reason), "{reason}: {message}");
        assert!(!message.contains("secret"), "{message}");
    }

    // A content type OTLP does not define: 415 whatever the body, answered in JSON.
    for ct in ["text/plain", "application/jsonx", "application/grpc"] {
        let (s, h, body) = send_raw(&app, otlp(b"{}".to_vec(), ct, None)).await;
        assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{ct}");
        assert_eq!(h["content-type"], "application/json");
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert!(
            v["message"]
                .as_str()
                .unwrap()
                .contains("application/x-protobuf"),
            "{v}"
        );
    }
    let (s, _, _) = send_raw(
        &app,
        Request::post("/otlp/v1/logs").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE);

    assert!(stats(&st, None).await.iter().all(|t| t.records == 0));
}

#[tokio::test]
async fn tokens_and_backpressure_as_for_a_loki_push() {
    let dir = tempfile::tempdir().unwrap();
    let st = state_from(&with_tokens(config(dir.path())));
    let app = app(st.clone());
    let now = fjord_wire::clock::now_ns();
    let with_token = |token: Option<&str>| {
        let mut r = pb(&lines("tok", now, 2));
        if let Some(t) = token {
            r.headers_mut()
                .insert("authorization", format!("Bearer {t}").parse().unwrap());
        }
        r
    };
    for (token, want) in [
        (None, StatusCode::UNAUTHORIZED),
        (Some("guess-123"), StatusCode::UNAUTHORIZED),
        (Some(READ_PAY), StatusCode::FORBIDDEN),
    ] {
        let (s, h, body) = send_raw(&app, with_token(token)).await;
        assert_eq!(s, want, "{token:?}");
        assert_eq!(h["content-type"], "application/x-protobuf");
        let message = Status::decode(&body[..]).unwrap().message;
        assert!(
            !message.is_empty() && !message.contains("guess-123"),
            "{message}"
        );
    }
    let (s, _, _) = send_raw(&app, with_token(Some(INGEST_PAY))).await;
    assert_eq!(s, StatusCode::OK);
    // The token's team, whatever the resource says.
    let (s, _, j) = send(
        &app,
        get(
            &range_uri("{service_name=\"tok\"}", now - 10, now + 10),
            Some(READ_PAY),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(j["data"]["result"][0]["stream"]["team"], "payments", "{j}");

    // A full queue sheds with Retry-After, as OTLP clients expect of a 429.
    let _held = st.ingest_slots.clone().acquire_many_owned(2).await.unwrap();
    let (s, h, body) = send_raw(&app, with_token(Some(INGEST_PAY))).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(h["retry-after"], "1");
    let status = Status::decode(&body[..]).unwrap();
    assert!(status.message.contains("queue is full"), "{status:?}");
    let text = scrape(&st).await;
    assert_eq!(
        series(
            &text,
            "fjord_aggregator_throttled_requests_total{endpoint=\"otlp_logs\",reason=\"queue_full\"}"
        ),
        1.0,
        "{text}"
    );
}
