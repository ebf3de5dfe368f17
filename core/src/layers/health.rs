//! `HealthStorage`: timeouts, bounded retries, and health tracking with
//! probing under backoff.
//!
//! Defaults ([`HealthOptions::default`]): a call that has not completed in
//! 30 s fails with a retryable `Unavailable`; a retryable failure is retried
//! twice, after 20 ms and 40 ms. When a call still fails with `Unavailable`,
//! the backend is marked unhealthy (unless the cause is a full device, which
//! is not an outage): later calls fail at once, naming the
//! last error, instead of waiting out timeouts, and
//! [`is_healthy`](crate::Storage::is_healthy) says `false` so that policies
//! route around it. [`HealthStorage::probe`] (called by the manager's
//! background task) tries a cheap listing once the backoff has passed: 250 ms
//! after the failure, doubling to at most 15 s; success marks it healthy.
//!
//! Sits directly around a backend, inside the metrics layer, so metrics count
//! logical calls and the retries show up in `tierfs_retries_total`.
//! Timeouts bound the start of streamed reads and writes, not every chunk.

use std::future::Future;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::Mutex;

use crate::error::{Error, ErrorKind, Result};
use crate::key::Key;
use crate::metrics::StorageMetrics;
use crate::storage::{
    BatchOp, ByteStream, Capabilities, Condition, ListOptions, ListPage, LocalFile, MetadataChanges,
    ObjectMeta, Patch, PutOptions, Storage, ValueWriter,
};

/// Timeouts, retries and probing of one backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthOptions {
    /// Longest a call may take before it fails (default 30 s).
    pub timeout: Duration,
    /// Retries of a retryable failure (default 2).
    pub retries: u32,
    /// Wait before the first retry, doubled for each next one (default 20 ms).
    pub retry_backoff: Duration,
    /// First wait before probing an unhealthy backend (default 250 ms).
    pub probe_backoff: Duration,
    /// Longest wait between probes (default 15 s).
    pub max_probe_backoff: Duration,
}

impl Default for HealthOptions {
    fn default() -> Self {
        HealthOptions {
            timeout: Duration::from_secs(30),
            retries: 2,
            retry_backoff: Duration::from_millis(20),
            probe_backoff: Duration::from_millis(250),
            max_probe_backoff: Duration::from_secs(15),
        }
    }
}

#[derive(Debug)]
enum State {
    Healthy,
    Unhealthy { since: Instant, next_probe: Instant, backoff: Duration, last_error: String },
}

/// A backend with timeouts, retries and health tracking.
#[derive(Debug)]
pub struct HealthStorage {
    inner: Arc<dyn Storage>,
    guard: HealthGuard,
}

impl HealthStorage {
    /// Wraps `inner`; retries are counted in `metrics` when given.
    pub fn new(
        inner: Arc<dyn Storage>,
        options: HealthOptions,
        metrics: Option<Arc<StorageMetrics>>,
    ) -> Self {
        let guard = HealthGuard::new(inner.name(), options, metrics);
        HealthStorage { inner, guard }
    }

    /// Probes an unhealthy backend whose backoff has passed; returns whether
    /// it is healthy afterwards.
    pub async fn probe(&self) -> bool {
        self.guard.probe(&*self.inner).await
    }
}

/// The health state of one backend and the call discipline around it
/// (fail fast while unhealthy, timeout, bounded retries), apart from any
/// [`Storage`] so that a layer doing more than this (the manager's
/// [`ManagedStorage`](crate::layers::ManagedStorage)) runs it inline.
#[derive(Debug)]
pub struct HealthGuard {
    backend: String,
    options: HealthOptions,
    state: Mutex<State>,
    /// Mirrors `state` so the healthy path takes no lock.
    healthy: AtomicBool,
    metrics: Option<Arc<StorageMetrics>>,
}

