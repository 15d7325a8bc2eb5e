//! A TLS front for the real aggregator, which listens on plain HTTP only: it terminates TLS
//! on 127.0.0.1 with a certificate from a private test CA (`tests/fixtures/tls`) and relays
//! the bytes of each connection to the aggregator, so the agent's `https` transport and its
//! `ca_file` are tested against a real handshake.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The test CA's certificate and the server's certificate and key.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/tls")
        .join(name)
}

/// A running TLS front; stops with the test process.
pub struct Front {
    pub addr: SocketAddr,
    failed: Arc<AtomicU64>,
    relayed: Arc<AtomicU64>,
}

impl Front {
    /// Listens on 127.0.0.1 (port 0) and relays every connection to `backend`.
    pub fn start(backend: SocketAddr) -> Front {
        let certs = CertificateDer::pem_file_iter(fixture("server.pem"))
            .expect("server.pem")
            .collect::<Result<Vec<_>, _>>()
            .expect("server.pem certificates");
        let key = PrivateKeyDer::from_pem_file(fixture("server.key")).expect("server.key");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .expect("server certificate and key");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind TLS front");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("local addr");
        let (failed, relayed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let (f, r) = (failed.clone(), relayed.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_io()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                while let Ok((tcp, _)) = listener.accept().await {
                    let (acceptor, f, r) = (acceptor.clone(), f.clone(), r.clone());
                    tokio::spawn(async move {
                        let Ok(mut tls) = acceptor.accept(tcp).await else {
                            f.fetch_add(1, Ordering::SeqCst);
                            return;
                        };
                        r.fetch_add(1, Ordering::SeqCst);
                        if let Ok(mut plain) = tokio::net::TcpStream::connect(backend).await {
                            let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                        }
                    });
                }
            });
        });
        Front {
            addr,
            failed,
            relayed,
        }
    }

    /// Handshakes that failed (e.g. a client that does not trust the certificate).
    pub fn failed_handshakes(&self) -> u64 {
        self.failed.load(Ordering::SeqCst)
    }

    /// Connections that completed the handshake and were relayed.
    pub fn relayed_connections(&self) -> u64 {
        self.relayed.load(Ordering::SeqCst)
    }
}
