//! Shipping under faults, with the real agent and aggregator (and, where the fault is in
//! the network or the answer, the fault proxy between them). Each test ends with every
//! written line stored exactly once (compared as sets of sequence numbers).

use std::path::Path;
use std::time::{Duration, Instant};

use fjord_e2e::proxy::{Fault, Proxy};
use fjord_e2e::writer::{append_numbered, Writer};
use fjord_e2e::{
    admin_addr, agent_config, agent_metric, agent_metric_sum, free_port, http_get, start_agent,
    test_dir, wait_for, Aggregator,
};

/// Small batches, so that faults hit several of them.
const SMALL_BATCHES: &str = "max_batch_lines = 200";
/// What the aggregator declares in these tests.
const EEA: [&str; 4] = ["--region", "eu-north-1", "--jurisdiction", "EEA"];

fn agent_log_contains(dir: &Path, needle: &str) -> bool {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("agent-"))
        .any(|e| {
            std::fs::read_to_string(e.path())
                .unwrap_or_default()
                .contains(needle)
        })
}

/// With `ready_requires_shipping = true` (the opt-in), `/readyz` fails while the
/// aggregator is unreachable and passes once it answers.
#[test]
fn aggregator_down_at_start_fails_readiness_when_it_requires_shipping() {
    let dir = test_dir();
    let port = free_port();
    let cfg = agent_config(
        dir.path(),
        &format!("http://127.0.0.1:{port}"),
        &format!("{SMALL_BATCHES}\nready_requires_shipping = true"),
    );
    append_numbered(&dir.path().join("logs/app.log"), 0..3000);
    let _agent = start_agent(dir.path(), &cfg);
    wait_for("the agent to notice", Duration::from_secs(30), || {
        agent_log_contains(dir.path(), "aggregator unreachable")
    });
    let (status, body) = http_get(admin_addr(&cfg), "/readyz").unwrap();
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("aggregator unreachable"), "{body}");
    assert_eq!(agent_metric(&cfg, "fjord_agent_aggregator_up"), Some(0.0));
    let agg = Aggregator::start_on(dir.path(), port, &EEA);
    agg.expect_exactly_once(&(0..3000).collect(), Duration::from_secs(60));
    assert_eq!(http_get(admin_addr(&cfg), "/readyz").unwrap().0, 200);
    assert_eq!(agent_metric(&cfg, "fjord_agent_aggregator_up"), Some(1.0));
}

