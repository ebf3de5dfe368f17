//! `LocalStorage` against the engine under it, in the same run: redb used
//! directly (same version and page cache size, one `TableDefinition<&str,
//! &[u8]>`), put and get of 4 KiB values.
//!
//! - raw put: one write transaction with default durability (an fsync on
//!   commit) holding one insert; tierfs put: `LocalStorage::put`, which does
//!   the same on tokio's blocking pool plus a record header and a version row.
//! - raw get: a read transaction, a get and `.value().to_vec()`; tierfs get:
//!   `LocalStorage::get` (record decode, metadata, a `Bytes` copy).
//!
//! - 64 puts in flight: 64 puts started together, each on tokio's blocking
//!   pool; raw: each its own write transaction (redb lets one writer in at
//!   a time, so they commit one after another, an fsync each); tierfs:
//!   `LocalStorage::put`, whose group commit makes the puts that arrive
//!   while a transaction is being made durable share the next one.
//!
//! Ids: `engine/{raw_redb,tierfs_local}/{put,get,put_64_in_flight}/4KiB`, and
//! `engine/local_vs_raw_{put,get}_4KiB/interleaved` (both sides alternating;
//! ratio in `target/criterion/tierfs-pairs/`). Target: tierfs ≥ 0.9x raw ops/s.
//!
//! Both files start with the same history (one transaction of 4,000 keys)
//! and the puts run before the gets, so both are read in the state of a
//! file that has seen overwrites. (A file that has never freed a page reads
//! faster on a cache miss in redb 4.6: after a commit that frees pages, a
//! non-durable "epilogue" commit leaves `committed_pages_buffered` set, and
//! every miss then scans the write buffer's stripes.)

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use futures::future::join_all;
use redb::{Database, ReadableDatabase, TableDefinition};
use tierfs_core::backends::local::DEFAULT_CACHE_SIZE;
use tierfs_core::{Key, LocalStorage, PutOptions, Storage};

use common::{interleaved, keys, populate, runtime, temp_dir, value, Cycle};

const TABLE: TableDefinition<&str, &[u8]> = TableDefinition::new("objects");
const SIZE: usize = 4 << 10;
/// A 4 KiB value fills an 8 KiB redb leaf page, so 4,000 keys (about 34 MiB
/// of file) stay within the 64 MiB page cache: this compares the code paths,
/// not cache misses (`backends` covers a working set larger than the cache).
const KEYS: usize = 4_000;
/// Puts in flight at once in the `put_64_in_flight` benchmarks.
const IN_FLIGHT: usize = 64;

fn open_raw(dir: &Path) -> Database {
    Database::builder().set_cache_size(DEFAULT_CACHE_SIZE).create(dir.join("raw.redb")).expect("open redb")
}

fn raw_put(db: &Database, key: &str, value: &[u8]) {
    let txn = db.begin_write().expect("begin_write");
    {
        let mut table = txn.open_table(TABLE).expect("open_table");
        table.insert(key, value).expect("insert");
    }
    txn.commit().expect("commit");
}

fn raw_get(db: &Database, key: &str) -> Vec<u8> {
    let txn = db.begin_read().expect("begin_read");
    let table = txn.open_table(TABLE).expect("open_table");
    let value = table.get(key).expect("get").expect("present");
    value.value().to_vec()
}

fn raw_populate(db: &Database, keys: &[Key], value: &[u8]) {
    let txn = db.begin_write().expect("begin_write");
    {
        let mut table = txn.open_table(TABLE).expect("open_table");
        for key in keys {
            table.insert(key.as_str(), value).expect("insert");
        }
    }
    txn.commit().expect("commit");
}

