//! The agent's local HTTP endpoints: `/metrics` (Prometheus text), `/healthz` (the process
//! is alive: the tailer loop is turning, even while it waits on backpressure) and `/readyz`.
//!
//! `/readyz` reflects only the agent's own health, because a native sidecar's readiness
//! counts for its pod's: the tailer is turning, the state directory takes writes, and its
//! filesystem is below `disk_full_percent` (see [`crate::selfcheck`]). The configuration and
//! rules were checked before the admin port was bound, so a running agent has loaded them.
//! An unreachable aggregator or a residency refusal shows in metrics, logs and alerts; only
//! with `ready_requires_shipping = true` does it fail `/readyz` as well.
//!
//! Handlers read atomics and short-held locks on small strings; nothing here touches the
//! disk or the state DB.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::metrics::Metrics;

/// `/healthz` and `/readyz` fail when the tailer loop has not turned for this long.
pub const STALL_AFTER: Duration = Duration::from_secs(60);

/// Unix seconds now.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// The agent's health as the endpoints report it: set by the tailer (heartbeat), the
/// self-check (state directory, disk budget), the committer and the shipper.
pub struct Health {
    /// Fail `/readyz` while shipping is impossible too (`ready_requires_shipping`).
    requires_shipping: bool,
    /// Shipping is possible: the destination answered and passed the residency guard.
    shipping_ok: AtomicBool,
    /// Why shipping is not possible; empty while it is.
    shipping_reason: Mutex<String>,
    /// Why the last self-check failed; empty when it passed.
    self_check: Mutex<String>,
    /// Unix seconds when the last self-check finished (0: none yet). A check that hangs
    /// (a stuck volume) stops this from moving.
    self_checked_at: AtomicU64,
    /// The last checkpoint commit failed with this error; empty after a success.
    commit_error: Mutex<String>,
    /// Unix seconds of the tailer's last loop.
    pub heartbeat: Arc<AtomicU64>,
}

impl Health {
    pub fn new(heartbeat: Arc<AtomicU64>, requires_shipping: bool) -> Health {
        Health {
            requires_shipping,
            shipping_ok: AtomicBool::new(false),
            shipping_reason: Mutex::new("residency of the destination not checked yet".to_owned()),
            self_check: Mutex::new(String::new()),
            self_checked_at: AtomicU64::new(0),
            commit_error: Mutex::new(String::new()),
            heartbeat,
        }
    }

    /// Records whether shipping is possible (set by the shipper), with the reason if not.
    pub fn set_shipping(&self, ok: Result<(), String>) {
        let (ok, why) = match ok {
            Ok(()) => (true, String::new()),
            Err(why) => (false, why),
        };
        *lock(&self.shipping_reason) = why;
        self.shipping_ok.store(ok, Ordering::Relaxed);
    }

    /// Records the outcome of a self-check that finished at `at` (Unix seconds).
    pub fn set_self_check(&self, ok: Result<(), String>, at: u64) {
        *lock(&self.self_check) = ok.err().unwrap_or_default();
        self.self_checked_at.store(at, Ordering::Relaxed);
    }

    /// Records the outcome of a checkpoint commit.
    pub fn set_commit(&self, ok: Result<(), String>) {
        *lock(&self.commit_error) = ok.err().unwrap_or_default();
    }

    /// Why the tailer is not turning, if it is not.
    fn tailer(&self, now: u64) -> Result<(), String> {
        match self.heartbeat.load(Ordering::Relaxed) {
            0 => Err("the tailer has not started yet".to_owned()),
            last if now.saturating_sub(last) > STALL_AFTER.as_secs() => Err(format!(
                "the tailer has not turned for {} s",
                now.saturating_sub(last)
            )),
            _ => Ok(()),
        }
    }

    /// Ready, or the first reason why not. `self_check_every` is the self-check period: a
    /// check that has not finished for three periods counts as failed.
    pub fn readiness(&self, now: u64, self_check_every: Duration) -> Result<(), String> {
        self.tailer(now)?;
        let checked = self.self_checked_at.load(Ordering::Relaxed);
        if checked == 0 {
            return Err("the state directory has not been checked yet".to_owned());
        }
        let late = 3 * self_check_every.as_secs().max(1);
        if now.saturating_sub(checked) > late {
            return Err(format!(
                "the state directory check has not finished for {} s",
                now.saturating_sub(checked)
            ));
        }
        let why = lock(&self.self_check).clone();
        if !why.is_empty() {
            return Err(why);
        }
        let why = lock(&self.commit_error).clone();
        if !why.is_empty() {
            return Err(format!("cannot store checkpoints: {why}"));
        }
        if self.requires_shipping && !self.shipping_ok.load(Ordering::Relaxed) {
            return Err(lock(&self.shipping_reason).clone());
        }
        Ok(())
    }

    fn healthy(&self, now: u64) -> Result<(), String> {
        let last = self.heartbeat.load(Ordering::Relaxed);
        if now.saturating_sub(last) > STALL_AFTER.as_secs() {
            Err("tailer stalled".to_owned())
        } else {
            Ok(())
        }
    }
}

#[derive(Clone)]
struct AdminState {
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    self_check_every: Duration,
}

