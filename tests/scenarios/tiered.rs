//! Migration between hot and cold tiers under concurrent readers and
//! writers: no reader ever sees a key missing or stale, and a move cut
//! short by a crash is finished by the next pass.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use tierfs_core::metrics::StorageMetrics;
use tierfs_core::policies::tiered::{MigrationSettings, TieredStorage};
use tierfs_core::{ErrorKind, Key, LocalStorage, MemoryStorage, Storage};

#[derive(Debug, Clone, Copy)]
struct Truth {
    started: u64,
    finished: u64,
    value: Option<u64>,
}

fn key(i: usize) -> Key {
    Key::new(format!("m/{i}")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn migration_under_concurrent_reads_and_writes() {
    let dir = tempfile::tempdir().unwrap();
    let hot = Arc::new(MemoryStorage::new("hot"));
    let cold = Arc::new(LocalStorage::open("cold", dir.path(), Default::default()).unwrap());
    let settings = MigrationSettings { demote_after_secs: 0, promote_after_reads: 3, ..Default::default() };
    let metrics = StorageMetrics::new();
    let tiered = TieredStorage::new("t", hot.clone(), cold.clone(), settings, metrics.clone());
    const KEYS: usize = 64;
    // Per key: writes started, writes finished, and the last acknowledged value.
    let truth: Arc<Mutex<HashMap<usize, Truth>>> = Arc::new(Mutex::new(HashMap::new()));
    for i in 0..KEYS {
        tiered.put(&key(i), Bytes::from(format!("{i}:0")), Default::default()).await.unwrap();
        truth.lock().insert(i, Truth { started: 0, finished: 0, value: Some(0) });
    }
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    // Writers own disjoint keys so the expected value is known exactly.
    for w in 0..4usize {
        let (t, truth, stop) = (tiered.clone(), truth.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 1u64;
            while !stop.load(Ordering::Relaxed) {
                let i = w + 4 * (n as usize % (KEYS / 4));
                truth.lock().get_mut(&i).unwrap().started += 1;
                let value = if n.is_multiple_of(7) {
                    t.delete(&key(i)).await.unwrap();
                    None
                } else {
                    t.put(&key(i), Bytes::from(format!("{i}:{n}")), Default::default()).await.unwrap();
                    Some(n)
                };
                {
                    let mut truth = truth.lock();
                    let entry = truth.get_mut(&i).unwrap();
                    entry.finished += 1;
                    entry.value = value;
                }
                n += 1;
                tokio::task::yield_now().await;
            }
        }));
    }
    // Readers check every answer against the writers' record, taken around the read.
    for r in 0..4usize {
        let (t, truth, stop) = (tiered.clone(), truth.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let (mut n, mut checked) = (0usize, 0usize);
            while !stop.load(Ordering::Relaxed) {
                let i = (r * 13 + n * 5) % KEYS;
                let before = truth.lock()[&i];
                let got = t.get(&key(i)).await;
                let after = truth.lock()[&i];
                // Only a read with no write of its key in flight has one right answer.
                let quiet = before.started == before.finished && before.started == after.started;
                match got {
                    Ok(v) if quiet => assert_eq!(
                        v,
                        Bytes::from(format!("{i}:{}", before.value.expect("deleted key read back"))),
                        "key {i}: stale value"
                    ),
                    Err(e) if quiet => {
                        assert_eq!(e.kind(), ErrorKind::NotFound, "key {i}: {e}");
                        assert!(before.value.is_none(), "key {i} missing while it exists");
                    }
                    Err(e) => assert_eq!(e.kind(), ErrorKind::NotFound, "key {i}: {e}"),
                    Ok(_) => {}
                }
                checked += quiet as usize;
                n += 1;
                tokio::task::yield_now().await;
            }
            assert!(checked > 100, "reader {r} checked only {checked} quiet reads");
        }));
    }
    // The migrator moves everything down, over and over, while the load runs.
    let mut moved = 0;
    for _ in 0..30 {
        moved += tiered.migrate_once().await.unwrap().demoted;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    assert!(moved > KEYS, "only {moved} keys demoted");
    assert!(metrics.snapshot().migrations > 0);
    // Final state: exactly what the writers last acknowledged.
    for i in 0..KEYS {
        let expected = truth.lock()[&i].value;
        match (tiered.get(&key(i)).await, expected) {
            (Ok(v), Some(n)) => assert_eq!(v, Bytes::from(format!("{i}:{n}"))),
            (Err(e), None) => assert_eq!(e.kind(), ErrorKind::NotFound),
            (got, expected) => panic!("key {i}: {got:?}, expected {expected:?}"),
        }
    }
}

