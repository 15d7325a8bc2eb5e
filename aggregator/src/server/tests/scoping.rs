//! A read token sees only its team's streams, in every read endpoint and query form: one test
//! per endpoint, and per query form of `/query` and `/query_range`, over the same data of two
//! teams (`loki::seed`: payments, and search with a label and a field payments lacks).
//!
//! Each test shows three things: the payments read token's answer holds payments' data; it
//! holds nothing of search's; and the admin's answer to the same request does hold search's,
//! so the request would show it were it not scoped. Where an endpoint takes a form POST as
//! well as a GET, both are checked.
//!
//! `format_query` has no test here: it rewrites the query text and reads no stored data.

use super::loki::{hour_ago, post_form, push_admin, seed, setup, team_stream, S};
use super::*;

/// The minute both teams' data covers: `[t0, end]` in ns.
struct Window {
    t0: i64,
    end: i64,
}

impl Window {
    /// `start=…&end=…` in ns.
    fn range(&self) -> String {
        format!("start={}&end={}", self.t0, self.end)
    }
}

/// Whether an endpoint takes its parameters as a form POST too.
#[derive(Clone, Copy, PartialEq)]
enum Forms {
    GetOnly,
    GetAndPost,
}

/// One request's answers over both teams' data: the payments read token's, once per form the
/// endpoint takes, and the admin's (GET).
struct Answers {
    reader: Vec<serde_json::Value>,
    admin: serde_json::Value,
}

impl Answers {
    /// Every reader answer passes `holds_payments` and never mentions search; the admin's
    /// answer mentions search.
    fn only_payments(&self, holds_payments: impl Fn(&serde_json::Value) -> bool) {
        for r in &self.reader {
            assert!(holds_payments(r), "payments' data missing: {r}");
            assert!(
                !r.to_string().contains("search"),
                "another team leaked: {r}"
            );
        }
        assert!(
            self.admin.to_string().contains("search"),
            "the request does not reach search's data even for the admin: {}",
            self.admin
        );
    }
}

/// Seeds both teams, then sends `path` with the parameters `params` builds as the payments
/// reader (GET, and form POST for [`Forms::GetAndPost`]) and as the admin; each must be a 200.
async fn answers(path: &str, forms: Forms, params: impl Fn(&Window) -> String) -> Answers {
    let (_dir, app, t0) = setup();
    seed(&app, t0).await;
    let params = params(&Window {
        t0,
        end: t0 + 60 * S,
    });
    let uri = format!("{path}?{params}");
    let mut requests = vec![get(&uri, Some(READ_PAY))];
    if forms == Forms::GetAndPost {
        requests.push(post_form(path, &params, READ_PAY));
    }
    let mut reader = Vec::new();
    for req in requests {
        let method = req.method().clone();
        let (s, _, body) = send(&app, req).await;
        assert_eq!(s, StatusCode::OK, "{method} {uri}: {body}");
        reader.push(body);
    }
    let (s, _, admin) = send(&app, get(&uri, Some(ADMIN))).await;
    assert_eq!(s, StatusCode::OK, "admin {uri}: {admin}");
    Answers { reader, admin }
}

/// Every line of a streams answer.
fn lines(body: &serde_json::Value) -> Vec<&str> {
    body["data"]["result"]
        .as_array()
        .map(|r| {
            r.iter()
                .flat_map(|s| s["values"].as_array().into_iter().flatten())
                .filter_map(|v| v[1].as_str())
                .collect()
        })
        .unwrap_or_default()
}

/// The `team` label of each series of a metric answer.
fn teams(body: &serde_json::Value) -> Vec<&str> {
    body["data"]["result"]
        .as_array()
        .map(|r| {
            r.iter()
                .filter_map(|s| s["metric"]["team"].as_str())
                .collect()
        })
        .unwrap_or_default()
}

const ALL: &str = r#"{app=~".+"}"#;

