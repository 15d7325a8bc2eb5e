//! OTLP/HTTP logs: `POST /otlp/v1/logs` with an `ExportLogsServiceRequest` in protobuf
//! (`application/x-protobuf`) or OTLP's JSON encoding (`application/json`), mapped to the
//! same [`PushRequest`] a Loki push becomes, as Loki maps OTLP:
//!
//! - The resource attributes Loki promotes by default ([`INDEX_LABELS`]) become stream
//!   labels, `service.name` as `service_name`; a resource without a `service.name` gets
//!   `service_name="unknown_service"`.
//! - Every other resource attribute, the scope's attributes, name and version, the record's
//!   attributes, severity, flags, trace and span ids and observed timestamp become structured
//!   metadata of each entry, names turned into label names ([`label_name`]).
//! - The body is the line: a string as it is, any other value as text ([`render`]).
//! - The timestamp is `time_unix_nano`, else `observed_time_unix_nano`, else the time the
//!   request was received.
//!
//! The messages are opentelemetry-proto's prost types; the JSON encoding is read by
//! [`json`]. Everything here is pure: no clock (the receive time is an argument), no I/O.
//!
//! Each `scope_logs` that holds records becomes one stream of the push, in request order, and
//! its records its entries in order: an error that names "stream N entry M" means the N-th
//! such `scope_logs` over all `resource_logs` and its M-th record. Errors never quote
//! content.

mod json;

use std::borrow::Cow;
use std::collections::BTreeMap;

use base64::Engine as _;
use prost::Message;

use proto::common::any_value::Value;
use proto::common::{AnyValue, KeyValue};
pub use proto::logs::{ExportLogsServiceRequest, ExportLogsServiceResponse};
use proto::logs::{LogRecord, ScopeLogs};

/// The OTLP messages (opentelemetry-proto's), for those who build requests: tests, benches.
pub mod proto {
    /// `opentelemetry.proto.common.v1`: values, attributes, scopes.
    pub use opentelemetry_proto::tonic::common::v1 as common;
    /// `opentelemetry.proto.resource.v1`.
    pub use opentelemetry_proto::tonic::resource::v1 as resource;
    /// `opentelemetry.proto.logs.v1` and the logs service's request and response.
    pub mod logs {
        pub use opentelemetry_proto::tonic::collector::logs::v1::{
            ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
        };
        pub use opentelemetry_proto::tonic::logs::v1::*;
    }
}

use crate::error::CodecError;
use crate::push::{Entry, PushRequest, PushStream};

/// The resource attributes that become stream labels: Loki's default
/// `distributor.otlp.default_resource_attributes_as_index_labels`. Every other resource
/// attribute is structured metadata.
pub const INDEX_LABELS: [&str; 18] = [
    "service.name",
    "service.namespace",
    "service.instance.id",
    "deployment.environment",
    "deployment.environment.name",
    "cloud.region",
    "cloud.availability_zone",
    "k8s.cluster.name",
    "k8s.namespace.name",
    "k8s.pod.name",
    "k8s.container.name",
    "container.name",
    "k8s.replicaset.name",
    "k8s.deployment.name",
    "k8s.statefulset.name",
    "k8s.daemonset.name",
    "k8s.cronjob.name",
    "k8s.job.name",
];

/// The stream label a resource without a `service.name` gets, as in Loki.
pub const UNKNOWN_SERVICE: &str = "unknown_service";

/// How the request body is encoded, from its `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// `application/x-protobuf`.
    Protobuf,
    /// `application/json`: protobuf's JSON mapping with OTLP's deviations (hex ids,
    /// integer enums).
    Json,
}

impl Encoding {
    /// The encoding of a `Content-Type` (parameters allowed), if it is one OTLP defines.
    pub fn from_content_type(content_type: &str) -> Option<Encoding> {
        let media_type = content_type.split(';').next().unwrap_or_default().trim();
        if media_type.eq_ignore_ascii_case("application/x-protobuf") {
            Some(Encoding::Protobuf)
        } else if media_type.eq_ignore_ascii_case("application/json") {
            Some(Encoding::Json)
        } else {
            None
        }
    }

    /// The `Content-Type` of a response in this encoding (OTLP answers in the request's).
    pub fn content_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => "application/x-protobuf",
            Encoding::Json => "application/json",
        }
    }
}

