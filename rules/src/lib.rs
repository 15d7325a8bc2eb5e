//! fjord-rules: what gets scrubbed from a log line before it leaves the pod.
//!
//! Rule packs are TOML (`pack.rs`); a rule is a built-in detector with a check-digit
//! validator (`detect/`, `validate.rs`) or a custom regex, plus an action. The effective rule
//! set compiles into a [`Redactor`] whose first step is one `RegexSet` scan, so a line without
//! any candidate costs a single pass. The compiled set has a version hash that travels with
//! every batch. Nothing here does I/O beyond reading rule files, and no error or log message
//! ever contains the text being scrubbed.

pub mod detect;
pub mod pack;
pub mod redact;
pub mod validate;

pub use pack::{load_rule_set, Action, RuleSet, RuleSpec, RulesError};
pub use redact::{Counts, Redactor};
