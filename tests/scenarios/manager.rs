//! The manager end to end: write-back through a configured `prefer_cache`
//! policy flushed on shutdown and on reconfiguration, lost on nothing.

use bytes::Bytes;
use tierfs_core::{Config, Key, LocalStorage, Storage, StorageManager};

fn config(dir: &std::path::Path, write: &str) -> Config {
    let interval = if write == "back" { ", flush_interval_ms = 3600000" } else { "" };
    let text = format!(
        "[backends.main]\ntype = \"local\"\npath = {:?}\n\
         [policy]\ntype = \"prefer_cache\"\nprimary = \"main\"\n\
         cache = {{ write = \"{write}\"{interval} }}\n",
        dir.join("store")
    );
    Config::parse(&text, None).unwrap()
}

#[tokio::test]
async fn write_back_is_flushed_on_shutdown_and_nothing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let manager = StorageManager::open(config(dir.path(), "back")).await.unwrap();
    let store = manager.session("t");
    for i in 0..200 {
        store
            .put(&Key::new(format!("k/{i}")).unwrap(), Bytes::from(format!("v{i}")), Default::default())
            .await
            .unwrap();
    }
    // The flush timer is an hour: nothing has reached the disk yet.
    let on_disk = manager.backend("main").unwrap();
    assert!(on_disk.get(&Key::new("k/0").unwrap()).await.is_err(), "write-back wrote through");
    manager.shutdown().await.unwrap();
    drop(store);
    drop(on_disk);
    drop(manager);
    let reopened = LocalStorage::open("main", &dir.path().join("store"), Default::default()).unwrap();
    for i in 0..200 {
        assert_eq!(
            reopened.get(&Key::new(format!("k/{i}")).unwrap()).await.unwrap(),
            Bytes::from(format!("v{i}"))
        );
    }
}

#[tokio::test]
async fn reconfiguring_flushes_the_old_write_back_cache() {
    let dir = tempfile::tempdir().unwrap();
    let manager = StorageManager::open(config(dir.path(), "back")).await.unwrap();
    let store = manager.session("t");
    let k = Key::new("x").unwrap();
    store.put(&k, Bytes::from_static(b"dirty"), Default::default()).await.unwrap();
    manager.reconfigure(config(dir.path(), "through")).await.unwrap();
    assert_eq!(manager.backend("main").unwrap().get(&k).await.unwrap(), Bytes::from_static(b"dirty"));
    assert_eq!(store.get(&k).await.unwrap(), Bytes::from_static(b"dirty"));
    assert!(manager.metrics().backends["main"]["put"].count >= 1);
}

#[tokio::test]
async fn a_cache_hit_does_not_touch_the_backend() {
    let dir = tempfile::tempdir().unwrap();
    let manager = StorageManager::open(config(dir.path(), "through")).await.unwrap();
    let store = manager.session("t");
    let k = Key::new("hot").unwrap();
    store.put(&k, Bytes::from_static(b"v"), Default::default()).await.unwrap();
    for _ in 0..10 {
        store.get(&k).await.unwrap();
    }
    let m = manager.metrics();
    let backend_gets = m.backends["main"].get("get").map_or(0, |s| s.count);
    assert!(backend_gets <= 1, "{backend_gets} gets reached the backend");
    assert!(m.cache_hits >= 9, "{} hits", m.cache_hits);
}

#[tokio::test]
async fn explain_says_whether_the_cache_would_serve_a_read() {
    use tierfs_core::access::{Principal, StorageOperationType};
    use tierfs_core::manager::CacheVerdict;
    let dir = tempfile::tempdir().unwrap();
    let manager = StorageManager::open(config(dir.path(), "through")).await.unwrap();
    let who = Principal::new("t");
    let k = Key::new("doc").unwrap();
    manager.backend("main").unwrap().put(&k, Bytes::from_static(b"v"), Default::default()).await.unwrap();
    let t = manager.session("t");
    let e = t.explain(&who, StorageOperationType::Read, "doc").unwrap();
    assert_eq!(e.cache, Some(CacheVerdict::Miss));
    assert!(e.allowed);
    t.get(&k).await.unwrap();
    let e = t.explain(&who, StorageOperationType::Read, "doc").unwrap();
    assert_eq!(e.cache, Some(CacheVerdict::Hit));
    assert!(e.to_string().contains("served by the cache"), "{e}");
    assert_eq!(e.route.policy, "prefer_cache");

    let plain = StorageManager::open(Config::parse("[backends.m]\ntype = \"memory\"\n", None).unwrap())
        .await
        .unwrap();
    let e = plain.session("t").explain(&who, StorageOperationType::Read, "doc").unwrap();
    assert_eq!(e.cache, Some(CacheVerdict::NoCache));
    // The configuration holder's explain reads rules only.
    assert_eq!(plain.explain(&who, StorageOperationType::Read, "doc").unwrap().cache, None);
}

