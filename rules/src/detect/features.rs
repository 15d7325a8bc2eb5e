//! The per-line pre-pass: which cheap shapes a line contains, so that a detector whose shapes
//! are absent never runs, and a line without any costs this pass alone.
//!
//! How: the line is classified 64 bytes at a time into bit masks (digit, letter, upper case,
//! hex digit, `:`, `@`, `+`, space or `-`, `.`, `0`, sign bytes), written once against
//! `fjord_bytes::Lanes`: on x86_64 with AVX2 (detected at run time with BMI1/2, POPCNT and
//! LZCNT; the whole pass is then compiled for them, in `Avx2::run`), 32 bytes per
//! instruction, else with SSE2, sixteen, and elsewhere with word-sized (SWAR) arithmetic,
//! eight bytes per `u64`; property tests hold the three equal to a byte-by-byte reference.
//! Everything else works on the masks, with the previous block's masks shifted in at the
//! front:
//!
//! - word-part starts are `letter & !(alnum << 1)` (plus lower→upper changes); each costs
//!   one lookup in a table of hashed keyword first-byte triples (one 4-byte load and a
//!   multiplication), and the rare triple that passes one masked 8-byte compare per keyword,
//!   out of line;
//! - digit shapes are shift-and-AND arithmetic: "the N bytes ending here are digits" is
//!   built by doubling (`r4 = r2 & r2 << 2`), chains (runs joined by single spaces or
//!   dashes) the same way over digits plus joiners, and "every byte from a seed to the end
//!   of its run" is one addition (the carry runs through the run). Cards, 10/11/12-digit
//!   runs, dated ids and dotted quads are decided this way without visiting a single run;
//!   only trunk-0 phone numbers, whose digit count along a chain masks cannot give, are
//!   walked run by run — on the rare line the masks cannot clear. A block without digits
//!   skips all of this, and a block where no run of 5 digits ends (and none of 6 ends the
//!   previous block) skips the shapes of long runs, whose masks are then all empty.
//!
//! So the cost per byte is a few arithmetic instructions, with two branches per block.
//!
//! Invariant: each bit is a *necessary* condition for its detector's candidate pattern (a
//! line without the bit cannot produce a match), except the keyword bits, which also define
//! where a keyword counts (at a word-part start: `client_secret`, `newPassword`, not
//! `mypassword`). The keyword bits, `F_AT`, `F_PLUS_DIGIT`, `F_DOTTED4`, `F_IPV6`, `F_IBAN`,
//! and `F_RUN10`/`F_RUN12` next to a national-id keyword are exactly those of the
//! byte-at-a-time pass this replaced (a property test compares the two on random lines);
//! `F_CARD`, `F_FNR11`, `F_SIGN6` and `F_TRUNK0` are tighter than the bits they replace
//! (they also require the `\b` the patterns require, so digits inside a hex trace id do not
//! run the fødselsnummer search), and property tests check on random lines that no
//! candidate of those detectors' patterns is ever skipped.

/// An `@` (e-mail).
pub(crate) const F_AT: u32 = 1 << 0;
/// Card-shaped digits: a run of 13+ digits, or a run of exactly 4 digits that starts 16+
/// bytes of digit runs joined by single spaces or dashes (the shortest grouped cards,
/// `4-4-4-1` and `4-6-4`, are 16 bytes).
pub(crate) const F_CARD: u32 = 1 << 1;
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
/// An IBAN country code (two letters of one case) and two digits at a word start.
pub(crate) const F_IBAN: u32 = 1 << 10;
// Keyword bits: set when a keyword starts a word part (see `keywords`).
pub(crate) const K_SECRET: u32 = 1 << 16;
pub(crate) const K_API: u32 = 1 << 17;
pub(crate) const K_JWT: u32 = 1 << 18;
pub(crate) const K_BEARER: u32 = 1 << 19;
pub(crate) const K_PHONE: u32 = 1 << 20;
pub(crate) const K_NATID: u32 = 1 << 21;
pub(crate) const K_CARD: u32 = 1 << 22;

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
            (b"pan", K_CARD),
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
        b'c' => &[
            (b"cpr", K_NATID),
            (b"card", K_CARD),
            (b"cc_", K_CARD),
            (b"ccn", K_CARD),
            (b"credit", K_CARD),
        ],
        b'k' => &[(b"kort", K_CARD)],
        b'n' => &[(b"national", K_NATID), (b"nin", K_NATID)],
        b'f' => &[
            (b"fnr", K_NATID),
            (b"fodsel", K_NATID),
            (b"f\xc3\xb8dsel", K_NATID),
            (b"fh-n", K_NATID),
            (b"fh_n", K_NATID),
            (b"fhnr", K_NATID),
            (b"fjd_", K_API),
        ],
        b'h' => &[
            (b"hetu", K_NATID),
            (b"henkilo", K_NATID),
            (b"h-num", K_NATID),
            (b"hnr", K_NATID),
            (b"hjelpen", K_NATID),
        ],
        b'd' => &[
            (b"d-num", K_NATID),
            (b"d_num", K_NATID),
            (b"dnum", K_NATID),
            (b"dnr", K_NATID),
        ],
        b'i' => &[(b"identitet", K_NATID)],
        _ => &[],
    }
}

