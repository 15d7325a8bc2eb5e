//! fjord-aggregator: the in-region store. Ingests Loki push requests from fjord agents (and
//! any Loki-speaking agent), commits them to a local SQLite database before acknowledging,
//! and answers LogQL queries in Loki's JSON shape. Log data never leaves this process's disk.

pub mod audit;
pub mod cli;
pub mod config;
pub mod logql;
pub mod server;
pub mod store;
pub mod time;
