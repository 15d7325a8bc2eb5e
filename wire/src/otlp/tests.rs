//! The OTLP mapping against what Loki makes of the same records, and the JSON encoding
//! against the protobuf one.

use prost::Message;

use super::proto::common::{AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList};
use super::proto::logs::{LogRecord, ResourceLogs, ScopeLogs};
use super::proto::resource::Resource;
use super::*;

fn s(v: &str) -> Option<AnyValue> {
    Some(AnyValue {
        value: Some(Value::StringValue(v.into())),
    })
}

fn v(value: Value) -> Option<AnyValue> {
    Some(AnyValue { value: Some(value) })
}

fn kv(key: &str, value: Option<AnyValue>) -> KeyValue {
    KeyValue {
        key: key.into(),
        value,
        ..Default::default()
    }
}

fn kvlist(pairs: Vec<KeyValue>) -> Value {
    Value::KvlistValue(KeyValueList { values: pairs })
}

fn request(
    resource: Vec<KeyValue>,
    scope: Option<InstrumentationScope>,
    records: Vec<LogRecord>,
) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: resource,
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                scope,
                log_records: records,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

fn record(ts: u64, body: Option<AnyValue>) -> LogRecord {
    LogRecord {
        time_unix_nano: ts,
        body,
        ..Default::default()
    }
}

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn labels(p: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs(p).into_iter().collect()
}

/// The record the OpenTelemetry SDKs send for `logger.info(...)` under a span, with one of
/// every kind of attribute.
fn full_request() -> ExportLogsServiceRequest {
    request(
        vec![
            kv("service.name", s("checkout")),
            kv("service.namespace", s("shop")),
            kv("k8s.pod.name", s("checkout-7f9c")),
            kv("deployment.environment.name", s("prod")),
            kv("host.name", s("node-1")),
            kv("process.pid", v(Value::IntValue(42))),
        ],
        Some(InstrumentationScope {
            name: "checkout.payments".into(),
            version: "1.2.0".into(),
            attributes: vec![kv("scope.kind", s("lib"))],
            dropped_attributes_count: 0,
        }),
        vec![LogRecord {
            time_unix_nano: 1_764_151_200_000_000_001,
            observed_time_unix_nano: 1_764_151_200_000_000_002,
            severity_number: 9,
            severity_text: "INFO".into(),
            body: s("payment captured order=17"),
            attributes: vec![
                kv("order.id", s("17")),
                kv("retry", v(Value::BoolValue(false))),
                kv("amount", v(Value::DoubleValue(12.5))),
                kv("blob", v(Value::BytesValue(vec![0xfb, 0xff]))),
                kv(
                    "tags",
                    v(Value::ArrayValue(ArrayValue {
                        values: [s("a"), v(Value::IntValue(1))]
                            .into_iter()
                            .flatten()
                            .collect(),
                    })),
                ),
                kv(
                    "http",
                    v(kvlist(vec![
                        kv("method", s("POST")),
                        kv("req", v(kvlist(vec![kv("id", v(Value::IntValue(7)))]))),
                    ])),
                ),
                kv("empty", None),
            ],
            dropped_attributes_count: 2,
            flags: 1,
            trace_id: (1..=16).collect(),
            span_id: (1..=8).collect(),
            event_name: String::new(),
        }],
    )
}

