//! Hand-built ClientHello records and the parser of the server's answer, for the protocol
//! versions and suites rustls will not offer (SSLv3 to TLS 1.2, CBC, RC4, 3DES, NULL,
//! EXPORT, anonymous). Pure functions: bytes in, bytes or a verdict out; the records are
//! parsed with the `tls-parser` crate, and any truncation is a clean "need more" or error.

use tls_parser::{
    TlsMessage, TlsMessageHandshake, parse_dh_params, parse_tls_message_handshake, parse_tls_raw_record,
    parse_tls_record_with_header,
};

pub(crate) use super::version::{SSL3, TLS10, TLS11, TLS12, TLS13};

/// The last 8 bytes of a TLS 1.2 ServerHello random from a TLS 1.3 server (RFC 8446 §4.1.3).
const DOWNGRADE_TLS12: [u8; 8] = *b"DOWNGRD\x01";
/// The same, for a negotiation of TLS 1.1 or below.
pub(crate) const DOWNGRADE_TLS11: [u8; 8] = *b"DOWNGRD\x00";

/// What a probe offers.
#[derive(Debug, Clone)]
pub(crate) struct Hello {
    /// The version to negotiate: `client_version` up to TLS 1.2; for TLS 1.3 the hello
    /// says 1.2 and offers 1.3 in `supported_versions` (RFC 8446 §4.1.2).
    pub version: u16,
    /// Suite ids, in preference order (SCSVs included as wanted).
    pub suites: Vec<u16>,
    /// SNI host name (omitted for IP addresses).
    pub sni: Option<String>,
    /// `supported_groups`, in preference order.
    pub groups: Vec<u16>,
    /// TLS 1.3: the groups that get a key share. Only X25519 can be given one (any 32 bytes
    /// are a valid X25519 public key); an empty list asks the server to name its group in a
    /// HelloRetryRequest.
    pub shares: Vec<u16>,
}

/// X25519's group id.
pub(crate) const X25519: u16 = 0x001d;

/// The groups a legacy probe offers: every curve TLS 1.2 can use (a server whose only
/// curve is an odd or weak one must still be found), and with `ffdhe` RFC 7919's groups.
pub(crate) fn default_groups(ffdhe: bool) -> Vec<u16> {
    let mut groups = super::groups::tls12_curves();
    if ffdhe {
        groups.extend_from_slice(&[0x0100, 0x0101, 0x0102, 0x0103, 0x0104]);
    }
    groups
}

fn u16be(v: usize) -> [u8; 2] {
    u16::try_from(v).unwrap_or(u16::MAX).to_be_bytes()
}

fn ext(out: &mut Vec<u8>, kind: u16, body: &[u8]) {
    out.extend_from_slice(&kind.to_be_bytes());
    out.extend_from_slice(&u16be(body.len()));
    out.extend_from_slice(body);
}

fn list16(items: &[u16]) -> Vec<u8> {
    let mut b = u16be(items.len() * 2).to_vec();
    for i in items {
        b.extend_from_slice(&i.to_be_bytes());
    }
    b
}

impl Hello {
    /// The complete record (handshake header included).
    pub(crate) fn to_record(&self, random: [u8; 32]) -> Vec<u8> {
        let tls13 = self.version >= TLS13;
        let mut body = Vec::with_capacity(512);
        body.extend_from_slice(&self.version.min(TLS12).to_be_bytes());
        body.extend_from_slice(&random);
        if tls13 {
            // A legacy session id, as TLS 1.3 clients send for middlebox compatibility.
            body.push(32);
            body.extend_from_slice(&rand::random::<[u8; 32]>());
        } else {
            body.push(0);
        }
        body.extend_from_slice(&list16(&self.suites));
        body.extend_from_slice(&[1, 0]); // compression: null only
        if self.version > SSL3 {
            let exts = self.extensions(tls13);
            body.extend_from_slice(&u16be(exts.len()));
            body.extend_from_slice(&exts);
        }
        let mut hs = vec![0x01, 0];
        hs.extend_from_slice(&u16be(body.len()));
        hs.extend_from_slice(&body);
        // Record version 1.0 (or 3.0 for SSLv3), as most clients send, for middlebox compatibility.
        let mut rec = vec![0x16];
        rec.extend_from_slice(&self.version.min(TLS10).to_be_bytes());
        rec.extend_from_slice(&u16be(hs.len()));
        rec.extend_from_slice(&hs);
        rec
    }
}

