//! `query`, `labels` and `stats`: ask a server and print aligned, readable tables (or JSON).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use anyhow::Context;

use super::client::Client;
use super::{LabelsArgs, Output, QueryArgs, StatsArgs, StatsBy};
use crate::server::query_types::{LabelsResponse, QueryResponse, StatsResponse};
use fjord_wire::clock::{format_ns, now_ns, parse_duration};

/// How far back `query` looks without --since or --from.
const DEFAULT_QUERY_LOOKBACK: std::time::Duration = std::time::Duration::from_secs(3600);

/// Parses a `--since` style duration into nanoseconds.
pub fn since_ns(s: &str, flag: &str) -> anyhow::Result<i64> {
    let d = parse_duration(s).with_context(|| flag.to_owned())?;
    Ok(fjord_wire::clock::nanos(d))
}

/// Runs `query`.
pub async fn run(a: QueryArgs) -> anyhow::Result<ExitCode> {
    let (start, end) = a.range.resolve(now_ns(), Some(DEFAULT_QUERY_LOOKBACK))?;
    let client = Client::new(&a.client.url, a.client.token_file.as_deref(), &a.client.tls)?;
    // A metric query (known by parsing it here; the server checks it again) is a table.
    if let Ok(fjord_logql::ast::Expr::Metric(_)) = fjord_logql::parse_expr(&a.query) {
        return metric(&client, &a, start, end).await;
    }
    if a.output == Output::Json {
        let v: serde_json::Value = client
            .get("/loki/api/v1/query_range", &log_params(&a, start, end))
            .await?;
        println!("{v}");
        return Ok(ExitCode::SUCCESS);
    }
    let parsed: QueryResponse = client
        .get(
            "/loki/api/v1/query_range",
            &[
                ("query", a.query.clone()),
                ("start", start.to_string()),
                ("end", end.to_string()),
                ("limit", a.limit.to_string()),
                (
                    "direction",
                    if a.forward { "forward" } else { "backward" }.to_owned(),
                ),
            ],
        )
        .await?;

    // Merge streams into one time-ordered list; ties keep stream order.
    let mut rows: Vec<(i64, usize, &BTreeMap<String, String>, &str)> = Vec::new();
    for s in &parsed.data.result {
        for (i, e) in s.values.iter().enumerate() {
            rows.push((e.ts_ns, i, &s.stream, e.line()));
        }
    }
    // Newest first unless --forward, as logcli prints.
    rows.sort_by_key(|r| (r.0, r.1));
    if !a.forward {
        rows.reverse();
    }
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let label_width = rows
        .iter()
        .map(|r| format_labels(r.2).len())
        .max()
        .unwrap_or(0);
    for (ts, _, labels, line) in &rows {
        if !print_line(&mut out, a.output, *ts, labels, line, label_width)? {
            return Ok(ExitCode::SUCCESS);
        }
    }
    out.flush().ok();
    if rows.len() >= a.limit && a.limit > 0 {
        eprintln!(
            "(showing {} lines; raise --limit or narrow the range for more)",
            a.limit
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn log_params(a: &QueryArgs, start: i64, end: i64) -> Vec<(&'static str, String)> {
    vec![
        ("query", a.query.clone()),
        ("start", start.to_string()),
        ("end", end.to_string()),
        ("limit", a.limit.to_string()),
        (
            "direction",
            if a.forward { "forward" } else { "backward" }.to_owned(),
        ),
    ]
}

/// Runs a metric query over `[start, end]` and prints one row per series and point: time,
/// labels, value (a table in text; objects in jsonl; values in raw; the answer in json).
async fn metric(client: &Client, a: &QueryArgs, start: i64, end: i64) -> anyhow::Result<ExitCode> {
    let mut params = vec![
        ("query", a.query.clone()),
        ("start", start.to_string()),
        ("end", end.to_string()),
    ];
    if let Some(step) = &a.step {
        params.push(("step", step.clone()));
    }
    let v: serde_json::Value = client.get("/loki/api/v1/query_range", &params).await?;
    if a.output == Output::Json {
        println!("{v}");
        return Ok(ExitCode::SUCCESS);
    }
    // (ts ns, labels, value)
    let mut rows: Vec<(i64, BTreeMap<String, String>, String)> = Vec::new();
    for s in v["data"]["result"].as_array().into_iter().flatten() {
        let labels: BTreeMap<String, String> =
            serde_json::from_value(s["metric"].clone()).unwrap_or_default();
        for p in s["values"].as_array().into_iter().flatten() {
            let ts = (p[0].as_f64().unwrap_or(0.0) * 1e9).round() as i64;
            rows.push((ts, labels.clone(), p[1].as_str().unwrap_or("").to_owned()));
        }
    }
    rows.sort_by(|x, y| (x.0, &x.1).cmp(&(y.0, &y.1)));
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let w = rows
        .iter()
        .map(|r| format_labels(&r.1).len())
        .max()
        .unwrap_or(0);
    if a.output == Output::Text && !rows.is_empty() {
        writeln!(out, "{:<30}  {:<w$}  VALUE", "TIME", "SERIES")?;
    }
    for (ts, labels, value) in &rows {
        let res = match a.output {
            Output::Text => writeln!(
                out,
                "{:<30}  {:<w$}  {value}",
                format_ns(*ts),
                format_labels(labels)
            ),
            Output::Raw => writeln!(out, "{value}"),
            _ => writeln!(
                out,
                "{}",
                serde_json::json!({"ts": ts.to_string(), "time": format_ns(*ts), "labels": labels, "value": value})
            ),
        };
        match res {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(ExitCode::SUCCESS),
            Err(e) => return Err(e.into()),
        }
    }
    out.flush().ok();
    Ok(ExitCode::SUCCESS)
}

/// Prints one line in `output` format; false when stdout is closed (a pipe to `head`).
pub fn print_line(
    out: &mut impl Write,
    output: Output,
    ts: i64,
    labels: &BTreeMap<String, String>,
    line: &str,
    label_width: usize,
) -> anyhow::Result<bool> {
    let res = match output {
        Output::Text => writeln!(
            out,
            "{}  {:<w$}  {}",
            format_ns(ts),
            format_labels(labels),
            printable(line),
            w = label_width
        ),
        // Raw lines go out as stored into a file or pipe, but never raw to a terminal.
        Output::Raw if std::io::stdout().is_terminal() => writeln!(out, "{}", printable(line)),
        Output::Raw => writeln!(out, "{line}"),
        Output::Jsonl | Output::Json => {
            let v = serde_json::json!({ "ts": ts.to_string(), "time": format_ns(ts), "labels": labels, "line": line });
            writeln!(out, "{v}")
        }
    };
    match res {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// `line` with control characters (but tab) escaped as `\u{1b}`, so that escape sequences
/// in stored lines cannot drive the terminal (move the cursor, rewrite the screen, set the
/// window title) of whoever reads them.
pub fn printable(line: &str) -> Cow<'_, str> {
    if !line.chars().any(|c| c.is_control() && c != '\t') {
        return Cow::Borrowed(line);
    }
    let mut out = String::with_capacity(line.len() + 8);
    for c in line.chars() {
        if c.is_control() && c != '\t' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// `{a="1", b="2"}`.
pub fn format_labels(l: &BTreeMap<String, String>) -> String {
    let inner: Vec<String> = l.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", inner.join(", "))
}

/// Runs `labels [NAME]`.
pub async fn labels(a: LabelsArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(&a.client.url, a.client.token_file.as_deref(), &a.client.tls)?;
    let end = now_ns();
    let start = end.saturating_sub(since_ns(&a.since, "--since")?);
    let mut q = vec![("start", start.to_string()), ("end", end.to_string())];
    if let Some(sel) = &a.query {
        q.push(("query", sel.clone()));
    }
    let path = match &a.name {
        Some(n) => {
            if !fjord_wire::push::valid_label_name(n) {
                anyhow::bail!(
                    "{n:?} is not a label name (letters, digits and _, not starting with a digit)"
                );
            }
            format!("/loki/api/v1/label/{n}/values")
        }
        None => "/loki/api/v1/labels".to_owned(),
    };
    let resp: LabelsResponse = client.get(&path, &q).await?;
    let mut out = std::io::stdout().lock();
    for v in &resp.data {
        if writeln!(out, "{v}").is_err() {
            break;
        }
    }
    if resp.data.is_empty() {
        eprintln!("(none with lines in the last {}; widen --since)", a.since);
    }
    Ok(ExitCode::SUCCESS)
}

/// Human byte counts: `1.5 MiB`.
pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Prints rows as a table: first column left-aligned, the rest right-aligned.
pub fn print_table(
    out: &mut impl Write,
    header: &[&str],
    rows: &[Vec<String>],
) -> std::io::Result<()> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let fmt_row = |cells: Vec<&str>| {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if i == 0 {
                    format!("{c:<w$}", w = widths[i])
                } else {
                    format!("{c:>w$}", w = widths[i])
                }
            })
            .collect::<Vec<_>>()
            .join("  ")
    };
    writeln!(out, "{}", fmt_row(header.to_vec()).trim_end())?;
    for r in rows {
        writeln!(
            out,
            "{}",
            fmt_row(r.iter().map(String::as_str).collect()).trim_end()
        )?;
    }
    Ok(())
}

/// Runs `stats`.
pub async fn stats(a: StatsArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(&a.client.url, a.client.token_file.as_deref(), &a.client.tls)?;
    let resp: serde_json::Value = client.get("/fjord/v1/stats", &[]).await?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&resp)?);
        return Ok(ExitCode::SUCCESS);
    }
    let resp: StatsResponse =
        serde_json::from_value(resp).context("the server's stats are not what fjord expects")?;
    let by = if a.by.is_empty() {
        vec![StatsBy::Team]
    } else {
        a.by
    };
    let mut out = std::io::stdout().lock();
    for (i, b) in by.iter().enumerate() {
        if i > 0 {
            writeln!(out)?;
        }
        match b {
            StatsBy::Team => {
                let rows: Vec<Vec<String>> = resp
                    .data
                    .iter()
                    .map(|t| {
                        vec![
                            t.team.clone(),
                            t.streams.to_string(),
                            t.stored_lines.to_string(),
                            human_bytes(t.stored_raw_bytes),
                            human_bytes(t.stored_compressed_bytes),
                            ratio(t.stored_compressed_bytes, t.stored_raw_bytes),
                            t.batches.to_string(),
                        ]
                    })
                    .collect();
                print_table(
                    &mut out,
                    &[
                        "TEAM", "STREAMS", "LINES", "RAW", "STORED", "RATIO", "BATCHES",
                    ],
                    &rows,
                )?;
            }
            StatsBy::Stream => {
                let rows: Vec<Vec<String>> = resp
                    .detail
                    .streams
                    .iter()
                    .map(|s| {
                        vec![
                            format_labels(&s.stream),
                            s.lines.to_string(),
                            human_bytes(s.raw_bytes),
                            human_bytes(s.stored_bytes),
                            s.chunks.to_string(),
                        ]
                    })
                    .collect();
                print_table(
                    &mut out,
                    &["STREAM", "LINES", "RAW", "STORED", "CHUNKS"],
                    &rows,
                )?;
            }
            StatsBy::Day => {
                let rows: Vec<Vec<String>> = resp
                    .detail
                    .days
                    .iter()
                    .map(|d| {
                        vec![
                            format!("{}  {}", d.day, d.team),
                            d.lines.to_string(),
                            human_bytes(d.raw_bytes),
                            human_bytes(d.stored_bytes),
                        ]
                    })
                    .collect();
                print_table(
                    &mut out,
                    &["DAY         TEAM", "LINES", "RAW", "STORED"],
                    &rows,
                )?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn ratio(a: u64, b: u64) -> String {
    if b == 0 {
        "-".to_owned()
    } else {
        format!("{:.3}", a as f64 / b as f64)
    }
}
