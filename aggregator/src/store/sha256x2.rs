//! SHA-256 of many short messages that share a prefix, computed two at a time.
//!
//! The entry digest (`digest.rs`) hashes one short message per stored line: the stream's
//! labels (the same prefix for every line of a stream), then the line's timestamp, length and
//! bytes. With SHA-NI a SHA-256 block is a chain of 32 `sha256rnds2` instructions, each
//! waiting for the result of the one before, so hashing one message at a time leaves most of
//! the SHA unit idle. Compressing the blocks of two independent messages in one instruction
//! stream lets the CPU run the two chains side by side, at nearly the cost of one.
//!
//! A push also has one long message, its payload (the JSON body, ~1 MiB), whose blocks form
//! one dependent chain of their own. [`Long`] lets it run in one lane while the short
//! messages take turns in the other, read in place from the caller's memory.
//!
//! Invariants: the results are plain SHA-256 digests (property-tested against
//! `sha2::Sha256` below); only the scheduling differs. The only `unsafe` code is
//! [`x86::compress2`] and its one call, made after a runtime check that the CPU has the
//! features it is compiled for. Without them (or off x86-64) every block goes through
//! `sha2::compress256`, one message after the other.

use sha2::digest::generic_array::GenericArray;

/// SHA-256 block size in bytes.
const BLOCK: usize = 64;

/// Bytes of the message length that ends the padding.
const LENGTH_BYTES: usize = 8;

/// The initial SHA-256 state (FIPS 180-4, 5.3.3).
const H0: [u32; 8] = [
    0x6a09_e667,
    0xbb67_ae85,
    0x3c6e_f372,
    0xa54f_f53a,
    0x510e_527f,
    0x9b05_688c,
    0x1f83_d9ab,
    0x5be0_cd19,
];

/// Compresses whole blocks (`blocks.len()` is a multiple of [`BLOCK`]) into `state`.
fn compress(state: &mut [u32; 8], blocks: &[u8]) {
    for block in blocks.chunks_exact(BLOCK) {
        sha2::compress256(state, &[*GenericArray::from_slice(block)]);
    }
}

/// A prefix absorbed once: the state after its whole blocks and the bytes after them.
#[derive(Clone)]
pub struct Prefix {
    state: [u32; 8],
    /// Bytes compressed into `state`, a multiple of [`BLOCK`].
    compressed: u64,
    /// The prefix's last, partial block (fewer than [`BLOCK`] bytes).
    rest: Vec<u8>,
}

impl Prefix {
    /// Absorbs `prefix`.
    pub fn new(prefix: &[u8]) -> Prefix {
        let whole = prefix.len() - prefix.len() % BLOCK;
        let mut state = H0;
        compress(&mut state, &prefix[..whole]);
        Prefix {
            state,
            compressed: whole as u64,
            rest: prefix[whole..].to_vec(),
        }
    }

    /// Calls `f(i, SHA-256(prefix ‖ head ‖ body))` for the `i`-th `(head, body)` of
    /// `messages`, counting from 0. Calls come in about, but not exactly, message order.
    /// While `long` has blocks left, its blocks are compressed alongside the messages'
    /// instead of a second message's; what is left of it when the messages run out stays
    /// for the next call or [`Long::finish`].
    pub fn hash_each<'a, H: AsRef<[u8]>>(
        &self,
        messages: impl IntoIterator<Item = (H, &'a [u8])>,
        long: Option<&mut Long<'_>>,
        f: impl FnMut(usize, [u8; 32]),
    ) {
        self.hash_each_on(x86::available(), messages, long, f);
    }

