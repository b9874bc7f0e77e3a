//! The headers a reverse proxy owes the app and the client: hop-by-hop headers removed in
//! both directions (RFC 9110 §7.6.1, and those the `Connection` header names); the client's
//! address, scheme and host passed on as `X-Forwarded-For`, `X-Forwarded-Proto`,
//! `X-Forwarded-Host` and RFC 7239 `Forwarded`, with client-sent copies replaced unless the
//! peer is a trusted proxy; the verified client certificate as Envoy's
//! `X-Forwarded-Client-Cert`; and the edge's security headers on responses that lack them.

use std::net::IpAddr;

use http::header::{CONNECTION, HeaderMap, HeaderName, HeaderValue, UPGRADE};

/// Removed on every hop (RFC 9110 §7.6.1 and the long-standing `Keep-Alive`,
/// `Proxy-Connection`); `Upgrade` only when the request is not being upgraded.
const HOP_BY_HOP: [&str; 6] = [
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "proxy-authorization",
];

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const FORWARDED: HeaderName = HeaderName::from_static("forwarded");
const HTTPS: HeaderValue = HeaderValue::from_static("https");

/// Whether the request asks for a protocol upgrade (`Connection: upgrade` + `Upgrade`).
pub(crate) fn is_upgrade(h: &HeaderMap) -> bool {
    h.contains_key(UPGRADE) && connection_tokens(h).iter().any(|t| t == "upgrade")
}

fn connection_tokens(h: &HeaderMap) -> Vec<String> {
    h.get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect()
}

/// Removes the hop-by-hop headers; with `upgrading`, keeps `Upgrade` and leaves
/// `Connection: upgrade` so that the next hop sees the upgrade.
pub(crate) fn strip_hop_by_hop(h: &mut HeaderMap, upgrading: bool) {
    for token in connection_tokens(h) {
        if token != "upgrade"
            && let Ok(name) = HeaderName::from_bytes(token.as_bytes())
        {
            h.remove(name);
        }
    }
    for name in HOP_BY_HOP {
        h.remove(name);
    }
    h.remove(CONNECTION);
    if upgrading {
        h.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    } else {
        h.remove(UPGRADE);
    }
}

/// A connection's peer address as the forwarding headers write it, made once per connection.
#[derive(Debug)]
pub(crate) struct ClientAddr {
    /// `X-Forwarded-For`'s value.
    ip: HeaderValue,
    /// RFC 7239 `for=` of `Forwarded`.
    node: String,
}

impl ClientAddr {
    /// The values for `addr`.
    pub(crate) fn new(addr: IpAddr) -> Self {
        Self {
            ip: HeaderValue::from_str(&addr.to_string()).unwrap_or(HeaderValue::from_static("unknown")),
            node: format!("for={}", forwarded_node(addr)),
        }
    }
}

/// Who sent a request to the edge.
#[derive(Debug, Clone)]
pub(crate) struct Peer {
    /// The TCP peer's address.
    pub addr: std::sync::Arc<ClientAddr>,
    /// The host the client asked for (`Host` or the h2 `:authority`).
    pub host: Option<String>,
    /// Whether the peer is a trusted proxy (`--trust-forwarded-from`), whose forwarding
    /// headers are kept and appended to.
    pub trusted: bool,
    /// The connection's verified client certificate as an XFCC element ([`client_cert_element`]).
    pub client_cert: Option<HeaderValue>,
}

const X_FORWARDED_CLIENT_CERT: HeaderName = HeaderName::from_static("x-forwarded-client-cert");

/// Envoy's `X-Forwarded-Client-Cert` element for a verified client certificate (DER):
/// `Hash=` (SHA-256 of the DER, hex), `Cert="…"` (the URL-encoded PEM), `Subject="…"` (in
/// the certificate's order, as `openssl x509 -subject` prints it), then
/// `URI=` and `DNS=` for each such subjectAltName. `None` for a certificate that does not parse.
pub(crate) fn client_cert_element(der: &[u8]) -> Option<HeaderValue> {
    let info = crate::tls::material::CertInfo::from_der(der).ok()?;
    let pem = pem::encode_config(
        &pem::Pem::new("CERTIFICATE", der.to_vec()),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    );
    let cert = percent_encoding::utf8_percent_encode(&pem, percent_encoding::NON_ALPHANUMERIC);
    let quoted = |v: &str| v.replace('\\', "\\\\").replace('"', "\\\"");
    let mut element = format!(
        "Hash={};Cert=\"{cert}\";Subject=\"{}\"",
        crate::util::sha256_hex(der),
        quoted(&info.subject)
    );
    for san in &info.sans {
        if san.contains("://") {
            element.push_str(&format!(";URI={san}"));
        } else if san.parse::<IpAddr>().is_err() {
            element.push_str(&format!(";DNS={san}"));
        }
    }
    HeaderValue::from_str(&element).ok()
}

