//! `FaultStorage`: injects failures into a backend, for tests of everything
//! that must survive them (policies, failover, crash handling).
//!
//! Switches, all changeable while the storage is in use:
//! - [`set_down`](FaultHandle::set_down): an outage; every call fails with a
//!   retryable `Unavailable` until switched back.
//! - [`fail_next`](FaultHandle::fail_next): the next `n` calls fail.
//! - [`set_error_rate`](FaultHandle::set_error_rate): each call fails with
//!   this probability (a seeded generator, so runs repeat).
//! - [`set_latency`](FaultHandle::set_latency): each call is delayed first.
//! - [`set_partial_batch`](FaultHandle::set_partial_batch): the next batch
//!   applies only its first `n` operations, one by one, then fails, as a
//!   backend without atomic batches would when it dies half-way.
//! - [`set_filter`](FaultHandle::set_filter): faults hit only reads, only
//!   writes, or everything.
//!
//! ```
//! use std::sync::Arc;
//! use tierfs_core::layers::FaultStorage;
//! use tierfs_core::{ErrorKind, Key, MemoryStorage, Storage};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let (store, faults) = FaultStorage::wrap(Arc::new(MemoryStorage::new("m")));
//! let key = Key::new("k").unwrap();
//! faults.set_down(true);
//! assert_eq!(store.get(&key).await.unwrap_err().kind(), ErrorKind::Unavailable);
//! faults.set_down(false);
//! assert_eq!(store.get(&key).await.unwrap_err().kind(), ErrorKind::NotFound);
//! # });
//! ```

use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::Mutex;

use crate::error::{Error, ErrorKind, Result};
use crate::key::Key;
use crate::storage::{
    BatchOp, ByteStream, Capabilities, Condition, ListOptions, ListPage, MetadataChanges, ObjectMeta, Patch,
    PutOptions, Storage, ValueWriter,
};

/// Which calls faults apply to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FaultFilter {
    /// Every call.
    #[default]
    All,
    /// get, get_range, stat, list, read.
    Reads,
    /// put, delete, batch, write, rename.
    Writes,
}

#[derive(Debug, Default)]
struct Switches {
    down: AtomicBool,
    fail_next: AtomicU64,
    /// Probability times 2^32.
    error_rate: AtomicU64,
    latency_us: AtomicU64,
    partial_batch: Mutex<Option<usize>>,
    filter: Mutex<FaultFilter>,
    rng: AtomicU64,
    injected: AtomicU64,
}

/// Controls the faults of one [`FaultStorage`].
#[derive(Debug, Clone)]
pub struct FaultHandle {
    switches: Arc<Switches>,
}

impl FaultHandle {
    /// Starts (`true`) or ends an outage.
    pub fn set_down(&self, down: bool) {
        self.switches.down.store(down, Ordering::SeqCst);
    }

    /// Whether an outage is on.
    pub fn is_down(&self) -> bool {
        self.switches.down.load(Ordering::SeqCst)
    }

    /// Fails the next `n` calls.
    pub fn fail_next(&self, n: u64) {
        self.switches.fail_next.store(n, Ordering::SeqCst);
    }

    /// Fails each call with probability `rate` (0 to 1), drawn from a
    /// generator seeded with `seed`.
    pub fn set_error_rate(&self, rate: f64, seed: u64) {
        self.switches.rng.store(seed | 1, Ordering::SeqCst);
        let scaled = (rate.clamp(0.0, 1.0) * (1u64 << 32) as f64) as u64;
        self.switches.error_rate.store(scaled, Ordering::SeqCst);
    }

    /// Delays every call by `latency`.
    pub fn set_latency(&self, latency: Duration) {
        self.switches.latency_us.store(latency.as_micros() as u64, Ordering::SeqCst);
    }

    /// Makes the next batch apply its first `applied` operations and fail.
    pub fn set_partial_batch(&self, applied: usize) {
        *self.switches.partial_batch.lock() = Some(applied);
    }

    /// Restricts faults to some calls.
    pub fn set_filter(&self, filter: FaultFilter) {
        *self.switches.filter.lock() = filter;
    }

    /// Failures injected so far.
    pub fn injected(&self) -> u64 {
        self.switches.injected.load(Ordering::SeqCst)
    }
}

/// A backend wrapped with switchable faults.
#[derive(Debug, Clone)]
pub struct FaultStorage {
    inner: Arc<dyn Storage>,
    switches: Arc<Switches>,
}

impl FaultStorage {
    /// Wraps `inner`; returns the storage and the handle that controls it.
    pub fn wrap(inner: Arc<dyn Storage>) -> (Arc<FaultStorage>, FaultHandle) {
        let switches = Arc::new(Switches::default());
        let handle = FaultHandle { switches: switches.clone() };
        (Arc::new(FaultStorage { inner, switches }), handle)
    }

