//! A planned log query: compiled stream matchers, the line filters a store may push down,
//! and the rest of the pipeline (parsers, label filters, formats) run per entry.
//!
//! Invariants: `filters` holds only the leading plain line filters (`|=`, `!=`, `|~`, `!~`
//! with one value each) and a line passes them before anything else runs, so a store may
//! apply them (and `may_match` on whole blocks) first; every later stage is in `stages` in
//! query order. Per entry, [`EntryState`] reuses its buffers, so a steady scan allocates
//! nothing for the label set once the buffers have grown. A failing parser or conversion sets
//! `__error__` (and `__error_details__`) as Loki does and keeps the entry.

use std::collections::BTreeMap;

use regex::Regex;

use crate::ast::{CmpOp, LabelFilter, LabelFmt, LabelSel, LineOp, MatchOp, ParserExpr, Stage};
use crate::parsers::{self, PathStep, Pattern};
use crate::template::{Template, Vars};
use crate::units;

/// A stream's label set, as the store keeps it.
pub type Labels = BTreeMap<String, String>;

/// The label a failing stage sets.
pub const ERROR_LABEL: &str = "__error__";
/// The label holding a failing stage's reason.
pub const ERROR_DETAILS_LABEL: &str = "__error_details__";

/// One compiled label matcher of a stream selector.
#[derive(Debug, Clone)]
pub struct Matcher {
    pub name: String,
    pub op: MatchOp,
    pub value: String,
    re: Option<Regex>,
}

impl Matcher {
    /// Builds a matcher; regex matchers are compiled anchored, as in Loki.
    pub fn new(name: &str, op: MatchOp, value: &str) -> Result<Matcher, String> {
        let re = match op {
            MatchOp::Re | MatchOp::Nre => Some(compile_regex(&anchored(value))?),
            _ => None,
        };
        Ok(Matcher::with_regex(name, op, value, re))
    }

    pub(crate) fn with_regex(name: &str, op: MatchOp, value: &str, re: Option<Regex>) -> Matcher {
        Matcher {
            name: name.to_owned(),
            op,
            value: value.to_owned(),
            re,
        }
    }

    /// Whether a label set satisfies this matcher (a missing label is the empty string).
    pub fn matches(&self, labels: &Labels) -> bool {
        self.matches_value(labels.get(&self.name).map_or("", String::as_str))
    }

    /// Whether a value satisfies this matcher.
    pub fn matches_value(&self, v: &str) -> bool {
        match (self.op, &self.re) {
            (MatchOp::Eq, _) => v == self.value,
            (MatchOp::Ne, _) => v != self.value,
            (MatchOp::Re, Some(re)) => re.is_match(v),
            (MatchOp::Nre, Some(re)) => !re.is_match(v),
            _ => false,
        }
    }
}

/// A label matcher's regex is anchored at both ends, as in Loki.
pub fn anchored(value: &str) -> String {
    format!("^(?:{value})$")
}

/// Compiles a regex within [`crate::limits::MAX_QUERY_REGEX_BYTES`].
pub fn compile_regex(p: &str) -> Result<Regex, String> {
    regex::RegexBuilder::new(p)
        .size_limit(crate::limits::MAX_QUERY_REGEX_BYTES)
        .build()
        .map_err(|e| {
            format!(
                "invalid regex: {}",
                e.to_string()
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            )
        })
}

