//! Striped per-key locks, for layers and backends that serialize the
//! changes of one key within the process.

use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use tokio::sync::{OwnedRwLockReadGuard, OwnedRwLockWriteGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

const STRIPES: usize = 1024;

/// Move counters: few, so the handful of cache lines they fill stays in
/// the CPU's caches on the read path (a move makes the readers of the
/// other keys of its counter's stripe check again under the lock, which
/// costs them time, not correctness).
const MOVE_STRIPES: usize = 128;

/// Striped reader-writer locks by key: readers of a key share, a move or a
/// write of it excludes them. Unrelated keys rarely share a stripe.
#[derive(Debug)]
pub(crate) struct KeyLocks {
    stripes: Vec<Arc<RwLock<()>>>,
    /// Per stripe, a counter that is odd while a key of the stripe changes
    /// place (see [`KeyLocks::moving`]): readers that take no lock compare
    /// it before and after.
    moves: Vec<AtomicU32>,
}

impl KeyLocks {
    pub fn new() -> Self {
        KeyLocks {
            stripes: (0..STRIPES).map(|_| Arc::new(RwLock::new(()))).collect(),
            moves: (0..MOVE_STRIPES).map(|_| Default::default()).collect(),
        }
    }

    fn stripe(&self, key: &str) -> usize {
        let mut h = rustc_hash::FxHasher::default();
        key.hash(&mut h);
        (h.finish() as usize) % STRIPES
    }

    pub async fn read(&self, key: &str) -> RwLockReadGuard<'_, ()> {
        self.stripes[self.stripe(key)].read().await
    }

    pub async fn write(&self, key: &str) -> RwLockWriteGuard<'_, ()> {
        self.stripes[self.stripe(key)].write().await
    }

    /// The move counter of `key`'s stripe now: a read that saw an even
    /// value and sees the same one after it ran did not overlap a move.
    #[inline]
    pub fn move_count(&self, key: &str) -> u32 {
        self.moves[self.stripe(key) % MOVE_STRIPES].load(Ordering::Acquire)
    }

    /// Marks `key` as changing place until the returned token drops. The
    /// caller holds its exclusive lock.
    pub fn moving(&self, key: &str) -> MoveToken<'_> {
        let counter = &self.moves[self.stripe(key) % MOVE_STRIPES];
        counter.fetch_add(1, Ordering::AcqRel);
        MoveToken { counter }
    }

    /// The read lock of `key`, held for as long as the caller keeps it
    /// (a streamed write holds it until it publishes).
    pub async fn read_owned(&self, key: &str) -> OwnedRwLockReadGuard<()> {
        self.stripes[self.stripe(key)].clone().read_owned().await
    }

    /// The write lock of `key`, held for as long as the caller keeps it.
    pub async fn write_owned(&self, key: &str) -> OwnedRwLockWriteGuard<()> {
        self.stripes[self.stripe(key)].clone().write_owned().await
    }

    /// The read lock of `key` if no writer holds or waits for its stripe now.
    pub fn try_read(&self, key: &str) -> Option<RwLockReadGuard<'_, ()>> {
        self.stripes[self.stripe(key)].try_read().ok()
    }

    /// Read locks of several keys, taken in stripe order (see [`KeyLocks::write_many`]).
    pub async fn read_many(&self, keys: &[&str]) -> Vec<RwLockReadGuard<'_, ()>> {
        let mut guards = Vec::with_capacity(keys.len());
        for i in self.ordered(keys) {
            guards.push(self.stripes[i].read().await);
        }
        guards
    }

    fn ordered(&self, keys: &[&str]) -> Vec<usize> {
        let mut stripes: Vec<usize> = keys.iter().map(|k| self.stripe(k)).collect();
        stripes.sort_unstable();
        stripes.dedup();
        stripes
    }

    /// The write lock of `key` if nobody holds its stripe now.
    pub fn try_write(&self, key: &str) -> Option<RwLockWriteGuard<'_, ()>> {
        self.stripes[self.stripe(key)].try_write().ok()
    }

    /// Waits until every lock held now has been released once: whoever
    /// held a key's lock when this was called has finished with it.
    pub async fn barrier(&self) {
        for stripe in &self.stripes {
            drop(stripe.write().await);
        }
    }

    /// Write locks of several keys, taken in stripe order so that two
    /// callers never wait on each other in a cycle.
    pub async fn write_many(&self, keys: &[&str]) -> Vec<RwLockWriteGuard<'_, ()>> {
        let mut guards = Vec::with_capacity(keys.len());
        for i in self.ordered(keys) {
            guards.push(self.stripes[i].write().await);
        }
        guards
    }
}

/// See [`KeyLocks::moving`].
pub(crate) struct MoveToken<'a> {
    counter: &'a AtomicU32,
}

impl Drop for MoveToken<'_> {
    fn drop(&mut self) {
        self.counter.fetch_add(1, Ordering::AcqRel);
    }
}
