//! The cipher suites the scanner offers, by IANA id and name, with what makes each weak.
//! Legacy probes offer every suite below (rustls cannot); the names are IANA's.

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
}

fn hex_id<S: serde::Serializer>(id: &u16, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("0x{id:04x}"))
}

/// `TLS_FALLBACK_SCSV` (RFC 7507).
pub const FALLBACK_SCSV: u16 = 0x5600;
/// `TLS_EMPTY_RENEGOTIATION_INFO_SCSV` (RFC 5746).
pub const RENEGOTIATION_SCSV: u16 = 0x00ff;

const fn s(id: u16, name: &'static str, kx: Kx, enc: Enc, export: bool) -> Suite {
    Suite {
        id,
        name,
        kx,
        enc,
        export,
    }
}

use Enc::{Aead, Block64, Cbc, Null, Rc4};
use Kx::{Anon, Dhe, Ecdhe, Rsa, StaticDh, Tls13};

/// TLS 1.3 suites.
pub const TLS13: [Suite; 5] = [
    s(0x1301, "TLS_AES_128_GCM_SHA256", Tls13, Aead, false),
    s(0x1302, "TLS_AES_256_GCM_SHA384", Tls13, Aead, false),
    s(0x1303, "TLS_CHACHA20_POLY1305_SHA256", Tls13, Aead, false),
    s(0x1304, "TLS_AES_128_CCM_SHA256", Tls13, Aead, false),
    s(0x1305, "TLS_AES_128_CCM_8_SHA256", Tls13, Aead, false),
];

