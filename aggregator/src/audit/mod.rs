//! The compliance audit over a data directory: receipts (what arrived), `verify` (did
//! everything an agent sent arrive, and is what is stored still what arrived), `scan` (does any
//! stored line still match a PII rule) and the access log (who read what, who erased what).
//!
//! Everything here reads the store through its read-only evidence view
//! ([`crate::store::evidence`]), so it can run on the server next to a live aggregator, or on
//! a copy of the data directory, and can never change the evidence it reports on. Reports are
//! plain serde structs: the JSON form is the archival form (fields are only ever added), the
//! text form ([`report`]) is for people.
//!
//! Invariants: no report contains stored line content; `scan` prints a line only with every
//! match replaced by `[MATCH:<rule>]`, and a JSON line not at all (only the field paths).
//! How verify's evidence is built (entry digests, removals) is in docs/compliance.md.

mod access;
mod agents;
mod chain;
mod compliance;
mod html;
mod receipts;
mod report;
mod scan;
mod verify;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use crate::store::evidence::{Evidence, EvidenceError, Receipt};
pub use access::{access, AccessEntry, AccessReport, ErasureEntry};
pub use agents::{agents, stored_ledger, AgentSummary, AgentsReport};
pub use chain::{ChainFinding, ChainReport};
pub use compliance::{report as compliance_report, ComplianceReport, ReportInput};
pub use html::{render_html, render_md};
pub use receipts::{receipts, ReceiptsReport};
pub use report::{render_access, render_agents, render_receipts, render_scan, render_verify};
pub use scan::{mask, scan, RuleMatches, ScanExample, ScanReport};
pub use verify::{
    read_ledger, verify, AlteredBatch, CorruptChunk, ExtraBatch, LedgerEntry, MissingBatch,
    Outcome, Removal, Unreceipted, VerifyReport,
};

/// Errors of the audit commands; each names the file or value at fault.
#[derive(Debug, Error)]
pub enum AuditError {
    #[error(transparent)]
    Store(#[from] EvidenceError),
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

/// Opens the store in `data_dir` for an audit: read-only, and only a store of this binary's
/// schema.
pub fn open(data_dir: &Path) -> Result<Evidence, AuditError> {
    Ok(Evidence::open(data_dir)?)
}

/// An inclusive time range, Unix epoch ns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Range {
    pub from_ns: i64,
    pub to_ns: i64,
}

impl Range {
    /// Every time.
    pub const ALL: Range = Range {
        from_ns: i64::MIN,
        to_ns: i64::MAX,
    };

    pub(crate) fn contains(&self, ns: i64) -> bool {
        ns >= self.from_ns && ns <= self.to_ns
    }
}

#[cfg(test)]
mod chain_tests;
#[cfg(test)]
mod report_tests;
#[cfg(test)]
mod tests;
