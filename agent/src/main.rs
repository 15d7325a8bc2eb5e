//! `fjord-agent`: parse the command line, start tracing, run. Everything else is in the
//! library. Our own logs never contain log line content.

use std::process::ExitCode;

use clap::Parser;
use fjord_agent::cli::{self, Cli};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("FJORD_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match cli::run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("fjord-agent: {e:#}");
            ExitCode::FAILURE
        }
    }
}
