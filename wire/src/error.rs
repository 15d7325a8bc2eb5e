//! What can be wrong with a push body, for the codec that decodes it and for the push
//! types that check its shape. Its own module so that neither of those two depends on the
//! other for it.

use thiserror::Error;

/// Everything that can be wrong with a push body. Messages are lowercase, name the problem
/// and never contain log content, so they can be returned to the client and logged.
#[derive(Debug, Error)]
pub enum CodecError {
    /// `Content-Encoding` is not one we decode.
    #[error("unsupported content-encoding {0:?}; use zstd, gzip or identity")]
    UnsupportedEncoding(String),
    /// The body did not decompress.
    #[error("body is not valid {encoding} data: {reason}")]
    Corrupt {
        encoding: &'static str,
        reason: String,
    },
    /// The decompressed body is larger than allowed.
    #[error("decompressed body exceeds the limit of {limit} bytes")]
    TooLarge { limit: usize },
    /// The JSON did not parse into a push request.
    #[error("malformed push body at line {line} column {column}: {reason}")]
    Json {
        line: usize,
        column: usize,
        reason: String,
    },
    /// A line is longer than the limit.
    #[error("stream {stream} entry {entry} is {len} bytes; the line limit is {limit}")]
    LineTooLong {
        stream: usize,
        entry: usize,
        len: usize,
        limit: usize,
    },
    /// Any other limit or shape violation.
    #[error("{0}")]
    Invalid(String),
    /// Encoding failed (only for I/O errors of the compressor, which work in memory).
    #[error("encoding failed: {0}")]
    Encode(String),
}
