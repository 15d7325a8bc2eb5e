//! Built-in detectors. Each family lives in its own file and exposes a `find_*` function
//! that appends the byte ranges of validated matches to a vector; a range is always on
//! `char` boundaries of the line and covers only the value to scrub (for `password=…` the
//! value, not the key).
//!
//! Speed: before any detector runs, [`Features::of`] (`features.rs`) makes one pass over the
//! line's bytes, a machine word at a time, and records the cheap shapes a detector needs
//! before it can possibly match: an `@` for e-mail, a chain of 13+ digits for cards, `eyJ`
//! at a word start for JWTs, … A detector whose shapes are absent is skipped. Each shape is
//! a necessary condition of the detector's candidate pattern, so skipping never costs recall
//! (keywords also decide where a key counts; see `features.rs`).

use std::borrow::Cow;
use std::ops::Range;
use std::sync::OnceLock;

use regex::Regex;

pub(crate) use features::Features;
use features::{
    F_AT, F_CARD, F_DOTTED4, F_FNR11, F_IBAN, F_IPV6, F_PLUS_DIGIT, F_RUN10, F_RUN12, F_SIGN6,
    F_TRUNK0, K_API, K_BEARER, K_CARD, K_JWT, K_PHONE, K_SECRET,
};

pub mod cards;
pub mod contact;
// The feature pass, on `fjord_bytes`' lanes (property-tested against a byte-by-byte
// reference).
mod features;
pub mod iban;
pub mod national_id;
pub mod network;
pub mod secrets;

/// A built-in detector, named in rule packs by its `detector = "<name>"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Detector {
    /// Payment card numbers: 12–19 digits (12 only after a card key), compact or grouped with
    /// spaces/dashes, Luhn-valid.
    Card,
    /// IBANs with the country's length and a valid mod-97 check, compact or grouped by 4.
    Iban,
    /// Norwegian fødselsnummer and D-number (both mod-11 check digits, real date).
    NoFnr,
    /// Swedish personnummer and samordningsnummer (Luhn, real date).
    SePnr,
    /// Danish CPR number (real date; compact form only next to an id keyword).
    DkCpr,
    /// Finnish henkilötunnus (check character, century sign, real date).
    FiHetu,
    /// E-mail addresses.
    Email,
    /// Phone numbers: E.164 (`+47 …`), trunk-0 national formats, or digits after a phone key.
    Phone,
    /// IPv4 addresses (not loopback, unspecified, broadcast, netmasks or version strings).
    Ipv4,
    /// IPv6 addresses (parsed with `std::net`; not loopback or unspecified).
    Ipv6,
    /// JSON Web Tokens (`eyJ….….…`).
    Jwt,
    /// The token of `Authorization: Bearer …` / `bearer=…`.
    Bearer,
    /// Well-known API key shapes and the value of `api_key=` / `x-api-key:`.
    ApiKey,
    /// The value of `password=`, `"password":`, `passwd`, `secret=`, `pwd=` pairs.
    Password,
}

