//! The FUSE adapter: each kernel callback converts its arguments into a
//! task that calls one method of [`TierFs`] and replies (`FuseAdapter::serve`).
//! No file system logic lives here.
//!
//! How requests are served: a task is polled once on the request thread,
//! where file and database work may run in place (`blocking::allow`). Most
//! requests of a local store are answered then and replied to at once. A
//! request that has to wait (the network, a commit, a lock held by another
//! request) goes on as a task on the runtime and is replied to from there,
//! while the request thread takes the next request. So one request thread
//! (the default, `--threads`) serves the mount without a slow request
//! holding up the others, and a program that makes one request after
//! another always finds the same thread awake: with several threads the
//! kernel hands each request to the thread that has waited longest, and
//! waking it cost more than the request (creating 4 KiB files ran at 0.38x
//! the do-nothing floor with 8 threads, 0.92x with one; docs/benchmarks.md).

use std::ffi::OsStr;
use std::future::Future;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::task::{Context, Waker};
use std::time::{Duration, SystemTime};

use fuser::{
    AccessFlags, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo,
    InitFlags, KernelConfig, LockOwner, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData,
    ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite,
    ReplyXattr, Request, TimeOrNow, WriteFlags,
};
use tokio::runtime::Handle;

use crate::errno::FsError;
use crate::fs::attr::{Attr, Kind, BLOCK_SIZE};
use crate::fs::xattrs::{SetMode, CLASS_ATTRIBUTE};
use crate::fs::{DirCache, DirEntry, DirReplier, Entry, Opened, SetAttr, TierFs, TimeSpec};
use crate::identity::Caller;

/// Largest write the kernel sends in one request.
pub const MAX_WRITE: u32 = 1 << 20;
/// Background requests (read-ahead, releases) the kernel keeps in flight.
const MAX_BACKGROUND: u16 = 64;

/// Which extended attributes a mount serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Xattrs {
    /// None: the kernel is told they are not implemented and stops asking.
    Off,
    /// Only `user.tierfs.class` (the storage class); other names are not stored.
    ClassOnly,
    /// Every `user.` attribute (`--xattrs`).
    All,
}

/// The `fuser::Filesystem` over a [`TierFs`].
#[derive(Debug)]
pub struct FuseAdapter {
    fs: Arc<TierFs>,
    rt: Handle,
    xattrs: Xattrs,
    passthrough: bool,
    slow: SlowSpell,
    /// Requests handed to the runtime and not answered yet.
    in_flight: Arc<InFlight>,
}

/// Counts requests that went on as runtime tasks, so that unmount lets
/// them finish (a `release` still committing its file) before the final
/// flush.
#[derive(Debug, Default)]
struct InFlight {
    count: std::sync::atomic::AtomicUsize,
    idle: tokio::sync::Notify,
}

/// One request counted in [`InFlight`] until dropped (also when its task
/// panics).
struct Counted(Arc<InFlight>);

