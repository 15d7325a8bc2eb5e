//! fjord-aggregator: the in-region store. Ingests Loki push requests from fjord agents (and
//! any Loki-speaking agent), commits them to a local SQLite database before acknowledging,
//! and answers LogQL queries in Loki's JSON shape. Log data never leaves this process's disk.

// Unsafe code is fenced: only the modules marked `allow(unsafe_code)` below may use it, and
// every unsafe block says why it is sound (`// SAFETY:`).
#![deny(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod audit;
pub mod cli;
pub mod config;
pub mod keys;
pub mod server;
pub mod store;
pub mod tls;

/// LogQL (the `fjord-logql` crate), under the path the aggregator's modules and tests use.
pub use fjord_logql as logql;
