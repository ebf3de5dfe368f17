//! Moving the write-back dirty set to the primary: flush passes (all keys,
//! some keys, deletes only once the primary is full), the periodic
//! flusher, and shutdown. The dirty set itself is [`WriteBack`].

use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Weak};

use futures::stream::{self, StreamExt};
use tokio::task::JoinHandle;

use super::storage::CacheStorage;
use super::writeback::{Dirty, WriteBack, FLUSH_CONCURRENCY};
use crate::error::{Error, ErrorKind, Result};
use crate::key::Key;
use crate::storage::{PutOptions, Storage};

impl CacheStorage {
    /// Records a dirty `state` for `key`, flushing first when the set is full.
    pub(super) async fn insert_dirty(
        &self,
        wb: &WriteBack,
        key: &Key,
        state: Dirty,
        op: &'static str,
    ) -> Result<()> {
        loop {
            if wb.try_insert(key, &state) {
                return Ok(());
            }
            let _flushing = wb.flush_lock.lock().await;
            if wb.try_insert(key, &state) {
                return Ok(());
            }
            let flushed = self.flush_locked(wb, &|_| true).await;
            if wb.try_insert(key, &state) {
                return Ok(());
            }
            if let Err(e) = flushed {
                // Unavailable whatever the flush error was: this write was
                // refused for want of room, and may succeed later.
                return Err(Error::new(
                    ErrorKind::Unavailable,
                    format!(
                        "the write-back dirty set is full ({} of {} bytes) and flushing it to the primary failed, so the write was not accepted; retry once the primary is reachable",
                        wb.bytes(),
                        wb.max_dirty_bytes
                    ),
                )
                .with_key(key.as_str())
                .with_backend(self.name())
                .with_operation(op)
                .retryable(true)
                .with_source(e));
            }
        }
    }

    /// Flushes the dirty keys that match `filter`.
    pub(super) async fn flush_where(&self, filter: &(dyn Fn(&Key) -> bool + Sync)) -> Result<()> {
        let Some(wb) = &self.write_back else { return Ok(()) };
        if !wb.any(filter) {
            return Ok(());
        }
        let _flushing = wb.flush_lock.lock().await;
        self.flush_locked(wb, filter).await
    }

    /// Flushes `keys` (before an operation that needs them in the primary).
    pub(super) async fn flush_keys(&self, keys: &[&Key]) -> Result<()> {
        self.flush_where(&|k| keys.contains(&k)).await
    }

    /// Flushes every dirty key; the first error, if any, after trying all.
    pub(super) async fn flush_all(&self) -> Result<()> {
        self.flush_where(&|_| true).await
    }

    /// Flushes the dirty keys that match `filter`. Once the primary is
    /// found full, the pass flushes only deletes (which a full primary
    /// still takes, and which free space): every other put would fail the
    /// same way, each at the cost of a failed commit. The rest stay dirty
    /// for the next pass.
    async fn flush_locked(&self, wb: &WriteBack, filter: &(dyn Fn(&Key) -> bool + Sync)) -> Result<()> {
        let work = wb.snapshot(filter);
        let full = AtomicBool::new(false);
        let mut results = stream::iter(work)
            .filter(|(_, _, state)| std::future::ready(!full.load(SeqCst) || matches!(state, Dirty::Deleted)))
            .map(|(key, seq, state)| self.flush_one(wb, key, seq, state))
            .buffer_unordered(FLUSH_CONCURRENCY);
        let mut first = None;
        while let Some(result) = results.next().await {
            if let Err(e) = result {
                tracing::debug!(cache = self.name(), error = %e, "flushing a dirty entry failed; kept for retry");
                if e.is_out_of_space() {
                    full.store(true, SeqCst);
                }
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }

    async fn flush_one(&self, wb: &WriteBack, key: Key, seq: u64, state: Dirty) -> Result<()> {
        let ticket = self.coherence.begin_write(&key).await;
        let result = match state {
            Dirty::Put { value, meta } => {
                let options = PutOptions::with_metadata(meta.metadata.clone());
                match self.primary.put(&key, value.clone(), options).await {
                    Ok(stored) => Ok(self.cacheable(value, stored)),
                    Err(e) => Err(e),
                }
            }
            Dirty::Deleted => self.primary.delete(&key).await.map(|()| None),
        };
        match result {
            Ok(cached) => {
                self.coherence.end_write(ticket, cached).await;
                wb.complete(&key, seq);
                Ok(())
            }
            Err(e) => {
                self.coherence.end_write(ticket, None).await;
                Err(e)
            }
        }
    }

    /// Starts the write-back flusher: every `flush_interval` it flushes the
    /// dirty set, logging (and keeping) what fails. The task holds only a
    /// weak reference: it ends when the cache is dropped or shut down. In
    /// write-through mode it ends at once. Needs a tokio runtime.
    pub fn spawn_flusher(self: &Arc<Self>) -> JoinHandle<()> {
        let weak: Weak<CacheStorage> = Arc::downgrade(self);
        let period = match &self.write_back {
            Some(wb) if !wb.is_closed() => wb.flush_interval,
            _ => return tokio::spawn(async {}),
        };
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(period);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticker.tick().await;
            loop {
                ticker.tick().await;
                let Some(cache) = weak.upgrade() else { break };
                if cache.write_back.as_ref().is_none_or(|wb| wb.is_closed()) {
                    break;
                }
                if let Err(e) = cache.flush_all().await {
                    tracing::warn!(
                        cache = cache.name(),
                        dirty = cache.dirty_keys(),
                        error = %e,
                        "write-back flush failed; the dirty entries are kept and retried"
                    );
                }
            }
        })
    }

    /// Flushes every dirty entry and syncs the primary, then stops the
    /// flusher; later writes go straight to the primary, as in
    /// write-through. Call it before dropping a write-back cache. On error
    /// the entries that failed are still dirty and readable: call
    /// `shutdown` or `sync` again. Just a `sync` in write-through mode.
    pub async fn shutdown(&self) -> Result<()> {
        if let Some(wb) = &self.write_back {
            wb.closed.store(true, SeqCst);
        }
        let flushed = self.flush_all().await;
        let synced = self.primary.sync().await;
        flushed.and(synced)
    }
}
