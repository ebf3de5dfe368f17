//! `floor`: the cheapest FUSE file system we can write, the reference for
//! what FUSE itself costs on a machine.
//!
//! It keeps files in memory under one lock and answers every request at
//! once, through the same `fuser` version, thread count, kernel options and
//! cache timeouts as `tierfs mount`. Whatever it cannot beat (a `stat` after
//! a write, an `unlink`, a 1 MiB write) is a round trip through the kernel,
//! not TierFS; `scripts/bench-fuse.sh` runs it beside native, `tierfs` and
//! rclone and reports `tierfs / floor`.
//!
//! ```sh
//! cargo run --release -p tierfs-fuse --example floor -- /mnt/floor   # unmount with `umount`
//! ```
//!
//! Not a file system to keep data in: nothing persists, there are no
//! permissions, links or renames.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, KernelConfig,
    LockOwner, MountOption, OpenFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty,
    ReplyEntry, ReplyOpen, ReplyWrite, Request, TimeOrNow, WriteFlags,
};
use parking_lot::Mutex;

/// The mount's defaults for a private store (`tierfs mount --help`).
const TTL: Duration = Duration::from_secs(60);
const CHUNK: usize = 1 << 20;
/// As the mount's open files: keep the page cache, no `FLUSH` on close.
const OPEN_FLAGS: FopenFlags = FopenFlags::FOPEN_KEEP_CACHE.union(FopenFlags::FOPEN_NOFLUSH);

struct Node {
    kind: FileType,
    mode: u16,
    size: u64,
    /// Directory entries.
    children: BTreeMap<String, u64>,
    /// File contents in chunks of up to 1 MiB, each as long as written so
    /// far (what is missing reads as zeros).
    chunks: Vec<Option<Vec<u8>>>,
}

impl Node {
    fn new(kind: FileType, mode: u32) -> Self {
        Node { kind, mode: (mode & 0o7777) as u16, size: 0, children: BTreeMap::new(), chunks: Vec::new() }
    }

    fn attr(&self, ino: u64) -> FileAttr {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        FileAttr {
            ino: INodeNo(ino),
            size: self.size,
            blocks: self.size.div_ceil(512),
            atime: now,
            mtime: now,
            ctime: now,
            crtime: now,
            kind: self.kind,
            perm: self.mode,
            nlink: if self.kind == FileType::Directory { 2 } else { 1 },
            uid: 0,
            gid: 0,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        let mut pos = offset as usize;
        let mut rest = data;
        while !rest.is_empty() {
            let (index, within) = (pos / CHUNK, pos % CHUNK);
            if self.chunks.len() <= index {
                self.chunks.resize_with(index + 1, || None);
            }
            let chunk = self.chunks[index].get_or_insert_with(Vec::new);
            let n = rest.len().min(CHUNK - within);
            if chunk.len() < within + n {
                chunk.resize(within + n, 0);
            }
            chunk[within..within + n].copy_from_slice(&rest[..n]);
            (pos, rest) = (pos + n, &rest[n..]);
        }
        self.size = self.size.max(pos as u64);
    }

    fn read(&self, offset: u64, size: u32) -> Vec<u8> {
        let end = self.size.min(offset + u64::from(size));
        let mut out = Vec::with_capacity(end.saturating_sub(offset) as usize);
        let mut pos = offset;
        while pos < end {
            let (index, within) = ((pos as usize) / CHUNK, (pos as usize) % CHUNK);
            let n = ((end - pos) as usize).min(CHUNK - within);
            let chunk = self.chunks.get(index).and_then(|c| c.as_deref()).unwrap_or(&[]);
            let stored = &chunk[within.min(chunk.len())..(within + n).min(chunk.len())];
            out.extend_from_slice(stored);
            out.resize(out.len() + n - stored.len(), 0);
            pos += n as u64;
        }
        out
    }

    fn truncate(&mut self, size: u64) {
        let size_usize = size as usize;
        self.chunks.truncate(size_usize.div_ceil(CHUNK));
        let keep = size_usize - self.chunks.len().saturating_sub(1) * CHUNK;
        if let Some(Some(last)) = self.chunks.last_mut() {
            last.truncate(keep);
        }
        self.size = size;
    }
}

struct Floor {
    nodes: Mutex<HashMap<u64, Node>>,
    next: AtomicU64,
}

impl Floor {
    fn new() -> Self {
        let mut nodes = HashMap::new();
        nodes.insert(1, Node::new(FileType::Directory, 0o755));
        Floor { nodes: Mutex::new(nodes), next: AtomicU64::new(2) }
    }

