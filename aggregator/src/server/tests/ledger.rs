//! `POST /v1/ledger` in-process: agents' ledger rows stored once, in order, per team and
//! agent, with their audit-chain links; every bad request refused with a reason.

use fjord_wire::ledger::{LedgerPush, LedgerPushRow, LedgerRecord, Outcome};

use super::*;

fn row(seq: i64, outcome: Outcome) -> LedgerPushRow {
    LedgerPushRow {
        seq,
        record: LedgerRecord {
            batch_id: format!("b{seq}"),
            sent_ns: 1_000 + seq,
            destination: "https://agg".into(),
            region: "eu-north-1".into(),
            jurisdiction: "EEA".into(),
            path: "/var/log/app.log".into(),
            start_off: 0,
            end_off: 10,
            records: 3,
            raw_bytes: 30,
            compressed_bytes: 20,
            payload_sha256: format!("sha{seq}"),
            rules_version: "v1".into(),
            redactions: Default::default(),
            outcome,
            reason: String::new(),
        },
    }
}

fn ledger_req(rows: &[LedgerPushRow], agent: Option<&str>, token: Option<&str>) -> Request<Body> {
    let body = serde_json::to_vec(&LedgerPush {
        team: Some("claimed".into()),
        rows: rows.to_vec(),
    })
    .unwrap();
    raw_ledger_req(body, agent, token)
}

fn raw_ledger_req(body: Vec<u8>, agent: Option<&str>, token: Option<&str>) -> Request<Body> {
    let mut b = Request::post("/v1/ledger").header("content-type", "application/json");
    if let Some(a) = agent {
        b = b.header("fjord-agent", a);
    }
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    b.body(Body::from(body)).unwrap()
}

#[tokio::test]
async fn agent_ledgers_are_stored_once_in_order_per_team_and_agent() {
    let dir = tempfile::tempdir().unwrap();
    let st = state_from(&with_tokens(config(dir.path())));
    let app = app(st.clone());
    let rows = [
        row(1, Outcome::Acked),
        row(2, Outcome::DeadLetter),
        row(3, Outcome::Lost),
    ];
    let (s, _, b) = send(
        &app,
        ledger_req(&rows[..2], Some("pod-1"), Some(INGEST_PAY)),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b, serde_json::json!({"stored": 2, "last_seq": 2}));
    // A retry overlapping what is stored stores only the new row.
    let (s, _, b) = send(&app, ledger_req(&rows, Some("pod-1"), Some(INGEST_PAY))).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b, serde_json::json!({"stored": 1, "last_seq": 3}));
    let (_, _, b) = send(&app, ledger_req(&rows, Some("pod-1"), Some(INGEST_PAY))).await;
    assert_eq!(b, serde_json::json!({"stored": 0, "last_seq": 3}));
    // A team token's team wins over the team the agent claims (asserted below); another
    // team's agent of the same name is another ledger.
    let (_, _, b) = send(
        &app,
        ledger_req(&rows[..1], Some("pod-1"), Some(INGEST_SEARCH)),
    )
    .await;
    assert_eq!(b, serde_json::json!({"stored": 1, "last_seq": 1}));

    // Refusals, each with a reason; nothing of them is stored.
    let cases: Vec<(Request<Body>, StatusCode, &str)> = vec![
        (
            ledger_req(&rows, None, Some(INGEST_PAY)),
            StatusCode::BAD_REQUEST,
            "fjord-agent header",
        ),
        (
            ledger_req(&rows, Some("pod-1"), None),
            StatusCode::UNAUTHORIZED,
            "token",
        ),
        (
            ledger_req(&rows, Some("pod-1"), Some(READ_PAY)),
            StatusCode::FORBIDDEN,
            "may not push",
        ),
        (
            ledger_req(
                &[row(9, Outcome::Acked), row(8, Outcome::Acked)],
                Some("pod-2"),
                Some(INGEST_PAY),
            ),
            StatusCode::BAD_REQUEST,
            "increasing seq order",
        ),
        (
            raw_ledger_req(
                b"{\"rows\":[{\"seq\":1}]}".to_vec(),
                Some("pod-2"),
                Some(INGEST_PAY),
            ),
            StatusCode::BAD_REQUEST,
            "not a ledger push",
        ),
        (
            // A value of the wrong type is named by its place, never echoed.
            raw_ledger_req(
                b"{\"rows\":[{\"seq\":\"user@example.no\"}]}".to_vec(),
                Some("pod-2"),
                Some(INGEST_PAY),
            ),
            StatusCode::BAD_REQUEST,
            "not a ledger push at line 1 column",
        ),
        (
            ledger_req(
                &(1..=1001)
                    .map(|i| row(i, Outcome::Acked))
                    .collect::<Vec<_>>(),
                Some("pod-2"),
                Some(INGEST_PAY),
            ),
            StatusCode::PAYLOAD_TOO_LARGE,
            "at most 1000 rows",
        ),
    ];
    for (req, want, reason) in cases {
        let (s, _, b) = send(&app, req).await;
        assert_eq!(s, want, "{b}");
        assert!(!b.to_string().contains("example.no"), "input echoed: {b}");
        assert!(
            b["error"].as_str().unwrap_or_default().contains(reason),
            "{b}"
        );
    }

    let store = st.store.clone();
    tokio::task::spawn_blocking(move || {
        let ev = store.evidence().unwrap();
        let stored = ev.agent_ledger(i64::MIN, i64::MAX).unwrap();
        let got: Vec<(&str, &str, i64, &str)> = stored
            .iter()
            .map(|r| (r.team.as_str(), r.agent.as_str(), r.seq, r.outcome.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("payments", "pod-1", 1, "acked"),
                ("payments", "pod-1", 2, "dead_letter"),
                ("payments", "pod-1", 3, "lost"),
                ("search", "pod-1", 1, "acked"),
            ]
        );
        // Each row has its link in the audit chain, and the chain verifies.
        let r = crate::audit::verify(&ev, crate::audit::Range::ALL, None, &[]).unwrap();
        let chain = r.chain.unwrap();
        assert_eq!(chain.rows_checked, 4, "{chain:#?}");
        assert!(chain.ok(), "{chain:#?}");
    })
    .await
    .unwrap();
}
