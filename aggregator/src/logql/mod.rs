//! A LogQL subset: a stream selector with `=`, `!=`, `=~`, `!~` matchers, followed by chained
//! line filters `|=`, `!=`, `|~`, `!~`. Strings are double-quoted (with Go-style escapes) or
//! back-quoted (raw). Regexes are fully anchored for label matchers, as in Loki, and unanchored
//! for line filters. Errors carry the 1-based column where parsing failed.

use std::collections::BTreeMap;
use std::fmt;

use regex::Regex;
use thiserror::Error;

/// Compiled-size limit of one regex in a query. Together with [`MAX_QUERY_REGEXES`] it
/// bounds the memory one query's regexes take (16 MiB): a Unicode class such as `\w{20}`
/// compiles to hundreds of KiB.
pub const MAX_QUERY_REGEX_BYTES: usize = 1024 * 1024;

/// Longest query text. A LogQL selector with filters is a few hundred bytes; the limit leaves
/// room for long `|=` needles and is checked before anything is parsed.
pub const MAX_QUERY_TEXT_BYTES: usize = 8 * 1024;

/// Most label matchers in one selector (the server adds one for a read token's team).
pub const MAX_QUERY_MATCHERS: usize = 32;

/// Most line filters in one query. Every filter runs over every scanned line.
pub const MAX_QUERY_LINE_FILTERS: usize = 32;

/// Most regexes (`=~`, `!~`, `|~`, `!~`) in one query, counted before the next is compiled:
/// compiling is the expensive part of parsing (1,000 `|~ "\w{20}"` took 10 s and 2.2 GB).
pub const MAX_QUERY_REGEXES: usize = 16;

/// Most bytes of regex source in one query, summed over its regexes, checked before each is
/// compiled.
pub const MAX_QUERY_REGEX_SOURCE_BYTES: usize = 2 * 1024;

/// A LogQL syntax or semantic error, with the column it was found at.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("parse error at line 1, col {col}: {reason}")]
pub struct ParseError {
    pub col: usize,
    pub reason: String,
}

/// How a label matcher compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchOp {
    Eq,
    Ne,
    Re,
    Nre,
}

/// One label matcher of a stream selector.
#[derive(Debug, Clone)]
pub struct Matcher {
    pub name: String,
    pub op: MatchOp,
    pub value: String,
    re: Option<Regex>,
}

impl Matcher {
    /// Builds a matcher; regex matchers are compiled anchored.
    pub fn new(name: &str, op: MatchOp, value: &str) -> Result<Matcher, String> {
        let re = match op {
            MatchOp::Re | MatchOp::Nre => Some(compile(&anchored(value))?),
            _ => None,
        };
        Ok(Matcher {
            name: name.to_owned(),
            op,
            value: value.to_owned(),
            re,
        })
    }

    /// A regex matcher with its already compiled (anchored) regex.
    fn with_regex(name: &str, op: MatchOp, value: &str, re: Regex) -> Matcher {
        Matcher {
            name: name.to_owned(),
            op,
            value: value.to_owned(),
            re: Some(re),
        }
    }

    /// Whether a label set satisfies this matcher (a missing label is the empty string).
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let v = labels.get(&self.name).map_or("", String::as_str);
        match (self.op, &self.re) {
            (MatchOp::Eq, _) => v == self.value,
            (MatchOp::Ne, _) => v != self.value,
            (MatchOp::Re, Some(re)) => re.is_match(v),
            (MatchOp::Nre, Some(re)) => !re.is_match(v),
            _ => false,
        }
    }
}

/// A substring needle with a precompiled SIMD searcher (`|=` and `!=` filters are the hot
/// loop of a scan).
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

/// One line filter.
#[derive(Debug, Clone)]
pub enum LineFilter {
    Contains(Needle),
    NotContains(Needle),
    Matches(Regex),
    NotMatches(Regex),
}

impl LineFilter {
    /// Whether this filter narrows the lines down to some: `|=` with a non-empty needle or
    /// `|~` with a regex that does not match the empty line. Exclusions (`!=`, `!~`) and
    /// filters every line passes do not.
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

/// A parsed log query.
#[derive(Debug, Clone)]
pub struct LogQuery {
    pub matchers: Vec<Matcher>,
    pub filters: Vec<LineFilter>,
}

impl LogQuery {
    /// Whether a stream's labels satisfy every matcher.
    pub fn matches_stream(&self, labels: &BTreeMap<String, String>) -> bool {
        self.matchers.iter().all(|m| m.matches(labels))
    }

