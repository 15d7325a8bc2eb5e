//! The aggregator's Prometheus metrics (`fjord_aggregator_*`), served at `/metrics` on the
//! separate `metrics_listen` address (see docs/operations.md for why not the API port).
//!
//! Invariants: every label has a bounded set of values. Endpoints and reasons are enums;
//! status codes are the few the handlers answer; teams are the configured tokens' teams plus
//! at most [`MAX_UNCONFIGURED_TEAMS`] others seen in pushes without a team-bound token, and
//! every further one is counted as [`OTHER_TEAM`]. No label carries a query, a line or a
//! token. The store's size and chunk count are cached for [`STORE_SIZE_MAX_AGE`], so a
//! scrape costs at most one index count every few seconds however often it comes.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelSet, EncodeLabelValue, EncodeMetric, LabelValueEncoder,
};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tokio::sync::Semaphore;

use super::{AppState, Counters};
use crate::store::Store;

/// Teams not named by any configured token (open mode, or admin tokens pushing with a `team`
/// label) that get their own label value; later ones share [`OTHER_TEAM`].
pub const MAX_UNCONFIGURED_TEAMS: usize = 32;

/// The team label of pushes past [`MAX_UNCONFIGURED_TEAMS`]. Not a valid team name (team
/// names start with a letter or digit), so it cannot collide with one.
pub const OTHER_TEAM: &str = "_other";

/// How long a reading of the store's size and chunk count is served before a scrape reads
/// them again.
pub const STORE_SIZE_MAX_AGE: Duration = Duration::from_secs(5);

/// Upper bounds of the push latency buckets, in seconds: a small batch committed on a fast
/// disk (5 ms) to a large one behind a busy writer (30 s, past an agent's patience).
pub const PUSH_DURATION_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Upper bounds of the query latency buckets, in seconds: a label lookup (1 ms) to a query
/// over a month of a busy team (60 s).
pub const QUERY_DURATION_BUCKETS: [f64; 13] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 30.0, 60.0,
];

/// The endpoints `/metrics` tells apart: a fixed set, whatever paths clients ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    Push,
    /// `POST /otlp/v1/logs`, counted with the pushes.
    OtlpLogs,
    QueryRange,
    Query,
    Labels,
    LabelValues,
    Series,
    Tail,
    Stats,
    Erase,
    Erasures,
}

impl Endpoint {
    /// The endpoint a request path is routed to, if it is one `/metrics` counts.
    pub fn of(path: &str) -> Option<Endpoint> {
        Some(match path {
            "/loki/api/v1/push" => Endpoint::Push,
            "/otlp/v1/logs" => Endpoint::OtlpLogs,
            "/loki/api/v1/query_range" => Endpoint::QueryRange,
            "/loki/api/v1/query" => Endpoint::Query,
            "/loki/api/v1/labels" | "/loki/api/v1/label" => Endpoint::Labels,
            "/loki/api/v1/series" => Endpoint::Series,
            "/loki/api/v1/tail" => Endpoint::Tail,
            "/fjord/v1/stats" => Endpoint::Stats,
            "/fjord/v1/erase" => Endpoint::Erase,
            "/fjord/v1/erasures" => Endpoint::Erasures,
            p => {
                let name = p
                    .strip_prefix("/loki/api/v1/label/")?
                    .strip_suffix("/values")?;
                // One path segment, as the router's `{name}` matches.
                if name.is_empty() || name.contains('/') {
                    return None;
                }
                Endpoint::LabelValues
            }
        })
    }

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::Push => "push",
            Endpoint::OtlpLogs => "otlp_logs",
            Endpoint::QueryRange => "query_range",
            Endpoint::Query => "query",
            Endpoint::Labels => "labels",
            Endpoint::LabelValues => "label_values",
            Endpoint::Series => "series",
            Endpoint::Tail => "tail",
            Endpoint::Stats => "stats",
            Endpoint::Erase => "erase",
            Endpoint::Erasures => "erasures",
        }
    }
}

impl EncodeLabelValue for Endpoint {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        self.as_str().encode(encoder)
    }
}

