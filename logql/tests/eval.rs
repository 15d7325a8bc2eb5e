//! Evaluation as tables: log pipelines over a handful of entries and metric queries over a
//! fixed data set, each with an expected result worked out by hand from the data (not by
//! running the evaluator), including the examples of Loki's LogQL documentation that fjord
//! supports.

use std::collections::BTreeMap;

use fjord_logql::{plan, EntryState, EvalError, EvalLimits, Grid, Labels, Query, Value};

const S: i64 = 1_000_000_000;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Runs a log query over `(stream, ts, line)` entries the way a store does: selector, pushed
/// down filters, then the pipeline. Returns `(labels, line)` of the kept entries.
fn run_log(q: &str, entries: &[(Labels, i64, &str)]) -> Vec<(Labels, String)> {
    let Query::Log(lq) = plan(q).unwrap_or_else(|e| panic!("{q}: {e}")) else {
        panic!("{q} is not a log query")
    };
    let mut st = EntryState::default();
    let mut out = Vec::new();
    for (l, ts, line) in entries {
        if !lq.matches_stream(l) || !lq.keep_line(line) {
            continue;
        }
        if lq.process(&mut st, l, *ts, line) {
            out.push((st.labels.to_labels(), st.line(line).to_owned()));
        }
    }
    out
}

fn one(line: &str) -> Vec<(Labels, i64, &str)> {
    vec![(labels(&[("app", "a")]), S, line)]
}

fn first_labels(q: &str, line: &str) -> Option<Labels> {
    run_log(q, &one(line)).into_iter().next().map(|(l, _)| l)
}

