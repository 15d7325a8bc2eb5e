//! `audit report`: one document a data protection officer can file, built from the other
//! reports over one range (and optionally one team): what left which pod and where it went,
//! what arrived, what was redacted, whether the stored data and the signed audit chain
//! verify, whether any stored line still matches a PII rule, who read which team's logs,
//! what was erased, and what was refused or lost.
//!
//! Every figure carries the query that produced it (`Figure::command`, the fjord command that
//! prints the same numbers, and `Figure::basis`, the rows it sums), so an auditor can
//! reproduce it. The JSON form is the archival one; html.rs renders it for people.
//!
//! Invariants: nothing here holds stored line content (the scan's examples are left out;
//! `audit scan` prints them masked); the report reads the store read-only.

use std::collections::BTreeMap;

use fjord_rules::Redactor;
use serde::{Deserialize, Serialize};

use super::{access, agents, scan, verify, AuditError, ErasureEntry, LedgerEntry, Outcome, Range};
use crate::keys::PublicKey;
use crate::store::evidence::Evidence;
use crate::store::{format_day, NS_PER_DAY};
use fjord_wire::clock::format_ns;

/// A figure of the report and how to reproduce it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Figure<T> {
    /// The fjord command that prints the same numbers.
    pub command: String,
    /// The rows the figure sums, and how.
    pub basis: String,
    pub data: T,
}

/// Batches an agent's ledger says left a pod, per team, UTC day, pod and destination
/// jurisdiction.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShippedRow {
    pub team: String,
    pub day: String,
    pub agent: String,
    pub destination: String,
    pub jurisdiction: String,
    pub batches: u64,
    pub records: u64,
    pub bytes: u64,
}

/// Receipts per team, UTC day and sender.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceivedRow {
    pub team: String,
    pub day: String,
    pub agent: String,
    pub batches: u64,
    pub records: u64,
    pub bytes: u64,
}

/// Redactions the senders declared, per team, UTC day and rule.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedactionRow {
    pub team: String,
    pub day: String,
    pub rule: String,
    pub count: u64,
}

/// `audit verify`, summed up.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Integrity {
    pub ok: bool,
    pub receipts_checked: u64,
    pub stored_lines_checked: u64,
    pub missing: u64,
    pub extra: u64,
    pub altered: u64,
    pub unreceipted: u64,
    pub corrupt_chunks: u64,
    pub chain_links: u64,
    pub chain_findings: Vec<String>,
    pub roots: u64,
    pub roots_verified: u64,
    /// Key ids the signatures were checked with; empty: not checked.
    pub keys: Vec<String>,
    pub signed_through_at: Option<String>,
    pub unsigned_links: u64,
    /// The data checks per UTC day of the receipts (the chain is one for the whole store).
    pub days: Vec<IntegrityDay>,
}

/// `audit verify`'s data checks for the receipts of one UTC day.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntegrityDay {
    pub day: String,
    pub receipts_checked: u64,
    /// Batches a shipped ledger lists as delivered on that day with no receipt.
    pub missing: u64,
    pub extra: u64,
    /// Batches of that day whose stored lines or receipt differ from what arrived.
    pub altered: u64,
}

/// `audit scan`, summed up (no examples: the report holds no stored content).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PiiScan {
    pub rules_version: String,
    pub lines_scanned: u64,
    pub lines_matching: u64,
    /// Lines matching, per rule.
    pub rules: BTreeMap<String, u64>,
    pub corrupt_chunks: u64,
    /// The same per UTC day of the lines' timestamps.
    pub days: Vec<PiiDay>,
}

/// The re-scan of the lines of one UTC day.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PiiDay {
    pub day: String,
    pub lines_scanned: u64,
    pub lines_matching: u64,
    pub rules: BTreeMap<String, u64>,
}

/// Reads per UTC day, token, team and endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessRow {
    pub day: String,
    pub token: String,
    pub role: String,
    /// The team whose logs were read (the token's; `*` for a team-less admin).
    pub team: String,
    pub endpoint: String,
    pub requests: u64,
    /// Requests refused (4xx/5xx).
    pub refused: u64,
    /// Lines (or streams) returned.
    pub lines: u64,
}

