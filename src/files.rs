//! The one place reloadable material is read from: [`Files`], the mounted directories with an
//! optional overlay per directory. One value is shared by the reload path (which reads) and the
//! Secret watches (which lay overlays); [`Files::disk`] makes one with no overlay yet.
//!
//! With `--watch-secrets api` the Secret a directory is mounted from is watched through the
//! Kubernetes API, and its latest data is laid over the directory the moment it changes,
//! instead of waiting up to a minute for kubelet to write it there. The files stay the source
//! of truth; the overlay is read only while the directory on disk holds something the API has
//! already superseded:
//!
//! - disk = the latest version seen through the API: kubelet caught up, the overlay is dropped;
//! - disk = what it was when the overlay was laid, or an earlier version seen through the API
//!   (kubelet writes from its cache and can lag by a version or two): the overlay stays;
//! - anything else (a version the watch has not shown, a file written by hand): the files win
//!   and the overlay is dropped.
//!
//! A Secret whose data equals the files lays nothing.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};

/// How many earlier API versions of a directory are remembered.
const HISTORY: usize = 16;

#[derive(Default)]
struct DirState {
    overlay: Option<BTreeMap<String, Vec<u8>>>,
    latest: String,
    older: VecDeque<String>,
    /// The directory's digest when the overlay was laid (`None`: unreadable then; the first
    /// readable state is taken).
    disk_when_laid: Option<String>,
}

/// The file reader: the directories on disk, and what the Kubernetes API said about the
/// Secrets mounted there. Clones share the overlays.
#[derive(Clone, Default)]
pub struct Files {
    dirs: Arc<Mutex<HashMap<PathBuf, DirState>>>,
}

impl std::fmt::Debug for Files {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Files").field("overlaid", &self.dirs().len()).finish()
    }
}

/// A directory path as a key: `.` components dropped, the empty path as `.`, so that
/// `./tls`, `tls` and `tls/` name the same directory.
pub fn normalize(p: &Path) -> PathBuf {
    let out: PathBuf = p.components().filter(|c| *c != Component::CurDir).collect();
    if out.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        out
    }
}

/// The visible files of a directory on disk (kubelet's `..data` and other dot entries, and
/// sub-directories, are skipped), with their contents.
fn read_disk(dir: &Path) -> io::Result<BTreeMap<String, Vec<u8>>> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().to_string();
        let path = entry.path();
        if name.starts_with('.') || path.is_dir() {
            continue;
        }
        let data = std::fs::read(&path).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        out.insert(name, data);
    }
    Ok(out)
}

fn digest(files: &BTreeMap<String, Vec<u8>>) -> String {
    let mut all = Vec::new();
    for (name, data) in files {
        all.extend_from_slice(&(name.len() as u64).to_be_bytes());
        all.extend_from_slice(name.as_bytes());
        all.extend_from_slice(&(data.len() as u64).to_be_bytes());
        all.extend_from_slice(data);
    }
    crate::util::sha256_hex(&all)
}

fn disk_digest(dir: &Path) -> Option<String> {
    read_disk(dir).ok().map(|f| digest(&f))
}

impl Files {
    /// A reader of the directories on disk, with no overlay until one is laid.
    pub fn disk() -> Self {
        Self::default()
    }

