//! The audit chain: an append-only hash chain over every row that says what happened to log
//! data — each receipt (what arrived), each removal (lines erased, expired by retention, or
//! not stored again as duplicates), each erasure record and each row of an agent's ledger
//! (what a pod sent, had refused, or lost) — with its roots signed from time to time by the
//! aggregator's Ed25519 key ([`crate::keys`]).
//!
//! A link holds the row as it was written (`body`, the row's columns as a JSON array), the
//! hash of the link before it (`prev`) and its own hash, SHA-256 over a domain tag, `prev`,
//! the kind, the row id, the time and the body. `audit verify` recomputes every hash, compares
//! every row with its link and checks every signed root against the chain and the public keys
//! (audit/chain.rs). Entry digests (store/digest.rs) tie the stored chunks to their receipt,
//! so the chain covers the stored lines too.
//!
//! Invariants:
//! - links are appended last in the writing transaction of the rows they cover, under the
//!   chain's lock (SQLite's single writer; a transaction-scoped advisory lock on
//!   PostgreSQL), so positions are dense, follow commit order, and a row commits only with
//!   its link;
//! - the first link is `genesis`, written when the store is first opened by a version that
//!   keeps the chain; its body names the last row id of each table written before, so rows
//!   from before the chain are told from rows inserted behind its back;
//! - a root signs a position and the hash there; it is only ever inserted, once per position.

use sha2::{Digest, Sha256};

use super::{ErasureRecord, ReceiptRow, StoreError};
pub use crate::keys::parse_hash;
use crate::keys::{Root, Signer};

/// Domain tag of a link's hash.
const LINK_TAG: &[u8] = b"fjord-chain-link-v1\0";

/// The hash before the first link.
pub const ZERO: [u8; 32] = [0; 32];

/// What a link covers.
pub mod kind {
    pub const GENESIS: &str = "genesis";
    pub const RECEIPT: &str = "receipt";
    pub const REMOVAL: &str = "removal";
    pub const ERASURE: &str = "erasure";
    pub const LEDGER: &str = "ledger";
}

/// The operator of a removal of kind `duplicate` (entries Loki's dedup did not store again).
pub const DEDUP_OPERATOR: &str = "dedup";

/// A link to append: the row it covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub kind: &'static str,
    /// The row's id in its table (0 for genesis).
    pub ref_id: i64,
    pub at_ns: i64,
    pub body: String,
}

/// A link as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredLink {
    pub pos: i64,
    pub kind: String,
    pub ref_id: i64,
    pub at_ns: i64,
    pub body: String,
    /// Hex hash of the link before (zeros for the first).
    pub prev: String,
    /// Hex hash of this link.
    pub hash: String,
}

/// The hash of a link.
pub fn link_hash(prev: &[u8; 32], kind: &str, ref_id: i64, at_ns: i64, body: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(LINK_TAG);
    h.update(prev);
    h.update((kind.len() as u64).to_be_bytes());
    h.update(kind.as_bytes());
    h.update(ref_id.to_be_bytes());
    h.update(at_ns.to_be_bytes());
    h.update((body.len() as u64).to_be_bytes());
    h.update(body.as_bytes());
    h.finalize().into()
}

/// Links `links` after `head` (the last link's position and hash, `None` for an empty
/// chain): their positions, predecessors and hashes, ready to insert.
pub fn seal(head: Option<(i64, [u8; 32])>, links: &[Link]) -> Vec<StoredLink> {
    let (mut pos, mut prev) = head.unwrap_or((0, ZERO));
    links
        .iter()
        .map(|l| {
            let hash = link_hash(&prev, l.kind, l.ref_id, l.at_ns, &l.body);
            pos += 1;
            let sealed = StoredLink {
                pos,
                kind: l.kind.to_owned(),
                ref_id: l.ref_id,
                at_ns: l.at_ns,
                body: l.body.clone(),
                prev: hex::encode(prev),
                hash: hex::encode(hash),
            };
            prev = hash;
            sealed
        })
        .collect()
}

