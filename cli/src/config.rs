//! Config files as both binaries read them: TOML into serde structs with
//! `deny_unknown_fields`, errors at `file:line:col`, whole numbers checked against a range,
//! and durations in one syntax.
//!
//! Durations are humantime strings (`linger = "250ms"`, `checkpoint_ttl = "7d"`). The integer
//! keys that came before them (`linger_ms = 250`, unit in the name) are still read, and each
//! use is reported as a [`Deprecation`] that the binary logs at start and `check-config`
//! prints; a file that sets both forms of one key is refused.
//!
//! A value is checked after the whole file has parsed, so its error names the key; [`load`]
//! then finds the line that sets the key and reports the error there, so an operator is
//! pointed at `file:line:col` for a syntax error and a bad value alike.

use std::fmt;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use thiserror::Error;

/// A configuration problem. Messages name the key or the file position; config values may be
/// quoted, log content never is.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: cannot read config: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A syntax error, an unknown key, or a bad value at a known position.
    #[error("{location}: {reason}")]
    Parse { location: String, reason: String },
    /// A bad value whose position is not known (it came from a flag, or is a default that
    /// conflicts with another value).
    #[error("invalid {field}: {reason}")]
    Invalid { field: String, reason: String },
}

/// A bad value of `field`.
pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

/// Parses config text; errors carry `label:line:col`.
pub fn parse<T: DeserializeOwned>(label: &str, text: &str) -> Result<T, ConfigError> {
    toml::from_str(text).map_err(|e| {
        let location = match e.span() {
            Some(span) => {
                let (line, col) = line_col(text, span.start);
                format!("{label}:{line}:{col}")
            }
            None => label.to_owned(),
        };
        ConfigError::Parse {
            location,
            reason: e.message().trim_end().to_owned(),
        }
    })
}

/// The 1-based line and column (in characters) of byte `offset` of `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset.min(text.len())).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// The `line:col` of the key `field` set in `text`: the start of the line that assigns its
/// last dotted part, or holds that table's header; failing that, the same for the part before
/// it (a key inside an inline table is found at the line that assigns the table). `None`
/// when the file sets none of them.
pub fn locate(text: &str, field: &str) -> Option<(usize, usize)> {
    field.rsplit('.').find_map(|key| locate_key(text, key))
}

fn locate_key(text: &str, key: &str) -> Option<(usize, usize)> {
    text.lines().enumerate().find_map(|(i, line)| {
        let t = line.trim_start();
        let col = line.len() - t.len() + 1;
        let assigns = t
            .strip_prefix(key)
            .is_some_and(|rest| rest.trim_start().starts_with('='));
        let header = t.starts_with('[') && t.trim_matches(['[', ']', ' ']) == key;
        (assigns || header).then_some((i + 1, col))
    })
}

/// A key given in its deprecated integer form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deprecation {
    /// The deprecated key, e.g. `linger_ms` (dotted inside a table: `listener.idle_timeout_ms`).
    pub key: String,
    /// What to write instead, e.g. `linger = "250ms"`.
    pub instead: String,
    /// `file:line:col` of the key, when it came from a file.
    pub location: Option<String>,
}

impl fmt::Display for Deprecation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(l) = &self.location {
            write!(f, "{l}: ")?;
        }
        write!(
            f,
            "`{}` (an integer) is deprecated; write `{}`",
            self.key, self.instead
        )
    }
}

/// Reads the file at `path` (none: every key at its default), parses it and hands it to
/// `check`, which turns it into the checked config and records each deprecated key it used.
/// An [`ConfigError::Invalid`] from `check` is reported at the line that sets the key, and
/// each deprecation gets its location too.
pub fn load<F, C>(
    path: Option<&Path>,
    check: impl FnOnce(F, &mut Vec<Deprecation>) -> Result<C, ConfigError>,
) -> Result<(C, Vec<Deprecation>), ConfigError>
where
    F: DeserializeOwned + Default,
{
    let mut deprecations = Vec::new();
    let Some(path) = path else {
        return check(F::default(), &mut deprecations).map(|c| (c, deprecations));
    };
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
        path: path.to_owned(),
        source,
    })?;
    let label = path.display().to_string();
    let file: F = parse(&label, &text)?;
    let at = |key: &str| locate(&text, key).map(|(line, col)| format!("{label}:{line}:{col}"));
    match check(file, &mut deprecations) {
        Ok(c) => {
            for d in &mut deprecations {
                d.location = at(&d.key);
            }
            Ok((c, deprecations))
        }
        Err(ConfigError::Invalid { field, reason }) => Err(match at(&field) {
            Some(location) => ConfigError::Parse {
                location,
                reason: format!("invalid {field}: {reason}"),
            },
            None => ConfigError::Invalid { field, reason },
        }),
        Err(e) => Err(e),
    }
}

