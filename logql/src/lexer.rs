//! The LogQL lexer: query text → tokens, each with the byte offset it starts at.
//!
//! Invariants: the lexer never panics on any input (every slice is taken at a char boundary
//! it has just walked over); a number followed by unit letters is one token, classified as a
//! duration (`5m`, `1h30m`, `250ms`) or a byte size (`20MB`, `1KiB`) so that the parser never
//! has to re-split text; keywords are plain identifiers that the parser reads in context,
//! because LogQL's keywords (`by`, `or`, `offset`, …) are also valid label names.

use crate::error::ParseError;
use crate::units;

/// One token kind.
#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    /// `[a-zA-Z_][a-zA-Z0-9_]*`
    Ident(String),
    /// A quoted string, unescaped.
    Str(String),
    /// A number without unit.
    Num(f64),
    /// A duration, in nanoseconds.
    Duration(i64),
    /// A byte size.
    Bytes(u64),
    /// `--name` (logfmt's flags).
    Flag(String),
    LBrace,
    RBrace,
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    /// `|`
    Pipe,
    /// `|=`
    PipeEq,
    /// `|~`
    PipeTilde,
    /// `|>`
    PipeGt,
    /// `!=`
    Neq,
    /// `!~`
    NotTilde,
    /// `!>`
    NotGt,
    /// `=`
    Eq,
    /// `==`
    EqEq,
    /// `=~`
    EqTilde,
    Gt,
    Gte,
    Lt,
    Lte,
    Plus,
    Minus,
    Star,
    Slash,
    Percent,
    Caret,
    Eof,
}

impl Tok {
    /// How the token reads in an error message.
    pub fn describe(&self) -> String {
        match self {
            Tok::Ident(s) => format!("identifier {s:?}"),
            Tok::Str(_) => "a string".to_owned(),
            Tok::Num(n) => format!("number {n}"),
            Tok::Duration(_) => "a duration".to_owned(),
            Tok::Bytes(_) => "a byte size".to_owned(),
            Tok::Flag(f) => format!("flag --{f}"),
            Tok::Eof => "end of the query".to_owned(),
            other => format!("'{}'", other.symbol()),
        }
    }

    fn symbol(&self) -> &'static str {
        match self {
            Tok::LBrace => "{",
            Tok::RBrace => "}",
            Tok::LParen => "(",
            Tok::RParen => ")",
            Tok::LBracket => "[",
            Tok::RBracket => "]",
            Tok::Comma => ",",
            Tok::Pipe => "|",
            Tok::PipeEq => "|=",
            Tok::PipeTilde => "|~",
            Tok::PipeGt => "|>",
            Tok::Neq => "!=",
            Tok::NotTilde => "!~",
            Tok::NotGt => "!>",
            Tok::Eq => "=",
            Tok::EqEq => "==",
            Tok::EqTilde => "=~",
            Tok::Gt => ">",
            Tok::Gte => ">=",
            Tok::Lt => "<",
            Tok::Lte => "<=",
            Tok::Plus => "+",
            Tok::Minus => "-",
            Tok::Star => "*",
            Tok::Slash => "/",
            Tok::Percent => "%",
            Tok::Caret => "^",
            _ => "?",
        }
    }
}

/// A token and the byte offset of its first character.
#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    pub tok: Tok,
    pub at: usize,
}

