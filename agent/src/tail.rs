//! Discovery and reading of followed files.
//!
//! A file is known by device + inode, and confirmed by a SHA-256 of its first bytes (up to
//! [`FINGERPRINT_BYTES`]), so a reused inode is told apart from the file we checkpointed.
//! Lines are split with memchr; a partial last line stays unread until its newline arrives;
//! a line longer than the maximum is cut with a marker; invalid UTF-8 is replaced.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use sha2::{Digest, Sha256};

/// Bytes at the start of a file that identify it.
pub const FINGERPRINT_BYTES: u64 = 256;

/// Longest line kept whole; longer lines are cut with [`CUT_MARKER`].
pub const MAX_LINE_BYTES: usize = 256 * 1024;

/// Appended to a line that was cut at [`MAX_LINE_BYTES`].
pub const CUT_MARKER: &str = " [fjord: line cut]";

/// Glob patterns compiled once, with the literal directories to walk.
pub struct Discovery {
    set: GlobSet,
    roots: Vec<PathBuf>,
}

impl Discovery {
    pub fn new(patterns: &[String]) -> Result<Discovery, globset::Error> {
        let mut b = GlobSetBuilder::new();
        let mut roots = Vec::new();
        for p in patterns {
            // `*` stops at `/`, as in a shell; `**` crosses directories.
            b.add(GlobBuilder::new(p).literal_separator(true).build()?);
            // The literal directory prefix before the first glob character.
            let lit: String = p.chars().take_while(|c| !"*?[{".contains(*c)).collect();
            let root = if lit.ends_with('/') {
                PathBuf::from(&lit)
            } else {
                Path::new(&lit)
                    .parent()
                    .map(Path::to_path_buf)
                    .unwrap_or_default()
            };
            roots.push(if root.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                root
            });
        }
        Ok(Discovery {
            set: b.build()?,
            roots,
        })
    }

    /// Regular files matching a pattern now. Missing directories are simply empty.
    pub fn scan(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for root in &self.roots {
            self.walk(root, 0, &mut out);
        }
        out.sort();
        out.dedup();
        out
    }

    fn walk(&self, dir: &Path, depth: usize, out: &mut Vec<PathBuf>) {
        const MAX_DEPTH: usize = 16;
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            let Ok(md) = std::fs::metadata(&p) else {
                continue;
            };
            if md.is_dir() {
                if depth < MAX_DEPTH {
                    self.walk(&p, depth + 1, out);
                }
            } else if md.is_file() && self.set.is_match(&p) {
                out.push(p);
            }
        }
    }
}

/// Device and inode of an open file, as `dev:ino`.
pub fn dev_ino(md: &std::fs::Metadata) -> String {
    format!("{}:{}", md.dev(), md.ino())
}

/// SHA-256 (16 hex) of the first `len` bytes of `file`; `None` if it has fewer.
pub fn fingerprint(file: &mut File, len: u64) -> io::Result<Option<String>> {
    file.seek(SeekFrom::Start(0))?;
    let mut buf = Vec::with_capacity(len as usize);
    file.by_ref().take(len).read_to_end(&mut buf)?;
    if (buf.len() as u64) < len {
        return Ok(None);
    }
    Ok(Some(hex::encode(&Sha256::digest(&buf)[..8])))
}

/// One complete line read from a file: its text and the offset just after it.
pub struct Line {
    pub text: String,
    pub end_offset: u64,
    pub cut: bool,
    pub invalid_utf8: bool,
}

