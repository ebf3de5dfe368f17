//! Write-back: outages, refusals, shutdown, the flusher, listings of dirty
//! keys and the bound on the dirty set.

use super::*;

#[tokio::test]
async fn write_back_survives_a_primary_outage() {
    let s = stack(write_back(4 * MIB));
    let c = &s.cache;
    s.memory.put(&key("gone"), Bytes::from_static(b"x"), PutOptions::default()).await.unwrap();
    s.faults.set_down(true);

    for i in 0..20 {
        let meta =
            c.put(&key(&format!("o/{i}")), Bytes::from(format!("value {i}")), PutOptions::default()).await;
        assert_eq!(meta.unwrap().size, format!("value {i}").len() as u64);
    }
    c.delete(&key("gone")).await.unwrap();
    assert_eq!(c.get(&key("o/7")).await.unwrap(), Bytes::from_static(b"value 7"));
    // The cache answered this one itself.
    let e = expect_kind(c.get(&key("gone")).await, ErrorKind::NotFound);
    assert_eq!((e.backend(), e.key()), (Some("cache(main)"), Some("gone")), "{e}");
    assert_eq!(c.dirty_keys(), 21);

    // The flush fails and keeps everything.
    expect_kind(c.sync().await, ErrorKind::Unavailable);
    assert_eq!(c.dirty_keys(), 21);
    assert_eq!(c.get(&key("o/7")).await.unwrap(), Bytes::from_static(b"value 7"));

    s.faults.set_down(false);
    c.sync().await.unwrap();
    assert_eq!(c.dirty_keys(), 0);
    assert_eq!(c.dirty_bytes(), 0);
    for i in 0..20 {
        let v = s.memory.get(&key(&format!("o/{i}"))).await.unwrap();
        assert_eq!(v, Bytes::from(format!("value {i}")));
    }
    expect_kind(s.memory.get(&key("gone")).await, ErrorKind::NotFound);
}

#[tokio::test]
async fn write_back_refuses_writes_it_cannot_hold() {
    // A full dirty set that cannot be flushed fails the write: nothing
    // is acknowledged that might be lost.
    let s = stack(write_back(64 << 10));
    s.faults.set_down(true);
    let mut accepted = Vec::new();
    let mut refused = 0;
    for i in 0..8 {
        let k = key(&format!("full/{i}"));
        match s.cache.put(&k, Bytes::from(vec![1u8; 16 << 10]), PutOptions::default()).await {
            Ok(_) => accepted.push(k),
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
                assert!(e.to_string().contains("dirty set is full"), "{e}");
                refused += 1;
            }
        }
        assert!(s.cache.dirty_bytes() <= 64 << 10);
    }
    assert!(refused > 0 && !accepted.is_empty());
    s.faults.set_down(false);
    s.cache.shutdown().await.unwrap();
    for k in accepted {
        assert_eq!(s.memory.get(&k).await.unwrap().len(), 16 << 10);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn write_back_shutdown_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut expected = std::collections::BTreeMap::new();
    {
        let local = LocalStorage::open("local", dir.path(), Default::default()).unwrap();
        let cache = CacheStorage::with_lru(Arc::new(local), write_back(8 * MIB), StorageMetrics::new());
        let flusher = cache.spawn_flusher();
        let mut tasks = Vec::new();
        for t in 0..4u64 {
            let cache = cache.clone();
            tasks.push(tokio::spawn(async move {
                let mut acked = Vec::new();
                for i in 0..50u64 {
                    let k = format!("sd/{t}/{i}");
                    let len = [10usize, 4000, 300 << 10][(i % 3) as usize];
                    let value = Bytes::from(vec![(t * 50 + i) as u8; len]);
                    cache.put(&key(&k), value.clone(), PutOptions::default()).await.unwrap();
                    acked.push((k.clone(), Some(value)));
                    if i % 7 == 0 {
                        cache.delete(&key(&k)).await.unwrap();
                        acked.push((k, None));
                    }
                }
                acked
            }));
        }
        for task in tasks {
            for (k, v) in task.await.unwrap() {
                expected.insert(k, v);
            }
        }
        cache.shutdown().await.unwrap();
        assert_eq!(cache.dirty_keys(), 0);
        drop(cache);
        // The flusher holds only a weak reference: it ends with the cache.
        tokio::time::timeout(Duration::from_secs(5), flusher).await.unwrap().unwrap();
    }
    let local = LocalStorage::open("local", dir.path(), Default::default()).unwrap();
    for (k, v) in &expected {
        match v {
            Some(v) => assert_eq!(&local.get(&key(k)).await.unwrap(), v, "{k}"),
            None => {
                expect_kind(local.get(&key(k)).await, ErrorKind::NotFound);
            }
        }
    }
    assert_eq!(expected.len(), 200);
}

