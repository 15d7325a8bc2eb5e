//! The extraction parsers: JSON (flattened with `_`, or by path expressions), logfmt, the
//! `pattern` language, and label-name sanitising.
//!
//! Invariants: the parsers read the line without building a tree (except JSON path
//! expressions and `unpack`, which need random access), never panic on malformed input, and
//! report malformed input as an error string that names the problem and a byte offset but
//! never quotes the line (error details end up in labels and could reach fjord's logs).
//! Nesting is bounded by [`MAX_JSON_DEPTH`].

use std::borrow::Cow;

/// Deepest JSON nesting the flattening parser follows.
pub const MAX_JSON_DEPTH: usize = 64;

/// Makes a label name of a JSON or logfmt key as Loki does: characters outside
/// `[a-zA-Z0-9_]` become `_`, and a leading digit gets a `_` in front.
pub fn sanitize_into(key: &str, out: &mut String) {
    if key.as_bytes().first().is_some_and(u8::is_ascii_digit) {
        out.push('_');
    }
    for c in key.chars() {
        out.push(if c.is_ascii_alphanumeric() || c == '_' {
            c
        } else {
            '_'
        });
    }
}

/// Flattens a JSON object: nested keys are joined with `_`, strings are unescaped, numbers and
/// booleans kept as written; arrays and nulls are skipped (as Loki's `json` does without
/// parameters). `emit(name, value)` gets each sanitised name and value.
pub fn json_flatten(
    line: &str,
    key_buf: &mut String,
    emit: &mut dyn FnMut(&str, &str),
) -> Result<(), String> {
    let mut s = Scan {
        b: line.as_bytes(),
        src: line,
        i: 0,
    };
    s.ws();
    if s.peek() != Some(b'{') {
        return Err("the line is not a JSON object".to_owned());
    }
    key_buf.clear();
    s.object(key_buf, 0, emit)?;
    s.ws();
    if s.i != s.b.len() {
        return Err(format!("trailing data at byte {}", s.i));
    }
    Ok(())
}

struct Scan<'a> {
    b: &'a [u8],
    src: &'a str,
    i: usize,
}

