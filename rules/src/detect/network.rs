//! IP addresses, parsed with `std::net`. Under the GDPR an IP address that can be tied to a
//! person is personal data, and a log line cannot tell whose address it is, so every
//! routable-looking address is scrubbed, private ranges included. Not scrubbed, because
//! they identify nobody: unspecified (`0.0.0.0`, `::`), loopback (`127.0.0.0/8`, `::1`),
//! broadcast and netmasks (`255.255.255.0`).
//!
//! Version strings are not addresses: a dotted quad directly after `version`, `ver`, `v`,
//! `release`, `build` or `firmware` (with `=`, `:` or a space), after a single `/`
//! (`Chrome/120.0.0.0`, but not `http://10.1.2.3`), or glued to more dotted numbers
//! (`1.2.3.4.5`) is left alone. `v1.2.3.4` never matches (no word boundary after `v`).

use std::net::{Ipv4Addr, Ipv6Addr};
use std::ops::Range;

use super::{is_word, keep};

/// IPv4 candidates: four dot-separated groups of 1–3 digits. [`ipv4_candidates`] finds
/// exactly what this pattern finds, without a regex (a third of access-log lines start with
/// an address, so this runs often); the pattern documents it and is the test oracle.
pub const IPV4: &str = r"(?-u:\b)[0-9]{1,3}(?:\.[0-9]{1,3}){3}(?-u:\b)";

/// The matches of [`IPV4`] in `b`, leftmost first and not overlapping. A group is a whole
/// digit run (a run of four digits can end no group: a digit would follow, and in the last
/// group there would be no word boundary), so a candidate is four runs of 1–3 digits joined
/// by single dots, not glued to a word byte on either side.
///
/// Only candidates that start at or after `window.start` and whose first dot lies before
/// `window.end` are looked for: with [`Features`](super::Features)' window that is all of
/// them, and the dots elsewhere in the line (timestamps, versions) are never visited.
fn ipv4_candidates(b: &[u8], window: Range<usize>) -> impl Iterator<Item = Range<usize>> + '_ {
    // The end of the 1–3 digit group starting at `from`, if there is one.
    let group = move |from: usize| {
        let n = b[from..]
            .iter()
            .take(4)
            .take_while(|c| c.is_ascii_digit())
            .count();
        (1..=3).contains(&n).then_some(from + n)
    };
    // `at`: where to look for the next dot; `floor`: where the previous match ended (a
    // match never starts before it).
    let (mut at, mut floor) = (window.start, window.start);
    let stop = window.end.min(b.len());
    std::iter::from_fn(move || {
        while let Some(k) = b.get(at..stop).and_then(|w| memchr::memchr(b'.', w)) {
            let dot = at + k;
            at = dot + 1;
            // The first group is the digit run that ends at this dot.
            let digits = b[floor..dot]
                .iter()
                .rev()
                .take(4)
                .take_while(|c| c.is_ascii_digit())
                .count();
            let start = dot - digits;
            if !(1..=3).contains(&digits) || (start > 0 && is_word(b[start - 1])) {
                continue;
            }
            let mut end = dot;
            let mut groups = 1;
            while groups < 4 && b.get(end) == Some(&b'.') {
                let Some(e) = group(end + 1) else { break };
                end = e;
                groups += 1;
            }
            if groups == 4 && !b.get(end).copied().is_some_and(is_word) {
                (at, floor) = (end, end);
                return Some(start..end);
            }
        }
        at = b.len();
        None
    })
}

/// Appends IPv4 addresses.
pub fn find_ipv4(line: &str, out: &mut Vec<Range<usize>>) {
    find_ipv4_in(line, 0..line.len(), out);
}

/// Appends the IPv4 addresses that lie in `window` (see [`ipv4_candidates`]).
pub(crate) fn find_ipv4_in(line: &str, window: Range<usize>, out: &mut Vec<Range<usize>>) {
    keep(
        line,
        ipv4_candidates(line.as_bytes(), window),
        out,
        refine_ipv4,
    );
}

