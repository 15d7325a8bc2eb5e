//! The HTTP API: Loki push and query endpoints plus fjord's own `/v1/info` and stats.
//!
//! `app(state)` builds the router so tests drive it in-process; `run(listener, state,
//! shutdown)` serves it until the token is cancelled, then drains in-flight requests.

mod error;
mod push;
mod query;
/// Response types of the query endpoints, shared with the CLI.
pub mod query_types {
    pub use super::query::{QueryData, QueryResponse, StreamValues};
}

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use fjord_wire::Info;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

pub use error::AppError;

use crate::store::Store;

/// Shared state of every handler.
pub struct AppState {
    pub store: Arc<Store>,
    /// The residency declaration served at `/v1/info`.
    pub info: Info,
    /// Ingest requests decoded and written at once. A push that finds no permit is answered
    /// 429 with `Retry-After` instead of queueing in memory.
    pub ingest_permits: Arc<Semaphore>,
    /// Most entries one query may ask for.
    pub max_query_lines: usize,
}

/// Builds the router.
pub fn app(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/loki/api/v1/push", post(push::push))
        .route("/loki/api/v1/query_range", get(query::query_range))
        .route("/v1/info", get(info))
        .route("/ready", get(|| async { "ready\n" }))
        .route("/fjord/v1/stats", get(query::stats))
        // The push handler enforces MAX_BODY_BYTES itself with a JSON 413; this only lifts
        // axum's 2 MiB default so that it can.
        .layer(DefaultBodyLimit::max(fjord_wire::limits::MAX_BODY_BYTES))
        .with_state(state)
}

async fn info(State(st): State<Arc<AppState>>) -> Json<Info> {
    Json(st.info.clone())
}

/// Serves `app(state)` on `listener` until `shutdown` is cancelled, then lets in-flight
/// requests finish.
pub async fn run(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let addr: SocketAddr = listener.local_addr()?;
    tracing::info!(%addr, region = %state.info.region, jurisdiction = %state.info.jurisdiction, "listening");
    axum::serve(listener, app(state))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

#[cfg(test)]
mod tests;
