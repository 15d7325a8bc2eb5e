//! `serve` configuration: an optional TOML file, overridden by command-line flags, validated
//! into a [`ServeConfig`] before any file is opened or port bound.
//!
//! Invariants once validated: every token hash is 32 bytes and every token name unique; limits
//! only tighten the wire limits that agents respect; without tokens the listen address is
//! loopback, so an unauthenticated aggregator is never reachable from another host (with or
//! without TLS); a configured TLS certificate and key have loaded, match and are within their
//! validity period, so a server never starts with a certificate every client would refuse.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use fjord_wire::info::UNSET;
use fjord_wire::{limits as wire, Info};
use serde::Deserialize;

use crate::tls::{self, TlsSettings};

/// Default listen address: loopback, Loki's port.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:3100";
/// Default data directory, relative to the working directory.
pub const DEFAULT_DATA_DIR: &str = "data";
/// Default most entries one query may return (Loki's `max_entries_limit_per_query`).
pub const DEFAULT_MAX_QUERY_LINES: usize = 100_000;
/// Default number of push requests decoded and stored at once.
pub const DEFAULT_INGEST_CONCURRENCY: usize = 4;
/// Default number of push requests that may wait for a worker before pushes get 429.
pub const DEFAULT_INGEST_QUEUE: usize = 16;
/// Default most live tails (WebSockets) at once.
pub const DEFAULT_MAX_TAILS: usize = 32;
/// Default access-log records waiting for the background writer.
pub const DEFAULT_ACCESS_LOG_QUEUE: usize = 4096;
/// Default age beyond which entries are refused: 7 days.
pub const DEFAULT_REJECT_OLDER_THAN: Duration = Duration::from_secs(7 * 86_400);
/// Default distance into the future beyond which entries are refused (clock skew): 10 minutes.
pub const DEFAULT_REJECT_NEWER_THAN: Duration = Duration::from_secs(600);
/// Default retention in days.
pub const DEFAULT_RETENTION_DAYS: u32 = 30;
/// Default interval between retention passes of a running server.
pub const DEFAULT_RETENTION_INTERVAL: Duration = Duration::from_secs(3600);
/// Default interval between compaction passes.
pub const DEFAULT_COMPACT_INTERVAL: Duration = Duration::from_secs(60);
/// Default interval between WAL checkpoints.
pub const DEFAULT_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(30);
/// Default most open connections: well under a default 1024-descriptor limit, so that the
/// store's files and the blocking pool always find descriptors, and beyond what agents and
/// Grafana need at once.
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;
/// Default time a connection has to send a request's headers (also how long an idle
/// keep-alive connection stays open): agents send theirs at once.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time a connection may make no progress taking what the server writes.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default time any push body may take, on top of what its size needs at the minimum rate.
pub const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Default slowest average rate a push body may arrive at beyond the base time: a 16 MiB
/// body at 64 KiB/s is given 10 s + 256 s; one byte every 5 s is cut off after 10 s.
pub const DEFAULT_MIN_BODY_BYTES_PER_SEC: usize = 64 * 1024;
/// Default most streams (label sets) one team may create: enough for thousands of pods with
/// a few files each; past it pushes that would add a stream get 429.
pub const DEFAULT_MAX_STREAMS_PER_TEAM: usize = 50_000;
/// Default most bytes of log lines one query response may carry (Loki's JSON adds labels and
/// quoting on top): 64 MiB answers 100,000 typical lines, not 100,000 lines of 256 KiB.
pub const DEFAULT_MAX_QUERY_RESPONSE_BYTES: usize = 64 * 1024 * 1024;
/// Default most live tails one token may hold open at once, so one token cannot take every
/// tail slot (`max_tails`) of the server.
pub const DEFAULT_MAX_TAILS_PER_TOKEN: usize = 4;
/// Default time a live tail's client may go without answering the server's pings.
pub const DEFAULT_TAIL_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default longest time one query may read and evaluate stored lines (Loki's
/// `query_timeout`); past it the query stops and is answered 400.
pub const DEFAULT_QUERY_TIMEOUT: Duration = Duration::from_secs(60);

use crate::keys::{PublicKey, PublishedKey, Signer};
use fjord_cli::config::{invalid, ranged, DurationKey, DurationValue, Unit};
pub use fjord_cli::config::{ConfigError, Deprecation};

/// The config file. Every field is optional; flags override it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Address and port to listen on, e.g. `0.0.0.0:3100`.
    pub listen: Option<String>,
    /// Address and port of the plain-HTTP metrics listener (`/metrics`, `/ready`), e.g.
    /// `0.0.0.0:9811`; unset: no metrics listener.
    pub metrics_listen: Option<String>,
    /// Directory of the SQLite store.
    pub data_dir: Option<PathBuf>,
    /// Where to store: `sqlite://DIR` or `postgres://user@host:port/db?sslmode=…`; unset:
    /// SQLite in `data_dir`.
    pub store: Option<String>,
    /// Declared region, e.g. `eu-north-1`. Served at `/v1/info`.
    pub region: Option<String>,
    /// Declared jurisdiction, e.g. `EEA`. Agents refuse to ship to an undeclared one.
    pub jurisdiction: Option<String>,
    /// Most entries one query may return.
    pub max_query_lines: Option<usize>,
    /// Push requests decoded and stored at once.
    pub ingest_concurrency: Option<usize>,
    /// Push requests that may wait for a free worker; beyond that pushes are answered 429.
    pub ingest_queue: Option<usize>,
    /// Most live tails (WebSockets) at once; more are answered 429.
    pub max_tails: Option<usize>,
    /// Access-log records that may wait for the background writer; beyond that records are
    /// counted as dropped and a warning is logged (queries are never slowed by the log).
    pub access_log_queue: Option<usize>,
    /// Most streams (label sets) one team may create; pushes adding more get 429.
    pub max_streams_per_team: Option<usize>,
    /// Most bytes of log lines in one query response; beyond it the query is answered 413.
    pub max_query_response_bytes: Option<usize>,
    /// Most live tails one token may hold open at once; more are answered 429.
    pub max_tails_per_token: Option<usize>,
    /// How long a live tail's client may go without answering pings before it is closed,
    /// e.g. `"60s"`.
    pub tail_idle_timeout: Option<String>,
    /// Deprecated: the same as `tail_idle_timeout`, in milliseconds.
    pub tail_idle_timeout_ms: Option<u64>,
    /// Longest time one query (or a tail's backfill) may read and evaluate stored lines before
    /// it is stopped and answered 400, e.g. `"60s"`.
    pub query_timeout: Option<String>,
    /// Connection limits of the HTTP listener.
    #[serde(default)]
    pub listener: FileListener,
    /// TLS of the listener; without `cert_file` it serves plain HTTP.
    #[serde(default)]
    pub tls: FileTls,
    /// Ingest limits.
    #[serde(default)]
    pub limits: FileLimits,
    /// Retention per team.
    #[serde(default)]
    pub retention: FileRetention,
    /// Background storage maintenance.
    #[serde(default)]
    pub storage: FileStorage,
    /// Signing of the audit chain.
    #[serde(default)]
    pub audit: FileAudit,
    /// Access tokens. Without any, the server only listens on loopback and needs no token.
    #[serde(default, rename = "token")]
    pub tokens: Vec<FileToken>,
}

