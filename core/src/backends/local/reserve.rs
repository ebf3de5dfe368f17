//! Room kept for deletes on a full device.
//!
//! The database never overwrites a page in place: even a delete writes new
//! pages before it frees old ones, so on a device with no space left a
//! delete fails like a write, and the store could not be emptied. The
//! store therefore keeps a file of [`RESERVE`] bytes beside the database.
//! When a commit fails for lack of space, the file is removed: the deletes
//! (and reads, which need no space) that follow have room, and writes go
//! on in the pages the deletes free inside the database. The reserve is
//! written again as soon as the device has room for it twice over.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::private_files;

/// Bytes kept free for deletes.
pub(super) const RESERVE: u64 = 1 << 20;
const FILE: &str = "reserve";

/// The reserve file of a store.
#[derive(Debug)]
pub(super) struct Reserve {
    path: PathBuf,
    present: AtomicBool,
}

impl Reserve {
    /// The reserve of the store in `root`, written now if missing and the
    /// device has room.
    pub fn open(root: &Path) -> Reserve {
        let path = root.join(FILE);
        let present = std::fs::metadata(&path).is_ok_and(|m| m.len() == RESERVE);
        let reserve = Reserve { path, present: AtomicBool::new(present) };
        if !present {
            reserve.restore();
        }
        reserve
    }

    /// Whether the reserve is in place.
    pub fn is_present(&self) -> bool {
        self.present.load(Ordering::Acquire)
    }

    /// Gives the reserve's space back to the device; whether it freed any.
    pub fn release(&self) -> bool {
        if !self.present.swap(false, Ordering::AcqRel) {
            return false;
        }
        match std::fs::remove_file(&self.path) {
            Ok(()) => {
                tracing::warn!(path = %self.path.display(), "the device is full: released the reserve so that deletes can go on");
                true
            }
            Err(e) => {
                tracing::error!(path = %self.path.display(), error = %e, "could not release the reserve");
                false
            }
        }
    }

    /// Writes the reserve again if it is missing and the device has room
    /// for it twice over.
    pub fn restore(&self) {
        if self.is_present() || free_space(self.path.parent().unwrap_or(Path::new("."))) < 2 * RESERVE {
            return;
        }
        let written = (|| {
            let mut file =
                private_files::private_options().write(true).create(true).truncate(true).open(&self.path)?;
            // Real bytes: a sparse file would hold no space.
            file.write_all(&vec![0u8; RESERVE as usize])?;
            file.sync_all()
        })();
        match written {
            Ok(()) => self.present.store(true, Ordering::Release),
            Err(e) => {
                let _ = std::fs::remove_file(&self.path);
                tracing::debug!(path = %self.path.display(), error = %e, "the reserve could not be written yet");
            }
        }
    }
}

/// Bytes available to this process on the file system holding `dir`.
fn free_space(dir: &Path) -> u64 {
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()) else { return 0 };
    // SAFETY: an all-zero statvfs is a valid value to be overwritten.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is NUL-terminated and `st` is valid for writes.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return 0;
    }
    st.f_bavail.saturating_mul(st.f_frsize)
}
