//! `audit report --format html|md`: the compliance report for people. HTML is one
//! self-contained page (no scripts, no fetches): inline SVG charts drawn with plotters' SVG
//! backend, tables, and print CSS so that a browser prints it to PDF. Markdown has the same
//! sections and tables, without charts. Under every figure is the command that reproduces it.
//!
//! Invariants: every value from the store is HTML-escaped; nothing here reads the store.

use std::fmt::Write;

use plotters::prelude::*;

use super::compliance::{ComplianceReport, Figure};
use fjord_wire::clock::format_ns;

/// Escapes text for HTML element content and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A bar chart as inline SVG; a short note instead when there is nothing to draw.
fn bar_chart(id: &str, title: &str, y_desc: &str, bars: &[(String, u64)]) -> String {
    if bars.is_empty() {
        return format!(
            "<p class=\"empty\">{}: nothing in this range.</p>",
            esc(title)
        );
    }
    let mut svg = String::new();
    let drawn = (|| -> Result<(), String> {
        let root = SVGBackend::with_string(&mut svg, (760, 320)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let max = bars.iter().map(|b| b.1).max().unwrap_or(0).max(1);
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(48)
            .y_label_area_size(70)
            // A segmented range holds its end as a segment too: `0..n - 1` is n bars (one bar
            // needs a range of two, or the range is empty).
            .build_cartesian_2d(
                (0..bars.len().saturating_sub(1).max(1)).into_segmented(),
                0u64..max + max / 10 + 1,
            )
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(bars.len().min(31))
            .x_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) => bars.get(*i).map(|b| b.0.clone()).unwrap_or_default(),
                _ => String::new(),
            })
            .y_desc(y_desc)
            .draw()
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(bars.iter().enumerate().map(|(i, (_, v))| {
                let mut bar = Rectangle::new(
                    [
                        (SegmentValue::Exact(i), 0),
                        (SegmentValue::Exact(i + 1), *v),
                    ],
                    RGBColor(0x2b, 0x6c, 0xb0).filled(),
                );
                bar.set_margin(0, 0, 6, 6);
                bar
            }))
            .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())
    })();
    match drawn {
        Ok(()) => format!("<figure class=\"chart\" id=\"{id}\">{svg}</figure>"),
        Err(e) => format!(
            "<p class=\"empty\">{}: the chart could not be drawn ({})</p>",
            esc(title),
            esc(&e)
        ),
    }
}

/// A table: a header row and body rows, all escaped.
fn table(head: &[&str], rows: &[Vec<String>]) -> String {
    if rows.is_empty() {
        return "<p class=\"empty\">Nothing in this range.</p>".to_owned();
    }
    let mut t = String::from("<table><thead><tr>");
    for h in head {
        let _ = write!(t, "<th>{}</th>", esc(h));
    }
    t.push_str("</tr></thead><tbody>");
    for r in rows {
        t.push_str("<tr>");
        for c in r {
            let _ = write!(t, "<td>{}</td>", esc(c));
        }
        t.push_str("</tr>");
    }
    t.push_str("</tbody></table>");
    t
}

fn source<T>(f: &Figure<T>) -> String {
    format!(
        "<p class=\"query\">Produced by <code>{}</code>: {}.</p>",
        esc(&f.command),
        esc(&f.basis)
    )
}

/// The sections every format shares: (id, heading, what it proves, table head, rows).
type Section = (
    &'static str,
    &'static str,
    &'static str,
    Vec<&'static str>,
    Vec<Vec<String>>,
);