/// The admin router. `self_check_every` is the period of [`crate::selfcheck`].
pub fn app(metrics: Arc<Metrics>, health: Arc<Health>, self_check_every: Duration) -> Router {
    Router::new()
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(AdminState {
            metrics,
            health,
            self_check_every,
        })
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
    match s.health.healthy(unix_now()) {
        Ok(()) => (StatusCode::OK, "ok\n".to_owned()),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")),
    }
}

async fn readyz(State(s): State<AdminState>) -> impl IntoResponse {
    match s.health.readiness(unix_now(), s.self_check_every) {
        Ok(()) => (StatusCode::OK, "ready\n".to_owned()),
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        ),
    }
}

/// Connections served at once; a scraper and two probes need a handful. Past this, new
/// connections wait in the kernel's backlog instead of costing file descriptors.
pub const MAX_CONNECTIONS: usize = 64;

/// A client must send its request headers within this long, or the connection is closed
/// (slow-header clients cannot hold connections open).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(2);

/// The longest a connection may live, idle keep-alive included: every answer here takes
/// milliseconds, so a connection held longer is holding a slot for nothing.
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(30);

/// Serves `app` on `listener` until `stop`, with the limits above. Each connection takes a
/// permit before it is accepted and holds it until it closes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    stop: tokio_util::sync::CancellationToken,
) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;
    // Why a semaphore: it caps open connections, and waiting for a permit before
    // `accept` leaves the excess in the kernel's backlog.
    let permits = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let permit = tokio::select! {
            () = stop.cancelled() => break,
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let stream = tokio::select! {
            () = stop.cancelled() => break,
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(err) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(%err, "admin endpoint: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        // Finished connections are reaped as new ones come, so the set stays small.
        while conns.try_join_next().is_some() {}
        let svc = TowerToHyperService::new(app.clone());
        let stop = stop.clone();
        conns.spawn(async move {
            let _permit = permit;
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT);
            let conn = http.serve_connection(TokioIo::new(stream), svc);
            tokio::select! {
                _ = conn => {}
                () = tokio::time::sleep(CONNECTION_LIFETIME) => {}
                () = stop.cancelled() => {}
            }
        });
    }
    conns.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVERY: Duration = Duration::from_secs(5);
    const NOW: u64 = 1_000_000;

    fn healthy(requires_shipping: bool) -> Health {
        let h = Health::new(Arc::new(AtomicU64::new(NOW)), requires_shipping);
        h.self_checked_at.store(NOW, Ordering::Relaxed);
        h
    }

    #[test]
    fn ready_by_default_whatever_the_aggregator_does() {
        let h = healthy(false);
        assert_eq!(h.readiness(NOW, EVERY), Ok(()));
        h.set_shipping(Err("aggregator unreachable: connection refused".to_owned()));
        assert_eq!(h.readiness(NOW, EVERY), Ok(()));
        h.set_shipping(Err("residency guard: \"US\" not allowed".to_owned()));
        assert_eq!(h.readiness(NOW, EVERY), Ok(()));
    }

    #[test]
    fn shipping_gates_readiness_only_when_required() {
        let h = healthy(true);
        let err = h.readiness(NOW, EVERY).unwrap_err();
        assert!(err.contains("not checked yet"), "{err}");
        h.set_shipping(Err("aggregator unreachable: connection refused".to_owned()));
        let err = h.readiness(NOW, EVERY).unwrap_err();
        assert!(err.contains("aggregator unreachable"), "{err}");
        h.set_shipping(Ok(()));
        assert_eq!(h.readiness(NOW, EVERY), Ok(()));
    }

    /// Breaks one part of a healthy agent.
    type Break = fn(&Health);

    fn tailer_not_started(h: &Health) {
        h.heartbeat.store(0, Ordering::Relaxed);
    }
    fn tailer_stalled(h: &Health) {
        h.heartbeat.store(NOW - 61, Ordering::Relaxed);
    }
    fn never_self_checked(h: &Health) {
        h.self_checked_at.store(0, Ordering::Relaxed);
    }
    fn self_check_hung(h: &Health) {
        h.self_checked_at.store(NOW - 16, Ordering::Relaxed);
    }
    fn self_check_failed(h: &Health) {
        h.set_self_check(Err("state directory not writable".to_owned()), NOW);
    }
    fn commit_failed(h: &Health) {
        h.set_commit(Err("disk I/O error".to_owned()));
    }

    #[test]
    fn the_agents_own_faults_fail_readiness() {
        // How it breaks, and what `/readyz` then says.
        let cases: [(Break, &str); 6] = [
            (tailer_not_started, "has not started"),
            (tailer_stalled, "has not turned for 61 s"),
            (never_self_checked, "not been checked yet"),
            (self_check_hung, "has not finished for 16 s"),
            (self_check_failed, "not writable"),
            (commit_failed, "cannot store checkpoints: disk I/O error"),
        ];
        for (break_it, want) in cases {
            let h = healthy(false);
            break_it(&h);
            let err = h.readiness(NOW, EVERY).unwrap_err();
            assert!(err.contains(want), "{want}: {err}");
        }
        let h = healthy(false);
        commit_failed(&h);
        h.set_commit(Ok(()));
        assert_eq!(h.readiness(NOW, EVERY), Ok(()), "a later commit clears it");
    }
}
