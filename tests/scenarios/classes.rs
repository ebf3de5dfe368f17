//! Storage classes over real local stores and a memory backend: a write
//! naming a class lands on its backends and keeps it across a restart; a
//! directory moved to another class under concurrent readers and writers
//! (no read misses a key or sees a stale value); listings show every key
//! once; a rename carries the class; a class nobody can provide is refused.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::TryStreamExt;
use parking_lot::Mutex;
use tierfs_core::access::StorageOperationType;
use tierfs_core::{Config, ErrorKind, Key, ListOptions, PutOptions, Storage, StorageExt, StorageManager};

/// `disk` (the default route), `fast` (a class of its own) and `ram`.
fn config(dir: &Path) -> Config {
    Config::parse(
        &format!(
            "[backends.disk]\ntype = \"local\"\npath = {:?}\n\
             [backends.nvme]\ntype = \"local\"\npath = {:?}\n\
             [backends.ram]\ntype = \"memory\"\n\
             [policy]\ntype = \"always_local\"\nbackend = \"disk\"\n\
             [classes.fast]\nbackend = \"nvme\"\n",
            dir.join("disk"),
            dir.join("nvme")
        ),
        None,
    )
    .unwrap()
}

fn classed(class: &str) -> PutOptions {
    PutOptions { storage_class: Some(class.into()), ..Default::default() }
}

async fn holds(manager: &StorageManager, backend: &str, key: &Key) -> bool {
    match manager.backend(backend).unwrap().stat(key).await {
        Ok(_) => true,
        Err(e) if e.kind() == ErrorKind::NotFound => false,
        Err(e) => panic!("stat on {backend}: {e}"),
    }
}

