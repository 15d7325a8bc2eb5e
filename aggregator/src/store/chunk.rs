//! The chunk format: a block of entries of one stream, zstd-compressed.
//!
//! Layout before compression, version 1: magic `FJC1`, then per entry a zigzag varint of the
//! timestamp delta from the previous entry, a varint of the line length, and the line bytes.
//! Version 2 (`FJC2`, what the store writes since schema 3) puts a zigzag varint of the
//! entry's *batch sequence* delta (the `receipts.id` of the batch that brought the line) before
//! each entry, so that a chunk merged by the compactor or rewritten by an erasure still knows
//! which batch every line came from; the audit recomputes each batch's digest from it
//! (docs/compliance.md). In a batch's own chunks the delta is 0: one byte per line.
//! Decoding is bounds-checked throughout: a corrupt chunk is an error, never a panic or a huge
//! allocation.

use fjord_wire::Entry;
use thiserror::Error;

const MAGIC: &[u8; 4] = b"FJC1";
const MAGIC_TAGGED: &[u8; 4] = b"FJC2";

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

/// Encodes entries (any order) into a compressed chunk. `entries` must not be empty.
pub fn encode(entries: &[Entry]) -> Result<EncodedChunk, ChunkError> {
    encode_iter(entries.iter().map(|e| (e.ts_ns, e.line())))
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
        self.encode_inner(entries.map(|(ts, l)| (None, ts, l)), MAGIC)
    }

    /// Encodes `(batch seq, timestamp, line)` triples (any order, at least one) into a
    /// version-2 chunk, which keeps each line's batch sequence.
    pub fn encode_tagged<'a>(
        &mut self,
        entries: impl Iterator<Item = (i64, i64, &'a str)> + Clone,
    ) -> Result<EncodedChunk, ChunkError> {
        self.encode_inner(entries.map(|(s, ts, l)| (Some(s), ts, l)), MAGIC_TAGGED)
    }

    fn encode_inner<'a>(
        &mut self,
        entries: impl Iterator<Item = (Option<i64>, i64, &'a str)> + Clone,
        magic: &[u8; 4],
    ) -> Result<EncodedChunk, ChunkError> {
        let (mut lines, mut raw_bytes) = (0usize, 0usize);
        for (_, _, l) in entries.clone() {
            lines += 1;
            raw_bytes += l.len();
        }
        let buf = &mut self.buf;
        buf.clear();
        buf.reserve(raw_bytes + lines * 7 + magic.len());
        buf.extend_from_slice(magic);
        let mut prev = 0i64;
        let mut prev_seq = 0i64;
        let (mut min_ts, mut max_ts) = (i64::MAX, i64::MIN);
        for (seq, ts, line) in entries {
            if let Some(seq) = seq {
                put_varint(buf, zigzag(seq.wrapping_sub(prev_seq)));
                prev_seq = seq;
            }
            put_varint(buf, zigzag(ts.wrapping_sub(prev)));
            prev = ts;
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
            Some(m) if m == MAGIC.as_slice() || m == MAGIC_TAGGED.as_slice() => Ok(&self.buf),
            _ => Err(ChunkError::Corrupt("bad magic")),
        }
    }

    /// Calls `f` for each entry of the chunk last [`load`](Decoder::load)ed.
    pub fn each(&self, mut f: impl FnMut(i64, &str)) -> Result<(), ChunkError> {
        walk(&self.buf, 0, |_, ts, line| f(ts, line))
    }

    /// Calls `f(batch seq, ts, line)` for each entry of the chunk last
    /// [`load`](Decoder::load)ed; a version-1 chunk's lines all get `default_seq` (the
    /// chunk row's `seq`).
    pub fn each_tagged(
        &self,
        default_seq: i64,
        f: impl FnMut(i64, i64, &str),
    ) -> Result<(), ChunkError> {
        walk(&self.buf, default_seq, f)
    }

    /// Decodes `data` and calls `f` for each entry in stored order.
    pub fn decode_each(&mut self, data: &[u8], f: impl FnMut(i64, &str)) -> Result<(), ChunkError> {
        self.load(data)?;
        self.each(f)
    }
}

/// Decodes a chunk and calls `f` for each entry in stored order.
pub fn decode_each(data: &[u8], f: impl FnMut(i64, &str)) -> Result<(), ChunkError> {
    Decoder::new()?.decode_each(data, f)
}

/// Decodes a chunk and calls `f(batch seq, ts, line)` for each entry in stored order; see
/// [`Decoder::each_tagged`].
pub fn decode_each_tagged(
    data: &[u8],
    default_seq: i64,
    f: impl FnMut(i64, i64, &str),
) -> Result<(), ChunkError> {
    let mut d = Decoder::new()?;
    d.load(data)?;
    d.each_tagged(default_seq, f)
}

/// Walks a decompressed chunk (after the magic check).
fn walk(buf: &[u8], default_seq: i64, mut f: impl FnMut(i64, i64, &str)) -> Result<(), ChunkError> {
    let tagged = buf.get(..4) == Some(MAGIC_TAGGED.as_slice());
    let mut pos = 4;
    let mut ts = 0i64;
    let mut seq = if tagged { 0 } else { default_seq };
    while pos < buf.len() {
        if tagged {
            seq = seq.wrapping_add(unzigzag(get_varint(buf, &mut pos)?));
        }
        ts = ts.wrapping_add(unzigzag(get_varint(buf, &mut pos)?));
        let len = usize::try_from(get_varint(buf, &mut pos)?)
            .map_err(|_| ChunkError::Corrupt("length overflow"))?;
        let end = pos
            .checked_add(len)
            .ok_or(ChunkError::Corrupt("length overflow"))?;
        let bytes = buf
            .get(pos..end)
            .ok_or(ChunkError::Corrupt("truncated line"))?;
        let line =
            std::str::from_utf8(bytes).map_err(|_| ChunkError::Corrupt("line is not UTF-8"))?;
        f(seq, ts, line);
        pos = end;
    }
    Ok(())
}

/// Decodes a chunk into entries.
pub fn decode(data: &[u8]) -> Result<Vec<Entry<'static>>, ChunkError> {
    let mut out = Vec::new();
    decode_each(data, |ts, line| out.push(Entry::new(ts, line)))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tagged_chunks_keep_each_lines_batch() {
        let items = [(7i64, 5i64, "a"), (3, 4, "bb"), (7, 9, ""), (12, 1, "ü")];
        let c = Encoder::new(CHUNK_ZSTD_LEVEL)
            .unwrap()
            .encode_tagged(items.iter().copied())
            .unwrap();
        assert_eq!((c.lines, c.min_ts, c.max_ts, c.raw_bytes), (4, 1, 9, 5));
        let mut got = Vec::new();
        decode_each_tagged(&c.data, 99, |s, t, l| got.push((s, t, l.to_owned()))).unwrap();
        let want: Vec<_> = items
            .iter()
            .map(|(s, t, l)| (*s, *t, l.to_string()))
            .collect();
        assert_eq!(got, want);
        // The untagged readers see the same entries.
        assert_eq!(decode(&c.data).unwrap().len(), 4);
        // A version-1 chunk gives every line the default.
        let v1 = encode(&[Entry::new(1, "x")]).unwrap();
        let mut seqs = Vec::new();
        decode_each_tagged(&v1.data, 42, |s, _, _| seqs.push(s)).unwrap();
        assert_eq!(seqs, [42]);
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
        let z = zstd::bulk::compress(b"FJC9", 1).unwrap();
        assert!(matches!(decode(&z), Err(ChunkError::Corrupt("bad magic"))));
    }
}
