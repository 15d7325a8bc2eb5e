//! `audit verify`'s check of the audit chain (store/chain.rs): every link's hash, the order of
//! the links, every covered row against the link written with it, and every signed root
//! against the chain and the public keys an auditor holds.
//!
//! Each finding has a fixed name (`what`) so a report can be filtered and tested:
//! `link missing`, `link out of order`, `link altered`, `no genesis`, `row altered`,
//! `row deleted`, `row not in chain`, `row linked twice`, `root does not match chain`,
//! `bad signature`, `unknown key`, `chain not signed`. Details name rows, positions and
//! column names, never column values (an erasure's query may quote what it erased).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::AuditError;
use crate::keys::{parse_hash, PublicKey, Root};
use crate::store::chain::{self, kind, Genesis, StoredLink};
use crate::store::evidence::Evidence;
use fjord_wire::clock::format_ns;

/// Most findings listed; the rest are counted in `findings_omitted`.
const MAX_FINDINGS: usize = 1_000;

/// One thing wrong with the chain or the rows it covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainFinding {
    /// A fixed name: see the module documentation.
    pub what: String,
    /// The chain position concerned, if any.
    pub pos: Option<i64>,
    /// The covered row concerned: `receipt`, `removal` or `erasure`, and its id.
    pub row: Option<(String, i64)>,
    pub detail: String,
}

/// The audit chain's part of `audit verify`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ChainReport {
    pub links: u64,
    /// Rows written before the chain began (its genesis): not covered.
    pub rows_before_chain: u64,
    pub rows_checked: u64,
    pub roots: u64,
    /// Key ids of the public keys the signatures were checked with; empty: not checked.
    pub keys: Vec<String>,
    /// Roots whose signature verified with one of `keys`.
    pub roots_verified: u64,
    /// The newest position a valid root covers (signature checked when keys were given).
    pub signed_through: Option<i64>,
    pub signed_through_at: Option<String>,
    /// Links after `signed_through`: appended since the last signature.
    pub unsigned_links: u64,
    pub findings: Vec<ChainFinding>,
    pub findings_omitted: u64,
}

impl ChainReport {
    fn find(&mut self, what: &str, pos: Option<i64>, row: Option<(&str, i64)>, detail: String) {
        if self.findings.len() >= MAX_FINDINGS {
            self.findings_omitted += 1;
            return;
        }
        self.findings.push(ChainFinding {
            what: what.to_owned(),
            pos,
            row: row.map(|(k, id)| (k.to_owned(), id)),
            detail,
        });
    }

    /// Whether nothing was found.
    pub fn ok(&self) -> bool {
        self.findings.is_empty() && self.findings_omitted == 0
    }
}

/// Column names of a covered row's body, in body order.
fn columns(kind: &str) -> &'static [&'static str] {
    match kind {
        kind::RECEIPT => &[
            "id",
            "batch_id",
            "agent",
            "team",
            "received_ns",
            "records",
            "raw_bytes",
            "payload_sha256",
            "rules_version",
            "redactions",
            "entries_digest",
        ],
        kind::REMOVAL => &[
            "id",
            "at_ns",
            "kind",
            "erasure_id",
            "operator",
            "seq",
            "lines",
            "digest",
        ],
        kind::ERASURE => &[
            "id", "at_ns", "operator", "query", "start_ns", "end_ns", "lines", "chunks",
        ],
        kind::LEDGER => &[
            "id",
            "team",
            "agent",
            "seq",
            "received_ns",
            "batch_id",
            "sent_ns",
            "outcome",
            "record",
        ],
        _ => &[],
    }
}

/// The names of the columns whose values differ between two bodies.
fn differing(kind: &str, linked: &str, now: &str) -> String {
    let parse = |b: &str| serde_json::from_str::<Vec<serde_json::Value>>(b).unwrap_or_default();
    let (a, b) = (parse(linked), parse(now));
    let names = columns(kind);
    let n = a.len().max(b.len());
    let diff: Vec<&str> = (0..n)
        .filter(|&i| a.get(i) != b.get(i))
        .map(|i| names.get(i).copied().unwrap_or("?"))
        .collect();
    if diff.is_empty() {
        "the row's text differs from its link".to_owned()
    } else {
        format!("columns differ from the link: {}", diff.join(", "))
    }
}

