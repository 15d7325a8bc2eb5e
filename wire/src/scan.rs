//! The bytes a JSON string cannot hold as they are — `"`, `\` and the control bytes below
//! 0x20 — found a block at a time. Both ends of the wire need them: the agent's escaper
//! ([`crate::body`]) stops at them to write an escape, and the aggregator's push parser
//! ([`crate::canonical`]) stops at them to end a string or decode an escape. One test
//! classifies a whole block for all three at once, so a string is read once.

/// Whether `c` must be escaped inside a JSON string (and so ends a run of plain bytes).
#[inline(always)]
pub(crate) fn special_byte(c: u8) -> bool {
    c == b'"' || c == b'\\' || c < 0x20
}

/// Bytes classified at once by [`first_special`]: 16 with SSE2, 8 in a `u64` elsewhere.
#[cfg(target_arch = "x86_64")]
pub(crate) const BLOCK: usize = 16;
#[cfg(not(target_arch = "x86_64"))]
pub(crate) const BLOCK: usize = 8;

/// The index of the first [`special_byte`] of `block` at or after `from` (0 or 1), or
/// [`BLOCK`] if there is none.
#[inline(always)]
pub(crate) fn first_special(block: &[u8; BLOCK], from: usize) -> usize {
    #[cfg(target_arch = "x86_64")]
    return (sse2::special(block) >> from << from | 1 << BLOCK).trailing_zeros() as usize;
    #[cfg(not(target_arch = "x86_64"))]
    return swar_first_special(block, from);
}

/// [`first_special`] with SWAR flags, whose lowest flag only is exact: byte 0 is skipped by
/// shifting it out (a plain `a` comes in at the top) rather than by clearing its flag.
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
#[inline(always)]
fn swar_first_special(block: &[u8; 8], from: usize) -> usize {
    let w = u64::from_le_bytes(*block);
    let w = if from == 0 {
        w
    } else {
        w >> 8 | u64::from(b'a') << 56
    };
    (swar::special(&w.to_le_bytes()).trailing_zeros() as usize / 8 + from).min(8)
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

/// Flags the special bytes of a 16-byte block, one mask bit per byte. SSE2 is part of the
/// x86_64 baseline, so this needs no runtime feature check.
#[cfg(target_arch = "x86_64")]
pub(crate) mod sse2 {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_min_epu8, _mm_movemask_epi8, _mm_or_si128,
        _mm_set1_epi8,
    };

    #[inline(always)]
    pub(crate) fn special(chunk: &[u8; 16]) -> u64 {
        // SAFETY: SSE2 is enabled on every x86_64 target (the intrinsics need it), and the
        // load reads the 16 bytes of `chunk`, with no alignment requirement.
        let m = unsafe {
            let v = _mm_loadu_si128(chunk.as_ptr().cast::<__m128i>());
            let quote = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8));
            let backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
            // v <= 0x1f, unsigned: min(v, 0x1f) == v.
            let control = _mm_cmpeq_epi8(_mm_min_epu8(v, _mm_set1_epi8(0x1f)), v);
            _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(quote, backslash), control))
        };
        u64::from(m as u16)
    }
}

/// The portable fallback: flags the special bytes of an 8-byte block in the high bit of
/// each byte of a `u64`. Compiled everywhere, so x86_64's tests check it too.
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
pub(crate) mod swar {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;

    /// `(x - 0x01..) & !x & 0x80..` flags the zero bytes of `x`; a borrow can only flag a
    /// byte above a true zero, so the lowest flag is exact (and so it is for the union of
    /// the three tests). Subtracting 0x20 borrows into the high bit of bytes below 0x20.
    #[inline(always)]
    pub(crate) fn special(chunk: &[u8; 8]) -> u64 {
        let w = u64::from_le_bytes(*chunk);
        let zero = |x: u64| x.wrapping_sub(LO) & !x;
        (zero(w ^ (u64::from(b'"') * LO))
            | zero(w ^ (u64::from(b'\\') * LO))
            | w.wrapping_sub(0x20 * LO) & !w)
            & HI
    }
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
        /// byte-by-byte search finds; and the SWAR blocks flag it too.
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
            for (k, block) in bytes.chunks_exact(8).enumerate() {
                for skip in [0, 1] {
                    let first = block.iter().skip(skip).position(|&c| special_byte(c));
                    let first = first.map_or(8, |j| j + skip);
                    let block: &[u8; 8] = block.try_into().unwrap();
                    prop_assert_eq!(swar_first_special(block, skip), first, "block {} skip {}", k, skip);
                }
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