#[test]
fn records_map_as_loki_maps_them() {
    let req = full_request();
    let push = to_push(&req, 99).unwrap();
    assert_eq!(push.streams.len(), 1);
    let stream = &push.streams[0];
    assert_eq!(
        stream.stream,
        labels(&[
            ("service_name", "checkout"),
            ("service_namespace", "shop"),
            ("k8s_pod_name", "checkout-7f9c"),
            ("deployment_environment_name", "prod"),
        ])
    );
    let e = &stream.values[0];
    assert_eq!(e.ts_ns, 1_764_151_200_000_000_001);
    assert_eq!(e.line(), "payment captured order=17");
    assert!(
        matches!(e.line, Cow::Borrowed(_)),
        "a string body is not copied"
    );
    assert_eq!(
        e.metadata,
        pairs(&[
            ("order_id", "17"),
            ("retry", "false"),
            ("amount", "12.5"),
            ("blob", "+/8="),
            ("tags", r#"["a",1]"#),
            ("http_method", "POST"),
            ("http_req_id", "7"),
            ("empty", ""),
            ("observed_timestamp", "1764151200000000002"),
            ("severity_number", "9"),
            ("severity_text", "INFO"),
            ("dropped_attributes_count", "2"),
            ("flags", "1"),
            ("trace_id", "0102030405060708090a0b0c0d0e0f10"),
            ("span_id", "0102030405060708"),
            ("host_name", "node-1"),
            ("process_pid", "42"),
            ("scope_kind", "lib"),
            ("scope_name", "checkout.payments"),
            ("scope_version", "1.2.0"),
        ])
    );
}

#[test]
fn a_resource_without_service_name_is_unknown_service() {
    for resource in [
        vec![],
        vec![kv("service.name", s(""))],
        vec![kv("k8s.namespace.name", s("shop"))],
    ] {
        let req = request(resource.clone(), None, vec![record(5, s("x"))]);
        let push = to_push(&req, 0).unwrap();
        assert_eq!(
            push.streams[0]
                .stream
                .get("service_name")
                .map(String::as_str),
            Some(UNKNOWN_SERVICE),
            "{resource:?}"
        );
    }
    let req = ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: None,
            scope_logs: vec![ScopeLogs {
                log_records: vec![record(5, s("x"))],
                ..Default::default()
            }],
            schema_url: String::new(),
        }],
    };
    assert_eq!(
        to_push(&req, 0).unwrap().streams[0].stream,
        labels(&[("service_name", UNKNOWN_SERVICE)])
    );
}

#[test]
fn timestamps_fall_back_to_observed_then_received() {
    let mut observed = record(0, s("x"));
    observed.observed_time_unix_nano = 7;
    let req = request(
        vec![],
        None,
        vec![record(5, s("x")), observed, record(0, s("x"))],
    );
    let push = to_push(&req, 99).unwrap();
    let ts: Vec<i64> = push.streams[0].values.iter().map(|e| e.ts_ns).collect();
    assert_eq!(ts, [5, 7, 99]);
    // The observed time is metadata only when it is not the timestamp already.
    assert!(push.streams[0].values[1].metadata.is_empty());

    let req = request(
        vec![],
        None,
        vec![record(5, s("x")), record(u64::MAX, s("x"))],
    );
    let e = to_push(&req, 0).unwrap_err().to_string();
    assert_eq!(e, "stream 0 entry 1: timestamp is after the year 2262");
}

#[test]
fn bodies_other_than_strings_are_rendered() {
    let cases: Vec<(Option<AnyValue>, &str)> = vec![
        (None, ""),
        (Some(AnyValue { value: None }), ""),
        (v(Value::IntValue(-3)), "-3"),
        (v(Value::BoolValue(true)), "true"),
        (v(Value::DoubleValue(5.0)), "5"),
        (v(Value::DoubleValue(0.1 + 0.2)), "0.30000000000000004"),
        (v(Value::DoubleValue(1e21)), "1e+21"),
        (v(Value::DoubleValue(1e20)), "100000000000000000000"),
        (v(Value::DoubleValue(1.5e-7)), "1.5e-7"),
        (v(Value::DoubleValue(1e-6)), "0.000001"),
        (v(Value::DoubleValue(-2.5e300)), "-2.5e+300"),
        (v(Value::DoubleValue(f64::NAN)), "NaN"),
        (v(Value::DoubleValue(f64::NEG_INFINITY)), "-Infinity"),
        (v(Value::BytesValue(b"hi!".to_vec())), "aGkh"),
        (
            v(kvlist(vec![
                kv("msg", s("a \"quoted\"\nline")),
                kv("b", v(Value::DoubleValue(f64::INFINITY))),
                kv(
                    "a",
                    v(Value::ArrayValue(ArrayValue {
                        values: vec![
                            AnyValue::default(),
                            AnyValue {
                                value: Some(Value::BytesValue(vec![1])),
                            },
                            AnyValue {
                                value: Some(Value::DoubleValue(f64::NAN)),
                            },
                        ],
                    })),
                ),
                // The last of equal keys wins, as in a Go map.
                kv("b", v(Value::IntValue(2))),
            ])),
            r#"{"a":[null,"AQ==",null],"b":2,"msg":"a \"quoted\"\nline"}"#,
        ),
        (v(Value::ArrayValue(ArrayValue::default())), "[]"),
    ];
    for (body, want) in cases {
        let req = request(vec![], None, vec![record(5, body.clone())]);
        let push = to_push(&req, 0).unwrap();
        assert_eq!(push.streams[0].values[0].line(), want, "{body:?}");
    }
}

