//! The chunk format: a block of entries of one stream, zstd-compressed.
//!
//! Layout before compression, version 1: magic `FJC1`, then per entry a zigzag varint of the
//! timestamp delta from the previous entry, a varint of the line length, and the line bytes.
//! Version 2 (`FJC2`, what the store writes since schema 3) puts a zigzag varint of the
//! entry's *batch sequence* delta (the `receipts.id` of the batch that brought the line) before
//! each entry, so that a chunk merged by the compactor or rewritten by an erasure still knows
//! which batch every line came from; the audit recomputes each batch's digest from it
//! (docs/compliance.md). In a batch's own chunks the delta is 0: one byte per line.
//! Version 3 (`FJC3`) adds each entry's structured metadata after the timestamp: a varint
//! of its length in bytes, then its pairs, each a varint-prefixed name and value ([`Meta`]).
//! A chunk is written as version 3 only when one of its entries has metadata, so stores of
//! plain lines keep version 2, byte for byte.
//! Decoding is bounds-checked throughout: a corrupt chunk is an error, never a panic or a huge
//! allocation.

use fjord_wire::Entry;
use thiserror::Error;

const MAGIC: &[u8; 4] = b"FJC1";
const MAGIC_TAGGED: &[u8; 4] = b"FJC2";
const MAGIC_META: &[u8; 4] = b"FJC3";

/// zstd level for stored chunks. Measured on realistic lines (`benches/store.rs`,
/// docs/benchmarks.md): level 1 compresses a 1 MiB chunk at ~2.3× the speed of level 3 *and*
/// smaller (0.247 vs 0.264 stored/raw), because these lines' redundancy is short-range.
pub const CHUNK_ZSTD_LEVEL: i32 = 1;

/// Log2 of the match-finder hash table for stored chunks, over level 1's 14: a 16 KiB table
/// that stays in L1/L2 while a 1 MiB chunk streams through. With [`CHUNK_ZSTD_MIN_MATCH`],
/// measured on the bench lines: 2.22 instead of 2.43 ms per MiB, 0.248 instead of 0.247
/// stored/raw, decompression unchanged (docs/benchmarks.md, 2026-11-27).
pub const CHUNK_ZSTD_HASH_LOG: u32 = 12;

/// Shortest match the chunk compressor looks for, over level 1's 7.
pub const CHUNK_ZSTD_MIN_MATCH: u32 = 6;

/// Raw bytes (sum of line lengths) at which the ingest path starts a new chunk.
pub const TARGET_CHUNK_RAW_BYTES: usize = 1024 * 1024;

/// Largest decompressed chunk we agree to read back.
pub const MAX_CHUNK_DECODED_BYTES: usize = 64 * 1024 * 1024;

