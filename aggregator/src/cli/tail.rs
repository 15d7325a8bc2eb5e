//! `tail`: follows a query live over the server's `/loki/api/v1/tail` WebSocket and prints
//! each line as it arrives. When the connection drops it reconnects with backoff, asking for
//! the lines after the last timestamp it printed; refusals (bad query, token) end it. An
//! `https://` URL is followed over `wss://`, verified as the other commands verify it
//! (`--ca-file`, `--client-cert`); a certificate the client does not trust also ends it.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use futures_util::StreamExt;
use tokio::net::TcpStream;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{header, HeaderValue};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_util::either::Either;

use super::client::{explain, read_token, rustls_config};
use super::query::{format_labels, print_line, since_ns};
use super::TailArgs;
use crate::server::query_types::TailMessage;
use fjord_wire::clock::now_ns;

/// First reconnect delay; doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Why a session ended.
enum End {
    /// The server closed or the connection broke: reconnect.
    Retry(String),
    /// `--max-lines` reached or stdout closed.
    Done,
}

/// Runs `tail`.
pub async fn run(a: TailArgs) -> anyhow::Result<ExitCode> {
    let token = read_token(a.client.token_file.as_deref())?;
    let base = a.client.url.trim_end_matches('/');
    let (ws_base, tls) = if let Some(rest) = base.strip_prefix("http://") {
        (format!("ws://{rest}"), None)
    } else if let Some(rest) = base.strip_prefix("https://") {
        (format!("wss://{rest}"), Some(rustls_config(&a.client.tls)?))
    } else {
        bail!("--url must start with http:// or https://, e.g. http://127.0.0.1:3100");
    };
    let mut start = now_ns().saturating_sub(since_ns(&a.since, "--since")?);
    let mut printed = 0u64;
    let mut backoff = MIN_BACKOFF;
    loop {
        let mut url = reqwest::Url::parse(&format!("{ws_base}/loki/api/v1/tail"))
            .with_context(|| format!("--url {base:?} is not a URL"))?;
        url.query_pairs_mut()
            .append_pair("query", &a.query)
            .append_pair("start", &start.to_string())
            .append_pair("limit", &a.limit.to_string());
        let session = session(
            &url,
            tls.clone(),
            token.as_deref(),
            &a,
            &mut start,
            &mut printed,
        );
        let end = tokio::select! {
            r = session => r?,
            _ = tokio::signal::ctrl_c() => return Ok(ExitCode::SUCCESS),
        };
        match end {
            End::Done => return Ok(ExitCode::SUCCESS),
            End::Retry(why) => {
                eprintln!("fjord-aggregator tail: {why}; reconnecting in {backoff:?}");
            }
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            _ = tokio::signal::ctrl_c() => return Ok(ExitCode::SUCCESS),
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// The connection under the WebSocket: TCP, or TLS over TCP for `wss://`. An `Err` is a
/// TLS refusal (an untrusted or expired certificate, a client certificate the server
/// refused), which retrying does not fix; `Ok(Err)` is worth retrying.
async fn connect(
    url: &reqwest::Url,
    tls: Option<Arc<rustls::ClientConfig>>,
) -> anyhow::Result<Result<Either<TcpStream, tokio_rustls::client::TlsStream<TcpStream>>, String>> {
    let host = url.host_str().unwrap_or_default().to_owned();
    let port = url.port_or_known_default().unwrap_or(80);
    let tcp = match TcpStream::connect((host.trim_matches(['[', ']']), port)).await {
        Ok(t) => t,
        Err(e) => {
            return Ok(Err(format!(
                "cannot reach the aggregator ({e}); is it running?"
            )))
        }
    };
    let _ = tcp.set_nodelay(true);
    let Some(tls) = tls else {
        return Ok(Ok(Either::Left(tcp)));
    };
    let name = ServerName::try_from(host.trim_matches(['[', ']']).to_owned())
        .with_context(|| format!("{host:?} is not a host name or IP address"))?;
    match tokio_rustls::TlsConnector::from(tls).connect(name, tcp).await {
        Ok(s) => Ok(Ok(Either::Right(s))),
        // rustls reports its protocol and certificate errors as InvalidData.
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => bail!(
            "TLS with the aggregator at {host}:{port} failed: {e}; a server certificate from a private CA needs --ca-file, a server that asks for client certificates needs --client-cert/--client-key"
        ),
        Err(e) => Ok(Err(format!("the TLS handshake was cut off ({e})"))),
    }
}

async fn session(
    url: &reqwest::Url,
    tls: Option<Arc<rustls::ClientConfig>>,
    token: Option<&str>,
    a: &TailArgs,
    start: &mut i64,
    printed: &mut u64,
) -> anyhow::Result<End> {
    let mut req = url
        .as_str()
        .into_client_request()
        .context("building the tail request")?;
    if let Some(t) = token {
        let v = HeaderValue::from_str(&format!("Bearer {t}"))
            .context("the token contains characters not allowed in a header")?;
        req.headers_mut().insert(header::AUTHORIZATION, v);
    }
    let stream = match connect(url, tls).await? {
        Ok(s) => s,
        Err(why) => return Ok(End::Retry(why)),
    };
    let (mut ws, _) = match tokio_tungstenite::client_async(req, stream).await {
        Ok(c) => c,
        Err(WsError::Http(resp)) => {
            let status = resp.status().as_u16();
            let body = resp.body().clone().unwrap_or_default();
            let msg = explain(status, &body, token.is_some());
            if matches!(status, 429 | 502 | 503 | 504) {
                return Ok(End::Retry(msg));
            }
            bail!("{msg}");
        }
        Err(e) => {
            return Ok(End::Retry(format!(
                "cannot reach the aggregator ({e}); is it running?"
            )))
        }
    };
    let stdout = std::io::stdout();
    while let Some(msg) = ws.next().await {
        let text = match msg {
            Ok(Message::Text(t)) => t,
            Ok(Message::Close(frame)) => {
                let why = frame.map_or_else(
                    || "the server closed the tail".to_owned(),
                    |f| format!("the server closed the tail: {}", f.reason),
                );
                return Ok(End::Retry(why));
            }
            Ok(_) => continue,
            Err(e) => return Ok(End::Retry(format!("connection lost ({e})"))),
        };
        let m: TailMessage = serde_json::from_str(text.as_str())
            .context("the server's tail message is not what fjord expects")?;
        let mut rows: Vec<(i64, &BTreeMap<String, String>, &str)> = m
            .streams
            .iter()
            .flat_map(|s| s.values.iter().map(move |e| (e.ts_ns, &s.stream, e.line())))
            .collect();
        rows.sort_by_key(|r| r.0);
        let width = rows
            .iter()
            .map(|r| format_labels(r.1).len())
            .max()
            .unwrap_or(0);
        let mut out = stdout.lock();
        for (ts, labels, line) in rows {
            if !print_line(&mut out, a.output, ts, labels, line, width)? {
                return Ok(End::Done);
            }
            *start = (*start).max(ts.saturating_add(1));
            *printed += 1;
            if a.max_lines.is_some_and(|m| *printed >= m) {
                out.flush().ok();
                return Ok(End::Done);
            }
        }
        out.flush().ok();
    }
    Ok(End::Retry("connection closed".to_owned()))
}
