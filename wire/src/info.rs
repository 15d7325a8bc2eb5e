//! Small JSON bodies: the residency declaration (`GET /v1/info`), the duplicate ack and the
//! error body every 4xx/5xx carries.

use serde::{Deserialize, Serialize};

/// The jurisdiction value an aggregator reports when none was declared. The agent's default
/// residency guard refuses it.
pub const UNSET: &str = "unset";

/// `GET /v1/info`: who the aggregator is and where it declares that it stores data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Info {
    /// Always `fjord-aggregator` for ours; other servers may say something else.
    pub name: String,
    /// Software version of the server.
    pub version: String,
    /// Declared region, e.g. `eu-north-1` or `no-osl-dc2`; [`UNSET`] when not declared.
    pub region: String,
    /// Declared legal jurisdiction, e.g. `EEA`; [`UNSET`] when not declared.
    pub jurisdiction: String,
    /// The public keys the aggregator's audit chain is signed with: the current one and
    /// those of earlier rotations. Empty when the chain is not signed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audit_keys: Vec<AuditKey>,
}

/// A public key of the audit chain, as `/v1/info` publishes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditKey {
    /// The first 16 hex digits of the SHA-256 of the key's 32 bytes; each signed root names it.
    pub key_id: String,
    /// `ed25519`.
    pub algorithm: String,
    /// The 32 key bytes, base64.
    pub public_key: String,
    /// The same key in PEM (SPKI), for openssl.
    pub pem: String,
    /// Whether the aggregator signs with it now (else it signed roots before a rotation).
    pub current: bool,
}

/// `200 {"status":"duplicate"}` and similar status-only bodies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusBody {
    pub status: String,
}

impl StatusBody {
    /// The body the aggregator answers when a batch id was stored before.
    pub fn duplicate() -> Self {
        StatusBody {
            status: "duplicate".to_owned(),
        }
    }
}

/// The JSON body of every error response: `{"status":"error","error":"<reason>"}`.
/// The reason names the problem and never echoes log content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub status: String,
    pub error: String,
}

impl ErrorBody {
    pub fn new(reason: impl Into<String>) -> Self {
        ErrorBody {
            status: "error".to_owned(),
            error: reason.into(),
        }
    }
}
