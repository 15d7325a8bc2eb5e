//! The template subset of `line_format` and `label_format`: Go `text/template` text with
//! `{{ … }}` actions holding a pipeline of commands (`{{ .status | ToUpper }}`,
//! `{{ printf "%s-%s" .a .b }}`, `{{ default "none" .user }}`, `{{ trunc 10 .msg }}`).
//!
//! Invariants: a template is compiled once, at planning, and an unsupported action (`if`,
//! `range`, variables) is a planning error naming the action; rendering has no loops, so its
//! time is linear in the template and its inputs, and its output is cut at
//! [`MAX_TEMPLATE_OUTPUT_BYTES`]. A missing label renders as the empty string.

use std::fmt::Write;

use crate::limits::MAX_TEMPLATE_OUTPUT_BYTES;

/// A compiled template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(String),
    Action(Vec<Command>),
}

/// One command of a pipeline: a function and its arguments, or a lone operand.
#[derive(Debug, Clone, PartialEq)]
enum Command {
    Operand(Arg),
    Call(Func, Vec<Arg>),
}

#[derive(Debug, Clone, PartialEq)]
enum Arg {
    Field(String),
    Str(String),
    Num(f64),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Func {
    Upper,
    Lower,
    Title,
    TrimSpace,
    TrimPrefix,
    TrimSuffix,
    Replace,
    Printf,
    Default,
    Trunc,
    Substr,
    Line,
    Timestamp,
    AlignLeft,
    AlignRight,
}

const FUNCS: &[(&str, Func)] = &[
    ("ToUpper", Func::Upper),
    ("upper", Func::Upper),
    ("ToLower", Func::Lower),
    ("lower", Func::Lower),
    ("Title", Func::Title),
    ("title", Func::Title),
    ("TrimSpace", Func::TrimSpace),
    ("trim", Func::TrimSpace),
    ("TrimPrefix", Func::TrimPrefix),
    ("trimPrefix", Func::TrimPrefix),
    ("TrimSuffix", Func::TrimSuffix),
    ("trimSuffix", Func::TrimSuffix),
    ("Replace", Func::Replace),
    ("replace", Func::Replace),
    ("printf", Func::Printf),
    ("default", Func::Default),
    ("trunc", Func::Trunc),
    ("substr", Func::Substr),
    ("__line__", Func::Line),
    ("__timestamp__", Func::Timestamp),
    ("alignLeft", Func::AlignLeft),
    ("alignRight", Func::AlignRight),
];

/// What a template reads while rendering: labels by name, the line and its timestamp.
pub trait Vars {
    /// A label's value ("" when missing).
    fn label(&self, name: &str) -> &str;
    /// The current line.
    fn line(&self) -> &str;
    /// The entry's timestamp, Unix ns.
    fn ts(&self) -> i64;
}

impl Template {
    /// Compiles template text; the error names the problem and its byte offset.
    pub fn compile(src: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = src;
        let mut offset = 0;
        let mut trim_next = false;
        while !rest.is_empty() {
            let Some(open) = rest.find("{{") else {
                let mut t = rest;
                if trim_next {
                    t = t.trim_start();
                }
                parts.push(Part::Text(t.to_owned()));
                break;
            };
            let mut text = &rest[..open];
            if trim_next {
                text = text.trim_start();
            }
            let mut body_start = open + 2;
            if rest[body_start..].starts_with("- ") {
                text = text.trim_end();
                body_start += 1;
            }
            if !text.is_empty() {
                parts.push(Part::Text(text.to_owned()));
            }
            let Some(close) = rest[body_start..].find("}}") else {
                return Err(format!("unclosed action at byte {}", offset + open));
            };
            let mut body = &rest[body_start..body_start + close];
            trim_next = false;
            if body.ends_with(" -") {
                body = &body[..body.len() - 1];
                trim_next = true;
            }
            parts.push(Part::Action(
                pipeline(body).map_err(|e| format!("{e} in action at byte {}", offset + open))?,
            ));
            let consumed = body_start + close + 2;
            rest = &rest[consumed..];
            offset += consumed;
        }
        Ok(Template { parts })
    }

