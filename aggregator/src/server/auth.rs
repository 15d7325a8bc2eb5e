//! Authentication and authorisation: the [`Caller`] extractor.
//!
//! Tokens live in the config only as SHA-256 hashes, each with a name, a team and a role. A
//! presented token (`Authorization: Bearer <t>`, or the password of HTTP Basic auth, which is
//! what Grafana's data source sends) is hashed and compared against every configured hash in
//! constant time. Invariants: a 401/403 body names the problem and the token's *name* at most,
//! never the presented secret; with no tokens configured every caller is the anonymous admin,
//! which config validation only allows on a loopback address.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{AppError, AppState};
pub use crate::config::{Role, Token};
use crate::logql::{LogQuery, MatchOp, Matcher};

/// The caller's name in open (loopback-only, token-less) mode, as the access log records it.
pub const ANONYMOUS: &str = "anonymous-loopback";

/// The configured tokens. Empty means open (loopback-only) mode.
#[derive(Debug, Clone, Default)]
pub struct Auth {
    tokens: Vec<Token>,
}

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Token name, or [`ANONYMOUS`] in open mode.
    pub name: String,
    pub role: Role,
    /// The token's team; `None` for a team-less admin or open mode.
    pub team: Option<String>,
}

/// Hex SHA-256 of a token, as the config stores it.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.trim().as_bytes()))
}

impl Auth {
    /// Builds the checker from validated tokens.
    pub fn new(tokens: Vec<Token>) -> Auth {
        Auth { tokens }
    }

    /// Whether requests need no token (no tokens configured).
    pub fn is_open(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Finds the token whose hash matches; every stored hash is compared in constant time.
    fn lookup(&self, presented: &str) -> Option<&Token> {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let mut found = None;
        for t in &self.tokens {
            if bool::from(t.hash.ct_eq(&digest)) && found.is_none() {
                found = Some(t);
            }
        }
        found
    }

    /// Authenticates the `Authorization` header value (if any).
    pub fn authenticate(&self, authorization: Option<&[u8]>) -> Result<Caller, AppError> {
        if self.is_open() {
            return Ok(Caller {
                name: ANONYMOUS.to_owned(),
                role: Role::Admin,
                team: None,
            });
        }
        let Some(value) = authorization else {
            return Err(unauthorized(
                "missing token: send Authorization: Bearer <token>",
            ));
        };
        let presented = presented_token(value).ok_or_else(|| {
            unauthorized(
                "Authorization must be `Bearer <token>` or Basic auth with the token as password",
            )
        })?;
        match self.lookup(&presented) {
            Some(t) => Ok(Caller {
                name: t.name.clone(),
                role: t.role,
                team: t.team.clone(),
            }),
            None => Err(unauthorized("unknown token")),
        }
    }
}

fn unauthorized(reason: &str) -> AppError {
    AppError::new(StatusCode::UNAUTHORIZED, reason)
}

/// Extracts the secret from `Bearer <t>` or `Basic base64(user:t)`.
fn presented_token(value: &[u8]) -> Option<String> {
    let s = std::str::from_utf8(value).ok()?.trim();
    let (scheme, rest) = s.split_once(' ')?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") && !rest.is_empty() {
        return Some(rest.to_owned());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64_decode(rest)?;
        let text = String::from_utf8(decoded).ok()?;
        let (_, password) = text.split_once(':')?;
        if !password.is_empty() {
            return Some(password.to_owned());
        }
    }
    None
}

/// Standard base64 (with or without padding); `None` on any invalid character.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    fn val(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    let s = s.trim_end_matches('=');
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        acc = (acc << 6) | val(c)?;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

impl Caller {
    fn forbidden(&self, what: &str) -> AppError {
        AppError::new(
            StatusCode::FORBIDDEN,
            format!(
                "token {:?} has role {} and may not {what}",
                self.name,
                self.role.as_str()
            ),
        )
    }

    /// Allows pushes (ingest and admin tokens).
    pub fn require_ingest(&self) -> Result<(), AppError> {
        match self.role {
            Role::Ingest | Role::Admin => Ok(()),
            Role::Read => Err(self.forbidden("push")),
        }
    }

    /// Allows queries (read and admin tokens).
    pub fn require_read(&self) -> Result<(), AppError> {
        match self.role {
            Role::Read | Role::Admin => Ok(()),
            Role::Ingest => Err(self.forbidden("query")),
        }
    }

    /// Allows erasure and other administration.
    pub fn require_admin(&self) -> Result<(), AppError> {
        match self.role {
            Role::Admin => Ok(()),
            _ => Err(self.forbidden("administer (erase)")),
        }
    }

