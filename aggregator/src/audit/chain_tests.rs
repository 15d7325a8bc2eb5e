//! The audit chain against someone with write access to the database: each test builds a
//! signed store on SQLite and on PostgreSQL, changes rows, chunks or links directly with SQL,
//! and checks that `verify` names what was done, while legitimate compaction, erasure,
//! retention and dedup leave it clean.

use std::collections::BTreeSet;
use std::time::Duration;

use fjord_wire::{Entry, PushRequest, PushStream};

use super::*;
use crate::config::RetentionPolicy;
use crate::keys::{PublicKey, Signer};
use crate::store::chain::{self, StoredLink};
use crate::store::testing::{each_backend, Backend};
use crate::store::{IngestMeta, Store, NS_PER_DAY};

const ALL: Range = Range {
    from_ns: i64::MIN,
    to_ns: i64::MAX,
};

const DAY: i64 = 20_000 * NS_PER_DAY;

fn meta(batch: Option<&str>, received_ns: i64) -> IngestMeta {
    IngestMeta {
        batch_id: batch.map(str::to_owned),
        agent: Some("pod-1".into()),
        team: "payments".into(),
        rules_version: Some("v1".into()),
        redactions: Some(r#"{"email":1}"#.into()),
        payload_sha256: format!("sha-{}", batch.unwrap_or("none")),
        received_ns,
    }
}

fn push(lines: &[(i64, &str)]) -> PushRequest<'static> {
    PushRequest {
        streams: vec![PushStream {
            stream: [("file".to_owned(), "/a.log".to_owned())].into(),
            values: lines.iter().map(|(t, l)| Entry::new(*t, *l)).collect(),
        }],
    }
}

