//! Metric evaluation: range aggregations accumulate entries a store pushes into per-step
//! windows; vector aggregations, binary operators, `vector()` and `label_replace` then work
//! on the resulting matrices, step by step.
//!
//! Windows tile as in Prometheus and Loki: the point at step time `t` covers entries with
//! `t - range < ts - … ≤ t` (left-open, right-closed), shifted back by `offset`. Entries may
//! arrive in any order; every accumulator is order-independent (first/last compare
//! timestamps).
//!
//! Invariants (memory bounds): a series is admitted only below `max_series`; the grid holds at
//! most `max_points` steps and every leaf at most `MAX_CELLS` series × steps; quantile samples
//! are counted against `max_samples`. Exceeding any is an [`EvalError`], never an allocation.

use std::collections::HashMap;

use regex::Regex;

use crate::ast::{BinOp, GroupSide, Grouping, RangeOp, VectorMatching, VectorOp};
use crate::error::EvalError;
use crate::limits::EvalLimits;
use crate::pipeline::{
    apply_label_filter, set_sample_error, EntryState, LabelTest, Labels, LogQuery,
    ERROR_DETAILS_LABEL, ERROR_LABEL,
};
use crate::units;

/// Most accumulator cells (series × steps) of one range aggregation: 24 bytes each, so one
/// leaf holds at most 48 MiB.
pub const MAX_CELLS: usize = 2_000_000;

/// The steps a query is evaluated at: `start, start+step, …, ≤ end` (Unix ns). An instant
/// query has `start == end` and one point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grid {
    pub start: i64,
    pub end: i64,
    pub step: i64,
}

impl Grid {
    /// An instant evaluation at `t`.
    pub fn instant(t: i64) -> Grid {
        Grid {
            start: t,
            end: t,
            step: 0,
        }
    }

    /// Number of points.
    pub fn points(&self) -> usize {
        if self.step <= 0 || self.end <= self.start {
            1
        } else {
            ((self.end - self.start) / self.step) as usize + 1
        }
    }

    /// Time of point `i`.
    pub fn at(&self, i: usize) -> i64 {
        self.start + self.step.max(0) * i as i64
    }
}

/// How an unwrapped value is read.
#[derive(Debug, Clone)]
pub(crate) struct UnwrapC {
    pub label: String,
    pub conv: crate::ast::Conversion,
    pub post: Vec<LabelTest>,
}

/// A planned range aggregation: what the store scans and how samples accumulate.
#[derive(Debug, Clone)]
pub struct Leaf {
    /// The selector, pushed-down filters and pipeline the store runs the scan with.
    pub query: LogQuery,
    pub(crate) op: RangeOp,
    pub(crate) param: Option<f64>,
    pub(crate) grouping: Option<Grouping>,
    pub(crate) unwrap: Option<UnwrapC>,
    pub(crate) range_ns: i64,
    pub(crate) offset_ns: i64,
    /// Labels of `absent_over_time`'s series: the selector's equality matchers.
    pub(crate) absent_labels: Labels,
}

impl Leaf {
    /// The inclusive time span `[from, to]` (Unix ns) the store must scan for `grid`.
    pub fn span(&self, grid: &Grid) -> (i64, i64) {
        (
            grid.start
                .saturating_sub(self.offset_ns)
                .saturating_sub(self.range_ns)
                .saturating_add(1),
            grid.end.saturating_sub(self.offset_ns),
        )
    }
}

/// A compiled metric expression.
#[derive(Debug, Clone)]
pub(crate) enum Node {
    Range(usize),
    Vector {
        op: VectorOp,
        param: Option<f64>,
        grouping: Option<Grouping>,
        expr: Box<Node>,
    },
    Binary {
        op: BinOp,
        return_bool: bool,
        matching: Option<VectorMatching>,
        lhs: Box<Node>,
        rhs: Box<Node>,
    },
    Number(f64),
    VectorLit(f64),
    LabelReplace {
        expr: Box<Node>,
        dst: String,
        replacement: String,
        src: String,
        regex: Regex,
    },
}

/// One series of a matrix: labels and a value (or none) per step.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub labels: Labels,
    pub points: Vec<Option<f64>>,
}

/// The value of a metric expression over the grid.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// One value per step.
    Scalar(Vec<f64>),
    /// Series, in output order.
    Matrix(Vec<Series>),
}

/// Accumulates the entries of one leaf.
struct LeafAcc {
    series: Vec<(Labels, Vec<[f64; 3]>)>,
    index: HashMap<String, usize>,
    quantiles: Vec<Vec<Vec<f64>>>,
    /// Cache for pipelines that keep stream labels: the address of the last stream's labels
    /// seen and its series (an address, not a pointer, so that an evaluation can move to
    /// another thread).
    last_stream: Option<(usize, usize)>,
    state: EntryState,
    key: String,
}

