//! `fjord-agent`: parse the command line, start tracing, run. Everything else is in the
//! library. Our own logs never contain log line content.
//!
//! Usage errors exit with 64 (EX_USAGE), like bad configuration, not clap's default 2;
//! `--help` and `--version` exit 0.

use std::process::ExitCode;

use fjord_agent::cli;

#[tokio::main]
async fn main() -> ExitCode {
    fjord_cli::main(&cli::BINARY, cli::run).await
}