/// A log sidecar fails soft: with the aggregator down for 20 s while the app writes,
/// `/readyz` answers 200 at every poll (the pod stays in its Service), the backlog shows in
/// `fjord_agent_lag_bytes` and the outage in `fjord_agent_aggregator_up`, and once the
/// aggregator is back every line arrives exactly once.
#[test]
fn aggregator_down_20s_keeps_readyz_200() {
    const OUTAGE: Duration = Duration::from_secs(20);
    let dir = test_dir();
    let port = free_port();
    let agg = Aggregator::start_on(dir.path(), port, &EEA);
    let cfg = agent_config(dir.path(), &agg.url(), SMALL_BATCHES);
    let admin = admin_addr(&cfg);
    let writer = Writer::start(&dir.path().join("logs/app.log"), 500);
    let _agent = start_agent(dir.path(), &cfg);
    wait_for("some lines stored", Duration::from_secs(30), || {
        agg.stored_records() > 200
    });
    assert_eq!(http_get(admin, "/readyz").unwrap().0, 200);

    agg.proc.kill();
    let down = Instant::now();
    let (mut polls, mut most_lag, mut seen_down) = (0u32, 0.0f64, false);
    while down.elapsed() < OUTAGE {
        let (status, body) = http_get(admin, "/readyz").expect("/readyz answers");
        assert_eq!(
            status,
            200,
            "/readyz {:?} into the outage: {body}",
            down.elapsed()
        );
        polls += 1;
        most_lag = most_lag.max(agent_metric_sum(&cfg, "fjord_agent_lag_bytes").unwrap_or(0.0));
        seen_down |= agent_metric(&cfg, "fjord_agent_aggregator_up") == Some(0.0);
        // Poll through the whole outage (its length is the point, not a wait for a state).
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(polls >= 20, "only {polls} polls of /readyz");
    assert!(seen_down, "fjord_agent_aggregator_up never showed 0");
    assert!(
        most_lag > 0.0,
        "fjord_agent_lag_bytes showed no backlog during the outage"
    );

    let agg = Aggregator::start_on(dir.path(), port, &EEA);
    let written = writer.stop();
    agg.expect_exactly_once(&(0..written).collect(), Duration::from_secs(90));
    wait_for(
        "fjord_agent_aggregator_up back to 1",
        Duration::from_secs(10),
        || agent_metric(&cfg, "fjord_agent_aggregator_up") == Some(1.0),
    );
}

/// SIGTERM while the aggregator has never been reachable: the agent is ready all the same
/// (readiness is its own health), exits 0 within its grace period whether or not it has data
/// waiting, and the waiting data flows after a restart.
#[test]
fn sigterm_while_the_aggregator_is_unreachable_exits_promptly() {
    let dir = test_dir();
    let port = free_port();
    let cfg = agent_config(
        dir.path(),
        &format!("http://127.0.0.1:{port}"),
        "shutdown_grace = \"2s\"",
    );
    let log = dir.path().join("logs/app.log");
    std::fs::create_dir_all(log.parent().unwrap()).unwrap();
    for with_data in [false, true] {
        if with_data {
            append_numbered(&log, 0..500);
        }
        let agent = start_agent(dir.path(), &cfg);
        wait_for(
            "the agent to be ready, the aggregator down",
            Duration::from_secs(30),
            || {
                matches!(http_get(admin_addr(&cfg), "/readyz"), Ok((200, _)))
                    && agent_metric(&cfg, "fjord_agent_aggregator_up") == Some(0.0)
            },
        );
        if with_data {
            wait_for("the lines read", Duration::from_secs(30), || {
                agent_metric(&cfg, "fjord_agent_read_lines_total").unwrap_or(0.0) >= 500.0
            });
        }
        let t = std::time::Instant::now();
        assert_eq!(agent.terminate(), Some(0), "with data waiting: {with_data}");
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "exit took {:?} (grace 2 s)",
            t.elapsed()
        );
    }
    let agg = Aggregator::start_on(dir.path(), port, &EEA);
    let _agent = start_agent(dir.path(), &cfg);
    agg.expect_exactly_once(&(0..500).collect(), Duration::from_secs(60));
}

#[test]
fn aggregator_killed_mid_stream_and_back_30s_later() {
    let dir = test_dir();
    let port = free_port();
    let agg = Aggregator::start_on(dir.path(), port, &EEA);
    let cfg = agent_config(dir.path(), &agg.url(), SMALL_BATCHES);
    let writer = Writer::start(&dir.path().join("logs/app.log"), 1000);
    let _agent = start_agent(dir.path(), &cfg);
    wait_for("some lines stored", Duration::from_secs(30), || {
        agg.stored_records() > 500
    });
    agg.proc.kill();
    std::thread::sleep(Duration::from_secs(30));
    let agg = Aggregator::start_on(dir.path(), port, &EEA);
    std::thread::sleep(Duration::from_secs(1));
    let written = writer.stop();
    agg.expect_exactly_once(&(0..written).collect(), Duration::from_secs(90));
}

