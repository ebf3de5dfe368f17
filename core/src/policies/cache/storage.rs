//! `CacheStorage`: the [`Storage`] that puts a [`CacheTier`] in front of a
//! primary backend.

use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::{self, StreamExt};

use super::coherence::{Coherence, Lookup, ReadTicket};
use super::lru::LruCacheTier;
use super::options::{CacheOptions, WriteMode};
use super::tier::{CacheTier, CachedValue};
use super::writeback::{Dirty, WriteBack};
use super::writer::CacheWriter;
use crate::error::{Error, Result};
use crate::key::Key;
use crate::metrics::StorageMetrics;
use crate::storage::{
    clamp_range, BatchOp, ByteStream, Capabilities, Condition, ListOptions, ListPage, MetadataChanges,
    ObjectMeta, Patch, PutOptions, Storage, ValueWriter,
};

/// Chunk size of streamed reads served from the cache.
const READ_CHUNK: usize = 1 << 20;
/// A `stat` that misses also caches the value when it is at most this large
/// (and at most `max_entry_bytes`): one more read of the primary, worth it
/// for small files whose `stat` precedes a read, not for `ls -l` of big ones.
pub const STAT_FILL_LIMIT_BYTES: u64 = 64 << 10;

/// A cache tier in front of a primary backend: the layer behind the
/// `PreferCache` policy. It is itself a [`Storage`], so it stacks.
///
/// **Reads** (`get`, `get_range`, `stat`, `read`) are served from the
/// write-back dirty set, then the tier (a hit, counted by
/// [`StorageMetrics::cache_hit`]; the primary is not called), else from the
/// primary (a miss, [`StorageMetrics::cache_miss`]), and a value of at most
/// `max_entry_bytes` read from the primary is cached whole (a `stat` caches
/// it up to [`STAT_FILL_LIMIT_BYTES`]). Ranges and streams of a cached
/// value are slices of it; a larger value is read from the primary, ranged
/// or streamed, and never held whole.
///
/// **Write-through** (the default): `put`, `delete`, `batch`, `rename` and
/// streamed `write` go to the primary first; then a put's value is cached
/// and other keys written are invalidated. A failed write leaves the key
/// invalidated, never holding the new value. A reader that read the primary
/// before a write cannot put its old value back into the cache afterwards
/// (the argument is in the [module documentation](crate::policies::cache#no-stale-fills)).
///
/// **Write-back** ([`WriteMode::Back`], details in the
/// [module documentation](crate::policies::cache#write-back)):
/// `put` and `delete` are acknowledged from a dirty set bounded by
/// `max_dirty_bytes` ([`dirty_bytes`](Self::dirty_bytes)), flushed by
/// [`sync`](Storage::sync), [`shutdown`](Self::shutdown), the
/// [`spawn_flusher`](Self::spawn_flusher) timer and a full set. `batch`,
/// `rename`, streamed `write` and conditional puts flush their keys and go
/// to the primary; `list` flushes the dirty keys under its prefix and lists
/// the primary. Capabilities then say `persistent: false`: acknowledged
/// writes are lost if the process dies before a flush.
///
/// **Failures of the tier** never fail an operation the primary can serve:
/// they are logged, counted ([`tier_errors`](Self::tier_errors)), and a key
/// whose invalidation failed bypasses the tier until one succeeds
/// ([module documentation](crate::policies::cache#tier-failures)).
///
/// [`name`](Storage::name) is `cache(PRIMARY)`. Errors name the innermost
/// backend that answered: the primary's name for what the primary refused,
/// the cache's for what the cache answered itself (a key deleted in the
/// write-back set, an inverted range, a full dirty set). Health is the
/// primary's, and so are the capabilities, except as said for write-back.
///
/// ```
/// use std::sync::Arc;
/// use tierfs_core::metrics::StorageMetrics;
/// use tierfs_core::policies::cache::{CacheOptions, CacheStorage, WriteMode};
/// use tierfs_core::{Key, MemoryStorage, PutOptions, Storage};
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let metrics = StorageMetrics::new();
/// let primary = Arc::new(MemoryStorage::new("main"));
/// let cache = CacheStorage::with_lru(primary.clone(), CacheOptions::default(), metrics.clone());
/// assert_eq!(cache.name(), "cache(main)");
///
/// let key = Key::new("docs/a.txt")?;
/// primary.put(&key, "v1".into(), PutOptions::default()).await?;
/// assert_eq!(&cache.get(&key).await?[..], b"v1"); // a miss: read from the primary, then cached
/// assert_eq!(&cache.get(&key).await?[..], b"v1"); // a hit
/// cache.put(&key, "v2".into(), PutOptions::default()).await?; // the primary first
/// assert_eq!(&primary.get(&key).await?[..], b"v2");
/// assert_eq!(&cache.get(&key).await?[..], b"v2");
/// let snap = metrics.snapshot();
/// assert_eq!((snap.cache_hits, snap.cache_misses), (2, 1));
///
/// // Write-back: acknowledged at once, in the primary after a flush.
/// let options = CacheOptions { write_mode: WriteMode::back(), ..CacheOptions::default() };
/// let cache = CacheStorage::with_lru(primary.clone(), options, metrics);
/// let _flusher = cache.spawn_flusher(); // flushes every second until the cache is gone
/// cache.put(&key, "v3".into(), PutOptions::default()).await?;
/// assert_eq!(&cache.get(&key).await?[..], b"v3");
/// assert!(cache.dirty_bytes() > 0);
/// cache.shutdown().await?; // flushes everything
/// assert_eq!(&primary.get(&key).await?[..], b"v3");
/// assert_eq!(cache.dirty_bytes(), 0);
/// # Ok::<_, tierfs_core::Error>(())
/// # }).unwrap();
/// ```
pub struct CacheStorage {
    pub(super) primary: Arc<dyn Storage>,
    pub(super) coherence: Arc<Coherence>,
    pub(super) options: CacheOptions,
    pub(super) metrics: Arc<StorageMetrics>,
    pub(super) write_back: Option<WriteBack>,
    name: String,
}