    /// [`Prefix::hash_each`], two lanes at a time only if `paired`, which the caller has
    /// checked with `x86::available`.
    fn hash_each_on<'a, H: AsRef<[u8]>>(
        &self,
        paired: bool,
        messages: impl IntoIterator<Item = (H, &'a [u8])>,
        mut long: Option<&mut Long<'_>>,
        mut f: impl FnMut(usize, [u8; 32]),
    ) {
        let mut messages = messages.into_iter().enumerate();
        let mut lanes = [Lane::default(), Lane::default()];
        loop {
            // The long message takes the first lane while it lasts (on the paired path only:
            // alone it would gain nothing).
            let with_long = match long.as_deref_mut() {
                Some(l) if paired && l.0.blocks_left() > 0 => Some(&mut l.0),
                _ => None,
            };
            let [a, b] = &mut lanes;
            for lane in [&mut *a, &mut *b]
                .into_iter()
                .skip(usize::from(with_long.is_some()))
            {
                if lane.blocks_left() == 0 {
                    if let Some((i, (head, body))) = messages.next() {
                        lane.load(self, i, head.as_ref(), body);
                    }
                }
            }
            // A lane still idle after the refill means the messages are all taken.
            if let Some(l) = with_long {
                let n = l.contiguous_blocks().min(b.contiguous_blocks());
                if n == 0 {
                    return;
                }
                let (sl, bl) = l.take(n);
                let (sb, bb) = b.take(n);
                // SAFETY: the long lane is used only when `paired`, i.e. after
                // `x86::available()` confirmed the CPU features `compress2` is compiled for;
                // `take` hands out equal, whole numbers of blocks.
                unsafe { x86::compress2(sl, bl, sb, bb) };
                b.emit(&mut f);
                continue;
            }
            let n = a.contiguous_blocks().min(b.contiguous_blocks());
            if paired && n > 0 {
                let (sa, ba) = a.take(n);
                let (sb, bb) = b.take(n);
                // SAFETY: `x86::available()` confirmed the CPU features `compress2` is
                // compiled for; `take` hands out equal, whole numbers of blocks.
                unsafe { x86::compress2(sa, ba, sb, bb) };
            } else if a.blocks_left() + b.blocks_left() == 0 {
                return;
            } else {
                for lane in [&mut *a, &mut *b] {
                    lane.compress_rest();
                }
            }
            for lane in [a, b] {
                lane.emit(&mut f);
            }
        }
    }
}

/// One long message hashed from the caller's memory, alongside the short messages of
/// [`Prefix::hash_each`] calls.
pub struct Long<'m>(Lane<'m>);

impl<'m> Long<'m> {
    /// Starts hashing `message`: its whole blocks are read in place, only the last partial
    /// block and the padding are copied.
    pub fn new(message: &'m [u8]) -> Long<'m> {
        let whole = message.len() - message.len() % BLOCK;
        let mut lane = Lane {
            state: H0,
            direct: &message[..whole],
            ..Lane::default()
        };
        lane.pad(&message[whole..], message.len() as u64);
        Long(lane)
    }

    /// Compresses what is left, alone, and returns the digest.
    pub fn finish(mut self) -> [u8; 32] {
        self.0.compress_rest();
        self.0.digest()
    }
}

/// One message being hashed: whole blocks read in place (`direct`, a long message's), then
/// its padded tail (a short message's everything after the prefix's whole blocks), and how
/// far the state has got through the two.
#[derive(Default)]
struct Lane<'m> {
    index: usize,
    state: [u32; 8],
    direct: &'m [u8],
    padded: Vec<u8>,
    done: usize,
    /// A finished digest not yet handed to the caller.
    unreported: bool,
}