#[tokio::test]
async fn a_move_cut_short_is_finished_by_the_next_pass() {
    let hot = Arc::new(MemoryStorage::new("hot"));
    let cold = Arc::new(MemoryStorage::new("cold"));
    let settings = MigrationSettings { demote_after_secs: 0, promote_after_reads: 0, ..Default::default() };
    let tiered = TieredStorage::new("t", hot.clone(), cold.clone(), settings, StorageMetrics::new());
    let k = key(1);
    tiered.put(&k, Bytes::from_static(b"v2"), Default::default()).await.unwrap();
    // A crash after the copy and before the delete leaves an older copy
    // below and the current one above: the hot copy wins.
    cold.put(&k, Bytes::from_static(b"v1"), Default::default()).await.unwrap();
    assert_eq!(tiered.get(&k).await.unwrap(), Bytes::from_static(b"v2"));
    let report = tiered.migrate_once().await.unwrap();
    assert_eq!(report.demoted, 1);
    assert_eq!(hot.get(&k).await.unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(cold.get(&k).await.unwrap(), Bytes::from_static(b"v2"));
    assert_eq!(tiered.get(&k).await.unwrap(), Bytes::from_static(b"v2"));
}

/// The access record (last read, cold read counts) lives in memory; a
/// restart forgets it. Its loss changes placement only: a key read just
/// before the restart may be demoted on the first pass after it (its write
/// is old), and reads of it count towards promotion from zero again, but
/// it is never missing or stale, on persistent tiers as before.
#[tokio::test]
async fn losing_the_access_record_in_a_restart_moves_keys_but_loses_none() {
    let dirs = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let settings = MigrationSettings { demote_after_secs: 3, promote_after_reads: 2, ..Default::default() };
    let open = |run: &str| {
        let hot =
            Arc::new(LocalStorage::open(format!("hot{run}"), dirs.0.path(), Default::default()).unwrap());
        let cold =
            Arc::new(LocalStorage::open(format!("cold{run}"), dirs.1.path(), Default::default()).unwrap());
        let tiered = TieredStorage::new("t", hot.clone(), cold.clone(), settings, StorageMetrics::new());
        (tiered, hot, cold)
    };
    let k = key(7);
    let value = Bytes::from_static(b"read often, written once");
    {
        let (tiered, _, _) = open("1");
        tiered.put(&k, value.clone(), Default::default()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(3_200)).await;
        // Written long ago but read now: the record keeps it hot.
        assert_eq!(tiered.get(&k).await.unwrap(), value);
        assert_eq!(tiered.migrate_once().await.unwrap().demoted, 0);
    }
    // Restarted: the read is forgotten, so the old write decides.
    let (tiered, hot, cold) = open("2");
    assert_eq!(tiered.migrate_once().await.unwrap().demoted, 1);
    assert_eq!(hot.get(&k).await.unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(cold.get(&k).await.unwrap(), value);
    assert_eq!(tiered.get(&k).await.unwrap(), value, "never missing");
    // Cold reads count again from zero: the second promotes it.
    assert_eq!(tiered.get(&k).await.unwrap(), value);
    for _ in 0..500 {
        if hot.get(&k).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(hot.get(&k).await.unwrap(), value, "two cold reads after the restart promote it");
    assert_eq!(tiered.get(&k).await.unwrap(), value);
}
