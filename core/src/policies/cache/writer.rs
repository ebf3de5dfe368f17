//! `CacheWriter`: a streamed write to the primary that invalidates the
//! cached value when it is published.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

use super::coherence::Coherence;
use crate::error::Result;
use crate::key::Key;
use crate::storage::{ObjectMeta, ValueWriter};

/// Streams to the primary's writer; nothing is held in memory. The value
/// becomes visible in the primary inside `finish`, so the write is
/// announced to the cache ([`Coherence::begin_write`]) just before and
/// ended (invalidating the key) just after. Aborting or dropping changes
/// nothing, in the primary or in the cache.
pub(super) struct CacheWriter {
    inner: Box<dyn ValueWriter>,
    coherence: Arc<Coherence>,
    key: Key,
}

impl CacheWriter {
    pub(super) fn new(inner: Box<dyn ValueWriter>, coherence: Arc<Coherence>, key: Key) -> Self {
        CacheWriter { inner, coherence, key }
    }
}

#[async_trait]
impl ValueWriter for CacheWriter {
    async fn write(&mut self, chunk: Bytes) -> Result<()> {
        self.inner.write(chunk).await
    }

    async fn finish(self: Box<Self>) -> Result<ObjectMeta> {
        let CacheWriter { inner, coherence, key } = *self;
        let ticket = coherence.begin_write(&key).await;
        let result = inner.finish().await;
        coherence.end_write(ticket, None).await;
        result
    }

    async fn abort(self: Box<Self>) -> Result<()> {
        self.inner.abort().await
    }
}
