//! Kubernetes features, on top of the mounted files that stay the source of truth:
//!
//! - [`events`]: an Event on this Pod for every reload and DB pool outcome
//!   (`CertificateRotated`, `ReloadRejected`, `DatabasePoolRotated`,
//!   `CertificateExpiringSoon`, ...), aggregated as Kubernetes does: a repeat of the same
//!   happening PATCHes the first Event's series (count, last seen) instead of creating another.
//! - [`secrets`]: `--watch-secrets api` watches the named Secrets through the API (one
//!   field-selected list + watch per Secret, so that RBAC by `resourceNames` works) and lays
//!   their data over the mounted directory at once, instead of waiting up to a minute for
//!   kubelet (see [`crate::files`]).
//!
//! The client comes from the in-cluster service account (or `KUBECONFIG`), via kube-rs with
//! rustls on aws-lc-rs.

pub mod events;
pub(crate) mod secrets;

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// `--kube-events`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum KubeMode {
    /// On when `POD_NAME` and `POD_NAMESPACE` are set (the chart sets them) and a client
    /// configuration is found; else off, with one log line saying why.
    Auto,
    /// On; start-up fails without the Pod's identity or a client configuration.
    On,
    /// Off.
    Off,
}

/// `--watch-secrets`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum WatchSecrets {
    /// Only the mounted files (kubelet's propagation, up to about a minute).
    Files,
    /// Also the Secrets named by `--kube-secret`, through the API.
    Api,
}

/// The Pod this process runs in (downward API).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodRef {
    /// `POD_NAME`.
    pub name: String,
    /// `POD_NAMESPACE`.
    pub namespace: String,
    /// `POD_UID`, if given.
    pub uid: Option<String>,
}

/// The checked Kubernetes settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeSettings {
    /// `--kube-events`.
    pub events: KubeMode,
    /// The Pod, when known.
    pub pod: Option<PodRef>,
    /// Secrets watched through the API and the directories they are mounted at (empty with
    /// `--watch-secrets files`).
    pub secrets: Vec<(String, PathBuf)>,
}

impl KubeSettings {
    /// Whether anything needs a client.
    pub fn wanted(&self) -> bool {
        self.events_on() || !self.secrets.is_empty()
    }

    /// Whether Events are published (`on`, or `auto` with the Pod known).
    pub fn events_on(&self) -> bool {
        match self.events {
            KubeMode::On => true,
            KubeMode::Auto => self.pod.is_some(),
            KubeMode::Off => false,
        }
    }

    /// Whether a missing client configuration must fail the start.
    fn required(&self) -> bool {
        self.events == KubeMode::On || !self.secrets.is_empty()
    }
}

/// The client configuration when a feature was asked for explicitly (`--kube-events on`,
/// `--watch-secrets api`), from kube's own inference (a kubeconfig from `KUBECONFIG` or
/// `~/.kube/config`, else the in-cluster service account); `Ok(None)` when nothing is forced
/// (then [`start`] infers it and goes without when there is none). `serve` and `check-config`
/// call it before anything starts, so that its absence is a configuration error (exit 64) and
/// `serve` hands the result to [`start`]. Runs its own small runtime: call it outside one.
pub fn required_client_config(settings: &KubeSettings) -> Result<Option<kube::Config>, String> {
    if !settings.required() {
        return Ok(None);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot check the Kubernetes client configuration: {e}"))?;
    rt.block_on(infer_config()).map(Some)
}

/// The client configuration as kube infers it (a kubeconfig from `KUBECONFIG` or
/// `~/.kube/config`, else the in-cluster service account), or what is missing, said once for
/// both callers.
async fn infer_config() -> Result<kube::Config, String> {
    kube::Config::infer().await.map_err(|e| {
        format!(
            "--kube-events on (TLSWARD_KUBE_EVENTS) / --watch-secrets api (TLSWARD_WATCH_SECRETS) need a Kubernetes client configuration: the service account token mounted in the Pod (is automountServiceAccountToken off?) or a kubeconfig (KUBECONFIG): {e}"
        )
    })
}

/// Whether `s` is a valid Secret name (a DNS-1123 subdomain).
pub fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// What the Kubernetes features read and write.
pub struct Handles {
    /// Event and Secret-watch metrics.
    pub metrics: Arc<Metrics>,
    /// Where the Events come from (`None`: no Events).
    pub notices: Option<tokio::sync::mpsc::Receiver<crate::reload::Notice>>,
    /// Where watched Secrets are laid over their directories.
    pub files: crate::files::Files,
    /// Asks for a reload after a Secret changed.
    pub reload: UnboundedSender<()>,
}

/// Starts the Kubernetes features the settings ask for, with `client` or one inferred from
/// the environment as kube does (a kubeconfig from `KUBECONFIG` or `~/.kube/config`, else the
/// in-cluster service account). Fails only when a feature was asked for explicitly
/// and no client configuration is found. Without a client, `notices` is dropped, so nothing
/// queues up.
pub async fn start(
    settings: KubeSettings,
    handles: Handles,
    stop: CancellationToken,
    client: Option<kube::Client>,
) -> Result<(), String> {
    if !settings.wanted() {
        return Ok(());
    }
    let client = match client {
        Some(c) => c,
        None => match infer_config()
            .await
            .and_then(|c| kube::Client::try_from(c).map_err(|e| e.to_string()))
        {
            Ok(c) => c,
            Err(e) if settings.required() => return Err(e),
            Err(e) => {
                tracing::info!(error = %e, "no Kubernetes client configuration; Events are off (--kube-events auto)");
                return Ok(());
            }
        },
    };
    let Handles {
        metrics,
        notices,
        files,
        reload,
    } = handles;
    if let (Some(rx), Some(pod)) = (notices, &settings.pod) {
        events::spawn(metrics.clone(), rx, client.clone(), pod.clone(), stop.clone());
    }
    if let Some(pod) = &settings.pod {
        for (secret, dir) in &settings.secrets {
            let out = secrets::Outputs {
                files: files.clone(),
                reload: reload.clone(),
                metrics: metrics.clone(),
            };
            secrets::spawn(out, client.clone(), &pod.namespace, secret, dir, stop.clone());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_names() {
        for ok in ["web-tls", "tlsward.db-client", "a", "x1"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in ["", "Web", "-a", "a-", "a..b", "a_b", &"a".repeat(254)] {
            assert!(!valid_name(bad), "{bad}");
        }
    }
}
