//! Hot reload of everything in the snapshot: a watcher on the mounted directories (and their
//! parents), SIGHUP and an optional interval trigger one reload task, which re-reads every
//! source in one pass, validates, and publishes a new snapshot through the one pointer, or
//! keeps the last good one and says which file was wrong and why; what it did goes as one
//! event to every reporter (`/reload-status`, metrics, log, notices).

pub(crate) mod notice;
pub(crate) mod report;
pub(crate) mod status;
pub(crate) mod task;
pub(crate) mod watcher;

pub use notice::{Notice, Notices};
pub use status::{Outcome, ReloadStatus, Status};
pub use task::Settings;
