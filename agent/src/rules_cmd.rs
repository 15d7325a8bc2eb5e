//! `fjord-agent rules test|check|explain`: thin command-line glue over
//! `fjord_rules::selftest`. Everything it prints goes to stdout/stderr of the rule author's
//! terminal, never to tracing logs.
//!
//! Exit codes: 0 all good; 1 the rules are invalid or an example failed; 64 bad usage (an
//! unreadable key file, unreadable stdin).

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand};
use fjord_rules::selftest::{self, SELFTEST_KEY};
use fjord_rules::{Redactor, RuleSet};

/// Exit code when the rules are invalid or an example fails.
pub const EXIT_RULES_FAILED: u8 = 1;

/// Exit code for bad usage (EX_USAGE).
use fjord_cli::EXIT_USAGE;

/// Work on the team rule files.
#[derive(Debug, Subcommand)]
pub enum RulesCmd {
    /// Run every example of the effective rule set and print a diff for each failure.
    ///
    /// Exits 1 when an example fails or the rules are invalid.
    Test(RulesArgs),
    /// Validate the rule files and report each problem as file:line:col and the reason.
    ///
    /// Exits 1 when the rules are invalid.
    Check(RulesArgs),
    /// Read log lines from stdin and show which rule fired where, with what action, and
    /// the scrubbed result. For trying rules on your own sample lines.
    Explain(RulesArgs),
}

/// Where the rules are.
#[derive(Debug, Args)]
pub struct RulesArgs {
    /// Directory of team rule files; without it the baseline and eu-pii packs apply.
    #[arg(long = "rules", value_name = "DIR")]
    pub rules_dir: Option<PathBuf>,
    /// Key for `hash` rules. Without it a public self-test key is used, so pseudonyms in
    /// the output differ from production (examples use `[HASH:<rule>:*]`).
    #[arg(long, value_name = "FILE", env = "FJORD_HASH_KEY_FILE")]
    pub hash_key_file: Option<PathBuf>,
}

/// Runs a `rules` subcommand.
pub fn run(cmd: RulesCmd) -> ExitCode {
    let (args, what) = match &cmd {
        RulesCmd::Test(a) => (a, "test"),
        RulesCmd::Check(a) => (a, "check"),
        RulesCmd::Explain(a) => (a, "explain"),
    };
    let key = match args.hash_key_file.as_deref().map(read_key).transpose() {
        Ok(k) => k,
        Err(msg) => {
            eprintln!("fjord-agent rules {what}: {msg}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let set = match fjord_rules::load_rule_set(args.rules_dir.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("fjord-agent rules {what}: {e}");
            return ExitCode::from(EXIT_RULES_FAILED);
        }
    };
    if let Some(at) = &set.baseline_disabled_at {
        eprintln!("fjord-agent rules {what}: WARNING: {at}: unsafe_disable_baseline = true: cards, tokens, API keys and passwords are NOT scrubbed");
    }
    let redactor = match Redactor::new(&set, Some(key.as_deref().unwrap_or(SELFTEST_KEY))) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("fjord-agent rules {what}: {e}");
            return ExitCode::from(EXIT_RULES_FAILED);
        }
    };
    match cmd {
        RulesCmd::Check(_) => check(&set, &redactor),
        RulesCmd::Test(_) => test(&set, key.as_deref()),
        RulesCmd::Explain(_) => explain(&redactor),
    }
}

fn read_key(path: &Path) -> Result<Vec<u8>, String> {
    let k = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(k.trim_ascii().to_vec())
}

fn check(set: &RuleSet, redactor: &Redactor) -> ExitCode {
    println!(
        "ok: {} rules, {} field rules, {} allow entries from {}; version {}",
        set.rules.len(),
        set.fields.len(),
        set.allow.len(),
        set.sources.join(", "),
        redactor.version()
    );
    print!("{}", selftest::allow_report(redactor));
    ExitCode::SUCCESS
}

fn test(set: &RuleSet, key: Option<&[u8]>) -> ExitCode {
    let report = match selftest::run_examples(set, key) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("fjord-agent rules test: {e}");
            return ExitCode::from(EXIT_RULES_FAILED);
        }
    };
    let mut out = std::io::stdout().lock();
    for f in &report.failures {
        let _ = writeln!(out, "{}", f.diff());
    }
    let _ = writeln!(
        out,
        "{} examples passed, {} failed",
        report.passed,
        report.failures.len()
    );
    if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_RULES_FAILED)
    }
}

fn explain(redactor: &Redactor) -> ExitCode {
    let stdin = std::io::stdin().lock();
    let mut out = std::io::stdout().lock();
    // The deliberate exceptions first, so a reader of the output knows what stays readable.
    let _ = write!(out, "{}", selftest::allow_report(redactor));
    for (i, line) in stdin.split(b'\n').enumerate() {
        let bytes = match line {
            Ok(b) => b,
            Err(e) => {
                eprintln!("fjord-agent rules explain: reading stdin: {e}");
                return ExitCode::from(EXIT_USAGE);
            }
        };
        let text = String::from_utf8_lossy(&bytes);
        let text = text.strip_suffix('\r').unwrap_or(&text);
        let _ = write!(out, "{}", selftest::explain_report(redactor, i + 1, text));
    }
    ExitCode::SUCCESS
}
