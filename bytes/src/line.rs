//! Where a line ends, and whether it is ASCII, in one pass: the tailer's line splitter
//! calls this once per line, and a line that is all ASCII is handed back as `&str` without
//! a second pass to validate its UTF-8.
//!
//! Invariant: the text returned is exactly the bytes before the first `\n` (or all bytes
//! when there is none), and it is returned only when every one of them is below 0x80, as
//! the scan saw (property-tested against `iter().position` and `is_ascii`).

use crate::{baseline, Lanes};

/// The index of the first `\n` in `b`, and the bytes before it (every byte, when there is
/// none) as text if they are all ASCII, so that UTF-8 validation can be skipped.
#[inline]
pub fn line_end(b: &[u8]) -> (Option<usize>, Option<&str>) {
    line_end_in(baseline(), b)
}

/// [`line_end`] on the given lanes.
#[inline(always)]
pub fn line_end_in<L: Lanes>(lanes: L, b: &[u8]) -> (Option<usize>, Option<&str>) {
    let newline = lanes.splat(b'\n');
    let mut high = 0; // high bits seen in the blocks before
    let mut rest = b; // the bytes after those blocks
    let (end, ascii) = loop {
        if rest.len() < L::WIDTH {
            // The tail, shorter than a block (a line is rarely cut there: only at the end
            // of a read).
            let i = b.len() - rest.len();
            let end = rest.iter().position(|&c| c == b'\n');
            let ascii = high == 0 && rest[..end.unwrap_or(rest.len())].is_ascii();
            break (end.map(|e| i + e), ascii);
        }
        let v = lanes.load(rest);
        let newlines = lanes.bits(lanes.eq(v, newline));
        let h = lanes.bits(v);
        if newlines != 0 {
            let k = newlines.trailing_zeros();
            let before = h & ((1 << k) - 1);
            break (
                Some(b.len() - rest.len() + k as usize),
                (high | before) == 0,
            );
        }
        high |= h;
        rest = &rest[L::WIDTH..];
    };
    let text = &b[..end.unwrap_or(b.len())];
    // SAFETY: `ascii` holds only when every byte of `text` is below 0x80 (the high bits of
    // each block before the newline, and `is_ascii` of the tail), and ASCII is valid UTF-8.
    (
        end,
        ascii.then(|| unsafe { std::str::from_utf8_unchecked(text) }),
    )
}