impl Lane<'_> {
    fn blocks_left(&self) -> usize {
        (self.direct.len() + self.padded.len() - self.done) / BLOCK
    }

    /// Blocks left in the current segment (`direct` or `padded`), which [`Lane::take`] can
    /// hand out as one slice.
    fn contiguous_blocks(&self) -> usize {
        match self.done.checked_sub(self.direct.len()) {
            None => (self.direct.len() - self.done) / BLOCK,
            Some(in_padded) => (self.padded.len() - in_padded) / BLOCK,
        }
    }

    /// Starts message `index`: the prefix's partial block, `head`, `body`, then the padding.
    fn load(&mut self, prefix: &Prefix, index: usize, head: &[u8], body: &[u8]) {
        self.padded.clear();
        self.padded.extend_from_slice(&prefix.rest);
        self.padded.extend_from_slice(head);
        let len = prefix.compressed + (self.padded.len() + body.len()) as u64;
        self.pad(body, len);
        self.state = prefix.state;
        self.index = index;
        self.direct = &[];
        self.done = 0;
        self.unreported = true;
    }

    /// Appends `tail` to the padded segment, then SHA-256 padding for a message of `len`
    /// bytes in all: 0x80, zeros, the length in bits, big-endian.
    fn pad(&mut self, tail: &[u8], len: u64) {
        let p = &mut self.padded;
        p.extend_from_slice(tail);
        p.push(0x80);
        let zeros = (BLOCK - (p.len() + LENGTH_BYTES) % BLOCK) % BLOCK;
        p.resize(p.len() + zeros, 0);
        p.extend_from_slice(&len.wrapping_mul(8).to_be_bytes());
    }

    /// The state and the next `n` blocks (at most [`Lane::contiguous_blocks`]), which the
    /// caller compresses into it.
    fn take(&mut self, n: usize) -> (&mut [u32; 8], &[u8]) {
        let start = self.done;
        self.done += n * BLOCK;
        let blocks = match start.checked_sub(self.direct.len()) {
            None => &self.direct[start..self.done],
            Some(in_padded) => &self.padded[in_padded..in_padded + n * BLOCK],
        };
        (&mut self.state, blocks)
    }

    /// Compresses every block left, one after the other.
    fn compress_rest(&mut self) {
        while self.blocks_left() > 0 {
            let n = self.contiguous_blocks();
            let (s, blocks) = self.take(n);
            compress(s, blocks);
        }
    }

    fn digest(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (o, w) in out.chunks_exact_mut(4).zip(self.state) {
            o.copy_from_slice(&w.to_be_bytes());
        }
        out
    }

    /// Reports the digest if the message is done.
    fn emit(&mut self, f: &mut impl FnMut(usize, [u8; 32])) {
        if self.unreported && self.blocks_left() == 0 {
            self.unreported = false;
            f(self.index, self.digest());
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    //! Two SHA-256 compressions interleaved with the SHA-NI instructions. The round and
    //! message-schedule steps are those of `sha2`'s x86 backend, written once per lane.

    use std::arch::x86_64::*;

    /// SHA-256 round constants, four per group of rounds.
    const K: [u32; 64] = [
        0x428a_2f98,
        0x7137_4491,
        0xb5c0_fbcf,
        0xe9b5_dba5,
        0x3956_c25b,
        0x59f1_11f1,
        0x923f_82a4,
        0xab1c_5ed5,
        0xd807_aa98,
        0x1283_5b01,
        0x2431_85be,
        0x550c_7dc3,
        0x72be_5d74,
        0x80de_b1fe,
        0x9bdc_06a7,
        0xc19b_f174,
        0xe49b_69c1,
        0xefbe_4786,
        0x0fc1_9dc6,
        0x240c_a1cc,
        0x2de9_2c6f,
        0x4a74_84aa,
        0x5cb0_a9dc,
        0x76f9_88da,
        0x983e_5152,
        0xa831_c66d,
        0xb003_27c8,
        0xbf59_7fc7,
        0xc6e0_0bf3,
        0xd5a7_9147,
        0x06ca_6351,
        0x1429_2967,
        0x27b7_0a85,
        0x2e1b_2138,
        0x4d2c_6dfc,
        0x5338_0d13,
        0x650a_7354,
        0x766a_0abb,
        0x81c2_c92e,
        0x9272_2c85,
        0xa2bf_e8a1,
        0xa81a_664b,
        0xc24b_8b70,
        0xc76c_51a3,
        0xd192_e819,
        0xd699_0624,
        0xf40e_3585,
        0x106a_a070,
        0x19a4_c116,
        0x1e37_6c08,
        0x2748_774c,
        0x34b0_bcb5,
        0x391c_0cb3,
        0x4ed8_aa4a,
        0x5b9c_ca4f,
        0x682e_6ff3,
        0x748f_82ee,
        0x78a5_636f,
        0x84c8_7814,
        0x8cc7_0208,
        0x90be_fffa,
        0xa450_6ceb,
        0xbef9_a3f7,
        0xc671_78f2,
    ];

    /// Whether this CPU can run [`compress2`].
    pub fn available() -> bool {
        is_x86_feature_detected!("sha")
            && is_x86_feature_detected!("sse2")
            && is_x86_feature_detected!("ssse3")
            && is_x86_feature_detected!("sse4.1")
    }

    /// Compresses the blocks `a` into `sa` and `b` into `sb`, the two interleaved.
    ///
    /// # Safety
    /// The CPU must have SHA, SSE2, SSSE3 and SSE4.1 ([`available`]). `a` and `b` must be
    /// the same length, a multiple of 64 (checked; a violation panics).
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    pub unsafe fn compress2(sa: &mut [u32; 8], a: &[u8], sb: &mut [u32; 8], b: &[u8]) {
        assert!(a.len() == b.len() && a.len() % 64 == 0);
        let (mut abef_a, mut cdgh_a) = load_state(sa);
        let (mut abef_b, mut cdgh_b) = load_state(sb);
        for (block_a, block_b) in a.chunks_exact(64).zip(b.chunks_exact(64)) {
            let (save_abef_a, save_cdgh_a) = (abef_a, cdgh_a);
            let (save_abef_b, save_cdgh_b) = (abef_b, cdgh_b);
            let mut wa = load_block(block_a);
            let mut wb = load_block(block_b);
            // Rounds 4i..4i+4 of each lane, written out for each i so that the message
            // words stay in registers.
            macro_rules! groups {
                ($($i:literal)*) => {$(
                    if $i >= 4 {
                        schedule(&mut wa, $i);
                        schedule(&mut wb, $i);
                    }
                    let k = _mm_set_epi32(
                        K[4 * $i + 3] as i32,
                        K[4 * $i + 2] as i32,
                        K[4 * $i + 1] as i32,
                        K[4 * $i] as i32,
                    );
                    rounds4(&mut abef_a, &mut cdgh_a, _mm_add_epi32(wa[$i % 4], k));
                    rounds4(&mut abef_b, &mut cdgh_b, _mm_add_epi32(wb[$i % 4], k));
                )*};
            }
            groups!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15);
            abef_a = _mm_add_epi32(abef_a, save_abef_a);
            cdgh_a = _mm_add_epi32(cdgh_a, save_cdgh_a);
            abef_b = _mm_add_epi32(abef_b, save_abef_b);
            cdgh_b = _mm_add_epi32(cdgh_b, save_cdgh_b);
        }
        store_state(sa, abef_a, cdgh_a);
        store_state(sb, abef_b, cdgh_b);
    }

    /// The state words in the order `sha256rnds2` wants them: (ABEF, CDGH).
    #[inline(always)]
    unsafe fn load_state(s: &[u32; 8]) -> (__m128i, __m128i) {
        // SAFETY: `s` is 32 readable bytes; `loadu` has no alignment requirement.
        let dcba = _mm_loadu_si128(s.as_ptr().cast());
        // SAFETY: as above, the second 16 bytes.
        let hgfe = _mm_loadu_si128(s.as_ptr().add(4).cast());
        let cdab = _mm_shuffle_epi32(dcba, 0xB1);
        let efgh = _mm_shuffle_epi32(hgfe, 0x1B);
        (
            _mm_alignr_epi8(cdab, efgh, 8),
            _mm_blend_epi16(efgh, cdab, 0xF0),
        )
    }

    /// The inverse of [`load_state`].
    #[inline(always)]
    unsafe fn store_state(s: &mut [u32; 8], abef: __m128i, cdgh: __m128i) {
        let feba = _mm_shuffle_epi32(abef, 0x1B);
        let dchg = _mm_shuffle_epi32(cdgh, 0xB1);
        let dcba = _mm_blend_epi16(feba, dchg, 0xF0);
        let hgef = _mm_alignr_epi8(dchg, feba, 8);
        // SAFETY: `s` is 32 writable bytes; `storeu` has no alignment requirement.
        _mm_storeu_si128(s.as_mut_ptr().cast(), dcba);
        // SAFETY: as above, the second 16 bytes.
        _mm_storeu_si128(s.as_mut_ptr().add(4).cast(), hgef);
    }

    /// The 16 message words of a block, big-endian, four to a vector.
    #[inline(always)]
    unsafe fn load_block(block: &[u8]) -> [__m128i; 4] {
        let bswap = _mm_set_epi64x(
            0x0C0D_0E0F_0809_0A0Bu64 as i64,
            0x0405_0607_0001_0203u64 as i64,
        );
        let p = block[..64].as_ptr();
        // SAFETY: `p` points at 64 readable bytes (the slice above); each load reads 16
        // of them, unaligned.
        [0, 16, 32, 48].map(|off| _mm_shuffle_epi8(_mm_loadu_si128(p.add(off).cast()), bswap))
    }

    /// Replaces `w[i % 4]`, the message words of group i-4, by those of group i.
    #[inline(always)]
    unsafe fn schedule(w: &mut [__m128i; 4], i: usize) {
        let [w0, w1, w2, w3] = [0, 1, 2, 3].map(|j| w[(i + j) % 4]);
        let t = _mm_add_epi32(_mm_sha256msg1_epu32(w0, w1), _mm_alignr_epi8(w3, w2, 4));
        w[i % 4] = _mm_sha256msg2_epu32(t, w3);
    }

    /// Four rounds, given the four message words plus their round constants.
    #[inline(always)]
    unsafe fn rounds4(abef: &mut __m128i, cdgh: &mut __m128i, wk: __m128i) {
        *cdgh = _mm_sha256rnds2_epu32(*cdgh, *abef, wk);
        *abef = _mm_sha256rnds2_epu32(*abef, *cdgh, _mm_shuffle_epi32(wk, 0x0E));
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod x86 {
    /// Never: the paired path exists for x86-64 only.
    pub fn available() -> bool {
        false
    }

    /// Unreachable: [`available`] is false.
    pub unsafe fn compress2(_: &mut [u32; 8], _: &[u8], _: &mut [u32; 8], _: &[u8]) {
        unreachable!("paired SHA-256 needs x86-64")
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use sha2::{Digest, Sha256};

    use super::*;

    fn reference(prefix: &[u8], head: &[u8], body: &[u8]) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(prefix);
        h.update(head);
        h.update(body);
        h.finalize().into()
    }

    /// Every digest of `hash_each` against `sha2`, each message reported exactly once, on
    /// both paths (the paired one where this CPU has it), without and with a long message
    /// (`long`) hashed alongside, over one call or split over two.
    fn check(prefix: &[u8], messages: &[(Vec<u8>, Vec<u8>)], long: &[u8]) {
        let p = Prefix::new(prefix);
        for paired in [false, x86::available()] {
            for (with_long, split) in [(false, 0), (true, 0), (true, messages.len() / 2)] {
                let mut got: Vec<Option<[u8; 32]>> = vec![None; messages.len()];
                let mut l = with_long.then(|| Long::new(long));
                let (first, second) = messages.split_at(split);
                for (offset, part) in [(0, first), (split, second)] {
                    p.hash_each_on(
                        paired,
                        part.iter().map(|(h, b)| (h, b.as_slice())),
                        l.as_mut(),
                        |i, d| {
                            let i = offset + i;
                            assert!(got[i].replace(d).is_none(), "message {i} reported twice");
                        },
                    );
                }
                for (i, (h, b)) in messages.iter().enumerate() {
                    let want = reference(prefix, h, b);
                    assert_eq!(got[i], Some(want), "message {i}, paired: {paired}");
                }
                if let Some(l) = l {
                    let want: [u8; 32] = Sha256::digest(long).into();
                    assert_eq!(l.finish(), want, "long message, paired: {paired}");
                }
            }
        }
    }

    /// Lengths at and around the padding's block boundaries.
    const EDGES: [usize; 12] = [0, 1, 54, 55, 56, 57, 63, 64, 65, 119, 120, 128];

    #[test]
    fn boundary_lengths_match_sha2() {
        let bytes = |n: usize, seed: u8| {
            (0..n)
                .map(|i| (i as u8).wrapping_mul(31) ^ seed)
                .collect::<Vec<u8>>()
        };
        let messages: Vec<_> = EDGES
            .iter()
            .flat_map(|&h| EDGES.iter().map(move |&b| (bytes(h % 17, 1), bytes(b, 2))))
            .collect();
        for p in EDGES {
            let long = bytes(64 * 7 + p, 4);
            check(&bytes(p, 3), &messages, &long);
            check(&bytes(p, 3), &messages[..1], &long[..p]);
            check(&bytes(p, 3), &[], &long);
        }
        // Known answer: SHA-256("abc").
        let mut got = None;
        Prefix::new(b"a").hash_each([(b"b", b"c".as_slice())], None, |_, d| got = Some(d));
        assert_eq!(
            got.map(hex::encode).as_deref(),
            Some("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        );
    }

    proptest! {
        #[test]
        fn matches_sha2(
            prefix in proptest::collection::vec(any::<u8>(), 0..300),
            messages in proptest::collection::vec(
                (
                    proptest::collection::vec(any::<u8>(), 0..20),
                    prop_oneof![
                        proptest::collection::vec(any::<u8>(), 0..300),
                        proptest::collection::vec(any::<u8>(), 300..2000),
                    ],
                ),
                0..12,
            ),
            long in proptest::collection::vec(any::<u8>(), 0..3000),
        ) {
            check(&prefix, &messages, &long);
        }
    }
}
