//! `patch` on the local backend: a change of part of a value costs about
//! what the patch carries, and is atomic across a crash.
//!
//! How the patched bytes reach the value:
//! - a value that stays small (at most [`INLINE_LIMIT`]) is rebuilt in
//!   memory and its record rewritten;
//! - a blob that only grows or changes is changed **in place**, behind a
//!   redo record: the writes over bytes the value already had (and, when
//!   small, all of them) are committed in the `redo` table in the same
//!   transaction as the new record, then written into the blob file and
//!   synced. Writes past the old end that are too large for the redo record
//!   go into the file first (past the end no reader looks at), synced
//!   before the commit;
//! - a blob that is cut (a new length below its old one, even if writes
//!   then extend it again), or one that is mapped into memory by a reader
//!   right now, is copied into a new blob with the patch laid over it (the
//!   same crash argument as a put).
//!
//! Crash invariants:
//! 1. The transaction is the commit point: before it, the record, and every
//!    byte below the old size, are as they were; bytes written past the old
//!    end are garbage nobody reads.
//! 2. After it, the redo record holds every byte of the patch the file may
//!    not have durably, and the new length. Every open replays the redo
//!    record of each blob still in use (writes are idempotent) and syncs the
//!    file before deleting it.
//! 3. There is at most one redo record per blob: patches of a key run one
//!    at a time, and each patch's record replaces the last one of its blob
//!    (whose writes were synced before that patch began), so a replay never
//!    brings back older bytes.
//! 4. Space is reserved (`fallocate`) before the commit, so writing the
//!    committed bytes into the file does not run out of room afterwards.

use std::fs::File;
use std::hash::{Hash, Hasher};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;

use bytes::Bytes;
use parking_lot::Mutex;
use redb::{ReadableTable, TableDefinition};

use super::record::Body;
use super::{blobs, db_error, LocalStorage, StagedOp, INLINE_LIMIT};
use crate::error::{Error, ErrorKind, Result};
use crate::key::Key;
use crate::storage::{Condition, MetadataChanges, ObjectMeta, Patch};

/// Per blob id: the last committed patch changed in place (see
/// [`RedoRecord`]).
pub(super) const REDO: TableDefinition<u64, &[u8]> = TableDefinition::new("redo");

/// Writes past the old end go into the redo record too (one sync less)
/// when the patch carries at most this many bytes.
const REDO_ALL_MAX: u64 = 1 << 20;

/// Attempts of a patch whose value changed between reading and committing.
const ATTEMPTS: usize = 16;

/// How a patch's bytes reach the value.
pub(super) enum PatchBody {
    /// The whole new value, inline in the record.
    Inline(Bytes),
    /// A new, synced blob holding the whole new value.
    NewBlob(u64),
    /// The record's blob, changed in place after the commit as `redo` says.
    InPlace { id: u64, redo: RedoRecord },
}

/// A patch ready to commit.
pub(super) struct StagedPatch {
    pub key: Key,
    /// The record version the patch was made against: the commit fails
    /// with `Conflict` if the record moved on.
    pub expected: u64,
    pub size: u64,
    pub metadata: MetadataChanges,
    pub body: PatchBody,
}

/// What a blob changed in place must hold: its length, and bytes at offsets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct RedoRecord {
    pub len: u64,
    pub writes: Vec<(u64, Bytes)>,
}

impl RedoRecord {
    /// `u64 version | u64 len | u32 n | n x (u64 offset, u32 length,
    /// bytes)`, little-endian; `version` is the record version the patch
    /// committed.
    pub fn encode(&self, version: u64) -> Vec<u8> {
        let data: usize = self.writes.iter().map(|(_, d)| 12 + d.len()).sum();
        let mut out = Vec::with_capacity(20 + data);
        out.extend_from_slice(&version.to_le_bytes());
        out.extend_from_slice(&self.len.to_le_bytes());
        out.extend_from_slice(&(self.writes.len() as u32).to_le_bytes());
        for (offset, data) in &self.writes {
            out.extend_from_slice(&offset.to_le_bytes());
            out.extend_from_slice(&(data.len() as u32).to_le_bytes());
            out.extend_from_slice(data);
        }
        out
    }