/// What a backend does to append links, last in a writing transaction.
pub trait ChainTx {
    /// Takes the chain's lock until the transaction ends, then returns the last link's
    /// position and hash (`None` for an empty chain).
    fn chain_head(&mut self) -> Result<Option<(i64, [u8; 32])>, StoreError>;
    /// Inserts a sealed link.
    fn insert_link(&mut self, l: &StoredLink) -> Result<(), StoreError>;
}

/// Appends `links` to the chain inside `tx`'s transaction.
pub fn append<T: ChainTx + ?Sized>(tx: &mut T, links: &[Link]) -> Result<(), StoreError> {
    if links.is_empty() {
        return Ok(());
    }
    let head = tx.chain_head()?;
    for l in seal(head, links) {
        tx.insert_link(&l)?;
    }
    Ok(())
}

/// The head as a backend reads it from its row: position and hex hash.
pub fn head_of(row: Option<(i64, String)>) -> Result<Option<(i64, [u8; 32])>, StoreError> {
    match row {
        None => Ok(None),
        Some((pos, hash)) => match parse_hash(&hash) {
            Some(h) => Ok(Some((pos, h))),
            None => Err(StoreError::Refused(format!(
                "audit chain link {pos} has a malformed hash; run `audit verify`"
            ))),
        },
    }
}

fn json<T: serde::Serialize>(row: &T) -> String {
    // Serialising a tuple of numbers, strings and options cannot fail.
    serde_json::to_string(row).unwrap_or_default()
}

/// The link of receipt `seq`.
pub fn receipt_link(seq: i64, r: &ReceiptRow<'_>) -> Link {
    Link {
        kind: kind::RECEIPT,
        ref_id: seq,
        at_ns: r.received_ns,
        body: receipt_body(seq, r),
    }
}

/// The body of receipt `seq`: its columns in table order.
pub fn receipt_body(seq: i64, r: &ReceiptRow<'_>) -> String {
    json(&(
        seq,
        r.batch_id,
        r.agent,
        r.team,
        r.received_ns,
        r.records,
        r.raw_bytes,
        r.payload_sha256,
        r.rules_version,
        r.redactions,
        Some(r.entries_digest),
    ))
}

/// A `removals` row, as the chain covers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemovalRecord<'a> {
    pub id: i64,
    pub at_ns: i64,
    /// `erasure`, `retention` or `duplicate`.
    pub kind: &'a str,
    pub erasure_id: Option<i64>,
    pub operator: &'a str,
    pub seq: i64,
    pub lines: i64,
    pub digest: &'a str,
}

/// The link of a removal.
pub fn removal_link(r: &RemovalRecord<'_>) -> Link {
    Link {
        kind: kind::REMOVAL,
        ref_id: r.id,
        at_ns: r.at_ns,
        body: removal_body(r),
    }
}

/// The body of a removal: its columns in table order.
pub fn removal_body(r: &RemovalRecord<'_>) -> String {
    json(&(
        r.id,
        r.at_ns,
        r.kind,
        r.erasure_id,
        r.operator,
        r.seq,
        r.lines,
        r.digest,
    ))
}

/// The link of an erasure record.
pub fn erasure_link(r: &ErasureRecord) -> Link {
    Link {
        kind: kind::ERASURE,
        ref_id: r.id,
        at_ns: r.at_ns,
        body: erasure_body(r),
    }
}

/// The body of an erasure record: its columns in table order.
pub fn erasure_body(r: &ErasureRecord) -> String {
    json(&(
        r.id,
        r.at_ns,
        &r.operator,
        &r.query,
        r.start_ns,
        r.end_ns,
        r.lines,
        r.chunks,
    ))
}

