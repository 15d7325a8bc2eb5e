//! `audit access`: who read what, and who erased what, from the aggregator's access and
//! erasure logs.

use serde::{Deserialize, Serialize};

use super::{AuditError, Range};
use crate::store::evidence::{AccessEntry, ErasureEntry, Evidence};

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
            requests: store.access_log(range.from_ns, range.to_ns, token)?,
            erasures: store.erasures(range.from_ns, range.to_ns)?,
        })
    })
}
