//! The `fjord-aggregator` command line: clap definitions and the code behind each
//! subcommand. `main.rs` only parses, sets up tracing and calls [`run`].
//!
//! Query commands (`query`, `tail`, `labels`, `stats`, `erase`) talk to a server over HTTP
//! (`--url`/`FJORD_URL`, token from `--token-file` or `FJORD_TOKEN`, an https server verified
//! with `--ca-file`/`FJORD_CA_FILE` on top of the public roots); `retention run` and
//! `erase --data` work offline on the data directory, coordinated with a running server by
//! SQLite's locks; `audit …` reads the data directory read-only. Bad configuration or usage
//! exits with 64.

pub mod audit;
mod client;
mod offline;
mod query;
mod tail;
mod token;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use tokio_util::sync::CancellationToken;

use crate::config::{self, Overrides, StoreLocation};
use crate::server::{self, AppState};
use crate::store::postgres::PgDb;
use crate::store::{Db, Store, StoreError};

/// Exit code for bad configuration or usage (EX_USAGE).
pub use fjord_cli::EXIT_USAGE;

/// What `fjord-aggregator` says of itself.
pub const BINARY: fjord_cli::Binary = fjord_cli::Binary {
    name: "fjord-aggregator",
    version: env!("CARGO_PKG_VERSION"),
    about: "fjord's in-region log aggregator: stores log data locally in SQLite and answers Loki-compatible queries.",
};

/// The `fjord-aggregator` command line.
pub type Cli = fjord_cli::Cli<Command>;

/// The clap command of `fjord-aggregator`, for man pages and completions.
pub fn command() -> clap::Command {
    Cli::command_for(&BINARY)
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the aggregator server.
    Serve(ServeArgs),
    /// Load and validate the config (with the serve flags), exactly as `serve` does before it
    /// opens the store; print "config ok" or the error with its file:line:col (exit 64).
    /// Opens no port and no store.
    CheckConfig(ServeArgs),
    /// Query stored lines with LogQL and print them in time order.
    Query(QueryArgs),
    /// Follow new lines live (over the /tail WebSocket), reconnecting when the server goes away.
    Tail(TailArgs),
    /// List label names, or the values of one label.
    Labels(LabelsArgs),
    /// Lines and bytes stored per team, stream and day.
    Stats(StatsArgs),
    /// Erase the lines matching a selector and filter (GDPR right to erasure).
    Erase(EraseArgs),
    /// Retention: delete expired lines and reclaim disk space.
    #[command(subcommand)]
    Retention(RetentionCommand),
    /// Compliance audit, offline on the data directory or a read-only connection: receipts,
    /// verify (digests, agents' ledgers, the signed audit chain), scan (stored lines against
    /// PII rules), access (who read what), agents (their shipped ledgers), report (all of it
    /// in one document), keygen (the audit chain's signing key).
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Token helpers: hash a token for the config, or make a new one.
    #[command(subcommand)]
    Token(TokenCommand),
}

/// `serve` flags.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:3100].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Directory of the SQLite store [default: ./data].
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// The store: sqlite://DIR, or postgres://user@host:port/db?sslmode=require for
    /// replicas over PostgreSQL (then --data is not needed).
    #[arg(long, env = "FJORD_STORE", value_name = "URL", hide_env_values = true)]
    pub store: Option<String>,
    /// TOML config file for everything else; flags override it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Declared region, served at /v1/info (e.g. eu-north-1).
    #[arg(long, value_name = "R")]
    pub region: Option<String>,
    /// Declared jurisdiction, served at /v1/info (e.g. EEA). Agents refuse "unset".
    #[arg(long, value_name = "J")]
    pub jurisdiction: Option<String>,
    /// Serve HTTPS with this PEM certificate chain (server certificate first); reloaded when
    /// the file changes. Needs --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Require client certificates signed by a CA in this PEM file (mTLS), in addition to
    /// tokens. Needs --tls-cert.
    #[arg(long, value_name = "FILE")]
    pub tls_client_ca: Option<PathBuf>,
}

/// Where a client command finds the server and its token.
#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    /// Aggregator URL.
    #[arg(
        long,
        env = "FJORD_URL",
        default_value = "http://127.0.0.1:3100",
        value_name = "URL"
    )]
    pub url: String,
    /// File holding the token (else FJORD_TOKEN).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    #[command(flatten)]
    pub tls: TlsClientArgs,
}

/// How a client command verifies an https server, and proves who it is to one that asks.
#[derive(Debug, Clone, Default, Args)]
pub struct TlsClientArgs {
    /// PEM file with the CA certificate(s) that sign the server's certificate, trusted in
    /// addition to the public roots (https:// URLs only).
    #[arg(long, env = "FJORD_CA_FILE", value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate, for a server started with --tls-client-ca. Needs --client-key.
    #[arg(
        long,
        env = "FJORD_CLIENT_CERT",
        value_name = "FILE",
        requires = "client_key"
    )]
    pub client_cert: Option<PathBuf>,
    /// The PEM private key of --client-cert.
    #[arg(
        long,
        env = "FJORD_CLIENT_KEY",
        value_name = "FILE",
        requires = "client_cert"
    )]
    pub client_key: Option<PathBuf>,
}