/// For each first letter of an IBAN country code, a bit per second letter: the countries of
/// [`crate::validate::IBAN_LENGTHS`]. A lower-case hex id starting `ab12` is then not an
/// IBAN candidate (only `ad`, `ae`, `ba`, `be` and `de` of the hex letter pairs are).
static IBAN_COUNTRIES: [u32; 26] = iban_countries();

const fn iban_countries() -> [u32; 26] {
    let mut t = [0u32; 26];
    let mut i = 0;
    while i < crate::validate::IBAN_LENGTHS.len() {
        let cc = crate::validate::IBAN_LENGTHS[i].0;
        t[(cc[0] - b'A') as usize] |= 1 << (cc[1] - b'A');
        i += 1;
    }
    t
}

/// Whether `c0 c1` is an IBAN country code, both letters upper case or both lower case.
#[inline(always)]
pub(crate) fn iban_country(c0: u8, c1: u8) -> bool {
    let same_case = (c0.is_ascii_uppercase() && c1.is_ascii_uppercase())
        || (c0.is_ascii_lowercase() && c1.is_ascii_lowercase());
    same_case
        && IBAN_COUNTRIES
            .get(usize::from((c0 | 0x20).wrapping_sub(b'a')))
            .is_some_and(|row| row & (1 << ((c1 | 0x20) - b'a')) != 0)
}

/// Every first letter that has keywords (for building [`TRIPLES`]).
const KEYWORD_FIRSTS: &[u8] = b"psaxgrebtmcnfhdik";

/// A byte with ASCII letters folded to lower case (other bytes may change too, the same
/// way for the table and the lookup).
const fn fold(b: u8) -> u8 {
    b | 0x20
}

/// Where the first three bytes of a word part land in [`TRIPLES`]: `head` holds them
/// little-endian in its low three bytes (the fourth is ignored), case-folded here, and a
/// multiplication mixes them into the top bits. One load, three arithmetic instructions and
/// no per-byte work per word start. Every keyword has at least three bytes.
const fn triple(head: u32) -> usize {
    // [`fold`] on each of the three bytes.
    let folded = (head | 0x0020_2020) & 0x00ff_ffff;
    (folded.wrapping_mul(0x9e37_79b1) >> (32 - TRIPLE_LOG2)) as usize
}

const TRIPLE_LOG2: u32 = 15;

const TRIPLE_BITS: usize = 1 << TRIPLE_LOG2;

/// One bit per hashed triple of first bytes (case-folded), set for every keyword's first
/// three bytes. Most word starts (`payment`, `service`, `msg` — which share two bytes with
/// `passw`, `secret`, `msisdn`) are rejected by this one lookup before any keyword is
/// compared; a hash collision only costs a compare. 4 KiB.
static TRIPLES: [u64; TRIPLE_BITS / 64] = triples();

const fn triples() -> [u64; TRIPLE_BITS / 64] {
    let mut t = [0u64; TRIPLE_BITS / 64];
    let mut f = 0;
    while f < KEYWORD_FIRSTS.len() {
        let group = keywords(KEYWORD_FIRSTS[f]);
        let mut k = 0;
        while k < group.len() {
            let w = group[k].0;
            let i = triple(u32::from_le_bytes([w[0], w[1], w[2], 0]));
            t[i / 64] |= 1 << (i % 64);
            k += 1;
        }
        f += 1;
    }
    t
}

/// The keyword bits of the word part starting at `b[i]`: the [`TRIPLES`] lookup inline,
/// the compares (for the rare word start that passes it) out of line.
#[inline(always)]
fn keyword_at(b: &[u8], i: usize) -> u32 {
    let Some(rest) = b.get(i..) else {
        return 0;
    };
    let head = match rest.first_chunk::<4>() {
        Some(four) => u32::from_le_bytes(*four),
        None => match *rest {
            [first, second, third] => u32::from_le_bytes([first, second, third, 0]),
            _ => return 0, // every keyword has at least three bytes
        },
    };
    let t = triple(head);
    if TRIPLES[t / 64] & (1 << (t % 64)) == 0 {
        return 0;
    }
    keywords_in(rest)
}

