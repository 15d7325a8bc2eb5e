//! `audit scan`: re-scans stored lines with a rule set, to show that no PII the rules know of
//! was stored. Invariants: no report contains stored line content; an example is printed only
//! with every match replaced by `[MATCH:<rule>]`, and a JSON line not at all (only the field
//! paths).

use std::collections::BTreeMap;

use fjord_rules::{Explanation, Redactor};
use serde::{Deserialize, Serialize};

use super::{AuditError, Range};
use crate::logql::LogQuery;
use crate::store::evidence::Evidence;
use crate::store::{chunk, format_day, Labels, NS_PER_DAY};
use fjord_wire::clock::format_ns;

/// Lines per rule that still match.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleMatches {
    pub rule: String,
    /// Stored lines in which the rule matched at least once.
    pub lines: u64,
    /// Matches in all (a line may hold several).
    pub matches: u64,
}

/// What a scan found among the lines of one UTC day.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayScan {
    pub lines_scanned: u64,
    pub lines_matching: u64,
    /// Lines in which each rule matched.
    pub rules: BTreeMap<String, u64>,
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
    /// The entry's structured metadata values that matched, masked the same way, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub masked_metadata: BTreeMap<String, String>,
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
    /// The same counts per UTC day of the lines' timestamps.
    #[serde(default)]
    pub days: BTreeMap<String, DayScan>,
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
    store: &Evidence,
    redactor: &Redactor,
    query: Option<(&str, &LogQuery)>,
    range: Range,
    max_examples: usize,
) -> Result<ScanReport, AuditError> {
    store.snapshot(|store| scan_in_snapshot(store, redactor, query, range, max_examples))
}

fn scan_in_snapshot(
    store: &Evidence,
    redactor: &Redactor,
    query: Option<(&str, &LogQuery)>,
    range: Range,
    max_examples: usize,
) -> Result<ScanReport, AuditError> {
    let mut streams: Vec<(i64, Labels)> = Vec::new();
    for s in store.streams()? {
        let labels: Labels = serde_json::from_str(&s.key).map_err(|e| AuditError::Labels {
            stream: s.id,
            reason: e.to_string(),
        })?;
        if query.is_none_or(|(_, q)| q.matches_stream(&labels)) {
            streams.push((s.id, labels));
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
        days: BTreeMap::new(),
    };
    // Per UTC day number; named when the scan is done.
    let mut days: BTreeMap<i64, DayScan> = BTreeMap::new();
    let mut per_rule: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut dec = chunk::Decoder::new().map_err(|e| AuditError::Labels {
        stream: 0,
        reason: e.to_string(),
    })?;
    for (sid, labels) in &streams {
        store.each_chunk_of_stream(*sid, range.from_ns, range.to_ns, |c| {
            if dec.load(c.data).is_err() {
                report.corrupt_chunks.push(c.id);
                return Ok(());
            }
            let walked = dec.each(0, |r| {
                let (ts, line) = (r.ts, r.line);
                if !range.contains(ts) || query.is_some_and(|(_, q)| !q.keep_line(line)) {
                    return;
                }
                report.lines_scanned += 1;
                let day = days.entry(ts.div_euclid(NS_PER_DAY)).or_default();
                day.lines_scanned += 1;
                // The line and each structured metadata value are scanned alike.
                let e = redactor.explain(line);
                let in_meta: Vec<(&str, &str, _)> = r
                    .meta
                    .iter()
                    .map(|(k, v)| (k, v, redactor.explain(v)))
                    .filter(|(_, _, x)| !x.hits.is_empty())
                    .collect();
                if e.hits.is_empty() && in_meta.is_empty() {
                    return;
                }
                report.lines_matching += 1;
                day.lines_matching += 1;
                let mut rules: Vec<String> = Vec::new();
                let hits = e
                    .hits
                    .iter()
                    .chain(in_meta.iter().flat_map(|m| m.2.hits.iter()));
                for h in hits {
                    let slot = per_rule.entry(h.rule.clone()).or_default();
                    slot.1 += 1;
                    if !rules.contains(&h.rule) {
                        slot.0 += 1;
                        *day.rules.entry(h.rule.clone()).or_default() += 1;
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
                        masked_metadata: in_meta
                            .iter()
                            .map(|(k, v, x)| (k.to_string(), mask(v, x)))
                            .collect(),
                    });
                }
            });
            if walked.is_err() {
                report.corrupt_chunks.push(c.id);
            }
            Ok::<_, AuditError>(())
        })?;
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
    report.days = days
        .into_iter()
        .map(|(d, scan)| (format_day(d), scan))
        .collect();
    Ok(report)
}
