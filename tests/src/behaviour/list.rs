use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use tierfs_core::{ListEntry, ListOptions, Storage, StorageExt};

use super::put;

async fn names(store: &dyn Storage, options: ListOptions) -> Vec<String> {
    store.list_stream(options).map_ok(|e| e.name().to_owned()).try_collect().await.unwrap()
}

async fn fill(store: &dyn Storage, keys: &[&str]) {
    for k in keys {
        put(store, k, Bytes::from(k.to_string())).await;
    }
}

/// Direct children group deeper keys; recursive lists the whole subtree.
pub async fn list_children_and_subtree(store: Arc<dyn Storage>) {
    fill(&*store, &["a/1", "a/2", "a/sub/3", "a/sub/deep/4", "a/sub2/5", "ab", "b/6"]).await;
    assert_eq!(names(&*store, ListOptions::children("a/")).await, ["a/1", "a/2", "a/sub/", "a/sub2/"]);
    assert_eq!(
        names(&*store, ListOptions::recursive("a/")).await,
        ["a/1", "a/2", "a/sub/3", "a/sub/deep/4", "a/sub2/5"]
    );
    assert_eq!(names(&*store, ListOptions::children("")).await, ["a/", "ab", "b/"]);
    assert_eq!(names(&*store, ListOptions::children("a/sub/")).await, ["a/sub/3", "a/sub/deep/"]);
    // Objects carry their size.
    let page = store.list(&ListOptions::children("a/")).await.unwrap();
    match &page.entries[0] {
        ListEntry::Object(meta) => assert_eq!(meta.size, 3),
        other => panic!("expected an object, got {other:?}"),
    }
    assert_eq!(page.next, None);
}

/// A prefix need not end at a `/`.
pub async fn list_partial_prefix(store: Arc<dyn Storage>) {
    fill(&*store, &["p/foo", "p/fob/x", "p/fa", "p/g"]).await;
    assert_eq!(names(&*store, ListOptions::children("p/fo")).await, ["p/fob/", "p/foo"]);
    assert_eq!(names(&*store, ListOptions::recursive("p/fo")).await, ["p/fob/x", "p/foo"]);
}

/// Pages of a recursive listing join into the whole listing, in order.
pub async fn list_pagination(store: Arc<dyn Storage>) {
    let keys: Vec<String> = (0..250).map(|i| format!("pg/{i:04}")).collect();
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    fill(&*store, &refs).await;
    let mut seen = Vec::new();
    let mut options = ListOptions { limit: Some(7), ..ListOptions::recursive("pg/") };
    let mut pages = 0;
    loop {
        let page = store.list(&options).await.unwrap();
        assert!(page.entries.len() <= 7);
        pages += 1;
        seen.extend(page.entries.iter().map(|e| e.name().to_owned()));
        match page.next {
            Some(next) => options.start_after = Some(next),
            None => break,
        }
        assert!(pages < 100, "pagination does not end");
    }
    assert_eq!(seen, keys);
    let all = names(&*store, ListOptions { limit: Some(13), ..ListOptions::recursive("pg/") }).await;
    assert_eq!(all, keys);
}

/// A group spanning a page boundary is listed once.
pub async fn list_pagination_of_groups(store: Arc<dyn Storage>) {
    let mut keys = Vec::new();
    for g in 0..5 {
        for i in 0..4 {
            keys.push(format!("grp/d{g}/{i}"));
        }
        keys.push(format!("grp/f{g}"));
    }
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    fill(&*store, &refs).await;
    let expected: Vec<String> =
        (0..5).map(|g| format!("grp/d{g}/")).chain((0..5).map(|g| format!("grp/f{g}"))).collect();
    for limit in [1, 2, 3, 100] {
        let got = names(&*store, ListOptions { limit: Some(limit), ..ListOptions::children("grp/") }).await;
        assert_eq!(got, expected, "limit {limit}");
    }
}

/// Listing a prefix with nothing under it is empty, not an error.
pub async fn list_missing_prefix_is_empty(store: Arc<dyn Storage>) {
    put(&*store, "x/1", Bytes::from_static(b"1")).await;
    assert!(names(&*store, ListOptions::children("nothing/here/")).await.is_empty());
    assert!(names(&*store, ListOptions::recursive("x/1/")).await.is_empty());
}
