//! Scenarios of `CacheStorage`: the behaviour suite through the cache in
//! both write modes, hits and misses, invalidation, expiry, eviction, a
//! failing tier, write-back through outages and shutdowns, the dirty-set
//! bound ([`write_back`]), and concurrent readers and writers.

mod write_back;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::TryStreamExt;
use tierfs_core::layers::{FaultHandle, FaultStorage};
use tierfs_core::metrics::StorageMetrics;
use tierfs_core::policies::cache::{
    CacheConfig, CacheOptions, CacheStorage, CacheTier, CachedValue, LruCacheTier, WriteConfig, WriteMode,
};
use tierfs_core::{
    collect_stream, BatchOp, Error, ErrorKind, Key, ListOptions, LocalStorage, MemoryStorage, PutOptions,
    Storage, StorageExt,
};
use tierfs_tests::behaviour::{expect_kind, key};
use tierfs_tests::Fixture;

const MIB: u64 = 1 << 20;

fn write_back(max_dirty_bytes: u64) -> CacheOptions {
    CacheOptions {
        write_mode: WriteMode::Back { max_dirty_bytes, flush_interval: Duration::from_secs(1) },
        ..CacheOptions::default()
    }
}

/// A tier that fails every call, as an unreachable Redis would.
#[derive(Debug, Default)]
struct FailingTier {
    calls: AtomicU64,
}

type TierFuture<'a, T> = Pin<Box<dyn Future<Output = tierfs_core::Result<T>> + Send + 'a>>;

impl FailingTier {
    fn fail<'a, T: 'a>(&'a self, op: &'static str) -> TierFuture<'a, T> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            Err(Error::new(ErrorKind::Unavailable, "injected: the cache tier is unreachable")
                .with_backend("failing-tier")
                .with_operation(op))
        })
    }
}

// `CacheTier` is an `async_trait`; this crate does not depend on the macro,
// so the methods are written in the form it expands to.
impl CacheTier for FailingTier {
    fn name(&self) -> &str {
        "failing"
    }

    fn get<'life0, 'life1, 'async_trait>(
        &'life0 self,
        _key: &'life1 Key,
    ) -> TierFuture<'async_trait, Option<CachedValue>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        self.fail("get")
    }

    fn put<'life0, 'life1, 'async_trait>(
        &'life0 self,
        _key: &'life1 Key,
        _value: CachedValue,
    ) -> TierFuture<'async_trait, ()>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        self.fail("put")
    }

    fn invalidate<'life0, 'life1, 'async_trait>(
        &'life0 self,
        _key: &'life1 Key,
    ) -> TierFuture<'async_trait, ()>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        self.fail("invalidate")
    }

    fn clear<'life0, 'async_trait>(&'life0 self) -> TierFuture<'async_trait, ()>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        self.fail("clear")
    }
}

/// An in-process tier whose `put`, `invalidate` and `clear` can be made to
/// fail, as a Redis that accepts reads but times out on writes.
#[derive(Debug)]
struct FlakyTier {
    inner: LruCacheTier,
    fail_writes: AtomicBool,
    failing: FailingTier,
}

impl CacheTier for FlakyTier {
    fn name(&self) -> &str {
        "flaky"
    }

    fn get<'life0, 'life1, 'async_trait>(
        &'life0 self,
        key: &'life1 Key,
    ) -> TierFuture<'async_trait, Option<CachedValue>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        self.inner.get(key)
    }

    fn put<'life0, 'life1, 'async_trait>(
        &'life0 self,
        key: &'life1 Key,
        value: CachedValue,
    ) -> TierFuture<'async_trait, ()>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        match self.fail_writes.load(Ordering::SeqCst) {
            true => self.failing.fail("put"),
            false => self.inner.put(key, value),
        }
    }

    fn invalidate<'life0, 'life1, 'async_trait>(
        &'life0 self,
        key: &'life1 Key,
    ) -> TierFuture<'async_trait, ()>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        match self.fail_writes.load(Ordering::SeqCst) {
            true => self.failing.fail("invalidate"),
            false => self.inner.invalidate(key),
        }
    }

    fn clear<'life0, 'async_trait>(&'life0 self) -> TierFuture<'async_trait, ()>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        match self.fail_writes.load(Ordering::SeqCst) {
            true => self.failing.fail("clear"),
            false => self.inner.clear(),
        }
    }
}