/// A store that has seen everything legitimate the chain covers: batches with ids, a
/// client's retried push without one (dedup), compaction, an erasure and a retention run;
/// signed with `key`.
fn signed_store(b: &Backend, key: &Signer) -> Store {
    let store = (b.open)();
    for (i, id) in ["b1", "b2", "b3"].iter().enumerate() {
        let t = DAY + i as i64 * 10;
        let l1 = format!("{id} first");
        let l2 = format!("{id} second");
        store
            .ingest(
                &meta(Some(id), 1 + i as i64),
                &push(&[(t + 1, &l1), (t, &l2)]),
            )
            .unwrap();
    }
    // A shipper without batch ids retrying: the second push stores nothing new.
    let old = push(&[(DAY - 3 * NS_PER_DAY, "an old line")]);
    store.ingest(&meta(None, 4), &old).unwrap();
    store.ingest(&meta(None, 5), &old).unwrap();
    store.compact(Duration::ZERO, i64::MAX).unwrap();
    let erased = super::tests::erase_as_dpo(&store, r#"{file="/a.log"} |= "b2 second""#).unwrap();
    assert_eq!(erased.lines, 1, "{}", b.name);
    let policy = RetentionPolicy {
        default_days: 2,
        teams: Default::default(),
    };
    let rep = store.apply_retention(&policy, DAY).unwrap();
    assert_eq!(rep.teams[0].3, 1, "{}: the old line expires", b.name);
    // The pod's own ledger, shipped: one batch acknowledged, one byte range lost.
    let shipped: Vec<fjord_wire::ledger::LedgerPushRow> = [
        (1, fjord_wire::ledger::Outcome::Acked),
        (2, fjord_wire::ledger::Outcome::Lost),
    ]
    .into_iter()
    .map(|(seq, outcome)| fjord_wire::ledger::LedgerPushRow {
        seq,
        record: fjord_wire::ledger::LedgerRecord {
            batch_id: format!("b{seq}"),
            sent_ns: seq,
            destination: String::new(),
            region: String::new(),
            jurisdiction: String::new(),
            path: "/a.log".into(),
            start_off: 0,
            end_off: 0,
            records: 2,
            raw_bytes: 20,
            compressed_bytes: 0,
            payload_sha256: "sha-b1".into(),
            rules_version: String::new(),
            redactions: Default::default(),
            outcome,
            reason: String::new(),
        },
    })
    .collect();
    let ack = store
        .ingest_ledger("payments", "pod-1", 6, &shipped)
        .unwrap();
    assert_eq!(ack.stored, 2);
    assert!(store.sign_chain(key, 1_000).unwrap().is_some());
    // Signed already: nothing new to sign.
    assert!(store.sign_chain(key, 1_001).unwrap().is_none());
    store
}

fn check(b: &Backend, keys: &[PublicKey]) -> VerifyReport {
    verify(&(b.evidence)(), ALL, None, keys).unwrap()
}

/// The names of the chain's findings.
fn found(r: &VerifyReport) -> BTreeSet<String> {
    r.chain
        .as_ref()
        .map(|c| c.findings.iter().map(|f| f.what.clone()).collect())
        .unwrap_or_default()
}

#[test]
fn legitimate_work_leaves_a_signed_chain_clean() {
    each_backend(|b| {
        let key = Signer::generate().unwrap();
        let store = signed_store(b, &key);
        let r = check(b, &[key.public()]);
        assert!(r.ok, "{}: {r:#?}", b.name);
        let c = r.chain.as_ref().unwrap();
        // genesis, 5 receipts, 1 duplicate removal, 1 erasure + 1 erasure removal,
        // 1 retention removal, 2 rows of the agent's ledger.
        assert_eq!(c.links, 12, "{}: {c:#?}", b.name);
        assert_eq!(c.rows_checked, 11);
        assert_eq!((c.roots, c.roots_verified), (1, 1));
        assert_eq!((c.signed_through, c.unsigned_links), (Some(12), 0));
        // More arrives: covered by the chain, unsigned until the next root.
        store
            .ingest(&meta(Some("b4"), 6), &push(&[(DAY + 50, "b4")]))
            .unwrap();
        let r = check(b, &[key.public()]);
        assert!(r.ok, "{}: {r:#?}", b.name);
        assert_eq!(r.chain.as_ref().unwrap().unsigned_links, 1);
        // Without keys the hashes are checked and the signatures are not.
        let r = check(b, &[]);
        assert!(r.ok);
        assert!(
            render_verify(&r).contains("signatures NOT checked"),
            "{}",
            render_verify(&r)
        );
        // Rotation: a new key signs from now on; both keys verify their own roots.
        let next = Signer::generate().unwrap();
        store.sign_chain(&next, 2_000).unwrap().unwrap();
        let r = check(b, &[key.public(), next.public()]);
        assert!(r.ok, "{}: {r:#?}", b.name);
        assert_eq!(r.chain.as_ref().unwrap().roots_verified, 2);
        // Given only the old key, the new root is signed by a key the auditor lacks.
        assert_eq!(
            found(&check(b, &[key.public()])),
            ["unknown key".to_owned()].into()
        );
    });
}

/// Runs `tamper` on a fresh signed store of each backend; `verify` must fail and name at
/// least `expected` among the chain's findings, and `stored` among the stored-line findings.
fn detects(expected: &[&str], stored: &[&str], tamper: impl Fn(&Backend, &Signer)) {
    each_backend(|b| {
        let key = Signer::generate().unwrap();
        let store = signed_store(b, &key);
        drop(store);
        tamper(b, &key);
        let r = check(b, &[key.public()]);
        assert!(!r.ok, "{}: tampering not detected: {r:#?}", b.name);
        let names = found(&r);
        for e in expected {
            assert!(
                names.contains(*e),
                "{}: {e:?} not in {names:?}: {r:#?}",
                b.name
            );
        }
        let whats: BTreeSet<&str> = r.altered.iter().map(|a| a.what.as_str()).collect();
        for s in stored {
            assert!(whats.contains(s), "{}: {s:?} not in {whats:?}", b.name);
        }
        // The text report says it too.
        let text = render_verify(&r);
        for e in expected {
            assert!(text.contains(&e.to_uppercase()), "{}: {text}", b.name);
        }
    });
}

#[test]
fn an_altered_receipt_is_named() {
    detects(&["row altered"], &["stored lines"], |b, _| {
        (b.sql)("UPDATE receipts SET records = records + 1 WHERE batch_id = 'b1'");
    });
}

#[test]
fn an_altered_receipt_digest_that_hides_altered_lines_is_named() {
    // The operator replaces a batch's digest with one of another batch, as if to hide a
    // change of its lines: the receipt no longer matches its link.
    detects(&["row altered"], &[], |b, _| {
        let other = (b.sql)("SELECT entries_digest FROM receipts WHERE batch_id = 'b3'");
        (b.sql)(&format!(
            "UPDATE receipts SET entries_digest = '{other}' WHERE batch_id = 'b1'"
        ));
    });
}

#[test]
fn a_deleted_receipt_is_named() {
    detects(&["row deleted"], &[], |b, _| {
        (b.sql)("DELETE FROM receipts WHERE batch_id = 'b3'");
    });
}

#[test]
fn a_receipt_deleted_and_inserted_again_is_named() {
    detects(
        &["row deleted", "row not in chain"],
        &["stored lines"],
        |b, _| {
            (b.sql)(
                "INSERT INTO receipts (batch_id, agent, team, received_ns, records, raw_bytes,
                                   payload_sha256, rules_version, redactions, entries_digest)
             SELECT 'copy', agent, team, received_ns, records, raw_bytes, payload_sha256,
                    rules_version, redactions, entries_digest
             FROM receipts WHERE batch_id = 'b1'",
            );
            (b.sql)("DELETE FROM receipts WHERE batch_id = 'b1'");
            (b.sql)("UPDATE receipts SET batch_id = 'b1' WHERE batch_id = 'copy'");
        },
    );
}

