//! Read endpoints in Loki's JSON shape: `query_range`, `query` (instant log queries),
//! `labels`, `label/<name>/values` and `series`.
//!
//! Invariants: every endpoint needs a read or admin token; a read token's selectors get
//! `team="<its team>"` added server-side, so it never sees another team's streams; time
//! parameters accept Unix ns, float/integer seconds and RFC 3339 as Loki does; a bad parameter
//! or LogQL syntax error is a 400 naming the parameter or the column, never a 5xx; every
//! request past authentication is recorded in the access log (server/access.rs).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::Json;
use fjord_wire::Entry;
use serde::{Deserialize, Serialize};

use super::access::Access;
use super::auth::Caller;
use super::{AppError, AppState};
use crate::logql::{self, LogQuery};
use crate::store::{Direction, Labels, RangeQuery, StoreError, StreamResult};
use fjord_wire::clock::{now_ns, parse_duration, parse_time};

/// Loki's default `limit`.
pub const DEFAULT_LIMIT: usize = 100;
/// Loki's default range for log queries: the last hour.
const DEFAULT_RANGE_NS: i64 = 3600 * 1_000_000_000;
/// Loki's default range for label and series lookups: the last six hours.
const DEFAULT_META_RANGE_NS: i64 = 6 * 3600 * 1_000_000_000;
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

impl From<StreamResult> for StreamValues {
    fn from(s: StreamResult) -> Self {
        StreamValues {
            stream: s.labels,
            values: s.entries,
        }
    }
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

/// Query-string parameters; repeated keys (`match[]`) are kept in order.
pub struct Params(Vec<(String, String)>);

impl Params {
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

    fn time(&self, name: &str) -> Result<Option<i64>, AppError> {
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

async fn run_range(st: &Arc<AppState>, rq: RangeQuery) -> Result<Json<QueryResponse>, AppError> {
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
    Ok(Json(QueryResponse {
        status: "success".to_owned(),
        data: QueryData {
            result_type: "streams".to_owned(),
            result: streams.into_iter().map(StreamValues::from).collect(),
            stats: serde_json::json!({ "summary": {
                "totalEntriesReturned": lines,
                "totalBytesProcessed": bytes,
            } }),
        },
    }))
}

/// The answer to a failed store query: 413 for an answer over the byte limit (its message
/// names the limit and what to do), else an internal error.
pub fn query_error(e: StoreError) -> AppError {
    match e {
        StoreError::TooLarge { .. } => {
            AppError::new(axum::http::StatusCode::PAYLOAD_TOO_LARGE, e.to_string())
        }
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
    q: Result<Query<Vec<(String, String)>>, QueryRejection>,
    span: Span,
    endpoint: &'static str,
) -> Result<Json<QueryResponse>, AppError> {
    let (mut text, mut range) = (None, None);
    let res = log_query_inner(&st, &caller, q, span, &mut text, &mut range).await;
    let (lines, status) = match &res {
        Ok(Json(r)) => (
            r.data.result.iter().map(|s| s.values.len() as u64).sum(),
            200,
        ),
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
    q: Result<Query<Vec<(String, String)>>, QueryRejection>,
    span: Span,
    text: &mut Option<String>,
    range: &mut Option<(i64, i64)>,
) -> Result<Json<QueryResponse>, AppError> {
    // The query text is recorded also when the role is refused: who tried to read what.
    let p = Params::from_query(q)?;
    *text = p.get("query").map(str::to_owned);
    caller.require_read()?;
    let query = p.log_query(caller).await?;
    let (start_ns, end_ns) = match span {
        Span::Range => p.range(DEFAULT_RANGE_NS)?,
        Span::Instant => {
            let end = p.time("time")?.unwrap_or_else(now_ns);
            (end.saturating_sub(INSTANT_LOOKBACK_NS), end)
        }
    };
    *range = Some((start_ns, end_ns));
    let rq = RangeQuery {
        query,
        start_ns,
        end_ns,
        limit: p.limit(st.max_query_lines)?,
        direction: p.direction()?,
        team: caller.read_scope().map(str::to_owned),
        max_bytes: st.read_limits.max_query_response_bytes,
    };
    run_range(st, rq).await
}

/// `GET /loki/api/v1/query_range`.
pub async fn query_range(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    q: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<QueryResponse>, AppError> {
    log_query(st, caller, q, Span::Range, "query_range").await
}

/// `GET /loki/api/v1/query`: an instant log query, the entries in
/// `[time - 1h, time]` (Loki answers log selectors here with `resultType: streams` too).
pub async fn query_instant(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    q: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<QueryResponse>, AppError> {
    log_query(st, caller, q, Span::Instant, "query").await
}

/// Streams visible to the caller in the request's range, optionally narrowed by `query`.
async fn visible_streams(
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

async fn optional_selector(p: &Params, caller: &Caller) -> Result<Vec<LogQuery>, AppError> {
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
    q: Result<Query<Vec<(String, String)>>, QueryRejection>,
    pick: impl Fn(Labels) -> Vec<String>,
) -> Result<Json<LabelsResponse>, AppError> {
    caller.require_read()?;
    let p = Params::from_query(q)?;
    let sel = optional_selector(&p, caller).await?;
    let streams = visible_streams(st, caller, &p, sel).await?;
    let set: BTreeSet<String> = streams.into_iter().flat_map(pick).collect();
    Ok(Json(LabelsResponse {
        status: "success".to_owned(),
        data: set.into_iter().collect(),
    }))
}

/// The selector(s) and range of a label or series request, for the access log.
fn meta_access(
    q: &Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> (Option<String>, Option<(i64, i64)>) {
    let Ok(Query(v)) = q else {
        return (None, None);
    };
    let p = Params(v.clone());
    let matches: Vec<&str> = p.all("match[]").chain(p.all("match")).collect();
    let text = p
        .get("query")
        .map(str::to_owned)
        .or_else(|| (!matches.is_empty()).then(|| matches.join(" or ")));
    (text, p.range(DEFAULT_META_RANGE_NS).ok())
}

/// Records a label or series request: `lines` is the number of names, values or series.
fn record_meta<T>(
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
    q: Result<Query<Vec<(String, String)>>, QueryRejection>,
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
    q: Result<Query<Vec<(String, String)>>, QueryRejection>,
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
    q: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<SeriesResponse>, AppError> {
    let meta = meta_access(&q);
    let res = series_inner(&st, &caller, q).await;
    record_meta(&st, &caller, "series", meta, &res, |r| r.data.len());
    res
}

async fn series_inner(
    st: &Arc<AppState>,
    caller: &Caller,
    q: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<SeriesResponse>, AppError> {
    caller.require_read()?;
    let p = Params::from_query(q)?;
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
        if !sel.filters.is_empty() {
            return Err(AppError::bad_request(
                "match[]: series take a stream selector only, without line filters",
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
