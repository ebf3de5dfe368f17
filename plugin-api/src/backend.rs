//! [`PluginBackend`]: the safe trait a Rust plugin implements.

use std::sync::Arc;

use crate::error::PluginError;
use crate::types::{
    BatchOp, Capabilities, CreateContext, ListPage, ListRequest, Metadata, MetadataChanges, ObjectStat,
    Settings,
};

/// `Result` with [`PluginError`].
pub type PluginResult<T> = Result<T, PluginError>;

/// A backend type written in Rust; [`export_plugin!`](crate::export_plugin)
/// turns it into a loadable plugin.
///
/// The contract is TierFS's `Storage` contract:
///
/// - Keys arrive validated by the host.
/// - `get`, `get_range` and `stat` of a missing key fail with
///   [`PluginError::not_found`]; `delete` of a missing key succeeds.
/// - `get_range` clamps `start..end` to the value (`start <= end` holds).
/// - `put` replaces value and metadata whole; readers see the old or the
///   new value, never a mix.
/// - `batch` is all-or-nothing when [`Capabilities::atomic_batch`] is set;
///   otherwise leave the default, which refuses batches as unsupported.
/// - A streamed write is invisible until [`PluginWriter::finish`] returns,
///   and an aborted one leaves the previous value.
///
/// Methods are called concurrently from several threads, hence `Sync`.
pub trait PluginBackend: Send + Sync + Sized + 'static {
    /// Makes an instance from its settings. Refuse unknown fields
    /// ([`Settings::expect_only`]) and bad values with
    /// [`PluginError::config`] naming the field.
    fn create(settings: &Settings, context: &CreateContext) -> PluginResult<Self>;

    /// What this instance can do.
    fn capabilities(&self) -> Capabilities;

    /// The whole value of `key`. The default reads the whole range.
    fn get(&self, key: &str) -> PluginResult<Vec<u8>> {
        self.get_range(key, 0, u64::MAX).map(|(value, _)| value)
    }

    /// Bytes `start..end` of the value of `key`, clamped to its size, and
    /// the stat of the value they were read from (both from one version).
    fn get_range(&self, key: &str, start: u64, end: u64) -> PluginResult<(Vec<u8>, ObjectStat)>;

    /// Stores `value` under `key` with `metadata`, durably. With
    /// `if_not_exists`, fail with [`PluginError::already_exists`] if the key
    /// exists, or with [`PluginError::unsupported`] if that cannot be
    /// checked atomically.
    fn put(
        &self,
        key: &str,
        value: &[u8],
        metadata: Metadata,
        if_not_exists: bool,
    ) -> PluginResult<ObjectStat>;

    /// Removes `key`; a missing key succeeds.
    fn delete(&self, key: &str) -> PluginResult<()>;

    /// Size, modification time, version and metadata of `key`.
    fn stat(&self, key: &str) -> PluginResult<ObjectStat>;

    /// One page of a listing; build it with
    /// [`ListPageBuilder`](crate::ListPageBuilder) to get the semantics right.
    fn list(&self, request: &ListRequest) -> PluginResult<ListPage>;

    /// Applies every operation or none. The default refuses batches.
    fn batch(&self, ops: Vec<BatchOp<'_>>) -> PluginResult<()> {
        let _ = ops;
        Err(PluginError::unsupported("this backend does not apply batches atomically"))
    }

    /// Starts a streamed write of `key`. The default buffers the value in
    /// memory and calls [`PluginBackend::put`] in `finish`; override it to
    /// stream (and then set [`Capabilities::streaming`]).
    fn begin_write(
        this: &Arc<Self>,
        key: &str,
        metadata: Metadata,
        if_not_exists: bool,
    ) -> PluginResult<Box<dyn PluginWriter>> {
        Ok(Box::new(BufferedWriter {
            backend: Arc::clone(this),
            key: key.to_owned(),
            metadata,
            if_not_exists,
            buf: Vec::new(),
        }))
    }

    /// Moves value and metadata of `from` to `to` atomically. The default
    /// refuses.
    fn rename(&self, from: &str, to: &str) -> PluginResult<()> {
        let _ = to;
        Err(PluginError::unsupported("this backend cannot rename atomically").with_key(from))
    }

    /// Applies `changes` to the metadata of `key` without rewriting its
    /// value, atomically and durably; with `if_version`, only while the
    /// value's version is that one, else fail with
    /// [`PluginError::conflict`]. A missing key is
    /// [`PluginError::not_found`]. The default refuses, and the host then
    /// rewrites the value with the new metadata itself (a full read and
    /// write of it): override it when the backend keeps metadata apart.
    fn set_metadata(
        &self,
        key: &str,
        changes: &MetadataChanges,
        if_version: Option<&str>,
    ) -> PluginResult<ObjectStat> {
        let _ = (changes, if_version);
        Err(PluginError::unsupported("this backend does not update metadata alone").with_key(key))
    }

    /// Makes every acknowledged write durable. The default does nothing,
    /// right for backends whose writes are durable when acknowledged.
    fn sync(&self) -> PluginResult<()> {
        Ok(())
    }
}

/// A streamed write in progress. Used by one thread at a time.
pub trait PluginWriter: Send {
    /// Appends `chunk` to the value.
    fn write(&mut self, chunk: &[u8]) -> PluginResult<()>;

    /// Publishes the value atomically and durably.
    fn finish(self: Box<Self>) -> PluginResult<ObjectStat>;

    /// Discards the value; the previous one stays.
    fn abort(self: Box<Self>) -> PluginResult<()>;
}

/// The default writer of [`PluginBackend::begin_write`]: collects chunks,
/// then puts the whole value.
#[derive(Debug)]
pub struct BufferedWriter<B> {
    backend: Arc<B>,
    key: String,
    metadata: Metadata,
    if_not_exists: bool,
    buf: Vec<u8>,
}

impl<B: PluginBackend> PluginWriter for BufferedWriter<B> {
    fn write(&mut self, chunk: &[u8]) -> PluginResult<()> {
        self.buf.extend_from_slice(chunk);
        Ok(())
    }

    fn finish(self: Box<Self>) -> PluginResult<ObjectStat> {
        let this = *self;
        this.backend.put(&this.key, &this.buf, this.metadata, this.if_not_exists)
    }

    fn abort(self: Box<Self>) -> PluginResult<()> {
        Ok(())
    }
}