impl Detector {
    /// Every detector, for listings and error messages.
    pub const ALL: &'static [Detector] = &[
        Detector::Card,
        Detector::Iban,
        Detector::NoFnr,
        Detector::SePnr,
        Detector::DkCpr,
        Detector::FiHetu,
        Detector::Email,
        Detector::Phone,
        Detector::Ipv4,
        Detector::Ipv6,
        Detector::Jwt,
        Detector::Bearer,
        Detector::ApiKey,
        Detector::Password,
    ];

    /// The name used in rule files.
    pub fn name(self) -> &'static str {
        match self {
            Detector::Card => "card",
            Detector::Iban => "iban",
            Detector::NoFnr => "no-fnr",
            Detector::SePnr => "se-pnr",
            Detector::DkCpr => "dk-cpr",
            Detector::FiHetu => "fi-hetu",
            Detector::Email => "email",
            Detector::Phone => "phone",
            Detector::Ipv4 => "ipv4",
            Detector::Ipv6 => "ipv6",
            Detector::Jwt => "jwt",
            Detector::Bearer => "bearer",
            Detector::ApiKey => "api-key",
            Detector::Password => "password",
        }
    }

    /// Looks a detector up by its rule-file name.
    pub fn from_name(name: &str) -> Option<Detector> {
        Detector::ALL.iter().copied().find(|d| d.name() == name)
    }

    /// A string that changes whenever the detector's matching logic changes; part of the
    /// rule-set version hash. Bump the revision when a validator or context rule changes.
    pub fn revision(self) -> String {
        const REVISION: u32 = 2;
        format!("{}@{REVISION}:{}", self.name(), self.pattern())
    }

    /// The candidate pattern (before validation and context checks).
    pub fn pattern(self) -> &'static str {
        match self {
            Detector::Card => cards::PATTERN,
            Detector::Iban => iban::PATTERN,
            Detector::NoFnr => national_id::NO_FNR,
            Detector::SePnr => national_id::SE_PNR,
            Detector::DkCpr => national_id::DK_CPR,
            Detector::FiHetu => national_id::FI_HETU,
            Detector::Email => contact::EMAIL,
            Detector::Phone => contact::PHONE,
            Detector::Ipv4 => network::IPV4,
            Detector::Ipv6 => "(hand-written: runs of hex digits and colons, std::net::Ipv6Addr)",
            Detector::Jwt => secrets::JWT,
            Detector::Bearer => secrets::BEARER,
            Detector::ApiKey => secrets::API_KEY,
            Detector::Password => secrets::PASSWORD,
        }
    }

    /// Whether the line's features allow this detector to match at all.
    pub(crate) fn possible(self, f: &Features) -> bool {
        // A table lookup: a `match` here may compile to a jump table, whose one indirect
        // jump, taken for every detector of every line, is mispredicted most of the time.
        const NEEDS: [u32; Detector::ALL.len()] = {
            let mut t = [0; Detector::ALL.len()];
            let mut i = 0;
            while i < t.len() {
                // Indexing by discriminant below needs `ALL` in declaration order.
                assert!(Detector::ALL[i] as usize == i);
                t[i] = Detector::ALL[i].needs();
                i += 1;
            }
            t
        };
        f.0 & NEEDS[self as usize] != 0
    }

    /// The feature bits of which [`Detector::possible`] needs one.
    const fn needs(self) -> u32 {
        match self {
            // Twelve-digit cards count only after a card key.
            Detector::Card => F_CARD | K_CARD,
            Detector::Iban => F_IBAN,
            Detector::NoFnr => F_FNR11,
            // The bare-run bits are only set next to a national-id keyword.
            Detector::SePnr => F_SIGN6 | F_RUN10 | F_RUN12,
            Detector::DkCpr => F_SIGN6 | F_RUN10,
            Detector::FiHetu => F_SIGN6,
            Detector::Email => F_AT,
            Detector::Phone => F_PLUS_DIGIT | F_TRUNK0 | K_PHONE,
            Detector::Ipv4 => F_DOTTED4,
            Detector::Ipv6 => F_IPV6,
            Detector::Jwt => K_JWT,
            Detector::Bearer => K_BEARER,
            Detector::ApiKey => K_API,
            Detector::Password => K_SECRET,
        }
    }

    /// [`Detector::find`] on a line whose features `f` allow the detector
    /// ([`Detector::possible`]): where the features say the candidates are, only there is
    /// searched (IPv4, in the window of the line's dotted quads). Finds what `find` finds.
    pub(crate) fn find_possible(self, line: &str, f: &Features, out: &mut Vec<Range<usize>>) {
        match self {
            Detector::Ipv4 => network::find_ipv4_in(line, f.1.window(line.len()), out),
            other => other.find(line, out),
        }
    }

    /// Appends the ranges of validated matches in `line` (in order, not overlapping).
    pub fn find(self, line: &str, out: &mut Vec<Range<usize>>) {
        match self {
            Detector::Card => cards::find(line, out),
            Detector::Iban => iban::find(line, out),
            Detector::NoFnr => national_id::find_no_fnr(line, out),
            Detector::SePnr => national_id::find_se_pnr(line, out),
            Detector::DkCpr => national_id::find_dk_cpr(line, out),
            Detector::FiHetu => national_id::find_fi_hetu(line, out),
            Detector::Email => contact::find_email(line, out),
            Detector::Phone => contact::find_phone(line, out),
            Detector::Ipv4 => network::find_ipv4(line, out),
            Detector::Ipv6 => network::find_ipv6(line, out),
            Detector::Jwt => secrets::find_jwt(line, out),
            Detector::Bearer => secrets::find_bearer(line, out),
            Detector::ApiKey => secrets::find_api_key(line, out),
            Detector::Password => secrets::find_password(line, out),
        }
    }

    /// The form a value is hashed in, so that the same number written two ways gets one
    /// pseudonym: digits only for cards and national ids, compact upper case for IBANs,
    /// lower case for e-mail addresses, digits with a leading `+` kept for phones.
    pub fn canonical(self, value: &str) -> Cow<'_, str> {
        let digits_only = || Cow::Owned(value.chars().filter(char::is_ascii_digit).collect());
        match self {
            Detector::Card | Detector::NoFnr | Detector::DkCpr => digits_only(),
            Detector::SePnr => {
                // The century is optional in the written form; hash the ten-digit form.
                let d: String = value.chars().filter(char::is_ascii_digit).collect();
                let skip = d.len().saturating_sub(10);
                Cow::Owned(d[skip..].to_owned())
            }
            Detector::Phone => Cow::Owned(
                value
                    .chars()
                    .filter(|c| c.is_ascii_digit() || *c == '+')
                    .collect(),
            ),
            Detector::Iban => Cow::Owned(
                value
                    .chars()
                    .filter(|c| !c.is_whitespace())
                    .map(|c| c.to_ascii_uppercase())
                    .collect(),
            ),
            Detector::Email => Cow::Owned(value.to_ascii_lowercase()),
            _ => Cow::Borrowed(value),
        }
    }

    /// For JSON lines: whether an object key alone marks its string value as this kind
    /// (`"password": "…"`, `"api_key": "…"`), since key and value are separate strings there.
    pub fn json_key(self, key: &str) -> bool {
        match self {
            Detector::Password => secrets::is_password_key(key),
            Detector::ApiKey => secrets::is_api_key_key(key),
            _ => false,
        }
    }
}

