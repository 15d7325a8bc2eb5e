//! The compliance audit over a data directory: receipts (what arrived), `verify` (did
//! everything an agent sent arrive, and is what is stored still what arrived), `scan` (does any
//! stored line still match a PII rule) and the access log (who read what, who erased what).
//!
//! Everything here reads the SQLite file **read-only** (`SQLITE_OPEN_READ_ONLY`), so it can run
//! on the server next to a live aggregator, or on a copy of the data directory, and can never
//! change the evidence it reports on. Reports are plain serde structs: the JSON form is the
//! archival form (fields are only ever added), the text form is for people.
//!
//! Invariants: no report contains stored line content; `scan` prints a line only with every
//! match replaced by `[MATCH:<rule>]`, and a JSON line not at all (only the field paths).
//! How verify's evidence is built (entry digests, removals) is in docs/compliance.md.

use std::collections::{BTreeMap, HashMap};
use std::io::BufRead;
use std::path::{Path, PathBuf};

use fjord_rules::{Explanation, Redactor};
use rusqlite::{Connection, OpenFlags, OptionalExtension};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::logql::LogQuery;
use crate::store::{chunk, EntryDigest, Labels, StreamHasher, DB_FILE, SCHEMA_VERSION};
use crate::time::format_ns;

/// Errors of the audit commands; each names the file or value at fault.
#[derive(Debug, Error)]
pub enum AuditError {
    #[error("no aggregator store at {0}; pass --data DIR (the server's data_dir)")]
    NoStore(PathBuf),
    #[error("{path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("the store at {path} has schema version {found}, this binary reads {want}; {hint}")]
    Schema {
        path: PathBuf,
        found: i64,
        want: i64,
        hint: &'static str,
    },
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("ledger {path}: {source}")]
    LedgerIo {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("ledger {path} line {line}: {reason}")]
    Ledger {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("stored labels of stream {stream} are not valid JSON: {reason}")]
    Labels { stream: i64, reason: String },
    #[error("receipt {receipt}: {source}")]
    Digest {
        receipt: i64,
        #[source]
        source: crate::store::digest::BadDigest,
    },
}

/// Opens the store in `data_dir` read-only and checks that its schema is the one this binary
/// writes (an older store has no digests yet: start the server once to migrate it).
pub fn open_read_only(data_dir: &Path) -> Result<Connection, AuditError> {
    let path = data_dir.join(DB_FILE);
    if !path.exists() {
        return Err(AuditError::NoStore(data_dir.to_owned()));
    }
    let conn = Connection::open_with_flags(
        &path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|source| AuditError::Open {
        path: path.clone(),
        source,
    })?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    let found: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if found != SCHEMA_VERSION {
        return Err(AuditError::Schema {
            path,
            found,
            want: SCHEMA_VERSION,
            hint: if found < SCHEMA_VERSION {
                "start this version's server (or run `retention run`) once to migrate it"
            } else {
                "upgrade fjord-aggregator"
            },
        });
    }
    Ok(conn)
}

/// An inclusive time range, Unix epoch ns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Range {
    pub from_ns: i64,
    pub to_ns: i64,
}

impl Range {
    fn contains(&self, ns: i64) -> bool {
        ns >= self.from_ns && ns <= self.to_ns
    }
}

// ---------------------------------------------------------------------------------------
// Receipts

/// One receipt: what arrived in one batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// Ingest sequence (`receipts.id`).
    pub seq: i64,
    pub batch_id: Option<String>,
    pub agent: Option<String>,
    pub team: String,
    pub received_ns: i64,
    pub received: String,
    pub records: u64,
    pub raw_bytes: u64,
    pub payload_sha256: String,
    pub rules_version: Option<String>,
    pub redactions: BTreeMap<String, u64>,
    /// Entry digest of the stored lines at ingest; `None` for batches received before the
    /// audit schema.
    pub entries_digest: Option<String>,
}

/// `audit receipts`: the receipts received in a range, and totals.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReceiptsReport {
    pub range: Range,
    pub batches: u64,
    pub records: u64,
    pub raw_bytes: u64,
    /// Redactions the agents declared, summed per rule.
    pub redactions: BTreeMap<String, u64>,
    pub receipts: Vec<Receipt>,
}

