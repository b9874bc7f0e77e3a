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
use crate::tls::material::now_unix;

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

/// Loads until valid or out of retries; publishes or records the rejection.
pub async fn reload_with_retries(state: &AppState, rx: &mut UnboundedReceiver<()>) {
    let mut attempt = 0;
    loop {
        let next = state.snapshot.load().generation + 1;
        match Snapshot::load(&state.config.sources, next) {
            Ok(snapshot) => return publish(state, snapshot),
            Err(problems) if attempt < RETRY_BACKOFF.len() => {
                tracing::debug!(attempt, problems = ?problems, "reload attempt failed; retrying");
                tokio::time::sleep(RETRY_BACKOFF[attempt]).await;
                while rx.try_recv().is_ok() {}
                attempt += 1;
            }
            Err(problems) => return reject(state, &problems),
        }
    }
}

fn publish(state: &AppState, snapshot: Snapshot) {
    let current = state.snapshot.load_full();
    let changed: Vec<Material> = Material::ALL
        .into_iter()
        .filter(|m| current.digests.get(m) != snapshot.digests.get(m))
        .collect();
    let now = now_unix();
    let m = &state.metrics;
    let mut status = state
        .reload_status
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    status.last_success = Some(now);
    m.reload_last_success.set(now);
    for mat in Material::ALL {
        if !snapshot.digests.contains_key(&mat) {
            continue;
        }
        let outcome = if changed.contains(&mat) {
            Outcome::Applied
        } else {
            Outcome::Unchanged
        };
        status.record(mat, outcome, None);
        m.reload_outcome(mat.as_str(), outcome.as_str());
    }
    if changed.is_empty() {
        tracing::debug!("reload: nothing changed");
        return;
    }
    status.describe_served(&snapshot, now, &changed);
    drop(status);
    m.describe_snapshot(&snapshot);
    let mut notices = Vec::new();
    for &mat in &changed {
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
    let mut status = state
        .reload_status
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
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
            let mut status = state
                .reload_status
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
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
