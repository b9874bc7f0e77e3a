//! Modern probes through rustls (TLS 1.2 and 1.3 with the suites rustls has), the checks on
//! the certificate chain the server sent, and the HSTS header of one `GET /`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls::{ClientConfig, RootCertStore, SupportedCipherSuite};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::probe::{ProbeError, Starttls, connect};
use crate::tls::client::AcceptAny;
use crate::tls::material::CertInfo;

/// What a rustls handshake found.
pub(crate) struct Modern {
    /// The chain the server sent.
    pub chain: Vec<CertificateDer<'static>>,
    /// The `Strict-Transport-Security` header of `GET /`, when asked for and answered.
    pub hsts: Option<HttpCheck>,
}

/// The answer to `GET /`.
#[derive(Debug, Clone, Serialize)]
pub struct HttpCheck {
    /// Status line.
    pub status: String,
    /// The HSTS header value, if any.
    pub hsts: Option<String>,
}

/// One rustls handshake limited to `versions` and `suites`, optionally followed by `GET /`.
pub(crate) async fn handshake(
    addr: SocketAddr,
    starttls: Option<Starttls>,
    sni: &str,
    tls13: bool,
    suites: Vec<SupportedCipherSuite>,
    http_get: bool,
    timeout: Duration,
) -> Result<Modern, ProbeError> {
    let provider = Arc::new(rustls::crypto::CryptoProvider {
        cipher_suites: suites,
        ..rustls::crypto::aws_lc_rs::default_provider()
    });
    let versions: &[&rustls::SupportedProtocolVersion] = if tls13 {
        &[&rustls::version::TLS13]
    } else {
        &[&rustls::version::TLS12]
    };
    let mut config = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|e| ProbeError::NotTls(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
        .with_no_client_auth();
    config.alpn_protocols = if http_get {
        vec![b"http/1.1".to_vec()]
    } else {
        Vec::new()
    };
    config.resumption = rustls::client::Resumption::disabled();
    let name = ServerName::try_from(sni.to_string()).map_err(|e| ProbeError::NotTls(format!("bad SNI {sni}: {e}")))?;
    let tcp = connect(addr, starttls, timeout).await?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let mut tls = tokio::time::timeout(timeout, connector.connect(name, tcp))
        .await
        .map_err(|_| ProbeError::Timeout)?
        .map_err(|e| ProbeError::NotTls(e.to_string()))?;
    let (_, conn) = tls.get_ref();
    let chain: Vec<CertificateDer<'static>> = conn
        .peer_certificates()
        .unwrap_or_default()
        .iter()
        .map(|c| c.clone().into_owned())
        .collect();
    let hsts = if http_get {
        get_root(&mut tls, sni, timeout).await
    } else {
        None
    };
    Ok(Modern { chain, hsts })
}

async fn get_root<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    tls: &mut S,
    host: &str,
    timeout: Duration,
) -> Option<HttpCheck> {
    let req = format!(
        "GET / HTTP/1.1\r\nHost: {host}\r\nUser-Agent: tlsward-scan\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    );
    let work = async {
        tls.write_all(req.as_bytes()).await.ok()?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 64 * 1024 {
            let n = tls.read(&mut chunk).await.ok()?;
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        parse_head(&buf)
    };
    tokio::time::timeout(timeout, work).await.ok().flatten()
}

/// Status line and HSTS header of an HTTP/1.x response head.
pub(super) fn parse_head(buf: &[u8]) -> Option<HttpCheck> {
    let text = String::from_utf8_lossy(buf);
    let mut lines = text.split("\r\n");
    let status = lines.next().filter(|l| l.starts_with("HTTP/1."))?.to_string();
    let hsts = lines.take_while(|l| !l.is_empty()).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case("strict-transport-security")
            .then(|| v.trim().to_string())
    });
    Some(HttpCheck { status, hsts })
}

/// The `max-age` of an HSTS value, in seconds.
pub(crate) fn hsts_max_age(value: &str) -> Option<u64> {
    value.split(';').find_map(|d| {
        let (k, v) = d.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("max-age")
            .then(|| v.trim().trim_matches('"').parse().ok())
            .flatten()
    })
}