fn sections(r: &ComplianceReport) -> Vec<Section> {
    let n = |v: u64| v.to_string();
    let i = &r.integrity.data;
    let mut integrity = vec![
        vec![
            "stored data and ledgers".into(),
            if i.ok {
                "verified".into()
            } else {
                "FAILED".into()
            },
        ],
        vec!["receipts checked".into(), n(i.receipts_checked)],
        vec!["stored lines checked".into(), n(i.stored_lines_checked)],
        vec![
            "batches missing / extra / altered".into(),
            format!("{} / {} / {}", i.missing, i.extra, i.altered),
        ],
        vec![
            "stored lines without receipt; unreadable chunks".into(),
            format!("{}; {}", i.unreceipted, i.corrupt_chunks),
        ],
        vec!["audit chain links".into(), n(i.chain_links)],
        vec![
            "signed roots verified".into(),
            if i.keys.is_empty() {
                format!(
                    "{} roots; signatures not checked (no public key given)",
                    i.roots
                )
            } else {
                format!(
                    "{} of {} with key(s) {}",
                    i.roots_verified,
                    i.roots,
                    i.keys.join(", ")
                )
            },
        ],
        vec![
            "signed through".into(),
            format!(
                "{} ({} links since)",
                i.signed_through_at.as_deref().unwrap_or("never"),
                i.unsigned_links
            ),
        ],
    ];
    for f in &i.chain_findings {
        integrity.push(vec!["CHAIN FINDING".into(), f.to_uppercase()]);
    }
    for d in &i.days {
        integrity.push(vec![
            format!("day {}", d.day),
            format!(
                "{} receipts checked; missing / extra / altered {} / {} / {}",
                d.receipts_checked, d.missing, d.extra, d.altered
            ),
        ]);
    }
    let p = &r.pii_scan.data;
    let mut pii = vec![
        vec!["rule set".into(), p.rules_version.clone()],
        vec!["lines scanned".into(), n(p.lines_scanned)],
        vec!["lines matching any rule".into(), n(p.lines_matching)],
        vec!["unreadable chunks".into(), n(p.corrupt_chunks)],
    ];
    for (rule, lines) in &p.rules {
        pii.push(vec![format!("rule {rule}"), format!("{lines} lines")]);
    }
    for d in &p.days {
        let rules: Vec<String> = d.rules.iter().map(|(r, n)| format!("{r} {n}")).collect();
        pii.push(vec![
            format!("day {}", d.day),
            format!(
                "{} lines scanned, {} matching{}",
                d.lines_scanned,
                d.lines_matching,
                if rules.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", rules.join(", "))
                }
            ),
        ]);
    }
    vec![
        (
            "shipped",
            "What left each pod, and where it went",
            "Batches each pod's own ledger records as delivered, per day and destination, with the jurisdiction the destination declared when the data left.",
            vec!["team", "day", "pod", "destination", "jurisdiction", "batches", "records", "bytes"],
            r.shipped
                .data
                .iter()
                .map(|s| vec![s.team.clone(), s.day.clone(), s.agent.clone(), s.destination.clone(), s.jurisdiction.clone(), n(s.batches), n(s.records), n(s.bytes)])
                .collect(),
        ),
        (
            "received",
            "What arrived",
            "The aggregator's receipts: one per batch, written in the transaction that stored it.",
            vec!["team", "day", "sender", "batches", "records", "bytes"],
            r.received
                .data
                .iter()
                .map(|s| vec![s.team.clone(), s.day.clone(), s.agent.clone(), n(s.batches), n(s.records), n(s.bytes)])
                .collect(),
        ),
        (
            "redactions",
            "What was redacted, per rule",
            "The redaction counts each batch declared, per team, day and rule.",
            vec!["team", "day", "rule", "redactions"],
            r.redactions
                .data
                .iter()
                .map(|s| vec![s.team.clone(), s.day.clone(), s.rule.clone(), n(s.count)])
                .collect(),
        ),
        (
            "integrity",
            "Is what is stored what arrived, and is the history unaltered?",
            "Every stored line against its batch's digest, the pods' ledgers against the receipts, and the signed hash chain over receipts, removals, erasures and ledgers.",
            vec!["check", "result"],
            integrity,
        ),
        (
            "pii-scan",
            "Is any PII stored after all?",
            "Every stored line in range re-scanned with the rule set; matches are counted, never shown.",
            vec!["measure", "value"],
            pii,
        ),
        (
            "access",
            "Who read which team's logs",
            "Every query, tail, label and series lookup, per day, token, the team it reads and endpoint.",
            vec!["day", "token", "role", "team read", "endpoint", "requests", "refused", "lines returned"],
            r.access
                .data
                .iter()
                .map(|a| vec![a.day.clone(), a.token.clone(), a.role.clone(), a.team.clone(), a.endpoint.clone(), n(a.requests), n(a.refused), n(a.lines)])
                .collect(),
        ),
        (
            "erasures",
            "What was erased",
            "The erasure log: who erased which lines, when.",
            vec!["at", "operator", "query", "lines", "chunks"],
            r.erasures
                .data
                .iter()
                .map(|e| vec![e.at.clone(), e.record.operator.clone(), e.record.query.clone(), n(e.record.lines), n(e.record.chunks)])
                .collect(),
        ),
        (
            "losses",
            "What was refused or lost",
            "Batches the aggregator refused for good (kept in the pod's dead-letter directory) and byte ranges a rotation or truncation destroyed before they were read, from the pods' ledgers.",
            vec!["team", "day", "pod", "dead-letter batches", "dead-letter records", "lost ranges", "lost bytes"],
            r.losses
                .data
                .iter()
                .map(|l| vec![l.team.clone(), l.day.clone(), l.agent.clone(), n(l.dead_letter_batches), n(l.dead_letter_records), n(l.lost_ranges), n(l.lost_bytes)])
                .collect(),
        ),
    ]
}

