//! `LocalStorage`: the embedded default, persistent on local disk.
//!
//! Engine: [redb](https://docs.rs/redb), an embedded ACID B-tree store in
//! pure Rust, for keys, metadata and small values, plus one file per large
//! value (more than [`INLINE_LIMIT`] bytes) under `blobs/`. Why, and the
//! crash argument, are in `docs/design.md`.
//!
//! - Every `put`, `delete`, `batch` and `rename` is committed in a redb
//!   write transaction with one fsync before it is acknowledged (concurrent
//!   writers share one: group commit), so an acknowledged write survives a
//!   crash or SIGKILL, and a batch is wholly present or wholly absent.
//! - A large value is written to a new blob file and fsynced before the
//!   record naming it commits; the record is the only way to reach it.
//! - A `get` of a blob maps it (no copy); streaming reads hold an open
//!   descriptor of the blob and read 1 MiB at a time. An overwrite writes a
//!   new blob, so it never tears a read; a `patch` may change a blob in
//!   place behind a redo record, but never one mapped by a reader
//!   (`patch.rs`).
//! - Streaming writes spill to a blob once they pass [`INLINE_LIMIT`],
//!   keeping memory bounded whatever the value size.
//! - A second process opening the same directory gets a clear
//!   `Unavailable` error naming the directory (redb's file lock).
//!
//! Capabilities: atomic batch, range read, rename, persistent, conditional
//! put, streaming, partial write.

mod blobs;
mod commit;
mod db;
mod patch;
mod record;
mod reserve;
mod writer;

use std::collections::HashSet;
use std::ops::{Bound, Range};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{self, StreamExt};
use redb::{Database, DatabaseError, ReadableDatabase, ReadableTable, TableDefinition};

use crate::error::{Error, ErrorKind, Result};
use crate::key::Key;
use crate::storage::{
    clamp_range, BatchOp, ByteStream, Capabilities, Condition, ListOptions, ListPage, ListPageBuilder,
    Metadata, MetadataChanges, ObjectMeta, Patch, PutOptions, Storage, ValueWriter,
};
use blobs::BlobDir;
use commit::GroupCommit;
use record::{Body, Record};

/// Values up to this size live inside the database; larger ones in blob files.
pub const INLINE_LIMIT: usize = 256 * 1024;
/// Chunk size of streamed reads.
const READ_CHUNK: usize = 1 << 20;
/// Default page cache of the database, in bytes.
pub const DEFAULT_CACHE_SIZE: usize = 64 << 20;

const OBJECTS: TableDefinition<&str, &[u8]> = TableDefinition::new("objects");
const SYS: TableDefinition<&str, u64> = TableDefinition::new("sys");
const VERSION_KEY: &str = "version";
const DB_FILE: &str = "tierfs.redb";

/// Tuning of a [`LocalStorage`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalOptions {
    /// Page cache of the database in bytes (default [`DEFAULT_CACHE_SIZE`]).
    pub cache_size: usize,
}

impl Default for LocalOptions {
    fn default() -> Self {
        LocalOptions { cache_size: DEFAULT_CACHE_SIZE }
    }
}

/// The persistent local backend.
///
/// ```
/// use tierfs_core::{Key, LocalStorage, PutOptions, Storage};
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let dir = tempfile::tempdir().unwrap();
/// let store = LocalStorage::open("main", dir.path(), Default::default())?;
/// let key = Key::new("docs/readme.txt")?;
/// store.put(&key, "persistent".into(), PutOptions::default()).await?;
/// drop(store);
///
/// let store = LocalStorage::open("main", dir.path(), Default::default())?;
/// assert_eq!(&store.get(&key).await?[..], b"persistent");
/// # Ok::<_, tierfs_core::Error>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct LocalStorage {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    name: String,
    root: PathBuf,
    db: db::Db,
    blobs: BlobDir,
    version: AtomicU64,
    commits: GroupCommit,
    reserve: reserve::Reserve,
    /// Patches of one key run one at a time.
    patch_locks: patch::PatchLocks,
    /// Blobs (and the version) whose patch was written in and synced: the
    /// next commit deletes their redo records.
    applied_redo: parking_lot::Mutex<Vec<(u64, u64)>>,
}

