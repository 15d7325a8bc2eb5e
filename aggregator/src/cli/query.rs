//! `fjord-aggregator query`: asks a server's `query_range` and prints the lines in time order.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;

use anyhow::{bail, Context};
use fjord_wire::ErrorBody;

use super::{Output, QueryArgs};
use crate::server::query_types::QueryResponse;
use crate::time::{format_ns, now_ns, parse_duration, parse_time};

/// Reads the bearer token: `--token-file` first, then `FJORD_TOKEN`.
pub fn read_token(file: Option<&std::path::Path>) -> anyhow::Result<Option<String>> {
    if let Some(p) = file {
        let t = std::fs::read_to_string(p)
            .with_context(|| format!("reading token file {}", p.display()))?;
        return Ok(Some(t.trim().to_owned()));
    }
    Ok(std::env::var("FJORD_TOKEN")
        .ok()
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty()))
}

pub async fn run(a: QueryArgs) -> anyhow::Result<ExitCode> {
    let end = match &a.to {
        Some(t) => parse_time(t).map_err(anyhow::Error::msg).context("--to")?,
        None => now_ns(),
    };
    let start = match (&a.from, &a.since) {
        (Some(f), _) => parse_time(f)
            .map_err(anyhow::Error::msg)
            .context("--from")?,
        (None, Some(s)) => {
            let d = parse_duration(s)
                .map_err(anyhow::Error::msg)
                .context("--since")?;
            end.saturating_sub(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        }
        (None, None) => end.saturating_sub(3600 * 1_000_000_000),
    };
    let token = read_token(a.token_file.as_deref())?;
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(120))
        .build()
        .context("building the HTTP client")?;
    let url = format!("{}/loki/api/v1/query_range", a.url.trim_end_matches('/'));
    let mut req = client.get(&url).query(&[
        ("query", a.query.as_str()),
        ("start", &start.to_string()),
        ("end", &end.to_string()),
        ("limit", &a.limit.to_string()),
        ("direction", if a.backward { "backward" } else { "forward" }),
    ]);
    if let Some(t) = &token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.with_context(|| {
        format!(
            "cannot reach the aggregator at {}; is it running? (set --url or FJORD_URL)",
            a.url
        )
    })?;
    let status = resp.status();
    let body = resp.bytes().await.context("reading the response")?;
    if !status.is_success() {
        let reason = serde_json::from_slice::<ErrorBody>(&body)
            .map(|e| e.error)
            .unwrap_or_else(|_| String::from_utf8_lossy(&body).chars().take(500).collect());
        bail!("query failed ({status}): {reason}");
    }
    let parsed: QueryResponse = serde_json::from_slice(&body)
        .context("the server's answer is not a Loki query response")?;

    // Merge streams into one time-ordered list; ties keep stream order.
    let mut rows: Vec<(i64, usize, &BTreeMap<String, String>, &str)> = Vec::new();
    for s in &parsed.data.result {
        for (i, e) in s.values.iter().enumerate() {
            rows.push((e.ts_ns, i, &s.stream, e.line.as_str()));
        }
    }
    rows.sort_by_key(|r| (r.0, r.1));
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let label_width = rows
        .iter()
        .map(|r| format_labels(r.2).len())
        .max()
        .unwrap_or(0);
    for (ts, _, labels, line) in &rows {
        let res = match a.output {
            Output::Text => writeln!(
                out,
                "{}  {:<w$}  {}",
                format_ns(*ts),
                format_labels(labels),
                line,
                w = label_width
            ),
            Output::Raw => writeln!(out, "{line}"),
            Output::Jsonl => {
                let v = serde_json::json!({ "ts": ts.to_string(), "time": format_ns(*ts), "labels": labels, "line": line });
                writeln!(out, "{v}")
            }
        };
        if let Err(e) = res {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                return Ok(ExitCode::SUCCESS);
            }
            return Err(e.into());
        }
    }
    out.flush().ok();
    if rows.len() >= a.limit && a.limit > 0 {
        eprintln!(
            "(showing the first {} lines; raise --limit or narrow the range for more)",
            a.limit
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn format_labels(l: &BTreeMap<String, String>) -> String {
    let inner: Vec<String> = l.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", inner.join(", "))
}