#[test]
fn attribute_keys_become_label_names() {
    for (key, want) in [
        ("service.name", "service_name"),
        ("http.request.header.x-id", "http_request_header_x_id"),
        ("1st", "key_1st"),
        ("_private", "key_private"),
        ("__reserved", "__reserved"),
        ("søk", "s_k"),
        ("plain", "plain"),
    ] {
        assert_eq!(label_name(key), want, "{key}");
        assert!(crate::push::valid_label_name(&label_name(key)), "{key}");
    }
    // No label name stands for an empty key: the attribute is left out.
    let req = request(vec![kv("", s("x"))], None, vec![record(5, s("x"))]);
    let push = to_push(&req, 0).unwrap();
    assert!(push.streams[0].values[0].metadata.is_empty());
}

#[test]
fn each_scope_with_records_is_a_stream_in_request_order() {
    let scope = |name: &str, n: usize| ScopeLogs {
        scope: Some(InstrumentationScope {
            name: name.into(),
            ..Default::default()
        }),
        log_records: (0..n)
            .map(|i| record(5, s(&format!("{name} {i}"))))
            .collect(),
        schema_url: String::new(),
    };
    let resource = |service: &str, scopes: Vec<ScopeLogs>| ResourceLogs {
        resource: Some(Resource {
            attributes: vec![kv("service.name", s(service))],
            ..Default::default()
        }),
        scope_logs: scopes,
        schema_url: String::new(),
    };
    let req = ExportLogsServiceRequest {
        resource_logs: vec![
            resource(
                "a",
                vec![scope("one", 2), scope("empty", 0), scope("two", 1)],
            ),
            resource("b", vec![]),
            resource("a", vec![scope("three", 1)]),
        ],
    };
    let push = to_push(&req, 0).unwrap();
    let got: Vec<(&str, Vec<&str>)> = push
        .streams
        .iter()
        .map(|s| {
            (
                s.stream["service_name"].as_str(),
                s.values.iter().map(|e| e.line()).collect(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("a", vec!["one 0", "one 1"]),
            ("a", vec!["two 0"]),
            ("a", vec!["three 0"]),
        ]
    );
    assert_eq!(push.records(), 4);
    assert!(to_push(&ExportLogsServiceRequest::default(), 0)
        .unwrap()
        .streams
        .is_empty());
}

#[test]
fn unset_ids_are_left_out() {
    let mut r = record(5, s("x"));
    r.trace_id = vec![0; 16];
    r.span_id = vec![0; 8];
    let req = request(vec![], None, vec![r]);
    assert!(to_push(&req, 0).unwrap().streams[0].values[0]
        .metadata
        .is_empty());
}

/// Metadata over Loki's limits fails the request as a Loki push with it would, naming the
/// record; nothing is cut silently.
#[test]
fn metadata_over_the_limits_refuses_the_request() {
    let many: Vec<KeyValue> = (0..=crate::limits::MAX_METADATA_PAIRS)
        .map(|i| kv(&format!("a{i}"), s("v")))
        .collect();
    let mut r = record(5, s("x"));
    r.attributes = many;
    let req = request(vec![], None, vec![record(5, s("ok")), r]);
    let e = to_push(&req, 0).unwrap_err().to_string();
    assert!(
        e.starts_with("stream 0 entry 1 structured metadata: 129 pairs; the limit is 128"),
        "{e}"
    );
    let big = "v".repeat(crate::limits::MAX_METADATA_BYTES);
    let req = request(
        vec![kv("host.name", s(&big))],
        None,
        vec![record(5, s("x"))],
    );
    let e = to_push(&req, 0).unwrap_err().to_string();
    assert!(e.contains("bytes; the limit is"), "{e}");
    let long_key = "k".repeat(crate::limits::MAX_LABEL_NAME_BYTES + 1);
    let req = request(
        vec![],
        None,
        vec![LogRecord {
            attributes: vec![kv(&long_key, s("v"))],
            ..record(5, s("x"))
        }],
    );
    let e = to_push(&req, 0).unwrap_err().to_string();
    assert!(e.contains("name 0 is invalid"), "{e}");
}

#[test]
fn protobuf_bodies_decode_and_bad_ones_are_named() {
    let req = full_request();
    let body = req.encode_to_vec();
    assert_eq!(decode(&body, Encoding::Protobuf).unwrap(), req);
    assert_eq!(
        decode(b"", Encoding::Protobuf).unwrap(),
        ExportLogsServiceRequest::default()
    );
    let e = decode(b"\x0a\x05\x0a", Encoding::Protobuf)
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("malformed OTLP protobuf body"), "{e}");
    // A string body that is not UTF-8: prost refuses the message and says why.
    let mut bad = request(vec![], None, vec![record(5, s("marker-xyz"))]).encode_to_vec();
    let at = bad.windows(10).position(|w| w == b"marker-xyz").unwrap();
    bad[at] = 0xff;
    let e = decode(&bad, Encoding::Protobuf).unwrap_err().to_string();
    assert!(e.contains("UTF-8"), "{e}");
    assert!(!e.contains("arker"), "{e}");
}

/// The JSON of [`full_request`] as the OpenTelemetry JS SDK and the Collector write it:
/// 64-bit integers as strings, ids in hex.
const FULL_JSON: &str = r#"{"resourceLogs":[{
  "resource":{"attributes":[
    {"key":"service.name","value":{"stringValue":"checkout"}},
    {"key":"service.namespace","value":{"stringValue":"shop"}},
    {"key":"k8s.pod.name","value":{"stringValue":"checkout-7f9c"}},
    {"key":"deployment.environment.name","value":{"stringValue":"prod"}},
    {"key":"host.name","value":{"stringValue":"node-1"}},
    {"key":"process.pid","value":{"intValue":"42"}}]},
  "scopeLogs":[{
    "scope":{"name":"checkout.payments","version":"1.2.0",
             "attributes":[{"key":"scope.kind","value":{"stringValue":"lib"}}]},
    "logRecords":[{
      "timeUnixNano":"1764151200000000001","observedTimeUnixNano":1764151200000000002,
      "severityNumber":9,"severityText":"INFO",
      "body":{"stringValue":"payment captured order=17"},
      "attributes":[
        {"key":"order.id","value":{"stringValue":"17"}},
        {"key":"retry","value":{"boolValue":false}},
        {"key":"amount","value":{"doubleValue":12.5}},
        {"key":"blob","value":{"bytesValue":"-_8"}},
        {"key":"tags","value":{"arrayValue":{"values":[{"stringValue":"a"},{"intValue":1}]}}},
        {"key":"http","value":{"kvlistValue":{"values":[
          {"key":"method","value":{"stringValue":"POST"}},
          {"key":"req","value":{"kvlistValue":{"values":[{"key":"id","value":{"intValue":"7"}}]}}}]}}},
        {"key":"empty"}],
      "droppedAttributesCount":2,"flags":1,
      "traceId":"0102030405060708090A0B0C0D0E0F10","spanId":"0102030405060708"}]}]}]}"#;

