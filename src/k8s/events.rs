//! Kubernetes Events on this Pod for every [`Notice`], through kube-rs' `Recorder`
//! (events.k8s.io/v1). The Recorder aggregates like client-go: a notice whose type, reason
//! and action were published in the last six minutes PATCHes that Event's `series` (count,
//! last observed time) instead of creating a new Event. [`Notice::action`] carries what makes
//! a happening distinct (the serial, the reason's digest), so only true repeats aggregate:
//! the same file rejected on every retry, the expiry warning (repeated every five minutes), a
//! DB pool that keeps failing to verify.
//!
//! Publishing is best effort and never holds up a reload: failures are logged (a 403 names
//! the RBAC rule that is missing) and counted in `tlsward_kube_events_total{outcome}`.

use std::sync::Arc;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};

use super::PodRef;
use crate::metrics::Metrics;
use crate::reload::Notice;
use tokio_util::sync::CancellationToken;

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

#[cfg(test)]
mod tests {
    use super::truncate;

    #[test]
    fn notes_are_cut_at_a_char_boundary() {
        assert_eq!(truncate("short".into(), 10), "short");
        let t = truncate("é".repeat(600), 1024);
        assert!(t.len() <= 1024 && t.ends_with("..."));
    }
}