#[test]
fn line_filters() {
    let e = vec![
        (labels(&[("app", "a")]), S, "GET /api 200"),
        (labels(&[("app", "a")]), 2 * S, "POST /api 500 error"),
        (labels(&[("app", "a")]), 3 * S, "GET /health 200"),
        (labels(&[("app", "b")]), 4 * S, "GET /api 500 error"),
    ];
    let lines = |q: &str| -> Vec<String> { run_log(q, &e).into_iter().map(|(_, l)| l).collect() };
    assert_eq!(
        lines(r#"{app="a"} |= "api""#),
        ["GET /api 200", "POST /api 500 error"]
    );
    assert_eq!(lines(r#"{app="a"} != "api""#), ["GET /health 200"]);
    assert_eq!(lines(r#"{app="a"} |~ "5\\d\\d""#), ["POST /api 500 error"]);
    assert_eq!(
        lines(r#"{app="a"} |= "POST" or "health""#),
        ["POST /api 500 error", "GET /health 200"]
    );
    assert_eq!(
        lines(r#"{app="a"} != "POST" or "health""#),
        ["GET /api 200"]
    );
    assert_eq!(
        lines(r#"{app="a"} |> "<_> /api <_>""#),
        ["GET /api 200", "POST /api 500 error"]
    );
    assert_eq!(lines(r#"{app="a"} !> "<_> /api <_>""#), ["GET /health 200"]);
    assert_eq!(
        lines(r#"{app=~"a|b"} |= "error""#),
        ["POST /api 500 error", "GET /api 500 error"]
    );
}

#[test]
fn json_parser() {
    let line = r#"{"level":"error","status":503,"req":{"path":"/pay","ms":12.5},"tags":["x"],"app":"dup"}"#;
    assert_eq!(
        first_labels(r#"{app="a"} | json"#, line),
        Some(labels(&[
            ("app", "a"),
            ("level", "error"),
            ("status", "503"),
            ("req_path", "/pay"),
            ("req_ms", "12.5"),
            ("app_extracted", "dup"),
        ]))
    );
    assert_eq!(
        first_labels(
            r#"{app="a"} | json p="req.path", first_tag="tags[0]""#,
            line
        ),
        Some(labels(&[("app", "a"), ("p", "/pay"), ("first_tag", "x")]))
    );
    // The SRE's first query.
    let e = vec![
        (labels(&[("app", "payment")]), S, r#"{"status":200}"#),
        (labels(&[("app", "payment")]), S, r#"{"status":502}"#),
        (labels(&[("app", "payment")]), S, r#"{"status":"oops"}"#),
        (labels(&[("app", "payment")]), S, "not json"),
    ];
    let got = run_log(r#"{app="payment"} | json | status >= 500"#, &e);
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!(got[0].1, r#"{"status":502}"#);
    assert_eq!(
        got[1].0.get("__error__").map(String::as_str),
        Some("LabelFilterErr")
    );
    assert_eq!(
        got[2].0.get("__error__").map(String::as_str),
        Some("JSONParserErr")
    );
    assert!(got[2].0.contains_key("__error_details__"));
    // `__error__=""` drops the failures of the stages before it, not of those after it.
    let got = run_log(
        r#"{app="payment"} | json | __error__="" | status >= 500"#,
        &e,
    );
    assert_eq!(got.len(), 2);
    assert_eq!(
        got[1].0.get("__error__").map(String::as_str),
        Some("LabelFilterErr")
    );
    let got = run_log(
        r#"{app="payment"} | json | status >= 500 | __error__="""#,
        &e,
    );
    assert_eq!(got.len(), 1);
}

#[test]
fn logfmt_parser() {
    let line = r#"level=info msg="a b" empty= standalone duration=1.5s size=2KB"#;
    assert_eq!(
        first_labels(r#"{app="a"} | logfmt"#, line),
        Some(labels(&[
            ("app", "a"),
            ("level", "info"),
            ("msg", "a b"),
            ("duration", "1.5s"),
            ("size", "2KB")
        ]))
    );
    let got = first_labels(r#"{app="a"} | logfmt --keep-empty"#, line).unwrap();
    assert_eq!(got.get("empty").map(String::as_str), Some(""));
    assert_eq!(got.get("standalone").map(String::as_str), Some(""));
    let got = first_labels(r#"{app="a"} | logfmt --strict"#, "a=1 =broken b=2").unwrap();
    assert_eq!(
        got.get("__error__").map(String::as_str),
        Some("LogfmtParserErr")
    );
    assert_eq!(got.get("a").map(String::as_str), Some("1"));
    assert_eq!(got.get("b"), None);
    let got = first_labels(r#"{app="a"} | logfmt"#, "a=1 =broken b=2").unwrap();
    assert_eq!(got.get("b").map(String::as_str), Some("2"));
    assert_eq!(
        first_labels(r#"{app="a"} | logfmt lvl="level", msg"#, line),
        Some(labels(&[("app", "a"), ("lvl", "info"), ("msg", "a b")]))
    );
    // Duration and bytes label filters.
    let e = one(line);
    assert_eq!(
        run_log(r#"{app="a"} | logfmt | duration > 1s and size >= 2KB"#, &e).len(),
        1
    );
    assert_eq!(
        run_log(r#"{app="a"} | logfmt | duration > 2s or size > 2KB"#, &e).len(),
        0
    );
    assert_eq!(
        run_log(
            r#"{app="a"} | logfmt | duration > 2s or (level="info", size < 1MB)"#,
            &e
        )
        .len(),
        1
    );
}

#[test]
fn regexp_pattern_unpack() {
    let line = r#"10.1.2.3 - - [05/Dec/2026:01:00:00 +0000] "GET /pay HTTP/1.1" 404 17"#;
    let got = first_labels(
        r#"{app="a"} | regexp "(?P<ip>\\S+) .* \"(?P<method>\\w+) (?P<path>\\S+)""#,
        line,
    )
    .unwrap();
    assert_eq!(got.get("ip").map(String::as_str), Some("10.1.2.3"));
    assert_eq!(got.get("path").map(String::as_str), Some("/pay"));
    let got = first_labels(
        r#"{app="a"} | pattern "<ip> - - [<_>] \"<method> <uri> <_>\" <status> <size>" | status=404"#,
        line,
    )
    .unwrap();
    assert_eq!(got.get("method").map(String::as_str), Some("GET"));
    assert_eq!(got.get("size").map(String::as_str), Some("17"));
    let out = run_log(
        r#"{app="a"} | unpack"#,
        &one(r#"{"container":"x","_entry":"the line"}"#),
    );
    assert_eq!(out[0].0.get("container").map(String::as_str), Some("x"));
    assert_eq!(out[0].1, "the line");
}

#[test]
fn formats_drop_keep_decolorize() {
    let line = r#"{"level":"warn","msg":"disk low","user":"","code":"7"}"#;
    let out = run_log(
        r#"{app="a"} | json | line_format "{{ .level | ToUpper }}: {{ .msg }} ({{ default \"anon\" .user }}) {{ printf \"%03d\" .code }}""#,
        &one(line),
    );
    assert_eq!(out[0].1, "WARN: disk low (anon) 007");
    let out = run_log(
        r#"{app="a"} | json | label_format lvl=level, short="{{ trunc 4 .msg }}""#,
        &one(line),
    );
    assert_eq!(out[0].0.get("lvl").map(String::as_str), Some("warn"));
    assert_eq!(out[0].0.get("level"), None);
    assert_eq!(out[0].0.get("short").map(String::as_str), Some("disk"));
    assert_eq!(
        run_log(r#"{app="a"} | json | keep app, level"#, &one(line))[0].0,
        labels(&[("app", "a"), ("level", "warn")])
    );
    assert_eq!(
        run_log(
            r#"{app="a"} | json | drop msg, user, code, level="error""#,
            &one(line)
        )[0]
        .0,
        labels(&[("app", "a"), ("level", "warn")])
    );
    assert_eq!(
        run_log(r#"{app="a"} | decolorize"#, &one("\x1b[31mred\x1b[0m text"))[0].1,
        "red text"
    );
}

// ---- metric queries ----

/// Entries: app=a at 10s, 20s, 30s, 40s (levels info, error, info, info; json with a
/// latency); app=b at 15s and 35s (level error).
fn data() -> Vec<(Labels, i64, String)> {
    let mut out = Vec::new();
    for (t, lvl, ms) in [
        (10, "info", 100),
        (20, "error", 300),
        (30, "info", 200),
        (40, "info", 400),
    ] {
        out.push((
            labels(&[("app", "a"), ("env", "prod")]),
            t * S,
            format!(r#"{{"level":"{lvl}","latency":"{ms}ms","n":{ms}}}"#),
        ));
    }
    for t in [15, 35] {
        out.push((
            labels(&[("app", "b"), ("env", "prod")]),
            t * S,
            r#"{"level":"error","latency":"1s","n":1000}"#.to_owned(),
        ));
    }
    out
}

fn eval(q: &str, grid: Grid) -> Result<Value, EvalError> {
    let Query::Metric(m) = plan(q).unwrap_or_else(|e| panic!("{q}: {e}")) else {
        panic!("{q} is not a metric query")
    };
    let data = data();
    m.evaluate(grid, EvalLimits::default(), |lq, from, to, sink| {
        for (l, ts, line) in &data {
            if lq.matches_stream(l) && *ts >= from && *ts <= to && lq.keep_line(line) {
                sink(l, &[], *ts, line)?;
            }
        }
        Ok::<(), EvalError>(())
    })
}

/// The result as `{labels} => [points]`, sorted by labels.
fn series(v: Value) -> BTreeMap<String, Vec<Option<f64>>> {
    match v {
        Value::Matrix(m) => m
            .into_iter()
            .map(|s| {
                let l: Vec<String> = s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
                (l.join(","), s.points)
            })
            .collect(),
        Value::Scalar(s) => [("scalar".to_owned(), s.into_iter().map(Some).collect())].into(),
    }
}

fn instant(q: &str, t: i64) -> BTreeMap<String, Vec<Option<f64>>> {
    series(eval(q, Grid::instant(t * S)).unwrap_or_else(|e| panic!("{q}: {e}")))
}

fn range(q: &str, start: i64, end: i64, step: i64) -> BTreeMap<String, Vec<Option<f64>>> {
    series(
        eval(
            q,
            Grid {
                start: start * S,
                end: end * S,
                step: step * S,
            },
        )
        .unwrap_or_else(|e| panic!("{q}: {e}")),
    )
}

fn m(pairs: &[(&str, &[Option<f64>])]) -> BTreeMap<String, Vec<Option<f64>>> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.to_vec()))
        .collect()
}

#[test]
fn range_functions() {
    // Window (10s, 40s] at t=40 holds a's 20, 30, 40 and b's 15, 35.
    assert_eq!(
        instant(r#"count_over_time({env="prod"}[30s])"#, 40),
        m(&[
            ("app=a,env=prod", &[Some(3.0)]),
            ("app=b,env=prod", &[Some(2.0)])
        ])
    );
    assert_eq!(
        instant(r#"rate({app="a"}[30s])"#, 40),
        m(&[("app=a,env=prod", &[Some(0.1)])])
    );
    let len = data()[0].2.len() as f64;
    assert_eq!(
        instant(r#"bytes_over_time({app="a"}[5s])"#, 10),
        m(&[("app=a,env=prod", &[Some(len)])])
    );
    assert_eq!(
        instant(r#"bytes_rate({app="a"}[5s])"#, 10),
        m(&[("app=a,env=prod", &[Some(len / 5.0)])])
    );
    // Left-open, right-closed: an entry exactly at t - range is out.
    assert_eq!(
        instant(r#"count_over_time({app="a"}[10s])"#, 20),
        m(&[("app=a,env=prod", &[Some(1.0)])])
    );
    assert_eq!(
        instant(r#"count_over_time({app="a"} |= "error" [1m])"#, 60),
        m(&[("app=a,env=prod", &[Some(1.0)])])
    );
    assert_eq!(
        instant(r#"absent_over_time({app="zzz"}[1m])"#, 60),
        m(&[("app=zzz", &[Some(1.0)])])
    );
    assert_eq!(instant(r#"absent_over_time({app="a"}[1m])"#, 60), m(&[]));
    // offset shifts the window back.
    assert_eq!(
        instant(r#"count_over_time({app="a"}[10s] offset 20s)"#, 40),
        m(&[("app=a,env=prod", &[Some(1.0)])])
    );
}

#[test]
fn unwrapped_range_functions() {
    let q = |f: &str| format!(r#"{f}({{app="a"}} | json | unwrap n [1m])"#);
    let get = |f: &str| -> f64 {
        let r = instant(&q(f), 60);
        assert_eq!(r.len(), 4, "{f}: one series per level and latency: {r:?}");
        r.values().map(|p| p[0].unwrap_or(0.0)).sum()
    };
    // Without a grouping every distinct label set is a series (the latency label differs per
    // line), so each holds one sample: sums of the per-series values.
    assert_eq!(get("sum_over_time"), 1000.0);
    // With `by`, samples of the group are aggregated together.
    let by = |f: &str| {
        instant(
            &format!(r#"{f}({{app="a"}} | json | unwrap n [1m]) by (app)"#),
            60,
        )
    };
    assert_eq!(by("sum_over_time"), m(&[("app=a", &[Some(1000.0)])]));
    assert_eq!(by("avg_over_time"), m(&[("app=a", &[Some(250.0)])]));
    assert_eq!(by("min_over_time"), m(&[("app=a", &[Some(100.0)])]));
    assert_eq!(by("max_over_time"), m(&[("app=a", &[Some(400.0)])]));
    assert_eq!(by("first_over_time"), m(&[("app=a", &[Some(100.0)])]));
    assert_eq!(by("last_over_time"), m(&[("app=a", &[Some(400.0)])]));
    assert_eq!(by("stdvar_over_time"), m(&[("app=a", &[Some(12500.0)])]));
    assert_eq!(
        by("stddev_over_time"),
        m(&[("app=a", &[Some(12500f64.sqrt())])])
    );
    assert_eq!(by("rate"), m(&[("app=a", &[Some(1000.0 / 60.0)])]));
    // quantile 0.5 of 100, 200, 300, 400 interpolates to 250.
    assert_eq!(
        instant(
            r#"quantile_over_time(0.5, {app="a"} | json | unwrap n [1m]) by (app)"#,
            60
        ),
        m(&[("app=a", &[Some(250.0)])])
    );
    // duration() reads Go durations in seconds; the unwrapped label leaves the series.
    assert_eq!(
        instant(
            r#"sum_over_time({env="prod"} | json | unwrap duration(latency) [1m]) by (app)"#,
            60
        ),
        m(&[
            ("app=a", &[Some(0.1 + 0.3 + 0.2 + 0.4)]),
            ("app=b", &[Some(2.0)])
        ])
    );
    assert_eq!(
        instant(
            r#"max_over_time({app="b"} | json | keep app, n | unwrap n [1m])"#,
            60
        ),
        m(&[("app=b", &[Some(1000.0)])])
    );
    // A failed conversion is an error unless filtered out.
    let e = eval(
        r#"sum_over_time({app="a"} | json | unwrap level [1m])"#,
        Grid::instant(60 * S),
    );
    assert!(matches!(e, Err(EvalError::Pipeline { .. })), "{e:?}");
    assert_eq!(
        instant(
            r#"sum_over_time({app="a"} | json | unwrap level | __error__="" [1m])"#,
            60
        ),
        m(&[])
    );
}

#[test]
fn range_steps_tile_windows() {
    // Steps 10, 20, 30, 40 with [10s]: each window (t-10, t] holds exactly one of a's lines.
    assert_eq!(
        range(r#"count_over_time({app="a"}[10s])"#, 10, 40, 10),
        m(&[(
            "app=a,env=prod",
            &[Some(1.0), Some(1.0), Some(1.0), Some(1.0)]
        )])
    );
    // [20s] windows overlap: (−10,10]=1, (0,20]=2, (10,30]=2, (20,40]=2, (30,50]=1.
    assert_eq!(
        range(r#"count_over_time({app="a"}[20s])"#, 10, 50, 10),
        m(&[(
            "app=a,env=prod",
            &[Some(1.0), Some(2.0), Some(2.0), Some(2.0), Some(1.0)]
        )])
    );
    // Steps with no entries have no point.
    assert_eq!(
        range(r#"count_over_time({app="b"}[5s])"#, 10, 40, 5),
        m(&[(
            "app=b,env=prod",
            &[None, Some(1.0), None, None, None, Some(1.0), None]
        )])
    );
}

#[test]
fn vector_aggregations() {
    let inner = r#"count_over_time({env="prod"} | json level [1m])"#;
    assert_eq!(
        instant(&format!("sum by (level) ({inner})"), 60),
        m(&[("level=error", &[Some(3.0)]), ("level=info", &[Some(3.0)])])
    );
    assert_eq!(
        instant(&format!("sum({inner}) by (app)"), 60),
        m(&[("app=a", &[Some(4.0)]), ("app=b", &[Some(2.0)])])
    );
    assert_eq!(
        instant(&format!("count({inner})"), 60),
        m(&[("", &[Some(3.0)])])
    );
    assert_eq!(
        instant(&format!("max({inner})"), 60),
        m(&[("", &[Some(3.0)])])
    );
    assert_eq!(
        instant(&format!("min({inner})"), 60),
        m(&[("", &[Some(1.0)])])
    );
    assert_eq!(
        instant(&format!("avg({inner})"), 60),
        m(&[("", &[Some(2.0)])])
    );
    // Values 3, 1, 2: variance 2/3.
    let var = instant(&format!("stdvar({inner})"), 60)[""][0].unwrap();
    assert!((var - 2.0 / 3.0).abs() < 1e-12);
    let sd = instant(&format!("stddev({inner})"), 60)[""][0].unwrap();
    assert!((sd - (2.0f64 / 3.0).sqrt()).abs() < 1e-12);
    assert_eq!(
        instant(&format!("sum without (level) ({inner})"), 60),
        m(&[
            ("app=a,env=prod", &[Some(4.0)]),
            ("app=b,env=prod", &[Some(2.0)])
        ])
    );
    assert_eq!(
        instant(&format!("topk(1, {inner})"), 60),
        m(&[("app=a,env=prod,level=info", &[Some(3.0)])])
    );
    assert_eq!(
        instant(&format!("bottomk(1, {inner})"), 60),
        m(&[("app=a,env=prod,level=error", &[Some(1.0)])])
    );
    assert_eq!(
        instant(&format!("topk by (app) (1, {inner})"), 60),
        m(&[
            ("app=a,env=prod,level=info", &[Some(3.0)]),
            ("app=b,env=prod,level=error", &[Some(2.0)])
        ])
    );
    // sort orders an instant vector.
    let Value::Matrix(v) = eval(&format!("sort_desc({inner})"), Grid::instant(60 * S)).unwrap()
    else {
        panic!()
    };
    let vals: Vec<f64> = v.iter().map(|s| s.points[0].unwrap()).collect();
    assert_eq!(vals, [3.0, 2.0, 1.0]);
    let Value::Matrix(v) = eval(&format!("sort({inner})"), Grid::instant(60 * S)).unwrap() else {
        panic!()
    };
    let vals: Vec<f64> = v.iter().map(|s| s.points[0].unwrap()).collect();
    assert_eq!(vals, [1.0, 2.0, 3.0]);
}

#[test]
fn binary_operators() {
    // Grafana's health check.
    assert_eq!(instant("vector(1)+vector(1)", 60), m(&[("", &[Some(2.0)])]));
    assert_eq!(instant("1 + 2 * 3", 60), m(&[("scalar", &[Some(7.0)])]));
    assert_eq!(instant("2 ^ 3 ^ 2", 60), m(&[("scalar", &[Some(512.0)])]));
    assert_eq!(instant("1 > bool 2", 60), m(&[("scalar", &[Some(0.0)])]));
    let c = r#"count_over_time({env="prod"}[1m])"#;
    assert_eq!(
        instant(&format!("{c} * 10"), 60),
        m(&[
            ("app=a,env=prod", &[Some(40.0)]),
            ("app=b,env=prod", &[Some(20.0)])
        ])
    );
    assert_eq!(
        instant(&format!("{c} > 3"), 60),
        m(&[("app=a,env=prod", &[Some(4.0)])])
    );
    assert_eq!(
        instant(&format!("{c} > bool 3"), 60),
        m(&[
            ("app=a,env=prod", &[Some(1.0)]),
            ("app=b,env=prod", &[Some(0.0)])
        ])
    );
    assert_eq!(
        instant(&format!("10 - {c}"), 60),
        m(&[
            ("app=a,env=prod", &[Some(6.0)]),
            ("app=b,env=prod", &[Some(8.0)])
        ])
    );
    // Vector/vector, one-to-one on all labels.
    let e = r#"count_over_time({env="prod"} |= "error" [1m])"#;
    assert_eq!(
        instant(&format!("{e} / {c}"), 60),
        m(&[
            ("app=a,env=prod", &[Some(0.25)]),
            ("app=b,env=prod", &[Some(1.0)])
        ])
    );
    // on / ignoring.
    assert_eq!(
        instant(&format!("sum by (app) ({c}) / on (app) {c}"), 60),
        m(&[("app=a", &[Some(1.0)]), ("app=b", &[Some(1.0)])])
    );
    assert_eq!(
        instant(&format!("sum by (app) ({c}) + ignoring (env) {c}"), 60),
        m(&[("app=a", &[Some(8.0)]), ("app=b", &[Some(4.0)])])
    );
    // group_left: many per-level series divided by their app's total.
    let lv = r#"sum by (app, level) (count_over_time({env="prod"} | json [1m]))"#;
    let tot = r#"sum by (app) (count_over_time({env="prod"}[1m]))"#;
    assert_eq!(
        instant(&format!("{lv} / on (app) group_left {tot}"), 60),
        m(&[
            ("app=a,level=error", &[Some(0.25)]),
            ("app=a,level=info", &[Some(0.75)]),
            ("app=b,level=error", &[Some(1.0)])
        ])
    );
    // Without group_left the same is a many-to-one error.
    let err = eval(&format!("{lv} / on (app) {tot}"), Grid::instant(60 * S));
    assert!(matches!(err, Err(EvalError::Matching(_))), "{err:?}");
    // Set operators.
    assert_eq!(
        instant(&format!("{c} and {e}"), 60),
        m(&[
            ("app=a,env=prod", &[Some(4.0)]),
            ("app=b,env=prod", &[Some(2.0)])
        ])
    );
    assert_eq!(
        instant(&format!("{c} unless {c} > 3"), 60),
        m(&[("app=b,env=prod", &[Some(2.0)])])
    );
    assert_eq!(
        instant(
            r#"count_over_time({app="a"}[1m]) or count_over_time({app="b"}[1m]) or vector(0)"#,
            60
        ),
        m(&[
            ("", &[Some(0.0)]),
            ("app=a,env=prod", &[Some(4.0)]),
            ("app=b,env=prod", &[Some(2.0)])
        ])
    );
    // label_replace.
    assert_eq!(
        instant(
            &format!(r#"label_replace({c}, "svc", "svc-$1", "app", "(.*)")"#),
            60
        ),
        m(&[
            ("app=a,env=prod,svc=svc-a", &[Some(4.0)]),
            ("app=b,env=prod,svc=svc-b", &[Some(2.0)])
        ])
    );
}

#[test]
fn loki_documentation_examples() {
    // From Loki's "Metric queries" and "Log queries" pages, adapted to this data set's labels;
    // each must parse and plan, and evaluate without error.
    for q in [
        r#"count_over_time({env="prod"}[5m])"#,
        r#"sum by (app) (rate({env="prod"} |= "error" != "timeout" [1m]))"#,
        r#"sum(rate({env="prod"} |= "error" [1m])) by (app)"#,
        r#"topk(10, sum(rate({env="prod"}[5m])) by (app))"#,
        r#"sum by (app) (count_over_time({env="prod"} | json | level="error" [1m])) / sum by (app) (count_over_time({env="prod"}[1m]))"#,
        r#"quantile_over_time(0.99, {env="prod"} | json | unwrap duration(latency) | __error__="" [1m]) by (app)"#,
        r#"sum by (app) (sum_over_time({env="prod"} | json | unwrap n | __error__="" [1m]))"#,
        r#"avg_over_time({env="prod"} | json | unwrap n [1m]) by (app)"#,
        r#"sum(count_over_time({env="prod"} | json [1m])) by (level) > 1"#,
        r#"sum by (level) (count_over_time({env="prod"} | json | level=~"info|error" [1m]))"#,
        r#"rate({env="prod"} | json | latency > 250ms [1m])"#,
        r#"count_over_time({env="prod"} | logfmt --strict | __error__="" [1m])"#,
        r#"sum(count_over_time({env="prod"}[1m] offset 5s)) by (app)"#,
        r#"bottomk(2, count_over_time({env="prod"}[1m]))"#,
        r#"max_over_time({env="prod"} | json | unwrap bytes(n) [1m]) by (app)"#,
        r#"vector(1)+vector(1)"#,
        r#"sum by (app) (count_over_time({env="prod"} | pattern `{"level":"<level>"<_>` [1m]))"#,
        r#"absent_over_time({env="prod", app="nope"}[1m])"#,
        // Further examples of Loki's metric-queries page, with its labels.
        r#"count_over_time({job="mysql"}[5m])"#,
        r#"sum by (host) (rate({job="mysql"} |= "error" != "timeout" | json | duration > 10s [1m]))"#,
        r#"quantile_over_time(0.99, {cluster="ops-tools1",container="ingress-nginx"} | json | __error__ = "" | unwrap request_time [1m]) by (path)"#,
        r#"sum by (org_id) (sum_over_time({cluster="ops-tools1",container="loki-dev"} |= "metrics.go" | logfmt | unwrap bytes_processed [1m]))"#,
        r#"sum(count_over_time({job="mysql"}[5m])) by (level)"#,
        r#"avg(rate(({job="nginx"} |= "GET")[10s])) by (region)"#,
        r#"topk(10,sum(rate({region="us-east1"}[5m])) by (name))"#,
        r#"sum(rate({app="foo", level="warn"}[1m])) / sum(rate({app="foo", level="error"}[1m]))"#,
        r#"sum by (app) (rate({app=~"foo|bar"}[1m])) and sum by (app) (rate({app="foo"}[1m]))"#,
        r#"sum(count_over_time({foo="bar"}[1m])) > bool 10"#,
        r#"label_replace(rate({job="api-server",service="a:c"} |= "err" [5m]), "foo", "$1", "service", "(.*):.*")"#,
        r#"max_over_time({job="varlogs"} | logfmt | unwrap duration_seconds(took) [1m]) by (host)"#,
        r#"sum by (level) (count_over_time({job="varlogs"} | logfmt --strict --keep-empty | level != "" [5m]))"#,
    ] {
        if let Err(e) = eval(
            q,
            Grid {
                start: 10 * S,
                end: 60 * S,
                step: 10 * S,
            },
        ) {
            panic!("{q}: {e}");
        }
    }
    for q in [
        r#"{env="prod"} |= "error" != "timeout""#,
        r#"{env="prod"} | json | line_format "{{.level}} {{.latency}}""#,
        r#"{env="prod"} | logfmt | duration > 1m and bytes_consumed > 20MB"#,
        r#"{env="prod"} | json | level="error" or n > 300"#,
        r#"{env="prod"} | regexp "(?P<lvl>level)" | label_format level_name=lvl"#,
        r#"{env="prod"} |~ "(?i)ERROR" | decolorize"#,
        r#"{env="prod"} | json | keep app, level | drop __error__, __error_details__"#,
        // Further examples of Loki's log-queries page.
        r#"{job="mysql"} |= "error""#,
        r#"{name=~"mysql.+"} |= "error""#,
        r#"{instance=~"kafka-[23]",name="kafka"} != "kafka.server:type=ReplicaManager""#,
        r#"{cluster="ops-tools1", namespace="loki-dev", job="loki-dev/query-frontend"} |= "metrics.go" !="out of order" | logfmt | duration > 30s or status_code!="200""#,
        r#"{container="query-frontend",namespace="loki-dev"} |= "metrics.go" | logfmt | duration > 10s and throughput_mb < 500"#,
        r#"{job="varlogs"} | json | line_format "{{.message}}""#,
        r#"{service_name="nginx"} | pattern "<ip> - - <_> \"<method> <uri> <_>\" <status> <size> <_> \"<agent>\" <_>""#,
        r#"{app="foo"} | regexp "(?P<method>\\w+) (?P<path>[\\w|/]+) \\((?P<status>\\d+?)\\) (?P<duration>.*)""#,
        r#"{job="loki"} | logfmt | line_format "{{.ts}} {{ .level | ToUpper }} {{ printf \"%-10s\" .caller }} {{ .msg | trunc 40 }}""#,
        r#"{job="loki"} | logfmt | label_format foo=bar, status="{{ default \"unknown\" .status }}""#,
        r#"{app="foo"} |= "err" or "warn" |> "<_> level=<_>" | unpack | drop pod="x""#,
    ] {
        if let Err(e) = plan(q) {
            panic!("{q}: {e}");
        }
        let d: Vec<(Labels, i64, String)> = data();
        let entries: Vec<(Labels, i64, &str)> = d
            .iter()
            .map(|(l, t, s)| (l.clone(), *t, s.as_str()))
            .collect();
        let _ = run_log(q, &entries);
    }
}

#[test]
fn sum_of_counts_groups_before_the_series_limit() {
    // Every line has its own `latency` and `n`, so `| json` alone makes one series per line;
    // under `sum by (level)` the counts are grouped as they accumulate.
    let small = EvalLimits {
        max_series: 2,
        max_points: 10,
        max_samples: 10,
    };
    let Query::Metric(p) =
        plan(r#"sum by (level) (count_over_time({env="prod"} | json [1m]))"#).unwrap()
    else {
        panic!()
    };
    let data = data();
    let v = p
        .evaluate(Grid::instant(60 * S), small, |lq, from, to, sink| {
            for (l, ts, line) in &data {
                if lq.matches_stream(l) && *ts >= from && *ts <= to {
                    sink(l, &[], *ts, line)?;
                }
            }
            Ok::<(), EvalError>(())
        })
        .unwrap();
    assert_eq!(
        series(v),
        m(&[("level=error", &[Some(3.0)]), ("level=info", &[Some(3.0)])])
    );
}

#[test]
fn grouped_leaves_still_see_the_labels_their_filters_read() {
    // Only `level` is grouped on, but the filter reads `n` and the format reads `latency`.
    assert_eq!(
        instant(
            r#"sum by (level) (count_over_time({env="prod"} | json | n > 150 [1m]))"#,
            60
        ),
        m(&[("level=error", &[Some(3.0)]), ("level=info", &[Some(2.0)])])
    );
    assert_eq!(
        instant(
            r#"sum by (level) (count_over_time({env="prod"} | json | line_format "{{.latency}}" |= "ms" [1m]))"#,
            60
        ),
        m(&[("level=error", &[Some(1.0)]), ("level=info", &[Some(3.0)])])
    );
    assert_eq!(
        instant(
            r#"max by (app) (max_over_time({env="prod"} | json | unwrap n [1m]))"#,
            60
        ),
        m(&[("app=a", &[Some(400.0)]), ("app=b", &[Some(1000.0)])])
    );
}

#[test]
fn evaluations_of_parts_merge_into_the_whole() {
    // Each entry goes to one of two evaluators (as two threads' shares of the streams would,
    // here split per entry to mix them harder); merged, they give the single evaluation.
    let data = data();
    for q in [
        r#"count_over_time({env="prod"}[30s])"#,
        r#"bytes_rate({env="prod"}[30s])"#,
        r#"sum by (level) (count_over_time({env="prod"} | json [30s]))"#,
        r#"avg_over_time({env="prod"} | json | unwrap n [30s]) by (app)"#,
        r#"min_over_time({env="prod"} | json | unwrap n [30s]) by (app)"#,
        r#"max_over_time({env="prod"} | json | unwrap n [30s]) by (app)"#,
        r#"stddev_over_time({env="prod"} | json | unwrap n [30s]) by (app)"#,
        r#"first_over_time({env="prod"} | json | unwrap n [30s]) by (app)"#,
        r#"last_over_time({env="prod"} | json | unwrap n [30s]) by (app)"#,
        r#"quantile_over_time(0.9, {env="prod"} | json | unwrap n [30s]) by (app)"#,
        r#"absent_over_time({env="prod"}[5s])"#,
    ] {
        let Query::Metric(p) = plan(q).unwrap() else {
            panic!()
        };
        let grid = Grid {
            start: 10 * S,
            end: 60 * S,
            step: 5 * S,
        };
        let whole = eval(q, grid).unwrap();
        let mut parts: Vec<_> = (0..2)
            .map(|_| p.evaluator(grid, EvalLimits::default()).unwrap())
            .collect();
        for (i, (l, ts, line)) in data.iter().enumerate() {
            let leaf = &p.leaves[0];
            let (from, to) = leaf.span(&grid);
            if leaf.query.matches_stream(l)
                && *ts >= from
                && *ts <= to
                && leaf.query.keep_line(line)
            {
                parts[i % 2].push(0, l, &[], *ts, line).unwrap();
            }
        }
        let second = parts.pop().unwrap();
        let mut first = parts.pop().unwrap();
        first.merge(second).unwrap();
        let merged = first.finish().unwrap();
        let (a, b) = (series(whole), series(merged));
        assert_eq!(
            a.keys().collect::<Vec<_>>(),
            b.keys().collect::<Vec<_>>(),
            "{q}"
        );
        for (k, pa) in &a {
            for (x, y) in pa.iter().zip(&b[k]) {
                match (x, y) {
                    (Some(x), Some(y)) => assert!((x - y).abs() < 1e-9, "{q} {k}: {x} vs {y}"),
                    _ => assert_eq!(x, y, "{q} {k}"),
                }
            }
        }
    }
}

#[test]
fn bounds() {
    let small = EvalLimits {
        max_series: 1,
        max_points: 5,
        max_samples: 2,
    };
    let Query::Metric(p) = plan(r#"count_over_time({env="prod"}[1m])"#).unwrap() else {
        panic!()
    };
    assert!(matches!(
        p.evaluator(
            Grid {
                start: 0,
                end: 100 * S,
                step: S
            },
            small
        ),
        Err(EvalError::TooManyPoints { limit: 5 })
    ));
    let data = data();
    let r = p.evaluate(Grid::instant(60 * S), small, |lq, from, to, sink| {
        for (l, ts, line) in &data {
            if lq.matches_stream(l) && *ts >= from && *ts <= to {
                sink(l, &[], *ts, line)?;
            }
        }
        Ok::<(), EvalError>(())
    });
    assert_eq!(r, Err(EvalError::TooManySeries { limit: 1 }));
}
