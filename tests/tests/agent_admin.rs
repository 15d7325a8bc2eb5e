//! The agent's admin listener under hostile clients on 127.0.0.1: slow-header connections
//! are closed after the header-read timeout, connections beyond the cap wait in the
//! backlog instead of costing descriptors, and `/readyz` keeps answering.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use fjord_e2e::{admin_addr, agent_config, http_get, start_agent, test_dir, wait_for, Aggregator};

#[test]
fn slow_header_connections_are_closed_and_readyz_keeps_answering() {
    let dir = test_dir();
    let agg = Aggregator::start(dir.path());
    let cfg = agent_config(dir.path(), &agg.url(), "");
    let _agent = start_agent(dir.path(), &cfg);
    let addr = admin_addr(&cfg);
    wait_for("the agent to be ready", Duration::from_secs(30), || {
        http_get(addr, "/readyz").is_ok_and(|(s, _)| s == 200)
    });
    // 100 clients that start a request and never finish its headers.
    let mut slow: Vec<TcpStream> = (0..100)
        .filter_map(|_| TcpStream::connect(addr).ok())
        .collect();
    assert_eq!(slow.len(), 100);
    for s in &mut slow {
        let _ = s.write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\n");
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
    }
    // /readyz still answers while they hang (once the first slow ones are cut off).
    let started = Instant::now();
    wait_for(
        "/readyz to answer past the slow clients",
        Duration::from_secs(30),
        || http_get(addr, "/readyz").is_ok_and(|(s, _)| s == 200),
    );
    eprintln!("/readyz answered after {:?}", started.elapsed());
    // Every slow connection is closed by the agent: a read sees the end (or a reset).
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut open = slow.len();
    while open > 0 && Instant::now() < deadline {
        open = 0;
        for s in &mut slow {
            let mut b = [0u8; 256];
            match s.read(&mut b) {
                Ok(0) => {}
                Ok(_) => {}
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut =>
                {
                    open += 1
                }
                Err(_) => {}
            }
        }
    }
    assert_eq!(open, 0, "slow-header connections still open after 60 s");
}