/// A planned metric query.
#[derive(Debug, Clone)]
pub struct MetricPlan {
    pub(crate) root: Node,
    /// The range aggregations, each scanned by the store.
    pub leaves: Vec<Leaf>,
    /// Whether the expression is a scalar (no leaves, no `vector()`).
    pub scalar: bool,
}

impl MetricPlan {
    /// Starts an evaluation over `grid`; checks the point limit first.
    pub fn evaluator(&self, grid: Grid, limits: EvalLimits) -> Result<Evaluator<'_>, EvalError> {
        Evaluator::new(self, grid, limits)
    }

    /// Evaluates with entries from `source(leaf, query, from, to, sink)`, which must call
    /// `sink(stream_labels, metadata, ts, line)` for every entry of `query`'s streams in
    /// `[from, to]` that passes its pushed-down filters.
    pub fn evaluate<E: From<EvalError>>(
        &self,
        grid: Grid,
        limits: EvalLimits,
        mut source: impl FnMut(&LogQuery, i64, i64, &mut EntrySink<'_>) -> Result<(), E>,
    ) -> Result<Value, E> {
        let mut ev = self.evaluator(grid, limits)?;
        for (i, leaf) in self.leaves.iter().enumerate() {
            let (from, to) = leaf.span(&grid);
            source(&leaf.query, from, to, &mut |l, meta, ts, line| {
                ev.push(i, l, meta, ts, line)
            })?;
        }
        Ok(ev.finish()?)
    }
}

/// What a store calls with each entry it scans: the stream's labels, the entry's
/// structured metadata, its timestamp and line.
pub type EntrySink<'a> =
    dyn FnMut(&crate::Labels, &[(&str, &str)], i64, &str) -> Result<(), EvalError> + 'a;

/// A running evaluation: push each leaf's entries, then [`Evaluator::finish`].
pub struct Evaluator<'p> {
    plan: &'p MetricPlan,
    grid: Grid,
    limits: EvalLimits,
    leaves: Vec<LeafAcc>,
    samples: usize,
}

