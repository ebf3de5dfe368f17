//! Policies against the backend alone, same run:
//! - a cache hit (target under 2 µs);
//! - `PreferCache` over local on a 90 % hit workload against local alone
//!   (target at least 3x the ops/s): nine gets of 1,000 hot keys and one of
//!   a cold set, in two sizes: 20,000 cold keys (about 160 MiB of redb
//!   pages, past local's 64 MiB page cache, so a cold get reads the file)
//!   and 2,000 (everything fits in local's page cache); measured apart and
//!   interleaved (`prefer_cache_vs_local_*`, as `common::interleaved`);
//! - `Redundant` with 2 copies (two local stores) against one local store,
//!   4 KiB puts (target at least 0.45x).

use std::cell::Cell;
use std::hint::black_box;
use std::sync::Arc;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use tierfs_core::metrics::StorageMetrics;
use tierfs_core::policies::cache::{CacheOptions, CacheStorage};
use tierfs_core::policies::redundant::RedundantStorage;
use tierfs_core::{Key, LocalStorage, Storage};

mod common;

const HOT: usize = 1_000;
/// Cold sets of the 90 % hit workload: past local's page cache, and within it.
const COLD_SETS: [(&str, usize); 2] = [("cold_20k", 20_000), ("cold_2k", 2_000)];

fn cache_hit(c: &mut Criterion) {
    let rt = common::runtime();
    let dir = common::temp_dir();
    let local: Arc<dyn Storage> =
        Arc::new(LocalStorage::open("local", dir.path(), Default::default()).unwrap());
    let cache = CacheStorage::with_lru(local, CacheOptions::default(), StorageMetrics::new());
    let key = Key::new("hot/0").unwrap();
    rt.block_on(async {
        cache.put(&key, Bytes::from(vec![1u8; 4096]), Default::default()).await.unwrap();
        cache.get(&key).await.unwrap();
    });
    let mut group = c.benchmark_group("cache");
    group.bench_function("hit_4KiB", |b| {
        b.to_async(&rt).iter(|| async { black_box(cache.get(&key).await.unwrap()) })
    });
    group.finish();
}

/// Nine reads of hot keys and one of a cold key: iteration `i`.
async fn mixed(store: &dyn Storage, hot: &[Key], cold: &[Key], i: usize) {
    for j in 0..9 {
        black_box(store.get(&hot[(i * 9 + j) % hot.len()]).await.unwrap());
    }
    black_box(store.get(&cold[i % cold.len()]).await.unwrap());
}

/// The next iteration number of a side.
fn next(counter: &Cell<usize>) -> usize {
    let i = counter.get();
    counter.set(i + 1);
    i
}

fn prefer_cache(c: &mut Criterion) {
    let rt = common::runtime();
    for (name, cold_keys) in COLD_SETS {
        let dir = common::temp_dir();
        let local = Arc::new(LocalStorage::open("local", dir.path(), Default::default()).unwrap());
        let hot = common::keys("hot", HOT);
        let cold = common::keys("cold", cold_keys);
        let value = common::value(4096);
        rt.block_on(async {
            common::populate(&*local, &hot, &value).await;
            common::populate(&*local, &cold, &value).await;
        });
        // Room for the hot set and a few hundred cold keys passing through,
        // so cold keys are evicted before they come round again: 90 % hits.
        let options = CacheOptions::with_capacity((HOT as u64 + 300) * 4096 * 5 / 4);
        let metrics = StorageMetrics::new();
        let cache = CacheStorage::with_lru(local.clone(), options, metrics.clone());
        let mut group = c.benchmark_group(format!("prefer_cache_90pct_hits_{name}"));
        let (i, j) = (Cell::new(0), Cell::new(0));
        group
            .bench_function("local_alone", |b| b.iter(|| rt.block_on(mixed(&*local, &hot, &cold, next(&i)))));
        group.bench_function("prefer_cache", |b| {
            b.iter(|| rt.block_on(mixed(&*cache, &hot, &cold, next(&j))))
        });
        // Both sides alternating in blocks of ten iterations (100 gets).
        let (hot, cold) = (&hot, &cold);
        common::interleaved(
            &mut group,
            &rt,
            &format!("prefer_cache_vs_local_{name}"),
            10,
            || mixed(&*local, hot, cold, next(&i)),
            || mixed(&*cache, hot, cold, next(&j)),
        );
        group.finish();
        let snap = metrics.snapshot();
        let gets = snap.cache_hits + snap.cache_misses;
        if gets > 0 {
            let ratio = snap.cache_hits as f64 / gets as f64;
            eprintln!("prefer_cache_90pct_hits_{name}: {:.1} % of gets were hits", ratio * 100.0);
        }
    }
}

fn redundant(c: &mut Criterion) {
    let rt = common::runtime();
    let dirs = [common::temp_dir(), common::temp_dir(), common::temp_dir()];
    let single: Arc<dyn Storage> =
        Arc::new(LocalStorage::open("single", dirs[0].path(), Default::default()).unwrap());
    let members: Vec<Arc<dyn Storage>> = dirs[1..]
        .iter()
        .enumerate()
        .map(|(i, d)| {
            Arc::new(LocalStorage::open(format!("m{i}"), d.path(), Default::default()).unwrap())
                as Arc<dyn Storage>
        })
        .collect();
    let set = rt.block_on(async { RedundantStorage::new("set", members, 2, StorageMetrics::new()) }).unwrap();
    let keys = common::keys("r", 1000);
    let value = common::value(4096);
    let mut group = c.benchmark_group("redundant_put_4KiB");
    group.sample_size(20);
    let mut i = 0;
    group.bench_function("single_local", |b| {
        b.iter(|| {
            i += 1;
            rt.block_on(single.put(&keys[i % keys.len()], value.clone(), Default::default())).unwrap()
        })
    });
    let mut j = 0;
    group.bench_function("two_copies", |b| {
        b.iter(|| {
            j += 1;
            rt.block_on(set.put(&keys[j % keys.len()], value.clone(), Default::default())).unwrap()
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = cache_hit, prefer_cache, redundant
}
criterion_main!(benches);
