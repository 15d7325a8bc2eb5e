//! fjord's own diagnostic logs, set up the same way by every binary: to stderr, filtered by
//! `FJORD_LOG` (default `info`), as text or as one JSON object per line.
//!
//! Colour is used only when stderr is a terminal and `NO_COLOR` is unset or empty
//! (<https://no-color.org>), so a file, a pipe or a log collector never receives escape codes.
//! This crate only configures the subscriber; what is logged (never a log line's content) is up
//! to the callers.
//!
//! It also holds the two start-up conventions both binaries share: usage errors exit with 64
//! ([`parse_args`]), and `check-config` reports the same way ([`check_config`]); and the
//! process metrics both export ([`process`]).

// Unsafe code is fenced: only `process` (sysconf through libc) may use it, and every unsafe
// block says why it is sound (`// SAFETY:`).
#![deny(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks)]

// sysconf(3) through libc, for the clock tick and page size.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
pub mod process;

use std::io::IsTerminal;
use std::process::ExitCode;

/// Exit code for usage and configuration errors (EX_USAGE), in both binaries.
pub const EXIT_USAGE: u8 = 64;

/// Parses the command line. A usage error is printed and gives [`EXIT_USAGE`], not clap's
/// usual 2; `--help` and `--version` print and give 0.
pub fn parse_args<C: clap::Parser>() -> Result<C, ExitCode> {
    C::try_parse().map_err(|e| {
        let _ = e.print();
        ExitCode::from(if e.use_stderr() { EXIT_USAGE } else { 0 })
    })
}

/// The answer of `check-config`: `checked` is the outcome of the same checks the real command
/// runs before it starts anything (their errors already printed, with the exit code to give);
/// on success says which config passed.
pub fn check_config<T>(config: Option<&std::path::Path>, checked: Result<T, ExitCode>) -> ExitCode {
    match checked {
        Ok(_) => {
            let source = config.map_or_else(
                || "command-line flags".to_owned(),
                |p| p.display().to_string(),
            );
            println!("config ok: {source}");
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}

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