    /// Renders into `out` (cleared first), cut at [`MAX_TEMPLATE_OUTPUT_BYTES`].
    pub fn render(&self, vars: &dyn Vars, out: &mut String) {
        out.clear();
        for p in &self.parts {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Action(cmds) => {
                    let v = run(cmds, vars);
                    out.push_str(&v);
                }
            }
            if out.len() > MAX_TEMPLATE_OUTPUT_BYTES {
                let mut cut = MAX_TEMPLATE_OUTPUT_BYTES;
                while !out.is_char_boundary(cut) {
                    cut -= 1;
                }
                out.truncate(cut);
                return;
            }
        }
    }

    /// Whether the template is plain text without actions.
    pub fn is_literal(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Text(_)))
    }
}

/// Splits action text into tokens: quoted strings stay whole.
fn tokens(body: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut chars = body.char_indices().peekable();
    while let Some(&(i, c)) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        if c == '|' || c == '(' || c == ')' {
            out.push(c.to_string());
            chars.next();
            continue;
        }
        if c == '"' || c == '`' {
            chars.next();
            let mut s = String::from(c);
            let mut closed = false;
            while let Some((_, d)) = chars.next() {
                s.push(d);
                if d == '\\' && c == '"' {
                    if let Some((_, e)) = chars.next() {
                        s.push(e);
                    }
                    continue;
                }
                if d == c {
                    closed = true;
                    break;
                }
            }
            if !closed {
                return Err("unterminated string".to_owned());
            }
            out.push(s);
            continue;
        }
        let start = i;
        let mut end = body.len();
        while let Some(&(j, d)) = chars.peek() {
            if d.is_whitespace() || d == '|' || d == '(' || d == ')' {
                end = j;
                break;
            }
            chars.next();
        }
        out.push(body[start..end].to_owned());
    }
    Ok(out)
}

fn unquote(tok: &str) -> Result<String, String> {
    if let Some(raw) = tok.strip_prefix('`') {
        return Ok(raw.trim_end_matches('`').to_owned());
    }
    let inner = &tok[1..tok.len() - 1];
    let mut out = String::new();
    let mut it = inner.chars();
    while let Some(c) = it.next() {
        if c == '\\' {
            match it.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('"') => out.push('"'),
                Some('\\') => out.push('\\'),
                Some(o) => return Err(format!("unknown escape \\{o}")),
                None => return Err("unterminated escape".to_owned()),
            }
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

fn arg(tok: &str) -> Result<Arg, String> {
    if let Some(f) = tok.strip_prefix('.') {
        if f.is_empty() || !f.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("unsupported field {tok:?}"));
        }
        return Ok(Arg::Field(f.to_owned()));
    }
    if tok.starts_with('"') || tok.starts_with('`') {
        return Ok(Arg::Str(unquote(tok)?));
    }
    if let Ok(n) = tok.parse::<f64>() {
        return Ok(Arg::Num(n));
    }
    Err(format!("unsupported template word {tok:?}"))
}

fn pipeline(body: &str) -> Result<Vec<Command>, String> {
    let toks = tokens(body)?;
    if toks.is_empty() {
        return Err("empty action".to_owned());
    }
    if let Some(first) = toks.first() {
        if matches!(
            first.as_str(),
            "if" | "else" | "end" | "range" | "with" | "define" | "template" | "block"
        ) || first.starts_with('$')
        {
            return Err(format!("the {first:?} action is not supported"));
        }
    }
    let mut cmds = Vec::new();
    for cmd in toks.split(|t| t == "|") {
        let Some(head) = cmd.first() else {
            return Err("empty command in pipeline".to_owned());
        };
        if cmd.iter().any(|t| t == "(" || t == ")") {
            return Err("parenthesised pipelines are not supported".to_owned());
        }
        if let Some((_, f)) = FUNCS.iter().find(|(n, _)| n == head) {
            let args = cmd[1..].iter().map(|t| arg(t)).collect::<Result<_, _>>()?;
            cmds.push(Command::Call(*f, args));
        } else if cmd.len() == 1 {
            cmds.push(Command::Operand(arg(head)?));
        } else {
            return Err(format!("unknown function {head:?}"));
        }
    }
    Ok(cmds)
}

fn value(a: &Arg, vars: &dyn Vars) -> String {
    match a {
        Arg::Field(f) => vars.label(f).to_owned(),
        Arg::Str(s) => s.clone(),
        Arg::Num(n) => format!("{n}"),
    }
}

fn num_arg(a: Option<&String>) -> i64 {
    a.and_then(|s| s.parse::<f64>().ok())
        .map_or(0, |f| f as i64)
}

