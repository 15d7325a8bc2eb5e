//! Loki's protobuf push: `POST /loki/api/v1/push` with `Content-Type: application/x-protobuf`
//! and a body in snappy's block format, which is what Promtail, Grafana Alloy, Vector's loki
//! sink, the Loki Docker driver and winston-loki send by default.
//!
//! The messages are Loki's `logproto.PushRequest` declared with prost's derives, field
//! numbers as in Loki's `push.proto`; a line is read as bytes so that invalid UTF-8 is named
//! as such instead of failing the whole message. [`decode`] decompresses under the size
//! limit (the length snappy declares is checked before anything is allocated), decodes, and
//! converts to the same [`PushRequest`] a JSON push becomes: stream labels parsed from their
//! text form `{name="value", …}`, timestamps to Unix nanoseconds, lines borrowed from the
//! decoded message. Errors name the stream and entry index, never content.

use std::borrow::Cow;
use std::collections::BTreeMap;

use prost::Message;

use crate::error::CodecError;
use crate::push::{Entry, PushRequest, PushStream};

/// The messages of Loki's `push.proto`.
pub mod proto {
    /// `logproto.PushRequest`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PushRequest {
        #[prost(message, repeated, tag = "1")]
        pub streams: Vec<StreamAdapter>,
    }

    /// `logproto.StreamAdapter`: labels in their text form, `{app="x", env="prod"}`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct StreamAdapter {
        #[prost(string, tag = "1")]
        pub labels: String,
        #[prost(message, repeated, tag = "2")]
        pub entries: Vec<EntryAdapter>,
        /// Set by some clients; not used.
        #[prost(uint64, tag = "3")]
        pub hash: u64,
    }

    /// `logproto.EntryAdapter`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct EntryAdapter {
        #[prost(message, optional, tag = "1")]
        pub timestamp: Option<Timestamp>,
        /// A `string` in Loki's schema, read as bytes so that invalid UTF-8 gets its own error.
        #[prost(bytes = "vec", tag = "2")]
        pub line: Vec<u8>,
        #[prost(message, repeated, tag = "3")]
        pub structured_metadata: Vec<LabelPairAdapter>,
    }

    /// `logproto.LabelPairAdapter`: one structured-metadata pair.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct LabelPairAdapter {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(string, tag = "2")]
        pub value: String,
    }

    /// `google.protobuf.Timestamp`.
    #[derive(Clone, Copy, PartialEq, prost::Message)]
    pub struct Timestamp {
        #[prost(int64, tag = "1")]
        pub seconds: i64,
        #[prost(int32, tag = "2")]
        pub nanos: i32,
    }
}

/// Decompresses a snappy block under `limit`: the uncompressed length the block declares is
/// checked before the output is allocated, so a small body that claims gigabytes costs
/// nothing.
pub fn decompress_snappy(body: &[u8], limit: usize) -> Result<Vec<u8>, CodecError> {
    let corrupt = |e: snap::Error| CodecError::Corrupt {
        encoding: "snappy",
        reason: e.to_string(),
    };
    let declared = snap::raw::decompress_len(body).map_err(corrupt)?;
    if declared > limit {
        return Err(CodecError::TooLarge { limit });
    }
    snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(corrupt)
}

/// Decodes a decompressed protobuf push body into its messages.
pub fn decode_message(bytes: &[u8]) -> Result<proto::PushRequest, CodecError> {
    proto::PushRequest::decode(bytes).map_err(|e| {
        CodecError::Invalid(format!(
            "malformed protobuf push body: {}",
            // prost's description names the message and field, never field content.
            e.to_string().replace('\n', " ")
        ))
    })
}

