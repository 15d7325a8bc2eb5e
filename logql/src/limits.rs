//! Limits on one query: text, matchers, stages, regexes, series, points and samples. Each
//! is checked before the part that would exceed it is built or allocated, so a hostile query
//! costs at most what these allow.

/// Longest query text, checked before anything is parsed.
pub const MAX_QUERY_TEXT_BYTES: usize = 8 * 1024;

/// Most label matchers in one selector (a server adds one for a read token's team).
pub const MAX_QUERY_MATCHERS: usize = 32;

/// Most pipeline stages (line filters, parsers, label filters, formats) in one query, summed
/// over its selectors. Every stage runs over every scanned line.
pub const MAX_QUERY_STAGES: usize = 64;

/// Compiled-size limit of one regex. Together with [`MAX_QUERY_REGEXES`] it bounds the memory
/// one query's regexes take (16 MiB): a Unicode class such as `\w{20}` compiles to hundreds of
/// KiB.
pub const MAX_QUERY_REGEX_BYTES: usize = 1024 * 1024;

/// Most regexes in one query (matchers, line filters, `regexp`, label filters,
/// `label_replace`), counted before the next is compiled: compiling is the expensive part of
/// planning (1,000 `|~ "\w{20}"` took 10 s and 2.2 GB).
pub const MAX_QUERY_REGEXES: usize = 16;

/// Most bytes of regex source in one query, summed over its regexes.
pub const MAX_QUERY_REGEX_SOURCE_BYTES: usize = 2 * 1024;

/// Most bytes one template (`line_format`, `label_format`) may produce for one entry; the
/// output is cut there, so a template cannot blow up memory.
pub const MAX_TEMPLATE_OUTPUT_BYTES: usize = 64 * 1024;

/// Most labels a parser stage extracts from one entry; the rest are ignored, so a line with
/// a million JSON keys costs no more than this.
pub const MAX_EXTRACTED_LABELS: usize = 256;

/// Limits of one metric evaluation, set by the server from its configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EvalLimits {
    /// Most series any node of the query may hold (Loki's `max_query_series`, 500).
    pub max_series: usize,
    /// Most points of the step grid (Loki refuses more than 11,000).
    pub max_points: usize,
    /// Most unwrapped samples held at once for `quantile_over_time`.
    pub max_samples: usize,
}

impl Default for EvalLimits {
    fn default() -> Self {
        EvalLimits {
            max_series: 500,
            max_points: 11_000,
            max_samples: 5_000_000,
        }
    }
}
