//! Contact data: e-mail addresses and phone numbers.
//!
//! Phone numbers are the detector most likely to eat innocent numbers, so a candidate needs
//! one of three shapes and the digits must not run on into a longer token:
//!
//! * international: `+` and a country code, 8–15 digits in all, optional single spaces or
//!   dashes and an optional `(0)` (`+47 412 34 567`, `+46 (0)70-123 45 67`);
//! * national with a trunk `0` and at least one separator, 8–11 digits (`070-123 45 67`,
//!   `040 123 4567`, `030 12345678`, `06-12345678`, `06 12 34 56 78`), not shaped like a
//!   date (`01-12-2026`);
//! * 8–15 digits right after a phone key (`phone=41234567`, `"msisdn": "4791234567"`,
//!   `customerPhone: …`), which is how bare Norwegian and Danish eight-digit numbers are
//!   found. The key must start a word part (`hotel=` and `telemetry=` are not phone keys).
//!
//! Amounts (`+1234.50`), times (`+01:00`), order ids and durations have none of these shapes.

use std::ops::Range;
use std::sync::OnceLock;

use super::{builtin, is_word, regex_find};

/// E-mail candidates (validated by shape only: there is no check digit for an address).
/// Letters are Unicode letters (with their combining marks), so internationalised local
/// parts and domains (`åse@blåbær.no`) are whole matches, and the top-level domain is
/// letters or an A-label (`xn--p1ai`). The end of the match is checked in
/// [`find_email`] rather than by `\b`, which does not see non-ASCII letters.
pub const EMAIL: &str = r"[\p{L}\p{M}\p{N}._%+-]+@[\p{L}\p{N}](?:[\p{L}\p{M}\p{N}-]*[\p{L}\p{M}\p{N}])?(?:\.[\p{L}\p{N}](?:[\p{L}\p{M}\p{N}-]*[\p{L}\p{M}\p{N}])?)*\.(?:xn--[a-z0-9-]+|\p{L}[\p{L}\p{M}]+)";

/// Phone candidates: international, national trunk-0, or after a phone key.
pub const PHONE: &str = concat!(
    r"\+[1-9][0-9]{0,3}(?:[ -]?\(0\))?(?:[ -]?[0-9]){5,13}",
    r"|(?-u:\b)0[1-9][0-9]{0,3}[ -][0-9]{2,8}(?:[ -][0-9]{2,4}){0,3}(?-u:\b)",
    r"|(?:(?:^|[^A-Za-z])(?i:telephone|telefon|phone|tel|mobile|mobil|msisdn|puhelin)",
    r"|Telephone|Telefon|Phone|Tel|Mobile|Mobil|Msisdn)",
    r"(?i:_?(?:number|nr|no|num))?[",
    "\"",
    r"']?[ \t]*[=:][ \t]*[",
    "\"",
    r"']?\+?[0-9](?:[ -]?[0-9]){6,16}"
);

/// Appends e-mail addresses: matches not glued to a following letter or digit.
pub fn find_email(line: &str, out: &mut Vec<Range<usize>>) {
    static RE: OnceLock<regex::Regex> = OnceLock::new();
    regex_find(builtin(&RE, EMAIL), line, out, |l, r| {
        let glued = l[r.end..].chars().next().is_some_and(char::is_alphanumeric);
        (!glued).then_some(r)
    });
}

/// Appends phone numbers.
pub fn find_phone(line: &str, out: &mut Vec<Range<usize>>) {
    static RE: OnceLock<regex::Regex> = OnceLock::new();
    regex_find(builtin(&RE, PHONE), line, out, refine_phone);
}

fn refine_phone(line: &str, r: Range<usize>) -> Option<Range<usize>> {
    let b = line.as_bytes();
    let s = &line[r.clone()];
    // After a key: the value starts at the first `+` or digit behind the `=`/`:`. The
    // international and national shapes never contain `=` or `:`.
    let (r, keyed) = if s.contains(['=', ':']) {
        let sep = s.find(['=', ':'])?;
        let off = s[sep..].find(|c: char| c == '+' || c.is_ascii_digit())? + sep;
        (r.start + off..r.end, true)
    } else {
        (r, false)
    };
    let value = &line[r.clone()];
    let digits = value.bytes().filter(u8::is_ascii_digit).count();
    // Not the head of a longer token: a digit, a decimal or time part, or a word follows.
    let after = b.get(r.end).copied();
    let after2 = b.get(r.end + 1).copied();
    if after.is_some_and(is_word)
        || (matches!(after, Some(b'.' | b':' | b',' | b'/'))
            && after2.is_some_and(|c| c.is_ascii_digit()))
    {
        return None;
    }
    let before = r.start.checked_sub(1).map(|i| b[i]);
    if !keyed && before.is_some_and(|c| is_word(c) || matches!(c, b'.' | b'/' | b':' | b'-')) {
        return None;
    }
    if keyed || b[r.start] == b'+' {
        return (8..=15).contains(&digits).then_some(r);
    }
    // National trunk-0 form.
    if !(8..=11).contains(&digits) || looks_like_date(value) {
        return None;
    }
    Some(r)
}