    /// Whether a line passes every line filter.
    pub fn keep_line(&self, line: &str) -> bool {
        self.filters.iter().all(|f| f.keep(line))
    }

    /// Whether any line of a block could pass: false when a `|=` needle does not occur in
    /// the whole block (a cheap test before splitting it into lines). May say true when no
    /// line passes; never says false when one does.
    pub fn may_match(&self, block: &[u8]) -> bool {
        self.filters.iter().all(|f| match f {
            LineFilter::Contains(n) => n.found_in(block),
            _ => true,
        })
    }
}

impl fmt::Display for MatchOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MatchOp::Eq => "=",
            MatchOp::Ne => "!=",
            MatchOp::Re => "=~",
            MatchOp::Nre => "!~",
        })
    }
}

/// A label matcher's regex is anchored at both ends, as in Loki.
fn anchored(value: &str) -> String {
    format!("^(?:{value})$")
}

fn compile(p: &str) -> Result<Regex, String> {
    regex::RegexBuilder::new(p)
        .size_limit(MAX_QUERY_REGEX_BYTES)
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

struct Parser<'a> {
    s: &'a str,
    pos: usize,
    /// Regexes compiled so far and their source bytes, against the per-query limits.
    regexes: usize,
    regex_source_bytes: usize,
}

impl<'a> Parser<'a> {
    /// Compiles one regex of the query at `at`, refusing it first if it would take the query
    /// over [`MAX_QUERY_REGEXES`] or [`MAX_QUERY_REGEX_SOURCE_BYTES`].
    fn regex(&mut self, at: usize, source: &str, pattern: &str) -> Result<Regex, ParseError> {
        self.regexes += 1;
        self.regex_source_bytes += source.len();
        if self.regexes > MAX_QUERY_REGEXES {
            return Err(self.err(
                at,
                format!("a query may hold at most {MAX_QUERY_REGEXES} regular expressions"),
            ));
        }
        if self.regex_source_bytes > MAX_QUERY_REGEX_SOURCE_BYTES {
            return Err(self.err(
                at,
                format!(
                    "the regular expressions of a query may total at most {MAX_QUERY_REGEX_SOURCE_BYTES} bytes"
                ),
            ));
        }
        compile(pattern).map_err(|e| self.err(at, e))
    }

    fn err(&self, at: usize, reason: impl Into<String>) -> ParseError {
        ParseError {
            col: self.s[..at.min(self.s.len())].chars().count() + 1,
            reason: reason.into(),
        }
    }

    fn skip_ws(&mut self) {
        while let Some(c) = self.s[self.pos..].chars().next() {
            if c.is_whitespace() {
                self.pos += c.len_utf8();
            } else {
                break;
            }
        }
    }

    fn peek(&self) -> Option<char> {
        self.s[self.pos..].chars().next()
    }

    fn eat(&mut self, tok: &str) -> bool {
        if self.s[self.pos..].starts_with(tok) {
            self.pos += tok.len();
            true
        } else {
            false
        }
    }

