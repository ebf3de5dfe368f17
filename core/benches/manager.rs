//! What the manager costs over a bare backend, and where that cost goes.
//!
//! - `manager/{bare_memory,session}/{get,put}/4KiB`: a `MemoryStorage`
//!   called directly, against `StorageManager` with `[backends.m] type =
//!   "memory"` (default `always_local` policy) through `manager.session("bench")`,
//!   plus `manager/session_vs_bare_{get,put}_4KiB/interleaved` (both sides
//!   alternating; ratio in `target/criterion/tierfs-pairs/`). Target: the
//!   session at ≥ 0.85x the bare backend's ops/s.
//! - `manager_layers/layer_{get,put}_{1,2}_*/interleaved`: the manager's
//!   stack rebuilt one layer at a time over one `MemoryStorage`, each called
//!   as `Arc<dyn Storage>`: `0_memory`, + `ManagedStorage` (tracing span,
//!   metrics, health guard) `1_managed`, then the real `Session`
//!   `2_session` (route lookup; its own memory backend under the same
//!   layer). Each layer is measured interleaved with the one below it, so
//!   each pair's difference is that layer's cost, free of the drift between
//!   separate runs.
//! - `manager_parts/*`: the primitives those layers are made of, alone.

mod common;

use std::future::{ready, Future};
use std::hint::black_box;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion};
use parking_lot::RwLock;
use tierfs_core::layers::{HealthOptions, ManagedStorage};
use tierfs_core::metrics::StorageMetrics;
use tierfs_core::Operation as Op;
use tierfs_core::{Config, Key, MemoryStorage, PutOptions, Storage, StorageManager};
use tokio::runtime::Runtime;
use tracing::Instrument;

use common::{interleaved, key_count, keys, populate, runtime, value, Cycle};

const SIZE: usize = 4 << 10;
const CONFIG: &str = "[backends.m]\ntype = \"memory\"\n";

type Group<'a> = BenchmarkGroup<'a, criterion::measurement::WallTime>;

fn bench_get<S: Storage + ?Sized>(group: &mut Group<'_>, rt: &Runtime, id: &str, store: &S, keys: &[Key]) {
    group.bench_function(id, |b| {
        let mut keys = Cycle::new(keys);
        b.to_async(rt).iter(|| {
            let key = keys.next_key();
            async move { store.get(key).await.expect("get") }
        })
    });
}

fn bench_put<S: Storage + ?Sized>(
    group: &mut Group<'_>,
    rt: &Runtime,
    id: &str,
    store: &S,
    keys: &[Key],
    value: &Bytes,
) {
    group.bench_function(id, |b| {
        let mut keys = Cycle::new(keys);
        b.to_async(rt).iter(|| {
            let (key, value) = (keys.next_key(), value.clone());
            async move { store.put(key, value, PutOptions::default()).await.expect("put") }
        })
    });
}

fn open_manager(rt: &Runtime) -> StorageManager {
    let config = Config::parse(CONFIG, None).expect("config");
    rt.block_on(StorageManager::open(config)).expect("open manager")
}

fn manager(c: &mut Criterion) {
    let rt = runtime();
    let keys = keys("manager", key_count(SIZE));
    let value = value(SIZE);
    let bare = MemoryStorage::new("bare");
    let manager = open_manager(&rt);
    let session = manager.session("bench");
    rt.block_on(populate(&bare, &keys, &value));
    rt.block_on(populate(&session, &keys, &value));
    let (bare, session, value) = (&bare, &session, &value);

    let mut group = c.benchmark_group("manager");
    bench_get(&mut group, &rt, "bare_memory/get/4KiB", bare, &keys);
    bench_get(&mut group, &rt, "session/get/4KiB", session, &keys);
    bench_put(&mut group, &rt, "bare_memory/put/4KiB", bare, &keys, value);
    bench_put(&mut group, &rt, "session/put/4KiB", session, &keys, value);

    group.measurement_time(Duration::from_secs(4));
    let (mut bare_keys, mut session_keys) = (Cycle::new(&keys), Cycle::new(&keys));
    interleaved(
        &mut group,
        &rt,
        "session_vs_bare_get_4KiB",
        100,
        || {
            let key = bare_keys.next_key();
            async move {
                black_box(bare.get(key).await.expect("get"));
            }
        },
        || {
            let key = session_keys.next_key();
            async move {
                black_box(session.get(key).await.expect("get"));
            }
        },
    );
    let (mut bare_keys, mut session_keys) = (Cycle::new(&keys), Cycle::new(&keys));
    interleaved(
        &mut group,
        &rt,
        "session_vs_bare_put_4KiB",
        100,
        || {
            let (key, value) = (bare_keys.next_key(), value.clone());
            async move {
                black_box(bare.put(key, value, PutOptions::default()).await.expect("put"));
            }
        },
        || {
            let (key, value) = (session_keys.next_key(), value.clone());
            async move {
                black_box(session.put(key, value, PutOptions::default()).await.expect("put"));
            }
        },
    );
    group.finish();
}

