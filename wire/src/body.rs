//! Writing a one-stream push body as records arrive, instead of collecting an [`Entry`] (one
//! `String`) per line and serialising them all at the end: each line is JSON-escaped once,
//! straight into the body. This is how the agent builds its batches; the bytes are the same
//! as `serde_json::to_vec` of the equivalent [`PushRequest`] (a test compares them), so the
//! aggregator, a real Loki and the payload hash see no difference.
//!
//! [`Entry`]: crate::push::Entry
//! [`PushRequest`]: crate::push::PushRequest

use std::collections::BTreeMap;

use fjord_bytes::baseline;

use crate::scan::{special, special_byte, BLOCK};

/// A one-stream push body, being filled: the JSON up to the open `values` array is written
/// when it starts, each record is appended as it arrives, and [`StreamBody::finish`] closes
/// it, so the body is built in one buffer without copies.
#[derive(Debug)]
pub struct StreamBody {
    json: Vec<u8>,
    records: usize,
    raw_bytes: usize,
    /// The last record's timestamp and its decimal text (`ts_text[..ts_len]`): the agent
    /// stamps the lines of one read 1 ns apart, so the next text is usually this one plus
    /// one, written without formatting the number again.
    ts: i64,
    ts_text: [u8; 20],
    ts_len: usize,
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
            ts: 0,
            ts_text: [0; 20],
            ts_len: 0,
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
        let text = &mut self.ts_text[..self.ts_len];
        // `ts_ns > 0` makes the last timestamp non-negative, so its text has no sign.
        let next = self.records > 0 && ts_ns > 0 && self.ts.checked_add(1) == Some(ts_ns);
        if !(next && increment(text)) {
            let mut itoa = itoa::Buffer::new();
            let t = itoa.format(ts_ns).as_bytes();
            self.ts_len = t.len();
            self.ts_text[..t.len()].copy_from_slice(t);
        }
        self.ts = ts_ns;
        v.extend_from_slice(&self.ts_text[..self.ts_len]);
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

/// Adds one to the decimal digits of a non-negative number (no sign) in place. False when
/// the carry leaves the top digit (`999` → `1000`, which needs a new length; the text is
/// then junk).
#[inline]
fn increment(text: &mut [u8]) -> bool {
    for d in text.iter_mut().rev() {
        if *d < b'9' {
            *d += 1;
            return true;
        }
        *d = b'0';
    }
    false
}

/// Appends `s` JSON-escaped (without quotes), as serde_json escapes it: `\"`, `\\`, the
/// short escapes `\b \f \n \r \t`, other control bytes as `\u00XX`, everything else as is.
///
/// One pass: each 16-byte block (8 off x86_64; [`crate::scan`]) is tested for quotes, backslashes and control
/// bytes at once and copied whole; in a block with some, the flagged bytes are then visited in
/// order from the mask and each escape is written straight into `out`, so a JSON line with a
/// quote every few bytes is still tested once per block. (It used to restart the block test after every escape,
/// and before that took three passes.)
pub fn escape_into(s: &str, out: &mut Vec<u8>) {
    let rest = escape_blocks::<BLOCK>(s.as_bytes(), out, |b| special(baseline(), b));
    escape_scalar(rest, out);
}

/// The widest block [`escape_blocks`] handles: the size of its fixed moves.
const MAX_W: usize = 16;

/// The block loop of [`escape_into`] for blocks of `W` bytes, where `special` flags the
/// bytes to escape, one mask bit per byte. Returns the tail shorter than a block, not yet
/// written.
///
/// A block with flags is escaped straight into `out`'s reserved room with fixed-size moves
/// only (the plain bytes before each escape as a whole `MAX_W`-byte move cut to length, the
/// escape as an 8-byte move from [`ESCAPES`]): a JSON line has a quote every few bytes, and
/// variable-length copies would each be a call (measured: the restart-per-escape loop this
/// replaced cost about 70 instructions per escape).
#[inline(always)]
fn escape_blocks<'a, const W: usize>(
    b: &'a [u8],
    out: &mut Vec<u8>,
    special: impl Fn(&[u8; W]) -> u64,
) -> &'a [u8] {
    const { assert!(W <= MAX_W) };
    out.reserve(b.len() + 2);
    let mut i = 0;
    while let Some(chunk) = b[i..].first_chunk::<W>() {
        let mut m = special(chunk);
        i += W;
        if m == 0 {
            out.extend_from_slice(chunk);
            continue;
        }
        let mut src = [0u8; 2 * MAX_W];
        src[..W].copy_from_slice(chunk);
        // Each byte of the chunk becomes at most 6 bytes, and a move writes up to `MAX_W`
        // bytes past the end of what it keeps, so this is room for every write below.
        out.reserve(8 * MAX_W);
        let start = out.len();
        let dst = out.spare_capacity_mut().as_mut_ptr().cast::<u8>();
        // dst[..pos] is written; chunk[plain..] is not; pos <= 6 * plain <= 6 * W.
        let (mut pos, mut plain) = (0, 0);
        while m != 0 {
            let j = m.trailing_zeros() as usize;
            m &= m - 1;
            let c = chunk[j];
            // `plain <= j` holds as the flags are visited in order; it is tested anyway,
            // because the bounds below rest on it.
            if plain <= j {
                let (escape, len) = &ESCAPES[usize::from(c & 0x7f)];
                debug_assert!(pos + MAX_W + 8 <= 8 * MAX_W);
                // SAFETY: `src` has `MAX_W` bytes from `plain <= W <= MAX_W`, and `dst` has
                // room for `pos + MAX_W` and then `pos + (j - plain) + 8` bytes, both at most
                // `6 * W + MAX_W` as `plain <= j < W` (reserved above); the buffers do not
                // overlap.
                unsafe {
                    std::ptr::copy_nonoverlapping(src.as_ptr().add(plain), dst.add(pos), MAX_W);
                    pos += j - plain;
                    std::ptr::copy_nonoverlapping(escape.as_ptr(), dst.add(pos), 8);
                }
                pos += usize::from(*len);
                plain = j + 1;
            }
        }
        // SAFETY: as above; then `dst[..pos]` has been written, within the reserved room.
        unsafe {
            std::ptr::copy_nonoverlapping(src.as_ptr().add(plain), dst.add(pos), MAX_W);
            pos += W - plain;
            out.set_len(start + pos);
        }
    }
    &b[i..]
}

