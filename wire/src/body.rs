//! Writing a one-stream push body as records arrive, instead of collecting an [`Entry`] (one
//! `String`) per line and serialising them all at the end: each line is JSON-escaped once,
//! straight into the body. This is how the agent builds its batches; the bytes are the same
//! as `serde_json::to_vec` of the equivalent [`PushRequest`] (a test compares them), so the
//! aggregator, a real Loki and the payload hash see no difference.
//!
//! [`Entry`]: crate::push::Entry
//! [`PushRequest`]: crate::push::PushRequest

use std::collections::BTreeMap;

/// A one-stream push body, being filled: the JSON up to the open `values` array is written
/// when it starts, each record is appended as it arrives, and [`StreamBody::finish`] closes
/// it, so the body is built in one buffer without copies.
#[derive(Debug)]
pub struct StreamBody {
    json: Vec<u8>,
    records: usize,
    raw_bytes: usize,
}

impl StreamBody {
    /// A body for the stream with `labels`, written into `buf` (cleared first; pass a
    /// buffer back from [`StreamBody::finish`] to reuse its allocation).
    pub fn new(labels: &BTreeMap<String, String>, mut buf: Vec<u8>) -> StreamBody {
        buf.clear();
        buf.extend_from_slice(b"{\"streams\":[{\"stream\":{");
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                buf.push(b',');
            }
            buf.push(b'"');
            escape_into(k, &mut buf);
            buf.extend_from_slice(b"\":\"");
            escape_into(v, &mut buf);
            buf.push(b'"');
        }
        buf.extend_from_slice(b"},\"values\":[");
        StreamBody {
            json: buf,
            records: 0,
            raw_bytes: 0,
        }
    }

    /// Appends the record `(ts_ns, line)`.
    pub fn push(&mut self, ts_ns: i64, line: &str) {
        let v = &mut self.json;
        v.reserve(line.len() + 32);
        if self.records > 0 {
            v.push(b',');
        }
        v.extend_from_slice(b"[\"");
        v.extend_from_slice(itoa::Buffer::new().format(ts_ns).as_bytes());
        v.extend_from_slice(b"\",\"");
        escape_into(line, v);
        v.extend_from_slice(b"\"]");
        self.records += 1;
        self.raw_bytes += line.len();
    }

    /// Records so far.
    pub fn records(&self) -> usize {
        self.records
    }

    /// Line bytes so far (the batch's raw size).
    pub fn raw_bytes(&self) -> usize {
        self.raw_bytes
    }

    /// The whole push body (uncompressed JSON).
    pub fn finish(mut self) -> Vec<u8> {
        self.json.extend_from_slice(b"]}]}");
        self.json
    }
}

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// Whether `b` holds a control byte (below 0x20): eight bytes at a time, without branches
/// (subtracting 0x20 borrows into the high bit of exactly those bytes; bytes >= 0x80 are
/// masked out by `!w`).
fn has_control(b: &[u8]) -> bool {
    let mut words = b.chunks_exact(8);
    let mut acc = 0u64;
    for c in &mut words {
        let mut word = [0u8; 8];
        word.copy_from_slice(c);
        let w = u64::from_le_bytes(word);
        acc |= w.wrapping_sub(0x20 * LO) & !w & HI;
    }
    acc != 0 || words.remainder().iter().any(|&c| c < 0x20)
}

/// Appends `s` JSON-escaped (without quotes), as serde_json escapes it: `\"`, `\\`, the
/// short escapes `\b \f \n \r \t`, other control bytes as `\u00XX`, everything else as is.
/// A line without control bytes (nearly all) is copied in the spans between its quotes and
/// backslashes, which `memchr2` finds with SIMD.
pub fn escape_into(s: &str, out: &mut Vec<u8>) {
    let b = s.as_bytes();
    let mut clean = 0; // b[clean..j] needs no escaping and is not yet copied
    if !has_control(b) {
        for j in memchr::memchr2_iter(b'"', b'\\', b) {
            out.extend_from_slice(&b[clean..j]);
            out.push(b'\\');
            out.push(b[j]);
            clean = j + 1;
        }
    } else {
        for (j, &c) in b.iter().enumerate() {
            if let Some(e) = escape_of(c) {
                out.extend_from_slice(&b[clean..j]);
                push_escape(e, c, out);
                clean = j + 1;
            }
        }
    }
    out.extend_from_slice(&b[clean..]);
}

