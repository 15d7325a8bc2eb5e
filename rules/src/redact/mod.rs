//! The compiled rule set ([`Redactor`]) and the one entry point the agent calls per line,
//! [`Redactor::apply`].
//!
//! Per line: one byte pass ([`crate::detect`]'s features) decides which built-in detectors
//! can match at all — a line without PII shapes costs that pass and nothing else; only the
//! possible detectors and the custom regexes then search; validators drop candidates whose
//! check digits fail; overlapping matches merge into one span, so no part of any match
//! leaks. JSON objects are rewritten value by value ([`json`]) so they stay valid
//! JSON: the detectors run once over the whole line, where they see each value's key
//! (`"msisdn": "…"`, `"span_id": "…"`), and their matches are mapped into the values; only
//! a line with a match is parsed at all.
//!
//! Invariants: the output never contains a matched value except what a `partial` action
//! keeps on purpose; a hash is always keyed (no key, no [`Redactor`]); nothing here logs or
//! puts line content into an error. The `regex` crate matches in linear time (finite
//! automata, no backtracking), so no rule can make a line take more than time proportional
//! to its length; the compiled-size limit bounds each pattern's memory and per-byte cost.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::ops::Range;

use hmac::{Hmac, Mac};
use regex::Regex;
use sha2::Sha256;
use thiserror::Error;

mod json;

use crate::detect::{Detector, Features};
use crate::pack::{Action, AllowMatch, Matcher, RuleSet};
use crate::pattern::{self, PatternError};

/// Shortest accepted hash key. A short key makes the pseudonyms of low-entropy values
/// (phone numbers, national ids) brute-forceable by whoever sees the logs.
pub const MIN_HASH_KEY_BYTES: usize = 16;

/// Hex digits of the HMAC kept in a pseudonym (48 bits: collisions stay negligible for the
/// number of distinct customers one team has, and the tag stays short).
pub const HASH_HEX_DIGITS: usize = 12;

/// Why a rule set cannot be compiled.
#[derive(Debug, Error)]
pub enum RedactorError {
    /// A rule hashes but no key was given.
    #[error("rule {rule:?} uses action \"hash\", which needs a hash key, and none was given; an unkeyed hash of a phone number or id is reversible by brute force")]
    MissingHashKey {
        /// The first rule that hashes.
        rule: String,
    },
    /// The key is too short.
    #[error("the hash key is {len} bytes; at least {MIN_HASH_KEY_BYTES} are required")]
    WeakHashKey {
        /// Its length in bytes.
        len: usize,
    },
    /// A custom pattern does not compile (or is too big).
    #[error("rule {rule:?}: {source}")]
    Pattern {
        /// The rule.
        rule: String,
        /// What is wrong with its pattern.
        source: PatternError,
    },
}

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
        let names = redactor.rule_names();
        self.0
            .iter()
            .enumerate()
            .filter(|(_, &n)| n > 0)
            .filter_map(|(i, &n)| names.get(i).map(|name| ((*name).to_owned(), n)))
            .collect()
    }

    pub(crate) fn bump(&mut self, i: usize) {
        if self.0.len() <= i {
            self.0.resize(i + 1, 0);
        }
        self.0[i] += 1;
    }
}

pub(crate) enum Finder {
    Detector(Detector),
    Pattern {
        regex: Regex,
        /// Index of the `value` group, when the pattern narrows what is scrubbed.
        value_group: Option<usize>,
    },
}

pub(crate) struct Compiled {
    pub(crate) name: String,
    pub(crate) finder: Finder,
    pub(crate) action: Action,
    pub(crate) locked: bool,
    /// The `[[allow]]` entries naming this rule (indexes into [`Redactor::allow`]); empty
    /// for almost every rule, and then the check costs one length test per match.
    pub(crate) allow: Vec<usize>,
}

/// A compiled `[[allow]]` entry.
pub(crate) struct CompiledAllow {
    /// A value in the canonical form of each rule's detector is compared; the written form
    /// for custom patterns.
    value: Option<String>,
    /// Anchored at both ends: the whole match must fit.
    pattern: Option<Regex>,
    /// For `rules explain`: where the entry is and what it says, as the rule file says it.
    pub(crate) location: String,
    pub(crate) text: String,
}

pub(crate) struct CompiledField {
    pub(crate) name: String,
    pub(crate) path: Vec<String>,
    pub(crate) action: Action,
}

/// Which rules [`Redactor::hits`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// Every rule.
    All,
    /// Built-in detectors only.
    Detectors,
    /// Custom patterns only.
    Patterns,
}

/// One validated match, resolved against the others: `rule` indexes [`Redactor::rules`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Hit {
    pub(crate) start: usize,
    pub(crate) end: usize,
    pub(crate) rule: usize,
}

/// One redaction, as [`Redactor::explain`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExplainHit {
    /// The rule that fired.
    pub rule: String,
    /// Its action, as written in rule files (`partial(keep_last=4)` for partial).
    pub action: String,
    /// For JSON lines, the path of the value (`customer.email`); `None` for plain text.
    pub field: Option<String>,
    /// Byte range of the match: in the line for plain text, in the (unescaped) value for
    /// JSON lines. Empty for field rules, which act on the whole value.
    pub range: Range<usize>,
}

