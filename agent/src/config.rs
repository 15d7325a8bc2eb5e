//! Agent configuration: an optional TOML file plus command-line flags (which win), checked
//! into a [`Config`] before any file is opened or connection made.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use fjord_cli::config::{invalid, ranged, DurationKey, Unit};
pub use fjord_cli::config::{ConfigError, Deprecation};

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
    /// Ship a partly filled batch after this long, e.g. `"250ms"`.
    pub linger: Option<String>,
    /// Deprecated: the same as `linger`, as an integer.
    pub linger_ms: Option<u64>,
    /// Raw line bytes per batch.
    pub max_batch_bytes: Option<usize>,
    /// Lines per batch.
    pub max_batch_lines: Option<usize>,
    /// How often files are rescanned and re-read, e.g. `"250ms"`.
    pub poll_interval: Option<String>,
    /// Deprecated: the same as `poll_interval`, as an integer.
    pub poll_interval_ms: Option<u64>,
    /// The least time between two read rounds started by file events, e.g. `"100ms"`.
    pub min_read_interval: Option<String>,
    /// Deprecated: the same as `min_read_interval`, as an integer.
    pub min_read_interval_ms: Option<u64>,
    /// Time given to flush batches on SIGTERM, e.g. `"10s"`.
    pub shutdown_grace: Option<String>,
    /// Deprecated: the same as `shutdown_grace`, as an integer.
    pub shutdown_grace_ms: Option<u64>,
    /// zstd level for batches: 1–19, or a fast level −1 to −7 (less CPU, more bytes sent).
    pub zstd_level: Option<i32>,
    /// Glob patterns of files never to follow, even when `paths` matches them.
    pub exclude: Option<Vec<String>>,
    /// Where to start in files already present at the agent's first start:
    /// `beginning` (default) or `end`. Files that appear later are always read from the start.
    pub read_from: Option<ReadFrom>,
    /// Longest line kept; longer lines are cut with a marker and the rest skipped.
    pub max_line_bytes: Option<usize>,
    /// A last line without a newline is shipped after waiting this long for the newline,
    /// e.g. `"5s"`.
    pub partial_line_flush: Option<String>,
    /// Deprecated: the same as `partial_line_flush`, as an integer.
    pub partial_line_flush_ms: Option<u64>,
    /// Multiline records: the first entry whose `path` glob matches a file applies to it.
    pub multiline: Option<Vec<MultilineFile>>,
    /// Most files kept open at once; idle files read to their end are closed first.
    pub max_open_files: Option<usize>,
    /// How often the directories are walked for new files (the watcher is faster), e.g.
    /// `"1s"`.
    pub rescan_interval: Option<String>,
    /// Deprecated: the same as `rescan_interval`, as an integer.
    pub rescan_interval_ms: Option<u64>,
    /// Checkpoints of files gone for longer than this are forgotten, e.g. `"7d"`.
    pub checkpoint_ttl: Option<String>,
    /// Deprecated: the same as `checkpoint_ttl`, as an integer.
    pub checkpoint_ttl_hours: Option<u64>,
    /// Batches formed and waiting for a send slot.
    pub queue_batches: Option<usize>,
    /// Batches being sent at once.
    pub max_in_flight: Option<usize>,
    /// Raw bytes held in partly built batches across all files.
    pub max_building_bytes: Option<usize>,
    /// Address of the `/metrics`, `/healthz` and `/readyz` endpoints.
    pub admin_listen: Option<String>,
    /// Allow plain http to a non-loopback aggregator (the network must be trusted).
    pub allow_insecure_http: Option<bool>,
    /// PEM file with the CA certificate(s) that sign the aggregator's certificate.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate, for an aggregator that requires one (mTLS); needs
    /// `client_key_file`.
    pub client_cert_file: Option<PathBuf>,
    /// The PEM private key of `client_cert_file` (a Kubernetes Secret); never shipped.
    pub client_key_file: Option<PathBuf>,
    /// Host names (or IPs) the agent may ship to; empty allows any host of `url`.
    pub allowed_hosts: Option<Vec<String>>,
    /// File holding the team's key for `hash` rules (a Kubernetes Secret).
    pub hash_key_file: Option<PathBuf>,
    /// Ledger rows older than this are removed, e.g. `"90d"`.
    pub ledger_retention: Option<String>,
    /// Deprecated: the same as `ledger_retention`, as an integer.
    pub ledger_retention_days: Option<u64>,
    /// Fail `/readyz` while the aggregator is unreachable or refused by the residency guard
    /// (default false: readiness reflects only the agent's own health).
    pub ready_requires_shipping: Option<bool>,
    /// `/readyz` fails when the state directory's filesystem is at least this full (%).
    pub disk_full_percent: Option<u8>,
    /// A warning is logged when a log directory's filesystem is at least this full (%).
    pub disk_warn_percent: Option<u8>,
    /// Follow symlinks that resolve outside the roots of `paths` (default false: refused
    /// and counted, so an app container cannot point the agent at files only it can read).
    pub follow_symlinks_outside: Option<bool>,
}