/// Splits `src` into tokens, ending with [`Tok::Eof`].
pub fn lex(src: &str) -> Result<Vec<Token>, ParseError> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        // `#` starts a comment to the end of the line, as in Loki.
        if c == b'#' {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        let at = i;
        let two = b.get(i + 1).copied();
        let (tok, len) = match (c, two) {
            (b'|', Some(b'=')) => (Tok::PipeEq, 2),
            (b'|', Some(b'~')) => (Tok::PipeTilde, 2),
            (b'|', Some(b'>')) => (Tok::PipeGt, 2),
            (b'|', _) => (Tok::Pipe, 1),
            (b'!', Some(b'=')) => (Tok::Neq, 2),
            (b'!', Some(b'~')) => (Tok::NotTilde, 2),
            (b'!', Some(b'>')) => (Tok::NotGt, 2),
            (b'=', Some(b'=')) => (Tok::EqEq, 2),
            (b'=', Some(b'~')) => (Tok::EqTilde, 2),
            (b'=', _) => (Tok::Eq, 1),
            (b'>', Some(b'=')) => (Tok::Gte, 2),
            (b'>', _) => (Tok::Gt, 1),
            (b'<', Some(b'=')) => (Tok::Lte, 2),
            (b'<', _) => (Tok::Lt, 1),
            (b'{', _) => (Tok::LBrace, 1),
            (b'}', _) => (Tok::RBrace, 1),
            (b'(', _) => (Tok::LParen, 1),
            (b')', _) => (Tok::RParen, 1),
            (b'[', _) => (Tok::LBracket, 1),
            (b']', _) => (Tok::RBracket, 1),
            (b',', _) => (Tok::Comma, 1),
            (b'+', _) => (Tok::Plus, 1),
            (b'*', _) => (Tok::Star, 1),
            (b'/', _) => (Tok::Slash, 1),
            (b'%', _) => (Tok::Percent, 1),
            (b'^', _) => (Tok::Caret, 1),
            (b'-', Some(b'-')) => {
                let start = i + 2;
                let mut j = start;
                while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'-' || b[j] == b'_')
                {
                    j += 1;
                }
                if j == start {
                    return Err(ParseError::at(src, at, "expected a flag name after '--'"));
                }
                (Tok::Flag(src[start..j].to_owned()), j - i)
            }
            (b'-', _) => (Tok::Minus, 1),
            (b'"', _) | (b'`', _) => {
                let (s, len) = string(src, i)?;
                (Tok::Str(s), len)
            }
            (c, _)
                if c.is_ascii_digit() || (c == b'.' && two.is_some_and(|d| d.is_ascii_digit())) =>
            {
                number(src, i)?
            }
            (c, _) if c.is_ascii_alphabetic() || c == b'_' => {
                let mut j = i;
                while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
                    j += 1;
                }
                (Tok::Ident(src[i..j].to_owned()), j - i)
            }
            _ => {
                let ch = src[i..].chars().next().unwrap_or('?');
                return Err(ParseError::at(
                    src,
                    at,
                    format!("unexpected character {ch:?}"),
                ));
            }
        };
        out.push(Token { tok, at });
        i += len;
    }
    out.push(Token {
        tok: Tok::Eof,
        at: src.len(),
    });
    Ok(out)
}

/// A number, possibly with a duration or byte-size unit: `12`, `1.5`, `1e3`, `5m`, `1h30m`,
/// `20MB`. Returns the token and its length.
fn number(src: &str, start: usize) -> Result<(Tok, usize), ParseError> {
    let b = src.as_bytes();
    let mut j = start;
    // Hexadecimal integers, as PromQL accepts them.
    if b[j] == b'0' && matches!(b.get(j + 1), Some(b'x') | Some(b'X')) {
        let mut k = j + 2;
        while k < b.len() && b[k].is_ascii_hexdigit() {
            k += 1;
        }
        if k > j + 2 {
            let v = u64::from_str_radix(&src[j + 2..k], 16)
                .map_err(|_| ParseError::at(src, start, "hexadecimal number out of range"))?;
            return Ok((Tok::Num(v as f64), k - start));
        }
    }
    while j < b.len() && (b[j].is_ascii_digit() || b[j] == b'.') {
        j += 1;
    }
    // An exponent, only when digits follow it (`1e3`), so that `1e` is not half a number.
    if j < b.len() && (b[j] == b'e' || b[j] == b'E') {
        let mut k = j + 1;
        if k < b.len() && (b[k] == b'+' || b[k] == b'-') {
            k += 1;
        }
        if k < b.len() && b[k].is_ascii_digit() {
            while k < b.len() && b[k].is_ascii_digit() {
                k += 1;
            }
            j = k;
        }
    }
    // Unit letters (and further number+unit groups, as in `1h30m`); µ is two bytes.
    let mut end = j;
    loop {
        let rest = &src[end..];
        let c = rest.chars().next();
        match c {
            Some(c) if c.is_ascii_alphabetic() || c == 'µ' || c.is_ascii_digit() || c == '.' => {
                end += c.len_utf8();
            }
            _ => break,
        }
    }
    let text = &src[start..end];
    if end == j {
        let v: f64 = text
            .parse()
            .map_err(|_| ParseError::at(src, start, format!("invalid number {text:?}")))?;
        return Ok((Tok::Num(v), end - start));
    }
    if let Some(ns) = units::parse_duration(text) {
        return Ok((Tok::Duration(ns), end - start));
    }
    if let Some(bytes) = units::parse_bytes(text) {
        return Ok((Tok::Bytes(bytes), end - start));
    }
    Err(ParseError::at(
        src,
        start,
        format!("invalid number, duration or byte size {text:?}"),
    ))
}