/// What [`Redactor::explain`] found in a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    /// Every redaction, in line order.
    pub hits: Vec<ExplainHit>,
    /// The scrubbed line, or `None` when a rule drops it.
    pub output: Option<String>,
}

/// A compiled, immutable rule set. Cheap to share behind an `Arc`.
pub struct Redactor {
    pub(crate) rules: Vec<Compiled>,
    pub(crate) fields: Vec<CompiledField>,
    /// JSON keys that mark a value as a detector's kind (`"password": …`): (detector, rule).
    pub(crate) key_rules: Vec<(Detector, usize)>,
    /// Whether any rule is a custom pattern (JSON values are then also scanned one by one).
    pub(crate) has_patterns: bool,
    /// Whether any rule is a built-in detector.
    has_detectors: bool,
    /// For each field rule, its last literal path key quoted (`"email"`): a line without a
    /// backslash can only hold that field if it contains this text. `None` when some rule
    /// has only `*` segments (then every JSON line is walked).
    field_keys: Option<Vec<memchr::memmem::Finder<'static>>>,
    key: Option<Hmac<Sha256>>,
    /// The rule set's `[[allow]]` entries; see [`Compiled::allow`].
    pub(crate) allow: Vec<CompiledAllow>,
    version: String,
    /// For each feature bit, the rules (a bit per rule index) whose detector that bit
    /// allows, and the custom-pattern rules: a line's candidate rules are then a few ORs
    /// instead of a pass over every rule. `None` with more than 64 rules.
    by_feature: Option<RuleMasks>,
}

/// The most match ranges [`RANGES`], and hits [`Scratch`], keep room for between lines.
const MAX_KEPT_RANGES: usize = 256;

/// What [`Redactor::apply_into`] did with a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Nothing fired: ship the line as it is.
    Unchanged,
    /// The scrubbed line is in the output buffer.
    Rewritten,
    /// A `drop_line` rule fired: the line must not be shipped.
    Dropped,
}

/// What [`Redactor::hits`] must search a text for.
#[derive(Clone, Copy)]
struct Candidates {
    features: Features,
    patterns: bool,
}

/// Per-thread buffers for one line's hits and the JSON walk, reused from line to line so
/// that a line with a match allocates nothing once they have grown.
#[derive(Default)]
struct Scratch {
    hits: Vec<Hit>,
    walk: json::Scratch,
}

impl Scratch {
    const fn new() -> Scratch {
        Scratch {
            hits: Vec::new(),
            walk: json::Scratch::new(),
        }
    }

    /// Drops what a pathological line grew, so no thread keeps it.
    fn trim(&mut self) {
        if self.hits.capacity() > MAX_KEPT_RANGES {
            self.hits = Vec::new();
        }
        self.walk.trim(MAX_KEPT_RANGES);
    }
}

thread_local! {
    /// Scratch space for one rule's matches, reused from line to line on this thread: a line
    /// with a match would otherwise allocate and free it. Only lines that have a feature or
    /// a custom pattern to run touch it.
    static RANGES: std::cell::RefCell<Vec<Range<usize>>> =
        const { std::cell::RefCell::new(Vec::new()) };
    static SCRATCH: std::cell::RefCell<Scratch> = const { std::cell::RefCell::new(Scratch::new()) };
}

/// See [`Redactor::by_feature`].
struct RuleMasks {
    detectors: [u64; 32],
    patterns: u64,
}

impl RuleMasks {
    fn new(rules: &[Compiled]) -> Option<RuleMasks> {
        if rules.len() > 64 {
            return None;
        }
        let mut m = RuleMasks {
            detectors: [0; 32],
            patterns: 0,
        };
        for (i, r) in rules.iter().enumerate() {
            match &r.finder {
                Finder::Detector(d) => {
                    for (bit, rules) in m.detectors.iter_mut().enumerate() {
                        if d.possible(&Features(1 << bit, Default::default())) {
                            *rules |= 1 << i;
                        }
                    }
                }
                Finder::Pattern { .. } => m.patterns |= 1 << i,
            }
        }
        Some(m)
    }
}

impl std::fmt::Debug for Redactor {
    /// Names and version only: the key never appears in debug output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redactor")
            .field("rules", &self.rule_names())
            .field("version", &self.version)
            .field("keyed", &self.key.is_some())
            .finish()
    }
}

