//! IBANs: a known country code, that country's length and ISO 7064 mod-97, in compact form
//! (`NO9386011117947`) or grouped with single spaces (`NO93 8601 1117 947`), in upper or
//! lower case (`no93 8601 1117 947`, as a form field lower-cases it); one case per IBAN.

use std::ops::Range;
use std::sync::OnceLock;

use super::{builtin, digit_run_end, is_word, key_before, next_digit, HEX_ID_KEYS};
use crate::validate;

/// Candidate pattern: country, check digits, then 11–30 letters/digits with optional single
/// spaces, all upper or all lower case. The candidate may run into the next word; [`find`]
/// cuts it at the country length.
pub const PATTERN: &str =
    r"(?-u:\b)(?:[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]){11,30}|[a-z]{2}[0-9]{2}(?: ?[a-z0-9]){11,30})";

/// [`PATTERN`] without its leading boundary, anchored: [`find`] runs it at each word start
/// that begins with a known country code and two digits, and checks the boundary itself.
const ANCHORED: &str =
    r"^(?:[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]){11,30}|[a-z]{2}[0-9]{2}(?: ?[a-z0-9]){11,30})";

/// Appends validated IBANs in `line`. Candidates start only where [`PATTERN`] can start a
/// valid IBAN — a word start with a known country code and two digits — instead of wherever
/// the pattern matches: the regex then runs on a few bytes, not the whole line (most lines
/// that get here have a hex id starting `de12…`), and a candidate with an unknown code does
/// not swallow an IBAN right after it (`XX12 NO93 8601 1117 947`).
pub fn find(line: &str, out: &mut Vec<Range<usize>>) {
    static RE: OnceLock<regex::Regex> = OnceLock::new();
    let re = builtin(&RE, ANCHORED);
    let b = line.as_bytes();
    // The check digits start a digit run two bytes after the code: walk the digit runs
    // (eight bytes per step between them) and look two bytes back.
    let mut from = 0;
    let mut free = 0; // the end of the last IBAN found
    loop {
        let d = next_digit(b, from);
        if d >= b.len() {
            return;
        }
        from = digit_run_end(b, d);
        let Some(start) = d.checked_sub(2).filter(|&s| s >= free) else {
            continue;
        };
        let (c0, c1) = (b[start], b[start + 1]);
        let word_start = start == 0 || !is_word(b[start - 1]);
        if from - d < 2 || !word_start || !super::features::iban_country(c0, c1) {
            continue;
        }
        // `start` is an ASCII letter, so a char boundary.
        let Some(m) = re.find(&line[start..]) else {
            continue;
        };
        if let Some(r) = refine(line, start..start + m.end()) {
            free = r.end;
            from = from.max(r.end);
            out.push(r);
        }
    }
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
            ("XX12 NO93 8601 1117 947", &["NO93 8601 1117 947"]),
            (
                "NO9386011117947,DE89370400440532013000",
                &["NO9386011117947", "DE89370400440532013000"],
            ),
        ];
        for (line, want) in cases {
            assert_eq!(super::super::found(find, line), *want, "{line}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(3000))]
        /// The word-start walk finds every IBAN the pattern's matches give (and, where a
        /// match with an unknown code swallowed one, more); everything it finds is a valid
        /// IBAN starting at a word boundary.
        #[test]
        fn the_walk_finds_what_the_pattern_finds(
            parts in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::prelude::Just("NO9386011117947".to_owned()),
                    proptest::prelude::Just("no93 8601 1117 947".to_owned()),
                    proptest::prelude::Just("DE89 3704 0044 0532 0130 00".to_owned()),
                    proptest::prelude::Just("be71096123456769".to_owned()),
                    "[A-Za-z]{2}[0-9]{2}[A-Za-z0-9 ]{0,20}",
                    "[a-z0-9]{1,6}",
                    "[ ,=_.é]",
                ],
                0..8,
            )
        ) {
            let l: String = parts.concat();
            static RE: std::sync::LazyLock<regex::Regex> =
                std::sync::LazyLock::new(|| regex::Regex::new(PATTERN).unwrap());
            let by_pattern: Vec<_> = RE
                .find_iter(&l)
                .filter_map(|m| refine(&l, m.range()))
                .collect();
            let mut walked = Vec::new();
            find(&l, &mut walked);
            for r in &by_pattern {
                proptest::prop_assert!(walked.contains(r), "{:?} {:?} {:?}", l, r, walked);
            }
            for r in &walked {
                proptest::prop_assert!(validate::iban(&l[r.clone()]), "{:?} {:?}", l, r);
                proptest::prop_assert!(r.start == 0 || !is_word(l.as_bytes()[r.start - 1]));
            }
        }
    }
}
