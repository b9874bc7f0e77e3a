//! The database's TLS material, read from the files the DSN names (`sslrootcert`, `sslcert`,
//! `sslkey`): the CA bundle (every CA in it is trusted, so a CockroachDB CA rotation that ships
//! old + new works without coordination) and the client certificate + key (validated: the
//! key matches, the certificate is currently valid).

use crate::files::Files;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::sign::CertifiedKey;

use super::dsn::{DbTarget, SslMode};
use crate::tls::client::{self, ClientConfigError, Verify};
use crate::tls::material::{self, CertInfo, MaterialError};

/// The parsed client certificate chain and key.
#[derive(Debug, Clone)]
pub struct ClientCert {
    /// Chain + signing key (read once: the key is never re-read apart from its certificate).
    pub certified: Arc<CertifiedKey>,
    /// What the leaf is.
    pub info: CertInfo,
    /// Digest of chain + key.
    pub digest: String,
}

/// The CA bundle the database's certificate is verified against (`sslrootcert`).
#[derive(Debug, Clone)]
pub struct DbCa {
    /// Trusted CAs (the whole bundle).
    pub roots: RootCertStore,
    /// One entry per CA.
    pub cas: Vec<CertInfo>,
    /// Digest of the bundle.
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

impl DbCa {
    /// Reads `sslrootcert` (none: an empty bundle, for `sslmode` without verification).
    pub fn load(files: &Files, target: &DbTarget) -> Result<Self, MaterialError> {
        Ok(match &target.sslrootcert {
            Some(p) => {
                let r = material::load_roots(files, p)?;
                Self {
                    roots: r.store,
                    cas: r.infos,
                    digest: r.digest,
                }
            }
            None => Self {
                roots: RootCertStore::empty(),
                cas: Vec::new(),
                digest: String::new(),
            },
        })
    }
}

impl ClientCert {
    /// Reads `sslcert` + `sslkey`, if the DSN names them.
    pub fn load(files: &Files, target: &DbTarget, now: i64) -> Result<Option<Self>, MaterialError> {
        let (Some(c), Some(k)) = (&target.sslcert, &target.sslkey) else {
            return Ok(None);
        };
        let m = material::load_pair(files, c, k, now)?;
        Ok(Some(Self {
            certified: m.certified,
            info: m.chain[0].clone(),
            digest: m.digest,
        }))
    }
}

impl DbTls {
    /// Whether the DSN uses TLS at all.
    pub fn wanted(target: &DbTarget) -> bool {
        target.sslmode != SslMode::Disable
    }

    /// Reads the files of `target`; `None` when the DSN uses no TLS.
    pub fn load(files: &Files, target: &DbTarget, now: i64) -> Result<Option<Arc<Self>>, MaterialError> {
        if !Self::wanted(target) {
            return Ok(None);
        }
        Ok(Some(Arc::new(Self::from_parts(
            DbCa::load(files, target)?,
            ClientCert::load(files, target, now)?,
        ))))
    }

    /// Combines a bundle and a client certificate (each may come from another reload).
    pub fn from_parts(ca: DbCa, client: Option<ClientCert>) -> Self {
        Self {
            roots: ca.roots,
            cas: ca.cas,
            ca_digest: ca.digest,
            client,
        }
    }

    /// The bundle part, to combine with another client certificate.
    pub fn ca(&self) -> DbCa {
        DbCa {
            roots: self.roots.clone(),
            cas: self.cas.clone(),
            digest: self.ca_digest.clone(),
        }
    }

    /// The rustls client config of a connection to the database under `sslmode`: the bundle,
    /// the client certificate, and the server's certificate checked as `sslmode` says.
    pub(crate) fn client_config(&self, sslmode: SslMode) -> Result<rustls::ClientConfig, ClientConfigError> {
        let verify = match sslmode {
            SslMode::VerifyFull => Verify::Full,
            SslMode::VerifyCa => Verify::CaOnly,
            _ => Verify::Nothing,
        };
        let client_cert = self.client.as_ref().map(|c| c.certified.clone());
        client::build(verify, self.roots.clone(), client_cert)
    }

    /// One digest over the bundle and the client pair: a new pool is needed when it changes.
    pub fn digest(&self) -> String {
        let client = self.client.as_ref().map_or("", |c| c.digest.as_str());
        crate::util::sha256_hex(format!("{}/{client}", self.ca_digest).as_bytes())
    }
}
