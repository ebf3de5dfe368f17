//! Policies against the backend alone, same run:
//! - a cache hit (target under 2 µs);
//! - `PreferCache` over local on a 90 % hit workload against local alone
//!   (target at least 3x the ops/s): nine gets of 1,000 hot keys and one of
//!   a cold set, in two sizes: 20,000 cold keys (about 160 MiB of redb
//!   pages, past local's 64 MiB page cache, so a cold get reads the file)
//!   and 2,000 (everything fits in local's page cache); measured apart and
//!   interleaved (`prefer_cache_vs_local_*`, as `common::interleaved`);
//! - `Redundant` with 2 copies (two local stores) against one local store,
//!   4 KiB puts (target at least 0.45x);
//! - `sharded` over 4 local members against one local backend, both
//!   through a manager session, 4 KiB gets and puts of 2,000 keys (within
//!   every store's page cache; target at least 0.9x: routing costs
//!   little); interleaved (`sharded_vs_local_*`). Before
//!   them, once: a fifth member joins 4 holding 20,000 keys of 4 KiB; the
//!   rebalance's keys/s and fraction moved are printed beside a plain
//!   loop copying and deleting the same number of keys between two local
//!   stores, measured in the same run;
//! - a storage class lookup on get: 4 KiB gets of 2,000 keys each given a
//!   class (`pinned`, on the one local backend) through a manager session,
//!   against the same gets on a manager whose keys have no class (the class
//!   index empty: no lookup at all); target within 5 % (at least 0.95x);
//!   interleaved (`classed_vs_unclassed_get_4KiB`).

use std::cell::Cell;
use std::hint::black_box;
use std::sync::Arc;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use tierfs_core::metrics::StorageMetrics;
use tierfs_core::policies::cache::{CacheOptions, CacheStorage};
use tierfs_core::policies::redundant::RedundantStorage;
use tierfs_core::{Config, Key, LocalStorage, Storage, StorageManager};

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

/// A manager over `members` local stores in `dir`: sharded when more than
/// one. Each store has local's default page cache (64 MiB), which holds the
/// whole working set of the benchmark on either side, so the comparison is
/// of routing, not of how much of the data each side keeps in memory.
fn local_manager(rt: &tokio::runtime::Runtime, dir: &std::path::Path, members: usize) -> StorageManager {
    let mut text = String::new();
    for i in 0..members {
        text += &format!("[backends.m{i}]\ntype = \"local\"\npath = {:?}\n", dir.join(format!("m{i}")));
    }
    if members > 1 {
        let names: Vec<String> = (0..members).map(|i| format!("\"m{i}\"")).collect();
        text += &format!("[policy]\ntype = \"sharded\"\nbackends = [{}]\n", names.join(", "));
    }
    rt.block_on(StorageManager::open(Config::parse(&text, None).unwrap())).unwrap()
}

