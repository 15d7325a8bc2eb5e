//! `POST /loki/api/v1/push`: auth, admission, limits, decompression, idempotency, durable
//! commit, then ack.
//!
//! Invariants: a push is admitted to the bounded ingest queue before its body is read (else
//! 429 + `Retry-After`); the body is read with a hard limit and decompressed with another
//! (bomb-safe, streamed); every limit is checked before anything is written, so a refused
//! push stores nothing; `204` is sent only after the transaction committed. Errors name the
//! stream and entry index and the limit, never the content.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use fjord_wire::codec::{self, ContentEncoding};
use fjord_wire::{headers as fh, PushRequest, StatusBody};
use futures_util::StreamExt;

use super::auth::Caller;
use super::{AppError, AppState};
use crate::config::IngestLimits;
use crate::store::{self, IngestMeta, IngestOutcome, Store};

/// Seconds a shed push is told to wait.
const RETRY_AFTER_SECS: u64 = 1;

/// Team used for streams that carry no `team` label when no auth is configured.
pub const DEFAULT_TEAM: &str = "default";

fn header_str<'a>(h: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, AppError> {
    match h.get(name) {
        None => Ok(None),
        Some(v) => {
            let s = v.to_str().map_err(|_| {
                AppError::bad_request(format!("header {name} is not visible ASCII"))
            })?;
            if s.len() > fh::MAX_HEADER_VALUE_BYTES {
                return Err(AppError::bad_request(format!(
                    "header {name} is longer than {} bytes",
                    fh::MAX_HEADER_VALUE_BYTES
                )));
            }
            Ok(Some(s))
        }
    }
}

/// The push handler.
pub async fn push(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, AppError> {
    caller.require_ingest()?;
    let encoding =
        ContentEncoding::from_header(header_str(&headers, header::CONTENT_ENCODING.as_str())?)
            .map_err(|e| AppError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, e.to_string()))?;
    if let Some(ct) = header_str(&headers, header::CONTENT_TYPE.as_str())? {
        if !ct.starts_with("application/json") {
            return Err(AppError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("content-type {ct:?} is not supported; send application/json (protobuf push is not implemented)"),
            ));
        }
    }
    let batch_id = header_str(&headers, fh::BATCH_ID)?.map(str::to_owned);
    if let Some(id) = &batch_id {
        if !fh::valid_batch_id(id) {
            return Err(AppError::bad_request(format!(
                "{} must be 1-128 visible ASCII characters",
                fh::BATCH_ID
            )));
        }
    }
    let agent = header_str(&headers, fh::AGENT)?.map(str::to_owned);
    let rules_version = header_str(&headers, fh::RULES)?.map(str::to_owned);
    let redactions = match header_str(&headers, fh::REDACTIONS)? {
        Some(v) => Some(fh::format_redactions(
            &fh::parse_redactions(v).map_err(AppError::bad_request)?,
        )),
        None => None,
    };

    // Shed load rather than queue without bound: admission before the body is read.
    let slot = st.ingest_slots.clone().try_acquire_owned().map_err(|_| {
        AppError::overloaded(
            StatusCode::TOO_MANY_REQUESTS,
            "ingest queue is full; retry later",
            RETRY_AFTER_SECS,
        )
    })?;
    let limits = st.limits.clone();
    let body = read_body(body, &headers, limits.max_body_bytes).await?;
    let permit = st
        .ingest_workers
        .clone()
        .acquire_owned()
        .await
        .map_err(|e| AppError::internal("ingest admission", &e))?;
    let store = st.store.clone();
    let batch = PushBatch {
        batch_id: batch_id.clone(),
        agent,
        rules_version,
        redactions,
        token_team: caller.team.clone(),
    };
    let outcome = tokio::task::spawn_blocking(move || {
        let _held = (slot, permit);
        ingest_body(&store, body, encoding, &limits, batch)
    })
    .await
    .map_err(|e| AppError::internal("ingest task", &e))??;
    let outcome = (outcome, batch_id);

    match outcome {
        (IngestOutcome::Stored { records }, batch_id) => {
            tracing::debug!(
                batch_id = batch_id.as_deref().unwrap_or("-"),
                records,
                "stored batch"
            );
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        (IngestOutcome::Duplicate, batch_id) => {
            tracing::debug!(
                batch_id = batch_id.as_deref().unwrap_or("-"),
                "duplicate batch"
            );
            Ok((StatusCode::OK, Json(StatusBody::duplicate())).into_response())
        }
    }
}

/// The metadata of one push that travels in headers and the token.
#[derive(Debug, Clone, Default)]
pub struct PushBatch {
    pub batch_id: Option<String>,
    pub agent: Option<String>,
    pub rules_version: Option<String>,
    /// Compact JSON of per-rule counts.
    pub redactions: Option<String>,
    /// The token's team, which wins over labels; `None` for team-less callers.
    pub token_team: Option<String>,
}