/// `DD-MM-YYYY`, `DD MM YYYY` and friends: two 2-digit groups and a 4-digit group.
fn looks_like_date(s: &str) -> bool {
    let groups: Vec<usize> = s
        .split([' ', '-'])
        .filter(|g| !g.is_empty())
        .map(str::len)
        .collect();
    groups == [2, 2, 4]
}

#[cfg(test)]
mod tests {
    use super::super::found;
    use super::*;

    #[test]
    fn emails() {
        assert_eq!(
            found(find_email, "to kari.nordmann@example.no."),
            ["kari.nordmann@example.no"]
        );
        assert!(found(find_email, "user@localhost").is_empty());
        let cases: &[(&str, &[&str])] = &[
            ("to freja+shop@example.no ok", &["freja+shop@example.no"]),
            (
                "x ola@mail.eu.example.co.uk.",
                &["ola@mail.eu.example.co.uk"],
            ),
            ("åse.øvrebø@blåbær.no, ok", &["åse.øvrebø@blåbær.no"]),
            ("x kari@xn--blbr-qoa1b.no y", &["kari@xn--blbr-qoa1b.no"]),
            ("x ivan@пример.рф y", &["ivan@пример.рф"]),
            ("x kari@example.xn--p1ai y", &["kari@example.xn--p1ai"]),
            ("user=ola@x.no;", &["ola@x.no"]),
            ("x kari@example.no5", &[]),
            ("x kari@example.no-x", &["kari@example.no"]),
        ];
        for (line, want) in cases {
            assert_eq!(found(find_email, line), *want, "{line}");
        }
    }

    #[test]
    fn phones() {
        let cases: &[(&str, &[&str])] = &[
            ("phone=+47 412 34 567 ok", &["+47 412 34 567"]),
            ("call +46 (0)70-123 45 67", &["+46 (0)70-123 45 67"]),
            ("tel 070-123 45 67", &["070-123 45 67"]),
            ("mobile: 040 123 4567", &["040 123 4567"]),
            ("phone=41234567", &["41234567"]),
            ("\"msisdn\": \"4791234567\"", &["4791234567"]),
            ("+4741234567", &["+4741234567"]),
            ("amount=+1234567.50", &[]),
            ("offset +01:00", &[]),
            ("order=1234567890 took 0.012s", &[]),
            ("date 01-12-2026 x", &[]),
            ("seq=000123 order=1000123", &[]),
            ("port 8080 pid 12345678", &[]),
            ("hotel=12345678 telemetry=12345678", &[]),
            ("customer_phone_number=41234567", &["41234567"]),
            (
                "customerPhone: 41234567 telephone=41234568",
                &["41234567", "41234568"],
            ),
        ];
        for (line, want) in cases {
            assert_eq!(found(find_phone, line), *want, "{line}");
        }
    }

    /// E.164 and the national forms of the countries fjord's customers log most.
    #[test]
    fn phones_per_country() {
        let cases: &[(&str, &[&str])] = &[
            // Norway: E.164; national numbers have no trunk prefix, so only after a key.
            ("x +47 412 34 567 y", &["+47 412 34 567"]),
            ("x +4741234567 y", &["+4741234567"]),
            ("mobil: 412 34 567", &["412 34 567"]),
            ("tlf 41 23 45 67 x", &[]),
            // Sweden.
            ("x +46 70 123 45 67 y", &["+46 70 123 45 67"]),
            ("x 070-123 45 67 y", &["070-123 45 67"]),
            ("x 08-123 456 78 y", &["08-123 456 78"]),
            // Denmark: like Norway.
            ("x +45 20 12 34 56 y", &["+45 20 12 34 56"]),
            ("telefon=20123456", &["20123456"]),
            // Finland.
            ("x +358 40 1234567 y", &["+358 40 1234567"]),
            ("x 040 123 4567 y", &["040 123 4567"]),
            ("x 09 1234 5678 y", &["09 1234 5678"]),
            // Germany.
            ("x +49 30 12345678 y", &["+49 30 12345678"]),
            ("x +49 (0)171 1234567 y", &["+49 (0)171 1234567"]),
            ("x 030 12345678 y", &["030 12345678"]),
            ("x 0171-1234567 y", &["0171-1234567"]),
            // Netherlands.
            ("x +31 6 12345678 y", &["+31 6 12345678"]),
            ("x 06-12345678 y", &["06-12345678"]),
            ("x 020 123 4567 y", &["020 123 4567"]),
            // France.
            ("x +33 6 12 34 56 78 y", &["+33 6 12 34 56 78"]),
            ("x 06 12 34 56 78 y", &["06 12 34 56 78"]),
            ("x 01-23-45-67-89 y", &["01-23-45-67-89"]),
            // Poland: no trunk prefix either.
            ("x +48 512 345 678 y", &["+48 512 345 678"]),
            ("phone=512345678", &["512345678"]),
            // Not phones.
            ("x 05-11-2026 y", &[]),
            ("x 0100-12 y", &[]),
        ];
        for (line, want) in cases {
            assert_eq!(found(find_phone, line), *want, "{line}");
        }
    }
}
