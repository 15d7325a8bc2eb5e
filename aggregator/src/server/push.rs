//! `POST /loki/api/v1/push`: limits, decompression, idempotency, durable commit, then ack.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use fjord_wire::codec::{self, ContentEncoding};
use fjord_wire::{headers as fh, limits, StatusBody};

use super::{AppError, AppState};
use crate::store::{IngestMeta, IngestOutcome, Store};

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

pub async fn push(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, AppError> {
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            AppError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "request body exceeds the limit of {} bytes",
                    limits::MAX_BODY_BYTES
                ),
            )
        } else {
            AppError::bad_request(format!("cannot read request body: {}", e.body_text()))
        }
    })?;
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

    // Shed load rather than queue: a permit bounds decoded batches held in memory.
    let permit = st.ingest_permits.clone().try_acquire_owned().map_err(|_| {
        AppError::overloaded(
            StatusCode::TOO_MANY_REQUESTS,
            "ingest queue is full; retry later",
            1,
        )
    })?;
    let store = st.store.clone();
    let outcome = tokio::task::spawn_blocking(
        move || -> Result<(IngestOutcome, Option<String>), AppError> {
            let _permit = permit;
            let (req, json) = codec::decode(&body, encoding, limits::MAX_DECOMPRESSED_BYTES)
                .map_err(|e| match e {
                    codec::CodecError::TooLarge { .. } => {
                        AppError::new(StatusCode::PAYLOAD_TOO_LARGE, e.to_string())
                    }
                    codec::CodecError::LineTooLong { .. } => {
                        AppError::new(StatusCode::PAYLOAD_TOO_LARGE, e.to_string())
                    }
                    other => AppError::bad_request(other.to_string()),
                })?;
            // Without auth the team comes from the labels; every stream must agree.
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
            let meta = IngestMeta {
                batch_id: batch_id.clone(),
                agent,
                team,
                rules_version,
                redactions,
                payload_sha256: codec::payload_sha256(&json),
                received_ns: Store::now_ns(),
            };
            drop(json);
            let outcome = store
                .ingest(&meta, &req)
                .map_err(|e| AppError::internal("storing the batch", &e))?;
            Ok((outcome, batch_id))
        },
    )
    .await
    .map_err(|e| AppError::internal("ingest task", &e))??;

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
