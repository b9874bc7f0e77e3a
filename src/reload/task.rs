//! The reload task: coalesces triggers (file events, SIGHUP, interval) into one re-read,
//! retries a half-written or mismatched set with a short back-off before calling it rejected,
//! and publishes a new snapshot only when it is valid and differs from the served one.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
use tokio_util::sync::CancellationToken;

use super::report::{Event, Reporters};
use super::watcher::DirWatcher;
use crate::files::Files;
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
    /// Re-read every source this often (`--reload-interval`, hourly by default).
    pub reload_interval: Duration,
    /// Warn about certificates expiring within this (`--expiry-warning`).
    pub expiry_warning: Duration,
}

/// The reload task's context: the only writer of the served snapshot; what it does goes to
/// its reporters as [`Event`]s.
pub(crate) struct Reloader {
    settings: Settings,
    files: Files,
    store: SnapshotStore,
    reporters: Reporters,
    /// When each expiring certificate was last logged and notified (the task's throttle).
    expiry: std::sync::Mutex<BTreeMap<Material, ExpiryLogged>>,
}

/// When the expiry of one certificate was last logged and notified (Unix seconds).
#[derive(Debug, Clone)]
struct ExpiryLogged {
    serial: String,
    logged: i64,
    notified: i64,
}

impl Reloader {
    /// A reloader serving `store`'s snapshot, reading through `files`; its reporters hear
    /// [`Event::Started`] at once.
    pub(crate) fn new(settings: Settings, files: Files, store: SnapshotStore, reporters: Reporters) -> Self {
        reporters.report(&Event::Started {
            snapshot: &store.load_full(),
        });
        Self {
            settings,
            files,
            store,
            reporters,
            expiry: Default::default(),
        }
    }

    /// Starts the watcher, the SIGHUP and interval triggers and the reload task; the returned
    /// sender asks for a reload.
    pub(crate) fn spawn(self, stop: CancellationToken) -> UnboundedSender<()> {
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

fn sighup() -> Option<tokio::signal::unix::Signal> {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .inspect_err(|e| tracing::warn!(error = %e, "cannot install the SIGHUP handler"))
        .ok()
}

fn spawn_triggers(r: Arc<Reloader>, tx: UnboundedSender<()>, stop: CancellationToken) {
    tokio::spawn(async move {
        let mut hup = sighup();
        let period = r.settings.reload_interval;
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
                _ = stop.cancelled() => return,
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
    stop: CancellationToken,
) {
    r.check_expiry();
    loop {
        tokio::select! {
            got = rx.recv() => if got.is_none() { return },
            _ = stop.cancelled() => return,
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

    /// Reports `unchanged` for every served material that was read again, valid, and the
    /// same: not applied in this reload and not failing.
    fn record_unchanged(&self, applied: &[Material], failing: &[Material]) {
        let snapshot = self.store.load_full();
        let unchanged: Vec<Material> = Material::ALL
            .into_iter()
            .filter(|m| snapshot.digests.contains_key(m) && !applied.contains(m) && !failing.contains(m))
            .collect();
        self.reporters.report(&Event::Unchanged {
            unchanged: &unchanged,
            all_valid: failing.is_empty(),
        });
    }

    /// Serves `snapshot`, whose `changed` materials differ from `current`, and reports it.
    fn publish(&self, snapshot: Snapshot, changed: &[Material], current: &Snapshot) {
        self.store.publish(snapshot);
        self.reporters.report(&Event::Applied {
            snapshot: &self.store.load_full(),
            previous: current,
            changed,
        });
    }

    fn reject(&self, problems: &[Problem]) {
        for p in problems {
            self.reporters.report(&Event::Rejected(p));
        }
    }

    /// Reports the expiry of the served server certificate and database client certificate:
    /// whether it is within `--expiry-warning`, and, when it is, whether a log line (the first
    /// time for a serial, then hourly) and a notice (every check) are due.
    fn check_expiry(&self) {
        let snapshot = self.store.load_full();
        let now = now_unix();
        let warn_within = i64::try_from(self.settings.expiry_warning.as_secs()).unwrap_or(i64::MAX);
        for material in [Material::Server, Material::DbClient] {
            let Some(cert) = snapshot.certificate(material) else {
                continue;
            };
            let soon = cert.not_after - now < warn_within;
            let (log, notify) = if soon {
                let mut expiry = self.expiry.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                due(&mut expiry, material, &cert.serial, now)
            } else {
                (false, false)
            };
            self.reporters.report(&Event::Expiry {
                material,
                cert,
                soon,
                log,
                notify,
            });
        }
    }
}

/// Whether an expiring certificate is due a log line and a notice at `now`, recording that
/// it got them: logged the first time for a serial, then hourly; a notice at most every
/// [`EXPIRY_CHECK`] (checks also follow every reload, and `--reload-interval` can be short).
fn due(expiry: &mut BTreeMap<Material, ExpiryLogged>, mat: Material, serial: &str, now: i64) -> (bool, bool) {
    let last = expiry.get(&mat).filter(|l| l.serial == serial).cloned();
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
    expiry.insert(mat, entry);
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