/// The push request of decoded messages; lines borrow from `msg`. The limits are checked as
/// for a JSON push.
pub fn to_push(msg: &proto::PushRequest) -> Result<PushRequest<'_>, CodecError> {
    let mut streams = Vec::with_capacity(msg.streams.len());
    for (si, s) in msg.streams.iter().enumerate() {
        let stream = parse_labels(&s.labels)
            .map_err(|reason| CodecError::Invalid(format!("stream {si} labels: {reason}")))?;
        let mut values = Vec::with_capacity(s.entries.len());
        for (ei, e) in s.entries.iter().enumerate() {
            let at = || format!("stream {si} entry {ei}");
            let ts = e
                .timestamp
                .ok_or_else(|| CodecError::Invalid(format!("{}: no timestamp", at())))?;
            let ts_ns = timestamp_ns(ts)
                .ok_or_else(|| CodecError::Invalid(format!("{}: timestamp out of range", at())))?;
            let line = std::str::from_utf8(&e.line)
                .map_err(|_| CodecError::Invalid(format!("{}: line is not valid UTF-8", at())))?;
            values.push(Entry {
                ts_ns,
                line: Cow::Borrowed(line),
                metadata: e
                    .structured_metadata
                    .iter()
                    .map(|p| (p.name.clone(), p.value.clone()))
                    .collect(),
            });
        }
        streams.push(PushStream { stream, values });
    }
    let req = PushRequest { streams };
    req.validate()?;
    Ok(req)
}

/// Unix nanoseconds of a protobuf timestamp; `None` outside what an `i64` holds, or for
/// nanoseconds outside `0..1e9`.
fn timestamp_ns(t: proto::Timestamp) -> Option<i64> {
    if !(0..1_000_000_000).contains(&t.nanos) {
        return None;
    }
    t.seconds
        .checked_mul(1_000_000_000)?
        .checked_add(i64::from(t.nanos))
}

/// Parses a label set in its text form: `{name="value", other="v\"x"}`, values in double
/// quotes or backticks (Prometheus' and LogQL's string forms), with the escapes `\\`, `\"`,
/// `\n`, `\t` and `\r` in double quotes. `{}` is the empty set. Errors say what is wrong and
/// where (a byte offset), not the text.
pub fn parse_labels(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut p = Labels {
        s: text.as_bytes(),
        i: 0,
    };
    p.skip_ws();
    p.expect(b'{')?;
    let mut out = BTreeMap::new();
    loop {
        p.skip_ws();
        if p.eat(b'}') {
            break;
        }
        let name = p.name()?;
        p.skip_ws();
        p.expect(b'=')?;
        p.skip_ws();
        let value = p.value()?;
        if out.insert(name.to_owned(), value).is_some() {
            return Err(format!("label {name:?} appears twice"));
        }
        p.skip_ws();
        if p.eat(b',') {
            continue;
        }
        p.expect(b'}')?;
        break;
    }
    p.skip_ws();
    if p.i != p.s.len() {
        return Err(format!("unexpected text after `}}` at byte {}", p.i));
    }
    Ok(out)
}

/// The cursor of [`parse_labels`].
struct Labels<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Labels<'a> {
    fn skip_ws(&mut self) {
        while self.s.get(self.i).is_some_and(u8::is_ascii_whitespace) {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        let hit = self.s.get(self.i) == Some(&c);
        self.i += usize::from(hit);
        hit
    }

    fn expect(&mut self, c: u8) -> Result<(), String> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(format!("expected `{}` at byte {}", c as char, self.i))
        }
    }

    fn name(&mut self) -> Result<&'a str, String> {
        let start = self.i;
        while self
            .s
            .get(self.i)
            .is_some_and(|&c| c.is_ascii_alphanumeric() || c == b'_')
        {
            self.i += 1;
        }
        // Only ASCII was taken, so this is on a character boundary.
        let name = std::str::from_utf8(&self.s[start..self.i]).unwrap_or_default();
        if crate::push::valid_label_name(name) {
            Ok(name)
        } else {
            Err(format!("expected a label name at byte {start}"))
        }
    }

    fn value(&mut self) -> Result<String, String> {
        let start = self.i;
        let quote = match self.s.get(self.i) {
            Some(&q @ (b'"' | b'`')) => q,
            _ => return Err(format!("expected a quoted value at byte {start}")),
        };
        self.i += 1;
        let mut out = Vec::new();
        loop {
            let Some(&c) = self.s.get(self.i) else {
                return Err(format!("value starting at byte {start} is not closed"));
            };
            self.i += 1;
            match c {
                _ if c == quote => break,
                b'\\' if quote == b'"' => {
                    let e = self.s.get(self.i).copied();
                    self.i += 1;
                    out.push(match e {
                        Some(b'\\') => b'\\',
                        Some(b'"') => b'"',
                        Some(b'n') => b'\n',
                        Some(b't') => b'\t',
                        Some(b'r') => b'\r',
                        _ => return Err(format!("unknown escape at byte {}", self.i - 2)),
                    });
                }
                _ => out.push(c),
            }
        }
        // The input is a `&str` and only whole ASCII escapes were replaced.
        String::from_utf8(out).map_err(|_| format!("value at byte {start} is not UTF-8"))
    }
}