    /// The team a read is confined to: the token's team unless it is an admin.
    pub fn read_scope(&self) -> Option<&str> {
        match self.role {
            Role::Admin => None,
            _ => self.team.as_deref(),
        }
    }

    /// Confines a query to the caller's team: adds `team="<t>"` to the selector. A selector
    /// that names another team with `=` is answered 403 rather than silently empty.
    pub fn scope_query(&self, q: &mut LogQuery) -> Result<(), AppError> {
        let Some(team) = self.read_scope() else {
            return Ok(());
        };
        if let Some(other) = q
            .matchers
            .iter()
            .find(|m| m.name == "team" && m.op == MatchOp::Eq && m.value != team)
        {
            return Err(AppError::new(
                StatusCode::FORBIDDEN,
                format!(
                    "token {:?} may only read team {team:?}, not {:?}",
                    self.name, other.value
                ),
            ));
        }
        let m = Matcher::new("team", MatchOp::Eq, team)
            .map_err(|e| AppError::internal("scoping the query", &e))?;
        q.matchers.push(m);
        Ok(())
    }
}

impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        st: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let caller = st.auth.authenticate(
            parts
                .headers
                .get(header::AUTHORIZATION)
                .map(|v| v.as_bytes()),
        );
        if let Err(e) = &caller {
            tracing::debug!(path = %parts.uri.path(), reason = %e.reason, "refused request");
        }
        caller
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> Auth {
        let tok = |name: &str, secret: &str, team: Option<&str>, role| Token {
            name: name.into(),
            hash: hex::decode(hash_token(secret)).unwrap().try_into().unwrap(),
            team: team.map(Into::into),
            role,
        };
        Auth::new(vec![
            tok("pay-in", "s3cret-in", Some("payments"), Role::Ingest),
            tok("pay-read", "s3cret-read", Some("payments"), Role::Read),
            tok("root", "s3cret-admin", None, Role::Admin),
        ])
    }

    #[test]
    fn bearer_and_basic_find_the_token() {
        let a = auth();
        let c = a.authenticate(Some(b"Bearer s3cret-read")).unwrap();
        assert_eq!((c.name.as_str(), c.role), ("pay-read", Role::Read));
        // "grafana:s3cret-admin"
        let c = a
            .authenticate(Some(b"Basic Z3JhZmFuYTpzM2NyZXQtYWRtaW4="))
            .unwrap();
        assert_eq!(c.role, Role::Admin);
    }

    #[test]
    fn refusals_never_echo_the_token() {
        let a = auth();
        for (h, want) in [
            (None, "missing token"),
            (Some(&b"Bearer wrong-secret"[..]), "unknown token"),
            (Some(&b"Token wrong-secret"[..]), "Authorization must be"),
            (Some(&b"Basic !!!"[..]), "Authorization must be"),
        ] {
            let e = a.authenticate(h).unwrap_err();
            assert_eq!(e.status, StatusCode::UNAUTHORIZED);
            assert!(e.reason.contains(want), "{}", e.reason);
            assert!(!e.reason.contains("wrong-secret"));
        }
    }

    #[test]
    fn roles_and_team_scope() {
        let a = auth();
        let ingest = a.authenticate(Some(b"Bearer s3cret-in")).unwrap();
        assert!(ingest.require_ingest().is_ok());
        assert_eq!(
            ingest.require_read().unwrap_err().status,
            StatusCode::FORBIDDEN
        );
        let read = a.authenticate(Some(b"Bearer s3cret-read")).unwrap();
        assert!(read.require_ingest().is_err());
        assert!(read.require_admin().is_err());
        let mut q = crate::logql::parse(r#"{file="/a.log"}"#).unwrap();
        read.scope_query(&mut q).unwrap();
        let l = |t: &str| {
            [("file", "/a.log"), ("team", t)]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect()
        };
        assert!(q.matches_stream(&l("payments")));
        assert!(!q.matches_stream(&l("search")));
        let mut q = crate::logql::parse(r#"{team="search"}"#).unwrap();
        let e = read.scope_query(&mut q).unwrap_err();
        assert_eq!(e.status, StatusCode::FORBIDDEN);
        let admin = a.authenticate(Some(b"Bearer s3cret-admin")).unwrap();
        let mut q = crate::logql::parse(r#"{team="search"}"#).unwrap();
        admin.scope_query(&mut q).unwrap();
        assert_eq!(q.matchers.len(), 1);
    }

    #[test]
    fn open_mode_is_anonymous_admin() {
        let c = Auth::default().authenticate(None).unwrap();
        assert_eq!(c.role, Role::Admin);
        assert_eq!(c.read_scope(), None);
    }

    #[test]
    fn base64() {
        assert_eq!(base64_decode("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(base64_decode("aGk").unwrap(), b"hi");
        assert!(base64_decode("a*b").is_none());
    }
}