    /// The version and the record.
    pub fn decode(bytes: &[u8]) -> Result<(u64, RedoRecord)> {
        let damaged = || {
            Error::new(
                ErrorKind::Unavailable,
                "the store is damaged: a redo record is truncated; restore the store directory from a backup",
            )
        };
        let mut rest = bytes;
        let mut take = |n: usize| -> Result<&[u8]> {
            if rest.len() < n {
                return Err(damaged());
            }
            let (head, tail) = rest.split_at(n);
            rest = tail;
            Ok(head)
        };
        let u64_of = |b: &[u8]| u64::from_le_bytes(b.try_into().expect("8 bytes"));
        let version = u64_of(take(8)?);
        let len = u64_of(take(8)?);
        let n = u32::from_le_bytes(take(4)?.try_into().expect("4 bytes"));
        let mut writes = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let offset = u64_of(take(8)?);
            let size = u32::from_le_bytes(take(4)?.try_into().expect("4 bytes")) as usize;
            writes.push((offset, Bytes::copy_from_slice(take(size)?)));
        }
        Ok((version, RedoRecord { len, writes }))
    }

    /// Writes it into `file` and syncs the file.
    pub fn apply(&self, file: &File) -> std::io::Result<()> {
        if file.metadata()?.len() < self.len {
            file.set_len(self.len)?;
        }
        for (offset, data) in &self.writes {
            file.write_all_at(data, *offset)?;
        }
        file.sync_data()
    }
}

/// Striped locks that make the patches of one key run one at a time.
#[derive(Debug)]
pub(super) struct PatchLocks {
    stripes: Vec<Mutex<()>>,
}

impl Default for PatchLocks {
    fn default() -> Self {
        PatchLocks { stripes: (0..64).map(|_| Mutex::new(())).collect() }
    }
}

impl PatchLocks {
    fn lock(&self, key: &Key) -> parking_lot::MutexGuard<'_, ()> {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        key.as_str().hash(&mut h);
        self.stripes[(h.finish() as usize) % self.stripes.len()].lock()
    }
}

/// A value as found before patching it.
enum Found {
    Inline(Bytes),
    Blob(u64),
}

