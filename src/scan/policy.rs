//! `tlsward scan --policy`: the endpoint judged against a cipher policy in the format `serve`
//! reads (parsed by the same code, [`crate::tls::policy::Policy`]), so that CI can hold the
//! ingress or load balancer in front of the API to the policy the pods serve. Every accepted
//! protocol, suite or group the policy does not allow is a deviation, and so is a missing
//! protocol or group the policy requires (TLS 1.3, which the policy always enables, and the
//! policy's most-preferred group).

use std::collections::BTreeSet;

use super::report::{Finding, Report, Severity};
use crate::tls::policy::{Policy, PolicyErrors, TlsVersion};

/// The policy named on the command line: a profile (`intermediate`, `modern`) or a file.
pub(crate) fn load(spec: &str) -> Result<Policy, PolicyErrors> {
    match spec {
        "intermediate" | "modern" => Policy::from_yaml(&format!("profile: {spec}")),
        path => Policy::from_file(&crate::files::Files::disk(), std::path::Path::new(path)),
    }
}

fn protocols_allowed(p: &Policy) -> BTreeSet<&'static str> {
    match p.min_version {
        TlsVersion::Tls13 => ["TLSv1.3"].into(),
        TlsVersion::Tls12 => ["TLSv1.2", "TLSv1.3"].into(),
    }
}

fn deviation(id: &'static str, title: &'static str, evidence: String) -> Finding {
    Finding::new(id, Severity::High, title, evidence)
}

/// The deviations of `report` from `policy`, one finding per kind.
pub(crate) fn deviations(report: &Report, policy: &Policy) -> Vec<Finding> {
    let mut out = Vec::new();
    let allowed = protocols_allowed(policy);
    let extra: Vec<&str> = report
        .protocols
        .iter()
        .filter(|(p, on)| **on && !allowed.contains(*p))
        .map(|(p, _)| *p)
        .collect();
    if !extra.is_empty() {
        out.push(deviation(
            "policy_protocol",
            "protocol versions the policy does not allow",
            extra.join(", "),
        ));
    }
    if report.protocols.get("TLSv1.3") != Some(&true) {
        out.push(deviation(
            "policy_missing_protocol",
            "TLS 1.3, which the policy requires, is not accepted",
            "no TLS 1.3 ServerHello".into(),
        ));
    }
    let suites: BTreeSet<u16> = policy.cipher_suites.iter().map(|s| u16::from(s.suite())).collect();
    let mut seen = BTreeSet::new();
    let extra: Vec<&str> = report
        .cipher_suites
        .values()
        .flatten()
        .filter(|a| !suites.contains(&a.suite.id) && seen.insert(a.suite.id))
        .map(|a| a.suite.name)
        .collect();
    if !extra.is_empty() {
        out.push(deviation(
            "policy_suite",
            "cipher suites the policy does not allow",
            extra.join(", "),
        ));
    }
    let groups: Vec<u16> = policy.kx_groups.iter().map(|g| u16::from(g.name())).collect();
    let mut seen = BTreeSet::new();
    let offered: Vec<(&'static str, Option<u16>)> = report
        .groups
        .values()
        .flat_map(|l| l.groups.iter())
        .filter(|g| seen.insert(g.name))
        .map(|g| {
            (
                g.name,
                g.id.as_deref()
                    .and_then(|h| u16::from_str_radix(h.trim_start_matches("0x"), 16).ok()),
            )
        })
        .collect();
    let extra: Vec<&str> = offered
        .iter()
        .filter(|(_, id)| id.is_none_or(|id| !groups.contains(&id)))
        .map(|(n, _)| *n)
        .collect();
    if !extra.is_empty() {
        out.push(deviation(
            "policy_group",
            "key-exchange groups the policy does not allow",
            extra.join(", "),
        ));
    }
    if let Some(first) = groups.first()
        && report.protocols.get("TLSv1.3") == Some(&true)
        && !offered.iter().any(|(_, id)| *id == Some(*first))
    {
        let name = super::groups::by_id(*first).map_or("?", |g| g.name);
        out.push(deviation(
            "policy_missing_group",
            "the policy's preferred key-exchange group is not accepted",
            format!("{name} is not among the groups the server accepts"),
        ));
    }
    out
}