    fn ident(&mut self) -> Result<&'a str, ParseError> {
        let start = self.pos;
        for (i, c) in self.s[self.pos..].char_indices() {
            let ok = c.is_ascii_alphabetic() || c == '_' || (i > 0 && c.is_ascii_digit());
            if !ok {
                break;
            }
            self.pos = start + i + c.len_utf8();
        }
        if self.pos == start {
            return Err(self.err(start, "expected a label name"));
        }
        Ok(&self.s[start..self.pos])
    }

    fn string(&mut self) -> Result<String, ParseError> {
        let start = self.pos;
        match self.peek() {
            Some('`') => {
                self.pos += 1;
                match self.s[self.pos..].find('`') {
                    Some(end) => {
                        let v = self.s[self.pos..self.pos + end].to_owned();
                        self.pos += end + 1;
                        Ok(v)
                    }
                    None => Err(self.err(start, "unterminated raw string")),
                }
            }
            Some('"') => {
                self.pos += 1;
                let mut out = String::new();
                let mut chars = self.s[self.pos..].char_indices();
                while let Some((i, c)) = chars.next() {
                    match c {
                        '"' => {
                            self.pos += i + 1;
                            return Ok(out);
                        }
                        '\\' => match chars.next() {
                            Some((_, 'n')) => out.push('\n'),
                            Some((_, 't')) => out.push('\t'),
                            Some((_, 'r')) => out.push('\r'),
                            Some((_, '\\')) => out.push('\\'),
                            Some((_, '"')) => out.push('"'),
                            Some((_, '\'')) => out.push('\''),
                            Some((j, _)) => {
                                return Err(self.err(self.pos + j - 1, "unknown escape sequence"))
                            }
                            None => break,
                        },
                        c => out.push(c),
                    }
                }
                Err(self.err(start, "unterminated string"))
            }
            _ => Err(self.err(start, "expected a quoted string")),
        }
    }

    fn matcher_op(&mut self) -> Result<MatchOp, ParseError> {
        let at = self.pos;
        for (tok, op) in [
            ("=~", MatchOp::Re),
            ("!~", MatchOp::Nre),
            ("!=", MatchOp::Ne),
            ("=", MatchOp::Eq),
        ] {
            if self.eat(tok) {
                return Ok(op);
            }
        }
        Err(self.err(at, "expected one of =, !=, =~, !~"))
    }
}