/// Decodes a decompressed request body. A protobuf string that is not UTF-8 (a body, an
/// attribute) fails the message, as prost checks every `string` field.
pub fn decode(body: &[u8], encoding: Encoding) -> Result<ExportLogsServiceRequest, CodecError> {
    match encoding {
        Encoding::Protobuf => ExportLogsServiceRequest::decode(body).map_err(|e| {
            CodecError::Invalid(format!(
                "malformed OTLP protobuf body: {}",
                // prost names the message and field, never field content.
                e.to_string().replace('\n', " ")
            ))
        }),
        Encoding::Json => json::parse(body),
    }
}

/// Encodes a request as protobuf, as the OpenTelemetry SDKs send it. For tests and
/// benchmarks.
pub fn encode(req: &ExportLogsServiceRequest) -> Vec<u8> {
    req.encode_to_vec()
}

/// The body of a `200` answer: an `ExportLogsServiceResponse` without `partial_success`
/// (a request is stored whole or refused whole, so nothing is ever partly rejected).
pub fn success_body(encoding: Encoding) -> Vec<u8> {
    match encoding {
        Encoding::Protobuf => ExportLogsServiceResponse::default().encode_to_vec(),
        Encoding::Json => b"{}".to_vec(),
    }
}

/// `google.rpc.Status`, the body of an OTLP/HTTP error answer; `details` is not sent.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Status {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
}

/// The body of an error answer with HTTP status `http_status`: a `Status` whose code is the
/// gRPC code of that status and whose message is `message`.
pub fn status_body(encoding: Encoding, http_status: u16, message: &str) -> Vec<u8> {
    let status = Status {
        code: grpc_code(http_status),
        message: message.to_owned(),
    };
    match encoding {
        Encoding::Protobuf => status.encode_to_vec(),
        Encoding::Json => serde_json::json!({ "code": status.code, "message": status.message })
            .to_string()
            .into_bytes(),
    }
}

/// The gRPC status code OTLP/gRPC would answer where OTLP/HTTP answers `http_status`
/// (informative only: OTLP clients act on the HTTP status).
fn grpc_code(http_status: u16) -> i32 {
    match http_status {
        400 | 413 | 415 => 3, // INVALID_ARGUMENT
        401 => 16,            // UNAUTHENTICATED
        403 => 7,             // PERMISSION_DENIED
        408 => 4,             // DEADLINE_EXCEEDED
        409 => 6,             // ALREADY_EXISTS
        429 => 8,             // RESOURCE_EXHAUSTED
        503 => 14,            // UNAVAILABLE
        _ => 2,               // UNKNOWN
    }
}

/// The push of a decoded request; string bodies borrow from `req`. `received_ns` is the
/// timestamp of records that carry neither of theirs. The wire limits are checked as for a
/// Loki push ([`PushRequest::validate`]): a record whose metadata is over them fails the
/// whole request, naming its place.
pub fn to_push(
    req: &ExportLogsServiceRequest,
    received_ns: i64,
) -> Result<PushRequest<'_>, CodecError> {
    let mut streams = Vec::new();
    for rl in &req.resource_logs {
        let resource = Attributes::of_resource(rl.resource.as_ref().map(|r| &r.attributes));
        for sl in rl.scope_logs.iter().filter(|sl| !sl.log_records.is_empty()) {
            let scope = scope_metadata(sl);
            let si = streams.len();
            let values = sl
                .log_records
                .iter()
                .enumerate()
                .map(|(ei, record)| {
                    let mut entry = entry(record, received_ns).ok_or_else(|| {
                        CodecError::Invalid(format!(
                            "stream {si} entry {ei}: timestamp is after the year 2262"
                        ))
                    })?;
                    entry.metadata.extend_from_slice(&resource.metadata);
                    entry.metadata.extend_from_slice(&scope);
                    Ok(entry)
                })
                .collect::<Result<_, CodecError>>()?;
            streams.push(PushStream {
                stream: resource.labels.clone(),
                values,
            });
        }
    }
    let push = PushRequest { streams };
    push.validate()?;
    Ok(push)
}

/// A resource's attributes, split into stream labels and structured metadata.
struct Attributes {
    labels: BTreeMap<String, String>,
    metadata: Vec<(String, String)>,
}

