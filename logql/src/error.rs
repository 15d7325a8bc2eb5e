//! Errors of parsing and planning (with the line and column of the bad input) and of
//! evaluation. Messages are lowercase, name the bad input, and may quote the query but never
//! the content of a log entry.

use thiserror::Error;

/// A syntax or semantic error in a query, with the position it was found at.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[error("parse error at line {line}, col {col}: {reason}")]
pub struct ParseError {
    /// 1-based line of the query text.
    pub line: usize,
    /// 1-based column (in characters) within that line.
    pub col: usize,
    /// What is wrong.
    pub reason: String,
}

impl ParseError {
    /// An error at byte offset `at` of `src`.
    pub fn at(src: &str, at: usize, reason: impl Into<String>) -> ParseError {
        let mut at = at.min(src.len());
        while !src.is_char_boundary(at) {
            at -= 1;
        }
        let before = &src[..at];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        ParseError {
            line,
            col: src[line_start..at].chars().count() + 1,
            reason: reason.into(),
        }
    }
}

/// An error while evaluating a planned query.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum EvalError {
    /// The query would produce more series than allowed.
    #[error("maximum of series ({limit}) reached for a single query")]
    TooManySeries { limit: usize },
    /// The step grid is larger than allowed.
    #[error("exceeded maximum resolution of {limit} points per time series; try increasing the step or decreasing the time range")]
    TooManyPoints { limit: usize },
    /// The unwrapped samples held for quantiles exceed the limit.
    #[error("the query holds more than {limit} unwrapped samples at once; narrow the range or the selector")]
    TooManySamples { limit: usize },
    /// A binary operation matched several series on the "one" side.
    #[error("{0}")]
    Matching(String),
    /// A sample carried `__error__` and the query did not filter it out.
    #[error("pipeline error: '{error}' for series: '{series}'; use a label filter to intentionally skip this error (e.g. | __error__!=\"{error}\")")]
    Pipeline { error: String, series: String },
    /// The evaluation was cancelled (deadline) by its caller.
    #[error("the query was cancelled: {0}")]
    Cancelled(String),
    /// Invalid step or range parameters.
    #[error("{0}")]
    Params(String),
}
