//! The Grafana Loki push body: `{"streams":[{"stream":{labels},"values":[["<ns>","line"],…]}]}`.
//!
//! Timestamps travel as decimal strings of Unix epoch nanoseconds (Loki's rule). A value may
//! carry a third element, Loki's structured metadata: an object of string values,
//! `["<ns>","line",{"trace_id":"abc"}]`, kept per entry in [`Entry::metadata`].
//!
//! Lines borrow from the JSON unless they contain escapes. Those are kept either in a `String`
//! each (the derived `Deserialize`, for requests that must stand alone) or, for the
//! aggregator's ingest, in one buffer per push (`InBuffer`, reached through
//! `codec::parse_push_in`), whose visitors read exactly what the derived ones read.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, SeqAccess, Visitor};
use serde::ser::SerializeTuple;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::CodecError;
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

/// One record: timestamp in Unix epoch nanoseconds, the line, and its structured metadata
/// (name/value pairs in the order they arrived; usually none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry<'a> {
    pub ts_ns: i64,
    pub line: Cow<'a, str>,
    pub metadata: Vec<(String, String)>,
}

impl Entry<'static> {
    pub fn new(ts_ns: i64, line: impl Into<String>) -> Self {
        Entry {
            ts_ns,
            line: Cow::Owned(line.into()),
            metadata: Vec::new(),
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
            metadata: self.metadata,
        }
    }

    /// The entry with structured metadata `pairs`.
    pub fn with_metadata<K: Into<String>, V: Into<String>>(
        mut self,
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        self.metadata = pairs
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        self
    }

    /// Bytes of the metadata's names and values.
    pub fn metadata_bytes(&self) -> usize {
        self.metadata.iter().map(|(k, v)| k.len() + v.len()).sum()
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
        let with_metadata = !self.metadata.is_empty();
        let mut t = s.serialize_tuple(if with_metadata { 3 } else { 2 })?;
        t.serialize_element(&self.ts_ns.to_string())?;
        t.serialize_element(&*self.line)?;
        if with_metadata {
            t.serialize_element(&MetadataObject(&self.metadata))?;
        }
        t.end()
    }
}

/// Structured metadata as the JSON object Loki writes: `{"name":"value",…}`.
pub struct MetadataObject<'m>(pub &'m [(String, String)]);

impl Serialize for MetadataObject<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(k, v)| (k, v)))
    }
}

/// Reads the metadata object of an entry, keeping the order of its pairs.
struct MetadataSeed;

impl<'de> DeserializeSeed<'de> for MetadataSeed {
    type Value = Vec<(String, String)>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for MetadataSeed {
    type Value = Vec<(String, String)>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("structured metadata: an object of string values")
    }
    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some((k, v)) = map.next_entry::<String, String>()? {
            if out.len() == limits::MAX_METADATA_PAIRS {
                return Err(de::Error::custom(format_args!(
                    "more than {} structured metadata pairs in one entry",
                    limits::MAX_METADATA_PAIRS
                )));
            }
            out.push((k, v));
        }
        Ok(out)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Entry<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        EntrySeed(OwnLines).deserialize(d)
    }
}

/// What becomes of a line that serde_json had to unescape: it hands such a line over in a
/// scratch buffer that lives only for the call, so the line must be copied somewhere.
trait Unescaped<'de> {
    fn keep(&mut self, line: &str) -> Cow<'de, str>;
}

/// Each unescaped line in a `String` of its own.
struct OwnLines;

impl<'de> Unescaped<'de> for OwnLines {
    fn keep(&mut self, line: &str) -> Cow<'de, str> {
        Cow::Owned(line.to_owned())
    }
}

impl<'de, U: Unescaped<'de> + ?Sized> Unescaped<'de> for &mut U {
    fn keep(&mut self, line: &str) -> Cow<'de, str> {
        (**self).keep(line)
    }
}

/// Deserialises one entry, handing the lines with escapes to `U`.
struct EntrySeed<U>(U);