    async fn check(&self, write: bool, op: &'static str, key: &str) -> Result<()> {
        let s = &self.switches;
        let latency = s.latency_us.load(Ordering::Relaxed);
        if latency > 0 {
            tokio::time::sleep(Duration::from_micros(latency)).await;
        }
        let applies = match *s.filter.lock() {
            FaultFilter::All => true,
            FaultFilter::Reads => !write,
            FaultFilter::Writes => write,
        };
        if !applies {
            return Ok(());
        }
        let fail = s.down.load(Ordering::SeqCst)
            || s.fail_next.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok()
            || self.draw();
        if fail {
            s.injected.fetch_add(1, Ordering::Relaxed);
            return Err(Error::new(ErrorKind::Unavailable, "injected fault: the backend is unreachable")
                .with_key(key)
                .with_backend(self.inner.name())
                .with_operation(op)
                .retryable(true));
        }
        Ok(())
    }

    fn draw(&self) -> bool {
        let rate = self.switches.error_rate.load(Ordering::Relaxed);
        if rate == 0 {
            return false;
        }
        let mut x = self.switches.rng.load(Ordering::Relaxed);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.switches.rng.store(x, Ordering::Relaxed);
        (x >> 32) < rate
    }
}

#[async_trait]
impl Storage for FaultStorage {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    fn is_healthy(&self) -> bool {
        self.inner.is_healthy()
    }

    async fn get(&self, key: &Key) -> Result<Bytes> {
        self.check(false, "get", key).await?;
        self.inner.get(key).await
    }

    async fn get_range(&self, key: &Key, range: Range<u64>) -> Result<Bytes> {
        self.check(false, "get_range", key).await?;
        self.inner.get_range(key, range).await
    }

    async fn put(&self, key: &Key, value: Bytes, options: PutOptions) -> Result<ObjectMeta> {
        self.check(true, "put", key).await?;
        self.inner.put(key, value, options).await
    }

    async fn delete(&self, key: &Key) -> Result<()> {
        self.check(true, "delete", key).await?;
        self.inner.delete(key).await
    }

    async fn stat(&self, key: &Key) -> Result<ObjectMeta> {
        self.check(false, "stat", key).await?;
        self.inner.stat(key).await
    }

    async fn list(&self, options: &ListOptions) -> Result<ListPage> {
        self.check(false, "list", &options.prefix).await?;
        self.inner.list(options).await
    }

    async fn batch(&self, ops: Vec<BatchOp>) -> Result<()> {
        let first = ops.first().map(|o| o.key().to_string()).unwrap_or_default();
        self.check(true, "batch", &first).await?;
        let partial = self.switches.partial_batch.lock().take();
        let Some(applied) = partial else { return self.inner.batch(ops).await };
        let total = ops.len();
        for op in ops.into_iter().take(applied) {
            match op {
                BatchOp::Put { key, value, metadata, if_not_exists } => {
                    let options = PutOptions { metadata, if_not_exists, ..Default::default() };
                    self.inner.put(&key, value, options).await?;
                }
                BatchOp::Delete { key } => self.inner.delete(&key).await?,
            }
        }
        self.switches.injected.fetch_add(1, Ordering::Relaxed);
        Err(Error::new(
            ErrorKind::Unavailable,
            format!("injected fault: the backend died after {applied} of {total} batch operations"),
        )
        .with_backend(self.inner.name())
        .with_operation("batch")
        .retryable(true))
    }

    async fn read(&self, key: &Key, range: Option<Range<u64>>) -> Result<ByteStream> {
        self.check(false, "read", key).await?;
        self.inner.read(key, range).await
    }

    async fn write(&self, key: &Key, options: PutOptions) -> Result<Box<dyn ValueWriter>> {
        self.check(true, "write", key).await?;
        let inner = self.inner.write(key, options).await?;
        Ok(Box::new(FaultWriter { storage: self.clone(), key: key.clone(), inner }))
    }

    async fn rename(&self, from: &Key, to: &Key) -> Result<()> {
        self.check(true, "rename", from).await?;
        self.inner.rename(from, to).await
    }

    async fn set_metadata(
        &self,
        key: &Key,
        changes: &MetadataChanges,
        condition: &Condition,
    ) -> Result<ObjectMeta> {
        self.check(true, "set_metadata", key).await?;
        self.inner.set_metadata(key, changes, condition).await
    }

    async fn patch(&self, key: &Key, patch: &Patch, condition: &Condition) -> Result<ObjectMeta> {
        self.check(true, "patch", key).await?;
        self.inner.patch(key, patch, condition).await
    }

    async fn sync(&self) -> Result<()> {
        self.check(true, "sync", "").await?;
        self.inner.sync().await
    }
}

/// A streamed write that an outage (or any other fault) can cut mid-way.
struct FaultWriter {
    storage: FaultStorage,
    key: Key,
    inner: Box<dyn ValueWriter>,
}

#[async_trait]
impl ValueWriter for FaultWriter {
    async fn write(&mut self, chunk: Bytes) -> Result<()> {
        self.storage.check(true, "write", &self.key).await?;
        self.inner.write(chunk).await
    }

    async fn finish(self: Box<Self>) -> Result<ObjectMeta> {
        self.storage.check(true, "write", &self.key).await?;
        self.inner.finish().await
    }

    async fn abort(self: Box<Self>) -> Result<()> {
        self.inner.abort().await
    }
}
