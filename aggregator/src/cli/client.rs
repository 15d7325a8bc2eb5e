//! The HTTP side of the client commands: the token, TLS (the server's CA, a client
//! certificate), the request, and errors that say what to do (401 → pass a token, 403 → the
//! token's role or team, connection refused → is it running, an untrusted certificate →
//! `--ca-file`).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use fjord_wire::ErrorBody;
use serde::de::DeserializeOwned;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::TlsClientArgs;

/// Timeout of one request (queries can scan a lot).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// Reads the bearer token: `--token-file` first, then `FJORD_TOKEN`.
pub fn read_token(file: Option<&Path>) -> anyhow::Result<Option<String>> {
    if let Some(p) = file {
        let t = std::fs::read_to_string(p)
            .with_context(|| format!("reading token file {}", p.display()))?;
        let t = t.trim();
        if t.is_empty() {
            bail!("token file {} is empty", p.display());
        }
        return Ok(Some(t.to_owned()));
    }
    Ok(std::env::var("FJORD_TOKEN")
        .ok()
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty()))
}

/// A configured client for one server.
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Client {
    /// Builds a client for `url` with the token from `token_file` or the environment, and
    /// the CA and client certificate of `tls`.
    pub fn new(
        url: &str,
        token_file: Option<&Path>,
        tls: &TlsClientArgs,
    ) -> anyhow::Result<Client> {
        let mut b = reqwest::Client::builder().timeout(REQUEST_TIMEOUT);
        for c in ca_certificates(tls)? {
            let c = reqwest::Certificate::from_der(c.as_ref())
                .context("reading the --ca-file certificate")?;
            b = b.add_root_certificate(c);
        }
        if let (Some(cert), Some(key)) = (&tls.client_cert, &tls.client_key) {
            let mut pem = read_file(cert, "--client-cert")?;
            pem.extend_from_slice(b"\n");
            pem.extend_from_slice(&read_file(key, "--client-key")?);
            let id = reqwest::Identity::from_pem(&pem).with_context(|| {
                format!(
                    "--client-cert {} / --client-key {}: not a PEM certificate and key",
                    cert.display(),
                    key.display()
                )
            })?;
            b = b.identity(id);
        }
        Ok(Client {
            http: b.build().context("building the HTTP client")?,
            base: url.trim_end_matches('/').to_owned(),
            token: read_token(token_file)?,
        })
    }

    /// GET `path` with `query`, decoding the JSON answer.
    pub async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> anyhow::Result<T> {
        let req = self.http.get(format!("{}{path}", self.base)).query(query);
        self.send(req, path).await
    }

    /// POST `body` as JSON to `path`, decoding the JSON answer.
    pub async fn post<B: serde::Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> anyhow::Result<T> {
        let req = self
            .http
            .post(format!("{}{path}", self.base))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(serde_json::to_vec(body).context("encoding the request")?);
        self.send(req, path).await
    }

    async fn send<T: DeserializeOwned>(
        &self,
        mut req: reqwest::RequestBuilder,
        what: &str,
    ) -> anyhow::Result<T> {
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.with_context(|| {
            format!(
                "cannot reach the aggregator at {}; is it running? (set --url or FJORD_URL{})",
                self.base,
                if self.base.starts_with("https://") {
                    "; a server certificate from a private CA needs --ca-file"
                } else {
                    ""
                }
            )
        })?;
        let status = resp.status();
        let body = resp.bytes().await.context("reading the response")?;
        if !status.is_success() {
            bail!("{}", explain(status.as_u16(), &body, self.token.is_some()));
        }
        serde_json::from_slice(&body)
            .with_context(|| format!("the server's answer to {what} is not what fjord expects"))
    }
}

fn read_file(p: &Path, flag: &str) -> anyhow::Result<Vec<u8>> {
    std::fs::read(p).with_context(|| format!("{flag} {}: cannot read", p.display()))
}

/// The certificates of `--ca-file`, none without it; a file without one is an error.
fn ca_certificates(tls: &TlsClientArgs) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let Some(p) = &tls.ca_file else {
        return Ok(Vec::new());
    };
    let pem = read_file(p, "--ca-file")?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("--ca-file {}: not PEM certificates", p.display()))?;
    if certs.is_empty() {
        bail!("--ca-file {}: no certificate in it", p.display());
    }
    Ok(certs)
}

/// A rustls client configuration as reqwest's (the public roots, plus `--ca-file`, plus the
/// client certificate), for the WebSocket of `tail`.
pub fn rustls_config(tls: &TlsClientArgs) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for c in ca_certificates(tls)? {
        roots
            .add(c)
            .context("the --ca-file certificate cannot be a trust root")?;
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .context("TLS versions")?
    .with_root_certificates(roots);
    let config = match (&tls.client_cert, &tls.client_key) {
        (Some(cert), Some(key)) => {
            let certs = CertificateDer::pem_slice_iter(&read_file(cert, "--client-cert")?)
                .collect::<Result<Vec<_>, _>>()
                .with_context(|| {
                    format!("--client-cert {}: not PEM certificates", cert.display())
                })?;
            let k = PrivateKeyDer::from_pem_slice(&read_file(key, "--client-key")?)
                .with_context(|| format!("--client-key {}: no PEM private key", key.display()))?;
            builder.with_client_auth_cert(certs, k).with_context(|| {
                format!(
                    "--client-cert {} / --client-key {}",
                    cert.display(),
                    key.display()
                )
            })?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// A failed request as a sentence that says what to do.
pub fn explain(status: u16, body: &[u8], had_token: bool) -> String {
    let reason = serde_json::from_slice::<ErrorBody>(body)
        .map(|e| e.error)
        .unwrap_or_else(|_| String::from_utf8_lossy(body).chars().take(300).collect());
    match status {
        401 if !had_token => {
            "the server needs a token: pass --token-file or set FJORD_TOKEN".to_owned()
        }
        401 => format!("the server refused the token ({reason}); check --token-file / FJORD_TOKEN"),
        403 => format!("the token is not allowed to do this: {reason}"),
        429 | 503 => format!("the server is busy ({status}): {reason}; try again shortly"),
        _ => format!("request failed ({status}): {reason}"),
    }
}