/// Why a request ended as it did: the `reason` label. Handlers name it where the status
/// alone does not say (which limit shed a 429) through [`super::AppError::with_reason`];
/// otherwise it follows from the status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// 204: stored.
    Stored,
    /// 200 on a push: the batch id was stored before with the same lines.
    Duplicate,
    /// 2xx of other endpoints.
    Ok,
    BadRequest,
    Unauthorized,
    Forbidden,
    /// 408: the body arrived slower than `min_body_bytes_per_sec`.
    SlowBody,
    /// 409: the batch id was stored before with other lines.
    BatchIdConflict,
    /// 413: over a size limit.
    TooLarge,
    /// 415: an unsupported content type or encoding.
    UnsupportedMedia,
    /// 429: the ingest queue (`ingest_concurrency + ingest_queue`) was full.
    QueueFull,
    /// 429: the team's share of the memory for push bodies was in use.
    TeamMemory,
    /// 429: the push would add a stream past `max_streams_per_team`.
    StreamLimit,
    /// 429: `max_tails` live tails were open.
    MaxTails,
    /// 429: the token held `max_tails_per_token` live tails.
    TailsPerToken,
    /// 429 without a named reason.
    Throttled,
    /// 503: a failure on the server's side.
    Unavailable,
    /// Anything else (e.g. 404, 405).
    Other,
}

impl Reason {
    /// The reason a status implies when the handler named none.
    pub fn from_status(endpoint: Endpoint, status: StatusCode) -> Reason {
        match status.as_u16() {
            204 => Reason::Stored,
            200 if endpoint == Endpoint::Push => Reason::Duplicate,
            // OTLP's success is a 200 (there are no batch ids to be duplicates of).
            200 if endpoint == Endpoint::OtlpLogs => Reason::Stored,
            200..=299 | 101 => Reason::Ok,
            400 => Reason::BadRequest,
            401 => Reason::Unauthorized,
            403 => Reason::Forbidden,
            408 => Reason::SlowBody,
            409 => Reason::BatchIdConflict,
            413 => Reason::TooLarge,
            415 => Reason::UnsupportedMedia,
            429 => Reason::Throttled,
            503 => Reason::Unavailable,
            _ => Reason::Other,
        }
    }

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Stored => "stored",
            Reason::Duplicate => "duplicate",
            Reason::Ok => "ok",
            Reason::BadRequest => "bad_request",
            Reason::Unauthorized => "unauthorized",
            Reason::Forbidden => "forbidden",
            Reason::SlowBody => "slow_body",
            Reason::BatchIdConflict => "batch_id_conflict",
            Reason::TooLarge => "too_large",
            Reason::UnsupportedMedia => "unsupported_media",
            Reason::QueueFull => "queue_full",
            Reason::TeamMemory => "team_memory",
            Reason::StreamLimit => "stream_limit",
            Reason::MaxTails => "max_tails",
            Reason::TailsPerToken => "tails_per_token",
            Reason::Throttled => "throttled",
            Reason::Unavailable => "unavailable",
            Reason::Other => "other",
        }
    }
}

impl EncodeLabelValue for Reason {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        self.as_str().encode(encoder)
    }
}

/// The background tasks whose runs are counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Task {
    Compact,
    Checkpoint,
    Retention,
    /// Signing the audit chain's head.
    Sign,
}

impl Task {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Task::Compact => "compact",
            Task::Checkpoint => "checkpoint",
            Task::Retention => "retention",
            Task::Sign => "sign",
        }
    }
}

impl EncodeLabelValue for Task {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        self.as_str().encode(encoder)
    }
}

/// `{status, reason}` of a push.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PushLabels {
    pub status: u16,
    pub reason: Reason,
}

/// `{endpoint, reason}` of a 429.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ThrottleLabels {
    pub endpoint: Endpoint,
    pub reason: Reason,
}

/// `{endpoint}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabel {
    pub endpoint: Endpoint,
}

/// `{team}`: a configured team, an early unconfigured one, or [`OTHER_TEAM`].
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TeamLabel {
    pub team: String,
}

/// `{task}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TaskLabel {
    pub task: Task,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabel {
    version: &'static str,
}

/// The team label values: configured teams always, a bounded number of others.
#[derive(Debug)]
struct TeamLabels {
    configured: HashSet<String>,
    others: Mutex<HashSet<String>>,
}

impl TeamLabels {
    fn label(&self, team: &str) -> String {
        if self.configured.contains(team) {
            return team.to_owned();
        }
        let Ok(mut others) = self.others.lock() else {
            return OTHER_TEAM.to_owned();
        };
        if others.contains(team) {
            return team.to_owned();
        }
        if others.len() < MAX_UNCONFIGURED_TEAMS {
            others.insert(team.to_owned());
            return team.to_owned();
        }
        OTHER_TEAM.to_owned()
    }
}

/// Live tails open: read from the tail semaphore at scrape time, so it cannot drift.
#[derive(Debug)]
struct ActiveTails {
    permits: Arc<Semaphore>,
    max: usize,
}

