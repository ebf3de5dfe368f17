//! Faults on the real cluster, each under a concurrent workload with every
//! acknowledged write checked afterwards. These stop and start Garage nodes
//! and redis-server, so they run one at a time (`--test-threads=1`) after
//! the other distributed tests.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;
use tierfs_core::{Config, ErrorKind, Key, Storage, StorageManager};
use tierfs_tests::plugins::workspace_root;
use tierfs_tests::services::{redis_url, required_env, s3_backend_toml, wait_for_cluster, Down};

/// Puts `work/<task>/<n>` in a loop and reads back its previous key, from
/// several tasks; returns what was acknowledged and what failed.
struct Workload {
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<BTreeMap<String, String>>>,
    failures: Arc<Mutex<Vec<String>>>,
    ops: Arc<AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Workload {
    fn start(store: Arc<dyn Storage>, tasks: usize, tag: &str) -> Workload {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(BTreeMap::new()));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let ops = Arc::new(AtomicU64::new(0));
        let handles = (0..tasks)
            .map(|t| {
                let (store, stop, acked, failures, ops) =
                    (store.clone(), stop.clone(), acked.clone(), failures.clone(), ops.clone());
                let tag = tag.to_owned();
                tokio::spawn(async move {
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let key = format!("{tag}/{t}/{n}");
                        let value = format!("{key}={}", n * 7);
                        match store
                            .put(
                                &Key::new(key.clone()).unwrap(),
                                Bytes::from(value.clone()),
                                Default::default(),
                            )
                            .await
                        {
                            Ok(_) => {
                                acked.lock().insert(key, value);
                            }
                            Err(e) => failures.lock().push(format!("put {key}: {e}")),
                        }
                        if n > 0 {
                            let prev = format!("{tag}/{t}/{}", n - 1);
                            let expected = acked.lock().get(&prev).cloned();
                            if let Some(expected) = expected {
                                match store.get(&Key::new(prev.clone()).unwrap()).await {
                                    Ok(v) => assert_eq!(v, Bytes::from(expected), "{prev}: wrong value"),
                                    Err(e) => failures.lock().push(format!("get {prev}: {e}")),
                                }
                            }
                        }
                        ops.fetch_add(1, Ordering::Relaxed);
                        n += 1;
                    }
                })
            })
            .collect();
        Workload { stop, acked, failures, ops, tasks: handles }
    }

    async fn finish(self) -> (BTreeMap<String, String>, Vec<String>, u64) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            t.await.unwrap();
        }
        let acked = self.acked.lock().clone();
        let failures = self.failures.lock().clone();
        (acked, failures, self.ops.load(Ordering::Relaxed))
    }
}

async fn check_all(store: &dyn Storage, acked: &BTreeMap<String, String>) {
    for (key, value) in acked {
        let got = store.get(&Key::new(key.clone()).unwrap()).await.unwrap_or_else(|e| panic!("{key}: {e}"));
        assert_eq!(got, Bytes::from(value.clone()), "{key}");
    }
}

async fn open(text: &str) -> (StorageManager, tempfile::TempDir) {
    wait_for_cluster().await;
    let dir = tempfile::tempdir().unwrap();
    let text = text.replace("{dir}", dir.path().to_str().unwrap());
    let config = Config::parse(&text, None).unwrap_or_else(|e| panic!("{e}"));
    (StorageManager::open(config).await.unwrap_or_else(|e| panic!("{e}")), dir)
}

