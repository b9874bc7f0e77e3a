//! The one pointer to the served snapshot. [`SnapshotStore`] is its only writer (the reload
//! task holds it); [`Snapshots`] are cheap read handles (the accept loop, token verification,
//! the DB manager) that load the current snapshot once per handshake or request and can wait
//! for the next publication.

use std::sync::Arc;

use arc_swap::{ArcSwap, Guard};
use tokio::sync::watch;

use super::Snapshot;

/// The writer: publishes a validated snapshot to every reader at once.
pub struct SnapshotStore {
    current: Arc<ArcSwap<Snapshot>>,
    published: watch::Sender<u64>,
}

impl SnapshotStore {
    /// A store serving `first`.
    pub fn new(first: Snapshot) -> Self {
        let generation = first.generation;
        Self {
            current: Arc::new(ArcSwap::from_pointee(first)),
            published: watch::Sender::new(generation),
        }
    }

    /// A read handle.
    pub fn reader(&self) -> Snapshots {
        Snapshots {
            current: self.current.clone(),
            published: self.published.subscribe(),
        }
    }

    /// The served snapshot.
    pub fn load_full(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Serves `snapshot`: new handshakes and requests use it from now on, and readers waiting
    /// in [`Snapshots::changed`] wake up.
    pub fn publish(&self, snapshot: Snapshot) {
        let generation = snapshot.generation;
        self.current.store(Arc::new(snapshot));
        self.published.send_replace(generation);
    }
}

/// A read handle on the served snapshot.
#[derive(Clone)]
pub struct Snapshots {
    current: Arc<ArcSwap<Snapshot>>,
    published: watch::Receiver<u64>,
}

impl Snapshots {
    /// The served snapshot, for one handshake or request.
    pub fn load(&self) -> Guard<Arc<Snapshot>> {
        self.current.load()
    }

    /// The served snapshot, to keep.
    pub fn load_full(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Waits until a snapshot is published after the last one this handle saw; `false` when
    /// the store is gone.
    pub async fn changed(&mut self) -> bool {
        self.published.changed().await.is_ok()
    }
}

impl crate::db::manager::MaterialFeed for Snapshots {
    fn current(&self) -> Option<Arc<crate::db::material::DbTls>> {
        self.load().db_tls.clone()
    }

    async fn changed(&mut self) -> bool {
        Snapshots::changed(self).await
    }
}
