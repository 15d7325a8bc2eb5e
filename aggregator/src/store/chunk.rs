//! The chunk format: a block of entries of one stream, zstd-compressed.
//!
//! Layout before compression: magic `FJC1`, then per entry a zigzag varint of the timestamp
//! delta from the previous entry, a varint of the line length, and the line bytes. Decoding is
//! bounds-checked throughout: a corrupt chunk is an error, never a panic or a huge allocation.

use fjord_wire::Entry;
use thiserror::Error;

const MAGIC: &[u8; 4] = b"FJC1";

/// zstd level for stored chunks.
pub const CHUNK_ZSTD_LEVEL: i32 = 3;

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
    let raw_bytes: usize = entries.iter().map(|e| e.line.len()).sum();
    let mut buf = Vec::with_capacity(raw_bytes + entries.len() * 6 + MAGIC.len());
    buf.extend_from_slice(MAGIC);
    let mut prev = 0i64;
    let (mut min_ts, mut max_ts) = (i64::MAX, i64::MIN);
    for e in entries {
        put_varint(&mut buf, zigzag(e.ts_ns.wrapping_sub(prev)));
        prev = e.ts_ns;
        put_varint(&mut buf, e.line.len() as u64);
        buf.extend_from_slice(e.line.as_bytes());
        min_ts = min_ts.min(e.ts_ns);
        max_ts = max_ts.max(e.ts_ns);
    }
    let data = zstd::bulk::compress(&buf, CHUNK_ZSTD_LEVEL)
        .map_err(|e| ChunkError::Zstd(e.to_string()))?;
    Ok(EncodedChunk {
        data,
        min_ts,
        max_ts,
        lines: entries.len(),
        raw_bytes,
    })
}

/// Decodes a chunk and calls `f` for each entry in stored order.
pub fn decode_each(data: &[u8], mut f: impl FnMut(i64, &str)) -> Result<(), ChunkError> {
    let buf = zstd::bulk::decompress(data, MAX_CHUNK_DECODED_BYTES)
        .map_err(|e| ChunkError::Zstd(e.to_string()))?;
    if buf.get(..4) != Some(MAGIC.as_slice()) {
        return Err(ChunkError::Corrupt("bad magic"));
    }
    let mut pos = 4;
    let mut ts = 0i64;
    while pos < buf.len() {
        ts = ts.wrapping_add(unzigzag(get_varint(&buf, &mut pos)?));
        let len = usize::try_from(get_varint(&buf, &mut pos)?)
            .map_err(|_| ChunkError::Corrupt("length overflow"))?;
        let end = pos
            .checked_add(len)
            .ok_or(ChunkError::Corrupt("length overflow"))?;
        let bytes = buf
            .get(pos..end)
            .ok_or(ChunkError::Corrupt("truncated line"))?;
        let line =
            std::str::from_utf8(bytes).map_err(|_| ChunkError::Corrupt("line is not UTF-8"))?;
        f(ts, line);
        pos = end;
    }
    Ok(())
}

/// Decodes a chunk into entries.
pub fn decode(data: &[u8]) -> Result<Vec<Entry>, ChunkError> {
    let mut out = Vec::new();
    decode_each(data, |ts, line| out.push(Entry::new(ts, line)))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

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
    }
}
