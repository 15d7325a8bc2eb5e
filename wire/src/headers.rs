//! Names of the HTTP headers that carry fjord's batch metadata next to a Loki push body.
//!
//! All are optional for other agents; `fjord-agent` always sends them. Names are lowercase
//! because HTTP/2 requires it and HTTP/1 compares them case-insensitively.

use std::collections::BTreeMap;

/// Deterministic batch id: the same batch retried carries the same id, so the aggregator
/// stores it once. See [`batch_id`].
pub const BATCH_ID: &str = "fjord-batch-id";
/// The sending agent's id (normally the pod name).
pub const AGENT: &str = "fjord-agent";
/// Version hash of the compiled rule set that scrubbed the batch.
pub const RULES: &str = "fjord-rules";
/// Redaction counts per rule, compact JSON: `{"email":3,"card":1}`.
pub const REDACTIONS: &str = "fjord-redactions";

/// Longest accepted value of any `Fjord-*` header.
pub const MAX_HEADER_VALUE_BYTES: usize = 4096;

/// Per-rule redaction counts as carried in [`REDACTIONS`].
pub type RedactionCounts = BTreeMap<String, u64>;

/// Formats redaction counts as the compact JSON the [`REDACTIONS`] header carries.
pub fn format_redactions(counts: &RedactionCounts) -> String {
    // A BTreeMap<String, u64> always serialises.
    serde_json::to_string(counts).unwrap_or_else(|_| "{}".to_owned())
}

/// Why a [`REDACTIONS`] header was refused. It names what is wrong and never echoes the
/// value (a sender's bug could put PII in it; serde_json's own messages quote the input).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedactionsError {
    #[error("{REDACTIONS} header is longer than {MAX_HEADER_VALUE_BYTES} bytes")]
    TooLong,
    #[error(
        "{REDACTIONS} header must be a JSON object of rule name to count (at column {column})"
    )]
    NotCounts { column: usize },
}

/// Parses the [`REDACTIONS`] header.
pub fn parse_redactions(value: &str) -> Result<RedactionCounts, RedactionsError> {
    if value.len() > MAX_HEADER_VALUE_BYTES {
        return Err(RedactionsError::TooLong);
    }
    serde_json::from_str(value).map_err(|e| RedactionsError::NotCounts { column: e.column() })
}

/// The deterministic id of a batch: the first 128 bits of
/// SHA-256(agent id, file identity, first byte offset), as 32 hex digits.
///
/// A batch is always a contiguous byte range of one file, so a retry after a lost ack (even
/// from a restarted agent) carries the same id and the aggregator stores it only once.
pub fn batch_id(agent_id: &str, file_identity: &str, first_offset: u64) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    // Length-prefix the strings so ("ab","c") and ("a","bc") cannot collide.
    h.update((agent_id.len() as u64).to_le_bytes());
    h.update(agent_id.as_bytes());
    h.update((file_identity.len() as u64).to_le_bytes());
    h.update(file_identity.as_bytes());
    h.update(first_offset.to_le_bytes());
    hex::encode(&h.finalize()[..16])
}

/// Whether a client-supplied batch id has an acceptable shape: 1–128 visible ASCII characters.
pub fn valid_batch_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_id_is_deterministic_and_distinct() {
        let a = batch_id("pod-1", "64769:1234:1", 0);
        assert_eq!(a, batch_id("pod-1", "64769:1234:1", 0));
        assert_eq!(a.len(), 32);
        assert!(valid_batch_id(&a));
        assert_ne!(a, batch_id("pod-1", "64769:1234:1", 1));
        assert_ne!(a, batch_id("pod-2", "64769:1234:1", 0));
        assert_ne!(batch_id("ab", "c", 0), batch_id("a", "bc", 0));
    }

    #[test]
    fn redactions_round_trip_and_reject_garbage() {
        let mut c = RedactionCounts::new();
        c.insert("email".into(), 3);
        c.insert("card".into(), 1);
        let s = format_redactions(&c);
        assert_eq!(s, r#"{"card":1,"email":3}"#);
        assert_eq!(parse_redactions(&s).unwrap(), c);
        assert!(parse_redactions("[1,2]").is_err());
        assert_eq!(
            parse_redactions(&"x".repeat(5000)),
            Err(RedactionsError::TooLong)
        );
        // serde_json would quote the offending value; the error never does.
        let e = parse_redactions(r#"{"email":"kari@example.no"}"#)
            .unwrap_err()
            .to_string();
        assert!(!e.contains("kari"), "{e}");
    }

    #[test]
    fn batch_id_shape_is_checked() {
        assert!(!valid_batch_id(""));
        assert!(!valid_batch_id("has space"));
        assert!(!valid_batch_id(&"a".repeat(129)));
    }
}