/// The command and basis of each section, by id.
fn source_of<'r>(r: &'r ComplianceReport, id: &str) -> (&'r str, &'r str) {
    match id {
        "shipped" => (&r.shipped.command, &r.shipped.basis),
        "received" => (&r.received.command, &r.received.basis),
        "redactions" => (&r.redactions.command, &r.redactions.basis),
        "integrity" => (&r.integrity.command, &r.integrity.basis),
        "pii-scan" => (&r.pii_scan.command, &r.pii_scan.basis),
        "access" => (&r.access.command, &r.access.basis),
        "erasures" => (&r.erasures.command, &r.erasures.basis),
        _ => (&r.losses.command, &r.losses.basis),
    }
}

fn scope(r: &ComplianceReport) -> String {
    let f = |ns: i64| {
        if ns <= 0 {
            "the beginning".to_owned()
        } else {
            format_ns(ns)
        }
    };
    format!(
        "{} .. {}{}",
        f(r.range.from_ns),
        f(r.range.to_ns),
        r.team
            .as_deref()
            .map(|t| format!(", team {t}"))
            .unwrap_or_else(|| ", every team".into())
    )
}

const CSS: &str = "
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 62rem; color: #1a202c; }
h1 { margin-bottom: .2rem; } h2 { border-bottom: 1px solid #cbd5e0; padding-bottom: .2rem; }
.meta, .query, .what { color: #4a5568; } .query { font-size: .85rem; }
table { border-collapse: collapse; width: 100%; margin: .5rem 0; font-size: .9rem; }
th, td { border: 1px solid #cbd5e0; padding: .25rem .5rem; text-align: left; vertical-align: top; }
th { background: #edf2f7; }
.status { display: inline-block; padding: .2rem .6rem; border-radius: .3rem; font-weight: 600; }
.ok { background: #c6f6d5; } .failed { background: #fed7d7; }
figure.chart { margin: .5rem 0; } figure.chart svg { max-width: 100%; height: auto; }
@page { size: A4; margin: 14mm; }
@media print {
  body { margin: 0; max-width: none; font-size: 10pt; }
  section { break-inside: avoid; }
  h2 { break-after: avoid; }
  .query { font-size: 7.5pt; }
}
";

/// The report as one self-contained HTML page.
pub fn render_html(r: &ComplianceReport) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>fjord compliance report, {}</title><style>{CSS}</style></head><body>",
        esc(&scope(r))
    );
    let _ = write!(
        h,
        "<h1>fjord compliance report</h1><p class=\"meta\">{}. Generated {}.</p>",
        esc(&scope(r)),
        esc(&r.generated)
    );
    let ok = r.integrity.data.ok;
    let clean = r.pii_scan.data.lines_matching == 0;
    let _ = write!(
        h,
        "<section id=\"summary\"><h2>Summary</h2><p><span class=\"status {}\">integrity: {}</span> <span class=\"status {}\">PII re-scan: {} lines matching</span> <span class=\"status {}\">{} pods with refusals or losses</span></p></section>",
        if ok { "ok" } else { "failed" },
        if ok { "verified" } else { "FAILED" },
        if clean { "ok" } else { "failed" },
        r.pii_scan.data.lines_matching,
        if r.losses.data.is_empty() { "ok" } else { "failed" },
        r.losses.data.len()
    );
    // The charts: records shipped per day (received, for senders without a shipped ledger)
    // and redactions per rule.
    let mut per_day = std::collections::BTreeMap::<String, u64>::new();
    if r.shipped.data.is_empty() {
        for s in &r.received.data {
            *per_day.entry(s.day.clone()).or_default() += s.records;
        }
    } else {
        for s in &r.shipped.data {
            *per_day.entry(s.day.clone()).or_default() += s.records;
        }
    }
    let mut per_rule = std::collections::BTreeMap::<String, u64>::new();
    for s in &r.redactions.data {
        *per_rule.entry(s.rule.clone()).or_default() += s.count;
    }
    for (id, title, what, head, rows) in sections(r) {
        let _ = write!(
            h,
            "<section id=\"{id}\"><h2>{}</h2><p class=\"what\">{}</p>",
            esc(title),
            esc(what)
        );
        match id {
            "shipped" => h.push_str(&bar_chart(
                "chart-shipped",
                if r.shipped.data.is_empty() {
                    "Records received per day"
                } else {
                    "Records shipped per day"
                },
                "records",
                &per_day
                    .iter()
                    .map(|(k, v)| (k.clone(), *v))
                    .collect::<Vec<_>>(),
            )),
            "redactions" => h.push_str(&bar_chart(
                "chart-redactions",
                "Redactions per rule",
                "redactions",
                &per_rule
                    .iter()
                    .map(|(k, v)| (k.clone(), *v))
                    .collect::<Vec<_>>(),
            )),
            _ => {}
        }
        h.push_str(&table(&head, &rows));
        let (command, basis) = source_of(r, id);
        h.push_str(&source(&Figure {
            command: command.to_owned(),
            basis: basis.to_owned(),
            data: (),
        }));
        h.push_str("</section>");
    }
    h.push_str("</body></html>\n");
    h
}

/// Escapes a Markdown table cell.
fn md_cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// The report as Markdown: the same sections and tables, without charts.
pub fn render_md(r: &ComplianceReport) -> String {
    let mut m = String::new();
    let _ = writeln!(
        m,
        "# fjord compliance report\n\n{}. Generated {}.\n",
        scope(r),
        r.generated
    );
    for (id, title, what, head, rows) in sections(r) {
        let _ = writeln!(m, "## {title}\n\n{what}\n");
        if rows.is_empty() {
            let _ = writeln!(m, "Nothing in this range.\n");
        } else {
            let _ = writeln!(
                m,
                "| {} |",
                head.iter()
                    .map(|c| md_cell(c))
                    .collect::<Vec<_>>()
                    .join(" | ")
            );
            let _ = writeln!(m, "|{}", "---|".repeat(head.len()));
            for row in rows {
                let _ = writeln!(
                    m,
                    "| {} |",
                    row.iter()
                        .map(|c| md_cell(c))
                        .collect::<Vec<_>>()
                        .join(" | ")
                );
            }
            m.push('\n');
        }
        let (command, basis) = source_of(r, id);
        let _ = writeln!(m, "Produced by `{command}`: {basis}.\n");
    }
    m
}
