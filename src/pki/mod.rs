//! A small certificate authority built on rcgen: the dev PKI of `tlsward certs dev` and the
//! fixtures of the tests (expired, not-yet-valid, wrong SAN, other CA, mismatched key).
//!
//! Files are written in the cert-manager Secret layout (`tls.crt`, `tls.key`, `ca.crt` per
//! directory), and the DB client also under CockroachDB's names (`client.<user>.crt/.key`).

pub mod command;

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType, SerialNumber,
};
use time::{Duration, OffsetDateTime};

/// Errors while making or writing certificates.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// rcgen refused the parameters.
    #[error("cannot generate {what}: {reason}")]
    Generate {
        /// What was being generated.
        what: String,
        /// The rcgen error (shown in the message, so not also a `source`).
        reason: rcgen::Error,
    },
    /// A file could not be written.
    #[error("{0}")]
    Write(std::io::Error),
}

/// Key algorithm of generated keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum KeyType {
    /// ECDSA P-256 with SHA-256.
    #[default]
    Ecdsa,
    /// RSA 2048 with SHA-256.
    Rsa2048,
    /// Ed25519.
    Ed25519,
}

impl KeyType {
    fn generate(self, what: &str) -> Result<KeyPair, PkiError> {
        let alg = match self {
            Self::Ecdsa => &rcgen::PKCS_ECDSA_P256_SHA256,
            Self::Rsa2048 => &rcgen::PKCS_RSA_SHA256,
            Self::Ed25519 => &rcgen::PKCS_ED25519,
        };
        KeyPair::generate_for(alg).map_err(|reason| PkiError::Generate {
            what: format!("{what} key"),
            reason,
        })
    }
}

/// What a leaf certificate is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    /// TLS server (serverAuth).
    Server,
    /// TLS client (clientAuth).
    Client,
}

/// Parameters of a leaf certificate.
#[derive(Debug, Clone)]
pub struct LeafSpec {
    /// Subject common name.
    pub common_name: String,
    /// DNS names or IP addresses.
    pub sans: Vec<String>,
    /// Server or client.
    pub usage: Usage,
    /// Validity start, relative to now.
    pub not_before: Duration,
    /// Validity end, relative to now.
    pub not_after: Duration,
    /// Key algorithm.
    pub key_type: KeyType,
}

impl LeafSpec {
    /// A server certificate valid from an hour ago for 90 days.
    pub fn server(common_name: &str, sans: &[&str]) -> Self {
        Self {
            common_name: common_name.to_string(),
            sans: sans.iter().map(|s| s.to_string()).collect(),
            usage: Usage::Server,
            not_before: Duration::hours(-1),
            not_after: Duration::days(90),
            key_type: KeyType::Ecdsa,
        }
    }

    /// A client certificate whose CN is `user`.
    pub fn client(user: &str) -> Self {
        Self {
            usage: Usage::Client,
            ..Self::server(user, &[])
        }
    }
}

/// A PEM certificate and its PEM private key.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The private key, PKCS#8 PEM.
    pub key_pem: String,
}

/// A certificate authority that can issue leaves.
pub struct Ca {
    params: CertificateParams,
    key: KeyPair,
    /// The CA certificate, PEM.
    pub cert_pem: String,
}

fn serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    bytes[0] &= 0x7f;
    SerialNumber::from_slice(&bytes)
}

fn dn(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "tlsward dev");
    dn.push(DnType::CommonName, cn);
    dn
}

fn san(name: &str) -> Result<SanType, PkiError> {
    if let Ok(ip) = name.parse::<std::net::IpAddr>() {
        return Ok(SanType::IpAddress(ip));
    }
    let ia5 = name.to_string().try_into().map_err(|reason| PkiError::Generate {
        what: format!("subjectAltName {name}"),
        reason,
    })?;
    // A URI (a SPIFFE ID such as spiffe://cluster.local/ns/NS/sa/SA) or a DNS name.
    Ok(if name.contains("://") {
        SanType::URI(ia5)
    } else {
        SanType::DnsName(ia5)
    })
}

/// Parameters of a CA certificate: `constraints` path length, valid for `days` from an hour ago.
fn ca_params(common_name: &str, constraints: BasicConstraints, days: i64) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = dn(common_name);
    params.is_ca = IsCa::Ca(constraints);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.serial_number = Some(serial());
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(days);
    params
}

impl Ca {
    /// A new self-signed CA valid for ten years.
    pub fn new(common_name: &str, key_type: KeyType) -> Result<Self, PkiError> {
        let params = ca_params(common_name, BasicConstraints::Unconstrained, 3650);
        let key = key_type.generate("CA")?;
        let cert = params.self_signed(&key).map_err(|reason| PkiError::Generate {
            what: "CA certificate".into(),
            reason,
        })?;
        Ok(Self {
            cert_pem: cert.pem(),
            params,
            key,
        })
    }

    /// The CA's private key, PKCS#8 PEM (to use the CA certificate as a self-signed leaf).
    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    /// Issues an intermediate CA (path length 0, five years) signed by this one.
    pub fn intermediate(&self, common_name: &str) -> Result<Self, PkiError> {
        let mut params = ca_params(common_name, BasicConstraints::Constrained(0), 1825);
        params.use_authority_key_identifier_extension = true;
        let key = KeyType::Ecdsa.generate(common_name)?;
        let issuer = Issuer::from_params(&self.params, &self.key);
        let cert = params.signed_by(&key, &issuer).map_err(|reason| PkiError::Generate {
            what: format!("intermediate CA {common_name}"),
            reason,
        })?;
        Ok(Self {
            cert_pem: cert.pem(),
            params,
            key,
        })
    }

