//! The agent's tasks and how they stop.
//!
//! - the tailer (a blocking thread): discover → read, into the batcher: multiline → redact
//!   → batch;
//! - the state DB's own thread, which every other task asks for reads and commits;
//! - the shipper: residency guard → up to `max_in_flight` sends with retries → commit;
//! - the rules reloader, the self-check (state directory, disk budget) and the admin
//!   endpoints.
//!
//! They are joined by one bounded channel (`queue_batches`); when it is full the tailer
//! stops reading and the log files are the buffer. Per file identity, batches are committed
//! (checkpoint + ledger row, one transaction) strictly in order, even when a later batch is
//! acknowledged first, so a checkpoint never passes a line that is not stored.
//!
//! Shutdown: the tailer stops and hands over what it built; the shipper drains within
//! `shutdown_grace`; whatever is still unacknowledged stays pending on disk and is
//! re-formed with the same batch ids after restart.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use anyhow::Context;
use fjord_rules::Redactor;
use fjord_wire::Info;
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::admin::{self, Health};
use crate::batch::Formed;
use crate::batcher::Batcher;
use crate::config::Config;
use crate::discover::{Discovery, Wake, Watcher};
use crate::metrics::{Metrics, ReasonLabel};
use crate::reload::RulesHandle;
use crate::selfcheck::{SelfCheck, SELF_CHECK_EVERY};
use crate::ship::{self, Answer, Shipper};
use crate::state::{LedgerRecord, Outcome as Ledger, PendingBatch, State, StateHandle, StateOwner};
use crate::tail::{OsEnv, Settings, Shared, StateCheckpoints, Tailer};
use fjord_wire::clock::now_ns;

