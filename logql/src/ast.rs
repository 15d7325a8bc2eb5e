//! The LogQL syntax tree: pure data (strings, numbers, nanoseconds), compared with `==` and
//! printed back as query text by `Display`.
//!
//! Invariants: nothing here is compiled (regexes and templates are compiled by the planner),
//! so that trees compare structurally; printing a tree and parsing the text yields the same
//! tree (property-tested): a binary operand that is itself a binary operation is always
//! printed in parentheses, and parentheses are not kept in the tree.

use std::fmt::{self, Display, Formatter, Write};

use crate::units::format_duration;

/// A whole query: a log query (returns entries) or a metric query (returns samples).
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Log(LogExpr),
    Metric(MetricExpr),
}

/// How a label matcher or string label filter compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MatchOp {
    Eq,
    Ne,
    Re,
    Nre,
}

/// `name op "value"` in a stream selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelMatcher {
    pub name: String,
    pub op: MatchOp,
    pub value: String,
}

/// A stream selector and its pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct LogExpr {
    pub matchers: Vec<LabelMatcher>,
    pub stages: Vec<Stage>,
}

/// How a line filter tests a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineOp {
    /// `|=`
    Contains,
    /// `!=`
    NotContains,
    /// `|~`
    Regex,
    /// `!~`
    NotRegex,
    /// `|>`
    Pattern,
    /// `!>`
    NotPattern,
}

impl LineOp {
    /// Whether the filter keeps the lines that match (as opposed to dropping them).
    pub fn positive(self) -> bool {
        matches!(self, LineOp::Contains | LineOp::Regex | LineOp::Pattern)
    }
}

/// One line filter with its alternatives: `|= "a" or "b"`. A positive filter keeps a line
/// matching any value; a negative one drops a line matching any value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineFilterExpr {
    pub op: LineOp,
    pub values: Vec<String>,
}

/// A parser stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParserExpr {
    /// `json` or `json a="x.y", b`: with parameters only the named paths are extracted.
    Json(Vec<LabelExtraction>),
    /// `logfmt [--strict] [--keep-empty] [params]`.
    Logfmt {
        strict: bool,
        keep_empty: bool,
        params: Vec<LabelExtraction>,
    },
    /// `regexp "re"` with named groups.
    Regexp(String),
    /// `pattern "<a> - <_>"`.
    Pattern(String),
    /// `unpack`.
    Unpack,
}

/// `label="expression"` (or a bare `label`, whose expression is its own name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelExtraction {
    pub label: String,
    pub expr: Option<String>,
}

/// Comparison operator of a numeric label filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CmpOp {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

impl CmpOp {
    /// Applies the comparison.
    pub fn apply(self, a: f64, b: f64) -> bool {
        match self {
            CmpOp::Eq => a == b,
            CmpOp::Ne => a != b,
            CmpOp::Gt => a > b,
            CmpOp::Ge => a >= b,
            CmpOp::Lt => a < b,
            CmpOp::Le => a <= b,
        }
    }
}

/// A label filter expression: `status >= 500 and (method="GET" or latency > 1s)`.
#[derive(Debug, Clone, PartialEq)]
pub enum LabelFilter {
    And(Box<LabelFilter>, Box<LabelFilter>),
    Or(Box<LabelFilter>, Box<LabelFilter>),
    /// `name op "string"`
    Str {
        name: String,
        op: MatchOp,
        value: String,
    },
    /// `name op 1.5`
    Number {
        name: String,
        op: CmpOp,
        value: f64,
    },
    /// `name op 250ms` (value in nanoseconds)
    Duration {
        name: String,
        op: CmpOp,
        ns: i64,
    },
    /// `name op 20MB`
    Bytes {
        name: String,
        op: CmpOp,
        bytes: u64,
    },
}

/// One assignment of `label_format`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabelFmt {
    /// `dst=src`: rename.
    Rename { dst: String, src: String },
    /// `dst="template"`.
    Template { dst: String, template: String },
}

/// A label named by `drop` or `keep`, optionally only when it has a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelSel {
    pub name: String,
    pub matcher: Option<(MatchOp, String)>,
}

/// One pipeline stage.
#[derive(Debug, Clone, PartialEq)]
pub enum Stage {
    LineFilter(LineFilterExpr),
    Parser(ParserExpr),
    LabelFilter(LabelFilter),
    LineFormat(String),
    LabelFormat(Vec<LabelFmt>),
    Drop(Vec<LabelSel>),
    Keep(Vec<LabelSel>),
    Decolorize,
}

