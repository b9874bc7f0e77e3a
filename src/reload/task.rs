//! The reload task: coalesces triggers (file events, SIGHUP, interval) into one re-read,
//! retries a half-written or mismatched set with a short back-off before calling it rejected,
//! and publishes a new snapshot only when it is valid and differs from the served one.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
use tokio::sync::watch;

use super::notice::Notice;
use super::status::{ExpiryLogged, Outcome};
use super::watcher::DirWatcher;
use crate::snapshot::{Material, Problem, Snapshot};
use crate::state::AppState;
use crate::util::now_unix;

/// Quiet time that ends a burst of events (kubelet's swap is a handful within a millisecond).
pub const QUIET: Duration = Duration::from_millis(10);
/// Longest a burst is coalesced before reloading anyway.
pub const MAX_BURST: Duration = Duration::from_millis(200);
/// How often the served certificates' expiry is checked. Below kube's six-minute Event cache,
/// so that the repeated `CertificateExpiringSoon` notice stays one Event with a growing count.
pub const EXPIRY_CHECK: Duration = Duration::from_secs(300);
/// How often the same expiring certificate is logged again.
const EXPIRY_LOG_EVERY: i64 = 3600;
/// Back-off between attempts at an invalid set (a writer may be between the key and the cert).
pub const RETRY_BACKOFF: [Duration; 4] = [
    Duration::from_millis(50),
    Duration::from_millis(100),
    Duration::from_millis(200),
    Duration::from_millis(400),
];

/// Starts the watcher, the SIGHUP and interval triggers and the reload task.
pub fn spawn(state: Arc<AppState>, stop: watch::Receiver<bool>) -> UnboundedSender<()> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let dirs = state.config.sources.dirs();
    let watcher = match state.config.file_watch.then(|| DirWatcher::new(&dirs, tx.clone())) {
        None => None,
        Some(Ok(w)) => Some(w),
        Some(Err(e)) => {
            tracing::error!(error = %e, "cannot start the file watcher; reloads happen only on SIGHUP or --reload-interval");
            None
        }
    };
    spawn_triggers(state.clone(), tx.clone(), stop.clone());
    tokio::spawn(run(state, rx, watcher, stop));
    tx
}

