//! The `Storage` trait every backend implements, and the types it speaks.
//!
//! Contract for implementers (the behaviour suite in `tests/` checks each
//! point against every backend):
//! - Keys arrive validated ([`Key`]); prefixes are checked with
//!   [`validate_prefix`](crate::key::validate_prefix).
//! - `get`, `get_range`, `stat` and `read` of a missing key fail with
//!   `NotFound`; `delete` of a missing key succeeds.
//! - A range past the end is clamped: `get_range` returns the bytes that
//!   exist, possibly none.
//! - `put` replaces the value and metadata whole; readers see the old or the
//!   new value, never a mix.
//! - `batch` is all-or-nothing when [`Capabilities::atomic_batch`] is set:
//!   if any operation fails (a `put_if_absent` on an existing key, an I/O
//!   error), none is applied. A backend without it refuses batches with
//!   `Unsupported` rather than applying part of one.
//! - `write` returns a [`ValueWriter`]; nothing is visible until
//!   [`ValueWriter::finish`] returns, and a writer dropped or aborted before
//!   that leaves the previous value untouched.
//! - Errors carry the backend's name and the key.

mod batch;
mod capabilities;
mod copy;
mod list;
mod local_file;
mod merge;
mod meta;
mod operation;
mod patch;
mod stream;

use std::fmt::Debug;
use std::ops::Range;

use async_trait::async_trait;
use bytes::Bytes;

pub use batch::BatchOp;
pub use capabilities::Capabilities;
pub(crate) use copy::stream_value;
pub use copy::{copy_value, rewrite_metadata};
pub use list::{ListEntry, ListOptions, ListPage, ListPageBuilder, StorageExt, DEFAULT_LIST_LIMIT};
pub use local_file::LocalFile;
pub use merge::{merge_list, KeyFilter, MergeSource};
pub use meta::{Condition, Metadata, MetadataChanges, ObjectMeta, PutOptions};
pub use operation::Operation;
pub use patch::{rewrite_patched, Patch};
pub use stream::{collect_stream, ByteStream, ValueWriter};

use crate::error::{Error, ErrorKind, Result};
use crate::key::Key;

/// A key-value store with streaming values: the interface of every backend
/// and of every layer stacked on one.
///
/// The trait is object safe; the manager holds backends as
/// `Arc<dyn Storage>`.
///
/// ```
/// use bytes::Bytes;
/// use tierfs_core::{Key, MemoryStorage, PutOptions, Storage};
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let store = MemoryStorage::new("scratch");
/// let key = Key::new("notes/today.txt")?;
/// store.put(&key, Bytes::from_static(b"hello"), PutOptions::default()).await?;
/// assert_eq!(store.get(&key).await?, Bytes::from_static(b"hello"));
/// assert_eq!(store.get_range(&key, 1..3).await?, Bytes::from_static(b"el"));
/// assert_eq!(store.stat(&key).await?.size, 5);
/// # Ok::<_, tierfs_core::Error>(())
/// # }).unwrap();
/// ```
#[async_trait]
pub trait Storage: Send + Sync + Debug {
    /// The name this backend instance was configured under; errors carry it.
    fn name(&self) -> &str;

    /// What this backend can do; callers consult it instead of guessing.
    fn capabilities(&self) -> Capabilities;

    /// The whole value of `key`. Large values are better read with [`Storage::read`].
    async fn get(&self, key: &Key) -> Result<Bytes>;

    /// Bytes `range.start..range.end` of the value, clamped to its size.
    async fn get_range(&self, key: &Key, range: Range<u64>) -> Result<Bytes>;

    /// Stores `value` under `key`, replacing any previous value and metadata.
    async fn put(&self, key: &Key, value: Bytes, options: PutOptions) -> Result<ObjectMeta>;

    /// Removes `key`; removing a missing key succeeds.
    async fn delete(&self, key: &Key) -> Result<()>;

    /// Size, modification time, version and metadata of `key`.
    async fn stat(&self, key: &Key) -> Result<ObjectMeta>;

