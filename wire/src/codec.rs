//! The batch codec: encode a push request as JSON + zstd; decode a body sent with
//! `Content-Encoding: zstd`, `gzip` or identity, streaming, with a hard limit on the
//! decompressed size so a compression bomb is refused after reading at most the limit.

use std::io::{self, Read, Write};

use sha2::{Digest, Sha256};

pub use crate::error::CodecError;
use crate::push::{InBuffer, PushRequest};

/// The `Content-Encoding` values we accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentEncoding {
    Identity,
    Gzip,
    Zstd,
}

impl ContentEncoding {
    /// Parses a `Content-Encoding` header value; a missing header means identity.
    pub fn from_header(value: Option<&str>) -> Result<Self, CodecError> {
        match value.map(|v| v.trim().to_ascii_lowercase()) {
            None => Ok(ContentEncoding::Identity),
            Some(v) if v.is_empty() || v == "identity" => Ok(ContentEncoding::Identity),
            Some(v) if v == "gzip" || v == "x-gzip" => Ok(ContentEncoding::Gzip),
            Some(v) if v == "zstd" => Ok(ContentEncoding::Zstd),
            Some(v) => Err(CodecError::UnsupportedEncoding(
                v.chars().take(32).collect::<String>(),
            )),
        }
    }

    /// The header value for this encoding.
    pub fn as_str(self) -> &'static str {
        match self {
            ContentEncoding::Identity => "identity",
            ContentEncoding::Gzip => "gzip",
            ContentEncoding::Zstd => "zstd",
        }
    }
}

/// An encoded batch, ready to send.
#[derive(Debug, Clone)]
pub struct EncodedBatch {
    /// The zstd-compressed JSON body.
    pub body: Vec<u8>,
    /// Length of the uncompressed JSON.
    pub json_bytes: usize,
    /// SHA-256 of the uncompressed JSON, hex: the payload hash both ledger and receipt record.
    pub payload_sha256: String,
}

/// Default zstd level for batches. Level 1 was measured against 3 on the benchmark logs
/// (`fjord-bench --mb 64 --agent-config 'zstd_level = N'`, docs/benchmarks.md): the same
/// agent CPU within noise and *smaller* output (0.258 vs 0.280 bytes per raw byte), because
/// the lines' repeated structure is found by the fast matcher and the random ids do not
/// compress at any level. Higher levels cost CPU the 100m sidecar does not have.
pub const DEFAULT_ZSTD_LEVEL: i32 = 1;

/// Whether `level` is accepted: 1–19, and zstd's "fast" levels −1 to −7, which trade ratio
/// for speed. Measured on agent-shaped bodies in 1 MiB batches: level −1 takes 0.95× the
/// time of our tuned level 1 and sends 1.6× the bytes (docs/benchmarks.md), so the fast
/// levels only pay where bandwidth is free and every per cent of sidecar CPU counts.
pub fn zstd_level_ok(level: i32) -> bool {
    (1..=19).contains(&level) || (-7..=-1).contains(&level)
}

/// At level 1, the hash table has 2^12 entries and matches are at least 6 bytes, instead of
/// level 1's 2^14 and 7: measured 14 % faster on agent-shaped bodies, and 0.8 % smaller
/// (the aggregator's chunks use the same two parameters). Only the compressor's
/// search changes; the frames are ordinary zstd frames.
const LEVEL1_HASH_LOG: u32 = 12;
const LEVEL1_MIN_MATCH: u32 = 6;

/// Serialises `req` as JSON and compresses it with zstd at `level`.
pub fn encode_zstd(req: &PushRequest, level: i32) -> Result<EncodedBatch, CodecError> {
    let json = serde_json::to_vec(req).map_err(|e| CodecError::Encode(e.to_string()))?;
    BatchEncoder::new(level)?.encode(&json)
}

/// Compresses batch after batch with one zstd context and one scratch buffer, and hands out
/// bodies of exactly the compressed size: a batch waiting in the queue or in flight holds its
/// bytes, not a compress-bound-sized allocation, and encoding allocates nothing large.
pub struct BatchEncoder {
    zstd: zstd::bulk::Compressor<'static>,
    scratch: Vec<u8>,
}