/// How long the residency guard waits before asking a refusing destination again.
const RESIDENCY_RECHECK: Duration = Duration::from_secs(5);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// Runs the agent until `shutdown` is cancelled, then drains within the grace period.
pub async fn run(
    cfg: Config,
    redactor: Redactor,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(&cfg.state_dir)
        .with_context(|| format!("creating state directory {}", cfg.state_dir.display()))?;
    let state = State::open(&cfg.state_dir).context("opening the state DB")?;
    let (state_owner, state) = StateOwner::start(state).context("starting the state DB thread")?;
    let shipper = Shipper::new(
        &cfg.url,
        cfg.token.clone(),
        &cfg.agent_id,
        cfg.ca_file.as_deref(),
        cfg.client_identity
            .as_ref()
            .map(|(c, k)| (c.as_path(), k.as_path())),
    )?;
    // The agent's own files are never shipped: its secrets and its state DB.
    let mut never = cfg.secret_files.clone();
    for f in ["", "-wal", "-shm"] {
        never.push(cfg.state_dir.join(format!("{}{f}", crate::state::STATE_DB)));
    }
    let discovery = Discovery::new(&cfg.paths, &cfg.exclude, cfg.follow_symlinks_outside, never)
        .context("compiling path globs")?;
    let listener = tokio::net::TcpListener::bind(cfg.admin_listen)
        .await
        .with_context(|| format!("binding admin_listen {}", cfg.admin_listen))?;
    tracing::info!(addr = %cfg.admin_listen, "serving /metrics, /healthz and /readyz");

    let metrics = Arc::new(Metrics::new());
    let heartbeat = Arc::new(AtomicU64::new(0));
    let health = Arc::new(Health::new(heartbeat.clone(), cfg.ready_requires_shipping));
    let self_check = SelfCheck::new(
        cfg.state_dir.clone(),
        discovery.roots().to_vec(),
        cfg.disk_full_percent,
        cfg.disk_warn_percent,
        metrics.clone(),
    );
    let rules = Arc::new(RulesHandle::new(
        redactor,
        cfg.rules_dir.clone(),
        cfg.hash_key.clone(),
    ));
    let acked = Arc::new(Mutex::new(HashMap::new()));
    let cfg = Arc::new(cfg);
    // Why a channel of Formed batches: it is the backpressure point between reading and
    // shipping; its capacity bounds the memory held in encoded batches.
    let (tx, rx) = mpsc::channel::<Formed>(cfg.queue_batches);

    // Stops the helpers (admin, reloader, self-check) after the pipeline has drained.
    let helpers_stop = CancellationToken::new();
    // Stops the shipper when the grace period is over.
    let ship_stop = CancellationToken::new();
    let mut helpers = JoinSet::new();
    {
        let stop = helpers_stop.clone();
        let app = admin::app(metrics.clone(), health.clone(), SELF_CHECK_EVERY);
        helpers.spawn(admin::serve(listener, app, stop));
    }
    helpers.spawn(rules.clone().watch(metrics.clone(), helpers_stop.clone()));
    helpers.spawn(self_check.run(health.clone(), helpers_stop.clone()));

    let ship = Arc::new(ShipCtx {
        cfg: cfg.clone(),
        shipper,
        state: state.clone(),
        metrics: metrics.clone(),
        health,
        residency: RwLock::new(None),
        acked: acked.clone(),
        stop: ship_stop.clone(),
        answering: Notify::new(),
    });
    // Check residency at start, so metrics and logs (and /readyz with
    // ready_requires_shipping) tell the truth before any data is read.
    {
        let ship = ship.clone();
        helpers.spawn(async move {
            ship.residency(0).await;
        });
    }
    let mut shipper_task = tokio::spawn(ship_loop(ship.clone(), rx));
    helpers.spawn(ledger_loop(ship.clone(), helpers_stop.clone()));

    let (wake_tx, wake_rx) = std::sync::mpsc::sync_channel(1);
    let wake = Wake::default();
    let watcher = Watcher::new(wake.clone(), wake_tx);
    let batcher = Batcher::new(
        cfg.clone(),
        metrics.clone(),
        rules,
        state.clone(),
        tx,
        ship_stop.clone(),
        heartbeat.clone(),
    );
    let tailer = Tailer::new(
        Settings::of(&cfg),
        OsEnv::new(
            discovery,
            watcher,
            wake_rx,
            cfg.min_read_interval,
            metrics.clone(),
            shutdown.clone(),
        ),
        StateCheckpoints {
            state: state.clone(),
            checkpoint_ttl: cfg.checkpoint_ttl,
            ledger_retention: cfg.ledger_retention,
        },
        batcher,
        Shared {
            metrics,
            acked,
            heartbeat,
        },
    );
    drop(state);
    let reader_stop = shutdown.clone();
    let mut reader =
        tokio::task::spawn_blocking(move || tailer.run(reader_stop, move || wake.take_rescan()));

    // The tailer returns on shutdown (after handing over its batches) or if the shipper is
    // gone; the shipper drains until the channel is closed and every send has finished.
    let grace = cfg.shutdown_grace;
    let mut shipper_done = false;
    let reader_done = tokio::select! {
        biased;
        r = &mut reader => Some(r),
        r = &mut shipper_task => {
            shipper_done = true;
            match r {
                // The shipper ends on its own only once the channel is closed, which the
                // tailer does as it returns: it is finishing, not gone wrong.
                Ok(()) if shutdown.is_cancelled() => Some((&mut reader).await),
                r => {
                    tracing::error!(?r, "the shipper stopped unexpectedly");
                    None
                }
            }
        }
    };
    if reader_done.is_some() && !shipper_done {
        let drained = tokio::time::timeout(grace, &mut shipper_task).await;
        if drained.is_err() {
            tracing::warn!(
                grace_ms = grace.as_millis() as u64,
                "batches still unacknowledged at the end of the grace period; they stay on disk and are sent after restart"
            );
            ship_stop.cancel();
            let _ = shipper_task.await;
        }
    } else if reader_done.is_none() {
        ship_stop.cancel();
        shutdown.cancel();
        let _ = reader.await;
    }
    // The shipper is done: stop what still waits on it too (a residency check retrying an
    // unreachable aggregator would otherwise keep the process alive after SIGTERM).
    ship_stop.cancel();
    helpers_stop.cancel();
    while helpers.join_next().await.is_some() {}
    // Every handle is gone with the tasks: the state DB's thread finishes its last job.
    drop(ship);
    let _ = tokio::task::spawn_blocking(move || state_owner.join()).await;
    Ok(())
}

/// Most ledger rows per `POST /v1/ledger`.
const LEDGER_ROWS_PER_PUSH: usize = 500;

/// How often the ledger is looked at for new rows when everything was shipped.
const LEDGER_POLL: Duration = Duration::from_secs(2);

/// How long to wait before asking an aggregator without a ledger endpoint again.
const LEDGER_UNSUPPORTED_RETRY: Duration = Duration::from_secs(300);

