//! Rule packs: the TOML format, `extends`, `disable` and `locked`, and resolution of the
//! effective rule set.
//!
//! ```toml
//! name = "payments"
//! extends = ["baseline", "eu-pii"]     # shipped packs; the default when omitted
//! disable = []                         # rule names to switch off; locked ones cannot be
//!
//! [[rule]]
//! name = "customer-id"
//! pattern = 'customer=\d+'             # or: detector = "email"
//! action = "mask"                      # → [REDACTED:customer-id]
//! [[rule.example]]
//! input = "customer=4711 paid"
//! expect = "[REDACTED:customer-id] paid"
//! ```
//!
//! Errors name the file and, where the problem sits in the file, its line and column.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};
use thiserror::Error;
use toml::Spanned;

use crate::detect::Detector;

/// Shipped packs, embedded in the binary so the agent needs no files to scrub by default.
pub const BUILTIN_PACKS: &[(&str, &str)] = &[
    ("baseline", include_str!("../packs/baseline.toml")),
    ("eu-pii", include_str!("../packs/eu-pii.toml")),
];

/// Packs applied when no rule file is configured: scrubbing is on by default.
pub const DEFAULT_PACKS: &[&str] = &["baseline", "eu-pii"];

/// Largest compiled size of one custom regex. Bigger patterns are refused, so a hostile or
/// careless rule cannot make every line expensive.
pub const MAX_REGEX_COMPILED_BYTES: usize = 1024 * 1024;

/// An error in a rule file. `location` is `file:line:col` (or just the file).
#[derive(Debug, Error)]
pub enum RulesError {
    #[error("{location}: {reason}")]
    Invalid { location: String, reason: String },
    #[error("{path}: cannot read rule file: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What a rule does with a match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Replace the match with `[REDACTED:<rule name>]`.
    Mask,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Mask => f.write_str("mask"),
        }
    }
}

/// What a rule looks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Matcher {
    Detector(Detector),
    Pattern(String),
}

/// A rule of the effective set, resolved and checked.
#[derive(Debug, Clone)]
pub struct RuleSpec {
    pub name: String,
    pub matcher: Matcher,
    pub action: Action,
    pub locked: bool,
    /// Where the rule came from: `pack:baseline` or a file path.
    pub source: String,
    pub examples: Vec<Example>,
}

/// A self-test example: the rule set turns `input` into `expect`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Example {
    pub input: String,
    pub expect: String,
}

/// The effective rule set: every rule in the order it applies, and where each came from.
#[derive(Debug, Clone)]
pub struct RuleSet {
    pub rules: Vec<RuleSpec>,
    /// The packs and files that made it, for messages and audit.
    pub sources: Vec<String>,
}

impl RuleSet {
    /// A stable hash of the effective rules (name, matcher, action), 16 hex digits. Two
    /// agents with the same rules report the same version; any change gives a new one.
    pub fn version(&self) -> String {
        let mut h = Sha256::new();
        for r in &self.rules {
            let m = match &r.matcher {
                Matcher::Detector(d) => format!("detector:{}", d.name()),
                Matcher::Pattern(p) => format!("pattern:{p}"),
            };
            for part in [r.name.as_str(), m.as_str(), &r.action.to_string()] {
                h.update((part.len() as u64).to_le_bytes());
                h.update(part.as_bytes());
            }
        }
        hex::encode(&h.finalize()[..8])
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PackFile {
    #[allow(dead_code)]
    name: Option<String>,
    #[allow(dead_code)]
    description: Option<String>,
    extends: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    disable: Vec<Spanned<String>>,
    #[serde(default, rename = "rule")]
    rules: Vec<RuleFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    name: Spanned<String>,
    detector: Option<Spanned<String>>,
    pattern: Option<Spanned<String>>,
    #[serde(default = "default_action")]
    action: Action,
    #[serde(default)]
    locked: bool,
    #[allow(dead_code)]
    description: Option<String>,
    #[serde(default, rename = "example")]
    examples: Vec<Example>,
}

fn default_action() -> Action {
    Action::Mask
}

/// A parsed file with its text, so spans can be turned into line:col.
struct Source<'a> {
    label: String,
    text: &'a str,
}

impl Source<'_> {
    fn location(&self, span: std::ops::Range<usize>) -> String {
        let (line, col) = line_col(self.text, span.start);
        format!("{}:{line}:{col}", self.label)
    }
    fn at(&self, span: std::ops::Range<usize>, reason: impl Into<String>) -> RulesError {
        RulesError::Invalid {
            location: self.location(span),
            reason: reason.into(),
        }
    }
    fn whole(&self, reason: impl Into<String>) -> RulesError {
        RulesError::Invalid {
            location: self.label.clone(),
            reason: reason.into(),
        }
    }
}

