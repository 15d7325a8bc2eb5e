//! The planner: a syntax tree becomes a runnable query. Regexes, templates, JSON paths and
//! patterns are compiled here, within the per-query regex budget; a metric expression becomes
//! a tree of operators over leaves (its range aggregations), each leaf a log query the store
//! scans once.
//!
//! Invariants: planning never panics on a parsed tree; its errors are [`ParseError`]s whose
//! position is the first occurrence in the query of the input that failed (the tree keeps
//! no positions), so a client sees where to look.

use crate::ast::{Expr, Grouping, LogExpr, MatchOp, MetricExpr, RangeOp, VectorOp};
use crate::error::ParseError;
pub use crate::metric::MetricPlan;
use crate::metric::{Leaf, Node, UnwrapC};
use crate::parser::parse_expr;
use crate::pipeline::{anchored, compile_label_filter, compile_log, LogQuery, RegexBudget};

/// A planned query.
#[derive(Debug, Clone)]
pub enum Query {
    /// A log query: entries.
    Log(LogQuery),
    /// A metric query: samples.
    Metric(MetricPlan),
}

impl Query {
    /// Every log query the store will scan (one for a log query, one per leaf of a metric
    /// query), mutably: a server adds its scoping matcher to each.
    pub fn selectors_mut(&mut self) -> Vec<&mut LogQuery> {
        match self {
            Query::Log(q) => vec![q],
            Query::Metric(m) => m.leaves.iter_mut().map(|l| &mut l.query).collect(),
        }
    }
}

/// Parses and plans a query.
pub fn plan(src: &str) -> Result<Query, ParseError> {
    let expr = parse_expr(src)?;
    plan_expr(src, &expr)
}

/// Parses and plans a log query; a metric query is an error (for the endpoints and commands
/// that read entries only).
pub fn parse(src: &str) -> Result<LogQuery, ParseError> {
    match plan(src)? {
        Query::Log(q) => Ok(q),
        Query::Metric(_) => Err(ParseError::at(
            src,
            0,
            "a metric query is not allowed here; expected a log query such as {app=\"x\"} |= \"error\"",
        )),
    }
}

/// Plans a parsed tree; `src` is the query text, for error positions.
pub fn plan_expr(src: &str, expr: &Expr) -> Result<Query, ParseError> {
    let mut budget = RegexBudget::default();
    let err = |e: String| locate(src, e);
    match expr {
        Expr::Log(l) => Ok(Query::Log(log(l, &mut budget).map_err(err)?)),
        Expr::Metric(m) => {
            let mut leaves = Vec::new();
            let root = node(m, &mut leaves, &mut budget).map_err(err)?;
            for leaf in &mut leaves {
                // Grouping labels sorted and de-duplicated, so that series keys are built
                // by looking them up in order.
                if let Some(g) = &mut leaf.grouping {
                    g.labels.sort();
                    g.labels.dedup();
                    if !g.without {
                        let mut needed = g.labels.clone();
                        if let Some(u) = &leaf.unwrap {
                            needed.push(u.label.clone());
                            // Post-unwrap filters may read any label: keep them all then.
                            if !u.post.is_empty() {
                                continue;
                            }
                        }
                        leaf.query.restrict_extraction(needed);
                    }
                }
            }
            Ok(Query::Metric(MetricPlan {
                root,
                leaves,
                scalar: m.is_scalar(),
            }))
        }
    }
}

/// An error at the first quoted input it names, else at the start.
fn locate(src: &str, reason: String) -> ParseError {
    // The quoted input is the last quoted part of the reason.
    let at = reason
        .rsplit('"')
        .nth(1)
        .filter(|s| !s.is_empty())
        .and_then(|needle| {
            // As written in the query: raw, or with Go escapes.
            let quoted = crate::ast::quote(needle);
            src.find(needle)
                .or_else(|| src.find(&quoted[1..quoted.len() - 1]))
        })
        .unwrap_or(0);
    ParseError::at(src, at, reason)
}

fn log(l: &LogExpr, b: &mut RegexBudget) -> Result<LogQuery, String> {
    compile_log(&l.matchers, &l.stages, b)
}

fn node(m: &MetricExpr, leaves: &mut Vec<Leaf>, b: &mut RegexBudget) -> Result<Node, String> {
    Ok(match m {
        MetricExpr::Range {
            op,
            param,
            range,
            grouping,
        } => {
            let query = log(&range.log, b)?;
            let unwrap = match &range.unwrap {
                Some(u) => Some(UnwrapC {
                    label: u.label.clone(),
                    conv: u.conv,
                    post: u
                        .post_filters
                        .iter()
                        .map(|f| compile_label_filter(f, b))
                        .collect::<Result<_, _>>()?,
                }),
                None => None,
            };
            let absent_labels = if *op == RangeOp::AbsentOverTime {
                range
                    .log
                    .matchers
                    .iter()
                    .filter(|m| m.op == MatchOp::Eq)
                    .map(|m| (m.name.clone(), m.value.clone()))
                    .collect()
            } else {
                Default::default()
            };
            leaves.push(Leaf {
                query,
                op: *op,
                param: *param,
                grouping: grouping.clone(),
                unwrap,
                range_ns: range.range_ns,
                offset_ns: range.offset_ns,
                absent_labels,
            });
            Node::Range(leaves.len() - 1)
        }
        MetricExpr::Vector {
            op,
            param,
            grouping,
            expr,
        } => {
            let inner = node(expr, leaves, b)?;
            // `sum by (level) (count_over_time({…} | json [1m]))`: the per-entry series
            // (one per JSON request id, say) are summed at once, so the range aggregation
            // groups as the sum does. Exact for sum over additive functions and min/max over
            // their own kind; it keeps memory to the groups instead of every label set.
            if let Node::Range(i) = &inner {
                let leaf = &mut leaves[*i];
                let pushable = match op {
                    VectorOp::Sum => matches!(
                        leaf.op,
                        RangeOp::CountOverTime
                            | RangeOp::Rate
                            | RangeOp::BytesOverTime
                            | RangeOp::BytesRate
                            | RangeOp::SumOverTime
                    ),
                    VectorOp::Max => leaf.op == RangeOp::MaxOverTime,
                    VectorOp::Min => leaf.op == RangeOp::MinOverTime,
                    _ => false,
                };
                if pushable && leaf.grouping.is_none() {
                    leaf.grouping = Some(grouping.clone().unwrap_or(Grouping {
                        without: false,
                        labels: Vec::new(),
                    }));
                }
            }
            Node::Vector {
                op: *op,
                param: *param,
                grouping: grouping.clone(),
                expr: Box::new(inner),
            }
        }
        MetricExpr::Binary {
            op,
            return_bool,
            matching,
            lhs,
            rhs,
        } => Node::Binary {
            op: *op,
            return_bool: *return_bool,
            matching: matching.clone(),
            lhs: Box::new(node(lhs, leaves, b)?),
            rhs: Box::new(node(rhs, leaves, b)?),
        },
        MetricExpr::Number(n) => Node::Number(*n),
        MetricExpr::VectorLit(n) => Node::VectorLit(*n),
        MetricExpr::LabelReplace {
            expr,
            dst,
            replacement,
            src,
            regex,
        } => {
            if !crate::ast_label_name(dst) {
                return Err(format!("invalid destination label name \"{dst}\""));
            }
            Node::LabelReplace {
                expr: Box::new(node(expr, leaves, b)?),
                dst: dst.clone(),
                replacement: replacement.clone(),
                src: src.clone(),
                regex: b.compile(regex, &anchored(regex))?,
            }
        }
    })
}
