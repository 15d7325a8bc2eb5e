//! Nordic national identity numbers. Each candidate must pass its check digits (where the
//! number has them) and be a real calendar date in the century its digits imply:
//!
//! * Norwegian fødselsnummer / D-number: 11 digits (optionally `DDMMYY NNNNN`), two mod-11
//!   check digits.
//! * Swedish personnummer / samordningsnummer: `YYMMDD-NNNN`, `YYMMDD+NNNN`,
//!   `YYYYMMDD-NNNN` anywhere; the compact `YYMMDDNNNN` and `YYYYMMDDNNNN` only right after
//!   an id keyword (`pnr=`, `personnummer:` …), because one random ten-digit order id in
//!   ~140 passes date + Luhn, and twelve-digit offsets and ids are common in logs.
//! * Danish CPR: `DDMMYY-SSSS`; bare `DDMMYYSSSS` only after an id keyword, because CPR has
//!   no check digit and one random ten-digit number in ~27 is a valid date.
//! * Finnish HETU: `DDMMYYCZZZQ` with century sign and check character.
//!
//! The candidate patterns below define the shapes; [`candidates`] finds exactly their
//! matches by walking the line's digit runs instead of running a regex over the whole line
//! (a property test holds each to its pattern).

use std::ops::Range;

use super::{bounded_after, in_longer_number, keep, natid_context, next_run, run_matches};
use crate::validate;

/// Norwegian fødselsnummer candidates.
pub const NO_FNR: &str = r"(?-u:\b)[0-9]{6} ?[0-9]{5}(?-u:\b)";
/// Swedish personnummer candidates.
pub const SE_PNR: &str = r"(?-u:\b)(?:[0-9]{8}|[0-9]{6})[-+]?[0-9]{4}(?-u:\b)";
/// Danish CPR candidates.
pub const DK_CPR: &str = r"(?-u:\b)[0-9]{6}-?[0-9]{4}(?-u:\b)";
/// Finnish HETU candidates.
pub const FI_HETU: &str = r"(?-u:\b)[0-9]{6}[-+A-FU-Y][0-9]{3}[0-9A-FHJ-NPR-Y](?-u:\b)";

/// Which candidate pattern [`candidates`] matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    NoFnr,
    SePnr,
    DkCpr,
    FiHetu,
}

/// The matches of the shape's pattern in `b`, leftmost first and not overlapping. Every
/// pattern starts at a word boundary with a fixed number of digits followed by a non-digit
/// or a separator, so a match starts at the start of a digit run, and which runs can start
/// one follows from the run's length alone (`[0-9]{6}` at a boundary cannot end inside a
/// longer run: a digit would follow where the pattern wants a separator, a digit run of
/// another length, or the closing boundary).
fn candidates(b: &[u8], shape: Shape) -> Vec<Range<usize>> {
    let bounded = |e: usize| bounded_after(b, e);
    // `sep` then a run of exactly `len` digits, closed by a boundary: its end.
    let then = |e: usize, sep: &dyn Fn(u8) -> bool, len: usize| {
        next_run(b, e, sep)
            .filter(|r| r.len() == len && bounded(r.end))
            .map(|r| r.end)
    };
    run_matches(b, |run| {
        let e = run.end;
        match (shape, run.len()) {
            (Shape::NoFnr, 11) | (Shape::SePnr, 10 | 12) | (Shape::DkCpr, 10) => {
                bounded(e).then_some(e)
            }
            (Shape::NoFnr, 6) => then(e, &|c| c == b' ', 5),
            (Shape::SePnr, 6 | 8) => then(e, &|c| c == b'-' || c == b'+', 4),
            (Shape::DkCpr, 6) => then(e, &|c| c == b'-', 4),
            (Shape::FiHetu, 6) => {
                let sign = |c: u8| matches!(c, b'-' | b'+' | b'A'..=b'F' | b'U'..=b'Y');
                let check = |c: u8| {
                    c.is_ascii_digit()
                        || matches!(c, b'A'..=b'F' | b'H' | b'J'..=b'N' | b'P' | b'R'..=b'Y')
                };
                let tail = b.get(e + 1..e + 5);
                (b.get(e).is_some_and(|&c| sign(c))
                    && tail.is_some_and(|t| t[..3].iter().all(u8::is_ascii_digit) && check(t[3]))
                    && bounded(e + 5))
                .then_some(e + 5)
            }
            _ => None,
        }
    })
}

/// Appends Norwegian fødselsnummer, D-, H-, synthetic and FH-numbers: candidates that pass
/// [`validate::no_fnr`], and, right after a national-id word (`fnr=`, `"d-nummer": "`,
/// `ssn `), every candidate — the word says what the number is, and a mistyped check digit
/// or a rule not yet published does not make it less of an id.
pub fn find_no_fnr(line: &str, out: &mut Vec<Range<usize>>) {
    keep(
        line,
        candidates(line.as_bytes(), Shape::NoFnr),
        out,
        |l, r| {
            let ok = !in_longer_number(l, &r)
                && (natid_context(l, r.start) || validate::no_fnr(&l[r.clone()]));
            ok.then_some(r)
        },
    );
}

/// Appends validated Swedish personnummer / samordningsnummer.
pub fn find_se_pnr(line: &str, out: &mut Vec<Range<usize>>) {
    keep(
        line,
        candidates(line.as_bytes(), Shape::SePnr),
        out,
        |l, r| {
            let s = &l[r.clone()];
            let compact = !s.contains(['-', '+']);
            let ok = !in_longer_number(l, &r)
                && (!compact || natid_context(l, r.start))
                && validate::se_personnummer(s);
            ok.then_some(r)
        },
    );
}