impl Collector for ActiveTails {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let open = self.max.saturating_sub(self.permits.available_permits());
        let gauge = ConstGauge::new(i64::try_from(open).unwrap_or(i64::MAX));
        gauge.encode(encoder.encode_descriptor(
            "active_tails",
            "Live tails (WebSockets) open",
            None,
            gauge.metric_type(),
        )?)
    }
}

/// The TLS listener's events, read from the server's counters at scrape time: the accept
/// loop counts them before any request (and so any handler metric) exists.
#[derive(Debug)]
struct TlsEvents {
    counters: Arc<Counters>,
}

impl Collector for TlsEvents {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        use std::sync::atomic::Ordering::Relaxed;
        let c = &self.counters;
        for (name, help, value) in [
            (
                "tls_handshake_errors",
                "TLS handshakes refused or timed out (untrusted or missing client certificate, TLS below 1.2, no handshake within header_read_timeout)",
                c.tls_handshake_errors.load(Relaxed),
            ),
            (
                "tls_plain_http_refused",
                "Plain-HTTP connections to the TLS port, answered 400",
                c.plain_http_refused.load(Relaxed),
            ),
            (
                "tls_certificate_reloads",
                "Certificates reloaded from changed files",
                c.tls_reloads.load(Relaxed),
            ),
            (
                "tls_certificate_reload_errors",
                "Changed certificate files that did not load (the previous certificate stayed in use)",
                c.tls_reload_errors.load(Relaxed),
            ),
        ] {
            let counter = ConstCounter::new(value);
            counter.encode(encoder.encode_descriptor(name, help, None, counter.metric_type())?)?;
        }
        Ok(())
    }
}

/// The last reading of the store's size, and when it was taken.
#[derive(Debug, Default)]
struct StoreSizeCache {
    read_at: Option<Instant>,
}

/// Every metric the aggregator exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    teams: TeamLabels,
    /// Pushes by HTTP status and reason.
    pub pushes: Family<PushLabels, Counter>,
    /// Entries stored, per team.
    pub ingested_entries: Family<TeamLabel, Counter>,
    /// Bytes of log lines stored, per team.
    pub ingested_bytes: Family<TeamLabel, Counter>,
    /// Pushes answered `duplicate`, per team.
    pub duplicates: Family<TeamLabel, Counter>,
    /// Requests answered 429, per endpoint and the limit that shed them.
    pub throttled: Family<ThrottleLabels, Counter>,
    /// Time to answer a push that was stored or found duplicate.
    pub push_duration: Histogram,
    /// Time to answer a read or admin request, per endpoint.
    pub query_duration: Family<EndpointLabel, Histogram>,
    /// Background task runs, and those that failed.
    pub maintenance_runs: Family<TaskLabel, Counter>,
    pub maintenance_errors: Family<TaskLabel, Counter>,
    /// Bytes of the database and its WAL, as last read.
    pub store_bytes: Gauge,
    /// Chunks stored, as last read.
    pub store_chunks: Gauge,
    /// Single flight for store size readings: a scrape that finds one running serves the
    /// cached values instead of starting another.
    store_size_reading: Semaphore,
    store_size: Mutex<StoreSizeCache>,
}