impl Attributes {
    fn of_resource(attributes: Option<&Vec<KeyValue>>) -> Attributes {
        let mut out = Attributes {
            labels: BTreeMap::new(),
            metadata: Vec::new(),
        };
        for kv in attributes.into_iter().flatten() {
            if INDEX_LABELS.contains(&kv.key.as_str()) {
                let mut pairs = Vec::new();
                flatten(&kv.key, kv.value.as_ref(), "", &mut pairs);
                // An empty label value is no label, as in Loki (Prometheus' label sets).
                out.labels
                    .extend(pairs.into_iter().filter(|(_, v)| !v.is_empty()));
            } else {
                flatten(&kv.key, kv.value.as_ref(), "", &mut out.metadata);
            }
        }
        out.labels
            .entry("service_name".to_owned())
            .or_insert_with(|| UNKNOWN_SERVICE.to_owned());
        out
    }
}

/// The metadata every record of a scope carries: its attributes, name, version and dropped
/// attribute count.
fn scope_metadata(sl: &ScopeLogs) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let Some(scope) = &sl.scope else {
        return out;
    };
    attributes(&scope.attributes, &mut out);
    push_nonempty(&mut out, "scope_name", &scope.name);
    push_nonempty(&mut out, "scope_version", &scope.version);
    push_nonzero(
        &mut out,
        "scope_dropped_attributes_count",
        u64::from(scope.dropped_attributes_count),
    );
    out
}

/// One record as an entry, without the resource's and scope's metadata; `None` when its
/// timestamp does not fit in Unix nanoseconds as an `i64`.
fn entry(record: &LogRecord, received_ns: i64) -> Option<Entry<'_>> {
    let ts_ns = match (record.time_unix_nano, record.observed_time_unix_nano) {
        (0, 0) => received_ns,
        (0, observed) => i64::try_from(observed).ok()?,
        (t, _) => i64::try_from(t).ok()?,
    };
    let mut metadata = Vec::with_capacity(record.attributes.len() + 8);
    attributes(&record.attributes, &mut metadata);
    // With no `time_unix_nano` the observed time is the entry's timestamp already.
    if record.time_unix_nano != 0 {
        push_nonzero(
            &mut metadata,
            "observed_timestamp",
            record.observed_time_unix_nano,
        );
    }
    push_nonzero(
        &mut metadata,
        "severity_number",
        u64::try_from(record.severity_number).unwrap_or_default(),
    );
    push_nonempty(&mut metadata, "severity_text", &record.severity_text);
    push_nonzero(
        &mut metadata,
        "dropped_attributes_count",
        u64::from(record.dropped_attributes_count),
    );
    push_nonzero(&mut metadata, "flags", u64::from(record.flags));
    for (name, id) in [("trace_id", &record.trace_id), ("span_id", &record.span_id)] {
        // All zeros is OTLP's invalid (unset) id.
        if id.iter().any(|&b| b != 0) {
            metadata.push((name.to_owned(), hex::encode(id)));
        }
    }
    let line = match record.body.as_ref().and_then(|b| b.value.as_ref()) {
        Some(Value::StringValue(s)) => Cow::Borrowed(s.as_str()),
        other => Cow::Owned(render(other)),
    };
    Some(Entry {
        ts_ns,
        line,
        metadata,
    })
}

fn push_nonempty(out: &mut Vec<(String, String)>, name: &str, value: &str) {
    if !value.is_empty() {
        out.push((name.to_owned(), value.to_owned()));
    }
}

fn push_nonzero(out: &mut Vec<(String, String)>, name: &str, value: u64) {
    if value != 0 {
        out.push((name.to_owned(), value.to_string()));
    }
}

/// Appends attributes as metadata pairs.
fn attributes(kvs: &[KeyValue], out: &mut Vec<(String, String)>) {
    for kv in kvs {
        flatten(&kv.key, kv.value.as_ref(), "", out);
    }
}

/// Appends the pairs of one attribute: a map value becomes one pair per key, named
/// `<key>_<inner key>` (recursively), any other value one pair with the value as text.
/// An attribute with an empty key is left out: no label name can stand for it.
fn flatten(key: &str, value: Option<&AnyValue>, prefix: &str, out: &mut Vec<(String, String)>) {
    if key.is_empty() {
        return;
    }
    let name = if prefix.is_empty() {
        label_name(key)
    } else {
        label_name(&format!("{prefix}_{key}"))
    };
    match value.and_then(|v| v.value.as_ref()) {
        Some(Value::KvlistValue(kvs)) => {
            for kv in &kvs.values {
                flatten(&kv.key, kv.value.as_ref(), &name, out);
            }
        }
        other => out.push((name, render(other))),
    }
}

