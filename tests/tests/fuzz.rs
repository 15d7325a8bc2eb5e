//! Fuzz targets on stable Rust: the parsers that take input from outside the process, fed
//! random bytes and random mutations of valid inputs by proptest generators, for a time
//! budget per target (`FJORD_FUZZ_SECONDS`, default 2; `.ci/run` gives each 20). A target
//! fails on a panic or a broken property, and proptest shrinks the input; a failure found
//! this way becomes a named regression case in the crate that owns the parser.
//!
//! - the push decoders: the one-pass fast path with its serde_json fallback gives the same
//!   request, or an error, as serde_json alone, for any body;
//! - the protobuf push decoder: for any body, or any protobuf message compressed as it
//!   should be, it refuses or gives a request within the limits that encodes and decodes
//!   back to itself;
//! - the OTLP/HTTP logs decoders, protobuf and JSON: for any body, they refuse or give a
//!   request that maps to a push within the limits, every stream with a `service_name`;
//! - the LogQL parser: answers `Ok` or an error with a position inside the query, for any
//!   text;
//! - the rule-file loader: loads or refuses any TOML text with an error naming
//!   `file:line:col`, never panics;
//! - the agent's line splitter: for any bytes cut into any reads, its lines cover the
//!   bytes contiguously, each within the line limit.

use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestError, TestRunner};