/// How `query` and `tail` print lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Aligned, human-readable: time, labels, line.
    Text,
    /// One JSON object per line: ts (ns), time, labels, line.
    Jsonl,
    /// The line only (for a metric query, the value only).
    Raw,
    /// The server's JSON answer as it is (`tail`: as jsonl).
    Json,
}

/// `query` flags.
#[derive(Debug, Args)]
pub struct QueryArgs {
    /// LogQL query, e.g. '{team="payments"} |= "declined"', or a metric query such as
    /// 'sum by (level) (count_over_time({team="payments"} | json [5m]))', printed as a table.
    #[arg(value_name = "LOGQL")]
    pub query: String,
    #[command(flatten)]
    pub client: ClientArgs,
    /// Step between the points of a metric query, e.g. 1m [default: the server's, (to - from) / 250].
    #[arg(long, value_name = "DURATION")]
    pub step: Option<String>,
    /// The range to search [default: the last hour].
    #[command(flatten)]
    pub range: fjord_cli::TimeRangeArgs,
    /// Most lines to print: the newest in the range (with --forward, the oldest).
    #[arg(long, default_value_t = 1000, value_name = "N")]
    pub limit: usize,
    /// Select and print the newest lines first, as logcli does (the default).
    #[arg(long, conflicts_with = "forward")]
    pub backward: bool,
    /// Select the oldest lines of the range and print them oldest first.
    #[arg(long)]
    pub forward: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

/// `tail` flags.
#[derive(Debug, Args)]
pub struct TailArgs {
    /// LogQL query, e.g. '{team="payments"} |= "declined"'.
    #[arg(value_name = "LOGQL")]
    pub query: String,
    #[command(flatten)]
    pub client: ClientArgs,
    /// First print the lines of this last stretch, e.g. 5m (at most --limit of them).
    #[arg(long, value_name = "DURATION", default_value = "0s")]
    pub since: String,
    /// Most lines printed from --since before following.
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub limit: usize,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
    /// Stop after this many lines (for scripts and tests).
    #[arg(long, value_name = "N", hide = true)]
    pub max_lines: Option<u64>,
}

/// `labels` flags.
#[derive(Debug, Args)]
pub struct LabelsArgs {
    /// A label name: print its values instead of the names.
    #[arg(value_name = "NAME")]
    pub name: Option<String>,
    #[command(flatten)]
    pub client: ClientArgs,
    /// Only streams with lines in this last stretch.
    #[arg(long, value_name = "DURATION", default_value = "24h")]
    pub since: String,
    /// Only streams matching this selector, e.g. '{namespace="shop"}'.
    #[arg(long, value_name = "LOGQL")]
    pub query: Option<String>,
}

/// How `stats` groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StatsBy {
    Team,
    Stream,
    Day,
}

/// `stats` flags.
#[derive(Debug, Args)]
pub struct StatsArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Grouping; repeat for several tables [default: team].
    #[arg(long, value_enum, value_name = "BY")]
    pub by: Vec<StatsBy>,
    /// Print the server's JSON instead of tables.
    #[arg(long)]
    pub json: bool,
}

/// `erase` flags.
#[derive(Debug, Args)]
pub struct EraseArgs {
    /// Stream selector, e.g. '{team="payments"}'.
    #[arg(value_name = "SELECTOR")]
    pub selector: String,
    /// Erase lines containing this text (repeat: lines containing all of them).
    #[arg(long, value_name = "TEXT", required_unless_present = "metadata")]
    pub filter: Vec<String>,
    /// Erase entries whose structured metadata (or stream label) NAME is VALUE, e.g.
    /// `user_id=4711` (repeat: all of them).
    #[arg(long, value_name = "NAME=VALUE")]
    pub metadata: Vec<String>,
    /// Start of the range [default: the beginning].
    #[arg(long, value_name = "TIME")]
    pub from: Option<String>,
    /// End of the range [default: now].
    #[arg(long, value_name = "TIME")]
    pub to: Option<String>,
    /// Count the lines that would be erased; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Who is erasing, for the erasure log [default: $USER].
    #[arg(long, value_name = "NAME")]
    pub operator: Option<String>,
    /// Work offline on this data directory instead of asking a server.
    #[arg(long, value_name = "DIR", conflicts_with = "url")]
    pub data: Option<PathBuf>,
    /// Aggregator URL (needs an admin token).
    #[arg(long, env = "FJORD_URL", value_name = "URL")]
    pub url: Option<String>,
    /// File holding an admin token (else FJORD_TOKEN).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    #[command(flatten)]
    pub tls: TlsClientArgs,
}

/// `retention` subcommands.
#[derive(Debug, Subcommand)]
pub enum RetentionCommand {
    /// Apply the retention policy now, offline on the data directory (a running server keeps
    /// serving; SQLite's locks serialise the two).
    Run(RetentionArgs),
}