/// Suites of SSLv3 to TLS 1.2.
pub const LEGACY: &[Suite] = &[
    s(0xc02b, "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", Ecdhe, Aead, false),
    s(0xc02c, "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", Ecdhe, Aead, false),
    s(0xc02f, "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", Ecdhe, Aead, false),
    s(0xc030, "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", Ecdhe, Aead, false),
    s(
        0xcca9,
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        Ecdhe,
        Aead,
        false,
    ),
    s(
        0xcca8,
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        Ecdhe,
        Aead,
        false,
    ),
    s(0xc0ac, "TLS_ECDHE_ECDSA_WITH_AES_128_CCM", Ecdhe, Aead, false),
    s(0xc0ad, "TLS_ECDHE_ECDSA_WITH_AES_256_CCM", Ecdhe, Aead, false),
    s(0x009e, "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256", Dhe, Aead, false),
    s(0x009f, "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384", Dhe, Aead, false),
    s(0xccaa, "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256", Dhe, Aead, false),
    s(0xc09e, "TLS_DHE_RSA_WITH_AES_128_CCM", Dhe, Aead, false),
    s(0xc09f, "TLS_DHE_RSA_WITH_AES_256_CCM", Dhe, Aead, false),
    s(0x009c, "TLS_RSA_WITH_AES_128_GCM_SHA256", Rsa, Aead, false),
    s(0x009d, "TLS_RSA_WITH_AES_256_GCM_SHA384", Rsa, Aead, false),
    s(0xc09c, "TLS_RSA_WITH_AES_128_CCM", Rsa, Aead, false),
    s(0xc09d, "TLS_RSA_WITH_AES_256_CCM", Rsa, Aead, false),
    s(0xc023, "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256", Ecdhe, Cbc, false),
    s(0xc024, "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384", Ecdhe, Cbc, false),
    s(0xc027, "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256", Ecdhe, Cbc, false),
    s(0xc028, "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384", Ecdhe, Cbc, false),
    s(0xc009, "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", Ecdhe, Cbc, false),
    s(0xc00a, "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA", Ecdhe, Cbc, false),
    s(0xc013, "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", Ecdhe, Cbc, false),
    s(0xc014, "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA", Ecdhe, Cbc, false),
    s(0x0067, "TLS_DHE_RSA_WITH_AES_128_CBC_SHA256", Dhe, Cbc, false),
    s(0x006b, "TLS_DHE_RSA_WITH_AES_256_CBC_SHA256", Dhe, Cbc, false),
    s(0x0033, "TLS_DHE_RSA_WITH_AES_128_CBC_SHA", Dhe, Cbc, false),
    s(0x0039, "TLS_DHE_RSA_WITH_AES_256_CBC_SHA", Dhe, Cbc, false),
    s(0x0032, "TLS_DHE_DSS_WITH_AES_128_CBC_SHA", Dhe, Cbc, false),
    s(0x0038, "TLS_DHE_DSS_WITH_AES_256_CBC_SHA", Dhe, Cbc, false),
    s(0x0045, "TLS_DHE_RSA_WITH_CAMELLIA_128_CBC_SHA", Dhe, Cbc, false),
    s(0x0088, "TLS_DHE_RSA_WITH_CAMELLIA_256_CBC_SHA", Dhe, Cbc, false),
    s(0x009a, "TLS_DHE_RSA_WITH_SEED_CBC_SHA", Dhe, Cbc, false),
    s(0x003c, "TLS_RSA_WITH_AES_128_CBC_SHA256", Rsa, Cbc, false),
    s(0x003d, "TLS_RSA_WITH_AES_256_CBC_SHA256", Rsa, Cbc, false),
    s(0x002f, "TLS_RSA_WITH_AES_128_CBC_SHA", Rsa, Cbc, false),
    s(0x0035, "TLS_RSA_WITH_AES_256_CBC_SHA", Rsa, Cbc, false),
    s(0x0041, "TLS_RSA_WITH_CAMELLIA_128_CBC_SHA", Rsa, Cbc, false),
    s(0x0084, "TLS_RSA_WITH_CAMELLIA_256_CBC_SHA", Rsa, Cbc, false),
    s(0x0096, "TLS_RSA_WITH_SEED_CBC_SHA", Rsa, Cbc, false),
    s(0xc004, "TLS_ECDH_ECDSA_WITH_AES_128_CBC_SHA", StaticDh, Cbc, false),
    s(0xc005, "TLS_ECDH_ECDSA_WITH_AES_256_CBC_SHA", StaticDh, Cbc, false),
    s(0xc00e, "TLS_ECDH_RSA_WITH_AES_128_CBC_SHA", StaticDh, Cbc, false),
    s(0xc00f, "TLS_ECDH_RSA_WITH_AES_256_CBC_SHA", StaticDh, Cbc, false),
    s(0xc008, "TLS_ECDHE_ECDSA_WITH_3DES_EDE_CBC_SHA", Ecdhe, Block64, false),
    s(0xc012, "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA", Ecdhe, Block64, false),
    s(0x0016, "TLS_DHE_RSA_WITH_3DES_EDE_CBC_SHA", Dhe, Block64, false),
    s(0x0013, "TLS_DHE_DSS_WITH_3DES_EDE_CBC_SHA", Dhe, Block64, false),
    s(0x000a, "TLS_RSA_WITH_3DES_EDE_CBC_SHA", Rsa, Block64, false),
    s(0x0007, "TLS_RSA_WITH_IDEA_CBC_SHA", Rsa, Block64, false),
    s(0x0015, "TLS_DHE_RSA_WITH_DES_CBC_SHA", Dhe, Block64, false),
    s(0x0009, "TLS_RSA_WITH_DES_CBC_SHA", Rsa, Block64, false),
    s(0xc011, "TLS_ECDHE_RSA_WITH_RC4_128_SHA", Ecdhe, Rc4, false),
    s(0xc007, "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA", Ecdhe, Rc4, false),
    s(0x0005, "TLS_RSA_WITH_RC4_128_SHA", Rsa, Rc4, false),
    s(0x0004, "TLS_RSA_WITH_RC4_128_MD5", Rsa, Rc4, false),
    s(0x0018, "TLS_DH_anon_WITH_RC4_128_MD5", Anon, Rc4, false),
    s(0x0034, "TLS_DH_anon_WITH_AES_128_CBC_SHA", Anon, Cbc, false),
    s(0x003a, "TLS_DH_anon_WITH_AES_256_CBC_SHA", Anon, Cbc, false),
    s(0x00a6, "TLS_DH_anon_WITH_AES_128_GCM_SHA256", Anon, Aead, false),
    s(0x00a7, "TLS_DH_anon_WITH_AES_256_GCM_SHA384", Anon, Aead, false),
    s(0x006c, "TLS_DH_anon_WITH_AES_128_CBC_SHA256", Anon, Cbc, false),
    s(0x006d, "TLS_DH_anon_WITH_AES_256_CBC_SHA256", Anon, Cbc, false),
    s(0x001b, "TLS_DH_anon_WITH_3DES_EDE_CBC_SHA", Anon, Block64, false),
    s(0xc018, "TLS_ECDH_anon_WITH_AES_128_CBC_SHA", Anon, Cbc, false),
    s(0xc019, "TLS_ECDH_anon_WITH_AES_256_CBC_SHA", Anon, Cbc, false),
    s(0xc017, "TLS_ECDH_anon_WITH_3DES_EDE_CBC_SHA", Anon, Block64, false),
    s(0xc016, "TLS_ECDH_anon_WITH_RC4_128_SHA", Anon, Rc4, false),
    s(0xc015, "TLS_ECDH_anon_WITH_NULL_SHA", Anon, Null, false),
    s(0xc006, "TLS_ECDHE_ECDSA_WITH_NULL_SHA", Ecdhe, Null, false),
    s(0xc010, "TLS_ECDHE_RSA_WITH_NULL_SHA", Ecdhe, Null, false),
    s(0x003b, "TLS_RSA_WITH_NULL_SHA256", Rsa, Null, false),
    s(0x0002, "TLS_RSA_WITH_NULL_SHA", Rsa, Null, false),
    s(0x0001, "TLS_RSA_WITH_NULL_MD5", Rsa, Null, false),
    s(0x0003, "TLS_RSA_EXPORT_WITH_RC4_40_MD5", Rsa, Rc4, true),
    s(0x0006, "TLS_RSA_EXPORT_WITH_RC2_CBC_40_MD5", Rsa, Block64, true),
    s(0x0008, "TLS_RSA_EXPORT_WITH_DES40_CBC_SHA", Rsa, Block64, true),
    s(0x0014, "TLS_DHE_RSA_EXPORT_WITH_DES40_CBC_SHA", Dhe, Block64, true),
    s(0x0011, "TLS_DHE_DSS_EXPORT_WITH_DES40_CBC_SHA", Dhe, Block64, true),
    s(0x0017, "TLS_DH_anon_EXPORT_WITH_RC4_40_MD5", Anon, Rc4, true),
    s(0x0019, "TLS_DH_anon_EXPORT_WITH_DES40_CBC_SHA", Anon, Block64, true),
];

