//! `tlsward scan` as a command: the arguments to [`ScanOptions`], the scan (one address, or
//! every address with `--all-addresses`), the outputs (table or JSON on stdout, SARIF and
//! JUnit files) and the exit code.

use std::process::ExitCode;

use anyhow::Context;

use super::report::{MultiReport, Report};
use super::{ScanOptions, export, policy};
use crate::cli::ScanArgs;

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
