//! The `fjord-agent` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::config::{self, Overrides};

/// Exit code for bad configuration or usage (EX_USAGE).
pub use fjord_cli::EXIT_USAGE;

/// What `fjord-agent` says of itself.
pub const BINARY: fjord_cli::Binary = fjord_cli::Binary {
    name: "fjord-agent",
    version: env!("CARGO_PKG_VERSION"),
    about: "fjord's log-forwarding sidecar: follow, scrub, batch, ship.",
};

/// The `fjord-agent` command line.
pub type Cli = fjord_cli::Cli<Command>;

/// The clap command of `fjord-agent`, for man pages and completions.
pub fn command() -> clap::Command {
    Cli::command_for(&BINARY)
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Follow log files and ship them to the aggregator.
    Run(RunArgs),
    /// Load and validate the config and compile the rules, exactly as `run` does before it
    /// opens anything; print "config ok" or the error with its file:line:col (exit 64).
    /// Opens no port, file watch or state DB.
    CheckConfig(RunArgs),
    /// Report what left this pod, from the agent's ledger (read-only, safe next to a
    /// running agent); or export the ledger as JSON lines with --export.
    Audit(crate::audit::AuditArgs),
    /// Test, check or explain the PII redaction rules.
    #[command(subcommand)]
    Rules(crate::rules_cmd::RulesCmd),
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// TOML config file; flags override it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Glob of files to follow (repeatable), e.g. '/var/log/payment/*.log'.
    #[arg(long = "path", value_name = "GLOB")]
    pub paths: Vec<String>,
    /// Aggregator base URL, e.g. http://127.0.0.1:3100.
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// Directory of the state DB (checkpoints and ledger) [default: ./fjord-state].
    #[arg(long = "state", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Directory of team rule files; without it the baseline and eu-pii packs apply.
    #[arg(long = "rules", value_name = "DIR")]
    pub rules_dir: Option<PathBuf>,
    /// File holding the ingest token (else FJORD_TOKEN).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Address of /metrics, /healthz and /readyz [default: 127.0.0.1:9810].
    #[arg(long = "admin-listen", value_name = "ADDR")]
    pub admin_listen: Option<String>,
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run(a) => run_agent(a).await,
        Command::CheckConfig(a) => Ok(check_config(a)),
        Command::Audit(a) => Ok(crate::audit::run(a)),
        Command::Rules(cmd) => Ok(crate::rules_cmd::run(cmd)),
    }
}

/// Loads the config and compiles the rules; a problem is printed (with its file, line and
/// column) and becomes exit code 64.
fn load_checked(a: RunArgs) -> Result<(config::Config, fjord_rules::Redactor), ExitCode> {
    let cfg = config::load(
        a.config.as_deref(),
        Overrides {
            paths: a.paths,
            url: a.url,
            state_dir: a.state_dir,
            rules_dir: a.rules_dir,
            token_file: a.token_file,
            admin_listen: a.admin_listen,
        },
    )
    .map_err(|e| usage_error(&e))?;
    // Rules are compiled before anything is opened: a bad rule file (or a `hash` rule
    // without a key) is a start-up error that names the file, line and column.
    let redactor = crate::reload::build(cfg.rules_dir.as_deref(), cfg.hash_key.as_deref())
        .map_err(|e| usage_error(&e))?;
    Ok((cfg, redactor))
}

fn usage_error(e: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("fjord-agent: {e}");
    ExitCode::from(EXIT_USAGE)
}

/// `check-config`: what `run` checks before binding, and nothing more.
fn check_config(a: RunArgs) -> ExitCode {
    let config = a.config.clone();
    fjord_cli::check_config(
        config.as_deref(),
        load_checked(a).map(|(cfg, _)| cfg.deprecations),
    )
}

async fn run_agent(a: RunArgs) -> anyhow::Result<ExitCode> {
    let (cfg, redactor) = match load_checked(a) {
        Ok(v) => v,
        Err(code) => return Ok(code),
    };
    for d in &cfg.deprecations {
        tracing::warn!("{d}");
    }
    tracing::info!(rules = ?redactor.rule_names(), version = redactor.version(), url = %cfg.url, agent_id = %cfg.agent_id, "starting");
    let shutdown = CancellationToken::new();
    let sig = shutdown.clone();
    let signals = tokio::spawn(async move {
        fjord_cli::signal::terminated().await;
        tracing::info!("shutting down: flushing acknowledged work");
        sig.cancel();
    });
    let res = crate::pipeline::run(cfg, redactor, shutdown).await;
    signals.abort();
    res.map(|()| ExitCode::SUCCESS)
}