/// 1-based line and column (in characters) of byte offset `pos` in `text`.
pub fn line_col(text: &str, pos: usize) -> (usize, usize) {
    let pos = pos.min(text.len());
    let before = &text[..text.floor_char_boundary_compat(pos)];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

trait FloorCharBoundary {
    fn floor_char_boundary_compat(&self, i: usize) -> usize;
}

impl FloorCharBoundary for str {
    fn floor_char_boundary_compat(&self, mut i: usize) -> usize {
        while i > 0 && !self.is_char_boundary(i) {
            i -= 1;
        }
        i
    }
}

fn parse<'a>(src: &Source<'a>) -> Result<PackFile, RulesError> {
    toml::from_str::<PackFile>(src.text).map_err(|e| match e.span() {
        Some(span) => src.at(span, e.message().trim_end().to_owned()),
        None => src.whole(e.message().trim_end().to_owned()),
    })
}

/// Loads the effective rule set from `dir`: every `*.toml` file in it (sorted by name) is a
/// team file. With no directory, or a directory without rule files, the default packs apply.
pub fn load_rule_set(dir: Option<&Path>) -> Result<RuleSet, RulesError> {
    let mut files = Vec::new();
    if let Some(dir) = dir {
        let rd = std::fs::read_dir(dir).map_err(|source| RulesError::Io {
            path: dir.to_owned(),
            source,
        })?;
        for entry in rd {
            let entry = entry.map_err(|source| RulesError::Io {
                path: dir.to_owned(),
                source,
            })?;
            let path = entry.path();
            // Skip Kubernetes ConfigMap internals (`..data`, `..2024_…`) and hidden files;
            // the visible names are symlinks into the current version.
            let hidden = path
                .file_name()
                .and_then(|n| n.to_str())
                .is_none_or(|n| n.starts_with('.'));
            if !hidden && path.extension().is_some_and(|e| e == "toml") {
                files.push(path);
            }
        }
    }
    files.sort();
    let mut texts = Vec::with_capacity(files.len());
    for path in &files {
        let text = std::fs::read_to_string(path).map_err(|source| RulesError::Io {
            path: path.clone(),
            source,
        })?;
        texts.push((path.display().to_string(), text));
    }
    let team: Vec<(&str, &str)> = texts
        .iter()
        .map(|(l, t)| (l.as_str(), t.as_str()))
        .collect();
    resolve(&team)
}

/// Resolves team files given as (label, text) into the effective rule set. With no files the
/// default packs apply.
pub fn resolve(team_files: &[(&str, &str)]) -> Result<RuleSet, RulesError> {
    let mut b = Builder::default();
    if team_files.is_empty() {
        for name in DEFAULT_PACKS {
            b.add_builtin(name, None)?;
        }
    }
    let mut disables = Vec::new();
    for (label, text) in team_files {
        let src = Source {
            label: (*label).to_owned(),
            text,
        };
        let file = parse(&src)?;
        match &file.extends {
            None => {
                for name in DEFAULT_PACKS {
                    b.add_builtin(name, None)?;
                }
            }
            Some(list) => {
                for name in list {
                    b.add_builtin(name.get_ref(), Some((&src, name.span())))?;
                }
            }
        }
        for rule in file.rules {
            b.add_rule(rule, &src, src.label.clone())?;
        }
        for d in &file.disable {
            disables.push((src.location(d.span()), d.get_ref().clone()));
        }
    }
    for (location, name) in disables {
        let Some(i) = b.rules.iter().position(|r| r.name == name) else {
            return Err(RulesError::Invalid {
                location,
                reason: format!(
                    "cannot disable rule {name:?}: no such rule in the packs this file extends"
                ),
            });
        };
        if b.rules[i].locked {
            return Err(RulesError::Invalid {
                location,
                reason: format!(
                    "rule {name:?} is locked by {} and cannot be disabled",
                    b.rules[i].source
                ),
            });
        }
        b.rules.remove(i);
    }
    Ok(RuleSet {
        rules: b.rules,
        sources: b.sources,
    })
}

#[derive(Default)]
struct Builder {
    rules: Vec<RuleSpec>,
    sources: Vec<String>,
    packs: BTreeSet<String>,
}

