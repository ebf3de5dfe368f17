use std::sync::Arc;

use bytes::Bytes;
use tierfs_core::{ErrorKind, Key, Metadata, PutOptions, Storage};

use super::{expect_kind, key, put};

/// put, get, get_range, stat agree.
pub async fn round_trip(store: Arc<dyn Storage>) {
    let k = key("dir/file.txt");
    let meta = store.put(&k, Bytes::from_static(b"hello world"), PutOptions::default()).await.unwrap();
    assert_eq!(meta.size, 11);
    assert_eq!(meta.key, k);
    assert_eq!(store.get(&k).await.unwrap(), Bytes::from_static(b"hello world"));
    assert_eq!(store.get_range(&k, 6..11).await.unwrap(), Bytes::from_static(b"world"));
    let stat = store.stat(&k).await.unwrap();
    assert_eq!(stat.size, 11);
    assert_eq!(stat.version, meta.version);
    store.delete(&k).await.unwrap();
    expect_kind(store.get(&k).await, ErrorKind::NotFound);
}

/// A second put replaces the value and the metadata whole.
pub async fn overwrite_replaces_value_and_metadata(store: Arc<dyn Storage>) {
    let k = key("over");
    let mut m1 = Metadata::new();
    m1.insert("a".into(), "1".into());
    m1.insert("b".into(), "2".into());
    let v1 = store.put(&k, Bytes::from(vec![1u8; 5000]), PutOptions::with_metadata(m1)).await.unwrap();
    let mut m2 = Metadata::new();
    m2.insert("a".into(), "3".into());
    let v2 =
        store.put(&k, Bytes::from_static(b"short"), PutOptions::with_metadata(m2.clone())).await.unwrap();
    assert_ne!(v1.version, v2.version, "version must change on overwrite");
    assert_eq!(store.get(&k).await.unwrap(), Bytes::from_static(b"short"));
    let stat = store.stat(&k).await.unwrap();
    assert_eq!(stat.size, 5);
    assert_eq!(stat.metadata, m2);
}

/// Zero-length values are values.
pub async fn empty_value(store: Arc<dyn Storage>) {
    let k = key("empty");
    put(&*store, "empty", Bytes::new()).await;
    assert_eq!(store.get(&k).await.unwrap().len(), 0);
    assert_eq!(store.stat(&k).await.unwrap().size, 0);
    assert_eq!(store.get_range(&k, 0..10).await.unwrap().len(), 0);
}

/// Missing keys give NotFound naming the key and backend; deleting one succeeds.
pub async fn missing_keys(store: Arc<dyn Storage>) {
    let k = key("no/such/key");
    for e in [
        expect_kind(store.get(&k).await, ErrorKind::NotFound),
        expect_kind(store.get_range(&k, 0..1).await, ErrorKind::NotFound),
        expect_kind(store.stat(&k).await, ErrorKind::NotFound),
        expect_kind(store.read(&k, None).await.map(|_| ()), ErrorKind::NotFound),
    ] {
        assert_eq!(e.key(), Some("no/such/key"), "{e}");
        // Layered stores name the innermost backend that answered.
        assert!(e.backend().is_some_and(|b| !b.is_empty()), "no backend named: {e}");
        assert!(e.to_string().contains("no/such/key"), "{e}");
    }
    store.delete(&k).await.unwrap();
}

/// Ranges past the end are clamped; an inverted range is refused.
pub async fn range_reads_clamp(store: Arc<dyn Storage>) {
    let k = key("ranged");
    put(&*store, "ranged", Bytes::from_static(b"0123456789")).await;
    assert_eq!(store.get_range(&k, 8..100).await.unwrap(), Bytes::from_static(b"89"));
    assert_eq!(store.get_range(&k, 10..20).await.unwrap().len(), 0);
    assert_eq!(store.get_range(&k, 50..60).await.unwrap().len(), 0);
    assert_eq!(store.get_range(&k, 3..3).await.unwrap().len(), 0);
    #[allow(clippy::reversed_empty_ranges)]
    let inverted = 5..2;
    expect_kind(store.get_range(&k, inverted).await, ErrorKind::InvalidInput);
}

/// Metadata with any UTF-8 comes back as written.
pub async fn metadata_round_trip(store: Arc<dyn Storage>) {
    let k = key("with-meta");
    let mut m = Metadata::new();
    m.insert("posix.mode".into(), "100644".into());
    m.insert("posix.symlink".into(), "../target/ünï cödé".into());
    m.insert("empty".into(), String::new());
    store.put(&k, Bytes::from_static(b"x"), PutOptions::with_metadata(m.clone())).await.unwrap();
    assert_eq!(store.stat(&k).await.unwrap().metadata, m);
}