/// Encodes a push request as Loki's protobuf, snappy-compressed: what Promtail sends. For
/// tests and benchmarks.
pub fn encode(req: &PushRequest<'_>) -> Vec<u8> {
    let msg = proto::PushRequest {
        streams: req
            .streams
            .iter()
            .map(|s| proto::StreamAdapter {
                labels: format_labels(&s.stream),
                entries: s
                    .values
                    .iter()
                    .map(|e| proto::EntryAdapter {
                        timestamp: Some(proto::Timestamp {
                            seconds: e.ts_ns.div_euclid(1_000_000_000),
                            nanos: e.ts_ns.rem_euclid(1_000_000_000) as i32,
                        }),
                        line: e.line.as_bytes().to_vec(),
                        structured_metadata: e
                            .metadata
                            .iter()
                            .map(|(name, value)| proto::LabelPairAdapter {
                                name: name.clone(),
                                value: value.clone(),
                            })
                            .collect(),
                    })
                    .collect(),
                hash: 0,
            })
            .collect(),
    };
    compress_snappy(&msg.encode_to_vec())
}

/// Compresses bytes in snappy's block format.
pub fn compress_snappy(bytes: &[u8]) -> Vec<u8> {
    // Compressing into a Vec can only fail for inputs over 4 GiB, which no push is.
    snap::raw::Encoder::new()
        .compress_vec(bytes)
        .unwrap_or_default()
}

