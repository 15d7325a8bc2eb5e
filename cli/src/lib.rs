//! What both fjord binaries do at their edges, written once: the command line's shared flags
//! and exit codes, config files ([`config`]), fjord's own logs ([`log`]), the process
//! metrics both export ([`process`]) and the stop signals ([`signal`]). Each binary's `main` is [`main`] with its own CLI type and `run`.
//!
//! Conventions: usage and config errors exit with [`EXIT_USAGE`] (64), `--help` and
//! `--version` with 0; `check-config` reports the same way in both ([`check_config`]).

#![deny(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod config;
pub mod log;
// sysconf(3) through libc, for the clock tick and page size; every unsafe block says why it
// is sound (`// SAFETY:`).
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
pub mod process;
pub mod signal;

use std::fmt::Display;
use std::future::Future;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

pub use log::LogFormat;

/// Exit code for usage and configuration errors (EX_USAGE), in both binaries.
pub const EXIT_USAGE: u8 = 64;

/// What a binary says of itself on `--help` and `--version`.
#[derive(Debug, Clone, Copy)]
pub struct Binary {
    pub name: &'static str,
    pub version: &'static str,
    pub about: &'static str,
}

/// A fjord binary's command line: its subcommands `C` and the flags every subcommand shares
/// (`--log-format`). Each binary gives it its name and description with [`Binary`].
#[derive(Debug, clap::Parser)]
pub struct Cli<C: clap::Subcommand> {
    #[command(subcommand)]
    pub command: C,
    #[command(flatten)]
    pub log: LogArgs,
}

impl<C: clap::Subcommand> Cli<C> {
    /// The clap command of `bin` (for parsing, and for man pages and completions).
    pub fn command_for(bin: &Binary) -> clap::Command {
        <Self as clap::CommandFactory>::command()
            .name(bin.name)
            .bin_name(bin.name)
            .version(bin.version)
            .about(bin.about)
    }

    /// Parses the command line. A usage error is printed and gives [`EXIT_USAGE`], not
    /// clap's usual 2; `--help` and `--version` print and give 0.
    pub fn parse_for(bin: &Binary) -> Result<Self, ExitCode> {
        Self::command_for(bin)
            .try_get_matches()
            .and_then(|m| <Self as clap::FromArgMatches>::from_arg_matches(&m))
            .map_err(|e| {
                let _ = e.print();
                ExitCode::from(if e.use_stderr() { EXIT_USAGE } else { 0 })
            })
    }
}

/// A binary's `main`: parses the command line, starts fjord's logs in the format it asks
/// for, and runs. An error from `run` is printed with its causes, prefixed with the binary's
/// name, and exits 1.
pub async fn main<C, F, E>(bin: &Binary, run: impl FnOnce(Cli<C>) -> F) -> ExitCode
where
    C: clap::Subcommand,
    F: Future<Output = Result<ExitCode, E>>,
    E: Display,
{
    let cli = match Cli::<C>::parse_for(bin) {
        Ok(c) => c,
        Err(code) => return code,
    };
    log::init(cli.log.log_format);
    match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{}: {e:#}", bin.name);
            ExitCode::FAILURE
        }
    }
}

/// The `--log-format` flag of both binaries, global to every subcommand.
#[derive(Debug, Clone, clap::Args)]
pub struct LogArgs {
    /// Format of fjord's own logs on stderr (filter them with FJORD_LOG, e.g. debug).
    #[arg(
        long,
        global = true,
        value_enum,
        env = "FJORD_LOG_FORMAT",
        default_value_t = LogFormat::Text,
        value_name = "FORMAT"
    )]
    pub log_format: LogFormat,
}

/// The `--since/--from/--to` flags of the report and query commands.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TimeRangeArgs {
    /// Look back this far from --to (or now), e.g. 15m, 24h, 7d.
    #[arg(long, value_name = "DURATION", conflicts_with = "from")]
    pub since: Option<String>,
    /// Start of the range: RFC 3339 (2026-11-26T08:00:00Z), Unix seconds or nanoseconds.
    #[arg(long, value_name = "TIME")]
    pub from: Option<String>,
    /// End of the range, in the same forms [default: now].
    #[arg(long, value_name = "TIME")]
    pub to: Option<String>,
}

impl TimeRangeArgs {
    /// The inclusive range in Unix ns; see [`fjord_wire::clock::range`].
    pub fn resolve(
        &self,
        now_ns: i64,
        default_lookback: Option<Duration>,
    ) -> Result<(i64, i64), fjord_wire::clock::ClockError> {
        fjord_wire::clock::range(
            self.since.as_deref(),
            self.from.as_deref(),
            self.to.as_deref(),
            now_ns,
            default_lookback,
        )
    }
}

/// The answer of `check-config`: `checked` is the outcome of the same checks the real command
/// runs before it starts anything (their errors already printed, with the exit code to give);
/// on success prints each deprecated key the config used, then which config passed.
pub fn check_config(
    config: Option<&Path>,
    checked: Result<Vec<config::Deprecation>, ExitCode>,
) -> ExitCode {
    match checked {
        Ok(deprecations) => {
            for d in deprecations {
                println!("warning: {d}");
            }
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
