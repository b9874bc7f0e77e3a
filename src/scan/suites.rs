//! The cipher suites the scanner offers, by IANA id and name, with what makes each weak:
//! every suite of IANA's registry (tls-parser's table), classified by key exchange and
//! encryption. Probes offer them all with hand-built hellos (rustls offers but a few).

use serde::Serialize;

/// Key exchange of a suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Kx {
    /// Ephemeral elliptic-curve Diffie-Hellman (forward secret).
    #[serde(rename = "ECDHE")]
    Ecdhe,
    /// Ephemeral finite-field Diffie-Hellman (forward secret; group size matters).
    #[serde(rename = "DHE")]
    Dhe,
    /// RSA key transport (no forward secrecy).
    #[serde(rename = "RSA")]
    Rsa,
    /// Static (EC)DH from the certificate (no forward secrecy).
    #[serde(rename = "static-DH")]
    StaticDh,
    /// Anonymous (EC)DH: the server is not authenticated.
    #[serde(rename = "anon")]
    Anon,
    /// A pre-shared key only (no forward secrecy, no certificate).
    #[serde(rename = "PSK")]
    Psk,
    /// SRP (no forward secrecy).
    #[serde(rename = "SRP")]
    Srp,
    /// Kerberos (no forward secrecy).
    #[serde(rename = "KRB5")]
    Krb5,
    /// A password (ECCPWD, RFC 8492).
    #[serde(rename = "PWD")]
    Pwd,
    /// TLS 1.3: negotiated separately (always ephemeral).
    #[serde(rename = "TLS1.3")]
    Tls13,
}

/// Bulk encryption class of a suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Enc {
    /// AES-GCM, ChaCha20-Poly1305, AES-CCM.
    #[serde(rename = "AEAD")]
    Aead,
    /// A block cipher in CBC mode with a 128-bit block (AES, Camellia, ARIA, SEED).
    #[serde(rename = "CBC")]
    Cbc,
    /// 3DES, DES, IDEA: 64-bit blocks (SWEET32).
    #[serde(rename = "64-bit-block")]
    Block64,
    /// RC4.
    #[serde(rename = "RC4")]
    Rc4,
    /// No encryption.
    #[serde(rename = "NULL")]
    Null,
}

/// One suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Suite {
    /// IANA id.
    #[serde(serialize_with = "hex_id")]
    pub id: u16,
    /// IANA name.
    pub name: &'static str,
    /// Key exchange.
    pub kx: Kx,
    /// Encryption class.
    pub enc: Enc,
    /// EXPORT-grade (40/56-bit).
    pub export: bool,
    /// Ephemeral finite-field DH parameters in the ServerKeyExchange (DHE, DH_anon): their
    /// prime's size matters (Logjam).
    #[serde(skip)]
    pub ffdh: bool,
    /// Negotiable in TLS 1.2 only (AEAD, SHA-2 MAC or PRF).
    #[serde(skip)]
    pub tls12_only: bool,
}

impl std::fmt::Display for Kx {
    /// The same words as the JSON.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Ecdhe => "ECDHE",
            Self::Dhe => "DHE",
            Self::Rsa => "RSA",
            Self::StaticDh => "static-DH",
            Self::Anon => "anon",
            Self::Psk => "PSK",
            Self::Srp => "SRP",
            Self::Krb5 => "KRB5",
            Self::Pwd => "PWD",
            Self::Tls13 => "TLS1.3",
        })
    }
}

impl std::fmt::Display for Enc {
    /// The same words as the JSON.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Aead => "AEAD",
            Self::Cbc => "CBC",
            Self::Block64 => "64-bit-block",
            Self::Rc4 => "RC4",
            Self::Null => "NULL",
        })
    }
}

fn hex_id<S: serde::Serializer>(id: &u16, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("0x{id:04x}"))
}

/// `TLS_FALLBACK_SCSV` (RFC 7507).
pub(crate) const FALLBACK_SCSV: u16 = 0x5600;
/// `TLS_EMPTY_RENEGOTIATION_INFO_SCSV` (RFC 5746).
pub(crate) const RENEGOTIATION_SCSV: u16 = 0x00ff;

/// Every suite IANA registers, from tls-parser's table (IANA's registry, generated into the
/// crate), in the order the scanner offers them: forward-secret AEAD first, the weakest last, so
/// that a server that honours the client's order still shows its best choice first. The
/// signalling values (the SCSVs) are not suites and are left out.
static ALL: std::sync::LazyLock<Vec<Suite>> = std::sync::LazyLock::new(|| {
    let mut all: Vec<Suite> = tls_parser::CIPHERS
        .values()
        .filter(|c| !c.name.ends_with("_SCSV"))
        .map(classify)
        .collect();
    all.sort_by_key(|s| (kx_rank(s.kx), enc_rank(s.enc), s.export, s.id));
    all
});

