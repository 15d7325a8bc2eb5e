//! The audit chain's signing keys: Ed25519 (ed25519-dalek), in the PEM files openssl writes
//! (`openssl genpkey -algorithm ed25519` for a private key, PKCS#8; `openssl pkey -pubout`
//! for its public key, SPKI), or `fjord-aggregator audit keygen`.
//!
//! A root ([`Root`]) signs one position of the chain and the hash there, with the time it was
//! signed and the id of the key. A key's id is the first 16 hex digits of the SHA-256 of its
//! 32 public-key bytes, so a verifier holding several public keys (one per rotation) knows
//! which to try, and a root naming no known key is a finding of its own.
//!
//! Invariants: the private key never leaves this module (no `Debug`, no accessor); an
//! auditor needs only public keys to check a root.

use std::path::{Path, PathBuf};

use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

/// Domain tag of a signed root.
const ROOT_TAG: &[u8] = b"fjord-chain-root-v1\0";

/// Why a key file could not be used; each names the file.
#[derive(Debug, Error)]
pub enum KeyError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{path}: not an Ed25519 private key in PKCS#8 PEM (-----BEGIN PRIVATE KEY-----): {reason}"
    )]
    Private { path: PathBuf, reason: String },
    #[error(
        "{path}: not an Ed25519 public key in PEM (-----BEGIN PUBLIC KEY-----) or base64: {reason}"
    )]
    Public { path: PathBuf, reason: String },
    #[error(
        "{path}: the private key is readable by group or others (mode {mode:o}); chmod 600 it"
    )]
    Exposed { path: PathBuf, mode: u32 },
    #[error("{path} exists; refusing to overwrite a key")]
    Exists { path: PathBuf },
    #[error("no randomness from the operating system: {0}")]
    Random(String),
}

/// One signed root of the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Root {
    /// The chain position signed: every link up to it.
    pub pos: i64,
    /// Hex hash of the link at `pos`.
    pub hash: String,
    pub signed_ns: i64,
    /// [`key_id`] of the signing key.
    pub key_id: String,
    /// Hex Ed25519 signature over [`root_message`].
    pub signature: String,
}

/// The bytes a root's signature covers.
pub fn root_message(pos: i64, hash: &[u8; 32], signed_ns: i64) -> Vec<u8> {
    let mut m = Vec::with_capacity(ROOT_TAG.len() + 48);
    m.extend_from_slice(ROOT_TAG);
    m.extend_from_slice(&pos.to_be_bytes());
    m.extend_from_slice(hash);
    m.extend_from_slice(&signed_ns.to_be_bytes());
    m
}

/// The id of a public key.
pub fn key_id(k: &VerifyingKey) -> String {
    let d = Sha256::digest(k.as_bytes());
    hex::encode(&d[..8])
}

/// The aggregator's signing key.
pub struct Signer {
    key: SigningKey,
    id: String,
}

impl Signer {
    /// Reads a PKCS#8 PEM private key. On Unix the file must not be accessible to others nor
    /// writable by its group; group read is allowed, as Kubernetes mounts a Secret with an
    /// `fsGroup` (`defaultMode: 0440`).
    pub fn load(path: &Path) -> Result<Signer, KeyError> {
        let io = |source| KeyError::Io {
            path: path.to_owned(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(io)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o027 != 0 {
                return Err(KeyError::Exposed {
                    path: path.to_owned(),
                    mode,
                });
            }
        }
        #[cfg(not(unix))]
        let _ = meta;
        let pem = std::fs::read_to_string(path).map_err(io)?;
        let key = SigningKey::from_pkcs8_pem(&pem).map_err(|e| KeyError::Private {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        Ok(Signer::from_key(key))
    }

    fn from_key(key: SigningKey) -> Signer {
        let id = key_id(&key.verifying_key());
        Signer { key, id }
    }

    /// A fresh key from the operating system's randomness.
    pub fn generate() -> Result<Signer, KeyError> {
        let mut seed = [0u8; 32];
        getrandom::getrandom(&mut seed).map_err(|e| KeyError::Random(e.to_string()))?;
        Ok(Signer::from_key(SigningKey::from_bytes(&seed)))
    }

    /// Writes the private key to `path` (mode 0600, never over an existing file).
    pub fn save(&self, path: &Path) -> Result<(), KeyError> {
        use std::io::Write;
        let io = |source| KeyError::Io {
            path: path.to_owned(),
            source,
        };
        let pem = self
            .key
            .to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
            .map_err(|e| KeyError::Private {
                path: path.to_owned(),
                reason: e.to_string(),
            })?;
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                KeyError::Exists {
                    path: path.to_owned(),
                }
            } else {
                io(e)
            }
        })?;
        f.write_all(pem.as_bytes()).map_err(io)?;
        f.sync_all().map_err(io)
    }

    pub fn key_id(&self) -> &str {
        &self.id
    }

    pub fn public(&self) -> PublicKey {
        PublicKey::from_key(self.key.verifying_key())
    }

