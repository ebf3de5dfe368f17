//! `LruCacheTier`: an in-process cache tier, least recently used first out,
//! bounded in bytes.

use std::sync::Arc;
use std::time::Duration;

// tokio's clock, which is std's except in tests that pause it.
use tokio::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;
use lru::LruCache;
use parking_lot::Mutex;

use super::options::CacheOptions;
use super::tier::{CacheTier, CachedValue};
use crate::error::Result;
use crate::key::Key;
use crate::metrics::StorageMetrics;

/// Bytes charged per entry on top of [`CachedValue::footprint`]: the map
/// node, list links, reference counts and the expiry time.
pub const ENTRY_OVERHEAD_BYTES: u64 = 128;

#[derive(Debug)]
struct Slot {
    value: CachedValue,
    charge: u64,
    expires: Option<Instant>,
}

impl Slot {
    fn expired(&self, now: impl FnOnce() -> Instant) -> bool {
        self.expires.is_some_and(|at| now() >= at)
    }
}

#[derive(Debug)]
struct State {
    map: LruCache<Key, Slot>,
    bytes: u64,
}

/// An in-process [`CacheTier`]: entries in an LRU list (the `lru` crate)
/// under one `parking_lot` mutex, bounded in bytes.
///
/// - Each entry is charged its [`footprint`](CachedValue::footprint) plus
///   [`ENTRY_OVERHEAD_BYTES`]; the total never passes `capacity_bytes`.
///   Inserting evicts least recently used entries first, each counted by
///   [`StorageMetrics::cache_eviction`].
/// - Values over `max_entry_bytes` are not held (a `put` of one drops the
///   previous entry of the key).
/// - With a `ttl`, an entry expires that long after it was put; an expired
///   entry is never returned and is dropped when next touched or evicted.
/// - A hit clones two reference counts and copies nothing; the mutex is
///   held for one hash lookup.
///
/// It never fails.
///
/// ```
/// use bytes::Bytes;
/// use tierfs_core::metrics::StorageMetrics;
/// use tierfs_core::policies::cache::{CacheOptions, CacheTier, CachedValue, LruCacheTier};
/// use tierfs_core::{Key, ObjectMeta};
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let tier = LruCacheTier::new(&CacheOptions::with_capacity(1 << 20), StorageMetrics::new());
/// let key = Key::new("k")?;
/// let meta = ObjectMeta {
///     key: key.clone(),
///     size: 2,
///     modified: std::time::SystemTime::now(),
///     version: "1".into(),
///     metadata: Default::default(),
/// };
/// tier.put(&key, CachedValue::new(Bytes::from_static(b"hi"), meta)).await?;
/// assert_eq!(tier.get(&key).await?.unwrap().value, Bytes::from_static(b"hi"));
/// assert!(tier.cached_bytes() <= 1 << 20);
/// # Ok::<_, tierfs_core::Error>(())
/// # }).unwrap();
/// ```
#[derive(Debug)]
pub struct LruCacheTier {
    state: Mutex<State>,
    capacity_bytes: u64,
    max_entry_bytes: u64,
    ttl: Option<Duration>,
    metrics: Arc<StorageMetrics>,
}

impl LruCacheTier {
    /// An empty tier with the capacity, largest entry and TTL of
    /// `options`, counting evictions in `metrics`.
    pub fn new(options: &CacheOptions, metrics: Arc<StorageMetrics>) -> Self {
        LruCacheTier {
            state: Mutex::new(State { map: LruCache::unbounded(), bytes: 0 }),
            capacity_bytes: options.capacity_bytes,
            max_entry_bytes: options.max_entry_bytes,
            ttl: options.ttl,
            metrics,
        }
    }

    /// `take` of the live entry of `key`, marked most recently used; an
    /// expired one is dropped.
    fn lookup<T>(&self, key: &Key, take: impl FnOnce(&Slot) -> T) -> Option<T> {
        let mut state = self.state.lock();
        match state.map.get(key.as_str()) {
            None => return None,
            Some(slot) if !slot.expired(Instant::now) => return Some(take(slot)),
            Some(_) => {}
        }
        // Expired: drop it now, and free it outside the lock.
        let slot = state.map.pop(key.as_str());
        if let Some(slot) = &slot {
            state.bytes -= slot.charge;
        }
        drop(state);
        drop(slot);
        None
    }

    /// Holds `value` as the entry of `key`, evicting least recently used
    /// entries to stay within the byte bound.
    fn insert(&self, key: &Key, value: CachedValue) {
        let charge = value.footprint() + ENTRY_OVERHEAD_BYTES;
        let fits = value.value.len() as u64 <= self.max_entry_bytes && charge <= self.capacity_bytes;
        let expires = self.ttl.and_then(|ttl| Instant::now().checked_add(ttl));
        // Dropped after the lock is released: freeing large buffers takes time.
        let mut released = Vec::new();
        {
            let mut state = self.state.lock();
            if let Some(old) = state.map.pop(key.as_str()) {
                state.bytes -= old.charge;
                released.push(old);
            }
            if !fits {
                return;
            }
            while state.bytes + charge > self.capacity_bytes {
                let Some((_, victim)) = state.map.pop_lru() else { break };
                state.bytes -= victim.charge;
                if !victim.expired(Instant::now) {
                    self.metrics.cache_eviction();
                }
                released.push(victim);
            }
            state.bytes += charge;
            state.map.put(key.clone(), Slot { value, charge, expires });
        }
        drop(released);
    }

    /// Bytes charged for the entries held now (at most the capacity).
    pub fn cached_bytes(&self) -> u64 {
        self.state.lock().bytes
    }

