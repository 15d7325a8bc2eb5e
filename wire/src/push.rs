//! The Grafana Loki push body: `{"streams":[{"stream":{labels},"values":[["<ns>","line"],…]}]}`.
//!
//! Timestamps travel as decimal strings of Unix epoch nanoseconds (Loki's rule). A value may
//! carry a third element (Loki's structured metadata); it is accepted and ignored.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, IgnoredAny, SeqAccess, Visitor};
use serde::ser::SerializeTuple;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::codec::CodecError;
use crate::limits;

/// A whole push request. Lines borrow from the JSON they were parsed from where they can
/// (no escapes), so the aggregator's ingest does not allocate a `String` per line; requests
/// built in memory (the agent) own theirs (`PushRequest<'static>`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushRequest<'a> {
    #[serde(borrow)]
    pub streams: Vec<PushStream<'a>>,
}

/// One stream: a label set and its entries.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushStream<'a> {
    pub stream: BTreeMap<String, String>,
    #[serde(borrow)]
    pub values: Vec<Entry<'a>>,
}

/// One record: timestamp in Unix epoch nanoseconds and the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry<'a> {
    pub ts_ns: i64,
    pub line: Cow<'a, str>,
}

impl Entry<'static> {
    pub fn new(ts_ns: i64, line: impl Into<String>) -> Self {
        Entry {
            ts_ns,
            line: Cow::Owned(line.into()),
        }
    }
}

impl Entry<'_> {
    /// The line.
    pub fn line(&self) -> &str {
        &self.line
    }

    /// The entry with its line copied if it was borrowed.
    pub fn into_owned(self) -> Entry<'static> {
        Entry {
            ts_ns: self.ts_ns,
            line: Cow::Owned(self.line.into_owned()),
        }
    }
}

/// `deserialize_with` for entries that must outlive the input they are parsed from (a
/// response body read into a temporary buffer).
pub fn owned_entries<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Entry<'static>>, D::Error> {
    struct Owned(Entry<'static>);
    impl<'de> Deserialize<'de> for Owned {
        fn deserialize<D2: Deserializer<'de>>(d: D2) -> Result<Self, D2::Error> {
            Entry::deserialize(d).map(|e| Owned(e.into_owned()))
        }
    }
    Ok(Vec::<Owned>::deserialize(d)?
        .into_iter()
        .map(|o| o.0)
        .collect())
}

impl Serialize for Entry<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut t = s.serialize_tuple(2)?;
        t.serialize_element(&self.ts_ns.to_string())?;
        t.serialize_element(&*self.line)?;
        t.end()
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Entry<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct EntryVisitor;
        impl<'de> Visitor<'de> for EntryVisitor {
            type Value = Entry<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(r#"an entry ["<unix epoch nanoseconds>", "<line>"]"#)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Entry<'de>, A::Error> {
                let ts: Cow<'de, str> = seq
                    .next_element::<CowStr<'de>>()?
                    .ok_or_else(|| de::Error::invalid_length(0, &self))?
                    .0;
                let ts_ns = parse_ts(&ts).ok_or_else(|| {
                    de::Error::custom(
                        "timestamp must be a string of decimal Unix epoch nanoseconds",
                    )
                })?;
                let line = seq
                    .next_element::<CowStr<'de>>()?
                    .ok_or_else(|| de::Error::invalid_length(1, &self))?
                    .0;
                // Loki's optional structured metadata: accepted, not stored.
                let _ = seq.next_element::<IgnoredAny>()?;
                if seq.next_element::<IgnoredAny>()?.is_some() {
                    return Err(de::Error::invalid_length(4, &self));
                }
                Ok(Entry { ts_ns, line })
            }
        }
        d.deserialize_seq(EntryVisitor)
    }
}

/// Borrows a string (timestamp, line) when the JSON allows it, so parsing does not allocate.
struct CowStr<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for CowStr<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = CowStr<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
}

/// Parses a Loki timestamp: 1–19 ASCII digits, non-negative, fits in i64. One pass: 19
/// digits are at most 9,999,999,999,999,999,999, which a `u64` holds without overflow.
fn parse_ts(s: &str) -> Option<i64> {
    if s.is_empty() || s.len() > 19 {
        return None;
    }
    let mut v = 0u64;
    for b in s.bytes() {
        let digit = b.wrapping_sub(b'0');
        if digit > 9 {
            return None;
        }
        v = v * 10 + u64::from(digit);
    }
    i64::try_from(v).ok()
}

