//! Shipping: one pooled HTTP client, the residency guard, and sending a batch until the
//! aggregator gives a final answer. Transient faults (connection errors, 5xx, 429) are
//! retried forever with capped exponential backoff and full jitter, honouring `Retry-After`;
//! data is never dropped for a transient fault.

use std::time::{Duration, Instant};

use fjord_wire::ledger::{LedgerAck, LedgerPush, LedgerPushRow, LedgerRecord, LEDGER_PATH};
use fjord_wire::{headers as fh, Info};
use reqwest::StatusCode;

use crate::metrics::Metrics;

/// Cap of the retry backoff.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// First retry delay.
pub const MIN_BACKOFF: Duration = Duration::from_millis(100);

pub use crate::batch::OutBatch;

/// The aggregator's final answer.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    Stored,
    Duplicate,
    /// 400/413/415…: the batch will never be accepted; dead-letter it.
    Rejected(u16, String),
}

/// Why the residency guard refuses a destination.
pub fn residency_refusal(info: &Info, allowed: &[String]) -> Option<String> {
    if allowed.iter().any(|j| j == &info.jurisdiction) {
        return None;
    }
    if info.jurisdiction == fjord_wire::info::UNSET {
        return Some(format!(
            "the aggregator declares no jurisdiction; start it with --jurisdiction <J> --region <R> (one of {:?}) or set allowed_jurisdictions",
            allowed
        ));
    }
    Some(format!(
        "the aggregator declares jurisdiction {:?}, which is not in allowed_jurisdictions {:?}",
        info.jurisdiction, allowed
    ))
}

/// Full-jitter backoff for attempt `n` (0-based): uniform in [0, min(cap, base·2ⁿ)].
pub fn backoff(n: u32, seed: &mut u64) -> Duration {
    let ceiling = MIN_BACKOFF
        .saturating_mul(1u32 << n.min(16))
        .min(MAX_BACKOFF);
    // xorshift64: jitter needs no cryptographic randomness.
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    let frac = (*seed >> 11) as f64 / (1u64 << 53) as f64;
    ceiling.mul_f64(frac)
}

/// Why a send attempt failed transiently.
#[derive(Debug)]
pub struct Transient {
    pub reason: String,
    /// The server's `Retry-After`, if it gave one.
    pub retry_after: Option<Duration>,
    /// The connection failed (not an HTTP answer): check residency again before resending.
    pub connection: bool,
}

/// Parses `Retry-After` as delay-seconds (capped at 5 minutes). HTTP-dates are not used
/// by the aggregator; they fall back to backoff.
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    v.trim()
        .parse::<u64>()
        .ok()
        .map(|s| Duration::from_secs(s.min(300)))
}

/// The client side of the wire.
pub struct Shipper {
    client: reqwest::Client,
    url: String,
    token: Option<String>,
    agent_id: String,
}

/// Why the client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("ca_file {path}: {source}")]
    CaFile {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("ca_file {path}: not PEM certificates: {source}")]
    CaPem {
        path: std::path::PathBuf,
        #[source]
        source: reqwest::Error,
    },
    #[error("ca_file {path}: no certificate in it")]
    NoCertificate { path: std::path::PathBuf },
    #[error("client_cert_file/client_key_file {path}: {source}")]
    ClientFile {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("client_cert_file {cert} / client_key_file {key}: not a PEM certificate and its key: {source}")]
    ClientIdentity {
        cert: std::path::PathBuf,
        key: std::path::PathBuf,
        #[source]
        source: reqwest::Error,
    },
    #[error("building the HTTP client: {0}")]
    Build(#[source] reqwest::Error),
}

