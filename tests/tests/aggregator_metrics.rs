//! The aggregator's `/metrics` through the real binary: on its own `metrics_listen` port and
//! not on the API port; after a stored push, a duplicate, a push shed for the team's stream
//! limit (429), a refused push and a query, a scrape shows each of those series moved from
//! the scrape before, the store's chunk count and size grew, and the background tasks'
//! runs are counted.

use std::net::SocketAddr;
use std::time::Duration;

use fjord_e2e::{free_port, http_get, http_request, test_dir, wait_for, Aggregator};

/// The value of `name{labels}` in a metrics text; 0 when the series is absent.
fn series(text: &str, name_and_labels: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name_and_labels)?.strip_prefix(' '))
        .map_or(0.0, |v| v.trim().parse().expect("a number"))
}

fn scrape(addr: SocketAddr) -> String {
    let (status, body) = http_get(addr, "/metrics").expect("scrape");
    assert_eq!(status, 200, "{body}");
    body
}

fn push(agg: &Aggregator, batch_id: &str, file: &str, now: u128, line: &str) -> u16 {
    let body = format!(
        r#"{{"streams":[{{"stream":{{"team":"payments","file":"{file}"}},"values":[["{now}","{line}"]]}}]}}"#
    );
    let (status, _) = http_request(
        agg.addr,
        "POST",
        "/loki/api/v1/push",
        &[
            ("Content-Type", "application/json"),
            ("Fjord-Batch-Id", batch_id),
        ],
        body.as_bytes(),
    )
    .expect("push");
    status
}

#[test]
fn metrics_move_with_pushes_queries_and_refusals() {
    let dir = test_dir();
    let metrics: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    // One stream per team, so a second file's push is shed with 429; background tasks every
    // second, so their runs show up.
    let agg = Aggregator::start_with_config(
        dir.path(),
        &format!(
            "metrics_listen = \"{metrics}\"\nmax_streams_per_team = 1\n\
             [storage]\ncompact_interval = \"1s\"\ncheckpoint_interval = \"1s\"\n\
             [retention]\ninterval = \"1s\"\n"
        ),
    );
    wait_for("the metrics listener", Duration::from_secs(10), || {
        matches!(http_get(metrics, "/metrics"), Ok((200, _)))
    });
    // The API port does not serve it: see docs/operations.md.
    assert_eq!(http_get(agg.addr, "/metrics").expect("get").0, 404);

    let before = scrape(metrics);
    let v0 = |s: &str| series(&before, s);
    let stored = r#"fjord_aggregator_pushes_total{status="204",reason="stored"}"#;
    let duplicate = r#"fjord_aggregator_pushes_total{status="200",reason="duplicate"}"#;
    let shed = r#"fjord_aggregator_pushes_total{status="429",reason="stream_limit"}"#;
    let bad = r#"fjord_aggregator_pushes_total{status="400",reason="bad_request"}"#;
    let throttled =
        r#"fjord_aggregator_throttled_requests_total{endpoint="push",reason="stream_limit"}"#;
    let entries = r#"fjord_aggregator_ingested_entries_total{team="payments"}"#;
    let bytes = r#"fjord_aggregator_ingested_bytes_total{team="payments"}"#;
    let dups = r#"fjord_aggregator_duplicate_batches_total{team="payments"}"#;
    let push_count = "fjord_aggregator_push_duration_seconds_count";
    let query_count = r#"fjord_aggregator_query_duration_seconds_count{endpoint="query_range"}"#;
    for s in [
        stored,
        duplicate,
        shed,
        entries,
        dups,
        push_count,
        query_count,
    ] {
        assert_eq!(v0(s), 0.0, "{s} before any push");
    }
    assert_eq!(series(&before, "fjord_aggregator_store_chunks"), 0.0);

    let line = "metrics e2e line";
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos();
    assert_eq!(push(&agg, "b-1", "/a.log", now, line), 204);
    // The same batch again: a duplicate.
    assert_eq!(push(&agg, "b-1", "/a.log", now, line), 200);
    assert_eq!(push(&agg, "b-2", "/b.log", now, line), 429);
    let (status, _) = http_request(
        agg.addr,
        "POST",
        "/loki/api/v1/push",
        &[("Content-Type", "application/json")],
        b"{not json",
    )
    .expect("push");
    assert_eq!(status, 400);
    let (status, body) = http_get(
        agg.addr,
        "/loki/api/v1/query_range?query=%7Bteam%3D%22payments%22%7D&since=1h",
    )
    .expect("query");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(line), "{body}");

    let after = scrape(metrics);
    let d = |s: &str| series(&after, s) - v0(s);
    assert_eq!(d(stored), 1.0, "{after}");
    assert_eq!(d(duplicate), 1.0);
    assert_eq!(d(shed), 1.0);
    assert_eq!(d(bad), 1.0);
    assert_eq!(d(throttled), 1.0);
    assert_eq!(d(entries), 1.0);
    assert_eq!(d(bytes), line.len() as f64);
    assert_eq!(d(dups), 1.0);
    assert_eq!(d(push_count), 2.0);
    assert_eq!(d(query_count), 1.0);
    assert!(series(&after, "fjord_aggregator_process_resident_memory_bytes") > 0.0);
    assert!(series(&after, "fjord_aggregator_process_open_fds") > 0.0);
    // The store figures are cached for a few seconds; they catch up without a restart.
    wait_for("the chunk count to grow", Duration::from_secs(20), || {
        let m = scrape(metrics);
        series(&m, "fjord_aggregator_store_chunks") >= 1.0
            && series(&m, "fjord_aggregator_store_size_bytes") > 0.0
    });
    wait_for(
        "a run of each background task",
        Duration::from_secs(20),
        || {
            let m = scrape(metrics);
            ["compact", "checkpoint", "retention"].iter().all(|t| {
                series(
                    &m,
                    &format!("fjord_aggregator_maintenance_runs_total{{task=\"{t}\"}}"),
                ) >= 1.0
            })
        },
    );
    let m = scrape(metrics);
    for t in ["compact", "checkpoint", "retention"] {
        let errors = format!("fjord_aggregator_maintenance_errors_total{{task=\"{t}\"}}");
        assert_eq!(series(&m, &errors), 0.0, "{t} failed: {m}");
    }
    assert!(!after.contains(line), "a log line in /metrics");
}
