//! Helpers shared by the benchmarks: kubelet's `..data` swap in two steps (so the clock can
//! start at the rename), percentiles, and the machine description for result files.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

/// kubelet's AtomicWriter up to the swap: files in a new timestamped dir, `..data_tmp` ready.
pub fn stage(dir: &Path, files: &[(&str, &[u8])], n: usize) -> PathBuf {
    let ts = format!("..bench_{n:05}");
    let ts_dir = dir.join(&ts);
    std::fs::create_dir_all(&ts_dir).unwrap();
    for (name, data) in files {
        std::fs::write(ts_dir.join(name), data).unwrap();
    }
    let _ = std::fs::remove_file(dir.join("..data_tmp"));
    std::os::unix::fs::symlink(&ts, dir.join("..data_tmp")).unwrap();
    ts_dir
}

/// The swap itself (one rename), then the user-visible links and the old dir's removal.
pub fn swap(dir: &Path, files: &[(&str, &[u8])], old: Option<PathBuf>) {
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
    for (name, _) in files {
        let visible = dir.join(name);
        if std::fs::symlink_metadata(&visible).is_err() {
            std::os::unix::fs::symlink(Path::new("..data").join(name), &visible).unwrap();
        }
    }
    if let Some(old) = old {
        std::fs::remove_dir_all(old).unwrap();
    }
}

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

/// Projects `files` into `dir` as kubelet does (stage, then swap), numbering the ts dir `n`.
pub fn kubelet_write(dir: &Path, files: &[(&str, &[u8])], n: usize) {
    let old = std::fs::read_link(dir.join("..data")).ok().map(|p| dir.join(p));
    stage(dir, files, n);
    swap(dir, files, old);
}

/// Runs `scripts/pg.sh` with `args`; its stdout.
pub fn pg(args: &[&str]) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/pg.sh");
    let out = std::process::Command::new("bash")
        .arg(script)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pg.sh {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
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
