//! The HTTP API: Loki push, query and tail endpoints, fjord's own `/v1/info`, stats and
//! erasure, and the background maintenance tasks of a running server.
//!
//! `app(state)` builds the router so tests drive it in-process; `run(listener, state)` serves
//! it until `state.shutdown` is cancelled, then drains in-flight requests, live tails and the
//! maintenance tasks, all of which are tracked in `state.tasks`, and last the access log
//! writer, so that what those recorded as they ended is written.

pub mod access;
pub mod admin;
pub mod auth;
mod budget;
mod error;
mod index;
mod listener;
mod maintenance;
pub mod push;
mod query;
mod tail;

/// Response types of the query endpoints, shared with the CLI.
pub mod query_types {
    pub use super::admin::{EraseRequest, StatsResponse};
    pub use super::query::{LabelsResponse, QueryData, QueryResponse, StreamValues};
    pub use super::tail::TailMessage;
}

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use fjord_wire::Info;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use error::AppError;

use crate::config::{IngestLimits, ServeConfig};
use crate::store::Store;
use auth::Auth;

/// Shared state of every handler.
pub struct AppState {
    pub store: Arc<Store>,
    /// The residency declaration served at `/v1/info`.
    pub info: Info,
    /// Configured tokens; empty = open (loopback-only) mode.
    pub auth: Auth,
    pub limits: IngestLimits,
    /// Admission to the ingest queue: `ingest_concurrency + ingest_queue` permits, taken once
    /// the body has been read. A push that finds none is answered 429 with `Retry-After`.
    pub ingest_slots: Arc<Semaphore>,
    /// Memory for push bodies, reserved before a body is read: `(ingest_concurrency +
    /// ingest_queue) × max_body_bytes` in all, half of that for one team.
    pub body_budget: Arc<budget::KeyedBudget>,
    /// Pushes decoded and written at once (`ingest_concurrency`); admitted pushes wait here.
    pub ingest_workers: Arc<Semaphore>,
    /// Live tails at once (`max_tails`); more are answered 429.
    pub tail_permits: Arc<Semaphore>,
    /// Live tails per token (`max_tails_per_token`), so one token cannot hold every tail.
    pub tails_per_token: Arc<budget::KeyedBudget>,
    /// Most entries one query may ask for.
    pub max_query_lines: usize,
    /// Response bytes, tails per token and tail idle time.
    pub read_limits: crate::config::ReadLimits,
    /// Who read what: every query, tail, label lookup and erasure (server/access.rs).
    pub access: access::AccessLog,
    /// Events counted since start, for `/fjord/v1/stats` (admin) and a later `/metrics`.
    pub counters: Counters,
    /// Cancelled on shutdown: live tails and maintenance tasks stop.
    pub shutdown: CancellationToken,
    /// Live tails and maintenance tasks, awaited on shutdown.
    pub tasks: TaskTracker,
}

/// Counters of events a operator should see, since start. Plain atomics so that a
/// Prometheus `/metrics` endpoint can expose them as they are; until then admin callers read
/// them in `/fjord/v1/stats` (`counters`).
#[derive(Debug, Default)]
pub struct Counters {
    /// Pushes refused 409 because their team had stored the batch id with other lines.
    pub batch_id_conflicts: AtomicU64,
}

impl Counters {
    /// A point-in-time copy, for responses.
    pub fn snapshot(&self) -> CountersSnapshot {
        CountersSnapshot {
            batch_id_conflicts: self.batch_id_conflicts.load(Ordering::Relaxed),
        }
    }
}

/// The values of [`Counters`] at one moment.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct CountersSnapshot {
    pub batch_id_conflicts: u64,
}