/// Runs `check` on inputs from `strategy` until the time budget is spent.
fn fuzz<S: Strategy>(name: &str, strategy: S, check: impl Fn(S::Value) -> Result<(), TestCaseError>)
where
    S::Value: std::fmt::Debug,
{
    let secs = std::env::var("FJORD_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    let deadline = Instant::now() + Duration::from_secs(secs);
    const BATCH: u32 = 500;
    let mut cases = 0u64;
    while Instant::now() < deadline {
        // A runner stops at its case count; each batch gets a fresh one (and a fresh seed).
        let mut runner = TestRunner::new(Config {
            cases: BATCH,
            failure_persistence: None,
            ..Config::default()
        });
        match runner.run(&strategy, &check) {
            Ok(()) => cases += u64::from(BATCH),
            Err(TestError::Fail(why, input)) => {
                panic!("{name}: {why} for the (shrunk) input {input:?}")
            }
            Err(TestError::Abort(why)) => panic!("{name}: aborted: {why}"),
        }
    }
    eprintln!("{name}: {cases} cases in {secs} s");
}

/// `seed` with random byte edits: overwrite, insert, remove, truncate. Inserted bytes lean
/// to the characters that carry structure.
fn mutated(seeds: Vec<Vec<u8>>, structural: &'static [u8]) -> impl Strategy<Value = Vec<u8>> {
    (
        proptest::sample::select(seeds),
        proptest::collection::vec((any::<usize>(), 0u8..4, any::<u8>()), 0..8),
    )
        .prop_map(move |(seed, edits)| {
            let mut b = seed;
            for (at, kind, byte) in edits {
                let at = at % (b.len() + 1);
                let byte = if byte % 2 == 0 {
                    structural[usize::from(byte / 2) % structural.len()]
                } else {
                    byte
                };
                match kind {
                    0 if at < b.len() => b[at] = byte,
                    1 => b.insert(at, byte),
                    2 if at < b.len() => {
                        b.remove(at);
                    }
                    _ => b.truncate(at),
                }
            }
            b
        })
}

/// Random bytes, or a mutated seed.
fn inputs(seeds: &[&str], structural: &'static [u8]) -> impl Strategy<Value = Vec<u8>> {
    let seeds: Vec<Vec<u8>> = seeds.iter().map(|s| s.as_bytes().to_vec()).collect();
    prop_oneof![
        1 => proptest::collection::vec(any::<u8>(), 0..256),
        4 => mutated(seeds, structural),
    ]
}

#[test]
fn fuzz_push_decoders_agree_on_any_body() {
    let seeds = [
        r#"{"streams":[{"stream":{"team":"payments","file":"/var/log/app.log"},"values":[["1764151200123000000","payment ok"],["1764151200123000001","line with \"quotes\" and \\ and \u00fc"]]}]}"#,
        r#"{"streams":[{"stream":{},"values":[]},{"stream":{"a":"b"},"values":[["1","x"]]}]}"#,
        r#"{"streams":[]}"#,
    ];
    fuzz(
        "push decoders",
        inputs(&seeds, b"\"\\{}[],:0123456789un "),
        |body| {
            let slow = fjord_wire::codec::parse_push(&body);
            let mut text = String::new();
            let fast = fjord_wire::codec::parse_push_in(&body, &mut text);
            match (&slow, &fast) {
                (Ok(a), Ok(b)) => prop_assert_eq!(a, b),
                (Err(_), Err(_)) => {}
                _ => prop_assert!(false, "the decoders disagree: {slow:?} / {fast:?}"),
            }
            Ok(())
        },
    );
}

#[test]
fn fuzz_protobuf_push_decodes_or_refuses_any_body() {
    use fjord_wire::logproto;
    use fjord_wire::{Entry, PushRequest, PushStream};
    let request = PushRequest {
        streams: vec![PushStream {
            stream: [("team".to_owned(), "payments".to_owned())].into(),
            values: vec![
                Entry::new(1_764_151_200_123_000_000, "payment ok"),
                Entry::new(1_764_151_200_123_000_001, "line with \"quotes\" and ü"),
            ],
        }],
    };
    let compressed = logproto::encode(&request);
    let message = logproto::decompress_snappy(&compressed, 1 << 20).expect("seed");
    // Mutated snappy bodies, and mutated messages compressed as a client would.
    let body = prop_oneof![
        mutated(vec![compressed], b"\x00\x01\x0a\x12\x1a\xff"),
        mutated(vec![message], b"\x00\x08\x0a\x10\x12\x1a\x22\xff")
            .prop_map(|m| logproto::compress_snappy(&m)),
        proptest::collection::vec(any::<u8>(), 0..256),
    ];
    fuzz("protobuf push", body, |body| {
        let Ok(bytes) = logproto::decompress_snappy(&body, 1 << 20) else {
            return Ok(());
        };
        let Ok(msg) = logproto::decode_message(&bytes) else {
            return Ok(());
        };
        let Ok(req) = logproto::to_push(&msg) else {
            return Ok(());
        };
        prop_assert!(req.validate().is_ok());
        let again = logproto::decompress_snappy(&logproto::encode(&req), usize::MAX).unwrap();
        let msg2 = logproto::decode_message(&again).unwrap();
        prop_assert_eq!(logproto::to_push(&msg2).unwrap(), req);
        Ok(())
    });
}

#[test]
fn fuzz_otlp_logs_decode_or_refuse_any_body() {
    use fjord_wire::otlp::proto::common::{any_value::Value, AnyValue, KeyValue, KeyValueList};
    use fjord_wire::otlp::proto::logs::{
        ExportLogsServiceRequest, LogRecord, ResourceLogs, ScopeLogs,
    };
    use fjord_wire::otlp::proto::resource::Resource;
    use fjord_wire::otlp::{self, Encoding};
    let value = |v| Some(AnyValue { value: Some(v) });
    let kv = |key: &str, v| KeyValue {
        key: key.into(),
        value: value(v),
        ..Default::default()
    };
    let request = ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", Value::StringValue("checkout".into())),
                    kv("host.name", Value::StringValue("node-1".into())),
                ],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                log_records: vec![LogRecord {
                    time_unix_nano: 1_764_151_200_123_000_000,
                    severity_number: 9,
                    body: value(Value::StringValue("payment ok".into())),
                    attributes: vec![
                        kv("order.id", Value::IntValue(17)),
                        kv(
                            "http",
                            Value::KvlistValue(KeyValueList {
                                values: vec![kv("method", Value::StringValue("GET".into()))],
                            }),
                        ),
                    ],
                    trace_id: vec![7; 16],
                    ..Default::default()
                }],
                ..Default::default()
            }],
            schema_url: String::new(),
        }],
    };
    let json = r#"{"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"checkout"}}]},"scopeLogs":[{"scope":{"name":"s"},"logRecords":[{"timeUnixNano":"1764151200123000000","body":{"kvlistValue":{"values":[{"key":"a","value":{"doubleValue":1.5}}]}},"attributes":[{"key":"n","value":{"intValue":"3"}}],"traceId":"0707070707070707070707070707070a"}]}]}]}"#;
    let body = prop_oneof![
        mutated(
            vec![otlp::encode(&request)],
            b"\x00\x01\x08\x0a\x12\x1a\x22\xff"
        )
        .prop_map(|b| (Encoding::Protobuf, b)),
        inputs(&[json], b"\"\\{}[],:0123456789 ").prop_map(|b| (Encoding::Json, b)),
        proptest::collection::vec(any::<u8>(), 0..256).prop_map(|b| (Encoding::Protobuf, b)),
    ];
    fuzz("OTLP logs", body, |(encoding, body)| {
        let Ok(msg) = otlp::decode(&body, encoding) else {
            return Ok(());
        };
        let Ok(req) = otlp::to_push(&msg, 1) else {
            return Ok(());
        };
        prop_assert!(req.validate().is_ok());
        for s in &req.streams {
            prop_assert!(s.stream.contains_key("service_name"));
        }
        Ok(())
    });
}

