//! The cipher policy: a small YAML file that says which TLS versions, suites, key-exchange
//! groups, ALPN protocols and client-authentication mode the server uses.
//!
//! Invariant: a [`Policy`] that exists is safe. Parsing refuses every item that would allow a
//! BEAST-class downgrade (TLS < 1.2, CBC, RC4, 3DES, NULL, EXPORT, anonymous or static-RSA
//! suites) with a message that names the item and the attack, and reports every problem of a
//! file at once. The same parser runs at start-up, in `check-config` and at every reload.

use std::fmt;
use std::path::Path;

use rustls::SupportedCipherSuite;
use rustls::crypto::SupportedKxGroup;
use rustls::crypto::aws_lc_rs::{cipher_suite as cs, kx_group};
use serde::Deserialize;

/// A policy problem: the item at fault and why it is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{item}: {reason}")]
pub struct PolicyProblem {
    /// The offending item as written (a suite name, `min_version 1.0`, a field name).
    pub item: String,
    /// Why it is refused and what to do instead.
    pub reason: String,
}

impl PolicyProblem {
    fn new(item: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            item: item.into(),
            reason: reason.into(),
        }
    }
}

/// Every problem found in one policy source.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct PolicyErrors(pub Vec<PolicyProblem>);

impl fmt::Display for PolicyErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&lines.join("; "))
    }
}

/// Mozilla server-side TLS profiles (v6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// TLS 1.3 only.
    Modern,
    /// TLS 1.2 with ECDHE + AEAD suites, and TLS 1.3.
    Intermediate,
}

/// Whether clients must present a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuth {
    /// No client certificate is asked for.
    #[default]
    None,
    /// A certificate is asked for and verified when presented.
    Optional,
    /// A verified certificate is required to complete the handshake.
    Required,
}

impl ClientAuth {
    /// The name used in the policy file.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Optional => "optional",
            Self::Required => "required",
        }
    }
}

/// A TLS protocol version the policy may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    /// TLS 1.2.
    Tls12,
    /// TLS 1.3.
    Tls13,
}

impl TlsVersion {
    /// `1.2` or `1.3`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tls12 => "1.2",
            Self::Tls13 => "1.3",
        }
    }
}

/// The policy file as written; every field optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    profile: Option<Profile>,
    min_version: Option<serde_norway::Value>,
    cipher_suites: Option<Vec<String>>,
    kx_groups: Option<Vec<String>>,
    alpn: Option<Vec<String>>,
    client_auth: Option<ClientAuth>,
}

/// A validated cipher policy.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The profile the policy started from.
    pub profile: Profile,
    /// The lowest protocol version accepted.
    pub min_version: TlsVersion,
    /// Enabled suites, in server preference order.
    pub cipher_suites: Vec<SupportedCipherSuite>,
    /// Enabled key-exchange groups, in preference order.
    pub kx_groups: Vec<&'static dyn SupportedKxGroup>,
    /// ALPN protocols, in preference order.
    pub alpn: Vec<String>,
    /// Client certificate mode.
    pub client_auth: ClientAuth,
}

impl Default for Policy {
    /// Mozilla intermediate with X25519MLKEM768 preferred.
    fn default() -> Self {
        Self::from_yaml("").expect("the empty policy is valid")
    }
}

struct SuiteInfo {
    name: &'static str,
    suite: SupportedCipherSuite,
}

const TLS13_SUITES: [SuiteInfo; 3] = [
    SuiteInfo {
        name: "TLS_AES_128_GCM_SHA256",
        suite: cs::TLS13_AES_128_GCM_SHA256,
    },
    SuiteInfo {
        name: "TLS_AES_256_GCM_SHA384",
        suite: cs::TLS13_AES_256_GCM_SHA384,
    },
    SuiteInfo {
        name: "TLS_CHACHA20_POLY1305_SHA256",
        suite: cs::TLS13_CHACHA20_POLY1305_SHA256,
    },
];

