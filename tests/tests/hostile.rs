//! Hostile input against the real aggregator binary on 127.0.0.1, from callers holding valid,
//! low-privilege tokens: each test shows that one limit holds (docs/security.md, "Aggregator
//! limits"). Loops are bounded in count and in time.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use fjord_aggregator::server::auth::hash_token;
use fjord_e2e::{http_request, percent_encode as enc, test_dir, Aggregator};

const PAY_INGEST: &str = "tok-payments-ingest";
const SEARCH_INGEST: &str = "tok-search-ingest";
const PAY_READ: &str = "tok-payments-read";
const ADMIN: &str = "tok-admin";

/// The `[[token]]` entries of every test: ingest and read for `payments`, ingest for
/// `search`, and a team-less admin.
fn tokens() -> String {
    [
        ("payments-ingest", PAY_INGEST, Some("payments"), "ingest"),
        ("search-ingest", SEARCH_INGEST, Some("search"), "ingest"),
        ("payments-read", PAY_READ, Some("payments"), "read"),
        ("root", ADMIN, None, "admin"),
    ]
    .iter()
    .map(|(name, secret, team, role)| {
        let team = team.map_or(String::new(), |t| format!("team = \"{t}\"\n"));
        format!(
            "[[token]]\nname = \"{name}\"\nsha256 = \"{}\"\n{team}role = \"{role}\"\n",
            hash_token(secret)
        )
    })
    .collect()
}

/// Starts an aggregator with the test tokens; `config` holds top-level keys and sections that
/// go before them.
fn start(dir: &std::path::Path, config: &str) -> Aggregator {
    Aggregator::start_with_config(dir, &format!("{config}\n{}", tokens()))
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos() as i64
}

/// A push body of one stream with `lines`, stamped now.
fn push_body(labels: serde_json::Value, lines: &[&str]) -> String {
    let now = now_ns();
    let values: Vec<serde_json::Value> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| serde_json::json!([(now + i as i64).to_string(), l]))
        .collect();
    serde_json::json!({"streams": [{"stream": labels, "values": values}]}).to_string()
}

fn push(
    addr: SocketAddr,
    token: &str,
    batch_id: Option<&str>,
    body: &str,
) -> (u16, serde_json::Value) {
    let auth = format!("Bearer {token}");
    let mut headers = vec![
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/json"),
    ];
    if let Some(id) = batch_id {
        headers.push(("Fjord-Batch-Id", id));
    }
    let (status, text) = http_request(addr, "POST", "/loki/api/v1/push", &headers, body.as_bytes())
        .expect("push request");
    (status, serde_json::from_str(&text).unwrap_or_default())
}

/// `GET path` with `token`; returns (status, parsed JSON body, time taken).
fn get(addr: SocketAddr, token: &str, path: &str) -> (u16, serde_json::Value, Duration) {
    let auth = format!("Bearer {token}");
    let t = Instant::now();
    let (status, text) =
        http_request(addr, "GET", path, &[("Authorization", auth.as_str())], b"").expect("get");
    (
        status,
        serde_json::from_str(&text).unwrap_or_default(),
        t.elapsed(),
    )
}

/// The lines a `query_range` over the last hour returns.
fn query_lines(addr: SocketAddr, token: &str, logql: &str) -> Vec<String> {
    let (status, v, _) = get(
        addr,
        token,
        &format!("/loki/api/v1/query_range?query={}&limit=1000", enc(logql)),
    );
    assert_eq!(status, 200, "{v}");
    let mut out: Vec<String> = v["data"]["result"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["values"].as_array().cloned().unwrap_or_default())
        .filter_map(|e| e[1].as_str().map(str::to_owned))
        .collect();
    out.sort();
    out
}

