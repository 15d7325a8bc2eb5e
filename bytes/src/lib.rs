//! fjord-bytes: classifying bytes a vector at a time, for every crate that scans text.
//!
//! A scan is written once against [`Lanes`] — load, splat, compare, min, subtract, bitwise
//! logic and a movemask ([`Lanes::bits`]) — and runs on whichever lanes it is given:
//! [`Sse2`] (16 bytes; in the x86_64 baseline), [`Avx2`] (32 bytes; detected at run time) or
//! [`Swar`] (8 bytes in a `u64`; everywhere). [`Baseline`] is the widest the target always
//! has. The JSON escaper and push parser (fjord-wire), the redactor's per-line feature pass
//! (fjord-rules) and the tailer's line splitter (through [`line_end`]) all classify here.
//!
//! Invariants:
//! - Every method is safe. A lanes value is a token: an [`Avx2`] exists only where the CPU
//!   was found to have AVX2 (and BMI1, BMI2, POPCNT, LZCNT); an [`Sse2`] only on targets
//!   compiled with SSE2. So a scan never needs `unsafe`, and this crate's unsafe code is the
//!   intrinsics behind the tokens, each block with its `// SAFETY:` reason.
//! - Every method is `#[inline(always)]`: a scan compiles to the intrinsics themselves, and
//!   inside [`Avx2::run`] to AVX2 instructions (an intrinsic outside a function compiled for
//!   its feature would be a call).
//! - All lanes compute the same bytes for the same input (property-tested against a scalar
//!   reference, on random vectors loaded at every offset).

// Unsafe code is fenced: only the modules marked `allow(unsafe_code)` below may use it, and
// every unsafe block says why it is sound (`// SAFETY:`).
#![deny(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks)]

mod lanes;
// `str::from_utf8_unchecked` on the lines the scan found to be ASCII.
#[allow(unsafe_code)]
mod line;
mod swar;
// The AVX2 intrinsics and the function compiled for AVX2 that scans run in.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod avx2;
// The SSE2 intrinsics.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[allow(unsafe_code)]
mod sse2;

#[cfg(target_arch = "x86_64")]
pub use avx2::Avx2;
pub use lanes::Lanes;
pub use line::{line_end, line_end_in};
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
pub use sse2::Sse2;
pub use swar::Swar;

/// The widest lanes every CPU of the target has: [`Sse2`] on x86_64, [`Swar`] elsewhere.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
pub type Baseline = Sse2;
/// The widest lanes every CPU of the target has: [`Sse2`] on x86_64, [`Swar`] elsewhere.
#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
pub type Baseline = Swar;

/// The [`Baseline`] lanes (no run-time check: the target guarantees them).
#[inline(always)]
pub const fn baseline() -> Baseline {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    return Sse2::new();
    #[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
    return Swar;
}

#[cfg(test)]
mod tests;
