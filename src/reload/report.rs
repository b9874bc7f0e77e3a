//! What a reload or a DB pool rebuild did, as one value ([`Event`]) handed to every reporter:
//! `/reload-status` ([`Status`]), the metrics, the log and the notices for Events each record
//! it in their own way. The reload task and the DB manager decide what happened and report it
//! once; they do not know who listens, and a reporter sees only the event, never the task.

use std::sync::Arc;

use super::notice::{Notice, Notices};
use super::status::{Outcome, ReloadStatus, Status};
use crate::db::manager::PoolOutcome;
use crate::metrics::Metrics;
use crate::snapshot::{Material, Problem, Snapshot};
use crate::tls::material::CertInfo;
use crate::util::now_unix;

/// One thing a reload or a DB pool rebuild did.
pub(crate) enum Event<'a> {
    /// The reload task starts with `snapshot` served.
    Started { snapshot: &'a Snapshot },
    /// `snapshot` is now served; `changed` are the materials that differ from `previous`.
    Applied {
        snapshot: &'a Snapshot,
        previous: &'a Snapshot,
        changed: &'a [Material],
    },
    /// Re-read, valid and the same as what is served; `all_valid` when no material failed.
    Unchanged { unchanged: &'a [Material], all_valid: bool },
    /// Invalid: the last good material is still served.
    Rejected(&'a Problem),
    /// A served certificate's expiry was checked; `log` and `notify` say whether this check is
    /// due a log line and a notice (the task throttles both).
    Expiry {
        material: Material,
        cert: &'a CertInfo,
        soon: bool,
        log: bool,
        notify: bool,
    },
    /// The DB manager rebuilt the pool, or failed to (the last good pool keeps serving).
    Pool(&'a PoolOutcome),
}

/// Something that records reload and DB pool events.
pub(crate) trait Reporter: Send + Sync {
    /// Records one event.
    fn report(&self, event: &Event<'_>);
}

/// Every reporter, in the order they hear an event.
#[derive(Clone)]
pub(crate) struct Reporters(Vec<Arc<dyn Reporter>>);

impl Reporters {
    /// The reporters of a command (`serve`, `proxy`, `db-proxy`), in the order given.
    pub(crate) fn new(list: Vec<Arc<dyn Reporter>>) -> Self {
        Self(list)
    }

    /// Hands `event` to each.
    pub(crate) fn report(&self, event: &Event<'_>) {
        for r in &self.0 {
            r.report(event);
        }
    }
}

impl Reporter for Status {
    fn report(&self, event: &Event<'_>) {
        let now = now_unix();
        let mut status = self.lock();
        match event {
            Event::Started { snapshot } => *status = ReloadStatus::initial(snapshot, now),
            Event::Applied { snapshot, changed, .. } => {
                for &mat in changed.iter().filter(|m| snapshot.digests.contains_key(m)) {
                    status.record(mat, Outcome::Applied, None);
                }
                status.describe_served(snapshot, now, changed);
            }
            Event::Unchanged { unchanged, all_valid } => {
                if *all_valid {
                    status.last_success = Some(now);
                }
                for &mat in unchanged.iter() {
                    status.record(mat, Outcome::Unchanged, None);
                }
            }
            Event::Rejected(p) => status.record(p.material, Outcome::Rejected, Some(p.to_string())),
            Event::Pool(o) => status.record_db_pool(o, now),
            Event::Expiry { .. } => {}
        }
    }
}

impl Reporter for Metrics {
    fn report(&self, event: &Event<'_>) {
        match event {
            Event::Started { snapshot } => {
                describe_in_metrics(self, snapshot);
                for material in snapshot.digests.keys() {
                    self.init_material(*material);
                }
                self.reload_last_success.set(now_unix());
            }
            Event::Applied { snapshot, changed, .. } => {
                for &mat in changed.iter().filter(|m| snapshot.digests.contains_key(m)) {
                    self.reload_outcome(mat, Outcome::Applied.as_str());
                }
                describe_in_metrics(self, snapshot);
            }
            Event::Unchanged { unchanged, all_valid } => {
                if *all_valid {
                    self.reload_last_success.set(now_unix());
                }
                for mat in unchanged.iter() {
                    self.reload_outcome(*mat, Outcome::Unchanged.as_str());
                }
            }
            Event::Rejected(p) => self.reload_outcome(p.material, Outcome::Rejected.as_str()),
            Event::Expiry { material, soon, .. } => self.set_expiring_soon(*material, *soon),
            Event::Pool(PoolOutcome::Rotated { generation }) => self.db_pool_rebuilt("applied", *generation),
            Event::Pool(PoolOutcome::Failed { serving_generation, .. }) => {
                self.db_pool_rebuilt("failed", *serving_generation)
            }
        }
    }
}

/// Publishes expiry, serial and generation of a served snapshot.
fn describe_in_metrics(m: &Metrics, snapshot: &Snapshot) {
    m.generation.set(i64::try_from(snapshot.generation).unwrap_or(i64::MAX));
    for mat in [Material::Server, Material::ClientCa, Material::DbCa, Material::DbClient] {
        // A bundle is as good as its first CA to expire.
        if let Some(first) = snapshot.certificates(mat).iter().min_by_key(|c| c.not_after) {
            m.set_not_after(mat, first.not_after);
        }
    }
    if let Some(leaf) = snapshot.leaf() {
        m.set_serial(Material::Server, &leaf.serial);
    }
    if let Some(ca) = snapshot.client_cas.as_ref().and_then(|c| c.first()) {
        m.set_serial(Material::ClientCa, &ca.serial);
    }
    if let Some(client) = snapshot.certificate(Material::DbClient) {
        m.set_serial(Material::DbClient, &client.serial);
    }
}

/// The log lines of reloads.
pub(crate) struct Log;

impl Reporter for Log {
    fn report(&self, event: &Event<'_>) {
        match event {
            Event::Applied {
                snapshot,
                previous,
                changed,
            } => log_applied(snapshot, previous, changed),
            Event::Rejected(p) => {
                tracing::warn!(material = p.material.as_str(), error = %p, "reload rejected; still serving the last good material");
            }
            Event::Expiry {
                material,
                cert,
                log: true,
                ..
            } => {
                let left = cert.not_after - now_unix();
                tracing::warn!(material = material.as_str(), serial = %cert.serial, not_after = %cert.not_after_rfc3339(), seconds_left = left, "a certificate expires within --expiry-warning; is cert-manager renewing it?");
            }
            _ => {}
        }
    }
}

fn log_applied(snapshot: &Snapshot, previous: &Snapshot, changed: &[Material]) {
    if !snapshot.shares_sessions_with(previous) {
        tracing::info!(
            generation = snapshot.generation,
            "the policy or the client CAs changed: sessions of the previous ones are not resumed"
        );
    }
    for &mat in changed {
        match mat {
            Material::Server => {
                let Some(leaf) = snapshot.leaf() else { continue };
                tracing::info!(generation = snapshot.generation, serial = %leaf.serial, not_after = %leaf.not_after_rfc3339(), "server certificate rotated");
            }
            other => tracing::info!(
                generation = snapshot.generation,
                material = other.as_str(),
                "material reloaded"
            ),
        }
    }
}

impl Reporter for Notices {
    fn report(&self, event: &Event<'_>) {
        match event {
            Event::Applied { snapshot, changed, .. } => {
                for &mat in changed.iter() {
                    let digest = snapshot.digests.get(&mat).map_or("", String::as_str);
                    self.send(Notice::applied(
                        mat,
                        snapshot.certificates(mat),
                        digest,
                        snapshot.generation,
                    ));
                }
            }
            Event::Rejected(p) => self.send(Notice::ReloadRejected {
                material: p.material,
                reason: p.message.clone(),
            }),
            Event::Expiry {
                material,
                cert,
                notify: true,
                ..
            } => self.send(Notice::CertificateExpiringSoon {
                material: *material,
                serial: cert.serial.clone(),
                not_after: cert.not_after_rfc3339(),
            }),
            Event::Pool(o) => self.send(Notice::from(*o)),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    fn rejected() -> Problem {
        Problem {
            material: Material::Server,
            message: "/etc/tls/tls.key: not a private key".into(),
        }
    }

    #[test]
    fn status_keeps_the_reason_of_a_rejection_next_to_the_material() {
        let status = Status::default();
        status.report(&Event::Rejected(&rejected()));
        let s = status.get();
        let server = &s.materials["server"];
        assert_eq!(server.last_outcome, Some(Outcome::Rejected));
        assert!(server.last_error.as_deref().unwrap().contains("tls.key"), "{server:?}");
        assert_eq!(s.last_success, None);
    }

    #[test]
    fn unchanged_counts_as_success_only_when_nothing_failed() {
        let status = Status::default();
        let unchanged = [Material::TokenKeys];
        status.report(&Event::Unchanged {
            unchanged: &unchanged,
            all_valid: false,
        });
        assert_eq!(status.get().last_success, None);
        status.report(&Event::Unchanged {
            unchanged: &unchanged,
            all_valid: true,
        });
        let s = status.get();
        assert!(s.last_success.is_some());
        assert_eq!(s.materials["token_keys"].last_outcome, Some(Outcome::Unchanged));
    }

    #[test]
    fn metrics_count_a_rejection_by_material_and_outcome() {
        let m = Metrics::new();
        m.report(&Event::Rejected(&rejected()));
        let text = m.render();
        let line = text
            .lines()
            .find(|l| l.starts_with("tlsward_reload_total") && l.contains("rejected"))
            .unwrap_or_else(|| panic!("{text}"));
        assert!(line.contains("material=\"server\"") && line.ends_with(" 1"), "{line}");
    }

    #[test]
    fn a_failed_pool_rebuild_reaches_status_and_metrics_with_the_generation_still_served() {
        let (status, metrics) = (Status::default(), Arc::new(Metrics::new()));
        let failed = PoolOutcome::Failed {
            serving_generation: 3,
            reason: "connection refused".into(),
        };
        let reporters = Reporters::new(vec![Arc::new(status.clone()), metrics.clone()]);
        reporters.report(&Event::Pool(&failed));
        let pool = status.get().db_pool;
        assert_eq!((pool.generation, pool.last_outcome), (3, Some("failed")));
        assert_eq!(pool.last_error.as_deref(), Some("connection refused"));
        let text = metrics.render();
        for want in [
            "tlsward_db_pool_rebuild_total{outcome=\"failed\"} 1",
            "tlsward_db_pool_generation 3",
        ] {
            assert!(text.lines().any(|l| l == want), "{want:?} not in\n{text}");
        }
    }

    /// Records the kind of every event it hears.
    struct Recorder(Mutex<Vec<&'static str>>);

    impl Reporter for Recorder {
        fn report(&self, event: &Event<'_>) {
            let kind = match event {
                Event::Started { .. } => "started",
                Event::Applied { .. } => "applied",
                Event::Unchanged { .. } => "unchanged",
                Event::Rejected(_) => "rejected",
                Event::Expiry { .. } => "expiry",
                Event::Pool(_) => "pool",
            };
            self.0.lock().unwrap().push(kind);
        }
    }

    #[test]
    fn every_reporter_hears_every_event_in_order() {
        let (a, b) = (
            Arc::new(Recorder(Mutex::default())),
            Arc::new(Recorder(Mutex::default())),
        );
        let reporters = Reporters::new(vec![a.clone(), b.clone()]);
        reporters.report(&Event::Rejected(&rejected()));
        reporters.report(&Event::Unchanged {
            unchanged: &[],
            all_valid: true,
        });
        reporters.report(&Event::Pool(&PoolOutcome::Rotated { generation: 2 }));
        for r in [a, b] {
            assert_eq!(*r.0.lock().unwrap(), ["rejected", "unchanged", "pool"]);
        }
    }
}