/// What the cache knows of a key before asking the primary.
enum Found {
    Value(Bytes, Arc<ObjectMeta>),
    Deleted,
    Miss { fill: bool },
}

impl CacheStorage {
    /// A cache over `primary` keeping values in `tier`, counting hits and
    /// misses in `metrics`. The options are used as given (check them with
    /// [`CacheOptions::validate`] first; the configuration path does).
    /// In write-back mode, start the flusher with
    /// [`spawn_flusher`](Self::spawn_flusher) and end with
    /// [`shutdown`](Self::shutdown).
    pub fn new(
        primary: Arc<dyn Storage>,
        tier: Arc<dyn CacheTier>,
        options: CacheOptions,
        metrics: Arc<StorageMetrics>,
    ) -> Arc<CacheStorage> {
        let write_back = match options.write_mode {
            WriteMode::Through => None,
            WriteMode::Back { max_dirty_bytes, flush_interval } => {
                Some(WriteBack::new(max_dirty_bytes, flush_interval))
            }
        };
        Arc::new(CacheStorage {
            name: format!("cache({})", primary.name()),
            primary,
            coherence: Arc::new(Coherence::new(tier)),
            options,
            metrics,
            write_back,
        })
    }

    /// A cache over `primary` with an in-process [`LruCacheTier`] sized by
    /// `options`.
    pub fn with_lru(
        primary: Arc<dyn Storage>,
        options: CacheOptions,
        metrics: Arc<StorageMetrics>,
    ) -> Arc<CacheStorage> {
        let tier = Arc::new(LruCacheTier::new(&options, metrics.clone()));
        CacheStorage::new(primary, tier, options, metrics)
    }

    /// The backend behind the cache.
    pub fn primary(&self) -> &Arc<dyn Storage> {
        &self.primary
    }

    /// The cache tier.
    pub fn tier(&self) -> &Arc<dyn CacheTier> {
        self.coherence.tier()
    }