/// The manager's per-backend stack, built the way `ManagerState::build`
/// builds it, one layer at a time over one store.
fn layers(c: &mut Criterion) {
    let rt = runtime();
    let keys = keys("layers", key_count(SIZE));
    let value = value(SIZE);
    let metrics = StorageMetrics::new();
    let memory: Arc<dyn Storage> = Arc::new(MemoryStorage::new("m"));
    let managed: Arc<dyn Storage> =
        Arc::new(ManagedStorage::new(memory.clone(), HealthOptions::default(), &metrics));
    let manager = open_manager(&rt);
    let session = manager.session("bench");
    rt.block_on(populate(&*memory, &keys, &value));
    rt.block_on(populate(&session, &keys, &value));

    let stack: [(&str, &dyn Storage); 3] =
        [("0_memory", &*memory), ("1_managed", &*managed), ("2_session", &session)];
    let mut group = c.benchmark_group("manager_layers");
    group.measurement_time(Duration::from_secs(3));
    for op in ["get", "put"] {
        for pair in stack.windows(2) {
            let [(_, below), (name, above)] = [pair[0], pair[1]];
            let (mut below_keys, mut above_keys) = (Cycle::new(&keys), Cycle::from_middle(&keys));
            let value = &value;
            interleaved(
                &mut group,
                &rt,
                &format!("layer_{op}_{name}"),
                100,
                || one_op(op, below, below_keys.next_key(), value),
                || one_op(op, above, above_keys.next_key(), value),
            );
        }
    }
    group.finish();
}

/// One get or put (of `value`) on `store`.
async fn one_op(op: &str, store: &dyn Storage, key: &Key, value: &Bytes) {
    if op == "get" {
        black_box(store.get(key).await.expect("get"));
    } else {
        black_box(store.put(key, value.clone(), PutOptions::default()).await.expect("put"));
    }
}

/// The primitives the layers are built from, each alone.
fn parts(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("manager_parts");
    group.measurement_time(Duration::from_secs(1)).warm_up_time(Duration::from_millis(300));

    // async-trait turns every call into one of these.
    group.bench_function("boxed_future", |b| {
        b.to_async(&rt).iter(|| {
            let f: Pin<Box<dyn Future<Output = u64> + Send>> = Box::pin(async { black_box(1u64) });
            f
        })
    });
    // ManagedStorage: a clock read before and after each call.
    group.bench_function("instant_now_elapsed", |b| {
        b.iter(|| {
            let start = Instant::now();
            black_box(start.elapsed())
        })
    });
    // ManagedStorage: the counters and histogram of one call.
    let backend = StorageMetrics::new().backend("m");
    group.bench_function("metrics_record", |b| {
        b.iter(|| backend.record(Op::Get, black_box(Duration::from_nanos(300)), true, 0, 4096))
    });
    // The health guard: a call that does not finish on its first poll runs under a timeout.
    group.bench_function("tokio_timeout_ready", |b| {
        b.to_async(&rt).iter(|| tokio::time::timeout(Duration::from_secs(30), ready(black_box(1u64))))
    });
    // ManagedStorage: a span per call (no subscriber installed, as here).
    let key = Key::new("layers/d000/k000001").expect("key");
    group.bench_function("debug_span_instrument", |b| {
        b.to_async(&rt).iter(|| {
            let span = tracing::debug_span!("storage", backend = "m", op = "get", key = %key);
            async { black_box(1u64) }.instrument(span)
        })
    });
    // LocalStorage: every write hops to tokio's blocking pool and back.
    group.bench_function("spawn_blocking_round_trip", |b| {
        b.to_async(&rt)
            .iter(|| async { tokio::task::spawn_blocking(|| black_box(1u64)).await.expect("task") })
    });
    // Session: the state behind a lock, its route's stack cloned per call.
    let state: RwLock<Arc<Vec<Arc<dyn Storage>>>> =
        RwLock::new(Arc::new(vec![Arc::new(MemoryStorage::new("m")) as Arc<dyn Storage>]));
    group.bench_function("rwlock_read_arc_clone", |b| b.iter(|| black_box(state.read()[0].clone())));
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = manager, layers, parts
}
criterion_main!(benches);
