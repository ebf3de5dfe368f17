use std::sync::Arc;

use bytes::Bytes;
use tierfs_core::{Condition, ErrorKind, Metadata, MetadataChanges, PutOptions, Storage};

use super::streaming::{check_streamed, write_pattern};
use super::{expect_kind, key};

fn map(pairs: &[(&str, &str)]) -> Metadata {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// `set_metadata` changes the map and nothing else: entries set, removed,
/// or the whole map replaced; the value, its size and its streams stay.
pub async fn set_metadata_changes_only_metadata(store: Arc<dyn Storage>) {
    let k = key("meta/file.txt");
    let options = PutOptions::with_metadata(map(&[("a", "1"), ("b", "2"), ("keep", "x")]));
    store.put(&k, Bytes::from_static(b"the value"), options).await.unwrap();
    let changes = MetadataChanges::new().set("a", "10").set("c", "3").remove("b");
    let after = store.set_metadata(&k, &changes, &Condition::Exists).await.unwrap();
    let expected = map(&[("a", "10"), ("c", "3"), ("keep", "x")]);
    assert_eq!(after.metadata, expected);
    assert_eq!(after.size, 9);
    assert_eq!(after.key, k);
    let stat = store.stat(&k).await.unwrap();
    assert_eq!(stat.metadata, expected);
    assert_eq!(stat.size, 9);
    assert_eq!(stat.version, after.version, "stat and set_metadata agree on the version");
    assert_eq!(store.get(&k).await.unwrap(), Bytes::from_static(b"the value"));
    let (meta, value) = store.get_with_meta(&k).await.unwrap();
    assert_eq!((meta.metadata, value), (expected, Bytes::from_static(b"the value")));

    let replaced = store
        .set_metadata(&k, &MetadataChanges::replace_with(map(&[("only", "1")])), &Condition::Exists)
        .await;
    assert_eq!(replaced.unwrap().metadata, map(&[("only", "1")]));
    let emptied =
        store.set_metadata(&k, &MetadataChanges::replace_with(Metadata::new()), &Condition::Exists).await;
    assert!(emptied.unwrap().metadata.is_empty());
    assert!(store.stat(&k).await.unwrap().metadata.is_empty());
    assert_eq!(store.get(&k).await.unwrap(), Bytes::from_static(b"the value"));
}

/// A missing key is `NotFound`; a version that is no longer current is
/// `Conflict`; neither changes anything.
pub async fn set_metadata_conditions(store: Arc<dyn Storage>) {
    let changes = MetadataChanges::new().set("m", "1");
    let missing = key("meta/missing");
    let e =
        expect_kind(store.set_metadata(&missing, &changes, &Condition::Exists).await, ErrorKind::NotFound);
    assert_eq!(e.key(), Some("meta/missing"), "{e}");
    expect_kind(store.stat(&missing).await, ErrorKind::NotFound);

    let k = key("meta/cond");
    let first = store.put(&k, Bytes::from_static(b"one"), PutOptions::default()).await.unwrap();
    let updated =
        store.set_metadata(&k, &changes, &Condition::VersionIs(first.version.clone())).await.unwrap();
    assert_eq!(updated.metadata, map(&[("m", "1")]));
    // A conditional update on the version set_metadata returned goes ahead.
    let changes2 = MetadataChanges::new().set("m", "2");
    let again =
        store.set_metadata(&k, &changes2, &Condition::VersionIs(updated.version.clone())).await.unwrap();
    assert_eq!(again.metadata, map(&[("m", "2")]));

    // Overwritten with other bytes: the old version no longer matches.
    store.put(&k, Bytes::from_static(b"two, longer"), PutOptions::default()).await.unwrap();
    let stale = MetadataChanges::new().set("stale", "yes");
    let e = expect_kind(
        store.set_metadata(&k, &stale, &Condition::VersionIs(first.version.clone())).await,
        ErrorKind::Conflict,
    );
    assert_eq!(e.key(), Some("meta/cond"), "{e}");
    let stat = store.stat(&k).await.unwrap();
    assert!(stat.metadata.is_empty(), "a failed condition changed the metadata: {:?}", stat.metadata);
    assert_eq!(store.get(&k).await.unwrap(), Bytes::from_static(b"two, longer"));

    store.delete(&k).await.unwrap();
    expect_kind(store.set_metadata(&k, &changes, &Condition::Exists).await, ErrorKind::NotFound);
    expect_kind(store.stat(&k).await, ErrorKind::NotFound);
}

/// A streamed value of several parts keeps every byte through a metadata
/// change (on object stores: a multipart object copied onto itself).
pub async fn set_metadata_of_a_large_value(store: Arc<dyn Storage>) {
    let k = key("meta/large.bin");
    let len = (6 << 20) + 12_345;
    write_pattern(&*store, &k, 7, len, 1 << 20).await;
    let changes = MetadataChanges::new().set("posix.mode", "100600");
    let after = store.set_metadata(&k, &changes, &Condition::Exists).await.unwrap();
    assert_eq!(after.size, len);
    assert_eq!(store.stat(&k).await.unwrap().metadata, map(&[("posix.mode", "100600")]));
    assert_eq!(check_streamed(&*store, &k, 7, None).await, len);
}

/// Concurrent updates of different entries of one key lose none of them:
/// each update that succeeded is in the final map. (An update may fail
/// with `Conflict` where the backend retries a bounded number of times.)
pub async fn concurrent_metadata_updates_lose_nothing(store: Arc<dyn Storage>) {
    let k = key("meta/contended");
    store.put(&k, Bytes::from_static(b"v"), PutOptions::default()).await.unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let (store, k) = (store.clone(), k.clone());
            tokio::spawn(async move {
                let changes = MetadataChanges::new().set(format!("writer.{i}"), "done");
                (i, store.set_metadata(&k, &changes, &Condition::Exists).await)
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
    assert!(!succeeded.is_empty(), "no update succeeded");
    let stat = store.stat(&k).await.unwrap();
    for i in succeeded {
        assert_eq!(
            stat.metadata.get(&format!("writer.{i}")).map(String::as_str),
            Some("done"),
            "{:?}",
            stat.metadata
        );
    }
    assert_eq!(store.get(&k).await.unwrap(), Bytes::from_static(b"v"));
}
