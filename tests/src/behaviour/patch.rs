use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use tierfs_core::{Condition, ErrorKind, Key, MetadataChanges, Patch, PutOptions, Storage};

use super::streaming::write_pattern;
use super::{expect_kind, key};
use crate::data::pattern;

/// The whole value of `k`, read as a stream (works for any size).
async fn streamed(store: &dyn Storage, k: &Key) -> Vec<u8> {
    let mut out = Vec::new();
    let mut stream = store.read(k, None).await.unwrap();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk.unwrap());
    }
    out
}

/// Applies `patch` to `k` on the store and to `model`, then checks that
/// the store holds the model, through `get`, `stat`, a range and a stream.
async fn patch_and_check(store: &dyn Storage, k: &Key, model: &mut Vec<u8>, patch: Patch) {
    let meta = store.patch(k, &patch, &Condition::Exists).await.unwrap_or_else(|e| panic!("patch: {e}"));
    *model = patch.apply_to(model).unwrap();
    assert_eq!(meta.size, model.len() as u64);
    let stat = store.stat(k).await.unwrap();
    assert_eq!(stat.size, model.len() as u64);
    assert_eq!(meta.version, stat.version, "the patch's answer names another version than stat");
    assert_eq!(meta.metadata, stat.metadata, "the patch's answer has other metadata than stat");
    let got = store.get(k).await.unwrap();
    assert!(got[..] == model[..], "get differs from the model (len {} vs {})", got.len(), model.len());
    assert!(streamed(store, k).await == *model, "the stream differs from the model");
    if model.len() > 10 {
        let mid = model.len() as u64 / 2;
        let range = store.get_range(k, mid - 5..mid + 5).await.unwrap();
        assert_eq!(&range[..], &model[mid as usize - 5..mid as usize + 5]);
    }
}

/// `patch` writes ranges, extends (zeros in any gap), truncates and
/// changes metadata, on small values and across the size where backends
/// move values out of line, both ways.
pub async fn patch_writes_extends_and_truncates(store: Arc<dyn Storage>) {
    let k = key("patch/value");
    let mut model = b"hello world".to_vec();
    store.put(&k, Bytes::from(model.clone()), PutOptions::default()).await.unwrap();
    patch_and_check(&*store, &k, &mut model, Patch::new().write(6, "there")).await;
    patch_and_check(&*store, &k, &mut model, Patch::new().write(11, "!").write(20, "gap")).await;
    patch_and_check(&*store, &k, &mut model, Patch::new().set_len(5)).await;
    patch_and_check(&*store, &k, &mut model, Patch::new().set_len(9)).await;
    // Past 256 KiB (out of line on local), then in place, then back small.
    let big = Bytes::from(pattern(3, 0, 300_000));
    patch_and_check(&*store, &k, &mut model, Patch::new().write(4, big)).await;
    patch_and_check(&*store, &k, &mut model, Patch::new().write(150_000, "in place").write(300_004, "end"))
        .await;
    patch_and_check(&*store, &k, &mut model, Patch::new().set_len(200_000).write(199_990, "shrunk")).await;
    patch_and_check(&*store, &k, &mut model, Patch::new().set_len(1000)).await;
    patch_and_check(&*store, &k, &mut model, Patch::new().set_len(0)).await;
    patch_and_check(&*store, &k, &mut model, Patch::new().write(3, "abc")).await;

    // Metadata changes travel with the bytes; a patch of nothing is fine.
    let with_meta = Patch::new().write(0, "X").metadata(MetadataChanges::new().set("posix.mode", "100600"));
    let meta = store.patch(&k, &with_meta, &Condition::Exists).await.unwrap();
    assert_eq!(meta.metadata.get("posix.mode").map(String::as_str), Some("100600"));
    assert_eq!(store.stat(&k).await.unwrap().metadata, meta.metadata);
    assert_eq!(&store.get(&k).await.unwrap()[..], b"X\0\0abc");
    let same = store.patch(&k, &Patch::new(), &Condition::Exists).await.unwrap();
    assert_eq!(same.size, 6);
}

