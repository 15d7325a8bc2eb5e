//! Read endpoints in Loki's JSON shape: `query_range`, `query` (instant log queries),
//! `labels`, `label/<name>/values` and `series`.
//!
//! Invariants: every endpoint needs a read or admin token; a read token's selectors get
//! `team="<its team>"` added server-side, so it never sees another team's streams; time
//! parameters accept Unix ns, float/integer seconds and RFC 3339 as Loki does; a bad parameter
//! or LogQL syntax error is a 400 naming the parameter or the column, never a 5xx; every
//! request past authentication is recorded in the access log (server/access.rs).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Form, FromRequest, Path, Query, Request, State};
use axum::http::{header, Method};
use axum::response::{IntoResponse, Response};
use axum::Json;
use fjord_logql::{EvalLimits, Grid, MetricPlan, Query as Planned, Value as MetricValue};
use fjord_wire::Entry;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::access::Access;
use super::auth::Caller;
use super::{AppError, AppState};
use crate::logql::{self, LogQuery};
use crate::store::{Deadline, Direction, Labels, RangeQuery, Scan, StoreError, StreamResult};
use fjord_wire::clock::{now_ns, parse_duration, parse_step, parse_time};

/// Loki's default `limit`.
pub const DEFAULT_LIMIT: usize = 100;
/// Loki's default range for log queries: the last hour.
pub(super) const DEFAULT_RANGE_NS: i64 = 3600 * 1_000_000_000;
/// Loki's default range for label and series lookups: the last six hours.
pub(super) const DEFAULT_META_RANGE_NS: i64 = 6 * 3600 * 1_000_000_000;
/// How far an instant log query (`/query`) looks back from `time`.
pub const INSTANT_LOOKBACK_NS: i64 = DEFAULT_RANGE_NS;

/// Loki's response: `{"status":"success","data":{"resultType":"streams","result":[…]}}`.
#[derive(Debug, Serialize, Deserialize)]
pub struct QueryResponse {
    pub status: String,
    pub data: QueryData,
}

/// The `data` of a query response.
#[derive(Debug, Serialize, Deserialize)]
pub struct QueryData {
    #[serde(rename = "resultType")]
    pub result_type: String,
    pub result: Vec<StreamValues>,
    #[serde(default)]
    pub stats: serde_json::Value,
}

/// One stream of a result: labels and `[["<ns>", "<line>"], …]`.
#[derive(Debug, Serialize, Deserialize)]
pub struct StreamValues {
    pub stream: BTreeMap<String, String>,
    #[serde(deserialize_with = "fjord_wire::push::owned_entries")]
    pub values: Vec<Entry<'static>>,
}

/// Streams as Loki answers them (without the `categorize-labels` encoding flag): an entry's
/// structured metadata joins its stream's labels (a stream label of the same name wins), so
/// entries with different metadata are streams of their own, each in the order it came.
pub fn stream_values(streams: Vec<StreamResult>) -> Vec<StreamValues> {
    let mut out = Vec::with_capacity(streams.len());
    for s in streams {
        if s.entries.iter().all(|e| e.metadata.is_empty()) {
            out.push(StreamValues {
                stream: s.labels,
                values: s.entries,
            });
            continue;
        }
        // Position in `out` of the stream of each label set.
        let mut at: HashMap<Labels, usize> = HashMap::new();
        for mut e in s.entries {
            let mut labels = s.labels.clone();
            for (k, v) in std::mem::take(&mut e.metadata) {
                labels.entry(k).or_insert(v);
            }
            let i = *at.entry(labels).or_insert_with_key(|labels| {
                out.push(StreamValues {
                    stream: labels.clone(),
                    values: Vec::new(),
                });
                out.len() - 1
            });
            out[i].values.push(e);
        }
    }
    out
}

/// `/labels` and `/label/<n>/values`: `{"status":"success","data":["…"]}`.
#[derive(Debug, Serialize, Deserialize)]
pub struct LabelsResponse {
    pub status: String,
    #[serde(default)]
    pub data: Vec<String>,
}