#[test]
fn unavailable_with_retry_after_is_honoured() {
    let dir = test_dir();
    let agg = Aggregator::start(dir.path());
    let proxy = Proxy::start(agg.addr);
    proxy.inject(
        Fault::Unavailable {
            retry_after_secs: 2,
        },
        4,
    );
    let cfg = agent_config(dir.path(), &proxy.url(), SMALL_BATCHES);
    append_numbered(&dir.path().join("logs/app.log"), 0..2000);
    let _agent = start_agent(dir.path(), &cfg);
    agg.expect_exactly_once(&(0..2000).collect(), Duration::from_secs(60));
    // Each batch that was told to come back in 2 s came back no sooner.
    let pushes = proxy.pushes();
    let mut refused = 0;
    for (i, (t, id, fault)) in pushes.iter().enumerate() {
        if fault.is_none() {
            continue;
        }
        refused += 1;
        let next = pushes[i + 1..]
            .iter()
            .find(|(_, other, _)| other == id)
            .expect("the refused batch is sent again");
        let waited = next.0.duration_since(*t);
        assert!(
            waited >= Duration::from_millis(1900),
            "batch {id} came back after {waited:?}, before Retry-After"
        );
    }
    assert_eq!(refused, 4);
    let retried = agent_metric(&cfg, "fjord_agent_batches_retried_total").unwrap();
    assert!(retried >= 4.0, "retried {retried}");
}

/// While the first batch waits out a long Retry-After, the batches behind it may be sent,
/// but their acknowledgements cannot be committed before it: the agent holds at most
/// `2 × max_in_flight` batches between its queue and their commit, instead of sending (and
/// keeping in memory) everything the tailer reads meanwhile.
#[test]
fn a_batch_held_back_does_not_let_later_batches_pile_up() {
    let dir = test_dir();
    let agg = Aggregator::start(dir.path());
    let proxy = Proxy::start(agg.addr);
    proxy.inject(
        Fault::Unavailable {
            retry_after_secs: 5,
        },
        1,
    );
    let cfg = agent_config(
        dir.path(),
        &proxy.url(),
        &format!("{SMALL_BATCHES}\nmax_in_flight = 2\nqueue_batches = 2"),
    );
    append_numbered(&dir.path().join("logs/app.log"), 0..4000);
    let _agent = start_agent(dir.path(), &cfg);
    agg.expect_exactly_once(&(0..4000).collect(), Duration::from_secs(60));
    let pushes = proxy.pushes();
    let (i, (refused_at, head, _)) = pushes
        .iter()
        .enumerate()
        .find(|(_, (_, _, fault))| fault.is_some())
        .expect("the first push was refused");
    let retried = pushes[i + 1..]
        .iter()
        .position(|(_, id, _)| id == head)
        .expect("the refused batch is sent again");
    let meanwhile: std::collections::BTreeSet<&String> = pushes[i + 1..i + 1 + retried]
        .iter()
        .map(|(_, id, _)| id)
        .collect();
    let waited = pushes[i + 1 + retried].0.duration_since(*refused_at);
    assert!(
        waited >= Duration::from_millis(4900),
        "came back after {waited:?}"
    );
    // 20 batches of 200 lines: all of them would go out in those 5 s without the bound.
    // With it, 2 × max_in_flight = 4 batches are held: the refused one and 3 others. One
    // more is possible when the refused push was not the file's oldest: the two first sends
    // run at once, and if the second reaches the aggregator first and is refused, the first
    // arrives after it, is acknowledged, commits, and frees its slot.
    assert!(
        meanwhile.len() <= 4,
        "{} later batches were sent while the first waited",
        meanwhile.len()
    );
}

