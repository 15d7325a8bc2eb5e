//! fjord-wire: the contract between `fjord-agent` and `fjord-aggregator`.
//!
//! The push body is Grafana Loki's push format, so any Loki-speaking agent can ship to the
//! aggregator and the agent can ship to a real Loki. This crate holds the types, the `Fjord-*`
//! header names, the batch codec (JSON + zstd/gzip/identity), Loki's protobuf push
//! (`logproto`), OTLP/HTTP logs mapped as Loki maps them (`otlp`) and the limits. It performs
//! no I/O and depends on neither tokio nor an HTTP stack, so both sides and the tests share it.

// Unsafe code is fenced: only the modules marked `allow(unsafe_code)` below may use it, and
// every unsafe block says why it is sound (`// SAFETY:`).
#![deny(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks)]

// The JSON escaper's fixed-size block moves (property-tested against serde_json). Its byte
// classification, like the push parser's, is `scan.rs` on `fjord_bytes`' safe lanes.
#[allow(unsafe_code)]
pub mod body;
mod canonical;
pub mod clock;
pub mod codec;
mod error;
pub mod headers;
pub mod info;
pub mod ledger;
pub mod limits;
pub mod logproto;
pub mod otlp;
pub mod push;
mod scan;

pub use codec::{CodecError, ContentEncoding, EncodedBatch};
pub use info::{ErrorBody, Info, StatusBody};
pub use push::{Entry, PushRequest, PushStream};
