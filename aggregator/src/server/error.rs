//! The one error type of the HTTP API. Every error answers a JSON `ErrorBody`; internal
//! errors are logged with their cause and answered with a generic reason, so nothing internal
//! (paths, SQL) leaks to clients. An error may carry a [`Reason`] from the fixed set that
//! `/metrics` counts by; it travels to the metrics layer as a response extension.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use fjord_wire::ErrorBody;

use super::metrics::Reason;

#[derive(Debug)]
pub struct AppError {
    pub status: StatusCode,
    pub reason: String,
    /// Seconds for `Retry-After` on 429/503.
    pub retry_after: Option<u64>,
    /// Why, for `/metrics`, where the status alone does not say (which limit shed a 429).
    pub reason_label: Option<Reason>,
}

impl AppError {
    pub fn new(status: StatusCode, reason: impl Into<String>) -> Self {
        AppError {
            status,
            reason: reason.into(),
            retry_after: None,
            reason_label: None,
        }
    }
    /// Names the reason `/metrics` counts this error under.
    pub fn with_reason(mut self, reason: Reason) -> Self {
        self.reason_label = Some(reason);
        self
    }
    pub fn bad_request(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, reason)
    }
    /// Load shedding: the client should come back after `secs`.
    pub fn overloaded(status: StatusCode, reason: impl Into<String>, secs: u64) -> Self {
        AppError {
            retry_after: Some(secs),
            ..Self::new(status, reason)
        }
    }
    /// A failure on our side. The cause is logged here and not sent to the client.
    pub fn internal(what: &str, err: &dyn std::fmt::Display) -> Self {
        tracing::error!(%err, "{what} failed");
        Self::overloaded(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{what} failed on the server; retry later"),
            5,
        )
    }
}

impl AppError {
    /// The answer with `body` for the JSON `ErrorBody` (OTLP's `Status`, for one): the same
    /// status, `Retry-After` and `/metrics` reason.
    pub fn respond_with(self, body: impl IntoResponse) -> Response {
        let mut resp = (self.status, body).into_response();
        if let Some(r) = self.reason_label {
            resp.extensions_mut().insert(r);
        }
        if let Some(secs) = self.retry_after {
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        resp
    }
}

impl IntoResponse for AppError {
    fn into_response(mut self) -> Response {
        let body = Json(ErrorBody::new(std::mem::take(&mut self.reason)));
        self.respond_with(body)
    }
}
