//! Write-back: acknowledged writes held in a bounded dirty set until they
//! are flushed to the primary. The semantics are documented on the
//! `policies::cache` module; here is the machinery: the dirty set (a
//! sorted map, for prefix flushes before `list`), one flush at a time
//! (`flush_lock`), and per-entry sequence numbers so that a flush forgets
//! only the state it wrote.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::stream::{self, StreamExt};
use parking_lot::Mutex;
use tokio::task::JoinHandle;

use super::storage::CacheStorage;
use crate::error::{Error, ErrorKind, Result};
use crate::key::Key;
use crate::storage::{Metadata, ObjectMeta, PutOptions, Storage};

/// Bytes charged per dirty entry on top of its key, value and metadata.
pub const DIRTY_ENTRY_OVERHEAD_BYTES: u64 = 128;
/// Dirty entries written to the primary at once by a flush.
const FLUSH_CONCURRENCY: usize = 8;

/// The state of a dirty key.
#[derive(Debug, Clone)]
pub(super) enum Dirty {
    /// Written: the value and what `stat` reports about it.
    Put { value: Bytes, meta: Arc<ObjectMeta> },
    /// Deleted.
    Deleted,
}

#[derive(Debug)]
struct Entry {
    seq: u64,
    charge: u64,
    state: Dirty,
}

#[derive(Debug, Default)]
struct DirtySet {
    entries: BTreeMap<Key, Entry>,
    bytes: u64,
}

/// The dirty set and the flush machinery of one write-back cache.
#[derive(Debug)]
pub(super) struct WriteBack {
    pub(super) max_dirty_bytes: u64,
    pub(super) flush_interval: Duration,
    set: Mutex<DirtySet>,
    /// Held by the one flush running.
    flush_lock: tokio::sync::Mutex<()>,
    seq: AtomicU64,
    /// Distinguishes provisional versions of different processes.
    instance: u64,
    closed: AtomicBool,
}

fn charge(key: &Key, state: &Dirty) -> u64 {
    let body = match state {
        Dirty::Put { value, meta } => {
            let map: usize = meta.metadata.iter().map(|(k, v)| k.len() + v.len()).sum();
            value.len() + map + meta.version.len()
        }
        Dirty::Deleted => 0,
    };
    (key.len() + body) as u64 + DIRTY_ENTRY_OVERHEAD_BYTES
}

impl WriteBack {
    pub(super) fn new(max_dirty_bytes: u64, flush_interval: Duration) -> Self {
        let instance = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        WriteBack {
            max_dirty_bytes,
            // A zero period would make the timer spin (and tokio refuses it).
            flush_interval: flush_interval.max(Duration::from_millis(1)),
            set: Mutex::default(),
            flush_lock: tokio::sync::Mutex::new(()),
            seq: AtomicU64::new(0),
            instance,
            closed: AtomicBool::new(false),
        }
    }

    /// The dirty state of `key`, if any.
    pub(super) fn lookup(&self, key: &Key) -> Option<Dirty> {
        self.set.lock().entries.get(key).map(|e| e.state.clone())
    }

    pub(super) fn bytes(&self) -> u64 {
        self.set.lock().bytes
    }

    pub(super) fn len(&self) -> usize {
        self.set.lock().entries.len()
    }

    pub(super) fn contains(&self, key: &Key) -> bool {
        self.set.lock().entries.contains_key(key)
    }

    pub(super) fn is_closed(&self) -> bool {
        self.closed.load(SeqCst)
    }

    /// Whether a put of `value` with `metadata` could ever be held.
    pub(super) fn fits(&self, key: &Key, value: &Bytes, metadata: &Metadata) -> bool {
        let map: usize = metadata.iter().map(|(k, v)| k.len() + v.len()).sum();
        // 40 bytes cover the provisional version.
        (key.len() + value.len() + map + 40) as u64 + DIRTY_ENTRY_OVERHEAD_BYTES <= self.max_dirty_bytes
    }

    /// A dirty put: the value with a provisional `stat` answer, also returned.
    pub(super) fn put_state(&self, key: &Key, value: Bytes, metadata: Metadata) -> (Dirty, ObjectMeta) {
        let n = self.seq.fetch_add(1, SeqCst) + 1;
        let meta = ObjectMeta {
            key: key.clone(),
            size: value.len() as u64,
            modified: SystemTime::now(),
            version: format!("wb-{:x}-{n}", self.instance),
            metadata,
        };
        (Dirty::Put { value, meta: Arc::new(meta.clone()) }, meta)
    }

    /// Records `state` for `key` if the set has room; returns whether it did.
    fn try_insert(&self, key: &Key, state: &Dirty) -> bool {
        let charge = charge(key, state);
        let mut set = self.set.lock();
        let old = set.entries.get(key).map_or(0, |e| e.charge);
        if set.bytes - old + charge > self.max_dirty_bytes {
            return false;
        }
        let seq = self.seq.fetch_add(1, SeqCst) + 1;
        set.bytes = set.bytes - old + charge;
        set.entries.insert(key.clone(), Entry { seq, charge, state: state.clone() });
        true
    }

    fn any(&self, filter: &dyn Fn(&Key) -> bool) -> bool {
        self.set.lock().entries.keys().any(filter)
    }

    fn snapshot(&self, filter: &dyn Fn(&Key) -> bool) -> Vec<(Key, u64, Dirty)> {
        let set = self.set.lock();
        set.entries
            .iter()
            .filter(|(k, _)| filter(k))
            .map(|(k, e)| (k.clone(), e.seq, e.state.clone()))
            .collect()
    }

    /// Forgets `key` after its state `seq` reached the primary, unless it
    /// was written again since.
    fn complete(&self, key: &Key, seq: u64) {
        let mut set = self.set.lock();
        if set.entries.get(key).is_some_and(|e| e.seq == seq) {
            if let Some(entry) = set.entries.remove(key) {
                set.bytes -= entry.charge;
            }
        }
    }
}

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

    /// Bytes held in the write-back dirty set now (0 in write-through
    /// mode); never more than `max_dirty_bytes`.
    pub fn dirty_bytes(&self) -> u64 {
        self.write_back.as_ref().map_or(0, |wb| wb.bytes())
    }

    /// Whether a read of `key` would be served without the primary now: it
    /// is dirty, or the tier holds it; `None` when the tier cannot tell
    /// without a round trip.
    pub fn serves_now(&self, key: &Key) -> Option<bool> {
        if self.write_back.as_ref().is_some_and(|wb| wb.contains(key)) {
            return Some(true);
        }
        self.tier().holds_now(key)
    }

    /// Keys in the write-back dirty set now (writes and deletes not yet
    /// in the primary).
    pub fn dirty_keys(&self) -> usize {
        self.write_back.as_ref().map_or(0, |wb| wb.len())
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
