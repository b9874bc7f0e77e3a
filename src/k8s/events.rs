//! Kubernetes Events on this Pod for every [`Notice`], through kube-rs' `Recorder`
//! (events.k8s.io/v1). The Recorder aggregates like client-go: a notice whose type, reason
//! and action were published in the last six minutes PATCHes that Event's `series` (count,
//! last observed time) instead of creating a new Event. This module owns the Events' wording
//! (type, reason, note) of each [`Notice`]; its `action` carries what makes
//! a happening distinct (the serial, the reason's digest), so only true repeats aggregate:
//! the same file rejected on every retry, the expiry warning (repeated every five minutes), a
//! DB pool that keeps failing to verify.
//!
//! Publishing is best effort and never holds up a reload: failures are logged (a 403 names
//! the RBAC rule that is missing) and counted in `tlsward_kube_events_total{outcome}`.

use std::sync::Arc;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};

use tokio_util::sync::CancellationToken;

use super::PodRef;
use crate::metrics::Metrics;
use crate::reload::Notice;
use crate::snapshot::Material;

/// Notices waiting to be published; more are dropped (and counted).
pub const QUEUE: usize = 256;
/// Longest note the Events API takes.
const MAX_NOTE: usize = 1024;

/// Publishes notices as Events regarding one Pod.
#[derive(Clone)]
pub struct Publisher {
    recorder: Recorder,
    regarding: ObjectReference,
}

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max - 3;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push_str("...");
    }
    s
}

impl Publisher {
    /// A publisher whose Events regard `pod`, reported by `tlsward` / the Pod's name.
    pub fn new(client: kube::Client, pod: &PodRef) -> Self {
        let reporter = Reporter {
            controller: "tlsward".into(),
            instance: Some(pod.name.clone()),
        };
        Self {
            recorder: Recorder::new(client, reporter),
            regarding: ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: Some(pod.name.clone()),
                namespace: Some(pod.namespace.clone()),
                uid: pod.uid.clone(),
                ..Default::default()
            },
        }
    }

    /// Publishes one notice (a new Event, or a PATCH of the series of a repeat).
    pub async fn publish(&self, notice: &Notice) -> Result<(), kube::Error> {
        let event = Event {
            type_: if notice.is_warning() {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: notice.reason().into(),
            note: Some(truncate(notice.note(), MAX_NOTE)),
            action: truncate(notice.action(), 128),
            secondary: None,
        };
        self.recorder.publish(&event, &self.regarding).await
    }
}

/// What to log for a failed publish: a 403 names the missing RBAC rule.
pub fn describe_error(e: &kube::Error, namespace: &str) -> String {
    match e {
        kube::Error::Api(s) if s.code == 403 => format!(
            "forbidden: the ServiceAccount may not create/patch Events in namespace {namespace}; its Role needs apiGroups [events.k8s.io], resources [events], verbs [create, patch] (the chart's Role has them with kube.enabled=true): {}",
            s.message
        ),
        other => other.to_string(),
    }
}

/// Publishes the notices from `rx` as Events regarding `pod`. A failure is logged when its
/// cause differs from the last one (a 403 would otherwise repeat with every notice) and
/// every failure is counted.
pub fn spawn(
    metrics: Arc<Metrics>,
    mut rx: tokio::sync::mpsc::Receiver<Notice>,
    client: kube::Client,
    pod: PodRef,
    stop: CancellationToken,
) {
    let publisher = Publisher::new(client, &pod);
    tracing::info!(pod = %pod.name, namespace = %pod.namespace, "publishing Kubernetes Events on reloads");
    tokio::spawn(async move {
        let mut last_error = String::new();
        loop {
            let notice = tokio::select! {
                n = rx.recv() => match n { Some(n) => n, None => return },
                _ = stop.cancelled() => return,
            };
            match publisher.publish(&notice).await {
                Ok(()) => {
                    Metrics::count(&metrics.kube_events, "published");
                    last_error.clear();
                }
                Err(e) => {
                    Metrics::count(&metrics.kube_events, "failed");
                    let text = describe_error(&e, &pod.namespace);
                    if text != last_error {
                        tracing::warn!(reason = notice.reason(), error = %text, "could not publish a Kubernetes Event (repeats of this error are only counted, in tlsward_kube_events_total)");
                    }
                    last_error = text;
                }
            }
        }
    });
}

/// The Event vocabulary: each notice's type, reason, message and what makes it distinct.
impl Notice {
    /// Whether this is a warning (else normal).
    pub(crate) fn is_warning(&self) -> bool {
        matches!(
            self,
            Self::ReloadRejected { .. }
                | Self::CertificateExpiringSoon { .. }
                | Self::DatabasePoolRotationFailed { .. }
        )
    }