impl<'p> Evaluator<'p> {
    pub(crate) fn new(
        plan: &'p MetricPlan,
        grid: Grid,
        limits: EvalLimits,
    ) -> Result<Evaluator<'p>, EvalError> {
        if grid.end < grid.start || grid.step < 0 {
            return Err(EvalError::Params(
                "the end of a query must not be before its start, and step must be positive"
                    .to_owned(),
            ));
        }
        if grid.step == 0 && grid.end != grid.start {
            return Err(EvalError::Params(
                "a range query needs a positive step".to_owned(),
            ));
        }
        if grid.points() > limits.max_points {
            return Err(EvalError::TooManyPoints {
                limit: limits.max_points,
            });
        }
        Ok(Evaluator {
            plan,
            grid,
            limits,
            leaves: plan
                .leaves
                .iter()
                .map(|_| LeafAcc {
                    series: Vec::new(),
                    index: HashMap::new(),
                    quantiles: Vec::new(),
                    last_stream: None,
                    state: EntryState::default(),
                    key: String::new(),
                })
                .collect(),
            samples: 0,
        })
    }

    /// The grid being evaluated.
    pub fn grid(&self) -> Grid {
        self.grid
    }

    /// Feeds one entry of leaf `leaf` (its selector and pushed-down filters already
    /// applied by the store), with its structured metadata (usually none), which joins its
    /// stream's labels.
    ///
    /// `stream` must be the same `Labels` value, at the same address, for every entry of a
    /// stream that the store hands over in a row: the series of a plain leaf is looked up
    /// once per stream, by address.
    pub fn push(
        &mut self,
        leaf: usize,
        stream: &Labels,
        meta: &[(&str, &str)],
        ts: i64,
        line: &str,
    ) -> Result<(), EvalError> {
        let Some(def) = self.plan.leaves.get(leaf) else {
            return Ok(());
        };
        let acc = &mut self.leaves[leaf];
        let grid = self.grid;
        // Points whose window holds `ts`: t - range < ts + offset ≤ t.
        let u = ts.saturating_add(def.offset_ns);
        let n = grid.points();
        let (first, last) = if grid.step == 0 {
            if u <= grid.start && u > grid.start - def.range_ns {
                (0usize, 0usize)
            } else {
                return Ok(());
            }
        } else {
            let lo = u - grid.start;
            let first = if lo <= 0 {
                0
            } else {
                ((lo + grid.step - 1) / grid.step) as usize
            };
            let hi = u.saturating_add(def.range_ns - 1) - grid.start;
            if hi < 0 {
                return Ok(());
            }
            let last = ((hi / grid.step) as usize).min(n - 1);
            if first > last {
                return Ok(());
            }
            (first, last)
        };
        // The sample value and its series.
        let simple =
            !def.query.has_pipeline() && def.unwrap.is_none() && def.op != RangeOp::AbsentOverTime;
        let mut value = match def.op {
            RangeOp::BytesOverTime | RangeOp::BytesRate => line.len() as f64,
            _ => 1.0,
        };
        let idx = if simple && !meta.is_empty() {
            acc.state.reset_meta(stream, meta);
            acc.last_stream = None;
            series_index(acc, def, n, &self.limits)?
        } else if simple {
            match acc.last_stream {
                Some((p, i)) if p == stream as *const Labels as usize => i,
                _ => {
                    let st = &mut acc.state;
                    st.labels_from(stream);
                    let i = series_index(acc, def, n, &self.limits)?;
                    acc.last_stream = Some((stream as *const Labels as usize, i));
                    i
                }
            }
        } else {
            let st = &mut acc.state;
            if !def.query.process_meta(st, stream, meta, ts, line) {
                return Ok(());
            }
            if let RangeOp::BytesOverTime | RangeOp::BytesRate = def.op {
                value = st.line(line).len() as f64;
            }
            if let Some(u) = &def.unwrap {
                let raw = st.labels.get(&u.label).unwrap_or("");
                let conv = match u.conv {
                    crate::ast::Conversion::Float => raw.trim().parse::<f64>().ok(),
                    crate::ast::Conversion::Duration => units::duration_seconds(raw),
                    crate::ast::Conversion::Bytes => {
                        units::parse_bytes(raw.trim()).map(|b| b as f64)
                    }
                };
                match conv {
                    Some(v) => value = v,
                    None => {
                        let d = format!("the value of label {} did not convert", u.label);
                        set_sample_error(st, &d);
                        value = 0.0;
                    }
                }
                for f in &u.post {
                    if !apply_label_filter(f, st) {
                        return Ok(());
                    }
                }
                st.labels.remove(&u.label);
            }
            if let Some(err) = st.labels.get(ERROR_LABEL) {
                let err = err.to_owned();
                st.labels.remove(ERROR_DETAILS_LABEL);
                let mut series: Vec<String> = st
                    .labels
                    .iter()
                    .map(|(k, v)| format!("{k}=\"{v}\""))
                    .collect();
                series.sort();
                return Err(EvalError::Pipeline {
                    error: err,
                    series: format!("{{{}}}", series.join(", ")),
                });
            }
            if def.op == RangeOp::AbsentOverTime {
                st.labels_from(&Labels::new());
            }
            series_index(acc, def, n, &self.limits)?
        };
        let cells = &mut acc.series[idx].1;
        for c in &mut cells[first..=last] {
            add(def.op, c, ts, value);
        }
        if def.op == RangeOp::QuantileOverTime {
            let span = last - first + 1;
            self.samples += span;
            if self.samples > self.limits.max_samples {
                return Err(EvalError::TooManySamples {
                    limit: self.limits.max_samples,
                });
            }
            let q = &mut acc.quantiles[idx];
            for v in &mut q[first..=last] {
                v.push(value);
            }
        }
        Ok(())
    }

    /// Folds in `other`, an evaluation of the same plan and grid over other entries (another
    /// thread's share of the streams), as if its entries had been pushed here.
    pub fn merge(&mut self, other: Evaluator<'p>) -> Result<(), EvalError> {
        self.samples += other.samples;
        if self.samples > self.limits.max_samples {
            return Err(EvalError::TooManySamples {
                limit: self.limits.max_samples,
            });
        }
        let plan = self.plan;
        for ((acc, o), def) in self.leaves.iter_mut().zip(other.leaves).zip(&plan.leaves) {
            let mut series: Vec<Option<(Labels, Vec<[f64; 3]>)>> =
                o.series.into_iter().map(Some).collect();
            let mut quantiles = o.quantiles;
            for (key, oi) in o.index {
                let Some((labels, cells)) = series.get_mut(oi).and_then(Option::take) else {
                    continue;
                };
                let q = quantiles.get_mut(oi).map(std::mem::take);
                match acc.index.get(&key) {
                    Some(&i) => {
                        for (c, oc) in acc.series[i].1.iter_mut().zip(&cells) {
                            merge_cell(def.op, c, oc);
                        }
                        if let (Some(mine), Some(q)) = (acc.quantiles.get_mut(i), q) {
                            for (a, b) in mine.iter_mut().zip(q) {
                                a.extend(b);
                            }
                        }
                    }
                    None => {
                        if acc.series.len() >= self.limits.max_series {
                            return Err(EvalError::TooManySeries {
                                limit: self.limits.max_series,
                            });
                        }
                        acc.series.push((labels, cells));
                        if let Some(q) = q {
                            acc.quantiles.push(q);
                        }
                        acc.index.insert(key, acc.series.len() - 1);
                    }
                }
            }
        }
        Ok(())
    }

    /// Combines the leaves into the query's value.
    pub fn finish(mut self) -> Result<Value, EvalError> {
        let leaves: Vec<Value> = std::mem::take(&mut self.leaves)
            .into_iter()
            .zip(&self.plan.leaves)
            .map(|(acc, def)| finish_leaf(acc, def, &self.grid))
            .collect();
        let mut leaves: Vec<Option<Value>> = leaves.into_iter().map(Some).collect();
        eval(&self.plan.root, &mut leaves, &self.grid, &self.limits)
    }
}