impl Redactor {
    /// Compiles a resolved rule set. `hash_key` is required (at least
    /// [`MIN_HASH_KEY_BYTES`]) when any rule hashes; the error names the first such rule.
    pub fn new(set: &RuleSet, hash_key: Option<&[u8]>) -> Result<Redactor, RedactorError> {
        let key = match (set.needs_hash_key(), hash_key) {
            (Some(rule), None) => {
                return Err(RedactorError::MissingHashKey {
                    rule: rule.to_owned(),
                })
            }
            (_, Some(k)) if k.len() < MIN_HASH_KEY_BYTES => {
                return Err(RedactorError::WeakHashKey { len: k.len() })
            }
            (_, Some(k)) => Some(
                <Hmac<Sha256> as Mac>::new_from_slice(k)
                    .map_err(|_| RedactorError::WeakHashKey { len: k.len() })?,
            ),
            (None, None) => None,
        };
        let mut rules = Vec::with_capacity(set.rules.len());
        let mut key_rules = Vec::new();
        for r in &set.rules {
            let finder = match &r.matcher {
                Matcher::Detector(d) => {
                    if matches!(d, Detector::Password | Detector::ApiKey) {
                        key_rules.push((*d, rules.len()));
                    }
                    Finder::Detector(*d)
                }
                Matcher::Pattern(p) => {
                    let regex = pattern::compile(p).map_err(|source| RedactorError::Pattern {
                        rule: r.name.clone(),
                        source,
                    })?;
                    let value_group = regex.capture_names().position(|n| n == Some("value"));
                    Finder::Pattern { regex, value_group }
                }
            };
            let allow = set
                .allow
                .iter()
                .enumerate()
                .filter(|(_, a)| a.rules.contains(&r.name))
                .map(|(i, _)| i)
                .collect();
            rules.push(Compiled {
                name: r.name.clone(),
                finder,
                action: r.action,
                locked: r.locked,
                allow,
            });
        }
        let mut allow = Vec::with_capacity(set.allow.len());
        for (i, a) in set.allow.iter().enumerate() {
            let (value, pattern, text) = match &a.matcher {
                AllowMatch::Value(v) => (Some(v.clone()), None, format!("value {v:?}")),
                AllowMatch::Pattern(p) => {
                    let re =
                        pattern::compile_allow(p).map_err(|source| RedactorError::Pattern {
                            rule: format!("allow entry {}", i + 1),
                            source,
                        })?;
                    (None, Some(re), format!("pattern {p:?}"))
                }
            };
            allow.push(CompiledAllow {
                value,
                pattern,
                location: a.location.clone(),
                text: format!("{} for {}: {}", text, a.rules.join(", "), a.reason),
            });
        }
        let fields = set
            .fields
            .iter()
            .map(|f| CompiledField {
                name: f.name.clone(),
                path: f.path.clone(),
                action: f.action,
            })
            .collect();
        let has_patterns = rules
            .iter()
            .any(|r| matches!(r.finder, Finder::Pattern { .. }));
        let has_detectors = rules
            .iter()
            .any(|r| matches!(r.finder, Finder::Detector(_)));
        let field_keys = set
            .fields
            .iter()
            .map(|f| {
                let key = f.path.iter().rev().find(|k| k.as_str() != "*")?;
                Some(memchr::memmem::Finder::new(format!("\"{key}\"").as_bytes()).into_owned())
            })
            .collect();
        Ok(Redactor {
            fields,
            key_rules,
            has_patterns,
            has_detectors,
            field_keys,
            key,
            allow,
            version: set.version(),
            by_feature: RuleMasks::new(&rules),
            rules,
        })
    }

    /// The rule-set version hash that travels with every batch.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Rule names in order (pattern rules, then JSON field rules); index `i` matches index
    /// `i` of [`Counts`].
    pub fn rule_names(&self) -> Vec<&str> {
        self.rules
            .iter()
            .map(|r| r.name.as_str())
            .chain(self.fields.iter().map(|f| f.name.as_str()))
            .collect()
    }