/// The behaviour suite through a write-through cache over the local backend.
mod write_through_local {
    use super::*;
    tierfs_tests::behaviour_tests!(async {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStorage::open("local", dir.path(), Default::default()).unwrap();
        let cache = CacheStorage::with_lru(Arc::new(store), CacheOptions::default(), StorageMetrics::new());
        Fixture::new(cache, vec![Box::new(dir)])
    });
}

/// The behaviour suite through a write-back cache over the memory backend,
/// with a dirty set small enough that full-set flushes happen.
mod write_back_memory {
    use super::*;
    tierfs_tests::behaviour_tests!(async {
        let primary = Arc::new(MemoryStorage::new("memory"));
        Fixture::new(CacheStorage::with_lru(primary, write_back(2 * MIB), StorageMetrics::new()), vec![])
    });
}

/// The behaviour suite through a cache whose tier fails every call.
mod failing_tier_local {
    use super::*;
    tierfs_tests::behaviour_tests!(async {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStorage::open("local", dir.path(), Default::default()).unwrap();
        let tier = Arc::new(FailingTier::default());
        let cache = CacheStorage::new(Arc::new(store), tier, CacheOptions::default(), StorageMetrics::new());
        Fixture::new(cache, vec![Box::new(dir)])
    });
}

/// A write-through cache over a fault-injecting memory backend.
struct Stack {
    cache: Arc<CacheStorage>,
    lru: Arc<LruCacheTier>,
    memory: MemoryStorage,
    faults: FaultHandle,
    metrics: Arc<StorageMetrics>,
}

fn stack(options: CacheOptions) -> Stack {
    let memory = MemoryStorage::new("main");
    let (faulty, faults) = FaultStorage::wrap(Arc::new(memory.clone()));
    let metrics = StorageMetrics::new();
    let lru = Arc::new(LruCacheTier::new(&options, metrics.clone()));
    let cache = CacheStorage::new(faulty, lru.clone(), options, metrics.clone());
    Stack { cache, lru, memory, faults, metrics }
}

async fn cached(lru: &LruCacheTier, k: &str) -> Option<Bytes> {
    lru.get(&key(k)).await.unwrap().map(|c| c.value)
}

#[tokio::test]
async fn hit_after_first_read_does_not_touch_the_primary() {
    let s = stack(CacheOptions::default());
    s.memory.put(&key("a/k"), Bytes::from_static(b"0123456789"), PutOptions::default()).await.unwrap();

    assert_eq!(s.cache.get(&key("a/k")).await.unwrap(), Bytes::from_static(b"0123456789"));
    let snap = s.metrics.snapshot();
    assert_eq!((snap.cache_hits, snap.cache_misses), (0, 1));
    assert_eq!(s.cache.get(&key("a/k")).await.unwrap(), Bytes::from_static(b"0123456789"));
    let snap = s.metrics.snapshot();
    assert_eq!((snap.cache_hits, snap.cache_misses), (1, 1));

    // The primary is down: every read of the cached key is still served.
    s.faults.set_down(true);
    let k = key("a/k");
    assert_eq!(s.cache.get(&k).await.unwrap(), Bytes::from_static(b"0123456789"));
    assert_eq!(s.cache.get_range(&k, 2..5).await.unwrap(), Bytes::from_static(b"234"));
    assert_eq!(s.cache.stat(&k).await.unwrap().size, 10);
    let streamed = collect_stream(s.cache.read(&k, Some(8..20)).await.unwrap()).await.unwrap();
    assert_eq!(streamed, Bytes::from_static(b"89"));
    assert_eq!(s.faults.injected(), 0, "a hit called the primary");
    let snap = s.metrics.snapshot();
    assert_eq!((snap.cache_hits, snap.cache_misses), (5, 1));

    // An uncached key needs the primary, and the error names it.
    assert_eq!(s.cache.name(), "cache(main)");
    let e = expect_kind(s.cache.get(&key("a/other")).await, ErrorKind::Unavailable);
    assert_eq!(e.backend(), Some("main"), "{e}");
    assert_eq!(s.metrics.snapshot().cache_misses, 2);
}