    /// The Event reason (PascalCase, as `kubectl describe` shows it).
    pub(crate) fn reason(&self) -> &'static str {
        match self {
            Self::CertificateRotated { .. } => "CertificateRotated",
            Self::MaterialReloaded { .. } => "MaterialReloaded",
            Self::ReloadRejected { .. } => "ReloadRejected",
            Self::CertificateExpiringSoon { .. } => "CertificateExpiringSoon",
            Self::DatabasePoolRotated { .. } => "DatabasePoolRotated",
            Self::DatabasePoolRotationFailed { .. } => "DatabasePoolRotationFailed",
        }
    }

    /// The human-readable message.
    pub(crate) fn note(&self) -> String {
        match self {
            Self::CertificateRotated {
                material,
                certs,
                generation,
                ..
            } => rotated_note(*material, certs, *generation),
            Self::MaterialReloaded {
                material,
                digest,
                generation,
            } => format!(
                "now serving new {} (digest {digest}, generation {generation})",
                material.describe()
            ),
            Self::ReloadRejected { material, reason } => {
                format!(
                    "{} not reloaded, the last good one is still served: {reason}",
                    material.describe()
                )
            }
            Self::CertificateExpiringSoon {
                material,
                serial,
                not_after,
            } => format!(
                "the {} with serial {serial} expires at {not_after}: is cert-manager renewing it?",
                material.describe()
            ),
            Self::DatabasePoolRotated { generation } => {
                format!("database pool generation {generation} verified (connected, SELECT 1) and serving")
            }
            Self::DatabasePoolRotationFailed {
                serving_generation,
                reason,
            } => format!("new database pool not usable, generation {serving_generation} keeps serving: {reason}"),
        }
    }

    /// What makes two notices the same happening, for aggregation: a repeat of the same
    /// happening within kube's six-minute cache becomes a series (count + last seen) on one
    /// Event; anything else is a new Event. kube's and client-go's recorders key on the action
    /// and reason and keep the first note, so every part of the note goes into the action.
    pub(crate) fn action(&self) -> String {
        let short = |s: &str| crate::util::sha256_hex(s.as_bytes())[..12].to_string();
        match self {
            Self::CertificateRotated {
                material,
                digest,
                generation,
                ..
            }
            | Self::MaterialReloaded {
                material,
                digest,
                generation,
            } => format!("Serve {} {digest} g{generation}", material.as_str()),
            Self::ReloadRejected { material, reason } => format!("Reject {} {}", material.as_str(), short(reason)),
            Self::CertificateExpiringSoon {
                material,
                serial,
                not_after,
            } => format!("Warn {} {}", material.as_str(), short(&format!("{serial} {not_after}"))),
            Self::DatabasePoolRotated { generation } => format!("Publish pool g{generation}"),
            Self::DatabasePoolRotationFailed {
                serving_generation,
                reason,
            } => format!("Keep pool g{serving_generation} {}", short(reason)),
        }
    }
}

/// The note of a `CertificateRotated`: the new leaf, or every CA of a new bundle.
fn rotated_note(material: Material, certs: &[(String, String)], generation: u64) -> String {
    match certs {
        [(serial, not_after)] => format!(
            "now serving the {} with serial {serial}, valid until {not_after} (generation {generation})",
            material.describe()
        ),
        many => format!(
            "now trusting the {} bundle of {} certificates: {} (generation {generation})",
            material.describe(),
            many.len(),
            many.iter()
                .map(|(s, n)| format!("serial {s} until {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::{Material, Notice, truncate};

    #[test]
    fn notes_are_cut_at_a_char_boundary() {
        assert_eq!(truncate("short".into(), 10), "short");
        let t = truncate("é".repeat(600), 1024);
        assert!(t.len() <= 1024 && t.ends_with("..."));
    }

    #[test]
    fn repeats_share_an_action_and_differences_do_not() {
        let rej = |r: &str| Notice::ReloadRejected {
            material: Material::Server,
            reason: r.into(),
        };
        assert_eq!(rej("tls.key: bad PEM").action(), rej("tls.key: bad PEM").action());
        assert_ne!(rej("tls.key: bad PEM").action(), rej("tls.crt: expired").action());
        assert!(rej("x").is_warning());
        assert!(rej("tls.key: bad PEM").note().contains("tls.key: bad PEM"));
        let rot = |s: &str| Notice::CertificateRotated {
            material: Material::Server,
            certs: vec![(s.into(), "2027-01-01T00:00:00Z".into())],
            digest: s.into(),
            generation: 2,
        };
        assert_ne!(rot("01").action(), rot("02").action());
        assert!(!rot("01").is_warning());
        assert!(rot("0a").note().contains("serial 0a"));
        let bundle = Notice::CertificateRotated {
            material: Material::DbCa,
            certs: vec![
                ("01".into(), "2030-01-01T00:00:00Z".into()),
                ("02".into(), "2031-01-01T00:00:00Z".into()),
            ],
            digest: "d".into(),
            generation: 3,
        };
        let note = bundle.note();
        assert!(
            note.contains("bundle of 2") && note.contains("serial 02 until 2031"),
            "{note}"
        );
        for n in [rej(&"x".repeat(2000)), rot(&"f".repeat(40))] {
            assert!(n.action().len() <= 128, "action too long: {}", n.action());
        }
    }
}
