//! Background maintenance of a running server: the compactor, WAL checkpoints and retention.
//!
//! Each is one task tracked in `state.tasks` that ticks on its interval and runs its blocking
//! store call on the blocking pool; it stops when `state.shutdown` is cancelled. A store call
//! already running is awaited (each is bounded), never abandoned mid-transaction. Failures
//! are logged and retried on the next tick. Every run, and every failed one, is counted in
//! `/metrics` (`fjord_aggregator_maintenance_runs_total{task}`).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use super::metrics::Task;
use super::AppState;
use crate::config::ServeConfig;
use crate::store::Store;
use fjord_wire::clock::now_ns;

/// Only chunks of batches at least this old are compacted (see `store::compact`).
pub const COMPACT_MIN_AGE: Duration = Duration::from_secs(60);

/// Starts the maintenance tasks.
pub(super) fn spawn(state: &Arc<AppState>, cfg: &ServeConfig) {
    let m = &cfg.maintenance;
    every(state, Task::Compact, m.compact_interval, |store| {
        let r = store.compact(COMPACT_MIN_AGE, now_ns())?;
        if r.chunks_in > 0 {
            tracing::debug!(
                groups = r.groups,
                chunks_in = r.chunks_in,
                chunks_out = r.chunks_out,
                "compacted"
            );
        }
        Ok(())
    });
    every(state, Task::Checkpoint, m.checkpoint_interval, |store| {
        if store.checkpoint()? {
            tracing::debug!("wal checkpoint incomplete: readers active");
        }
        Ok(())
    });
    let policy = cfg.retention.clone();
    every(state, Task::Retention, m.retention_interval, move |store| {
        store.apply_retention(&policy, now_ns()).map(drop)
    });
    if let Some(signer) = cfg.audit.signer.clone() {
        let sign = move |store: &Store| {
            if let Some(root) = store.sign_chain(&signer, now_ns())? {
                tracing::info!(pos = root.pos, key_id = %root.key_id, "signed the audit chain");
            }
            Ok(())
        };
        // Once at start, so a restarted server does not leave the last run's tail unsigned
        // for a whole interval; then on the interval.
        let st = state.clone();
        let first = sign.clone();
        state.tasks.spawn(async move {
            let store = st.store.clone();
            let ok = matches!(
                tokio::task::spawn_blocking(move || first(&store)).await,
                Ok(Ok(()))
            );
            st.metrics.maintenance(Task::Sign, ok);
        });
        every(state, Task::Sign, cfg.audit.sign_interval, sign);
    }
}

fn every<F>(state: &Arc<AppState>, task: Task, period: Duration, job: F)
where
    F: Fn(&Store) -> Result<(), crate::store::StoreError> + Send + Sync + 'static,
{
    let name = task.as_str();
    let st = state.clone();
    let shutdown = state.shutdown.clone();
    let job = Arc::new(job);
    state.tasks.spawn(ticker(period, shutdown, move || {
        let st = st.clone();
        let job = job.clone();
        async move {
            let store = st.store.clone();
            let ok = match tokio::task::spawn_blocking(move || job(&store)).await {
                Ok(Ok(())) => true,
                Ok(Err(err)) => {
                    tracing::warn!(task = name, %err, "maintenance failed; retrying next interval");
                    false
                }
                Err(err) => {
                    tracing::error!(task = name, %err, "maintenance task panicked");
                    false
                }
            };
            st.metrics.maintenance(task, ok);
        }
    }));
}

/// Runs `tick` every `period` (first after one period) until `shutdown`.
async fn ticker<Fut: Future<Output = ()>>(
    period: Duration,
    shutdown: tokio_util::sync::CancellationToken,
    tick: impl Fn() -> Fut,
) {
    let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = interval.tick() => tick().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test(start_paused = true)]
    async fn ticker_runs_on_its_period_and_stops_on_cancel() {
        let n = Arc::new(AtomicUsize::new(0));
        let shutdown = tokio_util::sync::CancellationToken::new();
        let c = n.clone();
        let task = tokio::spawn(ticker(
            Duration::from_secs(10),
            shutdown.clone(),
            move || {
                let c = c.clone();
                async move {
                    c.fetch_add(1, Ordering::SeqCst);
                }
            },
        ));
        tokio::time::sleep(Duration::from_secs(35)).await;
        assert_eq!(n.load(Ordering::SeqCst), 3);
        shutdown.cancel();
        task.await.unwrap();
    }
}