#[test]
fn receipts_swapped_in_order_are_named() {
    detects(&["row altered"], &["stored lines"], |b, _| {
        let (one, two) = (
            (b.sql)("SELECT id FROM receipts WHERE batch_id = 'b1'"),
            (b.sql)("SELECT id FROM receipts WHERE batch_id = 'b2'"),
        );
        (b.sql)(&format!(
            "UPDATE receipts SET id = 1000000 WHERE id = {one}"
        ));
        (b.sql)(&format!("UPDATE receipts SET id = {one} WHERE id = {two}"));
        (b.sql)(&format!(
            "UPDATE receipts SET id = {two} WHERE id = 1000000"
        ));
    });
}

#[test]
fn an_inserted_receipt_is_named() {
    detects(&["row not in chain"], &[], |b, _| {
        (b.sql)(
            "INSERT INTO receipts (batch_id, agent, team, received_ns, records, raw_bytes,
                                   payload_sha256, entries_digest)
             SELECT 'forged', agent, team, 7, 0, 0, 'sha-forged', entries_digest
             FROM receipts WHERE batch_id = 'b1'",
        );
    });
}

#[test]
fn a_deleted_removal_hiding_an_erasure_is_named() {
    detects(&["row deleted"], &["stored lines"], |b, _| {
        (b.sql)("DELETE FROM removals WHERE kind = 'erasure'");
    });
}

#[test]
fn a_pods_ledger_altered_or_deleted_is_named() {
    // Hiding a loss: the row rewritten as delivered, or deleted.
    detects(&["row altered"], &[], |b, _| {
        (b.sql)("UPDATE agent_ledger SET outcome = 'acked' WHERE outcome = 'lost'");
    });
    detects(&["row deleted"], &[], |b, _| {
        (b.sql)("DELETE FROM agent_ledger WHERE outcome = 'lost'");
    });
}

#[test]
fn an_altered_erasure_record_is_named() {
    detects(&["row altered"], &[], |b, _| {
        (b.sql)("UPDATE erasures SET operator = 'someone else'");
    });
}

#[test]
fn altered_deleted_and_reinserted_chunks_are_named() {
    // A chunk's lines are covered through its receipt's entry digest.
    detects(&[], &["stored lines"], |b, _| {
        (b.sql)(
            "INSERT INTO chunks (stream_id, day, min_ts, max_ts, lines, raw_bytes, seq, data)
             SELECT stream_id, day, min_ts, max_ts, lines, raw_bytes, seq, data
             FROM chunks WHERE id = (SELECT min(id) FROM chunks)",
        );
    });
    detects(&[], &["stored lines"], |b, _| {
        (b.sql)("DELETE FROM chunks WHERE id = (SELECT max(id) FROM chunks)");
    });
}