/// `[audit]`: who signs the audit chain (store/chain.rs), and how often.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileAudit {
    /// Ed25519 private key (PKCS#8 PEM, mode 0600) that signs the chain's head, e.g. a
    /// mounted Secret; `fjord-aggregator audit keygen` makes one. Unset: the chain is kept
    /// but not signed.
    pub signing_key_file: Option<PathBuf>,
    /// How often the chain's head is signed, e.g. `"1h"`.
    pub sign_interval: Option<String>,
    /// Public keys (PEM) of earlier signing keys: still published at `/v1/info`, so roots
    /// they signed before a rotation stay verifiable.
    #[serde(default)]
    pub previous_public_key_files: Vec<PathBuf>,
}

/// Default time between signatures of the audit chain's head.
pub const DEFAULT_SIGN_INTERVAL: Duration = Duration::from_secs(3600);

/// The checked `[audit]` section.
#[derive(Clone)]
pub struct AuditSigning {
    /// `None`: the chain is not signed.
    pub signer: Option<std::sync::Arc<Signer>>,
    pub sign_interval: Duration,
    /// The current key first, then the previous ones.
    pub public_keys: Vec<PublishedKey>,
}

impl std::fmt::Debug for AuditSigning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditSigning")
            .field("key_id", &self.signer.as_ref().map(|s| s.key_id()))
            .field("sign_interval", &self.sign_interval)
            .field("public_keys", &self.public_keys.len())
            .finish()
    }
}

fn check_audit(f: &FileAudit) -> Result<AuditSigning, ConfigError> {
    let sign_interval = interval(
        "audit.sign_interval",
        f.sign_interval.as_deref(),
        DEFAULT_SIGN_INTERVAL,
    )?;
    let signer = f
        .signing_key_file
        .as_deref()
        .map(|p| Signer::load(p).map_err(|e| invalid("audit.signing_key_file", e.to_string())))
        .transpose()?;
    let mut public_keys: Vec<PublishedKey> =
        signer.iter().map(|s| s.public().published(true)).collect();
    for p in &f.previous_public_key_files {
        let k = PublicKey::load(p)
            .map_err(|e| invalid("audit.previous_public_key_files", e.to_string()))?;
        if !public_keys.iter().any(|known| known.key_id == k.key_id()) {
            public_keys.push(k.published(false));
        }
    }
    Ok(AuditSigning {
        signer: signer.map(std::sync::Arc::new),
        sign_interval,
        public_keys,
    })
}

/// `[limits]`: each may only tighten the wire limit of the same name.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileLimits {
    /// Largest request body before decompression, bytes.
    pub max_body_bytes: Option<usize>,
    /// Largest push payload after decompression, bytes.
    pub max_decompressed_bytes: Option<usize>,
    /// Longest log line, bytes.
    pub max_line_bytes: Option<usize>,
    /// Most labels on one stream.
    pub max_labels_per_stream: Option<usize>,
    /// Longest label name, bytes.
    pub max_label_name_bytes: Option<usize>,
    /// Longest label value, bytes.
    pub max_label_value_bytes: Option<usize>,
    /// Refuse entries older than this, e.g. `7d`.
    pub reject_older_than: Option<String>,
    /// Refuse entries further than this in the future, e.g. `10m`.
    pub reject_newer_than: Option<String>,
}

/// `[listener]`: what slow or idle clients may hold.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileListener {
    /// Most connections open at once; more wait in the kernel's backlog.
    pub max_connections: Option<usize>,
    /// Time a connection has to send a request's headers; also how long an idle keep-alive
    /// connection stays open, e.g. `"10s"`.
    pub header_read_timeout: Option<String>,
    /// Deprecated: the same as `header_read_timeout`, in milliseconds.
    pub header_read_timeout_ms: Option<u64>,
    /// Time a connection may take no bytes of what the server writes before it is dropped,
    /// e.g. `"60s"`.
    pub idle_timeout: Option<String>,
    /// Deprecated: the same as `idle_timeout`, in milliseconds.
    pub idle_timeout_ms: Option<u64>,
    /// Time every push body may take, on top of its size at `min_body_bytes_per_sec`, e.g.
    /// `"10s"`.
    pub body_read_timeout: Option<String>,
    /// Deprecated: the same as `body_read_timeout`, in milliseconds.
    pub body_read_timeout_ms: Option<u64>,
    /// Slowest average rate, bytes per second, a push body may arrive at beyond
    /// `body_read_timeout`.
    pub min_body_bytes_per_sec: Option<usize>,
}