    /// The options the cache was built with.
    pub fn options(&self) -> &CacheOptions {
        &self.options
    }

    /// Calls to the tier that failed so far (each was logged and survived).
    pub fn tier_errors(&self) -> u64 {
        self.coherence.errors()
    }

    /// Keys kept out of the tier because invalidating them failed.
    pub fn bypassed_keys(&self) -> usize {
        self.coherence.pending_keys()
    }

    /// The write-back set while writes may still be deferred.
    fn deferred(&self) -> Option<&WriteBack> {
        self.write_back.as_ref().filter(|wb| !wb.is_closed())
    }

    fn not_found(&self, key: &Key, op: &'static str) -> Error {
        Error::not_found(key.as_str()).with_backend(&self.name).with_operation(op)
    }

    fn context(&self, error: Error, key: &Key, op: &'static str) -> Error {
        error.or_key(key).with_backend(&self.name).with_operation(op)
    }

    /// `value`, as the primary stored it, if it is small enough to cache.
    pub(super) fn cacheable(&self, value: Bytes, stored: ObjectMeta) -> Option<CachedValue> {
        let len = value.len() as u64;
        (len <= self.options.max_entry_bytes && stored.size == len).then(|| CachedValue::new(value, stored))
    }

    async fn find(&self, key: &Key) -> Found {
        if let Some(found) = self.dirty(key) {
            return found;
        }
        match self.coherence.lookup(key).await {
            Lookup::Hit(cached) => {
                self.metrics.cache_hit();
                Found::Value(cached.value, cached.meta)
            }
            Lookup::Miss => {
                self.metrics.cache_miss();
                Found::Miss { fill: true }
            }
            Lookup::Bypass => {
                self.metrics.cache_miss();
                Found::Miss { fill: false }
            }
        }
    }

    /// The write-back entry of `key`, if one is waiting (a hit).
    fn dirty(&self, key: &Key) -> Option<Found> {
        let dirty = self.write_back.as_ref()?.lookup(key)?;
        self.metrics.cache_hit();
        Some(match dirty {
            Dirty::Put { value, meta } => Found::Value(value, meta),
            Dirty::Deleted => Found::Deleted,
        })
    }

    /// A miss: the value and its metadata from the primary in one call,
    /// filled into the tier when `fill` and small enough.
    async fn read_through(&self, key: &Key, fill: bool) -> Result<(Arc<ObjectMeta>, Bytes)> {
        let ticket = self.coherence.read_ticket(key);
        let (meta, value) = self.primary.get_with_meta(key).await?;
        let meta = Arc::new(meta);
        let size = value.len() as u64;
        if fill && size <= self.options.max_entry_bytes && meta.size == size {
            let cached = CachedValue { value: value.clone(), meta: meta.clone() };
            self.coherence.fill(key, &ticket, cached).await;
        }
        Ok((meta, value))
    }

    /// Reads a value of at most `max_entry_bytes` whole from the primary and
    /// caches it; `None` when it is larger or the primary failed (the
    /// caller then asks the primary for what it needs, which reports the
    /// error as its own).
    async fn fetch_small(&self, key: &Key, ticket: &ReadTicket) -> Option<Bytes> {
        let meta = self.primary.stat(key).await.ok()?;
        if meta.size > self.options.max_entry_bytes {
            return None;
        }
        let value = self.primary.get(key).await.ok()?;
        if value.len() as u64 != meta.size {
            return None;
        }
        self.coherence.fill(key, ticket, CachedValue::new(value.clone(), meta)).await;
        Some(value)
    }

    /// Runs a write of `keys` on the primary, invalidating them around it.
    async fn through<T>(&self, keys: &[&Key], write: impl Future<Output = Result<T>> + Send) -> Result<T> {
        let mut tickets = Vec::with_capacity(keys.len());
        for key in keys {
            tickets.push(self.coherence.begin_write(key).await);
        }
        let result = write.await;
        for ticket in tickets {
            self.coherence.end_write(ticket, None).await;
        }
        result
    }