/// Runs `re` over `line` and keeps what `refine` accepts (possibly narrowed).
pub(crate) fn regex_find(
    re: &Regex,
    line: &str,
    out: &mut Vec<Range<usize>>,
    refine: impl Fn(&str, Range<usize>) -> Option<Range<usize>>,
) {
    keep(line, re.find_iter(line).map(|m| m.range()), out, refine);
}

/// Appends the candidate ranges of `line` that `refine` accepts (possibly narrowed).
pub(crate) fn keep(
    line: &str,
    candidates: impl IntoIterator<Item = Range<usize>>,
    out: &mut Vec<Range<usize>>,
    refine: impl Fn(&str, Range<usize>) -> Option<Range<usize>>,
) {
    out.extend(candidates.into_iter().filter_map(|r| refine(line, r)));
}

/// Compiles a built-in pattern once. Built-in patterns are constants covered by tests, so
/// a failure is a programming error caught by `cargo test`, never by input.
pub(crate) fn builtin(cell: &'static OnceLock<Regex>, pattern: &str) -> &'static Regex {
    cell.get_or_init(|| match Regex::new(pattern) {
        Ok(r) => r,
        Err(e) => panic!("built-in detector pattern does not compile: {e}"),
    })
}

pub(crate) fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// The end of the digit run that starts at `from` (`from` itself when `b[from]` is not a
/// digit).
pub(crate) fn digit_run_end(b: &[u8], from: usize) -> usize {
    digit_edge(b, from, false)
}

/// The first index at or after `from` whose byte is an ASCII digit; `b.len()` if there is
/// none.
pub(crate) fn next_digit(b: &[u8], from: usize) -> usize {
    digit_edge(b, from, true)
}

/// The first index at or after `from` whose byte is an ASCII digit (`digit`) or is not one
/// (`!digit`); `b.len()` if there is none. Eight bytes per step on `fjord_bytes`' SWAR
/// lanes, whose masks are a byte's high bit: the detectors that walk digit runs spend most
/// of their time skipping text between runs, which are mostly short.
fn digit_edge(b: &[u8], mut i: usize, digit: bool) -> usize {
    use fjord_bytes::{Lanes, Swar};
    let flip = if digit { 0 } else { Swar::FLAGS };
    while let Some(w) = b.get(i..).and_then(<[u8]>::first_chunk::<8>) {
        let hits = Swar.in_range(Swar.load(w), b'0', b'9') ^ flip;
        if hits != 0 {
            return i + hits.trailing_zeros() as usize / 8;
        }
        i += 8;
    }
    b.get(i..)
        .and_then(|rest| rest.iter().position(|c| c.is_ascii_digit() == digit))
        .map_or(b.len(), |k| i + k)
}

/// The leftmost-first, non-overlapping matches of a pattern that begins, at an ASCII word
/// boundary, with a whole digit run: `end_of` gets each such run in order and returns where
/// a match starting there ends, if one does; the search goes on after a match's end, as a
/// regex's `find_iter` does.
pub(crate) fn run_matches(
    b: &[u8],
    mut end_of: impl FnMut(Range<usize>) -> Option<usize>,
) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        let s = digit_edge(b, i, true);
        if s >= b.len() {
            return out;
        }
        i = digit_run_end(b, s);
        if s > 0 && is_word(b[s - 1]) {
            continue;
        }
        if let Some(end) = end_of(s..i) {
            out.push(s..end);
            i = end;
        }
    }
}