impl Hello {
    fn extensions(&self, tls13: bool) -> Vec<u8> {
        let mut exts = Vec::new();
        if let Some(name) = &self.sni {
            let mut sni = u16be(name.len() + 3).to_vec();
            sni.push(0);
            sni.extend_from_slice(&u16be(name.len()));
            sni.extend_from_slice(name.as_bytes());
            ext(&mut exts, 0x0000, &sni);
        }
        ext(&mut exts, 0x000a, &list16(&self.groups));
        ext(&mut exts, 0x000b, &[1, 0]); // ec_point_formats: uncompressed
        if self.version >= TLS12 {
            // ECDSA, RSA-PSS, EdDSA, RSA PKCS#1 and SHA-1 variants: every server must find one.
            let sigs = [
                0x0403, 0x0503, 0x0603, 0x0807, 0x0808, 0x0804, 0x0805, 0x0806, 0x0809, 0x080a, 0x080b, 0x0401, 0x0501,
                0x0601, 0x0201, 0x0203,
            ];
            ext(&mut exts, 0x000d, &list16(&sigs));
        }
        if tls13 {
            ext(&mut exts, 0x002b, &[2, 0x03, 0x04]); // supported_versions: TLS 1.3 only
            let mut shares = Vec::new();
            for g in self.shares.iter().filter(|g| **g == X25519) {
                shares.extend_from_slice(&g.to_be_bytes());
                shares.extend_from_slice(&u16be(32));
                shares.extend_from_slice(&rand::random::<[u8; 32]>());
            }
            let mut ks = u16be(shares.len()).to_vec();
            ks.extend_from_slice(&shares);
            ext(&mut exts, 0x0033, &ks);
        } else {
            ext(&mut exts, 0xff01, &[0]); // renegotiation_info, empty (RFC 5746)
            ext(&mut exts, 0x0017, &[]); // extended_master_secret
        }
        exts
    }
}

/// The server's answer to a hello, as far as a probe needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Answer {
    /// A ServerHello (and, when asked for, the rest of the flight).
    Hello(ServerHello),
    /// A fatal alert with this description code.
    Alert(u8),
}

/// The parts of a ServerHello flight the scanner uses.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct ServerHello {
    /// Negotiated version (from `supported_versions` when present).
    pub version: u16,
    /// Chosen suite id.
    pub suite: u16,
    /// The server random.
    pub random: Vec<u8>,
    /// The renegotiation_info extension was present (RFC 5746).
    pub secure_renegotiation: bool,
    /// Certificates of the Certificate message (DER), when the flight was read that far.
    pub certificates: Vec<Vec<u8>>,
    /// Size in bits of the DH prime of a DHE ServerKeyExchange.
    pub dh_bits: Option<usize>,
    /// The flight ended (ServerHelloDone seen).
    pub done: bool,
    /// The group of the key_share extension (TLS 1.3), or of the ECDHE ServerKeyExchange.
    pub group: Option<u16>,
    /// A HelloRetryRequest: the server wants a key share for `group`.
    pub retry: bool,
}

impl ServerHello {
    /// Whether the random carries a TLS 1.3 server's downgrade sentinel.
    pub(crate) fn downgrade_sentinel(&self) -> bool {
        self.random.len() == 32 && (self.random[24..] == DOWNGRADE_TLS12 || self.random[24..] == DOWNGRADE_TLS11)
    }
}

/// Why the bytes are not (yet) an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ParseError {
    /// More bytes are needed.
    Incomplete,
    /// Not a TLS answer (e.g. HTTP, or garbage).
    NotTls(String),
}

fn dh_bits(p: &[u8]) -> usize {
    let p = match p.iter().position(|b| *b != 0) {
        Some(i) => &p[i..],
        None => return 0,
    };
    p.len() * 8 - p[0].leading_zeros() as usize
}

