//! `ManagedStorage`: the one layer the manager puts around each backend.
//!
//! It does, in one call and one boxed future, what [`TracingStorage`],
//! [`HealthStorage`] and metrics recording would do stacked: every operation
//! runs in a `storage` span (`DEBUG`; fields `backend`, `op`, `key`), is
//! counted and timed into the backend's
//! [`BackendMetrics`] (logical calls: retries show in
//! `tierfs_retries_total`; calls the backend answers without waiting,
//! [`Storage::get_now`], are timed one in [`SAMPLE_EVERY`]), and goes through the backend's [`HealthGuard`]
//! (fail fast while unhealthy, timeout, bounded retries). Stacking the three
//! as separate [`Storage`] wrappers cost a boxed future and a virtual call
//! each, a quarter of a 4 KiB memory `get`.
//!
//! [`TracingStorage`]: crate::layers::TracingStorage
//! [`HealthStorage`]: crate::layers::HealthStorage
//! [`SAMPLE_EVERY`]: crate::metrics::SAMPLE_EVERY
//!
//! ```
//! use std::sync::Arc;
//! use tierfs_core::layers::{HealthOptions, ManagedStorage};
//! use tierfs_core::metrics::StorageMetrics;
//! use tierfs_core::{Key, MemoryStorage, PutOptions, Storage};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let metrics = StorageMetrics::new();
//! let store =
//!     ManagedStorage::new(Arc::new(MemoryStorage::new("m")), HealthOptions::default(), &metrics);
//! let key = Key::new("k")?;
//! store.put(&key, "v".into(), PutOptions::default()).await?;
//! assert_eq!(&store.get(&key).await?[..], b"v");
//! assert_eq!(metrics.snapshot().backends["m"]["get"].count, 1);
//! # Ok::<_, tierfs_core::Error>(())
//! # }).unwrap();
//! ```

use std::future::Future;
use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use quanta::Instant;
use tracing::{debug_span, Instrument};

use super::health::{HealthGuard, HealthOptions};
use crate::error::{ErrorKind, Result};
use crate::key::Key;
use crate::metrics::{BackendMetrics, StorageMetrics};
use crate::storage::{
    BatchOp, ByteStream, Capabilities, Condition, ListOptions, ListPage, LocalFile, MetadataChanges,
    ObjectMeta, Operation as Op, Patch, PutOptions, Storage, ValueWriter,
};

/// A backend traced, measured and guarded.
#[derive(Debug)]
pub struct ManagedStorage {
    inner: Arc<dyn Storage>,
    guard: HealthGuard,
    metrics: Arc<BackendMetrics>,
}

impl ManagedStorage {
    /// Wraps `inner` (a bare backend), recording into `metrics` under its name.
    pub fn new(inner: Arc<dyn Storage>, health: HealthOptions, metrics: &Arc<StorageMetrics>) -> Self {
        let guard = HealthGuard::new(inner.name(), health, Some(metrics.clone()));
        let metrics = metrics.backend(inner.name());
        ManagedStorage { inner, guard, metrics }
    }

    /// The bare backend.
    pub fn inner(&self) -> &Arc<dyn Storage> {
        &self.inner
    }

    /// Probes the backend if it is unhealthy and its backoff has passed;
    /// returns whether it is healthy afterwards.
    pub async fn probe(&self) -> bool {
        self.guard.probe(&*self.inner).await
    }

    /// One call `f`: span, health guard, metrics. `bytes_out` measures a result.
    async fn run<T, F, Fut>(
        &self,
        op: Op,
        key: &str,
        bytes_in: u64,
        f: F,
        bytes_out: impl Fn(&T) -> u64,
    ) -> Result<T>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let start = Instant::now();
        let label = op.as_str();
        let span = debug_span!("storage", backend = self.inner.name(), op = label, key = %key);
        let call = async {
            let result = self.guard.call(label, key, f).await;
            if let Err(e) = &result {
                tracing::debug!(kind = %e.kind(), error = %e, "storage operation failed");
            }
            result
        };
        // With no subscriber interested, skip entering and leaving the span
        // on every poll.
        let result = if span.is_disabled() { call.await } else { call.instrument(span).await };
        let out = result.as_ref().map(&bytes_out).unwrap_or(0);
        self.metrics.record(op, start.elapsed(), result.is_ok(), bytes_in, out);
        result
    }

    /// `f` (a `*_now` call of the bare backend) with the same metrics as
    /// [`ManagedStorage::run`], when nothing else of `run` is needed: the
    /// backend is healthy, no subscriber wants the span, and the answer is
    /// not a failure the guard would retry or mark. `None` sends the caller
    /// to the full path (which calls the backend again: only idempotent
    /// calls go through here, and only failures are redone).
    #[inline]
    fn run_now<T>(
        &self,
        op: Op,
        key: &str,
        bytes_in: u64,
        f: impl FnOnce() -> Option<Result<T>>,
        bytes_out: impl Fn(&T) -> u64,
    ) -> Option<Result<T>> {
        if !self.guard.is_healthy()
            || !debug_span!("storage", backend = self.inner.name(), op = op.as_str(), key = %key)
                .is_disabled()
        {
            return None;
        }
        let call = self.metrics.start_now(op);
        let result = f()?;
        if let Err(e) = &result {
            if e.is_retryable() || e.kind() == ErrorKind::Unavailable {
                return None;
            }
        }
        call.finish(result.is_ok(), bytes_in, result.as_ref().map(&bytes_out).unwrap_or(0));
        Some(result)
    }
}

