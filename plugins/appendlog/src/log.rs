//! [`Log`]: the append-only file, its in-memory index and crash recovery.
//!
//! Invariants:
//! - Bytes before `Tail::end` are whole, checksummed groups that were
//!   fsynced before anything was acknowledged or appended after them.
//! - The index maps every live key to where its value sits in the file;
//!   it changes only under the tail lock, after the group that causes the
//!   change is durable. Value bytes, once indexed, never change, so readers
//!   need no lock while reading them.
//! - A failed append is cut off again (`set_len` back to `Tail::end`); if
//!   even that fails, the log refuses writes until it is reopened.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use tierfs_plugin_api::{Metadata, ObjectStat, PluginError};

use crate::crc::Crc32;
use crate::format::{self, GroupHeader, Op, GROUP_HEADER, MAGIC};

/// Size of the pieces values are copied and checked in.
const CHUNK: usize = 1 << 20;

/// Where a live value sits, and its stat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// File offset of the value's first byte.
    pub offset: u64,
    /// Length of the value.
    pub size: u64,
    /// CRC-32 of the value.
    pub crc: u32,
    /// Sequence number of the group that wrote it: its version.
    pub seq: u64,
    /// When it was written.
    pub modified_nanos: u64,
    /// Its metadata.
    pub metadata: Metadata,
}

impl Entry {
    /// The stat TierFS sees.
    pub fn stat(&self) -> ObjectStat {
        ObjectStat {
            size: self.size,
            modified: ObjectStat::time_from_nanos(self.modified_nanos),
            version: self.seq.to_string(),
            metadata: self.metadata.clone(),
        }
    }
}

/// Live keys in byte order.
pub type Index = BTreeMap<String, Entry>;

/// Where the values of a group being committed come from.
pub enum Values<'a> {
    /// In memory, one slice per put, in op order: the group goes out in one write.
    Memory(Vec<&'a [u8]>),
    /// One put whose value of `len` bytes is in a spill file.
    Spill {
        /// The spill file.
        file: &'a File,
        /// Its length.
        len: u64,
    },
}

/// What a commit wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Committed {
    /// The group's sequence number.
    pub seq: u64,
    /// The group's time.
    pub modified_nanos: u64,
}

struct Tail {
    /// End of the last whole group: where the next one goes.
    end: u64,
    /// Sequence number of the next group.
    next_seq: u64,
    /// Why writes are refused, after an append that could not be undone.
    broken: Option<String>,
}

/// An open log file.
pub struct Log {
    path: PathBuf,
    file: File,
    index: RwLock<Index>,
    tail: Mutex<Tail>,
    spill_seq: AtomicU64,
    recovered_bytes: u64,
}

impl std::fmt::Debug for Log {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Log").field("path", &self.path).finish()
    }
}

fn now_nanos() -> u64 {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos();
    u64::try_from(nanos).unwrap_or(u64::MAX)
}

/// A problem found at a group while scanning.
struct Defect {
    why: &'static str,
    /// Where the group claims to end, if its header could be read.
    end: Option<u64>,
}

fn defect(why: &'static str, end: Option<u64>) -> Defect {
    Defect { why, end }
}

/// Applies a durable group's operations to the index. `values_at` is the
/// file offset of the group's first value.
fn apply(index: &mut Index, values_at: u64, seq: u64, modified_nanos: u64, ops: Vec<Op<'_>>) {
    let mut offset = values_at;
    for op in ops {
        match op {
            Op::Put { key, metadata, len, crc } => {
                index.insert(key.to_owned(), Entry { offset, size: len, crc, seq, modified_nanos, metadata });
                offset += len;
            }
            Op::Delete { key } => {
                index.remove(key);
            }
            Op::Rename { from, to } => {
                if let Some(mut entry) = index.remove(from) {
                    entry.seq = seq;
                    index.insert(to.to_owned(), entry);
                }
            }
            Op::Metadata { key, metadata } => {
                if let Some(entry) = index.get_mut(key) {
                    entry.seq = seq;
                    entry.metadata = metadata;
                }
            }
        }
    }
}

