//! What `/reload-status` shows: the current generation and, per material, what is served and
//! what the last reload did with it.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::snapshot::{Material, Snapshot};

/// What a reload did with one material.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// A changed, valid material is now served.
    Applied,
    /// The material was invalid; the last good one is still served.
    Rejected,
    /// Re-read, valid, and the same as what is served.
    Unchanged,
}

impl Outcome {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::Rejected => "rejected",
            Self::Unchanged => "unchanged",
        }
    }
}

/// The state of one material.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MaterialStatus {
    /// Serial of the served certificate (leaf, or first CA), if a certificate.
    pub serial: Option<String>,
    /// Expiry of the served certificate, Unix seconds.
    pub not_after: Option<i64>,
    /// Content digest of what is served.
    pub digest: Option<String>,
    /// What the last reload did.
    pub last_outcome: Option<Outcome>,
    /// Why the last reload rejected it (file and reason), cleared when a reload succeeds.
    pub last_error: Option<String>,
    /// When the served material last changed, Unix seconds.
    pub last_applied: Option<i64>,
}

/// The reload state of the whole process.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReloadStatus {
    /// The served snapshot's generation.
    pub generation: u64,
    /// When a reload last succeeded (no material rejected), Unix seconds.
    pub last_success: Option<i64>,
    /// Per material.
    pub materials: BTreeMap<&'static str, MaterialStatus>,
    /// The DB pool built from the DB material.
    pub db_pool: DbPoolStatus,
}

/// The state of the DB pool.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DbPoolStatus {
    /// Generation of the serving pool (0: none verified yet).
    pub generation: u64,
    /// `applied` or `failed`.
    pub last_outcome: Option<&'static str>,
    /// Why the last rebuild failed.
    pub last_error: Option<String>,
    /// When a rebuild was last tried, Unix seconds.
    pub last_attempt: Option<i64>,
    /// When a pool was last published, Unix seconds.
    pub last_applied: Option<i64>,
}

impl ReloadStatus {
    /// Records the outcome of a DB pool rebuild at `now`.
    pub(crate) fn record_db_pool(&mut self, outcome: &crate::db::manager::PoolOutcome, now: i64) {
        use crate::db::manager::PoolOutcome;
        let p = &mut self.db_pool;
        p.last_attempt = Some(now);
        match outcome {
            PoolOutcome::Rotated { generation } => {
                p.generation = *generation;
                p.last_applied = Some(now);
                p.last_outcome = Some("applied");
                p.last_error = None;
            }
            PoolOutcome::Failed {
                serving_generation,
                reason,
            } => {
                p.generation = *serving_generation;
                p.last_outcome = Some("failed");
                p.last_error = Some(reason.clone());
            }
        }
    }

    /// The status right after start-up.
    pub fn initial(snapshot: &Snapshot, now: i64) -> Self {
        let mut s = Self {
            generation: snapshot.generation,
            last_success: Some(now),
            materials: BTreeMap::new(),
            db_pool: DbPoolStatus::default(),
        };
        s.describe_served(snapshot, now, &Material::ALL);
        s
    }

    /// Records what `snapshot` serves for `changed` materials.
    pub fn describe_served(&mut self, snapshot: &Snapshot, now: i64, changed: &[Material]) {
        self.generation = snapshot.generation;
        for m in changed {
            let Some(digest) = snapshot.digests.get(m) else {
                self.materials.remove(m.as_str());
                continue;
            };
            let e = self.materials.entry(m.as_str()).or_default();
            e.digest = Some(digest.clone());
            e.last_applied = Some(now);
            let db = snapshot.db_tls.as_deref();
            let cert = match m {
                Material::Server => snapshot.leaf(),
                Material::ClientCa => snapshot.client_cas.as_ref().and_then(|c| c.first()),
                Material::DbCa => db.and_then(|t| t.cas.first()),
                Material::DbClient => db.and_then(|t| t.client.as_ref()).map(|c| &c.info),
                _ => None,
            };
            e.serial = cert.map(|c| c.serial.clone());
            e.not_after = cert.map(|c| c.not_after);
        }
    }

    /// Records an outcome for one material.
    pub fn record(&mut self, m: Material, outcome: Outcome, error: Option<String>) {
        let e = self.materials.entry(m.as_str()).or_default();
        e.last_outcome = Some(outcome);
        e.last_error = error;
    }
}

/// The shared handle on the [`ReloadStatus`]: written by the reload events it hears
/// (a [`Reporter`](super::report::Reporter)) and the DB pool's reports, read by
/// `/reload-status`. A panic while it was held leaves a status that is
/// still worth showing, so a poisoned lock is used as it is.
#[derive(Clone, Default)]
pub struct Status {
    inner: std::sync::Arc<std::sync::Mutex<ReloadStatus>>,
}

impl Status {
    /// A handle on `initial`.
    pub fn new(initial: ReloadStatus) -> Self {
        Self {
            inner: std::sync::Arc::new(std::sync::Mutex::new(initial)),
        }
    }

    /// Holds the status for one change.
    pub fn lock(&self) -> std::sync::MutexGuard<'_, ReloadStatus> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A copy to show.
    pub fn get(&self) -> ReloadStatus {
        self.lock().clone()
    }
}
