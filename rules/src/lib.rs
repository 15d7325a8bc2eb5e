//! fjord-rules: what gets scrubbed from a log line before it leaves the pod.
//!
//! Rule packs are TOML (`pack.rs`); a rule is a built-in detector with a check-digit
//! validator (`detect/`, `validate.rs`) or a custom regex, plus an action (`mask`, `hash`,
//! `partial`, `drop_line`; `drop_field` for JSON field rules, `redact/json.rs`). The effective rule
//! set compiles into a [`Redactor`] whose first step is one cheap byte pass, so a line
//! without any candidate costs a single scan. The compiled set has a version hash that
//! travels with every batch. `selftest.rs` runs the rules' examples and explains matches.
//!
//! Detectors fail closed: they accept every form that is issued or written in practice,
//! and the only way to keep a match readable is a team file's `[[allow]]` entry, which is
//! part of the version hash.
//!
//! Nothing here does I/O beyond reading rule files, and no error, panic or log message ever
//! contains the text being scrubbed.

// Unsafe code is fenced: only the modules marked `allow(unsafe_code)` below may use it, and
// every unsafe block says why it is sound (`// SAFETY:`).
#![deny(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod detect;
pub mod pack;
pub mod pattern;
pub mod redact;
pub mod selftest;
pub mod validate;

pub use pack::{
    load_rule_set, resolve, Action, AllowMatch, AllowSpec, Example, Expect, FieldSpec, Matcher,
    RuleSet, RuleSpec, RulesError,
};
pub use redact::{Applied, Counts, ExplainHit, Explanation, Redactor, RedactorError};
