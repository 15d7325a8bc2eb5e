//! The Loki endpoints around queries that Grafana calls: `index/stats`, `index/volume`,
//! `index/volume_range`, `status/buildinfo`, `format_query`, `detected_labels`,
//! `detected_fields`, and `/ready`.
//!
//! Invariants: every endpoint that reads stored data needs a read or admin token, scopes each
//! selector to the caller's team exactly as `/query` does (`Caller::scope_query`), runs its
//! store work on the blocking pool, and is recorded in the access log; a bad parameter is a
//! 400 naming it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use fjord_logql::{Grid, Query as Planned};
use serde_json::json;

use super::auth::Caller;
use super::query::{
    meta_access, metric_data, optional_selector, record_meta, run_metric, run_range, stats_json,
    visible_streams, Answer, Params, RawParams, DEFAULT_META_RANGE_NS,
};
use super::{AppError, AppState};
use crate::store::{Deadline, Direction, IndexCounts, Labels, RangeQuery};

/// The Loki API version fjord answers `status/buildinfo` with: Grafana enables features
/// (Logs Drilldown, detected fields) by this version, and fjord implements those endpoints.
pub const LOKI_API_VERSION: &str = "3.4.0";

/// Most lines `detected_fields` samples.
const DETECTED_FIELDS_LINES: usize = 1000;

/// Most distinct values `detected_fields` tracks per field.
const DETECTED_FIELD_VALUES: usize = 1000;

/// The selector of an index request, scoped, with the label names it matches on (before the
/// scoping matcher), and the range.
async fn index_selector(
    caller: &Caller,
    p: &Params,
) -> Result<(fjord_logql::LogQuery, Vec<String>, i64, i64), AppError> {
    let (start, end) = p.range(DEFAULT_META_RANGE_NS)?;
    let q = p
        .get("query")
        .ok_or_else(|| AppError::bad_request("missing parameter `query`"))?;
    let mut sel = super::query::parse_queries(vec![q.to_owned()], "")
        .await?
        .pop()
        .ok_or_else(|| AppError::bad_request("missing parameter `query`"))?;
    let names: Vec<String> = sel.matchers.iter().map(|m| m.name.clone()).collect();
    caller.scope_query(&mut sel)?;
    Ok((sel, names, start, end))
}

async fn counts(
    st: &Arc<AppState>,
    caller: &Caller,
    sel: fjord_logql::LogQuery,
    start: i64,
    end: i64,
) -> Result<Vec<(Labels, IndexCounts)>, AppError> {
    let store = st.store.clone();
    let team = caller.read_scope().map(str::to_owned);
    tokio::task::spawn_blocking(move || store.index_stats(&sel, team.as_deref(), start, end))
        .await
        .map_err(|e| AppError::internal("index task", &e))?
        .map_err(|e| AppError::internal("index", &e))
}

/// `GET`/`POST /loki/api/v1/index/stats`: `{"streams","chunks","entries","bytes"}` of the
/// selector in the range.
pub async fn stats(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    q: RawParams,
) -> Result<Json<serde_json::Value>, AppError> {
    let meta = meta_access(&q);
    let res = async {
        caller.require_read()?;
        let p = Params::from_raw(q)?;
        let (sel, _, start, end) = index_selector(&caller, &p).await?;
        let c = counts(&st, &caller, sel, start, end).await?;
        let sum = |f: fn(&IndexCounts) -> u64| c.iter().map(|(_, x)| f(x)).sum::<u64>();
        Ok(Json(json!({
            "streams": c.len(),
            "chunks": sum(|x| x.chunks),
            "entries": sum(|x| x.entries),
            "bytes": sum(|x| x.bytes),
        })))
    }
    .await;
    record_meta(&st, &caller, "index_stats", meta, &res, |r| {
        r["streams"].as_u64().unwrap_or(0) as usize
    });
    res
}

/// The labels volumes are grouped by: `targetLabels` (comma-separated), else the label
/// names of the selector's matchers.
fn volume_labels(p: &Params, names: Vec<String>) -> Vec<String> {
    match p.get("targetLabels") {
        Some(t) => t
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        None => names,
    }
}

