//! `CacheTier`: where cached values are kept (in process, Redis, ...).

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

use crate::error::Result;
use crate::key::Key;
use crate::storage::ObjectMeta;

/// A cached value with what `stat` says about it, so that `stat` is served
/// from the cache too. Cloning shares both (two reference counts, no copy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedValue {
    /// The whole value.
    pub value: Bytes,
    /// Its size, time, version and metadata, as the primary reported them.
    pub meta: Arc<ObjectMeta>,
}

impl CachedValue {
    /// A cached value; `meta.size` should equal `value.len()`.
    pub fn new(value: Bytes, meta: ObjectMeta) -> Self {
        CachedValue { value, meta: Arc::new(meta) }
    }

    /// Bytes of the value, key, version and metadata: what holding this
    /// entry costs, before per-entry bookkeeping.
    pub fn footprint(&self) -> u64 {
        let meta = &self.meta;
        let map: usize = meta.metadata.iter().map(|(k, v)| k.len() + v.len()).sum();
        (self.value.len() + meta.key.len() + meta.version.len() + map) as u64
    }
}

/// A store of cached values in front of a primary backend, used by
/// [`CacheStorage`](super::CacheStorage).
///
/// Contract for implementers:
/// - A tier may drop any entry at any time (capacity, expiry, restart); a
///   missing entry is `Ok(None)`, never an error.
/// - Per key, operations take effect in the order they complete: a `get`
///   that starts after an `invalidate` (or `put`) returned does not see the
///   entry it replaced. The cache's protection against stale fills relies
///   on this.
/// - `put` replaces the entry whole. A tier that declines to hold a value
///   (too large, say) must still drop the previous entry of that key.
/// - Errors are never fatal: `CacheStorage` logs them, serves the operation
///   from the primary, and keeps a key whose invalidation failed out of the
///   cache until an invalidation succeeds. Report failures rather than
///   retrying at length: every read waits for the tier.
#[async_trait]
pub trait CacheTier: Send + Sync + Debug {
    /// A short name for logs (`lru`, `redis`).
    fn name(&self) -> &str;

    /// The entry of `key`, if held and not expired.
    async fn get(&self, key: &Key) -> Result<Option<CachedValue>>;

    /// Holds `value` as the entry of `key`, replacing any previous one.
    async fn put(&self, key: &Key, value: CachedValue) -> Result<()>;

    /// Drops the entry of `key`; dropping a missing entry succeeds.
    async fn invalidate(&self, key: &Key) -> Result<()>;

    /// Drops every entry.
    async fn clear(&self) -> Result<()>;

    /// [`CacheTier::get`] answered at once, for a tier that can look up
    /// without waiting (in-process); `None` when it cannot (a remote tier),
    /// and the caller awaits `get`.
    fn get_now(&self, _key: &Key) -> Option<Result<Option<CachedValue>>> {
        None
    }

    /// [`CacheTier::put`] done at once, for a tier that can store without
    /// waiting (in-process); a tier that cannot hands the value back
    /// (`Err`), and the caller awaits `put`.
    fn put_now(&self, _key: &Key, value: CachedValue) -> std::result::Result<Result<()>, CachedValue> {
        Err(value)
    }

    /// Like [`CacheTier::get_now`], the value alone (a read that does not
    /// need the metadata leaves it untouched).
    fn value_now(&self, key: &Key) -> Option<Result<Option<Bytes>>> {
        self.get_now(key).map(|answer| answer.map(|cached| cached.map(|c| c.value)))
    }

    /// Whether a live entry of `key` is held, answered at once without
    /// touching recency; `None` when the tier cannot tell without a round
    /// trip (a remote tier). Used by `explain`.
    fn holds_now(&self, _key: &Key) -> Option<bool> {
        None
    }
}