/// `/series`: `{"status":"success","data":[{labels}, …]}`.
#[derive(Debug, Serialize, Deserialize)]
pub struct SeriesResponse {
    pub status: String,
    pub data: Vec<Labels>,
}

/// Request parameters as Loki takes them: the query string and, for a POST with a form body,
/// the form's fields after it. An unreadable query string or form is kept as the 400 it
/// becomes, so that the handler can still record who asked.
pub struct RawParams(Result<Vec<(String, String)>, String>);

impl<S: Send + Sync> FromRequest<S> for RawParams {
    type Rejection = std::convert::Infallible;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let mut v = match Query::<Vec<(String, String)>>::try_from_uri(req.uri()) {
            Ok(Query(v)) => v,
            Err(e) => {
                return Ok(RawParams(Err(format!(
                    "invalid query parameters: {}",
                    e.body_text()
                ))))
            }
        };
        let is_form = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        // A POST without a form body (Grafana's `POST /labels`) has only its query string.
        if req.method() == Method::POST && is_form {
            match Form::<Vec<(String, String)>>::from_request(req, state).await {
                Ok(Form(body)) => v.extend(body),
                Err(e) => {
                    return Ok(RawParams(Err(format!(
                        "invalid form body: {}",
                        e.body_text()
                    ))))
                }
            }
        }
        Ok(RawParams(Ok(v)))
    }
}

/// Query-string (and form) parameters; repeated keys (`match[]`) are kept in order.
pub struct Params(Vec<(String, String)>);

impl Params {
    /// The parameters of a GET or form POST.
    pub fn from_raw(r: RawParams) -> Result<Self, AppError> {
        r.0.map(Params).map_err(AppError::bad_request)
    }

    /// The parameters, when they were readable (for the access log).
    fn peek(r: &RawParams) -> Option<Params> {
        r.0.as_ref().ok().map(|v| Params(v.clone()))
    }

    /// Parses the query string.
    pub fn from_query(
        q: Result<Query<Vec<(String, String)>>, QueryRejection>,
    ) -> Result<Self, AppError> {
        let Query(v) = q.map_err(|e| {
            AppError::bad_request(format!("invalid query parameters: {}", e.body_text()))
        })?;
        Ok(Params(v))
    }

    /// The last value of `name` (an empty value counts as absent, like Loki).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `name`.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn time(&self, name: &str) -> Result<Option<i64>, AppError> {
        self.get(name)
            .map(|v| parse_time(v).map_err(|e| AppError::bad_request(format!("{name}: {e}"))))
            .transpose()
    }

    /// `[start, end]` from `start`/`end`/`since`, defaulting to `default_ns` before now.
    pub fn range(&self, default_ns: i64) -> Result<(i64, i64), AppError> {
        let end = self.time("end")?.unwrap_or_else(now_ns);
        let start = match (self.time("start")?, self.get("since")) {
            (Some(s), _) => s,
            (None, Some(since)) => {
                let d = parse_duration(since)
                    .map_err(|e| AppError::bad_request(format!("since: {e}")))?;
                end.saturating_sub(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
            }
            (None, None) => end.saturating_sub(default_ns),
        };
        if start > end {
            return Err(AppError::bad_request("start must not be after end"));
        }
        Ok((start, end))
    }

    /// `limit`, checked against the server's maximum.
    pub fn limit(&self, max: usize) -> Result<usize, AppError> {
        let limit = match self.get("limit") {
            Some(l) => l
                .parse::<usize>()
                .map_err(|_| AppError::bad_request("limit must be a non-negative integer"))?,
            None => DEFAULT_LIMIT,
        };
        if limit > max {
            return Err(AppError::bad_request(format!(
                "max entries limit per query exceeded, limit > max_entries_limit ({limit} > {max})"
            )));
        }
        Ok(limit)
    }

    /// `direction`, Loki's default backward.
    pub fn direction(&self) -> Result<Direction, AppError> {
        match self.get("direction") {
            None | Some("backward") | Some("BACKWARD") => Ok(Direction::Backward),
            Some("forward") | Some("FORWARD") => Ok(Direction::Forward),
            Some(_) => Err(AppError::bad_request(
                "direction must be forward or backward",
            )),
        }
    }

    /// The `query` parameter parsed (off the async threads) and confined to the caller's
    /// team.
    pub async fn log_query(&self, caller: &Caller) -> Result<LogQuery, AppError> {
        let q = self
            .get("query")
            .ok_or_else(|| AppError::bad_request("missing parameter `query`"))?;
        let mut query = parse_queries(vec![q.to_owned()], "")
            .await?
            .pop()
            .ok_or_else(|| AppError::bad_request("missing parameter `query`"))?;
        caller.scope_query(&mut query)?;
        Ok(query)
    }
}