fn load_receipts(conn: &Connection, range: Range) -> Result<Vec<Receipt>, AuditError> {
    let mut stmt = conn.prepare(
        "SELECT id, batch_id, agent, team, received_ns, records, raw_bytes, payload_sha256,
                rules_version, redactions, entries_digest
         FROM receipts WHERE received_ns BETWEEN ?1 AND ?2 ORDER BY id",
    )?;
    let rows = stmt.query_map([range.from_ns, range.to_ns], |r| {
        let redactions: Option<String> = r.get(9)?;
        let received_ns: i64 = r.get(4)?;
        Ok(Receipt {
            seq: r.get(0)?,
            batch_id: r.get(1)?,
            agent: r.get(2)?,
            team: r.get(3)?,
            received_ns,
            received: format_ns(received_ns),
            records: r.get::<_, i64>(5)?.max(0) as u64,
            raw_bytes: r.get::<_, i64>(6)?.max(0) as u64,
            payload_sha256: r.get(7)?,
            rules_version: r.get(8)?,
            // A sender's malformed header is kept as sent; it just counts nothing here.
            redactions: redactions
                .and_then(|j| serde_json::from_str(&j).ok())
                .unwrap_or_default(),
            entries_digest: r.get(10)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Builds the `audit receipts` report.
pub fn receipts(conn: &Connection, range: Range) -> Result<ReceiptsReport, AuditError> {
    let receipts = load_receipts(conn, range)?;
    let mut redactions = BTreeMap::new();
    for r in &receipts {
        for (rule, n) in &r.redactions {
            *redactions.entry(rule.clone()).or_insert(0) += n;
        }
    }
    Ok(ReceiptsReport {
        range,
        batches: receipts.len() as u64,
        records: receipts.iter().map(|r| r.records).sum(),
        raw_bytes: receipts.iter().map(|r| r.raw_bytes).sum(),
        redactions,
        receipts,
    })
}

// ---------------------------------------------------------------------------------------
// Verify

/// One row of `fjord-agent audit --export` (JSON lines): the ledger record both binaries
/// share. Unknown fields are ignored, so a newer agent's export still reads.
pub use fjord_wire::ledger::{LedgerRecord as LedgerEntry, Outcome};

/// Reads an exported ledger; errors name the line.
pub fn read_ledger(path: &Path) -> Result<Vec<LedgerEntry>, AuditError> {
    let f = std::fs::File::open(path).map_err(|source| AuditError::LedgerIo {
        path: path.to_owned(),
        source,
    })?;
    let mut out = Vec::new();
    for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
        let line = line.map_err(|source| AuditError::LedgerIo {
            path: path.to_owned(),
            source,
        })?;
        if line.trim().is_empty() {
            continue;
        }
        let e: LedgerEntry = serde_json::from_str(&line).map_err(|e| AuditError::Ledger {
            path: path.to_owned(),
            line: i + 1,
            reason: e.to_string(),
        })?;
        out.push(e);
    }
    Ok(out)
}

/// An acknowledged batch of the ledger with no receipt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MissingBatch {
    pub batch_id: String,
    pub sent_ns: i64,
    pub sent: String,
    pub destination: String,
    pub records: u64,
}

/// A receipt that the ledger does not account for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtraBatch {
    pub seq: i64,
    pub batch_id: Option<String>,
    pub agent: Option<String>,
    pub received: String,
    pub records: u64,
}

/// A batch whose ledger row and receipt disagree, or whose stored lines are not what arrived.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlteredBatch {
    /// The batch id, or `seq:<n>` for a sender without batch ids.
    pub batch: String,
    pub seq: Option<i64>,
    /// What differs: `records`, `payload_sha256` (ledger vs receipt) or `stored lines`.
    pub what: String,
    pub expected: String,
    pub found: String,
}

/// Stored lines that belong to no receipt (a receipt was deleted, or lines were inserted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unreceipted {
    pub seq: i64,
    pub lines: u64,
}

/// A chunk that does not decode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CorruptChunk {
    pub chunk_id: i64,
    pub stream: Labels,
    /// The newest batch sequence it holds lines of.
    pub seq: i64,
    pub error: String,
}

/// Lines legitimately removed from a batch (erasure or retention).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Removal {
    pub batch: String,
    pub kind: String,
    pub operator: String,
    pub at: String,
    pub at_ns: i64,
    pub lines: u64,
    pub erasure_id: Option<i64>,
}

/// `audit verify`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VerifyReport {
    pub range: Range,
    pub ledger: Option<String>,
    /// Receipts in range whose stored lines were checked.
    pub receipts_checked: u64,
    /// Receipts received before the audit schema: no digest to check against.
    pub receipts_without_digest: u64,
    pub stored_lines_checked: u64,
    pub ledger_rows: u64,
    pub ledger_acked: u64,
    pub ledger_dead_letter: u64,
    /// Rows for bytes lost on the agent's side before they were read (nothing was sent).
    #[serde(default)]
    pub ledger_lost: u64,
    pub missing: Vec<MissingBatch>,
    pub extra: Vec<ExtraBatch>,
    pub altered: Vec<AlteredBatch>,
    pub unreceipted: Vec<Unreceipted>,
    pub corrupt_chunks: Vec<CorruptChunk>,
    /// Not findings: what erasure and retention removed, with who and when.
    pub removals: Vec<Removal>,
    /// Whether nothing is missing, extra, altered, unreceipted or corrupt.
    pub ok: bool,
}

