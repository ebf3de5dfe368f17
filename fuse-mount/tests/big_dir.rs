//! Big directories through the mount: 100,000 files in one directory list
//! completely and in name order, listing time grows linearly (10,000 then
//! 100,000, printed; `docs/benchmarks.md` records it), and the daemon's
//! memory stays bounded while several such directories are listed again
//! and again (kept listings are bounded by entries, not only by count).
//! The same over the Garage cluster is in `distributed.rs`.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use tierfs_core::{BatchOp, Config, Key, Storage, StorageManager};

/// Puts `n` one-byte files `prefix/f000000`... into the store in `data`.
pub fn populate(data: &std::path::Path, dirs: &[(&str, usize)]) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let manager = StorageManager::open(Config::embedded_default(Some(data)).unwrap()).await.unwrap();
        let session = manager.session("populate");
        for (prefix, n) in dirs {
            for start in (0..*n).step_by(1000) {
                let ops = (start..(start + 1000).min(*n))
                    .map(|i| {
                        BatchOp::put(Key::new(format!("{prefix}/f{i:06}")).unwrap(), Bytes::from_static(b"x"))
                    })
                    .collect();
                session.batch(ops).await.unwrap();
            }
        }
        manager.shutdown().await.unwrap();
    });
}

/// Lists `dir` with readdir; returns the names and the time it took.
fn list(dir: &std::path::Path) -> (Vec<String>, Duration) {
    let started = Instant::now();
    let names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    (names, started.elapsed())
}

#[test]
fn a_directory_of_100k_files_lists_whole_in_bounded_memory() {
    if !can_mount() {
        return;
    }
    let dir = tempdir();
    let data = dir.path().join("data");
    populate(&data, &[("ten", 10_000), ("big", 100_000), ("big2", 100_000), ("big3", 100_000)]);
    let m = Mount::start(dir.path(), &data, MountSpec::default());
    let (ten, small_time) = list(&m.path("ten"));
    assert_eq!(ten.len(), 10_000);
    let (mut names, big_time) = list(&m.path("big"));
    assert_eq!(names.len(), 100_000, "every entry listed");
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), 100_000, "no entry listed twice");
    assert_eq!(names.first().map(String::as_str), Some("f000000"));
    assert_eq!(names.last().map(String::as_str), Some("f099999"));
    let per_entry = |t: Duration, n: u32| t.as_secs_f64() * 1e6 / f64::from(n);
    println!(
        "listing: 10,000 entries in {:.0} ms ({:.2} us each), 100,000 in {:.0} ms ({:.2} us each)",
        small_time.as_secs_f64() * 1e3,
        per_entry(small_time, 10_000),
        big_time.as_secs_f64() * 1e3,
        per_entry(big_time, 100_000),
    );
    // Three 100k directories listed in turn, three times: the kept listings
    // stay within their bound, so the daemon's memory does not grow with
    // every directory listed.
    let after_one = peak_rss_kib(m.pid());
    for _ in 0..3 {
        for d in ["big", "big2", "big3"] {
            assert_eq!(list(&m.path(d)).0.len(), 100_000, "{d}");
        }
    }
    let peak = peak_rss_kib(m.pid());
    println!(
        "daemon peak resident: {} MiB after one listing, {} MiB after nine",
        after_one / 1024,
        peak / 1024
    );
    assert!(peak < 512 * 1024, "the daemon grew to {} MiB listing three 100k directories", peak / 1024);
    assert!(m.unmount().success());
}