impl<'de, U: Unescaped<'de>> DeserializeSeed<'de> for EntrySeed<U> {
    type Value = Entry<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Entry<'de>, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de, U: Unescaped<'de>> Visitor<'de> for EntrySeed<U> {
    type Value = Entry<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(r#"an entry ["<unix epoch nanoseconds>", "<line>"]"#)
    }
    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<Entry<'de>, A::Error> {
        let ts = seq
            .next_element_seed(LineSeed(OwnLines))?
            .ok_or_else(|| de::Error::invalid_length(0, &self))?;
        let ts_ns = parse_ts(&ts).ok_or_else(|| {
            de::Error::custom("timestamp must be a string of decimal Unix epoch nanoseconds")
        })?;
        let line = seq
            .next_element_seed(LineSeed(&mut self.0))?
            .ok_or_else(|| de::Error::invalid_length(1, &self))?;
        // Loki's optional structured metadata.
        let metadata = seq.next_element_seed(MetadataSeed)?.unwrap_or_default();
        if seq.next_element::<IgnoredAny>()?.is_some() {
            return Err(de::Error::invalid_length(4, &self));
        }
        Ok(Entry {
            ts_ns,
            line,
            metadata,
        })
    }
}

/// A string (a line, a timestamp): borrowed from the JSON when it has no escapes, else given
/// to `U`.
struct LineSeed<U>(U);

impl<'de, U: Unescaped<'de>> DeserializeSeed<'de> for LineSeed<U> {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Cow<'de, str>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de, U: Unescaped<'de>> Visitor<'de> for LineSeed<U> {
    type Value = Cow<'de, str>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }
    fn visit_str<E: de::Error>(mut self, v: &str) -> Result<Self::Value, E> {
        Ok(self.0.keep(v))
    }
}

/// The lines with escapes of one push, unescaped one after the other into one buffer instead
/// of one `String` each (see [`crate::codec::parse_push_in`]). While the body is parsed the
/// buffer grows, so nothing can borrow from it yet: each such line is first a placeholder,
/// and its place in the request and its span of the buffer are recorded to be filled in
/// afterwards ([`InBuffer::fill`]).
///
/// The buffer is the caller's `String`'s allocation, taken as bytes while the body is parsed
/// (so the canonical parser can copy whole blocks and cut them back) and checked as UTF-8
/// once, when it is handed back in [`InBuffer::fill`]. After an error the caller's `String`
/// is left empty, without the allocation.
pub(crate) struct InBuffer<'b> {
    text: &'b mut String,
    buf: Vec<u8>,
    /// Reserved at the first unescaped line, so the buffer never moves: unescaping never
    /// lengthens a string, so the rest of the body bounds what can follow.
    reserve: usize,
    /// Stream and entry index of the entry being parsed.
    at: (usize, usize),
    spans: Vec<Span>,
}

/// Where an unescaped line belongs and where its text is.
struct Span {
    stream: usize,
    entry: usize,
    text: std::ops::Range<usize>,
}

impl<'de> Unescaped<'de> for InBuffer<'_> {
    fn keep(&mut self, line: &str) -> Cow<'de, str> {
        let start = self.buf().len();
        self.buf.extend_from_slice(line.as_bytes());
        self.record(self.at, start);
        Cow::Borrowed("")
    }
}

