//! The HTTP side of the client commands: the token, the request, and errors that say what to
//! do (401 → pass a token, 403 → the token's role or team, connection refused → is it
//! running).

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};
use fjord_wire::ErrorBody;
use serde::de::DeserializeOwned;

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
    /// Builds a client for `url` with the token from `token_file` or the environment.
    pub fn new(url: &str, token_file: Option<&Path>) -> anyhow::Result<Client> {
        Ok(Client {
            http: reqwest::Client::builder()
                .timeout(REQUEST_TIMEOUT)
                .build()
                .context("building the HTTP client")?,
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
                "cannot reach the aggregator at {}; is it running? (set --url or FJORD_URL)",
                self.base
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