impl EntryState {
    /// Resets the state's labels to `stream`'s (for the fast path without a pipeline).
    pub(crate) fn labels_from(&mut self, stream: &Labels) {
        self.reset(stream);
    }
}

fn series_index(
    acc: &mut LeafAcc,
    def: &Leaf,
    n: usize,
    limits: &EvalLimits,
) -> Result<usize, EvalError> {
    // The key: the grouping labels (range aggregations over unwrapped values may group), or
    // every label.
    match &def.grouping {
        None => acc.state.labels.key_into(&mut acc.key, None),
        // `by`: the grouping labels, sorted at planning, looked up in turn (no allocation).
        Some(g) if !g.without => {
            acc.key.clear();
            for k in &g.labels {
                if let Some(v) = acc.state.labels.get(k) {
                    acc.key.push_str(k);
                    acc.key.push('\u{0}');
                    acc.key.push_str(v);
                    acc.key.push('\u{1}');
                }
            }
        }
        Some(g) => {
            acc.key.clear();
            let mut pairs: Vec<(&str, &str)> = acc
                .state
                .labels
                .iter()
                .filter(|(k, _)| g.labels.iter().any(|l| l == k) != g.without)
                .collect();
            pairs.sort_unstable();
            for (k, v) in pairs {
                acc.key.push_str(k);
                acc.key.push('\u{0}');
                acc.key.push_str(v);
                acc.key.push('\u{1}');
            }
        }
    }
    if let Some(&i) = acc.index.get(acc.key.as_str()) {
        return Ok(i);
    }
    if acc.series.len() >= limits.max_series {
        return Err(EvalError::TooManySeries {
            limit: limits.max_series,
        });
    }
    if (acc.series.len() + 1).saturating_mul(n) > MAX_CELLS {
        return Err(EvalError::TooManyPoints {
            limit: MAX_CELLS / acc.series.len().max(1),
        });
    }
    let labels: Labels = match &def.grouping {
        None => acc.state.labels.to_labels(),
        Some(g) => acc
            .state
            .labels
            .iter()
            .filter(|(k, _)| g.labels.iter().any(|l| l == k) != g.without)
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
    };
    acc.series.push((labels, vec![[0.0; 3]; n]));
    if def.op == RangeOp::QuantileOverTime {
        acc.quantiles.push(vec![Vec::new(); n]);
    }
    let i = acc.series.len() - 1;
    acc.index.insert(acc.key.clone(), i);
    Ok(i)
}

/// Adds a sample to one cell: `[count, a, b]`, whose meaning depends on the function.
fn add(op: RangeOp, c: &mut [f64; 3], ts: i64, v: f64) {
    let first = c[0] == 0.0;
    c[0] += 1.0;
    match op {
        RangeOp::MinOverTime => {
            if first || v < c[1] {
                c[1] = v
            }
        }
        RangeOp::MaxOverTime => {
            if first || v > c[1] {
                c[1] = v
            }
        }
        RangeOp::StddevOverTime | RangeOp::StdvarOverTime => {
            // Welford: a = mean, b = sum of squared deviations.
            let d = v - c[1];
            c[1] += d / c[0];
            c[2] += d * (v - c[1]);
        }
        RangeOp::FirstOverTime => {
            if first || ts < c[2].to_bits() as i64 {
                c[1] = v;
                c[2] = f64::from_bits(ts as u64);
            }
        }
        RangeOp::LastOverTime => {
            if first || ts >= c[2].to_bits() as i64 {
                c[1] = v;
                c[2] = f64::from_bits(ts as u64);
            }
        }
        _ => c[1] += v,
    }
}

/// Folds cell `o` into `c` (both `[count, a, b]` of `op`).
fn merge_cell(op: RangeOp, c: &mut [f64; 3], o: &[f64; 3]) {
    if o[0] == 0.0 {
        return;
    }
    if c[0] == 0.0 {
        *c = *o;
        return;
    }
    let (na, nb) = (c[0], o[0]);
    match op {
        RangeOp::MinOverTime => c[1] = c[1].min(o[1]),
        RangeOp::MaxOverTime => c[1] = c[1].max(o[1]),
        RangeOp::StddevOverTime | RangeOp::StdvarOverTime => {
            // Chan et al.: the parallel form of Welford's update.
            let n = na + nb;
            let d = o[1] - c[1];
            c[1] += d * nb / n;
            c[2] += o[2] + d * d * na * nb / n;
        }
        RangeOp::FirstOverTime => {
            if (o[2].to_bits() as i64) < (c[2].to_bits() as i64) {
                c[1] = o[1];
                c[2] = o[2];
            }
        }
        RangeOp::LastOverTime => {
            if (o[2].to_bits() as i64) >= (c[2].to_bits() as i64) {
                c[1] = o[1];
                c[2] = o[2];
            }
        }
        _ => c[1] += o[1],
    }
    c[0] = na + nb;
}

