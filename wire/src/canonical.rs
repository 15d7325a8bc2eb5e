//! A one-pass parser for the push bodies agents send,
//! `{"streams":[{"stream":{labels},"values":[["<ns>","<line>"],…]},…]}`, with any JSON
//! whitespace between tokens and `stream` and `values` in either order.
//!
//! Each string is read once: blocks of 16 bytes are classified for `"`, `\` and control
//! bytes at once ([`crate::scan`], shared with the agent's escaper). A line without escapes
//! is borrowed from the body; a line with escapes is copied block by block into the push's
//! buffer ([`InBuffer`]) with each escape decoded as serde_json decodes it. serde_json
//! instead copies the runs and escapes into its scratch buffer a call at a time and hands
//! that over, to be copied again; by callgrind this parser takes less than half of its
//! instructions on the benchmark's bodies (docs/benchmarks.md).
//!
//! The parser only ever accepts. Anything else — another shape, other or repeated keys, a
//! third element in an entry, an escaped key or timestamp, a lone surrogate, a control byte,
//! any syntax error — makes it return `None`, and the caller parses the body again with
//! serde_json, which returns what it always returned (errors with their line and column
//! included). So the contract is one-sided: a request it returns is the request serde_json
//! returns for the same body (property-tested below, on written and edited bodies). The
//! body's UTF-8 has been checked by the caller.

use std::borrow::Cow;
use std::collections::BTreeMap;

use crate::push::{parse_ts, Entry, InBuffer, PushRequest, PushStream};
use crate::scan::{find_special, first_special, BLOCK};

/// Parses `json` if it has the canonical shape, the lines with escapes into `lines`.
pub(crate) fn parse<'a>(json: &'a str, lines: &mut InBuffer<'_>) -> Option<PushRequest<'a>> {
    let mut p = Parser { s: json, i: 0 };
    p.token(b'{')?;
    if p.key()? != "streams" {
        return None;
    }
    let streams = p.array(|p, index| p.stream(index, lines))?;
    p.token(b'}')?;
    p.ws();
    (p.i == json.len()).then_some(PushRequest { streams })
}

/// A string whose opening quote has been read.
enum Str<'a> {
    /// Without escapes: the text, borrowed; the closing quote has been read too.
    Plain(&'a str),
    /// With escapes: its text starts at `start`, its first `\` is at `at`; nothing past
    /// `start` has been consumed.
    Escaped { start: usize, at: usize },
}

/// The body and how far it has been read. Every read is checked (`get`), so no input can
/// make it panic; a read past the end is a `None` like any other surprise.
struct Parser<'a> {
    s: &'a str,
    i: usize,
}

