//! `fjord-agent audit`: what left this pod, from the agent's own ledger.
//!
//! The ledger row of a batch is written in the same transaction as the checkpoint it
//! advances, so the ledger is exactly the set of batches whose lines the agent considers
//! delivered (or dead-lettered). The report reads the state DB read-only, so it can run next
//! to a live agent. It never prints line content: only counts, hashes, paths and rule names.
//!
//! Exit codes: 0 clean; 2 something was sent to a destination outside the allowed
//! jurisdictions; 64 bad usage or an unreadable state DB.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use serde::Serialize;

use crate::state::{LedgerRecord, Outcome as Ledger, PendingEntry, State};
use fjord_wire::clock::now_ns;

/// Exit code when data went outside the allowed jurisdictions.
pub const EXIT_OUTSIDE: u8 = 2;
use fjord_cli::EXIT_USAGE;

/// Output format of the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Text,
    Json,
}

/// `fjord-agent audit` arguments.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// The agent's state directory (where fjord-agent.db is).
    #[arg(long = "state", value_name = "DIR", default_value = "fjord-state")]
    pub state_dir: PathBuf,
    /// Only batches sent in this range [default: all].
    #[command(flatten)]
    pub range: fjord_cli::TimeRangeArgs,
    /// Jurisdictions that count as allowed [default: EEA].
    #[arg(long = "allowed-jurisdiction", value_name = "J")]
    pub allowed: Vec<String>,
    /// Report format.
    #[arg(long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
    /// Write the ledger rows of the range as JSON lines to FILE (`-` for stdout) instead of
    /// the report; `fjord-aggregator audit verify --ledger FILE` checks them.
    #[arg(long, value_name = "FILE")]
    pub export: Option<PathBuf>,
}

/// Totals of one destination as declared when the data left.
#[derive(Debug, Default, Serialize)]
pub struct DestinationTotals {
    pub destination: String,
    pub region: String,
    pub jurisdiction: String,
    pub allowed: bool,
    pub batches: u64,
    pub records: u64,
    pub raw_bytes: u64,
    pub compressed_bytes: u64,
}

/// A rule-set version and when it was in force.
#[derive(Debug, Serialize)]
pub struct RulesVersion {
    pub version: String,
    pub first_ns: i64,
    pub last_ns: i64,
    pub batches: u64,
}

/// The audit report.
#[derive(Debug, Serialize)]
pub struct Report {
    pub state_dir: String,
    pub from_ns: i64,
    pub to_ns: i64,
    pub allowed_jurisdictions: Vec<String>,
    pub destinations: Vec<DestinationTotals>,
    /// Destinations outside the allowed jurisdictions (should be empty).
    pub outside_allowed: Vec<String>,
    pub redactions: BTreeMap<String, u64>,
    pub rules_versions: Vec<RulesVersion>,
    pub outcomes: BTreeMap<String, u64>,
    pub dead_lettered: Vec<String>,
    /// Byte ranges a rotation deleted, or a truncation cut, before they were read.
    pub lost: Vec<LostRange>,
    pub unacknowledged: Vec<PendingEntry>,
}

/// Bytes of a file lost before they were read (a ledger row with outcome `lost`).
#[derive(Debug, Serialize)]
pub struct LostRange {
    pub path: String,
    pub start_off: u64,
    pub end_off: u64,
    pub bytes: u64,
    /// `rotated_away` or `truncated`.
    pub reason: String,
    /// Unix nanoseconds when the loss was noticed.
    pub noticed_ns: i64,
}

