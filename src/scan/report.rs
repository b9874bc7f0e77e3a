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
    /// `GET /` over HTTPS (not with STARTTLS): through rustls, else through the legacy
    /// (OpenSSL) client on a CBC- or DHE-only server.
    pub http: Option<HttpCheck>,
    /// Whether the server completes a renegotiation the client starts (TLS ≤ 1.2; `false` on
    /// a TLS 1.3-only server, which cannot renegotiate); null when not determined (the reason
    /// is in `inconclusive` or `not_checked`).
    pub client_renegotiation: Option<bool>,
    /// Everything found, worst first.
    pub findings: Vec<Finding>,
    /// The worst severity found.
    pub max_severity: Option<Severity>,
    /// What could not be determined (a probe that got no answer, twice): never read as a
    /// verdict either way.
    pub inconclusive: Vec<Inconclusive>,
    /// The policy the endpoint was judged against (`--policy`), if any; its deviations are
    /// findings `policy_*`.
    pub policy: Option<String>,
    /// Properties this scan does not determine, and why (they do not change the exit code).
    pub not_checked: Vec<Inconclusive>,
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
        self.table_protocols(&mut o);
        self.table_certificate(&mut o);
        self.table_findings(&mut o);
        let _ = writeln!(o, "\nscanned in {} ms", self.duration_ms);
        o
    }

    /// Protocols, cipher suites and key-exchange groups.
    fn table_protocols(&self, o: &mut String) {
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
    }

    /// The chain, `GET /` and renegotiation.
    fn table_certificate(&self, o: &mut String) {
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
        let _ = writeln!(
            o,
            "\nClient-initiated renegotiation: {}",
            match self.client_renegotiation {
                Some(true) => "accepted",
                Some(false) => "refused",
                None => "not determined",
            }
        );
    }

    /// Findings, and what was not checked or not determined.
    fn table_findings(&self, o: &mut String) {
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
        for (title, list) in [
            ("Not checked", &self.not_checked),
            ("Not determined", &self.inconclusive),
        ] {
            if !list.is_empty() {
                let _ = writeln!(o, "\n{title}");
                for i in list {
                    let _ = writeln!(o, "  {}: {}", i.property, i.reason);
                }
            }
        }
    }
}

/// One address of `--all-addresses`: its report, or why it could not be scanned.
#[derive(Debug, Clone, Serialize)]
pub struct AddressResult {
    /// The address.
    pub address: String,
    /// The scan of it.
    pub report: Option<Report>,
    /// Why it could not be scanned.
    pub error: Option<String>,
}

/// `--all-addresses`: every address's report and what differs between them.
#[derive(Debug, Clone, Serialize)]
pub struct MultiReport {
    /// [`SCHEMA`].
    pub schema: &'static str,
    /// `host:port` as given.
    pub target: String,
    /// Per address.
    pub addresses: Vec<AddressResult>,
    /// What is not the same on every address (protocols, suites, groups, certificate,
    /// findings), or an address that could not be scanned.
    pub differences: Vec<String>,
}

/// What one address serves, aspect by aspect, for comparing addresses.
fn aspects(r: &Report) -> Vec<(&'static str, String)> {
    let on: Vec<&str> = r.protocols.iter().filter(|(_, v)| **v).map(|(p, _)| *p).collect();
    let suites: Vec<String> = r
        .cipher_suites
        .iter()
        .map(|(p, l)| format!("{p}: {}", l.iter().map(|a| a.suite.name).collect::<Vec<_>>().join(" ")))
        .collect();
    let groups: Vec<String> = r
        .groups
        .iter()
        .map(|(p, l)| format!("{p}: {}", l.groups.iter().map(|g| g.name).collect::<Vec<_>>().join(" ")))
        .collect();
    let mut findings: Vec<&str> = r.findings.iter().map(|f| f.id).collect();
    findings.sort_unstable();
    vec![
        ("protocols", on.join(", ")),
        ("cipher suites", suites.join("; ")),
        ("groups", groups.join("; ")),
        (
            "certificate",
            r.certificate
                .as_ref()
                .map_or_else(|| "none".into(), |c| format!("serial {}", c.chain[0].serial)),
        ),
        ("findings", findings.join(", ")),
    ]
}

impl MultiReport {
    /// The reports and their differences.
    pub fn new(target: String, addresses: Vec<AddressResult>) -> Self {
        let mut differences: Vec<String> = addresses
            .iter()
            .filter_map(|a| {
                a.error
                    .as_ref()
                    .map(|e| format!("{} could not be scanned: {e}", a.address))
            })
            .collect();
        let scanned: Vec<(&str, Vec<(&'static str, String)>)> = addresses
            .iter()
            .filter_map(|a| a.report.as_ref().map(|r| (a.address.as_str(), aspects(r))))
            .collect();
        if let Some((_, first)) = scanned.first() {
            for (i, (aspect, _)) in first.iter().enumerate() {
                let values: Vec<String> = scanned.iter().map(|(addr, a)| format!("{addr}: {}", a[i].1)).collect();
                if scanned.iter().any(|(_, a)| a[i].1 != first[i].1) {
                    differences.push(format!("{aspect} differ: {}", values.join(" | ")));
                }
            }
        }
        Self {
            schema: SCHEMA,
            target,
            addresses,
            differences,
        }
    }

    /// 2 when an address could not be scanned; else 1 when the addresses differ or one has
    /// findings at `fail_on`; else the worst of the addresses' codes.
    pub fn exit_code(&self, fail_on: Severity, allow_inconclusive: bool) -> i32 {
        if self.addresses.iter().any(|a| a.error.is_some()) {
            return 2;
        }
        let worst = self
            .addresses
            .iter()
            .filter_map(|a| a.report.as_ref())
            .map(|r| r.exit_code(fail_on, allow_inconclusive))
            .collect::<Vec<_>>();
        if worst.contains(&1) || !self.differences.is_empty() {
            1
        } else {
            worst.into_iter().max().unwrap_or(0)
        }
    }

    /// Every address's table, then the comparison.
    pub fn table(&self) -> String {
        let mut o = String::new();
        for a in &self.addresses {
            match (&a.report, &a.error) {
                (Some(r), _) => o.push_str(&r.table()),
                (None, Some(e)) => {
                    let _ = writeln!(o, "tlsward scan {} ({}): could not scan: {e}", self.target, a.address);
                }
                _ => {}
            }
            o.push('\n');
        }
        let _ = writeln!(o, "Across {} addresses", self.addresses.len());
        if self.differences.is_empty() {
            let _ = writeln!(o, "  every address serves the same");
        }
        for d in &self.differences {
            let _ = writeln!(o, "  {d}");
        }
        o
    }
}