/// `GET`/`POST /loki/api/v1/index/volume`: bytes per label set of the selector in the range,
/// as a vector, largest first, at most `limit` (default 100) series.
pub async fn volume(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    q: RawParams,
) -> Result<Json<serde_json::Value>, AppError> {
    let meta = meta_access(&q);
    let res = async {
        caller.require_read()?;
        let p = Params::from_raw(q)?;
        let (sel, names, start, end) = index_selector(&caller, &p).await?;
        let by = volume_labels(&p, names);
        let limit = p.limit(usize::MAX)?;
        let c = counts(&st, &caller, sel, start, end).await?;
        let mut groups: BTreeMap<Labels, u64> = BTreeMap::new();
        for (labels, n) in c {
            let key: Labels = labels.into_iter().filter(|(k, _)| by.contains(k)).collect();
            *groups.entry(key).or_default() += n.bytes;
        }
        let mut v: Vec<(Labels, u64)> = groups.into_iter().collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        v.truncate(limit);
        let t = end / 1_000_000_000;
        let result: Vec<serde_json::Value> = v
            .into_iter()
            .map(|(l, b)| json!({"metric": l, "value": [t, b.to_string()]}))
            .collect();
        Ok(Json(json!({"status": "success", "data": {
            "resultType": "vector", "result": result,
            "stats": stats_json(0, 0, 0, std::time::Duration::ZERO),
        }})))
    }
    .await;
    record_meta(&st, &caller, "index_volume", meta, &res, |r| {
        r["data"]["result"].as_array().map_or(0, Vec::len)
    });
    res
}

/// `GET`/`POST /loki/api/v1/index/volume_range`: bytes per label set and step, as a matrix:
/// `sum by (<labels>) (bytes_over_time(<selector>[<step>]))`.
pub async fn volume_range(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    q: RawParams,
) -> Result<Json<serde_json::Value>, AppError> {
    let meta = meta_access(&q);
    let res = async {
        caller.require_read()?;
        let p = Params::from_raw(q)?;
        let (start, end) = p.range(DEFAULT_META_RANGE_NS)?;
        let step = p.step(start, end)?;
        let text = p
            .get("query")
            .ok_or_else(|| AppError::bad_request("missing parameter `query`"))?
            .to_owned();
        let (_, names, _, _) = index_selector(&caller, &p).await?;
        let by = volume_labels(&p, names);
        let metric = format!(
            "sum by ({}) (bytes_over_time({text} [{}]))",
            by.join(", "),
            fjord_logql::units::format_duration(step)
        );
        let planned = super::query::run_parse_pub(metric).await?;
        let Planned::Metric(mut plan) = planned else {
            return Err(AppError::bad_request("query: a stream selector is needed"));
        };
        for leaf in &mut plan.leaves {
            caller.scope_query(&mut leaf.query)?;
        }
        let grid = Grid { start, end, step };
        let started = std::time::Instant::now();
        let (value, scanned) = run_metric(&st, &caller, plan, grid).await?;
        let stats = stats_json(scanned.lines, scanned.bytes, 0, started.elapsed());
        Ok(Json(
            json!({"status": "success", "data": metric_data(value, &grid, false, stats)}),
        ))
    }
    .await;
    record_meta(&st, &caller, "index_volume_range", meta, &res, |r| {
        r["data"]["result"].as_array().map_or(0, Vec::len)
    });
    res
}

/// `GET /loki/api/v1/status/buildinfo`.
pub async fn buildinfo() -> Json<serde_json::Value> {
    Json(json!({
        "version": LOKI_API_VERSION,
        "revision": "",
        "branch": "",
        "buildUser": "",
        "buildDate": "",
        "goVersion": "",
        "fjordVersion": env!("CARGO_PKG_VERSION"),
    }))
}

/// `GET`/`POST /loki/api/v1/format_query`: the query in canonical form.
pub async fn format_query(
    caller: Caller,
    q: RawParams,
) -> Result<Json<serde_json::Value>, AppError> {
    caller.require_read()?;
    let p = Params::from_raw(q)?;
    let text = p
        .get("query")
        .ok_or_else(|| AppError::bad_request("missing parameter `query`"))?
        .to_owned();
    let formatted =
        tokio::task::spawn_blocking(move || fjord_logql::parse_expr(&text).map(|e| e.to_string()))
            .await
            .map_err(|e| AppError::internal("format task", &e))?
            .map_err(|e| AppError::bad_request(e.to_string()))?;
    Ok(Json(json!({"status": "success", "data": formatted})))
}

/// `GET /loki/api/v1/detected_labels`: the stream labels of the visible streams (narrowed by
/// `query`) and how many values each has.
pub async fn detected_labels(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    q: RawParams,
) -> Result<Json<serde_json::Value>, AppError> {
    let meta = meta_access(&q);
    let res = async {
        caller.require_read()?;
        let p = Params::from_raw(q)?;
        let sel = optional_selector(&p, &caller).await?;
        let streams = visible_streams(&st, &caller, &p, sel).await?;
        let mut values: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for l in streams {
            for (k, v) in l {
                values.entry(k).or_default().insert(v);
            }
        }
        let labels: Vec<serde_json::Value> = values
            .into_iter()
            .map(|(k, v)| json!({"label": k, "cardinality": v.len()}))
            .collect();
        Ok(Json(json!({"detectedLabels": labels})))
    }
    .await;
    record_meta(&st, &caller, "detected_labels", meta, &res, |r| {
        r["detectedLabels"].as_array().map_or(0, Vec::len)
    });
    res
}

