//! The audit reports as text, for people; the JSON form (the reports' serde derives) is the
//! archival one. Nothing rendered here holds stored line content: scan examples arrive
//! already masked.

use std::fmt::Write;

use super::{
    AccessReport, AgentsReport, ChainReport, Range, ReceiptsReport, ScanReport, VerifyReport,
};
use fjord_wire::clock::format_ns;

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
        let _ = match m.kind.as_str() {
            "duplicate" => writeln!(
                s,
                "note      batch {}: {} lines not stored again, already stored (dedup)",
                m.batch, m.lines
            ),
            kind => writeln!(
                s,
                "note      batch {}: {} {} lines by {} at {}",
                m.batch,
                if kind == "erasure" {
                    "erased"
                } else {
                    "expired"
                },
                m.lines,
                m.operator,
                m.at
            ),
        };
    }
    if let Some(c) = &r.chain {
        render_chain(&mut s, c);
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

/// The audit chain's part of `audit verify` as text.
fn render_chain(s: &mut String, c: &ChainReport) {
    let _ = writeln!(
        s,
        "chain: {} links, {} rows checked against them, {} rows from before the chain began",
        c.links, c.rows_checked, c.rows_before_chain
    );
    let signed = match (&c.signed_through, &c.signed_through_at) {
        (Some(pos), Some(at)) => format!(
            "signed through link {pos} at {at}; {} links since",
            c.unsigned_links
        ),
        _ => format!("no valid signed root; {} links unsigned", c.unsigned_links),
    };
    if c.keys.is_empty() {
        let _ = writeln!(
            s,
            "roots: {}; {signed}; signatures NOT checked: pass --public-key",
            c.roots
        );
    } else {
        let _ = writeln!(
            s,
            "roots: {}, {} verified with key(s) {}; {signed}",
            c.roots,
            c.roots_verified,
            c.keys.join(", ")
        );
    }
    for f in &c.findings {
        let mut at = String::new();
        if let Some(pos) = f.pos {
            let _ = write!(at, " at link {pos}");
        }
        if let Some((kind, id)) = &f.row {
            let _ = write!(at, " ({kind} {id})");
        }
        let _ = writeln!(s, "CHAIN     {}{at}: {}", f.what.to_uppercase(), f.detail);
    }
    if c.findings_omitted > 0 {
        let _ = writeln!(s, "CHAIN     … and {} more findings", c.findings_omitted);
    }
}

/// `audit scan` as text.
pub fn render_scan(r: &ScanReport) -> String {
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
    let mut s = String::new();
    let _ = writeln!(s, "access {}", range_text(r.range));
    let _ = writeln!(
        s,
        "\n{:<30} {:<20} {:<12} {:<6} {:<12} {:>7} {:>6}  QUERY [RANGE]",
        "TIME", "TOKEN", "TEAM", "ROLE", "ENDPOINT", "LINES", "STATUS"
    );
    for entry in &r.requests {
        let a = &entry.record;
        let span = match (a.start_ns, a.end_ns) {
            (Some(f), Some(t)) => format!(" [{} .. {}]", format_ns(f), format_ns(t)),
            _ => String::new(),
        };
        let _ = writeln!(
            s,
            "{:<30} {:<20} {:<12} {:<6} {:<12} {:>7} {:>6}  {}{}",
            entry.at,
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
    for entry in &r.erasures {
        let e = &entry.record;
        let _ = writeln!(
            s,
            "  #{} {} by {}: {} lines in {} chunks matching {} [{} .. {}]",
            e.id,
            entry.at,
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

/// `audit agents` as text.
pub fn render_agents(r: &AgentsReport) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "agents' ledgers, rows sent {}: {} agents",
        range_text(r.range),
        r.agents.len()
    );
    for a in &r.agents {
        let _ = writeln!(
            s,
            "{} (team {}): {} rows, {} .. {}",
            a.agent,
            a.team,
            a.rows,
            a.first_sent.as_deref().unwrap_or("-"),
            a.last_sent.as_deref().unwrap_or("-")
        );
        let _ = writeln!(
            s,
            "  delivered    {} batches, {} records, {} bytes",
            a.delivered_batches, a.delivered_records, a.delivered_bytes
        );
        let _ = writeln!(
            s,
            "  dead-letter  {} batches, {} records (refused by the aggregator, kept on the pod)",
            a.dead_letter_batches, a.dead_letter_records
        );
        let _ = writeln!(
            s,
            "  lost         {} ranges, {} bytes (rotated away or truncated before they were read)",
            a.losses, a.lost_bytes
        );
        for (d, j) in &a.destinations {
            let _ = writeln!(
                s,
                "  destination  {d} ({})",
                if j.is_empty() { "-" } else { j }
            );
        }
        if a.unreadable_rows > 0 {
            let _ = writeln!(s, "  UNREADABLE   {} rows", a.unreadable_rows);
        }
    }
    s
}
