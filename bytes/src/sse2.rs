//! [`Lanes`] on SSE2's 16-byte registers. SSE2 is part of every x86_64 target's baseline
//! features, so this module is compiled only where the target has it (`target_feature =
//! "sse2"`) and its token needs no run-time check.

use std::arch::x86_64::{
    __m128i, _mm_and_si128, _mm_andnot_si128, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_min_epu8,
    _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8, _mm_storeu_si128, _mm_sub_epi8,
};

use crate::Lanes;

/// SSE2 lanes: 16 bytes per vector. Every x86_64 CPU has them.
#[derive(Debug, Clone, Copy)]
pub struct Sse2 {
    /// Private, so that the token is made only by [`Sse2::new`].
    _private: (),
}

impl Sse2 {
    /// The token; this module is compiled only for targets with SSE2.
    #[inline(always)]
    pub const fn new() -> Sse2 {
        Sse2 { _private: () }
    }
}

impl Default for Sse2 {
    fn default() -> Sse2 {
        Sse2::new()
    }
}

// Every `unsafe` below calls an SSE2 intrinsic, which needs only that the CPU has SSE2: this
// module is compiled only when the target enables it (see the module comment).
impl Lanes for Sse2 {
    type V = __m128i;
    const WIDTH: usize = 16;

    #[inline(always)]
    fn load(self, bytes: &[u8]) -> __m128i {
        let Some(block) = bytes.first_chunk::<16>() else {
            panic!("a 16-byte load from {} bytes", bytes.len());
        };
        // SAFETY: SSE2 is enabled for the target; `block` is 16 readable bytes, and the
        // unaligned load has no alignment requirement.
        unsafe { _mm_loadu_si128(block.as_ptr().cast::<__m128i>()) }
    }

    #[inline(always)]
    fn store(self, v: __m128i, out: &mut [u8]) {
        let Some(block) = out.first_chunk_mut::<16>() else {
            panic!("a 16-byte store into {} bytes", out.len());
        };
        // SAFETY: SSE2 is enabled for the target; `block` is 16 writable bytes, and the
        // unaligned store has no alignment requirement.
        unsafe { _mm_storeu_si128(block.as_mut_ptr().cast::<__m128i>(), v) }
    }

    #[inline(always)]
    fn splat(self, c: u8) -> __m128i {
        // SAFETY: SSE2 is enabled for the target.
        unsafe { _mm_set1_epi8(c as i8) }
    }

    #[inline(always)]
    fn eq(self, a: __m128i, b: __m128i) -> __m128i {
        // SAFETY: SSE2 is enabled for the target.
        unsafe { _mm_cmpeq_epi8(a, b) }
    }

    #[inline(always)]
    fn sub(self, a: __m128i, b: __m128i) -> __m128i {
        // SAFETY: SSE2 is enabled for the target.
        unsafe { _mm_sub_epi8(a, b) }
    }

    #[inline(always)]
    fn min(self, a: __m128i, b: __m128i) -> __m128i {
        // SAFETY: SSE2 is enabled for the target.
        unsafe { _mm_min_epu8(a, b) }
    }

    #[inline(always)]
    fn or(self, a: __m128i, b: __m128i) -> __m128i {
        // SAFETY: SSE2 is enabled for the target.
        unsafe { _mm_or_si128(a, b) }
    }

    #[inline(always)]
    fn and(self, a: __m128i, b: __m128i) -> __m128i {
        // SAFETY: SSE2 is enabled for the target.
        unsafe { _mm_and_si128(a, b) }
    }

    #[inline(always)]
    fn andnot(self, a: __m128i, b: __m128i) -> __m128i {
        // SAFETY: SSE2 is enabled for the target.
        unsafe { _mm_andnot_si128(a, b) }
    }

    #[inline(always)]
    fn bits(self, v: __m128i) -> u64 {
        // SAFETY: SSE2 is enabled for the target.
        let m = unsafe { _mm_movemask_epi8(v) };
        // The mask is in the low 16 bits.
        u64::from(m as u16)
    }
}
