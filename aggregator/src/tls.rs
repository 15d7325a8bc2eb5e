//! The TLS files of the listener: the certificate chain, its key and the client CA named in
//! the config, loaded and checked with errors that name the file. Used by config validation
//! (before any port is bound) and by the server's reload task; no I/O but reading the files.
//!
//! Invariants: a [`LoadedCert`] is a certificate chain and the key of its first certificate,
//! within its validity period at load time; a client verifier requires a client certificate
//! signed by one of the CA file's certificates.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};
use thiserror::Error;
use tokio_rustls::rustls;
use tokio_rustls::rustls::crypto::CryptoProvider;
use tokio_rustls::rustls::pki_types::pem::{self, PemObject};
use tokio_rustls::rustls::pki_types::CertificateDer;
use tokio_rustls::rustls::pki_types::PrivateKeyDer;
use tokio_rustls::rustls::server::danger::ClientCertVerifier;
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::sign::CertifiedKey;

pub const DEFAULT_RELOAD_INTERVAL: Duration = Duration::from_secs(5);

/// Why a certificate, key or client CA cannot be used. Each message names the file.
#[derive(Debug, Error)]
pub enum TlsError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: no PEM certificate in it")]
    NoCertificate { path: PathBuf },
    #[error("{path}: not a readable PEM file: {reason}")]
    Pem { path: PathBuf, reason: String },
    #[error("{path}: no PEM private key in it (PKCS#8, PKCS#1 or SEC1)")]
    NoKey { path: PathBuf },
    #[error("{path}: the private key cannot be used: {reason}")]
    Key { path: PathBuf, reason: String },
    #[error("{key} is not the private key of the certificate in {cert}")]
    Mismatch { cert: PathBuf, key: PathBuf },
    #[error("{path}: the certificate cannot be parsed: {reason}")]
    BadCertificate { path: PathBuf, reason: String },
    #[error("{path}: the certificate expired at {not_after}")]
    Expired { path: PathBuf, not_after: String },
    #[error("{path}: the certificate is not valid before {not_before}")]
    NotYetValid { path: PathBuf, not_before: String },
    #[error("{path}: the client CA cannot be used: {reason}")]
    ClientCa { path: PathBuf, reason: String },
}

/// The crypto provider of every TLS configuration here: ring, as reqwest's rustls uses.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A certificate and key that loaded, with a digest of the files they came from.
#[derive(Debug, Clone)]
pub struct LoadedCert {
    pub key: Arc<CertifiedKey>,
    /// SHA-256 of the two files' bytes: a reload with the same digest changes nothing.
    pub digest: [u8; 32],
    /// End of the server certificate's validity period.
    pub not_after: SystemTime,
}

/// Checked TLS settings of the listener.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    /// PEM certificate chain, server certificate first; reloaded when it changes.
    pub cert_file: PathBuf,
    /// PEM private key of the certificate; reloaded with it.
    pub key_file: PathBuf,
    /// PEM CA certificates that sign client certificates; read at start.
    pub client_ca_file: Option<PathBuf>,
    /// Time between two looks at `cert_file` and `key_file`.
    pub reload_interval: Duration,
    /// The certificate as it was when the config was checked.
    pub initial: LoadedCert,
    /// Set with `client_ca_file`: only clients with a certificate that CA signed connect.
    pub client_verifier: Option<Arc<dyn ClientCertVerifier>>,
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

fn certificates(path: &Path, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

/// Reads and checks a certificate chain (PEM, the server's certificate first) and its key.
pub fn load_cert(cert_file: &Path, key_file: &Path) -> Result<LoadedCert, TlsError> {
    let cert_pem = read(cert_file)?;
    let key_pem = read(key_file)?;
    let certs = certificates(cert_file, &cert_pem)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| match e {
        pem::Error::NoItemsFound => TlsError::NoKey {
            path: key_file.to_owned(),
        },
        e => TlsError::Pem {
            path: key_file.to_owned(),
            reason: e.to_string(),
        },
    })?;
    let not_after = check_validity(cert_file, &certs[0], SystemTime::now())?;
    let signing = provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| TlsError::Key {
            path: key_file.to_owned(),
            reason: e.to_string(),
        })?;
    let certified = CertifiedKey::new(certs, signing);
    match certified.keys_match() {
        // ring can always tell; `Unknown` would only come from a provider that cannot.
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            return Err(TlsError::Mismatch {
                cert: cert_file.to_owned(),
                key: key_file.to_owned(),
            })
        }
        Err(e) => {
            return Err(TlsError::BadCertificate {
                path: cert_file.to_owned(),
                reason: e.to_string(),
            })
        }
    }
    let mut h = Sha256::new();
    h.update(&cert_pem);
    h.update([0]);
    h.update(&key_pem);
    Ok(LoadedCert {
        key: Arc::new(certified),
        digest: h.finalize().into(),
        not_after,
    })
}