/// Checks the chain in `store` (inside the caller's snapshot) with `keys`.
pub fn check(store: &Evidence, keys: &[PublicKey]) -> Result<ChainReport, AuditError> {
    let links = store.chain_links()?;
    let roots = store.chain_roots()?;
    let rows = store.covered_rows()?;
    let mut report = ChainReport {
        links: links.len() as u64,
        roots: roots.len() as u64,
        keys: keys.iter().map(|k| k.key_id().to_owned()).collect(),
        ..ChainReport::default()
    };
    let bad_links = check_links(&links, &mut report);

    // Genesis: what was written before the chain began.
    let genesis = match links.first() {
        Some(l) if l.kind == kind::GENESIS && l.pos == 1 => {
            serde_json::from_str::<Genesis>(&l.body).ok()
        }
        _ => None,
    };
    if genesis.is_none() && (!links.is_empty() || !rows.is_empty()) {
        report.find(
            "no genesis",
            links.first().map(|l| l.pos),
            None,
            "the chain does not begin with its genesis link; rows before it cannot be told from rows added later".into(),
        );
    }
    let before = |k: &str| -> i64 {
        let g = genesis.unwrap_or_default();
        match k {
            kind::RECEIPT => g.receipts_before,
            kind::REMOVAL => g.removals_before,
            kind::ERASURE => g.erasures_before,
            _ => 0,
        }
    };

    // Rows against their links.
    let mut linked: HashMap<(&str, i64), &StoredLink> = HashMap::new();
    for l in links.iter().filter(|l| l.kind != kind::GENESIS) {
        if let Some(first) = linked.insert((l.kind.as_str(), l.ref_id), l) {
            report.find(
                "row linked twice",
                Some(l.pos),
                Some((&l.kind, l.ref_id)),
                format!("also linked at position {}", first.pos),
            );
        }
    }
    let mut present: HashMap<(&str, i64), ()> = HashMap::with_capacity(rows.len());
    for (k, id, body) in &rows {
        present.insert((k, *id), ());
        match linked.get(&(*k, *id)) {
            Some(l) => {
                report.rows_checked += 1;
                if &l.body != body {
                    report.find(
                        "row altered",
                        Some(l.pos),
                        Some((k, *id)),
                        differing(k, &l.body, body),
                    );
                }
            }
            None if *id <= before(k) => report.rows_before_chain += 1,
            None => report.find(
                "row not in chain",
                None,
                Some((k, *id)),
                "written after the chain began, but no link covers it (inserted, or deleted and inserted again)".into(),
            ),
        }
    }
    let mut gone: Vec<&&StoredLink> = linked
        .iter()
        .filter(|(key, _)| !present.contains_key(*key))
        .map(|(_, l)| l)
        .collect();
    gone.sort_by_key(|l| l.pos);
    for l in gone {
        report.find(
            "row deleted",
            Some(l.pos),
            Some((&l.kind, l.ref_id)),
            format!("linked at {}, no longer in its table", format_ns(l.at_ns)),
        );
    }

    // Roots: against the chain, then against the keys.
    let by_pos: HashMap<i64, &StoredLink> = links.iter().map(|l| (l.pos, l)).collect();
    let mut signed: Option<&Root> = None;
    for root in &roots {
        match by_pos.get(&root.pos) {
            Some(l) if l.hash == root.hash => {}
            Some(_) => {
                report.find(
                    "root does not match chain",
                    Some(root.pos),
                    None,
                    format!(
                        "the root signed {} differs from the link's hash: the chain up to it was rewritten",
                        format_ns(root.signed_ns)
                    ),
                );
                continue;
            }
            None => {
                report.find(
                    "root does not match chain",
                    Some(root.pos),
                    None,
                    format!(
                        "the root signed {} covers a position the chain no longer has: links were deleted",
                        format_ns(root.signed_ns)
                    ),
                );
                continue;
            }
        }
        if !keys.is_empty() {
            let Some(k) = keys.iter().find(|k| k.key_id() == root.key_id) else {
                report.find(
                    "unknown key",
                    Some(root.pos),
                    None,
                    format!(
                        "signed by key {}, which is none of the keys given",
                        root.key_id
                    ),
                );
                continue;
            };
            if !k.verifies(root) {
                report.find(
                    "bad signature",
                    Some(root.pos),
                    None,
                    format!("the signature does not verify with key {}", root.key_id),
                );
                continue;
            }
            report.roots_verified += 1;
        }
        // A root vouches for the links up to it only if they are sound.
        if bad_links.first().is_some_and(|&p| p <= root.pos) {
            continue;
        }
        if signed.is_none_or(|s| root.pos > s.pos) {
            signed = Some(root);
        }
    }
    report.signed_through = signed.map(|r| r.pos);
    report.signed_through_at = signed.map(|r| format_ns(r.signed_ns));
    let last = links.last().map_or(0, |l| l.pos);
    report.unsigned_links = links
        .iter()
        .filter(|l| l.pos > signed.map_or(0, |r| r.pos) && l.pos <= last)
        .count() as u64;
    if !keys.is_empty() && !links.is_empty() && report.roots_verified == 0 {
        report.find(
            "chain not signed",
            None,
            None,
            "public keys were given, but no root of the chain verifies with them".into(),
        );
    }
    Ok(report)
}

/// Checks every link's place and hash; returns the positions of unsound links, ascending.
fn check_links(links: &[StoredLink], report: &mut ChainReport) -> Vec<i64> {
    let pos_of_hash: HashMap<&str, i64> = links.iter().map(|l| (l.hash.as_str(), l.pos)).collect();
    let mut bad = Vec::new();
    let mut last_pos = 0i64;
    let mut expected_prev = hex::encode(chain::ZERO);
    for l in links {
        let gap = l.pos != last_pos + 1;
        if gap {
            report.find(
                "link missing",
                Some(last_pos + 1),
                None,
                format!(
                    "positions {}..{} are not in the chain",
                    last_pos + 1,
                    l.pos - 1
                ),
            );
            bad.push(last_pos + 1);
        }
        if !gap && l.prev != expected_prev {
            let detail = match pos_of_hash.get(l.prev.as_str()) {
                Some(p) => format!("it follows link {p}, not link {last_pos}"),
                None => format!("it does not follow link {last_pos}, nor any link still there"),
            };
            report.find(
                "link out of order",
                Some(l.pos),
                Some((&l.kind, l.ref_id)),
                detail,
            );
            bad.push(l.pos);
        }
        let recomputed = parse_hash(&l.prev)
            .map(|prev| hex::encode(chain::link_hash(&prev, &l.kind, l.ref_id, l.at_ns, &l.body)));
        if recomputed.as_deref() != Some(l.hash.as_str()) {
            report.find(
                "link altered",
                Some(l.pos),
                Some((&l.kind, l.ref_id)),
                "its hash does not match its contents".into(),
            );
            bad.push(l.pos);
        }
        last_pos = l.pos;
        expected_prev = l.hash.clone();
    }
    bad.sort_unstable();
    bad
}
