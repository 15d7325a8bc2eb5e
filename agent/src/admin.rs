//! The agent's local HTTP endpoints: `/metrics` (Prometheus text), `/healthz` (the process
//! is alive: the tailer loop is turning, even while it waits on backpressure) and `/readyz`
//! (the destination passed the residency guard and shipping is possible).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::metrics::Metrics;

/// `/healthz` fails when the tailer loop has not turned for this long.
pub const STALL_AFTER: Duration = Duration::from_secs(60);

/// Readiness, set by the shipper.
#[derive(Default)]
pub struct Health {
    ready: AtomicBool,
    reason: Mutex<String>,
    /// Unix seconds of the tailer's last loop.
    pub heartbeat: Arc<AtomicU64>,
}

impl Health {
    pub fn new(heartbeat: Arc<AtomicU64>) -> Health {
        Health {
            ready: AtomicBool::new(false),
            reason: Mutex::new("residency of the destination not checked yet".to_owned()),
            heartbeat,
        }
    }

    /// Marks ready, or not ready with the reason.
    pub fn set(&self, ready: Result<(), String>) {
        let (ok, why) = match ready {
            Ok(()) => (true, String::new()),
            Err(why) => (false, why),
        };
        self.ready.store(ok, Ordering::Relaxed);
        if let Ok(mut r) = self.reason.lock() {
            *r = why;
        }
    }

    fn readiness(&self) -> Result<(), String> {
        if self.ready.load(Ordering::Relaxed) {
            Ok(())
        } else {
            Err(self.reason.lock().map(|r| r.clone()).unwrap_or_default())
        }
    }
}

#[derive(Clone)]
struct AdminState {
    metrics: Arc<Metrics>,
    health: Arc<Health>,
}

/// The admin router.
pub fn app(metrics: Arc<Metrics>, health: Arc<Health>) -> Router {
    Router::new()
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(AdminState { metrics, health })
}

async fn metrics_text(State(s): State<AdminState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.encode(),
    )
}

async fn healthz(State(s): State<AdminState>) -> impl IntoResponse {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let last = s.health.heartbeat.load(Ordering::Relaxed);
    if now.saturating_sub(last) > STALL_AFTER.as_secs() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "tailer stalled\n".to_owned(),
        )
    } else {
        (StatusCode::OK, "ok\n".to_owned())
    }
}

async fn readyz(State(s): State<AdminState>) -> impl IntoResponse {
    match s.health.readiness() {
        Ok(()) => (StatusCode::OK, "ready\n".to_owned()),
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        ),
    }
}