/// Parses a log query: `{selector} [filters…]`.
///
/// Limits ([`MAX_QUERY_TEXT_BYTES`], [`MAX_QUERY_MATCHERS`], [`MAX_QUERY_LINE_FILTERS`],
/// [`MAX_QUERY_REGEXES`], [`MAX_QUERY_REGEX_SOURCE_BYTES`]) are checked before the part that
/// would exceed them is compiled. Compiling still costs CPU: servers call this off their async
/// threads.
pub fn parse(q: &str) -> Result<LogQuery, ParseError> {
    if q.len() > MAX_QUERY_TEXT_BYTES {
        return Err(ParseError {
            col: 1,
            reason: format!(
                "the query is {} bytes; the limit is {MAX_QUERY_TEXT_BYTES}",
                q.len()
            ),
        });
    }
    let mut p = Parser {
        s: q,
        pos: 0,
        regexes: 0,
        regex_source_bytes: 0,
    };
    p.skip_ws();
    if !p.eat("{") {
        return Err(p.err(p.pos, "expected '{' to start a stream selector"));
    }
    let mut matchers = Vec::new();
    loop {
        p.skip_ws();
        if p.eat("}") {
            break;
        }
        if !matchers.is_empty() {
            if !p.eat(",") {
                return Err(p.err(p.pos, "expected ',' or '}'"));
            }
            p.skip_ws();
        }
        let at = p.pos;
        if matchers.len() == MAX_QUERY_MATCHERS {
            return Err(p.err(
                at,
                format!("a selector may hold at most {MAX_QUERY_MATCHERS} label matchers"),
            ));
        }
        let name = p.ident()?;
        p.skip_ws();
        let op = p.matcher_op()?;
        p.skip_ws();
        let value = p.string()?;
        let m = match op {
            MatchOp::Re | MatchOp::Nre => {
                let re = p.regex(at, &value, &anchored(&value))?;
                Matcher::with_regex(name, op, &value, re)
            }
            _ => Matcher::new(name, op, &value).map_err(|e| p.err(at, e))?,
        };
        matchers.push(m);
    }
    let all_empty = matchers.iter().all(|m| m.matches(&BTreeMap::new()));
    if all_empty {
        return Err(p.err(
            0,
            "queries require at least one label matcher that does not match the empty value, e.g. {team=\"payments\"}",
        ));
    }
    let mut filters = Vec::new();
    loop {
        p.skip_ws();
        if p.pos >= q.len() {
            break;
        }
        let at = p.pos;
        if filters.len() == MAX_QUERY_LINE_FILTERS {
            return Err(p.err(
                at,
                format!("a query may hold at most {MAX_QUERY_LINE_FILTERS} line filters"),
            ));
        }
        let kind = if p.eat("|=") {
            0
        } else if p.eat("!=") {
            1
        } else if p.eat("|~") {
            2
        } else if p.eat("!~") {
            3
        } else {
            return Err(p.err(
                at,
                "expected a line filter (|=, !=, |~, !~) or the end of the query",
            ));
        };
        p.skip_ws();
        let sat = p.pos;
        let v = p.string()?;
        filters.push(match kind {
            0 => LineFilter::Contains(Needle::new(&v)),
            1 => LineFilter::NotContains(Needle::new(&v)),
            2 => LineFilter::Matches(p.regex(sat, &v, &v)?),
            _ => LineFilter::NotMatches(p.regex(sat, &v, &v)?),
        });
    }
    Ok(LogQuery { matchers, filters })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn selectors_and_filters() {
        let q = parse(r#"{team="payments", pod=~"pay.*", ns!="dev", c!~`side.*`} |= "declined" != "test" |~ `card=\d+` !~ "x{3}""#).unwrap();
        assert_eq!(q.matchers.len(), 4);
        assert_eq!(q.filters.len(), 4);
        let l = labels(&[
            ("team", "payments"),
            ("pod", "payment-1"),
            ("ns", "prod"),
            ("c", "app"),
        ]);
        assert!(q.matches_stream(&l));
        assert!(!q.matches_stream(&labels(&[
            ("team", "payments"),
            ("pod", "xpay"),
            ("ns", "prod")
        ])));
        assert!(q.keep_line("payment declined card=42"));
        assert!(!q.keep_line("payment declined card=42 test"));
        assert!(!q.keep_line("payment declined card=x"));
        assert!(!q.keep_line("payment declined card=4 xxx"));
        assert!(q.may_match(b"x declined y"));
        assert!(!q.may_match(b"x accepted y"));
        assert!(matches!(&q.filters[0], LineFilter::Contains(n) if n.as_str() == "declined"));
    }

    #[test]
    fn escapes_in_strings() {
        let q = parse(r#"{a="x\"y"} |= "tab\there""#).unwrap();
        assert!(q.matches_stream(&labels(&[("a", "x\"y")])));
        assert!(q.keep_line("tab\there"));
    }

    #[test]
    fn limits_refuse_before_compiling() {
        let filters = |n: usize, f: &str| format!("{{team=\"x\"}}{}", f.repeat(n));
        assert!(parse(&filters(MAX_QUERY_LINE_FILTERS, r#" |= "a""#)).is_ok());
        let e = parse(&filters(MAX_QUERY_LINE_FILTERS + 1, r#" |= "a""#)).unwrap_err();
        assert!(e.reason.contains("line filters"), "{e}");
        assert!(parse(&filters(MAX_QUERY_REGEXES, r#" |~ "a""#)).is_ok());
        let e = parse(&filters(MAX_QUERY_REGEXES + 1, r#" |~ "a""#)).unwrap_err();
        assert!(e.reason.contains("regular expressions"), "{e}");
        let long = format!(
            r#"{{team="x"}} |~ "{}""#,
            "a".repeat(MAX_QUERY_REGEX_SOURCE_BYTES + 1)
        );
        assert!(parse(&long).unwrap_err().reason.contains("total at most"));
        let many: Vec<String> = (0..=MAX_QUERY_MATCHERS)
            .map(|i| format!("l{i}=\"v\""))
            .collect();
        let e = parse(&format!("{{{}}}", many.join(","))).unwrap_err();
        assert!(e.reason.contains("label matchers"), "{e}");
        let e = parse(&format!(
            r#"{{team="x"}} |= "{}""#,
            "a".repeat(MAX_QUERY_TEXT_BYTES)
        ))
        .unwrap_err();
        assert!(e.reason.contains("limit is"), "{e}");
    }

    #[test]
    fn errors_name_the_column() {
        let cases = [
            (r#"team="x""#, 1, "expected '{'"),
            (r#"{team="x" "#, 11, "expected ','"),
            (r#"{team=="x"}"#, 7, "expected a quoted string"),
            (r#"{team="x"} |= declined"#, 15, "expected a quoted string"),
            (r#"{team="x"} | "a""#, 12, "expected a line filter"),
            (r#"{team="x} "#, 7, "unterminated string"),
            (r#"{team=~"("}"#, 2, "invalid regex"),
            (r#"{}"#, 1, "at least one label matcher"),
            (r#"{team=~".*"}"#, 1, "at least one label matcher"),
        ];
        for (q, col, what) in cases {
            let e = parse(q).unwrap_err();
            assert_eq!(e.col, col, "{q}: {e}");
            assert!(e.reason.contains(what), "{q}: {e}");
        }
    }
}