/// Appends validated Danish CPR numbers.
pub fn find_dk_cpr(line: &str, out: &mut Vec<Range<usize>>) {
    keep(
        line,
        candidates(line.as_bytes(), Shape::DkCpr),
        out,
        |l, r| {
            let s = &l[r.clone()];
            let ok = !in_longer_number(l, &r)
                && (s.len() == 11 || natid_context(l, r.start))
                && validate::dk_cpr(s);
            ok.then_some(r)
        },
    );
}

/// Appends validated Finnish HETUs.
pub fn find_fi_hetu(line: &str, out: &mut Vec<Range<usize>>) {
    keep(
        line,
        candidates(line.as_bytes(), Shape::FiHetu),
        out,
        |l, r| (!in_longer_number(l, &r) && validate::fi_hetu(&l[r.clone()])).then_some(r),
    );
}

#[cfg(test)]
mod tests {
    use super::super::found;
    use super::*;

    #[test]
    fn norwegian() {
        assert_eq!(found(find_no_fnr, "fnr=15076500565 ok"), ["15076500565"]);
        assert_eq!(found(find_no_fnr, "id 150765 00565"), ["150765 00565"]);
        assert!(found(find_no_fnr, "order=15076500566").is_empty());
        assert!(found(find_no_fnr, "ts=2026-15076500565").is_empty());
        // Individual number 812: outside the old century table, issued all the same.
        assert_eq!(found(find_no_fnr, "x 01017581240 y"), ["01017581240"]);
        // Issued under the 2032 rule (k1 remainder 1).
        assert_eq!(found(find_no_fnr, "pasient 30108299939"), ["30108299939"]);
        assert_eq!(found(find_no_fnr, "fh 81212121223"), ["81212121223"]);
    }

    /// After a national-id word every 11-digit candidate counts, check digits or not; the
    /// word has to end right before the value (separators only).
    #[test]
    fn norwegian_context_lowers_the_bar() {
        for line in [
            "fnr=15076500566",
            "fødselsnummer: 15076500566",
            "\"d-nummer\": \"55076500565\"",
            "patient_fnr=12345678901",
            "ssn 150765 00566",
            "nin=99999999999",
            "personnummer=15076500566",
            "national_id: 15076500566",
        ] {
            let want = line
                .rsplit([' ', '=', '"'])
                .find(|s| !s.is_empty())
                .unwrap();
            let got = found(find_no_fnr, line);
            assert_eq!(got.len(), 1, "{line}");
            assert!(got[0].ends_with(want), "{line}");
        }
        for line in [
            "order=15076500566",
            "fnr lookup for order 15076500566",
            "fnr=150765005661",
            "fnr=2026-15076500566",
        ] {
            assert!(found(find_no_fnr, line).is_empty(), "{line}");
        }
    }

    #[test]
    fn swedish() {
        assert_eq!(found(find_se_pnr, "pnr 811228-9874."), ["811228-9874"]);
        assert_eq!(found(find_se_pnr, "x 19811228-9874"), ["19811228-9874"]);
        assert_eq!(found(find_se_pnr, "pnr=198112289874"), ["198112289874"]);
        assert!(found(find_se_pnr, "offset=198112289874").is_empty());
        assert_eq!(
            found(find_se_pnr, "personnummer: 8112289874"),
            ["8112289874"]
        );
        assert!(found(find_se_pnr, "order=8112289874").is_empty());
        assert!(found(find_se_pnr, "x 811228-9875").is_empty());
    }

    #[test]
    fn danish() {
        assert_eq!(found(find_dk_cpr, "cpr 010190-1234"), ["010190-1234"]);
        assert_eq!(found(find_dk_cpr, "cpr=0101901234"), ["0101901234"]);
        assert!(found(find_dk_cpr, "order=0101901234").is_empty());
        assert!(found(find_dk_cpr, "x 320190-1234").is_empty());
    }

    #[test]
    fn finnish() {
        assert_eq!(found(find_fi_hetu, "hetu=131052-308T,"), ["131052-308T"]);
        assert_eq!(found(find_fi_hetu, "x 020502E902X"), ["020502E902X"]);
        assert!(found(find_fi_hetu, "x 131052-308U").is_empty());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(3000))]
        /// The run walk finds exactly what each documented pattern finds.
        #[test]
        fn candidates_are_the_pattern_matches(
            l in "([0-9]{1,13}|[ +_a-]|[ADHTUZ]|é){0,24}"
        ) {
            static PATTERNS: std::sync::LazyLock<Vec<(Shape, regex::Regex)>> =
                std::sync::LazyLock::new(|| {
                    [
                        (Shape::NoFnr, NO_FNR),
                        (Shape::SePnr, SE_PNR),
                        (Shape::DkCpr, DK_CPR),
                        (Shape::FiHetu, FI_HETU),
                    ]
                    .into_iter()
                    .map(|(s, p)| (s, regex::Regex::new(p).unwrap()))
                    .collect()
                });
            for (shape, re) in PATTERNS.iter() {
                let shape = *shape;
                let want: Vec<_> = re.find_iter(&l).map(|m| m.range()).collect();
                proptest::prop_assert_eq!(candidates(l.as_bytes(), shape), want, "{:?} {:?}", shape, l);
            }
        }
    }
}