/// A substring needle with a precompiled SIMD searcher (`|=` and `!=` are the hot loop of a
/// scan).
#[derive(Debug, Clone)]
pub struct Needle(memchr::memmem::Finder<'static>);

impl Needle {
    /// Compiles a needle.
    pub fn new(s: &str) -> Needle {
        Needle(memchr::memmem::Finder::new(s.as_bytes()).into_owned())
    }

    /// Whether `hay` contains the needle.
    pub fn found_in(&self, hay: &[u8]) -> bool {
        self.0.find(hay).is_some()
    }

    /// The needle text.
    pub fn as_str(&self) -> &str {
        // Built from a &str in `new`.
        std::str::from_utf8(self.0.needle()).unwrap_or_default()
    }
}

/// One plain line filter (the kind a store may push down).
#[derive(Debug, Clone)]
pub enum LineFilter {
    Contains(Needle),
    NotContains(Needle),
    Matches(Regex),
    NotMatches(Regex),
}

impl LineFilter {
    /// Whether this filter narrows the lines down to some: `|=` with a non-empty needle or
    /// `|~` with a regex that does not match the empty line.
    pub fn selects(&self) -> bool {
        match self {
            LineFilter::Contains(n) => !n.as_str().is_empty(),
            LineFilter::Matches(re) => !re.is_match(""),
            LineFilter::NotContains(_) | LineFilter::NotMatches(_) => false,
        }
    }

    /// Whether `line` passes this filter.
    pub fn keep(&self, line: &str) -> bool {
        match self {
            LineFilter::Contains(n) => n.found_in(line.as_bytes()),
            LineFilter::NotContains(n) => !n.found_in(line.as_bytes()),
            LineFilter::Matches(re) => re.is_match(line),
            LineFilter::NotMatches(re) => !re.is_match(line),
        }
    }
}

/// One alternative of a general line filter.
#[derive(Debug, Clone)]
pub(crate) enum LineTest {
    Needle(Box<Needle>),
    Regex(Regex),
    Pattern(Pattern),
}

impl LineTest {
    fn test(&self, line: &str) -> bool {
        match self {
            LineTest::Needle(n) => n.found_in(line.as_bytes()),
            LineTest::Regex(r) => r.is_match(line),
            LineTest::Pattern(p) => p.is_match(line),
        }
    }
}

/// A compiled label filter.
#[derive(Debug, Clone)]
pub(crate) enum LabelTest {
    And(Box<LabelTest>, Box<LabelTest>),
    Or(Box<LabelTest>, Box<LabelTest>),
    Str(Matcher),
    Number { name: String, op: CmpOp, value: f64 },
    Duration { name: String, op: CmpOp, secs: f64 },
    Bytes { name: String, op: CmpOp, bytes: f64 },
}

/// A compiled `drop`/`keep` entry.
#[derive(Debug, Clone)]
pub(crate) struct LabelPick {
    name: String,
    matcher: Option<Matcher>,
}

/// A compiled `label_format` assignment.
#[derive(Debug, Clone)]
pub(crate) enum LabelFormatC {
    Rename { dst: String, src: String },
    Template { dst: String, template: Template },
}

/// A compiled pipeline stage.
#[derive(Debug, Clone)]
pub(crate) enum StageC {
    Line {
        positive: bool,
        tests: Vec<LineTest>,
    },
    Json(Vec<(String, Vec<PathStep>)>),
    Logfmt {
        strict: bool,
        keep_empty: bool,
        params: Vec<(String, String)>,
    },
    Regexp(Regex),
    Pattern(Pattern),
    Unpack,
    Filter(LabelTest),
    LineFormat(Template),
    LabelFormat(Vec<LabelFormatC>),
    Drop(Vec<LabelPick>),
    Keep(Vec<LabelPick>),
    Decolorize,
}

/// A planned log query.
#[derive(Debug, Clone)]
pub struct LogQuery {
    pub matchers: Vec<Matcher>,
    /// The leading plain line filters, which a store may apply first.
    pub filters: Vec<LineFilter>,
    pub(crate) stages: Vec<StageC>,
    /// The only extracted labels anything after the parser reads, when the planner could
    /// tell (a metric leaf grouped `by` a few labels): flattening parsers skip the rest.
    pub(crate) only: Option<Vec<String>>,
}

impl LogQuery {
    /// Whether a stream's labels satisfy every matcher.
    pub fn matches_stream(&self, labels: &Labels) -> bool {
        self.matchers.iter().all(|m| m.matches(labels))
    }

    /// Whether a line passes every pushed-down line filter.
    pub fn keep_line(&self, line: &str) -> bool {
        self.filters.iter().all(|f| f.keep(line))
    }

    /// Whether any line of a block could pass: false when a `|=` needle does not occur in
    /// the whole block. May say true when no line passes; never false when one does.
    pub fn may_match(&self, block: &[u8]) -> bool {
        self.filters.iter().all(|f| match f {
            LineFilter::Contains(n) => n.found_in(block),
            _ => true,
        })
    }

    /// Whether the query has stages beyond the pushed-down line filters; without them an
    /// entry's labels are its stream's and its line is unchanged.
    pub fn has_pipeline(&self) -> bool {
        !self.stages.is_empty()
    }

    /// Whether the pipeline has only line and label filters: no parser, format or
    /// drop/keep, so an entry it keeps is unchanged (what an erasure may take).
    pub fn filters_only(&self) -> bool {
        self.stages
            .iter()
            .all(|s| matches!(s, StageC::Line { .. } | StageC::Filter(_)))
    }

    /// Whether a label filter of the pipeline keeps only entries that have some label: a
    /// string test that the empty value fails (`trace_id="abc"`, `user=~".+"`), alone or in
    /// an `and`, or on both sides of an `or`.
    pub fn label_filter_selects(&self) -> bool {
        fn selects(t: &LabelTest) -> bool {
            match t {
                LabelTest::And(a, b) => selects(a) || selects(b),
                LabelTest::Or(a, b) => selects(a) && selects(b),
                LabelTest::Str(m) => !m.matches_value(""),
                LabelTest::Number { .. } | LabelTest::Duration { .. } | LabelTest::Bytes { .. } => {
                    false
                }
            }
        }
        self.stages
            .iter()
            .any(|s| matches!(s, StageC::Filter(t) if selects(t)))
    }

    /// Whether the pipeline may change an entry's labels (parsers, formats, drop/keep).
    pub fn changes_labels(&self) -> bool {
        // A label filter may set `__error__`, so it counts.
        self.stages.iter().any(|s| {
            !matches!(
                s,
                StageC::Line { .. } | StageC::LineFormat(_) | StageC::Decolorize
            )
        })
    }

    /// Runs the pipeline (not the pushed-down filters) over one entry. Returns whether the
    /// entry is kept; its labels and line are then in `st`.
    pub fn process(&self, st: &mut EntryState, stream: &Labels, ts: i64, line: &str) -> bool {
        self.process_meta(st, stream, &[], ts, line)
    }

    /// [`LogQuery::process`] over an entry with structured metadata: its pairs join the
    /// stream's labels (a stream label of the same name wins), as Loki merges them.
    pub fn process_meta(
        &self,
        st: &mut EntryState,
        stream: &Labels,
        meta: &[(&str, &str)],
        ts: i64,
        line: &str,
    ) -> bool {
        st.reset_meta(stream, meta);
        for stage in &self.stages {
            if !st.apply(stage, stream, ts, line, self.only.as_deref()) {
                return false;
            }
        }
        true
    }
}

/// The labels of one entry while a pipeline runs: stream labels first, then extracted
/// ones, in reused string buffers.
#[derive(Debug, Default, Clone)]
pub struct LabelBuf {
    items: Vec<(String, String)>,
    len: usize,
}

impl LabelBuf {
    fn clear(&mut self) {
        self.len = 0;
    }

    /// The value of `name`, if set.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.items[..self.len]
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Sets `name` to `value`, reusing buffers.
    pub fn set(&mut self, name: &str, value: &str) {
        if let Some((_, v)) = self.items[..self.len].iter_mut().find(|(k, _)| k == name) {
            v.clear();
            v.push_str(value);
            return;
        }
        if self.len == self.items.len() {
            self.items.push((name.to_owned(), value.to_owned()));
        } else {
            let (k, v) = &mut self.items[self.len];
            k.clear();
            k.push_str(name);
            v.clear();
            v.push_str(value);
        }
        self.len += 1;
    }

    /// Removes `name`.
    pub fn remove(&mut self, name: &str) {
        if let Some(i) = self.items[..self.len].iter().position(|(k, _)| k == name) {
            self.len -= 1;
            self.items.swap(i, self.len);
        }
    }

    /// Sets `__error__` and `__error_details__` unless an earlier stage set them.
    pub fn set_error(&mut self, kind: &str, details: &str) {
        if self.get(ERROR_LABEL).is_none() {
            self.set(ERROR_LABEL, kind);
            self.set(ERROR_DETAILS_LABEL, details);
        }
    }

    /// Keeps only the labels for which `keep(name, value)` holds.
    fn retain(&mut self, keep: impl Fn(&str, &str) -> bool) {
        let mut i = 0;
        while i < self.len {
            if keep(&self.items[i].0, &self.items[i].1) {
                i += 1;
            } else {
                self.len -= 1;
                self.items.swap(i, self.len);
            }
        }
    }

    /// The labels, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.items[..self.len]
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The labels as a map.
    pub fn to_labels(&self) -> Labels {
        self.iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    /// A canonical key of the label set (sorted `name=value` pairs) written into `out`,
    /// skipping `except`.
    pub fn key_into(&self, out: &mut String, except: Option<&str>) {
        out.clear();
        // Label sets are small: sort indices on the stack when they fit.
        let mut small = [0usize; 32];
        let mut big = Vec::new();
        let idx: &mut [usize] = if self.len <= small.len() {
            for (i, x) in small.iter_mut().enumerate().take(self.len) {
                *x = i;
            }
            &mut small[..self.len]
        } else {
            big.extend(0..self.len);
            &mut big
        };
        idx.sort_unstable_by(|a, b| self.items[*a].0.cmp(&self.items[*b].0));
        for &i in idx.iter() {
            let (k, v) = &self.items[i];
            if Some(k.as_str()) == except {
                continue;
            }
            out.push_str(k);
            out.push('\u{0}');
            out.push_str(v);
            out.push('\u{1}');
        }
    }
}

/// Per-scan scratch state of [`LogQuery::process`]: the entry's labels and (when a stage
/// rewrote it) its line.
#[derive(Debug, Default, Clone)]
pub struct EntryState {
    pub labels: LabelBuf,
    line: String,
    replaced: bool,
    key: String,
    tmp: String,
}

struct TVars<'a> {
    labels: &'a LabelBuf,
    line: &'a str,
    ts: i64,
}

impl Vars for TVars<'_> {
    fn label(&self, name: &str) -> &str {
        self.labels.get(name).unwrap_or("")
    }
    fn line(&self) -> &str {
        self.line
    }
    fn ts(&self) -> i64 {
        self.ts
    }
}