fn refine_ipv4(l: &str, r: Range<usize>) -> Option<Range<usize>> {
    {
        let b = l.as_bytes();
        let before = r.start.checked_sub(1).map(|i| b[i]);
        let after = b.get(r.end).copied();
        let after2 = b.get(r.end + 1).copied();
        if before == Some(b'.')
            || (after == Some(b'.') && after2.is_some_and(|c| c.is_ascii_digit()))
            || version_context(l, r.start)
        {
            return None;
        }
        let ip = ipv4_value(&b[r.clone()])?;
        let bits = u32::from(ip);
        let netmask = ip.octets()[0] == 255 && bits.leading_ones() + bits.trailing_zeros() == 32;
        let boring = ip.is_unspecified() || ip.is_loopback() || ip.is_broadcast() || netmask;
        (!boring).then_some(r)
    }
}

/// The address a candidate (four dot-joined groups of 1–3 digits) spells, by the rules of
/// `Ipv4Addr`'s parser, which this replaces on the hot path: each group at most 255, and
/// no leading zero (`010` may be meant as octal). `None` otherwise.
fn ipv4_value(s: &[u8]) -> Option<Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut groups = s.split(|&c| c == b'.');
    for octet in &mut octets {
        let g = groups.next()?;
        if g.is_empty() || g.len() > 3 || (g.len() > 1 && g[0] == b'0') {
            return None;
        }
        let mut v = 0u16;
        for &c in g {
            if !c.is_ascii_digit() {
                return None;
            }
            v = v * 10 + u16::from(c - b'0');
        }
        *octet = u8::try_from(v).ok()?;
    }
    groups.next().is_none().then_some(Ipv4Addr::from(octets))
}

/// Words after which a dotted quad is a version, not an address.
const VERSION_WORDS: &[&[u8]] = &[b"version", b"ver", b"v", b"release", b"build", b"firmware"];

fn version_context(line: &str, start: usize) -> bool {
    let b = line.as_bytes();
    if start == 0 {
        return false;
    }
    match b[start - 1] {
        b'/' => return start < 2 || b[start - 2] != b'/',
        b'=' | b':' | b' ' => {}
        _ => return false,
    }
    let word = word_before(&b[..start - 1]);
    // The word, or its last `_`-separated part, is a version word (in any case); compared
    // in place, as this runs for every dotted quad after `=`, `:` or a space.
    VERSION_WORDS.iter().any(|w| {
        let Some(split) = word.len().checked_sub(w.len()) else {
            return false;
        };
        let (head, tail) = word.split_at(split);
        tail.eq_ignore_ascii_case(w) && (head.is_empty() || head.ends_with(b"_"))
    })
}

/// The word (letters and `_`) that `b` ends with, after any spaces, `=` and `:`.
fn word_before(b: &[u8]) -> &[u8] {
    let mut end = b.len();
    while end > 0 && matches!(b[end - 1], b' ' | b'=' | b':') {
        end -= 1;
    }
    let word_start = b[..end]
        .iter()
        .rposition(|&c| !c.is_ascii_alphabetic() && c != b'_')
        .map_or(0, |i| i + 1);
    &b[word_start..end]
}