impl<'b> InBuffer<'b> {
    /// A buffer for the escaped lines of a body of `body_len` bytes; `text` is cleared.
    pub(crate) fn new(text: &'b mut String, body_len: usize) -> InBuffer<'b> {
        let mut buf = std::mem::take(text).into_bytes();
        buf.clear();
        InBuffer {
            text,
            buf,
            reserve: body_len,
            at: (0, 0),
            spans: Vec::new(),
        }
    }

    /// Forgets the lines kept so far, to parse the body again from the start.
    pub(crate) fn reset(&mut self) {
        self.buf.clear();
        self.spans.clear();
        self.at = (0, 0);
    }

    /// The buffer, to append an unescaped line to (as UTF-8); reserved at first use.
    pub(crate) fn buf(&mut self) -> &mut Vec<u8> {
        if self.buf.capacity() == 0 {
            self.buf.reserve(self.reserve);
        }
        &mut self.buf
    }

    /// Records that the buffer from `start` to its end is the line of entry `at.1` of
    /// stream `at.0`, whose place in the request holds a placeholder.
    pub(crate) fn record(&mut self, at: (usize, usize), start: usize) {
        self.spans.push(Span {
            stream: at.0,
            entry: at.1,
            text: start..self.buf.len(),
        });
    }

    /// Deserialises a push request, the lines with escapes into this buffer.
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        &mut self,
        d: D,
    ) -> Result<PushRequest<'de>, D::Error> {
        d.deserialize_struct("PushRequest", &["streams"], RequestVisitor(self))
    }

    /// Hands the buffer back to the caller's `String` and points each placeholder line of
    /// `req` at its text; afterwards the buffer is only read. Fails only if the buffer is
    /// not UTF-8 or a span does not fit the request (a bug, not bad input).
    pub(crate) fn fill<'a>(self, req: &mut PushRequest<'a>) -> Result<(), CodecError>
    where
        'b: 'a,
    {
        let lost = |what: &str| CodecError::Invalid(format!("internal error: {what}"));
        *self.text =
            String::from_utf8(self.buf).map_err(|_| lost("unescaped lines are not UTF-8"))?;
        let text: &'a String = self.text;
        for span in self.spans {
            let line = req
                .streams
                .get_mut(span.stream)
                .and_then(|s| s.values.get_mut(span.entry));
            match (line, text.get(span.text)) {
                (Some(e), Some(t)) => e.line = Cow::Borrowed(t),
                _ => return Err(lost("an unescaped line lost its place")),
            }
        }
        Ok(())
    }
}

/// The fields of [`PushRequest`] and [`PushStream`]: what `#[derive(Deserialize)]` accepts,
/// unknown fields ignored.
#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "lowercase")]
enum Field {
    Streams,
    Stream,
    Values,
    #[serde(other)]
    Other,
}

/// [`PushRequest`] as `#[derive(Deserialize)]` reads it (a map, or a sequence of its one
/// field), with the same messages; the lines go through an [`InBuffer`].
struct RequestVisitor<'s, 'b>(&'s mut InBuffer<'b>);

impl<'de> Visitor<'de> for RequestVisitor<'_, '_> {
    type Value = PushRequest<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("struct PushRequest")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let streams = seq
            .next_element_seed(StreamsSeed::new(self.0))?
            .ok_or_else(|| de::Error::invalid_length(0, &"struct PushRequest with 1 element"))?;
        Ok(PushRequest { streams })
    }
    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut streams = None;
        while let Some(key) = map.next_key::<Field>()? {
            match key {
                Field::Streams if streams.is_some() => {
                    return Err(de::Error::duplicate_field("streams"))
                }
                Field::Streams => {
                    streams = Some(map.next_value_seed(StreamsSeed::new(&mut *self.0))?)
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let streams = streams.ok_or_else(|| de::Error::missing_field("streams"))?;
        Ok(PushRequest { streams })
    }
}

/// A JSON array whose elements are read by `E`, which knows its index.
struct ArraySeed<'s, 'b, E>(&'s mut InBuffer<'b>, std::marker::PhantomData<E>);

impl<'s, 'b, E> ArraySeed<'s, 'b, E> {
    fn new(lines: &'s mut InBuffer<'b>) -> Self {
        ArraySeed(lines, std::marker::PhantomData)
    }
}

/// Reads the element at `index` of an [`ArraySeed`]'s array, if there is one.
trait Element<'de> {
    type Value;
    fn next<A: SeqAccess<'de>>(
        lines: &mut InBuffer<'_>,
        index: usize,
        seq: &mut A,
    ) -> Result<Option<Self::Value>, A::Error>;
}

impl<'de, E: Element<'de>> DeserializeSeed<'de> for ArraySeed<'_, '_, E> {
    type Value = Vec<E::Value>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de, E: Element<'de>> Visitor<'de> for ArraySeed<'_, '_, E> {
    type Value = Vec<E::Value>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a sequence")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = E::next(self.0, out.len(), &mut seq)? {
            out.push(v);
        }
        Ok(out)
    }
}

/// The `streams` array.
type StreamsSeed<'s, 'b> = ArraySeed<'s, 'b, StreamElement>;
struct StreamElement;