#[test]
fn a_batch_id_reused_with_other_lines_is_refused_and_ids_are_scoped_by_team() {
    let dir = test_dir();
    let agg = start(dir.path(), "");
    let labels = serde_json::json!({"pod": "p1"});
    let first = push_body(labels.clone(), &["order 1 paid"]);
    let other = push_body(labels.clone(), &["order 2 paid"]);

    assert_eq!(push(agg.addr, PAY_INGEST, Some("b-1"), &first).0, 204);
    // The same id with other lines: refused, with a reason, and not stored.
    let (status, body) = push(agg.addr, PAY_INGEST, Some("b-1"), &other);
    assert_eq!(status, 409, "{body}");
    let reason = body["error"].as_str().unwrap_or_default();
    assert!(reason.contains("different lines"), "{body}");
    assert!(
        !reason.contains("order 2"),
        "no log content in errors: {body}"
    );
    // A true retry of the first is still a duplicate.
    let (status, body) = push(agg.addr, PAY_INGEST, Some("b-1"), &first);
    assert_eq!((status, body["status"].as_str()), (200, Some("duplicate")));
    // Another team's batch with the same id is its own batch.
    assert_eq!(push(agg.addr, SEARCH_INGEST, Some("b-1"), &other).0, 204);

    assert_eq!(
        query_lines(agg.addr, ADMIN, r#"{team="payments"}"#),
        vec!["order 1 paid"]
    );
    assert_eq!(
        query_lines(agg.addr, ADMIN, r#"{team="search"}"#),
        vec!["order 2 paid"]
    );
    let (_, stats, _) = get(agg.addr, ADMIN, "/fjord/v1/stats");
    assert_eq!(stats["counters"]["batch_id_conflicts"], 1, "{stats}");
    // Counters span teams: a read token does not see them.
    let (_, stats, _) = get(agg.addr, PAY_READ, "/fjord/v1/stats");
    assert!(stats.get("counters").is_none(), "{stats}");
}

#[test]
fn many_regex_filters_are_refused_before_compiling() {
    let dir = test_dir();
    let agg = start(dir.path(), "");
    // The reported attack: 1,000 filters (12 KB), and the same kind within the text limit.
    let huge = format!(r#"{{team="payments"}}{}"#, r" |~ `\w{20}`".repeat(1000));
    let many = format!(r#"{{team="payments"}}{}"#, r" |~ `\w{20}`".repeat(40));
    for q in [&huge, &many] {
        let (status, body, took) = get(
            agg.addr,
            PAY_READ,
            &format!("/loki/api/v1/query_range?query={}", enc(q)),
        );
        assert_eq!(status, 400, "{body}");
        assert!(took < Duration::from_secs(2), "refused after {took:?}");
        // The server stays responsive meanwhile.
        let t = Instant::now();
        assert_eq!(fjord_e2e::http_get(agg.addr, "/ready").unwrap().0, 200);
        assert!(t.elapsed() < Duration::from_secs(1));
    }
    // Within the limits, regexes still work.
    let ok = format!(r#"{{team="payments"}}{}"#, r" |~ `\w{20}`".repeat(4));
    let (status, body, _) = get(
        agg.addr,
        PAY_READ,
        &format!("/loki/api/v1/query_range?query={}", enc(&ok)),
    );
    assert_eq!(status, 200, "{body}");
    // `/series` takes a bounded number of selectors.
    let matches: String = (0..20)
        .map(|i| format!("&match[]={}", enc(&format!(r#"{{pod="p{i}"}}"#))))
        .collect();
    let (status, body, _) = get(
        agg.addr,
        PAY_READ,
        &format!("/loki/api/v1/series?{matches}"),
    );
    assert_eq!(status, 400, "{body}");
}

/// Opens a push that declares `declared` bytes and sends only its headers.
fn open_slow_push(addr: SocketAddr, token: &str, declared: usize) -> std::net::TcpStream {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).unwrap();
    write!(
        s,
        "POST /loki/api/v1/push HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {declared}\r\n\r\n{{"
    )
    .unwrap();
    s
}

/// Reads what the server sends until it closes the connection or `within` passes; returns
/// the bytes read and whether it closed.
fn read_until_closed(s: &mut std::net::TcpStream, within: Duration) -> (Vec<u8>, bool) {
    use std::io::Read;
    let deadline = Instant::now() + within;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
        match s.read(&mut buf) {
            Ok(0) => return (got, true),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return (got, true),
        }
    }
    (got, false)
}

#[test]
fn slow_push_bodies_neither_hold_ingest_slots_nor_stay_open() {
    let dir = test_dir();
    // 4 + 16 slots, as by default; the body must arrive within 2 s (plus size at 64 KiB/s).
    let agg = start(
        dir.path(),
        "ingest_concurrency = 4\ningest_queue = 16\n[listener]\nbody_read_timeout = \"2s\"\n",
    );
    let mut slow: Vec<_> = (0..20)
        .map(|_| open_slow_push(agg.addr, PAY_INGEST, 1_000_000))
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    // Another team pushes meanwhile, and is not shed.
    for i in 0..5 {
        let body = push_body(serde_json::json!({"pod": "s"}), &[&format!("search {i}")]);
        let (status, v) = push(agg.addr, SEARCH_INGEST, None, &body);
        assert_eq!(status, 204, "{v}");
    }
    // The trickling pushes are answered 408 and closed once they fall behind the rate.
    for s in &mut slow {
        let (got, closed) = read_until_closed(s, Duration::from_secs(10));
        let text = String::from_utf8_lossy(&got);
        assert!(text.starts_with("HTTP/1.1 408"), "{text}");
        assert!(closed, "the slow push's connection stays open");
    }
}

#[test]
fn slow_headers_are_closed_and_connections_are_capped() {
    use std::io::Write;
    let dir = test_dir();
    let agg = start(
        dir.path(),
        "[listener]\nmax_connections = 16\nheader_read_timeout = \"1s\"\n",
    );
    // 40 connections that never finish their headers: 16 are served, the rest wait in the
    // backlog; each is closed a second after it was accepted.
    let mut conns: Vec<_> = (0..40)
        .map(|_| {
            let mut s =
                std::net::TcpStream::connect_timeout(&agg.addr, Duration::from_secs(2)).unwrap();
            let _ = s.write_all(b"GET /ready HTTP/1.1\r\nHost: x\r\n");
            s
        })
        .collect();
    let t = Instant::now();
    for s in &mut conns {
        let (_, closed) = read_until_closed(s, Duration::from_secs(10));
        assert!(
            closed,
            "a slow-header connection stays open after {:?}",
            t.elapsed()
        );
    }
    // Three rounds of 16 at 1 s each, and some margin.
    assert!(t.elapsed() < Duration::from_secs(8), "{:?}", t.elapsed());
    let t = Instant::now();
    assert_eq!(fjord_e2e::http_get(agg.addr, "/ready").unwrap().0, 200);
    assert!(t.elapsed() < Duration::from_secs(1));
}

#[test]
fn streams_beyond_the_team_limit_are_refused_with_429() {
    let dir = test_dir();
    let agg = start(dir.path(), "max_streams_per_team = 50\n");
    let streams: Vec<serde_json::Value> = (0..50)
        .map(|i| serde_json::json!({"stream": {"pod": format!("p{i}")}, "values": [[now_ns().to_string(), "x"]]}))
        .collect();
    let body = serde_json::json!({"streams": streams}).to_string();
    assert_eq!(push(agg.addr, PAY_INGEST, None, &body).0, 204);
    // One more stream: refused whole, with the reason.
    let one_more = push_body(serde_json::json!({"pod": "p50"}), &["y"]);
    let (status, v) = push(agg.addr, PAY_INGEST, None, &one_more);
    assert_eq!(status, 429, "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap_or_default()
            .contains("max_streams_per_team"),
        "{v}"
    );
    // Known streams still take lines, and other teams are not affected.
    let known = push_body(serde_json::json!({"pod": "p7"}), &["z"]);
    assert_eq!(push(agg.addr, PAY_INGEST, None, &known).0, 204);
    assert_eq!(push(agg.addr, SEARCH_INGEST, None, &one_more).0, 204);
    assert!(query_lines(agg.addr, ADMIN, r#"{pod="p50"}"#) == vec!["y"]);
}

#[test]
fn a_query_answer_over_the_byte_limit_is_refused_with_413() {
    let dir = test_dir();
    // The smallest limit allowed: one maximal line.
    let agg = start(dir.path(), "max_query_response_bytes = 262144\n");
    let line = "x".repeat(100 * 1024);
    for i in 0..4 {
        let body = push_body(serde_json::json!({"pod": format!("p{i}")}), &[&line]);
        assert_eq!(push(agg.addr, PAY_INGEST, None, &body).0, 204);
    }
    let path = format!(
        "/loki/api/v1/query_range?query={}&limit=100",
        enc(r#"{team="payments"}"#)
    );
    let (status, v, _) = get(agg.addr, PAY_READ, &path);
    assert_eq!(status, 413, "{v}");
    assert!(
        v["error"].as_str().unwrap_or_default().contains("262144"),
        "{v}"
    );
    // Two lines fit.
    let (status, v, _) = get(agg.addr, PAY_READ, &path.replace("limit=100", "limit=2"));
    assert_eq!(status, 200, "{v}");
}

#[test]
fn push_headers_are_checked_exactly_and_never_echoed() {
    let dir = test_dir();
    let agg = start(dir.path(), "");
    let body = push_body(serde_json::json!({"pod": "p"}), &["x"]);
    let auth = format!("Bearer {PAY_INGEST}");
    let send = |headers: &[(&str, &str)]| {
        let mut h = vec![("Authorization", auth.as_str())];
        h.extend_from_slice(headers);
        http_request(agg.addr, "POST", "/loki/api/v1/push", &h, body.as_bytes()).unwrap()
    };
    assert_eq!(send(&[("Content-Type", "application/jsonx")]).0, 415);
    assert_eq!(
        send(&[("Content-Type", "application/json; charset=utf-8")]).0,
        204
    );
    let (status, text) = send(&[
        ("Content-Type", "application/json"),
        ("Fjord-Redactions", "{\"alice@example.com\":\"x\"}"),
    ]);
    assert_eq!(status, 400, "{text}");
    assert!(!text.contains("alice"), "the header is echoed: {text}");
    // A team-less (admin) push names its team in a label, which must be a team name.
    let bad_team = push_body(serde_json::json!({"team": "../etc"}), &["x"]);
    let (status, v) = push(agg.addr, ADMIN, None, &bad_team);
    assert_eq!(status, 400, "{v}");
    let good_team = push_body(serde_json::json!({"team": "billing"}), &["x"]);
    assert_eq!(push(agg.addr, ADMIN, None, &good_team).0, 204);
}

#[test]
fn an_erasure_must_select_lines_not_only_exclude_them() {
    let dir = test_dir();
    let agg = start(dir.path(), "");
    let body = push_body(serde_json::json!({"pod": "p"}), &["keep me", "and me"]);
    assert_eq!(push(agg.addr, PAY_INGEST, None, &body).0, 204);
    let auth = format!("Bearer {ADMIN}");
    for q in [
        r#"{team="payments"} != "zzzz""#,
        r#"{team="payments"} |= """#,
        r#"{team="payments"} |~ ".*""#,
    ] {
        let req = serde_json::json!({"query": q}).to_string();
        let (status, text) = http_request(
            agg.addr,
            "POST",
            "/fjord/v1/erase",
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
            ],
            req.as_bytes(),
        )
        .unwrap();
        assert_eq!(status, 400, "{q}: {text}");
    }
    assert_eq!(
        query_lines(agg.addr, ADMIN, r#"{team="payments"}"#).len(),
        2
    );
}

/// Sends a WebSocket upgrade for a tail; returns the socket and the status line's code.
fn open_tail(addr: SocketAddr, token: &str) -> (std::net::TcpStream, u16) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).unwrap();
    let q = enc(r#"{team="payments"}"#);
    write!(
        s,
        "GET /loki/api/v1/tail?query={q} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    )
    .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && s.read(&mut b).unwrap_or(0) == 1 {
        head.push(b[0]);
    }
    let code = String::from_utf8_lossy(&head)
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (s, code)
}

#[test]
fn tails_are_limited_per_token_and_closed_when_the_client_goes_quiet() {
    let dir = test_dir();
    let agg = start(
        dir.path(),
        "max_tails_per_token = 2\ntail_idle_timeout = \"1s\"\n",
    );
    let (mut a, code_a) = open_tail(agg.addr, PAY_READ);
    let (mut b, code_b) = open_tail(agg.addr, PAY_READ);
    assert_eq!((code_a, code_b), (101, 101));
    assert_eq!(open_tail(agg.addr, PAY_READ).1, 429);
    // Another token still gets its own.
    let (mut c, code_c) = open_tail(agg.addr, ADMIN);
    assert_eq!(code_c, 101);
    // None of them answers pings: each is closed (a close frame, then EOF).
    for s in [&mut a, &mut b, &mut c] {
        let (got, closed) = read_until_closed(s, Duration::from_secs(10));
        assert!(closed, "a quiet tail stays open");
        assert!(got.contains(&0x88), "no close frame before the end");
    }
    // Their slots are free again.
    assert_eq!(open_tail(agg.addr, PAY_READ).1, 101);
}

#[test]
fn an_oversized_websocket_frame_closes_the_tail() {
    use std::io::Write;
    let dir = test_dir();
    let agg = start(dir.path(), "");
    let (mut s, code) = open_tail(agg.addr, PAY_READ);
    assert_eq!(code, 101);
    // A masked binary frame header declaring 1 MiB (64-bit length), and none of the payload.
    let mut frame = vec![0x82, 0x80 | 127];
    frame.extend_from_slice(&(1u64 << 20).to_be_bytes());
    frame.extend_from_slice(&[1, 2, 3, 4]);
    s.write_all(&frame).unwrap();
    let (_, closed) = read_until_closed(&mut s, Duration::from_secs(5));
    assert!(
        closed,
        "the server waits for a 1 MiB frame from a tail client"
    );
}

#[test]
fn the_access_log_keeps_the_query_of_requests_refused_by_role() {
    let dir = test_dir();
    let agg = start(dir.path(), "");
    let q = r#"{team="payments"} |= "who-asked""#;
    let (status, _, _) = get(
        agg.addr,
        PAY_INGEST,
        &format!("/loki/api/v1/query_range?query={}", enc(q)),
    );
    assert_eq!(status, 403);
    let db = agg.data.join("fjord.db");
    fjord_e2e::wait_for("the access-log row", Duration::from_secs(10), || {
        let Ok(conn) = rusqlite::Connection::open(&db) else {
            return false;
        };
        conn.query_row(
            "SELECT query FROM access_log WHERE token = 'payments-ingest' AND status = 403",
            [],
            |r| r.get::<_, Option<String>>(0),
        )
        .ok()
        .flatten()
        .is_some_and(|t| t == q)
    });
}

#[test]
fn cli_query_does_not_print_terminal_escape_sequences() {
    let dir = test_dir();
    let agg = start(dir.path(), "");
    let body = push_body(
        serde_json::json!({"pod": "p"}),
        &["before \u{1b}]0;owned\u{7} \u{1b}[2J after"],
    );
    assert_eq!(push(agg.addr, PAY_INGEST, None, &body).0, 204);
    let token = dir.path().join("read.token");
    std::fs::write(&token, PAY_READ).unwrap();
    let out = agg.cli(&[
        "query",
        r#"{team="payments"}"#,
        "--token-file",
        &token.display().to_string(),
        "--output",
        "text",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("before"), "{stdout}");
    assert!(
        !out.stdout.iter().any(|&b| b == 0x1b || b == 0x07),
        "{stdout:?}"
    );
    assert!(stdout.contains(r"\u{1b}[2J"), "{stdout}");
}
