//! `--watch-secrets api`: one watch per named Secret, field-selected by name
//! (`fieldSelector=metadata.name=NAME`: a list, then a watch from its resourceVersion), so
//! that a Role limited by `resourceNames` is enough. kube-rs' watcher re-lists on 410 Gone and
//! backs off (0.8 s doubling to 30 s, with jitter) on other errors; a 403 is reported with the
//! RBAC verb that is missing.
//!
//! Each version of the Secret is laid over its mounted directory ([`Files::lay_over`])
//! and a reload is triggered; the reload validates it like any file change, so a bad Secret is
//! rejected and the last good material keeps serving. The mounted files stay the source of
//! truth: the overlay is read only while the directory holds an older version (see
//! [`crate::files`]), and a deleted Secret leaves only the files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;

use crate::files::Files;
use crate::metrics::Metrics;

/// What a Secret watch writes to: the file reader's overlays, the reload trigger and its
/// metrics.
#[derive(Clone)]
pub(crate) struct Outputs {
    /// Where the Secret's data is laid over its directory.
    pub files: Files,
    /// Asks for a reload.
    pub reload: UnboundedSender<()>,
    /// `tlsward_kube_secret_updates_total`.
    pub metrics: Arc<Metrics>,
}

/// The files kubelet would project from a Secret: one per `data` key.
fn secret_files(secret: &Secret) -> BTreeMap<String, Vec<u8>> {
    secret
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.0.clone()))
        .collect()
}

/// What to log for a watch error: a 403 names the verb and the rule the Role needs.
pub(crate) fn describe_error(e: &watcher::Error, namespace: &str, secret: &str) -> String {
    let (verb, inner) = match e {
        watcher::Error::InitialListFailed(k) => ("list", Some(k)),
        watcher::Error::WatchStartFailed(k) | watcher::Error::WatchFailed(k) => ("watch", Some(k)),
        watcher::Error::WatchError(s) if s.code == 403 => {
            return forbidden("watch", namespace, secret, &s.message);
        }
        _ => ("", None),
    };
    match inner {
        Some(kube::Error::Api(s)) if s.code == 403 => forbidden(verb, namespace, secret, &s.message),
        _ => e.to_string(),
    }
}

fn forbidden(verb: &str, namespace: &str, secret: &str, message: &str) -> String {
    format!(
        "forbidden: the ServiceAccount may not {verb} Secret {secret:?} in namespace {namespace}; its Role needs resources [secrets], resourceNames [{secret}], verbs [get, list, watch] (the chart's Role has them with kube.watchSecrets=true); the mounted files keep being used: {message}"
    )
}

/// Starts watching `secret` in `namespace` and laying it over `dir`.
pub(crate) fn spawn(
    out: Outputs,
    client: kube::Client,
    namespace: &str,
    secret: &str,
    dir: &Path,
    stop: CancellationToken,
) {
    let api: Api<Secret> = Api::namespaced(client, namespace);
    let (ns, name, dir) = (namespace.to_string(), secret.to_string(), dir.to_path_buf());
    tokio::spawn(run(out, api, ns, name, dir, stop));
}

async fn run(out: Outputs, api: Api<Secret>, namespace: String, name: String, dir: PathBuf, stop: CancellationToken) {
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut events = watcher(api, config).default_backoff().boxed();
    tracing::info!(secret = %name, %namespace, dir = %dir.display(), "watching the Secret through the Kubernetes API");
    let mut last_error = String::new();
    loop {
        let event = tokio::select! {
            e = events.next() => match e { Some(e) => e, None => return },
            _ = stop.cancelled() => return,
        };
        match event {
            Ok(watcher::Event::Apply(s) | watcher::Event::InitApply(s)) => {
                last_error.clear();
                if apply(&out, &name, &dir, &s) && out.reload.send(()).is_err() {
                    return;
                }
            }
            Ok(watcher::Event::Delete(_)) => {
                tracing::warn!(secret = %name, %namespace, "the Secret was deleted; the mounted files keep being used");
                out.files.forget(&dir);
                if out.reload.send(()).is_err() {
                    return;
                }
            }
            Ok(watcher::Event::Init | watcher::Event::InitDone) => {}
            Err(e) => {
                Metrics::count(&out.metrics.kube_secret_updates, "error");
                report_error(&e, &namespace, &name, &mut last_error);
            }
        }
    }
}

/// Lays a version of the Secret over `dir`; whether what is read from it changed (then a
/// reload is due).
fn apply(out: &Outputs, name: &str, dir: &Path, s: &Secret) -> bool {
    let version = s.metadata.resource_version.clone().unwrap_or_default();
    let changed = out.files.lay_over(dir, secret_files(s));
    if changed {
        Metrics::count(&out.metrics.kube_secret_updates, "applied");
        tracing::info!(secret = %name, resource_version = %version, dir = %dir.display(), "the Secret changed in the API; reloading before kubelet updates the files");
    } else {
        Metrics::count(&out.metrics.kube_secret_updates, "unchanged");
        tracing::debug!(secret = %name, resource_version = %version, "the Secret matches what is served");
    }
    changed
}

/// Logs a watch error unless it repeats the last one (410 Gone is routine: kube-rs lists
/// again).
fn report_error(e: &watcher::Error, namespace: &str, name: &str, last_error: &mut String) {
    if matches!(e, watcher::Error::WatchError(s) if s.code == 410) {
        tracing::info!(secret = %name, "the watch expired (410 Gone); listing again");
        return;
    }
    let text = describe_error(e, namespace, name);
    if text != *last_error {
        tracing::error!(secret = %name, error = %text, "watching the Secret failed; retrying with back-off (repeats of the same error are only counted, in tlsward_kube_secret_updates_total)");
    }
    *last_error = text;
}
