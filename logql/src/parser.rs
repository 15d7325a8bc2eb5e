//! The LogQL parser: tokens → [`Expr`], by recursive descent, with precedence climbing for
//! binary operators (PromQL's precedence; `^` is right-associative, the rest left).
//!
//! Invariants: never panics on any input; nesting is bounded ([`MAX_DEPTH`]) so a hostile
//! query cannot overflow the stack; the text length and the number of matchers and stages
//! are checked before the parts are built; every error names the line and column of the
//! token at fault. Regexes and templates are not compiled here (see plan.rs).

use crate::ast::*;
use crate::error::ParseError;
use crate::lexer::{lex, Tok, Token};
use crate::limits::{MAX_QUERY_MATCHERS, MAX_QUERY_STAGES, MAX_QUERY_TEXT_BYTES};

/// Words that start a pipeline stage after `|`.
const STAGE_KEYWORDS: &[&str] = &[
    "json",
    "logfmt",
    "regexp",
    "pattern",
    "unpack",
    "line_format",
    "label_format",
    "drop",
    "keep",
    "decolorize",
];

/// Deepest nesting of parentheses and function calls.
pub const MAX_DEPTH: usize = 64;

/// Parses a LogQL query (log or metric) into its syntax tree.
pub fn parse_expr(src: &str) -> Result<Expr, ParseError> {
    if src.len() > MAX_QUERY_TEXT_BYTES {
        return Err(ParseError::at(
            src,
            0,
            format!(
                "the query is {} bytes; the limit is {MAX_QUERY_TEXT_BYTES}",
                src.len()
            ),
        ));
    }
    let toks = lex(src)?;
    let mut p = Parser {
        src,
        toks,
        i: 0,
        depth: 0,
        stages: 0,
    };
    let e = if p.peek() == &Tok::LBrace {
        let log = p.log_expr()?;
        if p.peek() == &Tok::LBracket {
            return Err(p.err_here(
                "a range is only allowed inside a range aggregation such as count_over_time",
            ));
        }
        Expr::Log(log)
    } else {
        Expr::Metric(p.binary(0)?)
    };
    if p.peek() != &Tok::Eof {
        return Err(p.unexpected("the end of the query"));
    }
    Ok(e)
}

struct Parser<'a> {
    src: &'a str,
    toks: Vec<Token>,
    i: usize,
    depth: usize,
    /// Pipeline stages parsed so far, against [`MAX_QUERY_STAGES`].
    stages: usize,
}