/// Prometheus' quantile: linear interpolation between the closest ranks.
pub fn quantile(q: f64, values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    values.sort_by(|a, b| a.total_cmp(b));
    let rank = q * (values.len() - 1) as f64;
    let lo = rank.floor() as usize;
    let hi = (lo + 1).min(values.len() - 1);
    let w = rank - lo as f64;
    values[lo] * (1.0 - w) + values[hi] * w
}

fn finish_leaf(mut acc: LeafAcc, def: &Leaf, grid: &Grid) -> Value {
    let secs = def.range_ns as f64 / 1e9;
    if def.op == RangeOp::AbsentOverTime {
        let n = grid.points();
        let present: Vec<bool> = (0..n)
            .map(|i| acc.series.iter().any(|(_, c)| c[i][0] > 0.0))
            .collect();
        let points: Vec<Option<f64>> = present.iter().map(|p| (!p).then_some(1.0)).collect();
        if points.iter().all(Option::is_none) {
            return Value::Matrix(Vec::new());
        }
        return Value::Matrix(vec![Series {
            labels: def.absent_labels.clone(),
            points,
        }]);
    }
    let mut out = Vec::with_capacity(acc.series.len());
    for (si, (labels, cells)) in acc.series.into_iter().enumerate() {
        let points = cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let n = c[0];
                if n == 0.0 {
                    return None;
                }
                Some(match def.op {
                    RangeOp::CountOverTime => n,
                    RangeOp::Rate | RangeOp::BytesRate => c[1] / secs,
                    RangeOp::BytesOverTime | RangeOp::SumOverTime => c[1],
                    RangeOp::AvgOverTime => c[1] / n,
                    RangeOp::MinOverTime | RangeOp::MaxOverTime => c[1],
                    RangeOp::StdvarOverTime => c[2] / n,
                    RangeOp::StddevOverTime => (c[2] / n).sqrt(),
                    RangeOp::FirstOverTime | RangeOp::LastOverTime => c[1],
                    RangeOp::QuantileOverTime => {
                        quantile(def.param.unwrap_or(0.5), &mut acc.quantiles[si][i])
                    }
                    RangeOp::AbsentOverTime => 1.0,
                })
            })
            .collect();
        out.push(Series { labels, points });
    }
    Value::Matrix(out)
}

// ---- operators over matrices ----

fn group_key(labels: &Labels, g: Option<&Grouping>) -> Labels {
    match g {
        None => Labels::new(),
        Some(g) => labels
            .iter()
            .filter(|(k, _)| g.labels.iter().any(|l| l == *k) != g.without)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    }
}

fn eval(
    node: &Node,
    leaves: &mut [Option<Value>],
    grid: &Grid,
    limits: &EvalLimits,
) -> Result<Value, EvalError> {
    let n = grid.points();
    let v = match node {
        Node::Range(i) => leaves
            .get_mut(*i)
            .and_then(Option::take)
            .unwrap_or(Value::Matrix(Vec::new())),
        Node::Number(x) => Value::Scalar(vec![*x; n]),
        Node::VectorLit(x) => Value::Matrix(vec![Series {
            labels: Labels::new(),
            points: vec![Some(*x); n],
        }]),
        Node::LabelReplace {
            expr,
            dst,
            replacement,
            src,
            regex,
        } => {
            let m = matrix(eval(expr, leaves, grid, limits)?, n);
            let mut out: Vec<Series> = Vec::with_capacity(m.len());
            for mut s in m {
                let v = s.labels.get(src).map_or("", String::as_str).to_owned();
                if let Some(caps) = regex.captures(&v) {
                    let mut r = String::new();
                    caps.expand(replacement, &mut r);
                    if r.is_empty() {
                        s.labels.remove(dst);
                    } else {
                        s.labels.insert(dst.clone(), r);
                    }
                }
                out.push(s);
            }
            Value::Matrix(merge_same_labels(out)?)
        }
        Node::Vector {
            op,
            param,
            grouping,
            expr,
        } => Value::Matrix(vector_agg(
            *op,
            *param,
            grouping.as_ref(),
            matrix(eval(expr, leaves, grid, limits)?, n),
            n,
        )),
        Node::Binary {
            op,
            return_bool,
            matching,
            lhs,
            rhs,
        } => {
            let l = eval(lhs, leaves, grid, limits)?;
            let r = eval(rhs, leaves, grid, limits)?;
            binary(*op, *return_bool, matching.as_ref(), l, r, n)?
        }
    };
    if let Value::Matrix(m) = &v {
        if m.len() > limits.max_series {
            return Err(EvalError::TooManySeries {
                limit: limits.max_series,
            });
        }
    }
    Ok(v)
}

