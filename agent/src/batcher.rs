//! The tailer's sink in the agent: multiline joining, redaction and batching of each file's
//! lines, and the hand-over of formed batches to the shipper.
//!
//! Backpressure is the bounded channel to the shipper: when it is full, [`Batcher`] waits,
//! the tailer stops reading, and the files on disk are the buffer.
//!
//! Invariants: a batch covers a contiguous byte range of one identity; batches of one
//! identity are handed over in order; a batch that cannot be formed stops its file (the
//! tailer reads it again from its checkpoint after a restart) instead of being skipped.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fjord_rules::{Applied, Redactor};
use fjord_wire::body::StreamBody;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::batch::{self, Building, Formed, Origin};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::reload::RulesHandle;
use crate::state::{Loss, PendingBatch, StateHandle};
use crate::tail::lines::Line;
use crate::tail::multiline::Joiner;
use crate::tail::{FileRef, Sink, Stop};

/// The largest scrubbed-line buffer kept between lines.
const MAX_KEPT_SCRUBBED: usize = 64 * 1024;

/// How long a full queue is waited on between checks for shutdown.
const FULL_QUEUE_WAIT: Duration = Duration::from_millis(20);

/// One identity's records on their way to a batch.
pub struct Stream {
    joiner: Option<Joiner>,
    batch: Option<Building>,
    /// Batches sent before a restart and not yet acknowledged: re-formed with the same
    /// boundaries and timestamps, so they carry the same ids and the same payloads.
    forced: VecDeque<PendingBatch>,
    last_ts: i64,
}

/// Multiline → redact → batch → hand over.
pub struct Batcher {
    cfg: Arc<Config>,
    metrics: Arc<Metrics>,
    rules: Arc<RulesHandle>,
    /// The rule set new batches are redacted with, taken again whenever the handle's
    /// generation moves (checked per record: one atomic load).
    redactor: Arc<Redactor>,
    /// The handle's generation `redactor` was taken at.
    rules_generation: u64,
    state: StateHandle,
    /// Why a channel: it is the backpressure point between reading and shipping.
    tx: mpsc::Sender<Formed>,
    stop_sending: CancellationToken,
    heartbeat: Arc<AtomicU64>,
    /// The batch encoder and spare body buffers.
    enc: batch::Encoding,
    /// Where the rule engine writes a rewritten line, reused from line to line.
    scrubbed: String,
    /// Records completed by the joiner for the line at hand.
    records: Vec<Line<'static>>,
}

fn origin<'a>(cfg: &'a Config, f: FileRef<'a>) -> Origin<'a> {
    Origin {
        agent_id: &cfg.agent_id,
        identity: f.identity,
        path: f.path,
        labels: &cfg.labels,
    }
}