impl Counted {
    fn new(in_flight: &Arc<InFlight>) -> Self {
        in_flight.count.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        Counted(in_flight.clone())
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, std::sync::atomic::Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

impl InFlight {
    /// Waits until no task is in flight.
    async fn drained(&self) {
        loop {
            let idle = self.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            if self.count.load(std::sync::atomic::Ordering::Acquire) == 0 {
                return;
            }
            idle.await;
        }
    }
}

impl FuseAdapter {
    /// An adapter running `fs` on runtime `rt`, serving the extended
    /// attributes `xattrs` says; with `passthrough`, read-only opens
    /// are served by passthrough where the kernel and the store allow it.
    pub fn new(fs: Arc<TierFs>, rt: Handle, xattrs: Xattrs, passthrough: bool) -> Self {
        FuseAdapter { fs, rt, xattrs, passthrough, slow: SlowSpell::default(), in_flight: Arc::default() }
    }

    /// Serves one request: `task` (which replies) is polled once here, on
    /// the request thread, with blocking file and database work allowed in
    /// place unless such work was slow lately; if it has to wait, it goes
    /// on as a task on the runtime. See the module documentation.
    fn serve(&self, task: impl Future<Output = ()> + Send + 'static) {
        let _entered = self.rt.enter();
        let mut task = Box::pin(task);
        let in_place = !self.slow.is_on();
        let started = std::time::Instant::now();
        let polled = {
            let _allowed = in_place.then(tierfs_core::blocking::allow);
            // A panic must not take the mount's request thread with it: the
            // task is dropped, and with it its reply, which answers EIO.
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                task.as_mut().poll(&mut Context::from_waker(Waker::noop()))
            }))
        };
        if in_place && started.elapsed() >= SLOW_POLL {
            self.slow.turn_on();
        }
        match polled {
            Ok(std::task::Poll::Ready(())) => {}
            Ok(std::task::Poll::Pending) => {
                let counted = Counted::new(&self.in_flight);
                self.rt.spawn(async move {
                    task.await;
                    drop(counted);
                });
            }
            Err(_) => tracing::error!("a request panicked; it is answered with EIO"),
        }
    }
}

/// How long unmount waits for requests still running as tasks.
const UNMOUNT_DRAIN: Duration = Duration::from_secs(5);

/// A first poll at least this long did disk work (a read of data not in the
/// page cache, a write throttled by writeback), not only CPU work.
const SLOW_POLL: Duration = Duration::from_micros(300);
/// How long requests leave their blocking work to the pool after a slow
/// first poll.
const SLOW_SPELL: Duration = Duration::from_secs(1);

/// Whether requests leave blocking work to the runtime's pool: on for
/// [`SLOW_SPELL`] after a request did slow work in place. Work in place
/// saves a hand-off while it is fast (the page cache, the database's
/// cache); when it waits for the disk, the one request thread would serve
/// parallel readers one at a time, while the pool runs their reads at once
/// (4 processes reading 64 KiB blocks of a file not in the page cache).
#[derive(Debug, Default)]
struct SlowSpell {
    /// Until when, in nanoseconds since `epoch`.
    until: std::sync::atomic::AtomicU64,
    epoch: std::sync::OnceLock<std::time::Instant>,
}

impl SlowSpell {
    fn now(&self) -> u64 {
        self.epoch.get_or_init(std::time::Instant::now).elapsed().as_nanos() as u64
    }

