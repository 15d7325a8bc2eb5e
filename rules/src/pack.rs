//! Rule packs: the TOML format, `extends`, `disable`, `locked`, the always-on baseline,
//! and resolution of the effective rule set.
//!
//! ```toml
//! name = "payments"
//! extends = ["eu-pii"]                 # shipped packs; omitted = ["baseline", "eu-pii"]
//! disable = ["ipv6"]                   # rule names to switch off; locked ones cannot be
//!
//! [[rule]]
//! name = "customer-id"
//! pattern = 'customer=(?P<value>\d+)' # or: detector = "email"
//! action = "hash"                      # mask | hash | partial (+ keep_last) | drop_line
//! [[rule.example]]
//! input = "customer=4711 paid"
//! expect = "customer=[HASH:customer-id:*] paid"
//!
//! [[field]]                            # JSON lines only
//! path = "customer.email"
//! action = "drop_field"                # mask | hash | partial | drop_field | drop_line
//!
//! [[allow]]                            # a deliberate exception: these matches stay
//! rules = ["no-fnr"]
//! value = "15076500565"                # or: pattern = '…' (the whole match)
//! reason = "published test number used by our e2e tests"
//! ```
//!
//! Invariants: the locked `baseline` pack is in force for every team file unless that file
//! says `unsafe_disable_baseline = true` (and then the [`RuleSet`] records where, so the
//! agent can say so loudly); a locked rule cannot be disabled or redefined; every custom
//! regex compiles under [`MAX_REGEX_COMPILED_BYTES`]; detectors fail closed, and the only
//! way to keep a match readable is an `[[allow]]` entry naming its rules, which is part of
//! the version hash. Errors name the file and, where the problem sits in the file, its line
//! and column. No error contains log content or an allowed value.

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

/// The compliance-owned pack that is always in force unless explicitly opted out of.
pub const BASELINE_PACK: &str = "baseline";

/// Packs applied when no rule file is configured, or a team file has no `extends`:
/// scrubbing is on by default.
pub const DEFAULT_PACKS: &[&str] = &["baseline", "eu-pii"];

pub use crate::pattern::MAX_REGEX_COMPILED_BYTES;

/// Largest `keep_last` of a `partial` action.
pub const MAX_KEEP_LAST: usize = 32;

/// `keep_last` when a `partial` action does not say.
pub const DEFAULT_KEEP_LAST: usize = 4;

/// An error in a rule file. `location` is `file:line:col` (or just the file).
#[derive(Debug, Error)]
pub enum RulesError {
    /// The file is not a valid rule pack; `reason` says why, without quoting log content.
    #[error("{location}: {reason}")]
    Invalid {
        /// `file:line:col`, or the file alone when the problem has no position.
        location: String,
        /// What is wrong, naming the rule or key.
        reason: String,
    },
    /// The file or directory could not be read.
    #[error("{path}: cannot read rule file: {source}")]
    Io {
        /// The path that failed.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// What a rule does with a match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Replace the match with `[REDACTED:<rule name>]`.
    Mask,
    /// Replace the match with `[HASH:<rule name>:<12 hex>]`, a keyed HMAC-SHA256 pseudonym.
    Hash,
    /// Keep the last `keep_last` letters/digits, replace the earlier ones with `*`.
    Partial {
        /// How many trailing letters/digits stay readable.
        keep_last: usize,
    },
    /// Drop the whole line (it is not shipped; its offset still advances).
    DropLine,
    /// JSON field rules only: remove the field from the object.
    DropField,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Mask => f.write_str("mask"),
            Action::Hash => f.write_str("hash"),
            Action::Partial { keep_last } => write!(f, "partial(keep_last={keep_last})"),
            Action::DropLine => f.write_str("drop_line"),
            Action::DropField => f.write_str("drop_field"),
        }
    }
}

/// The action names as written in TOML.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum ActionName {
    Mask,
    Hash,
    Partial,
    DropLine,
    DropField,
}

