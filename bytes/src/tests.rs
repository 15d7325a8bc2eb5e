//! Every lanes type against a scalar reference: each operation on random vectors loaded at
//! every offset of a random buffer (with the bytes next to every boundary that matters:
//! 0x00, 0x1f/0x20, 0x7f/0x80, 0xff), and the line scan on every start and tail.

use proptest::prelude::*;

use crate::{line_end_in, Lanes, Swar};

/// Bytes dense in the values next to the boundaries the operations have.
fn byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        3 => any::<u8>(),
        1 => prop::sample::select(vec![0u8, 1, 0x0a, 0x1f, 0x20, 0x22, 0x5c, 0x7e, 0x7f, 0x80, 0x81, 0xfe, 0xff]),
    ]
}

/// The bytes of `v`.
fn bytes<L: Lanes>(l: L, v: L::V) -> Vec<u8> {
    let mut out = vec![0; L::WIDTH];
    l.store(v, &mut out);
    out
}

/// What a mask's byte must hold: its high bit.
fn mask(b: bool) -> u8 {
    u8::from(b) << 7
}

/// The high bits of the bytes of the mask `m`, the part the [`Lanes`] contract defines; on
/// SSE2 and AVX2 the bytes are whole (`0xff`/`0x00`).
fn masks<L: Lanes>(l: L, m: L::V) -> Vec<u8> {
    let b = bytes(l, m);
    if L::WIDTH > 8 {
        assert!(b.iter().all(|&x| x == 0 || x == 0xff), "{b:?}");
    }
    b.iter().map(|&x| x & 0x80).collect()
}

/// Checks every operation of `l` on the vectors at offset `at` of `a` and `b`.
fn check_ops<L: Lanes>(
    l: L,
    a: &[u8],
    b: &[u8],
    at: usize,
    c: u8,
    lo: u8,
    hi: u8,
) -> Result<(), TestCaseError> {
    let w = L::WIDTH;
    let (xa, xb) = (&a[at..at + w], &b[at..at + w]);
    let (va, vb) = (l.load(&a[at..]), l.load(&b[at..]));
    let each = |f: &dyn Fn(u8, u8) -> u8| -> Vec<u8> {
        xa.iter().zip(xb).map(|(&x, &y)| f(x, y)).collect()
    };
    prop_assert_eq!(bytes(l, va), xa.to_vec(), "load at {}", at);
    prop_assert_eq!(bytes(l, l.splat(c)), vec![c; w]);
    prop_assert_eq!(masks(l, l.eq(va, vb)), each(&|x, y| mask(x == y)));
    prop_assert_eq!(bytes(l, l.sub(va, vb)), each(&|x, y| x.wrapping_sub(y)));
    prop_assert_eq!(bytes(l, l.min(va, vb)), each(&|x, y| x.min(y)));
    prop_assert_eq!(bytes(l, l.or(va, vb)), each(&|x, y| x | y));
    prop_assert_eq!(bytes(l, l.and(va, vb)), each(&|x, y| x & y));
    prop_assert_eq!(bytes(l, l.andnot(va, vb)), each(&|x, y| !x & y));
    let high = xa
        .iter()
        .enumerate()
        .fold(0u64, |m, (j, &x)| m | u64::from(x >> 7) << j);
    prop_assert_eq!(l.bits(va), high);
    prop_assert_eq!(masks(l, l.le(va, c)), each(&|x, _| mask(x <= c)));
    prop_assert_eq!(masks(l, l.eq(va, l.splat(c))), each(&|x, _| mask(x == c)));
    let (lo, hi) = (lo.min(hi), lo.max(hi));
    let in_range = each(&|x, _| mask((lo..=hi).contains(&x)));
    prop_assert_eq!(
        masks(l, l.in_range(va, lo, hi)),
        in_range,
        "{}..={}",
        lo,
        hi
    );
    // Masks combine bit by bit, and `bits` reads them.
    let (m1, m2) = (l.le(va, c), l.in_range(va, lo, hi));
    let want = |f: &dyn Fn(bool, bool) -> bool| {
        xa.iter().enumerate().fold(0u64, |m, (j, &x)| {
            m | u64::from(f(x <= c, (lo..=hi).contains(&x))) << j
        })
    };
    prop_assert_eq!(l.bits(l.or(m1, m2)), want(&|p, q| p || q));
    prop_assert_eq!(l.bits(l.and(m1, m2)), want(&|p, q| p && q));
    prop_assert_eq!(l.bits(l.andnot(m1, m2)), want(&|p, q| !p && q));
    Ok(())
}

/// Checks [`line_end_in`] on `l` against the two-pass reference.
fn check_line_end<L: Lanes>(l: L, b: &[u8]) -> Result<(), TestCaseError> {
    let end = b.iter().position(|&c| c == b'\n');
    let text = &b[..end.unwrap_or(b.len())];
    let want = (
        end,
        text.is_ascii()
            .then(|| std::str::from_utf8(text).unwrap_or_default()),
    );
    prop_assert_eq!(line_end_in(l, b), want);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn every_operation_equals_the_scalar_one(
        a in prop::collection::vec(byte(), 64..100),
        b in prop::collection::vec(byte(), 64..100),
        c in byte(),
        lo in byte(),
        hi in byte(),
    ) {
        let n = a.len().min(b.len());
        for at in 0..=n - 8 {
            check_ops(Swar, &a, &b, at, c, lo, hi)?;
        }
        #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
        for at in 0..=n - 16 {
            check_ops(crate::Sse2::new(), &a, &b, at, c, lo, hi)?;
        }
        #[cfg(target_arch = "x86_64")]
        if let Some(avx2) = crate::Avx2::detect() {
            for at in 0..=n - 32 {
                avx2.run(|l| check_ops(l, &a, &b, at, c, lo, hi))?;
            }
        }
    }

    /// The line scan at every start of a buffer around the block widths, with newlines and
    /// high bytes anywhere, on every lanes type.
    #[test]
    fn line_end_is_the_first_newline_and_is_ascii(
        mut input in prop::collection::vec(
            prop_oneof![40 => Just(b'a'), 2 => Just(0x7fu8), 1 => Just(b'\n')],
            0..120,
        ),
        high in prop::option::of((0usize..120, 0x80u8..=0xff)),
    ) {
        if let Some((at, byte)) = high {
            if !input.is_empty() {
                let at = at % input.len();
                input[at] = byte;
            }
        }
        for from in 0..=input.len() {
            let b = &input[from..];
            check_line_end(Swar, b)?;
            check_line_end(crate::baseline(), b)?;
            prop_assert_eq!(crate::line_end(b), line_end_in(crate::baseline(), b));
            #[cfg(target_arch = "x86_64")]
            if let Some(avx2) = crate::Avx2::detect() {
                avx2.run(|l| check_line_end(l, b))?;
            }
        }
    }
}

#[test]
#[should_panic(expected = "an 8-byte load from 7 bytes")]
fn a_short_load_panics() {
    Swar.load(&[0; 7]);
}
