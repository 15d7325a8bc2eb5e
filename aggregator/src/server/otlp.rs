//! `POST /otlp/v1/logs`: OTLP/HTTP logs, protobuf or JSON, identity, gzip or zstd. The
//! body is mapped to a push as Loki maps OTLP (`fjord_wire::otlp`) and goes the Loki push's
//! way from the headers on ([`push::ingest_request`]): the same tokens and teams, memory
//! budget, queue, limits, decompression-bomb protection, dedup (no batch id, so Loki's
//! dedup of identical entries) and metrics.
//!
//! Answers follow OTLP/HTTP: `200` with an `ExportLogsServiceResponse` in the request's
//! encoding once the records are committed; every error with its HTTP status (`400` bad
//! data, `415` a content type or encoding OTLP does not define, `429`/`503` with
//! `Retry-After` when shedding load) and a `google.rpc.Status` whose message is the reason
//! a Loki push would get. A request is stored whole or not at all, so `partial_success` is
//! never set.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use fjord_wire::codec::ContentEncoding;
use fjord_wire::otlp::{self, Encoding};

use super::auth::Caller;
use super::push::{self, BodyFormat, PushBatch};
use super::{AppError, AppState};
use crate::store::IngestOutcome;

/// The handler.
pub async fn logs(
    State(st): State<Arc<AppState>>,
    caller: Result<Caller, AppError>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    // Errors about the content type itself are answered in JSON, which a person with curl
    // can read; every other answer is in the request's encoding.
    let Some(encoding) = content_type.and_then(Encoding::from_content_type) else {
        return error(
            AppError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "content-type must be application/x-protobuf or application/json (OTLP/HTTP)",
            ),
            Encoding::Json,
        );
    };
    match ingest(&st, caller, &headers, body, encoding).await {
        Ok(()) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, encoding.content_type())],
            otlp::success_body(encoding),
        )
            .into_response(),
        Err(e) => error(e, encoding),
    }
}

async fn ingest(
    st: &Arc<AppState>,
    caller: Result<Caller, AppError>,
    headers: &HeaderMap,
    body: Body,
    encoding: Encoding,
) -> Result<(), AppError> {
    let caller = caller?;
    caller.require_ingest()?;
    let compression = ContentEncoding::from_header(
        headers
            .get(header::CONTENT_ENCODING)
            .and_then(|v| v.to_str().ok()),
    )
    .map_err(|e| AppError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, e.to_string()))?;
    let batch = PushBatch {
        token_team: caller.team.clone(),
        ..PushBatch::default()
    };
    let format = BodyFormat::Otlp {
        encoding,
        compression,
    };
    match push::ingest_request(st, &caller, headers, body, format, batch).await? {
        IngestOutcome::Stored { .. } | IngestOutcome::Duplicate => Ok(()),
        // Only a batch id can conflict, and OTLP requests carry none.
        IngestOutcome::Conflict => Err(AppError::internal(
            "storing an OTLP request",
            &"the store answered a batch-id conflict for a request without a batch id",
        )),
    }
}

/// An error as OTLP/HTTP answers it: the same status, `Retry-After` and `/metrics` reason
/// as the Loki push's answer, with a `Status` body in `encoding`.
fn error(e: AppError, encoding: Encoding) -> Response {
    let body = otlp::status_body(encoding, e.status.as_u16(), &e.reason);
    e.respond_with(([(header::CONTENT_TYPE, encoding.content_type())], body))
}