/// Reads complete lines from `offset`, at most about `max_bytes`, stopping early at
/// `stop_at` (a batch boundary). Returns the lines; a trailing partial line is not consumed.
pub fn read_lines(
    file: &mut File,
    offset: u64,
    max_bytes: usize,
    stop_at: Option<u64>,
) -> io::Result<Vec<Line>> {
    let mut want = max_bytes.max(MAX_LINE_BYTES + 1);
    if let Some(s) = stop_at {
        want = want.min(usize::try_from(s.saturating_sub(offset)).unwrap_or(usize::MAX));
    }
    file.seek(SeekFrom::Start(offset))?;
    let mut buf = Vec::with_capacity(want.min(4 * 1024 * 1024));
    file.by_ref().take(want as u64).read_to_end(&mut buf)?;
    let mut lines = Vec::new();
    let mut pos = 0usize;
    while pos < buf.len() {
        match memchr::memchr(b'\n', &buf[pos..]) {
            Some(i) => {
                let raw = &buf[pos..pos + i];
                let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
                lines.push(make_line(
                    raw,
                    offset + (pos + i + 1) as u64,
                    raw.len() > MAX_LINE_BYTES,
                ));
                pos += i + 1;
            }
            None => {
                // No newline: if the partial line already exceeds the maximum, cut it so a
                // runaway line cannot stall the file or grow memory.
                if buf.len() - pos > MAX_LINE_BYTES {
                    let end = pos + MAX_LINE_BYTES;
                    lines.push(make_line(&buf[pos..end], offset + end as u64, true));
                }
                break;
            }
        }
    }
    Ok(lines)
}

fn make_line(raw: &[u8], end_offset: u64, cut: bool) -> Line {
    let raw = &raw[..raw.len().min(MAX_LINE_BYTES)];
    let (mut text, invalid_utf8) = match std::str::from_utf8(raw) {
        Ok(s) => (s.to_owned(), false),
        Err(_) => (String::from_utf8_lossy(raw).into_owned(), true),
    };
    if cut {
        text.push_str(CUT_MARKER);
    }
    Line {
        text,
        end_offset,
        cut,
        invalid_utf8,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn partial_lines_wait_and_offsets_are_exact() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.log");
        let mut w = File::create(&p).unwrap();
        w.write_all(b"one\r\ntwo\nthr").unwrap();
        let mut f = File::open(&p).unwrap();
        let lines = read_lines(&mut f, 0, 1 << 20, None).unwrap();
        let got: Vec<(&str, u64)> = lines
            .iter()
            .map(|l| (l.text.as_str(), l.end_offset))
            .collect();
        assert_eq!(got, vec![("one", 5), ("two", 9)]);
        w.write_all(b"ee\n\xff\n").unwrap();
        let lines = read_lines(&mut f, 9, 1 << 20, None).unwrap();
        assert_eq!(lines[0].text, "three");
        assert!(lines[1].invalid_utf8);
        assert_eq!(lines[1].end_offset, 17);
        let lines = read_lines(&mut f, 0, 1 << 20, Some(5)).unwrap();
        assert_eq!(lines.len(), 1);
    }

    #[test]
    fn huge_line_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.log");
        std::fs::write(&p, vec![b'x'; MAX_LINE_BYTES * 3]).unwrap();
        let mut f = File::open(&p).unwrap();
        let lines = read_lines(&mut f, 0, 1 << 20, None).unwrap();
        assert_eq!(lines.len(), 1);
        assert!(lines[0].cut);
        assert!(lines[0].text.ends_with(CUT_MARKER));
        assert_eq!(lines[0].end_offset, MAX_LINE_BYTES as u64);
    }

    #[test]
    fn discovery_matches_globs() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        for f in ["a.log", "b.txt", "sub/c.log"] {
            std::fs::write(dir.path().join(f), "x\n").unwrap();
        }
        let d = Discovery::new(&[format!("{}/*.log", dir.path().display())]).unwrap();
        assert_eq!(d.scan(), vec![dir.path().join("a.log")]);
        let d = Discovery::new(&[format!("{}/**/*.log", dir.path().display())]).unwrap();
        assert_eq!(d.scan().len(), 2);
        let d = Discovery::new(&[format!("{}/missing/*.log", dir.path().display())]).unwrap();
        assert!(d.scan().is_empty());
    }
}
