//! Helpers shared by the benchmark files: the runtime, temporary stores,
//! key sets, and the interleaved comparison of a target with its reference.
//!
//! Each bench file uses a subset of these helpers.
#![allow(dead_code)]

use std::cell::RefCell;
use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, BenchmarkId, Criterion};
use tierfs_core::{BatchOp, Key, Storage};
use tokio::runtime::Runtime;

/// Value sizes of the put/get/delete benchmarks, with their labels.
pub const SIZES: [(&str, usize); 3] = [("100B", 100), ("4KiB", 4 << 10), ("1MiB", 1 << 20)];

/// Criterion settings shared by every file; groups narrow them further.
pub fn criterion() -> Criterion {
    Criterion::default()
        .without_plots()
        .nresamples(20_000)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50)
        .configure_from_args()
}

/// A current-thread runtime with timers (the health layer needs them).
pub fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread().enable_time().build().expect("tokio runtime")
}

/// A fresh directory on the same disk as the work tree (not a tmpfs), removed on drop.
pub fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("tierfs-bench-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("temp dir")
}

/// `n` keys `{prefix}/{dir}/{i}` spread over directories of 1000.
pub fn keys(prefix: &str, n: usize) -> Vec<Key> {
    (0..n).map(|i| Key::new(format!("{prefix}/d{:03}/k{i:06}", i / 1000)).expect("valid key")).collect()
}

/// How many keys a benchmark of `size`-byte values cycles over: enough that
/// the working set is well past the CPU caches, small enough to populate fast.
pub fn key_count(size: usize) -> usize {
    if size >= 1 << 20 {
        32
    } else {
        10_000
    }
}

/// Cycles over `keys`, one step per call, so reads and overwrites spread
/// over the whole working set.
pub struct Cycle<'a> {
    keys: &'a [Key],
    i: usize,
}

impl<'a> Cycle<'a> {
    pub fn new(keys: &'a [Key]) -> Self {
        Cycle { keys, i: 0 }
    }

    /// A cycle starting half-way through `keys`: two sides interleaved over
    /// one store then never read keys the other side has just warmed.
    pub fn from_middle(keys: &'a [Key]) -> Self {
        Cycle { keys, i: keys.len() / 2 }
    }

    pub fn next_key(&mut self) -> &'a Key {
        self.i = (self.i + 1) % self.keys.len();
        &self.keys[self.i]
    }
}

/// A value of `size` bytes that does not compress to nothing.
pub fn value(size: usize) -> Bytes {
    (0..size).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect::<Vec<u8>>().into()
}

/// Stores `value` under every key, in batches (one transaction each on a
/// transactional backend, so populating does not cost one fsync per key);
/// one put at a time where a batch is refused (keys on several members).
pub async fn populate(store: &dyn Storage, keys: &[Key], value: &Bytes) {
    let chunk = if value.len() > 64 << 10 { 16 } else { 5_000 };
    for part in keys.chunks(chunk) {
        let ops = part.iter().map(|k| BatchOp::put(k.clone(), value.clone())).collect();
        match store.batch(ops).await {
            Err(e) if e.kind() == tierfs_core::ErrorKind::Unsupported => {
                for k in part {
                    store.put(k, value.clone(), Default::default()).await.expect("populate");
                }
            }
            done => done.expect("populate"),
        }
    }
}

/// Where criterion writes its results (the same rule criterion uses).
pub fn criterion_home() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return home.into();
    }
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir).join("criterion"),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/criterion"),
    }
}

/// One reference block and the target block next to it: operations in
/// each, and the time each took.
#[derive(Debug, Clone, Copy)]
struct BlockPair {
    ops: u64,
    reference: Duration,
    target: Duration,
}