/// Waits until the sharded route of `manager` has settled.
async fn settled(manager: &StorageManager) {
    use tierfs_core::access::{Principal, StorageOperationType};
    loop {
        let e = manager.explain(&Principal::new("bench"), StorageOperationType::Read, "k").unwrap();
        if !e.placement.unwrap_or_default().contains("in progress") {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

/// One rebalance of 20,000 keys as a fifth member joins four, against a
/// loop that copies and deletes as many keys between two local stores.
fn sharded_rebalance(rt: &tokio::runtime::Runtime) {
    const KEYS: usize = 20_000;
    let dir = common::temp_dir();
    let config = |n: usize| {
        let mut text = String::new();
        for i in 0..5 {
            text += &format!(
                "[backends.m{i}]\ntype = \"local\"\npath = {:?}\n",
                dir.path().join(format!("m{i}"))
            );
        }
        let names: Vec<String> = (0..n).map(|i| format!("\"m{i}\"")).collect();
        text += &format!("[policy]\ntype = \"sharded\"\nbackends = [{}]\n", names.join(", "));
        Config::parse(&text, None).unwrap()
    };
    let keys = common::keys("r", KEYS);
    let value = common::value(4096);
    let (moved, took) = rt.block_on(async {
        let manager = StorageManager::open(config(4)).await.unwrap();
        let session = manager.session("bench");
        common::populate(&session, &keys, &value).await;
        settled(&manager).await;
        let before = manager.metrics().migrations;
        let start = std::time::Instant::now();
        manager.reconfigure(config(5)).await.unwrap();
        settled(&manager).await;
        let took = start.elapsed();
        (manager.metrics().migrations - before, took)
    });
    // The reference: the same number of keys copied and deleted, one by one.
    let (a, b) = (common::temp_dir(), common::temp_dir());
    let src = LocalStorage::open("a", a.path(), Default::default()).unwrap();
    let dst = LocalStorage::open("b", b.path(), Default::default()).unwrap();
    let copy_took = rt.block_on(async {
        common::populate(&src, &keys[..moved as usize], &value).await;
        let start = std::time::Instant::now();
        for k in &keys[..moved as usize] {
            tierfs_core::copy_value(&src, k, &dst, k, false).await.unwrap();
            src.delete(k).await.unwrap();
        }
        start.elapsed()
    });
    let rate = moved as f64 / took.as_secs_f64();
    let copy_rate = moved as f64 / copy_took.as_secs_f64();
    eprintln!(
        "sharded_rebalance_4_to_5: {moved} of {KEYS} keys moved ({:.3}) in {:.2} s: {rate:.0} keys/s; \
         a copy-and-delete loop between two local stores: {copy_rate:.0} keys/s; ratio {:.2}x",
        moved as f64 / KEYS as f64,
        took.as_secs_f64(),
        rate / copy_rate
    );
}

fn sharded(c: &mut Criterion) {
    let rt = common::runtime();
    sharded_rebalance(&rt);
    let (one_dir, four_dir) = (common::temp_dir(), common::temp_dir());
    let (one, four) = (local_manager(&rt, one_dir.path(), 1), local_manager(&rt, four_dir.path(), 4));
    let (one, four) = (one.session("bench"), four.session("bench"));
    // 8 MiB of values: within every store's page cache.
    let keys = common::keys("s", 2_000);
    let value = common::value(4096);
    rt.block_on(async {
        common::populate(&one, &keys, &value).await;
        common::populate(&four, &keys, &value).await;
    });
    let (i, j) = (Cell::new(0), Cell::new(0));
    let mut group = c.benchmark_group("sharded");
    group.bench_function("one_local/get/4KiB", |b| {
        b.to_async(&rt).iter(|| async { black_box(one.get(&keys[next(&i) % keys.len()]).await.unwrap()) })
    });
    group.bench_function("four_members/get/4KiB", |b| {
        b.to_async(&rt).iter(|| async { black_box(four.get(&keys[next(&j) % keys.len()]).await.unwrap()) })
    });
    let keys = &keys;
    let (one, four, value) = (&one, &four, &value);
    common::interleaved(
        &mut group,
        &rt,
        "sharded_vs_local_get_4KiB",
        100,
        || async {
            black_box(one.get(&keys[next(&i) % keys.len()]).await.unwrap());
        },
        || async {
            black_box(four.get(&keys[next(&j) % keys.len()]).await.unwrap());
        },
    );
    group.sample_size(20);
    common::interleaved(
        &mut group,
        &rt,
        "sharded_vs_local_put_4KiB",
        10,
        || async {
            black_box(
                one.put(&keys[next(&i) % keys.len()], value.clone(), Default::default()).await.unwrap(),
            );
        },
        || async {
            black_box(
                four.put(&keys[next(&j) % keys.len()], value.clone(), Default::default()).await.unwrap(),
            );
        },
    );
    group.finish();
}

/// A manager over one local store in `dir` with a class `pinned` on it.
fn pinned_manager(rt: &tokio::runtime::Runtime, dir: &std::path::Path) -> StorageManager {
    let text =
        format!("[backends.m]\ntype = \"local\"\npath = {:?}\n[classes.pinned]\nbackend = \"m\"\n", dir);
    rt.block_on(StorageManager::open(Config::parse(&text, None).unwrap())).unwrap()
}

fn classes(c: &mut Criterion) {
    let rt = common::runtime();
    let (plain_dir, classed_dir) = (common::temp_dir(), common::temp_dir());
    let (plain, classed) = (pinned_manager(&rt, plain_dir.path()), pinned_manager(&rt, classed_dir.path()));
    let (plain, classed) = (plain.session("bench"), classed.session("bench"));
    let keys = common::keys("c", 2_000);
    let value = common::value(4096);
    rt.block_on(async {
        common::populate(&plain, &keys, &value).await;
        let options = tierfs_core::PutOptions { storage_class: Some("pinned".into()), ..Default::default() };
        for key in &keys {
            classed.put(key, value.clone(), options.clone()).await.unwrap();
        }
        assert_eq!(classed.storage_class(&keys[0]).await.unwrap().class.as_deref(), Some("pinned"));
    });
    // Diagnostics: the same store with 2,000 more unrelated keys (as many
    // as the classed store's index records), and a store whose index has
    // entries while the keys read have no class.
    let (padded_dir, active_dir) = (common::temp_dir(), common::temp_dir());
    let (padded, active) = (pinned_manager(&rt, padded_dir.path()), pinned_manager(&rt, active_dir.path()));
    let (padded, active) = (padded.session("bench"), active.session("bench"));
    rt.block_on(async {
        common::populate(&padded, &keys, &value).await;
        common::populate(&padded, &common::keys("pad", 2_000), &value.slice(..64)).await;
        common::populate(&active, &keys, &value).await;
        let options = tierfs_core::PutOptions { storage_class: Some("pinned".into()), ..Default::default() };
        active.put(&tierfs_core::Key::new("other/x").unwrap(), value.clone(), options).await.unwrap();
    });
    let (i, j) = (Cell::new(0), Cell::new(0));
    let mut group = c.benchmark_group("classes");
    let (k, l) = (Cell::new(0), Cell::new(0));
    group.bench_function("padded_unclassed/get/4KiB", |b| {
        b.to_async(&rt).iter(|| async { black_box(padded.get(&keys[next(&k) % keys.len()]).await.unwrap()) })
    });
    group.bench_function("index_active_unclassed/get/4KiB", |b| {
        b.to_async(&rt).iter(|| async { black_box(active.get(&keys[next(&l) % keys.len()]).await.unwrap()) })
    });
    group.bench_function("unclassed/get/4KiB", |b| {
        b.to_async(&rt).iter(|| async { black_box(plain.get(&keys[next(&i) % keys.len()]).await.unwrap()) })
    });
    group.bench_function("classed/get/4KiB", |b| {
        b.to_async(&rt).iter(|| async { black_box(classed.get(&keys[next(&j) % keys.len()]).await.unwrap()) })
    });
    let (keys, plain, classed) = (&keys, &plain, &classed);
    common::interleaved(
        &mut group,
        &rt,
        "classed_vs_unclassed_get_4KiB",
        100,
        || async {
            black_box(plain.get(&keys[next(&i) % keys.len()]).await.unwrap());
        },
        || async {
            black_box(classed.get(&keys[next(&j) % keys.len()]).await.unwrap());
        },
    );
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = cache_hit, prefer_cache, redundant, sharded, classes
}
criterion_main!(benches);
