//! The real test cluster (`scripts/cluster/cluster.sh`: etcd, kube-apiserver,
//! kube-controller-manager, kube-scheduler, a kubelet on containerd/runc, the CNI bridge,
//! kube-proxy, CoreDNS and cert-manager), seen from a test.
//!
//! One cluster serves a whole test binary. When `TLSWARD_CLUSTER_DIR` names a running one
//! (`cluster.sh run DIR CMD…`, what `make test` does), it is used and its holder tears it down
//! after the run; otherwise the first test to ask starts `cluster.sh up` with a pipe on its
//! standard input, and when the test process ends, however it ends, the pipe closes and the
//! cluster is torn down. Each test takes a namespace of its own ([`Cluster::namespace`]) and
//! reaches Pods through `kubectl port-forward` ([`Cluster::port_forward`]), as users do.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use crate::{repo, script, wait};

/// A running test cluster.
pub struct Cluster {
    dir: PathBuf,
    env: BTreeMap<String, String>,
    /// The standard input of the `cluster.sh up` this process started: the cluster lives as
    /// long as it is open.
    _holder: Mutex<Option<ChildStdin>>,
}

static CLUSTER: OnceLock<Cluster> = OnceLock::new();

/// The test binary's cluster, started on first use.
pub fn cluster() -> &'static Cluster {
    CLUSTER.get_or_init(|| match std::env::var_os("TLSWARD_CLUSTER_DIR") {
        Some(dir) => Cluster::at(PathBuf::from(dir), None),
        None => Cluster::start(),
    })
}

/// The OCI archive of tlsward's image (`make image`): `TLSWARD_IMAGE_ARCHIVE`, else the one in
/// the target directory of the running test binary.
pub fn image_archive() -> PathBuf {
    if let Some(p) = std::env::var_os("TLSWARD_IMAGE_ARCHIVE") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    // target/<profile>/deps/<test binary>
    let target = exe.ancestors().nth(3).expect("a target directory");
    let version = tlsward_version();
    target.join("image").join(format!("tlsward-{version}.oci.tar"))
}

/// The image reference the cluster knows tlsward's image by.
pub fn image_reference() -> String {
    std::env::var("TLSWARD_IMAGE").unwrap_or_else(|_| format!("localhost/tlsward:{}", tlsward_version()))
}

fn tlsward_version() -> String {
    let manifest = std::fs::read_to_string(repo().join("Cargo.toml")).expect("Cargo.toml");
    manifest
        .lines()
        .find_map(|l| l.strip_prefix("version = \""))
        .and_then(|v| v.strip_suffix('"'))
        .expect("a version in Cargo.toml")
        .to_string()
}

impl Cluster {
    fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("tlsward-cluster-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("the cluster's directory");
        let log = std::fs::File::create(dir.join("holder.log")).expect("the holder's log");
        let archive = image_archive();
        assert!(
            archive.is_file(),
            "{} is missing: run `make image` first",
            archive.display()
        );
        let mut child = Command::new("bash")
            .arg(script("cluster/cluster.sh"))
            .arg("up")
            .arg(&dir)
            .env("TLSWARD_IMAGE_ARCHIVE", &archive)
            .env("TLSWARD_IMAGE", image_reference())
            .stdin(Stdio::piped())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("run scripts/cluster/cluster.sh");
        let stdin = child.stdin.take();
        let ready = dir.join("ready");
        wait::until("the test cluster to start", Duration::from_secs(600), || {
            if ready.exists() {
                return Ok(());
            }
            match child.try_wait() {
                Ok(Some(status)) => panic!(
                    "scripts/cluster/cluster.sh up exited ({status}) before the cluster was ready:\n{}",
                    tail(&dir.join("holder.log"), 40)
                ),
                _ => Err(tail(&dir.join("holder.log"), 5)),
            }
        });
        Self::at(dir, stdin)
    }

    fn at(dir: PathBuf, holder: Option<ChildStdin>) -> Self {
        let text = std::fs::read_to_string(dir.join("env"))
            .unwrap_or_else(|e| panic!("{}/env: {e}: is the cluster up?", dir.display()));
        let env = text
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Self {
            dir,
            env,
            _holder: Mutex::new(holder),
        }
    }

    /// A value of the cluster's `env` file (KUBECONFIG, GATEWAY, ETCD, CA, …).
    pub fn var(&self, key: &str) -> &str {
        self.env
            .get(key)
            .unwrap_or_else(|| panic!("{key} is not in {}/env", self.dir.display()))
    }

    /// The admin kubeconfig.
    pub fn kubeconfig(&self) -> &Path {
        Path::new(self.var("KUBECONFIG"))
    }

    /// The bridge's gateway address: the host as Pods see it.
    pub fn gateway(&self) -> &str {
        self.var("GATEWAY")
    }

    /// The cluster's state directory (logs in `logs/`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// kubectl of the cluster's release, as the admin.
    pub fn kubectl(&self) -> Command {
        let mut c = Command::new(self.var("KUBECTL"));
        c.env("KUBECONFIG", self.kubeconfig());
        c
    }

    /// Runs kubectl with `args`; its stdout, or its stderr as the error.
    pub fn try_kubectl(&self, args: &[&str]) -> Result<String, String> {
        output(self.kubectl().args(args))
    }