    /// The whole value of `key` with its metadata. Backends that answer
    /// both from one lookup override this, and then the two always belong
    /// together; the default is a `get` and then a `stat`, which a write in
    /// between can pair with a later version's metadata (compare
    /// [`ObjectMeta::size`] with the value's length when that matters).
    async fn get_with_meta(&self, key: &Key) -> Result<(ObjectMeta, Bytes)> {
        let value = self.get(key).await?;
        let meta = self.stat(key).await?;
        Ok((meta, value))
    }

    /// One page of keys under `options.prefix`, in byte order. Follow
    /// [`ListPage::next`] for the next page, or use [`StorageExt::list_stream`].
    async fn list(&self, options: &ListOptions) -> Result<ListPage>;

    /// Applies every operation, or none (see [`Capabilities::atomic_batch`]).
    async fn batch(&self, ops: Vec<BatchOp>) -> Result<()>;

    /// Streams the value of `key` (or the part in `range`) in chunks.
    async fn read(&self, key: &Key, range: Option<Range<u64>>) -> Result<ByteStream>;

    /// Starts a streamed write of `key`; the value appears when the writer
    /// finishes.
    async fn write(&self, key: &Key, options: PutOptions) -> Result<Box<dyn ValueWriter>>;

    /// Moves the value and metadata of `from` to `to` atomically, replacing
    /// `to`. Backends without [`Capabilities::rename`] refuse.
    async fn rename(&self, from: &Key, _to: &Key) -> Result<()> {
        Err(Error::new(ErrorKind::Unsupported, "this backend cannot rename atomically")
            .with_key(from.as_str())
            .with_backend(self.name())
            .with_operation("rename"))
    }

    /// Changes the metadata of `key` without rewriting its value, if
    /// `condition` holds; returns the new state. A missing key is
    /// `NotFound`, a failed condition `Conflict`; either changes nothing.
    ///
    /// Backends update the map alone where they can (memory and local in
    /// their index, s3 by a server-side copy onto itself). The default
    /// rewrites the value with the new map ([`rewrite_metadata`]), costing
    /// the value's size. The version may or may not change (it names the
    /// bytes on some backends); `modified` may change.
    ///
    /// ```
    /// use tierfs_core::{Condition, Key, MemoryStorage, MetadataChanges, PutOptions, Storage};
    ///
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let store = MemoryStorage::new("m");
    /// let key = Key::new("report.csv")?;
    /// let put = store.put(&key, "a,b\n".into(), PutOptions::default()).await?;
    /// let changes = MetadataChanges::new().set("posix.mode", "100600");
    /// let meta = store.set_metadata(&key, &changes, &Condition::VersionIs(put.version.clone())).await?;
    /// assert_eq!(meta.metadata["posix.mode"], "100600");
    /// assert_eq!(store.get(&key).await?, "a,b\n");
    /// // The value changed since `put`: a condition on that version now fails.
    /// let stale = store.set_metadata(&key, &changes, &Condition::VersionIs(put.version)).await;
    /// assert_eq!(stale.unwrap_err().kind(), tierfs_core::ErrorKind::Conflict);
    /// # Ok::<_, tierfs_core::Error>(())
    /// # }).unwrap();
    /// ```
    async fn set_metadata(
        &self,
        key: &Key,
        changes: &MetadataChanges,
        condition: &Condition,
    ) -> Result<ObjectMeta> {
        rewrite_metadata(self, key, changes, condition).await
    }