impl Params {
    /// The `query` parameter parsed and planned (off the async threads), every selector of
    /// it confined to the caller's team.
    pub async fn planned(&self, caller: &Caller) -> Result<Planned, AppError> {
        let q = self
            .get("query")
            .ok_or_else(|| AppError::bad_request("missing parameter `query`"))?
            .to_owned();
        let mut planned = run_parse(move || fjord_logql::plan(&q), "").await?;
        for sel in planned.selectors_mut() {
            caller.scope_query(sel)?;
        }
        Ok(planned)
    }

    /// `step` of a range query: given as a duration or seconds, else Loki's default of
    /// `(end - start) / 250`, at least one second.
    pub fn step(&self, start: i64, end: i64) -> Result<i64, AppError> {
        match self.get("step") {
            Some(s) => parse_step(s).map_err(|e| AppError::bad_request(format!("step: {e}"))),
            None => Ok(((end - start) / 250).max(1_000_000_000)),
        }
    }
}

/// Runs a parse on the blocking pool within [`QUERY_PARSE_DEADLINE`].
async fn run_parse<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, fjord_logql::ParseError> + Send + 'static,
    prefix: &str,
) -> Result<T, AppError> {
    match tokio::time::timeout(QUERY_PARSE_DEADLINE, tokio::task::spawn_blocking(f)).await {
        Ok(Ok(Ok(v))) => Ok(v),
        Ok(Ok(Err(e))) => Err(AppError::bad_request(format!("{prefix}{e}"))),
        Ok(Err(e)) => Err(AppError::internal("query parse task", &e)),
        Err(_) => Err(AppError::bad_request(format!(
            "{prefix}the query took longer than {}s to parse; simplify its regular expressions",
            QUERY_PARSE_DEADLINE.as_secs()
        ))),
    }
}

/// Parses and plans a query text (not scoped: the caller scopes its selectors).
pub async fn run_parse_pub(text: String) -> Result<Planned, AppError> {
    run_parse(move || fjord_logql::plan(&text), "").await
}

/// Longest span a query may cover (a metric query: its range plus its longest window and
/// offset; a log query: its range): Loki's `max_query_length` default, 721 h.
pub const MAX_METRIC_QUERY_LENGTH_NS: i64 = 721 * 3600 * 1_000_000_000;

/// Limits of one metric evaluation: Loki's defaults for series and points.
pub const METRIC_LIMITS: EvalLimits = EvalLimits {
    max_series: 500,
    max_points: 11_000,
    max_samples: 5_000_000,
};

/// Threads one metric query scans with: the machines fjord runs on have two cores.
pub const SCAN_THREADS: usize = 2;

/// What a metric evaluation read, for `stats`.
#[derive(Debug, Default, Clone, Copy)]
pub struct ScanStats {
    pub lines: u64,
    pub bytes: u64,
}