/// Where to start reading files that exist at the agent's first start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReadFrom {
    #[default]
    Beginning,
    End,
}

/// Multiline settings for the files one glob matches.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MultilineFile {
    /// Glob of the files this applies to.
    pub path: String,
    /// A regex that matches the first line of a record (e.g. a timestamp at line start);
    /// lines that do not match are joined to the record before them with `\n`.
    pub start_pattern: String,
    /// A record is complete when no continuation line arrived for this long, e.g. `"1s"`.
    pub timeout: Option<String>,
    /// Deprecated: the same as `timeout`, as an integer.
    pub timeout_ms: Option<u64>,
    /// Most lines in one record; a longer record is split.
    pub max_lines: Option<usize>,
}

/// Checked multiline settings.
#[derive(Debug, Clone)]
pub struct Multiline {
    pub glob: globset::GlobMatcher,
    pub start: regex::Regex,
    pub timeout: Duration,
    pub max_lines: usize,
}

/// Flag values; they override the file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub paths: Vec<String>,
    pub url: Option<String>,
    pub state_dir: Option<PathBuf>,
    pub rules_dir: Option<PathBuf>,
    pub token_file: Option<PathBuf>,
    pub admin_listen: Option<String>,
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
    pub min_read_interval: Duration,
    pub shutdown_grace: Duration,
    pub zstd_level: i32,
    pub exclude: Vec<String>,
    pub read_from: ReadFrom,
    pub max_line_bytes: usize,
    pub partial_line_flush: Duration,
    pub multiline: Vec<Multiline>,
    pub max_open_files: usize,
    pub rescan_interval: Duration,
    pub checkpoint_ttl: Duration,
    pub queue_batches: usize,
    pub max_in_flight: usize,
    pub max_building_bytes: usize,
    pub admin_listen: std::net::SocketAddr,
    pub ca_file: Option<PathBuf>,
    /// Client certificate and key files (mTLS), both or neither.
    pub client_identity: Option<(PathBuf, PathBuf)>,
    pub allowed_hosts: Vec<String>,
    pub hash_key: Option<Vec<u8>>,
    pub ledger_retention: Duration,
    pub ready_requires_shipping: bool,
    pub disk_full_percent: u8,
    pub disk_warn_percent: u8,
    pub follow_symlinks_outside: bool,
    /// The agent's own secret files (token, hash key): never followed, whatever `paths` says.
    pub secret_files: Vec<PathBuf>,
    /// Deprecated keys the file used; logged at start, printed by `check-config`.
    pub deprecations: Vec<Deprecation>,
}