/// `[tls]`: serve HTTPS (and WSS) instead of plain HTTP.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileTls {
    /// PEM file with the server certificate first, then its intermediates. Reloaded when it
    /// changes (cert-manager renews it in place).
    pub cert_file: Option<PathBuf>,
    /// PEM file with the certificate's private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: Option<PathBuf>,
    /// PEM file with the CA certificate(s) that sign client certificates: when set, every
    /// client must present one (mTLS), in addition to its token.
    pub client_ca_file: Option<PathBuf>,
    /// How often the certificate files are looked at for a change, e.g. `5s`.
    pub reload_interval: Option<String>,
}

/// Checked `[listener]` limits.
#[derive(Debug, Clone)]
pub struct ListenerLimits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
}

impl Default for ListenerLimits {
    fn default() -> Self {
        ListenerLimits {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
        }
    }
}

/// Checked query and tail limits.
#[derive(Debug, Clone)]
pub struct ReadLimits {
    pub max_query_response_bytes: usize,
    pub max_tails_per_token: usize,
    pub tail_idle_timeout: Duration,
    /// Longest a query may read and evaluate stored lines (`query_timeout`).
    pub query_timeout: Duration,
}

impl Default for ReadLimits {
    fn default() -> Self {
        ReadLimits {
            max_query_response_bytes: DEFAULT_MAX_QUERY_RESPONSE_BYTES,
            max_tails_per_token: DEFAULT_MAX_TAILS_PER_TOKEN,
            tail_idle_timeout: DEFAULT_TAIL_IDLE_TIMEOUT,
            query_timeout: DEFAULT_QUERY_TIMEOUT,
        }
    }
}

/// `[retention]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRetention {
    /// How long lines of teams without an override are kept, in whole days, e.g. `"30d"`;
    /// `"0d"` keeps them forever.
    pub default_period: Option<String>,
    /// Deprecated: the same as `default_period`, in days.
    pub default_days: Option<u64>,
    /// How often a running server applies retention, e.g. `1h`.
    pub interval: Option<String>,
    /// Per-team periods, e.g. `payments = "90d"` (an integer, deprecated, counts days).
    #[serde(default)]
    pub teams: BTreeMap<String, DurationValue>,
}

/// `[storage]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileStorage {
    /// How often the compactor merges small chunks, e.g. `1m`.
    pub compact_interval: Option<String>,
    /// How often the WAL is checkpointed and truncated, e.g. `30s`.
    pub checkpoint_interval: Option<String>,
}

/// One `[[token]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileToken {
    /// Name recorded in logs and the erasure log, e.g. `payments-ingest`.
    pub name: String,
    /// Hex SHA-256 of the token (`fjord-aggregator token hash`); never the token itself.
    pub sha256: String,
    /// Team the token pushes as or reads; optional for `admin`.
    pub team: Option<String>,
    /// `ingest`, `read` or `admin`.
    pub role: String,
}

/// Values given on the command line, which win over the file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    /// `--store` or `FJORD_STORE`.
    pub store: Option<String>,
    pub region: Option<String>,
    pub jurisdiction: Option<String>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub tls_client_ca: Option<PathBuf>,
}

/// Checked ingest limits.
#[derive(Debug, Clone)]
pub struct IngestLimits {
    pub max_body_bytes: usize,
    pub max_decompressed_bytes: usize,
    pub max_line_bytes: usize,
    pub max_labels_per_stream: usize,
    pub max_label_name_bytes: usize,
    pub max_label_value_bytes: usize,
    pub reject_older_than: Duration,
    pub reject_newer_than: Duration,
    /// Time every push body may take, on top of its size at `min_body_bytes_per_sec`.
    pub body_read_timeout: Duration,
    pub min_body_bytes_per_sec: usize,
    pub max_streams_per_team: usize,
}

impl IngestLimits {
    /// How long a body of `bytes` may take to arrive.
    pub fn body_deadline(&self, bytes: usize) -> Duration {
        let rate = self.min_body_bytes_per_sec.max(1) as u64;
        self.body_read_timeout + Duration::from_millis((bytes as u64).saturating_mul(1000) / rate)
    }
}

impl Default for IngestLimits {
    fn default() -> Self {
        IngestLimits {
            max_body_bytes: wire::MAX_BODY_BYTES,
            max_decompressed_bytes: wire::MAX_DECOMPRESSED_BYTES,
            max_line_bytes: wire::MAX_LINE_BYTES,
            max_labels_per_stream: wire::MAX_LABELS_PER_STREAM,
            max_label_name_bytes: wire::MAX_LABEL_NAME_BYTES,
            max_label_value_bytes: wire::MAX_LABEL_VALUE_BYTES,
            reject_older_than: DEFAULT_REJECT_OLDER_THAN,
            reject_newer_than: DEFAULT_REJECT_NEWER_THAN,
            body_read_timeout: DEFAULT_BODY_READ_TIMEOUT,
            min_body_bytes_per_sec: DEFAULT_MIN_BODY_BYTES_PER_SEC,
            max_streams_per_team: DEFAULT_MAX_STREAMS_PER_TEAM,
        }
    }
}