#[test]
fn fuzz_logql_parser_answers_any_text() {
    let seeds = [
        r#"{team="payments", app=~"pay.*"} |= "declined" != "test" |~ "card=\\d+""#,
        r#"{a!="b",c!~"d|e"}"#,
        r#"{team="payments"} |= `raw` |~ `x{2,}`"#,
    ];
    fuzz(
        "logql parser",
        inputs(&seeds, b"{}=!~|\"`,()[]*+\\ab"),
        |q| {
            let q = String::from_utf8_lossy(&q);
            if let Err(e) = fjord_aggregator::logql::parse(&q) {
                prop_assert!(!e.to_string().is_empty());
            }
            Ok(())
        },
    );
}

#[test]
fn fuzz_rule_files_load_or_fail_with_a_location() {
    let seeds = [
        "extends = [\"baseline\", \"eu-pii\"]\n\n[[rule]]\nname = \"order-id\"\npattern = 'ORD-\\d{6}'\naction = \"mask\"\n\n[[rule.example]]\ninput = \"ORD-123456\"\nexpect = \"[REDACTED:order-id]\"\n",
        "extends = [\"baseline\"]\n[[rule]]\nname = \"cust\"\ndetector = \"email\"\naction = \"partial\"\nkeep = 4\n",
        "[[field]]\npath = \"user.email\"\naction = \"drop_field\"\n",
    ];
    fuzz("rule files", inputs(&seeds, b"[]=\"'\n.{}\\dx,"), |text| {
        let text = String::from_utf8_lossy(&text);
        if let Err(e) = fjord_rules::pack::resolve(&[("team.toml", &text)]) {
            let msg = e.to_string();
            prop_assert!(
                msg.contains("team.toml"),
                "an error without its file: {msg}"
            );
        }
        Ok(())
    });
}

#[test]
fn fuzz_line_splitter_covers_any_bytes() {
    use fjord_agent::tail::lines::Splitter;
    const MAX: usize = 64;
    let strategy = (
        proptest::collection::vec(
            prop_oneof![
                6 => any::<u8>(),
                2 => Just(b'\n'),
                1 => Just(b'\r'),
            ],
            0..600,
        ),
        proptest::collection::vec(1usize..97, 1..12),
    );
    fuzz("line splitter", strategy, |(bytes, cuts)| {
        let mut sp = Splitter::new(0, MAX);
        let mut next = 0u64;
        let mut at = 0;
        let mut i = 0;
        while at < bytes.len() {
            let n = cuts[i % cuts.len()].min(bytes.len() - at);
            i += 1;
            let mut rest = &bytes[at..at + n];
            while let Some(l) = sp.next_line(&mut rest) {
                prop_assert_eq!(l.start, next, "contiguous");
                prop_assert!(l.end > l.start);
                // Each kept byte may become a 3-byte U+FFFD; the cut marker follows.
                prop_assert!(l.text.len() <= 3 * MAX + fjord_agent::tail::lines::CUT_MARKER.len());
                next = l.end;
            }
            at += n;
        }
        prop_assert_eq!(sp.fed_to(), bytes.len() as u64);
        if let Some(l) = sp.flush() {
            prop_assert_eq!(l.start, next);
            next = l.end;
        }
        prop_assert_eq!(next, bytes.len() as u64, "every byte in a line");
        Ok(())
    });
}