/// `v` (or `default`) if it lies in `range`; otherwise an error naming the range.
pub fn ranged<T>(
    field: &str,
    v: Option<T>,
    default: T,
    range: RangeInclusive<T>,
) -> Result<T, ConfigError>
where
    T: PartialOrd + fmt::Display + Copy,
{
    let v = v.unwrap_or(default);
    if range.contains(&v) {
        Ok(v)
    } else {
        Err(invalid(
            field,
            format!(
                "{v} is out of range: must be between {} and {}",
                range.start(),
                range.end()
            ),
        ))
    }
}

/// The unit of a deprecated integer duration key, which its name's suffix says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Millis,
    Hours,
    Days,
}

impl Unit {
    fn suffix(self) -> &'static str {
        match self {
            Unit::Millis => "_ms",
            Unit::Hours => "_hours",
            Unit::Days => "_days",
        }
    }

    /// `n` of this unit as a humantime string, as a file should now write it.
    fn text(self, n: u64) -> String {
        match self {
            Unit::Millis => humantime::format_duration(Duration::from_millis(n)).to_string(),
            Unit::Hours => format!("{n}h"),
            Unit::Days => format!("{n}d"),
        }
    }

    fn duration(self, n: u64) -> Option<Duration> {
        match self {
            Unit::Millis => Some(Duration::from_millis(n)),
            Unit::Hours => n.checked_mul(3600).map(Duration::from_secs),
            Unit::Days => n.checked_mul(86_400).map(Duration::from_secs),
        }
    }
}

/// A duration value as a file may give it where a table maps names to durations: a humantime
/// string, or (deprecated) an integer in the unit the table documents.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum DurationValue {
    Text(String),
    Integer(u64),
}

/// One duration setting: `name = "250ms"`, or the deprecated `name<suffix> = 250` in `unit`;
/// `default` when neither is set. The value must lie in `range`; errors name the key as the
/// file wrote it, so [`load`] can point at its line.
pub struct DurationKey<'a> {
    /// The key's name, dotted inside a table (`multiline.timeout`).
    pub name: &'a str,
    /// The deprecated integer key, when it is not `name` with the unit's suffix.
    pub legacy: Option<&'a str>,
    /// Unit of the deprecated integer key `name` + its suffix.
    pub unit: Unit,
    pub default: Duration,
    pub range: RangeInclusive<Duration>,
}