    /// Issues a leaf certificate.
    pub fn issue(&self, spec: &LeafSpec) -> Result<Issued, PkiError> {
        let mut params = CertificateParams::default();
        params.distinguished_name = dn(&spec.common_name);
        params.subject_alt_names = spec.sans.iter().map(|s| san(s)).collect::<Result<_, _>>()?;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        if spec.key_type == KeyType::Rsa2048 {
            // Clients expect keyEncipherment on RSA server certificates; EC and Ed25519 keys
            // cannot encrypt, so they do not get it.
            params.key_usages.push(KeyUsagePurpose::KeyEncipherment);
        }
        params.extended_key_usages = vec![match spec.usage {
            Usage::Server => ExtendedKeyUsagePurpose::ServerAuth,
            Usage::Client => ExtendedKeyUsagePurpose::ClientAuth,
        }];
        params.use_authority_key_identifier_extension = true;
        params.serial_number = Some(serial());
        let now = OffsetDateTime::now_utc();
        params.not_before = now + spec.not_before;
        params.not_after = now + spec.not_after;
        let key = spec.key_type.generate(&spec.common_name)?;
        let issuer = Issuer::from_params(&self.params, &self.key);
        let cert = params.signed_by(&key, &issuer).map_err(|reason| PkiError::Generate {
            what: format!("certificate for {}", spec.common_name),
            reason,
        })?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// Writes a file, creating its directory; `secret` files get mode 0600.
pub fn write_file(path: &Path, contents: &str, secret: bool) -> Result<(), PkiError> {
    crate::util::write_file(path, contents, secret).map_err(PkiError::Write)
}

/// Writes a cert-manager style Secret directory: `tls.crt`, `tls.key`, `ca.crt`.
pub fn write_secret_dir(dir: &Path, issued: &Issued, ca_pem: &str) -> Result<(), PkiError> {
    write_file(&dir.join("tls.crt"), &issued.cert_pem, false)?;
    write_file(&dir.join("tls.key"), &issued.key_pem, true)?;
    write_file(&dir.join("ca.crt"), ca_pem, false)
}

/// Options of the dev PKI.
#[derive(Debug, Clone)]
pub struct DevPkiOptions {
    /// Extra SANs for the HTTPS server certificate.
    pub extra_sans: Vec<String>,
    /// The SQL user of the DB client certificate.
    pub db_user: String,
    /// Key algorithm of every key.
    pub key_type: KeyType,
}

/// The directories `certs dev` writes.
#[derive(Debug, Clone)]
pub struct DevPkiLayout {
    /// `ca/`: the CA (`ca.crt`, `ca.key`).
    pub ca: PathBuf,
    /// `server/`: the HTTPS server Secret.
    pub server: PathBuf,
    /// `db-server/`: the database server Secret.
    pub db_server: PathBuf,
    /// `db-client/`: the DB client Secret (also `client.<user>.crt/.key`).
    pub db_client: PathBuf,
    /// `tokens/`: token signing keys.
    pub tokens: PathBuf,
}

impl DevPkiLayout {
    /// The layout under `out`.
    pub fn under(out: &Path) -> Self {
        Self {
            ca: out.join("ca"),
            server: out.join("server"),
            db_server: out.join("db-server"),
            db_client: out.join("db-client"),
            tokens: out.join("tokens"),
        }
    }
}

/// Generates the dev PKI under `out` and a first token key.
pub fn generate_dev(out: &Path, opts: &DevPkiOptions) -> Result<DevPkiLayout, PkiError> {
    let layout = DevPkiLayout::under(out);
    let ca = Ca::new("tlsward dev CA", opts.key_type)?;
    write_file(&layout.ca.join("ca.crt"), &ca.cert_pem, false)?;
    write_file(&layout.ca.join("ca.key"), &ca.key_pem(), true)?;

    let mut sans = vec!["localhost".to_string(), "127.0.0.1".into(), "::1".into()];
    sans.extend(opts.extra_sans.iter().cloned());
    let sans_ref: Vec<&str> = sans.iter().map(String::as_str).collect();
    let mut server = LeafSpec::server("localhost", &sans_ref);
    server.key_type = opts.key_type;
    write_secret_dir(&layout.server, &ca.issue(&server)?, &ca.cert_pem)?;

    let mut db_server = LeafSpec::server("node", &["localhost", "127.0.0.1", "::1"]);
    db_server.key_type = opts.key_type;
    write_secret_dir(&layout.db_server, &ca.issue(&db_server)?, &ca.cert_pem)?;

    let mut client = LeafSpec::client(&opts.db_user);
    client.key_type = opts.key_type;
    let issued = ca.issue(&client)?;
    write_secret_dir(&layout.db_client, &issued, &ca.cert_pem)?;
    let user = &opts.db_user;
    write_file(
        &layout.db_client.join(format!("client.{user}.crt")),
        &issued.cert_pem,
        false,
    )?;
    write_file(
        &layout.db_client.join(format!("client.{user}.key")),
        &issued.key_pem,
        true,
    )?;

    let date = OffsetDateTime::now_utc().date();
    let kid = format!("k{}", date.to_string().replace('-', ""));
    write_file(&layout.tokens.join(kid), &crate::token::generate_key_text(), true)?;
    Ok(layout)
}