    async fn put_through(&self, key: &Key, value: Bytes, options: PutOptions) -> Result<ObjectMeta> {
        let ticket = self.coherence.begin_write(key).await;
        match self.primary.put(key, value.clone(), options).await {
            Ok(stored) => {
                let cached = self.cacheable(value, stored.clone());
                self.coherence.end_write(ticket, cached).await;
                Ok(stored)
            }
            Err(e) => {
                self.coherence.end_write(ticket, None).await;
                Err(e)
            }
        }
    }
}

/// `value` (or `range` of it) as a stream of chunks sharing its buffer.
fn stream_of(value: Bytes) -> ByteStream {
    let chunks: Vec<Bytes> = (0..value.len())
        .step_by(READ_CHUNK)
        .map(|start| value.slice(start..(start + READ_CHUNK).min(value.len())))
        .collect();
    stream::iter(chunks.into_iter().map(Ok)).boxed()
}

impl fmt::Debug for CacheStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheStorage")
            .field("name", &self.name)
            .field("options", &self.options)
            .field("tier", &self.coherence)
            .field("dirty_keys", &self.dirty_keys())
            .field("dirty_bytes", &self.dirty_bytes())
            .finish()
    }
}

impl Drop for CacheStorage {
    fn drop(&mut self) {
        let (keys, bytes) = (self.dirty_keys(), self.dirty_bytes());
        if keys > 0 {
            tracing::error!(
                cache = %self.name,
                dirty_keys = keys,
                dirty_bytes = bytes,
                "a write-back cache was dropped holding writes never flushed to the primary: they are lost; call shutdown() first"
            );
        }
    }
}

#[async_trait]
impl Storage for CacheStorage {
    fn name(&self) -> &str {
        &self.name
    }

    fn capabilities(&self) -> Capabilities {
        let mut capabilities = self.primary.capabilities();
        if self.write_back.is_some() {
            capabilities.persistent = false;
        }
        capabilities
    }

    fn is_healthy(&self) -> bool {
        self.primary.is_healthy()
    }

    /// Written out rather than `async`: a hit in an in-process tier (or
    /// in the write-back set) is answered in the call
    /// ([`Storage::get_now`]), and the future returned is a ready one. A
    /// miss runs when the future is polled.
    fn get<'a, 'b, 'c>(&'a self, key: &'b Key) -> BoxFuture<'c, Result<Bytes>>
    where
        'a: 'c,
        'b: 'c,
        Self: 'c,
    {
        if let Some(answer) = self.get_now(key) {
            return Box::pin(std::future::ready(answer));
        }
        Box::pin(async move {
            match self.find(key).await {
                Found::Value(value, _) => Ok(value),
                Found::Deleted => Err(self.not_found(key, "get")),
                Found::Miss { fill } => self.read_through(key, fill).await.map(|(_, value)| value),
            }
        })
    }

    /// A hit answered at once: a write-back entry, or an entry of a tier
    /// that answers without waiting (LRU), its value alone. `None` for the
    /// rest, which `get` looks up (and records) when polled.
    fn get_now(&self, key: &Key) -> Option<Result<Bytes>> {
        match self.dirty(key) {
            Some(Found::Value(value, _)) => return Some(Ok(value)),
            Some(_) => return Some(Err(self.not_found(key, "get"))),
            None => {}
        }
        let value = self.coherence.hit_now(key)?;
        self.metrics.cache_hit();
        Some(Ok(value))
    }

    async fn get_with_meta(&self, key: &Key) -> Result<(ObjectMeta, Bytes)> {
        match self.find(key).await {
            Found::Value(value, meta) => Ok(((*meta).clone(), value)),
            Found::Deleted => Err(self.not_found(key, "get")),
            Found::Miss { fill } => {
                self.read_through(key, fill).await.map(|(meta, value)| (Arc::unwrap_or_clone(meta), value))
            }
        }
    }

