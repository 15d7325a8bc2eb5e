//! The per-line pre-pass: which cheap shapes a line contains, so that a detector whose shapes
//! are absent never runs, and a line without any costs this pass alone.
//!
//! How: the line is classified 64 bytes at a time into bit masks (digit, letter, upper case,
//! hex digit, `:`, `@`, `+`) — with SSE2 on x86_64, sixteen bytes per instruction, and
//! elsewhere with word-sized (SWAR) arithmetic, eight bytes per `u64`; a property test
//! holds the two equal. Everything else works on the masks: word-part starts are `letter & !(alnum << 1)`; digit runs are
//! found at their last digit (`digit & !(digit >> 1)`) and measured with one
//! `leading_zeros`, and a run shorter than six digits with no single-byte gap to another
//! run is not visited at all (it can set no bit; hex ids are full of those). A word-part
//! start costs one lookup in a table of keyword first-byte pairs, and the rare pair that
//! passes one masked 8-byte compare per keyword. So the cost per byte is a few
//! arithmetic instructions without branches.
//!
//! Invariant: each bit is a *necessary* condition for its detector's candidate pattern (a
//! line without the bit cannot produce a match), except the keyword bits, which also define
//! where a keyword counts (at a word-part start: `client_secret`, `newPassword`, not
//! `mypassword`). The keyword bits, `F_AT`, `F_CHAIN13`, `F_SIGN6`, `F_RUN10`, `F_RUN12`,
//! `F_PLUS_DIGIT`, `F_DOTTED4`, `F_IPV6` and `F_IBAN` are exactly those of the byte-at-a-time
//! pass this replaced (a property test compares the two on random lines); `F_FNR11` and
//! `F_TRUNK0` are tighter than the chain-length bits they replace (an 11-digit chain of
//! access-log numbers no longer runs the fødselsnummer regex), and still necessary.

/// An `@` (e-mail).
pub(crate) const F_AT: u32 = 1 << 0;
/// A chain (digit runs joined by single spaces or dashes) of 13+ digits (cards).
pub(crate) const F_CHAIN13: u32 = 1 << 1;
/// A run of exactly 11 digits, or 6 digits, one space, 5 digits (Norwegian fødselsnummer).
pub(crate) const F_FNR11: u32 = 1 << 2;
/// A run of 6 or 8 digits, then a sign (`-`, `+`, `A`–`F`, `U`–`Y`) and a digit (dated ids).
pub(crate) const F_SIGN6: u32 = 1 << 3;
/// A run of exactly 10 digits.
pub(crate) const F_RUN10: u32 = 1 << 4;
/// A run of exactly 12 digits.
pub(crate) const F_RUN12: u32 = 1 << 5;
/// A `+` followed by a digit (international phone numbers).
pub(crate) const F_PLUS_DIGIT: u32 = 1 << 6;
/// A run of 2–5 digits starting with `0`, joined by a space or dash to more digits, with 8+
/// digits in the chain from there on (national phone numbers with a trunk 0).
pub(crate) const F_TRUNK0: u32 = 1 << 7;
/// Four digit runs joined by single dots.
pub(crate) const F_DOTTED4: u32 = 1 << 8;
/// `::`, or at least 6 colons with a hex digit on each side (an IPv6 address without `::` is
/// eight groups, or six and an IPv4 address, every colon between two hex digits; a JSON
/// line's `":"` and a timestamp's two colons do not count).
pub(crate) const F_IPV6: u32 = 1 << 9;
/// Two upper-case letters and two digits at a word start.
pub(crate) const F_IBAN: u32 = 1 << 10;
// Keyword bits: set when a keyword starts a word part (see `keywords`).
pub(crate) const K_SECRET: u32 = 1 << 16;
pub(crate) const K_API: u32 = 1 << 17;
pub(crate) const K_JWT: u32 = 1 << 18;
pub(crate) const K_BEARER: u32 = 1 << 19;
pub(crate) const K_PHONE: u32 = 1 << 20;
pub(crate) const K_NATID: u32 = 1 << 21;

