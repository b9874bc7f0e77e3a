//! The scan report for other tools: SARIF 2.1.0 (code-scanning UIs: one rule per check,
//! one result per finding, what could not be determined as tool notifications) and JUnit XML
//! (CI test reports: one test case per check, failed when the check found something, skipped
//! when it could not be determined).

use serde_json::{Value, json};

use super::report::{Finding, Report, Severity};

/// Every check the scanner makes, by finding id, with its title.
pub const CHECKS: [(&str, &str); 28] = [
    ("poodle", "SSLv3 accepted (POODLE)"),
    ("tls10", "TLS 1.0 accepted"),
    ("tls11", "TLS 1.1 accepted"),
    ("beast", "CBC suites on TLS 1.0/SSLv3 (BEAST)"),
    ("cbc_cipher", "CBC suites on TLS 1.1/1.2"),
    ("rc4", "RC4 suites"),
    ("sweet32", "64-bit block ciphers (SWEET32)"),
    ("null_cipher", "NULL suites"),
    ("export_cipher", "EXPORT suites"),
    ("anon_cipher", "anonymous suites"),
    ("no_forward_secrecy", "suites without forward secrecy"),
    ("weak_dh", "Diffie-Hellman group under 2048 bits"),
    ("weak_curve", "elliptic curve under 224 bits"),
    ("no_secure_renegotiation", "no secure renegotiation"),
    ("client_renegotiation", "client-initiated renegotiation accepted"),
    ("no_fallback_scsv", "TLS_FALLBACK_SCSV not honoured"),
    ("no_downgrade_sentinel", "no TLS 1.3 downgrade sentinel"),
    ("cert_expired", "certificate expired"),
    ("cert_expiring_soon", "certificate expires within 30 days"),
    ("cert_not_yet_valid", "certificate not yet valid"),
    ("hostname_mismatch", "certificate does not name the host"),
    ("cert_wrong_usage", "certificate not usable for server authentication"),
    ("self_signed", "self-signed certificate"),
    ("untrusted_root", "chain ends in an untrusted root"),
    ("incomplete_chain", "incomplete chain"),
    ("untrusted_chain", "certificate chain not trusted"),
    ("hsts_missing", "no HSTS header"),
    ("hsts_short", "HSTS max-age below 180 days"),
];

/// The checks of `--policy`.
const POLICY_CHECKS: [(&str, &str); 5] = [
    ("policy_protocol", "protocol versions the policy does not allow"),
    ("policy_missing_protocol", "TLS 1.3, which the policy requires"),
    ("policy_suite", "cipher suites the policy does not allow"),
    ("policy_group", "key-exchange groups the policy does not allow"),
    ("policy_missing_group", "the policy's preferred key-exchange group"),
];

fn checks(report: &Report) -> Vec<(&'static str, &'static str)> {
    let mut all = CHECKS.to_vec();
    if report.policy.is_some() {
        all.extend(POLICY_CHECKS);
    }
    all
}

fn level(s: Severity) -> &'static str {
    match s {
        Severity::High => "error",
        Severity::Medium => "warning",
        Severity::Low => "note",
    }
}

fn result(f: &Finding, report: &Report) -> Value {
    let location = format!("{} ({})", report.target, report.address);
    json!({
        "ruleId": f.id,
        "level": level(f.severity),
        "message": {"text": format!("{}: {}", f.title, f.evidence)},
        "locations": [{"logicalLocations": [{"fullyQualifiedName": location, "kind": "resource"}]}],
    })
}