/// The blocking part of a push: decompress (bounded), parse, check the limits, hash the
/// payload and commit. Public so the benchmark measures exactly what the server does.
pub fn ingest_body(
    store: &Store,
    body: Bytes,
    encoding: ContentEncoding,
    limits: &IngestLimits,
    batch: PushBatch,
) -> Result<IngestOutcome, AppError> {
    let codec_error = |e: codec::CodecError| match e {
        codec::CodecError::TooLarge { .. } | codec::CodecError::LineTooLong { .. } => {
            AppError::new(StatusCode::PAYLOAD_TOO_LARGE, e.to_string())
        }
        other => AppError::bad_request(other.to_string()),
    };
    let json = decompress(&body, encoding, limits.max_decompressed_bytes).map_err(codec_error)?;
    drop(body);
    // Lines without escapes borrow from `json`; those with escapes are unescaped into one
    // buffer for the batch instead of a `String` each.
    let mut unescaped = String::new();
    let req = codec::parse_push_in(&json, &mut unescaped).map_err(codec_error)?;
    let received_ns = Store::now_ns();
    check_limits(&req, limits, received_ns)?;
    // The token's team wins; only team-less callers (admin, open mode) use the label.
    let team = match batch.token_team {
        Some(t) => t,
        None => team_from_labels(&req)?,
    };
    // The payload hash and the entry digest in one paired pass, before the writer lock.
    let (payload_sha256, entries_digest) = store::hash_batch(&json, &req, &team)
        .map_err(|e| AppError::internal("hashing the batch", &e))?;
    let meta = IngestMeta {
        batch_id: batch.batch_id,
        agent: batch.agent,
        team,
        rules_version: batch.rules_version,
        redactions: batch.redactions,
        payload_sha256,
        received_ns,
    };
    // `req` borrows its lines from the decompressed body and `unescaped`, which live until it
    // is stored.
    store
        .ingest_digested(&meta, &req, &entries_digest)
        .map_err(|e| AppError::internal("storing the batch", &e))
}

/// Decompresses a push body with the limit. A zstd frame that declares its size (as every
/// `fjord-agent` batch does) is decompressed in one call into a buffer of exactly that size,
/// which is about 4× cheaper than the streamed path; a declared size over the limit is refused
/// before allocating, and a frame that lies about its size fails the one-shot call and falls
/// back to the streamed, bounded decoder.
pub fn decompress(
    body: &[u8],
    encoding: ContentEncoding,
    limit: usize,
) -> Result<Vec<u8>, codec::CodecError> {
    if encoding == ContentEncoding::Zstd {
        if let Ok(Some(declared)) = zstd::zstd_safe::get_frame_content_size(body) {
            if declared > limit as u64 {
                return Err(codec::CodecError::TooLarge { limit });
            }
            if let Ok(out) = zstd::bulk::decompress(body, declared as usize) {
                if out.len() as u64 == declared {
                    return Ok(out);
                }
            }
        }
    }
    codec::decompress(body, encoding, limit)
}

/// Reads the body, refusing (413) as soon as it exceeds `limit` bytes: a declared
/// `Content-Length` over the limit is refused before reading anything.
async fn read_body(body: Body, headers: &HeaderMap, limit: usize) -> Result<Bytes, AppError> {
    let too_large = || {
        AppError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body exceeds the limit of {limit} bytes"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let mut buf = Vec::with_capacity(declared.map_or(64 * 1024, |n| n as usize));
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk
            .map_err(|e| AppError::bad_request(format!("cannot read the request body: {e}")))?;
        if buf.len() + chunk.len() > limit {
            return Err(too_large());
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(buf))
}

/// The team of a push without a team-bound token: the streams' `team` label (or
/// [`DEFAULT_TEAM`]); every stream must agree.
fn team_from_labels(req: &PushRequest) -> Result<String, AppError> {
    let mut teams = req
        .streams
        .iter()
        .map(|s| s.stream.get("team").map_or(DEFAULT_TEAM, String::as_str));
    let team = teams.next().unwrap_or(DEFAULT_TEAM).to_owned();
    if teams.any(|t| t != team) {
        return Err(AppError::bad_request(
            "every stream of one push must carry the same team label",
        ));
    }
    Ok(team)
}

/// Checks the configured limits (which may be tighter than the wire's, already checked by
/// the codec) and the timestamp window. Nothing is stored if any entry fails.
pub fn check_limits(req: &PushRequest, l: &IngestLimits, now_ns: i64) -> Result<(), AppError> {
    let ns = |d: std::time::Duration| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
    let oldest = now_ns.saturating_sub(ns(l.reject_older_than));
    let newest = now_ns.saturating_add(ns(l.reject_newer_than));
    for (si, s) in req.streams.iter().enumerate() {
        if s.stream.len() > l.max_labels_per_stream {
            return Err(AppError::bad_request(format!(
                "stream {si} has {} labels; the limit is {}",
                s.stream.len(),
                l.max_labels_per_stream
            )));
        }
        for (k, v) in &s.stream {
            if k.len() > l.max_label_name_bytes {
                return Err(AppError::bad_request(format!(
                    "stream {si} has a label name of {} bytes; the limit is {}",
                    k.len(),
                    l.max_label_name_bytes
                )));
            }
            if v.len() > l.max_label_value_bytes {
                return Err(AppError::bad_request(format!(
                    "stream {si} label {k:?} value is {} bytes; the limit is {}",
                    v.len(),
                    l.max_label_value_bytes
                )));
            }
        }
        for (ei, e) in s.values.iter().enumerate() {
            if e.line.len() > l.max_line_bytes {
                return Err(AppError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!(
                        "stream {si} entry {ei} is {} bytes; the line limit is {}",
                        e.line.len(),
                        l.max_line_bytes
                    ),
                ));
            }
            if e.ts_ns < oldest {
                return Err(AppError::bad_request(format!(
                    "stream {si} entry {ei} is older than {} (reject_older_than); its timestamp is {}",
                    humantime::format_duration(l.reject_older_than),
                    crate::time::format_ns(e.ts_ns)
                )));
            }
            if e.ts_ns > newest {
                return Err(AppError::bad_request(format!(
                    "stream {si} entry {ei} is more than {} in the future (reject_newer_than); its timestamp is {}",
                    humantime::format_duration(l.reject_newer_than),
                    crate::time::format_ns(e.ts_ns)
                )));
            }
        }
    }
    Ok(())
}