/// An `agent_ledger` row, as the chain covers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerRow<'a> {
    pub id: i64,
    pub team: &'a str,
    pub agent: &'a str,
    pub seq: i64,
    pub received_ns: i64,
    pub batch_id: &'a str,
    pub sent_ns: i64,
    pub outcome: &'a str,
    /// The agent's row as JSON.
    pub record: &'a str,
}

/// The link of an agent's ledger row.
pub fn ledger_link(r: &LedgerRow<'_>) -> Link {
    Link {
        kind: kind::LEDGER,
        ref_id: r.id,
        at_ns: r.received_ns,
        body: ledger_body(r),
    }
}

/// The body of an agent's ledger row: its columns in table order.
pub fn ledger_body(r: &LedgerRow<'_>) -> String {
    json(&(
        r.id,
        r.team,
        r.agent,
        r.seq,
        r.received_ns,
        r.batch_id,
        r.sent_ns,
        r.outcome,
        r.record,
    ))
}

/// The body of the genesis link: the last id of each covered table before the chain began.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Genesis {
    pub receipts_before: i64,
    pub removals_before: i64,
    pub erasures_before: i64,
}

/// The genesis link.
pub fn genesis_link(g: &Genesis, at_ns: i64) -> Link {
    Link {
        kind: kind::GENESIS,
        ref_id: 0,
        at_ns,
        body: json(g),
    }
}

/// What a backend does to sign the chain's head.
pub trait SignTx: ChainTx {
    /// The newest signed root's position, if any.
    fn last_root(&mut self) -> Result<Option<i64>, StoreError>;
    /// Inserts a signed root.
    fn insert_root(&mut self, r: &Root) -> Result<(), StoreError>;
}

/// Signs the chain's head inside `tx` unless it is signed already; returns the new root.
pub fn sign_head<T: SignTx + ?Sized>(
    tx: &mut T,
    signer: &Signer,
    now_ns: i64,
) -> Result<Option<Root>, StoreError> {
    let Some((pos, hash)) = tx.chain_head()? else {
        return Ok(None);
    };
    if tx.last_root()?.is_some_and(|last| last >= pos) {
        return Ok(None);
    }
    let root = signer.sign(pos, &hash, now_ns);
    tx.insert_root(&root)?;
    Ok(Some(root))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(n: i64) -> Link {
        Link {
            kind: kind::RECEIPT,
            ref_id: n,
            at_ns: n * 10,
            body: format!("[{n}]"),
        }
    }

    #[test]
    fn sealed_links_follow_each_other() {
        let first = seal(None, &[link(1), link(2)]);
        assert_eq!(first[0].pos, 1);
        assert_eq!(first[0].prev, hex::encode(ZERO));
        assert_eq!(first[1].prev, first[0].hash);
        let head = (2, parse_hash(&first[1].hash).unwrap());
        let more = seal(Some(head), &[link(3)]);
        assert_eq!(more[0].pos, 3);
        assert_eq!(more[0].prev, first[1].hash);
        // The same rows sealed in one go give the same chain.
        let all = seal(None, &[link(1), link(2), link(3)]);
        assert_eq!(all[2], more[0]);
    }

    #[test]
    fn every_field_is_in_the_hash() {
        let base = link_hash(&ZERO, "receipt", 1, 2, "[]");
        assert_ne!(base, link_hash(&[1; 32], "receipt", 1, 2, "[]"));
        assert_ne!(base, link_hash(&ZERO, "removal", 1, 2, "[]"));
        assert_ne!(base, link_hash(&ZERO, "receipt", 3, 2, "[]"));
        assert_ne!(base, link_hash(&ZERO, "receipt", 1, 3, "[]"));
        assert_ne!(base, link_hash(&ZERO, "receipt", 1, 2, "[1]"));
        // Lengths are framed: moving a byte from the kind to the body changes the hash.
        assert_ne!(
            link_hash(&ZERO, "ab", 1, 2, "c"),
            link_hash(&ZERO, "a", 1, 2, "bc")
        );
    }
}