/// Sets the forwarding headers for `peer`; the scheme is always `https` (the edge
/// terminates TLS).
pub(crate) fn set_forwarded(h: &mut HeaderMap, peer: &Peer) {
    let node = match &peer.host {
        Some(host) => format!("{};host={};proto=https", peer.addr.node, forwarded_value(host)),
        None => format!("{};proto=https", peer.addr.node),
    };
    set_client_cert(h, peer);
    if peer.trusted {
        append(h, X_FORWARDED_FOR, peer.addr.ip.to_str().unwrap_or(""));
        append(h, FORWARDED, &node);
        if !h.contains_key(X_FORWARDED_PROTO) {
            h.insert(X_FORWARDED_PROTO, HTTPS);
        }
        if !h.contains_key(X_FORWARDED_HOST)
            && let Some(host) = &peer.host
        {
            set(h, X_FORWARDED_HOST, host);
        }
        return;
    }
    h.insert(X_FORWARDED_FOR, peer.addr.ip.clone());
    set(h, FORWARDED, &node);
    h.insert(X_FORWARDED_PROTO, HTTPS);
    match &peer.host {
        Some(host) => set(h, X_FORWARDED_HOST, host),
        None => {
            h.remove(X_FORWARDED_HOST);
        }
    }
}

/// From a trusted proxy, its XFCC elements are kept and this connection's appended; from
/// anyone else, client copies are removed and only this connection's is set.
fn set_client_cert(h: &mut HeaderMap, peer: &Peer) {
    let Some(ours) = peer.client_cert.as_ref().and_then(|v| v.to_str().ok()) else {
        if !peer.trusted {
            h.remove(X_FORWARDED_CLIENT_CERT);
        }
        return;
    };
    if peer.trusted {
        append(h, X_FORWARDED_CLIENT_CERT, ours);
    } else {
        set(h, X_FORWARDED_CLIENT_CERT, ours);
    }
}

/// RFC 7239 §6: an IPv6 node is quoted and bracketed.
fn forwarded_node(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("\"[{v6}]\""),
    }
}