/// A blob opened for reading: its id and file.
type OpenBlob = (u64, std::fs::File);

/// A value's bytes, owned, after lookup.
enum Located {
    Inline(Bytes),
    Blob(u64),
}

/// A put whose large value, if any, is already in a fsynced blob file.
struct StagedPut {
    key: Key,
    if_not_exists: bool,
    size: u64,
    metadata: Metadata,
    body: StagedBody,
}

enum StagedBody {
    Inline(Bytes),
    Blob(u64),
}

enum StagedOp {
    Put(StagedPut),
    Delete(Key),
    /// A change of the record's metadata alone; the body stays.
    SetMetadata(Key, MetadataChanges, Condition),
    /// A patch of the value (see `patch.rs`).
    Patch(patch::StagedPatch),
}

/// Why a read failed: the database (which a retry on a reopened handle
/// may cure), or anything else.
enum ReadFail {
    Db(redb::Error),
    Other(Error),
}

impl<E: Into<redb::Error>> From<E> for ReadFail {
    fn from(e: E) -> Self {
        ReadFail::Db(e.into())
    }
}

impl From<Error> for ReadFail {
    fn from(e: Error) -> Self {
        ReadFail::Other(e)
    }
}

fn db_error(err: impl Into<redb::Error>) -> Error {
    let err: redb::Error = err.into();
    // redb's errors do not give their cause as a source: the I/O error
    // (a full device) is carried on, so that callers can tell ENOSPC.
    if let redb::Error::Io(io) = &err {
        let cause = std::io::Error::new(io.kind(), io.to_string());
        return Error::new(ErrorKind::Unavailable, format!("the database failed: {err}")).with_source(cause);
    }
    Error::new(ErrorKind::Unavailable, format!("the database failed: {err}")).with_source(err)
}

impl LocalStorage {
    /// Opens (or creates) the store in directory `root`.
    pub fn open(name: impl Into<String>, root: &Path, options: LocalOptions) -> Result<Self> {
        let name = name.into();
        let context = |e: Error| e.with_backend(name.clone()).with_operation("open");
        crate::private_files::create_dir_private(root).map_err(|e| {
            context(Error::io(format!("cannot create the store directory {}", root.display()), e))
        })?;
        // redb creates its file with the umask's mode: create it private first.
        crate::private_files::touch_private(&root.join(DB_FILE)).map_err(|e| {
            context(Error::io(format!("cannot create the database file in {}", root.display()), e))
        })?;
        let db = db::Db::open(&root.join(DB_FILE), options.cache_size).map_err(
            |e| match e {
                DatabaseError::DatabaseAlreadyOpen => context(Error::new(
                    ErrorKind::Unavailable,
                    format!(
                        "the store in {} is already open in another process or handle; stop it or give this one another directory",
                        root.display()
                    ),
                )),
                e => context(db_error(e)),
            },
        )?;
        let (version, referenced) = Self::recover(&*db.get().map_err(context)?).map_err(context)?;
        let blobs = BlobDir::open(root.join("blobs"), &referenced).map_err(|e| {
            context(Error::io(format!("cannot open the blob directory under {}", root.display()), e))
        })?;
        Self::replay_patches(&*db.get().map_err(context)?, &blobs, &referenced).map_err(context)?;
        Ok(LocalStorage {
            inner: Arc::new(Inner {
                name,
                root: root.to_owned(),
                db,
                blobs,
                version: AtomicU64::new(version),
                commits: GroupCommit::default(),
                reserve: reserve::Reserve::open(root),
                patch_locks: patch::PatchLocks::default(),
                applied_redo: parking_lot::Mutex::default(),
            }),
        })
    }