const FAST: &str = "timeout_ms = 3000\nconnect_timeout_ms = 1000\nretries = 2\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_node_down_no_error_reaches_the_caller() {
    let (m, _dir) = open(&s3_backend_toml("cluster", FAST)).await;
    let store: Arc<dyn Storage> = Arc::new(m.session("t"));
    let load = Workload::start(store.clone(), 8, "one");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let down = Down::stop(&[3]);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (acked, failures, ops) = load.finish().await;
    down.restart();
    assert!(
        failures.is_empty(),
        "{} failures with one node down, first: {:?}",
        failures.len(),
        failures.first()
    );
    assert!(ops > 50, "only {ops} operations");
    check_all(&*store, &acked).await;
    println!("one node down: {ops} operations, {} acknowledged writes checked", acked.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_down_fail_clearly_then_recover_by_themselves() {
    let (m, _dir) = open(&s3_backend_toml("cluster", FAST)).await;
    let store: Arc<dyn Storage> = Arc::new(m.session("t"));
    let k = Key::new("two/before").unwrap();
    store.put(&k, Bytes::from_static(b"old"), Default::default()).await.unwrap();
    let down = Down::stop(&[2, 3]);
    // Clear, retryable Unavailable errors within the configured bounds: no hang.
    let start = Instant::now();
    let e = store.put(&k, Bytes::from_static(b"new"), Default::default()).await.unwrap_err();
    let took = start.elapsed();
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert!(took < Duration::from_secs(30), "the failing put took {took:?}");
    let e = store.get(&Key::new("two/missing").unwrap()).await.unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::Unavailable | ErrorKind::NotFound), "{e}");
    println!("with two nodes down a put failed after {took:?}: {e}");

    down.restart();
    // Service resumes without intervention within 60 s.
    let start = Instant::now();
    loop {
        match store
            .put(&Key::new("two/after").unwrap(), Bytes::from_static(b"back"), Default::default())
            .await
        {
            Ok(_) => break,
            Err(e) => {
                assert!(start.elapsed() < Duration::from_secs(60), "not back after 60 s: {e}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
    println!("cluster answered writes again {:?} after the restart", start.elapsed());
    // Nothing half-written: the key holds the old value or the whole new one.
    let v = store.get(&k).await.unwrap();
    assert!(v == Bytes::from_static(b"old") || v == Bytes::from_static(b"new"), "torn value {v:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_redis_leaves_operations_on_the_primary() {
    let text = format!(
        "{}[policy]\ntype = \"prefer_cache\"\nprimary = \"cluster\"\ncache = {{ tier = \"redis\", redis_url = \"{}\", redis_timeout_ms = 200 }}\n",
        s3_backend_toml("cluster", FAST),
        redis_url()
    );
    let (m, _dir) = open(&text).await;
    let store: Arc<dyn Storage> = Arc::new(m.session("t"));
    let load = Workload::start(store.clone(), 8, "redis");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let redis_dir = required_env("TIERFS_REDIS_DIR");
    let script = workspace_root().join("scripts/services/redis.sh");
    assert!(Command::new("bash").arg(&script).arg("stop").arg(&redis_dir).status().unwrap().success());
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (acked, failures, ops) = load.finish().await;
    assert!(
        failures.is_empty(),
        "{} failures with Redis down, first: {:?}",
        failures.len(),
        failures.first()
    );
    check_all(&*store, &acked).await;
    println!("redis killed: {ops} operations, none failed");
    // Bring Redis back on its port for any later test.
    let port = required_env("TIERFS_REDIS_PORT");
    let log = std::fs::File::create(format!("{redis_dir}/log2")).unwrap();
    // The server outlives this test on purpose; the stage stops it by pid.
    #[allow(clippy::zombie_processes)]
    let child = Command::new("redis-server")
        .args(["--port", &port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    std::fs::write(format!("{redis_dir}/pid"), child.id().to_string()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redundant_over_local_and_cluster_survives_the_whole_cluster_stopping() {
    let text = format!(
        "[backends.local]\ntype = \"local\"\npath = \"{{dir}}/local\"\n{}\n\
         [health]\ntimeout_ms = 3000\nretries = 0\nprobe_ms = 200\n\
         [policy]\ntype = \"redundant\"\nbackends = [\"local\", \"cluster\"]\nwrite_quorum = 1\nscrub_interval_secs = 0\n",
        s3_backend_toml("cluster", FAST)
    );
    let (m, _dir) = open(&text).await;
    let store: Arc<dyn Storage> = Arc::new(m.session("t"));
    let load = Workload::start(store.clone(), 4, "red");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let down = Down::stop(&[1, 2, 3]);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (acked, failures, ops) = load.finish().await;
    assert!(
        failures.is_empty(),
        "{} failures with the cluster stopped, first: {:?}",
        failures.len(),
        failures.first()
    );
    check_all(&*store, &acked).await;
    down.restart();
    // Once the cluster answers again, a scrub brings its copy up to date.
    let cluster = m.backend("cluster").unwrap();
    let start = Instant::now();
    loop {
        let Err(e) = cluster
            .list(&tierfs_core::ListOptions { limit: Some(1), ..tierfs_core::ListOptions::recursive("") })
            .await
        else {
            break;
        };
        assert!(start.elapsed() < Duration::from_secs(90), "cluster not back: {e}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let start = Instant::now();
    loop {
        let report = scrub(&m).await;
        let missing = count_missing(&*cluster, &acked).await;
        if missing == 0 {
            println!("cluster stopped: {ops} operations, none failed; scrub repaired the cluster ({report})");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "{missing} keys still missing on the cluster ({report})"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn scrub(m: &StorageManager) -> String {
    match m.scrub().await {
        Ok(reports) => format!("{reports:?}"),
        Err(e) => format!("scrub failed: {e}"),
    }
}

async fn count_missing(cluster: &dyn Storage, acked: &BTreeMap<String, String>) -> usize {
    let mut missing = 0;
    for key in acked.keys() {
        if cluster.stat(&Key::new(key.clone()).unwrap()).await.is_err() {
            missing += 1;
        }
    }
    missing
}