/// What a non-TLS answer looks like, for an error message: its first line when it is text
/// (`HTTP/1.1 400 Bad Request`, an SSH banner), else its first bytes in hex.
fn describe_non_tls(buf: &[u8]) -> String {
    let head = &buf[..buf.len().min(64)];
    let line = head.split(|b| *b == b'\r' || *b == b'\n').next().unwrap_or_default();
    if !line.is_empty() && line.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
        format!("no TLS: the server answered `{}`", String::from_utf8_lossy(line))
    } else {
        let hex: Vec<String> = head.iter().take(16).map(|b| format!("{b:02x}")).collect();
        format!(
            "no TLS: the server answered {} bytes that are not a TLS record ({})",
            buf.len(),
            hex.join(" ")
        )
    }
}

/// Parses the server's first flight from `buf`. With `full`, keeps reading after the
/// ServerHello until ServerHelloDone (for the certificate and DH parameters); otherwise the
/// ServerHello is enough. A TLS 1.3 ServerHello ends the readable part either way.
pub(crate) fn parse_answer(buf: &[u8], full: bool) -> Result<Answer, ParseError> {
    let mut rest = buf;
    let mut handshake = Vec::new();
    let mut hello: Option<ServerHello> = None;
    loop {
        if rest.is_empty() {
            return match hello {
                Some(h) if !full || h.done || h.version >= TLS13 => Ok(Answer::Hello(h)),
                _ => Err(ParseError::Incomplete),
            };
        }
        let (after, rec) = match parse_tls_raw_record(rest) {
            Ok(x) => x,
            Err(tls_parser::nom::Err::Incomplete(_)) => {
                return match hello {
                    Some(h) if !full || h.version >= TLS13 => Ok(Answer::Hello(h)),
                    _ => Err(ParseError::Incomplete),
                };
            }
            Err(_) if handshake.is_empty() && hello.is_none() => return Err(ParseError::NotTls(describe_non_tls(buf))),
            Err(_) => return Err(ParseError::NotTls("a malformed TLS record after the first".into())),
        };
        rest = after;
        match rec.hdr.record_type.0 {
            0x15 => {
                let msgs = parse_tls_record_with_header(rec.data, &rec.hdr)
                    .map_err(|_| ParseError::NotTls("a malformed TLS alert".into()))?
                    .1;
                if let Some(TlsMessage::Alert(a)) = msgs.first()
                    && (hello.is_none() || a.severity.0 == 2)
                {
                    return Ok(Answer::Alert(a.code.0));
                }
            }
            0x16 => {
                handshake.extend_from_slice(rec.data);
                hello = parse_handshake(&handshake, hello)?;
                if let Some(h) = &hello
                    && (!full || h.done || h.version >= TLS13)
                {
                    return Ok(Answer::Hello(h.clone()));
                }
            }
            0x14 | 0x17 if hello.is_some() => {
                // ChangeCipherSpec / encrypted data after a TLS 1.3 ServerHello.
                return Ok(Answer::Hello(hello.expect("checked")));
            }
            _ if hello.is_none() && handshake.is_empty() => return Err(ParseError::NotTls(describe_non_tls(buf))),
            t => return Err(ParseError::NotTls(format!("unexpected TLS record type {t}"))),
        }
    }
}

/// The random of a HelloRetryRequest: SHA-256 of "HelloRetryRequest" (RFC 8446 §4.1.3).
const HRR_RANDOM: [u8; 32] = [
    0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8, 0x91, 0xc2, 0xa2, 0x11,
    0x16, 0x7a, 0xbb, 0x8c, 0x5e, 0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c,
];

/// The extensions of a ServerHello body, read here rather than by tls-parser, which drops
/// them from SSLv3 hellos (a server may well send renegotiation_info there). Malformed or
/// absent: none.
fn server_hello_extensions(body: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    // version (2), random (32), session id (1 + n), suite (2), compression (1).
    let Some(&sid_len) = body.get(34) else { return out };
    let Some(mut rest) = body.get(35 + usize::from(sid_len) + 3..) else {
        return out;
    };
    let Some(len) = rest.get(..2).map(|b| usize::from(u16::from_be_bytes([b[0], b[1]]))) else {
        return out;
    };
    rest = rest.get(2..2 + len).unwrap_or_default();
    while rest.len() >= 4 {
        let kind = u16::from_be_bytes([rest[0], rest[1]]);
        let n = usize::from(u16::from_be_bytes([rest[2], rest[3]]));
        let Some(data) = rest.get(4..4 + n) else { break };
        out.push((kind, data));
        rest = &rest[4 + n..];
    }
    out
}

