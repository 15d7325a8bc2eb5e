//! IBANs: a known country code, that country's length and ISO 7064 mod-97, in compact form
//! (`NO9386011117947`) or grouped by four with single spaces (`NO93 8601 1117 947`). Only
//! upper-case IBANs are recognised.

use std::ops::Range;
use std::sync::OnceLock;

use super::{builtin, is_word, regex_find};
use crate::validate;

/// Candidate pattern: country, check digits, then 11–30 letters/digits with optional single
/// spaces. The candidate may run into the next word; [`find`] cuts it at the country length.
pub const PATTERN: &str = r"(?-u:\b)[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]){11,30}";

/// Appends validated IBANs in `line`.
pub fn find(line: &str, out: &mut Vec<Range<usize>>) {
    static RE: OnceLock<regex::Regex> = OnceLock::new();
    regex_find(builtin(&RE, PATTERN), line, out, refine);
}

fn refine(line: &str, r: Range<usize>) -> Option<Range<usize>> {
    let b = line.as_bytes();
    let want = validate::iban_length(&b[r.start..r.start + 2])?;
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
        ];
        for (line, want) in cases {
            assert_eq!(super::super::found(find, line), *want, "{line}");
        }
    }
}
