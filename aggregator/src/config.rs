//! `serve` configuration: an optional TOML file, overridden by command-line flags, validated
//! into a [`ServeConfig`] before any file is opened or port bound.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use fjord_wire::info::UNSET;
use fjord_wire::Info;
use serde::Deserialize;
use thiserror::Error;

/// Default listen address: loopback, Loki's port.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:3100";
/// Default data directory, relative to the working directory.
pub const DEFAULT_DATA_DIR: &str = "data";
/// Default most entries one query may return (Loki's `max_entries_limit_per_query`).
pub const DEFAULT_MAX_QUERY_LINES: usize = 100_000;
/// Default number of push requests decoded and stored at once.
pub const DEFAULT_INGEST_CONCURRENCY: usize = 4;

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("{path}: cannot read config: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{location}: {reason}")]
    Parse { location: String, reason: String },
    #[error("invalid {field}: {reason}")]
    Invalid { field: &'static str, reason: String },
}

/// The config file. Every field is optional; flags override it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Address and port to listen on, e.g. `0.0.0.0:3100`.
    pub listen: Option<String>,
    /// Directory of the SQLite store.
    pub data_dir: Option<PathBuf>,
    /// Declared region, e.g. `eu-north-1`. Served at `/v1/info`.
    pub region: Option<String>,
    /// Declared jurisdiction, e.g. `EEA`. Agents refuse to ship to an undeclared one.
    pub jurisdiction: Option<String>,
    /// Most entries one query may return.
    pub max_query_lines: Option<usize>,
    /// Push requests decoded and stored at once; more are answered 429.
    pub ingest_concurrency: Option<usize>,
}

/// Values given on the command line, which win over the file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub region: Option<String>,
    pub jurisdiction: Option<String>,
}

/// The checked configuration.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub info: Info,
    pub max_query_lines: usize,
    pub ingest_concurrency: usize,
}

/// Reads the file (if any), applies overrides and validates.
pub fn load(path: Option<&Path>, o: Overrides) -> Result<ServeConfig, ConfigError> {
    let file = match path {
        None => FileConfig::default(),
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Io {
                path: p.to_owned(),
                source,
            })?;
            parse_file(&p.display().to_string(), &text)?
        }
    };
    let listen_s = o
        .listen
        .or(file.listen)
        .unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
    let listen: SocketAddr = listen_s.parse().map_err(|_| ConfigError::Invalid {
        field: "listen",
        reason: format!("{listen_s:?} is not an IP:port address, e.g. 127.0.0.1:3100"),
    })?;
    let region = declaration("region", o.region.or(file.region))?;
    let jurisdiction = declaration("jurisdiction", o.jurisdiction.or(file.jurisdiction))?;
    let max_query_lines = file.max_query_lines.unwrap_or(DEFAULT_MAX_QUERY_LINES);
    if max_query_lines == 0 {
        return Err(ConfigError::Invalid {
            field: "max_query_lines",
            reason: "must be at least 1".into(),
        });
    }
    let ingest_concurrency = file
        .ingest_concurrency
        .unwrap_or(DEFAULT_INGEST_CONCURRENCY);
    if !(1..=1024).contains(&ingest_concurrency) {
        return Err(ConfigError::Invalid {
            field: "ingest_concurrency",
            reason: "must be between 1 and 1024".into(),
        });
    }
    Ok(ServeConfig {
        listen,
        data_dir: o
            .data_dir
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
        info: Info {
            name: "fjord-aggregator".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            region,
            jurisdiction,
        },
        max_query_lines,
        ingest_concurrency,
    })
}

fn declaration(field: &'static str, v: Option<String>) -> Result<String, ConfigError> {
    match v {
        None => Ok(UNSET.to_owned()),
        Some(s) => {
            let ok = !s.is_empty()
                && s.len() <= 64
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
            if ok {
                Ok(s)
            } else {
                Err(ConfigError::Invalid {
                    field,
                    reason: "must be 1-64 characters of letters, digits, '-', '_' or '.'".into(),
                })
            }
        }
    }
}

/// Parses config text; errors carry `label:line:col`.
pub fn parse_file(label: &str, text: &str) -> Result<FileConfig, ConfigError> {
    toml::from_str(text).map_err(|e| {
        let location = match e.span() {
            Some(span) => {
                let before = &text[..span.start.min(text.len())];
                let line = before.matches('\n').count() + 1;
                let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_declare_unset() {
        let c = load(None, Overrides::default()).unwrap();
        assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(c.info.jurisdiction, UNSET);
        assert_eq!(c.info.region, UNSET);
    }

    #[test]
    fn flags_override_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("agg.toml");
        std::fs::write(
            &p,
            "listen = \"0.0.0.0:9000\"\nregion = \"eu-west-1\"\njurisdiction = \"EEA\"\n",
        )
        .unwrap();
        let c = load(
            Some(&p),
            Overrides {
                region: Some("eu-north-1".into()),
                ..Overrides::default()
            },
        )
        .unwrap();
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.info.region, "eu-north-1");
        assert_eq!(c.info.jurisdiction, "EEA");
    }

    #[test]
    fn errors_point_at_the_line() {
        let err = parse_file("agg.toml", "region = \"x\"\nlisten_addr = \"a\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("agg.toml:2:1"), "{err}");
        assert!(err.contains("unknown field"), "{err}");
        let err = load(
            None,
            Overrides {
                listen: Some("nope".into()),
                ..Overrides::default()
            },
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("invalid listen"), "{err}");
        let err = load(
            None,
            Overrides {
                jurisdiction: Some("E E A".into()),
                ..Overrides::default()
            },
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("invalid jurisdiction"), "{err}");
    }
}