    /// Signs chain position `pos`, whose link hash is `hash`, at `signed_ns`.
    pub fn sign(&self, pos: i64, hash: &[u8; 32], signed_ns: i64) -> Root {
        let sig = self.key.sign(&root_message(pos, hash, signed_ns));
        Root {
            pos,
            hash: hex::encode(hash),
            signed_ns,
            key_id: self.id.clone(),
            signature: hex::encode(sig.to_bytes()),
        }
    }
}

/// A public key that roots are checked with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    key: VerifyingKey,
    id: String,
}

/// A public key as `/v1/info` publishes it.
pub use fjord_wire::info::AuditKey as PublishedKey;

impl PublicKey {
    fn from_key(key: VerifyingKey) -> PublicKey {
        let id = key_id(&key);
        PublicKey { key, id }
    }

    /// Reads a public key: SPKI PEM, or the base64 of its 32 bytes as `/v1/info` shows it.
    pub fn load(path: &Path) -> Result<PublicKey, KeyError> {
        let text = std::fs::read_to_string(path).map_err(|source| KeyError::Io {
            path: path.to_owned(),
            source,
        })?;
        PublicKey::parse(&text).map_err(|reason| KeyError::Public {
            path: path.to_owned(),
            reason,
        })
    }

    /// Parses SPKI PEM, or the base64 of the 32 key bytes.
    pub fn parse(text: &str) -> Result<PublicKey, String> {
        let text = text.trim();
        if text.starts_with("-----BEGIN") {
            return VerifyingKey::from_public_key_pem(text)
                .map(PublicKey::from_key)
                .map_err(|e| e.to_string());
        }
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|e| e.to_string())?;
        let arr: [u8; 32] = bytes
            .try_into()
            .map_err(|b: Vec<u8>| format!("{} bytes, not 32", b.len()))?;
        VerifyingKey::from_bytes(&arr)
            .map(PublicKey::from_key)
            .map_err(|e| e.to_string())
    }

    pub fn key_id(&self) -> &str {
        &self.id
    }

    /// The SPKI PEM of the key.
    pub fn pem(&self) -> String {
        self.key
            .to_public_key_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
            .unwrap_or_default()
    }

    /// The key as `/v1/info` publishes it.
    pub fn published(&self, current: bool) -> PublishedKey {
        use base64::Engine as _;
        PublishedKey {
            key_id: self.id.clone(),
            algorithm: "ed25519".to_owned(),
            public_key: base64::engine::general_purpose::STANDARD.encode(self.key.as_bytes()),
            pem: self.pem(),
            current,
        }
    }

    /// Whether `root` carries this key's valid signature over its position, hash and time.
    pub fn verifies(&self, root: &Root) -> bool {
        let Some(hash) = parse_hash(&root.hash) else {
            return false;
        };
        let mut sig = [0u8; 64];
        if hex::decode_to_slice(&root.signature, &mut sig).is_err() {
            return false;
        }
        let sig = Signature::from_bytes(&sig);
        self.key
            .verify_strict(&root_message(root.pos, &hash, root.signed_ns), &sig)
            .is_ok()
    }
}

/// Parses a hex SHA-256; `None` unless it is 32 bytes of hex.
pub fn parse_hash(text: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(text, &mut out).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_root_verifies_with_its_key_only() {
        let a = Signer::generate().unwrap();
        let b = Signer::generate().unwrap();
        let root = a.sign(7, &[3; 32], 1_000);
        assert_eq!(root.key_id, a.key_id());
        assert!(a.public().verifies(&root));
        assert!(!b.public().verifies(&root));
        for tampered in [
            Root {
                pos: 8,
                ..root.clone()
            },
            Root {
                hash: hex::encode([4u8; 32]),
                ..root.clone()
            },
            Root {
                signed_ns: 1_001,
                ..root.clone()
            },
        ] {
            assert!(!a.public().verifies(&tampered), "{tampered:?}");
        }
    }

    #[test]
    fn keys_round_trip_through_their_files_and_base64() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.key");
        let s = Signer::generate().unwrap();
        s.save(&path).unwrap();
        assert!(matches!(s.save(&path), Err(KeyError::Exists { .. })));
        let loaded = Signer::load(&path).unwrap();
        assert_eq!(loaded.key_id(), s.key_id());
        let pem = dir.path().join("audit.pub");
        std::fs::write(&pem, s.public().pem()).unwrap();
        assert_eq!(PublicKey::load(&pem).unwrap(), s.public());
        let b64 = s.public().published(true).public_key;
        assert_eq!(PublicKey::parse(&b64).unwrap(), s.public());
        assert!(PublicKey::parse("not a key").is_err());
    }

    #[cfg(unix)]
    #[test]
    fn a_private_key_others_can_read_is_refused_and_group_read_is_not() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.key");
        Signer::generate().unwrap().save(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            Signer::load(&path),
            Err(KeyError::Exposed { mode: 0o644, .. })
        ));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o660)).unwrap();
        assert!(matches!(Signer::load(&path), Err(KeyError::Exposed { .. })));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o440)).unwrap();
        assert!(Signer::load(&path).is_ok());
    }
}
