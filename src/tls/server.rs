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
pub(crate) enum ServerConfigError {
    /// The policy and provider do not fit together.
    #[error("the policy cannot be applied: {0}")]
    Policy(String),
    /// `client_auth` needs a client CA bundle ([`check_client_ca`]).
    #[error(
        "client_auth is {0} but no client CA is configured: set --client-ca-dir (TLSWARD_CLIENT_CA_DIR) to the directory with the client CAs' ca.crt"
    )]
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

/// TLS sessions kept for resumption (rustls's stateful resumption: TLS 1.2 session ids and
/// TLS 1.3 tickets that name a cache entry). One cache is shared by consecutive snapshots,
/// so that a certificate or token-key rotation does not cost every client a full handshake;
/// a new one is made when the policy or the client CAs change, so that no session made under
/// the old rules is resumed under the new ones (rustls does not re-check a resumed
/// session's client certificate against a new verifier).
#[derive(Clone)]
pub(crate) struct Resumption(Arc<dyn rustls::server::StoresServerSessions>);

/// Sessions kept for resumption.
const SESSION_CACHE_SIZE: usize = 1024;

impl Resumption {
    /// A new, empty cache.
    pub(crate) fn new() -> Self {
        Self(rustls::server::ServerSessionMemoryCache::new(SESSION_CACHE_SIZE))
    }

    /// Whether two snapshots share one cache.
    pub(crate) fn same(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Default for Resumption {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Resumption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Resumption(..)")
    }
}

/// The rule that ties a policy to the client CAs: a `client_auth` other than `none` needs a
/// client CA bundle. The snapshot applies it to a new policy before choosing it (so that a
/// policy that breaks it is refused and the last good one kept), and [`build`] by it.
pub(crate) fn check_client_ca(policy: &Policy, client_ca_configured: bool) -> Result<(), ServerConfigError> {
    if policy.client_auth != ClientAuth::None && !client_ca_configured {
        return Err(ServerConfigError::MissingClientCa(policy.client_auth.as_str()));
    }
    Ok(())
}

/// Builds the server config.
pub(crate) fn build(
    policy: &Policy,
    cert: Arc<CertifiedKey>,
    client_roots: Option<rustls::RootCertStore>,
    resumption: &Resumption,
) -> Result<Arc<ServerConfig>, ServerConfigError> {
    let provider = Arc::new(policy.provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&policy.versions())
        .map_err(|e| ServerConfigError::Policy(e.to_string()))?;
    check_client_ca(policy, client_roots.is_some())?;
    let builder = match (policy.client_auth, client_roots) {
        (ClientAuth::None, _) | (_, None) => builder.with_no_client_auth(),
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
    config.session_storage = resumption.0.clone();
    Ok(Arc::new(config))
}