impl EntryState {
    pub(crate) fn reset(&mut self, stream: &Labels) {
        self.reset_meta(stream, &[]);
    }

    /// Starts an entry whose labels are `stream`'s and then `meta`'s where `stream` has no
    /// label of the name.
    pub(crate) fn reset_meta(&mut self, stream: &Labels, meta: &[(&str, &str)]) {
        self.labels.clear();
        for (k, v) in stream {
            self.labels.set(k, v);
        }
        for (k, v) in meta {
            if !stream.contains_key(*k) {
                self.labels.set(k, v);
            }
        }
        self.replaced = false;
    }

    /// The entry's line after the pipeline (`orig` unless a stage rewrote it).
    pub fn line<'a>(&'a self, orig: &'a str) -> &'a str {
        if self.replaced {
            &self.line
        } else {
            orig
        }
    }

    /// Adds an extracted label: sanitised, and suffixed `_extracted` when the stream has a
    /// label of that name, as Loki does; skipped when `only` says nothing reads it.
    fn extract(
        labels: &mut LabelBuf,
        stream: &Labels,
        name: &str,
        value: &str,
        tmp: &mut String,
        only: Option<&[String]>,
    ) {
        if labels.len >= crate::limits::MAX_EXTRACTED_LABELS + stream.len() {
            return;
        }
        let wanted = |n: &str| only.is_none_or(|o| o.iter().any(|x| x == n));
        if stream.contains_key(name) {
            tmp.clear();
            tmp.push_str(name);
            tmp.push_str("_extracted");
            if wanted(tmp) {
                labels.set(tmp, value);
            }
        } else if wanted(name) {
            labels.set(name, value);
        }
    }