/// Checked retention policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Days for teams without an override; 0 = forever.
    pub default_days: u32,
    /// Per-team days; 0 = forever.
    pub teams: BTreeMap<String, u32>,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        RetentionPolicy {
            default_days: DEFAULT_RETENTION_DAYS,
            teams: BTreeMap::new(),
        }
    }
}

impl RetentionPolicy {
    /// Days kept for `team`; 0 means forever.
    pub fn days_for(&self, team: &str) -> u32 {
        self.teams.get(team).copied().unwrap_or(self.default_days)
    }
}

/// Checked intervals of the background tasks.
#[derive(Debug, Clone)]
pub struct Maintenance {
    pub compact_interval: Duration,
    pub checkpoint_interval: Duration,
    pub retention_interval: Duration,
}

impl Default for Maintenance {
    fn default() -> Self {
        Maintenance {
            compact_interval: DEFAULT_COMPACT_INTERVAL,
            checkpoint_interval: DEFAULT_CHECKPOINT_INTERVAL,
            retention_interval: DEFAULT_RETENTION_INTERVAL,
        }
    }
}

/// Where the store lives.
#[derive(Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// SQLite in this directory (`sqlite://DIR`, or `--data DIR`).
    Sqlite(PathBuf),
    /// A PostgreSQL connection URL.
    Postgres(String),
}

impl StoreLocation {
    /// `sqlite://DIR` or `postgres://…` (also `postgresql://…`).
    pub fn parse(url: &str) -> Result<StoreLocation, String> {
        if let Some(dir) = url.strip_prefix("sqlite://") {
            if dir.is_empty() {
                return Err("sqlite:// needs a directory, e.g. sqlite:///var/lib/fjord".into());
            }
            return Ok(StoreLocation::Sqlite(PathBuf::from(dir)));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(StoreLocation::Postgres(url.to_owned()));
        }
        Err(
            "the store must be sqlite://DIR or postgres://user@host:port/dbname?sslmode=require"
                .into(),
        )
    }

    /// The location without a password, for logs and messages.
    pub fn redacted(&self) -> String {
        match self {
            StoreLocation::Sqlite(dir) => format!("sqlite://{}", dir.display()),
            StoreLocation::Postgres(url) => redact_password(url),
        }
    }
}

impl std::fmt::Debug for StoreLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// `scheme://user:secret@host…` → `scheme://user:***@host…`; a `password=` parameter too.
fn redact_password(url: &str) -> String {
    let mut out = url.to_owned();
    if let Some(scheme_end) = out.find("://") {
        let rest = &out[scheme_end + 3..];
        let auth_end = rest.find(['/', '?']).unwrap_or(rest.len());
        if let Some(at) = rest[..auth_end].rfind('@') {
            if let Some(colon) = rest[..at].find(':') {
                let (a, b) = (scheme_end + 3 + colon + 1, scheme_end + 3 + at);
                out.replace_range(a..b, "***");
            }
        }
    }
    if let Some(p) = out.find("password=") {
        let end = out[p..].find('&').map_or(out.len(), |e| p + e);
        out.replace_range(p + "password=".len()..end, "***");
    }
    out
}

/// The checked configuration.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    /// Where `/metrics` is served, if anywhere.
    pub metrics_listen: Option<SocketAddr>,
    pub data_dir: PathBuf,
    /// The database: SQLite in `data_dir` unless a PostgreSQL URL was given.
    pub store: StoreLocation,
    pub info: Info,
    pub max_query_lines: usize,
    pub ingest_concurrency: usize,
    pub ingest_queue: usize,
    pub max_tails: usize,
    pub access_log_queue: usize,
    pub listener: ListenerLimits,
    /// `None`: plain HTTP.
    pub tls: Option<TlsSettings>,
    pub read_limits: ReadLimits,
    pub limits: IngestLimits,
    pub retention: RetentionPolicy,
    pub maintenance: Maintenance,
    /// Signing of the audit chain.
    pub audit: AuditSigning,
    /// Empty: no auth (loopback only).
    pub tokens: Vec<Token>,
    /// Deprecated keys the file used; logged at start, printed by `check-config`.
    pub deprecations: Vec<Deprecation>,
}

impl ServeConfig {
    /// The defaults with `data_dir`; for tests and offline commands.
    pub fn with_data_dir(data_dir: &Path) -> ServeConfig {
        let mut c = load(None, Overrides::default()).expect("the built-in defaults are valid");
        c.data_dir = data_dir.to_owned();
        c
    }
}

/// Reads the file (if any), applies overrides and validates. A bad value the file set is
/// reported at its `file:line:col`.
pub fn load(path: Option<&Path>, o: Overrides) -> Result<ServeConfig, ConfigError> {
    let (mut c, deprecations) = fjord_cli::config::load(path, |f, dep| check(f, o, dep))?;
    c.deprecations = deprecations;
    Ok(c)
}

/// A timeout of the server, in milliseconds when given as a deprecated integer: between
/// 100 ms and one day.
fn timeout_key(name: &str, default: Duration) -> DurationKey<'_> {
    DurationKey {
        name,
        legacy: None,
        unit: Unit::Millis,
        default,
        range: Duration::from_millis(100)..=Duration::from_secs(86_400),
    }
}

