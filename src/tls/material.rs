//! TLS material from a mounted Secret directory: PEM → validated certificates and keys.
//!
//! Invariant: a [`ServerMaterial`] always holds a certificate chain in issuer order whose leaf
//! is currently valid and matches its private key. Every error names the file and the reason.

use crate::files::Files;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

use crate::util::{rfc3339, sha256_hex};

/// A problem with one file of TLS material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {reason}", path.display())]
pub struct MaterialError {
    /// The file at fault.
    pub path: PathBuf,
    /// What is wrong and what to do.
    pub reason: String,
}

impl MaterialError {
    fn new(path: &Path, reason: impl Into<String>) -> Self {
        Self {
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }
}

/// What an operator wants to see of a certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CertInfo {
    /// Subject distinguished name.
    pub subject: String,
    /// Issuer distinguished name.
    pub issuer: String,
    /// DNS names and IP addresses from subjectAltName.
    pub sans: Vec<String>,
    /// Serial number, lowercase hex.
    pub serial: String,
    /// Start of validity, Unix seconds.
    pub not_before: i64,
    /// End of validity, Unix seconds.
    pub not_after: i64,
}

impl CertInfo {
    /// Parses the fields of one DER certificate.
    pub fn from_der(der: &[u8]) -> Result<Self, String> {
        let (_, cert) = X509Certificate::from_der(der).map_err(|e| format!("not a valid X.509 certificate: {e}"))?;
        let mut sans = Vec::new();
        if let Ok(Some(ext)) = cert.subject_alternative_name() {
            for name in &ext.value.general_names {
                match name {
                    GeneralName::DNSName(d) => sans.push(d.to_string()),
                    GeneralName::IPAddress(ip) => sans.push(ip_to_string(ip)),
                    GeneralName::URI(u) => sans.push(u.to_string()),
                    _ => {}
                }
            }
        }
        Ok(Self {
            subject: cert.subject().to_string(),
            issuer: cert.issuer().to_string(),
            sans,
            serial: cert.raw_serial_as_string().replace(':', ""),
            not_before: cert.validity().not_before.timestamp(),
            not_after: cert.validity().not_after.timestamp(),
        })
    }

    /// The subject's common name, if any.
    pub fn common_name(&self) -> Option<&str> {
        self.subject.split(", ").find_map(|part| part.strip_prefix("CN="))
    }

    /// `not_after` as RFC 3339.
    pub fn not_after_rfc3339(&self) -> String {
        rfc3339(self.not_after)
    }
}

fn ip_to_string(raw: &[u8]) -> String {
    match raw.len() {
        4 => std::net::Ipv4Addr::from(<[u8; 4]>::try_from(raw).unwrap_or_default()).to_string(),
        16 => std::net::Ipv6Addr::from(<[u8; 16]>::try_from(raw).unwrap_or_default()).to_string(),
        _ => format!("{raw:02x?}"),
    }
}

/// Reads a file, naming it in the error.
fn read_file(files: &Files, path: &Path) -> Result<Vec<u8>, MaterialError> {
    files
        .read(path)
        .map_err(|e| MaterialError::new(path, format!("cannot read: {e}")))
}

/// Parses every CERTIFICATE block of a PEM file.
pub fn parse_certs(path: &Path, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, MaterialError> {
    let certs: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(pem).collect();
    let certs = certs.map_err(|e| MaterialError::new(path, format!("bad PEM: {e}")))?;
    if certs.is_empty() {
        return Err(MaterialError::new(
            path,
            "no CERTIFICATE block found (empty, truncated or not PEM)",
        ));
    }
    for (i, c) in certs.iter().enumerate() {
        CertInfo::from_der(c).map_err(|e| MaterialError::new(path, format!("certificate #{}: {e}", i + 1)))?;
    }
    Ok(certs)
}

/// Parses the private key of a PEM file (PKCS#8, SEC1 or PKCS#1).
fn parse_key(path: &Path, pem: &[u8]) -> Result<PrivateKeyDer<'static>, MaterialError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| {
        MaterialError::new(
            path,
            format!("no usable PRIVATE KEY block (empty, truncated or not PEM): {e}"),
        )
    })
}

