//! The vector interface every scan is written against. The operations are those of SSE2's
//! byte lanes, the smallest set the scans need; everything a scan asks ("is this byte a
//! digit, a quote, a control byte?") is built from them.
//!
//! Invariants: a vector holds [`Lanes::WIDTH`] bytes, byte 0 first in memory. A comparison
//! (`eq`, `le`, `in_range`) gives a *mask*: the high bit of each byte says whether it holds
//! there. SSE2 and AVX2 fill the byte (`0xff`/`0x00`); SWAR sets the high bit alone, which
//! saves it three instructions per comparison. So masks are combined with
//! `and`/`or`/`andnot` and read with [`Lanes::bits`], and never used as data (compared,
//! subtracted or stored as bytes).

/// Byte lanes of one width, as a token: holding a value proves the CPU can run them.
pub trait Lanes: Copy {
    /// A vector of [`Lanes::WIDTH`] bytes.
    type V: Copy;

    /// Bytes per vector: 16 for SSE2, 32 for AVX2, 8 for SWAR; at most 64, so that
    /// [`Lanes::bits`] fits a `u64`.
    const WIDTH: usize;

    /// The first [`Lanes::WIDTH`] bytes of `bytes`, without alignment. Panics if `bytes` is
    /// shorter; a scan passes whole blocks (`chunks_exact`, `first_chunk`), where the check
    /// is known to pass at compile time and disappears.
    fn load(self, bytes: &[u8]) -> Self::V;

    /// Writes `v` to the first [`Lanes::WIDTH`] bytes of `out`. Panics if `out` is shorter.
    fn store(self, v: Self::V, out: &mut [u8]);

    /// Every byte `c`.
    fn splat(self, c: u8) -> Self::V;

    /// A mask of where the bytes of `a` and `b` are equal.
    fn eq(self, a: Self::V, b: Self::V) -> Self::V;

    /// `a - b` in each byte, wrapping.
    fn sub(self, a: Self::V, b: Self::V) -> Self::V;

    /// The smaller byte of `a` and `b`, as unsigned numbers.
    fn min(self, a: Self::V, b: Self::V) -> Self::V;

    /// `a | b`.
    fn or(self, a: Self::V, b: Self::V) -> Self::V;

    /// `a & b`.
    fn and(self, a: Self::V, b: Self::V) -> Self::V;

    /// `!a & b` (SSE2's operand order).
    fn andnot(self, a: Self::V, b: Self::V) -> Self::V;

    /// The high bit of each byte, byte 0 in bit 0 (a movemask): of a mask, where its
    /// comparison holds; of loaded text, its bytes of 0x80 and above.
    fn bits(self, v: Self::V) -> u64;

    /// A mask of where the byte of `x` is at most `hi`, as unsigned numbers.
    #[inline(always)]
    fn le(self, x: Self::V, hi: u8) -> Self::V {
        self.eq(self.min(x, self.splat(hi)), x)
    }

    /// A mask of where `lo <= byte <= hi`, as unsigned numbers (`lo <= hi`).
    #[inline(always)]
    fn in_range(self, x: Self::V, lo: u8, hi: u8) -> Self::V {
        in_range(self, x, lo, hi)
    }
}

/// [`Lanes::in_range`] from the other operations: `x - lo` (wrapping) is at most `hi - lo`
/// exactly for the bytes in the range; the bytes below `lo` wrap around to above it.
#[inline(always)]
pub(crate) fn in_range<L: Lanes>(l: L, x: L::V, lo: u8, hi: u8) -> L::V {
    debug_assert!(lo <= hi);
    l.le(l.sub(x, l.splat(lo)), hi.wrapping_sub(lo))
}
