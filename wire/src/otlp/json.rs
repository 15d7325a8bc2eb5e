//! OTLP's JSON encoding of an `ExportLogsServiceRequest`, read into opentelemetry-proto's
//! prost messages: protobuf's JSON mapping with OTLP's deviations. Field names in
//! lowerCamelCase; every field optional (an absent field, and for messages `null`, is its
//! default); unknown fields ignored; 64-bit integers as numbers or decimal strings (32-bit
//! ones too, as protobuf's mapping accepts); `traceId` and `spanId` in hex, either case;
//! enums as integers; `bytesValue` in base64 (standard or URL-safe, padded or not);
//! `doubleValue` also `"NaN"`, `"Infinity"`, `"-Infinity"`.
//!
//! The mirror types below hold exactly what the mapping reads and become the prost messages
//! by moving their fields, so the JSON and protobuf encodings reach [`super::to_push`] alike.
//! Errors say where in the body (line and column) and what was expected, never the content.

use std::fmt;
use std::marker::PhantomData;
use std::str::FromStr;

use base64::Engine as _;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;

use super::proto::common::any_value::Value;
use super::proto::logs::ExportLogsServiceRequest;
use super::proto::{common, logs, resource};

use crate::codec::json_error;
use crate::error::CodecError;

/// Parses a request body (the whole body: a value, then only whitespace).
pub fn parse(body: &[u8]) -> Result<ExportLogsServiceRequest, CodecError> {
    let req: Request = serde_json::from_slice(body).map_err(json_error)?;
    Ok(req.into())
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct Request {
    resource_logs: Vec<ResourceLogs>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct ResourceLogs {
    resource: Option<Resource>,
    scope_logs: Vec<ScopeLogs>,
    schema_url: String,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct Resource {
    attributes: Vec<KeyValue>,
    #[serde(deserialize_with = "number")]
    dropped_attributes_count: u32,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct ScopeLogs {
    scope: Option<Scope>,
    log_records: Vec<LogRecord>,
    schema_url: String,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct Scope {
    name: String,
    version: String,
    attributes: Vec<KeyValue>,
    #[serde(deserialize_with = "number")]
    dropped_attributes_count: u32,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct LogRecord {
    #[serde(deserialize_with = "number")]
    time_unix_nano: u64,
    #[serde(deserialize_with = "number")]
    observed_time_unix_nano: u64,
    #[serde(deserialize_with = "number")]
    severity_number: i32,
    severity_text: String,
    body: Option<AnyValue>,
    attributes: Vec<KeyValue>,
    #[serde(deserialize_with = "number")]
    dropped_attributes_count: u32,
    #[serde(deserialize_with = "number")]
    flags: u32,
    #[serde(deserialize_with = "hex_id")]
    trace_id: Vec<u8>,
    #[serde(deserialize_with = "hex_id")]
    span_id: Vec<u8>,
    event_name: String,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct KeyValue {
    key: String,
    value: Option<AnyValue>,
}

/// `{"values": [...]}`, the body of both `arrayValue` and `kvlistValue`.
#[derive(Deserialize)]
#[serde(bound(deserialize = "T: Deserialize<'de>"))]
struct Values<T> {
    #[serde(default = "Vec::new")]
    values: Vec<T>,
}

/// An `AnyValue`: an object with at most one of the value fields (`{}` is unset). Should a
/// body carry several, the last wins, as protobuf's oneof does.
#[derive(Default)]
struct AnyValue(Option<Value>);

impl<'de> Deserialize<'de> for AnyValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(AnyValueVisitor)
    }
}

struct AnyValueVisitor;

impl<'de> Visitor<'de> for AnyValueVisitor {
    type Value = AnyValue;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an AnyValue object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<AnyValue, A::Error> {
        let mut value = None;
        while let Some(key) = map.next_key::<Text>()? {
            value = match key.0.as_ref() {
                "stringValue" => Some(Value::StringValue(map.next_value()?)),
                "boolValue" => Some(Value::BoolValue(map.next_value()?)),
                "intValue" => Some(Value::IntValue(map.next_value::<Number<i64>>()?.0)),
                "doubleValue" => Some(Value::DoubleValue(map.next_value::<Double>()?.0)),
                "bytesValue" => Some(Value::BytesValue(map.next_value::<Base64>()?.0)),
                "arrayValue" => {
                    let a: Values<AnyValue> = map.next_value()?;
                    Some(Value::ArrayValue(common::ArrayValue {
                        values: a.values.into_iter().map(Into::into).collect(),
                    }))
                }
                "kvlistValue" => {
                    let kvs: Values<KeyValue> = map.next_value()?;
                    Some(Value::KvlistValue(common::KeyValueList {
                        values: kvs.values.into_iter().map(Into::into).collect(),
                    }))
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                    value
                }
            };
        }
        Ok(AnyValue(value))
    }
}

/// A string (a field name, an id, base64), borrowed where the JSON has no escapes.
struct Text<'de>(std::borrow::Cow<'de, str>);

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(std::borrow::Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Text<'de>, E> {
                Ok(Text(std::borrow::Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
}

/// An integer given as a JSON number or a decimal string.
struct Number<T>(T);

impl<'de, T: TryFrom<u64> + TryFrom<i64> + FromStr> Deserialize<'de> for Number<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<T: TryFrom<u64> + TryFrom<i64> + FromStr> Visitor<'_> for V<T> {
            type Value = Number<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an integer (a number or a decimal string) in range")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Number<T>, E> {
                T::try_from(v)
                    .map(Number)
                    .map_err(|_| E::custom("integer out of range"))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Number<T>, E> {
                T::try_from(v)
                    .map(Number)
                    .map_err(|_| E::custom("integer out of range"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Number<T>, E> {
                v.parse()
                    .map(Number)
                    .map_err(|_| E::custom("expected a decimal integer in range"))
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

/// `deserialize_with` for the integer fields.
fn number<'de, D: Deserializer<'de>, T>(d: D) -> Result<T, D::Error>
where
    T: TryFrom<u64> + TryFrom<i64> + FromStr,
{
    Number::<T>::deserialize(d).map(|n| n.0)
}

/// A double: a JSON number, or one of the strings protobuf's JSON mapping uses for what JSON
/// has no number for.
struct Double(f64);

impl<'de> Deserialize<'de> for Double {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Double;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number, \"NaN\", \"Infinity\" or \"-Infinity\"")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Double, E> {
                Ok(Double(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Double, E> {
                Ok(Double(v as f64))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Double, E> {
                Ok(Double(v as f64))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Double, E> {
                match v {
                    "NaN" => Ok(Double(f64::NAN)),
                    "Infinity" => Ok(Double(f64::INFINITY)),
                    "-Infinity" => Ok(Double(f64::NEG_INFINITY)),
                    _ => v
                        .parse()
                        .map(Double)
                        .map_err(|_| E::custom("expected a number")),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// Bytes in base64, standard or URL-safe alphabet, padded or not.
struct Base64(Vec<u8>);

impl<'de> Deserialize<'de> for Base64 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use base64::engine::{general_purpose, DecodePaddingMode, GeneralPurpose};
        const INDIFFERENT: general_purpose::GeneralPurposeConfig =
            general_purpose::GeneralPurposeConfig::new()
                .with_decode_padding_mode(DecodePaddingMode::Indifferent);
        const STANDARD: GeneralPurpose =
            GeneralPurpose::new(&base64::alphabet::STANDARD, INDIFFERENT);
        const URL_SAFE: GeneralPurpose =
            GeneralPurpose::new(&base64::alphabet::URL_SAFE, INDIFFERENT);
        let text = Text::deserialize(d)?.0;
        STANDARD
            .decode(text.as_bytes())
            .or_else(|_| URL_SAFE.decode(text.as_bytes()))
            .map(Base64)
            .map_err(|_| de::Error::custom("bytesValue is not base64"))
    }
}

/// `deserialize_with` for `traceId` and `spanId`: hex, either case; `""` is unset.
fn hex_id<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    let text = Text::deserialize(d)?.0;
    hex::decode(text.as_bytes()).map_err(|_| de::Error::custom("trace and span ids must be hex"))
}

impl From<Request> for ExportLogsServiceRequest {
    fn from(r: Request) -> Self {
        ExportLogsServiceRequest {
            resource_logs: r.resource_logs.into_iter().map(Into::into).collect(),
        }
    }
}

impl From<ResourceLogs> for logs::ResourceLogs {
    fn from(r: ResourceLogs) -> Self {
        logs::ResourceLogs {
            resource: r.resource.map(|r| resource::Resource {
                attributes: r.attributes.into_iter().map(Into::into).collect(),
                dropped_attributes_count: r.dropped_attributes_count,
                ..Default::default()
            }),
            scope_logs: r.scope_logs.into_iter().map(Into::into).collect(),
            schema_url: r.schema_url,
        }
    }
}

impl From<ScopeLogs> for logs::ScopeLogs {
    fn from(s: ScopeLogs) -> Self {
        logs::ScopeLogs {
            scope: s.scope.map(|s| common::InstrumentationScope {
                name: s.name,
                version: s.version,
                attributes: s.attributes.into_iter().map(Into::into).collect(),
                dropped_attributes_count: s.dropped_attributes_count,
            }),
            log_records: s.log_records.into_iter().map(Into::into).collect(),
            schema_url: s.schema_url,
        }
    }
}

impl From<LogRecord> for logs::LogRecord {
    fn from(r: LogRecord) -> Self {
        logs::LogRecord {
            time_unix_nano: r.time_unix_nano,
            observed_time_unix_nano: r.observed_time_unix_nano,
            severity_number: r.severity_number,
            severity_text: r.severity_text,
            body: r.body.map(Into::into),
            attributes: r.attributes.into_iter().map(Into::into).collect(),
            dropped_attributes_count: r.dropped_attributes_count,
            flags: r.flags,
            trace_id: r.trace_id,
            span_id: r.span_id,
            event_name: r.event_name,
        }
    }
}

impl From<KeyValue> for common::KeyValue {
    fn from(kv: KeyValue) -> Self {
        common::KeyValue {
            key: kv.key,
            value: kv.value.map(Into::into),
            ..Default::default()
        }
    }
}

impl From<AnyValue> for common::AnyValue {
    fn from(v: AnyValue) -> Self {
        common::AnyValue { value: v.0 }
    }
}