impl HealthGuard {
    /// A healthy guard for the backend named `backend`; retries are counted
    /// in `metrics` when given.
    pub fn new(backend: &str, options: HealthOptions, metrics: Option<Arc<StorageMetrics>>) -> Self {
        HealthGuard {
            backend: backend.to_owned(),
            options,
            state: Mutex::new(State::Healthy),
            healthy: AtomicBool::new(true),
            metrics,
        }
    }

    /// Whether calls currently go through (`false` after an `Unavailable`
    /// failure, until a probe succeeds).
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Acquire)
    }

    /// Probes `inner` if it is unhealthy and its backoff has passed; returns
    /// whether it is healthy afterwards.
    pub async fn probe(&self, inner: &dyn Storage) -> bool {
        match &*self.state.lock() {
            State::Healthy => return true,
            State::Unhealthy { next_probe, .. } if Instant::now() < *next_probe => return false,
            State::Unhealthy { .. } => {}
        }
        let options = ListOptions { limit: Some(1), ..ListOptions::recursive("") };
        let result = tokio::time::timeout(self.options.timeout, inner.list(&options)).await;
        match result {
            Ok(Ok(_)) => {
                tracing::info!(backend = self.backend, "backend is reachable again");
                self.set_healthy();
                true
            }
            Ok(Err(e)) if e.kind() != ErrorKind::Unavailable => {
                self.set_healthy();
                true
            }
            Ok(Err(e)) => {
                self.mark_unhealthy(&e.to_string(), true);
                false
            }
            Err(_) => {
                self.mark_unhealthy("the probe timed out", true);
                false
            }
        }
    }

    fn set_healthy(&self) {
        let mut state = self.state.lock();
        *state = State::Healthy;
        self.healthy.store(true, Ordering::Release);
    }

    fn mark_unhealthy(&self, error: &str, after_probe: bool) {
        let mut state = self.state.lock();
        self.healthy.store(false, Ordering::Release);
        let now = Instant::now();
        let (since, backoff) = match &*state {
            State::Unhealthy { since, backoff, .. } if after_probe => {
                (*since, (*backoff * 2).min(self.options.max_probe_backoff))
            }
            State::Unhealthy { since, backoff, .. } => (*since, *backoff),
            State::Healthy => {
                tracing::warn!(backend = self.backend, error, "backend marked unhealthy");
                (now, self.options.probe_backoff)
            }
        };
        *state = State::Unhealthy { since, next_probe: now + backoff, backoff, last_error: error.to_owned() };
    }

    fn fail_fast(&self, op: &'static str, key: &str) -> Result<()> {
        if self.healthy.load(Ordering::Acquire) {
            return Ok(());
        }
        match &*self.state.lock() {
            State::Healthy => Ok(()),
            State::Unhealthy { since, next_probe, last_error, .. } => Err(Error::new(
                ErrorKind::Unavailable,
                format!(
                    "the backend has been unreachable for {:.1}s (last error: {last_error}); it is probed again in {:.1}s",
                    since.elapsed().as_secs_f64(),
                    next_probe.saturating_duration_since(Instant::now()).as_secs_f64()
                ),
            )
            .with_key(key)
            .with_backend(self.backend.as_str())
            .with_operation(op)
            .retryable(true)),
        }
    }

    /// Runs `f` (a call of the guarded backend) under the guard: fails at
    /// once while unhealthy, times out, retries retryable failures, and
    /// marks the backend unhealthy on a final `Unavailable` (unless the
    /// device is only full: [`Error::is_out_of_space`]).
    pub async fn call<T, F, Fut>(&self, op: &'static str, key: &str, f: F) -> Result<T>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        self.fail_fast(op, key)?;
        let mut attempt = 0;
        loop {
            // Most calls of an in-process backend finish on their first
            // poll: arm the timer only for those that do not.
            let mut call = std::pin::pin!(f());
            let result = match futures::poll!(call.as_mut()) {
                std::task::Poll::Ready(result) => result,
                std::task::Poll::Pending => match tokio::time::timeout(self.options.timeout, call).await {
                    Ok(result) => result,
                    Err(_) => Err(Error::new(
                        ErrorKind::Unavailable,
                        format!(
                            "no answer within {:?}; the backend may be down or overloaded",
                            self.options.timeout
                        ),
                    )
                    .with_key(key)
                    .with_backend(self.backend.as_str())
                    .with_operation(op)
                    .retryable(true)),
                },
            };
            match result {
                Err(e) if e.is_retryable() && attempt < self.options.retries => {
                    attempt += 1;
                    if let Some(m) = &self.metrics {
                        m.retry();
                    }
                    tokio::time::sleep(self.options.retry_backoff * 2u32.pow(attempt - 1)).await;
                }
                // A full device is not an outage: reads and deletes still
                // work, and deleting is how space comes back.
                Err(e) if e.kind() == ErrorKind::Unavailable && !e.is_out_of_space() => {
                    self.mark_unhealthy(&e.to_string(), false);
                    return Err(e);
                }
                other => return other,
            }
        }
    }
}

