//! The Kubernetes group of every command → [`KubeSettings`]: the Pod's identity for Events and
//! the Secrets watched through the API, each mapped to one of the source directories.

use std::path::PathBuf;

use super::flags::{flag, flag_is, non_empty};
use crate::cli::KubeArgs;
use crate::files::normalize;
use crate::k8s::{KubeMode, KubeSettings, PodRef, WatchSecrets};

/// Checks the Kubernetes flags: Events need the Pod's name and namespace when forced on, and
/// each --kube-secret must name a valid Secret and one of the source directories.
pub(super) fn kube_settings(a: &KubeArgs, source_dirs: Option<&[PathBuf]>, p: &mut Vec<String>) -> KubeSettings {
    let (events, watch, secrets) = (a.kube_events, a.watch_secrets, &a.kube_secrets);
    let pod = match (non_empty(a.pod_name.clone()), non_empty(a.pod_namespace.clone())) {
        (Some(name), Some(namespace)) => Some(PodRef {
            name,
            namespace,
            uid: non_empty(a.pod_uid.clone()),
        }),
        _ => None,
    };
    let forced = if events == KubeMode::On {
        Some(flag_is("kube_events", "on"))
    } else if watch == WatchSecrets::Api {
        Some(flag_is("watch_secrets", "api"))
    } else {
        None
    };
    if let (Some(forced), None) = (forced, &pod) {
        p.push(format!(
            "{forced} needs the Pod's identity: set POD_NAME and POD_NAMESPACE (--pod-name, --pod-namespace; the chart sets them from the downward API)"
        ));
    }
    let list = secret_mounts(secrets, source_dirs, p);
    let (ks, ws) = (flag("kube_secrets"), flag_is("watch_secrets", "api"));
    match watch {
        WatchSecrets::Api if list.is_empty() => {
            p.push(format!("{ws} needs at least one {ks} SECRET=DIR"));
        }
        WatchSecrets::Files if !list.is_empty() => {
            p.push(format!("{ks} is only used with {ws}; add it or drop --kube-secret"));
        }
        _ => {}
    }
    KubeSettings {
        events,
        pod,
        secrets: if watch == WatchSecrets::Api { list } else { Vec::new() },
    }
}

/// The `--kube-secret SECRET=DIR` items: each a valid Secret name and one of the source
/// directories, no directory twice.
pub(super) fn secret_mounts(items: &[String], dirs: Option<&[PathBuf]>, p: &mut Vec<String>) -> Vec<(String, PathBuf)> {
    let ks = flag("kube_secrets");
    let normalized: Option<Vec<_>> = dirs.map(|d| d.iter().map(|d| normalize(d)).collect());
    let mut list: Vec<(String, PathBuf)> = Vec::new();
    for item in items.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        let Some((secret, dir)) = item.split_once('=').map(|(s, d)| (s.trim(), PathBuf::from(d.trim()))) else {
            p.push(format!(
                "{ks} {item:?}: write SECRET=DIR, e.g. web-tls=/etc/tlsward/tls"
            ));
            continue;
        };
        if !crate::k8s::valid_name(secret) {
            p.push(format!(
                "{ks} {item:?}: {secret:?} is not a Secret name (lower-case letters, digits, '-' and '.')"
            ));
        }
        // Without the source directories (a required one is not set, which is reported) the
        // directory cannot be checked.
        if let (Some(normalized), Some(dirs)) = (&normalized, dirs)
            && !normalized.contains(&normalize(&dir))
        {
            p.push(format!(
                "{ks} {item:?}: {} is not a source directory; use one of: {}",
                dir.display(),
                list_dirs(dirs)
            ));
        }
        if list.iter().any(|(_, d)| normalize(d) == normalize(&dir)) {
            p.push(format!("{ks} {item:?}: {} is given twice", dir.display()));
        }
        list.push((secret.to_string(), dir));
    }
    list
}

pub(super) fn list_dirs(dirs: &[PathBuf]) -> String {
    if dirs.is_empty() {
        return "(none: no certificate, key, policy or CA file is given)".into();
    }
    dirs.iter()
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