/// Unicode look-alikes are different keys.
pub async fn lookalike_keys_are_distinct(store: Arc<dyn Storage>) {
    // Latin "a" and Cyrillic "а"; composed and decomposed "é".
    let pairs = [("allowed/x", "аllowed/x"), ("caf\u{e9}", "cafe\u{301}")];
    for (a, b) in pairs {
        put(&*store, a, Bytes::from_static(b"A")).await;
        put(&*store, b, Bytes::from_static(b"B")).await;
        assert_eq!(store.get(&key(a)).await.unwrap(), Bytes::from_static(b"A"));
        assert_eq!(store.get(&key(b)).await.unwrap(), Bytes::from_static(b"B"));
    }
}

/// Every invalid form of the key grammar (docs/design.md, "Keys") is refused; an invalid list prefix too.
pub async fn invalid_keys_refused(store: Arc<dyn Storage>) {
    let long_key = vec!["k".repeat(200); 6].join("/");
    let long_segment = "s".repeat(256);
    let bad = [
        "",
        "/a",
        "a//b",
        "a/",
        "./a",
        "a/./b",
        "a/..",
        "allowed/../secret",
        "..",
        "a\0b",
        &long_key,
        &long_segment,
    ];
    for k in bad {
        let e = expect_kind(Key::new(k), ErrorKind::InvalidKey);
        assert!(!e.message().is_empty());
    }
    let opts = tierfs_core::ListOptions::children("a//");
    expect_kind(store.list(&opts).await, ErrorKind::InvalidKey);
    let opts = tierfs_core::ListOptions::children("../");
    expect_kind(store.list(&opts).await, ErrorKind::InvalidKey);
}

/// `if_not_exists` refuses an existing key, or the backend says it cannot.
pub async fn conditional_put(store: Arc<dyn Storage>) {
    let k = key("once");
    let opts = PutOptions { if_not_exists: true, ..Default::default() };
    if !store.capabilities().conditional_put {
        // Refused, never degraded to an overwrite; nothing is written.
        expect_kind(store.put(&k, Bytes::from_static(b"first"), opts.clone()).await, ErrorKind::Unsupported);
        expect_kind(store.write(&k, opts).await.map(drop), ErrorKind::Unsupported);
        expect_kind(store.get(&k).await, ErrorKind::NotFound);
        return;
    }
    store.put(&k, Bytes::from_static(b"first"), opts.clone()).await.unwrap();
    expect_kind(store.put(&k, Bytes::from_static(b"second"), opts).await, ErrorKind::AlreadyExists);
    assert_eq!(store.get(&k).await.unwrap(), Bytes::from_static(b"first"));
}

/// `rename` moves value and metadata, replacing the target; or is refused.
pub async fn rename(store: Arc<dyn Storage>) {
    let (from, to) = (key("mv/from"), key("mv/to"));
    let mut m = Metadata::new();
    m.insert("mode".into(), "644".into());
    store.put(&from, Bytes::from_static(b"moved"), PutOptions::with_metadata(m.clone())).await.unwrap();
    put(&*store, "mv/to", Bytes::from_static(b"old target")).await;
    if !store.capabilities().rename {
        expect_kind(store.rename(&from, &to).await, ErrorKind::Unsupported);
        return;
    }
    store.rename(&from, &to).await.unwrap();
    expect_kind(store.get(&from).await, ErrorKind::NotFound);
    assert_eq!(store.get(&to).await.unwrap(), Bytes::from_static(b"moved"));
    let stat = store.stat(&to).await.unwrap();
    assert_eq!(stat.metadata, m);
    assert_eq!(stat.key, to);
    expect_kind(store.rename(&key("mv/none"), &to).await, ErrorKind::NotFound);
}

/// `get_with_meta` gives the value and its own metadata together.
pub async fn get_with_meta(store: Arc<dyn Storage>) {
    let k = key("paired");
    let mut m = Metadata::new();
    m.insert("mode".into(), "600".into());
    store.put(&k, Bytes::from_static(b"first"), PutOptions::with_metadata(m.clone())).await.unwrap();
    let (meta, value) = store.get_with_meta(&k).await.unwrap();
    assert_eq!(value, Bytes::from_static(b"first"));
    assert_eq!((meta.key.as_str(), meta.size, &meta.metadata), (k.as_str(), 5, &m));
    assert_eq!(meta.version, store.stat(&k).await.unwrap().version);

    store.put(&k, Bytes::from_static(b"second!"), PutOptions::default()).await.unwrap();
    let (meta, value) = store.get_with_meta(&k).await.unwrap();
    assert_eq!((value, meta.size), (Bytes::from_static(b"second!"), 7));
    assert!(meta.metadata.is_empty(), "an overwrite replaces the metadata");
    expect_kind(store.get_with_meta(&key("paired/none")).await, ErrorKind::NotFound);
}