/// Keywords (lower case) and the bit each sets, by first letter. A keyword counts where a
/// word part starts: after a byte that is not an ASCII letter or digit, or at a lower→upper
/// case change (`newPassword`), so `client_secret`, `X-Api-Key` and `apiKey` count,
/// `mypassword` does not. Each group is a superset of what its detectors' patterns require
/// literally.
const fn keywords(first: u8) -> &'static [(&'static [u8], u32)] {
    match first {
        b'p' => &[
            (b"passw", K_SECRET),
            (b"passphrase", K_SECRET),
            (b"pwd", K_SECRET),
            (b"pk_live_", K_API),
            (b"phone", K_PHONE),
            (b"puhelin", K_PHONE),
            (b"pnr", K_NATID),
            (b"person", K_NATID),
        ],
        b's' => &[
            (b"secret", K_SECRET),
            (b"sk_live_", K_API),
            (b"samordn", K_NATID),
            (b"ssn", K_NATID),
        ],
        b'a' => &[(b"api", K_API), (b"akia", K_API), (b"aiza", K_API)],
        b'x' => &[(b"x-api", K_API), (b"xox", K_API)],
        b'g' => &[
            (b"ghp_", K_API),
            (b"gho_", K_API),
            (b"ghu_", K_API),
            (b"ghs_", K_API),
            (b"ghr_", K_API),
            (b"github_pat_", K_API),
        ],
        b'r' => &[(b"rk_live_", K_API)],
        b'e' => &[(b"eyj", K_JWT)],
        b'b' => &[(b"bearer", K_BEARER)],
        b't' => &[(b"tel", K_PHONE)],
        b'm' => &[(b"mobil", K_PHONE), (b"msisdn", K_PHONE)],
        b'c' => &[(b"cpr", K_NATID)],
        b'n' => &[(b"national", K_NATID)],
        b'f' => &[
            (b"fnr", K_NATID),
            (b"fodsel", K_NATID),
            (b"f\xc3\xb8dsel", K_NATID),
        ],
        b'h' => &[(b"hetu", K_NATID), (b"henkilo", K_NATID)],
        _ => &[],
    }
}

/// Every first letter that has keywords (for building [`PAIRS`]).
const KEYWORD_FIRSTS: &[u8] = b"psaxgrebtmcnfh";

/// One bit per byte pair `(b0, b1)`, set when some keyword starts with those two bytes in
/// any ASCII case. Most word starts (`payment` passes, `status` does not) are rejected by
/// this one lookup before the keyword list is consulted. 8 KiB.
static PAIRS: [u64; 1024] = pairs();

const fn pairs() -> [u64; 1024] {
    let mut t = [0u64; 1024];
    let mut f = 0;
    while f < KEYWORD_FIRSTS.len() {
        let group = keywords(KEYWORD_FIRSTS[f]);
        let mut k = 0;
        while k < group.len() {
            let (a, b) = (group[k].0[0], group[k].0[1]);
            let variants = [
                (a, b),
                (a.to_ascii_uppercase(), b),
                (a, b.to_ascii_uppercase()),
                (a.to_ascii_uppercase(), b.to_ascii_uppercase()),
            ];
            let mut v = 0;
            while v < variants.len() {
                let i = (variants[v].0 as usize) << 8 | variants[v].1 as usize;
                t[i / 64] |= 1 << (i % 64);
                v += 1;
            }
            k += 1;
        }
        f += 1;
    }
    t
}

/// The keyword bits of the word part starting at `b[i]`.
#[inline(always)]
fn keyword_at(b: &[u8], i: usize) -> u32 {
    let Some(&second) = b.get(i + 1) else {
        return 0; // every keyword has at least three bytes
    };
    let pair = usize::from(b[i]) << 8 | usize::from(second);
    if PAIRS[pair / 64] & (1 << (pair % 64)) == 0 {
        return 0;
    }
    let rest = &b[i..];
    let mut head = 0u64;
    for (j, &c) in rest.iter().take(8).enumerate() {
        head |= u64::from(c) << (8 * j);
    }
    let Some(group) = PACKED.get(usize::from((b[i] | 0x20).wrapping_sub(b'a'))) else {
        return 0;
    };
    let mut f = 0;
    for k in group.iter().take_while(|k| k.bit != 0) {
        if (head | k.fold) & k.len == k.want
            && (k.tail.is_empty()
                || rest
                    .get(8..8 + k.tail.len())
                    .is_some_and(|t| t.eq_ignore_ascii_case(k.tail)))
        {
            f |= k.bit;
        }
    }
    f
}

