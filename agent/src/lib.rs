//! fjord-agent: the log sidecar. Follows log files on a shared volume, scrubs PII with the
//! team's rules, batches and zstd-compresses records, and ships them to an in-region
//! aggregator. A file's checkpoint advances only when the aggregator has acknowledged the
//! lines before it, in the same transaction as the ledger row of that batch.

// Unsafe code is fenced: only the modules marked `allow(unsafe_code)` below may use it, and
// every unsafe block says why it is sound (`// SAFETY:`).
#![deny(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod admin;
pub mod audit;
pub mod batch;
pub mod batcher;
pub mod cli;
pub mod config;
pub mod discover;
pub mod metrics;
pub mod pipeline;
pub mod reload;
pub mod rules_cmd;
// statvfs(3) through libc.
#[allow(unsafe_code)]
pub mod selfcheck;
pub mod ship;
pub mod state;
pub mod tail;
