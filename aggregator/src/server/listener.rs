//! The accept loop: serves the router over HTTP/1.1 with the limits `axum::serve` does not
//! give, so that slow or idle clients cannot hold the server's sockets and file descriptors.
//!
//! Invariants: at most `max_connections` connections are open at once (a permit is taken
//! before `accept`, so further clients wait in the kernel's backlog instead of costing a file
//! descriptor each); a connection must send a request's headers within `header_read_timeout`
//! (hyper's timer starts when the connection waits for a request, so an idle keep-alive
//! connection is closed after the same time); a peer that stops reading what the server
//! writes (a response or a live tail) is dropped after `idle_timeout` without progress. On
//! shutdown the loop stops accepting, asks every connection to finish its request and close,
//! and returns when all have.
//!
//! With TLS, the handshake runs in the connection's own task (a slow client never holds up
//! `accept`), under the same `header_read_timeout` and with the same permit, so handshaking
//! clients count against `max_connections` like any other. A connection whose first byte is
//! not a TLS handshake record is answered a plain-text 400 that says the port speaks TLS,
//! and closed: a client that forgot `https://` gets a reason instead of a hang or garbage.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Sleep;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::tls::TLS_HANDSHAKE_RECORD;
use super::Counters;
use crate::config::ListenerLimits;

/// The answer to plain HTTP on the TLS port. `Connection: close`, because nothing else will
/// be read from that connection.
const PLAIN_HTTP_REFUSAL: &[u8] = b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: 63\r\n\r\nthis port speaks TLS: use https:// (or wss://) to reach fjord.\n";

/// Most bytes of a plain-HTTP request read (and dropped) after the refusal, and the most time
/// spent on it, before the connection is closed.
const PLAIN_HTTP_DRAIN_BYTES: usize = 64 * 1024;
const PLAIN_HTTP_DRAIN_TIME: Duration = Duration::from_secs(1);

/// What the loop needs to serve TLS.
pub struct TlsAccept {
    pub acceptor: tokio_rustls::TlsAcceptor,
    /// Refused handshakes and plain-HTTP connections are counted here.
    pub counters: Arc<Counters>,
}

/// Wait after a failed `accept` (e.g. the process ran out of file descriptors) before the
/// next, so the loop does not spin while the condition lasts.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(100);

/// Serves `app` on `listener` with `limits` (over TLS when `tls` is given) until `shutdown`
/// is cancelled, then drains the open connections.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ListenerLimits,
    tls: Option<TlsAccept>,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let tls = tls.map(Arc::new);
    // One permit per open connection, taken before accept.
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let connections = TaskTracker::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    loop {
        let permit = tokio::select! {
            () = shutdown.cancelled() => break,
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break, // never closed
            },
        };
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            r = listener.accept() => match r {
                Ok(accepted) => accepted,
                Err(err) => {
                    tracing::warn!(%err, "accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let io = IdleWrites::new(stream, limits.idle_timeout);
        let (builder, app, stop, tls) =
            (builder.clone(), app.clone(), shutdown.clone(), tls.clone());
        let handshake_timeout = limits.header_read_timeout;
        connections.spawn(async move {
            match tls {
                None => serve_connection(&builder, io, app, stop).await,
                Some(tls) => {
                    let accepted = tokio::select! {
                        () = stop.cancelled() => None,
                        r = tokio::time::timeout(handshake_timeout, handshake(io, &tls)) => match r {
                            Ok(r) => r,
                            Err(_) => {
                                tls.counters.tls_handshake_errors.fetch_add(1, Ordering::Relaxed);
                                tracing::warn!(%peer, "TLS handshake timed out");
                                None
                            }
                        },
                    };
                    if let Some(io) = accepted {
                        serve_connection(&builder, io, app, stop).await;
                    }
                }
            }
            drop(permit);
        });
    }
    drop(listener);
    connections.close();
    connections.wait().await;
    Ok(())
}

/// Serves HTTP/1.1 on one connection until it closes; on shutdown, finishes the request in
/// flight and closes.
async fn serve_connection<I>(builder: &http1::Builder, io: I, app: Router, stop: CancellationToken)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let conn = builder
        .serve_connection(TokioIo::new(io), TowerToHyperService::new(app))
        .with_upgrades();
    let mut conn = std::pin::pin!(conn);
    let res = tokio::select! {
        r = conn.as_mut() => r,
        () = stop.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(err) = res {
        tracing::debug!(%err, "connection ended with an error");
    }
}

/// The server side of a TLS handshake; `None` (counted, logged) when the peer spoke plain
/// HTTP, went away, or failed the handshake.
async fn handshake(
    io: IdleWrites,
    tls: &TlsAccept,
) -> Option<tokio_rustls::server::TlsStream<IdleWrites>> {
    let mut first = [0u8; 1];
    // Peeked, not read: the byte stays for rustls.
    match io.inner.peek(&mut first).await {
        Ok(0) | Err(_) => return None,
        Ok(_) if first[0] != TLS_HANDSHAKE_RECORD => {
            tls.counters
                .plain_http_refused
                .fetch_add(1, Ordering::Relaxed);
            tracing::debug!(peer = ?io.inner.peer_addr().ok(), "plain HTTP on the TLS port; answered 400");
            let mut io = io;
            let _ = io.write_all(PLAIN_HTTP_REFUSAL).await;
            let _ = io.shutdown().await;
            // Closing with the request still unread would send a reset, which can discard
            // the answer before the client reads it: read what it sent (bounded) first.
            let mut sink = [0u8; 4096];
            let drain = async {
                let mut left = PLAIN_HTTP_DRAIN_BYTES;
                while left > 0 {
                    match io.read(&mut sink).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => left = left.saturating_sub(n),
                    }
                }
            };
            let _ = tokio::time::timeout(PLAIN_HTTP_DRAIN_TIME, drain).await;
            return None;
        }
        Ok(_) => {}
    }
    let peer = io.inner.peer_addr().ok();
    match tls.acceptor.accept(io).await {
        Ok(s) => Some(s),
        Err(err) => {
            tls.counters
                .tls_handshake_errors
                .fetch_add(1, Ordering::Relaxed);
            tracing::warn!(peer = ?peer, %err, "TLS handshake failed");
            None
        }
    }
}

/// A socket whose writes fail with `TimedOut` when the peer has not taken a byte for
/// `idle`: a client that stops reading cannot hold a response (and its memory) for ever.
struct IdleWrites {
    inner: TcpStream,
    idle: Duration,
    /// Armed when a write finds the socket full; cleared when a write makes progress.
    stalled: Option<Pin<Box<Sleep>>>,
}

impl IdleWrites {
    fn new(inner: TcpStream, idle: Duration) -> IdleWrites {
        IdleWrites {
            inner,
            idle,
            stalled: None,
        }
    }

    /// Passes a write's result on; one that would block arms the timer, or fails once it
    /// has run out, and one that made progress clears it.
    fn after_write<T>(
        &mut self,
        cx: &mut Context<'_>,
        res: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if res.is_ready() {
            self.stalled = None;
            return res;
        }
        let idle = self.idle;
        let sleep = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the peer stopped reading",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncRead for IdleWrites {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for IdleWrites {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.after_write(cx, res)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.after_write(cx, res)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