fn batch_name(batch_id: Option<&str>, seq: i64) -> String {
    batch_id.map_or_else(|| format!("seq:{seq}"), str::to_owned)
}

/// Recomputes, from every chunk, the line count and entry digest per batch sequence.
#[allow(clippy::type_complexity)]
fn stored_by_batch(
    conn: &Connection,
) -> Result<(HashMap<i64, (u64, EntryDigest)>, Vec<CorruptChunk>, u64), AuditError> {
    let mut labels: HashMap<i64, String> = HashMap::new();
    {
        let mut stmt = conn.prepare("SELECT id, labels FROM streams")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        for row in rows {
            let (id, l): (i64, String) = row?;
            labels.insert(id, l);
        }
    }
    let mut per: HashMap<i64, (u64, EntryDigest)> = HashMap::new();
    let mut corrupt = Vec::new();
    let mut total = 0u64;
    let mut dec = chunk::Decoder::new().map_err(|e| AuditError::Labels {
        stream: 0,
        reason: e.to_string(),
    })?;
    let mut stmt = conn.prepare("SELECT id, stream_id, seq, data FROM chunks ORDER BY id")?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let (id, sid, seq): (i64, i64, i64) = (r.get(0)?, r.get(1)?, r.get(2)?);
        let data: Vec<u8> = r.get(3)?;
        let key = labels.get(&sid).map_or("", String::as_str);
        let hasher = StreamHasher::new(key);
        // Decode fully before counting, so a chunk corrupt halfway contributes nothing.
        let mut entries: Vec<(i64, EntryDigest)> = Vec::new();
        let res = dec.load(&data).map(|_| ()).and_then(|()| {
            dec.each_tagged(seq, |s, ts, line| {
                entries.push((s, hasher.entry(ts, line)));
            })
        });
        match res {
            Ok(()) => {
                total += entries.len() as u64;
                for (s, d) in entries {
                    let slot = per.entry(s).or_default();
                    slot.0 += 1;
                    slot.1.add(&d);
                }
            }
            Err(e) => corrupt.push(CorruptChunk {
                chunk_id: id,
                stream: serde_json::from_str(key).unwrap_or_default(),
                seq,
                error: e.to_string(),
            }),
        }
    }
    Ok((per, corrupt, total))
}

/// Builds the `audit verify` report: the stored lines of every receipt in `range` against its
/// digest (less recorded removals), and, with a ledger, the ledger against the receipts.
pub fn verify(
    conn: &Connection,
    range: Range,
    ledger: Option<(&Path, &[LedgerEntry])>,
) -> Result<VerifyReport, AuditError> {
    // One read transaction: receipts, removals and chunks from the same snapshot.
    conn.execute_batch("BEGIN")?;
    let res = verify_in_snapshot(conn, range, ledger);
    let _ = conn.execute_batch("COMMIT");
    res
}