fn matrix(v: Value, n: usize) -> Vec<Series> {
    match v {
        Value::Matrix(m) => m,
        // A scalar where a vector is expected (only reachable through `vector()`-free
        // arithmetic, which the parser types) becomes a label-less series.
        Value::Scalar(s) => vec![Series {
            labels: Labels::new(),
            points: s
                .into_iter()
                .map(Some)
                .chain(std::iter::repeat(None))
                .take(n)
                .collect(),
        }],
    }
}

/// Series with equal labels (after label_replace) are merged; two values at one step are
/// an error, as in Prometheus.
fn merge_same_labels(m: Vec<Series>) -> Result<Vec<Series>, EvalError> {
    let mut out: Vec<Series> = Vec::with_capacity(m.len());
    let mut idx: HashMap<Labels, usize> = HashMap::new();
    for s in m {
        match idx.get(&s.labels) {
            Some(&i) => {
                for (a, b) in out[i].points.iter_mut().zip(s.points) {
                    if b.is_some() {
                        if a.is_some() {
                            return Err(EvalError::Matching(
                                "vector cannot contain metrics with the same labelset".to_owned(),
                            ));
                        }
                        *a = b;
                    }
                }
            }
            None => {
                idx.insert(s.labels.clone(), out.len());
                out.push(s);
            }
        }
    }
    Ok(out)
}

fn vector_agg(
    op: VectorOp,
    param: Option<f64>,
    g: Option<&Grouping>,
    m: Vec<Series>,
    n: usize,
) -> Vec<Series> {
    match op {
        VectorOp::Sort | VectorOp::SortDesc => {
            let mut m = m;
            // Sorting matters for an instant vector; a range result keeps its order.
            if n == 1 {
                m.sort_by(|a, b| {
                    let (x, y) = (
                        a.points[0].unwrap_or(f64::NAN),
                        b.points[0].unwrap_or(f64::NAN),
                    );
                    let o = x.total_cmp(&y);
                    if op == VectorOp::Sort {
                        o
                    } else {
                        o.reverse()
                    }
                });
            }
            return m;
        }
        VectorOp::Topk | VectorOp::Bottomk => {
            let k = param.unwrap_or(1.0).max(0.0) as usize;
            let mut groups: HashMap<Labels, Vec<usize>> = HashMap::new();
            for (i, s) in m.iter().enumerate() {
                groups.entry(group_key(&s.labels, g)).or_default().push(i);
            }
            let mut keep = vec![vec![false; n]; m.len()];
            for members in groups.values() {
                #[allow(clippy::needless_range_loop)] // `step` indexes parallel vectors.
                for step in 0..n {
                    let mut vals: Vec<(f64, usize)> = members
                        .iter()
                        .filter_map(|&i| m[i].points[step].map(|v| (v, i)))
                        .collect();
                    vals.sort_by(|a, b| {
                        let o = a.0.total_cmp(&b.0);
                        if op == VectorOp::Topk {
                            o.reverse()
                        } else {
                            o
                        }
                    });
                    for (_, i) in vals.into_iter().take(k) {
                        keep[i][step] = true;
                    }
                }
            }
            let mut out: Vec<Series> = m
                .into_iter()
                .zip(keep)
                .filter_map(|(mut s, k)| {
                    for (p, k) in s.points.iter_mut().zip(k) {
                        if !k {
                            *p = None;
                        }
                    }
                    s.points.iter().any(Option::is_some).then_some(s)
                })
                .collect();
            if n == 1 {
                out.sort_by(|a, b| {
                    let o = a.points[0]
                        .unwrap_or(0.0)
                        .total_cmp(&b.points[0].unwrap_or(0.0));
                    if op == VectorOp::Topk {
                        o.reverse()
                    } else {
                        o
                    }
                });
            }
            return out;
        }
        _ => {}
    }
    // Group, then fold per step: [count, sum, min/max or mean, m2].
    let mut keys: Vec<Labels> = Vec::new();
    let mut idx: HashMap<Labels, usize> = HashMap::new();
    let mut cells: Vec<Vec<[f64; 4]>> = Vec::new();
    for s in &m {
        let key = group_key(
            &s.labels,
            g.or(Some(&Grouping {
                without: false,
                labels: Vec::new(),
            })),
        );
        let gi = *idx.entry(key.clone()).or_insert_with(|| {
            keys.push(key);
            cells.push(vec![[0.0; 4]; n]);
            keys.len() - 1
        });
        for (step, p) in s.points.iter().enumerate() {
            let Some(v) = *p else { continue };
            let c = &mut cells[gi][step];
            c[0] += 1.0;
            c[1] += v;
            match op {
                VectorOp::Min if c[0] == 1.0 || v < c[2] || c[2].is_nan() => c[2] = v,
                VectorOp::Max if c[0] == 1.0 || v > c[2] || c[2].is_nan() => c[2] = v,
                VectorOp::Stddev | VectorOp::Stdvar | VectorOp::Avg => {
                    let d = v - c[2];
                    c[2] += d / c[0];
                    c[3] += d * (v - c[2]);
                }
                _ => {}
            }
        }
    }
    keys.into_iter()
        .zip(cells)
        .filter_map(|(labels, cells)| {
            let points: Vec<Option<f64>> = cells
                .iter()
                .map(|c| {
                    (c[0] > 0.0).then(|| match op {
                        VectorOp::Sum => c[1],
                        VectorOp::Count => c[0],
                        VectorOp::Avg => c[2],
                        VectorOp::Min | VectorOp::Max => c[2],
                        VectorOp::Stdvar => c[3] / c[0],
                        VectorOp::Stddev => (c[3] / c[0]).sqrt(),
                        _ => c[1],
                    })
                })
                .collect();
            points
                .iter()
                .any(Option::is_some)
                .then_some(Series { labels, points })
        })
        .collect()
}