/// The conversion of an unwrapped label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conversion {
    /// The value as a float.
    Float,
    /// `duration(x)` / `duration_seconds(x)`: a Go duration, in seconds.
    Duration,
    /// `bytes(x)`: a byte size.
    Bytes,
}

/// `| unwrap [conv(]label[)]` and the label filters after it.
#[derive(Debug, Clone, PartialEq)]
pub struct Unwrap {
    pub label: String,
    pub conv: Conversion,
    pub post_filters: Vec<LabelFilter>,
}

/// A log query over a range: `{…} | … [5m] offset 1h`, optionally unwrapped.
#[derive(Debug, Clone, PartialEq)]
pub struct LogRange {
    pub log: LogExpr,
    pub unwrap: Option<Unwrap>,
    pub range_ns: i64,
    pub offset_ns: i64,
}

/// A range aggregation function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RangeOp {
    CountOverTime,
    Rate,
    BytesOverTime,
    BytesRate,
    AbsentOverTime,
    SumOverTime,
    AvgOverTime,
    MinOverTime,
    MaxOverTime,
    StddevOverTime,
    StdvarOverTime,
    QuantileOverTime,
    FirstOverTime,
    LastOverTime,
}

/// Every range function and its name.
pub const RANGE_OPS: &[(RangeOp, &str)] = &[
    (RangeOp::CountOverTime, "count_over_time"),
    (RangeOp::Rate, "rate"),
    (RangeOp::BytesOverTime, "bytes_over_time"),
    (RangeOp::BytesRate, "bytes_rate"),
    (RangeOp::AbsentOverTime, "absent_over_time"),
    (RangeOp::SumOverTime, "sum_over_time"),
    (RangeOp::AvgOverTime, "avg_over_time"),
    (RangeOp::MinOverTime, "min_over_time"),
    (RangeOp::MaxOverTime, "max_over_time"),
    (RangeOp::StddevOverTime, "stddev_over_time"),
    (RangeOp::StdvarOverTime, "stdvar_over_time"),
    (RangeOp::QuantileOverTime, "quantile_over_time"),
    (RangeOp::FirstOverTime, "first_over_time"),
    (RangeOp::LastOverTime, "last_over_time"),
];

impl RangeOp {
    /// The function's name.
    pub fn name(self) -> &'static str {
        RANGE_OPS
            .iter()
            .find(|(o, _)| *o == self)
            .map_or("?", |(_, n)| n)
    }

    /// Whether the function needs an unwrapped value (`rate` works either way).
    pub fn needs_unwrap(self) -> bool {
        !matches!(
            self,
            RangeOp::CountOverTime
                | RangeOp::Rate
                | RangeOp::BytesOverTime
                | RangeOp::BytesRate
                | RangeOp::AbsentOverTime
        )
    }

    /// Whether the function refuses an unwrapped value.
    pub fn refuses_unwrap(self) -> bool {
        matches!(
            self,
            RangeOp::CountOverTime
                | RangeOp::BytesOverTime
                | RangeOp::BytesRate
                | RangeOp::AbsentOverTime
        )
    }
}

/// A vector aggregation operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VectorOp {
    Sum,
    Avg,
    Min,
    Max,
    Count,
    Stddev,
    Stdvar,
    Topk,
    Bottomk,
    Sort,
    SortDesc,
}

/// Every vector aggregation and its name.
pub const VECTOR_OPS: &[(VectorOp, &str)] = &[
    (VectorOp::Sum, "sum"),
    (VectorOp::Avg, "avg"),
    (VectorOp::Min, "min"),
    (VectorOp::Max, "max"),
    (VectorOp::Count, "count"),
    (VectorOp::Stddev, "stddev"),
    (VectorOp::Stdvar, "stdvar"),
    (VectorOp::Topk, "topk"),
    (VectorOp::Bottomk, "bottomk"),
    (VectorOp::Sort, "sort"),
    (VectorOp::SortDesc, "sort_desc"),
];

impl VectorOp {
    /// The operator's name.
    pub fn name(self) -> &'static str {
        VECTOR_OPS
            .iter()
            .find(|(o, _)| *o == self)
            .map_or("?", |(_, n)| n)
    }
}

/// `by (…)` or `without (…)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grouping {
    pub without: bool,
    pub labels: Vec<String>,
}

/// A binary operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BinOp {
    Or,
    And,
    Unless,
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
}

