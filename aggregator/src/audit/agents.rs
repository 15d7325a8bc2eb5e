//! `audit agents`: what each agent's own ledger says it did, as shipped to the aggregator
//! (`POST /v1/ledger`): batches sent and acknowledged, refused into the dead-letter
//! directory, and bytes lost to rotation or truncation before they were read. It outlives
//! the pod; `audit verify` reconciles the same rows against the receipts.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{AuditError, LedgerEntry, Outcome, Range};
use crate::store::evidence::{AgentLedgerRow, Evidence};
use fjord_wire::clock::format_ns;

/// One agent's ledger in the range.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentSummary {
    pub team: String,
    pub agent: String,
    pub rows: u64,
    /// Batches the aggregator stored (acknowledged, or a duplicate of one stored before).
    pub delivered_batches: u64,
    pub delivered_records: u64,
    pub delivered_bytes: u64,
    /// Batches refused for good and kept in the agent's dead-letter directory.
    pub dead_letter_batches: u64,
    pub dead_letter_records: u64,
    /// Byte ranges a rotation or truncation destroyed before they were read.
    pub losses: u64,
    pub lost_bytes: u64,
    /// Where the agent's batches went, with the jurisdiction each declared.
    pub destinations: BTreeMap<String, String>,
    pub first_sent: Option<String>,
    pub last_sent: Option<String>,
    /// Rows the aggregator could not read (a newer agent's row it does not know).
    pub unreadable_rows: u64,
}

/// `audit agents`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AgentsReport {
    pub range: Range,
    pub agents: Vec<AgentSummary>,
}

/// The ledger entry of a stored row; `None` if the row does not read as one.
pub fn entry_of(row: &AgentLedgerRow) -> Option<LedgerEntry> {
    serde_json::from_str(&row.record).ok()
}

/// Every stored agent ledger row sent in `range`, as ledger entries, oldest first; and how
/// many rows did not read.
pub fn stored_ledger(
    store: &Evidence,
    range: Range,
) -> Result<(Vec<LedgerEntry>, u64), AuditError> {
    let rows = store.agent_ledger(range.from_ns, range.to_ns)?;
    let mut entries: Vec<LedgerEntry> = Vec::with_capacity(rows.len());
    let mut unreadable = 0;
    for r in &rows {
        match entry_of(r) {
            Some(e) => entries.push(e),
            None => unreadable += 1,
        }
    }
    entries.sort_by_key(|e| e.sent_ns);
    Ok((entries, unreadable))
}

/// Builds the `audit agents` report.
pub fn agents(
    store: &Evidence,
    range: Range,
    team: Option<&str>,
) -> Result<AgentsReport, AuditError> {
    let mut by_agent: BTreeMap<(String, String), AgentSummary> = BTreeMap::new();
    for r in store.agent_ledger(range.from_ns, range.to_ns)? {
        if team.is_some_and(|t| t != r.team) {
            continue;
        }
        let s = by_agent
            .entry((r.team.clone(), r.agent.clone()))
            .or_insert_with(|| AgentSummary {
                team: r.team.clone(),
                agent: r.agent.clone(),
                ..AgentSummary::default()
            });
        s.rows += 1;
        let Some(e) = entry_of(&r) else {
            s.unreadable_rows += 1;
            continue;
        };
        match e.outcome {
            Outcome::Acked | Outcome::Duplicate => {
                s.delivered_batches += 1;
                s.delivered_records += e.records;
                s.delivered_bytes += e.raw_bytes;
            }
            Outcome::DeadLetter => {
                s.dead_letter_batches += 1;
                s.dead_letter_records += e.records;
            }
            Outcome::Lost => {
                s.losses += 1;
                s.lost_bytes += e.raw_bytes;
            }
        }
        if !e.destination.is_empty() {
            s.destinations
                .insert(e.destination.clone(), e.jurisdiction.clone());
        }
        let sent = format_ns(e.sent_ns);
        if s.first_sent.is_none() {
            s.first_sent = Some(sent.clone());
        }
        s.last_sent = Some(sent);
    }
    Ok(AgentsReport {
        range,
        agents: by_agent.into_values().collect(),
    })
}
