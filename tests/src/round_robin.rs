//! A TCP front that hands each new connection to the next live upstream in turn, as a
//! Kubernetes Service does in front of aggregator replicas: an upstream that refuses
//! connections is skipped. Bytes are copied both ways unchanged, so it carries http and
//! https alike.
//!
//! Invariants: the accept thread is joined when the front is dropped; each connection's two
//! copy threads end when either side closes (a connection outliving the front is closed by
//! its peers, not by the front).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// How long the front tries one upstream before it takes the next.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(200);
/// How often the accept loop looks for a new connection or the stop flag.
const ACCEPT_POLL: Duration = Duration::from_millis(5);
/// Bytes copied per read.
const COPY_BUF_BYTES: usize = 16 * 1024;

/// A running round-robin front on 127.0.0.1; see the module doc.
pub struct RoundRobin {
    /// Where clients connect.
    pub addr: SocketAddr,
    /// Set on drop; the accept loop checks it between polls.
    stop: Arc<AtomicBool>,
    /// The accept loop, joined on drop.
    accept: Option<JoinHandle<()>>,
}

impl RoundRobin {
    /// Listens on a free port of 127.0.0.1 and starts handing connections to `upstreams`.
    pub fn start(upstreams: Vec<SocketAddr>) -> std::io::Result<RoundRobin> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let accept = std::thread::spawn(move || {
            let mut next = 0usize;
            while !s.load(Ordering::Relaxed) {
                let Ok((client, _)) = listener.accept() else {
                    std::thread::sleep(ACCEPT_POLL);
                    continue;
                };
                let _ = client.set_nonblocking(false);
                // Forwarded as they come: Nagle's algorithm would hold a response's last
                // segment back until the previous one is acknowledged.
                let _ = client.set_nodelay(true);
                let start = next;
                next = next.wrapping_add(1);
                let upstream = (0..upstreams.len())
                    .map(|i| upstreams[(start + i) % upstreams.len()])
                    .find_map(|u| TcpStream::connect_timeout(&u, CONNECT_TIMEOUT).ok());
                let Some(server) = upstream else { continue };
                let _ = server.set_nodelay(true);
                splice(client, server);
            }
        });
        Ok(RoundRobin {
            addr,
            stop,
            accept: Some(accept),
        })
    }

    /// `http://<addr>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for RoundRobin {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

/// Copies bytes both ways until either side closes.
fn splice(client: TcpStream, server: TcpStream) {
    let pairs = [
        (client.try_clone(), server.try_clone()),
        (server.try_clone(), client.try_clone()),
    ];
    for (from, to) in pairs {
        let (Ok(mut from), Ok(mut to)) = (from, to) else {
            return;
        };
        std::thread::spawn(move || {
            let mut buf = vec![0u8; COPY_BUF_BYTES];
            loop {
                match from.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if to.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                }
            }
            let _ = to.shutdown(std::net::Shutdown::Both);
        });
    }
}