/// A keyword as one masked compare of 8 bytes read little-endian: `want` is its first (up
/// to) eight bytes with letters in lower case, `fold` has `0x20` where it has a letter (so
/// `byte | 0x20` makes the compare case-insensitive there and exact elsewhere), `len`
/// selects its bytes; a longer keyword's `tail` is compared separately.
#[derive(Clone, Copy)]
struct Packed {
    want: u64,
    fold: u64,
    len: u64,
    bit: u32,
    tail: &'static [u8],
}

const fn pack(k: &'static [u8], bit: u32) -> Packed {
    let (mut want, mut fold, mut len) = (0u64, 0u64, 0u64);
    let mut j = 0;
    while j < k.len() && j < 8 {
        let c = k[j];
        if c.is_ascii_alphabetic() {
            want |= ((c | 0x20) as u64) << (8 * j);
            fold |= 0x20 << (8 * j);
        } else {
            want |= (c as u64) << (8 * j);
        }
        len |= 0xff << (8 * j);
        j += 1;
    }
    let tail = if k.len() > 8 { k.split_at(8).1 } else { b"" };
    Packed {
        want,
        fold,
        len,
        bit,
        tail,
    }
}

/// [`keywords`] as [`Packed`] compares, by first letter (`bit == 0` ends a group).
static PACKED: [[Packed; 8]; 26] = packed();

const fn packed() -> [[Packed; 8]; 26] {
    let none = Packed {
        want: 0,
        fold: 0,
        len: 0,
        bit: 0,
        tail: b"",
    };
    let mut t = [[none; 8]; 26];
    let mut c = 0;
    while c < 26 {
        let group = keywords(b'a' + c as u8);
        let mut k = 0;
        while k < group.len() {
            t[c][k] = pack(group[k].0, group[k].1);
            k += 1;
        }
        c += 1;
    }
    t
}

/// The cheap shapes present in a line (a set of the `F_*` / `K_*` bits).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Features(pub(crate) u32);

impl Features {
    /// All ones when bit `k` is present, else zero (to make a bit conditional on another).
    pub(crate) fn bits_if(&self, k: u32) -> u32 {
        if self.0 & k != 0 {
            u32::MAX
        } else {
            0
        }
    }

    /// Whether nothing at all was found: no built-in detector can match.
    pub(crate) fn is_empty(&self) -> bool {
        self.0 == 0
    }

    /// Scans `line` once for the shapes the detectors need.
    pub(crate) fn of(line: &str) -> Features {
        let b = line.as_bytes();
        let mut scan = Scan::new(b);
        let mut base = 0;
        while base < b.len() {
            let block = &b[base..b.len().min(base + BLOCK)];
            scan.block(base, &Masks::of(block));
            base += BLOCK;
        }
        Features(scan.finish())
    }
}

/// Bytes classified per step: one bit of each mask per byte.
const BLOCK: usize = 64;
const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
const HIGH: u64 = 0x8080_8080_8080_8080;

const fn splat(b: u8) -> u64 {
    b as u64 * 0x0101_0101_0101_0101
}

/// The high bit of each byte of `w` set where `lo <= byte <= hi` (ASCII bounds; bytes of
/// 0x80 and above never match). No carry crosses a byte: the low seven bits plus at most
/// 0x80 stay below 0x100.
#[inline(always)]
fn in_range(w: u64, lo: u8, hi: u8) -> u64 {
    let x = w & LOW7;
    let at_least_lo = x + splat(0x80 - lo);
    let above_hi = x + splat(0x7f - hi);
    at_least_lo & !above_hi & !w & HIGH
}

/// The high bit of each byte of `w` set where the byte equals `c`.
#[inline(always)]
fn equals(w: u64, c: u8) -> u64 {
    let t = w ^ splat(c);
    !(((t & LOW7) + LOW7) | t) & HIGH
}

/// The high bits of the eight bytes of `v` as an 8-bit mask, byte 0 in bit 0: the multiply
/// moves bit `8k + 7` to bit `56 + k` and no two partial products share a bit.
#[inline(always)]
fn gather(v: u64) -> u64 {
    ((v >> 7).wrapping_mul(0x0102_0408_1020_4080)) >> 56
}

/// One block's classes, bit `j` for byte `j`.
#[derive(Debug, Default, PartialEq, Eq)]
struct Masks {
    digit: u64,
    letter: u64,
    upper: u64,
    /// Hex digits (`0-9a-fA-F`).
    hex: u64,
    colon: u64,
    at: u64,
    plus: u64,
}

