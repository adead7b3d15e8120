//! TLS on listeners: certificates from PEM files, ALPN `h2` and `http/1.1`.
//!
//! The certificate is part of the config, so a reload (SIGHUP, file change,
//! `PUT /config`) swaps it for new connections without touching open ones —
//! rotating a certificate never needs a restart.

use std::{fmt, path::PathBuf, sync::Arc};

use rustls::{
    pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer},
    ServerConfig,
};

/// Why a listener's certificate and key could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read certificates from {}: {}", .0.display(), .1)]
    Certificates(PathBuf, rustls::pki_types::pem::Error),
    #[error("no certificate in {}", .0.display())]
    NoCertificate(PathBuf),
    #[error("cannot read a private key from {}: {}", .0.display(), .1)]
    PrivateKey(PathBuf, rustls::pki_types::pem::Error),
    #[error("no TLS protocol version is usable with the ring provider: {0}")]
    Provider(rustls::Error),
    #[error("{} and {} do not make a usable pair: {}", .0.display(), .1.display(), .2)]
    Pair(PathBuf, PathBuf, rustls::Error),
}

/// A listener's TLS settings, loaded and checked.
#[derive(Clone)]
pub struct Tls {
    /// The certificate chain file (PEM).
    pub cert: PathBuf,
    /// The private key file (PEM).
    pub key: PathBuf,
    pub(crate) server: Arc<ServerConfig>,
}

impl Tls {
    /// Loads the PEM files; the error says which file and why.
    pub fn load(cert: PathBuf, key: PathBuf) -> Result<Tls, TlsError> {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert)
            .and_then(|it| it.collect::<Result<_, _>>())
            .map_err(|e| TlsError::Certificates(cert.clone(), e))?;
        if chain.is_empty() {
            return Err(TlsError::NoCertificate(cert));
        }
        let private =
            PrivateKeyDer::from_pem_file(&key).map_err(|e| TlsError::PrivateKey(key.clone(), e))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut server = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Provider)?
            .with_no_client_auth()
            .with_single_cert(chain, private)
            .map_err(|e| TlsError::Pair(cert.clone(), key.clone(), e))?;
        server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Tls {
            cert,
            key,
            server: Arc::new(server),
        })
    }
}

impl PartialEq for Tls {
    fn eq(&self, other: &Tls) -> bool {
        self.cert == other.cert && self.key == other.key
    }
}

impl Eq for Tls {}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls")
            .field("cert", &self.cert)
            .field("key", &self.key)
            .finish()
    }
}