/// What a rule looks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Matcher {
    /// A built-in detector with its validator.
    Detector(Detector),
    /// A custom regex; a group named `value` narrows what is scrubbed.
    Pattern(String),
}

/// What a self-test example expects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// The scrubbed line. `[HASH:<name>:*]` matches any pseudonym of that rule.
    Line(String),
    /// The line is dropped.
    Dropped,
}

/// A self-test example: the effective rule set turns `input` into `expect`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Example {
    /// A log line.
    pub input: String,
    /// What the rule set must make of it.
    pub expect: Expect,
}

/// A pattern rule of the effective set, resolved and checked.
#[derive(Debug, Clone)]
pub struct RuleSpec {
    /// Unique name; redaction counts and masks use it.
    pub name: String,
    /// Detector or custom regex.
    pub matcher: Matcher,
    /// What happens to a match.
    pub action: Action,
    /// Whether team files may disable it.
    pub locked: bool,
    /// Where the rule came from: `pack:baseline` or a file path.
    pub source: String,
    /// `file:line:col` of the rule's name.
    pub location: String,
    /// Self-test examples.
    pub examples: Vec<Example>,
}

/// A JSON field rule of the effective set.
#[derive(Debug, Clone)]
pub struct FieldSpec {
    /// Name for counts and masks; defaults to the path.
    pub name: String,
    /// Dot-separated keys; `*` matches any one key; arrays are walked through.
    pub path: Vec<String>,
    /// What happens to the field's value.
    pub action: Action,
    /// Where the rule came from.
    pub source: String,
    /// `file:line:col` of the rule's path.
    pub location: String,
    /// Self-test examples.
    pub examples: Vec<Example>,
}

/// What an `[[allow]]` entry keeps readable.
#[derive(Clone, PartialEq, Eq)]
pub enum AllowMatch {
    /// One value. For a detector rule it is compared in the detector's canonical form
    /// (`4111 1111 1111 1111` and `4111111111111111` are one card); for a custom pattern
    /// rule, as written.
    Value(String),
    /// A regex that must match the whole matched text as written.
    Pattern(String),
}

impl fmt::Debug for AllowMatch {
    /// Without the value or pattern: they are often a person's number (a test person's,
    /// but still), and a `Debug` print can end up in a log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AllowMatch::Value(v) => write!(f, "Value(<{} bytes>)", v.len()),
            AllowMatch::Pattern(p) => write!(f, "Pattern(<{} bytes>)", p.len()),
        }
    }
}

/// An `[[allow]]` entry of a team file: matches of `rules` that `matcher` accepts are left
/// in the line.
#[derive(Debug, Clone)]
pub struct AllowSpec {
    /// The rules it applies to (at least one; each exists in the effective set).
    pub rules: Vec<String>,
    /// The value or pattern that stays.
    pub matcher: AllowMatch,
    /// Why, as the file says (required, for the reviewer).
    pub reason: String,
    /// `file:line:col` of the entry's `rules` key.
    pub location: String,
}

/// The effective rule set: every rule in the order it applies, and where each came from.
#[derive(Debug, Clone)]
pub struct RuleSet {
    /// Pattern rules (detectors and custom regexes).
    pub rules: Vec<RuleSpec>,
    /// JSON field rules.
    pub fields: Vec<FieldSpec>,
    /// The packs and files that made it, for messages and audit.
    pub sources: Vec<String>,
    /// `file:line:col` of the `unsafe_disable_baseline = true` that took the baseline out,
    /// if it is out. The agent warns about it at start-up.
    pub baseline_disabled_at: Option<String>,
    /// Deliberate exceptions from the team files, in file order.
    pub allow: Vec<AllowSpec>,
}