/// Calls an in-process backend answers at once (`Storage::get_now`) skip
/// the boxed future but not the books: counts, errors and bytes are exact,
/// and the latency histogram holds one sample per `SAMPLE_EVERY` calls,
/// weighted so that its count stays within one sample of the calls.
#[tokio::test]
async fn calls_answered_at_once_are_counted_exactly() {
    use tierfs_core::metrics::SAMPLE_EVERY;
    let config = Config::parse("[backends.m]\ntype = \"memory\"\n", None).unwrap();
    let manager = StorageManager::open(config).await.unwrap();
    let store = manager.session("t");
    let k = Key::new("k").unwrap();
    for _ in 0..100 {
        store.put(&k, Bytes::from_static(b"1234"), Default::default()).await.unwrap();
    }
    for _ in 0..250 {
        assert_eq!(store.get(&k).await.unwrap(), Bytes::from_static(b"1234"));
    }
    let missing = Key::new("missing").unwrap();
    let error = store.get(&missing).await.unwrap_err();
    assert_eq!(error.kind(), tierfs_core::ErrorKind::NotFound);
    assert_eq!(error.key(), Some("missing"));

    let m = manager.metrics();
    let (puts, gets) = (&m.backends["m"]["put"], &m.backends["m"]["get"]);
    assert_eq!((puts.count, puts.errors, puts.bytes_in), (100, 0, 400));
    assert_eq!((gets.count, gets.errors, gets.bytes_out), (251, 1, 1000));
    for (op, calls) in [(puts, 100), (gets, 251)] {
        let sampled = op.latency.count;
        assert_eq!(sampled % SAMPLE_EVERY, 0, "each sample stands for {SAMPLE_EVERY} calls");
        assert!(sampled.abs_diff(calls) < SAMPLE_EVERY, "{sampled} in the histogram for {calls} calls");
        assert_eq!(op.latency.buckets.iter().sum::<u64>(), sampled);
    }
}

/// Counts are kept per thread and summed when read: calls from many
/// worker threads, and from threads that have exited since, all count.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn counts_from_every_thread_add_up_exactly() {
    let config = Config::parse("[backends.m]\ntype = \"memory\"\n", None).unwrap();
    let manager = StorageManager::open(config).await.unwrap();
    let store = manager.session("t");
    let k = Key::new("k").unwrap();
    store.put(&k, Bytes::from_static(b"12345678"), Default::default()).await.unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (store, k) = (store.clone(), k.clone());
            tokio::spawn(async move {
                for _ in 0..1_000 {
                    store.get(&k).await.unwrap();
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    for _ in 0..3 {
        let (store, k) = (store.clone(), k.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            rt.block_on(store.get(&k)).unwrap();
        })
        .join()
        .unwrap();
    }
    let gets = &manager.metrics().backends["m"]["get"];
    assert_eq!((gets.count, gets.errors, gets.bytes_out), (8_003, 0, 8 * 8_003));
}

/// A denied call answered through the fast path is refused and audited
/// once, like any other; an allowed one is audited once too.
#[tokio::test]
async fn calls_answered_at_once_are_checked_and_audited_once() {
    use tierfs_core::audit::AuditResult;
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[backends.m]\ntype = \"memory\"\n\
         [access]\ndefault = \"none\"\n\
         [[access.rules]]\nprincipal = \"reader\"\nresource = \"*\"\nlevel = \"read\"\n\
         [[access.rules]]\nprincipal = \"root\"\nresource = \"*\"\nlevel = \"full\"\n\
         [audit]\npath = {:?}\n",
        dir.path().join("audit.log")
    );
    let manager = StorageManager::open(Config::parse(&text, None).unwrap()).await.unwrap();
    let reader = manager.session("reader");
    let k = Key::new("k").unwrap();
    let denied = reader.put(&k, Bytes::from_static(b"v"), Default::default()).await.unwrap_err();
    assert_eq!(denied.kind(), tierfs_core::ErrorKind::PermissionDenied);
    assert_eq!(reader.get(&k).await.unwrap_err().kind(), tierfs_core::ErrorKind::NotFound);
    let records = manager.session("root").audit_log(&Default::default()).unwrap();
    let ops: Vec<(&str, AuditResult)> = records.iter().map(|r| (r.operation.as_str(), r.result)).collect();
    let expected = [
        ("audit:genesis", AuditResult::Allowed),
        ("write", AuditResult::Denied),
        ("read", AuditResult::Allowed),
        ("admin:query_audit", AuditResult::Allowed),
    ];
    assert_eq!(ops, expected);
}
