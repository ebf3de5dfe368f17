//! Files only the daemon's user may read: the store, its blobs, spools and
//! the audit log.
//!
//! Everything TierFS creates on disk is private to the user running it:
//! directories `0700`, files `0600`, whatever the umask. Access rules are
//! only as strong as the files behind them, so an existing store or audit
//! log that other users can read or write is refused when access rules are
//! configured ([`check_private`]), with the `chmod` that fixes it.
//!
//! ```
//! use std::os::unix::fs::PermissionsExt;
//! use tierfs_core::private_files::{check_private, create_dir_private, create_private};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let store = dir.path().join("store");
//! create_dir_private(&store).unwrap();
//! let file = create_private(&store.join("data")).unwrap();
//! assert_eq!(file.metadata().unwrap().permissions().mode() & 0o777, 0o600);
//! assert!(check_private(&store, "the store directory", false).is_ok());
//!
//! std::fs::set_permissions(&store, std::fs::Permissions::from_mode(0o755)).unwrap();
//! let err = check_private(&store, "the store directory", false).unwrap_err();
//! assert!(err.to_string().contains("chmod 700"), "{err}");
//! ```

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use crate::error::{Error, ErrorKind, Result};

/// Mode of the directories TierFS creates.
pub const DIR_MODE: u32 = 0o700;
/// Mode of the files TierFS creates.
pub const FILE_MODE: u32 = 0o600;

/// Creates `dir` and its missing parents; the directories created are `0700`
/// (an existing directory is left as it is).
pub fn create_dir_private(dir: &Path) -> io::Result<()> {
    std::fs::DirBuilder::new().recursive(true).mode(DIR_MODE).create(dir)
}

/// Options that create a missing file `0600`.
pub fn private_options() -> OpenOptions {
    let mut options = OpenOptions::new();
    options.mode(FILE_MODE);
    options
}

/// Creates a new file `0600`, failing if it exists.
pub fn create_private(path: &Path) -> io::Result<File> {
    private_options().write(true).create_new(true).open(path)
}

/// Creates `path` empty and `0600` if it does not exist (so that a library
/// that creates it with its own mode finds it already private).
pub fn touch_private(path: &Path) -> io::Result<()> {
    match private_options().write(true).create_new(true).open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Refuses `path` (a file or directory, `what` in the message) when users
/// other than its owner may read or write it; with `group_read`, the group
/// may read (the audit log's `audit.group`). A missing path passes.
pub fn check_private(path: &Path, what: &str, group_read: bool) -> Result<()> {
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(format!("cannot inspect {what} {}", path.display()), e)),
    };
    let mode = meta.permissions().mode() & 0o777;
    let dir = meta.is_dir();
    let allowed = match (dir, group_read) {
        (true, false) => 0o700,
        (true, true) => 0o750,
        (false, false) => 0o600,
        (false, true) => 0o640,
    };
    if mode & !allowed == 0 {
        return Ok(());
    }
    let who = if mode & 0o007 != 0 { "every local user" } else { "its group" };
    Err(Error::new(
        ErrorKind::Config,
        format!(
            "{what} {} has mode {mode:03o}: {who} can read or change it around the access rules; run `chmod {allowed:o} {}`{}",
            path.display(),
            path.display(),
            if dir { " (and `chmod -R go-rwx` on what is inside)" } else { "" },
        ),
    ))
}

/// The owner's uid of `path`, if it exists.
pub fn owner_of(path: &Path) -> Option<u32> {
    std::fs::metadata(path).ok().map(|m| m.uid())
}