/// An outage the agent backs off from by itself (500s, no `Retry-After`): when the
/// aggregator answers again, the first acknowledgement wakes the other sends asleep in
/// their backoff, which retry at once instead of each waiting out its own jittered delay
/// (by then up to 25.6 s) while the batches behind them cannot commit.
#[test]
fn the_first_acknowledgement_after_an_outage_wakes_the_other_retries() {
    let dir = test_dir();
    let agg = Aggregator::start(dir.path());
    let proxy = Proxy::start(agg.addr);
    proxy.fail_all(true);
    let cfg = agent_config(
        dir.path(),
        &proxy.url(),
        &format!("{SMALL_BATCHES}\nmax_in_flight = 4"),
    );
    append_numbered(&dir.path().join("logs/app.log"), 0..4000);
    let _agent = start_agent(dir.path(), &cfg);
    // All four sends refused nine times: the backoff after a batch's ninth refusal is drawn
    // from up to 25.6 s (0.1 s doubling), so without the wake-up the other three sends
    // would rarely all be back within 2 s.
    wait_for(
        "four batches refused nine times each",
        Duration::from_secs(90),
        || {
            let mut refusals = std::collections::BTreeMap::<String, usize>::new();
            for (_, id, _) in proxy.pushes() {
                *refusals.entry(id).or_default() += 1;
            }
            refusals.values().filter(|&&n| n >= 9).count() >= 4
        },
    );
    proxy.fail_all(false);
    agg.expect_exactly_once(&(0..4000).collect(), Duration::from_secs(90));
    let pushes = proxy.pushes();
    let refused: std::collections::BTreeSet<&String> = pushes
        .iter()
        .filter(|(_, _, fault)| *fault == Some(Fault::ServerError))
        .map(|(_, id, _)| id)
        .collect();
    assert_eq!(refused.len(), 4, "all four sends were refused: {refused:?}");
    let first_ok = pushes
        .iter()
        .find(|(_, _, fault)| fault.is_none())
        .expect("a push got through")
        .0;
    for id in refused {
        let back = pushes
            .iter()
            .find(|(_, i, fault)| i == id && fault.is_none())
            .expect("each refused batch is sent again")
            .0;
        let after = back.saturating_duration_since(first_ok);
        assert!(
            after < Duration::from_secs(2),
            "a refused batch went out again {after:?} after the first acknowledgement"
        );
    }
}

#[test]
fn slow_answers_and_dropped_connections() {
    let dir = test_dir();
    let agg = Aggregator::start(dir.path());
    let proxy = Proxy::start(agg.addr);
    proxy.inject(Fault::Slow(Duration::from_secs(3)), 3);
    proxy.inject(Fault::DropMidRequest, 3);
    proxy.inject(Fault::DropAfterForward, 3);
    let cfg = agent_config(dir.path(), &proxy.url(), SMALL_BATCHES);
    append_numbered(&dir.path().join("logs/app.log"), 0..4000);
    let _agent = start_agent(dir.path(), &cfg);
    agg.expect_exactly_once(&(0..4000).collect(), Duration::from_secs(90));
    assert_eq!(proxy.pending_faults(), 0, "every fault was exercised");
    // A batch whose acknowledgement was lost is sent again and answered `duplicate` (a
    // retry may meet the next lost acknowledgement first, so not necessarily three). The
    // lines were stored by the first attempt, so the aggregator can hold all of them
    // before the retry's backoff has passed: wait for the agent's count, do not read it once.
    wait_for(
        "a lost acknowledgement's retry answered `duplicate`",
        Duration::from_secs(60),
        || agent_metric(&cfg, "fjord_agent_batches_duplicate_total").is_some_and(|d| d >= 1.0),
    );
}

#[test]
fn rejected_batch_is_dead_lettered_and_the_rest_flows() {
    let dir = test_dir();
    let agg = Aggregator::start(dir.path());
    let proxy = Proxy::start(agg.addr);
    proxy.inject(Fault::BadRequest, 1);
    let cfg = agent_config(dir.path(), &proxy.url(), SMALL_BATCHES);
    // One batch worth of lines first, so the rejected batch is exactly 0..200.
    let log = dir.path().join("logs/app.log");
    append_numbered(&log, 0..200);
    let _agent = start_agent(dir.path(), &cfg);
    wait_for("the rejection", Duration::from_secs(30), || {
        proxy.pending_faults() == 0
    });
    append_numbered(&log, 200..1000);
    agg.expect_exactly_once(&(200..1000).collect(), Duration::from_secs(60));
    let dead: Vec<_> = std::fs::read_dir(dir.path().join("state/dead-letter"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(dead.len(), 1, "one dead-letter file");
    assert_eq!(
        agent_metric(&cfg, "fjord_agent_batches_dead_lettered_total"),
        Some(1.0)
    );
    // The refusal reaches the aggregator in the agent's shipped ledger.
    wait_for(
        "the dead letter in the shipped ledger",
        Duration::from_secs(30),
        || {
            let a = agg.audit_agents();
            a["agents"][0]["dead_letter_batches"] == 1 && a["agents"][0]["delivered_records"] == 800
        },
    );
}