/// Whether `name` is a valid Loki/Prometheus label name: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn valid_label_name(name: &str) -> bool {
    let mut b = name.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

impl PushRequest<'_> {
    /// Number of entries over all streams.
    pub fn records(&self) -> usize {
        self.streams.iter().map(|s| s.values.len()).sum()
    }

    /// Sum of the line lengths in bytes (the "raw bytes" of a batch).
    pub fn raw_bytes(&self) -> usize {
        self.streams
            .iter()
            .flat_map(|s| s.values.iter())
            .map(|e| e.line.len())
            .sum()
    }

    /// Checks the request against the wire limits. Errors name the stream and entry index
    /// and the limit, never the offending content.
    pub fn validate(&self) -> Result<(), CodecError> {
        if self.streams.len() > limits::MAX_STREAMS_PER_PUSH {
            return Err(CodecError::Invalid(format!(
                "{} streams in one push; the limit is {}",
                self.streams.len(),
                limits::MAX_STREAMS_PER_PUSH
            )));
        }
        for (si, s) in self.streams.iter().enumerate() {
            if s.stream.len() > limits::MAX_LABELS_PER_STREAM {
                return Err(CodecError::Invalid(format!(
                    "stream {si} has {} labels; the limit is {}",
                    s.stream.len(),
                    limits::MAX_LABELS_PER_STREAM
                )));
            }
            for (k, v) in &s.stream {
                if !valid_label_name(k) || k.len() > limits::MAX_LABEL_NAME_BYTES {
                    return Err(CodecError::Invalid(format!(
                        "stream {si} has an invalid label name (must match [a-zA-Z_][a-zA-Z0-9_]*, at most {} bytes)",
                        limits::MAX_LABEL_NAME_BYTES
                    )));
                }
                if v.len() > limits::MAX_LABEL_VALUE_BYTES {
                    return Err(CodecError::Invalid(format!(
                        "stream {si} label {k:?} value is {} bytes; the limit is {}",
                        v.len(),
                        limits::MAX_LABEL_VALUE_BYTES
                    )));
                }
            }
            for (ei, e) in s.values.iter().enumerate() {
                if e.line.len() > limits::MAX_LINE_BYTES {
                    return Err(CodecError::LineTooLong {
                        stream: si,
                        entry: ei,
                        len: e.line.len(),
                        limit: limits::MAX_LINE_BYTES,
                    });
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_serialises_as_loki_pair() {
        let e = Entry::new(1764151200123000000, "hello");
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"["1764151200123000000","hello"]"#
        );
    }

    #[test]
    fn entry_accepts_structured_metadata_and_rejects_bad_timestamps() {
        let e: Entry = serde_json::from_str(r#"["5","x",{"trace_id":"abc"}]"#).unwrap();
        assert_eq!(e, Entry::new(5, "x"));
        for (ts, want) in [("0", 0), ("0009", 9), ("9223372036854775807", i64::MAX)] {
            let json = format!(r#"["{ts}","x"]"#);
            let e: Entry = serde_json::from_str(&json).unwrap();
            assert_eq!(e.ts_ns, want, "{ts}");
        }
        for bad in [
            r#"[5,"x"]"#,
            r#"["-5","x"]"#,
            r#"["1.5","x"]"#,
            r#"["","x"]"#,
            r#"["99999999999999999999","x"]"#,
            r#"["9223372036854775808","x"]"#,
            r#"["+5","x"]"#,
            r#"["5 ","x"]"#,
            r#"["/","x"]"#,
            r#"[":","x"]"#,
            r#"["5"]"#,
            r#"["5","x",{},1]"#,
        ] {
            assert!(serde_json::from_str::<Entry>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn label_names() {
        assert!(valid_label_name("team"));
        assert!(valid_label_name("_x9"));
        assert!(!valid_label_name("9x"));
        assert!(!valid_label_name("a-b"));
        assert!(!valid_label_name(""));
    }

    #[test]
    fn validate_names_the_limit() {
        let mut r = PushRequest::default();
        r.streams.push(PushStream {
            stream: [("bad-name".to_owned(), "v".to_owned())].into(),
            values: vec![],
        });
        let err = r.validate().unwrap_err().to_string();
        assert!(err.contains("invalid label name"), "{err}");

        let mut r = PushRequest::default();
        r.streams.push(PushStream {
            stream: BTreeMap::new(),
            values: vec![Entry::new(1, "x".repeat(limits::MAX_LINE_BYTES + 1))],
        });
        let err = r.validate().unwrap_err().to_string();
        assert!(err.contains("stream 0 entry 0"), "{err}");
    }
}
