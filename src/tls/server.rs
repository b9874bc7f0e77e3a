//! Builds the rustls `ServerConfig` of one snapshot: policy (versions, suites, groups, ALPN),
//! the server certificate, and the client-certificate verifier.
//!
//! The whole config is rebuilt for every snapshot: a cert resolver alone could not change the
//! versions, suites or client CAs.

use std::sync::Arc;

use rustls::ServerConfig;
use rustls::server::{ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;

use super::policy::{ClientAuth, Policy};

/// Why a server config could not be built.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ServerConfigError {
    /// The policy and provider do not fit together.
    #[error("the policy cannot be applied: {0}")]
    Policy(String),
    /// `client_auth` needs a client CA bundle.
    #[error("client_auth is {0} but no client CA is configured; set --client-ca-dir")]
    MissingClientCa(&'static str),
    /// The client verifier could not be built.
    #[error("client CA bundle unusable: {0}")]
    ClientCa(String),
}

#[derive(Debug)]
struct FixedCert(Arc<CertifiedKey>);

impl ResolvesServerCert for FixedCert {
    fn resolve(&self, _hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

/// Builds the server config.
pub fn build(
    policy: &Policy,
    cert: Arc<CertifiedKey>,
    client_roots: Option<rustls::RootCertStore>,
) -> Result<Arc<ServerConfig>, ServerConfigError> {
    let provider = Arc::new(policy.provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&policy.versions())
        .map_err(|e| ServerConfigError::Policy(e.to_string()))?;
    let builder = match (policy.client_auth, client_roots) {
        (ClientAuth::None, _) => builder.with_no_client_auth(),
        (mode, None) => return Err(ServerConfigError::MissingClientCa(mode.as_str())),
        (mode, Some(roots)) => {
            let v = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let v = if mode == ClientAuth::Optional {
                v.allow_unauthenticated()
            } else {
                v
            };
            builder.with_client_cert_verifier(v.build().map_err(|e| ServerConfigError::ClientCa(e.to_string()))?)
        }
    };
    let mut config = builder.with_cert_resolver(Arc::new(FixedCert(cert)));
    config.alpn_protocols = policy.alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    config.ignore_client_order = true;
    Ok(Arc::new(config))
}