const TLS12_SUITES: [SuiteInfo; 6] = [
    SuiteInfo {
        name: "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        suite: cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    },
    SuiteInfo {
        name: "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        suite: cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    },
    SuiteInfo {
        name: "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        suite: cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    },
    SuiteInfo {
        name: "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        suite: cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    },
    SuiteInfo {
        name: "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        suite: cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    },
    SuiteInfo {
        name: "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        suite: cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    },
];

const KX_GROUPS: [(&str, &dyn SupportedKxGroup); 4] = [
    ("X25519MLKEM768", kx_group::X25519MLKEM768),
    ("X25519", kx_group::X25519),
    ("secp256r1", kx_group::SECP256R1),
    ("secp384r1", kx_group::SECP384R1),
];

const ALPN: [&str; 2] = ["h2", "http/1.1"];

/// The IANA name of a suite this policy can enable.
pub(crate) fn suite_name(suite: SupportedCipherSuite) -> &'static str {
    TLS13_SUITES
        .iter()
        .chain(TLS12_SUITES.iter())
        .find(|s| s.suite.suite() == suite.suite())
        .map_or("unknown", |s| s.name)
}

/// The name of a key-exchange group as the policy file writes it.
fn kx_group_name(group: &dyn SupportedKxGroup) -> &'static str {
    KX_GROUPS
        .iter()
        .find(|(_, g)| g.name() == group.name())
        .map_or("unknown", |(n, _)| n)
}

/// Why a suite name that is not enabled by this policy is refused, naming the attack.
fn weak_suite_reason(name: &str) -> Option<&'static str> {
    let n = name.to_ascii_uppercase();
    let checks: [(bool, &str); 8] = [
        (n.contains("NULL"), "NULL suites send data unencrypted; not allowed"),
        (
            n.contains("EXPORT"),
            "EXPORT suites use 40/56-bit keys (FREAK, Logjam); not allowed",
        ),
        (
            n.contains("_ANON_"),
            "anonymous suites do not authenticate the server (trivial MITM); not allowed",
        ),
        (
            n.contains("RC4"),
            "RC4 has exploitable keystream biases (RFC 7465); not allowed",
        ),
        (
            n.contains("3DES") || n.contains("_DES_") || n.contains("IDEA"),
            "64-bit block ciphers are open to SWEET32; not allowed",
        ),
        (n.contains("CBC"), "CBC suites are open to BEAST/Lucky13; not allowed"),
        (
            n.starts_with("TLS_RSA_"),
            "static RSA key exchange has no forward secrecy (and ROBOT); not allowed",
        ),
        (
            n.starts_with("TLS_DHE_") || n.starts_with("TLS_DH_"),
            "finite-field DH suites are open to weak-group attacks (Logjam) and are not offered; use ECDHE",
        ),
    ];
    checks.into_iter().find(|(hit, _)| *hit).map(|(_, why)| why)
}

fn parse_min_version(value: &serde_norway::Value) -> Result<TlsVersion, PolicyProblem> {
    let text = match value {
        serde_norway::Value::String(s) => s.clone(),
        serde_norway::Value::Number(n) => n.to_string(),
        other => format!("{other:?}"),
    };
    let norm = text
        .trim()
        .to_ascii_lowercase()
        .replace("tlsv", "")
        .replace("tls", "")
        .replace('_', ".")
        .trim()
        .to_string();
    let item = format!("min_version {text}");
    match norm.as_str() {
        "1.2" => Ok(TlsVersion::Tls12),
        "1.3" => Ok(TlsVersion::Tls13),
        "1.0" | "1" | "1.1" => Err(PolicyProblem::new(
            item,
            "TLS 1.0/1.1 allow BEAST-class downgrades; the floor is 1.2",
        )),
        s if s.contains("ssl") => Err(PolicyProblem::new(
            item,
            "SSL 2/3 are broken (POODLE, DROWN); the floor is 1.2",
        )),
        _ => Err(PolicyProblem::new(item, "unknown version; use 1.2 or 1.3")),
    }
}

fn parse_suites(names: &[String], min: TlsVersion, problems: &mut Vec<PolicyProblem>) -> Vec<SupportedCipherSuite> {
    let mut out = Vec::new();
    for name in names {
        let upper = name.trim().to_ascii_uppercase();
        if let Some(s) = TLS13_SUITES.iter().find(|s| s.name == upper) {
            push_unique(&mut out, s.suite);
        } else if let Some(s) = TLS12_SUITES.iter().find(|s| s.name == upper) {
            if min == TlsVersion::Tls13 {
                problems.push(PolicyProblem::new(
                    name.as_str(),
                    "a TLS 1.2 suite cannot be used with min_version 1.3; remove it or lower min_version",
                ));
            } else {
                push_unique(&mut out, s.suite);
            }
        } else if let Some(why) = weak_suite_reason(&upper) {
            problems.push(PolicyProblem::new(name.as_str(), why));
        } else {
            problems.push(PolicyProblem::new(
                name.as_str(),
                format!(
                    "unknown cipher suite; use IANA names, one of: {}",
                    all_suite_names().join(", ")
                ),
            ));
        }
    }
    out
}

fn push_unique(out: &mut Vec<SupportedCipherSuite>, suite: SupportedCipherSuite) {
    if !out.iter().any(|s| s.suite() == suite.suite()) {
        out.push(suite);
    }
}

fn all_suite_names() -> Vec<&'static str> {
    TLS13_SUITES.iter().chain(TLS12_SUITES.iter()).map(|s| s.name).collect()
}

fn default_suites(min: TlsVersion) -> Vec<SupportedCipherSuite> {
    let tls12 = TLS12_SUITES.iter().filter(|_| min == TlsVersion::Tls12);
    TLS13_SUITES.iter().chain(tls12).map(|s| s.suite).collect()
}

fn parse_groups(names: &[String], problems: &mut Vec<PolicyProblem>) -> Vec<&'static dyn SupportedKxGroup> {
    let mut out: Vec<&'static dyn SupportedKxGroup> = Vec::new();
    for name in names {
        match KX_GROUPS.iter().find(|(n, _)| n.eq_ignore_ascii_case(name.trim())) {
            Some((_, g)) if !out.iter().any(|o| o.name() == g.name()) => out.push(*g),
            Some(_) => {}
            None => {
                let why = if name.to_ascii_lowercase().starts_with("ffdhe") {
                    "finite-field groups are not offered (slow, Logjam-class risk); use X25519MLKEM768, X25519, secp256r1 or secp384r1".to_string()
                } else {
                    format!(
                        "unknown key-exchange group; one of: {}",
                        KX_GROUPS.map(|(n, _)| n).join(", ")
                    )
                };
                problems.push(PolicyProblem::new(format!("kx_groups {name}"), why));
            }
        }
    }
    out
}

fn parse_alpn(names: &[String], problems: &mut Vec<PolicyProblem>) -> Vec<String> {
    let mut out = Vec::new();
    for name in names {
        if ALPN.contains(&name.as_str()) {
            if !out.contains(name) {
                out.push(name.clone());
            }
        } else {
            problems.push(PolicyProblem::new(
                format!("alpn {name}"),
                "unknown protocol; use h2 and/or http/1.1",
            ));
        }
    }
    out
}

impl Policy {
    /// Reads and validates a policy file; problems name the file.
    pub fn from_file(files: &crate::files::Files, path: &Path) -> Result<Self, PolicyErrors> {
        let text = files
            .read(path)
            .and_then(|b| {
                String::from_utf8(b).map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8"))
            })
            .map_err(|e| {
                PolicyErrors(vec![PolicyProblem::new(
                    path.display().to_string(),
                    format!("cannot read the policy file: {e}"),
                )])
            })?;
        Self::from_yaml(&text).map_err(|PolicyErrors(list)| {
            PolicyErrors(
                list.into_iter()
                    .map(|p| PolicyProblem::new(format!("{}: {}", path.display(), p.item), p.reason))
                    .collect(),
            )
        })
    }

    /// Parses and validates a policy document; every problem is reported at once.
    pub fn from_yaml(text: &str) -> Result<Self, PolicyErrors> {
        let raw: RawPolicy = if text.trim().is_empty() {
            RawPolicy::default()
        } else {
            serde_norway::from_str(text).map_err(|e| {
                PolicyErrors(vec![PolicyProblem::new(
                    "policy",
                    format!("not valid policy YAML: {e}"),
                )])
            })?
        };
        let mut problems = Vec::new();
        let profile = raw.profile.unwrap_or(Profile::Intermediate);
        let profile_min = match profile {
            Profile::Modern => TlsVersion::Tls13,
            Profile::Intermediate => TlsVersion::Tls12,
        };
        let min_version = match raw.min_version.as_ref().map(parse_min_version) {
            Some(Ok(v)) => v,
            Some(Err(p)) => {
                problems.push(p);
                profile_min
            }
            None => profile_min,
        };
        let cipher_suites = match &raw.cipher_suites {
            Some(names) if names.is_empty() => {
                problems.push(PolicyProblem::new(
                    "cipher_suites",
                    "empty list; omit the field to use the profile's suites",
                ));
                Vec::new()
            }
            Some(names) => parse_suites(names, min_version, &mut problems),
            None => default_suites(min_version),
        };
        if !problems.iter().any(|p| p.item != "cipher_suites")
            && !cipher_suites.is_empty()
            && !cipher_suites
                .iter()
                .any(|s| matches!(s, SupportedCipherSuite::Tls13(_)))
        {
            problems.push(PolicyProblem::new(
                "cipher_suites",
                "no TLS 1.3 suite listed; TLS 1.3 must stay enabled (add TLS_AES_128_GCM_SHA256)",
            ));
        }
        let kx_groups = match &raw.kx_groups {
            Some(names) if names.is_empty() => {
                problems.push(PolicyProblem::new(
                    "kx_groups",
                    "empty list; omit the field to use the defaults",
                ));
                Vec::new()
            }
            Some(names) => parse_groups(names, &mut problems),
            None => KX_GROUPS.iter().map(|(_, g)| *g).collect(),
        };
        let alpn = match &raw.alpn {
            Some(names) if names.is_empty() => {
                problems.push(PolicyProblem::new(
                    "alpn",
                    "empty list; omit the field to offer h2 and http/1.1",
                ));
                Vec::new()
            }
            Some(names) => parse_alpn(names, &mut problems),
            None => ALPN.iter().map(|s| s.to_string()).collect(),
        };
        if !problems.is_empty() {
            return Err(PolicyErrors(problems));
        }
        Ok(Self {
            profile,
            min_version,
            cipher_suites,
            kx_groups,
            alpn,
            client_auth: raw.client_auth.unwrap_or_default(),
        })
    }

    /// The protocol versions this policy enables, newest first.
    pub fn versions(&self) -> Vec<&'static rustls::SupportedProtocolVersion> {
        match self.min_version {
            TlsVersion::Tls13 => vec![&rustls::version::TLS13],
            TlsVersion::Tls12 => vec![&rustls::version::TLS13, &rustls::version::TLS12],
        }
    }

    /// A crypto provider restricted to this policy's suites and groups.
    pub fn provider(&self) -> rustls::crypto::CryptoProvider {
        rustls::crypto::CryptoProvider {
            cipher_suites: self.cipher_suites.clone(),
            kx_groups: self.kx_groups.clone(),
            ..rustls::crypto::aws_lc_rs::default_provider()
        }
    }

    /// The enabled versions as written in the policy, oldest first (`1.2, 1.3`).
    pub fn version_names(&self) -> Vec<&'static str> {
        match self.min_version {
            TlsVersion::Tls13 => vec!["1.3"],
            TlsVersion::Tls12 => vec!["1.2", "1.3"],
        }
    }

    /// The normalized policy as a YAML document that parses back to the same policy.
    pub fn describe(&self) -> String {
        let suites: Vec<&str> = self.cipher_suites.iter().map(|s| suite_name(*s)).collect();
        let groups: Vec<&str> = self.kx_groups.iter().map(|g| kx_group_name(*g)).collect();
        format!(
            "profile: {}\nmin_version: \"{}\"\ncipher_suites: [{}]\nkx_groups: [{}]\nalpn: [{}]\nclient_auth: {}\n",
            match self.profile {
                Profile::Modern => "modern",
                Profile::Intermediate => "intermediate",
            },
            self.min_version.as_str(),
            suites.join(", "),
            groups.join(", "),
            self.alpn.join(", "),
            self.client_auth.as_str(),
        )
    }
}

