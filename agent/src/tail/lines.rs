//! Splitting a file's bytes into lines, across reads.
//!
//! Invariants: every byte fed is covered by exactly one emitted line's `[start, end)` range,
//! in order, so a checkpoint at any line's `end` is a line boundary. A line longer than the
//! maximum keeps its first `max_line_bytes` bytes plus a marker; the rest is skipped without
//! being held in memory. Memory per file is bounded by `max_line_bytes`.
//!
//! Speed: a line that lies wholly in the bytes of one read (nearly every line) is emitted
//! borrowed from the read buffer, so it is neither copied nor allocated; only a line split
//! across reads, cut, or not valid UTF-8 is built in an owned `String`. One vector pass
//! (`fjord_bytes::line_end`) finds a line's newline and whether it is all ASCII; only a line
//! with other bytes is validated as UTF-8. Lines are taken one at a time
//! ([`Splitter::next_line`]), so a read's lines are redacted and encoded while they are in
//! cache and never collected in a list.

use std::borrow::Cow;

/// Appended to a line that was cut at the maximum length.
pub const CUT_MARKER: &str = " [fjord: line cut]";

/// One complete line: its text (valid UTF-8) and the byte range it covers in the file,
/// including the newline. The text borrows the read buffer when it can.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line<'a> {
    pub text: Cow<'a, str>,
    pub start: u64,
    pub end: u64,
    pub cut: bool,
    pub invalid_utf8: bool,
}

/// Splits bytes fed in order into lines.
#[derive(Debug)]
pub struct Splitter {
    max_line_bytes: usize,
    /// Bytes of the unfinished line, at most `max_line_bytes`.
    carry: Vec<u8>,
    /// File offset where the unfinished line starts.
    carry_start: u64,
    /// The unfinished line is longer than the maximum; further bytes are skipped.
    overflow: bool,
    /// Offset just after the last byte fed.
    fed_to: u64,
}

impl Splitter {
    /// A splitter whose next byte is at file offset `offset`.
    pub fn new(offset: u64, max_line_bytes: usize) -> Splitter {
        Splitter {
            max_line_bytes,
            carry: Vec::new(),
            carry_start: offset,
            overflow: false,
            fed_to: offset,
        }
    }

    /// Offset just after the last byte fed; the next read starts here.
    pub fn fed_to(&self) -> u64 {
        self.fed_to
    }

    /// Bytes of an unfinished line waiting for its newline.
    pub fn pending_bytes(&self) -> u64 {
        self.fed_to - self.carry_start
    }