/// Checks a metric query's time range and points before anything is read.
pub fn check_metric_bounds(plan: &MetricPlan, grid: &Grid) -> Result<(), AppError> {
    let points = grid.points();
    if points > METRIC_LIMITS.max_points {
        return Err(AppError::bad_request(format!(
            "exceeded maximum resolution of {} points per time series ({points} asked for); increase step or narrow the range",
            METRIC_LIMITS.max_points
        )));
    }
    let reach = plan
        .leaves
        .iter()
        .map(|l| {
            let (from, _) = l.span(grid);
            grid.end.saturating_sub(from)
        })
        .max()
        .unwrap_or(0);
    if reach > MAX_METRIC_QUERY_LENGTH_NS {
        return Err(AppError::bad_request(format!(
            "the query time range exceeds the limit (query length: {}h, limit: {}h)",
            reach / 3_600_000_000_000,
            MAX_METRIC_QUERY_LENGTH_NS / 3_600_000_000_000
        )));
    }
    Ok(())
}

/// Evaluates a scoped metric plan over the store on the blocking pool, bounded by
/// [`METRIC_LIMITS`] and the `query_timeout`.
pub async fn run_metric(
    st: &Arc<AppState>,
    caller: &Caller,
    plan: MetricPlan,
    grid: Grid,
) -> Result<(MetricValue, ScanStats), AppError> {
    check_metric_bounds(&plan, &grid)?;
    let store = st.store.clone();
    let team = caller.read_scope().map(str::to_owned);
    let deadline = Deadline::after(st.read_limits.query_timeout);
    let res = tokio::task::spawn_blocking(move || {
        // Both cores: each thread scans every other stream of each leaf into an evaluation of
        // its own; the evaluations merge exactly (counts add, min/max/first/last compare,
        // variances combine), then the operators run once.
        let scan = |part: usize| -> Result<(fjord_logql::Evaluator<'_>, ScanStats), StoreError> {
            let mut ev = plan.evaluator(grid, METRIC_LIMITS)?;
            let mut stats = ScanStats::default();
            for (i, leaf) in plan.leaves.iter().enumerate() {
                let (from, to) = leaf.span(&grid);
                let scan = Scan {
                    query: &leaf.query,
                    team: team.as_deref(),
                    start_ns: from,
                    end_ns: to,
                    part: (part, SCAN_THREADS),
                    deadline,
                };
                store.scan_part(&scan, &mut |labels, meta, ts, line| {
                    stats.lines += 1;
                    stats.bytes += line.len() as u64;
                    ev.push(i, labels, meta, ts, line)
                })?;
            }
            Ok((ev, stats))
        };
        let parts: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> = (1..SCAN_THREADS)
                .map(|part| s.spawn(move || scan(part)))
                .collect();
            let mine = scan(0);
            std::iter::once(Ok(mine))
                .chain(handles.into_iter().map(|h| h.join()))
                .collect()
        });
        let mut total = ScanStats::default();
        let mut merged: Option<fjord_logql::Evaluator<'_>> = None;
        for p in parts {
            let (ev, stats) =
                p.map_err(|_| StoreError::Refused("a scan thread panicked".into()))??;
            total.lines += stats.lines;
            total.bytes += stats.bytes;
            match &mut merged {
                None => merged = Some(ev),
                Some(m) => m.merge(ev)?,
            }
        }
        let ev = match merged {
            Some(ev) => ev,
            None => plan.evaluator(grid, METRIC_LIMITS)?,
        };
        Ok::<_, StoreError>((ev.finish()?, total))
    })
    .await
    .map_err(|e| AppError::internal("query task", &e))?;
    res.map_err(|e| match e {
        StoreError::Eval(e) => AppError::bad_request(e.to_string()),
        other => query_error(other),
    })
}

/// Unix ns as Loki's JSON writes sample times: seconds, with a fraction when there is one.
fn ts_json(ns: i64) -> serde_json::Value {
    if ns % 1_000_000_000 == 0 {
        json!(ns / 1_000_000_000)
    } else {
        json!(ns as f64 / 1e9)
    }
}

/// A sample value as Prometheus and Loki write it: a string, `NaN`, `+Inf`, `-Inf`.
fn value_json(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_owned()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
    } else {
        format!("{v}")
    }
}