impl BatchEncoder {
    pub fn new(level: i32) -> Result<BatchEncoder, CodecError> {
        use zstd::zstd_safe::CParameter;
        let err = |e: std::io::Error| CodecError::Encode(e.to_string());
        let mut zstd = zstd::bulk::Compressor::new(level).map_err(err)?;
        if level == 1 {
            zstd.set_parameter(CParameter::HashLog(LEVEL1_HASH_LOG))
                .map_err(err)?;
            zstd.set_parameter(CParameter::MinMatch(LEVEL1_MIN_MATCH))
                .map_err(err)?;
        }
        Ok(BatchEncoder {
            zstd,
            scratch: Vec::new(),
        })
    }

    /// Hashes and compresses an uncompressed push body.
    pub fn encode(&mut self, json: &[u8]) -> Result<EncodedBatch, CodecError> {
        self.scratch.clear();
        self.scratch
            .reserve(zstd::zstd_safe::compress_bound(json.len()));
        let n = self
            .zstd
            .compress_to_buffer(json, &mut self.scratch)
            .map_err(|e| CodecError::Encode(e.to_string()))?;
        Ok(EncodedBatch {
            body: self.scratch[..n].to_vec(),
            json_bytes: json.len(),
            payload_sha256: payload_sha256(json),
        })
    }
}

/// Hex SHA-256 of an uncompressed push payload.
pub fn payload_sha256(json: &[u8]) -> String {
    hex::encode(Sha256::digest(json))
}

/// Decompresses `body` according to `encoding`, refusing to produce more than `limit` bytes.
pub fn decompress(
    body: &[u8],
    encoding: ContentEncoding,
    limit: usize,
) -> Result<Vec<u8>, CodecError> {
    match encoding {
        ContentEncoding::Identity => {
            if body.len() > limit {
                return Err(CodecError::TooLarge { limit });
            }
            Ok(body.to_vec())
        }
        ContentEncoding::Gzip => {
            let r = flate2::read::MultiGzDecoder::new(body);
            read_bounded(r, limit, "gzip")
        }
        ContentEncoding::Zstd => {
            let r = zstd::stream::read::Decoder::with_buffer(body).map_err(|e| {
                CodecError::Corrupt {
                    encoding: "zstd",
                    reason: e.to_string(),
                }
            })?;
            read_bounded(r, limit, "zstd")
        }
    }
}

/// Reads at most `limit` bytes from a decompressor; one byte more means the body is too large.
fn read_bounded<R: Read>(
    r: R,
    limit: usize,
    encoding: &'static str,
) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::new();
    let mut taken = r.take(limit as u64 + 1);
    taken
        .read_to_end(&mut out)
        .map_err(|e| corrupt(encoding, e))?;
    if out.len() > limit {
        return Err(CodecError::TooLarge { limit });
    }
    Ok(out)
}

fn corrupt(encoding: &'static str, e: io::Error) -> CodecError {
    CodecError::Corrupt {
        encoding,
        reason: e.to_string(),
    }
}

/// Parses an uncompressed push body and checks it against the wire limits.
pub fn parse_push(json: &[u8]) -> Result<PushRequest<'_>, CodecError> {
    let req: PushRequest<'_> = serde_json::from_slice(json).map_err(json_error)?;
    req.validate()?;
    Ok(req)
}

/// [`parse_push`] with the lines that contain escapes unescaped into `text` (cleared first)
/// instead of one `String` each, and with the body's UTF-8 checked once instead of string by
/// string: the same request, or the same error, for every body (property-tested below), with
/// no allocation per line. Lines without escapes borrow from `json`, the others from `text`.
///
/// A body of the shape agents send is read by a one-pass parser ([`crate::canonical`]);
/// anything it does not accept is parsed again by serde_json, which reports the errors.
pub fn parse_push_in<'a>(
    json: &'a [u8],
    text: &'a mut String,
) -> Result<PushRequest<'a>, CodecError> {
    let mut lines = InBuffer::new(text, json.len());
    let mut req = match std::str::from_utf8(json) {
        Ok(s) => match crate::canonical::parse(s, &mut lines) {
            Some(req) => Ok(req),
            None => {
                lines.reset();
                parse_with(&mut lines, serde_json::de::StrRead::new(s))
            }
        },
        // serde_json checks each string and reports where the bad byte is.
        Err(_) => parse_with(&mut lines, serde_json::de::SliceRead::new(json)),
    }
    .map_err(json_error)?;
    lines.fill(&mut req)?;
    req.validate()?;
    Ok(req)
}