/// How long the last ledger push may take after the pipeline has drained.
const LEDGER_LAST_PUSH: Duration = Duration::from_secs(3);

/// Ships the ledger to the aggregator (`POST /v1/ledger`) in order, from the newest row it
/// acknowledged, one push at a time, once the destination passed the residency guard: so
/// what this pod sent, had refused and lost is on the aggregator after the pod is gone. A refused push is retried with backoff (or after
/// `Retry-After`), and the rows stay in the state DB (they are not pruned) until shipped. On
/// stop, one last push takes what the drain added.
async fn ledger_loop(ship: Arc<ShipCtx>, stop: CancellationToken) {
    let dest = ship.shipper.url().to_owned();
    let mut failures = 0u32;
    let mut seed = ledger_seed();
    let mut warned_unsupported = false;
    loop {
        let wait = match ship_ledger_once(&ship, &dest).await {
            Ok(Some(n)) => {
                failures = 0;
                ship.metrics.ledger_rows_shipped.inc_by(n);
                if n as usize == LEDGER_ROWS_PER_PUSH {
                    continue;
                }
                LEDGER_POLL
            }
            Ok(None) => LEDGER_POLL,
            Err(e) => {
                ship.metrics.ledger_ship_failures.inc();
                failures = failures.saturating_add(1);
                if e.unsupported {
                    if !warned_unsupported {
                        tracing::warn!(reason = %e.reason, "the aggregator takes no ledger (an older version?); the ledger stays on the pod and is offered again later");
                        warned_unsupported = true;
                    }
                    LEDGER_UNSUPPORTED_RETRY
                } else {
                    if failures == 1 || failures % 20 == 0 {
                        tracing::warn!(reason = %e.reason, failures, "shipping the ledger failed; retrying");
                    }
                    e.retry_after
                        .unwrap_or_else(|| ship::backoff(failures, &mut seed))
                }
            }
        };
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(wait) => {}
        }
    }
    // What the drain wrote since: one bounded last push.
    let _ = tokio::time::timeout(LEDGER_LAST_PUSH, async {
        while let Ok(Some(n)) = ship_ledger_once(&ship, &dest).await {
            ship.metrics.ledger_rows_shipped.inc_by(n);
            if (n as usize) < LEDGER_ROWS_PER_PUSH {
                break;
            }
        }
    })
    .await;
}

/// One ledger push of the rows after the aggregator's cursor; `None` when there were none.
async fn ship_ledger_once(
    ship: &ShipCtx,
    dest: &str,
) -> Result<Option<u64>, crate::ship::LedgerRefused> {
    let gone = |_| crate::ship::LedgerRefused {
        reason: "the state DB is closed".into(),
        retry_after: None,
        unsupported: false,
    };
    let d = dest.to_owned();
    let rows = ship
        .state
        .run(move |s| {
            let after = s.ledger_shipped(&d)?;
            s.ledger_after(after, LEDGER_ROWS_PER_PUSH)
        })
        .await
        .map_err(gone)?
        .map_err(|e| crate::ship::LedgerRefused {
            reason: format!("reading the ledger: {e}"),
            retry_after: None,
            unsupported: false,
        })?;
    let Some(&(last, _)) = rows.last() else {
        return Ok(None);
    };
    // The ledger names files and batches, not log content; still, it goes only where the
    // logs may go: after the destination passed the residency guard.
    if ship.residency.read().ok().and_then(|r| r.clone()).is_none() {
        return Ok(None);
    }
    let team = ship.cfg.labels.get("team").map(String::as_str);
    ship.shipper.send_ledger(team, &rows).await?;
    let d = dest.to_owned();
    ship.state
        .run(move |s| s.set_ledger_shipped(&d, last))
        .await
        .map_err(gone)?
        .map_err(|e| crate::ship::LedgerRefused {
            reason: format!("recording the ledger shipped: {e}"),
            retry_after: None,
            unsupported: false,
        })?;
    Ok(Some(rows.len() as u64))
}

/// A seed for the ledger loop's backoff jitter.
fn ledger_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0x9e37_79b9_7f4a_7c15, |d| d.as_nanos() as u64 | 1)
}