    fn add(&self, parent: u64, name: &OsStr, node: Node) -> Result<FileAttr, Errno> {
        let name = name.to_str().ok_or(Errno::EINVAL)?.to_owned();
        let mut nodes = self.nodes.lock();
        let dir = nodes.get_mut(&parent).ok_or(Errno::ENOENT)?;
        if dir.children.contains_key(&name) {
            return Err(Errno::EEXIST);
        }
        let ino = self.next.fetch_add(1, Ordering::Relaxed);
        dir.children.insert(name, ino);
        let attr = node.attr(ino);
        nodes.insert(ino, node);
        Ok(attr)
    }

    fn remove(&self, parent: u64, name: &OsStr, dir: bool) -> Result<(), Errno> {
        let name = name.to_str().ok_or(Errno::EINVAL)?;
        let mut nodes = self.nodes.lock();
        let ino = *nodes.get(&parent).and_then(|p| p.children.get(name)).ok_or(Errno::ENOENT)?;
        let node = &nodes[&ino];
        match (dir, node.kind == FileType::Directory) {
            (true, false) => return Err(Errno::ENOTDIR),
            (false, true) => return Err(Errno::EISDIR),
            (true, true) if !node.children.is_empty() => return Err(Errno::ENOTEMPTY),
            _ => {}
        }
        nodes.remove(&ino);
        nodes.get_mut(&parent).map(|p| p.children.remove(name));
        Ok(())
    }
}

impl Filesystem for Floor {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> io::Result<()> {
        tierfs_fuse::fuse::configure_kernel(config);
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let nodes = self.nodes.lock();
        let found = name
            .to_str()
            .and_then(|name| nodes.get(&parent.0)?.children.get(name))
            .map(|ino| nodes[ino].attr(*ino));
        match found {
            Some(attr) => reply.entry(&TTL, &attr, Generation(0)),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.nodes.lock().get(&ino.0) {
            Some(node) => reply.attr(&TTL, &node.attr(ino.0)),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let mut nodes = self.nodes.lock();
        let Some(node) = nodes.get_mut(&ino.0) else { return reply.error(Errno::ENOENT) };
        if let Some(size) = size {
            node.truncate(size);
        }
        if let Some(mode) = mode {
            node.mode = (mode & 0o7777) as u16;
        }
        reply.attr(&TTL, &node.attr(ino.0));
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        match self.add(parent.0, name, Node::new(FileType::Directory, mode)) {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self.remove(parent.0, name, false) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self.remove(parent.0, name, true) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let mut nodes = self.nodes.lock();
        let Some(node) = nodes.get_mut(&ino.0) else { return reply.error(Errno::ENOENT) };
        if flags.0 & libc::O_TRUNC != 0 {
            node.truncate(0);
        }
        reply.opened(FileHandle(ino.0), OPEN_FLAGS);
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        match self.add(parent.0, name, Node::new(FileType::RegularFile, mode)) {
            Ok(attr) => reply.created(&TTL, &attr, Generation(0), FileHandle(attr.ino.0), OPEN_FLAGS),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        match self.nodes.lock().get(&ino.0) {
            Some(node) => reply.data(&node.read(offset, size)),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        match self.nodes.lock().get_mut(&ino.0) {
            Some(node) => {
                node.write(offset, data);
                reply.written(data.len() as u32);
            }
            None => reply.error(Errno::ENOENT),
        }
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn fsync(&self, _req: &Request, _ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        reply.ok();
    }

    fn readdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        let nodes = self.nodes.lock();
        let Some(dir) = nodes.get(&ino.0) else { return reply.error(Errno::ENOENT) };
        let entries =
            [(ino.0, FileType::Directory, ".".to_owned()), (1, FileType::Directory, "..".to_owned())]
                .into_iter()
                .chain(dir.children.iter().map(|(name, child)| (*child, nodes[child].kind, name.clone())));
        for (i, (child, kind, name)) in entries.enumerate().skip(offset as usize) {
            if reply.add(INodeNo(child), i as u64 + 1, kind, &name) {
                break;
            }
        }
        reply.ok();
    }
}

fn main() -> Result<(), String> {
    let mountpoint: PathBuf = std::env::args_os()
        .nth(1)
        .ok_or("usage: floor MOUNTPOINT (unmount with `umount MOUNTPOINT`)")?
        .into();
    let mut config = fuser::Config::default();
    // As `tierfs mount`: the kernel checks permissions from the attributes.
    config.mount_options =
        vec![MountOption::FSName("floor".into()), MountOption::DefaultPermissions, MountOption::NoAtime];
    config.n_threads = Some(8);
    config.clone_fd = true;
    fuser::mount(Floor::new(), &mountpoint, &config)
        .map_err(|e| format!("cannot mount at {}: {e}", mountpoint.display()))
}