    fn is_on(&self) -> bool {
        self.now() < self.until.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn turn_on(&self) {
        let until = self.now() + SLOW_SPELL.as_nanos() as u64;
        self.until.store(until, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The result of request `op`, its error logged and turned into an errno.
fn answer<T>(op: &'static str, result: Result<T, FsError>) -> Result<T, Errno> {
    result.map_err(|e| log_error(op, e))
}

/// What the mount asks of the kernel at `init`: readdirplus, atomic
/// `O_TRUNC`, parallel directory operations, cached symlinks, 1 MiB writes
/// and read-ahead, and a deep background queue. Public so that a reference
/// file system (`examples/floor.rs`) asks for exactly the same.
pub fn configure_kernel(config: &mut KernelConfig) {
    let wanted = InitFlags::FUSE_DO_READDIRPLUS
        | InitFlags::FUSE_READDIRPLUS_AUTO
        | InitFlags::FUSE_ATOMIC_O_TRUNC
        | InitFlags::FUSE_PARALLEL_DIROPS
        | InitFlags::FUSE_CACHE_SYMLINKS
        | InitFlags::FUSE_AUTO_INVAL_DATA
        | InitFlags::FUSE_BIG_WRITES
        | InitFlags::FUSE_MAX_PAGES;
    let supported = config.capabilities();
    if let Err(missing) = config.add_capabilities(wanted & supported) {
        tracing::debug!(?missing, "kernel lacks FUSE capabilities");
    }
    if let Err(nearest) = config.set_max_write(MAX_WRITE) {
        let _ = config.set_max_write(nearest);
    }
    if let Err(nearest) = config.set_max_readahead(MAX_WRITE) {
        let _ = config.set_max_readahead(nearest);
    }
    let _ = config.set_max_background(MAX_BACKGROUND);
    let _ = config.set_congestion_threshold(MAX_BACKGROUND * 3 / 4);
}

fn log_error(op: &'static str, e: FsError) -> Errno {
    match e.errno() {
        libc::ENOENT
        | libc::EEXIST
        | libc::ENOTEMPTY
        | libc::ENOTDIR
        | libc::EISDIR
        | libc::ENODATA
        | libc::ERANGE => {
            tracing::trace!(op, error = %e)
        }
        libc::EACCES | libc::EINVAL | libc::ENAMETOOLONG | libc::ENOTSUP | libc::EPERM => {
            tracing::debug!(op, error = %e)
        }
        _ => tracing::warn!(op, error = %e),
    }
    Errno::from_i32(e.errno())
}

fn caller(req: &Request) -> Caller {
    Caller { uid: req.uid(), gid: req.gid(), pid: req.pid() }
}

fn file_type(kind: Kind) -> FileType {
    match kind {
        Kind::File => FileType::RegularFile,
        Kind::Dir => FileType::Directory,
        Kind::Symlink => FileType::Symlink,
        Kind::Fifo => FileType::NamedPipe,
        Kind::Socket => FileType::Socket,
        Kind::CharDevice => FileType::CharDevice,
        Kind::BlockDevice => FileType::BlockDevice,
    }
}

fn file_attr(attr: &Attr) -> FileAttr {
    FileAttr {
        ino: INodeNo(attr.ino),
        size: attr.size,
        blocks: attr.blocks,
        atime: attr.posix.atime,
        mtime: attr.posix.mtime,
        ctime: attr.posix.ctime,
        crtime: attr.posix.ctime,
        kind: file_type(attr.posix.kind),
        perm: (attr.posix.mode & 0o7777) as u16,
        nlink: attr.nlink,
        uid: attr.posix.uid,
        gid: attr.posix.gid,
        rdev: attr.posix.rdev,
        blksize: BLOCK_SIZE,
        flags: 0,
    }
}

fn time(t: Option<TimeOrNow>) -> Option<TimeSpec> {
    t.map(|t| match t {
        TimeOrNow::Now => TimeSpec::Now,
        TimeOrNow::SpecificTime(t) => TimeSpec::At(kernel_time(t)),
    })
}

/// A time from the kernel as fuser 0.18 gives it, corrected before 1970:
/// the kernel sends seconds and a positive fraction (`-315619200` and
/// `0.25` for 1960-01-01 00:00:00.25), and fuser subtracts the fraction
/// instead of adding it (`system_time_from_time`), which puts such times
/// twice the fraction early. Times from 1970 on are right as given.
fn kernel_time(t: SystemTime) -> SystemTime {
    let Err(before) = t.duration_since(std::time::UNIX_EPOCH) else { return t };
    let d = before.duration();
    let (secs, nanos) = (d.as_secs(), d.subsec_nanos());
    std::time::UNIX_EPOCH - Duration::from_secs(secs) + Duration::new(0, nanos)
}

/// Flags of an open file: the kernel keeps cached pages across opens
/// (every change passes through it, and `FUSE_AUTO_INVAL_DATA` drops them
/// when the size or mtime we report changes), unless the object changed
/// under another writer since they were cached (a shared store: the open
/// compared versions). `close` of a file opened to
/// write sends a `FLUSH`, which reports changes known not to be saved; of
/// one opened to read, none (it would only cost a round trip).
///
/// A passthrough open (fs/passthrough.rs) has no page cache to keep; with
/// direct I/O, its reads and writes still come to the daemon.
fn open_flags(opened: &Opened) -> FopenFlags {
    let keep = match &opened.passthrough {
        Some((_, true)) => FopenFlags::FOPEN_DIRECT_IO,
        Some((_, false)) => FopenFlags::empty(),
        None if opened.keep_cache => FopenFlags::FOPEN_KEEP_CACHE,
        None => FopenFlags::empty(),
    };
    if opened.writable {
        keep
    } else {
        keep | FopenFlags::FOPEN_NOFLUSH
    }
}

fn reply_entry(reply: ReplyEntry, result: Result<Entry, Errno>) {
    match result {
        Ok(e) => reply.entry(&e.ttl, &file_attr(&e.attr), Generation(0)),
        Err(e) => reply.error(e),
    }
}

/// The size protocol of `getxattr` and `listxattr`: a `size` of 0 asks for
/// the length; a buffer too small is `ERANGE`.
fn reply_xattr(reply: ReplyXattr, size: u32, result: Result<Vec<u8>, Errno>) {
    match result {
        Ok(data) if size == 0 => reply.size(data.len() as u32),
        Ok(data) if data.len() > size as usize => reply.error(Errno::ERANGE),
        Ok(data) => reply.data(&data),
        Err(e) => reply.error(e),
    }
}

fn reply_empty(reply: ReplyEmpty, result: Result<(), Errno>) {
    match result {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(e),
    }
}

struct Plain(ReplyDirectory);

impl DirReplier for Plain {
    fn add(&mut self, e: DirEntry) -> bool {
        self.0.add(INodeNo(e.ino), e.offset, file_type(e.kind), &e.name)
    }
}

struct Plus(ReplyDirectoryPlus);

impl DirReplier for Plus {
    fn add(&mut self, e: DirEntry) -> bool {
        let (ttl, attr) = match &e.entry {
            Some(entry) => (entry.ttl, file_attr(&entry.attr)),
            None => (
                Duration::ZERO,
                file_attr(&Attr::new(e.ino, crate::fs::attr::PosixMeta::new(e.kind, 0, 0, 0), 0)),
            ),
        };
        self.0.add(INodeNo(e.ino), e.offset, &e.name, &ttl, &attr, Generation(0))
    }
}

impl Filesystem for FuseAdapter {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> io::Result<()> {
        configure_kernel(config);
        // Passthrough reads: the backing files are on a plain local file
        // system, one level below this one.
        if self.passthrough
            && config.capabilities().contains(InitFlags::FUSE_PASSTHROUGH)
            && config.add_capabilities(InitFlags::FUSE_PASSTHROUGH).is_ok()
            && config.set_max_stack_depth(1).is_ok()
        {
            self.fs.enable_passthrough();
            tracing::debug!("passthrough reads on");
        }
        Ok(())
    }

    fn destroy(&mut self) {
        // Requests still running as tasks finish first (bounded: a store
        // that stopped answering must not hold the unmount forever).
        let in_flight = &self.in_flight;
        let drained =
            self.rt.block_on(async { tokio::time::timeout(UNMOUNT_DRAIN, in_flight.drained()).await });
        if drained.is_err() {
            tracing::error!(
                in_flight = self.in_flight.count.load(std::sync::atomic::Ordering::Acquire),
                "requests still running at unmount after {UNMOUNT_DRAIN:?}; flushing without them"
            );
        }
        if let Err(e) = self.rt.block_on(self.fs.shutdown()) {
            tracing::error!(error = %e, "flushing at unmount failed");
        }
    }

    fn lookup(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let (fs, who, name) = (self.fs.clone(), caller(req), name.to_owned());
        self.serve(
            async move { reply_entry(reply, answer("lookup", fs.lookup(&who, parent.0, &name).await)) },
        );
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.fs.forget(ino.0, nlookup);
    }

    fn getattr(&self, req: &Request, ino: INodeNo, fh: Option<FileHandle>, reply: ReplyAttr) {
        let (fs, who) = (self.fs.clone(), caller(req));
        self.serve(async move {
            match answer("getattr", fs.getattr(&who, ino.0, fh.map(|f| f.0)).await) {
                Ok(e) => reply.attr(&e.ttl, &file_attr(&e.attr)),
                Err(e) => reply.error(e),
            }
        });
    }

    fn setattr(
        &self,
        req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let set = SetAttr {
            mode,
            uid,
            gid,
            size,
            atime: time(atime),
            mtime: time(mtime),
            ctime: ctime.map(kernel_time),
            fh: fh.map(|f| f.0),
        };
        let (fs, who) = (self.fs.clone(), caller(req));
        self.serve(async move {
            match answer("setattr", fs.setattr(&who, ino.0, set).await) {
                Ok(e) => reply.attr(&e.ttl, &file_attr(&e.attr)),
                Err(e) => reply.error(e),
            }
        });
    }

    fn readlink(&self, req: &Request, ino: INodeNo, reply: ReplyData) {
        let (fs, who) = (self.fs.clone(), caller(req));
        self.serve(async move {
            match answer("readlink", fs.readlink(&who, ino.0).await) {
                Ok(target) => reply.data(&target),
                Err(e) => reply.error(e),
            }
        });
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        let (fs, who, name) = (self.fs.clone(), caller(req), name.to_owned());
        self.serve(async move {
            reply_entry(reply, answer("mknod", fs.mknod(&who, parent.0, &name, mode, rdev).await))
        });
    }

    fn mkdir(&self, req: &Request, parent: INodeNo, name: &OsStr, mode: u32, _umask: u32, reply: ReplyEntry) {
        let (fs, who, name) = (self.fs.clone(), caller(req), name.to_owned());
        self.serve(async move {
            reply_entry(reply, answer("mkdir", fs.mkdir(&who, parent.0, &name, mode).await))
        });
    }

    fn unlink(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let (fs, who, name) = (self.fs.clone(), caller(req), name.to_owned());
        self.serve(
            async move { reply_empty(reply, answer("unlink", fs.unlink(&who, parent.0, &name).await)) },
        );
    }

    fn rmdir(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let (fs, who, name) = (self.fs.clone(), caller(req), name.to_owned());
        self.serve(async move { reply_empty(reply, answer("rmdir", fs.rmdir(&who, parent.0, &name).await)) });
    }

    fn symlink(&self, req: &Request, parent: INodeNo, link_name: &OsStr, target: &Path, reply: ReplyEntry) {
        let (fs, who, name, target) = (self.fs.clone(), caller(req), link_name.to_owned(), target.to_owned());
        self.serve(async move {
            reply_entry(reply, answer("symlink", fs.symlink(&who, parent.0, &name, &target).await))
        });
    }

    fn rename(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let (fs, who, name, newname) = (self.fs.clone(), caller(req), name.to_owned(), newname.to_owned());
        self.serve(async move {
            let renamed = fs.rename(&who, parent.0, &name, newparent.0, &newname, flags.bits()).await;
            reply_empty(reply, answer("rename", renamed))
        });
    }

    fn link(&self, req: &Request, ino: INodeNo, newparent: INodeNo, newname: &OsStr, reply: ReplyEntry) {
        let (fs, who, newname) = (self.fs.clone(), caller(req), newname.to_owned());
        self.serve(async move {
            reply_entry(reply, answer("link", fs.link(&who, ino.0, newparent.0, &newname).await))
        });
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let (fs, who) = (self.fs.clone(), caller(req));
        self.serve(async move {
            let register = |file: &std::fs::File| reply.open_backing(file);
            let opened = answer("open", fs.open_backed(&who, ino.0, flags.0, Some(&register)).await);
            match opened {
                Ok(o) => match &o.passthrough {
                    Some((id, _)) => reply.opened_passthrough(FileHandle(o.fh), open_flags(&o), id),
                    None => reply.opened(FileHandle(o.fh), open_flags(&o)),
                },
                Err(e) => reply.error(e),
            }
        });
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let fs = self.fs.clone();
        self.serve(async move {
            match answer("read", fs.read(fh.0, offset, size).await) {
                Ok(data) => reply.data(&data),
                Err(e) => reply.error(e),
            }
        });
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        // The request's buffer is fuser's: the data is copied for a write
        // that has to wait.
        let (fs, data) = (self.fs.clone(), data.to_vec());
        self.serve(async move {
            match answer("write", fs.write(fh.0, offset, &data).await) {
                Ok(n) => reply.written(n),
                Err(e) => reply.error(e),
            }
        });
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        let fs = self.fs.clone();
        self.serve(async move { reply_empty(reply, answer("flush", fs.flush(fh.0).await)) });
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        let fs = self.fs.clone();
        self.serve(async move { reply_empty(reply, answer("release", fs.release(fh.0).await)) });
    }

    fn fsync(&self, _req: &Request, _ino: INodeNo, fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        let fs = self.fs.clone();
        self.serve(async move { reply_empty(reply, answer("fsync", fs.fsync(fh.0).await)) });
    }

    fn opendir(&self, req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let (fs, who) = (self.fs.clone(), caller(req));
        self.serve(async move {
            match answer("opendir", fs.opendir(&who, ino.0).await) {
                Ok(o) => {
                    let flags = match o.cache {
                        DirCache::Off => FopenFlags::empty(),
                        // Without KEEP_CACHE the kernel drops its copy on open.
                        DirCache::Fill => FopenFlags::FOPEN_CACHE_DIR,
                        DirCache::Keep => FopenFlags::FOPEN_CACHE_DIR | FopenFlags::FOPEN_KEEP_CACHE,
                    };
                    reply.opened(FileHandle(o.fh), flags)
                }
                Err(e) => reply.error(e),
            }
        });
    }

    fn readdir(&self, _req: &Request, _ino: INodeNo, fh: FileHandle, offset: u64, reply: ReplyDirectory) {
        let fs = self.fs.clone();
        self.serve(async move {
            let mut replier = Plain(reply);
            match answer("readdir", fs.readdir(fh.0, offset, false, &mut replier).await) {
                Ok(()) => replier.0.ok(),
                Err(e) => replier.0.error(e),
            }
        });
    }

    fn readdirplus(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        reply: ReplyDirectoryPlus,
    ) {
        let fs = self.fs.clone();
        self.serve(async move {
            let mut replier = Plus(reply);
            match answer("readdirplus", fs.readdir(fh.0, offset, true, &mut replier).await) {
                Ok(()) => replier.0.ok(),
                Err(e) => replier.0.error(e),
            }
        });
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.fs.releasedir(fh.0);
        reply.ok();
    }

    fn fsyncdir(&self, req: &Request, _ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        let (fs, who) = (self.fs.clone(), caller(req));
        self.serve(async move { reply_empty(reply, answer("fsyncdir", fs.fsyncdir(&who).await)) });
    }

    fn statfs(&self, _req: &Request, ino: INodeNo, reply: ReplyStatfs) {
        match self.fs.statfs(ino.0) {
            Ok(s) => {
                reply.statfs(s.blocks, s.bfree, s.bavail, s.files, s.ffree, s.bsize, s.namelen, s.frsize)
            }
            Err(e) => reply.error(log_error("statfs", e)),
        }
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let (fs, who, name) = (self.fs.clone(), caller(req), name.to_owned());
        self.serve(async move {
            match answer("create", fs.create(&who, parent.0, &name, mode, flags).await) {
                Ok((e, o)) => match &o.passthrough {
                    Some((id, _)) => reply.created_passthrough(
                        &e.ttl,
                        &file_attr(&e.attr),
                        Generation(0),
                        FileHandle(o.fh),
                        open_flags(&o),
                        id,
                    ),
                    None => reply.created(
                        &e.ttl,
                        &file_attr(&e.attr),
                        Generation(0),
                        FileHandle(o.fh),
                        open_flags(&o),
                    ),
                },
                Err(e) => reply.error(e),
            }
        });
    }

    fn fallocate(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        let fs = self.fs.clone();
        self.serve(async move {
            reply_empty(reply, answer("fallocate", fs.fallocate(fh.0, offset, length, mode).await))
        });
    }

    // Extended attributes: `user.` ones are stored (fs/xattrs.rs) when the
    // mount has `--xattrs`; `user.tierfs.class` alone is served without it
    // when the store has several backends. Otherwise ENOSYS makes the kernel stop asking
    // (callers see EOPNOTSUPP): with attributes served, the kernel asks for
    // `security.capability` before every write(2), one more round trip each.

    fn setxattr(
        &self,
        req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        match self.xattrs {
            Xattrs::Off => return reply.error(Errno::ENOSYS),
            Xattrs::ClassOnly if name != CLASS_ATTRIBUTE => return reply.error(Errno::ENOTSUP),
            _ => {}
        }
        let mode = SetMode::from_flags(flags);
        let (fs, who, name, value) = (self.fs.clone(), caller(req), name.to_owned(), value.to_vec());
        self.serve(async move {
            reply_empty(reply, answer("setxattr", fs.setxattr(&who, ino.0, &name, &value, mode).await))
        });
    }

    fn getxattr(&self, req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        match self.xattrs {
            Xattrs::Off => return reply.error(Errno::ENOSYS),
            Xattrs::ClassOnly if name != CLASS_ATTRIBUTE => return reply.error(Errno::ENODATA),
            _ => {}
        }
        let (fs, who, name) = (self.fs.clone(), caller(req), name.to_owned());
        self.serve(async move {
            reply_xattr(reply, size, answer("getxattr", fs.getxattr(&who, ino.0, &name).await))
        });
    }

    fn listxattr(&self, req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        let class_only = match self.xattrs {
            Xattrs::Off => return reply.error(Errno::ENOSYS),
            Xattrs::ClassOnly => true,
            Xattrs::All => false,
        };
        let (fs, who) = (self.fs.clone(), caller(req));
        self.serve(async move {
            reply_xattr(reply, size, answer("listxattr", fs.listxattr(&who, ino.0, class_only).await))
        });
    }

    fn removexattr(&self, req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self.xattrs {
            Xattrs::Off => return reply.error(Errno::ENOSYS),
            Xattrs::ClassOnly if name != CLASS_ATTRIBUTE => return reply.error(Errno::ENODATA),
            _ => {}
        }
        let (fs, who, name) = (self.fs.clone(), caller(req), name.to_owned());
        self.serve(async move {
            reply_empty(reply, answer("removexattr", fs.removexattr(&who, ino.0, &name).await))
        });
    }

    // With `default_permissions` the kernel checks modes itself and never
    // calls `access`; answer for completeness.
    fn access(&self, _req: &Request, _ino: INodeNo, _mask: AccessFlags, reply: ReplyEmpty) {
        reply.ok();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_request_task_that_panics_is_not_waited_for_at_unmount() {
        let in_flight = Arc::new(InFlight::default());
        let counted = Counted::new(&in_flight);
        let busy = Counted::new(&in_flight);
        let task = tokio::spawn(async move {
            let _counted = counted;
            panic!("a request's task panics");
        });
        assert!(task.await.is_err());
        let waiting = tokio::spawn({
            let in_flight = in_flight.clone();
            async move { in_flight.drained().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "drained while a request was in flight");
        drop(busy);
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("the panicked task is still counted")
            .unwrap();
    }

    #[test]
    fn times_before_1970_keep_their_fraction() {
        use std::time::UNIX_EPOCH;
        // 1960-01-01 00:00:00.25: the kernel's (-315619200, 250000000), as fuser 0.18 turns it.
        let from_fuser = UNIX_EPOCH - Duration::new(315_619_200, 250_000_000);
        let want = UNIX_EPOCH - Duration::new(315_619_199, 750_000_000);
        assert_eq!(kernel_time(from_fuser), want);
        let whole = UNIX_EPOCH - Duration::from_secs(5);
        assert_eq!(kernel_time(whole), whole);
        let after = UNIX_EPOCH + Duration::new(5, 250_000_000);
        assert_eq!(kernel_time(after), after);
    }
}
