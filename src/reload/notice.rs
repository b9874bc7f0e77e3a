//! What reloads and DB pool rebuilds tell the outside world beyond logs and metrics: one
//! [`Notice`] per outcome, sent to whoever listens (the Kubernetes Event publisher, when it
//! runs, which owns their wording as Events). Sending never blocks a reload: when nobody listens nothing is sent; when the
//! listener is behind, the notice is dropped and counted.

use std::sync::Arc;

use tokio::sync::mpsc::{self, error::TrySendError};

use crate::db::manager::PoolOutcome;
use crate::metrics::Metrics;
use crate::snapshot::Material;
use crate::tls::material::CertInfo;

/// The sending side of the notices: cloned into every part that has outcomes to tell.
#[derive(Clone)]
pub struct Notices {
    tx: Option<mpsc::Sender<Notice>>,
    metrics: Arc<Metrics>,
}

impl Notices {
    /// Notices that nobody listens to: sending them does nothing.
    pub fn unheard(metrics: Arc<Metrics>) -> Self {
        Self { tx: None, metrics }
    }

    /// Notices for one listener, the returned receiver. Up to `capacity` wait; more are
    /// dropped and counted (`tlsward_kube_events_total{outcome="dropped"}`), so that a slow
    /// listener never holds up a reload.
    pub fn channel(capacity: usize, metrics: Arc<Metrics>) -> (Self, mpsc::Receiver<Notice>) {
        let (tx, rx) = mpsc::channel(capacity);
        (Self { tx: Some(tx), metrics }, rx)
    }

    /// Tells the listener, if any.
    pub fn send(&self, notice: Notice) {
        if let Some(tx) = &self.tx
            && let Err(TrySendError::Full(_)) = tx.try_send(notice)
        {
            Metrics::count(&self.metrics.kube_events, "dropped");
        }
    }
}

impl From<&PoolOutcome> for Notice {
    fn from(o: &PoolOutcome) -> Self {
        match o {
            PoolOutcome::Rotated { generation } => Self::DatabasePoolRotated {
                generation: *generation,
            },
            PoolOutcome::Failed {
                serving_generation,
                reason,
            } => Self::DatabasePoolRotationFailed {
                serving_generation: *serving_generation,
                reason: reason.clone(),
            },
        }
    }
}

/// One reload or DB pool outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// A new certificate (server, client CA, DB CA, DB client) is served.
    CertificateRotated {
        /// Which material.
        material: Material,
        /// Serial (hex) and expiry (RFC 3339) of the new leaf, or of every CA of a bundle.
        certs: Vec<(String, String)>,
        /// Short digest of the new content.
        digest: String,
        /// The snapshot generation that serves it.
        generation: u64,
    },
    /// A new policy or new token keys are served.
    MaterialReloaded {
        /// Which material.
        material: Material,
        /// Short digest of the new content.
        digest: String,
        /// The snapshot generation that serves it.
        generation: u64,
    },
    /// A material was invalid; the last good one is still served.
    ReloadRejected {
        /// Which material.
        material: Material,
        /// The file and the reason.
        reason: String,
    },
    /// A served certificate expires within `--expiry-warning`.
    CertificateExpiringSoon {
        /// Which material.
        material: Material,
        /// Serial, hex.
        serial: String,
        /// Expiry, RFC 3339.
        not_after: String,
    },
    /// A new DB pool was verified and published.
    DatabasePoolRotated {
        /// Its generation.
        generation: u64,
    },
    /// A new DB pool could not be verified; the serving one is kept.
    DatabasePoolRotationFailed {
        /// Generation of the pool still serving (0: none).
        serving_generation: u64,
        /// Why.
        reason: String,
    },
}

impl Notice {
    /// A certificate rotation (`certs`: the leaf, or every CA of a bundle), or a reload for
    /// materials without certificates.
    pub fn applied(material: Material, certs: &[CertInfo], digest: &str, generation: u64) -> Self {
        let digest: String = digest.chars().take(12).collect();
        if certs.is_empty() {
            Self::MaterialReloaded {
                material,
                digest,
                generation,
            }
        } else {
            Self::CertificateRotated {
                material,
                certs: certs
                    .iter()
                    .map(|c| (c.serial.clone(), c.not_after_rfc3339()))
                    .collect(),
                digest,
                generation,
            }
        }
    }
}