    /// Runs kubectl with `args` and returns its stdout; panics with its stderr on failure.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        self.try_kubectl(args)
            .unwrap_or_else(|e| panic!("kubectl {}: {e}", args.join(" ")))
    }

    /// `kubectl get … -o json`, parsed.
    pub fn get_json(&self, namespace: &str, what: &[&str]) -> serde_json::Value {
        let mut args = vec!["-n", namespace, "get"];
        args.extend_from_slice(what);
        args.extend_from_slice(&["-o", "json"]);
        serde_json::from_str(&self.kubectl_ok(&args)).expect("kubectl's JSON")
    }

    /// `kubectl apply` of `yaml` in `namespace`.
    pub fn apply(&self, namespace: &str, yaml: &str) {
        let mut child = self
            .kubectl()
            .args(["-n", namespace, "apply", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run kubectl");
        use std::io::Write;
        child.stdin.take().unwrap().write_all(yaml.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "kubectl apply:\n{yaml}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// helm (pinned, from `scripts/k8s-tools/tools.sh helm`) with the admin kubeconfig.
    pub fn helm(&self) -> Command {
        let mut c = Command::new(helm_path());
        c.env("KUBECONFIG", self.kubeconfig());
        c
    }

    /// Runs helm with `args`; its stdout, or stdout and stderr as the error.
    pub fn try_helm(&self, args: &[&str]) -> Result<String, String> {
        output(self.helm().args(args))
    }

    /// `helm install tlsward charts/tlsward --wait` in `namespace`, with tlsward's image as the
    /// cluster knows it and `values` (each `key=value`, as `--set` takes them).
    pub fn install_tlsward(&self, namespace: &str, values: &[&str]) -> Result<String, String> {
        let chart = repo().join("charts/tlsward");
        let reference = image_reference();
        let (repository, tag) = reference.rsplit_once(':').expect("an image reference with a tag");
        let image = [format!("image.repository={repository}"), format!("image.tag={tag}")];
        let mut cmd = self.helm();
        cmd.args(["install", "tlsward"])
            .arg(chart)
            .args(["-n", namespace, "--wait", "--timeout", "3m"]);
        for v in image.iter().map(String::as_str).chain(values.iter().copied()) {
            cmd.args(["--set", v]);
        }
        output(&mut cmd)
    }

    /// A new namespace for one test, deleted when the returned value drops.
    pub fn namespace(&'static self, prefix: &str) -> Namespace {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!("{prefix}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst));
        self.kubectl_ok(&["create", "namespace", &name]);
        // Pods need the namespace's `default` ServiceAccount and the kube-root-ca.crt
        // ConfigMap, which controllers add just after.
        wait::until(
            "the namespace's default ServiceAccount",
            Duration::from_secs(30),
            || {
                self.try_kubectl(&[
                    "-n",
                    &name,
                    "get",
                    "serviceaccount/default",
                    "configmap/kube-root-ca.crt",
                ])
            },
        );
        Namespace { cluster: self, name }
    }

    /// `kubectl port-forward` to `target` (`svc/NAME`, `pod/NAME`) on `port`, from a free port
    /// of 127.0.0.1; ends when the returned value drops.
    pub fn port_forward(&self, namespace: &str, target: &str, port: u16) -> PortForward {
        let mut child = self
            .kubectl()
            .args(["-n", namespace, "port-forward", "--address", "127.0.0.1", target])
            .arg(format!(":{port}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run kubectl port-forward");
        let (tx, rx) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        // kubectl prints a line per connection: read them all, or it blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = line.strip_prefix("Forwarding from 127.0.0.1:") {
                    let local = rest.split_whitespace().next().and_then(|p| p.parse::<u16>().ok());
                    let _ = tx.send(local);
                }
            }
        });
        let local = match rx.recv_timeout(wait::scaled(Duration::from_secs(30))) {
            Ok(Some(p)) => p,
            _ => {
                let _ = child.kill();
                let out = child.wait_with_output().unwrap();
                panic!(
                    "kubectl port-forward {target} :{port} did not start: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        };
        PortForward { child, port: local }
    }

    /// `scripts/cluster/cluster.sh stop DIR NAME`: stops one component (fault tests).
    pub fn stop_component(&self, name: &str) {
        self.cluster_sh("stop", name);
    }

    /// `scripts/cluster/cluster.sh start DIR NAME`: starts a stopped component again.
    pub fn start_component(&self, name: &str) {
        self.cluster_sh("start", name);
    }

    fn cluster_sh(&self, verb: &str, name: &str) {
        let out = Command::new("bash")
            .arg(script("cluster/cluster.sh"))
            .args([verb, self.dir.to_str().unwrap(), name])
            .output()
            .expect("run cluster.sh");
        assert!(
            out.status.success(),
            "cluster.sh {verb} {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A namespace of one test.
pub struct Namespace {
    cluster: &'static Cluster,
    /// Its name.
    pub name: String,
}

impl std::ops::Deref for Namespace {
    type Target = str;
    fn deref(&self) -> &str {
        &self.name
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = self
            .cluster
            .try_kubectl(&["delete", "namespace", &self.name, "--wait=false"]);
    }
}

/// A running `kubectl port-forward`.
pub struct PortForward {
    child: Child,
    /// The local port on 127.0.0.1.
    pub port: u16,
}

impl Drop for PortForward {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn helm_path() -> &'static Path {
    static HELM: OnceLock<PathBuf> = OnceLock::new();
    HELM.get_or_init(|| {
        let out = Command::new("bash")
            .arg(script("k8s-tools/tools.sh"))
            .arg("helm")
            .output()
            .expect("run scripts/k8s-tools/tools.sh helm");
        assert!(
            out.status.success(),
            "tools.sh helm: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
    })
}

/// The stdout of `cmd`, or its stdout and stderr as the error.
pub fn output(cmd: &mut Command) -> Result<String, String> {
    let out: Output = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// The last `n` lines of a file.
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