/// Checks the file's values and the flags into a [`ServeConfig`].
fn check(
    file: FileConfig,
    o: Overrides,
    dep: &mut Vec<Deprecation>,
) -> Result<ServeConfig, ConfigError> {
    let listen_s = o
        .listen
        .or(file.listen)
        .unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
    let listen: SocketAddr = listen_s.parse().map_err(|_| {
        invalid(
            "listen",
            format!("{listen_s:?} is not an IP:port address, e.g. 127.0.0.1:3100"),
        )
    })?;
    let region = declaration("region", o.region.or(file.region))?;
    let jurisdiction = declaration("jurisdiction", o.jurisdiction.or(file.jurisdiction))?;
    let max_query_lines = ranged(
        "max_query_lines",
        file.max_query_lines,
        DEFAULT_MAX_QUERY_LINES,
        1..=10_000_000,
    )?;
    let ingest_concurrency = ranged(
        "ingest_concurrency",
        file.ingest_concurrency,
        DEFAULT_INGEST_CONCURRENCY,
        1..=1024,
    )?;
    let ingest_queue = ranged(
        "ingest_queue",
        file.ingest_queue,
        DEFAULT_INGEST_QUEUE,
        0..=4096,
    )?;
    let max_tails = ranged("max_tails", file.max_tails, DEFAULT_MAX_TAILS, 0..=4096)?;
    let access_log_queue = ranged(
        "access_log_queue",
        file.access_log_queue,
        DEFAULT_ACCESS_LOG_QUEUE,
        1..=1_000_000,
    )?;
    let mut limits = check_limits(&file.limits)?;
    let l = &file.listener;
    let listener = ListenerLimits {
        max_connections: ranged(
            "listener.max_connections",
            l.max_connections,
            DEFAULT_MAX_CONNECTIONS,
            4..=1_000_000,
        )?,
        header_read_timeout: timeout_key(
            "listener.header_read_timeout",
            DEFAULT_HEADER_READ_TIMEOUT,
        )
        .resolve(
            l.header_read_timeout.as_deref(),
            l.header_read_timeout_ms,
            dep,
        )?,
        idle_timeout: timeout_key("listener.idle_timeout", DEFAULT_IDLE_TIMEOUT).resolve(
            l.idle_timeout.as_deref(),
            l.idle_timeout_ms,
            dep,
        )?,
    };
    limits.body_read_timeout = timeout_key("listener.body_read_timeout", DEFAULT_BODY_READ_TIMEOUT)
        .resolve(l.body_read_timeout.as_deref(), l.body_read_timeout_ms, dep)?;
    limits.min_body_bytes_per_sec = ranged(
        "listener.min_body_bytes_per_sec",
        l.min_body_bytes_per_sec,
        DEFAULT_MIN_BODY_BYTES_PER_SEC,
        1..=usize::MAX,
    )?;
    limits.max_streams_per_team = ranged(
        "max_streams_per_team",
        file.max_streams_per_team,
        DEFAULT_MAX_STREAMS_PER_TEAM,
        1..=100_000_000,
    )?;
    let read_limits = ReadLimits {
        max_query_response_bytes: ranged(
            "max_query_response_bytes",
            file.max_query_response_bytes,
            DEFAULT_MAX_QUERY_RESPONSE_BYTES,
            wire::MAX_LINE_BYTES..=4 * 1024 * 1024 * 1024,
        )?,
        max_tails_per_token: ranged(
            "max_tails_per_token",
            file.max_tails_per_token,
            DEFAULT_MAX_TAILS_PER_TOKEN,
            1..=4096,
        )?,
        tail_idle_timeout: timeout_key("tail_idle_timeout", DEFAULT_TAIL_IDLE_TIMEOUT).resolve(
            file.tail_idle_timeout.as_deref(),
            file.tail_idle_timeout_ms,
            dep,
        )?,
        query_timeout: timeout_key("query_timeout", DEFAULT_QUERY_TIMEOUT).resolve(
            file.query_timeout.as_deref(),
            None,
            dep,
        )?,
    };
    let retention = check_retention(&file.retention, dep)?;
    let maintenance = Maintenance {
        compact_interval: interval(
            "storage.compact_interval",
            file.storage.compact_interval.as_deref(),
            DEFAULT_COMPACT_INTERVAL,
        )?,
        checkpoint_interval: interval(
            "storage.checkpoint_interval",
            file.storage.checkpoint_interval.as_deref(),
            DEFAULT_CHECKPOINT_INTERVAL,
        )?,
        retention_interval: interval(
            "retention.interval",
            file.retention.interval.as_deref(),
            DEFAULT_RETENTION_INTERVAL,
        )?,
    };
    let metrics_listen = file
        .metrics_listen
        .as_deref()
        .map(|m| {
            m.parse::<SocketAddr>().map_err(|_| {
                invalid(
                    "metrics_listen",
                    format!("{m:?} is not an IP:port address, e.g. 0.0.0.0:9811"),
                )
            })
        })
        .transpose()?;
    if metrics_listen.is_some_and(|m| m == listen && m.port() != 0) {
        return Err(invalid(
            "metrics_listen",
            format!("{listen} is also `listen`; the metrics listener needs its own port"),
        ));
    }
    let tokens = check_tokens(&file.tokens)?;
    let audit = check_audit(&file.audit)?;
    let tls = check_tls(FileTls {
        cert_file: o.tls_cert.or(file.tls.cert_file),
        key_file: o.tls_key.or(file.tls.key_file),
        client_ca_file: o.tls_client_ca.or(file.tls.client_ca_file),
        reload_interval: file.tls.reload_interval,
    })?;
    if tokens.is_empty() && !listen.ip().is_loopback() {
        return Err(invalid(
            "listen",
            format!(
                "{listen} is not a loopback address and no [[token]] is configured; an aggregator without tokens only serves on loopback. Add tokens (see `fjord-aggregator token new`) or listen on 127.0.0.1"
            ),
        ));
    }
    let data_dir = o
        .data_dir
        .or(file.data_dir)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
    let store = match o.store.or(file.store) {
        None => StoreLocation::Sqlite(data_dir.clone()),
        Some(url) => StoreLocation::parse(&url).map_err(|reason| invalid("store", reason))?,
    };
    Ok(ServeConfig {
        listen,
        metrics_listen,
        data_dir,
        store,
        info: Info {
            name: "fjord-aggregator".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            region,
            jurisdiction,
            audit_keys: audit.public_keys.clone(),
        },
        max_query_lines,
        ingest_concurrency,
        ingest_queue,
        max_tails,
        access_log_queue,
        listener,
        tls,
        read_limits,
        limits,
        retention,
        maintenance,
        audit,
        tokens,
        deprecations: Vec::new(),
    })
}