/// `query={app=~".+"}` over the window.
fn all_in(w: &Window) -> String {
    format!("query={}&{}", enc(ALL), w.range())
}

#[tokio::test]
async fn query_log_query_sees_only_its_team() {
    let a = answers("/loki/api/v1/query", Forms::GetAndPost, |w| {
        format!("query={}&time={}&limit=1000", enc(ALL), w.end)
    })
    .await;
    a.only_payments(|r| lines(r).len() == 60 && lines(r).iter().all(|l| l.contains("payment")));
}

#[tokio::test]
async fn query_metric_query_sees_only_its_team() {
    let a = answers("/loki/api/v1/query", Forms::GetAndPost, |w| {
        let q = r#"sum by (team) (count_over_time({app=~".+"}[2m]))"#;
        format!("query={}&time={}", enc(q), w.end / S)
    })
    .await;
    a.only_payments(|r| teams(r) == ["payments"] && r["data"]["result"][0]["value"][1] == "60");
}

/// Both selectors of a binary operation are scoped.
#[tokio::test]
async fn query_binary_metric_query_sees_only_its_team() {
    let a = answers("/loki/api/v1/query", Forms::GetAndPost, |w| {
        let q = r#"sum by (team) (count_over_time({app="search"}[2m])) or sum by (team) (count_over_time({app="payments"}[2m]))"#;
        format!("query={}&time={}", enc(q), w.end / S)
    })
    .await;
    a.only_payments(|r| teams(r) == ["payments"]);
}

#[tokio::test]
async fn query_range_log_query_sees_only_its_team() {
    let a = answers("/loki/api/v1/query_range", Forms::GetAndPost, |w| {
        format!("{}&limit=1000", all_in(w))
    })
    .await;
    a.only_payments(|r| lines(r).len() == 60 && lines(r).iter().all(|l| l.contains("payment")));
}

/// A log query with a parser and a template: what the pipeline reads is scoped too.
#[tokio::test]
async fn query_range_log_pipeline_sees_only_its_team() {
    let a = answers("/loki/api/v1/query_range", Forms::GetAndPost, |w| {
        let q = r#"{app=~".+"} | json | line_format "{{.msg}}""#;
        format!("query={}&{}&limit=1000", enc(q), w.range())
    })
    .await;
    a.only_payments(|r| lines(r).len() == 60 && lines(r).iter().all(|l| l.starts_with("payment ")));
}

#[tokio::test]
async fn query_range_metric_query_sees_only_its_team() {
    let a = answers("/loki/api/v1/query_range", Forms::GetAndPost, |w| {
        let q = r#"sum by (team) (count_over_time({app=~".+"}[10s]))"#;
        format!(
            "query={}&start={}&end={}&step=10",
            enc(q),
            w.t0 / S,
            w.end / S
        )
    })
    .await;
    a.only_payments(|r| teams(r) == ["payments"]);
}

#[tokio::test]
async fn labels_see_only_their_team() {
    for path in ["/loki/api/v1/labels", "/loki/api/v1/label"] {
        let a = answers(path, Forms::GetAndPost, Window::range).await;
        a.only_payments(|r| r["data"] == serde_json::json!(["app", "team"]));
    }
}

#[tokio::test]
async fn label_values_see_only_their_team() {
    let a = answers(
        "/loki/api/v1/label/app/values",
        Forms::GetAndPost,
        Window::range,
    )
    .await;
    a.only_payments(|r| r["data"] == serde_json::json!(["payments"]));
}

#[tokio::test]
async fn series_see_only_their_team() {
    let a = answers("/loki/api/v1/series", Forms::GetAndPost, |w| {
        format!("match[]={}&{}", enc(ALL), w.range())
    })
    .await;
    a.only_payments(|r| r["data"] == serde_json::json!([{"app": "payments", "team": "payments"}]));
}

