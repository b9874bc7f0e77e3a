//! Builds the rustls `ClientConfig` for the database connection (`sslmode`), the only place
//! where the server's certificate checks may be relaxed, and only when the operator asked
//! for it with `--db-allow-insecure`.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ResolvesClientCert, WebPkiServerVerifier};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

/// How the database server's certificate is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verify {
    /// Chain to the CA bundle and name match (`verify-full`).
    Full,
    /// Chain to the CA bundle only (`verify-ca`).
    CaOnly,
    /// Nothing (`require`): encryption without authentication.
    Nothing,
}

/// Why the DB client config could not be built.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientConfigError {
    /// The CA bundle cannot build a verifier.
    #[error("the DB CA bundle is unusable: {0}")]
    Roots(String),
}

/// Builds the DB client config: TLS 1.2+ AEAD via the default aws-lc-rs provider.
pub(crate) fn build(
    verify: Verify,
    roots: RootCertStore,
    client_cert: Option<Arc<CertifiedKey>>,
) -> Result<ClientConfig, ClientConfigError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| ClientConfigError::Roots(e.to_string()));
    let verifier: Arc<dyn ServerCertVerifier> = match verify {
        Verify::Full => webpki?,
        Verify::CaOnly => Arc::new(IgnoreName(webpki?)),
        Verify::Nothing => Arc::new(AcceptAny(provider.clone())),
    };
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientConfigError::Roots(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    Ok(match client_cert {
        Some(certified) => builder.with_client_cert_resolver(Arc::new(FixedClientCert(certified))),
        None => builder.with_no_client_auth(),
    })
}

/// Always presents the one client certificate (whatever CAs the server hints at: a
/// CockroachDB node may list only its own CA while the bundle rotates).
#[derive(Debug)]
struct FixedClientCert(Arc<CertifiedKey>);

impl ResolvesClientCert for FixedClientCert {
    fn resolve(&self, _hints: &[&[u8]], _schemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
    fn has_certs(&self) -> bool {
        true
    }
}

/// `verify-ca`: the chain must verify, the name need not match.
#[derive(Debug)]
struct IgnoreName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for IgnoreName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName))
            | Err(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForNameContext { .. })) => {
                Ok(ServerCertVerified::assertion())
            }
            other => other,
        }
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(m, c, d)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(m, c, d)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// Accepts any server certificate but still checks the handshake signatures: `require`
/// (allowed only with --db-allow-insecure), and the scanner, which judges certificates itself.
#[derive(Debug)]
pub(crate) struct AcceptAny(pub Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
