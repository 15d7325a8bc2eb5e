//! Test certificates, made at test time with rcgen instead of committed: a private CA, and
//! server and client certificates it signs (valid, expired, for other names), written as PEM
//! files into a test's own directory. Never use them anywhere but tests.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// A certificate authority whose key is kept in memory to sign more certificates.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    /// The CA certificate, PEM: what an agent's `ca_file` or `--tls-client-ca` points at.
    pub cert_pem: String,
}

/// A certificate and its private key, PEM.
pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
}

impl Leaf {
    /// Writes `dir/<stem>.pem` and `dir/<stem>.key`; returns (certificate, key) paths.
    pub fn write(&self, dir: &Path, stem: &str) -> (PathBuf, PathBuf) {
        let (cert, key) = (
            dir.join(format!("{stem}.pem")),
            dir.join(format!("{stem}.key")),
        );
        std::fs::write(&cert, &self.cert_pem).expect("write certificate");
        std::fs::write(&key, &self.key_pem).expect("write key");
        (cert, key)
    }

    /// The DER of the certificate, to compare with what a server presented.
    pub fn cert_der(&self) -> Vec<u8> {
        use tokio_rustls::rustls::pki_types::pem::PemObject;
        tokio_rustls::rustls::pki_types::CertificateDer::from_pem_slice(self.cert_pem.as_bytes())
            .expect("the PEM just made")
            .to_vec()
    }
}

/// What a leaf certificate is for.
#[derive(Clone, Copy)]
pub enum Usage {
    Server,
    Client,
}

impl Ca {
    /// A new CA with common name `name`.
    pub fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("CA key");
        let cert = params.self_signed(&key).expect("CA certificate");
        Ca {
            issuer: Issuer::new(params, key),
            cert_pem: cert.pem(),
        }
    }

    /// Writes the CA certificate to `path` and returns the path.
    pub fn write(&self, path: &Path) -> PathBuf {
        std::fs::write(path, &self.cert_pem).expect("write CA certificate");
        path.to_owned()
    }

    /// A certificate for `names` (host names or IPs), valid now.
    pub fn leaf(&self, names: &[&str], usage: Usage) -> Leaf {
        self.make(names, usage, false)
    }

    /// A server certificate for 127.0.0.1 and localhost, valid now.
    pub fn server(&self) -> Leaf {
        self.leaf(&["127.0.0.1", "localhost"], Usage::Server)
    }

    /// A client certificate with common name `name`, valid now.
    pub fn client(&self, name: &str) -> Leaf {
        self.leaf(&[name], Usage::Client)
    }

    /// A server certificate for 127.0.0.1 that expired in 2021.
    pub fn expired_server(&self) -> Leaf {
        self.make(&["127.0.0.1", "localhost"], Usage::Server, true)
    }

    fn make(&self, names: &[&str], usage: Usage, expired: bool) -> Leaf {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names.clone()).expect("leaf params");
        params.distinguished_name.push(
            DnType::CommonName,
            names.first().cloned().unwrap_or_default(),
        );
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![match usage {
            Usage::Server => ExtendedKeyUsagePurpose::ServerAuth,
            Usage::Client => ExtendedKeyUsagePurpose::ClientAuth,
        }];
        if expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let key = KeyPair::generate().expect("leaf key");
        let cert = params.signed_by(&key, &self.issuer).expect("sign leaf");
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}