impl BinOp {
    /// Binding power, PromQL's: `^` > `* / %` > `+ -` > comparisons > `and unless` > `or`.
    pub fn precedence(self) -> u8 {
        match self {
            BinOp::Or => 1,
            BinOp::And | BinOp::Unless => 2,
            BinOp::Eq | BinOp::Ne | BinOp::Gt | BinOp::Ge | BinOp::Lt | BinOp::Le => 3,
            BinOp::Add | BinOp::Sub => 4,
            BinOp::Mul | BinOp::Div | BinOp::Mod => 5,
            BinOp::Pow => 6,
        }
    }

    /// Whether the operator is a comparison (filters unless `bool`).
    pub fn is_comparison(self) -> bool {
        self.precedence() == 3
    }

    /// Whether the operator is a set operator (`and`, `or`, `unless`).
    pub fn is_set(self) -> bool {
        matches!(self, BinOp::Or | BinOp::And | BinOp::Unless)
    }

    /// The operator's text.
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Or => "or",
            BinOp::And => "and",
            BinOp::Unless => "unless",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Mod => "%",
            BinOp::Pow => "^",
        }
    }
}

/// Which side of a many-to-one match has many.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupSide {
    Left,
    Right,
}

/// `on(…)`/`ignoring(…)` and an optional `group_left(…)`/`group_right(…)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VectorMatching {
    /// `on` (true) or `ignoring` (false).
    pub on: bool,
    pub labels: Vec<String>,
    /// The many side and the labels it takes from the one side.
    pub group: Option<(GroupSide, Vec<String>)>,
}

/// A metric query.
#[derive(Debug, Clone, PartialEq)]
pub enum MetricExpr {
    /// `count_over_time({…}[5m])`, `quantile_over_time(0.99, … [5m]) by (x)`.
    Range {
        op: RangeOp,
        param: Option<f64>,
        range: Box<LogRange>,
        grouping: Option<Grouping>,
    },
    /// `sum by (x) (…)`, `topk(5, …)`.
    Vector {
        op: VectorOp,
        param: Option<f64>,
        grouping: Option<Grouping>,
        expr: Box<MetricExpr>,
    },
    /// `a + on(x) b`, `a > bool 1`.
    Binary {
        op: BinOp,
        return_bool: bool,
        matching: Option<VectorMatching>,
        lhs: Box<MetricExpr>,
        rhs: Box<MetricExpr>,
    },
    /// A scalar literal.
    Number(f64),
    /// `vector(s)`.
    VectorLit(f64),
    /// `label_replace(v, "dst", "replacement", "src", "regex")`.
    LabelReplace {
        expr: Box<MetricExpr>,
        dst: String,
        replacement: String,
        src: String,
        regex: String,
    },
}

impl MetricExpr {
    /// Whether the expression evaluates to a scalar (literals and arithmetic on them).
    pub fn is_scalar(&self) -> bool {
        match self {
            MetricExpr::Number(_) => true,
            MetricExpr::Binary { lhs, rhs, .. } => lhs.is_scalar() && rhs.is_scalar(),
            _ => false,
        }
    }

    /// Every log range of the expression, in evaluation order.
    pub fn ranges(&self) -> Vec<&LogRange> {
        let mut out = Vec::new();
        self.walk(&mut |r| out.push(r));
        out
    }

    fn walk<'a>(&'a self, f: &mut impl FnMut(&'a LogRange)) {
        match self {
            MetricExpr::Range { range, .. } => f(range),
            MetricExpr::Vector { expr, .. } | MetricExpr::LabelReplace { expr, .. } => expr.walk(f),
            MetricExpr::Binary { lhs, rhs, .. } => {
                lhs.walk(f);
                rhs.walk(f);
            }
            MetricExpr::Number(_) | MetricExpr::VectorLit(_) => {}
        }
    }

    /// Every log range of the expression, mutably (to scope its selector).
    pub fn ranges_mut(&mut self) -> Vec<&mut LogRange> {
        let mut out = Vec::new();
        fn go<'a>(e: &'a mut MetricExpr, out: &mut Vec<&'a mut LogRange>) {
            match e {
                MetricExpr::Range { range, .. } => out.push(range),
                MetricExpr::Vector { expr, .. } | MetricExpr::LabelReplace { expr, .. } => {
                    go(expr, out)
                }
                MetricExpr::Binary { lhs, rhs, .. } => {
                    go(lhs, out);
                    go(rhs, out);
                }
                MetricExpr::Number(_) | MetricExpr::VectorLit(_) => {}
            }
        }
        go(self, &mut out);
        out
    }
}

// ---- printing ----

