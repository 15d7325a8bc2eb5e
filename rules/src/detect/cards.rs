//! Payment card numbers: 13–19 digits, compact or grouped by spaces or dashes the way cards
//! are printed (4-4-4-4[-3], Amex 4-6-5, Diners 4-6-4), with a known issuer digit and a
//! valid Luhn check. A candidate glued to a longer number (UUID groups, decimals, dates) is
//! not a card, and neither is the value of a hex-id key (`span=`, `trace_id=`, …).

use std::ops::Range;
use std::sync::OnceLock;

use super::{builtin, in_longer_number, key_before, regex_find, HEX_ID_KEYS};
use crate::validate;

/// Candidate pattern: compact, 4-4-4-x groups, or 4-6-x groups.
pub const PATTERN: &str = r"(?-u:\b)(?:[0-9]{13,19}|[0-9]{4}(?:[ -][0-9]{4}){2}[ -][0-9]{1,7}(?:[ -][0-9]{3})?|[0-9]{4}[ -][0-9]{6}[ -][0-9]{4,5})(?-u:\b)";

/// Appends validated card numbers in `line`.
pub fn find(line: &str, out: &mut Vec<Range<usize>>) {
    static RE: OnceLock<regex::Regex> = OnceLock::new();
    regex_find(builtin(&RE, PATTERN), line, out, refine);
}

fn refine(line: &str, r: Range<usize>) -> Option<Range<usize>> {
    let ok = |r: &Range<usize>| {
        let s = &line[r.clone()];
        // One separator style per number: `4111 1111-1111 1111` is two things.
        let mixed = s.contains(' ') && s.contains('-');
        !mixed && !in_longer_number(line, r) && validate::card_number(s)
    };
    if key_before(line, r.start).is_some_and(|k| HEX_ID_KEYS.contains(&k.as_str())) {
        return None;
    }
    if ok(&r) {
        return Some(r);
    }
    // The greedy optional last group may have taken a following number (`… 1111 123 items`).
    let s = &line[r.clone()];
    let cut = s.rfind([' ', '-'])?;
    let shorter = r.start..r.start + cut;
    ok(&shorter).then_some(shorter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let cases: &[(&str, &[&str])] = &[
            ("card=4111111111111111 ok", &["4111111111111111"]),
            (
                "card 4111 1111 1111 1111 12 items",
                &["4111 1111 1111 1111"],
            ),
            ("amex 3782-822463-10005.", &["3782-822463-10005"]),
            ("4111 1111-1111 1111", &[]),
            ("order 4111111111111112", &[]),
            ("uuid 52345678-2234-3234-4234-523456789012", &[]),
            ("2026-11-26-4111111111111111", &[]),
            ("ts=1764151200123 ns=1764151200123456789", &[]),
            ("amount=4111111111111111.50", &[]),
            ("span=6478729609390061 parent_id: 6478729609390061", &[]),
        ];
        for (line, want) in cases {
            assert_eq!(super::super::found(find, line), *want, "{line}");
        }
    }
}