    /// Creates the tables, reads the version counter and the set of blobs in use.
    fn recover(db: &Database) -> Result<(u64, HashSet<u64>)> {
        let txn = db.begin_write().map_err(db_error)?;
        let version = {
            let sys = txn.open_table(SYS).map_err(db_error)?;
            let version = sys.get(VERSION_KEY).map_err(db_error)?.map(|v| v.value()).unwrap_or(0);
            version
        };
        let mut referenced = HashSet::new();
        {
            let objects = txn.open_table(OBJECTS).map_err(db_error)?;
            for row in objects.iter().map_err(db_error)? {
                let (_, value) = row.map_err(db_error)?;
                if let Some(id) = record::decode(value.value())?.blob_id() {
                    referenced.insert(id);
                }
            }
        }
        txn.commit().map_err(db_error)?;
        Ok((version, referenced))
    }

    /// Writes the patches committed before a crash into their blobs.
    fn replay_patches(db: &Database, blobs: &BlobDir, referenced: &HashSet<u64>) -> Result<()> {
        let txn = db.begin_write().map_err(db_error)?;
        let replayed = patch::replay(&txn, blobs, |id| referenced.contains(&id))?;
        txn.commit().map_err(db_error)?;
        if replayed > 0 {
            tracing::info!(replayed, "patches committed before the last stop were written into their blobs");
        }
        Ok(())
    }

    /// The directory holding the store.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// Refuses a store whose directory, database or blob directory other
    /// users may read or change (see [`check_private`](crate::private_files::check_private)).
    pub fn check_private(&self) -> Result<()> {
        use crate::private_files::check_private;
        let root = &self.inner.root;
        check_private(root, "the store directory", false)?;
        check_private(&root.join(DB_FILE), "the store's database", false)?;
        check_private(&root.join("blobs"), "the store's blob directory", false)
    }

    fn ctx(&self, err: Error, key: &str, op: &'static str) -> Error {
        err.or_key(key).with_backend(self.inner.name.as_str()).with_operation(op)
    }