/// The verdicts on a certificate chain, judged at the time of the scan.
#[derive(Debug, Clone, Serialize)]
pub struct ChainCheck {
    /// The chain as sent.
    pub chain: Vec<CertSummary>,
    /// The chain verifies, now, to a trusted root (`--ca`, or the system's roots), for
    /// server authentication (the host name aside: see `hostname_match`).
    pub trusted: bool,
    /// Why it does not.
    pub trust_error: Option<String>,
    /// A certificate of the chain has expired.
    pub expired: bool,
    /// A certificate of the chain is not valid yet.
    pub not_yet_valid: bool,
    /// The leaf is self-signed (and not itself a trusted root).
    pub self_signed: bool,
    /// The chain is complete up to a root, but not a trusted one.
    pub untrusted_root: bool,
    /// The last certificate sent is neither a root nor issued by a trusted root: an
    /// intermediate is missing.
    pub incomplete: bool,
    /// The leaf's extended key usage does not allow server authentication.
    pub wrong_usage: bool,
    /// The leaf names the SNI host.
    pub hostname_match: bool,
    /// Seconds until the leaf expires (negative: expired).
    pub expires_in: i64,
    /// Seconds until the leaf becomes valid (positive: not yet valid).
    pub valid_in: i64,
}

/// One certificate, as the report shows it.
#[derive(Debug, Clone, Serialize)]
pub struct CertSummary {
    /// Subject DN.
    pub subject: String,
    /// Issuer DN.
    pub issuer: String,
    /// DNS and IP SANs.
    pub sans: Vec<String>,
    /// Serial, hex.
    pub serial: String,
    /// Expiry, RFC 3339.
    pub not_after: String,
}

fn name_matches(pattern: &str, host: &str) -> bool {
    let (p, h) = (pattern.to_ascii_lowercase(), host.to_ascii_lowercase());
    match p.strip_prefix("*.") {
        Some(suffix) => h
            .split_once('.')
            .is_some_and(|(label, rest)| !label.is_empty() && rest == suffix),
        None => p == h,
    }
}

/// The contents of a DER TLV (the value without its tag and length).
fn der_contents(tlv: &[u8]) -> &[u8] {
    let Some(&first) = tlv.get(1) else { return tlv };
    let header = if first < 0x80 { 2 } else { 2 + usize::from(first & 0x7f) };
    tlv.get(header..).unwrap_or(tlv)
}

/// Whether a trusted root's subject is `issuer` (a DER Name). Trust anchors keep the
/// subject's contents, without the outer SEQUENCE, so both forms are compared.
fn anchored(roots: &RootCertStore, issuer: &[u8]) -> bool {
    roots
        .roots
        .iter()
        .any(|r| r.subject.as_ref() == issuer || r.subject.as_ref() == der_contents(issuer))
}

/// Whether the leaf's extended key usage, if it has one, allows server authentication.
fn usable_for_servers(leaf: &x509_parser::certificate::X509Certificate<'_>) -> bool {
    match leaf.extended_key_usage() {
        Ok(Some(eku)) => eku.value.any || eku.value.server_auth,
        _ => true,
    }
}

fn verify_at(
    roots: &RootCertStore,
    chain: &[CertificateDer<'static>],
    name: &str,
    at: i64,
) -> Result<(), rustls::Error> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots.clone()), provider)
        .build()
        .map_err(|e| rustls::Error::General(format!("no usable trust anchors: {e}")))?;
    let name = ServerName::try_from(name.to_string()).map_err(|e| rustls::Error::General(e.to_string()))?;
    let time = UnixTime::since_unix_epoch(Duration::from_secs(at.max(0) as u64));
    verifier
        .verify_server_cert(&chain[0], &chain[1..], &name, &[], time)
        .map(|_| ())
}

