//! `POST /loki/api/v1/push`: auth, admission, limits, decompression, idempotency, durable
//! commit, then ack. Bodies are Loki's JSON (zstd, gzip or identity) or Loki's protobuf
//! (`application/x-protobuf`, snappy; `fjord_wire::logproto`); both become the same
//! `PushRequest` and are stored alike. [`ingest_request`] is everything after the headers,
//! shared with OTLP's endpoint (`server/otlp.rs`), whose bodies become the same request.
//!
//! Invariants: a push is admitted to the bounded ingest queue before its body is read (else
//! 429 + `Retry-After`); the body is read with a hard limit and decompressed with another
//! (bomb-safe, streamed); every limit is checked before anything is written, so a refused
//! push stores nothing; `204` is sent only after the transaction committed. Errors name the
//! stream and entry index and the limit, never the content.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use fjord_wire::codec::{self, ContentEncoding};
use fjord_wire::{headers as fh, PushRequest, StatusBody};
use fjord_wire::{logproto, otlp};
use futures_util::StreamExt;

use super::auth::Caller;
use super::metrics::Reason;
use super::{AppError, AppState};
use crate::config::IngestLimits;
use crate::store::{self, IngestMeta, IngestOutcome, Store};

/// Seconds a shed push is told to wait.
const RETRY_AFTER_SECS: u64 = 1;

/// Seconds a push refused for the team's stream limit is told to wait: the limit does not
/// lift by itself, so retries should be rare.
const STREAM_LIMIT_RETRY_AFTER_SECS: u64 = 60;

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
    let format = body_format(
        header_str(&headers, header::CONTENT_TYPE.as_str())?,
        header_str(&headers, header::CONTENT_ENCODING.as_str())?,
    )?;
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
        // The header's content is not echoed: a sender's bug could put PII in it.
        Some(v) => Some(fh::format_redactions(&fh::parse_redactions(v).map_err(
            |_| {
                AppError::bad_request(format!(
                    "header {} must be a compact JSON object of rule name to count, e.g. {{\"email\":3}}",
                    fh::REDACTIONS
                ))
            },
        )?)),
        None => None,
    };

    let batch = PushBatch {
        batch_id: batch_id.clone(),
        agent,
        rules_version,
        redactions,
        token_team: caller.team.clone(),
    };
    match ingest_request(&st, &caller, &headers, body, format, batch).await? {
        IngestOutcome::Stored { records } => {
            tracing::debug!(
                batch_id = batch_id.as_deref().unwrap_or("-"),
                records,
                "stored batch"
            );
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        IngestOutcome::Conflict => {
            let n = st
                .counters
                .batch_id_conflicts
                .fetch_add(1, Ordering::Relaxed)
                + 1;
            let batch_id = batch_id.as_deref().unwrap_or("-");
            tracing::warn!(
                batch_id,
                team = caller.team.as_deref().unwrap_or("-"),
                conflicts_total = n,
                "batch id reused with different lines; refused"
            );
            Err(AppError::new(
                StatusCode::CONFLICT,
                format!(
                    "batch id {batch_id:?} was stored before with different lines; nothing of this push was stored and it is not acknowledged (a batch id must name one payload)"
                ),
            ))
        }
        IngestOutcome::Duplicate => {
            tracing::debug!(
                batch_id = batch_id.as_deref().unwrap_or("-"),
                "duplicate batch"
            );
            Ok((StatusCode::OK, Json(StatusBody::duplicate())).into_response())
        }
    }
}

/// The part of a push every ingest endpoint shares (`/loki/api/v1/push`, `/otlp/v1/logs`):
/// the body's memory reserved within the team's share, the body read under the size and rate
/// limits, a slot in the bounded ingest queue, then decoding, the limits and the commit on
/// the blocking pool, counted in `/metrics`. Every refusal is an [`AppError`] with its status,
/// reason and `Retry-After`.
pub(super) async fn ingest_request(
    st: &Arc<AppState>,
    caller: &Caller,
    headers: &HeaderMap,
    body: Body,
    format: BodyFormat,
    batch: PushBatch,
) -> Result<IngestOutcome, AppError> {
    let limits = st.limits.clone();
    // Memory for bodies is reserved before reading, within a per-team share, so one team's
    // slow or large pushes cannot take every other team's room.
    let declared = declared_length(headers);
    if declared.is_some_and(|n| n > limits.max_body_bytes as u64) {
        return Err(body_too_large(limits.max_body_bytes));
    }
    let team_key = caller.team.clone().unwrap_or_default();
    let reserve = declared.map_or(limits.max_body_bytes, |n| n as usize);
    let reservation = st
        .body_budget
        .try_reserve(&team_key, reserve)
        .ok_or_else(|| {
            AppError::overloaded(
                StatusCode::TOO_MANY_REQUESTS,
                "push bodies in progress use this team's share of the ingest memory; retry later",
                RETRY_AFTER_SECS,
            )
            .with_reason(Reason::TeamMemory)
        })?;
    // The body is read (at a minimum rate) before the push takes a queue slot: the slots
    // hold only complete bodies, so a slow sender cannot keep other teams out of the queue.
    let body = read_body(body, &limits).await?;
    // Shed load rather than queue without bound.
    let slot = ingest_slot(st)?;
    let permit = st
        .ingest_workers
        .clone()
        .acquire_owned()
        .await
        .map_err(|e| AppError::internal("ingest admission", &e))?;
    let store = st.store.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        let _held = (slot, permit, reservation);
        ingest_counted(&store, body, format, &limits, batch)
    })
    .await
    .map_err(|e| AppError::internal("ingest task", &e))??;
    let (outcome, ingested) = outcome;
    match outcome {
        IngestOutcome::Stored { records } => {
            st.metrics
                .ingested(&ingested.team, records as u64, ingested.line_bytes);
        }
        IngestOutcome::Duplicate => {
            st.metrics
                .duplicates
                .get_or_create(&st.metrics.team(&ingested.team))
                .inc();
        }
        IngestOutcome::Conflict => {}
    }
    Ok(outcome)
}

