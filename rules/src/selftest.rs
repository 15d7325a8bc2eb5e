//! Rule self-tests and explanations, the library side of `fjord-agent rules test|explain`.
//!
//! Every example of the effective rule set runs through the *whole* compiled set (so an
//! example also proves that no other rule interferes). Hash rules are compiled with
//! [`SELFTEST_KEY`] unless a real key is given, and an expected `[HASH:<rule>:*]` matches
//! any pseudonym of that rule, so examples do not depend on a team's secret key.
//!
//! Output here is for the rule author's terminal: it shows example inputs and, for
//! `explain`, the author's own input lines. None of it goes to tracing logs.

use std::fmt::Write as _;
use std::sync::OnceLock;

use regex::Regex;

use crate::pack::{Example, Expect, RuleSet};
use crate::redact::{Counts, Explanation, Redactor, RedactorError};

/// The public, well-known key self-tests hash with when no real key is given. Never use it
/// for shipping logs: anyone can recompute its pseudonyms.
pub const SELFTEST_KEY: &[u8] = b"fjord-rules-selftest-key-not-secret";

/// One example that did not hold.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The rule that carries the example.
    pub rule: String,
    /// `file:line:col` of that rule.
    pub location: String,
    /// 1-based number of the example within the rule.
    pub index: usize,
    /// The example's input line.
    pub input: String,
    /// What the example expects.
    pub expected: Expect,
    /// What the rule set produced (`None` = dropped).
    pub got: Option<String>,
}

/// The outcome of running every example.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Examples that held.
    pub passed: usize,
    /// Examples that did not.
    pub failures: Vec<Failure>,
}

impl Report {
    /// Whether every example held.
    pub fn ok(&self) -> bool {
        self.failures.is_empty()
    }
}

/// Compiles `set` (with `hash_key`, else [`SELFTEST_KEY`]) and runs every example.
pub fn run_examples(set: &RuleSet, hash_key: Option<&[u8]>) -> Result<Report, RedactorError> {
    let redactor = Redactor::new(set, Some(hash_key.unwrap_or(SELFTEST_KEY)))?;
    let mut report = Report::default();
    let rules = set
        .rules
        .iter()
        .map(|r| (&r.name, &r.location, &r.examples));
    let fields = set
        .fields
        .iter()
        .map(|f| (&f.name, &f.location, &f.examples));
    for (name, location, examples) in rules.chain(fields) {
        for (i, ex) in examples.iter().enumerate() {
            match check(&redactor, ex) {
                Ok(()) => report.passed += 1,
                Err(got) => report.failures.push(Failure {
                    rule: name.clone(),
                    location: location.clone(),
                    index: i + 1,
                    input: ex.input.clone(),
                    expected: ex.expect.clone(),
                    got,
                }),
            }
        }
    }
    Ok(report)
}

/// Runs one example; on failure returns what the rule set produced.
fn check(redactor: &Redactor, ex: &Example) -> Result<(), Option<String>> {
    let got = redactor
        .apply(&ex.input, &mut Counts::default())
        .map(|c| c.into_owned());
    match (&ex.expect, &got) {
        (Expect::Dropped, None) => Ok(()),
        (Expect::Line(want), Some(g)) if *want == normalise_hashes(want, g) => Ok(()),
        _ => Err(got),
    }
}

/// Replaces pseudonyms in `got` by `*` when `want` uses the `[HASH:<rule>:*]` wildcard.
fn normalise_hashes(want: &str, got: &str) -> String {
    static RE: OnceLock<Regex> = OnceLock::new();
    if !want.contains(":*]") {
        return got.to_owned();
    }
    let re = RE.get_or_init(
        || match Regex::new(r"\[HASH:([A-Za-z0-9_.*-]+):[0-9a-f]+\]") {
            Ok(r) => r,
            Err(e) => panic!("built-in pattern does not compile: {e}"),
        },
    );
    re.replace_all(got, "[HASH:$1:*]").into_owned()
}

impl Failure {
    /// A readable report: rule, where it is defined, input, expected, got, and a caret under
    /// the first character that differs.
    pub fn diff(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "FAIL rule {:?} ({}) example {}",
            self.rule, self.location, self.index
        );
        let _ = writeln!(s, "  input:    {}", self.input);
        let want = match &self.expected {
            Expect::Line(l) => l.clone(),
            Expect::Dropped => "(line dropped)".to_owned(),
        };
        let got = self
            .got
            .clone()
            .unwrap_or_else(|| "(line dropped)".to_owned());
        let got_cmp = normalise_hashes(&want, &got);
        let _ = writeln!(s, "  expected: {want}");
        let _ = writeln!(s, "  got:      {got_cmp}");
        let at = want
            .chars()
            .zip(got_cmp.chars())
            .take_while(|(a, b)| a == b)
            .count();
        let _ = writeln!(
            s,
            "            {}^ first difference at character {}",
            " ".repeat(at),
            at + 1
        );
        s
    }
}