/// Parses config text; errors carry `label:line:col`.
pub fn parse_file(label: &str, text: &str) -> Result<FileConfig, ConfigError> {
    fjord_cli::config::parse(label, text)
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

/// Expands `${NAME}` in `value` with `lookup(NAME)`; used for `labels` values and `agent_id`,
/// so that one static config file (a ConfigMap) can carry per-pod values that Kubernetes
/// puts in the environment (downward API: pod, namespace, node). A `$` not followed by `{`
/// is kept as it is. A variable that is unset or empty is an error naming it: a label that
/// silently came out empty would merge the streams of every pod.
pub fn expand_env(
    value: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, EnvError> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(at) = rest.find("${") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let end = after.find('}').ok_or_else(|| EnvError::Unclosed {
            value: value.to_owned(),
        })?;
        let name = &after[..end];
        let valid = name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !valid {
            return Err(EnvError::BadName {
                value: value.to_owned(),
                name: name.to_owned(),
            });
        }
        match lookup(name).filter(|v| !v.is_empty()) {
            Some(v) => out.push_str(&v),
            None => {
                return Err(EnvError::Unset {
                    name: name.to_owned(),
                })
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Why `${NAME}` in a config value could not be expanded. The value is configuration, so
/// messages quote it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    #[error("{value:?}: `${{` without a closing `}}`")]
    Unclosed { value: String },
    #[error("{value:?}: {name:?} is not an environment variable name")]
    BadName { value: String, name: String },
    #[error("environment variable {name} is not set (or empty)")]
    Unset { name: String },
}

/// Reads the file (if any), applies flags and validates. A value the file set that is out of
/// range is reported at its `file:line:col`.
pub fn load(path: Option<&Path>, o: Overrides) -> Result<Config, ConfigError> {
    let (mut c, deprecations) = fjord_cli::config::load(path, |f, dep| check(f, o, dep))?;
    c.deprecations = deprecations;
    Ok(c)
}

/// A duration key of the agent's config, in milliseconds when given as a deprecated integer.
fn ms_key(name: &str, default_ms: u64, range_ms: std::ops::RangeInclusive<u64>) -> DurationKey<'_> {
    DurationKey {
        name,
        legacy: None,
        unit: Unit::Millis,
        default: Duration::from_millis(default_ms),
        range: Duration::from_millis(*range_ms.start())..=Duration::from_millis(*range_ms.end()),
    }
}

/// Checks the file's values and the flags into a [`Config`].
fn check(f: FileConfig, o: Overrides, dep: &mut Vec<Deprecation>) -> Result<Config, ConfigError> {
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
        // A bare relative glob depends on the directory the agent was started in, which in
        // a container is rarely what was meant.
        if !p.starts_with('/') && !p.starts_with("./") && !p.starts_with("../") {
            return Err(invalid(
                "paths",
                format!("{p:?} must be an absolute path, or relative starting with ./"),
            ));
        }
    }
    let url = o
        .url
        .or(f.url)
        .ok_or_else(|| invalid("url", "give --url (or `url` in the config file)"))?;
    let parsed = reqwest::Url::parse(&url).map_err(|e| invalid("url", format!("{url:?}: {e}")))?;
    let allow_insecure_http = f.allow_insecure_http.unwrap_or(false);
    match parsed.scheme() {
        "https" => {}
        "http" => {
            let loopback = match parsed.host() {
                Some(url::Host::Ipv4(a)) => a.is_loopback(),
                Some(url::Host::Ipv6(a)) => a.is_loopback(),
                Some(url::Host::Domain(d)) => d == "localhost",
                None => false,
            };
            if !loopback && !allow_insecure_http {
                return Err(invalid(
                    "url",
                    "plain http is only allowed to a loopback address; use https, or set allow_insecure_http = true if the network is trusted",
                ));
            }
        }
        s => return Err(invalid("url", format!("scheme {s:?} is not http or https"))),
    }
    let allowed_hosts = f.allowed_hosts.unwrap_or_default();
    if !allowed_hosts.is_empty() {
        let host = parsed.host_str().unwrap_or_default();
        if !allowed_hosts.iter().any(|h| h.eq_ignore_ascii_case(host)) {
            return Err(invalid(
                "url",
                format!("host {host:?} is not in allowed_hosts {allowed_hosts:?}"),
            ));
        }
    }
    if let Some(ca) = &f.ca_file {
        if parsed.scheme() != "https" {
            return Err(invalid("ca_file", "only applies to an https url"));
        }
        // Parsed here, not only when the client is built, so that a bad file is a config
        // error (exit 64, and reported by check-config).
        crate::ship::load_ca(ca).map_err(|e| invalid("ca_file", e.to_string()))?;
    }
    let client_identity = match (f.client_cert_file, f.client_key_file) {
        (None, None) => None,
        (Some(c), Some(k)) => {
            if parsed.scheme() != "https" {
                return Err(invalid("client_cert_file", "only applies to an https url"));
            }
            crate::ship::load_identity(&c, &k)
                .map_err(|e| invalid("client_cert_file", e.to_string()))?;
            Some((c, k))
        }
        (Some(_), None) => {
            return Err(invalid(
                "client_key_file",
                "client_cert_file needs its key in client_key_file",
            ))
        }
        (None, Some(_)) => {
            return Err(invalid(
                "client_cert_file",
                "client_key_file needs its certificate in client_cert_file",
            ))
        }
    };
    let token_file = o.token_file.or(f.token_file);
    let secret_files: Vec<PathBuf> = token_file
        .iter()
        .chain(f.hash_key_file.iter())
        .chain(client_identity.iter().map(|(_, k)| k))
        .cloned()
        .collect();
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
    let env = |name: &str| std::env::var(name).ok();
    let mut labels = f.labels.unwrap_or_default();
    for (k, v) in labels.iter_mut() {
        *v = expand_env(v, env).map_err(|e| invalid("labels", format!("{k:?}: {e}")))?;
    }
    let agent_id = match f.agent_id {
        Some(id) => expand_env(&id, env).map_err(|e| invalid("agent_id", e.to_string()))?,
        None => hostname(),
    };
    for (k, v) in &labels {
        if !fjord_wire::push::valid_label_name(k) || k == "file" {
            return Err(invalid(
                "labels",
                format!("{k:?} is not a usable label name"),
            ));
        }
        // The aggregator refuses a push over its label limits: every batch would be
        // dead-lettered. Refuse it here instead.
        if k.len() > fjord_wire::limits::MAX_LABEL_NAME_BYTES {
            return Err(invalid(
                "labels",
                format!(
                    "a label name is {} bytes; the aggregator takes at most {}",
                    k.len(),
                    fjord_wire::limits::MAX_LABEL_NAME_BYTES
                ),
            ));
        }
        if v.len() > fjord_wire::limits::MAX_LABEL_VALUE_BYTES {
            return Err(invalid(
                "labels",
                format!(
                    "the value of {k:?} is {} bytes; the aggregator takes at most {}",
                    v.len(),
                    fjord_wire::limits::MAX_LABEL_VALUE_BYTES
                ),
            ));
        }
    }
    // `team`, `file` and the configured labels make one stream's labels.
    if labels.len() + 2 > fjord_wire::limits::MAX_LABELS_PER_STREAM {
        return Err(invalid(
            "labels",
            format!(
                "{} labels; with team and file a stream may have at most {}",
                labels.len(),
                fjord_wire::limits::MAX_LABELS_PER_STREAM
            ),
        ));
    }
    let max_batch_bytes = f.max_batch_bytes.unwrap_or(1024 * 1024);
    if !(1024..=8 * 1024 * 1024).contains(&max_batch_bytes) {
        return Err(invalid(
            "max_batch_bytes",
            "must be between 1 KiB and 8 MiB",
        ));
    }
    let max_batch_lines = ranged("max_batch_lines", f.max_batch_lines, 10_000, 1..=1_000_000)?;
    let zstd_level = f
        .zstd_level
        .unwrap_or(fjord_wire::codec::DEFAULT_ZSTD_LEVEL);
    if !fjord_wire::codec::zstd_level_ok(zstd_level) {
        return Err(invalid(
            "zstd_level",
            "must be between 1 and 19, or a fast level from -1 to -7",
        ));
    }
    let exclude = f.exclude.unwrap_or_default();
    for p in &exclude {
        globset::Glob::new(p).map_err(|e| invalid("exclude", format!("{p:?}: {e}")))?;
    }
    let max_line_bytes = f.max_line_bytes.unwrap_or(256 * 1024);
    if !(256..=fjord_wire::limits::MAX_LINE_BYTES).contains(&max_line_bytes) {
        return Err(invalid(
            "max_line_bytes",
            format!(
                "must be between 256 and {} (the aggregator's limit)",
                fjord_wire::limits::MAX_LINE_BYTES
            ),
        ));
    }
    let mut multiline = Vec::new();
    for m in f.multiline.unwrap_or_default() {
        let glob = globset::GlobBuilder::new(&m.path)
            .literal_separator(true)
            .build()
            .map_err(|e| invalid("multiline.path", format!("{:?}: {e}", m.path)))?
            .compile_matcher();
        let start = regex::RegexBuilder::new(&m.start_pattern)
            .size_limit(1 << 20)
            .build()
            .map_err(|e| invalid("multiline.start_pattern", e.to_string()))?;
        multiline.push(Multiline {
            glob,
            start,
            timeout: ms_key("multiline.timeout", 1000, 10..=60_000).resolve(
                m.timeout.as_deref(),
                m.timeout_ms,
                dep,
            )?,
            max_lines: ranged("multiline.max_lines", m.max_lines, 500, 1..=100_000)?,
        });
    }
    const DAY: Duration = Duration::from_secs(86_400);
    let checkpoint_ttl = DurationKey {
        name: "checkpoint_ttl",
        legacy: None,
        unit: Unit::Hours,
        default: 7 * DAY,
        range: Duration::from_secs(3600)..=3660 * DAY,
    }
    .resolve(f.checkpoint_ttl.as_deref(), f.checkpoint_ttl_hours, dep)?;
    let ledger_retention = DurationKey {
        name: "ledger_retention",
        legacy: None,
        unit: Unit::Days,
        default: 90 * DAY,
        range: DAY..=3660 * DAY,
    }
    .resolve(f.ledger_retention.as_deref(), f.ledger_retention_days, dep)?;
    let max_open_files = ranged("max_open_files", f.max_open_files, 256, 1..=65_536)?;
    let queue_batches = ranged("queue_batches", f.queue_batches, 4, 1..=1024)?;
    let max_in_flight = ranged("max_in_flight", f.max_in_flight, 2, 1..=64)?;
    let max_building_bytes = ranged(
        "max_building_bytes",
        f.max_building_bytes,
        4 * max_batch_bytes,
        max_batch_bytes..=1 << 30,
    )?;
    let admin = o
        .admin_listen
        .or(f.admin_listen)
        .unwrap_or_else(|| "127.0.0.1:9810".to_owned());
    let admin_listen = admin
        .parse()
        .map_err(|e| invalid("admin_listen", format!("{admin:?}: {e} (want IP:PORT)")))?;
    let hash_key = match &f.hash_key_file {
        Some(p) => {
            let k = std::fs::read(p)
                .map_err(|e| invalid("hash_key_file", format!("{}: {e}", p.display())))?;
            let k = k.trim_ascii().to_vec();
            if k.len() < 16 {
                return Err(invalid(
                    "hash_key_file",
                    "the key must be at least 16 bytes (generate one with `head -c 32 /dev/urandom | base64`)",
                ));
            }
            Some(k)
        }
        None => None,
    };
    let percent = |field: &'static str, v: Option<u8>, default: u8| match v {
        Some(p) if !(1..=100).contains(&p) => Err(invalid(field, "must be between 1 and 100")),
        Some(p) => Ok(p),
        None => Ok(default),
    };
    let disk_full_percent = percent("disk_full_percent", f.disk_full_percent, 95)?;
    let disk_warn_percent = percent("disk_warn_percent", f.disk_warn_percent, 80)?;
    Ok(Config {
        paths,
        url: url.trim_end_matches('/').to_owned(),
        state_dir: o
            .state_dir
            .or(f.state_dir)
            .unwrap_or_else(|| PathBuf::from("fjord-state")),
        rules_dir: o.rules_dir.or(f.rules_dir),
        token,
        agent_id,
        labels,
        allowed_jurisdictions: f
            .allowed_jurisdictions
            .unwrap_or_else(|| vec!["EEA".to_owned()]),
        linger: ms_key("linger", 250, 0..=60_000).resolve(f.linger.as_deref(), f.linger_ms, dep)?,
        max_batch_bytes,
        max_batch_lines,
        poll_interval: ms_key("poll_interval", 250, 10..=60_000).resolve(
            f.poll_interval.as_deref(),
            f.poll_interval_ms,
            dep,
        )?,
        min_read_interval: ms_key("min_read_interval", 100, 0..=1000).resolve(
            f.min_read_interval.as_deref(),
            f.min_read_interval_ms,
            dep,
        )?,
        shutdown_grace: ms_key("shutdown_grace", 10_000, 0..=600_000).resolve(
            f.shutdown_grace.as_deref(),
            f.shutdown_grace_ms,
            dep,
        )?,
        zstd_level,
        exclude,
        read_from: f.read_from.unwrap_or_default(),
        max_line_bytes,
        partial_line_flush: ms_key("partial_line_flush", 5000, 100..=3_600_000).resolve(
            f.partial_line_flush.as_deref(),
            f.partial_line_flush_ms,
            dep,
        )?,
        multiline,
        max_open_files,
        rescan_interval: ms_key("rescan_interval", 1000, 100..=3_600_000).resolve(
            f.rescan_interval.as_deref(),
            f.rescan_interval_ms,
            dep,
        )?,
        checkpoint_ttl,
        queue_batches,
        max_in_flight,
        max_building_bytes,
        admin_listen,
        ca_file: f.ca_file,
        client_identity,
        allowed_hosts,
        hash_key,
        ledger_retention,
        ready_requires_shipping: f.ready_requires_shipping.unwrap_or(false),
        disk_full_percent,
        disk_warn_percent,
        follow_symlinks_outside: f.follow_symlinks_outside.unwrap_or(false),
        secret_files,
        deprecations: Vec::new(),
    })
}