impl AppState {
    /// Builds the state from a checked config and an open store.
    pub fn new(store: Arc<Store>, cfg: &ServeConfig, shutdown: CancellationToken) -> AppState {
        store.set_max_streams_per_team(cfg.limits.max_streams_per_team);
        AppState {
            store,
            info: cfg.info.clone(),
            auth: Auth::new(cfg.tokens.clone()),
            limits: cfg.limits.clone(),
            ingest_slots: Arc::new(Semaphore::new(cfg.ingest_concurrency + cfg.ingest_queue)),
            body_budget: {
                let total = (cfg.ingest_concurrency + cfg.ingest_queue)
                    .max(1)
                    .saturating_mul(cfg.limits.max_body_bytes);
                budget::KeyedBudget::new(total, (total / 2).max(cfg.limits.max_body_bytes))
            },
            ingest_workers: Arc::new(Semaphore::new(cfg.ingest_concurrency)),
            tail_permits: Arc::new(Semaphore::new(cfg.max_tails)),
            tails_per_token: budget::KeyedBudget::new(
                usize::MAX,
                cfg.read_limits.max_tails_per_token,
            ),
            max_query_lines: cfg.max_query_lines,
            read_limits: cfg.read_limits.clone(),
            access: access::AccessLog::new(cfg.access_log_queue),
            counters: Counters::default(),
            shutdown,
            tasks: TaskTracker::new(),
        }
    }
}

/// Builds the router.
pub fn app(state: Arc<AppState>) -> Router {
    Router::new()
        // The push handler streams its body with its own limit and JSON 413.
        .route(
            "/loki/api/v1/push",
            post(push::push).layer(DefaultBodyLimit::disable()),
        )
        // Loki takes GET or a form POST for every read endpoint.
        .route(
            "/loki/api/v1/query_range",
            get(query::query_range).post(query::query_range),
        )
        .route(
            "/loki/api/v1/query",
            get(query::query_instant).post(query::query_instant),
        )
        .route(
            "/loki/api/v1/labels",
            get(query::labels).post(query::labels),
        )
        .route("/loki/api/v1/label", get(query::labels).post(query::labels))
        .route(
            "/loki/api/v1/label/{name}/values",
            get(query::label_values).post(query::label_values),
        )
        .route(
            "/loki/api/v1/series",
            get(query::series).post(query::series),
        )
        .route(
            "/loki/api/v1/index/stats",
            get(index::stats).post(index::stats),
        )
        .route(
            "/loki/api/v1/index/volume",
            get(index::volume).post(index::volume),
        )
        .route(
            "/loki/api/v1/index/volume_range",
            get(index::volume_range).post(index::volume_range),
        )
        .route("/loki/api/v1/status/buildinfo", get(index::buildinfo))
        .route(
            "/loki/api/v1/format_query",
            get(index::format_query).post(index::format_query),
        )
        .route("/loki/api/v1/detected_labels", get(index::detected_labels))
        .route("/loki/api/v1/detected_fields", get(index::detected_fields))
        .route("/loki/api/v1/tail", get(tail::tail))
        .route("/v1/info", get(info))
        .route("/ready", get(index::ready))
        .route("/fjord/v1/stats", get(admin::stats))
        .route("/fjord/v1/erase", post(admin::erase))
        .route("/fjord/v1/erasures", get(admin::erasures))
        .with_state(state)
}

async fn info(State(st): State<Arc<AppState>>) -> Json<Info> {
    Json(st.info.clone())
}

/// Serves `app(state)` on `listener`, with the maintenance tasks of `cfg`, until
/// `state.shutdown` is cancelled; then lets in-flight requests finish and waits for every
/// tracked task.
pub async fn run(
    listener: TcpListener,
    state: Arc<AppState>,
    cfg: ServeConfig,
) -> std::io::Result<()> {
    let addr: SocketAddr = listener.local_addr()?;
    if state.auth.is_open() {
        tracing::warn!(%addr, "no [[token]] configured: serving WITHOUT authentication (loopback only)");
    }
    tracing::info!(%addr, region = %state.info.region, jurisdiction = %state.info.jurisdiction, "listening");
    maintenance::spawn(&state, &cfg);
    let writer = access::spawn_writer(&state);
    let res = listener::serve(
        listener,
        app(state.clone()),
        cfg.listener.clone(),
        state.shutdown.clone(),
    )
    .await;
    // Stop the background tasks also when serving failed.
    state.shutdown.cancel();
    state.tasks.close();
    state.tasks.wait().await;
    // Only now has every request and tail recorded itself: the access log writer goes last.
    if let Some(w) = writer {
        w.finish().await;
    }
    res
}

#[cfg(test)]
mod tests;