#[derive(Debug, Error)]
pub enum ChunkError {
    #[error("chunk is corrupt: {0}")]
    Corrupt(&'static str),
    #[error("chunk does not decompress: {0}")]
    Zstd(String),
}

/// A chunk ready to store, with its summary columns.
pub struct EncodedChunk {
    pub data: Vec<u8>,
    pub min_ts: i64,
    pub max_ts: i64,
    pub lines: usize,
    pub raw_bytes: usize,
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(buf: &[u8], pos: &mut usize) -> Result<u64, ChunkError> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf
            .get(*pos)
            .ok_or(ChunkError::Corrupt("truncated varint"))?;
        *pos += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(ChunkError::Corrupt("varint too long"))
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

fn varint_len(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

/// One entry's structured metadata in its stored form: name/value pairs, each string a
/// varint of its length and its UTF-8 bytes. The same bytes go into the entry's digest
/// ([`super::digest`]), so the digest of metadata read back from a chunk is the digest of
/// the metadata that arrived. A `Meta` read from a chunk has been checked whole by the walk
/// that produced it, so iterating it cannot fail.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Meta<'a>(&'a [u8]);

impl<'a> Meta<'a> {
    /// No metadata.
    pub const NONE: Meta<'static> = Meta(&[]);

    /// Metadata from bytes that [`Meta::bytes`] gave for an entry of a decoded chunk (kept
    /// to write the entry again), unchecked.
    pub fn stored(bytes: &'a [u8]) -> Meta<'a> {
        Meta(bytes)
    }

    /// Metadata from its stored bytes, checked.
    pub fn from_bytes(bytes: &'a [u8]) -> Result<Meta<'a>, ChunkError> {
        let mut pos = 0;
        while pos < bytes.len() {
            for _ in 0..2 {
                read_str(bytes, &mut pos, "truncated metadata")?;
            }
        }
        Ok(Meta(bytes))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The stored bytes.
    pub fn bytes(&self) -> &'a [u8] {
        self.0
    }

    /// The pairs in stored order.
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        let bytes = self.0;
        let mut pos = 0;
        std::iter::from_fn(move || {
            if pos >= bytes.len() {
                return None;
            }
            // Checked when this `Meta` was made; a failure here ends the iteration.
            let k = read_str(bytes, &mut pos, "").ok()?;
            let v = read_str(bytes, &mut pos, "").ok()?;
            Some((k, v))
        })
    }

    /// The pairs, owned.
    pub fn to_pairs(&self) -> Vec<(String, String)> {
        self.iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }
}

/// Reads one varint-prefixed run of bytes; `what` names it when it is cut short.
fn read_span<'a>(
    buf: &'a [u8],
    pos: &mut usize,
    what: &'static str,
) -> Result<&'a [u8], ChunkError> {
    let len = usize::try_from(get_varint(buf, pos)?)
        .map_err(|_| ChunkError::Corrupt("length overflow"))?;
    let end = pos
        .checked_add(len)
        .ok_or(ChunkError::Corrupt("length overflow"))?;
    let bytes = buf.get(*pos..end).ok_or(ChunkError::Corrupt(what))?;
    *pos = end;
    Ok(bytes)
}

/// Reads one varint-prefixed UTF-8 string.
fn read_str<'a>(buf: &'a [u8], pos: &mut usize, what: &'static str) -> Result<&'a str, ChunkError> {
    std::str::from_utf8(read_span(buf, pos, what)?)
        .map_err(|_| ChunkError::Corrupt("string is not UTF-8"))
}

/// Structured metadata to write: pairs as they arrived, or a [`Meta`] read back.
pub trait MetaSource {
    fn is_empty(&self) -> bool;
    /// Length of the stored form.
    fn encoded_len(&self) -> usize;
    /// Appends the stored form.
    fn write_to(&self, out: &mut Vec<u8>);
}

impl MetaSource for Meta<'_> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    fn encoded_len(&self) -> usize {
        self.0.len()
    }
    fn write_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.0);
    }
}

impl MetaSource for &[(String, String)] {
    fn is_empty(&self) -> bool {
        <[_]>::is_empty(self)
    }
    fn encoded_len(&self) -> usize {
        self.iter()
            .map(|(k, v)| {
                varint_len(k.len() as u64) + k.len() + varint_len(v.len() as u64) + v.len()
            })
            .sum()
    }
    fn write_to(&self, out: &mut Vec<u8>) {
        for (k, v) in self.iter() {
            for s in [k, v] {
                put_varint(out, s.len() as u64);
                out.extend_from_slice(s.as_bytes());
            }
        }
    }
}

/// The stored form of `meta`, for hashing it with its line.
pub fn meta_bytes(meta: &impl MetaSource) -> Vec<u8> {
    let mut out = Vec::with_capacity(meta.encoded_len());
    meta.write_to(&mut out);
    out
}

/// One decoded entry: its batch sequence, timestamp, line and metadata.
#[derive(Debug, Clone, Copy)]
pub struct Rec<'a> {
    pub seq: i64,
    pub ts: i64,
    pub line: &'a str,
    pub meta: Meta<'a>,
}