impl Metrics {
    /// Registers every metric under `fjord_aggregator_`. `teams` are the configured tokens'
    /// teams; `tail_permits` is the semaphore of `max_tails` live tails; `counters` holds the
    /// TLS listener's events.
    pub fn new<'a>(
        teams: impl IntoIterator<Item = &'a str>,
        tail_permits: Arc<Semaphore>,
        max_tails: usize,
        counters: Arc<Counters>,
    ) -> Metrics {
        let m = Metrics {
            registry: Registry::default(),
            teams: TeamLabels {
                configured: teams.into_iter().map(str::to_owned).collect(),
                others: Mutex::default(),
            },
            pushes: Family::default(),
            ingested_entries: Family::default(),
            ingested_bytes: Family::default(),
            duplicates: Family::default(),
            throttled: Family::default(),
            push_duration: Histogram::new(PUSH_DURATION_BUCKETS),
            query_duration: Family::new_with_constructor(|| Histogram::new(QUERY_DURATION_BUCKETS)),
            maintenance_runs: Family::default(),
            maintenance_errors: Family::default(),
            store_bytes: Gauge::default(),
            store_chunks: Gauge::default(),
            store_size_reading: Semaphore::new(1),
            store_size: Mutex::default(),
        };
        let mut r = Registry::with_prefix("fjord_aggregator");
        r.register(
            "pushes",
            "Push requests (Loki push and OTLP logs) by HTTP status and reason",
            m.pushes.clone(),
        );
        r.register(
            "ingested_entries",
            "Entries stored, per team",
            m.ingested_entries.clone(),
        );
        r.register(
            "ingested_bytes",
            "Bytes of log lines stored, per team",
            m.ingested_bytes.clone(),
        );
        r.register(
            "duplicate_batches",
            "Pushes whose batch id was stored before with the same lines (acknowledged, not stored again), per team",
            m.duplicates.clone(),
        );
        r.register(
            "throttled_requests",
            "Requests answered 429, per endpoint and the limit that shed them",
            m.throttled.clone(),
        );
        r.register(
            "push_duration_seconds",
            "Time to answer a push that was stored or was a duplicate",
            m.push_duration.clone(),
        );
        r.register(
            "query_duration_seconds",
            "Time to answer a read or admin request, per endpoint",
            m.query_duration.clone(),
        );
        r.register(
            "maintenance_runs",
            "Runs of the background tasks (compact, checkpoint, retention)",
            m.maintenance_runs.clone(),
        );
        r.register(
            "maintenance_errors",
            "Runs of the background tasks that failed (retried next interval)",
            m.maintenance_errors.clone(),
        );
        r.register(
            "store_size_bytes",
            "Bytes of the SQLite database and its WAL (read at most every 5 s)",
            m.store_bytes.clone(),
        );
        r.register(
            "store_chunks",
            "Chunks stored (read at most every 5 s)",
            m.store_chunks.clone(),
        );
        let build_info = Family::<VersionLabel, Gauge>::default();
        build_info
            .get_or_create(&VersionLabel {
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);
        r.register(
            "build_info",
            "Always 1; the version label is the aggregator's version",
            build_info,
        );
        r.register_collector(Box::new(ActiveTails {
            permits: tail_permits,
            max: max_tails,
        }));
        r.register_collector(Box::new(TlsEvents { counters }));
        #[cfg(target_os = "linux")]
        r.register_collector(Box::new(fjord_cli::process::ProcessCollector));
        Metrics { registry: r, ..m }
    }

    /// The `{team}` label of `team`, bounded as the module says.
    pub fn team(&self, team: &str) -> TeamLabel {
        TeamLabel {
            team: self.teams.label(team),
        }
    }

    /// Counts a stored push of `entries` entries and `bytes` line bytes for `team`.
    pub fn ingested(&self, team: &str, entries: u64, bytes: u64) {
        let label = self.team(team);
        self.ingested_entries.get_or_create(&label).inc_by(entries);
        self.ingested_bytes.get_or_create(&label).inc_by(bytes);
    }

    /// Counts a run of a background task.
    pub fn maintenance(&self, task: Task, ok: bool) {
        let label = TaskLabel { task };
        self.maintenance_runs.get_or_create(&label).inc();
        if !ok {
            self.maintenance_errors.get_or_create(&label).inc();
        }
    }

    /// Counts one answered request of `endpoint` that took `elapsed`.
    pub fn observe(
        &self,
        endpoint: Endpoint,
        status: StatusCode,
        reason: Option<Reason>,
        elapsed: Duration,
    ) {
        let reason = reason.unwrap_or_else(|| Reason::from_status(endpoint, status));
        if status == StatusCode::TOO_MANY_REQUESTS {
            self.throttled
                .get_or_create(&ThrottleLabels { endpoint, reason })
                .inc();
        }
        match endpoint {
            Endpoint::Push | Endpoint::OtlpLogs => {
                self.pushes
                    .get_or_create(&PushLabels {
                        status: status.as_u16(),
                        reason,
                    })
                    .inc();
                // Only pushes that reached the store: a refusal's time says nothing about
                // ingest latency and would pull the quantiles down.
                if status.is_success() {
                    self.push_duration.observe(elapsed.as_secs_f64());
                }
            }
            // A tail's answer is its upgrade; how long it stays open is not a latency.
            Endpoint::Tail => {}
            _ => self
                .query_duration
                .get_or_create(&EndpointLabel { endpoint })
                .observe(elapsed.as_secs_f64()),
        }
    }

    /// Reads the store's size and chunk count again if the last reading is older than
    /// [`STORE_SIZE_MAX_AGE`], on the blocking pool; a failure keeps the old values.
    pub async fn refresh_store_size(&self, store: &Arc<Store>) {
        let Ok(_reading) = self.store_size_reading.try_acquire() else {
            return;
        };
        let fresh = self
            .store_size
            .lock()
            .ok()
            .and_then(|c| c.read_at)
            .is_some_and(|t| t.elapsed() < STORE_SIZE_MAX_AGE);
        if fresh {
            return;
        }
        let s = store.clone();
        match tokio::task::spawn_blocking(move || s.size()).await {
            Ok(Ok(size)) => {
                self.store_bytes
                    .set(i64::try_from(size.bytes).unwrap_or(i64::MAX));
                self.store_chunks
                    .set(i64::try_from(size.chunks).unwrap_or(i64::MAX));
            }
            Ok(Err(err)) => tracing::warn!(%err, "reading the store size for /metrics failed"),
            Err(err) => tracing::warn!(%err, "store size task failed"),
        }
        if let Ok(mut c) = self.store_size.lock() {
            c.read_at = Some(Instant::now());
        }
    }

    /// The OpenMetrics text of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail; an encoder error would be a bug in a collector,
        // and then the scrape shows what was written before it.
        if let Err(err) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::warn!(%err, "encoding /metrics failed");
        }
        out
    }
}