fn classify(c: &'static tls_parser::TlsCipherSuite) -> Suite {
    use tls_parser::{
        TlsCipherAu as Au, TlsCipherEnc as E, TlsCipherEncMode as M, TlsCipherKx as K, TlsCipherMac as Mac,
        TlsPRF as Prf,
    };
    let anonymous = c.au == Au::Null;
    let kx = match c.kx {
        K::Tls13 => Kx::Tls13,
        K::Ecdhe => Kx::Ecdhe,
        K::Dhe => Kx::Dhe,
        K::Rsa => Kx::Rsa,
        K::Dh | K::Ecdh if anonymous => Kx::Anon,
        K::Dh | K::Ecdh => Kx::StaticDh,
        K::Aecdh | K::Null => Kx::Anon,
        K::Psk => Kx::Psk,
        K::Srp => Kx::Srp,
        K::Krb5 => Kx::Krb5,
        K::Eccpwd => Kx::Pwd,
    };
    let enc = match (c.enc, c.enc_mode) {
        (E::Null, _) => Enc::Null,
        (E::Rc4, _) => Enc::Rc4,
        (E::Des | E::TripleDes | E::Idea | E::Rc2, _) => Enc::Block64,
        (E::Chacha20_Poly1305 | E::Aegis, _) | (_, M::Gcm | M::Ccm) => Enc::Aead,
        _ => Enc::Cbc,
    };
    let tls12_only = kx != Kx::Tls13
        && (enc == Enc::Aead
            || matches!(c.prf, Prf::Sha256 | Prf::Sha384)
            || matches!(c.mac, Mac::HmacSha256 | Mac::HmacSha384));
    Suite {
        id: *c.id,
        name: c.name,
        kx,
        enc,
        export: c.name.contains("EXPORT"),
        ffdh: c.kx == K::Dhe || (c.kx == K::Dh && anonymous),
        tls12_only,
    }
}

fn kx_rank(kx: Kx) -> u8 {
    match kx {
        Kx::Tls13 | Kx::Ecdhe => 0,
        Kx::Dhe => 1,
        Kx::Rsa => 2,
        Kx::StaticDh | Kx::Psk | Kx::Srp | Kx::Krb5 | Kx::Pwd => 3,
        Kx::Anon => 4,
    }
}

fn enc_rank(enc: Enc) -> u8 {
    match enc {
        Enc::Aead => 0,
        Enc::Cbc => 1,
        Enc::Block64 => 2,
        Enc::Rc4 => 3,
        Enc::Null => 4,
    }
}

/// The suites of TLS 1.3 (RFC 8446's five, RFC 8998's SM4, RFC 9150's integrity-only, …).
pub(crate) fn tls13() -> impl Iterator<Item = &'static Suite> {
    ALL.iter().filter(|s| s.kx == Kx::Tls13)
}

/// The suites of SSLv3 to TLS 1.2 that can be negotiated at `version`.
pub(crate) fn legacy(version: u16) -> impl Iterator<Item = &'static Suite> {
    ALL.iter()
        .filter(move |s| s.kx != Kx::Tls13 && (version >= super::version::TLS12 || !s.tls12_only))
}

/// The suite with this id.
pub(crate) fn by_id(id: u16) -> Option<Suite> {
    ALL.iter().find(|s| s.id == id).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_whole_registry_is_offered_and_classified_by_name() {
        let all: Vec<Suite> = ALL.iter().copied().collect();
        assert!(all.len() > 300, "{} suites", all.len());
        for (i, a) in all.iter().enumerate() {
            assert!(all[i + 1..].iter().all(|b| b.id != a.id), "duplicate {}", a.name);
            let n = a.name;
            if n.contains("_NULL_") || n.ends_with("_NULL") || n.starts_with("TLS_SHA") {
                assert_eq!(a.enc, Enc::Null, "{n}");
            } else if n.contains("RC4") {
                assert_eq!(a.enc, Enc::Rc4, "{n}");
            } else if n.contains("3DES") || n.contains("_DES") || n.contains("IDEA") || n.contains("RC2") {
                assert_eq!(a.enc, Enc::Block64, "{n}");
            } else if n.contains("CBC") {
                assert_eq!(a.enc, Enc::Cbc, "{n}");
            } else {
                assert_eq!(a.enc, Enc::Aead, "{n}");
            }
            assert_eq!(a.export, n.contains("EXPORT"), "{n}");
            if n.contains("_anon_") {
                assert_eq!(a.kx, Kx::Anon, "{n}");
            }
        }
        let names = |it: &mut dyn Iterator<Item = &'static Suite>| it.map(|s| s.name).collect::<Vec<_>>();
        let t13 = names(&mut tls13());
        for want in [
            "TLS_AES_128_GCM_SHA256",
            "TLS_AES_256_GCM_SHA384",
            "TLS_CHACHA20_POLY1305_SHA256",
            "TLS_AES_128_CCM_SHA256",
            "TLS_AES_128_CCM_8_SHA256",
        ] {
            assert!(t13.contains(&want), "{want}");
        }
        let l12 = names(&mut legacy(super::super::version::TLS12));
        assert!(l12.contains(&"TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8") && l12.contains(&"TLS_PSK_WITH_AES_128_CCM_8"));
        assert!(!l12.iter().any(|n| n.ends_with("_SCSV")));
        let l10 = names(&mut legacy(super::super::version::TLS10));
        assert!(l10.contains(&"TLS_RSA_WITH_AES_128_CBC_SHA") && !l10.contains(&"TLS_RSA_WITH_AES_128_GCM_SHA256"));
        assert!(by_id(0x0034).unwrap().ffdh && by_id(0x0033).unwrap().ffdh && !by_id(0xc018).unwrap().ffdh);
        assert_eq!(by_id(0xc02b).unwrap().name, "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256");
    }
}