/// Measures `target` against `reference` in one criterion benchmark,
/// `{group}/{pair}/interleaved`: both sides run in alternating blocks of
/// `block` operations (which side goes first alternates too), so the load of
/// this shared machine falls on both alike. Criterion records the time of one
/// reference plus one target operation. For the comparison, each target
/// block is set against the reference block beside it; the median of those
/// paired ratios (ops/s, target over reference) is robust to a block that was
/// preempted. It goes, with per-side figures, to
/// `target/criterion/tierfs-pairs/{pair}.json` for `scripts/bench-core.sh`.
///
/// Each closure performs one operation (choosing its own next key).
pub fn interleaved<R, RF, T, TF>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    rt: &Runtime,
    pair: &str,
    block: u64,
    reference: R,
    target: T,
) where
    R: FnMut() -> RF,
    RF: Future<Output = ()>,
    T: FnMut() -> TF,
    TF: Future<Output = ()>,
{
    let blocks = RefCell::new(Vec::<BlockPair>::new());
    let (reference, target) = (RefCell::new(reference), RefCell::new(target));
    group.bench_function(BenchmarkId::new(pair, "interleaved"), |b| {
        b.to_async(rt).iter_custom(|iters| {
            let (reference, target, blocks) = (&reference, &target, &blocks);
            async move {
                let mut total = Duration::ZERO;
                let mut done = 0;
                while done < iters {
                    let n = block.min(iters - done);
                    let reference_first = blocks.borrow().len() % 2 == 0;
                    let (mut t_ref, mut t_target) = (Duration::ZERO, Duration::ZERO);
                    for side in 0..2 {
                        let run_reference = (side == 0) == reference_first;
                        let start = Instant::now();
                        for _ in 0..n {
                            if run_reference {
                                let op = (reference.borrow_mut())();
                                op.await;
                            } else {
                                let op = (target.borrow_mut())();
                                op.await;
                            }
                        }
                        *(if run_reference { &mut t_ref } else { &mut t_target }) = start.elapsed();
                    }
                    blocks.borrow_mut().push(BlockPair { ops: n, reference: t_ref, target: t_target });
                    total += t_ref + t_target;
                    done += n;
                }
                total
            }
        })
    });
    write_pair(pair, &blocks.into_inner());
}

fn write_pair(pair: &str, blocks: &[BlockPair]) {
    // Skipped (filtered out), or run for a profiler or a smoke test: the
    // timings are not a measurement, so keep the last real one.
    let not_measuring =
        std::env::args().any(|a| a.starts_with("--profile-time") || a == "--test" || a == "--list");
    if blocks.is_empty() || not_measuring {
        return;
    }
    let secs = |d: Duration, n: u64| d.as_secs_f64() / n as f64;
    let ratios = sorted(blocks.iter().map(|b| secs(b.reference, 1) / secs(b.target, 1).max(1e-12)));
    let reference = sorted(blocks.iter().map(|b| secs(b.reference, b.ops)));
    let target = sorted(blocks.iter().map(|b| secs(b.target, b.ops)));
    let ops: u64 = blocks.iter().map(|b| b.ops).sum();
    let sum = |f: fn(&BlockPair) -> Duration| blocks.iter().map(|b| f(b).as_secs_f64()).sum::<f64>();
    let (total_ref, total_target) = (sum(|b| b.reference), sum(|b| b.target));
    let json = format!(
        concat!(
            "{{\"pair\": \"{}\", \"blocks\": {}, \"ops_per_side\": {}, ",
            "\"reference_ns_per_op\": {:.1}, \"target_ns_per_op\": {:.1}, ",
            "\"reference_mean_ns_per_op\": {:.1}, \"target_mean_ns_per_op\": {:.1}, ",
            "\"ratio\": {:.4}, \"ratio_p25\": {:.4}, \"ratio_p75\": {:.4}, \"pooled_ratio\": {:.4}}}\n"
        ),
        pair,
        blocks.len(),
        ops,
        median(&reference) * 1e9,
        median(&target) * 1e9,
        total_ref * 1e9 / ops as f64,
        total_target * 1e9 / ops as f64,
        median(&ratios),
        quantile(&ratios, 0.25),
        quantile(&ratios, 0.75),
        total_ref / total_target,
    );
    let dir = criterion_home().join("tierfs-pairs");
    std::fs::create_dir_all(&dir).expect("create the pairs directory");
    std::fs::write(dir.join(format!("{pair}.json")), json).expect("write the pair result");
}

fn sorted(values: impl Iterator<Item = f64>) -> Vec<f64> {
    let mut values: Vec<f64> = values.collect();
    values.sort_by(f64::total_cmp);
    values
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn median(sorted: &[f64]) -> f64 {
    quantile(sorted, 0.5)
}
