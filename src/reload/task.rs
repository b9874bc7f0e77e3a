//! The reload task: coalesces triggers (file events, SIGHUP, interval) into one re-read,
//! retries a half-written or mismatched set with a short back-off before calling it rejected,
//! and publishes a new snapshot only when it is valid and differs from the served one.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
use tokio::sync::watch;

use super::notice::{Notice, Notices};
use super::status::{ExpiryLogged, Outcome, ReloadStatus, Status};
use super::watcher::DirWatcher;
use crate::files::Files;
use crate::metrics::Metrics;
use crate::snapshot::{Material, Problem, Snapshot, SnapshotStore, Sources};
use crate::util::now_unix;

/// Quiet time that ends a burst of events (kubelet's swap is a handful within a millisecond).
const QUIET: Duration = Duration::from_millis(10);
/// Longest a burst is coalesced before reloading anyway.
const MAX_BURST: Duration = Duration::from_millis(200);
/// How often the served certificates' expiry is checked. Below kube's six-minute Event cache,
/// so that the repeated `CertificateExpiringSoon` notice stays one Event with a growing count.
const EXPIRY_CHECK: Duration = Duration::from_secs(300);
/// How often the same expiring certificate is logged again.
const EXPIRY_LOG_EVERY: i64 = 3600;
/// First wait before another attempt at an invalid set (a writer may be between the key and
/// the certificate); it doubles for each of the [`RETRIES`].
pub(crate) const FIRST_RETRY: Duration = Duration::from_millis(50);
/// Attempts after the first before a failing material is recorded as rejected.
const RETRIES: usize = 4;

/// The waits between attempts (50, 100, 200, 400 ms; backon's exponential back-off).
fn retry_waits() -> impl Iterator<Item = Duration> {
    use backon::BackoffBuilder;
    backon::ExponentialBuilder::default()
        .with_min_delay(FIRST_RETRY)
        .with_max_times(RETRIES)
        .build()
}

/// What the reload task was configured with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where every material is read from.
    pub sources: Sources,
    /// Watch the directories (`--file-watch`).
    pub file_watch: bool,
    /// Re-read every source this often (`--reload-interval`; hourly without it).
    pub reload_interval: Option<Duration>,
    /// Warn about certificates expiring within this (`--expiry-warning`).
    pub expiry_warning: Duration,
}

/// The reload task's context: the only writer of the served snapshot, and where its
/// outcomes go (metrics, `/reload-status`, notices).
pub(crate) struct Reloader {
    settings: Settings,
    files: Files,
    store: SnapshotStore,
    metrics: Arc<Metrics>,
    status: Status,
    notices: Notices,
}

/// What the reloader writes to besides the snapshot.
pub(crate) struct Outputs {
    /// Reload metrics and the served snapshot's description.
    pub metrics: Arc<Metrics>,
    /// Outcomes for Events.
    pub notices: Notices,
}

impl Reloader {
    /// A reloader serving `store`'s snapshot, reading through `files`; the metrics and the
    /// returned status start out describing it.
    pub(crate) fn new(settings: Settings, files: Files, store: SnapshotStore, out: Outputs) -> (Self, Status) {
        let Outputs { metrics, notices } = out;
        let snapshot = store.load_full();
        let now = now_unix();
        describe_in_metrics(&metrics, &snapshot);
        for material in snapshot.digests.keys() {
            metrics.init_material(material.as_str());
        }
        metrics.reload_last_success.set(now);
        let status = Status::new(ReloadStatus::initial(&snapshot, now));
        let reloader = Self {
            settings,
            files,
            store,
            metrics,
            status: status.clone(),
            notices,
        };
        (reloader, status)
    }

    /// Starts the watcher, the SIGHUP and interval triggers and the reload task; the returned
    /// sender asks for a reload.
    pub(crate) fn spawn(self, stop: watch::Receiver<bool>) -> UnboundedSender<()> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let watcher = self.start_watcher(&tx);
        let this = Arc::new(self);
        spawn_triggers(this.clone(), tx.clone(), stop.clone());
        tokio::spawn(run(this, rx, watcher, stop));
        tx
    }

    fn start_watcher(&self, tx: &UnboundedSender<()>) -> Option<DirWatcher> {
        if !self.settings.file_watch {
            return None;
        }
        DirWatcher::new(&self.settings.sources.dirs(), tx.clone())
            .inspect_err(|e| tracing::error!(error = %e, "cannot start the file watcher; reloads happen only on SIGHUP or --reload-interval"))
            .ok()
    }
}

