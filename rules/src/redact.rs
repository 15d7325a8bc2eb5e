//! The compiled rule set: one `RegexSet` prefilter pass decides whether a line needs work at
//! all; only the rules that matched then search for their spans, validators drop candidates
//! whose check digits fail, and overlapping spans are resolved leftmost-longest.
//!
//! The `regex` crate guarantees linear-time matching (finite automata, no backtracking), so
//! no rule, however written, can make a line take exponential time; the compiled-size limit
//! bounds the memory and per-byte cost of each pattern.

use std::borrow::Cow;
use std::collections::BTreeMap;

use regex::{Regex, RegexBuilder, RegexSet, RegexSetBuilder};

use crate::pack::{Action, Matcher, RuleSet, MAX_REGEX_COMPILED_BYTES};

/// Per-rule redaction counts, indexed like [`Redactor::rule_names`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts(Vec<u64>);

impl Counts {
    /// Adds another set of counts of the same redactor.
    pub fn add(&mut self, other: &Counts) {
        if self.0.len() < other.0.len() {
            self.0.resize(other.0.len(), 0);
        }
        for (a, b) in self.0.iter_mut().zip(&other.0) {
            *a += b;
        }
    }

    /// Total redactions.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// Non-zero counts by rule name, for the `Fjord-Redactions` header and the ledger.
    pub fn by_name(&self, redactor: &Redactor) -> BTreeMap<String, u64> {
        self.0
            .iter()
            .enumerate()
            .filter(|(_, &n)| n > 0)
            .filter_map(|(i, &n)| redactor.rules.get(i).map(|r| (r.name.clone(), n)))
            .collect()
    }

    fn bump(&mut self, i: usize) {
        if self.0.len() <= i {
            self.0.resize(i + 1, 0);
        }
        self.0[i] += 1;
    }
}

struct Compiled {
    name: String,
    regex: Regex,
    validator: Option<fn(&str) -> bool>,
    action: Action,
}

/// A compiled, immutable rule set. Cheap to share behind an `Arc`.
pub struct Redactor {
    rules: Vec<Compiled>,
    prefilter: RegexSet,
    version: String,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redactor")
            .field("rules", &self.rule_names())
            .field("version", &self.version)
            .finish()
    }
}