/// The keyword bits of the word part that starts `rest` (which has at least three bytes).
#[inline(never)]
fn keywords_in(rest: &[u8]) -> u32 {
    let Some(&first) = rest.first() else {
        return 0;
    };
    let head = match rest.first_chunk::<8>() {
        Some(eight) => u64::from_le_bytes(*eight),
        None => {
            let mut head = 0u64;
            for (j, &c) in rest.iter().enumerate() {
                head |= u64::from(c) << (8 * j);
            }
            head
        }
    };
    let Some(group) = PACKED.get(usize::from(fold(first).wrapping_sub(b'a'))) else {
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
static PACKED: [[Packed; 10]; 26] = packed();

const fn packed() -> [[Packed; 10]; 26] {
    let none = Packed {
        want: 0,
        fold: 0,
        len: 0,
        bit: 0,
        tail: b"",
    };
    let mut t = [[none; 10]; 26];
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

use fjord_bytes::Lanes;

/// The cheap shapes present in a line (a set of the `F_*` / `K_*` bits), and where its
/// dotted quads are.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Features(pub(crate) u32, pub(crate) Quads);

/// Where `F_DOTTED4` was flagged: the offsets of the first and the last dot that has two
/// joining dots before it in its run of dotted digits (the third dot of a quad). Every IPv4
/// candidate's third dot is such a dot, so every candidate lies within
/// [`Quads::window`]. Meaningless without `F_DOTTED4`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Quads {
    first: usize,
    last: usize,
}

impl Quads {
    /// The bytes every IPv4 candidate lies in: at most `ddd.ddd.ddd` before a third dot and
    /// `ddd` after it.
    pub(crate) fn window(&self, len: usize) -> std::ops::Range<usize> {
        self.first.saturating_sub(11)..len.min(self.last + 4)
    }
}

impl Features {
    /// Whether nothing at all was found: no built-in detector can match.
    pub(crate) fn is_empty(&self) -> bool {
        self.0 == 0
    }

    /// Scans `line` once for the shapes the detectors need.
    pub(crate) fn of(line: &str) -> Features {
        #[cfg(target_arch = "x86_64")]
        if let Some(avx2) = fjord_bytes::Avx2::detect() {
            // The whole pass compiled for AVX2 and the bit-manipulation sets: the masks 32
            // bytes per instruction, and the bit arithmetic with BMI1/BMI2 (`andn`,
            // three-operand shifts), POPCNT (`count_ones` of the flanked colons was a dozen
            // instructions) and LZCNT.
            return avx2.run(|lanes| scan(lanes, line.as_bytes()));
        }
        scan(fjord_bytes::baseline(), line.as_bytes())
    }
}

/// The whole pass over `b`, block by block, classified on `lanes`.
#[inline(always)]
fn scan<L: Lanes>(lanes: L, b: &[u8]) -> Features {
    let mut scan = Scan::new(b);
    let mut base = 0;
    while let Some(block) = b.get(base..base + BLOCK) {
        scan.block(base, &Masks::of(lanes, block));
        base += BLOCK;
    }
    let rest = b.len() - base;
    if rest > 0 {
        let m = match b.len().checked_sub(BLOCK) {
            // The line's last `BLOCK` bytes, classified in place and shifted down so that
            // bit 0 is byte `base`: the bytes before it (classified already) fall off the
            // bottom, and the missing bytes past the end belong to no class. No copy.
            Some(from) => Masks::of(lanes, &b[from..]).shifted_down((BLOCK - rest) as u32),
            None => Masks::of(lanes, b),
        };
        scan.block(base, &m);
    }
    scan.finish()
}

/// Bytes classified per step: one bit of each mask per byte.
const BLOCK: usize = 64;
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
    /// A space or `-` (the bytes that join digit runs into a chain).
    join: u64,
    dot: u64,
    zero: u64,
    /// What may follow the date of a dated id: `-`, `+`, `A`–`F`, `U`–`Y`.
    sign: u64,
}

impl Masks {
    /// Classifies up to [`BLOCK`] bytes on `lanes`; missing bytes belong to no class.
    #[inline(always)]
    fn of<L: Lanes>(lanes: L, block: &[u8]) -> Masks {
        match block.try_into() {
            Ok(whole) => classify(lanes, whole),
            Err(_) => classify(lanes, &padded(block)),
        }
    }

    /// Every mask shifted down by `k` bits (`1 <= k < BLOCK`).
    #[inline(always)]
    fn shifted_down(self, k: u32) -> Masks {
        Masks {
            digit: self.digit >> k,
            letter: self.letter >> k,
            upper: self.upper >> k,
            hex: self.hex >> k,
            colon: self.colon >> k,
            at: self.at >> k,
            plus: self.plus >> k,
            join: self.join >> k,
            dot: self.dot >> k,
            zero: self.zero >> k,
            sign: self.sign >> k,
        }
    }
}

/// Classifies a block, `L::WIDTH` bytes per instruction.
#[inline(always)]
fn classify<L: Lanes>(lanes: L, bytes: &[u8; BLOCK]) -> Masks {
    let mut m = Masks::default();
    let splat = |c: u8| lanes.splat(c);
    for (k, chunk) in bytes.chunks_exact(L::WIDTH).enumerate() {
        let x = lanes.load(chunk);
        let folded = lanes.or(x, splat(0x20));
        let digit = lanes.in_range(x, b'0', b'9');
        let letter = lanes.in_range(folded, b'a', b'z');
        // Upper-case letters have bit 5 clear.
        let upper = lanes.andnot(lanes.eq(lanes.and(x, splat(0x20)), splat(0x20)), letter);
        let hex = lanes.or(digit, lanes.in_range(folded, b'a', b'f'));
        let plus = lanes.eq(x, splat(b'+'));
        let dash = lanes.eq(x, splat(b'-'));
        let sign = lanes.or(
            lanes.or(plus, dash),
            lanes.or(lanes.in_range(x, b'A', b'F'), lanes.in_range(x, b'U', b'Y')),
        );
        let shift = L::WIDTH * k;
        m.digit |= lanes.bits(digit) << shift;
        m.letter |= lanes.bits(letter) << shift;
        m.upper |= lanes.bits(upper) << shift;
        m.hex |= lanes.bits(hex) << shift;
        m.colon |= lanes.bits(lanes.eq(x, splat(b':'))) << shift;
        m.at |= lanes.bits(lanes.eq(x, splat(b'@'))) << shift;
        m.plus |= lanes.bits(plus) << shift;
        m.join |= lanes.bits(lanes.or(lanes.eq(x, splat(b' ')), dash)) << shift;
        m.dot |= lanes.bits(lanes.eq(x, splat(b'.'))) << shift;
        m.zero |= lanes.bits(lanes.eq(x, splat(b'0'))) << shift;
        m.sign |= lanes.bits(sign) << shift;
    }
    m
}

/// Bit `i` of the result is bit `i - k` of the line's mask, for `1 <= k <= 63`: `m` is this
/// block's mask and `prev` the previous block's (zero before the first block).
#[inline(always)]
fn back(m: u64, prev: u64, k: u32) -> u64 {
    (m << k) | (prev >> (64 - k))
}

/// The bytes of `class` from each `seeds` byte (within `class`) to the end of its run of
/// `class` bytes, a run coming in from the previous block included when `prev`, that
/// function's result for the previous block, reached its last byte. Adding a seed's bit to
/// the run's bits carries through the rest of the run and clears it.
#[inline(always)]
fn reach(class: u64, seeds: u64, prev: u64) -> u64 {
    let seeds = seeds | (prev >> 63 & class & 1);
    (class & !class.wrapping_add(seeds)) | seeds
}

/// One block's masks that the next block's shifts read (see [`Scan::block`]).
#[derive(Default)]
struct Digits {
    digit: u64,
    alnum: u64,
    r2: u64,
    r4: u64,
    r6: u64,
    r8: u64,
    chain: u64,
    c2: u64,
    c4: u64,
    c8: u64,
    spaced: u64,
    bounded: u64,
    seen1: u64,
    seen2: u64,
    zero_start: u64,
    group4: u64,
}

/// A line shorter than one block, zeros after it (longer lines are classified in place).
#[inline(always)]
fn padded(block: &[u8]) -> [u8; BLOCK] {
    let mut padded = [0u8; BLOCK];
    padded[..block.len()].copy_from_slice(block);
    padded
}

/// State carried from block to block (bit 0 of a `carry_*` is the previous block's last
/// byte; a `prev_*` is the previous block's whole mask).
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
    /// The previous block's masks: see [`Digits`].
    prev: Digits,
    /// Whether a run of 2–5 digits starting with `0` is joined to another, and whether 9
    /// chain bytes follow such a `0` (both are needed for `F_TRUNK0`).
    zero_joined: bool,
    zero_chain: bool,
    quads: Quads,
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
            prev: Digits::default(),
            zero_joined: false,
            zero_chain: false,
            quads: Quads::default(),
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
        // IBANs: only the word starts with a digit two bytes on are looked at; for the
        // last two bytes of the block that digit is in the next block, so those are taken
        // as they are and checked byte by byte.
        let mut country = starts & ((m.digit >> 2) | (0b11 << 62));
        while country != 0 {
            let i = base + country.trailing_zeros() as usize;
            country &= country - 1;
            if let Some(&[c0, c1, c2, c3]) = b.get(i..).and_then(<[u8]>::first_chunk::<4>) {
                if c2.is_ascii_digit() && c3.is_ascii_digit() && iban_country(c0, c1) {
                    self.f |= F_IBAN;
                }
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

        if m.at != 0 {
            self.f |= F_AT;
        }
        let d = m.digit;
        let next = b.get(base + BLOCK);
        let next_is_digit = next.is_some_and(u8::is_ascii_digit);
        let next_is_alnum = next.is_some_and(u8::is_ascii_alphanumeric);
        let after = (d >> 1) | (u64::from(next_is_digit) << 63);
        if m.plus & after != 0 {
            self.f |= F_PLUS_DIGIT;
        }
        if d == 0 {
            // No digit run ends here, and the next block's shifts read only `alnum`.
            self.prev = Digits {
                alnum,
                ..Digits::default()
            };
            return;
        }
        // The digit shapes, as masks. `rN` marks the last byte of N digits in a row, `cN`
        // of N chain bytes (digits and the single spaces or dashes between them); each
        // doubles or extends a shorter one. "Bounded" means between bytes that are not
        // letters or digits, as the detectors' `\b` requires.
        let p = &self.prev;
        let before = back(d, p.digit, 1);
        let after_alnum = (alnum >> 1) | (u64::from(next_is_alnum) << 63);
        let end = d & !after;
        let bounded_end = d & !after_alnum;
        let joined = m.join & before & after;
        let chain = d | joined;
        let dots = m.dot & before & after;
        let dotted = d | dots;
        let zero_start = m.zero & !before;
        let r2 = d & before;
        let r4 = r2 & back(r2, p.r2, 2);
        let r5 = r4 & back(d, p.digit, 4);
        let c2 = chain & back(chain, p.chain, 1);
        let c4 = c2 & back(c2, p.c2, 2);
        let c8 = c4 & back(c4, p.c4, 4);
        let c9 = c8 & back(chain, p.chain, 8);
        let c16 = c8 & back(c8, p.c8, 8);
        // Digits of runs that start after a byte that is not a letter or digit.
        let bounded = reach(d, d & !back(alnum, p.alnum, 1), p.bounded);

        // Cards: a joiner after a group of exactly four digits with 16 chain bytes from
        // the group on (or a run of 13+ digits, below).
        let group4 = joined & back(r4, p.r4, 1) & !back(alnum, p.alnum, 5);
        if back(group4, p.group4, 11) & c16 != 0 {
            self.f |= F_CARD;
        }
        let spaced = joined & !m.sign;
        // The shapes of runs of 5 or more digits. Where no such run ends in this block and
        // none of 6 or more ends the previous one (an 8-run ending there is a 6-run too),
        // every one of them is empty, and so are the `r6` and `r8` the next block reads:
        // the first block of a typical line, with a timestamp and no id, skips this.
        let (r6, r8) = if r5 | (p.r6 >> 63) != 0 {
            let r6 = r4 & back(r2, p.r2, 4);
            let r8 = r4 & back(r4, p.r4, 4);
            let r10 = r8 & back(r2, p.r2, 8);
            let r11 = r10 & back(d, p.digit, 10);
            let r12 = r8 & back(r4, p.r4, 8);
            let r13 = r12 & back(d, p.digit, 12);
            // Cards: a bounded run of 13+ digits.
            if r13 & bounded_end & bounded != 0 {
                self.f |= F_CARD;
            }
            // Runs of exactly 10 and 12 digits (dated ids without a separator).
            if end & r10 & !back(d, p.digit, 10) != 0 {
                self.f |= F_RUN10;
            }
            if end & r12 & !back(d, p.digit, 12) != 0 {
                self.f |= F_RUN12;
            }
            // Fødselsnummer: a bounded run of exactly 11 digits, or of 6, a space and 5
            // (`join` is a space or `-`, `sign` has `-` and no space).
            let fnr11 = r11 & !back(alnum, p.alnum, 11);
            let fnr6_5 =
                r5 & back(spaced, p.spaced, 5) & back(r6, p.r6, 6) & !back(alnum, p.alnum, 12);
            if bounded_end & (fnr11 | fnr6_5) != 0 {
                self.f |= F_FNR11;
            }
            // Dated ids: exactly 6 or 8 digits after a byte that is not a letter or digit,
            // a sign byte, a digit.
            let lead6 = back(r6, p.r6, 1) & !back(alnum, p.alnum, 7);
            let lead8 = back(r8, p.r8, 1) & !back(alnum, p.alnum, 9);
            if (lead6 | lead8) & m.sign & after != 0 {
                self.f |= F_SIGN6;
            }
            (r6, r8)
        } else {
            (0, 0)
        };
        // Four runs joined by dots: a dot with two earlier dots in its dotted run. `seen1`
        // is every dotted byte after a joining dot in the same run, `seen2` after a dot
        // that has one before it.
        let seen1 = reach(dotted, dots, p.seen1);
        let seen2 = reach(dotted, dots & back(seen1, p.seen1, 1), p.seen2);
        let thirds = dots & back(seen2, p.seen2, 1);
        if thirds != 0 {
            if self.f & F_DOTTED4 == 0 {
                self.quads.first = base + thirds.trailing_zeros() as usize;
            }
            self.quads.last = base + 63 - thirds.leading_zeros() as usize;
            self.f |= F_DOTTED4;
        }
        // Trunk-0 numbers need a run of 2–5 digits that starts with `0` and is joined to
        // the next, and 9 chain bytes (8 digits and a joiner) from such a `0` on; a line
        // with both is walked run by run ([`trunk0`]).
        let zs = p.zero_start;
        let head = back(zero_start, zs, 2)
            | back(zero_start, zs, 3)
            | back(zero_start, zs, 4)
            | back(zero_start, zs, 5);
        self.zero_joined |= joined & back(r2, p.r2, 1) & head != 0;
        self.zero_chain |= back(zero_start, zs, 8) & c9 != 0;
        self.prev = Digits {
            digit: d,
            alnum,
            r2,
            r4,
            r6,
            r8,
            chain,
            c2,
            c4,
            c8,
            spaced,
            bounded,
            seen1,
            seen2,
            zero_start,
            group4,
        };
    }

    #[inline(always)]
    fn finish(mut self) -> Features {
        if self.zero_joined && self.zero_chain && trunk0(self.b) {
            self.f |= F_TRUNK0;
        }
        if self.f & K_NATID == 0 {
            // Only the national-id keywords make bare 10- and 12-digit runs interesting.
            self.f &= !(F_RUN10 | F_RUN12);
        }
        Features(self.f, self.quads)
    }
}

/// Whether `b` has a trunk-0 number's digits: a run of 2–5 digits starting with `0`, joined
/// by a single space or dash to more digits, with 8 or more digits in the chain of joined
/// runs from there on. A walk over the runs, for the few lines the masks cannot clear.
#[inline(never)]
fn trunk0(b: &[u8]) -> bool {
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        // A chain starts at `i`: count its digits, and those before its first head.
        let (mut digits, mut head) = (0, None);
        loop {
            let s = i;
            while b.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
            let len = i - s;
            let joined = matches!(b.get(i), Some(b' ' | b'-'))
                && b.get(i + 1).is_some_and(u8::is_ascii_digit);
            if head.is_none() && joined && b[s] == b'0' && (2..=5).contains(&len) {
                head = Some(digits);
            }
            digits += len;
            if !joined {
                break;
            }
            i += 1;
        }
        if head.is_some_and(|h| digits - h >= 8) {
            return true;
        }
    }
    false
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
        assert_ne!(f("card 4111 1111 1111 1111") & F_CARD, 0);
        assert_eq!(f("order=1234567890") & F_CARD, 0);
        // Bare 10-digit runs only count next to a national-id keyword.
        assert_eq!(f("order=1234567890") & F_RUN10, 0);
        assert_ne!(f("cpr order=1234567890") & F_RUN10, 0);
        assert_ne!(f("ip 10.1.2.3 x") & F_DOTTED4, 0);
        assert_eq!(f("t 10.1.2 x 3.4") & F_DOTTED4, 0);
        assert_ne!(f("fe80::1") & F_IPV6, 0);
        assert_eq!(f("10:00:00.123") & F_IPV6, 0);
        assert_ne!(f("131052-308T") & F_SIGN6, 0);
        assert_ne!(f("NO9386011117947") & F_IBAN, 0);
        assert_ne!(f("iban no9386011117947") & F_IBAN, 0);
        assert_eq!(f("iban No9386011117947") & F_IBAN, 0);
        assert_eq!(f("trace=ab12cd34ef56ab78cd90ef12ab34cd56") & F_IBAN, 0);
        assert_ne!(f("trace=de12cd34ef56ab78cd90ef12ab34cd56") & F_IBAN, 0);
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
            let line = format!("{}4111 1111 1111 1111 x 1234567890 cpr", " ".repeat(pad));
            let got = f(&line);
            assert_ne!(got & F_CARD, 0, "pad {pad}");
            assert_ne!(got & F_RUN10, 0, "pad {pad}");
            let line = format!("{}{} 1234567890 ssn", " ".repeat(pad), "1".repeat(200));
            assert_eq!(f(&line), F_CARD | F_RUN10 | K_NATID, "pad {pad}");
            let line = format!("{}{} 1234567890", " ".repeat(pad), "1".repeat(200));
            assert_eq!(f(&line), F_CARD, "pad {pad}");
            // Each digit shape right across the block boundary.
            for (shape, bit) in [
                ("150765 00565", F_FNR11),
                ("13105230-8T", F_SIGN6),
                ("070-123 45 67", F_TRUNK0),
                ("10.1.2.3", F_DOTTED4),
                ("4111-1111-1111-1111", F_CARD),
                ("4111 1111 1111 1", F_CARD),
                ("4111 111111 1111", F_CARD),
                ("1.2.3.4", F_DOTTED4),
            ] {
                for at in pad.saturating_sub(12)..pad {
                    let line = format!("{}{shape} x", "_".repeat(at));
                    assert_eq!(f(&line), bit, "{shape} at {at}");
                }
            }
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
        const CHAIN13: u32 = 1 << 29;
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
                    f |= CHAIN13;
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
                        // An IBAN country code in one case.
                        let country = |d: u8| {
                            d.is_ascii_alphabetic()
                                && c.is_ascii_uppercase() == d.is_ascii_uppercase()
                                && crate::validate::iban_length(&[
                                    c.to_ascii_uppercase(),
                                    d.to_ascii_uppercase(),
                                ])
                                .is_some()
                        };
                        if i + 3 < n
                            && country(b[i + 1])
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
        if f & CHAIN13 == 0 {
            assert_eq!(Features::of(line).0 & F_CARD, 0);
        }
        if f & F_SIGN6 == 0 {
            assert_eq!(Features::of(line).0 & F_SIGN6, 0);
        }
        if f & K_NATID == 0 {
            f &= !(F_RUN10 | F_RUN12);
        }
        f & !(CHAIN11 | ZERO_CHAIN | CHAIN13)
    }

    /// Log-ish lines: tokens that exercise every bit, joined by the separators that matter.
    fn line() -> impl Strategy<Value = String> {
        let token = prop_oneof![
            "[0-9]{1,20}",
            "[0-9]{4}",
            "[0-9]{6}",
            "[0-9]{1,3}(\\.[0-9]{1,3}){3}",
            "[0-9]{4}([ -][0-9]{4}){2}[ -][0-9]{1,7}",
            "[0-9]{4}[ -][0-9]{6}[ -][0-9]{4,5}",
            "0[0-9]{1,4}",
            "[0-9]{6}[-+A-FU-Y][0-9]{4}",
            "[A-Z]{2}[0-9]{2}[A-Z0-9]{0,6}",
            "[a-z]{2}[0-9]{2}[a-z0-9]{0,6}",
            "(DE|NO|BE|de|no|be|De)[0-9]{2}[a-z0-9]{11,14}",
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
                "fjd_",
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

    /// The classification byte by byte: the reference of every lanes type's masks.
    fn scalar_masks(block: &[u8]) -> Masks {
        let mut m = Masks::default();
        for (j, &c) in block.iter().enumerate() {
            let bit = |class: bool| u64::from(class) << j;
            m.digit |= bit(c.is_ascii_digit());
            m.letter |= bit(c.is_ascii_alphabetic());
            m.upper |= bit(c.is_ascii_uppercase());
            m.hex |= bit(c.is_ascii_hexdigit());
            m.colon |= bit(c == b':');
            m.at |= bit(c == b'@');
            m.plus |= bit(c == b'+');
            m.join |= bit(c == b' ' || c == b'-');
            m.dot |= bit(c == b'.');
            m.zero |= bit(c == b'0');
            m.sign |= bit(matches!(c, b'-' | b'+' | b'A'..=b'F' | b'U'..=b'Y'));
        }
        m
    }

    proptest! {
        /// Every lanes type classifies as the byte-by-byte reference does, on any bytes and
        /// block length: the baseline (SSE2 on x86_64), SWAR, and AVX2 where the CPU has it.
        #[test]
        fn masks_equal_the_scalar_masks(block in prop::collection::vec(any::<u8>(), 0..=BLOCK)) {
            let want = scalar_masks(&block);
            prop_assert_eq!(Masks::of(fjord_bytes::baseline(), &block), scalar_masks(&block));
            prop_assert_eq!(Masks::of(fjord_bytes::Swar, &block), scalar_masks(&block));
            #[cfg(target_arch = "x86_64")]
            if let Some(avx2) = fjord_bytes::Avx2::detect() {
                prop_assert_eq!(avx2.run(|lanes| Masks::of(lanes, &block)), want);
            }
        }

        /// And the whole pass gives the same bits on every lanes type.
        #[test]
        fn the_pass_is_the_same_on_every_lanes_type(l in line()) {
            let base = scan(fjord_bytes::baseline(), l.as_bytes());
            let mut all = vec![Features::of(&l), scan(fjord_bytes::Swar, l.as_bytes())];
            #[cfg(target_arch = "x86_64")]
            all.extend(fjord_bytes::Avx2::detect().map(|avx2| avx2.run(|lanes| scan(lanes, l.as_bytes()))));
            for other in all {
                prop_assert_eq!(other.0, base.0);
                if base.0 & F_DOTTED4 != 0 {
                    prop_assert_eq!(other.1, base.1);
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]
        #[test]
        fn same_bits_as_the_byte_pass(l in line()) {
            let shared = !(F_FNR11 | F_TRUNK0 | F_CARD | F_SIGN6);
            prop_assert_eq!(Features::of(&l).0 & shared, reference(&l) & shared, "{:?}", l);
        }

        /// The masks skip the trunk-0 walk only where it would have found nothing.
        #[test]
        fn the_walk_gate_loses_nothing(l in line()) {
            prop_assert_eq!(Features::of(&l).0 & F_TRUNK0 != 0, trunk0(l.as_bytes()), "{:?}", l);
        }

        /// A detector is only skipped where its candidate pattern finds nothing (for the
        /// detectors whose bits are not keyword contexts; checked before validation, so
        /// that a bit too tight for a shape is caught whether or not check digits hold).
        #[test]
        fn a_skipped_detector_had_no_candidate(l in line()) {
            use crate::detect::Detector;
            use std::sync::LazyLock;
            // The dated ids' signed forms need no keyword context, so `F_SIGN6` alone
            // must allow them.
            const SE_SIGNED: &str = r"(?-u:\b)(?:[0-9]{8}|[0-9]{6})[-+][0-9]{4}(?-u:\b)";
            const DK_SIGNED: &str = r"(?-u:\b)[0-9]{6}-[0-9]{4}(?-u:\b)";
            // The IBAN pattern with its country codes spelled out, as `F_IBAN` reads them
            // (`find` refuses other codes anyway).
            static IBAN_KNOWN: LazyLock<String> = LazyLock::new(|| {
                let codes: Vec<String> = crate::validate::IBAN_LENGTHS
                    .iter()
                    .map(|(cc, _)| String::from_utf8_lossy(&cc[..]).into_owned())
                    .collect();
                let upper = codes.join("|");
                let lower = upper.to_ascii_lowercase();
                format!(
                    r"(?-u:\b)(?:(?:{upper})[0-9]{{2}}(?: ?[A-Z0-9]){{11,30}}|(?:{lower})[0-9]{{2}}(?: ?[a-z0-9]){{11,30}})"
                )
            });
            // Twelve-digit cards need a card key (`K_CARD`); the other forms need nothing.
            const CARD_13: &str = r"(?-u:\b)(?:[0-9]{13,19}|[0-9]{4}(?:[ -][0-9]{4}){2}[ -][0-9]{1,7}(?:[ -][0-9]{3})?|[0-9]{4}[ -][0-9]{6}[ -][0-9]{4,5})(?-u:\b)";
            static CHECKED: LazyLock<Vec<(Detector, regex::Regex)>> = LazyLock::new(|| {
                [
                    Detector::NoFnr,
                    Detector::FiHetu,
                    Detector::Email,
                    Detector::Ipv4,
                ]
                .iter()
                .map(|d| (*d, d.pattern()))
                .chain([
                    (Detector::SePnr, SE_SIGNED),
                    (Detector::DkCpr, DK_SIGNED),
                    (Detector::Card, CARD_13),
                    (Detector::Iban, IBAN_KNOWN.as_str()),
                ])
                .map(|(d, p)| (d, regex::Regex::new(p).expect("a detector pattern")))
                .collect()
            });
            let f = Features::of(&l);
            for (d, re) in CHECKED.iter() {
                prop_assert!(!re.is_match(&l) || d.possible(&f), "{} {:?}", d.name(), l);
            }
        }

        /// Where the features narrow a detector's search (the IPv4 window), it finds what the
        /// whole-line search finds.
        #[test]
        fn a_narrowed_search_finds_the_same(l in line()) {
            let f = Features::of(&l);
            for d in crate::detect::Detector::ALL.iter().filter(|d| d.possible(&f)) {
                let (mut narrowed, mut whole) = (Vec::new(), Vec::new());
                d.find_possible(&l, &f, &mut narrowed);
                d.find(&l, &mut whole);
                prop_assert_eq!(narrowed, whole, "{} {:?}", d.name(), l);
            }
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