fn duration(field: &str, v: Option<&str>, default: Duration) -> Result<Duration, ConfigError> {
    match v {
        None => Ok(default),
        Some(s) => fjord_wire::clock::parse_duration(s).map_err(|e| invalid(field, e.to_string())),
    }
}

fn interval(field: &str, v: Option<&str>, default: Duration) -> Result<Duration, ConfigError> {
    let d = duration(field, v, default)?;
    if d < Duration::from_secs(1) {
        return Err(invalid(field, "must be at least 1s"));
    }
    Ok(d)
}

fn check_limits(f: &FileLimits) -> Result<IngestLimits, ConfigError> {
    let tighten = |field: &str, v: Option<usize>, wire_max: usize| {
        ranged(&format!("limits.{field}"), v, wire_max, 1..=wire_max)
    };
    Ok(IngestLimits {
        max_body_bytes: tighten("max_body_bytes", f.max_body_bytes, wire::MAX_BODY_BYTES)?,
        max_decompressed_bytes: tighten(
            "max_decompressed_bytes",
            f.max_decompressed_bytes,
            wire::MAX_DECOMPRESSED_BYTES,
        )?,
        max_line_bytes: tighten("max_line_bytes", f.max_line_bytes, wire::MAX_LINE_BYTES)?,
        max_labels_per_stream: tighten(
            "max_labels_per_stream",
            f.max_labels_per_stream,
            wire::MAX_LABELS_PER_STREAM,
        )?,
        max_label_name_bytes: tighten(
            "max_label_name_bytes",
            f.max_label_name_bytes,
            wire::MAX_LABEL_NAME_BYTES,
        )?,
        max_label_value_bytes: tighten(
            "max_label_value_bytes",
            f.max_label_value_bytes,
            wire::MAX_LABEL_VALUE_BYTES,
        )?,
        reject_older_than: duration(
            "limits.reject_older_than",
            f.reject_older_than.as_deref(),
            DEFAULT_REJECT_OLDER_THAN,
        )?,
        reject_newer_than: duration(
            "limits.reject_newer_than",
            f.reject_newer_than.as_deref(),
            DEFAULT_REJECT_NEWER_THAN,
        )?,
        ..IngestLimits::default()
    })
}

fn check_tls(f: FileTls) -> Result<Option<TlsSettings>, ConfigError> {
    let (cert_file, key_file) = match (f.cert_file, f.key_file) {
        (None, None) => {
            if f.client_ca_file.is_some() {
                return Err(invalid(
                    "tls.client_ca_file",
                    "client certificates need TLS: give tls.cert_file and tls.key_file (--tls-cert, --tls-key) too",
                ));
            }
            return Ok(None);
        }
        (Some(c), Some(k)) => (c, k),
        (Some(_), None) => {
            return Err(invalid(
                "tls.key_file",
                "a certificate needs its key: give --tls-key (or tls.key_file) too",
            ))
        }
        (None, Some(_)) => {
            return Err(invalid(
                "tls.cert_file",
                "a key needs its certificate: give --tls-cert (or tls.cert_file) too",
            ))
        }
    };
    let reload_interval = interval(
        "tls.reload_interval",
        f.reload_interval.as_deref(),
        tls::DEFAULT_RELOAD_INTERVAL,
    )?;
    let initial = tls::load_cert(&cert_file, &key_file)
        .map_err(|e| invalid("tls certificate", e.to_string()))?;
    let client_verifier = match &f.client_ca_file {
        None => None,
        Some(p) => {
            Some(tls::load_client_ca(p).map_err(|e| invalid("tls.client_ca_file", e.to_string()))?)
        }
    };
    Ok(Some(TlsSettings {
        cert_file,
        key_file,
        client_ca_file: f.client_ca_file,
        reload_interval,
        initial,
        client_verifier,
    }))
}

fn check_retention(
    f: &FileRetention,
    dep: &mut Vec<Deprecation>,
) -> Result<RetentionPolicy, ConfigError> {
    const MAX_DAYS: u32 = 36_500;
    const DAY: Duration = Duration::from_secs(86_400);
    fn key<'a>(name: &'a str, legacy: Option<&'a str>) -> DurationKey<'a> {
        DurationKey {
            name,
            legacy,
            unit: Unit::Days,
            default: DAY * DEFAULT_RETENTION_DAYS,
            range: Duration::ZERO..=DAY * MAX_DAYS,
        }
    }
    // Retention drops whole days of chunks, so a period is a whole number of days.
    let days = |field: &str, d: Duration| {
        if d.as_secs() % 86_400 != 0 || d.subsec_nanos() != 0 {
            return Err(invalid(field, "must be whole days, e.g. 30d"));
        }
        u32::try_from(d.as_secs() / 86_400).map_err(|_| invalid(field, "is too long"))
    };
    let default_days = days(
        "retention.default_period",
        key("retention.default_period", Some("retention.default_days")).resolve(
            f.default_period.as_deref(),
            f.default_days,
            dep,
        )?,
    )?;
    let mut teams = BTreeMap::new();
    for (t, v) in &f.teams {
        let field = format!("retention.teams.{t}");
        valid_team(&field, t)?;
        let d = match v {
            DurationValue::Text(s) => key(&field, None).resolve(Some(s), None, dep)?,
            DurationValue::Integer(n) => {
                // An integer counts days, as it did before periods took a unit.
                let text = format!("{n}d");
                dep.push(Deprecation {
                    key: field.clone(),
                    instead: format!("{t} = \"{text}\""),
                    location: None,
                });
                key(&field, None).resolve(Some(&text), None, dep)?
            }
        };
        teams.insert(t.clone(), days(&field, d)?);
    }
    Ok(RetentionPolicy {
        default_days,
        teams,
    })
}

