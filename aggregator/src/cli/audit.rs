//! `fjord-aggregator audit receipts|verify|scan|access`: the compliance reports, offline on the
//! data directory (opened read-only, so they can run next to a live server and never change
//! the evidence). Each prints text for people or JSON (`--output json`) for the archive.
//!
//! Exit codes: 0 clean; 1 findings (verify: anything missing, extra, altered, unreceipted or
//! corrupt; scan: any stored line matches a rule); 2 the audit could not be completed (the
//! store could not be read; scan: any chunk in range did not decode, which outranks matches);
//! 64 bad usage or input (flags, times, ledger file, rule files).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
use serde::Serialize;

use super::EXIT_USAGE;
use crate::audit::{self, AuditError, EvidenceError, Range};
use crate::keys::{PublicKey, Signer};
use crate::logql;
use fjord_wire::clock::now_ns;

/// Exit code when the audit found something.
pub const EXIT_FINDINGS: u8 = 1;
/// Exit code when the store could not be read to the end.
pub const EXIT_INCOMPLETE: u8 = 2;

/// How `audit verify` names the agents' ledgers stored on the aggregator.
const STORED_LEDGERS: &str = "the agents' ledgers shipped to the aggregator";

/// Key handed to the redactor so that rule sets with `hash` rules compile; the scan only
/// looks at where rules match, never at their output, so the key's value does not matter.
const SCAN_HASH_KEY: &[u8] = b"fjord-audit-scan: matching only, output unused";

/// Report format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    /// Readable text.
    Text,
    /// One pretty-printed JSON document, stable for archiving (fields are only ever added).
    Json,
}

/// `audit` subcommands.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// What arrived: one receipt per batch (batch id, agent, team, records, payload SHA-256,
    /// rule-set version, redaction counts the sender declared).
    Receipts(ReceiptsArgs),
    /// Check that every stored line is what arrived (per-batch entry digests, allowing for
    /// recorded erasures and retention), and with --ledger that every batch an agent had
    /// acknowledged has a receipt with the same record count and payload hash.
    Verify(VerifyArgs),
    /// Re-scan stored lines with a rule set; report per rule how many still match (matches
    /// masked). Exits 1 when anything matches, 2 when any chunk could not be read.
    Scan(ScanArgs),
    /// Who read what: every query, tail, label and series lookup and erasure.
    Access(AccessArgs),
    /// One report to file: what left which pod and where it went, what arrived and was
    /// redacted, whether the data and the signed audit chain verify, the PII re-scan, who read
    /// which team's logs, erasures, dead letters and losses. HTML (charts, prints to PDF),
    /// Markdown or JSON.
    Report(ReportArgs),
    /// What each agent's own ledger, shipped to the aggregator, says it sent, had refused
    /// (dead letters) and lost: it outlives the pod.
    Agents(AgentsArgs),
    /// Create an Ed25519 key to sign the audit chain with (the config's
    /// `[audit] signing_key_file`), and its public key for auditors.
    Keygen(KeygenArgs),
}

/// Flags every audit command takes.
#[derive(Debug, Clone, Args)]
pub struct CommonArgs {
    /// The aggregator's data directory (its data_dir); opened read-only.
    #[arg(long, value_name = "DIR", default_value = "./data")]
    pub data: PathBuf,
    /// The store instead of --data: sqlite://DIR or postgres://user@host:port/db (read-only:
    /// nothing is created or migrated).
    #[arg(long, env = "FJORD_STORE", value_name = "URL", hide_env_values = true)]
    pub store: Option<String>,
    /// The range of the report [default: everything].
    #[command(flatten)]
    pub range: fjord_cli::TimeRangeArgs,
    /// Report format.
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    pub output: ReportFormat,
}

/// `audit receipts` flags.
#[derive(Debug, Args)]
pub struct ReceiptsArgs {
    #[command(flatten)]
    pub common: CommonArgs,
}

