//! The database's TLS material, read from the files the DSN names (`sslrootcert`, `sslcert`,
//! `sslkey`): the CA bundle (every CA in it is trusted, so a CockroachDB CA rotation that ships
//! old + new works without coordination) and the client certificate + key (validated: the
//! key matches, the certificate is currently valid).

use std::sync::Arc;

use rustls::RootCertStore;
use rustls::sign::CertifiedKey;

use super::dsn::{DbTarget, SslMode};
use crate::tls::material::{self, CertInfo, MaterialError};

/// The parsed client certificate chain and key.
#[derive(Debug)]
pub struct ClientCert {
    /// Chain + signing key (read once: the key is never re-read apart from its certificate).
    pub certified: Arc<CertifiedKey>,
    /// What the leaf is.
    pub info: CertInfo,
    /// Digest of chain + key.
    pub digest: String,
}

/// Everything the DB connections' TLS needs.
#[derive(Debug)]
pub struct DbTls {
    /// Trusted CAs (the whole bundle).
    pub roots: RootCertStore,
    /// One entry per CA.
    pub cas: Vec<CertInfo>,
    /// Digest of the bundle.
    pub ca_digest: String,
    /// The client certificate, if the DSN names one.
    pub client: Option<ClientCert>,
}

impl DbTls {
    /// Reads the files of `target`; `None` when the DSN uses no TLS.
    pub fn load(target: &DbTarget, now: i64) -> Result<Option<Arc<Self>>, MaterialError> {
        if target.sslmode == SslMode::Disable {
            return Ok(None);
        }
        let (roots, cas, ca_digest) = match &target.sslrootcert {
            Some(p) => {
                let r = material::load_roots(p)?;
                (r.store, r.infos, r.digest)
            }
            None => (RootCertStore::empty(), Vec::new(), String::new()),
        };
        let client = match (&target.sslcert, &target.sslkey) {
            (Some(c), Some(k)) => {
                let m = material::load_pair(c, k, now)?;
                Some(ClientCert {
                    certified: m.certified,
                    info: m.chain[0].clone(),
                    digest: m.digest,
                })
            }
            _ => None,
        };
        Ok(Some(Arc::new(Self {
            roots,
            cas,
            ca_digest,
            client,
        })))
    }

    /// One digest over the bundle and the client pair: a new pool is needed when it changes.
    pub fn digest(&self) -> String {
        let client = self.client.as_ref().map_or("", |c| c.digest.as_str());
        material::sha256_hex(format!("{}/{client}", self.ca_digest).as_bytes())
    }
}
