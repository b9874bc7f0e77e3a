//! The scan report: protocols, suites, certificate, HSTS and findings; the JSON schema
//! (`tlsward.scan/v2`; the changes from v1 are listed in the README), the table, and the exit
//! code.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::cert::{ChainCheck, HttpCheck};
use super::suites::Suite;

/// The JSON schema id of [`Report`].
pub const SCHEMA: &str = "tlsward.scan/v2";

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth fixing; no practical attack on its own.
    Low,
    /// A weakness with known attacks under some conditions.
    Medium,
    /// Broken: fix now.
    High,
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Stable id (`beast`, `rc4`, `cert_expired`, …).
    pub id: &'static str,
    /// Severity.
    pub severity: Severity,
    /// What it is.
    pub title: &'static str,
    /// What was seen.
    pub evidence: String,
}

impl Finding {
    /// A finding.
    pub fn new(id: &'static str, severity: Severity, title: &'static str, evidence: String) -> Self {
        Self {
            id,
            severity,
            title,
            evidence,
        }
    }
}

/// A suite the server accepted.
#[derive(Debug, Clone, Serialize)]
pub struct AcceptedSuite {
    /// The suite.
    #[serde(flatten)]
    pub suite: Suite,
    /// DH prime size, for DHE suites.
    pub dh_bits: Option<usize>,
}

/// The whole scan.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// [`SCHEMA`].
    pub schema: &'static str,
    /// `host:port` as given.
    pub target: String,
    /// The address scanned.
    pub address: String,
    /// SNI sent.
    pub sni: String,
    /// `postgres` or null.
    pub starttls: Option<super::probe::Starttls>,
    /// Wall time of the scan, ms.
    pub duration_ms: u64,
    /// `SSLv3`, `TLSv1.0` … `TLSv1.3` → accepted.
    pub protocols: BTreeMap<&'static str, bool>,
    /// Per accepted protocol, the accepted suites in the order the server chose them.
    pub cipher_suites: BTreeMap<&'static str, Vec<AcceptedSuite>>,
    /// Key-exchange groups in the order the server chose them: TLS 1.3 groups (from
    /// HelloRetryRequests), TLS 1.2 ECDHE curves and DHE primes.
    pub groups: BTreeMap<&'static str, super::GroupList>,
    /// Certificate verdicts, when a certificate was seen.
    pub certificate: Option<ChainCheck>,
    /// `GET /` over HTTPS (not with STARTTLS).
    pub http: Option<HttpCheck>,
    /// Everything found, worst first.
    pub findings: Vec<Finding>,
    /// The worst severity found.
    pub max_severity: Option<Severity>,
    /// What could not be determined (a probe that got no answer, twice): never read as a
    /// verdict either way.
    pub inconclusive: Vec<Inconclusive>,
}

/// A property the scan could not determine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Inconclusive {
    /// What (`protocol TLSv1.0`, `TLSv1.2 cipher suites`, `downgrade protection …`).
    pub property: String,
    /// Why.
    pub reason: String,
}

/// Protocol names in order.
pub const PROTOCOLS: [(&str, u16); 5] = [
    ("SSLv3", super::hello::SSL3),
    ("TLSv1.0", super::hello::TLS10),
    ("TLSv1.1", super::hello::TLS11),
    ("TLSv1.2", super::hello::TLS12),
    ("TLSv1.3", super::hello::TLS13),
];

impl Report {
    /// Exit code: 1 when a finding is at or above `fail_on`; else 2 when something could
    /// not be determined (unless `allow_inconclusive`); else 0.
    pub fn exit_code(&self, fail_on: Severity, allow_inconclusive: bool) -> i32 {
        if self.findings.iter().any(|f| f.severity >= fail_on) {
            1
        } else if !self.inconclusive.is_empty() && !allow_inconclusive {
            2
        } else {
            0
        }
    }

    /// The human-readable table.
    pub fn table(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(
            o,
            "tlsward scan {} ({}, SNI {}){}",
            self.target,
            self.address,
            self.sni,
            self.starttls.map_or(String::new(), |_| ", STARTTLS postgres".into())
        );
        let _ = writeln!(o, "\nProtocols");
        for (name, _) in PROTOCOLS {
            let on = self.protocols.get(name).copied().unwrap_or(false);
            let _ = writeln!(o, "  {name:<8} {}", if on { "accepted" } else { "not offered" });
        }
        for (proto, suites) in &self.cipher_suites {
            let _ = writeln!(o, "\nCipher suites, {proto} (server order)");
            for s in suites {
                let dh = s.dh_bits.map_or(String::new(), |b| format!(" DH {b} bits"));
                let _ = writeln!(
                    o,
                    "  0x{:04x} {:<48} {}, {}{dh}",
                    s.suite.id, s.suite.name, s.suite.kx, s.suite.enc
                );
            }
        }
        for (proto, list) in &self.groups {
            let order = match list.preference {
                "server" => "server order",
                "client" => "the server follows the client's order",
                _ => "order not determined",
            };
            let _ = writeln!(o, "\nKey-exchange groups, {proto} ({order})");
            for g in &list.groups {
                let _ = writeln!(o, "  {:<22} {}, {} bits", g.name, g.kind, g.bits);
            }
        }
        if let Some(c) = &self.certificate {
            let _ = writeln!(o, "\nCertificate chain (as sent)");
            for (i, s) in c.chain.iter().enumerate() {
                let _ = writeln!(
                    o,
                    "  #{i} {} (issuer {}), not after {}, SANs [{}]",
                    s.subject,
                    s.issuer,
                    s.not_after,
                    s.sans.join(", ")
                );
            }
            let _ = writeln!(
                o,
                "  trusted: {}  hostname match: {}",
                if c.trusted { "yes" } else { "no" },
                if c.hostname_match { "yes" } else { "no" }
            );
        }
        if let Some(h) = &self.http {
            let _ = writeln!(
                o,
                "\nGET /: {}  HSTS: {}",
                h.status,
                h.hsts.as_deref().unwrap_or("missing")
            );
        }
        let _ = writeln!(o, "\nFindings");
        if self.findings.is_empty() {
            let _ = writeln!(o, "  none");
        }
        for f in &self.findings {
            let _ = writeln!(
                o,
                "  {:<6} {:<26} {}: {}",
                format!("{:?}", f.severity).to_uppercase(),
                f.id,
                f.title,
                f.evidence
            );
        }
        if !self.inconclusive.is_empty() {
            let _ = writeln!(o, "\nNot determined");
            for i in &self.inconclusive {
                let _ = writeln!(o, "  {}: {}", i.property, i.reason);
            }
        }
        let _ = writeln!(o, "\nscanned in {} ms", self.duration_ms);
        o
    }
}
