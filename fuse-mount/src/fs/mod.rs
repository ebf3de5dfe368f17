//! The file system, without a kernel: [`TierFs`] turns POSIX operations on
//! inodes and handles into store operations through the storage manager.
//!
//! The FUSE adapter (`crate::fuse`) only converts kernel requests into
//! calls of this type and replies; everything here is unit-tested with an
//! in-memory store.
//!
//! Paths are keys (`/a/b.txt` is `a/b.txt`). A directory is a prefix: it
//! exists when a marker object (`posix.type = dir`, empty value) is stored
//! under its key or when keys exist below it. Attributes live in each
//! object's metadata (see [`attr`]). Semantics and limits are described in
//! `docs/semantics.md`.

pub mod attr;
mod directories;
pub mod file;
mod handles;
pub mod inode;
pub mod journal;
pub mod listings;
mod names;
pub mod overlay;
pub mod passthrough;
mod read_ahead;
pub mod spool;
pub mod store;
pub mod xattrs;

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::hash::{Hash, Hasher};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use parking_lot::Mutex;
use tierfs_core::access::StorageOperationType as Op;
use tierfs_core::{Key, Session};

use crate::errno::{FsError, FsResult};
use crate::identity::{Caller, Identities, IdentityMap};
use attr::{Attr, Defaults, Kind, PosixMeta};
use file::{Content, FileState, OpenFile};
use inode::{InodeTable, ROOT};
use listings::Child;
use read_ahead::ReadAhead;
use spool::SpoolDir;
use store::{is_not_found, Store};

pub use inode::ROOT as ROOT_INO;

/// Settings of the file system layer.
#[derive(Debug, Clone)]
pub struct FsOptions {
    /// How long the kernel may cache attributes and names.
    pub attr_ttl: Duration,
    /// Owner and mode of objects without `posix.*` metadata.
    pub defaults: Defaults,
    /// Queue small changes and commit them in groups (see [`journal`]).
    pub group_commit: bool,
    /// Mode of the root directory.
    pub root_mode: u32,
    /// A directory on the file system that holds the store, whose space
    /// `statfs` reports (the spool's when none: a store of objects only).
    pub store_dir: Option<std::path::PathBuf>,
    /// Others may change the store (an object store, another mount): an
    /// open compares the object's version with the one the kernel's cached
    /// pages came from, and has the kernel drop them when it changed
    /// (close-to-open consistency; see `docs/semantics.md`).
    pub shared: bool,
}

impl Default for FsOptions {
    fn default() -> Self {
        FsOptions {
            attr_ttl: Duration::from_secs(1),
            defaults: Defaults::default(),
            group_commit: true,
            root_mode: 0o755,
            store_dir: None,
            shared: false,
        }
    }
}

/// A name resolved to an inode, with attributes and how long to cache them.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The attributes.
    pub attr: Attr,
    /// Cache lifetime for the kernel.
    pub ttl: Duration,
}

/// An opened file.
#[derive(Debug, Clone)]
pub struct Opened {
    /// The handle.
    pub fh: u64,
    /// Opened to write: its `close` reports what could not be saved, so
    /// the kernel must send a flush for it.
    pub writable: bool,
    /// The kernel may keep the pages it cached of the file: they are of
    /// the version the store holds (`false`: it must drop them).
    pub keep_cache: bool,
    /// A passthrough open of this backing file (see [`passthrough`]);
    /// with `true`, reads and writes still come to the daemon (direct I/O).
    pub passthrough: Option<(Arc<fuser::BackingId>, bool)>,
}

/// An open directory: its handle, and what the kernel may do with its
/// listing.
#[derive(Debug, Clone, Copy)]
pub struct OpenedDir {
    /// The handle.
    pub fh: u64,
    /// The kernel's copy of the listing.
    pub cache: DirCache,
}

