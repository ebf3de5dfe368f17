//! The sharded policy over real local stores: a member joins under
//! concurrent readers and writers (no read misses a key or sees a stale
//! value; about 1/5 of the keys move), members leave by draining or are
//! forgotten, a rebalance cut short resumes, and members that are not
//! this store's are refused.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::TryStreamExt;
use parking_lot::Mutex;
use tierfs_core::access::{Principal, StorageOperationType};
use tierfs_core::policies::sharded::{Placement, LAYOUT_KEY};
use tierfs_core::{
    Config, ErrorKind, Key, ListEntry, ListOptions, LocalStorage, Storage, StorageExt, StorageManager,
};

fn key(i: usize) -> Key {
    Key::new(format!("k/{i:05}")).unwrap()
}

/// A configuration of local members `m{i}` in `dir`: `owners` own keys,
/// `extra` is appended to the policy table.
fn config(dir: &Path, members: usize, owners: &[usize], extra: &str) -> Config {
    let mut text = String::new();
    for i in 0..members {
        text += &format!("[backends.m{i}]\ntype = \"local\"\npath = {:?}\n", dir.join(format!("m{i}")));
    }
    let names: Vec<String> = owners.iter().map(|i| format!("\"m{i}\"")).collect();
    text += &format!("[policy]\ntype = \"sharded\"\nbackends = [{}]\n{extra}", names.join(", "));
    Config::parse(&text, None).unwrap()
}

/// Whether the store routes by a settled layout (from `explain`).
fn placement(manager: &StorageManager) -> String {
    manager
        .explain(&Principal::new("t"), StorageOperationType::Read, "k/any")
        .unwrap()
        .placement
        .expect("a sharded route explains its placement")
}