impl Masks {
    /// Classifies up to [`BLOCK`] bytes; missing bytes belong to no class.
    #[inline(always)]
    fn of(block: &[u8]) -> Masks {
        #[cfg(target_arch = "x86_64")]
        {
            sse2::masks(block)
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            Masks::swar(block)
        }
    }

    /// The portable classification: eight bytes per `u64`.
    #[cfg_attr(target_arch = "x86_64", allow(dead_code))]
    #[inline(always)]
    fn swar(block: &[u8]) -> Masks {
        let mut m = Masks::default();
        let mut words = block.chunks_exact(8);
        let mut shift = 0;
        let mut add = |w: u64| {
            let d = in_range(w, b'0', b'9');
            let l = in_range(w | splat(0x20), b'a', b'z');
            // Upper-case letters have bit 5 clear; `<< 2` moves it to the byte's high bit.
            let u = l & !(w << 2);
            let h = d | in_range(w | splat(0x20), b'a', b'f');
            m.digit |= gather(d) << shift;
            m.letter |= gather(l) << shift;
            m.upper |= gather(u) << shift;
            m.hex |= gather(h) << shift;
            m.colon |= gather(equals(w, b':')) << shift;
            m.at |= gather(equals(w, b'@')) << shift;
            m.plus |= gather(equals(w, b'+')) << shift;
            shift += 8;
        };
        for word in words.by_ref() {
            add(u64::from_le_bytes(
                <[u8; 8]>::try_from(word).unwrap_or([0; 8]),
            ));
        }
        let rest = words.remainder();
        if !rest.is_empty() {
            let mut w = 0u64;
            for (j, &c) in rest.iter().enumerate() {
                w |= u64::from(c) << (8 * j);
            }
            add(w);
        }
        m
    }
}

/// The same classification with SSE2, sixteen bytes per instruction. SSE2 is part of the
/// x86_64 baseline, so there is no run-time detection and no fallback to choose.
#[cfg(target_arch = "x86_64")]
mod sse2 {
    use std::arch::x86_64::*;

    use super::{Masks, BLOCK};

    #[inline(always)]
    pub(super) fn masks(block: &[u8]) -> Masks {
        let mut bytes = [0u8; BLOCK];
        bytes[..block.len()].copy_from_slice(block);
        // SAFETY: `classify` only needs SSE2, which every x86_64 CPU has (it is in the
        // target's baseline features); it reads nothing but its argument.
        unsafe { classify(&bytes) }
    }

    #[target_feature(enable = "sse2")]
    unsafe fn classify(bytes: &[u8; BLOCK]) -> Masks {
        let mut m = Masks::default();
        let splat = |c: u8| _mm_set1_epi8(c as i8);
        // `lo <= x <= hi` for bytes as unsigned numbers: `x - lo` (wrapping) is at most
        // `hi - lo` exactly then; bytes of 0x80 and above land far outside every range.
        let within = |x: __m128i, lo: u8, hi: u8| {
            let t = _mm_sub_epi8(x, splat(lo));
            _mm_cmpeq_epi8(_mm_min_epu8(t, splat(hi - lo)), t)
        };
        let mask = |v: __m128i| u64::from(_mm_movemask_epi8(v) as u16);
        for (k, chunk) in bytes.chunks_exact(16).enumerate() {
            let word = |i: usize| {
                let mut w = [0u8; 8];
                w.copy_from_slice(&chunk[i..i + 8]);
                i64::from_le_bytes(w)
            };
            let x = _mm_set_epi64x(word(8), word(0));
            let folded = _mm_or_si128(x, splat(0x20));
            let digit = within(x, b'0', b'9');
            let letter = within(folded, b'a', b'z');
            let upper = _mm_andnot_si128(
                _mm_cmpeq_epi8(_mm_and_si128(x, splat(0x20)), splat(0x20)),
                letter,
            );
            let hex = _mm_or_si128(digit, within(folded, b'a', b'f'));
            let shift = 16 * k;
            m.digit |= mask(digit) << shift;
            m.letter |= mask(letter) << shift;
            m.upper |= mask(upper) << shift;
            m.hex |= mask(hex) << shift;
            m.colon |= mask(_mm_cmpeq_epi8(x, splat(b':'))) << shift;
            m.at |= mask(_mm_cmpeq_epi8(x, splat(b'@'))) << shift;
            m.plus |= mask(_mm_cmpeq_epi8(x, splat(b'+'))) << shift;
        }
        m
    }
}