/// What every send task needs.
struct ShipCtx {
    cfg: Arc<Config>,
    shipper: Shipper,
    state: StateHandle,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    /// The destination's declaration while it is trusted; cleared after a connection
    /// failure so the next send checks it again.
    residency: RwLock<Option<Info>>,
    acked: Arc<Mutex<HashMap<String, u64>>>,
    stop: CancellationToken,
    /// Signalled when the aggregator answers again (a batch acknowledged, or the residency
    /// check passed): sends and checks asleep in their own backoff retry at once, instead
    /// of each waiting out its jittered delay (up to [`ship::MAX_BACKOFF`]) while the
    /// batches behind them in commit order cannot commit.
    answering: Notify,
}

/// The final answer for one batch.
enum Outcome {
    Sent(Answer, Info),
    /// Every line was dropped by rules: nothing to send.
    NothingToSend,
}

async fn wait(stop: &CancellationToken, d: Duration) {
    tokio::select! {
        () = stop.cancelled() => {}
        () = tokio::time::sleep(d) => {}
    }
}

impl ShipCtx {
    /// Waits out a backoff of our own choosing: `d`, or until the aggregator is seen
    /// answering again, or until stopped. (A server's `Retry-After` is waited out in full
    /// with [`wait`].)
    async fn backoff(&self, d: Duration) {
        tokio::select! {
            () = self.answering.notified() => {}
            () = wait(&self.stop, d) => {}
        }
    }

    /// Wakes everything asleep in [`ShipCtx::backoff`].
    fn answered(&self) {
        self.answering.notify_waiters();
    }

    /// The destination's declaration once it passes the guard; `None` only when stopped.
    async fn residency(&self, seed: u64) -> Option<Info> {
        let mut seed = seed | 1;
        let mut attempt = 0u32;
        loop {
            if let Some(i) = self.residency.read().ok().and_then(|r| r.clone()) {
                return Some(i);
            }
            if self.stop.is_cancelled() {
                return None;
            }
            match self.shipper.info().await {
                Ok(info) => match ship::residency_refusal(&info, &self.cfg.allowed_jurisdictions) {
                    None => {
                        tracing::info!(url = %self.shipper.url(), region = %info.region, jurisdiction = %info.jurisdiction, "residency check passed");
                        self.metrics.residency_blocked.set(0);
                        self.metrics.aggregator_up.set(1);
                        self.health.set_shipping(Ok(()));
                        if let Ok(mut r) = self.residency.write() {
                            *r = Some(info.clone());
                        }
                        self.answered();
                        return Some(info);
                    }
                    Some(why) => {
                        tracing::error!(url = %self.shipper.url(), reason = %why, "residency guard: shipping nothing; the data stays on disk");
                        self.metrics.residency_blocked.set(1);
                        self.metrics.aggregator_up.set(1);
                        self.metrics
                            .residency_blocks
                            .get_or_create(&ReasonLabel {
                                reason: "jurisdiction".to_owned(),
                            })
                            .inc();
                        self.health
                            .set_shipping(Err(format!("residency guard: {why}")));
                        wait(&self.stop, RESIDENCY_RECHECK).await;
                    }
                },
                Err(err) => {
                    tracing::warn!(url = %self.shipper.url(), %err, "aggregator unreachable; retrying");
                    self.metrics.aggregator_up.set(0);
                    self.health
                        .set_shipping(Err(format!("aggregator unreachable: {err}")));
                    self.backoff(ship::backoff(attempt, &mut seed)).await;
                    attempt = attempt.saturating_add(1);
                }
            }
        }
    }

    fn forget_residency(&self) {
        if let Ok(mut r) = self.residency.write() {
            *r = None;
        }
    }

    /// Sends one batch until the aggregator gives a final answer; `None` when stopped.
    async fn deliver(&self, out: &crate::batch::OutBatch, seed: u64) -> Option<Outcome> {
        let mut seed = seed | 1;
        let mut attempt = 0u32;
        loop {
            let info = self.residency(seed).await?;
            if self.stop.is_cancelled() {
                return None;
            }
            self.metrics.batches_sent.inc();
            self.metrics.in_flight.inc();
            let res = self.shipper.send_once(out, &self.metrics).await;
            self.metrics.in_flight.dec();
            match res {
                Ok(a) => {
                    self.metrics.aggregator_up.set(1);
                    self.answered();
                    return Some(Outcome::Sent(a, info));
                }
                Err(t) => {
                    tracing::warn!(batch_id = %out.batch_id, reason = %t.reason, attempt, "send failed; retrying");
                    self.metrics.batches_retried.inc();
                    if t.connection {
                        self.metrics.aggregator_up.set(0);
                        self.forget_residency();
                    }
                    match t.retry_after {
                        // The server said how long: honour it even if others get through.
                        Some(d) => wait(&self.stop, d).await,
                        None => self.backoff(ship::backoff(attempt, &mut seed)).await,
                    }
                    if self.stop.is_cancelled() {
                        return None;
                    }
                    attempt = attempt.saturating_add(1);
                }
            }
        }
    }

