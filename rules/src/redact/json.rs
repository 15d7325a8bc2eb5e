//! JSON lines: a line that is one JSON object is rewritten value by value, so the output is
//! still valid JSON with the same key order and the same formatting outside the values that
//! changed.
//!
//! * Field rules (`[[field]] path = "customer.email"`) act on the value at that path:
//!   `mask`/`hash`/`partial` replace it with a string, `drop_field` removes the member,
//!   `drop_line` drops the line. Path segments are object keys; `*` matches any one key;
//!   arrays are transparent (`items.card` reaches `{"items":[{"card":…}]}`).
//! * Built-in detectors run once over the raw line (the caller does that, and only walks a
//!   line with a match), where they see each value's key: `"msisdn": "4791234567"` is a
//!   phone number, `"cpr": "0101901234"` a CPR, and a Luhn-valid `"span_id"` is not a card.
//!   Each match is mapped into the value it lies in and scrubbed there; a value holding an
//!   escape (`\u0040`) is instead unescaped and scanned on its own. A number with a match
//!   becomes a string. Matches in keys are ignored: keys are not scanned.
//! * Custom pattern rules run over every string value (after unescaping) and every integer
//!   of 8+ digits, one value at a time.
//! * A `"password"` / `"api_key"`-style key marks its whole string value.
//!
//! This is a small hand-written parser rather than `serde_json::Value` because the latter
//! would reorder keys (without the crate-wide `preserve_order` feature, which would change
//! map ordering for every crate in the workspace) and re-format numbers. Nesting deeper than
//! [`MAX_DEPTH`] or anything that is not valid JSON makes [`redact`] fail, and the caller
//! scrubs the line as plain text instead — never unscrubbed, never a panic.

use std::borrow::Cow;

use super::{Counts, ExplainHit, Hit, Redactor, Scope};
use crate::pack::Action;

/// Deepest nesting handled as JSON; deeper lines are scrubbed as text.
pub const MAX_DEPTH: usize = 64;

/// The line is not (handled as) JSON.
#[derive(Debug)]
pub(crate) struct NotJson;

/// Cheap test: first and last non-blank bytes are `{` and `}`.
pub(crate) fn looks_like_object(line: &str) -> bool {
    let t = line.trim_ascii();
    t.len() >= 2 && t.as_bytes()[0] == b'{' && t.as_bytes()[t.len() - 1] == b'}'
}

/// The largest scrubbed-value buffer kept between lines.
const MAX_KEPT_BYTES: usize = 64 * 1024;

/// Buffers a walk reuses from line to line (see `redact::Scratch`).
#[derive(Default)]
pub(crate) struct Scratch {
    hits: Vec<Hit>,
    more: Vec<Hit>,
    scrubbed: String,
    /// The key path's buffer, empty between lines (see [`recycle`]).
    path: Vec<Cow<'static, str>>,
}

/// An empty vector for another lifetime, on the same allocation: the in-place `collect` of
/// a vector's own iterator keeps its buffer when the element layout is the same, as it is
/// here (the closure never runs: the vector is empty).
fn recycle<'y>(mut v: Vec<Cow<'_, str>>) -> Vec<Cow<'y, str>> {
    v.clear();
    v.into_iter().map(|_| Cow::Borrowed("")).collect()
}

impl Scratch {
    pub(crate) const fn new() -> Scratch {
        Scratch {
            hits: Vec::new(),
            more: Vec::new(),
            scrubbed: String::new(),
            path: Vec::new(),
        }
    }

    /// Drops what a pathological line grew: hit lists past `max_hits`, a value past
    /// [`MAX_KEPT_BYTES`].
    pub(crate) fn trim(&mut self, max_hits: usize) {
        if self.hits.capacity() > max_hits || self.more.capacity() > max_hits {
            self.hits = Vec::new();
            self.more = Vec::new();
        }
        if self.path.capacity() > max_hits {
            self.path = Vec::new();
        }
        if self.scrubbed.capacity() > MAX_KEPT_BYTES {
            self.scrubbed = String::new();
        }
    }
}