    fn apply(
        &mut self,
        stage: &StageC,
        stream: &Labels,
        ts: i64,
        orig: &str,
        only: Option<&[String]>,
    ) -> bool {
        let EntryState {
            labels,
            line,
            replaced,
            key,
            tmp,
        } = self;
        let cur: &str = if *replaced { line } else { orig };
        match stage {
            StageC::Line { positive, tests } => {
                let any = tests.iter().any(|t| t.test(cur));
                return any == *positive;
            }
            StageC::Json(params) if params.is_empty() => {
                let res = parsers::json_flatten(cur, key, &mut |n, v| {
                    Self::extract(labels, stream, n, v, tmp, only)
                });
                if let Err(e) = res {
                    labels.set_error("JSONParserErr", &e);
                }
            }
            StageC::Json(params) => match serde_json::from_str::<serde_json::Value>(cur) {
                Ok(v) => {
                    for (label, path) in params {
                        if let Some(val) = parsers::json_lookup(&v, path) {
                            labels.set(label, &val);
                        }
                    }
                }
                Err(e) => {
                    let msg = format!("invalid JSON at line {} column {}", e.line(), e.column());
                    labels.set_error("JSONParserErr", &msg);
                }
            },
            StageC::Logfmt {
                strict,
                keep_empty,
                params,
            } => {
                let res = parsers::logfmt(cur, *strict, &mut |k, v, standalone| {
                    if (v.is_empty() || standalone) && !*keep_empty {
                        return;
                    }
                    if params.is_empty() {
                        key.clear();
                        parsers::sanitize_into(k, key);
                        Self::extract(labels, stream, key, v, tmp, only);
                    } else {
                        for (label, src) in params {
                            if src == k {
                                labels.set(label, v);
                            }
                        }
                    }
                });
                if let Err(e) = res {
                    labels.set_error("LogfmtParserErr", &e);
                }
            }
            StageC::Regexp(re) => {
                if let Some(caps) = re.captures(cur) {
                    for name in re.capture_names().flatten() {
                        if let Some(m) = caps.name(name) {
                            Self::extract(labels, stream, name, m.as_str(), tmp, only);
                        }
                    }
                }
            }
            StageC::Pattern(p) => {
                p.matches(cur, &mut |n, v| {
                    Self::extract(labels, stream, n, v, tmp, only)
                });
            }
            StageC::Unpack => {
                match serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(cur) {
                    Ok(obj) => {
                        let mut new_line = None;
                        for (k, v) in &obj {
                            if let serde_json::Value::String(s) = v {
                                if k == "_entry" {
                                    new_line = Some(s.clone());
                                } else {
                                    let mut n = String::new();
                                    parsers::sanitize_into(k, &mut n);
                                    Self::extract(labels, stream, &n, s, tmp, only);
                                }
                            }
                        }
                        if let Some(l) = new_line {
                            *line = l;
                            *replaced = true;
                        }
                    }
                    Err(e) => {
                        let msg =
                            format!("invalid JSON at line {} column {}", e.line(), e.column());
                        labels.set_error("JSONParserErr", &msg);
                    }
                }
            }
            StageC::Filter(t) => match eval_label_test(t, labels) {
                Ok(keep) => return keep,
                Err(details) => {
                    labels.set_error("LabelFilterErr", &details);
                    return true;
                }
            },
            StageC::LineFormat(t) => {
                let vars = TVars {
                    labels,
                    line: cur,
                    ts,
                };
                t.render(&vars, tmp);
                std::mem::swap(line, tmp);
                *replaced = true;
            }
            StageC::LabelFormat(fmts) => {
                for f in fmts {
                    match f {
                        LabelFormatC::Rename { dst, src } => {
                            let v = labels.get(src).unwrap_or("").to_owned();
                            labels.remove(src);
                            labels.set(dst, &v);
                        }
                        LabelFormatC::Template { dst, template } => {
                            let vars = TVars {
                                labels,
                                line: cur,
                                ts,
                            };
                            template.render(&vars, tmp);
                            labels.set(dst, tmp);
                        }
                    }
                }
            }
            StageC::Drop(picks) => labels.retain(|k, v| {
                !picks
                    .iter()
                    .any(|p| p.name == k && p.matcher.as_ref().is_none_or(|m| m.matches_value(v)))
            }),
            StageC::Keep(picks) => labels.retain(|k, v| {
                picks
                    .iter()
                    .any(|p| p.name == k && p.matcher.as_ref().is_none_or(|m| m.matches_value(v)))
            }),
            StageC::Decolorize => {
                decolorize(cur, tmp);
                std::mem::swap(line, tmp);
                *replaced = true;
            }
        }
        true
    }
}