impl Config {
    /// The multiline settings of a file, if any applies.
    pub fn multiline_for(&self, path: &Path) -> Option<&Multiline> {
        self.multiline.iter().find(|m| m.glob.is_match(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "POD_NAME" => Some("payment-7f9c".to_owned()),
            "NODE_NAME" => Some("node-a".to_owned()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expands_environment_references() {
        let cases = [
            ("${POD_NAME}", "payment-7f9c"),
            ("pod-${POD_NAME}@${NODE_NAME}", "pod-payment-7f9c@node-a"),
            ("static", "static"),
            ("cost $5 {x}", "cost $5 {x}"),
            ("", ""),
        ];
        for (input, want) in cases {
            assert_eq!(expand_env(input, env).as_deref(), Ok(want), "{input}");
        }
    }

    #[test]
    fn unset_or_bad_references_are_errors_naming_them() {
        let cases = [
            ("${POD_NAMESPACE}", "POD_NAMESPACE is not set"),
            ("${EMPTY}", "EMPTY is not set"),
            ("${POD_NAME", "without a closing"),
            ("${}", "is not an environment variable name"),
            ("${1X}", "is not an environment variable name"),
            ("${A-B}", "is not an environment variable name"),
        ];
        for (input, want) in cases {
            let err = expand_env(input, env).unwrap_err().to_string();
            assert!(err.contains(want), "{input}: {err}");
        }
    }

    #[test]
    fn load_expands_labels_and_agent_id_from_the_process_environment() {
        // PATH is set in every test process; an unset name is made unlikely by its length.
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("agent.toml");
        let base = "paths = [\"/var/log/app/*.log\"]\nurl = \"http://127.0.0.1:3100\"\n";
        std::fs::write(
            &p,
            format!("{base}agent_id = \"a-${{PATH}}\"\n[labels]\nteam = \"payments\"\nsearch = \"${{PATH}}\"\n"),
        )
        .unwrap();
        let c = load(Some(&p), Overrides::default()).unwrap();
        let path = std::env::var("PATH").unwrap();
        assert_eq!(c.labels["search"], path);
        assert_eq!(c.labels["team"], "payments");
        assert_eq!(c.agent_id, format!("a-{path}"));

        std::fs::write(
            &p,
            format!("{base}[labels]\npod = \"${{FJORD_TEST_SURELY_UNSET_VARIABLE_4711}}\"\n"),
        )
        .unwrap();
        let err = load(Some(&p), Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("invalid labels"), "{err}");
        assert!(
            err.contains("FJORD_TEST_SURELY_UNSET_VARIABLE_4711"),
            "{err}"
        );
    }

    #[test]
    fn durations_too_large_to_represent_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("agent.toml");
        let base = "paths = [\"/var/log/app/*.log\"]\nurl = \"http://127.0.0.1:3100\"\n";
        for (key, field) in [
            ("ledger_retention_days", "invalid ledger_retention_days"),
            ("checkpoint_ttl_hours", "invalid checkpoint_ttl_hours"),
        ] {
            std::fs::write(&p, format!("{base}{key} = {}\n", u64::MAX / 2)).unwrap();
            let err = load(Some(&p), Overrides::default())
                .unwrap_err()
                .to_string();
            assert!(err.contains(field) && err.contains("out of range"), "{err}");
            std::fs::write(&p, format!("{base}{key} = 30\n")).unwrap();
            assert!(load(Some(&p), Overrides::default()).is_ok());
        }
    }

    #[test]
    fn zstd_levels_are_1_to_19_or_fast_levels() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("agent.toml");
        let base = "paths = [\"/var/log/app/*.log\"]\nurl = \"http://127.0.0.1:3100\"\n";
        for (level, ok) in [
            (-8, false),
            (-7, true),
            (-1, true),
            (0, false),
            (1, true),
            (19, true),
            (20, false),
        ] {
            std::fs::write(&p, format!("{base}zstd_level = {level}\n")).unwrap();
            match load(Some(&p), Overrides::default()) {
                Ok(c) => {
                    assert!(ok, "level {level} accepted");
                    assert_eq!(c.zstd_level, level);
                    // The encoder takes every accepted level.
                    fjord_wire::codec::BatchEncoder::new(level).unwrap();
                }
                Err(e) => {
                    assert!(!ok, "level {level} refused: {e}");
                    assert!(e.to_string().contains("zstd_level"), "{e}");
                }
            }
        }
    }

    #[test]
    fn readiness_and_disk_keys_default_and_range() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("agent.toml");
        let base = "paths = [\"/var/log/app/*.log\"]\nurl = \"http://127.0.0.1:3100\"\n";
        std::fs::write(&p, base).unwrap();
        let c = load(Some(&p), Overrides::default()).unwrap();
        assert!(!c.ready_requires_shipping);
        assert_eq!((c.disk_full_percent, c.disk_warn_percent), (95, 80));
        std::fs::write(
            &p,
            format!("{base}ready_requires_shipping = true\ndisk_full_percent = 100\ndisk_warn_percent = 1\n"),
        )
        .unwrap();
        let c = load(Some(&p), Overrides::default()).unwrap();
        assert!(c.ready_requires_shipping);
        assert_eq!((c.disk_full_percent, c.disk_warn_percent), (100, 1));
        for bad in ["disk_full_percent = 0", "disk_warn_percent = 101"] {
            std::fs::write(&p, format!("{base}{bad}\n")).unwrap();
            let err = load(Some(&p), Overrides::default())
                .unwrap_err()
                .to_string();
            let key = bad.split(' ').next().unwrap();
            assert!(
                err.contains(key) && err.contains("between 1 and 100"),
                "{err}"
            );
        }
    }

    /// Every numeric key has a range checked at start, reported at its `file:line:col`:
    /// values that crashed (a queue of 2^62), hung (a poll interval of u64::MAX) or lost
    /// data (a label the aggregator refuses) never reach the running agent.
    #[test]
    fn numeric_keys_are_range_checked_at_their_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("agent.toml");
        let base = "paths = [\"/var/log/app/*.log\"]\nurl = \"http://127.0.0.1:3100\"\n";
        let max = u64::MAX;
        for bad in [
            "queue_batches = 4611686018427387904".to_owned(),
            format!("poll_interval_ms = {max}"),
            "poll_interval_ms = 1".to_owned(),
            "max_in_flight = 0".to_owned(),
            "max_in_flight = 1000".to_owned(),
            "max_open_files = 0".to_owned(),
            format!("linger_ms = {max}"),
            format!("shutdown_grace_ms = {max}"),
            "min_read_interval_ms = 5000".to_owned(),
            "rescan_interval_ms = 10".to_owned(),
            "partial_line_flush_ms = 0".to_owned(),
            "max_batch_lines = 0".to_owned(),
            "max_building_bytes = 1".to_owned(),
            "checkpoint_ttl_hours = 0".to_owned(),
            "ledger_retention_days = 0".to_owned(),
        ] {
            std::fs::write(&p, format!("{base}\n  {bad}\n")).unwrap();
            let err = load(Some(&p), Overrides::default())
                .unwrap_err()
                .to_string();
            let key = bad.split(' ').next().unwrap();
            assert!(
                err.contains("agent.toml:4:3") && err.contains(key) && err.contains("between"),
                "{bad}: {err}"
            );
        }
        std::fs::write(
            &p,
            format!("{base}[[multiline]]\npath = \"*\"\nstart_pattern = \"^x\"\ntimeout_ms = 0\n"),
        )
        .unwrap();
        let err = load(Some(&p), Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("agent.toml:6:1") && err.contains("timeout_ms"),
            "{err}"
        );
    }