    async fn get_range(&self, key: &Key, range: Range<u64>) -> Result<Bytes> {
        // An inverted range is refused before anything is read.
        clamp_range(&range, u64::MAX).map_err(|e| self.context(e, key, "get_range"))?;
        let value = match self.find(key).await {
            Found::Value(value, _) => value,
            Found::Deleted => return Err(self.not_found(key, "get_range")),
            Found::Miss { fill } => {
                let ticket = self.coherence.read_ticket(key);
                match fill {
                    true => match self.fetch_small(key, &ticket).await {
                        Some(value) => value,
                        None => return self.primary.get_range(key, range).await,
                    },
                    false => return self.primary.get_range(key, range).await,
                }
            }
        };
        let range = clamp_range(&range, value.len() as u64).map_err(|e| self.context(e, key, "get_range"))?;
        Ok(value.slice(range))
    }

    async fn put(&self, key: &Key, value: Bytes, options: PutOptions) -> Result<ObjectMeta> {
        if let Some(wb) = self.deferred() {
            if !options.if_not_exists && wb.fits(key, &value, &options.metadata) {
                let (state, meta) = wb.put_state(key, value, options.metadata);
                self.insert_dirty(wb, key, state, "put").await?;
                return Ok(meta);
            }
        }
        // Write-through, or a put that must reach the primary now.
        self.flush_keys(&[key]).await?;
        self.put_through(key, value, options).await
    }

    async fn delete(&self, key: &Key) -> Result<()> {
        if let Some(wb) = self.deferred() {
            return self.insert_dirty(wb, key, Dirty::Deleted, "delete").await;
        }
        self.flush_keys(&[key]).await?;
        self.through(&[key], self.primary.delete(key)).await
    }

    async fn stat(&self, key: &Key) -> Result<ObjectMeta> {
        match self.find(key).await {
            Found::Value(_, meta) => Ok((*meta).clone()),
            Found::Deleted => Err(self.not_found(key, "stat")),
            Found::Miss { fill } => {
                let ticket = self.coherence.read_ticket(key);
                let meta = self.primary.stat(key).await?;
                if fill && meta.size <= STAT_FILL_LIMIT_BYTES.min(self.options.max_entry_bytes) {
                    match self.primary.get(key).await {
                        Ok(value) if value.len() as u64 == meta.size => {
                            self.coherence.fill(key, &ticket, CachedValue::new(value, meta.clone())).await
                        }
                        Ok(_) => {}
                        Err(e) => {
                            tracing::debug!(key = %key, error = %e, "not cached: get after stat failed")
                        }
                    }
                }
                Ok(meta)
            }
        }
    }

    async fn list(&self, options: &ListOptions) -> Result<ListPage> {
        if self.write_back.is_some() {
            options.validate().map_err(|e| e.with_backend(&self.name).with_operation("list"))?;
            let prefix = options.prefix.as_str();
            self.flush_where(&|k| k.as_str().starts_with(prefix)).await?;
        }
        self.primary.list(options).await
    }

    async fn batch(&self, ops: Vec<BatchOp>) -> Result<()> {
        let keys: Vec<Key> = ops.iter().map(|op| op.key().clone()).collect();
        if self.write_back.is_some() {
            let set: HashSet<&Key> = keys.iter().collect();
            self.flush_where(&|k| set.contains(k)).await?;
        }
        let refs: Vec<&Key> = keys.iter().collect();
        self.through(&refs, self.primary.batch(ops)).await
    }

    async fn read(&self, key: &Key, range: Option<Range<u64>>) -> Result<ByteStream> {
        if let Some(range) = &range {
            clamp_range(range, u64::MAX).map_err(|e| self.context(e, key, "read"))?;
        }
        let value = match self.find(key).await {
            Found::Value(value, _) => value,
            Found::Deleted => return Err(self.not_found(key, "read")),
            Found::Miss { fill } => {
                let ticket = self.coherence.read_ticket(key);
                match fill {
                    true => match self.fetch_small(key, &ticket).await {
                        Some(value) => value,
                        None => return self.primary.read(key, range).await,
                    },
                    false => return self.primary.read(key, range).await,
                }
            }
        };
        let value = match range {
            Some(range) => value
                .slice(clamp_range(&range, value.len() as u64).map_err(|e| self.context(e, key, "read"))?),
            None => value,
        };
        Ok(stream_of(value))
    }