/// Removes ANSI escape sequences (`ESC [ … letter`).
fn decolorize(s: &str, out: &mut String) {
    out.clear();
    let mut rest = s;
    while let Some(i) = rest.find('\x1b') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(seq) = after.strip_prefix('[') {
            let end = seq
                .find(|c: char| c.is_ascii_alphabetic())
                .map_or(seq.len(), |e| e + 1);
            rest = &seq[end..];
        } else {
            rest = after;
        }
    }
    out.push_str(rest);
}

/// Evaluates a label filter; `Err` carries the details of a value that did not convert.
fn eval_label_test(t: &LabelTest, labels: &LabelBuf) -> Result<bool, String> {
    let num =
        |name: &str, conv: fn(&str) -> Option<f64>, what: &str| -> Result<Option<f64>, String> {
            match labels.get(name) {
                None => Ok(None),
                Some(v) => conv(v)
                    .map(Some)
                    .ok_or_else(|| format!("the value of label {name} is not a {what}")),
            }
        };
    // As in Loki, numeric filters pass an entry that already failed a stage, so that the
    // error reaches the user; only a string filter (`__error__=""`) drops it.
    let failed = || labels.get(ERROR_LABEL).is_some();
    Ok(match t {
        LabelTest::Number { .. } | LabelTest::Duration { .. } | LabelTest::Bytes { .. }
            if failed() =>
        {
            true
        }
        LabelTest::And(a, b) => eval_label_test(a, labels)? && eval_label_test(b, labels)?,
        LabelTest::Or(a, b) => eval_label_test(a, labels)? || eval_label_test(b, labels)?,
        LabelTest::Str(m) => m.matches_value(labels.get(&m.name).unwrap_or("")),
        LabelTest::Number { name, op, value } => {
            match num(name, |v| v.trim().parse::<f64>().ok(), "number")? {
                Some(v) => op.apply(v, *value),
                None => false,
            }
        }
        LabelTest::Duration { name, op, secs } => {
            match num(name, units::duration_seconds, "duration")? {
                Some(v) => op.apply(v, *secs),
                None => false,
            }
        }
        LabelTest::Bytes { name, op, bytes } => {
            match num(
                name,
                |v| units::parse_bytes(v.trim()).map(|b| b as f64),
                "byte size",
            )? {
                Some(v) => op.apply(v, *bytes),
                None => false,
            }
        }
    })
}