impl Log {
    /// Opens the log at `path`, creating it (and its directory) if missing,
    /// and rebuilds the index by scanning it. A torn last group is cut off;
    /// damage before the last group is refused with what to do.
    pub fn open(path: &Path) -> Result<Log, PluginError> {
        let shown = path.display();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            // Private to the daemon's user, like every store file (0700, 0600).
            std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
                .create(dir)
                .map_err(|e| {
                    PluginError::io(&format!("cannot create the log's directory {}", dir.display()), e)
                })?;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(|e| PluginError::io(&format!("cannot open the log {shown}"), e))?;
        lock(&file, path)?;
        let io = |what: &str| {
            let context = format!("{what} the log {shown}");
            move |e| PluginError::io(&context, e)
        };
        let mut len = file.metadata().map_err(io("cannot read"))?.len();
        if len < MAGIC.len() as u64 {
            let mut start = vec![0; len as usize];
            file.read_exact_at(&mut start, 0).map_err(io("cannot read"))?;
            if !MAGIC.starts_with(&start) && start.iter().any(|b| *b != 0) {
                return Err(not_a_log(path));
            }
            // A new log, or one whose creation was cut short.
            file.set_len(0).map_err(io("cannot initialise"))?;
            file.write_all_at(MAGIC, 0).map_err(io("cannot initialise"))?;
            file.sync_all().map_err(io("cannot initialise"))?;
            sync_dir(path).map_err(io("cannot make durable the directory of"))?;
            len = MAGIC.len() as u64;
        } else {
            let mut magic = [0; MAGIC.len()];
            file.read_exact_at(&mut magic, 0).map_err(io("cannot read"))?;
            if &magic != MAGIC {
                return Err(not_a_log(path));
            }
        }
        let mut index = Index::new();
        let mut next_seq = 1;
        let mut pos = MAGIC.len() as u64;
        while pos < len {
            match Self::read_group(&file, pos, len, &mut index, &mut next_seq).map_err(io("cannot read"))? {
                Ok(end) => pos = end,
                Err(d) => {
                    let torn = match d.end {
                        None => true,
                        // The last group, perhaps followed by space a crash left unwritten.
                        Some(end) => end >= len || zeros_from(&file, end, len).map_err(io("cannot read"))?,
                    };
                    if !torn {
                        return Err(PluginError::unavailable(format!(
                            "the log {shown} is damaged at byte {pos} ({}); the {pos} bytes before are intact: \
                             keep a copy of the file, then cut it there (`truncate -s {pos}`) to open it",
                            d.why
                        )));
                    }
                    // A group torn by a crash was never acknowledged: cut it off.
                    file.set_len(pos).map_err(io("cannot cut the torn end of"))?;
                    file.sync_all().map_err(io("cannot cut the torn end of"))?;
                    break;
                }
            }
        }
        let recovered_bytes = len - pos;
        remove_stale_spills(path);
        Ok(Log {
            path: path.to_owned(),
            file,
            index: RwLock::new(index),
            tail: Mutex::new(Tail { end: pos, next_seq, broken: None }),
            spill_seq: AtomicU64::new(0),
            recovered_bytes,
        })
    }

    /// Reads and checks the group at `pos`, applying it to `index` if whole.
    /// The last group's values are checked too, since only it can be torn.
    fn read_group(
        file: &File,
        pos: u64,
        len: u64,
        index: &mut Index,
        next_seq: &mut u64,
    ) -> std::io::Result<Result<u64, Defect>> {
        if len - pos < GROUP_HEADER {
            return Ok(Err(defect("incomplete group header", None)));
        }
        let mut raw = [0; GROUP_HEADER as usize];
        file.read_exact_at(&mut raw, pos)?;
        let header = GroupHeader::decode(&raw);
        let Some(end) = (pos + GROUP_HEADER).checked_add(header.total_len) else {
            return Ok(Err(defect("impossible group length", None)));
        };
        if end > len {
            return Ok(Err(defect("the group runs past the end of the file", Some(end))));
        }
        if u64::from(header.head_len) > header.total_len {
            return Ok(Err(defect("the group's head is longer than the group", Some(end))));
        }
        let mut head = vec![0; header.head_len as usize];
        file.read_exact_at(&mut head, pos + GROUP_HEADER)?;
        if !header.verify(&head) {
            return Ok(Err(defect("group checksum mismatch", Some(end))));
        }
        let decoded = match format::decode_head(&head) {
            Ok(h) => h,
            Err(why) => return Ok(Err(defect(why, Some(end)))),
        };
        let values_at = pos + GROUP_HEADER + u64::from(header.head_len);
        if decoded.values_len() != Some(end - values_at) {
            return Ok(Err(defect("the values do not match their lengths", Some(end))));
        }
        // Only the last group can be torn; unwritten space a crash left
        // after it (zeros) does not make it any less the last.
        if end == len || zeros_from(file, end, len)? {
            let mut offset = values_at;
            for op in &decoded.ops {
                if let Op::Put { len, crc, .. } = op {
                    if checksum(file, offset, *len)? != *crc {
                        return Ok(Err(defect("value checksum mismatch", Some(end))));
                    }
                    offset += len;
                }
            }
        }
        *next_seq = (*next_seq).max(decoded.seq.saturating_add(1));
        apply(index, values_at, decoded.seq, decoded.modified_nanos, decoded.ops);
        Ok(Ok(end))
    }