fn engine(c: &mut Criterion) {
    let rt = runtime();
    let (raw_dir, local_dir) = (temp_dir(), temp_dir());
    let db = Arc::new(open_raw(raw_dir.path()));
    let local = LocalStorage::open("l", local_dir.path(), Default::default()).expect("open local store");
    let keys = keys("engine", KEYS);
    let value: Bytes = value(SIZE);
    raw_populate(&db, &keys, &value);
    rt.block_on(populate(&local, &keys, &value));
    let shared_db = db.clone();
    let (db, local, value) = (&*db, &local, &value);

    let mut group = c.benchmark_group("engine");
    // Writes first: afterwards both files have the history of a store in
    // use (overwrites, freed pages), which is what the reads then see.
    group.warm_up_time(Duration::from_secs(1));
    group.sampling_mode(SamplingMode::Flat).sample_size(10).measurement_time(Duration::from_secs(3));
    group.bench_function("raw_redb/put/4KiB", |b| {
        let mut keys = Cycle::new(&keys);
        b.iter(|| raw_put(db, keys.next_key(), value))
    });
    group.bench_function("tierfs_local/put/4KiB", |b| {
        let mut keys = Cycle::new(&keys);
        b.to_async(&rt).iter(|| {
            let (key, value) = (keys.next_key(), value.clone());
            async move { local.put(key, value, PutOptions::default()).await.expect("put") }
        })
    });
    group.sample_size(20).measurement_time(Duration::from_secs(8));
    let (mut raw_keys, mut local_keys) = (Cycle::new(&keys), Cycle::new(&keys));
    interleaved(
        &mut group,
        &rt,
        "local_vs_raw_put_4KiB",
        4,
        || {
            let key = raw_keys.next_key();
            async move { raw_put(db, key, value) }
        },
        || {
            let (key, value) = (local_keys.next_key(), value.clone());
            async move {
                std::hint::black_box(local.put(key, value, PutOptions::default()).await.expect("put"));
            }
        },
    );

    group.warm_up_time(Duration::from_millis(500));
    group.sampling_mode(SamplingMode::Auto).sample_size(50).measurement_time(Duration::from_secs(2));
    group.bench_function("raw_redb/get/4KiB", |b| {
        let mut keys = Cycle::new(&keys);
        b.iter(|| raw_get(db, keys.next_key()))
    });
    group.bench_function("tierfs_local/get/4KiB", |b| {
        let mut keys = Cycle::new(&keys);
        b.to_async(&rt).iter(|| {
            let key = keys.next_key();
            async move { local.get(key).await.expect("get") }
        })
    });
    group.measurement_time(Duration::from_secs(4));
    let (mut raw_keys, mut local_keys) = (Cycle::new(&keys), Cycle::new(&keys));
    interleaved(
        &mut group,
        &rt,
        "local_vs_raw_get_4KiB",
        64,
        || {
            let key = raw_keys.next_key();
            async move {
                std::hint::black_box(raw_get(db, key));
            }
        },
        || {
            let key = local_keys.next_key();
            async move {
                std::hint::black_box(local.get(key).await.expect("get"));
            }
        },
    );

    group
        .throughput(Throughput::Elements(IN_FLIGHT as u64))
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .measurement_time(Duration::from_secs(5));
    group.bench_function("raw_redb/put_64_in_flight/4KiB", |b| {
        let mut keys = Cycle::new(&keys);
        b.to_async(&rt).iter(|| {
            let puts: Vec<_> = (0..IN_FLIGHT)
                .map(|_| {
                    let (db, key, value) = (shared_db.clone(), keys.next_key().clone(), value.clone());
                    tokio::task::spawn_blocking(move || raw_put(&db, key.as_str(), &value))
                })
                .collect();
            async move {
                for put in join_all(puts).await {
                    put.expect("put task");
                }
            }
        })
    });
    group.bench_function("tierfs_local/put_64_in_flight/4KiB", |b| {
        let mut keys = Cycle::new(&keys);
        b.to_async(&rt).iter(|| {
            let puts: Vec<_> = (0..IN_FLIGHT)
                .map(|_| {
                    let (key, value) = (keys.next_key(), value.clone());
                    async move { local.put(key, value, PutOptions::default()).await.expect("put") }
                })
                .collect();
            join_all(puts)
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = engine
}
criterion_main!(benches);