/// The suite with this id, from either table.
pub fn by_id(id: u16) -> Option<Suite> {
    TLS13.iter().chain(LEGACY.iter()).find(|s| s.id == id).copied()
}

/// Whether a suite can be negotiated below TLS 1.2 (no GCM/CCM/ChaCha, no SHA-2 MACs).
pub fn pre_tls12(s: &Suite) -> bool {
    s.enc != Enc::Aead && !s.name.ends_with("SHA256") && !s.name.ends_with("SHA384")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_names_are_consistent() {
        let all: Vec<Suite> = TLS13.iter().chain(LEGACY.iter()).copied().collect();
        for (i, a) in all.iter().enumerate() {
            assert!(all[i + 1..].iter().all(|b| b.id != a.id), "duplicate {}", a.name);
            let n = a.name;
            let expect_enc = if n.contains("NULL") {
                Enc::Null
            } else if n.contains("RC4") {
                Enc::Rc4
            } else if n.contains("3DES") || n.contains("_DES") || n.contains("IDEA") || n.contains("RC2") {
                Enc::Block64
            } else if n.contains("CBC") {
                Enc::Cbc
            } else {
                Enc::Aead
            };
            assert_eq!(a.enc, expect_enc, "{n}");
            assert_eq!(a.export, n.contains("EXPORT"), "{n}");
            if n.contains("anon") {
                assert_eq!(a.kx, Kx::Anon, "{n}");
            }
        }
        assert_eq!(by_id(0xc02b).unwrap().name, "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256");
        assert!(pre_tls12(&by_id(0x002f).unwrap()));
        assert!(!pre_tls12(&by_id(0xc02b).unwrap()));
    }
}
