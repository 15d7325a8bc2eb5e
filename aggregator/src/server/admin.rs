//! fjord's own endpoints: `GET /fjord/v1/stats` (lines and bytes per team, stream and day),
//! `POST /fjord/v1/erase` (admin: erase matching lines, recorded in the erasure log) and
//! `GET /fjord/v1/erasures` (admin: the erasure log).
//!
//! Invariants: stats are confined to a read token's team; erasure needs an admin token and
//! records the token's name as the operator (plus the operator the client names, if any).

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};

use super::access::Access;
use super::auth::{Caller, Role};
use super::query::parse_queries;
use super::{AppError, AppState};
use crate::store::{DetailStats, EraseReport, Erasure, ErasureRecord, StoreError, TeamStats};
use fjord_wire::clock::{now_ns, parse_time};

/// `GET /fjord/v1/stats`. `data` holds team totals (arrived and stored); `streams` and
/// `days` break the stored lines and bytes down per stream and per team-day.
#[derive(Debug, Serialize, Deserialize)]
pub struct StatsResponse {
    pub status: String,
    pub data: Vec<TeamStats>,
    #[serde(flatten)]
    pub detail: DetailStats,
    /// Server-wide event counters; admin callers only (they count every team's events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counters: Option<super::CountersSnapshot>,
}

/// The handler of `GET /fjord/v1/stats`.
pub async fn stats(
    State(st): State<Arc<AppState>>,
    caller: Caller,
) -> Result<Json<StatsResponse>, AppError> {
    caller.require_read()?;
    let store = st.store.clone();
    let team = caller.read_scope().map(str::to_owned);
    let (data, detail) = tokio::task::spawn_blocking(move || {
        Ok::<_, StoreError>((
            store.stats(team.as_deref())?,
            store.stats_detail(team.as_deref())?,
        ))
    })
    .await
    .map_err(|e| AppError::internal("stats task", &e))?
    .map_err(|e| AppError::internal("stats", &e))?;
    let counters = (caller.role == Role::Admin).then(|| st.counters.snapshot());
    Ok(Json(StatsResponse {
        status: "success".to_owned(),
        data,
        detail,
        counters,
    }))
}

/// `POST /fjord/v1/erase` body.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EraseRequest {
    /// LogQL: a selector and at least one line filter, e.g. `{team="payments"} |= "customer=4711"`.
    pub query: String,
    /// Start of the range (Loki time formats); default the epoch.
    #[serde(default)]
    pub start: Option<String>,
    /// End of the range; default now.
    #[serde(default)]
    pub end: Option<String>,
    /// The person behind the request, recorded next to the token name.
    #[serde(default)]
    pub operator: Option<String>,
    /// Count what would be erased, change nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// The response of `POST /fjord/v1/erase`.
#[derive(Debug, Serialize, Deserialize)]
pub struct EraseResponse {
    pub status: String,
    pub data: EraseReport,
}

/// The handler of `POST /fjord/v1/erase`; every request past authentication is recorded in
/// the access log (the erasure itself also in the erasure log).
pub async fn erase(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    body: Result<Json<EraseRequest>, JsonRejection>,
) -> Result<Json<EraseResponse>, AppError> {
    let (mut text, mut range) = (None, None);
    let res = erase_inner(&st, &caller, body, &mut text, &mut range).await;
    let (lines, status) = match &res {
        Ok(Json(r)) => (r.data.lines, 200),
        Err(e) => (0, e.status.as_u16()),
    };
    st.access.record(
        &caller,
        Access {
            endpoint: "erase",
            query: text.as_deref(),
            range,
            lines,
            status,
        },
    );
    res
}

async fn erase_inner(
    st: &Arc<AppState>,
    caller: &Caller,
    body: Result<Json<EraseRequest>, JsonRejection>,
    text: &mut Option<String>,
    range: &mut Option<(i64, i64)>,
) -> Result<Json<EraseResponse>, AppError> {
    let Json(req) = body
        .map_err(|e| AppError::bad_request(format!("invalid erase request: {}", e.body_text())))?;
    // The query text is recorded also when the role is refused.
    *text = Some(if req.dry_run {
        format!("{} (dry run)", req.query)
    } else {
        req.query.clone()
    });
    caller.require_admin()?;
    let query = parse_queries(vec![req.query.clone()], "")
        .await?
        .pop()
        .ok_or_else(|| AppError::bad_request("missing query"))?;
    let time = |name: &str, v: &Option<String>, default: i64| match v {
        Some(s) => parse_time(s).map_err(|e| AppError::bad_request(format!("{name}: {e}"))),
        None => Ok(default),
    };
    let start_ns = time("start", &req.start, 0)?;
    let end_ns = time("end", &req.end, now_ns())?;
    if start_ns > end_ns {
        return Err(AppError::bad_request("start must not be after end"));
    }
    *range = Some((start_ns, end_ns));
    let operator = match req.operator.as_deref().map(str::trim) {
        Some(o) if !o.is_empty() => {
            let o: String = o.chars().filter(|c| !c.is_control()).take(128).collect();
            format!("{} ({o})", caller.name)
        }
        _ => caller.name.clone(),
    };
    let e = Erasure {
        query,
        query_text: req.query.clone(),
        start_ns,
        end_ns,
        team: caller.read_scope().map(str::to_owned),
        operator,
        dry_run: req.dry_run,
    };
    let store = st.store.clone();
    let report = tokio::task::spawn_blocking(move || store.erase(&e, now_ns()))
        .await
        .map_err(|e| AppError::internal("erase task", &e))?
        .map_err(|e| match e {
            StoreError::Refused(reason) => AppError::bad_request(reason),
            other => AppError::internal("erase", &other),
        })?;
    tracing::info!(
        operator = %caller.name,
        lines = report.lines,
        chunks = report.chunks,
        dry_run = req.dry_run,
        "erasure"
    );
    Ok(Json(EraseResponse {
        status: "success".to_owned(),
        data: report,
    }))
}

/// `GET /fjord/v1/erasures` response.
#[derive(Debug, Serialize, Deserialize)]
pub struct ErasuresResponse {
    pub status: String,
    pub data: Vec<ErasureRecord>,
}

/// The handler of `GET /fjord/v1/erasures`.
pub async fn erasures(
    State(st): State<Arc<AppState>>,
    caller: Caller,
) -> Result<Json<ErasuresResponse>, AppError> {
    caller.require_admin()?;
    let store = st.store.clone();
    let data = tokio::task::spawn_blocking(move || store.erasures())
        .await
        .map_err(|e| AppError::internal("erasures task", &e))?
        .map_err(|e| AppError::internal("erasures", &e))?;
    Ok(Json(ErasuresResponse {
        status: "success".to_owned(),
        data,
    }))
}