    #[test]
    fn labels_over_the_aggregators_limits_and_bare_relative_paths_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("agent.toml");
        let base = "paths = [\"/var/log/app/*.log\"]\nurl = \"http://127.0.0.1:3100\"\n";
        let long = "v".repeat(fjord_wire::limits::MAX_LABEL_VALUE_BYTES + 1);
        std::fs::write(&p, format!("{base}[labels]\nteam = \"{long}\"\n")).unwrap();
        let err = load(Some(&p), Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("agent.toml:3:1") && err.contains("at most 1024"),
            "{err}"
        );
        assert!(
            !err.contains(&long),
            "the value itself is not echoed: {err}"
        );
        let many: String = (0..31).map(|i| format!("l{i} = \"x\"\n")).collect();
        std::fs::write(&p, format!("{base}[labels]\n{many}")).unwrap();
        let err = load(Some(&p), Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("at most 32"), "{err}");
        for (glob, ok) in [
            ("logs/*.log", false),
            ("*.log", false),
            ("./logs/*.log", true),
            ("../logs/*.log", true),
            ("/var/log/*.log", true),
        ] {
            std::fs::write(
                &p,
                format!("paths = [\"{glob}\"]\nurl = \"http://127.0.0.1:3100\"\n"),
            )
            .unwrap();
            let r = load(Some(&p), Overrides::default());
            assert_eq!(r.is_ok(), ok, "{glob}: {:?}", r.err());
            if let Err(e) = r {
                assert!(e.to_string().contains("agent.toml:1:1"), "{e}");
            }
        }
    }
}