/// Encodes entries (any order, metadata included) into a compressed chunk that records no
/// batch sequence. `entries` must not be empty.
pub fn encode(entries: &[Entry]) -> Result<EncodedChunk, ChunkError> {
    Encoder::stored()?.encode_inner(
        entries
            .iter()
            .map(|e| (None, e.ts_ns, e.line(), e.metadata.as_slice())),
    )
}

/// Encodes `(timestamp, line)` pairs (any order) into a compressed chunk; at least one.
pub fn encode_iter<'a>(
    entries: impl Iterator<Item = (i64, &'a str)> + Clone,
) -> Result<EncodedChunk, ChunkError> {
    Encoder::stored()?.encode(entries)
}

/// [`encode_iter`] at another zstd level (for the benchmark that chose the level).
pub fn encode_iter_at<'a>(
    entries: impl Iterator<Item = (i64, &'a str)> + Clone,
    level: i32,
) -> Result<EncodedChunk, ChunkError> {
    Encoder::new(level)?.encode(entries)
}

/// A reusable chunk encoder: keeps one zstd context and one buffer, so a busy writer does not
/// allocate and initialise them per chunk.
pub struct Encoder {
    z: zstd::bulk::Compressor<'static>,
    buf: Vec<u8>,
}

impl Encoder {
    /// An encoder at zstd `level`.
    pub fn new(level: i32) -> Result<Encoder, ChunkError> {
        Ok(Encoder {
            z: zstd::bulk::Compressor::new(level).map_err(|e| ChunkError::Zstd(e.to_string()))?,
            buf: Vec::new(),
        })
    }

    /// The encoder the store writes chunks with: [`CHUNK_ZSTD_LEVEL`] with the tuned hash
    /// table and minimum match. The parameters only change how the compressor searches; the
    /// frames are ordinary zstd frames that any decoder reads.
    pub fn stored() -> Result<Encoder, ChunkError> {
        use zstd::zstd_safe::CParameter;
        let mut e = Encoder::new(CHUNK_ZSTD_LEVEL)?;
        for p in [
            CParameter::HashLog(CHUNK_ZSTD_HASH_LOG),
            CParameter::MinMatch(CHUNK_ZSTD_MIN_MATCH),
        ] {
            e.z.set_parameter(p)
                .map_err(|e| ChunkError::Zstd(e.to_string()))?;
        }
        Ok(e)
    }

    /// Encodes `(timestamp, line)` pairs (any order, at least one) into a version-1 chunk,
    /// which records no batch sequence per line.
    pub fn encode<'a>(
        &mut self,
        entries: impl Iterator<Item = (i64, &'a str)> + Clone,
    ) -> Result<EncodedChunk, ChunkError> {
        self.encode_inner(entries.map(|(ts, l)| (None, ts, l, Meta::NONE)))
    }

    /// Encodes `(batch seq, timestamp, line, metadata)` (any order, at least one) into a
    /// chunk that keeps each line's batch sequence: version 3 if any entry has metadata,
    /// else version 2.
    pub fn encode_tagged<'a, M: MetaSource>(
        &mut self,
        entries: impl Iterator<Item = (i64, i64, &'a str, M)> + Clone,
    ) -> Result<EncodedChunk, ChunkError> {
        self.encode_inner(entries.map(|(s, ts, l, m)| (Some(s), ts, l, m)))
    }