    /// Scrubs one line. `None` means a `drop_line` rule fired: the line must not be shipped
    /// (it is counted under that rule). The line comes back borrowed when nothing fired.
    pub fn apply<'a>(&self, line: &'a str, counts: &mut Counts) -> Option<Cow<'a, str>> {
        let mut out = String::new();
        match self.run(line, counts, None, &mut out) {
            Applied::Unchanged => Some(Cow::Borrowed(line)),
            Applied::Rewritten => Some(Cow::Owned(out)),
            Applied::Dropped => None,
        }
    }

    /// [`Redactor::apply`] for a caller that scrubs line after line: a rewritten line is
    /// written into `out` (cleared first), so one buffer serves every line and a redaction
    /// allocates nothing once it has grown. `out` is meaningful only after
    /// [`Applied::Rewritten`].
    pub fn apply_into(&self, line: &str, counts: &mut Counts, out: &mut String) -> Applied {
        self.run(line, counts, None, out)
    }

    /// Like [`Redactor::apply`], but also reports every redaction: rule, action, where.
    /// For rule authors on their own input; the agent never calls it on shipped lines.
    pub fn explain(&self, line: &str) -> Explanation {
        let mut hits = Vec::new();
        let mut counts = Counts::default();
        let mut out = String::new();
        let output = match self.run(line, &mut counts, Some(&mut hits), &mut out) {
            Applied::Unchanged => Some(line.to_owned()),
            Applied::Rewritten => Some(out),
            Applied::Dropped => None,
        };
        Explanation { hits, output }
    }

    /// One line with this thread's [`Scratch`] (a fresh one if it is in use further up the
    /// stack, which only a re-entrant caller could cause). A plain-text line without
    /// candidates (most lines) is done before the scratch is touched.
    fn run(
        &self,
        line: &str,
        counts: &mut Counts,
        explain: Option<&mut Vec<ExplainHit>>,
        out: &mut String,
    ) -> Applied {
        out.clear();
        let text = if json::looks_like_object(line) {
            None
        } else {
            match self.candidates(line, Scope::All) {
                None => return Applied::Unchanged,
                some => some,
            }
        };
        SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
            Ok(mut scratch) => {
                let applied = self.run_with(line, text, counts, explain, out, &mut scratch);
                scratch.trim();
                applied
            }
            Err(_) => self.run_with(line, text, counts, explain, out, &mut Scratch::default()),
        })
    }

    /// [`Redactor::run`] with scratch space; `text` holds a plain-text line's candidates
    /// (`None` for a line that looks like a JSON object).
    fn run_with(
        &self,
        line: &str,
        text: Option<Candidates>,
        counts: &mut Counts,
        mut explain: Option<&mut Vec<ExplainHit>>,
        out: &mut String,
        scratch: &mut Scratch,
    ) -> Applied {
        let hits = &mut scratch.hits;
        hits.clear();
        if let Some(candidates) = text {
            self.hits_of(line, candidates, hits);
        } else {
            self.hits(line, Scope::Detectors, hits);
            // Custom patterns run value by value (on every value of a walked line, as the
            // detectors' matches do not say where they might match).
            let pattern_hit = self.has_patterns
                && self.rules.iter().any(|r| match &r.finder {
                    Finder::Pattern { regex, .. } => regex.is_match(line),
                    Finder::Detector(_) => false,
                });
            // `memchr` is vectorised; `str::contains(char)` walks the line a word at a time.
            let escaped = memchr::memchr(b'\\', line.as_bytes()).is_some();
            if !hits.is_empty() || pattern_hit || escaped || self.fields_may_apply(line) {
                let mut local = Counts::default();
                let mut local_explain = Vec::new();
                let sink = explain.as_ref().map(|_| &mut local_explain);
                let walked = json::redact(
                    self,
                    line,
                    hits,
                    self.has_patterns,
                    &mut local,
                    sink,
                    out,
                    &mut scratch.walk,
                );
                if let Ok(kept) = walked {
                    counts.add(&local);
                    if let Some(e) = explain.as_deref_mut() {
                        e.append(&mut local_explain);
                    }
                    return match kept {
                        false => Applied::Dropped,
                        true if out.as_str() == line => Applied::Unchanged,
                        true => Applied::Rewritten,
                    };
                }
                // Not valid JSON after all: scrub it as text, custom patterns included.
                out.clear();
                if self.has_patterns {
                    self.hits(line, Scope::All, hits);
                }
            }
        }
        if hits.is_empty() {
            return Applied::Unchanged;
        }
        if let Some(h) = hits
            .iter()
            .find(|h| self.rules[h.rule].action == Action::DropLine)
        {
            counts.bump(h.rule);
            if let Some(e) = explain {
                e.push(self.explain_hit(h, None));
            }
            return Applied::Dropped;
        }
        out.reserve(line.len() + 16);
        self.render(line, hits, counts, out);
        if let Some(e) = explain {
            e.extend(hits.iter().map(|h| self.explain_hit(h, None)));
        }
        Applied::Rewritten
    }

    /// Whether a field rule may apply to the JSON `line` (which has no backslash): an
    /// object key appears in the raw line exactly as written, between quotes, unless it has
    /// an escape, so a line without any rule's key text holds none of their fields.
    fn fields_may_apply(&self, line: &str) -> bool {
        match &self.field_keys {
            Some(keys) => keys.iter().any(|k| k.find(line.as_bytes()).is_some()),
            None => true,
        }
    }

    pub(crate) fn explain_hit(&self, h: &Hit, field: Option<&str>) -> ExplainHit {
        let r = &self.rules[h.rule];
        ExplainHit {
            rule: r.name.clone(),
            action: r.action.to_string(),
            field: field.map(str::to_owned),
            range: h.start..h.end,
        }
    }

    /// Finds the resolved, non-overlapping hits of the rules in `scope` in `text`, in order.
    pub(crate) fn hits(&self, text: &str, scope: Scope, out: &mut Vec<Hit>) {
        out.clear();
        if let Some(candidates) = self.candidates(text, scope) {
            self.hits_of(text, candidates, out);
        }
    }

    /// What may match in `text`: the features decide for every detector at once. `None`
    /// for a line without any (most lines) and no custom pattern to run.
    #[inline(always)]
    fn candidates(&self, text: &str, scope: Scope) -> Option<Candidates> {
        let features = if scope == Scope::Patterns || !self.has_detectors {
            Features::default()
        } else {
            Features::of(text)
        };
        let patterns = scope != Scope::Detectors && self.has_patterns;
        (!features.is_empty() || patterns).then_some(Candidates { features, patterns })
    }

    /// [`Redactor::hits`] once the candidates are known (`out` is empty).
    fn hits_of(&self, text: &str, c: Candidates, out: &mut Vec<Hit>) {
        let Candidates { features, patterns } = c;
        RANGES.with(|scratch| match scratch.try_borrow_mut() {
            Ok(mut ranges) => {
                ranges.clear();
                self.matches(text, &features, patterns, &mut ranges, out);
                if ranges.capacity() > MAX_KEPT_RANGES {
                    *ranges = Vec::new(); // a pathological line's buffer is not kept
                }
            }
            Err(_) => self.matches(text, &features, patterns, &mut Vec::new(), out),
        });
        if out.len() > 1 {
            self.resolve_overlaps(out);
        }
    }

    /// The matches in `text` of the rules that `features` (and `patterns`) allow, in rule
    /// order (`ranges` is scratch space).
    fn matches(
        &self,
        text: &str,
        features: &Features,
        patterns: bool,
        ranges: &mut Vec<Range<usize>>,
        out: &mut Vec<Hit>,
    ) {
        let detectors = !features.is_empty();
        match &self.by_feature {
            Some(masks) => {
                let mut wanted = if patterns { masks.patterns } else { 0 };
                let mut bits = if detectors { features.0 } else { 0 };
                while bits != 0 {
                    wanted |= masks.detectors[bits.trailing_zeros() as usize];
                    bits &= bits - 1;
                }
                while wanted != 0 {
                    let i = wanted.trailing_zeros() as usize;
                    wanted &= wanted - 1;
                    self.rule_hits(i, text, features, ranges, out);
                }
            }
            None => {
                for (i, rule) in self.rules.iter().enumerate() {
                    let wanted = match &rule.finder {
                        Finder::Detector(d) => detectors && d.possible(features),
                        Finder::Pattern { .. } => patterns,
                    };
                    if wanted {
                        self.rule_hits(i, text, features, ranges, out);
                    }
                }
            }
        }
    }

    /// Appends rule `i`'s matches in `text` to `out` (`ranges` is scratch space).
    fn rule_hits(
        &self,
        i: usize,
        text: &str,
        features: &Features,
        ranges: &mut Vec<Range<usize>>,
        out: &mut Vec<Hit>,
    ) {
        match &self.rules[i].finder {
            Finder::Detector(d) => d.find_possible(text, features, ranges),
            Finder::Pattern {
                regex,
                value_group: None,
            } => ranges.extend(regex.find_iter(text).map(|m| m.range())),
            Finder::Pattern {
                regex,
                value_group: Some(g),
            } => ranges.extend(
                regex
                    .captures_iter(text)
                    .filter_map(|c| c.get(*g).map(|m| m.range())),
            ),
        }
        out.extend(
            ranges
                .drain(..)
                .filter(|r| !r.is_empty() && !self.allowed(i, &text[r.clone()]))
                .map(|r| Hit {
                    start: r.start,
                    end: r.end,
                    rule: i,
                }),
        );
    }

    /// Whether an `[[allow]]` entry of rule `i` keeps the matched text `m` readable.
    pub(crate) fn allowed(&self, i: usize, m: &str) -> bool {
        let rule = &self.rules[i];
        if rule.allow.is_empty() {
            return false;
        }
        let canonical = |v: &'_ str| match rule.finder {
            Finder::Detector(d) => d.canonical(v).into_owned(),
            Finder::Pattern { .. } => v.to_owned(),
        };
        let m_canonical = canonical(m);
        rule.allow.iter().any(|&a| {
            let a = &self.allow[a];
            a.value
                .as_deref()
                .is_some_and(|v| canonical(v) == m_canonical)
                || a.pattern.as_ref().is_some_and(|p| p.is_match(m))
        })
    }

    /// The rule set's `[[allow]]` entries as `(file:line:col, what it allows and why)`, for
    /// `rules explain`. This is the rule files' own text, never log content.
    pub fn allow_entries(&self) -> impl Iterator<Item = (&str, &str)> {
        self.allow
            .iter()
            .map(|a| (a.location.as_str(), a.text.as_str()))
    }

    /// The matches in `line` that an `[[allow]]` entry kept readable, as (byte range, rule
    /// name), for `rules explain`. Searches the whole line with every rule that has allow
    /// entries; not for the hot path.
    pub fn allowed_in(&self, line: &str) -> Vec<(Range<usize>, &str)> {
        let mut found = Vec::new();
        let mut ranges = Vec::new();
        for (i, rule) in self.rules.iter().enumerate() {
            if rule.allow.is_empty() {
                continue;
            }
            match &rule.finder {
                Finder::Detector(d) => d.find(line, &mut ranges),
                Finder::Pattern { regex, value_group } => {
                    for c in regex.captures_iter(line) {
                        if let Some(m) = c.get(value_group.unwrap_or(0)) {
                            ranges.push(m.range());
                        }
                    }
                }
            }
            for r in ranges.drain(..) {
                if !r.is_empty() && self.allowed(i, &line[r.clone()]) {
                    found.push((r, rule.name.as_str()));
                }
            }
        }
        found.sort_by_key(|(r, _)| r.start);
        found
    }

    /// Makes hits disjoint without leaking a byte of any match: overlapping hits merge
    /// into one span covering their union, acted on by the longest hit's rule (ties: a
    /// locked rule, then rule order) — except that a `partial` rule never acts on a span a
    /// locked rule also matched, so a team rule cannot reveal digits of a baseline match.
    pub(crate) fn resolve_overlaps(&self, hits: &mut Vec<Hit>) {
        hits.sort_by_key(|h| (h.start, std::cmp::Reverse(h.end), h.rule));
        let better = |a: &Hit, b: &Hit| {
            let (la, lb) = (a.end - a.start, b.end - b.start);
            la.cmp(&lb)
                .then(self.rules[a.rule].locked.cmp(&self.rules[b.rule].locked))
                .then(b.rule.cmp(&a.rule))
                .is_gt()
        };
        let mut out: Vec<Hit> = Vec::with_capacity(hits.len());
        let mut i = 0;
        while i < hits.len() {
            let mut span = hits[i];
            let mut best = hits[i];
            let mut locked: Option<Hit> = self.rules[best.rule].locked.then_some(best);
            let mut j = i + 1;
            while j < hits.len() && hits[j].start < span.end {
                let h = hits[j];
                span.end = span.end.max(h.end);
                if better(&h, &best) {
                    best = h;
                }
                if locked.is_none() && self.rules[h.rule].locked {
                    locked = Some(h);
                }
                j += 1;
            }
            let rule = match (self.rules[best.rule].action, locked) {
                (Action::Partial { .. }, Some(l)) if j - i > 1 => l.rule,
                _ => best.rule,
            };
            out.push(Hit { rule, ..span });
            i = j;
        }
        *hits = out;
    }

    /// Writes `text` with every hit replaced by its rule's action.
    pub(crate) fn render(&self, text: &str, hits: &[Hit], counts: &mut Counts, out: &mut String) {
        let mut pos = 0;
        for h in hits {
            out.push_str(&text[pos..h.start]);
            let rule = &self.rules[h.rule];
            let detector = match rule.finder {
                Finder::Detector(d) => Some(d),
                Finder::Pattern { .. } => None,
            };
            self.replacement(
                &rule.name,
                rule.action,
                &text[h.start..h.end],
                detector,
                out,
            );
            counts.bump(h.rule);
            pos = h.end;
        }
        out.push_str(&text[pos..]);
    }

    /// Appends the replacement of `value` under `action`.
    pub(crate) fn replacement(
        &self,
        name: &str,
        action: Action,
        value: &str,
        detector: Option<Detector>,
        out: &mut String,
    ) {
        match action {
            Action::Hash => {
                let canonical = detector.map_or(Cow::Borrowed(value), |d| d.canonical(value));
                out.push_str("[HASH:");
                out.push_str(name);
                out.push(':');
                out.push_str(&self.pseudonym(&canonical));
                out.push(']');
            }
            Action::Partial { keep_last } => partial(value, keep_last, out),
            Action::Mask | Action::DropLine | Action::DropField => {
                out.push_str("[REDACTED:");
                out.push_str(name);
                out.push(']');
            }
        }
    }

    /// The first [`HASH_HEX_DIGITS`] hex digits of HMAC-SHA256(key, value).
    fn pseudonym(&self, value: &str) -> String {
        match &self.key {
            Some(k) => {
                let mut mac = k.clone();
                mac.update(value.as_bytes());
                let tag = mac.finalize().into_bytes();
                hex::encode(&tag[..HASH_HEX_DIGITS / 2])
            }
            // `new` refuses hash rules without a key, so this is unreachable; mask rather
            // than ever emit an unkeyed digest.
            None => "REDACTED".to_owned(),
        }
    }
}

