//! The agent's Prometheus metrics, registered once and shared by every task through an
//! `Arc<Metrics>`. Labels carry file paths and rule names only — never line content.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// A label set naming one followed file.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FileLabel {
    pub path: String,
}

/// A label set naming one redaction rule.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RuleLabel {
    pub rule: String,
}

/// A label set naming a file and why bytes of it were lost.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LossLabel {
    pub path: String,
    pub reason: String,
}

/// A label set naming a reason.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}

/// A label set naming a directory (a log root or the state directory).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DirLabel {
    pub dir: String,
}

/// A label set naming an HTTP status code, or `error` when no answer came.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabel {
    pub status: String,
}

/// A label set naming the agent's version.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabel {
    version: String,
}

/// Upper bounds of the send latency buckets, in seconds: from a fast local answer (5 ms) to
/// the slowest a healthy aggregator should take under load (30 s).
pub const SEND_DURATION_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Every metric the agent exports.
pub struct Metrics {
    registry: Registry,
    // Tailing.
    pub files_watched: Gauge,
    pub files_open: Gauge,
    pub bytes_read: Counter,
    pub lines_read: Counter,
    pub rotations: Counter,
    pub truncations: Counter,
    pub lines_cut: Counter,
    pub lines_invalid_utf8: Counter,
    pub lines_dropped_by_rule: Counter,
    pub partial_lines_flushed: Counter,
    pub open_errors: Family<ReasonLabel, Counter>,
    pub lag_bytes: Family<FileLabel, Gauge>,
    pub files_failed: Counter,
    /// Ledger rows the aggregator took (`POST /v1/ledger`).
    pub ledger_rows_shipped: Counter,
    /// Ledger pushes that failed and are retried.
    pub ledger_ship_failures: Counter,
    pub files_refused: Family<ReasonLabel, Counter>,
    pub lost: Family<LossLabel, Counter>,
    /// Unix seconds when each file's oldest unacknowledged byte was first seen.
    pub oldest_unacked: Family<FileLabel, Gauge<f64, AtomicU64>>,
    /// Its age, computed at each scrape from `oldest_unacked`.
    pub oldest_unacked_age: Family<FileLabel, Gauge<f64, AtomicU64>>,
    /// The files that have an `oldest_unacked` value (families cannot be listed).
    backlog_files: std::sync::Mutex<std::collections::HashMap<String, f64>>,
    // Rules.
    pub redactions: Family<RuleLabel, Counter>,
    pub rules_reloads: Counter,
    pub rules_reload_failures: Counter,
    // Shipping.
    pub batches_sent: Counter,
    pub batches_acked: Counter,
    pub batches_duplicate: Counter,
    pub batches_retried: Counter,
    pub batches_dead_lettered: Counter,
    pub raw_bytes_sent: Counter,
    pub compressed_bytes_sent: Counter,
    pub records_sent: Counter,
    pub in_flight: Gauge,
    pub queued: Gauge,
    pub last_ack_unix_seconds: Gauge<f64, AtomicU64>,
    pub residency_blocked: Gauge,
    pub residency_blocks: Family<ReasonLabel, Counter>,
    // Own health.
    pub aggregator_up: Gauge,
    pub state_dir_writable: Gauge,
    pub filesystem_used_ratio: Family<DirLabel, Gauge<f64, AtomicU64>>,
    /// Time from sending a push to its HTTP answer, per attempt that got one.
    pub send_duration: Histogram,
    /// Push answers by HTTP status; `error` for attempts that got no answer.
    pub responses: Family<StatusLabel, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Creates and registers every metric under the `fjord_agent_` prefix.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("fjord_agent");
        let m = Metrics {
            files_watched: Gauge::default(),
            files_open: Gauge::default(),
            bytes_read: Counter::default(),
            lines_read: Counter::default(),
            rotations: Counter::default(),
            truncations: Counter::default(),
            lines_cut: Counter::default(),
            lines_invalid_utf8: Counter::default(),
            lines_dropped_by_rule: Counter::default(),
            partial_lines_flushed: Counter::default(),
            open_errors: Family::default(),
            lag_bytes: Family::default(),
            files_failed: Counter::default(),
            ledger_rows_shipped: Counter::default(),
            ledger_ship_failures: Counter::default(),
            files_refused: Family::default(),
            lost: Family::default(),
            oldest_unacked: Family::default(),
            oldest_unacked_age: Family::default(),
            backlog_files: Default::default(),
            redactions: Family::default(),
            rules_reloads: Counter::default(),
            rules_reload_failures: Counter::default(),
            batches_sent: Counter::default(),
            batches_acked: Counter::default(),
            batches_duplicate: Counter::default(),
            batches_retried: Counter::default(),
            batches_dead_lettered: Counter::default(),
            raw_bytes_sent: Counter::default(),
            compressed_bytes_sent: Counter::default(),
            records_sent: Counter::default(),
            in_flight: Gauge::default(),
            queued: Gauge::default(),
            last_ack_unix_seconds: Gauge::default(),
            residency_blocked: Gauge::default(),
            residency_blocks: Family::default(),
            aggregator_up: Gauge::default(),
            state_dir_writable: Gauge::default(),
            filesystem_used_ratio: Family::default(),
            send_duration: Histogram::new(SEND_DURATION_BUCKETS),
            responses: Family::default(),
            registry: Registry::default(),
        };
        let r = &mut registry;
        r.register(
            "files_watched",
            "Files currently followed",
            m.files_watched.clone(),
        );
        r.register(
            "files_open",
            "Followed files with an open handle",
            m.files_open.clone(),
        );
        r.register(
            "read_bytes",
            "Bytes read from log files",
            m.bytes_read.clone(),
        );
        r.register(
            "read_lines",
            "Lines read from log files",
            m.lines_read.clone(),
        );
        r.register(
            "rotations",
            "Files rotated away (renamed or deleted) and read to their end",
            m.rotations.clone(),
        );
        r.register(
            "truncations",
            "Files truncated or replaced in place",
            m.truncations.clone(),
        );
        r.register(
            "lines_cut",
            "Lines longer than max_line_bytes, cut with a marker",
            m.lines_cut.clone(),
        );
        r.register(
            "lines_invalid_utf8",
            "Lines with invalid UTF-8, replaced with U+FFFD",
            m.lines_invalid_utf8.clone(),
        );
        r.register(
            "lines_dropped_by_rule",
            "Lines dropped by a drop_line rule",
            m.lines_dropped_by_rule.clone(),
        );
        r.register(
            "partial_lines_flushed",
            "Last lines without a newline flushed after the partial-line timeout",
            m.partial_lines_flushed.clone(),
        );
        r.register(
            "open_errors",
            "Files that matched but could not be opened",
            m.open_errors.clone(),
        );
        r.register(
            "lag_bytes",
            "Bytes between the acknowledged checkpoint and the end of each file",
            m.lag_bytes.clone(),
        );
        r.register(
            "redactions",
            "Values redacted, per rule",
            m.redactions.clone(),
        );
        r.register(
            "rules_reloads",
            "Rule sets reloaded and put in force",
            m.rules_reloads.clone(),
        );
        r.register(
            "rules_reload_failures",
            "Rule set reloads refused because the new version is invalid",
            m.rules_reload_failures.clone(),
        );
        r.register(
            "batches_sent",
            "Batch send attempts",
            m.batches_sent.clone(),
        );
        r.register(
            "batches_acked",
            "Batches the aggregator acknowledged as stored",
            m.batches_acked.clone(),
        );
        r.register(
            "batches_duplicate",
            "Batches the aggregator had stored before (counted as acknowledged)",
            m.batches_duplicate.clone(),
        );
        r.register(
            "batches_retried",
            "Batch sends retried after a transient fault",
            m.batches_retried.clone(),
        );
        r.register(
            "batches_dead_lettered",
            "Batches rejected as malformed and written to the dead-letter directory",
            m.batches_dead_lettered.clone(),
        );
        r.register(
            "raw_bytes_acked",
            "Raw line bytes in acknowledged batches",
            m.raw_bytes_sent.clone(),
        );
        r.register(
            "compressed_bytes_acked",
            "Compressed body bytes of acknowledged batches",
            m.compressed_bytes_sent.clone(),
        );
        r.register(
            "records_acked",
            "Records in acknowledged batches",
            m.records_sent.clone(),
        );
        r.register(
            "in_flight_batches",
            "Batches being sent",
            m.in_flight.clone(),
        );
        r.register(
            "queued_batches",
            "Batches formed and waiting for a send slot",
            m.queued.clone(),
        );
        r.register(
            "last_ack_timestamp_seconds",
            "Unix time of the last acknowledgement",
            m.last_ack_unix_seconds.clone(),
        );
        r.register(
            "residency_blocked",
            "1 while the residency guard refuses the destination",
            m.residency_blocked.clone(),
        );
        r.register(
            "residency_blocks",
            "Residency checks that refused the destination",
            m.residency_blocks.clone(),
        );
        r.register(
            "files_failed",
            "Files whose reading stopped because a batch of them could not be formed (read again after restart)",
            m.files_failed.clone(),
        );
        r.register(
            "ledger_rows_shipped",
            "Ledger rows the aggregator took, so the pod's ledger outlives it",
            m.ledger_rows_shipped.clone(),
        );
        r.register(
            "ledger_ship_failures",
            "Ledger pushes that failed and are retried",
            m.ledger_ship_failures.clone(),
        );
        r.register(
            "files_refused",
            "Matching files not followed: symlink_outside (resolves outside the roots of paths) or secret (the agent's own secret files)",
            m.files_refused.clone(),
        );
        r.register(
            "lost_bytes",
            "Bytes a rotation deleted (rotated_away) or a truncation cut (truncated) before they were read",
            m.lost.clone(),
        );
        r.register(
            "oldest_unacked_timestamp_seconds",
            "Unix time when the oldest byte not yet acknowledged by the aggregator was first seen in the file",
            m.oldest_unacked.clone(),
        );
        r.register(
            "oldest_unacked_age_seconds",
            "Age of the oldest line not yet acknowledged by the aggregator (0 when all is shipped)",
            m.oldest_unacked_age.clone(),
        );
        r.register(
            "aggregator_up",
            "1 while the aggregator answers; 0 after a connection failure",
            m.aggregator_up.clone(),
        );
        r.register(
            "state_dir_writable",
            "1 while the last write probe of the state directory succeeded",
            m.state_dir_writable.clone(),
        );
        r.register(
            "filesystem_used_ratio",
            "Used share (0-1) of the filesystem of each log root and of the state directory",
            m.filesystem_used_ratio.clone(),
        );
        r.register(
            "send_duration_seconds",
            "Time from sending a batch to the aggregator's HTTP answer, per attempt",
            m.send_duration.clone(),
        );
        r.register(
            "responses",
            "Push attempts by the aggregator's HTTP status (error: no answer)",
            m.responses.clone(),
        );
        let build_info = Family::<VersionLabel, Gauge>::default();
        build_info
            .get_or_create(&VersionLabel {
                version: env!("CARGO_PKG_VERSION").to_owned(),
            })
            .set(1);
        r.register(
            "build_info",
            "Always 1; the version label is the agent's version",
            build_info,
        );
        #[cfg(target_os = "linux")]
        r.register_collector(Box::new(fjord_cli::process::ProcessCollector));
        Metrics { registry, ..m }
    }

    /// The lost-bytes counter of one file and reason.
    pub fn lost_bytes(&self, path: &str, reason: &str) -> Counter {
        self.lost
            .get_or_create(&LossLabel {
                path: path.to_owned(),
                reason: reason.to_owned(),
            })
            .clone()
    }

    /// Sets when a file's oldest unacknowledged byte was first seen (Unix ns), or that
    /// everything it holds is acknowledged (`None`).
    pub fn set_backlog(&self, path: &str, oldest_ns: Option<i64>) {
        let label = FileLabel {
            path: path.to_owned(),
        };
        let secs = oldest_ns.map_or(0.0, |ns| ns as f64 / 1e9);
        self.oldest_unacked.get_or_create(&label).set(secs);
        if let Ok(mut m) = self.backlog_files.lock() {
            m.insert(path.to_owned(), secs);
        }
    }

    /// Drops a finished file's backlog gauges.
    pub fn forget_backlog(&self, path: &str) {
        let label = FileLabel {
            path: path.to_owned(),
        };
        self.oldest_unacked.remove(&label);
        self.oldest_unacked_age.remove(&label);
        if let Ok(mut m) = self.backlog_files.lock() {
            m.remove(path);
        }
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        // Ages are computed now, so they keep growing while the tailer waits on a full
        // queue (when the gauges it sets are not refreshed).
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        if let Ok(m) = self.backlog_files.lock() {
            for (path, &since) in m.iter() {
                let age = if since > 0.0 {
                    (now - since).max(0.0)
                } else {
                    0.0
                };
                self.oldest_unacked_age
                    .get_or_create(&FileLabel { path: path.clone() })
                    .set(age);
            }
        }
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }

    /// Counts one push answer: its HTTP status, or `None` when no answer came.
    pub fn record_response(&self, status: Option<u16>) {
        let status = status.map_or_else(|| "error".to_owned(), |s| s.to_string());
        self.responses.get_or_create(&StatusLabel { status }).inc();
    }

    /// Counts per-rule redactions of one batch.
    pub fn add_redactions(&self, by_rule: &std::collections::BTreeMap<String, u64>) {
        for (rule, n) in by_rule {
            self.redactions
                .get_or_create(&RuleLabel { rule: rule.clone() })
                .inc_by(*n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_names_every_family() {
        let m = Metrics::new();
        m.batches_acked.inc();
        m.lag_bytes
            .get_or_create(&FileLabel {
                path: "/var/log/app.log".into(),
            })
            .set(42);
        let text = m.encode();
        assert!(text.contains("fjord_agent_batches_acked_total 1"), "{text}");
        assert!(
            text.contains("fjord_agent_lag_bytes{path=\"/var/log/app.log\"} 42"),
            "{text}"
        );
        assert!(text.contains("fjord_agent_residency_blocked 0"), "{text}");
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn exposition_has_latency_responses_build_and_process_families() {
        let m = Metrics::new();
        m.send_duration.observe(0.02);
        m.record_response(Some(204));
        m.record_response(None);
        let text = m.encode();
        for want in [
            "# TYPE fjord_agent_send_duration_seconds histogram",
            "fjord_agent_send_duration_seconds_bucket{le=\"0.005\"} 0",
            "fjord_agent_send_duration_seconds_bucket{le=\"0.025\"} 1",
            "fjord_agent_send_duration_seconds_bucket{le=\"30.0\"} 1",
            "fjord_agent_send_duration_seconds_count 1",
            "fjord_agent_responses_total{status=\"204\"} 1",
            "fjord_agent_responses_total{status=\"error\"} 1",
            concat!(
                "fjord_agent_build_info{version=\"",
                env!("CARGO_PKG_VERSION"),
                "\"} 1"
            ),
        ] {
            assert!(text.contains(want), "no {want} in {text}");
        }
        if cfg!(target_os = "linux") {
            for want in [
                "# TYPE fjord_agent_process_cpu_seconds counter",
                "fjord_agent_process_cpu_seconds_total ",
                "fjord_agent_process_resident_memory_bytes ",
                "fjord_agent_process_open_fds ",
            ] {
                assert!(text.contains(want), "no {want} in {text}");
            }
        }
    }
}
