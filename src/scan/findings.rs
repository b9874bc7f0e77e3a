//! The scanner's verdicts: rules that turn what the probes observed (protocols, accepted
//! suites, ServerHellos, groups, the chain, `GET /`) into [`Finding`]s. Each family of rules is
//! a table; a rule names its id, severity and title and says, from the observations, whether it
//! applies and with what evidence. The probes that need the network (downgrade protection,
//! client-initiated renegotiation) find their own.

use std::collections::BTreeMap;

use super::GroupList;
use super::cert::{self, ChainCheck, HttpCheck};
use super::groups;
use super::hello::{ServerHello, TLS13};
use super::report::{AcceptedSuite, Finding, PROTOCOLS, Severity};
use super::suites::{Enc, Kx};

/// A suite rule: (id, severity, title, which accepted suites (protocol, suite) it is about).
type SuiteRule = (&'static str, Severity, &'static str, fn(&str, &AcceptedSuite) -> bool);

const SUITE_RULES: [SuiteRule; 8] = [
    (
        "beast",
        Severity::Medium,
        "CBC suites on TLS 1.0/SSLv3 (BEAST)",
        |p, a| (p == "SSLv3" || p == "TLSv1.0") && matches!(a.suite.enc, Enc::Cbc | Enc::Block64),
    ),
    (
        "cbc_cipher",
        Severity::Low,
        "CBC suites on TLS 1.1/1.2 (Lucky13-class; not BEAST)",
        |p, a| (p == "TLSv1.1" || p == "TLSv1.2") && a.suite.enc == Enc::Cbc,
    ),
    ("rc4", Severity::High, "RC4 suites (RFC 7465)", |_, a| {
        a.suite.enc == Enc::Rc4
    }),
    ("sweet32", Severity::Medium, "64-bit block ciphers (SWEET32)", |_, a| {
        a.suite.enc == Enc::Block64
    }),
    ("null_cipher", Severity::High, "NULL suites (no encryption)", |_, a| {
        a.suite.enc == Enc::Null
    }),
    (
        "export_cipher",
        Severity::High,
        "EXPORT suites (FREAK/Logjam)",
        |_, a| a.suite.export,
    ),
    (
        "anon_cipher",
        Severity::High,
        "anonymous suites (no server authentication)",
        |_, a| a.suite.kx == Kx::Anon,
    ),
    (
        "no_forward_secrecy",
        Severity::Low,
        "suites without forward secrecy",
        |_, a| matches!(a.suite.kx, Kx::Rsa | Kx::StaticDh | Kx::Psk | Kx::Srp | Kx::Krb5),
    ),
];

/// A protocol rule: (protocol accepted, id, severity, title, evidence).
type VersionRule = (&'static str, &'static str, Severity, &'static str, &'static str);

const VERSION_RULES: [VersionRule; 3] = [
    (
        "SSLv3",
        "poodle",
        Severity::High,
        "SSLv3 accepted (POODLE)",
        "the server completed an SSLv3 ServerHello",
    ),
    (
        "TLSv1.0",
        "tls10",
        Severity::Medium,
        "TLS 1.0 accepted (deprecated, RFC 8996)",
        "the server answered a TLS 1.0 hello",
    ),
    (
        "TLSv1.1",
        "tls11",
        Severity::Medium,
        "TLS 1.1 accepted (deprecated, RFC 8996)",
        "the server answered a TLS 1.1 hello",
    ),
];

/// The findings of the accepted protocols, their suites and ServerHellos.
pub(super) fn protocol_findings(
    protocols: &BTreeMap<&'static str, bool>,
    suites: &BTreeMap<&'static str, Vec<AcceptedSuite>>,
    hellos: &BTreeMap<u16, ServerHello>,
    out: &mut Vec<Finding>,
) {
    for (protocol, id, severity, title, evidence) in VERSION_RULES {
        if protocols.get(protocol).copied().unwrap_or(false) {
            out.push(Finding::new(id, severity, title, evidence.into()));
        }
    }
    let all: Vec<(&str, &AcceptedSuite)> = suites
        .iter()
        .flat_map(|(p, l)| l.iter().map(move |a| (*p, a)))
        .collect();
    suite_findings(&all, out);
    out.extend(weak_dh(&all));
    out.extend(insecure_renegotiation(hellos));
}

/// One finding per suite rule that applies, naming each suite once, whatever number of
/// protocols accepted it.
fn suite_findings(all: &[(&str, &AcceptedSuite)], out: &mut Vec<Finding>) {
    for (id, severity, title, applies) in SUITE_RULES {
        let mut seen = std::collections::HashSet::new();
        let hits: Vec<&str> = all
            .iter()
            .filter(|(p, a)| applies(p, a) && seen.insert(a.suite.id))
            .map(|(_, a)| a.suite.name)
            .collect();
        if !hits.is_empty() {
            out.push(Finding::new(id, severity, title, hits.join(", ")));
        }
    }
}

/// The weakest finite-field Diffie-Hellman group accepted, when under 2048 bits (Logjam).
fn weak_dh(all: &[(&str, &AcceptedSuite)]) -> Option<Finding> {
    let (bits, name) = all
        .iter()
        .filter_map(|(_, a)| a.dh_bits.map(|b| (b, a.suite.name)))
        .min()?;
    (bits < 2048).then(|| {
        Finding::new(
            "weak_dh",
            if bits < 1024 { Severity::High } else { Severity::Medium },
            "Diffie-Hellman group under 2048 bits (Logjam)",
            format!("{name}: {bits}-bit prime"),
        )
    })
}