/// Rewrites a JSON-object line into `out` (which the caller has cleared). `raw_hits`: the
/// built-in detectors' resolved hits in the whole line; `patterns`: whether custom patterns
/// must run over each value. `Ok(false)`: a rule drops the line. On `Err`, `out` holds a
/// partial rewrite.
#[allow(clippy::too_many_arguments)] // one call site; the buffers are the point
pub(crate) fn redact(
    r: &Redactor,
    line: &str,
    raw_hits: &[Hit],
    patterns: bool,
    counts: &mut Counts,
    explain: Option<&mut Vec<ExplainHit>>,
    out: &mut String,
    scratch: &mut Scratch,
) -> Result<bool, NotJson> {
    out.reserve(line.len() + 32);
    let mut w = Walker {
        r,
        s: line,
        b: line.as_bytes(),
        i: 0,
        out: std::mem::take(out),
        counts,
        explain,
        path: recycle(std::mem::take(&mut scratch.path)),
        dropped: false,
        raw_hits,
        next_raw: 0,
        patterns,
        hits: std::mem::take(&mut scratch.hits),
        more: std::mem::take(&mut scratch.more),
        scrubbed: std::mem::take(&mut scratch.scrubbed),
    };
    let walked = w.document();
    *out = std::mem::take(&mut w.out);
    scratch.hits = std::mem::take(&mut w.hits);
    scratch.more = std::mem::take(&mut w.more);
    scratch.scrubbed = std::mem::take(&mut w.scrubbed);
    scratch.path = recycle(std::mem::take(&mut w.path));
    walked.map(|()| !w.dropped)
}

struct Walker<'a, 'c, 'e> {
    r: &'a Redactor,
    s: &'a str,
    b: &'a [u8],
    i: usize,
    out: String,
    counts: &'c mut Counts,
    explain: Option<&'e mut Vec<ExplainHit>>,
    /// Keys from the root to the current value (borrowed unless a key has escapes).
    path: Vec<Cow<'a, str>>,
    dropped: bool,
    /// Detector hits in the raw line, in order, and the first one not yet behind us.
    raw_hits: &'a [Hit],
    next_raw: usize,
    patterns: bool,
    /// Scratch space reused from value to value.
    hits: Vec<Hit>,
    more: Vec<Hit>,
    scrubbed: String,
}

impl<'a> Walker<'a, '_, '_> {
    /// The whole line: one object, whitespace around it, nothing else.
    fn document(&mut self) -> Result<(), NotJson> {
        self.ws();
        if self.peek() != Some(b'{') {
            return Err(NotJson);
        }
        self.value(None, 0)?;
        self.ws();
        if self.i != self.b.len() {
            return Err(NotJson);
        }
        Ok(())
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    /// Copies whitespace through.
    fn ws(&mut self) {
        if !matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            return; // the usual case: compact JSON
        }
        let start = self.i;
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
        self.out.push_str(&self.s[start..self.i]);
    }

    fn expect(&mut self, c: u8) -> Result<(), NotJson> {
        if self.peek() == Some(c) {
            self.out.push(char::from(c));
            self.i += 1;
            Ok(())
        } else {
            Err(NotJson)
        }
    }

    fn field_rule(&self) -> Option<usize> {
        self.r.fields.iter().position(|f| {
            f.path.len() == self.path.len()
                && f.path
                    .iter()
                    .zip(&self.path)
                    .all(|(want, got)| want == "*" || want.as_str() == got.as_ref())
        })
    }

    /// Parses a value at `i` and writes its scrubbed form. `key_rule`: the pattern rule the
    /// member's key marks the value with (`"password"`).
    fn value(&mut self, key_rule: Option<usize>, depth: usize) -> Result<(), NotJson> {
        if depth > MAX_DEPTH {
            return Err(NotJson);
        }
        if let Some(f) = self.field_rule() {
            return self.field_value(f);
        }
        match self.peek().ok_or(NotJson)? {
            b'{' => self.object(depth),
            b'[' => self.array(depth),
            b'"' => {
                let start = self.i;
                let text = self.string()?;
                self.scrub_scalar(start, text, key_rule, false);
                Ok(())
            }
            b'-' | b'0'..=b'9' => {
                let start = self.i;
                let integer = self.number()?;
                let raw = &self.s[start..self.i];
                self.scrub_scalar(start, Cow::Borrowed(raw), None, integer && raw.len() >= 8);
                Ok(())
            }
            _ => {
                for lit in ["true", "false", "null"] {
                    if self.s[self.i..].starts_with(lit) {
                        self.out.push_str(lit);
                        self.i += lit.len();
                        return Ok(());
                    }
                }
                Err(NotJson)
            }
        }
    }

