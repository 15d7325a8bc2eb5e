//! Credentials: JWTs, bearer tokens, well-known API-key shapes and `password=`-style pairs.
//! For pairs only the value is scrubbed, so the line still says *what* was there
//! (`password=[REDACTED:password]`); quotes around a value are kept, so a JSON fragment
//! stays well-formed.

use std::ops::Range;
use std::sync::OnceLock;

use super::{builtin, regex_find};

/// JSON Web Tokens: base64url header starting `eyJ` (`{"`), payload, optional signature.
pub const JWT: &str = r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*";

/// `Bearer <token>` (header style) and `bearer=<token>` / `"bearer": "<token>"`.
pub const BEARER: &str =
    r#"(?i:bearer)(?:[ \t]+|["']?[ \t]*[=:][ \t]*["']?)[A-Za-z0-9._~+/=-]{8,}"#;

/// Well-known key shapes (AWS, GitHub, Stripe, Slack, Google, fjord's own `fjd_` tokens) and
/// generic `api_key=` values.
pub const API_KEY: &str = concat!(
    r"AKIA[0-9A-Z]{16}",
    r"|fjd_[0-9a-f]{32,128}",
    r"|gh[opusr]_[A-Za-z0-9]{36}",
    r"|github_pat_[A-Za-z0-9_]{22,255}",
    r"|(?:sk|rk|pk)_live_[A-Za-z0-9]{10,247}",
    r"|xox[abposr]-[A-Za-z0-9-]{10,}",
    r"|AIza[0-9A-Za-z_-]{35}",
    r#"|(?i:x-api-key|api[_-]?key)["']?[ \t]*[=:][ \t]*["']?[^\s"',;&]+"#
);

/// `password=…`, `"password": "…"`, `passwd`, `pwd`, `secret`, `passphrase`, optionally
/// with a prefix (`db_password`, `client_secret`).
pub const PASSWORD: &str = r#"(?i:(?:[A-Za-z0-9]+[_-])?(?:password|passwd|pwd|secret|passphrase))["']?[ \t]*[=:][ \t]*(?:"[^"]*"|'[^']*'|[^\s"',;&]+)"#;

/// Appends JWTs.
pub fn find_jwt(line: &str, out: &mut Vec<Range<usize>>) {
    static RE: OnceLock<regex::Regex> = OnceLock::new();
    regex_find(builtin(&RE, JWT), line, out, |_, r| Some(r));
}

/// Appends bearer token values.
pub fn find_bearer(line: &str, out: &mut Vec<Range<usize>>) {
    static RE: OnceLock<regex::Regex> = OnceLock::new();
    regex_find(builtin(&RE, BEARER), line, out, |l, r| {
        let s = &l[r.clone()];
        // Skip `bearer` and the separator run; the rest is the token.
        let off = 6 + s[6..].find(|c: char| !matches!(c, ' ' | '\t' | '=' | ':' | '"' | '\''))?;
        let token = &s[off..];
        // `WWW-Authenticate: Bearer realm="api"` names a parameter, not a token.
        let param = token.ends_with('=')
            && token
                .trim_end_matches('=')
                .bytes()
                .all(|c| c.is_ascii_alphabetic());
        (!param).then_some(r.start + off..r.end)
    });
}

/// Appends API keys (for `api_key=` pairs, the value only).
pub fn find_api_key(line: &str, out: &mut Vec<Range<usize>>) {
    static RE: OnceLock<regex::Regex> = OnceLock::new();
    regex_find(builtin(&RE, API_KEY), line, out, |l, r| {
        let s = &l[r.clone()];
        // The well-known shapes never contain `=` or `:`; the generic pair always does.
        let Some(sep) = s.find(['=', ':']) else {
            return Some(r);
        };
        let off =
            sep + s[sep..].find(|c: char| !matches!(c, ' ' | '\t' | '=' | ':' | '"' | '\''))?;
        Some(r.start + off..r.end)
    });
}