fn verify_in_snapshot(
    conn: &Connection,
    range: Range,
    ledger: Option<(&Path, &[LedgerEntry])>,
) -> Result<VerifyReport, AuditError> {
    let all = load_receipts(
        conn,
        Range {
            from_ns: i64::MIN,
            to_ns: i64::MAX,
        },
    )?;
    let (stored, corrupt_chunks, stored_lines_checked) = stored_by_batch(conn)?;
    // Removals per batch sequence.
    let mut removed: HashMap<i64, (u64, EntryDigest)> = HashMap::new();
    let mut removal_rows: Vec<(i64, Removal)> = Vec::new();
    {
        let mut stmt = conn.prepare(
            "SELECT seq, kind, operator, at_ns, lines, digest, erasure_id FROM removals ORDER BY id",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let seq: i64 = r.get(0)?;
            let lines = r.get::<_, i64>(4)?.max(0) as u64;
            let digest: String = r.get(5)?;
            let d = EntryDigest::parse(&digest).map_err(|source| AuditError::Digest {
                receipt: seq,
                source,
            })?;
            let slot = removed.entry(seq).or_default();
            slot.0 += lines;
            slot.1.add(&d);
            let at_ns: i64 = r.get(3)?;
            removal_rows.push((
                seq,
                Removal {
                    batch: String::new(),
                    kind: r.get(1)?,
                    operator: r.get(2)?,
                    at: format_ns(at_ns),
                    at_ns,
                    lines,
                    erasure_id: r.get(6)?,
                },
            ));
        }
    }
    let by_seq: HashMap<i64, &Receipt> = all.iter().map(|r| (r.seq, r)).collect();
    let mut report = VerifyReport {
        range,
        ledger: ledger.map(|(p, _)| p.display().to_string()),
        receipts_checked: 0,
        receipts_without_digest: 0,
        stored_lines_checked,
        ledger_rows: 0,
        ledger_acked: 0,
        ledger_dead_letter: 0,
        ledger_lost: 0,
        missing: Vec::new(),
        extra: Vec::new(),
        altered: Vec::new(),
        unreceipted: Vec::new(),
        corrupt_chunks,
        removals: Vec::new(),
        ok: false,
    };
    for (seq, mut rm) in removal_rows {
        if let Some(r) = by_seq.get(&seq) {
            if range.contains(r.received_ns) {
                rm.batch = batch_name(r.batch_id.as_deref(), seq);
                report.removals.push(rm);
            }
        }
    }
    // Stored lines against each receipt.
    for r in all.iter().filter(|r| range.contains(r.received_ns)) {
        let Some(want) = &r.entries_digest else {
            report.receipts_without_digest += 1;
            continue;
        };
        report.receipts_checked += 1;
        let mut want = EntryDigest::parse(want).map_err(|source| AuditError::Digest {
            receipt: r.seq,
            source,
        })?;
        let mut want_lines = r.records;
        if let Some((n, d)) = removed.get(&r.seq) {
            want_lines = want_lines.saturating_sub(*n);
            want.sub(d);
        }
        let (got_lines, got) = stored.get(&r.seq).copied().unwrap_or_default();
        if got_lines != want_lines || got != want {
            report.altered.push(AlteredBatch {
                batch: batch_name(r.batch_id.as_deref(), r.seq),
                seq: Some(r.seq),
                what: "stored lines".to_owned(),
                expected: format!("{want_lines} lines, digest {want}"),
                found: if got_lines == want_lines {
                    format!("{got_lines} lines with different content (digest {got})")
                } else {
                    format!("{got_lines} lines (digest {got})")
                },
            });
        }
    }
    let mut orphans: Vec<Unreceipted> = stored
        .iter()
        .filter(|(seq, _)| !by_seq.contains_key(seq))
        .map(|(seq, (lines, _))| Unreceipted {
            seq: *seq,
            lines: *lines,
        })
        .collect();
    orphans.sort_by_key(|o| o.seq);
    report.unreceipted = orphans;

    if let Some((_, rows)) = ledger {
        let by_batch: HashMap<&str, &Receipt> = all
            .iter()
            .filter_map(|r| r.batch_id.as_deref().map(|b| (b, r)))
            .collect();
        let mut agents = std::collections::BTreeSet::new();
        let mut matched = std::collections::HashSet::new();
        let mut max_sent = i64::MIN;
        let mut min_received = i64::MAX;
        for e in rows.iter().filter(|e| range.contains(e.sent_ns)) {
            report.ledger_rows += 1;
            if e.outcome == Outcome::DeadLetter {
                report.ledger_dead_letter += 1;
                continue;
            }
            if e.outcome == Outcome::Lost {
                report.ledger_lost += 1;
                continue;
            }
            report.ledger_acked += 1;
            max_sent = max_sent.max(e.sent_ns);
            let Some(r) = by_batch.get(e.batch_id.as_str()) else {
                report.missing.push(MissingBatch {
                    batch_id: e.batch_id.clone(),
                    sent_ns: e.sent_ns,
                    sent: format_ns(e.sent_ns),
                    destination: e.destination.clone(),
                    records: e.records,
                });
                continue;
            };
            matched.insert(r.seq);
            min_received = min_received.min(r.received_ns);
            if let Some(a) = &r.agent {
                agents.insert(a.clone());
            }
            if r.records != e.records {
                report.altered.push(AlteredBatch {
                    batch: e.batch_id.clone(),
                    seq: Some(r.seq),
                    what: "records".to_owned(),
                    expected: e.records.to_string(),
                    found: r.records.to_string(),
                });
            }
            if !r.payload_sha256.eq_ignore_ascii_case(&e.payload_sha256) {
                report.altered.push(AlteredBatch {
                    batch: e.batch_id.clone(),
                    seq: Some(r.seq),
                    what: "payload_sha256".to_owned(),
                    expected: e.payload_sha256.clone(),
                    found: r.payload_sha256.clone(),
                });
            }
        }
        // Extra: receipts of the same agent(s) within the ledger's span that the ledger does
        // not list. Other agents' receipts, and ones after the export, are not this ledger's.
        for r in &all {
            let same_agent = r.agent.as_ref().is_some_and(|a| agents.contains(a));
            if same_agent
                && !matched.contains(&r.seq)
                && r.received_ns >= min_received
                && r.received_ns <= max_sent
                && range.contains(r.received_ns)
            {
                report.extra.push(ExtraBatch {
                    seq: r.seq,
                    batch_id: r.batch_id.clone(),
                    agent: r.agent.clone(),
                    received: r.received.clone(),
                    records: r.records,
                });
            }
        }
    }
    report
        .altered
        .sort_by(|a, b| (a.seq, &a.what).cmp(&(b.seq, &b.what)));
    report.ok = report.missing.is_empty()
        && report.extra.is_empty()
        && report.altered.is_empty()
        && report.unreceipted.is_empty()
        && report.corrupt_chunks.is_empty();
    Ok(report)
}