/// A value as an RFC 7230 token, or quoted when it has other characters (`:` of a port).
fn forwarded_value(v: &str) -> String {
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if !v.is_empty() && v.chars().all(token) {
        v.to_string()
    } else {
        format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

/// Replaces every value of `name` with `value` (none when `value` is not a header value).
fn set(h: &mut HeaderMap, name: HeaderName, value: &str) {
    match HeaderValue::from_str(value) {
        Ok(v) => {
            h.insert(name, v);
        }
        Err(_) => {
            h.remove(name);
        }
    }
}

fn append(h: &mut HeaderMap, name: HeaderName, value: &str) {
    let joined: Vec<&str> = h.get_all(&name).iter().filter_map(|v| v.to_str().ok()).collect();
    let value = if joined.is_empty() {
        value.to_string()
    } else {
        format!("{}, {value}", joined.join(", "))
    };
    set(h, name, &value);
}

/// Adds each of `serve`'s security headers the app did not set itself.
pub(crate) fn add_security_headers(h: &mut HeaderMap) {
    for (name, value) in crate::web::SECURITY_HEADERS {
        if !h.contains_key(name) {
            h.insert(name, HeaderValue::from_static(value));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(list: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in list {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn peer(addr: &str, trusted: bool) -> Peer {
        Peer {
            addr: std::sync::Arc::new(ClientAddr::new(addr.parse().unwrap())),
            host: Some("api.example.com:8443".into()),
            trusted,
            client_cert: None,
        }
    }

    #[test]
    fn hop_by_hop_headers_and_those_connection_names_are_removed() {
        let mut h = headers(&[
            ("connection", "keep-alive, x-secret-hop"),
            ("keep-alive", "timeout=5"),
            ("x-secret-hop", "1"),
            ("te", "trailers"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "h2c"),
            ("accept", "*/*"),
        ]);
        strip_hop_by_hop(&mut h, false);
        let left: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        assert_eq!(left, ["accept"]);
    }

    #[test]
    fn an_upgrade_keeps_upgrade_and_connection_upgrade() {
        let mut h = headers(&[("connection", "Upgrade, keep-alive"), ("upgrade", "websocket")]);
        assert!(is_upgrade(&h));
        strip_hop_by_hop(&mut h, true);
        assert_eq!(h["connection"], "upgrade");
        assert_eq!(h["upgrade"], "websocket");
        assert!(!h.contains_key("keep-alive"));
    }

    #[test]
    fn client_sent_forwarding_headers_are_replaced_not_appended() {
        let mut h = headers(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-proto", "http"),
            ("x-forwarded-host", "evil.example"),
            ("forwarded", "for=6.6.6.6"),
        ]);
        set_forwarded(&mut h, &peer("203.0.113.7", false));
        assert_eq!(h["x-forwarded-for"], "203.0.113.7");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h["x-forwarded-host"], "api.example.com:8443");
        assert_eq!(
            h["forwarded"],
            "for=203.0.113.7;host=\"api.example.com:8443\";proto=https"
        );
    }

    #[test]
    fn a_trusted_proxys_forwarding_headers_are_appended_to() {
        let mut h = headers(&[
            ("x-forwarded-for", "198.51.100.1"),
            ("x-forwarded-proto", "https"),
            ("forwarded", "for=198.51.100.1"),
        ]);
        set_forwarded(&mut h, &peer("10.0.0.2", true));
        assert_eq!(h["x-forwarded-for"], "198.51.100.1, 10.0.0.2");
        assert_eq!(
            h["forwarded"],
            "for=198.51.100.1, for=10.0.0.2;host=\"api.example.com:8443\";proto=https"
        );
    }

    #[test]
    fn an_ipv6_peer_is_quoted_and_bracketed_in_forwarded() {
        let mut h = HeaderMap::new();
        set_forwarded(&mut h, &peer("2001:db8::1", false));
        assert!(
            h["forwarded"].to_str().unwrap().starts_with("for=\"[2001:db8::1]\";"),
            "{:?}",
            h["forwarded"]
        );
    }

    #[test]
    fn security_headers_are_added_only_where_the_app_set_none() {
        let mut h = headers(&[("cache-control", "max-age=60")]);
        add_security_headers(&mut h);
        assert_eq!(h["cache-control"], "max-age=60");
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert!(h.contains_key("strict-transport-security"));
    }

    fn leaf_der() -> Vec<u8> {
        let ca = crate::pki::Ca::new("xfcc test CA", crate::pki::KeyType::Ecdsa).unwrap();
        let mut spec = crate::pki::LeafSpec::client("app");
        spec.sans = vec!["spiffe://cluster.local/ns/shop/sa/web".into(), "web.shop".into()];
        let pem = ca.issue(&spec).unwrap().cert_pem;
        crate::tls::material::parse_certs(std::path::Path::new("leaf"), pem.as_bytes()).unwrap()[0]
            .as_ref()
            .to_vec()
    }

    #[test]
    fn the_client_cert_element_has_hash_cert_subject_and_sans_as_envoy_writes_them() {
        let der = leaf_der();
        let v = client_cert_element(&der).unwrap();
        let v = v.to_str().unwrap();
        assert!(
            v.starts_with(&format!("Hash={};Cert=\"", crate::util::sha256_hex(&der))),
            "{v}"
        );
        assert!(
            v.contains("Cert=\"%2D%2D%2D%2D%2DBEGIN%20CERTIFICATE%2D%2D%2D%2D%2D%0A"),
            "{v}"
        );
        assert!(v.contains(";Subject=\"O=tlsward dev, CN=app\""), "{v}");
        assert!(
            v.ends_with(";URI=spiffe://cluster.local/ns/shop/sa/web;DNS=web.shop"),
            "{v}"
        );
    }

    #[test]
    fn a_client_sent_xfcc_is_replaced_unless_the_peer_is_trusted() {
        let ours = client_cert_element(&leaf_der()).unwrap();
        let forged = || {
            let mut h = HeaderMap::new();
            h.insert(X_FORWARDED_CLIENT_CERT, HeaderValue::from_static("Hash=forged"));
            h
        };
        let mut untrusted = peer("203.0.113.9", false);
        let mut h = forged();
        set_forwarded(&mut h, &untrusted);
        assert!(
            !h.contains_key(X_FORWARDED_CLIENT_CERT),
            "a forged XFCC passed without a client certificate"
        );
        untrusted.client_cert = Some(ours.clone());
        let mut h = forged();
        set_forwarded(&mut h, &untrusted);
        assert_eq!(h.get_all(X_FORWARDED_CLIENT_CERT).iter().collect::<Vec<_>>(), [&ours]);
        let mut trusted = peer("10.0.0.5", true);
        trusted.client_cert = Some(ours.clone());
        let mut h = forged();
        set_forwarded(&mut h, &trusted);
        assert_eq!(
            h[X_FORWARDED_CLIENT_CERT],
            format!("Hash=forged, {}", ours.to_str().unwrap())
        );
    }
}
