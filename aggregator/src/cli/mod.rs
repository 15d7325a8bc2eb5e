//! The `fjord-aggregator` command line: clap definitions and the code behind each
//! subcommand. `main.rs` only parses, sets up tracing and calls [`run`].

mod query;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::config::{self, Overrides};
use crate::server::{self, AppState};
use crate::store::Store;

/// Exit code for bad configuration or usage (EX_USAGE).
pub const EXIT_USAGE: u8 = 64;

/// fjord's in-region log aggregator: stores log data locally in SQLite and answers
/// Loki-compatible queries.
#[derive(Debug, Parser)]
#[command(name = "fjord-aggregator", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the aggregator server.
    Serve(ServeArgs),
    /// Query stored lines with LogQL and print them in time order.
    Query(QueryArgs),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:3100].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Directory of the SQLite store [default: ./data].
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// TOML config file for everything else; flags override it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Declared region, served at /v1/info (e.g. eu-north-1).
    #[arg(long, value_name = "R")]
    pub region: Option<String>,
    /// Declared jurisdiction, served at /v1/info (e.g. EEA). Agents refuse "unset".
    #[arg(long, value_name = "J")]
    pub jurisdiction: Option<String>,
}

/// How `query` prints results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Aligned, human-readable: time, labels, line.
    Text,
    /// One JSON object per line: ts (ns), time, labels, line.
    Jsonl,
    /// The line only.
    Raw,
}

#[derive(Debug, Args)]
pub struct QueryArgs {
    /// LogQL query, e.g. '{team="payments"} |= "declined"'.
    #[arg(value_name = "LOGQL")]
    pub query: String,
    /// Aggregator URL.
    #[arg(
        long,
        env = "FJORD_URL",
        default_value = "http://127.0.0.1:3100",
        value_name = "URL"
    )]
    pub url: String,
    /// Look back this far from --to (or now), e.g. 15m, 1h, 7d.
    #[arg(long, value_name = "DURATION", conflicts_with = "from")]
    pub since: Option<String>,
    /// Start of the range: RFC 3339, Unix seconds or nanoseconds.
    #[arg(long, value_name = "TIME")]
    pub from: Option<String>,
    /// End of the range [default: now].
    #[arg(long, value_name = "TIME")]
    pub to: Option<String>,
    /// Most lines to print. Without --backward these are the oldest in the range.
    #[arg(long, default_value_t = 1000, value_name = "N")]
    pub limit: usize,
    /// Return the newest lines first-selected (still printed in time order).
    #[arg(long)]
    pub backward: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
    /// File holding a read token (else FJORD_TOKEN).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve(a) => serve(a).await,
        Command::Query(a) => query::run(a).await,
    }
}

async fn serve(a: ServeArgs) -> anyhow::Result<ExitCode> {
    let cfg = match config::load(
        a.config.as_deref(),
        Overrides {
            listen: a.listen,
            data_dir: a.data,
            region: a.region,
            jurisdiction: a.jurisdiction,
        },
    ) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("fjord-aggregator: {e}");
            return Ok(ExitCode::from(EXIT_USAGE));
        }
    };
    if cfg.info.jurisdiction == fjord_wire::info::UNSET {
        tracing::warn!("no jurisdiction declared; agents with the default residency guard will not ship here. Start with --jurisdiction EEA --region <region> (or set them in the config file)");
    }
    let data_dir = cfg.data_dir.clone();
    let store = tokio::task::spawn_blocking(move || Store::open(&data_dir))
        .await?
        .with_context(|| format!("opening the store in {}", cfg.data_dir.display()))?;
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("binding {}", cfg.listen))?;
    let state = Arc::new(AppState {
        store: Arc::new(store),
        info: cfg.info,
        ingest_permits: Arc::new(Semaphore::new(cfg.ingest_concurrency)),
        max_query_lines: cfg.max_query_lines,
    });
    let shutdown = CancellationToken::new();
    let signal = shutdown.clone();
    let mut server = tokio::spawn(server::run(listener, state, shutdown.clone()));
    tokio::select! {
        res = &mut server => { res??; return Ok(ExitCode::SUCCESS); }
        () = wait_for_signal() => {}
    }
    tracing::info!("shutting down");
    signal.cancel();
    match tokio::time::timeout(SHUTDOWN_GRACE, server).await {
        Ok(res) => res??,
        Err(_) => tracing::warn!("requests still running after the grace period; exiting"),
    }
    Ok(ExitCode::SUCCESS)
}

/// How long in-flight requests get to finish after SIGTERM/SIGINT.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