/// Builds the report from ledger rows and pending batches.
pub fn report(
    state_dir: String,
    (from_ns, to_ns): (i64, i64),
    allowed: &[String],
    rows: &[LedgerRecord],
    pending: Vec<PendingEntry>,
) -> Report {
    let mut dest: BTreeMap<(String, String, String), DestinationTotals> = BTreeMap::new();
    let mut redactions = BTreeMap::new();
    let mut versions: BTreeMap<String, RulesVersion> = BTreeMap::new();
    let mut outcomes = BTreeMap::new();
    let mut dead = Vec::new();
    let mut lost = Vec::new();
    for r in rows {
        *outcomes.entry(r.outcome.as_str().to_owned()).or_insert(0) += 1;
        if r.outcome == Ledger::Lost {
            // Nothing left the pod: no destination, no rules.
            lost.push(LostRange {
                path: r.path.clone(),
                start_off: r.start_off,
                end_off: r.end_off,
                bytes: r.raw_bytes,
                reason: r.reason.clone(),
                noticed_ns: r.sent_ns,
            });
            continue;
        }
        let key = (
            r.destination.clone(),
            r.region.clone(),
            r.jurisdiction.clone(),
        );
        let d = dest.entry(key).or_insert_with(|| DestinationTotals {
            destination: r.destination.clone(),
            region: r.region.clone(),
            jurisdiction: r.jurisdiction.clone(),
            allowed: allowed.contains(&r.jurisdiction),
            ..DestinationTotals::default()
        });
        d.batches += 1;
        d.records += r.records;
        d.raw_bytes += r.raw_bytes;
        d.compressed_bytes += r.compressed_bytes;
        for (rule, n) in &r.redactions {
            *redactions.entry(rule.clone()).or_insert(0) += n;
        }
        if !r.rules_version.is_empty() {
            let v = versions
                .entry(r.rules_version.clone())
                .or_insert_with(|| RulesVersion {
                    version: r.rules_version.clone(),
                    first_ns: r.sent_ns,
                    last_ns: r.sent_ns,
                    batches: 0,
                });
            v.first_ns = v.first_ns.min(r.sent_ns);
            v.last_ns = v.last_ns.max(r.sent_ns);
            v.batches += 1;
        }
        if r.outcome == Ledger::DeadLetter {
            dead.push(r.batch_id.clone());
        }
    }
    let destinations: Vec<DestinationTotals> = dest.into_values().collect();
    let outside_allowed = destinations
        .iter()
        .filter(|d| !d.allowed && d.batches > 0)
        .map(|d| format!("{} ({}, {})", d.destination, d.region, d.jurisdiction))
        .collect();
    let mut rules_versions: Vec<RulesVersion> = versions.into_values().collect();
    rules_versions.sort_by_key(|v| v.first_ns);
    Report {
        state_dir,
        from_ns,
        to_ns,
        allowed_jurisdictions: allowed.to_vec(),
        destinations,
        outside_allowed,
        redactions,
        rules_versions,
        outcomes,
        dead_lettered: dead,
        lost,
        unacknowledged: pending,
    }
}

