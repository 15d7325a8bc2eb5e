//! Payment card numbers: 12–19 digits, compact or grouped by spaces or dashes the way cards
//! are printed (4-4-4[-4][-3], Amex 4-6-5, Diners 4-6-4), with a known issuer digit and a
//! valid Luhn check. A candidate glued to a longer number (UUID groups, decimals, dates) is
//! not a card, and neither is the value of a hex-id key (`span=`, `trace_id=`, …).
//! Twelve-digit numbers (Maestro issues them) count only as the value of a card key
//! (`pan=`, `card_number:`): one random twelve-digit id in ~20 has an issuer digit and a
//! valid Luhn digit, and twelve-digit offsets and ids are everywhere in logs.

use std::ops::Range;

use super::{
    bounded_after, in_longer_number, keep, key_before, next_run, run_matches, CARD_KEYS,
    HEX_ID_KEYS,
};
use crate::validate;

/// Candidate pattern: compact, 4-4-4-x groups, or 4-6-x groups. [`candidates`] finds exactly
/// its matches from the line's digit runs (a property test holds it to the pattern).
pub const PATTERN: &str = r"(?-u:\b)(?:[0-9]{12,19}|[0-9]{4}(?:[ -][0-9]{4}){2}(?:[ -][0-9]{1,7}(?:[ -][0-9]{3})?)?|[0-9]{4}[ -][0-9]{6}[ -][0-9]{4,5})(?-u:\b)";

/// The matches of [`PATTERN`], leftmost first. Each group is a whole digit run (a group
/// ending inside a run would be followed by a digit where the pattern wants a separator or
/// the closing boundary), so the alternatives follow from the run lengths: one run of
/// 12–19; 4, 4, 4, then optionally 1–7 and an optional 3; or 4, 6, 4–5 — joined by single
/// spaces or dashes.
fn candidates(b: &[u8]) -> Vec<Range<usize>> {
    let sep = |c: u8| c == b' ' || c == b'-';
    let bounded = |e: usize| bounded_after(b, e);
    run_matches(b, |first| {
        let len = first.len();
        if (12..=19).contains(&len) {
            return bounded(first.end).then_some(first.end);
        }
        if len != 4 {
            return None;
        }
        let second = next_run(b, first.end, sep)?;
        match second.len() {
            4 => {
                let third = next_run(b, second.end, sep).filter(|r| r.len() == 4)?;
                // The optional last group (and its optional 3-digit group), else the three
                // groups alone: the pattern's preference order.
                let tail = next_run(b, third.end, sep)
                    .filter(|r| r.len() <= 7)
                    .and_then(|last| {
                        let group =
                            next_run(b, last.end, sep).filter(|r| r.len() == 3 && bounded(r.end));
                        match group {
                            Some(g) => Some(g.end),
                            None => bounded(last.end).then_some(last.end),
                        }
                    });
                tail.or_else(|| bounded(third.end).then_some(third.end))
            }
            6 => next_run(b, second.end, sep)
                .filter(|r| (4..=5).contains(&r.len()) && bounded(r.end))
                .map(|r| r.end),
            _ => None,
        }
    })
}

/// Appends validated card numbers in `line`.
pub fn find(line: &str, out: &mut Vec<Range<usize>>) {
    keep(line, candidates(line.as_bytes()), out, refine);
}

fn refine(line: &str, r: Range<usize>) -> Option<Range<usize>> {
    let key = key_before(line, r.start);
    if key.as_deref().is_some_and(|k| HEX_ID_KEYS.contains(&k)) {
        return None;
    }
    let card_key = key.as_deref().is_some_and(|k| CARD_KEYS.contains(&k));
    let ok = |r: &Range<usize>| {
        let s = &line[r.clone()];
        // One separator style per number: `4111 1111-1111 1111` is two things.
        let mixed = s.contains(' ') && s.contains('-');
        let twelve = s.bytes().filter(u8::is_ascii_digit).count() == 12;
        !mixed && (!twelve || card_key) && !in_longer_number(line, r) && validate::card_number(s)
    };
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
            ("\"pspReference\": \"4199499797180756\"", &[]),
            (
                "psp_ref=4199499797180756 card=4199499797180756",
                &["4199499797180756"],
            ),
            // Twelve digits (Maestro): only as a card key's value.
            ("pan=501800000009", &["501800000009"]),
            ("\"cardNumber\": \"5018 0000 0009\"", &["5018 0000 0009"]),
            ("kort: 5018-0000-0009 ok", &["5018-0000-0009"]),
            ("offset=501800000009", &[]),
            ("x 5018 0000 0009 y", &[]),
            ("pan=501800000008", &[]),
            // Every length from 13 to 19, with every separator.
            ("x 4000000000006 y", &["4000000000006"]),
            ("x 6759 6498 2643 84533 y", &["6759 6498 2643 84533"]),
            ("x 6759-6498-2643-845326 y", &["6759-6498-2643-845326"]),
            ("x 4111 1111 1111 1111 003 y", &["4111 1111 1111 1111 003"]),
            ("x 6011000990139424 y", &["6011000990139424"]),
            ("x 3056 930902 5904 y", &["3056 930902 5904"]),
            ("x 6759649826438453250 y", &["6759649826438453250"]),
        ];
        for (line, want) in cases {
            assert_eq!(super::super::found(find, line), *want, "{line}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4000))]
        /// The run walk finds exactly what the documented pattern finds.
        #[test]
        fn candidates_are_the_pattern_matches(
            parts in proptest::collection::vec(
                (
                    "[0-9]{3}|[0-9]{4}|[0-9]{5}|[0-9]{6}|[0-9]{1,8}|[0-9]{11,20}",
                    "[ -]|[ -]|[ -]|[a_.é]|",
                ),
                0..10,
            )
        ) {
            let l: String = parts.into_iter().map(|(d, s)| d + &s).collect();
            static RE: std::sync::LazyLock<regex::Regex> =
                std::sync::LazyLock::new(|| regex::Regex::new(PATTERN).unwrap());
            let want: Vec<_> = RE.find_iter(&l).map(|m| m.range()).collect();
            proptest::prop_assert_eq!(candidates(l.as_bytes()), want, "{:?}", l);
        }
    }
}
