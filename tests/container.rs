//! The container image of `make image`, run with podman the way the chart runs it: UID 65532,
//! read-only root filesystem, every capability dropped, no privilege escalation, the Secrets
//! bind-mounted read-only in kubelet's `..data` layout, the host's network (the test
//! PostgreSQL is on 127.0.0.1).
//!
//! podman uses the project's `image/containers.conf` (runc, cgroupfs, no default ulimits).
//! The image is `TLSWARD_IMAGE`, by default `localhost/tlsward:<version>`; `make test` builds
//! it first. When podman cannot run a container on this machine at all, every test here is
//! skipped with the reason printed, unless `TLSWARD_REQUIRE_CONTAINERS=1` (CI), where that is
//! a failure.

use tlsward_testkit as support;

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use support::{free_port, kubelet, new_server_cert, postgres, serial_of, served_serial};
use tlsward::pki::{Issued, LeafSpec};

fn image() -> String {
    std::env::var("TLSWARD_IMAGE").unwrap_or_else(|_| format!("localhost/tlsward:{}", env!("CARGO_PKG_VERSION")))
}

fn podman() -> Command {
    let mut c = Command::new("podman");
    c.env(
        "CONTAINERS_CONF",
        Path::new(env!("CARGO_MANIFEST_DIR")).join("image/containers.conf"),
    );
    c
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("run podman");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(cmd: &mut Command) -> String {
    String::from_utf8_lossy(&run(cmd).stdout).trim().to_string()
}

/// Why podman cannot run containers here, or `None` when it can.
fn podman_unavailable() -> Option<String> {
    match Command::new("podman")
        .arg("info")
        .env(
            "CONTAINERS_CONF",
            Path::new(env!("CARGO_MANIFEST_DIR")).join("image/containers.conf"),
        )
        .output()
    {
        Err(e) => Some(format!("podman could not be started: {e}")),
        Ok(o) if !o.status.success() => Some(format!(
            "`podman info` failed: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Ok(_) => None,
    }
}

/// True when the tests can run; false (and the reason printed) when podman cannot run at all.
/// A missing image is a failure: `make image` builds it.
fn ready() -> bool {
    static CHECK: OnceLock<Option<String>> = OnceLock::new();
    if let Some(reason) = CHECK.get_or_init(podman_unavailable) {
        assert!(
            std::env::var("TLSWARD_REQUIRE_CONTAINERS").as_deref() != Ok("1"),
            "TLSWARD_REQUIRE_CONTAINERS=1 but {reason}"
        );
        eprintln!("skipped: {reason}");
        return false;
    }
    let exists = podman().args(["image", "exists", &image()]).status().unwrap();
    assert!(exists.success(), "image {} not found: run `make image` first", image());
    true
}

/// The Secrets of one container: kubelet-style directories on the host, readable by UID
/// 65532 (as `defaultMode` and `fsGroup` make them in a pod).
struct Mounts {
    root: tempfile::TempDir,
}

impl Mounts {
    fn new() -> Self {
        let root = tempfile::Builder::new().prefix("tlsward-ctr-").tempdir().unwrap();
        std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let m = Self { root };
        let pg = postgres();
        m.write_tls(&new_server_cert());
        let client = pg.ca.issue(&LeafSpec::client("app")).unwrap();
        kubelet::write(
            &m.dir("db"),
            &[
                ("tls.crt", client.cert_pem.as_bytes()),
                ("tls.key", client.key_pem.as_bytes()),
                ("ca.crt", pg.ca.cert_pem.as_bytes()),
            ],
        );
        let key = std::fs::read(pg.token_dir.join("k1")).unwrap();
        kubelet::write(&m.dir("tokens"), &[("k1", &key)]);
        m
    }

    fn dir(&self, name: &str) -> PathBuf {
        self.root.path().join(name)
    }

    fn write_tls(&self, cert: &Issued) {
        kubelet::write(
            &self.dir("tls"),
            &[
                ("tls.crt", cert.cert_pem.as_bytes()),
                ("tls.key", cert.key_pem.as_bytes()),
                ("ca.crt", postgres().ca.cert_pem.as_bytes()),
            ],
        );
    }

    /// `-v` arguments: every directory read-only under /mnt.
    fn volumes(&self) -> Vec<String> {
        ["tls", "db", "tokens"]
            .iter()
            .flat_map(|n| ["-v".to_string(), format!("{}:/mnt/{n}:ro", self.dir(n).display())])
            .collect()
    }
}

/// The flags the chart gives a container (`securityContext` of the Deployment).
const HARDENED: [&str; 7] = [
    "--read-only",
    "--user",
    "65532:65532",
    "--cap-drop",
    "ALL",
    "--security-opt",
    "no-new-privileges",
];

/// The drain delay the containers run with.
const DRAIN_DELAY_S: f64 = 2.0;

/// The arguments of `serve` (or `check-config`) against the test PostgreSQL.
fn serve_args(db: &str, tls_port: u16, admin_port: u16) -> Vec<String> {
    let dsn = format!(
        "postgresql://app@localhost:{}/{db}?sslmode=verify-full&sslrootcert=/mnt/db/ca.crt&sslcert=/mnt/db/tls.crt&sslkey=/mnt/db/tls.key",
        postgres().port
    );
    [
        "--listen",
        &format!("127.0.0.1:{tls_port}"),
        "--admin-listen",
        &format!("127.0.0.1:{admin_port}"),
        "--tls-dir",
        "/mnt/tls",
        "--token-key-dir",
        "/mnt/tokens",
        "--db-url",
        &dsn,
        "--kube-events",
        "off",
        "--shutdown-grace",
        "10s",
        "--drain-delay",
        "2s",
    ]
    .map(String::from)
    .to_vec()
}

/// A running `serve` container, removed when dropped.
struct Served {
    name: String,
    tls_port: u16,
    admin_port: u16,
    mounts: Mounts,
}

impl Served {
    fn start(mounts: Mounts) -> Self {
        let name = support::unique("tlsward-ctr-");
        let (tls_port, admin_port) = (free_port(), free_port());
        let db = postgres().create_db();
        let mut cmd = podman();
        cmd.args(["run", "-d", "--name", &name, "--network", "host"])
            .args(HARDENED)
            .args(mounts.volumes())
            .arg(image())
            .arg("serve")
            .args(serve_args(&db, tls_port, admin_port));
        run(&mut cmd);
        Self {
            name,
            tls_port,
            admin_port,
            mounts,
        }
    }

    fn inspect(&self, format: &str) -> String {
        stdout(podman().args(["inspect", "--format", format, &self.name]))
    }

    fn logs(&self) -> String {
        let out = podman().args(["logs", &self.name]).output().unwrap();
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    async fn readyz(&self) -> Option<u16> {
        let url = format!("http://127.0.0.1:{}/readyz", self.admin_port);
        reqwest::get(url).await.ok().map(|r| r.status().as_u16())
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.readyz().await != Some(200) {
            assert!(
                Instant::now() < deadline,
                "container never became ready; logs:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = podman().args(["rm", "-f", "-t", "0", &self.name]).output();
    }
}

/// A field of `/proc/PID/status` of the container's process, seen from the host.
fn proc_status(pid: &str, field: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
        .trim()
        .to_string()
}

#[test]
fn image_runs_version_and_check_config_as_the_chart_runs_it() {
    if !ready() {
        return;
    }
    let version = stdout(
        podman()
            .args(["run", "--rm"])
            .args(HARDENED)
            .arg(image())
            .arg("--version"),
    );
    assert_eq!(version, format!("tlsward {}", env!("CARGO_PKG_VERSION")));
    let config = stdout(podman().args([
        "image",
        "inspect",
        "--format",
        "{{.Config.User}} {{json .Config.Entrypoint}}",
        &image(),
    ]));
    assert_eq!(config, r#"65532:65532 ["/usr/local/bin/tlsward"]"#);
    let mounts = Mounts::new();
    let db = postgres().create_db();
    let out = run(podman()
        .args(["run", "--rm", "--network", "host"])
        .args(HARDENED)
        .args(mounts.volumes())
        .arg(image())
        .arg("check-config")
        .args(serve_args(&db, free_port(), free_port())));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("/mnt/tls"),
        "check-config output names the mounted directory: {text}"
    );
}

#[tokio::test]
async fn serve_process_is_non_root_without_capabilities_on_a_read_only_root() {
    if !ready() {
        return;
    }
    let s = Served::start(Mounts::new());
    s.wait_ready().await;
    let pid = s.inspect("{{.State.Pid}}");
    assert_eq!(
        proc_status(&pid, "Uid").split_whitespace().collect::<Vec<_>>(),
        ["65532"; 4]
    );
    assert_eq!(
        proc_status(&pid, "Gid").split_whitespace().collect::<Vec<_>>(),
        ["65532"; 4]
    );
    for caps in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert_eq!(proc_status(&pid, caps), "0000000000000000", "{caps}");
    }
    assert_eq!(proc_status(&pid, "NoNewPrivs"), "1");
    // The mount at / of the process: its options start with "ro".
    let mountinfo = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap();
    let root = mountinfo
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f[4] == "/")
        .expect("a root mount");
    assert!(root[5].split(',').any(|o| o == "ro"), "root mount options {}", root[5]);
}

#[tokio::test]
async fn serve_in_container_is_ready_and_scans_clean() {
    if !ready() {
        return;
    }
    let s = Served::start(Mounts::new());
    s.wait_ready().await;
    let out = tokio::process::Command::new(support::bin())
        .args([
            "scan",
            &format!("localhost:{}", s.tls_port),
            "--json",
            "--fail-on",
            "low",
        ])
        .arg("--ca")
        .arg(&postgres().ca_file)
        .output()
        .await
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{report:#} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let accepted: Vec<&str> = report["protocols"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, on)| on.as_bool() == Some(true))
        .map(|(p, _)| p.as_str())
        .collect();
    assert_eq!(accepted, ["TLSv1.2", "TLSv1.3"]);
    assert_eq!(report["findings"].as_array().unwrap().len(), 0, "{report:#}");
}

#[tokio::test]
async fn container_serves_a_kubelet_swapped_cert_without_restart() {
    if !ready() {
        return;
    }
    let s = Served::start(Mounts::new());
    s.wait_ready().await;
    let started = s.inspect("{{.State.StartedAt}} {{.State.Pid}} {{.RestartCount}}");
    let next = new_server_cert();
    s.mounts.write_tls(&next);
    let want = serial_of(&next.cert_pem);
    let deadline = Instant::now() + Duration::from_secs(15);
    while served_serial(s.tls_port).await.as_deref() != Ok(want.as_str()) {
        assert!(
            Instant::now() < deadline,
            "new serial never served; logs:\n{}",
            s.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        s.inspect("{{.State.StartedAt}} {{.State.Pid}} {{.RestartCount}}"),
        started
    );
}

#[tokio::test]
async fn podman_stop_under_load_serves_through_the_drain_delay_and_exits_zero() {
    if !ready() {
        return;
    }
    let s = Served::start(Mounts::new());
    s.wait_ready().await;
    let t0 = Instant::now();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let out: support::Outcomes = Default::default();
    let ready_out: support::Outcomes = Default::default();
    let mut tasks: Vec<_> = [true, false]
        .into_iter()
        .map(|keepalive| support::request_loop(s.tls_port, "/", keepalive, t0, stop.clone(), out.clone()))
        .collect();
    let readyz = format!("http://127.0.0.1:{}/readyz", s.admin_port);
    tasks.push(support::readyz_loop(readyz, t0, stop.clone(), ready_out.clone()));
    tokio::time::sleep(Duration::from_millis(500)).await;
    // SIGTERM, then SIGKILL after 20 s: an exit 0 before that is the drain's own.
    let term_at = t0.elapsed().as_secs_f64();
    let name = s.name.clone();
    tokio::task::spawn_blocking(move || run(podman().args(["stop", "-t", "20", &name])))
        .await
        .unwrap();
    let took = t0.elapsed().as_secs_f64() - term_at;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(s.inspect("{{.State.ExitCode}}"), "0", "logs:\n{}", s.logs());
    assert!(
        (DRAIN_DELAY_S..DRAIN_DELAY_S + 10.0).contains(&took),
        "stop took {took:.2} s (drain 2 s, grace 10 s)"
    );
    support::assert_drained(&out, &ready_out, term_at, term_at + DRAIN_DELAY_S - 0.1, 20);
    assert!(s.logs().contains("stopped"), "logs:\n{}", s.logs());
}

/// Everything in the image but directories (paths without a leading `/`), from the tar
/// stream of `podman export` of a container that never ran.
fn image_files() -> BTreeSet<String> {
    let name = support::unique("tlsward-files-");
    run(podman().args(["create", "--name", &name, &image()]));
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("fs.tar");
    let exported = podman()
        .args(["export", "-o"])
        .arg(&archive)
        .arg(&name)
        .status()
        .unwrap();
    let _ = podman().args(["rm", &name]).output();
    assert!(exported.success());
    let list = Command::new("tar").arg("-tf").arg(&archive).output().unwrap();
    assert!(list.status.success());
    String::from_utf8(list.stdout)
        .unwrap()
        .lines()
        .filter(|p| !p.ends_with('/'))
        .map(|p| p.trim_start_matches("./").to_string())
        .collect()
}

/// Copies one file out of the image (through a container that never runs) into `dir`.
fn copy_from_image(path: &str, dir: &Path) -> PathBuf {
    let name = support::unique("tlsward-cp-");
    run(podman().args(["create", "--name", &name, &image()]));
    let target = dir.join(Path::new(path).file_name().unwrap());
    let copied = podman()
        .arg("cp")
        .arg(format!("{name}:{path}"))
        .arg(&target)
        .output()
        .unwrap();
    let _ = podman().args(["rm", &name]).output();
    assert!(copied.status.success(), "{}", String::from_utf8_lossy(&copied.stderr));
    target
}

#[test]
fn image_holds_only_the_binary_its_libraries_ca_roots_and_passwd() {
    if !ready() {
        return;
    }
    let files = image_files();
    // The libraries are what ldd lists for the binary in the image.
    let dir = tempfile::tempdir().unwrap();
    let bin = copy_from_image("/usr/local/bin/tlsward", dir.path());
    let ldd = String::from_utf8(Command::new("ldd").arg(&bin).output().unwrap().stdout).unwrap();
    let libs = ldd.lines().filter_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        match f.as_slice() {
            [_, "=>", path, ..] if path.starts_with('/') => Some(path.to_string()),
            [path, ..] if path.starts_with('/') => Some(path.to_string()),
            _ => None,
        }
    });
    let mut want: BTreeSet<String> = libs.map(|p| p.trim_start_matches('/').to_string()).collect();
    assert!(want.iter().any(|l| l.contains("libc.so")), "ldd found no libc: {ldd}");
    want.extend(
        [
            "usr/local/bin/tlsward",
            "etc/ssl/certs/ca-certificates.crt",
            "etc/passwd",
        ]
        .map(String::from),
    );
    assert_eq!(
        files, want,
        "the image holds exactly the binary, its libraries, CA roots and passwd"
    );
}

#[test]
fn image_passwd_has_only_the_nonroot_user() {
    if !ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let passwd = std::fs::read_to_string(copy_from_image("/etc/passwd", dir.path())).unwrap();
    assert_eq!(passwd, "nonroot:x:65532:65532:nonroot:/:/sbin/nologin\n");
}