    /// Applies the rules to one scalar that starts at `start` and ends at `self.i`: a string
    /// (`text` unescaped, borrowed when it had no escapes) or a number (`text` = its digits;
    /// `scan_number`: whether custom patterns look at it). Writes the raw form when nothing
    /// fires, else the scrubbed value as a JSON string.
    fn scrub_scalar(
        &mut self,
        start: usize,
        text: Cow<'a, str>,
        key_rule: Option<usize>,
        scan_number: bool,
    ) {
        let line = self.s;
        let raw = &line[start..self.i];
        let string = raw.starts_with('"');
        let mut hits = std::mem::take(&mut self.hits);
        hits.clear();
        if let Some(rule) =
            key_rule.filter(|&r| string && !text.is_empty() && !self.r.allowed(r, &text))
        {
            hits.push(Hit {
                start: 0,
                end: text.len(),
                rule,
            });
        } else if matches!(text, Cow::Owned(_)) {
            // Escapes: offsets in the raw line do not apply; scan the unescaped text.
            self.r.hits(&text, Scope::All, &mut hits);
        } else {
            // `text` is the raw bytes between the quotes (or the number itself).
            let from = if string { start + 1 } else { start };
            self.raw_hits_in(from, from + text.len(), &mut hits);
            if self.patterns && (string || scan_number) {
                let mut more = std::mem::take(&mut self.more);
                self.r.hits(&text, Scope::Patterns, &mut more);
                if !more.is_empty() {
                    hits.append(&mut more);
                    self.r.resolve_overlaps(&mut hits);
                }
                self.more = more;
            }
        }
        if hits.is_empty() {
            self.out.push_str(raw);
        } else if let Some(h) = hits
            .iter()
            .find(|h| self.r.rules[h.rule].action == Action::DropLine)
        {
            self.counts.bump(h.rule);
            self.dropped = true;
            self.note(h);
            self.out.push_str(raw);
        } else {
            let mut scrubbed = std::mem::take(&mut self.scrubbed);
            scrubbed.clear();
            // Room for the text and a marker or two, so rendering does not grow it in steps.
            scrubbed.reserve(text.len() + 64);
            self.r.render(&text, &hits, self.counts, &mut scrubbed);
            for h in &hits {
                self.note(h);
            }
            push_json_string(&mut self.out, &scrubbed);
            self.scrubbed = scrubbed;
        }
        self.hits = hits;
    }

    /// The raw-line hits that overlap `from..to`, clipped to it and made relative to `from`.
    /// Hits that end before `from` lay in keys or between values and are passed over.
    fn raw_hits_in(&mut self, from: usize, to: usize, out: &mut Vec<Hit>) {
        let raw = self.raw_hits;
        while raw.get(self.next_raw).is_some_and(|h| h.end <= from) {
            self.next_raw += 1;
        }
        for h in raw[self.next_raw..].iter().take_while(|h| h.start < to) {
            out.push(Hit {
                start: h.start.max(from) - from,
                end: h.end.min(to) - from,
                rule: h.rule,
            });
        }
    }

    fn note(&mut self, h: &Hit) {
        if let Some(e) = self.explain.as_deref_mut() {
            let path = self.path.join(".");
            e.push(self.r.explain_hit(h, Some(&path)));
        }
    }

