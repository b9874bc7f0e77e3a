//! Writes a directory the way kubelet updates a Secret volume (AtomicWriter): the files go
//! into a new `..<timestamp>.<n>` directory, a `..data_tmp` symlink to it is renamed over
//! `..data` (the one atomic step), the user-visible names are symlinks `name -> ..data/name`,
//! and the old timestamped directory is removed. [`stage`] and [`swap`] are the two halves, for
//! the benchmarks that start their clock at the rename.

use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};

/// Projects `files` into `dir` as kubelet would.
pub fn write(dir: &Path, files: &[(&str, &[u8])]) {
    let old = std::fs::read_link(dir.join("..data")).ok().map(|p| dir.join(p));
    stage(dir, files);
    swap(dir, files, old);
}

/// AtomicWriter up to the swap: `files` in a new timestamped directory (returned), and a
/// `..data_tmp` link to it.
pub fn stage(dir: &Path, files: &[(&str, &[u8])]) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let now = time::OffsetDateTime::now_utc();
    let ts = format!(
        "..{:04}_{:02}_{:02}_{:02}_{:02}_{:02}.{}",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second(),
        rand::random::<u32>()
    );
    let ts_dir = dir.join(&ts);
    std::fs::create_dir(&ts_dir).unwrap();
    std::fs::set_permissions(&ts_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    for (name, data) in files {
        let p = ts_dir.join(name);
        std::fs::write(&p, data).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let _ = std::fs::remove_file(dir.join("..data_tmp"));
    symlink(&ts, dir.join("..data_tmp")).unwrap();
    ts_dir
}

/// The swap itself (`..data_tmp` renamed over `..data`), then the user-visible links, the
/// removal of names the new data lacks, and of `old` (what `..data` pointed at before).
pub fn swap(dir: &Path, files: &[(&str, &[u8])], old: Option<PathBuf>) {
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
    for (name, _) in files {
        let visible = dir.join(name);
        if std::fs::symlink_metadata(&visible).is_err() {
            symlink(Path::new("..data").join(name), &visible).unwrap();
        }
    }
    let Some(old_dir) = old else { return };
    if let Ok(entries) = std::fs::read_dir(&old_dir) {
        for e in entries.flatten() {
            let name = e.file_name();
            if !files.iter().any(|(n, _)| std::ffi::OsStr::new(n) == name) {
                let _ = std::fs::remove_file(dir.join(&name));
            }
        }
    }
    std::fs::remove_dir_all(old_dir).unwrap();
}
