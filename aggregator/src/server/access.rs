//! The access log's front half: handlers hand an [`AccessRecord`] to [`AccessLog::record`],
//! which never waits; one background writer task takes records off a bounded channel and
//! appends them in batches (one transaction per batch) through the store's writer.
//!
//! Invariants: recording never blocks or slows a request (a `try_send`; when the queue of
//! `access_log_queue` records is full the record is counted in `dropped` and a warning is
//! logged, rate-limited to one per [`DROP_WARN_EVERY`]); records carry selectors and counts,
//! never log content.
//!
//! Shutdown: the writer is *not* one of `state.tasks` and does not watch `state.shutdown`,
//! because the requests and live tails that shutdown ends still record themselves as they
//! finish. The server stops it with [`Writer::finish`] only after every handler and tracked
//! task has ended; it then writes everything still queued and returns.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::auth::Caller;
use super::AppState;
use crate::store::AccessRecord;
use fjord_wire::clock::now_ns;

/// Most records written in one transaction.
const MAX_BATCH: usize = 512;

/// Least time between two "access log full" warnings.
pub const DROP_WARN_EVERY: Duration = Duration::from_secs(10);

/// The handlers' side of the access log.
pub struct AccessLog {
    tx: mpsc::Sender<AccessRecord>,
    /// The writer's side, taken once by [`spawn_writer`]; in-process tests that never start
    /// the writer just fill the queue and count drops.
    rx: Mutex<Option<mpsc::Receiver<AccessRecord>>>,
    /// Records dropped because the queue was full, since start.
    dropped: AtomicU64,
    /// When the last drop warning was logged.
    last_warn: Mutex<Option<Instant>>,
}

/// What one request did, for [`AccessLog::record`].
pub struct Access<'a> {
    pub endpoint: &'a str,
    pub query: Option<&'a str>,
    pub range: Option<(i64, i64)>,
    pub lines: u64,
    pub status: u16,
}

impl AccessLog {
    /// A log whose queue holds `capacity` records.
    pub fn new(capacity: usize) -> AccessLog {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        AccessLog {
            tx,
            rx: Mutex::new(Some(rx)),
            dropped: AtomicU64::new(0),
            last_warn: Mutex::new(None),
        }
    }

    /// Records one request by `caller`; never waits.
    pub fn record(&self, caller: &Caller, a: Access<'_>) {
        let rec = AccessRecord {
            at_ns: now_ns(),
            token: caller.name.clone(),
            team: caller.team.clone(),
            role: caller.role.as_str().to_owned(),
            endpoint: a.endpoint.to_owned(),
            query: a.query.map(str::to_owned),
            start_ns: a.range.map(|r| r.0),
            end_ns: a.range.map(|r| r.1),
            lines: a.lines,
            status: a.status,
        };
        if self.tx.try_send(rec).is_err() {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if let Ok(mut last) = self.last_warn.lock() {
                if last.is_none_or(|t| t.elapsed() >= DROP_WARN_EVERY) {
                    *last = Some(Instant::now());
                    tracing::warn!(dropped_total = n, "access log queue full; records dropped");
                }
            }
        }
    }

    /// Records dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// The running writer task, owned by the server's `run`.
pub(super) struct Writer {
    /// Tells the writer that nothing will be recorded any more: write what is queued, stop.
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Writer {
    /// Writes every record still queued, then stops. Call once nothing records any more
    /// (after the router and every tracked task have finished).
    pub(super) async fn finish(self) {
        self.stop.cancel();
        if let Err(err) = self.task.await {
            tracing::error!(%err, "access log writer failed");
        }
    }
}

/// Starts the writer task; `None` when it was started before (the queue has one reader).
pub(super) fn spawn_writer(state: &Arc<AppState>) -> Option<Writer> {
    let mut rx = state.access.rx.lock().ok().and_then(|mut g| g.take())?;
    let store = state.store.clone();
    let stop = CancellationToken::new();
    let stopped = stop.clone();
    let task = tokio::spawn(async move {
        loop {
            // Queued records come first: once stopped, the queue is written to the end.
            let first = tokio::select! {
                biased;
                r = rx.recv() => r,
                () = stopped.cancelled() => None,
            };
            let mut batch: Vec<AccessRecord> = first.into_iter().collect();
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(r) => batch.push(r),
                    Err(_) => break,
                }
            }
            if batch.is_empty() {
                return; // stopped and drained
            }
            let s = store.clone();
            let n = batch.len();
            match tokio::task::spawn_blocking(move || s.record_access(&batch)).await {
                Ok(Ok(())) => {}
                Ok(Err(err)) => tracing::warn!(records = n, %err, "writing the access log failed"),
                Err(err) => tracing::error!(%err, "access log writer panicked"),
            }
        }
    });
    Some(Writer { stop, task })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::auth::Role;

    #[test]
    fn a_full_queue_drops_and_counts_without_waiting() {
        let log = AccessLog::new(2);
        let caller = Caller {
            name: "grafana".into(),
            role: Role::Read,
            team: Some("payments".into()),
        };
        let a = || Access {
            endpoint: "query_range",
            query: Some(r#"{team="payments"}"#),
            range: Some((1, 2)),
            lines: 7,
            status: 200,
        };
        for _ in 0..5 {
            log.record(&caller, a());
        }
        assert_eq!(log.dropped(), 3);
        let mut rx = log.rx.lock().unwrap().take().unwrap();
        let r = rx.try_recv().unwrap();
        assert_eq!(
            (r.token.as_str(), r.team.as_deref(), r.role.as_str()),
            ("grafana", Some("payments"), "read")
        );
        assert_eq!(
            (r.lines, r.status, r.start_ns, r.end_ns),
            (7, 200, Some(1), Some(2))
        );
    }
}
