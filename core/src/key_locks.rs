//! Striped per-key locks, for layers and backends that serialize the
//! changes of one key within the process.

use std::hash::{Hash, Hasher};

use tokio::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

const STRIPES: usize = 1024;

/// Striped reader-writer locks by key: readers of a key share, a move or a
/// write of it excludes them. Unrelated keys rarely share a stripe.
#[derive(Debug)]
pub(crate) struct KeyLocks {
    stripes: Vec<RwLock<()>>,
}

impl KeyLocks {
    pub fn new() -> Self {
        KeyLocks { stripes: (0..STRIPES).map(|_| RwLock::new(())).collect() }
    }

    fn stripe(&self, key: &str) -> usize {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        key.hash(&mut h);
        (h.finish() as usize) % STRIPES
    }

    pub async fn read(&self, key: &str) -> RwLockReadGuard<'_, ()> {
        self.stripes[self.stripe(key)].read().await
    }

    pub async fn write(&self, key: &str) -> RwLockWriteGuard<'_, ()> {
        self.stripes[self.stripe(key)].write().await
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
        let mut stripes: Vec<usize> = keys.iter().map(|k| self.stripe(k)).collect();
        stripes.sort_unstable();
        stripes.dedup();
        let mut guards = Vec::with_capacity(stripes.len());
        for i in stripes {
            guards.push(self.stripes[i].write().await);
        }
        guards
    }
}