/// The type Loki's `detected_fields` reports for a value.
fn field_type(v: &str) -> &'static str {
    if v.parse::<i64>().is_ok() {
        "int"
    } else if v.parse::<f64>().is_ok() {
        "float"
    } else if v == "true" || v == "false" {
        "boolean"
    } else if fjord_logql::units::duration_seconds(v).is_some() {
        "duration"
    } else if fjord_logql::units::parse_bytes(v).is_some() {
        "bytes"
    } else {
        "string"
    }
}

/// `GET /loki/api/v1/detected_fields`: the fields the json or logfmt parser finds in the
/// newest lines of `query` (at most [`DETECTED_FIELDS_LINES`]), with type and cardinality.
pub async fn detected_fields(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    q: RawParams,
) -> Result<Json<serde_json::Value>, AppError> {
    let meta = meta_access(&q);
    let res = async {
        caller.require_read()?;
        let p = Params::from_raw(q)?;
        let query = p.log_query(&caller).await?;
        let (start_ns, end_ns) = p.range(super::query::DEFAULT_RANGE_NS)?;
        let rq = RangeQuery {
            query,
            start_ns,
            end_ns,
            limit: DETECTED_FIELDS_LINES.min(st.max_query_lines),
            direction: Direction::Backward,
            team: caller.read_scope().map(str::to_owned),
            max_bytes: st.read_limits.max_query_response_bytes,
            deadline: Deadline::after(st.read_limits.query_timeout),
        };
        let Answer::Streams(r) = run_range(&st, rq).await? else {
            return Err(AppError::bad_request("query: a log query is needed"));
        };
        // field → (type, parser, values)
        let mut fields: HashMap<String, (&'static str, &'static str, BTreeSet<String>)> =
            HashMap::new();
        let mut key = String::new();
        for s in &r.data.result {
            for e in &s.values {
                let mut found: Vec<(String, String)> = Vec::new();
                let parser =
                    if fjord_logql::parsers::json_flatten(&e.line, &mut key, &mut |k, v| {
                        found.push((k.to_owned(), v.to_owned()))
                    })
                    .is_ok()
                    {
                        "json"
                    } else {
                        found.clear();
                        let _ = fjord_logql::parsers::logfmt(
                            &e.line,
                            false,
                            &mut |k, v, standalone| {
                                if !standalone && !v.is_empty() {
                                    let mut n = String::new();
                                    fjord_logql::parsers::sanitize_into(k, &mut n);
                                    found.push((n, v.to_owned()));
                                }
                            },
                        );
                        "logfmt"
                    };
                for (k, v) in found {
                    let f = fields
                        .entry(k)
                        .or_insert((field_type(&v), parser, BTreeSet::new()));
                    if f.2.len() < DETECTED_FIELD_VALUES {
                        f.2.insert(v);
                    }
                }
            }
        }
        let mut out: Vec<serde_json::Value> = fields
            .into_iter()
            .map(|(k, (t, parser, vals))| {
                json!({"label": k, "type": t, "cardinality": vals.len(), "parsers": [parser]})
            })
            .collect();
        out.sort_by(|a, b| a["label"].as_str().cmp(&b["label"].as_str()));
        Ok(Json(json!({"fields": out, "limit": DETECTED_FIELDS_LINES})))
    }
    .await;
    record_meta(&st, &caller, "detected_fields", meta, &res, |r| {
        r["fields"].as_array().map_or(0, Vec::len)
    });
    res
}

/// `GET /ready`: 200 while the store answers a read, else 503.
pub async fn ready(State(st): State<Arc<AppState>>) -> Response {
    let store = st.store.clone();
    match tokio::task::spawn_blocking(move || store.ping()).await {
        Ok(Ok(())) => "ready\n".into_response(),
        Ok(Err(e)) => {
            tracing::warn!(%e, "readiness: the store does not answer");
            (StatusCode::SERVICE_UNAVAILABLE, "store unavailable\n").into_response()
        }
        Err(e) => {
            tracing::warn!(%e, "readiness task failed");
            (StatusCode::SERVICE_UNAVAILABLE, "store unavailable\n").into_response()
        }
    }
}