    /// The log's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes cut off the end at open because a crash had torn them.
    pub fn recovered_bytes(&self) -> u64 {
        self.recovered_bytes
    }

    /// The index, for reading.
    pub fn index(&self) -> Result<RwLockReadGuard<'_, Index>, PluginError> {
        self.index.read().map_err(|_| poisoned())
    }

    fn index_mut(&self) -> Result<RwLockWriteGuard<'_, Index>, PluginError> {
        self.index.write().map_err(|_| poisoned())
    }

    fn tail(&self) -> Result<MutexGuard<'_, Tail>, PluginError> {
        self.tail.lock().map_err(|_| poisoned())
    }

    /// The entry of `key`, or `NotFound`.
    pub fn entry(&self, key: &str) -> Result<Entry, PluginError> {
        self.index()?.get(key).cloned().ok_or_else(PluginError::not_found)
    }

    /// `len` bytes of the file at `offset`.
    pub fn read_at(&self, offset: u64, len: u64) -> Result<Vec<u8>, PluginError> {
        let len = usize::try_from(len)
            .map_err(|_| PluginError::invalid_input("the value is too large for this machine's memory"))?;
        let mut buf = vec![0; len];
        self.file
            .read_exact_at(&mut buf, offset)
            .map_err(|e| PluginError::io(&format!("cannot read the log {}", self.path.display()), e))?;
        Ok(buf)
    }

    /// A name for a new spill file beside the log.
    pub fn spill_path(&self) -> PathBuf {
        let n = self.spill_seq.fetch_add(1, Ordering::Relaxed);
        let name = self.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        self.path.with_file_name(format!("{name}.spill-{}-{n}", std::process::id()))
    }

    /// Appends one group of `ops` durably and applies it, if `check` (run
    /// against the index under the write lock) returns `Ok(true)`; returns
    /// `None` when `check` says there is nothing to write.
    pub fn commit(
        &self,
        ops: Vec<Op<'_>>,
        values: Values<'_>,
        check: impl FnOnce(&Index) -> Result<bool, PluginError>,
    ) -> Result<Option<Committed>, PluginError> {
        let mut tail = self.tail()?;
        if let Some(why) = &tail.broken {
            return Err(PluginError::unavailable(why.clone()));
        }
        if !check(&*self.index()?)? {
            return Ok(None);
        }
        let (seq, modified_nanos, start) = (tail.next_seq, now_nanos(), tail.end);
        let too_large = || PluginError::invalid_input("the operation is too large for one log record");
        let values_len = match &values {
            Values::Memory(v) => v.iter().try_fold(0u64, |sum, v| sum.checked_add(v.len() as u64)),
            Values::Spill { len, .. } => Some(*len),
        }
        .ok_or_else(too_large)?;
        let mut group = format::encode_prefix(seq, modified_nanos, &ops, values_len).ok_or_else(too_large)?;
        let values_at = start + group.len() as u64;
        let end = values_at.checked_add(values_len).ok_or_else(too_large)?;
        let written = match values {
            Values::Memory(slices) => {
                group.reserve(usize::try_from(values_len).map_err(|_| too_large())?);
                for v in slices {
                    group.extend_from_slice(v);
                }
                self.file.write_all_at(&group, start).and_then(|()| self.file.sync_data())
            }
            Values::Spill { file, len } => self.file.write_all_at(&group, start).and_then(|()| {
                copy(file, len, &self.file, values_at)?;
                self.file.sync_data()
            }),
        };
        if let Err(e) = written {
            let err = PluginError::io(&format!("cannot append to the log {}", self.path.display()), e);
            if let Err(undo) = self.file.set_len(start).and_then(|()| self.file.sync_data()) {
                tail.broken = Some(format!(
                    "an append to the log {} failed and could not be undone ({undo}); writes are refused \
                     until the backend is reopened, which cuts the log back to its last whole record",
                    self.path.display()
                ));
            }
            return Err(err);
        }
        apply(&mut *self.index_mut()?, values_at, seq, modified_nanos, ops);
        tail.end = end;
        tail.next_seq += 1;
        Ok(Some(Committed { seq, modified_nanos }))
    }
}