/// Counts regexes and their source bytes against the per-query limits while planning.
#[derive(Debug, Default)]
pub(crate) struct RegexBudget {
    count: usize,
    bytes: usize,
}

impl RegexBudget {
    /// Compiles one regex of the query (`source` as written, `pattern` as compiled),
    /// refusing it first if it would take the query over a limit.
    pub(crate) fn compile(&mut self, source: &str, pattern: &str) -> Result<Regex, String> {
        use crate::limits::{MAX_QUERY_REGEXES, MAX_QUERY_REGEX_SOURCE_BYTES};
        self.count += 1;
        self.bytes += source.len();
        if self.count > MAX_QUERY_REGEXES {
            return Err(format!(
                "a query may hold at most {MAX_QUERY_REGEXES} regular expressions"
            ));
        }
        if self.bytes > MAX_QUERY_REGEX_SOURCE_BYTES {
            return Err(format!(
                "the regular expressions of a query may total at most {MAX_QUERY_REGEX_SOURCE_BYTES} bytes"
            ));
        }
        compile_regex(pattern).map_err(|e| format!("{e} in \"{source}\""))
    }

    pub(crate) fn matcher(
        &mut self,
        name: &str,
        op: MatchOp,
        value: &str,
    ) -> Result<Matcher, String> {
        let re = match op {
            MatchOp::Re | MatchOp::Nre => Some(self.compile(value, &anchored(value))?),
            _ => None,
        };
        Ok(Matcher::with_regex(name, op, value, re))
    }
}