    /// Version 1 without sequences; with them, 2 or 3 as [`Encoder::encode_tagged`] says.
    fn encode_inner<'a, M: MetaSource>(
        &mut self,
        entries: impl Iterator<Item = (Option<i64>, i64, &'a str, M)> + Clone,
    ) -> Result<EncodedChunk, ChunkError> {
        let (mut lines, mut raw_bytes, mut meta_bytes, mut tagged) =
            (0usize, 0usize, 0usize, false);
        for (seq, _, l, m) in entries.clone() {
            lines += 1;
            raw_bytes += l.len();
            meta_bytes += m.encoded_len();
            tagged |= seq.is_some();
        }
        let magic = match (tagged || meta_bytes > 0, meta_bytes > 0) {
            (_, true) => MAGIC_META,
            (true, false) => MAGIC_TAGGED,
            (false, false) => MAGIC,
        };
        let with_meta = meta_bytes > 0;
        let buf = &mut self.buf;
        buf.clear();
        buf.reserve(raw_bytes + meta_bytes + lines * 8 + magic.len());
        buf.extend_from_slice(magic);
        let mut prev = 0i64;
        let mut prev_seq = 0i64;
        let (mut min_ts, mut max_ts) = (i64::MAX, i64::MIN);
        for (seq, ts, line, meta) in entries {
            if magic != MAGIC {
                let seq = seq.unwrap_or(0);
                put_varint(buf, zigzag(seq.wrapping_sub(prev_seq)));
                prev_seq = seq;
            }
            put_varint(buf, zigzag(ts.wrapping_sub(prev)));
            prev = ts;
            if with_meta {
                put_varint(buf, meta.encoded_len() as u64);
                meta.write_to(buf);
            }
            put_varint(buf, line.len() as u64);
            buf.extend_from_slice(line.as_bytes());
            min_ts = min_ts.min(ts);
            max_ts = max_ts.max(ts);
        }
        let data = self
            .z
            .compress(buf)
            .map_err(|e| ChunkError::Zstd(e.to_string()))?;
        // Chunks of a busy stream are ~1 MiB raw; do not keep a rare huge buffer around.
        if self.buf.capacity() > 4 * TARGET_CHUNK_RAW_BYTES {
            self.buf = Vec::new();
        }
        Ok(EncodedChunk {
            data,
            min_ts,
            max_ts,
            lines,
            raw_bytes,
        })
    }
}

/// A reusable chunk decoder: one zstd context and one output buffer for a whole scan.
pub struct Decoder {
    z: zstd::bulk::Decompressor<'static>,
    buf: Vec<u8>,
}

impl Decoder {
    /// A new decoder.
    pub fn new() -> Result<Decoder, ChunkError> {
        Ok(Decoder {
            z: zstd::bulk::Decompressor::new().map_err(|e| ChunkError::Zstd(e.to_string()))?,
            buf: Vec::new(),
        })
    }

    /// Decompresses `data` into the decoder's buffer and returns the raw chunk (magic,
    /// varints and lines), for a cheap whole-chunk prefilter before [`Decoder::each`].
    pub fn load(&mut self, data: &[u8]) -> Result<&[u8], ChunkError> {
        // Every chunk we write declares its size; an undeclared or oversized one is corrupt.
        let size = zstd::zstd_safe::get_frame_content_size(data)
            .ok()
            .flatten()
            .ok_or(ChunkError::Corrupt("no content size"))?;
        if size > MAX_CHUNK_DECODED_BYTES as u64 {
            return Err(ChunkError::Corrupt("larger than the chunk limit"));
        }
        self.buf.clear();
        self.buf.reserve(size as usize);
        self.z
            .decompress_to_buffer(data, &mut self.buf)
            .map_err(|e| ChunkError::Zstd(e.to_string()))?;
        match self.buf.get(..4) {
            Some(m)
                if [MAGIC, MAGIC_TAGGED, MAGIC_META]
                    .iter()
                    .any(|x| m == x.as_slice()) =>
            {
                Ok(&self.buf)
            }
            _ => Err(ChunkError::Corrupt("bad magic")),
        }
    }

