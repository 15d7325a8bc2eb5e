//! fjord-agent: the log sidecar. Follows log files on a shared volume, scrubs PII with the
//! team's rules, batches and zstd-compresses records, and ships them to an in-region
//! aggregator. A file's checkpoint advances only when the aggregator has acknowledged the
//! lines before it, in the same transaction as the ledger row of that batch.

pub mod admin;
pub mod audit;
pub mod batch;
pub mod cli;
pub mod config;
pub mod discover;
pub mod metrics;
pub mod pipeline;
pub mod process;
pub mod reload;
pub mod rules_cmd;
pub mod ship;
pub mod state;
pub mod tail;