/// `audit verify` flags.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// An agent's exported ledger (`fjord-agent audit --export FILE`, JSON lines) to
    /// cross-check against the receipts [default: the ledgers agents shipped to the
    /// aggregator, if any].
    #[arg(long, value_name = "FILE")]
    pub ledger: Option<PathBuf>,
    /// A public key the audit chain's roots may be signed with (PEM, or the base64 key of
    /// `/v1/info`); repeat it for keys of earlier rotations. Without one the chain's hashes
    /// are checked but not its signatures.
    #[arg(long = "public-key", value_name = "FILE")]
    pub public_keys: Vec<PathBuf>,
}

/// Format of `audit report`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportDocFormat {
    /// One self-contained page with charts and print CSS.
    Html,
    /// The same sections and tables in Markdown.
    Md,
    /// The archival form: every figure with the command that reproduces it.
    Json,
}

/// `audit report` flags.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The aggregator's data directory (its data_dir); opened read-only.
    #[arg(long, value_name = "DIR", default_value = "./data")]
    pub data: PathBuf,
    /// The store instead of --data: sqlite://DIR or postgres://… (read-only).
    #[arg(long, env = "FJORD_STORE", value_name = "URL", hide_env_values = true)]
    pub store: Option<String>,
    /// The range of the report [default: everything].
    #[command(flatten)]
    pub range: fjord_cli::TimeRangeArgs,
    /// Only this team.
    #[arg(long, value_name = "TEAM")]
    pub team: Option<String>,
    /// Report format.
    #[arg(long, value_enum, default_value_t = ReportDocFormat::Html)]
    pub format: ReportDocFormat,
    /// Public keys of the audit chain's signatures (repeatable); without one they are not
    /// checked, and the report says so.
    #[arg(long = "public-key", value_name = "FILE")]
    pub public_keys: Vec<PathBuf>,
    /// Rule directory for the PII re-scan [default: the built-in packs].
    #[arg(long, value_name = "DIR")]
    pub rules: Option<PathBuf>,
    /// Write the report to FILE instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// `audit agents` flags.
#[derive(Debug, Args)]
pub struct AgentsArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Only this team's agents.
    #[arg(long, value_name = "TEAM")]
    pub team: Option<String>,
}

/// `audit keygen` flags.
#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Where to write the private key (PKCS#8 PEM, mode 0600); never overwritten.
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,
    /// Where to write the public key (PEM) [default: the key's path with `.pub` appended].
    #[arg(long, value_name = "FILE")]
    pub public: Option<PathBuf>,
}

/// `audit scan` flags.
#[derive(Debug, Args)]
pub struct ScanArgs {
    /// Which lines: a LogQL selector with optional line filters, e.g. '{team="payments"}'
    /// [default: every stream].
    #[arg(value_name = "LOGQL")]
    pub query: Option<String>,
    #[command(flatten)]
    pub common: CommonArgs,
    /// Rule directory (team files, as the agent's rules_dir) [default: the built-in packs].
    #[arg(long, value_name = "DIR")]
    pub rules: Option<PathBuf>,
    /// Most example lines to print (masked).
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub examples: usize,
}

/// `audit access` flags.
#[derive(Debug, Args)]
pub struct AccessArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Only this token's requests.
    #[arg(long, value_name = "NAME")]
    pub token: Option<String>,
}

/// A usage or input problem: exit 64.
struct Usage(String);

fn range(c: &CommonArgs) -> Result<Range, Usage> {
    let (from_ns, to_ns) = c
        .range
        .resolve(now_ns(), None)
        .map_err(|e| Usage(e.to_string()))?;
    Ok(Range { from_ns, to_ns })
}

fn print<T: Serialize>(
    fmt: ReportFormat,
    report: &T,
    text: impl Fn(&T) -> String,
) -> Result<(), Usage> {
    let out = match fmt {
        ReportFormat::Text => text(report),
        ReportFormat::Json => {
            serde_json::to_string_pretty(report)
                .map_err(|e| Usage(format!("cannot serialise the report: {e}")))?
                + "\n"
        }
    };
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    // A closed pipe (`| head`) is not a finding.
    let _ = stdout.write_all(out.as_bytes());
    let _ = stdout.flush();
    Ok(())
}

/// Which errors are the operator's input rather than the store.
fn exit_for(e: &AuditError) -> u8 {
    match e {
        AuditError::Store(EvidenceError::NoStore(_) | EvidenceError::Schema { .. })
        | AuditError::LedgerIo { .. }
        | AuditError::Ledger { .. } => EXIT_USAGE,
        _ => EXIT_INCOMPLETE,
    }
}