/// Dead letters and losses per team, UTC day and pod.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LossRow {
    pub team: String,
    pub day: String,
    pub agent: String,
    pub dead_letter_batches: u64,
    pub dead_letter_records: u64,
    pub lost_ranges: u64,
    pub lost_bytes: u64,
}

/// `audit report`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ComplianceReport {
    pub generated: String,
    pub range: Range,
    pub team: Option<String>,
    pub shipped: Figure<Vec<ShippedRow>>,
    pub received: Figure<Vec<ReceivedRow>>,
    pub redactions: Figure<Vec<RedactionRow>>,
    pub integrity: Figure<Integrity>,
    pub pii_scan: Figure<PiiScan>,
    pub access: Figure<Vec<AccessRow>>,
    pub erasures: Figure<Vec<ErasureEntry>>,
    pub losses: Figure<Vec<LossRow>>,
}

/// What the report needs besides the store.
pub struct ReportInput<'a> {
    pub range: Range,
    pub team: Option<&'a str>,
    pub keys: &'a [PublicKey],
    pub redactor: &'a Redactor,
    /// The flags that select the same store, range and team, for the figures' commands.
    pub flags: String,
    pub now_ns: i64,
}

fn day(ns: i64) -> String {
    format_day(ns.div_euclid(NS_PER_DAY))
}

