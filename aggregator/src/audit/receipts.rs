//! `audit receipts`: what arrived in a time range, batch by batch, with totals.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{AuditError, Range};
use crate::store::evidence::{Evidence, Receipt};

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

/// Builds the `audit receipts` report.
pub fn receipts(store: &Evidence, range: Range) -> Result<ReceiptsReport, AuditError> {
    let receipts = store.receipts(range.from_ns, range.to_ns)?;
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