/// `index/stats` names no stream: its counts show whose chunks it read.
#[tokio::test]
async fn index_stats_count_only_their_team() {
    let a = answers("/loki/api/v1/index/stats", Forms::GetAndPost, all_in).await;
    for r in &a.reader {
        assert_eq!(
            (&r["streams"], &r["entries"]),
            (&1.into(), &60.into()),
            "{r}"
        );
    }
    assert_eq!(
        (&a.admin["streams"], &a.admin["entries"]),
        (&2.into(), &120.into())
    );
}

#[tokio::test]
async fn index_volume_sees_only_its_team() {
    let a = answers("/loki/api/v1/index/volume", Forms::GetAndPost, |w| {
        format!("{}&targetLabels=team", all_in(w))
    })
    .await;
    a.only_payments(|r| teams(r) == ["payments"]);
}

#[tokio::test]
async fn index_volume_range_sees_only_its_team() {
    let a = answers("/loki/api/v1/index/volume_range", Forms::GetAndPost, |w| {
        format!("{}&step=60&targetLabels=team", all_in(w))
    })
    .await;
    a.only_payments(|r| teams(r) == ["payments"]);
}

#[tokio::test]
async fn detected_labels_see_only_their_team() {
    let a = answers("/loki/api/v1/detected_labels", Forms::GetOnly, all_in).await;
    // search's stream adds the label `search_shard` and a second value of `app`.
    a.only_payments(|r| {
        r["detectedLabels"]
            == serde_json::json!([{"label": "app", "cardinality": 1}, {"label": "team", "cardinality": 1}])
    });
}

#[tokio::test]
async fn detected_fields_see_only_their_team() {
    let a = answers("/loki/api/v1/detected_fields", Forms::GetOnly, all_in).await;
    // `latency` is a field of payments' lines only, `search_hits` of search's only.
    a.only_payments(|r| {
        let fields = r["fields"].as_array().into_iter().flatten();
        let names: Vec<&str> = fields.filter_map(|f| f["label"].as_str()).collect();
        names.contains(&"latency") && names.contains(&"msg")
    });
}

/// The live tail over a real socket (GET only: a WebSocket upgrade): the backfill and the
/// lines pushed while it runs.
#[tokio::test]
async fn tail_sees_only_its_team() {
    let dir = tempfile::tempdir().unwrap();
    let (st, addr, server) = serve(dir.path()).await;
    let app = app(st.clone());
    let t0 = hour_ago();
    seed(&app, t0).await;
    let url = format!(
        "ws://{addr}/loki/api/v1/tail?query={}&start={t0}&limit=1000",
        enc(ALL)
    );
    let mut reader = ws_connect(&url, READ_PAY).await;
    let mut admin = ws_connect(&url, ADMIN).await;

    let backfill = ws_next(&mut reader).await;
    let text = backfill.to_string();
    assert!(!text.contains("search"), "another team leaked: {text}");
    assert_eq!(text.matches("payment ").count(), 60, "{text}");
    let backfill = ws_next(&mut admin).await.to_string();
    assert!(backfill.contains("search 59"), "{backfill}");

    // Pushed while the tails run: search's line first, so that a leak reaches the reader
    // before the payments line it waits for.
    let now = fjord_wire::clock::now_ns();
    for (team, ts, line) in [
        ("search", now, "search live"),
        ("payments", now + 1, "payment live"),
    ] {
        push_admin(&app, vec![team_stream(team, vec![Entry::new(ts, line)])]).await;
    }
    let mut seen = String::new();
    while !seen.contains("payment live") {
        let m = ws_next(&mut reader).await.to_string();
        assert!(!m.contains("search"), "another team leaked: {m}");
        seen.push_str(&m);
    }
    let mut seen = String::new();
    while !seen.contains("search live") {
        seen.push_str(&ws_next(&mut admin).await.to_string());
    }

    st.shutdown.cancel();
    drop((reader, admin));
    stopped(server).await;
}