impl<'de> Element<'de> for StreamElement {
    type Value = PushStream<'de>;
    fn next<A: SeqAccess<'de>>(
        lines: &mut InBuffer<'_>,
        index: usize,
        seq: &mut A,
    ) -> Result<Option<PushStream<'de>>, A::Error> {
        lines.at = (index, 0);
        seq.next_element_seed(StreamSeed(lines))
    }
}

/// One [`PushStream`], as `#[derive(Deserialize)]` reads it.
struct StreamSeed<'s, 'b>(&'s mut InBuffer<'b>);

const STREAM_AS_SEQ: &str = "struct PushStream with 2 elements";

impl<'de> DeserializeSeed<'de> for StreamSeed<'_, '_> {
    type Value = PushStream<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_struct("PushStream", &["stream", "values"], self)
    }
}

impl<'de> Visitor<'de> for StreamSeed<'_, '_> {
    type Value = PushStream<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("struct PushStream")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let stream = seq
            .next_element()?
            .ok_or_else(|| de::Error::invalid_length(0, &STREAM_AS_SEQ))?;
        let values = seq
            .next_element_seed(ValuesSeed::new(self.0))?
            .ok_or_else(|| de::Error::invalid_length(1, &STREAM_AS_SEQ))?;
        Ok(PushStream { stream, values })
    }
    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let (mut stream, mut values) = (None, None);
        while let Some(key) = map.next_key::<Field>()? {
            match key {
                Field::Stream if stream.is_some() => {
                    return Err(de::Error::duplicate_field("stream"))
                }
                Field::Stream => stream = Some(map.next_value()?),
                Field::Values if values.is_some() => {
                    return Err(de::Error::duplicate_field("values"))
                }
                Field::Values => values = Some(map.next_value_seed(ValuesSeed::new(&mut *self.0))?),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let stream = stream.ok_or_else(|| de::Error::missing_field("stream"))?;
        let values = values.ok_or_else(|| de::Error::missing_field("values"))?;
        Ok(PushStream { stream, values })
    }
}

/// A stream's `values` array.
type ValuesSeed<'s, 'b> = ArraySeed<'s, 'b, EntryElement>;
struct EntryElement;

impl<'de> Element<'de> for EntryElement {
    type Value = Entry<'de>;
    fn next<A: SeqAccess<'de>>(
        lines: &mut InBuffer<'_>,
        index: usize,
        seq: &mut A,
    ) -> Result<Option<Entry<'de>>, A::Error> {
        lines.at.1 = index;
        seq.next_element_seed(EntrySeed(lines))
    }
}

/// Parses a Loki timestamp: 1–19 ASCII digits, non-negative, fits in i64. One pass, eight
/// digits at a time: 19 digits are at most 9,999,999,999,999,999,999, which a `u64` holds
/// without overflow.
pub(crate) fn parse_ts(s: &str) -> Option<i64> {
    if s.is_empty() || s.len() > 19 {
        return None;
    }
    let mut blocks = s.as_bytes().chunks_exact(8);
    let mut v = 0u64;
    for block in &mut blocks {
        v = v * 100_000_000 + u64::from(eight_digits(block.try_into().ok()?)?);
    }
    for &b in blocks.remainder() {
        let digit = b.wrapping_sub(b'0');
        if digit > 9 {
            return None;
        }
        v = v * 10 + u64::from(digit);
    }
    i64::try_from(v).ok()
}

/// The value of eight ASCII digits, most significant first, in a few word operations
/// instead of eight multiply-adds; `None` if any byte is not a digit.
#[inline(always)]
fn eight_digits(block: &[u8; 8]) -> Option<u32> {
    const HIGH_NIBBLES: u64 = 0xf0f0_f0f0_f0f0_f0f0;
    const ZEROS: u64 = 0x3030_3030_3030_3030;
    let w = u64::from_le_bytes(*block);
    // Every byte 0x30..=0x3f, and still so after adding 6: exactly '0'..='9'. No carry
    // crosses a byte, as no byte exceeds 0x3f + 6.
    if w & HIGH_NIBBLES != ZEROS || (w + 0x0606_0606_0606_0606) & HIGH_NIBBLES != ZEROS {
        return None;
    }
    // Digits d0..d7 with d0 (the most significant) in the lowest byte; combine neighbours
    // into 2-, 4- and 8-digit values, each step within its lane.
    let d = w - ZEROS;
    let d = (d * 10 + (d >> 8)) & 0x00ff_00ff_00ff_00ff;
    let d = (d * 100 + (d >> 16)) & 0x0000_ffff_0000_ffff;
    let d = (d.wrapping_mul(10_000) + (d >> 32)) & 0xffff_ffff;
    Some(d as u32)
}