#[tokio::test(start_paused = true)]
async fn flusher_flushes_on_its_timer() {
    let options = CacheOptions {
        write_mode: WriteMode::Back { max_dirty_bytes: MIB, flush_interval: Duration::from_millis(20) },
        ..CacheOptions::default()
    };
    let s = stack(options);
    let flusher = s.cache.spawn_flusher();
    s.cache.put(&key("timed"), Bytes::from_static(b"v"), PutOptions::default()).await.unwrap();
    for _ in 0..250 {
        if s.cache.dirty_keys() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(s.cache.dirty_keys(), 0);
    assert_eq!(s.memory.get(&key("timed")).await.unwrap(), Bytes::from_static(b"v"));
    // A failed timed flush keeps the entry; the next one delivers it.
    s.faults.set_down(true);
    s.cache.put(&key("timed"), Bytes::from_static(b"v2"), PutOptions::default()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(s.cache.dirty_keys(), 1);
    s.faults.set_down(false);
    for _ in 0..250 {
        if s.cache.dirty_keys() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(s.memory.get(&key("timed")).await.unwrap(), Bytes::from_static(b"v2"));
    s.cache.shutdown().await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), flusher).await.unwrap().unwrap();
}

#[tokio::test]
async fn write_back_lists_show_dirty_keys() {
    let s = stack(write_back(MIB));
    for k in ["l/a", "l/b/c", "m/x"] {
        s.cache.put(&key(k), Bytes::from_static(b"v"), PutOptions::default()).await.unwrap();
    }
    let names: Vec<String> = s
        .cache
        .list_stream(ListOptions::children("l/"))
        .map_ok(|e| e.name().to_owned())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(names, ["l/a", "l/b/"]);
    // Only the keys under the prefix were flushed.
    assert_eq!(s.cache.dirty_keys(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bounded_dirty_set() {
    let max_dirty = MIB;
    let s = stack(write_back(max_dirty));
    let done = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (cache, done, peak) = (s.cache.clone(), done.clone(), peak.clone());
        tokio::spawn(async move {
            while !done.load(Ordering::SeqCst) {
                peak.fetch_max(cache.dirty_bytes(), Ordering::SeqCst);
                tokio::task::yield_now().await;
            }
        })
    };
    // 20 MiB in 64 KiB values from 4 writers.
    let mut tasks = Vec::new();
    for t in 0..4u8 {
        let (cache, peak) = (s.cache.clone(), peak.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..80u32 {
                let k = key(&format!("bd/{t}/{i}"));
                cache.put(&k, Bytes::from(vec![t; 64 << 10]), PutOptions::default()).await.unwrap();
                peak.fetch_max(cache.dirty_bytes(), Ordering::SeqCst);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    done.store(true, Ordering::SeqCst);
    sampler.await.unwrap();
    let peak = peak.load(Ordering::SeqCst);
    assert!(peak <= max_dirty, "{peak} bytes dirty, bound {max_dirty}");
    assert!(peak > max_dirty / 2, "the dirty set was barely used: {peak}");
    s.cache.sync().await.unwrap();
    for t in 0..4u8 {
        for i in 0..80u32 {
            let v = s.memory.get(&key(&format!("bd/{t}/{i}"))).await.unwrap();
            assert!(v.len() == 64 << 10 && v.iter().all(|b| *b == t));
        }
    }
}

// On tokio's paused clock, so the steps below happen at exactly these times.