impl Builder {
    fn add_builtin(
        &mut self,
        name: &str,
        at: Option<(&Source<'_>, std::ops::Range<usize>)>,
    ) -> Result<(), RulesError> {
        if !self.packs.insert(name.to_owned()) {
            return Ok(());
        }
        let Some((_, text)) = BUILTIN_PACKS.iter().find(|(n, _)| *n == name) else {
            let known: Vec<&str> = BUILTIN_PACKS.iter().map(|(n, _)| *n).collect();
            let reason = format!(
                "unknown pack {name:?}; shipped packs are {}",
                known.join(", ")
            );
            return Err(match at {
                Some((src, span)) => src.at(span, reason),
                None => RulesError::Invalid {
                    location: "rules".to_owned(),
                    reason,
                },
            });
        };
        let src = Source {
            label: format!("pack:{name}"),
            text,
        };
        let file = parse(&src)?;
        for rule in file.rules {
            self.add_rule(rule, &src, src.label.clone())?;
        }
        self.sources.push(src.label);
        Ok(())
    }

    fn add_rule(
        &mut self,
        rule: RuleFile,
        src: &Source<'_>,
        origin: String,
    ) -> Result<(), RulesError> {
        let name = rule.name.get_ref().clone();
        let valid_name = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_');
        if !valid_name {
            return Err(src.at(
                rule.name.span(),
                "rule name must be 1-64 characters of a-z, A-Z, 0-9, '-' or '_'",
            ));
        }
        if let Some(prev) = self.rules.iter().find(|r| r.name == name) {
            return Err(src.at(
                rule.name.span(),
                format!("rule {name:?} is already defined by {}", prev.source),
            ));
        }
        let matcher = match (&rule.detector, &rule.pattern) {
            (Some(d), None) => match Detector::from_name(d.get_ref()) {
                Some(det) => Matcher::Detector(det),
                None => {
                    let known: Vec<&str> = Detector::ALL.iter().map(|d| d.name()).collect();
                    return Err(src.at(
                        d.span(),
                        format!(
                            "unknown detector {:?}; built-in detectors are {}",
                            d.get_ref(),
                            known.join(", ")
                        ),
                    ));
                }
            },
            (None, Some(p)) => {
                if let Err(e) = crate::redact::compile_pattern(p.get_ref()) {
                    return Err(src.at(p.span(), format!("rule {name:?}: {e}")));
                }
                Matcher::Pattern(p.get_ref().clone())
            }
            _ => {
                return Err(src.at(
                    rule.name.span(),
                    format!("rule {name:?} needs exactly one of `detector` or `pattern`"),
                ))
            }
        };
        self.rules.push(RuleSpec {
            name,
            matcher,
            action: rule.action,
            locked: rule.locked,
            source: origin,
            examples: rule.examples,
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_packs_apply_without_files() {
        let set = resolve(&[]).unwrap();
        let names: Vec<&str> = set.rules.iter().map(|r| r.name.as_str()).collect();
        assert!(names.contains(&"card"), "{names:?}");
        assert!(names.contains(&"email"), "{names:?}");
        assert_eq!(set.version(), resolve(&[]).unwrap().version());
    }

    #[test]
    fn team_file_adds_rules_and_changes_version() {
        let team = r#"
name = "payments"
[[rule]]
name = "customer-id"
pattern = 'customer=\d+'
"#;
        let set = resolve(&[("team.toml", team)]).unwrap();
        assert!(set.rules.iter().any(|r| r.name == "customer-id"));
        assert!(set.rules.iter().any(|r| r.name == "card"));
        assert_ne!(set.version(), resolve(&[]).unwrap().version());
    }

    #[test]
    fn locked_rule_cannot_be_disabled() {
        let team = "extends = [\"baseline\"]\ndisable = [\"card\"]\n";
        let err = resolve(&[("teams/payments.toml", team)])
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("teams/payments.toml:2:"), "{err}");
        assert!(err.contains("\"card\" is locked by pack:baseline"), "{err}");
    }

    #[test]
    fn errors_point_at_file_line_col() {
        let cases = [
            (
                "[[rule]]\nname = \"x\"\ndetector = \"nope\"\n",
                "t.toml:3:12",
                "unknown detector",
            ),
            (
                "[[rule]]\nname = \"x\"\npattern = '(unclosed'\n",
                "t.toml:3:11",
                "rule \"x\"",
            ),
            ("[[rule]]\nname = \"x\"\n", "t.toml:2:8", "exactly one of"),
            ("extends = [\"nope\"]\n", "t.toml:1:12", "unknown pack"),
            ("bogus = 1\n", "t.toml:1:1", "unknown field"),
            (
                "[[rule]]\nname = \"x\"\ndetector = \"email\"\naction = \"explode\"\n",
                "t.toml:4:10",
                "unknown variant",
            ),
        ];
        for (text, loc, what) in cases {
            let err = resolve(&[("t.toml", text)]).unwrap_err().to_string();
            assert!(err.starts_with(loc), "{text:?}: {err}");
            assert!(err.contains(what), "{text:?}: {err}");
        }
    }

    #[test]
    fn line_col_counts_characters() {
        assert_eq!(line_col("ab\nçd", 5), (2, 2));
        assert_eq!(line_col("", 0), (1, 1));
    }
}