/// Reads a client CA bundle and builds the verifier that requires a client certificate it
/// signed.
pub fn load_client_ca(path: &Path) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    let pem = read(path)?;
    let mut roots = rustls::RootCertStore::empty();
    for c in certificates(path, &pem)? {
        roots.add(c).map_err(|e| TlsError::ClientCa {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
    }
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .map_err(|e| TlsError::ClientCa {
            path: path.to_owned(),
            reason: e.to_string(),
        })
}

/// Refuses a certificate outside its validity period: a server that starts (or reloads) with
/// one would fail every handshake with an error only the clients see. Returns its end.
fn check_validity(
    path: &Path,
    cert: &CertificateDer<'_>,
    now: SystemTime,
) -> Result<SystemTime, TlsError> {
    let Some((not_before, not_after)) = validity(cert) else {
        return Err(TlsError::BadCertificate {
            path: path.to_owned(),
            reason: "no validity period found".to_owned(),
        });
    };
    let show = |t: SystemTime| humantime::format_rfc3339_seconds(t).to_string();
    if now > not_after {
        return Err(TlsError::Expired {
            path: path.to_owned(),
            not_after: show(not_after),
        });
    }
    if now < not_before {
        return Err(TlsError::NotYetValid {
            path: path.to_owned(),
            not_before: show(not_before),
        });
    }
    Ok(not_after)
}

/// One DER element: (tag, content, rest). Lengths beyond 4 bytes are refused.
fn der(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |l, &b| (l << 8) | usize::from(b));
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// The (notBefore, notAfter) of an X.509 certificate (RFC 5280 §4.1). rustls checks validity
/// only in clients, and webpki does not expose it, so the few fields before it are walked
/// here.
fn validity(cert: &[u8]) -> Option<(SystemTime, SystemTime)> {
    const SEQUENCE: u8 = 0x30;
    const VERSION: u8 = 0xa0;
    let (SEQUENCE, cert, _) = der(cert)? else {
        return None;
    };
    let (SEQUENCE, tbs, _) = der(cert)? else {
        return None;
    };
    let (tag, _, mut rest) = der(tbs)?;
    if tag == VERSION {
        (_, _, rest) = der(rest)?; // the serial number
    }
    (_, _, rest) = der(rest)?; // signature algorithm
    (_, _, rest) = der(rest)?; // issuer
    let (SEQUENCE, validity, _) = der(rest)? else {
        return None;
    };
    let (t1, not_before, rest) = der(validity)?;
    let (t2, not_after, _) = der(rest)?;
    Some((der_time(t1, not_before)?, der_time(t2, not_after)?))
}

/// UTCTime (`YYMMDDHHMMSSZ`, years 1950-2049) or GeneralizedTime (`YYYYMMDDHHMMSSZ`).
fn der_time(tag: u8, v: &[u8]) -> Option<SystemTime> {
    let s = std::str::from_utf8(v).ok()?;
    let full = match tag {
        0x17 => {
            let yy: u32 = s.get(0..2)?.parse().ok()?;
            format!("{}{s}", if yy >= 50 { "19" } else { "20" })
        }
        0x18 => s.to_owned(),
        _ => return None,
    };
    if full.len() != 15 || !full.ends_with('Z') || !full[..14].bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let rfc = format!(
        "{}-{}-{}T{}:{}:{}Z",
        &full[0..4],
        &full[4..6],
        &full[6..8],
        &full[8..10],
        &full[10..12],
        &full[12..14]
    );
    humantime::parse_rfc3339(&rfc).ok()
}

/// The digest [`load_cert`] would give the files, without parsing them; `None` when either
/// cannot be read (the load then says why).
pub fn file_digest(cert: &Path, key: &Path) -> Option<[u8; 32]> {
    let (c, k) = (std::fs::read(cert).ok()?, std::fs::read(key).ok()?);
    let mut h = Sha256::new();
    h.update(&c);
    h.update([0]);
    h.update(&k);
    Some(h.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_times_parse() {
        let t = der_time(0x17, b"491231235959Z").unwrap();
        assert_eq!(
            humantime::format_rfc3339_seconds(t).to_string(),
            "2049-12-31T23:59:59Z"
        );
        let t = der_time(0x17, b"700101000000Z").unwrap();
        assert_eq!(t, SystemTime::UNIX_EPOCH);
        let t = der_time(0x18, b"20300101000000Z").unwrap();
        assert_eq!(
            humantime::format_rfc3339_seconds(t).to_string(),
            "2030-01-01T00:00:00Z"
        );
        assert!(der_time(0x18, b"2030010100000Z").is_none());
        assert!(der_time(0x17, b"70010100000aZ").is_none());
        assert!(der_time(0x02, b"700101000000Z").is_none());
    }

    #[test]
    fn truncated_der_is_refused_not_a_panic() {
        for input in [
            &b""[..],
            b"\x30",
            b"\x30\x85",
            b"\x30\x84\xff\xff\xff\xff",
            b"\x30\x02\x30",
        ] {
            assert!(validity(input).is_none());
        }
    }
}
