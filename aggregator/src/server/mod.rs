//! The HTTP API: Loki push, OTLP/HTTP logs, query and tail endpoints, fjord's own
//! `/v1/info`, stats and erasure, and the background maintenance tasks of a running server.
//!
//! `app(state)` builds the router so tests drive it in-process; `run(listener, state)` serves
//! it until `state.shutdown` is cancelled, then drains in-flight requests, live tails and the
//! maintenance tasks, all of which are tracked in `state.tasks`, and last the access log
//! writer, so that what those recorded as they ended is written.
//!
//! `/metrics` is not on this router: [`metrics_app`] serves it on its own listener
//! (`metrics_listen`), so that the API port can require tokens and client certificates while
//! Prometheus scrapes a port only it can reach.

pub mod access;
pub mod admin;
pub mod auth;
mod budget;
mod error;
mod index;
mod ledger;
mod listener;
mod maintenance;
pub mod metrics;
mod otlp;
pub mod push;
mod query;
mod tail;
pub mod tls;

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
use axum::middleware;
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
    /// Response bytes, tails per token, tail idle time and the query timeout.
    pub read_limits: crate::config::ReadLimits,
    /// Who read what: every query, tail, label lookup and erasure (server/access.rs).
    pub access: access::AccessLog,
    /// Events counted since start, for `/fjord/v1/stats` (admin).
    /// Shared with the accept loop, which counts TLS refusals before any request exists.
    pub counters: Arc<Counters>,
    /// The Prometheus metrics served by [`metrics_app`].
    pub metrics: metrics::Metrics,
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
    /// TLS handshakes that failed or timed out (an untrusted or missing client certificate,
    /// a client that does not trust the server, a protocol version below 1.2, …).
    pub tls_handshake_errors: AtomicU64,
    /// Connections to the TLS port that spoke plain HTTP and were answered 400.
    pub plain_http_refused: AtomicU64,
    /// Certificates reloaded from changed files.
    pub tls_reloads: AtomicU64,
    /// Changed certificate files that did not load; the previous certificate stayed in use.
    pub tls_reload_errors: AtomicU64,
}

impl Counters {
    /// A point-in-time copy, for responses.
    pub fn snapshot(&self) -> CountersSnapshot {
        CountersSnapshot {
            batch_id_conflicts: self.batch_id_conflicts.load(Ordering::Relaxed),
            tls_handshake_errors: self.tls_handshake_errors.load(Ordering::Relaxed),
            plain_http_refused: self.plain_http_refused.load(Ordering::Relaxed),
            tls_reloads: self.tls_reloads.load(Ordering::Relaxed),
            tls_reload_errors: self.tls_reload_errors.load(Ordering::Relaxed),
        }
    }
}

/// The values of [`Counters`] at one moment.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct CountersSnapshot {
    pub batch_id_conflicts: u64,
    #[serde(default)]
    pub tls_handshake_errors: u64,
    #[serde(default)]
    pub plain_http_refused: u64,
    #[serde(default)]
    pub tls_reloads: u64,
    #[serde(default)]
    pub tls_reload_errors: u64,
}

impl AppState {
    /// Builds the state from a checked config and an open store.
    pub fn new(store: Arc<Store>, cfg: &ServeConfig, shutdown: CancellationToken) -> AppState {
        store.set_max_streams_per_team(cfg.limits.max_streams_per_team);
        let tail_permits = Arc::new(Semaphore::new(cfg.max_tails));
        let counters = Arc::new(Counters::default());
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
            metrics: metrics::Metrics::new(
                cfg.tokens.iter().filter_map(|t| t.team.as_deref()),
                tail_permits.clone(),
                cfg.max_tails,
                counters.clone(),
            ),
            tail_permits,
            tails_per_token: budget::KeyedBudget::new(
                usize::MAX,
                cfg.read_limits.max_tails_per_token,
            ),
            max_query_lines: cfg.max_query_lines,
            read_limits: cfg.read_limits.clone(),
            access: access::AccessLog::new(cfg.access_log_queue),
            counters,
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
        // OTLP/HTTP logs, Loki's path for them (`/otlp` + the OTLP default `/v1/logs`).
        .route(
            "/otlp/v1/logs",
            post(otlp::logs).layer(DefaultBodyLimit::disable()),
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
        .route(fjord_wire::ledger::LEDGER_PATH, post(ledger::ledger))
        .route("/ready", get(index::ready))
        .route("/fjord/v1/stats", get(admin::stats))
        .route("/fjord/v1/erase", post(admin::erase))
        .route("/fjord/v1/erasures", get(admin::erasures))
        // Times and counts every request to a known endpoint, including those the auth
        // extractor refuses before a handler runs.
        .layer(middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .with_state(state)
}

/// The router of the metrics listener: `/metrics` (Prometheus text) and `/ready`.
pub fn metrics_app(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/metrics", get(metrics::metrics_text))
        .route("/ready", get(|| async { "ready\n" }))
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
    let tls = match cfg.tls.clone().map(tls::Tls::new).transpose() {
        Ok(t) => t.map(Arc::new),
        Err(err) => {
            return Err(std::io::Error::other(format!(
                "building the TLS configuration: {err}"
            )))
        }
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    // Bound before anything starts, so a taken metrics port fails the start, not a scrape.
    let metrics_listener = match cfg.metrics_listen {
        Some(a) => Some(TcpListener::bind(a).await?),
        None => None,
    };
    tracing::info!(%addr, scheme, client_certificates = cfg.tls.as_ref().is_some_and(|t| t.client_verifier.is_some()), region = %state.info.region, jurisdiction = %state.info.jurisdiction, "listening");
    if let (Some(t), Some(c)) = (&tls, &cfg.tls) {
        tracing::info!(cert = %c.cert_file.display(), valid_until = %humantime::format_rfc3339_seconds(t.not_after()), "TLS certificate loaded");
    }
    if let Some(ml) = metrics_listener {
        let maddr = ml.local_addr()?;
        tracing::info!(addr = %maddr, "serving /metrics");
        let serving = listener::serve(
            ml,
            metrics_app(state.clone()),
            cfg.listener.clone(),
            // Plain HTTP: the metrics port is for the scraper on the pod network.
            None,
            state.shutdown.clone(),
        );
        state.tasks.spawn(async move {
            if let Err(err) = serving.await {
                tracing::error!(addr = %maddr, %err, "metrics listener failed");
            }
        });
    }
    maintenance::spawn(&state, &cfg);
    if let Some(t) = &tls {
        state.tasks.spawn(tls::reload_loop(
            t.clone(),
            state.counters.clone(),
            state.shutdown.clone(),
        ));
    }
    let writer = access::spawn_writer(&state);
    let res = listener::serve(
        listener,
        app(state.clone()),
        cfg.listener.clone(),
        tls.map(|t| listener::TlsAccept {
            acceptor: t.acceptor.clone(),
            counters: state.counters.clone(),
        }),
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