/// Whether a regex's ASCII word boundary `(?-u:\b)` holds right after a match ending at `e`
/// in a word byte: the next byte is not a word byte.
pub(crate) fn bounded_after(b: &[u8], e: usize) -> bool {
    !b.get(e).copied().is_some_and(is_word)
}

/// `e` is the end of a digit run: if `b[e]` is a separator `sep` accepts and a digit run
/// starts right after it, that run.
pub(crate) fn next_run(b: &[u8], e: usize, sep: impl Fn(u8) -> bool) -> Option<Range<usize>> {
    let s = e + 1;
    (b.get(e).is_some_and(|&c| sep(c)) && b.get(s).is_some_and(u8::is_ascii_digit))
        .then(|| s..digit_run_end(b, s))
}

/// True when the range is glued to a longer number: a digit, or `-`/`.`/`/`/`:` then a
/// digit, right before or after it (`2026-11-26-4111…`, `4111….5`, UUID groups).
pub(crate) fn in_longer_number(line: &str, r: &Range<usize>) -> bool {
    let b = line.as_bytes();
    let sep = |c: u8| matches!(c, b'-' | b'.' | b'/' | b':' | b',');
    let before = r.start.checked_sub(1).map(|i| b[i]);
    let before2 = r.start.checked_sub(2).map(|i| b[i]);
    let after = b.get(r.end).copied();
    let after2 = b.get(r.end + 1).copied();
    before.is_some_and(|c| c.is_ascii_digit())
        || after.is_some_and(|c| c.is_ascii_digit())
        || (before.is_some_and(sep) && before2.is_some_and(|c| c.is_ascii_digit()))
        || (after.is_some_and(sep) && after2.is_some_and(|c| c.is_ascii_digit()))
}

/// The key right before `start` (`span_id=`, `"trace": "`), lower-cased, if there is one.
pub(crate) fn key_before(line: &str, start: usize) -> Option<String> {
    let b = line.as_bytes();
    let mut end = start;
    while end > 0 && matches!(b[end - 1], b'=' | b':' | b'"' | b'\'' | b' ' | b'\t') {
        end -= 1;
    }
    if end == start || !b[end..start].iter().any(|&c| c == b'=' || c == b':') {
        return None;
    }
    let from = b[..end]
        .iter()
        .rposition(|&c| !(c.is_ascii_alphanumeric() || c == b'_' || c == b'-'))
        .map_or(0, |i| i + 1);
    Some(line[from..end].to_ascii_lowercase())
}

/// Keys whose values are ids that can be all digits: hex ids (an OpenTelemetry span id is
/// 16 hex digits; one in ~2000 has no letter) and payment service providers' transaction
/// references (Adyen's `pspReference` is 16 digits, one in ~20 Luhn-valid with an issuer
/// digit). A Luhn-valid one is still not a card.
pub(crate) const HEX_ID_KEYS: &[&str] = &[
    "psp_ref",
    "pspref",
    "psp_reference",
    "pspreference",
    "span",
    "span_id",
    "spanid",
    "parent",
    "parent_id",
    "parentid",
    "trace",
    "trace_id",
    "traceid",
    "request_id",
    "requestid",
    "correlation_id",
    "sha",
    "commit",
];