/// What [`valid_team_name`] accepts, as an error message.
pub const TEAM_NAME_RULE: &str =
    "a team must be 1-64 characters of letters, digits, '-', '_' or '.', starting with a letter or digit";

/// Whether `t` may name a team: in token config and in the `team` label of team-less pushes.
pub fn valid_team_name(t: &str) -> bool {
    t.len() <= 64
        && t.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

fn valid_team(field: &str, t: &str) -> Result<(), ConfigError> {
    if valid_team_name(t) {
        Ok(())
    } else {
        Err(invalid(field, TEAM_NAME_RULE))
    }
}

fn check_tokens(f: &[FileToken]) -> Result<Vec<Token>, ConfigError> {
    let mut out: Vec<Token> = Vec::with_capacity(f.len());
    for (i, t) in f.iter().enumerate() {
        let field = format!("token[{i}]");
        if t.name.is_empty() || t.name.len() > 64 || t.name.chars().any(char::is_control) {
            return Err(invalid(
                format!("{field}.name"),
                "must be 1-64 printable characters",
            ));
        }
        if out.iter().any(|o| o.name == t.name) {
            return Err(invalid(
                format!("{field}.name"),
                format!("{:?} is used by another token", t.name),
            ));
        }
        let hash: [u8; 32] = hex::decode(t.sha256.trim())
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or_else(|| {
                invalid(
                    format!("{field}.sha256"),
                    format!(
                        "token {:?}: must be 64 hex digits, the SHA-256 of the token (`fjord-aggregator token hash`), never the token itself",
                        t.name
                    ),
                )
            })?;
        if out.iter().any(|o| o.hash == hash) {
            return Err(invalid(
                format!("{field}.sha256"),
                format!("token {:?} has the same hash as another token", t.name),
            ));
        }
        let role = match t.role.as_str() {
            "ingest" => Role::Ingest,
            "read" => Role::Read,
            "admin" => Role::Admin,
            other => {
                return Err(invalid(
                    format!("{field}.role"),
                    format!("{other:?} is not one of ingest, read, admin"),
                ))
            }
        };
        if let Some(team) = &t.team {
            valid_team(&format!("{field}.team"), team)?;
        } else if role != Role::Admin {
            return Err(invalid(
                format!("{field}.team"),
                format!("token {:?} with role {} needs a team", t.name, t.role),
            ));
        }
        out.push(Token {
            name: t.name.clone(),
            hash,
            team: t.team.clone(),
            role,
        });
    }
    Ok(out)
}

fn declaration(field: &'static str, v: Option<String>) -> Result<String, ConfigError> {
    match v {
        None => Ok(UNSET.to_owned()),
        Some(s) => {
            let ok = !s.is_empty()
                && s.len() <= 64
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
            if ok {
                Ok(s)
            } else {
                Err(invalid(
                    field,
                    "must be 1-64 characters of letters, digits, '-', '_' or '.'",
                ))
            }
        }
    }
}

/// Parses config text; errors carry `label:line:col`.
pub fn parse_file(label: &str, text: &str) -> Result<FileConfig, ConfigError> {
    fjord_cli::config::parse(label, text)
}

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Push to its team.
    Ingest,
    /// Query its team.
    Read,
    /// Query every team, push, erase.
    Admin,
}

impl Role {
    /// The name used in config files.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Ingest => "ingest",
            Role::Read => "read",
            Role::Admin => "admin",
        }
    }
}

/// A configured token: its hash, never the token.
#[derive(Debug, Clone)]
pub struct Token {
    pub name: String,
    pub hash: [u8; 32],
    /// `None` only for admin tokens.
    pub team: Option<String>,
    pub role: Role,
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    fn write(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("agg.toml");
        std::fs::write(&p, text).unwrap();
        (dir, p)
    }

    #[test]
    fn defaults_declare_unset() {
        let c = load(None, Overrides::default()).unwrap();
        assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(c.info.jurisdiction, UNSET);
        assert_eq!(c.info.region, UNSET);
        assert!(c.tokens.is_empty());
        assert_eq!(c.retention.default_days, 30);
        assert_eq!(c.limits.reject_newer_than, Duration::from_secs(600));
    }