impl RuleSet {
    /// A stable hash of the effective rules, 16 hex digits: names, matchers (a detector's
    /// revision, a pattern's text), actions with their parameters, locks and field rules.
    /// Any change to a rule, pack or action gives a new version. Never includes key material.
    pub fn version(&self) -> String {
        let mut h = Sha256::new();
        let mut part = |p: &str| {
            h.update((p.len() as u64).to_le_bytes());
            h.update(p.as_bytes());
        };
        part("fjord-rules/2");
        for r in &self.rules {
            let m = match &r.matcher {
                Matcher::Detector(d) => format!("detector:{}", d.revision()),
                Matcher::Pattern(p) => format!("pattern:{p}"),
            };
            part("rule");
            part(&r.name);
            part(&m);
            part(&r.action.to_string());
            part(if r.locked { "locked" } else { "open" });
        }
        for f in &self.fields {
            part("field");
            part(&f.name);
            part(&f.path.join("."));
            part(&f.action.to_string());
        }
        for a in &self.allow {
            part("allow");
            for r in &a.rules {
                part(r);
            }
            match &a.matcher {
                AllowMatch::Value(v) => {
                    part("value");
                    part(v);
                }
                AllowMatch::Pattern(p) => {
                    part("pattern");
                    part(p);
                }
            }
        }
        hex::encode(&h.finalize()[..8])
    }

