use std::sync::Arc;

use bytes::Bytes;
use tierfs_core::{BatchOp, ErrorKind, Storage};

use super::{expect_kind, key, put};

/// Puts and deletes of one batch all apply (or the backend refuses batches).
pub async fn batch_applies_all(store: Arc<dyn Storage>) {
    put(&*store, "b/gone", Bytes::from_static(b"x")).await;
    let big = Bytes::from(vec![7u8; 600 * 1024]);
    let ops = vec![
        BatchOp::put(key("b/one"), "1"),
        BatchOp::put(key("b/big"), big.clone()),
        BatchOp::delete(key("b/gone")),
        BatchOp::delete(key("b/never-existed")),
    ];
    if !store.capabilities().atomic_batch {
        expect_kind(store.batch(ops).await, ErrorKind::Unsupported);
        return;
    }
    store.batch(ops).await.unwrap();
    assert_eq!(store.get(&key("b/one")).await.unwrap(), Bytes::from_static(b"1"));
    assert_eq!(store.get(&key("b/big")).await.unwrap(), big);
    expect_kind(store.get(&key("b/gone")).await, ErrorKind::NotFound);
}

/// A batch whose third operation fails leaves no trace of the first two.
pub async fn batch_failing_half_way_applies_nothing(store: Arc<dyn Storage>) {
    put(&*store, "h/kept", Bytes::from_static(b"kept")).await;
    put(&*store, "h/exists", Bytes::from_static(b"old")).await;
    let ops = vec![
        BatchOp::put(key("h/new"), "new"),
        BatchOp::put(key("h/big"), vec![1u8; 512 * 1024]),
        BatchOp::delete(key("h/kept")),
        BatchOp::put_if_absent(key("h/exists"), "clobbered"),
        BatchOp::put(key("h/after"), "after"),
    ];
    if !store.capabilities().atomic_batch {
        expect_kind(store.batch(ops).await, ErrorKind::Unsupported);
        return;
    }
    let e = expect_kind(store.batch(ops).await, ErrorKind::AlreadyExists);
    assert_eq!(e.key(), Some("h/exists"), "{e}");
    for missing in ["h/new", "h/big", "h/after"] {
        expect_kind(store.get(&key(missing)).await, ErrorKind::NotFound);
    }
    assert_eq!(store.get(&key("h/kept")).await.unwrap(), Bytes::from_static(b"kept"));
    assert_eq!(store.get(&key("h/exists")).await.unwrap(), Bytes::from_static(b"old"));
}