#[tokio::test]
async fn stat_and_range_reads_fill_the_cache() {
    let s = stack(CacheOptions::default());
    for k in ["s", "r", "st"] {
        s.memory.put(&key(k), Bytes::from_static(b"abcdef"), PutOptions::default()).await.unwrap();
    }
    assert_eq!(s.cache.stat(&key("s")).await.unwrap().size, 6);
    assert_eq!(s.cache.get_range(&key("r"), 1..3).await.unwrap(), Bytes::from_static(b"bc"));
    collect_stream(s.cache.read(&key("st"), None).await.unwrap()).await.unwrap();
    for k in ["s", "r", "st"] {
        assert_eq!(cached(&s.lru, k).await, Some(Bytes::from_static(b"abcdef")), "{k}");
    }
}

#[tokio::test]
async fn large_values_are_not_cached() {
    let options = CacheOptions { max_entry_bytes: 1000, ..CacheOptions::with_capacity(MIB) };
    let s = stack(options);
    let big = Bytes::from(vec![3u8; 5000]);
    s.cache.put(&key("big"), big.clone(), PutOptions::default()).await.unwrap();
    assert_eq!(s.cache.get(&key("big")).await.unwrap(), big);
    assert_eq!(s.cache.get_range(&key("big"), 4990..6000).await.unwrap().len(), 10);
    collect_stream(s.cache.read(&key("big"), Some(10..20)).await.unwrap()).await.unwrap();
    assert_eq!(cached(&s.lru, "big").await, None);
    assert_eq!(s.lru.cached_bytes(), 0);
}

#[tokio::test]
async fn writes_invalidate_or_update_the_cache() {
    let s = stack(CacheOptions::default());
    let c = &s.cache;
    for k in ["p", "d", "from", "to", "b1", "b2"] {
        s.memory.put(&key(k), Bytes::from(format!("old {k}")), PutOptions::default()).await.unwrap();
        c.get(&key(k)).await.unwrap();
        assert!(cached(&s.lru, k).await.is_some(), "{k} not cached");
    }

    // put: the new value replaces the cached one.
    c.put(&key("p"), Bytes::from_static(b"new p"), PutOptions::default()).await.unwrap();
    assert_eq!(cached(&s.lru, "p").await, Some(Bytes::from_static(b"new p")));
    assert_eq!(c.get(&key("p")).await.unwrap(), Bytes::from_static(b"new p"));

    // delete
    c.delete(&key("d")).await.unwrap();
    assert_eq!(cached(&s.lru, "d").await, None);
    expect_kind(c.get(&key("d")).await, ErrorKind::NotFound);

    // rename: both ends.
    c.rename(&key("from"), &key("to")).await.unwrap();
    assert_eq!(cached(&s.lru, "from").await, None);
    assert_eq!(cached(&s.lru, "to").await, None);
    expect_kind(c.get(&key("from")).await, ErrorKind::NotFound);
    assert_eq!(c.get(&key("to")).await.unwrap(), Bytes::from_static(b"old from"));

    // batch
    c.batch(vec![BatchOp::put(key("b1"), "new b1"), BatchOp::delete(key("b2"))]).await.unwrap();
    assert_eq!(cached(&s.lru, "b1").await, None);
    assert_eq!(cached(&s.lru, "b2").await, None);
    assert_eq!(c.get(&key("b1")).await.unwrap(), Bytes::from_static(b"new b1"));
    expect_kind(c.get(&key("b2")).await, ErrorKind::NotFound);

    // streamed write
    c.get(&key("p")).await.unwrap();
    let mut w = c.write(&key("p"), PutOptions::default()).await.unwrap();
    w.write(Bytes::from_static(b"streamed")).await.unwrap();
    assert_eq!(cached(&s.lru, "p").await, Some(Bytes::from_static(b"new p")), "visible before finish");
    w.finish().await.unwrap();
    assert_eq!(cached(&s.lru, "p").await, None);
    assert_eq!(c.get(&key("p")).await.unwrap(), Bytes::from_static(b"streamed"));
}