    /// Runs blocking work off the async executor.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&LocalStorage) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let this = self.clone();
        crate::blocking::run("a storage task", move || f(&this))
            .await
            .map_err(|e| e.with_backend(self.inner.name.as_str()))?
    }

    /// Looks `key` up, mapping its record with `f`.
    /// A read transaction; a handle poisoned by an earlier I/O error is
    /// reopened first. The transaction keeps its handle in use, so a
    /// reopen waits for it rather than closing the file under it.
    fn read_txn(&self) -> Result<db::Reading> {
        let db = self.inner.db.get()?;
        match db.begin_read() {
            Ok(txn) => Ok(db::Reading::new(txn, db)),
            Err(e) => {
                drop(db);
                if self.inner.db.recover() {
                    let db = self.inner.db.get()?;
                    let txn = db.begin_read().map_err(db_error)?;
                    return Ok(db::Reading::new(txn, db));
                }
                Err(db_error(e))
            }
        }
    }

    /// After a failed write: gives the reserve's room back when the device
    /// is full (so that deletes go on), and reopens the database if the
    /// failure poisoned it. Returns whether room was freed.
    pub(super) fn recover_after_failure(&self, error: &Error) -> bool {
        let freed = error.is_out_of_space() && self.inner.reserve.release();
        self.inner.db.recover();
        freed
    }

    /// After a write that went through: writes the reserve again if it was
    /// given back and the device has room.
    pub(super) fn after_success(&self) {
        if !self.inner.reserve.is_present() {
            self.inner.reserve.restore();
        }
    }

    /// Runs `read` in a read transaction. A read that meets a handle
    /// poisoned meanwhile by a failed write (a full device) is run again on
    /// the reopened handle, so a full disk never fails a read.
    fn reading<T>(
        &self,
        read: impl Fn(&redb::ReadTransaction) -> std::result::Result<T, ReadFail>,
    ) -> Result<T> {
        let mut retried = false;
        loop {
            let result = {
                let txn = self.read_txn()?;
                read(&txn)
            };
            match result {
                Ok(value) => return Ok(value),
                Err(ReadFail::Other(e)) => return Err(e),
                Err(ReadFail::Db(e)) => {
                    let poisoned = matches!(e, redb::Error::PreviousIo | redb::Error::DatabaseClosed);
                    if !poisoned || retried {
                        return Err(db_error(e));
                    }
                    retried = true;
                    self.inner.db.recover();
                }
            }
        }
    }

    fn with_record<T>(&self, key: &str, f: impl Fn(Record<'_>) -> T) -> Result<Option<T>> {
        self.reading(|txn| {
            let table = txn.open_table(OBJECTS)?;
            let Some(value) = table.get(key)? else { return Ok(None) };
            Ok(Some(f(record::decode(value.value())?)))
        })
    }

    fn meta_of(key: &Key, record: &Record<'_>) -> ObjectMeta {
        ObjectMeta {
            key: key.clone(),
            size: record.size,
            modified: record.modified,
            version: record.version.to_string(),
            metadata: record.metadata.clone(),
        }
    }

    /// What `describe` makes of the record of `key`, and the value's
    /// location; or `NotFound`.
    fn locate<T>(
        &self,
        key: &Key,
        op: &'static str,
        describe: impl Fn(&Record<'_>) -> T,
    ) -> Result<(T, Located)> {
        let found = self.with_record(key, |r| {
            let located = match r.body {
                Body::Inline(bytes) => Located::Inline(Bytes::copy_from_slice(bytes)),
                Body::Blob(id) => Located::Blob(id),
            };
            (describe(&r), located)
        });
        match found {
            Ok(Some(found)) => Ok(found),
            Ok(None) => Err(self.ctx(Error::not_found(key.as_str()), key, op)),
            Err(e) => Err(self.ctx(e, key, op)),
        }
    }

    /// The value of `key` (inline bytes, or its blob opened), with what
    /// `describe` makes of its record; looks again if a concurrent
    /// overwrite removed the blob between lookup and open.
    fn open_value<T>(
        &self,
        key: &Key,
        op: &'static str,
        describe: impl Fn(&Record<'_>) -> T,
    ) -> Result<(T, Result<Bytes, OpenBlob>)> {
        for _ in 0..8 {
            let (described, located) = self.locate(key, op, &describe)?;
            match located {
                Located::Inline(bytes) => return Ok((described, Ok(bytes))),
                Located::Blob(id) => match std::fs::File::open(self.inner.blobs.path(id)) {
                    Ok(file) => return Ok((described, Err((id, file)))),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => {
                        return Err(self.ctx(Error::io("cannot open the value's blob file", e), key, op))
                    }
                },
            }
        }
        Err(self.ctx(
            Error::new(ErrorKind::Unavailable, "the value kept changing while being opened; retry")
                .retryable(true),
            key,
            op,
        ))
    }

    /// Maps the blob of a `get` (off the executor); reads it when it is
    /// changed in place.
    async fn map_blob(&self, key: &Key, (id, file): OpenBlob, size: u64) -> Result<Bytes> {
        let key = key.clone();
        self.blocking(move |s| {
            let read = match s.inner.blobs.mappings.enter(id) {
                Some(guard) => blobs::map(&file, size, guard),
                None => blobs::read_all(&file, size),
            };
            read.map_err(|e| s.ctx(Error::io("cannot read the value's blob file", e), &key, "get"))
        })
        .await
    }

    /// Writes a large value to a new, fsynced blob; small ones stay in memory.
    fn stage(&self, key: Key, value: Bytes, metadata: Metadata, if_not_exists: bool) -> Result<StagedPut> {
        let size = value.len() as u64;
        if value.len() <= INLINE_LIMIT {
            return Ok(StagedPut { key, if_not_exists, size, metadata, body: StagedBody::Inline(value) });
        }
        let id = self.inner.blobs.allocate();
        let written = (|| {
            let file = self.inner.blobs.create(id)?;
            blobs::write_at(&file, &value, 0)?;
            file.sync_all()?;
            self.inner.blobs.sync_dir()
        })();
        if let Err(e) = written {
            self.inner.blobs.remove(id);
            return Err(self.ctx(Error::io("cannot write the value's blob file", e), &key, "put"));
        }
        Ok(StagedPut { key, if_not_exists, size, metadata, body: StagedBody::Blob(id) })
    }

    /// Commits `ops` durably and all together (in a transaction possibly
    /// shared with concurrent writers: [`commit`]). On success, blobs the
    /// ops replaced are removed; on failure, blobs they staged are.
    fn commit(&self, ops: Vec<StagedOp>, op: &'static str) -> Result<Vec<ObjectMeta>> {
        let staged_blobs: Vec<u64> = ops
            .iter()
            .filter_map(|o| match o {
                StagedOp::Put(StagedPut { body: StagedBody::Blob(id), .. }) => Some(*id),
                StagedOp::Patch(patch::StagedPatch { body: patch::PatchBody::NewBlob(id), .. }) => Some(*id),
                _ => None,
            })
            .collect();
        let first_key = ops.first().map(|o| match o {
            StagedOp::Put(p) => p.key.as_str().to_owned(),
            StagedOp::Delete(k) | StagedOp::SetMetadata(k, ..) => k.as_str().to_owned(),
            StagedOp::Patch(p) => p.key.as_str().to_owned(),
        });
        match self.inner.commits.submit(self, ops) {
            Ok((metas, replaced)) => {
                for id in replaced {
                    self.inner.blobs.remove(id);
                }
                Ok(metas)
            }
            Err(e) => {
                for id in staged_blobs {
                    self.inner.blobs.remove(id);
                }
                Err(self.ctx(e, first_key.as_deref().unwrap_or(""), op))
            }
        }
    }

    fn rename_blocking(&self, from: &Key, to: &Key) -> Result<()> {
        match self.rename_in_txn(from, to) {
            // A rename takes no more room once done: with the reserve's, it goes on.
            Err(e) if e.kind() == ErrorKind::Unavailable => match self.recover_after_failure(&e) {
                true => self.rename_in_txn(from, to),
                false => Err(e),
            },
            Ok(()) => {
                self.after_success();
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    fn rename_in_txn(&self, from: &Key, to: &Key) -> Result<()> {
        // The handle stays in use (a reopen waits) until the transaction ends.
        let db = self.inner.db.get()?;
        let txn = db.begin_write().map_err(db_error)?;
        let replaced = {
            let mut objects = txn.open_table(OBJECTS).map_err(db_error)?;
            let value = objects
                .remove(from.as_str())
                .map_err(db_error)?
                .map(|v| v.value().to_vec())
                .ok_or_else(|| Error::not_found(from.as_str()))?;
            let old = objects.insert(to.as_str(), value.as_slice()).map_err(db_error)?;
            match old {
                Some(v) => record::decode(v.value())?.blob_id(),
                None => None,
            }
        };
        txn.commit().map_err(db_error)?;
        if let Some(id) = replaced {
            self.inner.blobs.remove(id);
        }
        Ok(())
    }
}

#[async_trait]
impl Storage for LocalStorage {
    fn name(&self) -> &str {
        &self.inner.name
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            atomic_batch: true,
            range_read: true,
            rename: true,
            persistent: true,
            shared: false,
            conditional_put: true,
            streaming: true,
            partial_write: true,
        }
    }

    async fn get(&self, key: &Key) -> Result<Bytes> {
        // Small values are served straight from the page cache; a blob is
        // mapped off the executor.
        match self.open_value(key, "get", |r| r.size)? {
            (_, Ok(bytes)) => Ok(bytes),
            (size, Err(file)) => self.map_blob(key, file, size).await,
        }
    }

    async fn get_with_meta(&self, key: &Key) -> Result<(ObjectMeta, Bytes)> {
        match self.open_value(key, "get", |r| Self::meta_of(key, r))? {
            (meta, Ok(bytes)) => Ok((meta, bytes)),
            (meta, Err(file)) => {
                let value = self.map_blob(key, file, meta.size).await?;
                Ok((meta, value))
            }
        }
    }

    /// A value kept as a blob, pinned like a mapping (a patch then copies
    /// the blob instead of changing it in place); `None` for a value kept
    /// in its record, and for a blob being changed in place.
    async fn open_file(&self, key: &Key) -> Result<Option<crate::storage::LocalFile>> {
        let (meta, (id, file)) = match self.open_value(key, "open_file", |r| Self::meta_of(key, r))? {
            (_, Ok(_inline)) => return Ok(None),
            (meta, Err(blob)) => (meta, blob),
        };
        let Some(pin) = self.inner.blobs.mappings.enter(id) else {
            return Ok(None);
        };
        // A blob longer than its value (left by a patch cut short) is not
        // handed out: its reader would see the extra bytes.
        match file.metadata() {
            Ok(m) if m.len() == meta.size => {}
            _ => return Ok(None),
        }
        Ok(Some(crate::storage::LocalFile::new(file, meta, Box::new(pin))))
    }

    async fn get_range(&self, key: &Key, range: Range<u64>) -> Result<Bytes> {
        let (size, value) = self.open_value(key, "get_range", |r| r.size)?;
        let range = clamp_range(&range, size).map_err(|e| self.ctx(e, key, "get_range"))?;
        match value {
            Ok(bytes) => Ok(bytes.slice(range)),
            Err((id, file)) => {
                let k = key.clone();
                self.blocking(move |s| {
                    let (pos, len) = (range.start as u64, range.len());
                    let guard =
                        (len >= blobs::MAP_RANGE_MIN).then(|| s.inner.blobs.mappings.enter(id)).flatten();
                    let read = match guard {
                        Some(guard) => blobs::map_range(&file, pos, len, guard),
                        None => blobs::read_at(&file, pos, len).map(Bytes::from),
                    };
                    read.map_err(|e| {
                        s.ctx(Error::io("cannot read the value's blob file", e), &k, "get_range")
                    })
                })
                .await
            }
        }
    }

    async fn put(&self, key: &Key, value: Bytes, options: PutOptions) -> Result<ObjectMeta> {
        let key = key.clone();
        self.blocking(move |s| {
            let staged = s.stage(key, value, options.metadata, options.if_not_exists)?;
            let mut metas = s.commit(vec![StagedOp::Put(staged)], "put")?;
            Ok(metas.pop().expect("one put, one meta"))
        })
        .await
    }

    async fn delete(&self, key: &Key) -> Result<()> {
        let key = key.clone();
        self.blocking(move |s| s.commit(vec![StagedOp::Delete(key)], "delete").map(drop)).await
    }

    async fn set_metadata(
        &self,
        key: &Key,
        changes: &MetadataChanges,
        condition: &Condition,
    ) -> Result<ObjectMeta> {
        let op = StagedOp::SetMetadata(key.clone(), changes.clone(), condition.clone());
        let mut metas = self.blocking(move |s| s.commit(vec![op], "set_metadata")).await?;
        Ok(metas.pop().expect("one update, one meta"))
    }

    async fn patch(&self, key: &Key, patch: &Patch, condition: &Condition) -> Result<ObjectMeta> {
        let (key, patch, condition) = (key.clone(), patch.clone(), condition.clone());
        self.blocking(move |s| {
            s.patch_blocking(&key, &patch, &condition).map_err(|e| s.ctx(e, &key, "patch"))
        })
        .await
    }

    async fn stat(&self, key: &Key) -> Result<ObjectMeta> {
        match self.with_record(key, |r| Self::meta_of(key, &r)) {
            Ok(Some(meta)) => Ok(meta),
            Ok(None) => Err(self.ctx(Error::not_found(key.as_str()), key, "stat")),
            Err(e) => Err(self.ctx(e, key, "stat")),
        }
    }

    async fn list(&self, options: &ListOptions) -> Result<ListPage> {
        let ctx = |e: Error| self.ctx(e, &options.prefix, "list");
        options.validate().map_err(ctx)?;
        self.reading(|txn| {
            let table = txn.open_table(OBJECTS)?;
            let start = options.start_bound();
            let start = match &start {
                Bound::Included(s) => Bound::Included(s.as_str()),
                Bound::Excluded(s) => Bound::Excluded(s.as_str()),
                Bound::Unbounded => Bound::Unbounded,
            };
            let mut page = ListPageBuilder::new(options);
            for row in table.range::<&str>((start, Bound::Unbounded))? {
                let (key, value) = row?;
                let key = key.value();
                let meta = || {
                    let key = Key::new(key).map_err(|e| e.with_key(key))?;
                    record::decode(value.value()).map(|r| Self::meta_of(&key, &r))
                };
                if !page.push(key, meta)? {
                    break;
                }
            }
            Ok(page.finish())
        })
        .map_err(ctx)
    }

    async fn batch(&self, ops: Vec<BatchOp>) -> Result<()> {
        self.blocking(move |s| {
            let mut staged = Vec::with_capacity(ops.len());
            for op in ops {
                let staged_op = match op {
                    BatchOp::Put { key, value, metadata, if_not_exists } => {
                        s.stage(key, value, metadata, if_not_exists).map(StagedOp::Put)
                    }
                    BatchOp::Delete { key } => Ok(StagedOp::Delete(key)),
                };
                match staged_op {
                    Ok(op) => staged.push(op),
                    Err(e) => {
                        for op in staged {
                            if let StagedOp::Put(StagedPut { body: StagedBody::Blob(id), .. }) = op {
                                s.inner.blobs.remove(id);
                            }
                        }
                        return Err(e.with_operation("batch"));
                    }
                }
            }
            s.commit(staged, "batch").map(drop)
        })
        .await
    }

    async fn read(&self, key: &Key, range: Option<Range<u64>>) -> Result<ByteStream> {
        let (size, value) = self.open_value(key, "read", |r| r.size)?;
        let range = clamp_range(&range.unwrap_or(0..size), size).map_err(|e| self.ctx(e, key, "read"))?;
        let file = match value {
            Ok(bytes) => return Ok(stream::iter([Ok(bytes.slice(range))]).boxed()),
            Err((_, file)) => Arc::new(file),
        };
        let this = self.clone();
        let key = key.clone();
        let chunks = stream::try_unfold(range.start as u64, move |pos| {
            let (file, this, key) = (file.clone(), this.clone(), key.clone());
            let end = range.end as u64;
            async move {
                if pos >= end {
                    return Ok(None);
                }
                let len = (end - pos).min(READ_CHUNK as u64) as usize;
                let chunk = this
                    .blocking(move |s| {
                        let buf = blobs::read_at(&file, pos, len).map_err(|e| {
                            s.ctx(Error::io("cannot read the value's blob file", e), &key, "read")
                        })?;
                        Ok(Bytes::from(buf))
                    })
                    .await?;
                Ok(Some((chunk, pos + len as u64)))
            }
        });
        Ok(chunks.boxed())
    }

    async fn write(&self, key: &Key, options: PutOptions) -> Result<Box<dyn ValueWriter>> {
        Ok(Box::new(writer::LocalWriter::new(self.clone(), key.clone(), options)))
    }

    async fn rename(&self, from: &Key, to: &Key) -> Result<()> {
        let (from, to) = (from.clone(), to.clone());
        self.blocking(move |s| s.rename_blocking(&from, &to).map_err(|e| s.ctx(e, &from, "rename"))).await
    }
}