/// Checks that the leaf is valid now and that each certificate is issued by the next one.
pub fn check_chain(path: &Path, certs: &[CertificateDer<'_>], now: i64) -> Result<Vec<CertInfo>, MaterialError> {
    let infos: Vec<CertInfo> = certs
        .iter()
        .map(|c| CertInfo::from_der(c).map_err(|e| MaterialError::new(path, e)))
        .collect::<Result<_, _>>()?;
    let leaf = &infos[0];
    if now < leaf.not_before {
        return Err(MaterialError::new(
            path,
            format!("certificate is not valid yet (not_before {})", rfc3339(leaf.not_before)),
        ));
    }
    if now > leaf.not_after {
        return Err(MaterialError::new(
            path,
            format!("certificate expired at {}", rfc3339(leaf.not_after)),
        ));
    }
    for pair in infos.windows(2) {
        if pair[0].issuer != pair[1].subject {
            return Err(MaterialError::new(
                path,
                format!(
                    "chain out of order: \"{}\" is issued by \"{}\", but the next certificate is \"{}\"; put the leaf first, then each issuer",
                    pair[0].subject, pair[0].issuer, pair[1].subject
                ),
            ));
        }
    }
    Ok(infos)
}

/// A validated server certificate chain and key.
#[derive(Debug, Clone)]
pub struct ServerMaterial {
    /// Chain + signing key, ready for rustls.
    pub certified: Arc<CertifiedKey>,
    /// The leaf and any intermediates, in order.
    pub chain: Vec<CertInfo>,
    /// SHA-256 over the DER of the chain and the key: equal digests, equal material.
    pub digest: String,
}

/// The file names of a cert-manager TLS Secret.
pub const TLS_CRT: &str = "tls.crt";
/// Private key file of a cert-manager TLS Secret.
pub const TLS_KEY: &str = "tls.key";
/// CA file of a cert-manager TLS Secret.
pub const CA_CRT: &str = "ca.crt";

/// Loads and validates a certificate + key pair.
pub fn load_pair(files: &Files, cert_path: &Path, key_path: &Path, now: i64) -> Result<ServerMaterial, MaterialError> {
    let certs = parse_certs(cert_path, &read_file(files, cert_path)?)?;
    let key = parse_key(key_path, &read_file(files, key_path)?)?;
    let chain = check_chain(cert_path, &certs, now)?;
    let mut der = Vec::new();
    for c in &certs {
        der.extend_from_slice(c);
    }
    der.extend_from_slice(key.secret_der());
    let digest = sha256_hex(&der);
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    let certified = CertifiedKey::from_der(certs, key, &provider).map_err(|e| {
        let reason = match e {
            rustls::Error::InconsistentKeys(_) => format!(
                "the key does not match the certificate in {}; they must be written as a pair",
                cert_path.display()
            ),
            other => format!("unusable private key: {other}"),
        };
        MaterialError::new(key_path, reason)
    })?;
    Ok(ServerMaterial {
        certified: Arc::new(certified),
        chain,
        digest,
    })
}

/// A CA bundle: the root store, what each CA is, and a digest of the DER.
#[derive(Debug)]
pub struct Roots {
    /// For verifiers.
    pub store: RootCertStore,
    /// One entry per CA, in file order.
    pub infos: Vec<CertInfo>,
    /// SHA-256 over the DER of every CA.
    pub digest: String,
}

/// Checks that the leaf names every expected SAN (DNS name or IP address).
pub fn check_sans(path: &Path, leaf: &CertInfo, expected: &[String]) -> Result<(), MaterialError> {
    let missing: Vec<&str> = expected
        .iter()
        .filter(|want| !leaf.sans.iter().any(|have| have.eq_ignore_ascii_case(want)))
        .map(String::as_str)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(MaterialError::new(
        path,
        format!(
            "certificate does not name {} (it names {}); issue it with these SANs or change --expect-san",
            missing.join(", "),
            leaf.sans.join(", ")
        ),
    ))
}

/// Loads a CA bundle (one or more certificates) into a root store.
pub fn load_roots(files: &Files, path: &Path) -> Result<Roots, MaterialError> {
    let certs = parse_certs(path, &read_file(files, path)?)?;
    let digest = sha256_hex(&certs.iter().flat_map(|c| c.iter().copied()).collect::<Vec<u8>>());
    let mut store = RootCertStore::empty();
    let mut infos = Vec::new();
    for (i, c) in certs.into_iter().enumerate() {
        infos.push(CertInfo::from_der(&c).map_err(|e| MaterialError::new(path, e))?);
        store
            .add(c)
            .map_err(|e| MaterialError::new(path, format!("certificate #{} is not a usable CA: {e}", i + 1)))?;
    }
    Ok(Roots { store, infos, digest })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::{Ca, Issued, KeyType, LeafSpec};

    fn write(dir: &Path, issued: &Issued) -> (std::path::PathBuf, std::path::PathBuf) {
        let (crt, key) = (dir.join(TLS_CRT), dir.join(TLS_KEY));
        std::fs::write(&crt, &issued.cert_pem).unwrap();
        std::fs::write(&key, &issued.key_pem).unwrap();
        (crt, key)
    }

    fn ca() -> Ca {
        Ca::new("material test CA", KeyType::Ecdsa).unwrap()
    }

    #[test]
    fn a_pair_loads_with_its_chain_and_a_digest_that_follows_the_content() {
        let dir = tempfile::tempdir().unwrap();
        let ca = ca();
        let (crt, key) = write(
            dir.path(),
            &ca.issue(&LeafSpec::server("localhost", &["localhost"])).unwrap(),
        );
        let now = crate::util::now_unix();
        let m = load_pair(&Files::disk(), &crt, &key, now).unwrap();
        assert_eq!(m.chain[0].sans, ["localhost"]);
        assert_eq!(load_pair(&Files::disk(), &crt, &key, now).unwrap().digest, m.digest);
        write(
            dir.path(),
            &ca.issue(&LeafSpec::server("localhost", &["localhost"])).unwrap(),
        );
        assert_ne!(load_pair(&Files::disk(), &crt, &key, now).unwrap().digest, m.digest);
    }

    #[test]
    fn a_key_of_another_certificate_is_named_as_not_matching() {
        let dir = tempfile::tempdir().unwrap();
        let ca = ca();
        let (crt, key) = write(dir.path(), &ca.issue(&LeafSpec::server("a", &["a"])).unwrap());
        std::fs::write(&key, ca.issue(&LeafSpec::server("b", &["b"])).unwrap().key_pem).unwrap();
        let e = load_pair(&Files::disk(), &crt, &key, crate::util::now_unix()).unwrap_err();
        assert!(
            e.to_string().contains("tls.key") && e.to_string().contains("does not match"),
            "{e}"
        );
    }

    #[test]
    fn an_expired_or_not_yet_valid_leaf_is_refused_with_its_date() {
        let dir = tempfile::tempdir().unwrap();
        let ca = ca();
        let mut spec = LeafSpec::server("localhost", &["localhost"]);
        spec.not_before = time::Duration::days(-10);
        spec.not_after = time::Duration::days(-1);
        let (crt, key) = write(dir.path(), &ca.issue(&spec).unwrap());
        let e = load_pair(&Files::disk(), &crt, &key, crate::util::now_unix()).unwrap_err();
        assert!(e.to_string().contains("expired at"), "{e}");
        spec.not_before = time::Duration::days(1);
        spec.not_after = time::Duration::days(10);
        write(dir.path(), &ca.issue(&spec).unwrap());
        let e = load_pair(&Files::disk(), &crt, &key, crate::util::now_unix()).unwrap_err();
        assert!(e.to_string().contains("not valid yet"), "{e}");
    }

    #[test]
    fn truncated_or_empty_pem_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(CA_CRT);
        std::fs::write(&path, "").unwrap();
        let e = load_roots(&Files::disk(), &path).unwrap_err();
        assert!(
            e.to_string().contains("ca.crt") && e.to_string().contains("no CERTIFICATE block"),
            "{e}"
        );
        let e = load_roots(&Files::disk(), &dir.path().join("missing.crt")).unwrap_err();
        assert!(e.to_string().contains("missing.crt: cannot read"), "{e}");
    }

    #[test]
    fn a_missing_san_is_listed_with_what_the_certificate_names() {
        let leaf = CertInfo {
            sans: vec!["localhost".into()],
            ..CertInfo::default()
        };
        let e = check_sans(Path::new("tls.crt"), &leaf, &["api.example.com".into()]).unwrap_err();
        assert!(
            e.to_string()
                .contains("does not name api.example.com (it names localhost)"),
            "{e}"
        );
        assert!(check_sans(Path::new("tls.crt"), &leaf, &["LOCALHOST".into()]).is_ok());
    }
}
