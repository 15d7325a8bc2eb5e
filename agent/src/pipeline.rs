//! The agent's tasks: a reader (discover → read lines → redact → batch) and a shipper
//! (residency guard → send with retries → commit checkpoint + ledger), joined by a bounded
//! channel. When the shipper cannot keep up, `send().await` blocks the reader, which stops
//! reading: the log file on disk is the buffer.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs::File;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use fjord_rules::{Counts, Redactor};
use fjord_wire::{headers as fh, Entry, PushRequest, PushStream};
use tokio::sync::{mpsc, Mutex};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::ship::{self, Answer, OutBatch, Shipper};
use crate::state::{Checkpoint, LedgerRow, State};
use crate::tail::{self, Discovery};

/// Batches queued between reader and shipper.
const QUEUE_BATCHES: usize = 2;

/// A formed batch: one contiguous byte range of one file.
struct Formed {
    identity: String,
    path: String,
    start: u64,
    end: u64,
    out: OutBatch,
    records: u64,
    raw_bytes: u64,
    payload_sha256: String,
}

struct Building {
    start: u64,
    end: u64,
    entries: Vec<Entry>,
    bytes: usize,
    counts: Counts,
    since: Instant,
}

struct Followed {
    path: String,
    dev_ino: String,
    identity: String,
    file: File,
    fp_len: u64,
    fp_hash: String,
    read_off: u64,
    last_ts: i64,
    /// Boundaries of batches sent before a restart but not acknowledged, re-formed exactly.
    forced: VecDeque<(u64, u64)>,
    building: Option<Building>,
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// Runs the agent until `shutdown` is cancelled, then flushes within the grace period.
pub async fn run(
    cfg: Config,
    redactor: Arc<Redactor>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(&cfg.state_dir)
        .with_context(|| format!("creating state directory {}", cfg.state_dir.display()))?;
    let state = State::open(&cfg.state_dir).context("opening the state DB")?;
    let state = Arc::new(Mutex::new(state));
    let shipper = Shipper::new(&cfg.url, cfg.token.clone(), &cfg.agent_id)
        .context("building the HTTP client")?;
    let discovery = Discovery::new(&cfg.paths).context("compiling path globs")?;
    let (tx, rx) = mpsc::channel::<Formed>(QUEUE_BATCHES);
    let cfg = Arc::new(cfg);

    // The shipper is stopped separately so it can drain what the reader flushed.
    let ship_stop = CancellationToken::new();
    let shipper_task = tokio::spawn(ship_loop(
        cfg.clone(),
        shipper,
        state.clone(),
        rx,
        ship_stop.clone(),
    ));
    let reader = read_loop(
        cfg.clone(),
        discovery,
        redactor,
        state,
        tx,
        shutdown.clone(),
    )
    .await;
    // The reader returned (shutdown or error) and dropped its sender: the shipper drains
    // the queue, bounded by the grace period.
    let grace = cfg.shutdown_grace;
    let mut shipper_task = shipper_task;
    let drained = tokio::time::timeout(grace, &mut shipper_task).await;
    if drained.is_err() {
        tracing::warn!(grace_ms = grace.as_millis() as u64, "batches still unacknowledged at the end of the grace period; they stay on disk and are sent after restart");
        ship_stop.cancel();
        let _ = shipper_task.await;
    }
    reader
}

async fn read_loop(
    cfg: Arc<Config>,
    discovery: Discovery,
    redactor: Arc<Redactor>,
    state: Arc<Mutex<State>>,
    tx: mpsc::Sender<Formed>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut files: HashMap<String, Followed> = HashMap::new();
    loop {
        if shutdown.is_cancelled() {
            break;
        }
        // Discover: open files we do not follow yet (by device:inode).
        for path in discovery.scan() {
            let Ok(md) = std::fs::metadata(&path) else {
                continue;
            };
            let di = tail::dev_ino(&md);
            if files.contains_key(&di) {
                continue;
            }
            match open_followed(&path, &di, &state).await {
                Ok(f) => {
                    tracing::info!(path = %f.path, offset = f.read_off, "following file");
                    files.insert(di, f);
                }
                Err(err) => {
                    tracing::warn!(path = %path.display(), %err, "cannot open file; will retry")
                }
            }
        }
        let mut busy = false;
        let mut gone = Vec::new();
        for (di, f) in files.iter_mut() {
            let mut formed = Vec::new();
            match read_file(&cfg, &redactor, f, &mut formed) {
                Ok(more) => busy |= more,
                Err(err) => tracing::warn!(path = %f.path, %err, "read failed"),
            }
            if let Some(b) = &f.building {
                if b.since.elapsed() >= cfg.linger || shutdown.is_cancelled() {
                    formed.extend(finish(&cfg, &redactor, f));
                }
            }
            for b in formed {
                if tx.send(b).await.is_err() {
                    return Ok(());
                }
            }
            // A rotated-away or deleted file is dropped once read to its end.
            let still_there = std::fs::metadata(&f.path)
                .map(|m| tail::dev_ino(&m) == *di)
                .unwrap_or(false);
            if !still_there && f.building.is_none() {
                let len = f.file.metadata().map(|m| m.len()).unwrap_or(0);
                if f.read_off >= len {
                    gone.push(di.clone());
                }
            }
        }
        for di in gone {
            if let Some(f) = files.remove(&di) {
                tracing::info!(path = %f.path, "file rotated or removed; finished reading it");
            }
        }
        if !busy {
            tokio::select! {
                () = shutdown.cancelled() => {}
                () = tokio::time::sleep(cfg.poll_interval) => {}
            }
        }
    }
    // Flush what is built: complete lines only; the checkpoint covers exactly these.
    for f in files.values_mut() {
        if let Some(b) = finish(&cfg, &redactor, f) {
            if tx.send(b).await.is_err() {
                break;
            }
        }
    }
    Ok(())
}

async fn open_followed(
    path: &std::path::Path,
    di: &str,
    state: &Arc<Mutex<State>>,
) -> anyhow::Result<Followed> {
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    let st = state.lock().await;
    let known = st.checkpoint(di)?;
    let cp = match known {
        Some(cp)
            if cp.fp_len <= len
                && tail::fingerprint(&mut file, cp.fp_len)?.as_deref()
                    == Some(cp.fp_hash.as_str()) =>
        {
            cp
        }
        _ => {
            // New file (or a reused inode): read it from the start.
            let fp_len = len.min(tail::FINGERPRINT_BYTES);
            let fp_hash = tail::fingerprint(&mut file, fp_len)?.unwrap_or_default();
            let cp = Checkpoint {
                identity: format!("{di}:{}", now_ns()),
                fp_len,
                fp_hash,
                offset: 0,
            };
            st.put_checkpoint(di, &path.display().to_string(), &cp)?;
            cp
        }
    };
    let forced = st
        .pending(&cp.identity)?
        .into_iter()
        .filter(|(s, _)| *s >= cp.offset)
        .collect();
    Ok(Followed {
        path: path.display().to_string(),
        dev_ino: di.to_owned(),
        identity: cp.identity,
        file,
        fp_len: cp.fp_len,
        fp_hash: cp.fp_hash,
        read_off: cp.offset,
        last_ts: 0,
        forced,
        building: None,
    })
}

/// Reads what is available; returns whether more may be waiting (the read was capped).
fn read_file(
    cfg: &Config,
    redactor: &Redactor,
    f: &mut Followed,
    formed: &mut Vec<Formed>,
) -> std::io::Result<bool> {
    let len = f.file.metadata()?.len();
    if len < f.read_off {
        tracing::warn!(path = %f.path, "file shrank below the read offset (truncated); reading from the start");
        f.read_off = 0;
        f.building = None;
        f.forced.clear();
    }
    if len == f.read_off {
        return Ok(false);
    }
    let start_of_batch = f.building.as_ref().map_or(f.read_off, |b| b.start);
    let stop_at = f
        .forced
        .front()
        .filter(|(s, _)| *s == start_of_batch)
        .map(|(_, e)| *e);
    let lines = tail::read_lines(&mut f.file, f.read_off, cfg.max_batch_bytes, stop_at)?;
    if lines.is_empty() {
        return Ok(false);
    }
    for line in lines {
        let b = f.building.get_or_insert_with(|| Building {
            start: f.read_off,
            end: f.read_off,
            entries: Vec::new(),
            bytes: 0,
            counts: Counts::default(),
            since: Instant::now(),
        });
        let text = redactor.redact(&line.text, &mut b.counts).into_owned();
        f.last_ts = now_ns().max(f.last_ts + 1);
        b.bytes += text.len();
        b.entries.push(Entry::new(f.last_ts, text));
        b.end = line.end_offset;
        f.read_off = line.end_offset;
        let forced_end = f
            .forced
            .front()
            .filter(|(s, _)| *s == b.start)
            .map(|(_, e)| *e);
        let full = match forced_end {
            Some(e) => b.end >= e,
            None => b.bytes >= cfg.max_batch_bytes || b.entries.len() >= cfg.max_batch_lines,
        };
        if full {
            if forced_end.is_some() {
                f.forced.pop_front();
            }
            formed.extend(finish(cfg, redactor, f));
        }
    }
    Ok(f.read_off < len)
}

fn finish(cfg: &Config, redactor: &Redactor, f: &mut Followed) -> Option<Formed> {
    let b = f.building.take()?;
    if b.entries.is_empty() {
        return None;
    }
    let mut labels: BTreeMap<String, String> = cfg.labels.clone();
    labels.insert("file".to_owned(), f.path.clone());
    let req = PushRequest {
        streams: vec![PushStream {
            stream: labels,
            values: b.entries,
        }],
    };
    let records = req.records() as u64;
    let enc = match fjord_wire::codec::encode_zstd(&req, cfg.zstd_level) {
        Ok(e) => e,
        Err(err) => {
            tracing::error!(path = %f.path, %err, "encoding a batch failed");
            return None;
        }
    };
    let _ = (&f.dev_ino, f.fp_len, &f.fp_hash);
    Some(Formed {
        identity: f.identity.clone(),
        path: f.path.clone(),
        start: b.start,
        end: b.end,
        out: OutBatch {
            batch_id: fh::batch_id(&cfg.agent_id, &f.identity, b.start),
            body: enc.body,
            rules_version: redactor.version().to_owned(),
            redactions: fh::format_redactions(&b.counts.by_name(redactor)),
        },
        records,
        raw_bytes: b.bytes as u64,
        payload_sha256: enc.payload_sha256,
    })
}

async fn ship_loop(
    cfg: Arc<Config>,
    shipper: Shipper,
    state: Arc<Mutex<State>>,
    mut rx: mpsc::Receiver<Formed>,
    stop: CancellationToken,
) {
    let mut seed = (now_ns() as u64) | 1;
    let mut residency: Option<fjord_wire::Info> = None;
    while let Some(b) = rx.recv().await {
        let mut attempt = 0u32;
        // Record the boundaries before the first send, so a restart re-forms this batch.
        if let Err(err) =
            state
                .lock()
                .await
                .add_pending(&b.out.batch_id, &b.identity, b.start, b.end)
        {
            tracing::error!(%err, "cannot record pending batch");
        }
        let answer = loop {
            if stop.is_cancelled() {
                return;
            }
            let info = match &residency {
                Some(i) => i.clone(),
                None => match shipper.info().await {
                    Ok(info) => match ship::residency_refusal(&info, &cfg.allowed_jurisdictions) {
                        None => {
                            tracing::info!(region = %info.region, jurisdiction = %info.jurisdiction, "residency check passed");
                            residency = Some(info.clone());
                            info
                        }
                        Some(why) => {
                            tracing::error!(url = %shipper.url(), reason = %why, "residency guard: shipping nothing");
                            wait(&stop, Duration::from_secs(5)).await;
                            continue;
                        }
                    },
                    Err(err) => {
                        tracing::warn!(url = %shipper.url(), %err, "aggregator unreachable; retrying");
                        wait(&stop, ship::backoff(attempt, &mut seed)).await;
                        attempt += 1;
                        continue;
                    }
                },
            };
            match shipper.send_once(&b.out).await {
                Ok(a) => break (a, info),
                Err((err, after)) => {
                    tracing::warn!(batch_id = %b.out.batch_id, %err, attempt, "send failed; retrying");
                    // Check residency again after a connection problem.
                    residency = None;
                    let d = after.unwrap_or_else(|| ship::backoff(attempt, &mut seed));
                    wait(&stop, d).await;
                    attempt = attempt.saturating_add(1);
                }
            }
        };
        let (answer, info) = answer;
        let outcome = match &answer {
            Answer::Stored => "acked",
            Answer::Duplicate => "duplicate",
            Answer::Rejected(status, reason) => {
                tracing::error!(batch_id = %b.out.batch_id, status, %reason, "aggregator rejected the batch; dead-lettering it");
                let dir = cfg.state_dir.join("dead-letter");
                let written = std::fs::create_dir_all(&dir).and_then(|()| {
                    std::fs::write(
                        dir.join(format!("{}.json.zst", b.out.batch_id)),
                        &b.out.body,
                    )
                });
                if let Err(err) = written {
                    tracing::error!(%err, "cannot write the dead-letter file");
                }
                "dead_letter"
            }
        };
        let row = LedgerRow {
            batch_id: b.out.batch_id.clone(),
            destination: shipper.url().to_owned(),
            region: info.region,
            jurisdiction: info.jurisdiction,
            path: b.path.clone(),
            start_off: b.start,
            end_off: b.end,
            records: b.records,
            raw_bytes: b.raw_bytes,
            compressed_bytes: b.out.body.len() as u64,
            payload_sha256: b.payload_sha256.clone(),
            rules_version: b.out.rules_version.clone(),
            redactions: b.out.redactions.clone(),
            outcome,
        };
        if let Err(err) = state.lock().await.commit_batch(&b.identity, &row) {
            tracing::error!(batch_id = %row.batch_id, %err, "cannot store the checkpoint; the batch will be re-sent after restart");
        } else {
            tracing::debug!(batch_id = %row.batch_id, records = row.records, outcome, "batch acknowledged");
        }
    }
}

async fn wait(stop: &CancellationToken, d: Duration) {
    tokio::select! {
        () = stop.cancelled() => {}
        () = tokio::time::sleep(d) => {}
    }
}