async fn wait_settled(manager: &StorageManager) {
    let start = Instant::now();
    while placement(manager).contains("in progress") {
        assert!(start.elapsed() < Duration::from_secs(120), "not settled: {}", placement(manager));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every key below `prefix`.
async fn keys(store: &dyn Storage, prefix: &str) -> Vec<String> {
    let entries: Vec<ListEntry> =
        store.list_stream(ListOptions::recursive(prefix)).try_collect().await.unwrap();
    entries.into_iter().map(|e| e.name().to_owned()).collect()
}

/// Opens member `i` directly (the manager must be gone) and returns its keys.
async fn member_keys(dir: &Path, i: usize) -> Vec<String> {
    let store = LocalStorage::open(format!("m{i}"), &dir.join(format!("m{i}")), Default::default()).unwrap();
    let mut found = keys(&store, "").await;
    found.retain(|k| k != LAYOUT_KEY);
    found
}

#[derive(Debug, Clone, Copy)]
struct Truth {
    started: u64,
    finished: u64,
    value: Option<u64>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_member_joins_under_load_and_about_a_fifth_of_the_keys_move() {
    const KEYS: usize = 2000;
    let dir = tempfile::tempdir().unwrap();
    let manager = Arc::new(StorageManager::open(config(dir.path(), 5, &[0, 1, 2, 3], "")).await.unwrap());
    let store = Arc::new(manager.session("t"));
    for i in 0..KEYS {
        store.put(&key(i), Bytes::from(format!("{i}:0")), Default::default()).await.unwrap();
    }
    wait_settled(&manager).await;
    let moved_before = manager.metrics().migrations;
    let truth: Arc<Mutex<HashMap<usize, Truth>>> = Arc::new(Mutex::new(
        (0..KEYS).map(|i| (i, Truth { started: 0, finished: 0, value: Some(0) })).collect(),
    ));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    // Writers own disjoint keys, so the expected value is known exactly.
    for w in 0..4usize {
        let (s, truth, stop) = (store.clone(), truth.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 1u64;
            while !stop.load(Ordering::Relaxed) {
                let i = w + 4 * ((n as usize * 37) % (KEYS / 4));
                truth.lock().get_mut(&i).unwrap().started += 1;
                let value = if n.is_multiple_of(5) {
                    s.delete(&key(i)).await.unwrap();
                    None
                } else {
                    s.put(&key(i), Bytes::from(format!("{i}:{n}")), Default::default()).await.unwrap();
                    Some(n)
                };
                {
                    let mut truth = truth.lock();
                    let t = truth.get_mut(&i).unwrap();
                    t.finished += 1;
                    t.value = value;
                }
                n += 1;
                // Calls an in-process store answers at once do not yield.
                tokio::task::yield_now().await;
            }
        }));
    }
    let reads = Arc::new(std::sync::atomic::AtomicU64::new(0));
    for r in 0..4usize {
        let (s, truth, stop, reads) = (store.clone(), truth.clone(), stop.clone(), reads.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = r;
            while !stop.load(Ordering::Relaxed) {
                let i = (n * 7919) % KEYS;
                n += 1;
                let before = truth.lock()[&i];
                let got = match s.get(&key(i)).await {
                    Ok(v) => Some(String::from_utf8(v.to_vec()).unwrap()),
                    Err(e) if e.kind() == ErrorKind::NotFound => None,
                    Err(e) => panic!("read of {i} failed: {e}"),
                };
                let after = truth.lock()[&i];
                reads.fetch_add(1, Ordering::Relaxed);
                tokio::task::yield_now().await;
                // With no write of the key in flight, the read saw exactly the last one.
                if before.started == before.finished && after.started == before.started {
                    let expected = before.value.map(|n| format!("{i}:{n}"));
                    assert_eq!(got, expected, "key {i} read stale or missing during the rebalance");
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    manager.reconfigure(config(dir.path(), 5, &[0, 1, 2, 3, 4], "")).await.unwrap();
    assert!(placement(&manager).contains("in progress"), "{}", placement(&manager));
    let start = Instant::now();
    wait_settled(&manager).await;
    let took = start.elapsed();
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    assert!(reads.load(Ordering::Relaxed) > 100, "the readers ran");
    let last: Vec<(usize, Truth)> = truth.lock().iter().map(|(i, t)| (*i, *t)).collect();
    for (i, t) in &last {
        let got = store.get(&key(*i)).await.ok().map(|v| String::from_utf8(v.to_vec()).unwrap());
        assert_eq!(got, t.value.map(|n| format!("{i}:{n}")), "key {i} after the rebalance");
    }
    let moved = manager.metrics().migrations - moved_before;
    let fraction = moved as f64 / KEYS as f64;
    eprintln!("rebalance to 5 members: {moved} of {KEYS} keys moved ({fraction:.3}) in {took:?}");
    assert!((0.12..0.30).contains(&fraction), "moved {moved} of {KEYS}");

    // Every key is on exactly its owner, and nowhere else.
    let live: Vec<usize> = last.iter().filter(|(_, t)| t.value.is_some()).map(|(i, _)| *i).collect();
    manager.shutdown().await.unwrap();
    drop(store);
    drop(Arc::into_inner(manager).expect("the last handle"));
    let five = Placement { members: (0..5).map(|i| format!("m{i}")).collect(), replicas: 1 };
    let mut held: HashMap<String, Vec<String>> = HashMap::new();
    for m in 0..5 {
        for k in member_keys(dir.path(), m).await {
            held.entry(k).or_default().push(format!("m{m}"));
        }
    }
    assert_eq!(held.len(), live.len(), "keys held in all");
    for (k, holders) in held {
        assert_eq!(holders, [five.owners(&k)[0]], "{k} held by {holders:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_leaves_by_draining_or_is_forgotten() {
    let dir = tempfile::tempdir().unwrap();
    let manager = StorageManager::open(config(dir.path(), 3, &[0, 1, 2], "")).await.unwrap();
    let store = manager.session("t");
    for i in 0..300 {
        store.put(&key(i), Bytes::from(format!("{i}")), Default::default()).await.unwrap();
    }
    wait_settled(&manager).await;

    // Dropping m2 outright is refused: it holds keys.
    let e = manager.reconfigure(config(dir.path(), 3, &[0, 1], "")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config, "{e}");
    assert!(e.message().contains("`m2`") && e.message().contains("draining"), "{e}");

    manager.reconfigure(config(dir.path(), 3, &[0, 1], "draining = [\"m2\"]\n")).await.unwrap();
    for i in 0..300 {
        assert_eq!(store.get(&key(i)).await.unwrap(), Bytes::from(format!("{i}")), "key {i} while draining");
    }
    wait_settled(&manager).await;
    // Drained: the member can go.
    manager.reconfigure(config(dir.path(), 3, &[0, 1], "")).await.unwrap();
    wait_settled(&manager).await;
    assert_eq!(keys(&store, "k/").await.len(), 300);

    // Forgetting m1 gives its keys up and keeps the others.
    let on_m1 = (0..300)
        .filter(|i| {
            Placement { members: vec!["m0".into(), "m1".into()], replicas: 1 }.owners(key(*i).as_str())[0]
                == "m1"
        })
        .count();
    manager.reconfigure(config(dir.path(), 3, &[0], "forget = [\"m1\"]\n")).await.unwrap();
    wait_settled(&manager).await;
    assert_eq!(keys(&store, "k/").await.len(), 300 - on_m1);
    manager.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebalance_cut_short_resumes_at_the_next_start() {
    const KEYS: usize = 1500;
    let dir = tempfile::tempdir().unwrap();
    {
        let manager = StorageManager::open(config(dir.path(), 4, &[0, 1, 2], "")).await.unwrap();
        let store = manager.session("t");
        for i in 0..KEYS {
            store.put(&key(i), Bytes::from(format!("{i}")), Default::default()).await.unwrap();
        }
        wait_settled(&manager).await;
        manager.reconfigure(config(dir.path(), 4, &[0, 1, 2, 3], "")).await.unwrap();
        let moved = manager.metrics().migrations;
        let start = Instant::now();
        while manager.metrics().migrations < moved + 20 {
            assert!(start.elapsed() < Duration::from_secs(60), "the rebalance did not start");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert!(placement(&manager).contains("in progress"), "cut short before it ended");
        // Stops the rebalance at its next key, as a crash would stop it
        // anywhere (the SIGKILL case is the mount's test).
        manager.shutdown().await.unwrap();
    }
    // The next start goes by the record: every key is found at once.
    let manager = StorageManager::open(config(dir.path(), 4, &[0, 1, 2, 3], "")).await.unwrap();
    let store = manager.session("t");
    for i in 0..KEYS {
        assert_eq!(
            store.get(&key(i)).await.unwrap(),
            Bytes::from(format!("{i}")),
            "key {i} after the restart"
        );
    }
    wait_settled(&manager).await;
    assert_eq!(keys(&store, "k/").await.len(), KEYS);
    manager.shutdown().await.unwrap();
}

#[tokio::test]
async fn keys_already_on_a_joining_member_are_brought_in_and_strangers_refused() {
    let dir = tempfile::tempdir().unwrap();
    // m2 holds keys of its own before it joins.
    {
        let m2 = LocalStorage::open("m2", &dir.path().join("m2"), Default::default()).unwrap();
        for i in 0..50 {
            m2.put(&key(i), Bytes::from(format!("old {i}")), Default::default()).await.unwrap();
        }
    }
    let manager = StorageManager::open(config(dir.path(), 3, &[0, 1, 2], "")).await.unwrap();
    let store = manager.session("t");
    for i in 0..50 {
        assert_eq!(store.get(&key(i)).await.unwrap(), Bytes::from(format!("old {i}")));
    }
    wait_settled(&manager).await;
    assert_eq!(keys(&store, "k/").await.len(), 50);
    let e = store.put(&Key::new(LAYOUT_KEY).unwrap(), Bytes::from_static(b"x"), Default::default()).await;
    assert_eq!(e.unwrap_err().kind(), ErrorKind::InvalidKey);
    manager.shutdown().await.unwrap();
    drop(store);
    drop(manager);

    // A member of another sharded store is refused.
    let other = tempfile::tempdir().unwrap();
    let manager = StorageManager::open(config(other.path(), 2, &[0, 1], "")).await.unwrap();
    manager.session("t").put(&key(1), Bytes::from_static(b"x"), Default::default()).await.unwrap();
    wait_settled(&manager).await;
    drop(manager);
    std::fs::rename(other.path().join("m1"), dir.path().join("m3")).unwrap();
    let e = StorageManager::open(config(dir.path(), 4, &[0, 1, 2, 3], "")).await.unwrap_err();
    assert!(e.message().contains("another sharded store"), "{e}");
}

#[test]
fn bad_settings_are_refused_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let text = |extra: &str| {
        let mut t = String::new();
        for i in 0..3 {
            t += &format!("[backends.m{i}]\ntype = \"memory\"\n");
        }
        t + &format!("[policy]\ntype = \"sharded\"\n{extra}")
    };
    for (extra, field, says) in [
        ("backends = []\n", "policy.backends", "at least one"),
        ("backends = [\"m0\", \"m1\"]\nreplicas = 3\n", "policy.replicas", "allowed: 1 to 2"),
        ("backends = [\"m0\", \"m1\"]\ndraining = [\"m1\"]\n", "policy.draining", "listed twice"),
        (
            "backends = [\"m0\"]\nrebalance_concurrency = 0\n",
            "policy.rebalance_concurrency",
            "allowed: 1 to 256",
        ),
        ("backends = [\"m0\", \"m9\"]\n", "policy.backends[1]", "m9"),
    ] {
        let e = Config::parse(&text(extra), Some(&dir.path().join("c.toml"))).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config, "{extra}: {e}");
        assert!(e.message().contains(field) && e.message().contains(says), "{extra}: {e}");
    }
}