/// The `data` of a metric answer: `vector` or `scalar` for an instant query, `matrix` for a
/// range query.
pub fn metric_data(
    v: MetricValue,
    grid: &Grid,
    instant: bool,
    stats: serde_json::Value,
) -> serde_json::Value {
    let (kind, result) = match (v, instant) {
        (MetricValue::Scalar(s), true) => (
            "scalar",
            json!([ts_json(grid.start), value_json(s.first().copied().unwrap_or(f64::NAN))]),
        ),
        (MetricValue::Matrix(m), true) => (
            "vector",
            serde_json::Value::Array(
                m.into_iter()
                    .filter_map(|s| {
                        let v = s.points.first().copied().flatten()?;
                        Some(json!({"metric": s.labels, "value": [ts_json(grid.start), value_json(v)]}))
                    })
                    .collect(),
            ),
        ),
        (v, false) => {
            let m = match v {
                MetricValue::Matrix(m) => m,
                MetricValue::Scalar(s) => vec![fjord_logql::Series {
                    labels: Default::default(),
                    points: s.into_iter().map(Some).collect(),
                }],
            };
            (
                "matrix",
                serde_json::Value::Array(
                    m.into_iter()
                        .filter_map(|s| {
                            let values: Vec<serde_json::Value> = s
                                .points
                                .iter()
                                .enumerate()
                                .filter_map(|(i, p)| p.map(|v| json!([ts_json(grid.at(i)), value_json(v)])))
                                .collect();
                            (!values.is_empty()).then(|| json!({"metric": s.labels, "values": values}))
                        })
                        .collect(),
                ),
            )
        }
    };
    json!({"resultType": kind, "result": result, "stats": stats})
}

/// Loki's `stats` object (the summary part, which Grafana shows in its query inspector).
pub fn stats_json(lines: u64, bytes: u64, returned: u64, exec: Duration) -> serde_json::Value {
    let secs = exec.as_secs_f64();
    let per_sec = |n: u64| {
        if secs > 0.0 {
            (n as f64 / secs) as u64
        } else {
            0
        }
    };
    json!({ "summary": {
        "bytesProcessedPerSecond": per_sec(bytes),
        "linesProcessedPerSecond": per_sec(lines),
        "totalBytesProcessed": bytes,
        "totalLinesProcessed": lines,
        "totalEntriesReturned": returned,
        "execTime": secs,
        "queueTime": 0,
        "subqueries": 0,
        "totalPostFilterLines": returned,
    } })
}

/// The answer of `/query` and `/query_range`: streams, or a metric result.
pub enum Answer {
    Streams(QueryResponse),
    Metric(serde_json::Value),
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        match self {
            Answer::Streams(r) => Json(r).into_response(),
            Answer::Metric(data) => {
                Json(json!({"status": "success", "data": data})).into_response()
            }
        }
    }
}

impl Answer {
    /// Entries (streams) or series (metrics) answered, for the access log.
    fn count(&self) -> u64 {
        match self {
            Answer::Streams(r) => r.data.result.iter().map(|s| s.values.len() as u64).sum(),
            Answer::Metric(d) => d["result"].as_array().map_or(1, |a| a.len() as u64),
        }
    }
}

/// Longest the parse (with regex compilation) of one request's queries may take before the
/// request is answered 400. The LogQL limits (logql/mod.rs) bound the work already; this
/// bounds what a client waits for, and the async threads never do the work at all.
pub const QUERY_PARSE_DEADLINE: Duration = Duration::from_secs(2);

/// Most `match[]` selectors of one `/series` request: each selector is parsed with its own
/// regex limits and scans the team's streams once.
pub const MAX_SERIES_SELECTORS: usize = 8;

/// Parses LogQL texts on the blocking pool within [`QUERY_PARSE_DEADLINE`]; a syntax error or
/// exceeded limit is a 400 whose reason starts with `prefix`.
pub async fn parse_queries(texts: Vec<String>, prefix: &str) -> Result<Vec<LogQuery>, AppError> {
    let parsing = tokio::task::spawn_blocking(move || {
        texts
            .iter()
            .map(|t| logql::parse(t))
            .collect::<Result<Vec<_>, _>>()
    });
    match tokio::time::timeout(QUERY_PARSE_DEADLINE, parsing).await {
        Ok(Ok(Ok(queries))) => Ok(queries),
        Ok(Ok(Err(e))) => Err(AppError::bad_request(format!("{prefix}{e}"))),
        Ok(Err(e)) => Err(AppError::internal("query parse task", &e)),
        Err(_) => Err(AppError::bad_request(format!(
            "{prefix}the query took longer than {}s to parse; simplify its regular expressions",
            QUERY_PARSE_DEADLINE.as_secs()
        ))),
    }
}