/// Judges a chain for `host` at `now` (Unix seconds, the time of the scan) against `roots`.
/// Trust is judged at `now`; whether the path itself reaches a trusted root is judged apart
/// (at a time inside the leaf's validity), so that an expired leaf under a trusted root is
/// `expired`, not `incomplete` or `untrusted_root`.
pub(crate) fn check_chain(
    chain: &[CertificateDer<'static>],
    host: &str,
    roots: &RootCertStore,
    now: i64,
) -> Option<ChainCheck> {
    use rustls::CertificateError as C;
    let infos: Vec<CertInfo> = chain.iter().filter_map(|c| CertInfo::from_der(c).ok()).collect();
    let leaf = infos.first()?;
    let parsed: Vec<_> = chain
        .iter()
        .filter_map(|c| x509_parser::parse_x509_certificate(c).ok().map(|(_, x)| x))
        .collect();
    let host_ip = host.parse::<std::net::IpAddr>().ok().map(|ip| ip.to_string());
    let hostname_match = leaf.sans.iter().any(|san| match &host_ip {
        Some(ip) => san == ip,
        None => name_matches(san, host),
    });
    // Trust apart from the name: checked for a name the leaf carries.
    let name_for_trust = leaf.sans.first().cloned().unwrap_or_else(|| host.to_string());
    let now_result = verify_at(roots, chain, &name_for_trust, now);
    let path_result = verify_at(roots, chain, &name_for_trust, (leaf.not_before + leaf.not_after) / 2);
    let cert_error = |r: &Result<(), rustls::Error>| match r {
        Err(rustls::Error::InvalidCertificate(e)) => Some(e.clone()),
        _ => None,
    };
    let (now_err, path_err) = (cert_error(&now_result), cert_error(&path_result));
    let expired = leaf.not_after < now || matches!(now_err, Some(C::Expired | C::ExpiredContext { .. }));
    let not_yet_valid = leaf.not_before > now || matches!(now_err, Some(C::NotValidYet | C::NotValidYetContext { .. }));
    let wrong_usage = parsed.first().is_some_and(|l| !usable_for_servers(l))
        || matches!(path_err, Some(C::InvalidPurpose | C::InvalidPurposeContext { .. }));
    let unknown_issuer = matches!(path_err, Some(C::UnknownIssuer));
    let last = parsed.last()?;
    let last_is_root = last.subject().as_raw() == last.issuer().as_raw();
    let last_anchored = anchored(roots, last.issuer().as_raw());
    // A lone certificate that is its own issuer: whatever the verifier says about it (an
    // unknown issuer, or a CA certificate used as a leaf), it vouches for itself only.
    let self_signed = chain.len() == 1 && last_is_root && path_result.is_err();
    let untrusted_root = unknown_issuer && chain.len() > 1 && last_is_root;
    let incomplete = unknown_issuer && !last_is_root && !last_anchored;
    Some(ChainCheck {
        chain: infos
            .iter()
            .map(|c| CertSummary {
                subject: c.subject.clone(),
                issuer: c.issuer.clone(),
                sans: c.sans.clone(),
                serial: c.serial.clone(),
                not_after: c.not_after_rfc3339(),
            })
            .collect(),
        trusted: now_result.is_ok(),
        trust_error: now_result.err().map(|e| e.to_string()),
        expired,
        not_yet_valid,
        self_signed,
        untrusted_root,
        incomplete,
        wrong_usage,
        hostname_match,
        expires_in: leaf.not_after - now,
        valid_in: leaf.not_before - now,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_one_label() {
        assert!(name_matches("*.example.com", "api.example.com"));
        assert!(!name_matches("*.example.com", "a.b.example.com"));
        assert!(!name_matches("*.example.com", "example.com"));
        assert!(name_matches("LocalHost", "localhost"));
    }

    #[test]
    fn reads_hsts_from_a_response_head() {
        let h = parse_head(b"HTTP/1.1 200 OK\r\nContent-Type: x\r\nStrict-Transport-Security: max-age=63072000; includeSubDomains\r\n\r\nbody").unwrap();
        assert_eq!(h.status, "HTTP/1.1 200 OK");
        assert_eq!(hsts_max_age(h.hsts.as_deref().unwrap()), Some(63_072_000));
        assert!(parse_head(b"HTTP/1.1 404 Not Found\r\n\r\n").unwrap().hsts.is_none());
        assert!(parse_head(b"\x15\x03\x03").is_none());
    }
}
