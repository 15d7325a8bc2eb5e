//! Read endpoints: `GET /loki/api/v1/query_range` in Loki's JSON shape, and fjord's stats.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::Json;
use fjord_wire::Entry;
use serde::{Deserialize, Serialize};

use super::{AppError, AppState};
use crate::logql;
use crate::store::{Direction, RangeQuery, TeamStats};
use crate::time::{now_ns, parse_duration, parse_time};

/// Loki's default `limit`.
pub const DEFAULT_LIMIT: usize = 100;
/// Loki's default range: the last hour.
const DEFAULT_RANGE_NS: i64 = 3600 * 1_000_000_000;

#[derive(Debug, Deserialize)]
pub struct RangeParams {
    query: Option<String>,
    start: Option<String>,
    end: Option<String>,
    since: Option<String>,
    limit: Option<String>,
    direction: Option<String>,
}

/// Loki's response: `{"status":"success","data":{"resultType":"streams","result":[…]}}`.
#[derive(Debug, Serialize, Deserialize)]
pub struct QueryResponse {
    pub status: String,
    pub data: QueryData,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct QueryData {
    #[serde(rename = "resultType")]
    pub result_type: String,
    pub result: Vec<StreamValues>,
    #[serde(default)]
    pub stats: serde_json::Value,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct StreamValues {
    pub stream: BTreeMap<String, String>,
    pub values: Vec<Entry>,
}

fn bad_query(e: QueryRejection) -> AppError {
    AppError::bad_request(format!("invalid query parameters: {}", e.body_text()))
}

pub async fn query_range(
    State(st): State<Arc<AppState>>,
    params: Result<Query<RangeParams>, QueryRejection>,
) -> Result<Json<QueryResponse>, AppError> {
    let Query(p) = params.map_err(bad_query)?;
    let q = p
        .query
        .as_deref()
        .ok_or_else(|| AppError::bad_request("missing parameter `query`"))?;
    let query = logql::parse(q).map_err(|e| AppError::bad_request(e.to_string()))?;
    let end_ns = match &p.end {
        Some(e) => parse_time(e).map_err(|e| AppError::bad_request(format!("end: {e}")))?,
        None => now_ns(),
    };
    let start_ns = match (&p.start, &p.since) {
        (Some(s), _) => parse_time(s).map_err(|e| AppError::bad_request(format!("start: {e}")))?,
        (None, Some(since)) => {
            let d =
                parse_duration(since).map_err(|e| AppError::bad_request(format!("since: {e}")))?;
            end_ns.saturating_sub(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        }
        (None, None) => end_ns.saturating_sub(DEFAULT_RANGE_NS),
    };
    if start_ns > end_ns {
        return Err(AppError::bad_request("start must not be after end"));
    }
    let limit = match &p.limit {
        Some(l) => l
            .parse::<usize>()
            .map_err(|_| AppError::bad_request("limit must be a non-negative integer"))?,
        None => DEFAULT_LIMIT,
    };
    if limit > st.max_query_lines {
        return Err(AppError::bad_request(format!(
            "max entries limit per query exceeded, limit > max_entries_limit ({limit} > {})",
            st.max_query_lines
        )));
    }
    let direction = match p.direction.as_deref() {
        None | Some("backward") | Some("BACKWARD") => Direction::Backward,
        Some("forward") | Some("FORWARD") => Direction::Forward,
        Some(_) => {
            return Err(AppError::bad_request(
                "direction must be forward or backward",
            ))
        }
    };
    let rq = RangeQuery {
        query,
        start_ns,
        end_ns,
        limit,
        direction,
        team: None,
    };
    let store = st.store.clone();
    let streams = tokio::task::spawn_blocking(move || store.query_range(&rq))
        .await
        .map_err(|e| AppError::internal("query task", &e))?
        .map_err(|e| AppError::internal("query", &e))?;
    let lines: usize = streams.iter().map(|s| s.entries.len()).sum();
    Ok(Json(QueryResponse {
        status: "success".to_owned(),
        data: QueryData {
            result_type: "streams".to_owned(),
            result: streams
                .into_iter()
                .map(|s| StreamValues {
                    stream: s.labels,
                    values: s.entries,
                })
                .collect(),
            stats: serde_json::json!({ "summary": { "totalEntriesReturned": lines } }),
        },
    }))
}

#[derive(Debug, Serialize)]
pub struct StatsResponse {
    status: &'static str,
    data: Vec<TeamStats>,
}

pub async fn stats(State(st): State<Arc<AppState>>) -> Result<Json<StatsResponse>, AppError> {
    let store = st.store.clone();
    let data = tokio::task::spawn_blocking(move || store.stats(None))
        .await
        .map_err(|e| AppError::internal("stats task", &e))?
        .map_err(|e| AppError::internal("stats", &e))?;
    Ok(Json(StatsResponse {
        status: "success",
        data,
    }))
}