// ---------------------------------------------------------------------------------------
// Scan

/// Lines per rule that still match.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleMatches {
    pub rule: String,
    /// Stored lines in which the rule matched at least once.
    pub lines: u64,
    /// Matches in all (a line may hold several).
    pub matches: u64,
}

/// One example: where a match is, with the match masked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanExample {
    pub rules: Vec<String>,
    pub stream: Labels,
    pub ts_ns: i64,
    pub time: String,
    /// The line with every match replaced by `[MATCH:<rule>]`; for JSON lines only the field
    /// paths that matched.
    pub masked: String,
}

/// `audit scan`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScanReport {
    pub range: Range,
    pub selector: Option<String>,
    pub rules_version: String,
    pub streams_scanned: u64,
    pub lines_scanned: u64,
    /// Lines in which any rule matched.
    pub lines_matching: u64,
    pub rules: Vec<RuleMatches>,
    pub examples: Vec<ScanExample>,
    /// Ids of the chunks in range that did not decode: their lines were not (or not all)
    /// scanned, so the scan is incomplete (`audit verify` tells which batches they held).
    pub corrupt_chunks: Vec<i64>,
    /// How many chunks did not decode (the length of `corrupt_chunks`).
    pub corrupt_chunk_count: u64,
}

impl ScanReport {
    /// Whether every chunk in range could be read, so that the counts cover every stored line.
    pub fn complete(&self) -> bool {
        self.corrupt_chunks.is_empty()
    }
}

/// Replaces every match in `line` by `[MATCH:<rule>]`; never returns matched text. A hit whose
/// range is not on character boundaries of the line withholds the whole line.
pub fn mask(line: &str, e: &Explanation) -> String {
    if e.hits.iter().any(|h| h.field.is_some()) {
        let fields: Vec<String> = e
            .hits
            .iter()
            .map(|h| match &h.field {
                Some(f) => format!("{f} ({})", h.rule),
                None => format!("text ({})", h.rule),
            })
            .collect();
        return format!("[JSON line withheld; matches at: {}]", fields.join(", "));
    }
    let mut hits: Vec<_> = e.hits.iter().collect();
    hits.sort_by_key(|h| (h.range.start, h.range.end));
    let mut out = String::with_capacity(line.len());
    let mut pos = 0;
    for h in hits {
        let (s, t) = (h.range.start.max(pos), h.range.end);
        if s > t || line.get(pos..s).is_none() || line.get(s..t).is_none() {
            if t <= pos {
                continue; // nested in a span already masked
            }
            return "[line withheld: match not on character boundaries]".to_owned();
        }
        out.push_str(&line[pos..s]);
        out.push_str("[MATCH:");
        out.push_str(&h.rule);
        out.push(']');
        pos = t;
    }
    match line.get(pos..) {
        Some(rest) => out.push_str(rest),
        None => return "[line withheld: match not on character boundaries]".to_owned(),
    }
    out
}

/// Re-scans the stored lines of the streams matching `query` (all with `None`) in `range`
/// with `redactor`, keeping up to `max_examples` masked examples.
pub fn scan(
    conn: &Connection,
    redactor: &Redactor,
    query: Option<(&str, &LogQuery)>,
    range: Range,
    max_examples: usize,
) -> Result<ScanReport, AuditError> {
    conn.execute_batch("BEGIN")?;
    let res = scan_in_snapshot(conn, redactor, query, range, max_examples);
    let _ = conn.execute_batch("COMMIT");
    res
}

