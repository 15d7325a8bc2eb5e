//! fjord's own diagnostic logs, set up the same way by every binary: to stderr, filtered by
//! `FJORD_LOG` (default `info`), as text or as one JSON object per line.
//!
//! Colour is used only when stderr is a terminal and `NO_COLOR` is unset or empty
//! (<https://no-color.org>), so a file, a pipe or a log collector never receives escape codes.
//! This module only configures the subscriber; what is logged (never a log line's content) is
//! up to the callers.

use std::io::IsTerminal;

/// The environment variable holding the filter directives, e.g. `info,fjord_agent=debug`.
pub const FILTER_ENV: &str = "FJORD_LOG";

/// The format of fjord's own logs on stderr.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines, coloured only on a terminal.
    #[default]
    Text,
    /// One JSON object per line: timestamp, level, target and fields.
    Json,
}

/// Whether text logs get ANSI colour: only on a terminal, and never when `NO_COLOR` holds a
/// non-empty value.
pub fn use_colour(is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    is_terminal && no_color.is_none_or(|v| v.is_empty())
}

/// Installs the global subscriber writing to stderr. Call once, at the start of `main`.
pub fn init(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env(FILTER_ENV)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => {
            let colour = use_colour(
                std::io::stderr().is_terminal(),
                std::env::var_os("NO_COLOR").as_deref(),
            );
            builder.with_ansi(colour).init();
        }
        // Fields stay at the top level's `fields` object; spans would add per-line noise.
        LogFormat::Json => builder
            .json()
            .with_current_span(false)
            .with_span_list(false)
            .init(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        let cases: &[(bool, Option<&str>, bool)] = &[
            (true, None, true),
            (true, Some(""), true),
            (true, Some("1"), false),
            (true, Some("false"), false),
            (false, None, false),
            (false, Some(""), false),
            (false, Some("1"), false),
        ];
        for &(tty, no_color, want) in cases {
            assert_eq!(
                use_colour(tty, no_color.map(OsStr::new)),
                want,
                "is_terminal={tty} NO_COLOR={no_color:?}"
            );
        }
    }
}