impl Parser<'_> {
    fn peek(&self) -> &Tok {
        self.peek_at(0)
    }

    fn peek_at(&self, n: usize) -> &Tok {
        let last = self.toks.len() - 1;
        &self.toks[(self.i + n).min(last)].tok
    }

    fn pos(&self) -> usize {
        let last = self.toks.len() - 1;
        self.toks[self.i.min(last)].at
    }

    fn next(&mut self) -> Tok {
        let t = self.peek().clone();
        // Past the end `peek` keeps answering Eof, and a caller may step back by one.
        self.i += 1;
        t
    }

    fn err_here(&self, reason: impl Into<String>) -> ParseError {
        ParseError::at(self.src, self.pos(), reason)
    }

    fn unexpected(&self, wanted: &str) -> ParseError {
        self.err_here(format!(
            "unexpected {}, expected {wanted}",
            self.peek().describe()
        ))
    }

    fn expect(&mut self, t: Tok, wanted: &str) -> Result<(), ParseError> {
        if *self.peek() == t {
            self.next();
            Ok(())
        } else {
            Err(self.unexpected(wanted))
        }
    }

    fn is_ident(&self, word: &str) -> bool {
        matches!(self.peek(), Tok::Ident(s) if s == word)
    }

    fn ident(&mut self, wanted: &str) -> Result<String, ParseError> {
        match self.peek() {
            Tok::Ident(s) => {
                let s = s.clone();
                self.next();
                Ok(s)
            }
            _ => Err(self.unexpected(wanted)),
        }
    }

    fn string(&mut self, wanted: &str) -> Result<String, ParseError> {
        match self.peek() {
            Tok::Str(s) => {
                let s = s.clone();
                self.next();
                Ok(s)
            }
            _ => Err(self.unexpected(wanted)),
        }
    }

    fn enter(&mut self) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.err_here(format!("the query nests deeper than {MAX_DEPTH} levels")));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth -= 1;
    }

    // ---- metric expressions ----

    fn binop(&self) -> Option<BinOp> {
        Some(match self.peek() {
            Tok::Ident(s) if s == "or" => BinOp::Or,
            Tok::Ident(s) if s == "and" => BinOp::And,
            Tok::Ident(s) if s == "unless" => BinOp::Unless,
            Tok::EqEq => BinOp::Eq,
            Tok::Neq => BinOp::Ne,
            Tok::Gt => BinOp::Gt,
            Tok::Gte => BinOp::Ge,
            Tok::Lt => BinOp::Lt,
            Tok::Lte => BinOp::Le,
            Tok::Plus => BinOp::Add,
            Tok::Minus => BinOp::Sub,
            Tok::Star => BinOp::Mul,
            Tok::Slash => BinOp::Div,
            Tok::Percent => BinOp::Mod,
            Tok::Caret => BinOp::Pow,
            _ => return None,
        })
    }

    fn binary(&mut self, min_prec: u8) -> Result<MetricExpr, ParseError> {
        self.enter()?;
        let mut lhs = self.primary()?;
        while let Some(op) = self.binop() {
            let prec = op.precedence();
            if prec < min_prec {
                break;
            }
            let op_at = self.pos();
            self.next();
            let return_bool = if self.is_ident("bool") {
                if !op.is_comparison() {
                    return Err(
                        self.err_here("bool modifier can only be used on comparison operators")
                    );
                }
                self.next();
                true
            } else {
                false
            };
            let matching = self.vector_matching(op)?;
            let next_min = if op == BinOp::Pow { prec } else { prec + 1 };
            let rhs = self.binary(next_min)?;
            if op.is_set() && (lhs.is_scalar() || rhs.is_scalar()) {
                return Err(ParseError::at(
                    self.src,
                    op_at,
                    format!(
                        "set operator {:?} not allowed in binary scalar expression",
                        op.symbol()
                    ),
                ));
            }
            if op.is_comparison() && !return_bool && lhs.is_scalar() && rhs.is_scalar() {
                return Err(ParseError::at(
                    self.src,
                    op_at,
                    "comparisons between scalars must use bool modifier",
                ));
            }
            if matching.is_some() && (lhs.is_scalar() || rhs.is_scalar()) {
                return Err(ParseError::at(
                    self.src,
                    op_at,
                    "vector matching only allowed between vectors",
                ));
            }
            lhs = MetricExpr::Binary {
                op,
                return_bool,
                matching,
                lhs: Box::new(lhs),
                rhs: Box::new(rhs),
            };
        }
        self.leave();
        Ok(lhs)
    }

    fn vector_matching(&mut self, op: BinOp) -> Result<Option<VectorMatching>, ParseError> {
        let on = if self.is_ident("on") {
            true
        } else if self.is_ident("ignoring") {
            false
        } else {
            return Ok(None);
        };
        self.next();
        let labels = self.label_list()?;
        let group = if self.is_ident("group_left") || self.is_ident("group_right") {
            if op.is_set() {
                return Err(self.err_here("no grouping allowed for set operations"));
            }
            let side = if self.is_ident("group_left") {
                GroupSide::Left
            } else {
                GroupSide::Right
            };
            self.next();
            let labels = if self.peek() == &Tok::LParen {
                self.label_list()?
            } else {
                Vec::new()
            };
            Some((side, labels))
        } else {
            None
        };
        Ok(Some(VectorMatching { on, labels, group }))
    }

    fn label_list(&mut self) -> Result<Vec<String>, ParseError> {
        self.expect(Tok::LParen, "'(' and a list of label names")?;
        let mut out = Vec::new();
        while self.peek() != &Tok::RParen {
            if !out.is_empty() {
                self.expect(Tok::Comma, "',' or ')'")?;
            }
            out.push(self.ident("a label name")?);
        }
        self.next();
        Ok(out)
    }

    fn grouping(&mut self) -> Result<Option<Grouping>, ParseError> {
        let without = if self.is_ident("by") {
            false
        } else if self.is_ident("without") {
            true
        } else {
            return Ok(None);
        };
        self.next();
        Ok(Some(Grouping {
            without,
            labels: self.label_list()?,
        }))
    }

    fn number(&mut self, wanted: &str) -> Result<f64, ParseError> {
        let neg = if self.peek() == &Tok::Minus {
            self.next();
            true
        } else {
            false
        };
        match self.peek() {
            Tok::Num(n) => {
                let n = *n;
                self.next();
                Ok(if neg { -n } else { n })
            }
            _ => Err(self.unexpected(wanted)),
        }
    }

    fn primary(&mut self) -> Result<MetricExpr, ParseError> {
        match self.peek().clone() {
            Tok::Num(_) | Tok::Minus => Ok(MetricExpr::Number(self.number("a number")?)),
            Tok::Ident(s) if s == "Inf" || s == "NaN" => {
                self.next();
                Ok(MetricExpr::Number(if s == "Inf" { f64::INFINITY } else { f64::NAN }))
            }
            Tok::LParen => {
                self.next();
                let e = self.binary(0)?;
                self.expect(Tok::RParen, "')'")?;
                Ok(e)
            }
            Tok::LBrace => Err(self.err_here(
                "a log query cannot be used as a metric; wrap it in a range aggregation such as count_over_time({…}[5m])",
            )),
            Tok::Ident(name) => {
                let at = self.pos();
                if let Some((op, _)) = RANGE_OPS.iter().find(|(_, n)| *n == name) {
                    self.next();
                    return self.range_agg(*op, at);
                }
                if let Some((op, _)) = VECTOR_OPS.iter().find(|(_, n)| *n == name) {
                    self.next();
                    return self.vector_agg(*op);
                }
                match name.as_str() {
                    "vector" => {
                        self.next();
                        self.expect(Tok::LParen, "'('")?;
                        let n = self.number("a number")?;
                        self.expect(Tok::RParen, "')'")?;
                        Ok(MetricExpr::VectorLit(n))
                    }
                    "label_replace" => {
                        self.next();
                        self.enter()?;
                        self.expect(Tok::LParen, "'('")?;
                        let expr = self.binary(0)?;
                        let mut args = Vec::new();
                        for what in ["destination label", "replacement", "source label", "regex"] {
                            self.expect(Tok::Comma, "','")?;
                            args.push(self.string(&format!("the {what} as a string"))?);
                        }
                        self.expect(Tok::RParen, "')'")?;
                        self.leave();
                        let [dst, replacement, src, regex]: [String; 4] =
                            args.try_into().map_err(|_| self.err_here("label_replace takes 5 arguments"))?;
                        Ok(MetricExpr::LabelReplace {
                            expr: Box::new(expr),
                            dst,
                            replacement,
                            src,
                            regex,
                        })
                    }
                    _ => Err(self.err_here(format!("unknown function or aggregation {name:?}"))),
                }
            }
            _ => Err(self.unexpected("a metric expression")),
        }
    }

    fn range_agg(&mut self, op: RangeOp, at: usize) -> Result<MetricExpr, ParseError> {
        self.enter()?;
        self.expect(Tok::LParen, "'('")?;
        let param = if op == RangeOp::QuantileOverTime {
            let q = self.number("the quantile, a number")?;
            self.expect(Tok::Comma, "','")?;
            Some(q)
        } else {
            None
        };
        let range = self.log_range()?;
        self.expect(Tok::RParen, "')'")?;
        self.leave();
        let grouping = self.grouping()?;
        if range.unwrap.is_none() && op.needs_unwrap() {
            return Err(ParseError::at(
                self.src,
                at,
                format!(
                    "{} needs an unwrapped value: add | unwrap <label>",
                    op.name()
                ),
            ));
        }
        if range.unwrap.is_some() && op.refuses_unwrap() {
            return Err(ParseError::at(
                self.src,
                at,
                format!("{} does not take an unwrapped value", op.name()),
            ));
        }
        if grouping.is_some() && range.unwrap.is_none() {
            return Err(ParseError::at(
                self.src,
                at,
                "grouping is only allowed on range aggregations over unwrapped values",
            ));
        }
        Ok(MetricExpr::Range {
            op,
            param,
            range: Box::new(range),
            grouping,
        })
    }

    fn vector_agg(&mut self, op: VectorOp) -> Result<MetricExpr, ParseError> {
        self.enter()?;
        let mut grouping = self.grouping()?;
        self.expect(Tok::LParen, "'('")?;
        let param = if matches!(op, VectorOp::Topk | VectorOp::Bottomk) {
            let k = self.number("k, a number")?;
            if k < 1.0 || k.fract() != 0.0 {
                return Err(self.err_here(format!("{} takes a positive integer k", op.name())));
            }
            self.expect(Tok::Comma, "','")?;
            Some(k)
        } else {
            None
        };
        let expr = self.binary(0)?;
        self.expect(Tok::RParen, "')'")?;
        if grouping.is_none() {
            grouping = self.grouping()?;
        }
        self.leave();
        if matches!(op, VectorOp::Sort | VectorOp::SortDesc) && grouping.is_some() {
            return Err(self.err_here(format!("{} takes no grouping", op.name())));
        }
        Ok(MetricExpr::Vector {
            op,
            param,
            grouping,
            expr: Box::new(expr),
        })
    }

    fn log_range(&mut self) -> Result<LogRange, ParseError> {
        // Loki also takes the log query in parentheses: `rate(({job="x"} |= "GET")[10s])`.
        let parenthesised = self.peek() == &Tok::LParen && self.peek_at(1) == &Tok::LBrace;
        if parenthesised {
            self.next();
        } else if self.peek() != &Tok::LBrace {
            return Err(self.unexpected("a log query such as {app=\"x\"}[5m]"));
        }
        let mut log = self.log_expr()?;
        let mut unwrap = self.unwrap()?;
        if parenthesised {
            self.expect(Tok::RParen, "')'")?;
        }
        if self.peek() != &Tok::LBracket {
            return Err(self.unexpected("a range such as [5m]"));
        }
        self.next();
        let range_ns = match self.next() {
            Tok::Duration(ns) if ns > 0 => ns,
            _ => {
                self.i -= 1;
                return Err(self.unexpected("a positive duration such as 5m"));
            }
        };
        self.expect(Tok::RBracket, "']'")?;
        // Loki also reads the pipeline after the range: `{…}[5m] | json`.
        if unwrap.is_none() && log.stages.is_empty() {
            log.stages = self.stages()?;
            unwrap = self.unwrap()?;
        }
        let offset_ns = if self.is_ident("offset") {
            self.next();
            let neg = if self.peek() == &Tok::Minus {
                self.next();
                true
            } else {
                false
            };
            match self.next() {
                Tok::Duration(ns) => {
                    if neg {
                        -ns
                    } else {
                        ns
                    }
                }
                _ => {
                    self.i -= 1;
                    return Err(self.unexpected("a duration after offset"));
                }
            }
        } else {
            0
        };
        Ok(LogRange {
            log,
            unwrap,
            range_ns,
            offset_ns,
        })
    }

    fn unwrap(&mut self) -> Result<Option<Unwrap>, ParseError> {
        if !(self.peek() == &Tok::Pipe && matches!(self.peek_at(1), Tok::Ident(s) if s == "unwrap"))
        {
            return Ok(None);
        }
        self.next();
        self.next();
        let name = self.ident("the label to unwrap")?;
        let (conv, label) = match name.as_str() {
            "duration" | "duration_seconds" | "bytes" if self.peek() == &Tok::LParen => {
                self.next();
                let l = self.ident("a label name")?;
                self.expect(Tok::RParen, "')'")?;
                (
                    if name == "bytes" {
                        Conversion::Bytes
                    } else {
                        Conversion::Duration
                    },
                    l,
                )
            }
            _ => (Conversion::Float, name),
        };
        let mut post_filters = Vec::new();
        while self.peek() == &Tok::Pipe {
            self.next();
            post_filters.push(self.label_filter_or()?);
        }
        Ok(Some(Unwrap {
            label,
            conv,
            post_filters,
        }))
    }

    // ---- log expressions ----

    fn log_expr(&mut self) -> Result<LogExpr, ParseError> {
        let start = self.pos();
        self.expect(Tok::LBrace, "'{' to start a stream selector")?;
        let mut matchers = Vec::new();
        while self.peek() != &Tok::RBrace {
            if !matchers.is_empty() {
                self.expect(Tok::Comma, "',' or '}'")?;
            }
            if matchers.len() == MAX_QUERY_MATCHERS {
                return Err(self.err_here(format!(
                    "a selector may hold at most {MAX_QUERY_MATCHERS} label matchers"
                )));
            }
            let name = self.ident("a label name")?;
            let op = self
                .match_op()
                .ok_or_else(|| self.unexpected("one of =, !=, =~, !~"))?;
            self.next();
            let value = self.string("a quoted string")?;
            matchers.push(LabelMatcher { name, op, value });
        }
        self.next();
        let empty_ok = matchers.iter().all(|m| match m.op {
            MatchOp::Eq => m.value.is_empty(),
            MatchOp::Ne => !m.value.is_empty(),
            // A regex that may match the empty value is checked by the planner; here only
            // the obvious `.*`.
            MatchOp::Re => m.value == ".*" || m.value.is_empty(),
            MatchOp::Nre => m.value != ".*" && !m.value.is_empty(),
        });
        if empty_ok {
            return Err(ParseError::at(
                self.src,
                start,
                "queries require at least one label matcher that does not match the empty value, e.g. {team=\"payments\"}",
            ));
        }
        let stages = self.stages()?;
        Ok(LogExpr { matchers, stages })
    }

    fn match_op(&self) -> Option<MatchOp> {
        Some(match self.peek() {
            Tok::Eq => MatchOp::Eq,
            Tok::Neq => MatchOp::Ne,
            Tok::EqTilde => MatchOp::Re,
            Tok::NotTilde => MatchOp::Nre,
            _ => return None,
        })
    }

    fn cmp_op(&self) -> Option<CmpOp> {
        Some(match self.peek() {
            Tok::Eq | Tok::EqEq => CmpOp::Eq,
            Tok::Neq => CmpOp::Ne,
            Tok::Gt => CmpOp::Gt,
            Tok::Gte => CmpOp::Ge,
            Tok::Lt => CmpOp::Lt,
            Tok::Lte => CmpOp::Le,
            _ => return None,
        })
    }

    fn stages(&mut self) -> Result<Vec<Stage>, ParseError> {
        let mut stages = Vec::new();
        loop {
            let line_op = match self.peek() {
                Tok::PipeEq => Some(LineOp::Contains),
                Tok::Neq => Some(LineOp::NotContains),
                Tok::PipeTilde => Some(LineOp::Regex),
                Tok::NotTilde => Some(LineOp::NotRegex),
                Tok::PipeGt => Some(LineOp::Pattern),
                Tok::NotGt => Some(LineOp::NotPattern),
                Tok::Pipe => None,
                _ => break,
            };
            // `| unwrap` ends the pipeline of a range aggregation.
            if line_op.is_none() && matches!(self.peek_at(1), Tok::Ident(s) if s == "unwrap") {
                break;
            }
            self.stages += 1;
            if self.stages > MAX_QUERY_STAGES {
                return Err(self.err_here(format!(
                    "a query may hold at most {MAX_QUERY_STAGES} pipeline stages"
                )));
            }
            self.next();
            let stage = match line_op {
                Some(op) => {
                    let mut values = vec![self.string("a quoted string")?];
                    while self.is_ident("or") && matches!(self.peek_at(1), Tok::Str(_)) {
                        self.next();
                        values.push(self.string("a quoted string")?);
                    }
                    Stage::LineFilter(LineFilterExpr { op, values })
                }
                None => self.pipe_stage()?,
            };
            stages.push(stage);
        }
        Ok(stages)
    }

    fn pipe_stage(&mut self) -> Result<Stage, ParseError> {
        // Stage names are reserved after `|`, as in Loki: `| json != "x"` is the json parser
        // and a line filter, never a label filter on a label named json.
        let keyword = match self.peek() {
            Tok::Ident(s) if STAGE_KEYWORDS.contains(&s.as_str()) => Some(s.clone()),
            _ => None,
        };
        let Some(kw) = keyword else {
            return Ok(Stage::LabelFilter(self.label_filter_or()?));
        };
        let at = self.pos();
        self.next();
        Ok(match kw.as_str() {
            "json" => Stage::Parser(ParserExpr::Json(self.extractions()?)),
            "logfmt" => {
                let (mut strict, mut keep_empty) = (false, false);
                while let Tok::Flag(f) = self.peek().clone() {
                    match f.as_str() {
                        "strict" => strict = true,
                        "keep-empty" => keep_empty = true,
                        _ => return Err(self.err_here(format!("unknown logfmt flag --{f}"))),
                    }
                    self.next();
                }
                Stage::Parser(ParserExpr::Logfmt {
                    strict,
                    keep_empty,
                    params: self.extractions()?,
                })
            }
            "regexp" => Stage::Parser(ParserExpr::Regexp(self.string("the regular expression as a string")?)),
            "pattern" => Stage::Parser(ParserExpr::Pattern(self.string("the pattern as a string")?)),
            "unpack" => Stage::Parser(ParserExpr::Unpack),
            "line_format" => Stage::LineFormat(self.string("the template as a string")?),
            "label_format" => {
                let mut fmts = Vec::new();
                loop {
                    let dst = self.ident("a label name")?;
                    self.expect(Tok::Eq, "'='")?;
                    fmts.push(match self.next() {
                        Tok::Str(template) => LabelFmt::Template { dst, template },
                        Tok::Ident(src) => LabelFmt::Rename { dst, src },
                        _ => {
                            self.i -= 1;
                            return Err(self.unexpected("a label name or a template string"));
                        }
                    });
                    if self.peek() != &Tok::Comma {
                        break;
                    }
                    self.next();
                }
                Stage::LabelFormat(fmts)
            }
            "drop" | "keep" => {
                let mut sels = Vec::new();
                loop {
                    let name = self.ident("a label name")?;
                    let matcher = match self.match_op() {
                        Some(op) => {
                            self.next();
                            Some((op, self.string("a quoted string")?))
                        }
                        None => None,
                    };
                    sels.push(LabelSel { name, matcher });
                    if self.peek() != &Tok::Comma {
                        break;
                    }
                    self.next();
                }
                if kw == "drop" {
                    Stage::Drop(sels)
                } else {
                    Stage::Keep(sels)
                }
            }
            "decolorize" => Stage::Decolorize,
            _ => {
                return Err(ParseError::at(
                    self.src,
                    at,
                    format!("unknown pipeline stage {kw:?}; expected a parser, a formatter or a label filter"),
                ))
            }
        })
    }

    fn extractions(&mut self) -> Result<Vec<LabelExtraction>, ParseError> {
        let mut out = Vec::new();
        while let Tok::Ident(label) = self.peek().clone() {
            self.next();
            let expr = if self.peek() == &Tok::Eq {
                self.next();
                Some(self.string("the extraction expression as a string")?)
            } else {
                None
            };
            out.push(LabelExtraction { label, expr });
            if self.peek() != &Tok::Comma {
                break;
            }
            self.next();
        }
        Ok(out)
    }

    fn label_filter_or(&mut self) -> Result<LabelFilter, ParseError> {
        self.enter()?;
        let mut lhs = self.label_filter_and()?;
        while self.is_ident("or") {
            self.next();
            let rhs = self.label_filter_and()?;
            lhs = LabelFilter::Or(Box::new(lhs), Box::new(rhs));
        }
        self.leave();
        Ok(lhs)
    }

    fn label_filter_and(&mut self) -> Result<LabelFilter, ParseError> {
        let mut lhs = self.label_filter_primary()?;
        while self.is_ident("and") || self.peek() == &Tok::Comma {
            self.next();
            let rhs = self.label_filter_primary()?;
            lhs = LabelFilter::And(Box::new(lhs), Box::new(rhs));
        }
        Ok(lhs)
    }

    fn label_filter_primary(&mut self) -> Result<LabelFilter, ParseError> {
        if self.peek() == &Tok::LParen {
            self.next();
            let f = self.label_filter_or()?;
            self.expect(Tok::RParen, "')'")?;
            return Ok(f);
        }
        let name_at = self.pos();
        let name = self.ident("a label filter such as status >= 500")?;
        if self.match_op().is_none() && self.cmp_op().is_none() {
            return Err(ParseError::at(
                self.src,
                name_at,
                format!("unknown pipeline stage {name:?}, or a label filter without its operator"),
            ));
        }
        let op_tok = self.peek().clone();
        let value_tok = self.peek_at(1).clone();
        let neg = value_tok == Tok::Minus;
        let value_tok = if neg {
            self.peek_at(2).clone()
        } else {
            value_tok
        };
        if let Tok::Str(_) = value_tok {
            let op = match op_tok {
                Tok::Eq => MatchOp::Eq,
                Tok::Neq => MatchOp::Ne,
                Tok::EqTilde => MatchOp::Re,
                Tok::NotTilde => MatchOp::Nre,
                _ => return Err(self.unexpected("one of =, !=, =~, !~ before a string")),
            };
            self.next();
            let value = self.string("a quoted string")?;
            return Ok(LabelFilter::Str { name, op, value });
        }
        let op = self.cmp_op().ok_or_else(|| {
            self.unexpected("a comparison operator (=, !=, =~, !~, ==, >, >=, <, <=)")
        })?;
        self.next();
        if neg {
            self.next();
        }
        let f = match self.next() {
            Tok::Num(v) => LabelFilter::Number {
                name,
                op,
                value: if neg { -v } else { v },
            },
            Tok::Duration(ns) => LabelFilter::Duration {
                name,
                op,
                ns: if neg { -ns } else { ns },
            },
            Tok::Bytes(bytes) if !neg => LabelFilter::Bytes { name, op, bytes },
            _ => {
                self.i -= 1;
                return Err(self.unexpected("a string, number, duration or byte size"));
            }
        };
        Ok(f)
    }
}