fn label_test(f: &LabelFilter, b: &mut RegexBudget) -> Result<LabelTest, String> {
    Ok(match f {
        LabelFilter::And(x, y) => {
            LabelTest::And(Box::new(label_test(x, b)?), Box::new(label_test(y, b)?))
        }
        LabelFilter::Or(x, y) => {
            LabelTest::Or(Box::new(label_test(x, b)?), Box::new(label_test(y, b)?))
        }
        LabelFilter::Str { name, op, value } => LabelTest::Str(b.matcher(name, *op, value)?),
        LabelFilter::Number { name, op, value } => LabelTest::Number {
            name: name.clone(),
            op: *op,
            value: *value,
        },
        LabelFilter::Duration { name, op, ns } => LabelTest::Duration {
            name: name.clone(),
            op: *op,
            secs: *ns as f64 / 1e9,
        },
        LabelFilter::Bytes { name, op, bytes } => LabelTest::Bytes {
            name: name.clone(),
            op: *op,
            bytes: *bytes as f64,
        },
    })
}

/// Compiles a label filter (for unwrap's post-filters too).
pub(crate) fn compile_label_filter(
    f: &LabelFilter,
    b: &mut RegexBudget,
) -> Result<LabelTest, String> {
    label_test(f, b)
}

/// Whether a sample's labels pass a compiled filter; a conversion failure sets `__error__`.
pub(crate) fn apply_label_filter(t: &LabelTest, st: &mut EntryState) -> bool {
    match eval_label_test(t, &st.labels) {
        Ok(k) => k,
        Err(d) => {
            st.labels.set_error("LabelFilterErr", &d);
            true
        }
    }
}

/// Sets `__error__` on a sample whose unwrapped value did not convert.
pub(crate) fn set_sample_error(st: &mut EntryState, details: &str) {
    st.labels.set_error("SampleExtractionErr", details);
}

fn picks(sels: &[LabelSel], b: &mut RegexBudget) -> Result<Vec<LabelPick>, String> {
    sels.iter()
        .map(|s| {
            Ok(LabelPick {
                name: s.name.clone(),
                matcher: match &s.matcher {
                    Some((op, v)) => Some(b.matcher(&s.name, *op, v)?),
                    None => None,
                },
            })
        })
        .collect()
}