pub(super) async fn run_range(st: &Arc<AppState>, rq: RangeQuery) -> Result<Answer, AppError> {
    let started = std::time::Instant::now();
    let store = st.store.clone();
    let streams = tokio::task::spawn_blocking(move || store.query_range(&rq))
        .await
        .map_err(|e| AppError::internal("query task", &e))?
        .map_err(query_error)?;
    let lines: usize = streams.iter().map(|s| s.entries.len()).sum();
    let bytes: usize = streams
        .iter()
        .flat_map(|s| s.entries.iter())
        .map(|e| e.line.len())
        .sum();
    Ok(Answer::Streams(QueryResponse {
        status: "success".to_owned(),
        data: QueryData {
            result_type: "streams".to_owned(),
            result: stream_values(streams),
            stats: stats_json(lines as u64, bytes as u64, lines as u64, started.elapsed()),
        },
    }))
}

/// The answer to a failed store query: 413 for an answer over the byte limit, 400 for a
/// query stopped at the `query_timeout` (each message names the limit and what to do), else
/// an internal error.
pub fn query_error(e: StoreError) -> AppError {
    match e {
        StoreError::TooLarge { .. } => {
            AppError::new(axum::http::StatusCode::PAYLOAD_TOO_LARGE, e.to_string())
        }
        StoreError::DeadlineExceeded { .. } => AppError::bad_request(e.to_string()),
        other => AppError::internal("query", &other),
    }
}

/// Which range a log query endpoint reads.
enum Span {
    /// `start`/`end`/`since` (query_range).
    Range,
    /// `[time - INSTANT_LOOKBACK_NS, time]` (instant query).
    Instant,
}

/// Shared body of the two log query endpoints; records the request in the access log.
async fn log_query(
    st: Arc<AppState>,
    caller: Caller,
    q: RawParams,
    span: Span,
    endpoint: &'static str,
) -> Result<Answer, AppError> {
    let (mut text, mut range) = (None, None);
    let res = log_query_inner(&st, &caller, q, span, &mut text, &mut range).await;
    let (lines, status) = match &res {
        Ok(a) => (a.count(), 200),
        Err(e) => (0, e.status.as_u16()),
    };
    st.access.record(
        &caller,
        Access {
            endpoint,
            query: text.as_deref(),
            range,
            lines,
            status,
        },
    );
    res
}

