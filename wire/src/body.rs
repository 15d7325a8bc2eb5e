//! Writing a one-stream push body as records arrive, instead of collecting an [`Entry`] (one
//! `String`) per line and serialising them all at the end: each line is JSON-escaped once,
//! straight into the body. This is how the agent builds its batches; the bytes are the same
//! as `serde_json::to_vec` of the equivalent [`PushRequest`] (a test compares them), so the
//! aggregator, a real Loki and the payload hash see no difference.
//!
//! [`Entry`]: crate::push::Entry
//! [`PushRequest`]: crate::push::PushRequest

use std::collections::BTreeMap;

use crate::scan::special_byte;
#[cfg(target_arch = "x86_64")]
use crate::scan::sse2;
#[cfg(not(target_arch = "x86_64"))]
use crate::scan::swar;

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

/// Appends `s` JSON-escaped (without quotes), as serde_json escapes it: `\"`, `\\`, the
/// short escapes `\b \f \n \r \t`, other control bytes as `\u00XX`, everything else as is.
///
/// One pass: each 16-byte block (8 without SSE2) is tested for quotes, backslashes and control
/// bytes at once and copied whole; at the first byte that needs escaping, the copy is cut
/// back to the bytes before it, the escape is written and the next block starts after it.
/// (It used to take three passes: a control-byte test, `memchr2` for quotes and
/// backslashes, which restarts at every hit, and the copies in between.)
pub fn escape_into(s: &str, out: &mut Vec<u8>) {
    #[cfg(target_arch = "x86_64")]
    let rest = escape_blocks(s.as_bytes(), out, sse2::special, 1);
    #[cfg(not(target_arch = "x86_64"))]
    let rest = escape_blocks(s.as_bytes(), out, swar::special, 8);
    escape_scalar(rest, out);
}

/// The block loop of [`escape_into`] for blocks of `W` bytes, where `special` flags the
/// bytes to escape with `bits` mask bits per byte, the lowest flag exact. Returns the tail
/// shorter than a block, not yet written.
#[inline(always)]
fn escape_blocks<'a, const W: usize>(
    b: &'a [u8],
    out: &mut Vec<u8>,
    special: impl Fn(&[u8; W]) -> u64,
    bits: usize,
) -> &'a [u8] {
    out.reserve(b.len() + 2);
    let mut i = 0;
    while let Some(chunk) = b[i..].first_chunk::<W>() {
        let m = special(chunk);
        out.extend_from_slice(chunk);
        if m == 0 {
            i += W;
            continue;
        }
        let j = m.trailing_zeros() as usize / bits;
        out.truncate(out.len() - W + j);
        push_escape(chunk[j], out);
        i += j + 1;
    }
    &b[i..]
}

/// The straightforward escape, byte by byte: the tail shorter than a block, and the
/// property tests' reference.
fn escape_scalar(b: &[u8], out: &mut Vec<u8>) {
    let mut clean = 0; // b[clean..j] needs no escaping and is not yet copied
    for (j, &c) in b.iter().enumerate() {
        if special_byte(c) {
            out.extend_from_slice(&b[clean..j]);
            push_escape(c, out);
            clean = j + 1;
        }
    }
    out.extend_from_slice(&b[clean..]);
}

/// Writes the escape of `c`, one of the bytes [`special_byte`] flags (the shared
/// [`crate::scan`] classification).
#[inline]
fn push_escape(c: u8, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let short = match c {
        b'"' => b'"',
        b'\\' => b'\\',
        b'\n' => b'n',
        b'\r' => b'r',
        b'\t' => b't',
        0x08 => b'b',
        0x0c => b'f',
        _ => {
            out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(c >> 4)],
                HEX[usize::from(c & 0xf)],
            ]);
            return;
        }
    };
    out.extend_from_slice(&[b'\\', short]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::push::{Entry, PushRequest, PushStream};
    use crate::scan::swar;
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

    /// The byte-by-byte reference, and the SWAR block loop (the fallback of targets
    /// without SSE2), on the same input.
    fn reference(s: &str) -> Vec<u8> {
        let mut out = b"x".to_vec();
        escape_scalar(s.as_bytes(), &mut out);
        out
    }

    fn swar_path(s: &str) -> Vec<u8> {
        let mut out = b"x".to_vec();
        let rest = escape_blocks(s.as_bytes(), &mut out, swar::special, 8);
        escape_scalar(rest, &mut out);
        out
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

        /// The block loops (SSE2 here, and SWAR) write what the byte-by-byte escape writes,
        /// which is serde_json's escape.
        #[test]
        fn block_escape_equals_the_reference(
            clean in proptest::string::string_regex("[a-z ]{0,40}").unwrap(),
            s in crate::scan::tests::dense(80),
        ) {
            let s = format!("{clean}{s}");
            let mut fast = b"x".to_vec();
            escape_into(&s, &mut fast);
            let want = reference(&s);
            prop_assert_eq!(&fast, &want);
            prop_assert_eq!(&swar_path(&s), &want);
            let serde = serde_json::to_vec(&s).unwrap();
            prop_assert_eq!(&want[1..], &serde[1..serde.len() - 1]);
        }
    }
}