    /// A value under a field rule: parsed (to find its end) but replaced as a whole.
    fn field_value(&mut self, f: usize) -> Result<(), NotJson> {
        let start = self.i;
        // Neither `string` nor `skip_value` writes output; the value is replaced whole.
        let text = if self.peek() == Some(b'"') {
            self.string()?
        } else {
            self.skip_value(0)?;
            Cow::Borrowed(&self.s[start..self.i])
        };
        let rule = &self.r.fields[f];
        let index = self.r.rules.len() + f;
        self.counts.bump(index);
        if let Some(e) = self.explain.as_deref_mut() {
            e.push(ExplainHit {
                rule: rule.name.clone(),
                action: rule.action.to_string(),
                field: Some(self.path.join(".")),
                range: 0..0,
            });
        }
        match rule.action {
            Action::DropLine => {
                self.dropped = true;
                self.out.push_str(&self.s[start..self.i]);
            }
            action => {
                let mut v = String::new();
                self.r.replacement(&rule.name, action, &text, None, &mut v);
                push_json_string(&mut self.out, &v);
            }
        }
        Ok(())
    }

    /// Skips a value without scrubbing it (validates syntax).
    fn skip_value(&mut self, depth: usize) -> Result<(), NotJson> {
        if depth > MAX_DEPTH {
            return Err(NotJson);
        }
        let skip_ws = |w: &mut Self| {
            while matches!(w.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
                w.i += 1;
            }
        };
        match self.peek().ok_or(NotJson)? {
            b'"' => self.string().map(drop),
            b'-' | b'0'..=b'9' => self.number().map(drop),
            open @ (b'{' | b'[') => {
                let close = if open == b'{' { b'}' } else { b']' };
                self.i += 1;
                skip_ws(self);
                if self.peek() == Some(close) {
                    self.i += 1;
                    return Ok(());
                }
                loop {
                    if open == b'{' {
                        self.string()?;
                        skip_ws(self);
                        if self.peek() != Some(b':') {
                            return Err(NotJson);
                        }
                        self.i += 1;
                        skip_ws(self);
                    }
                    self.skip_value(depth + 1)?;
                    skip_ws(self);
                    match self.peek() {
                        Some(b',') => {
                            self.i += 1;
                            skip_ws(self);
                        }
                        Some(c) if c == close => {
                            self.i += 1;
                            return Ok(());
                        }
                        _ => return Err(NotJson),
                    }
                }
            }
            _ => {
                for lit in ["true", "false", "null"] {
                    if self.s[self.i..].starts_with(lit) {
                        self.i += lit.len();
                        return Ok(());
                    }
                }
                Err(NotJson)
            }
        }
    }

