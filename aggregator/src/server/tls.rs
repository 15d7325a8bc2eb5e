//! Serving TLS: a certificate resolver whose certificate is swapped while the server runs,
//! the server configuration around it, and the task that reloads the certificate when its
//! files change. Loading and checking the files is `crate::tls`.
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

use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use tokio_rustls::rustls;
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::Counters;
use crate::tls::{file_digest, load_cert, provider, LoadedCert, TlsSettings};

/// The first byte of every TLS connection: a handshake record (RFC 8446 §5.1).
pub const TLS_HANDSHAKE_RECORD: u8 = 0x16;

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