/// The reports (one per address scanned) as one SARIF 2.1.0 log.
pub fn sarif(reports: &[&Report]) -> Value {
    let Some(first) = reports.first() else {
        return json!({"version": "2.1.0", "runs": []});
    };
    let rules: Vec<Value> = checks(first)
        .iter()
        .map(|(id, title)| json!({"id": id, "name": id, "shortDescription": {"text": title}}))
        .collect();
    let notifications: Vec<Value> = reports
        .iter()
        .flat_map(|r| r.inconclusive.iter().map(move |i| (r, i)))
        .map(|(r, i)| json!({"level": "warning", "message": {"text": format!("not determined on {}: {}: {}", r.address, i.property, i.reason)}}))
        .collect();
    let results: Vec<Value> = reports
        .iter()
        .flat_map(|r| r.findings.iter().map(move |f| result(f, r)))
        .collect();
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "tlsward scan",
                "version": env!("CARGO_PKG_VERSION"),
                "rules": rules,
            }},
            "invocations": [{
                "executionSuccessful": true,
                "toolExecutionNotifications": notifications,
            }],
            "results": results,
        }],
    })
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The reports as JUnit XML: one test suite per address, with one test case per check and
/// one skipped case per property that could not be determined.
pub fn junit(reports: &[&Report]) -> String {
    let suites: String = reports.iter().map(|r| junit_suite(r)).collect();
    format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n{suites}</testsuites>\n")
}

fn junit_suite(report: &Report) -> String {
    let checks = checks(report);
    let mut cases = String::new();
    let mut failures = 0;
    for (id, title) in &checks {
        let name = xml_escape(&format!("{id}: {title}"));
        match report.findings.iter().find(|f| f.id == *id) {
            Some(f) => {
                failures += 1;
                cases.push_str(&format!(
                    "    <testcase classname=\"tlsward.scan\" name=\"{name}\"><failure type=\"{:?}\" message=\"{}\">{}</failure></testcase>\n",
                    f.severity,
                    xml_escape(f.title),
                    xml_escape(&f.evidence)
                ));
            }
            None => cases.push_str(&format!("    <testcase classname=\"tlsward.scan\" name=\"{name}\"/>\n")),
        }
    }
    for i in &report.inconclusive {
        cases.push_str(&format!(
            "    <testcase classname=\"tlsward.scan\" name=\"{}\"><skipped message=\"{}\"/></testcase>\n",
            xml_escape(&format!("determined: {}", i.property)),
            xml_escape(&i.reason)
        ));
    }
    format!(
        "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" skipped=\"{}\" time=\"{:.3}\">\n{cases}  </testsuite>\n",
        xml_escape(&format!("tlsward scan {} ({})", report.target, report.address)),
        checks.len() + report.inconclusive.len(),
        report.inconclusive.len(),
        report.duration_ms as f64 / 1000.0
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The finding ids written in a source file: string literals followed by `, Severity::`
    /// or preceded by `id: ` or `deviation(`.
    fn finding_ids(src: &str) -> Vec<&str> {
        let mut ids = Vec::new();
        let mut rest = src;
        while let Some(open) = rest.find('"') {
            let Some(len) = rest[open + 1..].find('"') else { break };
            let lit = &rest[open + 1..open + 1 + len];
            let after = rest[open + 2 + len..].trim_start_matches(|c: char| c == ',' || c.is_whitespace());
            let before = rest[..open].trim_end();
            let is_id = lit
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
                && !lit.is_empty();
            if is_id && (after.starts_with("Severity::") || before.ends_with("id:") || before.ends_with("deviation(")) {
                ids.push(lit);
            }
            rest = &rest[open + 2 + len..];
        }
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    #[test]
    fn every_finding_the_scanner_makes_is_a_listed_check() {
        let mut ids = finding_ids(include_str!("mod.rs"));
        ids.extend(finding_ids(include_str!("findings.rs")));
        assert!(ids.len() >= 25, "{ids:?}");
        for id in ids {
            assert!(CHECKS.iter().any(|(c, _)| *c == id), "{id} is not in CHECKS");
        }
        for id in finding_ids(include_str!("policy.rs")) {
            assert!(
                POLICY_CHECKS.iter().any(|(c, _)| *c == id),
                "{id} is not in POLICY_CHECKS"
            );
        }
        assert_eq!(finding_ids(include_str!("policy.rs")).len(), POLICY_CHECKS.len());
    }

    #[test]
    fn xml_is_escaped() {
        assert_eq!(xml_escape(r#"<a href="x">&"#), "&lt;a href=&quot;x&quot;&gt;&amp;");
    }
}