fn scan_in_snapshot(
    conn: &Connection,
    redactor: &Redactor,
    query: Option<(&str, &LogQuery)>,
    range: Range,
    max_examples: usize,
) -> Result<ScanReport, AuditError> {
    let mut streams: Vec<(i64, Labels)> = Vec::new();
    {
        let mut stmt = conn.prepare("SELECT id, labels FROM streams ORDER BY id")?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let id: i64 = r.get(0)?;
            let json: String = r.get(1)?;
            let labels: Labels = serde_json::from_str(&json).map_err(|e| AuditError::Labels {
                stream: id,
                reason: e.to_string(),
            })?;
            if query.is_none_or(|(_, q)| q.matches_stream(&labels)) {
                streams.push((id, labels));
            }
        }
    }
    let mut report = ScanReport {
        range,
        selector: query.map(|(s, _)| s.to_owned()),
        rules_version: redactor.version().to_owned(),
        streams_scanned: streams.len() as u64,
        lines_scanned: 0,
        lines_matching: 0,
        rules: Vec::new(),
        examples: Vec::new(),
        corrupt_chunks: Vec::new(),
        corrupt_chunk_count: 0,
    };
    let mut per_rule: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut dec = chunk::Decoder::new().map_err(|e| AuditError::Labels {
        stream: 0,
        reason: e.to_string(),
    })?;
    let mut stmt = conn.prepare(
        "SELECT id, data FROM chunks WHERE stream_id = ?1 AND max_ts >= ?2 AND min_ts <= ?3
         ORDER BY min_ts, id",
    )?;
    for (sid, labels) in &streams {
        let mut rows = stmt.query([*sid, range.from_ns, range.to_ns])?;
        while let Some(r) = rows.next()? {
            let id: i64 = r.get(0)?;
            let data: Vec<u8> = r.get(1)?;
            if dec.load(&data).is_err() {
                report.corrupt_chunks.push(id);
                continue;
            }
            let walked = dec.each(|ts, line| {
                if !range.contains(ts) || query.is_some_and(|(_, q)| !q.keep_line(line)) {
                    return;
                }
                report.lines_scanned += 1;
                let e = redactor.explain(line);
                if e.hits.is_empty() {
                    return;
                }
                report.lines_matching += 1;
                let mut rules: Vec<String> = Vec::new();
                for h in &e.hits {
                    let slot = per_rule.entry(h.rule.clone()).or_default();
                    slot.1 += 1;
                    if !rules.contains(&h.rule) {
                        slot.0 += 1;
                        rules.push(h.rule.clone());
                    }
                }
                if report.examples.len() < max_examples {
                    report.examples.push(ScanExample {
                        rules,
                        stream: labels.clone(),
                        ts_ns: ts,
                        time: format_ns(ts),
                        masked: mask(line, &e),
                    });
                }
            });
            if walked.is_err() {
                report.corrupt_chunks.push(id);
            }
        }
    }
    report.rules = per_rule
        .into_iter()
        .map(|(rule, (lines, matches))| RuleMatches {
            rule,
            lines,
            matches,
        })
        .collect();
    report.corrupt_chunk_count = report.corrupt_chunks.len() as u64;
    Ok(report)
}

// ---------------------------------------------------------------------------------------
// Access log

/// One request recorded in the access log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessEntry {
    pub at_ns: i64,
    pub at: String,
    pub token: String,
    pub team: Option<String>,
    pub role: String,
    pub endpoint: String,
    pub query: Option<String>,
    pub start_ns: Option<i64>,
    pub end_ns: Option<i64>,
    pub lines: u64,
    pub status: u16,
}

/// One erasure, from the erasure log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErasureEntry {
    pub id: i64,
    pub at_ns: i64,
    pub at: String,
    pub operator: String,
    pub query: String,
    pub start_ns: i64,
    pub end_ns: i64,
    pub lines: u64,
    pub chunks: u64,
}

/// `audit access`: reads and erasures in a range, oldest first.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessReport {
    pub range: Range,
    pub requests: Vec<AccessEntry>,
    pub erasures: Vec<ErasureEntry>,
}