fn arith(op: BinOp, a: f64, b: f64) -> f64 {
    match op {
        BinOp::Add => a + b,
        BinOp::Sub => a - b,
        BinOp::Mul => a * b,
        BinOp::Div => a / b,
        BinOp::Mod => a % b,
        BinOp::Pow => a.powf(b),
        BinOp::Eq => f64::from(u8::from(a == b)),
        BinOp::Ne => f64::from(u8::from(a != b)),
        BinOp::Gt => f64::from(u8::from(a > b)),
        BinOp::Ge => f64::from(u8::from(a >= b)),
        BinOp::Lt => f64::from(u8::from(a < b)),
        BinOp::Le => f64::from(u8::from(a <= b)),
        BinOp::And | BinOp::Or | BinOp::Unless => f64::NAN,
    }
}

/// `a op b` for one pair: `None` when a comparison without `bool` filters it out; the value
/// kept by a filtering comparison is the left-hand one.
fn apply(op: BinOp, return_bool: bool, a: f64, b: f64) -> Option<f64> {
    let r = arith(op, a, b);
    if op.is_comparison() && !return_bool {
        return (r == 1.0).then_some(a);
    }
    Some(r)
}

fn signature(labels: &Labels, m: Option<&VectorMatching>) -> Labels {
    match m {
        Some(m) if m.on => labels
            .iter()
            .filter(|(k, _)| m.labels.contains(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        Some(m) => labels
            .iter()
            .filter(|(k, _)| !m.labels.contains(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        None => labels.clone(),
    }
}

fn binary(
    op: BinOp,
    return_bool: bool,
    matching: Option<&VectorMatching>,
    l: Value,
    r: Value,
    n: usize,
) -> Result<Value, EvalError> {
    match (l, r) {
        (Value::Scalar(a), Value::Scalar(b)) => Ok(Value::Scalar(
            a.iter().zip(&b).map(|(x, y)| arith(op, *x, *y)).collect(),
        )),
        (Value::Matrix(m), Value::Scalar(s)) => {
            Ok(Value::Matrix(scalar_side(op, return_bool, m, &s, false)))
        }
        (Value::Scalar(s), Value::Matrix(m)) => {
            Ok(Value::Matrix(scalar_side(op, return_bool, m, &s, true)))
        }
        (Value::Matrix(a), Value::Matrix(b)) => {
            vector_vector(op, return_bool, matching, a, b, n).map(Value::Matrix)
        }
    }
}

fn scalar_side(
    op: BinOp,
    return_bool: bool,
    m: Vec<Series>,
    s: &[f64],
    scalar_left: bool,
) -> Vec<Series> {
    m.into_iter()
        .filter_map(|mut series| {
            for (i, p) in series.points.iter_mut().enumerate() {
                if let Some(v) = *p {
                    let (a, b) = if scalar_left { (s[i], v) } else { (v, s[i]) };
                    *p = match apply(op, return_bool, a, b) {
                        // A filtering comparison keeps the vector's value.
                        Some(_) if op.is_comparison() && !return_bool => Some(v),
                        other => other,
                    };
                }
            }
            series.points.iter().any(Option::is_some).then_some(series)
        })
        .collect()
}

fn vector_vector(
    op: BinOp,
    return_bool: bool,
    matching: Option<&VectorMatching>,
    a: Vec<Series>,
    b: Vec<Series>,
    n: usize,
) -> Result<Vec<Series>, EvalError> {
    let sig_a: Vec<Labels> = a.iter().map(|s| signature(&s.labels, matching)).collect();
    let sig_b: Vec<Labels> = b.iter().map(|s| signature(&s.labels, matching)).collect();
    if op.is_set() {
        let mut out = Vec::new();
        // Per step: which signatures the other side has.
        let present =
            |sigs: &[Labels], m: &[Series], step: usize| -> std::collections::HashSet<Labels> {
                sigs.iter()
                    .zip(m)
                    .filter(|(_, s)| s.points[step].is_some())
                    .map(|(sig, _)| sig.clone())
                    .collect()
            };
        let rhs_present: Vec<_> = (0..n).map(|i| present(&sig_b, &b, i)).collect();
        match op {
            BinOp::And | BinOp::Unless => {
                for (s, sig) in a.into_iter().zip(&sig_a) {
                    let mut s = s;
                    for (i, p) in s.points.iter_mut().enumerate() {
                        let has = rhs_present[i].contains(sig);
                        if has != (op == BinOp::And) {
                            *p = None;
                        }
                    }
                    if s.points.iter().any(Option::is_some) {
                        out.push(s);
                    }
                }
            }
            _ => {
                let lhs_present: Vec<_> = (0..n).map(|i| present(&sig_a, &a, i)).collect();
                out.extend(a);
                for (s, sig) in b.into_iter().zip(&sig_b) {
                    let mut s = s;
                    for (i, p) in s.points.iter_mut().enumerate() {
                        if lhs_present[i].contains(sig) {
                            *p = None;
                        }
                    }
                    if s.points.iter().any(Option::is_some) {
                        out.push(s);
                    }
                }
            }
        }
        return merge_same_labels(out);
    }
    // Arithmetic and comparisons: the "one" side is indexed by signature per step.
    let group = matching.and_then(|m| m.group.clone());
    let (many, one, many_sig, one_sig, swapped) = match &group {
        Some((GroupSide::Right, _)) => (b, a, sig_b, sig_a, true),
        _ => (a, b, sig_a, sig_b, false),
    };
    let mut out: Vec<Series> = Vec::new();
    let mut out_idx: HashMap<Labels, usize> = HashMap::new();
    let mut by_sig: HashMap<&Labels, Vec<usize>> = HashMap::new();
    for (i, sig) in one_sig.iter().enumerate() {
        by_sig.entry(sig).or_default().push(i);
    }
    // One-to-one matching also refuses several "many" series per signature and step.
    let mut seen_many: HashMap<(&Labels, usize), usize> = HashMap::new();
    for (mi, ms) in many.iter().enumerate() {
        let Some(cands) = by_sig.get(&many_sig[mi]) else {
            continue;
        };
        for step in 0..n {
            let Some(mv) = ms.points[step] else { continue };
            let mut hit = None;
            for &oi in cands {
                if let Some(ov) = one[oi].points[step] {
                    if hit.is_some() {
                        return Err(EvalError::Matching(format!(
                            "found duplicate series for the match group {:?} on the {} hand-side of the operation; many-to-many matching not allowed: matching labels must be unique on one side",
                            many_sig[mi],
                            if swapped { "left" } else { "right" }
                        )));
                    }
                    hit = Some((oi, ov));
                }
            }
            let Some((oi, ov)) = hit else { continue };
            if group.is_none() {
                if let Some(prev) = seen_many.insert((&many_sig[mi], step), mi) {
                    if prev != mi {
                        return Err(EvalError::Matching(format!(
                            "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right) for {:?}",
                            many_sig[mi]
                        )));
                    }
                }
            }
            let (lv, rv) = if swapped { (ov, mv) } else { (mv, ov) };
            let Some(v) = apply(op, return_bool, lv, rv) else {
                continue;
            };
            // A filtering comparison keeps the left value and the left series' labels.
            let labels = result_labels(&ms.labels, &one[oi].labels, matching, group.as_ref());
            let idx = match out_idx.get(&labels) {
                Some(&i) => i,
                None => {
                    out_idx.insert(labels.clone(), out.len());
                    out.push(Series {
                        labels,
                        points: vec![None; n],
                    });
                    out.len() - 1
                }
            };
            if out[idx].points[step].is_some() {
                return Err(EvalError::Matching(
                    "multiple matches for labels: grouping labels must ensure unique matches"
                        .to_owned(),
                ));
            }
            out[idx].points[step] = Some(v);
        }
    }
    Ok(out)
}

fn result_labels(
    many: &Labels,
    one: &Labels,
    matching: Option<&VectorMatching>,
    group: Option<&(GroupSide, Vec<String>)>,
) -> Labels {
    match group {
        Some((_, include)) => {
            let mut l = many.clone();
            for name in include {
                match one.get(name) {
                    Some(v) => {
                        l.insert(name.clone(), v.clone());
                    }
                    None => {
                        l.remove(name);
                    }
                }
            }
            l
        }
        None => match matching {
            Some(m) if m.on => many
                .iter()
                .filter(|(k, _)| m.labels.contains(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            Some(m) => many
                .iter()
                .filter(|(k, _)| !m.labels.contains(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            None => many.clone(),
        },
    }
}