#[test]
fn links_reordered_altered_or_deleted_are_named() {
    detects(&["link out of order"], &[], |b, _| {
        (b.sql)("UPDATE chain SET pos = 1000000 WHERE pos = 2");
        (b.sql)("UPDATE chain SET pos = 2 WHERE pos = 3");
        (b.sql)("UPDATE chain SET pos = 3 WHERE pos = 1000000");
    });
    detects(&["link altered"], &[], |b, _| {
        (b.sql)("UPDATE chain SET at_ns = at_ns + 1 WHERE pos = 4");
    });
    detects(&["link missing", "row not in chain"], &[], |b, _| {
        (b.sql)("DELETE FROM chain WHERE pos = 5");
    });
    detects(&["no genesis"], &[], |b, _| {
        (b.sql)("DELETE FROM chain WHERE pos = 1");
    });
}

/// Reads the links, changes one body with `edit`, and recomputes every hash from there, as
/// someone who knows the chain's construction but not the key would.
fn rewrite_chain(b: &Backend, pos: i64, edit: impl Fn(&str) -> String) -> Vec<StoredLink> {
    let mut links = (b.evidence)().chain_links().unwrap();
    let i = links.iter().position(|l| l.pos == pos).unwrap();
    links[i].body = edit(&links[i].body);
    let head = (i > 0).then(|| {
        let p = &links[i - 1];
        (p.pos, chain::parse_hash(&p.hash).unwrap())
    });
    let relinked: Vec<chain::Link> = links[i..]
        .iter()
        .map(|l| chain::Link {
            kind: match l.kind.as_str() {
                "receipt" => chain::kind::RECEIPT,
                "removal" => chain::kind::REMOVAL,
                "erasure" => chain::kind::ERASURE,
                _ => chain::kind::GENESIS,
            },
            ref_id: l.ref_id,
            at_ns: l.at_ns,
            body: l.body.clone(),
        })
        .collect();
    let sealed = chain::seal(head, &relinked);
    for l in &sealed {
        (b.sql)(&format!(
            "UPDATE chain SET body = '{}', prev = '{}', hash = '{}' WHERE pos = {}",
            l.body.replace('\'', "''"),
            l.prev,
            l.hash,
            l.pos
        ));
    }
    sealed
}

/// Batch b1's receipt says 1 record, and its link (position 2) says so too, with every later
/// hash recomputed.
fn forge_b1(b: &Backend) -> Vec<StoredLink> {
    (b.sql)("UPDATE receipts SET records = 1 WHERE batch_id = 'b1'");
    rewrite_chain(b, 2, |body| {
        let mut v: Vec<serde_json::Value> = serde_json::from_str(body).unwrap();
        v[5] = 1.into();
        serde_json::to_string(&v).unwrap()
    })
}

#[test]
fn a_rewritten_chain_breaks_its_signed_root() {
    // The receipt of b1 (link 2) and its link changed together, every later hash recomputed:
    // the chain is consistent again, but no longer the one that was signed.
    detects(&["root does not match chain"], &["stored lines"], |b, _| {
        forge_b1(b);
    });
    // … and a root rewritten to match fails its signature.
    detects(&["bad signature"], &["stored lines"], |b, _| {
        let sealed = forge_b1(b);
        let last = sealed.last().unwrap();
        (b.sql)(&format!(
            "UPDATE chain_roots SET hash = '{}' WHERE pos = {}",
            last.hash, last.pos
        ));
    });
    // … and one signed again with a key of the forger's is not the aggregator's.
    detects(&["unknown key"], &["stored lines"], |b, _| {
        let sealed = forge_b1(b);
        let last = sealed.last().unwrap();
        let forged = Signer::generate().unwrap().sign(
            last.pos,
            &chain::parse_hash(&last.hash).unwrap(),
            1_000,
        );
        (b.sql)(&format!(
            "UPDATE chain_roots SET hash = '{}', key_id = '{}', signature = '{}' WHERE pos = {}",
            forged.hash, forged.key_id, forged.signature, forged.pos
        ));
    });
}

#[test]
fn deleting_the_signed_links_is_named() {
    detects(&["root does not match chain"], &[], |b, _| {
        let last = (b.sql)("SELECT max(pos) FROM chain");
        (b.sql)(&format!("DELETE FROM chain WHERE pos = {last}"));
    });
    // Deleting the roots too leaves a chain no key vouches for.
    detects(&["chain not signed"], &[], |b, _| {
        (b.sql)("DELETE FROM chain_roots");
    });
}