/// Writes `s` as a double-quoted string with Go escapes.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A float as LogQL reads it back exactly.
fn num(n: f64) -> String {
    if n.is_nan() {
        "NaN".to_owned()
    } else if n.is_infinite() {
        if n > 0.0 { "Inf" } else { "-Inf" }.to_owned()
    } else {
        format!("{n:?}")
    }
}

impl Display for MatchOp {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MatchOp::Eq => "=",
            MatchOp::Ne => "!=",
            MatchOp::Re => "=~",
            MatchOp::Nre => "!~",
        })
    }
}

impl Display for CmpOp {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CmpOp::Eq => "==",
            CmpOp::Ne => "!=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
        })
    }
}

impl Display for LineOp {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LineOp::Contains => "|=",
            LineOp::NotContains => "!=",
            LineOp::Regex => "|~",
            LineOp::NotRegex => "!~",
            LineOp::Pattern => "|>",
            LineOp::NotPattern => "!>",
        })
    }
}

impl Display for Expr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Log(l) => l.fmt(f),
            Expr::Metric(m) => m.fmt(f),
        }
    }
}

impl Display for LogExpr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, m) in self.matchers.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}{}{}", m.name, m.op, quote(&m.value))?;
        }
        f.write_str("}")?;
        for s in &self.stages {
            write!(f, " {s}")?;
        }
        Ok(())
    }
}

fn extractions(f: &mut Formatter<'_>, params: &[LabelExtraction]) -> fmt::Result {
    for (i, p) in params.iter().enumerate() {
        f.write_str(if i == 0 { " " } else { ", " })?;
        f.write_str(&p.label)?;
        if let Some(e) = &p.expr {
            write!(f, "={}", quote(e))?;
        }
    }
    Ok(())
}

fn label_sels(f: &mut Formatter<'_>, sels: &[LabelSel]) -> fmt::Result {
    for (i, s) in sels.iter().enumerate() {
        f.write_str(if i == 0 { " " } else { ", " })?;
        f.write_str(&s.name)?;
        if let Some((op, v)) = &s.matcher {
            write!(f, "{op}{}", quote(v))?;
        }
    }
    Ok(())
}

impl Display for Stage {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Stage::LineFilter(lf) => {
                write!(f, "{}", lf.op)?;
                for (i, v) in lf.values.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" or")?;
                    }
                    write!(f, " {}", quote(v))?;
                }
                Ok(())
            }
            Stage::Parser(p) => match p {
                ParserExpr::Json(params) => {
                    f.write_str("| json")?;
                    extractions(f, params)
                }
                ParserExpr::Logfmt {
                    strict,
                    keep_empty,
                    params,
                } => {
                    f.write_str("| logfmt")?;
                    if *strict {
                        f.write_str(" --strict")?;
                    }
                    if *keep_empty {
                        f.write_str(" --keep-empty")?;
                    }
                    extractions(f, params)
                }
                ParserExpr::Regexp(r) => write!(f, "| regexp {}", quote(r)),
                ParserExpr::Pattern(p) => write!(f, "| pattern {}", quote(p)),
                ParserExpr::Unpack => f.write_str("| unpack"),
            },
            Stage::LabelFilter(lf) => write!(f, "| {lf}"),
            Stage::LineFormat(t) => write!(f, "| line_format {}", quote(t)),
            Stage::LabelFormat(fmts) => {
                f.write_str("| label_format")?;
                for (i, l) in fmts.iter().enumerate() {
                    f.write_str(if i == 0 { " " } else { ", " })?;
                    match l {
                        LabelFmt::Rename { dst, src } => write!(f, "{dst}={src}")?,
                        LabelFmt::Template { dst, template } => {
                            write!(f, "{dst}={}", quote(template))?
                        }
                    }
                }
                Ok(())
            }
            Stage::Drop(s) => {
                f.write_str("| drop")?;
                label_sels(f, s)
            }
            Stage::Keep(s) => {
                f.write_str("| keep")?;
                label_sels(f, s)
            }
            Stage::Decolorize => f.write_str("| decolorize"),
        }
    }
}