/// Publishes expiry, serial and generation of a served snapshot.
fn describe_in_metrics(m: &Metrics, snapshot: &Snapshot) {
    m.generation.set(i64::try_from(snapshot.generation).unwrap_or(i64::MAX));
    for mat in [Material::Server, Material::ClientCa, Material::DbCa, Material::DbClient] {
        // A bundle is as good as its first CA to expire.
        if let Some(first) = snapshot.certificates(mat).iter().min_by_key(|c| c.not_after) {
            m.set_not_after(mat.as_str(), first.not_after);
        }
    }
    m.set_serial("server", &snapshot.leaf().serial);
    if let Some(ca) = snapshot.client_cas.as_ref().and_then(|c| c.first()) {
        m.set_serial("client_ca", &ca.serial);
    }
    if let Some(client) = snapshot.certificate(Material::DbClient) {
        m.set_serial("db_client", &client.serial);
    }
}

fn sighup() -> Option<tokio::signal::unix::Signal> {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .inspect_err(|e| tracing::warn!(error = %e, "cannot install the SIGHUP handler"))
        .ok()
}

fn spawn_triggers(r: Arc<Reloader>, tx: UnboundedSender<()>, mut stop: watch::Receiver<bool>) {
    tokio::spawn(async move {
        let mut hup = sighup();
        // Every source is re-read at least hourly even without --reload-interval.
        let period = r.settings.reload_interval.unwrap_or(Duration::from_secs(3600));
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        let mut expiry = tokio::time::interval_at(tokio::time::Instant::now() + EXPIRY_CHECK, EXPIRY_CHECK);
        loop {
            tokio::select! {
                Some(()) = async { match hup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => {
                    tracing::info!("SIGHUP: reloading");
                }
                _ = tick.tick() => {}
                _ = expiry.tick() => {
                    r.check_expiry();
                    continue;
                }
                _ = stop.changed() => return,
            }
            if tx.send(()).is_err() {
                return;
            }
        }
    });
}

async fn run(
    r: Arc<Reloader>,
    mut rx: UnboundedReceiver<()>,
    mut watcher: Option<DirWatcher>,
    mut stop: watch::Receiver<bool>,
) {
    r.check_expiry();
    loop {
        tokio::select! {
            got = rx.recv() => if got.is_none() { return },
            _ = stop.changed() => return,
        }
        coalesce(&mut rx).await;
        r.reload_with_retries(&mut rx).await;
        if let Some(w) = watcher.as_mut() {
            w.ensure();
        }
        r.check_expiry();
    }
}

async fn coalesce(rx: &mut UnboundedReceiver<()>) {
    let start = Instant::now();
    while start.elapsed() < MAX_BURST {
        match tokio::time::timeout(QUIET, rx.recv()).await {
            Ok(Some(())) => continue,
            _ => return,
        }
    }
}

impl Reloader {
    /// Re-reads every material; publishes the valid changes at once (each material on its own:
    /// a broken one never holds up the others), and retries the failing ones with a short
    /// back-off (a writer may be between the key and the certificate) before recording them
    /// as rejected.
    async fn reload_with_retries(&self, rx: &mut UnboundedReceiver<()>) {
        let mut applied = Vec::new();
        // One wait after each failing attempt; the attempt after the last wait is the last.
        let waits = retry_waits().map(Some).chain([None]);
        for (attempt, wait) in waits.enumerate() {
            let current = self.store.load_full();
            let (snapshot, problems) = current.reload(&self.settings.sources, &self.files, current.generation + 1);
            let changed = changed_materials(&current, &snapshot);
            let failing: Vec<Material> = problems.iter().map(|p| p.material).collect();
            let last_try = problems.is_empty() || wait.is_none();
            if !changed.is_empty() {
                self.publish(snapshot, &changed, &current);
                applied.extend(changed);
            }
            if last_try {
                self.record_unchanged(&applied, &failing);
                self.reject(&problems);
                return;
            }
            tracing::debug!(attempt, problems = ?problems, "reload attempt found problems; retrying them");
            tokio::time::sleep(wait.unwrap_or_default()).await;
            while rx.try_recv().is_ok() {}
        }
    }

    /// Records `unchanged` for every served material that was read again, valid, and the same:
    /// not applied in this reload and not failing.
    fn record_unchanged(&self, applied: &[Material], failing: &[Material]) {
        let snapshot = self.store.load_full();
        let now = now_unix();
        let mut status = self.status.lock();
        if failing.is_empty() {
            status.last_success = Some(now);
            self.metrics.reload_last_success.set(now);
        }
        for mat in Material::ALL {
            if snapshot.digests.contains_key(&mat) && !applied.contains(&mat) && !failing.contains(&mat) {
                status.record(mat, Outcome::Unchanged, None);
                self.metrics.reload_outcome(mat.as_str(), Outcome::Unchanged.as_str());
            }
        }
    }

    /// Serves `snapshot`, whose `changed` materials differ from `current`: status, metrics, a
    /// log line and a notice per changed material.
    fn publish(&self, snapshot: Snapshot, changed: &[Material], current: &Snapshot) {
        let now = now_unix();
        let m = &self.metrics;
        let mut status = self.status.lock();
        for &mat in changed {
            if snapshot.digests.contains_key(&mat) {
                status.record(mat, Outcome::Applied, None);
                m.reload_outcome(mat.as_str(), Outcome::Applied.as_str());
            }
        }
        status.describe_served(&snapshot, now, changed);
        drop(status);
        describe_in_metrics(m, &snapshot);
        if !snapshot.shares_sessions_with(current) {
            tracing::info!(
                generation = snapshot.generation,
                "the policy or the client CAs changed: sessions of the previous ones are not resumed"
            );
        }
        let mut notices = Vec::new();
        for &mat in changed {
            match mat {
                Material::Server => {
                    let leaf = snapshot.leaf();
                    tracing::info!(generation = snapshot.generation, serial = %leaf.serial, not_after = %leaf.not_after_rfc3339(), "server certificate rotated");
                }
                other => tracing::info!(
                    generation = snapshot.generation,
                    material = other.as_str(),
                    "material reloaded"
                ),
            }
            let digest = snapshot.digests.get(&mat).map_or("", String::as_str);
            notices.push(Notice::applied(
                mat,
                snapshot.certificates(mat),
                digest,
                snapshot.generation,
            ));
        }
        self.store.publish(snapshot);
        for n in notices {
            self.notices.send(n);
        }
    }

    fn reject(&self, problems: &[Problem]) {
        let mut status = self.status.lock();
        for p in problems {
            tracing::warn!(material = p.material.as_str(), error = %p, "reload rejected; still serving the last good material");
            status.record(p.material, Outcome::Rejected, Some(p.to_string()));
            self.metrics
                .reload_outcome(p.material.as_str(), Outcome::Rejected.as_str());
            self.notices.send(Notice::ReloadRejected {
                material: p.material,
                reason: p.message.clone(),
            });
        }
    }

    /// Sets `tlsward_cert_expiring_soon` and, when the served server certificate or the database
    /// client certificate is close to expiry, sends a notice (every check) and logs a warning
    /// (the first time for a serial, then hourly).
    fn check_expiry(&self) {
        let snapshot = self.store.load_full();
        let now = now_unix();
        let warn_within = i64::try_from(self.settings.expiry_warning.as_secs()).unwrap_or(i64::MAX);
        for mat in [Material::Server, Material::DbClient] {
            let Some(cert) = snapshot.certificate(mat) else {
                continue;
            };
            let left = cert.not_after - now;
            let soon = left < warn_within;
            self.metrics.set_expiring_soon(mat.as_str(), soon);
            if !soon {
                continue;
            }
            let (log, notify) = due(&mut self.status.lock(), mat, &cert.serial, now);
            if log {
                tracing::warn!(material = mat.as_str(), serial = %cert.serial, not_after = %cert.not_after_rfc3339(), seconds_left = left, "a certificate expires within --expiry-warning; is cert-manager renewing it?");
            }
            if notify {
                self.notices.send(Notice::CertificateExpiringSoon {
                    material: mat,
                    serial: cert.serial.clone(),
                    not_after: cert.not_after_rfc3339(),
                });
            }
        }
    }
}

/// Whether an expiring certificate is due a log line and a notice at `now`, recording that
/// it got them: logged the first time for a serial, then hourly; a notice at most every
/// [`EXPIRY_CHECK`] (checks also follow every reload, and `--reload-interval` can be short).
fn due(status: &mut ReloadStatus, mat: Material, serial: &str, now: i64) -> (bool, bool) {
    let last = status
        .expiry_logged
        .get(mat.as_str())
        .filter(|l| l.serial == serial)
        .cloned();
    let log = last.as_ref().is_none_or(|l| now - l.logged >= EXPIRY_LOG_EVERY);
    // A little under EXPIRY_CHECK, so that the periodic check always notifies.
    let notify = last
        .as_ref()
        .is_none_or(|l| now - l.notified >= EXPIRY_CHECK.as_secs() as i64 - 30);
    let entry = ExpiryLogged {
        serial: serial.to_string(),
        logged: if log {
            now
        } else {
            last.as_ref().map_or(now, |l| l.logged)
        },
        notified: if notify {
            now
        } else {
            last.as_ref().map_or(now, |l| l.notified)
        },
    };
    status.expiry_logged.insert(mat.as_str(), entry);
    (log, notify)
}

fn changed_materials(current: &Snapshot, next: &Snapshot) -> Vec<Material> {
    Material::ALL
        .into_iter()
        .filter(|m| current.digests.get(m) != next.digests.get(m))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_invalid_set_is_retried_four_times_doubling_from_50ms() {
        let ms: Vec<u128> = retry_waits().map(|d| d.as_millis()).collect();
        assert_eq!(ms, [50, 100, 200, 400]);
    }
}
