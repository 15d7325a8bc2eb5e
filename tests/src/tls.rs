//! The client side of the https tests: a blocking TLS client on rustls (the TLS stack
//! reqwest already brings into the tree) that can be held to one protocol version or present
//! a client certificate, for requests to the aggregator's own TLS listener.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// How a client trusts an https aggregator and proves who it is to one that asks.
#[derive(Debug, Clone)]
pub struct ClientTls {
    /// The CA that signed the server's certificate.
    pub ca_file: PathBuf,
    /// Client certificate and key files, for a server with `--tls-client-ca`.
    pub identity: Option<(PathBuf, PathBuf)>,
}

impl ClientTls {
    /// Trusts `ca_file`; presents no client certificate.
    pub fn ca(ca_file: PathBuf) -> ClientTls {
        ClientTls {
            ca_file,
            identity: None,
        }
    }

    /// The CLI flags that say the same: `--ca-file`, and `--client-cert`/`--client-key`.
    pub fn cli_args(&self) -> Vec<String> {
        let mut a = vec!["--ca-file".to_owned(), self.ca_file.display().to_string()];
        if let Some((c, k)) = &self.identity {
            a.extend([
                "--client-cert".to_owned(),
                c.display().to_string(),
                "--client-key".to_owned(),
                k.display().to_string(),
            ]);
        }
        a
    }

    /// A client configuration with these roots and identity, speaking only `versions`
    /// (empty: rustls' defaults, TLS 1.2 and 1.3).
    pub fn config(
        &self,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(&self.ca_file).expect("read ca_file") {
            roots
                .add(c.expect("ca_file certificate"))
                .expect("CA as a root");
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider);
        let builder = if versions.is_empty() {
            builder.with_safe_default_protocol_versions()
        } else {
            builder.with_protocol_versions(versions)
        }
        .expect("TLS versions")
        .with_root_certificates(roots);
        let config = match &self.identity {
            None => builder.with_no_client_auth(),
            Some((c, k)) => {
                let certs = CertificateDer::pem_file_iter(c)
                    .expect("read client certificate")
                    .collect::<Result<Vec<_>, _>>()
                    .expect("client certificate");
                let key = PrivateKeyDer::from_pem_file(k).expect("client key");
                builder
                    .with_client_auth_cert(certs, key)
                    .expect("client certificate and key")
            }
        };
        Arc::new(config)
    }
}

/// What one request over TLS gave.
#[derive(Debug)]
pub struct TlsAnswer {
    pub status: u16,
    pub body: String,
    /// The protocol version the handshake settled on.
    pub version: Option<rustls::ProtocolVersion>,
    /// The DER of the certificate the server presented.
    pub server_cert: Option<Vec<u8>>,
}

/// One HTTP/1.1 request over TLS to `addr` (a certificate for 127.0.0.1), on a connection of
/// its own. A refused handshake is an `Err` with rustls' reason in its message.
pub fn https_request(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<TlsAnswer> {
    let tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    let name = ServerName::from(addr.ip());
    let conn = rustls::ClientConnection::new(config, name).map_err(io::Error::other)?;
    let mut s = rustls::StreamOwned::new(conn, tcp);
    s.write_all(&crate::request_head(
        addr,
        method,
        path,
        headers,
        body.len(),
    ))?;
    s.write_all(body)?;
    s.flush()?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            // A server that closes without close_notify after `Connection: close`: the
            // response is whole (hyper wrote it all before closing).
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof && !buf.is_empty() => break,
            Err(e) => return Err(e),
        }
    }
    let (status, body) = crate::parse_response(&buf);
    Ok(TlsAnswer {
        status,
        body,
        version: s.conn.protocol_version(),
        server_cert: s
            .conn
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| c.to_vec()),
    })
}

/// `GET path` over TLS.
pub fn https_get(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    path: &str,
) -> io::Result<TlsAnswer> {
    https_request(addr, config, "GET", path, &[], b"")
}
