//! [`Lanes`] in a `u64`, eight bytes at a time (SIMD within a register): the fallback of
//! targets without SSE2, and compiled everywhere, so x86_64's tests check it too.
//!
//! Invariants: no carry or borrow crosses a byte. Each operation keeps the high bit of every
//! byte out of the arithmetic (`& LOW7`) and puts it back with logic, so each byte of data
//! computes exactly what one SSE2 lane computes. A comparison's mask is its high bits alone
//! (the other bits clear), as the [`Lanes`] contract allows: filling the bytes would cost
//! three more instructions per comparison.

use crate::Lanes;

const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// Eight bytes of `c`.
#[inline(always)]
const fn splat(c: u8) -> u64 {
    c as u64 * 0x0101_0101_0101_0101
}

/// High bits (`h & !HIGH == 0`) widened to whole bytes, `0x80` to `0xff`, for `min`'s
/// select. Subtracting `0x01` from `0x80` borrows nothing out of the byte.
#[inline(always)]
const fn widen(h: u64) -> u64 {
    h | (h - (h >> 7))
}

/// SWAR lanes: 8 bytes in a `u64`, little-endian (byte 0 in the low bits). Every target
/// has them.
#[derive(Debug, Clone, Copy, Default)]
pub struct Swar;

impl Swar {
    /// The high bit of every byte: the bits a SWAR mask can have.
    pub const FLAGS: u64 = HIGH;
}

impl Lanes for Swar {
    type V = u64;
    const WIDTH: usize = 8;

    #[inline(always)]
    fn load(self, bytes: &[u8]) -> u64 {
        let Some(block) = bytes.first_chunk::<8>() else {
            panic!("an 8-byte load from {} bytes", bytes.len());
        };
        u64::from_le_bytes(*block)
    }

    #[inline(always)]
    fn store(self, v: u64, out: &mut [u8]) {
        let Some(block) = out.first_chunk_mut::<8>() else {
            panic!("an 8-byte store into {} bytes", out.len());
        };
        *block = v.to_le_bytes();
    }

    #[inline(always)]
    fn splat(self, c: u8) -> u64 {
        splat(c)
    }

    /// A byte of `t = a ^ b` is zero exactly when its low seven bits plus `0x7f` do not
    /// carry into the high bit and the high bit is clear.
    #[inline(always)]
    fn eq(self, a: u64, b: u64) -> u64 {
        let t = a ^ b;
        !(((t & LOW7) + LOW7) | t) & HIGH
    }

    /// The low seven bits subtract with the minuend's high bit set (so nothing borrows out
    /// of the byte); the high bit is then `a7 ^ b7 ^ borrow`.
    #[inline(always)]
    fn sub(self, a: u64, b: u64) -> u64 {
        ((a | HIGH) - (b & LOW7)) ^ ((a ^ !b) & HIGH)
    }

    /// `a < b` is the borrow out of the byte's subtraction: `!a & b` in the high bit, or
    /// equal high bits and a high bit in the difference.
    #[inline(always)]
    fn min(self, a: u64, b: u64) -> u64 {
        let d = self.sub(a, b);
        let less = widen(((!a & b) | (!(a ^ b) & d)) & HIGH);
        (a & less) | (b & !less)
    }

    #[inline(always)]
    fn or(self, a: u64, b: u64) -> u64 {
        a | b
    }

    #[inline(always)]
    fn and(self, a: u64, b: u64) -> u64 {
        a & b
    }

    #[inline(always)]
    fn andnot(self, a: u64, b: u64) -> u64 {
        !a & b
    }

    /// The multiply moves bit `8k + 7` to bit `56 + k`; no two partial products share a
    /// bit.
    #[inline(always)]
    fn bits(self, v: u64) -> u64 {
        (((v & HIGH) >> 7).wrapping_mul(0x0102_0408_1020_4080)) >> 56
    }

    /// For ASCII bounds, with additions: the low seven bits plus `0x80 - lo` reach the high
    /// bit when at least `lo`, plus `0x7f - hi` when above `hi`; no carry leaves the byte,
    /// and a byte of 0x80 or above is in no ASCII range. Other bounds take the general way.
    #[inline(always)]
    fn in_range(self, x: u64, lo: u8, hi: u8) -> u64 {
        if hi < 0x80 && lo <= hi {
            let y = x & LOW7;
            let at_least_lo = y + splat(0x80 - lo);
            let above_hi = y + splat(0x7f - hi);
            at_least_lo & !above_hi & !x & HIGH
        } else {
            crate::lanes::in_range(self, x, lo, hi)
        }
    }

    #[inline(always)]
    fn le(self, x: u64, hi: u8) -> u64 {
        if hi < 0x80 {
            self.in_range(x, 0, hi)
        } else {
            self.eq(self.min(x, splat(hi)), x)
        }
    }
}