#[tokio::test]
async fn failed_writes_never_cache_the_new_value() {
    let s = stack(CacheOptions::default());
    let c = &s.cache;
    s.memory.put(&key("k"), Bytes::from_static(b"old"), PutOptions::default()).await.unwrap();
    c.get(&key("k")).await.unwrap();

    s.faults.fail_next(1);
    expect_kind(
        c.put(&key("k"), Bytes::from_static(b"new"), PutOptions::default()).await,
        ErrorKind::Unavailable,
    );
    assert_ne!(cached(&s.lru, "k").await, Some(Bytes::from_static(b"new")));
    assert_eq!(c.get(&key("k")).await.unwrap(), Bytes::from_static(b"old"));

    s.faults.fail_next(1);
    expect_kind(c.batch(vec![BatchOp::put(key("k"), "new")]).await, ErrorKind::Unavailable);
    assert_eq!(c.get(&key("k")).await.unwrap(), Bytes::from_static(b"old"));

    // A conditional put refused by the primary leaves the old value.
    let once = PutOptions { if_not_exists: true, ..Default::default() };
    expect_kind(c.put(&key("k"), Bytes::from_static(b"new"), once).await, ErrorKind::AlreadyExists);
    assert_eq!(c.get(&key("k")).await.unwrap(), Bytes::from_static(b"old"));
}

// On tokio's paused clock: time moves only when every task waits.
#[tokio::test(start_paused = true)]
async fn ttl_expiry() {
    let options = CacheOptions { ttl: Some(Duration::from_millis(400)), ..CacheOptions::default() };
    let s = stack(options);
    s.memory.put(&key("t"), Bytes::from_static(b"v1"), PutOptions::default()).await.unwrap();
    s.cache.get(&key("t")).await.unwrap();
    s.cache.get(&key("t")).await.unwrap();
    assert_eq!(s.metrics.snapshot().cache_hits, 1);

    // Changed behind the cache's back: served stale until the TTL passes.
    s.memory.put(&key("t"), Bytes::from_static(b"v2"), PutOptions::default()).await.unwrap();
    tokio::time::advance(Duration::from_millis(399)).await;
    assert_eq!(s.cache.get(&key("t")).await.unwrap(), Bytes::from_static(b"v1"));
    tokio::time::advance(Duration::from_millis(2)).await;
    assert_eq!(s.cache.get(&key("t")).await.unwrap(), Bytes::from_static(b"v2"));
    let snap = s.metrics.snapshot();
    assert_eq!((snap.cache_hits, snap.cache_misses), (2, 2));
}

#[tokio::test]
async fn eviction_keeps_the_cache_within_its_byte_bound() {
    let capacity = MIB;
    let options = CacheOptions { max_entry_bytes: 64 << 10, ..CacheOptions::with_capacity(capacity) };
    let s = stack(options);
    for i in 0..100u8 {
        let k = key(&format!("ev/{i:03}"));
        s.cache.put(&k, Bytes::from(vec![i; 32 << 10]), PutOptions::default()).await.unwrap();
        assert!(s.lru.cached_bytes() <= capacity, "{} cached bytes", s.lru.cached_bytes());
    }
    // 100 values of 32 KiB = 3.2 MiB went through a 1 MiB cache.
    assert!(s.lru.cached_bytes() > capacity / 2, "the cache should be mostly full");
    let evictions = s.metrics.snapshot().cache_evictions;
    assert!(evictions >= 100 - 32, "{evictions} evictions");
    assert!(cached(&s.lru, "ev/000").await.is_none(), "the oldest entry survived");
    assert!(cached(&s.lru, "ev/099").await.is_some(), "the newest entry was evicted");
    for i in 0..100u8 {
        let v = s.cache.get(&key(&format!("ev/{i:03}"))).await.unwrap();
        assert!(v.len() == 32 << 10 && v.iter().all(|b| *b == i));
        assert!(s.lru.cached_bytes() <= capacity);
    }
}

