//! TLS for `https://` URLs (rustls, with the `ring` provider chosen explicitly
//! so no other crate's features can change it).
//!
//! Trust comes from the system's certificate store, or only from `--cacert`
//! when given (a test or staging CA). `--insecure` accepts any certificate but
//! still runs a real handshake, so TLS cost and TLS failures other than trust
//! still show. A failed handshake is the `tls_error` outcome.

use std::{path::PathBuf, sync::Arc};

use rustls::{
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider},
    pki_types::{pem::PemObject, CertificateDer, ServerName, UnixTime},
    ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_rustls::TlsConnector;

use crate::Error;

/// How `https://` URLs are trusted.
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    /// Accept any server certificate (still encrypts and handshakes).
    pub insecure: bool,
    /// Trust only the CA certificates in this PEM file.
    pub cacert: Option<PathBuf>,
}

/// The client side of TLS, built once for all connections.
/// `alpn` is the one protocol offered: `http/1.1` or `h2`.
pub(crate) fn connector(options: &TlsOptions, alpn: &[u8]) -> Result<TlsConnector, Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(format!("no usable TLS version: {e}")))?;
    let mut config = match options.insecure {
        true => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
            .with_no_client_auth(),
        false => builder
            .with_root_certificates(roots(options)?)
            .with_no_client_auth(),
    };
    config.alpn_protocols = vec![alpn.to_vec()];
    Ok(TlsConnector::from(Arc::new(config)))
}

/// The server name to verify for `host`.
pub(crate) fn server_name(url: &str, host: &str) -> Result<ServerName<'static>, Error> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_string()).map_err(|e| Error::BadUrl {
        url: url.to_string(),
        reason: format!("{host:?} is not a valid TLS server name: {e}"),
    })
}

fn roots(options: &TlsOptions) -> Result<RootCertStore, Error> {
    let mut roots = RootCertStore::empty();
    match &options.cacert {
        Some(path) => {
            let bad = |e: &dyn std::fmt::Display| {
                Error::Tls(format!("cannot read --cacert {}: {e}", path.display()))
            };
            for cert in CertificateDer::pem_file_iter(path).map_err(|e| bad(&e))? {
                roots.add(cert.map_err(|e| bad(&e))?).map_err(|e| bad(&e))?;
            }
            if roots.is_empty() {
                return Err(bad(&"no certificate in the file"));
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _ignored) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err(Error::Tls(
                    "no CA certificate found in the system store; give --cacert or --insecure"
                        .into(),
                ));
            }
        }
    }
    Ok(roots)
}

/// `--insecure`: any certificate is fine, but signatures are still checked so
/// the handshake is a real one.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