    /// Feeds the next bytes of the file; complete lines are pushed to `out`.
    pub fn feed<'b>(&mut self, mut buf: &'b [u8], out: &mut Vec<Line<'b>>) {
        while let Some(line) = self.next_line(&mut buf) {
            out.push(line);
        }
    }

    /// Takes the bytes of `buf` up to and including its first newline and returns the line
    /// they complete, or, when `buf` holds no newline, keeps all of it for the next call and
    /// returns `None` (with `buf` empty). Call until `None` to feed a whole read; the lines
    /// are the ones [`Splitter::feed`] gives, without collecting them.
    pub fn next_line<'b>(&mut self, buf: &mut &'b [u8]) -> Option<Line<'b>> {
        let bytes: &'b [u8] = buf;
        if bytes.is_empty() {
            return None;
        }
        // The newline, and the line's text when it is all ASCII (no UTF-8 check then).
        let (newline, ascii) = fjord_bytes::line_end(bytes);
        match newline {
            Some(i) if self.carry.is_empty() && !self.overflow && i <= self.max_line_bytes => {
                // The whole line is in `buf`: the same line `emit` would build, borrowed.
                let (text, invalid_utf8) = match ascii {
                    Some(text) => (
                        Cow::Borrowed(text.strip_suffix('\r').unwrap_or(text)),
                        false,
                    ),
                    None => {
                        let raw = &bytes[..i];
                        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
                        match std::str::from_utf8(raw) {
                            Ok(s) => (Cow::Borrowed(s), false),
                            Err(_) => (String::from_utf8_lossy(raw), true),
                        }
                    }
                };
                self.fed_to += (i + 1) as u64;
                let line = Line {
                    text,
                    start: self.carry_start,
                    end: self.fed_to,
                    cut: false,
                    invalid_utf8,
                };
                self.carry_start = self.fed_to;
                *buf = &bytes[i + 1..];
                Some(line)
            }
            Some(i) => {
                self.take(&bytes[..i]);
                self.fed_to += (i + 1) as u64;
                *buf = &bytes[i + 1..];
                Some(self.emit())
            }
            None => {
                self.take(bytes);
                self.fed_to += bytes.len() as u64;
                *buf = &[];
                None
            }
        }
    }

    /// Emits the unfinished line, if any, as complete (the partial-line timeout).
    pub fn flush(&mut self) -> Option<Line<'static>> {
        (self.fed_to > self.carry_start).then(|| self.emit())
    }

    fn take(&mut self, bytes: &[u8]) {
        let room = self.max_line_bytes - self.carry.len();
        if bytes.len() > room {
            self.overflow = true;
        }
        self.carry
            .extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    fn emit(&mut self) -> Line<'static> {
        let mut raw = std::mem::take(&mut self.carry);
        if raw.last() == Some(&b'\r') {
            raw.pop();
        }
        let (mut text, invalid_utf8) = match String::from_utf8(raw) {
            Ok(s) => (s, false),
            Err(e) => (String::from_utf8_lossy(e.as_bytes()).into_owned(), true),
        };
        let cut = std::mem::take(&mut self.overflow);
        if cut {
            text.push_str(CUT_MARKER);
        }
        let line = Line {
            text: Cow::Owned(text),
            start: self.carry_start,
            end: self.fed_to,
            cut,
            invalid_utf8,
        };
        self.carry_start = self.fed_to;
        // Give back the memory of an unusually long line.
        if self.carry.capacity() > 64 * 1024 {
            self.carry = Vec::new();
        }
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn split_all<'a>(input: &'a [u8], chunks: &[usize], max: usize) -> (Vec<Line<'a>>, Splitter) {
        let mut s = Splitter::new(0, max);
        let mut out = Vec::new();
        let mut pos = 0;
        for &c in chunks {
            let end = (pos + c).min(input.len());
            s.feed(&input[pos..end], &mut out);
            pos = end;
        }
        s.feed(&input[pos..], &mut out);
        (out, s)
    }

    #[test]
    fn lines_offsets_crlf_and_partial() {
        let (lines, mut s) = split_all(b"one\r\ntwo\nthr", &[2, 5], 100);
        let got: Vec<_> = lines
            .iter()
            .map(|l| (l.text.as_ref(), l.start, l.end))
            .collect();
        assert_eq!(got, vec![("one", 0, 5), ("two", 5, 9)]);
        assert_eq!(s.pending_bytes(), 3);
        let last = s.flush().unwrap();
        assert_eq!((last.text.as_ref(), last.start, last.end), ("thr", 9, 12));
        assert!(s.flush().is_none());
    }

    #[test]
    fn lines_within_one_read_are_borrowed() {
        let (lines, _) = split_all(b"one\r\ntwo\npar", &[], 100);
        assert!(lines.iter().all(|l| matches!(l.text, Cow::Borrowed(_))));
        let (lines, _) = split_all(b"one\r\ntwo\n", &[2], 100);
        assert!(matches!(lines[0].text, Cow::Owned(_)), "split across reads");
        assert!(matches!(lines[1].text, Cow::Borrowed(_)));
    }

    #[test]
    fn long_line_is_cut_and_the_rest_skipped() {
        let mut input = vec![b'x'; 10 * 1024 * 1024];
        input.extend_from_slice(b"\nnext\n");
        let (lines, _) = split_all(&input, &[4096, 1 << 20, 3 << 20], 1024);
        assert_eq!(lines.len(), 2);
        assert!(lines[0].cut);
        assert_eq!(lines[0].text.len(), 1024 + CUT_MARKER.len());
        assert_eq!(lines[0].end, 10 * 1024 * 1024 + 1);
        assert_eq!(lines[1].text, "next");
    }

    #[test]
    fn invalid_utf8_is_replaced_and_flagged() {
        let (lines, _) = split_all(b"ok\n\xff\xfe bad\n", &[], 100);
        assert!(!lines[0].invalid_utf8);
        assert!(lines[1].invalid_utf8);
        assert_eq!(lines[1].text, "\u{fffd}\u{fffd} bad");
    }

    proptest! {
        /// However the bytes are chunked, the lines tile the input exactly and match a
        /// straightforward split.
        #[test]
        fn chunking_never_changes_lines(
            input in proptest::collection::vec(prop_oneof![Just(b'\n'), Just(b'a'), Just(b'b')], 0..400),
            chunks in proptest::collection::vec(0usize..50, 0..20),
        ) {
            let (lines, s) = split_all(&input, &chunks, 1000);
            let mut expect_start = 0u64;
            for l in &lines {
                prop_assert_eq!(l.start, expect_start);
                expect_start = l.end;
            }
            let complete = input.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            prop_assert_eq!(expect_start, complete as u64);
            prop_assert_eq!(s.fed_to(), input.len() as u64);
            let naive: Vec<String> = input[..complete]
                .split(|&b| b == b'\n')
                .take(lines.len())
                .map(|l| String::from_utf8_lossy(l).into_owned())
                .collect();
            let got: Vec<String> = lines.into_iter().map(|l| l.text.into_owned()).collect();
            prop_assert_eq!(got, naive);
        }

        /// A line emitted borrowed from one read is the line the carry path builds when
        /// the same bytes arrive one at a time: text, range, cut and invalid-UTF-8 flags.
        #[test]
        fn borrowed_lines_equal_carried_lines(
            input in proptest::collection::vec(
                prop_oneof![Just(b'\n'), Just(b'\r'), Just(b'a'), Just(0xc3), Just(0xa9), Just(0xff)],
                0..300,
            ),
            max in 1usize..40,
        ) {
            let (whole, _) = split_all(&input, &[], max);
            let (bytewise, _) = split_all(&input, &vec![1; input.len()], max);
            prop_assert_eq!(whole, bytewise);
        }
    }
}