/// Keys whose value is a card number (`pan=`, `"cardNumber": "`), compared whole and
/// lower-cased: the context a twelve-digit card needs. Each starts with a card keyword of
/// the feature pass (`K_CARD`).
pub(crate) const CARD_KEYS: &[&str] = &[
    "card",
    "cardno",
    "card_no",
    "cardnumber",
    "card_number",
    "card-number",
    "cc_number",
    "ccnumber",
    "creditcard",
    "credit_card",
    "pan",
    "kort",
    "kortnummer",
];

/// Keywords that put a bare number into national-id context (`cpr=0101901234`).
const NATID_WORDS: &[&str] = &[
    "cpr",
    "pnr",
    "personnummer",
    "personnr",
    "person_id",
    "personid",
    "samordningsnummer",
    "ssn",
    "national_id",
    "nationalid",
    "national-id",
    "fnr",
    "fodselsnummer",
    "fødselsnummer",
    "hetu",
    "henkilotunnus",
    "d-nummer",
    "dnummer",
    "d_nummer",
    "dnr",
    "h-nummer",
    "hnr",
    "hjelpenummer",
    "fh-nummer",
    "fh_nummer",
    "fhnr",
    "identitetsnummer",
    "nin",
];

/// Whether one of [`NATID_WORDS`] ends right before `start`, with only separators (`=`,
/// `:`, quotes, spaces, tabs) between it and `start` — the context that makes a bare
/// 10-digit number a Danish or Swedish national id rather than an order id, and any
/// 11-digit number a Norwegian one. The word may end a longer key (`patient_fnr=`).
pub(crate) fn natid_context(line: &str, start: usize) -> bool {
    let b = line.as_bytes();
    let mut end = start;
    while end > 0 && matches!(b[end - 1], b'=' | b':' | b'"' | b'\'' | b' ' | b'\t') {
        end -= 1;
    }
    if end == start {
        return false;
    }
    let from = end.saturating_sub(24);
    let window = b[from..end].to_ascii_lowercase();
    NATID_WORDS.iter().any(|w| window.ends_with(w.as_bytes()))
}

/// Test helper: the texts a `find_*` function reports in `line`.
#[cfg(test)]
pub(crate) fn found(f: fn(&str, &mut Vec<Range<usize>>), line: &str) -> Vec<String> {
    let mut v = Vec::new();
    f(line, &mut v);
    v.into_iter().map(|r| line[r].to_owned()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for d in Detector::ALL {
            assert_eq!(Detector::from_name(d.name()), Some(*d));
        }
        assert_eq!(Detector::from_name("nope"), None);
    }

    /// Every national-id word sets the keyword bit the compact Danish and Swedish forms
    /// need from the feature pass, so the pass never skips a number the context accepts.
    #[test]
    fn every_natid_word_is_a_feature_keyword() {
        for w in NATID_WORDS {
            for line in [
                format!("{w}=0101901234"),
                format!("x \"{w}\": \"0101901234\""),
            ] {
                let f = Features::of(&line).0;
                assert_ne!(f & features::K_NATID, 0, "{line}");
                assert_ne!(f & features::F_RUN10, 0, "{line}");
            }
        }
    }

    #[test]
    fn natid_context_needs_keyword_right_before() {
        let l = "cpr=0101901234";
        assert!(natid_context(l, 4));
        let l = "order=0101901234";
        assert!(!natid_context(l, 6));
        let l = "cpr0101901234";
        assert!(!natid_context(l, 3));
    }

    proptest::proptest! {
        /// The eight-bytes-at-a-time edge search agrees with a byte loop, from any start,
        /// on bytes biased towards digits and the SWAR range's neighbours (`/`, `:`, high bytes).
        #[test]
        fn digit_edge_is_the_byte_loop(
            b in proptest::collection::vec(
                proptest::prop_oneof![b'0'..=b'9', proptest::prelude::Just(b'/'), proptest::prelude::Just(b':'), proptest::prelude::any::<u8>()],
                0..40,
            ),
            from in 0usize..45,
            digit: bool,
        ) {
            let want = b
                .iter()
                .enumerate()
                .skip(from)
                .find(|(_, c)| c.is_ascii_digit() == digit)
                .map_or(b.len(), |(k, _)| k);
            proptest::prop_assert_eq!(digit_edge(&b, from, digit), want);
        }
    }
}