/// `partial`: the last `keep_last` letters/digits stay, every earlier letter/digit becomes
/// `*`, separators stay (`**** **** **** 1111`). A value with fewer than `2 × keep_last`
/// letters/digits is masked completely, so `partial` never reveals more than half of it.
pub(crate) fn partial(value: &str, keep_last: usize, out: &mut String) {
    let alnum = value.chars().filter(|c| c.is_alphanumeric()).count();
    let keep = if alnum >= 2 * keep_last { keep_last } else { 0 };
    let mut seen = 0;
    for c in value.chars() {
        if c.is_alphanumeric() {
            seen += 1;
            out.push(if seen > alnum - keep { c } else { '*' });
        } else {
            out.push(c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fail closed, with deliberate exceptions: an allowed value stays (in any written form
    /// the detector canonicalises to it), every other match of the rule is still masked,
    /// other rules are not affected, and JSON values follow the same rule.
    #[test]
    fn allow_entries_keep_only_what_they_name() {
        let team = r#"
[[allow]]
rules = ["no-fnr"]
value = "150765 00565"
reason = "the e2e tests' person"
[[allow]]
rules = ["card"]
pattern = '4111[ -]?1111[ -]?1111[ -]?1111'
reason = "the PSP's test card"
[[allow]]
rules = ["email"]
value = "QA@example.com"
reason = "the QA mailbox"
"#;
        let set = resolve(&[("team.toml", team)]).unwrap();
        let r = Redactor::new(&set, None).unwrap();
        let apply = |l: &str| {
            r.apply(l, &mut Counts::default())
                .map(|c| c.into_owned())
                .unwrap_or_default()
        };
        assert_eq!(apply("fnr=15076500565 ok"), "fnr=15076500565 ok");
        assert_eq!(apply("fnr=150765 00565 ok"), "fnr=150765 00565 ok");
        assert_eq!(apply("fnr=30108299939"), "fnr=[REDACTED:no-fnr]");
        assert_eq!(
            apply("card 4111 1111 1111 1111"),
            "card 4111 1111 1111 1111"
        );
        assert_eq!(apply("card 5555555555554444"), "card [REDACTED:card]");
        assert_eq!(apply("mail qa@example.com"), "mail qa@example.com");
        assert_eq!(apply("mail kari@example.com"), "mail [REDACTED:email]");
        assert_eq!(
            apply(r#"{"fnr":"15076500565","other":"30108299939"}"#),
            r#"{"fnr":"15076500565","other":"[REDACTED:no-fnr]"}"#
        );
        // Without the entries the same lines are masked.
        let plain = Redactor::new(&resolve(&[]).unwrap(), None).unwrap();
        let out = plain.apply("fnr=15076500565", &mut Counts::default());
        assert_eq!(out.as_deref(), Some("fnr=[REDACTED:no-fnr]"));
    }
    use crate::pack::resolve;

    const KEY: &[u8] = b"0123456789abcdef-test-key";

    fn default_redactor() -> Redactor {
        Redactor::new(&resolve(&[]).unwrap(), None).unwrap()
    }

    use proptest::prelude::Strategy as _;

    proptest::proptest! {
        /// The rules picked through the per-feature masks are the rules the plain pass over
        /// every rule runs, with a custom pattern in the set too.
        #[test]
        fn rule_masks_pick_what_the_rule_loop_picks(
            parts in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::sample::select(vec![
                        "4111111111111111", "4111 1111 1111 1111", "NO9386011117947",
                        "15076500565", "131052-308T", "811218-9876", "a@b.no", "+47 912 34 567",
                        "0412 345 678", "10.1.2.3", "fe80::1", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIx.abc",
                        "Bearer abc.def", "api_key=sk_live_abcdefghijklmnopqrstuvwx", "password=hunter2",
                        "national_id=", "order-4711", "tel", "cpr",
                    ]).prop_map(|s: &str| s.to_owned()),
                    "[a-z0-9 .:=@+-]{0,12}",
                ],
                0..12,
            )
        ) {
            let line = parts.join(" ");
            let team = r#"extends = ["baseline", "eu-pii"]
[[rule]]
name = "order"
pattern = 'order-[0-9]+'
action = "mask"
"#;
            let set = resolve(&[("t.toml", team)]).unwrap();
            let masked = Redactor::new(&set, None).unwrap();
            let mut looped = Redactor::new(&set, None).unwrap();
            looped.by_feature = None;
            for scope in [Scope::All, Scope::Detectors, Scope::Patterns] {
                let (mut a, mut b) = (Vec::new(), Vec::new());
                masked.hits(&line, scope, &mut a);
                looped.hits(&line, scope, &mut b);
                proptest::prop_assert_eq!(a, b, "{:?}", line);
            }
        }
    }

    proptest::proptest! {
        /// One output buffer and this thread's scratch reused over a run of text, JSON,
        /// broken-JSON and dropped lines give each line exactly what a fresh thread gives
        /// it, counts included: nothing of one line leaks into the next.
        #[test]
        fn apply_into_with_reused_buffers_is_apply_on_a_fresh_thread(
            lines in proptest::collection::vec(
                (
                    0usize..6,
                    proptest::sample::select(vec![
                        "4111 1111 1111 1111", "NO9386011117947", "a@b.no", "+47 912 34 567",
                        "10.1.2.3", "password=hunter2", "customer_id=C00471100", "order 4711",
                        "\"GET /healthz HTTP/1.1\" 200 ", "", "Bearer abc.def",
                    ]),
                    "[a-z0-9 .=@-]{0,10}",
                ),
                1..10,
            )
        ) {
            let team = include_str!("../../../deploy/rules/payments.toml");
            let set = resolve(&[("payments.toml", team)]).unwrap();
            let r = std::sync::Arc::new(Redactor::new(&set, Some(KEY)).unwrap());
            let lines: Vec<String> = lines
                .into_iter()
                .map(|(shape, pii, filler)| {
                    let pii = pii.replace('"', "'");
                    match shape {
                        0 => format!("{filler} {pii} {filler}"),
                        1 => format!(r#"{{"msg":"{pii}","n":{}}}"#, filler.len()),
                        2 => format!(
                            r#"{{"customer":{{"email":"{filler}@x.no"}},"m":"{pii} {filler}"}}"#
                        ),
                        3 => format!(r#"{{"msg": "{pii}" "{filler}"}}"#), // not JSON
                        4 => format!(r#"{{"m":"\u0040{filler} {pii}","c":4111111111111111}}"#),
                        _ => format!("{pii}\"GET /healthz HTTP/1.1\" 200 {filler}"),
                    }
                })
                .collect();
            let fresh: Vec<(Option<String>, Counts)> = lines
                .iter()
                .map(|line| {
                    let (r, line) = (r.clone(), line.clone());
                    std::thread::spawn(move || {
                        let mut counts = Counts::default();
                        let out = r.apply(&line, &mut counts).map(Cow::into_owned);
                        (out, counts)
                    })
                    .join()
                    .unwrap()
                })
                .collect();
            let mut buf = String::from("stale bytes from an earlier line");
            for (line, (want, want_counts)) in lines.iter().zip(&fresh) {
                let mut counts = Counts::default();
                let got = match r.apply_into(line, &mut counts, &mut buf) {
                    Applied::Unchanged => Some(line.clone()),
                    Applied::Rewritten => Some(buf.clone()),
                    Applied::Dropped => None,
                };
                proptest::prop_assert_eq!(&got, want, "{:?}", line);
                proptest::prop_assert_eq!(counts.by_name(&r), want_counts.by_name(&r));
            }
        }
    }

    fn apply(r: &Redactor, line: &str) -> Option<String> {
        r.apply(line, &mut Counts::default()).map(Cow::into_owned)
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
            assert_eq!(r.apply(input, &mut c).unwrap(), want, "{input}");
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
            r.apply("GET /health 200 1.2ms", &mut c),
            Some(Cow::Borrowed(_))
        ));
        assert_eq!(c.total(), 0);
    }

    #[test]
    fn hash_needs_a_key_and_is_keyed() {
        let team = "[[rule]]\nname = \"cust\"\npattern = 'cust-[0-9]+'\naction = \"hash\"\n";
        let set = resolve(&[("t.toml", team)]).unwrap();
        let err = Redactor::new(&set, None).unwrap_err().to_string();
        assert!(
            err.contains("rule \"cust\"") && err.contains("hash key"),
            "{err}"
        );
        assert!(Redactor::new(&set, Some(b"short")).is_err());
        let a = Redactor::new(&set, Some(KEY)).unwrap();
        let b = Redactor::new(&set, Some(b"another-key-of-16-bytes")).unwrap();
        let la = apply(&a, "x cust-42 y").unwrap();
        assert!(
            la.starts_with("x [HASH:cust:") && la.ends_with("] y"),
            "{la}"
        );
        assert_eq!(la.len(), "x [HASH:cust:] y".len() + HASH_HEX_DIGITS);
        assert_eq!(apply(&a, "x cust-42 y").unwrap(), la, "deterministic");
        assert_ne!(apply(&b, "x cust-42 y").unwrap(), la, "depends on the key");
        assert_ne!(apply(&a, "x cust-43 y").unwrap(), la);
        // The version does not depend on the key.
        assert_eq!(a.version(), b.version());
    }

    #[test]
    fn canonical_forms_share_a_pseudonym() {
        let team =
            "extends = []\n[[rule]]\nname = \"iban-h\"\ndetector = \"iban\"\naction = \"hash\"\n";
        let r = Redactor::new(&resolve(&[("t.toml", team)]).unwrap(), Some(KEY)).unwrap();
        let a = apply(&r, "NO9386011117947").unwrap();
        let b = apply(&r, "NO93 8601 1117 947").unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn partial_keeps_the_tail() {
        let cases = [
            ("4111 1111 1111 1111", 4, "**** **** **** 1111"),
            ("4111111111111111", 4, "************1111"),
            ("1234567", 4, "*******"),
            ("ab-cd", 1, "**-*d"),
        ];
        for (v, n, want) in cases {
            let mut s = String::new();
            partial(v, n, &mut s);
            assert_eq!(s, want, "{v}");
        }
    }

    #[test]
    fn drop_line_is_counted() {
        let team =
            "[[rule]]\nname = \"healthcheck\"\npattern = 'GET /healthz'\naction = \"drop_line\"\n";
        let r = Redactor::new(&resolve(&[("t.toml", team)]).unwrap(), None).unwrap();
        let mut c = Counts::default();
        assert_eq!(r.apply("GET /healthz 200", &mut c), None);
        assert_eq!(c.by_name(&r).get("healthcheck"), Some(&1));
        assert!(r.apply("GET /x 200", &mut c).is_some());
    }

    #[test]
    fn value_group_narrows_a_custom_pattern() {
        let team = "[[rule]]\nname = \"cust\"\npattern = 'customer=(?P<value>[0-9]+)'\n";
        let r = Redactor::new(&resolve(&[("t.toml", team)]).unwrap(), None).unwrap();
        assert_eq!(
            apply(&r, "customer=4711 paid").unwrap(),
            "customer=[REDACTED:cust] paid"
        );
    }

    #[test]
    fn locked_rules_win_overlaps() {
        // A team rule that would keep half of a card number loses to the locked card rule.
        let team = "[[rule]]\nname = \"num\"\npattern = '[0-9 ]{10,}'\naction = \"partial\"\nkeep_last = 8\n";
        let r = Redactor::new(&resolve(&[("t.toml", team)]).unwrap(), None).unwrap();
        assert_eq!(
            apply(&r, "x 4111 1111 1111 1111").unwrap(),
            "x[REDACTED:card]"
        );
    }

    #[test]
    fn explain_reports_rule_range_and_action() {
        let r = default_redactor();
        let e = r.explain("mail kari@example.no now");
        assert_eq!(e.output.as_deref(), Some("mail [REDACTED:email] now"));
        assert_eq!(
            e.hits,
            vec![ExplainHit {
                rule: "email".into(),
                action: "mask".into(),
                field: None,
                range: 5..20
            }]
        );
    }
}