impl<'a> Parser<'a> {
    fn bytes(&self) -> &'a [u8] {
        self.s.as_bytes()
    }

    /// Skips JSON whitespace (what serde_json skips: space, tab, line feed, carriage return).
    #[inline(always)]
    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\t' | b'\r') = self.bytes().get(self.i) {
            self.i += 1;
        }
    }

    /// Whether the next byte after whitespace is `c`; takes it if so.
    #[inline(always)]
    fn eat(&mut self, c: u8) -> bool {
        self.ws();
        let hit = self.bytes().get(self.i) == Some(&c);
        self.i += usize::from(hit);
        hit
    }

    /// The byte `c`, after whitespace.
    #[inline(always)]
    fn token(&mut self, c: u8) -> Option<()> {
        self.eat(c).then_some(())
    }

    /// After an element of an array or object closed by `close`: whether another follows.
    #[inline(always)]
    fn more(&mut self, close: u8) -> Option<bool> {
        if self.eat(b',') {
            Some(true)
        } else {
            self.token(close).map(|()| false)
        }
    }

    /// `[`, elements read by `element` (given each one's index) separated by commas, `]`.
    #[inline(always)]
    fn array<T>(
        &mut self,
        mut element: impl FnMut(&mut Self, usize) -> Option<T>,
    ) -> Option<Vec<T>> {
        self.token(b'[')?;
        let mut out = Vec::new();
        if self.eat(b']') {
            return Some(out);
        }
        loop {
            out.push(element(self, out.len())?);
            if !self.more(b']')? {
                return Some(out);
            }
        }
    }

    /// An object key without escapes, and its colon.
    fn key(&mut self) -> Option<&'a str> {
        self.token(b'"')?;
        let key = self.plain()?;
        self.token(b':')?;
        Some(key)
    }

    /// `{"stream":{…},"values":[…]}`, the two keys in either order, each exactly once.
    fn stream(&mut self, index: usize, lines: &mut InBuffer<'_>) -> Option<PushStream<'a>> {
        self.token(b'{')?;
        let (mut stream, mut values) = (None, None);
        loop {
            match self.key()? {
                "stream" if stream.is_none() => stream = Some(self.labels()?),
                "values" if values.is_none() => {
                    values = Some(self.array(|p, entry| p.entry((index, entry), lines))?)
                }
                _ => return None,
            }
            if !self.more(b'}')? {
                break;
            }
        }
        Some(PushStream {
            stream: stream?,
            values: values?,
        })
    }

    /// The label object: string names to string values.
    fn labels(&mut self) -> Option<BTreeMap<String, String>> {
        self.token(b'{')?;
        let mut labels = BTreeMap::new();
        if self.eat(b'}') {
            return Some(labels);
        }
        loop {
            self.token(b'"')?;
            let name = self.owned()?;
            self.token(b':')?;
            self.token(b'"')?;
            let value = self.owned()?;
            // A repeated name: the last value wins, as in serde's map.
            labels.insert(name, value);
            if !self.more(b'}')? {
                return Some(labels);
            }
        }
    }

    /// `["<ns>","<line>"]`, entry `at.1` of stream `at.0`. A line with escapes goes into
    /// `lines` and is a placeholder here until [`InBuffer::fill`].
    fn entry(&mut self, at: (usize, usize), lines: &mut InBuffer<'_>) -> Option<Entry<'a>> {
        self.token(b'[')?;
        self.token(b'"')?;
        let ts_ns = parse_ts(self.plain()?)?;
        self.token(b',')?;
        self.token(b'"')?;
        let line = match self.string()? {
            Str::Plain(line) => line,
            Str::Escaped { start, at: first } => {
                let buf = lines.buf();
                let from = buf.len();
                self.unescape(start, first, buf)?;
                lines.record(at, from);
                ""
            }
        };
        self.token(b']')?;
        Some(Entry {
            ts_ns,
            line: Cow::Borrowed(line),
            metadata: Vec::new(),
        })
    }

    /// The string whose opening quote was just read, up to its closing quote if it has no
    /// escapes.
    #[inline(always)]
    fn string(&mut self) -> Option<Str<'a>> {
        let start = self.i;
        let end = find_special(self.bytes(), start)?;
        match self.bytes().get(end)? {
            b'"' => {
                self.i = end + 1;
                // Both ends are next to an ASCII quote, so on character boundaries.
                Some(Str::Plain(self.s.get(start..end)?))
            }
            b'\\' => Some(Str::Escaped { start, at: end }),
            _ => None, // a control byte: serde_json's error to report
        }
    }

    /// A string without escapes.
    fn plain(&mut self) -> Option<&'a str> {
        match self.string()? {
            Str::Plain(s) => Some(s),
            Str::Escaped { .. } => None,
        }
    }

    /// A string, owned (label names and values).
    fn owned(&mut self) -> Option<String> {
        match self.string()? {
            Str::Plain(s) => Some(s.to_owned()),
            Str::Escaped { start, at } => {
                let mut out = Vec::new();
                self.unescape(start, at, &mut out)?;
                String::from_utf8(out).ok()
            }
        }
    }

    /// Appends the string that starts at `start` to `out`, escapes decoded, and reads its
    /// closing quote; `at` is its first `\`. After an escape, each block is copied to `out`
    /// whole and cut back to the bytes before its first special byte, so the runs between
    /// escapes cost no call to `memcpy`. `\"`, `\\` and `\/` stand for their second byte,
    /// so after those the copy starts at that byte, skipping its flag, instead of writing it
    /// apart. What is appended is the body's UTF-8 (runs end at ASCII bytes) or a decoded
    /// character's.
    fn unescape(&mut self, start: usize, at: usize, out: &mut Vec<u8>) -> Option<()> {
        let b = self.bytes();
        out.extend_from_slice(b.get(start..at)?);
        let mut at = at;
        loop {
            // `b[at]` is a backslash: go on after its escape, or from its second byte.
            let (mut i, mut from) = match b.get(at + 1)? {
                b'"' | b'\\' | b'/' => (at + 1, 1),
                _ => (self.escape(at + 1, out)?, 0),
            };
            let (j, c) = loop {
                let Some(block) = b.get(i..).and_then(<[u8]>::first_chunk::<BLOCK>) else {
                    break self.tail(i, from, out)?;
                };
                out.extend_from_slice(block);
                let j = first_special(block, from);
                if let Some(&c) = block.get(j) {
                    out.truncate(out.len() - BLOCK + j);
                    break (i + j, c);
                }
                i += BLOCK;
                from = 0;
            };
            match c {
                b'"' => {
                    self.i = j + 1;
                    return Some(());
                }
                b'\\' => at = j,
                _ => return None, // a control byte
            }
        }
    }

    /// The end of a string in the body's last block: copies from `i` to the first special
    /// byte at or after `i + from`, and returns where that byte is, and the byte.
    fn tail(&self, i: usize, from: usize, out: &mut Vec<u8>) -> Option<(usize, u8)> {
        let b = self.bytes();
        let j = find_special(b, i + from)?;
        out.extend_from_slice(b.get(i..j)?);
        Some((j, *b.get(j)?))
    }

    /// Decodes the escape after the `\` at `i - 1` into `out`; returns where it ends.
    /// (`unescape` takes `\"`, `\\` and `\/` apart; they are here to keep the table whole.)
    #[inline(always)]
    fn escape(&self, i: usize, out: &mut Vec<u8>) -> Option<usize> {
        let c = match self.bytes().get(i)? {
            b'"' => b'"',
            b'\\' => b'\\',
            b'/' => b'/',
            b'b' => 0x08,
            b'f' => 0x0c,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'u' => return self.unicode(i + 1, out),
            _ => return None,
        };
        out.push(c);
        Some(i + 1)
    }

    /// `\uXXXX` from its digits at `i`, or a surrogate pair `\uD8XX\uDCXX`; a lone or
    /// misordered surrogate is left to serde_json, which refuses it.
    #[cold]
    fn unicode(&self, i: usize, out: &mut Vec<u8>) -> Option<usize> {
        let n = self.hex4(i)?;
        let (c, end) = if (0xD800..=0xDBFF).contains(&n) {
            if self.bytes().get(i + 4..i + 6)? != b"\\u" {
                return None;
            }
            let low = self.hex4(i + 6)?;
            if !(0xDC00..=0xDFFF).contains(&low) {
                return None;
            }
            (0x1_0000 + ((n - 0xD800) << 10) + (low - 0xDC00), i + 10)
        } else {
            (n, i + 4)
        };
        // `None` for a lone trailing surrogate (0xDC00–0xDFFF).
        let c = char::from_u32(c)?;
        out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
        Some(end)
    }

    /// Four hex digits at `i`, either case (serde_json accepts both).
    fn hex4(&self, i: usize) -> Option<u32> {
        self.bytes()
            .get(i..i + 4)?
            .iter()
            .try_fold(0, |n, &c| Some(n * 16 + char::from(c).to_digit(16)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{parse_push, parse_push_in};
    use proptest::prelude::*;

    /// The canonical parser alone, its placeholders filled: `None` where it defers.
    fn fast<'a>(body: &'a [u8], text: &'a mut String) -> Option<PushRequest<'a>> {
        let s = std::str::from_utf8(body).ok()?;
        let mut lines = InBuffer::new(text, body.len());
        let mut req = parse(s, &mut lines)?;
        lines.fill(&mut req).expect("every span has its entry");
        Some(req)
    }

    /// Whether the canonical parser took `body`; panics with the body if what it returned
    /// differs from serde_json's request, or if the server's parse (canonical parser, else
    /// serde_json) gives another result or another error message than `parse_push`.
    fn check(body: &[u8]) -> Result<bool, String> {
        let show = || String::from_utf8_lossy(body).into_owned();
        let mut text = String::from("left over from the batch before");
        let took = match fast(body, &mut text) {
            Some(req) => match serde_json::from_slice::<PushRequest<'_>>(body) {
                Ok(want) if want == req => true,
                other => {
                    return Err(format!(
                        "body {:?}: canonical {req:?}, serde_json {other:?}",
                        show()
                    ))
                }
            },
            None => false,
        };
        let mut text = String::from("left over");
        let ours = parse_push_in(body, &mut text);
        let theirs = parse_push(body);
        match (&ours, &theirs) {
            (Ok(a), Ok(b)) if a == b => Ok(took),
            (Err(a), Err(b)) if a.to_string() == b.to_string() => Ok(took),
            _ => Err(format!(
                "body {:?}: parse_push_in {ours:?}, parse_push {theirs:?}",
                show()
            )),
        }
    }

    /// Writes a push body the way a JSON writer may: whitespace between tokens, `values`
    /// before `stream`, escapes where none are needed (`\/`, `\uXXXX` in either case,
    /// surrogate pairs), `\u00XX` or short escapes for control bytes; and, when `odd`, what
    /// only serde_json reads (extra keys and elements, a repeated key, escaped keys or
    /// timestamps) or nobody reads (invalid escapes, raw control bytes).
    struct Writer {
        out: Vec<u8>,
        rng: u64,
        style: Style,
        /// Nothing odd was written, so the canonical parser must take the body.
        canonical: bool,
    }

    #[derive(Debug, Clone, Copy)]
    struct Style {
        seed: u64,
        ws: bool,
        reorder: bool,
        unicode: bool,
        odd: bool,
    }

    type Doc = Vec<(Vec<(String, String)>, Vec<(String, String)>)>;

    impl Writer {
        fn write(doc: &Doc, style: Style) -> (Vec<u8>, bool) {
            let mut w = Writer {
                out: Vec::new(),
                rng: style.seed | 1,
                style,
                canonical: true,
            };
            w.tok("{");
            w.extra_key();
            w.key("streams");
            w.tok("[");
            w.commas(doc, |w, (labels, values)| {
                w.tok("{");
                let values_first = style.reorder && w.coin(2);
                if values_first {
                    w.values(values);
                    w.tok(",");
                }
                w.extra_key();
                w.key("stream");
                w.tok("{");
                w.commas(labels, |w, (k, v)| {
                    w.string(k, false);
                    w.tok(":");
                    w.string(v, false);
                });
                w.tok("}");
                if style.odd && w.coin(12) {
                    w.canonical = false;
                    w.tok(",");
                    w.key("stream");
                    w.tok("{}");
                }
                if !values_first {
                    w.tok(",");
                    w.values(values);
                }
                w.tok("}");
            });
            w.tok("]");
            w.tok("}");
            w.ws();
            (w.out, w.canonical)
        }

        /// `items`, each written by `item`, separated by commas.
        fn commas<T>(&mut self, items: &[T], mut item: impl FnMut(&mut Self, &T)) {
            for (i, x) in items.iter().enumerate() {
                if i > 0 {
                    self.tok(",");
                }
                item(self, x);
            }
        }

        fn next(&mut self) -> u64 {
            self.rng ^= self.rng << 13;
            self.rng ^= self.rng >> 7;
            self.rng ^= self.rng << 17;
            self.rng
        }

        fn coin(&mut self, one_in: u64) -> bool {
            self.next() % one_in == 0
        }

        fn ws(&mut self) {
            if self.style.ws && self.coin(3) {
                let w = [" ", "\n", "\t", "\r\n  ", "   "][(self.next() % 5) as usize];
                self.out.extend_from_slice(w.as_bytes());
            }
        }

        fn tok(&mut self, t: &str) {
            self.ws();
            self.out.extend_from_slice(t.as_bytes());
        }

        /// A key the parser knows: escaped only when odd.
        fn key(&mut self, k: &str) {
            self.string(k, true);
            self.tok(":");
        }

        /// Sometimes (when odd) a key the parser does not know, with a value.
        fn extra_key(&mut self) {
            if self.style.odd && self.coin(12) {
                self.canonical = false;
                self.tok(r#""extra":[1,{"x":"\""},null,true,-2.5e3],"#);
            }
        }

        fn values(&mut self, values: &[(String, String)]) {
            self.key("values");
            self.tok("[");
            self.commas(values, |w, (ts, line)| {
                w.tok("[");
                w.string(ts, true);
                if parse_ts(ts).is_none() {
                    w.canonical = false;
                }
                w.tok(",");
                w.string(line, false);
                if w.style.odd && w.coin(15) {
                    w.canonical = false;
                    w.tok(r#",{"k":"v"}"#);
                }
                w.tok("]");
            });
            self.tok("]");
        }

        /// A string; `plain` ones (keys, timestamps) take the canonical path only unescaped.
        fn string(&mut self, s: &str, plain: bool) {
            self.tok("\"");
            let len = self.out.len();
            for c in s.chars() {
                match c {
                    '"' | '\\' | '\0'..='\u{1f}' if self.style.unicode && self.coin(4) => {
                        self.unicode(c)
                    }
                    '"' => self.raw("\\\""),
                    '\\' => self.raw("\\\\"),
                    '\n' => self.raw("\\n"),
                    '\r' => self.raw("\\r"),
                    '\t' => self.raw("\\t"),
                    '\u{8}' => self.raw("\\b"),
                    '\u{c}' => self.raw("\\f"),
                    '\0'..='\u{1f}' => self.unicode(c),
                    '/' if self.coin(3) => self.raw("\\/"),
                    _ if self.style.unicode && self.coin(6) => self.unicode(c),
                    _ => self.raw(c.encode_utf8(&mut [0; 4])),
                }
                if self.style.odd && self.coin(40) {
                    self.canonical = false;
                    let bad = [
                        "\\x",
                        "\\ud800",
                        "\\udc00",
                        "\\uDBFF\\u0041",
                        "\\ud800\\n",
                        "\\ud83d\\ud83d",
                        "\\u12g4",
                        "\\u12",
                        "\\U0041",
                        "\\",
                        "\u{1}",
                        "\u{1f}",
                    ];
                    let b = bad[(self.next() % bad.len() as u64) as usize];
                    self.raw(b);
                }
            }
            if plain && self.out[len..].contains(&b'\\') {
                self.canonical = false;
            }
            self.raw("\"");
        }

        fn raw(&mut self, s: &str) {
            self.out.extend_from_slice(s.as_bytes());
        }

        /// `\uXXXX`, a surrogate pair above the BMP; hex digits in random case.
        fn unicode(&mut self, c: char) {
            let mut units = [0u16; 2];
            for &u in c.encode_utf16(&mut units).iter() {
                let hex = format!("{u:04x}");
                self.raw("\\u");
                for h in hex.chars() {
                    let h = if self.coin(2) {
                        h.to_ascii_uppercase()
                    } else {
                        h
                    };
                    self.raw(h.encode_utf8(&mut [0; 4]));
                }
            }
        }
    }

    fn doc() -> impl Strategy<Value = Doc> {
        let name = prop_oneof![
            8 => "[a-z_][a-z0-9_]{0,5}",
            1 => "[a-z\"\\\\ü0-9-]{0,4}",
        ];
        let value = prop_oneof![
            8 => crate::scan::tests::dense(24),
            1 => Just("v".repeat(crate::limits::MAX_LABEL_VALUE_BYTES + 1)),
        ];
        let labels = prop_oneof![
            8 => proptest::collection::vec((name, value), 0..4),
            1 => Just(
                (0..=crate::limits::MAX_LABELS_PER_STREAM)
                    .map(|i| (format!("l{i}"), "v".to_owned()))
                    .collect()
            ),
        ];
        let ts = prop_oneof![
            8 => (0i64..=i64::MAX).prop_map(|t| t.to_string()),
            1 => "[0-9]{0,21}",
            1 => prop_oneof![Just("-1"), Just("9223372036854775808"), Just(" 1"), Just("1.5")]
                .prop_map(str::to_owned),
        ];
        proptest::collection::vec(
            (
                labels,
                proptest::collection::vec((ts, crate::scan::tests::dense(24)), 0..6),
            ),
            0..4,
        )
    }

    fn style() -> impl Strategy<Value = Style> {
        (
            any::<u64>(),
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
            0u8..4,
        )
            .prop_map(|(seed, ws, reorder, unicode, odd)| Style {
                seed,
                ws,
                reorder,
                unicode,
                odd: odd == 0,
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]
        /// Written bodies, then the same bodies edited: the canonical parser returns what
        /// serde_json returns whenever it returns anything, takes every body with nothing
        /// odd in it, and the server's parse agrees with `parse_push` on results and errors.
        #[test]
        fn agrees_with_serde_json(
            doc in doc(),
            style in style(),
            edits in proptest::collection::vec((any::<usize>(), 0u8..4, any::<u8>()), 0..4),
        ) {
            let (mut body, canonical) = Writer::write(&doc, style);
            let took = check(&body).map_err(TestCaseError::fail)?;
            prop_assert!(took || !canonical, "not taken: {:?}", String::from_utf8_lossy(&body));
            crate::codec::tests::edit(&mut body, &edits);
            check(&body).map_err(TestCaseError::fail)?;
        }
    }

    #[test]
    fn takes_agent_bodies_and_defers_the_rest() {
        let labels = [("team".to_owned(), "pay\"ments".to_owned())].into();
        let mut b = crate::body::StreamBody::new(&labels, Vec::new());
        b.push(1, "plain");
        b.push(2, "{\"json\":\"line\"}\twith \\ and \u{1} and é😀");
        b.push(i64::MAX, "");
        assert!(check(&b.finish()).unwrap());
        for body in [
            &br#"{"streams":[]}"#[..],
            b" {\"streams\" :\n[ { \"values\" : [ [ \"1\" , \"a\\/b\\u00E9\\ud83d\\ude00\" ] ] ,\"stream\":{ \"a\":\"\\u0041\"}}]}\r\n",
            br#"{"streams":[{"stream":{"a":"1","a":"2"},"values":[]}]}"#,
        ] {
            assert!(check(body).unwrap(), "{}", String::from_utf8_lossy(body));
        }
        for body in [
            &br#"{"streams":[{"stream":{},"values":[["1","x"]]}],"x":1}"#[..],
            br#"{"streams":[{"stream":{},"values":[["1","x",{}]]}]}"#,
            br#"{"str\u0065ams":[]}"#,
            br#"{"streams":[{"stream":{},"values":[["\u0031","x"]]}]}"#,
            br#"{"streams":[{"stream":{},"values":[["1","\ud800"]]}]}"#,
            br#"{"streams":[{"stream":{},"values":[["1","\udc00\ud800"]]}]}"#,
            br#"{"streams":[{"stream":{},"values":[["1","\ud800\u0041"]]}]}"#,
            br#"{"streams":[{"stream":{},"values":[["1","\u00e"]]}]}"#,
            br#"{"streams":[{"stream":{},"values":[["1","x"]]}]}}"#,
            br#"{"streams":[{"stream":{},"values":[["1","x"]]}"#,
            br#"{"streams":[{"stream":{},"values":[["1","x"],]}]}"#,
            br#"{"streams":[{"stream":{}}]}"#,
            br#"[[[{},[["1","x"]]]]]"#,
            b"{\"streams\":[{\"stream\":{},\"values\":[[\"1\",\"a\x01\"]]}]}",
            b"{\"streams\":[{\"stream\":{},\"values\":[[\"1\",\"\xc3\"]]}]}",
            b"\xef\xbb\xbf{\"streams\":[]}",
        ] {
            assert!(!check(body).unwrap(), "{}", String::from_utf8_lossy(body));
        }
    }

    /// Limits are checked after either parser, on the same request: the same errors.
    #[test]
    fn limits_after_the_canonical_parse() {
        let long = format!("\\\"{}", "x".repeat(crate::limits::MAX_LINE_BYTES));
        let body =
            format!(r#"{{"streams":[{{"stream":{{}},"values":[["1","a"],["2","{long}"]]}}]}}"#);
        assert!(check(body.as_bytes()).unwrap());
        let err = parse_push_in(body.as_bytes(), &mut String::new()).unwrap_err();
        assert!(err.to_string().contains("stream 0 entry 1"), "{err}");
        let many = vec![r#"{"stream":{},"values":[]}"#; crate::limits::MAX_STREAMS_PER_PUSH + 1];
        let body = format!(r#"{{"streams":[{}]}}"#, many.join(","));
        assert!(check(body.as_bytes()).unwrap());
        assert!(parse_push_in(body.as_bytes(), &mut String::new()).is_err());
    }
}