/// The escape of byte `c`: `Some(letter)` for a short escape, `Some(b'u')` for `\u00XX`.
#[inline(always)]
fn escape_of(c: u8) -> Option<u8> {
    match c {
        b'"' => Some(b'"'),
        b'\\' => Some(b'\\'),
        b'\n' => Some(b'n'),
        b'\r' => Some(b'r'),
        b'\t' => Some(b't'),
        0x08 => Some(b'b'),
        0x0c => Some(b'f'),
        0x00..=0x1f => Some(b'u'),
        _ => None,
    }
}

fn push_escape(e: u8, c: u8, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    if e == b'u' {
        out.extend_from_slice(b"\\u00");
        out.push(HEX[usize::from(c >> 4)]);
        out.push(HEX[usize::from(c & 0xf)]);
    } else {
        out.push(b'\\');
        out.push(e);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::push::{Entry, PushRequest, PushStream};
    use proptest::prelude::*;

    fn serde_body(labels: &BTreeMap<String, String>, lines: &[(i64, String)]) -> Vec<u8> {
        serde_json::to_vec(&PushRequest {
            streams: vec![PushStream {
                stream: labels.clone(),
                values: lines
                    .iter()
                    .map(|(t, l)| Entry::new(*t, l.clone()))
                    .collect(),
            }],
        })
        .unwrap()
    }

    fn ours(labels: &BTreeMap<String, String>, lines: &[(i64, String)]) -> Vec<u8> {
        // A used buffer, to show it is cleared.
        let mut b = StreamBody::new(labels, b"leftovers".to_vec());
        for (t, l) in lines {
            b.push(*t, l);
        }
        assert_eq!(b.records(), lines.len());
        assert_eq!(
            b.raw_bytes(),
            lines.iter().map(|(_, l)| l.len()).sum::<usize>()
        );
        b.finish()
    }

    #[test]
    fn same_bytes_as_serde_json() {
        let labels: BTreeMap<String, String> = [
            ("team".to_owned(), "payments".to_owned()),
            ("file".to_owned(), "/var/log/\"odd\"\\path\n.log".to_owned()),
        ]
        .into();
        let lines: Vec<(i64, String)> = [
            "",
            "plain ascii line of some length, longer than a word",
            "ünïcode \"quoted\" \\ back\tslash\r\n",
            "\u{0}\u{1}\u{8}\u{b}\u{c}\u{1f}\u{7f}\u{80}\u{2028} end",
            "{\"json\":\"in a line\",\"n\":1}",
            "exactly8",
            "1234567\"",
        ]
        .iter()
        .enumerate()
        .map(|(i, l)| (1_764_151_200_000_000_000 + i as i64, (*l).to_owned()))
        .collect();
        assert_eq!(ours(&labels, &lines), serde_body(&labels, &lines));
        assert_eq!(ours(&labels, &[]), serde_body(&labels, &[]));
        // And it parses back to the same request.
        let json = ours(&labels, &lines);
        let back = crate::codec::parse_push(&json).unwrap();
        assert_eq!(back.records(), lines.len());
        assert_eq!(back.streams[0].values[2].line(), lines[2].1);
    }

    proptest! {
        #[test]
        fn escaping_matches_serde_json(
            lines in proptest::collection::vec(
                proptest::string::string_regex("(?s).{0,40}").unwrap(), 0..6),
            bytes in proptest::collection::vec(0u8..0x80, 0..40),
        ) {
            let labels: BTreeMap<String, String> =
                [("a\"\u{1}".to_owned(), "b\\".to_owned()), ("c".to_owned(), String::new())].into();
            let mut all: Vec<(i64, String)> =
                lines.into_iter().enumerate().map(|(i, l)| (i as i64, l)).collect();
            // Dense ASCII control bytes and quotes, which a random `.` rarely produces.
            all.push((-1, String::from_utf8(bytes).unwrap()));
            prop_assert_eq!(ours(&labels, &all), serde_body(&labels, &all));
        }
    }
}
