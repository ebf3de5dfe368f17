use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use tierfs_core::{collect_stream, ErrorKind, Key, Storage};

use super::{expect_kind, key, put};
use crate::data::{check_pattern, pattern};

/// Writes `len` bytes of pattern `seed` in `chunk`-sized pieces.
pub async fn write_pattern(store: &dyn Storage, k: &Key, seed: u64, len: u64, chunk: usize) {
    let mut writer = store.write(k, Default::default()).await.unwrap();
    let mut pos = 0;
    while pos < len {
        let n = chunk.min((len - pos) as usize);
        writer.write(Bytes::from(pattern(seed, pos, n))).await.unwrap();
        pos += n as u64;
    }
    let meta = writer.finish().await.unwrap();
    assert_eq!(meta.size, len);
}

/// Streams `k` (or `range` of it) and checks it against pattern `seed`;
/// returns the number of bytes read.
pub async fn check_streamed(
    store: &dyn Storage,
    k: &Key,
    seed: u64,
    range: Option<std::ops::Range<u64>>,
) -> u64 {
    let mut pos = range.as_ref().map_or(0, |r| r.start);
    let mut stream = store.read(k, range).await.unwrap();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        assert!(chunk.len() <= 16 << 20, "a chunk of {} bytes is not streaming", chunk.len());
        check_pattern(seed, pos, &chunk).unwrap_or_else(|at| panic!("wrong byte at offset {at}"));
        pos += chunk.len() as u64;
    }
    pos
}

/// Small and medium values written in chunks read back whole and in ranges.
pub async fn streamed_write_and_read(store: Arc<dyn Storage>) {
    for (i, len) in [0u64, 1, 4096, 300 * 1024, 3 * 1024 * 1024 + 17].into_iter().enumerate() {
        let k = key(&format!("stream/{i}"));
        write_pattern(&*store, &k, i as u64, len, 64 * 1024).await;
        assert_eq!(check_streamed(&*store, &k, i as u64, None).await, len);
        assert_eq!(store.stat(&k).await.unwrap().size, len);
        let whole = store.get(&k).await.unwrap();
        assert_eq!(whole.len() as u64, len);
        check_pattern(i as u64, 0, &whole).unwrap();
        if len > 10 {
            let end = check_streamed(&*store, &k, i as u64, Some(3..len - 2)).await;
            assert_eq!(end, len - 2);
        }
        let past = collect_stream(store.read(&k, Some(len + 5..len + 10)).await.unwrap()).await.unwrap();
        assert!(past.is_empty());
    }
}

/// An aborted or dropped writer leaves the previous value, and a new key absent.
pub async fn streamed_write_abort_keeps_old_value(store: Arc<dyn Storage>) {
    put(&*store, "ab/kept", Bytes::from_static(b"original")).await;
    for size in [100usize, 1 << 20] {
        let mut w = store.write(&key("ab/kept"), Default::default()).await.unwrap();
        w.write(Bytes::from(vec![9u8; size])).await.unwrap();
        w.abort().await.unwrap();
        let mut w = store.write(&key("ab/kept"), Default::default()).await.unwrap();
        w.write(Bytes::from(vec![9u8; size])).await.unwrap();
        drop(w);
        let mut w = store.write(&key("ab/fresh"), Default::default()).await.unwrap();
        w.write(Bytes::from(vec![9u8; size])).await.unwrap();
        drop(w);
    }
    assert_eq!(store.get(&key("ab/kept")).await.unwrap(), Bytes::from_static(b"original"));
    expect_kind(store.get(&key("ab/fresh")).await, ErrorKind::NotFound);
}

/// Size of [`streamed_large_value`]: `TIERFS_BIG_VALUE_MIB` (default 1024).
pub fn big_value_len() -> u64 {
    let mib: u64 = std::env::var("TIERFS_BIG_VALUE_MIB").ok().and_then(|v| v.parse().ok()).unwrap_or(1024);
    mib << 20
}

/// A 1 GiB value streamed in and out in 1 MiB chunks, checked byte for byte,
/// and read back in long ranges.
pub async fn streamed_large_value(store: Arc<dyn Storage>) {
    let len = big_value_len();
    let k = key("big/value.bin");
    write_pattern(&*store, &k, 42, len, 1 << 20).await;
    assert_eq!(store.stat(&k).await.unwrap().size, len);
    assert_eq!(check_streamed(&*store, &k, 42, None).await, len);
    let tail = store.get_range(&k, len - 100..len + 100).await.unwrap();
    assert_eq!(tail.len(), 100);
    check_pattern(42, len - 100, &tail).unwrap();
    // Long ranges at offsets that are not page-aligned, inside and across the end.
    let start = len / 2 + 12_345;
    let middle = store.get_range(&k, start..start + (3 << 20)).await.unwrap();
    assert_eq!(middle.len(), 3 << 20);
    check_pattern(42, start, &middle).unwrap();
    let start = len.saturating_sub(2 << 20) + 7;
    let end = store.get_range(&k, start..len + 100).await.unwrap();
    assert_eq!(end.len() as u64, len - start);
    check_pattern(42, start, &end).unwrap();
    store.delete(&k).await.unwrap();
    expect_kind(store.stat(&k).await, ErrorKind::NotFound);
}