fn apply_extensions(h: &mut ServerHello, exts: &[(u16, &[u8])]) {
    for (kind, data) in exts {
        match (*kind, *data) {
            (0xff01, _) => h.secure_renegotiation = true,
            (0x002b, [a, b]) => h.version = u16::from_be_bytes([*a, *b]),
            // key_share: the group (and, but for a HelloRetryRequest, the server's share).
            (0x0033, [a, b, ..]) => h.group = Some(u16::from_be_bytes([*a, *b])),
            _ => {}
        }
    }
}

fn parse_handshake(mut data: &[u8], prev: Option<ServerHello>) -> Result<Option<ServerHello>, ParseError> {
    let mut hello: Option<ServerHello> = None;
    let mut suite_dhe = false;
    let mut suite_ecdhe = false;
    while !data.is_empty() {
        let whole = data;
        let (after, msg) = match parse_tls_message_handshake(data) {
            Ok(x) => x,
            Err(tls_parser::nom::Err::Incomplete(_)) => break,
            Err(_) => {
                // A message split across records parses as an error until it is complete.
                if data.len() >= 4 {
                    let len = usize::from(data[1]) << 16 | usize::from(data[2]) << 8 | usize::from(data[3]);
                    if data.len() < 4 + len {
                        break;
                    }
                }
                return Err(ParseError::NotTls("a malformed TLS handshake message".into()));
            }
        };
        data = after;
        let TlsMessage::Handshake(hs) = msg else { continue };
        match hs {
            TlsMessageHandshake::ServerHello(sh) => {
                let mut h = ServerHello {
                    version: sh.version.0,
                    suite: sh.cipher.0,
                    random: sh.random.to_vec(),
                    retry: sh.random == HRR_RANDOM,
                    ..ServerHello::default()
                };
                let body = &whole[4..whole.len() - after.len()];
                apply_extensions(&mut h, &server_hello_extensions(body));
                let suite = super::suites::by_id(h.suite);
                suite_dhe = suite.is_some_and(|s| s.ffdh);
                suite_ecdhe = suite
                    .is_some_and(|s| matches!(s.kx, super::suites::Kx::Ecdhe | super::suites::Kx::Anon) && !s.ffdh);
                hello = Some(h);
            }
            TlsMessageHandshake::Certificate(c) => {
                if let Some(h) = hello.as_mut() {
                    h.certificates = c.cert_chain.iter().map(|r| r.data.to_vec()).collect();
                }
            }
            TlsMessageHandshake::ServerKeyExchange(kx) if suite_dhe => {
                if let (Some(h), Ok((_, p))) = (hello.as_mut(), parse_dh_params(kx.parameters)) {
                    h.dh_bits = Some(dh_bits(p.dh_p));
                }
            }
            // ECParameters: curve_type named_curve (3), then the group (RFC 8422 §5.4).
            TlsMessageHandshake::ServerKeyExchange(kx) if suite_ecdhe => {
                if let (Some(h), [3, a, b, ..]) = (hello.as_mut(), kx.parameters) {
                    h.group = Some(u16::from_be_bytes([*a, *b]));
                }
            }
            TlsMessageHandshake::ServerDone(_) => {
                if let Some(h) = hello.as_mut() {
                    h.done = true;
                }
            }
            _ => {}
        }
    }
    Ok(hello.or(prev))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A TLS 1.2 ServerHello (suite 0xc02f, renegotiation_info, EMS), then ServerHelloDone,
    /// as a server would send them, in one record.
    fn server_hello_record(version: u16, suite: u16, random_tail: [u8; 8]) -> Vec<u8> {
        let mut body = version.to_be_bytes().to_vec();
        let mut random = [7u8; 32];
        random[24..].copy_from_slice(&random_tail);
        body.extend_from_slice(&random);
        body.push(0);
        body.extend_from_slice(&suite.to_be_bytes());
        body.push(0);
        let exts = [0xff, 0x01, 0x00, 0x01, 0x00, 0x00, 0x17, 0x00, 0x00];
        body.extend_from_slice(&u16be(exts.len()));
        body.extend_from_slice(&exts);
        let mut hs = vec![0x02, 0];
        hs.extend_from_slice(&u16be(body.len()));
        hs.extend_from_slice(&body);
        hs.extend_from_slice(&[0x0e, 0, 0, 0]);
        let mut rec = vec![0x16, 0x03, 0x03];
        rec.extend_from_slice(&u16be(hs.len()));
        rec.extend_from_slice(&hs);
        rec
    }

    #[test]
    fn parses_a_server_hello_flight() {
        let rec = server_hello_record(TLS12, 0xc02f, DOWNGRADE_TLS12);
        let Answer::Hello(h) = parse_answer(&rec, true).unwrap() else {
            panic!()
        };
        assert_eq!(
            (h.version, h.suite, h.secure_renegotiation, h.done),
            (TLS12, 0xc02f, true, true)
        );
        assert!(h.downgrade_sentinel());
    }

    #[test]
    fn reads_the_extensions_of_an_sslv3_server_hello() {
        let rec = server_hello_record(SSL3, 0x000a, [0; 8]);
        let Answer::Hello(h) = parse_answer(&rec, true).unwrap() else {
            panic!()
        };
        assert_eq!((h.version, h.secure_renegotiation), (SSL3, true));
    }

    /// A ServerHello choosing `suite`, a ServerKeyExchange carrying `params`, ServerHelloDone.
    fn flight_with_key_exchange(suite: u16, params: &[u8]) -> Vec<u8> {
        let mut rec = server_hello_record(TLS12, suite, [0; 8]);
        // Drop the ServerHelloDone of the helper, add the ServerKeyExchange and a new Done.
        rec.truncate(rec.len() - 4);
        let mut ske = vec![0x0c, 0];
        ske.extend_from_slice(&u16be(params.len()));
        ske.extend_from_slice(params);
        rec.extend_from_slice(&ske);
        rec.extend_from_slice(&[0x0e, 0, 0, 0]);
        let len = rec.len() - 5;
        rec[3..5].copy_from_slice(&u16be(len));
        rec
    }

    #[test]
    fn measures_the_dh_prime_of_an_anonymous_dh_suite() {
        // TLS_DH_anon_WITH_AES_128_CBC_SHA: dh_p (1024 bits), dh_g, dh_Ys; no signature.
        let mut params = u16be(128).to_vec();
        params.extend_from_slice(&[0xff; 128]);
        params.extend_from_slice(&[0, 1, 2, 0, 1, 5]);
        let Answer::Hello(h) = parse_answer(&flight_with_key_exchange(0x0034, &params), true).unwrap() else {
            panic!()
        };
        assert_eq!(h.dh_bits, Some(1024));
    }

    #[test]
    fn reads_the_curve_of_an_ecdhe_key_exchange() {
        // named_curve (3), secp384r1 (24), a one-byte point, then a signature.
        let params = [3, 0, 24, 1, 4, 4, 3, 0, 1, 0];
        let Answer::Hello(h) = parse_answer(&flight_with_key_exchange(0xc02f, &params), true).unwrap() else {
            panic!()
        };
        assert_eq!(h.group, Some(24));
    }

    #[test]
    fn parses_an_alert() {
        // handshake_failure (40) and protocol_version (70), fatal.
        assert_eq!(
            parse_answer(&[0x15, 0x03, 0x01, 0x00, 0x02, 0x02, 0x28], false),
            Ok(Answer::Alert(40))
        );
        assert_eq!(
            parse_answer(&[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x46], true),
            Ok(Answer::Alert(70))
        );
    }

    #[test]
    fn every_truncation_is_incomplete_never_a_panic() {
        let rec = server_hello_record(TLS10, 0x002f, [0; 8]);
        for n in 0..rec.len() {
            match parse_answer(&rec[..n], true) {
                Err(ParseError::Incomplete) => {}
                // A ServerHello already complete may be answered without the full flight.
                Ok(Answer::Hello(_)) if n > 5 => {}
                other => panic!("prefix {n}: {other:?}"),
            }
        }
        assert!(matches!(parse_answer(&rec, true), Ok(Answer::Hello(_))));
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut x: u32 = 12345;
        for len in 0..400 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    (x & 0xff) as u8
                })
                .collect();
            let _ = parse_answer(&bytes, true);
            let mut framed = vec![0x16, 0x03, 0x03];
            framed.extend_from_slice(&u16be(bytes.len()));
            framed.extend_from_slice(&bytes);
            let _ = parse_answer(&framed, true);
        }
    }

    #[test]
    fn http_is_not_tls_and_says_what_it_is() {
        assert_eq!(
            parse_answer(b"HTTP/1.1 400 Bad Request\r\n\r\n", false),
            Err(ParseError::NotTls(
                "no TLS: the server answered `HTTP/1.1 400 Bad Request`".into()
            ))
        );
        let Err(ParseError::NotTls(binary)) = parse_answer(&[0x00, 0x01, 0xfe, 0x99, 0x10, 0x20, 0x30], false) else {
            panic!()
        };
        assert!(binary.contains("00 01 fe 99"), "{binary}");
    }

    #[test]
    fn client_hello_is_well_formed() {
        let h = Hello {
            version: TLS10,
            suites: vec![0x002f, 0x00ff],
            sni: Some("localhost".into()),
            groups: default_groups(true),
            shares: vec![],
        };
        let rec = h.to_record([1; 32]);
        assert_eq!(&rec[..3], &[0x16, 0x03, 0x01]);
        assert_eq!(usize::from(u16::from_be_bytes([rec[3], rec[4]])), rec.len() - 5);
        let (_, msg) = parse_tls_message_handshake(&rec[5..]).unwrap();
        let TlsMessage::Handshake(TlsMessageHandshake::ClientHello(ch)) = msg else {
            panic!()
        };
        assert_eq!(ch.version.0, TLS10);
        assert_eq!(ch.ciphers.iter().map(|c| c.0).collect::<Vec<_>>(), vec![0x002f, 0x00ff]);
    }

    #[test]
    fn tls13_client_hello_offers_1_3_with_an_x25519_share() {
        let h = Hello {
            version: TLS13,
            suites: vec![0x1301, 0x1305],
            sni: None,
            groups: vec![X25519, 0x0017],
            shares: vec![X25519],
        };
        let rec = h.to_record([1; 32]);
        let (_, msg) = parse_tls_message_handshake(&rec[5..]).unwrap();
        let TlsMessage::Handshake(TlsMessageHandshake::ClientHello(ch)) = msg else {
            panic!()
        };
        assert_eq!(ch.version.0, TLS12);
        assert_eq!(ch.session_id.map(<[u8]>::len), Some(32));
        let (_, exts) = tls_parser::parse_tls_client_hello_extensions(ch.ext.unwrap()).unwrap();
        assert!(exts.iter().any(|e| matches!(e, tls_parser::TlsExtension::SupportedVersions(v) if v.iter().map(|x| x.0).collect::<Vec<_>>() == [TLS13])));
        let share = exts.iter().find_map(|e| match e {
            tls_parser::TlsExtension::KeyShare(k) => Some(k.to_vec()),
            _ => None,
        });
        // client_shares length 36: one X25519 entry (group 2, length 2, key 32).
        assert_eq!(&share.unwrap()[..6], &[0, 36, 0, 0x1d, 0, 32]);
    }

    #[test]
    fn reads_the_group_of_a_hello_retry_request() {
        // ServerHello with the HRR random, TLS_AES_128_CCM_8_SHA256, supported_versions 1.3,
        // key_share naming secp384r1.
        let mut body = TLS12.to_be_bytes().to_vec();
        body.extend_from_slice(&HRR_RANDOM);
        body.push(0);
        body.extend_from_slice(&0x1305u16.to_be_bytes());
        body.push(0);
        let exts = [0x00, 0x2b, 0x00, 0x02, 0x03, 0x04, 0x00, 0x33, 0x00, 0x02, 0x00, 0x18];
        body.extend_from_slice(&u16be(exts.len()));
        body.extend_from_slice(&exts);
        let mut hs = vec![0x02, 0];
        hs.extend_from_slice(&u16be(body.len()));
        hs.extend_from_slice(&body);
        let mut rec = vec![0x16, 0x03, 0x03];
        rec.extend_from_slice(&u16be(hs.len()));
        rec.extend_from_slice(&hs);
        let Answer::Hello(h) = parse_answer(&rec, false).unwrap() else {
            panic!()
        };
        assert_eq!(
            (h.version, h.suite, h.retry, h.group),
            (TLS13, 0x1305, true, Some(0x18))
        );
    }

    #[test]
    fn dh_prime_sizes() {
        assert_eq!(dh_bits(&[0x00, 0x80, 0, 0]), 24);
        assert_eq!(dh_bits(&[0xff; 128]), 1024);
        assert_eq!(dh_bits(&[0, 0]), 0);
    }
}