#[tokio::test]
async fn a_failing_tier_never_fails_reads_or_writes() {
    for options in [CacheOptions::default(), write_back(MIB)] {
        let memory = MemoryStorage::new("main");
        let tier = Arc::new(FailingTier::default());
        let cache = CacheStorage::new(Arc::new(memory.clone()), tier.clone(), options, StorageMetrics::new());
        let c: &dyn Storage = &*cache;

        memory.put(&key("pre"), Bytes::from_static(b"existing"), PutOptions::default()).await.unwrap();
        assert_eq!(c.get(&key("pre")).await.unwrap(), Bytes::from_static(b"existing"));
        assert_eq!(c.get_range(&key("pre"), 0..2).await.unwrap(), Bytes::from_static(b"ex"));
        assert_eq!(c.stat(&key("pre")).await.unwrap().size, 8);
        collect_stream(c.read(&key("pre"), None).await.unwrap()).await.unwrap();

        c.put(&key("w/1"), Bytes::from_static(b"one"), PutOptions::default()).await.unwrap();
        c.put(&key("w/2"), Bytes::from_static(b"two"), PutOptions::default()).await.unwrap();
        c.delete(&key("pre")).await.unwrap();
        c.rename(&key("w/2"), &key("w/3")).await.unwrap();
        c.batch(vec![BatchOp::put(key("w/4"), "four")]).await.unwrap();
        let mut w = c.write(&key("w/5"), PutOptions::default()).await.unwrap();
        w.write(Bytes::from_static(b"five")).await.unwrap();
        w.finish().await.unwrap();
        let names: Vec<String> = c
            .list_stream(ListOptions::recursive("w/"))
            .map_ok(|e| e.name().to_owned())
            .try_collect()
            .await
            .unwrap();
        assert_eq!(names, ["w/1", "w/3", "w/4", "w/5"]);
        c.sync().await.unwrap();

        for (k, v) in [("w/1", "one"), ("w/3", "two"), ("w/4", "four"), ("w/5", "five")] {
            assert_eq!(c.get(&key(k)).await.unwrap(), Bytes::from(v));
            assert_eq!(memory.get(&key(k)).await.unwrap(), Bytes::from(v));
        }
        expect_kind(c.get(&key("pre")).await, ErrorKind::NotFound);
        expect_kind(memory.get(&key("pre")).await, ErrorKind::NotFound);
        assert!(tier.calls.load(Ordering::SeqCst) > 0);
        assert_eq!(cache.tier_errors(), tier.calls.load(Ordering::SeqCst));
        cache.shutdown().await.unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn a_reader_cannot_fill_a_value_older_than_a_finished_write() {
    // Every primary call takes 400 ms. A reader misses at 0 and reads `old`
    // at 400 (get), then asks for its metadata (stat, done at 800) before
    // filling. A writer starting at 200 stores `new` at 600 and returns,
    // having cached `new`. At 800 the reader tries to cache its `old`: the
    // cache must refuse, or it would serve `old` after the write returned.
    let s = stack(CacheOptions::default());
    s.memory.put(&key("race"), Bytes::from_static(b"old"), PutOptions::default()).await.unwrap();
    s.faults.set_latency(Duration::from_millis(400));
    let reader = {
        let cache = s.cache.clone();
        tokio::spawn(async move { cache.get(&key("race")).await.unwrap() })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    s.cache.put(&key("race"), Bytes::from_static(b"new"), PutOptions::default()).await.unwrap();
    assert!(!reader.is_finished(), "the reader finished before the write");
    assert_eq!(reader.await.unwrap(), Bytes::from_static(b"old"));
    s.faults.set_latency(Duration::ZERO);
    assert_ne!(cached(&s.lru, "race").await, Some(Bytes::from_static(b"old")), "a stale value was cached");
    assert_eq!(s.cache.get(&key("race")).await.unwrap(), Bytes::from_static(b"new"));
}

/// Readers and writers on a few keys; afterwards the cache, the tier and
/// the primary agree on every key.
async fn stress(options: CacheOptions) {
    let s = stack(options);
    s.faults.set_latency(Duration::from_micros(200));
    const KEYS: usize = 4;
    let mut tasks = Vec::new();
    for t in 0..8u64 {
        let cache = s.cache.clone();
        tasks.push(tokio::spawn(async move {
            let mut x = t.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
            for i in 0..150u64 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let k = key(&format!("st/{}", x % KEYS as u64));
                let value = Bytes::from(format!("{t}-{i}-{}", "x".repeat((x % 64) as usize)));
                match (x >> 8) % 8 {
                    0 | 1 => {
                        cache.put(&k, value, PutOptions::default()).await.unwrap();
                    }
                    2 => cache.delete(&k).await.unwrap(),
                    3 => cache.batch(vec![BatchOp::put(k, value)]).await.unwrap(),
                    4 => {
                        let _ = cache.stat(&k).await;
                    }
                    5 => {
                        let _ = cache.get_range(&k, 0..4).await;
                    }
                    _ => {
                        let _ = cache.get(&k).await;
                    }
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    s.cache.sync().await.unwrap();
    s.faults.set_latency(Duration::ZERO);
    for i in 0..KEYS {
        let k = key(&format!("st/{i}"));
        let primary = s.memory.get(&k).await.ok();
        let through_cache = s.cache.get(&k).await.ok();
        assert_eq!(through_cache, primary, "{k}: cache and primary disagree");
        let stat = s.cache.stat(&k).await.ok().map(|m| m.size);
        assert_eq!(stat, primary.as_ref().map(|v| v.len() as u64), "{k}: stat disagrees");
        if let Some(tier) = cached(&s.lru, k.as_str()).await {
            assert_eq!(Some(tier), primary, "{k}: the tier holds a stale value");
        }
    }
    s.cache.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_readers_and_writers_write_through() {
    for _ in 0..3 {
        stress(CacheOptions::default()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_readers_and_writers_write_back() {
    for max_dirty in [MIB, 1024] {
        stress(write_back(max_dirty)).await;
    }
}

#[tokio::test]
async fn cache_options_from_configuration() {
    let config = CacheConfig {
        capacity_mib: Some(1),
        write: Some(WriteConfig::Back),
        max_dirty_mib: Some(2),
        ..CacheConfig::default()
    };
    let options = config.to_options().unwrap();
    assert_eq!(options.capacity_bytes, MIB);
    let cache = CacheStorage::with_lru(Arc::new(MemoryStorage::new("m")), options, StorageMetrics::new());
    assert!(!cache.capabilities().persistent);
    cache.put(&key("c"), Bytes::from_static(b"v"), PutOptions::default()).await.unwrap();
    assert_eq!(cache.dirty_keys(), 1);
    cache.shutdown().await.unwrap();

    let bad = CacheConfig { capacity_mib: Some(1), max_entry_kib: Some(4096), ..CacheConfig::default() };
    let e = bad.to_options().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
    assert!(e.to_string().contains("max_entry_kib") && e.to_string().contains("1 to 1024"), "{e}");
}

#[tokio::test]
async fn a_failed_invalidation_never_serves_the_old_value() {
    let memory = MemoryStorage::new("main");
    let options = CacheOptions::default();
    let metrics = StorageMetrics::new();
    let tier = Arc::new(FlakyTier {
        inner: LruCacheTier::new(&options, metrics.clone()),
        fail_writes: AtomicBool::new(false),
        failing: FailingTier::default(),
    });
    let cache = CacheStorage::new(Arc::new(memory.clone()), tier.clone(), options, metrics);
    let k = key("k");
    cache.put(&k, Bytes::from_static(b"old"), PutOptions::default()).await.unwrap();
    assert_eq!(cached(&tier.inner, "k").await, Some(Bytes::from_static(b"old")));

    // The tier can no longer drop or replace `old`.
    tier.fail_writes.store(true, Ordering::SeqCst);
    cache.put(&k, Bytes::from_static(b"new"), PutOptions::default()).await.unwrap();
    assert_eq!(cached(&tier.inner, "k").await, Some(Bytes::from_static(b"old")));
    assert_eq!(cache.bypassed_keys(), 1);
    for _ in 0..3 {
        assert_eq!(cache.get(&k).await.unwrap(), Bytes::from_static(b"new"));
        assert_eq!(cache.stat(&k).await.unwrap().size, 3);
    }
    cache.delete(&k).await.unwrap();
    expect_kind(cache.get(&k).await, ErrorKind::NotFound);
    cache.put(&k, Bytes::from_static(b"newer"), PutOptions::default()).await.unwrap();

    // The tier recovers: the next read invalidates, then caches again.
    tier.fail_writes.store(false, Ordering::SeqCst);
    assert_eq!(cache.get(&k).await.unwrap(), Bytes::from_static(b"newer"));
    assert_eq!(cache.bypassed_keys(), 0);
    assert_eq!(cache.get(&k).await.unwrap(), Bytes::from_static(b"newer"));
    assert_eq!(cached(&tier.inner, "k").await, Some(Bytes::from_static(b"newer")));
    assert!(cache.tier_errors() > 0);
}