fn ts(ns: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(ns.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// The report as aligned text.
pub fn render_text(r: &Report) -> String {
    let mut o = String::new();
    let mut line = |s: String| {
        o.push_str(&s);
        o.push('\n');
    };
    line(format!("fjord-agent audit of {}", r.state_dir));
    line(format!("period      {} .. {}", ts(r.from_ns), ts(r.to_ns)));
    line(format!(
        "allowed     {}",
        r.allowed_jurisdictions.join(", ")
    ));
    line(String::new());
    line("Destinations (as declared by /v1/info when the data left)".into());
    line(format!(
        "  {:<40} {:<14} {:<12} {:>8} {:>10} {:>14} {:>14}",
        "URL", "REGION", "JURISDICTION", "BATCHES", "RECORDS", "RAW BYTES", "SENT BYTES"
    ));
    for d in &r.destinations {
        line(format!(
            "  {:<40} {:<14} {:<12} {:>8} {:>10} {:>14} {:>14}",
            d.destination,
            d.region,
            d.jurisdiction,
            d.batches,
            d.records,
            d.raw_bytes,
            d.compressed_bytes
        ));
    }
    if r.destinations.is_empty() {
        line("  (nothing left this pod in the period)".into());
    }
    line(String::new());
    if r.outside_allowed.is_empty() {
        line("Outside the allowed jurisdictions: none".into());
    } else {
        line("Outside the allowed jurisdictions: DATA WAS SENT TO".into());
        for d in &r.outside_allowed {
            line(format!("  {d}"));
        }
    }
    line(String::new());
    line("Redactions by rule".into());
    for (rule, n) in &r.redactions {
        line(format!("  {rule:<24} {n:>10}"));
    }
    if r.redactions.is_empty() {
        line("  (none)".into());
    }
    line(String::new());
    line("Rule-set versions in force".into());
    for v in &r.rules_versions {
        line(format!(
            "  {}  {} .. {}  {} batches",
            v.version,
            ts(v.first_ns),
            ts(v.last_ns),
            v.batches
        ));
    }
    line(String::new());
    let outcomes: Vec<String> = r.outcomes.iter().map(|(k, v)| format!("{k} {v}")).collect();
    line(format!(
        "Outcomes    {}",
        if outcomes.is_empty() {
            "none".to_owned()
        } else {
            outcomes.join(", ")
        }
    ));
    line(format!("Dead-lettered batches: {}", r.dead_lettered.len()));
    for id in &r.dead_lettered {
        line(format!("  {id}"));
    }
    line(format!(
        "Lost before they were read (deleted or cut by a rotation): {} bytes in {} ranges",
        r.lost.iter().map(|l| l.bytes).sum::<u64>(),
        r.lost.len()
    ));
    for l in &r.lost {
        line(format!(
            "  {}  {} [{}, {})  {} bytes  {}",
            ts(l.noticed_ns),
            l.path,
            l.start_off,
            l.end_off,
            l.bytes,
            l.reason
        ));
    }
    line(format!(
        "Unacknowledged batches (sent or about to be, no answer yet): {}",
        r.unacknowledged.len()
    ));
    for p in &r.unacknowledged {
        line(format!(
            "  {}  {} [{}, {})",
            p.batch_id,
            p.path.as_deref().unwrap_or("?"),
            p.start_off,
            p.end_off
        ));
    }
    o
}

/// Runs `fjord-agent audit`.
pub fn run(a: AuditArgs) -> ExitCode {
    match run_inner(a) {
        Ok(code) => code,
        Err(msg) => {
            eprintln!("fjord-agent audit: {msg}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

fn run_inner(a: AuditArgs) -> Result<ExitCode, String> {
    // One past now, so that a row written this nanosecond is in the default range.
    let (from_ns, to_ns) = a
        .range
        .resolve(now_ns().saturating_add(1), None)
        .map_err(|e| e.to_string())?;
    let db = a.state_dir.join(crate::state::STATE_DB);
    if !db.exists() {
        return Err(format!(
            "no state DB at {}; pass --state DIR (the agent's state_dir)",
            db.display()
        ));
    }
    let st = State::open_read_only(&a.state_dir)
        .map_err(|e| format!("opening {}: {e}", db.display()))?;
    let rows = st
        .ledger(from_ns, to_ns)
        .map_err(|e| format!("reading the ledger: {e}"))?;
    let stdout = std::io::stdout();
    if let Some(path) = &a.export {
        let mut out: Box<dyn Write> = if path.as_os_str() == "-" {
            Box::new(stdout.lock())
        } else {
            Box::new(std::io::BufWriter::new(
                std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?,
            ))
        };
        for r in &rows {
            let l = serde_json::to_string(r).map_err(|e| e.to_string())?;
            writeln!(out, "{l}").map_err(|e| format!("writing the export: {e}"))?;
        }
        out.flush()
            .map_err(|e| format!("writing the export: {e}"))?;
        return Ok(ExitCode::SUCCESS);
    }
    let pending = st
        .pending_all()
        .map_err(|e| format!("reading pending batches: {e}"))?;
    let allowed = if a.allowed.is_empty() {
        vec!["EEA".to_owned()]
    } else {
        a.allowed.clone()
    };
    let r = report(
        a.state_dir.display().to_string(),
        (from_ns, to_ns),
        &allowed,
        &rows,
        pending,
    );
    let text = match a.output {
        Output::Text => render_text(&r),
        Output::Json => serde_json::to_string_pretty(&r).map_err(|e| e.to_string())? + "\n",
    };
    let mut out = stdout.lock();
    out.write_all(text.as_bytes())
        .map_err(|e| format!("writing the report: {e}"))?;
    Ok(if r.outside_allowed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_OUTSIDE)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(dest: &str, jur: &str, outcome: Ledger, red: &[(&str, u64)]) -> LedgerRecord {
        LedgerRecord {
            batch_id: format!("b-{dest}-{outcome}"),
            sent_ns: 1_764_151_200_000_000_000,
            destination: dest.into(),
            region: "r".into(),
            jurisdiction: jur.into(),
            path: "/var/log/app.log".into(),
            start_off: 0,
            end_off: 10,
            records: 3,
            raw_bytes: 100,
            compressed_bytes: 40,
            payload_sha256: "00".into(),
            rules_version: "v1".into(),
            redactions: red.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            outcome,
            reason: String::new(),
        }
    }

    #[test]
    fn totals_redactions_and_foreign_destinations() {
        let rows = vec![
            row(
                "https://eu",
                "EEA",
                Ledger::Acked,
                &[("card", 2), ("email", 1)],
            ),
            row("https://eu", "EEA", Ledger::DeadLetter, &[("card", 1)]),
            row("https://us", "US", Ledger::Acked, &[]),
        ];
        let r = report("s".into(), (0, 1), &["EEA".into()], &rows, Vec::new());
        assert_eq!(r.destinations.len(), 2);
        assert_eq!(r.destinations[0].batches, 2);
        assert_eq!(r.redactions["card"], 3);
        assert_eq!(r.outside_allowed, vec!["https://us (r, US)".to_owned()]);
        assert_eq!(r.dead_lettered.len(), 1);
        let text = render_text(&r);
        assert!(text.contains("DATA WAS SENT TO"), "{text}");
    }

    #[test]
    fn losses_are_listed_and_go_to_no_destination() {
        let mut lost = row("", "", Ledger::Lost, &[]);
        lost.raw_bytes = 350;
        lost.reason = "truncated".into();
        let rows = vec![row("https://eu", "EEA", Ledger::Acked, &[]), lost];
        let r = report("s".into(), (0, 1), &["EEA".into()], &rows, Vec::new());
        assert_eq!(r.destinations.len(), 1, "a loss is not a destination");
        assert!(r.outside_allowed.is_empty());
        assert_eq!(r.lost.len(), 1);
        assert_eq!(r.lost[0].bytes, 350);
        assert_eq!(r.outcomes["lost"], 1);
        let text = render_text(&r);
        assert!(
            text.contains(
                "Lost before they were read (deleted or cut by a rotation): 350 bytes in 1 ranges"
            ),
            "{text}"
        );
        assert!(text.contains("350 bytes  truncated"), "{text}");
    }
}