/// Why `/v1/info` gave no residency declaration.
#[derive(Debug, thiserror::Error)]
pub enum InfoError {
    #[error("cannot reach the aggregator: {}", error_chain(.0))]
    Unreachable(#[source] reqwest::Error),
    #[error("/v1/info answered {0}")]
    Status(StatusCode),
    #[error("reading /v1/info failed: {0}")]
    Read(#[source] reqwest::Error),
    #[error("/v1/info is not a residency declaration: {0}")]
    NotADeclaration(#[source] serde_json::Error),
}

/// An error with its causes, `a: b: c`: reqwest's own message names only the request, and
/// the reason (a refused connection, an untrusted or expired server certificate) is in its
/// sources. With a hint when the reason is the server's certificate.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let s_text = s.to_string();
        if !out.contains(&s_text) {
            out.push_str(": ");
            out.push_str(&s_text);
        }
        cur = s.source();
    }
    if out.contains("invalid peer certificate") {
        out.push_str(" (the aggregator's TLS certificate is not trusted: check ca_file, the certificate's host names and its expiry)");
    } else if out.contains("CertificateRequired") || out.contains("certificate required") {
        out.push_str(" (the aggregator requires a client certificate: set client_cert_file and client_key_file)");
    }
    out
}

/// The certificates of a `ca_file` (PEM); a file without one is an error.
pub fn load_ca(p: &std::path::Path) -> Result<Vec<reqwest::Certificate>, ClientError> {
    let pem = std::fs::read(p).map_err(|source| ClientError::CaFile {
        path: p.to_owned(),
        source,
    })?;
    let certs =
        reqwest::Certificate::from_pem_bundle(&pem).map_err(|source| ClientError::CaPem {
            path: p.to_owned(),
            source,
        })?;
    if certs.is_empty() {
        return Err(ClientError::NoCertificate { path: p.to_owned() });
    }
    Ok(certs)
}

/// A client certificate and its key (PEM files), as the client presents them.
pub fn load_identity(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<reqwest::Identity, ClientError> {
    let read = |p: &std::path::Path| {
        std::fs::read(p).map_err(|source| ClientError::ClientFile {
            path: p.to_owned(),
            source,
        })
    };
    let mut pem = read(cert)?;
    pem.push(b'\n');
    pem.extend_from_slice(&read(key)?);
    reqwest::Identity::from_pem(&pem).map_err(|source| ClientError::ClientIdentity {
        cert: cert.to_owned(),
        key: key.to_owned(),
        source,
    })
}

impl Shipper {
    /// One pooled keep-alive client for every request; `ca_file` adds trusted roots (PEM),
    /// `identity` (certificate file, key file) is presented to an aggregator that asks.
    pub fn new(
        url: &str,
        token: Option<String>,
        agent_id: &str,
        ca_file: Option<&std::path::Path>,
        identity: Option<(&std::path::Path, &std::path::Path)>,
    ) -> Result<Shipper, ClientError> {
        let mut b = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(60))
            .pool_idle_timeout(Duration::from_secs(50))
            .pool_max_idle_per_host(8)
            .tcp_keepalive(Duration::from_secs(30))
            .user_agent(concat!("fjord-agent/", env!("CARGO_PKG_VERSION")));
        if let Some(p) = ca_file {
            for c in load_ca(p)? {
                b = b.add_root_certificate(c);
            }
        }
        if let Some((cert, key)) = identity {
            b = b.identity(load_identity(cert, key)?);
        }
        let client = b.build().map_err(ClientError::Build)?;
        Ok(Shipper {
            client,
            url: url.to_owned(),
            token,
            agent_id: agent_id.to_owned(),
        })
    }

    /// The destination URL, for the ledger.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// `GET /v1/info`.
    pub async fn info(&self) -> Result<Info, InfoError> {
        let resp = self
            .client
            .get(format!("{}/v1/info", self.url))
            .send()
            .await
            .map_err(InfoError::Unreachable)?;
        if !resp.status().is_success() {
            return Err(InfoError::Status(resp.status()));
        }
        let body = resp.bytes().await.map_err(InfoError::Read)?;
        serde_json::from_slice::<Info>(&body).map_err(InfoError::NotADeclaration)
    }

    /// One attempt. `Err` is transient: retry (after `retry_after` if given).
    /// Each attempt's answer (status or `error`) and latency go to `metrics`.
    pub async fn send_once(&self, b: &OutBatch, metrics: &Metrics) -> Result<Answer, Transient> {
        let mut req = self
            .client
            .post(format!("{}/loki/api/v1/push", self.url))
            .header("content-type", "application/json")
            .header("content-encoding", "zstd")
            .header(fh::BATCH_ID, &b.batch_id)
            .header(fh::AGENT, &self.agent_id)
            .header(fh::RULES, &b.rules_version)
            .header(fh::REDACTIONS, &b.redactions)
            .body(b.body.clone());
        // The body is cloned per attempt: reqwest consumes it, and retries need it again.
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let started = Instant::now();
        let resp = req.send().await.map_err(|e| {
            metrics.record_response(None);
            Transient {
                reason: format!("send failed: {}", error_chain(&e)),
                retry_after: None,
                connection: true,
            }
        })?;
        metrics
            .send_duration
            .observe(started.elapsed().as_secs_f64());
        let status = resp.status();
        metrics.record_response(Some(status.as_u16()));
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let transient = |reason: String| Transient {
            reason,
            retry_after,
            connection: false,
        };
        match status {
            StatusCode::NO_CONTENT => Ok(Answer::Stored),
            s if s.is_success() => {
                let body = resp.bytes().await.unwrap_or_default();
                let dup = serde_json::from_slice::<fjord_wire::StatusBody>(&body)
                    .is_ok_and(|b| b.status == "duplicate");
                Ok(if dup {
                    Answer::Duplicate
                } else {
                    Answer::Stored
                })
            }
            StatusCode::TOO_MANY_REQUESTS | StatusCode::REQUEST_TIMEOUT => {
                Err(transient(format!("aggregator answered {status}")))
            }
            // A token problem is fixed by an operator, not by dropping data: keep retrying.
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(transient(format!(
                "aggregator refused the token ({status}); check token_file"
            ))),
            s if s.is_client_error() => {
                let body = resp.bytes().await.unwrap_or_default();
                let reason = serde_json::from_slice::<fjord_wire::ErrorBody>(&body)
                    .map(|e| e.error)
                    .unwrap_or_else(|_| "no reason given".to_owned());
                Ok(Answer::Rejected(s.as_u16(), reason))
            }
            _ => Err(transient(format!("aggregator answered {status}"))),
        }
    }
}

/// Why a ledger push was not taken; retry after `retry_after` (or a backoff).
#[derive(Debug)]
pub struct LedgerRefused {
    pub reason: String,
    pub retry_after: Option<Duration>,
    /// The aggregator has no ledger endpoint (an older version): try again much later.
    pub unsupported: bool,
}

impl Shipper {
    /// `POST /v1/ledger` with `rows` (id, row) of this agent's ledger, in order, and the
    /// agent's `team` label.
    pub async fn send_ledger(
        &self,
        team: Option<&str>,
        rows: &[(i64, LedgerRecord)],
    ) -> Result<LedgerAck, LedgerRefused> {
        let push = LedgerPush {
            team: team.map(str::to_owned),
            rows: rows
                .iter()
                .map(|(seq, record)| LedgerPushRow {
                    seq: *seq,
                    record: record.clone(),
                })
                .collect(),
        };
        let refused = |reason: String, retry_after, unsupported| LedgerRefused {
            reason,
            retry_after,
            unsupported,
        };
        let mut req = self
            .client
            .post(format!("{}{LEDGER_PATH}", self.url))
            .header(fh::AGENT, &self.agent_id)
            .header("content-type", "application/json")
            .body(serde_json::to_vec(&push).unwrap_or_default());
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| refused(format!("send failed: {}", error_chain(&e)), None, false))?;
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        if status.is_success() {
            let body = resp.bytes().await.unwrap_or_default();
            return serde_json::from_slice::<LedgerAck>(&body).map_err(|e| {
                let reason = fjord_wire::codec::json_reason(&e);
                refused(
                    format!("the answer is not a ledger ack: {reason}"),
                    None,
                    false,
                )
            });
        }
        let unsupported = matches!(
            status,
            StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED
        );
        let body = resp.bytes().await.unwrap_or_default();
        let reason = serde_json::from_slice::<fjord_wire::ErrorBody>(&body)
            .map(|e| e.error)
            .unwrap_or_else(|_| "no reason given".to_owned());
        Err(refused(
            format!("aggregator answered {status}: {reason}"),
            retry_after,
            unsupported,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_capped_and_jittered() {
        let mut seed = 0x9e37_79b9_7f4a_7c15;
        for n in 0..40 {
            let d = backoff(n, &mut seed);
            assert!(d <= MAX_BACKOFF);
        }
        let a = backoff(3, &mut seed);
        let b = backoff(3, &mut seed);
        assert_ne!(a, b);
    }

    #[test]
    fn residency_guard() {
        let mut info = Info {
            name: "x".into(),
            version: "1".into(),
            region: "eu-north-1".into(),
            jurisdiction: "EEA".into(),
            audit_keys: Vec::new(),
        };
        let allowed = vec!["EEA".to_owned()];
        assert!(residency_refusal(&info, &allowed).is_none());
        info.jurisdiction = "unset".into();
        assert!(residency_refusal(&info, &allowed)
            .unwrap()
            .contains("--jurisdiction"));
        info.jurisdiction = "US".into();
        assert!(residency_refusal(&info, &allowed)
            .unwrap()
            .contains("\"US\""));
    }
}