/// Builds the `audit report`.
pub fn report(store: &Evidence, input: &ReportInput<'_>) -> Result<ComplianceReport, AuditError> {
    let (range, team, flags) = (input.range, input.team, &input.flags);
    let in_team = |t: &str| team.is_none_or(|want| want == t);

    // What left the pods: the agents' shipped ledgers.
    let mut shipped: BTreeMap<(String, String, String, String), ShippedRow> = BTreeMap::new();
    let mut losses: BTreeMap<(String, String, String), LossRow> = BTreeMap::new();
    for r in store.agent_ledger(range.from_ns, range.to_ns)? {
        if !in_team(&r.team) {
            continue;
        }
        let Some(e) = agents::entry_of(&r) else {
            continue;
        };
        let loss = losses
            .entry((r.team.clone(), day(e.sent_ns), r.agent.clone()))
            .or_insert_with(|| LossRow {
                team: r.team.clone(),
                day: day(e.sent_ns),
                agent: r.agent.clone(),
                ..LossRow::default()
            });
        match e.outcome {
            Outcome::Acked | Outcome::Duplicate => {
                let key = (
                    r.team.clone(),
                    day(e.sent_ns),
                    r.agent.clone(),
                    e.destination.clone(),
                );
                let row = shipped.entry(key).or_insert_with(|| ShippedRow {
                    team: r.team.clone(),
                    day: day(e.sent_ns),
                    agent: r.agent.clone(),
                    destination: e.destination.clone(),
                    jurisdiction: e.jurisdiction.clone(),
                    ..ShippedRow::default()
                });
                row.batches += 1;
                row.records += e.records;
                row.bytes += e.raw_bytes;
            }
            Outcome::DeadLetter => {
                loss.dead_letter_batches += 1;
                loss.dead_letter_records += e.records;
            }
            Outcome::Lost => {
                loss.lost_ranges += 1;
                loss.lost_bytes += e.raw_bytes;
            }
        }
    }

    // What arrived, and what the senders say they redacted.
    let mut received: BTreeMap<(String, String, String), ReceivedRow> = BTreeMap::new();
    let mut redactions: BTreeMap<(String, String, String), u64> = BTreeMap::new();
    for r in store.receipts(range.from_ns, range.to_ns)? {
        if !in_team(&r.team) {
            continue;
        }
        let d = day(r.received_ns);
        let agent = r.agent.clone().unwrap_or_else(|| "-".to_owned());
        let row = received
            .entry((r.team.clone(), d.clone(), agent.clone()))
            .or_insert_with(|| ReceivedRow {
                team: r.team.clone(),
                day: d.clone(),
                agent,
                ..ReceivedRow::default()
            });
        row.batches += 1;
        row.records += r.records;
        row.bytes += r.raw_bytes;
        for (rule, n) in &r.redactions {
            *redactions
                .entry((r.team.clone(), d.clone(), rule.clone()))
                .or_default() += n;
        }
    }

    // Integrity: verify against the shipped ledgers, with the keys given.
    let (stored_ledger, _) = agents::stored_ledger(store, Range::ALL)?;
    let ledger: Vec<LedgerEntry> = stored_ledger;
    let v = verify::verify(
        store,
        range,
        (!ledger.is_empty()).then_some((
            std::path::Path::new("the agents' ledgers shipped to the aggregator"),
            ledger.as_slice(),
        )),
        input.keys,
    )?;
    let chain = v.chain.clone().unwrap_or_default();
    // The data checks per day of the receipts in range (of the team, with --team).
    let mut days: BTreeMap<String, IntegrityDay> = BTreeMap::new();
    let mut day_of_seq: BTreeMap<i64, String> = BTreeMap::new();
    for r in store.receipts(range.from_ns, range.to_ns)? {
        let d = day(r.received_ns);
        day_of_seq.insert(r.seq, d.clone());
        if in_team(&r.team) && r.entries_digest.is_some() {
            let slot = days.entry(d.clone()).or_insert_with(|| IntegrityDay {
                day: d,
                ..IntegrityDay::default()
            });
            slot.receipts_checked += 1;
        }
    }
    let mut count = |d: Option<String>, f: fn(&mut IntegrityDay)| {
        let d = d.unwrap_or_else(|| "-".to_owned());
        f(days.entry(d.clone()).or_insert_with(|| IntegrityDay {
            day: d,
            ..IntegrityDay::default()
        }));
    };
    for m in &v.missing {
        count(Some(day(m.sent_ns)), |d| d.missing += 1);
    }
    for x in &v.extra {
        count(day_of_seq.get(&x.seq).cloned(), |d| d.extra += 1);
    }
    for a in &v.altered {
        count(a.seq.and_then(|s| day_of_seq.get(&s).cloned()), |d| {
            d.altered += 1
        });
    }
    let integrity = Integrity {
        ok: v.ok,
        receipts_checked: v.receipts_checked,
        stored_lines_checked: v.stored_lines_checked,
        missing: v.missing.len() as u64,
        extra: v.extra.len() as u64,
        altered: v.altered.len() as u64,
        unreceipted: v.unreceipted.len() as u64,
        corrupt_chunks: v.corrupt_chunks.len() as u64,
        chain_links: chain.links,
        chain_findings: chain
            .findings
            .iter()
            .map(|f| match f.pos {
                Some(p) => format!("{} at link {p}", f.what),
                None => f.what.clone(),
            })
            .collect(),
        roots: chain.roots,
        roots_verified: chain.roots_verified,
        keys: chain.keys.clone(),
        signed_through_at: chain.signed_through_at.clone(),
        unsigned_links: chain.unsigned_links,
        days: days.into_values().collect(),
    };

    // PII still stored: a scan of the team's streams (or all) with the rule set.
    let selector = team.map(|t| format!("{{team={t:?}}}"));
    let parsed = match &selector {
        Some(s) => Some(crate::logql::parse(s).map_err(|e| AuditError::Labels {
            stream: 0,
            reason: e.to_string(),
        })?),
        None => None,
    };
    let s = scan::scan(
        store,
        input.redactor,
        selector.as_deref().zip(parsed.as_ref()),
        range,
        0,
    )?;
    let pii = PiiScan {
        rules_version: s.rules_version.clone(),
        lines_scanned: s.lines_scanned,
        lines_matching: s.lines_matching,
        rules: s.rules.iter().map(|r| (r.rule.clone(), r.lines)).collect(),
        corrupt_chunks: s.corrupt_chunk_count,
        days: s
            .days
            .iter()
            .map(|(d, x)| PiiDay {
                day: d.clone(),
                lines_scanned: x.lines_scanned,
                lines_matching: x.lines_matching,
                rules: x.rules.clone(),
            })
            .collect(),
    };

    // Who read which team's logs, and what was erased.
    let a = access::access(store, range, None)?;
    let mut reads: BTreeMap<(String, String, String, String), AccessRow> = BTreeMap::new();
    for e in &a.requests {
        let r = &e.record;
        let read_team = r.team.clone().unwrap_or_else(|| "*".to_owned());
        if team.is_some_and(|t| read_team != t && read_team != "*") {
            continue;
        }
        let row = reads
            .entry((
                day(r.at_ns),
                r.token.clone(),
                read_team.clone(),
                r.endpoint.clone(),
            ))
            .or_insert_with(|| AccessRow {
                day: day(r.at_ns),
                token: r.token.clone(),
                role: r.role.clone(),
                team: read_team,
                endpoint: r.endpoint.clone(),
                ..AccessRow::default()
            });
        row.requests += 1;
        if r.status >= 400 {
            row.refused += 1;
        }
        row.lines += r.lines;
    }

    let team_flag = team.map(|t| format!(" --team {t}")).unwrap_or_default();
    let window = if range.from_ns <= 0 {
        format!("up to {}", format_ns(range.to_ns))
    } else {
        format!(
            "between {} and {}",
            format_ns(range.from_ns),
            format_ns(range.to_ns)
        )
    };
    Ok(ComplianceReport {
        generated: format_ns(input.now_ns),
        range,
        team: team.map(str::to_owned),
        shipped: Figure {
            command: format!("fjord-aggregator audit agents{flags}{team_flag} --output json"),
            basis: format!(
                "agent_ledger rows with outcome acked or duplicate sent {window}, summed per team, UTC day of sent_ns, agent and destination (its declared jurisdiction)"
            ),
            data: shipped.into_values().collect(),
        },
        received: Figure {
            command: format!("fjord-aggregator audit receipts{flags} --output json"),
            basis: format!(
                "receipts received {window}, summed per team, UTC day of received_ns and agent"
            ),
            data: received.into_values().collect(),
        },
        redactions: Figure {
            command: format!("fjord-aggregator audit receipts{flags} --output json"),
            basis: format!(
                "the Fjord-Redactions counts of receipts received {window}, summed per team, UTC day and rule"
            ),
            data: redactions
                .into_iter()
                .map(|((team, day, rule), count)| RedactionRow {
                    team,
                    day,
                    rule,
                    count,
                })
                .collect(),
        },
        integrity: Figure {
            command: format!("fjord-aggregator audit verify{flags} --public-key KEY --output json"),
            basis: format!(
                "every chunk's entry digests against the receipts received {window}, the shipped ledgers against the receipts (per UTC day of the receipt, or of the ledger row for a missing batch), and the whole audit chain with its signed roots"
            ),
            data: integrity,
        },
        pii_scan: Figure {
            command: format!(
                "fjord-aggregator audit scan{}{flags} --output json",
                selector.as_deref().map(|s| format!(" '{s}'")).unwrap_or_default()
            ),
            basis: format!(
                "every stored line {window} re-scanned with rule set {}, also per UTC day of the line's timestamp",
                pii.rules_version
            ),
            data: pii,
        },
        access: Figure {
            command: format!("fjord-aggregator audit access{flags} --output json"),
            basis: format!(
                "access_log rows {window}, counted per UTC day, token, the team it reads and endpoint"
            ),
            data: reads.into_values().collect(),
        },
        erasures: Figure {
            command: format!("fjord-aggregator audit access{flags} --output json"),
            basis: format!("the erasure log {window} (all teams: an erasure names a query)"),
            data: a.erasures,
        },
        losses: Figure {
            command: format!("fjord-aggregator audit agents{flags}{team_flag} --output json"),
            basis: format!(
                "agent_ledger rows with outcome dead_letter or lost sent {window}, summed per team, UTC day of sent_ns and agent"
            ),
            data: losses
                .into_values()
                .filter(|l| l.dead_letter_batches > 0 || l.lost_ranges > 0)
                .collect(),
        },
    })
}