#[async_trait]
impl Storage for HealthStorage {
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
        self.guard.call("get", key, || self.inner.get(key)).await
    }

    async fn get_with_meta(&self, key: &Key) -> Result<(ObjectMeta, Bytes)> {
        self.guard.call("get", key, || self.inner.get_with_meta(key)).await
    }

    async fn get_range(&self, key: &Key, range: Range<u64>) -> Result<Bytes> {
        self.guard.call("get_range", key, || self.inner.get_range(key, range.clone())).await
    }

    async fn put(&self, key: &Key, value: Bytes, options: PutOptions) -> Result<ObjectMeta> {
        self.guard.call("put", key, || self.inner.put(key, value.clone(), options.clone())).await
    }

    async fn delete(&self, key: &Key) -> Result<()> {
        self.guard.call("delete", key, || self.inner.delete(key)).await
    }

    async fn stat(&self, key: &Key) -> Result<ObjectMeta> {
        self.guard.call("stat", key, || self.inner.stat(key)).await
    }

    async fn list(&self, options: &ListOptions) -> Result<ListPage> {
        self.guard.call("list", &options.prefix, || self.inner.list(options)).await
    }

    async fn batch(&self, ops: Vec<BatchOp>) -> Result<()> {
        let first = ops.first().map(|o| o.key().to_string()).unwrap_or_default();
        self.guard.call("batch", &first, || self.inner.batch(ops.clone())).await
    }

    async fn read(&self, key: &Key, range: Option<Range<u64>>) -> Result<ByteStream> {
        self.guard.call("read", key, || self.inner.read(key, range.clone())).await
    }

    async fn write(&self, key: &Key, options: PutOptions) -> Result<Box<dyn ValueWriter>> {
        self.guard.call("write", key, || self.inner.write(key, options.clone())).await
    }

    async fn rename(&self, from: &Key, to: &Key) -> Result<()> {
        self.guard.call("rename", from, || self.inner.rename(from, to)).await
    }

    async fn set_metadata(
        &self,
        key: &Key,
        changes: &MetadataChanges,
        condition: &Condition,
    ) -> Result<ObjectMeta> {
        self.guard.call("set_metadata", key, || self.inner.set_metadata(key, changes, condition)).await
    }

    async fn patch(&self, key: &Key, patch: &Patch, condition: &Condition) -> Result<ObjectMeta> {
        self.guard.call("patch", key, || self.inner.patch(key, patch, condition)).await
    }

    async fn open_file(&self, key: &Key) -> Result<Option<LocalFile>> {
        self.guard.call("open_file", key, || self.inner.open_file(key)).await
    }

    async fn sync(&self) -> Result<()> {
        self.guard.call("sync", "", || self.inner.sync()).await
    }
}