fn run(cmds: &[Command], vars: &dyn Vars) -> String {
    let mut piped: Option<String> = None;
    for c in cmds {
        let out = match c {
            Command::Operand(a) => value(a, vars),
            Command::Call(f, args) => {
                let mut a: Vec<String> = args.iter().map(|x| value(x, vars)).collect();
                if let Some(p) = piped.take() {
                    a.push(p);
                }
                call(*f, &a, vars)
            }
        };
        piped = Some(out);
    }
    piped.unwrap_or_default()
}

fn clip(s: &str, max_chars: usize) -> &str {
    match s.char_indices().nth(max_chars) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

fn call(f: Func, a: &[String], vars: &dyn Vars) -> String {
    let last = a.last().map_or("", String::as_str);
    match f {
        Func::Upper => last.to_uppercase(),
        Func::Lower => last.to_lowercase(),
        Func::Title => {
            let mut out = String::with_capacity(last.len());
            let mut start = true;
            for c in last.chars() {
                if start {
                    out.extend(c.to_uppercase());
                } else {
                    out.push(c);
                }
                start = !c.is_alphanumeric();
            }
            out
        }
        Func::TrimSpace => last.trim().to_owned(),
        Func::TrimPrefix => match a {
            [p, s] => s.strip_prefix(p.as_str()).unwrap_or(s).to_owned(),
            _ => last.to_owned(),
        },
        Func::TrimSuffix => match a {
            [p, s] => s.strip_suffix(p.as_str()).unwrap_or(s).to_owned(),
            _ => last.to_owned(),
        },
        Func::Replace => match a {
            [old, new, s] => {
                // Bound the output before building it: n occurrences × the new text.
                let n = if old.is_empty() {
                    s.len() + 1
                } else {
                    s.matches(old.as_str()).count()
                };
                if s.len() + n.saturating_mul(new.len()) > MAX_TEMPLATE_OUTPUT_BYTES * 2 {
                    s.clone()
                } else {
                    s.replace(old.as_str(), new)
                }
            }
            _ => last.to_owned(),
        },
        Func::Default => match a {
            [d, v] if v.is_empty() => d.clone(),
            [_, v] => v.clone(),
            [d] => d.clone(),
            _ => String::new(),
        },
        Func::Trunc => match a {
            [n, s] => {
                let n = num_arg(Some(n));
                let count = s.chars().count() as i64;
                if n >= 0 {
                    clip(s, n as usize).to_owned()
                } else {
                    let skip = (count + n).max(0) as usize;
                    s.chars().skip(skip).collect()
                }
            }
            _ => last.to_owned(),
        },
        Func::Substr => match a {
            [start, end, s] => {
                let (st, en) = (num_arg(Some(start)).max(0) as usize, num_arg(Some(end)));
                let en = if en < 0 { usize::MAX } else { en as usize };
                s.chars().skip(st).take(en.saturating_sub(st)).collect()
            }
            _ => last.to_owned(),
        },
        Func::AlignLeft | Func::AlignRight => match a {
            [n, s] => {
                let n = num_arg(Some(n)).clamp(0, 4096) as usize;
                let c = s.chars().count();
                if c >= n {
                    clip(s, n).to_owned()
                } else if f == Func::AlignLeft {
                    format!("{s}{}", " ".repeat(n - c))
                } else {
                    format!("{}{s}", " ".repeat(n - c))
                }
            }
            _ => last.to_owned(),
        },
        Func::Line => vars.line().to_owned(),
        Func::Timestamp => vars.ts().to_string(),
        Func::Printf => printf(a),
    }
}

/// Go's `fmt.Sprintf` for the verbs templates use: `%s %v %d %f %g %q %x %%`, with flags
/// `-`, `0`, width and precision (width capped at 4096).
fn printf(a: &[String]) -> String {
    let Some((fmt, args)) = a.split_first() else {
        return String::new();
    };
    let mut out = String::new();
    let mut args = args.iter();
    let mut it = fmt.chars().peekable();
    while let Some(c) = it.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut left = false;
        let mut zero = false;
        while let Some(&f) = it.peek() {
            match f {
                '-' => left = true,
                '0' => zero = true,
                '+' | ' ' | '#' => {}
                _ => break,
            }
            it.next();
        }
        let mut width = 0usize;
        while let Some(d) = it.peek().and_then(|c| c.to_digit(10)) {
            width = (width * 10 + d as usize).min(4096);
            it.next();
        }
        let mut prec = None;
        if it.peek() == Some(&'.') {
            it.next();
            let mut p = 0usize;
            while let Some(d) = it.peek().and_then(|c| c.to_digit(10)) {
                p = (p * 10 + d as usize).min(64);
                it.next();
            }
            prec = Some(p);
        }
        let Some(verb) = it.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.next() else {
            let _ = write!(out, "%!{verb}(MISSING)");
            continue;
        };
        let s = match verb {
            's' | 'v' => match prec {
                Some(p) => clip(arg, p).to_owned(),
                None => arg.clone(),
            },
            'q' => format!("{arg:?}"),
            'd' => match arg.parse::<i64>() {
                Ok(n) => n.to_string(),
                Err(_) => format!("%!d(string={arg})"),
            },
            'f' | 'F' | 'e' | 'g' => match arg.parse::<f64>() {
                Ok(n) if verb == 'e' => format!("{n:.*e}", prec.unwrap_or(6)),
                Ok(n) if verb == 'g' => match prec {
                    Some(p) => format!("{n:.p$}"),
                    None => format!("{n}"),
                },
                Ok(n) => format!("{n:.*}", prec.unwrap_or(6)),
                Err(_) => format!("%!{verb}(string={arg})"),
            },
            'x' => match arg.parse::<i64>() {
                Ok(n) => format!("{n:x}"),
                Err(_) => arg.bytes().map(|b| format!("{b:02x}")).collect(),
            },
            other => format!("%!{other}(string={arg})"),
        };
        let len = s.chars().count();
        if len < width {
            let pad = width - len;
            if left {
                out.push_str(&s);
                out.push_str(&" ".repeat(pad));
            } else {
                out.push_str(&(if zero { "0" } else { " " }).repeat(pad));
                out.push_str(&s);
            }
        } else {
            out.push_str(&s);
        }
        if out.len() > MAX_TEMPLATE_OUTPUT_BYTES {
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    struct V(BTreeMap<&'static str, &'static str>);
    impl Vars for V {
        fn label(&self, n: &str) -> &str {
            self.0.get(n).copied().unwrap_or("")
        }
        fn line(&self) -> &str {
            "the line"
        }
        fn ts(&self) -> i64 {
            42
        }
    }

    fn render(t: &str) -> String {
        let v = V([("a", "hello"), ("n", "7"), ("e", "")]
            .into_iter()
            .collect());
        let mut out = String::new();
        Template::compile(t).unwrap().render(&v, &mut out);
        out
    }

    #[test]
    fn table() {
        for (t, want) in [
            ("{{.a}} world", "hello world"),
            ("{{ .a | ToUpper }}", "HELLO"),
            ("{{ ToUpper .a }}", "HELLO"),
            ("{{ printf \"%s-%03d|%-4s|\" .a .n .n }}", "hello-007|7   |"),
            ("{{ printf \"%.2f\" .n }}", "7.00"),
            ("{{ default \"none\" .e }}", "none"),
            ("{{ .e | default \"none\" }}", "none"),
            ("{{ .missing }}x", "x"),
            ("{{ trunc 3 .a }}", "hel"),
            ("{{ trunc -2 .a }}", "lo"),
            ("{{ replace \"l\" \"L\" .a }}", "heLLo"),
            ("{{ __line__ }} at {{ __timestamp__ }}", "the line at 42"),
            ("a  {{- .n -}}  b", "a7b"),
            ("{{ .a | title }}", "Hello"),
        ] {
            assert_eq!(render(t), want, "{t}");
        }
    }

    #[test]
    fn unsupported_actions_are_refused() {
        for t in [
            "{{ if .a }}x{{ end }}",
            "{{ $x := 1 }}",
            "{{ nope .a }}",
            "{{ .a",
            "{{}}",
        ] {
            assert!(Template::compile(t).is_err(), "{t}");
        }
    }

    #[test]
    fn output_is_bounded() {
        let mut out = String::new();
        let v = V(BTreeMap::new());
        let t = Template::compile(&"{{ alignLeft 4000 \"x\" }}".repeat(100)).unwrap();
        t.render(&v, &mut out);
        assert!(out.len() <= MAX_TEMPLATE_OUTPUT_BYTES);
    }
}
