//! The built-in backends through the `Storage` trait: put, get and delete of
//! 100 B, 4 KiB and 1 MiB values, and one full recursive listing of 100,000
//! keys through `StorageExt::list_stream`, for `MemoryStorage` and
//! `LocalStorage` (redb plus blob files, in a directory on the work disk).
//!
//! Ids: `{memory,local}/{put,get,delete}/{size}` and `{memory,local}/list_100k/recursive`.
//! Every put is an overwrite and every get a hit, cycling over
//! [`common::key_count`] keys populated before timing starts.

mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, SamplingMode};
use futures::TryStreamExt;
use tierfs_core::{Key, ListOptions, LocalStorage, MemoryStorage, PutOptions, Storage, StorageExt};
use tokio::runtime::Runtime;

use common::{key_count, keys, populate, runtime, temp_dir, value, Cycle, SIZES};

const LIST_KEYS: usize = 100_000;

/// How a backend's writes should be sampled.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Writes {
    /// Nanoseconds to microseconds: criterion's defaults.
    Fast,
    /// Each write is a fsynced transaction: few, flat samples.
    Durable,
}

fn put_get_delete<S: Storage>(
    group: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>,
    rt: &Runtime,
    store: &S,
    writes: Writes,
) {
    for (label, size) in SIZES {
        let keys = keys(&format!("v{label}"), key_count(size));
        let value = value(size);
        rt.block_on(populate(store, &keys, &value));

        set_sampling(group, Writes::Fast);
        group.bench_function(format!("get/{label}"), |b| {
            let mut keys = Cycle::new(&keys);
            b.to_async(rt).iter(|| {
                let key = keys.next_key();
                async move { store.get(key).await.expect("get") }
            })
        });

        set_sampling(group, writes);
        group.bench_function(format!("put/{label}"), |b| {
            let mut keys = Cycle::new(&keys);
            b.to_async(rt).iter(|| {
                let (key, value) = (keys.next_key(), value.clone());
                async move { store.put(key, value, PutOptions::default()).await.expect("put") }
            })
        });

        // Deletes of present keys: a chunk is deleted under the clock, then
        // stored again (batched) off the clock.
        group.bench_function(format!("delete/{label}"), |b| {
            b.to_async(rt).iter_custom(|iters| {
                let (keys, value) = (&keys, &value);
                async move { timed_deletes(store, keys, value, iters).await }
            })
        });
    }
    set_sampling(group, Writes::Fast);
}

async fn timed_deletes<S: Storage>(store: &S, keys: &[Key], value: &Bytes, iters: u64) -> Duration {
    let mut spent = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let chunk = &keys[..left.min(keys.len() as u64) as usize];
        let start = Instant::now();
        for key in chunk {
            store.delete(key).await.expect("delete");
        }
        spent += start.elapsed();
        populate(store, chunk, value).await;
        left -= chunk.len() as u64;
    }
    spent
}

fn set_sampling(group: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>, writes: Writes) {
    match writes {
        Writes::Fast => {
            group.sampling_mode(SamplingMode::Auto).sample_size(50).measurement_time(Duration::from_secs(2));
        }
        Writes::Durable => {
            group.sampling_mode(SamplingMode::Flat).sample_size(10).measurement_time(Duration::from_secs(3));
        }
    }
}

/// One full recursive listing of `LIST_KEYS` keys, page after page.
fn list<S: Storage>(
    group: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>,
    rt: &Runtime,
    store: &S,
) {
    let keys = keys("list", LIST_KEYS);
    rt.block_on(populate(store, &keys, &Bytes::from_static(b"sixteen bytes..!")));
    group.sampling_mode(SamplingMode::Flat).sample_size(10).measurement_time(Duration::from_secs(4));
    group.bench_function("list_100k/recursive", |b| {
        b.to_async(rt).iter(|| async {
            let n = store
                .list_stream(ListOptions::recursive("list/"))
                .try_fold(0usize, |n, entry| {
                    black_box(entry);
                    futures::future::ready(Ok(n + 1))
                })
                .await
                .expect("list");
            assert_eq!(n, LIST_KEYS);
        })
    });
    set_sampling(group, Writes::Fast);
}

fn memory(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("memory");
    put_get_delete(&mut group, &rt, &MemoryStorage::new("m"), Writes::Fast);
    list(&mut group, &rt, &MemoryStorage::new("m-list"));
    group.finish();
}

fn local(c: &mut Criterion) {
    let rt = runtime();
    let (dir, list_dir) = (temp_dir(), temp_dir());
    let store = LocalStorage::open("l", dir.path(), Default::default()).expect("open local store");
    let list_store = LocalStorage::open("l-list", list_dir.path(), Default::default()).expect("open");
    let mut group = c.benchmark_group("local");
    group.warm_up_time(Duration::from_secs(1));
    put_get_delete(&mut group, &rt, &store, Writes::Durable);
    list(&mut group, &rt, &list_store);
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = memory, local
}
criterion_main!(benches);
