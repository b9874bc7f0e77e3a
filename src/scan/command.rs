//! `tlsward scan` as a command: the arguments to [`ScanOptions`], the scan (one address, or
//! every address with `--all-addresses`), the outputs (table or JSON on stdout, SARIF and
//! JUnit files) and the exit code.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use super::report::{MultiReport, Report};
use super::{ScanOptions, export, policy};

/// Arguments of `scan`.
#[derive(Debug, Args)]
pub struct ScanArgs {
    /// The endpoint, HOST:PORT (IPv6 as [::1]:443).
    pub target: String,
    /// SNI to send (default: the host, when it is a name).
    #[arg(long)]
    pub sni: Option<String>,
    /// Speak the protocol's STARTTLS first (postgres: the PostgreSQL/CockroachDB SSLRequest).
    #[arg(long, value_enum)]
    pub starttls: Option<super::probe::Starttls>,
    /// Print the report as JSON (schema tlsward.scan/v2).
    #[arg(long)]
    pub json: bool,
    /// Exit 1 when a finding is at or above this severity.
    #[arg(long, value_enum, default_value = "medium")]
    pub fail_on: super::report::Severity,
    /// Exit 0 even when a property could not be determined (a probe got no answer); by
    /// default that is exit 2, as a verdict cannot be given.
    #[arg(long)]
    pub allow_inconclusive: bool,
    /// Time limit of each probe.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub timeout: std::time::Duration,
    /// Trust anchors (PEM) for the chain check; default: the system's roots.
    #[arg(long)]
    pub ca: Option<PathBuf>,
    /// Probes in flight at once.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Also judge the endpoint against a cipher policy: `intermediate`, `modern`, or a policy
    /// file in the format `serve` reads; every deviation is a high finding.
    #[arg(long)]
    pub policy: Option<String>,
    /// Also write the findings as SARIF 2.1.0 (for code-scanning UIs) to this file.
    #[arg(long)]
    pub sarif: Option<PathBuf>,
    /// Also write one JUnit XML test case per check to this file.
    #[arg(long)]
    pub junit: Option<PathBuf>,
    /// Scan every address the host resolves to (a load-balanced ingress), and say which
    /// differ; exit 1 when they do.
    #[arg(long)]
    pub all_addresses: bool,
}

/// The scan's options from its arguments; `Err` is the message for a `--policy` that does
/// not load.
fn options(a: &ScanArgs) -> Result<ScanOptions, String> {
    let policy = match a.policy.as_deref() {
        None => None,
        Some(spec) => Some((
            spec.to_string(),
            policy::load(spec).map_err(|e| format!("--policy {spec}: {e}"))?,
        )),
    };
    Ok(ScanOptions {
        target: a.target.clone(),
        sni: a.sni.clone(),
        starttls: a.starttls,
        timeout: a.timeout,
        ca: a.ca.clone(),
        concurrency: a.concurrency,
        progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
        policy,
    })
}

fn write_exports(a: &ScanArgs, reports: &[&Report]) -> anyhow::Result<()> {
    if let Some(path) = &a.sarif {
        let text = serde_json::to_string_pretty(&export::sarif(reports))?;
        std::fs::write(path, text).with_context(|| format!("--sarif {}", path.display()))?;
    }
    if let Some(path) = &a.junit {
        std::fs::write(path, export::junit(reports)).with_context(|| format!("--junit {}", path.display()))?;
    }
    Ok(())
}

/// Runs `tlsward scan`.
pub fn run(a: &ScanArgs) -> anyhow::Result<ExitCode> {
    let opts = match options(a) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("tlsward scan: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let code = if a.all_addresses {
        match rt.block_on(super::scan_all(&opts)) {
            Ok(m) => print_multi(a, &m)?,
            Err(e) => could_not(&e),
        }
    } else {
        match rt.block_on(super::scan(&opts)) {
            Ok(r) => print_one(a, &r)?,
            Err(e) => could_not(&e),
        }
    };
    Ok(ExitCode::from(code))
}

fn could_not(e: &super::ScanError) -> u8 {
    eprintln!("tlsward scan: could not scan: {e}");
    2
}

fn print_one(a: &ScanArgs, r: &Report) -> anyhow::Result<u8> {
    write_exports(a, &[r])?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(r)?);
    } else {
        print!("{}", r.table());
    }
    Ok(r.exit_code(a.fail_on, a.allow_inconclusive) as u8)
}

fn print_multi(a: &ScanArgs, m: &MultiReport) -> anyhow::Result<u8> {
    let reports: Vec<&Report> = m.addresses.iter().filter_map(|x| x.report.as_ref()).collect();
    write_exports(a, &reports)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(m)?);
    } else {
        print!("{}", m.table());
    }
    Ok(m.exit_code(a.fail_on, a.allow_inconclusive) as u8)
}
