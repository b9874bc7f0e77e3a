//! The key-exchange groups of IANA's TLS Supported Groups registry that the scanner offers,
//! with their strength: the field size of an elliptic curve, the prime size of a
//! finite-field group. Groups below 224-bit EC or 2048-bit FF are weak.

use serde::Serialize;

/// What kind of group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Kind {
    /// An elliptic curve.
    #[serde(rename = "EC")]
    Ec,
    /// A finite-field (Diffie-Hellman) group.
    #[serde(rename = "FF")]
    Ff,
    /// A post-quantum hybrid (ML-KEM with an elliptic curve) or pure ML-KEM.
    #[serde(rename = "PQ")]
    Pq,
}

impl std::fmt::Display for Kind {
    /// The same words as the JSON.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Ec => "EC",
            Self::Ff => "FF",
            Self::Pq => "PQ",
        })
    }
}

/// One group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Group {
    /// IANA id.
    pub id: u16,
    /// IANA name.
    pub name: &'static str,
    /// Kind.
    pub kind: Kind,
    /// EC field bits, FF prime bits (for a hybrid, its curve's).
    pub bits: u16,
}

const fn g(id: u16, name: &'static str, kind: Kind, bits: u16) -> Group {
    Group { id, name, kind, bits }
}

/// The registry's groups that TLS stacks implement (the GOST and SM2 curves aside).
const GROUPS: [Group; 41] = [
    g(0x0001, "sect163k1", Kind::Ec, 163),
    g(0x0002, "sect163r1", Kind::Ec, 163),
    g(0x0003, "sect163r2", Kind::Ec, 163),
    g(0x0004, "sect193r1", Kind::Ec, 193),
    g(0x0005, "sect193r2", Kind::Ec, 193),
    g(0x0006, "sect233k1", Kind::Ec, 233),
    g(0x0007, "sect233r1", Kind::Ec, 233),
    g(0x0008, "sect239k1", Kind::Ec, 239),
    g(0x0009, "sect283k1", Kind::Ec, 283),
    g(0x000a, "sect283r1", Kind::Ec, 283),
    g(0x000b, "sect409k1", Kind::Ec, 409),
    g(0x000c, "sect409r1", Kind::Ec, 409),
    g(0x000d, "sect571k1", Kind::Ec, 571),
    g(0x000e, "sect571r1", Kind::Ec, 571),
    g(0x000f, "secp160k1", Kind::Ec, 160),
    g(0x0010, "secp160r1", Kind::Ec, 160),
    g(0x0011, "secp160r2", Kind::Ec, 160),
    g(0x0012, "secp192k1", Kind::Ec, 192),
    g(0x0013, "secp192r1", Kind::Ec, 192),
    g(0x0014, "secp224k1", Kind::Ec, 224),
    g(0x0015, "secp224r1", Kind::Ec, 224),
    g(0x0016, "secp256k1", Kind::Ec, 256),
    g(0x0017, "secp256r1", Kind::Ec, 256),
    g(0x0018, "secp384r1", Kind::Ec, 384),
    g(0x0019, "secp521r1", Kind::Ec, 521),
    g(0x001a, "brainpoolP256r1", Kind::Ec, 256),
    g(0x001b, "brainpoolP384r1", Kind::Ec, 384),
    g(0x001c, "brainpoolP512r1", Kind::Ec, 512),
    g(0x001d, "x25519", Kind::Ec, 255),
    g(0x001e, "x448", Kind::Ec, 448),
    g(0x001f, "brainpoolP256r1tls13", Kind::Ec, 256),
    g(0x0020, "brainpoolP384r1tls13", Kind::Ec, 384),
    g(0x0021, "brainpoolP512r1tls13", Kind::Ec, 512),
    g(0x0100, "ffdhe2048", Kind::Ff, 2048),
    g(0x0101, "ffdhe3072", Kind::Ff, 3072),
    g(0x0102, "ffdhe4096", Kind::Ff, 4096),
    g(0x0103, "ffdhe6144", Kind::Ff, 6144),
    g(0x0104, "ffdhe8192", Kind::Ff, 8192),
    g(0x11eb, "SecP256r1MLKEM768", Kind::Pq, 256),
    g(0x11ec, "X25519MLKEM768", Kind::Pq, 255),
    g(0x11ed, "SecP384r1MLKEM1024", Kind::Pq, 384),
];

/// The group with this id.
pub(crate) fn by_id(id: u16) -> Option<&'static Group> {
    GROUPS.iter().find(|g| g.id == id)
}

/// The size rule for key-exchange groups: below 224-bit EC (or PQ hybrid) or 2048-bit FF.
pub(crate) fn weak(kind: Kind, bits: u16) -> bool {
    match kind {
        Kind::Ec | Kind::Pq => bits < 224,
        Kind::Ff => bits < 2048,
    }
}

/// The order a current client prefers: post-quantum hybrids, then X25519, the NIST curves,
/// X448, then the rest by id. A server that follows the client's order answers in this order.
fn client_rank(g: &Group) -> (u8, u16) {
    let rank = match g.id {
        0x11ec => 0,
        0x11eb | 0x11ed => 1,
        0x001d => 2,
        0x0017 => 3,
        0x0018 => 4,
        0x001e => 5,
        0x0019 => 6,
        _ => 7,
    };
    (rank, g.id)
}

fn ordered(filter: impl Fn(&Group) -> bool) -> Vec<u16> {
    let mut v: Vec<&Group> = GROUPS.iter().filter(|g| filter(g)).collect();
    v.sort_by_key(|g| client_rank(g));
    v.into_iter().map(|g| g.id).collect()
}

/// What TLS 1.3 can negotiate: the registry's groups but the TLS 1.2-only brainpool
/// curves and the binary curves (RFC 8446 deprecates them).
pub(crate) fn tls13_candidates() -> Vec<u16> {
    ordered(|g| !(0x0001..=0x001c).contains(&g.id) || (0x0016..=0x0019).contains(&g.id))
}

/// The elliptic curves TLS 1.2 can negotiate for ECDHE.
pub(crate) fn tls12_curves() -> Vec<u16> {
    ordered(|g| g.kind == Kind::Ec && !(0x001f..=0x0021).contains(&g.id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_strength_is_judged_by_size() {
        for (i, a) in GROUPS.iter().enumerate() {
            assert!(GROUPS[i + 1..].iter().all(|b| b.id != a.id), "{}", a.name);
        }
        let weak = |id| {
            let g = by_id(id).unwrap();
            weak(g.kind, g.bits)
        };
        assert!(weak(0x0013) && weak(0x0001));
        assert!(!weak(0x0015) && !weak(0x001d) && !weak(0x0100));
        let t13 = tls13_candidates();
        assert_eq!(&t13[..3], &[0x11ec, 0x11eb, 0x11ed]);
        assert!(t13.contains(&0x11ec) && t13.contains(&0x0017) && t13.contains(&0x0100) && !t13.contains(&0x0013));
        let t12 = tls12_curves();
        assert!(t12.contains(&0x0013) && t12.contains(&0x001d) && !t12.contains(&0x0100) && !t12.contains(&0x11ec));
    }
}
