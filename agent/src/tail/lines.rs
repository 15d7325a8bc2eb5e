//! Splitting a file's bytes into lines, across reads.
//!
//! Invariants: every byte fed is covered by exactly one emitted line's `[start, end)` range,
//! in order, so a checkpoint at any line's `end` is a line boundary. A line longer than the
//! maximum keeps its first `max_line_bytes` bytes plus a marker; the rest is skipped without
//! being held in memory. Memory per file is bounded by `max_line_bytes`.
//!
//! Speed: a line that lies wholly in the bytes of one read (nearly every line) is emitted
//! borrowed from the read buffer, so it is neither copied nor allocated; only a line split
//! across reads, cut, or not valid UTF-8 is built in an owned `String`. One SSE2 pass finds
//! a line's newline and whether it is all ASCII; only a line with other bytes is validated
//! as UTF-8. Lines are taken one at a time ([`Splitter::next_line`]), so a read's lines are
//! redacted and encoded while they are in cache and never collected in a list.

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
        let (newline, ascii) = scan::line_end(bytes);
        match newline {
            Some(i) if self.carry.is_empty() && !self.overflow && i <= self.max_line_bytes => {
                // The whole line is in `buf`: the same line `emit` would build, borrowed.
                let raw = &bytes[..i];
                let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
                let (text, invalid_utf8) = if ascii {
                    debug_assert!(raw.is_ascii());
                    // SAFETY: `line_end` reports `ascii` only when every byte before the
                    // newline is below 0x80 (property-tested against `is_ascii`), and ASCII
                    // is valid UTF-8.
                    (
                        Cow::Borrowed(unsafe { std::str::from_utf8_unchecked(raw) }),
                        false,
                    )
                } else {
                    match std::str::from_utf8(raw) {
                        Ok(s) => (Cow::Borrowed(s), false),
                        Err(_) => (String::from_utf8_lossy(raw), true),
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

/// Finding the end of a line and whether the line is ASCII, in one pass.
mod scan {
    /// The index of the first `\n` in `b`, and whether every byte before it (or every byte,
    /// when there is none) is ASCII, so that UTF-8 validation can be skipped.
    #[cfg(target_arch = "x86_64")]
    pub fn line_end(b: &[u8]) -> (Option<usize>, bool) {
        use std::arch::x86_64::{
            __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_set1_epi8,
        };
        let mut high = 0; // high bits seen in the blocks before
        let mut i = 0;
        while let Some(block) = b[i..].first_chunk::<16>() {
            // SAFETY: SSE2 is enabled on every x86_64 target (the intrinsics need it), and
            // the load reads the 16 bytes of `block`, with no alignment requirement.
            let (newlines, h) = unsafe {
                let v = _mm_loadu_si128(block.as_ptr().cast::<__m128i>());
                (
                    _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(b'\n' as i8))),
                    _mm_movemask_epi8(v),
                )
            };
            if newlines != 0 {
                let k = newlines.trailing_zeros();
                let before = h & ((1 << k) - 1);
                return (Some(i + k as usize), (high | before) == 0);
            }
            high |= h;
            i += 16;
        }
        // The tail, shorter than a block (a line is rarely cut there: only at the end of
        // a read).
        let (end, ascii) = portable(&b[i..]);
        (end.map(|e| i + e), high == 0 && ascii)
    }

    #[cfg(not(target_arch = "x86_64"))]
    pub fn line_end(b: &[u8]) -> (Option<usize>, bool) {
        portable(b)
    }

    /// The fallback, and the reference of the tests: `memchr`, then `is_ascii`.
    pub fn portable(b: &[u8]) -> (Option<usize>, bool) {
        let end = memchr::memchr(b'\n', b);
        (end, b[..end.unwrap_or(b.len())].is_ascii())
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
        /// The one-pass scan finds the newline and the ASCII-ness the two-pass reference
        /// finds, for every length and position around the 16-byte blocks.
        #[test]
        fn line_end_equals_memchr_and_is_ascii(
            mut input in proptest::collection::vec(
                prop_oneof![40 => Just(b'a'), 2 => Just(0x7fu8), 1 => Just(b'\n')],
                0..120,
            ),
            high in proptest::option::of((0usize..120, 0x80u8..=0xff)),
            from in 0usize..40,
        ) {
            if let Some((at, byte)) = high {
                if !input.is_empty() {
                    let at = at % input.len();
                    input[at] = byte;
                }
            }
            let b = &input[from.min(input.len())..];
            prop_assert_eq!(scan::line_end(b), scan::portable(b));
        }
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