/// Deserialises a whole body from `read` as `serde_json::from_slice` does: the value, then
/// nothing but whitespace.
fn parse_with<'a, R: serde_json::de::Read<'a>>(
    lines: &mut InBuffer<'_>,
    read: R,
) -> Result<PushRequest<'a>, serde_json::Error> {
    let mut de = serde_json::Deserializer::new(read);
    let req = lines.deserialize(&mut de)?;
    de.end()?;
    Ok(req)
}

/// A serde_json error as [`CodecError::Json`]: its line and column, and its message without
/// any input it quotes.
pub fn json_error(e: serde_json::Error) -> CodecError {
    CodecError::Json {
        line: e.line(),
        column: e.column(),
        reason: json_reason(&e),
    }
}

/// serde_json's message without its trailing " at line L column C" (we report those apart),
/// and without the input it quotes: `invalid type: string "…", expected …` would otherwise
/// echo a piece of a log line (or a label value) back to the client and into logs. Every
/// `"…"` or `` `…` `` span of the message is replaced by `"…"`.
pub fn json_reason(e: &serde_json::Error) -> String {
    let msg = e.to_string();
    let msg = match msg.rfind(" at line ") {
        Some(i) => &msg[..i],
        None => &msg,
    };
    let mut out = String::with_capacity(msg.len());
    let mut quote: Option<char> = None;
    for c in msg.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '`' => {
                out.push_str("\"…\"");
                quote = Some(c);
            }
            None => out.push(c),
        }
    }
    out
}