/// What the kernel may do with its own copy of a directory's listing
/// (`FOPEN_CACHE_DIR`). Only where everyone sees the same listing (no access
/// rules) and listings are kept at all (a nonzero attribute lifetime).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirCache {
    /// Every read of the directory asks the daemon.
    Off,
    /// The kernel drops what it holds and fills a new copy from this listing.
    Fill,
    /// The listing is one the daemon still keeps: the kernel's copy, filled
    /// from it, is as fresh, and serves the reads without asking.
    Keep,
}

/// Attribute changes of `setattr`.
#[derive(Debug, Clone, Default)]
pub struct SetAttr {
    /// New permission bits.
    pub mode: Option<u32>,
    /// New owner.
    pub uid: Option<u32>,
    /// New group.
    pub gid: Option<u32>,
    /// New size (truncate or extend).
    pub size: Option<u64>,
    /// New access time.
    pub atime: Option<TimeSpec>,
    /// New modification time.
    pub mtime: Option<TimeSpec>,
    /// New change time.
    pub ctime: Option<SystemTime>,
    /// The handle the change came through, if any.
    pub fh: Option<u64>,
}

/// A time to set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeSpec {
    /// The current time.
    Now,
    /// A given time.
    At(SystemTime),
}

impl TimeSpec {
    fn resolve(self) -> SystemTime {
        match self {
            TimeSpec::Now => SystemTime::now(),
            TimeSpec::At(t) => t,
        }
    }
}

/// One directory entry for `readdir`.
#[derive(Debug, Clone)]
pub struct DirEntry {
    /// Inode number (for `readdirplus` the kernel now holds a lookup on it).
    pub ino: u64,
    /// Offset of the entry after this one.
    pub offset: u64,
    /// Name.
    pub name: String,
    /// Kind.
    pub kind: Kind,
    /// Attributes (`readdirplus` only).
    pub entry: Option<Entry>,
}

/// Receives directory entries; `add` returns `true` when the reply is full
/// (the entry was not taken).
pub trait DirReplier {
    /// Offers one entry.
    fn add(&mut self, entry: DirEntry) -> bool;
}

/// File system statistics.
#[derive(Debug, Clone, Copy, Default)]
pub struct Statfs {
    /// Total blocks.
    pub blocks: u64,
    /// Free blocks.
    pub bfree: u64,
    /// Blocks available to unprivileged users.
    pub bavail: u64,
    /// Total inodes.
    pub files: u64,
    /// Free inodes.
    pub ffree: u64,
    /// Block size.
    pub bsize: u32,
    /// Longest name.
    pub namelen: u32,
    /// Fragment size.
    pub frsize: u32,
}

/// A node `make_node` creates.
struct NewNode {
    kind: Kind,
    mode: u32,
    rdev: u32,
    target: Option<String>,
}

#[derive(Debug)]
struct Handle {
    ino: u64,
    file: Arc<OpenFile>,
    session: Session,
    writable: bool,
    append: bool,
    /// Opened to execute the file.
    exec: bool,
    readahead: tokio::sync::Mutex<ReadAhead>,
    /// How the kernel was told to serve it.
    mode: passthrough::Mode,
}

/// The open flag of a file opened by `execve` (the kernel's `__FMODE_EXEC`).
const FMODE_EXEC: i32 = 0o40;

/// How long unmount waits for a full or unavailable store to take the
/// changes still queued before it gives up on them (naming each in the log).
pub const CLOSE_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

#[derive(Debug)]
struct DirHandle {
    ino: u64,
    parent: u64,
    prefix: String,
    session: Session,
    listing: tokio::sync::Mutex<DirListing>,
}

/// The listing an open directory reads from.
#[derive(Debug)]
struct DirListing {
    /// Taken at `opendir` and not yet read: a read from offset 0 uses it
    /// instead of listing again (a later rewind lists afresh).
    fresh: bool,
    /// The entries, in name order.
    children: Arc<Vec<Child>>,
}