    fn dirs(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, DirState>> {
        self.dirs.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The overlay's files for `dir` when the directory on disk is behind the latest API version.
    /// The directory is read without holding the lock. A directory that cannot be read, or that
    /// reads differently twice in a row (caught in the middle of kubelet's swap), decides nothing:
    /// the overlay stays.
    fn live_overlay(&self, dir: &Path) -> Option<BTreeMap<String, Vec<u8>>> {
        let key = normalize(dir);
        let known = |disk: &str| {
            let map = self.dirs();
            let st = map.get(&key)?;
            let files = st.overlay.clone()?;
            let laid = st.disk_when_laid.as_deref().is_none_or(|d| d == disk);
            Some((disk == st.latest, laid || st.older.iter().any(|o| o == disk), files))
        };
        self.dirs().get(&key)?.overlay.as_ref()?;
        let Some(disk) = disk_digest(dir) else {
            return self.dirs().get(&key)?.overlay.clone();
        };
        let (caught_up, behind, files) = known(&disk)?;
        if caught_up {
            return None;
        }
        if behind {
            let mut map = self.dirs();
            if let Some(st) = map.get_mut(&key) {
                st.disk_when_laid.get_or_insert(disk);
            }
            return Some(files);
        }
        // A version the watch has not shown: the files win, if they read the same again.
        if disk_digest(dir).as_deref() != Some(disk.as_str()) {
            return Some(files);
        }
        tracing::debug!(dir = %dir.display(), "the mounted files moved on to a version the API watch has not shown; dropping the API overlay");
        if let Some(st) = self.dirs().get_mut(&key) {
            st.overlay = None;
        }
        None
    }

    /// Records `files` as the latest version of the Secret mounted at `dir` (seen through the
    /// API) and lays it over the directory; it is read only while the files are behind it.
    /// Returns whether what is read from `dir` changed.
    pub fn lay_over(&self, dir: &Path, files: BTreeMap<String, Vec<u8>>) -> bool {
        let disk = read_disk(dir).ok();
        let before = self.live_overlay(dir).or_else(|| disk.clone()).unwrap_or_default();
        let latest = digest(&files);
        let mut map = self.dirs();
        let st = map.entry(normalize(dir)).or_default();
        if st.latest != latest {
            if !st.latest.is_empty() {
                st.older.push_back(std::mem::take(&mut st.latest));
                if st.older.len() > HISTORY {
                    st.older.pop_front();
                }
            }
            st.latest = latest;
        }
        st.disk_when_laid = disk.as_ref().map(digest);
        st.overlay = Some(files.clone());
        before != files
    }

    /// Forgets what the API said about `dir` (its Secret was deleted): only the files are read.
    pub fn forget(&self, dir: &Path) {
        self.dirs().remove(&normalize(dir));
    }

    /// Whether an overlay is laid over `dir` (and still current).
    pub fn has_overlay(&self, dir: &Path) -> bool {
        self.live_overlay(dir).is_some()
    }

    /// Reads a file: from the overlay of its directory if there is one, else from disk.
    pub fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        if let (Some(dir), Some(name)) = (path.parent(), path.file_name())
            && let Some(files) = self.live_overlay(dir)
        {
            return files.get(&*name.to_string_lossy()).cloned().ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    "not in the Secret's data (seen through the Kubernetes API)",
                )
            });
        }
        std::fs::read(path)
    }

    /// The visible files of a directory (overlay or disk) with their contents.
    pub fn read_dir(&self, dir: &Path) -> io::Result<BTreeMap<String, Vec<u8>>> {
        match self.live_overlay(dir) {
            Some(files) => Ok(files),
            None => read_disk(dir),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(pairs: &[(&str, &str)]) -> BTreeMap<String, Vec<u8>> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn overlay_is_read_until_the_disk_changes() {
        let dir = tempfile::tempdir().unwrap();
        let f = Files::disk();
        let d = dir.path();
        std::fs::write(d.join("tls.crt"), "old").unwrap();
        assert_eq!(f.read(&d.join("tls.crt")).unwrap(), b"old");
        assert!(f.lay_over(d, files(&[("tls.crt", "new"), ("ca.crt", "ca")])));
        assert!(f.has_overlay(d));
        assert_eq!(f.read(&d.join("tls.crt")).unwrap(), b"new");
        assert_eq!(f.read(&d.join("ca.crt")).unwrap(), b"ca");
        assert_eq!(f.read_dir(d).unwrap().len(), 2);
        // The same data again changes nothing.
        assert!(!f.lay_over(d, files(&[("tls.crt", "new"), ("ca.crt", "ca")])));
        // kubelet writes: the files win again, whatever they hold.
        std::fs::write(d.join("tls.crt"), "newer").unwrap();
        assert!(!f.has_overlay(d));
        assert_eq!(f.read(&d.join("tls.crt")).unwrap(), b"newer");
        assert!(f.read(&d.join("ca.crt")).is_err());
    }

    #[test]
    fn kubelet_lagging_a_version_behind_keeps_the_latest() {
        let dir = tempfile::tempdir().unwrap();
        let f = Files::disk();
        let d = dir.path();
        std::fs::write(d.join("tls.crt"), "A").unwrap();
        assert!(!f.lay_over(d, files(&[("tls.crt", "A")])));
        assert!(f.lay_over(d, files(&[("tls.crt", "B")])));
        assert!(f.lay_over(d, files(&[("tls.crt", "C")])));
        // kubelet writes B from its cache: older than what the API showed, C stays.
        std::fs::write(d.join("tls.crt"), "B").unwrap();
        assert_eq!(f.read(&d.join("tls.crt")).unwrap(), b"C");
        // kubelet writes C: caught up, the overlay goes.
        std::fs::write(d.join("tls.crt"), "C").unwrap();
        assert!(!f.has_overlay(d));
        // A later API version, then a file the API never showed: the file wins.
        assert!(f.lay_over(d, files(&[("tls.crt", "D")])));
        std::fs::write(d.join("tls.crt"), "X").unwrap();
        assert_eq!(f.read(&d.join("tls.crt")).unwrap(), b"X");
        assert!(!f.has_overlay(d));
        // The API reverts to a version the files already hold; kubelet then writes the
        // reverted-from version from its cache: the API's latest still wins.
        std::fs::write(d.join("tls.crt"), "E").unwrap();
        assert!(!f.lay_over(d, files(&[("tls.crt", "E")])));
        assert!(f.lay_over(d, files(&[("tls.crt", "F")])));
        assert!(f.lay_over(d, files(&[("tls.crt", "E")])));
        std::fs::write(d.join("tls.crt"), "F").unwrap();
        assert_eq!(f.read(&d.join("tls.crt")).unwrap(), b"E");
        // A deleted Secret: only the files count.
        f.forget(d);
        assert_eq!(f.read(&d.join("tls.crt")).unwrap(), b"F");
        // ./dir and dir/ name the same directory.
        assert_eq!(normalize(Path::new("./tls/")), normalize(Path::new("tls")));
        assert_eq!(normalize(Path::new("")), PathBuf::from("."));
    }

    #[test]
    fn an_unreadable_directory_decides_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let f = Files::disk();
        let d = dir.path().join("tls");
        std::fs::create_dir(&d).unwrap();
        std::fs::write(d.join("tls.crt"), "A").unwrap();
        assert!(f.lay_over(&d, files(&[("tls.crt", "B")])));
        // Mid-swap, the directory is briefly gone: the overlay stays.
        std::fs::rename(&d, dir.path().join("moved")).unwrap();
        assert_eq!(f.read_dir(&d).unwrap().len(), 1);
        std::fs::rename(dir.path().join("moved"), &d).unwrap();
        assert_eq!(f.read(&d.join("tls.crt")).unwrap(), b"B");
    }

    #[test]
    fn data_equal_to_the_files_lays_nothing_and_names_missing_keys() {
        let dir = tempfile::tempdir().unwrap();
        let f = Files::disk();
        let d = dir.path();
        std::fs::write(d.join("key"), "k").unwrap();
        std::fs::create_dir(d.join("..data")).unwrap();
        assert!(!f.lay_over(d, files(&[("key", "k")])));
        assert!(!f.has_overlay(d));
        assert!(f.lay_over(d, files(&[("other", "o")])));
        let err = f.read(&d.join("key")).unwrap_err();
        assert!(err.to_string().contains("Secret's data"), "{err}");
    }
}