/// The escape of each byte below 0x80 that [`special_byte`] flags (zero-padded to 8 bytes)
/// and its length: `\"`, `\\`, the short escapes `\b \f \n \r \t`, and `\u00XX` for the
/// other control bytes, as serde_json writes them. Other entries are unused.
static ESCAPES: [([u8; 8], u8); 128] = escapes();

const fn escapes() -> [([u8; 8], u8); 128] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut t = [([0u8; 8], 0u8); 128];
    let mut c = 0;
    while c < 128 {
        let short = match c as u8 {
            b'"' => b'"',
            b'\\' => b'\\',
            b'\n' => b'n',
            b'\r' => b'r',
            b'\t' => b't',
            0x08 => b'b',
            0x0c => b'f',
            _ => 0,
        };
        if short != 0 {
            t[c] = ([b'\\', short, 0, 0, 0, 0, 0, 0], 2);
        } else if c < 0x20 {
            t[c] = (
                [b'\\', b'u', b'0', b'0', HEX[c >> 4], HEX[c & 0xf], 0, 0],
                6,
            );
        }
        c += 1;
    }
    t
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
    let (escape, len) = &ESCAPES[usize::from(c & 0x7f)];
    out.extend_from_slice(&escape[..usize::from(*len)]);
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

    /// Consecutive timestamps are written by incrementing the last one's text: across
    /// carries (`…9` → `…0`), a new digit (`99` → `100`), jumps, repeats, zero, negatives
    /// and the extremes it is the same text as formatting each number.
    #[test]
    fn consecutive_timestamps_are_formatted_exactly() {
        let labels: BTreeMap<String, String> = [("a".to_owned(), "b".to_owned())].into();
        let mut ts = Vec::new();
        for start in [
            0,
            8,
            98,
            999_999,
            1_764_151_199_999_999_997,
            i64::MAX - 3,
            -3,
            i64::MIN,
        ] {
            ts.extend((0..4).map(|k| start.saturating_add(k)));
            ts.push(start); // a repeat, then a jump back
        }
        let lines: Vec<(i64, String)> = ts.into_iter().map(|t| (t, "l".to_owned())).collect();
        assert_eq!(ours(&labels, &lines), serde_body(&labels, &lines));
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
        let rest = escape_blocks::<8>(s.as_bytes(), &mut out, |b| special(fjord_bytes::Swar, b));
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