#[cfg(test)]
mod tests {
    /// The chart refuses the same policy values before they reach a pod; its messages must be
    /// the binary's, word for word.
    #[test]
    fn the_chart_refuses_weak_policy_values_with_the_same_reasons() {
        let chart = include_str!("../../charts/tlsward/templates/_validate.tpl");
        let weak = [
            "TLS_RSA_WITH_NULL_SHA256",
            "TLS_RSA_EXPORT_WITH_RC4_40_MD5",
            "TLS_DH_ANON_WITH_AES_128_CBC_SHA",
            "TLS_ECDHE_RSA_WITH_RC4_128_SHA",
            "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
            "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
            "TLS_RSA_WITH_AES_128_GCM_SHA256",
            "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256",
        ];
        let mut reasons: Vec<String> = weak.iter().map(|n| weak_suite_reason(n).unwrap().to_string()).collect();
        assert_eq!(reasons.len(), 8);
        for text in [
            "min_version: 1.1",
            "min_version: SSLv3",
            "min_version: 2.0",
            "kx_groups: [ffdhe2048]",
            "alpn: [spdy]",
            "cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256]",
            "{min_version: 1.3, cipher_suites: [TLS_AES_128_GCM_SHA256, TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256]}",
        ] {
            let problems = Policy::from_yaml(text).unwrap_err().0;
            reasons.extend(problems.iter().map(|p| p.reason.clone()));
        }
        for reason in &reasons {
            let stable = reason
                .split("; one of")
                .next()
                .unwrap()
                .split("; use IANA")
                .next()
                .unwrap();
            assert!(chart.contains(stable), "the chart does not refuse with: {stable}");
        }
    }