/// Builds the `audit access` report; `token` narrows it to one token name.
pub fn access(
    conn: &Connection,
    range: Range,
    token: Option<&str>,
) -> Result<AccessReport, AuditError> {
    let requests = conn
        .prepare(
            "SELECT at_ns, token, team, role, endpoint, query, start_ns, end_ns, lines, status
             FROM access_log WHERE at_ns BETWEEN ?1 AND ?2 AND (?3 IS NULL OR token = ?3)
             ORDER BY id",
        )?
        .query_map(rusqlite::params![range.from_ns, range.to_ns, token], |r| {
            let at_ns: i64 = r.get(0)?;
            Ok(AccessEntry {
                at_ns,
                at: format_ns(at_ns),
                token: r.get(1)?,
                team: r.get(2)?,
                role: r.get(3)?,
                endpoint: r.get(4)?,
                query: r.get(5)?,
                start_ns: r.get(6)?,
                end_ns: r.get(7)?,
                lines: r.get::<_, i64>(8)?.max(0) as u64,
                status: u16::try_from(r.get::<_, i64>(9)?).unwrap_or(0),
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let erasures = conn
        .prepare(
            "SELECT id, at_ns, operator, query, start_ns, end_ns, lines, chunks FROM erasures
             WHERE at_ns BETWEEN ?1 AND ?2 ORDER BY id",
        )?
        .query_map([range.from_ns, range.to_ns], |r| {
            let at_ns: i64 = r.get(1)?;
            Ok(ErasureEntry {
                id: r.get(0)?,
                at_ns,
                at: format_ns(at_ns),
                operator: r.get(2)?,
                query: r.get(3)?,
                start_ns: r.get(4)?,
                end_ns: r.get(5)?,
                lines: r.get::<_, i64>(6)?.max(0) as u64,
                chunks: r.get::<_, i64>(7)?.max(0) as u64,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(AccessReport {
        range,
        requests,
        erasures,
    })
}

/// Whether the store has any receipt at all (a hint for an empty report).
pub fn has_receipts(conn: &Connection) -> Result<bool, AuditError> {
    Ok(conn
        .query_row("SELECT 1 FROM receipts LIMIT 1", [], |_| Ok(()))
        .optional()?
        .is_some())
}

// ---------------------------------------------------------------------------------------
// Text rendering

fn range_text(r: Range) -> String {
    let f = |ns: i64| {
        if ns <= 0 {
            "the beginning".to_owned()
        } else {
            format_ns(ns)
        }
    };
    format!("{} .. {}", f(r.from_ns), f(r.to_ns))
}

fn short(h: &str) -> &str {
    h.get(..16).unwrap_or(h)
}

/// `audit receipts` as text.
pub fn render_receipts(r: &ReceiptsReport) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(s, "receipts received {}", range_text(r.range));
    let _ = writeln!(
        s,
        "{} batches, {} records, {} raw bytes",
        r.batches, r.records, r.raw_bytes
    );
    if !r.redactions.is_empty() {
        let parts: Vec<String> = r
            .redactions
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let _ = writeln!(s, "redactions declared by senders: {}", parts.join(" "));
    }
    let _ = writeln!(
        s,
        "\n{:<6} {:<30} {:<32} {:<12} {:>8} {:<16} {:<16}",
        "SEQ", "RECEIVED", "BATCH", "TEAM", "RECORDS", "PAYLOAD SHA256", "RULES"
    );
    for x in &r.receipts {
        let _ = writeln!(
            s,
            "{:<6} {:<30} {:<32} {:<12} {:>8} {:<16} {:<16}",
            x.seq,
            x.received,
            x.batch_id.as_deref().unwrap_or("-"),
            x.team,
            x.records,
            short(&x.payload_sha256),
            x.rules_version.as_deref().map_or("-", short),
        );
    }
    s
}

/// `audit verify` as text.
pub fn render_verify(r: &VerifyReport) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(s, "verify: receipts received {}", range_text(r.range));
    let _ = writeln!(
        s,
        "stored data: {} receipts checked against {} stored lines ({} received before digests, not checkable)",
        r.receipts_checked, r.stored_lines_checked, r.receipts_without_digest
    );
    if let Some(l) = &r.ledger {
        let _ = writeln!(
            s,
            "ledger {l}: {} rows, {} acknowledged, {} dead-lettered (not expected here), {} lost on the agent before they were read",
            r.ledger_rows, r.ledger_acked, r.ledger_dead_letter, r.ledger_lost
        );
    }
    for m in &r.missing {
        let _ = writeln!(
            s,
            "MISSING   batch {} ({} records, sent {} to {}): acknowledged in the ledger, no receipt",
            m.batch_id, m.records, m.sent, m.destination
        );
    }
    for x in &r.extra {
        let _ = writeln!(
            s,
            "EXTRA     batch {} (seq {}, {} records, received {}): receipt not in the ledger",
            x.batch_id.as_deref().unwrap_or("-"),
            x.seq,
            x.records,
            x.received
        );
    }
    for a in &r.altered {
        let _ = writeln!(
            s,
            "ALTERED   batch {}: {} expected {}, found {}",
            a.batch, a.what, a.expected, a.found
        );
    }
    for u in &r.unreceipted {
        let _ = writeln!(
            s,
            "UNRECEIPTED {} stored lines of batch seq {} have no receipt",
            u.lines, u.seq
        );
    }
    for c in &r.corrupt_chunks {
        let _ = writeln!(
            s,
            "CORRUPT   chunk {} (stream {}, up to batch seq {}): {}",
            c.chunk_id,
            serde_json::to_string(&c.stream).unwrap_or_default(),
            c.seq,
            c.error
        );
    }
    for m in &r.removals {
        let verb = if m.kind == "erasure" {
            "erased"
        } else {
            "expired"
        };
        let _ = writeln!(
            s,
            "note      batch {}: {verb} {} lines by {} at {}",
            m.batch, m.lines, m.operator, m.at
        );
    }
    let _ = writeln!(
        s,
        "{}",
        if r.ok {
            "OK: everything acknowledged arrived, and every stored line is what arrived"
        } else {
            "FAILED: see the findings above"
        }
    );
    s
}

/// `audit scan` as text.
pub fn render_scan(r: &ScanReport) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "scan: {} lines of {} streams{}, {}, rule set {}",
        r.lines_scanned,
        r.streams_scanned,
        r.selector
            .as_deref()
            .map(|q| format!(" matching {q}"))
            .unwrap_or_default(),
        range_text(r.range),
        r.rules_version
    );
    if r.rules.is_empty() {
        let _ = writeln!(
            s,
            "{}",
            if r.complete() {
                "no stored line matches any rule"
            } else {
                "no line that could be read matches any rule"
            }
        );
    } else {
        let _ = writeln!(s, "\n{:<24} {:>8} {:>8}", "RULE", "LINES", "MATCHES");
        for x in &r.rules {
            let _ = writeln!(s, "{:<24} {:>8} {:>8}", x.rule, x.lines, x.matches);
        }
        let _ = writeln!(
            s,
            "\n{} lines match; examples (matches masked):",
            r.lines_matching
        );
        for e in &r.examples {
            let _ = writeln!(
                s,
                "  {} {} [{}] {}",
                e.time,
                serde_json::to_string(&e.stream).unwrap_or_default(),
                e.rules.join(","),
                e.masked
            );
        }
    }
    if !r.complete() {
        let mut ids: Vec<String> = r
            .corrupt_chunks
            .iter()
            .take(MAX_TEXT_CHUNK_IDS)
            .map(i64::to_string)
            .collect();
        if r.corrupt_chunks.len() > MAX_TEXT_CHUNK_IDS {
            ids.push(format!(
                "… {} more (all in --output json)",
                r.corrupt_chunks.len() - MAX_TEXT_CHUNK_IDS
            ));
        }
        let _ = writeln!(
            s,
            "\nINCOMPLETE: {} chunks did not decode and were not scanned (see `audit verify`): chunk ids {}",
            r.corrupt_chunk_count,
            ids.join(", ")
        );
    }
    s
}

/// Most unreadable chunk ids `audit scan` lists in its text report (JSON lists all).
const MAX_TEXT_CHUNK_IDS: usize = 50;

/// `audit access` as text.
pub fn render_access(r: &AccessReport) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(s, "access {}", range_text(r.range));
    let _ = writeln!(
        s,
        "\n{:<30} {:<20} {:<12} {:<6} {:<12} {:>7} {:>6}  QUERY [RANGE]",
        "TIME", "TOKEN", "TEAM", "ROLE", "ENDPOINT", "LINES", "STATUS"
    );
    for a in &r.requests {
        let span = match (a.start_ns, a.end_ns) {
            (Some(f), Some(t)) => format!(" [{} .. {}]", format_ns(f), format_ns(t)),
            _ => String::new(),
        };
        let _ = writeln!(
            s,
            "{:<30} {:<20} {:<12} {:<6} {:<12} {:>7} {:>6}  {}{}",
            a.at,
            a.token,
            a.team.as_deref().unwrap_or("-"),
            a.role,
            a.endpoint,
            a.lines,
            a.status,
            a.query.as_deref().unwrap_or("-"),
            span
        );
    }
    let _ = writeln!(s, "\nerasures: {}", r.erasures.len());
    for e in &r.erasures {
        let _ = writeln!(
            s,
            "  #{} {} by {}: {} lines in {} chunks matching {} [{} .. {}]",
            e.id,
            e.at,
            e.operator,
            e.lines,
            e.chunks,
            e.query,
            format_ns(e.start_ns),
            format_ns(e.end_ns)
        );
    }
    s
}

#[cfg(test)]
mod tests;