/// A double-quoted string with Go escapes, or a back-quoted raw string. Returns the value and
/// the length of the literal.
fn string(src: &str, start: usize) -> Result<(String, usize), ParseError> {
    let quote = src.as_bytes()[start];
    let body = &src[start + 1..];
    if quote == b'`' {
        return match body.find('`') {
            Some(end) => Ok((body[..end].to_owned(), end + 2)),
            None => Err(ParseError::at(src, start, "unterminated raw string")),
        };
    }
    let mut out = String::new();
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((out, i + 2)),
            '\\' => {
                let at = start + 1 + i;
                match chars.next() {
                    Some((_, 'n')) => out.push('\n'),
                    Some((_, 't')) => out.push('\t'),
                    Some((_, 'r')) => out.push('\r'),
                    Some((_, 'a')) => out.push('\x07'),
                    Some((_, 'b')) => out.push('\x08'),
                    Some((_, 'f')) => out.push('\x0c'),
                    Some((_, 'v')) => out.push('\x0b'),
                    Some((_, '\\')) => out.push('\\'),
                    Some((_, '"')) => out.push('"'),
                    Some((_, '\'')) => out.push('\''),
                    Some((_, 'u')) => {
                        let hex: String =
                            (0..4).filter_map(|_| chars.next().map(|x| x.1)).collect();
                        let ch = u32::from_str_radix(&hex, 16)
                            .ok()
                            .and_then(char::from_u32)
                            .ok_or_else(|| ParseError::at(src, at, "invalid \\u escape"))?;
                        out.push(ch);
                    }
                    Some((_, 'x')) => {
                        let hex: String =
                            (0..2).filter_map(|_| chars.next().map(|x| x.1)).collect();
                        let ch = u8::from_str_radix(&hex, 16)
                            .ok()
                            .filter(u8::is_ascii)
                            .ok_or_else(|| ParseError::at(src, at, "invalid \\x escape"))?;
                        out.push(char::from(ch));
                    }
                    Some(_) => return Err(ParseError::at(src, at, "unknown escape sequence")),
                    None => break,
                }
            }
            c => out.push(c),
        }
    }
    Err(ParseError::at(src, start, "unterminated string"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<Tok> {
        lex(s).unwrap().into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn numbers_durations_bytes() {
        assert_eq!(
            toks("5m 1h30m 250ms 20MB 1.5 1e3 0x10"),
            vec![
                Tok::Duration(300_000_000_000),
                Tok::Duration(5_400_000_000_000),
                Tok::Duration(250_000_000),
                Tok::Bytes(20_000_000),
                Tok::Num(1.5),
                Tok::Num(1000.0),
                Tok::Num(16.0),
                Tok::Eof
            ]
        );
    }

    #[test]
    fn operators() {
        assert_eq!(
            toks("|= != |~ !~ |> !> | == = =~ >= <= --strict"),
            vec![
                Tok::PipeEq,
                Tok::Neq,
                Tok::PipeTilde,
                Tok::NotTilde,
                Tok::PipeGt,
                Tok::NotGt,
                Tok::Pipe,
                Tok::EqEq,
                Tok::Eq,
                Tok::EqTilde,
                Tok::Gte,
                Tok::Lte,
                Tok::Flag("strict".into()),
                Tok::Eof
            ]
        );
    }

    #[test]
    fn never_panics_on_odd_text() {
        for s in [
            "\"\\", "`", "1µ", "1µs", "é", "\"\\u12", "0x", "--", "1.2.3",
        ] {
            let _ = lex(s);
        }
    }
}