/// A slot in the bounded ingest queue, or `429` with `Retry-After` when it is full.
pub(super) fn ingest_slot(st: &AppState) -> Result<tokio::sync::OwnedSemaphorePermit, AppError> {
    st.ingest_slots.clone().try_acquire_owned().map_err(|_| {
        AppError::overloaded(
            StatusCode::TOO_MANY_REQUESTS,
            "ingest queue is full; retry later",
            RETRY_AFTER_SECS,
        )
        .with_reason(Reason::QueueFull)
    })
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
    format: BodyFormat,
    limits: &IngestLimits,
    batch: PushBatch,
) -> Result<IngestOutcome, AppError> {
    ingest_counted(store, body, format, limits, batch).map(|(outcome, _)| outcome)
}

/// How a push body is encoded, from its `Content-Type` and `Content-Encoding`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    /// Loki's JSON (`application/json`, or no content type), compressed as the
    /// `Content-Encoding` says.
    Json(ContentEncoding),
    /// Loki's protobuf (`application/x-protobuf`), always in snappy's block format.
    ProtobufSnappy,
    /// OTLP/HTTP logs (`POST /otlp/v1/logs`) in `encoding`, compressed as `compression`
    /// says.
    Otlp {
        encoding: otlp::Encoding,
        compression: ContentEncoding,
    },
}

/// The body format of a push, or a 415 naming what is not supported. The media type is
/// compared exactly (parameters such as `; charset=utf-8` allowed), not as a prefix:
/// `application/jsonx` is not JSON.
pub fn body_format(
    content_type: Option<&str>,
    content_encoding: Option<&str>,
) -> Result<BodyFormat, AppError> {
    let unsupported = |reason: String| AppError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, reason);
    let media_type = content_type.map(|ct| ct.split(';').next().unwrap_or_default().trim());
    match media_type {
        None => {}
        Some(m) if m.eq_ignore_ascii_case("application/json") => {}
        Some(m) if m.eq_ignore_ascii_case("application/x-protobuf") => {
            // Loki's protobuf push is snappy-compressed by definition; a client may say so.
            return match content_encoding.map(str::trim) {
                None | Some("") => Ok(BodyFormat::ProtobufSnappy),
                Some(e) if e.eq_ignore_ascii_case("snappy") => Ok(BodyFormat::ProtobufSnappy),
                Some(e) => Err(unsupported(format!(
                    "content-encoding {e:?} is not supported with application/x-protobuf, which is snappy-compressed"
                ))),
            };
        }
        Some(_) => {
            return Err(unsupported(format!(
                "content-type {:?} is not supported; send application/json or application/x-protobuf (snappy)",
                content_type.unwrap_or_default()
            )))
        }
    }
    ContentEncoding::from_header(content_encoding)
        .map(BodyFormat::Json)
        .map_err(|e| unsupported(e.to_string()))
}

/// What a push held, for `/metrics`: known once the body is parsed and the team decided.
#[derive(Debug, Clone, Default)]
pub struct Ingested {
    /// The team the push was stored (or found duplicate) under.
    pub team: String,
    /// Bytes of its log lines.
    pub line_bytes: u64,
}

