//! Independent and rustls TLS clients against the server under test (SNI `localhost`, the
//! test CA), and the serials of what they are served.

use std::path::Path;
use std::time::Duration;

use tlsward::pki::{Issued, LeafSpec};

use crate::pg::postgres;
use crate::server::TestServer;

/// The arguments of `openssl s_client` (an independent TLS client) to `127.0.0.1:port` as
/// `localhost`, verifying against `ca` and failing when the chain does not verify.
pub fn s_client_args(port: u16, ca: &Path) -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> = ["s_client", "-connect", &format!("127.0.0.1:{port}")]
        .map(Into::into)
        .into();
    args.extend(["-servername", "localhost", "-CAfile"].map(Into::into));
    args.push(ca.into());
    args.extend(["-verify_return_error", "-brief"].map(Into::into));
    args
}

/// `openssl s_client` to `127.0.0.1:port`, verifying against the test CA, with `args`.
pub async fn s_client(port: u16, args: &[&str]) -> std::process::Output {
    tokio::process::Command::new("openssl")
        .args(s_client_args(port, &postgres().ca_file))
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .expect("openssl is installed")
}

/// A TLS client stream to the server under test.
pub type Tls = tokio_rustls::client::TlsStream<tokio::net::TcpStream>;

/// A rustls client configuration that trusts the test CA, for `versions` (empty: every
/// version rustls offers), offering `alpn`.
pub fn tls_client(
    versions: &[&'static rustls::SupportedProtocolVersion],
    alpn: &[&[u8]],
) -> std::sync::Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    let ca = tlsward::tls::material::parse_certs(Path::new("ca"), postgres().ca.cert_pem.as_bytes()).unwrap();
    roots.add(ca[0].clone()).unwrap();
    let builder = if versions.is_empty() {
        rustls::ClientConfig::builder()
    } else {
        rustls::ClientConfig::builder_with_protocol_versions(versions)
    };
    let mut config = builder.with_root_certificates(roots).with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    std::sync::Arc::new(config)
}

/// A TLS connection to `127.0.0.1:port` with SNI `localhost`.
pub async fn tls_connect(config: &std::sync::Arc<rustls::ClientConfig>, port: u16) -> std::io::Result<Tls> {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    tokio_rustls::TlsConnector::from(config.clone())
        .connect(name, tcp)
        .await
}

/// The serial of the certificate a new TLS connection to `127.0.0.1:port` is served
/// (SNI `localhost`, verified against the test CA).
pub async fn served_serial(port: u16) -> Result<String, String> {
    let tls = tokio::time::timeout(Duration::from_secs(5), tls_connect(&tls_client(&[], &[]), port))
        .await
        .map_err(|_| "handshake timed out".to_string())?
        .map_err(|e| e.to_string())?;
    let certs = tls.get_ref().1.peer_certificates().ok_or("no certificate")?;
    Ok(tlsward::tls::material::CertInfo::from_der(&certs[0])?.serial)
}

/// Waits until new connections are served `cert`.
pub async fn wait_serial(s: &TestServer, cert: &Issued) {
    let want = serial_of(&cert.cert_pem);
    let port = s.port();
    crate::assert_eventually!(
        served_serial(port).await.as_deref() == Ok(want.as_str()),
        Duration::from_secs(10),
        "serial {want} was never served"
    );
}

/// A decimal number (pg_stat_ssl's `client_serial`) in lowercase hex without leading zeros.
pub fn decimal_to_hex(decimal: &str) -> String {
    // Base 10 → base 16 on digit vectors (serials are up to 160 bits).
    let mut digits: Vec<u32> = decimal.bytes().map(|b| u32::from(b - b'0')).collect();
    let mut hex = Vec::new();
    while digits.iter().any(|d| *d != 0) {
        let mut rem = 0;
        for d in &mut digits {
            let cur = rem * 10 + *d;
            *d = cur / 16;
            rem = cur % 16;
        }
        hex.push(char::from_digit(rem, 16).unwrap());
    }
    hex.iter().rev().collect()
}

/// A PEM certificate's serial as [`decimal_to_hex`] writes it (no colons, no leading zeros).
pub fn plain_serial(cert_pem: &str) -> String {
    serial_of(cert_pem)
        .replace(':', "")
        .trim_start_matches('0')
        .to_lowercase()
}

/// The serial of a PEM certificate.
pub fn serial_of(cert_pem: &str) -> String {
    let der = tlsward::tls::material::parse_certs(Path::new("cert"), cert_pem.as_bytes()).unwrap();
    tlsward::tls::material::CertInfo::from_der(&der[0]).unwrap().serial
}

/// A new server certificate for localhost from the test CA.
pub fn new_server_cert() -> Issued {
    postgres()
        .ca
        .issue(&LeafSpec::server("localhost", &["localhost", "127.0.0.1", "::1"]))
        .unwrap()
}