    #[test]
    fn flags_override_file() {
        let (_d, p) = write(&format!(
            "listen = \"0.0.0.0:9000\"\nregion = \"eu-west-1\"\njurisdiction = \"EEA\"\n[[token]]\nname = \"a\"\nsha256 = \"{HASH}\"\nteam = \"payments\"\nrole = \"ingest\"\n"
        ));
        let c = load(
            Some(&p),
            Overrides {
                region: Some("eu-north-1".into()),
                ..Overrides::default()
            },
        )
        .unwrap();
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.info.region, "eu-north-1");
        assert_eq!(c.info.jurisdiction, "EEA");
        assert_eq!(c.tokens.len(), 1);
        assert_eq!(c.tokens[0].role, Role::Ingest);
    }

    #[test]
    fn full_file_parses() {
        let (_d, p) = write(&format!(
            r#"
ingest_queue = 2
max_tails = 4
query_timeout = "2m"
[limits]
max_line_bytes = 1000
reject_older_than = "2d"
reject_newer_than = "1m"
[retention]
default_days = 7
interval = "10m"
teams = {{ payments = 90, search = 0 }}
[storage]
compact_interval = "5m"
checkpoint_interval = "10s"
[[token]]
name = "root"
sha256 = "{HASH}"
role = "admin"
"#
        ));
        let c = load(Some(&p), Overrides::default()).unwrap();
        assert_eq!(c.limits.max_line_bytes, 1000);
        assert_eq!(c.read_limits.query_timeout, Duration::from_secs(120));
        assert_eq!(c.limits.reject_older_than, Duration::from_secs(2 * 86_400));
        assert_eq!(c.retention.days_for("payments"), 90);
        assert_eq!(c.retention.days_for("search"), 0);
        assert_eq!(c.retention.days_for("other"), 7);
        assert_eq!(c.maintenance.compact_interval, Duration::from_secs(300));
        assert_eq!(c.tokens[0].team, None);
    }

    #[test]
    fn errors_point_at_the_line() {
        let err = parse_file("agg.toml", "region = \"x\"\nlisten_addr = \"a\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("agg.toml:2:1"), "{err}");
        assert!(err.contains("unknown field"), "{err}");
        let err = load(
            None,
            Overrides {
                listen: Some("nope".into()),
                ..Overrides::default()
            },
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("invalid listen"), "{err}");
        let err = load(
            None,
            Overrides {
                jurisdiction: Some("E E A".into()),
                ..Overrides::default()
            },
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("invalid jurisdiction"), "{err}");
    }

    #[test]
    fn open_server_must_be_loopback() {
        let err = load(
            None,
            Overrides {
                listen: Some("0.0.0.0:3100".into()),
                ..Overrides::default()
            },
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("not a loopback address"), "{err}");
        assert!(load(
            None,
            Overrides {
                listen: Some("[::1]:3100".into()),
                ..Overrides::default()
            },
        )
        .is_ok());
    }

    #[test]
    fn tls_needs_a_certificate_and_its_key() {
        let cases = [
            ("[tls]\nkey_file = \"k.pem\"\n", "invalid tls.cert_file"),
            ("[tls]\ncert_file = \"c.pem\"\n", "invalid tls.key_file"),
            (
                "[tls]\nclient_ca_file = \"ca.pem\"\n",
                "invalid tls.client_ca_file: client certificates need TLS",
            ),
            (
                "[tls]\ncert_file = \"c.pem\"\nkey_file = \"k.pem\"\nreload_interval = \"0s\"\n",
                "invalid tls.reload_interval",
            ),
        ];
        for (text, want) in cases {
            let (_d, p) = write(text);
            let err = load(Some(&p), Overrides::default())
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{text}: {err}");
        }
        // A missing file is named, with the field.
        let (d, p) = write("[tls]\ncert_file = \"nope.pem\"\nkey_file = \"nope.key\"\n");
        let err = load(Some(&p), Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("invalid tls certificate: nope.pem: cannot read"),
            "{err}"
        );
        drop(d);
        let err = parse_file("agg.toml", "[tls]\ncert = \"c.pem\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("agg.toml:2:1") && err.contains("unknown field"),
            "{err}"
        );
    }

    #[test]
    fn bad_values_are_named() {
        let cases = [
            (
                "[[token]]\nname=\"a\"\nsha256=\"secret\"\nteam=\"t\"\nrole=\"read\"\n",
                "token[0].sha256",
            ),
            (
                &format!("[[token]]\nname=\"a\"\nsha256=\"{HASH}\"\nrole=\"read\"\n"),
                "token[0].team",
            ),
            (
                &format!("[[token]]\nname=\"a\"\nsha256=\"{HASH}\"\nteam=\"t\"\nrole=\"root\"\n"),
                "token[0].role",
            ),
            (
                &format!("[[token]]\nname=\"a\"\nsha256=\"{HASH}\"\nrole=\"admin\"\n[[token]]\nname=\"b\"\nsha256=\"{HASH}\"\nrole=\"admin\"\n"),
                "token[1].sha256",
            ),
            ("[limits]\nmax_line_bytes = 99999999\n", "limits.max_line_bytes"),
            ("[limits]\nreject_older_than = \"soon\"\n", "limits.reject_older_than"),
            ("[retention]\nteams = { \"a b\" = 3 }\n", "retention.teams.a b"),
            ("[storage]\ncompact_interval = \"0s\"\n", "storage.compact_interval"),
            ("ingest_concurrency = 0\n", "ingest_concurrency"),
            ("[listener]\nheader_read_timeout_ms = 5\n", "listener.header_read_timeout_ms"),
            ("max_streams_per_team = 0\n", "max_streams_per_team"),
            ("query_timeout = \"10ms\"\n", "query_timeout"),
            ("query_timeout = \"soon\"\n", "query_timeout"),
            ("metrics_listen = \"9811\"\n", "metrics_listen"),
            ("metrics_listen = \"127.0.0.1:3100\"\n", "metrics_listen"),
        ];
        for (text, field) in cases {
            let (_d, p) = write(text);
            let err = load(Some(&p), Overrides::default())
                .unwrap_err()
                .to_string();
            assert!(err.contains(&format!("invalid {field}")), "{text}: {err}");
        }
        // The token-hash error never echoes what was in the file.
        let (_d, p) =
            write("[[token]]\nname=\"a\"\nsha256=\"secret\"\nteam=\"t\"\nrole=\"read\"\n");
        let err = load(Some(&p), Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(!err.contains("secret"), "{err}");
    }
}
