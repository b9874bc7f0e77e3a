//! The one place reloadable material is read from: the mounted directories, with an optional
//! overlay per directory.
//!
//! With `--watch-secrets api` the Secret a directory is mounted from is watched through the
//! Kubernetes API, and its data is laid over the directory the moment it changes, instead of
//! waiting up to a minute for kubelet to write it there. The files stay the source of truth:
//! an overlay lasts only while the directory on disk is what it was when the overlay was
//! laid; as soon as kubelet writes (the same data, or anything newer), the overlay is dropped
//! and the files are read again. A Secret whose data equals the files lays nothing.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{LazyLock, Mutex};

struct Overlay {
    files: BTreeMap<String, Vec<u8>>,
    disk_when_laid: String,
}

static OVERLAYS: LazyLock<Mutex<HashMap<PathBuf, Overlay>>> = LazyLock::new(Default::default);

fn overlays() -> std::sync::MutexGuard<'static, HashMap<PathBuf, Overlay>> {
    OVERLAYS.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
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
    crate::tls::material::sha256_hex(&all)
}

fn disk_digest(dir: &Path) -> String {
    read_disk(dir).map(|f| digest(&f)).unwrap_or_default()
}

/// The overlay's files for `dir`, if one is laid and the directory has not changed since.
fn live_overlay(dir: &Path) -> Option<BTreeMap<String, Vec<u8>>> {
    let mut map = overlays();
    let o = map.get(dir)?;
    if disk_digest(dir) != o.disk_when_laid {
        tracing::debug!(dir = %dir.display(), "the mounted files changed; dropping the API overlay");
        map.remove(dir);
        return None;
    }
    Some(o.files.clone())
}

/// Lays `files` (a Secret's data) over `dir`. Returns whether what is read from `dir` changed.
pub fn lay_over(dir: &Path, files: BTreeMap<String, Vec<u8>>) -> bool {
    let disk = read_disk(dir).unwrap_or_default();
    let before = live_overlay(dir).unwrap_or_else(|| disk.clone());
    let mut map = overlays();
    if files == disk {
        map.remove(dir);
    } else {
        map.insert(
            dir.to_path_buf(),
            Overlay {
                files: files.clone(),
                disk_when_laid: digest(&disk),
            },
        );
    }
    before != files
}

/// Whether an overlay is laid over `dir` (and still current).
pub fn has_overlay(dir: &Path) -> bool {
    live_overlay(dir).is_some()
}

/// Reads a file: from the overlay of its directory if there is one, else from disk.
pub fn read(path: &Path) -> io::Result<Vec<u8>> {
    if let (Some(dir), Some(name)) = (path.parent(), path.file_name())
        && let Some(files) = live_overlay(dir)
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
pub fn read_dir(dir: &Path) -> io::Result<BTreeMap<String, Vec<u8>>> {
    match live_overlay(dir) {
        Some(files) => Ok(files),
        None => read_disk(dir),
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
        let d = dir.path();
        std::fs::write(d.join("tls.crt"), "old").unwrap();
        assert_eq!(read(&d.join("tls.crt")).unwrap(), b"old");
        assert!(lay_over(d, files(&[("tls.crt", "new"), ("ca.crt", "ca")])));
        assert!(has_overlay(d));
        assert_eq!(read(&d.join("tls.crt")).unwrap(), b"new");
        assert_eq!(read(&d.join("ca.crt")).unwrap(), b"ca");
        assert_eq!(read_dir(d).unwrap().len(), 2);
        // The same data again changes nothing.
        assert!(!lay_over(d, files(&[("tls.crt", "new"), ("ca.crt", "ca")])));
        // kubelet writes: the files win again, whatever they hold.
        std::fs::write(d.join("tls.crt"), "newer").unwrap();
        assert!(!has_overlay(d));
        assert_eq!(read(&d.join("tls.crt")).unwrap(), b"newer");
        assert!(read(&d.join("ca.crt")).is_err());
    }

    #[test]
    fn data_equal_to_the_files_lays_nothing_and_names_missing_keys() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("key"), "k").unwrap();
        std::fs::create_dir(d.join("..data")).unwrap();
        assert!(!lay_over(d, files(&[("key", "k")])));
        assert!(!has_overlay(d));
        assert!(lay_over(d, files(&[("other", "o")])));
        let err = read(&d.join("key")).unwrap_err();
        assert!(err.to_string().contains("Secret's data"), "{err}");
    }
}