impl<'a> Scan<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn err(&self, what: &str) -> String {
        format!("{what} at byte {}", self.i)
    }

    /// A string starting at `"`; borrowed when it holds no escapes.
    fn string(&mut self) -> Result<Cow<'a, str>, String> {
        self.i += 1;
        let start = self.i;
        let rest = &self.b[start..];
        match memchr::memchr2(b'"', b'\\', rest) {
            Some(n) if rest[n] == b'"' => {
                self.i = start + n + 1;
                return Ok(Cow::Borrowed(&self.src[start..start + n]));
            }
            None => return Err(self.err("unterminated string")),
            _ => {}
        }
        let mut out = String::new();
        loop {
            let rest = &self.b[self.i..];
            let Some(n) = memchr::memchr2(b'"', b'\\', rest) else {
                return Err(self.err("unterminated string"));
            };
            out.push_str(&self.src[self.i..self.i + n]);
            self.i += n;
            if self.b[self.i] == b'"' {
                self.i += 1;
                return Ok(Cow::Owned(out));
            }
            let esc = self.b.get(self.i + 1).copied();
            self.i += 2;
            match esc {
                Some(b'"') => out.push('"'),
                Some(b'\\') => out.push('\\'),
                Some(b'/') => out.push('/'),
                Some(b'n') => out.push('\n'),
                Some(b't') => out.push('\t'),
                Some(b'r') => out.push('\r'),
                Some(b'b') => out.push('\x08'),
                Some(b'f') => out.push('\x0c'),
                Some(b'u') => {
                    let hex = self
                        .src
                        .get(self.i..self.i + 4)
                        .ok_or_else(|| self.err("short \\u escape"))?;
                    let mut cp =
                        u32::from_str_radix(hex, 16).map_err(|_| self.err("bad \\u escape"))?;
                    self.i += 4;
                    if (0xD800..0xDC00).contains(&cp)
                        && self.src.get(self.i..self.i + 2) == Some("\\u")
                    {
                        if let Some(lo) = self
                            .src
                            .get(self.i + 2..self.i + 6)
                            .and_then(|h| u32::from_str_radix(h, 16).ok())
                        {
                            if (0xDC00..0xE000).contains(&lo) {
                                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                                self.i += 6;
                            }
                        }
                    }
                    out.push(char::from_u32(cp).unwrap_or('\u{fffd}'));
                }
                _ => return Err(self.err("bad escape")),
            }
        }
    }

    /// Skips any value (used for arrays and nulls).
    fn skip(&mut self, depth: usize) -> Result<(), String> {
        if depth > MAX_JSON_DEPTH {
            return Err(self.err("nesting too deep"));
        }
        self.ws();
        match self.peek() {
            Some(b'"') => {
                self.string()?;
            }
            Some(open @ (b'{' | b'[')) => {
                let close = if open == b'{' { b'}' } else { b']' };
                self.i += 1;
                self.ws();
                if self.peek() == Some(close) {
                    self.i += 1;
                    return Ok(());
                }
                loop {
                    if open == b'{' {
                        self.ws();
                        if self.peek() != Some(b'"') {
                            return Err(self.err("expected a key"));
                        }
                        self.string()?;
                        self.ws();
                        if self.peek() != Some(b':') {
                            return Err(self.err("expected ':'"));
                        }
                        self.i += 1;
                    }
                    self.skip(depth + 1)?;
                    self.ws();
                    match self.peek() {
                        Some(b',') => self.i += 1,
                        Some(c) if c == close => {
                            self.i += 1;
                            return Ok(());
                        }
                        _ => return Err(self.err("expected ',' or a closing bracket")),
                    }
                }
            }
            Some(_) => {
                self.scalar()?;
            }
            None => return Err(self.err("unexpected end")),
        }
        Ok(())
    }

    /// A number, `true`, `false` or `null`, as written.
    fn scalar(&mut self) -> Result<&'a str, String> {
        let start = self.i;
        while let Some(c) = self.peek() {
            if matches!(c, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r') {
                break;
            }
            self.i += 1;
        }
        let t = &self.src[start..self.i];
        let ok = t == "true"
            || t == "false"
            || t == "null"
            || (!t.is_empty()
                && t.bytes()
                    .all(|c| c.is_ascii_digit() || matches!(c, b'-' | b'+' | b'.' | b'e' | b'E')));
        if !ok {
            return Err(format!("invalid value at byte {start}"));
        }
        Ok(t)
    }

    fn object(
        &mut self,
        prefix: &mut String,
        depth: usize,
        emit: &mut dyn FnMut(&str, &str),
    ) -> Result<(), String> {
        if depth > MAX_JSON_DEPTH {
            return Err(self.err("nesting too deep"));
        }
        self.i += 1;
        self.ws();
        if self.peek() == Some(b'}') {
            self.i += 1;
            return Ok(());
        }
        let base = prefix.len();
        loop {
            self.ws();
            if self.peek() != Some(b'"') {
                return Err(self.err("expected a key"));
            }
            let key = self.string()?;
            self.ws();
            if self.peek() != Some(b':') {
                return Err(self.err("expected ':'"));
            }
            self.i += 1;
            self.ws();
            prefix.truncate(base);
            sanitize_into(&key, prefix);
            match self.peek() {
                Some(b'"') => {
                    let v = self.string()?;
                    emit(prefix, &v);
                }
                Some(b'{') => {
                    prefix.push('_');
                    self.object(prefix, depth + 1, emit)?;
                }
                Some(b'[') => self.skip(depth + 1)?,
                Some(_) => {
                    let v = self.scalar()?;
                    if v != "null" {
                        emit(prefix, v);
                    }
                }
                None => return Err(self.err("unexpected end")),
            }
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    prefix.truncate(base);
                    return Ok(());
                }
                _ => return Err(self.err("expected ',' or '}'")),
            }
        }
    }
}

/// One step of a JSON path expression (`a.b[0]["c d"]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathStep {
    Key(String),
    Index(usize),
}