/// `retention run` flags.
#[derive(Debug, Args)]
pub struct RetentionArgs {
    /// Data directory [default: data_dir of --config, else ./data].
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// The server's config file, for [retention].
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// `token` subcommands.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Read a token from stdin and print its SHA-256, for `sha256 = "…"` in [[token]].
    Hash,
    /// Generate a random token; print it once, with the [[token]] entry for the config.
    New(TokenNewArgs),
}

/// `token new` flags.
#[derive(Debug, Args)]
pub struct TokenNewArgs {
    /// Token name, e.g. payments-ingest.
    #[arg(long, value_name = "NAME")]
    pub name: String,
    /// Team the token pushes as or reads (optional for admin).
    #[arg(long, value_name = "TEAM")]
    pub team: Option<String>,
    /// Role.
    #[arg(long, value_name = "ROLE", value_parser = ["ingest", "read", "admin"])]
    pub role: String,
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve(a) => serve(a).await,
        Command::CheckConfig(a) => Ok(check_config(a)),
        Command::Query(a) => query::run(a).await,
        Command::Tail(a) => tail::run(a).await,
        Command::Labels(a) => query::labels(a).await,
        Command::Stats(a) => query::stats(a).await,
        Command::Erase(a) => offline::erase(a).await,
        Command::Retention(RetentionCommand::Run(a)) => offline::retention(a).await,
        Command::Audit(a) => audit::run(a).await,
        Command::Token(TokenCommand::Hash) => token::hash(),
        Command::Token(TokenCommand::New(a)) => token::new(a),
    }
}

/// Loads and validates the serve config; a problem is printed (with its file, line and
/// column where it has one) and becomes exit code 64.
fn load_checked(a: ServeArgs) -> Result<config::ServeConfig, ExitCode> {
    config::load(
        a.config.as_deref(),
        Overrides {
            listen: a.listen,
            data_dir: a.data,
            store: a.store,
            region: a.region,
            jurisdiction: a.jurisdiction,
            tls_cert: a.tls_cert,
            tls_key: a.tls_key,
            tls_client_ca: a.tls_client_ca,
        },
    )
    .map_err(|e| {
        eprintln!("fjord-aggregator: {e}");
        ExitCode::from(EXIT_USAGE)
    })
}

/// `check-config`: what `serve` checks before opening the store, and nothing more.
fn check_config(a: ServeArgs) -> ExitCode {
    let config = a.config.clone();
    fjord_cli::check_config(config.as_deref(), load_checked(a).map(|c| c.deprecations))
}

async fn serve(a: ServeArgs) -> anyhow::Result<ExitCode> {
    let cfg = match load_checked(a) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    for d in &cfg.deprecations {
        tracing::warn!("{d}");
    }
    if cfg.info.jurisdiction == fjord_wire::info::UNSET {
        tracing::warn!("no jurisdiction declared; agents with the default residency guard will not ship here. Start with --jurisdiction EEA --region <region> (or set them in the config file)");
    }
    let location = cfg.store.clone();
    let opened = tokio::task::spawn_blocking(move || match location {
        StoreLocation::Sqlite(dir) => Store::open(&dir),
        StoreLocation::Postgres(url) => Store::over(Db::Postgres(PgDb::connect(&url)?)),
    })
    .await?;
    let store = match (opened, &cfg.store) {
        (Ok(store), _) => store,
        (Err(e), StoreLocation::Sqlite(dir)) => {
            return Err(
                anyhow::Error::new(e).context(format!("opening the store in {}", dir.display()))
            )
        }
        // A database that is wrong, unreachable, too new or read-only: say what to do.
        (Err(e), StoreLocation::Postgres(_)) => {
            eprintln!(
                "fjord-aggregator: the store {}: {e}{}",
                cfg.store.redacted(),
                store_hint(&e)
            );
            return Ok(ExitCode::from(64));
        }
    };
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("binding {}", cfg.listen))?;
    let shutdown = CancellationToken::new();
    let state = Arc::new(AppState::new(Arc::new(store), &cfg, shutdown.clone()));
    let mut server = tokio::spawn(server::run(listener, state, cfg));
    tokio::select! {
        res = &mut server => { res??; return Ok(ExitCode::SUCCESS); }
        () = fjord_cli::signal::terminated() => {}
    }
    tracing::info!("shutting down");
    shutdown.cancel();
    match tokio::time::timeout(SHUTDOWN_GRACE, server).await {
        Ok(res) => res??,
        Err(_) => tracing::warn!("requests still running after the grace period; exiting"),
    }
    Ok(ExitCode::SUCCESS)
}

/// What to do about a PostgreSQL store that would not open.
fn store_hint(e: &StoreError) -> &'static str {
    match e {
        StoreError::Unavailable(_) => {
            "\nCheck the host, port and credentials in the URL, and that PostgreSQL accepts connections from here."
        }
        StoreError::TooNew { .. } => {
            "\nA newer fjord-aggregator migrated this database; run that version (or newer)."
        }
        StoreError::Postgres(_) => {
            "\nCheck that the user may create tables in the database (the aggregator creates its schema on start)."
        }
        _ => "",
    }
}

/// How long in-flight requests get to finish after SIGTERM/SIGINT.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(10);
