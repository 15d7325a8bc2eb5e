//! The ledger record: the contract between the binaries. The agent writes one for every
//! batch that left the pod (acknowledged, a duplicate, or refused and dead-lettered) and for
//! every byte range a rotation destroyed before it was read, and exports them as JSON lines
//! (`fjord-agent audit --export`); the aggregator's `audit verify --ledger` reads that export
//! and matches it against its receipts.
//!
//! Reading is tolerant in one direction only: fields a newer agent adds are ignored, fields
//! an older one did not write take their defaults; the fields verify needs are required.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// How a batch, or a byte range, ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Stored by the aggregator.
    Acked,
    /// The aggregator had stored this batch before (counts as acknowledged).
    Duplicate,
    /// Refused as malformed, or as another payload under a known id; kept in the agent's
    /// dead-letter directory.
    DeadLetter,
    /// Bytes of a file a rotation deleted, or a truncation cut, before they were read;
    /// nothing was sent.
    Lost,
}

impl Outcome {
    /// The name stored in the agent's state DB and in exports.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Acked => "acked",
            Outcome::Duplicate => "duplicate",
            Outcome::DeadLetter => "dead_letter",
            Outcome::Lost => "lost",
        }
    }

    /// The outcome named `s`.
    pub fn parse(s: &str) -> Option<Outcome> {
        [
            Outcome::Acked,
            Outcome::Duplicate,
            Outcome::DeadLetter,
            Outcome::Lost,
        ]
        .into_iter()
        .find(|o| o.as_str() == s)
    }

    /// Whether the aggregator holds the batch (so a receipt must exist).
    pub fn delivered(self) -> bool {
        matches!(self, Outcome::Acked | Outcome::Duplicate)
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One ledger row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerRecord {
    /// The batch id (`lost:<identity>:<offset>` for a loss).
    pub batch_id: String,
    /// Unix nanoseconds when the final answer (or the loss) was recorded.
    pub sent_ns: i64,
    /// The aggregator's URL; empty for a loss.
    #[serde(default)]
    pub destination: String,
    /// The region and jurisdiction the destination declared when the data left.
    #[serde(default)]
    pub region: String,
    #[serde(default)]
    pub jurisdiction: String,
    /// The file the bytes came from (its `file` label).
    #[serde(default)]
    pub path: String,
    /// The byte range of the file.
    #[serde(default)]
    pub start_off: u64,
    #[serde(default)]
    pub end_off: u64,
    pub records: u64,
    /// Raw line bytes sent; for a loss, the bytes lost.
    #[serde(default)]
    pub raw_bytes: u64,
    /// Bytes of the compressed body sent.
    #[serde(default)]
    pub compressed_bytes: u64,
    /// SHA-256 of the uncompressed push body; empty for a loss.
    pub payload_sha256: String,
    /// The rule-set version that redacted the batch.
    #[serde(default)]
    pub rules_version: String,
    /// Redaction counts per rule, as sent in `Fjord-Redactions`.
    #[serde(default)]
    pub redactions: BTreeMap<String, u64>,
    pub outcome: Outcome,
    /// For a loss: `rotated_away` or `truncated`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

/// The path agents ship their ledger rows to.
pub const LEDGER_PATH: &str = "/v1/ledger";

/// Most rows one `POST /v1/ledger` may carry.
pub const MAX_LEDGER_ROWS_PER_PUSH: usize = 1_000;

/// `POST /v1/ledger`: rows of one agent's ledger (the agent named by `Fjord-Agent`), in the
/// order the agent wrote them. Rows the aggregator holds already (by `seq`) are skipped, so a
/// retry stores nothing twice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerPush {
    /// The agent's `team` label. Like a push's team label, it counts only for a caller
    /// whose token names no team; a team token's team wins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    pub rows: Vec<LedgerPushRow>,
}

/// One ledger row with its place in the agent's ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerPushRow {
    /// The row's id in the agent's ledger: increasing, never reused.
    pub seq: i64,
    #[serde(flatten)]
    pub record: LedgerRecord,
}

/// The answer to a ledger push: how many rows were new, and the newest `seq` the aggregator
/// holds for the agent (the agent ships from there on).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerAck {
    pub stored: u64,
    pub last_seq: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_round_trip_by_name() {
        for o in [
            Outcome::Acked,
            Outcome::Duplicate,
            Outcome::DeadLetter,
            Outcome::Lost,
        ] {
            assert_eq!(Outcome::parse(o.as_str()), Some(o));
            assert_eq!(serde_json::to_string(&o).unwrap(), format!("\"{o}\""));
        }
        assert_eq!(Outcome::parse("sent"), None);
    }

    #[test]
    fn an_export_line_reads_with_only_the_fields_verify_needs() {
        let r: LedgerRecord = serde_json::from_str(
            r#"{"batch_id":"a","sent_ns":1,"records":2,"payload_sha256":"x","outcome":"acked","new_field":1}"#,
        )
        .unwrap();
        assert_eq!((r.records, r.outcome), (2, Outcome::Acked));
        assert!(serde_json::from_str::<LedgerRecord>(r#"{"batch_id":"b"}"#).is_err());
        let text = serde_json::to_string(&r).unwrap();
        assert!(!text.contains("reason"), "{text}");
    }
}