/// The file system; see the module documentation.
#[derive(Debug)]
pub struct TierFs {
    store: Arc<Store>,
    inodes: InodeTable,
    handles: Mutex<HashMap<u64, Arc<Handle>>>,
    dirs: Mutex<HashMap<u64, Arc<DirHandle>>>,
    next_fh: AtomicU64,
    identities: Identities,
    spool: Arc<SpoolDir>,
    options: FsOptions,
    root: Mutex<PosixMeta>,
    /// On a shared store, per inode, the version of the object the
    /// kernel's cached pages came from (`None`: written here, version not
    /// known); see [`FsOptions::shared`].
    page_versions: Mutex<HashMap<u64, Option<String>>>,
    /// The kernel agreed to passthrough reads (see [`passthrough`]).
    passthrough: std::sync::atomic::AtomicBool,
}

fn utf8(name: &OsStr) -> FsResult<&str> {
    name.to_str()
        .ok_or_else(|| FsError::new(libc::EINVAL, format!("{name:?} is not UTF-8; TierFS keys are UTF-8")))
}

fn key(s: String) -> FsResult<Key> {
    Ok(Key::new(s)?)
}

impl TierFs {
    /// A file system over `store`, spooling writes in `spool`. Must run
    /// inside a tokio runtime when the store uses group commit.
    pub fn new(store: Arc<Store>, spool: Arc<SpoolDir>, identities: IdentityMap, options: FsOptions) -> Self {
        let mut root = PosixMeta::implicit_dir(&options.defaults);
        root.mode = options.root_mode & 0o7777;
        TierFs {
            identities: Identities::new(store.manager().clone(), identities),
            store,
            inodes: InodeTable::new(),
            handles: Mutex::new(HashMap::new()),
            dirs: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
            spool,
            options,
            root: Mutex::new(root),
            page_versions: Mutex::new(HashMap::new()),
            passthrough: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Serves read-only opens by passthrough where it can, once the kernel
    /// has agreed to it at `init` (see [`passthrough`]).
    pub fn enable_passthrough(&self) {
        self.passthrough.store(true, Ordering::Release);
    }

    /// The store.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// The inode table.
    pub fn inodes(&self) -> &InodeTable {
        &self.inodes
    }

    /// The inodes of every open file.
    pub fn open_inodes(&self) -> Vec<u64> {
        self.inodes.all_open_files().into_iter().map(|(ino, _)| ino).collect()
    }

    /// Call after the manager was reconfigured.
    pub fn reconfigured(&self) {
        self.store.reconfigured();
        self.identities.clear();
    }

    fn session(&self, caller: &Caller) -> Session {
        self.identities.session(caller, self.store.open_access())
    }

    fn handle(&self, fh: u64) -> FsResult<Arc<Handle>> {
        self.handles
            .lock()
            .get(&fh)
            .cloned()
            .ok_or_else(|| FsError::new(libc::EBADF, format!("no open file {fh}")))
    }

    fn new_fh(&self) -> u64 {
        self.next_fh.fetch_add(1, Ordering::Relaxed)
    }

    /// How long the kernel may cache an entry. The same for open files:
    /// the kernel invalidates its cached size and times itself after every
    /// write it sends, and every other change passes through a reply that
    /// carries the new attributes.
    fn ttl(&self) -> Duration {
        self.options.attr_ttl
    }

    /// What is stored at `key`: the object, or an implicit directory.
    async fn resolve(&self, session: &Session, key: &Key) -> FsResult<Option<(PosixMeta, u64)>> {
        if let Some(found) = self.resolve_kept(session, key) {
            return Ok(Some(found));
        }
        let generation = self.store.listing_generation();
        let found = match self.store.stat(session, key).await {
            Ok(meta) => Some((PosixMeta::from_object(&meta, &self.options.defaults), meta.size)),
            Err(e) if is_not_found(&e) => self
                .store
                .has_children(session, &format!("{key}/"))
                .await?
                .then(|| (PosixMeta::implicit_dir(&self.options.defaults), 0)),
            Err(e) => return Err(e.into()),
        };
        if let Some((posix, _)) = &found {
            if posix.kind == Kind::Dir {
                self.store.keep_dir(session, key, generation, posix.clone());
            }
        }
        Ok(found)
    }

    /// What is kept of `key`: its attributes, if it is a directory resolved
    /// lately; else what a kept listing of its directory says, when that is
    /// all [`resolve`](Self::resolve) would learn: a directory known only by
    /// its children, or an object listed with its metadata. An object listed
    /// without (S3 listings carry none) or a name not listed goes to the
    /// store. On an object store this saves a `HEAD` and a one-key listing
    /// per directory `stat`, tens of milliseconds each.
    fn resolve_kept(&self, session: &Session, key: &Key) -> Option<(PosixMeta, u64)> {
        let (dir, name) = match key.rfind('/') {
            Some(i) => (&key[..=i], &key[i + 1..]),
            None => ("", key.as_str()),
        };
        if let Some(posix) = self.store.kept_dir(session, key) {
            return Some((posix, 0));
        }
        let kept = self.store.kept_children(session, dir)?;
        let child = match kept.binary_search_by(|c| c.name.as_str().cmp(name)) {
            Ok(i) => &kept[i],
            // Names are in key order, which is not name order around `/`.
            Err(_) => kept.iter().find(|c| c.name == name)?,
        };
        match &child.object {
            Some(meta) if !meta.metadata.is_empty() => {
                Some((PosixMeta::from_object(meta, &self.options.defaults), meta.size))
            }
            None if child.prefix => Some((PosixMeta::implicit_dir(&self.options.defaults), 0)),
            _ => None,
        }
    }

    /// The entry for inode `ino` with stored attributes `posix`, preferring
    /// the live state of an open file.
    fn entry(&self, ino: u64, posix: PosixMeta, size: u64) -> Entry {
        match self.inodes.open_file(ino) {
            Some(file) => {
                let (posix, size, unlinked) = file.snapshot();
                let mut attr = Attr::new(ino, posix, size);
                if unlinked {
                    attr.nlink = 0;
                }
                Entry { attr, ttl: self.ttl() }
            }
            None => Entry { attr: Attr::new(ino, posix, size), ttl: self.ttl() },
        }
    }

    fn root_entry(&self) -> Entry {
        Entry { attr: Attr::new(ROOT, self.root.lock().clone(), 0), ttl: self.options.attr_ttl }
    }

    /// The attributes of directory `ino`.
    async fn dir_posix(&self, session: &Session, ino: u64) -> FsResult<PosixMeta> {
        if ino == ROOT {
            return Ok(self.root.lock().clone());
        }
        let k = self.inodes.key(ino)?;
        match self.resolve(session, &k).await? {
            Some((posix, _)) if posix.kind == Kind::Dir => Ok(posix),
            Some(_) => Err(FsError::new(libc::ENOTDIR, format!("`{k}` is not a directory"))),
            None => Err(FsError::not_found(&k)),
        }
    }

    /// Sets the mtime and ctime of directory `ino` to now (its entries
    /// changed), storing its marker. A failure only loses the times.
    async fn touch_dir(&self, session: &Session, ino: u64, mut posix: PosixMeta) {
        posix.touch_content();
        if ino == ROOT {
            let mut root = self.root.lock();
            root.mtime = posix.mtime;
            root.ctime = posix.ctime;
            return;
        }
        let Ok(k) = self.inodes.key(ino) else { return };
        if !session.allows(Op::Write, k.as_str()) {
            return;
        }
        if let Err(e) = self.store.put(session, &k, Bytes::new(), posix.to_metadata()).await {
            tracing::debug!(key = %k, error = %e, "could not update the directory's times");
        }
    }

    /// Owner, group and mode of a new node in a directory with `parent`
    /// attributes (set-group-id directories pass their group on).
    fn owner_for_new(caller: &Caller, parent: &PosixMeta, kind: Kind, mode: u32) -> (u32, u32, u32) {
        let mut mode = mode & 0o7777;
        let mut gid = caller.gid;
        if parent.mode & libc::S_ISGID != 0 {
            gid = parent.gid;
            if kind == Kind::Dir {
                mode |= libc::S_ISGID;
            }
        }
        (caller.uid, gid, mode)
    }
}

#[cfg(test)]
mod tests;