    /// Records the final answer: dead-letter file if rejected, then checkpoint + ledger row
    /// in one transaction. Runs on a blocking thread (it writes files and waits on the DB).
    fn commit(&self, f: &Formed, outcome: &Outcome) {
        let m = &self.metrics;
        let row = match outcome {
            Outcome::NothingToSend => None,
            Outcome::Sent(answer, info) => {
                let out = f.out.as_ref();
                let outcome = match answer {
                    Answer::Stored => Ledger::Acked,
                    Answer::Duplicate => Ledger::Duplicate,
                    Answer::Rejected(status, reason) => {
                        if *status == 409 {
                            // Another payload was stored under this id: the agent's ids are
                            // deterministic, so this is a second agent with the same id, or
                            // a changed file identity. Loud, and kept for the audit.
                            tracing::error!(batch_id = %f.batch_id, status, %reason, "the aggregator holds a different batch under this id; dead-lettering it (check that agent_id is unique per pod)");
                        } else {
                            tracing::error!(batch_id = %f.batch_id, status, %reason, "aggregator rejected the batch as malformed; dead-lettering it");
                        }
                        m.batches_dead_lettered.inc();
                        let dir = self.cfg.state_dir.join("dead-letter");
                        let written = std::fs::create_dir_all(&dir).and_then(|()| {
                            std::fs::write(
                                dir.join(format!("{}.json.zst", f.batch_id)),
                                out.map_or(&[][..], |o| &o.body[..]),
                            )
                        });
                        if let Err(err) = written {
                            tracing::error!(%err, "cannot write the dead-letter file");
                        }
                        Ledger::DeadLetter
                    }
                };
                if outcome.delivered() {
                    if outcome == Ledger::Duplicate {
                        m.batches_duplicate.inc();
                    }
                    m.batches_acked.inc();
                    m.records_sent.inc_by(f.records);
                    m.raw_bytes_sent.inc_by(f.raw_bytes);
                    m.compressed_bytes_sent
                        .inc_by(out.map_or(0, |o| o.body.len() as u64));
                    m.last_ack_unix_seconds.set(now_ns() as f64 / 1e9);
                }
                Some(LedgerRecord {
                    batch_id: f.batch_id.clone(),
                    // The state DB stamps the commit time.
                    sent_ns: 0,
                    destination: self.shipper.url().to_owned(),
                    region: info.region.clone(),
                    jurisdiction: info.jurisdiction.clone(),
                    path: f.path.clone(),
                    start_off: f.start,
                    end_off: f.end,
                    records: f.records,
                    raw_bytes: f.raw_bytes,
                    compressed_bytes: out.map_or(0, |o| o.body.len() as u64),
                    payload_sha256: f.payload_sha256.clone(),
                    rules_version: out.map(|o| o.rules_version.clone()).unwrap_or_default(),
                    redactions: f.redactions.clone(),
                    outcome,
                    reason: String::new(),
                })
            }
        };
        let (identity, batch_id, end) = (f.identity.clone(), f.batch_id.clone(), f.end);
        let res = self
            .state
            .run_blocking(move |st| st.commit_batch(&identity, &batch_id, end, row.as_ref()));
        match res
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()))
        {
            Ok(()) => {
                self.health.set_commit(Ok(()));
                lock(&self.acked).insert(f.identity.clone(), f.end);
                tracing::debug!(batch_id = %f.batch_id, records = f.records, "batch committed");
            }
            Err(err) => {
                tracing::error!(batch_id = %f.batch_id, %err, "cannot store the checkpoint; the batch will be re-sent after restart");
                self.health.set_commit(Err(err.to_string()));
            }
        }
    }
}

/// One batch between formation and commit.
struct Slot {
    formed: Formed,
    outcome: Option<Outcome>,
}