/// An attribute key as a label name, as Loki (Prometheus' OTLP translation) makes it: every
/// character other than an ASCII letter, digit or `_` becomes `_`; a name that then starts
/// with a digit gets `key_` before it, and one that starts with a single `_` gets `key`.
pub fn label_name(key: &str) -> String {
    let name: String = key
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        format!("key_{name}")
    } else if name.starts_with('_') && !name.starts_with("__") {
        format!("key{name}")
    } else {
        name
    }
}

/// A value as the text Loki stores for it (pdata's `AsString`): a string as it is, `true`/
/// `false`, an integer in decimal, a double as JavaScript prints it, bytes in standard
/// base64, a list or map as JSON (map keys sorted), an unset value as the empty string.
pub fn render(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::StringValueStrindex(_)) => String::new(),
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::BoolValue(b)) => b.to_string(),
        Some(Value::IntValue(i)) => i.to_string(),
        Some(Value::DoubleValue(d)) => double(*d),
        Some(Value::BytesValue(b)) => base64::engine::general_purpose::STANDARD.encode(b),
        Some(v @ (Value::ArrayValue(_) | Value::KvlistValue(_))) => {
            let mut out = String::new();
            json_value(Some(v), &mut out);
            out
        }
    }
}

/// A double as ECMAScript's Number::toString (and Go's encoding/json) prints it: the
/// shortest text that reads back the same, in exponent form below 1e-6 and from 1e21 on.
/// NaN and the infinities, which JSON has no number for, are OTLP/JSON's strings for them.
fn double(d: f64) -> String {
    if d.is_nan() {
        return "NaN".to_owned();
    }
    if d.is_infinite() {
        return if d > 0.0 { "Infinity" } else { "-Infinity" }.to_owned();
    }
    let abs = d.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        // Rust writes `1e21` and `1.5e-7`; ECMAScript `1e+21` and `1.5e-7`.
        let s = format!("{d:e}");
        match s.split_once('e') {
            Some((mantissa, exp)) if !exp.starts_with('-') => format!("{mantissa}e+{exp}"),
            _ => s,
        }
    } else {
        d.to_string()
    }
}

/// Appends a value as JSON: the typed value (numbers as numbers, bytes as a base64 string,
/// unset as `null`), a map as an object with its keys sorted, the last of equal keys kept.
fn json_value(value: Option<&Value>, out: &mut String) {
    match value {
        None | Some(Value::StringValueStrindex(_)) => out.push_str("null"),
        Some(Value::StringValue(s)) => json_string(s, out),
        Some(Value::BoolValue(b)) => out.push_str(if *b { "true" } else { "false" }),
        Some(Value::IntValue(i)) => out.push_str(&i.to_string()),
        Some(Value::DoubleValue(d)) if d.is_finite() => out.push_str(&double(*d)),
        Some(Value::DoubleValue(_)) => out.push_str("null"),
        Some(Value::BytesValue(b)) => {
            json_string(&base64::engine::general_purpose::STANDARD.encode(b), out)
        }
        Some(Value::ArrayValue(a)) => {
            out.push('[');
            for (i, v) in a.values.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                json_value(v.value.as_ref(), out);
            }
            out.push(']');
        }
        Some(Value::KvlistValue(kvs)) => {
            let sorted: BTreeMap<&str, Option<&Value>> = kvs
                .values
                .iter()
                .map(|kv| {
                    (
                        kv.key.as_str(),
                        kv.value.as_ref().and_then(|v| v.value.as_ref()),
                    )
                })
                .collect();
            out.push('{');
            for (i, (k, v)) in sorted.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                json_string(k, out);
                out.push(':');
                json_value(v, out);
            }
            out.push('}');
        }
    }
}

fn json_string(s: &str, out: &mut String) {
    // Serialising a `str` to a `String` cannot fail.
    out.push_str(&serde_json::to_string(s).unwrap_or_default());
}

#[cfg(test)]
mod tests;