/// Compresses `data` with gzip (used by tests and by clients that prefer gzip).
pub fn gzip(data: &[u8]) -> Result<Vec<u8>, CodecError> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data)
        .map_err(|e| CodecError::Encode(e.to_string()))?;
    enc.finish().map_err(|e| CodecError::Encode(e.to_string()))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::limits::MAX_DECOMPRESSED_BYTES;
    use crate::push::{Entry, PushStream};

    fn sample() -> PushRequest<'static> {
        PushRequest {
            streams: vec![PushStream {
                stream: [
                    ("team".to_owned(), "payments".to_owned()),
                    ("file".to_owned(), "/var/log/app.log".to_owned()),
                ]
                .into(),
                values: vec![
                    Entry::new(1764151200123000000, "payment accepted id=1"),
                    Entry::new(1764151200123000001, "ünïcode \"quoted\" \\ line"),
                ],
            }],
        }
    }

    #[test]
    fn zstd_round_trip() {
        let req = sample();
        let enc = encode_zstd(&req, DEFAULT_ZSTD_LEVEL).unwrap();
        let json = decompress(&enc.body, ContentEncoding::Zstd, MAX_DECOMPRESSED_BYTES).unwrap();
        let back = parse_push(&json).unwrap();
        assert_eq!(back, req);
        // A line without escapes borrows from the JSON; one with escapes is unescaped.
        assert!(matches!(
            back.streams[0].values[0].line,
            std::borrow::Cow::Borrowed(_)
        ));
        assert_eq!(
            back.streams[0].values[1].line(),
            "ünïcode \"quoted\" \\ line"
        );
        assert_eq!(json.len(), enc.json_bytes);
        assert_eq!(payload_sha256(&json), enc.payload_sha256);
    }

    /// Both parsers on one body: the same request, or the same error message.
    fn same_as_parse_push(body: &[u8]) -> Result<(), String> {
        let mut text = String::from("left over from the batch before");
        let fast = parse_push_in(body, &mut text);
        let slow = parse_push(body);
        match (&fast, &slow) {
            (Ok(f), Ok(s)) if f == s => Ok(()),
            (Err(f), Err(s)) if f.to_string() == s.to_string() => Ok(()),
            _ => Err(format!(
                "body {:?}: parse_push_in {fast:?}, parse_push {slow:?}",
                String::from_utf8_lossy(body)
            )),
        }
    }

    #[test]
    fn parse_push_in_agrees_on_edge_cases() {
        for body in [
            &br#"{"streams":[{"stream":{"a":"b"},"values":[["1","x\"y"],["2","plain"],["3","\u00fc\ud83d\ude00\n"]]}]}"#[..],
            br#"{"streams":[{"values":[["1","a\\b"]],"stream":{},"extra":[1,{"x":"\""}]}],"more":null}"#,
            br#"[[[{"a":"b"},[["1","\"",{"k":"v"}]]]]]"#,
            br#"{"streams":[[{},[["1","\t"]]]]}"#,
            br#"{"streams":[{"stream":{},"values":[]}],"streams":[]}"#,
            br#"{"streams":[{"stream":{},"stream":{},"values":[]}]}"#,
            br#"{"streams":[{"stream":{},"values":[],"values":[]}]}"#,
            br#"{"streams":[{"stream":{}}]}"#,
            br#"{"streams":[{"values":[]}]}"#,
            br#"{}"#,
            br#"[]"#,
            br#"[[[{}]]]"#,
            br#"{"streams":[{"stream":{},"values":[["1","\"a\"","m",4]]}]} "#,
            br#"{"streams":[{"stream":{},"values":[["\u0031","\"a\""]]}]}x"#,
            br#"{"streams":[{"stream":{},"values":[["1","\ud800"]]}]}"#,
            b"{\"streams\":[{\"stream\":{},\"values\":[[\"1\",\"\xff\\\"\"]]}]}",
            b"{\"streams\":[{\"stream\":{},\"values\":[[\"1\",\"\\\"\"]]}],\"x\":\"\xff\"}",
            b"{\"streams\":[{\"stream\":{},\"values\":[[\"1\",\"a\nb\"]]}]}",
        ] {
            same_as_parse_push(body).unwrap();
        }
        // Escaped lines in several streams land in their own places.
        let mut text = String::new();
        let body = br#"{"streams":[{"stream":{},"values":[["1","a\"1"],["2","b"]]},{"stream":{},"values":[["3","c"],["4","d\\2"]]}]}"#;
        let req = parse_push_in(body, &mut text).unwrap();
        let lines: Vec<_> = req
            .streams
            .iter()
            .flat_map(|s| &s.values)
            .map(|e| e.line())
            .collect();
        assert_eq!(lines, ["a\"1", "b", "c", "d\\2"]);
    }

    /// Edits a body: each `(at, kind, byte)` replaces, inserts or deletes a byte, or cuts
    /// the body short; bytes that matter to JSON are likelier than others, and any byte may
    /// break the UTF-8.
    pub(crate) fn edit(body: &mut Vec<u8>, edits: &[(usize, u8, u8)]) {
        for &(at, kind, byte) in edits {
            let at = at % (body.len() + 1);
            let byte = match byte % 4 {
                0 => b"\"\\{}[],:0u n"[usize::from(byte / 4) % 12],
                _ => byte,
            };
            match kind {
                0 if at < body.len() => body[at] = byte,
                1 => body.insert(at, byte),
                2 if at < body.len() => {
                    body.remove(at);
                }
                _ => body.truncate(at),
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(2000))]
        #[test]
        fn parse_push_in_agrees_with_parse_push(
            streams in proptest::collection::vec(
                (
                    proptest::collection::btree_map("[a-z_]{1,3}", "[a-z\"\\\\ü]{0,3}", 0..3),
                    proptest::collection::vec(
                        (0i64..3_000_000_000_000_000_000, "[a-z0-9 \"\\\\\t\n\u{1}/üé😀]{0,12}"),
                        0..6,
                    ),
                ),
                0..4,
            ),
            edits in proptest::collection::vec((proptest::prelude::any::<usize>(), 0u8..4, proptest::prelude::any::<u8>()), 0..4),
        ) {
            let req = PushRequest {
                streams: streams
                    .into_iter()
                    .map(|(stream, values)| PushStream {
                        stream,
                        values: values.into_iter().map(|(ts, l)| Entry::new(ts, l)).collect(),
                    })
                    .collect(),
            };
            let mut body = serde_json::to_vec(&req).unwrap();
            // Unmutated, both parsers give back the request.
            let mut text = String::new();
            proptest::prop_assert_eq!(&parse_push_in(&body, &mut text).unwrap(), &req);
            // Mutated.
            edit(&mut body, &edits);
            if let Err(e) = same_as_parse_push(&body) {
                proptest::prop_assert!(false, "{}", e);
            }
        }
    }

    #[test]
    fn gzip_and_identity_decode() {
        let req = sample();
        let json = serde_json::to_vec(&req).unwrap();
        let gz = gzip(&json).unwrap();
        for (body, encoding) in [
            (gz, ContentEncoding::Gzip),
            (json, ContentEncoding::Identity),
        ] {
            let back = decompress(&body, encoding, 1 << 20).unwrap();
            assert_eq!(parse_push(&back).unwrap(), req);
        }
    }

    #[test]
    fn encoding_header_values() {
        assert_eq!(
            ContentEncoding::from_header(None).unwrap(),
            ContentEncoding::Identity
        );
        assert_eq!(
            ContentEncoding::from_header(Some("ZSTD")).unwrap(),
            ContentEncoding::Zstd
        );
        assert_eq!(
            ContentEncoding::from_header(Some("gzip")).unwrap(),
            ContentEncoding::Gzip
        );
        let err = ContentEncoding::from_header(Some("br"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("unsupported content-encoding"), "{err}");
    }

    #[test]
    fn decompression_bomb_is_refused() {
        // 200 MiB of zeros compress to a few hundred KiB of zstd and ~200 KiB of gzip.
        let zeros = vec![0u8; 200 * 1024 * 1024];
        let z = zstd::bulk::compress(&zeros, 3).unwrap();
        assert!(z.len() < 1024 * 1024);
        let err = decompress(&z, ContentEncoding::Zstd, MAX_DECOMPRESSED_BYTES).unwrap_err();
        assert!(matches!(err, CodecError::TooLarge { .. }), "{err}");
        let g = gzip(&zeros).unwrap();
        let err = decompress(&g, ContentEncoding::Gzip, MAX_DECOMPRESSED_BYTES).unwrap_err();
        assert!(matches!(err, CodecError::TooLarge { .. }), "{err}");
        let err = decompress(&zeros, ContentEncoding::Identity, 1024).unwrap_err();
        assert!(matches!(err, CodecError::TooLarge { .. }), "{err}");
    }

    #[test]
    fn corrupt_compression_is_refused() {
        let err = decompress(b"definitely not zstd", ContentEncoding::Zstd, 1024).unwrap_err();
        assert!(
            matches!(
                err,
                CodecError::Corrupt {
                    encoding: "zstd",
                    ..
                }
            ),
            "{err}"
        );
        let err = decompress(b"not gzip either", ContentEncoding::Gzip, 1024).unwrap_err();
        assert!(
            matches!(
                err,
                CodecError::Corrupt {
                    encoding: "gzip",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn malformed_json_is_refused_with_position() {
        let err = parse_push(b"{\"streams\": [ {\"stream\": {}, \"values\": [[\"1\", 2]]} ]}")
            .unwrap_err();
        match &err {
            CodecError::Json {
                line,
                column,
                reason,
            } => {
                assert_eq!(*line, 1);
                assert!(*column > 30, "{column}");
                assert!(reason.contains("invalid type"), "{reason}");
            }
            other => panic!("unexpected {other:?}"),
        }
        // The message never quotes the input (a log line, a label value, a number).
        for body in [
            &br#"{"streams":[{"stream":{},"values":[["1","x"],"secret-4711"]}]}"#[..],
            br#"{"streams":[{"stream":{"team":4711},"values":[]}]}"#,
            br#"{"streams":[{"stream":{"team":"a"},"values":[["secret-4711","x"]]}]}"#,
            br#"{"streams":"secret-4711"}"#,
        ] {
            let msg = parse_push(body).unwrap_err().to_string();
            assert!(!msg.contains("4711"), "{msg}");
            assert!(
                msg.starts_with("malformed push body at line 1 column"),
                "{msg}"
            );
        }
        assert!(parse_push(b"").is_err());
        assert!(parse_push(b"{\"streams\": 5}").is_err());
        assert!(parse_push(b"not json").is_err());
        // An empty push is valid (Loki accepts it too).
        assert_eq!(parse_push(b"{\"streams\":[]}").unwrap().records(), 0);
    }
}