/// A label set in its text form, values quoted with Go's escapes.
pub fn format_labels(labels: &BTreeMap<String, String>) -> String {
    let mut s = String::from("{");
    for (i, (k, v)) in labels.iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        s.push_str(k);
        s.push_str("=\"");
        for c in v.chars() {
            match c {
                '\\' => s.push_str("\\\\"),
                '"' => s.push_str("\\\""),
                '\n' => s.push_str("\\n"),
                '\t' => s.push_str("\\t"),
                '\r' => s.push_str("\\r"),
                c => s.push(c),
            }
        }
        s.push('"');
    }
    s.push('}');
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn label_text_forms() {
        assert_eq!(parse_labels("{}"), Ok(labels(&[])));
        assert_eq!(
            parse_labels(r#" { app="x" ,env = `a\b`, q="say \"hi\"\n" } "#),
            Ok(labels(&[
                ("app", "x"),
                ("env", "a\\b"),
                ("q", "say \"hi\"\n")
            ]))
        );
        assert_eq!(parse_labels(r#"{app="ø",}"#), Ok(labels(&[("app", "ø")])));
        for (bad, why) in [
            ("app=\"x\"", "expected `{`"),
            ("{app=\"x\"", "expected `}`"),
            ("{1app=\"x\"}", "label name"),
            ("{app=x}", "quoted value"),
            ("{app=\"x}", "not closed"),
            ("{app=\"\\q\"}", "unknown escape"),
            ("{a=\"1\", a=\"2\"}", "twice"),
            ("{a=\"1\"} x", "after"),
            ("", "expected `{`"),
        ] {
            let e = parse_labels(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn snappy_refuses_a_declared_size_over_the_limit_before_allocating() {
        let body = compress_snappy(&[b'a'; 10_000]);
        assert_eq!(decompress_snappy(&body, 10_000).unwrap().len(), 10_000);
        assert!(matches!(
            decompress_snappy(&body, 9_999),
            Err(CodecError::TooLarge { limit: 9_999 })
        ));
        // A header that claims 4 GiB - 1 and nothing behind it.
        let bomb = [0xff, 0xff, 0xff, 0xff, 0x0f];
        assert!(matches!(
            decompress_snappy(&bomb, 1 << 20),
            Err(CodecError::TooLarge { .. })
        ));
        let e = decompress_snappy(b"\x05not snappy", 1 << 20).unwrap_err();
        assert!(e.to_string().contains("not valid snappy"), "{e}");
    }

    #[test]
    fn entries_convert_and_errors_name_their_place() {
        let msg = proto::PushRequest {
            streams: vec![proto::StreamAdapter {
                labels: r#"{app="pay"}"#.into(),
                entries: vec![proto::EntryAdapter {
                    timestamp: Some(proto::Timestamp {
                        seconds: 1_764_151_200,
                        nanos: 5,
                    }),
                    line: b"hello".to_vec(),
                    structured_metadata: vec![proto::LabelPairAdapter {
                        name: "trace_id".into(),
                        value: "abc".into(),
                    }],
                }],
                hash: 0,
            }],
        };
        let req = to_push(&msg).unwrap();
        assert_eq!(req.streams[0].stream, labels(&[("app", "pay")]));
        assert_eq!(req.streams[0].values[0].ts_ns, 1_764_151_200_000_000_005);
        assert_eq!(req.streams[0].values[0].line(), "hello");
        assert_eq!(
            req.streams[0].values[0].metadata,
            [("trace_id".to_owned(), "abc".to_owned())]
        );
        let mut bad = msg.clone();
        bad.streams[0].entries[0].structured_metadata[0].name = "trace.id".into();
        let e = to_push(&bad).unwrap_err().to_string();
        assert!(
            e.starts_with("stream 0 entry 0 structured metadata: name 0 is invalid"),
            "{e}"
        );

        let mut bad = msg.clone();
        bad.streams[0].entries[0].line = vec![b'a', 0xff];
        let e = to_push(&bad).unwrap_err().to_string();
        assert_eq!(e, "stream 0 entry 0: line is not valid UTF-8");
        let mut bad = msg.clone();
        bad.streams[0].entries[0].timestamp = None;
        assert!(to_push(&bad)
            .unwrap_err()
            .to_string()
            .contains("no timestamp"));
        let mut bad = msg.clone();
        bad.streams[0].entries[0].timestamp = Some(proto::Timestamp {
            seconds: i64::MAX,
            nanos: 0,
        });
        assert!(to_push(&bad)
            .unwrap_err()
            .to_string()
            .contains("out of range"));
        let mut bad = msg;
        bad.streams[0].labels = "app=pay".into();
        assert!(to_push(&bad)
            .unwrap_err()
            .to_string()
            .starts_with("stream 0 labels: expected `{`"));
        let e = decode_message(b"\x0a\x05\x0a").unwrap_err().to_string();
        assert!(e.starts_with("malformed protobuf push body"), "{e}");
    }

    proptest! {
        /// Whatever a push holds, encoding it as Promtail does and decoding it gives it back.
        #[test]
        fn encode_then_decode_is_the_identity(
            streams in proptest::collection::vec(
                (
                    proptest::collection::btree_map("[a-z_][a-z0-9_]{0,8}", "\\PC{0,12}", 0..4),
                    proptest::collection::vec(
                        (
                            0i64..i64::MAX,
                            "\\PC{0,40}",
                            proptest::collection::vec(("[a-z_][a-z0-9_]{0,8}", "\\PC{0,12}"), 0..3),
                        ),
                        0..5,
                    ),
                ),
                0..4,
            )
        ) {
            let req = PushRequest {
                streams: streams
                    .into_iter()
                    .map(|(stream, values)| PushStream {
                        stream,
                        values: values
                            .into_iter()
                            .map(|(t, l, m)| Entry::new(t, l).with_metadata(m))
                            .collect(),
                    })
                    .collect(),
            };
            let body = encode(&req);
            let msg = decode_message(&decompress_snappy(&body, usize::MAX).unwrap()).unwrap();
            prop_assert_eq!(to_push(&msg).unwrap(), req);
        }
    }
}
