//! `audit access`: who read what, and who erased what, from the aggregator's access and
//! erasure logs.

use serde::{Deserialize, Serialize};

use super::{AuditError, Range};
use crate::store::evidence::Evidence;
use crate::store::{AccessRecord, ErasureRecord};
use fjord_wire::clock::format_ns;

/// One request recorded in the access log, with its time in words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessEntry {
    pub at: String,
    #[serde(flatten)]
    pub record: AccessRecord,
}

/// One erasure, from the erasure log, with its time in words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErasureEntry {
    pub at: String,
    #[serde(flatten)]
    pub record: ErasureRecord,
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
    store: &Evidence,
    range: Range,
    token: Option<&str>,
) -> Result<AccessReport, AuditError> {
    store.snapshot(|store| {
        Ok(AccessReport {
            range,
            requests: store
                .access_log(range.from_ns, range.to_ns, token)?
                .into_iter()
                .map(|record| AccessEntry {
                    at: format_ns(record.at_ns),
                    record,
                })
                .collect(),
            erasures: store
                .erasures(range.from_ns, range.to_ns)?
                .into_iter()
                .map(|record| ErasureEntry {
                    at: format_ns(record.at_ns),
                    record,
                })
                .collect(),
        })
    })
}
