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
pub mod file;
pub mod inode;
pub mod journal;
pub mod listings;
pub mod spool;
pub mod store;

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
use file::{Content, FileState, OpenFile, ReadAhead};
use inode::{InodeTable, ROOT};
use listings::Child;
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
#[derive(Debug, Clone, Copy)]
pub struct Opened {
    /// The handle.
    pub fh: u64,
    /// Opened to write: its `close` reports what could not be saved, so
    /// the kernel must send a flush for it.
    pub writable: bool,
    /// The kernel may keep the pages it cached of the file: they are of
    /// the version the store holds (`false`: it must drop them).
    pub keep_cache: bool,
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
    listing: tokio::sync::Mutex<(bool, Arc<Vec<Child>>)>,
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
        }
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
        let k = key(self.inodes.key_of(ino)?)?;
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
        let Ok(k) = self.inodes.key_of(ino).and_then(key) else { return };
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

    // ---- names ---------------------------------------------------------------

    /// Looks `name` up in directory `parent`.
    pub async fn lookup(&self, caller: &Caller, parent: u64, name: &OsStr) -> FsResult<Entry> {
        let name = utf8(name)?;
        let k = key(self.inodes.child_key(parent, name)?)?;
        let session = self.session(caller);
        let (posix, size) = self.resolve(&session, &k).await?.ok_or_else(|| FsError::not_found(&k))?;
        let ino = self.inodes.lookup(parent, name, posix.kind);
        Ok(self.entry(ino, posix, size))
    }

    /// Drops `n` kernel lookups of `ino`.
    pub fn forget(&self, ino: u64, n: u64) {
        self.inodes.forget(ino, n);
        if self.options.shared && self.inodes.key_of(ino).is_err() {
            // Gone from the kernel, with its pages.
            self.page_versions.lock().remove(&ino);
        }
    }

    /// The attributes of `ino` (through handle `fh` if given).
    pub async fn getattr(&self, caller: &Caller, ino: u64, fh: Option<u64>) -> FsResult<Entry> {
        if ino == ROOT {
            return Ok(self.root_entry());
        }
        let open = fh.and_then(|fh| self.handles.lock().get(&fh).map(|h| h.file.clone()));
        if let Some(file) = open.or_else(|| self.inodes.open_file(ino)) {
            let (posix, size, unlinked) = file.snapshot();
            let mut attr = Attr::new(ino, posix, size);
            if unlinked {
                attr.nlink = 0;
            }
            return Ok(Entry { attr, ttl: self.ttl() });
        }
        let k = key(self.inodes.key_of(ino)?)?;
        let session = self.session(caller);
        let (posix, size) = self.resolve(&session, &k).await?.ok_or_else(|| FsError::not_found(&k))?;
        Ok(self.entry(ino, posix, size))
    }

    /// Changes attributes: truncation, mode, owner, times.
    pub async fn setattr(&self, caller: &Caller, ino: u64, set: SetAttr) -> FsResult<Entry> {
        let now = SystemTime::now();
        let apply = |posix: &mut PosixMeta| {
            if let Some(mode) = set.mode {
                posix.mode = mode & 0o7777;
            }
            if let Some(uid) = set.uid {
                posix.uid = uid;
            }
            if let Some(gid) = set.gid {
                posix.gid = gid;
            }
            if let Some(t) = set.atime {
                posix.atime = t.resolve();
            }
            if let Some(t) = set.mtime {
                posix.mtime = t.resolve();
            }
            posix.ctime = set.ctime.unwrap_or(now);
        };
        let session = self.session(caller);
        if ino == ROOT {
            if set.size.is_some() {
                return Err(FsError::new(libc::EISDIR, "the root is a directory"));
            }
            // The root's attributes are everyone's: changing them needs
            // write on the whole store (`*`), and is audited.
            session.check(Op::Write, "")?;
            apply(&mut self.root.lock());
            return Ok(self.root_entry());
        }
        let k = key(self.inodes.key_of(ino)?)?;
        let kind = match self.inodes.kind(ino) {
            Some(kind) => kind,
            None => return Err(FsError::not_found(&k)),
        };
        if kind != Kind::File {
            if set.size.is_some() {
                let errno = if kind == Kind::Dir { libc::EISDIR } else { libc::EINVAL };
                return Err(FsError::new(errno, format!("`{k}` is not a regular file")));
            }
            let (mut posix, _) = self.resolve(&session, &k).await?.ok_or_else(|| FsError::not_found(&k))?;
            apply(&mut posix);
            self.store.put(&session, &k, Bytes::new(), posix.to_metadata()).await?;
            return Ok(self.entry(ino, posix, 0));
        }
        self.store.check(&session, Op::Write, &k)?;
        let (file, _) = self.attach(ino, &session, &k).await?;
        if self.options.shared {
            // Changed here: the next open has the kernel read it again.
            self.page_versions.lock().insert(ino, None);
        }
        let result = async {
            let mut state = file.state.lock().await;
            if state.hand_over(&self.store, &session, &k, &self.options.defaults).await? {
                file.publish(&state, true);
            }
            if let Some(size) = set.size {
                if size == 0 {
                    state.truncate_to_zero(&self.spool).await;
                } else if size != state.size() {
                    state.spool(&self.store, &session, &k, &self.spool).await?.set_len(size)?;
                    state.sequential = false;
                }
                state.posix.touch_content();
            }
            apply(&mut state.posix);
            if set.atime.is_some() || set.mtime.is_some() {
                state.times_explicit = true;
            }
            if set.size.is_some() && set.mtime.is_none() {
                state.posix.mtime = now;
            }
            state.dirty = true;
            state.writer = Some(session.clone());
            file.publish(&state, set.size.is_some());
            Ok::<_, FsError>(())
        }
        .await;
        let released = self.close_file(ino, &file, &session).await;
        result?;
        released?;
        let (posix, size, _) = file.snapshot();
        Ok(self.entry(ino, posix, size))
    }

    /// The target of symlink `ino`.
    pub async fn readlink(&self, caller: &Caller, ino: u64) -> FsResult<Vec<u8>> {
        let k = key(self.inodes.key_of(ino)?)?;
        let session = self.session(caller);
        let (posix, _) = self.resolve(&session, &k).await?.ok_or_else(|| FsError::not_found(&k))?;
        match (posix.kind, posix.target) {
            (Kind::Symlink, Some(target)) => Ok(target.into_bytes()),
            _ => Err(FsError::new(libc::EINVAL, format!("`{k}` is not a symbolic link"))),
        }
    }

    /// Creates `node` named `name` in `parent`.
    async fn make_node(&self, caller: &Caller, parent: u64, name: &OsStr, node: NewNode) -> FsResult<Entry> {
        let NewNode { kind, mode, rdev, target } = node;
        let name = utf8(name)?;
        let k = key(self.inodes.child_key(parent, name)?)?;
        let session = self.session(caller);
        let parent_posix = self.dir_posix(&session, parent).await?;
        if self.resolve(&session, &k).await?.is_some() {
            return Err(FsError::new(libc::EEXIST, format!("`{k}` exists")));
        }
        let (uid, gid, mode) = Self::owner_for_new(caller, &parent_posix, kind, mode);
        let mut posix = PosixMeta::new(kind, mode, uid, gid);
        posix.rdev = rdev;
        posix.target = target;
        self.store.put(&session, &k, Bytes::new(), posix.to_metadata()).await?;
        self.touch_dir(&session, parent, parent_posix).await;
        let ino = self.inodes.lookup(parent, name, kind);
        Ok(self.entry(ino, posix, 0))
    }

    /// Creates a regular file, fifo, socket or device node.
    pub async fn mknod(
        &self,
        caller: &Caller,
        parent: u64,
        name: &OsStr,
        mode: u32,
        rdev: u32,
    ) -> FsResult<Entry> {
        let kind = Kind::from_mode(mode)
            .filter(|k| *k != Kind::Dir && *k != Kind::Symlink)
            .ok_or_else(|| FsError::new(libc::EINVAL, format!("mknod cannot make mode {mode:o}")))?;
        self.make_node(caller, parent, name, NewNode { kind, mode, rdev, target: None }).await
    }

    /// Creates a directory.
    pub async fn mkdir(&self, caller: &Caller, parent: u64, name: &OsStr, mode: u32) -> FsResult<Entry> {
        self.make_node(caller, parent, name, NewNode { kind: Kind::Dir, mode, rdev: 0, target: None }).await
    }

    /// Creates a symbolic link to `target`.
    pub async fn symlink(
        &self,
        caller: &Caller,
        parent: u64,
        name: &OsStr,
        target: &Path,
    ) -> FsResult<Entry> {
        let target = target
            .to_str()
            .ok_or_else(|| FsError::new(libc::EINVAL, "the symlink target is not UTF-8"))?
            .to_owned();
        if target.len() >= libc::PATH_MAX as usize {
            return Err(FsError::new(libc::ENAMETOOLONG, "the symlink target is longer than PATH_MAX"));
        }
        self.make_node(
            caller,
            parent,
            name,
            NewNode { kind: Kind::Symlink, mode: 0o777, rdev: 0, target: Some(target) },
        )
        .await
    }

    /// Removes a file (not a directory).
    pub async fn unlink(&self, caller: &Caller, parent: u64, name: &OsStr) -> FsResult<()> {
        let name = utf8(name)?;
        let k = key(self.inodes.child_key(parent, name)?)?;
        let session = self.session(caller);
        let parent_posix = self.dir_posix(&session, parent).await?;
        let (posix, _) = self.resolve(&session, &k).await?.ok_or_else(|| FsError::not_found(&k))?;
        if posix.kind == Kind::Dir {
            return Err(FsError::new(libc::EISDIR, format!("`{k}` is a directory")));
        }
        let open = self.inodes.child(parent, name).and_then(|ino| self.inodes.open_file(ino));
        let mut guard = match &open {
            Some(file) => Some(file.state.lock().await),
            None => None,
        };
        if let Some(state) = guard.as_mut() {
            // Handles still open keep reading the content after the key goes.
            if !matches!(state.content, Content::Spooled(_)) {
                state.spool(&self.store, &session, &k, &self.spool).await?;
            }
        }
        self.store.delete(&session, &k).await?;
        if let (Some(state), Some(file)) = (guard.as_mut(), &open) {
            state.unlinked = true;
            file.publish(state, false);
        }
        drop(guard);
        self.inodes.unlink(parent, name);
        self.touch_dir(&session, parent, parent_posix).await;
        Ok(())
    }

    /// Removes an empty directory.
    pub async fn rmdir(&self, caller: &Caller, parent: u64, name: &OsStr) -> FsResult<()> {
        let name = utf8(name)?;
        let k = key(self.inodes.child_key(parent, name)?)?;
        let session = self.session(caller);
        let parent_posix = self.dir_posix(&session, parent).await?;
        let (posix, _) = self.resolve(&session, &k).await?.ok_or_else(|| FsError::not_found(&k))?;
        if posix.kind != Kind::Dir {
            return Err(FsError::new(libc::ENOTDIR, format!("`{k}` is not a directory")));
        }
        if self.store.has_children(&session, &format!("{k}/")).await? {
            return Err(FsError::new(libc::ENOTEMPTY, format!("`{k}` is not empty")));
        }
        self.store.delete(&session, &k).await?;
        self.inodes.unlink(parent, name);
        self.touch_dir(&session, parent, parent_posix).await;
        Ok(())
    }

    /// Renames `name` in `parent` to `new_name` in `new_parent`.
    /// `flags` are `renameat2` flags: `RENAME_NOREPLACE` is honoured,
    /// `RENAME_EXCHANGE` and `RENAME_WHITEOUT` are refused with `EINVAL`.
    #[allow(clippy::too_many_arguments)]
    pub async fn rename(
        &self,
        caller: &Caller,
        parent: u64,
        name: &OsStr,
        new_parent: u64,
        new_name: &OsStr,
        flags: u32,
    ) -> FsResult<()> {
        if flags & !libc::RENAME_NOREPLACE != 0 {
            return Err(FsError::new(libc::EINVAL, "RENAME_EXCHANGE and RENAME_WHITEOUT are not supported"));
        }
        let (name, new_name) = (utf8(name)?, utf8(new_name)?);
        let from = key(self.inodes.child_key(parent, name)?)?;
        let to = key(self.inodes.child_key(new_parent, new_name)?)?;
        let session = self.session(caller);
        let parent_posix = self.dir_posix(&session, parent).await?;
        let new_parent_posix = if new_parent == parent {
            parent_posix.clone()
        } else {
            self.dir_posix(&session, new_parent).await?
        };
        let (src, _) = self.resolve(&session, &from).await?.ok_or_else(|| FsError::not_found(&from))?;
        if from == to {
            return Ok(());
        }
        let dst = self.resolve(&session, &to).await?;
        if flags & libc::RENAME_NOREPLACE != 0 && dst.is_some() {
            return Err(FsError::new(libc::EEXIST, format!("`{to}` exists")));
        }
        let src_ino = self.inodes.child(parent, name);
        if src.kind == Kind::Dir {
            if to.as_str().starts_with(&format!("{from}/")) {
                return Err(FsError::new(libc::EINVAL, format!("cannot move `{from}` into itself")));
            }
            if let Some((dst, _)) = &dst {
                if dst.kind != Kind::Dir {
                    return Err(FsError::new(libc::ENOTDIR, format!("`{to}` is not a directory")));
                }
                if self.store.has_children(&session, &format!("{to}/")).await? {
                    return Err(FsError::new(libc::ENOTEMPTY, format!("`{to}` is not empty")));
                }
            }
            // Commits of files open below wait, then use the new paths.
            let open = src_ino.map(|ino| self.inodes.open_files_within(ino)).unwrap_or_default();
            let mut guards = Vec::with_capacity(open.len());
            for (ino, file) in &open {
                let mut state = file.state.lock().await;
                // A stream publishes under the key it started with: finish it first.
                if let Ok(k) = self.inodes.key_of(*ino).and_then(key) {
                    state.settle(&self.store, &session, &k).await?;
                }
                guards.push(state);
            }
            self.store.check(&session, Op::Write, &to)?;
            if dst.is_some() {
                self.store.delete(&session, &to).await?;
            }
            for old in self.store.subtree(&session, &from).await? {
                let new = key(format!("{to}{}", &old.as_str()[from.len()..]))?;
                self.store.rename(&session, &old, &new).await?;
            }
            self.inodes.rename(parent, name, new_parent, new_name);
            drop(guards);
        } else {
            if let Some((dst, _)) = &dst {
                if dst.kind == Kind::Dir {
                    return Err(FsError::new(libc::EISDIR, format!("`{to}` is a directory")));
                }
            }
            let src_file = src_ino.and_then(|ino| self.inodes.open_file(ino));
            let dst_file = self.inodes.child(new_parent, new_name).and_then(|ino| self.inodes.open_file(ino));
            let mut src_guard = match &src_file {
                Some(file) => Some(file.state.lock().await),
                None => None,
            };
            let mut dst_guard = match &dst_file {
                Some(file) if !src_file.as_ref().is_some_and(|s| Arc::ptr_eq(s, file)) => {
                    Some(file.state.lock().await)
                }
                _ => None,
            };
            if let Some(state) = dst_guard.as_mut() {
                if !matches!(state.content, Content::Spooled(_)) {
                    state.spool(&self.store, &session, &to, &self.spool).await?;
                }
            }
            // A file created but not yet in the store is written first, as
            // its writer; refused, the rename moves what the store holds.
            if let Some(state) = src_guard.as_mut() {
                state.hand_over(&self.store, &session, &from, &self.options.defaults).await?;
                state.commit(&self.store, &session, &from).await?;
            }
            self.store.rename(&session, &from, &to).await?;
            if let (Some(state), Some(file)) = (dst_guard.as_mut(), &dst_file) {
                state.unlinked = true;
                file.publish(state, false);
            }
            self.inodes.rename(parent, name, new_parent, new_name);
            drop(src_guard);
            drop(dst_guard);
        }
        self.touch_dir(&session, parent, parent_posix).await;
        if new_parent != parent {
            self.touch_dir(&session, new_parent, new_parent_posix).await;
        }
        Ok(())
    }

    /// Hard links are not supported: every key has one name.
    pub async fn link(
        &self,
        _caller: &Caller,
        _ino: u64,
        _new_parent: u64,
        _new_name: &OsStr,
    ) -> FsResult<Entry> {
        Err(FsError::new(libc::ENOTSUP, "hard links are not supported: a key has exactly one name"))
    }

    // ---- files ---------------------------------------------------------------

    /// The open-file state of `ino`, loading it from the store if no handle
    /// has it; the open count goes up by one (undo with `close_file`).
    /// The open state of `ino` (the one already open, or a new one from
    /// the store), and on a shared store the version the store holds when
    /// the state is new (see [`TierFs::pages_current`]).
    async fn attach(
        &self,
        ino: u64,
        session: &Session,
        k: &Key,
    ) -> FsResult<(Arc<OpenFile>, Option<String>)> {
        if let Some(file) = self.inodes.open_existing(ino) {
            return Ok((file, None));
        }
        let meta = self.store.stat(session, k).await?;
        let posix = PosixMeta::from_object(&meta, &self.options.defaults);
        if posix.kind != Kind::File {
            let errno = if posix.kind == Kind::Dir { libc::EISDIR } else { libc::EINVAL };
            return Err(FsError::new(errno, format!("`{k}` is not a regular file")));
        }
        let version = self.options.shared.then(|| meta.version.clone());
        let state = FileState::clean(posix, meta.metadata, meta.size);
        Ok((self.inodes.open(ino, || OpenFile::new(state))?, version))
    }

    /// Whether the pages the kernel may hold of `ino` are of `version`, the
    /// one the store holds now (`None`: the file is open here already, or
    /// the store is not shared). Not when they came from another version,
    /// from a write through this mount (its version is not known), or when
    /// the store gives no version to compare.
    fn pages_current(&self, ino: u64, version: Option<&str>) -> bool {
        let Some(version) = version else { return true };
        match self.page_versions.lock().get(&ino) {
            None => true,
            Some(cached) => !version.is_empty() && cached.as_deref() == Some(version),
        }
    }

    /// Drops one open of `ino`; the last one commits unsaved changes and
    /// detaches the state, unless something is left to tell or to save:
    /// changes that could not be committed (a full store, a backend down)
    /// stay with the inode, still seen by every reader, and are tried again
    /// at its next `fsync` or close and at unmount; changes that were lost
    /// (refused, or a stream that could not be published) are reported to
    /// their writer at its next write, `fsync` or `close` of the file. The
    /// result of a release reaches no one (the kernel drops it), so it is
    /// only logged by the caller.
    async fn close_file(&self, ino: u64, file: &Arc<OpenFile>, session: &Session) -> FsResult<()> {
        let (result, keep) = {
            let mut state = file.state.lock().await;
            let last = self.inodes.close(ino);
            // A principal's changes are committed when it closes the file,
            // even if others still have it open; all are at the last close.
            let own = state.writer.as_ref().is_some_and(|w| w.principal() == session.principal());
            let committed = if (last || own) && state.dirty && !state.unlinked {
                let writer = state.writer.clone().unwrap_or_else(|| session.clone());
                let committed = match self.inodes.key_of(ino).and_then(key) {
                    Ok(k) => state.commit(&self.store, session, &k).await,
                    Err(e) => Err(e),
                };
                let mut content_changed = false;
                if let Err(e) = &committed {
                    if e.errno() == libc::EACCES {
                        state.discard(&self.options.defaults).await;
                        content_changed = true;
                    }
                    if !state.dirty {
                        state.refused.push((writer.principal().clone(), e.errno(), e.message().to_owned()));
                    }
                }
                file.publish(&state, content_changed);
                committed
            } else {
                Ok(())
            };
            let keep = last && !state.unlinked && (state.dirty || !state.refused.is_empty());
            (committed, keep)
        };
        if keep {
            tracing::warn!(ino, "a closed file keeps unsaved changes or an unreported failure in memory");
        } else {
            self.inodes.detach_if_closed(ino);
        }
        result
    }

    /// Opens file `ino` with open(2) `flags`.
    pub async fn open(&self, caller: &Caller, ino: u64, flags: i32) -> FsResult<Opened> {
        let k = key(self.inodes.key_of(ino)?)?;
        let session = self.session(caller);
        let writable = flags & libc::O_ACCMODE != libc::O_RDONLY;
        let fresh = self.inodes.open_file(ino).is_none();
        if writable {
            self.store.check(&session, Op::Write, &k)?;
        }
        let (file, version) = self.attach(ino, &session, &k).await?;
        let keep_cache = self.pages_current(ino, version.as_deref());
        let checked = async {
            // A file being executed is not opened to change: the kernel
            // refuses write opens itself, but leaves a truncating open to
            // the file system (`O_TRUNC` reaches the daemon).
            if (writable || flags & libc::O_TRUNC != 0) && file.is_executing() {
                return Err(FsError::new(libc::ETXTBSY, format!("`{k}` is being executed")));
            }
            if !fresh && flags & libc::O_ACCMODE != libc::O_WRONLY {
                self.store.check(&session, Op::Read, &k)?;
            }
            if writable && flags & libc::O_TRUNC != 0 {
                let mut state = file.state.lock().await;
                state.hand_over(&self.store, &session, &k, &self.options.defaults).await?;
                if state.size() != 0 || matches!(state.content, Content::Clean { .. }) {
                    state.truncate_to_zero(&self.spool).await;
                    state.posix.touch_content();
                    state.dirty = true;
                    state.writer = Some(session.clone());
                    file.publish(&state, true);
                }
            }
            Ok::<_, FsError>(())
        }
        .await;
        if let Err(e) = checked {
            if version.is_some() {
                // The kernel kept whatever pages it had: which is unknown now.
                self.page_versions.lock().insert(ino, None);
            }
            self.close_file(ino, &file, &session).await?;
            return Err(e);
        }
        if let Some(version) = version {
            // The kernel drops other pages at this open (no keep-cache).
            self.page_versions.lock().insert(ino, Some(version));
        }
        Ok(Opened { keep_cache, ..self.add_handle(ino, file, session, flags) })
    }

    fn add_handle(&self, ino: u64, file: Arc<OpenFile>, session: Session, flags: i32) -> Opened {
        let fh = self.new_fh();
        let exec = flags & FMODE_EXEC != 0;
        if exec {
            file.executes(true);
        }
        let writable = flags & libc::O_ACCMODE != libc::O_RDONLY;
        let handle = Handle {
            ino,
            file,
            session,
            writable,
            append: flags & libc::O_APPEND != 0,
            exec,
            readahead: tokio::sync::Mutex::new(ReadAhead::default()),
        };
        self.handles.lock().insert(fh, Arc::new(handle));
        if writable && self.options.shared {
            // Pages written here are of a version not known until read back.
            self.page_versions.lock().insert(ino, None);
        }
        Opened { fh, writable, keep_cache: true }
    }

    /// Creates and opens a regular file.
    pub async fn create(
        &self,
        caller: &Caller,
        parent: u64,
        name: &OsStr,
        mode: u32,
        flags: i32,
    ) -> FsResult<(Entry, Opened)> {
        let name = utf8(name)?;
        let k = key(self.inodes.child_key(parent, name)?)?;
        let session = self.session(caller);
        let parent_posix = self.dir_posix(&session, parent).await?;
        if flags & libc::O_EXCL != 0 && self.resolve(&session, &k).await?.is_some() {
            return Err(FsError::new(libc::EEXIST, format!("`{k}` exists")));
        }
        let (uid, gid, mode) = Self::owner_for_new(caller, &parent_posix, Kind::File, mode);
        let posix = PosixMeta::new(Kind::File, mode, uid, gid);
        let metadata = posix.to_metadata();
        self.store.put(&session, &k, Bytes::new(), metadata.clone()).await?;
        self.touch_dir(&session, parent, parent_posix).await;
        let ino = self.inodes.lookup(parent, name, Kind::File);
        let mut state = FileState::clean(posix, metadata, 0);
        state.truncate_to_zero(&self.spool).await;
        let file = self.inodes.open(ino, || OpenFile::new(state))?;
        {
            let mut state = file.state.lock().await;
            state.hand_over(&self.store, &session, &k, &self.options.defaults).await?;
            if state.size() != 0 {
                state.truncate_to_zero(&self.spool).await;
                state.dirty = true;
                state.writer = Some(session.clone());
                file.publish(&state, true);
            }
        }
        let (posix, size, _) = file.snapshot();
        let entry = Entry { attr: Attr::new(ino, posix, size), ttl: self.ttl() };
        Ok((entry, self.add_handle(ino, file, session, flags)))
    }

    /// Reads up to `size` bytes at `offset`. Each read is decided again
    /// (a reload that narrows the rules applies to open files), and
    /// another principal's uncommitted changes are committed (or, refused,
    /// discarded) before this principal sees them.
    pub async fn read(&self, fh: u64, offset: u64, size: u32) -> FsResult<Bytes> {
        let handle = self.handle(fh)?;
        let open_key = self.open_key(&handle)?;
        if let Some(k) = &open_key {
            self.still_allowed(&handle.session, Op::Read, k)?;
        }
        let (file_size, generation) = {
            let mut state = handle.file.state.lock().await;
            if let Some(k) = &open_key {
                if state.hand_over(&self.store, &handle.session, k, &self.options.defaults).await? {
                    handle.file.publish(&state, true);
                }
            }
            if matches!(state.content, Content::Streaming(_)) {
                let k = key(self.inodes.key_of(handle.ino)?)?;
                let session = state.writer.clone().unwrap_or_else(|| handle.session.clone());
                state.settle(&self.store, &session, &k).await?;
                handle.file.publish(&state, true);
            }
            match &state.content {
                Content::Spooled(spool) => return Ok(spool.read_at(offset, size as usize)?),
                _ => (state.size(), handle.file.generation()),
            }
        };
        if offset >= file_size {
            return Ok(Bytes::new());
        }
        let k = key(self.inodes.key_of(handle.ino)?)?;
        let mut readahead = handle.readahead.lock().await;
        readahead.read(&self.store, &handle.session, &k, offset, u64::from(size), file_size, generation).await
    }

    /// Writes `data` at `offset` (at the end for `O_APPEND` handles).
    pub async fn write(&self, fh: u64, offset: u64, data: &[u8]) -> FsResult<u32> {
        let handle = self.handle(fh)?;
        if !handle.writable {
            return Err(FsError::new(libc::EBADF, "the file is not open for writing"));
        }
        let open_key = self.open_key(&handle)?;
        if let Some(k) = &open_key {
            self.still_allowed(&handle.session, Op::Write, k)?;
        }
        let mut state = handle.file.state.lock().await;
        if let Some(refused) = state.take_refused(handle.session.principal()) {
            return Err(refused);
        }
        if let Some(k) = &open_key {
            if state.hand_over(&self.store, &handle.session, k, &self.options.defaults).await? {
                handle.file.publish(&state, true);
            }
        }
        self.write_locked(&handle, &mut state, offset, data).await?;
        state.dirty = true;
        state.posix.touch_content();
        state.writer = Some(handle.session.clone());
        handle.file.publish(&state, true);
        Ok(data.len() as u32)
    }

    /// The key of a handle's file; `None` once it was unlinked (its handles
    /// keep the content, which is never committed again).
    fn open_key(&self, handle: &Handle) -> FsResult<Option<Key>> {
        match self.inodes.key_of(handle.ino) {
            Ok(k) => Ok(Some(key(k)?)),
            Err(_) => Ok(None),
        }
    }

    /// Decides `op` on `key` again for an open handle (no audit record
    /// while allowed; a refusal is audited).
    fn still_allowed(&self, session: &Session, op: Op, key: &Key) -> FsResult<()> {
        if session.allows(op, key.as_str()) {
            return Ok(());
        }
        Ok(self.store.check(session, op, key)?)
    }

    async fn write_locked(
        &self,
        handle: &Handle,
        state: &mut FileState,
        offset: u64,
        data: &[u8],
    ) -> FsResult<()> {
        let file_key = || self.inodes.key_of(handle.ino).and_then(key);
        if let Content::Streaming(stream) = &mut state.content {
            if handle.append || offset == stream.len() {
                if let Err(e) = stream.append(data).await {
                    // The writer is broken: drop what it holds, keep the store's value.
                    let k = file_key()?;
                    state.truncate_to_zero(&self.spool).await;
                    let size = self.store.stat(&handle.session, &k).await.map_or(0, |m| m.size);
                    state.content = Content::Clean { size };
                    state.dirty = false;
                    return Err(e.into());
                }
                return Ok(());
            }
            state.settle(&self.store, &handle.session, &file_key()?).await?;
        }
        if let Content::Clean { size: 0 } = state.content {
            state.content = Content::Spooled(spool::Spool::new(&self.spool));
        }
        if let Content::Spooled(spool) = &state.content {
            let at = if handle.append { spool.len() } else { offset };
            let outgrows = spool.in_memory()
                && at == spool.len()
                && spool.len() + data.len() as u64 > self.spool.memory_limit() as u64;
            if state.sequential && outgrows {
                return state.start_stream(&self.store, &handle.session, &file_key()?, data).await;
            }
        }
        let spool = match &mut state.content {
            Content::Spooled(spool) => spool,
            _ => state.spool(&self.store, &handle.session, &file_key()?, &self.spool).await?,
        };
        let at = if handle.append { spool.len() } else { offset };
        let in_order = at == spool.len();
        spool.write_at(at, data)?;
        if !in_order {
            state.sequential = false;
        }
        Ok(())
    }

    /// `close` of one descriptor (sent for descriptors open to write only):
    /// reports what is known not to have reached the store of this
    /// principal's changes to the file: a refusal, a stream that could not
    /// be published, a change the journal dropped or holds for want of
    /// space. It commits nothing (a `close` of a duplicated descriptor,
    /// which shells make for every redirection, would publish a file still
    /// being written) and does not wait for queued changes (`fsync` does):
    /// changes reach the store when the kernel releases the file or on
    /// `fsync`.
    pub async fn flush(&self, fh: u64) -> FsResult<()> {
        let handle = self.handle(fh)?;
        if !handle.writable {
            return Ok(());
        }
        if let Some(refused) = handle.file.state.lock().await.take_refused(handle.session.principal()) {
            return Err(refused);
        }
        let k = key(self.inodes.key_of(handle.ino)?)?;
        match self.store.failure(&handle.session, Some(&k)) {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }

    /// Makes the file's content and attributes durable in the store.
    /// Another principal's pending changes are committed as theirs (a
    /// refusal of those is not this caller's error); a refusal of this
    /// principal's own changes, now or earlier, is, as is a change of this
    /// principal the journal could not commit (`ENOSPC` while the store is
    /// full).
    pub async fn fsync(&self, fh: u64) -> FsResult<()> {
        let handle = self.handle(fh)?;
        let mut state = handle.file.state.lock().await;
        if let Some(refused) = state.take_refused(handle.session.principal()) {
            return Err(refused);
        }
        if state.dirty && !state.unlinked {
            let k = key(self.inodes.key_of(handle.ino)?)?;
            if state.hand_over(&self.store, &handle.session, &k, &self.options.defaults).await? {
                handle.file.publish(&state, true);
            }
            // Refused, the changes stay this principal's only: another's
            // request discards them (see `FileState::hand_over`).
            state.commit(&self.store, &handle.session, &k).await?;
            handle.file.publish(&state, false);
        }
        drop(state);
        Ok(self.store.sync(&handle.session).await?)
    }

    /// `fsync` of a directory: every queued change is committed and made
    /// durable; fails if one of the caller's could not be.
    pub async fn fsyncdir(&self, caller: &Caller) -> FsResult<()> {
        Ok(self.store.sync(&self.session(caller)).await?)
    }

    /// The last close of one `open`: commits unsaved changes when it is the
    /// inode's last handle.
    pub async fn release(&self, fh: u64) -> FsResult<()> {
        let Some(handle) = self.handles.lock().remove(&fh) else {
            return Err(FsError::new(libc::EBADF, format!("no open file {fh}")));
        };
        if handle.exec {
            handle.file.executes(false);
        }
        let result = self.close_file(handle.ino, &handle.file, &handle.session).await;
        if let Err(e) = &result {
            tracing::error!(ino = handle.ino, error = %e, "changes of a closed file could not be saved");
        }
        result
    }

    /// Preallocates: mode 0 extends the file to `offset + length`;
    /// `FALLOC_FL_KEEP_SIZE` does nothing (space is not reserved); other
    /// modes are refused with `EOPNOTSUPP`.
    pub async fn fallocate(&self, fh: u64, offset: u64, length: u64, mode: i32) -> FsResult<()> {
        if mode & !libc::FALLOC_FL_KEEP_SIZE != 0 {
            return Err(FsError::new(libc::EOPNOTSUPP, "only plain fallocate is supported"));
        }
        let handle = self.handle(fh)?;
        if mode & libc::FALLOC_FL_KEEP_SIZE != 0 {
            return Ok(());
        }
        let end = offset + length;
        let open_key = self.open_key(&handle)?;
        if let Some(k) = &open_key {
            self.still_allowed(&handle.session, Op::Write, k)?;
        }
        let mut state = handle.file.state.lock().await;
        if let Some(k) = &open_key {
            if state.hand_over(&self.store, &handle.session, k, &self.options.defaults).await? {
                handle.file.publish(&state, true);
            }
        }
        if end > state.size() {
            let k = key(self.inodes.key_of(handle.ino)?)?;
            state.writer = Some(handle.session.clone());
            state.spool(&self.store, &handle.session, &k, &self.spool).await?.set_len(end)?;
            state.sequential = false;
            state.dirty = true;
            state.posix.touch_content();
            handle.file.publish(&state, true);
        }
        Ok(())
    }

    // ---- directories ---------------------------------------------------------

    /// Opens directory `ino` for reading; lists it (or takes the listing
    /// kept, see [`DirCache`]).
    pub async fn opendir(&self, caller: &Caller, ino: u64) -> FsResult<OpenedDir> {
        let session = self.session(caller);
        let prefix = if ino == ROOT {
            String::new()
        } else {
            let k = self.inodes.key_of(ino)?;
            if self.inodes.kind(ino) != Some(Kind::Dir) {
                return Err(FsError::new(libc::ENOTDIR, format!("`{k}` is not a directory")));
            }
            format!("{k}/")
        };
        let (children, cache) = match self.store.kept_children(&session, &prefix) {
            Some(kept) => (kept, DirCache::Keep),
            None => (self.store.children(&session, &prefix).await?, DirCache::Fill),
        };
        let cache = if self.store.kernel_may_keep_listings() { cache } else { DirCache::Off };
        let parent = self.parent_of(ino);
        let fh = self.new_fh();
        let handle =
            DirHandle { ino, parent, prefix, session, listing: tokio::sync::Mutex::new((true, children)) };
        self.dirs.lock().insert(fh, Arc::new(handle));
        Ok(OpenedDir { fh, cache })
    }

    fn parent_of(&self, ino: u64) -> u64 {
        let Ok(k) = self.inodes.key_of(ino) else { return ROOT };
        match k.rfind('/') {
            Some(i) => self.ino_of_key(&k[..i]).unwrap_or(ROOT),
            None => ROOT,
        }
    }

    fn ino_of_key(&self, k: &str) -> Option<u64> {
        let mut ino = ROOT;
        for segment in k.split('/') {
            ino = self.inodes.child(ino, segment)?;
        }
        Some(ino)
    }

    /// Lists directory handle `fh` from `offset` into `replier`; with
    /// `plus`, entries carry attributes and count as lookups.
    pub async fn readdir(
        &self,
        fh: u64,
        offset: u64,
        plus: bool,
        replier: &mut dyn DirReplier,
    ) -> FsResult<()> {
        let dir = self
            .dirs
            .lock()
            .get(&fh)
            .cloned()
            .ok_or_else(|| FsError::new(libc::EBADF, "no open directory"))?;
        let mut listing = dir.listing.lock().await;
        if offset == 0 && !listing.0 {
            listing.1 = self.store.children(&dir.session, &dir.prefix).await?;
        }
        listing.0 = false;
        let dots = [(".", dir.ino), ("..", dir.parent)];
        let total = listing.1.len() as u64 + 2;
        for index in offset..total {
            let next = index + 1;
            if index < 2 {
                let (name, ino) = dots[index as usize];
                let entry = plus.then(|| self.dot_entry(ino));
                let full =
                    replier.add(DirEntry { ino, offset: next, name: name.into(), kind: Kind::Dir, entry });
                if full {
                    return Ok(());
                }
                continue;
            }
            let child = &listing.1[(index - 2) as usize];
            let (posix, size) = self.child_posix(child);
            let kind = posix.kind;
            if plus {
                let ino = self.inodes.lookup(dir.ino, &child.name, kind);
                let mut entry = self.entry(ino, posix, size);
                if child.object.as_ref().is_some_and(|meta| meta.metadata.is_empty()) {
                    // Listed without metadata (S3): mode, owner and times are
                    // guesses, so the kernel must not keep them.
                    entry.ttl = Duration::ZERO;
                }
                let full = replier.add(DirEntry {
                    ino,
                    offset: next,
                    name: child.name.clone(),
                    kind,
                    entry: Some(entry),
                });
                if full {
                    self.inodes.forget(ino, 1);
                    return Ok(());
                }
            } else {
                let ino = self.inodes.child(dir.ino, &child.name).unwrap_or_else(|| {
                    let mut h = DefaultHasher::new();
                    (&dir.prefix, &child.name).hash(&mut h);
                    h.finish() | (1 << 63)
                });
                if replier.add(DirEntry { ino, offset: next, name: child.name.clone(), kind, entry: None }) {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    fn dot_entry(&self, ino: u64) -> Entry {
        if ino == ROOT {
            return self.root_entry();
        }
        Entry {
            attr: Attr::new(ino, PosixMeta::implicit_dir(&self.options.defaults), 0),
            ttl: Duration::ZERO,
        }
    }

    fn child_posix(&self, child: &Child) -> (PosixMeta, u64) {
        match &child.object {
            Some(meta) => (PosixMeta::from_object(meta, &self.options.defaults), meta.size),
            None => (PosixMeta::implicit_dir(&self.options.defaults), 0),
        }
    }

    /// Closes directory handle `fh`.
    pub fn releasedir(&self, fh: u64) {
        self.dirs.lock().remove(&fh);
    }

    /// Space of the file system holding the store (its local backend's
    /// directory; the spool's for a store of objects only), and no inode limit.
    pub fn statfs(&self) -> FsResult<Statfs> {
        let dir = self.options.store_dir.as_deref().unwrap_or(self.spool.dir());
        let path = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes())
            .map_err(|_| FsError::new(libc::EIO, "the store's path contains NUL"))?;
        // SAFETY: an all-zero statvfs is a valid value to be overwritten.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        // SAFETY: `path` is NUL-terminated and `st` is valid for writes.
        if unsafe { libc::statvfs(path.as_ptr(), &mut st) } != 0 {
            return Err(std::io::Error::last_os_error().into());
        }
        Ok(Statfs {
            blocks: st.f_blocks,
            bfree: st.f_bfree,
            bavail: st.f_bavail,
            files: u64::from(u32::MAX),
            ffree: u64::from(u32::MAX) - self.inodes.len() as u64,
            bsize: st.f_bsize as u32,
            namelen: inode::MAX_NAME_LEN as u32,
            frsize: st.f_frsize as u32,
        })
    }

    /// Commits every open file with unsaved changes and every queued change
    /// (unmount: the kernel may drop releases still queued when it unmounts).
    pub async fn shutdown(&self) -> FsResult<()> {
        let mut first_error = None;
        for (ino, file) in self.inodes.all_open_files() {
            let mut state = file.state.lock().await;
            if state.unlinked || (!state.dirty && state.refused.is_empty()) {
                continue;
            }
            let session = match &state.writer {
                Some(s) => s.clone(),
                None => self.store.manager().session("root"),
            };
            let k = match self.inodes.key_of(ino).and_then(key) {
                Ok(k) => k,
                Err(e) => {
                    tracing::error!(ino, error = %e, "not committed at unmount: the file has no name");
                    first_error.get_or_insert(e);
                    continue;
                }
            };
            if state.dirty {
                if let Err(e) = state.commit(&self.store, &session, &k).await {
                    tracing::error!(key = %k, principal = %session.principal(), error = %e, "not committed at unmount");
                    first_error.get_or_insert(e);
                }
            }
            for (principal, _, message) in state.refused.drain(..) {
                tracing::error!(key = %k, %principal, error = %message, "not committed: lost before unmount and not yet reported");
            }
        }
        if let Err(e) = self.store.close(CLOSE_GRACE).await {
            tracing::error!(error = %e, "queued changes could not be written at unmount");
            first_error.get_or_insert(e.into());
        }
        first_error.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests;