fn spawn_triggers(state: Arc<AppState>, tx: UnboundedSender<()>, stop: watch::Receiver<bool>) {
    let interval = state.config.reload_interval;
    tokio::spawn(async move {
        let mut hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "cannot install the SIGHUP handler");
                None
            }
        };
        // Every source is re-read at least hourly even without --reload-interval.
        let period = interval.unwrap_or(Duration::from_secs(3600));
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        let mut expiry = tokio::time::interval_at(tokio::time::Instant::now() + EXPIRY_CHECK, EXPIRY_CHECK);
        let mut stop = stop;
        loop {
            tokio::select! {
                Some(()) = async { match hup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => {
                    tracing::info!("SIGHUP: reloading");
                }
                _ = tick.tick() => {}
                _ = expiry.tick() => {
                    check_expiry(&state);
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
    state: Arc<AppState>,
    mut rx: UnboundedReceiver<()>,
    mut watcher: Option<DirWatcher>,
    mut stop: watch::Receiver<bool>,
) {
    check_expiry(&state);
    loop {
        tokio::select! {
            got = rx.recv() => if got.is_none() { return },
            _ = stop.changed() => return,
        }
        coalesce(&mut rx).await;
        reload_with_retries(&state, &mut rx).await;
        if let Some(w) = watcher.as_mut() {
            w.ensure();
        }
        check_expiry(&state);
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

/// Re-reads every material; publishes the valid changes at once (each material on its own:
/// a broken one never holds up the others), and retries the failing ones with a short
/// back-off (a writer may be between the key and the certificate) before recording them
/// as rejected.
pub async fn reload_with_retries(state: &AppState, rx: &mut UnboundedReceiver<()>) {
    let mut applied = Vec::new();
    // One wait after each failing attempt; the attempt after the last wait is the last.
    let waits = RETRY_BACKOFF.iter().copied().map(Some).chain([None]);
    for (attempt, wait) in waits.enumerate() {
        let current = state.snapshot.load_full();
        let (snapshot, problems) = current.reload(&state.config.sources, current.generation + 1);
        let changed = changed_materials(&current, &snapshot);
        let failing: Vec<Material> = problems.iter().map(|p| p.material).collect();
        let last_try = problems.is_empty() || wait.is_none();
        if !changed.is_empty() {
            publish(state, snapshot, &changed, &current);
            applied.extend(changed);
        }
        if last_try {
            record_unchanged(state, &applied, &failing);
            reject(state, &problems);
            return;
        }
        tracing::debug!(attempt, problems = ?problems, "reload attempt found problems; retrying them");
        tokio::time::sleep(wait.unwrap_or_default()).await;
        while rx.try_recv().is_ok() {}
    }
}

fn changed_materials(current: &Snapshot, next: &Snapshot) -> Vec<Material> {
    Material::ALL
        .into_iter()
        .filter(|m| current.digests.get(m) != next.digests.get(m))
        .collect()
}

fn lock_status(state: &AppState) -> std::sync::MutexGuard<'_, super::ReloadStatus> {
    state
        .reload_status
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Records `unchanged` for every served material that was read again, valid, and the same:
/// not applied in this reload and not failing.
fn record_unchanged(state: &AppState, applied: &[Material], failing: &[Material]) {
    let snapshot = state.snapshot.load();
    let now = now_unix();
    let mut status = lock_status(state);
    if failing.is_empty() {
        status.last_success = Some(now);
        state.metrics.reload_last_success.set(now);
    }
    for mat in Material::ALL {
        if snapshot.digests.contains_key(&mat) && !applied.contains(&mat) && !failing.contains(&mat) {
            status.record(mat, Outcome::Unchanged, None);
            state.metrics.reload_outcome(mat.as_str(), Outcome::Unchanged.as_str());
        }
    }
}

/// Serves `snapshot`, whose `changed` materials differ from `current`: status, metrics, a
/// log line and a notice per changed material.
fn publish(state: &AppState, snapshot: Snapshot, changed: &[Material], current: &Snapshot) {
    let now = now_unix();
    let m = &state.metrics;
    let mut status = lock_status(state);
    for &mat in changed {
        if snapshot.digests.contains_key(&mat) {
            status.record(mat, Outcome::Applied, None);
            m.reload_outcome(mat.as_str(), Outcome::Applied.as_str());
        }
    }
    status.describe_served(&snapshot, now, changed);
    drop(status);
    m.describe_snapshot(&snapshot);
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
    state.publish(snapshot);
    for n in notices {
        state.notify(n);
    }
}

fn reject(state: &AppState, problems: &[Problem]) {
    let mut status = lock_status(state);
    for p in problems {
        tracing::warn!(material = p.material.as_str(), error = %p, "reload rejected; still serving the last good material");
        status.record(p.material, Outcome::Rejected, Some(p.to_string()));
        state
            .metrics
            .reload_outcome(p.material.as_str(), Outcome::Rejected.as_str());
        state.notify(Notice::ReloadRejected {
            material: p.material,
            reason: p.message.clone(),
        });
    }
}

/// Sets `tlsward_cert_expiring_soon` and, when the served server certificate or the database
/// client certificate is close to expiry, sends a notice (every check) and logs a warning
/// (the first time for a serial, then hourly).
pub fn check_expiry(state: &AppState) {
    let snapshot = state.snapshot.load();
    let now = now_unix();
    let warn_within = i64::try_from(state.config.expiry_warning.as_secs()).unwrap_or(i64::MAX);
    for mat in [Material::Server, Material::DbClient] {
        let Some(cert) = snapshot.certificate(mat) else {
            continue;
        };
        let left = cert.not_after - now;
        let soon = left < warn_within;
        state.metrics.set_expiring_soon(mat.as_str(), soon);
        if !soon {
            continue;
        }
        // Logged the first time for a serial, then hourly; a notice at most every EXPIRY_CHECK
        // (checks also follow every reload, and --reload-interval can be short).
        let (log, notify) = {
            let mut status = lock_status(state);
            let last = status
                .expiry_logged
                .get(mat.as_str())
                .filter(|l| l.serial == cert.serial);
            let log = last.is_none_or(|l| now - l.logged >= EXPIRY_LOG_EVERY);
            // A little under EXPIRY_CHECK, so that the periodic check always notifies.
            let notify = last.is_none_or(|l| now - l.notified >= EXPIRY_CHECK.as_secs() as i64 - 30);
            let prev = last.cloned();
            status.expiry_logged.insert(
                mat.as_str(),
                ExpiryLogged {
                    serial: cert.serial.clone(),
                    logged: if log {
                        now
                    } else {
                        prev.as_ref().map_or(now, |l| l.logged)
                    },
                    notified: if notify {
                        now
                    } else {
                        prev.as_ref().map_or(now, |l| l.notified)
                    },
                },
            );
            (log, notify)
        };
        if log {
            tracing::warn!(material = mat.as_str(), serial = %cert.serial, not_after = %cert.not_after_rfc3339(), seconds_left = left, "a certificate expires within --expiry-warning; is cert-manager renewing it?");
        }
        if notify {
            state.notify(Notice::CertificateExpiringSoon {
                material: mat,
                serial: cert.serial.clone(),
                not_after: cert.not_after_rfc3339(),
            });
        }
    }
}