/// A missing key is `NotFound`, a stale version `Conflict`, a write past
/// the largest offset `InvalidInput`; none changes anything.
pub async fn patch_conditions(store: Arc<dyn Storage>) {
    let missing = key("patch/missing");
    let e = expect_kind(
        store.patch(&missing, &Patch::new().write(0, "x"), &Condition::Exists).await,
        ErrorKind::NotFound,
    );
    assert_eq!(e.key(), Some("patch/missing"), "{e}");
    expect_kind(store.stat(&missing).await, ErrorKind::NotFound);

    let k = key("patch/cond");
    let first = store.put(&k, Bytes::from_static(b"one"), PutOptions::default()).await.unwrap();
    let patched = store
        .patch(&k, &Patch::new().write(3, "+"), &Condition::VersionIs(first.version.clone()))
        .await
        .unwrap();
    assert_eq!(store.get(&k).await.unwrap(), Bytes::from_static(b"one+"));
    let e = expect_kind(
        store.patch(&k, &Patch::new().write(0, "stale"), &Condition::VersionIs(first.version)).await,
        ErrorKind::Conflict,
    );
    assert_eq!(e.key(), Some("patch/cond"), "{e}");
    assert_eq!(store.get(&k).await.unwrap(), Bytes::from_static(b"one+"));
    store.patch(&k, &Patch::new().write(0, "O"), &Condition::VersionIs(patched.version)).await.unwrap();
    assert_eq!(store.get(&k).await.unwrap(), Bytes::from_static(b"One+"));

    expect_kind(
        store.patch(&k, &Patch::new().write(u64::MAX - 1, "abc"), &Condition::Exists).await,
        ErrorKind::InvalidInput,
    );
    assert_eq!(store.get(&k).await.unwrap(), Bytes::from_static(b"One+"));
}

/// A large streamed value: one byte changed in the middle, 4 KiB
/// appended; every other byte is kept.
pub async fn patch_of_a_large_value(store: Arc<dyn Storage>) {
    let k = key("patch/large.bin");
    let len = (6 << 20) + 12_345;
    write_pattern(&*store, &k, 11, len, 1 << 20).await;
    let mut model = pattern(11, 0, len as usize);
    let patch = Patch::new().write(3 << 20, vec![0xAB]).write(len, vec![7u8; 4096]);
    patch_and_check(&*store, &k, &mut model, patch).await;
    let tail = Patch::new().write(len + 4096, "tail");
    patch_and_check(&*store, &k, &mut model, tail).await;
}

/// A value of several parts (as object stores cut them, 5 MiB and up):
/// a change inside one part, a cut inside a part, an extension of a cut
/// part, and changes at both ends keep every byte no patch touched.
pub async fn patch_keeps_untouched_parts(store: Arc<dyn Storage>) {
    let k = key("patch/parts.bin");
    let len = (16 << 20) + 777;
    write_pattern(&*store, &k, 12, len, 1 << 20).await;
    let mut model = pattern(12, 0, len as usize);
    let before = store.traffic();
    patch_and_check(&*store, &k, &mut model, Patch::new().write(7 << 20, vec![0xCD])).await;
    // Where the backend talks to a remote store, the change sent a part or
    // so, not the value.
    if let (Some(before), Some(after)) = (before, store.traffic()) {
        let sent = after.sent - before.sent;
        assert!(sent < len / 2, "a one-byte patch of {len} bytes sent {sent} bytes");
    }
    patch_and_check(&*store, &k, &mut model, Patch::new().set_len((12 << 20) + 5)).await;
    patch_and_check(&*store, &k, &mut model, Patch::new().set_len(13 << 20)).await;
    let ends = Patch::new().write(0, "head").write(13 << 20, vec![9u8; 5000]);
    patch_and_check(&*store, &k, &mut model, ends).await;
}

/// Concurrent patches of different pages of one value lose none of them
/// (a patch may fail with `Conflict` where a backend retries a bounded
/// number of times).
pub async fn concurrent_patches_lose_nothing(store: Arc<dyn Storage>) {
    let k = key("patch/pages");
    let page = 4096u64;
    store.put(&k, Bytes::from(vec![0u8; 16 * page as usize]), PutOptions::default()).await.unwrap();
    let tasks: Vec<_> = (0..8u8)
        .map(|i| {
            let (store, k) = (store.clone(), k.clone());
            tokio::spawn(async move {
                let patch = Patch::new().write(u64::from(i) * 2 * page, vec![i + 1; page as usize]);
                (i, store.patch(&k, &patch, &Condition::Exists).await)
            })
        })
        .collect();
    let mut succeeded = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            (i, Ok(_)) => succeeded.push(i),
            (_, Err(e)) => assert_eq!(e.kind(), ErrorKind::Conflict, "{e}"),
        }
    }
    assert!(!succeeded.is_empty(), "no patch succeeded");
    let value = store.get(&k).await.unwrap();
    assert_eq!(value.len() as u64, 16 * page);
    for i in succeeded {
        let at = (u64::from(i) * 2 * page) as usize;
        assert!(value[at..at + page as usize].iter().all(|b| *b == i + 1), "page of patch {i} lost");
    }
}
