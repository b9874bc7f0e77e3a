//! The tlsward binary in a child process: started on loopback ports, its stderr collected line
//! by line, signalled and killed when dropped.

use std::time::Duration;

use crate::bin;
use crate::pg::postgres;

/// Sends SIGTERM to process `pid`.
pub fn sigterm(pid: u32) {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -TERM {pid}: {status:?}");
}

/// A process's stdout and stderr, for a failure message.
pub fn output_text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Collects a child's stderr, line by line, into a shared string.
pub fn collect_log(stderr: tokio::process::ChildStderr) -> std::sync::Arc<std::sync::Mutex<String>> {
    collect(stderr).0
}

/// [`collect_log`], and the task that ends when the stream does.
fn collect(
    stderr: tokio::process::ChildStderr,
) -> (std::sync::Arc<std::sync::Mutex<String>>, tokio::task::JoinHandle<()>) {
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let sink = log.clone();
    let reader = tokio::spawn(async move {
        use tokio::io::AsyncBufReadExt;
        let mut lines = tokio::io::BufReader::new(stderr).lines();
        while let Ok(Some(l)) = lines.next_line().await {
            sink.lock().unwrap().push_str(&(l + "\n"));
        }
    });
    (log, reader)
}

/// The binary serving in a child process on ephemeral ports it chose; its log is collected
/// line by line.
pub struct Child {
    /// The process (killed when dropped).
    pub process: tokio::process::Child,
    /// Everything it wrote to stderr so far.
    pub log: std::sync::Arc<std::sync::Mutex<String>>,
    /// The TLS port (0 for `db-proxy`, which has none).
    pub port: u16,
    /// `http://127.0.0.1:ADMIN`.
    pub admin: String,
}

/// Starts `tlsward serve` with the test PKI, `db_url` and `extra`, and waits until it is
/// ready.
pub async fn spawn_serve(db_url: &str, extra: &[&str]) -> Child {
    let pg = postgres();
    let mut args: Vec<std::ffi::OsString> = vec!["--tls-dir".into(), pg.server_dir.clone().into()];
    args.extend(["--token-key-dir".into(), pg.token_dir.clone().into()]);
    args.extend(["--db-url", db_url].map(Into::into));
    if !extra.contains(&"--drain-delay") {
        args.extend(["--drain-delay", "0s"].map(Into::into));
    }
    args.extend(extra.iter().map(Into::into));
    let child = spawn_child("serve", &args).await;
    let ready = format!("{}/readyz", child.admin);
    crate::assert_eventually!(
        reqwest::get(&ready).await.map(|r| r.status() == 200).unwrap_or(false),
        Duration::from_secs(20),
        "child never became ready: {}",
        child.log.lock().unwrap()
    );
    child
}

/// `tlsward SUBCOMMAND` in a child process on ephemeral loopback ports it binds itself (port 0)
/// and reports in its "serving" log line, without Kubernetes Events, with `args`; its log is
/// collected line by line (text, at info: `args` must not change `--log` or `--log-format`).
async fn spawn_child(subcommand: &str, args: &[std::ffi::OsString]) -> Child {
    let mut command = tokio::process::Command::new(bin());
    command.arg(subcommand);
    // `db-proxy` has no HTTPS listener.
    if subcommand != "db-proxy" {
        command.args(["--listen", "127.0.0.1:0"]);
    }
    let mut process = command
        .args(["--admin-listen", "127.0.0.1:0"])
        .args(["--kube-events", "off"])
        .args(args)
        .env("TLSWARD_LOG", "info")
        .env("TLSWARD_LOG_FORMAT", "text")
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let (log, reader) = collect(process.stderr.take().unwrap());
    crate::assert_eventually!(
        logged_addr(&log.lock().unwrap(), "admin_addr").is_some() || !matches!(process.try_wait(), Ok(None)),
        Duration::from_secs(20),
        "tlsward {subcommand} never said where it serves: {}",
        log.lock().unwrap()
    );
    if let Ok(Some(status)) = process.try_wait() {
        // Its whole log: the rest may still be in the pipe.
        let _ = tokio::time::timeout(Duration::from_secs(5), reader).await;
        panic!("tlsward {subcommand} exited ({status}): {}", log.lock().unwrap());
    }
    let text = log.lock().unwrap().clone();
    let admin = logged_addr(&text, "admin_addr").expect("waited for above");
    Child {
        process,
        port: logged_addr(&text, "tls_addr").map_or(0, |a| a.port()),
        admin: format!("http://{admin}"),
        log,
    }
}

/// The address `field=ADDR` of the first "serving" line of a log.
fn logged_addr(log: &str, field: &str) -> Option<std::net::SocketAddr> {
    let line = log.lines().find(|l| l.contains("serving") && l.contains(field))?;
    let value = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{field}=")))?;
    value.trim_matches('"').parse().ok()
}

/// Starts `tlsward db-proxy`, or `tlsward proxy` with the database proxy on (see
/// [`spawn_child`]), with `args` (--db-url, --db-proxy-listen, and for `proxy` the upstream and
/// --tls-dir, …), and waits until the database proxy listens.
pub async fn spawn_db_proxy(subcommand: &str, args: &[std::ffi::OsString]) -> Child {
    let mut all: Vec<std::ffi::OsString> = ["--drain-delay", "0s"].map(Into::into).into();
    all.extend_from_slice(args);
    let child = spawn_child(subcommand, &all).await;
    crate::assert_eventually!(
        child.log.lock().unwrap().contains("database proxy listening"),
        Duration::from_secs(20),
        "the database proxy never listened: {}",
        child.log.lock().unwrap()
    );
    child
}
