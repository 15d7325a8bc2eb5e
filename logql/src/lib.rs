//! fjord-logql: LogQL for fjord, with no I/O.
//!
//! `parse_expr` turns query text into a syntax tree ([`ast`]); `plan` compiles it into a
//! [`Query`]: a log query (selector, pushed-down line filters, pipeline) or a metric plan
//! whose leaves a store scans and pushes entries into an [`Evaluator`]. Every store backend
//! uses this one implementation, and it is tested and benchmarked alone.
//!
//! Invariants: nothing here reads files, sockets or clocks; every limit on a hostile query
//! (text, matchers, stages, regexes, templates, series, points, samples) is checked before the
//! memory it bounds is taken (see [`limits`]); no function panics on query input or entry
//! content.

#![deny(unsafe_code)]

pub mod ast;
mod error;
mod lexer;
pub mod limits;
mod metric;
mod parser;
pub mod parsers;
mod pipeline;
mod plan;
pub mod template;
pub mod units;

pub use ast::MatchOp;
pub use error::{EvalError, ParseError};
pub use limits::EvalLimits;
pub use metric::{quantile, EntrySink, Evaluator, Grid, Leaf, Series, Value, MAX_CELLS};
pub use parser::{parse_expr, MAX_DEPTH};
pub use pipeline::{
    anchored, compile_regex, EntryState, LabelBuf, Labels, LineFilter, LogQuery, Matcher, Needle,
    ERROR_DETAILS_LABEL, ERROR_LABEL,
};
pub use plan::{parse, plan, plan_expr, MetricPlan, Query};

/// Whether `s` is a valid label name: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn ast_label_name(s: &str) -> bool {
    let mut c = s.chars();
    c.next()
        .is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
        && c.all(|x| x.is_ascii_alphanumeric() || x == '_')
}