async fn log_query_inner(
    st: &Arc<AppState>,
    caller: &Caller,
    q: RawParams,
    span: Span,
    text: &mut Option<String>,
    range: &mut Option<(i64, i64)>,
) -> Result<Answer, AppError> {
    // The query text is recorded also when the role is refused: who tried to read what.
    let p = Params::from_raw(q)?;
    *text = p.get("query").map(str::to_owned);
    caller.require_read()?;
    let query = match p.planned(caller).await? {
        Planned::Log(q) => q,
        Planned::Metric(plan) => {
            let started = std::time::Instant::now();
            let (grid, instant) = match span {
                Span::Instant => (Grid::instant(p.time("time")?.unwrap_or_else(now_ns)), true),
                Span::Range => {
                    let (start, end) = p.range(DEFAULT_RANGE_NS)?;
                    let step = p.step(start, end)?;
                    (Grid { start, end, step }, false)
                }
            };
            *range = Some((grid.start, grid.end));
            let (value, scanned) = run_metric(st, caller, plan, grid).await?;
            let stats = stats_json(scanned.lines, scanned.bytes, 0, started.elapsed());
            return Ok(Answer::Metric(metric_data(value, &grid, instant, stats)));
        }
    };
    let (start_ns, end_ns) = match span {
        Span::Range => p.range(DEFAULT_RANGE_NS)?,
        Span::Instant => {
            let end = p.time("time")?.unwrap_or_else(now_ns);
            (end.saturating_sub(INSTANT_LOOKBACK_NS), end)
        }
    };
    *range = Some((start_ns, end_ns));
    // Loki's max_query_length holds for log queries too.
    if end_ns.saturating_sub(start_ns) > MAX_METRIC_QUERY_LENGTH_NS {
        return Err(AppError::bad_request(format!(
            "the query time range exceeds the limit (query length: {}h, limit: {}h)",
            end_ns.saturating_sub(start_ns) / 3_600_000_000_000,
            MAX_METRIC_QUERY_LENGTH_NS / 3_600_000_000_000
        )));
    }
    let rq = RangeQuery {
        query,
        start_ns,
        end_ns,
        limit: p.limit(st.max_query_lines)?,
        direction: p.direction()?,
        team: caller.read_scope().map(str::to_owned),
        max_bytes: st.read_limits.max_query_response_bytes,
        deadline: Deadline::after(st.read_limits.query_timeout),
    };
    run_range(st, rq).await
}

/// `GET`/`POST /loki/api/v1/query_range`: streams for a log query, a matrix for a metric
/// query (evaluated at `start`, `start + step`, … `end`).
pub async fn query_range(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    q: RawParams,
) -> Result<Answer, AppError> {
    log_query(st, caller, q, Span::Range, "query_range").await
}

/// `GET`/`POST /loki/api/v1/query`: an instant query. A metric query answers a vector or
/// scalar at `time`; a log query the entries in `[time - 1h, time]` (Loki answers log
/// selectors here with `resultType: streams` too).
pub async fn query_instant(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    q: RawParams,
) -> Result<Answer, AppError> {
    log_query(st, caller, q, Span::Instant, "query").await
}

/// Streams visible to the caller in the request's range, optionally narrowed by `query`.
pub(super) async fn visible_streams(
    st: &Arc<AppState>,
    caller: &Caller,
    p: &Params,
    selectors: Vec<LogQuery>,
) -> Result<Vec<Labels>, AppError> {
    let (start, end) = p.range(DEFAULT_META_RANGE_NS)?;
    let team = caller.read_scope().map(str::to_owned);
    let store = st.store.clone();
    tokio::task::spawn_blocking(move || -> Result<Vec<Labels>, crate::store::StoreError> {
        if selectors.is_empty() {
            return store.streams_in_range(None, team.as_deref(), start, end);
        }
        // A stream matching several selectors is listed once.
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for sel in &selectors {
            for l in store.streams_in_range(Some(sel), team.as_deref(), start, end)? {
                if seen.insert(l.clone()) {
                    out.push(l);
                }
            }
        }
        Ok(out)
    })
    .await
    .map_err(|e| AppError::internal("series task", &e))?
    .map_err(|e| AppError::internal("series", &e))
}

pub(super) async fn optional_selector(
    p: &Params,
    caller: &Caller,
) -> Result<Vec<LogQuery>, AppError> {
    match p.get("query") {
        Some(_) => Ok(vec![p.log_query(caller).await?]),
        None => Ok(Vec::new()),
    }
}

/// Shared body of the label endpoints: the visible streams of the request, reduced by `pick`
/// to a sorted, de-duplicated list.
async fn label_list(
    st: &Arc<AppState>,
    caller: &Caller,
    q: RawParams,
    pick: impl Fn(Labels) -> Vec<String>,
) -> Result<Json<LabelsResponse>, AppError> {
    caller.require_read()?;
    let p = Params::from_raw(q)?;
    let sel = optional_selector(&p, caller).await?;
    let streams = visible_streams(st, caller, &p, sel).await?;
    let set: BTreeSet<String> = streams.into_iter().flat_map(pick).collect();
    Ok(Json(LabelsResponse {
        status: "success".to_owned(),
        data: set.into_iter().collect(),
    }))
}