#[test]
fn json_reads_as_the_same_message_as_protobuf() {
    assert_eq!(
        decode(FULL_JSON.as_bytes(), Encoding::Json).unwrap(),
        full_request()
    );
}

#[test]
fn json_defaults_and_unknown_fields() {
    let empty = ExportLogsServiceRequest::default();
    for body in [
        "{}",
        " {\"resourceLogs\":[]} \n",
        r#"{"resourceLogs":[{"futureField":{"x":[1,2]}}],"other":null}"#,
    ] {
        let got = decode(body.as_bytes(), Encoding::Json).unwrap();
        assert!(to_push(&got, 0).unwrap().streams.is_empty(), "{body}");
        if body == "{}" {
            assert_eq!(got, empty);
        }
    }
    let body = r#"{"resourceLogs":[{"resource":null,"scopeLogs":[{"logRecords":[
        {"body":{}},
        {"body":{"arrayValue":{}}},
        {"body":{"kvlistValue":{}}},
        {"body":{"doubleValue":"NaN"}},
        {"body":{"doubleValue":3}},
        {"body":{"intValue":-9,"unknownKind":{"a":1}}},
        {"body":{"stringValue":"esc\u00e9\"d"},"severityNumber":"17","flags":"1",
         "traceId":"","spanId":"","newField":[1]}
    ]}]}]}"#;
    let req = decode(body.as_bytes(), Encoding::Json).unwrap();
    let push = to_push(&req, 0).unwrap();
    let lines: Vec<&str> = push.streams[0].values.iter().map(|e| e.line()).collect();
    assert_eq!(lines, ["", "[]", "{}", "NaN", "3", "-9", "escé\"d"]);
    assert_eq!(
        push.streams[0].values[6].metadata,
        pairs(&[("severity_number", "17"), ("flags", "1")])
    );
}