impl Display for LabelFilter {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            // `and` binds tighter than `or`; an `or` under an `and` needs parentheses, and
            // a right-nested operand of the same operator too (the parser nests left).
            LabelFilter::And(a, b) => {
                wrap_lf(f, a, |x| matches!(x, LabelFilter::Or(..)))?;
                f.write_str(" and ")?;
                wrap_lf(f, b, |x| {
                    matches!(x, LabelFilter::Or(..) | LabelFilter::And(..))
                })
            }
            LabelFilter::Or(a, b) => {
                wrap_lf(f, a, |_| false)?;
                f.write_str(" or ")?;
                wrap_lf(f, b, |x| matches!(x, LabelFilter::Or(..)))
            }
            LabelFilter::Str { name, op, value } => write!(f, "{name}{op}{}", quote(value)),
            LabelFilter::Number { name, op, value } => write!(f, "{name}{op}{}", num(*value)),
            LabelFilter::Duration { name, op, ns } => {
                if *ns < 0 {
                    write!(f, "{name}{op}-{}", format_duration(*ns))
                } else {
                    write!(f, "{name}{op}{}", format_duration(*ns))
                }
            }
            LabelFilter::Bytes { name, op, bytes } => write!(f, "{name}{op}{bytes}B"),
        }
    }
}

fn wrap_lf(
    f: &mut Formatter<'_>,
    x: &LabelFilter,
    needs: impl Fn(&LabelFilter) -> bool,
) -> fmt::Result {
    if needs(x) {
        write!(f, "({x})")
    } else {
        write!(f, "{x}")
    }
}

impl Display for Grouping {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({})",
            if self.without { "without" } else { "by" },
            self.labels.join(", ")
        )
    }
}

impl Display for LogRange {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.log)?;
        if let Some(u) = &self.unwrap {
            f.write_str(" | unwrap ")?;
            match u.conv {
                Conversion::Float => f.write_str(&u.label)?,
                Conversion::Duration => write!(f, "duration({})", u.label)?,
                Conversion::Bytes => write!(f, "bytes({})", u.label)?,
            }
            for lf in &u.post_filters {
                write!(f, " | {lf}")?;
            }
        }
        write!(f, " [{}]", format_duration(self.range_ns))?;
        if self.offset_ns != 0 {
            if self.offset_ns < 0 {
                write!(f, " offset -{}", format_duration(self.offset_ns))?;
            } else {
                write!(f, " offset {}", format_duration(self.offset_ns))?;
            }
        }
        Ok(())
    }
}

impl Display for MetricExpr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            MetricExpr::Range {
                op,
                param,
                range,
                grouping,
            } => {
                write!(f, "{}(", op.name())?;
                if let Some(p) = param {
                    write!(f, "{}, ", num(*p))?;
                }
                write!(f, "{range})")?;
                if let Some(g) = grouping {
                    write!(f, " {g}")?;
                }
                Ok(())
            }
            MetricExpr::Vector {
                op,
                param,
                grouping,
                expr,
            } => {
                f.write_str(op.name())?;
                if let Some(g) = grouping {
                    write!(f, " {g} ")?;
                }
                f.write_str("(")?;
                if let Some(p) = param {
                    write!(f, "{}, ", num(*p))?;
                }
                write!(f, "{expr})")
            }
            MetricExpr::Binary {
                op,
                return_bool,
                matching,
                lhs,
                rhs,
            } => {
                operand(f, lhs)?;
                write!(f, " {}", op.symbol())?;
                if *return_bool {
                    f.write_str(" bool")?;
                }
                if let Some(m) = matching {
                    write!(
                        f,
                        " {}({})",
                        if m.on { "on" } else { "ignoring" },
                        m.labels.join(", ")
                    )?;
                    if let Some((side, labels)) = &m.group {
                        write!(
                            f,
                            " {}({})",
                            match side {
                                GroupSide::Left => "group_left",
                                GroupSide::Right => "group_right",
                            },
                            labels.join(", ")
                        )?;
                    }
                }
                f.write_str(" ")?;
                operand(f, rhs)
            }
            MetricExpr::Number(n) => f.write_str(&num(*n)),
            MetricExpr::VectorLit(n) => write!(f, "vector({})", num(*n)),
            MetricExpr::LabelReplace {
                expr,
                dst,
                replacement,
                src,
                regex,
            } => write!(
                f,
                "label_replace({expr}, {}, {}, {}, {})",
                quote(dst),
                quote(replacement),
                quote(src),
                quote(regex)
            ),
        }
    }
}

fn operand(f: &mut Formatter<'_>, e: &MetricExpr) -> fmt::Result {
    match e {
        MetricExpr::Binary { .. } => write!(f, "({e})"),
        // A negative literal after an operator reads fine (`a - -1`), but parenthesised it
        // can never be taken for a binary minus.
        MetricExpr::Number(n) if *n < 0.0 => write!(f, "({e})"),
        _ => write!(f, "{e}"),
    }
}
