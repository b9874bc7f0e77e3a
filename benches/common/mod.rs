//! Helpers shared by the benchmarks beyond the test kit (`tlsward_testkit`, whose kubelet
//! writer, PostgreSQL and ports they use): percentiles, the machine description and header of
//! result files, and in-process servers started from a command line.

#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

pub fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

pub fn summary(name: &str, mut v: Vec<Duration>) -> String {
    v.sort();
    format!(
        "| {name} | {} | {} | {} | {} | {} |\n",
        v.len(),
        ms(percentile(&v, 0.5)),
        ms(percentile(&v, 0.99)),
        ms(v[0]),
        ms(*v.last().unwrap())
    )
}

pub fn cmd(program: &str, args: &[&str]) -> String {
    std::process::Command::new(program)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|m| m.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// One line describing the machine.
pub fn machine() -> String {
    format!(
        "{} CPUs ({}), {} GiB RAM, kernel {}, {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu_model(),
        mem_gib(),
        cmd("uname", &["-r"]),
        cmd("rustc", &["--version"]),
    )
}

fn mem_gib() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("MemTotal:")
                .and_then(|v| v.trim().trim_end_matches(" kB").parse::<u64>().ok())
        })
        .map_or(0, |kb| (kb + 512 * 1024) / (1024 * 1024))
}

/// The current UTC time, to the second.
pub fn now_utc() -> String {
    let t = time::OffsetDateTime::now_utc();
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// The first lines of a results file: title, when, how to reproduce, and the machine.
pub fn header(title: &str, make_target: &str, bench: &str) -> String {
    format!(
        "# {title}\n\nMeasured by `make {make_target}` (`cargo bench --bench {bench}`) on {} UTC.\n\nMachine: {}; tlsward {} (release profile).\n\n",
        now_utc(),
        machine(),
        env!("CARGO_PKG_VERSION")
    )
}

/// Prints a results file and writes it under `bench/`.
pub fn write_results(name: &str, text: &str) {
    print!("{text}");
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench").join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, text).unwrap();
}

/// The command line of `tlsward SUBCOMMAND` on ephemeral loopback ports, without a drain
/// delay, with `flags` (the rest, as a user would give it).
fn command_line(subcommand: &str, flags: &[&str]) -> tlsward::cli::Command {
    use clap::Parser;
    let mut argv = vec![
        "tlsward",
        subcommand,
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
        "--drain-delay",
        "0s",
    ];
    argv.extend_from_slice(flags);
    tlsward::cli::Cli::parse_from(argv).command
}

/// Starts an in-process `tlsward serve` with `flags`.
pub async fn serve(flags: &[&str]) -> tlsward::server::Running {
    let tlsward::cli::Command::Serve(args) = command_line("serve", flags) else {
        unreachable!("argv starts with serve")
    };
    let (config, snapshot) = tlsward::config::Config::load(&args).expect("bench config");
    tlsward::server::start(config, snapshot)
        .await
        .expect("bench server starts")
}

/// Starts an in-process `tlsward proxy` with `flags`.
pub async fn proxy(flags: &[&str]) -> tlsward::server::Running {
    let tlsward::cli::Command::Proxy(args) = command_line("proxy", flags) else {
        unreachable!("argv starts with proxy")
    };
    let (config, snapshot) = tlsward::config::Config::load_proxy(&args).expect("bench config");
    tlsward::server::start(config, snapshot)
        .await
        .expect("bench proxy starts")
}