/// Runs an `audit` subcommand on the blocking pool.
pub async fn run(cmd: AuditCommand) -> anyhow::Result<ExitCode> {
    let code = tokio::task::spawn_blocking(move || run_blocking(cmd)).await?;
    Ok(ExitCode::from(code))
}

fn run_blocking(cmd: AuditCommand) -> u8 {
    match run_inner(cmd) {
        Ok(code) => code,
        Err(Failure::Usage(Usage(msg))) => {
            eprintln!("fjord-aggregator audit: {msg}");
            EXIT_USAGE
        }
        Err(Failure::Audit(e)) => {
            eprintln!("fjord-aggregator audit: {e}");
            exit_for(&e)
        }
    }
}

enum Failure {
    Usage(Usage),
    Audit(AuditError),
}

impl From<Usage> for Failure {
    fn from(u: Usage) -> Self {
        Failure::Usage(u)
    }
}

impl From<AuditError> for Failure {
    fn from(e: AuditError) -> Self {
        Failure::Audit(e)
    }
}

/// The store an audit reads: `--store`, else `--data`.
fn open(c: &CommonArgs) -> Result<audit::Evidence, Failure> {
    use crate::config::StoreLocation;
    match &c.store {
        None => Ok(audit::open(&c.data)?),
        Some(url) => match StoreLocation::parse(url).map_err(|e| Usage(format!("--store: {e}")))? {
            StoreLocation::Sqlite(dir) => Ok(audit::open(&dir)?),
            StoreLocation::Postgres(url) => {
                Ok(audit::Evidence::open_postgres(&url).map_err(AuditError::from)?)
            }
        },
    }
}