#[test]
fn bad_json_is_named_without_content() {
    for (body, want) in [
        ("", "malformed push body at line 1 column 0"),
        (
            "{\"resourceLogs\":[",
            "malformed push body at line 1 column 17",
        ),
        ("\"text\"", "invalid type"),
        (
            r#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"traceId":"secret-zz"}]}]}]}"#,
            "trace and span ids must be hex",
        ),
        (
            r#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"timeUnixNano":"-1"}]}]}]}"#,
            "decimal integer in range",
        ),
        (
            r#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"timeUnixNano":-1}]}]}]}"#,
            "out of range",
        ),
        (
            r#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":{"bytesValue":"secret!!"}}]}]}]}"#,
            "not base64",
        ),
        (
            r#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":{"stringValue":7}}]}]}]}"#,
            "invalid type",
        ),
        (
            r#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":{"boolValue":"secret"}}]}]}]}"#,
            "invalid type",
        ),
    ] {
        let e = decode(body.as_bytes(), Encoding::Json)
            .unwrap_err()
            .to_string();
        assert!(e.contains(want), "{body}: {e}");
        assert!(!e.contains("secret"), "{body}: {e}");
    }
}

#[test]
fn responses_are_in_the_request_encoding() {
    assert!(success_body(Encoding::Protobuf).is_empty());
    assert_eq!(
        ExportLogsServiceResponse::decode(&success_body(Encoding::Protobuf)[..]).unwrap(),
        ExportLogsServiceResponse::default()
    );
    assert_eq!(success_body(Encoding::Json), b"{}");
    let pb = status_body(Encoding::Protobuf, 400, "stream 0 entry 1: bad");
    assert_eq!(
        Status::decode(&pb[..]).unwrap(),
        Status {
            code: 3,
            message: "stream 0 entry 1: bad".into()
        }
    );
    let json: serde_json::Value =
        serde_json::from_slice(&status_body(Encoding::Json, 429, "slow down")).unwrap();
    assert_eq!(json, serde_json::json!({"code": 8, "message": "slow down"}));
    for (ct, want) in [
        ("application/x-protobuf", Some(Encoding::Protobuf)),
        ("Application/JSON; charset=utf-8", Some(Encoding::Json)),
        ("application/jsonx", None),
        ("text/plain", None),
    ] {
        assert_eq!(Encoding::from_content_type(ct), want, "{ct}");
    }
}