/// Receives formed batches, keeps up to `max_in_flight` sends running and at most twice that
/// many batches uncommitted, and commits each identity's batches in order.
async fn ship_loop(ctx: Arc<ShipCtx>, mut rx: mpsc::Receiver<Formed>) {
    let mut slots: HashMap<u64, Slot> = HashMap::new();
    let mut order: HashMap<String, VecDeque<u64>> = HashMap::new();
    let mut sends: JoinSet<(u64, Option<Outcome>)> = JoinSet::new();
    let mut next_seq = 0u64;
    let mut open = true;
    let base_seed = now_ns() as u64;
    // Batches between the queue and their commit, bodies included: the running sends plus
    // acknowledged ones waiting for an earlier batch of the same file. Without this bound, a
    // batch asleep in a long retry backoff while the aggregator is back let every later
    // batch be sent and then held, so memory grew with the backoff times the throughput.
    let max_held = 2 * ctx.cfg.max_in_flight;
    loop {
        ctx.metrics.queued.set(rx.len() as i64);
        tokio::select! {
            biased;
            Some(done) = sends.join_next(), if !sends.is_empty() => {
                let Ok((seq, outcome)) = done else { continue };
                let Some(outcome) = outcome else {
                    // Stopped before a final answer: the batch stays pending on disk.
                    continue;
                };
                let identity = match slots.get_mut(&seq) {
                    Some(s) => {
                        s.outcome = Some(outcome);
                        s.formed.identity.clone()
                    }
                    None => continue,
                };
                commit_ready(&ctx, &identity, &mut slots, &mut order).await;
            }
            got = rx.recv(), if open && sends.len() < ctx.cfg.max_in_flight && slots.len() < max_held && !ctx.stop.is_cancelled() => {
                let Some(f) = got else {
                    open = false;
                    continue;
                };
                next_seq += 1;
                let seq = next_seq;
                let identity = f.identity.clone();
                order.entry(identity.clone()).or_default().push_back(seq);
                match &f.out {
                    None => {
                        slots.insert(seq, Slot { formed: f, outcome: Some(Outcome::NothingToSend) });
                        commit_ready(&ctx, &identity, &mut slots, &mut order).await;
                    }
                    Some(out) => {
                        // Record the boundaries before the first send, so a restart re-forms
                        // exactly this batch with the same id.
                        let (b, i) = (f.batch_id.clone(), f.identity.clone());
                        let p = PendingBatch { start: f.start, end: f.end, first_ts: Some(f.first_ts) };
                        let pending = ctx.state.run(move |s| s.add_pending(&b, &i, p)).await;
                        match pending {
                            Ok(Ok(())) => {}
                            Ok(Err(err)) => tracing::error!(%err, "cannot record a pending batch"),
                            Err(err) => tracing::error!(%err, "cannot record a pending batch"),
                        }
                        let out = out.clone();
                        slots.insert(seq, Slot { formed: f, outcome: None });
                        let c = ctx.clone();
                        sends.spawn(async move {
                            let o = c.deliver(&out, base_seed ^ seq.wrapping_mul(0x9e37_79b9_7f4a_7c15)).await;
                            (seq, o)
                        });
                    }
                }
            }
            () = ctx.stop.cancelled(), if !sends.is_empty() => {
                // Grace period over: let the sends notice and return.
                while sends.join_next().await.is_some() {}
                return;
            }
            else => break,
        }
    }
}

/// Commits the identity's batches from the front while they have an outcome.
async fn commit_ready(
    ctx: &Arc<ShipCtx>,
    identity: &str,
    slots: &mut HashMap<u64, Slot>,
    order: &mut HashMap<String, VecDeque<u64>>,
) {
    let Some(q) = order.get_mut(identity) else {
        return;
    };
    while let Some(&seq) = q.front() {
        if slots.get(&seq).is_none_or(|s| s.outcome.is_none()) {
            break;
        }
        q.pop_front();
        if let Some(slot) = slots.remove(&seq) {
            let c = ctx.clone();
            let committed = tokio::task::spawn_blocking(move || {
                if let Some(o) = &slot.outcome {
                    c.commit(&slot.formed, o);
                }
            })
            .await;
            if let Err(err) = committed {
                tracing::error!(%err, "commit task failed");
            }
        }
    }
    if q.is_empty() {
        order.remove(identity);
    }
}
