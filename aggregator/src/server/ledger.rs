//! `POST /v1/ledger`: agents ship their ledger rows (acknowledged, duplicate, dead-lettered,
//! lost) here, so what a pod sent, had refused and lost outlives the pod.
//!
//! Invariants: ingest tokens only; rows stored under the token's team (a team-less caller's
//! under the agent's `team` label, else `default`) and the `Fjord-Agent` header's agent; the
//! body is bounded (`limits.max_body_bytes`, at most [`MAX_LEDGER_ROWS_PER_PUSH`] rows) and
//! takes a slot of the same bounded ingest queue as pushes, so ledger shipping is shed before
//! it slows ingest; rows are stored with their audit-chain links in one transaction, and the
//! answer (`200 {"stored":n,"last_seq":s}`) comes after the commit. Rows the aggregator
//! already holds are skipped, so a retry stores nothing twice.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use fjord_wire::headers as fh;
use fjord_wire::ledger::{LedgerAck, LedgerPush, MAX_LEDGER_ROWS_PER_PUSH};

use super::auth::Caller;
use super::push::{ingest_slot, DEFAULT_TEAM};
use super::{AppError, AppState};
use crate::store::{Store, StoreError};

/// The ledger handler.
pub async fn ledger(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<LedgerAck>, AppError> {
    caller.require_ingest()?;
    let agent = headers
        .get(fh::AGENT)
        .map(|v| v.to_str().map(str::to_owned))
        .transpose()
        .map_err(|_| AppError::bad_request(format!("header {} is not visible ASCII", fh::AGENT)))?
        .filter(|a| !a.is_empty() && a.len() <= fh::MAX_HEADER_VALUE_BYTES)
        .ok_or_else(|| {
            AppError::bad_request(format!(
                "a ledger push needs the {} header naming the agent",
                fh::AGENT
            ))
        })?;
    let limit = st.limits.max_body_bytes;
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|_| {
        AppError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("a ledger push may carry at most {limit} bytes"),
        )
    })?;
    let push: LedgerPush = serde_json::from_slice(&bytes).map_err(|e| {
        // Line, column and what was expected; never the input serde would quote.
        AppError::bad_request(format!(
            "not a ledger push at line {} column {}: {}",
            e.line(),
            e.column(),
            fjord_wire::codec::json_reason(&e)
        ))
    })?;
    if push.rows.len() > MAX_LEDGER_ROWS_PER_PUSH {
        return Err(AppError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "a ledger push may carry at most {MAX_LEDGER_ROWS_PER_PUSH} rows; this one has {}",
                push.rows.len()
            ),
        ));
    }
    let slot = ingest_slot(&st)?;
    // The token's team wins; only team-less callers (admin, open mode) use the agent's.
    let team = match (&caller.team, &push.team) {
        (Some(t), _) => t.clone(),
        (None, Some(t)) if !t.is_empty() && t.len() <= fh::MAX_HEADER_VALUE_BYTES => t.clone(),
        (None, _) => DEFAULT_TEAM.to_owned(),
    };
    let store: Arc<Store> = st.store.clone();
    let received_ns = Store::now_ns();
    let ack = tokio::task::spawn_blocking(move || {
        let _slot = slot;
        store.ingest_ledger(&team, &agent, received_ns, &push.rows)
    })
    .await
    .map_err(|e| AppError::internal("ledger task", &e))?
    .map_err(|e| match e {
        StoreError::Refused(reason) => AppError::bad_request(reason),
        other => AppError::internal("storing the ledger", &other),
    })?;
    Ok(Json(ack))
}