impl DurationKey<'_> {
    /// Resolves the key from its two forms.
    pub fn resolve(
        &self,
        text: Option<&str>,
        integer: Option<u64>,
        deprecations: &mut Vec<Deprecation>,
    ) -> Result<Duration, ConfigError> {
        let legacy = match self.legacy {
            Some(l) => l.to_owned(),
            None => format!("{}{}", self.name, self.unit.suffix()),
        };
        let out_of_range = |key: &str, value: String| {
            invalid(
                key,
                format!(
                    "{value} is out of range: must be between {} and {}",
                    humantime::format_duration(*self.range.start()),
                    humantime::format_duration(*self.range.end())
                ),
            )
        };
        let (key, d) = match (text, integer) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    &legacy,
                    format!("set either `{}` or `{legacy}`, not both", self.name),
                ))
            }
            (Some(t), None) => {
                let d = fjord_wire::clock::parse_duration(t)
                    .map_err(|e| invalid(self.name, e.to_string()))?;
                (self.name.to_owned(), d)
            }
            (None, Some(n)) => {
                let d = self
                    .unit
                    .duration(n)
                    .ok_or_else(|| out_of_range(&legacy, n.to_string()))?;
                deprecations.push(Deprecation {
                    key: legacy.clone(),
                    instead: format!(
                        "{} = \"{}\"",
                        self.name.rsplit('.').next().unwrap_or(self.name),
                        self.unit.text(n)
                    ),
                    location: None,
                });
                (legacy, d)
            }
            (None, None) => return Ok(self.default),
        };
        if !self.range.contains(&d) {
            return Err(out_of_range(
                &key,
                humantime::format_duration(d).to_string(),
            ));
        }
        Ok(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        count: Option<u32>,
        linger: Option<String>,
        linger_ms: Option<u64>,
    }

    fn check(f: File, dep: &mut Vec<Deprecation>) -> Result<(u32, Duration), ConfigError> {
        let linger = DurationKey {
            name: "linger",
            legacy: None,
            unit: Unit::Millis,
            default: Duration::from_millis(250),
            range: Duration::ZERO..=Duration::from_secs(60),
        }
        .resolve(f.linger.as_deref(), f.linger_ms, dep)?;
        Ok((ranged("count", f.count, 3, 1..=10)?, linger))
    }

    fn load_text(text: &str) -> Result<((u32, Duration), Vec<Deprecation>), ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(&p, text).unwrap();
        load(Some(&p), check).map_err(|e| match e {
            ConfigError::Parse { location, reason } => ConfigError::Parse {
                location: location.rsplit('/').next().unwrap_or_default().to_owned(),
                reason,
            },
            e => e,
        })
    }

    #[test]
    fn syntax_errors_and_bad_values_point_at_file_line_col() {
        let e = load_text("count = 2\nnope = 1\n").unwrap_err().to_string();
        assert!(e.starts_with("c.toml:2:1: unknown field `nope`"), "{e}");
        let e = load_text("\n  count = 11\n").unwrap_err().to_string();
        assert_eq!(
            e,
            "c.toml:2:3: invalid count: 11 is out of range: must be between 1 and 10"
        );
        let e = load_text("linger = \"2m\"\n").unwrap_err().to_string();
        assert_eq!(
            e,
            "c.toml:1:1: invalid linger: 2m is out of range: must be between 0s and 1m"
        );
        let e = load_text("linger = \"soon\"\n").unwrap_err().to_string();
        assert!(
            e.starts_with("c.toml:1:1: invalid linger: cannot parse duration"),
            "{e}"
        );
    }

    #[test]
    fn durations_are_humantime_and_integers_are_deprecated() {
        let ((_, d), dep) = load_text("linger = \"1s 500ms\"\n").unwrap();
        assert_eq!(d, Duration::from_millis(1500));
        assert!(dep.is_empty());

        let ((_, d), dep) = load_text("count = 1\nlinger_ms = 50\n").unwrap();
        assert_eq!(d, Duration::from_millis(50));
        assert_eq!(dep.len(), 1);
        assert_eq!(
            dep[0].to_string(),
            format!(
                "{}: `linger_ms` (an integer) is deprecated; write `linger = \"50ms\"`",
                dep[0].location.as_deref().unwrap()
            )
        );
        assert!(dep[0].location.as_deref().unwrap().ends_with("c.toml:2:1"));

        let e = load_text("linger = \"1s\"\nlinger_ms = 5\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.ends_with("invalid linger_ms: set either `linger` or `linger_ms`, not both"),
            "{e}"
        );
        // Without a file every key has its default.
        let ((n, d), dep) = load(None, check).unwrap();
        assert_eq!((n, d, dep.len()), (3, Duration::from_millis(250), 0));
    }

    #[test]
    fn locate_finds_assignments_and_table_headers() {
        let text = "a = 1\n[limits]\n  max = 2\n";
        assert_eq!(locate(text, "a"), Some((1, 1)));
        assert_eq!(locate(text, "limits.max"), Some((3, 3)));
        assert_eq!(locate(text, "limits"), Some((2, 1)));
        assert_eq!(locate(text, "other"), None);
        let inline = "[retention]\nteams = { payments = 90 }\n";
        assert_eq!(locate(inline, "retention.teams.payments"), Some((2, 1)));
    }
}
