//! Custom regexes from rule packs: compiled under one size limit, with a typed error.
//!
//! Both the pack loader (which refuses a bad pattern at `file:line:col`) and the redactor
//! (which compiles the patterns it runs) come here, so a pattern accepted by validation is
//! exactly one the redactor can build. The pattern is configuration, never log content, so
//! the errors may quote it.

use regex::{Regex, RegexBuilder};
use thiserror::Error;

/// Largest compiled size of one custom regex. Bigger patterns are refused, so a hostile or
/// careless rule cannot make every line expensive.
pub const MAX_REGEX_COMPILED_BYTES: usize = 1024 * 1024;

/// Why a custom pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PatternError {
    /// The pattern compiles to more than [`MAX_REGEX_COMPILED_BYTES`].
    #[error(
        "pattern compiles to more than {limit} bytes; simplify it or split it into several rules"
    )]
    TooBig {
        /// The limit in bytes.
        limit: usize,
    },
    /// The pattern is not a valid regex.
    #[error("invalid regex: {reason}")]
    Invalid {
        /// The regex crate's explanation, on one line.
        reason: String,
    },
}

/// Compiles a rule's pattern under the size limit.
pub fn compile(p: &str) -> Result<Regex, PatternError> {
    RegexBuilder::new(p)
        .size_limit(MAX_REGEX_COMPILED_BYTES)
        .dfa_size_limit(MAX_REGEX_COMPILED_BYTES)
        .build()
        .map_err(|e| match e {
            regex::Error::CompiledTooBig(limit) => PatternError::TooBig { limit },
            other => PatternError::Invalid {
                reason: other
                    .to_string()
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" "),
            },
        })
}

/// Compiles an `[[allow]]` pattern, anchored so it must match a whole match, under the same
/// size limit as a rule's pattern.
pub fn compile_allow(p: &str) -> Result<Regex, PatternError> {
    compile(&format!("^(?:{p})$"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oversized_patterns_are_refused_with_the_limit() {
        let err = compile(r"\w{1000}\w{1000}\w{1000}").unwrap_err();
        assert!(matches!(err, PatternError::TooBig { .. }), "{err}");
        assert!(err.to_string().contains("simplify"), "{err}");
    }

    #[test]
    fn invalid_patterns_say_why_on_one_line() {
        let err = compile("(unclosed").unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("invalid regex:"), "{msg}");
        assert!(!msg.contains('\n'), "{msg}");
    }

    #[test]
    fn allow_patterns_match_whole_values_only() {
        let re = compile_allow("ab|cd").unwrap();
        assert!(re.is_match("ab") && re.is_match("cd"));
        assert!(!re.is_match("abc") && !re.is_match("xab"));
    }
}