fn poisoned() -> PluginError {
    PluginError::unavailable("an earlier operation panicked while holding the log's lock; reopen the backend")
}

fn not_a_log(path: &Path) -> PluginError {
    PluginError::config(format!(
        "{} exists and is not an appendlog log; point `path` at a new file or an existing log",
        path.display()
    ))
}

/// Takes an exclusive advisory lock, so two backends never share a log.
fn lock(file: &File, path: &Path) -> Result<(), PluginError> {
    // SAFETY: flock on a descriptor this `File` owns; no memory is involved.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        return Ok(());
    }
    let err = std::io::Error::last_os_error();
    if err.kind() == std::io::ErrorKind::WouldBlock {
        return Err(PluginError::unavailable(format!(
            "the log {} is already open in another backend or process; close that one or use another `path`",
            path.display()
        )));
    }
    Err(PluginError::io(&format!("cannot lock the log {}", path.display()), err))
}

fn sync_dir(path: &Path) -> std::io::Result<()> {
    match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => File::open(dir)?.sync_all(),
        None => File::open(".")?.sync_all(),
    }
}

/// Whether every byte from `pos` to `len` is zero (space a crash left unwritten).
fn zeros_from(file: &File, mut pos: u64, len: u64) -> std::io::Result<bool> {
    // Cheap answer for the usual case: a group header follows.
    let mut first = [0; GROUP_HEADER as usize];
    let n = (len.saturating_sub(pos)).min(GROUP_HEADER) as usize;
    file.read_exact_at(&mut first[..n], pos)?;
    if first[..n].iter().any(|b| *b != 0) {
        return Ok(false);
    }
    let mut buf = vec![0; CHUNK];
    while pos < len {
        let n = (len - pos).min(CHUNK as u64) as usize;
        file.read_exact_at(&mut buf[..n], pos)?;
        if buf[..n].iter().any(|b| *b != 0) {
            return Ok(false);
        }
        pos += n as u64;
    }
    Ok(true)
}

/// CRC-32 of `len` bytes of `file` at `offset`.
fn checksum(file: &File, mut offset: u64, len: u64) -> std::io::Result<u32> {
    let mut crc = Crc32::new();
    let mut buf = vec![0; CHUNK.min(usize::try_from(len).unwrap_or(CHUNK))];
    let end = offset + len;
    while offset < end {
        let n = (end - offset).min(buf.len() as u64) as usize;
        file.read_exact_at(&mut buf[..n], offset)?;
        crc.update(&buf[..n]);
        offset += n as u64;
    }
    Ok(crc.finish())
}

/// Copies `len` bytes from the start of `from` to `to` at `at`.
fn copy(from: &File, len: u64, to: &File, at: u64) -> std::io::Result<()> {
    let mut buf = vec![0; CHUNK.min(usize::try_from(len).unwrap_or(CHUNK))];
    let mut done = 0;
    while done < len {
        let n = (len - done).min(buf.len() as u64) as usize;
        from.read_exact_at(&mut buf[..n], done)?;
        to.write_all_at(&buf[..n], at + done)?;
        done += n as u64;
    }
    Ok(())
}

/// Removes spill files of streamed writes a crash left behind. Only the
/// holder of the log's lock writes them, so none is in use.
fn remove_stale_spills(path: &Path) {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else { return };
    let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
    let prefix = format!("{}.spill-", name.to_string_lossy());
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            // Best effort: a leftover spill file only wastes space.
            let _ = std::fs::remove_file(entry.path());
        }
    }
}