    /// Whether any rule hashes, so that a key is required.
    pub fn needs_hash_key(&self) -> Option<&str> {
        self.rules
            .iter()
            .find(|r| r.action == Action::Hash)
            .map(|r| r.name.as_str())
            .or_else(|| {
                self.fields
                    .iter()
                    .find(|f| f.action == Action::Hash)
                    .map(|f| f.name.as_str())
            })
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
    unsafe_disable_baseline: Option<Spanned<bool>>,
    #[serde(default, rename = "rule")]
    rules: Vec<RuleFile>,
    #[serde(default, rename = "field")]
    fields: Vec<FieldFile>,
    #[serde(default, rename = "allow")]
    allow: Vec<AllowFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AllowFile {
    rules: Spanned<Vec<Spanned<String>>>,
    value: Option<Spanned<String>>,
    pattern: Option<Spanned<String>>,
    reason: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    name: Spanned<String>,
    detector: Option<Spanned<String>>,
    pattern: Option<Spanned<String>>,
    action: Option<Spanned<ActionName>>,
    keep_last: Option<Spanned<usize>>,
    #[serde(default)]
    locked: bool,
    #[allow(dead_code)]
    description: Option<String>,
    #[serde(default, rename = "example")]
    examples: Vec<Spanned<ExampleFile>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FieldFile {
    name: Option<Spanned<String>>,
    path: Spanned<String>,
    action: Option<Spanned<ActionName>>,
    keep_last: Option<Spanned<usize>>,
    #[allow(dead_code)]
    description: Option<String>,
    #[serde(default, rename = "example")]
    examples: Vec<Spanned<ExampleFile>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExampleFile {
    input: String,
    expect: Option<String>,
    #[serde(default)]
    expect_drop: bool,
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
    let mut pos = pos.min(text.len());
    while pos > 0 && !text.is_char_boundary(pos) {
        pos -= 1;
    }
    let before = &text[..pos];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

fn parse(src: &Source<'_>) -> Result<PackFile, RulesError> {
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
    let mut allows: Vec<(AllowSpec, Vec<String>)> = Vec::new();
    let mut opt_out = None;
    let mut baseline_required = team_files.is_empty();
    let mut parsed = Vec::with_capacity(team_files.len());
    for (label, text) in team_files {
        let src = Source {
            label: (*label).to_owned(),
            text,
        };
        let file = parse(&src)?;
        let opts_out = file
            .unsafe_disable_baseline
            .as_ref()
            .is_some_and(|v| *v.get_ref());
        if opts_out {
            if let Some(e) = file
                .extends
                .iter()
                .flatten()
                .find(|e| e.get_ref() == BASELINE_PACK)
            {
                return Err(src.at(
                    e.span(),
                    "extends the baseline pack and sets unsafe_disable_baseline = true; pick one",
                ));
            }
            if let Some(v) = &file.unsafe_disable_baseline {
                opt_out.get_or_insert_with(|| src.location(v.span()));
            }
        } else {
            baseline_required = true;
        }
        parsed.push((src, file));
    }
    // The baseline goes first, so its locked rules win ties.
    if baseline_required {
        b.add_builtin(BASELINE_PACK, None)?;
    }
    for (src, file) in parsed {
        match &file.extends {
            None => {
                for name in DEFAULT_PACKS {
                    if *name != BASELINE_PACK || baseline_required {
                        b.add_builtin(name, None)?;
                    }
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
        for field in file.fields {
            b.add_field(field, &src)?;
        }
        for d in &file.disable {
            disables.push((src.location(d.span()), d.get_ref().clone()));
        }
        for a in file.allow {
            allows.push(allow_entry(a, &src)?);
        }
        b.sources.push(src.label.clone());
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
    let mut allow = Vec::with_capacity(allows.len());
    for (spec, rule_locations) in allows {
        for (name, location) in spec.rules.iter().zip(rule_locations) {
            if !b.rules.iter().any(|r| &r.name == name) {
                return Err(RulesError::Invalid {
                    location,
                    reason: format!(
                        "allow entry names rule {name:?}, which is not in the effective rule set"
                    ),
                });
            }
        }
        allow.push(spec);
    }
    Ok(RuleSet {
        rules: b.rules,
        fields: b.fields,
        sources: b.sources,
        baseline_disabled_at: if baseline_required { None } else { opt_out },
        allow,
    })
}

/// Checks one `[[allow]]` entry; returns it with the location of each rule name, for the
/// check against the effective set once every file is read. Messages never quote the value
/// or pattern.
fn allow_entry(a: AllowFile, src: &Source<'_>) -> Result<(AllowSpec, Vec<String>), RulesError> {
    let at = a.rules.span();
    let names = a.rules.into_inner();
    if names.is_empty() {
        return Err(src.at(at, "allow entry: `rules` must name at least one rule"));
    }
    let reason = match a.reason {
        Some(r) if !r.get_ref().trim().is_empty() => r.into_inner(),
        Some(r) => return Err(src.at(r.span(), "allow entry: `reason` must not be empty")),
        None => {
            return Err(src.at(
                at.clone(),
                "allow entry needs a `reason`: say why these matches may stay readable",
            ))
        }
    };
    let matcher = match (a.value, a.pattern) {
        (Some(v), None) if v.get_ref().is_empty() => {
            return Err(src.at(v.span(), "allow entry: `value` must not be empty"))
        }
        (Some(v), None) => AllowMatch::Value(v.into_inner()),
        (None, Some(p)) => {
            let re = crate::pattern::compile_allow(p.get_ref())
                .map_err(|e| src.at(p.span(), format!("allow entry: {e}")))?;
            if re.is_match("") {
                return Err(src.at(
                    p.span(),
                    "allow entry: the pattern matches the empty string, so it would allow every match; name the values",
                ));
            }
            AllowMatch::Pattern(p.into_inner())
        }
        _ => return Err(src.at(at, "allow entry needs exactly one of `value` or `pattern`")),
    };
    let locations = names.iter().map(|n| src.location(n.span())).collect();
    let spec = AllowSpec {
        location: src.location(at),
        rules: names.into_iter().map(Spanned::into_inner).collect(),
        matcher,
        reason,
    };
    Ok((spec, locations))
}

#[derive(Default)]
struct Builder {
    rules: Vec<RuleSpec>,
    fields: Vec<FieldSpec>,
    sources: Vec<String>,
    packs: BTreeSet<String>,
}

/// 1-64 bytes of ASCII letters, digits, `-`, `_` and the `extra` bytes.
fn valid_name(name: &str, extra: &[u8]) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_' || extra.contains(&c))
}

/// Checks an action and its `keep_last` for a rule (`field` = JSON field rule).
fn action(
    src: &Source<'_>,
    what: &str,
    name: Option<&Spanned<ActionName>>,
    keep_last: Option<&Spanned<usize>>,
    field: bool,
) -> Result<Action, RulesError> {
    let a = match name.map(Spanned::get_ref) {
        None | Some(ActionName::Mask) => Action::Mask,
        Some(ActionName::Hash) => Action::Hash,
        Some(ActionName::DropLine) => Action::DropLine,
        Some(ActionName::DropField) if field => Action::DropField,
        Some(ActionName::DropField) => {
            let span = name.map_or(0..0, Spanned::span);
            return Err(src.at(
                span,
                format!(
                    "{what}: drop_field only applies to [[field]] rules; use drop_line or mask"
                ),
            ));
        }
        Some(ActionName::Partial) => {
            let n = keep_last.map_or(DEFAULT_KEEP_LAST, |k| *k.get_ref());
            if !(1..=MAX_KEEP_LAST).contains(&n) {
                let span = keep_last.map_or(0..0, Spanned::span);
                return Err(src.at(span, format!("{what}: keep_last must be 1-{MAX_KEEP_LAST}")));
            }
            return Ok(Action::Partial { keep_last: n });
        }
    };
    if let Some(k) = keep_last {
        return Err(src.at(
            k.span(),
            format!("{what}: keep_last only applies to action = \"partial\""),
        ));
    }
    Ok(a)
}

fn examples(
    src: &Source<'_>,
    what: &str,
    list: Vec<Spanned<ExampleFile>>,
) -> Result<Vec<Example>, RulesError> {
    list.into_iter()
        .map(|e| {
            let span = e.span();
            let e = e.into_inner();
            let expect = match (e.expect, e.expect_drop) {
                (Some(line), false) => Expect::Line(line),
                (None, true) => Expect::Dropped,
                _ => {
                    return Err(src.at(
                        span,
                        format!(
                        "{what}: an example needs exactly one of `expect` or `expect_drop = true`"
                    ),
                    ))
                }
            };
            Ok(Example {
                input: e.input,
                expect,
            })
        })
        .collect()
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
        if !file.allow.is_empty() {
            return Err(src.whole("a shipped pack cannot carry allow entries"));
        }
        for rule in file.rules {
            self.add_rule(rule, &src, src.label.clone())?;
        }
        for field in file.fields {
            self.add_field(field, &src)?;
        }
        self.sources.push(src.label);
        Ok(())
    }

    /// Errors when `name` is already used by a pattern or field rule.
    fn unique(
        &self,
        name: &str,
        src: &Source<'_>,
        span: std::ops::Range<usize>,
    ) -> Result<(), RulesError> {
        let prev = self
            .rules
            .iter()
            .find(|r| r.name == name)
            .map(|r| r.source.as_str())
            .or_else(|| {
                self.fields
                    .iter()
                    .find(|f| f.name == name)
                    .map(|f| f.source.as_str())
            });
        match prev {
            Some(prev) => Err(src.at(span, format!("rule {name:?} is already defined by {prev}"))),
            None => Ok(()),
        }
    }

    fn add_rule(
        &mut self,
        rule: RuleFile,
        src: &Source<'_>,
        origin: String,
    ) -> Result<(), RulesError> {
        let name = rule.name.get_ref().clone();
        if !valid_name(&name, b"") {
            return Err(src.at(
                rule.name.span(),
                "rule name must be 1-64 characters of a-z, A-Z, 0-9, '-' or '_'",
            ));
        }
        self.unique(&name, src, rule.name.span())?;
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
                if let Err(e) = crate::pattern::compile(p.get_ref()) {
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
        let what = format!("rule {name:?}");
        let action = action(
            src,
            &what,
            rule.action.as_ref(),
            rule.keep_last.as_ref(),
            false,
        )?;
        self.rules.push(RuleSpec {
            location: src.location(rule.name.span()),
            examples: examples(src, &what, rule.examples)?,
            name,
            matcher,
            action,
            locked: rule.locked,
            source: origin,
        });
        Ok(())
    }

    fn add_field(&mut self, field: FieldFile, src: &Source<'_>) -> Result<(), RulesError> {
        let path_text = field.path.get_ref();
        let path: Vec<String> = path_text.split('.').map(str::to_owned).collect();
        if path.iter().any(String::is_empty) || path.len() > 32 {
            return Err(src.at(
                field.path.span(),
                format!("field path {path_text:?} must be 1-32 non-empty keys separated by '.'"),
            ));
        }
        let (name, name_span) = match &field.name {
            Some(n) => (n.get_ref().clone(), n.span()),
            None => (path_text.clone(), field.path.span()),
        };
        if !valid_name(&name, b".*") {
            return Err(src.at(
                name_span,
                "field rule name must be 1-64 characters of a-z, A-Z, 0-9, '-', '_', '.' or '*'; set `name` when the path is longer",
            ));
        }
        self.unique(&name, src, name_span)?;
        let what = format!("field rule {name:?}");
        let action = action(
            src,
            &what,
            field.action.as_ref(),
            field.keep_last.as_ref(),
            true,
        )?;
        self.fields.push(FieldSpec {
            location: src.location(field.path.span()),
            examples: examples(src, &what, field.examples)?,
            name,
            path,
            action,
            source: src.label.clone(),
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
    fn allow_entries_are_checked_and_change_the_version() {
        let base = resolve(&[]).unwrap().version();
        let one =
            "[[allow]]\nrules = [\"no-fnr\"]\nvalue = \"15076500565\"\nreason = \"test person\"\n";
        let set = resolve(&[("t.toml", one)]).unwrap();
        assert_eq!(set.allow.len(), 1);
        assert_eq!(set.allow[0].location, "t.toml:2:9");
        assert_ne!(set.version(), base);
        let other = one.replace("15076500565", "30108299939");
        assert_ne!(
            resolve(&[("t.toml", &other)]).unwrap().version(),
            set.version()
        );
        // The value never shows in a Debug print.
        assert!(!format!("{:?}", set.allow).contains("15076500565"));

        let cases = [
            (
                "[[allow]]\nrules = [\"nope\"]\nvalue = \"1\"\nreason = \"r\"\n",
                "t.toml:2:10",
                "not in the effective rule set",
            ),
            (
                "[[allow]]\nrules = []\nvalue = \"1\"\nreason = \"r\"\n",
                "t.toml:2:9",
                "at least one rule",
            ),
            (
                "[[allow]]\nrules = [\"card\"]\nvalue = \"1\"\n",
                "t.toml:2:9",
                "needs a `reason`",
            ),
            (
                "[[allow]]\nrules = [\"card\"]\nreason = \"r\"\n",
                "t.toml:2:9",
                "exactly one of",
            ),
            (
                "[[allow]]\nrules = [\"card\"]\npattern = '.*'\nreason = \"r\"\n",
                "t.toml:3:11",
                "empty string",
            ),
            (
                "[[allow]]\nrules = [\"card\"]\npattern = '(x'\nreason = \"r\"\n",
                "t.toml:3:11",
                "invalid regex",
            ),
        ];
        for (text, loc, what) in cases {
            let err = resolve(&[("t.toml", text)]).unwrap_err().to_string();
            assert!(err.starts_with(loc), "{text:?}: {err}");
            assert!(err.contains(what), "{text:?}: {err}");
            assert!(!err.contains("15076500565"));
        }
        // Disabling the rule an entry names leaves the entry pointing at nothing.
        let text = "disable = [\"ipv6\"]\n[[allow]]\nrules = [\"ipv6\"]\nvalue = \"::2\"\nreason = \"r\"\n";
        let err = resolve(&[("t.toml", text)]).unwrap_err().to_string();
        assert!(err.starts_with("t.toml:3:10"), "{err}");
    }

    #[test]
    fn line_col_counts_characters() {
        assert_eq!(line_col("ab\nçd", 5), (2, 2));
        assert_eq!(line_col("", 0), (1, 1));
    }
}