fn run_inner(cmd: AuditCommand) -> Result<u8, Failure> {
    match cmd {
        AuditCommand::Keygen(a) => {
            let public_path = a.public.clone().unwrap_or_else(|| {
                let mut p = a.key.clone().into_os_string();
                p.push(".pub");
                PathBuf::from(p)
            });
            let signer = Signer::generate().map_err(|e| Usage(e.to_string()))?;
            let public = signer.public();
            if public_path.exists() {
                return Err(Usage(format!(
                    "{} exists; refusing to overwrite a key",
                    public_path.display()
                ))
                .into());
            }
            signer.save(&a.key).map_err(|e| Usage(e.to_string()))?;
            std::fs::write(&public_path, public.pem())
                .map_err(|e| Usage(format!("{}: {e}", public_path.display())))?;
            println!(
                "key {} written to {} (private) and {} (public)",
                signer.key_id(),
                a.key.display(),
                public_path.display()
            );
            Ok(0)
        }
        AuditCommand::Report(a) => {
            let common = CommonArgs {
                data: a.data.clone(),
                store: a.store.clone(),
                range: a.range.clone(),
                output: ReportFormat::Json,
            };
            let r = range(&common)?;
            let keys = a
                .public_keys
                .iter()
                .map(|p| PublicKey::load(p))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| Usage(e.to_string()))?;
            let set = fjord_rules::load_rule_set(a.rules.as_deref())
                .map_err(|e| Usage(format!("rules: {e}")))?;
            let redactor = fjord_rules::Redactor::new(&set, Some(SCAN_HASH_KEY))
                .map_err(|e| Usage(format!("rules: {e}")))?;
            let store = open(&common)?;
            let mut flags = match &a.store {
                Some(_) => " --store URL".to_owned(),
                None => format!(" --data {}", a.data.display()),
            };
            if r.from_ns > 0 {
                flags.push_str(&format!(
                    " --from {}",
                    fjord_wire::clock::format_ns(r.from_ns)
                ));
            }
            if r.to_ns < i64::MAX {
                flags.push_str(&format!(" --to {}", fjord_wire::clock::format_ns(r.to_ns)));
            }
            let report = audit::compliance_report(
                &store,
                &audit::ReportInput {
                    range: r,
                    team: a.team.as_deref(),
                    keys: &keys,
                    redactor: &redactor,
                    flags,
                    now_ns: now_ns(),
                },
            )?;
            let text = match a.format {
                ReportDocFormat::Html => audit::render_html(&report),
                ReportDocFormat::Md => audit::render_md(&report),
                ReportDocFormat::Json => {
                    serde_json::to_string_pretty(&report)
                        .map_err(|e| Usage(format!("cannot serialise the report: {e}")))?
                        + "\n"
                }
            };
            match &a.out {
                Some(path) => std::fs::write(path, text)
                    .map_err(|e| Usage(format!("{}: {e}", path.display())))?,
                None => {
                    use std::io::Write;
                    let mut stdout = std::io::stdout().lock();
                    let _ = stdout.write_all(text.as_bytes());
                    let _ = stdout.flush();
                }
            }
            // Like verify: findings (integrity, PII still stored) exit 1.
            Ok(
                if report.integrity.data.ok && report.pii_scan.data.lines_matching == 0 {
                    0
                } else {
                    EXIT_FINDINGS
                },
            )
        }
        AuditCommand::Agents(a) => {
            let r = range(&a.common)?;
            let store = open(&a.common)?;
            let report = audit::agents(&store, r, a.team.as_deref())?;
            print(a.common.output, &report, audit::render_agents)?;
            Ok(0)
        }
        AuditCommand::Receipts(a) => {
            let r = range(&a.common)?;
            let store = open(&a.common)?;
            let report = audit::receipts(&store, r)?;
            print(a.common.output, &report, audit::render_receipts)?;
            Ok(0)
        }
        AuditCommand::Verify(a) => {
            let r = range(&a.common)?;
            let ledger = match &a.ledger {
                Some(p) => Some((p.clone(), audit::read_ledger(p)?)),
                None => None,
            };
            let keys = a
                .public_keys
                .iter()
                .map(|p| PublicKey::load(p))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| Usage(e.to_string()))?;
            let store = open(&a.common)?;
            // Without a ledger file, the ledgers agents shipped to the aggregator.
            let stored = match &ledger {
                Some(_) => Vec::new(),
                None => audit::stored_ledger(&store, Range::ALL)?.0,
            };
            let ledger = match &ledger {
                Some((p, rows)) => Some((p.as_path(), rows.as_slice())),
                None if stored.is_empty() => None,
                None => Some((std::path::Path::new(STORED_LEDGERS), stored.as_slice())),
            };
            let report = audit::verify(&store, r, ledger, &keys)?;
            print(a.common.output, &report, audit::render_verify)?;
            Ok(if report.ok { 0 } else { EXIT_FINDINGS })
        }
        AuditCommand::Scan(a) => {
            let r = range(&a.common)?;
            let query = match &a.query {
                Some(q) => {
                    let parsed =
                        logql::parse(q).map_err(|e| Usage(format!("the LogQL query: {e}")))?;
                    // A scan proves what is stored: parsers and label filters would hide lines.
                    if parsed.has_pipeline() {
                        return Err(Usage(
                            "the LogQL query: an audit scan takes a selector and plain line filters only".into(),
                        )
                        .into());
                    }
                    Some((q.clone(), parsed))
                }
                None => None,
            };
            let set = fjord_rules::load_rule_set(a.rules.as_deref())
                .map_err(|e| Usage(format!("rules: {e}")))?;
            let redactor = fjord_rules::Redactor::new(&set, Some(SCAN_HASH_KEY))
                .map_err(|e| Usage(format!("rules: {e}")))?;
            let store = open(&a.common)?;
            let report = audit::scan(
                &store,
                &redactor,
                query.as_ref().map(|(t, q)| (t.as_str(), q)),
                r,
                a.examples,
            )?;
            print(a.common.output, &report, audit::render_scan)?;
            // An unreadable chunk outranks matches: a clean-looking count over a damaged
            // store proves nothing, and the matches are reported all the same.
            Ok(if !report.complete() {
                EXIT_INCOMPLETE
            } else if report.lines_matching > 0 {
                EXIT_FINDINGS
            } else {
                0
            })
        }
        AuditCommand::Access(a) => {
            let r = range(&a.common)?;
            let store = open(&a.common)?;
            let report = audit::access(&store, r, a.token.as_deref())?;
            print(a.common.output, &report, audit::render_access)?;
            Ok(0)
        }
    }
}
