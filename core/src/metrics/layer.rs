//! `MetricsStorage`: records every call on the wrapped backend into its
//! [`BackendMetrics`]. The manager puts one directly around each backend,
//! so the figures are per backend whatever policy calls it.

use quanta::Instant;
use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;

use super::{BackendMetrics, Op};
use crate::error::Result;
use crate::key::Key;
use crate::storage::{
    BatchOp, ByteStream, Capabilities, ListOptions, ListPage, ObjectMeta, PutOptions, Storage, ValueWriter,
};

/// Wraps a backend and records each call.
#[derive(Debug, Clone)]
pub struct MetricsStorage {
    inner: Arc<dyn Storage>,
    metrics: Arc<BackendMetrics>,
}

impl MetricsStorage {
    /// Wraps `inner`, recording into `metrics`.
    pub fn new(inner: Arc<dyn Storage>, metrics: Arc<BackendMetrics>) -> Self {
        MetricsStorage { inner, metrics }
    }

    fn done<T>(
        &self,
        op: Op,
        start: Instant,
        result: &Result<T>,
        bytes_in: u64,
        bytes_out: impl Fn(&T) -> u64,
    ) {
        let out = result.as_ref().map(&bytes_out).unwrap_or(0);
        self.metrics.record(op, start.elapsed(), result.is_ok(), bytes_in, out);
    }
}

#[async_trait]
impl Storage for MetricsStorage {
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
        let start = Instant::now();
        let r = self.inner.get(key).await;
        self.done(Op::Get, start, &r, 0, |b| b.len() as u64);
        r
    }

    async fn get_range(&self, key: &Key, range: Range<u64>) -> Result<Bytes> {
        let start = Instant::now();
        let r = self.inner.get_range(key, range).await;
        self.done(Op::GetRange, start, &r, 0, |b| b.len() as u64);
        r
    }

    async fn put(&self, key: &Key, value: Bytes, options: PutOptions) -> Result<ObjectMeta> {
        let start = Instant::now();
        let len = value.len() as u64;
        let r = self.inner.put(key, value, options).await;
        self.done(Op::Put, start, &r, len, |_| 0);
        r
    }

    async fn delete(&self, key: &Key) -> Result<()> {
        let start = Instant::now();
        let r = self.inner.delete(key).await;
        self.done(Op::Delete, start, &r, 0, |_| 0);
        r
    }

    async fn stat(&self, key: &Key) -> Result<ObjectMeta> {
        let start = Instant::now();
        let r = self.inner.stat(key).await;
        self.done(Op::Stat, start, &r, 0, |_| 0);
        r
    }

    async fn list(&self, options: &ListOptions) -> Result<ListPage> {
        let start = Instant::now();
        let r = self.inner.list(options).await;
        self.done(Op::List, start, &r, 0, |_| 0);
        r
    }

    async fn batch(&self, ops: Vec<BatchOp>) -> Result<()> {
        let start = Instant::now();
        let len: u64 =
            ops.iter().map(|o| if let BatchOp::Put { value, .. } = o { value.len() as u64 } else { 0 }).sum();
        let r = self.inner.batch(ops).await;
        self.done(Op::Batch, start, &r, len, |_| 0);
        r
    }

    async fn read(&self, key: &Key, range: Option<Range<u64>>) -> Result<ByteStream> {
        let start = Instant::now();
        let r = self.inner.read(key, range).await;
        self.done(Op::Read, start, &r, 0, |_| 0);
        let metrics = self.metrics.clone();
        r.map(|stream| {
            stream
                .inspect(move |chunk| {
                    if let Ok(chunk) = chunk {
                        metrics.add_bytes(Op::Read, 0, chunk.len() as u64);
                    }
                })
                .boxed()
        })
    }

    async fn write(&self, key: &Key, options: PutOptions) -> Result<Box<dyn ValueWriter>> {
        let start = Instant::now();
        let r = self.inner.write(key, options).await;
        self.done(Op::Write, start, &r, 0, |_| 0);
        let metrics = self.metrics.clone();
        r.map(|inner| Box::new(CountingWriter { inner, metrics }) as Box<dyn ValueWriter>)
    }

    async fn rename(&self, from: &Key, to: &Key) -> Result<()> {
        let start = Instant::now();
        let r = self.inner.rename(from, to).await;
        self.done(Op::Rename, start, &r, 0, |_| 0);
        r
    }

    async fn sync(&self) -> Result<()> {
        self.inner.sync().await
    }
}

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