/// Parses a JSON path expression of `json label="expr"`.
pub fn json_path(expr: &str) -> Result<Vec<PathStep>, String> {
    let mut out = Vec::new();
    let b = expr.as_bytes();
    let mut i = 0;
    let mut key = String::new();
    while i < b.len() {
        match b[i] {
            b'.' => {
                if !key.is_empty() {
                    out.push(PathStep::Key(std::mem::take(&mut key)));
                }
                i += 1;
            }
            b'[' => {
                if !key.is_empty() {
                    out.push(PathStep::Key(std::mem::take(&mut key)));
                }
                let end = expr[i..]
                    .find(']')
                    .map(|e| i + e)
                    .ok_or_else(|| format!("unclosed '[' in JSON expression {expr:?}"))?;
                let inner = expr[i + 1..end].trim();
                if let Some(q) = inner.strip_prefix('"').and_then(|x| x.strip_suffix('"')) {
                    out.push(PathStep::Key(q.to_owned()));
                } else {
                    let n = inner
                        .parse()
                        .map_err(|_| format!("invalid index in JSON expression {expr:?}"))?;
                    out.push(PathStep::Index(n));
                }
                i = end + 1;
            }
            _ => {
                let c = expr[i..].chars().next().unwrap_or(' ');
                key.push(c);
                i += c.len_utf8();
            }
        }
    }
    if !key.is_empty() {
        out.push(PathStep::Key(key));
    }
    if out.is_empty() {
        return Err(format!("empty JSON expression {expr:?}"));
    }
    Ok(out)
}

/// Looks a path up in a parsed value; strings come back unquoted, other values as JSON.
pub fn json_lookup(v: &serde_json::Value, path: &[PathStep]) -> Option<String> {
    let mut cur = v;
    for s in path {
        cur = match s {
            PathStep::Key(k) => cur.get(k)?,
            PathStep::Index(n) => cur.get(*n)?,
        };
    }
    Some(match cur {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    })
}

/// Reads logfmt pairs. `emit(key, value, standalone)` gets each key (unsanitised), its value
/// (unquoted) and whether it had no `=`. In strict mode the first malformed pair is an error;
/// otherwise malformed text is skipped.
pub fn logfmt(
    line: &str,
    strict: bool,
    emit: &mut dyn FnMut(&str, &str, bool),
) -> Result<(), String> {
    let b = line.as_bytes();
    let mut i = 0;
    let mut val_buf = String::new();
    while i < b.len() {
        while i < b.len() && b[i] <= b' ' {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        let ks = i;
        while i < b.len() && b[i] > b' ' && b[i] != b'=' && b[i] != b'"' {
            i += 1;
        }
        let key = &line[ks..i];
        if key.is_empty() {
            if strict {
                return Err(format!("unexpected {:?} at byte {i}", char::from(b[i])));
            }
            // Skip to the next space.
            while i < b.len() && b[i] > b' ' {
                i += 1;
            }
            continue;
        }
        if i >= b.len() || b[i] <= b' ' {
            emit(key, "", true);
            continue;
        }
        if b[i] == b'"' {
            if strict {
                return Err(format!("unexpected '\"' in a key at byte {i}"));
            }
            while i < b.len() && b[i] > b' ' {
                i += 1;
            }
            continue;
        }
        // b[i] == '='
        i += 1;
        if i < b.len() && b[i] == b'"' {
            i += 1;
            val_buf.clear();
            let mut closed = false;
            while i < b.len() {
                match b[i] {
                    b'"' => {
                        i += 1;
                        closed = true;
                        break;
                    }
                    b'\\' if i + 1 < b.len() => {
                        match b[i + 1] {
                            b'n' => val_buf.push('\n'),
                            b't' => val_buf.push('\t'),
                            b'r' => val_buf.push('\r'),
                            c @ (b'"' | b'\\') => val_buf.push(char::from(c)),
                            _ => val_buf.push('\\'),
                        }
                        i += if matches!(b[i + 1], b'n' | b't' | b'r' | b'"' | b'\\') {
                            2
                        } else {
                            1
                        };
                    }
                    _ => {
                        let start = i;
                        while i < b.len() && b[i] != b'"' && b[i] != b'\\' {
                            i += 1;
                        }
                        val_buf.push_str(&line[start..i]);
                    }
                }
            }
            if !closed && strict {
                return Err("unterminated quoted value".to_owned());
            }
            emit(key, &val_buf, false);
        } else {
            let vs = i;
            while i < b.len() && b[i] > b' ' {
                if b[i] == b'"' && strict {
                    return Err(format!("unexpected '\"' in a value at byte {i}"));
                }
                i += 1;
            }
            emit(key, &line[vs..i], false);
        }
    }
    Ok(())
}

/// A compiled `pattern`: literals and captures (`<name>`, or `<_>` to skip).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    parts: Vec<PatPart>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PatPart {
    Lit(String),
    Cap(Option<String>),
}