    /// Entries held now, expired ones not yet dropped included.
    pub fn len(&self) -> usize {
        self.state.lock().map.len()
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The byte bound.
    pub fn capacity_bytes(&self) -> u64 {
        self.capacity_bytes
    }
}

#[async_trait]
impl CacheTier for LruCacheTier {
    fn name(&self) -> &str {
        "lru"
    }

    fn holds_now(&self, key: &Key) -> Option<bool> {
        let state = self.state.lock();
        Some(state.map.peek(key.as_str()).is_some_and(|slot| !slot.expired(Instant::now)))
    }

    async fn get(&self, key: &Key) -> Result<Option<CachedValue>> {
        Ok(self.lookup(key, |slot| slot.value.clone()))
    }

    fn get_now(&self, key: &Key) -> Option<Result<Option<CachedValue>>> {
        Some(Ok(self.lookup(key, |slot| slot.value.clone())))
    }

    fn value_now(&self, key: &Key) -> Option<Result<Option<Bytes>>> {
        Some(Ok(self.lookup(key, |slot| slot.value.value.clone())))
    }

    async fn put(&self, key: &Key, value: CachedValue) -> Result<()> {
        self.insert(key, value);
        Ok(())
    }

    fn put_now(&self, key: &Key, value: CachedValue) -> std::result::Result<Result<()>, CachedValue> {
        self.insert(key, value);
        Ok(Ok(()))
    }

    async fn invalidate(&self, key: &Key) -> Result<()> {
        let removed = {
            let mut state = self.state.lock();
            let removed = state.map.pop(key.as_str());
            if let Some(slot) = &removed {
                state.bytes -= slot.charge;
            }
            removed
        };
        drop(removed);
        Ok(())
    }

    async fn clear(&self) -> Result<()> {
        let old = {
            let mut state = self.state.lock();
            state.bytes = 0;
            std::mem::replace(&mut state.map, LruCache::unbounded())
        };
        drop(old);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use bytes::Bytes;

    use super::*;
    use crate::storage::ObjectMeta;

    fn cv(key: &str, len: usize) -> (Key, CachedValue) {
        let key = Key::new(key).expect("test key");
        let meta = ObjectMeta {
            key: key.clone(),
            size: len as u64,
            modified: SystemTime::now(),
            version: "1".into(),
            metadata: Default::default(),
        };
        (key.clone(), CachedValue::new(Bytes::from(vec![7u8; len]), meta))
    }

    fn tier(capacity: u64, max_entry: u64, ttl: Option<Duration>) -> (LruCacheTier, Arc<StorageMetrics>) {
        let metrics = StorageMetrics::new();
        let options =
            CacheOptions { max_entry_bytes: max_entry, ttl, ..CacheOptions::with_capacity(capacity) };
        (LruCacheTier::new(&options, metrics.clone()), metrics)
    }

    #[tokio::test]
    async fn bounded_in_bytes_and_evicts_lru() {
        let (t, metrics) = tier(10_000, 5_000, None);
        for i in 0..20 {
            let (k, v) = cv(&format!("k{i}"), 1000);
            t.put(&k, v).await.unwrap();
            assert!(t.cached_bytes() <= 10_000);
        }
        // Each entry costs 1000 + key + version + overhead, so 8 fit.
        assert_eq!(t.len(), 8);
        assert_eq!(metrics.snapshot().cache_evictions, 12);
        assert!(t.get(&Key::new("k0").unwrap()).await.unwrap().is_none());
        assert!(t.get(&Key::new("k19").unwrap()).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn recently_used_survives() {
        let (t, _) = tier(3 * (1000 + 2 + 1 + ENTRY_OVERHEAD_BYTES), 5_000, None);
        for k in ["a", "b", "c"] {
            let (k, v) = cv(k, 1000);
            t.put(&k, v).await.unwrap();
        }
        assert!(t.get(&Key::new("a").unwrap()).await.unwrap().is_some());
        let (k, v) = cv("d", 1000);
        t.put(&k, v).await.unwrap();
        assert!(t.get(&Key::new("a").unwrap()).await.unwrap().is_some());
        assert!(t.get(&Key::new("b").unwrap()).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn oversized_put_drops_previous_entry() {
        let (t, _) = tier(100_000, 1000, None);
        let (k, small) = cv("k", 10);
        t.put(&k, small).await.unwrap();
        let (_, big) = cv("k", 2000);
        t.put(&k, big).await.unwrap();
        assert!(t.get(&k).await.unwrap().is_none());
        assert_eq!(t.cached_bytes(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn ttl_expires() {
        let (t, metrics) = tier(100_000, 1000, Some(Duration::from_millis(30)));
        let (k, v) = cv("k", 10);
        t.put(&k, v).await.unwrap();
        tokio::time::advance(Duration::from_millis(29)).await;
        assert!(t.get(&k).await.unwrap().is_some());
        tokio::time::advance(Duration::from_millis(2)).await;
        assert!(t.get(&k).await.unwrap().is_none());
        assert_eq!(t.cached_bytes(), 0);
        assert_eq!(metrics.snapshot().cache_evictions, 0);
    }

    #[tokio::test]
    async fn invalidate_and_clear() {
        let (t, _) = tier(100_000, 1000, None);
        for k in ["a", "b"] {
            let (k, v) = cv(k, 10);
            t.put(&k, v).await.unwrap();
        }
        t.invalidate(&Key::new("a").unwrap()).await.unwrap();
        t.invalidate(&Key::new("missing").unwrap()).await.unwrap();
        assert_eq!(t.len(), 1);
        t.clear().await.unwrap();
        assert!(t.is_empty());
        assert_eq!(t.cached_bytes(), 0);
    }
}
