//! `TracingStorage`: one `tracing` span per storage operation.
//!
//! The registry wraps every backend it creates in this layer, so every
//! operation on every backend is traced. Spans are at `DEBUG` level, named
//! `storage`, with fields `backend`, `op` and `key` (or `prefix`, or `ops`
//! for a batch); a failure is logged inside the span with its kind. With no
//! subscriber installed a span costs a few nanoseconds.

use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use tracing::{debug_span, Instrument};

use crate::error::Result;
use crate::key::Key;
use crate::storage::{
    BatchOp, ByteStream, Capabilities, Condition, ListOptions, ListPage, LocalFile, MetadataChanges,
    ObjectMeta, Patch, PutOptions, Storage, ValueWriter,
};

/// Wraps a backend so that each operation runs in a `tracing` span.
#[derive(Debug, Clone)]
pub struct TracingStorage {
    inner: Arc<dyn Storage>,
}

impl TracingStorage {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn Storage>) -> Self {
        TracingStorage { inner }
    }
}

fn logged<T>(result: Result<T>) -> Result<T> {
    if let Err(e) = &result {
        tracing::debug!(kind = %e.kind(), error = %e, "storage operation failed");
    }
    result
}

macro_rules! traced {
    ($self:ident, $op:literal, $key:expr, $call:expr) => {{
        let span = debug_span!("storage", backend = $self.inner.name(), op = $op, key = %$key);
        async { logged($call.await) }.instrument(span).await
    }};
}

#[async_trait]
impl Storage for TracingStorage {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    fn is_healthy(&self) -> bool {
        self.inner.is_healthy()
    }

    fn traffic(&self) -> Option<crate::metrics::Traffic> {
        self.inner.traffic()
    }

    async fn get(&self, key: &Key) -> Result<Bytes> {
        traced!(self, "get", key, self.inner.get(key))
    }

    async fn get_with_meta(&self, key: &Key) -> Result<(ObjectMeta, Bytes)> {
        traced!(self, "get", key, self.inner.get_with_meta(key))
    }

    async fn get_range(&self, key: &Key, range: Range<u64>) -> Result<Bytes> {
        traced!(self, "get_range", key, self.inner.get_range(key, range))
    }

    async fn put(&self, key: &Key, value: Bytes, options: PutOptions) -> Result<ObjectMeta> {
        traced!(self, "put", key, self.inner.put(key, value, options))
    }

    async fn delete(&self, key: &Key) -> Result<()> {
        traced!(self, "delete", key, self.inner.delete(key))
    }

    async fn stat(&self, key: &Key) -> Result<ObjectMeta> {
        traced!(self, "stat", key, self.inner.stat(key))
    }

    async fn list(&self, options: &ListOptions) -> Result<ListPage> {
        traced!(self, "list", options.prefix, self.inner.list(options))
    }

    async fn batch(&self, ops: Vec<BatchOp>) -> Result<()> {
        let first = ops.first().map(|o| o.key().to_string()).unwrap_or_default();
        traced!(self, "batch", first, self.inner.batch(ops))
    }

    async fn read(&self, key: &Key, range: Option<Range<u64>>) -> Result<ByteStream> {
        traced!(self, "read", key, self.inner.read(key, range))
    }

    async fn write(&self, key: &Key, options: PutOptions) -> Result<Box<dyn ValueWriter>> {
        traced!(self, "write", key, self.inner.write(key, options))
    }

    async fn rename(&self, from: &Key, to: &Key) -> Result<()> {
        traced!(self, "rename", from, self.inner.rename(from, to))
    }

    async fn set_metadata(
        &self,
        key: &Key,
        changes: &MetadataChanges,
        condition: &Condition,
    ) -> Result<ObjectMeta> {
        traced!(self, "set_metadata", key, self.inner.set_metadata(key, changes, condition))
    }

    async fn patch(&self, key: &Key, patch: &Patch, condition: &Condition) -> Result<ObjectMeta> {
        traced!(self, "patch", key, self.inner.patch(key, patch, condition))
    }

    async fn open_file(&self, key: &Key) -> Result<Option<LocalFile>> {
        traced!(self, "open_file", key, self.inner.open_file(key))
    }

    async fn sync(&self) -> Result<()> {
        traced!(self, "sync", "", self.inner.sync())
    }
}