    /// Calls `f` for each entry of the chunk last [`load`](Decoder::load)ed; a version-1
    /// chunk's lines all get `default_seq` (the chunk row's `seq`) as their batch sequence.
    pub fn each(&self, default_seq: i64, f: impl FnMut(Rec<'_>)) -> Result<(), ChunkError> {
        walk(&self.buf, default_seq, f)
    }

    /// Decodes `data` and calls `f` for each entry in stored order.
    pub fn decode_each(
        &mut self,
        data: &[u8],
        default_seq: i64,
        f: impl FnMut(Rec<'_>),
    ) -> Result<(), ChunkError> {
        self.load(data)?;
        self.each(default_seq, f)
    }
}

/// Decodes a chunk and calls `f` for each entry in stored order; see [`Decoder::each`].
pub fn decode_each(
    data: &[u8],
    default_seq: i64,
    f: impl FnMut(Rec<'_>),
) -> Result<(), ChunkError> {
    Decoder::new()?.decode_each(data, default_seq, f)
}

/// Walks a decompressed chunk (after the magic check).
fn walk(buf: &[u8], default_seq: i64, mut f: impl FnMut(Rec<'_>)) -> Result<(), ChunkError> {
    let magic = buf.get(..4);
    let with_meta = magic == Some(MAGIC_META.as_slice());
    let tagged = with_meta || magic == Some(MAGIC_TAGGED.as_slice());
    let mut pos = 4;
    let mut ts = 0i64;
    let mut seq = if tagged { 0 } else { default_seq };
    while pos < buf.len() {
        if tagged {
            seq = seq.wrapping_add(unzigzag(get_varint(buf, &mut pos)?));
        }
        ts = ts.wrapping_add(unzigzag(get_varint(buf, &mut pos)?));
        let meta = if with_meta {
            Meta::from_bytes(read_span(buf, &mut pos, "truncated metadata")?)?
        } else {
            Meta::NONE
        };
        let bytes = read_span(buf, &mut pos, "truncated line")?;
        let line =
            std::str::from_utf8(bytes).map_err(|_| ChunkError::Corrupt("line is not UTF-8"))?;
        f(Rec {
            seq,
            ts,
            line,
            meta,
        });
    }
    Ok(())
}

/// Decodes a chunk into entries, metadata included.
pub fn decode(data: &[u8]) -> Result<Vec<Entry<'static>>, ChunkError> {
    let mut out = Vec::new();
    decode_each(data, 0, |r| {
        out.push(Entry::new(r.ts, r.line).with_metadata(r.meta.iter()))
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    type Pairs = Vec<(String, String)>;

    fn tagged(c: &EncodedChunk, default_seq: i64) -> Vec<(i64, i64, String, Pairs)> {
        let mut got = Vec::new();
        decode_each(&c.data, default_seq, |r| {
            got.push((r.seq, r.ts, r.line.to_owned(), r.meta.to_pairs()))
        })
        .unwrap();
        got
    }

    #[test]
    fn tagged_chunks_keep_each_lines_batch() {
        let items = [(7i64, 5i64, "a"), (3, 4, "bb"), (7, 9, ""), (12, 1, "ü")];
        let c = Encoder::new(CHUNK_ZSTD_LEVEL)
            .unwrap()
            .encode_tagged(items.iter().map(|&(s, t, l)| (s, t, l, Meta::NONE)))
            .unwrap();
        assert_eq!((c.lines, c.min_ts, c.max_ts, c.raw_bytes), (4, 1, 9, 5));
        let want: Vec<_> = items
            .iter()
            .map(|(s, t, l)| (*s, *t, l.to_string(), vec![]))
            .collect();
        assert_eq!(tagged(&c, 99), want);
        // The untagged readers see the same entries.
        assert_eq!(decode(&c.data).unwrap().len(), 4);
        // A version-1 chunk gives every line the default.
        let v1 = encode(&[Entry::new(1, "x")]).unwrap();
        assert_eq!(tagged(&v1, 42)[0].0, 42);
    }

    #[test]
    fn metadata_is_kept_per_entry_and_only_costs_where_present() {
        let plain: Vec<(String, String)> = Vec::new();
        let meta = vec![
            ("trace_id".to_owned(), "4bf92f35".to_owned()),
            ("level".to_owned(), "ünï".to_owned()),
        ];
        let items = [
            (1i64, 5i64, "a", &plain),
            (1, 6, "b", &meta),
            (2, 4, "", &plain),
        ];
        let mut enc = Encoder::stored().unwrap();
        let c = enc
            .encode_tagged(items.iter().map(|&(s, t, l, m)| (s, t, l, m.as_slice())))
            .unwrap();
        let want: Vec<_> = items
            .iter()
            .map(|&(s, t, l, m)| (s, t, l.to_owned(), m.clone()))
            .collect();
        assert_eq!(tagged(&c, 0), want);
        // Metadata read back writes the same bytes: a rewritten chunk keeps it.
        let mut dec = Decoder::new().unwrap();
        dec.load(&c.data).unwrap();
        let mut again = Vec::new();
        dec.each(0, |r| {
            again.push((r.seq, r.ts, r.line.to_owned(), r.meta.bytes().to_vec()))
        })
        .unwrap();
        let c2 = enc
            .encode_tagged(
                again
                    .iter()
                    .map(|(s, t, l, m)| (*s, *t, l.as_str(), Meta(m))),
            )
            .unwrap();
        assert_eq!(tagged(&c2, 0), want);
        assert_eq!(meta_bytes(&Meta(&again[1].3)), meta_bytes(&meta.as_slice()));
        // Without metadata the chunk is version 2, as before.
        let c3 = enc
            .encode_tagged(
                items
                    .iter()
                    .map(|&(s, t, l, _)| (s, t, l, plain.as_slice())),
            )
            .unwrap();
        let mut d = Decoder::new().unwrap();
        assert_eq!(&d.load(&c3.data).unwrap()[..4], MAGIC_TAGGED);
        assert_eq!(&d.load(&c.data).unwrap()[..4], MAGIC_META);
    }

    #[test]
    fn round_trip_with_unordered_timestamps() {
        let entries = vec![
            Entry::new(1_764_151_200_000_000_000, "first"),
            Entry::new(1_764_151_199_000_000_000, ""),
            Entry::new(i64::MAX, "ünïcode"),
            Entry::new(0, "zero"),
        ];
        let c = encode(&entries).unwrap();
        assert_eq!(c.min_ts, 0);
        assert_eq!(c.max_ts, i64::MAX);
        assert_eq!(c.lines, 4);
        assert_eq!(decode(&c.data).unwrap(), entries);
    }

    #[test]
    fn corrupt_chunks_are_errors() {
        assert!(decode(b"garbage").is_err());
        let mut raw = b"FJC1".to_vec();
        put_varint(&mut raw, 2);
        put_varint(&mut raw, 1000); // claims 1000 bytes, has none
        let z = zstd::bulk::compress(&raw, 1).unwrap();
        assert!(matches!(
            decode(&z),
            Err(ChunkError::Corrupt("truncated line"))
        ));
        let z = zstd::bulk::compress(b"NOPE", 1).unwrap();
        assert!(matches!(decode(&z), Err(ChunkError::Corrupt("bad magic"))));
        let z = zstd::bulk::compress(b"FJC2\x02", 1).unwrap();
        assert!(decode(&z).is_err());
        // Metadata that overruns its entry, or is not UTF-8.
        let z = zstd::bulk::compress(b"FJC3\x00\x02\x05\x01a", 1).unwrap();
        assert!(matches!(
            decode(&z),
            Err(ChunkError::Corrupt("truncated metadata"))
        ));
        let z = zstd::bulk::compress(b"FJC3\x00\x02\x04\x01a\x01\xff\x00", 1).unwrap();
        assert!(matches!(
            decode(&z),
            Err(ChunkError::Corrupt("string is not UTF-8"))
        ));
        let z = zstd::bulk::compress(b"FJC9", 1).unwrap();
        assert!(matches!(decode(&z), Err(ChunkError::Corrupt("bad magic"))));
    }
}
