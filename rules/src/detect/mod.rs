//! Built-in detectors. Each family lives in its own file and exposes a `find_*` function
//! that appends the byte ranges of validated matches to a vector; a range is always on
//! `char` boundaries of the line and covers only the value to scrub (for `password=…` the
//! value, not the key).
//!
//! Speed: before any detector runs, [`Features::of`] makes one pass over the line's bytes
//! (plus one keyword scan) and records the cheap shapes a detector needs before it can
//! possibly match: an `@` for e-mail, a run of 13+ digits for cards, `eyJ` for JWTs, … A
//! detector whose shapes are absent is skipped. The features are a superset test: a line
//! they reject can never produce a match, so the prefilter never costs recall.

use std::borrow::Cow;
use std::ops::Range;
use std::sync::OnceLock;

use regex::Regex;

pub mod cards;
pub mod contact;
pub mod iban;
pub mod national_id;
pub mod network;
pub mod secrets;

/// A built-in detector, named in rule packs by its `detector = "<name>"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Detector {
    /// Payment card numbers: 13–19 digits, compact or grouped with spaces/dashes, Luhn-valid.
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
        const REVISION: u32 = 1;
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
        let need = match self {
            Detector::Card => F_CHAIN13,
            Detector::Iban => F_IBAN,
            Detector::NoFnr => F_CHAIN11,
            Detector::SePnr => F_SIGN6 | ((F_RUN10 | F_RUN12) & f.bits_if(K_NATID)),
            Detector::DkCpr => F_SIGN6 | (F_RUN10 & f.bits_if(K_NATID)),
            Detector::FiHetu => F_SIGN6,
            Detector::Email => F_AT,
            Detector::Phone => F_PLUS_DIGIT | F_ZERO_CHAIN | K_PHONE,
            Detector::Ipv4 => F_DOTTED4,
            Detector::Ipv6 => F_IPV6,
            Detector::Jwt => K_JWT,
            Detector::Bearer => K_BEARER,
            Detector::ApiKey => K_API,
            Detector::Password => K_SECRET,
        };
        f.0 & need != 0
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
    for m in re.find_iter(line) {
        if let Some(r) = refine(line, m.range()) {
            out.push(r);
        }
    }
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

/// Keys whose values are hex ids that can happen to be all digits (an OpenTelemetry span
/// id is 16 hex digits; one in ~2000 has no letter): a Luhn-valid one is still not a card.
pub(crate) const HEX_ID_KEYS: &[&str] = &[
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
];

/// Whether one of [`NATID_WORDS`] ends within the 24 bytes before `start`, followed only by
/// separators (`=`, `:`, quotes, spaces) — the context that makes a bare 10-digit number a
/// Danish or Swedish national id rather than an order id.
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

// Feature bits: shapes found by the single byte pass.
const F_AT: u32 = 1 << 0;
const F_CHAIN13: u32 = 1 << 1;
const F_CHAIN11: u32 = 1 << 2;
const F_SIGN6: u32 = 1 << 3;
const F_RUN10: u32 = 1 << 4;
const F_RUN12: u32 = 1 << 5;
const F_PLUS_DIGIT: u32 = 1 << 6;
const F_ZERO_CHAIN: u32 = 1 << 7;
const F_DOTTED4: u32 = 1 << 8;
const F_IPV6: u32 = 1 << 9;
const F_IBAN: u32 = 1 << 10;
// Keyword bits: set when a keyword starts a word part (see `keyword_at`).
const K_SECRET: u32 = 1 << 16;
const K_API: u32 = 1 << 17;
const K_JWT: u32 = 1 << 18;
const K_BEARER: u32 = 1 << 19;
const K_PHONE: u32 = 1 << 20;
const K_NATID: u32 = 1 << 21;

/// Keywords (lower case) and the bit each sets, by first letter. A keyword counts where a
/// word part starts: after a character that is not a letter or digit, or at a lower→upper
/// case change (`newPassword`), so `client_secret`, `X-Api-Key` and `apiKey` count,
/// `mypassword` does not. Each group is a superset of what its detectors' patterns require
/// literally.
fn keywords(first: u8) -> &'static [(&'static [u8], u32)] {
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

/// The keyword bits of the word part starting at `b[i]`.
fn keyword_at(b: &[u8], i: usize) -> u32 {
    let rest = &b[i..];
    let mut f = 0;
    for (k, bit) in keywords(b[i].to_ascii_lowercase()) {
        if rest.len() >= k.len() && rest[..k.len()].eq_ignore_ascii_case(k) {
            f |= bit;
        }
    }
    f
}

/// The cheap shapes present in a line: one pass over its bytes plus one keyword scan.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Features(u32);

impl Features {
    fn bits_if(&self, k: u32) -> u32 {
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
        let n = b.len();
        let mut f = 0u32;
        let mut colons = 0usize;
        let mut dotted = 0usize; // digit runs joined by '.' so far
        let mut i = 0;
        while i < n {
            let c = b[i];
            if c.is_ascii_digit() {
                // A chain: digit runs joined by single spaces or dashes.
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
                    f |= F_CHAIN11;
                }
                if zero && total >= 8 {
                    f |= F_ZERO_CHAIN;
                }
                if i < n && b[i] == b'.' {
                    i += 1; // keep `dotted` across the dot
                }
                continue;
            }
            match c {
                b'@' => f |= F_AT,
                b'+' if i + 1 < n && b[i + 1].is_ascii_digit() => f |= F_PLUS_DIGIT,
                b':' => {
                    colons += 1;
                    if colons >= 7 || (i + 1 < n && b[i + 1] == b':') {
                        f |= F_IPV6;
                    }
                }
                b'A'..=b'Z' | b'a'..=b'z' => {
                    // A word part starts after a non-alphanumeric byte (hex ids like
                    // `4bf92f…` are one word) or at a lower→upper change inside a word.
                    let starts = i == 0 || !b[i - 1].is_ascii_alphanumeric();
                    if starts {
                        f |= keyword_at(b, i);
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
                            f |= keyword_at(b, i);
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
        Features(f)
    }
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

    #[test]
    fn features_find_shapes() {
        let f = |s: &str| Features::of(s).0;
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
        assert!(Features::of("GET /health 200").is_empty());
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
}