impl Batcher {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        cfg: Arc<Config>,
        metrics: Arc<Metrics>,
        rules: Arc<RulesHandle>,
        state: StateHandle,
        tx: mpsc::Sender<Formed>,
        stop_sending: CancellationToken,
        heartbeat: Arc<AtomicU64>,
    ) -> Batcher {
        // The generation first: a swap in between only makes the first record look again.
        let rules_generation = rules.generation();
        Batcher {
            enc: batch::Encoding::new(cfg.zstd_level),
            redactor: rules.current(),
            rules_generation,
            cfg,
            metrics,
            rules,
            state,
            tx,
            stop_sending,
            heartbeat,
            scrubbed: String::new(),
            records: Vec::new(),
        }
    }

    /// Takes the rule set in force again if it was swapped since it was last taken.
    fn refresh_rules(&mut self) {
        let g = self.rules.generation();
        if g != self.rules_generation {
            self.rules_generation = g;
            self.redactor = self.rules.current();
        }
    }

    fn body(&mut self, f: FileRef<'_>) -> StreamBody {
        self.enc.body(&origin(&self.cfg, f))
    }

    fn add_record(
        &mut self,
        s: &mut Stream,
        f: FileRef<'_>,
        rec: Line<'_>,
        read_ns: i64,
    ) -> Result<(), Stop> {
        self.refresh_rules();
        // One rule-set version per batch.
        if s.batch.as_ref().is_some_and(|b| {
            !Arc::ptr_eq(&b.redactor, &self.redactor)
                && b.redactor.version() != self.redactor.version()
        }) {
            self.finish(s, f)?;
        }
        let start = s.batch.as_ref().map_or(rec.start, |b| b.start);
        while s.forced.front().is_some_and(|f| f.end <= start) {
            s.forced.pop_front();
        }
        if let Some(&PendingBatch {
            start: st, end: e, ..
        }) = s.forced.front()
        {
            if st == start && rec.end > e && s.batch.is_some() {
                // The record crosses a boundary formed before a restart (the multiline
                // settings changed): end the batch before it.
                tracing::warn!(path = %f.path, "a record crosses a pre-restart batch boundary; some lines may be stored twice");
                s.forced.pop_front();
                self.finish(s, f)?;
            }
        }
        if s.batch.is_none() {
            let body = self.body(f);
            // Strictly increasing per file; a batch re-formed after a restart keeps the
            // timestamps it was sent with.
            let first_ts = s
                .forced
                .front()
                .filter(|b| b.start == rec.start)
                .and_then(|b| b.first_ts)
                .unwrap_or_else(|| read_ns.max(s.last_ts + 1));
            s.batch = Some(Building::new(
                rec.start,
                first_ts,
                self.redactor.clone(),
                body,
            ));
        }
        let Some(b) = s.batch.as_mut() else {
            return Ok(());
        };
        let text = match b
            .redactor
            .apply_into(&rec.text, &mut b.counts, &mut self.scrubbed)
        {
            Applied::Unchanged => Some(&*rec.text),
            Applied::Rewritten => Some(self.scrubbed.as_str()),
            Applied::Dropped => None,
        };
        match text {
            Some(text) => {
                s.last_ts = b.next_ts();
                b.body.push(s.last_ts, text);
            }
            None => {
                self.metrics.lines_dropped_by_rule.inc();
            }
        }
        if self.scrubbed.capacity() > MAX_KEPT_SCRUBBED {
            self.scrubbed = String::new(); // one huge line's buffer is not kept
        }
        b.end = rec.end;
        let forced_end = s
            .forced
            .front()
            .filter(|f| f.start == b.start)
            .map(|f| f.end);
        let full = match forced_end {
            Some(e) => b.end >= e,
            None => {
                b.body.raw_bytes() >= self.cfg.max_batch_bytes
                    || b.body.records() >= self.cfg.max_batch_lines
            }
        };
        if full {
            if forced_end.is_some() {
                s.forced.pop_front();
            }
            self.finish(s, f)?;
        }
        Ok(())
    }

    /// Encodes the identity's batch and hands it to the shipper, waiting while the queue is
    /// full (backpressure). A batch that cannot be encoded stops its file: its lines are
    /// read again from the checkpoint after a restart, never skipped.
    fn finish(&mut self, s: &mut Stream, f: FileRef<'_>) -> Result<(), Stop> {
        let Some(b) = s.batch.take() else {
            return Ok(());
        };
        let formed = batch::form(&origin(&self.cfg, f), b, &mut self.enc)
            .map_err(|err| Stop::File(format!("encoding a batch failed: {err}")))?;
        self.metrics.add_redactions(&formed.redactions);
        self.send(formed)
    }

    fn send(&self, mut formed: Formed) -> Result<(), Stop> {
        loop {
            match self.tx.try_send(formed) {
                Ok(()) => return Ok(()),
                Err(mpsc::error::TrySendError::Closed(_)) => return Err(Stop::Closed),
                Err(mpsc::error::TrySendError::Full(f)) => {
                    if self.stop_sending.is_cancelled() {
                        return Err(Stop::Closed);
                    }
                    formed = f;
                    self.beat();
                    std::thread::sleep(FULL_QUEUE_WAIT);
                }
            }
        }
    }

    /// `/healthz` must see the tailer alive while it waits on backpressure.
    fn beat(&self) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.heartbeat.store(now, Ordering::Relaxed);
    }
}

impl Sink for Batcher {
    type Stream = Stream;

    fn open(&mut self, f: FileRef<'_>, offset: u64) -> Stream {
        let id = f.identity.to_owned();
        let forced: VecDeque<PendingBatch> = self
            .state
            .run_blocking(move |st| st.pending(&id))
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default()
            .into_iter()
            .filter(|b| b.start >= offset)
            .collect();
        if !forced.is_empty() {
            tracing::info!(path = %f.path, pending = forced.len(), "re-forming batches sent before the restart");
        }
        let cfg = &self.cfg;
        let joiner = cfg
            .multiline_for(Path::new(f.path))
            .map(|m| Joiner::new(m.start.clone(), m.timeout, m.max_lines, cfg.max_line_bytes));
        Stream {
            joiner,
            batch: None,
            forced,
            last_ts: 0,
        }
    }

    fn line(
        &mut self,
        s: &mut Stream,
        f: FileRef<'_>,
        line: Line<'_>,
        now: Instant,
        read_ns: i64,
    ) -> Result<(), Stop> {
        if line.cut {
            self.metrics.lines_cut.inc();
        }
        if line.invalid_utf8 {
            self.metrics.lines_invalid_utf8.inc();
        }
        match s.joiner.as_mut() {
            Some(j) => {
                let mut recs = std::mem::take(&mut self.records);
                j.push(line, now, &mut recs);
                let mut r = Ok(());
                for rec in recs.drain(..) {
                    if r.is_ok() {
                        r = self.add_record(s, f, rec, read_ns);
                    }
                }
                self.records = recs;
                r
            }
            None => self.add_record(s, f, line, read_ns),
        }
    }

    fn tick(
        &mut self,
        s: &mut Stream,
        f: FileRef<'_>,
        now: Instant,
        read_ns: i64,
        end: bool,
    ) -> Result<(), Stop> {
        self.refresh_rules();
        if let Some(rec) = s.joiner.as_mut().and_then(|j| j.tick(now, end)) {
            self.add_record(s, f, rec, read_ns)?;
        }
        let linger_done = s
            .batch
            .as_ref()
            .is_some_and(|b| b.since.elapsed() >= self.cfg.linger);
        if linger_done || end {
            self.finish(s, f)?;
        }
        Ok(())
    }