/// The middleware on the API router that times and counts every request to an
/// [`Endpoint`]; other paths pass through uncounted.
pub async fn track(State(st): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let Some(endpoint) = Endpoint::of(req.uri().path()) else {
        return next.run(req).await;
    };
    let start = Instant::now();
    let resp = next.run(req).await;
    let reason = resp.extensions().get::<Reason>().copied();
    st.metrics
        .observe(endpoint, resp.status(), reason, start.elapsed());
    resp
}

/// `GET /metrics` on the metrics listener.
pub async fn metrics_text(State(st): State<Arc<AppState>>) -> impl IntoResponse {
    st.metrics.refresh_store_size(&st.store).await;
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        st.metrics.encode(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_a_fixed_set() {
        assert_eq!(Endpoint::of("/loki/api/v1/push"), Some(Endpoint::Push));
        assert_eq!(Endpoint::of("/otlp/v1/logs"), Some(Endpoint::OtlpLogs));
        assert_eq!(
            Endpoint::of("/loki/api/v1/label/pod/values"),
            Some(Endpoint::LabelValues)
        );
        assert_eq!(Endpoint::of("/loki/api/v1/label//values"), None);
        assert_eq!(Endpoint::of("/loki/api/v1/label/a/b/values"), None);
        assert_eq!(Endpoint::of("/v1/info"), None);
        assert_eq!(Endpoint::of("/anything"), None);
    }

    #[test]
    fn team_labels_are_bounded() {
        let m = Metrics::new(["payments"], Arc::new(Semaphore::new(1)), 1, Arc::default());
        assert_eq!(m.team("payments").team, "payments");
        for i in 0..MAX_UNCONFIGURED_TEAMS {
            assert_eq!(m.team(&format!("t{i}")).team, format!("t{i}"));
        }
        assert_eq!(m.team("one-too-many").team, OTHER_TEAM);
        // Those already labelled keep their label; configured teams always have theirs.
        assert_eq!(m.team("t0").team, "t0");
        assert_eq!(m.team("payments").team, "payments");
    }

    #[test]
    fn reasons_follow_the_status_unless_named() {
        assert_eq!(
            Reason::from_status(Endpoint::Push, StatusCode::OK),
            Reason::Duplicate
        );
        assert_eq!(
            Reason::from_status(Endpoint::Query, StatusCode::OK),
            Reason::Ok
        );
        assert_eq!(
            Reason::from_status(Endpoint::OtlpLogs, StatusCode::OK),
            Reason::Stored
        );
        let m = Metrics::new([], Arc::new(Semaphore::new(1)), 1, Arc::default());
        m.observe(
            Endpoint::Push,
            StatusCode::TOO_MANY_REQUESTS,
            Some(Reason::QueueFull),
            Duration::ZERO,
        );
        let text = m.encode();
        assert!(
            text.contains("fjord_aggregator_pushes_total{status=\"429\",reason=\"queue_full\"} 1"),
            "{text}"
        );
        assert!(
            text.contains(
                "fjord_aggregator_throttled_requests_total{endpoint=\"push\",reason=\"queue_full\"} 1"
            ),
            "{text}"
        );
        assert!(text.contains("fjord_aggregator_active_tails 0"), "{text}");
        assert!(
            text.contains("fjord_aggregator_build_info{version="),
            "{text}"
        );
    }
}