/// The selector(s) and range of a label or series request, for the access log.
pub(super) fn meta_access(q: &RawParams) -> (Option<String>, Option<(i64, i64)>) {
    let Some(p) = Params::peek(q) else {
        return (None, None);
    };
    let matches: Vec<&str> = p.all("match[]").chain(p.all("match")).collect();
    let text = p
        .get("query")
        .map(str::to_owned)
        .or_else(|| (!matches.is_empty()).then(|| matches.join(" or ")));
    (text, p.range(DEFAULT_META_RANGE_NS).ok())
}

/// Records a label or series request: `lines` is the number of names, values or series.
pub(super) fn record_meta<T>(
    st: &AppState,
    caller: &Caller,
    endpoint: &str,
    (text, range): (Option<String>, Option<(i64, i64)>),
    res: &Result<Json<T>, AppError>,
    count: impl Fn(&T) -> usize,
) {
    let (lines, status) = match res {
        Ok(Json(r)) => (count(r) as u64, 200),
        Err(e) => (0, e.status.as_u16()),
    };
    st.access.record(
        caller,
        Access {
            endpoint,
            query: text.as_deref(),
            range,
            lines,
            status,
        },
    );
}

/// `GET /loki/api/v1/labels` (also `/label`): label names of the visible streams with data in
/// `[start, end]` (default the last 6 h), optionally narrowed by `query`.
pub async fn labels(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    q: RawParams,
) -> Result<Json<LabelsResponse>, AppError> {
    let meta = meta_access(&q);
    let res = label_list(&st, &caller, q, |l| l.into_keys().collect()).await;
    record_meta(&st, &caller, "labels", meta, &res, |r| r.data.len());
    res
}

/// `GET /loki/api/v1/label/<name>/values`.
pub async fn label_values(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    Path(name): Path<String>,
    q: RawParams,
) -> Result<Json<LabelsResponse>, AppError> {
    let meta = meta_access(&q);
    let res = if fjord_wire::push::valid_label_name(&name) {
        label_list(&st, &caller, q, |mut l| {
            l.remove(&name).into_iter().collect()
        })
        .await
    } else {
        caller.require_read().and(Err(AppError::bad_request(
            "label name must match [a-zA-Z_][a-zA-Z0-9_]*",
        )))
    };
    record_meta(&st, &caller, "label_values", meta, &res, |r| r.data.len());
    res
}

/// `GET /loki/api/v1/series?match[]=…`: the label sets of matching streams.
pub async fn series(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    q: RawParams,
) -> Result<Json<SeriesResponse>, AppError> {
    let meta = meta_access(&q);
    let res = series_inner(&st, &caller, q).await;
    record_meta(&st, &caller, "series", meta, &res, |r| r.data.len());
    res
}

async fn series_inner(
    st: &Arc<AppState>,
    caller: &Caller,
    q: RawParams,
) -> Result<Json<SeriesResponse>, AppError> {
    caller.require_read()?;
    let p = Params::from_raw(q)?;
    let texts: Vec<String> = p
        .all("match[]")
        .chain(p.all("match"))
        .map(str::to_owned)
        .collect();
    if texts.len() > MAX_SERIES_SELECTORS {
        return Err(AppError::bad_request(format!(
            "match[]: at most {MAX_SERIES_SELECTORS} selectors per request"
        )));
    }
    let mut selectors = Vec::new();
    for mut sel in parse_queries(texts, "match[]: ").await? {
        if !sel.filters.is_empty() || sel.has_pipeline() {
            return Err(AppError::bad_request(
                "match[]: series take a stream selector only, without line filters or a pipeline",
            ));
        }
        caller.scope_query(&mut sel)?;
        selectors.push(sel);
    }
    if selectors.is_empty() {
        return Err(AppError::bad_request(
            "missing parameter `match[]`, e.g. match[]={team=\"payments\"}",
        ));
    }
    let data = visible_streams(st, caller, &p, selectors).await?;
    Ok(Json(SeriesResponse {
        status: "success".to_owned(),
        data,
    }))
}