impl LocalStorage {
    /// Applies `patch` to `key` (blocking; call off the executor).
    pub(super) fn patch_blocking(
        &self,
        key: &Key,
        patch: &Patch,
        condition: &Condition,
    ) -> Result<ObjectMeta> {
        patch.validate()?;
        let _one_at_a_time = self.inner.patch_locks.lock(key);
        for _ in 0..ATTEMPTS {
            let found = self.with_record(key, |r| {
                let body = match r.body {
                    Body::Inline(bytes) => Found::Inline(Bytes::copy_from_slice(bytes)),
                    Body::Blob(id) => Found::Blob(id),
                };
                (Self::meta_of(key, &r), r.version, body)
            })?;
            let (meta, expected, found) = found.ok_or_else(|| Error::not_found(key.as_str()))?;
            condition.check(&meta)?;
            let (size, new_len) = (meta.size, patch.final_len(meta.size));
            let (body, file) = self.stage_patch(key, patch, found, size, new_len)?;
            let new_blob = match body {
                PatchBody::NewBlob(id) => Some(id),
                _ => None,
            };
            let redo = match &body {
                PatchBody::InPlace { redo, .. } => Some(redo.clone()),
                _ => None,
            };
            let staged = StagedPatch {
                key: key.clone(),
                expected,
                size: new_len,
                metadata: patch.metadata_changes().clone(),
                body,
            };
            match self.commit(vec![StagedOp::Patch(staged)], "patch") {
                Ok(mut metas) => {
                    let meta = metas.pop().expect("one patch, one meta");
                    if let (Some(redo), Some((id, file))) = (redo, file) {
                        self.apply_redo(key, id, &file, &redo, &meta)?;
                    }
                    return Ok(meta);
                }
                // The record moved on between the read and the commit (a put,
                // a metadata change): patch what is there now.
                Err(e) if is_moved(&e) => {
                    if let Some(id) = new_blob {
                        self.inner.blobs.remove(id);
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Err(Error::new(ErrorKind::Conflict, "the value kept changing while being patched; retry")
            .with_key(key.as_str()))
    }

    /// Prepares the body of a patch; for a change in place, also returns
    /// the blob's file, opened for writing.
    fn stage_patch(
        &self,
        key: &Key,
        patch: &Patch,
        found: Found,
        size: u64,
        new_len: u64,
    ) -> Result<(PatchBody, Option<(u64, File)>)> {
        let io = |what: &'static str| move |e: std::io::Error| Error::io(what, e).with_key(key.as_str());
        let keep = size.min(patch.new_len().unwrap_or(u64::MAX));
        if new_len <= INLINE_LIMIT as u64 {
            let old = match found {
                Found::Inline(bytes) => bytes,
                Found::Blob(id) => {
                    let file =
                        File::open(self.inner.blobs.path(id)).map_err(io("cannot open the value's blob"))?;
                    Bytes::from(
                        blobs::read_at(&file, 0, keep as usize)
                            .map_err(io("cannot read the value's blob"))?,
                    )
                }
            };
            return Ok((PatchBody::Inline(Bytes::from(patch.apply_to(&old)?)), None));
        }
        let id = match found {
            // In place only when no byte of the old value is cut.
            Found::Blob(id) if keep == size && self.inner.blobs.mappings.make_in_place(id) => id,
            found => {
                return Ok((PatchBody::NewBlob(self.patched_copy(key, patch, found, keep, new_len)?), None))
            }
        };
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(self.inner.blobs.path(id))
            .map_err(io("cannot open the value's blob"))?;
        // Bytes past the old end (left by a patch cut short) must read as zeros.
        if file.metadata().map_err(io("cannot read the value's blob"))?.len() > size {
            file.set_len(size).map_err(io("cannot truncate the value's blob"))?;
        }
        if new_len > size {
            reserve(&file, size, new_len - size).map_err(io("cannot extend the value's blob"))?;
        }
        let mut redo = RedoRecord { len: new_len, writes: Vec::new() };
        let mut direct = false;
        for (offset, data) in patch.writes() {
            let end = offset + data.len() as u64;
            if patch.data_len() <= REDO_ALL_MAX || end <= size {
                redo.writes.push((*offset, data.clone()));
            } else if *offset >= size {
                file.write_all_at(data, *offset).map_err(io("cannot write the value's blob"))?;
                direct = true;
            } else {
                let cut = (size - offset) as usize;
                redo.writes.push((*offset, data.slice(..cut)));
                file.write_all_at(&data[cut..], size).map_err(io("cannot write the value's blob"))?;
                direct = true;
            }
        }
        if direct {
            file.sync_data().map_err(io("cannot write the value's blob"))?;
        }
        Ok((PatchBody::InPlace { id, redo }, Some((id, file))))
    }

    /// Writes the patched value into a new, synced blob: the first `keep`
    /// bytes of the old value, zeros up to `new_len`, the writes over them.
    fn patched_copy(&self, key: &Key, patch: &Patch, found: Found, keep: u64, new_len: u64) -> Result<u64> {
        let id = self.inner.blobs.allocate();
        let written = (|| -> std::io::Result<()> {
            let file = self.inner.blobs.create(id)?;
            match found {
                Found::Inline(bytes) => file.write_all_at(&bytes[..keep as usize], 0)?,
                Found::Blob(old) => copy_prefix(&File::open(self.inner.blobs.path(old))?, &file, keep)?,
            }
            file.set_len(new_len)?;
            for (offset, data) in patch.writes() {
                blobs::write_at(&file, data, *offset)?;
            }
            file.sync_all()?;
            self.inner.blobs.sync_dir()
        })();
        match written {
            Ok(()) => Ok(id),
            Err(e) => {
                self.inner.blobs.remove(id);
                Err(Error::io("cannot write the patched value's blob", e).with_key(key.as_str()))
            }
        }
    }

    /// After the commit: writes the redo record's bytes into the blob and
    /// syncs it; its redo record is then deleted by a later commit.
    fn apply_redo(
        &self,
        key: &Key,
        id: u64,
        file: &File,
        redo: &RedoRecord,
        meta: &ObjectMeta,
    ) -> Result<()> {
        if let Err(e) = redo.apply(file) {
            // Committed, and replayed from the redo record at the next open;
            // until then reads of these bytes are stale.
            tracing::error!(
                key = %key, blob = id, error = %e,
                "a committed patch could not be written into its blob; it is applied again at the next open"
            );
            return Err(Error::io(
                "the patch was committed but could not be written into the value's file",
                e,
            )
            .with_key(key.as_str()));
        }
        let version = meta.version.parse().unwrap_or(0);
        self.inner.applied_redo.lock().push((id, version));
        Ok(())
    }
}

/// Whether a failed commit of a patch says the record moved on.
fn is_moved(e: &Error) -> bool {
    e.kind() == ErrorKind::Conflict && e.message() == MOVED
}

/// The message of a patch whose record moved on before it committed.
pub(super) const MOVED: &str = "the value changed while the patch was prepared";

/// In the transaction: the record of `patch.key` must still be at
/// `patch.expected`.
pub(super) fn check_unmoved(current: Option<u64>, patch: &StagedPatch) -> Result<()> {
    match current {
        None => Err(Error::not_found(patch.key.as_str())),
        Some(version) if version != patch.expected => {
            Err(Error::new(ErrorKind::Conflict, MOVED).with_key(patch.key.as_str()))
        }
        Some(_) => Ok(()),
    }
}

/// Replays the redo records of blobs still in use and deletes them all
/// (at open, before any write).
pub(super) fn replay(
    txn: &redb::WriteTransaction,
    blobs: &blobs::BlobDir,
    in_use: impl Fn(u64) -> bool,
) -> Result<usize> {
    let mut table = txn.open_table(REDO).map_err(db_error)?;
    let mut replayed = 0;
    let mut ids = Vec::new();
    for row in table.iter().map_err(db_error)? {
        let (id, value) = row.map_err(db_error)?;
        let id = id.value();
        ids.push(id);
        if !in_use(id) {
            continue;
        }
        let (_, redo) = RedoRecord::decode(value.value())?;
        std::fs::OpenOptions::new()
            .write(true)
            .open(blobs.path(id))
            .and_then(|file| redo.apply(&file))
            .map_err(|e| Error::io(format!("cannot replay a patch into blob {id:016x}"), e))?;
        replayed += 1;
    }
    for id in ids {
        table.remove(id).map_err(db_error)?;
    }
    Ok(replayed)
}

/// Deletes the redo records of patches written into their blobs since
/// (each only if no later patch of its blob replaced it).
pub(super) fn forget_applied(table: &mut redb::Table<u64, &[u8]>, applied: Vec<(u64, u64)>) -> Result<()> {
    for (id, version) in applied {
        let current = match table.get(id).map_err(db_error)? {
            Some(value) => RedoRecord::decode(value.value())?.0,
            None => continue,
        };
        if current == version {
            table.remove(id).map_err(db_error)?;
        }
    }
    Ok(())
}

/// Copies the first `len` bytes of `from` into `to` (in the kernel where it can).
fn copy_prefix(from: &File, to: &File, len: u64) -> std::io::Result<()> {
    let mut copied = 0u64;
    while copied < len {
        let (mut off_in, mut off_out) = (copied as i64, copied as i64);
        let want = (len - copied).min(1 << 30) as usize;
        // SAFETY: plain system call on two descriptors we own; the offsets
        // are our own variables.
        let n = unsafe {
            libc::copy_file_range(from.as_raw_fd(), &mut off_in, to.as_raw_fd(), &mut off_out, want, 0)
        };
        if n < 0 {
            let err = std::io::Error::last_os_error();
            if copied == 0
                && matches!(
                    err.raw_os_error(),
                    Some(libc::EXDEV | libc::ENOSYS | libc::EOPNOTSUPP | libc::EINVAL)
                )
            {
                return copy_by_reading(from, to, len);
            }
            return Err(err);
        }
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the blob is shorter than its record",
            ));
        }
        copied += n as u64;
    }
    Ok(())
}

fn copy_by_reading(from: &File, to: &File, len: u64) -> std::io::Result<()> {
    let mut pos = 0u64;
    let mut buf = vec![0u8; 1 << 20];
    while pos < len {
        let n = (len - pos).min(buf.len() as u64) as usize;
        from.read_exact_at(&mut buf[..n], pos)?;
        to.write_all_at(&buf[..n], pos)?;
        pos += n as u64;
    }
    Ok(())
}

/// Extends `file` from `from` by `len` bytes of zeros with the blocks
/// allocated, so later writes there cannot run out of room; where the file
/// system cannot allocate ahead, extends it sparsely.
fn reserve(file: &File, from: u64, len: u64) -> std::io::Result<()> {
    // SAFETY: plain system call on a descriptor we own; no memory passed.
    let r = unsafe { libc::fallocate(file.as_raw_fd(), 0, from as i64, len as i64) };
    if r == 0 {
        return Ok(());
    }
    let err = std::io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EOPNOTSUPP) => file.set_len(from + len),
        _ => Err(err),
    }
}
