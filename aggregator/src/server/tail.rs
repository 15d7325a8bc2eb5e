//! `GET /loki/api/v1/tail` (WebSocket): live tail in Loki's shape,
//! `{"streams":[{"stream":{…},"values":[["<ns>","<line>"]]}],"dropped_entries":[]}`.
//!
//! First the last `limit` entries since `start` (default one hour ago), then every entry
//! committed afterwards. New entries are found by polling the store for chunks after a
//! `(seq, id)` cursor, read in the same snapshot as the backfill, so no committed row is
//! skipped however slow the client: a slow client is simply behind, nothing is buffered for
//! it and nothing is dropped (`dropped_entries` is always empty).
//!
//! Invariants: at most `max_tails` tails at once (else 429); each tail reads at most
//! [`MAX_CHUNKS_PER_POLL`] chunks per message; the tail task is tracked in `state.tasks` and
//! ends with a close frame when the server shuts down; each tail is recorded in the access log
//! with the lines it sent.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use tokio::sync::OwnedSemaphorePermit;

use super::access::Access;
use super::auth::Caller;
use super::budget::Reservation;
use super::query::{query_error, stream_values, Params, StreamValues};
use super::{AppError, AppState};
use crate::logql::LogQuery;
use crate::store::{Deadline, Direction, Labels, RangeQuery, TailCursor, TailStreams};
use fjord_wire::clock::now_ns;

/// How often a tail looks for new entries.
pub const TAIL_POLL: Duration = Duration::from_millis(250);
/// Most chunks one tail reads per message.
pub const MAX_CHUNKS_PER_POLL: usize = 16;
/// Close code sent on server shutdown ("going away").
const CLOSE_GOING_AWAY: u16 = 1001;
/// Close code sent when the store fails.
const CLOSE_INTERNAL: u16 = 1011;
/// Close code sent to a client that stopped answering pings ("policy violation").
const CLOSE_POLICY: u16 = 1008;
/// Largest message or frame a tail client may send. Clients only send close frames and
/// pongs; the WebSocket default (64 MiB) would let each tail make the server buffer that much.
pub const MAX_CLIENT_MESSAGE_BYTES: usize = 64 * 1024;

/// One tail message.
#[derive(Debug, Serialize, Deserialize)]
pub struct TailMessage {
    pub streams: Vec<StreamValues>,
    #[serde(default)]
    pub dropped_entries: Vec<DroppedEntry>,
}

/// Loki's report of an entry a tail could not deliver (fjord never drops; always empty).
#[derive(Debug, Serialize, Deserialize)]
pub struct DroppedEntry {
    pub labels: Labels,
    pub timestamp: String,
}

/// The upgrade handler. A refused tail is recorded in the access log at once; an accepted one
/// when it ends, with the lines it sent.
pub async fn tail(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    q: Result<Query<Vec<(String, String)>>, QueryRejection>,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Result<Response, AppError> {
    let mut text = None;
    let res = begin(&st, &caller, q, ws, &mut text).await;
    if let Err(e) = &res {
        st.access.record(
            &caller,
            Access {
                endpoint: "tail",
                query: text.as_deref(),
                range: None,
                lines: 0,
                status: e.status.as_u16(),
            },
        );
    }
    res
}

async fn begin(
    st: &Arc<AppState>,
    caller: &Caller,
    q: Result<Query<Vec<(String, String)>>, QueryRejection>,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
    text: &mut Option<String>,
) -> Result<Response, AppError> {
    // The query text is recorded also when the role is refused.
    let p = Params::from_query(q)?;
    *text = p.get("query").map(str::to_owned);
    caller.require_read()?;
    let query = p.log_query(caller).await?;
    if query.has_pipeline() {
        return Err(AppError::bad_request(
            "a live tail takes a stream selector and plain line filters (|=, !=, |~, !~) only",
        ));
    }
    let limit = p.limit(st.max_query_lines)?;
    let now = now_ns();
    let start = match p.get("start") {
        Some(s) => fjord_wire::clock::parse_time(s)
            .map_err(|e| AppError::bad_request(format!("start: {e}")))?,
        None => now.saturating_sub(3600 * 1_000_000_000),
    };
    let ws = ws.map_err(|e| {
        AppError::bad_request(format!("tail needs a WebSocket upgrade: {}", e.body_text()))
    })?;
    let per_token = st
        .tails_per_token
        .try_reserve(&caller.name, 1)
        .ok_or_else(|| {
            AppError::overloaded(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "token {:?} has {} live tails open, the most one token may (max_tails_per_token)",
                    caller.name, st.read_limits.max_tails_per_token
                ),
                5,
            )
            .with_reason(super::metrics::Reason::TailsPerToken)
        })?;
    let permit = st.tail_permits.clone().try_acquire_owned().map_err(|_| {
        AppError::overloaded(
            StatusCode::TOO_MANY_REQUESTS,
            "too many live tails; retry later",
            5,
        )
        .with_reason(super::metrics::Reason::MaxTails)
    })?;
    let ws = ws
        .max_message_size(MAX_CLIENT_MESSAGE_BYTES)
        .max_frame_size(MAX_CLIENT_MESSAGE_BYTES);
    let rq = RangeQuery {
        query,
        start_ns: start,
        end_ns: i64::MAX,
        limit,
        direction: Direction::Backward,
        team: caller.read_scope().map(str::to_owned),
        max_bytes: st.read_limits.max_query_response_bytes,
        // The backfill is a range query; what follows reads a bounded number of chunks a poll.
        deadline: Deadline::after(st.read_limits.query_timeout),
    };
    let state = st.clone();
    let caller = caller.clone();
    let text = text.clone();
    Ok(ws.on_upgrade(move |socket| {
        let tasks = state.tasks.clone();
        tasks.track_future(async move {
            let mut sent = 0u64;
            run(socket, state.clone(), rq, (permit, per_token), &mut sent).await;
            state.access.record(
                &caller,
                Access {
                    endpoint: "tail",
                    query: text.as_deref(),
                    range: Some((start, now_ns())),
                    lines: sent,
                    status: StatusCode::SWITCHING_PROTOCOLS.as_u16(),
                },
            );
        })
    }))
}

