//! Write-back: acknowledged writes held in a bounded dirty set until they
//! are flushed to the primary. The semantics are documented on the
//! `policies::cache` module; here is the dirty set (a
//! sorted map, for prefix flushes before `list`), one flush at a time
//! (`flush_lock`), and per-entry sequence numbers so that a flush forgets
//! only the state it wrote. The flush passes that empty it are in `flush.rs`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use parking_lot::Mutex;

use crate::error::{Error, Result};
use crate::key::Key;
use crate::storage::{Condition, Metadata, MetadataChanges, ObjectMeta, Patch};

/// Bytes charged per dirty entry on top of its key, value and metadata.
pub const DIRTY_ENTRY_OVERHEAD_BYTES: u64 = 128;
/// Dirty entries written to the primary at once by a flush.
pub(super) const FLUSH_CONCURRENCY: usize = 8;

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
    pub(super) flush_lock: tokio::sync::Mutex<()>,
    seq: AtomicU64,
    /// Distinguishes provisional versions of different processes.
    instance: u64,
    pub(super) closed: AtomicBool,
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

    /// Applies `changes` to the dirty put of `key` in place, with a new
    /// provisional version (flushed like any put), if `condition` holds on
    /// it. `None` when `key` is not dirty or the new map does not fit:
    /// the change then goes to the primary. Under the set's lock, so no
    /// put of the key can land in between and be undone.
    pub(super) fn update_metadata(
        &self,
        key: &Key,
        changes: &MetadataChanges,
        condition: &Condition,
    ) -> Option<Result<ObjectMeta>> {
        self.update(key, condition, false, |value, meta| {
            Ok((value.clone(), meta.size, changes.applied_to(meta.metadata.clone())))
        })
    }

    /// Applies `patch` to the dirty put of `key` in place, like
    /// [`Self::update_metadata`] (the dirty value is in memory).
    pub(super) fn patch(
        &self,
        key: &Key,
        patch: &Patch,
        condition: &Condition,
    ) -> Option<Result<ObjectMeta>> {
        self.update(key, condition, true, |value, meta| {
            let value = Bytes::from(patch.apply_to(value)?);
            let size = value.len() as u64;
            Ok((value, size, patch.metadata_changes().applied_to(meta.metadata.clone())))
        })
    }

    /// Replaces the dirty put of `key` with what `change` makes of it
    /// (value, size, metadata), under the set's lock, if `condition` holds;
    /// `content` says whether the bytes change (and so the time).
    fn update(
        &self,
        key: &Key,
        condition: &Condition,
        content: bool,
        change: impl FnOnce(&Bytes, &ObjectMeta) -> Result<(Bytes, u64, Metadata)>,
    ) -> Option<Result<ObjectMeta>> {
        let mut set = self.set.lock();
        let entry = set.entries.get(key)?;
        let Dirty::Put { value, meta } = &entry.state else {
            return Some(Err(Error::not_found(key.as_str())));
        };
        if let Err(e) = condition.check(meta) {
            return Some(Err(e));
        }
        let (value, size, metadata) = match change(value, meta) {
            Ok(changed) => changed,
            Err(e) => return Some(Err(e)),
        };
        let n = self.seq.fetch_add(1, SeqCst) + 1;
        let updated = ObjectMeta {
            version: format!("wb-{:x}-{n}", self.instance),
            size,
            modified: if content { SystemTime::now() } else { meta.modified },
            metadata,
            ..(**meta).clone()
        };
        let state = Dirty::Put { value, meta: Arc::new(updated.clone()) };
        let (old, charge) = (entry.charge, charge(key, &state));
        if set.bytes - old + charge > self.max_dirty_bytes {
            return None;
        }
        let seq = self.seq.fetch_add(1, SeqCst) + 1;
        set.bytes = set.bytes - old + charge;
        set.entries.insert(key.clone(), Entry { seq, charge, state });
        Some(Ok(updated))
    }

    /// Records `state` for `key` if the set has room; returns whether it did.
    pub(super) fn try_insert(&self, key: &Key, state: &Dirty) -> bool {
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

    pub(super) fn any(&self, filter: &dyn Fn(&Key) -> bool) -> bool {
        self.set.lock().entries.keys().any(filter)
    }

    pub(super) fn snapshot(&self, filter: &dyn Fn(&Key) -> bool) -> Vec<(Key, u64, Dirty)> {
        let set = self.set.lock();
        set.entries
            .iter()
            .filter(|(k, _)| filter(k))
            .map(|(k, e)| (k.clone(), e.seq, e.state.clone()))
            .collect()
    }

    /// Forgets `key` after its state `seq` reached the primary, unless it
    /// was written again since.
    pub(super) fn complete(&self, key: &Key, seq: u64) {
        let mut set = self.set.lock();
        if set.entries.get(key).is_some_and(|e| e.seq == seq) {
            if let Some(entry) = set.entries.remove(key) {
                set.bytes -= entry.charge;
            }
        }
    }
}
