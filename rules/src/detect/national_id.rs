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

use std::ops::Range;
use std::sync::OnceLock;

use super::{builtin, in_longer_number, natid_context, regex_find};
use crate::validate;

/// Norwegian fødselsnummer candidates.
pub const NO_FNR: &str = r"(?-u:\b)[0-9]{6} ?[0-9]{5}(?-u:\b)";
/// Swedish personnummer candidates.
pub const SE_PNR: &str = r"(?-u:\b)(?:[0-9]{8}|[0-9]{6})[-+]?[0-9]{4}(?-u:\b)";
/// Danish CPR candidates.
pub const DK_CPR: &str = r"(?-u:\b)[0-9]{6}-?[0-9]{4}(?-u:\b)";
/// Finnish HETU candidates.
pub const FI_HETU: &str = r"(?-u:\b)[0-9]{6}[-+A-FU-Y][0-9]{3}[0-9A-FHJ-NPR-Y](?-u:\b)";

/// Appends validated Norwegian fødselsnummer / D-numbers.
pub fn find_no_fnr(line: &str, out: &mut Vec<Range<usize>>) {
    static RE: OnceLock<regex::Regex> = OnceLock::new();
    regex_find(builtin(&RE, NO_FNR), line, out, |l, r| {
        (!in_longer_number(l, &r) && validate::no_fnr(&l[r.clone()])).then_some(r)
    });
}

/// Appends validated Swedish personnummer / samordningsnummer.
pub fn find_se_pnr(line: &str, out: &mut Vec<Range<usize>>) {
    static RE: OnceLock<regex::Regex> = OnceLock::new();
    regex_find(builtin(&RE, SE_PNR), line, out, |l, r| {
        let s = &l[r.clone()];
        let compact = !s.contains(['-', '+']);
        let ok = !in_longer_number(l, &r)
            && (!compact || natid_context(l, r.start))
            && validate::se_personnummer(s);
        ok.then_some(r)
    });
}

/// Appends validated Danish CPR numbers.
pub fn find_dk_cpr(line: &str, out: &mut Vec<Range<usize>>) {
    static RE: OnceLock<regex::Regex> = OnceLock::new();
    regex_find(builtin(&RE, DK_CPR), line, out, |l, r| {
        let s = &l[r.clone()];
        let ok = !in_longer_number(l, &r)
            && (s.len() == 11 || natid_context(l, r.start))
            && validate::dk_cpr(s);
        ok.then_some(r)
    });
}

/// Appends validated Finnish HETUs.
pub fn find_fi_hetu(line: &str, out: &mut Vec<Range<usize>>) {
    static RE: OnceLock<regex::Regex> = OnceLock::new();
    regex_find(builtin(&RE, FI_HETU), line, out, |l, r| {
        (!in_longer_number(l, &r) && validate::fi_hetu(&l[r.clone()])).then_some(r)
    });
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
}
