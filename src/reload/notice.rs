//! What reloads and DB pool rebuilds tell the outside world beyond logs and metrics: one
//! [`Notice`] per outcome, sent to whoever listens (the Kubernetes Event publisher, when it
//! runs). Sending never blocks a reload: when nobody listens nothing is sent; when the
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

    /// Whether this is a warning (else normal).
    pub fn is_warning(&self) -> bool {
        matches!(
            self,
            Self::ReloadRejected { .. }
                | Self::CertificateExpiringSoon { .. }
                | Self::DatabasePoolRotationFailed { .. }
        )
    }

    /// The Event reason (PascalCase, as `kubectl describe` shows it).
    pub fn reason(&self) -> &'static str {
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
    pub fn note(&self) -> String {
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
    pub fn action(&self) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

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