/// `explain` output for one input line: the line, a marker row under each plain-text
/// match, one row per redaction (rule, action, byte range or JSON field), and the result.
pub fn explain_report(redactor: &Redactor, n: usize, line: &str) -> String {
    let e: Explanation = redactor.explain(line);
    let mut s = String::new();
    let _ = writeln!(s, "line {n}: {line}");
    if e.hits.is_empty() {
        let _ = writeln!(s, "  no rule fired");
    }
    let prefix = format!("line {n}: ").len();
    for h in &e.hits {
        match &h.field {
            None => {
                let col = line.get(..h.range.start).map_or(0, |p| p.chars().count());
                let width = line
                    .get(h.range.clone())
                    .map_or(1, |m| m.chars().count().max(1));
                let _ = writeln!(
                    s,
                    "{}{} {} ({}) bytes {}..{}",
                    " ".repeat(prefix + col),
                    "^".repeat(width),
                    h.rule,
                    h.action,
                    h.range.start,
                    h.range.end
                );
            }
            Some(path) if h.range.is_empty() => {
                let _ = writeln!(s, "  field {path}: {} ({}) whole value", h.rule, h.action);
            }
            Some(path) => {
                let _ = writeln!(
                    s,
                    "  field {path}: {} ({}) bytes {}..{} of the value",
                    h.rule, h.action, h.range.start, h.range.end
                );
            }
        }
    }
    for (r, rule) in redactor.allowed_in(line) {
        let col = line.get(..r.start).map_or(0, |p| p.chars().count());
        let width = line.get(r.clone()).map_or(1, |m| m.chars().count().max(1));
        let _ = writeln!(
            s,
            "{}{} {rule}: kept by an allow entry, bytes {}..{}",
            " ".repeat(prefix + col),
            "-".repeat(width),
            r.start,
            r.end
        );
    }
    match &e.output {
        Some(out) => {
            let _ = writeln!(s, "  => {out}");
        }
        None => {
            let _ = writeln!(s, "  => (line dropped)");
        }
    }
    s
}

/// The rule set's `[[allow]]` entries, one per line (`allow <file:line:col>: value "…" for
/// no-fnr: <reason>`), for the head of `rules explain` and `rules check`; empty when there
/// are none. These are the rule files' own words.
pub fn allow_report(redactor: &Redactor) -> String {
    let mut s = String::new();
    for (location, text) in redactor.allow_entries() {
        let _ = writeln!(s, "allow {location}: {text}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pack::resolve;

    #[test]
    fn explain_shows_allow_entries_and_what_they_kept() {
        let team =
            "[[allow]]\nrules = [\"no-fnr\"]\nvalue = \"15076500565\"\nreason = \"test person\"\n";
        let set = resolve(&[("team.toml", team)]).unwrap();
        let r = Redactor::new(&set, None).unwrap();
        assert_eq!(
            allow_report(&r),
            "allow team.toml:2:9: value \"15076500565\" for no-fnr: test person\n"
        );
        let report = explain_report(&r, 1, "fnr 15076500565 and 30108299939");
        assert!(
            report.contains("----------- no-fnr: kept by an allow entry, bytes 4..15"),
            "{report}"
        );
        assert!(
            report.contains("=> fnr 15076500565 and [REDACTED:no-fnr]"),
            "{report}"
        );
    }

    #[test]
    fn shipped_examples_hold() {
        let set = resolve(&[]).unwrap();
        let report = run_examples(&set, None).unwrap();
        let diffs: Vec<String> = report.failures.iter().map(Failure::diff).collect();
        assert!(report.ok(), "{}", diffs.join("\n"));
        assert!(
            report.passed >= 2 * set.rules.len(),
            "positive and negative per rule"
        );
    }

    #[test]
    fn every_shipped_rule_has_positive_and_negative_examples() {
        let set = resolve(&[]).unwrap();
        for r in &set.rules {
            let changed = r
                .examples
                .iter()
                .filter(|e| e.expect != Expect::Line(e.input.clone()))
                .count();
            let unchanged = r.examples.len() - changed;
            assert!(changed >= 1 && unchanged >= 1, "rule {}", r.name);
        }
    }

    #[test]
    fn failing_example_gives_a_diff() {
        let team = "[[rule]]\nname = \"x\"\npattern = 'secret-[0-9]+'\n[[rule.example]]\ninput = \"a secret-1 b\"\nexpect = \"a secret-1 b\"\n";
        let set = resolve(&[("t.toml", team)]).unwrap();
        let report = run_examples(&set, None).unwrap();
        assert_eq!(report.failures.len(), 1);
        let d = report.failures[0].diff();
        assert!(d.contains("FAIL rule \"x\" (t.toml:2:8) example 1"), "{d}");
        assert!(d.contains("got:      a [REDACTED:x] b"), "{d}");
        assert!(d.contains("^ first difference at character 3"), "{d}");
    }

    #[test]
    fn hash_wildcard_and_drop_expectations() {
        let team = r#"
[[rule]]
name = "cust"
pattern = 'cust-[0-9]+'
action = "hash"
[[rule.example]]
input = "a cust-1"
expect = "a [HASH:cust:*]"
[[rule]]
name = "noise"
pattern = '^DEBUG'
action = "drop_line"
[[rule.example]]
input = "DEBUG x"
expect_drop = true
"#;
        let set = resolve(&[("t.toml", team)]).unwrap();
        let report = run_examples(&set, None).unwrap();
        assert!(report.ok(), "{:?}", report.failures);
    }

    #[test]
    fn explain_marks_the_match() {
        let r = Redactor::new(&resolve(&[]).unwrap(), None).unwrap();
        let out = explain_report(&r, 1, "to a@b.co");
        assert!(out.contains("line 1: to a@b.co\n"), "{out}");
        assert!(
            out.contains("           ^^^^^^ email (mask) bytes 3..9"),
            "{out}"
        );
        assert!(out.contains("=> to [REDACTED:email]"), "{out}");
    }
}