    /// Applies `patch` to the value of `key`, if `condition` holds: sets its
    /// length, writes bytes at offsets, changes its metadata, all together;
    /// returns the new state. A missing key is `NotFound`, a failed
    /// condition `Conflict`; either changes nothing.
    ///
    /// Where [`Capabilities::partial_write`] is set the change costs about
    /// what the patch carries and is atomic, crash included (local: the
    /// blob file is changed in place behind a redo record; memory). The
    /// default rewrites the value with the patch laid over it
    /// ([`rewrite_patched`]), streamed, costing the value's size. Readers
    /// running while a value is patched in place may see part of the
    /// patch; readers starting after `patch` returned see all of it.
    ///
    /// ```
    /// use tierfs_core::{Condition, Key, MemoryStorage, Patch, PutOptions, Storage};
    ///
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let store = MemoryStorage::new("m");
    /// let key = Key::new("data.bin")?;
    /// store.put(&key, vec![0u8; 8].into(), PutOptions::default()).await?;
    /// let meta = store.patch(&key, &Patch::new().write(2, "ab").write(8, "tail"), &Condition::Exists).await?;
    /// assert_eq!(meta.size, 12);
    /// assert_eq!(&store.get(&key).await?[..], b"\0\0ab\0\0\0\0tail");
    /// # Ok::<_, tierfs_core::Error>(())
    /// # }).unwrap();
    /// ```
    async fn patch(&self, key: &Key, patch: &Patch, condition: &Condition) -> Result<ObjectMeta> {
        rewrite_patched(self, key, patch, condition).await
    }

    /// The value of `key` as one local file that holds exactly its bytes
    /// and that nobody changes in place while the [`LocalFile`] lives
    /// (see there), when this backend keeps it so; `Ok(None)` otherwise
    /// (the default: a value in a database record, in memory, on another
    /// host, or transformed by a layer). Layers that pass bytes through
    /// unchanged pass the question on. A backend that keeps files answers
    /// `NotFound` for a missing key.
    async fn open_file(&self, _key: &Key) -> Result<Option<LocalFile>> {
        Ok(None)
    }

    /// Makes every acknowledged write durable (a no-op where writes already are).
    async fn sync(&self) -> Result<()> {
        Ok(())
    }

    /// Answers [`Storage::get`] without waiting, when this backend can: an
    /// in-process backend whose every `get` is a lookup in memory (and layers
    /// over one) returns `Some`, with exactly what `get` would return.
    /// `None` means "not without waiting": nothing was done, call `get`.
    ///
    /// Callers that try this first skip a boxed future and a poll for each
    /// call an in-process backend serves (the manager does, for every get).
    ///
    /// ```
    /// use tierfs_core::{Key, MemoryStorage, PutOptions, Storage};
    ///
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let store = MemoryStorage::new("m");
    /// let key = Key::new("k")?;
    /// store.put(&key, "v".into(), PutOptions::default()).await?;
    /// let value = match store.get_now(&key) {
    ///     Some(result) => result?,
    ///     None => store.get(&key).await?,
    /// };
    /// assert_eq!(&value[..], b"v");
    /// # Ok::<_, tierfs_core::Error>(())
    /// # }).unwrap();
    /// ```
    fn get_now(&self, _key: &Key) -> Option<Result<Bytes>> {
        None
    }

    /// Answers [`Storage::put`] without waiting, when this backend can (see
    /// [`Storage::get_now`]); `None` means nothing was stored: call `put`.
    fn put_now(&self, _key: &Key, _value: &Bytes, _options: &PutOptions) -> Option<Result<ObjectMeta>> {
        None
    }

    /// Whether the backend is believed reachable now. Layers that track
    /// health ([`HealthStorage`](crate::layers::HealthStorage)) answer; others
    /// pass the question to what they wrap, and a bare backend says `true`.
    fn is_healthy(&self) -> bool {
        true
    }

    /// Bytes this backend has sent to and received from a remote store
    /// since it was created (request and response bodies), for backends
    /// that talk to one over the network; `None` for the others. Layers
    /// pass the question to what they wrap. The manager exports it as
    /// `tierfs_network_sent_bytes_total` and
    /// `tierfs_network_received_bytes_total`.
    fn traffic(&self) -> Option<crate::metrics::Traffic> {
        None
    }
}

/// Clamps `range` to a value of `size` bytes, as `usize` bounds.
///
/// A range starting past the end yields an empty range; an inverted range is
/// an `InvalidInput` error.
pub fn clamp_range(range: &Range<u64>, size: u64) -> Result<Range<usize>> {
    if range.start > range.end {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("range {}..{} ends before it starts", range.start, range.end),
        ));
    }
    let end = range.end.min(size);
    let start = range.start.min(end);
    Ok(start as usize..end as usize)
}