#[async_trait]
impl Storage for ManagedStorage {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    fn is_healthy(&self) -> bool {
        self.guard.is_healthy()
    }

    fn traffic(&self) -> Option<crate::metrics::Traffic> {
        self.inner.traffic()
    }

    async fn get(&self, key: &Key) -> Result<Bytes> {
        self.run(Op::Get, key, 0, || self.inner.get(key), |b| b.len() as u64).await
    }

    #[inline]
    fn get_now(&self, key: &Key) -> Option<Result<Bytes>> {
        self.run_now(Op::Get, key, 0, || self.inner.get_now(key), |b| b.len() as u64)
    }

    #[inline]
    fn put_now(&self, key: &Key, value: &Bytes, options: &PutOptions) -> Option<Result<ObjectMeta>> {
        let call = || self.inner.put_now(key, value, options);
        self.run_now(Op::Put, key, value.len() as u64, call, |_| 0)
    }

    async fn get_with_meta(&self, key: &Key) -> Result<(ObjectMeta, Bytes)> {
        let call = || self.inner.get_with_meta(key);
        self.run(Op::Get, key, 0, call, |(_, b)| b.len() as u64).await
    }

    async fn get_range(&self, key: &Key, range: Range<u64>) -> Result<Bytes> {
        let call = || self.inner.get_range(key, range.clone());
        self.run(Op::GetRange, key, 0, call, |b| b.len() as u64).await
    }

    async fn put(&self, key: &Key, value: Bytes, options: PutOptions) -> Result<ObjectMeta> {
        let len = value.len() as u64;
        let call = || self.inner.put(key, value.clone(), options.clone());
        self.run(Op::Put, key, len, call, |_| 0).await
    }

    async fn delete(&self, key: &Key) -> Result<()> {
        self.run(Op::Delete, key, 0, || self.inner.delete(key), |_| 0).await
    }

    async fn stat(&self, key: &Key) -> Result<ObjectMeta> {
        self.run(Op::Stat, key, 0, || self.inner.stat(key), |_| 0).await
    }

    async fn list(&self, options: &ListOptions) -> Result<ListPage> {
        self.run(Op::List, &options.prefix, 0, || self.inner.list(options), |_| 0).await
    }

    async fn batch(&self, ops: Vec<BatchOp>) -> Result<()> {
        let len =
            ops.iter().map(|o| if let BatchOp::Put { value, .. } = o { value.len() as u64 } else { 0 }).sum();
        let first = ops.first().map(|o| o.key().as_str()).unwrap_or("");
        self.run(Op::Batch, first, len, || self.inner.batch(ops.clone()), |_| 0).await
    }

    async fn read(&self, key: &Key, range: Option<Range<u64>>) -> Result<ByteStream> {
        let call = || self.inner.read(key, range.clone());
        let stream = self.run(Op::Read, key, 0, call, |_| 0).await?;
        let metrics = self.metrics.clone();
        Ok(stream
            .inspect(move |chunk| {
                if let Ok(chunk) = chunk {
                    metrics.add_bytes(Op::Read, 0, chunk.len() as u64);
                }
            })
            .boxed())
    }

    async fn write(&self, key: &Key, options: PutOptions) -> Result<Box<dyn ValueWriter>> {
        let call = || self.inner.write(key, options.clone());
        let inner = self.run(Op::Write, key, 0, call, |_| 0).await?;
        Ok(Box::new(CountingWriter { inner, metrics: self.metrics.clone() }))
    }

    async fn rename(&self, from: &Key, to: &Key) -> Result<()> {
        self.run(Op::Rename, from, 0, || self.inner.rename(from, to), |_| 0).await
    }

    async fn set_metadata(
        &self,
        key: &Key,
        changes: &MetadataChanges,
        condition: &Condition,
    ) -> Result<ObjectMeta> {
        self.run(Op::SetMetadata, key, 0, || self.inner.set_metadata(key, changes, condition), |_| 0).await
    }

    async fn patch(&self, key: &Key, patch: &Patch, condition: &Condition) -> Result<ObjectMeta> {
        if !self.inner.capabilities().partial_write {
            // The rewrite runs here, over this layer, so its reads and
            // writes are counted as what they cost the backend.
            return crate::storage::rewrite_patched(self, key, patch, condition).await;
        }
        let len = patch.data_len();
        self.run(Op::Patch, key, len, || self.inner.patch(key, patch, condition), |_| 0).await
    }

    /// Passed on as it is: what the holder reads from the file is not
    /// counted here.
    async fn open_file(&self, key: &Key) -> Result<Option<LocalFile>> {
        self.inner.open_file(key).await
    }

    async fn sync(&self) -> Result<()> {
        let span = debug_span!("storage", backend = self.inner.name(), op = "sync");
        self.guard.call("sync", "", || self.inner.sync()).instrument(span).await
    }
}

/// Counts the bytes of a streamed write as they pass.
struct CountingWriter {
    inner: Box<dyn ValueWriter>,
    metrics: Arc<BackendMetrics>,
}

#[async_trait]
impl ValueWriter for CountingWriter {
    async fn write(&mut self, chunk: Bytes) -> Result<()> {
        let len = chunk.len() as u64;
        self.inner.write(chunk).await?;
        self.metrics.add_bytes(Op::Write, len, 0);
        Ok(())
    }

    async fn finish(self: Box<Self>) -> Result<ObjectMeta> {
        self.inner.finish().await
    }

    async fn abort(self: Box<Self>) -> Result<()> {
        self.inner.abort().await
    }
}
