//! TLS for the listener: the certificate, key and client CA named in the config, loaded with
//! errors that name the file; a certificate resolver whose certificate is swapped while the
//! server runs; and the task that reloads it when the files change.
//!
//! Invariants: the server speaks TLS 1.2 and 1.3 only, and HTTP/1.1 by ALPN (the router is
//! served over HTTP/1.1); a certificate that does not load (unparseable, key mismatch,
//! expired, not yet valid) never replaces the one in use, it is logged and counted; with a
//! client CA, every connection must present a certificate that CA signed.
//!
//! Reloading polls the files' content instead of watching them: cert-manager and Kubernetes
//! Secret volumes replace the files by swapping a `..data` symlink, which inotify reports on
//! the directory and not on the file names, and some volumes report nothing at all. Reading
//! two small files every few seconds sees every kind of replacement.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};
use thiserror::Error;
use tokio_rustls::rustls;
use tokio_rustls::rustls::crypto::CryptoProvider;
use tokio_rustls::rustls::pki_types::pem::{self, PemObject};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::danger::ClientCertVerifier;
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::Counters;

/// Default time between two looks at the certificate files.
pub const DEFAULT_RELOAD_INTERVAL: Duration = Duration::from_secs(5);

/// The first byte of every TLS connection: a handshake record (RFC 8446 §5.1).
pub const TLS_HANDSHAKE_RECORD: u8 = 0x16;

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

/// The server certificate in force; swapped by [`reload_loop`].
#[derive(Debug)]
pub struct CertResolver {
    current: RwLock<LoadedCert>,
}

impl CertResolver {
    fn digest(&self) -> [u8; 32] {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .digest
    }

    fn not_after(&self) -> SystemTime {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .not_after
    }

    fn set(&self, c: LoadedCert) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = c;
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        // A poisoned lock still holds a whole value: the swap is one assignment.
        Some(
            self.current
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .key
                .clone(),
        )
    }
}

/// The listener's TLS: the acceptor and the resolver behind it.
pub struct Tls {
    pub acceptor: TlsAcceptor,
    resolver: Arc<CertResolver>,
    settings: TlsSettings,
}

impl Tls {
    /// Builds the server configuration from checked settings.
    pub fn new(settings: TlsSettings) -> Result<Tls, rustls::Error> {
        let resolver = Arc::new(CertResolver {
            current: RwLock::new(settings.initial.clone()),
        });
        let builder = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?;
        let builder = match &settings.client_verifier {
            Some(v) => builder.with_client_cert_verifier(v.clone()),
            None => builder.with_no_client_auth(),
        };
        let mut config = builder.with_cert_resolver(resolver.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Tls {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            resolver,
            settings,
        })
    }

    /// Looks at the files once: a changed pair that loads replaces the certificate in use,
    /// one that does not is logged and counted once (until the files change again).
    async fn reload_once(&self, counters: &Counters, failed: &mut Option<[u8; 32]>) {
        let (cert, key) = (
            self.settings.cert_file.clone(),
            self.settings.key_file.clone(),
        );
        let current = self.resolver.digest();
        let skip = *failed;
        let res = tokio::task::spawn_blocking(move || {
            // Files that cannot be read count as one state, so that a missing file is
            // reported once, not at every look.
            let digest = file_digest(&cert, &key).unwrap_or([0; 32]);
            if digest == current || Some(digest) == skip {
                return None;
            }
            Some((digest, load_cert(&cert, &key)))
        })
        .await;
        let Ok(Some((digest, res))) = res else {
            return;
        };
        match res {
            Ok(c) if c.digest == self.resolver.digest() => {}
            Ok(c) => {
                let until = humantime::format_rfc3339_seconds(c.not_after);
                self.resolver.set(c);
                *failed = None;
                counters.tls_reloads.fetch_add(1, Ordering::Relaxed);
                tracing::info!(cert = %self.settings.cert_file.display(), valid_until = %until, "TLS certificate reloaded");
            }
            Err(err) => {
                *failed = Some(digest);
                counters.tls_reload_errors.fetch_add(1, Ordering::Relaxed);
                tracing::error!(%err, "TLS certificate not reloaded; the previous one stays in use");
            }
        }
    }
}

/// The digest [`load_cert`] would give the files, without parsing them; `None` when either
/// cannot be read (the load then says why).
fn file_digest(cert: &Path, key: &Path) -> Option<[u8; 32]> {
    let (c, k) = (std::fs::read(cert).ok()?, std::fs::read(key).ok()?);
    let mut h = Sha256::new();
    h.update(&c);
    h.update([0]);
    h.update(&k);
    Some(h.finalize().into())
}

impl Tls {
    /// End of the validity period of the certificate in use.
    pub fn not_after(&self) -> SystemTime {
        self.resolver.not_after()
    }
}

/// Reloads the certificate when its files change, every `reload_interval`, until `shutdown`.
/// A certificate in use that expires (no renewal arrived) is logged as an error once: every
/// client refuses it from then on, and only the clients would say so otherwise.
pub async fn reload_loop(tls: Arc<Tls>, counters: Arc<Counters>, shutdown: CancellationToken) {
    let mut failed = None;
    let mut expired_reported: Option<SystemTime> = None;
    let mut tick = tokio::time::interval(tls.settings.reload_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await; // the first tick is immediate; the files were just loaded
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {
                tls.reload_once(&counters, &mut failed).await;
                let not_after = tls.not_after();
                if SystemTime::now() > not_after && expired_reported != Some(not_after) {
                    expired_reported = Some(not_after);
                    tracing::error!(cert = %tls.settings.cert_file.display(), expired = %humantime::format_rfc3339_seconds(not_after), "the TLS certificate in use has expired and no valid renewal arrived; clients refuse it");
                }
            }
        }
    }
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
