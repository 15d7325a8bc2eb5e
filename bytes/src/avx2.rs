//! [`Lanes`] on AVX2's 32-byte registers, for CPUs found at run time to have AVX2 and the
//! bit-manipulation sets that come with it (BMI1, BMI2, POPCNT, LZCNT; every AVX2 CPU has
//! them).
//!
//! An intrinsic compiles to its instruction only inside a function compiled for its
//! feature; anywhere else it is a call. So a scan runs inside [`Avx2::run`], which calls it
//! from a function compiled for all five sets: the lanes' methods and the scan (written as
//! `#[inline(always)]` functions generic over [`Lanes`]) are inlined there, and the scan's
//! bit arithmetic gets `andn`, three-operand shifts, `popcnt`, `tzcnt` and `lzcnt` too.
//!
//! Invariant: an [`Avx2`] is made only by [`Avx2::detect`], after the CPU was found to have
//! all five sets; every `unsafe` below rests on that.

use std::arch::x86_64::{
    __m256i, _mm256_and_si256, _mm256_andnot_si256, _mm256_cmpeq_epi8, _mm256_loadu_si256,
    _mm256_min_epu8, _mm256_movemask_epi8, _mm256_or_si256, _mm256_set1_epi8, _mm256_storeu_si256,
    _mm256_sub_epi8,
};
use std::sync::LazyLock;

use crate::Lanes;

/// AVX2 lanes: 32 bytes per vector, on a CPU that has AVX2, BMI1, BMI2, POPCNT and LZCNT.
#[derive(Debug, Clone, Copy)]
pub struct Avx2 {
    /// Private, so that the token is made only by [`Avx2::detect`].
    _private: (),
}

/// Whether this CPU has what [`Avx2`] stands for: asked once, then one load per call of
/// [`Avx2::detect`] instead of five feature checks.
static AVAILABLE: LazyLock<bool> = LazyLock::new(|| {
    std::arch::is_x86_feature_detected!("avx2")
        && std::arch::is_x86_feature_detected!("bmi1")
        && std::arch::is_x86_feature_detected!("bmi2")
        && std::arch::is_x86_feature_detected!("popcnt")
        && std::arch::is_x86_feature_detected!("lzcnt")
});

impl Avx2 {
    /// The token, if this CPU has AVX2, BMI1, BMI2, POPCNT and LZCNT.
    #[inline(always)]
    pub fn detect() -> Option<Avx2> {
        AVAILABLE.then_some(Avx2 { _private: () })
    }

    /// Runs `scan` compiled for AVX2, BMI1, BMI2, POPCNT and LZCNT: call the lanes and every
    /// hot function of the scan from `scan`, each `#[inline(always)]`, so that they are
    /// compiled into this function with these instruction sets.
    #[inline(always)]
    pub fn run<R>(self, scan: impl FnOnce(Avx2) -> R) -> R {
        #[target_feature(enable = "avx2,bmi1,bmi2,popcnt,lzcnt")]
        unsafe fn enabled<R>(lanes: Avx2, scan: impl FnOnce(Avx2) -> R) -> R {
            scan(lanes)
        }
        // SAFETY: `self` proves the CPU has every feature `enabled` is compiled for.
        unsafe { enabled(self, scan) }
    }
}

// Every `unsafe` below calls an AVX2 intrinsic, which needs only that the CPU has AVX2:
// `self`, an `Avx2`, proves it (see the module comment).
impl Lanes for Avx2 {
    type V = __m256i;
    const WIDTH: usize = 32;

    #[inline(always)]
    fn load(self, bytes: &[u8]) -> __m256i {
        let Some(block) = bytes.first_chunk::<32>() else {
            panic!("a 32-byte load from {} bytes", bytes.len());
        };
        // SAFETY: the CPU has AVX2 (`self`); `block` is 32 readable bytes, and the
        // unaligned load has no alignment requirement.
        unsafe { _mm256_loadu_si256(block.as_ptr().cast::<__m256i>()) }
    }

    #[inline(always)]
    fn store(self, v: __m256i, out: &mut [u8]) {
        let Some(block) = out.first_chunk_mut::<32>() else {
            panic!("a 32-byte store into {} bytes", out.len());
        };
        // SAFETY: the CPU has AVX2 (`self`); `block` is 32 writable bytes, and the
        // unaligned store has no alignment requirement.
        unsafe { _mm256_storeu_si256(block.as_mut_ptr().cast::<__m256i>(), v) }
    }

    #[inline(always)]
    fn splat(self, c: u8) -> __m256i {
        // SAFETY: the CPU has AVX2 (`self`).
        unsafe { _mm256_set1_epi8(c as i8) }
    }

    #[inline(always)]
    fn eq(self, a: __m256i, b: __m256i) -> __m256i {
        // SAFETY: the CPU has AVX2 (`self`).
        unsafe { _mm256_cmpeq_epi8(a, b) }
    }

    #[inline(always)]
    fn sub(self, a: __m256i, b: __m256i) -> __m256i {
        // SAFETY: the CPU has AVX2 (`self`).
        unsafe { _mm256_sub_epi8(a, b) }
    }

    #[inline(always)]
    fn min(self, a: __m256i, b: __m256i) -> __m256i {
        // SAFETY: the CPU has AVX2 (`self`).
        unsafe { _mm256_min_epu8(a, b) }
    }

    #[inline(always)]
    fn or(self, a: __m256i, b: __m256i) -> __m256i {
        // SAFETY: the CPU has AVX2 (`self`).
        unsafe { _mm256_or_si256(a, b) }
    }

    #[inline(always)]
    fn and(self, a: __m256i, b: __m256i) -> __m256i {
        // SAFETY: the CPU has AVX2 (`self`).
        unsafe { _mm256_and_si256(a, b) }
    }

    #[inline(always)]
    fn andnot(self, a: __m256i, b: __m256i) -> __m256i {
        // SAFETY: the CPU has AVX2 (`self`).
        unsafe { _mm256_andnot_si256(a, b) }
    }

    #[inline(always)]
    fn bits(self, v: __m256i) -> u64 {
        // SAFETY: the CPU has AVX2 (`self`).
        let m = unsafe { _mm256_movemask_epi8(v) };
        // The mask is all 32 bits.
        u64::from(m as u32)
    }
}
