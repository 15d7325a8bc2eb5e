//! Limits shared by both ends of the wire. The aggregator enforces them on every request; the
//! agent stays below them when it forms batches, so a well-behaved agent is never refused.

/// Largest request body the aggregator reads off the socket, before decompression.
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// Largest push payload after decompression. Decompression is streamed and stops here, so a
/// small "zip bomb" body can never make the aggregator allocate more than this.
pub const MAX_DECOMPRESSED_BYTES: usize = 64 * 1024 * 1024;

/// Longest single log line (record) accepted, in bytes.
pub const MAX_LINE_BYTES: usize = 256 * 1024;

/// Most labels on one stream.
pub const MAX_LABELS_PER_STREAM: usize = 32;

/// Longest label name, in bytes.
pub const MAX_LABEL_NAME_BYTES: usize = 128;

/// Longest label value, in bytes.
pub const MAX_LABEL_VALUE_BYTES: usize = 1024;

/// Most streams in one push request.
pub const MAX_STREAMS_PER_PUSH: usize = 10_000;

/// Most structured-metadata pairs on one entry (Loki's default
/// `max_structured_metadata_entries_count`).
pub const MAX_METADATA_PAIRS: usize = 128;

/// Most bytes of structured-metadata names and values on one entry (Loki's default
/// `max_structured_metadata_size`).
pub const MAX_METADATA_BYTES: usize = 64 * 1024;