async fn run(
    mut socket: WebSocket,
    st: Arc<AppState>,
    rq: RangeQuery,
    _permits: (OwnedSemaphorePermit, Reservation),
    sent: &mut u64,
) {
    let store = st.store.clone();
    let begin_q = rq.clone();
    let begun = tokio::task::spawn_blocking(move || store.tail_begin(&begin_q)).await;
    let (backfill, mut cursor) = match begun {
        Ok(Ok(b)) => b,
        Ok(Err(err)) => return close(socket, CLOSE_INTERNAL, &query_error(err).reason).await,
        Err(err) => return close(socket, CLOSE_INTERNAL, &format!("tail failed: {err}")).await,
    };
    // Backfill goes out oldest first, like Loki.
    let backfill = backfill
        .into_iter()
        .map(|mut s| {
            s.entries.reverse();
            s
        })
        .collect::<Vec<_>>();
    if !backfill.is_empty() && !send(&mut socket, backfill, sent).await {
        return;
    }
    let query: Arc<LogQuery> = Arc::new(rq.query);
    let team = rq.team;
    let mut cache = TailStreams::new();
    let mut interval = tokio::time::interval(TAIL_POLL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The client must answer pings (every WebSocket client does): one that is gone or stopped
    // reading is closed after `tail_idle_timeout` instead of holding a tail for ever.
    let idle_timeout = st.read_limits.tail_idle_timeout;
    let mut pings = tokio::time::interval_at(
        tokio::time::Instant::now() + idle_timeout / 2,
        idle_timeout / 2,
    );
    pings.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_heard = tokio::time::Instant::now();
    loop {
        tokio::select! {
            () = st.shutdown.cancelled() => {
                return close(socket, CLOSE_GOING_AWAY, "server shutting down").await;
            }
            msg = socket.recv() => match msg {
                // Clients only close and answer pings; anything else is ignored.
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => last_heard = tokio::time::Instant::now(),
            },
            _ = pings.tick() => {
                if last_heard.elapsed() > idle_timeout {
                    return close(socket, CLOSE_POLICY, "no answer to pings; tail closed").await;
                }
                if socket.send(Message::Ping(Vec::new().into())).await.is_err() {
                    return;
                }
            }
            _ = interval.tick() => {
                // Drain what is there, a bounded read at a time.
                loop {
                    let store = st.store.clone();
                    let (q, t) = (query.clone(), team.clone());
                    let mut c: TailCursor = cursor;
                    let mut cc = std::mem::take(&mut cache);
                    let res = tokio::task::spawn_blocking(move || {
                        let r = store.tail_next(&mut c, &q, t.as_deref(), MAX_CHUNKS_PER_POLL, &mut cc);
                        (r, c, cc)
                    })
                    .await;
                    let (r, moved, cc) = match res {
                        Ok(v) => v,
                        Err(err) => return close(socket, CLOSE_INTERNAL, &format!("tail failed: {err}")).await,
                    };
                    cache = cc;
                    let streams = match r {
                        Ok(s) => s,
                        Err(err) => {
                            tracing::warn!(%err, "tail read failed");
                            return close(socket, CLOSE_INTERNAL, "tail failed on the server").await;
                        }
                    };
                    let more = moved != cursor;
                    cursor = moved;
                    if !streams.is_empty() && !send(&mut socket, streams, sent).await {
                        return;
                    }
                    if !more || st.shutdown.is_cancelled() {
                        break;
                    }
                }
            }
        }
    }
}

/// Sends one message; false when the client is gone.
async fn send(
    socket: &mut WebSocket,
    streams: Vec<crate::store::StreamResult>,
    sent: &mut u64,
) -> bool {
    *sent += streams.iter().map(|s| s.entries.len() as u64).sum::<u64>();
    let msg = TailMessage {
        streams: stream_values(streams),
        dropped_entries: Vec::new(),
    };
    match serde_json::to_string(&msg) {
        Ok(text) => socket.send(Message::Text(text.into())).await.is_ok(),
        Err(err) => {
            tracing::error!(%err, "cannot serialise a tail message");
            false
        }
    }
}

async fn close(mut socket: WebSocket, code: u16, reason: &str) {
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        })))
        .await;
}