async fn wait_moves(manager: &StorageManager) {
    let start = Instant::now();
    while !manager.class_moves_done() {
        assert!(start.elapsed() < Duration::from_secs(60), "class moves did not end");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn names(store: &dyn Storage, prefix: &str) -> Vec<String> {
    store
        .list_stream(ListOptions::recursive(prefix))
        .map_ok(|e| e.name().to_owned())
        .try_collect()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_class_named_at_write_places_the_key_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (fast, plain, tmp) =
        (Key::new("a/fast").unwrap(), Key::new("a/plain").unwrap(), Key::new("a/tmp").unwrap());
    {
        let manager = StorageManager::open(config(dir.path())).await.unwrap();
        let store = manager.session("t");
        store.put(&fast, Bytes::from_static(b"quick"), classed("fast")).await.unwrap();
        store.put(&plain, Bytes::from_static(b"plain"), Default::default()).await.unwrap();
        store.put(&tmp, Bytes::from_static(b"scratch"), classed("cache_only")).await.unwrap();
        assert!(holds(&manager, "nvme", &fast).await && !holds(&manager, "disk", &fast).await);
        assert!(holds(&manager, "ram", &tmp).await && !holds(&manager, "disk", &tmp).await);
        // A later write naming no class keeps the key's class.
        store.put(&fast, Bytes::from_static(b"quicker"), Default::default()).await.unwrap();
        assert!(holds(&manager, "nvme", &fast).await && !holds(&manager, "disk", &fast).await);
        let info = store.storage_class(&tmp).await.unwrap();
        assert_eq!(
            (info.class.as_deref(), info.backends.as_slice()),
            (Some("cache_only"), &["ram".to_owned()][..])
        );
        assert_eq!(names(&store, "a/").await, ["a/fast", "a/plain", "a/tmp"]);
        // The index's own keys are neither listed nor writable.
        assert_eq!(names(&store, "").await, ["a/fast", "a/plain", "a/tmp"]);
        let reserved = Key::new(format!("{}x", tierfs_core::CLASS_INDEX_PREFIX)).unwrap();
        let e = store.put(&reserved, Bytes::new(), Default::default()).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidKey);
        manager.shutdown().await.unwrap();
    }
    let manager = StorageManager::open(config(dir.path())).await.unwrap();
    let store = manager.session("t");
    assert_eq!(store.get(&fast).await.unwrap(), Bytes::from_static(b"quicker"));
    assert_eq!(store.storage_class(&fast).await.unwrap().class.as_deref(), Some("fast"));
    assert_eq!(store.storage_class(&fast).await.unwrap().backends, ["nvme"]);
    assert_eq!(store.storage_class(&plain).await.unwrap().class, None);
    let explained = store.explain(store.principal(), StorageOperationType::Read, "a/fast").unwrap();
    assert_eq!(explained.storage_class.as_deref(), Some("`fast` (given to the key): on nvme"));
    assert!(
        explained.to_string().contains("storage class: `fast` (given to the key): on nvme"),
        "{explained}"
    );
    assert_eq!(
        store.explain(store.principal(), StorageOperationType::Read, "a/plain").unwrap().storage_class,
        None
    );
    // cache_only lived in memory: gone with the process, as documented.
    assert_eq!(store.get(&tmp).await.unwrap_err().kind(), ErrorKind::NotFound);
    // A rename carries the class with the key; deleting keeps the name's class.
    let moved = Key::new("b/fast").unwrap();
    store.rename(&fast, &moved).await.unwrap();
    assert!(holds(&manager, "nvme", &moved).await && !holds(&manager, "nvme", &fast).await);
    assert_eq!(store.storage_class(&moved).await.unwrap().class.as_deref(), Some("fast"));
    assert_eq!(store.storage_class(&fast).await.unwrap().class, None);
    assert_eq!(store.get(&moved).await.unwrap(), Bytes::from_static(b"quicker"));
    manager.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_moves_to_another_class_under_load() {
    const KEYS: usize = 600;
    let dir = tempfile::tempdir().unwrap();
    let manager = StorageManager::open(config(dir.path())).await.unwrap();
    let store = manager.session("t");
    let key = |i: usize| Key::new(format!("logs/{:03}/{i:05}", i % 7)).unwrap();
    let model: Arc<Mutex<HashMap<usize, u64>>> = Arc::default();
    for i in 0..KEYS {
        store.put(&key(i), Bytes::from(format!("{i}:0")), Default::default()).await.unwrap();
        model.lock().insert(i, 0);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for w in 0..2 {
        let (store, model, stop) = (store.clone(), model.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 1u64;
            while !stop.load(Ordering::Relaxed) {
                let i = (n as usize * 7 + w) % KEYS;
                // The model is updated before the write is acknowledged: a
                // reader may see the new value or the one before, never older.
                let version = model.lock()[&i] + 1;
                store.put(&key(i), Bytes::from(format!("{i}:{version}")), Default::default()).await.unwrap();
                model.lock().insert(i, version);
                n += 1;
                tokio::task::yield_now().await;
            }
        }));
    }
    for r in 0..2 {
        let (store, model, stop) = (store.clone(), model.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = r;
            while !stop.load(Ordering::Relaxed) {
                let i = (n * 13) % KEYS;
                let before = model.lock()[&i];
                let value = store.get(&key(i)).await.unwrap_or_else(|e| panic!("key {i} missing: {e}"));
                let seen: u64 =
                    std::str::from_utf8(&value).unwrap().split(':').nth(1).unwrap().parse().unwrap();
                assert!(seen >= before, "key {i}: read version {seen}, older than {before}");
                n += 1;
                tokio::task::yield_now().await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    store.set_prefix_class("logs/", Some("fast")).await.unwrap();
    wait_moves(&manager).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(store.prefix_class("logs/").as_deref(), Some("fast"));
    for i in 0..KEYS {
        let k = key(i);
        assert!(holds(&manager, "nvme", &k).await, "key {i} not on its class's backend");
        assert!(!holds(&manager, "disk", &k).await, "key {i} left behind");
        let version = model.lock()[&i];
        assert_eq!(store.get(&k).await.unwrap(), Bytes::from(format!("{i}:{version}")));
    }
    assert_eq!(names(&store, "logs/").await.len(), KEYS);
    // New keys below the directory inherit its class.
    store.put(&Key::new("logs/new").unwrap(), Bytes::from_static(b"n"), Default::default()).await.unwrap();
    assert!(holds(&manager, "nvme", &Key::new("logs/new").unwrap()).await);
    // Taking the class off moves everything back.
    store.set_prefix_class("logs/", None).await.unwrap();
    wait_moves(&manager).await;
    assert!(holds(&manager, "disk", &key(3)).await && !holds(&manager, "nvme", &key(3)).await);
    assert_eq!(store.storage_class(&key(3)).await.unwrap().class, None);
    manager.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_class_nobody_can_provide_is_refused_with_what_to_configure() {
    let dir = tempfile::tempdir().unwrap();
    let manager = StorageManager::open(config(dir.path())).await.unwrap();
    let store = manager.session("t");
    let k = Key::new("x").unwrap();
    let e = store.put(&k, Bytes::from_static(b"x"), classed("distributed")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported);
    assert!(e.message().contains("`distributed`") && e.message().contains("s3"), "{e}");
    let e = store.put(&k, Bytes::from_static(b"x"), classed("nope")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.message().contains("fast") && e.message().contains("persistent"), "{e}");
    assert_eq!(store.get(&k).await.unwrap_err().kind(), ErrorKind::NotFound, "nothing written");
    manager.shutdown().await.unwrap();

    let refused = |extra: &str| {
        let text = format!(
            "[backends.disk]\ntype = \"local\"\npath = {:?}\n[backends.ram]\ntype = \"memory\"\n{extra}",
            dir.path().join("d2")
        );
        Config::parse(&text, None)
    };
    // Parsed, then refused when built: no backend is shared.
    let config = refused("[classes.far]\nrequires = [\"shared\"]\n").unwrap();
    let e = StorageManager::open(config).await.unwrap_err();
    assert!(e.message().contains("classes.far") && e.message().contains("s3"), "{e}");
    let config = refused("[policy]\ntype = \"always_local\"\nbackend = \"disk\"\n[classes.keep]\nrequires = [\"durable\"]\nbackend = \"ram\"\n").unwrap();
    let e = StorageManager::open(config).await.unwrap_err();
    assert!(e.message().contains("classes.keep") && e.message().contains("durable"), "{e}");
    let e = refused("[classes.both]\nrequires = [\"durable\", \"ephemeral\"]\n").unwrap_err();
    assert!(e.message().contains("classes.both.requires"), "{e}");
}

#[tokio::test]
async fn a_prefix_class_needs_admin_and_a_key_class_needs_write() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = format!(
        "[backends.disk]\ntype = \"local\"\npath = {:?}\n[backends.ram]\ntype = \"memory\"\n\
         [policy]\ntype = \"always_local\"\nbackend = \"disk\"\n\
         [access]\ndefault = \"none\"\n",
        dir.path().join("disk")
    );
    text += "[[access.rules]]\nprincipal = \"writer\"\nresource = \"logs/\"\nlevel = \"write\"\n";
    text += "[[access.rules]]\nprincipal = \"writer\"\nresource = \"logs/\"\nlevel = \"read\"\n";
    text += "[[access.rules]]\nprincipal = \"boss\"\nresource = \"logs/\"\nlevel = \"admin\"\n";
    let manager = StorageManager::open(Config::parse(&text, None).unwrap()).await.unwrap();
    let (writer, boss, other) =
        (manager.session("writer"), manager.session("boss"), manager.session("other"));
    // A writer of logs/ may not move everything below it (it could make
    // logs/secret/ cache_only and so lose it).
    let e = writer.set_prefix_class("logs/", Some("cache_only")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
    boss.set_prefix_class("logs/", Some("persistent")).await.unwrap();
    wait_moves(&manager).await;
    // A key's own class needs write on it.
    let k = Key::new("logs/a").unwrap();
    writer.put(&k, Bytes::from_static(b"a"), classed("cache_only")).await.unwrap();
    assert_eq!(writer.storage_class(&k).await.unwrap().backends, ["ram"]);
    let e = other.set_storage_class(&k, Some("persistent")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied);
    let e = other.storage_class(&k).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied);
    manager.shutdown().await.unwrap();
}

#[tokio::test]
async fn principal_profiles_give_default_classes_and_limit_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[backends.disk]\ntype = \"local\"\npath = {:?}\n[backends.nvme]\ntype = \"local\"\npath = {:?}\n\
         [backends.ram]\ntype = \"memory\"\n[policy]\ntype = \"always_local\"\nbackend = \"disk\"\n\
         [classes.fast]\nbackend = \"nvme\"\n",
        dir.path().join("disk"),
        dir.path().join("nvme")
    );
    let profiles = "[principals.\"agent-7\"]\ndefault_class = \"cache_only\"\nallowed_classes = [\"cache_only\", \"persistent\"]\n\
                    [principals.\"role:workers\"]\ndefault_class = \"fast\"\n";
    let manager =
        StorageManager::open(Config::parse(&(text.clone() + profiles), None).unwrap()).await.unwrap();
    let agent = manager.session("agent-7");
    let worker = manager.session(tierfs_core::access::Principal::new("w1").with_role("workers"));
    let someone = manager.session("someone");
    let (mine, theirs, job) =
        (Key::new("a/mine").unwrap(), Key::new("a/theirs").unwrap(), Key::new("a/job").unwrap());
    someone.put(&theirs, Bytes::from_static(b"t"), Default::default()).await.unwrap();
    // Keys the agent creates take its default class; a key it overwrites keeps its place.
    agent.put(&mine, Bytes::from_static(b"m"), Default::default()).await.unwrap();
    agent.put(&theirs, Bytes::from_static(b"t2"), Default::default()).await.unwrap();
    assert_eq!(agent.storage_class(&mine).await.unwrap().backends, ["ram"]);
    assert_eq!(agent.storage_class(&theirs).await.unwrap().backends, ["disk"]);
    assert!(holds(&manager, "disk", &theirs).await);
    // Classes outside its profile are refused, named.
    let e = agent.put(&job, Bytes::from_static(b"j"), classed("fast")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied);
    assert!(e.message().contains("cache_only, persistent") && e.message().contains("`fast`"), "{e}");
    let e = agent.set_prefix_class("a/", Some("fast")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied);
    assert_eq!(someone.get(&job).await.unwrap_err().kind(), ErrorKind::NotFound, "nothing written");
    // A role's profile applies to its members; a streamed write too.
    let mut writer = worker.write(&job, Default::default()).await.unwrap();
    writer.write(Bytes::from_static(b"job")).await.unwrap();
    writer.finish().await.unwrap();
    assert_eq!(worker.storage_class(&job).await.unwrap().class.as_deref(), Some("fast"));
    assert!(holds(&manager, "nvme", &job).await);
    manager.shutdown().await.unwrap();
    drop((manager, agent, worker, someone));

    // Refused at start, naming the field.
    let bad =
        text.clone() + "[principals.\"x\"]\ndefault_class = \"fast\"\nallowed_classes = [\"persistent\"]\n";
    let e = Config::parse(&bad, None).unwrap_err();
    assert!(e.message().contains("principals.\"x\".default_class"), "{e}");
    let bad = text + "[principals.\"x\"]\ndefault_class = \"distributed\"\n";
    let e = StorageManager::open(Config::parse(&bad, None).unwrap()).await.unwrap_err();
    assert!(e.message().contains("principals.\"x\".default_class") && e.message().contains("s3"), "{e}");
}