impl Pattern {
    /// Compiles a pattern; two captures must be separated by literal text.
    pub fn compile(p: &str) -> Result<Pattern, String> {
        let mut parts = Vec::new();
        let mut rest = p;
        while !rest.is_empty() {
            if let Some(open) = rest.find('<') {
                let close = rest[open..].find('>').map(|c| open + c);
                let name = close.map(|c| &rest[open + 1..c]);
                let valid = name.is_some_and(|n| {
                    !n.is_empty()
                        && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                        && !n.as_bytes()[0].is_ascii_digit()
                });
                if let (true, Some(close), Some(name)) = (valid, close, name) {
                    if open > 0 {
                        parts.push(PatPart::Lit(rest[..open].to_owned()));
                    }
                    if matches!(parts.last(), Some(PatPart::Cap(_))) {
                        return Err("two captures must be separated by literal text".to_owned());
                    }
                    parts.push(PatPart::Cap((name != "_").then(|| name.to_owned())));
                    rest = &rest[close + 1..];
                    continue;
                }
                // A `<` that opens no capture is literal text.
                let lit_end = open + 1;
                match parts.last_mut() {
                    Some(PatPart::Lit(l)) => l.push_str(&rest[..lit_end]),
                    _ => parts.push(PatPart::Lit(rest[..lit_end].to_owned())),
                }
                rest = &rest[lit_end..];
            } else {
                match parts.last_mut() {
                    Some(PatPart::Lit(l)) => l.push_str(rest),
                    _ => parts.push(PatPart::Lit(rest.to_owned())),
                }
                break;
            }
        }
        if !parts.iter().any(|p| matches!(p, PatPart::Cap(_))) {
            return Err("a pattern needs at least one capture such as <name> or <_>".to_owned());
        }
        Ok(Pattern { parts })
    }

