//! A 4 GiB value through `LocalStorage`, written and read as streams,
//! with the peak resident memory of the whole process kept under 100 MiB.
//!
//! `TIERFS_LARGE_VALUE_MIB` sets the size (default 4096). This binary holds
//! this one test so that the peak belongs to it alone.

use tierfs_core::{Key, LocalStorage, Storage};
use tierfs_tests::behaviour::streaming::{check_streamed, write_pattern};
use tierfs_tests::peak_rss_bytes;

const LIMIT: u64 = 100 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_gib_value_streams_in_bounded_memory() {
    let mib: u64 = std::env::var("TIERFS_LARGE_VALUE_MIB").ok().and_then(|v| v.parse().ok()).unwrap_or(4096);
    let len = mib << 20;
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStorage::open("local", dir.path(), Default::default()).unwrap();
    let key = Key::new("huge/value.bin").unwrap();

    write_pattern(&store, &key, 7, len, 1 << 20).await;
    let after_write = peak_rss_bytes();
    assert_eq!(check_streamed(&store, &key, 7, None).await, len);
    let after_read = peak_rss_bytes();
    println!(
        "{mib} MiB value: peak RSS {} MiB after write, {} MiB after read",
        after_write >> 20,
        after_read >> 20
    );
    assert!(after_write < LIMIT, "writing peaked at {} MiB resident", after_write >> 20);
    assert!(after_read < LIMIT, "reading peaked at {} MiB resident", after_read >> 20);

    drop(store);
    let store = LocalStorage::open("local", dir.path(), Default::default()).unwrap();
    assert_eq!(store.stat(&key).await.unwrap().size, len);
}
