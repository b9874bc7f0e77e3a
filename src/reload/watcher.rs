//! Watches the mounted directories, not the files: kubelet replaces a Secret volume's content
//! by renaming a new `..data` symlink into place, so a watch on `tls.crt` would follow the
//! old inode and go deaf after the first rotation. Each directory's parent is watched too, so
//! a directory that is deleted and re-created (or appears after start-up) is picked up; the
//! directory watch is re-armed whenever its inode changes.
//!
//! Any event that touches a watched directory is only a hint ("maybe changed"): the reload
//! task re-reads everything and compares digests. Access events (our own reads) are ignored.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc::UnboundedSender;

/// A watcher on a set of directories and their parents.
pub(crate) struct DirWatcher {
    watcher: RecommendedWatcher,
    dirs: Vec<PathBuf>,
    /// Inode of each directory as last watched (`None`: not watched, e.g. absent).
    armed: HashMap<PathBuf, Option<u64>>,
    parents: Vec<PathBuf>,
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

fn relevant(path: &Path, dirs: &[PathBuf]) -> bool {
    dirs.iter().any(|d| path.starts_with(d))
}

impl DirWatcher {
    /// Starts watching; every relevant event sends `()` on `tx`.
    pub(crate) fn new(dirs: &[PathBuf], tx: UnboundedSender<()>) -> notify::Result<Self> {
        let dirs: Vec<PathBuf> = dirs.iter().map(|d| absolute(d)).collect();
        let filter = dirs.clone();
        let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| match res {
            Ok(ev) if matches!(ev.kind, EventKind::Access(_)) => {}
            Ok(ev) if ev.paths.is_empty() || ev.paths.iter().any(|p| relevant(p, &filter)) => {
                let _ = tx.send(());
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "file watcher error; the next reload re-reads everything");
                let _ = tx.send(());
            }
        })?;
        let mut parents: Vec<PathBuf> = dirs.iter().filter_map(|d| d.parent().map(Path::to_path_buf)).collect();
        parents.sort();
        parents.dedup();
        let mut w = Self {
            watcher,
            dirs,
            armed: HashMap::new(),
            parents,
        };
        for p in w.parents.clone() {
            if let Err(e) = w.watcher.watch(&p, RecursiveMode::NonRecursive) {
                tracing::warn!(dir = %p.display(), error = %e, "cannot watch; a re-created directory will be noticed only on SIGHUP or --reload-interval");
            }
        }
        w.ensure();
        Ok(w)
    }

    /// (Re-)arms the watch of every directory whose inode changed since it was last armed.
    pub(crate) fn ensure(&mut self) {
        for d in self.dirs.clone() {
            let ino = std::fs::metadata(&d).ok().map(|m| m.ino());
            let before = self.armed.get(&d).copied().flatten();
            if ino == before && self.armed.contains_key(&d) {
                continue;
            }
            if before.is_some() {
                let _ = self.watcher.unwatch(&d);
            }
            let armed = match ino {
                Some(i) => match self.watcher.watch(&d, RecursiveMode::NonRecursive) {
                    Ok(()) => Some(i),
                    Err(e) => {
                        tracing::warn!(dir = %d.display(), error = %e, "cannot watch directory");
                        None
                    }
                },
                None => None,
            };
            self.armed.insert(d, armed);
        }
    }
}
