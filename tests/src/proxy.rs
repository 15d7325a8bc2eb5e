//! A fault-injecting HTTP/1.1 proxy that sits between the real agent and the real
//! aggregator on 127.0.0.1. It frames requests and responses by `Content-Length` (what both
//! of our binaries send) and, for push requests, can answer 503 with `Retry-After`, answer
//! 400, answer 500 without `Retry-After` (an outage the agent backs off from by itself),
//! delay the answer, cut the connection halfway through the request, or forward the
//! request and then cut the connection before the answer (a lost acknowledgement).
//! Everything else passes through unchanged.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What to do to the next push requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answer `503` with `Retry-After: secs` without forwarding.
    Unavailable { retry_after_secs: u64 },
    /// Answer `400` with a JSON reason without forwarding.
    BadRequest,
    /// Answer `500` without `Retry-After` and without forwarding (see [`Proxy::fail_all`]).
    ServerError,
    /// Forward, then hold the answer back this long.
    Slow(Duration),
    /// Read half of the request, then close the connection.
    DropMidRequest,
    /// Forward (the aggregator stores the batch), then close without answering. Applied to
    /// the next push the aggregator answers with 2xx.
    DropAfterForward,
}

#[derive(Default)]
struct Plan {
    /// Faults applied to the next push requests, one each, in order.
    queue: std::collections::VecDeque<Fault>,
    /// Every push is answered [`Fault::ServerError`] while set (after the queue is empty).
    failing: bool,
    /// Each push request: arrival, batch id, and the fault applied to it (if any).
    seen: Vec<(Instant, String, Option<Fault>)>,
}

/// A running proxy; stops accepting when dropped.
pub struct Proxy {
    pub addr: SocketAddr,
    plan: Arc<Mutex<Plan>>,
    stop: Arc<AtomicBool>,
}

struct Message {
    head: Vec<u8>,
    body: Vec<u8>,
}

/// Reads a message head and returns it with its `Content-Length`.
fn read_head(r: &mut BufReader<TcpStream>) -> io::Result<Option<(Vec<u8>, usize)>> {
    let mut head = Vec::new();
    loop {
        let mut line = Vec::new();
        if r.read_until(b'\n', &mut line)? == 0 {
            return if head.is_empty() {
                Ok(None)
            } else {
                Err(io::ErrorKind::UnexpectedEof.into())
            };
        }
        head.extend_from_slice(&line);
        if line == b"\r\n" {
            break;
        }
    }
    let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let len = text
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    Ok(Some((head, len)))
}

fn read_message(r: &mut BufReader<TcpStream>) -> io::Result<Option<Message>> {
    let Some((head, len)) = read_head(r)? else {
        return Ok(None);
    };
    let mut body = vec![0; len];
    r.read_exact(&mut body)?;
    Ok(Some(Message { head, body }))
}

impl Proxy {
    /// Starts a proxy on a free port forwarding to `upstream`.
    pub fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        listener.set_nonblocking(true).expect("nonblocking");
        let plan = Arc::new(Mutex::new(Plan::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s) = (plan.clone(), stop.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let p = p.clone();
                        std::thread::spawn(move || {
                            let _ = serve(conn, upstream, &p);
                        });
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(5))
                    }
                    Err(_) => break,
                }
            }
        });
        Proxy { addr, plan, stop }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Applies `fault` to each of the next `n` push requests.
    pub fn inject(&self, fault: Fault, n: usize) {
        let mut plan = self.plan.lock().expect("plan");
        plan.queue.extend(std::iter::repeat_n(fault, n));
    }

    /// Answers every push request `500` from now on (`true`), or forwards them again.
    pub fn fail_all(&self, failing: bool) {
        self.plan.lock().expect("plan").failing = failing;
    }

    /// Faults still waiting for a push request.
    pub fn pending_faults(&self) -> usize {
        self.plan.lock().expect("plan").queue.len()
    }

    /// Every push request so far: (arrival, batch id, fault applied).
    pub fn pushes(&self) -> Vec<(Instant, String, Option<Fault>)> {
        self.plan.lock().expect("plan").seen.clone()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn serve(client: TcpStream, upstream: SocketAddr, plan: &Mutex<Plan>) -> io::Result<()> {
    client.set_nonblocking(false)?;
    let mut out = client.try_clone()?;
    let mut reader = BufReader::new(client);
    let mut up: Option<(TcpStream, BufReader<TcpStream>)> = None;
    while let Some((head, len)) = read_head(&mut reader)? {
        let is_push = head.starts_with(b"POST /loki/api/v1/push");
        let fault = if is_push {
            let mut p = plan.lock().expect("plan");
            let f = p
                .queue
                .pop_front()
                .or(p.failing.then_some(Fault::ServerError));
            let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
            let id = text
                .lines()
                .find_map(|l| l.strip_prefix("fjord-batch-id:"))
                .map(|v| v.trim().to_owned())
                .unwrap_or_default();
            p.seen.push((Instant::now(), id, f));
            f
        } else {
            None
        };
        if fault == Some(Fault::DropMidRequest) {
            // Half the body arrives, then the connection dies.
            let mut half = vec![0; len / 2];
            reader.read_exact(&mut half)?;
            out.shutdown(Shutdown::Both)?;
            return Ok(());
        }
        let mut body = vec![0; len];
        reader.read_exact(&mut body)?;
        let req = Message { head, body };
        match fault {
            Some(Fault::Unavailable { retry_after_secs }) => {
                let body = br#"{"error":"shedding load"}"#;
                write!(
                    out,
                    "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: {retry_after_secs}\r\ncontent-length: {}\r\n\r\n",
                    body.len()
                )?;
                out.write_all(body)?;
                continue;
            }
            Some(Fault::ServerError) => {
                let body = br#"{"error":"internal error (fault proxy)"}"#;
                write!(
                    out,
                    "HTTP/1.1 500 Internal Server Error\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                    body.len()
                )?;
                out.write_all(body)?;
                continue;
            }
            Some(Fault::BadRequest) => {
                let body = br#"{"error":"rejected by the fault proxy"}"#;
                write!(
                    out,
                    "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                    body.len()
                )?;
                out.write_all(body)?;
                continue;
            }
            _ => {}
        }
        if up.is_none() {
            let s = TcpStream::connect(upstream)?;
            let r = BufReader::new(s.try_clone()?);
            up = Some((s, r));
        }
        let Some((up_w, up_r)) = up.as_mut() else {
            return Ok(());
        };
        up_w.write_all(&req.head)?;
        up_w.write_all(&req.body)?;
        let Some(resp) = read_message(up_r)? else {
            return Ok(());
        };
        match fault {
            // Only a stored batch's answer is lost: an aggregator busy with other tests may
            // answer 429 (nothing stored), and dropping that would test nothing. The fault
            // then waits for the next push.
            Some(Fault::DropAfterForward) if !resp.head.starts_with(b"HTTP/1.1 2") => {
                plan.lock()
                    .expect("plan")
                    .queue
                    .push_front(Fault::DropAfterForward);
            }
            Some(Fault::DropAfterForward) => {
                out.shutdown(Shutdown::Both)?;
                return Ok(());
            }
            Some(Fault::Slow(d)) => std::thread::sleep(d),
            _ => {}
        }
        out.write_all(&resp.head)?;
        out.write_all(&resp.body)?;
    }
    Ok(())
}
