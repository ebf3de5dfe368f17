//! Streamed writes: each chunk goes to every owner's writer; the value is
//! published under the key's lock, and moved if the layout changed while
//! it streamed.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::future::{join_all, try_join_all};

use super::{rebalance, ShardedStorage, Shared};
use crate::error::Result;
use crate::key::Key;
use crate::metrics::StorageMetrics;
use crate::storage::{ObjectMeta, PutOptions, ValueWriter};

/// A value being streamed to a key's owners. Memory stays bounded by one
/// chunk, shared (not copied) by the owners' writers.
pub(super) struct ShardedWriter {
    shared: Arc<Shared>,
    metrics: Arc<StorageMetrics>,
    name: String,
    key: Key,
    if_not_exists: bool,
    /// The epoch of the layout the writers were opened by.
    epoch: u64,
    writers: Vec<Box<dyn ValueWriter>>,
}

impl ShardedWriter {
    /// Opens a writer on every current owner of `key`.
    pub(super) async fn open(
        storage: &ShardedStorage,
        key: &Key,
        options: PutOptions,
    ) -> Result<Box<dyn ValueWriter>> {
        let layout = storage.shared.layout.load_full();
        let owners: Vec<_> = layout.owners(key.as_str()).into_iter().map(|(_, s)| s.clone()).collect();
        let opened = join_all(owners.iter().map(|s| s.write(key, options.clone()))).await;
        let mut writers = Vec::with_capacity(opened.len());
        let mut failure = None;
        for result in opened {
            match result {
                Ok(w) => writers.push(w),
                Err(e) => failure = failure.or(Some(e)),
            }
        }
        if let Some(e) = failure {
            abort_all(writers).await;
            return Err(e);
        }
        Ok(Box::new(ShardedWriter {
            shared: storage.shared.clone(),
            metrics: storage.metrics.clone(),
            name: storage.name.clone(),
            key: key.clone(),
            if_not_exists: options.if_not_exists,
            epoch: layout.record.epoch,
            writers,
        }))
    }
}

async fn abort_all(writers: Vec<Box<dyn ValueWriter>>) {
    for w in writers {
        if let Err(e) = w.abort().await {
            tracing::warn!(error = %e, "could not discard a failed streamed write");
        }
    }
}

#[async_trait]
impl ValueWriter for ShardedWriter {
    async fn write(&mut self, chunk: Bytes) -> Result<()> {
        try_join_all(self.writers.iter_mut().map(|w| w.write(chunk.clone()))).await.map(drop)
    }

    async fn finish(self: Box<Self>) -> Result<ObjectMeta> {
        let ShardedWriter { shared, metrics, name, key, if_not_exists, epoch, writers } = *self;
        let _exclusive = shared.locks.write(key.as_str()).await;
        let layout = shared.layout.load_full();
        if if_not_exists {
            if let Err(e) = layout.check_absent_elsewhere(&key, &name).await {
                abort_all(writers).await;
                return Err(e);
            }
        }
        let mut metas = Vec::with_capacity(writers.len());
        for w in writers {
            metas.push(w.finish().await?);
        }
        if layout.record.epoch != epoch {
            // Published where the previous layout put it: move it now.
            let holders: Vec<&str> =
                layout.candidates(key.as_str()).into_iter().flatten().map(|(n, _)| n).collect();
            if rebalance::settle_key(&layout, &key, &holders, &metrics).await? {
                let (_, owner) = layout.owners(key.as_str())[0];
                return owner.stat(&key).await;
            }
        }
        Ok(metas.swap_remove(0))
    }

    async fn abort(self: Box<Self>) -> Result<()> {
        abort_all(self.writers).await;
        Ok(())
    }
}