/// [`ingest_body`], also saying which team the push was for and how many line bytes it held.
fn ingest_counted(
    store: &Store,
    body: Bytes,
    format: BodyFormat,
    limits: &IngestLimits,
    batch: PushBatch,
) -> Result<(IngestOutcome, Ingested), AppError> {
    let codec_error = |e: codec::CodecError| match e {
        codec::CodecError::TooLarge { .. } | codec::CodecError::LineTooLong { .. } => {
            AppError::new(StatusCode::PAYLOAD_TOO_LARGE, e.to_string())
        }
        other => AppError::bad_request(other.to_string()),
    };
    // `payload` is the decompressed body, which the receipt's payload hash covers. Lines
    // borrow from it (JSON without escapes) or from what it decodes to (protobuf, OTLP's
    // string bodies); JSON lines with escapes are unescaped into one buffer for the batch
    // instead of a `String` each.
    let payload: Vec<u8>;
    let message: logproto::proto::PushRequest;
    let otlp_message: otlp::ExportLogsServiceRequest;
    let mut unescaped = String::new();
    // Also the timestamp of OTLP records that carry none.
    let received_ns = Store::now_ns();
    let req = match format {
        BodyFormat::Json(encoding) => {
            payload =
                decompress(&body, encoding, limits.max_decompressed_bytes).map_err(codec_error)?;
            drop(body);
            codec::parse_push_in(&payload, &mut unescaped).map_err(codec_error)?
        }
        BodyFormat::ProtobufSnappy => {
            payload = logproto::decompress_snappy(&body, limits.max_decompressed_bytes)
                .map_err(codec_error)?;
            drop(body);
            message = logproto::decode_message(&payload).map_err(codec_error)?;
            logproto::to_push(&message).map_err(codec_error)?
        }
        BodyFormat::Otlp {
            encoding,
            compression,
        } => {
            payload = decompress(&body, compression, limits.max_decompressed_bytes)
                .map_err(codec_error)?;
            drop(body);
            otlp_message = otlp::decode(&payload, encoding).map_err(codec_error)?;
            otlp::to_push(&otlp_message, received_ns).map_err(codec_error)?
        }
    };
    check_limits(&req, limits, received_ns)?;
    // The token's team wins; only team-less callers (admin, open mode) use the label.
    let team = match batch.token_team {
        Some(t) => t,
        None => team_from_labels(&req)?,
    };
    // The payload hash and the entry digest in one paired pass, before the writer lock.
    let (payload_sha256, entries_digest) = store::hash_batch(&payload, &req, &team)
        .map_err(|e| AppError::internal("hashing the batch", &e))?;
    let ingested = Ingested {
        line_bytes: req
            .streams
            .iter()
            .flat_map(|s| &s.values)
            .map(|e| e.line.len() as u64)
            .sum(),
        team: team.clone(),
    };
    let meta = IngestMeta {
        batch_id: batch.batch_id,
        agent: batch.agent,
        team,
        rules_version: batch.rules_version,
        redactions: batch.redactions,
        payload_sha256,
        received_ns,
    };
    // `req` borrows its lines from `payload`, `message`, `otlp_message` and `unescaped`,
    // which live until it is stored.
    store
        .ingest_digested(&meta, &req, &entries_digest)
        .map(|outcome| (outcome, ingested))
        .map_err(|e| match e {
            store::StoreError::TooManyStreams { .. } => AppError::overloaded(
                StatusCode::TOO_MANY_REQUESTS,
                e.to_string(),
                STREAM_LIMIT_RETRY_AFTER_SECS,
            )
            .with_reason(Reason::StreamLimit),
            other => AppError::internal("storing the batch", &other),
        })
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

fn body_too_large(limit: usize) -> AppError {
    AppError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("request body exceeds the limit of {limit} bytes"),
    )
}

/// The `Content-Length` the client declared, if any.
fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

/// Reads the body, refusing it (413) as soon as it exceeds `max_body_bytes`, and (408) when
/// it falls behind the minimum rate: after `body_read_timeout`, every further
/// `1 / min_body_bytes_per_sec` seconds must have brought a byte, so a client that trickles
/// is cut off after about `body_read_timeout` whatever size it declared.
async fn read_body(body: Body, limits: &IngestLimits) -> Result<Bytes, AppError> {
    let limit = limits.max_body_bytes;
    let start = tokio::time::Instant::now();
    let mut buf = Vec::new();
    let mut stream = body.into_data_stream();
    loop {
        let due = start + limits.body_deadline(buf.len());
        let chunk = match tokio::time::timeout_at(due, stream.next()).await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            Err(_) => {
                return Err(AppError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    format!(
                        "the request body arrived slower than {} bytes/s after {} ms; push faster or smaller batches",
                        limits.min_body_bytes_per_sec,
                        limits.body_read_timeout.as_millis()
                    ),
                ))
            }
        };
        let chunk = chunk
            .map_err(|e| AppError::bad_request(format!("cannot read the request body: {e}")))?;
        if buf.len() + chunk.len() > limit {
            return Err(body_too_large(limit));
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
    // The same rule as a token's team in the config, so that no push creates a team no
    // token could be configured for (`../etc`, control characters, 10 KiB names).
    if !crate::config::valid_team_name(&team) {
        return Err(AppError::bad_request(crate::config::TEAM_NAME_RULE));
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
                    fjord_wire::clock::format_ns(e.ts_ns)
                )));
            }
            if e.ts_ns > newest {
                return Err(AppError::bad_request(format!(
                    "stream {si} entry {ei} is more than {} in the future (reject_newer_than); its timestamp is {}",
                    humantime::format_duration(l.reject_newer_than),
                    fjord_wire::clock::format_ns(e.ts_ns)
                )));
            }
        }
    }
    Ok(())
}