/// State carried from block to block (bit 0 of a `carry_*` is the previous block's last
/// byte).
struct Scan<'a> {
    b: &'a [u8],
    f: u32,
    /// Colons so far with a hex digit on each side.
    flanked_colons: u32,
    /// Whether the previous block's last byte was alphanumeric / lower case / a colon / a
    /// hex digit.
    carry_alnum: u64,
    carry_lower: u64,
    carry_colon: u64,
    carry_hex: u64,
    /// The previous block's digit mask and single-byte gaps between digits.
    prev_digit: u64,
    prev_gap: u64,
    /// Start of a digit run that reaches the end of the previous block and goes on.
    open_run: Option<usize>,
    /// The previous digit run: end (exclusive), length, whether it starts with `0`.
    prev: Option<(usize, usize, bool)>,
    /// The chain (runs joined by single spaces or dashes) the previous run belongs to.
    chain_digits: usize,
    /// Digits in the chain before its first trunk-0 head (`070-…`), if it has one.
    trunk0_at: Option<usize>,
    /// Consecutive runs joined by single dots, minus one.
    dotted: u32,
}

impl<'a> Scan<'a> {
    fn new(b: &'a [u8]) -> Scan<'a> {
        Scan {
            b,
            f: 0,
            flanked_colons: 0,
            carry_alnum: 0,
            carry_lower: 0,
            carry_colon: 0,
            carry_hex: 0,
            prev_digit: 0,
            prev_gap: 0,
            open_run: None,
            prev: None,
            chain_digits: 0,
            trunk0_at: None,
            dotted: 0,
        }
    }

    #[inline(always)]
    fn block(&mut self, base: usize, m: &Masks) {
        let b = self.b;
        let alnum = m.digit | m.letter;
        let lower = m.letter & !m.upper;
        // A word starts at a letter after a byte that is not alphanumeric (hex ids such as
        // `4bf92f…` are one word); a word part also starts at a lower→upper change.
        let starts = m.letter & !((alnum << 1) | self.carry_alnum);
        let camel = m.upper & ((lower << 1) | self.carry_lower);
        self.carry_alnum = alnum >> 63;
        self.carry_lower = lower >> 63;
        let mut parts = starts | camel;
        while parts != 0 {
            let i = base + parts.trailing_zeros() as usize;
            parts &= parts - 1;
            self.f |= keyword_at(b, i);
        }
        let mut caps = starts & m.upper;
        while caps != 0 {
            let i = base + caps.trailing_zeros() as usize;
            caps &= caps - 1;
            if b.get(i + 1).is_some_and(u8::is_ascii_uppercase)
                && b.get(i + 2).is_some_and(u8::is_ascii_digit)
                && b.get(i + 3).is_some_and(u8::is_ascii_digit)
            {
                self.f |= F_IBAN;
            }
        }

        if m.colon != 0 {
            let next_hex = b.get(base + BLOCK).is_some_and(u8::is_ascii_hexdigit);
            let double = m.colon & ((m.colon << 1) | self.carry_colon);
            let flanked = m.colon
                & ((m.hex << 1) | self.carry_hex)
                & ((m.hex >> 1) | (u64::from(next_hex) << 63));
            self.flanked_colons += flanked.count_ones();
            if double != 0 || self.flanked_colons >= 6 {
                self.f |= F_IPV6;
            }
        }
        self.carry_colon = m.colon >> 63;
        self.carry_hex = m.hex >> 63;

        let d = m.digit;
        let prev_d = self.prev_digit;
        let next_is_digit = b.get(base + BLOCK).is_some_and(u8::is_ascii_digit);
        if m.at != 0 {
            self.f |= F_AT;
        }
        if m.plus & ((d >> 1) | (u64::from(next_is_digit) << 63)) != 0 {
            self.f |= F_PLUS_DIGIT;
        }
        // One byte, not a digit or letter, between two digits: where runs may join (`-`, ` `,
        // `.`; also `:` and `/`, which cost a visit but set nothing).
        let gap = !d
            & !m.letter
            & ((d << 1) | (prev_d >> 63))
            & ((d >> 1) | (u64::from(next_is_digit) << 63));
        let prev_gap = self.prev_gap;
        self.prev_digit = d;
        self.prev_gap = gap;
        if d == 0 {
            return;
        }
        // Runs are handled at their last digit; one reaching the block's end may go on.
        let goes_on = d >> 63 == 1 && next_is_digit;
        let mut ends = d & !(d >> 1);
        if goes_on {
            ends &= !(1 << 63);
        }
        // A run shorter than 6 digits with no gap byte on either side sets no bit: it cannot
        // be a 6/8/10/11/12-digit run or part of a chain. Only the other runs are visited
        // (a hex trace id has a dozen short runs and none of them is visited).
        let with = |k: u32| (d << k) | (prev_d >> (64 - k));
        let long = d & with(1) & with(2) & with(3) & with(4) & with(5);
        let starts = d & !with(1);
        let after_gap = starts & ((gap << 1) | (prev_gap >> 63));
        // Adding a run's start bit carries through the run to the bit after its last digit.
        let ends_after_gap = (d.wrapping_add(after_gap) & !d) >> 1;
        let mut visit = ends & (long | (gap >> 1) | ends_after_gap | (1 << 63));
        if self.open_run.is_some() {
            visit |= ends & ends.wrapping_neg(); // the run that came in from the last block
        }
        while visit != 0 {
            let e = visit.trailing_zeros();
            visit &= visit - 1;
            let before = !d & ((1u64 << e) - 1);
            let start = if before == 0 {
                self.open_run.take().unwrap_or(base)
            } else {
                base + BLOCK - before.leading_zeros() as usize
            };
            self.run(start, base + e as usize + 1);
        }
        if goes_on {
            if !d != 0 {
                self.open_run = Some(base + BLOCK - (!d).leading_zeros() as usize);
            } else if self.open_run.is_none() {
                self.open_run = Some(base);
            }
        }
    }

    /// One maximal digit run `b[s..e]`, in line order.
    fn run(&mut self, s: usize, e: usize) {
        let b = self.b;
        let len = e - s;
        let zero = b[s] == b'0';
        // The single byte between the previous run and this one, if that is all there is.
        let gap = match self.prev {
            Some((end, _, _)) if end + 1 == s => Some(b[end]),
            _ => None,
        };
        if matches!(gap, Some(b' ' | b'-')) {
            if let Some((_, prev_len, prev_zero)) = self.prev {
                if prev_zero && (2..=5).contains(&prev_len) && self.trunk0_at.is_none() {
                    self.trunk0_at = Some(self.chain_digits - prev_len);
                }
                if gap == Some(b' ') && prev_len == 6 && len == 5 {
                    self.f |= F_FNR11;
                }
            }
            self.chain_digits += len;
        } else {
            self.end_chain();
            self.chain_digits = len;
        }
        if gap == Some(b'.') {
            self.dotted += 1;
            if self.dotted >= 3 {
                self.f |= F_DOTTED4;
            }
        } else {
            self.dotted = 0;
        }
        match len {
            10 => self.f |= F_RUN10,
            11 => self.f |= F_FNR11,
            12 => self.f |= F_RUN12,
            _ => {}
        }
        if (len == 6 || len == 8)
            && matches!(b.get(e), Some(b'-' | b'+' | b'A'..=b'F' | b'U'..=b'Y'))
            && b.get(e + 1).is_some_and(u8::is_ascii_digit)
        {
            self.f |= F_SIGN6;
        }
        self.prev = Some((e, len, zero));
    }

    fn end_chain(&mut self) {
        if self.chain_digits >= 13 {
            self.f |= F_CHAIN13;
        }
        if let Some(at) = self.trunk0_at.take() {
            if self.chain_digits - at >= 8 {
                self.f |= F_TRUNK0;
            }
        }
    }

    fn finish(mut self) -> u32 {
        self.end_chain();
        self.f
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn f(s: &str) -> u32 {
        Features::of(s).0
    }

    #[test]
    fn finds_shapes() {
        assert_ne!(f("a@b.co") & F_AT, 0);
        assert_ne!(f("card 4111 1111 1111 1111") & F_CHAIN13, 0);
        assert_eq!(f("order=1234567890") & F_CHAIN13, 0);
        assert_ne!(f("order=1234567890") & F_RUN10, 0);
        assert_ne!(f("ip 10.1.2.3 x") & F_DOTTED4, 0);
        assert_eq!(f("t 10.1.2 x 3.4") & F_DOTTED4, 0);
        assert_ne!(f("fe80::1") & F_IPV6, 0);
        assert_eq!(f("10:00:00.123") & F_IPV6, 0);
        assert_ne!(f("131052-308T") & F_SIGN6, 0);
        assert_ne!(f("NO9386011117947") & F_IBAN, 0);
        assert_ne!(f("Authorization: Bearer x") & K_BEARER, 0);
        assert_ne!(f("cpr=0101901234") & K_NATID, 0);
        assert_ne!(f("x newPassword=1") & K_SECRET, 0);
        assert_eq!(f("x mypassword=1") & K_SECRET, 0);
        assert!(Features::of("GET /health 200").is_empty());
    }

    #[test]
    fn tight_bits() {
        assert_ne!(f("fnr=15076500565") & F_FNR11, 0);
        assert_ne!(f("id 150765 00565") & F_FNR11, 0);
        assert_eq!(f("\"GET /x\" 201 12345 123ms") & F_FNR11, 0);
        assert_eq!(f("150765-00565 1507650056") & F_FNR11, 0);
        assert_ne!(f("tel 070-123 45 67") & F_TRUNK0, 0);
        assert_ne!(f("x 5 040 123 4567") & F_TRUNK0, 0);
        assert_eq!(f("date 2026-01-05 order=0123456789") & F_TRUNK0, 0);
    }

    #[test]
    fn runs_across_blocks() {
        for pad in 50..70 {
            let line = format!("{}4111 1111 1111 1111 x 1234567890", "a".repeat(pad));
            let got = f(&line);
            assert_ne!(got & F_CHAIN13, 0, "pad {pad}");
            assert_ne!(got & F_RUN10, 0, "pad {pad}");
            let line = format!("{}{} 1234567890", " ".repeat(pad), "1".repeat(200));
            assert_eq!(f(&line), F_CHAIN13 | F_RUN10, "pad {pad}");
            let line = format!("{}:{}:", "x".repeat(pad), " ".repeat(63));
            assert_eq!(f(&line), 0, "pad {pad}");
            let line = format!("{}::", "x".repeat(pad));
            assert_ne!(f(&line) & F_IPV6, 0, "pad {pad}");
        }
    }

    /// The byte-at-a-time pass this module replaced, kept as the reference for the bits the
    /// two share.
    fn reference(line: &str) -> u32 {
        const CHAIN11: u32 = 1 << 30;
        const ZERO_CHAIN: u32 = 1 << 31;
        let b = line.as_bytes();
        let n = b.len();
        let mut f = 0u32;
        let mut colons = 0usize;
        let mut dotted = 0usize;
        let mut i = 0;
        let kw = |b: &[u8], i: usize| {
            let rest = &b[i..];
            let mut f = 0;
            for (k, bit) in keywords(b[i].to_ascii_lowercase()) {
                if rest.len() >= k.len() && rest[..k.len()].eq_ignore_ascii_case(k) {
                    f |= bit;
                }
            }
            f
        };
        while i < n {
            let c = b[i];
            if c.is_ascii_digit() {
                let mut total = 0usize;
                let zero = c == b'0';
                loop {
                    let rs = i;
                    while i < n && b[i].is_ascii_digit() {
                        i += 1;
                    }
                    let run = i - rs;
                    total += run;
                    match run {
                        10 => f |= F_RUN10,
                        12 => f |= F_RUN12,
                        _ => {}
                    }
                    let next_digit = i + 1 < n && b[i + 1].is_ascii_digit();
                    if (run == 6 || run == 8)
                        && next_digit
                        && matches!(b[i], b'-' | b'+' | b'A'..=b'F' | b'U'..=b'Y')
                    {
                        f |= F_SIGN6;
                    }
                    if next_digit && b[i] == b'.' {
                        dotted += 1;
                        if dotted >= 3 {
                            f |= F_DOTTED4;
                        }
                    } else {
                        dotted = 0;
                    }
                    if next_digit && matches!(b[i], b' ' | b'-') {
                        i += 1;
                        continue;
                    }
                    break;
                }
                if total >= 13 {
                    f |= F_CHAIN13;
                }
                if total >= 11 {
                    f |= CHAIN11;
                }
                if zero && total >= 8 {
                    f |= ZERO_CHAIN;
                }
                if i < n && b[i] == b'.' {
                    i += 1;
                }
                continue;
            }
            match c {
                b'@' => f |= F_AT,
                b'+' if i + 1 < n && b[i + 1].is_ascii_digit() => f |= F_PLUS_DIGIT,
                b':' => {
                    if i > 0
                        && b[i - 1].is_ascii_hexdigit()
                        && b.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                    {
                        colons += 1;
                    }
                    if colons >= 6 || (i + 1 < n && b[i + 1] == b':') {
                        f |= F_IPV6;
                    }
                }
                b'A'..=b'Z' | b'a'..=b'z' => {
                    let starts = i == 0 || !b[i - 1].is_ascii_alphanumeric();
                    if starts {
                        f |= kw(b, i);
                        if c.is_ascii_uppercase()
                            && i + 3 < n
                            && b[i + 1].is_ascii_uppercase()
                            && b[i + 2].is_ascii_digit()
                            && b[i + 3].is_ascii_digit()
                        {
                            f |= F_IBAN;
                        }
                    }
                    i += 1;
                    while i < n && b[i].is_ascii_alphabetic() {
                        if b[i].is_ascii_uppercase() && b[i - 1].is_ascii_lowercase() {
                            f |= kw(b, i);
                        }
                        i += 1;
                    }
                    dotted = 0;
                    continue;
                }
                _ => {}
            }
            dotted = 0;
            i += 1;
        }
        // The old chain bits imply the new, tighter ones.
        if f & CHAIN11 == 0 {
            assert_eq!(Features::of(line).0 & F_FNR11, 0);
        }
        f & !(CHAIN11 | ZERO_CHAIN)
    }

    /// Log-ish lines: tokens that exercise every bit, joined by the separators that matter.
    fn line() -> impl Strategy<Value = String> {
        let token = prop_oneof![
            "[0-9]{1,20}",
            "0[0-9]{1,4}",
            "[0-9]{6}[-+A-FU-Y][0-9]{4}",
            "[A-Z]{2}[0-9]{2}[A-Z0-9]{0,6}",
            "[a-z]{1,8}",
            "[A-Za-z]{1,8}",
            "[0-9a-f]{4,16}",
            prop::sample::select(vec![
                "password",
                "newPassword",
                "mypassword",
                "Bearer",
                "eyJ",
                "x-api-key",
                "apiKey",
                "AKIA",
                "ghp_",
                "github_pat_",
                "sk_live_",
                "xoxb",
                "AIza",
                "phone",
                "Tel",
                "msisdn",
                "cpr",
                "pnr",
                "ssn",
                "hetu",
                "fødselsnummer",
                "national_id",
                "ø",
                "pa",
                "p",
                "::",
                ":",
                "@",
                "+4",
                "+",
                "2001:db8:0:0:0:0:2:1",
                "0:0:0:0:0:ffff:10.1.2.3",
                "fe80::1",
                "10.1.2.3",
                "4111111111111111",
                "NO9386011117947",
                "15076500565",
                "131052-308T",
                "a@b.no",
            ])
            .prop_map(str::to_owned),
        ];
        let sep = prop::sample::select(vec!["", " ", "-", ".", ":", "=", "\"", ",", "/", "+", "_"]);
        prop::collection::vec((token, sep), 0..40)
            .prop_map(|parts| parts.into_iter().map(|(t, s)| format!("{t}{s}")).collect())
    }

    proptest! {
        /// The SSE2 classification is the portable one, on any bytes and block length.
        #[cfg(target_arch = "x86_64")]
        #[test]
        fn sse2_masks_equal_swar_masks(block in prop::collection::vec(any::<u8>(), 0..=BLOCK)) {
            prop_assert_eq!(sse2::masks(&block), Masks::swar(&block));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]
        #[test]
        fn same_bits_as_the_byte_pass(l in line()) {
            let shared = !(F_FNR11 | F_TRUNK0);
            prop_assert_eq!(Features::of(&l).0 & shared, reference(&l), "{:?}", l);
        }

        /// Skipping a detector whose shapes are absent never loses a match (the detectors
        /// whose bits are not keyword contexts).
        #[test]
        fn a_skipped_detector_would_have_found_nothing(l in line()) {
            use crate::detect::Detector;
            let f = Features::of(&l);
            for d in [
                Detector::Card,
                Detector::Iban,
                Detector::NoFnr,
                Detector::FiHetu,
                Detector::Email,
                Detector::Ipv4,
                Detector::Ipv6,
            ] {
                let mut found = Vec::new();
                d.find(&l, &mut found);
                prop_assert!(found.is_empty() || d.possible(&f), "{} {:?}", d.name(), l);
            }
        }
    }
}
