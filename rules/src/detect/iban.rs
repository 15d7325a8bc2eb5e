//! IBANs: a known country code, that country's length and ISO 7064 mod-97, in compact form
//! (`NO9386011117947`) or grouped with single spaces (`NO93 8601 1117 947`), in upper or
//! lower case (`no93 8601 1117 947`, as a form field lower-cases it); one case per IBAN.

use std::ops::Range;
use std::sync::OnceLock;

use super::{builtin, is_word, key_before, regex_find, HEX_ID_KEYS};
use crate::validate;

/// Candidate pattern: country, check digits, then 11–30 letters/digits with optional single
/// spaces, all upper or all lower case. The candidate may run into the next word; [`find`]
/// cuts it at the country length.
pub const PATTERN: &str =
    r"(?-u:\b)(?:[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]){11,30}|[a-z]{2}[0-9]{2}(?: ?[a-z0-9]){11,30})";

/// Appends validated IBANs in `line`.
pub fn find(line: &str, out: &mut Vec<Range<usize>>) {
    static RE: OnceLock<regex::Regex> = OnceLock::new();
    regex_find(builtin(&RE, PATTERN), line, out, refine);
}

fn refine(line: &str, r: Range<usize>) -> Option<Range<usize>> {
    let b = line.as_bytes();
    let want = validate::iban_length(&b[r.start..r.start + 2].to_ascii_uppercase())?;
    // Walk to the `want`-th letter/digit; the IBAN ends there.
    let mut seen = 0;
    let mut end = r.start;
    for (i, &c) in b[r.clone()].iter().enumerate() {
        if c != b' ' {
            seen += 1;
        }
        if seen == want {
            end = r.start + i + 1;
            break;
        }
    }
    if seen < want || b.get(end).copied().is_some_and(is_word) {
        return None;
    }
    let cand = r.start..end;
    // A lower-case hex id (an OpenTelemetry span id is 16 hex digits, as long as a Belgian
    // IBAN) passes mod-97 one time in 97: not the value of a hex-id key.
    if b[r.start].is_ascii_lowercase()
        && key_before(line, r.start).is_some_and(|k| HEX_ID_KEYS.contains(&k.as_str()))
    {
        return None;
    }
    validate::iban(&line[cand.clone()]).then_some(cand)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let cases: &[(&str, &[&str])] = &[
            ("iban=NO9386011117947 ok", &["NO9386011117947"]),
            ("to NO93 8601 1117 947 OK", &["NO93 8601 1117 947"]),
            (
                "DE89 3704 0044 0532 0130 00",
                &["DE89 3704 0044 0532 0130 00"],
            ),
            ("GB82WEST12345698765432", &["GB82WEST12345698765432"]),
            ("iban=NO9386011117948", &[]),
            ("NO93860111179470", &[]),
            ("SKU AB12345678901234 x", &[]),
            ("iban=no9386011117947 ok", &["no9386011117947"]),
            ("to no93 8601 1117 947", &["no93 8601 1117 947"]),
            ("gb82west12345698765432", &["gb82west12345698765432"]),
            ("No9386011117947", &[]),
            ("iban=no9386011117948", &[]),
            ("span=be71096123456769 ok", &[]),
            ("iban=be71096123456769 ok", &["be71096123456769"]),
        ];
        for (line, want) in cases {
            assert_eq!(super::super::found(find, line), *want, "{line}");
        }
    }
}