/// Appends IPv6 addresses: maximal runs of hex digits, `:` and `.` with at least two
/// colons, not glued to a word, that `std::net::Ipv6Addr` accepts.
pub fn find_ipv6(line: &str, out: &mut Vec<Range<usize>>) {
    let b = line.as_bytes();
    let is_run = |c: u8| c.is_ascii_hexdigit() || c == b':' || c == b'.';
    let mut from = 0;
    while let Some(p) = memchr::memchr(b':', &b[from..]) {
        let colon = from + p;
        let mut start = colon;
        while start > 0 && is_run(b[start - 1]) {
            start -= 1;
        }
        let mut end = colon;
        while end < b.len() && is_run(b[end]) {
            end += 1;
        }
        from = end.max(colon + 1);
        // A sentence's full stop is not part of the address.
        let mut e = end;
        while e > start && b[e - 1] == b'.' {
            e -= 1;
        }
        let glued =
            (start > 0 && is_word(b[start - 1])) || b.get(end).copied().is_some_and(is_word);
        if glued || b[start..e].iter().filter(|&&c| c == b':').count() < 2 {
            continue;
        }
        let Ok(ip) = line[start..e].parse::<Ipv6Addr>() else {
            continue;
        };
        if !ip.is_unspecified() && !ip.is_loopback() {
            out.push(start..e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::found;
    use super::*;

    #[test]
    fn v4() {
        let cases: &[(&str, &[&str])] = &[
            ("client 10.1.2.3 GET", &["10.1.2.3"]),
            ("http://192.168.1.20:8080/x", &["192.168.1.20"]),
            ("127.0.0.1 0.0.0.0 255.255.255.0", &[]),
            ("version=1.2.3.4 ver: 2.0.0.1", &[]),
            ("Chrome/120.0.0.0 v1.2.3.4 app_version=1.0.0.7", &[]),
            ("1.2.3.4.5 and 256.1.1.1", &[]),
            ("host=8.8.8.8,", &["8.8.8.8"]),
            (
                "10.0.3.7 - - [ts] 1.2.3.4.5.6.7.8 9.9.9.9",
                &["10.0.3.7", "9.9.9.9"],
            ),
            ("x1.2.3.4 1.2.3.4_ 1234.5.6.7.8 é1.2.3.4", &["1.2.3.4"]),
            // Loopback stays; documentation ranges (RFC 5737) are scrubbed like any other
            // address: a log line cannot prove an address is only an example.
            ("127.8.9.10 192.0.2.7", &["192.0.2.7"]),
            (
                "198.51.100.1 203.0.113.250",
                &["198.51.100.1", "203.0.113.250"],
            ),
        ];
        for (line, want) in cases {
            assert_eq!(found(find_ipv4, line), *want, "{line}");
        }
    }

    #[test]
    fn v6() {
        let cases: &[(&str, &[&str])] = &[
            ("from 2001:db8::1 ok", &["2001:db8::1"]),
            ("mapped ::ffff:192.0.2.1 ok", &["::ffff:192.0.2.1"]),
            (
                "[fe80::1ff:fe23:4567:890a]:443",
                &["fe80::1ff:fe23:4567:890a"],
            ),
            (
                "addr 2001:0db8:85a3:0000:0000:8a2e:0370:7334.",
                &["2001:0db8:85a3:0000:0000:8a2e:0370:7334"],
            ),
            ("::ffff:10.1.2.3", &["::ffff:10.1.2.3"]),
            ("at 10:00:00.123 ::1 mac 00:1a:2b:3c:4d:5e", &[]),
            ("std::net::Ipv6Addr", &[]),
        ];
        for (line, want) in cases {
            assert_eq!(found(find_ipv6, line), *want, "{line}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4000))]
        /// The in-place version-word test is the lower-cased word compare it replaced.
        #[test]
        fn version_context_is_the_lower_case_word_compare(
            l in "([a-zA-Z_]{0,10}|Version|FIRMWARE|x_Ver|_v|__build)[ =:]{1,2}"
        ) {
            // The definition, with the allocations the hot path avoids.
            let word = word_before(l.as_bytes()).to_ascii_lowercase();
            let want = VERSION_WORDS
                .iter()
                .any(|w| word == *w || word.ends_with(&[b"_", *w].concat()));
            let line = format!("{l}1.2.3.4");
            proptest::prop_assert_eq!(version_context(&line, l.len()), want, "{:?}", l);
        }

        /// The hand-written octet parse accepts and returns exactly what `Ipv4Addr`'s
        /// parser does, on candidate-shaped and other dotted strings.
        #[test]
        fn ipv4_value_is_the_std_parse(s in "([0-9]{0,4}[.]?){1,5}|0[0-9]{0,2}([.][0-9]{1,3}){3}") {
            proptest::prop_assert_eq!(ipv4_value(s.as_bytes()), s.parse::<Ipv4Addr>().ok(), "{:?}", s);
        }

        /// The hand-written candidate scan finds exactly what the documented pattern finds.
        #[test]
        fn ipv4_candidates_are_the_pattern_matches(
            l in "([0-9]{1,4}|[.]|[ a_/=:x-]|é){0,40}"
        ) {
            static RE: std::sync::LazyLock<regex::Regex> =
                std::sync::LazyLock::new(|| regex::Regex::new(IPV4).unwrap());
            let re = &*RE;
            let want: Vec<_> = re.find_iter(&l).map(|m| m.range()).collect();
            let got: Vec<_> = ipv4_candidates(l.as_bytes(), 0..l.len()).collect();
            proptest::prop_assert_eq!(&got, &want, "{:?}", l);
            // The features' window holds every candidate: searching only there finds the same.
            let f = super::super::Features::of(&l);
            let window = if f.0 & super::super::features::F_DOTTED4 != 0 {
                f.1.window(l.len())
            } else {
                0..0
            };
            let narrowed: Vec<_> = ipv4_candidates(l.as_bytes(), window).collect();
            proptest::prop_assert_eq!(narrowed, want, "{:?}", l);
        }
    }
}
