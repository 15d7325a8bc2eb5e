//! `erase` (through a server's admin endpoint, or offline with `--data`) and `retention run`
//! (offline on the data directory). Offline commands open the same SQLite file a running
//! server uses; SQLite's locks and busy timeout serialise them with it.

use std::process::ExitCode;

use anyhow::{bail, Context};

use super::client::Client;
use super::query::{human_bytes, print_table};
use super::{EraseArgs, RetentionArgs, EXIT_USAGE};
use crate::config::{self, Overrides};
use crate::logql;
use crate::server::query_types::EraseRequest;
use crate::store::{EraseReport, Erasure, Store};
use fjord_wire::clock::now_ns;

/// `{sel} |= "a" |= "b" | name="v"` from the selector, the filters and the metadata.
fn erase_query(a: &EraseArgs) -> anyhow::Result<String> {
    let sel = logql::parse(&a.selector).context("the selector")?;
    if !sel.filters.is_empty() || sel.has_pipeline() {
        bail!("give line filters with --filter, not in the selector");
    }
    let mut q = a.selector.trim().to_owned();
    for f in &a.filter {
        if f.is_empty() {
            bail!("--filter must not be empty");
        }
        q.push_str(" |= ");
        q.push_str(&serde_json::to_string(f)?);
    }
    for m in &a.metadata {
        let Some((name, value)) = m.split_once('=') else {
            bail!("--metadata takes NAME=VALUE");
        };
        if !fjord_wire::push::valid_label_name(name) {
            bail!("--metadata: {name:?} is not a label name ([a-zA-Z_][a-zA-Z0-9_]*)");
        }
        q.push_str(&format!(" | {name}={}", serde_json::to_string(value)?));
    }
    // Check the whole query the way the server will.
    logql::parse(&q).context("the erase query")?;
    Ok(q)
}

fn operator(a: &EraseArgs) -> Option<String> {
    a.operator
        .clone()
        .or_else(|| std::env::var("USER").ok())
        .filter(|o| !o.trim().is_empty())
}

/// Runs `erase`.
pub async fn erase(a: EraseArgs) -> anyhow::Result<ExitCode> {
    let query = erase_query(&a)?;
    let report = if let Some(dir) = &a.data {
        let (start_ns, end_ns) =
            fjord_wire::clock::range(None, a.from.as_deref(), a.to.as_deref(), now_ns(), None)?;
        let Some(op) = operator(&a) else {
            bail!("offline erasure needs --operator NAME (or $USER) for the erasure log");
        };
        let e = Erasure {
            query: logql::parse(&query)?,
            query_text: query.clone(),
            start_ns,
            end_ns,
            team: None,
            operator: format!("offline ({op})"),
            dry_run: a.dry_run,
        };
        let dir = dir.clone();
        tokio::task::spawn_blocking(move || -> anyhow::Result<EraseReport> {
            let store = Store::open(&dir)
                .with_context(|| format!("opening the store in {}", dir.display()))?;
            Ok(store.erase(&e, now_ns())?)
        })
        .await??
    } else {
        let url = a
            .url
            .clone()
            .unwrap_or_else(|| "http://127.0.0.1:3100".to_owned());
        let client = Client::new(&url, a.token_file.as_deref(), &a.tls)?;
        #[derive(serde::Deserialize)]
        struct Resp {
            data: EraseReport,
        }
        let resp: Resp = client
            .post(
                "/fjord/v1/erase",
                &EraseRequest {
                    query: query.clone(),
                    start: a.from.clone(),
                    end: a.to.clone(),
                    operator: operator(&a),
                    dry_run: a.dry_run,
                },
            )
            .await?;
        resp.data
    };
    if a.dry_run {
        println!(
            "would erase {} lines in {} chunks matching {query}",
            report.lines, report.chunks
        );
    } else {
        println!(
            "erased {} lines in {} chunks matching {query} (erasure log #{})",
            report.lines,
            report.chunks,
            report
                .log_id
                .map_or_else(|| "-".to_owned(), |i| i.to_string())
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `retention run`.
pub async fn retention(a: RetentionArgs) -> anyhow::Result<ExitCode> {
    let cfg = match config::load(
        a.config.as_deref(),
        Overrides {
            data_dir: a.data.clone(),
            ..Overrides::default()
        },
    ) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("fjord-aggregator: {e}");
            return Ok(ExitCode::from(EXIT_USAGE));
        }
    };
    let dir = cfg.data_dir.clone();
    if !dir.join(crate::store::DB_FILE).exists() {
        bail!("no store in {}; pass --data DIR", dir.display());
    }
    let policy = cfg.retention.clone();
    let report = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let store =
            Store::open(&dir).with_context(|| format!("opening the store in {}", dir.display()))?;
        Ok(store.apply_retention(&policy, now_ns())?)
    })
    .await??;
    let rows: Vec<Vec<String>> = report
        .teams
        .iter()
        .map(|(team, days, chunks, lines)| {
            vec![
                team.clone(),
                if *days == 0 {
                    "forever".to_owned()
                } else {
                    format!("{days} d")
                },
                chunks.to_string(),
                lines.to_string(),
            ]
        })
        .collect();
    let mut out = std::io::stdout().lock();
    print_table(
        &mut out,
        &["TEAM", "KEEP", "CHUNKS DELETED", "LINES DELETED"],
        &rows,
    )?;
    let r = report.reclaim;
    use std::io::Write;
    writeln!(
        out,
        "\npages {} -> {}; database file now {}",
        r.pages_before,
        r.pages_after,
        human_bytes(r.file_bytes)
    )?;
    Ok(ExitCode::SUCCESS)
}