    /// Names of the named captures.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            PatPart::Cap(Some(n)) => Some(n.as_str()),
            _ => None,
        })
    }

    /// Matches `line`; on success calls `emit(name, value)` for each named capture and
    /// returns true. Text after the last literal belongs to a trailing capture, or is
    /// ignored.
    pub fn matches(&self, line: &str, emit: &mut dyn FnMut(&str, &str)) -> bool {
        let mut pos = 0;
        let mut pending: Option<&Option<String>> = None;
        for (i, p) in self.parts.iter().enumerate() {
            match p {
                PatPart::Lit(l) => {
                    if let Some(cap) = pending.take() {
                        let Some(off) = memchr::memmem::find(&line.as_bytes()[pos..], l.as_bytes())
                        else {
                            return false;
                        };
                        if let Some(n) = cap {
                            emit(n, &line[pos..pos + off]);
                        }
                        pos += off + l.len();
                    } else if line[pos..].starts_with(l.as_str()) {
                        pos += l.len();
                    } else {
                        return false;
                    }
                }
                PatPart::Cap(c) => {
                    if i == self.parts.len() - 1 {
                        if let Some(n) = c {
                            emit(n, &line[pos..]);
                        }
                        return true;
                    }
                    pending = Some(c);
                }
            }
        }
        true
    }

    /// Whether `line` matches, without extracting.
    pub fn is_match(&self, line: &str) -> bool {
        self.matches(line, &mut |_, _| {})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flat(line: &str) -> Result<Vec<(String, String)>, String> {
        let mut out = Vec::new();
        let mut k = String::new();
        json_flatten(line, &mut k, &mut |n, v| {
            out.push((n.to_owned(), v.to_owned()))
        })?;
        Ok(out)
    }

    #[test]
    fn json_flattens_like_loki() {
        let got = flat(r#"{"a":"x\"y","n":1.5,"b":true,"nested":{"c-d":"e","deep":{"f":2}},"arr":[1,{"z":1}],"nil":null,"1st":"u"}"#).unwrap();
        let want: Vec<(String, String)> = [
            ("a", "x\"y"),
            ("n", "1.5"),
            ("b", "true"),
            ("nested_c_d", "e"),
            ("nested_deep_f", "2"),
            ("_1st", "u"),
        ]
        .iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect();
        assert_eq!(got, want);
        for bad in [
            "not json",
            "{\"a\":",
            "{\"a\" 1}",
            "[1]",
            "{\"a\":1} x",
            "{\"a\":tru}",
        ] {
            assert!(flat(bad).is_err(), "{bad}");
        }
        let deep = format!("{}{}", "{\"a\":".repeat(100), "}".repeat(100));
        assert!(flat(&deep).is_err());
    }

    #[test]
    fn logfmt_pairs() {
        let mut out = Vec::new();
        logfmt(
            r#"level=info msg="hello \"w\"" empty= flag dur=1.5s"#,
            false,
            &mut |k, v, s| out.push((k.to_owned(), v.to_owned(), s)),
        )
        .unwrap();
        assert_eq!(
            out,
            vec![
                ("level".into(), "info".into(), false),
                ("msg".into(), "hello \"w\"".into(), false),
                ("empty".into(), "".into(), false),
                ("flag".into(), "".into(), true),
                ("dur".into(), "1.5s".into(), false),
            ]
        );
        assert!(logfmt("a=1 =x", true, &mut |_, _, _| {}).is_err());
        assert!(logfmt("a=1 =x", false, &mut |_, _, _| {}).is_ok());
        assert!(logfmt("a=\"open", true, &mut |_, _, _| {}).is_err());
    }

    #[test]
    fn patterns() {
        let p = Pattern::compile("<ip> - - [<_>] \"<method> <uri> <_>\" <status> <size>").unwrap();
        let mut got = Vec::new();
        assert!(p.matches(
            r#"10.0.0.1 - - [05/Dec/2026:01:00:00 +0000] "GET /a HTTP/1.1" 200 512"#,
            &mut |n, v| got.push(format!("{n}={v}"))
        ));
        assert_eq!(
            got,
            [
                "ip=10.0.0.1",
                "method=GET",
                "uri=/a",
                "status=200",
                "size=512"
            ]
        );
        assert!(!p.is_match("nothing like it"));
        assert!(Pattern::compile("<a><b>").is_err());
        assert!(Pattern::compile("no captures").is_err());
        assert!(Pattern::compile("<_> error <_>")
            .unwrap()
            .is_match("an error here"));
    }

    #[test]
    fn paths() {
        assert_eq!(
            json_path(r#"a.b[0]["c d"]"#).unwrap(),
            vec![
                PathStep::Key("a".into()),
                PathStep::Key("b".into()),
                PathStep::Index(0),
                PathStep::Key("c d".into())
            ]
        );
        let v: serde_json::Value = serde_json::from_str(r#"{"a":{"b":[{"c d":"x"}]}}"#).unwrap();
        assert_eq!(
            json_lookup(&v, &json_path(r#"a.b[0]["c d"]"#).unwrap()).as_deref(),
            Some("x")
        );
        assert_eq!(
            json_lookup(&v, &json_path("a.b").unwrap()).as_deref(),
            Some(r#"[{"c d":"x"}]"#)
        );
    }
}