/// The legacy versions whose ServerHello lacks `renegotiation_info` (RFC 5746).
fn insecure_renegotiation(hellos: &BTreeMap<u16, ServerHello>) -> Option<Finding> {
    let versions: Vec<&str> = hellos
        .iter()
        .filter(|(v, h)| **v < TLS13 && !h.secure_renegotiation)
        .map(|(v, _)| PROTOCOLS.iter().find(|(_, pv)| pv == v).map_or("?", |(n, _)| n))
        .collect();
    (!versions.is_empty()).then(|| {
        Finding::new(
            "no_secure_renegotiation",
            Severity::Medium,
            "no secure renegotiation extension (RFC 5746)",
            format!("ServerHello without renegotiation_info on {}", versions.join(", ")),
        )
    })
}

/// Elliptic curves under 224 bits (finite-field groups are judged by `weak_dh`).
pub(super) fn group_findings(groups: &BTreeMap<&'static str, GroupList>, out: &mut Vec<Finding>) {
    let weak: Vec<String> = groups
        .iter()
        .flat_map(|(p, l)| l.groups.iter().map(move |g| (p, g)))
        .filter(|(_, g)| g.kind != groups::Kind::Ff && groups::weak(g.kind, g.bits))
        .map(|(p, g)| format!("{} ({} bits, {p})", g.name, g.bits))
        .collect();
    if !weak.is_empty() {
        out.push(Finding::new(
            "weak_curve",
            Severity::Medium,
            "elliptic curve under 224 bits",
            weak.join(", "),
        ));
    }
}

/// A chain rule: (id, severity, title, the evidence when it applies to the check of the
/// chain served for the SNI).
type ChainRule = (
    &'static str,
    Severity,
    &'static str,
    fn(&ChainCheck, &str) -> Option<String>,
);

const CHAIN_RULES: [ChainRule; 9] = [
    ("cert_expired", Severity::High, "certificate expired", |c, _| {
        c.expired
            .then(|| format!("{} expired at {}", c.chain[0].subject, c.chain[0].not_after))
    }),
    (
        "cert_expiring_soon",
        Severity::Low,
        "certificate expires within 30 days",
        |c, _| {
            (!c.expired && c.expires_in < 30 * 86_400)
                .then(|| format!("{} expires at {}", c.chain[0].subject, c.chain[0].not_after))
        },
    ),
    (
        "cert_not_yet_valid",
        Severity::High,
        "certificate not yet valid",
        |c, _| {
            c.not_yet_valid
                .then(|| format!("{} is valid in {} s", c.chain[0].subject, c.valid_in))
        },
    ),
    (
        "hostname_mismatch",
        Severity::High,
        "certificate does not name the host",
        |c, sni| (!c.hostname_match).then(|| format!("{sni} is not in [{}]", c.chain[0].sans.join(", "))),
    ),
    (
        "cert_wrong_usage",
        Severity::High,
        "certificate not usable for server authentication",
        |c, _| {
            c.wrong_usage
                .then(|| format!("{}: its extended key usage lacks serverAuth", c.chain[0].subject))
        },
    ),
    ("self_signed", Severity::High, "self-signed certificate", |c, _| {
        c.self_signed
            .then(|| format!("{} is its own issuer and not a trusted root", c.chain[0].subject))
    }),
    (
        "untrusted_root",
        Severity::High,
        "chain ends in an untrusted root",
        |c, _| {
            let root = c.chain.last()?;
            c.untrusted_root
                .then(|| format!("root \"{}\" was sent but is not a trusted root", root.subject))
        },
    ),
    (
        "incomplete_chain",
        Severity::Medium,
        "incomplete chain (intermediate not sent)",
        |c, _| {
            let last = c.chain.last()?;
            c.incomplete
                .then(|| format!("issuer \"{}\" was not sent and is not a trusted root", last.issuer))
        },
    ),
    // Not trusted for a reason none of the verdicts above names (a bad signature, a
    // constraint): the verifier's own words.
    (
        "untrusted_chain",
        Severity::High,
        "certificate chain not trusted",
        |c, _| {
            let explained =
                c.expired || c.not_yet_valid || c.wrong_usage || c.self_signed || c.untrusted_root || c.incomplete;
            (!c.trusted && !explained).then(|| c.trust_error.clone().unwrap_or_default())
        },
    ),
];

/// The findings of the chain served for `sni`.
pub(super) fn cert_findings(c: &ChainCheck, sni: &str, out: &mut Vec<Finding>) {
    if c.chain.is_empty() {
        return;
    }
    for (id, severity, title, applies) in CHAIN_RULES {
        if let Some(evidence) = applies(c, sni) {
            out.push(Finding::new(id, severity, title, evidence));
        }
    }
}

/// HSTS missing from `GET /`, or with a max-age below 180 days.
pub(super) fn hsts_findings(h: &HttpCheck, out: &mut Vec<Finding>) {
    match h.hsts.as_deref() {
        None => out.push(Finding::new(
            "hsts_missing",
            Severity::Low,
            "no HSTS header",
            format!("GET / answered {} without Strict-Transport-Security", h.status),
        )),
        Some(v) if cert::hsts_max_age(v).unwrap_or(0) < 15_552_000 => out.push(Finding::new(
            "hsts_short",
            Severity::Low,
            "HSTS max-age below 180 days",
            format!("Strict-Transport-Security: {v}"),
        )),
        Some(_) => {}
    }
}