/// Whether `name` is a valid Loki/Prometheus label name: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn valid_label_name(name: &str) -> bool {
    let mut b = name.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

/// Checks one entry's structured metadata against the limits; the reason names no content.
fn validate_metadata(e: &Entry<'_>) -> Result<(), String> {
    if e.metadata.len() > limits::MAX_METADATA_PAIRS {
        return Err(format!(
            "{} pairs; the limit is {}",
            e.metadata.len(),
            limits::MAX_METADATA_PAIRS
        ));
    }
    if e.metadata_bytes() > limits::MAX_METADATA_BYTES {
        return Err(format!(
            "{} bytes; the limit is {}",
            e.metadata_bytes(),
            limits::MAX_METADATA_BYTES
        ));
    }
    if let Some(i) = e
        .metadata
        .iter()
        .position(|(k, _)| !valid_label_name(k) || k.len() > limits::MAX_LABEL_NAME_BYTES)
    {
        return Err(format!(
            "name {i} is invalid (must match [a-zA-Z_][a-zA-Z0-9_]*, at most {} bytes)",
            limits::MAX_LABEL_NAME_BYTES
        ));
    }
    Ok(())
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
                if !e.metadata.is_empty() {
                    validate_metadata(e).map_err(|reason| {
                        CodecError::Invalid(format!(
                            "stream {si} entry {ei} structured metadata: {reason}"
                        ))
                    })?;
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

    proptest::proptest! {
        /// The word-at-a-time timestamp parse against the digit-by-digit reference, on
        /// digits and on the bytes next to them.
        #[test]
        fn parse_ts_matches_the_reference(
            s in proptest::string::string_regex("[0-9/:]{0,21}|[0-9]{0,21}").unwrap(),
        ) {
            let reference = (1..=19).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit());
            let reference = reference.then(|| s.parse::<i64>().ok()).flatten();
            proptest::prop_assert_eq!(parse_ts(&s), reference);
        }
    }

    #[test]
    fn entry_accepts_structured_metadata_and_rejects_bad_timestamps() {
        let e: Entry = serde_json::from_str(r#"["5","x",{"trace_id":"abc","a":"1"}]"#).unwrap();
        assert_eq!(
            e,
            Entry::new(5, "x").with_metadata([("trace_id", "abc"), ("a", "1")])
        );
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"["5","x",{"trace_id":"abc","a":"1"}]"#
        );
        let e: Entry = serde_json::from_str(r#"["5","x",{}]"#).unwrap();
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
            r#"["5","x",{"a":1}]"#,
            r#"["5","x",["a"]]"#,
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

        for (metadata, want) in [
            (vec![("bad.name", "v")], "name 0 is invalid"),
            (
                vec![("a", "v"); limits::MAX_METADATA_PAIRS + 1],
                "pairs; the limit",
            ),
        ] {
            let mut r = PushRequest::default();
            r.streams.push(PushStream {
                stream: BTreeMap::new(),
                values: vec![Entry::new(1, "x").with_metadata(metadata)],
            });
            let err = r.validate().unwrap_err().to_string();
            assert!(
                err.contains("stream 0 entry 0 structured metadata"),
                "{err}"
            );
            assert!(err.contains(want), "{err}");
        }
        let mut r = PushRequest::default();
        let big = "v".repeat(limits::MAX_METADATA_BYTES);
        r.streams.push(PushStream {
            stream: BTreeMap::new(),
            values: vec![Entry::new(1, "x").with_metadata([("k", big.as_str())])],
        });
        let err = r.validate().unwrap_err().to_string();
        assert!(err.contains("bytes; the limit"), "{err}");
    }
}