/// Compiles a custom pattern under the size limit. The error says what is wrong with the
/// pattern (the pattern is configuration, not log content).
pub fn compile_pattern(p: &str) -> Result<Regex, String> {
    RegexBuilder::new(p)
        .size_limit(MAX_REGEX_COMPILED_BYTES)
        .build()
        .map_err(|e| match e {
            regex::Error::CompiledTooBig(limit) => {
                format!("pattern compiles to more than {limit} bytes; simplify it or split it into several rules")
            }
            other => format!("invalid regex: {}", one_line(&other.to_string())),
        })
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl Redactor {
    /// Compiles a resolved rule set.
    /// Compiles a rule set. The key is for `hash` rules, which the packs do not use yet.
    pub fn new(set: &RuleSet, _key: Option<&[u8]>) -> Result<Redactor, String> {
        Self::new0(set)
    }

    /// Redacts a line; `None` is reserved for rules that drop the whole line.
    pub fn apply<'a>(&self, line: &'a str, counts: &mut Counts) -> Option<Cow<'a, str>> {
        Some(self.redact(line, counts))
    }
    fn new0(set: &RuleSet) -> Result<Redactor, String> {
        let mut rules = Vec::with_capacity(set.rules.len());
        let mut patterns = Vec::with_capacity(set.rules.len());
        for r in &set.rules {
            let (pattern, validator) = match &r.matcher {
                Matcher::Detector(d) => (d.pattern().to_owned(), d.validator()),
                Matcher::Pattern(p) => (p.clone(), None),
            };
            let regex = compile_pattern(&pattern).map_err(|e| format!("rule {:?}: {e}", r.name))?;
            patterns.push(pattern);
            rules.push(Compiled {
                name: r.name.clone(),
                regex,
                validator,
                action: r.action,
            });
        }
        let prefilter = RegexSetBuilder::new(&patterns)
            .size_limit(MAX_REGEX_COMPILED_BYTES * patterns.len().max(1))
            .build()
            .map_err(|e| format!("rule set: {}", one_line(&e.to_string())))?;
        Ok(Redactor {
            rules,
            prefilter,
            version: set.version(),
        })
    }

    /// The rule-set version hash that travels with every batch.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Rule names in order; index `i` matches index `i` of [`Counts`].
    pub fn rule_names(&self) -> Vec<&str> {
        self.rules.iter().map(|r| r.name.as_str()).collect()
    }

    /// Scrubs one line. Returns the line unchanged (borrowed) when no rule fires.
    pub fn redact<'a>(&self, line: &'a str, counts: &mut Counts) -> Cow<'a, str> {
        let hits = self.prefilter.matches(line);
        if !hits.matched_any() {
            return Cow::Borrowed(line);
        }
        // (start, end, rule index) of every validated match.
        let mut spans: Vec<(usize, usize, usize)> = Vec::new();
        for i in hits.iter() {
            let rule = &self.rules[i];
            for m in rule.regex.find_iter(line) {
                if rule.validator.is_none_or(|v| v(m.as_str())) {
                    spans.push((m.start(), m.end(), i));
                }
            }
        }
        if spans.is_empty() {
            return Cow::Borrowed(line);
        }
        // Leftmost first; at equal start the longer span; ties go to the earlier rule.
        spans.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)).then(a.2.cmp(&b.2)));
        let mut out = String::with_capacity(line.len());
        let mut pos = 0;
        for (start, end, i) in spans {
            if start < pos {
                continue; // overlaps a span already replaced
            }
            out.push_str(&line[pos..start]);
            let rule = &self.rules[i];
            match rule.action {
                Action::Mask => {
                    out.push_str("[REDACTED:");
                    out.push_str(&rule.name);
                    out.push(']');
                }
            }
            counts.bump(i);
            pos = end;
        }
        out.push_str(&line[pos..]);
        Cow::Owned(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pack::resolve;

    fn default_redactor() -> Redactor {
        Redactor::new(&resolve(&[]).unwrap(), None).unwrap()
    }

    #[test]
    fn masks_email_and_valid_cards_only() {
        let r = default_redactor();
        let mut c = Counts::default();
        let cases = [
            (
                "user anna.berg@example.se logged in",
                "user [REDACTED:email] logged in",
            ),
            ("card=4111 1111 1111 1111 ok", "card=[REDACTED:card] ok"),
            ("card=4111-1111-1111-1111 ok", "card=[REDACTED:card] ok"),
            (
                "order=4111111111111112 amount=100",
                "order=4111111111111112 amount=100",
            ),
            (
                "trace=4bf92f3577b34da6a3ce929d0e0e4736",
                "trace=4bf92f3577b34da6a3ce929d0e0e4736",
            ),
            ("nothing here", "nothing here"),
            (
                "a@b.co and 5555555555554444",
                "[REDACTED:email] and [REDACTED:card]",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(r.redact(input, &mut c), want, "{input}");
        }
        let by = c.by_name(&r);
        assert_eq!(by.get("email"), Some(&2));
        assert_eq!(by.get("card"), Some(&3));
    }

    #[test]
    fn clean_lines_are_borrowed() {
        let r = default_redactor();
        let mut c = Counts::default();
        assert!(matches!(
            r.redact("GET /health 200 1.2ms", &mut c),
            Cow::Borrowed(_)
        ));
        assert_eq!(c.total(), 0);
    }

    #[test]
    fn shipped_examples_hold() {
        let set = resolve(&[]).unwrap();
        let r = Redactor::new(&set, None).unwrap();
        for rule in &set.rules {
            for ex in &rule.examples {
                let mut c = Counts::default();
                assert_eq!(r.redact(&ex.input, &mut c), ex.expect, "rule {}", rule.name);
            }
        }
    }

    #[test]
    fn oversized_pattern_is_refused() {
        let err = compile_pattern(r"\w{1000}\w{1000}\w{1000}").unwrap_err();
        assert!(err.contains("compiles to more than"), "{err}");
    }
}