/// Appends password-like values.
pub fn find_password(line: &str, out: &mut Vec<Range<usize>>) {
    static RE: OnceLock<regex::Regex> = OnceLock::new();
    regex_find(builtin(&RE, PASSWORD), line, out, |l, r| {
        let s = &l[r.clone()];
        let sep = s.find(['=', ':'])?;
        let rest = s[sep + 1..].trim_start_matches([' ', '\t']);
        let off = s.len() - rest.len();
        let (mut start, mut end) = (r.start + off, r.end);
        if rest.starts_with(['"', '\'']) {
            // Keep the quotes; scrub what is between them.
            start += 1;
            end -= 1;
        }
        (start < end).then_some(start..end)
    });
}

/// JSON keys whose string value is a password (`password`, `db_password`, `Client-Secret`).
pub fn is_password_key(key: &str) -> bool {
    let k = key.as_bytes();
    ["password", "passwd", "pwd", "secret", "passphrase"]
        .iter()
        .any(|w| {
            let Some(cut) = k.len().checked_sub(w.len()) else {
                return false;
            };
            let (prefix, word) = k.split_at(cut);
            word.eq_ignore_ascii_case(w.as_bytes())
                && (prefix.is_empty()
                    || (prefix.len() > 1 && matches!(prefix.last(), Some(b'_' | b'-'))))
        })
}

/// JSON keys whose string value is an API key.
pub fn is_api_key_key(key: &str) -> bool {
    ["api_key", "apikey", "api-key", "x-api-key"]
        .iter()
        .any(|w| key.eq_ignore_ascii_case(w))
}

#[cfg(test)]
mod tests {
    use super::super::found;
    use super::*;

    #[test]
    fn jwt() {
        let t =
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";
        assert_eq!(found(find_jwt, &format!("auth={t} ok")), [t]);
        assert!(found(find_jwt, "eyJ is a prefix").is_empty());
    }

    #[test]
    fn bearer() {
        assert_eq!(
            found(find_bearer, "Authorization: Bearer abc.def-123_456"),
            ["abc.def-123_456"]
        );
        assert_eq!(
            found(find_bearer, "bearer=0123456789abcdef&x=1"),
            ["0123456789abcdef"]
        );
        assert!(found(find_bearer, "WWW-Authenticate: Bearer realm=\"api\"").is_empty());
        assert!(found(find_bearer, "bearer token missing").is_empty());
    }

    #[test]
    fn api_keys() {
        let cases: &[(&str, &[&str])] = &[
            ("key AKIAIOSFODNN7EXAMPLE used", &["AKIAIOSFODNN7EXAMPLE"]),
            (
                "token fjd_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef read",
                &["fjd_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"],
            ),
            (
                "ghp_0123456789abcdefghijABCDEFGHIJ012345",
                &["ghp_0123456789abcdefghijABCDEFGHIJ012345"],
            ),
            (
                "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
                &["sk_live_4eC39HqLyjWDarjtT1zdp7dc"],
            ),
            (
                "xoxb-123456789012-abcdefghij",
                &["xoxb-123456789012-abcdefghij"],
            ),
            ("api_key=abc123 x-api-key: zzz999", &["abc123", "zzz999"]),
            ("apikey:\"q1w2e3\"", &["q1w2e3"]),
            ("sk_test_4eC39HqLyjWDarjtT1zdp7dc apiKeys listed", &[]),
        ];
        for (line, want) in cases {
            assert_eq!(found(find_api_key, line), *want, "{line}");
        }
    }

    #[test]
    fn passwords() {
        let cases: &[(&str, &[&str])] = &[
            ("login password=hunter2 ok", &["hunter2"]),
            (r#"{"password":"hunter2","user":"x"}"#, &["hunter2"]),
            (
                "db_password: 's3cr3t' client_secret=abc",
                &["s3cr3t", "abc"],
            ),
            ("PWD=/home/app pwd=x", &["/home/app", "x"]),
            ("password reset requested secret_name=db-creds", &[]),
            (r#"password="""#, &[]),
        ];
        for (line, want) in cases {
            assert_eq!(found(find_password, line), *want, "{line}");
        }
        assert!(is_password_key("db_password") && is_password_key("Secret"));
        assert!(!is_password_key("secret_name") && !is_password_key("_password"));
        assert!(is_password_key("Client-SECRET") && !is_password_key("mypassword"));
        assert!(is_api_key_key("X-Api-Key") && !is_api_key_key("api_key_id"));
    }
}