    fn flush(&mut self, s: &mut Stream, f: FileRef<'_>) -> Result<(), Stop> {
        self.finish(s, f)
    }

    fn held_bytes(&self, s: &Stream) -> usize {
        s.batch.as_ref().map_or(0, |b| b.body.raw_bytes())
    }

    fn holds(&self, s: &Stream) -> bool {
        s.batch.is_some() || s.joiner.as_ref().is_some_and(Joiner::is_open)
    }

    fn lost(&mut self, f: FileRef<'_>, loss: &Loss) {
        self.metrics
            .lost_bytes(f.path, loss.reason)
            .inc_by(loss.end_off.saturating_sub(loss.start_off));
        let (id, loss) = (f.identity.to_owned(), loss.clone());
        let recorded = self
            .state
            .run_blocking(move |st| st.record_loss(&id, &loss));
        match recorded {
            Ok(Ok(())) => {}
            Ok(Err(err)) => {
                tracing::error!(path = %f.path, %err, "cannot record a loss in the ledger")
            }
            Err(err) => tracing::error!(path = %f.path, %err, "cannot record a loss in the ledger"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{self, Overrides};
    use crate::state::{State, StateOwner};
    use crate::tail::lines::Splitter;

    fn batcher(dir: &Path, state: StateHandle) -> (Batcher, mpsc::Receiver<Formed>) {
        let cfg = config::load(
            None,
            Overrides {
                paths: vec!["/var/log/app/*.log".into()],
                url: Some("http://127.0.0.1:1".into()),
                state_dir: Some(dir.to_owned()),
                ..Overrides::default()
            },
        )
        .unwrap();
        let redactor = crate::reload::build(None, None).unwrap();
        let (tx, rx) = mpsc::channel(16);
        let b = Batcher::new(
            Arc::new(cfg),
            Arc::new(Metrics::new()),
            Arc::new(RulesHandle::new(redactor, None, None)),
            state,
            tx,
            CancellationToken::new(),
            Arc::new(AtomicU64::new(0)),
        );
        (b, rx)
    }

    /// Feeds `text` as one read at `read_ns` and hands on the batch.
    fn form(b: &mut Batcher, text: &[u8], read_ns: i64) -> Stream {
        let f = FileRef {
            identity: "1:2:3",
            path: "/var/log/app/app.log",
        };
        let mut s = b.open(f, 0);
        let mut sp = Splitter::new(0, 4096);
        let mut rest = text;
        let now = Instant::now();
        while let Some(line) = sp.next_line(&mut rest) {
            b.line(&mut s, f, line, now, read_ns).unwrap();
        }
        b.flush(&mut s, f).unwrap();
        s
    }

    /// A batch re-formed after a restart, from its recorded boundaries and first timestamp,
    /// is the batch that was sent: same id, same payload (the aggregator answers
    /// `duplicate`, not 409), though its lines are read again at another time.
    #[test]
    fn a_re_formed_batch_is_the_same_payload() {
        let dir = tempfile::tempdir().unwrap();
        let (owner, state) = StateOwner::start(State::open(dir.path()).unwrap()).unwrap();
        let text = b"payment ok order=1\ncard 4111 1111 1111 1111 declined\nrefund ok\n";
        let sent = {
            let (mut b, mut rx) = batcher(dir.path(), state.clone());
            form(&mut b, text, 1_764_151_200_000_000_000);
            rx.try_recv().unwrap()
        };
        let p = PendingBatch {
            start: sent.start,
            end: sent.end,
            first_ts: Some(sent.first_ts),
        };
        let (id, bid) = (sent.identity.clone(), sent.batch_id.clone());
        state
            .run_blocking(move |s| s.add_pending(&bid, &id, p))
            .unwrap()
            .unwrap();
        // After a restart: a new batcher, the lines read a minute later.
        let again = {
            let (mut b, mut rx) = batcher(dir.path(), state.clone());
            form(&mut b, text, 1_764_151_260_000_000_000);
            rx.try_recv().unwrap()
        };
        assert_eq!(again.batch_id, sent.batch_id);
        assert_eq!((again.start, again.end), (sent.start, sent.end));
        assert_eq!(again.payload_sha256, sent.payload_sha256);
        assert_eq!(
            again.out.as_ref().map(|o| o.body.clone()),
            sent.out.as_ref().map(|o| o.body.clone())
        );
        drop(state);
        owner.join();
        // Without the record, the same lines read later are a later payload.
        let dir2 = tempfile::tempdir().unwrap();
        let (owner2, fresh) = StateOwner::start(State::open(dir2.path()).unwrap()).unwrap();
        {
            let (mut b, mut rx) = batcher(dir2.path(), fresh);
            form(&mut b, text, 1_764_151_260_000_000_000);
            assert_ne!(rx.try_recv().unwrap().payload_sha256, sent.payload_sha256);
        }
        owner2.join();
    }
}
