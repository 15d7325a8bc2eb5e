//! The bytes a JSON string cannot hold as they are — `"`, `\` and the control bytes below
//! 0x20 — found a block at a time. Both ends of the wire need them: the agent's escaper
//! ([`crate::body`]) stops at them to write an escape, and the aggregator's push parser
//! ([`crate::canonical`]) stops at them to end a string or decode an escape. One test
//! classifies a whole block for all three at once, so a string is read once. The block
//! test is written against `fjord_bytes`' lanes, so this module has no unsafe code.

use fjord_bytes::{baseline, Baseline, Lanes};

/// Whether `c` must be escaped inside a JSON string (and so ends a run of plain bytes).
#[inline(always)]
pub(crate) fn special_byte(c: u8) -> bool {
    c == b'"' || c == b'\\' || c < 0x20
}

/// Bytes classified at once by [`first_special`]: the width of the target's
/// [`fjord_bytes::Baseline`] lanes, 16 with SSE2 and 8 (in a `u64`) elsewhere.
pub(crate) const BLOCK: usize = Baseline::WIDTH;

/// One mask bit per [`special_byte`] of the first `L::WIDTH` bytes of `block`, byte 0 in
/// bit 0: a quote, a backslash, or a byte of at most 0x1f (unsigned), tested all at once.
#[inline(always)]
pub(crate) fn special<L: Lanes>(lanes: L, block: &[u8]) -> u64 {
    let v = lanes.load(block);
    let quote = lanes.eq(v, lanes.splat(b'"'));
    let backslash = lanes.eq(v, lanes.splat(b'\\'));
    let control = lanes.le(v, 0x1f);
    lanes.bits(lanes.or(lanes.or(quote, backslash), control))
}

/// The index of the first [`special_byte`] of `block` at or after `from` (`< BLOCK`), or
/// [`BLOCK`] if there is none.
#[inline(always)]
pub(crate) fn first_special(block: &[u8; BLOCK], from: usize) -> usize {
    (special(baseline(), block) >> from << from | 1 << BLOCK).trailing_zeros() as usize
}

/// The index of the first [`special_byte`] in `b` at or after `from`, if there is one.
#[inline(always)]
pub(crate) fn find_special(b: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while let Some(block) = b.get(i..).and_then(<[u8]>::first_chunk) {
        let j = first_special(block, 0);
        if j < BLOCK {
            return Some(i + j);
        }
        i += BLOCK;
    }
    let tail = b.get(i..)?;
    tail.iter().position(|&c| special_byte(c)).map(|j| i + j)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Strings of up to `parts` pieces dense in what a block scan must get right: quotes,
    /// backslashes, control bytes, the bytes next to them ('#' = '"' + 1 and ' ' = 0x1f + 1
    /// are where a SWAR borrow would flag a byte wrongly), multi-byte characters and runs
    /// longer than a block, at every length and position around the block widths. The
    /// escaper's and the push parser's tests share them.
    pub(crate) fn dense(parts: usize) -> impl Strategy<Value = String> {
        proptest::collection::vec(
            prop_oneof![
                Just("a"),
                Just("b c"),
                Just("\""),
                Just("\\"),
                Just("/"),
                Just("#"),
                Just(" "),
                Just("]"),
                Just("\n"),
                Just("\t"),
                Just("\r"),
                Just("\u{8}"),
                Just("\u{c}"),
                Just("\u{0}"),
                Just("\u{1f}"),
                Just("\u{7f}"),
                Just("é"),
                Just("€"),
                Just("😀"),
                Just("\u{2028}"),
                Just("\u{ffff}"),
                Just("\u{10ffff}"),
                Just("abcdefghijklmnopq"),
                Just("{\"k\":\"v\",\"n\":1}"),
            ],
            0..parts,
        )
        .prop_map(|parts| parts.concat())
    }

    proptest! {
        /// The first special byte, found a block at a time, at every start, is the one a
        /// byte-by-byte search finds; and the SWAR blocks flag exactly the special bytes.
        #[test]
        fn find_special_is_the_first(
            bytes in proptest::collection::vec(
                prop_oneof![
                    Just(b'a'), Just(b'"'), Just(b'\\'), Just(b'#'), Just(b' '),
                    Just(0u8), Just(0x1f), Just(0x7f), Just(0x80), Just(0xff), Just(b']'),
                ],
                0..70,
            ),
            from in 0usize..75,
        ) {
            let want = (from <= bytes.len())
                .then(|| bytes[from..].iter().position(|&c| special_byte(c)).map(|j| from + j))
                .flatten();
            prop_assert_eq!(find_special(&bytes, from), want);
            // The SWAR lanes (the block test of targets without SSE2), on every 8 bytes.
            for (k, block) in bytes.chunks_exact(8).enumerate() {
                let want = block.iter().enumerate().fold(0, |m, (j, &c)| m | u64::from(special_byte(c)) << j);
                prop_assert_eq!(special(fjord_bytes::Swar, block), want, "block {}", k);
            }
            for (k, block) in bytes.chunks_exact(BLOCK).enumerate() {
                for skip in [0, 1] {
                    let first = block.iter().skip(skip).position(|&c| special_byte(c));
                    let first = first.map_or(BLOCK, |j| j + skip);
                    let block: &[u8; BLOCK] = block.try_into().unwrap();
                    prop_assert_eq!(first_special(block, skip), first, "block {} skip {}", k, skip);
                }
            }
        }
    }
}