    fn object(&mut self, depth: usize) -> Result<(), NotJson> {
        self.expect(b'{')?;
        let mut wrote_any = false;
        let mut first = true;
        // The first member's leading whitespace, reused when that member is dropped.
        let mut first_lead: Option<&str> = None;
        loop {
            // Leading whitespace of the member (or of the closing brace).
            let ws_start = self.i;
            while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
                self.i += 1;
            }
            let lead = &self.s[ws_start..self.i];
            if first && self.peek() == Some(b'}') {
                self.out.push_str(lead);
                self.i += 1;
                self.out.push('}');
                return Ok(());
            }
            first = false;
            let lead = if wrote_any {
                lead
            } else {
                *first_lead.get_or_insert(lead)
            };
            let key_start = self.i;
            let key = self.string()?;
            let key_raw = &self.s[key_start..self.i];
            self.path.push(key);
            let drop = self
                .field_rule()
                .filter(|&f| self.r.fields[f].action == Action::DropField);
            let mark = self.out.len();
            if wrote_any {
                self.out.push(',');
            }
            self.out.push_str(lead);
            self.out.push_str(key_raw);
            self.ws();
            self.expect(b':')?;
            self.ws();
            if let Some(f) = drop {
                self.skip_value(depth + 1)?;
                self.out.truncate(mark);
                self.counts.bump(self.r.rules.len() + f);
                if let Some(e) = self.explain.as_deref_mut() {
                    let rule = &self.r.fields[f];
                    e.push(ExplainHit {
                        rule: rule.name.clone(),
                        action: rule.action.to_string(),
                        field: Some(self.path.join(".")),
                        range: 0..0,
                    });
                }
            } else {
                let key_rule = self.path.last().and_then(|k| {
                    self.r
                        .key_rules
                        .iter()
                        .find(|(d, _)| d.json_key(k))
                        .map(|&(_, rule)| rule)
                });
                self.value(key_rule, depth + 1)?;
                wrote_any = true;
            }
            self.path.pop();
            // Trailing whitespace before `,` or `}` is kept only for kept members.
            let ws_start = self.i;
            while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
                self.i += 1;
            }
            if drop.is_none() {
                self.out.push_str(&self.s[ws_start..self.i]);
            }
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    self.out.push('}');
                    return Ok(());
                }
                _ => return Err(NotJson),
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<(), NotJson> {
        self.expect(b'[')?;
        self.ws();
        if self.peek() == Some(b']') {
            self.i += 1;
            self.out.push(']');
            return Ok(());
        }
        loop {
            self.value(None, depth + 1)?;
            self.ws();
            match self.peek() {
                Some(b',') => {
                    self.expect(b',')?;
                    self.ws();
                }
                Some(b']') => {
                    self.expect(b']')?;
                    return Ok(());
                }
                _ => return Err(NotJson),
            }
        }
    }

    /// Parses a string literal at `i` and returns its unescaped text, borrowed from the line
    /// when it has no escapes.
    fn string(&mut self) -> Result<Cow<'a, str>, NotJson> {
        if self.peek() != Some(b'"') {
            return Err(NotJson);
        }
        self.i += 1;
        let start = self.i;
        // Fast path: no escapes.
        let stop = memchr::memchr2(b'"', b'\\', &self.b[start..]).ok_or(NotJson)?;
        if has_control(&self.b[start..start + stop]) {
            return Err(NotJson);
        }
        self.i = start + stop;
        if self.b[self.i] == b'"' {
            self.i += 1;
            return Ok(Cow::Borrowed(&self.s[start..self.i - 1]));
        }
        let mut out = self.s[start..self.i].to_owned();
        loop {
            let c = self.peek().ok_or(NotJson)?;
            match c {
                b'"' => {
                    self.i += 1;
                    return Ok(Cow::Owned(out));
                }
                b'\\' => {
                    self.i += 1;
                    let e = self.peek().ok_or(NotJson)?;
                    self.i += 1;
                    match e {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let hi = self.hex4()?;
                            let cp = if (0xD800..0xDC00).contains(&hi) {
                                if !self.s[self.i..].starts_with("\\u") {
                                    return Err(NotJson);
                                }
                                self.i += 2;
                                let lo = self.hex4()?;
                                if !(0xDC00..0xE000).contains(&lo) {
                                    return Err(NotJson);
                                }
                                0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                            } else {
                                hi
                            };
                            out.push(char::from_u32(cp).ok_or(NotJson)?);
                        }
                        _ => return Err(NotJson),
                    }
                }
                0..=0x1f => return Err(NotJson),
                _ => {
                    // Copy one UTF-8 character.
                    let ch = self.s[self.i..].chars().next().ok_or(NotJson)?;
                    out.push(ch);
                    self.i += ch.len_utf8();
                }
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, NotJson> {
        let h = self.s.get(self.i..self.i + 4).ok_or(NotJson)?;
        let v = u32::from_str_radix(h, 16).map_err(|_| NotJson)?;
        if !h.bytes().all(|c| c.is_ascii_hexdigit()) {
            return Err(NotJson);
        }
        self.i += 4;
        Ok(v)
    }

    /// Parses a number at `i`; returns whether it is an integer.
    fn number(&mut self) -> Result<bool, NotJson> {
        let digits = |w: &mut Self| {
            let s = w.i;
            while w.peek().is_some_and(|c| c.is_ascii_digit()) {
                w.i += 1;
            }
            w.i - s
        };
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        if digits(self) == 0 {
            return Err(NotJson);
        }
        let mut integer = true;
        if self.peek() == Some(b'.') {
            self.i += 1;
            integer = false;
            if digits(self) == 0 {
                return Err(NotJson);
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            integer = false;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if digits(self) == 0 {
                return Err(NotJson);
            }
        }
        Ok(integer)
    }
}

/// Appends `s` as a JSON string literal.
/// Whether `b` has a byte below 0x20 (a control character, which JSON strings must
/// escape). Eight bytes per step: `x - 0x20` borrows into the high bit of a byte below
/// 0x20, and `!x` drops bytes of 0x80 and above; a borrow can only reach a higher byte
/// after a byte that is itself below 0x20, so the test is exact for "any".
fn has_control(b: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    let mut words = b.chunks_exact(8);
    for w in words.by_ref() {
        let x = u64::from_le_bytes(<[u8; 8]>::try_from(w).unwrap_or([0xff; 8]));
        if x.wrapping_sub(ONES * 0x20) & !x & (ONES * 0x80) != 0 {
            return true;
        }
    }
    words.remainder().iter().any(|&c| c < 0x20)
}

fn push_json_string(out: &mut String, s: &str) {
    if !s.bytes().any(|c| c == b'"' || c == b'\\' || c < 0x20) {
        // The usual case (a redaction marker in plain text): nothing to escape.
        out.reserve(s.len() + 2);
        out.push('"');
        out.push_str(s);
        out.push('"');
        return;
    }
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                out.push_str(&format!("\\u{:04x}", u32::from(c)));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {

    proptest::proptest! {
        /// The eight-bytes-at-a-time control check is the byte check, around the 0x20 and
        /// 0x80 edges where a borrow could leak into the next byte.
        #[test]
        fn has_control_is_the_byte_check(
            b in proptest::collection::vec(
                proptest::prop_oneof![
                    0x1eu8..=0x21,
                    0x7fu8..=0x81,
                    proptest::prelude::any::<u8>(),
                ],
                0..40,
            )
        ) {
            proptest::prop_assert_eq!(super::has_control(&b), b.iter().any(|&c| c < 0x20));
        }
    }
    use crate::pack::resolve;
    use crate::redact::{Counts, Redactor};

    const KEY: &[u8] = b"0123456789abcdef-test-key";

    fn redactor(team: &str) -> Redactor {
        let set = if team.is_empty() {
            resolve(&[]).unwrap()
        } else {
            resolve(&[("t.toml", team)]).unwrap()
        };
        Redactor::new(&set, Some(KEY)).unwrap()
    }

    fn apply(r: &Redactor, line: &str) -> Option<String> {
        r.apply(line, &mut Counts::default())
            .map(|c| c.into_owned())
    }

    #[test]
    fn pattern_rules_scrub_string_values_and_keep_order() {
        let r = redactor("");
        let line = r#"{"z":1,"msg":"mail kari@example.no","a":{"card":4111111111111111,"ok":true},"password":"hunter2"}"#;
        let out = apply(&r, line).unwrap();
        assert_eq!(
            out,
            r#"{"z":1,"msg":"mail [REDACTED:email]","a":{"card":"[REDACTED:card]","ok":true},"password":"[REDACTED:password]"}"#
        );
        serde_json::from_str::<serde_json::Value>(&out).unwrap();
    }

    #[test]
    fn escaped_values_are_found() {
        let r = redactor("");
        let out = apply(&r, r#"{"msg":"to kari\u0040example.no \"x\""}"#).unwrap();
        assert_eq!(out, r#"{"msg":"to [REDACTED:email] \"x\""}"#);
    }

    #[test]
    fn field_rules() {
        let team = r#"
[[field]]
path = "customer.email"
action = "hash"
[[field]]
path = "customer.phone"
action = "drop_field"
[[field]]
path = "items.*.pan"
action = "partial"
keep_last = 4
[[field]]
name = "debug-dump"
path = "debug"
action = "drop_line"
"#;
        let r = redactor(team);
        let line = r#"{"customer": {"phone": "x", "email": "Kari@Example.no", "id": 7}, "items":[{"a":{"pan":"5555555555554444"}}]}"#;
        let out = apply(&r, line).unwrap();
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        let email = v["customer"]["email"].as_str().unwrap();
        assert!(email.starts_with("[HASH:customer.email:"), "{out}");
        assert!(v["customer"].get("phone").is_none(), "{out}");
        assert_eq!(v["customer"]["id"], 7);
        assert_eq!(v["items"][0]["a"]["pan"], "************4444", "{out}");
        assert!(out.starts_with(r#"{"customer": {"email": "#), "{out}");
        let mut c = Counts::default();
        assert_eq!(r.apply(r#"{"debug":{"x":1}}"#, &mut c), None);
        assert_eq!(c.by_name(&r).get("debug-dump"), Some(&1));
        // Drop the only member.
        assert_eq!(
            apply(&r, r#"{"customer":{"phone":"1"}}"#).unwrap(),
            r#"{"customer":{}}"#
        );
    }

    /// A JSON line is walked for field rules only when it contains one of their keys; the
    /// outcome is the same as walking every line.
    #[test]
    fn field_rules_skip_lines_without_their_keys() {
        let r = redactor("[[field]]\npath = \"customer.email\"\naction = \"mask\"\n");
        let mut c = Counts::default();
        let plain = r#"{"customer":{"mail":"x","id":7}}"#;
        assert!(matches!(
            r.apply(plain, &mut c),
            Some(std::borrow::Cow::Borrowed(_))
        ));
        assert_eq!(
            apply(&r, r#"{"customer":{"email":"x"}}"#).unwrap(),
            r#"{"customer":{"email":"[REDACTED:customer.email]"}}"#
        );
        // A key written with an escape is still found (the line has a backslash).
        assert_eq!(
            apply(&r, r#"{"customer":{"em\u0061il":"x"}}"#).unwrap(),
            r#"{"customer":{"em\u0061il":"[REDACTED:customer.email]"}}"#
        );
        // Only wildcards: every line is walked.
        let any = redactor("[[field]]\npath = \"*\"\naction = \"drop_line\"\n");
        assert_eq!(any.apply(r#"{"a":1}"#, &mut c), None);
    }

    #[test]
    fn invalid_or_deep_json_falls_back_to_text() {
        let r = redactor("");
        assert_eq!(
            apply(&r, r#"{"msg": kari@example.no}"#).unwrap(),
            r#"{"msg": [REDACTED:email]}"#
        );
        let deep = format!("{}\"a@b.co\"{}", "{\"k\":".repeat(100), "}".repeat(100));
        let out = apply(&r, &deep).unwrap();
        assert!(out.contains("[REDACTED:email]") && !out.contains("a@b.co"));
    }

    #[test]
    fn detectors_see_the_key_of_a_value() {
        let r = redactor("");
        // The key gives the context a value alone lacks.
        assert_eq!(
            apply(&r, r#"{"msisdn":"4791234567","n":1}"#).unwrap(),
            r#"{"msisdn":"[REDACTED:phone]","n":1}"#
        );
        assert_eq!(
            apply(&r, r#"{"cpr": "0101901234"}"#).unwrap(),
            r#"{"cpr": "[REDACTED:dk-cpr]"}"#
        );
        // A Luhn-valid span id is not a card, whatever else the line holds.
        assert_eq!(
            apply(&r, r#"{"span_id":"6478729609390061","to":"a@b.co"}"#).unwrap(),
            r#"{"span_id":"6478729609390061","to":"[REDACTED:email]"}"#
        );
        // Keys are not scanned; a number with a match becomes a string.
        assert_eq!(
            apply(&r, r#"{"kari@example.no":5555555555554444}"#).unwrap(),
            r#"{"kari@example.no":"[REDACTED:card]"}"#
        );
        // A value with escapes is unescaped and scanned on its own.
        assert_eq!(
            apply(
                &r,
                r#"{"a":"x\"y","b":"kari\u0040example.no","c":"ola@example.no"}"#
            )
            .unwrap(),
            r#"{"a":"x\"y","b":"[REDACTED:email]","c":"[REDACTED:email]"}"#
        );
    }

    #[test]
    fn custom_patterns_run_per_value() {
        let team = "[[rule]]\nname = \"dbg\"\npattern = '^DEBUG'\n";
        let r = redactor(team);
        assert_eq!(
            apply(&r, r#"{"msg":"DEBUG x","card":"4111111111111111"}"#).unwrap(),
            r#"{"msg":"[REDACTED:dbg] x","card":"[REDACTED:card]"}"#
        );
    }

    #[test]
    fn clean_json_is_unchanged() {
        let r = redactor("");
        let line = r#"{"ts":"2026-11-26T10:00:00Z","amount":1234.50,"order_id":"ORD-2026-000123","seq":12345678}"#;
        assert_eq!(apply(&r, line).unwrap(), line);
    }
}