/// Compiles a selector and pipeline. The error names the failing part.
pub(crate) fn compile_log(
    matchers: &[crate::ast::LabelMatcher],
    stages: &[Stage],
    b: &mut RegexBudget,
) -> Result<LogQuery, String> {
    let matchers = matchers
        .iter()
        .map(|m| b.matcher(&m.name, m.op, &m.value))
        .collect::<Result<Vec<_>, _>>()?;
    if matchers.iter().all(|m| m.matches_value("")) {
        return Err("queries require at least one label matcher that does not match the empty value, e.g. {team=\"payments\"}".to_owned());
    }
    let mut filters = Vec::new();
    let mut out = Vec::new();
    for s in stages {
        let c = match s {
            Stage::LineFilter(lf) => {
                let mut tests = Vec::new();
                for v in &lf.values {
                    tests.push(match lf.op {
                        LineOp::Contains | LineOp::NotContains => {
                            LineTest::Needle(Box::new(Needle::new(v)))
                        }
                        LineOp::Regex | LineOp::NotRegex => LineTest::Regex(b.compile(v, v)?),
                        LineOp::Pattern | LineOp::NotPattern => LineTest::Pattern(
                            Pattern::compile(v)
                                .map_err(|e| format!("{e}: invalid pattern \"{v}\""))?,
                        ),
                    });
                }
                // A leading single-value plain filter goes to the store.
                if out.is_empty() && tests.len() == 1 {
                    let pushed = match (lf.op, tests.pop()) {
                        (LineOp::Contains, Some(LineTest::Needle(n))) => {
                            Ok(LineFilter::Contains(*n))
                        }
                        (LineOp::NotContains, Some(LineTest::Needle(n))) => {
                            Ok(LineFilter::NotContains(*n))
                        }
                        (LineOp::Regex, Some(LineTest::Regex(r))) => Ok(LineFilter::Matches(r)),
                        (LineOp::NotRegex, Some(LineTest::Regex(r))) => {
                            Ok(LineFilter::NotMatches(r))
                        }
                        (_, Some(t)) => Err(t),
                        (_, None) => continue,
                    };
                    match pushed {
                        Ok(f) => {
                            filters.push(f);
                            continue;
                        }
                        Err(t) => tests.push(t),
                    }
                }
                StageC::Line {
                    positive: lf.op.positive(),
                    tests,
                }
            }
            Stage::Parser(p) => match p {
                ParserExpr::Json(params) => StageC::Json(
                    params
                        .iter()
                        .map(|x| {
                            let expr = x.expr.as_deref().unwrap_or(&x.label);
                            Ok((x.label.clone(), parsers::json_path(expr)?))
                        })
                        .collect::<Result<_, String>>()?,
                ),
                ParserExpr::Logfmt {
                    strict,
                    keep_empty,
                    params,
                } => StageC::Logfmt {
                    strict: *strict,
                    keep_empty: *keep_empty,
                    params: params
                        .iter()
                        .map(|x| {
                            (
                                x.label.clone(),
                                x.expr.clone().unwrap_or_else(|| x.label.clone()),
                            )
                        })
                        .collect(),
                },
                ParserExpr::Regexp(r) => {
                    let re = b.compile(r, r)?;
                    if re.capture_names().flatten().next().is_none() {
                        return Err(format!(
                            "a regexp parser needs at least one named capture such as (?P<name>…): \"{r}\""
                        ));
                    }
                    StageC::Regexp(re)
                }
                ParserExpr::Pattern(p) => StageC::Pattern(
                    Pattern::compile(p).map_err(|e| format!("{e}: invalid pattern \"{p}\""))?,
                ),
                ParserExpr::Unpack => StageC::Unpack,
            },
            Stage::LabelFilter(f) => StageC::Filter(label_test(f, b)?),
            Stage::LineFormat(t) => StageC::LineFormat(
                Template::compile(t)
                    .map_err(|e| format!("{e}: invalid line_format template \"{t}\""))?,
            ),
            Stage::LabelFormat(fmts) => StageC::LabelFormat(
                fmts.iter()
                    .map(|f| {
                        Ok(match f {
                            LabelFmt::Rename { dst, src } => LabelFormatC::Rename {
                                dst: dst.clone(),
                                src: src.clone(),
                            },
                            LabelFmt::Template { dst, template } => LabelFormatC::Template {
                                dst: dst.clone(),
                                template: Template::compile(template).map_err(|e| {
                                    format!("{e}: invalid label_format template \"{template}\"")
                                })?,
                            },
                        })
                    })
                    .collect::<Result<_, String>>()?,
            ),
            Stage::Drop(s) => StageC::Drop(picks(s, b)?),
            Stage::Keep(s) => StageC::Keep(picks(s, b)?),
            Stage::Decolorize => StageC::Decolorize,
        };
        out.push(c);
    }
    Ok(LogQuery {
        matchers,
        filters,
        stages: out,
        only: None,
    })
}

impl LogQuery {
    /// Restricts extraction to `needed` labels when that cannot change the result: the
    /// pipeline is line filters, one parser, then line and label filters only, and `needed`
    /// already holds everything downstream reads (the planner passes the grouping and unwrap
    /// labels); the label filters' names are added here.
    pub(crate) fn restrict_extraction(&mut self, mut needed: Vec<String>) {
        let mut parsers = 0;
        for s in &self.stages {
            match s {
                StageC::Line { .. } => {}
                StageC::Filter(t) => {
                    if parsers == 0 {
                        continue;
                    }
                    filter_names(t, &mut needed)
                }
                StageC::Json(_)
                | StageC::Logfmt { .. }
                | StageC::Regexp(_)
                | StageC::Pattern(_) => parsers += 1,
                // Formats, drop/keep and unpack may read or rename any label.
                _ => return,
            }
        }
        if parsers == 1 {
            self.only = Some(needed);
        }
    }
}

fn filter_names(t: &LabelTest, out: &mut Vec<String>) {
    match t {
        LabelTest::And(a, b) | LabelTest::Or(a, b) => {
            filter_names(a, out);
            filter_names(b, out);
        }
        LabelTest::Str(m) => out.push(m.name.clone()),
        LabelTest::Number { name, .. }
        | LabelTest::Duration { name, .. }
        | LabelTest::Bytes { name, .. } => out.push(name.clone()),
    }
}