    async fn write(&self, key: &Key, options: PutOptions) -> Result<Box<dyn ValueWriter>> {
        self.flush_keys(&[key]).await?;
        let inner = self.primary.write(key, options).await?;
        Ok(Box::new(CacheWriter::new(inner, self.coherence.clone(), key.clone())))
    }

    async fn rename(&self, from: &Key, to: &Key) -> Result<()> {
        self.flush_keys(&[from, to]).await?;
        self.through(&[from, to], self.primary.rename(from, to)).await
    }

    /// In the dirty set when the key is dirty (write-back); otherwise on
    /// the primary, after flushing the key, with the cached copy dropped.
    async fn set_metadata(
        &self,
        key: &Key,
        changes: &MetadataChanges,
        condition: &Condition,
    ) -> Result<ObjectMeta> {
        if let Some(wb) = self.deferred() {
            if let Some(answer) = wb.update_metadata(key, changes, condition) {
                return answer.map_err(|e| self.context(e, key, "set_metadata"));
            }
        }
        self.flush_keys(&[key]).await?;
        self.through(&[key], self.primary.set_metadata(key, changes, condition)).await
    }

    async fn patch(&self, key: &Key, patch: &Patch, condition: &Condition) -> Result<ObjectMeta> {
        // A dirty put is patched in the dirty set; otherwise the primary
        // is, and the cached copy dropped by the write through.
        if let Some(wb) = self.deferred() {
            if let Some(answer) = wb.patch(key, patch, condition) {
                return answer.map_err(|e| self.context(e, key, "patch"));
            }
        }
        self.flush_keys(&[key]).await?;
        self.through(&[key], self.primary.patch(key, patch, condition)).await
    }

    async fn sync(&self) -> Result<()> {
        let flushed = self.flush_all().await;
        let synced = self.primary.sync().await;
        flushed.and(synced)
    }
}

impl CacheStorage {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryStorage;

    /// A hit shares the cached buffer (its speed is measured by
    /// `benches/policies.rs`, not here).
    #[tokio::test]
    async fn a_hit_copies_nothing() {
        for options in
            [CacheOptions::default(), CacheOptions { write_mode: WriteMode::back(), ..Default::default() }]
        {
            let cache =
                CacheStorage::with_lru(Arc::new(MemoryStorage::new("m")), options, StorageMetrics::new());
            let key = Key::new("hot/value").expect("key");
            cache.put(&key, Bytes::from(vec![7u8; 1 << 20]), PutOptions::default()).await.expect("put");
            cache.sync().await.expect("sync");
            let first = cache.get(&key).await.expect("get");
            for _ in 0..3 {
                let value = cache.get(&key).await.expect("get");
                assert_eq!(
                    value.as_ptr(),
                    first.as_ptr(),
                    "{:?}: a hit copied the value",
                    options.write_mode
                );
            }
        }
    }

    #[tokio::test]
    async fn provisional_versions_change_on_every_write_back_put() {
        let options = CacheOptions { write_mode: WriteMode::back(), ..Default::default() };
        let cache = CacheStorage::with_lru(Arc::new(MemoryStorage::new("m")), options, StorageMetrics::new());
        let key = Key::new("v").expect("key");
        let a = cache.put(&key, Bytes::from_static(b"1"), PutOptions::default()).await.expect("put");
        let b = cache.put(&key, Bytes::from_static(b"1"), PutOptions::default()).await.expect("put");
        assert_ne!(a.version, b.version);
        assert_eq!(cache.stat(&key).await.expect("stat").version, b.version);
        cache.shutdown().await.expect("shutdown");
        // After shutdown, writes go straight to the primary.
        cache.put(&key, Bytes::from_static(b"2"), PutOptions::default()).await.expect("put");
        assert_eq!(cache.dirty_keys(), 0);
        assert_eq!(&cache.primary().get(&key).await.expect("get")[..], b"2");
    }
}
