//! Agent configuration: an optional TOML file plus command-line flags (which win), checked
//! into a [`Config`] before any file is opened or connection made.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("{path}: cannot read config: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{location}: {reason}")]
    Parse { location: String, reason: String },
    #[error("invalid {field}: {reason}")]
    Invalid { field: &'static str, reason: String },
}

/// The config file; every field optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Glob patterns of files to follow, e.g. `/var/log/payment/*.log`.
    pub paths: Option<Vec<String>>,
    /// Aggregator base URL.
    pub url: Option<String>,
    /// Directory of the state DB (checkpoints, ledger); on the shared volume.
    pub state_dir: Option<PathBuf>,
    /// Directory of team rule files (`*.toml`); default packs apply without one.
    pub rules_dir: Option<PathBuf>,
    /// File holding the ingest bearer token.
    pub token_file: Option<PathBuf>,
    /// This agent's id in batch ids and ledger; default: the hostname (pod name).
    pub agent_id: Option<String>,
    /// Static labels added to every stream (e.g. team, namespace, pod, container).
    pub labels: Option<BTreeMap<String, String>>,
    /// Jurisdictions the agent may ship to.
    pub allowed_jurisdictions: Option<Vec<String>>,
    /// Ship a partly filled batch after this long.
    pub linger_ms: Option<u64>,
    /// Raw line bytes per batch.
    pub max_batch_bytes: Option<usize>,
    /// Lines per batch.
    pub max_batch_lines: Option<usize>,
    /// How often files are rescanned and re-read.
    pub poll_interval_ms: Option<u64>,
    /// Time given to flush batches on SIGTERM.
    pub shutdown_grace_ms: Option<u64>,
    /// zstd level for batches.
    pub zstd_level: Option<i32>,
}

/// Flag values; they override the file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub paths: Vec<String>,
    pub url: Option<String>,
    pub state_dir: Option<PathBuf>,
    pub rules_dir: Option<PathBuf>,
    pub token_file: Option<PathBuf>,
}

/// The checked configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub paths: Vec<String>,
    pub url: String,
    pub state_dir: PathBuf,
    pub rules_dir: Option<PathBuf>,
    pub token: Option<String>,
    pub agent_id: String,
    pub labels: BTreeMap<String, String>,
    pub allowed_jurisdictions: Vec<String>,
    pub linger: Duration,
    pub max_batch_bytes: usize,
    pub max_batch_lines: usize,
    pub poll_interval: Duration,
    pub shutdown_grace: Duration,
    pub zstd_level: i32,
}

fn invalid(field: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field,
        reason: reason.into(),
    }
}

/// Parses config text; errors carry `label:line:col`.
pub fn parse_file(label: &str, text: &str) -> Result<FileConfig, ConfigError> {
    toml::from_str(text).map_err(|e| {
        let location = match e.span() {
            Some(span) => {
                let before = &text[..span.start.min(text.len())];
                let line = before.matches('\n').count() + 1;
                let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
                format!("{label}:{line}:{col}")
            }
            None => label.to_owned(),
        };
        ConfigError::Parse {
            location,
            reason: e.message().trim_end().to_owned(),
        }
    })
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "fjord-agent".to_owned())
}

/// Reads the file (if any), applies flags and validates.
pub fn load(path: Option<&Path>, o: Overrides) -> Result<Config, ConfigError> {
    let f = match path {
        None => FileConfig::default(),
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Io {
                path: p.to_owned(),
                source,
            })?;
            parse_file(&p.display().to_string(), &text)?
        }
    };
    let paths = if o.paths.is_empty() {
        f.paths.unwrap_or_default()
    } else {
        o.paths
    };
    if paths.is_empty() {
        return Err(invalid(
            "paths",
            "give at least one --path GLOB (or `paths` in the config file)",
        ));
    }
    for p in &paths {
        globset::Glob::new(p).map_err(|e| invalid("paths", format!("{p:?}: {e}")))?;
        if !p.starts_with('/') && !p.starts_with('.') && Path::new(p).is_absolute() {
            return Err(invalid(
                "paths",
                format!("{p:?} must be an absolute or ./relative path"),
            ));
        }
    }
    let url = o
        .url
        .or(f.url)
        .ok_or_else(|| invalid("url", "give --url (or `url` in the config file)"))?;
    let parsed = reqwest::Url::parse(&url).map_err(|e| invalid("url", format!("{url:?}: {e}")))?;
    match parsed.scheme() {
        "https" => {}
        "http" => {
            let loopback = match parsed.host() {
                Some(url::Host::Ipv4(a)) => a.is_loopback(),
                Some(url::Host::Ipv6(a)) => a.is_loopback(),
                Some(url::Host::Domain(d)) => d == "localhost",
                None => false,
            };
            if !loopback {
                return Err(invalid(
                    "url",
                    "plain http is only allowed to a loopback address; use https",
                ));
            }
        }
        s => return Err(invalid("url", format!("scheme {s:?} is not http or https"))),
    }
    let token_file = o.token_file.or(f.token_file);
    let token = match token_file {
        Some(p) => {
            let t = std::fs::read_to_string(&p)
                .map_err(|e| invalid("token_file", format!("{}: {e}", p.display())))?;
            Some(t.trim().to_owned())
        }
        None => std::env::var("FJORD_TOKEN")
            .ok()
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty()),
    };
    let labels = f.labels.unwrap_or_default();
    for k in labels.keys() {
        if !fjord_wire::push::valid_label_name(k) || k == "file" {
            return Err(invalid(
                "labels",
                format!("{k:?} is not a usable label name"),
            ));
        }
    }
    let max_batch_bytes = f.max_batch_bytes.unwrap_or(1024 * 1024);
    if !(1024..=8 * 1024 * 1024).contains(&max_batch_bytes) {
        return Err(invalid(
            "max_batch_bytes",
            "must be between 1 KiB and 8 MiB",
        ));
    }
    let max_batch_lines = f.max_batch_lines.unwrap_or(10_000);
    if max_batch_lines == 0 {
        return Err(invalid("max_batch_lines", "must be at least 1"));
    }
    let zstd_level = f
        .zstd_level
        .unwrap_or(fjord_wire::codec::DEFAULT_ZSTD_LEVEL);
    if !(1..=19).contains(&zstd_level) {
        return Err(invalid("zstd_level", "must be between 1 and 19"));
    }
    Ok(Config {
        paths,
        url: url.trim_end_matches('/').to_owned(),
        state_dir: o
            .state_dir
            .or(f.state_dir)
            .unwrap_or_else(|| PathBuf::from("fjord-state")),
        rules_dir: o.rules_dir.or(f.rules_dir),
        token,
        agent_id: f.agent_id.unwrap_or_else(hostname),
        labels,
        allowed_jurisdictions: f
            .allowed_jurisdictions
            .unwrap_or_else(|| vec!["EEA".to_owned()]),
        linger: Duration::from_millis(f.linger_ms.unwrap_or(1000)),
        max_batch_bytes,
        max_batch_lines,
        poll_interval: Duration::from_millis(f.poll_interval_ms.unwrap_or(250).max(10)),
        shutdown_grace: Duration::from_millis(f.shutdown_grace_ms.unwrap_or(10_000)),
        zstd_level,
    })
}