    use super::*;

    fn problems(yaml: &str) -> Vec<String> {
        Policy::from_yaml(yaml)
            .unwrap_err()
            .0
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn default_is_intermediate_with_hybrid_pq_first() {
        let p = Policy::default();
        assert_eq!(p.profile, Profile::Intermediate);
        assert_eq!(p.min_version, TlsVersion::Tls12);
        assert_eq!(kx_group_name(p.kx_groups[0]), "X25519MLKEM768");
        assert_eq!(p.cipher_suites.len(), 9);
        assert_eq!(p.alpn, vec!["h2", "http/1.1"]);
    }

    #[test]
    fn modern_is_tls13_only() {
        let p = Policy::from_yaml("profile: modern").unwrap();
        assert_eq!(p.min_version, TlsVersion::Tls13);
        assert_eq!(p.versions().len(), 1);
        assert!(
            p.cipher_suites
                .iter()
                .all(|s| matches!(s, SupportedCipherSuite::Tls13(_)))
        );
    }

    #[test]
    fn refuses_cbc_with_beast_message() {
        assert_eq!(
            problems("cipher_suites: [TLS_AES_128_GCM_SHA256, TLS_RSA_WITH_AES_128_CBC_SHA]"),
            vec!["TLS_RSA_WITH_AES_128_CBC_SHA: CBC suites are open to BEAST/Lucky13; not allowed"]
        );
    }

    #[test]
    fn refuses_tls10_floor() {
        assert_eq!(
            problems("min_version: \"1.0\""),
            vec!["min_version 1.0: TLS 1.0/1.1 allow BEAST-class downgrades; the floor is 1.2"]
        );
        assert!(problems("min_version: 1.1")[0].contains("BEAST"));
        assert!(problems("min_version: SSLv3")[0].contains("POODLE"));
    }

    #[test]
    fn refuses_each_weak_family_naming_the_attack() {
        let cases = [
            ("TLS_ECDHE_RSA_WITH_RC4_128_SHA", "RC4"),
            ("TLS_RSA_WITH_3DES_EDE_CBC_SHA", "SWEET32"),
            ("TLS_RSA_WITH_NULL_SHA256", "NULL"),
            ("TLS_RSA_EXPORT_WITH_RC4_40_MD5", "EXPORT"),
            ("TLS_DH_anon_WITH_AES_128_GCM_SHA256", "anonymous"),
            ("TLS_RSA_WITH_AES_128_GCM_SHA256", "forward secrecy"),
            ("TLS_DHE_RSA_WITH_AES_128_GCM_SHA256", "Logjam"),
            ("TLS_MADE_UP", "unknown cipher suite"),
        ];
        for (suite, word) in cases {
            let got = problems(&format!("cipher_suites: [TLS_AES_128_GCM_SHA256, {suite}]"));
            assert_eq!(got.len(), 1, "{suite}: {got:?}");
            assert!(got[0].starts_with(suite) && got[0].contains(word), "{suite}: {got:?}");
        }
    }

    #[test]
    fn reports_every_problem_at_once() {
        let got = problems(
            "min_version: \"1.0\"\ncipher_suites: [TLS_RSA_WITH_RC4_128_SHA]\nkx_groups: [ffdhe2048]\nalpn: [spdy/3]",
        );
        assert_eq!(got.len(), 4, "{got:?}");
    }

    #[test]
    fn refuses_unknown_fields_and_bad_yaml() {
        assert!(problems("cipher_suite: []")[0].contains("unknown field"));
        assert!(problems("profile: [")[0].contains("not valid policy YAML"));
        assert!(problems("profile: old")[0].contains("not valid policy YAML"));
    }

    #[test]
    fn tls12_suite_under_tls13_floor_is_refused() {
        let got = problems("min_version: \"1.3\"\ncipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256]");
        assert!(got[0].contains("cannot be used with min_version 1.3"), "{got:?}");
    }

    #[test]
    fn tls13_must_stay_enabled() {
        let got = problems("cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256]");
        assert!(got[0].contains("no TLS 1.3 suite"), "{got:?}");
    }

    #[test]
    fn overrides_keep_order_and_names_round_trip() {
        let p = Policy::from_yaml(
            "cipher_suites: [TLS_CHACHA20_POLY1305_SHA256, TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384]\nkx_groups: [X25519, secp384r1]\nalpn: [http/1.1]\nclient_auth: required",
        )
        .unwrap();
        let again = Policy::from_yaml(&p.describe()).unwrap();
        assert_eq!(p.describe(), again.describe());
        assert!(
            p.describe()
                .contains("cipher_suites: [TLS_CHACHA20_POLY1305_SHA256, TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384]")
        );
        assert_eq!(again.client_auth, ClientAuth::Required);
    }
}
