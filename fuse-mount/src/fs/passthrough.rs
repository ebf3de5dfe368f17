//! Passthrough reads: a file opened only to read, whose value the store
//! keeps whole in one local file ([`Storage::open_file`]), is read by the
//! kernel straight from that file (FUSE passthrough, Linux 6.9+). The
//! daemon sees the open and the release, and no read in between; so
//! passthrough is used only while no access rule and no audit log are in
//! force (with them, every read is decided and recorded by the daemon).
//!
//! The kernel lets an inode have either cached opens (through the mount's
//! page cache) or passthrough opens sharing one backing file, never both at
//! once: an open of the wrong kind fails with `EIO`. [`Passthrough`] counts
//! each kind per open inode so that every reply is of the kind the kernel
//! accepts:
//! - a read-only open of a clean file nobody has open cached gets a backing
//!   file (when the store has one and the kernel agreed to passthrough at
//!   `init`);
//! - while a backing file is in use, every other open of the inode is a
//!   passthrough open of that same file. One that must see the daemon (to
//!   write, or to read a content that changed since the backing file was
//!   taken) asks for direct I/O as well: its reads and writes still come
//!   to the daemon, and only `mmap` reaches the backing file, which is
//!   opened read-only (a shared writable mapping is refused);
//! - otherwise the open is cached, as without passthrough.
//!
//! What a passthrough reader sees: the value as it was when the backing
//! file was taken, until it closes. The store never changes that file in
//! place while it is held (a patch writes a new copy), so a change made
//! meanwhile (through a direct-I/O writer) reaches readers that open the
//! file after it, not the one already reading: as with a local file that an
//! editor replaces by a rename.
//!
//! [`Storage::open_file`]: tierfs_core::Storage::open_file

use std::fs::File;
use std::sync::Arc;

use fuser::BackingId;
use tierfs_core::LocalFile;

/// Registers an open file with the kernel as a backing file (the reply's
/// `open_backing`).
pub type Register<'a> = &'a (dyn Fn(&File) -> std::io::Result<BackingId> + Sync);

/// The opens of one inode, by kind; see the module documentation.
#[derive(Debug, Default)]
pub struct Passthrough {
    backing: Option<Backing>,
    cached: usize,
    /// Direct-I/O writes went past the kernel's page cache: the next
    /// cached open must have it dropped.
    stale_pages: bool,
}

/// The backing file of an inode's passthrough opens.
#[derive(Debug)]
struct Backing {
    id: Arc<BackingId>,
    /// Held so that the store keeps the file unchanged.
    _file: LocalFile,
    /// The inode's content generation when the file was taken.
    generation: u64,
    handles: usize,
}

/// The kind of one open, as replied to the kernel.
#[derive(Debug, Clone)]
pub enum Mode {
    /// Through the page cache.
    Cached,
    /// A passthrough open of the inode's backing file.
    Backed {
        /// The backing file, as registered with the kernel.
        id: Arc<BackingId>,
        /// Reads and writes still come to the daemon (direct I/O).
        direct: bool,
    },
}

impl Passthrough {
    /// An open while a backing file is in use: it must be a passthrough
    /// open of it, direct unless it only reads the content the file holds.
    pub fn share(&mut self, writable: bool, generation: u64) -> Option<Mode> {
        let backing = self.backing.as_mut()?;
        backing.handles += 1;
        let direct = writable || generation != backing.generation;
        if writable {
            self.stale_pages = true;
        }
        Some(Mode::Backed { id: backing.id.clone(), direct })
    }

    /// Whether a cached open is what the kernel would accept now and the
    /// only choice (a backing file could not be taken for this open).
    pub fn must_cache(&self, writable: bool) -> bool {
        self.backing.is_none() && (writable || self.cached > 0)
    }

    /// A cached open. Returns whether the kernel's pages of the file must
    /// be dropped first (direct writes went past them).
    pub fn cache(&mut self) -> bool {
        self.cached += 1;
        std::mem::take(&mut self.stale_pages)
    }

    /// A read-only open backed by `file`, taken while the content was of
    /// `generation`; `None` when the inode was opened cached meanwhile, or
    /// the kernel refused the file (the open is then cached).
    pub fn back(&mut self, file: LocalFile, generation: u64, register: Register<'_>) -> Option<Mode> {
        if let Some(mode) = self.share(false, generation) {
            return Some(mode);
        }
        if self.cached > 0 {
            return None;
        }
        match register(file.file()) {
            Ok(id) => {
                let id = Arc::new(id);
                self.backing = Some(Backing { id: id.clone(), _file: file, generation, handles: 1 });
                Some(Mode::Backed { id, direct: false })
            }
            Err(e) => {
                tracing::debug!(error = %e, "the kernel refused a backing file; the open is cached");
                None
            }
        }
    }

    /// The release of an open of kind `mode`; the last passthrough one
    /// lets the backing file go.
    pub fn release(&mut self, mode: &Mode) {
        match mode {
            Mode::Cached => self.cached = self.cached.saturating_sub(1),
            Mode::Backed { .. } => {
                if let Some(backing) = &mut self.backing {
                    backing.handles -= 1;
                    if backing.handles == 0 {
                        self.backing = None;
                    }
                }
            }
        }
    }
}
